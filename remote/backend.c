#include "backend.h"

#include <errno.h>
#include <string.h>

#include "edu.h"

int backend_create(const char *spec, struct event_base *base, struct backend_host *host,
		   struct backend **out, struct mpdev_error *err)
{
	*out = NULL;
	if (!spec || !*spec)
		return mpdev_error_set(err, EINVAL, "no device given (try --device edu)");
	if (strcmp(spec, "edu") == 0)
		return edu_create(base, host, out, err);
	return mpdev_error_set(err, ENODEV, "unknown device '%s' (known: edu)", spec);
}

void backend_destroy(struct backend *b)
{
	if (b)
		b->ops->destroy(b);
}

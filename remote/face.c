#include "face.h"

#include <string.h>

/* Every face the remote speaks; --face takes the names. */
static const struct face *const faces[] = {
	&face_native,
	&face_mpqemu,
	&face_vfio_user,
};

const struct face *face_by_name(const char *name)
{
	for (size_t i = 0; i < sizeof(faces) / sizeof(faces[0]); i++)
		if (!strcmp(faces[i]->name, name))
			return faces[i];
	return NULL;
}

#include "fuzz_remote.h"

#include <errno.h>
#include <event2/event.h>
#include <unistd.h>

#include "efdio.h"
#include "fuzz_input.h"

void fuzz_remote_init(struct fuzz_remote *r, const char *target)
{
	struct backend_config cfg = { .device = "edu" };
	struct mpdev_error err = { 0 };

	r->base = event_base_new();
	if (!r->base)
		fuzz_fail(target, "setup", "event_base_new");
	/* As mpdev-remote's main() does: its descriptors belong to the baseline, not to an input.
	 */
	if (efdio_init("auto", &err) < 0)
		fuzz_fail(target, "setup", err.msg);
	if (remote_host_init(&r->host, r->base, &err) < 0 ||
	    backend_create(&cfg, r->base, &r->host.ops, &r->backend, &err) < 0 ||
	    remote_host_set_backend(&r->host, r->backend, &err) < 0)
		fuzz_fail(target, "setup", err.msg);
}

void fuzz_remote_run_loop(struct fuzz_remote *r)
{
	for (int i = 0; i < 2; i++)
		event_base_loop(r->base, EVLOOP_NONBLOCK);
}

void fuzz_remote_end_connection(struct fuzz_remote *r, struct session *s, const char *target)
{
	struct mpdev_error err = { 0 };
	int ret;

	close(s->fd);
	s->fd = -1;
	ret = session_teardown(s, &err);
	if (ret < 0 && ret != -ENOTTY)
		fuzz_fail(target, "reset after disconnect", err.msg);
}

void fuzz_remote_check_released(struct fuzz_remote *r, const char *target)
{
	fuzz_remote_run_loop(r);
	if (r->host.dma.map.n != 0)
		fuzz_fail(target, "after disconnect", "memory table regions left");
	if (r->host.dma.stats.mmaps != r->host.dma.stats.munmaps)
		fuzz_fail(target, "after disconnect", "a memory table mapping was never unmapped");
}

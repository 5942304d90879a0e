#include "host.h"

#include <errno.h>
#include <stddef.h>

#include "wire.h"

static struct remote_host *host_of(struct backend_host *h)
{
	return (struct remote_host *)((char *)h - offsetof(struct remote_host, ops));
}

static int host_dma_read(struct backend_host *h, uint64_t gpa, void *buf, size_t len,
			 struct mpdev_error *err)
{
	return dma_read(&host_of(h)->dma, gpa, buf, len, err);
}

static int host_dma_write(struct backend_host *h, uint64_t gpa, const void *buf, size_t len,
			  struct mpdev_error *err)
{
	return dma_write(&host_of(h)->dma, gpa, buf, len, err);
}

static int host_set_intx(struct backend_host *h, unsigned pin, bool level, struct mpdev_error *err)
{
	return virq_set_intx(&host_of(h)->virq, pin, level, err);
}

static int host_signal_vector(struct backend_host *h, unsigned irq_index, unsigned vector,
			      struct mpdev_error *err)
{
	return virq_signal_vector(&host_of(h)->virq, irq_index, vector, err);
}

int remote_host_init(struct remote_host *h, struct event_base *base, struct mpdev_error *err)
{
	h->ops.dma_read = host_dma_read;
	h->ops.dma_write = host_dma_write;
	h->ops.set_intx = host_set_intx;
	h->ops.signal_vector = host_signal_vector;
	h->virq_ready = false;
	dma_table_init(&h->dma, NULL, MPDEV_MAX_MEM_REGIONS);
	h->hub = NULL;
	if (iohub_create(base, REMOTE_HOST_PIRQS, &h->hub, err) < 0)
		return -err->code;
	h->ops.hub = h->hub;
	return 0;
}

int remote_host_set_backend(struct remote_host *h, struct backend *b, struct mpdev_error *err)
{
	struct backend_device_info info;
	int r;

	h->dma.backend = b;
	b->ops->get_info(b, &info);
	r = virq_init(&h->virq, b->base, h->hub, &info, err);
	h->virq_ready = r == 0;
	return r;
}

void remote_host_release(struct remote_host *h)
{
	if (h->virq_ready)
		virq_reset(&h->virq);
	dma_table_clear(&h->dma);
}

void remote_host_destroy(struct remote_host *h)
{
	remote_host_release(h);
	if (h->virq_ready)
		virq_destroy(&h->virq);
	iohub_destroy(h->hub);
	h->hub = NULL;
}

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
	return mpdev_error_set(err, ENOSYS, "INTx pin %u level %d: interrupts are not wired yet",
			       pin, (int)level);
}

static int host_signal_vector(struct backend_host *h, unsigned irq_index, unsigned vector,
			      struct mpdev_error *err)
{
	return mpdev_error_set(err, ENOSYS, "IRQ index %u vector %u: interrupts are not wired yet",
			       irq_index, vector);
}

void remote_host_init(struct remote_host *h)
{
	h->ops.dma_read = host_dma_read;
	h->ops.dma_write = host_dma_write;
	h->ops.set_intx = host_set_intx;
	h->ops.signal_vector = host_signal_vector;
	dma_table_init(&h->dma, NULL, MPDEV_MAX_MEM_REGIONS);
}

void remote_host_set_backend(struct remote_host *h, struct backend *b)
{
	h->dma.backend = b;
}

void remote_host_destroy(struct remote_host *h)
{
	dma_table_clear(&h->dma);
}

#include "host.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "fdrelease.h"
#include "wire.h"

static struct remote_host *host_of(struct backend_host *h)
{
	return (struct remote_host *)((char *)h - offsetof(struct remote_host, ops));
}

static int host_dma_read(struct backend_host *h, uint64_t gpa, void *buf, size_t len,
			 struct mpdev_error *err)
{
	struct remote_host *rh = host_of(h);
	int r = dma_read(&rh->dma, gpa, buf, len, err);

	/* Not in the table: memory the peer may serve by message. */
	if (r == -EFAULT && rh->dma_msg)
		r = rh->dma_msg(rh->dma_msg_opaque, false, gpa, buf, len, err);
	return r;
}

static int host_dma_write(struct backend_host *h, uint64_t gpa, const void *buf, size_t len,
			  struct mpdev_error *err)
{
	struct remote_host *rh = host_of(h);
	int r = dma_write(&rh->dma, gpa, buf, len, err);

	if (r == -EFAULT && rh->dma_msg)
		r = rh->dma_msg(rh->dma_msg_opaque, true, gpa, (void *)buf, len, err);
	return r;
}

/*
 * No dma_msg fallback: memory the peer serves by message has no address in
 * this process, so a zero-copy range outside the table stays -EFAULT.
 */
static int host_dma_iov(struct backend_host *h, uint64_t gpa, uint64_t len, bool write,
			struct iovec *iov, unsigned max, unsigned *n, struct mpdev_error *err)
{
	return dma_iov(&host_of(h)->dma, gpa, len, write, iov, max, n, err);
}

/* The device is the remote's device 0: its pins are IOHUB sources 0-3. */
static int host_set_intx(struct backend_host *h, unsigned pin, bool level, struct mpdev_error *err)
{
	if (pin >= VIRQ_NUM_PINS)
		return mpdev_error_set(err, EINVAL, "INTx pin %u", pin);
	return iohub_set_source(host_of(h)->hub, pin, level);
}

static int host_signal_vector(struct backend_host *h, unsigned irq_index, unsigned vector,
			      struct mpdev_error *err)
{
	return virq_signal_vector(&host_of(h)->virq, irq_index, vector, err);
}

int remote_host_init(struct remote_host *h, struct event_base *base, struct mpdev_error *err)
{
	memset(h, 0, sizeof(*h));
	h->ops.dma_read = host_dma_read;
	h->ops.dma_write = host_dma_write;
	h->ops.dma_iov = host_dma_iov;
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
	/* A backend that handles its own interrupts (vfio) needs no emulated ones. */
	if (b->ops->set_irqs || b->ops->set_intx_irqfd)
		return 0;
	b->ops->get_info(b, &info);
	r = virq_init(&h->virq, b->base, h->hub, &info, err);
	h->virq_ready = r == 0;
	return r;
}

int remote_host_route_intx(struct remote_host *h, uint32_t pin, uint32_t pirq, int irqfd,
			   int resamplefd, struct mpdev_error *err)
{
	int r = 0;

	if (!h->virq_ready || !h->virq.counts[BACKEND_IRQ_INTX])
		r = mpdev_error_set(err, EINVAL, "the device has no INTx");
	else if (pin >= VIRQ_NUM_PINS || pirq >= iohub_npirqs(h->hub))
		r = mpdev_error_set(err, EINVAL,
				    "pin %u / pirq %u out of range (pins 0-3, pirqs 0-%u)", pin,
				    pirq, iohub_npirqs(h->hub) - 1);
	/* The IOHUB checks the pair against itself; the SET_IRQS eventfds are virq's. */
	if (r == 0)
		r = virq_check_fd(&h->virq, irqfd, "the irqfd", err);
	if (r == 0)
		r = virq_check_fd(&h->virq, resamplefd, "the resamplefd", err);
	if (r < 0) {
		fd_release(irqfd);
		fd_release(resamplefd);
		return r;
	}
	return iohub_route_source(h->hub, pin, pirq, irqfd, resamplefd, err);
}

void remote_host_release(struct remote_host *h)
{
	if (h->virq_ready)
		virq_reset(&h->virq);
	iohub_reset(h->hub);
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

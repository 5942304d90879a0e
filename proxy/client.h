/*
 * libmpdev internals: the connection handle and the request engine that
 * every API call goes through.
 */
#ifndef MPDEV_CLIENT_H
#define MPDEV_CLIENT_H

#include "error.h"
#include "libmpdev.h"
#include "wire.h"

#define CLIENT_DEFAULT_TIMEOUT_MS 5000
/*
 * Posted requests carry ids with this bit set, so an unasked reply is known
 * to be a posted failure and not the late answer to a timed-out request.
 */
#define CLIENT_POSTED_ID_BIT (1ull << 63)

struct mpdev {
	int fd;
	int timeout_ms;
	uint64_t next_id;
	uint64_t features;
	struct mpdev_options opts;
	struct mpdev_error err;
	/* Posted writes that failed since the last mpdev_sync(). */
	uint64_t posted_failures;
	struct mpdev_error first_posted_failure;
	/* Set once the connection is unusable; every later call fails with it. */
	int dead;
	/* The memory table the remote accepted, with our own duplicates of the fds. */
	struct mpdev_mem_region *mem;
	size_t n_mem;
	/* Interrupt setup the remote accepted, our own duplicates, for replay. */
	struct {
		int irqfd, resamplefd;
		unsigned pirq;
	} intx[4];
	int intx_unmask_fd;
	struct {
		int *fds; /* trigger eventfd per vector, -1 where none */
		unsigned n;
	} triggers[MPDEV_NUM_IRQS];
};

/* Closes the kept interrupt fds and forgets them. */
void client_irq_forget(struct mpdev *dev);

/* Closes the kept memory table's fds and forgets it. */
void client_mem_forget(struct mpdev *dev);

/*
 * Sends req (assigning its id) with fds and waits for its reply. On success
 * *reply holds it and must be released with wire_msg_release(); a remote
 * error comes back as its negative errno with dev->err set to its message.
 */
int client_request(struct mpdev *dev, Mpdev__Envelope *req, const int *fds, size_t nfds,
		   struct wire_msg *reply);

/* Sends req as a posted message: no reply is awaited. */
int client_post(struct mpdev *dev, Mpdev__Envelope *req);

/* Fails with -EPROTO unless reply carries the expected body. */
int client_expect_body(struct mpdev *dev, const struct wire_msg *reply,
		       Mpdev__Envelope__BodyCase body);

#endif

/*
 * libmpdev internals: the connection handle and the request engine that
 * every API call goes through.
 */
#ifndef MPDEV_CLIENT_H
#define MPDEV_CLIENT_H

#include "error.h"
#include "fixed_access.h"
#include "libmpdev.h"
#include "wire.h"

#define CLIENT_DEFAULT_TIMEOUT_MS   5000
#define CLIENT_DEFAULT_RECONNECT_MS 10000
/*
 * Posted requests carry ids with this bit set, so an unasked reply is known
 * to be a posted failure and not the late answer to a timed-out request.
 */
#define CLIENT_POSTED_ID_BIT (1ull << 63)
/* Config space the shadow covers: all of PCI Express's. */
#define CLIENT_CONFIG_SHADOW_SIZE 4096u

/* Config-space writes the remote accepted, byte by byte, for replay. */
struct config_shadow {
	uint8_t *val;	  /* CLIENT_CONFIG_SHADOW_SIZE bytes, NULL until the first write */
	uint8_t *written; /* 1 where val holds a written byte */
	bool incomplete;  /* a write could not be remembered (no memory) */
};

/* Per IRQ index: what SET_IRQS left in force, for replay. */
struct irq_vectors {
	int *fds;     /* trigger eventfd per vector (our duplicate), -1 where none */
	bool *masked; /* per vector, from MASK/UNMASK calls */
	unsigned n;
};

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
	/* Posted writes sent since the last reply: neither confirmed nor failed yet. */
	uint64_t posted_unsynced;
	/* Posted writes a remote died with, unconfirmed, since the last mpdev_sync(). */
	uint64_t posted_lost;
	/* Set once the connection is unusable; every later call fails with it. */
	int dead;
	/* Where mpdev_reconnect() goes: mpdev_connect()'s path, or NULL. */
	char *path;
	/* The device as first seen, to recognise it after a restart. */
	bool have_info;
	struct mpdev_device_info info;
	/* Inside mpdev_reconnect(): no automatic reconnect, nothing recorded. */
	bool reconnecting;
	struct mpdev_replay_info replay;
	/* The memory table the remote accepted, with our own duplicates of the fds. */
	struct mpdev_mem_region *mem;
	size_t n_mem;
	/* Interrupt setup the remote accepted, our own duplicates, for replay. */
	struct {
		int irqfd, resamplefd;
		unsigned pirq;
		/* The PIRQ's pair was replaced through another pin: we hold none for it. */
		bool shared;
	} intx[4];
	int intx_unmask_fd;
	struct irq_vectors vectors[MPDEV_NUM_IRQS];
	struct config_shadow cfg;
	/* Dirty tracking this handle started; not replayed, so a restart makes it stale. */
	struct {
		bool active;
		uint64_t restarts; /* replay.restarts when it was started */
	} dirty;
	/* The shared-memory ring (ring.c), NULL while accesses go by socket. */
	struct client_ring *ring;
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

/* The same, keeping an error reply in *reply too (release it either way) when asked. */
int client_request_ex(struct mpdev *dev, Mpdev__Envelope *req, const int *fds, size_t nfds,
		      struct wire_msg *reply, bool keep_error_reply);

/* client_request() for requests whose reply has no body. */
int client_request_ok(struct mpdev *dev, Mpdev__Envelope *req, const int *fds, size_t nfds);

/*
 * One region access as a fixed-layout record (FEATURE_FIXED_ACCESS): a->op,
 * index, size, offset and data in; a->id set, a->data the value read.
 * Posted writes return once sent, like client_post.
 */
int client_fixed_call(struct mpdev *dev, struct fixed_access *a);

/* Sends req as a posted message: no reply is awaited. */
int client_post(struct mpdev *dev, Mpdev__Envelope *req);

/* Fails with -EPROTO unless reply carries the expected body. */
int client_expect_body(struct mpdev *dev, const struct wire_msg *reply,
		       Mpdev__Envelope__BodyCase body);

/* Puts "what: " before the message in dev->err, keeping -r; returns r. */
int client_error_wrap(struct mpdev *dev, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- connections (client.c) ---- */

/* Makes fd the handle's blocking, timeout-bounded socket; -errno with words on failure. */
int client_setup_socket(struct mpdev *dev, int fd, int timeout_ms);

/* A SOCK_SEQPACKET socket connected to path, or -errno with words in err. */
int client_dial(const char *path, int timeout_ms, struct mpdev_error *err);

/* Hello (resume: replaying into a restarted remote), asking for features. */
int client_handshake(struct mpdev *dev, uint64_t features, bool resume);

/* Handles what is queued on a dying connection (posted failures, notifications). */
void client_drain(struct mpdev *dev);

/* The device info request, without retries. */
int client_device_info(struct mpdev *dev, struct mpdev_device_info *info);

/* ---- what a call does when its connection died (replay.c) ---- */

/*
 * After an idempotent call returned *r: when the connection is gone and
 * automatic reconnection is on, reconnects (once per call, counted in
 * *tries) and returns true: run the call again. Otherwise false, with *r
 * the call's result (or the failed reconnect's).
 */
bool client_retry(struct mpdev *dev, int *r, int *tries);

/*
 * The same for a call that must not be repeated: after a successful
 * reconnect, *r becomes -ECONNRESET with words naming what (e.g. "BAR0
 * read"). Returns *r.
 */
int client_no_retry(struct mpdev *dev, int r, const char *what);

/* ---- pieces of the replay ---- */

/* Region access without recording or retrying (device.c). */
int client_region_read(struct mpdev *dev, uint32_t region, uint64_t offset, void *data,
		       uint32_t size);
int client_region_write(struct mpdev *dev, uint32_t region, uint64_t offset, const void *data,
			uint32_t size);

/* Installs the kept memory table into a fresh remote (memory.c). */
int client_mem_replay(struct mpdev *dev);

/* INTx routing, then SET_IRQS triggers, unmask eventfd and masks (interrupts.c). */
int client_irq_replay(struct mpdev *dev, struct mpdev_replay_info *ri, char *note, size_t note_len);

/* ---- the shared-memory ring (ring.c) ---- */

/* A non-config region access through the ring (dev->ring set). */
int ring_region_read(struct mpdev *dev, uint32_t region, uint64_t offset, void *data,
		     uint32_t size);
int ring_region_write(struct mpdev *dev, uint32_t region, uint64_t offset, const void *data,
		      uint32_t size, bool posted);
/*
 * Before any socket request: waits (bounded) until the remote has answered
 * every slot published, counting failed posted writes. A no-op without a ring.
 */
void ring_drain(struct mpdev *dev);
/* The connection is gone: drops the ring, unconfirmed posted writes counted as lost. */
void ring_forget(struct mpdev *dev);

/* config_shadow.c */
void config_shadow_record(struct mpdev *dev, uint64_t offset, const void *data, uint32_t size);
void config_shadow_clear(struct config_shadow *s);
void config_shadow_free(struct config_shadow *s);
/* Writes the shadow back in a safe order; *bytes gets how many bytes were written. */
int config_shadow_replay(struct mpdev *dev, uint32_t *bytes);

#endif

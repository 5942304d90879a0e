/*
 * libmpdev — the VMM side of mpdev.
 *
 * A VMM (or mpdev-proxy) uses this library to drive a device served by an
 * mpdev-remote daemon over a SOCK_SEQPACKET Unix socket: handshake, device
 * info, region (BAR and config space) access and reset, guest memory,
 * interrupts, and reconnecting to a restarted remote (mpdev_reconnect).
 *
 * Conventions:
 *  - Every function returns 0 (or a documented non-negative value) on
 *    success and a negative errno on failure. mpdev_last_error() then says
 *    why in words — the remote's own message when the remote refused.
 *  - Every wait is bounded by the handle's timeout (mpdev_options.timeout_ms);
 *    a remote that does not answer in time gives -ETIMEDOUT.
 *  - A handle is not thread-safe; use one per thread or lock around it.
 *  - Event loops: mpdev_fd() becomes readable when the remote sends something
 *    unasked (a notification, or the error of a posted write); call
 *    mpdev_process_events() then. Blocking calls process such messages too.
 *  - Data is little-endian, as on the PCI bus.
 *  - No privilege is needed; connecting as root prints a warning (once).
 */
#ifndef LIBMPDEV_H
#define LIBMPDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MPDEV_API __attribute__((visibility("default")))

/* Region indexes (VFIO's PCI numbering). */
enum mpdev_region {
	MPDEV_REGION_BAR0 = 0,
	MPDEV_REGION_BAR1,
	MPDEV_REGION_BAR2,
	MPDEV_REGION_BAR3,
	MPDEV_REGION_BAR4,
	MPDEV_REGION_BAR5,
	MPDEV_REGION_ROM,
	MPDEV_REGION_CONFIG,
	MPDEV_REGION_VGA,
	MPDEV_NUM_REGIONS,
};

#define MPDEV_REGION_FLAG_READ	   0x1u
#define MPDEV_REGION_FLAG_WRITE	   0x2u
#define MPDEV_REGION_FLAG_MMAP	   0x4u
#define MPDEV_REGION_FLAG_IO	   0x8u
#define MPDEV_REGION_FLAG_MEM64	   0x10u
#define MPDEV_REGION_FLAG_PREFETCH 0x20u

enum mpdev_irq {
	MPDEV_IRQ_INTX = 0,
	MPDEV_IRQ_MSI,
	MPDEV_IRQ_MSIX,
	MPDEV_IRQ_ERR,
	MPDEV_IRQ_REQ,
	MPDEV_NUM_IRQS,
};

#define MPDEV_IRQ_FLAG_EVENTFD	  0x1u
#define MPDEV_IRQ_FLAG_MASKABLE	  0x2u
#define MPDEV_IRQ_FLAG_AUTOMASKED 0x4u
#define MPDEV_IRQ_FLAG_NORESIZE	  0x8u

/* Feature bits (negotiated in the handshake). */
#define MPDEV_FEATURE_POSTED_WRITES  (1ull << 0)
#define MPDEV_FEATURE_MEMORY_TABLE   (1ull << 1)
#define MPDEV_FEATURE_INTX_IRQFD     (1ull << 2)
#define MPDEV_FEATURE_SET_IRQS	     (1ull << 3)
#define MPDEV_FEATURE_IOMMU_INFO     (1ull << 4)
#define MPDEV_FEATURE_MIGRATION	     (1ull << 5)
#define MPDEV_FEATURE_DIRTY_TRACKING (1ull << 6)
#define MPDEV_FEATURE_STATS	     (1ull << 7)
#define MPDEV_FEATURE_IOEVENTFDS     (1ull << 8)
#define MPDEV_FEATURE_FIXED_ACCESS   (1ull << 9)
#define MPDEV_FEATURE_SHM_RING	     (1ull << 10)

/* Notification types (mpdev_options.on_notify). */
enum mpdev_notify_type {
	MPDEV_NOTIFY_PROTOCOL_ERROR = 1, /* the remote could not decode something we sent */
	MPDEV_NOTIFY_DEVICE_ERROR = 2,
	MPDEV_NOTIFY_REQUEST_DEVICE = 3, /* the host wants the device back */
	MPDEV_NOTIFY_SHUTDOWN = 4,
	MPDEV_NOTIFY_BUSY = 5,		    /* another proxy holds the remote */
	MPDEV_NOTIFY_ACCESS_DENIED = 6,	    /* we are not on the remote's allow list */
	MPDEV_NOTIFY_HANDSHAKE_TIMEOUT = 7, /* we did not send hello in time: dropped */
	/*
	 * From libmpdev itself, never on the wire: the handle reconnected to a
	 * restarted remote and replayed its state (mpdev_reconnect). status is
	 * 0; message says after how long and what was replayed.
	 */
	MPDEV_NOTIFY_RESTARTED = 64,
};

#define MPDEV_MAX_MMAP_AREAS 8

struct mpdev_region_info {
	uint32_t flags; /* MPDEV_REGION_FLAG_*; 0 with size 0: the device has no such region */
	uint64_t size;
	uint32_t n_mmap_areas;
	struct {
		uint64_t offset;
		uint64_t size;
	} mmap_areas[MPDEV_MAX_MMAP_AREAS];
	uint32_t type, subtype; /* VFIO device-specific region type */
};

struct mpdev_irq_info {
	uint32_t count; /* 0: the device has no such IRQ index */
	uint32_t flags; /* MPDEV_IRQ_FLAG_* */
};

struct mpdev_device_info {
	char name[64]; /* backend and model, e.g. "emu:edu" */
	uint16_t vendor_id, device_id;
	uint16_t subsystem_vendor_id, subsystem_id;
	uint32_t class_code; /* base << 16 | sub << 8 | prog-if */
	uint8_t revision;
	bool reset_supported;
	struct mpdev_region_info regions[MPDEV_NUM_REGIONS]; /* indexed by enum mpdev_region */
	struct mpdev_irq_info irqs[MPDEV_NUM_IRQS];	     /* indexed by enum mpdev_irq */
	uint32_t migration_flags; /* MPDEV_MIG_FLAG_*: what migration the device supports */
};

struct mpdev_options {
	int timeout_ms;		 /* per request; 0 means 5000 */
	const char *client_name; /* shown in the remote's log; NULL means "libmpdev" */
	/*
	 * Features to ask for; 0 means all this library knows but
	 * MPDEV_FEATURE_SHM_RING, which is asked for only by name.
	 */
	uint64_t features;
	/* Called for each notification the remote sends (may be NULL). */
	void (*on_notify)(void *opaque, enum mpdev_notify_type type, int status,
			  const char *message);
	void *opaque;
	/*
	 * Remote restarts (see mpdev_reconnect). Fields are only ever appended
	 * to this struct: zero-initialise it, and new ones keep their defaults.
	 */
	int reconnect_timeout_ms; /* mpdev_reconnect's whole wait; 0 means 10000 */
	/*
	 * For a handle made by mpdev_connect_fd(): returns a new connected
	 * SOCK_SEQPACKET socket to the restarted remote (the handle owns it),
	 * or a negative errno (-1 with errno set will do). Called once per
	 * attempt, with opaque. NULL: such a handle cannot reconnect.
	 */
	int (*reconnect_fd)(void *opaque);
	/* Reconnect inside a call whose connection died (see mpdev_reconnect). */
	bool auto_reconnect;
};

struct mpdev;

/*
 * Connects to the remote listening at path and performs the handshake.
 * opts may be NULL for defaults. A handle that can reconnect (this one, or
 * one of mpdev_connect_fd() with reconnect_fd) also reads the device info
 * once, to recognise the device after a restart.
 */
MPDEV_API int mpdev_connect(const char *path, const struct mpdev_options *opts, struct mpdev **out);

/*
 * Same over an already-connected SOCK_SEQPACKET socket (e.g. one end of a
 * socketpair). The handle owns fd from then on, also when this fails (fd is
 * closed then).
 */
MPDEV_API int mpdev_connect_fd(int fd, const struct mpdev_options *opts, struct mpdev **out);

/* Why the last mpdev_connect*() on this thread failed. */
MPDEV_API const char *mpdev_connect_error(void);

/* Closes the connection and frees the handle; NULL is fine. */
MPDEV_API void mpdev_close(struct mpdev *dev);

/* Why the last call on this handle failed ("" if it did not). */
MPDEV_API const char *mpdev_last_error(const struct mpdev *dev);

/* Features both sides agreed on (MPDEV_FEATURE_*). */
MPDEV_API uint64_t mpdev_features(const struct mpdev *dev);

/*
 * The socket, for an event loop: readable when mpdev_process_events() has
 * work. A reconnect replaces it (the number may change): register the new
 * one after MPDEV_NOTIFY_RESTARTED or a successful mpdev_reconnect(). -1
 * while a failed reconnect left the handle without a connection.
 */
MPDEV_API int mpdev_fd(const struct mpdev *dev);

/*
 * Handles whatever the remote sent unasked, without blocking. Returns the
 * number of messages handled, or a negative errno (-EPIPE: remote gone;
 * with auto_reconnect it reconnects first, and returns what the new
 * connection had queued).
 */
MPDEV_API int mpdev_process_events(struct mpdev *dev);

MPDEV_API int mpdev_get_device_info(struct mpdev *dev, struct mpdev_device_info *info);

/*
 * Region access of size 1, 2, 4 or 8 bytes at offset. The remote checks
 * bounds and flags: -ERANGE outside the region, -EINVAL for a bad width or
 * missing region, -EACCES for a read-only/write-only one.
 */
MPDEV_API int mpdev_region_read(struct mpdev *dev, uint32_t region, uint64_t offset, void *data,
				uint32_t size);
MPDEV_API int mpdev_region_write(struct mpdev *dev, uint32_t region, uint64_t offset,
				 const void *data, uint32_t size);

/*
 * A posted write, like a PCI posted write: sent without waiting. Ordering
 * with later requests is kept. A failure is reported by the next
 * mpdev_sync() (or to a later call's mpdev_process_events()). Config space
 * writes are sent as requests, as PCI config writes are non-posted: they
 * wait, and only those the remote accepted are kept for replay.
 */
MPDEV_API int mpdev_region_write_posted(struct mpdev *dev, uint32_t region, uint64_t offset,
					const void *data, uint32_t size);

/*
 * Waits until the remote has processed everything sent so far. Returns
 * -EIO if any posted write failed since the last sync (mpdev_last_error()
 * gives the first failure and how many there were), and also if posted
 * writes were lost: sent to a remote that died before confirming them,
 * and not replayed into its successor (mpdev_last_error() says how many).
 */
MPDEV_API int mpdev_sync(struct mpdev *dev);

/* Config-space shorthands: value in host order, size 1, 2 or 4. */
MPDEV_API int mpdev_config_read(struct mpdev *dev, uint32_t offset, uint32_t size, uint32_t *value);
MPDEV_API int mpdev_config_write(struct mpdev *dev, uint32_t offset, uint32_t size, uint32_t value);

/* Device reset; -ENOTTY if the device cannot be reset. */
MPDEV_API int mpdev_reset(struct mpdev *dev);

/*
 * Guest memory. The remote sees guest memory only as the regions given here:
 * each is [gpa, gpa + size) of guest-physical space backed by fd at
 * fd_offset. The remote accepts only memfds sealed with F_SEAL_SHRINK (so
 * that nobody can truncate memory under it), opened read-write unless the
 * region is read-only; gpa, size and fd_offset are page-aligned; regions
 * do not overlap; at most the remote's limit (1024) of them.
 *
 * libmpdev keeps its own duplicate of every fd it sent (one per backing
 * file, shared by the regions carved from it) and the table it describes, so
 * the caller may close its fds after the call, and the table can be replayed
 * into a restarted remote.
 */
struct mpdev_mem_region {
	uint64_t gpa;
	uint64_t size;
	int fd;
	uint64_t fd_offset;
	bool read_only;
};

/*
 * Replaces the whole table (n may be 0 to clear it). The remote maps and
 * unmaps only the difference; on failure the previous table stays in force
 * on both sides. Large tables are sent in several messages transparently.
 */
MPDEV_API int mpdev_mem_set_table(struct mpdev *dev, const struct mpdev_mem_region *regions,
				  size_t n);

/* Adds one region; -EEXIST if it overlaps one already there. */
MPDEV_API int mpdev_mem_add(struct mpdev *dev, const struct mpdev_mem_region *region);

/* Removes the region that is exactly [gpa, gpa + size). */
MPDEV_API int mpdev_mem_remove(struct mpdev *dev, uint64_t gpa, uint64_t size);

/*
 * The table as libmpdev last had it accepted: copies up to max entries into
 * out (whose fds are the library's own: do not close them; regions backed by
 * the same file share one) and returns the number of regions.
 */
MPDEV_API size_t mpdev_mem_get_table(const struct mpdev *dev, struct mpdev_mem_region *out,
				     size_t max);

/*
 * Interrupts.
 *
 * INTx: the remote's IOHUB asserts a line by writing irqfd (a KVM irqfd
 * registered with KVM_IRQFD_FLAG_RESAMPLE) and, when KVM writes resamplefd
 * on the guest's EOI, signals irqfd again while the device still holds the
 * line. pin is the device's INTx pin (0 = INTA ... 3 = INTD), pirq the
 * remote's IOHUB line it is routed to (0-31; pins of several devices may
 * share one). irqfd -1 removes the pin's routing; resamplefd may be -1 for a
 * consumer without resample. Both must be eventfds, and distinct from every
 * other eventfd given to the remote (an eventfd the remote writes must not
 * be one that wakes it). libmpdev keeps its own duplicates for replay; the
 * caller keeps its fds.
 *
 * The remote leaves the eventfds' file flags alone (they belong to the open
 * file, which the caller's descriptors share) and never blocks on them
 * whatever they are: it signals through the kernel's eventfd_signal() and
 * drains with RWF_NOWAIT (docs/protocol.md, "Eventfds"). A counter the
 * caller lets fill stays readable; the edge is not lost.
 */
MPDEV_API int mpdev_set_intx_irqfd(struct mpdev *dev, unsigned pin, unsigned pirq, int irqfd,
				   int resamplefd);

/* VFIO_DEVICE_SET_IRQS actions. */
enum mpdev_irq_action {
	MPDEV_IRQ_ACTION_TRIGGER = 0,
	MPDEV_IRQ_ACTION_MASK = 1,
	MPDEV_IRQ_ACTION_UNMASK = 2,
};

/*
 * VFIO-style SET_IRQS, one call per data type. index is enum mpdev_irq.
 *  - eventfd: TRIGGER assigns fds[i] as the trigger of vector start+i (-1
 *    de-assigns); for INTx, UNMASK assigns the unmask eventfd (fds[0]).
 *    Ranges wider than a packet's fd limit are split transparently.
 *  - bool: the action applies to vectors whose values[i] is true.
 *  - none: the action applies to all vectors in [start, start+count).
 * INTx triggers are automasked as VFIO's: signalled once when the line rises,
 * quiet until unmasked. A masked MSI/MSI-X vector keeps its message pending
 * and sends it on unmask.
 */
MPDEV_API int mpdev_set_irqs_eventfd(struct mpdev *dev, unsigned index, unsigned action,
				     unsigned start, unsigned count, const int *fds);
MPDEV_API int mpdev_set_irqs_bool(struct mpdev *dev, unsigned index, unsigned action,
				  unsigned start, unsigned count, const bool *values);
MPDEV_API int mpdev_set_irqs_none(struct mpdev *dev, unsigned index, unsigned action,
				  unsigned start, unsigned count);
/* Disables an IRQ index entirely (SET_IRQS with count 0); its eventfds are dropped. */
MPDEV_API int mpdev_irq_disable(struct mpdev *dev, unsigned index);

/*
 * Doorbells (MPDEV_FEATURE_IOEVENTFDS): device registers that an eventfd
 * can stand for, such as a virtqueue's notify address, so that a guest's
 * write wakes the remote without a message (hand the eventfd to KVM with
 * KVM_IOEVENTFD, or signal it yourself). Signalling out[i].fd is a write of
 * out[i].size bytes of out[i].data at out[i].offset of the region; with
 * datamatch, route only writes of exactly data to it (KVM's
 * KVM_IOEVENTFD_FLAG_DATAMATCH), without it every write of size bytes
 * there. Signals the remote has not read yet count as one write: a
 * doorbell says "look again", not how often.
 *
 * mpdev_get_ioeventfds() fills at most max entries of region's doorbells
 * into out and sets *n to how many it filled; it returns 0, or a negative
 * errno: -EINVAL for a region the device lacks, -ENOTSUP without the
 * feature. A region without doorbells gives *n = 0. Each out[i].fd is the
 * caller's own (close it when done, also the ones past what it uses); the
 * remote's end stays valid for the connection's life, across mpdev_reset(),
 * and goes with the connection: after a disconnect (or a reconnect to a
 * restarted remote) a kept eventfd rings nothing; ask again. Doorbells past
 * max (or past what one reply carries, 64) are not given: their writes go
 * by message as before, which is always correct.
 */
struct mpdev_ioeventfd {
	uint64_t offset;
	uint32_t size; /* 1, 2, 4 or 8 */
	bool datamatch;
	uint64_t data;
	int fd;
};

MPDEV_API int mpdev_get_ioeventfds(struct mpdev *dev, uint32_t region, struct mpdev_ioeventfd *out,
				   unsigned max, unsigned *n);

/*
 * The polled shared-memory ring (MPDEV_FEATURE_SHM_RING, docs/protocol.md
 * 5.13): BAR (not config space) reads, writes and posted writes go through
 * memory shared with the remote, which polls it, instead of the socket.
 * Opt-in: it costs the remote a CPU while it polls (spin_us after the last
 * access, then it sleeps until the next access wakes it by a message).
 *
 * mpdev_ring_enable() needs MPDEV_FEATURE_SHM_RING and
 * MPDEV_FEATURE_POSTED_WRITES negotiated: name both in
 * mpdev_options.features at connect (-ENOTSUP otherwise). slots: a power of
 * two from 64 to 1024, 0 for 256; spin_us: how long the remote polls an
 * idle ring, 0 for its default (100), at most 10000. From then on:
 *  - mpdev_region_read/write wait for their answer by spinning briefly,
 *    then yielding, up to the handle's timeout (-ETIMEDOUT);
 *  - posted writes wait only for a free slot; their failures are reported
 *    by mpdev_sync() like the socket's, and mpdev_sync() waits for the ring
 *    to drain;
 *  - every socket request first waits for the ring to drain, so ring and
 *    socket accesses stay in program order;
 *  - a ring the remote found corrupt (BROKEN) fails every access with
 *    -EPROTO, mpdev_last_error() saying why; mpdev_ring_disable() and the
 *    socket serve on;
 *  - a reconnect to a restarted remote drops the ring: accesses go to the
 *    socket again (call mpdev_ring_enable() again to have one).
 * A second mpdev_ring_enable() fails with -EBUSY. mpdev_ring_disable()
 * drains the ring and goes back to the socket (0; also without a ring).
 */
MPDEV_API int mpdev_ring_enable(struct mpdev *dev, unsigned slots, unsigned spin_us);
MPDEV_API int mpdev_ring_disable(struct mpdev *dev);

/*
 * Remote restarts.
 *
 * When the remote dies, every call fails with -EPIPE ("remote closed the
 * connection"). mpdev_reconnect() then reaches the restarted remote: the
 * same path for a handle of mpdev_connect(), a socket from
 * mpdev_options.reconnect_fd for one of mpdev_connect_fd(). It retries,
 * backing off from 10 to 250 ms, while nobody listens there, the remote is
 * still busy with the old connection, or the connection fails again, for
 * at most mpdev_options.reconnect_timeout_ms (default 10 s) in all. Each
 * attempt greets at once (Hello with resume set and the features in use)
 * and then checks and replays, in this order:
 *  1. the restarted remote offers every feature in use, else -ENOTSUP;
 *  2. it serves the same device: ids, class, revision, each region's size
 *     and flags, each IRQ index's count, as read when connecting; else
 *     -ENODEV (and nothing is replayed);
 *  3. the memory table as kept (mpdev_mem_get_table);
 *  4. config space: every byte written through mpdev_config_write(),
 *     mpdev_region_write() or mpdev_region_write_posted() to
 *     MPDEV_REGION_CONFIG that the remote accepted since the last
 *     mpdev_reset(): BARs and the ROM BAR first, then the rest of the
 *     header and the capabilities, then MSI/MSI-X message control, the
 *     command register last. Never the status register, PCI Express and
 *     AER status registers (write-1-to-clear) or BIST;
 *  5. INTx routing: each pin's irqfd/resamplefd pair. A pin whose PIRQ's
 *     pair was later replaced through another pin is not routed again (the
 *     remote takes an eventfd once): set it again;
 *  6. SET_IRQS: trigger eventfds of every index and vector, the INTx unmask
 *     eventfd, then the masks set by MASK/UNMASK calls (installing an INTx
 *     trigger unmasks INTx, so masks come last). The INTx automask of a
 *     signal already sent is not replayed: INTx comes back unmasked.
 * Not replayed: the device's own state. An emulated device's registers are
 * reset, and the remote tells the guest through the device (edu sets
 * Signaled System Error in the PCI status register); a VFIO device is
 * opened afresh, which resets it. Posted writes the dead remote had not
 * confirmed are lost: the next mpdev_sync() reports them.
 *
 * Returns 0 with every step done. Otherwise the handle stays dead with the
 * error (every call fails with it, mpdev_last_error() says why; call
 * mpdev_reconnect() again to retry): -ETIMEDOUT no remote answered within
 * the time, -ENOTCONN a handle of mpdev_connect_fd() without reconnect_fd,
 * -ENOTSUP, -ENODEV as above, -EPROTONOSUPPORT or -EACCES as for
 * mpdev_connect(), or the errno the remote gave for a replayed request.
 * On a live connection it closes that first (the remote then resets the
 * device). Calls on_notify with MPDEV_NOTIFY_RESTARTED on success.
 *
 * mpdev_options.auto_reconnect: a call that finds its connection gone
 * (-EPIPE) calls mpdev_reconnect() itself, once, and then
 *  - runs again if it is idempotent: mpdev_get_device_info(),
 *    mpdev_get_iommu_info(), mpdev_get_stats(), mpdev_sync(), config space
 *    access (mpdev_config_*, mpdev_region_* on MPDEV_REGION_CONFIG; a
 *    config write goes again with zeroes for the status register's bytes,
 *    which are write-1-to-clear: the new device's Signaled System Error
 *    stays set), the memory table and interrupt calls, mpdev_reset(); it
 *    returns what the second run returns;
 *  - fails with -ECONNRESET if it is a region access to anything but
 *    config space, posted or not: it is not sent again, since a BAR access
 *    may have side effects and the device was reset; mpdev_last_error()
 *    says so;
 *  - fails with the reconnect's error if that failed; later calls then fail
 *    at once without trying again.
 * Either way MPDEV_NOTIFY_RESTARTED tells the caller that a restart
 * happened. Without auto_reconnect nothing reconnects by itself.
 */
MPDEV_API int mpdev_reconnect(struct mpdev *dev);

struct mpdev_replay_info {
	uint64_t restarts; /* successful reconnects over the handle's life */
	/* The last successful reconnect: */
	uint32_t attempts;     /* connection attempts it took */
	uint32_t duration_ms;  /* from mpdev_reconnect's start to the end of the replay */
	uint32_t mem_regions;  /* memory table regions */
	uint32_t config_bytes; /* config space bytes written back */
	uint32_t intx_pairs;   /* INTx pins routed */
	uint32_t irq_eventfds; /* SET_IRQS trigger and unmask eventfds */
	uint32_t irq_masks;    /* masked vectors */
	uint64_t posted_lost;  /* posted writes the dead remote never confirmed (also in mpdev_sync)
				*/
};

/* What the reconnects did so far; -EINVAL for NULL. */
MPDEV_API int mpdev_get_replay_info(const struct mpdev *dev, struct mpdev_replay_info *info);

/* IOMMU facts (mpdev_get_iommu_info). */
enum mpdev_iommu_kind {
	MPDEV_IOMMU_NONE = 0,
	MPDEV_IOMMU_EMULATED = 1, /* an emulated device: the remote's own bounds checks */
	MPDEV_IOMMU_TYPE1 = 2,	  /* VFIO legacy container, TYPE1v2 */
	MPDEV_IOMMU_IOMMUFD = 3,
};

#define MPDEV_MAX_IOVA_RANGES 32

struct mpdev_iommu_info {
	uint32_t kind; /* enum mpdev_iommu_kind */
	uint64_t pgsize_bitmap;
	size_t n_ranges; /* usable IOVA (guest-physical) ranges for memory regions */
	struct {
		uint64_t start, last; /* inclusive */
	} ranges[MPDEV_MAX_IOVA_RANGES];
	uint32_t dma_avail;	/* further regions the remote and its IOMMU accept */
	uint32_t mappings_used; /* regions mapped now */
	bool dirty_tracking;
};

/* What the remote's IOMMU accepts: a VMM checks its memory layout against it. */
MPDEV_API int mpdev_get_iommu_info(struct mpdev *dev, struct mpdev_iommu_info *info);

/*
 * Migration, on VFIO's v2 state machine (linux/vfio.h), for every backend.
 *
 * States are numbered as VFIO's. What a device supports is in
 * mpdev_device_info.migration_flags: STOP_COPY (STOP, STOP_COPY,
 * RESUMING), P2P (RUNNING_P2P, and PRE_COPY_P2P with PRE_COPY), PRE_COPY.
 * A requested state is reached through the kernel's arcs, one at a time,
 * on the shortest path that does not pass through a saving state (STOP_COPY,
 * PRE_COPY, PRE_COPY_P2P) on the way, as vfio_mig_get_next_state() does;
 * STOP_COPY -> PRE_COPY(_P2P) is refused (-EINVAL), ERROR cannot be
 * requested, and a device in ERROR leaves it only through mpdev_reset().
 * docs/protocol.md, "Migration", has the states, the stream and the errors.
 */
enum mpdev_mig_state {
	MPDEV_MIG_ERROR = 0,
	MPDEV_MIG_STOP = 1,
	MPDEV_MIG_RUNNING = 2,
	MPDEV_MIG_STOP_COPY = 3,
	MPDEV_MIG_RESUMING = 4,
	MPDEV_MIG_RUNNING_P2P = 5,
	MPDEV_MIG_PRE_COPY = 6,
	MPDEV_MIG_PRE_COPY_P2P = 7,
};

#define MPDEV_MIG_FLAG_STOP_COPY 0x1u
#define MPDEV_MIG_FLAG_P2P	 0x2u
#define MPDEV_MIG_FLAG_PRE_COPY	 0x4u

/* "RUNNING_P2P" etc.; "?" for a number that is no state. */
MPDEV_API const char *mpdev_mig_state_name(unsigned state);

/*
 * Moves the device to state. *reached (may be NULL) is the state the device
 * is in afterwards, also on failure: a step that failed leaves it where the
 * last successful arc took it (or in ERROR), and mpdev_last_error() names
 * the arc that failed. -ENOTSUP: the device does not support the state (or
 * migration at all), -EINVAL: no such state or a refused transition.
 */
MPDEV_API int mpdev_mig_set_state(struct mpdev *dev, enum mpdev_mig_state state,
				  enum mpdev_mig_state *reached);
MPDEV_API int mpdev_mig_get_state(struct mpdev *dev, enum mpdev_mig_state *state);

/*
 * The device state stream. In a saving state, mpdev_mig_read() copies the
 * next bytes into buf and returns how many (at most len); 0 means no more
 * now: the end of the stream in STOP_COPY, the end of what is ready in
 * PRE_COPY(_P2P). In RESUMING, mpdev_mig_write() gives the target the same
 * bytes, in order, in any segmentation. The stream is opaque to the VMM.
 */
MPDEV_API int mpdev_mig_read(struct mpdev *dev, void *buf, size_t len);
MPDEV_API int mpdev_mig_write(struct mpdev *dev, const void *buf, size_t len);

/* PRE_COPY(_P2P) only: VFIO_MIG_GET_PRECOPY_INFO's estimates. */
MPDEV_API int mpdev_mig_precopy_info(struct mpdev *dev, uint64_t *initial_bytes,
				     uint64_t *dirty_bytes);

/*
 * Several devices of one VM. Going to a stopped state (STOP, STOP_COPY,
 * RESUMING), every device that supports P2P is first moved to RUNNING_P2P
 * (or PRE_COPY_P2P from PRE_COPY) before any device goes further; coming
 * back to RUNNING (or PRE_COPY), every device reaches RUNNING_P2P first. A
 * device in the set without P2P is refused (-ENOTSUP, nothing moved) when
 * the set has more than one device: it could DMA into a stopped peer.
 * If a device fails, the devices already moved are brought back to where
 * they started (best effort) and the error is the failed device's;
 * *failed (may be NULL) is its index, or -1. on_step (may be NULL) is
 * called after every device's every call, for logs and tests.
 */
struct mpdev_mig_set_options {
	void (*on_step)(void *opaque, size_t index, enum mpdev_mig_state from,
			enum mpdev_mig_state to, int result);
	void *opaque;
};
MPDEV_API int mpdev_mig_set_state_all(struct mpdev *const *devs, size_t n,
				      enum mpdev_mig_state state,
				      const struct mpdev_mig_set_options *opts, long *failed);

/*
 * Dirty tracking: which guest pages the device wrote. For an emulated
 * device the remote sees every write it makes through the memory table;
 * for a VFIO device it is what the kernel offers (mpdev_iommu_info says;
 * type1 reports every pinned page). ranges are guest-physical, page_size
 * a power of two of at least 4096 that mpdev_iommu_info.pgsize_bitmap
 * allows. mpdev_dirty_report() fills bitmap (len bytes, one bit per page
 * of [iova, iova + size), bit n % 8 of byte n / 8 for page n — VFIO's
 * layout) and clears what it reported: a page written between two reports
 * is reported once. [iova, iova + size) lies within one started range.
 * Started ranges are not replayed into a restarted remote (its bits are
 * lost): after a reconnect, mpdev_dirty_report() fails with -ESTALE until
 * tracking is stopped and started again.
 */
struct mpdev_dirty_range {
	uint64_t iova, size;
};
MPDEV_API int mpdev_dirty_start(struct mpdev *dev, const struct mpdev_dirty_range *ranges, size_t n,
				uint64_t page_size);
MPDEV_API int mpdev_dirty_report(struct mpdev *dev, uint64_t iova, uint64_t size,
				 uint64_t page_size, uint8_t *bitmap, size_t len);
MPDEV_API int mpdev_dirty_stop(struct mpdev *dev);

/*
 * The remote's counters. Calls fn once per counter; returns the number of
 * counters or a negative errno.
 */
MPDEV_API int mpdev_get_stats(struct mpdev *dev,
			      void (*fn)(void *opaque, const char *name, uint64_t value),
			      void *opaque);

#ifdef __cplusplus
}
#endif

#endif

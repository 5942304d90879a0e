/*
 * VFIO migration v2 (include/uapi/linux/vfio.h, drivers/vfio/vfio_main.c).
 *
 * Kernel facts relied on:
 * - VFIO_DEVICE_FEATURE answers ENOTTY for a feature the device lacks
 *   (no mig_ops / log_ops); GET of MIGRATION gives VFIO_MIGRATION_* flags.
 * - SET of MIG_DEVICE_STATE accepts any target and walks the FSM itself
 *   (vfio_mig_get_next_state); we only ever ask for the next state, so the
 *   driver sees exactly the arc we mean. On failure the device may be
 *   anywhere on the way, or in ERROR: GET says where.
 * - The arc that starts a session returns a new data_fd; others return -1.
 *   PRE_COPY_P2P -> STOP_COPY may return -1 and keep the PRE_COPY stream
 *   going (mtty does): the fd we hold stays the session's.
 * - The stream is read()/write() only (stream_open: pread is ESPIPE). In
 *   PRE_COPY a temporary end of stream is ENOMSG (or 0, as mtty answers);
 *   in STOP_COPY, 0 is the end.
 * - Leaving the session's states, and VFIO_DEVICE_RESET, disable the
 *   driver's file (mtty: reads then fail with ENODEV): closing ours then
 *   only drops the last reference.
 */
#include "vfio_mig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mig_fsm.h"
#include "vfio_mig_uapi.h"

#define COMP "vfio"

/* Data bytes a VFIO_DEVICE_FEATURE argument carries after its header, at most. */
#define FEATURE_DATA_MAX 32

/* The kernel's own FSM: which states a device with these flags has (mig_fsm.c). */
static bool state_supported(const struct vfio_mig *m, enum backend_mig_state s)
{
	return s != BACKEND_MIG_ERROR && mig_fsm_state_supported(s, m->flags);
}

/* The states a data_fd belongs to. */
static bool in_session(enum backend_mig_state s)
{
	return mig_fsm_is_saving(s) || s == BACKEND_MIG_RESUMING;
}

static int feature(struct vfio_mig *m, uint32_t flags, void *data, size_t len)
{
	/* The header's data[] is a flexible array: the argument is built in a buffer. */
	uint64_t buf[(sizeof(struct vfio_device_feature) + FEATURE_DATA_MAX) / 8] = { 0 };
	struct vfio_device_feature *f = (struct vfio_device_feature *)buf;
	int r;

	if (len > FEATURE_DATA_MAX)
		return -EINVAL;
	f->argsz = (uint32_t)(sizeof(*f) + len);
	f->flags = flags;
	if (len)
		memcpy(f->data, data, len);
	r = m->sys->ioctl(m->sys->opaque, m->device_fd, VFIO_DEVICE_FEATURE, f);
	if (r < 0)
		return -errno;
	if (len)
		memcpy(data, f->data, len);
	return r;
}

static void close_data_fd(struct vfio_mig *m)
{
	if (m->data_fd < 0)
		return;
	m->sys->close(m->sys->opaque, m->data_fd);
	m->data_fd = -1;
}

int vfio_mig_get_state(struct vfio_mig *m, enum backend_mig_state *state, struct mpdev_error *err)
{
	struct vfio_device_feature_mig_state st = { .data_fd = -1 };
	int r;

	if (!m->flags)
		return mpdev_error_set(err, ENOTSUP, "%s does not support migration", m->name);
	r = feature(m, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st,
		    sizeof(st));
	if (r < 0)
		return mpdev_error_set(err, -r, "VFIO_DEVICE_FEATURE GET MIG_DEVICE_STATE: %s",
				       strerror(-r));
	if (st.device_state >= BACKEND_MIG_NUM_STATES)
		return mpdev_error_set(err, EPROTO, "the kernel reports migration state %u",
				       st.device_state);
	*state = (enum backend_mig_state)st.device_state;
	m->state = *state;
	return 0;
}

/* VFIO_DEVICE_FEATURE_PROBE of DMA_LOGGING_START: 0 where the device has log_ops. */
static void probe_dma_logging(struct vfio_mig *m)
{
	int r = feature(m,
			VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
				VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
			NULL, 0);

	m->dma_logging = r >= 0;
	log_info(COMP, "%s: device DMA logging %s", m->name,
		 r >= 0		? "supported (VFIO_DEVICE_FEATURE_DMA_LOGGING_START probe)"
		 : r == -ENOTTY ? "absent (ENOTTY)"
				: strerror(-r));
}

int vfio_mig_init(struct vfio_mig *m, const struct vfio_sys *sys, int device_fd, const char *name,
		  struct mpdev_error *err)
{
	struct vfio_device_feature_migration mig = { 0 };
	struct vfio_device_feature_mig_data_size size = { 0 };
	enum backend_mig_state st;
	int r;

	memset(m, 0, sizeof(*m));
	m->sys = sys;
	m->device_fd = device_fd;
	m->name = name;
	m->data_fd = -1;
	m->state = BACKEND_MIG_RUNNING;
	probe_dma_logging(m);
	r = feature(m, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, &mig, sizeof(mig));
	if (r == -ENOTTY || r == -EINVAL) {
		/* ENOTTY: no mig_ops; EINVAL: a kernel before the v2 feature. */
		log_info(COMP, "%s: no migration (VFIO_DEVICE_FEATURE_MIGRATION: %s)", name,
			 strerror(-r));
		return 0;
	}
	if (r < 0)
		return mpdev_error_set(err, -r, "VFIO_DEVICE_FEATURE GET MIGRATION: %s",
				       strerror(-r));
	/* Only the bits we know; STOP_COPY is the mandatory base (vfio.h). */
	m->flags = (uint32_t)mig.flags &
		   (BACKEND_MIG_FLAG_STOP_COPY | BACKEND_MIG_FLAG_P2P | BACKEND_MIG_FLAG_PRE_COPY);
	if (!(m->flags & BACKEND_MIG_FLAG_STOP_COPY)) {
		log_warn(COMP, "%s: migration flags 0x%llx lack STOP_COPY; not migratable", name,
			 (unsigned long long)mig.flags);
		m->flags = 0;
		return 0;
	}
	r = vfio_mig_get_state(m, &st, err);
	if (r < 0) {
		m->flags = 0;
		return r;
	}
	/* 6.2+; an estimate the VMM may use to size its downtime. */
	if (feature(m, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, &size,
		    sizeof(size)) >= 0)
		m->stop_copy_length = size.stop_copy_length;
	log_info(COMP, "%s: migration flags 0x%x (%s%s%s), state %s, stop-copy size %llu bytes",
		 name, m->flags, "STOP_COPY", m->flags & BACKEND_MIG_FLAG_P2P ? " P2P" : "",
		 m->flags & BACKEND_MIG_FLAG_PRE_COPY ? " PRE_COPY" : "", mig_fsm_state_name(st),
		 (unsigned long long)m->stop_copy_length);
	return 0;
}

int vfio_mig_arc(struct vfio_mig *m, enum backend_mig_state from, enum backend_mig_state to,
		 enum backend_mig_state *now, struct mpdev_error *err)
{
	struct vfio_device_feature_mig_state st = { .device_state = to, .data_fd = -1 };
	struct mpdev_error gerr;
	int r, e;

	*now = from;
	if (!m->flags)
		return mpdev_error_set(err, ENOTSUP, "%s does not support migration", m->name);
	if ((unsigned)to >= BACKEND_MIG_NUM_STATES || to == BACKEND_MIG_ERROR ||
	    !state_supported(m, to))
		return mpdev_error_set(err, EINVAL, "%s has no migration state %s", m->name,
				       mig_fsm_state_name(to));
	/*
	 * Never ask the kernel for these: in ERROR, vfio_mig_get_next_state
	 * WARNs; for STOP_COPY -> PRE_COPY(_P2P), a blocked arc, its loop never
	 * ends (6.12: state_flags_table[ERROR] is ~0U, which no device's flags
	 * cover), with the device's state mutex held.
	 */
	if (m->state == BACKEND_MIG_ERROR || from == BACKEND_MIG_ERROR) {
		*now = BACKEND_MIG_ERROR;
		return mpdev_error_set(err, EINVAL, "%s is in ERROR: only a reset leaves it",
				       m->name);
	}
	if (from == BACKEND_MIG_STOP_COPY &&
	    (to == BACKEND_MIG_PRE_COPY || to == BACKEND_MIG_PRE_COPY_P2P))
		return mpdev_error_set(err, EINVAL, "STOP_COPY -> %s is not an arc of the FSM",
				       mig_fsm_state_name(to));
	r = feature(m, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st,
		    sizeof(st));
	if (r >= 0) {
		if (st.data_fd >= 0) {
			/* A new stream supersedes whatever we held (a driver may start afresh). */
			close_data_fd(m);
			m->data_fd = st.data_fd;
			/* The loop must never block in a driver's read or write. */
			fcntl(m->data_fd, F_SETFL, O_NONBLOCK);
		} else if (in_session(to) && !in_session(from)) {
			log_warn(COMP, "%s: %s -> %s returned no data_fd", m->name,
				 mig_fsm_state_name(from), mig_fsm_state_name(to));
		}
		m->state = to;
		*now = to;
		if (!in_session(to))
			close_data_fd(m);
		return 0;
	}
	e = -r;
	/* Where did the kernel leave it? Not knowing is ERROR: it needs a reset. */
	if (vfio_mig_get_state(m, now, &gerr) < 0) {
		log_warn(COMP, "%s: after a failed arc: %s", m->name, gerr.msg);
		*now = BACKEND_MIG_ERROR;
		m->state = BACKEND_MIG_ERROR;
	}
	if (!in_session(*now))
		close_data_fd(m);
	return mpdev_error_set(err, e,
			       "VFIO_DEVICE_FEATURE SET MIG_DEVICE_STATE %s -> %s: %s; "
			       "the device is in %s",
			       mig_fsm_state_name(from), mig_fsm_state_name(to), strerror(e),
			       mig_fsm_state_name(*now));
}

ssize_t vfio_mig_save(struct vfio_mig *m, void *buf, size_t len, struct mpdev_error *err)
{
	ssize_t n;

	if (m->data_fd < 0 || !mig_fsm_is_saving(m->state))
		return mpdev_error_set(err, EBADFD, "%s is not saving (state %s)", m->name,
				       mig_fsm_state_name(m->state));
	do
		n = m->sys->read(m->sys->opaque, m->data_fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	/* PRE_COPY's temporary end of stream; a non-blocking driver with nothing ready. */
	if ((errno == ENOMSG && m->state != BACKEND_MIG_STOP_COPY) || errno == EAGAIN)
		return 0;
	return mpdev_error_set(err, errno, "reading %s's migration stream in %s: %s", m->name,
			       mig_fsm_state_name(m->state), strerror(errno));
}

int vfio_mig_load(struct vfio_mig *m, const void *buf, size_t len, struct mpdev_error *err)
{
	const uint8_t *p = buf;
	size_t done = 0;

	if (m->data_fd < 0 || m->state != BACKEND_MIG_RESUMING)
		return mpdev_error_set(err, EBADFD, "%s is not resuming (state %s)", m->name,
				       mig_fsm_state_name(m->state));
	while (done < len) {
		ssize_t n = m->sys->write(m->sys->opaque, m->data_fd, p + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return mpdev_error_set(err, errno,
					       "%s refused the migration stream at byte %zu of "
					       "this piece: %s",
					       m->name, done, strerror(errno));
		if (n == 0)
			return mpdev_error_set(err, EIO, "%s took no more of the migration stream",
					       m->name);
		done += (size_t)n;
	}
	return 0;
}

int vfio_mig_precopy_info(struct vfio_mig *m, uint64_t *initial_bytes, uint64_t *dirty_bytes,
			  struct mpdev_error *err)
{
	struct vfio_precopy_info info = { .argsz = sizeof(info) };

	if (m->data_fd < 0 ||
	    (m->state != BACKEND_MIG_PRE_COPY && m->state != BACKEND_MIG_PRE_COPY_P2P))
		return mpdev_error_set(err, EINVAL, "%s is not in PRE_COPY (state %s)", m->name,
				       mig_fsm_state_name(m->state));
	if (m->sys->ioctl(m->sys->opaque, m->data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info) < 0)
		return mpdev_error_set(err, errno, "VFIO_MIG_GET_PRECOPY_INFO: %s",
				       strerror(errno));
	*initial_bytes = info.initial_bytes;
	*dirty_bytes = info.dirty_bytes;
	return 0;
}

void vfio_mig_after_reset(struct vfio_mig *m)
{
	enum backend_mig_state st;
	struct mpdev_error err;

	close_data_fd(m);
	if (!m->flags)
		return;
	m->state = BACKEND_MIG_RUNNING;
	if (vfio_mig_get_state(m, &st, &err) < 0)
		log_warn(COMP, "%s: after reset: %s", m->name, err.msg);
	else if (st != BACKEND_MIG_RUNNING)
		log_warn(COMP, "%s: in %s after VFIO_DEVICE_RESET", m->name,
			 mig_fsm_state_name(st));
}

void vfio_mig_release(struct vfio_mig *m)
{
	struct vfio_device_feature_mig_state st = { .device_state = BACKEND_MIG_RUNNING,
						    .data_fd = -1 };
	enum backend_mig_state now;
	struct mpdev_error err;
	int r;

	close_data_fd(m);
	if (m->logging && vfio_mig_log_stop(m, &err) < 0)
		log_warn(COMP, "%s: %s", m->name, err.msg);
	if (!m->flags || m->state == BACKEND_MIG_RUNNING)
		return;
	/*
	 * Cleanup, not the FSM API: one SET to RUNNING lets the kernel walk
	 * the path, so the next proxy finds a running device even where there
	 * is no VFIO_DEVICE_RESET.
	 */
	/* From ERROR the kernel WARNs and refuses: only the reset below leaves it. */
	r = m->state == BACKEND_MIG_ERROR
		    ? -EINVAL
		    : feature(m, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			      &st, sizeof(st));
	if (st.data_fd >= 0)
		m->sys->close(m->sys->opaque, st.data_fd);
	if (r == 0) {
		m->state = BACKEND_MIG_RUNNING;
		return;
	}
	/*
	 * RESUMING with a partial stream cannot reach STOP, ERROR cannot be
	 * left by an arc. The next session
	 * starts from RUNNING, so try VFIO_DEVICE_RESET even where the device
	 * does not advertise it (mtty handles it all the same; vfio-pci says
	 * EINVAL without a reset method), and say where the device is.
	 */
	log_warn(COMP, "%s: returning to RUNNING from %s: %s; trying VFIO_DEVICE_RESET", m->name,
		 mig_fsm_state_name(m->state), strerror(-r));
	if (m->sys->ioctl(m->sys->opaque, m->device_fd, VFIO_DEVICE_RESET, NULL) < 0)
		log_warn(COMP, "%s: VFIO_DEVICE_RESET: %s", m->name, strerror(errno));
	if (vfio_mig_get_state(m, &now, &err) < 0 || now != BACKEND_MIG_RUNNING)
		log_error(COMP, "%s: left in %s: the next proxy will find it there", m->name,
			  mig_fsm_state_name(m->state));
}

void vfio_mig_close(struct vfio_mig *m)
{
	struct mpdev_error err;

	close_data_fd(m);
	if (m->logging && vfio_mig_log_stop(m, &err) < 0)
		log_warn(COMP, "%s: %s", m->name, err.msg);
}

/* --- device DMA logging --- */

/* The kernel takes at most a page of ranges (LOG_MAX_RANGES in vfio_main.c). */
#define LOG_MAX_RANGES (4096 / sizeof(struct vfio_device_feature_dma_logging_range))

int vfio_mig_log_start(struct vfio_mig *m, const struct backend_dirty_range *ranges, size_t n,
		       uint64_t page_size, struct mpdev_error *err)
{
	struct vfio_device_feature_dma_logging_range *kr;
	struct vfio_device_feature_dma_logging_control ctl = { .page_size = page_size };
	int r;

	if (!m->dma_logging)
		return mpdev_error_set(err, ENOTSUP, "%s has no DMA logging", m->name);
	if (!n || n > LOG_MAX_RANGES)
		return mpdev_error_set(err, EINVAL, "DMA logging takes 1 to %zu ranges, not %zu",
				       LOG_MAX_RANGES, n);
	kr = calloc(n, sizeof(*kr));
	if (!kr)
		return mpdev_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		kr[i].iova = ranges[i].iova;
		kr[i].length = ranges[i].size;
	}
	ctl.num_ranges = (uint32_t)n;
	ctl.ranges = (uintptr_t)kr;
	if (m->logging)
		vfio_mig_log_stop(m, NULL);
	r = feature(m, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &ctl,
		    sizeof(ctl));
	free(kr);
	if (r < 0)
		return mpdev_error_set(err, -r,
				       "VFIO_DEVICE_FEATURE DMA_LOGGING_START (%zu ranges, page "
				       "size %llu): %s%s",
				       n, (unsigned long long)page_size, strerror(-r),
				       r == -EINVAL ? " (ranges must be page aligned and disjoint)"
						    : "");
	m->logging = true;
	m->log_page_size = ctl.page_size; /* the driver may round it up */
	if (ctl.page_size != page_size)
		log_info(COMP, "%s: DMA logging granule %llu (asked %llu)", m->name,
			 (unsigned long long)ctl.page_size, (unsigned long long)page_size);
	return 0;
}

int vfio_mig_log_stop(struct vfio_mig *m, struct mpdev_error *err)
{
	int r;

	if (!m->logging)
		return 0;
	r = feature(m, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, NULL, 0);
	m->logging = false;
	if (r < 0)
		return mpdev_error_set(err, -r, "VFIO_DEVICE_FEATURE DMA_LOGGING_STOP: %s",
				       strerror(-r));
	return 0;
}

int vfio_mig_log_report(struct vfio_mig *m, uint64_t iova, uint64_t size, uint64_t page_size,
			uint8_t *bitmap, size_t len, struct mpdev_error *err)
{
	struct vfio_device_feature_dma_logging_report rep = { .iova = iova,
							      .length = size,
							      .page_size = page_size };
	uint64_t pages;
	uint64_t *words;
	size_t bytes;
	int r;

	if (!m->logging)
		return mpdev_error_set(err, EINVAL, "DMA logging is not started");
	if (page_size < 4096 || (page_size & (page_size - 1)) || size % page_size ||
	    iova % page_size)
		return mpdev_error_set(err, EINVAL,
				       "report of [0x%llx, +0x%llx) by %llu-byte pages: a power of "
				       "two of at least 4096 that divides both",
				       (unsigned long long)iova, (unsigned long long)size,
				       (unsigned long long)page_size);
	pages = size / page_size;
	if (len < (pages + 7) / 8)
		return mpdev_error_set(err, EINVAL, "a bitmap of %zu bytes for %llu pages", len,
				       (unsigned long long)pages);
	/* The kernel writes whole u64 words: a buffer of its own, then the caller's bytes. */
	bytes = (size_t)((pages + 63) / 64 * 8);
	words = calloc(1, bytes ? bytes : 8);
	if (!words)
		return mpdev_error_set(err, ENOMEM, "out of memory");
	rep.bitmap = (uintptr_t)words;
	r = feature(m, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, &rep,
		    sizeof(rep));
	if (r >= 0) {
		memset(bitmap, 0, len);
		memcpy(bitmap, words, (pages + 7) / 8);
	}
	free(words);
	if (r < 0)
		return mpdev_error_set(err, -r, "VFIO_DEVICE_FEATURE DMA_LOGGING_REPORT: %s",
				       strerror(-r));
	return 0;
}

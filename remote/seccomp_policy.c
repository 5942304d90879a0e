/*
 * What the remote may do once it serves: the whole allow list, one line of
 * reason each. Review rule: every entry names the code that needs it; a
 * syscall nobody can name goes. The integration tests run the remote with
 * this list installed, so a missing entry fails them (SIGSYS); the sandbox
 * test proves that calls off the list kill the process.
 */
#include "seccomp_policy.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "blk_io.h"
#include "efdio.h"
#include "iommufd_uapi.h"
#include "vfio_mig_uapi.h"

struct allow {
	const char *name;
	const char *reason;
};

/* Allowed with any arguments. */
static const struct allow plain[] = {
	{ "read", "eventfds (irqfd/resample/trigger), libevent's signal pipe" },
	{ "write", "eventfds the remote signals; log lines to stderr" },
	{ "close", "descriptors received from the proxy and released (the closer thread)" },
	{ "recvmsg", "the protocol: one packet, with SCM_RIGHTS descriptors" },
	{ "sendmsg", "the protocol's replies with descriptors; sd_notify status datagrams" },
	{ "sendto", "the protocol's replies without descriptors (send(), no msghdr to copy)" },
	{ "recvmmsg", "the protocol: a burst of posted writes drained in one call" },
	{ "accept4", "the next proxy on a listening socket" },
	{ "getsockopt", "SO_PEERCRED of a new proxy" },
	{ "epoll_wait", "libevent's loop" },
	{ "epoll_pwait", "libevent's loop (glibc may use the p-variant)" },
	{ "epoll_ctl", "libevent: watching new descriptors" },
	{ "poll", "bounded wait for room in a full socket buffer; peer hang-up check" },
	{ "ppoll", "glibc implements poll with ppoll" },
	{ "munmap", "memory table regions going away; malloc" },
	{ "mremap", "malloc/realloc of large blocks" },
	{ "madvise", "malloc returning memory" },
	{ "brk", "malloc" },
	{ "fcntl", "O_NONBLOCK on the connection, F_GET_SEALS / F_GETFL of memory fds" },
	{ "fstat", "type and size of memory fds" },
	{ "newfstatat", "glibc implements fstat with fstatat(AT_EMPTY_PATH)" },
	{ "readlink", "naming a refused descriptor (/proc/self/fd) in the error" },
	{ "readlinkat", "glibc implements readlink with readlinkat" },
	{ "eventfd2", "vfio: the trigger eventfd of routed INTx; the doorbells (doorbell.c)" },
	{ "pread64", "vfio: BAR and config space reads" },
	{ "pwrite64", "vfio: BAR and config space writes" },
	{ "clock_gettime", "libevent's clock, where the vDSO falls back" },
	{ "gettimeofday", "libevent's clock, where the vDSO falls back" },
	{ "getpid", "log lines carry the pid; kcmp needs it" },
	{ "getuid", "the sandbox's own log line; vfio's memlock check" },
	{ "geteuid", "vfio's memlock check (root is exempt)" },
	{ "getgid", "the sandbox's own log line; sd_notify's credentials" },
	{ "getegid", "sd_notify decides whether to pass credentials" },
	{ "prlimit64", "vfio's memlock check reads RLIMIT_MEMLOCK (getrlimit)" },
	{ "getrlimit", "vfio's memlock check on older libcs" },
	{ "rt_sigreturn", "returning from libevent's SIGTERM/SIGINT handler" },
	{ "rt_sigprocmask", "libevent around signal delivery" },
	{ "rt_sigaction", "libevent restores SIGTERM/SIGINT handlers when it exits" },
	{ "futex", "glibc's internal locks (stdio); the closer thread's queue" },
	{ "restart_syscall", "a wait interrupted by a signal resumes" },
	{ "getrandom", "libevent's and glibc's randomness" },
	{ "sysinfo", "glibc's qsort (memory table sets) sizes its buffer by physical memory" },
	{ "preadv2", "draining a peer's eventfd with RWF_NOWAIT (efdio.c)" },
	{ "exit", "leaving; the closer thread ending" },
	{ "exit_group", "leaving" },
};

/* Signalling a peer's eventfd without blocking (common/efdio.h): the chosen method only. */
static const struct allow efdio_aio[] = {
	{ "io_submit", "IOCB_CMD_POLL with IOCB_FLAG_RESFD: signals a peer's eventfd" },
	{ "io_getevents", "reaping those completions (never waits)" },
	{ "io_destroy", "releasing the AIO context at exit" },
};
static const struct allow efdio_uring[] = {
	{ "io_uring_enter", "submitting to the ring restricted to IORING_OP_WRITE" },
};
/*
 * Block devices (remote/emu/blk_io.c): each ring was set up, given its one
 * file and restricted before the sandbox; after it only io_uring_enter is
 * needed. io_uring_setup and io_uring_register stay off the list, so no
 * ring can be made or changed once sandboxed (docs/security.md).
 */
static const struct allow blk_uring[] = {
	{ "io_uring_enter", "block I/O on rings restricted to readv/writev/fsync/fallocate "
			    "on one fixed file" },
};

#ifdef MPDEV_SANITIZE
/*
 * Sanitizer builds only (never installed): what the ASan runtime needs to
 * write a report (it reads /proc/self/maps). Leak detection is off in the
 * sandboxed remote (main.c). Still no execve and no network: the sandbox
 * tests hold in these builds too.
 */
static const struct allow sanitizer[] = {
	{ "sched_yield", "sanitizer spin locks" },
	{ "gettid", "sanitizer reports" },
	{ "sigaltstack", "ASan's per-thread alternate stack, undone when the closer thread ends" },
};
/* Plus openat, read-only and never creating: ASan reads /proc/self/maps for a report. */
#define N_SANITIZER ((int)(sizeof(sanitizer) / sizeof(sanitizer[0])) + 1)
#else
#define N_SANITIZER 0
#endif

/* VFIO and iommufd requests the serving loop makes, and only those. */
static const unsigned long ioctls[] = {
	VFIO_DEVICE_SET_IRQS,
	VFIO_DEVICE_RESET,
	VFIO_DEVICE_GET_INFO,
	VFIO_DEVICE_GET_REGION_INFO,
	VFIO_DEVICE_GET_IRQ_INFO,
	VFIO_IOMMU_MAP_DMA,
	VFIO_IOMMU_UNMAP_DMA,
	VFIO_IOMMU_GET_INFO,
	IOMMU_IOAS_MAP,
	IOMMU_IOAS_UNMAP,
	IOMMU_IOAS_COPY,
	IOMMU_IOAS_IOVA_RANGES,
	/*
	 * Shutdown destroys the IOAS objects of the remote's own iommufd
	 * (the real kernel killed a remote that lacked it: the model has no
	 * seccomp).
	 */
	IOMMU_DESTROY,
	/*
	 * Migration: MIG_DEVICE_STATE arcs, DMA logging start/stop/report on
	 * the device fd; the same number is VFIO_IOMMU_DIRTY_PAGES on the
	 * container (type1 dirty tracking), hence one entry for both.
	 */
	VFIO_DEVICE_FEATURE,
	/* PRE_COPY's size estimates, on the migration data_fd. */
	VFIO_MIG_GET_PRECOPY_INFO,
};

_Static_assert(VFIO_DEVICE_FEATURE == VFIO_IOMMU_DIRTY_PAGES,
	       "one allow-list entry covers both requests");

#define N_PLAIN	 ((int)(sizeof(plain) / sizeof(plain[0])))
#define N_AIO	 ((int)(sizeof(efdio_aio) / sizeof(efdio_aio[0])))
#define N_URING	 ((int)(sizeof(efdio_uring) / sizeof(efdio_uring[0])))
#define N_IOCTLS ((int)(sizeof(ioctls) / sizeof(ioctls[0])))
/* mmap, mprotect, socket, kcmp, setsockopt x2: the conditional rules below. */
#define N_CONDITIONAL 6

static int n_efdio(void)
{
	return efdio_get_method() == EFDIO_URING ? N_URING : N_AIO;
}

/* io_uring_enter once, whether efdio, a block ring or both need it. */
static int n_blk(void)
{
	return blk_io_rings_open() && efdio_get_method() != EFDIO_URING ? 1 : 0;
}

int seccomp_policy_size(void)
{
	return N_PLAIN + n_efdio() + n_blk() + N_IOCTLS + N_CONDITIONAL + N_SANITIZER;
}

static int add(scmp_filter_ctx ctx, const char *name, unsigned n, const struct scmp_arg_cmp *a,
	       struct mpdev_error *err)
{
	int nr = seccomp_syscall_resolve_name(name);
	int r;

	if (nr == __NR_SCMP_ERROR)
		return mpdev_error_set(err, EINVAL, "seccomp: unknown syscall %s", name);
	r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, n, a);
	if (r < 0)
		return mpdev_error_set(err, -r, "seccomp: rule for %s: %s", name, strerror(-r));
	return 0;
}

int seccomp_policy_install(struct mpdev_error *err)
{
	/* Anything else kills the whole process, not just the thread. */
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int r = 0;

	if (!ctx)
		return mpdev_error_set(err, ENOMEM, "seccomp_init failed");
	/* Every thread, the closer too: it was started just before this. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (r < 0) {
		seccomp_release(ctx);
		return mpdev_error_set(err, -r, "seccomp: TSYNC: %s", strerror(-r));
	}
	/*
	 * A binary search over syscall numbers instead of a linear list: every
	 * syscall of the hot path passes through this filter (bench/README.md,
	 * "Hot path"). Older libseccomp lacks the attribute: then it stays linear.
	 */
	seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (int i = 0; i < N_PLAIN && r == 0; i++)
		r = add(ctx, plain[i].name, 0, NULL, err);
	for (int i = 0; i < n_efdio() && r == 0; i++) {
		const struct allow *a = efdio_get_method() == EFDIO_URING ? efdio_uring : efdio_aio;

		r = add(ctx, a[i].name, 0, NULL, err);
	}
	if (n_blk() && r == 0)
		r = add(ctx, blk_uring[0].name, 0, NULL, err);
#ifdef MPDEV_SANITIZE
	for (int i = 0; i < N_SANITIZER - 1 && r == 0; i++)
		r = add(ctx, sanitizer[i].name, 0, NULL, err);
	if (r == 0) {
		struct scmp_arg_cmp a = SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT, O_RDONLY);

		r = add(ctx, "openat", 1, &a, err);
	}
#endif
	/*
	 * ioctl: VFIO/iommufd requests only (the request is the 2nd argument).
	 * Here and below every comparison names both data, although EQ uses only
	 * the first: libseccomp's macros leave datum_b to an implicit zero, which
	 * clang's -Wmissing-field-initializers (the fuzz build) refuses.
	 */
	for (int i = 0; i < N_IOCTLS && r == 0; i++) {
		struct scmp_arg_cmp a = SCMP_A1(SCMP_CMP_EQ, ioctls[i], 0);

		r = add(ctx, "ioctl", 1, &a, err);
	}
	/* mmap: memory table regions and malloc, never executable memory. */
	if (r == 0) {
		struct scmp_arg_cmp a = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);

		r = add(ctx, "mmap", 1, &a, err);
	}
	/* mprotect: malloc's arenas, never to executable. */
	if (r == 0) {
		struct scmp_arg_cmp a = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);

		r = add(ctx, "mprotect", 1, &a, err);
	}
	/* socket: only sd_notify's AF_UNIX datagram; no network, no new stream sockets. */
	if (r == 0) {
		struct scmp_arg_cmp a[2] = {
			SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0),
			SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_DGRAM),
		};

		r = add(ctx, "socket", 2, a, err);
	}
	/*
	 * setsockopt: sd_notify enlarges its datagram's send buffer (SO_SNDBUF;
	 * it tries SO_SNDBUFFORCE, which fails without capabilities). Nothing else.
	 */
	for (int opt = 0; opt < 2 && r == 0; opt++) {
		struct scmp_arg_cmp a[2] = {
			SCMP_A1(SCMP_CMP_EQ, SOL_SOCKET, 0),
			SCMP_A2(SCMP_CMP_EQ, opt ? SO_SNDBUFFORCE : SO_SNDBUF, 0),
		};

		r = add(ctx, "setsockopt", 2, a, err);
	}
	/* kcmp: comparing two of the remote's own descriptors (fd_same_file). */
	if (r == 0) {
		struct scmp_arg_cmp a[2] = { SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0),
					     SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0) };

		r = add(ctx, "kcmp", 2, a, err);
	}
	if (r == 0) {
		r = seccomp_load(ctx);
		if (r < 0)
			mpdev_error_set(err, -r, "seccomp_load: %s", strerror(-r));
	}
	seccomp_release(ctx);
	return r;
}

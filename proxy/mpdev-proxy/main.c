/*
 * mpdev-proxy: serves stock QEMU's `-device x-pci-proxy-dev,fd=N` (QEMU's
 * multi-process "mpqemu" messages, proto/mpqemu/) on one socket and drives
 * an mpdev-remote through libmpdev on the other. Unprivileged.
 *
 * Translation, message by message:
 *   PCI_CFGREAD/WRITE  config space region access; a write to a BAR register
 *                      makes the BAR bases be re-read before the next BAR access
 *   BAR_READ/WRITE     the absolute address is looked up among the BAR bases the
 *                      guest programmed (memory or I/O as QEMU says), then a
 *                      region access at the offset; MMIO writes are posted
 *   SYNC_SYSMEM        the whole guest RAM table: the difference to the table
 *                      installed last goes to the remote as removes and adds
 *   SET_IRQFD          the INTx irqfd + resamplefd pair, for the device's pin
 *   DEVICE_RESET       device reset
 * Requests QEMU waits for get one RET each; a BAR address that hits no BAR
 * is logged and answered with all-ones. Anything QEMU never sends is logged
 * and ends the connection (exit status 1).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"
#include "proxy.h"

static int run(struct proxy *p)
{
	for (;;) {
		struct pollfd pf[3] = {
			{ .fd = p->qfd, .events = POLLIN },
			{ .fd = mpdev_fd(p->dev), .events = POLLIN },
			{ .fd = p->sigfd, .events = POLLIN },
		};
		int r = poll(pf, 3, p->posted_unsynced ? POSTED_SYNC_IDLE_MS : -1);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_error(COMP, "poll: %s", strerror(errno));
			return 1;
		}
		if (r == 0) {
			if (sync_posted(p) < 0)
				return 1;
			continue;
		}
		if (pf[2].revents) {
			struct signalfd_siginfo si;

			if (read(p->sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGUSR1) {
					if (dump_stats(p) < 0)
						return 1;
				} else {
					log_info(COMP, "signal %u: ending", si.ssi_signo);
					return sync_posted(p) < 0 ? 1 : 0;
				}
			}
		}
		if (pf[1].revents) {
			r = mpdev_process_events(p->dev);
			if (r < 0) {
				log_error(COMP, "the remote went away: %s",
					  mpdev_last_error(p->dev));
				return 1;
			}
			if (r > 0 && sync_posted(p) < 0)
				return 1;
		}
		if (pf[0].revents) {
			r = serve_one(p);
			if (r <= 0) {
				if (r == 0 && sync_posted(p) < 0)
					return 1;
				return r < 0 ? 1 : 0;
			}
		}
	}
}

static int setup_signals(struct proxy *p)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
	    (p->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		log_error(COMP, "signalfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void teardown(struct proxy *p)
{
	sigset_t set;

	if (p->qfd >= 0)
		close(p->qfd);
	p->qfd = -1;
	mpdev_close(p->dev);
	p->dev = NULL;
	/* It exits once its connection is gone. */
	reap_spawned(p, 3000);
	/* Children of ours (none after this) must not inherit a blocked mask. */
	sigemptyset(&set);
	sigprocmask(SIG_SETMASK, &set, NULL);
	if (p->sigfd >= 0)
		close(p->sigfd);
	p->sigfd = -1;
}

int main(int argc, char **argv)
{
	struct proxy p;
	int rc;

	memset(&p, 0, sizeof(p));
	p.qfd = p.sigfd = -1;
	log_set_ident("mpdev-proxy");
	rc = parse_options(argc, argv, &p.o);
	if (rc)
		return rc;
	log_set_level((enum mpdev_log_level)(MPDEV_LOG_WARN + p.o.verbosity));
	/* A QEMU or remote that vanishes mid-send is an error return, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	if (geteuid() == 0)
		log_warn(COMP, "running as root: mpdev-proxy needs no privilege; run it as the "
			       "user that runs QEMU");
	rc = 1;
	/*
	 * The remote first: QEMU waits for answers as soon as it realizes the
	 * device. And before signals are blocked: a spawned remote must not
	 * inherit the mask.
	 */
	if (connect_remote(&p) < 0 || setup_signals(&p) < 0)
		goto out;
	switch (open_qemu_side(&p)) {
	case 0:
		break;
	case -2: /* ended by a signal while waiting */
		rc = 0;
		goto out;
	default:
		goto out;
	}
	rc = run(&p);
out:
	teardown(&p);
	return rc;
}

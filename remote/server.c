#include "server.h"

#include <errno.h>
#include <stddef.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "closer.h"
#include "face.h"
#include "fdrelease.h"
#include "log.h"
#include "session.h"
#include "wire.h"

#define COMP "remote"

/* accept() failing for want of descriptors (or memory): retry after this, doubling. */
#define ACCEPT_BACKOFF_MIN_MS 50
#define ACCEPT_BACKOFF_MAX_MS 1000
/* How often paused input checks whether the closer has caught up. */
#define PAUSE_CHECK_MS 100
/* What the remote keeps besides a peer's descriptors (its loop, socket, device...). */
#define OWN_FD_RESERVE 64u
#define SCM_MAX_FD     253u

struct server {
	struct event_base *base;
	struct backend *backend;
	struct remote_host *host;
	struct server_config cfg;
	struct server_stats stats;

	int listen_fd;
	struct event *listen_ev;
	char *listen_path; /* unlinked on destroy */
	struct event *accept_retry_ev;
	int accept_backoff_ms;

	int conn_fd;
	struct event *conn_ev;	/* readable */
	struct event *conn_wev; /* writable, while a reply waits for room */
	struct event *handshake_ev;
	bool exit_after_conn; /* serving an adopted, already-connected socket */
	struct session session;

	/* Input stopped while too many descriptors wait for the closer. */
	bool paused;
	struct event *pause_ev;
};

/* Only the native face has notifications; other faces' peers just see the socket close. */
static void notify(const struct server *srv, int fd, Mpdev__NotifyType type, int status,
		   const char *msg)
{
	if (srv->cfg.face == &face_native)
		wire_send_notify(fd, type, status, msg);
}

static void free_event(struct event **ev)
{
	if (*ev)
		event_free(*ev);
	*ev = NULL;
}

static struct timeval ms_tv(int ms)
{
	return (struct timeval){ .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
}

int server_budget(unsigned long nofile, unsigned vectors, struct server_config *cfg)
{
	/* Every IOHUB pair, the SET_IRQS INTx pair, one eventfd per vector and per doorbell. */
	unsigned long irq = 2ul * 64 + 2 + vectors + BACKEND_MAX_IOEVENTFDS;
	unsigned long reserve = SCM_MAX_FD + OWN_FD_RESERVE + irq, room;
	int r = 0;

	room = nofile > reserve ? nofile - reserve : 0;
	if (room < 64) {
		room = 64;
		r = -ENOSPC;
	}
	cfg->max_table_fds =
		(unsigned)(room / 2 < SESSION_MAX_TABLE_FDS * 2 ? room / 2
								: SESSION_MAX_TABLE_FDS * 2);
	cfg->max_pending_closes = (unsigned)(room - cfg->max_table_fds < SERVER_MAX_PENDING_CLOSES
						     ? room - cfg->max_table_fds
						     : SERVER_MAX_PENDING_CLOSES);
	return r;
}

static void conn_close(struct server *srv)
{
	struct mpdev_error err = { 0 };
	int r;

	if (srv->conn_fd < 0)
		return;
	free_event(&srv->conn_ev);
	free_event(&srv->conn_wev);
	free_event(&srv->handshake_ev);
	/* Its queue may still hold a peer's descriptors: closing it may block. */
	fd_release(srv->conn_fd);
	srv->conn_fd = -1;
	r = session_teardown(&srv->session, &err);
	if (r == -ENOTTY)
		log_warn_rl(COMP, "proxy disconnected; device '%s' cannot be reset",
			    srv->session.info.name);
	else if (r < 0)
		log_warn_rl(COMP, "device reset after disconnect failed: %s", err.msg);
	else
		log_info_rl(COMP, "proxy disconnected; device reset");
	sd_notify(0, "STATUS=waiting for a proxy");
	if (srv->exit_after_conn)
		event_base_loopexit(srv->base, NULL);
}

/* Too many descriptors wait for the closer: take nothing more from peers for now. */
static bool must_pause(struct server *srv)
{
	size_t backlog = closer_backlog();

	if (srv->paused)
		return backlog > srv->cfg.max_pending_closes / 2;
	return backlog > srv->cfg.max_pending_closes;
}

static void input_enable(struct server *srv, bool on)
{
	if (srv->listen_ev)
		on ? event_add(srv->listen_ev, NULL) : event_del(srv->listen_ev);
	if (srv->conn_ev && !session_output_blocked(&srv->session)) {
		on ? event_add(srv->conn_ev, NULL) : event_del(srv->conn_ev);
		/* What a stream face buffered before the pause is not on the socket any more. */
		if (on)
			event_active(srv->conn_ev, EV_READ, 0);
	}
}

static void pause_check(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct timeval tv = ms_tv(PAUSE_CHECK_MS);

	if (must_pause(srv)) {
		evtimer_add(srv->pause_ev, &tv);
		return;
	}
	srv->paused = false;
	log_warn(COMP, "descriptors are being closed again: reading from peers");
	input_enable(srv, true);
}

/* Returns true (and stops input) when the closer is too far behind. */
static bool pause_if_needed(struct server *srv)
{
	struct timeval tv = ms_tv(PAUSE_CHECK_MS);

	if (srv->paused || !must_pause(srv))
		return srv->paused;
	srv->paused = true;
	srv->stats.input_pauses++;
	log_warn(COMP,
		 "%zu descriptors a peer sent are waiting to be closed (a close is blocked: a "
		 "lingering socket or a FUSE file?); not reading from peers until they drain",
		 closer_backlog());
	input_enable(srv, false);
	evtimer_add(srv->pause_ev, &tv);
	return true;
}

/* A reply waits for room: read nothing until it is out. */
static void wait_for_room(struct server *srv)
{
	event_del(srv->conn_ev);
	event_add(srv->conn_wev, NULL);
}

static void conn_writable(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	int r = session_flush(&srv->session);

	if (r == -EAGAIN)
		return;
	event_del(srv->conn_wev);
	if (r < 0) {
		log_warn_rl(COMP, "dropping connection: %s", strerror(-r));
		conn_close(srv);
		return;
	}
	if (!srv->paused) {
		event_add(srv->conn_ev, NULL);
		/* A stream face may hold whole requests it read before the output blocked. */
		event_active(srv->conn_ev, EV_READ, 0);
	}
}

/* session_input_pending: the face holds whole messages; come back to it. */
static void conn_wake(void *arg)
{
	struct server *srv = arg;

	/* Blocked output or a pause resume input themselves (conn_writable, input_enable). */
	if (srv->conn_fd >= 0 && srv->conn_ev && !srv->paused &&
	    !session_output_blocked(&srv->session))
		event_active(srv->conn_ev, EV_READ, 0);
}

static void conn_readable(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct session *s = &srv->session;
	int r;

	/*
	 * The face handles at most one request that waits for an answer per
	 * call; one-way messages (posted writes, QEMU's SYNC_SYSMEM) come in
	 * bursts and are drained, with a budget so that one peer cannot
	 * starve the loop's other events.
	 */
	for (int budget = 64; budget > 0 && srv->conn_fd >= 0; budget--) {
		if (pause_if_needed(srv))
			return;
		r = s->face->readable(s);
		if (r == -ECONNRESET) {
			conn_close(srv);
			return;
		}
		if (r < 0) {
			log_warn_rl(COMP, "dropping connection: %s", strerror(-r));
			conn_close(srv);
			return;
		}
		/* Once: an evtimer_del per packet takes libevent's lock for nothing. */
		if (s->greeted && srv->handshake_ev)
			free_event(&srv->handshake_ev);
		if (session_output_blocked(s)) {
			wait_for_room(srv);
			return;
		}
		if (r == 0)
			return;
	}
	/* Out of budget with more to do, perhaps only in a stream face's buffer: come back. */
	if (srv->conn_fd >= 0 && !srv->paused)
		event_active(srv->conn_ev, EV_READ, 0);
}

/* A client of an allowed uid may still not sit on the device without a hello. */
static void handshake_expired(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	if (srv->session.greeted)
		return;
	srv->stats.handshake_timeouts++;
	log_warn_rl(COMP, "dropping a peer that sent no hello within %d ms",
		    srv->cfg.handshake_timeout_ms);
	notify(srv, srv->conn_fd, MPDEV__NOTIFY_TYPE__NOTIFY_HANDSHAKE_TIMEOUT, ETIMEDOUT,
	       "no handshake within the remote's deadline");
	conn_close(srv);
}

static int conn_start(struct server *srv, int fd, struct mpdev_error *err)
{
	struct timeval tv = ms_tv(srv->cfg.handshake_timeout_ms);
	int r;

	r = peercred_check(&srv->cfg.allow, fd, err);
	if (r < 0) {
		srv->stats.refused_peers++;
		log_warn_rl(COMP, "refusing connection: %s", err->msg);
		notify(srv, fd, MPDEV__NOTIFY_TYPE__NOTIFY_ACCESS_DENIED, -r, err->msg);
		fd_release(fd);
		return r;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		r = mpdev_error_set(err, errno, "O_NONBLOCK: %s", strerror(errno));
		fd_release(fd);
		return r;
	}
	srv->conn_ev = event_new(srv->base, fd, EV_READ | EV_PERSIST, conn_readable, srv);
	srv->conn_wev = event_new(srv->base, fd, EV_WRITE | EV_PERSIST, conn_writable, srv);
	srv->handshake_ev = evtimer_new(srv->base, handshake_expired, srv);
	if (!srv->conn_ev || !srv->conn_wev || !srv->handshake_ev) {
		free_event(&srv->conn_ev);
		free_event(&srv->conn_wev);
		free_event(&srv->handshake_ev);
		fd_release(fd);
		return mpdev_error_set(err, ENOMEM, "event_new failed");
	}
	srv->conn_fd = fd;
	session_init(&srv->session, fd, srv->cfg.face, srv->backend, srv->host, &srv->stats);
	srv->session.wake = conn_wake;
	srv->session.owner = srv;
	srv->session.max_table_fds = srv->cfg.max_table_fds;
	if (srv->cfg.face->conn_init && (r = srv->cfg.face->conn_init(&srv->session)) < 0) {
		mpdev_error_set(err, -r, "%s face: cannot set up the connection: %s",
				srv->cfg.face->name, strerror(-r));
		log_warn_rl(COMP, "%s", err->msg);
		conn_close(srv);
		return r;
	}
	if (!srv->paused)
		event_add(srv->conn_ev, NULL);
	if (srv->cfg.face->handshake)
		evtimer_add(srv->handshake_ev, &tv);
	srv->stats.connections++;
	log_info(COMP, "peer connected (%s face)", srv->cfg.face->name);
	sd_notify(0, "STATUS=serving a proxy");
	return 0;
}

static void accept_retry(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	if (!srv->paused)
		event_add(srv->listen_ev, NULL);
}

/* Out of descriptors or memory: stop listening for a while instead of spinning. */
static void accept_back_off(struct server *srv, int e)
{
	struct timeval tv;

	srv->stats.accept_errors++;
	srv->accept_backoff_ms =
		srv->accept_backoff_ms ? srv->accept_backoff_ms * 2 : ACCEPT_BACKOFF_MIN_MS;
	if (srv->accept_backoff_ms > ACCEPT_BACKOFF_MAX_MS)
		srv->accept_backoff_ms = ACCEPT_BACKOFF_MAX_MS;
	log_warn_rl(COMP, "accept: %s; retrying in %d ms", strerror(e), srv->accept_backoff_ms);
	event_del(srv->listen_ev);
	tv = ms_tv(srv->accept_backoff_ms);
	evtimer_add(srv->accept_retry_ev, &tv);
}

static void listen_readable(evutil_socket_t lfd, short what, void *arg)
{
	struct server *srv = arg;
	struct mpdev_error err = { 0 };
	int fd;

	if (pause_if_needed(srv))
		return;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			accept_back_off(srv, errno);
		else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_warn_rl(COMP, "accept: %s", strerror(errno));
		return;
	}
	srv->accept_backoff_ms = 0;
	if (srv->conn_fd >= 0) {
		/* Tell the second proxy why instead of leaving it hanging in the backlog. */
		srv->stats.busy_refusals++;
		log_warn_rl(COMP, "refusing a second proxy: one is already connected");
		notify(srv, fd, MPDEV__NOTIFY_TYPE__NOTIFY_BUSY, EBUSY,
		       "another proxy is connected to this remote");
		fd_release(fd);
		return;
	}
	conn_start(srv, fd, &err);
}

int server_create(struct event_base *base, struct backend *backend, struct remote_host *host,
		  const struct server_config *cfg, struct server **out, struct mpdev_error *err)
{
	struct server *srv = calloc(1, sizeof(*srv));

	if (!srv)
		return mpdev_error_set(err, ENOMEM, "out of memory");
	srv->base = base;
	srv->backend = backend;
	srv->host = host;
	srv->cfg = *cfg;
	if (!srv->cfg.face)
		srv->cfg.face = &face_native;
	if (srv->cfg.handshake_timeout_ms <= 0)
		srv->cfg.handshake_timeout_ms = SERVER_HANDSHAKE_TIMEOUT_MS;
	if (!srv->cfg.max_table_fds)
		srv->cfg.max_table_fds = SESSION_MAX_TABLE_FDS;
	if (!srv->cfg.max_pending_closes)
		srv->cfg.max_pending_closes = SERVER_MAX_PENDING_CLOSES;
	srv->listen_fd = -1;
	srv->conn_fd = -1;
	srv->accept_retry_ev = evtimer_new(base, accept_retry, srv);
	srv->pause_ev = evtimer_new(base, pause_check, srv);
	if (!srv->accept_retry_ev || !srv->pause_ev) {
		server_destroy(srv);
		return mpdev_error_set(err, ENOMEM, "event_new failed");
	}
	*out = srv;
	return 0;
}

void server_destroy(struct server *srv)
{
	if (!srv)
		return;
	srv->exit_after_conn = false;
	if (srv->conn_fd >= 0)
		notify(srv, srv->conn_fd, MPDEV__NOTIFY_TYPE__NOTIFY_SHUTDOWN, 0,
		       "the remote is shutting down");
	conn_close(srv);
	free_event(&srv->listen_ev);
	free_event(&srv->accept_retry_ev);
	free_event(&srv->pause_ev);
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->listen_path) {
		if (!srv->cfg.keep_socket_file)
			unlink(srv->listen_path);
		free(srv->listen_path);
	}
	free(srv);
}

static int start_listening(struct server *srv, int fd, struct mpdev_error *err)
{
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		return mpdev_error_set(err, errno, "O_NONBLOCK: %s", strerror(errno));
	srv->listen_ev = event_new(srv->base, fd, EV_READ | EV_PERSIST, listen_readable, srv);
	if (!srv->listen_ev)
		return mpdev_error_set(err, ENOMEM, "event_new failed");
	srv->listen_fd = fd;
	event_add(srv->listen_ev, NULL);
	return 0;
}

/*
 * Whether a remote accepts on the socket at addr: a connection that gets
 * through (or finds the backlog full) means it is live; ECONNREFUSED means
 * the file outlived its process.
 */
static int socket_is_live(const struct sockaddr_un *addr, int type)
{
	int probe = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), r;

	if (probe < 0)
		return -errno;
	r = connect(probe, (const struct sockaddr *)addr, sizeof(*addr));
	/* EPROTOTYPE: a live socket of another face's type (it would refuse us anyway). */
	r = r == 0 || errno == EAGAIN || errno == EINPROGRESS || errno == EPROTOTYPE ? 1
	    : errno == ECONNREFUSED || errno == ENOENT				     ? 0
										     : -errno;
	close(probe);
	return r;
}

/* The directory's lock serialises remotes starting on sockets in it. */
static int lock_dir_of(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 && flock(fd, LOCK_EX) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

int server_listen_path(struct server *srv, const char *path, struct mpdev_error *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old_umask;
	int fd = -1, dirlock, r;

	if (srv->listen_fd >= 0 || srv->conn_fd >= 0)
		return mpdev_error_set(err, EBUSY, "server already has a socket");
	if (strlen(path) >= sizeof(addr.sun_path))
		return mpdev_error_set(err, ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(addr.sun_path, path);
	dirlock = lock_dir_of(path);
	/* Replace a stale socket, never some other file, and never a live remote's socket. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			r = mpdev_error_set(err, EEXIST, "%s exists and is not a socket", path);
			goto out;
		}
		r = socket_is_live(&addr, srv->cfg.face->sock_type);
		if (r != 0) {
			r = mpdev_error_set(
				err, EADDRINUSE,
				r > 0 ? "another remote serves %s: refusing to take its "
					"socket over"
				      : "cannot tell whether another remote serves %s",
				path);
			goto out;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, srv->cfg.face->sock_type | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = mpdev_error_set(err, errno, "socket: %s", strerror(errno));
		goto out;
	}
	/* Owner and group only: the allow list is the second gate, not the first. */
	old_umask = umask(0117);
	r = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old_umask);
	if (r < 0 || listen(fd, 4) < 0) {
		r = mpdev_error_set(err, errno, "bind/listen %s: %s", path, strerror(errno));
		goto out;
	}
	r = start_listening(srv, fd, err);
	if (r < 0) {
		unlink(path);
		goto out;
	}
	fd = -1;
	srv->listen_path = strdup(path);
	log_info(COMP, "listening on %s (%s face)", path, srv->cfg.face->name);
out:
	if (fd >= 0)
		close(fd);
	if (dirlock >= 0)
		close(dirlock);
	return r;
}

int server_adopt_fd(struct server *srv, int fd, struct mpdev_error *err)
{
	int type = 0, listening = 0;
	socklen_t len = sizeof(type);

	if (srv->listen_fd >= 0 || srv->conn_fd >= 0)
		return mpdev_error_set(err, EBUSY, "server already has a socket");
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return mpdev_error_set(err, errno, "fd %d is not a socket: %s", fd,
				       strerror(errno));
	if (type != srv->cfg.face->sock_type)
		return mpdev_error_set(
			err, EPROTOTYPE, "fd %d is not a %s socket, which the %s face needs", fd,
			srv->cfg.face->sock_type == SOCK_STREAM ? "SOCK_STREAM" : "SOCK_SEQPACKET",
			srv->cfg.face->name);
	len = sizeof(listening);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
		return mpdev_error_set(err, errno, "SO_ACCEPTCONN: %s", strerror(errno));
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	if (listening)
		return start_listening(srv, fd, err);
	srv->exit_after_conn = true;
	return conn_start(srv, fd, err);
}

const struct server_stats *server_get_stats(const struct server *srv)
{
	return &srv->stats;
}

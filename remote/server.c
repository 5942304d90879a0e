#include "server.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "session.h"
#include "wire.h"

#define COMP "remote"

struct server {
	struct event_base *base;
	struct backend *backend;
	struct remote_host *host;
	struct server_config cfg;
	struct server_stats stats;

	int listen_fd;
	struct event *listen_ev;
	char *listen_path; /* unlinked on destroy */

	int conn_fd;
	struct event *conn_ev;
	bool exit_after_conn; /* serving an adopted, already-connected socket */
	struct session session;
};

static void conn_close(struct server *srv)
{
	struct mpdev_error err = { 0 };

	if (srv->conn_fd < 0)
		return;
	event_free(srv->conn_ev);
	srv->conn_ev = NULL;
	close(srv->conn_fd);
	srv->conn_fd = -1;
	/* Whatever the proxy left the device in, the next one finds it fresh. */
	if (!srv->session.info.reset_supported)
		log_warn(COMP, "proxy disconnected; device '%s' cannot be reset",
			 srv->session.info.name);
	else if (srv->backend->ops->reset(srv->backend, &err) < 0)
		log_warn(COMP, "device reset after disconnect failed: %s", err.msg);
	else
		log_info(COMP, "proxy disconnected; device reset");
	/* The device is quiet now: its interrupts, then the guest memory, can go. */
	if (srv->backend->ops->release)
		srv->backend->ops->release(srv->backend);
	session_release(&srv->session);
	remote_host_release(srv->host);
	sd_notify(0, "STATUS=waiting for a proxy");
	if (srv->exit_after_conn)
		event_base_loopexit(srv->base, NULL);
}

static void conn_readable(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct mpdev_error err = { 0 };
	struct wire_msg m;
	int r;

	/*
	 * After a request the peer is waiting for our reply, so nothing else is
	 * queued: go back to the loop instead of paying for a recv that says
	 * EAGAIN. Posted writes come in bursts: drain those (with a budget so
	 * one peer cannot starve the loop's other events).
	 */
	for (int budget = 64; budget > 0 && srv->conn_fd >= 0; budget--) {
		bool posted;

		r = wire_recv(fd, &m, &err, 0);
		if (r == -EAGAIN) {
			wire_msg_release(&m);
			return;
		}
		if (r == 0 || r == -ECONNRESET) {
			wire_msg_release(&m);
			conn_close(srv);
			return;
		}
		posted = r > 0 && m.env->kind == MPDEV__KIND__KIND_POSTED;
		if (r < 0)
			r = session_handle_bad_packet(&srv->session, &m, &err);
		else
			r = session_handle(&srv->session, &m);
		wire_msg_release(&m);
		if (r < 0) {
			log_warn(COMP, "dropping connection: %s", strerror(-r));
			conn_close(srv);
			return;
		}
		if (!posted)
			return;
	}
}

static int conn_start(struct server *srv, int fd, struct mpdev_error *err)
{
	int r;

	r = peercred_check(&srv->cfg.allow, fd, err);
	if (r < 0) {
		srv->stats.refused_peers++;
		log_warn(COMP, "refusing connection: %s", err->msg);
		wire_send_notify(fd, MPDEV__NOTIFY_TYPE__NOTIFY_ACCESS_DENIED, -r, err->msg);
		close(fd);
		return r;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		r = mpdev_error_set(err, errno, "O_NONBLOCK: %s", strerror(errno));
		close(fd);
		return r;
	}
	srv->conn_ev = event_new(srv->base, fd, EV_READ | EV_PERSIST, conn_readable, srv);
	if (!srv->conn_ev) {
		close(fd);
		return mpdev_error_set(err, ENOMEM, "event_new failed");
	}
	srv->conn_fd = fd;
	session_init(&srv->session, fd, srv->backend, srv->host, &srv->stats);
	event_add(srv->conn_ev, NULL);
	srv->stats.connections++;
	log_info(COMP, "proxy connected");
	sd_notify(0, "STATUS=serving a proxy");
	return 0;
}

static void listen_readable(evutil_socket_t lfd, short what, void *arg)
{
	struct server *srv = arg;
	struct mpdev_error err = { 0 };
	int fd;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			log_warn(COMP, "accept: %s", strerror(errno));
		return;
	}
	if (srv->conn_fd >= 0) {
		/* Tell the second proxy why instead of leaving it hanging in the backlog. */
		srv->stats.busy_refusals++;
		log_warn(COMP, "refusing a second proxy: one is already connected");
		wire_send_notify(fd, MPDEV__NOTIFY_TYPE__NOTIFY_BUSY, EBUSY,
				 "another proxy is connected to this remote");
		close(fd);
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
	srv->listen_fd = -1;
	srv->conn_fd = -1;
	*out = srv;
	return 0;
}

void server_destroy(struct server *srv)
{
	if (!srv)
		return;
	srv->exit_after_conn = false;
	if (srv->conn_fd >= 0)
		wire_send_notify(srv->conn_fd, MPDEV__NOTIFY_TYPE__NOTIFY_SHUTDOWN, 0,
				 "the remote is shutting down");
	conn_close(srv);
	if (srv->listen_ev)
		event_free(srv->listen_ev);
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

int server_listen_path(struct server *srv, const char *path, struct mpdev_error *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old_umask;
	int fd, r;

	if (srv->listen_fd >= 0 || srv->conn_fd >= 0)
		return mpdev_error_set(err, EBUSY, "server already has a socket");
	if (strlen(path) >= sizeof(addr.sun_path))
		return mpdev_error_set(err, ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(addr.sun_path, path);
	/* Replace a stale socket, never some other file. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return mpdev_error_set(err, EEXIST, "%s exists and is not a socket", path);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return mpdev_error_set(err, errno, "socket: %s", strerror(errno));
	/* Owner and group only: the allow list is the second gate, not the first. */
	old_umask = umask(0117);
	r = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old_umask);
	if (r < 0 || listen(fd, 4) < 0) {
		r = mpdev_error_set(err, errno, "bind/listen %s: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	r = start_listening(srv, fd, err);
	if (r < 0) {
		close(fd);
		unlink(path);
		return r;
	}
	srv->listen_path = strdup(path);
	log_info(COMP, "listening on %s", path);
	return 0;
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
	if (type != SOCK_SEQPACKET)
		return mpdev_error_set(err, EPROTOTYPE, "fd %d is not a SOCK_SEQPACKET socket", fd);
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

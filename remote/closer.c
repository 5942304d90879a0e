#include "closer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fdrelease.h"
#include "log.h"

#define COMP "remote"

static struct {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake, idle;
	int *q;
	size_t head, n, cap;
	bool busy; /* a close() is running */
	long long busy_since_ms;
	bool stop, running, started;
	/*
	 * n + busy, kept under the lock and read without it: the server asks
	 * before every packet, and a stale answer only moves a pause by one.
	 */
	_Atomic size_t backlog;
} cl = { .lock = PTHREAD_MUTEX_INITIALIZER,
	 .wake = PTHREAD_COND_INITIALIZER,
	 .idle = PTHREAD_COND_INITIALIZER };

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *closer_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&cl.lock);
	/* Past glibc's thread start-up (rseq, robust list): the filter may come now. */
	cl.started = true;
	pthread_cond_broadcast(&cl.idle);
	for (;;) {
		int fd;

		while (!cl.n && !cl.stop)
			pthread_cond_wait(&cl.wake, &cl.lock);
		if (!cl.n)
			break;
		fd = cl.q[cl.head];
		cl.head = (cl.head + 1) % cl.cap;
		cl.n--;
		cl.busy = true; /* backlog unchanged: one left the queue, one is closing */
		cl.busy_since_ms = now_ms();
		pthread_mutex_unlock(&cl.lock);
		close(fd); /* may wait: that is what this thread is for */
		pthread_mutex_lock(&cl.lock);
		cl.busy = false;
		cl.backlog = cl.n;
		if (!cl.n)
			pthread_cond_broadcast(&cl.idle);
	}
	pthread_mutex_unlock(&cl.lock);
	return NULL;
}

/* A ring that grows: the loop never waits for the closer, whatever it is stuck on. */
static bool enqueue_locked(int fd)
{
	if (cl.n == cl.cap) {
		size_t ncap = cl.cap ? cl.cap * 2 : 64;
		int *nq = malloc(ncap * sizeof(*nq));

		if (!nq)
			return false;
		for (size_t i = 0; i < cl.n; i++)
			nq[i] = cl.q[(cl.head + i) % cl.cap];
		free(cl.q);
		cl.q = nq;
		cl.cap = ncap;
		cl.head = 0;
	}
	cl.q[(cl.head + cl.n) % cl.cap] = fd;
	cl.n++;
	cl.backlog = cl.n + (cl.busy ? 1 : 0);
	return true;
}

static void closer_release(int fd)
{
	bool queued;

	pthread_mutex_lock(&cl.lock);
	queued = cl.running && enqueue_locked(fd);
	if (queued)
		pthread_cond_signal(&cl.wake);
	pthread_mutex_unlock(&cl.lock);
	if (!queued)
		close(fd); /* out of memory: better a possible wait than a leak */
}

int closer_start(struct mpdev_error *err)
{
	int r;

	if (cl.running)
		return 0;
	cl.stop = false;
	cl.running = true;
	cl.started = false;
	r = pthread_create(&cl.thread, NULL, closer_main, NULL);
	if (r) {
		cl.running = false;
		return mpdev_error_set(err, r, "cannot start the closer thread: %s", strerror(r));
	}
	/*
	 * Wait until it runs: a thread that has not yet made glibc's start-up
	 * calls when the seccomp filter arrives would make them under it.
	 */
	pthread_mutex_lock(&cl.lock);
	while (!cl.started)
		pthread_cond_wait(&cl.idle, &cl.lock);
	pthread_mutex_unlock(&cl.lock);
	fd_release_set_handler(closer_release);
	return 0;
}

void closer_stop(int timeout_ms)
{
	struct timespec until;

	if (!cl.running)
		return;
	fd_release_set_handler(NULL);
	pthread_mutex_lock(&cl.lock);
	cl.stop = true;
	pthread_cond_signal(&cl.wake);
	pthread_mutex_unlock(&cl.lock);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	if (pthread_timedjoin_np(cl.thread, NULL, &until) != 0) {
		/* A close that never returns: leave it to the process's exit. */
		log_warn(COMP, "a descriptor a peer sent is still closing; not waiting for it");
		pthread_detach(cl.thread);
		return;
	}
	cl.running = false;
	free(cl.q);
	cl.q = NULL;
	cl.n = cl.cap = cl.head = 0;
	cl.backlog = 0;
}

size_t closer_backlog(void)
{
	return cl.backlog;
}

int closer_stalled(int ms)
{
	int stalled;

	pthread_mutex_lock(&cl.lock);
	stalled = cl.busy && now_ms() - cl.busy_since_ms > ms;
	pthread_mutex_unlock(&cl.lock);
	return stalled;
}

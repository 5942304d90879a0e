/*
 * mpdev-proxy's insides, one concern a file:
 *   main.c         the loop over QEMU's socket, the remote's and signals; start and end
 *   options.c      the command line
 *   qemu_socket.c  QEMU's side: taking the connection, answering, refusing
 *   translate.c    QEMU's requests -> the remote's (config space, BARs, INTx, reset)
 *   guest_ram.c    SYNC_SYSMEM -> the remote's memory table, changed minimally
 *   remote.c       the remote's side: connecting or spawning, losing it, its counters
 * QEMU's messages are decoded and checked by proto/mpqemu/ (shared with
 * mpdev-remote's mpqemu face): mpqemu.h, bar_window.h, sysmem.h.
 */
#ifndef MPDEV_PROXY_H
#define MPDEV_PROXY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "bar_window.h"
#include "libmpdev.h"
#include "mpqemu.h"
#include "sysmem.h"

#define COMP		   "proxy"
#define DEFAULT_TIMEOUT_MS 5000
/* Long enough for systemd's Restart=on-failure (RestartSec=1 in our unit) and a remote's start-up.
 */
#define DEFAULT_RECONNECT_MS 10000
#define MAX_RECONNECT_MS     600000
#define POSTED_SYNC_IDLE_MS  50
#define MAX_REMOTE_ARGS	     16

struct options {
	long qemu_fd;
	const char *listen_path;
	const char *remote_path;
	bool spawn;
	const char *device;
	const char *remote_args[MAX_REMOTE_ARGS + 1];
	int n_remote_args;
	int timeout_ms;
	int reconnect_ms; /* 0: a lost remote ends the proxy */
	int verbosity;
};

/* One entry of the guest RAM table as installed in the remote. */
struct mem_entry {
	uint64_t gpa, size, offset;
	dev_t dev;
	ino_t ino;
};

struct proxy {
	struct options o;
	int qfd;
	int sigfd;
	struct mpdev *dev;
	pid_t remote_pid;
	struct mpdev_device_info info;
	uint32_t cfg_size;
	struct bar_window bars;
	struct mem_entry mem[MPQEMU_MAX_FDS];
	size_t n_mem;
	bool table_seen, warned_no_table, warned_empty_table;
	uint64_t posted_unsynced;
	uint64_t bar_misses;
	uint64_t messages;
	uint64_t restarts;	 /* the remote restarted and was replayed */
	uint64_t lost_in_flight; /* BAR accesses in flight when it died */
};

/* options.c: 0, or the exit status for bad usage (2). --help exits. */
int parse_options(int argc, char **argv, struct options *o);

/* remote.c */
int connect_remote(struct proxy *p);
/* True (and logged) when the connection to the remote is gone for good. */
bool remote_lost(struct proxy *p);
/* Reports posted BAR writes that failed since the last check; -1 if the remote is lost. */
int sync_posted(struct proxy *p);
/* SIGUSR1: the remote's counters, whatever the verbosity. */
int dump_stats(struct proxy *p);
/* Reaps the remote we started, however it ended; kills it if it has not. */
void reap_spawned(struct proxy *p, int timeout_ms);

/* qemu_socket.c */
/* 0 with p->qfd connected to QEMU, -2 when a signal ended the wait, -1 on failure. */
int open_qemu_side(struct proxy *p);
/* The RET QEMU waits for; -1 if it cannot be sent. */
int reply(struct proxy *p, uint64_t value);
/* Logs why the connection ends; returns -1. */
int malformed(struct proxy *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* translate.c: one message from QEMU: 1 handled, 0 QEMU closed the connection, -1 fatal. */
int serve_one(struct proxy *p);
void check_table_seen(struct proxy *p);

/* guest_ram.c */
int on_sync_sysmem(struct proxy *p, struct mpqemu_msg *m);

#endif

/*
 * The mpqemu face (stock QEMU's -device x-pci-proxy-dev, QEMU 7.2 and later)
 * inside: mpqemu.c reads the stream without ever waiting and frames it into
 * messages, refusing what QEMU never sends; mpqemu_ops.c turns each message
 * into devops.h calls. The decoding, checks and translation QEMU's format
 * needs are proto/mpqemu/'s, shared with mpdev-proxy.
 */
#ifndef MPDEV_FACES_MPQEMU_FACE_H
#define MPDEV_FACES_MPQEMU_FACE_H

#include <stdbool.h>
#include <stdint.h>

#include "bar_window.h"
#include "mpqemu.h"
#include "stream_in.h"

struct session;

#define MPQEMU_FACE_COMP "mpqemu"
/* Messages without an answer handled in one wakeup, at most (then the loop's other events). */
#define MPQEMU_FACE_ONE_WAY_BUDGET 64

struct mpqemu_face {
	struct stream_in in;
	struct bar_window bars; /* where the guest placed the BARs (absolute addresses) */
	uint64_t page;		/* the remote maps whole pages of guest RAM */
	bool table_seen;	/* a SYNC_SYSMEM came */
	bool warned_no_table, warned_empty_table;
	uint64_t messages, refused, bar_misses;
};

/*
 * Handles one whole, validated message (its descriptors are the callee's);
 * answers through session_output when QEMU waits for a RET. Returns 0, or a
 * negative errno when the connection must end (the answer could not go out).
 */
int mpqemu_face_dispatch(struct session *s, struct mpqemu_face *f, struct mpqemu_msg *m);

/* The RET QEMU waits for, through session_output. */
int mpqemu_face_reply(struct session *s, uint64_t value);

#endif

/*
 * The session's request handlers, one file per concern: session.c
 * (handshake, device info, region access, reset, stats, dispatch),
 * session_mem.c (the memory table), session_irq.c (interrupts, IOMMU info),
 * session_mig.c (migration), session_dirty.c (dirty tracking).
 * Each handler gets the whole message (to take its descriptors) and returns
 * 0, or a negative errno with err set (answered by the dispatcher).
 */
#ifndef MPDEV_SESSION_HANDLERS_H
#define MPDEV_SESSION_HANDLERS_H

#include "session.h"

int session_send_reply(struct session *s, uint64_t id, Mpdev__Envelope *rep);
int session_send_ok(struct session *s, uint64_t id);

int handle_mem_table_set(struct session *s, struct wire_msg *m, struct mpdev_error *err);
int handle_mem_region_add(struct session *s, struct wire_msg *m, struct mpdev_error *err);
int handle_mem_region_remove(struct session *s, struct wire_msg *m, struct mpdev_error *err);

int handle_set_intx_irqfd(struct session *s, struct wire_msg *m, struct mpdev_error *err);
int handle_set_irqs(struct session *s, struct wire_msg *m, struct mpdev_error *err);
int session_send_error_reply(struct session *s, uint64_t id, const struct mpdev_error *e,
			     Mpdev__Envelope *rep);

/* session_mig.c: migration. session_mig_init reads the device's flags; the device is RUNNING. */
void session_mig_init(struct session *s);
int handle_mig_get_state(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err);
int handle_mig_set_state(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err);
int handle_mig_data_read(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err);
int handle_mig_data(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err);
int handle_mig_precopy_info(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err);

int handle_iommu_info(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err);

/* Whether this session's device can track dirty pages (the handshake offers the feature then). */
bool session_dirty_supported(const struct session *s);
int handle_dirty_start(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err);
int handle_dirty_stop(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err);
int handle_dirty_report(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err);

#endif

/* The Stats request: every counter of the remote, in the order docs/protocol.md lists them. */
#include <errno.h>

#include "closer.h"
#include "efdio.h"
#include "session_handlers.h"

int handle_stats(struct session *s, struct wire_msg *m, struct session_reply *rep,
		 struct mpdev_error *err)
{
	const struct server_stats *st = s->stats;
	const struct dma_stats *dma = &s->host->dma.stats;
	const struct iohub_stats *hub = iohub_get_stats(s->host->hub);
	const struct virq_stats *irq = &s->host->virq.stats;
	const struct efdio_stats *efd = efdio_get_stats();
	/* clang-format off: one counter a line, in the order docs/protocol.md lists them */
	const struct {
		const char *name;
		uint64_t value;
	} src[] = {
		{ "connections", st->connections },
		{ "refused_peers", st->refused_peers },
		{ "busy_refusals", st->busy_refusals },
		{ "messages", st->messages },
		{ "error_replies", st->error_replies },
		{ "protocol_errors", st->protocol_errors },
		{ "region_reads", st->region_reads },
		{ "region_writes", st->region_writes },
		{ "posted_writes", st->posted_writes },
		{ "resets", st->resets },
		{ "handshake_timeouts", st->handshake_timeouts },
		{ "accept_errors", st->accept_errors },
		{ "input_pauses", st->input_pauses },
		{ "mig_transitions", st->mig_transitions },
		{ "mig_bytes_saved", st->mig_bytes_saved },
		{ "mig_bytes_loaded", st->mig_bytes_loaded },
		{ "closes_pending", closer_backlog() },
		{ "mem_regions", s->host->dma.map.n },
		{ "dma_mmaps", dma->mmaps },
		{ "dma_munmaps", dma->munmaps },
		{ "dma_backend_maps", dma->backend_maps },
		{ "dma_backend_unmaps", dma->backend_unmaps },
		{ "dma_reads", dma->reads },
		{ "dma_writes", dma->writes },
		{ "dma_bytes_read", dma->bytes_read },
		{ "dma_bytes_written", dma->bytes_written },
		{ "dma_faults", dma->faults },
		{ "intx_changes", hub->source_changes },
		{ "iohub_irqfd_signals", hub->irqfd_signals },
		{ "iohub_resamples", hub->resamples },
		{ "iohub_reasserts", hub->reasserts },
		{ "iohub_lost_asserts", hub->lost_asserts },
		{ "vfio_intx_signals", irq->vfio_intx_signals },
		{ "vector_signals", irq->vector_signals },
		{ "vector_pending", irq->vector_pending },
		{ "vector_dropped", irq->vector_dropped },
		{ "eventfd_signals", efd->signals },
		{ "eventfd_signals_coalesced", efd->coalesced },
		{ "eventfd_signal_failures", efd->failures },
		{ "dirty_pages_marked", s->host->dma.dirty.stats.pages_marked },
		{ "dirty_reports", s->host->dma.dirty.stats.reports },
		{ "doorbell_rings", st->doorbell_rings },
		{ "doorbell_failures", st->doorbell_failures },
		{ "ring_setups", st->ring_setups },
		{ "ring_requests", st->ring_requests },
		{ "ring_errors", st->ring_errors },
		{ "ring_wakes", st->ring_wakes },
		{ "ring_sleeps", st->ring_sleeps },
		{ "ring_yields", st->ring_yields },
		{ "ring_broken", st->ring_broken },
	};
	/* clang-format on */
	enum { N = sizeof(src) / sizeof(src[0]) };
	Mpdev__Counter *counters = session_reply_alloc(rep, N * sizeof(*counters));
	Mpdev__Counter **ptrs = session_reply_alloc(rep, N * sizeof(*ptrs));
	Mpdev__Stats *stats = session_reply_alloc(rep, sizeof(*stats));

	if (!counters || !ptrs || !stats)
		return mpdev_error_set(err, ENOMEM, "reply too large");
	mpdev__stats__init(stats);

	for (size_t i = 0; i < N; i++) {
		mpdev__counter__init(&counters[i]);
		counters[i].name = (char *)src[i].name;
		counters[i].value = src[i].value;
		ptrs[i] = &counters[i];
	}
	stats->n_counters = N;
	stats->counters = ptrs;
	rep->env.body_case = MPDEV__ENVELOPE__BODY_STATS;
	rep->env.stats = stats;
	return 0;
}

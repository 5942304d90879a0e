/*
 * The real KVM tier: interrupts from a real mpdev-remote (serving edu) into
 * real KVM objects, with this program playing the VMM and the guest's
 * interrupt controller.
 *
 * The VM has an in-kernel irqchip and one vCPU that never runs guest code:
 * its LAPIC is enabled (SPIV) and put in x2APIC mode, one KVM_RUN lets KVM
 * process its pending requests (it may fail, e.g. with ENOSPC on a PVM host;
 * that is ignored), and the guest's part is done from here: taking an
 * interrupt is moving its vector from the LAPIC IRR to the ISR with
 * KVM_SET_LAPIC, and the EOI is a write of the x2APIC EOI MSR (0x80B) with
 * KVM_SET_MSRS. KVM then lowers a resample irqfd's line and signals its
 * resamplefd, as it does on a real guest's EOI.
 *
 *  - INTx: KVM_IRQFD(gsi, irqfd, RESAMPLE, resamplefd); the same eventfds go
 *    to the remote's IOHUB with mpdev_set_intx_irqfd. edu raises -> the
 *    IOAPIC pin is asserted; EOI -> KVM signals the resamplefd -> the IOHUB
 *    re-asserts since edu still holds the line; edu acked, EOI -> quiet.
 *  - MSI: a KVM_IRQ_ROUTING_MSI route and an irqfd on its GSI; that eventfd
 *    is edu's MSI trigger. edu raises with MSI enabled -> the vector lands in
 *    the LAPIC IRR.
 *
 * None of this is a guaranteed KVM interface for a program without guest
 * code: main() first goes through every KVM step on a throwaway VM, and if
 * the host refuses one, prints "SKIP: <step>: <reason>" and exits 77 (the
 * test's SKIP_RETURN_CODE) before any Check test runs. Every wait is bounded;
 * latency is not asserted.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libmpdev.h"
#include "remote_fixture.h"

#define SKIP_CODE 77

#define POLL_MS	 2000 /* bound on waiting for something to happen */
#define QUIET_MS 200  /* how long a line must stay quiet to count as quiet */

#define INTX_VECTOR 0x40
#define MSI_VECTOR  0x51
#define MSI_GSI	    24

#define MSR_IA32_APICBASE 0x1b
#define APICBASE_X2APIC	  0xc00 /* EN | EXTD */
#define MSR_X2APIC_EOI	  0x80b

#define APIC_SPIV 0xf0
#define APIC_ISR  0x100
#define APIC_IRR  0x200

/* edu */
#define EDU_RAISE	0x60
#define EDU_ACK		0x64
#define EDU_MSI_CTRL	0x42
#define EDU_MSI_ADDR_LO 0x44
#define EDU_MSI_ADDR_HI 0x48
#define EDU_MSI_DATA	0x4c

/* ---- KVM as the VMM and the guest's interrupt controller ---- */

struct kvm_vm {
	int kvm, vm, vcpu;
	struct kvm_run *run;
	size_t run_size;
};

/* A KVM step that failed: which, and its errno. */
struct kvm_fail {
	const char *step;
	int err;
};

static int step_fail(struct kvm_fail *f, const char *step, int err)
{
	f->step = step;
	f->err = err > 0 ? err : EINVAL;
	return -f->err;
}

#define TRY(f, step, expr)                                                                         \
	do {                                                                                       \
		if ((expr) < 0)                                                                    \
			return step_fail((f), (step), errno);                                      \
	} while (0)

static void kvm_vm_close(struct kvm_vm *k)
{
	if (k->run && k->run != MAP_FAILED)
		munmap(k->run, k->run_size);
	k->run = NULL;
	if (k->vcpu >= 0)
		close(k->vcpu);
	if (k->vm >= 0)
		close(k->vm);
	if (k->kvm >= 0)
		close(k->kvm);
	k->kvm = k->vm = k->vcpu = -1;
}

static int set_msr(struct kvm_vm *k, uint32_t index, uint64_t value)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m = { .hdr.nmsrs = 1, .e.index = index, .e.data = value };
	int r = ioctl(k->vcpu, KVM_SET_MSRS, &m);

	/* KVM_SET_MSRS returns how many it set; 0 means this one was refused. */
	if (r < 0)
		return -errno;
	return r == 1 ? 0 : -EINVAL;
}

static int get_msr(struct kvm_vm *k, uint32_t index, uint64_t *value)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m = { .hdr.nmsrs = 1, .e.index = index };
	int r = ioctl(k->vcpu, KVM_GET_MSRS, &m);

	if (r < 0)
		return -errno;
	*value = m.e.data;
	return r == 1 ? 0 : -EINVAL;
}

static int set_cpuid(struct kvm_vm *k, struct kvm_fail *f)
{
	for (unsigned n = 128; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		int r;

		if (!c)
			return step_fail(f, "allocating the CPUID table", ENOMEM);
		c->nent = n;
		r = ioctl(k->kvm, KVM_GET_SUPPORTED_CPUID, c);
		if (r < 0 && errno == E2BIG) {
			free(c);
			continue;
		}
		if (r < 0) {
			r = errno;
			free(c);
			return step_fail(f, "KVM_GET_SUPPORTED_CPUID", r);
		}
		r = ioctl(k->vcpu, KVM_SET_CPUID2, c) < 0 ? errno : 0;
		free(c);
		return r ? step_fail(f, "KVM_SET_CPUID2", r) : 0;
	}
	return step_fail(f, "KVM_GET_SUPPORTED_CPUID", E2BIG);
}

static int get_ioapic(struct kvm_vm *k, struct kvm_ioapic_state *s)
{
	struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_IOAPIC };

	if (ioctl(k->vm, KVM_GET_IRQCHIP, &chip) < 0)
		return -errno;
	*s = chip.chip.ioapic;
	return 0;
}

/* A level-triggered, unmasked, fixed-delivery entry to vCPU 0 for gsi. */
static int program_ioapic(struct kvm_vm *k, unsigned gsi, unsigned vector)
{
	struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_IOAPIC };

	if (ioctl(k->vm, KVM_GET_IRQCHIP, &chip) < 0)
		return -errno;
	chip.chip.ioapic.redirtbl[gsi].bits = 0;
	chip.chip.ioapic.redirtbl[gsi].fields.vector = vector;
	chip.chip.ioapic.redirtbl[gsi].fields.delivery_mode = 0; /* fixed */
	chip.chip.ioapic.redirtbl[gsi].fields.dest_mode = 0;	 /* physical */
	chip.chip.ioapic.redirtbl[gsi].fields.trig_mode = 1;	 /* level */
	chip.chip.ioapic.redirtbl[gsi].fields.mask = 0;
	chip.chip.ioapic.redirtbl[gsi].fields.dest_id = 0; /* vCPU 0's APIC id */
	return ioctl(k->vm, KVM_SET_IRQCHIP, &chip) < 0 ? -errno : 0;
}

/*
 * VM, irqchip, one vCPU with an enabled x2APIC, the IOAPIC entry for gsi,
 * and one KVM_RUN so that KVM scans the IOAPIC (without it, the EOI of the
 * vector is not forwarded to the IOAPIC and no resample happens).
 */
static int kvm_vm_open(struct kvm_vm *k, unsigned gsi, struct kvm_fail *f)
{
	static const struct {
		long cap;
		const char *name;
	} caps[] = {
		{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
		{ KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
		{ KVM_CAP_IRQFD_RESAMPLE, "KVM_CAP_IRQFD_RESAMPLE" },
		{ KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING" },
	};
	struct kvm_lapic_state lapic;
	uint32_t spiv = 0x1ff; /* APIC software enable, spurious vector 0xff */
	uint64_t apicbase = 0;
	int r, sz;

	k->kvm = k->vm = k->vcpu = -1;
	k->run = NULL;
	k->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	TRY(f, "open /dev/kvm", k->kvm);
	r = ioctl(k->kvm, KVM_GET_API_VERSION, 0);
	TRY(f, "KVM_GET_API_VERSION", r);
	if (r != KVM_API_VERSION)
		return step_fail(f, "KVM_GET_API_VERSION (not 12)", EPROTO);
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		r = ioctl(k->kvm, KVM_CHECK_EXTENSION, caps[i].cap);
		TRY(f, caps[i].name, r);
		if (r == 0)
			return step_fail(f, caps[i].name, EOPNOTSUPP);
	}
	k->vm = ioctl(k->kvm, KVM_CREATE_VM, 0);
	TRY(f, "KVM_CREATE_VM", k->vm);
	TRY(f, "KVM_CREATE_IRQCHIP", ioctl(k->vm, KVM_CREATE_IRQCHIP, 0));
	k->vcpu = ioctl(k->vm, KVM_CREATE_VCPU, 0);
	TRY(f, "KVM_CREATE_VCPU", k->vcpu);
	sz = ioctl(k->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	TRY(f, "KVM_GET_VCPU_MMAP_SIZE", sz);
	k->run_size = (size_t)sz;
	k->run = mmap(NULL, k->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, k->vcpu, 0);
	if (k->run == MAP_FAILED) {
		k->run = NULL;
		return step_fail(f, "mmap of the vCPU's kvm_run", errno);
	}
	r = set_cpuid(k, f);
	if (r < 0)
		return r;
	TRY(f, "KVM_GET_LAPIC", ioctl(k->vcpu, KVM_GET_LAPIC, &lapic));
	memcpy(lapic.regs + APIC_SPIV, &spiv, sizeof(spiv));
	TRY(f, "KVM_SET_LAPIC (SPIV: enable the LAPIC)", ioctl(k->vcpu, KVM_SET_LAPIC, &lapic));
	r = get_msr(k, MSR_IA32_APICBASE, &apicbase);
	if (r < 0)
		return step_fail(f, "KVM_GET_MSRS (IA32_APICBASE)", -r);
	r = set_msr(k, MSR_IA32_APICBASE, apicbase | APICBASE_X2APIC);
	if (r < 0)
		return step_fail(f, "KVM_SET_MSRS (IA32_APICBASE: x2APIC mode)", -r);
	r = program_ioapic(k, gsi, INTX_VECTOR);
	if (r < 0)
		return step_fail(f, "KVM_GET/SET_IRQCHIP (IOAPIC redirection entry)", -r);
	/* No guest code to run: this fails (ENOSPC on PVM) after KVM's pending work. */
	(void)ioctl(k->vcpu, KVM_RUN, 0);
	return 0;
}

static int kvm_irqfd(struct kvm_vm *k, int fd, unsigned gsi, int resamplefd)
{
	struct kvm_irqfd req = { .fd = (uint32_t)fd, .gsi = gsi };

	if (resamplefd >= 0) {
		req.flags = KVM_IRQFD_FLAG_RESAMPLE;
		req.resamplefd = (uint32_t)resamplefd;
	}
	return ioctl(k->vm, KVM_IRQFD, &req) < 0 ? -errno : 0;
}

/* KVM_SET_GSI_ROUTING: the default irqchip routes of GSIs 0-23 plus gsi as MSI. */
static int route_msi(struct kvm_vm *k, unsigned gsi, unsigned vector)
{
	struct {
		struct kvm_irq_routing hdr;
		struct kvm_irq_routing_entry e[64];
	} rt;
	unsigned n = 0;

	memset(&rt, 0, sizeof(rt));
	for (unsigned i = 0; i < 24; i++) {
		rt.e[n].gsi = i;
		rt.e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		rt.e[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		rt.e[n].u.irqchip.pin = i;
		n++;
		if (i < 16 && i != 2) {
			rt.e[n].gsi = i;
			rt.e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
			rt.e[n].u.irqchip.irqchip =
				i < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
			rt.e[n].u.irqchip.pin = i % 8;
			n++;
		}
	}
	rt.e[n].gsi = gsi;
	rt.e[n].type = KVM_IRQ_ROUTING_MSI;
	rt.e[n].u.msi.address_lo = 0xfee00000; /* physical destination APIC id 0 */
	rt.e[n].u.msi.address_hi = 0;
	rt.e[n].u.msi.data = vector; /* fixed, edge */
	n++;
	rt.hdr.nr = n;
	return ioctl(k->vm, KVM_SET_GSI_ROUTING, &rt) < 0 ? -errno : 0;
}

static int lapic_get(struct kvm_vm *k, struct kvm_lapic_state *l)
{
	return ioctl(k->vcpu, KVM_GET_LAPIC, l) < 0 ? -errno : 0;
}

static bool lapic_bit(const struct kvm_lapic_state *l, unsigned base, unsigned vector)
{
	uint32_t w;

	memcpy(&w, l->regs + base + 0x10 * (vector / 32), sizeof(w));
	return (w >> (vector % 32)) & 1;
}

static void lapic_set_bit(struct kvm_lapic_state *l, unsigned base, unsigned vector, bool on)
{
	uint32_t w;

	memcpy(&w, l->regs + base + 0x10 * (vector / 32), sizeof(w));
	if (on)
		w |= 1u << (vector % 32);
	else
		w &= ~(1u << (vector % 32));
	memcpy(l->regs + base + 0x10 * (vector / 32), &w, sizeof(w));
}

/*
 * Goes through every KVM step the tests use on a throwaway VM, so that a
 * host that refuses one is a skip, not a failure. The semantics (does the
 * EOI signal the resamplefd, does the MSI land) are left to the tests.
 */
static int kvm_probe(struct kvm_fail *f)
{
	struct kvm_vm k;
	struct kvm_lapic_state l;
	int irqfd = eventfd(0, EFD_CLOEXEC), resamplefd = eventfd(0, EFD_CLOEXEC);
	int msifd = eventfd(0, EFD_CLOEXEC);
	int r;

	if (irqfd < 0 || resamplefd < 0 || msifd < 0) {
		r = step_fail(f, "eventfd", errno);
		goto out_fds;
	}
	r = kvm_vm_open(&k, 5, f);
	if (r < 0)
		goto out;
	r = kvm_irqfd(&k, irqfd, 5, resamplefd);
	if (r < 0) {
		step_fail(f, "KVM_IRQFD with KVM_IRQFD_FLAG_RESAMPLE", -r);
		goto out;
	}
	r = lapic_get(&k, &l);
	if (r < 0) {
		step_fail(f, "KVM_GET_LAPIC", -r);
		goto out;
	}
	r = ioctl(k.vcpu, KVM_SET_LAPIC, &l) < 0 ? -errno : 0;
	if (r < 0) {
		step_fail(f, "KVM_SET_LAPIC", -r);
		goto out;
	}
	r = set_msr(&k, MSR_X2APIC_EOI, 0);
	if (r < 0) {
		step_fail(f, "KVM_SET_MSRS (x2APIC EOI MSR 0x80b)", -r);
		goto out;
	}
	r = get_ioapic(&k, &(struct kvm_ioapic_state){ 0 });
	if (r < 0) {
		step_fail(f, "KVM_GET_IRQCHIP (IOAPIC)", -r);
		goto out;
	}
	r = route_msi(&k, MSI_GSI, MSI_VECTOR);
	if (r < 0) {
		step_fail(f, "KVM_SET_GSI_ROUTING (MSI route)", -r);
		goto out;
	}
	r = kvm_irqfd(&k, msifd, MSI_GSI, -1);
	if (r < 0)
		step_fail(f, "KVM_IRQFD on the MSI route", -r);
out:
	kvm_vm_close(&k);
out_fds:
	if (irqfd >= 0)
		close(irqfd);
	if (resamplefd >= 0)
		close(resamplefd);
	if (msifd >= 0)
		close(msifd);
	return r;
}

/* ---- fixture: one VM and one remote per test ---- */

static const struct mpdev_options opts = { .timeout_ms = 3000, .client_name = "test_kvm_irq" };

static struct kvm_vm vm;
static struct remote rem;

/* The GSI (IOAPIC pin) and the remote's PIRQ of the INTx loop test. */
static const struct {
	unsigned gsi, pirq;
} intx_routes[] = { { 5, 5 }, { 16, 0 } };

static void setup_for(unsigned gsi)
{
	struct kvm_fail f = { 0 };

	ck_assert_msg(kvm_vm_open(&vm, gsi, &f) == 0, "%s: %s", f.step, strerror(f.err));
	remote_start(&rem, &(struct remote_opts){ .mpdev = &opts });
	ck_assert(mpdev_features(rem.dev) & MPDEV_FEATURE_INTX_IRQFD);
	ck_assert(mpdev_features(rem.dev) & MPDEV_FEATURE_SET_IRQS);
	ck_assert(mpdev_features(rem.dev) & MPDEV_FEATURE_STATS);
}

static void teardown(void)
{
	/* The remote serves one adopted connection and exits 0 when it closes. */
	remote_stop(&rem);
	kvm_vm_close(&vm);
}

/* ---- helpers ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(void)
{
	struct timespec ts = { 0, 500 * 1000 }; /* between polls only */

	nanosleep(&ts, NULL);
}

static void bar0_write(uint64_t off, uint32_t v)
{
	ck_assert_msg(mpdev_region_write(rem.dev, MPDEV_REGION_BAR0, off, &v, 4) == 0, "%s",
		      mpdev_last_error(rem.dev));
	ck_assert_msg(mpdev_sync(rem.dev) == 0, "%s", mpdev_last_error(rem.dev));
}

struct pin_state {
	bool irr, remote_irr;
};

static struct pin_state pin_state(unsigned gsi)
{
	struct kvm_ioapic_state s;
	struct pin_state p;

	ck_assert_int_eq(get_ioapic(&vm, &s), 0);
	p.irr = (s.irr >> gsi) & 1;
	p.remote_irr = s.redirtbl[gsi].fields.remote_irr;
	return p;
}

/* Polls the IOAPIC until the pin is asserted (irr and remote_irr), bounded. */
static void wait_pin_asserted(unsigned gsi, const char *why)
{
	int64_t end = now_ms() + POLL_MS;
	struct pin_state p;

	for (;;) {
		p = pin_state(gsi);
		if (p.irr && p.remote_irr)
			return;
		if (now_ms() > end)
			break;
		nap();
	}
	ck_abort_msg("%s: IOAPIC pin %u not asserted within %d ms (irr %d, remote_irr %d)", why,
		     gsi, POLL_MS, p.irr, p.remote_irr);
}

/* Checks over QUIET_MS that the pin stays deasserted. */
static void check_pin_stays_quiet(unsigned gsi, const char *why)
{
	int64_t end = now_ms() + QUIET_MS;

	do {
		struct pin_state p = pin_state(gsi);

		ck_assert_msg(!p.irr && !p.remote_irr, "%s: IOAPIC pin %u irr %d remote_irr %d",
			      why, gsi, p.irr, p.remote_irr);
		nap();
	} while (now_ms() < end);
}

/* Polls the LAPIC IRR until vector is requested there, bounded. */
static void wait_lapic_irr(unsigned vector, const char *why)
{
	int64_t end = now_ms() + POLL_MS;
	struct kvm_lapic_state l;

	for (;;) {
		ck_assert_int_eq(lapic_get(&vm, &l), 0);
		if (lapic_bit(&l, APIC_IRR, vector))
			return;
		if (now_ms() > end)
			break;
		nap();
	}
	ck_abort_msg("%s: vector %#x not in the LAPIC IRR within %d ms", why, vector, POLL_MS);
}

/*
 * The guest takes the interrupt and EOIs it: the vector moves from the IRR
 * to the ISR (what the CPU's interrupt acknowledge does), then the x2APIC
 * EOI MSR is written. For a level-triggered IOAPIC vector KVM forwards the
 * EOI to the IOAPIC, which clears remote_irr, lowers a resample irqfd's
 * line and signals its resamplefd before KVM_SET_MSRS returns.
 */
static void guest_take_and_eoi(unsigned vector)
{
	struct kvm_lapic_state l;

	wait_lapic_irr(vector, "before the EOI");
	ck_assert_int_eq(lapic_get(&vm, &l), 0);
	lapic_set_bit(&l, APIC_IRR, vector, false);
	lapic_set_bit(&l, APIC_ISR, vector, true);
	ck_assert_msg(ioctl(vm.vcpu, KVM_SET_LAPIC, &l) == 0, "KVM_SET_LAPIC: %s", strerror(errno));
	ck_assert_int_eq(set_msr(&vm, MSR_X2APIC_EOI, 0), 0);
	ck_assert_int_eq(lapic_get(&vm, &l), 0);
	ck_assert_msg(!lapic_bit(&l, APIC_ISR, vector), "the EOI left vector %#x in the ISR",
		      vector);
}

struct stats {
	uint64_t irqfd_signals, resamples, reasserts, lost_asserts;
	uint64_t intx_changes, vector_signals, vector_dropped;
};

static void on_counter(void *opaque, const char *name, uint64_t value)
{
	struct stats *s = opaque;

	if (!strcmp(name, "iohub_irqfd_signals"))
		s->irqfd_signals = value;
	else if (!strcmp(name, "iohub_resamples"))
		s->resamples = value;
	else if (!strcmp(name, "iohub_reasserts"))
		s->reasserts = value;
	else if (!strcmp(name, "iohub_lost_asserts"))
		s->lost_asserts = value;
	else if (!strcmp(name, "intx_changes"))
		s->intx_changes = value;
	else if (!strcmp(name, "vector_signals"))
		s->vector_signals = value;
	else if (!strcmp(name, "vector_dropped"))
		s->vector_dropped = value;
}

static struct stats get_stats(void)
{
	struct stats s = { 0 };

	ck_assert_msg(mpdev_get_stats(rem.dev, on_counter, &s) > 0, "%s",
		      mpdev_last_error(rem.dev));
	return s;
}

/* Polls the remote's counters until it has handled n resamples, bounded. */
static struct stats wait_resamples(uint64_t n)
{
	int64_t end = now_ms() + POLL_MS;
	struct stats s;

	for (;;) {
		s = get_stats();
		if (s.resamples >= n)
			return s;
		if (now_ms() > end)
			break;
		nap();
	}
	ck_abort_msg("the remote handled %llu resamples within %d ms, expected %llu",
		     (unsigned long long)s.resamples, POLL_MS, (unsigned long long)n);
	return s;
}

/* ---- tests ---- */

START_TEST(intx_level_resample_cycle_through_kvm)
{
	const unsigned gsi = intx_routes[_i].gsi, pirq = intx_routes[_i].pirq;
	int irqfd, resamplefd, r;
	struct stats s;

	setup_for(gsi);
	irqfd = eventfd(0, EFD_CLOEXEC);
	resamplefd = eventfd(0, EFD_CLOEXEC);
	ck_assert(irqfd >= 0 && resamplefd >= 0);
	r = kvm_irqfd(&vm, irqfd, gsi, resamplefd);
	ck_assert_msg(r == 0, "KVM_IRQFD (resample): %s", strerror(-r));
	/* The remote gets its own copies (SCM_RIGHTS) of the same two eventfds. */
	ck_assert_msg(mpdev_set_intx_irqfd(rem.dev, 0, pirq, irqfd, resamplefd) == 0, "%s",
		      mpdev_last_error(rem.dev));
	check_pin_stays_quiet(gsi, "before the device raised");

	/* edu raises: the IOHUB writes the irqfd, KVM asserts the pin. */
	bar0_write(EDU_RAISE, 1);
	wait_pin_asserted(gsi, "after the raise");
	wait_lapic_irr(INTX_VECTOR, "after the raise");
	s = get_stats();
	ck_assert_uint_eq(s.irqfd_signals, 1);
	ck_assert_uint_eq(s.resamples, 0);

	/*
	 * EOI: KVM lowers the line and signals the resamplefd; edu still holds
	 * its line, so the IOHUB writes the irqfd again and KVM re-asserts.
	 */
	guest_take_and_eoi(INTX_VECTOR);
	s = wait_resamples(1);
	wait_pin_asserted(gsi, "after the first EOI, the device still raising");
	s = get_stats();
	ck_assert_uint_eq(s.resamples, 1);
	ck_assert_uint_eq(s.reasserts, 1);
	ck_assert_uint_eq(s.irqfd_signals, 2);

	/* edu acked: its line drops, but KVM keeps the pin until the EOI. */
	bar0_write(EDU_ACK, 1);
	ck_assert_int_eq(pin_state(gsi).irr, 1);
	guest_take_and_eoi(INTX_VECTOR);
	/* KVM lowered the pin before KVM_SET_MSRS returned. */
	ck_assert_int_eq(pin_state(gsi).irr, 0);
	ck_assert_int_eq(pin_state(gsi).remote_irr, 0);
	/* The remote resampled and, its line being low, did not re-assert. */
	s = wait_resamples(2);
	ck_assert_int_eq(mpdev_sync(rem.dev), 0);
	check_pin_stays_quiet(gsi, "after the ack and the EOI");
	s = get_stats();
	ck_assert_uint_eq(s.resamples, 2);
	ck_assert_uint_eq(s.reasserts, 1);
	ck_assert_uint_eq(s.irqfd_signals, 2);
	ck_assert_uint_eq(s.lost_asserts, 0);
	ck_assert_uint_eq(s.intx_changes, 2);

	close(irqfd);
	close(resamplefd);
}
END_TEST

START_TEST(msi_through_a_kvm_msi_route)
{
	int msifd, r;
	struct kvm_lapic_state l;
	uint32_t v;
	struct stats s;

	setup_for(5);
	r = route_msi(&vm, MSI_GSI, MSI_VECTOR);
	ck_assert_msg(r == 0, "KVM_SET_GSI_ROUTING: %s", strerror(-r));
	msifd = eventfd(0, EFD_CLOEXEC);
	ck_assert(msifd >= 0);
	r = kvm_irqfd(&vm, msifd, MSI_GSI, -1);
	ck_assert_msg(r == 0, "KVM_IRQFD (MSI): %s", strerror(-r));
	/* The same eventfd becomes edu's MSI trigger in the remote. */
	ck_assert_msg(mpdev_set_irqs_eventfd(rem.dev, MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_TRIGGER, 0, 1,
					     &msifd) == 0,
		      "%s", mpdev_last_error(rem.dev));

	/* The guest programs and enables edu's MSI capability. */
	ck_assert_int_eq(mpdev_config_write(rem.dev, EDU_MSI_ADDR_LO, 4, 0xfee00000), 0);
	ck_assert_int_eq(mpdev_config_write(rem.dev, EDU_MSI_ADDR_HI, 4, 0), 0);
	ck_assert_int_eq(mpdev_config_write(rem.dev, EDU_MSI_DATA, 2, MSI_VECTOR), 0);
	ck_assert_int_eq(mpdev_config_read(rem.dev, EDU_MSI_CTRL, 2, &v), 0);
	ck_assert_int_eq(mpdev_config_write(rem.dev, EDU_MSI_CTRL, 2, v | 1), 0);
	ck_assert_int_eq(mpdev_config_read(rem.dev, EDU_MSI_CTRL, 2, &v), 0);
	ck_assert_uint_eq(v & 1, 1);

	ck_assert_int_eq(lapic_get(&vm, &l), 0);
	ck_assert(!lapic_bit(&l, APIC_IRR, MSI_VECTOR));
	bar0_write(EDU_RAISE, 1);
	wait_lapic_irr(MSI_VECTOR, "after the raise with MSI enabled");
	s = get_stats();
	ck_assert_uint_eq(s.vector_signals, 1);
	ck_assert_uint_eq(s.vector_dropped, 0);
	ck_assert_uint_eq(s.intx_changes, 0); /* MSI enabled: no INTx */
	bar0_write(EDU_ACK, 1);

	close(msifd);
}
END_TEST

static Suite *kvm_suite(void)
{
	Suite *s = suite_create("kvm");
	TCase *tc = tcase_create("irq");

	/* setup_for() takes the GSI, so each test calls it; the teardown is shared. */
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, intx_level_resample_cycle_through_kvm, 0,
			    (int)(sizeof(intx_routes) / sizeof(intx_routes[0])));
	tcase_add_test(tc, msi_through_a_kvm_msi_route);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	struct kvm_fail f = { 0 };
	SRunner *sr;
	int failed;

	/* Before any Check test: a host that refuses a KVM step is a skip. */
	if (kvm_probe(&f) < 0) {
		printf("SKIP: %s: %s\n", f.step, strerror(f.err));
		return SKIP_CODE;
	}
	signal(SIGPIPE, SIG_IGN);
	sr = srunner_create(kvm_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

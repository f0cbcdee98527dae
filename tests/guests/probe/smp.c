/*
 * smp.c: CPUID facts of the BSP, the local APIC, and AP start-up with
 * INIT-SIPI-SIPI (MP spec 1.4, appendix B.4). Each AP runs the trampoline in
 * entry.S, records what CPUID says about it and halts.
 */
#include "probe.h"

#define AP_TRAMPOLINE 0x8000 /* SIPI vector 0x08 */
#define LAPIC_DEFAULT 0xfee00000
#define LAPIC_TPR 0x080
#define LAPIC_EOI 0x0b0
#define LAPIC_SVR 0x0f0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define ICR_PENDING (1u << 12)
#define ICR_INIT_ALL 0x000c4500 /* all-excluding-self, level assert, INIT */
#define ICR_SIPI_ALL (0x000c4600 | (AP_TRAMPOLINE >> 12))

struct cpu_rec cpus[CPU_MAX];
u32 cpu_count;
u32 bsp_apic;
int has_leaf_b;
int topo_valid;
u32 smt_shift, core_shift, threads_per_core, logical_per_package;
u32 lapic_base = LAPIC_DEFAULT;

volatile u32 ap_stack_next; /* lock xadd in entry.S: stack slot per AP */
static volatile u32 ap_arrived;

extern const u8 ap_tramp_start[], ap_tramp_end[];

/* Topology from leaf 0xB or 0x1F: level 0 gives the SMT shift and threads per
 * core; the last level reported gives the package shift ("core_shift", the
 * shift that yields the package ID) and the logical processors per package. */
static int topology(u32 leaf)
{
	u32 r[4];
	cpuid(leaf, 0, r);
	if (!(r[1] & 0xffff))
		return 0;
	smt_shift = core_shift = r[0] & 0x1f;
	threads_per_core = logical_per_package = r[1] & 0xffff;
	for (u32 sub = 1; sub < 8; sub++) {
		cpuid(leaf, sub, r);
		if (!(r[2] & 0xff00))
			break;
		core_shift = r[0] & 0x1f;
		logical_per_package = r[1] & 0xffff;
	}
	return 1;
}

void cpu_report(void)
{
	u32 r[4], max;
	cpuid(0, 0, r);
	max = r[0];
	u32 vendor[3] = {r[1], r[3], r[2]};
	pr("cpu.vendor: %.12s\n", (const char *)vendor);

	cpuid(1, 0, r);
	u32 fam = (r[0] >> 8) & 0xf, model = (r[0] >> 4) & 0xf;
	if (fam == 0xf || fam == 6)
		model += ((r[0] >> 16) & 0xf) << 4;
	if (fam == 0xf)
		fam += (r[0] >> 20) & 0xff;
	pr("cpu.signature: family=%u model=%u stepping=%u\n", fam, model, r[0] & 0xf);
	bsp_apic = r[1] >> 24;

	if (r[2] & (1u << 31)) {
		cpuid(0x40000000, 0, r);
		u32 sig[3] = {r[1], r[2], r[3]};
		int n = 12;
		while (n > 0 && !((const char *)sig)[n - 1])
			n--;
		pr("cpu.hypervisor: %.*s max_leaf=0x%x\n", n, (const char *)sig, r[0]);
	}

	has_leaf_b = max >= 0xb && topology(0xb);
	topo_valid = has_leaf_b;
	if (max >= 0x1f && topology(0x1f))
		topo_valid = 1;
	if (topo_valid)
		pr("cpu.topology: smt_shift=%u core_shift=%u threads_per_core=%u logical_per_package=%u\n",
		   smt_shift, core_shift, threads_per_core, logical_per_package);
	else
		pr("cpu.topology: none\n");
}

static u32 lapic_read(u32 reg) { return rd32(lapic_base + reg); }
static void lapic_write(u32 reg, u32 v) { wr32(lapic_base + reg, v); }
void lapic_eoi(void) { lapic_write(LAPIC_EOI, 0); }

static void lapic_ipi(u32 icr)
{
	u32 t0 = pit_now();
	while ((lapic_read(LAPIC_ICR_LO) & ICR_PENDING) && pit_now() - t0 < TICKS_MS(1))
		;
	lapic_write(LAPIC_ICR_HI, 0);
	lapic_write(LAPIC_ICR_LO, icr);
}

/* A CPU's full APIC ID: CPUID.1's 8-bit one, or the x2APIC one from leaf
 * 0xB (which holds all 32 bits) where that leaf exists. */
static u32 cpu_id(const struct cpu_rec *c)
{
	return has_leaf_b ? c->x2apic : c->apic;
}

static void record_self(struct cpu_rec *c)
{
	u32 r[4];
	cpuid(1, 0, r);
	c->apic = r[1] >> 24;
	if (has_leaf_b) {
		cpuid(0xb, 0, r);
		c->x2apic = r[3];
	}
}

void ap_main(u32 idx);
void ap_main(u32 idx)
{
	idt_load(); /* an exception is then reported instead of a triple fault */
	record_self(&cpus[idx + 1]);
	__atomic_fetch_add(&ap_arrived, 1, __ATOMIC_SEQ_CST);
}

void smp_start(u32 expected)
{
	outb(0x21, 0xff); /* mask both 8259s */
	outb(0xa1, 0xff);
	lapic_write(LAPIC_SVR, 0x100 | 0xff); /* APIC software enable, spurious 0xFF */
	lapic_write(LAPIC_TPR, 0);
	memcpy(phys(AP_TRAMPOLINE), ap_tramp_start, ap_tramp_end - ap_tramp_start);
	record_self(&cpus[0]);
	cpus[0].bsp = 1;

	lapic_ipi(ICR_INIT_ALL);
	delay_ticks(TICKS_MS(10));
	lapic_ipi(ICR_SIPI_ALL);
	delay_ticks(TICKS_US(200));
	lapic_ipi(ICR_SIPI_ALL);

	/* expected known: until all have arrived (AP_WAIT_MS max); unknown:
	 * until none new for 100 ms (1 s max) */
	u32 t0 = pit_now(), last = t0, seen = 0;
	for (;;) {
		u32 now = pit_now(), a = ap_arrived;
		if (expected && a >= expected - 1)
			break;
		if (now - t0 > TICKS_MS(expected ? AP_WAIT_MS : 1000))
			break;
		if (a != seen) {
			seen = a;
			last = now;
		}
		if (!expected && now - last > TICKS_MS(100))
			break;
	}
	u32 n = ap_arrived;
	cpu_count = 1 + (n < CPU_MAX - 1 ? n : CPU_MAX - 1);

	/* sort by APIC ID, the x2APIC one where present (insertion sort;
	 * usually already in order) */
	for (u32 i = 1; i < cpu_count; i++) {
		struct cpu_rec x = cpus[i];
		u32 j = i;
		for (; j > 0 && cpu_id(&cpus[j - 1]) > cpu_id(&x); j--)
			cpus[j] = cpus[j - 1];
		cpus[j] = x;
	}
}

void smp_report(u32 expected, const char *source)
{
	pr("cpu.bsp: apic=%u\n", bsp_apic);
	for (u32 i = 0; i < cpu_count; i++) {
		pr("cpu[%u]: apic=%u x2apic=", i, cpus[i].apic);
		if (has_leaf_b)
			pr("%u", cpus[i].x2apic);
		else
			pr("-");
		pr("%s\n", cpus[i].bsp ? " bsp" : "");
	}
	pr("cpu.count: %u expected=", cpu_count);
	if (expected)
		pr("%u", expected);
	else
		pr("-");
	pr(" source=%s\n", source);
}

/* 1 when the sorted ids[0..n) equal the APIC IDs (cpu_id) of the started
 * CPUs whose ID is at most max_id. */
int cpus_match(const u32 *ids, u32 n, u32 max_id)
{
	static u32 got[CPU_MAX];
	u32 m = 0;
	for (u32 i = 0; i < cpu_count; i++) {
		u32 id = cpu_id(&cpus[i]);
		if (id <= max_id)
			got[m++] = id;
	}
	if (n != m)
		return 0;
	sort_u32(got, m);
	return !memcmp(got, ids, n * 4);
}

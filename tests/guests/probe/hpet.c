/*
 * hpet.c: HPET capabilities (IA-PC HPET spec 1.0a, 2.3) and a one-shot,
 * edge-triggered timer interrupt routed through the IOAPIC to vector 0x40.
 */
#include "probe.h"

#define HPET_CAP 0x000    /* 31:16 vendor, 15 LEG_RT_CAP, 13 COUNT_SIZE_CAP, 12:8 NUM_TIM_CAP; 63:32 period (fs) */
#define HPET_CONF 0x010   /* 0 ENABLE_CNF, 1 LEG_RT_CNF */
#define HPET_COUNTER 0x0f0
#define HPET_TN_CONF(n) (0x100 + 0x20 * (n)) /* 2 INT_ENB, 3 TYPE (periodic), 8 32MODE, 13:9 INT_ROUTE; 63:32 INT_ROUTE_CAP */
#define HPET_TN_CMP(n) (0x108 + 0x20 * (n))
#define TN_INT_ENB (1u << 2)

#define IRQ_VECTOR 0x40

static u64 counter(u32 base)
{
	u32 hi, lo;
	do {
		hi = rd32(base + HPET_COUNTER + 4);
		lo = rd32(base + HPET_COUNTER);
	} while (hi != rd32(base + HPET_COUNTER + 4));
	return (u64)hi << 32 | lo;
}

void hpet_report(void)
{
	if (!acpi_hpet || rd32(acpi_hpet + 4) < 56 || rd32(acpi_hpet + 48)) {
		check("hpet.irq", CHECK_SKIP, "no HPET table");
		return;
	}
	u32 base = rd32(acpi_hpet + 44); /* base address GAS at 40: address at 44 */
	u32 cap = rd32(base + HPET_CAP), period = rd32(base + HPET_CAP + 4);
	u32 timers = ((cap >> 8) & 0x1f) + 1;
	pr("hpet: addr=0x%08x timers=%u period_fs=%u counter=%u legacy_capable=%s\n", base, timers, period,
	   cap & (1 << 13) ? 64 : 32, cap & (1 << 15) ? "yes" : "no");
	if (!ioapic_count) {
		check("hpet.irq", CHECK_SKIP, "no IOAPIC");
		return;
	}
	if (period < 1000 || period > 100000000) { /* spec: 0 < period <= 100 ns */
		check("hpet.irq", CHECK_FAIL, "bad period");
		return;
	}
	u32 entries = ((ioapic_read(1) >> 16) & 0xff) + 1;
	/* first timer that can route to an IOAPIC pin >= 16; its lowest such pin */
	u32 tn = 0, pin = 0;
	for (; tn < timers && !pin; tn++) {
		u32 route = rd32(base + HPET_TN_CONF(tn) + 4);
		for (u32 i = 16; i < 32 && i < entries && !pin; i++)
			if (route & (1u << i))
				pin = i;
	}
	if (!pin) {
		check("hpet.irq", CHECK_FAIL, "no timer routable to pin >= 16");
		return;
	}
	tn--;
	u32 conf = rd32(base + HPET_CONF);
	wr32(base + HPET_CONF, (conf & ~2u) | 1); /* counter on, legacy routing off */

	/* IOAPIC redirection entry: vector 0x40, fixed, physical, edge, active high */
	ioapic_write(0x11 + 2 * pin, bsp_apic << 24);
	ioapic_write(0x10 + 2 * pin, IRQ_VECTOR);

	u32 tconf = rd32(base + HPET_TN_CONF(tn)) & ~(0x1fu << 9 | 1u << 1 | TN_INT_ENB | 1u << 3 | 1u << 8 | 1u << 14);
	/* One-shot, edge, ~10 ms ahead. A comparator the counter has already
	 * passed fires only when the counter comes round again (2.3.9.2.1):
	 * if this vCPU was held off the CPU long enough for that, try again. */
	u64 delta = 10 * (1000000000u / (period / 1000)), t0 = 0;
	for (int tries = 0; tries < 10; tries++) {
		wr32(base + HPET_TN_CONF(tn), tconf | pin << 9); /* disabled */
		t0 = counter(base);
		u64 cmp = t0 + delta;
		wr32(base + HPET_TN_CMP(tn), (u32)cmp);
		wr32(base + HPET_TN_CMP(tn) + 4, (u32)(cmp >> 32));
		irq_seen[0] = 0;
		wr32(base + HPET_TN_CONF(tn), tconf | pin << 9 | TN_INT_ENB);
		if (counter(base) - t0 < delta)
			break;
	}
	int ok = wait_irq(IRQ_VECTOR, TICKS_MS(IRQ_WAIT_MS));
	wr32(base + HPET_TN_CONF(tn), tconf);
	ioapic_write(0x10 + 2 * pin, 1u << 16 | IRQ_VECTOR); /* mask */
	if (ok)
		check("hpet.irq", CHECK_OK, 0);
	else if (counter(base) == t0)
		check("hpet.irq", CHECK_FAIL, "counter stopped");
	else
		check("hpet.irq", CHECK_FAIL, "no interrupt on pin %u", pin);
}

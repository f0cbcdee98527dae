/*
 * idt.c: the IDT. Exceptions print a line and power off; vectors 0x40 (HPET
 * through the IOAPIC), 0x41 (MSI) and 0x42 (PCI INTx through the IOAPIC,
 * level-triggered: the device's line is lowered before the EOI) count
 * arrivals and EOI the local APIC; 0x50-0x5F are the 8259 pair's IRQs 0-15
 * (ExtINT through LINT0: no local APIC EOI, a non-specific EOI to the 8259s
 * instead, after lowering the test device's INTx); 0xFF is the APIC
 * spurious vector (no EOI).
 */
#include "probe.h"

struct frame {
	u32 edi, esi, ebp, esp, ebx, edx, ecx, eax;
	u32 vec, err, eip, cs, eflags;
};

struct isr_entry {
	u32 vec, addr;
};
extern const struct isr_entry isr_table[], isr_table_end[];

static u32 idt[256][2];
volatile u32 irq_seen[32];

void isr_dispatch(struct frame *f);
void isr_dispatch(struct frame *f)
{
	if (f->vec >= PIC_VECTOR && f->vec < PIC_VECTOR + 16) {
		irq_seen[f->vec - 0x40]++;
		intx_ack();
		if (f->vec >= PIC_VECTOR + 8)
			outb(0xa0, 0x20); /* OCW2: non-specific EOI (slave) */
		outb(0x20, 0x20);         /* and master */
		return;
	}
	if (f->vec >= 0x40 && f->vec <= 0x42) {
		irq_seen[f->vec - 0x40]++;
		if (f->vec == 0x42)
			intx_ack();
		lapic_eoi();
		return;
	}
	if (f->vec == 0xff)
		return;
	pr("probe: exception vector=%u err=0x%x eip=0x%08x\n", f->vec, f->err, f->eip);
	poweroff();
}

void idt_init(void)
{
	for (const struct isr_entry *e = isr_table; e < isr_table_end; e++) {
		/* 32-bit interrupt gate, present, DPL 0, selector 0x08 */
		idt[e->vec][0] = (e->addr & 0xffff) | 0x08 << 16;
		idt[e->vec][1] = (e->addr & 0xffff0000) | 0x8e00;
	}
	idt_load();
}

void idt_load(void)
{
	struct {
		u16 limit;
		u32 base;
	} __attribute__((packed)) d = {sizeof(idt) - 1, (u32)idt};
	__asm__ volatile("lidt %0" : : "m"(d));
}

/* Wait (interrupts on) until vector vec has arrived; 1 on success. */
int wait_irq(u32 vec, u32 timeout_ticks)
{
	u32 t0 = pit_now();
	int ok = 0;
	sti();
	for (;;) {
		if (irq_seen[vec - 0x40]) {
			ok = 1;
			break;
		}
		if (pit_now() - t0 > timeout_ticks)
			break;
	}
	cli();
	return ok;
}

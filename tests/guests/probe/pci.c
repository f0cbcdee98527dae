/*
 * pci.c: bus 0 enumeration with configuration mechanism #1 (0xCF8/0xCFC),
 * the ECAM cross-check (MCFG), and the MSI and INTx tests with dhyve's PCI
 * test device.
 */
#include "probe.h"

#define PCI_ADDR 0xcf8
#define PCI_DATA 0xcfc
#define PCI_MAX 256

/* dhyve's PCI test device. The -D overrides exist to try the MSI path against
 * QEMU's "edu" device: -DTESTDEV_ID=0x11e81234 -DTESTDEV_MAGIC=0x010000ed
 * -DTESTDEV_SEND=0x60 -DTESTDEV_SEND_VALUE=1 */
#ifndef TESTDEV_ID
#define TESTDEV_ID 0x00016468    /* vendor 0x6468, device 0x0001 */
#define TESTDEV_MAGIC 0x74766864 /* BAR0 0x00: "dhvt" */
#define TESTDEV_SEND 0x0c        /* BAR0 0x0C: write n: send message n */
#define TESTDEV_SEND_VALUE 0
#endif
#define TESTDEV_INTX 0x08 /* W: bit 0 = line requested; R: bit 0 requested, bit 1 effective */
#define INTX_VECTOR 0x42
#define CMD_INTX_DISABLE (1u << 10)

struct pci_fn {
	u32 bdf; /* dev << 3 | fn (bus 0) */
	u32 id, class;
};
static struct pci_fn fns[PCI_MAX];
static u32 nfns;

static u32 cfg_read(u32 bdf, u32 reg)
{
	outl(PCI_ADDR, 0x80000000 | bdf << 8 | (reg & 0xfc));
	return inl(PCI_DATA);
}

static void cfg_write(u32 bdf, u32 reg, u32 v)
{
	outl(PCI_ADDR, 0x80000000 | bdf << 8 | (reg & 0xfc));
	outl(PCI_DATA, v);
}

static void cfg_write16(u32 bdf, u32 reg, u16 v)
{
	outl(PCI_ADDR, 0x80000000 | bdf << 8 | (reg & 0xfc));
	outw(PCI_DATA + (reg & 2), v);
}

static const struct pci_fn *find(u32 bdf)
{
	for (u32 i = 0; i < nfns; i++)
		if (fns[i].bdf == bdf)
			return &fns[i];
	return 0;
}

static void ecam_check(void)
{
	if (!acpi_mcfg || rd32(acpi_mcfg + 4) < 60) {
		check("pci.ecam", CHECK_SKIP, "no MCFG");
		return;
	}
	/* first allocation: base (u64) at 44, segment at 52, start bus at 54 */
	u64 base = rd64(acpi_mcfg + 44);
	if (base >> 32 || rd8(acpi_mcfg + 54) != 0) {
		check("pci.ecam", CHECK_SKIP, "bus 0 not below 4 GiB");
		return;
	}
	for (u32 i = 0; i < nfns; i++) {
		u32 a = (u32)base + (fns[i].bdf << 12);
		if (rd32(a) != fns[i].id || rd32(a + 8) != fns[i].class) {
			check("pci.ecam", CHECK_FAIL, "00:%02x.%u differs", fns[i].bdf >> 3, fns[i].bdf & 7);
			return;
		}
	}
	check("pci.ecam", CHECK_OK, 0);
}

void pci_report(void)
{
	for (u32 dev = 0; dev < 32; dev++) {
		for (u32 fn = 0; fn < 8; fn++) {
			u32 bdf = dev << 3 | fn, id = cfg_read(bdf, 0);
			if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0) {
				if (fn == 0)
					break;
				continue;
			}
			u32 class = cfg_read(bdf, 8), hdr = (cfg_read(bdf, 0x0c) >> 16) & 0xff;
			pr("pci 00:%02x.%u: %04x:%04x class=%06x hdr=%02x\n", dev, fn, id & 0xffff, id >> 16, class >> 8, hdr);
			if (nfns < PCI_MAX)
				fns[nfns++] = (struct pci_fn){bdf, id, class};
			if (fn == 0 && !(hdr & 0x80))
				break;
		}
	}
	const struct pci_fn *host = find(0), *isa = find(0x1f << 3);
	if (!host || host->class >> 16 != 0x0600)
		check("pci.enum", CHECK_FAIL, "no host bridge at 00:00.0");
	else if (!isa || isa->class >> 16 != 0x0601)
		check("pci.enum", CHECK_FAIL, "no ISA bridge at 00:1f.0");
	else
		check("pci.enum", CHECK_OK, 0);
	ecam_check();
}

static const struct pci_fn *testdev(void)
{
	for (u32 i = 0; i < nfns; i++)
		if (fns[i].id == TESTDEV_ID)
			return &fns[i];
	return 0;
}

void msi_check(void)
{
	const struct pci_fn *f = testdev();
	if (!f) {
		check("msi", CHECK_SKIP, "no test device");
		return;
	}
	u32 bdf = f->bdf, bar = cfg_read(bdf, 0x10) & ~0xfu;
	/* command: memory space (1), bus master (2), INTx disable (10) */
	cfg_write16(bdf, 0x04, (cfg_read(bdf, 0x04) & 0xffff) | 1 << 1 | 1 << 2 | 1 << 10);
	if (!bar || rd32(bar) != TESTDEV_MAGIC) {
		check("msi", CHECK_FAIL, "bad BAR0 0x%08x", bar);
		return;
	}
	u32 cap = 0;
	if (cfg_read(bdf, 0x04) & (1u << 20)) /* status: capability list */
		for (u32 p = cfg_read(bdf, 0x34) & 0xfc, n = 0; p && n < 48; n++) {
			u32 d = cfg_read(bdf, p);
			if ((d & 0xff) == 0x05) {
				cap = p;
				break;
			}
			p = (d >> 8) & 0xfc;
		}
	if (!cap) {
		check("msi", CHECK_FAIL, "no MSI capability");
		return;
	}
	u32 ctl = cfg_read(bdf, cap) >> 16, is64 = ctl & (1 << 7);
	cfg_write(bdf, cap + 4, 0xfee00000 | bsp_apic << 12);
	if (is64)
		cfg_write(bdf, cap + 8, 0);
	cfg_write16(bdf, cap + (is64 ? 0x0c : 0x08), 0x41); /* fixed, edge, vector 0x41 */
	cfg_write16(bdf, cap + 2, (ctl & ~0x70u) | 1);     /* one message, MSI enable */
	irq_seen[1] = 0;
	wr32(bar + TESTDEV_SEND, TESTDEV_SEND_VALUE);
	if (wait_irq(0x41, TICKS_MS(IRQ_WAIT_MS)))
		check("msi", CHECK_OK, 0);
	else
		check("msi", CHECK_FAIL, "no interrupt (sent=%u)", rd32(bar + 0x10));
	cfg_write16(bdf, cap + 2, ctl & ~1u);
}

static volatile u32 intx_bar; /* BAR0 of the device whose INTx is under test */

void intx_ack(void)
{
	if (intx_bar)
		wr32(intx_bar + TESTDEV_INTX, 0);
}

/* The test device's INTx, wired as the MP table says (an I/O interrupt entry
 * of the PCI bus, MP spec 4.3.4 and D.3), through the IOAPIC to vector 0x42:
 * first with the command register's Interrupt Disable set, which must keep
 * the line low (PCI 3.0, 6.2.2), then cleared, when it must arrive. */
void intx_check(void)
{
	const struct pci_fn *f = testdev();
	if (!f) {
		check("intx", CHECK_SKIP, "no test device");
		return;
	}
	if (!ioapic_count) {
		check("intx", CHECK_SKIP, "no IOAPIC");
		return;
	}
	if (!mp_fp) {
		check("intx", CHECK_SKIP, "no MP table to find the wiring in");
		return;
	}
	u32 bdf = f->bdf, pin = (cfg_read(bdf, 0x3c) >> 8) & 0xff, flags = 0;
	u32 bar = cfg_read(bdf, 0x10) & ~0xfu;
	if (pin < 1 || pin > 4) {
		check("intx", CHECK_FAIL, "interrupt pin %u", pin);
		return;
	}
	int intin = mp_pci_intin(bdf >> 3, pin - 1, &flags);
	u32 entries = ((ioapic_read(1) >> 16) & 0xff) + 1;
	if (intin < 0 || (u32)intin >= entries) {
		check("intx", CHECK_FAIL, "no MP entry for 00:%02x INT%c", bdf >> 3, 'A' + pin - 1);
		return;
	}
	/* flags: polarity 1:0 and trigger 3:2, 0 = the bus's own (PCI: low, level) */
	if ((flags & 3) == 1 || (flags >> 2 & 3) == 1) {
		check("intx", CHECK_FAIL, "MP entry flags 0x%x: not active-low level", flags);
		return;
	}
	u32 cmd = cfg_read(bdf, 0x04) & 0xffff;
	cfg_write16(bdf, 0x04, cmd | 1 << 1 | CMD_INTX_DISABLE); /* memory space */
	intx_bar = bar;
	/* redirection entry: vector 0x42, fixed, physical, level (15), active low (13) */
	ioapic_write(0x11 + 2 * intin, bsp_apic << 24);
	ioapic_write(0x10 + 2 * intin, 1u << 15 | 1u << 13 | INTX_VECTOR);
	irq_seen[2] = 0;
	wr32(bar + TESTDEV_INTX, 1);
	u32 masked = rd32(bar + TESTDEV_INTX);
	int leaked = wait_irq(INTX_VECTOR, TICKS_MS(20));
	int ok = 0;
	if (!leaked && masked == 1) {
		cfg_write16(bdf, 0x04, (cmd | 1 << 1) & ~CMD_INTX_DISABLE);
		ok = wait_irq(INTX_VECTOR, TICKS_MS(IRQ_WAIT_MS));
	}
	intx_ack();
	ioapic_write(0x10 + 2 * intin, 1u << 16 | 1u << 15 | 1u << 13 | INTX_VECTOR); /* mask */
	cfg_write16(bdf, 0x04, cmd | 1 << 1 | CMD_INTX_DISABLE);
	intx_bar = 0;
	if (leaked || masked != 1)
		check("intx", CHECK_FAIL, "Interrupt Disable did not mask INTx (register 0x%x)", masked);
	else if (!ok)
		check("intx", CHECK_FAIL, "no interrupt on IOAPIC pin %u", intin);
	else
		check("intx", CHECK_OK, 0);
}

/* The 8259 pair in cascade (8259A datasheet, initialization command words):
 * ICW1 edge/cascade/ICW4 (level comes from the ELCR, set by the platform),
 * ICW2 the vector base, ICW3 the slave on IR2, ICW4 8086 mode; then OCW1
 * masks every IRQ but `irq` (and the cascade when it is on the slave). */
static void pic_init(u32 irq)
{
	outb(0x20, 0x11);
	outb(0x21, PIC_VECTOR);
	outb(0x21, 0x04);
	outb(0x21, 0x01);
	outb(0xa0, 0x11);
	outb(0xa1, PIC_VECTOR + 8);
	outb(0xa1, 0x02);
	outb(0xa1, 0x01);
	u16 mask = 0xffff & ~(1u << irq);
	if (irq >= 8)
		mask &= ~(1u << 2);
	outb(0x21, mask & 0xff);
	outb(0xa1, mask >> 8);
}

/* INTx the way a PC without APIC drivers takes it: the PIRQ router sends the
 * pin to the ISA IRQ in the interrupt-line register (where the platform
 * routed it, as a BIOS would), the 8259 delivers it as ExtINT through the
 * BSP's LINT0 (virtual wire mode). The IOAPIC pin stays masked. */
void intx_pic_check(void)
{
	const struct pci_fn *f = testdev();
	if (!f) {
		check("intx.pic", CHECK_SKIP, "no test device");
		return;
	}
	u32 bdf = f->bdf, reg = cfg_read(bdf, 0x3c), line = reg & 0xff, pin = (reg >> 8) & 0xff;
	u32 bar = cfg_read(bdf, 0x10) & ~0xfu;
	if (pin < 1 || pin > 4) {
		check("intx.pic", CHECK_FAIL, "interrupt pin %u", pin);
		return;
	}
	if (line == 0xff) {
		check("intx.pic", CHECK_SKIP, "not routed to an ISA IRQ");
		return;
	}
	if (line == 0 || line == 2 || line >= 16) {
		check("intx.pic", CHECK_FAIL, "interrupt line %u", line);
		return;
	}
	u32 cmd = cfg_read(bdf, 0x04) & 0xffff;
	intx_bar = bar;
	pic_init(line);
	cfg_write16(bdf, 0x04, (cmd | 1 << 1) & ~CMD_INTX_DISABLE);
	irq_seen[PIC_VECTOR - 0x40 + line] = 0;
	wr32(bar + TESTDEV_INTX, 1);
	int ok = wait_irq(PIC_VECTOR + line, TICKS_MS(IRQ_WAIT_MS));
	intx_ack();
	outb(0x21, 0xff); /* mask both 8259s again */
	outb(0xa1, 0xff);
	cfg_write16(bdf, 0x04, cmd | 1 << 1 | CMD_INTX_DISABLE);
	intx_bar = 0;
	if (ok)
		check("intx.pic", CHECK_OK, 0);
	else
		check("intx.pic", CHECK_FAIL, "no interrupt on 8259 IRQ %u", line);
}

/*
 * mp.c: the Intel MP table (MP spec 1.4, chapter 4): floating pointer,
 * base table and extended table checksums, enabled processor entries, and
 * the I/O interrupt entries of the PCI bus (where each INTx pin is wired).
 */
#include "probe.h"

#define SIG_MP 0x5f504d5f   /* "_MP_" */
#define SIG_PCMP 0x504d4350 /* "PCMP" */

u32 mp_fp;      /* floating pointer structure, 0: none */
u32 mp_enabled; /* enabled processor entries */
static u32 mp_ids[CPU_MAX];
#define MP_INTS 64
/* I/O interrupt entries (table 4-10): source bus, source IRQ, INTIN, flags */
static struct {
	u8 bus, irq, intin;
	u16 flags;
} mp_ints[MP_INTS];
static u32 mp_nints, mp_pci_bus = 0x100; /* 0x100: no PCI bus entry */
static const char *mp_err; /* first structural problem found */

void mp_find(void)
{
	mp_fp = bios_find(SIG_MP, 0, 16, 1);
	if (!mp_fp)
		return;
	u32 fp_len = rd8(mp_fp + 8) * 16;
	if (fp_len != 16 || sum8(mp_fp, 16)) {
		mp_err = "floating pointer checksum";
		return;
	}
	if (rd8(mp_fp + 11)) {
		mp_err = "default configuration";
		return;
	}
	u32 t = rd32(mp_fp + 4);
	if (!t || rd32(t) != SIG_PCMP) {
		mp_err = "no PCMP table";
		return;
	}
	u32 base_len = rd16(t + 4), ext_len = rd16(t + 40);
	if (base_len < 44 || sum8(t, base_len)) {
		mp_err = "base table checksum";
		return;
	}
	if (((sum8(t + base_len, ext_len) + rd8(t + 42)) & 0xff) != 0) {
		mp_err = "extended table checksum";
		return;
	}
	u32 p = t + 44, end = t + base_len, count = rd16(t + 34);
	for (u32 i = 0; i < count && p < end; i++) {
		u32 type = rd8(p);
		if (type == 0) { /* processor: APIC ID at 1, flags at 3 (bit 0 EN) */
			if ((rd8(p + 3) & 1) && mp_enabled < CPU_MAX)
				mp_ids[mp_enabled++] = rd8(p + 1);
			p += 20;
		} else if (type <= 4) {
			/* bus (4-8): id at 1, type string at 2; I/O interrupt (4-10):
			 * type at 1 (0 = INT), flags at 2, bus at 4, IRQ at 5, INTIN at 7 */
			if (type == 1 && !memcmp(phys(p + 2), "PCI   ", 6))
				mp_pci_bus = rd8(p + 1);
			if (type == 3 && rd8(p + 1) == 0 && mp_nints < MP_INTS) {
				mp_ints[mp_nints].bus = rd8(p + 4);
				mp_ints[mp_nints].irq = rd8(p + 5);
				mp_ints[mp_nints].intin = rd8(p + 7);
				mp_ints[mp_nints++].flags = rd16(p + 2);
			}
			p += 8;
		} else {
			mp_err = "bad entry type";
			return;
		}
	}
}

/* A PCI source IRQ is the device number in bits 6:2 and the pin (0 = INTA#)
 * in bits 1:0 (MP spec D.3). */
int mp_pci_intin(u32 dev, u32 pin, u32 *flags)
{
	for (u32 i = 0; i < mp_nints; i++)
		if (mp_ints[i].bus == mp_pci_bus && mp_ints[i].irq == (dev << 2 | pin)) {
			*flags = mp_ints[i].flags;
			return mp_ints[i].intin;
		}
	return -1;
}

void mp_report(void)
{
	if (!mp_fp) {
		check("mptable", CHECK_SKIP, "absent");
	} else if (mp_err) {
		check("mptable", CHECK_FAIL, "%s", mp_err);
	} else {
		sort_u32(mp_ids, mp_enabled);
		/* Processor entries hold 8-bit APIC IDs, 0xFF being the broadcast
		 * ID (MP spec 4.3.1): CPUs with larger IDs cannot be listed. */
		if (cpus_match(mp_ids, mp_enabled, 0xfe))
			check("mptable", CHECK_OK, 0);
		else
			check("mptable", CHECK_FAIL, "mptable=%u started=%u", mp_enabled, cpu_count);
	}
}

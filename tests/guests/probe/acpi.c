/*
 * acpi.c: find the RSDP, walk RSDT/XSDT and the tables they list (plus DSDT
 * and FACS through the FADT), parse the MADT, report checksums and locations,
 * and power off through PM1a_CNT with \_S5_'s SLP_TYPa.
 */
#include "probe.h"

#define SIG(a, b, c, d) ((u32)(a) | (u32)(b) << 8 | (u32)(c) << 16 | (u32)(d) << 24)
#define HDR_LEN 36
#define TBL_MAX 64
#define TBL_LEN_MAX 0x100000 /* a sanity bound before summing a table */

enum { T_OK, T_CHECKSUM, T_LENGTH, T_SIGNATURE, T_ADDRESS };
static const char *const t_fail[] = {"", "checksum", "length", "signature", "address"};

struct tbl {
	u32 addr, len;
	u32 status;
	char sig[5];
};
static struct tbl tbls[TBL_MAX];
static u32 ntbl;

u32 acpi_rsdp, acpi_madt, acpi_fadt, acpi_dsdt, acpi_hpet, acpi_mcfg;
static u32 rsdp_rev;

u32 madt_enabled_ids[CPU_MAX], madt_enabled;
static u32 madt_all_ids[CPU_MAX], madt_all, madt_disabled;
#define IOAPIC_MAX 8
static u32 ioapics[IOAPIC_MAX][3]; /* id, addr, gsi base */
u32 ioapic_addr, ioapic_count;

/* ---- BIOS-area signature scan (also used for the MP floating pointer) ----
 * In each region, the first 16-byte-aligned match whose first cklen bytes sum
 * to 0; failing that, the first match (its checksum check then fails). */
static u32 scan(u32 start, u32 len, u32 sig, u32 sig2, u32 cklen)
{
	u32 first = 0;
	for (u32 a = start; a < start + len; a += 16)
		if (rd32(a) == sig && (!sig2 || rd32(a + 4) == sig2)) {
			if (!sum8(a, cklen))
				return a;
			if (!first)
				first = a;
		}
	return first;
}

/* ACPI 6.5 5.2.5.1: first KB of the EBDA, then 0xE0000-0xFFFFF.
 * MP 1.4 4: first KB of the EBDA, last KB of base memory, 0xF0000-0xFFFFF. */
u32 bios_find(u32 sig, u32 sig2, u32 cklen, int mp)
{
	u32 r = 0, ebda = (u32)rd16(0x40e) << 4, kb = rd16(0x413);
	if (ebda >= 0x400 && ebda < 0xa0000)
		r = scan(ebda, 1024, sig, sig2, cklen);
	if (!r && mp && kb > 1 && kb <= 640)
		r = scan((kb - 1) * 1024, 1024, sig, sig2, cklen);
	if (!r)
		r = mp ? scan(0xf0000, 0x10000, sig, sig2, cklen) : scan(0xe0000, 0x20000, sig, sig2, cklen);
	return r;
}

/* Record a table; returns its address when its header is usable (right
 * signature, sane length), even if its checksum is wrong. */
static u32 add_table(u32 lo, u32 hi, u32 want)
{
	if (ntbl >= TBL_MAX)
		return 0;
	struct tbl *t = &tbls[ntbl++];
	t->addr = lo;
	memcpy(t->sig, "????", 4);
	if (hi || !lo) {
		t->status = T_ADDRESS;
		return 0;
	}
	u32 sig = rd32(lo);
	for (int i = 0; i < 4; i++) {
		u8 c = sig >> (8 * i);
		if (c > 0x20 && c < 0x7f)
			t->sig[i] = c;
	}
	t->len = rd32(lo + 4);
	int facs = sig == SIG('F', 'A', 'C', 'S');
	if (want && sig != want)
		t->status = T_SIGNATURE;
	else if (t->len < (facs ? 64 : HDR_LEN) || t->len > TBL_LEN_MAX || lo + t->len < lo)
		t->status = T_LENGTH;
	else if (!facs && sum8(lo, t->len))
		t->status = T_CHECKSUM;
	return t->status <= T_CHECKSUM ? lo : 0;
}

static void parse_madt(u32 m)
{
	u32 end = m + rd32(m + 4);
	lapic_base = rd32(m + 36);
	for (u32 p = m + 44, l; p + 2 <= end; p += l) {
		u32 type = rd8(p), id, fl;
		l = rd8(p + 1);
		if (l < 2)
			break;
		if (type == 0 || type == 9) { /* processor local APIC / x2APIC */
			id = type == 0 ? rd8(p + 3) : rd32(p + 4);
			fl = type == 0 ? rd32(p + 4) : rd32(p + 8);
			if (madt_all < CPU_MAX)
				madt_all_ids[madt_all++] = id;
			if (!(fl & 1))
				madt_disabled++;
			else if (madt_enabled < CPU_MAX)
				madt_enabled_ids[madt_enabled++] = id;
		} else if (type == 1) { /* I/O APIC */
			if (ioapic_count < IOAPIC_MAX) {
				ioapics[ioapic_count][0] = rd8(p + 2);
				ioapics[ioapic_count][1] = rd32(p + 4);
				ioapics[ioapic_count][2] = rd32(p + 8);
			}
			if (!ioapic_count++)
				ioapic_addr = rd32(p + 4);
		}
	}
}

void acpi_find(void)
{
	acpi_rsdp = bios_find(SIG('R', 'S', 'D', ' '), SIG('P', 'T', 'R', ' '), 20, 0);
	if (!acpi_rsdp)
		return;
	rsdp_rev = rd8(acpi_rsdp + 15);
	u32 rsdt = 0, xsdt = 0;
	if (rd32(acpi_rsdp + 16))
		rsdt = add_table(rd32(acpi_rsdp + 16), 0, SIG('R', 'S', 'D', 'T'));
	if (rsdp_rev >= 2 && rd64(acpi_rsdp + 24))
		xsdt = add_table(rd32(acpi_rsdp + 24), rd32(acpi_rsdp + 28), SIG('X', 'S', 'D', 'T'));
	u32 root = xsdt ? xsdt : rsdt, esz = xsdt ? 8 : 4;
	if (!root)
		return;
	u32 n = (rd32(root + 4) - HDR_LEN) / esz;
	if (n > TBL_MAX)
		n = TBL_MAX;
	for (u32 i = 0; i < n; i++) {
		u32 e = root + HDR_LEN + i * esz;
		u32 t = add_table(rd32(e), esz == 8 ? rd32(e + 4) : 0, 0);
		if (!t)
			continue;
		u32 sig = rd32(t), len = rd32(t + 4);
		if (sig == SIG('A', 'P', 'I', 'C') && !acpi_madt) {
			acpi_madt = t;
			parse_madt(t);
		} else if (sig == SIG('H', 'P', 'E', 'T') && !acpi_hpet) {
			acpi_hpet = t;
		} else if (sig == SIG('M', 'C', 'F', 'G') && !acpi_mcfg) {
			acpi_mcfg = t;
		} else if (sig == SIG('F', 'A', 'C', 'P') && !acpi_fadt) {
			acpi_fadt = t;
			/* ACPI 6.5 5.2.9: X_DSDT (140) and X_FIRMWARE_CTRL (132) win when set */
			if (len >= 148 && rd64(t + 140))
				acpi_dsdt = add_table(rd32(t + 140), rd32(t + 144), SIG('D', 'S', 'D', 'T'));
			else if (len >= 44)
				acpi_dsdt = add_table(rd32(t + 40), 0, SIG('D', 'S', 'D', 'T'));
			if (len >= 140 && rd64(t + 132))
				add_table(rd32(t + 132), rd32(t + 136), SIG('F', 'A', 'C', 'S'));
			else if (len >= 40 && rd32(t + 36))
				add_table(rd32(t + 36), 0, SIG('F', 'A', 'C', 'S'));
		}
	}
}

static int in_ram(u32 addr, u32 len)
{
	for (u32 i = 0; i < mmap_count; i++) {
		struct mem_range *r = &mmap_ranges[i];
		if (r->type == 1 && addr < r->base + r->len && r->base < (u64)addr + len)
			return 1;
	}
	return 0;
}

void acpi_report(void)
{
	if (!acpi_rsdp) {
		check("acpi.checksums", CHECK_SKIP, "no RSDP");
		check("acpi.location", CHECK_SKIP, "no RSDP");
		return;
	}
	pr("acpi.rsdp: addr=0x%08x rev=%u oem=%.6q\n", acpi_rsdp, rsdp_rev, (const char *)phys(acpi_rsdp + 9));
	const char *bad = 0;
	const struct tbl *loc = 0;
	u32 rsdp_len = rsdp_rev >= 2 ? 36 : 20;
	if (sum8(acpi_rsdp, 20) || (rsdp_rev >= 2 && sum8(acpi_rsdp, 36)))
		bad = "RSDP";
	for (u32 i = 0; i < ntbl; i++) {
		const struct tbl *t = &tbls[i];
		int facs = !memcmp(t->sig, "FACS", 4);
		pr("acpi.table: %s addr=0x%08x len=%u rev=%u oem=%.*q ", t->sig, t->addr, t->len,
		   t->status == T_ADDRESS ? 0 : rd8(t->addr + (facs ? 32 : 8)), t->status == T_ADDRESS || facs ? 0 : 6,
		   t->status == T_ADDRESS ? "" : (const char *)phys(t->addr + 10));
		if (t->status == T_OK)
			pr("ok\n");
		else
			pr("FAIL %s\n", t_fail[t->status]);
		if (t->status != T_OK && !bad)
			bad = t->sig;
		if (t->status <= T_CHECKSUM && !loc && in_ram(t->addr, t->len))
			loc = t;
	}
	if (bad)
		check("acpi.checksums", CHECK_FAIL, "%s", bad);
	else
		check("acpi.checksums", CHECK_OK, 0);
	if (!mmap_count)
		check("acpi.location", CHECK_SKIP, "no memory map");
	else if (in_ram(acpi_rsdp, rsdp_len))
		check("acpi.location", CHECK_FAIL, "RSDP in RAM");
	else if (loc)
		check("acpi.location", CHECK_FAIL, "%s at 0x%08x in RAM", loc->sig, loc->addr);
	else
		check("acpi.location", CHECK_OK, 0);
}

void madt_report(void)
{
	if (!acpi_madt) {
		check("madt.cpus", CHECK_SKIP, "no MADT");
		check("madt.topology", CHECK_SKIP, "no MADT");
		check("madt.ioapic", CHECK_SKIP, "no MADT");
		return;
	}
	pr("madt.cpus: enabled=%u disabled=%u\n", madt_enabled, madt_disabled);
	sort_u32(madt_enabled_ids, madt_enabled);
	if (cpus_match(madt_enabled_ids, madt_enabled, 0xffffffff))
		check("madt.cpus", CHECK_OK, 0);
	else
		check("madt.cpus", CHECK_FAIL, "madt=%u started=%u", madt_enabled, cpu_count);

	/* IDs unique; per package (id >> core_shift) at most logical_per_package,
	 * per core (id >> smt_shift) at most threads_per_core; sorted IDs make
	 * every group one run */
	u32 *ids = madt_all_ids, n = madt_all;
	sort_u32(ids, n);
	int st = CHECK_OK;
	u32 i, j;
	for (i = 1; i < n && st == CHECK_OK; i++)
		if (ids[i] == ids[i - 1]) {
			check("madt.topology", st = CHECK_FAIL, "duplicate apic id %u", ids[i]);
		}
	for (int lvl = 0; lvl < 2 && topo_valid && st == CHECK_OK; lvl++) {
		u32 shift = lvl ? core_shift : smt_shift, max = lvl ? logical_per_package : threads_per_core;
		for (i = 0; i < n && st == CHECK_OK; i = j) {
			for (j = i; j < n && ids[j] >> shift == ids[i] >> shift; j++)
				;
			if (j - i > max)
				check("madt.topology", st = CHECK_FAIL, "%s %u has %u cpus > %u", lvl ? "package" : "core",
				      ids[i] >> shift, j - i, max);
		}
	}
	if (st == CHECK_OK)
		check("madt.topology", CHECK_OK, 0);

	for (i = 0; i < ioapic_count && i < IOAPIC_MAX; i++)
		pr("madt.ioapic: id=%u addr=0x%08x gsi_base=%u\n", ioapics[i][0], ioapics[i][1], ioapics[i][2]);
	if (ioapic_count != 1) {
		check("madt.ioapic", CHECK_FAIL, "%u ioapics", ioapic_count);
	} else {
		wr32(ioapic_addr, 1); /* IOREGSEL: IOAPICVER */
		u32 entries = ((rd32(ioapic_addr + 0x10) >> 16) & 0xff) + 1;
		if (entries < 24)
			check("madt.ioapic", CHECK_FAIL, "%u redirection entries", entries);
		else
			check("madt.ioapic", CHECK_OK, 0);
	}
}

/* SLP_TYPa of \_S5_: "_S5_" PackageOp PkgLength NumElements <first element> */
static int s5_type(void)
{
	if (!acpi_dsdt)
		return -1;
	u32 end = acpi_dsdt + rd32(acpi_dsdt + 4);
	for (u32 p = acpi_dsdt + HDR_LEN; p + 8 <= end; p++) {
		if (rd8(p) != '_' || rd32(p) != SIG('_', 'S', '5', '_') || rd8(p + 4) != 0x12)
			continue;
		u32 q = p + 5;
		q += 1 + (rd8(q) >> 6) + 1; /* PkgLength (1-4 bytes), NumElements */
		switch (rd8(q)) {
		case 0x00: /* ZeroOp */
			return 0;
		case 0x01: /* OneOp */
			return 1;
		case 0x0a: /* BytePrefix */
			return rd8(q + 1);
		}
		return -1;
	}
	return -1;
}

void poweroff(void)
{
	static int once;
	if (once++)
		halt_forever();
	pr("probe: poweroff\n");
	serial_drain();
	u32 port = 0x404, val = 0x3400; /* dhyve's fixed PM1a_CNT: SLP_TYP 5, SLP_EN */
	if (acpi_fadt) {
		u32 len = rd32(acpi_fadt + 4);
		port = len >= 68 ? rd32(acpi_fadt + 64) : 0;
		if (!port && len >= 184)
			port = rd32(acpi_fadt + 176); /* X_PM1a_CNT_BLK.Address */
		int t = s5_type();
		val = (t < 0 ? 5 : t & 7) << 10 | 1 << 13;
	}
	outw(port, val);
	halt_forever();
}

/* The first IOAPIC's registers, through IOREGSEL (0x00) and IOWIN (0x10)
 * (82093AA datasheet, 3.1). */
void ioapic_write(u32 reg, u32 v)
{
	wr32(ioapic_addr, reg);
	wr32(ioapic_addr + 0x10, v);
}

u32 ioapic_read(u32 reg)
{
	wr32(ioapic_addr, reg);
	return rd32(ioapic_addr + 0x10);
}

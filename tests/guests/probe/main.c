/*
 * main.c: the probe's flow and the multiboot v1 boot information.
 *
 * Output contract (parsed by dhyve's integration tests; keep it exact):
 * see README.md in this directory.
 */
#include "probe.h"

#define MB_BOOT_MAGIC 0x2badb002
/* multiboot_info offsets and flag bits (Multiboot 0.6.96, 3.3) */
#define MBI_FLAGS 0
#define MBI_CMDLINE 16
#define MBI_MODS_COUNT 20
#define MBI_MODS_ADDR 24
#define MBI_MMAP_LENGTH 44
#define MBI_MMAP_ADDR 48
#define MBI_LOADER_NAME 64
#define MBF_CMDLINE (1u << 2)
#define MBF_MODS (1u << 3)
#define MBF_MMAP (1u << 6)
#define MBF_LOADER_NAME (1u << 9)

struct mem_range mmap_ranges[MMAP_MAX];
u32 mmap_count;

static void boot_report(u32 magic, u32 mbi)
{
	u32 flags = magic == MB_BOOT_MAGIC ? rd32(mbi + MBI_FLAGS) : 0;

	pr("boot.loader: %s\n", flags & MBF_LOADER_NAME ? (const char *)phys(rd32(mbi + MBI_LOADER_NAME)) : "unknown");
	pr("boot.cmdline: %q\n", flags & MBF_CMDLINE ? (const char *)phys(rd32(mbi + MBI_CMDLINE)) : "");

	if (flags & MBF_MODS) {
		u32 n = rd32(mbi + MBI_MODS_COUNT), m = rd32(mbi + MBI_MODS_ADDR);
		for (u32 i = 0; i < n; i++, m += 16) {
			u32 start = rd32(m), end = rd32(m + 4), str = rd32(m + 8);
			u32 size = end - start;
			pr("boot.module[%u]: start=0x%08x size=%u crc32=0x%08x cmdline=%q\n", i, start, size,
			   crc32(phys(start), size), str ? (const char *)phys(str) : "");
		}
	}

	if (flags & MBF_MMAP) {
		static const char *const type_name[] = {"ram", "reserved", "acpi", "nvs", "unusable"};
		u32 p = rd32(mbi + MBI_MMAP_ADDR), end = p + rd32(mbi + MBI_MMAP_LENGTH);
		for (u32 i = 0; p < end && i < MMAP_MAX; i++) {
			struct mem_range *r = &mmap_ranges[mmap_count++];
			r->base = rd64(p + 4);
			r->len = rd64(p + 12);
			r->type = rd32(p + 20);
			pr("mem[%u]: 0x%016llx-0x%016llx ", i, r->base, r->base + r->len - 1);
			if (r->type >= 1 && r->type <= 5)
				pr("%s\n", type_name[r->type - 1]);
			else
				pr("type%u\n", r->type);
			p += rd32(p) + 4;
		}
	}
}

void probe_main(u32 magic, u32 mbi);
void probe_main(u32 magic, u32 mbi)
{
	pit_init();
	serial_init();
	idt_init();
	pr("probe: dhyve probe 1\n");
	boot_report(magic, mbi);
	cpu_report();

	acpi_find();
	mp_find();
	u32 expected = 0;
	const char *source = "none";
	if (acpi_madt) {
		expected = madt_enabled;
		source = "madt";
	} else if (mp_fp && mp_enabled) {
		expected = mp_enabled;
		source = "mptable";
	}
	smp_start(expected);
	smp_report(expected, source);

	if (acpi_rsdp || mp_fp) {
		acpi_report();
		madt_report();
		mp_report();
		pci_report();
		hpet_report();
		msi_check();
		intx_check();
		intx_pic_check();
		rtc_report();
	}
	check_summary();
	poweroff();
}

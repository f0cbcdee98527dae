/**
 * The guest-physical memory map of a PC as dhyve builds it: where RAM lives,
 * where the holes are, where firmware tables and MMIO devices sit, and the
 * e820 map handed to the guest. Pure computation; no KVM, no Deno.
 *
 * ```
 * 0x0000_0000 .. 0x000A_0000   conventional RAM (640 KiB)
 * 0x000A_0000 .. 0x000C_0000   legacy VGA window: not RAM, unclaimed MMIO
 * 0x000C_0000 .. 0x000E_0000   option-ROM area: RAM, reserved in e820
 * 0x000E_0000 .. 0x0010_0000   BIOS area: RAM, reserved; firmware tables live here
 * 0x0010_0000 .. lowmem end    RAM (lowmem end = min(size, lowmem_limit))
 * lowmem_limit .. 0xE000_0000  32-bit PCI MMIO window
 * 0xE000_0000 .. 0xF000_0000   PCIe ECAM (256 buses)
 * 0xFEC0_0000                  IOAPIC
 * 0xFED0_0000                  HPET
 * 0xFEE0_0000                  LAPIC
 * 0xFFFB_C000 .. 0xFFFC_0000   KVM identity-map page and TSS (Intel VMX)
 * 0x1_0000_0000 ..             RAM above 4 GiB (size - lowmem end)
 * above high RAM               64-bit PCI MMIO window
 * ```
 *
 * @module
 */

/** 1 KiB. */
export const KiB = 1024;
/** 1 MiB. */
export const MiB = 1024 * KiB;
/** 1 GiB. */
export const GiB = 1024 * MiB;
/** 4 GiB: where high RAM starts. */
export const FOUR_GIB = 4 * GiB;

/** The 640 KiB - 1 MiB legacy hole and its parts. */
export const LEGACY = Object.freeze({
  /** End of conventional memory. */
  conventionalEnd: 0xa0000,
  /** The VGA window [0xA0000, 0xC0000) is not RAM. */
  vgaEnd: 0xc0000,
  /** The BIOS area, where the RSDP and MP floating pointer are searched for. */
  biosStart: 0xe0000,
  /** End of the legacy area. */
  end: 0x100000,
});

/** Fixed MMIO addresses of the platform (the same as bhyve's). */
export const MMIO = Object.freeze({
  /** PCIe enhanced configuration space (ECAM), 256 buses x 1 MiB. */
  ecamBase: 0xe0000000,
  ecamSize: 0x10000000,
  /** IO APIC (82093AA default address). */
  ioapicBase: 0xfec00000,
  /** HPET block (IA-PC HPET spec default). */
  hpetBase: 0xfed00000,
  /** Local APIC (Intel SDM 10.4.1 default). */
  lapicBase: 0xfee00000,
  /** KVM's identity-map page for real mode on Intel. */
  kvmIdentityMap: 0xfffbc000,
  /** KVM's TSS, three pages. */
  kvmTss: 0xfffbd000,
});

/**
 * Where dhyve, acting as firmware, puts what it hands the guest. Everything
 * here lies in [0xC0000, 0x100000), which the e820 map reports as reserved,
 * so no guest ever takes it for free RAM.
 */
export const FIRMWARE = Object.freeze({
  /** The boot GDT (selectors 0x10 code, 0x18 data, as the Linux boot protocol expects). */
  gdt: 0xc0000,
  /** Identity-mapping page tables for 64-bit entry: PML4, PDPT and four PDs (first 4 GiB). */
  pageTables: 0xc1000,
  /** End of the page-table area. */
  pageTablesEnd: 0xc7000,
  /** ACPI and MP tables: [tables, tablesEnd). The RSDP and MP floating pointer live in 0xF0000-0xFFFFF. */
  tables: 0xe0000,
  /** End of the table area. */
  tablesEnd: 0x100000,
});

/** Where raw images in 32/64-bit mode get their Linux-style zero page (boot_params). */
export const ZERO_PAGE = 0x7000;
/** Initial stack top for raw images (grows down below the zero page). */
export const RAW_STACK_TOP = 0x7000;

/** Default lowmem limit: the PCI hole starts at 3 GiB. */
export const DEFAULT_LOWMEM_LIMIT = 3 * GiB;
/** The highest allowed lowmem limit: keeps 256 MiB of 32-bit PCI window below ECAM. */
export const MAX_LOWMEM_LIMIT = MMIO.ecamBase - 256 * MiB;
/** Lowmem limit alignment (a 2 MiB large page). */
export const LOWMEM_LIMIT_ALIGN = 2 * MiB;
/** Smallest RAM size: a kernel loaded at 1 MiB needs room above it. */
export const MIN_MEMORY = 2 * MiB;
/** Largest RAM size accepted. */
export const MAX_MEMORY = 1024 * GiB;
/** RAM size granularity (a page). */
export const MEMORY_ALIGN = 4 * KiB;

/** A range of guest RAM, backed by host memory and a KVM memory slot. */
export interface RamRange {
  /** Short name shown by `dhyve check`. */
  readonly name: string;
  /** Guest-physical start. */
  readonly gpa: number;
  /** Length in bytes. */
  readonly size: number;
}

/** e820 types (ACPI 6.5, 15.3 "Address Range Types"). */
export const E820 = Object.freeze({ RAM: 1, RESERVED: 2, ACPI: 3, NVS: 4, UNUSABLE: 5 });

/** One e820 entry. */
export interface E820Entry {
  readonly addr: number;
  readonly size: number;
  readonly type: number;
}

/**
 * Whether [addr, addr + len) lies inside one e820 RAM entry: the only memory
 * a loader may write (the firmware area is backed but reserved).
 */
export function inE820Ram(e820: readonly E820Entry[], addr: number, len: number): boolean {
  return e820.some((e) => e.type === E820.RAM && addr >= e.addr && addr + len <= e.addr + e.size);
}

/** The computed guest memory map. */
export interface MemoryLayout {
  /** Total RAM in bytes. */
  readonly size: number;
  /** The configured lowmem limit. */
  readonly lowmemLimit: number;
  /** End of low RAM (exclusive): min(size, lowmemLimit). */
  readonly lowmemEnd: number;
  /** Bytes of RAM above 4 GiB. */
  readonly highmemSize: number;
  /** RAM ranges in address order, one KVM slot each. */
  readonly ram: readonly RamRange[];
  /** The 32-bit PCI MMIO window [start, end). */
  readonly pciHole32: { readonly start: number; readonly end: number };
  /** The 64-bit PCI MMIO window [start, end). */
  readonly pciHole64: { readonly start: number; readonly end: number };
  /** The e820 map for the guest, sorted and non-overlapping. */
  readonly e820: readonly E820Entry[];
  /** One past the highest guest-physical RAM address. */
  readonly ramEnd: number;
}

/** Size of the 64-bit PCI window placed above high RAM. */
export const PCI_HOLE64_SIZE = 32 * GiB;

/**
 * Lays out `size` bytes of RAM with the given lowmem limit. The inputs must
 * already be validated (config.ts does that with file positions).
 */
export function computeLayout(size: number, lowmemLimit = DEFAULT_LOWMEM_LIMIT): MemoryLayout {
  const lowmemEnd = Math.min(size, lowmemLimit);
  const highmemSize = size - lowmemEnd;
  const ram: RamRange[] = [{ name: "conventional", gpa: 0, size: LEGACY.conventionalEnd }];
  if (lowmemEnd > LEGACY.vgaEnd) {
    ram.push({ name: "low", gpa: LEGACY.vgaEnd, size: lowmemEnd - LEGACY.vgaEnd });
  }
  if (highmemSize > 0) ram.push({ name: "high", gpa: FOUR_GIB, size: highmemSize });
  const ramEnd = highmemSize > 0 ? FOUR_GIB + highmemSize : lowmemEnd;

  // The 64-bit window starts at the first 1 GiB boundary above RAM (and above 4 GiB).
  const hole64Start = Math.max(FOUR_GIB, Math.ceil(ramEnd / GiB) * GiB);
  const e820: E820Entry[] = [
    { addr: 0, size: LEGACY.conventionalEnd, type: E820.RAM },
    // Option-ROM and BIOS area: backed, but firmware's (tables live at 0xE0000-0xFFFFF).
    { addr: LEGACY.vgaEnd, size: LEGACY.end - LEGACY.vgaEnd, type: E820.RESERVED },
  ];
  if (lowmemEnd > LEGACY.end) {
    e820.push({ addr: LEGACY.end, size: lowmemEnd - LEGACY.end, type: E820.RAM });
  }
  // ECAM must be reserved in e820 (PCI Firmware Spec 3.2, 4.1.2: MCFG regions are
  // reserved by firmware); Linux otherwise refuses MMCONFIG.
  e820.push({ addr: MMIO.ecamBase, size: MMIO.ecamSize, type: E820.RESERVED });
  if (highmemSize > 0) e820.push({ addr: FOUR_GIB, size: highmemSize, type: E820.RAM });

  return {
    size,
    lowmemLimit,
    lowmemEnd,
    highmemSize,
    ram,
    pciHole32: { start: lowmemLimit, end: MMIO.ecamBase },
    pciHole64: { start: hole64Start, end: hole64Start + PCI_HOLE64_SIZE },
    e820,
    ramEnd,
  };
}

/** Formats a byte count as "256 MiB", "4 GiB" or "1536 KiB" when exact, else bytes. */
export function formatSize(n: number): string {
  for (
    const [unit, f] of [["TiB", 1024 * GiB], ["GiB", GiB], ["MiB", MiB], ["KiB", KiB]] as const
  ) {
    if (n >= f && n % f === 0) return `${n / f} ${unit}`;
  }
  return `${n} B`;
}

/** Formats a guest-physical address as 0x-prefixed, zero-padded hex. */
export function hexAddr(n: number, digits = 9): string {
  return "0x" + n.toString(16).padStart(digits, "0");
}

/** A human-readable rendering of the layout for `dhyve check`. */
export function formatLayout(l: MemoryLayout): string {
  const names: Record<number, string> = {
    [E820.RAM]: "ram",
    [E820.RESERVED]: "reserved",
    [E820.ACPI]: "acpi",
    [E820.NVS]: "nvs",
    [E820.UNUSABLE]: "unusable",
  };
  const lines = [
    `memory: ${formatSize(l.size)} (low ${formatSize(l.lowmemEnd)} below ${
      hexAddr(l.lowmemLimit)
    }, high ${formatSize(l.highmemSize)} from ${hexAddr(FOUR_GIB)})`,
    "ram slots:",
    ...l.ram.map((r, i) =>
      `  slot ${i}  ${hexAddr(r.gpa)}-${hexAddr(r.gpa + r.size - 1)}  ${
        formatSize(r.size).padStart(9)
      }  ${r.name}`
    ),
    "e820:",
    ...l.e820.map((e) =>
      `  ${hexAddr(e.addr)}-${hexAddr(e.addr + e.size - 1)}  ${names[e.type] ?? `type ${e.type}`}`
    ),
    `pci window 32-bit: ${hexAddr(l.pciHole32.start)}-${hexAddr(l.pciHole32.end - 1)}`,
    `pci window 64-bit: ${hexAddr(l.pciHole64.start)}-${hexAddr(l.pciHole64.end - 1)}`,
  ];
  return lines.join("\n");
}

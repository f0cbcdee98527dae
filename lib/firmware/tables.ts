/**
 * Places the firmware tables of a machine in guest memory: every ACPI
 * table and the MP table, laid out inside the platform's tables region
 * with all physical pointers filled in.
 *
 * - The RSDP and the MP floating pointer go first, 16-byte aligned, in
 *   0xF0000-0xFFFFF, where guests search for them (ACPI 6.5, 5.2.5.1; MP
 *   spec 1.4, 4.1).
 * - The other tables are packed first-fit from the start of the region,
 *   each 16-byte aligned, except the FACS, which must be 64-byte aligned
 *   (ACPI 6.5, 5.2.10).
 *
 * Table sizes never depend on addresses. The tables that hold no pointer
 * (DSDT, MADT, ...) are built once; the few that point to others (RSDP,
 * XSDT, RSDT, FADT, MP floating pointer) are built with zero pointers to
 * learn their sizes, placed, and built again with the real ones.
 *
 * @module
 */
import { buildDsdt } from "../acpi/dsdt.ts";
import {
  type AcpiTable,
  buildFadt,
  buildHpet,
  buildMadt,
  buildMcfg,
  buildSpcr,
  Facs,
  FACS_ALIGN,
  Rsdp,
  Rsdt,
  tableIds,
  Xsdt,
} from "../acpi/tables.ts";
import type { GuestMemory } from "../guest_memory.ts";
import { buildMpConfigTable, type MpCpuInfo, MpFloatingPointer } from "./mptable.ts";
import type { FirmwarePlatform } from "./platform.ts";

/** Where the RSDP and the MP floating pointer must lie: [start, end). */
export const POINTER_AREA = Object.freeze({ start: 0xf0000, end: 0x100000 });
/** Alignment of every table but the FACS. */
export const TABLE_ALIGN = 16;

/** One table in guest memory. */
export interface FirmwareTable {
  /**
   * The ACPI signature ("FACP" for the FADT, "APIC" for the MADT, "RSDP"
   * for the RSDP), or "_MP_" / "PCMP" for the two parts of the MP table.
   */
  readonly signature: string;
  /** Guest-physical address. */
  readonly address: number;
  readonly bytes: Uint8Array;
}

/** The tables of a machine and the addresses guests look for. */
export interface FirmwareTables {
  /** In a fixed order: RSDP, XSDT, RSDT, FACP, FACS, DSDT, APIC, HPET, MCFG, SPCR, _MP_, PCMP. */
  readonly tables: readonly FirmwareTable[];
  /** The RSDP's address, when ACPI is on. */
  readonly rsdp?: number;
  /** The MP floating pointer's address, when the MP table is on. */
  readonly mpFloating?: number;
}

/** Rounds `n` up to a multiple of `align` (a power of two). */
function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

/** First-fit placement in a region; `take` throws when nothing fits. */
function regionAllocator(start: number, end: number) {
  const used: [number, number][] = [];
  return {
    take(what: string, size: number, align: number, lo = start, hi = end): number {
      let at = alignUp(Math.max(lo, start), align);
      const limit = Math.min(hi, end);
      for (;;) {
        if (at + size > limit) {
          throw new Error(
            `firmware tables overflow: no room for ${what} (${size} bytes) in ` +
              `[0x${Math.max(lo, start).toString(16)}, 0x${limit.toString(16)})`,
          );
        }
        const clash = used.find(([s, e]) => at < e && s < at + size);
        if (clash === undefined) break;
        at = alignUp(clash[1], align);
      }
      used.push([at, at + size]);
      return at;
    },
  };
}

/** The pointer-bearing tables built for given addresses. */
interface Addresses {
  facs: number;
  dsdt: number;
  fadt: number;
  madt: number;
  hpet: number;
  mcfg: number;
  spcr: number;
  rsdt: number;
  xsdt: number;
  pcmp: number;
}

/** The tables that hold no address of another table, by signature. */
function fixedTables(p: FirmwarePlatform, cpu?: MpCpuInfo): Map<string, Uint8Array> {
  const acpi: Record<string, AcpiTable> = {};
  if (p.acpi) {
    acpi.FACS = new Facs();
    acpi.DSDT = buildDsdt(p);
    acpi.APIC = buildMadt(p);
    acpi.HPET = buildHpet(p);
    acpi.MCFG = buildMcfg(p);
    const spcr = buildSpcr(p);
    if (spcr) acpi.SPCR = spcr;
  }
  const bytes = new Map<string, Uint8Array>();
  for (const [sig, t] of Object.entries(acpi)) bytes.set(sig, t.toAml());
  if (p.mptable) bytes.set("PCMP", buildMpConfigTable(p, cpu).toBytes());
  return bytes;
}

/** The tables that point to others, built for addresses `a`, added to `fixed`. */
function withPointerTables(
  p: FirmwarePlatform,
  a: Addresses,
  fixed: ReadonlyMap<string, Uint8Array>,
): Map<string, Uint8Array> {
  const bytes = new Map(fixed);
  if (p.acpi) {
    const ids = tableIds(p);
    const pointed = [a.fadt, a.madt, a.hpet, a.mcfg, ...(fixed.has("SPCR") ? [a.spcr] : [])];
    bytes.set("RSDP", new Rsdp(p.oemId, a.rsdt, a.xsdt).toAml());
    bytes.set("XSDT", new Xsdt(ids, pointed).toAml());
    bytes.set("RSDT", new Rsdt(ids, pointed).toAml());
    bytes.set("FACP", buildFadt(p, { facs: a.facs, dsdt: a.dsdt }).toAml());
  }
  if (p.mptable) bytes.set("_MP_", new MpFloatingPointer(a.pcmp).toBytes());
  return bytes;
}

/** The order of the tables in the result. */
const ORDER = [
  "RSDP",
  "XSDT",
  "RSDT",
  "FACP",
  "FACS",
  "DSDT",
  "APIC",
  "HPET",
  "MCFG",
  "SPCR",
  "_MP_",
  "PCMP",
] as const;

/** The order tables are packed in: the FACS first, as its 64-byte alignment is free at the start. */
const PLACEMENT = [
  "FACS",
  "DSDT",
  "FACP",
  "APIC",
  "HPET",
  "MCFG",
  "SPCR",
  "XSDT",
  "RSDT",
  "PCMP",
] as const;

/** Which address field each table's location fills. */
const ADDRESS_OF: Partial<Record<(typeof ORDER)[number], keyof Addresses>> = {
  XSDT: "xsdt",
  RSDT: "rsdt",
  FACP: "fadt",
  FACS: "facs",
  DSDT: "dsdt",
  APIC: "madt",
  HPET: "hpet",
  MCFG: "mcfg",
  SPCR: "spcr",
  PCMP: "pcmp",
};

/**
 * Builds and places the firmware tables of `p` in `p.tablesRegion`. ACPI
 * tables are left out when `p.acpi` is false, the MP table when
 * `p.mptable` is false. `cpu` gives the CPUID signature and features for
 * the MP processor entries (default family 6, FPU + APIC).
 *
 * @throws when the region is too small.
 */
export function buildFirmwareTables(
  p: FirmwarePlatform,
  cpu?: { signature: number; features: number },
): FirmwareTables {
  const zero: Addresses = {
    facs: 0,
    dsdt: 0,
    fadt: 0,
    madt: 0,
    hpet: 0,
    mcfg: 0,
    spcr: 0,
    rsdt: 0,
    xsdt: 0,
    pcmp: 0,
  };
  const fixed = fixedTables(p, cpu);
  const sizes = withPointerTables(p, zero, fixed);
  const { start, end } = p.tablesRegion;
  const alloc = regionAllocator(start, end);
  const where = new Map<string, number>();
  // The pointers first, so that they get the search area even when the region is tight.
  for (const sig of ["RSDP", "_MP_"]) {
    const b = sizes.get(sig);
    if (b) where.set(sig, alloc.take(sig, b.length, 16, POINTER_AREA.start, POINTER_AREA.end));
  }
  const addresses = { ...zero };
  for (const sig of PLACEMENT) {
    const b = sizes.get(sig);
    if (!b || where.has(sig)) continue;
    const at = alloc.take(sig, b.length, sig === "FACS" ? FACS_ALIGN : TABLE_ALIGN);
    where.set(sig, at);
    addresses[ADDRESS_OF[sig]!] = at;
  }
  const final = withPointerTables(p, addresses, fixed);
  const tables: FirmwareTable[] = [];
  for (const sig of ORDER) {
    const b = final.get(sig);
    if (!b) continue;
    if (b.length !== sizes.get(sig)!.length) throw new Error(`${sig} changed size when placed`);
    tables.push({ signature: sig, address: where.get(sig)!, bytes: b });
  }
  return { tables, rsdp: where.get("RSDP"), mpFloating: where.get("_MP_") };
}

/** Copies every table into guest memory (bounds-checked by {@linkcode GuestMemory}). */
export function writeFirmwareTables(mem: GuestMemory, t: FirmwareTables): void {
  for (const table of t.tables) mem.write(table.address, table.bytes);
}

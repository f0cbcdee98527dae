/**
 * The MP table (Intel MultiProcessor Specification 1.4, chapter 4): the
 * floating pointer structure and the configuration table, for guests that
 * predate ACPI or are booted with ACPI off.
 *
 * Base table entries, in the order the specification requires (4.3):
 * processors (present CPUs only; an MP processor entry holds an 8-bit
 * APIC ID, so CPUs with IDs above 254 cannot be listed), buses (0 = PCI,
 * 1 = ISA), the IOAPIC, I/O interrupt assignments (ISA IRQs 0-15 but 2,
 * IRQ 0 on pin 2; every routed PCI INTx), and local interrupt assignments
 * (ExtINT on LINT0, NMI on LINT1). The machine runs in virtual wire mode
 * (no IMCR). There is no extended table.
 *
 * @module
 */
import { MAX_XAPIC_ID } from "../../cpu/topology.ts";
import { checksum, concatBytes, defineStruct, encodeStruct } from "../acpi/_struct.ts";
import { mpsIntiFlags } from "../acpi/tables.ts";
import { routedPins } from "../pci_routing.ts";
import type { FirmwarePlatform } from "./platform.ts";

/** The MP floating pointer structure (4.1, table 4-1): 16 bytes. */
export const MP_FLOATING_LAYOUT = defineStruct(
  [
    ["signature", 4],
    ["physicalAddress", 4],
    ["length", 1],
    ["specRev", 1],
    ["checksum", 1],
    ["feature1", 1],
    ["feature2", 1],
    ["feature3", 3],
  ] as const,
);

/** The MP configuration table header (4.2, table 4-2): 44 bytes. */
export const MP_HEADER_LAYOUT = defineStruct(
  [
    ["signature", 4],
    ["baseTableLength", 2],
    ["specRev", 1],
    ["checksum", 1],
    ["oemId", 8],
    ["productId", 12],
    ["oemTablePointer", 4],
    ["oemTableSize", 2],
    ["entryCount", 2],
    ["localApicAddress", 4],
    ["extendedTableLength", 2],
    ["extendedTableChecksum", 1],
    ["reserved", 1],
  ] as const,
);

/** Base table entry layouts, by entry type (4.3). */
export const MP_ENTRY = Object.freeze({
  /** Processor entry (table 4-4): 20 bytes. */
  processor: {
    type: 0,
    layout: defineStruct(
      [
        ["type", 1],
        ["apicId", 1],
        ["apicVersion", 1],
        ["cpuFlags", 1],
        ["signature", 4],
        ["featureFlags", 4],
        ["reserved", 8],
      ] as const,
    ),
  },
  /** Bus entry (table 4-8): 8 bytes. */
  bus: {
    type: 1,
    layout: defineStruct([["type", 1], ["busId", 1], ["busType", 6]] as const),
  },
  /** I/O APIC entry (table 4-10): 8 bytes. */
  ioapic: {
    type: 2,
    layout: defineStruct(
      [
        ["type", 1],
        ["id", 1],
        ["version", 1],
        ["flags", 1],
        ["address", 4],
      ] as const,
    ),
  },
  /** I/O interrupt assignment entry (table 4-12): 8 bytes. */
  ioInterrupt: {
    type: 3,
    layout: defineStruct(
      [
        ["type", 1],
        ["interruptType", 1],
        ["flags", 2],
        ["sourceBus", 1],
        ["sourceIrq", 1],
        ["destApicId", 1],
        ["destPin", 1],
      ] as const,
    ),
  },
  /** Local interrupt assignment entry (table 4-14): 8 bytes. */
  localInterrupt: {
    type: 4,
    layout: defineStruct(
      [
        ["type", 1],
        ["interruptType", 1],
        ["flags", 2],
        ["sourceBus", 1],
        ["sourceIrq", 1],
        ["destApicId", 1],
        ["destLint", 1],
      ] as const,
    ),
  },
});

/** MP specification revision 1.4. */
export const MP_SPEC_REV = 4;
/** Local APIC version given for each processor (an integrated APIC). */
export const MP_LAPIC_VERSION = 0x14;
/** I/O APIC version (82093AA: 0x11). */
export const MP_IOAPIC_VERSION = 0x11;
/** Processor entry flags (table 4-5). */
export const MP_CPU_FLAGS = Object.freeze({ EN: 1, BP: 2 });
/** Interrupt types (table 4-13). */
export const MP_INT_TYPE = Object.freeze({ INT: 0, NMI: 1, SMI: 2, ExtINT: 3 });
/** Bus IDs. */
export const MP_BUS = Object.freeze({ PCI: 0, ISA: 1 });
/** "All local APICs" as a destination. */
export const MP_ALL_APICS = 0xff;
/** The OEM and product IDs of dhyve's MP table. */
export const MP_OEM_ID = "DHYVE   ";
/** The product ID of dhyve's MP table. */
export const MP_PRODUCT_ID = "DHYVEVM     ";
/** CPU signature (family 6) used when the caller does not give the real one. */
export const DEFAULT_CPU_SIGNATURE = 0x600;
/** Feature flags (CPUID.1:EDX: FPU and APIC) used when the caller does not give the real ones. */
export const DEFAULT_CPU_FEATURES = 0x201;

/** The CPUID.1 signature (EAX) and features (EDX) reported in processor entries. */
export interface MpCpuInfo {
  readonly signature: number;
  readonly features: number;
}

/** One base-table entry. */
export type MpEntry =
  | {
    readonly type: "processor";
    readonly apicId: number;
    readonly apicVersion: number;
    readonly cpuFlags: number;
    readonly signature: number;
    readonly featureFlags: number;
  }
  | { readonly type: "bus"; readonly busId: number; readonly busType: string }
  | {
    readonly type: "ioapic";
    readonly id: number;
    readonly version: number;
    readonly flags: number;
    readonly address: number;
  }
  | {
    readonly type: "ioInterrupt" | "localInterrupt";
    readonly interruptType: number;
    readonly flags: number;
    readonly sourceBus: number;
    readonly sourceIrq: number;
    readonly destApicId: number;
    /** IOAPIC INTIN# or local APIC LINTIN#. */
    readonly dest: number;
  };

/** The bytes of one entry. */
export function encodeMpEntry(e: MpEntry): Uint8Array {
  switch (e.type) {
    case "processor":
      return encodeStruct(MP_ENTRY.processor.layout, { ...e, type: MP_ENTRY.processor.type });
    case "bus":
      return encodeStruct(MP_ENTRY.bus.layout, {
        type: MP_ENTRY.bus.type,
        busId: e.busId,
        busType: e.busType.padEnd(6, " "),
      });
    case "ioapic":
      return encodeStruct(MP_ENTRY.ioapic.layout, { ...e, type: MP_ENTRY.ioapic.type });
    case "ioInterrupt":
      return encodeStruct(MP_ENTRY.ioInterrupt.layout, {
        type: MP_ENTRY.ioInterrupt.type,
        interruptType: e.interruptType,
        flags: e.flags,
        sourceBus: e.sourceBus,
        sourceIrq: e.sourceIrq,
        destApicId: e.destApicId,
        destPin: e.dest,
      });
    case "localInterrupt":
      return encodeStruct(MP_ENTRY.localInterrupt.layout, {
        type: MP_ENTRY.localInterrupt.type,
        interruptType: e.interruptType,
        flags: e.flags,
        sourceBus: e.sourceBus,
        sourceIrq: e.sourceIrq,
        destApicId: e.destApicId,
        destLint: e.dest,
      });
  }
}

/** PCI INTx: active-low, level-triggered (PCI Local Bus 2.3, 2.2.6). */
const PCI_INTX_FLAGS = mpsIntiFlags({ polarity: "low", trigger: "level" });

/** The base-table entries of `p`, in specification order. */
export function mpEntries(p: FirmwarePlatform, cpu: MpCpuInfo): MpEntry[] {
  const entries: MpEntry[] = [];
  let first = true;
  for (const c of p.cpus) {
    // The entry's APIC ID is one byte; 255 is the broadcast ID.
    if (!c.present || c.apicId > MAX_XAPIC_ID) continue;
    entries.push({
      type: "processor",
      apicId: c.apicId,
      apicVersion: MP_LAPIC_VERSION,
      cpuFlags: MP_CPU_FLAGS.EN | (first ? MP_CPU_FLAGS.BP : 0),
      signature: cpu.signature,
      featureFlags: cpu.features,
    });
    first = false;
  }
  entries.push({ type: "bus", busId: MP_BUS.PCI, busType: "PCI" });
  entries.push({ type: "bus", busId: MP_BUS.ISA, busType: "ISA" });
  const ioapicId = p.ioapic.id;
  entries.push({
    type: "ioapic",
    id: ioapicId,
    version: MP_IOAPIC_VERSION,
    flags: 1, // EN
    address: p.ioapic.address,
  });
  // ISA IRQs: identity-mapped unless overridden (IRQ 0 arrives on pin 2); IRQ 2 is
  // the 8259 cascade and has no IOAPIC input of its own.
  for (let irq = 0; irq < 16; irq++) {
    if (irq === 2) continue;
    const o = p.isaOverrides.find((x) => x.irq === irq);
    entries.push({
      type: "ioInterrupt",
      interruptType: MP_INT_TYPE.INT,
      flags: o ? mpsIntiFlags(o) : 0,
      sourceBus: MP_BUS.ISA,
      sourceIrq: irq,
      destApicId: ioapicId,
      dest: (o ? o.gsi : irq) - p.ioapic.gsiBase,
    });
  }
  // PCI INTx: source IRQ = device number (bits 6-2) and pin (bits 1-0, 0 = INTA#) (D.3).
  for (const r of routedPins(p.routing)) {
    entries.push({
      type: "ioInterrupt",
      interruptType: MP_INT_TYPE.INT,
      flags: PCI_INTX_FLAGS,
      sourceBus: MP_BUS.PCI,
      sourceIrq: (r.slot << 2) | (r.pin - 1),
      destApicId: ioapicId,
      dest: r.ioapicPin - p.ioapic.gsiBase,
    });
  }
  // Virtual wire mode: the 8259 output on LINT0 (ExtINT), NMI on LINT1, on every CPU.
  for (const [interruptType, lint] of [[MP_INT_TYPE.ExtINT, 0], [MP_INT_TYPE.NMI, 1]]) {
    entries.push({
      type: "localInterrupt",
      interruptType,
      flags: 0,
      sourceBus: MP_BUS.ISA,
      sourceIrq: 0,
      destApicId: MP_ALL_APICS,
      dest: lint,
    });
  }
  return entries;
}

/** The MP configuration table ("PCMP"): header and base-table entries. */
export class MpConfigTable {
  /** "PCMP". */
  readonly signature = "PCMP";
  /** Lists `entries`. */
  constructor(readonly localApicAddress: number, readonly entries: readonly MpEntry[]) {}

  /** Header + entries; the checksum covers the base table, the extended table is empty. */
  toBytes(): Uint8Array {
    const parts = this.entries.map(encodeMpEntry);
    const length = MP_HEADER_LAYOUT.size + parts.reduce((n, p) => n + p.length, 0);
    if (length > 0xffff) throw new Error(`MP table of ${length} bytes is too long`);
    const header = encodeStruct(MP_HEADER_LAYOUT, {
      signature: this.signature,
      baseTableLength: length,
      specRev: MP_SPEC_REV,
      oemId: MP_OEM_ID,
      productId: MP_PRODUCT_ID,
      entryCount: this.entries.length,
      localApicAddress: this.localApicAddress,
      extendedTableLength: 0,
      extendedTableChecksum: 0,
    });
    const out = concatBytes([header, ...parts]);
    out[MP_HEADER_LAYOUT.offsets.checksum] = checksum(out);
    return out;
  }
}

/** The MP floating pointer structure ("_MP_"). */
export class MpFloatingPointer {
  /** "_MP_". */
  readonly signature = "_MP_";
  /** Points at the configuration table at `configTable`. */
  constructor(readonly configTable: number) {}

  /**
   * 16 bytes: length 1 (in 16-byte units), spec revision 4, feature byte 1
   * = 0 (a configuration table is present), feature byte 2 bit 7 (IMCRP)
   * clear: virtual wire mode.
   */
  toBytes(): Uint8Array {
    const out = encodeStruct(MP_FLOATING_LAYOUT, {
      signature: this.signature,
      physicalAddress: this.configTable,
      length: 1,
      specRev: MP_SPEC_REV,
      feature1: 0,
      feature2: 0,
    });
    out[MP_FLOATING_LAYOUT.offsets.checksum] = checksum(out);
    return out;
  }
}

/** The configuration table of `p`. */
export function buildMpConfigTable(p: FirmwarePlatform, cpu?: MpCpuInfo): MpConfigTable {
  const info = cpu ?? { signature: DEFAULT_CPU_SIGNATURE, features: DEFAULT_CPU_FEATURES };
  return new MpConfigTable(p.lapicBase, mpEntries(p, info));
}

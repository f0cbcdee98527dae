/**
 * ACPI system description tables (ACPI 6.5, chapter 5.2) as typed values
 * that serialize themselves: RSDP, XSDT, RSDT, FADT, FACS, MADT, DSDT (a
 * definition block of AML terms), HPET (IA-PC HPET 1.0a), MCFG (PCI
 * Firmware 3.2) and SPCR (revision 2). Every layout is a table of fields
 * (`*_LAYOUT`), so offsets are checked against the specification in tests;
 * every checksum is computed from the bytes, never patched by hand.
 *
 * The `build*` functions map a {@linkcode FirmwarePlatform} onto the tables;
 * lib/firmware/tables.ts places them in guest memory and fills the pointers.
 *
 * @module
 */
import { MAX_XAPIC_ID } from "../../cpu/topology.ts";
import type { FirmwarePlatform, IsaOverride } from "../firmware/platform.ts";
import { encodeTerms, type TermArg } from "./aml.ts";
import {
  checksum,
  concatBytes,
  defineStruct,
  encodeStruct,
  type FieldValue,
  padAscii,
} from "./_struct.ts";

/** The creator ID of every table dhyve writes. */
export const CREATOR_ID = "DHYV";
/** The creator revision of every table dhyve writes. */
export const CREATOR_REVISION = 1;
/** The OEM revision of every table dhyve writes. */
export const OEM_REVISION = 1;

/** Table revisions (ACPI 6.5 unless noted). */
export const REVISION = Object.freeze({
  rsdp: 2,
  rsdt: 1,
  xsdt: 1,
  /** FADT 6.5: major 6, minor 5 (5.2.9). */
  fadt: 6,
  fadtMinor: 5,
  facs: 2,
  /** DSDT revision 2: 64-bit AML integers (5.2.11.1). */
  dsdt: 2,
  madt: 6,
  /** IA-PC HPET Specification 1.0a, table 3. */
  hpet: 1,
  /** PCI Firmware Specification 3.2, 4.1.2. */
  mcfg: 1,
  /** Microsoft SPCR, revision 2. */
  spcr: 2,
});

// ---------------------------------------------------------------------------
// Common pieces

/** The system description table header (5.2.6, Table 5.4): 36 bytes. */
export const HEADER_LAYOUT = defineStruct(
  [
    ["signature", 4],
    ["length", 4],
    ["revision", 1],
    ["checksum", 1],
    ["oemId", 6],
    ["oemTableId", 8],
    ["oemRevision", 4],
    ["creatorId", 4],
    ["creatorRevision", 4],
  ] as const,
);

/** OEM identification shared by the tables of one machine. */
export interface TableIds {
  /** 6 characters (padded with spaces when shorter). */
  readonly oemId: string;
  /** 8 characters (padded with spaces when shorter). */
  readonly oemTableId: string;
  /** Default {@linkcode OEM_REVISION}. */
  readonly oemRevision?: number;
}

/** An ACPI table: its signature and its bytes. */
export interface AcpiTable {
  /** The 4-character signature ("RSD PTR " for the RSDP). */
  readonly signature: string;
  /** The table's bytes, checksums included. */
  toAml(): Uint8Array;
}

/** A table with the standard header: `header + body`, length and checksum computed. */
export function encodeSdt(
  signature: string,
  revision: number,
  ids: TableIds,
  body: Uint8Array,
): Uint8Array {
  const header = encodeStruct(HEADER_LAYOUT, {
    signature,
    length: HEADER_LAYOUT.size + body.length,
    revision,
    oemId: padAscii(ids.oemId, 6),
    oemTableId: padAscii(ids.oemTableId, 8),
    oemRevision: ids.oemRevision ?? OEM_REVISION,
    creatorId: CREATOR_ID,
    creatorRevision: CREATOR_REVISION,
  });
  const out = new Uint8Array(header.length + body.length);
  out.set(header);
  out.set(body, header.length);
  out[HEADER_LAYOUT.offsets.checksum] = checksum(out);
  return out;
}

/** The Generic Address Structure (5.2.3.2, Table 5.1): 12 bytes. */
export const GAS_LAYOUT = defineStruct(
  [
    ["space", 1],
    ["bitWidth", 1],
    ["bitOffset", 1],
    ["accessSize", 1],
    ["address", 8],
  ] as const,
);

/** GAS address space IDs (Table 5.1). */
export const GAS_SPACE = Object.freeze({ SystemMemory: 0, SystemIO: 1, PciConfig: 2 });
/** GAS access sizes (Table 5.1). */
export const GAS_ACCESS = Object.freeze({ Undefined: 0, Byte: 1, Word: 2, DWord: 3, QWord: 4 });

/** A Generic Address Structure. */
export interface Gas {
  readonly space: number;
  readonly bitWidth: number;
  readonly bitOffset: number;
  readonly accessSize: number;
  readonly address: number | bigint;
}

/** The all-zero GAS: "not supported". */
export const NO_GAS: Gas = Object.freeze({
  space: 0,
  bitWidth: 0,
  bitOffset: 0,
  accessSize: 0,
  address: 0,
});

/** A register block of `bytes` bytes at I/O `port`, accessed `access` bytes at a time. */
export function ioGas(port: number, bytes: number, access: number = bytes): Gas {
  const accessSize = { 1: GAS_ACCESS.Byte, 2: GAS_ACCESS.Word, 4: GAS_ACCESS.DWord }[access];
  if (accessSize === undefined) throw new Error(`bad access width ${access}`);
  return {
    space: GAS_SPACE.SystemIO,
    bitWidth: bytes * 8,
    bitOffset: 0,
    accessSize,
    address: port,
  };
}

/** The 12 bytes of a GAS. */
export function encodeGas(g: Gas): Uint8Array {
  return encodeStruct(GAS_LAYOUT, { ...g });
}

/**
 * MPS INTI flags (5.2.12.5, Table 5.26; MP spec 4.3.4): polarity in bits
 * 1-0 (00 conform, 01 high, 11 low), trigger mode in bits 3-2 (00 conform,
 * 01 edge, 11 level).
 */
export function mpsIntiFlags(o: Pick<IsaOverride, "polarity" | "trigger">): number {
  const polarity = { conform: 0, high: 1, low: 3 }[o.polarity];
  const trigger = { conform: 0, edge: 1, level: 3 }[o.trigger];
  return polarity | (trigger << 2);
}

// ---------------------------------------------------------------------------
// RSDP, RSDT, XSDT (5.2.5, 5.2.7, 5.2.8)

/** The RSDP (5.2.5.3, Table 5.3): 36 bytes for revision 2. */
export const RSDP_LAYOUT = defineStruct(
  [
    ["signature", 8],
    ["checksum", 1],
    ["oemId", 6],
    ["revision", 1],
    ["rsdtAddress", 4],
    ["length", 4],
    ["xsdtAddress", 8],
    ["extendedChecksum", 1],
    ["reserved", 3],
  ] as const,
);

/** The Root System Description Pointer. */
export class Rsdp implements AcpiTable {
  /** "RSD PTR ". */
  readonly signature = "RSD PTR ";

  /** Points at the RSDT (32-bit) and the XSDT. */
  constructor(readonly oemId: string, readonly rsdtAddress: number, readonly xsdtAddress: number) {}

  /** 36 bytes: the first checksum covers bytes 0-19 (the ACPI 1.0 part), the extended one all 36. */
  toAml(): Uint8Array {
    const out = encodeStruct(RSDP_LAYOUT, {
      signature: this.signature,
      oemId: padAscii(this.oemId, 6),
      revision: REVISION.rsdp,
      rsdtAddress: this.rsdtAddress,
      length: RSDP_LAYOUT.size,
      xsdtAddress: this.xsdtAddress,
    });
    out[RSDP_LAYOUT.offsets.checksum] = checksum(out.subarray(0, 20));
    out[RSDP_LAYOUT.offsets.extendedChecksum] = checksum(out);
    return out;
  }
}

/** The RSDT: 32-bit pointers to the other tables. */
export class Rsdt implements AcpiTable {
  /** "RSDT". */
  readonly signature = "RSDT";
  /** Lists `entries` (physical addresses below 4 GiB). */
  constructor(readonly ids: TableIds, readonly entries: readonly number[]) {}
  /** Header + 4 bytes per entry. */
  toAml(): Uint8Array {
    const body = new Uint8Array(4 * this.entries.length);
    const v = new DataView(body.buffer);
    this.entries.forEach((a, i) => {
      if (!Number.isSafeInteger(a) || a < 0 || a > 0xffffffff) {
        throw new RangeError(`RSDT entry 0x${a.toString(16)} is not a 32-bit address`);
      }
      v.setUint32(4 * i, a, true);
    });
    return encodeSdt(this.signature, REVISION.rsdt, this.ids, body);
  }
}

/** The XSDT: 64-bit pointers to the other tables. */
export class Xsdt implements AcpiTable {
  /** "XSDT". */
  readonly signature = "XSDT";
  /** Lists `entries`. */
  constructor(readonly ids: TableIds, readonly entries: readonly number[]) {}
  /** Header + 8 bytes per entry. */
  toAml(): Uint8Array {
    const body = new Uint8Array(8 * this.entries.length);
    const v = new DataView(body.buffer);
    this.entries.forEach((a, i) => v.setBigUint64(8 * i, BigInt(a), true));
    return encodeSdt(this.signature, REVISION.xsdt, this.ids, body);
  }
}

// ---------------------------------------------------------------------------
// FADT (5.2.9) and FACS (5.2.10)

/** The FADT (5.2.9, Table 5.9): 276 bytes for revision 6. */
export const FADT_LAYOUT = defineStruct(
  [
    ["header", 36],
    ["firmwareCtrl", 4],
    ["dsdt", 4],
    ["reserved0", 1],
    ["preferredPmProfile", 1],
    ["sciInt", 2],
    ["smiCmd", 4],
    ["acpiEnable", 1],
    ["acpiDisable", 1],
    ["s4biosReq", 1],
    ["pstateCnt", 1],
    ["pm1aEvtBlk", 4],
    ["pm1bEvtBlk", 4],
    ["pm1aCntBlk", 4],
    ["pm1bCntBlk", 4],
    ["pm2CntBlk", 4],
    ["pmTmrBlk", 4],
    ["gpe0Blk", 4],
    ["gpe1Blk", 4],
    ["pm1EvtLen", 1],
    ["pm1CntLen", 1],
    ["pm2CntLen", 1],
    ["pmTmrLen", 1],
    ["gpe0BlkLen", 1],
    ["gpe1BlkLen", 1],
    ["gpe1Base", 1],
    ["cstCnt", 1],
    ["pLvl2Lat", 2],
    ["pLvl3Lat", 2],
    ["flushSize", 2],
    ["flushStride", 2],
    ["dutyOffset", 1],
    ["dutyWidth", 1],
    ["dayAlrm", 1],
    ["monAlrm", 1],
    ["century", 1],
    ["iapcBootArch", 2],
    ["reserved1", 1],
    ["flags", 4],
    ["resetReg", 12],
    ["resetValue", 1],
    ["armBootArch", 2],
    ["minorVersion", 1],
    ["xFirmwareCtrl", 8],
    ["xDsdt", 8],
    ["xPm1aEvtBlk", 12],
    ["xPm1bEvtBlk", 12],
    ["xPm1aCntBlk", 12],
    ["xPm1bCntBlk", 12],
    ["xPm2CntBlk", 12],
    ["xPmTmrBlk", 12],
    ["xGpe0Blk", 12],
    ["xGpe1Blk", 12],
    ["sleepControlReg", 12],
    ["sleepStatusReg", 12],
    ["hypervisorVendorIdentity", 8],
  ] as const,
);

/** FADT fixed feature flags (5.2.9, Table 5.10). */
export const FADT_FLAGS = Object.freeze({
  WBINVD: 1 << 0,
  WBINVD_FLUSH: 1 << 1,
  PROC_C1: 1 << 2,
  P_LVL2_UP: 1 << 3,
  /** Set: no fixed-hardware power button (a control-method one, if any). */
  PWR_BUTTON: 1 << 4,
  /** Set: no fixed-hardware sleep button. */
  SLP_BUTTON: 1 << 5,
  FIX_RTC: 1 << 6,
  RTC_S4: 1 << 7,
  /** The PM timer is 32 bits wide. */
  TMR_VAL_EXT: 1 << 8,
  DCK_CAP: 1 << 9,
  RESET_REG_SUP: 1 << 10,
  SEALED_CASE: 1 << 11,
  HEADLESS: 1 << 12,
  CPU_SW_SLP: 1 << 13,
  PCI_EXP_WAK: 1 << 14,
  USE_PLATFORM_CLOCK: 1 << 15,
  S4_RTC_STS_VALID: 1 << 16,
  REMOTE_POWER_ON_CAPABLE: 1 << 17,
  FORCE_APIC_CLUSTER_MODEL: 1 << 18,
  FORCE_APIC_PHYSICAL_DESTINATION_MODE: 1 << 19,
  HW_REDUCED_ACPI: 1 << 20,
  LOW_POWER_S0_IDLE_CAPABLE: 1 << 21,
});

/** IA-PC boot architecture flags (5.2.9.3, Table 5.11). */
export const IAPC_BOOT_ARCH = Object.freeze({
  LEGACY_DEVICES: 1 << 0,
  I8042: 1 << 1,
  VGA_NOT_PRESENT: 1 << 2,
  MSI_NOT_SUPPORTED: 1 << 3,
  PCIE_ASPM_CONTROLS: 1 << 4,
  CMOS_RTC_NOT_PRESENT: 1 << 5,
});

/** The FADT's contents (fields not listed are zero). */
export interface FadtFields {
  readonly facs: number;
  readonly dsdt: number;
  readonly preferredPmProfile: number;
  readonly sciInt: number;
  readonly smiCmd: number;
  readonly pm1aEvtBlk: number;
  readonly pm1aCntBlk: number;
  readonly pmTmrBlk: number;
  readonly pm1EvtLen: number;
  readonly pm1CntLen: number;
  readonly pmTmrLen: number;
  /** The GPE0 block (0 = none) and its length in bytes (status + enable halves). */
  readonly gpe0Blk: number;
  readonly gpe0BlkLen: number;
  /** C2/C3 worst-case latencies in us: over 100 / over 1000 says "not supported". */
  readonly pLvl2Lat: number;
  readonly pLvl3Lat: number;
  /** CMOS index of the RTC century register (0 = none). */
  readonly century: number;
  readonly iapcBootArch: number;
  readonly flags: number;
  readonly resetReg: Gas;
  readonly resetValue: number;
  /** Up to 8 ASCII characters. */
  readonly hypervisorVendor: string;
}

/** The Fixed ACPI Description Table ("FACP"). */
export class Fadt implements AcpiTable {
  /** "FACP". */
  readonly signature = "FACP";
  /** Builds the FADT from its fields. */
  constructor(readonly ids: TableIds, readonly fields: FadtFields) {}

  /**
   * 276 bytes. The 32-bit and 64-bit (X_) forms of the FACS/DSDT pointers
   * and PM blocks carry the same values, as ACPI 6.5, 5.2.9 allows.
   */
  toAml(): Uint8Array {
    const f = this.fields;
    const values: Partial<Record<(typeof FADT_LAYOUT.fields)[number][0], FieldValue>> = {
      firmwareCtrl: f.facs,
      dsdt: f.dsdt,
      preferredPmProfile: f.preferredPmProfile,
      sciInt: f.sciInt,
      smiCmd: f.smiCmd,
      pm1aEvtBlk: f.pm1aEvtBlk,
      pm1aCntBlk: f.pm1aCntBlk,
      pmTmrBlk: f.pmTmrBlk,
      pm1EvtLen: f.pm1EvtLen,
      pm1CntLen: f.pm1CntLen,
      pmTmrLen: f.pmTmrLen,
      gpe0Blk: f.gpe0Blk,
      gpe0BlkLen: f.gpe0BlkLen,
      pLvl2Lat: f.pLvl2Lat,
      pLvl3Lat: f.pLvl3Lat,
      century: f.century,
      iapcBootArch: f.iapcBootArch,
      flags: f.flags,
      resetReg: encodeGas(f.resetReg),
      resetValue: f.resetValue,
      minorVersion: REVISION.fadtMinor,
      xFirmwareCtrl: f.facs,
      xDsdt: f.dsdt,
      // PM1 event: status + enable, two 16-bit registers (4.8.3.1); PM1 control: 16 bits.
      xPm1aEvtBlk: encodeGas(ioGas(f.pm1aEvtBlk, f.pm1EvtLen, 2)),
      xPm1aCntBlk: encodeGas(ioGas(f.pm1aCntBlk, f.pm1CntLen, 2)),
      xPmTmrBlk: encodeGas(ioGas(f.pmTmrBlk, f.pmTmrLen, 4)),
      // GPE registers are byte-accessible (ACPI 6.5, 4.8.4.1).
      ...(f.gpe0Blk ? { xGpe0Blk: encodeGas(ioGas(f.gpe0Blk, f.gpe0BlkLen, 1)) } : {}),
      hypervisorVendorIdentity: padAscii(f.hypervisorVendor, 8, "\0"),
    };
    const body = encodeStruct(FADT_LAYOUT, values).subarray(HEADER_LAYOUT.size);
    return encodeSdt(this.signature, REVISION.fadt, this.ids, body);
  }
}

/** The FACS (5.2.10, Table 5.14): 64 bytes, no checksum, 64-byte aligned. */
export const FACS_LAYOUT = defineStruct(
  [
    ["signature", 4],
    ["length", 4],
    ["hardwareSignature", 4],
    ["firmwareWakingVector", 4],
    ["globalLock", 4],
    ["flags", 4],
    ["xFirmwareWakingVector", 8],
    ["version", 1],
    ["reserved0", 3],
    ["ospmFlags", 4],
    ["reserved1", 24],
  ] as const,
);

/** The FACS must start on a 64-byte boundary (5.2.10). */
export const FACS_ALIGN = 64;

/** The Firmware ACPI Control Structure: no S4BIOS, no waking vector (dhyve has no sleep states but S5). */
export class Facs implements AcpiTable {
  /** "FACS". */
  readonly signature = "FACS";
  /** `hardwareSignature` changes when the hardware configuration does (5.2.10). */
  constructor(readonly hardwareSignature = 0) {}
  /** 64 bytes. */
  toAml(): Uint8Array {
    return encodeStruct(FACS_LAYOUT, {
      signature: this.signature,
      length: FACS_LAYOUT.size,
      hardwareSignature: this.hardwareSignature,
      version: REVISION.facs,
    });
  }
}

// ---------------------------------------------------------------------------
// DSDT (5.2.11)

/** A DSDT or SSDT: the header followed by AML terms. */
export class DefinitionBlock implements AcpiTable {
  /** Wraps `terms` in a table with `signature` ("DSDT" or "SSDT"). */
  constructor(
    readonly signature: "DSDT" | "SSDT",
    readonly ids: TableIds,
    readonly terms: readonly TermArg[],
    readonly revision: number = REVISION.dsdt,
  ) {}
  /** Header + AML. */
  toAml(): Uint8Array {
    return encodeSdt(this.signature, this.revision, this.ids, encodeTerms(this.terms));
  }
}

// ---------------------------------------------------------------------------
// MADT (5.2.12)

/** The MADT's fixed part (5.2.12, Table 5.19): 44 bytes. */
export const MADT_LAYOUT = defineStruct(
  [
    ["header", 36],
    ["localApicAddress", 4],
    ["flags", 4],
  ] as const,
);

/** MADT flags: the system also has dual 8259s (Table 5.20). */
export const MADT_PCAT_COMPAT = 1;

/** Local APIC / x2APIC flags (Table 5.23). */
export const LAPIC_FLAGS = Object.freeze({ ENABLED: 1, ONLINE_CAPABLE: 2 });

/** The interrupt controller structures dhyve uses, by type (Table 5.21), with their layouts. */
export const MADT_ENTRY = Object.freeze({
  /** Processor Local APIC (5.2.12.2, Table 5.22). */
  lapic: {
    type: 0,
    layout: defineStruct(
      [
        ["type", 1],
        ["length", 1],
        ["uid", 1],
        ["apicId", 1],
        ["flags", 4],
      ] as const,
    ),
  },
  /** I/O APIC (5.2.12.3, Table 5.24). */
  ioapic: {
    type: 1,
    layout: defineStruct(
      [
        ["type", 1],
        ["length", 1],
        ["id", 1],
        ["reserved", 1],
        ["address", 4],
        ["gsiBase", 4],
      ] as const,
    ),
  },
  /** Interrupt Source Override (5.2.12.5, Table 5.25). */
  iso: {
    type: 2,
    layout: defineStruct(
      [
        ["type", 1],
        ["length", 1],
        ["bus", 1],
        ["source", 1],
        ["gsi", 4],
        ["flags", 2],
      ] as const,
    ),
  },
  /** Local APIC NMI (5.2.12.7, Table 5.28). */
  lapicNmi: {
    type: 4,
    layout: defineStruct(
      [
        ["type", 1],
        ["length", 1],
        ["uid", 1],
        ["flags", 2],
        ["lint", 1],
      ] as const,
    ),
  },
  /** Processor Local x2APIC (5.2.12.12, Table 5.33). */
  x2apic: {
    type: 9,
    layout: defineStruct(
      [
        ["type", 1],
        ["length", 1],
        ["reserved", 2],
        ["x2apicId", 4],
        ["flags", 4],
        ["uid", 4],
      ] as const,
    ),
  },
  /** Local x2APIC NMI (5.2.12.13, Table 5.34). */
  x2apicNmi: {
    type: 0x0a,
    layout: defineStruct(
      [
        ["type", 1],
        ["length", 1],
        ["flags", 2],
        ["uid", 4],
        ["lint", 1],
        ["reserved", 3],
      ] as const,
    ),
  },
});

/** One interrupt controller structure of the MADT. */
export type MadtEntry =
  | {
    readonly type: "lapic";
    readonly uid: number;
    readonly apicId: number;
    readonly flags: number;
  }
  | {
    readonly type: "ioapic";
    readonly id: number;
    readonly address: number;
    readonly gsiBase: number;
  }
  | { readonly type: "iso"; readonly source: number; readonly gsi: number; readonly flags: number }
  | {
    readonly type: "lapicNmi";
    readonly uid: number;
    readonly flags: number;
    readonly lint: number;
  }
  | {
    readonly type: "x2apic";
    readonly uid: number;
    readonly x2apicId: number;
    readonly flags: number;
  }
  | {
    readonly type: "x2apicNmi";
    readonly uid: number;
    readonly flags: number;
    readonly lint: number;
  };

/** The bytes of one MADT entry. */
export function encodeMadtEntry(e: MadtEntry): Uint8Array {
  const { type, layout } = MADT_ENTRY[e.type];
  // Each layout's fields are a superset of the entry's keys plus type/length.
  const { type: _kind, ...fields } = e;
  return encodeStruct(
    layout as typeof MADT_ENTRY.lapic.layout,
    { ...fields, type, length: layout.size } as Record<string, FieldValue>,
  );
}

/** The Multiple APIC Description Table ("APIC"). */
export class Madt implements AcpiTable {
  /** "APIC". */
  readonly signature = "APIC";
  /** Lists `entries` after the local APIC address and flags. */
  constructor(
    readonly ids: TableIds,
    readonly localApicAddress: number,
    readonly flags: number,
    readonly entries: readonly MadtEntry[],
  ) {}
  /** Header, fixed part, entries. */
  toAml(): Uint8Array {
    const fixed = encodeStruct(MADT_LAYOUT, {
      localApicAddress: this.localApicAddress,
      flags: this.flags,
    }).subarray(HEADER_LAYOUT.size);
    const body = concatBytes([fixed, ...this.entries.map(encodeMadtEntry)]);
    return encodeSdt(this.signature, REVISION.madt, this.ids, body);
  }
}

/** UID meaning "all processors" in a Local APIC NMI structure. */
export const ALL_PROCESSORS_UID = 0xff;
/** UID meaning "all processors" in a Local x2APIC NMI structure. */
export const ALL_PROCESSORS_X2UID = 0xffffffff;

/**
 * The MADT entries of `p`: one processor entry per CPU in UID order
 * (present ones enabled, the rest online-capable), x2APIC entries only
 * for APIC IDs above 254; the IOAPIC; the ISA overrides; LINT1 as NMI on
 * every processor (the x2APIC form too when x2APIC entries exist).
 */
export function madtEntries(p: FirmwarePlatform): MadtEntry[] {
  const entries: MadtEntry[] = [];
  let anyX2apic = false;
  for (const cpu of p.cpus) {
    // Table 5.23: Online Capable is reserved (zero) when Enabled is set.
    const flags = cpu.present ? LAPIC_FLAGS.ENABLED : LAPIC_FLAGS.ONLINE_CAPABLE;
    if (cpu.apicId <= MAX_XAPIC_ID) {
      entries.push({ type: "lapic", uid: cpu.uid, apicId: cpu.apicId, flags });
    } else {
      if (!p.x2apic) throw new Error(`APIC ID ${cpu.apicId} needs x2APIC, which is off`);
      anyX2apic = true;
      entries.push({ type: "x2apic", uid: cpu.uid, x2apicId: cpu.apicId, flags });
    }
  }
  entries.push({
    type: "ioapic",
    id: p.ioapic.id,
    address: p.ioapic.address,
    gsiBase: p.ioapic.gsiBase,
  });
  for (const o of p.isaOverrides) {
    entries.push({ type: "iso", source: o.irq, gsi: o.gsi, flags: mpsIntiFlags(o) });
  }
  // LINT1 is the NMI input on every processor; flags conform to the bus (as bhyve and QEMU do).
  entries.push({ type: "lapicNmi", uid: ALL_PROCESSORS_UID, flags: 0, lint: 1 });
  if (anyX2apic) entries.push({ type: "x2apicNmi", uid: ALL_PROCESSORS_X2UID, flags: 0, lint: 1 });
  return entries;
}

// ---------------------------------------------------------------------------
// HPET (IA-PC HPET Specification 1.0a, 3.2.4)

/** The HPET description table (HPET spec 1.0a, table 3): 56 bytes. */
export const HPET_LAYOUT = defineStruct(
  [
    ["header", 36],
    ["eventTimerBlockId", 4],
    ["baseAddress", 12],
    ["hpetNumber", 1],
    ["minimumTick", 2],
    ["pageProtection", 1],
  ] as const,
);

/** Fields of the HPET table. */
export interface HpetFields {
  readonly address: number;
  /** Comparators (timers), 1-32. */
  readonly timers: number;
  readonly counter64: boolean;
  readonly legacyCapable: boolean;
  readonly vendorId: number;
  readonly revision: number;
  readonly minTick: number;
}

/**
 * The Event Timer Block ID: hardware revision (bits 7-0), number of
 * comparators minus one (12-8), COUNT_SIZE_CAP (13), LegacyReplacement
 * IRQ routing capable (15), PCI vendor ID (31-16); the same layout as the
 * low half of the HPET's General Capabilities register.
 */
export function hpetBlockId(h: HpetFields): number {
  if (h.timers < 1 || h.timers > 32) throw new RangeError(`HPET with ${h.timers} timers`);
  return ((h.revision & 0xff) | ((h.timers - 1) << 8) | (h.counter64 ? 1 << 13 : 0) |
    (h.legacyCapable ? 1 << 15 : 0) | ((h.vendorId & 0xffff) << 16)) >>> 0;
}

/** The HPET table. */
export class Hpet implements AcpiTable {
  /** "HPET". */
  readonly signature = "HPET";
  /** Describes HPET number 0 at `fields.address`. */
  constructor(readonly ids: TableIds, readonly fields: HpetFields) {}
  /** 56 bytes. */
  toAml(): Uint8Array {
    const f = this.fields;
    const body = encodeStruct(HPET_LAYOUT, {
      eventTimerBlockId: hpetBlockId(f),
      // The register block: 1 KiB of system memory, accessed as 64-bit registers.
      baseAddress: encodeGas({
        space: GAS_SPACE.SystemMemory,
        bitWidth: 64,
        bitOffset: 0,
        accessSize: GAS_ACCESS.Undefined,
        address: f.address,
      }),
      hpetNumber: 0,
      minimumTick: f.minTick,
      // No page protection, no OEM attributes.
      pageProtection: 0,
    }).subarray(HEADER_LAYOUT.size);
    return encodeSdt(this.signature, REVISION.hpet, this.ids, body);
  }
}

// ---------------------------------------------------------------------------
// MCFG (PCI Firmware Specification 3.2, 4.1.2)

/** The MCFG's fixed part: header and 8 reserved bytes. */
export const MCFG_LAYOUT = defineStruct([["header", 36], ["reserved", 8]] as const);
/** One configuration space base address allocation structure (Table 4-3): 16 bytes. */
export const MCFG_ALLOCATION_LAYOUT = defineStruct(
  [
    ["baseAddress", 8],
    ["segment", 2],
    ["startBus", 1],
    ["endBus", 1],
    ["reserved", 4],
  ] as const,
);

/** One ECAM range. */
export interface McfgAllocation {
  /** Address of bus 0's configuration space in this segment (even when startBus > 0). */
  readonly base: number;
  readonly segment: number;
  readonly startBus: number;
  readonly endBus: number;
}

/** The PCI Express memory-mapped configuration table. */
export class Mcfg implements AcpiTable {
  /** "MCFG". */
  readonly signature = "MCFG";
  /** Lists `allocations`. */
  constructor(readonly ids: TableIds, readonly allocations: readonly McfgAllocation[]) {}
  /** Header, 8 reserved bytes, 16 bytes per allocation. */
  toAml(): Uint8Array {
    const reserved = new Uint8Array(MCFG_LAYOUT.size - HEADER_LAYOUT.size);
    const allocs = this.allocations.map((a) =>
      encodeStruct(MCFG_ALLOCATION_LAYOUT, {
        baseAddress: a.base,
        segment: a.segment,
        startBus: a.startBus,
        endBus: a.endBus,
      })
    );
    const body = new Uint8Array(reserved.length + 16 * allocs.length);
    allocs.forEach((a, i) => body.set(a, reserved.length + 16 * i));
    return encodeSdt(this.signature, REVISION.mcfg, this.ids, body);
  }
}

// ---------------------------------------------------------------------------
// SPCR (Microsoft Serial Port Console Redirection Table, revision 2)

/** The SPCR (revision 2): 80 bytes. */
export const SPCR_LAYOUT = defineStruct(
  [
    ["header", 36],
    ["interfaceType", 1],
    ["reserved0", 3],
    ["baseAddress", 12],
    ["interruptType", 1],
    ["irq", 1],
    ["gsi", 4],
    ["baudRate", 1],
    ["parity", 1],
    ["stopBits", 1],
    ["flowControl", 1],
    ["terminalType", 1],
    ["language", 1],
    ["pciDeviceId", 2],
    ["pciVendorId", 2],
    ["pciBus", 1],
    ["pciDevice", 1],
    ["pciFunction", 1],
    ["pciFlags", 4],
    ["pciSegment", 1],
    ["reserved1", 4],
  ] as const,
);

/** SPCR interface type: full 16550-compatible (DBG2 port subtypes). */
export const SPCR_16550 = 0;
/** SPCR interrupt type bits: dual 8259 (bit 0), I/O APIC (bit 1). */
export const SPCR_INTERRUPT = Object.freeze({ PIC8259: 1, IOAPIC: 2 });
/** SPCR baud rate codes. */
export const SPCR_BAUD = Object.freeze({ 9600: 3, 19200: 4, 57600: 6, 115200: 7 });

/** Fields of the SPCR. */
export interface SpcrFields {
  readonly port: number;
  readonly irq: number;
  readonly gsi: number;
  readonly baud: keyof typeof SPCR_BAUD;
}

/** The Serial Port Console Redirection table for a 16550 at an I/O port, 8N1, no flow control, VT100. */
export class Spcr implements AcpiTable {
  /** "SPCR". */
  readonly signature = "SPCR";
  /** Describes the UART at `fields.port`. */
  constructor(readonly ids: TableIds, readonly fields: SpcrFields) {}
  /** 80 bytes. */
  toAml(): Uint8Array {
    const f = this.fields;
    const body = encodeStruct(SPCR_LAYOUT, {
      interfaceType: SPCR_16550,
      baseAddress: encodeGas(ioGas(f.port, 1)),
      interruptType: SPCR_INTERRUPT.PIC8259 | SPCR_INTERRUPT.IOAPIC,
      irq: f.irq,
      gsi: f.gsi,
      baudRate: SPCR_BAUD[f.baud],
      parity: 0, // none
      stopBits: 1, // one stop bit
      flowControl: 0, // none
      terminalType: 0, // VT100
      language: 0,
      // Not a PCI device.
      pciDeviceId: 0xffff,
      pciVendorId: 0xffff,
    }).subarray(HEADER_LAYOUT.size);
    return encodeSdt(this.signature, REVISION.spcr, this.ids, body);
  }
}

// ---------------------------------------------------------------------------
// From the platform

/** The OEM IDs of `p`. */
export function tableIds(p: FirmwarePlatform): TableIds {
  return { oemId: p.oemId, oemTableId: p.oemTableId, oemRevision: OEM_REVISION };
}

/** The CMOS index of the RTC century byte (the MC146818 convention, as bhyve's RTC). */
export const RTC_CENTURY_INDEX = 0x32;

/**
 * The FADT of `p`: no SMM (SMI_CMD = 0, so the machine is always in ACPI
 * mode), PM1a event/control blocks and a 32-bit PM timer, the reset
 * register, a fixed power button and no sleep button, legacy devices but
 * no 8042 and no VGA, MSI supported.
 */
export function buildFadt(p: FirmwarePlatform, addr: { facs: number; dsdt: number }): Fadt {
  const F = FADT_FLAGS;
  return new Fadt(tableIds(p), {
    facs: addr.facs,
    dsdt: addr.dsdt,
    preferredPmProfile: 0, // unspecified
    sciInt: p.pm.sciIrq,
    smiCmd: 0,
    pm1aEvtBlk: p.pm.pm1aEvent,
    pm1aCntBlk: p.pm.pm1aControl,
    pmTmrBlk: p.pm.pmTimer,
    pm1EvtLen: 4,
    pm1CntLen: 2,
    pmTmrLen: 4,
    gpe0Blk: p.pm.gpe0,
    gpe0BlkLen: p.pm.gpe0Length,
    // No C2/C3 (there is no P_BLK or _CST): latencies above 100 and 1000 us say so (Table 5.9).
    pLvl2Lat: 0x0fff,
    pLvl3Lat: 0xffff,
    century: RTC_CENTURY_INDEX,
    // PWR_BUTTON: the power button is the control-method one, \_SB.PWRB, notified
    // through a GPE; there is no fixed-hardware button. SLP_BUTTON: no sleep button.
    // FIX_RTC: the RTC alarm is not a fixed event (PM1 RTC_STS never sets: no wake).
    flags: F.WBINVD | F.PROC_C1 | F.PWR_BUTTON | F.SLP_BUTTON | F.FIX_RTC | F.RESET_REG_SUP |
      F.TMR_VAL_EXT,
    // No 8042 flag: the controller exists (for the reset line, A20 and OSes that
    // probe it blindly) but no keyboard or mouse is attached, so OSes need not probe it.
    iapcBootArch: IAPC_BOOT_ARCH.LEGACY_DEVICES | IAPC_BOOT_ARCH.VGA_NOT_PRESENT,
    resetReg: ioGas(p.reset.port, 1),
    resetValue: p.reset.value,
    hypervisorVendor: "dhyve",
  });
}

/** The MADT of `p`. */
export function buildMadt(p: FirmwarePlatform): Madt {
  return new Madt(tableIds(p), p.lapicBase, MADT_PCAT_COMPAT, madtEntries(p));
}

/** The HPET table of `p`. */
export function buildHpet(p: FirmwarePlatform): Hpet {
  return new Hpet(tableIds(p), p.hpet);
}

/** The MCFG of `p`: its one ECAM range. */
export function buildMcfg(p: FirmwarePlatform): Mcfg {
  return new Mcfg(tableIds(p), [p.ecam]);
}

/** The SPCR of `p` for COM1 at 115200 baud, or undefined when COM1 is absent. */
export function buildSpcr(p: FirmwarePlatform): Spcr | undefined {
  const com1 = p.serial.find((s) => s.uid === 1);
  if (com1 === undefined) return undefined;
  const override = p.isaOverrides.find((o) => o.irq === com1.irq);
  return new Spcr(tableIds(p), {
    port: com1.port,
    irq: com1.irq,
    gsi: override?.gsi ?? p.ioapic.gsiBase + com1.irq,
    baud: 115200,
  });
}

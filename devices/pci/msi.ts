/**
 * Message Signaled Interrupts: the MSI capability (PCI 3.0 §6.8.1) and the
 * MSI-X capability with its table and Pending Bit Array (§6.8.2).
 *
 * The MSI registers live in configuration space; the MSI-X table and PBA
 * live in shared state arrays ({@linkcode msixFields}) that a function's
 * layout includes, and are reached through a memory BAR. Messages leave
 * through the injected {@linkcode MsiSink}. A vector that is masked when its
 * event occurs sets its pending bit and is sent when it is unmasked
 * (§6.8.1.7-6.8.1.8 for MSI per-vector masking, §6.8.2.9-6.8.2.10 for MSI-X).
 *
 * Neither capability checks the command register's Bus Master Enable before
 * sending: bhyve (pci_generate_msi/pci_generate_msix) does not either, and
 * guests that use MSI always set it.
 *
 * Section numbers refer to the PCI Local Bus Specification, revision 3.0.
 *
 * @module
 */
import type { AccessSize, MsiSink } from "../device.ts";
import {
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  type PciCapabilitySpec,
  type PciConfigSpace,
} from "./config.ts";

// ---------------------------------------------------------------------------
// MSI capability (§6.8.1, figure 6-9). Offsets are relative to the capability.

/** MSI: Message Control (16 bits). */
export const MSI_CONTROL = 0x02;
/** MSI: Message Address, low dword. */
export const MSI_ADDRESS_LO = 0x04;
/** MSI: Message Upper Address (64-bit capable only). */
export const MSI_ADDRESS_HI = 0x08;
/** MSI: Message Data of a 32-bit capability (16 bits). */
export const MSI_DATA_32 = 0x08;
/** MSI: Message Data of a 64-bit capability (16 bits). */
export const MSI_DATA_64 = 0x0c;
/** MSI: Mask Bits of a 32-bit capability with per-vector masking. */
export const MSI_MASK_32 = 0x0c;
/** MSI: Pending Bits of a 32-bit capability with per-vector masking. */
export const MSI_PENDING_32 = 0x10;
/** MSI: Mask Bits of a 64-bit capability with per-vector masking. */
export const MSI_MASK_64 = 0x10;
/** MSI: Pending Bits of a 64-bit capability with per-vector masking. */
export const MSI_PENDING_64 = 0x14;

/** Message Control: MSI Enable (R/W, §6.8.1.3 bit 0). */
export const MSI_CTRL_ENABLE = 0x0001;
/** Message Control: Multiple Message Capable, log2 of the vectors (RO, bits 3:1). */
export const MSI_CTRL_MMC_MASK = 0x000e;
/** Shift of the MMC field. */
export const MSI_CTRL_MMC_SHIFT = 1;
/** Message Control: Multiple Message Enable, log2 of the vectors allocated (R/W, bits 6:4). */
export const MSI_CTRL_MME_MASK = 0x0070;
/** Shift of the MME field. */
export const MSI_CTRL_MME_SHIFT = 4;
/** Message Control: 64-bit address capable (RO, bit 7). */
export const MSI_CTRL_64BIT = 0x0080;
/** Message Control: per-vector masking capable (RO, bit 8). */
export const MSI_CTRL_PVM = 0x0100;
/** Message Address bits 1:0 are reserved; the address is dword aligned (§6.8.1.4). */
export const MSI_ADDRESS_LO_MASK = 0xfffffffc;
/** Message Data is 16 bits (§6.8.1.6); the rest of its dword is reserved. */
export const MSI_DATA_MASK = 0xffff;

/** Vector counts MSI allows (§6.8.1.3: 1, 2, 4, 8, 16 or 32). */
export type MsiVectors = 1 | 2 | 4 | 8 | 16 | 32;

/** An MSI capability, as declared. */
export interface MsiSpec {
  /** Vectors the function can use (Multiple Message Capable). */
  readonly vectors: MsiVectors;
  /** 64-bit message address capable. */
  readonly addr64: boolean;
  /** Per-vector masking capable (mask and pending bits). */
  readonly perVectorMask: boolean;
  /** A fixed config offset; else it follows the previous capability. */
  readonly offset?: number;
}

/** Bytes an MSI capability of `spec` occupies (§6.8.1, figure 6-9). */
export function msiLength(spec: Pick<MsiSpec, "addr64" | "perVectorMask">): number {
  if (spec.perVectorMask) return spec.addr64 ? 0x18 : 0x14;
  return spec.addr64 ? 0x0e : 0x0a;
}

/** The capability-list entry of an MSI capability. */
export function msiCapability(spec: MsiSpec): PciCapabilitySpec {
  const log2 = Math.log2(spec.vectors);
  if (!Number.isInteger(log2) || log2 < 0 || log2 > 5) {
    throw new Error(`MSI: ${spec.vectors} vectors (must be 1, 2, 4, 8, 16 or 32)`);
  }
  return {
    id: PCI_CAP_ID_MSI,
    length: msiLength(spec),
    offset: spec.offset,
    init(cap) {
      cap.value(
        MSI_CONTROL,
        2,
        (log2 << MSI_CTRL_MMC_SHIFT) | (spec.addr64 ? MSI_CTRL_64BIT : 0) |
          (spec.perVectorMask ? MSI_CTRL_PVM : 0),
      );
      // §6.8.1.3: MSI Enable and Multiple Message Enable are R/W.
      cap.writable(MSI_CONTROL, 2, MSI_CTRL_ENABLE | MSI_CTRL_MME_MASK);
      cap.writable(MSI_ADDRESS_LO, 4, MSI_ADDRESS_LO_MASK);
      if (spec.addr64) cap.writable(MSI_ADDRESS_HI, 4, 0xffffffff);
      cap.writable(spec.addr64 ? MSI_DATA_64 : MSI_DATA_32, 2, MSI_DATA_MASK);
      if (spec.perVectorMask) {
        // §6.8.1.7: one R/W mask bit per implemented vector; the others are
        // reserved. §6.8.1.8: the pending bits are read-only.
        const bits = spec.vectors === 32 ? 0xffffffff : (1 << spec.vectors) - 1;
        cap.writable(spec.addr64 ? MSI_MASK_64 : MSI_MASK_32, 4, bits >>> 0);
      }
    },
  };
}

/** What became of one message. */
export type MsiDelivery = "sent" | "pending" | "dropped";

/**
 * The run-time side of an MSI capability: everything is read from the
 * function's configuration space, so it has no state of its own.
 */
export class MsiCapability {
  /** The capability's configuration offset. */
  readonly offset: number;
  readonly #cfg: PciConfigSpace;
  readonly #sink: MsiSink | undefined;
  readonly #control: number;

  /** Binds the MSI capability at `offset` of `config`; messages go to `sink`. */
  constructor(config: PciConfigSpace, offset: number, sink?: MsiSink) {
    this.#cfg = config;
    this.offset = offset;
    this.#sink = sink;
    // The read-only control bits never change: take them from the template.
    const t = config.template.initial;
    this.#control = t[offset + MSI_CONTROL] | t[offset + MSI_CONTROL + 1] << 8;
  }

  /** 64-bit address capable. */
  get addr64(): boolean {
    return (this.#control & MSI_CTRL_64BIT) !== 0;
  }

  /** Bytes the capability occupies. */
  get length(): number {
    return msiLength(this);
  }

  /** Per-vector masking capable. */
  get perVectorMask(): boolean {
    return (this.#control & MSI_CTRL_PVM) !== 0;
  }

  /** Vectors the function can use (Multiple Message Capable). */
  get vectors(): number {
    return 1 << ((this.#control & MSI_CTRL_MMC_MASK) >> MSI_CTRL_MMC_SHIFT);
  }

  /** MSI Enable. */
  get enabled(): boolean {
    return (this.#ctl() & MSI_CTRL_ENABLE) !== 0;
  }

  /**
   * Vectors allocated by software (Multiple Message Enable). §6.8.1.3 forbids
   * enabling more than the function is capable of; such a value is taken as
   * the capable count.
   */
  get enabledVectors(): number {
    const mme = (this.#ctl() & MSI_CTRL_MME_MASK) >> MSI_CTRL_MME_SHIFT;
    return Math.min(1 << mme, this.vectors);
  }

  /** The Message Address (both dwords when 64-bit capable). */
  get address(): number {
    const lo = this.#cfg.get32(this.offset + MSI_ADDRESS_LO);
    return this.addr64 ? this.#cfg.get32(this.offset + MSI_ADDRESS_HI) * 2 ** 32 + lo : lo;
  }

  /** The Message Data register. */
  get data(): number {
    return this.#cfg.get16(this.offset + (this.addr64 ? MSI_DATA_64 : MSI_DATA_32));
  }

  /** The mask bits (0 without per-vector masking). */
  get maskBits(): number {
    return this.perVectorMask ? this.#cfg.get32(this.offset + this.#maskAt()) : 0;
  }

  /** The pending bits (0 without per-vector masking). */
  get pendingBits(): number {
    return this.perVectorMask ? this.#cfg.get32(this.offset + this.#maskAt() + 4) : 0;
  }

  /**
   * The data of message `vector`: with several vectors enabled, the
   * function puts the vector number in the low bits of Message Data that
   * the enabled count frees (§6.8.1.3 MME, §6.8.1.6).
   */
  messageData(vector: number): number {
    const n = this.enabledVectors;
    return (this.data & ~(n - 1)) | (vector & (n - 1));
  }

  /**
   * Signals `vector`: sent when MSI is enabled, the vector is allocated and
   * unmasked; pending when it is masked (§6.8.1.8); else dropped.
   */
  send(vector: number): MsiDelivery {
    if (!this.enabled || !Number.isInteger(vector) || vector < 0) return "dropped";
    if (vector >= this.enabledVectors) return "dropped";
    if (this.maskBits & (1 << vector)) {
      this.#setPending(this.pendingBits | (1 << vector));
      return "pending";
    }
    this.#sink?.send(this.address, this.messageData(vector));
    return "sent";
  }

  /**
   * Call after every config write that touched the capability: a vector
   * that is now unmasked and pending is sent and its pending bit cleared
   * (§6.8.1.8).
   */
  afterWrite(): void {
    if (!this.perVectorMask || !this.enabled) return;
    const pending = this.pendingBits;
    if (pending === 0) return;
    const mask = this.maskBits;
    for (let v = 0; v < this.enabledVectors; v++) {
      const bit = 1 << v;
      if (pending & bit && !(mask & bit)) {
        this.#setPending(this.pendingBits & ~bit);
        this.#sink?.send(this.address, this.messageData(v));
      }
    }
  }

  #ctl(): number {
    return this.#cfg.get16(this.offset + MSI_CONTROL);
  }

  #maskAt(): number {
    return this.addr64 ? MSI_MASK_64 : MSI_MASK_32;
  }

  #setPending(bits: number): void {
    this.#cfg.set32(this.offset + this.#maskAt() + 4, bits >>> 0);
  }
}

// ---------------------------------------------------------------------------
// MSI-X capability (§6.8.2, figure 6-10).

/** MSI-X: Message Control (16 bits). */
export const MSIX_CONTROL = 0x02;
/** MSI-X: Table Offset / Table BIR (RO). */
export const MSIX_TABLE = 0x04;
/** MSI-X: PBA Offset / PBA BIR (RO). */
export const MSIX_PBA = 0x08;
/** Bytes of the MSI-X capability. */
export const MSIX_CAP_LENGTH = 0x0c;

/** Message Control: Table Size, N - 1 (RO, bits 10:0). */
export const MSIX_CTRL_TABLE_SIZE_MASK = 0x07ff;
/** Message Control: Function Mask (R/W, bit 14). */
export const MSIX_CTRL_FUNCTION_MASK = 0x4000;
/** Message Control: MSI-X Enable (R/W, bit 15). */
export const MSIX_CTRL_ENABLE = 0x8000;
/** Table/PBA register: the BAR indicator (bits 2:0). */
export const MSIX_BIR_MASK = 0x7;
/** Table/PBA register: the QWORD-aligned offset (bits 31:3). */
export const MSIX_OFFSET_MASK = 0xfffffff8;
/** Most vectors MSI-X allows (§6.8.2.3: the table size field is 11 bits). */
export const MSIX_MAX_VECTORS = 2048;

/** Bytes of one table entry (§6.8.2, figure 6-11). */
export const MSIX_ENTRY_SIZE = 16;
/** Entry: Message Address, low dword. */
export const MSIX_ENTRY_ADDRESS_LO = 0x0;
/** Entry: Message Upper Address. */
export const MSIX_ENTRY_ADDRESS_HI = 0x4;
/** Entry: Message Data. */
export const MSIX_ENTRY_DATA = 0x8;
/** Entry: Vector Control. */
export const MSIX_ENTRY_VECTOR_CONTROL = 0xc;
/** Vector Control bit 0: Mask Bit (§6.8.2.9); bits 31:1 are reserved. */
export const MSIX_VECTOR_CTRL_MASK = 0x1;
/** Message Address bits 1:0 are taken as 0 (§6.8.2.6: software must write zeroes). */
export const MSIX_ADDRESS_LO_MASK = 0xfffffffc;

/** An MSI-X capability, as declared. */
export interface MsixSpec {
  /** Table entries, 1-2048. */
  readonly vectors: number;
  /** BAR slot holding the table. */
  readonly tableBar: number;
  /** Offset of the table in that BAR (8-byte aligned). */
  readonly tableOffset: number;
  /** BAR slot holding the PBA. */
  readonly pbaBar: number;
  /** Offset of the PBA in that BAR (8-byte aligned). */
  readonly pbaOffset: number;
  /** A fixed config offset; else it follows the previous capability. */
  readonly offset?: number;
}

/** Bytes of the PBA of `vectors` vectors: one bit each, in QWORDs (§6.8.2.10). */
export function msixPbaSize(vectors: number): number {
  return Math.ceil(vectors / 64) * 8;
}

/**
 * The state fields an MSI-X function adds to its layout: the table (four
 * dwords per entry) and the PBA (two dwords per QWORD).
 */
export function msixFields(
  vectors: number,
): { readonly msixTable: readonly ["u32", number]; readonly msixPba: readonly ["u32", number] } {
  return {
    msixTable: ["u32", vectors * (MSIX_ENTRY_SIZE / 4)],
    msixPba: ["u32", msixPbaSize(vectors) / 4],
  };
}

/** The capability-list entry of an MSI-X capability. */
export function msixCapability(spec: MsixSpec): PciCapabilitySpec {
  const n = spec.vectors;
  if (!Number.isInteger(n) || n < 1 || n > MSIX_MAX_VECTORS) {
    throw new Error(`MSI-X: ${n} vectors (must be 1-${MSIX_MAX_VECTORS})`);
  }
  const places = [
    ["table", spec.tableBar, spec.tableOffset],
    ["PBA", spec.pbaBar, spec.pbaOffset],
  ] as const;
  for (const [what, bar, off] of places) {
    if (!Number.isInteger(bar) || bar < 0 || bar > 5) throw new Error(`MSI-X ${what}: BAR ${bar}`);
    if (!Number.isInteger(off) || off < 0 || off % 8 !== 0 || off >= 2 ** 32) {
      throw new Error(`MSI-X ${what}: offset ${off} must be QWORD aligned`);
    }
  }
  return {
    id: PCI_CAP_ID_MSIX,
    length: MSIX_CAP_LENGTH,
    offset: spec.offset,
    init(cap) {
      cap.value(MSIX_CONTROL, 2, n - 1); // §6.8.2.3: Table Size is encoded as N - 1
      cap.writable(MSIX_CONTROL, 2, MSIX_CTRL_ENABLE | MSIX_CTRL_FUNCTION_MASK);
      cap.value(MSIX_TABLE, 4, (spec.tableOffset | spec.tableBar) >>> 0);
      cap.value(MSIX_PBA, 4, (spec.pbaOffset | spec.pbaBar) >>> 0);
    },
  };
}

/**
 * The run-time side of an MSI-X capability: the control bits live in
 * configuration space, the table and PBA in the shared arrays given.
 */
export class MsixCapability {
  /** The capability's configuration offset. */
  readonly offset: number;
  /** Table entries. */
  readonly vectors: number;
  /** BAR slot and offset of the table. */
  readonly tableBar: number;
  readonly tableOffset: number;
  /** BAR slot and offset of the PBA. */
  readonly pbaBar: number;
  readonly pbaOffset: number;
  readonly #cfg: PciConfigSpace;
  readonly #table: Uint32Array;
  readonly #pba: Uint32Array;
  readonly #sink: MsiSink | undefined;

  /**
   * Binds the MSI-X capability at `offset` of `config` over the shared
   * `table` and `pba` arrays ({@linkcode msixFields}); messages go to `sink`.
   * Throws when the table or PBA is not inside a memory BAR of the function.
   */
  constructor(
    config: PciConfigSpace,
    offset: number,
    table: Uint32Array,
    pba: Uint32Array,
    sink?: MsiSink,
  ) {
    this.#cfg = config;
    this.offset = offset;
    this.#sink = sink;
    const t = config.template.initial;
    const rd32 = (o: number) => (t[o] | t[o + 1] << 8 | t[o + 2] << 16 | t[o + 3] << 24) >>> 0;
    this.vectors = ((t[offset + MSIX_CONTROL] | t[offset + MSIX_CONTROL + 1] << 8) &
      MSIX_CTRL_TABLE_SIZE_MASK) + 1;
    const tab = rd32(offset + MSIX_TABLE), pbaReg = rd32(offset + MSIX_PBA);
    this.tableBar = tab & MSIX_BIR_MASK;
    this.tableOffset = (tab & MSIX_OFFSET_MASK) >>> 0;
    this.pbaBar = pbaReg & MSIX_BIR_MASK;
    this.pbaOffset = (pbaReg & MSIX_OFFSET_MASK) >>> 0;
    if (table.length < this.vectors * 4 || pba.length < msixPbaSize(this.vectors) / 4) {
      throw new Error(`MSI-X: the state arrays are too small for ${this.vectors} vectors`);
    }
    this.#table = table;
    this.#pba = pba;
    const check = (what: string, bar: number, off: number, len: number) => {
      const b = config.template.bars.find((x) => x.index === bar);
      if (!b || b.kind === "io") throw new Error(`MSI-X ${what}: BAR${bar} is not a memory BAR`);
      if (off + len > b.size) throw new Error(`MSI-X ${what}: does not fit in BAR${bar}`);
    };
    check("table", this.tableBar, this.tableOffset, this.tableSize);
    check("PBA", this.pbaBar, this.pbaOffset, this.pbaSize);
    if (
      this.tableBar === this.pbaBar && this.tableOffset < this.pbaOffset + this.pbaSize &&
      this.pbaOffset < this.tableOffset + this.tableSize
    ) {
      throw new Error("MSI-X: the table and the PBA overlap");
    }
  }

  /** Bytes of the table. */
  get tableSize(): number {
    return this.vectors * MSIX_ENTRY_SIZE;
  }

  /** Bytes of the PBA. */
  get pbaSize(): number {
    return msixPbaSize(this.vectors);
  }

  /** MSI-X Enable. */
  get enabled(): boolean {
    return (this.#ctl() & MSIX_CTRL_ENABLE) !== 0;
  }

  /** Function Mask: every vector masked (§6.8.2.3). */
  get functionMasked(): boolean {
    return (this.#ctl() & MSIX_CTRL_FUNCTION_MASK) !== 0;
  }

  /** The Mask Bit of entry `vector`. */
  vectorMasked(vector: number): boolean {
    return (this.#table[vector * 4 + 3] & MSIX_VECTOR_CTRL_MASK) !== 0;
  }

  /** The pending bit of `vector`. */
  pending(vector: number): boolean {
    return (this.#pba[vector >> 5] & (1 << (vector & 31))) !== 0;
  }

  /** Entry `vector`: its message and mask bit. */
  entry(vector: number): { address: number; data: number; masked: boolean } {
    const t = this.#table, i = vector * 4;
    return {
      address: t[i + 1] * 2 ** 32 + t[i],
      data: t[i + 2],
      masked: this.vectorMasked(vector),
    };
  }

  /** Whether a BAR access at `offset` of BAR `bar` is in the table. */
  inTable(bar: number, offset: number): boolean {
    return bar === this.tableBar && offset >= this.tableOffset &&
      offset < this.tableOffset + this.tableSize;
  }

  /** Whether a BAR access at `offset` of BAR `bar` is in the PBA. */
  inPba(bar: number, offset: number): boolean {
    return bar === this.pbaBar && offset >= this.pbaOffset &&
      offset < this.pbaOffset + this.pbaSize;
  }

  /** Power-on state: every vector masked (§6.8.2.9), messages 0, nothing pending. */
  reset(): void {
    this.#table.fill(0, 0, this.vectors * 4);
    for (let v = 0; v < this.vectors; v++) this.#table[v * 4 + 3] = MSIX_VECTOR_CTRL_MASK;
    this.#pba.fill(0, 0, this.pbaSize / 4);
  }

  /**
   * Signals `vector`: dropped unless MSI-X is enabled and the entry exists;
   * pending while the function or the vector is masked (§6.8.2.9); else sent.
   */
  send(vector: number): MsiDelivery {
    if (!this.enabled || !Number.isInteger(vector) || vector < 0 || vector >= this.vectors) {
      return "dropped";
    }
    if (this.functionMasked || this.vectorMasked(vector)) {
      this.#pba[vector >> 5] |= 1 << (vector & 31);
      return "pending";
    }
    this.#deliver(vector);
    return "sent";
  }

  /**
   * A read in the table, `offset` from its start. §6.8.2 allows DWORD and
   * QWORD reads; narrower ones return the bytes asked for, as bhyve does.
   */
  tableRead(offset: number, size: AccessSize): number {
    return readBytes(this.#table, offset, size, this.tableSize);
  }

  /**
   * A write in the table, `offset` from its start. Only aligned DWORD writes
   * take effect (QWORD writes arrive as two); narrower ones are ignored, as
   * bhyve's pci_emul_msix_twrite does (§6.8.2 leaves them undefined).
   */
  tableWrite(offset: number, size: AccessSize, value: number): void {
    if (size !== 4 || offset % 4 !== 0 || offset + 4 > this.tableSize) return;
    const i = offset >> 2;
    switch (offset % MSIX_ENTRY_SIZE) {
      case MSIX_ENTRY_ADDRESS_LO:
        this.#table[i] = (value & MSIX_ADDRESS_LO_MASK) >>> 0;
        break;
      case MSIX_ENTRY_VECTOR_CONTROL:
        // §6.8.2.9: bits 31:1 are reserved; they read 0 here.
        this.#table[i] = value & MSIX_VECTOR_CTRL_MASK;
        break;
      default:
        this.#table[i] = value >>> 0;
    }
    if (offset % MSIX_ENTRY_SIZE === MSIX_ENTRY_VECTOR_CONTROL) this.afterWrite();
  }

  /** A read in the PBA, `offset` from its start. */
  pbaRead(offset: number, size: AccessSize): number {
    return readBytes(this.#pba, offset, size, this.pbaSize);
  }

  /** A write in the PBA: ignored (§6.8.2.10: the pending bits are read-only). */
  pbaWrite(_offset: number, _size: AccessSize, _value: number): void {}

  /**
   * Call after a write to Message Control or a Vector Control: every vector
   * that is pending and now deliverable is sent and its bit cleared
   * (§6.8.2.9, §6.8.2.10).
   */
  afterWrite(): void {
    if (!this.enabled || this.functionMasked) return;
    for (let w = 0; w < this.pbaSize / 4; w++) {
      if (this.#pba[w] === 0) continue;
      for (let b = 0; b < 32; b++) {
        const v = w * 32 + b;
        if (this.#pba[w] & (1 << b) && !this.vectorMasked(v)) {
          this.#pba[w] &= ~(1 << b);
          this.#deliver(v);
        }
      }
    }
  }

  #ctl(): number {
    return this.#cfg.get16(this.offset + MSIX_CONTROL);
  }

  #deliver(vector: number): void {
    const e = this.entry(vector);
    this.#sink?.send(e.address, e.data, vector);
  }
}

/** Little-endian bytes of a u32 array; bytes past `limit` read 0. */
function readBytes(words: Uint32Array, offset: number, size: number, limit: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) {
    const o = offset + i;
    const byte = o < limit ? (words[o >> 2] >>> (8 * (o & 3))) & 0xff : 0;
    v = v * 256 + byte;
  }
  return v;
}

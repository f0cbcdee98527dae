/**
 * The configuration space of one PCI function: the type-0 header, the BARs
 * and the capability list, over a shared byte array.
 *
 * A function's configuration is described once as plain data
 * ({@linkcode PciConfigSpec}) and compiled into a {@linkcode PciConfigTemplate}:
 * the power-on bytes, a write mask per byte (bits outside it are read-only
 * and keep their value) and a write-1-to-clear mask per byte. The template is
 * immutable and built the same way in every thread; the live bytes are 4096
 * bytes of shared state (the ECAM size, PCIe 3.0 §7.2.2) bound by
 * {@linkcode PciConfigSpace}. Offsets 0x100 and up read as 0: a 0 extended
 * capability header says there are none (PCIe 3.0 §7.9.1).
 *
 * Section numbers refer to the PCI Local Bus Specification, revision 3.0,
 * unless they name another document.
 *
 * @module
 */
import type { AccessSize } from "../device.ts";

// ---------------------------------------------------------------------------
// Sizes.

/** Bytes of configuration space per function reachable through ECAM (PCIe 3.0 §7.2.2). */
export const PCI_CONFIG_SPACE_SIZE = 4096;
/** Bytes of the conventional (PCI 3.0 §6.1) configuration space. */
export const PCI_CONFIG_SIZE = 256;
/** Bytes of the predefined type-0 header (§6.1); capabilities start at or above this. */
export const PCI_HEADER_SIZE = 0x40;

// ---------------------------------------------------------------------------
// Type-0 header register offsets (§6.1, figure 6-1).

/** Vendor ID (16 bits, RO). */
export const PCI_VENDOR_ID = 0x00;
/** Device ID (16 bits, RO). */
export const PCI_DEVICE_ID = 0x02;
/** Command register (16 bits, §6.2.2). */
export const PCI_COMMAND = 0x04;
/** Status register (16 bits, §6.2.3). */
export const PCI_STATUS = 0x06;
/** Revision ID (8 bits, RO). */
export const PCI_REVISION_ID = 0x08;
/** Class code: programming interface byte (RO). */
export const PCI_CLASS_PROG = 0x09;
/** Class code: sub-class byte (RO). */
export const PCI_CLASS_SUBCLASS = 0x0a;
/** Class code: base class byte (RO). */
export const PCI_CLASS_BASE = 0x0b;
/** Cache Line Size (8 bits, R/W, §6.2.4). */
export const PCI_CACHE_LINE_SIZE = 0x0c;
/** Latency Timer (8 bits, §6.2.4). */
export const PCI_LATENCY_TIMER = 0x0d;
/** Header Type (8 bits, RO, §6.2.1). */
export const PCI_HEADER_TYPE = 0x0e;
/** BIST (8 bits; 0 = not BIST capable, §6.2.4). */
export const PCI_BIST = 0x0f;
/** Base Address Register 0 (§6.2.5.1); BAR n is at PCI_BAR0 + 4 * n. */
export const PCI_BAR0 = 0x10;
/** Number of BAR slots in a type-0 header. */
export const PCI_BAR_COUNT = 6;
/** CardBus CIS pointer (RO 0: not a CardBus device). */
export const PCI_CARDBUS_CIS = 0x28;
/** Subsystem Vendor ID (16 bits, RO, §6.2.4). */
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
/** Subsystem ID (16 bits, RO, §6.2.4). */
export const PCI_SUBSYSTEM_ID = 0x2e;
/** Expansion ROM base address (§6.2.5.2); RO 0: no ROM. */
export const PCI_ROM_ADDRESS = 0x30;
/** Capabilities Pointer (8 bits, RO, §6.7). */
export const PCI_CAPABILITY_LIST = 0x34;
/** Interrupt Line (8 bits, R/W scratch for software, §6.2.4). */
export const PCI_INTERRUPT_LINE = 0x3c;
/** Interrupt Pin (8 bits, RO: 0 none, 1-4 INTA#-INTD#, §6.2.4). */
export const PCI_INTERRUPT_PIN = 0x3d;
/** Min_Gnt (RO 0). */
export const PCI_MIN_GNT = 0x3e;
/** Max_Lat (RO 0). */
export const PCI_MAX_LAT = 0x3f;

// Command register bits (§6.2.2).
/** Command: respond to I/O space accesses. */
export const PCI_COMMAND_IO = 0x0001;
/** Command: respond to memory space accesses. */
export const PCI_COMMAND_MEMORY = 0x0002;
/** Command: may act as a bus master (DMA, MSI writes). */
export const PCI_COMMAND_MASTER = 0x0004;
/** Command: special cycles (hardwired 0 here). */
export const PCI_COMMAND_SPECIAL = 0x0008;
/** Command: memory write and invalidate (hardwired 0 here). */
export const PCI_COMMAND_INVALIDATE = 0x0010;
/** Command: VGA palette snoop (hardwired 0 here). */
export const PCI_COMMAND_VGA_PALETTE = 0x0020;
/** Command: parity error response. */
export const PCI_COMMAND_PARITY = 0x0040;
/** Command: SERR# enable. */
export const PCI_COMMAND_SERR = 0x0100;
/** Command: fast back-to-back enable (hardwired 0 here). */
export const PCI_COMMAND_FAST_BACK = 0x0200;
/** Command: INTx emulation disable (§6.2.2 bit 10). */
export const PCI_COMMAND_INTX_DISABLE = 0x0400;
/** Command bits a function implements as R/W; the others are hardwired 0 (§6.2.2). */
export const PCI_COMMAND_WRITABLE = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
  PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE;

// Status register bits (§6.2.3).
/** Status: INTx pending in the function (RO), whatever the INTx disable bit. */
export const PCI_STATUS_INTERRUPT = 0x0008;
/** Status: the capabilities pointer at 0x34 is valid (RO). */
export const PCI_STATUS_CAP_LIST = 0x0010;
/** Status: 66 MHz capable (RO 0). */
export const PCI_STATUS_66MHZ = 0x0020;
/** Status: fast back-to-back capable (RO 0). */
export const PCI_STATUS_FAST_BACK = 0x0080;
/** Status: master data parity error (RW1C). */
export const PCI_STATUS_PARITY = 0x0100;
/** Status: DEVSEL timing field (RO 0 = fast). */
export const PCI_STATUS_DEVSEL_MASK = 0x0600;
/** Status: signaled target abort (RW1C). */
export const PCI_STATUS_SIG_TARGET_ABORT = 0x0800;
/** Status: received target abort (RW1C). */
export const PCI_STATUS_REC_TARGET_ABORT = 0x1000;
/** Status: received master abort (RW1C). */
export const PCI_STATUS_REC_MASTER_ABORT = 0x2000;
/** Status: signaled system error (RW1C). */
export const PCI_STATUS_SIG_SYSTEM_ERROR = 0x4000;
/** Status: detected parity error (RW1C). */
export const PCI_STATUS_DETECTED_PARITY = 0x8000;
/** Status bits that software clears by writing 1 (§6.2.3: "writes can only reset bits"). */
export const PCI_STATUS_RW1C = PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT |
  PCI_STATUS_REC_TARGET_ABORT | PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_SIG_SYSTEM_ERROR |
  PCI_STATUS_DETECTED_PARITY;

// Header type (§6.2.1).
/** Header type: type-0 (general device) layout. */
export const PCI_HEADER_TYPE_NORMAL = 0x00;
/** Header type bit 7: the device has several functions. */
export const PCI_HEADER_TYPE_MULTIFUNCTION = 0x80;

// Base Address Register bits (§6.2.5.1).
/** BAR bit 0: 1 = I/O space, 0 = memory space. */
export const PCI_BAR_SPACE_IO = 0x1;
/** Memory BAR bits 2:1: the type field. */
export const PCI_BAR_MEM_TYPE_MASK = 0x6;
/** Memory BAR type 00: anywhere in 32-bit space. */
export const PCI_BAR_MEM_TYPE_32 = 0x0;
/** Memory BAR type 10: anywhere in 64-bit space (uses the next BAR too). */
export const PCI_BAR_MEM_TYPE_64 = 0x4;
/** Memory BAR bit 3: prefetchable. */
export const PCI_BAR_MEM_PREFETCH = 0x8;
/** Memory BAR: the address bits of the low dword. */
export const PCI_BAR_MEM_ADDRESS_MASK = 0xfffffff0;
/** I/O BAR: the address bits (bit 1 is reserved). */
export const PCI_BAR_IO_ADDRESS_MASK = 0xfffffffc;
/** Smallest memory BAR (§6.2.5.1: 16 bytes). */
export const PCI_BAR_MEM_MIN_SIZE = 16;
/** Smallest I/O BAR (§6.2.5.1: 4 bytes). */
export const PCI_BAR_IO_MIN_SIZE = 4;
/** Largest I/O BAR accepted: the whole x86 port space. */
export const PCI_BAR_IO_MAX_SIZE = 0x10000;
/** Largest 32-bit memory BAR: bit 31 must stay writable (§6.2.5.1). */
export const PCI_BAR_MEM32_MAX_SIZE = 2 ** 31;
/** Largest 64-bit memory BAR accepted (the MMIO bus ends at 2^52). */
export const PCI_BAR_MEM64_MAX_SIZE = 2 ** 48;

// Capability list (§6.7).
/** Offset of the capability ID within a capability. */
export const PCI_CAP_ID = 0;
/** Offset of the next pointer within a capability. */
export const PCI_CAP_NEXT = 1;
/** Capabilities pointer bits 1:0 are reserved (§6.7: the pointer is dword aligned). */
export const PCI_CAP_POINTER_MASK = 0xfc;
/** Capability ID: Message Signaled Interrupts (§6.8.1). */
export const PCI_CAP_ID_MSI = 0x05;
/** Capability ID: MSI-X (§6.8.2). */
export const PCI_CAP_ID_MSIX = 0x11;

/** The interrupt line value meaning "unknown / not connected" on x86 (§6.2.4 footnote). */
export const PCI_INTERRUPT_LINE_NONE = 0xff;

// ---------------------------------------------------------------------------
// Describing a function.

/** What a BAR maps. */
export type PciBarKind = "mem32" | "mem64" | "io";

/** A BAR a function declares. */
export interface PciBarSpec {
  /** BAR slot 0-5; a "mem64" BAR also occupies the next slot. */
  readonly index: number;
  readonly kind: PciBarKind;
  /** Bytes decoded: a power of two, >= 16 for memory and >= 4 for I/O (§6.2.5.1). */
  readonly size: number;
  /** Prefetchable memory (bit 3); not allowed on I/O BARs. */
  readonly prefetchable?: boolean;
}

/** Sets initial values and masks of a capability, at offsets relative to its start. */
export interface PciCapabilityInit {
  /** Sets the power-on value of `size` bytes at `rel`. */
  value(rel: number, size: 1 | 2 | 4, value: number): void;
  /** Makes the bits of `mask` in `size` bytes at `rel` writable by software. */
  writable(rel: number, size: 1 | 2 | 4, mask: number): void;
  /** Makes the bits of `mask` write-1-to-clear. */
  clearable(rel: number, size: 1 | 2 | 4, mask: number): void;
}

/** A capability to put in the list. */
export interface PciCapabilitySpec {
  /** The capability ID (byte 0). */
  readonly id: number;
  /** Bytes it occupies, the 2-byte header included. */
  readonly length: number;
  /** A fixed offset (dword aligned, >= 0x40); else it follows the previous one. */
  readonly offset?: number;
  /** Fills in the body (bytes 2 and up); the ID and next pointer are set by the list. */
  init(cap: PciCapabilityInit): void;
}

/** A function's configuration, as plain data. */
export interface PciConfigSpec {
  readonly vendorId: number;
  readonly deviceId: number;
  readonly revisionId?: number;
  /** Base class << 16 | sub-class << 8 | programming interface. */
  readonly classCode: number;
  readonly subsystemVendorId?: number;
  readonly subsystemId?: number;
  /** Sets header type bit 7. */
  readonly multiFunction?: boolean;
  /** Interrupt pin register: 0 none, 1-4 INTA#-INTD#. */
  readonly interruptPin?: number;
  /** Power-on interrupt line register; 0xFF (none) by default. */
  readonly interruptLine?: number;
  readonly bars?: readonly PciBarSpec[];
  /** Capabilities, linked in this order. */
  readonly capabilities?: readonly PciCapabilitySpec[];
  /**
   * Extra writable bits of the device-specific region (0x40-0xFF) outside
   * any capability: [offset, size, mask] triples.
   */
  readonly writable?: readonly (readonly [number, 1 | 2 | 4, number])[];
  /** Power-on values of device-specific registers: [offset, size, value] triples. */
  readonly values?: readonly (readonly [number, 1 | 2 | 4, number])[];
}

/** A capability as placed in a template. */
export interface PlacedCapability {
  readonly id: number;
  readonly offset: number;
  readonly length: number;
}

/** The compiled, immutable description of a function's configuration space. */
export interface PciConfigTemplate {
  /** Power-on bytes of offsets 0x00-0xFF. */
  readonly initial: Uint8Array;
  /** Per byte: the bits software may write. */
  readonly writeMask: Uint8Array;
  /** Per byte: the bits a written 1 clears. */
  readonly clearMask: Uint8Array;
  /** The BARs, by slot order. */
  readonly bars: readonly PciBarSpec[];
  /** The capabilities, in list order. */
  readonly capabilities: readonly PlacedCapability[];
}

const isPowerOfTwo = (n: number) =>
  Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function putLe(bytes: Uint8Array, offset: number, size: number, value: number): void {
  for (let i = 0; i < size; i++) bytes[offset + i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
}

function checkBar(bar: PciBarSpec, used: boolean[]): void {
  const what = `BAR${bar.index}`;
  if (!Number.isInteger(bar.index) || bar.index < 0 || bar.index >= PCI_BAR_COUNT) {
    throw new Error(`${what}: index must be 0-${PCI_BAR_COUNT - 1}`);
  }
  if (bar.kind === "mem64" && bar.index === PCI_BAR_COUNT - 1) {
    throw new Error(`${what}: a 64-bit BAR needs the next slot too`);
  }
  const slots = bar.kind === "mem64" ? [bar.index, bar.index + 1] : [bar.index];
  for (const s of slots) {
    if (used[s]) throw new Error(`${what}: slot ${s} is already used`);
    used[s] = true;
  }
  if (!isPowerOfTwo(bar.size)) throw new Error(`${what}: size ${bar.size} is not a power of two`);
  if (bar.kind === "io") {
    if (bar.prefetchable) throw new Error(`${what}: an I/O BAR cannot be prefetchable`);
    if (bar.size < PCI_BAR_IO_MIN_SIZE || bar.size > PCI_BAR_IO_MAX_SIZE) {
      throw new Error(`${what}: I/O size must be ${PCI_BAR_IO_MIN_SIZE}-${PCI_BAR_IO_MAX_SIZE}`);
    }
  } else {
    const max = bar.kind === "mem32" ? PCI_BAR_MEM32_MAX_SIZE : PCI_BAR_MEM64_MAX_SIZE;
    if (bar.size < PCI_BAR_MEM_MIN_SIZE || bar.size > max) {
      throw new Error(`${what}: memory size must be ${PCI_BAR_MEM_MIN_SIZE}-${hex(max)}`);
    }
  }
}

/** The read-only low bits of a BAR (its type), §6.2.5.1. */
export function barTypeBits(bar: PciBarSpec): number {
  if (bar.kind === "io") return PCI_BAR_SPACE_IO;
  return (bar.kind === "mem64" ? PCI_BAR_MEM_TYPE_64 : PCI_BAR_MEM_TYPE_32) |
    (bar.prefetchable ? PCI_BAR_MEM_PREFETCH : 0);
}

/**
 * Compiles a function's description into its template. Throws on a bad
 * BAR or an overlapping capability, naming it.
 */
export function buildConfigTemplate(spec: PciConfigSpec): PciConfigTemplate {
  const initial = new Uint8Array(PCI_CONFIG_SIZE);
  const writeMask = new Uint8Array(PCI_CONFIG_SIZE);
  const clearMask = new Uint8Array(PCI_CONFIG_SIZE);
  const set = (o: number, size: number, v: number) => putLe(initial, o, size, v);
  const orMask = (m: Uint8Array, o: number, size: number, v: number) => {
    for (let i = 0; i < size; i++) m[o + i] |= Math.floor(v / 2 ** (8 * i)) & 0xff;
  };

  set(PCI_VENDOR_ID, 2, spec.vendorId);
  set(PCI_DEVICE_ID, 2, spec.deviceId);
  set(PCI_REVISION_ID, 1, spec.revisionId ?? 0);
  set(PCI_CLASS_PROG, 3, spec.classCode);
  set(
    PCI_HEADER_TYPE,
    1,
    PCI_HEADER_TYPE_NORMAL | (spec.multiFunction ? PCI_HEADER_TYPE_MULTIFUNCTION : 0),
  );
  set(PCI_SUBSYSTEM_VENDOR_ID, 2, spec.subsystemVendorId ?? 0);
  set(PCI_SUBSYSTEM_ID, 2, spec.subsystemId ?? 0);
  const pin = spec.interruptPin ?? 0;
  if (!Number.isInteger(pin) || pin < 0 || pin > 4) throw new Error(`interrupt pin ${pin}: 0-4`);
  set(PCI_INTERRUPT_PIN, 1, pin);
  set(PCI_INTERRUPT_LINE, 1, spec.interruptLine ?? PCI_INTERRUPT_LINE_NONE);

  // §6.2.2: only the implemented command bits are R/W; the rest read 0.
  orMask(writeMask, PCI_COMMAND, 2, PCI_COMMAND_WRITABLE);
  // §6.2.3: error bits are "set by the device, reset by writing 1".
  orMask(clearMask, PCI_STATUS, 2, PCI_STATUS_RW1C);
  // §6.2.4: Cache Line Size is R/W; Latency Timer is R/W for bus masters.
  orMask(writeMask, PCI_CACHE_LINE_SIZE, 1, 0xff);
  orMask(writeMask, PCI_LATENCY_TIMER, 1, 0xff);
  // §6.2.4: Interrupt Line is a R/W scratch register for the OS.
  orMask(writeMask, PCI_INTERRUPT_LINE, 1, 0xff);

  // BARs (§6.2.5.1): the address bits at or above the size are writable,
  // the type bits read-only, so writing all ones reads back the size mask.
  const used: boolean[] = [];
  const bars = [...(spec.bars ?? [])].sort((a, b) => a.index - b.index);
  for (const bar of bars) {
    checkBar(bar, used);
    const at = barOffset(bar.index);
    set(at, 4, barTypeBits(bar));
    if (bar.kind === "io") {
      orMask(writeMask, at, 4, (PCI_BAR_IO_ADDRESS_MASK & ~(bar.size - 1)) >>> 0);
    } else if (bar.size < 2 ** 32) {
      orMask(writeMask, at, 4, (PCI_BAR_MEM_ADDRESS_MASK & ~(bar.size - 1)) >>> 0);
      if (bar.kind === "mem64") orMask(writeMask, at + 4, 4, 0xffffffff);
    } else {
      // A 64-bit BAR of 4 GiB or more: the whole low dword's address bits
      // are below the size, so only the high dword is (partly) writable.
      orMask(writeMask, at + 4, 4, (0xffffffff & ~(bar.size / 2 ** 32 - 1)) >>> 0);
    }
  }

  // Capability list (§6.7): each capability is dword aligned at 0x40 or
  // above; the pointer at 0x34 names the first, each byte 1 the next, the
  // last one's is 0.
  const caps: PlacedCapability[] = [];
  let next = PCI_HEADER_SIZE;
  let prevNext = PCI_CAPABILITY_LIST;
  const taken = new Uint8Array(PCI_CONFIG_SIZE);
  for (const cap of spec.capabilities ?? []) {
    const offset = cap.offset ?? next;
    const name = `capability ${hex(cap.id)}`;
    if (offset % 4 !== 0 || offset < PCI_HEADER_SIZE) {
      throw new Error(`${name}: offset ${hex(offset)} must be dword aligned and >= 0x40`);
    }
    if (cap.length < 2 || offset + cap.length > PCI_CONFIG_SIZE) {
      throw new Error(`${name} at ${hex(offset)}: does not fit below 0x100`);
    }
    for (let i = offset; i < offset + cap.length; i++) {
      if (taken[i]) throw new Error(`${name} at ${hex(offset)} overlaps another capability`);
      taken[i] = 1;
    }
    initial[prevNext] = offset;
    initial[offset + PCI_CAP_ID] = cap.id;
    initial[offset + PCI_CAP_NEXT] = 0;
    prevNext = offset + PCI_CAP_NEXT;
    const inside = (rel: number, size: number) => {
      if (rel < 2 || rel + size > cap.length) {
        throw new Error(`${name}: field at +${rel} is outside its body`);
      }
      return offset + rel;
    };
    cap.init({
      value: (rel, size, v) => set(inside(rel, size), size, v),
      writable: (rel, size, m) => orMask(writeMask, inside(rel, size), size, m),
      clearable: (rel, size, m) => orMask(clearMask, inside(rel, size), size, m),
    });
    caps.push({ id: cap.id, offset, length: cap.length });
    next = Math.ceil((offset + cap.length) / 4) * 4;
  }
  // §6.2.3: the capabilities list bit says the pointer at 0x34 is valid.
  if (caps.length > 0) initial[PCI_STATUS] |= PCI_STATUS_CAP_LIST;

  // Device-specific registers live in 0x40-0xFF outside every capability
  // (§6.7): no byte of one may be a capability's.
  const checkFree = (o: number, size: number) => {
    if (
      o < PCI_HEADER_SIZE || o + size > PCI_CONFIG_SIZE ||
      taken.subarray(o, o + size).some((b) => b !== 0)
    ) {
      throw new Error(`device register at ${hex(o)}: not in the free device-specific region`);
    }
  };
  for (const [o, size, m] of spec.writable ?? []) {
    checkFree(o, size);
    orMask(writeMask, o, size, m);
  }
  for (const [o, size, v] of spec.values ?? []) {
    checkFree(o, size);
    set(o, size, v);
  }
  return Object.freeze({ initial, writeMask, clearMask, bars, capabilities: caps });
}

/** The configuration offset of BAR slot `index`. */
export function barOffset(index: number): number {
  return PCI_BAR0 + 4 * index;
}

// ---------------------------------------------------------------------------
// The live configuration space.

/**
 * A function's configuration space over its shared bytes. Guest writes go
 * through {@linkcode PciConfigSpace.write} (masks, RW1C); the device model
 * changes read-only bits with the `set*` methods. Reads have no side
 * effects. Offsets from 0x100 up read 0 and ignore writes.
 */
export class PciConfigSpace {
  readonly #bytes: Uint8Array;
  readonly #t: PciConfigTemplate;

  /** Binds `bytes` (at least 4096 bytes of shared state) to `template`. */
  constructor(template: PciConfigTemplate, bytes: Uint8Array) {
    if (bytes.length < PCI_CONFIG_SPACE_SIZE) {
      throw new Error(`PCI config space needs ${PCI_CONFIG_SPACE_SIZE} bytes of state`);
    }
    this.#t = template;
    this.#bytes = bytes;
  }

  /** The template. */
  get template(): PciConfigTemplate {
    return this.#t;
  }

  /** Power-on contents. */
  reset(): void {
    this.#bytes.fill(0, 0, PCI_CONFIG_SPACE_SIZE);
    this.#bytes.set(this.#t.initial);
  }

  /** Reads `size` bytes at `offset` (little endian); no side effects. */
  read(offset: number, size: AccessSize): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.#byte(offset + i);
    return v;
  }

  /** A software write: only writable bits change; RW1C bits clear where a 1 is written. */
  write(offset: number, size: AccessSize, value: number): void {
    const b = this.#bytes, wm = this.#t.writeMask, cm = this.#t.clearMask;
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      if (o < 0 || o >= PCI_CONFIG_SIZE) continue;
      const v = Math.floor(value / 2 ** (8 * i)) & 0xff;
      b[o] = ((b[o] & ~wm[o]) | (v & wm[o])) & ~(v & cm[o]);
    }
  }

  /** A byte, for the device model. */
  get8(offset: number): number {
    return this.read(offset, 1);
  }
  /** A 16-bit register, for the device model. */
  get16(offset: number): number {
    return this.read(offset, 2);
  }
  /** A 32-bit register, for the device model. */
  get32(offset: number): number {
    return this.read(offset, 4);
  }
  /** Sets a byte regardless of masks (device side). */
  set8(offset: number, value: number): void {
    this.#set(offset, 1, value);
  }
  /** Sets a 16-bit register regardless of masks (device side). */
  set16(offset: number, value: number): void {
    this.#set(offset, 2, value);
  }
  /** Sets a 32-bit register regardless of masks (device side). */
  set32(offset: number, value: number): void {
    this.#set(offset, 4, value);
  }

  /** The command register. */
  get command(): number {
    return this.get16(PCI_COMMAND);
  }

  /** The address BAR `index` decodes now (from its register; 64-bit BARs use both dwords). */
  barAddress(bar: PciBarSpec): number {
    const at = barOffset(bar.index);
    if (bar.kind === "io") return (this.get32(at) & PCI_BAR_IO_ADDRESS_MASK) >>> 0;
    const lo = (this.get32(at) & PCI_BAR_MEM_ADDRESS_MASK) >>> 0;
    return bar.kind === "mem64" ? this.get32(at + 4) * 2 ** 32 + lo : lo;
  }

  /** Programs BAR `bar` with `address` (device/firmware side; keeps the type bits). */
  setBarAddress(bar: PciBarSpec, address: number): void {
    if (address % bar.size !== 0) {
      throw new Error(`BAR${bar.index}: ${hex(address)} is not aligned to its size`);
    }
    const at = barOffset(bar.index);
    const lo = address % 2 ** 32;
    this.set32(at, (lo | barTypeBits(bar)) >>> 0);
    if (bar.kind === "mem64") this.set32(at + 4, Math.floor(address / 2 ** 32));
  }

  #byte(o: number): number {
    return o >= 0 && o < PCI_CONFIG_SIZE ? this.#bytes[o] : 0;
  }

  #set(offset: number, size: number, value: number): void {
    if (offset < 0 || offset + size > PCI_CONFIG_SIZE) {
      throw new Error(`config offset ${hex(offset)} is outside the 256-byte space`);
    }
    putLe(this.#bytes, offset, size, value);
  }
}

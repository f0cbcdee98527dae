/**
 * dhyve's PCI test device: a function whose interrupts the guest can
 * trigger by hand, to test INTx, MSI and MSI-X end to end (the probe guest,
 * tests/guests/probe/pci.c, codes this layout; keep them in step).
 *
 * - IDs 6468:0001 revision 1, class FF/00/00, subsystem 6468:0001.
 * - BAR0: 4 KiB of 32-bit, non-prefetchable memory with the registers below.
 * - BAR1: 4 KiB of 32-bit memory holding the MSI-X table (4 vectors) at
 *   0x000 and the PBA at 0x800.
 * - Capabilities: MSI at 0x40 (64-bit, 1 message, no per-vector masking),
 *   MSI-X at 0x50 (4 vectors, table BIR 1 offset 0, PBA BIR 1 offset 0x800).
 *
 * BAR0 registers are 32 bits wide. Reads of 1 or 2 bytes return those bytes
 * of the register (no side effects on reads); writes narrower than 4 bytes
 * are ignored, so a partial write never triggers an action.
 *
 * @module
 */
import type { AccessSize, MsiSink } from "../device.ts";
import { defineState } from "../state.ts";
import { buildConfigTemplate } from "./config.ts";
import { intxHeader, PCI_FUNCTION_FIELDS, PciFunction, type PciFunctionDeps } from "./function.ts";
import { msiCapability, msixCapability, msixFields } from "./msi.ts";

/** Vendor ID ("dh"). */
export const TESTDEV_VENDOR_ID = 0x6468;
/** Device ID. */
export const TESTDEV_DEVICE_ID = 0x0001;
/** Revision ID. */
export const TESTDEV_REVISION = 1;
/** Class FF/00/00: device does not fit any defined class. */
export const TESTDEV_CLASS = 0xff0000;
/** Bytes of BAR0 and BAR1. */
export const TESTDEV_BAR_SIZE = 0x1000;
/** MSI capability offset. */
export const TESTDEV_MSI_CAP = 0x40;
/** MSI-X capability offset. */
export const TESTDEV_MSIX_CAP = 0x50;
/** MSI-X vectors. */
export const TESTDEV_MSIX_VECTORS = 4;
/** BAR holding the MSI-X table and PBA. */
export const TESTDEV_MSIX_BAR = 1;
/** MSI-X table offset in BAR1. */
export const TESTDEV_MSIX_TABLE = 0x000;
/** MSI-X PBA offset in BAR1. */
export const TESTDEV_MSIX_PBA = 0x800;

// BAR0 registers.
/** RO: the magic value {@linkcode TESTDEV_MAGIC_VALUE}. */
export const TESTDEV_MAGIC = 0x00;
/** RW: scratch. */
export const TESTDEV_SCRATCH = 0x04;
/** INTx control. W: bit 0 = requested level. R: bit 0 requested, bit 1 effective line. */
export const TESTDEV_INTX = 0x08;
/** W: send message number <value>. R: messages sent so far. */
export const TESTDEV_SEND = 0x0c;
/** R: what became of the last TESTDEV_SEND write (TESTDEV_DELIVERY_*). */
export const TESTDEV_DELIVERY = 0x10;

/** "dhvt" in little-endian ASCII. */
export const TESTDEV_MAGIC_VALUE = 0x74766864;
/** INTx register: the requested level. */
export const TESTDEV_INTX_LEVEL = 0x1;
/** INTx register: the effective line level (after INTx disable and MSI masking). */
export const TESTDEV_INTX_LINE = 0x2;
/** Delivery: nothing sent yet. */
export const TESTDEV_DELIVERY_NONE = 0;
/** Delivery: an MSI message was sent. */
export const TESTDEV_DELIVERY_MSI = 1;
/** Delivery: an MSI-X message was sent. */
export const TESTDEV_DELIVERY_MSIX = 2;
/** Delivery: the MSI-X vector is masked; its pending bit is set. */
export const TESTDEV_DELIVERY_MSIX_PENDING = 3;
/** Delivery: not delivered (MSI/MSI-X disabled or no such vector). */
export const TESTDEV_DELIVERY_DROPPED = 0xffffffff;

/** State of the test device. */
export const PciTestDeviceState = defineState("pci-testdev", 1, {
  ...PCI_FUNCTION_FIELDS,
  ...msixFields(TESTDEV_MSIX_VECTORS),
  scratch: "u32",
  /** Messages sent (MSI and MSI-X, pending ones when they go out). */
  sent: "u32",
  /** TESTDEV_DELIVERY_* of the last send request. */
  delivery: "u32",
});

/** A bound {@linkcode PciTestDeviceState}. */
export type PciTestDeviceRegisters = ReturnType<typeof PciTestDeviceState.create>;

/** The test device's configuration, given its INTx wiring. */
function template(deps: PciFunctionDeps) {
  return buildConfigTemplate({
    vendorId: TESTDEV_VENDOR_ID,
    deviceId: TESTDEV_DEVICE_ID,
    revisionId: TESTDEV_REVISION,
    classCode: TESTDEV_CLASS,
    subsystemVendorId: TESTDEV_VENDOR_ID,
    subsystemId: TESTDEV_DEVICE_ID,
    ...intxHeader(deps.intx),
    bars: [
      { index: 0, kind: "mem32", size: TESTDEV_BAR_SIZE },
      { index: TESTDEV_MSIX_BAR, kind: "mem32", size: TESTDEV_BAR_SIZE },
    ],
    capabilities: [
      msiCapability({ vectors: 1, addr64: true, perVectorMask: false, offset: TESTDEV_MSI_CAP }),
      msixCapability({
        vectors: TESTDEV_MSIX_VECTORS,
        tableBar: TESTDEV_MSIX_BAR,
        tableOffset: TESTDEV_MSIX_TABLE,
        pbaBar: TESTDEV_MSIX_BAR,
        pbaOffset: TESTDEV_MSIX_PBA,
        offset: TESTDEV_MSIX_CAP,
      }),
    ],
  });
}

/** An MsiSink that counts what goes out in `s.sent`. */
function countingSink(s: PciTestDeviceRegisters, sink: MsiSink | undefined): MsiSink {
  return {
    send(address, data) {
      s.sent = (s.sent + 1) >>> 0;
      sink?.send(address, data);
    },
  };
}

/** dhyve's PCI test device. */
export class PciTestDevice extends PciFunction {
  readonly #s: PciTestDeviceRegisters;

  /**
   * Builds the device over `state` (used as it is; without one, a fresh
   * state is created and reset). `deps.intx` supplies the interrupt pin and
   * line registers (from the routing) and the INTx sink.
   */
  constructor(deps: PciFunctionDeps, state?: PciTestDeviceRegisters, name = "testdev") {
    const s = state ?? PciTestDeviceState.create();
    super(name, template(deps), { ...deps, msi: countingSink(s, deps.msi) }, s);
    this.#s = s;
    if (!state) this.reset();
  }

  /** The bound register state. */
  get state(): PciTestDeviceRegisters {
    return this.#s;
  }

  /** Power-on state. */
  override reset(): void {
    super.reset();
    const s = this.#s;
    s.scratch = 0;
    s.sent = 0;
    s.delivery = TESTDEV_DELIVERY_NONE;
  }

  protected override handleBarRead(bar: number, offset: number, size: AccessSize): number {
    if (bar !== 0) return 0;
    const reg = this.#reg(offset & ~3);
    const shift = (offset & 3) * 8;
    if (size >= 4) return reg;
    return Math.floor(reg / 2 ** shift) % 2 ** (8 * size);
  }

  protected override handleBarWrite(
    bar: number,
    offset: number,
    size: AccessSize,
    value: number,
  ): void {
    if (bar !== 0 || size !== 4 || offset % 4 !== 0) return;
    const s = this.#s;
    switch (offset) {
      case TESTDEV_SCRATCH:
        s.scratch = value >>> 0;
        return;
      case TESTDEV_INTX:
        this.setIntx((value & TESTDEV_INTX_LEVEL) !== 0);
        return;
      case TESTDEV_SEND:
        s.delivery = this.#send(value >>> 0);
        return;
    }
  }

  #reg(offset: number): number {
    const s = this.#s;
    switch (offset) {
      case TESTDEV_MAGIC:
        return TESTDEV_MAGIC_VALUE;
      case TESTDEV_SCRATCH:
        return s.scratch;
      case TESTDEV_INTX:
        return (this.intxLevel ? TESTDEV_INTX_LEVEL : 0) | (this.intxLine ? TESTDEV_INTX_LINE : 0);
      case TESTDEV_SEND:
        return s.sent;
      case TESTDEV_DELIVERY:
        return s.delivery;
      default:
        return 0;
    }
  }

  #send(vector: number): number {
    const x = this.msix, m = this.msi;
    if (x?.enabled) {
      const r = x.send(vector);
      return r === "sent"
        ? TESTDEV_DELIVERY_MSIX
        : r === "pending"
        ? TESTDEV_DELIVERY_MSIX_PENDING
        : TESTDEV_DELIVERY_DROPPED;
    }
    if (m?.enabled) {
      // The MSI capability has no per-vector masking: a message is either
      // sent or, for a vector beyond the enabled count, dropped.
      return m.send(vector) === "sent" ? TESTDEV_DELIVERY_MSI : TESTDEV_DELIVERY_DROPPED;
    }
    return TESTDEV_DELIVERY_DROPPED;
  }
}

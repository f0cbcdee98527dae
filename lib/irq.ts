/**
 * Interrupt wiring between dhyve's device models and KVM's in-kernel
 * interrupt controllers.
 *
 * KVM keeps one level per controller pin for each interrupt source, and all
 * of user space is a single source. So dhyve does the wired-OR itself, per
 * controller pin: every source has a bit in a shared mask for each pin it
 * drives, and the pin is high while any bit is set. dhyve drives each pin
 * through a GSI that reaches that pin alone (KVM_SET_GSI_ROUTING):
 *
 * | GSI      | reaches              | driven by                                     |
 * | -------- | -------------------- | --------------------------------------------- |
 * | 0, 1, 3-15 | 8259 IRQ n and IOAPIC pin n (pin 2 for GSI 0) | KVM's in-kernel PIT only (GSI 0) |
 * | 16-23    | IOAPIC pin n         | dhyve: PCI INTx (16-19), HPET (20-23)         |
 * | 24+n     | 8259 IRQ n only      | dhyve: ISA IRQ n, and PCI INTx through a PIRQ link (PIC mode) |
 * | 40+p     | IOAPIC pin p only (p < 16) | dhyve: ISA IRQ n at IOAPIC pin p (IRQ 0 -> pin 2, as the MADT says) |
 *
 * A device's "GSI n" line (the ACPI/MADT numbering it is documented by) is
 * the set of pins that GSI means on a PC: for n < 16 the 8259's IRQ n and
 * IOAPIC pin n (pin 2 for n = 0); for n >= 16 IOAPIC pin n. A PIRQ drives
 * only the 8259 pin. Because the two 8259 drivers of IRQ n (an ISA device
 * and a PIRQ) share one mask, the pin never glitches when one of them lets
 * go while the other still holds it.
 *
 * @module
 */
import type { IrqLine } from "../devices/device.ts";
import {
  KVM_IRQCHIP_IOAPIC,
  KVM_IRQCHIP_PIC_MASTER,
  KVM_IRQCHIP_PIC_SLAVE,
} from "../cpu/kvm_abi.ts";
import type { GsiRoute } from "../cpu/kvm.ts";

/** Number of IOAPIC pins in KVM's in-kernel IOAPIC. */
export const IOAPIC_PINS = 24;
/** First of the GSIs that reach only the 8259 pair (IRQ n = GSI PIC_ONLY_GSI_BASE + n). */
export const PIC_ONLY_GSI_BASE = 24;
/** First of the GSIs that reach only IOAPIC pins 0-15 (pin p = GSI IOAPIC_ONLY_GSI_BASE + p). */
export const IOAPIC_ONLY_GSI_BASE = 40;
/** Device-facing GSIs: 0-23 (PC numbering) and the PIC-only ones. */
export const GSI_COUNT = PIC_ONLY_GSI_BASE + 16;

/**
 * The most interrupt sources that may drive one controller pin: each source
 * takes one bit of the pin's Int32 mask, from bit 0 to bit 30.
 */
export const MAX_PIN_SOURCES = 31;

/** Controller pins dhyve drives: 8259 IRQs 0-15, then IOAPIC pins 0-23. */
const PIN_COUNT = 16 + IOAPIC_PINS;
const picPin = (irq: number) => irq;
const ioapicPin = (pin: number) => 16 + pin;

/** The GSI that reaches only the 8259's IRQ `irq`. */
export function picOnlyGsi(irq: number): number {
  if (!(irq >= 0 && irq < 16)) throw new Error(`ISA IRQ ${irq} out of range`);
  return PIC_ONLY_GSI_BASE + irq;
}

/** The KVM GSI that drives one controller pin alone. */
function driverGsi(pin: number): number {
  if (pin < 16) return PIC_ONLY_GSI_BASE + pin;
  const p = pin - 16;
  return p < 16 ? IOAPIC_ONLY_GSI_BASE + p : p;
}

/** The controller pins a device-facing GSI stands for. */
export function pinsOf(gsi: number): number[] {
  if (!(Number.isInteger(gsi) && gsi >= 0 && gsi < GSI_COUNT)) {
    throw new Error(`GSI ${gsi} out of range`);
  }
  if (gsi >= PIC_ONLY_GSI_BASE) return [picPin(gsi - PIC_ONLY_GSI_BASE)];
  if (gsi >= 16) return [ioapicPin(gsi)];
  // ISA IRQ 0 is IOAPIC pin 2 (MADT interrupt source override); IRQ 2 is the cascade.
  return [picPin(gsi), ioapicPin(gsi === 0 ? 2 : gsi)];
}

function picRoute(gsi: number, irq: number): GsiRoute {
  return irq < 8
    ? { gsi, kind: "irqchip", irqchip: KVM_IRQCHIP_PIC_MASTER, pin: irq }
    : { gsi, kind: "irqchip", irqchip: KVM_IRQCHIP_PIC_SLAVE, pin: irq - 8 };
}

/** dhyve's GSI routing table (see the module documentation). */
export function gsiRoutes(): GsiRoute[] {
  const routes: GsiRoute[] = [];
  // The PC numbering, for KVM's in-kernel PIT (it raises GSI 0).
  for (let gsi = 0; gsi < 16; gsi++) {
    if (gsi === 2) continue;
    routes.push(picRoute(gsi, gsi));
    routes.push({ gsi, kind: "irqchip", irqchip: KVM_IRQCHIP_IOAPIC, pin: gsi === 0 ? 2 : gsi });
  }
  for (let gsi = 16; gsi < IOAPIC_PINS; gsi++) {
    routes.push({ gsi, kind: "irqchip", irqchip: KVM_IRQCHIP_IOAPIC, pin: gsi });
  }
  for (let irq = 0; irq < 16; irq++) {
    if (irq !== 2) routes.push(picRoute(PIC_ONLY_GSI_BASE + irq, irq));
  }
  for (let pin = 0; pin < 16; pin++) {
    routes.push({
      gsi: IOAPIC_ONLY_GSI_BASE + pin,
      kind: "irqchip",
      irqchip: KVM_IRQCHIP_IOAPIC,
      pin,
    });
  }
  return routes;
}

/** Shared state of every controller pin: which sources drive it. */
export class IrqLineTable {
  /** The shared buffer; send it to every thread. */
  readonly buffer: SharedArrayBuffer;
  readonly #masks: Int32Array;

  /** Creates the table, or binds a received buffer. */
  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(PIN_COUNT * 4);
    this.#masks = new Int32Array(this.buffer);
  }

  /** Forgets every source's level (a new KVM VM starts with all lines low). */
  clearAll(): void {
    for (let i = 0; i < this.#masks.length; i++) Atomics.store(this.#masks, i, 0);
  }

  /** The sources currently driving the pins of device-facing `gsi` (OR of their masks). */
  sources(gsi: number): number {
    return pinsOf(gsi).reduce((m, pin) => m | Atomics.load(this.#masks, pin), 0);
  }

  /**
   * A factory of lines for the calling thread. Each call is a new source:
   * it gets the next free bit of every pin its GSI stands for. Bits are
   * handed out in call order, so every thread that attaches the same devices
   * in the same order (they all do) gets the same bits. Lines must be used
   * under the VM's device lock, as device code always is: assert/deassert of
   * one pin by two threads at once could otherwise drive it out of order.
   * `drive(gsi, level)` sets a KVM GSI (KVM_IRQ_LINE).
   */
  lines(drive: (gsi: number, level: 0 | 1) => void): (gsi: number) => IrqLine {
    const next = new Map<number, number>();
    const masks = this.#masks;
    return (gsi: number): IrqLine => {
      const pins = pinsOf(gsi).map((pin) => {
        const k = next.get(pin) ?? 0;
        if (k >= MAX_PIN_SOURCES) {
          throw new Error(`GSI ${gsi}: too many interrupt sources on one pin`);
        }
        next.set(pin, k + 1);
        return { pin, bit: 1 << k, gsi: driverGsi(pin) };
      });
      return {
        assert() {
          for (const p of pins) if (Atomics.or(masks, p.pin, p.bit) === 0) drive(p.gsi, 1);
        },
        deassert() {
          for (const p of pins) if (Atomics.and(masks, p.pin, ~p.bit) === p.bit) drive(p.gsi, 0);
        },
        pulse() {
          // An edge is only seen on a pin no other source holds high.
          for (const p of pins) {
            if (Atomics.load(masks, p.pin) === 0) {
              drive(p.gsi, 1);
              drive(p.gsi, 0);
            }
          }
        },
      };
    };
  }
}

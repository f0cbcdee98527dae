/**
 * Interrupt wiring between dhyve's device models and KVM's in-kernel
 * interrupt controllers.
 *
 * GSIs (what KVM_IRQ_LINE drives) map to controller pins through the
 * routing table dhyve installs with KVM_SET_GSI_ROUTING:
 *
 * | GSI      | 8259 pin           | IOAPIC pin | used by                                 |
 * | -------- | ------------------ | ---------- | --------------------------------------- |
 * | 0        | master 0           | 2          | PIT, HPET timer 0 in legacy mode        |
 * | 1, 3-7   | master n           | n          | ISA devices (COM ports, ...)            |
 * | 8-15     | slave n-8          | n          | ISA devices (RTC, SCI, ...)             |
 * | 16-23    | -                  | n          | PCI INTx (16-19), HPET (20-23)          |
 * | 24+n     | IRQ n only         | -          | PCI INTx through a PIRQ link, PIC mode  |
 *
 * GSI 0 goes to IOAPIC pin 2 because the MADT and MP table say ISA IRQ 0 is
 * GSI 2 (the 8259 cascade input on a PC); GSI 2 itself is not used.
 *
 * KVM keeps one level per controller pin for user space, so a line with
 * several sources (PCI functions sharing a pin) is wired-OR here: each
 * source has a bit in a shared mask and the GSI is driven high while any bit
 * is set. GSI n (n < 16) and GSI 24+n both reach 8259 pin n: when one of
 * them goes low while the other is still held, the other is driven again so
 * the pin stays high.
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
/** GSIs dhyve drives: 0-23 and the PIC-only ones. */
export const GSI_COUNT = PIC_ONLY_GSI_BASE + 16;

/** The GSI that reaches only the 8259's IRQ `irq`. */
export function picOnlyGsi(irq: number): number {
  if (!(irq >= 0 && irq < 16)) throw new Error(`ISA IRQ ${irq} out of range`);
  return PIC_ONLY_GSI_BASE + irq;
}

function picRoute(gsi: number, irq: number): GsiRoute {
  return irq < 8
    ? { gsi, kind: "irqchip", irqchip: KVM_IRQCHIP_PIC_MASTER, pin: irq }
    : { gsi, kind: "irqchip", irqchip: KVM_IRQCHIP_PIC_SLAVE, pin: irq - 8 };
}

/** The other GSI that reaches the same 8259 pin as `gsi`, if any. */
export function sharedPicPartner(gsi: number): number | undefined {
  if (gsi < 16 && gsi !== 2) return PIC_ONLY_GSI_BASE + gsi;
  if (gsi >= PIC_ONLY_GSI_BASE && gsi < PIC_ONLY_GSI_BASE + 16 && gsi !== PIC_ONLY_GSI_BASE + 2) {
    return gsi - PIC_ONLY_GSI_BASE;
  }
  return undefined;
}

/** dhyve's GSI routing table (see the module documentation). */
export function gsiRoutes(): GsiRoute[] {
  const routes: GsiRoute[] = [];
  for (let gsi = 0; gsi < 16; gsi++) {
    if (gsi === 2) continue;
    routes.push(picRoute(gsi, gsi));
    routes.push({ gsi, kind: "irqchip", irqchip: KVM_IRQCHIP_IOAPIC, pin: gsi === 0 ? 2 : gsi });
  }
  for (let gsi = 16; gsi < IOAPIC_PINS; gsi++) {
    routes.push({ gsi, kind: "irqchip", irqchip: KVM_IRQCHIP_IOAPIC, pin: gsi });
  }
  for (let irq = 0; irq < 16; irq++) {
    if (irq === 2) continue;
    routes.push(picRoute(picOnlyGsi(irq), irq));
  }
  return routes;
}

/** Shared state of every GSI: which sources drive it. */
export class IrqLineTable {
  /** The shared buffer; send it to every thread. */
  readonly buffer: SharedArrayBuffer;
  readonly #masks: Int32Array;

  /** Creates the table, or binds a received buffer. */
  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(GSI_COUNT * 4);
    this.#masks = new Int32Array(this.buffer);
  }

  /** Forgets every source's level (a new KVM VM starts with all lines low). */
  clearAll(): void {
    for (let i = 0; i < this.#masks.length; i++) Atomics.store(this.#masks, i, 0);
  }

  /** The sources currently driving `gsi` (bit mask). */
  sources(gsi: number): number {
    return Atomics.load(this.#masks, gsi);
  }

  /**
   * A factory of lines for the calling thread. Source bits are handed out per
   * GSI in call order, so every thread that attaches the same devices in the
   * same order (they all do) gets the same bits. `drive(gsi, level)` sets
   * the GSI (KVM_IRQ_LINE).
   */
  lines(drive: (gsi: number, level: 0 | 1) => void): (gsi: number) => IrqLine {
    const next = new Map<number, number>();
    return (gsi: number): IrqLine => {
      if (!(gsi >= 0 && gsi < GSI_COUNT)) throw new Error(`GSI ${gsi} out of range`);
      const k = next.get(gsi) ?? 0;
      if (k >= 31) throw new Error(`GSI ${gsi}: too many interrupt sources`);
      next.set(gsi, k + 1);
      const bit = 1 << k;
      const masks = this.#masks;
      const partner = sharedPicPartner(gsi);
      const low = () => {
        drive(gsi, 0);
        if (partner !== undefined && Atomics.load(masks, partner) !== 0) drive(partner, 1);
      };
      const assert = () => {
        if (Atomics.or(masks, gsi, bit) === 0) drive(gsi, 1);
      };
      const deassert = () => {
        const old = Atomics.and(masks, gsi, ~bit);
        if (old === bit) low();
      };
      return {
        assert,
        deassert,
        pulse() {
          // An edge is only seen when no other source holds the line high.
          const old = Atomics.load(masks, gsi);
          if (old === 0) {
            drive(gsi, 1);
            low();
          }
        },
      };
    };
  }
}

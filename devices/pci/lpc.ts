/**
 * The LPC (ISA) bridge at 00:1F.0 with an ICH-style PIRQ router.
 *
 * The router has eight route-control registers, PIRQA-D at config 0x60-0x63
 * and PIRQE-H at 0x68-0x6B (Intel ICH9/ICH10 datasheet, LPC interface
 * D31:F0 configuration registers, PIRQ[n]_ROUT): bit 7 IRQEN# (1 = the PIRQ
 * is not routed to the 8259), bits 6:4 reserved (read 0), bits 3:0 the ISA
 * IRQ. Their power-on values come from the VM's INTx routing
 * (lib/pci_routing.ts), as bhyve's pci_irq.c fills them, instead of the
 * datasheet's 80h, so a guest in PIC mode finds every used PIRQ routed.
 *
 * The router also delivers (bhyve pci_irq.c pci_irq_assert/deassert): per
 * PIRQ it counts the INTx sources that assert it; when the count goes 0 -> 1
 * the ISA IRQ the PIRQ is routed to is asserted, 1 -> 0 deasserted. An IRQ
 * the datasheet marks reserved in bits 3:0 (0, 1, 2, 8, 13) or IRQEN# set
 * delivers nowhere. A rewrite of a route while its PIRQ is asserted moves
 * the level from the old IRQ to the new one (bhyve pirq_write). Several
 * PIRQs may share an ISA IRQ: the IRQ is counted too, and held while any
 * of them is asserted.
 *
 * Each function's {@linkcode IntxSink} ({@linkcode PciLpcBridge.intxSink})
 * drives both its IOAPIC line (APIC mode) and its PIRQ (PIC mode): the
 * guest uses one of them, as in bhyve's pci_lintr_assert.
 *
 * @module
 */
import type { AccessSize, IrqLine } from "../device.ts";
import { defineState } from "../state.ts";
import { buildConfigTemplate } from "./config.ts";
import { type IntxSink, PCI_FUNCTION_FIELDS, PciFunction } from "./function.ts";

/** LPC bridge vendor: Intel. */
export const LPC_VENDOR_ID = 0x8086;
/** LPC bridge device: 0x7000, the PIIX3 ISA bridge ID bhyve's LPC uses. */
export const LPC_DEVICE_ID = 0x7000;
/** Class 06/01/00: bridge, ISA bridge. */
export const LPC_CLASS = 0x060100;
/** The LPC bridge's device number on bus 0 (Intel ICH convention: the LPC interface is D31:F0). */
export const LPC_SLOT = 31;

/** PIRQA_ROUT (PIRQB-D follow at 0x61-0x63). */
export const PIRQA_ROUT = 0x60;
/** PIRQE_ROUT (PIRQF-H follow at 0x69-0x6B). */
export const PIRQE_ROUT = 0x68;
/** PIRQ pins of the router (A-H). */
export const LPC_PIRQ_PINS = 8;
/** PIRQ[n]_ROUT bit 7: IRQEN#, 1 = not routed. */
export const PIRQ_ROUT_IRQEN_N = 0x80;
/** PIRQ[n]_ROUT bits 3:0: the ISA IRQ. */
export const PIRQ_ROUT_IRQ_MASK = 0x0f;
/** PIRQ[n]_ROUT: the implemented bits (6:4 are reserved and read 0). */
export const PIRQ_ROUT_WRITABLE = PIRQ_ROUT_IRQEN_N | PIRQ_ROUT_IRQ_MASK;
/** ISA IRQs that bits 3:0 may not select (datasheet: "reserved"), as bhyve's pirq_valid_irq. */
export const PIRQ_INVALID_IRQS: readonly number[] = [0, 1, 2, 8, 13];
/** ISA IRQs there are. */
export const ISA_IRQS = 16;

/** The config offset of PIRQ pin `pirq`'s route control (0 = A .. 7 = H). */
export function pirqRouteOffset(pirq: number): number {
  return pirq < 4 ? PIRQA_ROUT + pirq : PIRQE_ROUT + pirq - 4;
}

/** The PIRQ whose route control is at config `offset`, if any. */
export function pirqAtOffset(offset: number): number | undefined {
  if (offset >= PIRQA_ROUT && offset < PIRQA_ROUT + 4) return offset - PIRQA_ROUT;
  if (offset >= PIRQE_ROUT && offset < PIRQE_ROUT + 4) return offset - PIRQE_ROUT + 4;
  return undefined;
}

/** Whether route value `rout` delivers, and to which ISA IRQ. */
export function pirqTarget(rout: number): number | undefined {
  if (rout & PIRQ_ROUT_IRQEN_N) return undefined;
  const irq = rout & PIRQ_ROUT_IRQ_MASK;
  if (irq >= ISA_IRQS || PIRQ_INVALID_IRQS.includes(irq)) return undefined;
  return irq;
}

/** State of the LPC bridge. */
export const PciLpcState = defineState("pci-lpc", 1, {
  ...PCI_FUNCTION_FIELDS,
  /** Per PIRQ: INTx sources asserting it. */
  pirqCount: ["u16", LPC_PIRQ_PINS],
  /** Per ISA IRQ: asserted PIRQs routed to it. */
  isaCount: ["u16", ISA_IRQS],
});

/** A bound {@linkcode PciLpcState}. */
export type PciLpcRegisters = ReturnType<typeof PciLpcState.create>;

/** A function's INTx route, as lib/pci_routing.ts gives it. */
export interface LpcIntxRoute {
  /** The PIRQ pin, 0 = PIRQA .. 7 = PIRQH. */
  readonly pirq: number;
}

/** What the LPC bridge is given. */
export interface PciLpcDeps {
  /**
   * Power-on route of each PIRQ: its ISA IRQ, or 0x80 when unused
   * (`PciRouting.pirqIrqs`).
   */
  readonly pirqIrqs: readonly number[];
  /**
   * The line of ISA IRQ `irq` that reaches only the 8259 pair. Called once
   * per routable IRQ (3-7, 9-12, 14, 15), in ascending order, at construction.
   */
  isaIrq(irq: number): IrqLine;
}

/** The LPC bridge and PIRQ router. */
export class PciLpcBridge extends PciFunction {
  readonly #s: PciLpcRegisters;
  /** ISA IRQ -> its line (routable IRQs only). */
  readonly #lines: readonly (IrqLine | undefined)[];

  /**
   * Builds the bridge over `state` (used as it is; without one, a fresh
   * state is created and reset).
   */
  constructor(deps: PciLpcDeps, state?: PciLpcRegisters) {
    if (deps.pirqIrqs.length !== LPC_PIRQ_PINS) {
      throw new Error(`LPC: ${LPC_PIRQ_PINS} PIRQ routes expected`);
    }
    const s = state ?? PciLpcState.create();
    const values = deps.pirqIrqs.map((v, i) =>
      [pirqRouteOffset(i), 1, v & PIRQ_ROUT_WRITABLE] as const
    );
    const writable = deps.pirqIrqs.map((_, i) =>
      [pirqRouteOffset(i), 1, PIRQ_ROUT_WRITABLE] as const
    );
    super(
      "lpc",
      buildConfigTemplate({
        vendorId: LPC_VENDOR_ID,
        deviceId: LPC_DEVICE_ID,
        classCode: LPC_CLASS,
        values,
        writable,
      }),
      {},
      s,
    );
    this.#s = s;
    const lines: (IrqLine | undefined)[] = new Array(ISA_IRQS).fill(undefined);
    for (let irq = 0; irq < ISA_IRQS; irq++) {
      if (pirqTarget(irq) !== undefined) lines[irq] = deps.isaIrq(irq);
    }
    this.#lines = lines;
    if (!state) this.reset();
  }

  /** The bound register state. */
  get state(): PciLpcRegisters {
    return this.#s;
  }

  /** Route-control value of PIRQ `pirq`. */
  pirqRoute(pirq: number): number {
    return this.config.get8(pirqRouteOffset(pirq));
  }

  /** INTx sources asserting PIRQ `pirq`. */
  pirqCount(pirq: number): number {
    return this.#s.pirqCount[pirq];
  }

  /**
   * Power-on state: route registers from the routing. The assertion counts
   * belong to the INTx sources (each releases its pin at its own reset), so
   * they are kept; a PIRQ still asserted follows its power-on route.
   */
  override reset(): void {
    const before = Array.from({ length: LPC_PIRQ_PINS }, (_, i) => this.pirqRoute(i));
    super.reset();
    for (let i = 0; i < LPC_PIRQ_PINS; i++) this.#reroute(i, before[i]);
  }

  /** One more source asserts PIRQ `pirq`. */
  pirqAssert(pirq: number): void {
    const c = this.#s.pirqCount;
    if (c[pirq]++ === 0) this.#isa(this.pirqRoute(pirq), true);
  }

  /** One source fewer asserts PIRQ `pirq` (an unmatched call is ignored). */
  pirqDeassert(pirq: number): void {
    const c = this.#s.pirqCount;
    if (c[pirq] === 0) return;
    if (--c[pirq] === 0) this.#isa(this.pirqRoute(pirq), false);
  }

  /**
   * The INTx sink of a function routed to `route.pirq`: it drives the
   * function's own IOAPIC line (one source per function: the platform's
   * lines are wired-OR) and counts the PIRQ.
   */
  intxSink(route: LpcIntxRoute, ioapicLine: IrqLine): IntxSink {
    if (!Number.isInteger(route.pirq) || route.pirq < 0 || route.pirq >= LPC_PIRQ_PINS) {
      throw new Error(`LPC: no PIRQ ${route.pirq}`);
    }
    return {
      assert: () => {
        ioapicLine.assert();
        this.pirqAssert(route.pirq);
      },
      deassert: () => {
        ioapicLine.deassert();
        this.pirqDeassert(route.pirq);
      },
    };
  }

  protected override onConfigWrite(offset: number, size: AccessSize, old: number): void {
    for (let i = 0; i < size; i++) {
      const pirq = pirqAtOffset(offset + i);
      if (pirq !== undefined) this.#reroute(pirq, Math.floor(old / 2 ** (8 * i)) & 0xff);
    }
  }

  /** PIRQ `pirq` was routed by `old`: move an asserted level to its current route. */
  #reroute(pirq: number, old: number): void {
    const now = this.pirqRoute(pirq);
    if (this.#s.pirqCount[pirq] === 0 || pirqTarget(old) === pirqTarget(now)) return;
    this.#isa(old, false);
    this.#isa(now, true);
  }

  /** One asserted PIRQ routed by `rout` more (`up`) or fewer on its ISA IRQ. */
  #isa(rout: number, up: boolean): void {
    const irq = pirqTarget(rout);
    if (irq === undefined) return;
    const c = this.#s.isaCount;
    if (up) {
      if (c[irq]++ === 0) this.#lines[irq]?.assert();
    } else if (c[irq] > 0 && --c[irq] === 0) {
      this.#lines[irq]?.deassert();
    }
  }
}

/**
 * PCI INTx routing, decided once per VM as bhyve does it (pci_emul.c
 * pci_lintr_request/pci_lintr_route, pci_irq.c pirq_alloc_pin):
 *
 * - each function that uses INTx gets the least-used of its slot's four
 *   pins INTA#-INTD# (so functions of one slot spread over the pins);
 * - each (slot, pin) pair gets an IOAPIC pin >= 16, round robin over the
 *   pins reserved for PCI, and a PIRQ pin (A-H of the LPC bridge's router),
 *   the least used one;
 * - each PIRQ pin, when first used, is routed to the least-used ISA IRQ not
 *   reserved by the platform (0, 1, 2, 8, 13 and the ISA devices' IRQs),
 *   and that IRQ becomes level-triggered in the ELCR.
 *
 * The function's interrupt-line register starts at its PIRQ's ISA IRQ. In
 * APIC mode the guest uses the IOAPIC pin (ACPI _PRT, MP table); in PIC mode
 * it uses the PIRQ link (LNKA-LNKH), whose ISA IRQ the guest may change
 * through the router registers.
 *
 * Pure: the same inputs give the same routing.
 *
 * @module
 */

import { LPC_PIRQ_PINS, PIRQ_INVALID_IRQS, PIRQ_ROUT_IRQEN_N } from "../devices/pci/lpc.ts";

/** IOAPIC pins used for PCI INTx (16-19; 20-23 are left to the HPET). */
export const PCI_IOAPIC_PINS: readonly number[] = [16, 17, 18, 19];
/** The ISA IRQs a PIRQ link may be set to (ACPI _PRS of LNKA-LNKH), given the reserved ones. */
export function pirqPossibleIrqs(reserved: readonly number[]): number[] {
  const out: number[] = [];
  for (let irq = 3; irq < 16; irq++) {
    if (!PIRQ_INVALID_IRQS.includes(irq) && !reserved.includes(irq)) out.push(irq);
  }
  return out;
}

/** A PCI function that wants an INTx line. */
export interface IntxRequest {
  readonly slot: number;
  readonly function: number;
}

/** Where a function's INTx goes. */
export interface IntxRoute {
  readonly slot: number;
  readonly function: number;
  /** 1 = INTA# .. 4 = INTD# (the interrupt-pin register). */
  readonly pin: number;
  /** The IOAPIC pin (= GSI) used in APIC mode. */
  readonly ioapicPin: number;
  /** The PIRQ pin, 0 = PIRQA .. 7 = PIRQH. */
  readonly pirq: number;
  /** The ISA IRQ the PIRQ is routed to at power-on (the interrupt-line register). */
  readonly isaIrq: number;
}

/** The VM's INTx routing. */
export interface PciRouting {
  readonly routes: readonly IntxRoute[];
  /** Power-on ISA IRQ of each PIRQ pin, or 0x80 (disabled) for unused pins. */
  readonly pirqIrqs: readonly number[];
  /** ISA IRQs made level-triggered (ELCR bits). */
  readonly levelIrqs: readonly number[];
}

/** PIRQ route-control value of a disabled pin (the LPC bridge's IRQEN# bit). */
export const PIRQ_DISABLED = PIRQ_ROUT_IRQEN_N;

/**
 * Routes every requested function. `isaReserved` lists ISA IRQs used by the
 * platform's ISA devices (COM ports, SCI), which PIRQs avoid.
 */
export function routeIntx(
  requests: readonly IntxRequest[],
  isaReserved: readonly number[],
): PciRouting {
  const sorted = [...requests].sort((a, b) => a.slot - b.slot || a.function - b.function);
  const pinUse = new Map<number, number[]>(); // slot -> use count of INTA..INTD
  const pairs = new Map<string, { ioapicPin: number; pirq: number }>();
  const pirqUse = new Array<number>(LPC_PIRQ_PINS).fill(0);
  const pirqIrqs = new Array<number>(LPC_PIRQ_PINS).fill(PIRQ_DISABLED);
  const candidates = pirqPossibleIrqs(isaReserved);
  const irqUse = new Map<number, number>(candidates.map((i) => [i, 0]));
  let nextIoapic = 0;
  const routes: IntxRoute[] = [];
  for (const r of sorted) {
    const uses = pinUse.get(r.slot) ?? [0, 0, 0, 0];
    pinUse.set(r.slot, uses);
    // The least-used pin of the slot; ties go to the lowest pin.
    let pinIndex = 0;
    for (let i = 1; i < 4; i++) if (uses[i] < uses[pinIndex]) pinIndex = i;
    uses[pinIndex]++;
    const key = `${r.slot}:${pinIndex}`;
    let pair = pairs.get(key);
    if (!pair) {
      const ioapicPin = PCI_IOAPIC_PINS[nextIoapic++ % PCI_IOAPIC_PINS.length];
      let pirq = 0;
      for (let p = 1; p < LPC_PIRQ_PINS; p++) if (pirqUse[p] < pirqUse[pirq]) pirq = p;
      pirqUse[pirq]++;
      if (pirqIrqs[pirq] === PIRQ_DISABLED) {
        if (candidates.length === 0) throw new Error("no ISA IRQ left for PCI interrupts");
        let best = candidates[0];
        for (const irq of candidates) if (irqUse.get(irq)! < irqUse.get(best)!) best = irq;
        irqUse.set(best, irqUse.get(best)! + 1);
        pirqIrqs[pirq] = best;
      }
      pair = { ioapicPin, pirq };
      pairs.set(key, pair);
    }
    routes.push({
      slot: r.slot,
      function: r.function,
      pin: pinIndex + 1,
      ioapicPin: pair.ioapicPin,
      pirq: pair.pirq,
      isaIrq: pirqIrqs[pair.pirq],
    });
  }
  const levelIrqs = [...new Set(pirqIrqs.filter((i) => i !== PIRQ_DISABLED))].sort((a, b) => a - b);
  return { routes, pirqIrqs, levelIrqs };
}

/**
 * The distinct (slot, pin) pairs of `routing`, sorted by slot then pin, each
 * with its route: functions of a slot sharing a pin share its IOAPIC pin and
 * PIRQ, so the interrupt tables (ACPI _PRT, MP table) list each pair once.
 */
export function routedPins(routing: PciRouting): IntxRoute[] {
  const seen = new Map<string, IntxRoute>();
  for (const r of routing.routes) {
    const key = `${r.slot}:${r.pin}`;
    if (!seen.has(key)) seen.set(key, r);
  }
  return [...seen.values()].sort((a, b) => a.slot - b.slot || a.pin - b.pin);
}

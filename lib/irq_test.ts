import assert from "node:assert/strict";
import {
  KVM_IRQCHIP_IOAPIC,
  KVM_IRQCHIP_PIC_MASTER,
  KVM_IRQCHIP_PIC_SLAVE,
} from "../cpu/kvm_abi.ts";
import { gsiRoutes, IOAPIC_ONLY_GSI_BASE, IrqLineTable, picOnlyGsi, pinsOf } from "./irq.ts";

Deno.test("GSI routing: the PC numbering for the PIT, and one GSI per controller pin for dhyve", () => {
  const routes = gsiRoutes();
  const of = (gsi: number) =>
    routes.filter((r) => r.gsi === gsi).map((r) => r.kind === "irqchip" ? [r.irqchip, r.pin] : []);
  assert.deepEqual(of(0), [[KVM_IRQCHIP_PIC_MASTER, 0], [KVM_IRQCHIP_IOAPIC, 2]]);
  assert.deepEqual(of(2), []);
  assert.deepEqual(of(9), [[KVM_IRQCHIP_PIC_SLAVE, 1], [KVM_IRQCHIP_IOAPIC, 9]]);
  assert.deepEqual(of(20), [[KVM_IRQCHIP_IOAPIC, 20]]);
  assert.deepEqual(of(picOnlyGsi(11)), [[KVM_IRQCHIP_PIC_SLAVE, 3]]);
  assert.deepEqual(of(picOnlyGsi(5)), [[KVM_IRQCHIP_PIC_MASTER, 5]]);
  assert.deepEqual(of(IOAPIC_ONLY_GSI_BASE + 2), [[KVM_IRQCHIP_IOAPIC, 2]]);
  assert.deepEqual(of(IOAPIC_ONLY_GSI_BASE + 15), [[KVM_IRQCHIP_IOAPIC, 15]]);
  assert.throws(() => picOnlyGsi(16));
});

Deno.test("a device's GSI n stands for the 8259 pin and the IOAPIC pin of IRQ n (IRQ 0 at pin 2)", () => {
  assert.deepEqual(pinsOf(4), [4, 16 + 4]);
  assert.deepEqual(pinsOf(0), [0, 16 + 2]);
  assert.deepEqual(pinsOf(17), [16 + 17]);
  assert.deepEqual(pinsOf(picOnlyGsi(9)), [9]);
  assert.throws(() => pinsOf(64), /out of range/);
});

/** A line table whose drive calls are recorded in `driven` as [gsi, level]. */
function setup() {
  const table = new IrqLineTable();
  const driven: [number, number][] = [];
  const line = table.lines((gsi, level) => driven.push([gsi, level]));
  return { table, driven, line };
}

Deno.test("an ISA line drives its 8259 pin and its IOAPIC pin, each through its own GSI", () => {
  const { driven, line } = setup();
  const com1 = line(4);
  com1.assert();
  com1.deassert();
  assert.deepEqual(driven, [[picOnlyGsi(4), 1], [IOAPIC_ONLY_GSI_BASE + 4, 1], [picOnlyGsi(4), 0], [
    IOAPIC_ONLY_GSI_BASE + 4,
    0,
  ]]);
  const pit = line(0);
  pit.pulse();
  assert.deepEqual(driven.slice(4), [[picOnlyGsi(0), 1], [picOnlyGsi(0), 0], [
    IOAPIC_ONLY_GSI_BASE + 2,
    1,
  ], [
    IOAPIC_ONLY_GSI_BASE + 2,
    0,
  ]]);
});

Deno.test("a shared pin is the wired-OR of its sources", () => {
  const { table, driven, line } = setup();
  const a = line(16), b = line(16), c = line(17);
  a.assert();
  b.assert(); // already high: no new edge
  a.deassert(); // b still holds it
  assert.deepEqual(driven, [[16, 1]]);
  b.deassert();
  assert.deepEqual(driven, [[16, 1], [16, 0]]);
  c.pulse();
  assert.deepEqual(driven.slice(2), [[17, 1], [17, 0]]);
  // A pulse on a pin another source holds high makes no edge.
  a.assert();
  b.pulse();
  assert.equal(driven.length, 5);
  assert.equal(table.sources(16), 1);
});

Deno.test("an ISA device and a PIRQ share 8259 pin n without glitching it", () => {
  const { driven, line } = setup();
  const com1 = line(4), pirq = line(picOnlyGsi(4));
  com1.assert();
  pirq.assert(); // the 8259 pin is already high
  pirq.deassert(); // COM1 still holds it: nothing moves
  assert.deepEqual(driven, [[picOnlyGsi(4), 1], [IOAPIC_ONLY_GSI_BASE + 4, 1]]);
  com1.deassert();
  assert.deepEqual(driven.slice(2), [[picOnlyGsi(4), 0], [IOAPIC_ONLY_GSI_BASE + 4, 0]]);
});

Deno.test("every thread gets the same source bits for the same attach order", () => {
  const table = new IrqLineTable();
  const t2 = new IrqLineTable(table.buffer);
  const seen: number[] = [];
  const l1 = table.lines(() => {}), l2 = t2.lines((_g, level) => seen.push(level));
  const x1 = l1(8);
  l1(8);
  l2(8);
  const y2 = l2(8);
  x1.assert(); // source 0 from thread 1
  y2.assert(); // source 1 from thread 2: pins already high, no drive
  assert.equal(t2.sources(8), 0b11);
  assert.deepEqual(seen, []);
  table.clearAll();
  assert.equal(t2.sources(8), 0);
});

import assert from "node:assert/strict";
import {
  KVM_IRQCHIP_IOAPIC,
  KVM_IRQCHIP_PIC_MASTER,
  KVM_IRQCHIP_PIC_SLAVE,
} from "../cpu/kvm_abi.ts";
import { gsiRoutes, IrqLineTable, picOnlyGsi } from "./irq.ts";

Deno.test("GSI routing: ISA IRQ 0 reaches IOAPIC pin 2, 16-23 are IOAPIC-only, 24+n reach only the 8259", () => {
  const routes = gsiRoutes();
  const of = (gsi: number) =>
    routes.filter((r) => r.gsi === gsi).map((r) => r.kind === "irqchip" ? [r.irqchip, r.pin] : []);
  assert.deepEqual(of(0), [[KVM_IRQCHIP_PIC_MASTER, 0], [KVM_IRQCHIP_IOAPIC, 2]]);
  assert.deepEqual(of(2), []);
  assert.deepEqual(of(4), [[KVM_IRQCHIP_PIC_MASTER, 4], [KVM_IRQCHIP_IOAPIC, 4]]);
  assert.deepEqual(of(9), [[KVM_IRQCHIP_PIC_SLAVE, 1], [KVM_IRQCHIP_IOAPIC, 9]]);
  assert.deepEqual(of(20), [[KVM_IRQCHIP_IOAPIC, 20]]);
  assert.deepEqual(of(picOnlyGsi(11)), [[KVM_IRQCHIP_PIC_SLAVE, 3]]);
  assert.deepEqual(of(picOnlyGsi(5)), [[KVM_IRQCHIP_PIC_MASTER, 5]]);
  assert.throws(() => picOnlyGsi(16));
});

Deno.test("a shared line is the wired-OR of its sources", () => {
  const table = new IrqLineTable();
  const driven: [number, number][] = [];
  const line = table.lines((gsi, level) => driven.push([gsi, level]));
  const a = line(16), b = line(16), c = line(17);
  a.assert();
  b.assert(); // already high: no new edge
  a.deassert(); // b still holds it
  assert.deepEqual(driven, [[16, 1]]);
  b.deassert();
  assert.deepEqual(driven, [[16, 1], [16, 0]]);
  c.pulse();
  assert.deepEqual(driven.slice(2), [[17, 1], [17, 0]]);
  // A pulse on a line another source holds high makes no edge.
  a.assert();
  b.pulse();
  assert.equal(driven.length, 5);
  assert.equal(table.sources(16), 1);
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
  y2.assert(); // source 1 from thread 2: line already high, no drive
  assert.equal(t2.sources(8), 0b11);
  assert.deepEqual(seen, []);
});

Deno.test("GSI n and GSI 24+n share 8259 pin n: one going low re-drives the other", () => {
  const table = new IrqLineTable();
  const driven: [number, number][] = [];
  const line = table.lines((gsi, level) => driven.push([gsi, level]));
  const com1 = line(4), pirq = line(picOnlyGsi(4));
  com1.assert();
  pirq.assert();
  pirq.deassert(); // the PIC pin must stay high: COM1 still holds it
  assert.deepEqual(driven, [[4, 1], [28, 1], [28, 0], [4, 1]]);
  com1.deassert();
  assert.deepEqual(driven.slice(4), [[4, 0]]);
});

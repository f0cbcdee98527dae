import assert from "node:assert/strict";
import { routeIntx } from "../../lib/pci_routing.ts";
import { FakeIrq, FakeIrqs } from "../_fakes.ts";
import { buildConfigTemplate, PCI_COMMAND } from "./config.ts";
import { intxHeader, PciFunction, PciFunctionState } from "./function.ts";
import {
  LPC_CLASS,
  PciLpcBridge,
  PciLpcState,
  PIRQ_ROUT_IRQEN_N,
  PIRQA_ROUT,
  PIRQE_ROUT,
  pirqRouteOffset,
} from "./lpc.ts";

const POWER_ON = [10, 11, 0x80, 5, 0x80, 0x80, 0x80, 0x80];

function setup(pirqIrqs = POWER_ON) {
  const { lines: isa, asked, line } = new FakeIrqs();
  const lpc = new PciLpcBridge({ pirqIrqs, isaIrq: line });
  return { lpc, isa, asked, irq: (n: number) => isa.get(n)! };
}

Deno.test("LPC identity: 8086:7000, class 06/01/00, single function", () => {
  const { lpc } = setup();
  assert.equal(lpc.configRead(0, 4), 0x70008086);
  assert.equal(lpc.configRead(8, 4) >>> 8, LPC_CLASS);
  assert.equal(lpc.configRead(0x0e, 1), 0);
  assert.equal(lpc.bars.length, 0);
});

Deno.test("isaIrq is asked once per routable IRQ, in order", () => {
  const { asked } = setup();
  assert.deepEqual(asked, [3, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15]);
});

Deno.test("PIRQ route registers: power-on values, reserved bits, IRQEN#", () => {
  const { lpc } = setup();
  assert.equal(lpc.configRead(PIRQA_ROUT, 4), 0x05800b0a);
  assert.equal(lpc.configRead(PIRQE_ROUT, 4), 0x80808080);
  // 0x64-0x67 are not router registers.
  lpc.configWrite(0x64, 4, 0xffffffff);
  assert.equal(lpc.configRead(0x64, 4), 0);
  // Bits 6:4 are reserved and read 0.
  lpc.configWrite(PIRQA_ROUT, 1, 0x7b);
  assert.equal(lpc.configRead(PIRQA_ROUT, 1), 0x0b);
  lpc.configWrite(PIRQE_ROUT + 3, 1, 0xff);
  assert.equal(lpc.pirqRoute(7), 0x8f);
  assert.equal(pirqRouteOffset(7), 0x6b);
  lpc.reset();
  assert.equal(lpc.configRead(PIRQA_ROUT, 4), 0x05800b0a);
  assert.equal(lpc.pirqRoute(7), 0x80);
});

Deno.test("routing from lib/pci_routing.ts fills the power-on values", () => {
  const routing = routeIntx([{ slot: 3, function: 0 }, { slot: 4, function: 0 }], [3, 4, 9, 12]);
  const { lpc } = setup([...routing.pirqIrqs]);
  for (let p = 0; p < 8; p++) assert.equal(lpc.pirqRoute(p), routing.pirqIrqs[p]);
});

Deno.test("INTx sink: asserts the IOAPIC line and the routed ISA IRQ", () => {
  const { lpc, irq } = setup();
  const ioapic = new FakeIrq();
  const sink = lpc.intxSink({ pirq: 0 }, ioapic);
  sink.assert();
  assert.deepEqual(ioapic.calls, ["assert"]);
  assert.deepEqual(irq(10).calls, ["assert"]);
  assert.equal(lpc.pirqCount(0), 1);
  sink.deassert();
  assert.deepEqual(ioapic.calls, ["assert", "deassert"]);
  assert.deepEqual(irq(10).calls, ["assert", "deassert"]);
  assert.equal(lpc.pirqCount(0), 0);
  // An unmatched deassert does not underflow.
  sink.deassert();
  assert.equal(lpc.pirqCount(0), 0);
  assert.deepEqual(irq(10).calls, ["assert", "deassert"]);
  assert.throws(() => lpc.intxSink({ pirq: 8 }, ioapic), /PIRQ 8/);
});

Deno.test("IRQEN# and reserved IRQs deliver nowhere (the IOAPIC line still works)", () => {
  const { lpc, isa } = setup();
  const ioapic = new FakeIrq();
  const sink = lpc.intxSink({ pirq: 2 }, ioapic); // PIRQC: 0x80 at power-on
  sink.assert();
  assert.equal(ioapic.level, true);
  for (const l of isa.values()) assert.deepEqual(l.calls, []);
  sink.deassert();
  for (const reserved of [0, 1, 2, 8, 13]) {
    lpc.configWrite(pirqRouteOffset(2), 1, reserved);
    sink.assert();
    sink.deassert();
  }
  for (const l of isa.values()) assert.deepEqual(l.calls, []);
});

Deno.test("rerouting while asserted moves the ISA line (bhyve pirq_write)", () => {
  const { lpc, irq } = setup();
  const sink = lpc.intxSink({ pirq: 1 }, new FakeIrq()); // PIRQB -> 11
  sink.assert();
  lpc.configWrite(pirqRouteOffset(1), 1, 14);
  assert.deepEqual(irq(11).calls, ["assert", "deassert"]);
  assert.deepEqual(irq(14).calls, ["assert"]);
  // Disabling the route drops the line; re-enabling raises it again.
  lpc.configWrite(pirqRouteOffset(1), 1, PIRQ_ROUT_IRQEN_N | 14);
  assert.deepEqual(irq(14).calls, ["assert", "deassert"]);
  lpc.configWrite(pirqRouteOffset(1), 1, 14);
  assert.deepEqual(irq(14).calls, ["assert", "deassert", "assert"]);
  // Rewriting the same route does nothing; a dword write over the router does.
  lpc.configWrite(pirqRouteOffset(1), 1, 14);
  lpc.configWrite(PIRQA_ROUT, 4, 0x05800f0a);
  assert.deepEqual(irq(14).calls, ["assert", "deassert", "assert", "deassert"]);
  assert.deepEqual(irq(15).calls, ["assert"]);
  sink.deassert();
  assert.deepEqual(irq(15).calls, ["assert", "deassert"]);
  // Not asserted: rerouting moves nothing.
  lpc.configWrite(pirqRouteOffset(1), 1, 9);
  assert.deepEqual(irq(9).calls, []);
});

Deno.test("two functions on one PIRQ share it; two PIRQs may share an IRQ", () => {
  const { lpc, irq } = setup();
  const a = lpc.intxSink({ pirq: 0 }, new FakeIrq());
  const b = lpc.intxSink({ pirq: 0 }, new FakeIrq());
  a.assert();
  b.assert();
  assert.equal(lpc.pirqCount(0), 2);
  a.deassert();
  assert.deepEqual(irq(10).calls, ["assert"]);
  b.deassert();
  assert.deepEqual(irq(10).calls, ["assert", "deassert"]);
  // PIRQD rerouted to IRQ 10 too: the IRQ stays high while either is asserted.
  lpc.configWrite(pirqRouteOffset(3), 1, 10);
  const d = lpc.intxSink({ pirq: 3 }, new FakeIrq());
  a.assert();
  d.assert();
  a.deassert();
  assert.deepEqual(irq(10).calls, ["assert", "deassert", "assert"]);
  d.deassert();
  assert.deepEqual(irq(10).calls, ["assert", "deassert", "assert", "deassert"]);
});

Deno.test("end to end: a function's INTx through the router", () => {
  const { lpc, irq } = setup();
  const ioapic = new FakeIrq();
  const intx = { pin: 1, line: 10, sink: lpc.intxSink({ pirq: 0 }, ioapic) };
  const fn = new PciFunction(
    "dev",
    buildConfigTemplate({ vendorId: 1, deviceId: 2, classCode: 0, ...intxHeader(intx) }),
    { intx },
    PciFunctionState.create(),
  );
  fn.reset();
  assert.equal(fn.configRead(0x3c, 2), 0x010a);
  fn.setIntx(true);
  assert.equal(ioapic.level, true);
  assert.equal(irq(10).level, true);
  fn.configWrite(PCI_COMMAND, 2, 0x400);
  assert.equal(ioapic.level, false);
  assert.equal(irq(10).level, false);
  fn.configWrite(PCI_COMMAND, 2, 0);
  // Reset order does not matter: the LPC keeps the counts, the function releases its own.
  lpc.reset();
  assert.equal(lpc.pirqCount(0), 1);
  fn.reset();
  assert.equal(lpc.pirqCount(0), 0);
  assert.equal(irq(10).level, false);
  assert.equal(ioapic.level, false);
});

Deno.test("reset moves an asserted PIRQ back to its power-on route", () => {
  const state = PciLpcState.create();
  const { lines, line } = new FakeIrqs();
  const lpc = new PciLpcBridge({ pirqIrqs: POWER_ON, isaIrq: line }, state);
  lpc.reset();
  const sink = lpc.intxSink({ pirq: 0 }, new FakeIrq());
  lpc.configWrite(PIRQA_ROUT, 1, 7);
  sink.assert();
  lpc.reset();
  assert.deepEqual(lines.get(7)!.calls, ["assert", "deassert"]);
  assert.deepEqual(lines.get(10)!.calls, ["assert"]);
  assert.throws(
    () => new PciLpcBridge({ pirqIrqs: [1], isaIrq: () => new FakeIrq() }),
    /8 PIRQ routes/,
  );
});

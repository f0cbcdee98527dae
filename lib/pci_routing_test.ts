import assert from "node:assert/strict";
import { PIRQ_DISABLED, pirqPossibleIrqs, routedPins, routeIntx } from "./pci_routing.ts";

const ISA = [4, 3, 9, 12]; // COM1, COM2, SCI, mouse

Deno.test("possible PIRQ IRQs skip 0, 1, 2, 8, 13 and the ISA devices' IRQs", () => {
  assert.deepEqual(pirqPossibleIrqs(ISA), [5, 6, 7, 10, 11, 14, 15]);
});

Deno.test("functions of one slot spread over INTA-INTD; each (slot, pin) gets an IOAPIC pin and a PIRQ", () => {
  const r = routeIntx([{ slot: 3, function: 0 }, { slot: 3, function: 1 }, {
    slot: 4,
    function: 0,
  }], ISA);
  assert.deepEqual(
    r.routes.map((x) => [x.slot, x.function, x.pin, x.ioapicPin, x.pirq, x.isaIrq]),
    [
      [3, 0, 1, 16, 0, 5],
      [3, 1, 2, 17, 1, 6],
      [4, 0, 1, 18, 2, 7],
    ],
  );
  assert.deepEqual(r.pirqIrqs, [
    5,
    6,
    7,
    PIRQ_DISABLED,
    PIRQ_DISABLED,
    PIRQ_DISABLED,
    PIRQ_DISABLED,
    PIRQ_DISABLED,
  ]);
  assert.deepEqual(r.levelIrqs, [5, 6, 7]);
});

Deno.test("a fifth function in a slot shares the least-used pin, and its (slot, pin) routing", () => {
  const fns = [0, 1, 2, 3, 4].map((f) => ({ slot: 5, function: f }));
  const r = routeIntx(fns, ISA);
  assert.deepEqual(r.routes.map((x) => x.pin), [1, 2, 3, 4, 1]);
  assert.equal(r.routes[4].ioapicPin, r.routes[0].ioapicPin);
  assert.equal(r.routes[4].pirq, r.routes[0].pirq);
});

Deno.test("IOAPIC pins go round robin over 16-19 and PIRQs over A-H; ISA IRQs are reused least-used first", () => {
  const fns = Array.from({ length: 10 }, (_, i) => ({ slot: i + 1, function: 0 }));
  const r = routeIntx(fns, ISA);
  assert.deepEqual(r.routes.map((x) => x.ioapicPin), [16, 17, 18, 19, 16, 17, 18, 19, 16, 17]);
  assert.deepEqual(r.routes.map((x) => x.pirq), [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]);
  // 8 PIRQs over 7 possible IRQs: the eighth reuses the least-used (first) one.
  assert.deepEqual(r.pirqIrqs, [5, 6, 7, 10, 11, 14, 15, 5]);
  // Requests in any order give the same routing.
  assert.deepEqual(routeIntx([...fns].reverse(), ISA), r);
});

Deno.test("routedPins lists each (slot, pin) once, sorted, with the route of its first function", () => {
  // Five functions of slot 5 use INTA-INTD and then INTA again; slot 2 has one.
  const fns = [0, 1, 2, 3, 4].map((f) => ({ slot: 5, function: f }));
  const r = routeIntx([...fns, { slot: 2, function: 0 }], ISA);
  assert.deepEqual(
    routedPins(r).map((x) => [x.slot, x.pin, x.function]),
    [[2, 1, 0], [5, 1, 0], [5, 2, 1], [5, 3, 2], [5, 4, 3]],
  );
});

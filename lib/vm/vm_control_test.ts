import assert from "node:assert/strict";
import {
  FALLBACK_OVERFLOW,
  FALLBACK_SLOTS,
  VCPU_REQUEST,
  VCPU_STATS,
  VcpuControl,
} from "./vm_control.ts";

Deno.test("vCPU requests: a later request replaces one not yet taken; taking leaves none", () => {
  const c = new VcpuControl();
  assert.equal(c.request, VCPU_REQUEST.none);
  c.setRequest(VCPU_REQUEST.run);
  c.setRequest(VCPU_REQUEST.pause);
  assert.equal(c.takeRequest(), VCPU_REQUEST.pause);
  assert.equal(c.request, VCPU_REQUEST.none);
  assert.equal(c.takeRequest(), VCPU_REQUEST.none);
});

Deno.test("vCPU requests: exit stays until taken, whatever is posted after it", () => {
  const c = new VcpuControl();
  c.setRequest(VCPU_REQUEST.exit);
  c.setRequest(VCPU_REQUEST.pause);
  c.setRequest(VCPU_REQUEST.run);
  assert.equal(c.request, VCPU_REQUEST.exit);
  assert.equal(c.takeRequest(), VCPU_REQUEST.exit);
});

Deno.test("fallback counters: per-name counts and time, read from another binding; names past the table go to (other)", () => {
  const writer = new VcpuControl();
  const reader = new VcpuControl(writer.buffer);
  writer.fallbacks.record("clac", 2e6);
  writer.fallbacks.record("int3", 1e6);
  writer.fallbacks.record("clac", 1e6);
  assert.deepEqual(reader.fallbacks.snapshot(), {
    clac: { count: 2, ms: 3 },
    int3: { count: 1, ms: 1 },
  });
  for (let i = 0; i < FALLBACK_SLOTS + 5; i++) writer.fallbacks.record(`op${i}`, 0);
  const snap = reader.fallbacks.snapshot();
  assert.equal(Object.keys(snap).length, FALLBACK_SLOTS);
  // 2 names were there; 61 more fit; the rest (FALLBACK_SLOTS + 5 - 61) share the last slot.
  assert.equal(snap[FALLBACK_OVERFLOW].count, FALLBACK_SLOTS + 5 - (FALLBACK_SLOTS - 3));
  assert.equal(snap.op0.count, 1);
  // A long name is cut, not spilled into the next slot.
  const w2 = new VcpuControl();
  w2.fallbacks.record("x".repeat(100), 0);
  assert.deepEqual(Object.keys(w2.fallbacks.snapshot()), ["x".repeat(31)]);
  assert.equal(VcpuControl.slot("fallback"), VCPU_STATS.indexOf("fallback"));
});

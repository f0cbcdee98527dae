import assert from "node:assert/strict";
import { realMsUntil, vmClock } from "./host.ts";

Deno.test("vmClock: rate 1 is the real clock itself; a slower rate scales it to integer ns", () => {
  let real = 0;
  const source = () => real;
  assert.equal(vmClock(1, source), source);
  const quarter = vmClock(0.25, source);
  for (
    const [r, want] of [[0, 0], [1e9, 2.5e8], [3, 0], [7, 1], [123_456_789_013, 30_864_197_253]]
  ) {
    real = r;
    assert.equal(quarter(), want, `real ${r}`);
  }
  const slowest = vmClock(1 / 64, source);
  real = 64e9;
  assert.equal(slowest(), 1e9);
});

Deno.test("realMsUntil: a VM-clock interval lasts 1/rate times as long in real time", () => {
  assert.equal(realMsUntil(5e6, 1e6, 1), 4);
  assert.equal(realMsUntil(5e6, 1e6, 0.25), 16);
  assert.equal(realMsUntil(1e6, 5e6, 0.5), -8); // overdue: negative, the caller does not sleep
});

import assert from "node:assert/strict";
import { driveLine } from "./device.ts";
import { FakeIrq } from "./_fakes.ts";

Deno.test("driveLine asserts and deasserts only on a change of level", () => {
  const line = new FakeIrq();
  let level = false;
  level = driveLine(line, level, false);
  assert.deepEqual(line.calls, []);
  level = driveLine(line, level, true);
  level = driveLine(line, level, true);
  assert.equal(level, true);
  level = driveLine(line, level, false);
  assert.equal(level, false);
  assert.deepEqual(line.calls, ["assert", "deassert"]);
  // An unwired output: the level is still tracked.
  assert.equal(driveLine(undefined, false, true), true);
});

import assert from "node:assert/strict";
import { driveLine, isMsiAddress } from "./device.ts";
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

Deno.test("isMsiAddress: only the local APICs' window 0xFEE00000-0xFEEFFFFF is an interrupt", () => {
  assert.equal(isMsiAddress(0xfee00000), true);
  assert.equal(isMsiAddress(0xfee01000), true);
  assert.equal(isMsiAddress(0xfeefffff), true);
  assert.equal(isMsiAddress(0xfedfffff), false);
  assert.equal(isMsiAddress(0xfef00000), false);
  assert.equal(isMsiAddress(0), false);
  assert.equal(isMsiAddress(0x100000), false);
  assert.equal(isMsiAddress(0x1_fee0_0000), false, "address bits 63:32 set");
});

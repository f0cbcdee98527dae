import assert from "node:assert/strict";
import { FakePlatform } from "./_fakes.ts";
import { ResetControl, ResetControlState, RST_CNT } from "./reset_control.ts";

function setup() {
  const platform = new FakePlatform();
  const state = ResetControlState.create();
  return { platform, state, rc: new ResetControl({ platform }, state) };
}

Deno.test("RST_CNT bits are 1, 2 and 3", () => {
  assert.deepEqual({ ...RST_CNT }, { SYS_RST: 0x02, RST_CPU: 0x04, FULL_RST: 0x08 });
});

Deno.test("0x02 then 0x06 resets once, on the RST_CPU 0 -> 1 transition", () => {
  const { platform, rc } = setup();
  rc.write(0, 1, 0x02);
  assert.equal(platform.requests.length, 0, "selecting a hard reset does not reset");
  assert.equal(rc.read(0, 1), 0x02);
  rc.write(0, 1, 0x06);
  assert.equal(platform.requests.length, 1);
  assert.equal(platform.requests[0].kind, "reset");
  assert.equal(
    platform.requests[0].message,
    "reset control register: 0x06 written to port 0xcf9",
  );
});

Deno.test("0x06 twice without a reset in between requests only once", () => {
  const { platform, rc } = setup();
  rc.write(0, 1, 0x06);
  rc.write(0, 1, 0x06);
  assert.equal(platform.requests.length, 1);
  // Dropping RST_CPU and raising it again is a new transition.
  rc.write(0, 1, 0x02);
  rc.write(0, 1, 0x06);
  assert.equal(platform.requests.length, 2);
  assert.ok(platform.requests.every((r) => r.kind === "reset"));
});

Deno.test("0x0E (full reset) and a bare 0x04 reset", () => {
  const a = setup();
  a.rc.write(0, 1, 0x0e);
  assert.equal(a.platform.requests.length, 1);
  assert.match(a.platform.requests[0].message ?? "", /0x0e written/);
  const b = setup();
  b.rc.write(0, 1, 0x04);
  assert.equal(b.platform.requests.length, 1);
  assert.equal(b.platform.requests[0].kind, "reset");
});

Deno.test("writes without RST_CPU never reset", () => {
  const { platform, rc } = setup();
  for (const v of [0x00, 0x01, 0x02, 0x08, 0x0a, 0xf3, 0xfb]) rc.write(0, 1, v);
  assert.equal(platform.requests.length, 0);
});

Deno.test("reads return only bits 1-3", () => {
  const { rc } = setup();
  rc.write(0, 1, 0xff);
  assert.equal(rc.read(0, 1), 0x0e);
  rc.write(0, 1, 0xf1);
  assert.equal(rc.read(0, 1), 0x00);
  rc.write(0, 1, 0x0a);
  assert.equal(rc.read(0, 1), 0x0a);
});

Deno.test("reset() clears the register, so the next 0x06 resets again", () => {
  const { platform, state, rc } = setup();
  rc.write(0, 1, 0x06);
  rc.reset();
  assert.equal(rc.read(0, 1), 0);
  assert.equal(state.value, 0);
  rc.write(0, 1, 0x06);
  assert.equal(platform.requests.length, 2);
});

Deno.test("the register lives in the shared state", () => {
  const { platform, state, rc } = setup();
  rc.write(0, 1, 0x06);
  // A second thread's instance bound to the same state sees RST_CPU already set.
  const other = new ResetControl(
    { platform },
    ResetControlState.bind(ResetControlState.bufferOf(state)),
  );
  assert.equal(other.read(0, 1), 0x06);
  other.write(0, 1, 0x06);
  assert.equal(platform.requests.length, 1);
});

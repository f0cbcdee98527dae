import assert from "node:assert/strict";
import { FakePlatform } from "./_fakes.ts";
import { DebugExit, debugExitStatus } from "./debug_exit.ts";

Deno.test("the exit status is (v << 1) | 1 as an unsigned 32-bit number", () => {
  assert.equal(debugExitStatus(0), 1);
  assert.equal(debugExitStatus(1), 3);
  assert.equal(debugExitStatus(0x10), 0x21);
  assert.equal(debugExitStatus(0x7f), 0xff);
  assert.equal(debugExitStatus(0x80), 0x101);
  assert.equal(debugExitStatus(0x7fffffff), 0xffffffff);
  assert.equal(debugExitStatus(0x80000000), 1, "bit 31 shifts out");
  assert.equal(debugExitStatus(0xffffffff), 0xffffffff);
  for (const v of [0, 1, 0x7f, 0x40000000, 0xc0000000, 0xffffffff]) {
    const s = debugExitStatus(v);
    assert.ok(s >= 0 && s <= 0xffffffff && Number.isInteger(s), `status of ${v} is u32`);
    assert.equal(s & 1, 1, "always odd, so a guest can never report plain success");
  }
});

Deno.test("a write ends the VM with kind debug-exit and that status", () => {
  const platform = new FakePlatform();
  const dev = new DebugExit({ platform });
  dev.write(0, 4, 0x10);
  assert.equal(platform.requests.length, 1);
  const r = platform.requests[0];
  assert.equal(r.kind, "debug-exit");
  assert.equal(r.status, 0x21);
  assert.equal(r.message, "debug-exit: guest wrote 0x10 (4 bytes at offset 0): exit status 33");
});

Deno.test("the message gives the status the OS keeps (its low 8 bits)", () => {
  const platform = new FakePlatform();
  const dev = new DebugExit({ platform });
  dev.write(0, 1, 0x7f);
  dev.write(0, 4, 0xffffffff);
  dev.write(0, 1, 0);
  dev.write(1, 2, 0x80);
  assert.deepEqual(platform.requests.map((r) => r.status), [0xff, 0xffffffff, 1, 0x101]);
  const msgs = platform.requests.map((r) => r.message);
  assert.match(msgs[0] ?? "", /wrote 0x7f \(1 bytes at offset 0\): exit status 255$/);
  assert.match(msgs[1] ?? "", /wrote 0xffffffff \(4 bytes at offset 0\): exit status 255$/);
  assert.match(msgs[2] ?? "", /wrote 0x0 .*: exit status 1$/);
  assert.match(msgs[3] ?? "", /wrote 0x80 \(2 bytes at offset 1\): exit status 1$/);
});

Deno.test("reads return 0 and request nothing", () => {
  const platform = new FakePlatform();
  const dev = new DebugExit({ platform });
  assert.equal(dev.read(0, 1), 0);
  assert.equal(dev.read(0, 4), 0);
  assert.equal(platform.requests.length, 0);
});

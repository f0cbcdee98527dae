import assert from "node:assert/strict";
import {
  createRngHandler,
  RANDOM_SOURCE_MAX_FILL,
  type RandomSource,
  VIRTIO_RNG_MAX_CHAIN_BYTES,
  virtioRngModel,
} from "./rng.ts";
import {
  featureBit,
  VIRTIO_F,
  VIRTIO_ID,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VirtqueueError,
} from "./types.ts";
import { AVAIL, Driver, FakeContext, RAM } from "./_testing.ts";

/** Fills with a running counter (never 0xee first) and records each call's size. */
class CountingSource implements RandomSource {
  readonly calls: number[] = [];
  fail = false;
  #n = 0;
  fill(dst: Uint8Array): void {
    if (this.fail) throw new Error("getrandom: EIO");
    this.calls.push(dst.length);
    for (let i = 0; i < dst.length; i++) dst[i] = this.#n++ % 251;
  }
}

function setup() {
  const d = new Driver();
  const ctx = new FakeContext(d.mem, featureBit(VIRTIO_F.version1), new Uint8Array(0));
  const source = new CountingSource();
  const handler = createRngHandler(ctx, [d.queue], source);
  return { d, ctx, source, handler };
}

function counting(from: number, len: number): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (from + i) % 251);
}

Deno.test("the model: device ID 4, class 0x00ff00, one queue of 256, no features or config", () => {
  const m = virtioRngModel();
  assert.equal(m.deviceId, VIRTIO_ID.rng);
  assert.equal(m.pciClass, 0x00ff00);
  assert.equal(m.features, 0n);
  assert.deepEqual(m.queueSizes, [256]);
  assert.equal(m.configSize, 0);
  m.initConfig(new Uint8Array(0));
  assert.equal(m.configWritable, undefined);
});

Deno.test("every writable buffer is filled; used len = bytes filled; one interrupt", () => {
  const { d, ctx, source, handler } = setup();
  const a = d.buf(100, true);
  const b = d.buf(50, true);
  const c = d.buf(16, true);
  const h1 = d.add([a, b]);
  const h2 = d.add([c]);
  handler.notify(0);
  assert.deepEqual(d.takeUsed(), [{ id: h1, len: 150 }, { id: h2, len: 16 }]);
  assert.deepEqual(d.mem.read(a.gpa, 100), counting(0, 100));
  assert.deepEqual(d.mem.read(b.gpa, 50), counting(100, 50));
  assert.deepEqual(d.mem.read(c.gpa, 16), counting(150, 16));
  assert.deepEqual(source.calls, [100, 50, 16]);
  assert.deepEqual(ctx.interrupts, [0]);
});

Deno.test("a chain gets at most 64 KiB, in calls of at most 65536 bytes", () => {
  const { d, source, handler } = setup();
  const a = d.buf(40000, true);
  const b = d.buf(40000, true);
  const h = d.add([a, b]);
  const big = d.buf(VIRTIO_RNG_MAX_CHAIN_BYTES + 4096, true);
  const h2 = d.add([big]);
  handler.notify(0);
  assert.deepEqual(d.takeUsed(), [
    { id: h, len: VIRTIO_RNG_MAX_CHAIN_BYTES },
    { id: h2, len: VIRTIO_RNG_MAX_CHAIN_BYTES },
  ]);
  assert.deepEqual(source.calls, [40000, VIRTIO_RNG_MAX_CHAIN_BYTES - 40000, 65536]);
  assert.ok(source.calls.every((n) => n <= RANDOM_SOURCE_MAX_FILL));
  // Past the cap, the guest's bytes are untouched.
  assert.ok(
    d.mem.read(
      b.gpa + VIRTIO_RNG_MAX_CHAIN_BYTES - 40000,
      40000 - (VIRTIO_RNG_MAX_CHAIN_BYTES - 40000),
    ).every((x) => x === 0xee),
  );
  assert.ok(d.mem.read(big.gpa + VIRTIO_RNG_MAX_CHAIN_BYTES, 4096).every((x) => x === 0xee));
});

Deno.test("readable buffers are ignored; a chain with nothing writable gets len 0", () => {
  const { d, source, handler } = setup();
  const r = d.buf(10, false);
  const w = d.buf(8, true);
  const h1 = d.add([r, w]);
  const h2 = d.add([d.buf(32, false)]);
  handler.notify(0);
  assert.deepEqual(d.takeUsed(), [{ id: h1, len: 8 }, { id: h2, len: 0 }]);
  assert.ok(d.mem.read(r.gpa, 10).every((x) => x === 0xee));
  assert.deepEqual(source.calls, [8]);
});

Deno.test("a failing source returns len 0, is logged, and the queue keeps going", () => {
  const { d, ctx, source, handler } = setup();
  source.fail = true;
  const h = d.add([d.buf(16, true)]);
  handler.notify(0);
  assert.deepEqual(d.takeUsed(), [{ id: h, len: 0 }]);
  assert.match(ctx.logs[0], /EIO/);
  source.fail = false;
  const h2 = d.add([d.buf(16, true)]);
  handler.notify(0);
  assert.deepEqual(d.takeUsed(), [{ id: h2, len: 16 }]);
});

Deno.test("a malformed ring throws VirtqueueError out of notify", () => {
  const { d, handler } = setup();
  d.add([{ gpa: RAM - 4, len: 16, write: true }]);
  assert.throws(() => handler.notify(0), VirtqueueError);
});

Deno.test("NO_INTERRUPT suppresses the interrupt; other or disabled queues are ignored", () => {
  const { d, ctx, handler } = setup();
  d.mem.writeU16(AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
  d.add([d.buf(4, true)]);
  handler.notify(1);
  assert.deepEqual(d.takeUsed(), []);
  handler.notify(0);
  assert.equal(d.takeUsed().length, 1);
  assert.deepEqual(ctx.interrupts, []);
  const none = createRngHandler(ctx, [null], new CountingSource());
  d.add([d.buf(4, true)]);
  none.notify(0);
  assert.deepEqual(d.takeUsed(), []);
});

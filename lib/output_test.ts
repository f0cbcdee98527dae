import assert from "node:assert/strict";
import { OutputRing } from "./output.ts";

const bytes = (n: number, from = 0) => Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);

Deno.test("output ring: bytes come out in order across the wrap, and only what fits goes in", () => {
  const r = new OutputRing(16);
  assert.equal(r.write(bytes(10)), 10);
  assert.deepEqual([...r.peek()], [...bytes(10)]);
  assert.equal(r.consume(10), false);
  // 12 bytes from offset 10: 6 up to the end, 6 from the start.
  assert.equal(r.write(bytes(12, 10)), 12);
  assert.equal(r.used, 12);
  assert.deepEqual([...r.peek()], [...bytes(6, 10)]);
  r.consume(6);
  assert.deepEqual([...r.peek()], [...bytes(6, 16)]);
  // 10 bytes of room are left for 14: the ring takes 10 and remembers a waiting producer.
  assert.equal(r.write(bytes(14, 22)), 10);
  assert.equal(r.free, 0);
  assert.equal(r.readyCount, 0);
  assert.equal(r.consume(6), true, "room made for the waiting producer");
  assert.equal(r.readyCount, 1);
  assert.equal(r.consume(4), false, "counted once");
});

Deno.test("output ring: the size must be a power of two; a received buffer shares the bytes", () => {
  assert.throws(() => new OutputRing(24), /power of two/);
  const a = new OutputRing(16);
  const b = new OutputRing(a.buffer);
  a.write(bytes(3));
  assert.deepEqual([...b.peek()], [0, 1, 2]);
});

/** A ring whose first look at the free space is taken just before the consumer empties it. */
class RaceRing extends OutputRing {
  #raced = false;
  override get free(): number {
    const f = super.free;
    if (!this.#raced && f === 0) {
      // The consumer (another thread) drains the ring right after this look,
      // before the producer has said that it waits.
      this.#raced = true;
      assert.equal(this.consume(this.used), false, "nobody waited yet");
    }
    return f;
  }
}

Deno.test("output ring: room made between the producer's look and its 'waiting' flag is not lost", () => {
  const r = new RaceRing(16);
  assert.equal(r.write(bytes(16)), 16);
  // The first look sees a full ring; meanwhile the consumer empties it. The
  // producer must either take bytes now or have a ready event coming: a
  // producer left waiting on an empty ring with no event would wait forever.
  const n = r.write(bytes(5, 16));
  assert.ok(n > 0 || r.readyCount > 0, `wrote ${n}, ready events ${r.readyCount}`);
  assert.equal(n, 5);
  assert.deepEqual([...r.peek()], [...bytes(5, 16)]);
});

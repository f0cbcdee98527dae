import assert from "node:assert/strict";
import {
  CONSOLE_CONFIG,
  type ConsoleBackend,
  createConsoleHandler,
  VIRTIO_CONSOLE_F,
  virtioConsoleModel,
} from "./console.ts";
import { featureBit, VIRTIO_ID, VIRTQ_DESC_F, VirtqueueError } from "./types.ts";
import { Driver, fakeContext, newMemory } from "./_testing.ts";

// ---------------------------------------------------------------------------
// Console fixtures.

const enc = new TextEncoder();
const dec = new TextDecoder();

class FakeConsole implements ConsoleBackend {
  fd: number | null = 9;
  /** Everything written. */
  out = "";
  /** Bytes the next writes take in all (Infinity: no limit). */
  room = Infinity;
  writeError: Error | null = null;
  /** Input waiting; null: closed. */
  input: Uint8Array | null = new Uint8Array(0);
  readError: Error | null = null;
  reads = 0;

  write(bytes: Uint8Array): number {
    if (this.writeError) throw this.writeError;
    const n = Math.min(bytes.length, this.room);
    this.room -= n;
    this.out += dec.decode(bytes.subarray(0, n));
    return n;
  }

  read(buf: Uint8Array): number {
    this.reads++;
    if (this.readError) throw this.readError;
    if (this.input === null) return -1;
    const n = Math.min(buf.length, this.input.length);
    buf.set(this.input.subarray(0, n));
    this.input = this.input.subarray(n);
    return n;
  }
}

function setup() {
  const mem = newMemory();
  const rx = new Driver(mem, 0x1000, 0x10000);
  const tx = new Driver(mem, 0x4000, 0x40000);
  const { ctx, interrupts, logs } = fakeContext(mem);
  const con = new FakeConsole();
  const h = createConsoleHandler(ctx, [rx.queue, tx.queue], con);
  return { mem, rx, tx, ctx, interrupts, logs, con, h };
}

// ---------------------------------------------------------------------------
// The model.

Deno.test("virtio-console model: identity, one port, no size (§5.3.1-5.3.3)", () => {
  const m = virtioConsoleModel({});
  assert.equal(m.deviceId, VIRTIO_ID.console);
  assert.equal(m.pciClass, 0x078000);
  assert.deepEqual(m.queueSizes, [256, 256]);
  assert.equal(m.features, 0n);
  assert.equal(m.configSize, 12);
  assert.equal(m.configWritable, undefined);
  const c = new Uint8Array(12).fill(0xee);
  m.initConfig(c);
  const v = new DataView(c.buffer);
  assert.equal(v.getUint16(CONSOLE_CONFIG.cols, true), 0);
  assert.equal(v.getUint16(CONSOLE_CONFIG.rows, true), 0);
  assert.equal(v.getUint32(CONSOLE_CONFIG.maxNrPorts, true), 1);
  assert.equal(v.getUint32(CONSOLE_CONFIG.emergWr, true), 0);
});

Deno.test("virtio-console model: SIZE with cols and rows (§5.3.4)", () => {
  const m = virtioConsoleModel({ cols: 132, rows: 43 });
  assert.equal(m.features, featureBit(VIRTIO_CONSOLE_F.size));
  assert.equal(m.features & featureBit(VIRTIO_CONSOLE_F.multiport), 0n);
  assert.equal(m.features & featureBit(VIRTIO_CONSOLE_F.emergWrite), 0n);
  const c = new Uint8Array(12);
  m.initConfig(c);
  const v = new DataView(c.buffer);
  assert.equal(v.getUint16(CONSOLE_CONFIG.cols, true), 132);
  assert.equal(v.getUint16(CONSOLE_CONFIG.rows, true), 43);
});

Deno.test("virtio-console model: bad sizes", () => {
  assert.throws(() => virtioConsoleModel({ cols: 80 }), RangeError);
  assert.throws(() => virtioConsoleModel({ rows: 25 }), RangeError);
  assert.throws(() => virtioConsoleModel({ cols: 0, rows: 25 }), RangeError);
  assert.throws(() => virtioConsoleModel({ cols: 80, rows: 65536 }), RangeError);
  assert.throws(() => virtioConsoleModel({ cols: 80.5, rows: 25 }), RangeError);
});

// ---------------------------------------------------------------------------
// Transmit.

Deno.test("virtio-console tx: bytes to the backend, buffers returned (§5.3.6)", () => {
  const { tx, con, h, interrupts } = setup();
  const a = tx.chain([{ data: enc.encode("hello, ") }]);
  const b = tx.chain([{ data: enc.encode("wor") }, { data: enc.encode("ld\n") }]);
  h.notify(1);
  assert.equal(con.out, "hello, world\n");
  assert.deepEqual(tx.takeUsed(), [{ id: a.head, len: 0 }, { id: b.head, len: 0 }]);
  assert.deepEqual(interrupts, [1]);
  assert.equal(h.stats.txBytes, 13);
  assert.equal(h.txPending, false);
});

Deno.test("virtio-console tx: a full backend holds the chain; retried on the next event", () => {
  const { tx, rx, con, h, interrupts } = setup();
  con.room = 3;
  const a = tx.chain([{ data: enc.encode("hel") }, { data: enc.encode("lo") }]);
  const b = tx.chain([{ data: enc.encode(" there") }]);
  h.notify(1);
  assert.equal(con.out, "hel");
  assert.equal(h.txPending, true);
  assert.deepEqual(tx.takeUsed(), []); // nothing returned, nothing lost
  assert.deepEqual(interrupts, []);
  // Still full: a retry changes nothing.
  h.notify(1);
  assert.equal(con.out, "hel");
  assert.equal(h.stats.txStalls, 2);
  // Room for 4 more: the first chain completes, the second is in flight.
  con.room = 4;
  h.ready!(9);
  assert.equal(con.out, "hello t");
  assert.deepEqual(tx.takeUsed(), [{ id: a.head, len: 0 }]);
  assert.deepEqual(interrupts, [1]);
  // A receive notification is an event too.
  con.room = Infinity;
  rx.add([{ writable: 16 }]);
  h.notify(0);
  assert.equal(con.out, "hello there");
  assert.deepEqual(tx.takeUsed(), [{ id: b.head, len: 0 }]);
  assert.equal(h.txPending, false);
  assert.equal(h.stats.txBytes, 11);
});

Deno.test("virtio-console tx: pollWritableFds() names outFd while output is held; ready() flushes", () => {
  const mem = newMemory();
  const rx = new Driver(mem, 0x1000, 0x10000);
  const tx = new Driver(mem, 0x4000, 0x40000);
  const { ctx, interrupts } = fakeContext(mem);
  const con = Object.assign(new FakeConsole(), { outFd: 42 });
  con.room = 0; // full: takes nothing at first
  const h = createConsoleHandler(ctx, [rx.queue, tx.queue], con);
  assert.deepEqual(h.pollWritableFds!(), []);
  const a = tx.chain([{ data: enc.encode("held ") }, { data: enc.encode("bytes") }]);
  h.notify(1);
  assert.equal(con.out, "");
  assert.equal(h.txPending, true);
  assert.deepEqual(tx.takeUsed(), []);
  assert.deepEqual(interrupts, []);
  assert.deepEqual(h.pollWritableFds!(), [42]);
  // The backend has room again: the worker saw fd 42 writable.
  con.room = Infinity;
  h.ready!(42);
  assert.equal(con.out, "held bytes");
  assert.deepEqual(tx.takeUsed(), [{ id: a.head, len: 0 }]);
  assert.deepEqual(interrupts, [1]);
  assert.equal(h.txPending, false);
  assert.deepEqual(h.pollWritableFds!(), []);
});

Deno.test("virtio-console tx: a throwing backend drops the chain's rest, counted", () => {
  const { tx, con, h, logs } = setup();
  con.writeError = new Error("EPIPE");
  tx.add([{ data: enc.encode("abc") }, { data: enc.encode("de") }]);
  h.notify(1);
  assert.equal(h.stats.txErrors, 1);
  assert.equal(h.stats.txDropped, 5);
  assert.equal(tx.takeUsed().length, 1);
  assert.ok(logs.some((l) => l.includes("EPIPE")));
  con.writeError = null;
  tx.add([{ data: enc.encode("ok") }]);
  h.notify(1);
  assert.equal(con.out, "ok");
});

Deno.test("virtio-console tx: a malformed ring throws VirtqueueError", () => {
  const { tx, h } = setup();
  tx.setDesc(0, 0x20000, 4, VIRTQ_DESC_F.next, 16); // next past the table
  tx.publish(0);
  assert.throws(() => h.notify(1), VirtqueueError);
});

// ---------------------------------------------------------------------------
// Receive.

Deno.test("virtio-console rx: input into the guest's buffers (§5.3.6)", () => {
  const { mem, rx, con, h, interrupts } = setup();
  const a = rx.chain([{ writable: 4 }]);
  const b = rx.chain([{ writable: 64 }]);
  con.input = enc.encode("ls -l\n");
  assert.deepEqual(h.pollFds!(), [9]);
  h.ready!(9);
  assert.deepEqual(rx.takeUsed(), [{ id: a.head, len: 4 }, { id: b.head, len: 2 }]);
  assert.equal(
    dec.decode(mem.read(a.addrs[0], 4)) + dec.decode(mem.read(b.addrs[0], 2)),
    "ls -l\n",
  );
  assert.deepEqual(interrupts, [0]);
  assert.equal(h.stats.rxBytes, 6);
  // Both buffers used: input is not polled until the guest posts more.
  assert.deepEqual(h.pollFds!(), []);
  // Nothing more now: the buffer waits, the fd stays polled.
  const c = rx.chain([{ writable: 64 }]);
  h.notify(0);
  h.ready!(9);
  assert.deepEqual(rx.takeUsed(), []);
  assert.deepEqual(h.pollFds!(), [9]);
  con.input = enc.encode("x");
  h.ready!(9);
  assert.deepEqual(rx.takeUsed(), [{ id: c.head, len: 1 }]);
});

Deno.test("virtio-console rx: no buffers stops polling input; notify(0) resumes", () => {
  const { rx, con, h } = setup();
  con.input = enc.encode("abc");
  h.ready!(9);
  assert.deepEqual(h.pollFds!(), []);
  assert.equal(con.reads, 0);
  const a = rx.chain([{ writable: 64 }]);
  h.notify(0);
  assert.deepEqual(rx.takeUsed(), [{ id: a.head, len: 3 }]);
  assert.deepEqual(h.pollFds!(), []); // its only buffer is used
  rx.add([{ writable: 64 }]);
  h.notify(0);
  assert.deepEqual(h.pollFds!(), [9]);
});

Deno.test("virtio-console rx: closed input is never polled again", () => {
  const { rx, con, h, logs } = setup();
  rx.add([{ writable: 64 }]);
  con.input = null;
  h.ready!(9);
  assert.deepEqual(h.pollFds!(), []);
  assert.ok(logs.some((l) => l.includes("closed")));
  rx.add([{ writable: 64 }]);
  h.notify(0);
  assert.deepEqual(h.pollFds!(), []);
  assert.deepEqual(rx.takeUsed(), []);
  assert.equal(con.reads, 1);
});

Deno.test("virtio-console rx: a failing read stops input", () => {
  const { rx, con, h } = setup();
  rx.add([{ writable: 64 }]);
  con.readError = new Error("EIO");
  h.ready!(9);
  assert.equal(h.stats.rxErrors, 1);
  assert.deepEqual(h.pollFds!(), []);
});

Deno.test("virtio-console rx: output-only backend and missing queues", () => {
  const { con, h } = setup();
  con.fd = null;
  assert.deepEqual(h.pollFds!(), []);
  const mem = newMemory();
  const { ctx } = fakeContext(mem);
  const none = createConsoleHandler(ctx, [null, null], new FakeConsole());
  none.notify(0);
  none.notify(1);
  assert.deepEqual(none.pollFds!(), []);
});

Deno.test("virtio-console rx: a malformed ring throws VirtqueueError", () => {
  const { rx, con, h } = setup();
  rx.setDesc(0, 0x20000, 8, VIRTQ_DESC_F.write | VIRTQ_DESC_F.next, 1);
  rx.setDesc(1, 0x20100, 8, 0, 0); // readable after writable (§2.7.4.2)
  rx.publish(0);
  con.input = enc.encode("a");
  assert.throws(() => h.ready!(9), VirtqueueError);
});

Deno.test("virtio-console: close() forgets chains in flight", () => {
  const { tx, con, h } = setup();
  con.room = 1;
  tx.add([{ data: enc.encode("abc") }]);
  h.notify(1);
  h.close!();
  assert.equal(h.txPending, false);
  assert.deepEqual(h.pollFds!(), []);
  con.room = Infinity;
  h.notify(1);
  assert.equal(con.out, "a");
});

import assert from "node:assert/strict";
import type { GuestMemory } from "../../lib/guest_memory.ts";
import {
  createNetHandler,
  ETH_HLEN,
  NET_CONFIG,
  NET_HDR_SIZE,
  NET_MAX_FRAME,
  type NetBackend,
  VIRTIO_NET_F,
  VIRTIO_NET_S_LINK_UP,
  virtioNetModel,
} from "./net.ts";
import {
  featureBit,
  VIRTIO_ID,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F,
  VirtqueueError,
} from "./types.ts";
import { Driver, fakeContext, newMemory, RAM } from "./_testing.ts";

// ---------------------------------------------------------------------------
// Net fixtures.

class FakeTap implements NetBackend {
  readonly fd = 42;
  sent: Uint8Array[] = [];
  inbox: Uint8Array[] = [];
  receives = 0;
  sendError: Error | null = null;
  receiveError: Error | null = null;

  send(frame: Uint8Array): void {
    if (this.sendError) throw this.sendError;
    this.sent.push(frame.slice());
  }

  receive(buf: Uint8Array): number {
    this.receives++;
    if (this.receiveError) throw this.receiveError;
    const f = this.inbox.shift();
    if (!f) return 0;
    const n = Math.min(f.length, buf.length); // read(2) truncates
    buf.set(f.subarray(0, n));
    return n;
  }
}

function frame(len: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (i * 7 + seed) & 0xff);
}

function header(gsoType = 0): Uint8Array {
  const h = new Uint8Array(NET_HDR_SIZE);
  h[0] = 1; // NEEDS_CSUM: ignored
  h[1] = gsoType;
  return h;
}

function setup(opts: { features?: bigint; config?: Uint8Array } = {}) {
  const mem = newMemory();
  const rx = new Driver(mem, 0x1000, 0x10000);
  const tx = new Driver(mem, 0x4000, 0x40000);
  const { ctx, interrupts, logs } = fakeContext(mem, opts.features, opts.config);
  const tap = new FakeTap();
  const h = createNetHandler(ctx, [rx.queue, tx.queue], tap);
  return { mem, rx, tx, ctx, interrupts, logs, tap, h };
}

// ---------------------------------------------------------------------------
// The model.

Deno.test("virtio-net model: identity, queues, features (§5.1.1-5.1.3)", () => {
  const m = virtioNetModel({ mac: Uint8Array.of(2, 0, 0, 0, 0, 1) });
  assert.equal(m.deviceId, VIRTIO_ID.net);
  assert.equal(m.pciClass, 0x020000);
  assert.deepEqual(m.queueSizes, [256, 256]);
  assert.equal(m.features, featureBit(VIRTIO_NET_F.mac) | featureBit(VIRTIO_NET_F.status));
  const withMtu = virtioNetModel({ mac: new Uint8Array(6), mtu: 9000 });
  assert.ok(withMtu.features & featureBit(VIRTIO_NET_F.mtu));
  for (
    const bit of ["csum", "guestCsum", "guestTso4", "hostTso4", "mrgRxbuf", "ctrlVq", "mq"] as const
  ) {
    assert.equal(withMtu.features & featureBit(VIRTIO_NET_F[bit]), 0n, bit);
  }
  assert.equal(m.configWritable, undefined);
});

Deno.test("virtio-net model: configuration bytes (§5.1.4)", () => {
  const mac = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
  const m = virtioNetModel({ mac, mtu: 1400 });
  assert.equal(m.configSize, 12);
  const c = new Uint8Array(m.configSize).fill(0xee);
  m.initConfig(c);
  assert.deepEqual([...c.subarray(NET_CONFIG.mac, NET_CONFIG.mac + 6)], [...mac]);
  const v = new DataView(c.buffer);
  assert.equal(v.getUint16(NET_CONFIG.status, true), VIRTIO_NET_S_LINK_UP);
  assert.equal(v.getUint16(NET_CONFIG.maxVirtqueuePairs, true), 1);
  assert.equal(v.getUint16(NET_CONFIG.mtu, true), 1400);
  // The model keeps its own copy of the MAC.
  mac[0] = 0;
  m.initConfig(c);
  assert.equal(c[0], 0x52);
  const plain = new Uint8Array(12);
  virtioNetModel({ mac }).initConfig(plain);
  assert.equal(new DataView(plain.buffer).getUint16(NET_CONFIG.mtu, true), 0);
});

Deno.test("virtio-net model: bad MAC or MTU", () => {
  assert.throws(() => virtioNetModel({ mac: new Uint8Array(5) }), RangeError);
  assert.throws(() => virtioNetModel({ mac: new Uint8Array(6), mtu: 67 }), RangeError);
  assert.throws(() => virtioNetModel({ mac: new Uint8Array(6), mtu: 65536 }), RangeError);
  assert.throws(() => virtioNetModel({ mac: new Uint8Array(6), mtu: 1500.5 }), RangeError);
});

// ---------------------------------------------------------------------------
// Transmit.

Deno.test("virtio-net tx: header skipped, frame sent, buffer returned empty (§5.1.6.2)", () => {
  const { tx, tap, h, interrupts } = setup();
  const f1 = frame(60, 1);
  const f2 = frame(1514, 2);
  const a = tx.chain([{ data: header() }, { data: f1 }]);
  // Header and frame in one buffer, and a frame split across two.
  const both = new Uint8Array(NET_HDR_SIZE + f2.length);
  both.set(f2, NET_HDR_SIZE);
  const b = tx.chain([{ data: both.subarray(0, 100) }, { data: both.subarray(100) }]);
  h.notify(1);
  assert.deepEqual(tap.sent, [f1, f2]);
  assert.deepEqual(tx.takeUsed(), [{ id: a.head, len: 0 }, { id: b.head, len: 0 }]);
  assert.deepEqual(interrupts, [1]);
  assert.equal(h.stats.txFrames, 2);
  assert.equal(h.stats.txBytes, 60 + 1514);
  // Nothing new: no interrupt.
  h.notify(1);
  assert.deepEqual(interrupts, [1]);
});

Deno.test("virtio-net tx: short header, runt, oversized and GSO frames are dropped", () => {
  const { tx, tap, h, interrupts } = setup();
  tx.add([{ data: new Uint8Array(8) }]);
  tx.add([{ data: header() }, { data: frame(ETH_HLEN - 1) }]);
  tx.add([{ data: header() }, { data: frame(NET_MAX_FRAME + 1) }]);
  tx.add([{ data: header(1) }, { data: frame(100) }]); // GSO_TCPV4
  tx.add([{ data: header(0x80) }, { data: frame(100) }]); // GSO_NONE | ECN: plain
  tx.add([{ data: header() }, { data: frame(NET_MAX_FRAME) }]); // the largest allowed
  h.notify(1);
  assert.equal(h.stats.txDropped, 4);
  assert.deepEqual(tap.sent.map((f) => f.length), [100, NET_MAX_FRAME]);
  assert.deepEqual(tx.takeUsed().map((u) => u.len), [0, 0, 0, 0, 0, 0]);
  assert.deepEqual(interrupts, [1]);
});

Deno.test("virtio-net tx: a failing backend drops and counts", () => {
  const { tx, tap, h, logs } = setup();
  tap.sendError = new Error("ENOBUFS");
  tx.add([{ data: header() }, { data: frame(60) }]);
  h.notify(1);
  assert.equal(h.stats.txErrors, 1);
  assert.equal(h.stats.txFrames, 0);
  assert.equal(tx.takeUsed().length, 1);
  assert.ok(logs.some((l) => l.includes("ENOBUFS")));
});

Deno.test("virtio-net tx: NO_INTERRUPT suppresses the interrupt (§2.7.7)", () => {
  const { tx, h, interrupts } = setup();
  tx.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  tx.add([{ data: header() }, { data: frame(60) }]);
  h.notify(1);
  assert.equal(tx.takeUsed().length, 1);
  assert.deepEqual(interrupts, []);
});

Deno.test("virtio-net tx: a malformed ring throws VirtqueueError", () => {
  const { tx, h } = setup();
  tx.setDesc(0, RAM - 8, 64, 0, 0); // runs past the end of RAM
  tx.publish(0);
  assert.throws(() => h.notify(1), VirtqueueError);
});

// ---------------------------------------------------------------------------
// Receive.

function readRx(mem: GuestMemory, addr: number, len: number) {
  const bytes = mem.read(addr, len);
  return { hdr: bytes.subarray(0, NET_HDR_SIZE), frame: bytes.subarray(NET_HDR_SIZE) };
}

Deno.test("virtio-net rx: frames behind a zeroed header, num_buffers 1 (§5.1.6.4)", () => {
  const { mem, rx, tap, h, interrupts } = setup();
  const a = rx.chain([{ writable: 1526 }]);
  const b = rx.chain([{ writable: 1526 }]);
  const f1 = frame(60, 3);
  const f2 = frame(1514, 4);
  tap.inbox.push(f1, f2);
  assert.deepEqual(h.pollFds!(), [42]);
  h.ready!(42);
  assert.deepEqual(rx.takeUsed(), [
    { id: a.head, len: NET_HDR_SIZE + 60 },
    { id: b.head, len: NET_HDR_SIZE + 1514 },
  ]);
  const r1 = readRx(mem, a.addrs[0], NET_HDR_SIZE + 60);
  assert.deepEqual([...r1.hdr], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
  assert.deepEqual(r1.frame, f1);
  assert.deepEqual(readRx(mem, b.addrs[0], NET_HDR_SIZE + 1514).frame, f2);
  assert.deepEqual(interrupts, [0]);
  assert.equal(h.stats.rxFrames, 2);
  assert.equal(h.stats.rxBytes, 60 + 1514);
});

Deno.test("virtio-net rx: header and frame in separate buffers", () => {
  const { mem, rx, tap, h } = setup();
  const a = rx.chain([{ writable: NET_HDR_SIZE }, { writable: 100 }, { writable: 1500 }]);
  const f = frame(300, 9);
  tap.inbox.push(f);
  h.ready!(42);
  assert.deepEqual(rx.takeUsed(), [{ id: a.head, len: NET_HDR_SIZE + 300 }]);
  assert.equal(mem.readU16(a.addrs[0] + 10), 1);
  const got = new Uint8Array([...mem.read(a.addrs[1], 100), ...mem.read(a.addrs[2], 200)]);
  assert.deepEqual(got, f);
});

Deno.test("virtio-net rx: no buffers stops polling the tap; notify(0) resumes", () => {
  const { rx, tap, h, interrupts } = setup();
  tap.inbox.push(frame(60, 1), frame(60, 2));
  assert.deepEqual(h.pollFds!(), [42]);
  h.ready!(42);
  assert.deepEqual(h.pollFds!(), []);
  assert.equal(tap.receives, 0); // the frames wait in the tap
  assert.equal(tap.inbox.length, 2);
  const a = rx.chain([{ writable: 1526 }]);
  h.notify(0);
  assert.deepEqual(rx.takeUsed(), [{ id: a.head, len: NET_HDR_SIZE + 60 }]);
  assert.deepEqual(interrupts, [0]);
  // The only buffer is used: starved again, the second frame still waits.
  assert.deepEqual(h.pollFds!(), []);
  assert.equal(tap.inbox.length, 1);
  rx.add([{ writable: 1526 }]);
  h.notify(0);
  assert.equal(rx.takeUsed().length, 1);
  assert.equal(tap.inbox.length, 0);
});

Deno.test("virtio-net rx: buffers but nothing from the tap keeps the tap polled", () => {
  const { rx, h, interrupts } = setup();
  rx.add([{ writable: 1526 }]);
  h.notify(0);
  h.ready!(42);
  assert.deepEqual(h.pollFds!(), [42]);
  assert.deepEqual(rx.takeUsed(), []);
  assert.deepEqual(interrupts, []);
});

Deno.test("virtio-net rx: a frame larger than the buffer is dropped, the buffer kept", () => {
  const { mem, rx, tap, h } = setup();
  const a = rx.chain([{ writable: 200 }]);
  const small = frame(100, 5);
  tap.inbox.push(frame(500), frame(NET_HDR_SIZE - 1), small);
  h.ready!(42);
  assert.equal(h.stats.rxDropped, 2); // too big, and a runt
  assert.deepEqual(rx.takeUsed(), [{ id: a.head, len: NET_HDR_SIZE + 100 }]);
  assert.deepEqual(readRx(mem, a.addrs[0], NET_HDR_SIZE + 100).frame, small);
});

Deno.test("virtio-net rx: a frame over the largest is dropped (truncated by the read)", () => {
  const { rx, tap, h } = setup();
  rx.add([{ writable: 0x20000 }]);
  tap.inbox.push(frame(NET_MAX_FRAME + 100), frame(NET_MAX_FRAME));
  h.ready!(42);
  assert.equal(h.stats.rxDropped, 1);
  assert.deepEqual(rx.takeUsed().map((u) => u.len), [NET_HDR_SIZE + NET_MAX_FRAME]);
});

Deno.test("virtio-net rx: a buffer too small for any frame is returned empty", () => {
  const { rx, tap, h, interrupts } = setup();
  const tiny = rx.chain([{ writable: NET_HDR_SIZE + ETH_HLEN - 1 }]);
  const ok = rx.chain([{ writable: 1526 }]);
  tap.inbox.push(frame(60));
  h.ready!(42);
  assert.deepEqual(rx.takeUsed(), [
    { id: tiny.head, len: 0 },
    { id: ok.head, len: NET_HDR_SIZE + 60 },
  ]);
  assert.equal(h.stats.rxBadBuffers, 1);
  assert.deepEqual(interrupts, [0]);
});

Deno.test("virtio-net rx: with MTU negotiated, frames over mtu + 18 are dropped (§5.1.4.1)", () => {
  const config = new Uint8Array(12);
  virtioNetModel({ mac: new Uint8Array(6), mtu: 1000 }).initConfig(config);
  const { rx, tap, h } = setup({ features: featureBit(VIRTIO_NET_F.mtu), config });
  rx.add([{ writable: 4096 }]);
  tap.inbox.push(frame(1000 + 18 + 1), frame(1000 + 18));
  h.ready!(42);
  assert.equal(h.stats.rxDropped, 1);
  assert.deepEqual(rx.takeUsed().map((u) => u.len), [NET_HDR_SIZE + 1018]);
});

Deno.test("virtio-net rx: receive errors are counted; many in a row stop polling", () => {
  const { rx, tap, h } = setup();
  rx.add([{ writable: 1526 }]);
  tap.receiveError = new Error("EIO");
  for (let i = 0; i < 63; i++) h.ready!(42);
  assert.equal(h.stats.rxErrors, 63);
  assert.deepEqual(h.pollFds!(), [42]);
  h.ready!(42);
  assert.deepEqual(h.pollFds!(), []);
  // The buffer was kept, not lost.
  tap.receiveError = null;
  assert.deepEqual(rx.takeUsed(), []);
});

Deno.test("virtio-net rx: a malformed receive ring throws VirtqueueError", () => {
  const { rx, tap, h } = setup();
  rx.setDesc(3, 0x20000, 1526, VIRTQ_DESC_F.write | VIRTQ_DESC_F.next, 3); // a loop
  rx.publish(3);
  tap.inbox.push(frame(60));
  assert.throws(() => h.ready!(42), VirtqueueError);
});

Deno.test("virtio-net: with EVENT_IDX, going idle arms avail_event (§2.7.10)", () => {
  const mem = newMemory();
  const rx = new Driver(mem, 0x1000, 0x10000, 16, true);
  const tx = new Driver(mem, 0x4000, 0x40000, 16, true);
  const { ctx } = fakeContext(mem);
  const tap = new FakeTap();
  const h = createNetHandler(ctx, [rx.queue, tx.queue], tap);
  const availEvent = (d: Driver) => mem.readU16(d.used + 4 + 8 * d.size);
  rx.add([{ writable: 1526 }]);
  tap.inbox.push(frame(60));
  h.ready!(42);
  assert.equal(rx.takeUsed().length, 1);
  assert.deepEqual(h.pollFds!(), []); // its only buffer is used
  assert.equal(availEvent(rx), 1); // the driver kicks when it makes entry 1 available
  tx.add([{ data: header() }, { data: frame(60) }]);
  tx.add([{ data: header() }, { data: frame(60) }]);
  h.notify(1);
  assert.equal(availEvent(tx), 2);
});

Deno.test("virtio-net: a long transmit burst lets receive in", () => {
  const { rx, tx, tap, h } = setup();
  rx.add([{ writable: 1526 }]);
  tap.inbox.push(frame(60));
  // 16 chains fill the queue: the handler serves receive after them.
  for (let i = 0; i < 16; i++) tx.add([{ data: header() }, { data: frame(60, i) }]);
  h.notify(1);
  assert.equal(h.stats.txFrames, 16);
  assert.equal(h.stats.rxFrames, 1);
  assert.equal(rx.takeUsed().length, 1);
});

Deno.test("virtio-net: missing queues and close()", () => {
  const mem = newMemory();
  const { ctx } = fakeContext(mem);
  const tap = new FakeTap();
  const none = createNetHandler(ctx, [null, null], tap);
  none.notify(0);
  none.notify(1);
  assert.deepEqual(none.pollFds!(), []);

  const { rx, h } = setup();
  rx.add([{ writable: 1526 }]);
  h.close!();
  assert.deepEqual(h.pollFds!(), []);
  h.notify(0);
  h.ready!(42);
  assert.deepEqual(rx.takeUsed(), []);
});

import assert from "node:assert/strict";
import { GuestMemory } from "../../lib/guest_memory.ts";
import { ChainReader, ChainWriter, SplitQueue } from "./queue.ts";
import {
  type DescriptorChain,
  type QueueLayout,
  type QueueMemory,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F,
  VirtqueueError,
} from "./types.ts";

const { next: NEXT, write: WRITE, indirect: INDIRECT } = VIRTQ_DESC_F;

// Guest RAM for the unit tests: two ranges with a hole between them, and a
// tail past the last range, both filled with a sentinel that must survive.
const LOW_END = 0x10000;
const HIGH_START = 0x20000;
const HIGH_END = 0x30000;
const SPAN_END = 0x31000;
const SENTINEL = 0xa5;

/** A fresh guest memory, the hole and the tail filled with SENTINEL. */
function setup(): { span: Uint8Array; mem: GuestMemory } {
  const span = new Uint8Array(SPAN_END);
  span.fill(SENTINEL, LOW_END, HIGH_START);
  span.fill(SENTINEL, HIGH_END, SPAN_END);
  const mem = new GuestMemory(span, [
    { name: "low", gpa: 0, size: LOW_END },
    { name: "high", gpa: HIGH_START, size: HIGH_END - HIGH_START },
  ]);
  return { span, mem };
}

/** Whether the hole and the tail still hold only SENTINEL. */
function outsideUntouched(span: Uint8Array): boolean {
  return span.subarray(LOW_END, HIGH_START).every((b) => b === SENTINEL) &&
    span.subarray(HIGH_END, SPAN_END).every((b) => b === SENTINEL);
}

/** A layout at the usual test addresses. */
function layoutOf(size: number, opts: Partial<QueueLayout> = {}): QueueLayout {
  return {
    size,
    desc: 0x1000,
    avail: 0x3000,
    used: 0x4000,
    eventIdx: false,
    indirect: false,
    ...opts,
  };
}

/** The driver side: writes descriptors, tables and the avail ring; reads the used ring. */
class Driver {
  readonly mem: GuestMemory;
  readonly layout: QueueLayout;
  availIdx = 0;

  constructor(mem: GuestMemory, layout: QueueLayout) {
    this.mem = mem;
    this.layout = layout;
  }

  /** Writes descriptor `i` of the descriptor table at `table` (the ring's by default). */
  desc(
    i: number,
    addr: number | bigint,
    len: number,
    flags = 0,
    next = 0,
    table = this.layout.desc,
  ): void {
    const at = table + 16 * i;
    this.mem.writeU64(at, BigInt(addr));
    this.mem.writeU32(at + 8, len);
    this.mem.writeU16(at + 12, flags);
    this.mem.writeU16(at + 14, next);
  }

  /** Makes the chain at `head` available: ring entry first, then idx (§2.7.13). */
  offer(...heads: number[]): void {
    for (const head of heads) {
      this.mem.writeU16(this.layout.avail + 4 + 2 * (this.availIdx % this.layout.size), head);
      this.availIdx = (this.availIdx + 1) & 0xffff;
    }
    this.setAvailIdx(this.availIdx);
  }

  setAvailIdx(idx: number): void {
    this.availIdx = idx & 0xffff;
    this.mem.writeU16(this.layout.avail + 2, this.availIdx);
  }

  availFlags(flags: number): void {
    this.mem.writeU16(this.layout.avail, flags);
  }

  usedEvent(v: number): void {
    this.mem.writeU16(this.layout.avail + 4 + 2 * this.layout.size, v);
  }

  usedIdx(): number {
    return this.mem.readU16(this.layout.used + 2);
  }

  usedElem(slot: number): { id: number; len: number } {
    const at = this.layout.used + 4 + 8 * slot;
    return { id: this.mem.readU32(at), len: this.mem.readU32(at + 4) };
  }

  availEvent(): number {
    return this.mem.readU16(this.layout.used + 4 + 8 * this.layout.size);
  }
}

/** A queue and its driver over fresh memory. */
function rig(
  size = 8,
  opts: Partial<QueueLayout> = {},
): { span: Uint8Array; mem: GuestMemory; q: SplitQueue; d: Driver } {
  const { span, mem } = setup();
  const layout = layoutOf(size, opts);
  return { span, mem, q: new SplitQueue(mem, layout), d: new Driver(mem, layout) };
}

/** Pops a chain that must be there. */
function popSome(q: SplitQueue): DescriptorChain {
  const chain = q.pop();
  assert.ok(chain !== null, "a chain was expected");
  return chain;
}

// ---------------------------------------------------------------------------
// Layout validation.

Deno.test("constructor accepts valid layouts, sizes 1..32768", () => {
  const { mem } = setup();
  for (const size of [1, 2, 4, 256, 1024]) {
    const q = new SplitQueue(mem, layoutOf(size, { desc: 0x20000, avail: 0x0, used: 0x8000 }));
    assert.equal(q.size, size);
    assert.equal(q.lastAvail, 0);
    assert.equal(q.usedIdx, 0);
  }
  // The largest queue: 512 KiB of descriptors.
  const span = new Uint8Array(0x100000);
  const big = new GuestMemory(span, [{ name: "ram", gpa: 0, size: span.length }]);
  const q = new SplitQueue(big, {
    size: 32768,
    desc: 0,
    avail: 0x80000,
    used: 0x90000,
    eventIdx: true,
    indirect: true,
  });
  assert.equal(q.size, 32768);
});

Deno.test("constructor refuses bad sizes and misaligned areas", () => {
  const { mem } = setup();
  for (const size of [0, 3, 6, 100, 65536, 1.5, -4, NaN]) {
    assert.throws(() => new SplitQueue(mem, layoutOf(size)), VirtqueueError, `size ${size}`);
  }
  for (const desc of [0x1008, 0x1001, 0x1002, 0x1004]) {
    assert.throws(() => new SplitQueue(mem, layoutOf(8, { desc })), VirtqueueError);
  }
  assert.throws(() => new SplitQueue(mem, layoutOf(8, { avail: 0x3001 })), VirtqueueError);
  for (const used of [0x4001, 0x4002]) {
    assert.throws(() => new SplitQueue(mem, layoutOf(8, { used })), VirtqueueError);
  }
  for (const bad of [-16, 2 ** 53, Infinity]) {
    assert.throws(() => new SplitQueue(mem, layoutOf(8, { desc: bad })), VirtqueueError);
  }
  // Looser alignments are enough for the rings (§2.7).
  new SplitQueue(mem, layoutOf(8, { avail: 0x3002, used: 0x4004 }));
});

Deno.test("constructor refuses areas outside RAM, event words included", () => {
  const { mem } = setup();
  // Descriptor table crossing into the hole, in the hole, past the end.
  for (const desc of [LOW_END - 0x40, LOW_END, HIGH_END - 0x40, HIGH_END]) {
    assert.throws(() => new SplitQueue(mem, layoutOf(8, { desc })), VirtqueueError);
  }
  new SplitQueue(mem, layoutOf(8, { desc: LOW_END - 0x80 }));
  // Driver area: 4 + 2*8 = 20 bytes, 22 with used_event.
  const avail = LOW_END - 20;
  new SplitQueue(mem, layoutOf(8, { avail }));
  assert.throws(() => new SplitQueue(mem, layoutOf(8, { avail, eventIdx: true })), VirtqueueError);
  new SplitQueue(mem, layoutOf(8, { avail: avail - 2, eventIdx: true }));
  // Device area: 4 + 8*8 = 68 bytes, 70 with avail_event.
  const used = HIGH_END - 68;
  new SplitQueue(mem, layoutOf(8, { used }));
  assert.throws(() => new SplitQueue(mem, layoutOf(8, { used, eventIdx: true })), VirtqueueError);
  new SplitQueue(mem, layoutOf(8, { used: used - 4, eventIdx: true }));
});

// ---------------------------------------------------------------------------
// Well-formed chains.

Deno.test("a simple chain is popped, then pushed into the used ring", () => {
  const { q, d, span } = rig();
  d.desc(3, 0x8000, 100);
  assert.equal(q.pop(), null);
  d.offer(3);
  assert.equal(q.pending(), 1);
  const chain = popSome(q);
  assert.deepEqual(chain, {
    head: 3,
    readable: [{ gpa: 0x8000, len: 100 }],
    writable: [],
    readableLength: 100,
    writableLength: 0,
  });
  assert.equal(q.lastAvail, 1);
  assert.equal(q.pending(), 0);
  assert.equal(q.pop(), null);
  q.push(3, 0);
  assert.equal(q.usedIdx, 1);
  assert.equal(d.usedIdx(), 1);
  assert.deepEqual(d.usedElem(0), { id: 3, len: 0 });
  assert.ok(outsideUntouched(span));
});

Deno.test("readable then writable buffers, read and written across segments", () => {
  const { q, d, mem } = rig();
  // 0 -> 5 -> 2 -> 7: two readable (in low and high RAM), two writable.
  d.desc(0, 0x8000, 3, NEXT, 5);
  d.desc(5, 0x20100, 5, NEXT, 2);
  d.desc(2, 0x9000, 4, NEXT | WRITE, 7);
  d.desc(7, 0x20200, 6, WRITE);
  mem.write(0x8000, new Uint8Array([1, 2, 3]));
  mem.write(0x20100, new Uint8Array([4, 5, 6, 7, 8]));
  d.offer(0);
  const chain = popSome(q);
  assert.equal(chain.head, 0);
  assert.deepEqual(chain.readable, [{ gpa: 0x8000, len: 3 }, { gpa: 0x20100, len: 5 }]);
  assert.deepEqual(chain.writable, [{ gpa: 0x9000, len: 4 }, { gpa: 0x20200, len: 6 }]);
  assert.equal(chain.readableLength, 8);
  assert.equal(chain.writableLength, 10);

  const r = new ChainReader(mem, chain);
  assert.equal(r.remaining, 8);
  assert.deepEqual(Array.from(r.read(2)), [1, 2]);
  const views = r.views(3);
  assert.deepEqual(views.map((v) => Array.from(v)), [[3], [4, 5]]);
  views[1][0] = 40; // live views
  assert.equal(mem.readU8(0x20100), 40);
  r.skip(1);
  const dst = new Uint8Array(5);
  assert.equal(r.readInto(dst), 2);
  assert.deepEqual(Array.from(dst), [7, 8, 0, 0, 0]);
  assert.equal(r.remaining, 0);
  assert.equal(r.read(10).length, 0);
  assert.deepEqual(r.views(4), []);
  r.skip(4);
  assert.throws(() => r.read(-1), RangeError);

  const w = new ChainWriter(mem, chain);
  assert.equal(w.remaining, 10);
  assert.equal(w.write(new Uint8Array([9, 9, 9])), 3);
  const wv = w.views(3);
  assert.deepEqual(wv.map((v) => v.length), [1, 2]);
  wv[0][0] = 0xaa;
  wv[1].set([0xbb, 0xcc]);
  assert.equal(w.written, 6);
  assert.equal(w.write(new Uint8Array([1, 2, 3, 4, 5, 6])), 4);
  assert.equal(w.written, 10);
  assert.equal(w.remaining, 0);
  assert.equal(w.write(new Uint8Array([1])), 0);
  assert.deepEqual(Array.from(mem.read(0x9000, 4)), [9, 9, 9, 0xaa]);
  assert.deepEqual(Array.from(mem.read(0x20200, 6)), [0xbb, 0xcc, 1, 2, 3, 4]);
  q.push(chain.head, w.written);
  assert.deepEqual(d.usedElem(0), { id: 0, len: 10 });
});

Deno.test("zero-length descriptors are skipped", () => {
  const { q, d } = rig();
  d.desc(0, 0, 0, NEXT, 1);
  d.desc(1, 0x8000, 4, NEXT, 2);
  // A zero-length buffer is never touched, so its address does not matter.
  d.desc(2, 0xdead_beef_0000n, 0, NEXT | WRITE, 3);
  d.desc(3, 0x9000, 2, WRITE);
  d.offer(0);
  const chain = popSome(q);
  assert.deepEqual(chain.readable, [{ gpa: 0x8000, len: 4 }]);
  assert.deepEqual(chain.writable, [{ gpa: 0x9000, len: 2 }]);
});

Deno.test("indirect tables are expanded, after direct descriptors too", () => {
  const { q, d, mem } = rig(4, { indirect: true });
  const table = 0x6000;
  // Entries chained out of order: 0 -> 2 -> 1.
  d.desc(0, 0x8000, 16, NEXT, 2, table);
  d.desc(2, 0x8100, 8, NEXT | WRITE, 1, table);
  d.desc(1, 0x20000, 1, WRITE, 0, table);
  // The WRITE flag on the descriptor naming a table is ignored (§2.7.5.3.2).
  d.desc(1, table, 48, INDIRECT | WRITE);
  // A direct readable descriptor followed by an indirect one.
  d.desc(2, 0x7000, 2, NEXT, 3);
  d.desc(3, table, 48, INDIRECT);
  d.offer(1, 2);
  const a = popSome(q);
  assert.equal(a.head, 1);
  assert.deepEqual(a.readable, [{ gpa: 0x8000, len: 16 }]);
  assert.deepEqual(a.writable, [{ gpa: 0x8100, len: 8 }, { gpa: 0x20000, len: 1 }]);
  const b = popSome(q);
  assert.equal(b.head, 2);
  assert.deepEqual(b.readable, [{ gpa: 0x7000, len: 2 }, { gpa: 0x8000, len: 16 }]);
  assert.equal(b.writableLength, 9);
  // A table longer than the queue is fine: its own entry count bounds it.
  const long = 0x6800;
  for (let i = 0; i < 10; i++) d.desc(i, 0x8000 + i, 1, i < 9 ? NEXT : 0, i + 1, long);
  d.desc(0, long, 160, INDIRECT);
  d.offer(0);
  assert.equal(popSome(q).readable.length, 10);
  q.push(1, 9);
  q.push(2, 9);
  q.push(0, 0);
  assert.equal(mem.readU16(0x4002), 3);
});

// ---------------------------------------------------------------------------
// Notifications.

Deno.test("without event idx, NO_INTERRUPT suppresses interrupts", () => {
  const { q, d } = rig();
  d.desc(0, 0x8000, 1);
  assert.equal(q.shouldInterrupt(), false, "nothing pushed");
  d.offer(0);
  q.push(popSome(q).head, 0);
  assert.equal(q.shouldInterrupt(), true);
  assert.equal(q.shouldInterrupt(), false, "nothing pushed since");
  d.availFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  d.offer(0);
  q.push(popSome(q).head, 0);
  assert.equal(q.shouldInterrupt(), false);
  d.availFlags(0);
  q.push(0, 0);
  assert.equal(q.shouldInterrupt(), true);
  // armNotification is a no-op without event idx.
  const before = q.usedIdx;
  q.armNotification();
  assert.equal(d.availEvent(), 0);
  assert.equal(q.usedIdx, before);
});

Deno.test("with event idx, used_event decides and avail flags are ignored", () => {
  const { q, d } = rig(8, { eventIdx: true });
  d.desc(0, 0x8000, 1);
  d.availFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  // used_event = 0: interrupt when used idx moves past 0 (to 1).
  d.usedEvent(0);
  q.push(0, 0);
  assert.equal(q.shouldInterrupt(), true);
  // used_event still 0: idx 1 -> 2 does not cross it.
  q.push(0, 0);
  assert.equal(q.shouldInterrupt(), false);
  // used_event = 4: pushes to 3 do not, then 3 -> 6 crosses 5 (event + 1).
  d.usedEvent(4);
  q.push(0, 0);
  assert.equal(q.shouldInterrupt(), false);
  q.push(0, 0);
  q.push(0, 0);
  q.push(0, 0);
  assert.equal(q.usedIdx, 6);
  assert.equal(q.shouldInterrupt(), true);
  assert.equal(q.shouldInterrupt(), false, "nothing pushed since");
  // Across the 16-bit wrap: used_event 0xffff, idx ... -> 0 crosses.
  const { q: w, d: wd } = rig(4, { eventIdx: true });
  for (let i = 0; i < 0xfffe; i++) w.push(0, 0);
  wd.usedEvent(0xfffe);
  assert.equal(w.shouldInterrupt(), false, "used_event beyond the new idx");
  w.push(0, 0);
  w.push(0, 0);
  assert.equal(w.usedIdx, 0);
  assert.equal(w.shouldInterrupt(), true);
  // 2^16 pushes between two calls: the window covers every used_event.
  for (let i = 0; i < 0x10000; i++) w.push(0, 0);
  assert.equal(w.usedIdx, 0);
  wd.usedEvent(0x1234);
  assert.equal(w.shouldInterrupt(), true);
});

Deno.test("armNotification writes avail_event = lastAvail", () => {
  const { q, d } = rig(8, { eventIdx: true });
  d.desc(0, 0x8000, 1);
  q.armNotification();
  assert.equal(d.availEvent(), 0);
  d.offer(0, 0, 0);
  popSome(q);
  popSome(q);
  q.armNotification();
  assert.equal(d.availEvent(), 2);
  assert.equal(q.pending(), 1);
});

// ---------------------------------------------------------------------------
// Indices.

Deno.test("16-bit indices wrap, pending() follows them", () => {
  const { q, d } = rig(4);
  d.desc(0, 0x8000, 1);
  d.desc(1, 0x8000, 1);
  for (let i = 0; i < 70000; i++) {
    d.offer(i & 1);
    if ((i & 3) === 0) d.offer(0);
    assert.equal(q.pending(), (i & 3) === 0 ? 2 : 1);
    while (q.pending() > 0) {
      const c = popSome(q);
      q.push(c.head, i & 0xff);
    }
    assert.equal(q.lastAvail, d.availIdx);
    assert.equal(q.usedIdx, d.usedIdx());
  }
  assert.equal(q.lastAvail, (70000 + 17500) & 0xffff);
  const last = (q.usedIdx - 1) & 3;
  assert.deepEqual(d.usedElem(last), { id: 69999 & 1, len: 69999 & 0xff });
});

Deno.test("pending() counts up to the queue size, and throws past it", () => {
  const { q, d } = rig(4);
  for (let n = 0; n <= 4; n++) {
    d.setAvailIdx(n);
    assert.equal(q.pending(), n);
  }
  for (const idx of [5, 0xffff]) {
    d.setAvailIdx(idx);
    assertVirtqueueError(() => q.pending(), /more than the queue size 4/, `pending at ${idx}`);
    assertVirtqueueError(() => q.pop(), /more than the queue size 4/, `pop at ${idx}`);
  }
  assert.equal(q.lastAvail, 0);
});

// ---------------------------------------------------------------------------
// Malformed rings: each is a VirtqueueError, and the queue does not advance.

/** Asserts that `fn` throws a VirtqueueError whose message matches `why`. */
function assertVirtqueueError(fn: () => unknown, why: RegExp, what: string): void {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof VirtqueueError, `${what}: ${e}`);
    assert.match(e.message, why, what);
    return true;
  });
}

/** Offers `head` and expects pop() to throw VirtqueueError, leaving lastAvail alone. */
function assertBadChain(q: SplitQueue, d: Driver, what: string, why: RegExp, head = 0): void {
  d.offer(head);
  const before = q.lastAvail;
  assertVirtqueueError(() => q.pop(), why, what);
  assert.equal(q.lastAvail, before, what);
}

Deno.test("malformed: head and next indices out of range, loops", () => {
  {
    const { q, d } = rig(8);
    assertBadChain(q, d, "head >= size", /ring\[0\] = 8 is not below the queue size/, 8);
  }
  {
    const { q, d } = rig(8);
    assertBadChain(q, d, "head 0xffff", /= 65535 is not below the queue size/, 0xffff);
  }
  {
    const { q, d } = rig(8);
    d.desc(0, 0x8000, 1, NEXT, 8);
    assertBadChain(q, d, "next >= size", /next 8 is not below 8/);
  }
  {
    const { q, d } = rig(8);
    d.desc(0, 0x8000, 1, NEXT, 1);
    d.desc(1, 0x8000, 1, NEXT, 0);
    assertBadChain(q, d, "loop", /longer than 8 descriptors/);
  }
  {
    const { q, d } = rig(1);
    d.desc(0, 0x8000, 1, NEXT, 0);
    assertBadChain(q, d, "self loop", /longer than 1 descriptors/);
  }
  {
    // Zero-length descriptors in a loop still count.
    const { q, d } = rig(4);
    d.desc(0, 0, 0, NEXT, 1);
    d.desc(1, 0, 0, NEXT, 2);
    d.desc(2, 0, 0, NEXT, 0);
    assertBadChain(q, d, "zero-length loop", /longer than 4 descriptors/);
  }
});

Deno.test("malformed: indirect descriptors", () => {
  const table = 0x6000;
  const cases: [string, RegExp, (d: Driver) => void, boolean?][] = [
    ["not negotiated", /INDIRECT without VIRTIO_F_INDIRECT_DESC/, (d) => {
      d.desc(0, 0x8000, 1, 0, 0, table);
      d.desc(0, table, 16, INDIRECT);
    }, false],
    ["table length 0", /length 0 is not a multiple of 16/, (d) => d.desc(0, table, 0, INDIRECT)],
    [
      "table length not a multiple of 16",
      /length 24 is not a multiple of 16/,
      (d) => d.desc(0, table, 24, INDIRECT),
    ],
    [
      "table in the hole",
      /indirect table .* is not inside guest RAM/,
      (d) => d.desc(0, LOW_END, 16, INDIRECT),
    ],
    [
      "table crossing the hole",
      /indirect table .* is not inside guest RAM/,
      (d) => d.desc(0, LOW_END - 16, 32, INDIRECT),
    ],
    [
      "table past the end",
      /indirect table .* is not inside guest RAM/,
      (d) => d.desc(0, HIGH_END - 16, 32, INDIRECT),
    ],
    [
      "table at 2^53",
      /indirect table .* is not inside guest RAM/,
      (d) => d.desc(0, 2n ** 53n, 16, INDIRECT),
    ],
    [
      "table at 2^64-16",
      /indirect table .* is not inside guest RAM/,
      (d) => d.desc(0, 2n ** 64n - 16n, 16, INDIRECT),
    ],
    ["NEXT with INDIRECT", /INDIRECT with NEXT/, (d) => {
      d.desc(0, 0x8000, 1, 0, 0, table);
      d.desc(0, table, 16, INDIRECT | NEXT, 1);
      d.desc(1, 0x8000, 1);
    }],
    ["INDIRECT inside a table", /INDIRECT inside an indirect table/, (d) => {
      d.desc(0, 0x8000, 1, NEXT, 1, table);
      d.desc(1, table, 32, INDIRECT, 0, table);
      d.desc(0, table, 32, INDIRECT);
    }],
    ["next >= table entries", /next 2 is not below 2 \(indirect table\)/, (d) => {
      d.desc(0, 0x8000, 1, NEXT, 2, table);
      d.desc(1, 0x8000, 1, 0, 0, table);
      d.desc(2, 0x8000, 1, 0, 0, table); // present in memory, but not in the table
      d.desc(0, table, 32, INDIRECT);
    }],
    ["loop in a table", /longer than 2 descriptors \(indirect table\)/, (d) => {
      d.desc(0, 0x8000, 1, NEXT, 1, table);
      d.desc(1, 0x8000, 1, NEXT, 0, table);
      d.desc(0, table, 32, INDIRECT);
    }],
    ["readable after writable in a table", /device-readable after device-writable/, (d) => {
      d.desc(0, 0x8000, 1, NEXT | WRITE, 1, table);
      d.desc(1, 0x8000, 1, 0, 0, table);
      d.desc(0, table, 32, INDIRECT);
    }],
    ["table's readable after a direct writable", /device-readable after device-writable/, (d) => {
      d.desc(0, 0x8000, 1, 0, 0, table);
      d.desc(0, 0x9000, 1, WRITE | NEXT, 1);
      d.desc(1, table, 16, INDIRECT);
    }],
    ["bad buffer in a table", /buffer .* is not inside one RAM range/, (d) => {
      d.desc(0, LOW_END - 1, 2, 0, 0, table);
      d.desc(0, table, 16, INDIRECT);
    }],
  ];
  for (const [what, why, build, indirect = true] of cases) {
    const { q, d, span } = rig(4, { indirect });
    build(d);
    assertBadChain(q, d, what, why);
    assert.ok(outsideUntouched(span));
  }
});

Deno.test("malformed: descriptor order and buffers outside RAM", () => {
  const cases: [string, RegExp, (d: Driver) => void][] = [
    ["readable after writable", /device-readable after device-writable/, (d) => {
      d.desc(0, 0x8000, 1, WRITE | NEXT, 1);
      d.desc(1, 0x8000, 1);
    }],
    ["zero-length readable after writable", /device-readable after device-writable/, (d) => {
      d.desc(0, 0x8000, 1, WRITE | NEXT, 1);
      d.desc(1, 0x8000, 0);
    }],
    [
      "buffer crossing the hole",
      /buffer .* is not inside one RAM range/,
      (d) => d.desc(0, LOW_END - 4, 8),
    ],
    [
      "buffer in the hole",
      /buffer .* is not inside one RAM range/,
      (d) => d.desc(0, LOW_END + 0x100, 1, WRITE),
    ],
    [
      "buffer past the end",
      /buffer .* is not inside one RAM range/,
      (d) => d.desc(0, HIGH_END - 1, 2, WRITE),
    ],
    [
      "buffer after the end",
      /buffer .* is not inside one RAM range/,
      (d) => d.desc(0, SPAN_END, 1),
    ],
    [
      "buffer at 2^53 (not rounded down into RAM)",
      /buffer .* is not inside one RAM range/,
      (d) => d.desc(0, 2n ** 53n, 1),
    ],
    [
      "buffer at 2^53+0x8000",
      /buffer .* is not inside one RAM range/,
      (d) => d.desc(0, 2n ** 53n + 0x8000n, 1),
    ],
    [
      "buffer at 2^64-1",
      /buffer .* is not inside one RAM range/,
      (d) => d.desc(0, 2n ** 64n - 1n, 1),
    ],
    [
      "buffer at 2^32 + low RAM",
      /buffer .* is not inside one RAM range/,
      (d) => d.desc(0, 2n ** 32n + 0x8000n, 1),
    ],
    ["second buffer bad", /buffer .* is not inside one RAM range/, (d) => {
      d.desc(0, 0x8000, 1, NEXT, 1);
      d.desc(1, HIGH_START - 1, 1, WRITE);
    }],
  ];
  for (const [what, why, build] of cases) {
    const { q, d, span } = rig(4);
    build(d);
    assertBadChain(q, d, what, why);
    assert.ok(outsideUntouched(span));
  }
});

/**
 * Memory whose RAM is, for `contains`, [0, 2^34): the rings live in a small
 * real memory, and the huge buffers are never touched by pop().
 */
function hugeRam(): { mem: QueueMemory; real: GuestMemory } {
  const span = new Uint8Array(0x10000);
  const real = new GuestMemory(span, [{ name: "ram", gpa: 0, size: span.length }]);
  const mem: QueueMemory = {
    contains: (gpa, len) =>
      Number.isSafeInteger(gpa) && Number.isSafeInteger(len) && gpa >= 0 && len >= 0 &&
      gpa + len <= 2 ** 34,
    slice: (gpa, len) => real.slice(gpa, len),
    readU16: (gpa) => real.readU16(gpa),
    readU32: (gpa) => real.readU32(gpa),
    readU64: (gpa) => real.readU64(gpa),
    writeU16: (gpa, v) => real.writeU16(gpa, v),
    writeU32: (gpa, v) => real.writeU32(gpa, v),
  };
  return { mem, real };
}

Deno.test("malformed: a chain over 2^32-1 bytes, a table over 65536 entries", () => {
  const { mem, real } = hugeRam();
  const layout = layoutOf(4, { indirect: true });
  const q = new SplitQueue(mem, layout);
  const d = new Driver(real, layout);
  d.desc(0, 0x1_0000_0000, 0x8000_0000, NEXT, 1);
  d.desc(1, 0x2_0000_0000, 0x7fff_ffff, WRITE);
  d.offer(0);
  assert.equal(popSome(q).writableLength, 0x7fff_ffff);
  d.desc(1, 0x2_0000_0000, 0x8000_0000, WRITE);
  assertBadChain(q, d, "2^32 bytes", /more than 2\^32-1 bytes/);
  const big = new SplitQueue(mem, layout);
  const bd = new Driver(real, layout);
  bd.desc(0, 0x1_0000_0000, 16 * 65537, INDIRECT);
  assertBadChain(big, bd, "65537 entries", /indirect table of 65537 entries/);
});

Deno.test("push refuses a head that is not a descriptor index", () => {
  const { q, span } = rig(8);
  for (const head of [8, 0xffff, -1, 1.5]) {
    assertVirtqueueError(() => q.push(head, 0), /used head .* is not below/, `head ${head}`);
  }
  assert.throws(() => q.push(0, -1), RangeError);
  assert.throws(() => q.push(0, 2 ** 32), RangeError);
  assert.equal(q.usedIdx, 0);
  assert.ok(outsideUntouched(span));
});

// ---------------------------------------------------------------------------
// Fuzz: random rings over small RAM with a hole; nothing may escape.

/** mulberry32: a small deterministic PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const F_LOW_END = 0x4000;
const F_HIGH_START = 0x5000;
const F_HIGH_END = 0x9000;
const F_SPAN_END = 0xa000;
const F_RANGES: readonly [number, number][] = [[0, F_LOW_END], [F_HIGH_START, F_HIGH_END]];
/** The malformations the fuzz must reach, by their messages. */
const ERROR_KINDS: readonly [string, RegExp][] = [
  ["avail idx too far ahead", /more than the queue size/],
  ["head out of range", /avail ring\[\d+\] = \d+ is not below/],
  ["next out of range", /: next \d+ is not below \d+$/],
  ["indirect next out of range", /: next \d+ is not below \d+ \(indirect table\)/],
  ["loop", /descriptors: a loop/],
  ["indirect loop", /\(indirect table\): a loop/],
  ["indirect not negotiated", /INDIRECT without/],
  ["INDIRECT with NEXT", /INDIRECT with NEXT/],
  ["nested INDIRECT", /INDIRECT inside/],
  ["table length", /not a multiple of 16/],
  ["table too long", /indirect table of \d+ entries/],
  ["table outside RAM", /indirect table .* is not inside guest RAM/],
  ["readable after writable", /device-readable after device-writable/],
  ["buffer outside RAM", /buffer .* is not inside one RAM range/],
  ["bad used head", /used head/],
];

Deno.test("fuzz: 100,000 random queues end in chains or VirtqueueError, never escape RAM", () => {
  const CASES = 100_000;
  const rand = prng(0x5eed_0001);
  const int = (n: number) => Math.floor(rand() * n);
  const chance = (p: number) => rand() < p;

  const span = new Uint8Array(F_SPAN_END);
  span.fill(SENTINEL, F_LOW_END, F_HIGH_START);
  span.fill(SENTINEL, F_HIGH_END, F_SPAN_END);
  const mem = new GuestMemory(span, [
    { name: "low", gpa: 0, size: F_LOW_END },
    { name: "high", gpa: F_HIGH_START, size: F_HIGH_END - F_HIGH_START },
  ]);
  const view = new DataView(span.buffer);
  // Driver writes go straight into the span, but only inside RAM.
  const ram = (gpa: number, len: number) => mem.contains(gpa, len);
  const put16 = (gpa: number, v: number) => ram(gpa, 2) && view.setUint16(gpa, v, true);
  const put32 = (gpa: number, v: number) => ram(gpa, 4) && view.setUint32(gpa, v >>> 0, true);
  const outsideIntact = () =>
    span.subarray(F_LOW_END, F_HIGH_START).every((b) => b === SENTINEL) &&
    span.subarray(F_HIGH_END, F_SPAN_END).every((b) => b === SENTINEL);

  /** An address for `len` bytes: inside a RAM range with probability `p`, aligned to `align`. */
  function place(len: number, align: number, p = 0.9): number {
    const roll = rand();
    const [start, end] = F_RANGES[int(2)];
    if (roll < p && end - start >= len) {
      const slots = Math.floor((end - start - len) / align) + 1;
      return start + align * int(slots);
    }
    if (roll < (1 + p) / 2) return end - int(len + 8); // across the end of a range
    return int(F_SPAN_END + 0x1000); // anywhere, holes included
  }

  /** A buffer {lo, hi, len}: mostly valid, sometimes crossing, in a hole or above 2^53. */
  function buffer(): [number, number, number] {
    const roll = rand();
    if (roll < 0.1) return [int(0x1_0000_0000), 0, 0];
    const len = chance(0.9) ? 1 + int(64) : 1 + int(0x2000);
    if (roll < 0.955) return [place(len, 1, 0.97), 0, len];
    if (roll < 0.97) return [F_LOW_END - int(len), 0, len]; // crosses into the hole
    if (roll < 0.985) return [int(0x1_0000_0000), 0, len];
    return [int(F_SPAN_END), chance(0.5) ? 0x20_0000 + int(16) : int(0x1_0000_0000), len];
  }

  /** Writes one descriptor at `at`: flags biased toward valid chains. */
  function writeDesc(at: number, i: number, entries: number, inTable: boolean, indirect: boolean) {
    let [lo, hi, len] = buffer();
    let flags = 0;
    if (chance(0.55) && i + 1 < entries) flags |= NEXT;
    if (chance(0.3)) flags |= WRITE;
    let next = i + 1 + int(Math.max(1, Math.min(4, entries - i - 1)));
    if (chance(0.05)) next = int(entries);
    if (chance(0.01)) next = int(0x10000);
    if (!inTable && chance(indirect ? 0.15 : 0.02)) {
      // An indirect descriptor and its table.
      const n = 1 + int(8);
      len = chance(0.9) ? 16 * n : int(200);
      lo = place(Math.max(len, 16), 16);
      hi = chance(0.02) ? 1 : 0;
      flags = INDIRECT | (chance(0.1) ? NEXT : 0) | (chance(0.3) ? WRITE : 0);
      if (hi === 0 && ram(lo, len) && len % 16 === 0) {
        const count = len / 16;
        for (let j = 0; j < count; j++) writeDesc(lo + 16 * j, j, count, true, indirect);
      }
    } else if (chance(0.005)) {
      flags |= INDIRECT;
    }
    if (chance(0.01)) flags = int(0x10000);
    put32(at, lo);
    put32(at + 4, hi);
    put32(at + 8, len);
    put16(at + 12, flags);
    put16(at + 14, next);
  }

  const SIZES = [1, 2, 4, 8, 8, 16, 16, 32, 64, 128];
  let popped = 0;
  let errors = 0;
  let badLayouts = 0;
  let maxReadable = 0;
  const seen = new Map<string, number>();
  const started = performance.now();
  for (let c = 0; c < CASES; c++) {
    let size = SIZES[int(SIZES.length)];
    if (chance(0.01)) size = [0, 3, 48, 65536, 256][int(5)];
    const eventIdx = chance(0.5);
    const indirect = chance(0.5);
    const align = (a: number) => (chance(0.02) ? 1 + int(a) : a);
    const layout: QueueLayout = {
      size,
      desc: place(16 * size, align(16), 0.98),
      avail: place(6 + 2 * size, align(2), 0.98),
      used: place(6 + 8 * size, align(4), 0.98),
      eventIdx,
      indirect,
    };
    let q: SplitQueue;
    try {
      q = new SplitQueue(mem, layout);
    } catch (e) {
      if (!(e instanceof VirtqueueError)) throw new Error(`case ${c}: ${e}`, { cause: e });
      badLayouts++;
      continue;
    }
    for (let i = 0; i < size; i++) writeDesc(layout.desc + 16 * i, i, size, false, indirect);
    const avail = layout.avail;
    put16(avail, chance(0.5) ? VIRTQ_AVAIL_F_NO_INTERRUPT : 0);
    for (let i = 0; i < size; i++) {
      put16(avail + 4 + 2 * i, chance(0.97) ? int(size) : int(0x10000));
    }
    put16(avail + 4 + 2 * size, int(8));
    let availIdx = chance(0.97) ? int(size + 1) : int(0x10000);
    put16(avail + 2, availIdx);

    try {
      for (let step = 0; step < 2 * size + 4; step++) {
        const chain = q.pop();
        if (chain === null) {
          if (chance(0.5)) break;
          // The driver makes a few more available (sometimes too many).
          availIdx = (availIdx + int(size + 2)) & 0xffff;
          put16(avail + 2, availIdx);
          continue;
        }
        popped++;
        let sum = 0;
        for (const s of chain.readable) {
          assert.ok(ram(s.gpa, s.len) && s.len > 0);
          sum += s.len;
        }
        assert.equal(sum, chain.readableLength);
        sum = 0;
        for (const s of chain.writable) {
          assert.ok(ram(s.gpa, s.len) && s.len > 0);
          sum += s.len;
        }
        assert.equal(sum, chain.writableLength);
        maxReadable = Math.max(maxReadable, chain.readable.length);
        const r = new ChainReader(mem, chain);
        r.read(int(40));
        r.skip(int(8));
        r.views(int(40));
        const w = new ChainWriter(mem, chain);
        w.write(new Uint8Array(int(48)).fill(0x11));
        for (const v of w.views(int(48))) v.fill(0x22);
        q.push(chance(0.99) ? chain.head : int(size + 1), w.written);
        q.shouldInterrupt();
        if (chance(0.3)) q.armNotification();
        q.pending();
      }
    } catch (e) {
      if (!(e instanceof VirtqueueError)) {
        throw new Error(`case ${c}: ${(e as Error).stack}`, { cause: e });
      }
      errors++;
      const kind = ERROR_KINDS.find(([, re]) => re.test(e.message));
      assert.ok(kind, `case ${c}: unclassified error ${e.message}`);
      seen.set(kind[0], (seen.get(kind[0]) ?? 0) + 1);
    }
    if (c % 1000 === 999) assert.ok(outsideIntact(), `case ${c} wrote outside RAM`);
  }
  assert.ok(outsideIntact());
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `fuzz: ${CASES} cases in ${seconds.toFixed(1)} s: ${popped} chains popped, ` +
      `${errors} VirtqueueErrors, ${badLayouts} bad layouts, longest ${maxReadable} readable`,
  );
  console.log(`errors by kind: ${JSON.stringify(Object.fromEntries(seen))}`);
  for (const [kind] of ERROR_KINDS) assert.ok(seen.has(kind), `the fuzz never hit "${kind}"`);
  // The generator must produce both outcomes in quantity to mean anything.
  assert.ok(popped > CASES / 2, `only ${popped} chains popped`);
  assert.ok(errors > CASES / 20, `only ${errors} errors`);
});

/**
 * Hostile-driver tests of the virtio devices and their transport.
 *
 * - A random-queue fuzz of the four devices (virtio-blk, -net, -console,
 *   -rng): each case builds guest RAM of two ranges with a hole between
 *   them, random queue layouts and random descriptor chains biased toward
 *   near-valid ones, then runs the I/O worker's flow (lib/virtio/io_worker.ts):
 *   `new SplitQueue` per queue, the device's handler, notify() and ready().
 *   Every case must end with DEVICE_NEEDS_RESET (a {@linkcode VirtqueueError},
 *   from the constructor or a handler call), a served request, or nothing
 *   to do; any other exception is a device-model bug. Bytes outside RAM
 *   must never change.
 * - A fuzz of the PCI transport ({@linkcode VirtioPciFunction}): random
 *   BAR, configuration space and MSI-X table accesses, checked against the
 *   transport's invariants after each one.
 * - Targeted tests of the malformed shapes the fuzz draws from, per device
 *   and queue: each must throw VirtqueueError.
 *
 * A failing fuzz case prints its seed; `DHYVE_FUZZ_SEED=<seed>` replays
 * that case alone (and `DHYVE_FUZZ_SCALE=<n>` runs n times as many cases).
 *
 * @module
 */
import assert from "node:assert/strict";
import { GuestMemory } from "../../lib/guest_memory.ts";
import type { RamRange } from "../../lib/layout.ts";
import { FakeIntx, FakeMsi } from "../_fakes.ts";
import type { AccessSize } from "../device.ts";
import {
  blkFeatures,
  type BlockBackend,
  createBlkHandler,
  VIRTIO_BLK_T,
  virtioBlkModel,
  type VirtioBlkOptions,
} from "./blk.ts";
import { type ConsoleBackend, createConsoleHandler, virtioConsoleModel } from "./console.ts";
import {
  createNetHandler,
  ETH_HLEN,
  NET_CONFIG,
  NET_HDR_SIZE,
  NET_MAX_FRAME,
  type NetBackend,
  virtioNetModel,
} from "./net.ts";
import {
  VIRTIO_PCI_COMMON as C,
  VIRTIO_PCI_COMMON_LENGTH,
  virtioOfferedFeatures,
  VirtioPciFunction,
} from "./pci.ts";
import { SplitQueue } from "./queue.ts";
import {
  createRngHandler,
  RANDOM_SOURCE_MAX_FILL,
  type RandomSource,
  VIRTIO_RNG_MAX_CHAIN_BYTES,
  virtioRngModel,
} from "./rng.ts";
import {
  type DescriptorChain,
  featureBit,
  type QueueLayout,
  type QueueMemory,
  VIRTIO_F,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_STATUS as S,
  type VirtioDeviceModel,
  type VirtioQueueContext,
  type VirtioQueueHandler,
  VIRTQ_DESC_F,
  VirtqueueError,
} from "./types.ts";

const { next: NEXT, write: WRITE, indirect: INDIRECT } = VIRTQ_DESC_F;

// ---------------------------------------------------------------------------
// Knobs.

/** Reads an environment variable when allowed (deno test -A), else undefined. */
function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** DHYVE_FUZZ_SEED: replay one case (the seed names its device). */
const REPLAY = env("DHYVE_FUZZ_SEED");
/** DHYVE_FUZZ_SCALE: multiplies every case count (default 1). */
const SCALE = Number(env("DHYVE_FUZZ_SCALE") ?? "1") || 1;
/** Failures collected before a fuzz test stops early. */
const MAX_FAILURES = 10;

// ---------------------------------------------------------------------------
// Deterministic randomness.

/** mulberry32: a tiny seeded PRNG, so every case replays from its seed. */
class Prng {
  #a: number;

  constructor(seed: number) {
    this.#a = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#a = (this.#a + 0x6d2b79f5) >>> 0;
    let t = this.#a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  u16(): number {
    return this.int(0x10000);
  }

  u32(): number {
    return this.int(0x1_0000_0000);
  }
}

/** The seed of case `i` of the fuzz with salt `salt`: the top byte names the device. */
function caseSeed(salt: number, i: number): number {
  return ((salt << 24) | (i & 0xff_ffff)) >>> 0;
}

const hex = (n: number) => `0x${n.toString(16)}`;

// ---------------------------------------------------------------------------
// Guest RAM: ranges with holes, and a sentinel outside them.

const SENTINEL = 0xa5;
const SENTINEL_WORD = 0xa5a5a5a5;

/** Guest RAM over a host span whose non-RAM bytes hold SENTINEL, checked after each case. */
class FuzzRam {
  readonly span: Uint8Array;
  readonly mem: GuestMemory;
  readonly ranges: readonly RamRange[];
  /** [start, end) of every part of the span that is not RAM (4-byte aligned). */
  readonly gaps: readonly (readonly [number, number])[];
  readonly #words: Uint32Array;

  constructor(ranges: readonly RamRange[], spanEnd: number) {
    this.span = new Uint8Array(spanEnd).fill(SENTINEL);
    this.#words = new Uint32Array(this.span.buffer);
    this.ranges = ranges;
    this.mem = new GuestMemory(this.span, ranges);
    const gaps: [number, number][] = [];
    let at = 0;
    for (const r of [...ranges].sort((a, b) => a.gpa - b.gpa)) {
      if (r.gpa > at) gaps.push([at, r.gpa]);
      at = r.gpa + r.size;
    }
    if (at < spanEnd) gaps.push([at, spanEnd]);
    this.gaps = gaps;
    this.clear();
  }

  /** Zeroes every RAM byte (the sentinel stays). */
  clear(): void {
    for (const r of this.ranges) this.span.fill(0, r.gpa, r.gpa + r.size);
  }

  /** Whether every byte outside RAM still holds SENTINEL. */
  intact(): boolean {
    const w = this.#words;
    for (const [start, end] of this.gaps) {
      for (let i = start >> 2; i < end >> 2; i++) if (w[i] !== SENTINEL_WORD) return false;
    }
    return true;
  }
}

/** The fuzz's RAM: 16 KiB, a 4 KiB hole, 16 KiB, then 4 KiB of tail that is not RAM. */
const LOW: RamRange = { name: "low", gpa: 0x0000, size: 0x4000 };
const HIGH: RamRange = { name: "high", gpa: 0x5000, size: 0x4000 };
const FUZZ_HOLE = 0x4000;
const FUZZ_SPAN = 0xa000;
const FUZZ_RANGES = [LOW, HIGH] as const;

/** A guest address split into the two u32 halves a descriptor holds. */
interface Addr {
  readonly lo: number;
  readonly hi: number;
}

function addrOf(n: number): Addr {
  return { lo: n % 0x1_0000_0000, hi: Math.floor(n / 0x1_0000_0000) };
}

/** Driver-side writes: only inside RAM (a driver cannot write anywhere else either). */
function put16(mem: QueueMemory, gpa: number, v: number): void {
  if (mem.contains(gpa, 2)) mem.writeU16(gpa, v & 0xffff);
}

function putDesc(
  mem: QueueMemory,
  table: number,
  i: number,
  a: Addr,
  len: number,
  flags: number,
  next: number,
): void {
  const at = table + 16 * i;
  if (!mem.contains(at, 16)) return;
  mem.writeU32(at, a.lo);
  mem.writeU32(at + 4, a.hi);
  mem.writeU32(at + 8, len >>> 0);
  mem.writeU16(at + 12, flags & 0xffff);
  mem.writeU16(at + 14, next & 0xffff);
}

/** A bump allocator over the RAM ranges, so valid rings and buffers mostly do not overlap. */
class Heap {
  readonly #cursor: number[];

  constructor() {
    this.#cursor = FUZZ_RANGES.map((r) => r.gpa);
  }

  /** `len` bytes aligned to `align` in a random range with room, or null. */
  alloc(r: Prng, len: number, align: number): number | null {
    const first = r.int(FUZZ_RANGES.length);
    for (let k = 0; k < FUZZ_RANGES.length; k++) {
      const i = (first + k) % FUZZ_RANGES.length;
      const range = FUZZ_RANGES[i];
      const at = Math.ceil(this.#cursor[i] / align) * align;
      if (at + len <= range.gpa + range.size) {
        this.#cursor[i] = at + len + (r.chance(0.3) ? 16 * r.int(4) : 0);
        return at;
      }
    }
    return null;
  }
}

/** An address inside one RAM range for `len` bytes, overlapping whatever is there. */
function anywhere(r: Prng, len: number): number {
  const range = r.pick(FUZZ_RANGES);
  return range.gpa + (len >= range.size ? 0 : r.int(range.size - len + 1));
}

/** An address that is not inside one RAM range for `len` bytes (len > 0). */
function badAddr(r: Prng, len: number): Addr {
  switch (r.int(9)) {
    case 0:
      return addrOf(FUZZ_HOLE + r.int(HIGH.gpa - FUZZ_HOLE)); // the hole
    case 1:
      return addrOf(LOW.gpa + LOW.size - 1 - r.int(Math.max(1, Math.min(len, 64)))); // low end
    case 2:
      return addrOf(HIGH.gpa + HIGH.size - 1 - r.int(Math.max(1, Math.min(len, 64)))); // high end
    case 3:
      return addrOf(HIGH.gpa - 1 - r.int(8)); // starts in the hole
    case 4:
      return addrOf(FUZZ_SPAN + r.int(0x100000)); // past the span
    case 5:
      return { lo: r.u32(), hi: 1 + r.int(4) }; // above 4 GiB
    case 6:
      return { lo: r.u32(), hi: 0x200000 + r.int(0x1000) }; // 2^53 and up
    case 7:
      return { lo: 0xffff_fff0, hi: 0xffff_ffff }; // the top of the 64-bit space
    default:
      return { lo: 0xffff_f000, hi: 0x1f_ffff }; // just under 2^53
  }
}

/**
 * A buffer address: a fresh heap block; or (with probability `bad`) not
 * RAM, or any RAM (overlapping the rings, say); null when a well-behaved
 * driver (bad = 0) has no room left.
 */
function bufAddr(r: Prng, heap: Heap, len: number, bad: number): Addr | null {
  if (len > 0 && r.chance(bad)) return badAddr(r, len);
  const at = bad > 0 && r.chance(bad) ? null : heap.alloc(r, len, r.chance(0.5) ? 16 : 1);
  if (at !== null) return addrOf(at);
  return bad > 0 ? addrOf(anywhere(r, len)) : null;
}

// ---------------------------------------------------------------------------
// Queues: random layouts, chains and avail rings.

/** One buffer of a request, as the device expects it (before any mutation). */
interface Buf {
  len: number;
  write: boolean;
  /** Bytes to put in a device-readable buffer. */
  data?: Uint8Array;
}

/** Splits `data` into 1..max device-readable buffers (sometimes with empty ones). */
function pieces(r: Prng, data: Uint8Array, max: number): Buf[] {
  const out: Buf[] = [];
  const n = 1 + r.int(max);
  let at = 0;
  for (let i = 0; i < n; i++) {
    const len = i === n - 1 ? data.length - at : r.int(data.length - at + 1);
    out.push({ len, write: false, data: data.subarray(at, at + len) });
    at += len;
  }
  return out;
}

/** `len` device-writable bytes as 1..max buffers. */
function space(r: Prng, len: number, max: number): Buf[] {
  const out: Buf[] = [];
  const n = 1 + r.int(max);
  let left = len;
  for (let i = 0; i < n; i++) {
    const piece = i === n - 1 ? left : r.int(left + 1);
    out.push({ len: piece, write: true });
    left -= piece;
  }
  return out;
}

/** The sizes layouts are drawn from: mostly small powers of two. */
const GOOD_SIZES = [1, 2, 2, 4, 4, 8, 8, 8, 16, 16, 32, 64, 256];
const BAD_SIZES = [0, 3, 6, 12, 255, 512, 32768, 65536];

/** A random queue layout; with probability about `bad` something about it is wrong. */
function genLayout(r: Prng, heap: Heap, features: bigint, bad: number): QueueLayout {
  const size = r.chance(bad / 3) ? r.pick(BAD_SIZES) : r.pick(GOOD_SIZES);
  const eventIdx = (features & featureBit(VIRTIO_F.ringEventIdx)) !== 0n;
  const indirect = (features & featureBit(VIRTIO_F.ringIndirectDesc)) !== 0n;
  const extra = eventIdx ? 2 : 0;
  const n = Math.max(1, Math.min(size, 256));
  const place = (len: number, align: number) => heap.alloc(r, len, align) ?? 0;
  let desc = place(16 * n, 16);
  let avail = place(4 + 2 * n + extra, 2);
  let used = place(4 + 8 * n + extra, 4);
  if (r.chance(bad)) {
    const wrong = [
      () => (desc += r.pick([1, 2, 4, 8])),
      () => (avail += 1),
      () => (used += r.pick([1, 2])),
      () => (desc = FUZZ_HOLE + 16 * r.int(0x100)),
      () => (used = LOW.gpa + LOW.size - 4 * (1 + r.int(4))),
      () => (avail = HIGH.gpa + HIGH.size - 2 * (1 + r.int(4))),
      () => (desc = r.pick([2 ** 40, Number.MAX_SAFE_INTEGER - 15, 2 ** 53, 2 ** 64])),
      () => (used = FUZZ_SPAN),
      // Rings that end exactly at the end of a range: only the EVENT_IDX words fall outside.
      () => (avail = LOW.gpa + LOW.size - 4 - 2 * size),
      () => (used = HIGH.gpa + HIGH.size - 4 - 8 * size),
      // Overlapping rings: the device's own writes land in the driver's structures.
      () => (used = desc),
      () => (used = avail & ~3),
      () => (avail = used),
      () => (avail = desc + 16 * r.int(n)),
    ];
    r.pick(wrong)();
  }
  return { size, desc, avail, used, eventIdx, indirect };
}

/**
 * A SplitQueue that checks what the device does with it: every push names a
 * chain popped and not yet pushed, and its length fits that chain's
 * writable part (§2.7.8.1).
 */
class CheckedQueue extends SplitQueue {
  /** Writable lengths of chains popped and not yet pushed, by head. */
  readonly outstanding: Map<number, number[]> = new Map();
  /** Heads pushed since the driver last looked (its view of the used ring). */
  readonly pushed: number[] = [];
  readonly #violations: string[];
  readonly #name: string;
  readonly #maxWritten: number;

  constructor(
    memory: QueueMemory,
    layout: QueueLayout,
    violations: string[],
    name: string,
    maxWritten = Infinity,
  ) {
    super(memory, layout);
    this.#violations = violations;
    this.#name = name;
    this.#maxWritten = maxWritten;
  }

  override pop(): DescriptorChain | null {
    const chain = super.pop();
    if (chain) {
      const list = this.outstanding.get(chain.head) ?? [];
      list.push(chain.writableLength);
      this.outstanding.set(chain.head, list);
    }
    return chain;
  }

  override push(head: number, written: number): void {
    const list = this.outstanding.get(head);
    const fit = list?.filter((len) => written <= len) ?? [];
    if (written > this.#maxWritten) {
      this.#violations.push(`${this.#name}: used len ${written} over ${this.#maxWritten}`);
    }
    if (!list?.length) {
      this.#violations.push(`${this.#name}: pushed head ${head}, which is not in flight`);
    } else if (fit.length === 0) {
      this.#violations.push(
        `${this.#name}: pushed head ${head} with len ${written}, more than its writable ${list}`,
      );
    } else {
      list.splice(list.indexOf(Math.min(...fit)), 1);
    }
    super.push(head, written);
    this.pushed.push(head);
  }
}

/** The driver's side of one queue in a fuzz case. */
class DriverQueue {
  readonly layout: QueueLayout;
  readonly queue: CheckedQueue;
  availIdx = 0;
  /** Where a driver that ignores the free list takes descriptors. */
  nextDesc = 0;
  /** Free descriptor indices (a well-behaved driver takes only these). */
  readonly free: number[];
  /** The descriptors of each chain in flight, by head. */
  readonly chains: Map<number, number[]> = new Map();

  constructor(r: Prng, layout: QueueLayout, queue: CheckedQueue) {
    this.layout = layout;
    this.queue = queue;
    this.free = Array.from({ length: layout.size }, (_, i) => i);
    // Shuffled, so chains are not always contiguous.
    for (let i = this.free.length - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [this.free[i], this.free[j]] = [this.free[j], this.free[i]];
    }
  }

  /** Takes back the descriptors of the chains the device returned (§2.7.14). */
  reclaim(): void {
    for (const head of this.queue.pushed.splice(0)) {
      const ids = this.chains.get(head);
      if (!ids) continue;
      this.chains.delete(head);
      this.free.push(...ids);
    }
  }

  /**
   * `n` descriptor indices: free ones, or (a buggy driver, with probability
   * 0.5 when `bad`) whatever comes next, in flight or not; null: wait.
   */
  take(r: Prng, n: number, bad: number): number[] | null {
    if (n <= this.free.length && !(bad > 0 && r.chance(bad))) {
      const ids = this.free.splice(this.free.length - n, n);
      this.chains.set(ids[0], ids);
      return ids;
    }
    if (bad === 0 || r.chance(0.5)) return null;
    const ids: number[] = [];
    for (let k = 0; k < n; k++) ids.push((this.nextDesc + k) % this.layout.size);
    this.nextDesc = (this.nextDesc + n) % this.layout.size;
    return ids;
  }
}

/**
 * Writes one chain for `bufs` (descriptors, an indirect table sometimes,
 * the readable data), mutating it with probability `bad` per field; returns
 * the head descriptor index, or null when the driver has no room for it.
 */
function writeChain(
  r: Prng,
  mem: QueueMemory,
  heap: Heap,
  dq: DriverQueue,
  bufs: Buf[],
  bad: number,
): number | null {
  const size = dq.layout.size;
  // An empty chain cannot exist: give it one zero-length descriptor.
  if (bufs.length === 0) bufs.push({ len: 0, write: false });
  // §2.7.4.2 broken: a buffer's direction flipped.
  if (r.chance(bad)) {
    const b = r.pick(bufs);
    b.write = !b.write;
  }
  // As Linux: indirect when the chain does not fit the free descriptors.
  const useIndirect = r.chance(dq.layout.indirect ? 0.25 : bad) ||
    (dq.layout.indirect && bufs.length > dq.free.length);
  // §2.7.5.3.2: a few direct descriptors may precede the indirect one.
  const split = !useIndirect ? bufs.length : r.chance(0.2) ? r.int(bufs.length) : 0;
  const direct = useIndirect ? bufs.slice(0, split) : bufs;
  const table = useIndirect ? bufs.slice(split) : [];
  const count = direct.length + (useIndirect ? 1 : 0);
  // Guest buffers first: a driver without room waits.
  const addrs: Addr[] = [];
  for (const b of bufs) {
    const a = bufAddr(r, heap, b.len, bad);
    if (a === null) return null;
    addrs.push(a);
  }
  const tableLen = 16 * table.length;
  const tableAt = useIndirect ? bufAddr(r, heap, tableLen, bad) : null;
  if (useIndirect && tableAt === null) return null;
  const ids = dq.take(r, count, bad);
  if (ids === null) return null;

  /** A descriptor's fields, then the mutations a hostile driver may apply. */
  const emit = (
    tableGpa: number,
    i: number,
    b: Buf,
    a: Addr,
    flags: number,
    next: number,
    entries: number,
  ) => {
    if (b.data && b.data.length > 0 && a.hi === 0 && mem.contains(a.lo, b.data.length)) {
      mem.slice(a.lo, b.data.length).set(b.data);
    }
    let len = b.len;
    if (r.chance(bad)) {
      switch (r.int(6)) {
        case 0:
          len = r.pick([0xffff_ffff, 0x8000_0000, 0x1_0000 + r.int(0x10000), len + 1 + r.int(64)]);
          break;
        case 1:
          a = badAddr(r, Math.max(1, len));
          break;
        case 2:
          flags |= NEXT;
          next = r.pick([i, 0, entries, entries + r.int(8), r.u16()]); // loops, past the end
          break;
        case 3:
          flags ^= 1 << r.int(16);
          break;
        case 4:
          flags = r.u16();
          break;
        default:
          flags |= INDIRECT; // nested in a table, or without the feature
      }
    }
    putDesc(mem, tableGpa, i, a, len, flags, next);
  };

  direct.forEach((b, k) => {
    const last = k === ids.length - 1;
    emit(
      dq.layout.desc,
      ids[k],
      b,
      addrs[k],
      (b.write ? WRITE : 0) | (last ? 0 : NEXT),
      last ? 0 : ids[k + 1],
      size,
    );
  });
  if (useIndirect && tableAt !== null) {
    if (tableAt.hi === 0 && mem.contains(tableAt.lo, tableLen)) {
      table.forEach((b, i) => {
        const last = i === table.length - 1;
        const flags = (b.write ? WRITE : 0) | (last ? 0 : NEXT);
        emit(tableAt.lo, i, b, addrs[split + i], flags, last ? 0 : i + 1, table.length);
      });
    }
    let flags = INDIRECT | (r.chance(0.3) ? WRITE : 0); // §2.7.5.3.2: WRITE is ignored
    let len = tableLen;
    if (r.chance(bad)) {
      if (r.chance(0.5)) flags |= NEXT;
      else len = r.pick([0, 8, tableLen + 8, tableLen + 16, 16 * 65537, 0xffff_fff0]);
    }
    putDesc(mem, dq.layout.desc, ids[ids.length - 1], tableAt, len, flags, 0);
  }
  return ids[0];
}

/** Makes `heads` available (ring entries, then idx), mutating with probability `bad`. */
function offer(r: Prng, mem: QueueMemory, dq: DriverQueue, heads: number[], bad: number): void {
  const { size, avail } = dq.layout;
  for (let head of heads) {
    if (r.chance(bad)) head = r.pick([size, size + r.int(64), 0xffff, r.u16()]);
    put16(mem, avail + 4 + 2 * (dq.availIdx % size), head);
    dq.availIdx = (dq.availIdx + 1) & 0xffff;
  }
  let idx = dq.availIdx;
  if (r.chance(bad)) {
    // Too far ahead (also wrapping around 0xffff), or behind.
    idx = r.pick([idx + size + 1, idx + 0x8000, 0xffff, idx - 1, r.u16()]) & 0xffff;
  }
  put16(mem, avail + 2, idx);
}

// ---------------------------------------------------------------------------
// The devices under fuzz.

/** One case's device: its backend, negotiated features and request shapes. */
interface CaseDevice {
  readonly features: bigint;
  readonly config: Uint8Array;
  /** Fds worth a ready() besides what the handler polls. */
  readonly fds: readonly number[];
  create(ctx: VirtioQueueContext, queues: readonly (SplitQueue | null)[]): VirtioQueueHandler;
  /** A near-valid request for queue `q`. */
  request(r: Prng, q: number): Buf[];
}

interface FuzzDevice {
  readonly name: string;
  /** The top byte of its seeds. */
  readonly salt: number;
  readonly queues: number;
  readonly cases: number;
  /** The largest used length the device may report, per queue (absent: the chain's writable length). */
  readonly maxWritten?: readonly number[];
  /** The device for one case; contract breaches by the handler go to `violations`. */
  begin(r: Prng, violations: string[]): CaseDevice;
}

/** What a failing backend throws: usually an Error, sometimes anything at all. */
function failure(r: Prng, message: string): unknown {
  return r.chance(0.8) ? new Error(message) : r.pick([message, undefined, null, 5, { errno: 5 }]);
}

/** A random subset of `offered`, each bit kept with probability 0.7. */
function negotiate(r: Prng, offered: bigint): bigint {
  let f = 0n;
  for (let bit = 0n; bit < 64n; bit++) {
    if ((offered >> bit) & 1n && r.chance(0.7)) f |= 1n << bit;
  }
  return f;
}

// virtio-blk: an in-memory disk that sometimes fails.

const DISK_BYTES = 64 * 512;
const disk = new Uint8Array(DISK_BYTES);

const blkDevice: FuzzDevice = {
  name: "virtio-blk",
  salt: 1,
  queues: 1,
  cases: 30000,
  begin(r, violations) {
    const size = r.pick([DISK_BYTES, DISK_BYTES, DISK_BYTES - 512, 1000, 512, 0]);
    const options: VirtioBlkOptions = {
      size: r.pick([size, size, DISK_BYTES, 4096, 511]),
      readonly: r.chance(0.2),
      serial: r.pick(["", "fuzz-disk", "0123456789abcdefghij"]),
      discard: r.chance(0.5),
    };
    const failRate = r.pick([0, 0, 0.3, 1]);
    const reachable = Math.floor(Math.min(options.size, size) / 512) * 512;
    const model = virtioBlkModel(options);
    const features = negotiate(r, virtioOfferedFeatures(model) | blkFeatures(options));
    const config = new Uint8Array(model.configSize);
    model.initConfig(config);
    const range = (what: string, offset: number, length: number) => {
      if (!(Number.isSafeInteger(offset) && offset >= 0 && offset + length <= reachable)) {
        violations.push(`blk backend ${what} [${offset}, +${length}) outside [0, ${reachable})`);
        return false;
      }
      return true;
    };
    const io = () => {
      if (r.chance(failRate)) throw failure(r, "EIO (fuzz)");
    };
    const backend: BlockBackend = {
      size,
      readonly: r.chance(0.1),
      read(offset, dst) {
        io();
        if (range("read", offset, dst.length)) dst.set(disk.subarray(offset, offset + dst.length));
      },
      write(offset, src) {
        io();
        if (range("write", offset, src.length)) disk.set(src, offset);
      },
      flush: io,
      discard(offset, length) {
        io();
        if (length === 0) violations.push("blk backend: empty discard");
        range("discard", offset, length);
      },
      writeZeroes(offset, length) {
        io();
        if (length === 0) violations.push("blk backend: empty write-zeroes");
        if (range("write-zeroes", offset, length)) disk.fill(0, offset, offset + length);
      },
    };
    const sectors = reachable / 512;
    return {
      features,
      config,
      fds: [],
      create: (ctx, queues) => createBlkHandler(ctx, queues, backend, options),
      request(r) {
        const T = VIRTIO_BLK_T;
        const type = r.pick([
          T.in,
          T.in,
          T.out,
          T.out,
          T.flush,
          T.getId,
          T.discard,
          T.writeZeroes,
          T.getLifetime,
          T.secureErase,
          r.u32(),
        ]);
        const header = new Uint8Array(16);
        const h = new DataView(header.buffer);
        h.setUint32(0, type, true);
        h.setUint32(4, r.chance(0.9) ? 0 : r.u32(), true);
        const sector = r.chance(0.9)
          ? BigInt(r.int(sectors + 3))
          : r.pick([2n ** 63n, 2n ** 64n - 1n, BigInt(r.u32()), 2n ** 53n, 2n ** 55n / 512n]);
        h.setBigUint64(8, sector, true);
        const bufs = pieces(r, r.chance(0.04) ? header.subarray(0, r.int(16)) : header, 2);
        const dataLen = 512 * r.int(5) + (r.chance(0.05) ? 1 + r.int(511) : 0);
        switch (type) {
          case T.in:
            bufs.push(...space(r, dataLen, 2));
            break;
          case T.out:
            bufs.push(...pieces(r, new Uint8Array(dataLen).fill(0x3c), 2));
            break;
          case T.getId:
            bufs.push(...space(r, r.pick([20, 8, 0, 40]), 1));
            break;
          case T.discard:
          case T.writeZeroes: {
            const n = r.pick([1, 1, 1, 0, 2]);
            const segs = new Uint8Array(16 * n + (r.chance(0.05) ? 1 + r.int(15) : 0));
            const v = new DataView(segs.buffer);
            for (let i = 0; i < n; i++) {
              v.setBigUint64(16 * i, BigInt(r.int(sectors + 4)), true);
              v.setUint32(16 * i + 8, r.pick([1, 8, r.int(70), 0x40_0000, 0, 0xffff_ffff]), true);
              v.setUint32(16 * i + 12, r.pick([0, 0, 1, 2, r.u32()]), true);
            }
            bufs.push(...pieces(r, segs, 2));
            break;
          }
        }
        if (r.chance(0.97)) bufs.push({ len: r.chance(0.9) ? 1 : r.pick([0, 2, 16]), write: true });
        return bufs;
      },
    };
  },
};

// virtio-net: a fake tap with frames to deliver, that sometimes fails.

const NET_FD = 7;

const netDevice: FuzzDevice = {
  name: "virtio-net",
  salt: 2,
  queues: 2,
  cases: 25000,
  // One frame behind the header; transmit buffers come back with len 0 (§5.1.6.2).
  maxWritten: [NET_HDR_SIZE + NET_MAX_FRAME, 0],
  begin(r, violations) {
    const mtu = r.chance(0.3) ? r.pick([68, 1500, 9000, 65535]) : undefined;
    const model = virtioNetModel({ mac: Uint8Array.of(2, 0, 0, 0, 0, 1), mtu });
    const features = negotiate(r, virtioOfferedFeatures(model));
    const config = new Uint8Array(model.configSize);
    model.initConfig(config);
    if (r.chance(0.1)) config[NET_CONFIG.mtu] = r.int(256); // a config the handler must not trust
    const inbox: number[] = [];
    for (let n = r.int(6); n > 0; n--) {
      inbox.push(r.pick([0, 10, ETH_HLEN, 60, 1514, 1518, 1600, 9000, NET_MAX_FRAME + 1, 70000]));
    }
    const rxFail = r.pick([0, 0, 0.2, 1]);
    const txFail = r.pick([0, 0, 0.3]);
    const backend: NetBackend = {
      fd: NET_FD,
      send(frame) {
        if (frame.length < ETH_HLEN || frame.length > NET_MAX_FRAME) {
          violations.push(`net backend: sent a ${frame.length}-byte frame`);
        }
        if (r.chance(txFail)) throw failure(r, "ENOBUFS (fuzz)");
      },
      receive(buf) {
        if (r.chance(rxFail)) throw failure(r, "EIO (fuzz)");
        const len = inbox.shift();
        if (len === undefined) return 0;
        const n = Math.min(len, buf.length); // read(2) truncates
        buf.fill(0x77, 0, Math.min(n, 64));
        return n;
      },
    };
    return {
      features,
      config,
      fds: [NET_FD],
      create: (ctx, queues) => createNetHandler(ctx, queues, backend),
      request(r, q) {
        if (q === 0) {
          const bufs = r.chance(0.03) ? pieces(r, new Uint8Array(4), 1) : [];
          const len = r.pick([NET_HDR_SIZE + ETH_HLEN, 25, 60, 1526, 2048, 12, 0, 9100]);
          return [...bufs, ...space(r, len, 2)];
        }
        const frameLen = r.pick([0, 13, ETH_HLEN, 60, 1514, r.int(3000)]);
        const data = new Uint8Array(NET_HDR_SIZE + frameLen);
        if (r.chance(0.05)) data[1] = r.int(256); // gso_type
        const bufs = pieces(r, r.chance(0.05) ? data.subarray(0, r.int(NET_HDR_SIZE)) : data, 3);
        if (r.chance(0.03)) bufs.push({ len: 16, write: true });
        return bufs;
      },
    };
  },
};

// virtio-console: a fake terminal that takes part of the output, or fails.

const CON_FD = 9;
const CON_OUT_FD = 11;

const consoleDevice: FuzzDevice = {
  name: "virtio-console",
  salt: 3,
  queues: 2,
  cases: 25000,
  maxWritten: [Infinity, 0], // transmit buffers come back with len 0
  begin(r) {
    const model = virtioConsoleModel(r.chance(0.5) ? { cols: 80, rows: 25 } : {});
    const features = negotiate(r, virtioOfferedFeatures(model));
    const config = new Uint8Array(model.configSize);
    model.initConfig(config);
    let input = r.pick([0, 0, 5, 100, 5000]);
    const writeMode = r.pick(["all", "all", "partial", "zero", "throw", "odd"] as const);
    const readMode = r.pick(["data", "data", "data", "closed", "throw", "odd"] as const);
    const backend: ConsoleBackend = {
      fd: r.chance(0.9) ? CON_FD : null,
      outFd: r.pick([undefined, null, CON_OUT_FD, CON_OUT_FD, -1]),
      write(bytes) {
        switch (writeMode) {
          case "all":
            return bytes.length;
          case "partial":
            return r.int(bytes.length + 1);
          case "zero":
            return r.chance(0.7) ? 0 : bytes.length;
          case "throw":
            if (r.chance(0.5)) throw failure(r, "EPIPE (fuzz)");
            return bytes.length;
          default:
            return r.pick([NaN, -5, 2.5, 1e9, Infinity, bytes.length]);
        }
      },
      read(buf) {
        switch (readMode) {
          case "closed":
            return r.chance(0.5) ? -1 : 0;
          case "throw":
            throw failure(r, "EIO (fuzz)");
          case "odd":
            return r.pick([NaN, 0.5, 1e9, -0.5, Infinity, 1]);
          default: {
            const n = Math.min(input, buf.length);
            buf.fill(0x61, 0, n);
            input -= n;
            return n;
          }
        }
      },
    };
    return {
      features,
      config,
      fds: [CON_FD, CON_OUT_FD],
      create: (ctx, queues) => createConsoleHandler(ctx, queues, backend),
      request(r, q) {
        if (q === 0) {
          const bufs = r.chance(0.03) ? pieces(r, new Uint8Array(4), 1) : [];
          return [...bufs, ...space(r, r.pick([0, 1, 16, 64, 1024]), 2)];
        }
        const bufs = pieces(r, new Uint8Array(r.pick([0, 1, 5, 80, 300])).fill(0x41), 3);
        if (r.chance(0.03)) bufs.push({ len: 8, write: true });
        return bufs;
      },
    };
  },
};

// virtio-rng: a random source that sometimes fails.

const rngDevice: FuzzDevice = {
  name: "virtio-rng",
  salt: 4,
  queues: 1,
  cases: 20000,
  maxWritten: [VIRTIO_RNG_MAX_CHAIN_BYTES],
  begin(r, violations) {
    const failRate = r.pick([0, 0, 0, 0.3, 1]);
    const source: RandomSource = {
      fill(dst) {
        if (dst.length > RANDOM_SOURCE_MAX_FILL) {
          violations.push(`rng source asked for ${dst.length} bytes`);
        }
        if (r.chance(failRate)) throw failure(r, "getrandom failed (fuzz)");
        dst.fill(0x5a);
      },
    };
    return {
      features: negotiate(r, virtioOfferedFeatures(virtioRngModel())),
      config: new Uint8Array(0),
      fds: [],
      create: (ctx, queues) => createRngHandler(ctx, queues, source),
      request(r) {
        const bufs = r.chance(0.03) ? pieces(r, new Uint8Array(4), 1) : [];
        if (r.chance(0.05)) {
          // More than VIRTIO_RNG_MAX_CHAIN_BYTES in one chain.
          for (let i = 0; i < 8; i++) bufs.push({ len: 0x3000, write: true });
          return bufs;
        }
        const len = r.pick([0, 1, 16, 64, 512, 4096, r.int(0x4000)]);
        return [...bufs, ...space(r, len, r.pick([1, 1, 2, 3]))];
      },
    };
  },
};

// ---------------------------------------------------------------------------
// The case runner: the I/O worker's flow over a random guest.

type Outcome = "served" | "needs-reset" | "idle";

/** Runs one case; returns its outcome, or throws (with the seed) on a bug. */
function runCase(dev: FuzzDevice, ram: FuzzRam, seed: number): Outcome {
  ram.clear();
  const r = new Prng(seed);
  const mem = ram.mem;
  const heap = new Heap();
  const violations: string[] = [];
  const bad = r.pick([0, 0, 0, 0.01, 0.03, 0.1, 0.3]);
  const cd = dev.begin(r, violations);
  const dqs: (DriverQueue | null)[] = [];
  const ctx: VirtioQueueContext = {
    memory: mem,
    features: cd.features,
    config: cd.config,
    interrupt(q) {
      if (!(Number.isInteger(q) && q >= 0 && q < dev.queues && dqs[q])) {
        violations.push(`interrupt for queue ${q}, which is not enabled`);
      }
    },
    configChanged() {},
    log() {},
  };
  let handler: VirtioQueueHandler | null = null;
  let outcome: Outcome;
  const round = (q: number) => {
    const dq = dqs[q];
    if (!dq) return;
    dq.reclaim();
    const heads: number[] = [];
    for (let n = 1 + r.int(4); n > 0; n--) {
      const head = writeChain(r, mem, heap, dq, cd.request(r, q), bad);
      if (head !== null) heads.push(head);
    }
    if (heads.length > 0 || r.chance(bad)) offer(r, mem, dq, heads, bad);
  };
  try {
    // sync(): a SplitQueue per enabled queue (VirtqueueError: NEEDS_RESET), then the handler.
    for (let q = 0; q < dev.queues; q++) {
      if (r.chance(0.05)) {
        dqs.push(null);
        continue;
      }
      const layout = genLayout(r, heap, cd.features, bad);
      const max = dev.maxWritten?.[q];
      const queue = new CheckedQueue(mem, layout, violations, `queue ${q}`, max);
      dqs.push(new DriverQueue(r, layout, queue));
      if (r.chance(0.3)) put16(mem, layout.avail, 1); // VIRTQ_AVAIL_F_NO_INTERRUPT
      if (layout.eventIdx) put16(mem, layout.avail + 4 + 2 * layout.size, r.u16());
    }
    // Buffers made available before DRIVER_OK.
    for (let q = 0; q < dev.queues; q++) if (r.chance(0.8)) round(q);
    handler = cd.create(ctx, dqs.map((d) => d?.queue ?? null));
    // A fresh handler looks at every queue.
    for (let q = 0; q < dev.queues; q++) handler.notify(q);
    for (let steps = r.int(5); steps > 0; steps--) {
      const q = r.int(dev.queues);
      if (r.chance(0.6)) {
        // The driver adds buffers, and usually kicks the queue (§2.7.13).
        round(q);
        if (r.chance(0.8)) {
          handler.notify(q);
          continue;
        }
      }
      const polled = handler.pollFds?.() ?? [];
      const writable = handler.pollWritableFds?.() ?? [];
      for (const fd of [...polled, ...writable]) {
        if (!Number.isInteger(fd) || fd < 0) violations.push(`polls fd ${fd}`);
      }
      if (r.chance(0.6)) {
        handler.notify(r.chance(0.95) ? q : r.pick([dev.queues, 7, -1]));
      } else {
        const fds = [...polled, ...writable];
        const fd = fds.length > 0 && r.chance(0.8) ? r.pick(fds) : r.pick([...cd.fds, 1234]);
        handler.ready?.(fd);
      }
    }
    // Served: the device published a used idx past 0 on some queue (its own
    // count; the guest's copy may sit under an overlapping ring).
    outcome = dqs.some((d) => d !== null && d.queue.usedIdx !== 0) ? "served" : "idle";
    handler.close?.();
  } catch (e) {
    if (!(e instanceof VirtqueueError)) throw e;
    // A driver that follows the spec must never get here.
    if (bad === 0) violations.push(`a well-formed driver got NEEDS_RESET: ${e.message}`);
    // fail(): the worker drops the handler and sets DEVICE_NEEDS_RESET.
    handler?.close?.();
    outcome = "needs-reset";
  }
  if (!ram.intact()) violations.push("a byte outside guest RAM changed");
  if (violations.length > 0) throw new Error(violations.slice(0, 5).join("; "));
  return outcome;
}

/** Runs a device's fuzz (or the replayed seed) and prints its summary line. */
function fuzzDevice(dev: FuzzDevice): void {
  const ram = new FuzzRam(FUZZ_RANGES, FUZZ_SPAN);
  let seeds: number[];
  if (REPLAY !== undefined) {
    const seed = Number(REPLAY) >>> 0;
    seeds = seed >>> 24 === dev.salt ? [seed] : [];
  } else {
    const n = Math.round(dev.cases * SCALE);
    seeds = Array.from({ length: n }, (_, i) => caseSeed(dev.salt, i));
  }
  const counts: Record<Outcome, number> = { served: 0, "needs-reset": 0, idle: 0 };
  const failures: string[] = [];
  const t0 = performance.now();
  for (const seed of seeds) {
    try {
      counts[runCase(dev, ram, seed)]++;
    } catch (e) {
      failures.push(
        `${dev.name} case seed ${hex(seed)} ` +
          `(replay: DHYVE_FUZZ_SEED=${hex(seed)} deno test -A devices/virtio/fuzz_test.ts): ` +
          `${(e as Error)?.stack ?? e}`,
      );
      ram.span.fill(SENTINEL); // a fresh span for the next case
      if (failures.length >= MAX_FAILURES) break;
    }
  }
  const ms = Math.round(performance.now() - t0);
  console.log(
    `fuzz ${dev.name}: ${seeds.length} cases: ${counts.served} served, ` +
      `${counts["needs-reset"]} needs-reset, ${counts.idle} idle, ` +
      `${failures.length} failed, ${ms} ms`,
  );
  if (failures.length > 0) {
    assert.fail(`${failures.length} failing cases:\n${failures.join("\n\n")}`);
  }
  if (REPLAY === undefined) {
    // The generator must reach both ends, or the fuzz proves little.
    assert.ok(counts.served > seeds.length / 5, `${dev.name}: too few cases served`);
    assert.ok(counts["needs-reset"] > seeds.length / 10, `${dev.name}: too few malformed rings`);
  }
}

Deno.test("fuzz: device counts add up to at least 100,000 cases", () => {
  const total = [blkDevice, netDevice, consoleDevice, rngDevice].reduce((n, d) => n + d.cases, 0);
  assert.ok(total >= 100_000, `${total} cases`);
});

for (const dev of [blkDevice, netDevice, consoleDevice, rngDevice]) {
  Deno.test(`fuzz ${dev.name}: random queues end in NEEDS_RESET or served, nothing escapes`, () => {
    fuzzDevice(dev);
  });
}

// ---------------------------------------------------------------------------
// The transport: random BAR, configuration space and MSI-X accesses.

/**
 * A model like pci_test's, with three queues (one of size 1), 12 bytes of
 * configuration (bytes 8-11 writable), and ACCESS_PLATFORM among its
 * features, which the transport must never offer.
 */
function fakePciModel(): VirtioDeviceModel {
  return {
    deviceId: 42,
    pciClass: 0xff0000,
    features: featureBit(0) | featureBit(5) | featureBit(VIRTIO_F.accessPlatform),
    queueSizes: [256, 64, 1],
    configSize: 12,
    initConfig(config) {
      for (let i = 0; i < 8; i++) config[i] = 0x11 * (i + 1);
    },
    configWritable: (offset, size) => offset >= 8 && offset + size <= 12,
  };
}

const PCI_MODELS: readonly (readonly [string, () => VirtioDeviceModel])[] = [
  ["fake", fakePciModel],
  ["blk", () => virtioBlkModel({ size: 1 << 20, readonly: false, serial: "fuzz", discard: true })],
  ["net", () => virtioNetModel({ mac: Uint8Array.of(2, 0, 0, 0, 0, 1), mtu: 1500 })],
  ["console", () => virtioConsoleModel({ cols: 80, rows: 25 })],
  ["rng", () => virtioRngModel()],
];

/** The common configuration registers and their widths. */
const COMMON_REGS: readonly (readonly [number, AccessSize])[] = [
  [C.deviceFeatureSelect, 4],
  [C.deviceFeature, 4],
  [C.driverFeatureSelect, 4],
  [C.driverFeature, 4],
  [C.configMsixVector, 2],
  [C.numQueues, 2],
  [C.deviceStatus, 1],
  [C.configGeneration, 1],
  [C.queueSelect, 2],
  [C.queueSize, 2],
  [C.queueMsixVector, 2],
  [C.queueEnable, 2],
  [C.queueNotifyOff, 2],
  [C.queueDesc, 4],
  [C.queueDesc + 4, 4],
  [C.queueDriver, 4],
  [C.queueDriver + 4, 4],
  [C.queueDevice, 4],
  [C.queueDevice + 4, 4],
  [C.queueNotifyData, 2],
  [C.queueReset, 2],
];
const SIZES: readonly AccessSize[] = [1, 2, 4, 8];
const ISR_AT = 0x1000, DEVCFG_AT = 0x2000, NOTIFY_AT = 0x3000;
const PCI_CFG_BYTES = 0x100;
const isPow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

/** `v` cut to `size` bytes (8: kept below 2^53, as a number can hold). */
function sized(v: number, size: AccessSize): number {
  return size === 8 ? v % 2 ** 53 : v % 2 ** (8 * size);
}

/** A transport under test, with recorders. */
class PciRig {
  readonly model: VirtioDeviceModel;
  readonly fn: VirtioPciFunction;
  readonly intx = new FakeIntx();
  readonly msi = new FakeMsi();
  readonly n: number;
  kicks = 0;
  wakes = 0;
  moved = 0;

  constructor(model: VirtioDeviceModel, wake: boolean, violations: string[]) {
    this.model = model;
    this.n = model.queueSizes.length;
    this.fn = new VirtioPciFunction(model, {
      msi: this.msi,
      intx: { pin: 1, line: 11, sink: this.intx },
      kick: (q) => {
        if (!(Number.isInteger(q) && q >= 0 && q < this.n)) violations.push(`kick(${q})`);
        this.kicks++;
      },
      wake: wake ? () => void this.wakes++ : undefined,
      notifyMoved: () => void this.moved++,
      log: () => {},
    });
  }

  rd(offset: number, size: AccessSize): number {
    return this.fn.barRead(0, offset, size);
  }

  wr(offset: number, size: AccessSize, value: number): void {
    this.fn.barWrite(0, offset, size, value);
  }
}

/**
 * What a driver sees of the virtio registers (common configuration for
 * every queue, ISR), for comparing a reset function with a fresh one. It
 * selects registers as a driver would, then selects 0 again (their
 * power-on value). config_generation is left out: only a PCI reset clears it.
 */
function registerSnapshot(rig: PciRig): (number | string)[] {
  const { fn } = rig;
  const out: (number | string)[] = [fn.status, String(fn.resetPending), String(fn.features)];
  out.push(rig.rd(C.deviceFeatureSelect, 4), rig.rd(C.driverFeatureSelect, 4));
  for (const sel of [0, 1, 2]) {
    rig.wr(C.deviceFeatureSelect, 4, sel);
    rig.wr(C.driverFeatureSelect, 4, sel);
    out.push(rig.rd(C.deviceFeature, 4), rig.rd(C.driverFeature, 4));
  }
  rig.wr(C.deviceFeatureSelect, 4, 0);
  rig.wr(C.driverFeatureSelect, 4, 0);
  out.push(rig.rd(C.configMsixVector, 2), rig.rd(C.numQueues, 2), rig.rd(C.queueSelect, 2));
  for (let q = 0; q < rig.n; q++) {
    rig.wr(C.queueSelect, 2, q);
    for (const [at, size] of COMMON_REGS.slice(9)) out.push(rig.rd(at, size));
    out.push(String(fn.queueLayout(q)));
  }
  rig.wr(C.queueSelect, 2, 0);
  out.push(fn.state.isr, String(fn.intxLevel));
  return out;
}

/** Configuration dwords, minus the status register (its interrupt bit follows the ISR). */
function configSnapshot(fn: VirtioPciFunction): number[] {
  const out: number[] = [];
  for (let at = 0; at < PCI_CFG_BYTES; at += 4) {
    out.push(at === 4 ? fn.config.read(at, 2) : fn.config.read(at, 4));
  }
  return out;
}

/** The MSI-X table and PBA as the BAR shows them. */
function msixSnapshot(fn: VirtioPciFunction): number[] {
  const out: number[] = [];
  const x = fn.msix!;
  for (let at = 0; at < 16 * x.vectors; at += 4) out.push(fn.barRead(1, x.tableOffset + at, 4));
  for (let at = 0; at < 8; at += 4) out.push(fn.barRead(1, x.pbaOffset + at, 4));
  return out;
}

/** The transport's invariants, as a driver and the I/O worker can see them. */
function checkPci(rig: PciRig, violations: string[]): void {
  const { fn, model, n } = rig;
  const bad = (what: string) => violations.push(what);
  const status = fn.status;
  if (rig.rd(C.deviceStatus, 1) !== (status & 0xff)) bad("device_status reads differently");
  if (((status & S.deviceNeedsReset) !== 0) !== fn.needsReset) bad("NEEDS_RESET bit");
  const want = S.driverOk | S.featuresOk;
  if (fn.driverOk && ((status & want) !== want || fn.needsReset || fn.resetPending)) {
    bad(`driverOk with status ${hex(status)}`);
  }
  const f = fn.features;
  if ((f & ~fn.offeredFeatures) !== 0n) bad(`negotiated ${f} beyond offered`);
  if (fn.offeredFeatures & featureBit(VIRTIO_F.accessPlatform)) bad("ACCESS_PLATFORM offered");
  if ((status & S.featuresOk) === 0 && f !== 0n) bad("features without FEATURES_OK");
  if ((status & S.featuresOk) !== 0 && (f & featureBit(VIRTIO_F.version1)) === 0n) {
    bad("FEATURES_OK without VERSION_1");
  }
  for (const q of [-1, 0.5, n, 0xffff]) {
    if (fn.queueLayout(q) !== null) bad(`queueLayout(${q}) is not null`);
    if (fn.notifyAddress(q) !== null) bad(`notifyAddress(${q}) is not null`);
  }
  for (let q = 0; q < n; q++) {
    const l = fn.queueLayout(q);
    if (l === null) continue;
    if (!isPow2(l.size) || l.size > model.queueSizes[q]) bad(`queue ${q} size ${l.size}`);
    for (const a of [l.desc, l.avail, l.used]) {
      if (!(Number.isInteger(a) && a >= 0 && a < 2 ** 64)) bad(`queue ${q} address ${a}`);
    }
    if (l.eventIdx !== ((f & featureBit(VIRTIO_F.ringEventIdx)) !== 0n)) bad("eventIdx");
    if (l.indirect !== ((f & featureBit(VIRTIO_F.ringIndirectDesc)) !== 0n)) bad("indirect");
  }
  if (rig.rd(C.numQueues, 2) !== n) bad("num_queues");
  const sel = rig.rd(C.queueSelect, 2);
  const size = rig.rd(C.queueSize, 2);
  if (sel < n ? !isPow2(size) || size > model.queueSizes[sel] : size !== 0) {
    bad(`queue_size ${size} for queue ${sel}`);
  }
  const vectors = fn.msix!.vectors;
  for (const at of [C.configMsixVector, C.queueMsixVector]) {
    const v = rig.rd(at, 2);
    if (v >= vectors && v !== VIRTIO_MSI_NO_VECTOR) bad(`MSI-X vector ${v} read back`);
  }
  if (fn.state.isr & ~3) bad(`ISR ${fn.state.isr}`);
  if (rig.intx.level !== fn.intxLine) bad("INTx sink level differs from intxLine");
}

/** A value a driver might write to the common register at `at`. */
function commonValue(r: Prng, rig: PciRig, at: number): number {
  const n = rig.n;
  switch (at) {
    case C.deviceFeatureSelect:
    case C.driverFeatureSelect:
      return r.pick([0, 1, 1, 2, r.u32()]);
    case C.driverFeature: {
      const sel = rig.fn.state.driverFeatureSelect;
      const half = sel < 2
        ? Number((rig.fn.offeredFeatures >> BigInt(32 * sel)) & 0xffff_ffffn)
        : 0;
      return r.chance(0.7) ? half : r.chance(0.5) ? (half & r.u32()) >>> 0 : r.u32();
    }
    case C.configMsixVector:
    case C.queueMsixVector:
      return r.pick([0, 1, 2, n, n + 1, VIRTIO_MSI_NO_VECTOR, r.u16()]);
    case C.deviceStatus:
      return r.pick([0, 0, 1, 3, 0xb, 0xf, 0x4f, 0x40, 0x80, 0x7, r.int(256)]);
    case C.queueSelect:
      return r.pick([0, 0, 1, 2, n - 1, n, 0xffff, r.u16()]);
    case C.queueSize:
      return r.pick([1, 2, 4, 8, 64, 128, 256, 512, 3, 0, r.u16()]);
    case C.queueEnable:
      return r.pick([1, 1, 0, r.u16()]);
    case C.queueDesc:
    case C.queueDriver:
    case C.queueDevice:
      return r.chance(0.7) ? 0x1000 * r.int(64) : r.u32();
    case C.queueDesc + 4:
    case C.queueDriver + 4:
    case C.queueDevice + 4:
      return r.chance(0.8) ? 0 : r.pick([1, 0x1f_ffff, 0x20_0000, 0xffff_ffff, r.u32()]);
    default:
      return r.u32();
  }
}

/** A prefix of Linux's probe (virtio_pci_modern + virtio_dev_probe), with fuzzed values. */
function driverInit(r: Prng, rig: PciRig, onReset: () => void): void {
  const { fn, n } = rig;
  const steps = 1 + r.int(7);
  if (r.chance(0.4)) {
    // MSI-X as Linux sets it up: every entry, unmasked, then enabled.
    const x = fn.msix!;
    for (let v = 0; v < x.vectors; v++) {
      fn.barWrite(1, x.tableOffset + 16 * v, 4, 0xfee0_0000 + (v << 12));
      fn.barWrite(1, x.tableOffset + 16 * v + 4, 4, 0);
      fn.barWrite(1, x.tableOffset + 16 * v + 8, 4, 0x40 + v);
      fn.barWrite(1, x.tableOffset + 16 * v + 12, 4, r.chance(0.9) ? 0 : 1);
    }
    fn.configWrite(x.offset + 2, 2, 0x8000);
  }
  rig.wr(C.deviceStatus, 1, 0);
  if (fn.resetPending && r.chance(0.9)) onReset();
  if (steps < 2) return;
  rig.wr(C.deviceStatus, 1, S.acknowledge);
  rig.wr(C.deviceStatus, 1, S.acknowledge | S.driver);
  if (steps < 3) return;
  for (const sel of [0, 1]) {
    rig.wr(C.driverFeatureSelect, 4, sel);
    const half = Number((fn.offeredFeatures >> BigInt(32 * sel)) & 0xffff_ffffn);
    rig.wr(C.driverFeature, 4, r.chance(0.8) ? half : (half & r.u32()) >>> 0);
  }
  if (steps < 4) return;
  rig.wr(C.deviceStatus, 1, S.acknowledge | S.driver | S.featuresOk);
  if (steps < 5) return;
  for (let q = 0; q < n; q++) {
    rig.wr(C.queueSelect, 2, q);
    const max = rig.rd(C.queueSize, 2);
    rig.wr(C.queueSize, 2, r.chance(0.8) ? max >> r.int(3) : r.pick([3, 0, 2 * max]));
    rig.wr(C.queueDesc, 8, 0x10000 * q);
    rig.wr(C.queueDriver, 8, 0x10000 * q + 0x4000);
    rig.wr(C.queueDevice, 8, 0x10000 * q + 0x8000);
    rig.wr(C.queueMsixVector, 2, r.chance(0.8) ? q + 1 : r.u16());
    if (q === 0) rig.wr(C.configMsixVector, 2, r.chance(0.8) ? 0 : r.u16());
    if (steps >= 6 && r.chance(0.9)) rig.wr(C.queueEnable, 2, 1);
  }
  if (steps < 7) return;
  rig.wr(C.deviceStatus, 1, S.acknowledge | S.driver | S.featuresOk | S.driverOk);
}

/** Counters of the transport fuzz. */
interface PciCounts {
  ops: number;
  driverOk: number;
  needsReset: number;
  virtioResets: number;
  pciResets: number;
  layouts: number;
  kicks: number;
  messages: number;
}

/** One transport case: random accesses, each followed by the invariant checks. */
function runPciCase(seed: number, counts: PciCounts): void {
  const r = new Prng(seed);
  const violations: string[] = [];
  const [, make] = r.pick(PCI_MODELS);
  const model = make();
  const rig = new PciRig(model, r.chance(0.7), violations);
  const fresh = new PciRig(model, true, []);
  const { fn, n } = rig;
  const vectors = fn.msix!.vectors;
  const capAt = fn.pciCfgCapOffset;
  const msixAt = fn.msix!.offset;
  const checkRead = (v: number, size: AccessSize, what: string) => {
    if (!(Number.isInteger(v) && v >= 0 && v < 2 ** (8 * size))) {
      violations.push(`${what} read ${v} (size ${size})`);
    }
  };
  /** The I/O worker finishes a reset: power-on values, and nothing else moves. */
  const completeReset = () => {
    const cfg = configSnapshot(fn), msix = msixSnapshot(fn);
    const dev = Array.from(fn.deviceConfig);
    const gen = fn.resetGeneration;
    fn.completeReset();
    counts.virtioResets++;
    assert.deepEqual(registerSnapshot(rig), registerSnapshot(fresh), "completeReset() values");
    assert.deepEqual(configSnapshot(fn), cfg, "completeReset() changed configuration space");
    assert.deepEqual(msixSnapshot(fn), msix, "completeReset() changed the MSI-X table");
    assert.deepEqual(Array.from(fn.deviceConfig), dev, "completeReset() changed device config");
    assert.equal(fn.resetGeneration, (gen + 1) >>> 0, "reset generation");
  };
  /** A PCI reset: everything as at power-on. */
  const pciReset = () => {
    fn.reset();
    counts.pciResets++;
    assert.deepEqual(registerSnapshot(rig), registerSnapshot(fresh), "reset() values");
    assert.deepEqual(configSnapshot(fn), configSnapshot(fresh.fn), "reset() configuration");
    assert.deepEqual(msixSnapshot(fn), msixSnapshot(fresh.fn), "reset() MSI-X table");
    assert.deepEqual(
      Array.from(fn.deviceConfig),
      Array.from(fresh.fn.deviceConfig),
      "reset() device config",
    );
  };
  let sawDriverOk = false, sawNeedsReset = false;
  const ops = 30 + r.int(40);
  for (let i = 0; i < ops; i++) {
    const size = r.pick(SIZES);
    switch (r.int(16)) {
      case 0:
      case 1:
      case 2: {
        // Common configuration, mostly whole registers.
        const [at, width] = r.chance(0.85) ? r.pick(COMMON_REGS) : [r.int(0x48), size] as const;
        const w = r.chance(0.85) ? width : size;
        rig.wr(at, w, sized(commonValue(r, rig, at), w));
        break;
      }
      case 3: {
        const at = r.chance(0.9) ? r.int(VIRTIO_PCI_COMMON_LENGTH + 8) : r.int(0x1000);
        checkRead(rig.rd(at, size), size, `common ${hex(at)}`);
        break;
      }
      case 4:
        driverInit(r, rig, completeReset);
        break;
      case 5: {
        // ISR (read clears), device configuration, the notify words, beyond.
        const at = r.pick([
          ISR_AT + r.int(8),
          DEVCFG_AT + r.int(model.configSize + 8),
          NOTIFY_AT + 4 * r.int(n + 2) + (r.chance(0.1) ? r.int(4) : 0),
          NOTIFY_AT + r.int(0x1000),
          0x4000 + r.int(0x4000),
          r.u32(),
        ]);
        if (r.chance(0.5)) checkRead(rig.rd(at, size), size, `BAR0 ${hex(at)}`);
        else rig.wr(at, size, sized(r.chance(0.5) ? r.int(n + 1) : r.u32(), size));
        break;
      }
      case 6: {
        // The MSI-X table and PBA (BAR1), and BARs the function does not have.
        const bar = r.chance(0.9) ? 1 : r.pick([2, 3, 5, 6]);
        const at = r.chance(0.8)
          ? 16 * r.int(vectors + 1) + r.pick([0, 4, 8, 12])
          : r.pick([0x800 + r.int(16), r.int(0x1000), r.u32()]);
        const w = r.chance(0.7) ? 4 : size;
        const v = at % 16 === 0
          ? 0xfee0_0000 + (r.int(4) << 12)
          : at % 16 === 12
          ? r.pick([0, 1, r.u32()])
          : r.u32();
        if (r.chance(0.7)) fn.barWrite(bar, at, w, sized(v, w));
        else checkRead(fn.barRead(bar, at, w), w, `BAR${bar} ${hex(at)}`);
        break;
      }
      case 7:
      case 8:
      case 9: {
        // Configuration space: command, BARs, MSI-X control, the PCI cfg access window.
        const choices: [number, () => number][] = [
          [0x04, () => r.pick([0, 2, 6, 0x406, 0x400, r.u16()])],
          [0x10, () => r.pick([0xffff_ffff, 0xc000_0000, 0xc000_8000, 0, r.u32()])],
          [0x14, () => r.pick([0xffff_ffff, 0xc000_4000, 0, r.u32()])],
          [0x18 + 4 * r.int(4), () => r.u32()],
          [msixAt + 2, () => r.pick([0x8000, 0xc000, 0x4000, 0])],
          [capAt + 4, () => r.pick([0, 1, 2, 5, 0xff])],
          [capAt + 8, () => r.pick([0, 0x14, 0x16, 0x18, 0x1000, 0x2000, 0x3000, 0x3004, r.u32()])],
          [capAt + 12, () => r.pick([1, 2, 4, 4, 0, 3, 8])],
          [capAt + 16, () => r.u32()],
          [r.int(PCI_CFG_BYTES), () => r.u32()],
          [r.int(0x1000), () => r.u32()],
        ];
        const [at, value] = r.pick(choices);
        const w = r.chance(0.7) ? (at % 4 === 0 ? 4 : at % 2 === 0 ? 2 : 1) : size;
        if (r.chance(0.6)) fn.configWrite(at, w, sized(value(), w));
        else checkRead(fn.configRead(at, w), w === 8 ? 4 : w, `config ${hex(at)}`);
        break;
      }
      case 10:
      case 11:
        // What the I/O worker does: finish a pending reset, raise interrupts.
        if (fn.resetPending && r.chance(0.7)) completeReset();
        else if (r.chance(0.5)) fn.interrupt(r.pick([0, 1, n - 1, n, -1, 0.5]));
        else fn.configChanged();
        break;
      case 12:
        if (r.chance(0.3)) fn.setNeedsReset(r.chance(0.5) ? "fuzz" : undefined);
        else fn.interrupt(r.int(n));
        break;
      case 13:
        if (r.chance(0.05)) pciReset();
        else checkRead(rig.rd(ISR_AT, 1), 1, "ISR");
        break;
      default: {
        const q = r.pick([0, 1, n - 1, n, -1]);
        const l = fn.queueLayout(q);
        if (l) counts.layouts++;
        const a = fn.notifyAddress(q);
        if (a !== null && !(Number.isInteger(a) && a >= NOTIFY_AT)) {
          violations.push(`notifyAddress(${q}) = ${a}`);
        }
      }
    }
    checkPci(rig, violations);
    sawDriverOk ||= fn.driverOk;
    sawNeedsReset ||= fn.needsReset;
    if (violations.length > 0) break;
  }
  counts.ops += ops;
  counts.kicks += rig.kicks;
  counts.messages += rig.msi.sent.length;
  if (sawDriverOk) counts.driverOk++;
  if (sawNeedsReset) counts.needsReset++;
  if (violations.length > 0) throw new Error(violations.slice(0, 5).join("; "));
}

const PCI_SALT = 5;
const PCI_CASES = 4000;

Deno.test("fuzz virtio-pci transport: random register accesses keep the invariants", () => {
  let seeds: number[];
  if (REPLAY !== undefined) {
    const seed = Number(REPLAY) >>> 0;
    seeds = seed >>> 24 === PCI_SALT ? [seed] : [];
  } else {
    seeds = Array.from({ length: Math.round(PCI_CASES * SCALE) }, (_, i) => caseSeed(PCI_SALT, i));
  }
  const counts: PciCounts = {
    ops: 0,
    driverOk: 0,
    needsReset: 0,
    virtioResets: 0,
    pciResets: 0,
    layouts: 0,
    kicks: 0,
    messages: 0,
  };
  const failures: string[] = [];
  const t0 = performance.now();
  for (const seed of seeds) {
    try {
      runPciCase(seed, counts);
    } catch (e) {
      failures.push(
        `virtio-pci case seed ${hex(seed)} ` +
          `(replay: DHYVE_FUZZ_SEED=${hex(seed)} deno test -A devices/virtio/fuzz_test.ts): ` +
          `${(e as Error)?.stack ?? e}`,
      );
      if (failures.length >= MAX_FAILURES) break;
    }
  }
  const ms = Math.round(performance.now() - t0);
  console.log(
    `fuzz virtio-pci: ${seeds.length} cases, ${counts.ops} accesses: ` +
      `${counts.driverOk} reached DRIVER_OK, ${counts.needsReset} NEEDS_RESET, ` +
      `${counts.virtioResets} virtio resets, ${counts.pciResets} PCI resets, ` +
      `${counts.layouts} queue layouts, ${counts.kicks} kicks, ${counts.messages} MSI-X messages, ` +
      `${failures.length} failed, ${ms} ms`,
  );
  if (failures.length > 0) {
    assert.fail(`${failures.length} failing cases:\n${failures.join("\n\n")}`);
  }
  if (REPLAY === undefined) {
    assert.ok(counts.driverOk > seeds.length / 5, "too few cases reached DRIVER_OK");
    assert.ok(counts.virtioResets > seeds.length / 5, "too few resets");
  }
});

// ---------------------------------------------------------------------------
// Targeted malformed rings, per device and queue.

/** RAM for the targeted tests: 256 KiB, a 64 KiB hole, 1 MiB, then 4 KiB that is not RAM. */
const BIG_LOW: RamRange = { name: "low", gpa: 0, size: 0x40000 };
const BIG_HIGH: RamRange = { name: "high", gpa: 0x50000, size: 0x100000 };
const BIG_HOLE = 0x40000;
const BIG_SPAN = 0x151000;
const BIG_RAM = new FuzzRam([BIG_LOW, BIG_HIGH], BIG_SPAN);
/** A valid buffer address (in low RAM) and an indirect table's address. */
const BUF = 0x10000;
const TABLE = 0x20000;
const SHAPE_QSIZE = 8;

/** A device for the targeted tests: a handler over quiet backends. */
interface ShapeDevice {
  readonly name: string;
  readonly queues: number;
  /** Per queue, the direction of its buffers (WRITE or 0), as a driver fills them. */
  readonly dirs: readonly number[];
  /** A queue that serves a chain of these buffers [len, flags] at once (data at BUF). */
  readonly serves: { readonly q: number; readonly bufs: readonly (readonly [number, number])[] };
  create(ctx: VirtioQueueContext, queues: readonly (SplitQueue | null)[]): VirtioQueueHandler;
}

const quietDisk: BlockBackend = {
  size: DISK_BYTES,
  readonly: false,
  read: () => {},
  write: () => {},
  flush: () => {},
  discard: () => {},
  writeZeroes: () => {},
};

const SHAPE_DEVICES: readonly ShapeDevice[] = [
  {
    name: "virtio-blk",
    queues: 1,
    dirs: [0], // the header comes first
    serves: { q: 0, bufs: [[16, 0], [1, WRITE]] }, // a FLUSH header, then the status
    create: (ctx, queues) =>
      createBlkHandler(ctx, queues, quietDisk, {
        size: DISK_BYTES,
        readonly: false,
        serial: "shape",
        discard: true,
      }),
  },
  {
    name: "virtio-net",
    queues: 2,
    dirs: [WRITE, 0],
    serves: { q: 1, bufs: [[NET_HDR_SIZE + 60, 0]] },
    create: (ctx, queues) =>
      createNetHandler(ctx, queues, { fd: NET_FD, send: () => {}, receive: () => 0 }),
  },
  {
    name: "virtio-console",
    queues: 2,
    dirs: [WRITE, 0],
    serves: { q: 1, bufs: [[4, 0]] },
    create: (ctx, queues) =>
      createConsoleHandler(ctx, queues, {
        fd: CON_FD,
        outFd: CON_OUT_FD,
        write: (b) => b.length,
        read: () => 0,
      }),
  },
  {
    name: "virtio-rng",
    queues: 1,
    dirs: [WRITE],
    serves: { q: 0, bufs: [[16, WRITE]] },
    create: (ctx, queues) => createRngHandler(ctx, queues, { fill: (d) => void d.fill(1) }),
  },
];

/** Queue q's layout in the targeted tests (size 8, INDIRECT_DESC negotiated). */
function shapeLayout(q: number, over: Partial<QueueLayout> = {}): QueueLayout {
  const base = 0x1000 + 0x4000 * q;
  return {
    size: SHAPE_QSIZE,
    desc: base,
    avail: base + 0x1000,
    used: base + 0x2000,
    eventIdx: false,
    indirect: true,
    ...over,
  };
}

/** The driver side of one queue in the targeted tests. */
class ShapeDriver {
  readonly mem: GuestMemory;
  readonly layout: QueueLayout;
  /** The direction of this queue's buffers (WRITE or 0). */
  readonly dir: number;
  #idx = 0;

  constructor(mem: GuestMemory, layout: QueueLayout, dir: number) {
    this.mem = mem;
    this.layout = layout;
    this.dir = dir;
  }

  /** Descriptor i of the ring's table, or of the table at `table`. */
  desc(i: number, addr: number | bigint, len: number, flags: number, next = 0, table?: number) {
    const at = (table ?? this.layout.desc) + 16 * i;
    this.mem.writeU64(at, BigInt(addr));
    this.mem.writeU32(at + 8, len >>> 0);
    this.mem.writeU16(at + 12, flags);
    this.mem.writeU16(at + 14, next);
  }

  /** Ring entry, then idx (§2.7.13). */
  offer(head: number): void {
    this.mem.writeU16(this.layout.avail + 4 + 2 * (this.#idx % this.layout.size), head);
    this.setAvailIdx(this.#idx + 1);
  }

  setAvailIdx(idx: number): void {
    this.#idx = idx & 0xffff;
    this.mem.writeU16(this.layout.avail + 2, this.#idx);
  }
}

/** A malformed available chain or avail ring: popping it must throw VirtqueueError. */
interface Shape {
  readonly name: string;
  readonly layout?: Partial<QueueLayout>;
  write(d: ShapeDriver): void;
}

/** One buffer at `addr`, in the queue's direction. */
const oneBuffer = (name: string, addr: number | bigint, len = 64): Shape => ({
  name,
  write(d) {
    d.desc(0, addr, len, d.dir);
    d.offer(0);
  },
});

/** An indirect table at TABLE with `entries`, behind descriptor 0 (length `len`). */
function indirectShape(
  name: string,
  entries: readonly [number | bigint, number, number, number][],
  len = 16 * entries.length,
  headFlags: number = INDIRECT,
  layout?: Partial<QueueLayout>,
): Shape {
  return {
    name,
    layout,
    write(d) {
      entries.forEach(([addr, l, flags, next], i) =>
        d.desc(i, addr, l, flags | d.dir, next, TABLE)
      );
      d.desc(0, TABLE, len, headFlags, 0);
      d.offer(0);
    },
  };
}

const SHAPES: readonly Shape[] = [
  // Out-of-RAM descriptors.
  oneBuffer("a buffer in the hole between RAM ranges", BIG_HOLE + 0x100),
  oneBuffer("a buffer straddling the end of a RAM range", BIG_LOW.size - 8, 16),
  oneBuffer("a buffer straddling the start of a RAM range", BIG_HIGH.gpa - 8, 16),
  oneBuffer("a buffer straddling the end of guest RAM", BIG_HIGH.gpa + BIG_HIGH.size - 8, 16),
  oneBuffer("a buffer past guest RAM (4 GiB)", 0x1_0000_0000),
  oneBuffer("a buffer at 2^53", 1n << 53n),
  oneBuffer("a buffer at the top of the 64-bit space", 0xffff_ffff_ffff_fff0n, 16),
  oneBuffer("a buffer of 2^32-1 bytes", BUF, 0xffff_ffff),
  // Loops and oversized chains.
  {
    name: "a loop: 0 -> 1 -> 0",
    write(d) {
      d.desc(0, BUF, 16, d.dir | NEXT, 1);
      d.desc(1, BUF + 16, 16, d.dir | NEXT, 0);
      d.offer(0);
    },
  },
  {
    name: "a descriptor chained to itself",
    write(d) {
      d.desc(0, BUF, 16, d.dir | NEXT, 0);
      d.offer(0);
    },
  },
  {
    name: "a chain longer than the queue (every descriptor, then the first again)",
    write(d) {
      for (let i = 0; i < SHAPE_QSIZE; i++) {
        d.desc(i, BUF + 16 * i, 16, d.dir | NEXT, (i + 1) % SHAPE_QSIZE);
      }
      d.offer(3);
    },
  },
  indirectShape(
    "a chain of more than 2^32-1 bytes (4097 x 1 MiB in an indirect table)",
    Array.from(
      { length: 4097 },
      (_, i) => [BIG_HIGH.gpa, BIG_HIGH.size, i < 4096 ? NEXT : 0, i + 1] as const,
    ),
  ),
  indirectShape("an indirect table of 65537 entries", [[BUF, 16, 0, 0]], 16 * 65537),
  indirectShape("a loop inside an indirect table", [[BUF, 16, NEXT, 1], [BUF, 16, NEXT, 0]]),
  // Bad indices.
  {
    name: "next past the queue size",
    write(d) {
      d.desc(0, BUF, 16, d.dir | NEXT, SHAPE_QSIZE);
      d.offer(0);
    },
  },
  {
    name: "next = 0xffff",
    write(d) {
      d.desc(0, BUF, 16, d.dir | NEXT, 0xffff);
      d.offer(0);
    },
  },
  {
    name: "an avail ring head past the queue size",
    write(d) {
      d.desc(0, BUF, 16, d.dir);
      d.offer(SHAPE_QSIZE);
    },
  },
  {
    name: "an avail ring head of 0xffff",
    write(d) {
      d.offer(0xffff);
    },
  },
  indirectShape("next past the end of an indirect table", [[BUF, 16, NEXT, 2], [BUF, 16, 0, 0]]),
  {
    name: "avail idx more than the queue size ahead",
    write(d) {
      d.desc(0, BUF, 16, d.dir);
      d.setAvailIdx(SHAPE_QSIZE + 1);
    },
  },
  {
    name: "a wrapping avail idx: 0xffff, 65535 ahead of 0",
    write(d) {
      d.desc(0, BUF, 16, d.dir);
      d.setAvailIdx(0xffff);
    },
  },
  // Bad flags and indirect tables.
  {
    name: "device-readable after device-writable",
    write(d) {
      d.desc(0, BUF, 16, WRITE | NEXT, 1);
      d.desc(1, BUF + 16, 16, 0, 0);
      d.offer(0);
    },
  },
  indirectShape("an indirect table of length 0", [[BUF, 16, 0, 0]], 0),
  indirectShape("an indirect table of 24 bytes", [[BUF, 16, 0, 0], [BUF, 16, 0, 0]], 24),
  indirectShape("an indirect table of 2^32-16 bytes", [[BUF, 16, 0, 0]], 0xffff_fff0),
  {
    name: "an indirect table in the hole",
    write(d) {
      d.desc(0, BIG_HOLE, 64, INDIRECT);
      d.offer(0);
    },
  },
  {
    name: "an indirect table straddling the end of a RAM range",
    write(d) {
      d.desc(0, BIG_LOW.size - 16, 32, INDIRECT);
      d.offer(0);
    },
  },
  indirectShape("an indirect descriptor inside an indirect table", [[TABLE, 16, INDIRECT, 0]]),
  indirectShape("INDIRECT together with NEXT", [[BUF, 16, 0, 0]], 16, INDIRECT | NEXT),
  indirectShape("INDIRECT without VIRTIO_F_INDIRECT_DESC", [[BUF, 16, 0, 0]], 16, INDIRECT, {
    indirect: false,
  }),
  indirectShape("a buffer in the hole, inside an indirect table", [[BIG_HOLE, 16, 0, 0]]),
];

/** Ring layouts the I/O worker's `new SplitQueue` must refuse. */
const LAYOUT_SHAPES: readonly (readonly [string, Partial<QueueLayout>])[] = [
  ["size 3, not a power of two", { size: 3 }],
  ["size 0", { size: 0 }],
  ["size 65536", { size: 65536 }],
  ["a descriptor table not 16-byte aligned", { desc: 0x1008 }],
  ["a driver area at an odd address", { avail: 0x2001 }],
  ["a device area not 4-byte aligned", { used: 0x3002 }],
  ["a descriptor table in the hole", { desc: BIG_HOLE }],
  ["a device area straddling the end of a RAM range", { used: BIG_LOW.size - 32 }],
  // Each fits exactly without EVENT_IDX (checked below): the event word does not.
  ["used_event past the end of a RAM range", { avail: BIG_LOW.size - 20, eventIdx: true }],
  ["avail_event past the end of a RAM range", { used: BIG_LOW.size - 68, eventIdx: true }],
  ["a descriptor table past guest RAM", { desc: 0x1_0000_0000 }],
  ["a descriptor table at 2^53", { desc: 2 ** 53 }],
  ["a negative driver area", { avail: -2 }],
];

/** The I/O worker's sync(): a queue per layout, then the handler. */
function shapeSync(dev: ShapeDevice, layouts: readonly QueueLayout[]) {
  const ram = BIG_RAM;
  ram.clear();
  const ctx: VirtioQueueContext = {
    memory: ram.mem,
    features: featureBit(VIRTIO_F.version1) | featureBit(VIRTIO_F.ringIndirectDesc),
    config: new Uint8Array(16),
    interrupt: () => {},
    configChanged: () => {},
    log: () => {},
  };
  const queues = layouts.map((l) => new SplitQueue(ram.mem, l));
  return { ram, queues, handler: dev.create(ctx, queues) };
}

for (const dev of SHAPE_DEVICES) {
  Deno.test(`${dev.name}: malformed rings throw VirtqueueError and write nothing outside RAM`, () => {
    for (let q = 0; q < dev.queues; q++) {
      for (const shape of SHAPES) {
        const layouts = Array.from(
          { length: dev.queues },
          (_, i) => shapeLayout(i, i === q ? shape.layout : {}),
        );
        const { ram, handler } = shapeSync(dev, layouts);
        shape.write(new ShapeDriver(ram.mem, layouts[q], dev.dirs[q]));
        assert.throws(() => handler.notify(q), VirtqueueError, `queue ${q}: ${shape.name}`);
        handler.close?.();
        assert.ok(ram.intact(), `queue ${q}: ${shape.name}: a byte outside RAM changed`);
      }
    }
  });

  Deno.test(`${dev.name}: malformed ring layouts are refused before the handler exists`, () => {
    // The exact fits are accepted: the EVENT_IDX shapes fail on the event word alone.
    shapeSync(dev, [shapeLayout(0, { avail: BIG_LOW.size - 20 })]);
    shapeSync(dev, [shapeLayout(0, { used: BIG_LOW.size - 68 })]);
    for (let q = 0; q < dev.queues; q++) {
      for (const [name, over] of LAYOUT_SHAPES) {
        const layouts = Array.from(
          { length: dev.queues },
          (_, i) => shapeLayout(i, i === q ? over : {}),
        );
        assert.throws(() => shapeSync(dev, layouts), VirtqueueError, `queue ${q}: ${name}`);
        assert.ok(BIG_RAM.intact());
      }
    }
  });

  Deno.test(`${dev.name}: an avail idx that wraps past 0xffff is served`, () => {
    const { q, bufs } = dev.serves;
    const size = 256;
    const layouts = Array.from({ length: dev.queues }, (_, i) => shapeLayout(i, { size }));
    const { ram, queues, handler } = shapeSync(dev, layouts);
    const mem = ram.mem;
    mem.writeU32(BUF, VIRTIO_BLK_T.flush); // blk's header; the others ignore it
    const d = new ShapeDriver(mem, layouts[q], 0);
    // Chains of bufs.length descriptors, written once and offered again and again.
    const perRound = Math.floor(size / bufs.length);
    for (let c = 0; c < perRound; c++) {
      bufs.forEach(([len, flags], k) => {
        const last = k === bufs.length - 1;
        const i = c * bufs.length + k;
        d.desc(i, BUF + 0x100 * k, len, flags | (last ? 0 : NEXT), last ? 0 : i + 1);
      });
    }
    let total = 0;
    while (total < 0x10000 + perRound) {
      for (let c = 0; c < perRound; c++) d.offer(c * bufs.length);
      handler.notify(q);
      total += perRound;
      assert.equal(queues[q].usedIdx, total & 0xffff, `after ${total} chains`);
    }
    assert.equal(mem.readU16(layouts[q].used + 2), total & 0xffff);
    assert.equal(queues[q].lastAvail, total & 0xffff);
    assert.ok(ram.intact());
  });
}

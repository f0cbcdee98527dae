/**
 * Private test support for the virtio device tests: the driver side of a
 * split queue in guest RAM (descriptor tables, avail rings, used rings) and a
 * fake {@link VirtioQueueContext}. Not part of the public API.
 *
 * @module
 */

import assert from "node:assert/strict";
import { GuestMemory } from "../../lib/guest_memory.ts";
import { SplitQueue } from "./queue.ts";
import { type QueueLayout, type VirtioQueueContext, VIRTQ_DESC_F } from "./types.ts";

/** Bytes of guest RAM in {@link newMemory}. */
export const RAM = 1 << 20;
/** Default queue size of a {@link Driver} built from options. */
export const QSIZE = 256;
/** Default descriptor table address of a {@link Driver} built from options. */
export const DESC = 0x1000;
/** Default avail ring address of a {@link Driver} built from options. */
export const AVAIL = 0x3000;
/** Default used ring address of a {@link Driver} built from options. */
export const USED = 0x4000;
/** Default first buffer address of a {@link Driver} built from options. */
export const HEAP = 0x10000;

/** Fresh zeroed guest memory: one RAM range of {@link RAM} bytes at GPA 0. */
export function newMemory(): GuestMemory {
  return new GuestMemory(new Uint8Array(RAM), [{ name: "ram", gpa: 0, size: RAM }]);
}

/** A buffer the driver places itself: device-readable bytes, or writable space. */
export interface DataBuf {
  /** Bytes the device reads (device-readable buffer). */
  readonly data?: Uint8Array;
  /** A device-writable buffer of this many bytes. */
  readonly writable?: number;
}

/** A buffer already placed in guest memory. */
export interface PlacedBuf {
  /** Its guest-physical address. */
  readonly gpa: number;
  /** Its length in bytes. */
  readonly len: number;
  /** Whether the device may write it. */
  readonly write: boolean;
}

/** One buffer of a descriptor chain. */
export type Buf = DataBuf | PlacedBuf;

/** Where a {@link Driver} puts its rings and buffers. */
export interface DriverOptions {
  /** Guest memory (default: {@link newMemory}). */
  readonly memory?: GuestMemory;
  /** Queue size (default {@link QSIZE}). */
  readonly size?: number;
  /** Descriptor table address (default {@link DESC}). */
  readonly desc?: number;
  /** Avail ring address (default {@link AVAIL}). */
  readonly avail?: number;
  /** Used ring address (default {@link USED}). */
  readonly used?: number;
  /** First address handed out for buffers (default {@link HEAP}). */
  readonly heap?: number;
  /** Negotiate VIRTIO_F_EVENT_IDX (default false). */
  readonly eventIdx?: boolean;
  /** The queue class to build (default {@link SplitQueue}). */
  readonly queue?: typeof SplitQueue;
}

function isPlaced(b: Buf): b is PlacedBuf {
  return "gpa" in b;
}

/**
 * The driver side of one split queue (no indirect descriptors).
 *
 * `new Driver(opts?)` uses the {@link DriverOptions} layout;
 * `new Driver(mem, base, dataBase, size = 16, eventIdx = false)` packs the
 * descriptor table, avail ring and used ring back to back from `base` and
 * places buffers from `dataBase`.
 */
export class Driver {
  /** The guest memory the rings live in. */
  readonly mem: GuestMemory;
  /** The queue's layout. */
  readonly layout: QueueLayout;
  /** The device-side queue over {@link layout}. */
  readonly queue: SplitQueue;
  /** Queue size. */
  readonly size: number;
  /** Descriptor table address. */
  readonly desc: number;
  /** Avail ring address. */
  readonly avail: number;
  /** Used ring address. */
  readonly used: number;
  #nextDesc = 0;
  #availIdx = 0;
  #usedSeen = 0;
  #heap: number;

  constructor(opts?: DriverOptions);
  constructor(mem: GuestMemory, base: number, dataBase: number, size?: number, eventIdx?: boolean);
  constructor(
    memOrOpts: GuestMemory | DriverOptions = {},
    base?: number,
    dataBase?: number,
    size = 16,
    eventIdx = false,
  ) {
    let o: DriverOptions;
    if (memOrOpts instanceof GuestMemory) {
      const b = base ?? DESC;
      const avail = b + 16 * size;
      o = {
        memory: memOrOpts,
        size,
        desc: b,
        avail,
        used: (avail + 6 + 2 * size + 3) & ~3,
        heap: dataBase ?? HEAP,
        eventIdx,
      };
    } else {
      o = memOrOpts;
    }
    this.mem = o.memory ?? newMemory();
    this.size = o.size ?? QSIZE;
    this.desc = o.desc ?? DESC;
    this.avail = o.avail ?? AVAIL;
    this.used = o.used ?? USED;
    this.#heap = o.heap ?? HEAP;
    this.layout = {
      size: this.size,
      desc: this.desc,
      avail: this.avail,
      used: this.used,
      eventIdx: o.eventIdx ?? false,
      indirect: false,
    };
    this.queue = new (o.queue ?? SplitQueue)(this.mem, this.layout);
  }

  /** A fresh guest buffer of `len` bytes from the heap. */
  alloc(len: number): number {
    const gpa = this.#heap;
    this.#heap += (len + 15) & ~15;
    assert.ok(this.#heap < this.mem.size, "test heap exhausted");
    return gpa;
  }

  /** A device-readable buffer holding `bytes`. */
  ro(bytes: Uint8Array): PlacedBuf {
    const gpa = this.alloc(bytes.length);
    this.mem.write(gpa, bytes);
    return { gpa, len: bytes.length, write: false };
  }

  /** A device-writable buffer of `len` bytes, pre-filled with 0xee. */
  wo(len: number): PlacedBuf {
    const gpa = this.alloc(len);
    if (len > 0) this.mem.fill(gpa, len, 0xee);
    return { gpa, len, write: true };
  }

  /** A buffer of `len` bytes pre-filled with 0xee. */
  buf(len: number, write: boolean): PlacedBuf {
    const gpa = this.alloc(len);
    this.mem.fill(gpa, len, 0xee);
    return { gpa, len, write };
  }

  /** Writes descriptor i raw. */
  setDesc(i: number, addr: number, len: number, flags: number, next: number): void {
    const at = this.desc + 16 * i;
    this.mem.writeU64(at, BigInt(addr));
    this.mem.writeU32(at + 8, len);
    this.mem.writeU16(at + 12, flags);
    this.mem.writeU16(at + 14, next);
  }

  /** Writes a descriptor chain and makes it available; returns its head and buffers' addresses. */
  chain(bufs: readonly Buf[]): { head: number; addrs: number[] } {
    const ids = bufs.map(() => this.#nextDesc++ % this.size);
    const addrs: number[] = [];
    bufs.forEach((b, k) => {
      let addr: number, len: number, write: boolean;
      if (isPlaced(b)) {
        ({ gpa: addr, len, write } = b);
      } else {
        len = b.data ? b.data.length : b.writable ?? 0;
        addr = this.alloc(len);
        if (b.data) this.mem.write(addr, b.data);
        write = b.writable !== undefined;
      }
      let flags = write ? VIRTQ_DESC_F.write : 0;
      if (k + 1 < bufs.length) flags |= VIRTQ_DESC_F.next;
      this.setDesc(ids[k], addr, len, flags, ids[k + 1] ?? 0);
      addrs.push(addr);
    });
    this.publish(ids[0]);
    return { head: ids[0], addrs };
  }

  /** Writes a descriptor chain and makes it available; returns its head. */
  add(bufs: readonly Buf[]): number {
    return this.chain(bufs).head;
  }

  /** Puts head into the avail ring and bumps avail idx. */
  publish(head: number): void {
    this.mem.writeU16(this.avail + 4 + 2 * (this.#availIdx % this.size), head);
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    this.mem.writeU16(this.avail + 2, this.#availIdx);
  }

  /** Sets avail flags. */
  setAvailFlags(flags: number): void {
    this.mem.writeU16(this.avail, flags);
  }

  /** Writes the avail ring's used_event field (EVENT_IDX). */
  setUsedEvent(v: number): void {
    this.mem.writeU16(this.avail + 4 + 2 * this.size, v);
  }

  /** Reads the used ring's avail_event field (EVENT_IDX). */
  availEvent(): number {
    return this.mem.readU16(this.used + 4 + 8 * this.size);
  }

  /** Used elements published since the last call. */
  takeUsed(): { id: number; len: number }[] {
    const idx = this.mem.readU16(this.used + 2);
    const out = [];
    while (this.#usedSeen !== idx) {
      const at = this.used + 4 + 8 * (this.#usedSeen % this.size);
      out.push({ id: this.mem.readU32(at), len: this.mem.readU32(at + 4) });
      this.#usedSeen = (this.#usedSeen + 1) & 0xffff;
    }
    return out;
  }
}

/** A {@link VirtioQueueContext} that records interrupts, config changes and logs. */
export class FakeContext implements VirtioQueueContext {
  /** Queues interrupted, in order. */
  readonly interrupts: number[] = [];
  /** Messages logged, in order. */
  readonly logs: string[] = [];
  /** How many times configChanged was called. */
  configChanges = 0;

  constructor(
    readonly memory: GuestMemory,
    readonly features: bigint = 0n,
    readonly config: Uint8Array = new Uint8Array(16),
  ) {}

  /** Records an interrupt on queue q. */
  interrupt = (q: number): void => void this.interrupts.push(q);
  /** Counts a config change. */
  configChanged = (): void => void this.configChanges++;
  /** Records a log message. */
  log = (message: string): void => void this.logs.push(message);
}

/** A {@link FakeContext} plus its recorded interrupts and logs. */
export function fakeContext(
  memory: GuestMemory,
  features = 0n,
  config: Uint8Array = new Uint8Array(16),
): { ctx: FakeContext; interrupts: number[]; logs: string[] } {
  const ctx = new FakeContext(memory, features, config);
  return { ctx, interrupts: ctx.interrupts, logs: ctx.logs };
}

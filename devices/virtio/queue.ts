/**
 * Split virtqueues (virtio 1.2 §2.7), the device side, hardened against a
 * hostile driver: every index read from the rings is range-checked, every
 * guest-supplied address and length goes through `memory.contains` before
 * anything is read from or written to it, chains are bounded (no loops),
 * and any violation throws {@linkcode VirtqueueError} so the transport can
 * set DEVICE_NEEDS_RESET (§2.1.2) and stop using the queue.
 *
 * Ring layouts (§2.7.5, §2.7.6, §2.7.8), all little-endian:
 *
 * | area        | layout                                                              | alignment |
 * | ----------- | ------------------------------------------------------------------- | --------- |
 * | descriptors | size x {addr u64, len u32, flags u16, next u16} (16 bytes each)     | 16        |
 * | driver area | {flags u16, idx u16, ring[size] u16, used_event u16 (EVENT_IDX)}    | 2         |
 * | device area | {flags u16, idx u16, ring[size] {id u32, len u32}, avail_event u16} | 4         |
 *
 * Memory ordering: the driver runs on other CPUs at the same time. Reads
 * happen in program order (avail idx, then the ring entry, then the
 * descriptors) and writes too (the used element, then used idx), which is
 * what x86-64's TSO needs for the §2.7.13 / §2.7.8 protocol. The two places
 * where a store must be ordered before a later load (publishing used idx
 * then reading used_event/flags; writing avail_event then re-reading avail
 * idx) use a full fence (a locked instruction, via Atomics).
 *
 * @module
 */
import {
  type DescriptorChain,
  type QueueLayout,
  type QueueMemory,
  type Segment,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F,
  VIRTQ_MAX_SIZE,
  VirtqueueError,
} from "./types.ts";

/** Bytes of one descriptor (§2.7.5). */
const DESC_SIZE = 16;
/** Bytes of one used element {id u32, len u32} (§2.7.8). */
const USED_ELEM_SIZE = 8;
/** Offset of ring[] in both the driver and the device area (after flags and idx). */
const RING_OFFSET = 4;
/** The largest u32: the most bytes a chain may hold (§2.7.5.2: under 2^32 in total). */
const U32_MAX = 0xffff_ffff;
/**
 * The most entries an indirect table may have. The spec sets no limit
 * (Linux may build tables longer than the queue), but a table is walked and
 * flattened into host objects, so an unbounded one would let a guest make
 * the I/O worker allocate without limit. 65536 entries (1 MiB) is Linux
 * vhost's bound too.
 */
const MAX_INDIRECT_ENTRIES = 65536;
/** 2^32, to combine the halves of a u64 address. */
const TWO_POW_32 = 0x1_0000_0000;
/** Addresses at or above 2^53 (high half >= 2^21) cannot be a JS number exactly. */
const ADDR_HIGH_LIMIT = 0x20_0000;

/** A word for {@linkcode fullFence}: any shared memory will do. */
const fenceWord = new Int32Array(new SharedArrayBuffer(4));

/**
 * A full memory barrier (store-load included): an atomic read-modify-write
 * compiles to a locked instruction on x86-64, which orders every earlier
 * store before every later load, and JS engines do not move memory
 * accesses across it.
 */
function fullFence(): void {
  Atomics.add(fenceWord, 0, 0);
}

/** Whether n is a power of two in 1..{@linkcode VIRTQ_MAX_SIZE}. */
function isValidSize(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= VIRTQ_MAX_SIZE && (n & (n - 1)) === 0;
}

/** Whether `addr` is a safe non-negative integer that is a multiple of `align`. */
function isAligned(addr: number, align: number): boolean {
  return Number.isSafeInteger(addr) && addr >= 0 && addr % align === 0;
}

/** "0x1f" for messages. */
function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/**
 * Checks a count argument given by device code (not the guest): a
 * non-negative integer, clamped to `max`.
 */
function clampCount(n: number, max: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`bad byte count ${n}`);
  return Math.min(n, max);
}

/** Sum of the segment lengths. */
function totalLength(segments: readonly Segment[]): number {
  let total = 0;
  for (const s of segments) total += s.len;
  return total;
}

/** A split virtqueue, device side (§2.7): pops available chains, pushes used ones. */
export class SplitQueue {
  /** Queue size (a power of two, 1..32768). */
  readonly size: number;
  /** Where the rings are, as the driver configured them. */
  readonly layout: QueueLayout;
  readonly #memory: QueueMemory;
  readonly #mask: number;
  /** Address of avail->idx. */
  readonly #availIdx: number;
  /** Address of avail->ring[0]. */
  readonly #availRing: number;
  /** Address of used_event (avail->ring[size]), when EVENT_IDX. */
  readonly #usedEvent: number;
  /** Address of used->idx. */
  readonly #usedIdxAddr: number;
  /** Address of used->ring[0]. */
  readonly #usedRing: number;
  /** Address of avail_event (used->ring[size]), when EVENT_IDX. */
  readonly #availEvent: number;
  #lastAvail = 0;
  #usedIdx = 0;
  /** used idx when shouldInterrupt() last ran. */
  #signalledIdx = 0;
  /** Elements pushed since shouldInterrupt() last ran. */
  #unsignalled = 0;

  /**
   * Validates the layout: size a power of two 1..32768; descriptor table
   * 16-byte aligned, driver area 2-aligned, device area 4-aligned (the
   * alignment table of §2.7); each area entirely inside one RAM range,
   * including the used_event/avail_event words when EVENT_IDX. Throws
   * {@linkcode VirtqueueError} otherwise. The avail and used indices both
   * start at 0 (a freshly enabled queue).
   */
  constructor(memory: QueueMemory, layout: QueueLayout) {
    const { size, desc, avail, used, eventIdx } = layout;
    if (!isValidSize(size)) {
      throw new VirtqueueError(`queue size ${size} is not a power of two in 1..${VIRTQ_MAX_SIZE}`);
    }
    // §2.7: Descriptor Table 16, Available Ring 2, Used Ring 4.
    if (!isAligned(desc, 16)) {
      throw new VirtqueueError(`descriptor table ${desc} is not 16-byte aligned`);
    }
    if (!isAligned(avail, 2)) {
      throw new VirtqueueError(`driver area ${avail} is not 2-byte aligned`);
    }
    if (!isAligned(used, 4)) throw new VirtqueueError(`device area ${used} is not 4-byte aligned`);
    const extra = eventIdx ? 2 : 0;
    const areas: [string, number, number][] = [
      ["descriptor table", desc, DESC_SIZE * size],
      ["driver area", avail, RING_OFFSET + 2 * size + extra],
      ["device area", used, RING_OFFSET + USED_ELEM_SIZE * size + extra],
    ];
    for (const [name, gpa, len] of areas) {
      if (!memory.contains(gpa, len)) {
        throw new VirtqueueError(`${name} [${hex(gpa)}, +${len}) is not inside guest RAM`);
      }
    }
    this.size = size;
    this.layout = { ...layout };
    this.#memory = memory;
    this.#mask = size - 1;
    this.#availIdx = avail + 2;
    this.#availRing = avail + RING_OFFSET;
    this.#usedEvent = avail + RING_OFFSET + 2 * size;
    this.#usedIdxAddr = used + 2;
    this.#usedRing = used + RING_OFFSET;
    this.#availEvent = used + RING_OFFSET + USED_ELEM_SIZE * size;
  }

  /** The next avail ring index the device will read (mod 2^16). */
  get lastAvail(): number {
    return this.#lastAvail;
  }

  /** The used idx the device last published (mod 2^16). */
  get usedIdx(): number {
    return this.#usedIdx;
  }

  /**
   * Chains available and not yet popped: avail->idx - lastAvail (mod 2^16).
   * Throws {@linkcode VirtqueueError} when that exceeds the queue size (the
   * driver cannot have more than `size` chains outstanding, §2.7.6).
   */
  pending(): number {
    const idx = this.#memory.readU16(this.#availIdx);
    const n = (idx - this.#lastAvail) & 0xffff;
    if (n > this.size) {
      throw new VirtqueueError(
        `avail idx ${idx} is ${n} entries ahead of ${this.#lastAvail}, more than the queue size ${this.size}`,
      );
    }
    return n;
  }

  /**
   * The next available chain, indirect tables expanded, or null when the
   * driver has made none available. Throws {@linkcode VirtqueueError} on
   * any malformed ring, descriptor or buffer; lastAvail then stays where it
   * was.
   */
  pop(): DescriptorChain | null {
    // §2.7.13.3: the driver writes the ring entry before idx, so read idx first.
    if (this.pending() === 0) return null;
    const slot = this.#lastAvail & this.#mask;
    const head = this.#memory.readU16(this.#availRing + 2 * slot);
    if (head >= this.size) {
      throw new VirtqueueError(
        `avail ring[${slot}] = ${head} is not below the queue size ${this.size}`,
      );
    }
    const chain = this.#walk(head);
    this.#lastAvail = (this.#lastAvail + 1) & 0xffff;
    return chain;
  }

  /**
   * Puts the used element {id: head, len: written} at used->ring[usedIdx %
   * size], then publishes used->idx = usedIdx + 1 (§2.7.8: the element is
   * written before the idx). Throws {@linkcode VirtqueueError} when head is
   * not a descriptor index, and RangeError when `written` is not a u32.
   */
  push(head: number, written: number): void {
    if (!Number.isInteger(head) || head < 0 || head >= this.size) {
      throw new VirtqueueError(`used head ${head} is not below the queue size ${this.size}`);
    }
    if (!Number.isInteger(written) || written < 0 || written > U32_MAX) {
      throw new RangeError(`used length ${written} is not a u32`);
    }
    const at = this.#usedRing + USED_ELEM_SIZE * (this.#usedIdx & this.#mask);
    this.#memory.writeU32(at, head);
    this.#memory.writeU32(at + 4, written);
    this.#usedIdx = (this.#usedIdx + 1) & 0xffff;
    this.#memory.writeU16(this.#usedIdxAddr, this.#usedIdx);
    this.#unsignalled++;
  }

  /**
   * Whether the driver wants a used buffer notification for the elements
   * pushed since the previous call (§2.7.7.2). Without EVENT_IDX: unless
   * avail->flags has VIRTQ_AVAIL_F_NO_INTERRUPT. With EVENT_IDX (flags
   * ignored): when used_event falls in (old idx, new idx], the
   * vring_need_event() rule. False when nothing was pushed since the
   * previous call.
   */
  shouldInterrupt(): boolean {
    const count = this.#unsignalled;
    if (count === 0) return false;
    const old = this.#signalledIdx;
    const now = this.#usedIdx;
    this.#unsignalled = 0;
    this.#signalledIdx = now;
    // The used idx store must be visible before the driver's suppression
    // fields are read, or a driver re-enabling interrupts could be missed.
    fullFence();
    if (!this.layout.eventIdx) {
      return (this.#memory.readU16(this.layout.avail) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
    }
    // 2^16 or more pushes wrap the window around: every used_event is in it.
    if (count >= 0x10000) return true;
    const usedEvent = this.#memory.readU16(this.#usedEvent);
    // vring_need_event(event, new, old): (new - event - 1) < (new - old), mod 2^16.
    return ((now - usedEvent - 1) & 0xffff) < ((now - old) & 0xffff);
  }

  /**
   * With EVENT_IDX: writes avail_event (the device area's trailing u16) =
   * lastAvail, so the driver notifies when it makes the next buffer
   * available (§2.7.10). No-op without EVENT_IDX. Call before going idle,
   * then check {@linkcode SplitQueue.pending} once more: a buffer the
   * driver added before it saw avail_event brings no notification.
   */
  armNotification(): void {
    if (!this.layout.eventIdx) return;
    this.#memory.writeU16(this.#availEvent, this.#lastAvail);
    // The avail_event store must be visible before the caller re-reads avail idx.
    fullFence();
  }

  /** Walks the chain at `head`, expanding an indirect table, checking everything. */
  #walk(head: number): DescriptorChain {
    const memory = this.#memory;
    const readable: Segment[] = [];
    const writable: Segment[] = [];
    let readableLength = 0;
    let writableLength = 0;
    let table = this.layout.desc;
    let entries = this.size;
    let indirect = false;
    let index = head;
    let seen = 0;
    let sawWritable = false;
    for (;;) {
      // §2.7.5.2 / §2.7.5.3.1: a chain is at most the queue size long (an
      // indirect table at most its entry count), which also rules out loops.
      if (++seen > entries) {
        throw new VirtqueueError(
          `chain at head ${head} is longer than ${entries} descriptors${
            indirect ? " (indirect table)" : ""
          }: a loop`,
        );
      }
      const at = table + DESC_SIZE * index;
      const lo = memory.readU32(at);
      const hi = memory.readU32(at + 4);
      const len = memory.readU32(at + 8);
      const flags = memory.readU16(at + 12);
      const next = memory.readU16(at + 14);
      const where = `${indirect ? "indirect " : ""}descriptor ${index} of chain ${head}`;
      // An address of 2^53 or more is not a number we can represent: refuse it.
      const addr = hi < ADDR_HIGH_LIMIT ? hi * TWO_POW_32 + lo : -1;

      if (flags & VIRTQ_DESC_F.indirect) {
        // §2.7.5.3.1: only with VIRTIO_F_INDIRECT_DESC, never inside a table,
        // never together with NEXT. §2.7.5.3.2: the device handles direct
        // descriptors followed by one indirect one, and ignores its WRITE flag.
        if (!this.layout.indirect) {
          throw new VirtqueueError(`${where}: INDIRECT without VIRTIO_F_INDIRECT_DESC`);
        }
        if (indirect) throw new VirtqueueError(`${where}: INDIRECT inside an indirect table`);
        if (flags & VIRTQ_DESC_F.next) throw new VirtqueueError(`${where}: INDIRECT with NEXT`);
        if (len === 0 || len % DESC_SIZE !== 0) {
          throw new VirtqueueError(
            `${where}: indirect table length ${len} is not a multiple of 16`,
          );
        }
        if (len / DESC_SIZE > MAX_INDIRECT_ENTRIES) {
          throw new VirtqueueError(
            `${where}: indirect table of ${
              len / DESC_SIZE
            } entries (at most ${MAX_INDIRECT_ENTRIES})`,
          );
        }
        if (addr < 0 || !memory.contains(addr, len)) {
          throw new VirtqueueError(
            `${where}: indirect table [${
              hex(hi * TWO_POW_32 + lo)
            }, +${len}) is not inside guest RAM`,
          );
        }
        // §2.7.5.3: the table's first descriptor is entry 0.
        table = addr;
        entries = len / DESC_SIZE;
        indirect = true;
        index = 0;
        seen = 0;
        continue;
      }

      const write = (flags & VIRTQ_DESC_F.write) !== 0;
      // §2.7.4.2: device-writable descriptors come after every readable one.
      if (!write && sawWritable) {
        throw new VirtqueueError(`${where}: device-readable after device-writable`);
      }
      sawWritable ||= write;
      // Zero-length buffers are legal and carry nothing: skip them.
      if (len > 0) {
        if (addr < 0 || !memory.contains(addr, len)) {
          throw new VirtqueueError(
            `${where}: buffer [${hex(hi * TWO_POW_32 + lo)}, +${len}) is not inside one RAM range`,
          );
        }
        if (write) {
          writable.push({ gpa: addr, len });
          writableLength += len;
        } else {
          readable.push({ gpa: addr, len });
          readableLength += len;
        }
        // §2.7.5.2: drivers MUST NOT add a chain longer than 2^32 bytes in total.
        if (readableLength + writableLength > U32_MAX) {
          throw new VirtqueueError(`chain at head ${head} holds more than 2^32-1 bytes`);
        }
      }
      if (!(flags & VIRTQ_DESC_F.next)) break;
      if (next >= entries) {
        throw new VirtqueueError(
          `${where}: next ${next} is not below ${entries}${indirect ? " (indirect table)" : ""}`,
        );
      }
      index = next;
    }
    return { head, readable, writable, readableLength, writableLength };
  }
}

/** Where a cursor over a segment list stands. */
class SegmentCursor {
  readonly #segments: readonly Segment[];
  #index = 0;
  #offset = 0;
  /** Bytes not yet consumed. */
  remaining: number;

  /** Starts at the first byte of `segments`. */
  constructor(segments: readonly Segment[]) {
    this.#segments = segments;
    this.remaining = totalLength(segments);
  }

  /**
   * Consumes up to `n` bytes (n <= remaining) and calls `piece` for each
   * contiguous part, in order, with its guest address, length and the
   * offset from the start of this call.
   */
  take(n: number, piece: (gpa: number, len: number, done: number) => void): void {
    let done = 0;
    while (done < n) {
      const seg = this.#segments[this.#index];
      const len = Math.min(seg.len - this.#offset, n - done);
      piece(seg.gpa + this.#offset, len, done);
      done += len;
      this.#offset += len;
      if (this.#offset === seg.len) {
        this.#index++;
        this.#offset = 0;
      }
    }
    this.remaining -= n;
  }
}

/**
 * Serves every available chain of `queue` with `serve` (which returns the
 * bytes written into the chain, its used length), raises the queue's
 * interrupt once when the driver wants it (§2.7.7.2), then re-arms
 * notifications and looks once more, because a buffer made available before
 * the driver saw the new avail_event brings no notification (§2.7.10).
 * Throws {@linkcode VirtqueueError} on a malformed ring.
 */
export function serveAvailable(
  queue: SplitQueue,
  serve: (chain: DescriptorChain) => number,
  interrupt: () => void,
): void {
  for (;;) {
    let served = 0;
    for (let chain = queue.pop(); chain !== null; chain = queue.pop()) {
      queue.push(chain.head, serve(chain));
      served++;
    }
    if (served > 0 && queue.shouldInterrupt()) interrupt();
    queue.armNotification();
    if (queue.pending() === 0) return;
  }
}

/** Reads a chain's device-readable bytes in order, as one stream across its segments. */
export class ChainReader {
  readonly #memory: QueueMemory;
  readonly #cursor: SegmentCursor;

  /** A reader at the first readable byte of `chain`. */
  constructor(memory: QueueMemory, chain: DescriptorChain) {
    this.#memory = memory;
    this.#cursor = new SegmentCursor(chain.readable);
  }

  /** Readable bytes not yet consumed. */
  get remaining(): number {
    return this.#cursor.remaining;
  }

  /** Copies the next `n` bytes (fewer at the end) into a new array. */
  read(n: number): Uint8Array {
    const out = new Uint8Array(clampCount(n, this.remaining));
    this.readInto(out);
    return out;
  }

  /** Fills `dst` from the next bytes as far as they go; returns the bytes copied. */
  readInto(dst: Uint8Array): number {
    const n = Math.min(dst.length, this.remaining);
    this.#cursor.take(n, (gpa, len, done) => dst.set(this.#memory.slice(gpa, len), done));
    return n;
  }

  /**
   * Live views (no copy) of the next `n` bytes (clamped to remaining),
   * split at segment boundaries; consumes them.
   */
  views(n: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    this.#cursor.take(
      clampCount(n, this.remaining),
      (gpa, len) => out.push(this.#memory.slice(gpa, len)),
    );
    return out;
  }

  /** Consumes the next `n` bytes (clamped to remaining) without reading them. */
  skip(n: number): void {
    this.#cursor.take(clampCount(n, this.remaining), () => {});
  }
}

/** Writes into a chain's device-writable buffers in order. */
export class ChainWriter {
  readonly #memory: QueueMemory;
  readonly #cursor: SegmentCursor;
  #written = 0;

  /** A writer at the first writable byte of `chain`. */
  constructor(memory: QueueMemory, chain: DescriptorChain) {
    this.#memory = memory;
    this.#cursor = new SegmentCursor(chain.writable);
  }

  /** Writable bytes left. */
  get remaining(): number {
    return this.#cursor.remaining;
  }

  /** Bytes written so far: the `len` of the used element. */
  get written(): number {
    return this.#written;
  }

  /** Copies as much of `bytes` as fits; returns how many bytes were written. */
  write(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.remaining);
    this.#cursor.take(
      n,
      (gpa, len, done) => this.#memory.slice(gpa, len).set(bytes.subarray(done, done + len)),
    );
    this.#written += n;
    return n;
  }

  /**
   * Live views of the next `n` writable bytes (clamped to remaining), split
   * at segment boundaries; they count as written.
   */
  views(n: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    const k = clampCount(n, this.remaining);
    this.#cursor.take(k, (gpa, len) => out.push(this.#memory.slice(gpa, len)));
    this.#written += k;
    return out;
  }
}

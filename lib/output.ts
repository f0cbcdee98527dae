/**
 * Console output rings. A device (a UART, on a vCPU thread, under the device
 * lock) puts bytes into a ring in shared memory and never blocks; the
 * writer thread (lib/output_worker.ts) moves them to the console's file
 * descriptor. When a ring is full the device takes fewer bytes and holds the
 * rest, as a real UART's transmitter does on a slow line; once the writer
 * has made room it bumps the ring's "ready" count and wakes the timer
 * thread, which tells the devices (`onOutputReady`) under the device lock.
 * So a stalled reader (a paused pager, a full pipe) slows the guest's serial
 * output down instead of blocking a vCPU inside write(2) with the device
 * lock held, and nothing is lost.
 *
 * @module
 */

/** Bytes a ring holds. A power of two. */
export const OUTPUT_RING_SIZE = 64 * 1024;

// Int32 header words.
const H_WRITE = 0; // bytes ever written (mod 2^32)
const H_READ = 1; // bytes ever read (mod 2^32)
const H_WANT = 2; // a producer found the ring full and waits for room
const H_READY = 3; // bumped by the consumer when room was made for a waiting producer
const HEADER_BYTES = 16;

/** One output ring in shared memory. */
export class OutputRing {
  /** The shared buffer; send it to every thread. */
  readonly buffer: SharedArrayBuffer;
  readonly #h: Int32Array;
  readonly #data: Uint8Array;
  readonly #mask: number;

  /** Creates a ring of `size` bytes (a power of two), or binds a received buffer. */
  constructor(sizeOrBuffer: number | SharedArrayBuffer = OUTPUT_RING_SIZE) {
    if (typeof sizeOrBuffer === "number" && (sizeOrBuffer & (sizeOrBuffer - 1)) !== 0) {
      throw new Error("output ring size must be a power of two");
    }
    this.buffer = typeof sizeOrBuffer === "number"
      ? new SharedArrayBuffer(HEADER_BYTES + sizeOrBuffer)
      : sizeOrBuffer;
    this.#h = new Int32Array(this.buffer, 0, HEADER_BYTES / 4);
    this.#data = new Uint8Array(this.buffer, HEADER_BYTES);
    this.#mask = this.#data.length - 1;
  }

  /** Bytes waiting to be written out. */
  get used(): number {
    return (Atomics.load(this.#h, H_WRITE) - Atomics.load(this.#h, H_READ)) >>> 0;
  }

  /** Room for more bytes. */
  get free(): number {
    return this.#data.length - this.used;
  }

  /**
   * Producer: copies as many of `bytes` as fit and returns how many. When not
   * all fit, the ring remembers that a producer waits for room. Producers
   * must be serialized (they run under the device lock).
   */
  write(bytes: Uint8Array): number {
    let n = Math.min(bytes.length, this.free);
    if (n < bytes.length) {
      // Say that a producer waits, then look again. consume() moves the read
      // index and then looks at the flag, so room made after the first look
      // is either counted as a "ready" event or seen by this second look:
      // never neither (the room would then be missed until something else
      // wrote). A flag left set when all fits now only costs one spurious
      // ready event.
      Atomics.store(this.#h, H_WANT, 1);
      n = Math.min(bytes.length, this.free);
    }
    if (n === 0) return 0;
    const w = Atomics.load(this.#h, H_WRITE) >>> 0;
    const at = w & this.#mask;
    const first = Math.min(n, this.#data.length - at);
    this.#data.set(bytes.subarray(0, first), at);
    if (first < n) this.#data.set(bytes.subarray(first, n), 0);
    Atomics.store(this.#h, H_WRITE, (w + n) | 0);
    return n;
  }

  /** Consumer: the oldest contiguous run of waiting bytes (a view; call {@linkcode OutputRing.consume} after). */
  peek(): Uint8Array {
    const r = Atomics.load(this.#h, H_READ) >>> 0;
    const at = r & this.#mask;
    const n = Math.min(this.used, this.#data.length - at);
    return this.#data.subarray(at, at + n);
  }

  /**
   * Consumer: drops `n` written-out bytes. Returns true when a producer was
   * waiting for room (the ring then counts a "ready" event).
   */
  consume(n: number): boolean {
    Atomics.add(this.#h, H_READ, n);
    if (Atomics.load(this.#h, H_WANT) !== 0 && this.free > 0) {
      Atomics.store(this.#h, H_WANT, 0);
      Atomics.add(this.#h, H_READY, 1);
      return true;
    }
    return false;
  }

  /** How many times room was made for a waiting producer. */
  get readyCount(): number {
    return Atomics.load(this.#h, H_READY);
  }
}

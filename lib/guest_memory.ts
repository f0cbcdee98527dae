/**
 * The one bounds-checked way to touch guest RAM. Every guest-supplied
 * address and length goes through {@linkcode GuestMemory.check} before any
 * byte is read or written, so a guest can never reach host memory outside
 * its RAM (the lesson of FreeBSD-SA-16:38.bhyve). The backing view also
 * spans the holes between RAM ranges, which are PROT_NONE on the host: a
 * check that was forgotten crashes loudly instead of reading host memory.
 *
 * Pure TypeScript: the mapping itself is made by lib/memory.ts.
 *
 * @module
 */
import type { RamRange } from "./layout.ts";

/** A guest-physical address. A plain number: guest addresses stay below 2^52. */
export type Gpa = number;

/** An access outside guest RAM, or a malformed address/length. */
export class GuestMemoryError extends Error {
  /** The offending guest-physical address. */
  readonly gpa: number;
  /** The length of the access. */
  readonly length: number;

  /** Builds the error. */
  constructor(gpa: number, length: number, why: string) {
    super(`guest memory access [0x${gpa.toString(16)}, +${length}): ${why}`);
    this.name = "GuestMemoryError";
    this.gpa = gpa;
    this.length = length;
  }
}

/** Guest RAM as seen by the VMM. */
export class GuestMemory {
  readonly #span: Uint8Array;
  readonly #view: DataView;
  readonly #ranges: readonly RamRange[];
  readonly #starts: Float64Array;
  readonly #ends: Float64Array;

  /**
   * `span` maps guest-physical address 0 at index 0 and covers at least the
   * end of the last RAM range; `ranges` are the parts that are RAM.
   */
  constructor(span: Uint8Array, ranges: readonly RamRange[]) {
    const sorted = [...ranges].sort((a, b) => a.gpa - b.gpa);
    for (let i = 0; i < sorted.length; i++) {
      const r = sorted[i];
      if (!Number.isSafeInteger(r.gpa) || !Number.isSafeInteger(r.size) || r.size <= 0) {
        throw new Error(`bad RAM range ${r.name}`);
      }
      if (r.gpa + r.size > span.length) {
        throw new Error(`RAM range ${r.name} outside the host span`);
      }
      if (i > 0 && sorted[i - 1].gpa + sorted[i - 1].size > r.gpa) {
        throw new Error(`RAM ranges ${sorted[i - 1].name} and ${r.name} overlap`);
      }
    }
    this.#span = span;
    this.#view = new DataView(span.buffer, span.byteOffset, span.byteLength);
    this.#ranges = sorted;
    this.#starts = Float64Array.from(sorted, (r) => r.gpa);
    this.#ends = Float64Array.from(sorted, (r) => r.gpa + r.size);
  }

  /** The RAM ranges, in address order. */
  get ranges(): readonly RamRange[] {
    return this.#ranges;
  }

  /** Total RAM bytes. */
  get size(): number {
    return this.#ranges.reduce((n, r) => n + r.size, 0);
  }

  /** True when [gpa, gpa+length) lies inside one RAM range. */
  contains(gpa: Gpa, length: number): boolean {
    if (!(gpa >= 0 && length >= 0 && Number.isSafeInteger(gpa) && Number.isSafeInteger(length))) {
      return false;
    }
    const end = gpa + length;
    for (let i = 0; i < this.#starts.length; i++) {
      if (gpa >= this.#starts[i] && end <= this.#ends[i]) return true;
    }
    return false;
  }

  /** Throws {@linkcode GuestMemoryError} unless [gpa, gpa+length) is RAM. */
  check(gpa: Gpa, length: number): void {
    if (!this.contains(gpa, length)) {
      const why =
        !Number.isSafeInteger(gpa) || !Number.isSafeInteger(length) || gpa < 0 || length < 0
          ? "not a valid address/length"
          : "not inside guest RAM";
      throw new GuestMemoryError(gpa, length, why);
    }
  }

  /** A live view of guest RAM (no copy). Bounds-checked. */
  slice(gpa: Gpa, length: number): Uint8Array {
    this.check(gpa, length);
    return this.#span.subarray(gpa, gpa + length);
  }

  /** A copy of guest RAM. Bounds-checked. */
  read(gpa: Gpa, length: number): Uint8Array {
    return this.slice(gpa, length).slice();
  }

  /** Copies `data` into guest RAM at `gpa`. Bounds-checked. */
  write(gpa: Gpa, data: Uint8Array): void {
    this.check(gpa, data.length);
    this.#span.set(data, gpa);
  }

  /** Fills [gpa, gpa+length) with `value`. Bounds-checked. */
  fill(gpa: Gpa, length: number, value = 0): void {
    this.check(gpa, length);
    this.#span.fill(value, gpa, gpa + length);
  }

  /** Reads a byte. */
  readU8(gpa: Gpa): number {
    this.check(gpa, 1);
    return this.#span[gpa];
  }

  /** Reads a little-endian u16. */
  readU16(gpa: Gpa): number {
    this.check(gpa, 2);
    return this.#view.getUint16(gpa, true);
  }

  /** Reads a little-endian u32. */
  readU32(gpa: Gpa): number {
    this.check(gpa, 4);
    return this.#view.getUint32(gpa, true);
  }

  /** Reads a little-endian u64. */
  readU64(gpa: Gpa): bigint {
    this.check(gpa, 8);
    return this.#view.getBigUint64(gpa, true);
  }

  /** Writes a byte. */
  writeU8(gpa: Gpa, v: number): void {
    this.check(gpa, 1);
    this.#span[gpa] = v;
  }

  /** Writes a little-endian u16. */
  writeU16(gpa: Gpa, v: number): void {
    this.check(gpa, 2);
    this.#view.setUint16(gpa, v, true);
  }

  /** Writes a little-endian u32. */
  writeU32(gpa: Gpa, v: number): void {
    this.check(gpa, 4);
    this.#view.setUint32(gpa, v >>> 0, true);
  }

  /** Writes a little-endian u64. */
  writeU64(gpa: Gpa, v: bigint): void {
    this.check(gpa, 8);
    this.#view.setBigUint64(gpa, BigInt.asUintN(64, v), true);
  }

  /** Reads a NUL-terminated string of at most `max` bytes (for command lines, names). */
  readCString(gpa: Gpa, max: number): string {
    const out: number[] = [];
    for (let i = 0; i < max; i++) {
      const b = this.readU8(gpa + i);
      if (b === 0) break;
      out.push(b);
    }
    return new TextDecoder().decode(new Uint8Array(out));
  }
}

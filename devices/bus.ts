/**
 * Address-space buses: one for port I/O, one for MMIO. Ranges are named and
 * may not overlap (inserting an overlapping range throws, naming both).
 * Accesses nobody claims go to one default handler that counts them by
 * address; reads return all ones, as a floating ISA/PCI bus does. In strict
 * mode (bhyve's x86.strictio) an unclaimed access is fatal instead.
 *
 * @module
 */
import type { AccessSize, BusDevice } from "./device.ts";

/** A claimed range on a bus. */
export interface BusRange {
  /** Unique name, e.g. "com1" or "pm1a-control". */
  readonly name: string;
  /** First address. */
  readonly base: number;
  /** Length in bytes. */
  readonly length: number;
  /** The device; it sees offsets from `base`. */
  readonly device: BusDevice;
  /**
   * True when the device needs no VM device lock: its handlers touch only
   * state that is safe without it (atomics or constants).
   */
  readonly lockFree?: boolean;
}

/** Serializes device accesses across threads (the VM's device lock). */
export interface DeviceLock {
  /** Takes the lock; blocks while another thread holds it. */
  acquire(): void;
  /** Releases the lock. */
  release(): void;
}

/** Thrown in strict mode for an access nobody claims. */
export class UnclaimedAccessError extends Error {
  /** The bus ("pio" or "mmio"). */
  readonly bus: string;
  /** The address. */
  readonly address: number;

  /** Builds the error. */
  constructor(bus: string, address: number, size: number, write: boolean, value?: number) {
    const what = write ? `write of 0x${(value ?? 0).toString(16)}` : "read";
    super(`unclaimed ${bus} ${size}-byte ${what} at 0x${address.toString(16)}`);
    this.name = "UnclaimedAccessError";
    this.bus = bus;
    this.address = address;
  }
}

/** Counts unclaimed accesses and decides what they do. */
export interface UnclaimedPolicy {
  /** Fatal when true. */
  readonly strict: boolean;
  /** Called once per unclaimed access (after the strict check). */
  record(bus: "pio" | "mmio", address: number, size: number, write: boolean): void;
}

const NO_LOCK: DeviceLock = { acquire() {}, release() {} };

/** The all-ones value of an access of `size` bytes. */
export function allOnes(size: AccessSize): number {
  return size >= 4 ? 0xffffffff : (1 << (size * 8)) - 1;
}

const MASK: Record<number, number> = { 1: 0xff, 2: 0xffff, 4: 0xffffffff };

abstract class Bus {
  protected readonly ranges: BusRange[] = [];
  protected readonly lock: DeviceLock;
  protected readonly policy: UnclaimedPolicy;
  abstract readonly kind: "pio" | "mmio";

  constructor(
    lock: DeviceLock = NO_LOCK,
    policy: UnclaimedPolicy = { strict: false, record() {} },
  ) {
    this.lock = lock;
    this.policy = policy;
  }

  /** Every range, sorted by base. */
  list(): readonly BusRange[] {
    return this.ranges;
  }

  protected checkInsert(r: BusRange, limit: number): void {
    if (
      !Number.isSafeInteger(r.base) || !Number.isSafeInteger(r.length) || r.length <= 0 ||
      r.base < 0
    ) {
      throw new Error(`${this.kind} range ${r.name}: bad base/length`);
    }
    if (r.base + r.length > limit) {
      throw new Error(`${this.kind} range ${r.name} ends past 0x${limit.toString(16)}`);
    }
    for (const o of this.ranges) {
      if (o.name === r.name) throw new Error(`${this.kind} range name ${r.name} is already used`);
      if (r.base < o.base + o.length && o.base < r.base + r.length) {
        throw new Error(
          `${this.kind} range ${r.name} [0x${r.base.toString(16)}, +0x${
            r.length.toString(16)
          }) overlaps ${o.name} [0x${o.base.toString(16)}, +0x${o.length.toString(16)})`,
        );
      }
    }
  }

  protected unclaimed(address: number, size: AccessSize, write: boolean, value?: number): number {
    if (this.policy.strict) throw new UnclaimedAccessError(this.kind, address, size, write, value);
    this.policy.record(this.kind, address, size, write);
    return allOnes(size);
  }

  /** A read through the range's device: under the device lock unless lock-free; 8 bytes split when needed. */
  protected doRead(r: BusRange, offset: number, size: AccessSize): number {
    const locked = !r.lockFree;
    if (locked) this.lock.acquire();
    try {
      if (size === 8 && !r.device.read64) {
        const lo = r.device.read(offset, 4);
        const hi = r.device.read(offset + 4, 4);
        return (hi >>> 0) * 2 ** 32 + (lo >>> 0);
      }
      return r.device.read(offset, size);
    } finally {
      if (locked) this.lock.release();
    }
  }

  /** A write through the range's device: masked to the access size; 8 bytes split when needed. */
  protected doWrite(r: BusRange, offset: number, size: AccessSize, value: number): void {
    const locked = !r.lockFree;
    if (locked) this.lock.acquire();
    try {
      if (size === 8 && !r.device.write64) {
        r.device.write(offset, 4, value % 2 ** 32 >>> 0);
        r.device.write(offset + 4, 4, Math.floor(value / 2 ** 32) >>> 0);
        return;
      }
      r.device.write(offset, size, size === 8 ? value : (value & MASK[size]) >>> 0);
    } finally {
      if (locked) this.lock.release();
    }
  }

  /** An exact 8-byte read of a range as a bigint. */
  protected doRead64(r: BusRange, offset: number): bigint {
    const locked = !r.lockFree;
    if (locked) this.lock.acquire();
    try {
      if (r.device.read64) return r.device.read64(offset);
      const lo = r.device.read(offset, 4);
      const hi = r.device.read(offset + 4, 4);
      return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    } finally {
      if (locked) this.lock.release();
    }
  }

  /** An exact 8-byte write of a range from a bigint. */
  protected doWrite64(r: BusRange, offset: number, value: bigint): void {
    const locked = !r.lockFree;
    if (locked) this.lock.acquire();
    try {
      if (r.device.write64) return r.device.write64(offset, value);
      r.device.write(offset, 4, Number(value & 0xffffffffn));
      r.device.write(offset + 4, 4, Number((value >> 32n) & 0xffffffffn));
    } finally {
      if (locked) this.lock.release();
    }
  }
}

/**
 * Decodes ports no fixed range claims: PCI I/O BARs, which the OS may move
 * anywhere. It sees absolute ports and says whether it claimed the access.
 */
export interface PortFallback {
  /** A read; undefined when nothing claims the port. */
  read(port: number, size: AccessSize): number | undefined;
  /** A write; false when nothing claims the port. */
  write(port: number, size: AccessSize, value: number): boolean;
}

/** The x86 port I/O space, 64 KiB of ports, with O(1) lookup. */
export class PortBus extends Bus {
  readonly kind = "pio" as const;
  /** port -> 1 + index into `ranges`, 0 when unclaimed. */
  readonly #map = new Uint16Array(0x10000);
  #fallback: PortFallback | undefined;

  /** Sets the decoder of ports no range claims (run under the device lock). */
  setFallback(fallback: PortFallback): void {
    this.#fallback = fallback;
  }

  #fallbackRead(port: number, size: AccessSize): number | undefined {
    const f = this.#fallback;
    if (!f) return undefined;
    this.lock.acquire();
    try {
      return f.read(port, size);
    } finally {
      this.lock.release();
    }
  }

  #fallbackWrite(port: number, size: AccessSize, value: number): boolean {
    const f = this.#fallback;
    if (!f) return false;
    this.lock.acquire();
    try {
      return f.write(port, size, (value & MASK[size]) >>> 0);
    } finally {
      this.lock.release();
    }
  }

  /** Claims [base, base+length) for `device`. Throws on overlap. */
  register(range: BusRange): void {
    this.checkInsert(range, 0x10000);
    this.ranges.push(range);
    this.ranges.sort((a, b) => a.base - b.base);
    this.#map.fill(0);
    this.ranges.forEach((r, i) => this.#map.fill(i + 1, r.base, r.base + r.length));
  }

  /** The range that claims `port`, if any. */
  find(port: number): BusRange | undefined {
    const i = this.#map[port & 0xffff];
    return i === 0 ? undefined : this.ranges[i - 1];
  }

  /**
   * An IN of `size` bytes from `port`. Port accesses are decoded by their
   * first port, as ISA decoding and bhyve do: a dword IN at 0xCF8 belongs to
   * whoever claims 0xCF8, even though it spans 0xCF9 (the reset register,
   * reached by a byte access). The device sees the offset and the size.
   */
  read(port: number, size: AccessSize): number {
    const i = this.#map[port];
    if (i !== 0) {
      const r = this.ranges[i - 1];
      return this.doRead(r, port - r.base, size);
    }
    return this.#fallbackRead(port, size) ?? this.unclaimed(port, size, false);
  }

  /** An OUT of `size` bytes to `port`; decoded by the first port like {@linkcode PortBus.read}. */
  write(port: number, size: AccessSize, value: number): void {
    const i = this.#map[port];
    if (i !== 0) {
      const r = this.ranges[i - 1];
      return this.doWrite(r, port - r.base, size, value);
    }
    if (!this.#fallbackWrite(port, size, value)) this.unclaimed(port, size, true, value);
  }
}

/** The guest-physical MMIO space (addresses that are not RAM). */
export class MmioBus extends Bus {
  readonly kind = "mmio" as const;
  #last: BusRange | undefined;

  /** Claims [base, base+length) for `device`. Throws on overlap. */
  register(range: BusRange): void {
    this.checkInsert(range, 2 ** 52);
    this.ranges.push(range);
    this.ranges.sort((a, b) => a.base - b.base);
  }

  /** The range that contains `address`, if any. */
  find(address: number): BusRange | undefined {
    const last = this.#last;
    if (last && address >= last.base && address < last.base + last.length) return last;
    let lo = 0, hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.ranges[mid];
      if (address < r.base) hi = mid - 1;
      else if (address >= r.base + r.length) lo = mid + 1;
      else return (this.#last = r);
    }
    return undefined;
  }

  /** A read of `size` bytes at `address`. 8-byte values above 2^53 lose precision; use read64. */
  read(address: number, size: AccessSize): number {
    const r = this.find(address);
    if (r) {
      const offset = address - r.base;
      if (offset + size <= r.length) return this.doRead(r, offset, size);
    }
    return this.unclaimed(address, size, false);
  }

  /** A write of `size` bytes at `address`. */
  write(address: number, size: AccessSize, value: number): void {
    const r = this.find(address);
    if (r) {
      const offset = address - r.base;
      if (offset + size <= r.length) return this.doWrite(r, offset, size, value);
    }
    this.unclaimed(address, size, true, value);
  }

  /** An 8-byte read as a bigint (exact). */
  read64(address: number): bigint {
    const r = this.find(address);
    if (r && address - r.base + 8 <= r.length) return this.doRead64(r, address - r.base);
    this.unclaimed(address, 8, false);
    return 0xffffffffffffffffn;
  }

  /** An 8-byte write from a bigint (exact). */
  write64(address: number, value: bigint): void {
    const r = this.find(address);
    if (r && address - r.base + 8 <= r.length) return this.doWrite64(r, address - r.base, value);
    this.unclaimed(address, 8, true, Number(value & 0xffffffffn));
  }
}

/**
 * Host backing for guest RAM. The whole guest-physical span, plus a guard on
 * each side, is first reserved PROT_NONE (bhyve's MAP_GUARD idea); each RAM
 * range is then mapped read/write inside it with MAP_NORESERVE, so memory is
 * committed page by page as the guest touches it and a `size = "64G"` VM
 * starts on a 24 GiB host. Everything that is not RAM stays PROT_NONE.
 *
 * @module
 */
import {
  libc,
  MADV_DONTNEED,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_NORESERVE,
  MAP_PRIVATE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from "../cpu/libc.ts";
import { GuestMemory } from "./guest_memory.ts";
import { MiB, type RamRange } from "./layout.ts";

/** Guard size on each side of the guest span. */
export const GUARD_SIZE = 2 * MiB;

/** Host memory that backs a VM's RAM. */
export interface HostMemory {
  /** Host address of guest-physical 0. */
  readonly base: bigint;
  /** Bytes from guest-physical 0 to the end of the last RAM range. */
  readonly span: number;
  /** The RAM ranges. */
  readonly ranges: readonly RamRange[];
  /** The checked accessor. */
  readonly memory: GuestMemory;
  /** Releases the whole reservation. */
  unmap(): void;
  /** Returns every RAM page to the host; RAM then reads as zeros (VM reset). */
  discard(): void;
}

function mmapOrThrow(addr: bigint | null, size: number, prot: number, flags: number, what: string) {
  const c = libc();
  const p = c.fn.mmap(
    addr === null ? null : Deno.UnsafePointer.create(addr),
    BigInt(size),
    prot,
    flags,
    -1,
    0n,
  );
  const v = p === null ? 0n : Deno.UnsafePointer.value(p);
  if (v === 0n || v === 0xffffffffffffffffn) {
    throw new Error(`cannot map ${what} (${size} bytes): ${c.strerror(c.errno())}`);
  }
  return v;
}

/** Reserves and maps host memory for the given RAM ranges. */
export function mapGuestRam(ranges: readonly RamRange[]): HostMemory {
  const span = Math.max(...ranges.map((r) => r.gpa + r.size));
  const total = span + 2 * GUARD_SIZE;
  const c = libc();
  const reservation = mmapOrThrow(
    null,
    total,
    PROT_NONE,
    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
    "the guest address-space reservation",
  );
  const base = reservation + BigInt(GUARD_SIZE);
  try {
    for (const r of ranges) {
      mmapOrThrow(
        base + BigInt(r.gpa),
        r.size,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
        `guest RAM range ${r.name}`,
      );
    }
  } catch (e) {
    c.fn.munmap(Deno.UnsafePointer.create(reservation), BigInt(total));
    throw e;
  }
  const memory = attachGuestMemory(base, span, ranges);
  return {
    base,
    span,
    ranges,
    memory,
    unmap() {
      c.fn.munmap(Deno.UnsafePointer.create(reservation), BigInt(total));
    },
    discard() {
      for (const r of ranges) {
        c.fn.madvise(
          Deno.UnsafePointer.create(base + BigInt(r.gpa)),
          BigInt(r.size),
          MADV_DONTNEED,
        );
      }
    },
  };
}

/** Builds a {@linkcode GuestMemory} over an existing mapping (used by vCPU Workers). */
export function attachGuestMemory(
  base: bigint,
  span: number,
  ranges: readonly RamRange[],
): GuestMemory {
  const p = Deno.UnsafePointer.create(base);
  if (p === null) throw new Error("guest memory base is NULL");
  const bytes = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, span));
  return new GuestMemory(bytes, ranges);
}

/**
 * Atomic compare-exchange at a host address, through GCC's libatomic
 * (libatomic.so.1), for the instruction emulator's locked instructions on
 * guest RAM (`lock cmpxchg`, `lock cmpxchg8b`, `lock cmpxchg16b`, ...): the
 * other vCPUs run natively on the same memory, so the exchange must be the
 * same hardware atomic they use, never a lock of dhyve's own.
 *
 * Like cpu/libc.ts, every thread opens its own handle ({@linkcode hostAtomics}):
 * FFI symbols cannot cross Workers.
 *
 * The functions bound (libatomic's ABI, gcc/libatomic/libatomic.map):
 * - `bool __atomic_compare_exchange_N(void *ptr, T *expected, T desired,
 *   int success, int failure)` for N = 1, 2, 4, 8 (T = uintN): on x86-64 a
 *   plain `lock cmpxchg` at any alignment, as the guest's own instruction
 *   would be (a split lock across a cache line stays atomic, just slow).
 * - `__atomic_compare_exchange_16(void *ptr, unsigned __int128 *expected,
 *   unsigned __int128 desired, int, int)`. Deno FFI has no 128-bit type, so
 *   `desired` is passed as two u64 arguments: the SysV x86-64 ABI passes an
 *   `__int128` argument in two consecutive integer registers, low half
 *   first (System V AMD64 ABI, 3.2.3), here RDX and RCX, exactly where two
 *   u64 arguments in that position go. The symbol is an ifunc: on a CPU
 *   with CX16 it resolves to a `lock cmpxchg16b` (checked with
 *   `objdump -d libatomic.so.1`: the resolver tests CPUID.1:ECX.CX16 (bit
 *   13) and picks a body whose only access is `lock cmpxchg16b (%r8)`; the
 *   other choice takes a lock). {@linkcode HostAtomics} refuses 16-byte
 *   exchanges unless the host CPU has CX16 (/proc/cpuinfo), and atomic_test.ts races it against a native
 *   `lock cmpxchg16b` loop in another thread and counts no lost update.
 *   cmpxchg16b faults (#GP) on an address not 16-byte aligned, so an
 *   unaligned one is refused here (the emulator raises #GP before that).
 *
 * The caller bounds-checks the address: this module trusts it.
 *
 * @module
 */

/** __ATOMIC_SEQ_CST (gcc's memory-order numbering). */
const SEQ_CST = 5;

const SYMBOLS = {
  cas1: {
    name: "__atomic_compare_exchange_1",
    parameters: ["usize", "buffer", "u8", "i32", "i32"],
    result: "bool",
  },
  cas2: {
    name: "__atomic_compare_exchange_2",
    parameters: ["usize", "buffer", "u16", "i32", "i32"],
    result: "bool",
  },
  cas4: {
    name: "__atomic_compare_exchange_4",
    parameters: ["usize", "buffer", "u32", "i32", "i32"],
    result: "bool",
  },
  cas8: {
    name: "__atomic_compare_exchange_8",
    parameters: ["usize", "buffer", "u64", "i32", "i32"],
    result: "bool",
  },
  /** `desired` as (low u64, high u64): see the module comment. */
  cas16: {
    name: "__atomic_compare_exchange_16",
    parameters: ["usize", "buffer", "u64", "u64", "i32", "i32"],
    result: "bool",
  },
} as const;

const MASK64 = (1n << 64n) - 1n;

/**
 * Whether the host CPU has CMPXCHG16B (CPUID.01H:ECX.CX16[bit 13]), read
 * from the kernel's /proc/cpuinfo flags. libatomic's own resolver checks the
 * same bit; `__atomic_is_lock_free(16)` cannot be asked, because libatomic
 * answers false for 16 bytes even when it uses cmpxchg16b (a 16-byte atomic
 * load through cmpxchg16b writes, so GCC does not call it lock-free).
 */
function hostHasCx16(): boolean {
  try {
    const text = Deno.readTextFileSync("/proc/cpuinfo");
    const flags = /^flags\s*:(.*)$/m.exec(text)?.[1] ?? "";
    return flags.split(/\s+/).includes("cx16");
  } catch {
    return false;
  }
}

/** A per-thread handle on libatomic. */
export class HostAtomics {
  readonly #fn: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  /** The `expected` in/out buffer (16 bytes), reused by every call. */
  readonly #expected = new Uint8Array(16);
  readonly #expected64 = new BigUint64Array(this.#expected.buffer);
  readonly #expectedView = new DataView(this.#expected.buffer);
  /** True when 16-byte exchanges use `lock cmpxchg16b` (CX16). */
  readonly lockFree16: boolean;

  /** Opens libatomic for the calling thread. */
  constructor() {
    let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
    try {
      lib = Deno.dlopen("libatomic.so.1", SYMBOLS);
    } catch (e) {
      throw new Error(
        `cannot load libatomic.so.1 (Debian: apt-get install libatomic1): ${(e as Error).message}`,
      );
    }
    this.#fn = lib.symbols;
    this.lockFree16 = hostHasCx16();
  }

  /**
   * Atomically: if the `size` bytes at host address `address` equal
   * `expected` (little-endian), store `desired` there. Returns the value
   * found, which equals `expected` when the exchange happened. `size` is 1,
   * 2, 4, 8 or 16; a 16-byte exchange needs a 16-byte aligned address.
   */
  cmpxchg(address: bigint, size: number, expected: bigint, desired: bigint): bigint {
    if (address <= 0n || address >= 1n << 64n) {
      throw new RangeError(`atomic: bad host address ${address}`);
    }
    const e = this.#expectedView;
    switch (size) {
      case 1:
        e.setUint8(0, Number(BigInt.asUintN(8, expected)));
        this.#fn.cas1(
          address,
          this.#expected,
          Number(BigInt.asUintN(8, desired)),
          SEQ_CST,
          SEQ_CST,
        );
        return BigInt(e.getUint8(0));
      case 2:
        e.setUint16(0, Number(BigInt.asUintN(16, expected)), true);
        this.#fn.cas2(
          address,
          this.#expected,
          Number(BigInt.asUintN(16, desired)),
          SEQ_CST,
          SEQ_CST,
        );
        return BigInt(e.getUint16(0, true));
      case 4:
        e.setUint32(0, Number(BigInt.asUintN(32, expected)), true);
        this.#fn.cas4(
          address,
          this.#expected,
          Number(BigInt.asUintN(32, desired)),
          SEQ_CST,
          SEQ_CST,
        );
        return BigInt(e.getUint32(0, true));
      case 8:
        this.#expected64[0] = BigInt.asUintN(64, expected);
        this.#fn.cas8(address, this.#expected, BigInt.asUintN(64, desired), SEQ_CST, SEQ_CST);
        return this.#expected64[0];
      case 16: {
        if (!this.lockFree16) {
          throw new Error(
            "atomic: this CPU has no cmpxchg16b (CX16): a 16-byte exchange would not be atomic",
          );
        }
        if (address % 16n !== 0n) {
          throw new RangeError(
            `atomic: 16-byte exchange at 0x${address.toString(16)} is not 16-byte aligned`,
          );
        }
        this.#expected64[0] = expected & MASK64;
        this.#expected64[1] = (expected >> 64n) & MASK64;
        this.#fn.cas16(
          address,
          this.#expected,
          desired & MASK64,
          (desired >> 64n) & MASK64,
          SEQ_CST,
          SEQ_CST,
        );
        return this.#expected64[0] | (this.#expected64[1] << 64n);
      }
      default:
        throw new RangeError(`atomic: no ${size}-byte compare-exchange`);
    }
  }
}

let shared: HostAtomics | undefined;

/** The calling thread's libatomic handle, opened on first use. */
export function hostAtomics(): HostAtomics {
  return shared ??= new HostAtomics();
}

/**
 * In-memory implementations of the emulator's contracts for tests: a
 * {@linkcode TestMemory} (guest-physical RAM over a Uint8Array, MMIO hooks,
 * an access log and a hook to provoke compare-exchange races), a
 * {@linkcode TestCpu} (a {@linkcode CpuState} with a CPUID table, MSRs and
 * an XSAVE-format extended state), and a {@linkcode PageTableBuilder} for
 * every paging mode. The executor's and the page walker's tests use them;
 * so can the KVM adapter's and the oracle's.
 *
 * @example
 * ```ts
 * const mem = new TestMemory(1 << 20);
 * const pt = new PageTableBuilder(mem, "4level", 0x10000);
 * pt.map(0xffff800000000000n, 0x20000);
 * const cpu = createCpu({ mode: "long", cr3: pt.cr3 });
 * ```
 *
 * @module
 */

import { DIRTY, SEG, type SegmentCache } from "./types.ts";
import type { CpuState, PhysicalMemory } from "./types.ts";

/** A device window for {@linkcode TestMemory}: addresses outside RAM inside [base, base+size). */
export interface TestMmio {
  /** First guest-physical address of the window. */
  readonly base: number;
  /** Its size in bytes. */
  readonly size: number;
  /** Reads `size` bytes at `offset` (little-endian value). */
  read(offset: number, size: number): bigint;
  /** Writes `size` bytes at `offset`. */
  write(offset: number, size: number, value: bigint): void;
}

/** One access seen by {@linkcode TestMemory} (when `logging` is on). */
export interface MemAccess {
  /** The kind of access. */
  readonly op: "read" | "write" | "cmpxchg";
  /** Its guest-physical address. */
  readonly gpa: number;
  /** Its size in bytes. */
  readonly size: number;
}

/** Reads a little-endian unsigned value of `size` (1-16) bytes. */
export function leRead(bytes: Uint8Array, offset: number, size: number): bigint {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[offset + i]);
  return v;
}

/** Writes `value` as `size` (1-16) little-endian bytes. */
export function leWrite(bytes: Uint8Array, offset: number, size: number, value: bigint): void {
  for (let i = 0; i < size; i++) {
    bytes[offset + i] = Number(value & 0xffn);
    value >>= 8n;
  }
}

/** Parses "0f 01 ca" (spaces optional) into bytes. */
export function hex(s: string): Uint8Array {
  const t = s.replace(/\s+/g, "");
  if (t.length % 2 !== 0 || /[^0-9a-fA-F]/.test(t)) throw new Error(`bad hex string: ${s}`);
  const out = new Uint8Array(t.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(t.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * Guest-physical memory for tests: RAM at [0, size), optional MMIO windows
 * above it, an optional access log, and {@linkcode TestMemory.beforeCmpxchg}
 * to simulate another vCPU changing memory between a read and a
 * compare-exchange.
 */
export class TestMemory implements PhysicalMemory {
  /** The RAM bytes (guest-physical address = index). */
  readonly bytes: Uint8Array;
  /** MMIO windows (outside RAM). */
  readonly mmio: TestMmio[] = [];
  /** Every access when `logging` is true. */
  readonly log: MemAccess[] = [];
  /** Record accesses in `log`. */
  logging = false;
  /** Number of cmpxchg calls. */
  cmpxchgCount = 0;
  /**
   * Called before each compare-exchange with its arguments: a test can
   * write memory here to make the exchange fail once, as a racing vCPU would.
   */
  beforeCmpxchg?: (gpa: number, size: number) => void;

  /** RAM of `size` bytes, zero-filled. */
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }

  /** Adds an MMIO window (it must not overlap RAM). */
  addMmio(window: TestMmio): this {
    if (window.base < this.bytes.length) throw new Error("MMIO window overlaps RAM");
    this.mmio.push(window);
    return this;
  }

  /** True when [gpa, gpa + length) is inside RAM. */
  isRam(gpa: number, length: number): boolean {
    return gpa >= 0 && gpa + length <= this.bytes.length;
  }

  /** Reads RAM or MMIO; unclaimed addresses read as all ones. */
  read(gpa: number, out: Uint8Array): void {
    if (this.logging) this.log.push({ op: "read", gpa, size: out.length });
    if (this.isRam(gpa, out.length)) {
      out.set(this.bytes.subarray(gpa, gpa + out.length));
      return;
    }
    const w = this.#window(gpa, out.length);
    if (w) {
      for (let i = 0; i < out.length; i += 8) {
        const n = Math.min(8, out.length - i);
        leWrite(out, i, n, w.read(gpa + i - w.base, n));
      }
      return;
    }
    out.fill(0xff);
  }

  /** Writes RAM or MMIO; unclaimed addresses drop the write. */
  write(gpa: number, data: Uint8Array): void {
    if (this.logging) this.log.push({ op: "write", gpa, size: data.length });
    if (this.isRam(gpa, data.length)) {
      this.bytes.set(data, gpa);
      return;
    }
    const w = this.#window(gpa, data.length);
    if (w) {
      for (let i = 0; i < data.length; i += 8) {
        const n = Math.min(8, data.length - i);
        w.write(gpa + i - w.base, n, leRead(data, i, n));
      }
    }
  }

  /** Compare-exchange in RAM (throws outside RAM, as the contract allows only RAM). */
  cmpxchg(gpa: number, size: number, expected: bigint, desired: bigint): bigint {
    if (!this.isRam(gpa, size)) throw new Error(`cmpxchg outside RAM at ${gpa.toString(16)}`);
    this.cmpxchgCount++;
    this.beforeCmpxchg?.(gpa, size);
    if (this.logging) this.log.push({ op: "cmpxchg", gpa, size });
    const found = leRead(this.bytes, gpa, size);
    if (found === expected) leWrite(this.bytes, gpa, size, desired);
    return found;
  }

  /** Reads a little-endian value of `size` bytes from RAM. */
  get(gpa: number, size: number): bigint {
    return leRead(this.bytes, gpa, size);
  }

  /** Writes a little-endian value of `size` bytes to RAM. */
  set(gpa: number, size: number, value: bigint): this {
    leWrite(this.bytes, gpa, size, value);
    return this;
  }

  /** Copies `data` into RAM at `gpa`. */
  load(gpa: number, data: Uint8Array): this {
    this.bytes.set(data, gpa);
    return this;
  }

  #window(gpa: number, length: number): TestMmio | undefined {
    return this.mmio.find((w) => gpa >= w.base && gpa + length <= w.base + w.size);
  }
}

/** The paging modes {@linkcode PageTableBuilder} builds. */
export type PagingMode = "32bit" | "pae" | "4level" | "5level";

/** Options for one mapping of {@linkcode PageTableBuilder.map}. */
export interface MapOptions {
  /** Page size: 4096 (default), 2 MiB (PAE/4-level/5-level), 4 MiB (32-bit, needs CR4.PSE), 1 GiB. */
  readonly size?: number;
  /** R/W in the leaf (default true). */
  readonly writable?: boolean;
  /** U/S in the leaf (default false: a supervisor page). */
  readonly user?: boolean;
  /** XD in the leaf (default false). */
  readonly noExecute?: boolean;
  /** Protection key (bits 62:59 of the leaf; 4-level and 5-level paging). */
  readonly pkey?: number;
  /** Accessed flag preset in the leaf. */
  readonly accessed?: boolean;
  /** Dirty flag preset in the leaf. */
  readonly dirty?: boolean;
  /** Extra bits ORed into the leaf entry as is (e.g. reserved bits for tests). */
  readonly extra?: bigint;
}

const PAGE_BITS: Record<PagingMode, { levels: number; entry: number }> = {
  "32bit": { levels: 2, entry: 4 },
  pae: { levels: 3, entry: 8 },
  "4level": { levels: 4, entry: 8 },
  "5level": { levels: 5, entry: 8 },
};

/**
 * Builds paging structures in a {@linkcode TestMemory}: tables are taken in
 * order from a bump allocator starting at `tableBase` (4 KiB aligned).
 * Non-leaf entries get P, R/W and U/S set, so the leaf alone decides the
 * access rights unless {@linkcode PageTableBuilder.setTableFlags} says otherwise.
 */
export class PageTableBuilder {
  /** The paging mode. */
  readonly mode: PagingMode;
  /** The value for CR3 (the top-level table; for PAE the 32-byte PDPT). */
  readonly cr3: bigint;
  /** Flags given to new non-leaf entries (default P | R/W | U/S). */
  tableFlags = 0x7n;
  #mem: TestMemory;
  #next: number;

  /** Allocates the top-level table at `tableBase`. */
  constructor(mem: TestMemory, mode: PagingMode, tableBase: number) {
    if (tableBase % 4096 !== 0) throw new Error("tableBase must be 4 KiB aligned");
    this.mode = mode;
    this.#mem = mem;
    this.#next = tableBase;
    this.cr3 = BigInt(this.#alloc());
  }

  /** Sets the flags (low 12 bits and bit 63) given to non-leaf entries created from now on. */
  setTableFlags(flags: bigint): this {
    this.tableFlags = flags;
    return this;
  }

  /** Maps the page at `linear` to `gpa` (both aligned to the page size). */
  map(linear: bigint, gpa: number, options: MapOptions = {}): this {
    const size = options.size ?? 4096;
    const leafLevel = this.#leafLevel(size);
    if (linear % BigInt(size) !== 0n || gpa % size !== 0) throw new Error("unaligned mapping");
    let leaf = BigInt(gpa) | 1n;
    if (options.writable ?? true) leaf |= 2n;
    if (options.user) leaf |= 4n;
    if (options.accessed) leaf |= 0x20n;
    if (options.dirty) leaf |= 0x40n;
    if (leafLevel > 1) {
      leaf |= 0x80n;
      if (this.mode === "32bit") {
        // PSE-36: bits 39:32 of the address go to PDE bits 20:13.
        leaf = (BigInt(gpa) & 0xffc00000n) | ((BigInt(gpa) >> 32n) << 13n) | (leaf & 0xfffn);
      }
    }
    if (options.noExecute) leaf |= 1n << 63n;
    if (options.pkey) leaf |= BigInt(options.pkey & 0xf) << 59n;
    if (options.extra) leaf |= options.extra;
    this.#mem.set(this.entryAddress(linear, leafLevel, true), PAGE_BITS[this.mode].entry, leaf);
    return this;
  }

  /** Maps [gpa, gpa + length) at linear = gpa + offset with 4 KiB pages. */
  identity(gpa: number, length: number, options: MapOptions = {}, offset = 0n): this {
    for (let a = gpa; a < gpa + length; a += 4096) this.map(BigInt(a) + offset, a, options);
    return this;
  }

  /**
   * The guest-physical address of the entry at `level` (1 = PTE ... 5) for
   * `linear`; with `create`, missing tables on the way are allocated.
   * Throws if a table on the way is missing and `create` is false.
   */
  entryAddress(linear: bigint, level: number, create = false): number {
    const { levels, entry } = PAGE_BITS[this.mode];
    let table = Number(this.cr3);
    for (let l = levels; l >= level; l--) {
      const addr = table + this.#index(linear, l) * entry;
      if (l === level) return addr;
      let e = this.#mem.get(addr, entry);
      if ((e & 1n) === 0n) {
        if (!create) throw new Error(`no table at level ${l - 1} for ${linear.toString(16)}`);
        const t = this.#alloc();
        // PAE PDPTEs have only P (bits 2:1 and 8:5 are reserved).
        e = this.mode === "pae" && l === 3 ? BigInt(t) | 1n : BigInt(t) | this.tableFlags;
        this.#mem.set(addr, entry, e);
      }
      table = Number(e & 0x000ffffffffff000n);
    }
    throw new Error("unreachable");
  }

  /** Reads the entry at `level` for `linear`. */
  entry(linear: bigint, level: number): bigint {
    return this.#mem.get(this.entryAddress(linear, level), PAGE_BITS[this.mode].entry);
  }

  /** Overwrites the entry at `level` for `linear`. */
  setEntry(linear: bigint, level: number, value: bigint): this {
    this.#mem.set(this.entryAddress(linear, level), PAGE_BITS[this.mode].entry, value);
    return this;
  }

  #leafLevel(size: number): number {
    if (size === 4096) return 1;
    if (size === 2 << 20 && this.mode !== "32bit") return 2;
    if (size === 4 << 20 && this.mode === "32bit") return 2;
    if (size === 1 << 30 && (this.mode === "4level" || this.mode === "5level")) return 3;
    throw new Error(`page size ${size} not available in ${this.mode} paging`);
  }

  #index(linear: bigint, level: number): number {
    if (this.mode === "32bit") return Number((linear >> (level === 2 ? 22n : 12n)) & 0x3ffn);
    if (this.mode === "pae" && level === 3) return Number((linear >> 30n) & 3n);
    return Number((linear >> BigInt(12 + 9 * (level - 1))) & 0x1ffn);
  }

  #alloc(): number {
    const a = this.#next;
    this.#next += 4096;
    this.#mem.bytes.fill(0, a, a + 4096);
    return a;
  }
}

/** The processor modes {@linkcode createCpu} sets up. */
export type CpuMode = "real" | "protected16" | "protected32" | "compat32" | "long";

/** The processor vendor a {@linkcode TestCpu} reports in CPUID leaf 0. */
export type Vendor = "intel" | "amd";

/** Options for {@linkcode createCpu}. */
export interface CreateCpuOptions {
  /** Processor mode (default "long": 64-bit mode, paging, PAE). */
  readonly mode?: CpuMode;
  /** CPL 0 or 3 (sets CS/SS DPL; default 0). */
  readonly cpl?: number;
  /** CR3 (with paging: "long", "compat32"; or when `paging` is set). */
  readonly cr3?: bigint;
  /** Enable paging in the 32/16-bit protected modes ("32bit" or "pae"); long modes always page. */
  readonly paging?: "32bit" | "pae";
  /** 5-level paging (CR4.LA57) for long mode. */
  readonly la57?: boolean;
  /** Vendor for CPUID (default "intel"). */
  readonly vendor?: Vendor;
  /** CPUID entries to add or replace: key "leaf" or "leaf.subleaf" (hex or decimal). */
  readonly cpuid?: Readonly<Record<string, readonly [number, number, number, number]>>;
  /**
   * AVX-512F and AVX-512VL in CPUID (leaf 7 EBX bits 16 and 31), the opmask,
   * ZMM_Hi256 and Hi16_ZMM XSAVE components (5-7) in CPUID leaf 0DH and, in
   * the protected and long modes, in XCR0 (0xe7).
   */
  readonly avx512?: boolean;
}

/** A flat segment (base 0, limit 4 GiB) of the given kind and DPL, as a kvm_segment holds it. */
export function flatSegment(
  kind: "code64" | "code32" | "code16" | "data" | "data16",
  dpl = 0,
  selector = 0,
): SegmentCache {
  const code = kind.startsWith("code");
  const big = kind === "code32" || kind === "data";
  return {
    base: 0n,
    limit: kind === "code16" || kind === "data16" ? 0xffff : 0xffffffff,
    selector,
    type: code ? 0xb : 0x3, // execute/read accessed; read/write accessed
    present: 1,
    dpl,
    db: big ? 1 : 0,
    s: 1,
    l: kind === "code64" ? 1 : 0,
    g: big || kind === "code64" ? 1 : 0,
    avl: 0,
    unusable: 0,
  };
}

/** A real-mode segment for `selector` (base = selector * 16, limit 64 KiB). */
export function realSegment(selector: number, code = false): SegmentCache {
  return {
    base: BigInt(selector) << 4n,
    limit: 0xffff,
    selector,
    type: code ? 0xb : 0x3,
    present: 1,
    dpl: 0,
    db: 0,
    s: 1,
    l: 0,
    g: 0,
    avl: 0,
    unusable: 0,
  };
}

/** The size of {@linkcode TestCpu}'s extended-state area (as KVM_GET_XSAVE's 4 KiB region). */
export const XSAVE_AREA_SIZE = 4096;

/**
 * The XSAVE layout {@linkcode TestCpu} reports in CPUID leaf 0DH: for
 * components 2 (AVX), 5-7 (AVX-512) and 9 (PKRU) the standard-format
 * offset and size, and whether the compacted format aligns it to 64 bytes.
 * Offsets are Intel's.
 */
export const XSAVE_COMPONENTS: Readonly<
  Record<number, { offset: number; size: number; align64: boolean }>
> = {
  2: { offset: 576, size: 256, align64: false },
  5: { offset: 1088, size: 64, align64: false },
  6: { offset: 1152, size: 512, align64: false },
  7: { offset: 1664, size: 1024, align64: false },
  9: { offset: 2688, size: 8, align64: false },
};

/** A {@linkcode CpuState} over plain fields, with a CPUID table, MSRs and a 4 KiB XSAVE area. */
export class TestCpu implements CpuState {
  /** rax ... r15. */
  readonly gpr = new BigUint64Array(16);
  /** RIP. */
  rip = 0n;
  /** RFLAGS (bit 1 is always set). */
  rflags = 2n;
  /** es, cs, ss, ds, fs, gs. */
  readonly seg: SegmentCache[] = [0, 1, 2, 3, 4, 5].map(() => flatSegment("data"));
  /** TR. */
  tr: SegmentCache = { ...flatSegment("data"), type: 0xb, s: 0, limit: 0x67, g: 0, db: 0 };
  /** LDTR. */
  ldtr: SegmentCache = { ...flatSegment("data"), unusable: 1, present: 0 };
  /** GDTR. */
  gdtr = { base: 0n, limit: 0xffff };
  /** IDTR. */
  idtr = { base: 0n, limit: 0xffff };
  /** CR0 (default: ET set, as after reset). */
  cr0 = 0x10n;
  /** CR2. */
  cr2 = 0n;
  /** CR3. */
  cr3 = 0n;
  /** CR4. */
  cr4 = 0n;
  /** CR8. */
  cr8 = 0n;
  /** IA32_EFER. */
  efer = 0n;
  /** XCR0 (x87 only after reset). */
  xcr0 = 1n;
  /** DIRTY bits the executor set. */
  dirty = 0;
  /** MSRs other than EFER, FS_BASE and GS_BASE (which alias fields). */
  readonly msrs = new Map<number, bigint>([
    [0xc0000102, 0n], // IA32_KERNEL_GS_BASE
    [0xda0, 0n], // IA32_XSS
    [0x1b, 0xfee00900n], // IA32_APIC_BASE: enabled, BSP
    [0xc0000081, 0n], // STAR
    [0xc0000082, 0n], // LSTAR
    [0xc0000084, 0n], // FMASK
  ]);
  /** MSRs whose writes the vCPU refuses (wrmsr raises #GP). */
  readonly readOnlyMsrs = new Set<number>();
  /** CPUID leaves, keyed "leaf.subleaf" (decimal); a missing subleaf falls back to ".0". */
  readonly cpuidTable = new Map<string, readonly [number, number, number, number]>();
  /** Number of calls to {@linkcode TestCpu.extended} (the adapter's ioctl). */
  extendedLoads = 0;
  #xsave = new Uint8Array(XSAVE_AREA_SIZE);

  /** A CPU after reset (real mode) with the CPUID table of `vendor`. */
  constructor(vendor: Vendor = "intel") {
    fillCpuid(this.cpuidTable, vendor);
    const x = this.#xsave;
    const dv = new DataView(x.buffer);
    dv.setUint16(0, 0x37f, true); // FCW after FNINIT/reset (SDM Vol. 1, 8.1.5)
    dv.setUint32(24, 0x1f80, true); // MXCSR default
    dv.setUint32(28, vendor === "amd" ? 0x2ffff : 0xffff, true); // MXCSR_MASK (DAZ supported)
  }

  /** The XSAVE-format extended state. */
  extended(): Uint8Array {
    this.extendedLoads++;
    return this.#xsave;
  }

  /** The extended state without counting a load (for assertions). */
  get xsaveArea(): Uint8Array {
    return this.#xsave;
  }

  /** XMM register `i` as a 128-bit value. */
  xmm(i: number): bigint {
    return leRead(this.#xsave, 160 + 16 * i, 16);
  }

  /** Sets XMM register `i` (and XSTATE_BV[1]). */
  setXmm(i: number, value: bigint): this {
    leWrite(this.#xsave, 160 + 16 * i, 16, value);
    this.#xsave[512] |= 2;
    return this;
  }

  /** CPUID from the table; leaf 1 and 7 reflect CR4.OSXSAVE and CR4.PKE as hardware does. */
  cpuid(leaf: number, subleaf: number): readonly [number, number, number, number] {
    const max = leaf >= 0x80000000 ? 0x80000008 : (this.cpuidTable.get("0.0")?.[0] ?? 0);
    if (leaf > max) leaf = this.cpuidTable.get("0.0")?.[0] ?? 0; // Intel: highest basic leaf
    const r = this.cpuidTable.get(`${leaf}.${subleaf}`) ?? this.cpuidTable.get(`${leaf}.0`);
    if (!r) return [0, 0, 0, 0];
    if (leaf === 1) {
      const osxsave = (this.cr4 >> 18n) & 1n ? 1 << 27 : 0;
      return [r[0], r[1], ((r[2] & ~(1 << 27)) | osxsave) >>> 0, r[3]];
    }
    if (leaf === 7 && subleaf === 0) {
      const ospke = (this.cr4 >> 22n) & 1n ? 1 << 4 : 0;
      return [r[0], r[1], ((r[2] & ~(1 << 4)) | ospke) >>> 0, r[3]];
    }
    return r;
  }

  /** RDMSR: EFER, FS_BASE and GS_BASE from the fields, others from `msrs`. */
  readMsr(index: number): bigint | undefined {
    if (index === 0xc0000080) return this.efer;
    if (index === 0xc0000100) return this.seg[SEG.fs].base;
    if (index === 0xc0000101) return this.seg[SEG.gs].base;
    return this.msrs.get(index);
  }

  /** WRMSR: refused for unknown and read-only MSRs. */
  writeMsr(index: number, value: bigint): boolean {
    if (this.readOnlyMsrs.has(index)) return false;
    if (index === 0xc0000080) this.efer = value;
    else if (index === 0xc0000100) this.seg[SEG.fs].base = value;
    else if (index === 0xc0000101) this.seg[SEG.gs].base = value;
    else if (this.msrs.has(index)) this.msrs.set(index, value);
    else return false;
    return true;
  }
}

/**
 * A CPU in the given mode, ready to run at CPL `cpl`: long mode has
 * CR0.PE|PG|WP|ET|NE|MP, CR4.PAE|OSFXSR|OSXMMEXCPT|OSXSAVE, EFER.LME|LMA|NXE|SCE,
 * XCR0 = x87|SSE|AVX, flat segments. Protected modes have flat 32-bit or
 * 16-bit segments; real mode has CS = DS = ... = 0.
 */
export function createCpu(options: CreateCpuOptions = {}): TestCpu {
  const cpu = new TestCpu(options.vendor ?? "intel");
  const mode = options.mode ?? "long";
  const cpl = options.cpl ?? 0;
  for (const [k, v] of Object.entries(options.cpuid ?? {})) {
    const [leaf, sub] = k.split(".");
    cpu.cpuidTable.set(`${Number(leaf)}.${Number(sub ?? 0)}`, v);
  }
  cpu.cr4 = 0x200n | 0x400n | 0x40000n; // OSFXSR, OSXMMEXCPT, OSXSAVE
  cpu.xcr0 = 7n;
  if (options.avx512) {
    const l7 = cpu.cpuidTable.get("7.0")!;
    cpu.cpuidTable.set("7.0", [l7[0], (l7[1] | (1 << 16) | (1 << 31)) >>> 0, l7[2], l7[3]]);
    const ld = cpu.cpuidTable.get("13.0")!;
    cpu.cpuidTable.set("13.0", [ld[0] | 0xe0, 2696, 2696, ld[3]]);
    cpu.xcr0 = 0xe7n;
  }
  if (mode === "real") {
    cpu.cr0 = 0x10n;
    cpu.cr4 = 0x200n | 0x400n;
    cpu.xcr0 = 1n;
    for (let i = 0; i < 6; i++) cpu.seg[i] = realSegment(0, i === SEG.cs);
    return cpu;
  }
  cpu.cr0 = 0x80000033n &
    (mode === "long" || mode === "compat32" || options.paging ? ~0n : 0x7fffffffn);
  cpu.cr0 |= 0x10000n; // WP
  const dataKind = mode === "protected16" ? "data16" : "data";
  for (let i = 0; i < 6; i++) cpu.seg[i] = flatSegment(dataKind, cpl, cpl ? 0x2b : 0x18);
  let codeKind: "code64" | "code32" | "code16" = "code32";
  if (mode === "long") codeKind = "code64";
  if (mode === "protected16") codeKind = "code16";
  cpu.seg[SEG.cs] = flatSegment(codeKind, cpl, cpl ? 0x33 : 0x10);
  if (mode === "long" || mode === "compat32") {
    cpu.efer = 0xd01n; // SCE, LME, LMA, NXE
    cpu.cr4 |= 0x20n; // PAE
    if (options.la57) cpu.cr4 |= 0x1000n;
  } else if (options.paging === "pae") {
    cpu.cr4 |= 0x20n;
    cpu.efer = 0x800n; // NXE
  } else if (options.paging === "32bit") {
    cpu.cr4 |= 0x10n; // PSE
  }
  cpu.cr3 = options.cr3 ?? 0n;
  cpu.dirty = 0;
  return cpu;
}

/** A plain copy of everything a {@linkcode TestCpu} holds, for before/after comparisons. */
export function snapshotCpu(cpu: TestCpu): Record<string, unknown> {
  return structuredClone({
    gpr: Array.from(cpu.gpr),
    rip: cpu.rip,
    rflags: cpu.rflags,
    seg: cpu.seg,
    tr: cpu.tr,
    ldtr: cpu.ldtr,
    gdtr: cpu.gdtr,
    idtr: cpu.idtr,
    cr0: cpu.cr0,
    cr2: cpu.cr2,
    cr3: cpu.cr3,
    cr4: cpu.cr4,
    cr8: cpu.cr8,
    efer: cpu.efer,
    xcr0: cpu.xcr0,
    msrs: [...cpu.msrs],
    xsave: Array.from(cpu.xsaveArea),
  });
}

function fillCpuid(
  t: Map<string, readonly [number, number, number, number]>,
  vendor: Vendor,
): void {
  const sig = vendor === "intel" ? "GenuineIntel" : "AuthenticAMD";
  const w = (s: string) =>
    (s.charCodeAt(0) | (s.charCodeAt(1) << 8) | (s.charCodeAt(2) << 16) |
      (s.charCodeAt(3) << 24)) >>> 0;
  // Leaf 0: max leaf, vendor in EBX, EDX, ECX.
  t.set("0.0", [0xd, w(sig.slice(0, 4)), w(sig.slice(8, 12)), w(sig.slice(4, 8))]);
  // Leaf 1: SSE3, PCLMUL, SSSE3, CX16, SSE4.1, SSE4.2, MOVBE, POPCNT, XSAVE, AVX;
  // EDX: FPU ... SSE2 (SDM Vol. 2A, CPUID, Tables 3-10 and 3-11).
  const ecx1 = (1 << 0) | (1 << 1) | (1 << 9) | (1 << 13) | (1 << 19) | (1 << 20) | (1 << 22) |
    (1 << 23) | (1 << 26) | (1 << 28);
  t.set("1.0", [vendor === "intel" ? 0x000906ea : 0x00a00f11, 0x00000800, ecx1 >>> 0, 0x178bfbff]);
  // Leaf 7.0: FSGSBASE, BMI1, SMEP, BMI2, ERMS, INVPCID, SMAP, CLFLUSHOPT; ECX: PKU.
  const ebx7 = (1 << 0) | (1 << 3) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 20) |
    (1 << 23);
  t.set("7.0", [0, ebx7 >>> 0, 1 << 3, 0]);
  // Leaf 0DH: XCR0 may have x87, SSE, AVX, PKRU; sizes for XCR0 = 7.
  t.set("13.0", [0x207, 832, 2696, 0]);
  // 0DH.1: XSAVEOPT, XSAVEC, XGETBV1, XSAVES; EBX: size for XCR0|XSS = 7, compacted.
  t.set("13.1", [0xf, 832, 0, 0]);
  for (const [i, c] of Object.entries(XSAVE_COMPONENTS)) {
    t.set(`13.${i}`, [c.size, c.offset, c.align64 ? 2 : 0, 0]);
  }
  t.set(`${0x80000000}.0`, [0x80000008, 0, 0, 0]);
  // 80000001H: LAHF-SAHF in 64-bit mode, LZCNT (ABM); EDX: SYSCALL, NX, 1-GiB pages, RDTSCP, LM.
  t.set(`${0x80000001}.0`, [
    0,
    0,
    (1 << 0) | (1 << 5),
    ((1 << 11) | (1 << 20) | (1 << 26) | (1 << 27) | (1 << 29)) >>> 0,
  ]);
  // 80000008H: 48 physical and 48 linear address bits.
  t.set(`${0x80000008}.0`, [0x3030, 0, 0, 0]);
}

/** The names of the {@linkcode DIRTY} bits set in `dirty` (for assertion messages). */
export function dirtyNames(dirty: number): string[] {
  return Object.entries(DIRTY).filter(([, bit]) => (dirty & bit) !== 0).map(([k]) => k);
}

/** Options for {@linkcode TestMachine}. */
export interface TestMachineOptions extends CreateCpuOptions {
  /** RAM size (default 2 MiB). */
  readonly ramSize?: number;
  /** Map the code, data and stack pages user-accessible (default: when cpl is 3). */
  readonly userPages?: boolean;
}

/**
 * A CPU with memory laid out for running single instructions:
 *
 * | mode | code (RIP) | data | stack top (RSP) |
 * | --- | --- | --- | --- |
 * | long, compat32 (4-level paging) | 0x401000 -> phys 0x1000, 2 pages | 0x600000 -> 0x10000, 16 pages | 0x800000 (0x7f0000 -> 0x30000) |
 * | protected32 (no paging) | 0x1000 | 0x10000 | 0x40000 |
 * | protected16 (no paging, 64 KiB segments) | 0x1000 | 0x1000-0xffff | 0xfff0 |
 * | real | CS:IP 0:0x1000 | DS = 0 | SS:SP 0x3000:0xfff0 (linear 0x3fff0) |
 *
 * Page tables sit at 0x100000 in long mode. The page after the data
 * (0x610000) is not mapped.
 */
export class TestMachine {
  /** Linear address of the code (RIP after construction, in long mode). */
  static readonly CODE = 0x401000n;
  /** Linear address of the data pages in long mode. */
  static readonly DATA = 0x600000n;
  /** RSP in long mode. */
  static readonly STACK_TOP = 0x800000n;
  /** The memory. */
  readonly mem: TestMemory;
  /** The CPU. */
  readonly cpu: TestCpu;
  /** The page tables (long and compat32 modes), else null. */
  readonly pt: PageTableBuilder | null;

  /** Builds the machine. */
  constructor(options: TestMachineOptions = {}) {
    const mode = options.mode ?? "long";
    this.mem = new TestMemory(options.ramSize ?? 0x200000);
    const paged = mode === "long" || mode === "compat32";
    if (paged) {
      const pt = new PageTableBuilder(this.mem, options.la57 ? "5level" : "4level", 0x100000);
      const user = options.userPages ?? (options.cpl ?? 0) === 3;
      pt.identity(0x1000, 0x2000, { user }, 0x400000n);
      pt.identity(0x10000, 0x10000, { user }, 0x600000n - 0x10000n);
      pt.identity(0x30000, 0x10000, { user }, 0x7f0000n - 0x30000n);
      this.pt = pt;
    } else {
      this.pt = null;
    }
    this.cpu = createCpu({ ...options, cr3: this.pt ? this.pt.cr3 : options.cr3 });
    const cpu = this.cpu;
    if (mode === "long") {
      cpu.rip = TestMachine.CODE;
      cpu.gpr[4] = TestMachine.STACK_TOP;
    } else if (mode === "compat32") {
      cpu.rip = TestMachine.CODE;
      cpu.gpr[4] = TestMachine.STACK_TOP;
    } else if (mode === "real") {
      cpu.rip = 0x1000n;
      cpu.seg[SEG.ss] = realSegment(0x3000);
      cpu.gpr[4] = 0xfff0n;
    } else {
      cpu.rip = 0x1000n;
      cpu.gpr[4] = mode === "protected16" ? 0xfff0n : 0x40000n;
    }
    cpu.dirty = 0;
  }

  /** The guest-physical address of a linear address (identity without paging). */
  phys(linear: bigint): number {
    if (!this.pt) return Number(linear & 0xffffffffn);
    const lin = linear & 0xffffffffffffn;
    for (
      const [base, phys, len] of [[0x400000n, 0, 0x3000n], [0x600000n, 0x10000, 0x10000n], [
        0x7f0000n,
        0x30000,
        0x10000n,
      ]] as const
    ) {
      if (lin >= base && lin < base + len) return phys + Number(lin - base);
    }
    throw new Error(`0x${linear.toString(16)} is not mapped by TestMachine`);
  }

  /** Writes instruction bytes (hex or bytes) at CS:RIP. */
  code(bytes: string | Uint8Array): this {
    const b = typeof bytes === "string" ? hex(bytes) : bytes;
    const cs = this.cpu.seg[SEG.cs].base;
    this.mem.load(this.phys(cs + this.cpu.rip), b);
    return this;
  }

  /** Reads `size` bytes at a linear address as a little-endian value. */
  peek(linear: bigint, size: number): bigint {
    return this.mem.get(this.phys(linear), size);
  }

  /** Writes a little-endian value of `size` bytes at a linear address. */
  poke(linear: bigint, size: number, value: bigint): this {
    this.mem.set(this.phys(linear), size, value);
    return this;
  }
}

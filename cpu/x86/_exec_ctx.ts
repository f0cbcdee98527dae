/**
 * The executor's working state for one instruction: a scratch copy of the
 * general-purpose registers, RIP and RFLAGS; memory operands resolved
 * through segmentation and the page walker; memory writes held back until
 * the instruction completes; faults thrown as {@linkcode Fault} and caught
 * by exec.ts, which then commits nothing.
 *
 * Private module of exec.ts.
 *
 * @module
 */

import {
  type PageAccess,
  type PagingRegs,
  translate,
  type TranslateOut,
  type WalkOptions,
} from "./paging.ts";
import {
  type CpuState,
  DIRTY,
  type Instruction,
  type MemOperand,
  type Mode,
  type Operand,
  type PhysicalMemory,
  RIP_BASE,
  SEG,
  type SegIndex,
  type X86Exception,
} from "./types.ts";

// ---------------------------------------------------------------------------
// Constants

/** RFLAGS bits (SDM Vol. 1, 3.4.3). */
export const F = Object.freeze({
  CF: 1 << 0,
  PF: 1 << 2,
  AF: 1 << 4,
  ZF: 1 << 6,
  SF: 1 << 7,
  TF: 1 << 8,
  IF: 1 << 9,
  DF: 1 << 10,
  OF: 1 << 11,
  IOPL: 3 << 12,
  NT: 1 << 14,
  RF: 1 << 16,
  VM: 1 << 17,
  AC: 1 << 18,
  VIF: 1 << 19,
  VIP: 1 << 20,
  ID: 1 << 21,
});
/** The six status flags. */
export const ARITH = F.CF | F.PF | F.AF | F.ZF | F.SF | F.OF;

/** Exception vectors (SDM Vol. 3A, Table 6-1). */
export const VEC = Object.freeze({
  DE: 0,
  DB: 1,
  BP: 3,
  UD: 6,
  NM: 7,
  TS: 10,
  NP: 11,
  SS: 12,
  GP: 13,
  PF: 14,
  MF: 16,
  AC: 17,
  XM: 19,
});

/** CR0 bits (SDM Vol. 3A, 2.5). */
export const CR0 = Object.freeze({
  PE: 1n << 0n,
  MP: 1n << 1n,
  EM: 1n << 2n,
  TS: 1n << 3n,
  ET: 1n << 4n,
  NE: 1n << 5n,
  WP: 1n << 16n,
  AM: 1n << 18n,
  NW: 1n << 29n,
  CD: 1n << 30n,
  PG: 1n << 31n,
});

/** CR4 bits (SDM Vol. 3A, 2.5). */
export const CR4 = Object.freeze({
  VME: 1n << 0n,
  PVI: 1n << 1n,
  TSD: 1n << 2n,
  DE: 1n << 3n,
  PSE: 1n << 4n,
  PAE: 1n << 5n,
  MCE: 1n << 6n,
  PGE: 1n << 7n,
  PCE: 1n << 8n,
  OSFXSR: 1n << 9n,
  OSXMMEXCPT: 1n << 10n,
  UMIP: 1n << 11n,
  LA57: 1n << 12n,
  VMXE: 1n << 13n,
  SMXE: 1n << 14n,
  FSGSBASE: 1n << 16n,
  PCIDE: 1n << 17n,
  OSXSAVE: 1n << 18n,
  KL: 1n << 19n,
  SMEP: 1n << 20n,
  SMAP: 1n << 21n,
  PKE: 1n << 22n,
  CET: 1n << 23n,
  PKS: 1n << 24n,
  UINTR: 1n << 25n,
  LAM_SUP: 1n << 28n,
});

/** IA32_EFER bits (SDM Vol. 3A, 2.2.1; AMD APM Vol. 2, 3.1.7). */
export const EFER = Object.freeze({
  SCE: 1n << 0n,
  LME: 1n << 8n,
  LMA: 1n << 10n,
  NXE: 1n << 11n,
  SVME: 1n << 12n,
  LMSLE: 1n << 13n,
  FFXSR: 1n << 14n,
  TCE: 1n << 15n,
  AUTOIBRS: 1n << 21n,
});

/** Masks of 1, 2, 4 and 8 bytes, indexed by size. */
export const MASK: readonly bigint[] = [
  0n,
  0xffn,
  0xffffn,
  0n,
  0xffffffffn,
  0n,
  0n,
  0n,
  (1n << 64n) - 1n,
];
/** Sign bits, indexed by size. */
export const SIGN: readonly bigint[] = [0n, 0x80n, 0x8000n, 0n, 0x80000000n, 0n, 0n, 0n, 1n << 63n];
/** Operand width in bits as a bigint, indexed by size. */
export const BITS: readonly bigint[] = [0n, 8n, 16n, 0n, 32n, 0n, 0n, 0n, 64n];

/** PF for each low-byte value: F.PF when the number of set bits is even. */
export const PARITY: Uint8Array = (() => {
  const t = new Uint8Array(256);
  for (let i = 0; i < 256; i++) {
    let n = 0;
    for (let b = i; b; b >>= 1) n += b & 1;
    t[i] = n % 2 === 0 ? F.PF : 0;
  }
  return t;
})();

// ---------------------------------------------------------------------------
// Control flow out of a handler

/** An exception the instruction raises; thrown by handlers, caught by exec.ts. */
export class Fault {
  /** The exception to report. */
  readonly exception: X86Exception;
  /** Builds the fault. */
  constructor(vector: number, errorCode?: number, cr2?: bigint) {
    this.exception = errorCode === undefined
      ? { vector }
      : cr2 === undefined
      ? { vector, errorCode }
      : { vector, errorCode, cr2 };
  }
}

/** The instruction (or this form of it) is not implemented; thrown by handlers. */
export class Unsupported {
  /** Why. */
  readonly message: string;
  /** Builds it. */
  constructor(message: string) {
    this.message = message;
  }
}

/** #GP(0). */
export function gp0(): Fault {
  return new Fault(VEC.GP, 0);
}
/** #UD. */
export function ud(): Fault {
  return new Fault(VEC.UD);
}

// ---------------------------------------------------------------------------
// CPUID-derived facts, cached per CpuState

/** The XSAVE layout of one state component (CPUID.(EAX=0DH,ECX=i)). */
export interface XComponent {
  readonly size: number;
  /** Standard-format offset (EBX). */
  readonly offset: number;
  /** Compacted format aligns it to 64 bytes (ECX bit 1). */
  readonly align64: boolean;
  /** A supervisor component (ECX bit 0: in IA32_XSS, not XCR0). */
  readonly supervisor: boolean;
}

/** What the executor needs to know from CPUID, read once per CpuState. */
export interface Features {
  readonly vendor: "intel" | "amd" | "other";
  readonly maxPhyAddr: number;
  readonly popcnt: boolean;
  readonly movbe: boolean;
  readonly sse42: boolean;
  readonly cx16: boolean;
  readonly xsave: boolean;
  readonly fsgsbase: boolean;
  readonly bmi1: boolean;
  readonly smap: boolean;
  readonly smep: boolean;
  readonly pku: boolean;
  readonly la57: boolean;
  readonly umip: boolean;
  readonly pcid: boolean;
  readonly lzcnt: boolean;
  readonly nx: boolean;
  readonly lm: boolean;
  readonly rdpid: boolean;
  readonly rdrand: boolean;
  readonly rdseed: boolean;
  readonly lahf64: boolean;
  readonly xsaveopt: boolean;
  readonly xsavec: boolean;
  readonly xgetbv1: boolean;
  readonly xsaves: boolean;
  /** XCR0 bits the processor supports (CPUID.(0DH,0):EDX:EAX). */
  readonly xcr0Supported: bigint;
  /** IA32_XSS bits the processor supports (CPUID.(0DH,1):EDX:ECX). */
  readonly xssSupported: bigint;
  /** Components 2-62, lazily read. */
  readonly components: (XComponent | undefined)[];
  /** CR4 bits the processor supports (others are reserved: #GP on MOV to CR4). */
  readonly cr4Valid: bigint;
  /** IA32_EFER bits the processor supports. */
  readonly eferValid: bigint;
  /** The page walker's options for this processor (MAXPHYADDR). */
  readonly walkOptions: WalkOptions;
}

const featureCache = new WeakMap<CpuState, Features>();

/** The CPUID facts of `cpu` (read once, cached). */
export function featuresOf(cpu: CpuState): Features {
  let f = featureCache.get(cpu);
  if (f) return f;
  const l0 = cpu.cpuid(0, 0);
  const max = l0[0];
  const vendor = l0[1] === 0x756e6547 ? "intel" : l0[1] === 0x68747541 ? "amd" : "other";
  const l1 = max >= 1 ? cpu.cpuid(1, 0) : [0, 0, 0, 0];
  const l7 = max >= 7 ? cpu.cpuid(7, 0) : [0, 0, 0, 0];
  const ld0 = max >= 0xd ? cpu.cpuid(0xd, 0) : [0, 0, 0, 0];
  const ld1 = max >= 0xd ? cpu.cpuid(0xd, 1) : [0, 0, 0, 0];
  const xmax = cpu.cpuid(0x80000000, 0)[0];
  const e1 = xmax >= 0x80000001 ? cpu.cpuid(0x80000001, 0) : [0, 0, 0, 0];
  const e8 = xmax >= 0x80000008 ? cpu.cpuid(0x80000008, 0) : [0, 0, 0, 0];
  const bit = (r: number, b: number) => ((r >>> b) & 1) === 1;
  const e21 = xmax >= 0x80000021 ? cpu.cpuid(0x80000021, 0) : [0, 0, 0, 0];
  const l71 = max >= 7 && l7[0] >= 1 ? cpu.cpuid(7, 1) : [0, 0, 0, 0];
  // CR4 bits by the CPUID feature that makes them exist (SDM Vol. 3A, 2.5 and Table 2-5).
  let cr4 = CR4.PCE | CR4.PSE; // PCE and PSE: on every processor in long mode
  const cr4By: [bigint, boolean][] = [
    [CR4.VME | CR4.PVI, bit(l1[3], 1)],
    [CR4.TSD, bit(l1[3], 4)],
    [CR4.DE, bit(l1[3], 2)],
    [CR4.PAE, bit(l1[3], 6)],
    [CR4.MCE, bit(l1[3], 7)],
    [CR4.PGE, bit(l1[3], 13)],
    [CR4.OSFXSR, bit(l1[3], 24)],
    [CR4.OSXMMEXCPT, bit(l1[3], 25)],
    [CR4.UMIP, bit(l7[2], 2)],
    [CR4.LA57, bit(l7[2], 16)],
    [CR4.VMXE, bit(l1[2], 5)],
    [CR4.SMXE, bit(l1[2], 6)],
    [CR4.FSGSBASE, bit(l7[1], 0)],
    [CR4.PCIDE, bit(l1[2], 17)],
    [CR4.OSXSAVE, bit(l1[2], 26)],
    [CR4.KL, bit(l7[2], 23)],
    [CR4.SMEP, bit(l7[1], 7)],
    [CR4.SMAP, bit(l7[1], 20)],
    [CR4.PKE, bit(l7[2], 3)],
    [CR4.CET, bit(l7[2], 7)],
    [CR4.PKS, bit(l7[2], 31)],
    [CR4.UINTR, bit(l7[3], 5)],
    [CR4.LAM_SUP, bit(l71[0], 26)],
  ];
  for (const [b, on] of cr4By) if (on) cr4 |= b;
  // EFER bits (SDM Vol. 3A, 2.2.1; AMD APM Vol. 2, 3.1.7).
  let efer = 0n;
  if (bit(e1[3], 11)) efer |= EFER.SCE;
  if (bit(e1[3], 29)) efer |= EFER.LME | EFER.LMA;
  if (bit(e1[3], 20)) efer |= EFER.NXE;
  if (bit(e1[2], 2)) efer |= EFER.SVME;
  if (bit(e1[3], 25)) efer |= EFER.FFXSR;
  if (bit(e1[2], 17)) efer |= EFER.TCE;
  if (bit(e21[0], 8)) efer |= EFER.AUTOIBRS;
  f = {
    vendor,
    maxPhyAddr: (e8[0] & 0xff) || 36,
    popcnt: bit(l1[2], 23),
    movbe: bit(l1[2], 22),
    sse42: bit(l1[2], 20),
    cx16: bit(l1[2], 13),
    xsave: bit(l1[2], 26),
    rdrand: bit(l1[2], 30),
    pcid: bit(l1[2], 17),
    fsgsbase: bit(l7[1], 0),
    bmi1: bit(l7[1], 3),
    smep: bit(l7[1], 7),
    rdseed: bit(l7[1], 18),
    smap: bit(l7[1], 20),
    umip: bit(l7[2], 2),
    pku: bit(l7[2], 3),
    la57: bit(l7[2], 16),
    rdpid: bit(l7[2], 22),
    lzcnt: bit(e1[2], 5),
    lahf64: bit(e1[2], 0),
    nx: bit(e1[3], 20),
    lm: bit(e1[3], 29),
    xsaveopt: bit(ld1[0], 0),
    xsavec: bit(ld1[0], 1),
    xgetbv1: bit(ld1[0], 2),
    xsaves: bit(ld1[0], 3),
    xcr0Supported: (BigInt(ld0[3] >>> 0) << 32n) | BigInt(ld0[0] >>> 0),
    xssSupported: (BigInt(ld1[3] >>> 0) << 32n) | BigInt(ld1[2] >>> 0),
    components: [],
    cr4Valid: cr4,
    eferValid: efer,
    walkOptions: { maxPhyAddr: (e8[0] & 0xff) || 36 },
  };
  featureCache.set(cpu, f);
  return f;
}

/** The layout of XSAVE state component `i` (2-62). */
export function component(cpu: CpuState, f: Features, i: number): XComponent {
  let c = f.components[i];
  if (!c) {
    const r = cpu.cpuid(0xd, i);
    c = { size: r[0], offset: r[1], align64: (r[2] & 2) !== 0, supervisor: (r[2] & 1) !== 0 };
    f.components[i] = c;
  }
  return c;
}

// ---------------------------------------------------------------------------
// The context

const ACCESS: readonly PageAccess[] = [
  {},
  { write: true },
  { user: true },
  { user: true, write: true },
  { fetch: true },
  { fetch: true, write: true }, // unused
  { fetch: true, user: true },
  { fetch: true, user: true, write: true }, // unused
];
const ACCESS_IMPLICIT: readonly PageAccess[] = [
  { implicitSupervisor: true },
  { implicitSupervisor: true, write: true },
];

/** A memory location resolved to guest-physical pieces (one per page touched). */
export interface Loc {
  /** Linear address of the first byte. */
  readonly linear: bigint;
  /** Bytes. */
  readonly size: number;
  /** Guest-physical address of each piece. */
  readonly gpa: number[];
  /** Length of each piece. */
  readonly len: number[];
}

/** The working state of one instruction. */
export class Ctx {
  cpu!: CpuState;
  mem!: PhysicalMemory;
  insn!: Instruction;
  f!: Features;
  /** The scratch registers (copied back on commit). */
  readonly gpr = new BigUint64Array(16);
  /** RIP after the instruction (handlers that branch change it). */
  rip = 0n;
  /** RIP of the next instruction in sequence (for RIP-relative operands). */
  nextRip = 0n;
  /** RFLAGS (all defined bits fit in a number). */
  flags = 0;
  /** The mode the instruction runs in. */
  mode: Mode = 64;
  /** Current privilege level. */
  cpl = 0;
  /** CR0.PE = 0. */
  real = false;
  /** Virtual-8086 mode. */
  v86 = false;
  /** Stack address size in bytes (SS.B, or 8 in 64-bit mode). */
  stackSize: 2 | 4 | 8 = 8;
  /** DIRTY bits for state handlers changed directly (sregs, extended, xcr0). */
  dirty = 0;
  /** A trap to report after the instruction completed (int3's #BP, int n's software interrupt). */
  trap: X86Exception | null = null;
  /**
   * Set by iret with a 32/64-bit operand, which loads RFLAGS.RF from the
   * stack: commit then keeps RF as loaded instead of clearing it (SDM Vol.
   * 3A, 18.3.1.1).
   */
  loadRf = false;
  /** Set by string instructions: on a fault, keep the iterations done (registers and memory). */
  keepPartial = false;
  /** Set by a REP string instruction that stopped with iterations left: RIP stays. */
  incomplete = false;
  /**
   * Alignment checking applies to this instruction's data accesses: CR0.AM,
   * RFLAGS.AC and CPL 3 (protected or virtual-8086 mode), as the instruction
   * starts (SDM Vol. 3A, 6.15 "Interrupt 17"; AMD APM Vol. 2, 8.2.18).
   */
  acOn = false;
  /**
   * The interrupt shadow the instruction leaves (mov/pop ss, or sti setting
   * IF): reported with the "ok" result (see StepResult in types.ts).
   */
  shadow: "mov-ss" | "sti" | null = null;
  /** Iteration limit for REP string instructions. */
  maxRep = 4096;
  /** Port I/O for in/out/ins/outs, if the caller gives one. */
  io: PortIo | undefined;
  /** Memory writes held until commit. */
  readonly wGpa: number[] = [];
  readonly wData: Uint8Array[] = [];
  /** The paging registers for this instruction. */
  pregs!: PagingRegs;
  readonly #tout: TranslateOut = { gpa: 0, pageSize: 0 };
  readonly #buf = new Uint8Array(16);
  readonly #view = new DataView(this.#buf.buffer);

  /** Prepares for `insn` on `cpu`. */
  reset(cpu: CpuState, mem: PhysicalMemory, insn: Instruction | null): void {
    this.cpu = cpu;
    this.mem = mem;
    this.f = featuresOf(cpu);
    this.gpr.set(cpu.gpr);
    this.flags = Number(cpu.rflags & 0xffffffffn);
    this.dirty = 0;
    this.trap = null;
    this.loadRf = false;
    this.keepPartial = false;
    this.incomplete = false;
    this.wGpa.length = 0;
    this.wData.length = 0;
    const cs = cpu.seg[SEG.cs];
    if ((cpu.cr0 & CR0.PE) === 0n) {
      this.real = true;
      this.v86 = false;
      this.mode = 16;
      this.cpl = 0;
    } else if (this.flags & F.VM) {
      this.real = false;
      this.v86 = true;
      this.mode = 16;
      this.cpl = 3;
    } else {
      this.real = false;
      this.v86 = false;
      this.mode = (cpu.efer & EFER.LMA) !== 0n && cs.l ? 64 : cs.db ? 32 : 16;
      // CPL is SS.DPL (always equal to CPL; CS.DPL may differ for conforming code).
      this.cpl = cpu.seg[SEG.ss].dpl;
    }
    this.stackSize = this.mode === 64 ? 8 : cpu.seg[SEG.ss].db ? 4 : 2;
    this.acOn = this.cpl === 3 && (cpu.cr0 & CR0.AM) !== 0n && (this.flags & F.AC) !== 0;
    this.shadow = null;
    this.pregs = (cpu.cr4 & CR4.PKE) !== 0n ? pagingRegsWithPkru(cpu, this.f) : cpu;
    if (insn) this.setInsn(insn);
  }

  /** Sets the instruction to execute (after a reset without one, for the fetch). */
  setInsn(insn: Instruction): void {
    this.insn = insn;
    this.nextRip = this.wrapIp(this.cpu.rip + BigInt(insn.length));
    this.rip = this.nextRip;
  }

  /** Truncates an instruction pointer to the mode's width. */
  wrapIp(ip: bigint): bigint {
    if (this.mode === 64) return BigInt.asUintN(64, ip);
    return ip & (this.mode === 32 ? 0xffffffffn : 0xffffn);
  }

  // -------------------------------------------------------------------------
  // Registers

  /** Reads general-purpose register `index` at `size` bytes (`high8`: AH/CH/DH/BH). */
  getReg(index: number, size: number, high8?: boolean): bigint {
    if (high8) return (this.gpr[index - 4] >> 8n) & 0xffn;
    const v = this.gpr[index];
    return size === 8 ? v : v & MASK[size];
  }

  /** Writes a register as the processor does: 32-bit writes zero-extend, 8/16-bit writes merge. */
  setReg(index: number, size: number, value: bigint, high8?: boolean): void {
    const g = this.gpr;
    switch (size) {
      case 8:
        g[index] = value;
        return;
      case 4:
        g[index] = value & 0xffffffffn;
        return;
      case 2:
        g[index] = (g[index] & ~0xffffn) | (value & 0xffffn);
        return;
      default:
        if (high8) g[index - 4] = (g[index - 4] & ~0xff00n) | ((value & 0xffn) << 8n);
        else g[index] = (g[index] & ~0xffn) | (value & 0xffn);
    }
  }

  /** Reads an operand (register, memory or immediate) as an unsigned value of its size. */
  read(op: Operand): bigint {
    switch (op.kind) {
      case "reg":
        if (op.cls !== "gpr") throw new Unsupported(`${op.cls} register operand`);
        return this.getReg(op.index, op.size, op.high8);
      case "imm":
        return op.value;
      case "mem":
        return this.readValue(this.resolve(op, false));
      default:
        throw new Unsupported(`operand kind ${op.kind}`);
    }
  }

  /** Writes a register or memory operand (memory: checked now, written at commit). */
  write(op: Operand, value: bigint): void {
    if (op.kind === "reg") {
      if (op.cls !== "gpr") throw new Unsupported(`${op.cls} register operand`);
      this.setReg(op.index, op.size, value, op.high8);
    } else if (op.kind === "mem") {
      this.writeValue(this.resolve(op, true), value);
    } else {
      throw new Unsupported(`write to ${op.kind} operand`);
    }
  }

  // -------------------------------------------------------------------------
  // Memory operands

  /** The effective address (offset in the segment) of a memory operand, wrapped to its address size. */
  ea(op: MemOperand): bigint {
    let a = op.disp;
    if (op.base === RIP_BASE) a += this.nextRip;
    else if (op.base >= 0) a += this.gpr[op.base];
    if (op.index >= 0) a += this.gpr[op.index] * BigInt(op.scale);
    return op.addrSize === 8 ? BigInt.asUintN(64, a) : a & MASK[op.addrSize];
  }

  /**
   * Resolves a memory operand of `op.size` bytes (or `size`) for reading or
   * writing. `align` and `acAlign`: see {@linkcode resolveAt}.
   */
  resolve(op: MemOperand, write: boolean, size = op.size, align = 0, acAlign = -1): Loc {
    return this.resolveAt(op.seg, this.ea(op), size, write, align, acAlign);
  }

  /**
   * A data access of `size` bytes at seg:offset, checked in this order:
   * segmentation (SDM Vol. 3A, 3.4-3.5, 5.3; canonical form in 64-bit mode),
   * then the instruction's own alignment rule `align` (#GP(0), e.g. movdqa,
   * cmpxchg16b), then the alignment check (#AC(0), see
   * {@linkcode alignCheck}) with `acAlign` (-1: the data type's, from
   * {@linkcode acAlignment}; 0: none), then paging. Measured on an AMD EPYC
   * (Zen): a non-canonical misaligned address is #GP(0), a misaligned movdqa
   * or cmpxchg16b #GP(0), a misaligned access to an unmapped or read-only
   * page #AC(0). Bochs, which models Intel, checks in the same order (the
   * segment limit before #AC is from there, not measured).
   */
  resolveAt(
    seg: SegIndex,
    offset: bigint,
    size: number,
    write: boolean,
    align = 0,
    acAlign = -1,
  ): Loc {
    const lin = this.linear(seg, offset, size, write);
    if (align && (lin & BigInt(align - 1)) !== 0n) throw gp0();
    if (this.acOn) this.alignCheck(lin, acAlign < 0 ? this.acAlignment(size) : acAlign);
    return this.translateRange(lin, size, write, false);
  }

  /**
   * The alignment #AC requires of an access of `size` bytes whose data type
   * the size tells (SDM Vol. 3A, Table 6-7 "Alignment Requirements by Data
   * Type"; AMD APM Vol. 2, 8.2.18): bytes none; words, doublewords and
   * quadwords their size; 6 bytes (m16:32 far pointer, 32-bit
   * pseudo-descriptor) 4; 10 bytes (m80 x87 data, m16:64) 8. 16 bytes and more
   * (the SIMD operands that may be misaligned, movdqu, vmovdqu ymm, VEX
   * arithmetic...; those that must be aligned raise #GP first): 16 on AMD,
   * measured on an EPYC (Zen) for 16- and 32-byte loads and stores, legacy and
   * VEX; on Intel 8, the SDM's bound (6.15: #AC "may or may not be generated
   * ... when data addresses are not aligned on an 8-byte boundary"; not
   * measured). Callers give the alignment where the size does not tell the
   * type (m16:16 far pointers, the 10-byte pseudo-descriptor of sgdt).
   */
  acAlignment(size: number): number {
    switch (size) {
      case 2:
      case 4:
      case 8:
        return size;
      case 6:
        return 4;
      case 10:
        return 8;
      default:
        return size < 16 ? 0 : this.f.vendor === "intel" ? 8 : 16;
    }
  }

  /**
   * #AC(0) when alignment checking is on ({@linkcode acOn}) and the linear
   * address `lin` is not a multiple of `align` (a power of two; 0 or 1: no
   * requirement). Implicit supervisor accesses (descriptor tables, the TSS)
   * and instruction fetches are never checked (SDM Vol. 3A, 6.15), nor are
   * accesses with no data (lea, nop, prefetch, clflush).
   */
  alignCheck(lin: bigint, align: number): void {
    if (this.acOn && align > 1 && (lin & BigInt(align - 1)) !== 0n) throw new Fault(VEC.AC, 0);
  }

  /** The linear address of seg:offset for an access of `size` bytes, with the segment checks. */
  linear(seg: SegIndex, offset: bigint, size: number, write: boolean): bigint {
    const cpu = this.cpu;
    if (this.mode === 64) {
      // 64-bit mode: only FS and GS have a base; no limits; canonical addresses (SDM 3.4.4, 3.3.7.1).
      let lin = offset;
      if (seg >= SEG.fs) lin = BigInt.asUintN(64, lin + cpu.seg[seg].base);
      if (
        !this.canonical(lin) ||
        (size > 1 && !this.canonical(BigInt.asUintN(64, lin + BigInt(size - 1))))
      ) {
        throw new Fault(seg === SEG.ss ? VEC.SS : VEC.GP, 0);
      }
      return lin;
    }
    const s = cpu.seg[seg];
    const vec = seg === SEG.ss ? VEC.SS : VEC.GP;
    if (!this.real && !this.v86) {
      // Protected mode: a null (unusable) segment, then the type (SDM 5.4, 5.5).
      if (s.unusable || !s.present) throw new Fault(vec, 0);
      if (s.type & 8) {
        if (write || (s.type & 2) === 0) throw new Fault(vec, 0); // code: read-only or execute-only
      } else if (write && (s.type & 2) === 0) {
        throw new Fault(vec, 0); // read-only data
      }
    }
    // Limit: expand-up [0, limit], expand-down (limit, 0xffff or 0xffffffff] (SDM 5.3).
    const last = offset + BigInt(size - 1);
    const limit = BigInt(s.limit >>> 0);
    if ((s.type & 0xc) === 0x4 && !this.real) {
      const upper = s.db ? 0xffffffffn : 0xffffn;
      if (offset <= limit || last > upper) throw new Fault(vec, 0);
    } else if (last > limit) {
      throw new Fault(vec, 0);
    }
    return (s.base + offset) & 0xffffffffn;
  }

  /** True when `lin` is canonical for the paging mode (48 or 57 bits). */
  canonical(lin: bigint): boolean {
    const bits = (this.cpu.cr4 & CR4.LA57) !== 0n ? 57 : 48;
    return BigInt.asIntN(bits, lin) === BigInt.asIntN(64, lin);
  }

  /**
   * Translates [lin, lin + size) page by page (all pieces before any access).
   * `implicit`: an implicit supervisor access (descriptor tables, TSS).
   */
  translateRange(lin: bigint, size: number, write: boolean, implicit: boolean): Loc {
    const gpa: number[] = [];
    const len: number[] = [];
    let a = lin;
    let left = size;
    const wrap = this.mode === 64 ? 64 : 32; // linear addresses are 32 bits outside 64-bit mode
    do {
      const inPage = 4096 - Number(a & 0xfffn);
      const n = Math.min(inPage, left);
      gpa.push(this.translate(a, write, false, implicit));
      len.push(n);
      left -= n;
      a = BigInt.asUintN(wrap, a + BigInt(n));
    } while (left > 0);
    return { linear: lin, size, gpa, len };
  }

  /** Translates one linear address; throws #PF. */
  translate(lin: bigint, write: boolean, fetch: boolean, implicit = false): number {
    const user = this.cpl === 3;
    const acc = implicit
      ? ACCESS_IMPLICIT[write ? 1 : 0]
      : ACCESS[(write ? 1 : 0) | (user ? 2 : 0) | (fetch ? 4 : 0)];
    const code = translate(this.pregs, this.mem, lin, acc, this.#tout, {
      maxPhyAddr: this.f.maxPhyAddr,
    });
    if (code >= 0) throw new Fault(VEC.PF, code, lin);
    return this.#tout.gpa;
  }

  /** Reads the bytes of a resolved location into `out`. */
  readBytes(loc: Loc, out: Uint8Array): void {
    if (loc.gpa.length === 1) {
      this.mem.read(loc.gpa[0], out);
      return;
    }
    let o = 0;
    for (let i = 0; i < loc.gpa.length; i++) {
      this.mem.read(loc.gpa[i], out.subarray(o, o + loc.len[i]));
      o += loc.len[i];
    }
  }

  /** Reads a little-endian value of `loc.size` (1-16) bytes. */
  readValue(loc: Loc): bigint {
    const n = loc.size;
    const b = n <= 16 ? this.#buf.subarray(0, n) : new Uint8Array(n);
    this.readBytes(loc, b);
    const v = this.#view;
    switch (n) {
      case 1:
        return BigInt(b[0]);
      case 2:
        return BigInt(v.getUint16(0, true));
      case 4:
        return BigInt(v.getUint32(0, true));
      case 8:
        return v.getBigUint64(0, true);
      case 16:
        return v.getBigUint64(0, true) | (v.getBigUint64(8, true) << 64n);
      default: {
        let x = 0n;
        for (let i = n - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i]);
        return x;
      }
    }
  }

  /** Holds a write of `data` to a resolved location until commit (copies `data`). */
  writeBytes(loc: Loc, data: Uint8Array): void {
    let o = 0;
    for (let i = 0; i < loc.gpa.length; i++) {
      this.wGpa.push(loc.gpa[i]);
      this.wData.push(data.slice(o, o + loc.len[i]));
      o += loc.len[i];
    }
  }

  /** Holds a write of a little-endian value of `loc.size` bytes until commit. */
  writeValue(loc: Loc, value: bigint): void {
    const b = new Uint8Array(loc.size);
    for (let i = 0; i < b.length; i++) {
      b[i] = Number(value & 0xffn);
      value >>= 8n;
    }
    if (loc.gpa.length === 1) {
      this.wGpa.push(loc.gpa[0]);
      this.wData.push(b);
    } else {
      this.writeBytes(loc, b);
    }
  }

  /** Performs the held memory writes now (string iterations commit one at a time). */
  flushWrites(): void {
    for (let i = 0; i < this.wGpa.length; i++) this.mem.write(this.wGpa[i], this.wData[i]);
    this.wGpa.length = 0;
    this.wData.length = 0;
  }

  /**
   * A locked read-modify-write of a resolved location: `op(old)` gives the new
   * value; done as compare-exchange retried until no other vCPU changed the
   * value in between. Returns the old value. A location split over two pages,
   * or outside RAM, cannot be one atomic operation: it is read and written
   * non-atomically (the write still waits for commit).
   */
  atomicRmw(loc: Loc, op: (old: bigint) => bigint): bigint {
    const mem = this.mem;
    if (loc.gpa.length !== 1 || !mem.isRam(loc.gpa[0], loc.size)) {
      const old = this.readValue(loc);
      this.writeValue(loc, op(old));
      return old;
    }
    for (;;) {
      const old = this.readValue(loc);
      const val = op(old);
      if (mem.cmpxchg(loc.gpa[0], loc.size, old, val) === old) return old;
    }
  }

  /** True when the location can take an atomic compare-exchange (one page, RAM). */
  atomicOk(loc: Loc): boolean {
    return loc.gpa.length === 1 && this.mem.isRam(loc.gpa[0], loc.size);
  }

  // -------------------------------------------------------------------------
  // The stack (SDM Vol. 1, 6.2)

  /** Pushes `size` bytes (checked now, written at commit; RSP updated in the scratch registers). */
  push(value: bigint, size: number): void {
    const sp = this.stackPointer();
    const nsp = this.wrapStack(sp - BigInt(size));
    const loc = this.resolveAt(SEG.ss, nsp, size, true);
    this.writeValue(loc, value);
    this.setStackPointer(nsp);
  }

  /** Reads `size` bytes at the top of the stack + `offset`, without popping. */
  peek(size: number, offset = 0): bigint {
    const sp = this.wrapStack(this.stackPointer() + BigInt(offset));
    return this.readValue(this.resolveAt(SEG.ss, sp, size, false));
  }

  /** The stack pointer at the stack's address size. */
  stackPointer(): bigint {
    return this.getReg(4, this.stackSize);
  }

  /** Sets the stack pointer at the stack's address size (16-bit stacks keep RSP[63:16]). */
  setStackPointer(v: bigint): void {
    this.setReg(4, this.stackSize, v);
  }

  /** Wraps a stack offset to the stack's address size. */
  wrapStack(v: bigint): bigint {
    return this.stackSize === 8 ? BigInt.asUintN(64, v) : v & MASK[this.stackSize];
  }

  // -------------------------------------------------------------------------
  // Flags

  /** Replaces the six status flags with `f`. */
  setArith(f: number): void {
    this.flags = (this.flags & ~ARITH) | f;
  }

  /** SF, ZF and PF of a result of `size` bytes. */
  szp(r: bigint, size: number): number {
    let f = PARITY[Number(r & 0xffn)];
    if (r === 0n) f |= F.ZF;
    if (r & SIGN[size]) f |= F.SF;
    return f;
  }

  // -------------------------------------------------------------------------
  // Extended state

  /** The XSAVE-format extended state (loaded once per instruction by the adapter). */
  ext(): Uint8Array {
    return this.cpu.extended();
  }

  /** Marks extended state changed and its components in use (XSTATE_BV bits, SDM Vol. 1, 13.6). */
  touchExt(components: number): void {
    const x = this.cpu.extended();
    x[512] |= components;
    this.dirty |= DIRTY.extended;
  }
}

/** Port I/O for in/out/ins/outs (the adapter's port bus). */
export interface PortIo {
  /** Reads `size` (1, 2 or 4) bytes from `port`. */
  in(port: number, size: number): number;
  /** Writes `size` (1, 2 or 4) bytes to `port`. */
  out(port: number, size: number, value: number): void;
}

function pagingRegsWithPkru(cpu: CpuState, f: Features): PagingRegs {
  // PKRU is read only when the walker needs it (a data access to a user page): reading
  // the extended state costs the adapter an ioctl.
  let pkru: number | undefined;
  return {
    cr0: cpu.cr0,
    cr3: cpu.cr3,
    cr4: cpu.cr4,
    efer: cpu.efer,
    rflags: cpu.rflags,
    get pkru(): number {
      if (pkru === undefined) {
        pkru = 0;
        const x = cpu.extended();
        // PKRU is state component 9 (SDM Vol. 1, 13.5.7); XSTATE_BV[9] = 0 means its init value 0.
        if (x[512 + 1] & 2) {
          const c = component(cpu, f, 9);
          if (c.offset + 4 <= x.length) {
            pkru = new DataView(x.buffer, x.byteOffset).getUint32(c.offset, true);
          }
        }
      }
      return pkru;
    },
  };
}

/**
 * Segment register loads and the control transfers that change CS: iret,
 * int n, far jmp/call/ret, mov/pop to a segment register and
 * lds/les/lfs/lgs/lss. Descriptors come from the GDT or LDT with the
 * checks of SDM Vol. 3A, 5.5-5.8 (privilege) and 3.4.5 (descriptor
 * format); the instructions follow the Operation sections of SDM Vol. 2A
 * (CALL, INT n/INTO/INT3/INT1, IRET/IRETD/IRETQ, JMP, LDS/LES/LFS/LGS/LSS,
 * MOV) and Vol. 2B (POP, RET).
 *
 * Not emulated (reported as "unsupported"): gates and task switches (a far
 * jmp/call to a call gate, task gate or TSS; iret with NT = 1 outside
 * IA-32e mode, the task return), iret to virtual-8086 mode, and
 * virtual-8086 mode with CR4.VME. A far call or jmp changes privilege only
 * through a call gate, so every far jmp/call here stays at the same CPL;
 * iret and far ret return to the same or an outer privilege level.
 *
 * Not the executor's business, left to the adapter or not done:
 * - IRET unblocks NMIs (SDM Vol. 3A, 6.7.1); the KVM adapter clears
 *   kvm_vcpu_events.nmi.masked after an emulated iret.
 * - MOV SS and POP SS block interrupts and debug traps until the next
 *   instruction completes (SDM Vol. 2B, MOV; Vol. 3A, 6.8.3); CpuState has no
 *   interrupt shadow, so the shadow is not set.
 * - The software interrupt of `int n` is delivered by the adapter through
 *   the IDT (`X86Exception.software`); the executor does only
 *   the checks before delivery that depend on the instruction (IOPL in
 *   virtual-8086 mode, the gate's DPL against CPL).
 *
 * Handlers do every check and every read first (a fault changes nothing,
 * exec.ts) and change segment registers only as their last step; memory
 * writes (the descriptor's accessed bit, a far call's pushes) are held
 * until commit, as everywhere in the executor.
 *
 * Private module of exec.ts.
 *
 * @module
 */

import type { Handler } from "./_exec_alu.ts";
import { type Ctx, EFER, F, Fault, gp0, MASK, ud, Unsupported, VEC } from "./_exec_ctx.ts";
import {
  DIRTY,
  type Instruction,
  type MemOperand,
  type Operand,
  SEG,
  type SegIndex,
  type SegmentCache,
} from "./types.ts";

// ---------------------------------------------------------------------------
// Descriptors (SDM Vol. 3A, 3.4.5, Figure 3-8)

/** Descriptor type bits (the Type field, bits 43:40, with S = 1). */
const T_ACCESSED = 1;
const T_WRITABLE = 2; // data: writable; code: readable
const T_CONFORMING = 4; // code: conforming; data: expand-down
const T_CODE = 8;

/** A segment descriptor read from the GDT or the LDT. */
interface Descriptor {
  /** The selector it was read for. */
  readonly selector: number;
  /** Linear address of its first byte. */
  readonly linear: bigint;
  /** Bits 31:0. */
  readonly lo: number;
  /** Bits 63:32. */
  readonly hi: number;
}

function rplOf(selector: number): number {
  return selector & 3;
}

/** The error code of a fault on a selector: its index and TI, RPL cleared (SDM Vol. 3A, 6.13). */
function selErr(selector: number): number {
  return selector & 0xfffc;
}

function isNull(selector: number): boolean {
  return (selector & 0xfffc) === 0;
}

/**
 * Reads the descriptor of `selector` (not null) from the GDT or, with TI =
 * 1, the LDT: #GP(selector) when it lies beyond the table's limit, when
 * the LDT is unusable, or (IA-32e mode) when its address is not canonical.
 * The read is an implicit supervisor access (SDM Vol. 3A, 4.6).
 */
function readDescriptor(c: Ctx, selector: number): Descriptor {
  const cpu = c.cpu;
  const index = selector & 0xfff8;
  let base: bigint;
  let limit: number;
  if (selector & 4) {
    const ldt = cpu.ldtr;
    if (ldt.unusable || !ldt.present) throw new Fault(VEC.GP, selErr(selector));
    base = ldt.base;
    limit = ldt.limit >>> 0;
  } else {
    base = cpu.gdtr.base;
    limit = cpu.gdtr.limit;
  }
  if (index + 7 > limit) throw new Fault(VEC.GP, selErr(selector));
  const ia32e = (cpu.efer & EFER.LMA) !== 0n;
  const linear = ia32e
    ? BigInt.asUintN(64, base + BigInt(index))
    : (base + BigInt(index)) & 0xffffffffn;
  if (ia32e && !c.canonical(linear)) throw new Fault(VEC.GP, selErr(selector));
  const v = c.readValue(c.translateRange(linear, 8, false, true));
  return { selector, linear, lo: Number(v & 0xffffffffn), hi: Number(v >> 32n) };
}

/** The type field; with `system` true for S = 0 (system descriptors and gates). */
function typeOf(d: Descriptor): number {
  return (d.hi >>> 8) & 0xf;
}
function isSystem(d: Descriptor): boolean {
  return ((d.hi >>> 12) & 1) === 0;
}
function dplOf(d: Descriptor): number {
  return (d.hi >>> 13) & 3;
}
function present(d: Descriptor): boolean {
  return ((d.hi >>> 15) & 1) === 1;
}
function isCode(d: Descriptor): boolean {
  return !isSystem(d) && (typeOf(d) & T_CODE) !== 0;
}

/** The hidden part a segment register caches for descriptor `d` loaded with `selector`. */
function cacheOf(d: Descriptor, selector: number): SegmentCache {
  const { lo, hi } = d;
  const g = (hi >>> 23) & 1;
  let limit = (lo & 0xffff) | (hi & 0xf0000);
  // G = 1: the limit counts 4-KiB units, the low 12 bits read as ones (SDM Vol. 3A, 3.4.5).
  if (g) limit = ((limit << 12) | 0xfff) >>> 0;
  return {
    base: BigInt(((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0),
    limit,
    selector,
    // The processor sets the accessed bit as it loads the register (3.4.5.1).
    type: typeOf(d) | T_ACCESSED,
    present: (hi >>> 15) & 1,
    dpl: dplOf(d),
    db: (hi >>> 22) & 1,
    s: (hi >>> 12) & 1,
    l: (hi >>> 21) & 1,
    g,
    avl: (hi >>> 20) & 1,
    unusable: 0,
  };
}

/**
 * Sets the descriptor's accessed bit in memory, when it is clear: the
 * processor does so when it loads a segment register (SDM Vol. 3A,
 * 3.4.5.1) with a locked implicit supervisor write, which faults (#PF) on
 * a read-only descriptor table as it does here. Held until commit.
 */
function markAccessed(c: Ctx, d: Descriptor): void {
  if (isSystem(d) || (typeOf(d) & T_ACCESSED)) return;
  const at = d.linear + 5n;
  const loc = c.translateRange(at, 1, true, true);
  c.writeValue(loc, BigInt(((d.hi >>> 8) & 0xff) | T_ACCESSED));
}

/**
 * A null selector in a data segment register: the register is unusable
 * (kvm_segment.unusable, SDM Vol. 3A, 3.4.2). `keepBase`: FS and GS in
 * 64-bit mode on AMD keep their base (Intel clears it; Linux's
 * X86_BUG_NULL_SEG).
 */
function nullCache(selector: number, old: SegmentCache, keepBase: boolean): SegmentCache {
  return {
    base: keepBase ? old.base : 0n,
    limit: 0,
    selector,
    type: 0,
    present: 0,
    dpl: 0,
    db: 0,
    s: 0,
    l: 0,
    g: 0,
    avl: 0,
    unusable: 1,
  };
}

/**
 * A null SS in 64-bit mode at CPL < 3: the register holds only the
 * selector, but CPL is SS.DPL in the kvm_segment model, so it is written as
 * KVM's own emulator does (arch/x86/kvm/emulate.c, __load_segment_descriptor):
 * a flat, expand-up, 32-bit writable data segment of DPL = CPL.
 */
function nullStack(selector: number, cpl: number): SegmentCache {
  return {
    base: 0n,
    limit: 0xffffffff,
    selector,
    type: 3,
    present: 1,
    dpl: cpl,
    db: 1,
    s: 1,
    l: 0,
    g: 1,
    avl: 0,
    unusable: 0,
  };
}

/** Real-address and virtual-8086 mode: the selector times 16 is the base (SDM Vol. 3A, 20.1.1). */
function realCache(c: Ctx, old: SegmentCache, selector: number): SegmentCache {
  if (!c.v86) return { ...old, selector, base: BigInt(selector) << 4n };
  // Virtual-8086 mode: 64-KiB, DPL-3, present, writable segments (SDM Vol. 3A, 20.2.1).
  return {
    ...old,
    selector,
    base: BigInt(selector) << 4n,
    limit: 0xffff,
    present: 1,
    dpl: 3,
    s: 1,
    db: 0,
    g: 0,
    l: 0,
    unusable: 0,
  };
}

/** Segment registers load as in real mode: real-address and virtual-8086 mode. */
function realSegments(c: Ctx): boolean {
  return c.real || c.v86;
}

/** A segment register's new contents, checked, and the descriptor they came from (for its accessed bit). */
interface Load {
  readonly cache: SegmentCache;
  readonly desc: Descriptor | null;
}

/**
 * The checks of loading ES, DS, FS or GS with `selector` in protected mode
 * (SDM Vol. 2A, MOV—"IF DS, ES, FS, or GS is loaded with non-NULL
 * selector"; Vol. 3A, 5.7): a null selector loads an unusable register;
 * otherwise a data or readable code segment, DPL >= CPL and RPL unless
 * conforming code (#GP(selector)), present (#NP(selector)).
 */
function dataLoad(c: Ctx, seg: SegIndex, selector: number): Load {
  const old = c.cpu.seg[seg];
  if (realSegments(c)) return { cache: realCache(c, old, selector), desc: null };
  if (isNull(selector)) {
    const keep = c.mode === 64 && seg >= SEG.fs && c.f.vendor === "amd";
    return { cache: nullCache(selector, old, keep), desc: null };
  }
  const d = readDescriptor(c, selector);
  const t = typeOf(d);
  if (isSystem(d) || ((t & T_CODE) && !(t & T_WRITABLE))) throw new Fault(VEC.GP, selErr(selector));
  const conformingCode = (t & T_CODE) !== 0 && (t & T_CONFORMING) !== 0;
  if (!conformingCode && (rplOf(selector) > dplOf(d) || c.cpl > dplOf(d))) {
    throw new Fault(VEC.GP, selErr(selector));
  }
  if (!present(d)) throw new Fault(VEC.NP, selErr(selector));
  return { cache: cacheOf(d, selector), desc: d };
}

/**
 * The checks of loading SS with `selector` for a new CPL `cpl` (SDM Vol.
 * 2A, MOV—"IF SS is loaded"; Vol. 3A, 5.7): a null selector is #GP(0),
 * except at CPL < 3 when 64-bit code will run on it (`null64`) and RPL =
 * CPL; otherwise RPL = DPL = CPL and a writable data segment
 * (#GP(selector)), present (#SS(selector), SDM Vol. 3A, 6.15 "Interrupt
 * 12").
 */
function stackLoad(c: Ctx, selector: number, cpl: number, null64: boolean): Load {
  const old = c.cpu.seg[SEG.ss];
  if (realSegments(c)) return { cache: realCache(c, old, selector), desc: null };
  if (isNull(selector)) {
    if (!null64 || cpl === 3 || rplOf(selector) !== cpl) throw gp0();
    return { cache: nullStack(selector, cpl), desc: null };
  }
  const d = readDescriptor(c, selector);
  const t = typeOf(d);
  if (
    rplOf(selector) !== cpl || isSystem(d) || (t & T_CODE) || !(t & T_WRITABLE) ||
    dplOf(d) !== cpl
  ) {
    throw new Fault(VEC.GP, selErr(selector));
  }
  if (!present(d)) throw new Fault(VEC.SS, selErr(selector));
  return { cache: cacheOf(d, selector), desc: d };
}

/**
 * The code segment of a far jmp or call to the same privilege level (SDM
 * Vol. 2A, JMP and CALL, "Protected mode" and "IA-32e mode"): a null
 * selector is #GP(0); a conforming code segment needs DPL <= CPL, a
 * nonconforming one RPL <= CPL and DPL = CPL (#GP(selector)); in IA-32e
 * mode L and D may not both be set (#GP(selector)); present
 * (#NP(selector)). CS.RPL becomes CPL. Gates and TSSs are not emulated.
 */
function jumpTarget(c: Ctx, selector: number, what: string): Load {
  if (isNull(selector)) throw gp0();
  const d = readDescriptor(c, selector);
  if (isSystem(d)) {
    // A call gate, a task gate or an available TSS would switch privilege or tasks: not
    // emulated. Any other system descriptor is #GP(selector); IA-32e mode has 64-bit call
    // gates only (SDM Vol. 3A, 5.8.3.1 and 7.2.2).
    const t = typeOf(d);
    const kind = t === 4 || t === 12 ? "call gate" : t === 5 ? "task gate" : "TSS";
    if (longMode(c) ? t === 12 : t === 4 || t === 12 || t === 5 || t === 1 || t === 9) {
      throw new Unsupported(`${what} through a ${kind} (selector 0x${selector.toString(16)})`);
    }
    throw new Fault(VEC.GP, selErr(selector));
  }
  const t = typeOf(d);
  if (!(t & T_CODE)) throw new Fault(VEC.GP, selErr(selector));
  if (t & T_CONFORMING) {
    if (dplOf(d) > c.cpl) throw new Fault(VEC.GP, selErr(selector));
  } else if (rplOf(selector) > c.cpl || dplOf(d) !== c.cpl) {
    throw new Fault(VEC.GP, selErr(selector));
  }
  if (longMode(c) && ((d.hi >>> 21) & 3) === 3) throw new Fault(VEC.GP, selErr(selector));
  if (!present(d)) throw new Fault(VEC.NP, selErr(selector));
  const sel = (selector & 0xfffc) | c.cpl;
  return { cache: cacheOf(d, sel), desc: d };
}

/**
 * The code segment of a far ret or iret (SDM Vol. 2A, IRET; Vol. 2B, RET,
 * "RETURN-TO-SAME-PRIVILEGE-LEVEL" and "-OUTER-"): a null selector is
 * #GP(0); a code segment, RPL >= CPL, DPL <= RPL when conforming and DPL
 * = RPL otherwise, not L and D together in IA-32e mode (#GP(selector));
 * present (#NP(selector)). The new CPL is the selector's RPL.
 */
function returnTarget(c: Ctx, selector: number): Load {
  if (isNull(selector)) throw gp0();
  const d = readDescriptor(c, selector);
  const rpl = rplOf(selector);
  if (!isCode(d) || rpl < c.cpl) throw new Fault(VEC.GP, selErr(selector));
  if (typeOf(d) & T_CONFORMING ? dplOf(d) > rpl : dplOf(d) !== rpl) {
    throw new Fault(VEC.GP, selErr(selector));
  }
  if (longMode(c) && ((d.hi >>> 21) & 3) === 3) throw new Fault(VEC.GP, selErr(selector));
  if (!present(d)) throw new Fault(VEC.NP, selErr(selector));
  return { cache: cacheOf(d, selector), desc: d };
}

/** IA-32e mode (EFER.LMA): 64-bit or compatibility mode. */
function longMode(c: Ctx): boolean {
  return (c.cpu.efer & EFER.LMA) !== 0n;
}

/** Whether code on `cs` runs in 64-bit mode. */
function is64(c: Ctx, cs: SegmentCache): boolean {
  return longMode(c) && cs.l === 1;
}

/**
 * The new instruction pointer on the new code segment: canonical in
 * 64-bit mode, else within the segment's limit (#GP(0)). `size` is the
 * width it was popped or given at.
 */
function checkTarget(c: Ctx, cs: SegmentCache, ip: bigint, size: number): bigint {
  const v = size === 8 ? ip : ip & MASK[size];
  if (is64(c, cs) ? !c.canonical(v) : v > BigInt(cs.limit >>> 0)) throw gp0();
  return v;
}

/**
 * Loads segment registers, the last step of an instruction: first every
 * descriptor's accessed bit (its write can fault), then the registers.
 */
function commitLoads(c: Ctx, ...loads: [SegIndex, Load][]): void {
  for (const [, l] of loads) if (l.desc) markAccessed(c, l.desc);
  for (const [seg, l] of loads) c.cpu.seg[seg] = l.cache;
  c.dirty |= DIRTY.sregs;
}

/**
 * After a return to an outer privilege level, ES, DS, FS and GS that the
 * new CPL may not use become null (SDM Vol. 2A, IRET and Vol. 2B, RET:
 * "FOR each SegReg in (ES, FS, GS, and DS) ... IF tempDesc(DPL) < CPL AND
 * tempDesc(Type) is (data or non-conforming code) THEN SegmentSelector :=
 * 0"). Only the selector and usability change: in 64-bit mode the FS and
 * GS bases stay (user TLS on a null FS, as Linux returns to user space).
 */
function invalidateForCpl(c: Ctx, cpl: number): void {
  for (const seg of [SEG.es, SEG.ds, SEG.fs, SEG.gs] as const) {
    const s = c.cpu.seg[seg];
    const conformingCode = (s.type & T_CODE) !== 0 && (s.type & T_CONFORMING) !== 0;
    const nullSel = isNull(s.selector) || s.unusable === 1;
    if (nullSel || (s.dpl < cpl && !conformingCode)) {
      if (!nullSel || s.selector !== 0 || s.unusable !== 1) {
        c.cpu.seg[seg] = { ...s, selector: 0, present: 0, unusable: 1 };
        c.dirty |= DIRTY.sregs;
      }
    }
  }
}

/** Sets the stack pointer after a new SS:RSP was loaded: RSP in IA-32e mode, else ESP or SP by SS.B. */
function setNewStackPointer(c: Ctx, ss: SegmentCache, sp: bigint): void {
  if (longMode(c)) c.setReg(4, 8, sp);
  else if (ss.db) c.setReg(4, 4, sp);
  else c.setReg(4, 2, sp);
}

// ---------------------------------------------------------------------------
// RFLAGS loaded by IRET (SDM Vol. 2A, IRET Operation)

/**
 * The RFLAGS after an iret in protected or IA-32e mode from the image
 * `img`: CF PF AF ZF SF TF DF OF NT always; RF AC ID with a 32/64-bit
 * operand; IF if CPL <= IOPL; IOPL (and VIF VIP with a 32/64-bit operand)
 * at CPL 0 only. CPL and IOPL are those before the iret. A 16-bit operand
 * changes only bits 15:0. VM stays clear.
 */
function protectedIretFlags(c: Ctx, img: number, size: number): number {
  let m = F.CF | F.PF | F.AF | F.ZF | F.SF | F.TF | F.DF | F.OF | F.NT;
  if (size >= 4) m |= F.RF | F.AC | F.ID;
  if (c.cpl <= ((c.flags >> 12) & 3)) m |= F.IF;
  if (c.cpl === 0) {
    m |= F.IOPL;
    if (size >= 4) m |= F.VIF | F.VIP;
  }
  if (size === 2) m &= 0xffff;
  return ((c.flags & ~m) | (img & m) | 2) >>> 0;
}

/** Reserved RFLAGS bits 3, 5 and 15 read as 0; bit 1 as 1 (SDM Vol. 1, 3.4.3). */
const FLAGS_DEFINED_LOW = 0x7fd5;

// ---------------------------------------------------------------------------
// IRET / IRETD / IRETQ (SDM Vol. 2A)

const iret: Handler = (c, i) => {
  const size = i.opSize;
  if (c.real) return iretReal(c, size);
  if (c.v86) return iretV86(c, size);
  if (c.flags & F.NT) {
    // IA-32e mode has no task switching (#GP(0)); protected mode returns to the previous task.
    if (longMode(c)) throw gp0();
    throw new Unsupported(`${i.text} with EFLAGS.NT = 1 (a task return) is not emulated`);
  }
  const ip = c.peek(size, 0);
  const csSel = Number(c.peek(size, size) & 0xffffn);
  const img = Number(c.peek(size, 2 * size) & 0xffffffffn);
  if (!longMode(c) && (img & F.VM) && c.cpl === 0 && size === 4) {
    throw new Unsupported(`${i.text} to virtual-8086 mode is not emulated`);
  }
  const cs = returnTarget(c, csSel);
  const newCpl = rplOf(csSel);
  const to64 = is64(c, cs.cache);
  // Outer privilege, or any iret in 64-bit mode: SS:RSP are popped too.
  const popStack = newCpl > c.cpl || c.mode === 64;
  let ss: Load | null = null;
  let sp = 0n;
  if (popStack) {
    sp = c.peek(size, 3 * size);
    const ssSel = Number(c.peek(size, 4 * size) & 0xffffn);
    ss = stackLoad(c, ssSel, newCpl, to64);
    if (size !== 8) sp &= MASK[size];
  }
  const rip = checkTarget(c, cs.cache, ip, size);
  // All checks done: the flags (with the old CPL and IOPL), then the registers.
  c.flags = protectedIretFlags(c, img, size);
  c.loadRf = size >= 4;
  if (ss) {
    setNewStackPointer(c, ss.cache, sp);
  } else {
    c.setStackPointer(c.wrapStack(c.stackPointer() + BigInt(3 * size)));
  }
  c.rip = rip;
  if (ss) commitLoads(c, [SEG.cs, cs], [SEG.ss, ss]);
  else commitLoads(c, [SEG.cs, cs]);
  if (newCpl > c.cpl) invalidateForCpl(c, newCpl);
};

/** Real-address mode (SDM Vol. 2A, IRET "REAL-ADDRESS-MODE"). */
function iretReal(c: Ctx, size: number): void {
  const ip = c.peek(size, 0) & MASK[size];
  const sel = Number(c.peek(size, size) & 0xffffn);
  const img = Number(c.peek(size, 2 * size) & 0xffffffffn);
  const cs = c.cpu.seg[SEG.cs];
  if (ip > BigInt(cs.limit >>> 0)) throw gp0();
  if (size === 4) {
    // EFLAGS := (tempEFLAGS AND 257FD5H) OR (EFLAGS AND 1A0000H): VM, VIF and VIP stay.
    c.flags = ((img & 0x257fd5) | (c.flags & 0x1a0000) | 2) >>> 0;
  } else {
    c.flags = ((c.flags & ~0xffff) | (img & FLAGS_DEFINED_LOW) | 2) >>> 0;
  }
  c.loadRf = size === 4;
  c.setStackPointer(c.wrapStack(c.stackPointer() + BigInt(3 * size)));
  c.rip = ip;
  commitLoads(c, [SEG.cs, { cache: realCache(c, cs, sel), desc: null }]);
}

/**
 * Virtual-8086 mode (SDM Vol. 2A, IRET "RETURN-FROM-VIRTUAL-8086-MODE"):
 * with IOPL = 3 like real mode but VM, IOPL, VIP and VIF stay; with IOPL <
 * 3, #GP(0) (CR4.VME's virtual interrupt flags are not emulated).
 */
function iretV86(c: Ctx, size: number): void {
  if (((c.flags >> 12) & 3) < 3) {
    if ((c.cpu.cr4 & 1n) !== 0n) throw new Unsupported("iret in virtual-8086 mode with CR4.VME");
    throw gp0();
  }
  const ip = c.peek(size, 0) & MASK[size];
  const sel = Number(c.peek(size, size) & 0xffffn);
  const img = Number(c.peek(size, 2 * size) & 0xffffffffn);
  const cs = c.cpu.seg[SEG.cs];
  if (ip > BigInt(cs.limit >>> 0)) throw gp0();
  const keep = F.VM | F.IOPL | F.VIP | F.VIF;
  const m = size === 4 ? 0x257fd5 & ~keep : FLAGS_DEFINED_LOW & ~keep;
  c.flags = ((c.flags & ~m) | (img & m) | 2) >>> 0;
  c.loadRf = size === 4;
  c.setStackPointer(c.wrapStack(c.stackPointer() + BigInt(3 * size)));
  c.rip = ip;
  commitLoads(c, [SEG.cs, { cache: realCache(c, cs, sel), desc: null }]);
}

// ---------------------------------------------------------------------------
// INT n (SDM Vol. 2A, INT n/INTO/INT3/INT1)

/**
 * int imm8: a software interrupt through IDT entry n, delivered by the
 * adapter (X86Exception.software) with RIP past the instruction. Before
 * delivery: in virtual-8086 mode IOPL < 3 is #GP(0) (CR4.VME's redirection
 * is not emulated); in protected mode at CPL > 0 the gate must lie within
 * the IDT and have DPL >= CPL, else #GP(n * 8 + 2) (the IDT bit of the
 * error code, SDM Vol. 3A, 6.13). Everything else about the gate is
 * checked by the delivery, as for an external interrupt.
 */
const intN: Handler = (c, i) => {
  const vector = Number(c.read(opnd(i, 0)) & 0xffn);
  if (c.v86 && ((c.flags >> 12) & 3) < 3) {
    if ((c.cpu.cr4 & 1n) !== 0n) {
      throw new Unsupported(`${i.text} in virtual-8086 mode with CR4.VME`);
    }
    throw gp0();
  }
  if (!c.real && !c.v86 && c.cpl > 0) {
    const idtErr = (vector << 3) | 2;
    const entry = longMode(c) ? 16 : 8;
    const idt = c.cpu.idtr;
    if (vector * entry + entry - 1 > idt.limit) throw new Fault(VEC.GP, idtErr);
    const lin = longMode(c)
      ? BigInt.asUintN(64, idt.base + BigInt(vector * entry))
      : (idt.base + BigInt(vector * entry)) & 0xffffffffn;
    const gate = c.readValue(c.translateRange(lin, 8, false, true));
    const dpl = Number((gate >> 45n) & 3n);
    if (dpl < c.cpl) throw new Fault(VEC.GP, idtErr);
  }
  c.trap = { vector, software: true };
};

// ---------------------------------------------------------------------------
// Far jmp, call and ret (SDM Vol. 2A, JMP and CALL; Vol. 2B, RET)

function opnd(i: Instruction, n: number): Operand {
  const o = i.operands[n];
  if (!o) throw new Unsupported(`${i.text}: missing operand ${n}`);
  return o;
}

/**
 * The far pointer of a far jmp/call: ptr16:16/32 in the instruction, or
 * m16:16/32/64 in memory (the offset first, then the selector). REX.W
 * makes it m16:64 on Intel; AMD ignores REX.W there (AMD APM Vol. 3, JMP
 * (Far) and CALL (Far)), as the decoder does.
 */
function farPointer(c: Ctx, i: Instruction): { selector: number; offset: bigint; size: number } {
  const op = opnd(i, 0);
  if (op.kind === "far") return { selector: op.selector, offset: op.offset, size: i.opSize };
  if (op.kind !== "mem") throw ud(); // the register forms of FF /3 and /5 are invalid
  const size = (i.rex & 8) !== 0 && c.f.vendor === "intel" ? 8 : i.opSize;
  // #AC: a far pointer is aligned as its offset (SDM Vol. 3A, Table 6-7: 32-bit far pointer 2,
  // 48-bit 4; m16:64 8 by the same rule).
  const v = c.readValue(c.resolve(op as MemOperand, false, size + 2, 0, size));
  return {
    selector: Number((v >> BigInt(size * 8)) & 0xffffn),
    offset: v & MASK[size],
    size,
  };
}

/** The code segment and RIP of a far jmp/call in any mode. */
function farTarget(
  c: Ctx,
  i: Instruction,
  p: { selector: number; offset: bigint; size: number },
): { cs: Load; rip: bigint } {
  if (realSegments(c)) {
    const cache = realCache(c, c.cpu.seg[SEG.cs], p.selector);
    const rip = p.offset & MASK[p.size === 8 ? 4 : p.size];
    if (rip > BigInt(cache.limit >>> 0)) throw gp0();
    return { cs: { cache, desc: null }, rip };
  }
  const cs = jumpTarget(c, p.selector, i.mnemonic);
  return { cs, rip: checkTarget(c, cs.cache, p.offset, p.size) };
}

/** jmp ptr16:16/32 and jmp m16:16/32/64 (dispatched here from "jmp" by exec.ts). */
export function farJmp(c: Ctx, i: Instruction): void {
  const t = farTarget(c, i, farPointer(c, i));
  c.rip = t.rip;
  commitLoads(c, [SEG.cs, t.cs]);
}

/**
 * call ptr16:16/32 and call m16:16/32/64 (dispatched here from "call" by
 * exec.ts): CS and the return address are pushed at the operand size, CS
 * zero-extended, on the current stack.
 */
export function farCall(c: Ctx, i: Instruction): void {
  const p = farPointer(c, i);
  const t = farTarget(c, i, p);
  const size = p.size;
  c.push(BigInt(c.cpu.seg[SEG.cs].selector & 0xffff), size);
  c.push(c.nextRip & MASK[size], size);
  c.rip = t.rip;
  commitLoads(c, [SEG.cs, t.cs]);
}

/**
 * retf [imm16]: pops the return address and CS; to an outer privilege
 * level also ESP/RSP and SS (imm16 bytes above CS), with the parameter
 * bytes released on both stacks (SDM Vol. 2B, RET "ESP := ESP + SRC" on
 * each).
 */
const retf: Handler = (c, i) => {
  const size = i.opSize;
  const imm = i.operands[0]?.kind === "imm" ? (i.operands[0] as { value: bigint }).value : 0n;
  const ip = c.peek(size, 0);
  const csSel = Number(c.peek(size, size) & 0xffffn);
  if (realSegments(c)) {
    const cache = realCache(c, c.cpu.seg[SEG.cs], csSel);
    const rip = ip & MASK[size];
    if (rip > BigInt(cache.limit >>> 0)) throw gp0();
    c.setStackPointer(c.wrapStack(c.stackPointer() + BigInt(2 * size) + imm));
    c.rip = rip;
    commitLoads(c, [SEG.cs, { cache, desc: null }]);
    return;
  }
  const cs = returnTarget(c, csSel);
  const newCpl = rplOf(csSel);
  let ss: Load | null = null;
  let sp = 0n;
  if (newCpl > c.cpl) {
    const at = 2 * size + Number(imm);
    sp = c.peek(size, at);
    const ssSel = Number(c.peek(size, at + size) & 0xffffn);
    ss = stackLoad(c, ssSel, newCpl, is64(c, cs.cache));
    if (size !== 8) sp &= MASK[size];
  }
  const rip = checkTarget(c, cs.cache, ip, size);
  if (ss) {
    // The new stack pointer at the new stack's size, plus the parameter bytes.
    const w = longMode(c) ? 8 : ss.cache.db ? 4 : 2;
    setNewStackPointer(c, ss.cache, (sp + imm) & MASK[w]);
  } else {
    c.setStackPointer(c.wrapStack(c.stackPointer() + BigInt(2 * size) + imm));
  }
  c.rip = rip;
  if (ss) {
    commitLoads(c, [SEG.cs, cs], [SEG.ss, ss]);
    invalidateForCpl(c, newCpl);
  } else {
    commitLoads(c, [SEG.cs, cs]);
  }
};

// ---------------------------------------------------------------------------
// Segment register loads (SDM Vol. 2A, MOV, LDS/LES/LFS/LGS/LSS; Vol. 2B, POP)

/** Loads `seg` with `selector` (checks, then the load as the last step). */
function loadSegment(c: Ctx, seg: SegIndex, selector: number, i: Instruction): Load {
  if (seg === SEG.cs) throw ud(); // mov cs and pop cs do not exist
  if (seg === SEG.ss) return stackLoad(c, selector, c.cpl, c.mode === 64);
  if (seg > SEG.gs) throw new Unsupported(`${i.text}: no segment register ${seg}`);
  return dataLoad(c, seg, selector);
}

/** mov Sreg, r/m16 (dispatched here from "mov" by exec.ts). */
export function movSreg(c: Ctx, i: Instruction): void {
  const d = opnd(i, 0);
  if (d.kind !== "reg" || d.cls !== "seg") throw new Unsupported(i.text);
  const s = opnd(i, 1);
  const selector = Number(
    (s.kind === "mem" ? c.readValue(c.resolve(s, false, 2)) : c.read(s)) & 0xffffn,
  );
  const seg = d.index as SegIndex;
  commitLoads(c, [seg, loadSegment(c, seg, selector, i)]);
  // Loading SS blocks interrupts and debug exceptions until the next instruction completes.
  if (seg === SEG.ss) c.shadow = "mov-ss";
}

/**
 * pop Sreg (dispatched here from "pop" by exec.ts): a selector-sized read
 * of the operand-size slot, which is released whole.
 */
export function popSreg(c: Ctx, i: Instruction): void {
  const d = opnd(i, 0);
  if (d.kind !== "reg" || d.cls !== "seg") throw new Unsupported(i.text);
  const size = i.opSize;
  const selector = Number(c.peek(2) & 0xffffn);
  if (size > 2) c.peek(size); // the whole slot must be within the stack's limits
  const seg = d.index as SegIndex;
  const l = loadSegment(c, seg, selector, i);
  c.setStackPointer(c.wrapStack(c.stackPointer() + BigInt(size)));
  commitLoads(c, [seg, l]);
  if (seg === SEG.ss) c.shadow = "mov-ss"; // as mov ss (SDM Vol. 3A, 6.8.3)
}

/** lds/les/lfs/lgs/lss r, m16:16/32/64: the offset into the register, the selector into the segment. */
const loadFar: Handler = (c, i) => {
  const r = opnd(i, 0);
  const m = opnd(i, 1);
  if (r.kind !== "reg" || m.kind !== "mem") throw ud();
  const seg = ({ lds: SEG.ds, les: SEG.es, lfs: SEG.fs, lgs: SEG.gs, lss: SEG.ss } as const)[
    i.mnemonic as "lds"
  ];
  if (seg === undefined) throw new Unsupported(i.text);
  // The offset: 16 or 32 bits, or 64 with REX.W on Intel (m16:64); AMD ignores REX.W here and
  // loads an m16:32 whose offset is zero-extended into the 64-bit register (measured on Zen:
  // 48 0F B5 reads 6 bytes, #AC at 4-byte alignment), as the decoder's m16:32 operand says.
  const size = (i.rex & 8) !== 0 && c.f.vendor === "intel" ? 8 : Math.min(r.size, 4);
  // Aligned for #AC as its offset, as far jmp/call's pointer (measured on AMD: m16:16 2, m16:32 4).
  const v = c.readValue(c.resolve(m, false, size + 2, 0, size));
  const selector = Number((v >> BigInt(size * 8)) & 0xffffn);
  const l = loadSegment(c, seg, selector, i);
  c.setReg(r.index, r.size, v & MASK[size]);
  commitLoads(c, [seg, l]);
};

/**
 * The descriptor LAR or LSL examines, or null when the instruction clears
 * ZF without faulting (SDM Vol. 2A, LAR and LSL): a null selector, one
 * beyond the GDT's or LDT's limit (or an unusable LDT), a system type the
 * instruction does not accept (`systemTypes`, by mode), or a privilege
 * check that fails (DPL < CPL or DPL < RPL, except for conforming code).
 * The descriptor need not be present. A page fault reading it is raised.
 */
function examinable(
  c: Ctx,
  selector: number,
  systemTypes: { legacy: readonly number[]; ia32e: readonly number[] },
): Descriptor | null {
  if (isNull(selector)) return null;
  const cpu = c.cpu;
  if (selector & 4) {
    const ldt = cpu.ldtr;
    if (ldt.unusable || !ldt.present || (selector & 0xfff8) + 7 > ldt.limit >>> 0) return null;
  } else if ((selector & 0xfff8) + 7 > cpu.gdtr.limit) return null;
  const d = readDescriptor(c, selector);
  if (isSystem(d)) {
    const ia32e = (cpu.efer & EFER.LMA) !== 0n;
    if (!(ia32e ? systemTypes.ia32e : systemTypes.legacy).includes(typeOf(d))) return null;
  }
  const conforming = isCode(d) && (typeOf(d) & T_CONFORMING) !== 0;
  if (!conforming && (dplOf(d) < c.cpl || dplOf(d) < rplOf(selector))) return null;
  return d;
}

/** The 16-bit selector operand of LAR/LSL (a register's low 16 bits, or a word in memory). */
function selectorOperand(c: Ctx, i: Instruction): number {
  const s = opnd(i, 1);
  return Number((s.kind === "mem" ? c.readValue(c.resolve(s, false, 2)) : c.read(s)) & 0xffffn);
}

/**
 * LAR/LSL r, r/m16 (SDM Vol. 2A, LAR, LSL): #UD in real-address and
 * virtual-8086 mode; otherwise ZF = 1 and `value(descriptor)` in the
 * destination when the descriptor passes {@linkcode examinable}, else ZF = 0
 * and the destination unchanged. A 32-bit destination is zero-extended in
 * 64-bit mode, a 16-bit one takes the low 16 bits.
 */
function examine(
  systemTypes: { legacy: readonly number[]; ia32e: readonly number[] },
  value: (d: Descriptor) => number,
): Handler {
  return (c, i) => {
    if (realSegments(c)) throw ud();
    const r = opnd(i, 0);
    if (r.kind !== "reg") throw ud();
    const d = examinable(c, selectorOperand(c, i), systemTypes);
    if (d === null) {
      c.flags &= ~F.ZF;
      return;
    }
    c.setReg(r.index, r.size, BigInt(value(d) >>> 0) & MASK[r.size]);
    c.flags |= F.ZF;
  };
}

/**
 * LAR: the access rights, bits 23:8 of the descriptor's high dword with the
 * base bits (31:24) and the limit bits (19:16) cleared. Accepted system
 * types: 16-bit TSS, LDT, busy 16-bit TSS, 16-bit call gate, task gate,
 * 32-bit TSS (available, busy) and 32-bit call gate; in IA-32e mode only the
 * LDT, the 64-bit TSS (available, busy) and the 64-bit call gate.
 */
const lar = examine(
  { legacy: [1, 2, 3, 4, 5, 9, 0xb, 0xc], ia32e: [2, 9, 0xb, 0xc] },
  (d) => d.hi & 0x00f0ff00,
);

/**
 * LSL: the segment limit in bytes (a limit in 4-KiB units, G = 1, becomes
 * limit << 12 | FFFH). Accepted system types: TSSes (16- and 32-bit,
 * available and busy) and the LDT; in IA-32e mode the LDT and the 64-bit TSS.
 */
const lsl = examine(
  { legacy: [1, 2, 3, 9, 0xb], ia32e: [2, 9, 0xb] },
  (d) => {
    const limit = (d.lo & 0xffff) | (d.hi & 0xf0000);
    return (d.hi >>> 23) & 1 ? ((limit << 12) | 0xfff) >>> 0 : limit;
  },
);

/** Handlers of this module by mnemonic (the far forms of jmp/call, mov and pop are dispatched by exec.ts). */
export const SEGMENT_HANDLERS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  ["iret", iret],
  ["iretw", iret],
  ["iretd", iret],
  ["iretq", iret],
  ["int", intN],
  ["retf", retf],
  ["retfw", retf],
  ["retfd", retf],
  ["retfq", retf],
  ["lds", loadFar],
  ["les", loadFar],
  ["lfs", loadFar],
  ["lgs", loadFar],
  ["lss", loadFar],
  ["lar", lar],
  ["lsl", lsl],
]);

/**
 * System instructions: int3/int1/into, ud, clac/stac, cpuid, rdmsr/wrmsr,
 * xgetbv/xsetbv, moves to and from control registers, lgdt/lidt/sgdt/sidt,
 * sldt/str/smsw/lmsw/clts, cache and TLB maintenance (no-ops here),
 * swapgs, rd/wr fs/gs base, rdpid, rdrand/rdseed, rdpkru/wrpkru.
 * SDM Vol. 2 instruction pages; control registers: Vol. 3A, 2.5;
 * XCR0: Vol. 1, 13.3.
 *
 * Handlers do every check first and change CpuState fields other than
 * the general-purpose registers, RIP and RFLAGS only as their last step,
 * so that a fault changes nothing.
 *
 * Private module of exec.ts.
 *
 * @module
 */

import type { Handler } from "./_exec_alu.ts";
import {
  component,
  CR0,
  CR4,
  type Ctx,
  EFER,
  F,
  gp0,
  MASK,
  ud,
  Unsupported,
  VEC,
} from "./_exec_ctx.ts";
import { DIRTY, type Instruction, type MemOperand, type Operand, SEG } from "./types.ts";

const MSR_EFER = 0xc0000080;
const MSR_FS_BASE = 0xc0000100;
const MSR_GS_BASE = 0xc0000101;
const MSR_KERNEL_GS_BASE = 0xc0000102;
const MSR_TSC_AUX = 0xc0000103;

/** #GP(0) unless CPL 0 (and not virtual-8086 mode). */
function privileged(c: Ctx): void {
  if (c.cpl !== 0 || c.v86) throw gp0();
}

/** UMIP (CR4.UMIP): sgdt, sidt, sldt, smsw and str at CPL > 0 raise #GP(0). */
function umip(c: Ctx): void {
  if ((c.cpu.cr4 & CR4.UMIP) !== 0n && c.cpl > 0) throw gp0();
}

function opnd(i: Instruction, n: number): Operand {
  const o = i.operands[n];
  if (!o) throw new Unsupported(`${i.text}: missing operand ${n}`);
  return o;
}

function memOf(i: Instruction, n = 0): MemOperand {
  const o = opnd(i, n);
  if (o.kind !== "mem") throw ud();
  return o;
}

// ---------------------------------------------------------------------------
// Traps and invalid opcodes

/** int3: a trap; RIP moves past it and #BP is to be delivered (SDM INT n/INTO/INT3/INT1). */
const int3: Handler = (c) => {
  c.trap = { vector: VEC.BP };
};

/** int1 (ICEBP): a #DB trap with no DR6 condition bit. */
const int1: Handler = (c) => {
  c.trap = { vector: VEC.DB };
};

/** into: #OF (vector 4) as a trap when OF is set; invalid in 64-bit mode. */
const into: Handler = (c) => {
  if (c.mode === 64) throw ud();
  if (c.flags & F.OF) c.trap = { vector: 4 };
};

const undefinedOpcode: Handler = () => {
  throw ud();
};

// ---------------------------------------------------------------------------
// SMAP (SDM Vol. 2A, CLAC; Vol. 2B, STAC)

const clacStac: Handler = (c, i) => {
  // #UD without SMAP, at CPL > 0 and in virtual-8086 mode.
  if (!c.f.smap || c.cpl > 0 || c.v86) throw ud();
  if (i.mnemonic === "clac") c.flags &= ~F.AC;
  else c.flags |= F.AC;
};

// ---------------------------------------------------------------------------
// CPUID, MSRs, XCR0

const cpuid: Handler = (c) => {
  const r = c.cpu.cpuid(Number(c.getReg(0, 4)), Number(c.getReg(1, 4)));
  c.setReg(0, 4, BigInt(r[0] >>> 0));
  c.setReg(3, 4, BigInt(r[1] >>> 0));
  c.setReg(1, 4, BigInt(r[2] >>> 0));
  c.setReg(2, 4, BigInt(r[3] >>> 0));
};

const rdmsr: Handler = (c) => {
  privileged(c);
  const idx = Number(c.getReg(1, 4));
  const cpu = c.cpu;
  let v: bigint | undefined;
  // EFER and the FS/GS bases come from the state the executor also changes.
  if (idx === MSR_EFER) v = cpu.efer;
  else if (idx === MSR_FS_BASE) v = cpu.seg[SEG.fs].base;
  else if (idx === MSR_GS_BASE) v = cpu.seg[SEG.gs].base;
  else v = cpu.readMsr(idx);
  if (v === undefined) throw gp0();
  c.setReg(0, 4, v & 0xffffffffn);
  c.setReg(2, 4, (v >> 32n) & 0xffffffffn);
};

const wrmsr: Handler = (c) => {
  privileged(c);
  const cpu = c.cpu;
  const idx = Number(c.getReg(1, 4));
  let v = (c.getReg(2, 4) << 32n) | c.getReg(0, 4);
  switch (idx) {
    case MSR_EFER: {
      // Reserved bits: #GP; LMA is read-only; LME may not change while paging is on.
      if ((v & ~c.f.eferValid) !== 0n) throw gp0();
      v = (v & ~EFER.LMA) | (cpu.efer & EFER.LMA);
      if ((cpu.cr0 & CR0.PG) !== 0n && ((v ^ cpu.efer) & EFER.LME) !== 0n) throw gp0();
      break;
    }
    case MSR_FS_BASE:
    case MSR_GS_BASE:
    case MSR_KERNEL_GS_BASE:
      if (!c.canonical(v)) throw gp0();
      break;
  }
  if (!cpu.writeMsr(idx, v)) throw gp0();
  if (idx === MSR_EFER) {
    cpu.efer = v;
    c.dirty |= DIRTY.sregs;
  } else if (idx === MSR_FS_BASE || idx === MSR_GS_BASE) {
    cpu.seg[idx === MSR_FS_BASE ? SEG.fs : SEG.gs].base = v;
    c.dirty |= DIRTY.sregs;
  }
};

const xgetbv: Handler = (c) => {
  const cpu = c.cpu;
  if ((cpu.cr4 & CR4.OSXSAVE) === 0n) throw ud();
  const ecx = c.getReg(1, 4);
  let v: bigint;
  if (ecx === 0n) v = cpu.xcr0;
  else if (ecx === 1n && c.f.xgetbv1) {
    // XCR0 AND XINUSE (SDM Vol. 1, 13.6).
    const x = c.ext();
    v = cpu.xcr0 & new DataView(x.buffer, x.byteOffset).getBigUint64(512, true);
  } else throw gp0();
  c.setReg(0, 4, v & 0xffffffffn);
  c.setReg(2, 4, v >> 32n);
};

const xsetbv: Handler = (c) => {
  const cpu = c.cpu;
  if ((cpu.cr4 & CR4.OSXSAVE) === 0n) throw ud();
  privileged(c);
  if (c.getReg(1, 4) !== 0n) throw gp0();
  const v = (c.getReg(2, 4) << 32n) | c.getReg(0, 4);
  // SDM Vol. 1, 13.3: x87 always; AVX needs SSE; MPX's two bits together; AVX-512's
  // three together and with AVX; AMX's two together.
  if (!(v & 1n) || (v & ~c.f.xcr0Supported) !== 0n) throw gp0();
  if ((v & 4n) && !(v & 2n)) throw gp0();
  if ((v & 0x18n) !== 0n && (v & 0x18n) !== 0x18n) throw gp0();
  if ((v & 0xe0n) !== 0n && ((v & 0xe0n) !== 0xe0n || !(v & 4n))) throw gp0();
  if ((v & 0x60000n) !== 0n && (v & 0x60000n) !== 0x60000n) throw gp0();
  cpu.xcr0 = v;
  c.dirty |= DIRTY.xcr0;
};

// ---------------------------------------------------------------------------
// Control registers (SDM Vol. 2B, MOV—Move to/from Control Registers; Vol. 3A, 2.5)

/** CR0 bits that exist (others read as 0; writing them is ignored). */
const CR0_VALID = CR0.PE | CR0.MP | CR0.EM | CR0.TS | CR0.ET | CR0.NE | CR0.WP | CR0.AM | CR0.NW |
  CR0.CD |
  CR0.PG;

/** The new CR0 and EFER for a write of `v` to CR0, or a #GP. */
function checkCr0(c: Ctx, v: bigint): { cr0: bigint; efer: bigint } {
  const cpu = c.cpu;
  if ((v >> 32n) !== 0n) throw gp0();
  if ((v & CR0.PG) && !(v & CR0.PE)) throw gp0();
  if ((v & CR0.NW) && !(v & CR0.CD)) throw gp0();
  if ((cpu.cr4 & CR4.CET) && !(v & CR0.WP)) throw gp0();
  let efer = cpu.efer;
  const pgOn = (v & CR0.PG) !== 0n && (cpu.cr0 & CR0.PG) === 0n;
  const pgOff = (v & CR0.PG) === 0n && (cpu.cr0 & CR0.PG) !== 0n;
  if (pgOn && (efer & EFER.LME)) {
    // Activating IA-32e mode needs CR4.PAE, CS.L = 0 and CR4.PCIDE = 0 (SDM 9.8.5).
    if (!(cpu.cr4 & CR4.PAE) || cpu.seg[SEG.cs].l || (cpu.cr4 & CR4.PCIDE)) throw gp0();
    efer |= EFER.LMA;
  }
  if (pgOff) {
    if (c.mode === 64 || (cpu.cr4 & CR4.PCIDE)) throw gp0();
    efer &= ~EFER.LMA;
  }
  // ET is hardwired to 1; the reserved bits of CR0[31:0] ignore writes.
  return { cr0: (v & CR0_VALID) | CR0.ET, efer };
}

function readCr(c: Ctx, n: number): bigint {
  const cpu = c.cpu;
  switch (n) {
    case 0:
      return cpu.cr0;
    case 2:
      return cpu.cr2;
    case 3:
      return cpu.cr3;
    case 4:
      return cpu.cr4;
    case 8:
      return cpu.cr8;
    default:
      throw ud();
  }
}

function writeCr(c: Ctx, n: number, v: bigint): void {
  const cpu = c.cpu;
  switch (n) {
    case 0: {
      const r = checkCr0(c, v);
      cpu.cr0 = r.cr0;
      cpu.efer = r.efer;
      break;
    }
    case 2:
      cpu.cr2 = v;
      break;
    case 3: {
      // With CR4.PCIDE, bit 63 asks not to flush and is not stored; bits 62:MAXPHYADDR reserved.
      if ((cpu.cr4 & CR4.PCIDE) && c.mode === 64) v &= ~(1n << 63n);
      if (c.mode === 64 && (v >> BigInt(c.f.maxPhyAddr)) !== 0n) throw gp0();
      cpu.cr3 = v;
      break;
    }
    case 4: {
      if ((v & ~c.f.cr4Valid) !== 0n) throw gp0();
      const lma = (cpu.efer & EFER.LMA) !== 0n;
      if (lma && !(v & CR4.PAE)) throw gp0(); // cannot leave PAE in IA-32e mode
      if (lma && ((v ^ cpu.cr4) & CR4.LA57)) throw gp0(); // nor change LA57
      if ((v & CR4.PCIDE) && !(cpu.cr4 & CR4.PCIDE) && (!lma || (cpu.cr3 & 0xfffn) !== 0n)) {
        throw gp0();
      }
      if ((v & CR4.CET) && !(cpu.cr0 & CR0.WP)) throw gp0();
      cpu.cr4 = v;
      break;
    }
    case 8:
      if (v > 15n) throw gp0(); // bits 63:4 reserved
      cpu.cr8 = v;
      break;
    default:
      throw ud();
  }
  c.dirty |= DIRTY.sregs;
}

/** mov to/from CRn (dispatched here from "mov" when an operand is a control register). */
export function movCr(c: Ctx, i: Instruction): void {
  privileged(c);
  const d = opnd(i, 0);
  const s = opnd(i, 1);
  if (d.kind === "reg" && d.cls === "cr") {
    // The source is 64 bits in 64-bit mode, else 32 bits (SDM MOV CR).
    writeCr(c, d.index, c.read(s));
  } else if (s.kind === "reg" && s.cls === "cr" && d.kind === "reg") {
    c.setReg(d.index, d.size, readCr(c, s.index) & MASK[d.size]);
  } else {
    throw new Unsupported(i.text);
  }
}

/** mov to/from DRn: CpuState has no debug registers. */
export function movDr(c: Ctx, i: Instruction): void {
  privileged(c);
  throw new Unsupported(`${i.text}: debug registers are not in the emulated state`);
}

const lmsw: Handler = (c, i) => {
  privileged(c);
  const v = c.read(opnd(i, 0)) & 0xfn;
  const cpu = c.cpu;
  // Loads PE, MP, EM and TS; PE can be set but not cleared.
  const cr0 = (cpu.cr0 & ~0xen) | (v & 0xen) | ((cpu.cr0 | v) & 1n);
  cpu.cr0 = cr0;
  c.dirty |= DIRTY.sregs;
};

const clts: Handler = (c) => {
  privileged(c);
  c.cpu.cr0 &= ~CR0.TS;
  c.dirty |= DIRTY.sregs;
};

const smsw: Handler = (c, i) => {
  umip(c);
  const d = opnd(i, 0);
  const cr0 = c.cpu.cr0;
  if (d.kind === "mem") c.writeValue(c.resolve(d, true, 2), cr0 & 0xffffn);
  else c.write(d, cr0 & MASK[(d as { size: number }).size]);
};

// ---------------------------------------------------------------------------
// Descriptor-table registers (SDM Vol. 2A, LGDT/LIDT; Vol. 2B, SGDT, SIDT, SLDT, STR)

const lgdtLidt: Handler = (c, i) => {
  privileged(c);
  const m = memOf(i);
  const n = c.mode === 64 ? 10 : 6;
  const v = c.readValue(c.resolve(m, false, n));
  const limit = Number(v & 0xffffn);
  let base = v >> 16n;
  // 16-bit operand size: a 24-bit base; 32-bit: 32 bits; 64-bit mode: 64 bits.
  if (c.mode !== 64) base &= i.opSize === 2 ? 0xffffffn : 0xffffffffn;
  else if (!c.canonical(base)) throw gp0();
  const r = i.mnemonic === "lgdt" ? c.cpu.gdtr : c.cpu.idtr;
  r.base = base;
  r.limit = limit;
  c.dirty |= DIRTY.sregs;
};

const sgdtSidt: Handler = (c, i) => {
  umip(c);
  const m = memOf(i);
  const n = c.mode === 64 ? 10 : 6;
  const r = i.mnemonic === "sgdt" ? c.cpu.gdtr : c.cpu.idtr;
  const base = c.mode === 64 ? r.base : r.base & 0xffffffffn;
  // #AC: "GDTR, IDTR, LDTR, or Task Register Contents" need 4 (SDM Vol. 3A, Table 6-7).
  c.writeValue(c.resolve(m, true, n, 0, 4), (base << 16n) | BigInt(r.limit & 0xffff));
};

const sldtStr: Handler = (c, i) => {
  if (c.real || c.v86) throw ud();
  umip(c);
  const d = opnd(i, 0);
  const sel = BigInt((i.mnemonic === "sldt" ? c.cpu.ldtr : c.cpu.tr).selector & 0xffff);
  if (d.kind === "mem") c.writeValue(c.resolve(d, true, 2), sel);
  else c.write(d, sel); // zero-extended into a 32/64-bit register
};

// ---------------------------------------------------------------------------
// Caches and TLBs: nothing to do in an emulator without them

const privilegedNop: Handler = (c) => {
  privileged(c);
};

const invpcid: Handler = (c, i) => {
  if (!c.f.pcid) throw ud();
  privileged(c);
  const type = c.read(opnd(i, 0));
  const desc = c.readValue(c.resolve(memOf(i, 1), false, 16));
  if (type > 3n) throw gp0();
  // Individual-address invalidation needs a canonical address; PCID bits 63:12 must be 0.
  if ((desc & 0xfffffffffffff000n) !== 0n) throw gp0();
  if (type === 0n && !c.canonical(desc >> 64n)) throw gp0();
};

// ---------------------------------------------------------------------------
// FS/GS bases (SDM Vol. 2B, SWAPGS; RDFSBASE/RDGSBASE; WRFSBASE/WRGSBASE)

const swapgs: Handler = (c) => {
  if (c.mode !== 64) throw ud();
  privileged(c);
  const cpu = c.cpu;
  const kgs = cpu.readMsr(MSR_KERNEL_GS_BASE);
  if (kgs === undefined) throw new Unsupported("swapgs: no IA32_KERNEL_GS_BASE");
  const gs = cpu.seg[SEG.gs].base;
  if (!cpu.writeMsr(MSR_KERNEL_GS_BASE, gs)) {
    throw new Unsupported("swapgs: IA32_KERNEL_GS_BASE refused");
  }
  cpu.seg[SEG.gs].base = kgs;
  c.dirty |= DIRTY.sregs;
};

const fsgsBase: Handler = (c, i) => {
  if (c.mode !== 64 || (c.cpu.cr4 & CR4.FSGSBASE) === 0n) throw ud();
  const r = opnd(i, 0);
  const seg = i.mnemonic.includes("fs") ? SEG.fs : SEG.gs;
  if (i.mnemonic.startsWith("rd")) {
    c.write(r, c.cpu.seg[seg].base & MASK[(r as { size: number }).size]);
    return;
  }
  const v = c.read(r);
  if (!c.canonical(v)) throw gp0();
  c.cpu.seg[seg].base = v;
  c.dirty |= DIRTY.sregs;
};

// ---------------------------------------------------------------------------
// Miscellaneous

const rdpid: Handler = (c, i) => {
  if (!c.f.rdpid) throw ud();
  const v = c.cpu.readMsr(MSR_TSC_AUX);
  if (v === undefined) throw ud();
  const d = opnd(i, 0);
  c.write(d, v & 0xffffffffn);
};

/**
 * rdrand/rdseed: dhyve has no entropy source of the guest's CPU here, so it
 * reports "no random number available" (CF = 0, destination 0), which the
 * instruction allows at any time (SDM RDRAND: software must retry).
 */
const rdrand: Handler = (c, i) => {
  if (!(i.mnemonic === "rdrand" ? c.f.rdrand : c.f.rdseed)) throw ud();
  c.write(opnd(i, 0), 0n);
  c.setArith(0); // CF = OF = SF = ZF = AF = PF = 0
};

function pkruOffset(c: Ctx): number {
  if ((c.cpu.cr4 & CR4.PKE) === 0n) throw ud();
  const off = component(c.cpu, c.f, 9).offset;
  if (off + 8 > c.ext().length) throw new Unsupported("PKRU is not in the extended state");
  return off;
}

const rdpkru: Handler = (c) => {
  const off = pkruOffset(c);
  if (c.getReg(1, 4) !== 0n) throw gp0();
  const x = c.ext();
  const v = (x[512 + 1] & 2) ? new DataView(x.buffer, x.byteOffset).getUint32(off, true) : 0;
  c.setReg(0, 4, BigInt(v));
  c.setReg(2, 4, 0n);
};

const wrpkru: Handler = (c) => {
  const off = pkruOffset(c);
  if (c.getReg(1, 4) !== 0n || c.getReg(2, 4) !== 0n) throw gp0();
  const x = c.ext();
  new DataView(x.buffer, x.byteOffset).setUint32(off, Number(c.getReg(0, 4)), true);
  x[512 + 1] |= 2; // XSTATE_BV[9]
  c.touchExt(0);
};

const hlt: Handler = (c, i) => {
  privileged(c);
  throw new Unsupported(`${i.text}: halting is the run loop's job`);
};

/** Handlers of this module by mnemonic. */
export const SYSTEM_HANDLERS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  ["int3", int3],
  ["int1", int1],
  ["icebp", int1],
  ["into", into],
  ["ud2", undefinedOpcode],
  ["ud0", undefinedOpcode],
  ["ud1", undefinedOpcode],
  ["clac", clacStac],
  ["stac", clacStac],
  ["cpuid", cpuid],
  ["rdmsr", rdmsr],
  ["wrmsr", wrmsr],
  ["xgetbv", xgetbv],
  ["xsetbv", xsetbv],
  ["lmsw", lmsw],
  ["clts", clts],
  ["smsw", smsw],
  ["lgdt", lgdtLidt],
  ["lidt", lgdtLidt],
  ["sgdt", sgdtSidt],
  ["sidt", sgdtSidt],
  ["sldt", sldtStr],
  ["str", sldtStr],
  ["invlpg", privilegedNop],
  ["wbinvd", privilegedNop],
  ["wbnoinvd", privilegedNop],
  ["invd", privilegedNop],
  ["invpcid", invpcid],
  ["swapgs", swapgs],
  ["rdfsbase", fsgsBase],
  ["rdgsbase", fsgsBase],
  ["wrfsbase", fsgsBase],
  ["wrgsbase", fsgsBase],
  ["rdpid", rdpid],
  ["rdrand", rdrand],
  ["rdseed", rdrand],
  ["rdpkru", rdpkru],
  ["wrpkru", wrpkru],
  ["hlt", hlt],
]);

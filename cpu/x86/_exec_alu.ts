/**
 * General-purpose integer instructions: arithmetic and logic, shifts and
 * rotates, bit operations, multiply and divide, moves and conversions,
 * exchanges, stack operations and flag instructions (SDM Vol. 2, chapters
 * 3-4; flag effects from each instruction's "Flags Affected" section and
 * Vol. 1, Appendix A).
 *
 * Flags the SDM calls undefined are set as the hardware of the vendor in
 * CPUID leaf 0 sets them, where that was measured or is well known; each
 * such place says so.
 *
 * Private module of exec.ts.
 *
 * @module
 */

import {
  ARITH,
  BITS,
  type Ctx,
  F,
  Fault,
  gp0,
  MASK,
  SIGN,
  ud,
  Unsupported,
  VEC,
} from "./_exec_ctx.ts";
import type { Instruction, MemOperand, Operand } from "./types.ts";
import { SEG } from "./types.ts";

/** An instruction handler: executes `i` on `c`, or throws Fault / Unsupported. */
export type Handler = (c: Ctx, i: Instruction) => void;

/** Operand width in bytes. */
export function sizeOf(op: Operand, i: Instruction): number {
  if (op.kind === "reg" || op.kind === "mem" || op.kind === "imm") return op.size || i.opSize;
  return i.opSize;
}

/** The `n`th operand, or #UD-worthy decoder mismatch as Unsupported. */
function opnd(i: Instruction, n: number): Operand {
  const o = i.operands[n];
  if (!o) throw new Unsupported(`${i.text}: missing operand ${n}`);
  return o;
}

// ---------------------------------------------------------------------------
// Condition codes (SDM Vol. 1, Appendix B)

/** Evaluates condition code `cc` (the low nibble of Jcc/SETcc/CMOVcc opcodes) on `flags`. */
export function condition(cc: number, flags: number): boolean {
  let r: boolean;
  switch (cc >> 1) {
    case 0:
      r = (flags & F.OF) !== 0;
      break;
    case 1:
      r = (flags & F.CF) !== 0;
      break;
    case 2:
      r = (flags & F.ZF) !== 0;
      break;
    case 3:
      r = (flags & (F.CF | F.ZF)) !== 0;
      break;
    case 4:
      r = (flags & F.SF) !== 0;
      break;
    case 5:
      r = (flags & F.PF) !== 0;
      break;
    case 6:
      r = ((flags & F.SF) !== 0) !== ((flags & F.OF) !== 0);
      break;
    default:
      r = (flags & F.ZF) !== 0 || ((flags & F.SF) !== 0) !== ((flags & F.OF) !== 0);
  }
  return (cc & 1) ? !r : r;
}

// ---------------------------------------------------------------------------
// Flag computations

/** a + b + carry at `size` bytes, setting all six status flags. */
export function add(c: Ctx, a: bigint, b: bigint, carry: bigint, size: number): bigint {
  const full = a + b + carry;
  const r = full & MASK[size];
  let f = c.szp(r, size);
  if (full > MASK[size]) f |= F.CF;
  if ((a ^ r) & (b ^ r) & SIGN[size]) f |= F.OF;
  if ((a ^ b ^ r) & 0x10n) f |= F.AF;
  c.setArith(f);
  return r;
}

/** a - b - borrow at `size` bytes, setting all six status flags. */
export function sub(c: Ctx, a: bigint, b: bigint, borrow: bigint, size: number): bigint {
  const r = (a - b - borrow) & MASK[size];
  let f = c.szp(r, size);
  if (a < b + borrow) f |= F.CF;
  if ((a ^ b) & (a ^ r) & SIGN[size]) f |= F.OF;
  if ((a ^ b ^ r) & 0x10n) f |= F.AF;
  c.setArith(f);
  return r;
}

/** Flags of a logical operation: CF = OF = 0; AF (undefined) is 0 on Intel and AMD. */
export function logic(c: Ctx, r: bigint, size: number): bigint {
  c.setArith(c.szp(r, size));
  return r;
}

// Binary operations by ModRM reg field order (00-38 opcodes): add or adc sbb and sub xor cmp.
const ALU_ADD = 0,
  ALU_OR = 1,
  ALU_ADC = 2,
  ALU_SBB = 3,
  ALU_AND = 4,
  ALU_SUB = 5,
  ALU_XOR = 6,
  ALU_CMP = 7;

function alu(c: Ctx, op: number, a: bigint, b: bigint, size: number): bigint {
  switch (op) {
    case ALU_ADD:
      return add(c, a, b, 0n, size);
    case ALU_OR:
      return logic(c, a | b, size);
    case ALU_ADC:
      return add(c, a, b, BigInt(c.flags & F.CF), size);
    case ALU_SBB:
      return sub(c, a, b, BigInt(c.flags & F.CF), size);
    case ALU_AND:
      return logic(c, a & b, size);
    case ALU_XOR:
      return logic(c, a ^ b, size);
    default:
      return sub(c, a, b, 0n, size);
  }
}

/** Instructions that accept LOCK with a memory destination (SDM Vol. 2A, LOCK). */
export const LOCKABLE = new Set([
  "add",
  "adc",
  "and",
  "btc",
  "btr",
  "bts",
  "cmpxchg",
  "cmpxchg8b",
  "cmpxchg16b",
  "dec",
  "inc",
  "neg",
  "not",
  "or",
  "sbb",
  "sub",
  "xor",
  "xadd",
  "xchg",
]);

// State for the read-modify-write callbacks (no closures per instruction).
let rmwOp = 0;
let rmwB = 0n;
let rmwSize = 0;
let rmwCtx: Ctx;

function rmwAlu(a: bigint): bigint {
  return alu(rmwCtx, rmwOp, a, rmwB, rmwSize);
}

/**
 * Read-modify-write of the destination `d` with `fn(old)`: a register, a
 * plain memory operand (write held for commit), or a locked one (compare-exchange).
 */
function rmw(c: Ctx, i: Instruction, d: Operand, fn: (a: bigint) => bigint): void {
  if (d.kind === "mem") {
    const loc = c.resolve(d, true);
    if (i.lock) {
      c.atomicRmw(loc, fn);
    } else {
      c.writeValue(loc, fn(c.readValue(loc)));
    }
    return;
  }
  if (i.lock) throw ud();
  c.write(d, fn(c.read(d)));
}

function binary(op: number): Handler {
  return (c, i) => {
    const d = opnd(i, 0);
    const size = sizeOf(d, i);
    const b = c.read(opnd(i, 1)) & MASK[size];
    if (op === ALU_CMP) {
      if (i.lock) throw ud();
      alu(c, op, c.read(d), b, size);
      return;
    }
    rmwCtx = c;
    rmwOp = op;
    rmwB = b;
    rmwSize = size;
    rmw(c, i, d, rmwAlu);
  };
}

function rmwInc(a: bigint): bigint {
  const cf = rmwCtx.flags & F.CF;
  const r = add(rmwCtx, a, 1n, 0n, rmwSize);
  rmwCtx.flags = (rmwCtx.flags & ~F.CF) | cf;
  return r;
}
function rmwDec(a: bigint): bigint {
  const cf = rmwCtx.flags & F.CF;
  const r = sub(rmwCtx, a, 1n, 0n, rmwSize);
  rmwCtx.flags = (rmwCtx.flags & ~F.CF) | cf;
  return r;
}
function rmwNeg(a: bigint): bigint {
  const r = sub(rmwCtx, 0n, a, 0n, rmwSize);
  return r;
}
function rmwNot(a: bigint): bigint {
  return ~a & MASK[rmwSize];
}

function unary(fn: (a: bigint) => bigint): Handler {
  return (c, i) => {
    const d = opnd(i, 0);
    rmwCtx = c;
    rmwSize = sizeOf(d, i);
    rmw(c, i, d, fn);
  };
}

const test: Handler = (c, i) => {
  if (i.lock) throw ud();
  const d = opnd(i, 0);
  const size = sizeOf(d, i);
  logic(c, c.read(d) & c.read(opnd(i, 1)) & MASK[size], size);
};

// ---------------------------------------------------------------------------
// Shifts and rotates (SDM Vol. 2B, SAL/SAR/SHL/SHR; RCL/RCR/ROL/ROR; SHLD; SHRD)

const SH_ROL = 0,
  SH_ROR = 1,
  SH_RCL = 2,
  SH_RCR = 3,
  SH_SHL = 4,
  SH_SHR = 5,
  SH_SAL = 6,
  SH_SAR = 7;
const SHIFT_OPS: Record<string, number> = {
  rol: SH_ROL,
  ror: SH_ROR,
  rcl: SH_RCL,
  rcr: SH_RCR,
  shl: SH_SHL,
  sal: SH_SAL,
  shr: SH_SHR,
  sar: SH_SAR,
};

let shCount = 0;

/**
 * One shift or rotate of `a` (size `rmwSize`) by the masked count `shCount`
 * (non-zero). Undefined flags: OF for counts > 1 follows the count-1 formula
 * and AF is left as it was for rotates; for shifts AF is set as measured on
 * AMD (1) and 0 on Intel.
 */
function shiftOp(a: bigint): bigint {
  const c = rmwCtx;
  const size = rmwSize;
  const w = Number(BITS[size]);
  const m = MASK[size];
  const cnt = shCount;
  const n = BigInt(cnt);
  const msb = (v: bigint) => Number((v >> BigInt(w - 1)) & 1n);
  let r: bigint;
  let cf: number;
  let of: number;
  switch (rmwOp) {
    case SH_ROL: {
      const k = BigInt(cnt % w);
      r = ((a << k) | (a >> (BigInt(w) - k))) & m;
      cf = Number(r & 1n);
      of = msb(r) ^ cf;
      c.flags = (c.flags & ~(F.CF | F.OF)) | (cf ? F.CF : 0) | (of ? F.OF : 0);
      return r;
    }
    case SH_ROR: {
      const k = BigInt(cnt % w);
      r = ((a >> k) | (a << (BigInt(w) - k))) & m;
      cf = msb(r);
      of = cf ^ Number((r >> BigInt(w - 2)) & 1n);
      c.flags = (c.flags & ~(F.CF | F.OF)) | (cf ? F.CF : 0) | (of ? F.OF : 0);
      return r;
    }
    case SH_RCL: {
      const k = cnt % (w + 1);
      const cin = BigInt(c.flags & F.CF);
      if (k === 0) {
        r = a;
        cf = Number(cin);
      } else {
        // Rotate the (w+1)-bit value CF:a left by k.
        const x = (cin << BigInt(w)) | a;
        const wide = BigInt(w + 1);
        const rot = ((x << BigInt(k)) | (x >> (wide - BigInt(k)))) & ((1n << wide) - 1n);
        r = rot & m;
        cf = Number(rot >> BigInt(w));
      }
      of = msb(r) ^ cf;
      c.flags = (c.flags & ~(F.CF | F.OF)) | (cf ? F.CF : 0) | (of ? F.OF : 0);
      return r;
    }
    case SH_RCR: {
      const k = cnt % (w + 1);
      const cin = BigInt(c.flags & F.CF);
      of = msb(a) ^ Number(cin);
      if (k === 0) {
        r = a;
        cf = Number(cin);
      } else {
        const x = (cin << BigInt(w)) | a;
        const wide = BigInt(w + 1);
        const rot = ((x >> BigInt(k)) | (x << (wide - BigInt(k)))) & ((1n << wide) - 1n);
        r = rot & m;
        cf = Number(rot >> BigInt(w));
      }
      if (cnt !== 1) of = msb(r) ^ Number((r >> BigInt(w - 2)) & 1n);
      c.flags = (c.flags & ~(F.CF | F.OF)) | (cf ? F.CF : 0) | (of ? F.OF : 0);
      return r;
    }
    case SH_SHL:
    case SH_SAL: {
      r = (a << n) & m;
      cf = cnt <= w ? Number((a >> BigInt(w - cnt)) & 1n) : 0;
      of = msb(r) ^ cf;
      break;
    }
    case SH_SHR: {
      r = a >> n;
      cf = cnt <= w ? Number((a >> (n - 1n)) & 1n) : 0;
      // OF: the original sign for a count of 1; undefined for larger counts, where
      // hardware gives the XOR of the result's top two bits (0) (measured on AMD Zen).
      of = msb(r ^ (r << 1n));
      break;
    }
    default: {
      const sa = BigInt.asIntN(w, a);
      const k = BigInt(Math.min(cnt, w));
      r = (sa >> k) & m;
      cf = Number((sa >> BigInt(Math.min(cnt - 1, w - 1))) & 1n);
      of = 0;
    }
  }
  let f = c.szp(r, size) | (cf ? F.CF : 0) | (of ? F.OF : 0);
  // AF is undefined for shifts with a non-zero count: AMD sets it, Intel clears it.
  if (c.f.vendor === "amd") f |= F.AF;
  c.setArith(f);
  return r;
}

const shift: Handler = (c, i) => {
  const d = opnd(i, 0);
  const size = sizeOf(d, i);
  const countOp = i.operands[1];
  const raw = countOp ? Number(c.read(countOp) & 0xffn) : 1;
  const cnt = raw & (size === 8 ? 0x3f : 0x1f);
  const op = SHIFT_OPS[i.mnemonic];
  if (cnt === 0) {
    // A masked count of 0 changes no flags; the destination is still accessed, and a
    // 32-bit register is still written (zero-extended), as measured on Intel and AMD.
    if (d.kind === "mem") c.resolve(d, true);
    else if (i.lock) throw ud();
    else if (size === 4) c.write(d, c.read(d));
    return;
  }
  rmwCtx = c;
  rmwSize = size;
  rmwOp = op;
  shCount = cnt;
  rmw(c, i, d, shiftOp);
};

let shdSrc = 0n;
let shdLeft = true;

/**
 * SHLD/SHRD of `a` (size rmwSize) with shdSrc by shCount (1-31 or 1-63).
 * 16-bit operands with counts over 16 (undefined in the SDM) shift a 48-bit
 * window: dest:src:dest on Intel (as QEMU models it), dest:src:src (SHLD) and
 * src:src:dest (SHRD) on AMD (measured on Zen).
 */
function shdOp(a: bigint): bigint {
  const c = rmwCtx;
  const size = rmwSize;
  const w = Number(BITS[size]);
  const m = MASK[size];
  const cnt = shCount;
  const b = shdSrc;
  const amd = c.f.vendor === "amd";
  let r: bigint;
  let cf: number;
  let of: number;
  if (shdLeft) {
    const x = size === 2 ? (a << 32n) | (b << 16n) | (amd ? b : a) : (a << BigInt(w)) | b;
    const xw = size === 2 ? 48 : 2 * w;
    r = (x >> BigInt(xw - w - cnt)) & m;
    cf = Number((x >> BigInt(xw - cnt)) & 1n);
    // OF is defined for a count of 1 (sign change); hardware gives MSB(result) XOR CF for all counts.
    of = Number((r >> BigInt(w - 1)) & 1n) ^ cf;
  } else {
    const x = size === 2 ? ((amd ? b : a) << 32n) | (b << 16n) | a : (b << BigInt(w)) | a;
    r = (x >> BigInt(cnt)) & m;
    cf = Number((x >> BigInt(cnt - 1)) & 1n);
    // OF: sign change for a count of 1; the XOR of the result's top two bits for all counts.
    of = Number(((r ^ (r << 1n)) >> BigInt(w - 1)) & 1n);
  }
  if (amd && size === 2 && cnt >= 16) {
    // AMD, 16-bit operand (measured): a count over 16 gives CF = 0 (and OF = 0 for
    // SHLD); SHLD by exactly 16 gives OF = CF.
    if (cnt > 16) cf = 0;
    if (shdLeft) of = cf;
  }
  let f = c.szp(r, size) | (cf ? F.CF : 0) | (of ? F.OF : 0);
  // AF is undefined: AMD sets it (measured), Intel clears it.
  if (amd) f |= F.AF;
  c.setArith(f);
  return r;
}

const shd: Handler = (c, i) => {
  const d = opnd(i, 0);
  const size = sizeOf(d, i);
  const src = c.read(opnd(i, 1));
  const cnt = Number(c.read(opnd(i, 2)) & 0xffn) & (size === 8 ? 0x3f : 0x1f);
  if (i.lock) throw ud();
  if (cnt === 0) {
    if (d.kind === "mem") c.resolve(d, true);
    else if (size === 4) c.write(d, c.read(d));
    return;
  }
  rmwCtx = c;
  rmwSize = size;
  shCount = cnt;
  shdSrc = src;
  shdLeft = i.mnemonic === "shld";
  rmw(c, i, d, shdOp);
};

// ---------------------------------------------------------------------------
// Bit test and scan (SDM Vol. 2A, BT/BTS/BTR/BTC, BSF/BSR; Vol. 2B, LZCNT, POPCNT, TZCNT)

let btBit = 0n;
let btKind = 0; // 0 bt, 1 bts, 2 btr, 3 btc

function btOp(a: bigint): bigint {
  const c = rmwCtx;
  const bit = (a >> btBit) & 1n;
  // CF = the bit; OF, SF, AF, PF undefined: unchanged on Intel, and ZF unchanged.
  c.flags = (c.flags & ~F.CF) | Number(bit);
  const mask = 1n << btBit;
  switch (btKind) {
    case 1:
      return a | mask;
    case 2:
      return a & ~mask;
    case 3:
      return a ^ mask;
    default:
      return a;
  }
}

const BT_KIND: Record<string, number> = { bt: 0, bts: 1, btr: 2, btc: 3 };

const bt: Handler = (c, i) => {
  const d = opnd(i, 0);
  const s = opnd(i, 1);
  const size = sizeOf(d, i);
  const kind = BT_KIND[i.mnemonic];
  rmwCtx = c;
  rmwSize = size;
  btKind = kind;
  const w = BITS[size];
  if (d.kind === "mem" && s.kind === "reg") {
    // A register bit offset reaches memory outside the operand: signed offset / width (SDM BT).
    const off = BigInt.asIntN(Number(w), c.read(s));
    const unit = off >= 0n ? off / w : -((-off + w - 1n) / w);
    btBit = off - unit * w;
    const ea = BigInt.asUintN(d.addrSize * 8, c.ea(d) + unit * BigInt(size));
    if (kind === 0) {
      if (i.lock) throw ud();
      btOp(c.readValue(c.resolveAt(d.seg, ea, size, false)));
      return;
    }
    const loc = c.resolveAt(d.seg, ea, size, true);
    if (i.lock) c.atomicRmw(loc, btOp);
    else c.writeValue(loc, btOp(c.readValue(loc)));
    return;
  }
  btBit = c.read(s) & (w - 1n);
  if (kind === 0) {
    if (i.lock) throw ud();
    btOp(c.read(d));
    return;
  }
  rmw(c, i, d, btOp);
};

/** The index of the lowest set bit of a non-zero value. */
function lowBit(v: bigint): number {
  let n = 0;
  let x = v;
  if ((x & 0xffffffffn) === 0n) {
    x >>= 32n;
    n = 32;
  }
  const lo = Number(x & 0xffffffffn);
  return n + (31 - Math.clz32(lo & -lo));
}

/** The index of the highest set bit of a non-zero value. */
function highBit(v: bigint): number {
  const hi = Number(v >> 32n);
  if (hi) return 63 - Math.clz32(hi);
  return 31 - Math.clz32(Number(v & 0xffffffffn));
}

const bitScan: Handler = (c, i) => {
  if (i.lock) throw ud();
  const d = opnd(i, 0);
  const s = opnd(i, 1);
  const size = sizeOf(d, i);
  const v = c.read(s) & MASK[size];
  const w = Number(BITS[size]);
  let mn = i.mnemonic;
  // Without BMI1 / LZCNT the F3 prefix is ignored: TZCNT runs as BSF, LZCNT as BSR.
  if (mn === "tzcnt" && !c.f.bmi1) mn = "bsf";
  if (mn === "lzcnt" && !c.f.lzcnt) mn = "bsr";
  switch (mn) {
    case "bsf":
    case "bsr": {
      // Source 0: ZF = 1 and the destination is unchanged (AMD documents it; Intel does it).
      // CF, OF, SF, AF, PF are undefined. AMD (measured on Zen): all 0 but PF, the parity
      // of the index (of 0 for a zero source). Intel: SF and PF of the index, CF = OF = AF = 0
      // (as Bochs models it; not measured here).
      if (v === 0n) {
        c.setArith(F.ZF | F.PF);
        return;
      }
      const r = BigInt(mn === "bsf" ? lowBit(v) : highBit(v));
      c.write(d, r);
      c.setArith(c.f.vendor === "amd" ? c.szp(r, size) & F.PF : c.szp(r, size) & ~F.ZF);
      return;
    }
    case "tzcnt":
    case "lzcnt": {
      const r = v === 0n ? w : mn === "tzcnt" ? lowBit(v) : w - 1 - highBit(v);
      c.write(d, BigInt(r));
      // CF = source was 0, ZF = result is 0; OF, SF, PF, AF undefined: SF, PF and AF
      // cleared and OF unchanged (measured on AMD Zen; assumed the same on Intel).
      c.flags = (c.flags & ~(ARITH & ~F.OF)) | (v === 0n ? F.CF : 0) | (r === 0 ? F.ZF : 0);
      return;
    }
    default: {
      // POPCNT: ZF = source was 0; OF, SF, AF, CF, PF cleared.
      let n = 0;
      for (let x = v; x; x &= x - 1n) n++;
      c.write(d, BigInt(n));
      c.setArith(v === 0n ? F.ZF : 0);
    }
  }
};

// ---------------------------------------------------------------------------
// Multiply and divide (SDM Vol. 2A, MUL, IMUL, DIV, IDIV)

/** Flags after MUL/IMUL: CF = OF = the result did not fit; SF/ZF/PF/AF undefined. */
function mulFlags(c: Ctx, lo: bigint, overflow: boolean, size: number): void {
  const cfof = overflow ? F.CF | F.OF : 0;
  if (c.f.vendor === "amd") {
    // AMD leaves SF, ZF, AF and PF unchanged (measured on Zen).
    c.flags = (c.flags & ~(F.CF | F.OF)) | cfof;
  } else {
    // Intel: SF, ZF, PF from the low half, AF cleared (as Bochs models it; not measured here).
    c.setArith(c.szp(lo, size) | cfof);
  }
}

const mul: Handler = (c, i) => {
  if (i.lock) throw ud();
  const ops = i.operands;
  const signed = i.mnemonic === "imul";
  if (ops.length >= 2) {
    // imul r, r/m (, imm): truncated to the destination size.
    const d = ops[0];
    const size = sizeOf(d, i);
    const w = Number(BITS[size]);
    const a = BigInt.asIntN(w, c.read(ops.length === 3 ? ops[1] : d));
    const b = BigInt.asIntN(w, c.read(ops.length === 3 ? ops[2] : ops[1]));
    const p = a * b;
    const r = BigInt.asUintN(w, p);
    mulFlags(c, r, BigInt.asIntN(w, p) !== p, size);
    c.write(d, r);
    return;
  }
  const s = opnd(i, 0);
  const size = sizeOf(s, i);
  const w = Number(BITS[size]);
  const b = c.read(s);
  const a = c.getReg(0, size);
  let p: bigint;
  let overflow: boolean;
  if (signed) {
    p = BigInt.asIntN(w, a) * BigInt.asIntN(w, b);
    overflow = BigInt.asIntN(w, p) !== p;
  } else {
    p = a * b;
    overflow = (p >> BigInt(w)) !== 0n;
  }
  p = BigInt.asUintN(2 * w, p);
  const lo = p & MASK[size];
  const hi = p >> BigInt(w);
  mulFlags(c, lo, overflow, size);
  if (size === 1) c.setReg(0, 2, p);
  else {
    c.setReg(0, size, lo);
    c.setReg(2, size, hi);
  }
};

const div: Handler = (c, i) => {
  if (i.lock) throw ud();
  const s = opnd(i, 0);
  const size = sizeOf(s, i);
  const w = Number(BITS[size]);
  const divisor = c.read(s);
  if (divisor === 0n) throw new Fault(VEC.DE);
  const dividend = size === 1
    ? c.getReg(0, 2)
    : (c.getReg(2, size) << BigInt(w)) | c.getReg(0, size);
  let q: bigint, r: bigint;
  if (i.mnemonic === "idiv") {
    const n = BigInt.asIntN(2 * w, dividend);
    const dv = BigInt.asIntN(w, divisor);
    q = n / dv; // truncates toward zero, as IDIV does
    r = n % dv;
    if (q !== BigInt.asIntN(w, q)) throw new Fault(VEC.DE);
  } else {
    q = dividend / divisor;
    r = dividend % divisor;
    if (q > MASK[size]) throw new Fault(VEC.DE);
  }
  // All six flags are undefined. AMD (measured on Zen): CF and OF unchanged, AF = 1,
  // SF = ZF = PF = 0. Intel: left unchanged (as Bochs models it; not measured here).
  if (c.f.vendor === "amd") c.flags = (c.flags & ~(F.SF | F.ZF | F.PF)) | F.AF;
  if (size === 1) {
    c.setReg(0, 2, (BigInt.asUintN(8, r) << 8n) | BigInt.asUintN(8, q));
  } else {
    c.setReg(0, size, BigInt.asUintN(w, q));
    c.setReg(2, size, BigInt.asUintN(w, r));
  }
};

// ---------------------------------------------------------------------------
// Moves and conversions

const mov: Handler = (c, i) => {
  if (i.lock) throw ud();
  const d = opnd(i, 0);
  const s = opnd(i, 1);
  // mov Sreg, r/m16 (8E) is dispatched to _exec_segment.ts by exec.ts.
  if (s.kind === "reg" && s.cls === "seg") {
    // mov r/m, Sreg: 16-bit selector; into a register of 32/64 bits it is zero-extended.
    const sel = BigInt(c.cpu.seg[s.index].selector & 0xffff);
    if (d.kind === "mem") c.writeValue(c.resolve(d, true, 2), sel);
    else c.write(d, sel);
    return;
  }
  if ((d.kind === "reg" && d.cls !== "gpr") || (s.kind === "reg" && s.cls !== "gpr")) {
    throw new Unsupported(i.text);
  }
  c.write(d, c.read(s) & MASK[sizeOf(d, i)]);
};

const movzx: Handler = (c, i) => {
  if (i.lock) throw ud();
  c.write(opnd(i, 0), c.read(opnd(i, 1)));
};

const movsx: Handler = (c, i) => {
  if (i.lock) throw ud();
  const s = opnd(i, 1);
  const d = opnd(i, 0);
  const v = BigInt.asIntN(sizeOf(s, i) * 8, c.read(s));
  c.write(d, BigInt.asUintN(sizeOf(d, i) * 8, v));
};

const lea: Handler = (c, i) => {
  if (i.lock) throw ud();
  const s = opnd(i, 1);
  if (s.kind !== "mem") throw ud();
  c.write(opnd(i, 0), c.ea(s));
};

const cmov: Handler = (c, i) => {
  if (i.lock) throw ud();
  const d = opnd(i, 0);
  // The source is read (and may fault) even when the condition is false; a 32-bit
  // destination is zero-extended either way (SDM CMOVcc).
  const v = c.read(opnd(i, 1));
  if (condition(i.opcode & 0xf, c.flags)) c.write(d, v);
  else if (d.kind === "reg" && d.size === 4) c.write(d, c.read(d));
};

const setcc: Handler = (c, i) => {
  if (i.lock) throw ud();
  c.write(opnd(i, 0), condition(i.opcode & 0xf, c.flags) ? 1n : 0n);
};

const convert: Handler = (c, i) => {
  switch (i.mnemonic) {
    case "cbw":
      c.setReg(0, 2, BigInt.asUintN(16, BigInt.asIntN(8, c.getReg(0, 1))));
      return;
    case "cwde":
      c.setReg(0, 4, BigInt.asUintN(32, BigInt.asIntN(16, c.getReg(0, 2))));
      return;
    case "cdqe":
      c.setReg(0, 8, BigInt.asUintN(64, BigInt.asIntN(32, c.getReg(0, 4))));
      return;
    case "cwd":
      c.setReg(2, 2, c.getReg(0, 2) & 0x8000n ? 0xffffn : 0n);
      return;
    case "cdq":
      c.setReg(2, 4, c.getReg(0, 4) & 0x80000000n ? 0xffffffffn : 0n);
      return;
    default: // cqo
      c.setReg(2, 8, c.getReg(0, 8) & (1n << 63n) ? MASK[8] : 0n);
  }
};

const bswap: Handler = (c, i) => {
  const d = opnd(i, 0);
  const size = sizeOf(d, i);
  const v = c.read(d);
  if (size === 2) {
    // BSWAP with a 16-bit operand is undefined; Intel and AMD both write 0.
    c.write(d, 0n);
    return;
  }
  let r = 0n;
  for (let k = 0; k < size; k++) r = (r << 8n) | ((v >> BigInt(8 * k)) & 0xffn);
  c.write(d, r);
};

const movbe: Handler = (c, i) => {
  if (!c.f.movbe) throw ud();
  const d = opnd(i, 0);
  const s = opnd(i, 1);
  const size = sizeOf(d, i);
  const v = c.read(s);
  let r = 0n;
  for (let k = 0; k < size; k++) r = (r << 8n) | ((v >> BigInt(8 * k)) & 0xffn);
  c.write(d, r);
};

// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), byte at a time.
const CRC32C = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let x = n;
    for (let k = 0; k < 8; k++) x = x & 1 ? (x >>> 1) ^ 0x82f63b78 : x >>> 1;
    t[n] = x >>> 0;
  }
  return t;
})();

const crc32: Handler = (c, i) => {
  if (!c.f.sse42) throw ud();
  const d = opnd(i, 0);
  const s = opnd(i, 1);
  const n = sizeOf(s, i);
  let crc = Number(c.getReg((d as { index: number }).index, 4));
  const v = c.read(s);
  for (let k = 0; k < n; k++) {
    crc = (CRC32C[(crc ^ Number((v >> BigInt(8 * k)) & 0xffn)) & 0xff] ^ (crc >>> 8)) >>> 0;
  }
  // The destination is 32 or 64 bits; the result is 32 bits zero-extended (SDM CRC32).
  c.write(d, BigInt(crc));
};

// ---------------------------------------------------------------------------
// Exchanges (SDM Vol. 2D, XCHG, XADD; Vol. 2A, CMPXCHG, CMPXCHG8B/16B)

const xchg: Handler = (c, i) => {
  const a = opnd(i, 0);
  const b = opnd(i, 1);
  const mem = a.kind === "mem" ? a : b.kind === "mem" ? b : null;
  if (!mem) {
    if (i.lock) throw ud();
    const va = c.read(a);
    const vb = c.read(b);
    // xchg eax, eax (90 without REX.B) is NOP; in 64-bit mode it does not zero-extend.
    if (a.kind === "reg" && b.kind === "reg" && a.index === b.index && i.opcode === 0x90) return;
    c.write(a, vb);
    c.write(b, va);
    return;
  }
  // With a memory operand XCHG is locked whether or not LOCK is present.
  const reg = mem === a ? b : a;
  const v = c.read(reg);
  const loc = c.resolve(mem, true);
  rmwB = v;
  const old = c.atomicRmw(loc, xchgOp);
  c.write(reg, old);
};

function xchgOp(_a: bigint): bigint {
  return rmwB;
}

function xaddOp(a: bigint): bigint {
  return add(rmwCtx, a, rmwB, 0n, rmwSize);
}

const xadd: Handler = (c, i) => {
  const d = opnd(i, 0);
  const s = opnd(i, 1);
  const size = sizeOf(d, i);
  rmwCtx = c;
  rmwSize = size;
  rmwB = c.read(s);
  if (d.kind === "mem") {
    const loc = c.resolve(d, true);
    const old = i.lock ? c.atomicRmw(loc, xaddOp) : c.readValue(loc);
    if (!i.lock) c.writeValue(loc, xaddOp(old));
    c.write(s, old);
    return;
  }
  if (i.lock) throw ud();
  const old = c.read(d);
  const r = xaddOp(old);
  c.write(s, old);
  c.write(d, r);
};

const cmpxchg: Handler = (c, i) => {
  const d = opnd(i, 0);
  const s = opnd(i, 1);
  const size = sizeOf(d, i);
  const acc = c.getReg(0, size);
  const src = c.read(s);
  if (d.kind === "mem") {
    const loc = c.resolve(d, true);
    let old: bigint;
    if (c.atomicOk(loc)) {
      // One compare-exchange; atomic with or without LOCK (harmless without).
      old = c.mem.cmpxchg(loc.gpa[0], size, acc, src);
    } else {
      old = c.readValue(loc);
      // The processor writes back the old value when the compare fails.
      c.writeValue(loc, old === acc ? src : old);
    }
    sub(c, acc, old, 0n, size);
    if (old !== acc) c.setReg(0, size, old);
    return;
  }
  if (i.lock) throw ud();
  const old = c.read(d);
  sub(c, acc, old, 0n, size);
  if (old === acc) c.write(d, src);
  // Otherwise only the accumulator is written (zero-extended); a 32-bit register
  // destination keeps its upper half (measured on AMD; Intel does the same).
  else c.setReg(0, size, old);
};

const cmpxchg8b16b: Handler = (c, i) => {
  const d = opnd(i, 0);
  if (d.kind !== "mem") throw ud();
  const wide = i.mnemonic === "cmpxchg16b" || (i.rex & 8) !== 0;
  if (wide && !c.f.cx16) throw ud();
  const half = wide ? 8 : 4;
  const hbits = BigInt(half * 8);
  // CMPXCHG16B needs a 16-byte aligned operand (#GP(0)); CMPXCHG8B has no alignment rule.
  const loc = c.resolve(d, true, 2 * half, wide ? 16 : 0);
  const expected = (c.getReg(2, half) << hbits) | c.getReg(0, half);
  const desired = (c.getReg(1, half) << hbits) | c.getReg(3, half);
  let old: bigint;
  if (c.atomicOk(loc)) {
    old = c.mem.cmpxchg(loc.gpa[0], 2 * half, expected, desired);
  } else {
    old = c.readValue(loc);
    c.writeValue(loc, old === expected ? desired : old);
  }
  if (old === expected) {
    c.flags |= F.ZF;
  } else {
    c.flags &= ~F.ZF;
    // EDX:EAX / RDX:RAX get the old value (written even with 32-bit halves in 64-bit mode).
    c.setReg(0, half, old & MASK[half]);
    c.setReg(2, half, old >> hbits);
  }
};

// ---------------------------------------------------------------------------
// Stack (SDM Vol. 2B, PUSH, POP, PUSHF, POPF)

const push: Handler = (c, i) => {
  const s = opnd(i, 0);
  if (s.kind === "reg" && s.cls === "seg") {
    // push Sreg: a 16-bit selector zero-extended to the operand size.
    c.push(BigInt(c.cpu.seg[s.index].selector & 0xffff), i.opSize);
    return;
  }
  const size = i.opSize;
  // The value is read before RSP changes (push rsp pushes the old value).
  const v = s.kind === "imm"
    ? BigInt.asUintN(size * 8, BigInt.asIntN(s.size * 8, s.value))
    : c.read(s);
  c.push(v & MASK[size], size);
};

/** pop r/m (pop Sreg is dispatched to _exec_segment.ts by exec.ts). */
const pop: Handler = (c, i) => {
  const d = opnd(i, 0);
  const size = i.opSize;
  const v = c.peek(size);
  const sp = c.stackPointer();
  c.setStackPointer(c.wrapStack(sp + BigInt(size)));
  // pop [rsp+x] computes its address after RSP was incremented; pop rsp loads the popped value.
  c.write(d, v);
};

/** The RFLAGS bits POPF may change, given CPL, IOPL and mode (SDM Vol. 2B, POPF Operation). */
function popfMask(c: Ctx, size: number): number {
  // Always: CF PF AF ZF SF TF DF OF NT AC ID (AC/ID only with 32/64-bit operands).
  let m = F.CF | F.PF | F.AF | F.ZF | F.SF | F.TF | F.DF | F.OF | F.NT;
  if (size >= 4) m |= F.AC | F.ID;
  const iopl = (c.flags >> 12) & 3;
  if (c.real || c.cpl === 0) m |= F.IOPL | F.IF;
  else if (c.cpl <= iopl) m |= F.IF;
  // VM, VIF, VIP and RF are never loaded by POPF (RF is cleared).
  return m;
}

const pushf: Handler = (c, i) => {
  if (c.v86 && ((c.flags >> 12) & 3) < 3) throw gp0(); // VME not emulated
  const size = i.opSize;
  // The image has VM and RF cleared (SDM PUSHF).
  const img = c.flags & ~(F.VM | F.RF);
  c.push(BigInt(img) & MASK[size], size);
};

const popf: Handler = (c, i) => {
  if (c.v86 && ((c.flags >> 12) & 3) < 3) throw gp0();
  const size = i.opSize;
  const v = Number(c.peek(size) & 0xffffffffn);
  c.setStackPointer(c.wrapStack(c.stackPointer() + BigInt(size)));
  const m = size === 2 ? popfMask(c, size) & 0xffff : popfMask(c, size);
  c.flags = (c.flags & ~m) | (v & m) | 2;
};

const leave: Handler = (c, i) => {
  // RSP = RBP, then pop RBP (sizes per the stack and operand size).
  const size = i.opSize;
  const bp = c.getReg(5, c.stackSize);
  const v = c.readValue(c.resolveAt(SEG.ss, bp, size, false));
  c.setStackPointer(c.wrapStack(bp + BigInt(size)));
  c.setReg(5, size, v);
};

/** enter imm16, imm8 (SDM Vol. 2A, ENTER): nesting levels 0-31. */
const enter: Handler = (c, i) => {
  const alloc = c.read(opnd(i, 0)) & 0xffffn;
  const level = Number(c.read(opnd(i, 1)) & 0x1fn);
  const size = i.opSize;
  c.push(c.getReg(5, size), size);
  const frame = c.stackPointer();
  if (level > 0) {
    let bp = c.getReg(5, c.stackSize);
    for (let k = 1; k < level; k++) {
      bp = c.wrapStack(bp - BigInt(size));
      c.push(c.readValue(c.resolveAt(SEG.ss, bp, size, false)), size);
    }
    c.push(frame, size);
  }
  // The new stack top is checked (written to) only as far as the processor does: not at all.
  c.setReg(5, size, frame);
  c.setStackPointer(c.wrapStack(c.stackPointer() - alloc));
};

/** xlat: AL = [seg:rBX + AL] (SDM Vol. 2D, XLAT). */
const xlat: Handler = (c, i) => {
  const as = i.addrSize;
  const off = (c.getReg(3, as) + c.getReg(0, 1)) & MASK[as];
  const seg = i.segOverride ?? SEG.ds;
  c.setReg(0, 1, c.readValue(c.resolveAt(seg, off, 1, false)));
};

// ---------------------------------------------------------------------------
// Flag instructions

const lahf: Handler = (c) => {
  if (c.mode === 64 && !c.f.lahf64) throw ud();
  const ah = (c.flags & (F.SF | F.ZF | F.AF | F.PF | F.CF)) | 2;
  c.setReg(4, 1, BigInt(ah), true);
};

const sahf: Handler = (c) => {
  if (c.mode === 64 && !c.f.lahf64) throw ud();
  const ah = Number(c.getReg(4, 1, true));
  const m = F.SF | F.ZF | F.AF | F.PF | F.CF;
  c.flags = (c.flags & ~m) | (ah & m);
};

const flagOp: Handler = (c, i) => {
  switch (i.mnemonic) {
    case "clc":
      c.flags &= ~F.CF;
      return;
    case "stc":
      c.flags |= F.CF;
      return;
    case "cmc":
      c.flags ^= F.CF;
      return;
    case "cld":
      c.flags &= ~F.DF;
      return;
    case "std":
      c.flags |= F.DF;
      return;
    case "cli":
    case "sti": {
      // IF may change if CPL <= IOPL (VME/PVI virtual interrupt flags are not emulated).
      const iopl = (c.flags >> 12) & 3;
      if (!c.real && c.cpl > iopl) throw gp0();
      if (i.mnemonic === "cli") c.flags &= ~F.IF;
      else {
        // STI with IF = 0 blocks maskable interrupts until the next instruction completes
        // (SDM Vol. 2B, STI; Vol. 3A, 6.8.3); with IF already 1 there is no shadow.
        if ((c.flags & F.IF) === 0) c.shadow = "sti";
        c.flags |= F.IF;
      }
      return;
    }
  }
};

// ---------------------------------------------------------------------------
// Near branches (SDM Vol. 2A, Jcc, JMP, CALL; Vol. 2B, RET, LOOP)

/** True when a 66h prefix is among the instruction's prefixes. */
function has66(i: Instruction): boolean {
  const b = i.bytes;
  for (let k = 0; k < b.length; k++) {
    const x = b[k];
    if (x === 0x66) return true;
    const prefix = x === 0x67 || x === 0xf0 || x === 0xf2 || x === 0xf3 || x === 0x26 ||
      x === 0x2e || x === 0x36 || x === 0x3e || x === 0x64 || x === 0x65 ||
      (i.mode === 64 && (x & 0xf0) === 0x40);
    if (!prefix) return false;
  }
  return false;
}

/**
 * The operand size of a near branch (jmp, call, ret, jcc, loop, jrcxz):
 * the instruction's outside 64-bit mode. In 64-bit mode it is 64 bits by
 * default, and the vendors differ on 66h (without REX.W):
 * - AMD (and the other vendors) honour it: 16 bits, for every form (rel8,
 *   rel16, r/m16, ret). The target is truncated to 16 bits, call pushes and
 *   ret pops 2 bytes (AMD APM Vol. 3, JMP (Near), Jcc, CALL (Near), RET
 *   (Near), LOOPcc, JrCXZ; measured on an EPYC (Zen) by oracle_test.ts).
 * - Intel ignores it: always 64 bits (SDM Vol. 2A, 2.2.1.7, "near branches"
 *   have a 64-bit default operand size; JMP and CALL: "In 64-bit mode ... the
 *   operand size is forced to 64 bits"). rel32 forms (E8, E9, 0F 80-8F) then
 *   keep their 32-bit displacement: exec.ts decodes them again for Intel.
 */
export function nearSize(c: Ctx, i: Instruction): 2 | 4 | 8 {
  if (c.mode !== 64) return i.opSize;
  if (c.f.vendor === "intel") return 8;
  return (i.rex & 8) === 0 && has66(i) ? 2 : 8;
}

/** A near branch's target at operand size `size` (16/32 bits: truncated), read but not checked. */
function nearTarget(c: Ctx, op: Operand, size: number): bigint {
  let t: bigint;
  if (op.kind === "rel") t = op.target;
  else if (op.kind === "reg" && op.cls === "gpr") t = c.getReg(op.index, size);
  else if (op.kind === "mem") t = c.readValue(c.resolve(op, false, size));
  else t = c.read(op);
  return size === 8 ? t : t & MASK[size];
}

/** #GP(0) for a target outside CS (its limit; in 64-bit mode, a non-canonical 64-bit one). */
function checkNear(c: Ctx, t: bigint, size: number): void {
  if (c.mode === 64) {
    if (size === 8 && !c.canonical(t)) throw gp0();
  } else if (t > BigInt(c.cpu.seg[SEG.cs].limit >>> 0)) {
    throw gp0();
  }
}

function branchTarget(c: Ctx, i: Instruction, op: Operand): bigint {
  const size = nearSize(c, i);
  const t = nearTarget(c, op, size);
  checkNear(c, t, size);
  return t;
}

const jcc: Handler = (c, i) => {
  if (condition(i.opcode & 0xf, c.flags)) c.rip = branchTarget(c, i, opnd(i, 0));
};

const jmp: Handler = (c, i) => {
  const op = opnd(i, 0);
  if (op.kind === "far" || (op.kind === "mem" && op.size > i.opSize)) throw new Unsupported(i.text);
  c.rip = branchTarget(c, i, op);
};

/**
 * call rel/r/m: when both the push and the target fault, the vendors differ.
 * Intel checks the target first (SDM Vol. 2A, CALL Operation: "IF tempRIP is
 * not canonical ... THEN #GP(0)" and the limit check come before
 * "Push(RIP)"); AMD pushes first (measured on an EPYC (Zen): a non-canonical
 * target with a read-only stack gives #PF(7) for the push, not #GP(0)). The
 * segment-limit check outside 64-bit mode is ordered the same way on AMD
 * (not measured).
 */
const call: Handler = (c, i) => {
  const op = opnd(i, 0);
  if (op.kind === "far" || (op.kind === "mem" && op.size > i.opSize)) throw new Unsupported(i.text);
  const size = nearSize(c, i);
  const t = nearTarget(c, op, size);
  const intel = c.f.vendor === "intel";
  if (intel) checkNear(c, t, size);
  c.push(c.nextRip & MASK[size], size);
  if (!intel) checkNear(c, t, size);
  c.rip = t;
};

/** ret [imm16]: pops the target at the near-branch operand size; #GP(0) for a target outside CS. */
const ret: Handler = (c, i) => {
  const size = nearSize(c, i);
  let t = c.peek(size);
  const extra = i.operands[0]?.kind === "imm" ? (i.operands[0] as { value: bigint }).value : 0n;
  if (size !== 8) t &= MASK[size];
  checkNear(c, t, size);
  c.setStackPointer(c.wrapStack(c.stackPointer() + BigInt(size) + extra));
  c.rip = t;
};

const loop: Handler = (c, i) => {
  const as = i.addrSize;
  const cnt = c.getReg(1, as);
  let take: boolean;
  if (i.mnemonic === "jrcxz" || i.mnemonic === "jecxz" || i.mnemonic === "jcxz") {
    take = cnt === 0n;
  } else {
    const n = (cnt - 1n) & MASK[as];
    c.setReg(1, as, n);
    take = n !== 0n;
    if (i.mnemonic === "loope" || i.mnemonic === "loopz") take &&= (c.flags & F.ZF) !== 0;
    if (i.mnemonic === "loopne" || i.mnemonic === "loopnz") take &&= (c.flags & F.ZF) === 0;
  }
  if (take) c.rip = branchTarget(c, i, opnd(i, 0));
};

const nop: Handler = () => {};

/** Checks a memory operand of a hint instruction translates (clflush faults like a read). */
const memHint: Handler = (c, i) => {
  const m = i.operands.find((o): o is MemOperand => o.kind === "mem");
  if (m) c.resolve(m, false, 1);
};

// ---------------------------------------------------------------------------
// The table

/** Handlers of this module by mnemonic. */
export const ALU_HANDLERS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  ["add", binary(ALU_ADD)],
  ["or", binary(ALU_OR)],
  ["adc", binary(ALU_ADC)],
  ["sbb", binary(ALU_SBB)],
  ["and", binary(ALU_AND)],
  ["sub", binary(ALU_SUB)],
  ["xor", binary(ALU_XOR)],
  ["cmp", binary(ALU_CMP)],
  ["test", test],
  ["inc", unary(rmwInc)],
  ["dec", unary(rmwDec)],
  ["neg", unary(rmwNeg)],
  ["not", unary(rmwNot)],
  ...Object.keys(SHIFT_OPS).map((k): [string, Handler] => [k, shift]),
  ["shld", shd],
  ["shrd", shd],
  ["bt", bt],
  ["bts", bt],
  ["btr", bt],
  ["btc", bt],
  ["bsf", bitScan],
  ["bsr", bitScan],
  ["tzcnt", bitScan],
  ["lzcnt", bitScan],
  ["popcnt", bitScan],
  ["mul", mul],
  ["imul", mul],
  ["div", div],
  ["idiv", div],
  ["mov", mov],
  ["movabs", mov],
  ["movzx", movzx],
  ["movsx", movsx],
  ["movsxd", movsx],
  ["lea", lea],
  ...[
    "o",
    "no",
    "b",
    "ae",
    "e",
    "ne",
    "be",
    "a",
    "s",
    "ns",
    "p",
    "np",
    "l",
    "ge",
    "le",
    "g",
    "c",
    "nc",
    "nae",
    "nb",
    "z",
    "nz",
    "na",
    "nbe",
    "pe",
    "po",
    "nge",
    "nl",
    "ng",
    "nle",
  ]
    .flatMap((
      cc,
    ): [string, Handler][] => [[`cmov${cc}`, cmov], [`set${cc}`, setcc], [`j${cc}`, jcc]]),
  ["cbw", convert],
  ["cwde", convert],
  ["cdqe", convert],
  ["cwd", convert],
  ["cdq", convert],
  ["cqo", convert],
  ["bswap", bswap],
  ["movbe", movbe],
  ["crc32", crc32],
  ["xchg", xchg],
  ["xadd", xadd],
  ["cmpxchg", cmpxchg],
  ["cmpxchg8b", cmpxchg8b16b],
  ["cmpxchg16b", cmpxchg8b16b],
  ["push", push],
  ["pop", pop],
  ["pushf", pushf],
  ["popf", popf],
  ["leave", leave],
  ["enter", enter],
  ["xlat", xlat],
  ["lahf", lahf],
  ["sahf", sahf],
  ["clc", flagOp],
  ["stc", flagOp],
  ["cmc", flagOp],
  ["cld", flagOp],
  ["std", flagOp],
  ["cli", flagOp],
  ["sti", flagOp],
  ["jmp", jmp],
  ["call", call],
  ["ret", ret],
  ["loop", loop],
  ["loope", loop],
  ["loopz", loop],
  ["loopne", loop],
  ["loopnz", loop],
  ["jrcxz", loop],
  ["jecxz", loop],
  ["jcxz", loop],
  ["nop", nop],
  ["endbr64", nop],
  ["endbr32", nop],
  ["pause", nop],
  ["lfence", nop],
  ["mfence", nop],
  ["sfence", nop],
  ["serialize", nop],
  // Prefetches never fault (SDM PREFETCHh): no translation at all.
  ["prefetcht0", nop],
  ["prefetcht1", nop],
  ["prefetcht2", nop],
  ["prefetchnta", nop],
  ["prefetchw", nop],
  ["prefetch", nop],
  ["prefetchwt1", nop],
  ["clflush", memHint],
  ["clflushopt", memHint],
  ["clwb", memHint],
]);

/**
 * SSE/SSE2 data movement and integer SIMD instructions, their MMX and
 * VEX-encoded (AVX/AVX2) forms where the same code covers them, MXCSR
 * access, and x87 control instructions (fninit, fnstcw, fldcw, fnstsw,
 * fnclex, fwait, emms). SDM Vol. 2 instruction pages; Vol. 1, chapters 9-11
 * (MMX, SSE, SSE2) and 8.1 (x87 state); exception rules from Vol. 2, 2.5
 * ("Exceptions Type 4/5") and Vol. 3A, 13.2.
 *
 * The registers live in the XSAVE-format area `cpu.extended()`: FCW at 0,
 * FSW at 2, abridged FTW at 4, MXCSR at 24, MXCSR_MASK at 28, ST/MM regs at
 * 32 + 16 i, XMM at 160 + 16 i, the upper halves of YMM in state component 2.
 * Changing a component sets its XSTATE_BV bit, so that KVM_SET_XSAVE loads
 * it rather than initializing it.
 *
 * Private module of exec.ts.
 *
 * @module
 */

import type { Handler } from "./_exec_alu.ts";
import { component, CR0, CR4, type Ctx, Fault, gp0, ud, Unsupported, VEC } from "./_exec_ctx.ts";
import type { Instruction, Operand, RegOperand } from "./types.ts";

// Offsets in the legacy region of the XSAVE area (SDM Vol. 1, Table 13-1).
const FCW = 0, FSW = 2, FTW = 4, FOP = 6, FIP = 8, FDP = 16, MXCSR = 24, MXCSR_MASK = 28;
const ST0 = 32, XMM0 = 160;

/** Default MXCSR_MASK when the area says 0 (SDM Vol. 1, 11.6.6). */
const DEFAULT_MXCSR_MASK = 0xffbf;

function view(x: Uint8Array): DataView {
  return new DataView(x.buffer, x.byteOffset, x.byteLength);
}

// ---------------------------------------------------------------------------
// Exception checks

/** #NM for an x87 instruction (CR0.EM or CR0.TS), SDM Vol. 3A, 2.5. */
function x87Check(c: Ctx): void {
  if ((c.cpu.cr0 & (CR0.EM | CR0.TS)) !== 0n) throw new Fault(VEC.NM);
}

/** FWAIT: #NM when CR0.TS and CR0.MP; #MF when an unmasked x87 exception is pending (FSW.ES). */
function fwaitCheck(c: Ctx): void {
  const cr0 = c.cpu.cr0;
  if ((cr0 & CR0.TS) !== 0n && (cr0 & CR0.MP) !== 0n) throw new Fault(VEC.NM);
  if (c.ext()[FSW] & 0x80) throw new Fault(VEC.MF);
}

/**
 * SSE and AVX: #UD without CR4.OSFXSR or with CR0.EM (legacy encodings), or
 * without CR4.OSXSAVE and XCR0 SSE|AVX (VEX encodings); then #NM for CR0.TS.
 */
export function sseCheck(c: Ctx, i: Instruction): void {
  const cpu = c.cpu;
  if (i.vex) {
    if ((cpu.cr4 & CR4.OSXSAVE) === 0n || (cpu.xcr0 & 6n) !== 6n) throw ud();
    if (i.vex.kind !== "vex2" && i.vex.kind !== "vex3") {
      throw new Unsupported(`${i.text}: EVEX/XOP`);
    }
  } else if ((cpu.cr0 & CR0.EM) !== 0n || (cpu.cr4 & CR4.OSFXSR) === 0n) {
    throw ud();
  }
  if ((cpu.cr0 & CR0.TS) !== 0n) throw new Fault(VEC.NM);
}

/** MMX: #UD with CR0.EM, #NM with CR0.TS, #MF with a pending x87 exception. */
function mmxCheck(c: Ctx): void {
  const cr0 = c.cpu.cr0;
  if ((cr0 & CR0.EM) !== 0n) throw ud();
  if ((cr0 & CR0.TS) !== 0n) throw new Fault(VEC.NM);
  if (c.ext()[FSW] & 0x80) throw new Fault(VEC.MF);
}

function usesMmx(i: Instruction): boolean {
  for (const o of i.operands) if (o.kind === "reg" && o.cls === "mmx") return true;
  return false;
}

function check(c: Ctx, i: Instruction): void {
  if (usesMmx(i)) {
    // movq2dq/movdq2q are SSE2 instructions touching MMX state: both checks apply.
    if (i.mandatory === 0xf2 || i.mandatory === 0xf3) sseCheck(c, i);
    mmxCheck(c);
  } else {
    sseCheck(c, i);
  }
}

// ---------------------------------------------------------------------------
// Vector operands

/** Alignment a legacy-SSE 16-byte memory operand needs: 16, or none with AMD's MXCSR.MM (bit 17). */
function legacyAlign(c: Ctx, n: number): number {
  if (n !== 16) return 0;
  if (c.f.vendor === "amd" && (view(c.ext()).getUint32(MXCSR, true) & (1 << 17))) return 0;
  return 16;
}

function ymmHiOffset(c: Ctx): number {
  return component(c.cpu, c.f, 2).offset;
}

/** Reads `n` bytes of a register or memory operand (a copy). `align`: required alignment. */
function readVec(c: Ctx, op: Operand, n: number, align = 0): Uint8Array {
  const out = new Uint8Array(n);
  if (op.kind === "mem") {
    c.readBytes(c.resolve(op, false, n, align), out);
    return out;
  }
  if (op.kind !== "reg") throw new Unsupported(`vector operand ${op.kind}`);
  const x = c.ext();
  switch (op.cls) {
    case "xmm":
    case "ymm": {
      const lo = XMM0 + 16 * op.index;
      out.set(x.subarray(lo, lo + Math.min(n, 16)));
      if (n > 16) {
        const hi = ymmHiOffset(c) + 16 * op.index;
        if (x[512] & 4) out.set(x.subarray(hi, hi + 16), 16);
      }
      return out;
    }
    case "mmx":
      out.set(x.subarray(ST0 + 16 * op.index, ST0 + 16 * op.index + n));
      return out;
    case "gpr": {
      let v = c.getReg(op.index, op.size, op.high8);
      for (let k = 0; k < Math.min(n, op.size); k++) {
        out[k] = Number(v & 0xffn);
        v >>= 8n;
      }
      return out;
    }
    default:
      throw new Unsupported(`${op.cls} register`);
  }
}

/**
 * Writes an XMM/YMM register: `data` (16 or 32 bytes) at its low end. A VEX
 * encoding zeroes the bits above (up to the widest enabled vector); a legacy
 * SSE encoding leaves bits 255:128 alone.
 */
function writeXmm(c: Ctx, index: number, data: Uint8Array, vex: boolean): void {
  const x = c.ext();
  const lo = XMM0 + 16 * index;
  x.set(data.subarray(0, 16), lo);
  let touched = 2;
  if (data.length > 16 || vex) {
    const hi = ymmHiOffset(c) + 16 * index;
    if (data.length > 16) {
      x.set(data.subarray(16, 32), hi);
      touched |= 4;
    } else if (x[512] & 4) {
      x.fill(0, hi, hi + 16);
    }
    // AVX-512 upper halves of ZMM0-15 (component 6) are zeroed by VEX encodings too.
    if ((c.cpu.xcr0 & 0x40n) !== 0n && (x[512] & 0x40)) {
      const z = component(c.cpu, c.f, 6).offset + 32 * index;
      if (index < 16 && z + 32 <= x.length) x.fill(0, z, z + 32);
    }
  }
  c.touchExt(touched);
}

/** Writes MMX register `index` (8 bytes); MMX writes set TOP = 0, all tags valid, exponent all ones. */
function writeMmx(c: Ctx, index: number, data: Uint8Array): void {
  const x = c.ext();
  const o = ST0 + 16 * index;
  x.set(data.subarray(0, 8), o);
  x[o + 8] = 0xff;
  x[o + 9] = 0xff;
  mmxTransition(c);
}

/** The FPU state change every MMX instruction makes: TOP = 0, abridged FTW = all valid. */
function mmxTransition(c: Ctx): void {
  const x = c.ext();
  x[FSW + 1] &= ~0x38; // TOP (bits 13:11)
  x[FTW] = 0xff;
  c.touchExt(1);
}

/** Writes a vector result to the destination operand: a register or memory (held for commit). */
function writeVec(c: Ctx, i: Instruction, op: Operand, data: Uint8Array, align = 0): void {
  if (op.kind === "mem") {
    c.writeBytes(c.resolve(op, true, data.length, align), data);
    if (usesMmx(i)) mmxTransition(c);
    return;
  }
  if (op.kind !== "reg") throw new Unsupported(i.text);
  switch (op.cls) {
    case "xmm":
    case "ymm":
      writeXmm(c, op.index, data, i.vex !== null);
      return;
    case "mmx":
      writeMmx(c, op.index, data);
      return;
    case "gpr": {
      let v = 0n;
      for (let k = Math.min(op.size, data.length) - 1; k >= 0; k--) v = (v << 8n) | BigInt(data[k]);
      c.setReg(op.index, op.size, v, op.high8);
      if (usesMmx(i)) mmxTransition(c);
      return;
    }
    default:
      throw new Unsupported(i.text);
  }
}

function opnd(i: Instruction, n: number): Operand {
  const o = i.operands[n];
  if (!o) throw new Unsupported(`${i.text}: missing operand ${n}`);
  return o;
}

function width(op: Operand): number {
  return op.kind === "reg" || op.kind === "mem" ? op.size : 0;
}

// ---------------------------------------------------------------------------
// Moves

/**
 * Full-width moves: movdqa/movdqu/movaps/movups/movapd/movupd/lddqu/movntdq/
 * movntps/movntpd/movntdqa and their VEX forms, MMX movq mm, mm/m64.
 */
function move(aligned: boolean): Handler {
  return (c, i) => {
    check(c, i);
    const d = opnd(i, 0);
    const s = opnd(i, 1);
    const n = Math.max(width(d), width(s)) === 8 ? 8 : width(d.kind === "reg" ? d : s);
    // Aligned forms: 16/32-byte alignment (VEX included); legacy SSE m128 always 16.
    const align = aligned ? n : i.vex || n !== 16 ? 0 : 0;
    const data = readVec(c, s, n, s.kind === "mem" ? align : 0);
    writeVec(c, i, d, data, d.kind === "mem" ? align : 0);
  };
}

/** movd/movq between XMM/MMX and r/m, and movq xmm, xmm/m64 / movq xmm/m64, xmm. */
const movdq: Handler = (c, i) => {
  check(c, i);
  const d = opnd(i, 0);
  const s = opnd(i, 1);
  const toVec = d.kind === "reg" && (d.cls === "xmm" || d.cls === "mmx");
  // Bytes moved: the GPR/memory side's size, or 8 for xmm<->xmm movq.
  const n = i.mnemonic.endsWith("d") ? 4 : 8;
  const data = readVec(c, s, n);
  if (toVec && d.kind === "reg") {
    if (d.cls === "xmm") {
      const full = new Uint8Array(16); // the rest of the register is zeroed
      full.set(data);
      writeXmm(c, d.index, full, i.vex !== null);
    } else {
      const full = new Uint8Array(8);
      full.set(data);
      writeMmx(c, d.index, full);
    }
    return;
  }
  writeVec(c, i, d, data);
};

/** movss/movsd (SSE scalar moves; not the string movsd): a load zeroes the rest, reg-reg merges. */
function scalarMove(n: number): Handler {
  return (c, i) => {
    check(c, i);
    const ops = i.operands;
    const d = opnd(i, 0);
    if (d.kind === "mem") {
      writeVec(c, i, d, readVec(c, opnd(i, ops.length - 1), n));
      return;
    }
    if (d.kind !== "reg") throw new Unsupported(i.text);
    const s = opnd(i, ops.length - 1);
    let out: Uint8Array;
    if (s.kind === "mem") {
      out = new Uint8Array(16);
      out.set(readVec(c, s, n));
    } else {
      // Register form: the low element from the source; the rest from the destination
      // (VEX: from the first source, vvvv).
      out = readVec(c, ops.length === 3 ? ops[1] : d, 16);
      out.set(readVec(c, s, n));
    }
    writeXmm(c, d.index, out, i.vex !== null);
  };
}

/** movlps/movlpd/movhps/movhpd (memory forms) and movhlps/movlhps. */
function halfMove(high: boolean): Handler {
  return (c, i) => {
    check(c, i);
    const ops = i.operands;
    const d = opnd(i, 0);
    const s = opnd(i, ops.length - 1);
    if (d.kind === "mem") {
      // Store the low or high 64 bits.
      const v = readVec(c, s, 16);
      writeVec(c, i, d, high ? v.slice(8, 16) : v.slice(0, 8));
      return;
    }
    if (d.kind !== "reg") throw new Unsupported(i.text);
    const base = readVec(c, ops.length === 3 ? ops[1] : d, 16);
    let q: Uint8Array;
    if (i.mnemonic === "movhlps" || i.mnemonic === "vmovhlps") q = readVec(c, s, 16).slice(8, 16);
    else if (i.mnemonic === "movlhps" || i.mnemonic === "vmovlhps") {
      q = readVec(c, s, 16).slice(0, 8);
    } else q = readVec(c, s, 8);
    base.set(q, high ? 8 : 0);
    writeXmm(c, d.index, base, i.vex !== null);
  };
}

const movq2dq: Handler = (c, i) => {
  check(c, i);
  const d = opnd(i, 0) as RegOperand;
  const data = readVec(c, opnd(i, 1), 8);
  if (d.cls === "xmm") {
    const full = new Uint8Array(16);
    full.set(data);
    writeXmm(c, d.index, full, false);
    mmxTransition(c);
  } else {
    writeMmx(c, d.index, data);
  }
};

/** movnti: a GPR store (no SSE checks; SSE2 is always there in long mode). */
const movnti: Handler = (c, i) => {
  const d = opnd(i, 0);
  if (d.kind !== "mem") throw ud();
  c.write(d, c.read(opnd(i, 1)));
};

// ---------------------------------------------------------------------------
// Integer SIMD operations

/** A lane operation: combines `a` (destination/first source) and `b` into `a`. */
type LaneOp = (a: Uint8Array, b: Uint8Array, n: number) => void;

/**
 * dst = op(dst, src) (legacy) or dst = op(src1, src2) (VEX), for MMX (8),
 * XMM (16) or YMM (32 bytes). Legacy m128 sources must be 16-byte aligned.
 */
function laneOp(op: LaneOp): Handler {
  return (c, i) => {
    check(c, i);
    const ops = i.operands;
    const d = opnd(i, 0);
    const n = width(d);
    const s2 = opnd(i, ops.length === 3 && ops[2].kind !== "imm" ? 2 : 1);
    const s1 = ops.length === 3 && ops[2].kind !== "imm" ? ops[1] : d;
    const b = readVec(c, s2, n, s2.kind === "mem" && !i.vex ? legacyAlign(c, n) : 0);
    const a = readVec(c, s1, n);
    op(a, b, n);
    writeVec(c, i, d, a);
  };
}

const xorOp: LaneOp = (a, b, n) => {
  for (let k = 0; k < n; k++) a[k] ^= b[k];
};
const orOp: LaneOp = (a, b, n) => {
  for (let k = 0; k < n; k++) a[k] |= b[k];
};
const andOp: LaneOp = (a, b, n) => {
  for (let k = 0; k < n; k++) a[k] &= b[k];
};
const andnOp: LaneOp = (a, b, n) => {
  for (let k = 0; k < n; k++) a[k] = ~a[k] & b[k];
};

/** Per-lane add/sub with wraparound, lanes of `w` bytes. */
function addSub(w: number, sub: boolean): LaneOp {
  return (a, b, n) => {
    const va = view(a), vb = view(b);
    for (let k = 0; k < n; k += w) {
      switch (w) {
        case 1:
          a[k] = sub ? a[k] - b[k] : a[k] + b[k];
          break;
        case 2:
          va.setUint16(
            k,
            sub
              ? va.getUint16(k, true) - vb.getUint16(k, true)
              : va.getUint16(k, true) + vb.getUint16(k, true),
            true,
          );
          break;
        case 4:
          va.setUint32(
            k,
            sub
              ? va.getUint32(k, true) - vb.getUint32(k, true)
              : va.getUint32(k, true) + vb.getUint32(k, true),
            true,
          );
          break;
        default:
          va.setBigUint64(
            k,
            BigInt.asUintN(
              64,
              sub
                ? va.getBigUint64(k, true) - vb.getBigUint64(k, true)
                : va.getBigUint64(k, true) + vb.getBigUint64(k, true),
            ),
            true,
          );
      }
    }
  };
}

/** Unsigned saturating add/sub (paddusb/w, psubusb/w) or signed (paddsb/w, psubsb/w). */
function satAddSub(w: number, sub: boolean, signed: boolean): LaneOp {
  const max = signed ? (w === 1 ? 127 : 32767) : (w === 1 ? 255 : 65535);
  const min = signed ? -max - 1 : 0;
  return (a, b, n) => {
    const va = view(a), vb = view(b);
    for (let k = 0; k < n; k += w) {
      const x = w === 1
        ? (signed ? va.getInt8(k) : a[k])
        : signed
        ? va.getInt16(k, true)
        : va.getUint16(k, true);
      const y = w === 1
        ? (signed ? vb.getInt8(k) : b[k])
        : signed
        ? vb.getInt16(k, true)
        : vb.getUint16(k, true);
      const r = Math.min(max, Math.max(min, sub ? x - y : x + y));
      if (w === 1) a[k] = r & 0xff;
      else va.setUint16(k, r & 0xffff, true);
    }
  };
}

/** pcmpeq/pcmpgt (signed) b/w/d/q: all ones where true. */
function compare(w: number, gt: boolean): LaneOp {
  return (a, b, n) => {
    const va = view(a), vb = view(b);
    for (let k = 0; k < n; k += w) {
      let t: boolean;
      switch (w) {
        case 1:
          t = gt ? va.getInt8(k) > vb.getInt8(k) : a[k] === b[k];
          break;
        case 2:
          t = gt
            ? va.getInt16(k, true) > vb.getInt16(k, true)
            : va.getUint16(k, true) === vb.getUint16(k, true);
          break;
        case 4:
          t = gt
            ? va.getInt32(k, true) > vb.getInt32(k, true)
            : va.getUint32(k, true) === vb.getUint32(k, true);
          break;
        default:
          t = gt
            ? va.getBigInt64(k, true) > vb.getBigInt64(k, true)
            : va.getBigUint64(k, true) === vb.getBigUint64(k, true);
      }
      a.fill(t ? 0xff : 0, k, k + w);
    }
  };
}

/** Unsigned byte min/max (pminub/pmaxub), signed word min/max (pminsw/pmaxsw). */
function minMax(w: number, max: boolean): LaneOp {
  return (a, b, n) => {
    const va = view(a), vb = view(b);
    for (let k = 0; k < n; k += w) {
      if (w === 1) a[k] = max ? Math.max(a[k], b[k]) : Math.min(a[k], b[k]);
      else {
        const x = va.getInt16(k, true), y = vb.getInt16(k, true);
        va.setInt16(k, max ? Math.max(x, y) : Math.min(x, y), true);
      }
    }
  };
}

/** punpckl/h bw/wd/dq/qdq: interleave the low or high halves (per 128-bit lane). */
function unpack(w: number, high: boolean): LaneOp {
  return (a, b, n) => {
    const lane = Math.min(n, 16);
    for (let base = 0; base < n; base += lane) {
      const src = high ? base + lane / 2 : base;
      const ra = a.slice(src, src + lane / 2);
      const rb = b.slice(src, src + lane / 2);
      for (let k = 0, o = base; k < lane / 2; k += w, o += 2 * w) {
        a.set(ra.subarray(k, k + w), o);
        a.set(rb.subarray(k, k + w), o + w);
      }
    }
  };
}

/** pack: packsswb, packuswb, packssdw (saturate the wider lanes of a and b). */
function pack(w: number, signed: boolean): LaneOp {
  return (a, b, n) => {
    const lane = Math.min(n, 16);
    const out = new Uint8Array(n);
    const ov = view(out);
    for (let base = 0; base < n; base += lane) {
      let o = base;
      for (const src of [a, b]) {
        const sv = view(src);
        for (let k = base; k < base + lane; k += w) {
          const x = w === 2 ? sv.getInt16(k, true) : sv.getInt32(k, true);
          if (w === 2) {
            const r = signed ? Math.min(127, Math.max(-128, x)) : Math.min(255, Math.max(0, x));
            out[o++] = r & 0xff;
          } else {
            const r = signed
              ? Math.min(32767, Math.max(-32768, x))
              : Math.min(65535, Math.max(0, x));
            ov.setUint16(o, r & 0xffff, true);
            o += 2;
          }
        }
      }
    }
    a.set(out);
  };
}

/** pmullw, pmulhw, pmulhuw, pmuludq, pmaddwd. */
function multiply(kind: "lw" | "hw" | "huw" | "udq" | "addwd"): LaneOp {
  return (a, b, n) => {
    const va = view(a), vb = view(b);
    if (kind === "udq") {
      for (let k = 0; k < n; k += 8) {
        const p = BigInt(va.getUint32(k, true)) * BigInt(vb.getUint32(k, true));
        va.setBigUint64(k, p, true);
      }
      return;
    }
    if (kind === "addwd") {
      for (let k = 0; k < n; k += 4) {
        const p = va.getInt16(k, true) * vb.getInt16(k, true) +
          va.getInt16(k + 2, true) * vb.getInt16(k + 2, true);
        va.setInt32(k, p | 0, true);
      }
      return;
    }
    for (let k = 0; k < n; k += 2) {
      const x = kind === "huw" ? va.getUint16(k, true) : va.getInt16(k, true);
      const y = kind === "huw" ? vb.getUint16(k, true) : vb.getInt16(k, true);
      const p = x * y;
      va.setUint16(k, (kind === "lw" ? p : Math.floor(p / 65536)) & 0xffff, true);
    }
  };
}

/** Shift by a count from an xmm/m128 (low 64 bits) or an immediate. */
function shiftLanes(w: number, kind: "l" | "r" | "a"): Handler {
  return (c, i) => {
    check(c, i);
    const ops = i.operands;
    const d = opnd(i, 0);
    const n = width(d);
    const last = ops[ops.length - 1];
    let count: bigint;
    if (last.kind === "imm") count = last.value & 0xffn;
    else {
      const v = readVec(
        c,
        last,
        Math.min(width(last) || 16, 16),
        last.kind === "mem" && !i.vex ? legacyAlign(c, Math.min(n, 16)) : 0,
      );
      count = view(v).getBigUint64(0, true);
    }
    const src = ops.length === 3 ? ops[1] : d;
    const a = readVec(c, src, n);
    const va = view(a);
    const bits = BigInt(w * 8);
    for (let k = 0; k < n; k += w) {
      let x = w === 2
        ? BigInt(va.getUint16(k, true))
        : w === 4
        ? BigInt(va.getUint32(k, true))
        : va.getBigUint64(k, true);
      if (kind === "l") x = count >= bits ? 0n : BigInt.asUintN(w * 8, x << count);
      else if (kind === "r") x = count >= bits ? 0n : x >> count;
      else {x = BigInt.asUintN(
          w * 8,
          BigInt.asIntN(w * 8, x) >> (count >= bits ? bits - 1n : count),
        );}
      if (w === 2) va.setUint16(k, Number(x), true);
      else if (w === 4) va.setUint32(k, Number(x), true);
      else va.setBigUint64(k, x, true);
    }
    writeVec(c, i, d, a);
  };
}

/** pslldq/psrldq: byte shifts of each 128-bit lane by an immediate. */
function byteShift(left: boolean): Handler {
  return (c, i) => {
    check(c, i);
    const ops = i.operands;
    const d = opnd(i, 0);
    const n = width(d);
    const cnt = Math.min(16, Number((ops[ops.length - 1] as { value: bigint }).value & 0xffn));
    const a = readVec(c, ops.length === 3 ? ops[1] : d, n);
    const out = new Uint8Array(n);
    for (let base = 0; base < n; base += 16) {
      for (let k = 0; k < 16; k++) {
        const from = left ? k - cnt : k + cnt;
        out[base + k] = from >= 0 && from < 16 ? a[base + from] : 0;
      }
    }
    writeVec(c, i, d, out);
  };
}

/** pshufd/pshuflw/pshufhw/pshufw with an immediate. */
function shuffle(kind: "d" | "lw" | "hw" | "w"): Handler {
  return (c, i) => {
    check(c, i);
    const d = opnd(i, 0);
    const s = opnd(i, 1);
    const imm = Number((opnd(i, 2) as { value: bigint }).value & 0xffn);
    const n = width(d);
    const src = readVec(c, s, n, s.kind === "mem" && !i.vex ? legacyAlign(c, n) : 0);
    const out = src.slice();
    for (let base = 0; base < n; base += Math.min(n, 16)) {
      for (let k = 0; k < 4; k++) {
        const sel = (imm >> (2 * k)) & 3;
        if (kind === "d") out.set(src.subarray(base + 4 * sel, base + 4 * sel + 4), base + 4 * k);
        else {
          const off = kind === "hw" ? 8 : 0;
          out.set(src.subarray(base + off + 2 * sel, base + off + 2 * sel + 2), base + off + 2 * k);
        }
      }
    }
    writeVec(c, i, d, out);
  };
}

/** shufps/shufpd with an immediate. */
function shufp(w: number): Handler {
  return (c, i) => {
    check(c, i);
    const ops = i.operands;
    const d = opnd(i, 0);
    const n = width(d);
    const s2 = ops.length === 4 ? ops[2] : ops[1];
    const s1 = ops.length === 4 ? ops[1] : d;
    const imm = Number((ops[ops.length - 1] as { value: bigint }).value & 0xffn);
    const b = readVec(c, s2, n, s2.kind === "mem" && !i.vex ? legacyAlign(c, n) : 0);
    const a = readVec(c, s1, n);
    const out = new Uint8Array(n);
    for (let base = 0, lane = 0; base < n; base += 16, lane++) {
      if (w === 4) {
        const sel = [imm & 3, (imm >> 2) & 3, (imm >> 4) & 3, (imm >> 6) & 3];
        out.set(a.subarray(base + 4 * sel[0], base + 4 * sel[0] + 4), base);
        out.set(a.subarray(base + 4 * sel[1], base + 4 * sel[1] + 4), base + 4);
        out.set(b.subarray(base + 4 * sel[2], base + 4 * sel[2] + 4), base + 8);
        out.set(b.subarray(base + 4 * sel[3], base + 4 * sel[3] + 4), base + 12);
      } else {
        const s0 = (imm >> (2 * lane)) & 1, s1b = (imm >> (2 * lane + 1)) & 1;
        out.set(a.subarray(base + 8 * s0, base + 8 * s0 + 8), base);
        out.set(b.subarray(base + 8 * s1b, base + 8 * s1b + 8), base + 8);
      }
    }
    writeVec(c, i, d, out);
  };
}

/** pshufb: byte shuffle (SSSE3). */
const pshufb: LaneOp = (a, b, n) => {
  const src = a.slice();
  for (let k = 0; k < n; k++) {
    const base = n > 8 ? k & ~15 : 0;
    a[k] = b[k] & 0x80 ? 0 : src[base + (b[k] & (n > 8 ? 15 : 7))];
  }
};

/** palignr: concatenate each lane (dst:src) and take 16 bytes from the immediate byte offset. */
const palignr: Handler = (c, i) => {
  check(c, i);
  const ops = i.operands;
  const d = opnd(i, 0);
  const n = width(d);
  const s2 = ops.length === 4 ? ops[2] : ops[1];
  const s1 = ops.length === 4 ? ops[1] : d;
  const imm = Number((ops[ops.length - 1] as { value: bigint }).value & 0xffn);
  const b = readVec(c, s2, n, s2.kind === "mem" && !i.vex ? legacyAlign(c, n) : 0);
  const a = readVec(c, s1, n);
  const lane = Math.min(n, 16);
  const out = new Uint8Array(n);
  for (let base = 0; base < n; base += lane) {
    for (let k = 0; k < lane; k++) {
      const idx = k + imm;
      out[base + k] = idx < lane ? b[base + idx] : idx < 2 * lane ? a[base + idx - lane] : 0;
    }
  }
  writeVec(c, i, d, out);
};

/** pmovmskb r32/r64, mm/xmm/ymm: the top bit of each byte. */
const pmovmskb: Handler = (c, i) => {
  check(c, i);
  const d = opnd(i, 0);
  const s = opnd(i, 1);
  const v = readVec(c, s, width(s));
  let m = 0n;
  for (let k = v.length - 1; k >= 0; k--) m = (m << 1n) | BigInt(v[k] >> 7);
  if (usesMmx(i)) mmxTransition(c);
  c.write(d, m);
};

/** movmskps/movmskpd. */
function movmskp(w: number): Handler {
  return (c, i) => {
    check(c, i);
    const d = opnd(i, 0);
    const s = opnd(i, 1);
    const v = readVec(c, s, width(s));
    let m = 0n;
    for (let k = v.length - w; k >= 0; k -= w) m = (m << 1n) | BigInt(v[k + w - 1] >> 7);
    c.write(d, m);
  };
}

/** pextrw/pextrb/pextrd/pextrq. */
function pextr(w: number): Handler {
  return (c, i) => {
    check(c, i);
    const d = opnd(i, 0);
    const s = opnd(i, 1);
    const n = width(s);
    const lanes = n / w;
    const sel = Number((opnd(i, 2) as { value: bigint }).value) % lanes;
    const v = readVec(c, s, n);
    const piece = v.slice(sel * w, sel * w + w);
    if (d.kind === "mem") {
      c.writeBytes(c.resolve(d, true, w), piece);
      return;
    }
    let x = 0n;
    for (let k = w - 1; k >= 0; k--) x = (x << 8n) | BigInt(piece[k]);
    if (usesMmx(i)) mmxTransition(c);
    c.write(d, x); // zero-extended into the register
  };
}

/** pinsrw/pinsrb/pinsrd/pinsrq. */
function pinsr(w: number): Handler {
  return (c, i) => {
    check(c, i);
    const ops = i.operands;
    const d = opnd(i, 0);
    const n = width(d);
    const s = ops[ops.length - 2];
    const sel = Number((ops[ops.length - 1] as { value: bigint }).value) % (n / w);
    const a = readVec(c, ops.length === 4 ? ops[1] : d, n);
    const v = readVec(c, s, w);
    a.set(v.subarray(0, w), sel * w);
    writeVec(c, i, d, a);
  };
}

/** ptest (SSE4.1): ZF = (a AND b) == 0, CF = (NOT a AND b) == 0. */
const ptest: Handler = (c, i) => {
  check(c, i);
  const a = readVec(c, opnd(i, 0), width(opnd(i, 0)));
  const s = opnd(i, 1);
  const b = readVec(c, s, a.length, s.kind === "mem" && !i.vex ? legacyAlign(c, a.length) : 0);
  let z = true, cf = true;
  for (let k = 0; k < a.length; k++) {
    if (a[k] & b[k]) z = false;
    if (~a[k] & b[k]) cf = false;
  }
  c.setArith((z ? 0x40 : 0) | (cf ? 1 : 0));
};

/** pbroadcast / vbroadcastss / movddup-like duplicates (AVX2 vpbroadcastb/w/d/q, vbroadcastss/sd/f128/i128). */
function broadcast(w: number): Handler {
  return (c, i) => {
    check(c, i);
    const d = opnd(i, 0);
    const n = width(d);
    const v = readVec(c, opnd(i, 1), w);
    const out = new Uint8Array(n);
    for (let k = 0; k < n; k += w) out.set(v.subarray(0, w), k);
    writeVec(c, i, d, out);
  };
}

const vzero: Handler = (c, i) => {
  check(c, i);
  const all = i.mnemonic === "vzeroall";
  const regs = c.mode === 64 ? 16 : 8;
  const zero = new Uint8Array(16);
  for (let r = 0; r < regs; r++) {
    if (all) c.ext().set(zero, XMM0 + 16 * r);
    // Clears bits 255:128 (and the ZMM upper bits) of each register.
    writeXmm(c, r, readVec(c, { kind: "reg", cls: "xmm", index: r, size: 16 }, 16), true);
  }
};

// ---------------------------------------------------------------------------
// MXCSR (SDM Vol. 2B, LDMXCSR, STMXCSR)

/** The MXCSR_MASK of the area (bits MXCSR may have set), or its default. */
export function mxcsrMask(x: Uint8Array): number {
  return view(x).getUint32(MXCSR_MASK, true) || DEFAULT_MXCSR_MASK;
}

const ldmxcsr: Handler = (c, i) => {
  sseCheck(c, i);
  const m = opnd(i, 0);
  if (m.kind !== "mem") throw ud();
  const v = Number(c.readValue(c.resolve(m, false, 4)));
  // Reserved bits set: #GP(0).
  if ((v & ~mxcsrMask(c.ext())) !== 0) throw gp0();
  view(c.ext()).setUint32(MXCSR, v >>> 0, true);
  c.touchExt(2);
};

const stmxcsr: Handler = (c, i) => {
  sseCheck(c, i);
  const m = opnd(i, 0);
  if (m.kind !== "mem") throw ud();
  c.writeValue(c.resolve(m, true, 4), BigInt(view(c.ext()).getUint32(MXCSR, true)));
};

// ---------------------------------------------------------------------------
// x87 control (SDM Vol. 2A, FINIT/FNINIT, FSTCW, FLDCW, FSTSW, FCLEX, WAIT/FWAIT; EMMS)

/** The "wait" forms (finit, fclex, fstsw, fstcw) are fwait followed by the no-wait form. */
function x87Wait(i: Instruction): boolean {
  return !i.mnemonic.startsWith("fn") && i.mnemonic !== "fldcw" && i.mnemonic !== "emms";
}

const fwait: Handler = (c) => {
  fwaitCheck(c);
};

const fninit: Handler = (c, i) => {
  if (x87Wait(i)) fwaitCheck(c);
  x87Check(c);
  const x = c.ext();
  const v = view(x);
  v.setUint16(FCW, 0x037f, true);
  v.setUint16(FSW, 0, true);
  x[FTW] = 0; // abridged: all empty
  v.setUint16(FOP, 0, true);
  v.setBigUint64(FIP, 0n, true);
  v.setBigUint64(FDP, 0n, true);
  c.touchExt(1);
};

const fnclex: Handler = (c, i) => {
  if (x87Wait(i)) fwaitCheck(c);
  x87Check(c);
  const v = view(c.ext());
  // Clears PE, UE, OE, ZE, DE, IE, SF, ES and B.
  v.setUint16(FSW, v.getUint16(FSW, true) & 0x7f00, true);
  c.touchExt(1);
};

const fnstsw: Handler = (c, i) => {
  if (x87Wait(i)) fwaitCheck(c);
  x87Check(c);
  const d = opnd(i, 0);
  const fsw = BigInt(view(c.ext()).getUint16(FSW, true));
  if (d.kind === "mem") c.writeValue(c.resolve(d, true, 2), fsw);
  else c.write(d, fsw);
};

const fnstcw: Handler = (c, i) => {
  if (x87Wait(i)) fwaitCheck(c);
  x87Check(c);
  const d = opnd(i, 0);
  if (d.kind !== "mem") throw ud();
  c.writeValue(c.resolve(d, true, 2), BigInt(view(c.ext()).getUint16(FCW, true)));
};

/**
 * The FCW an instruction that loads it (fldcw, fldenv, frstor, fxrstor,
 * xrstor) leaves: the defined bits only, with bit 6 (reserved) reading as 1
 * and bits 7 and 13-15 (reserved) as 0 (SDM Vol. 1, 8.1.5, Figure 8-6).
 * Measured on an AMD EPYC (Zen) for fldcw, fldenv, frstor, fxrstor and
 * xrstor: 0xffff loads as 0x1f7f, 0xffe3 as 0x1f63, 0 and 0x80 as 0x40;
 * Bochs, which models Intel, does the same in all of them
 * ("(cwd & ~FPU_CW_Reserved_Bits) | 0x0040", FPU_CW_Reserved_Bits = 0xe0c0,
 * "always set bit 6 as '1'"). FNSTCW and FXSAVE/XSAVE store the register,
 * which therefore never holds a reserved bit.
 */
export function fcwLoaded(cw: number): number {
  return (cw & 0x1f3f) | 0x40;
}

const fldcw: Handler = (c, i) => {
  x87Check(c);
  const s = opnd(i, 0);
  if (s.kind !== "mem") throw ud();
  const cw = fcwLoaded(Number(c.readValue(c.resolve(s, false, 2))));
  const v = view(c.ext());
  v.setUint16(FCW, cw, true);
  // A newly unmasked pending exception sets ES and B (the next waiting instruction
  // raises #MF); a newly masked one clears them.
  let sw = v.getUint16(FSW, true);
  if (sw & ~cw & 0x3f) sw |= 0x8080;
  else sw &= ~0x8080;
  v.setUint16(FSW, sw, true);
  c.touchExt(1);
};

const emms: Handler = (c) => {
  mmxCheck(c);
  c.ext()[FTW] = 0; // all empty
  c.touchExt(1);
};

// ---------------------------------------------------------------------------
// The table

const L = (op: LaneOp) => laneOp(op);

/** Handlers of this module by mnemonic (legacy and VEX spellings). */
export const SSE_HANDLERS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  // Moves
  ...["movdqa", "movaps", "movapd", "movntdq", "movntps", "movntpd", "movntdqa"].flatMap((
    m,
  ): [string, Handler][] => [[m, move(true)], ["v" + m, move(true)]]),
  ...["movdqu", "movups", "movupd", "lddqu", "vmovdqu"].flatMap((m): [string, Handler][] => [
    [m, move(false)],
    ["v" + m, move(false)],
  ]),
  ["movd", movdq],
  ["movq", movdq],
  ["vmovd", movdq],
  ["vmovq", movdq],
  ["movq2dq", movq2dq],
  ["movdq2q", movq2dq],
  ["movnti", movnti],
  ["movss", scalarMove(4)],
  ["vmovss", scalarMove(4)],
  ["movsd", scalarMove(8)], // the SSE2 scalar move (F2 0F 10/11); the string movsd is "movs"
  ["vmovsd", scalarMove(8)],
  ...["movlps", "movlpd", "movhlps"].flatMap((
    m,
  ): [string, Handler][] => [[m, halfMove(false)], ["v" + m, halfMove(false)]]),
  ...["movhps", "movhpd", "movlhps"].flatMap((
    m,
  ): [string, Handler][] => [[m, halfMove(true)], ["v" + m, halfMove(true)]]),
  // Logic
  ...["pxor", "xorps", "xorpd"].flatMap((
    m,
  ): [string, Handler][] => [[m, L(xorOp)], ["v" + m, L(xorOp)]]),
  ...["por", "orps", "orpd"].flatMap((
    m,
  ): [string, Handler][] => [[m, L(orOp)], ["v" + m, L(orOp)]]),
  ...["pand", "andps", "andpd"].flatMap((
    m,
  ): [string, Handler][] => [[m, L(andOp)], ["v" + m, L(andOp)]]),
  ...["pandn", "andnps", "andnpd"].flatMap((
    m,
  ): [string, Handler][] => [[m, L(andnOp)], ["v" + m, L(andnOp)]]),
  // Integer arithmetic
  ...([["b", 1], ["w", 2], ["d", 4], ["q", 8]] as const).flatMap(([s, w]): [string, Handler][] => [
    [`padd${s}`, L(addSub(w, false))],
    [`vpadd${s}`, L(addSub(w, false))],
    [`psub${s}`, L(addSub(w, true))],
    [`vpsub${s}`, L(addSub(w, true))],
    [`pcmpeq${s}`, L(compare(w, false))],
    [`vpcmpeq${s}`, L(compare(w, false))],
    [`pcmpgt${s}`, L(compare(w, true))],
    [`vpcmpgt${s}`, L(compare(w, true))],
  ]),
  ...([["usb", 1, false], ["usw", 2, false], ["sb", 1, true], ["sw", 2, true]] as const).flatMap((
    [s, w, signed],
  ): [string, Handler][] => [
    [`padd${s}`, L(satAddSub(w, false, signed))],
    [`vpadd${s}`, L(satAddSub(w, false, signed))],
    [`psub${s}`, L(satAddSub(w, true, signed))],
    [`vpsub${s}`, L(satAddSub(w, true, signed))],
  ]),
  ["pminub", L(minMax(1, false))],
  ["pmaxub", L(minMax(1, true))],
  ["pminsw", L(minMax(2, false))],
  ["pmaxsw", L(minMax(2, true))],
  ["vpminub", L(minMax(1, false))],
  ["vpmaxub", L(minMax(1, true))],
  ["pmullw", L(multiply("lw"))],
  ["pmulhw", L(multiply("hw"))],
  ["pmulhuw", L(multiply("huw"))],
  ["pmuludq", L(multiply("udq"))],
  ["pmaddwd", L(multiply("addwd"))],
  // Unpack and pack
  ...([["bw", 1], ["wd", 2], ["dq", 4], ["qdq", 8]] as const).flatMap((
    [s, w],
  ): [string, Handler][] => [
    [`punpckl${s}`, L(unpack(w, false))],
    [`punpckh${s}`, L(unpack(w, true))],
    [`vpunpckl${s}`, L(unpack(w, false))],
    [`vpunpckh${s}`, L(unpack(w, true))],
  ]),
  ["unpcklps", L(unpack(4, false))],
  ["unpckhps", L(unpack(4, true))],
  ["unpcklpd", L(unpack(8, false))],
  ["unpckhpd", L(unpack(8, true))],
  ["packsswb", L(pack(2, true))],
  ["packuswb", L(pack(2, false))],
  ["packssdw", L(pack(4, true))],
  // Shifts
  ...([["w", 2], ["d", 4], ["q", 8]] as const).flatMap(([s, w]): [string, Handler][] => [
    [`psll${s}`, shiftLanes(w, "l")],
    [`psrl${s}`, shiftLanes(w, "r")],
    [`vpsll${s}`, shiftLanes(w, "l")],
    [`vpsrl${s}`, shiftLanes(w, "r")],
  ]),
  ["psraw", shiftLanes(2, "a")],
  ["psrad", shiftLanes(4, "a")],
  ["vpsraw", shiftLanes(2, "a")],
  ["vpsrad", shiftLanes(4, "a")],
  ["pslldq", byteShift(true)],
  ["psrldq", byteShift(false)],
  ["vpslldq", byteShift(true)],
  ["vpsrldq", byteShift(false)],
  // Shuffles and extracts
  ["pshufd", shuffle("d")],
  ["pshuflw", shuffle("lw")],
  ["pshufhw", shuffle("hw")],
  ["pshufw", shuffle("w")],
  ["vpshufd", shuffle("d")],
  ["shufps", shufp(4)],
  ["shufpd", shufp(8)],
  ["pshufb", L(pshufb)],
  ["vpshufb", L(pshufb)],
  ["palignr", palignr],
  ["vpalignr", palignr],
  ["pmovmskb", pmovmskb],
  ["vpmovmskb", pmovmskb],
  ["movmskps", movmskp(4)],
  ["movmskpd", movmskp(8)],
  ["pextrw", pextr(2)],
  ["pextrb", pextr(1)],
  ["pextrd", pextr(4)],
  ["pextrq", pextr(8)],
  ["pinsrw", pinsr(2)],
  ["pinsrb", pinsr(1)],
  ["pinsrd", pinsr(4)],
  ["pinsrq", pinsr(8)],
  ["ptest", ptest],
  ["vptest", ptest],
  ["vpbroadcastb", broadcast(1)],
  ["vpbroadcastw", broadcast(2)],
  ["vpbroadcastd", broadcast(4)],
  ["vpbroadcastq", broadcast(8)],
  ["vbroadcastss", broadcast(4)],
  ["vbroadcastsd", broadcast(8)],
  ["vbroadcasti128", broadcast(16)],
  ["vbroadcastf128", broadcast(16)],
  ["vzeroupper", vzero],
  ["vzeroall", vzero],
  // MXCSR
  ["ldmxcsr", ldmxcsr],
  ["stmxcsr", stmxcsr],
  ["vldmxcsr", ldmxcsr],
  ["vstmxcsr", stmxcsr],
  // x87 control
  ["fwait", fwait],
  ["wait", fwait],
  ["fninit", fninit],
  ["finit", fninit],
  ["fnclex", fnclex],
  ["fclex", fnclex],
  ["fnstsw", fnstsw],
  ["fstsw", fnstsw],
  ["fnstcw", fnstcw],
  ["fstcw", fnstcw],
  ["fldcw", fldcw],
  ["emms", emms],
]);

/**
 * EVEX-encoded (AVX-512F, with AVX-512VL for the 128- and 256-bit lengths)
 * integer instructions of the kind a kernel runs in its crypto and RNG code
 * (blake2s_compress_avx512, chacha, ...): two-table permutes, rotates, dword
 * and qword add/sub, logic, ternary logic, aligned and unaligned moves,
 * vpshufd and broadcasts; in 128/256/512-bit lengths, with ZMM0-31, opmask
 * registers (merging and zeroing masking) and embedded broadcast.
 *
 * Sources: Intel SDM Vol. 2, 2.7 "Intel AVX-512 Encoding" (2.7.1 the EVEX
 * prefix fields, 2.7.2 register specifier encoding, 2.7.5 compressed disp8*N,
 * 2.7.8 opmask, 2.7.11 #UD equations), 2.8 "Exception classifications of
 * EVEX-encoded instructions" (memory fault suppression, Type E4/E4.nb/E6/E1),
 * and each instruction page (VPERMI2D/Q, VPERMT2D/Q, VPROLD/VPROLVD/VPRORD/
 * VPRORVD, PADDD/Q, PSUBD/Q, PXOR(D/Q), POR, PAND, PANDN, VPTERNLOGD/Q,
 * MOVDQA/MOVDQU (VMOVDQA32/64, VMOVDQU32/64), PSHUFD, VPBROADCAST); Vol. 1,
 * 13.2 and Table 13-1 for the XSAVE state components (5 opmask, 6 ZMM_Hi256,
 * 7 Hi16_ZMM).
 *
 * Register file (the XSAVE-format area `cpu.extended()`): ZMMi bits 127:0 in
 * the legacy region (XMM at 160 + 16 i), bits 255:128 in component 2
 * (YMM_Hi128), bits 511:256 of ZMM0-15 in component 6 (ZMM_Hi256), ZMM16-31
 * whole in component 7 (Hi16_ZMM), k0-k7 in component 5; the offsets are
 * CPUID.(EAX=0DH,ECX=i).EBX. A component whose XSTATE_BV bit is clear reads
 * as zeros; writing one sets the bit.
 *
 * What the executor checks (cheaply): #UD when CR4.OSXSAVE is clear or XCR0
 * lacks any of SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM (2.8: "XCR0[7:5] !=
 * 111b or XCR0[2:1] != 11b"), when CPUID lacks AVX512F (or AVX512VL for
 * EVEX.L'L < 2), EVEX.L'L = 11b, the reserved P0 bit 3, EVEX.b where the form
 * has no broadcast (memory) or no rounding control (register operands), the
 * wrong EVEX.W for the opcode, zeroing masking with a memory destination, an
 * opmask on a form that takes none; then #NM for CR0.TS; #GP(0) for a
 * misaligned vmovdqa32/64 memory operand (whatever the mask). Memory fault
 * suppression (2.8): with a mask, elements whose mask bit is clear are not
 * accessed (so cannot fault); without one, the whole operand is accessed.
 *
 * Anything else EVEX-encoded (other AVX-512 instructions, the byte/word
 * forms of AVX512BW, floating point, the GPR-source vpbroadcastd/q) is
 * reported "unsupported" with the mnemonic, never approximated.
 *
 * Private module of exec.ts.
 *
 * @module
 */

import type { Handler } from "./_exec_alu.ts";
import { component, CR0, CR4, type Ctx, Fault, gp0, ud, Unsupported, VEC } from "./_exec_ctx.ts";
import type { Instruction, MemOperand, Operand } from "./types.ts";

const XMM0 = 160;
/** XSTATE_BV bits of the components an EVEX instruction may touch (SDM Vol. 1, 13.1). */
const BV_SSE = 1 << 1, BV_AVX = 1 << 2, BV_K = 1 << 5, BV_ZMMH = 1 << 6, BV_HI16 = 1 << 7;
/** XCR0 bits EVEX needs: SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM (SDM Vol. 2, 2.8). */
const XCR0_AVX512 = 0xe6n;

// ---------------------------------------------------------------------------
// The EVEX prefix (SDM Vol. 2, 2.7.1, Figure 2-11)

/** The fields of the EVEX prefix the executor needs (the decoder keeps them private). */
export interface Evex {
  /** P0 (R X B R' 0 m m m), P1 (W vvvv 1 pp), P2 (z L'L b V' aaa). */
  readonly p0: number;
  readonly p1: number;
  readonly p2: number;
  /** Vector length in bytes (16, 32, 64); L'L = 3 is rejected before this is used. */
  readonly vl: number;
  readonly w: boolean;
  /** The opmask register (0: no masking). */
  readonly aaa: number;
  /** Zeroing (true) or merging masking. */
  readonly z: boolean;
  /** EVEX.b: broadcast with a memory operand. */
  readonly b: boolean;
  readonly ll: number;
}

/** Segment and address-size prefixes, the only ones that may precede EVEX (2.7.1). */
function isPlainPrefix(x: number): boolean {
  return x === 0x26 || x === 0x2e || x === 0x36 || x === 0x3e || x === 0x64 || x === 0x65 ||
    x === 0x67;
}

/** Reads the EVEX prefix from the instruction's bytes. */
export function evexOf(i: Instruction): Evex {
  const b = i.bytes;
  let k = 0;
  while (k < b.length && isPlainPrefix(b[k])) k++;
  if (b[k] !== 0x62 || k + 3 >= b.length) throw new Unsupported(`${i.text}: no EVEX prefix found`);
  const p0 = b[k + 1], p1 = b[k + 2], p2 = b[k + 3];
  const ll = (p2 >> 5) & 3;
  return {
    p0,
    p1,
    p2,
    ll,
    vl: 16 << Math.min(ll, 2),
    w: (p1 & 0x80) !== 0,
    aaa: p2 & 7,
    z: (p2 & 0x80) !== 0,
    b: (p2 & 0x10) !== 0,
  };
}

// ---------------------------------------------------------------------------
// Checks

/** How a form uses the EVEX fields (from its instruction page). */
interface FormRules {
  /** Element size in bytes (the masking and broadcast granularity). */
  readonly es: 4 | 8;
  /** The EVEX.W the opcode needs, or null when the decoder already chose the form by W. */
  readonly w: boolean | null;
  /** Embedded broadcast allowed with a memory operand. */
  readonly bcst: boolean;
  /** Opmask allowed. */
  readonly mask: boolean;
  /**
   * Memory fault suppression (exception classes E4/E4.nb, SDM Vol. 2, 2.8): the memory
   * operand's elements whose mask bit is clear are not accessed. False for the "NF"
   * classes (E4NF: permutes and shuffles, where any result element may come from any
   * source element): the whole operand is read whatever the mask.
   */
  readonly suppress: boolean;
}

function avx512Features(c: Ctx): { f: boolean; vl: boolean } {
  const max = c.cpu.cpuid(0, 0)[0];
  if (max < 7) return { f: false, vl: false };
  const ebx = c.cpu.cpuid(7, 0)[1];
  return { f: ((ebx >>> 16) & 1) === 1, vl: ((ebx >>> 31) & 1) === 1 };
}

/**
 * The #UD and #NM checks every EVEX form here makes (SDM Vol. 2, 2.8, Table
 * 2-46 "Type E4 Class Exception Conditions" and its siblings; 2.7.11).
 */
function evexCheck(c: Ctx, i: Instruction, e: Evex, r: FormRules): void {
  const cpu = c.cpu;
  if ((cpu.cr4 & CR4.OSXSAVE) === 0n || (cpu.xcr0 & XCR0_AVX512) !== XCR0_AVX512) throw ud();
  const feat = avx512Features(c);
  if (!feat.f || (e.ll < 2 && !feat.vl)) throw ud();
  if (e.ll === 3) throw ud();
  if (e.p0 & 0x08) throw ud(); // P0 bit 3 is reserved (must be 0)
  const mem = i.operands.some((o) => o.kind === "mem");
  // EVEX.b: broadcast for memory operands of forms that have it; with register operands
  // it selects rounding control, which no integer instruction has.
  if (e.b && (!mem || !r.bcst)) throw ud();
  if (r.w !== null && e.w !== r.w) throw ud();
  if (e.aaa && !r.mask) throw ud();
  // Zeroing masking without an opmask register (measured: #UD on an AMD Zen 4).
  if (e.z && !e.aaa) throw ud();
  // Zeroing masking with a memory destination (2.7.8; VMOVDQA32 etc. #UD "EVEX.z with a
  // memory destination").
  if (e.z && i.operands[0]?.kind === "mem") throw ud();
  if ((cpu.cr0 & CR0.TS) !== 0n) throw new Fault(VEC.NM);
}

// ---------------------------------------------------------------------------
// Registers: ZMM0-31 and k0-k7 in the XSAVE area

function need(c: Ctx, comp: number, size: number): number {
  const off = component(c.cpu, c.f, comp).offset;
  if (off === 0 || off + size > c.ext().length) {
    throw new Unsupported(`AVX-512 state component ${comp} is not in the XSAVE area`);
  }
  return off;
}

/** The low `n` bytes of ZMM `index` (a copy). */
export function readZmm(c: Ctx, index: number, n: number): Uint8Array {
  const x = c.ext();
  const out = new Uint8Array(n);
  const bv = x[512];
  if (index < 16) {
    const lo = XMM0 + 16 * index;
    out.set(x.subarray(lo, lo + Math.min(n, 16)));
    if (n > 16 && (bv & BV_AVX)) {
      const o = need(c, 2, 256) + 16 * index;
      out.set(x.subarray(o, o + 16), 16);
    }
    if (n > 32 && (bv & BV_ZMMH)) {
      const o = need(c, 6, 512) + 32 * index;
      out.set(x.subarray(o, o + 32), 32);
    }
  } else if (bv & BV_HI16) {
    const o = need(c, 7, 1024) + 64 * (index - 16);
    out.set(x.subarray(o, o + n));
  }
  return out;
}

/**
 * Writes ZMM `index`: `data` (16, 32 or 64 bytes) at its low end, zeros
 * above it up to bit 511 (an EVEX write zeroes the destination above the
 * vector length, SDM Vol. 2, 2.7.10 / each page's "DEST[MAXVL-1:VL] := 0").
 */
export function writeZmm(c: Ctx, index: number, data: Uint8Array): void {
  const x = c.ext();
  const n = data.length;
  let touched = 0;
  if (index < 16) {
    const lo = XMM0 + 16 * index;
    x.set(data.subarray(0, 16), lo);
    touched |= BV_SSE;
    const y = need(c, 2, 256) + 16 * index;
    if (n > 16) {
      x.set(data.subarray(16, 32), y);
      touched |= BV_AVX;
    } else if (x[512] & BV_AVX) x.fill(0, y, y + 16);
    const z = need(c, 6, 512) + 32 * index;
    if (n > 32) {
      x.set(data.subarray(32, 64), z);
      touched |= BV_ZMMH;
    } else if (x[512] & BV_ZMMH) x.fill(0, z, z + 32);
  } else {
    const o = need(c, 7, 1024) + 64 * (index - 16);
    // A component in its initial state holds zeros: only the first write needs the rest cleared.
    if (!(x[512] & BV_HI16)) x.fill(0, need(c, 7, 1024), need(c, 7, 1024) + 1024);
    x.set(data, o);
    x.fill(0, o + n, o + 64);
    touched |= BV_HI16;
  }
  c.touchExt(touched);
}

/** Opmask register k`index` (bits 15:0 are all the forms here use; k0 is never read as a mask). */
export function readK(c: Ctx, index: number): number {
  const x = c.ext();
  if (!(x[512] & BV_K)) return 0;
  const o = need(c, 5, 64) + 8 * index;
  return x[o] | (x[o + 1] << 8);
}

// ---------------------------------------------------------------------------
// Operands with masking, broadcast and fault suppression

/** The effective address `ea + delta`, wrapped to the operand's address size. */
function eaPlus(c: Ctx, op: MemOperand, delta: number): bigint {
  const a = c.ea(op) + BigInt(delta);
  return op.addrSize === 8
    ? BigInt.asUintN(64, a)
    : a & (op.addrSize === 4 ? 0xffffffffn : 0xffffn);
}

/**
 * #GP(0) when the operand is not aligned to `align` (after the segment checks, as
 * resolveAt), unless the mask selects no element (measured on an AMD Zen 4: a misaligned
 * vmovdqa32/64 with an all-zero mask completes; Intel not measured).
 */
function checkAlign(
  c: Ctx,
  op: MemOperand,
  n: number,
  write: boolean,
  align: number,
  mask: number,
): void {
  if (!align || mask === 0) return;
  const lin = c.linear(op.seg, c.ea(op), n, write);
  if ((lin & BigInt(align - 1)) !== 0n) throw gp0();
}

/**
 * A vector source of `vl` bytes: a register, a memory operand (with memory
 * fault suppression: only elements whose mask bit is set are read when the
 * mask is not all ones), or an embedded broadcast of one element.
 */
function readSrc(
  c: Ctx,
  e: Evex,
  op: Operand,
  es: number,
  vl: number,
  mask: number,
  full: number,
  align = 0,
): Uint8Array {
  if (op.kind === "reg") {
    if (op.cls !== "xmm" && op.cls !== "ymm" && op.cls !== "zmm") {
      throw new Unsupported(`EVEX ${op.cls} source operand`);
    }
    return readZmm(c, op.index, vl);
  }
  if (op.kind !== "mem") throw new Unsupported(`EVEX ${op.kind} operand`);
  const out = new Uint8Array(vl);
  if (e.b) {
    // {1toN}: one element read, replicated (2.7.5); nothing read when no element is selected.
    if (mask === 0) return out;
    const el = new Uint8Array(es);
    c.readBytes(c.resolve(op, false, es), el);
    for (let k = 0; k < vl; k += es) out.set(el, k);
    return out;
  }
  if (mask === full) {
    c.readBytes(c.resolve(op, false, vl, align), out);
    return out;
  }
  checkAlign(c, op, vl, false, align, mask);
  for (let j = 0; j * es < vl; j++) {
    if (!(mask & (1 << j))) continue;
    const loc = c.resolveAt(op.seg, eaPlus(c, op, j * es), es, false);
    c.readBytes(loc, out.subarray(j * es, j * es + es));
  }
  return out;
}

/**
 * Writes a result under the mask: a register gets the selected elements of
 * `res`, zeros (zeroing masking) or its old elements (merging) elsewhere,
 * and zeros above the vector length; memory gets the selected elements only
 * (the others are neither written nor checked).
 */
function writeDst(
  c: Ctx,
  op: Operand,
  res: Uint8Array,
  es: number,
  mask: number,
  full: number,
  z: boolean,
  align = 0,
): void {
  const vl = res.length;
  if (op.kind === "reg") {
    if (op.cls !== "xmm" && op.cls !== "ymm" && op.cls !== "zmm") {
      throw new Unsupported(`EVEX ${op.cls} destination`);
    }
    if (mask !== full) {
      const old = z ? null : readZmm(c, op.index, vl);
      for (let j = 0; j * es < vl; j++) {
        if (mask & (1 << j)) continue;
        if (old) res.set(old.subarray(j * es, j * es + es), j * es);
        else res.fill(0, j * es, j * es + es);
      }
    }
    writeZmm(c, op.index, res);
    return;
  }
  if (op.kind !== "mem") throw new Unsupported(`EVEX ${op.kind} destination`);
  if (mask === full) {
    c.writeBytes(c.resolve(op, true, vl, align), res);
    return;
  }
  checkAlign(c, op, vl, true, align, mask);
  for (let j = 0; j * es < vl; j++) {
    if (!(mask & (1 << j))) continue;
    const loc = c.resolveAt(op.seg, eaPlus(c, op, j * es), es, true);
    c.writeBytes(loc, res.subarray(j * es, j * es + es));
  }
}

function opnd(i: Instruction, n: number): Operand {
  const o = i.operands[n];
  if (!o) throw new Unsupported(`${i.text}: missing operand ${n}`);
  return o;
}

function immOf(i: Instruction): number {
  const o = i.operands[i.operands.length - 1];
  if (!o || o.kind !== "imm") throw new Unsupported(`${i.text}: no immediate`);
  return Number(o.value & 0xffn);
}

/** The mask for this instruction: k[aaa] limited to the elements, or all ones without one. */
function maskFor(c: Ctx, e: Evex, kl: number): { mask: number; full: number } {
  const full = kl >= 32 ? 0xffffffff : (1 << kl) - 1;
  return { mask: e.aaa ? readK(c, e.aaa) & full : full, full };
}

// ---------------------------------------------------------------------------
// Element operations

/** Combines the old destination `d`, first source `a` and second source `b` into `out`. */
type VecOp = (
  out: Uint8Array,
  d: Uint8Array,
  a: Uint8Array,
  b: Uint8Array,
  vl: number,
  imm: number,
) => void;

function dv(x: Uint8Array): DataView {
  return new DataView(x.buffer, x.byteOffset, x.byteLength);
}

/** Per-element operation on dwords (numbers) or qwords (bigints). */
function lanes32(f: (d: number, a: number, b: number, imm: number) => number): VecOp {
  return (out, d, a, b, vl, imm) => {
    const o = dv(out), vd = dv(d), va = dv(a), vb = dv(b);
    for (let k = 0; k < vl; k += 4) {
      o.setUint32(
        k,
        f(vd.getUint32(k, true), va.getUint32(k, true), vb.getUint32(k, true), imm) >>> 0,
        true,
      );
    }
  };
}

function lanes64(f: (d: bigint, a: bigint, b: bigint, imm: number) => bigint): VecOp {
  return (out, d, a, b, vl, imm) => {
    const o = dv(out), vd = dv(d), va = dv(a), vb = dv(b);
    for (let k = 0; k < vl; k += 8) {
      o.setBigUint64(
        k,
        BigInt.asUintN(
          64,
          f(vd.getBigUint64(k, true), va.getBigUint64(k, true), vb.getBigUint64(k, true), imm),
        ),
        true,
      );
    }
  };
}

/** Bitwise operations work on bytes whatever the element size (the mask uses `es`). */
function bytewise(f: (d: number, a: number, b: number, imm: number) => number): VecOp {
  return (out, d, a, b, vl, imm) => {
    for (let k = 0; k < vl; k++) out[k] = f(d[k], a[k], b[k], imm);
  };
}

const rol32 = (x: number, n: number) =>
  (n & 31) === 0 ? x : (x << (n & 31)) | (x >>> (32 - (n & 31)));
const rol64 = (x: bigint, n: bigint) => {
  const s = n & 63n;
  return s === 0n ? x : BigInt.asUintN(64, (x << s) | (x >> (64n - s)));
};

/**
 * VPTERNLOGD/Q (SDM Vol. 2C): each result bit is imm8[(DEST << 2) | (SRC1 << 1) | SRC2]
 * of the same bit of the three operands.
 */
function ternlog(d: number, a: number, b: number, imm: number): number {
  let r = 0;
  for (let idx = 0; idx < 8; idx++) {
    if (!((imm >> idx) & 1)) continue;
    r |= (idx & 4 ? d : ~d) & (idx & 2 ? a : ~a) & (idx & 1 ? b : ~b);
  }
  return r & 0xff;
}

/**
 * VPERMI2D/Q and VPERMT2D/Q (SDM Vol. 2C): each element picks one of the 2 x KL
 * elements of two tables by the low log2(KL) + 1 bits of its index. `idx`:
 * the indexes; `t0`, `t1`: the tables (selected by the top index bit).
 */
function permute2(
  es: number,
  out: Uint8Array,
  idx: Uint8Array,
  t0: Uint8Array,
  t1: Uint8Array,
  vl: number,
) {
  const kl = vl / es;
  const vi = dv(idx);
  for (let j = 0; j < kl; j++) {
    const x = vi.getUint32(j * es, true); // the low bits of a qword index are its low dword's
    const sel = x & (kl - 1);
    const t = x & kl ? t1 : t0;
    out.set(t.subarray(sel * es, sel * es + es), j * es);
  }
}

// ---------------------------------------------------------------------------
// Handlers

/**
 * The three-operand forms `op dst {k}{z}, src1, src2/mem/bcst[, imm8]`
 * (EVEX.NDS): the result from the old destination, src1 (vvvv) and src2.
 */
function nds(r: FormRules, f: VecOp): Handler {
  return (c, i) => {
    const e = evexOf(i);
    evexCheck(c, i, e, r);
    const d = opnd(i, 0), s1 = opnd(i, 1), s2 = opnd(i, 2);
    const vl = e.vl, es = r.es;
    const { mask, full } = maskFor(c, e, vl / es);
    const b = readSrc(c, e, s2, es, vl, r.suppress ? mask : full, full);
    const a = readSrc(c, e, s1, es, vl, full, full);
    const old = readSrc(c, e, d, es, vl, full, full);
    const out = new Uint8Array(vl);
    f(out, old, a, b, vl, i.operands.length > 3 ? immOf(i) : 0);
    writeDst(c, d, out, es, mask, full, e.z);
  };
}

/** vprold/vprord/vprolq/vprorq by imm8 (EVEX.NDD: the destination is vvvv). */
function rotateImm(es: 4 | 8, left: boolean): Handler {
  const r: FormRules = { es, w: null, bcst: true, mask: true, suppress: true };
  return (c, i) => {
    const e = evexOf(i);
    evexCheck(c, i, e, r);
    const d = opnd(i, 0), s = opnd(i, 1);
    const vl = e.vl;
    const { mask, full } = maskFor(c, e, vl / es);
    const src = readSrc(c, e, s, es, vl, mask, full);
    const n = immOf(i);
    const out = new Uint8Array(vl);
    const vs = dv(src), o = dv(out);
    for (let k = 0; k < vl; k += es) {
      if (es === 4) {
        const cnt = left ? n & 31 : (32 - (n & 31)) & 31;
        o.setUint32(k, rol32(vs.getUint32(k, true), cnt) >>> 0, true);
      } else {
        const cnt = BigInt(left ? n & 63 : (64 - (n & 63)) & 63);
        o.setBigUint64(k, rol64(vs.getBigUint64(k, true), cnt), true);
      }
    }
    writeDst(c, d, out, es, mask, full, e.z);
  };
}

/** vpshufd dst {k}{z}, src/mem/m32bcst, imm8: dwords shuffled within each 128-bit lane. */
const vpshufd: Handler = (c, i) => {
  const e = evexOf(i);
  // Type E4NF (no memory fault suppression): a result element may come from any source
  // element of its lane.
  evexCheck(c, i, e, { es: 4, w: false, bcst: true, mask: true, suppress: false });
  const d = opnd(i, 0), s = opnd(i, 1);
  const vl = e.vl;
  const { mask, full } = maskFor(c, e, vl / 4);
  const src = readSrc(c, e, s, 4, vl, full, full);
  const imm = immOf(i);
  const out = new Uint8Array(vl);
  for (let lane = 0; lane < vl; lane += 16) {
    for (let k = 0; k < 4; k++) {
      const sel = (imm >> (2 * k)) & 3;
      out.set(src.subarray(lane + 4 * sel, lane + 4 * sel + 4), lane + 4 * k);
    }
  }
  writeDst(c, d, out, 4, mask, full, e.z);
};

/**
 * vmovdqa32/64 and vmovdqu32/64: load, store or register move, masked per
 * element. The aligned forms need a memory operand aligned to the vector
 * length (#GP(0)), whatever the mask (SDM Vol. 2B, MOVDQA, "Type E1").
 */
function move(es: 4 | 8, aligned: boolean): Handler {
  return (c, i) => {
    const e = evexOf(i);
    evexCheck(c, i, e, { es, w: null, bcst: false, mask: true, suppress: true });
    const d = opnd(i, 0), s = opnd(i, 1);
    const vl = e.vl;
    const { mask, full } = maskFor(c, e, vl / es);
    const align = aligned ? vl : 0;
    const data = readSrc(c, e, s, es, vl, d.kind === "mem" ? full : mask, full, align);
    writeDst(c, d, data, es, mask, full, e.z, align);
  };
}

/**
 * vpbroadcastd/q dst {k}{z}, xmm/m32 or m64: one element to all (SDM Vol. 2C,
 * VPBROADCAST, EVEX.66.0F38.W0 58 and W1 59; Tuple1 Scalar, Type E6). The
 * memory element is read whenever any element is selected.
 */
function broadcast(es: 4 | 8): Handler {
  return (c, i) => {
    const e = evexOf(i);
    if (es === 8 && !e.w) {
      throw new Unsupported(`${i.text}: EVEX.W0 59 is vbroadcasti32x2 (AVX512DQ), not implemented`);
    }
    evexCheck(c, i, e, { es, w: es === 8, bcst: false, mask: true, suppress: true });
    const d = opnd(i, 0), s = opnd(i, 1);
    const vl = e.vl;
    const { mask, full } = maskFor(c, e, vl / es);
    if (s.kind === "reg" && s.cls === "gpr") throw new Unsupported(`${i.text}: GPR source`);
    let el: Uint8Array;
    if (s.kind === "mem") {
      el = new Uint8Array(es);
      if (mask !== 0) c.readBytes(c.resolve(s, false, es), el);
    } else el = readSrc(c, e, s, es, 16, full, full).subarray(0, es);
    const out = new Uint8Array(vl);
    for (let k = 0; k < vl; k += es) out.set(el, k);
    writeDst(c, d, out, es, mask, full, e.z);
  };
}

const D = (w: boolean | null = null, suppress = true): FormRules => ({
  es: 4,
  w,
  bcst: true,
  mask: true,
  suppress,
});
const Q = (w: boolean | null = null, suppress = true): FormRules => ({
  es: 8,
  w,
  bcst: true,
  mask: true,
  suppress,
});

const add32 = lanes32((_d, a, b) => a + b);
const sub32 = lanes32((_d, a, b) => a - b);
const add64 = lanes64((_d, a, b) => a + b);
const sub64 = lanes64((_d, a, b) => a - b);
const xor = bytewise((_d, a, b) => a ^ b);
const or = bytewise((_d, a, b) => a | b);
const and = bytewise((_d, a, b) => a & b);
const andn = bytewise((_d, a, b) => ~a & b & 0xff);
const tern = bytewise((d, a, b, imm) => ternlog(d, a, b, imm));

function permI2(es: number): VecOp {
  // VPERMI2: indexes in the destination; tables src1 (bit clear) and src2 (bit set).
  return (out, d, a, b, vl) => permute2(es, out, d, a, b, vl);
}
function permT2(es: number): VecOp {
  // VPERMT2: indexes in src1; tables the destination (bit clear) and src2 (bit set).
  return (out, d, a, b, vl) => permute2(es, out, a, d, b, vl);
}

/** EVEX handlers by mnemonic (the decoder's AVX-512 names). */
export const EVEX_HANDLERS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  // Type E4NF: the table operand is read whole whatever the mask.
  ["vpermi2d", nds(D(null, false), permI2(4))],
  ["vpermi2q", nds(Q(null, false), permI2(8))],
  ["vpermt2d", nds(D(null, false), permT2(4))],
  ["vpermt2q", nds(Q(null, false), permT2(8))],
  ["vprold", rotateImm(4, true)],
  ["vprord", rotateImm(4, false)],
  ["vprolq", rotateImm(8, true)],
  ["vprorq", rotateImm(8, false)],
  ["vprolvd", nds(D(), lanes32((_d, a, b) => rol32(a, b & 31)))],
  ["vprorvd", nds(D(), lanes32((_d, a, b) => rol32(a, (32 - (b & 31)) & 31)))],
  ["vprolvq", nds(Q(), lanes64((_d, a, b) => rol64(a, b & 63n)))],
  ["vprorvq", nds(Q(), lanes64((_d, a, b) => rol64(a, (64n - (b & 63n)) & 63n)))],
  // The VEX-table names: the decoder ignores EVEX.W for these, the executor checks it.
  ["vpaddd", nds(D(false), add32)],
  ["vpsubd", nds(D(false), sub32)],
  ["vpaddq", nds(Q(true), add64)],
  ["vpsubq", nds(Q(true), sub64)],
  ["vpxord", nds(D(), xor)],
  ["vpxorq", nds(Q(), xor)],
  ["vpord", nds(D(), or)],
  ["vporq", nds(Q(), or)],
  ["vpandd", nds(D(), and)],
  ["vpandq", nds(Q(), and)],
  ["vpandnd", nds(D(), andn)],
  ["vpandnq", nds(Q(), andn)],
  ["vpternlogd", nds(D(), tern)],
  ["vpternlogq", nds(Q(), tern)],
  ["vmovdqa32", move(4, true)],
  ["vmovdqa64", move(8, true)],
  ["vmovdqu32", move(4, false)],
  ["vmovdqu64", move(8, false)],
  ["vpshufd", vpshufd],
  ["vpbroadcastd", broadcast(4)],
  ["vpbroadcastq", broadcast(8)],
]);

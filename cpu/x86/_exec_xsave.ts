/**
 * FXSAVE/FXRSTOR and the XSAVE feature set: xsave, xsaveopt, xsavec, xsaves,
 * xrstor, xrstors (and their 64 forms), in the standard and compacted
 * formats (SDM Vol. 1, chapter 13; Vol. 2, the instruction pages; FXSAVE
 * layout: Vol. 2A, Tables 3-43 to 3-47).
 *
 * The live state is `cpu.extended()`, a standard-format XSAVE area whose
 * XSTATE_BV (byte 512) stands for XINUSE. Saving copies from it; restoring
 * writes the loaded or initial values into it and sets XSTATE_BV[i] as the
 * processor sets XINUSE[i]. Supervisor state components (IA32_XSS) are not
 * in that area: xsaves/xrstors with any of them requested are "unsupported".
 *
 * xsaveopt is executed as xsave (the optimizations are optional); xsavec
 * and xsaves use the init optimization (components not in use are not
 * written).
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
  Fault,
  gp0,
  type Loc,
  ud,
  Unsupported,
  VEC,
} from "./_exec_ctx.ts";
import { fcwLoaded, mxcsrMask } from "./_exec_sse.ts";
import type { Instruction, MemOperand } from "./types.ts";

const MXCSR = 24, XMM0 = 160, HEADER = 512, EXT = 576;
const MXCSR_DEFAULT = 0x1f80;
const IA32_XSS = 0xda0;

function view(x: Uint8Array): DataView {
  return new DataView(x.buffer, x.byteOffset, x.byteLength);
}

function memOperand(i: Instruction): MemOperand {
  const m = i.operands[0];
  if (!m || m.kind !== "mem") throw ud();
  return m;
}

/** The 64-bit forms (REX.W): FIP/FDP stored as 64-bit offsets. */
function wide(i: Instruction): boolean {
  return (i.rex & 8) !== 0 || i.mnemonic.endsWith("64");
}

/** Writes `data` at byte `off` of a resolved multi-page location (held for commit). */
function writeAt(c: Ctx, loc: Loc, off: number, data: Uint8Array): void {
  let base = 0;
  let d = 0;
  for (let p = 0; p < loc.gpa.length && d < data.length; p++) {
    const end = base + loc.len[p];
    if (off + d < end) {
      const from = off + d - base;
      const n = Math.min(loc.len[p] - from, data.length - d);
      c.wGpa.push(loc.gpa[p] + from);
      c.wData.push(data.slice(d, d + n));
      d += n;
    }
    base = end;
  }
}

/**
 * The x87 part of the legacy region in the instruction's format: the 64-bit
 * format is the live one; the 32-bit format stores FIP/FDP as 32-bit offsets
 * with FCS/FDS = 0 (the selectors are not kept by the 64-bit state).
 */
function x87Image(live: Uint8Array, is64: boolean): Uint8Array {
  const img = live.slice(0, 24);
  if (!is64) {
    const v = view(img);
    v.setUint32(12, 0, true); // FCS + reserved
    v.setUint32(20, 0, true); // FDS + reserved
  }
  return img;
}

/**
 * Loads the x87 part from an image of the legacy region (`src` bytes 0-23
 * and 32-159). FCW keeps its defined bits only, bit 6 reading as 1 (see
 * {@linkcode fcwLoaded}), as after fldcw.
 */
function loadX87(live: Uint8Array, src: Uint8Array, is64: boolean): void {
  live.set(src.subarray(0, 24), 0);
  view(live).setUint16(0, fcwLoaded(view(src).getUint16(0, true)), true);
  if (!is64) {
    const v = view(live);
    v.setUint32(12, 0, true); // FIP[63:32]
    v.setUint32(20, 0, true); // FDP[63:32]
  }
  live.set(src.subarray(32, 160), 32);
}

/** Sets the x87 state to its initial configuration (SDM Vol. 1, 13.6). */
function initX87(live: Uint8Array): void {
  live.fill(0, 0, 24);
  view(live).setUint16(0, 0x037f, true); // FCW
  live.fill(0, 32, 160);
}

function xmmCount(c: Ctx): number {
  return c.mode === 64 ? 16 : 8;
}

// ---------------------------------------------------------------------------
// FXSAVE / FXRSTOR (SDM Vol. 2A)

/**
 * The 512-byte area, 16-byte aligned (#GP(0)). With alignment checking on, a
 * misaligned area raises #AC or #GP as the implementation chooses (SDM Vol.
 * 2A, FXSAVE/FXRSTOR, #AC; Vol. 3A, 6.15): AMD raises #AC(0) when the address
 * is not a multiple of 4 and #GP(0) when it is one but not of 16 (measured on
 * an EPYC (Zen)); Intel is modelled with #GP(0), which the SDM says every
 * implementation that does not signal #AC signals (not measured). XSAVE's
 * 64-byte rule is #GP(0) on both (measured on AMD).
 */
function fxCheck(c: Ctx, i: Instruction): Loc {
  if ((c.cpu.cr0 & (CR0.EM | CR0.TS)) !== 0n) throw new Fault(VEC.NM);
  const m = memOperand(i);
  const write = i.mnemonic.startsWith("fxsave");
  if (c.acOn && c.f.vendor !== "intel") c.alignCheck(c.linear(m.seg, c.ea(m), 512, write), 4);
  return c.resolve(m, write, 512, 16);
}

/** With EFER.FFXSR (AMD) in 64-bit mode at CPL 0, fxsave/fxrstor skip the XMM registers. */
function fastFx(c: Ctx): boolean {
  return c.f.vendor === "amd" && (c.cpu.efer & EFER.FFXSR) !== 0n && c.mode === 64 && c.cpl === 0;
}

const fxsave: Handler = (c, i) => {
  const loc = fxCheck(c, i);
  const live = c.ext();
  const is64 = wide(i);
  writeAt(c, loc, 0, x87Image(live, is64));
  writeAt(c, loc, 24, live.slice(24, 32)); // MXCSR, MXCSR_MASK
  writeAt(c, loc, 32, live.slice(32, 160)); // ST0-7
  if (!fastFx(c)) writeAt(c, loc, XMM0, live.slice(XMM0, XMM0 + 16 * xmmCount(c)));
};

const fxrstor: Handler = (c, i) => {
  const loc = fxCheck(c, i);
  const img = new Uint8Array(512);
  c.readBytes(loc, img);
  const mxcsr = view(img).getUint32(MXCSR, true);
  const live = c.ext();
  const osfxsr = (c.cpu.cr4 & CR4.OSFXSR) !== 0n;
  if (osfxsr && (mxcsr & ~mxcsrMask(live)) !== 0) throw gp0();
  loadX87(live, img, wide(i));
  if (osfxsr) {
    view(live).setUint32(MXCSR, mxcsr, true);
    if (!fastFx(c)) live.set(img.subarray(XMM0, XMM0 + 16 * xmmCount(c)), XMM0);
  }
  c.touchExt(3);
};

// ---------------------------------------------------------------------------
// The XSAVE feature set

/** Bits 0-62 of a state-component bitmap as a list of component numbers, ascending. */
function bitsOf(mask: bigint): number[] {
  const out: number[] = [];
  for (let k = 0; k < 63; k++) if ((mask >> BigInt(k)) & 1n) out.push(k);
  return out;
}

/** Where each component i >= 2 of `mask` goes in the compacted format (SDM Vol. 1, 13.4.3). */
function compactedOffsets(c: Ctx, mask: bigint): Map<number, number> {
  const out = new Map<number, number>();
  let off = EXT;
  for (const k of bitsOf(mask)) {
    if (k < 2) continue;
    const comp = component(c.cpu, c.f, k);
    if (comp.align64) off = (off + 63) & ~63;
    out.set(k, off);
    off += comp.size;
  }
  return out;
}

interface XsaveArgs {
  /** The requested-feature bitmap. */
  rfbm: bigint;
  /** The resolved XSAVE area (64-byte aligned). */
  m: MemOperand;
}

/** The common checks (SDM Vol. 1, 13.7-13.12) and the RFBM. */
function xsaveBegin(c: Ctx, i: Instruction, supervisor: boolean, feature: boolean): XsaveArgs {
  const cpu = c.cpu;
  if ((cpu.cr4 & CR4.OSXSAVE) === 0n || !feature) throw ud();
  if ((cpu.cr0 & CR0.TS) !== 0n) throw new Fault(VEC.NM);
  if (supervisor && (c.cpl !== 0 || c.v86)) throw gp0();
  const m = memOperand(i);
  const mask = (c.getReg(2, 4) << 32n) | c.getReg(0, 4);
  let enabled = cpu.xcr0;
  if (supervisor) enabled |= cpu.readMsr(IA32_XSS) ?? 0n;
  const rfbm = enabled & mask & ((1n << 63n) - 1n);
  return { rfbm, m };
}

/**
 * The bytes of the area an operation touches: the legacy region and header,
 * and components `touched` (i >= 2) at their standard offsets or at the
 * compacted offsets `layout` gives.
 */
function extent(c: Ctx, touched: bigint, layout: Map<number, number> | null): number {
  let end = EXT;
  for (const k of bitsOf(touched)) {
    if (k < 2) continue;
    const comp = component(c.cpu, c.f, k);
    end = Math.max(end, (layout ? layout.get(k)! : comp.offset) + comp.size);
  }
  return end;
}

/** The live position of component k >= 2 (standard format), checked against the area's size. */
function liveOffset(c: Ctx, k: number, i: Instruction): number {
  const comp = component(c.cpu, c.f, k);
  if (comp.supervisor) throw new Unsupported(`${i.text}: supervisor state component ${k}`);
  if (comp.offset + comp.size > c.ext().length) {
    throw new Unsupported(`${i.text}: state component ${k} is not in the extended state`);
  }
  return comp.offset;
}

function xsaveKind(kind: "xsave" | "xsaveopt" | "xsavec" | "xsaves"): Handler {
  return (c, i) => {
    const f = c.f;
    const feature = kind === "xsave"
      ? f.xsave
      : kind === "xsaveopt"
      ? f.xsaveopt
      : kind === "xsavec"
      ? f.xsavec
      : f.xsaves;
    const supervisor = kind === "xsaves";
    const { rfbm, m } = xsaveBegin(c, i, supervisor, feature);
    const compacted = kind === "xsavec" || kind === "xsaves";
    const live = c.ext();
    const lv = view(live);
    for (const k of bitsOf(rfbm)) if (k >= 2) liveOffset(c, k, i);
    const is64 = wide(i);
    let inuse = lv.getBigUint64(HEADER, true);
    const mxcsr = lv.getUint32(MXCSR, true);
    if (mxcsr !== MXCSR_DEFAULT) inuse |= 2n; // MXCSR is not tracked by XINUSE[1] (13.6)
    // The area is checked as far as it is written: every requested component (standard
    // format), or the components in use at their compacted places.
    const layout = compacted ? compactedOffsets(c, rfbm) : null;
    const loc = c.resolve(m, true, extent(c, compacted ? rfbm & inuse : rfbm, layout), 64);
    if (!compacted) {
      // Standard format (13.7): every requested component is saved; XSTATE_BV[i] for
      // i in RFBM becomes XINUSE[i], the other header bits stay as they were.
      const hdr = c.readValue(c.resolveAt(m.seg, c.ea(m) + BigInt(HEADER), 8, true));
      const bv = (hdr & ~rfbm) | (inuse & rfbm);
      if (rfbm & 1n) {
        writeAt(c, loc, 0, x87Image(live, is64));
        writeAt(c, loc, 32, live.slice(32, 160));
      }
      if (rfbm & 6n) writeAt(c, loc, MXCSR, live.slice(MXCSR, MXCSR + 8)); // with SSE or AVX
      if (rfbm & 2n) writeAt(c, loc, XMM0, live.slice(XMM0, XMM0 + 16 * xmmCount(c)));
      for (const k of bitsOf(rfbm)) {
        if (k < 2) continue;
        const off = liveOffset(c, k, i);
        writeAt(c, loc, off, live.slice(off, off + component(c.cpu, f, k).size));
      }
      const b = new Uint8Array(8);
      view(b).setBigUint64(0, bv, true);
      writeAt(c, loc, HEADER, b);
      return;
    }
    // Compacted format (13.10, 13.11): only components in use are saved; the header
    // gets XSTATE_BV = RFBM & XINUSE and XCOMP_BV = RFBM | bit 63; the rest of it is untouched.
    const save = rfbm & inuse;
    if (save & 1n) {
      writeAt(c, loc, 0, x87Image(live, is64));
      writeAt(c, loc, 32, live.slice(32, 160));
    }
    if (save & 2n) {
      writeAt(c, loc, MXCSR, live.slice(MXCSR, MXCSR + 8));
      writeAt(c, loc, XMM0, live.slice(XMM0, XMM0 + 16 * xmmCount(c)));
    }
    for (const [k, off] of layout!) {
      if (!((save >> BigInt(k)) & 1n)) continue;
      const from = liveOffset(c, k, i);
      writeAt(c, loc, off, live.slice(from, from + component(c.cpu, f, k).size));
    }
    const h = new Uint8Array(16);
    view(h).setBigUint64(0, save, true);
    view(h).setBigUint64(8, rfbm | (1n << 63n), true);
    writeAt(c, loc, HEADER, h);
  };
}

function xrstorKind(kind: "xrstor" | "xrstors"): Handler {
  return (c, i) => {
    const f = c.f;
    const supervisor = kind === "xrstors";
    const { rfbm, m } = xsaveBegin(c, i, supervisor, supervisor ? f.xsaves : f.xsave);
    // The area must be 64-byte aligned; its header says which format the rest is in.
    if ((c.linear(m.seg, c.ea(m), 1, false) & 63n) !== 0n) throw gp0();
    const hdr = new Uint8Array(64);
    c.readBytes(c.resolveAt(m.seg, c.ea(m) + BigInt(HEADER), 64, false), hdr);
    const hv = view(hdr);
    const xstateBv = hv.getBigUint64(0, true);
    const xcompBv = hv.getBigUint64(8, true);
    const compacted = (xcompBv >> 63n) === 1n;
    const cpu = c.cpu;
    const xss = supervisor ? cpu.readMsr(IA32_XSS) ?? 0n : 0n;
    if (!compacted) {
      // Standard form (13.8.1): #GP if XSTATE_BV has a bit not in XCR0 or bytes 23:8 are not 0;
      // XRSTORS has no standard form.
      if (supervisor) throw gp0();
      if ((xstateBv & ~cpu.xcr0) !== 0n || xcompBv !== 0n || hv.getBigUint64(16, true) !== 0n) {
        throw gp0();
      }
    } else {
      // Compacted form (13.8.2, 13.12): needs XSAVEC; #GP if XCOMP_BV names a component not
      // enabled, XSTATE_BV one not in XCOMP_BV, or bytes 63:16 are not 0.
      if (!f.xsavec && !supervisor) throw gp0();
      const comp = xcompBv & ((1n << 63n) - 1n);
      if ((comp & ~(cpu.xcr0 | xss)) !== 0n || (xstateBv & ~comp) !== 0n) throw gp0();
      for (let k = 16; k < 64; k += 8) if (hv.getBigUint64(k, true) !== 0n) throw gp0();
    }
    for (const k of bitsOf(rfbm)) if (k >= 2) liveOffset(c, k, i);
    // Offsets of the compacted format come from XCOMP_BV, not from RFBM; only the
    // components loaded from memory are read.
    const offs = compacted ? compactedOffsets(c, xcompBv & ((1n << 63n) - 1n)) : null;
    const size = extent(c, rfbm & xstateBv, offs);
    const area = new Uint8Array(size);
    c.readBytes(c.resolve(m, false, size, 64), area);
    const av = view(area);
    const live = c.ext();
    const lv = view(live);
    // MXCSR: the standard form loads it when RFBM[1] or RFBM[2]; the compacted form only
    // with RFBM[1], from memory if XSTATE_BV[1] else 1F80H. Illegal values: #GP(0).
    let mxcsr = -1;
    if (!compacted && (rfbm & 6n)) mxcsr = av.getUint32(MXCSR, true);
    else if (compacted && (rfbm & 2n)) {
      mxcsr = (xstateBv & 2n) ? av.getUint32(MXCSR, true) : MXCSR_DEFAULT;
    }
    if (mxcsr >= 0 && (mxcsr & ~mxcsrMask(live)) !== 0) throw gp0();
    // No fault is possible past this point: load the state.
    const is64 = wide(i);
    if (rfbm & 1n) {
      if (xstateBv & 1n) loadX87(live, area, is64);
      else initX87(live);
    }
    if (rfbm & 2n) {
      const n = 16 * xmmCount(c);
      if (xstateBv & 2n) live.set(area.subarray(XMM0, XMM0 + n), XMM0);
      else live.fill(0, XMM0, XMM0 + n);
    }
    if (mxcsr >= 0) lv.setUint32(MXCSR, mxcsr, true);
    for (const k of bitsOf(rfbm)) {
      if (k < 2) continue;
      const to = liveOffset(c, k, i);
      const n = component(cpu, f, k).size;
      if ((xstateBv >> BigInt(k)) & 1n) {
        const from = compacted ? offs!.get(k)! : to;
        live.set(area.subarray(from, from + n), to);
      } else {
        live.fill(0, to, to + n); // the initial value of AVX, AVX-512 and PKRU state is 0
      }
    }
    // XINUSE[i] = XSTATE_BV[i] for i in RFBM (13.8.3); SSE stays in use while MXCSR is not
    // its default, so that the live state (KVM_SET_XSAVE) keeps MXCSR.
    let live_bv = lv.getBigUint64(HEADER, true);
    live_bv = (live_bv & ~rfbm) | (xstateBv & rfbm);
    if (lv.getUint32(MXCSR, true) !== MXCSR_DEFAULT) live_bv |= 2n;
    lv.setBigUint64(HEADER, live_bv, true);
    c.touchExt(0);
  };
}

/** Handlers of this module by mnemonic. */
export const XSAVE_HANDLERS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  ["fxsave", fxsave],
  ["fxsave64", fxsave],
  ["fxrstor", fxrstor],
  ["fxrstor64", fxrstor],
  ["xsave", xsaveKind("xsave")],
  ["xsave64", xsaveKind("xsave")],
  ["xsaveopt", xsaveKind("xsaveopt")],
  ["xsaveopt64", xsaveKind("xsaveopt")],
  ["xsavec", xsaveKind("xsavec")],
  ["xsavec64", xsaveKind("xsavec")],
  ["xsaves", xsaveKind("xsaves")],
  ["xsaves64", xsaveKind("xsaves")],
  ["xrstor", xrstorKind("xrstor")],
  ["xrstor64", xrstorKind("xrstor")],
  ["xrstors", xrstorKind("xrstors")],
  ["xrstors64", xrstorKind("xrstors")],
]);

/**
 * String instructions (movs, cmps, stos, lods, scas, ins, outs) with the
 * REP/REPE/REPNE prefixes (SDM Vol. 2B, MOVS, CMPS, ..., REP/REPE/REPZ/REPNE/REPNZ),
 * and port I/O (in, out).
 *
 * Each iteration commits on its own (its memory write and its RSI/RDI/RCX
 * updates), as the processor does: a fault in iteration k reports the fault
 * with the k completed iterations kept and RIP on the instruction. After
 * `maxRep` iterations with more to do (or after one iteration when RFLAGS.TF
 * is set) RIP also stays on the instruction, with RCX updated: the guest
 * executes it again, as after an interrupt.
 *
 * Port I/O needs the caller's {@linkcode PortIo}; without one, in/out/ins/outs
 * are "unsupported".
 *
 * Private module of exec.ts.
 *
 * @module
 */

import { type Handler, sub } from "./_exec_alu.ts";
import { type Ctx, F, gp0, type Loc, MASK, Unsupported } from "./_exec_ctx.ts";
import { type Instruction, SEG, type SegIndex } from "./types.ts";

const K_MOVS = 0, K_CMPS = 1, K_STOS = 2, K_LODS = 3, K_SCAS = 4, K_INS = 5, K_OUTS = 6;

/** Kind by opcode (legacy map). */
function kindOf(opcode: number): number {
  switch (opcode & 0xfe) {
    case 0xa4:
      return K_MOVS;
    case 0xa6:
      return K_CMPS;
    case 0xaa:
      return K_STOS;
    case 0xac:
      return K_LODS;
    case 0xae:
      return K_SCAS;
    case 0x6c:
      return K_INS;
    default:
      return K_OUTS;
  }
}

/**
 * Whether the I/O port range [port, port + size) may be accessed (SDM Vol. 1,
 * 19.5): always in real mode and at CPL <= IOPL; otherwise (and always in
 * virtual-8086 mode) every bit of the TSS I/O permission bitmap must be 0.
 */
export function ioAllowed(c: Ctx, port: number, size: number): boolean {
  const iopl = (c.flags >> 12) & 3;
  if (c.real || (!c.v86 && c.cpl <= iopl)) return true;
  const tr = c.cpu.tr;
  // A 32/64-bit TSS (type 9 or 11) with the bitmap offset at byte 102.
  if (tr.unusable || (tr.type & 7) !== 1 && (tr.type & 7) !== 3 || tr.limit < 103) return false;
  const base = c.mode === 64 ? tr.base : tr.base & 0xffffffffn;
  const off = Number(c.readValue(c.translateRange(base + 102n, 2, false, true)));
  const first = off + (port >> 3);
  const last = off + ((port + size - 1) >> 3);
  if (last > tr.limit) return false;
  const bits = Number(
    c.readValue(c.translateRange(base + BigInt(first), last - first + 1, false, true)),
  );
  const mask = ((1 << size) - 1) << (port & 7);
  return (bits & mask) === 0;
}

// A one-page translation cache per operand for the iterations of one instruction.
interface PageCache {
  page: bigint;
  gpa: number;
  write: boolean;
}
const srcCache: PageCache = { page: -1n, gpa: 0, write: false };
const dstCache: PageCache = { page: -1n, gpa: 0, write: false };

/**
 * Segment checks and the alignment check (#AC for a misaligned element, as
 * {@linkcode Ctx.resolveAt} orders them) every time; the page walk only when
 * the page changes.
 */
function resolveCached(
  c: Ctx,
  cache: PageCache,
  seg: SegIndex,
  off: bigint,
  n: number,
  write: boolean,
): Loc {
  const lin = c.linear(seg, off, n, write);
  if (c.acOn) c.alignCheck(lin, n);
  const page = lin >> 12n;
  const inPage = 4096 - Number(lin & 0xfffn);
  if (n <= inPage && page === cache.page && (cache.write || !write)) {
    return { linear: lin, size: n, gpa: [cache.gpa + 4096 - inPage], len: [n] };
  }
  const loc = c.translateRange(lin, n, write, false);
  if (loc.gpa.length === 1) {
    cache.page = page;
    cache.gpa = loc.gpa[0] - (4096 - inPage);
    cache.write = write;
  }
  return loc;
}

/** The string instruction handler (all seven kinds, with or without a REP prefix). */
export function stringOp(c: Ctx, i: Instruction): void {
  const kind = kindOf(i.opcode);
  let n = (i.opcode & 1) === 0 ? 1 : i.opSize;
  if ((kind === K_INS || kind === K_OUTS) && n === 8) n = 4;
  if ((kind === K_INS || kind === K_OUTS) && !c.io) {
    throw new Unsupported(`${i.text}: no port I/O here`);
  }
  const as = i.addrSize;
  const am = MASK[as];
  const srcSeg: SegIndex = i.segOverride ?? SEG.ds;
  const step = BigInt((c.flags & F.DF) ? -n : n);
  const rep = i.rep !== null;
  const condRep = rep && (kind === K_CMPS || kind === K_SCAS);
  const port = Number(c.getReg(2, 2));
  if ((kind === K_INS || kind === K_OUTS) && !ioAllowed(c, port, n)) throw gp0();
  srcCache.page = dstCache.page = -1n;
  const max = (c.flags & F.TF) ? 1 : c.maxRep;
  c.keepPartial = true;
  let done = 0;
  for (;;) {
    if (rep && c.getReg(1, as) === 0n) break;
    const rsi = c.getReg(6, as);
    const rdi = c.getReg(7, as);
    switch (kind) {
      case K_MOVS: {
        const src = resolveCached(c, srcCache, srcSeg, rsi, n, false);
        const dst = resolveCached(c, dstCache, SEG.es, rdi, n, true);
        c.writeValue(dst, c.readValue(src));
        break;
      }
      case K_CMPS: {
        const a = c.readValue(resolveCached(c, srcCache, srcSeg, rsi, n, false));
        const b = c.readValue(resolveCached(c, dstCache, SEG.es, rdi, n, false));
        sub(c, a, b, 0n, n);
        break;
      }
      case K_STOS:
        c.writeValue(resolveCached(c, dstCache, SEG.es, rdi, n, true), c.getReg(0, n));
        break;
      case K_LODS:
        c.setReg(0, n, c.readValue(resolveCached(c, srcCache, srcSeg, rsi, n, false)));
        break;
      case K_SCAS: {
        const b = c.readValue(resolveCached(c, dstCache, SEG.es, rdi, n, false));
        sub(c, c.getReg(0, n), b, 0n, n);
        break;
      }
      case K_INS: {
        // The destination is checked before the port is read (the read may have effects).
        const dst = resolveCached(c, dstCache, SEG.es, rdi, n, true);
        c.writeValue(dst, BigInt(c.io!.in(port, n) >>> 0) & MASK[n]);
        break;
      }
      default: {
        const v = c.readValue(resolveCached(c, srcCache, srcSeg, rsi, n, false));
        c.io!.out(port, n, Number(v));
      }
    }
    c.flushWrites();
    if (kind === K_MOVS || kind === K_CMPS || kind === K_LODS || kind === K_OUTS) {
      c.setReg(6, as, (rsi + step) & am);
    }
    if (kind !== K_LODS && kind !== K_OUTS) c.setReg(7, as, (rdi + step) & am);
    if (!rep) break;
    const cnt = (c.getReg(1, as) - 1n) & am;
    c.setReg(1, as, cnt);
    done++;
    if (cnt === 0n) break;
    // REPE stops when ZF = 0, REPNE when ZF = 1 (cmps and scas only).
    if (condRep && ((c.flags & F.ZF) !== 0) !== (i.rep === "rep")) break;
    if (done >= max) {
      c.incomplete = true; // more to do: the guest executes the instruction again
      break;
    }
  }
}

/** in al/ax/eax, imm8 or dx. */
const inOp: Handler = (c, i) => {
  const d = i.operands[0];
  const p = i.operands[1];
  if (!d || !p || d.kind !== "reg") throw new Unsupported(i.text);
  if (!c.io) throw new Unsupported(`${i.text}: no port I/O here`);
  const port = Number(c.read(p) & 0xffffn);
  const n = d.size;
  if (!ioAllowed(c, port, n)) throw gp0();
  c.setReg(0, n, BigInt(c.io.in(port, n) >>> 0) & MASK[n]);
};

/** out imm8 or dx, al/ax/eax. */
const outOp: Handler = (c, i) => {
  const p = i.operands[0];
  const s = i.operands[1];
  if (!s || !p || s.kind !== "reg") throw new Unsupported(i.text);
  if (!c.io) throw new Unsupported(`${i.text}: no port I/O here`);
  const port = Number(c.read(p) & 0xffffn);
  const n = s.size;
  if (!ioAllowed(c, port, n)) throw gp0();
  c.io.out(port, n, Number(c.getReg(0, n)));
};

/** Handlers of this module by mnemonic (the decoder names string instructions as objdump does: movs, stos...). */
export const STRING_HANDLERS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  ...["movs", "cmps", "stos", "lods", "scas", "ins", "outs"].map((
    m,
  ): [string, Handler] => [m, stringOp]),
  ["in", inOp],
  ["out", outOp],
]);

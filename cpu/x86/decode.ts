/**
 * The x86 instruction decoder of dhyve's fallback emulator: bytes in,
 * a typed {@linkcode Instruction} out, in 16-, 32- and 64-bit modes.
 *
 * Table-driven (the opcode maps live in `_decode_tables.ts` and
 * `_decode_vex.ts`): a decode walks prefixes, the opcode map, ModRM, SIB,
 * displacement and immediates once and allocates only the result. The
 * operand objects and the text form are built lazily, on first access, so
 * a linear sweep that needs only lengths and mnemonics stays fast.
 *
 * Behaviour follows the Intel SDM Vol. 2 (chapter 2, instruction format;
 * appendix A, opcode maps); names and the text form follow
 * `objdump -d -M intel` (GNU binutils), including its choices where the
 * vendors differ: a 66 prefix on a near branch in 64-bit mode makes it a
 * 16-bit branch (AMD; Intel ignores it), and REX.W on an indirect far
 * call/jmp is ignored (m16:32).
 *
 * Text form: objdump's Intel syntax with its size keywords (`DWORD PTR`,
 * `XMMWORD PTR`, `OWORD PTR` for cmpxchg16b...), its prefix words (`lock`,
 * `rep`, `repz`, `repnz`, `bnd`, `notrack`, `data16`, `addr32`, `rex.W`,
 * unused segment prefixes), hexadecimal immediates of the operand's width
 * and absolute branch targets; one space between words, no `# comment`
 * and no `<symbol>`. The cmpps/pclmulqdq predicate pseudo-ops (cmpeqps,
 * pclmullqlqdq) are spelled as objdump does, with the immediate left out
 * of the text but kept in `operands`.
 *
 * Errors: {@linkcode UdError} for encodings that raise #UD on the CPU
 * (invalid in the mode, LOCK misuse, register where memory is required...),
 * {@linkcode TruncatedError} when the bytes end before the instruction,
 * {@linkcode TooLongError} past 15 bytes (#GP(0) on the CPU), and a plain
 * {@linkcode DecodeError} for encodings this decoder does not know (some
 * AVX-512/AMX/FMA4/VIA forms): it never guesses.
 *
 * Where this decoder deliberately differs from objdump (the CPU wins):
 * - LOCK on a form that does not take it or on a register destination,
 *   a reserved segment/control/debug/bound register, MOV to CS, a VEX/EVEX/XOP
 *   prefix after 66/F2/F3/LOCK/REX, VEX.vvvv not 1111b where unused, the
 *   386 test-register moves (0F 24/26) and rd/wrfsbase outside 64-bit mode
 *   are {@linkcode UdError}; objdump prints them.
 * - A REX prefix before fwait (9B) belongs to it: objdump prints the REX
 *   alone.
 * - 66h on a rel8 branch in 16/32-bit mode truncates the target to the
 *   operand size; objdump ignores the prefix there (it does so in 64-bit
 *   mode too, and so does this decoder).
 * - Far pointers print their whole offset (objdump 2.40 prints 16 bits).
 *
 * Other things worth knowing:
 * - fwait followed by an x87 instruction decodes as one instruction, as
 *   objdump prints it (`9B DF E0` is `fstsw ax`, 3 bytes): the executor
 *   does the wait first.
 * - In 64-bit mode an ES/CS/SS/DS override is recorded in `segOverride` and
 *   in memory operands (its base is 0 there, SDM Vol. 1, 3.3.7.1).
 * - `bytes` is a view of the input buffer.
 * - EVEX disp8*N uses the full-vector N (or the element size with
 *   broadcast); tuple types with another N (scalar, half, tuple1...) get a
 *   wrong displacement value but the right length.
 *
 * @module
 */
import {
  DecodeError,
  type Instruction,
  type MemOperand,
  type Mode,
  NO_REG,
  type OpcodeMap,
  type Operand,
  RIP_BASE,
  type SegIndex,
} from "./types.ts";
import {
  AMD3DNOW,
  CMP_PREDICATES,
  F_ASZ,
  F_BND,
  F_D64,
  F_FWAIT,
  F_HLE,
  F_HLEM,
  F_HLEX,
  F_I64,
  F_L0,
  F_LOCK,
  F_MNW,
  F_MODANY,
  F_MOVABS,
  F_NO66,
  F_NOTRACK,
  F_NOW,
  F_O64,
  F_PRED,
  F_REP,
  F_SFX,
  type Form,
  FORM_3DNOW,
  FORM_PAUSE,
  FORM_XCHG_AX,
  FORM_XCHG_R8,
  K_FORM,
  K_KEEP,
  K_L,
  K_MOD,
  K_MODE,
  K_OSZ,
  K_PFX,
  K_REG,
  K_RM,
  K_W,
  K_W64,
  M_A,
  M_B,
  M_BA,
  M_BE,
  M_BR,
  M_C,
  M_D,
  M_E,
  M_FIX,
  M_G,
  M_H,
  M_I,
  M_J,
  M_KE,
  M_KH,
  M_KR,
  M_L,
  M_M,
  M_N,
  M_O,
  M_ONE,
  M_P,
  M_Q,
  M_R,
  M_RA,
  M_S,
  M_SEG,
  M_ST,
  M_STI,
  M_U,
  M_V,
  M_W,
  M_X,
  M_XLAT,
  M_XMM0,
  M_Y,
  M_Z,
  MAP_0F38,
  MAP_0F3A,
  needsModrm,
  type Node,
  ONE_BYTE,
  PCLMUL_NAMES,
  type Spec,
  SZ_A,
  SZ_ADDR,
  SZ_C,
  SZ_ENV,
  SZ_FSAVE,
  SZ_P,
  SZ_S,
  SZ_V,
  SZ_VQ,
  SZ_X,
  SZ_XH,
  SZ_XO,
  SZ_XQ,
  SZ_Y,
  SZ_Z,
  TWO_BYTE,
} from "./_decode_tables.ts";
import {
  EVEX_0F,
  EVEX_0F38,
  EVEX_0F3A,
  VEX_0F,
  VEX_0F38,
  VEX_0F3A,
  XOP_8,
  XOP_9,
  XOP_A,
} from "./_decode_vex.ts";

export { DecodeError };

/**
 * The bytes encode an instruction that is invalid on the CPU (it raises
 * #UD): an opcode invalid in the mode, LOCK on a form that does not take
 * it, a register where the form requires memory, a reserved register...
 * The executor raises #UD for it.
 */
export class UdError extends DecodeError {
  /** Builds the error; the message says "#UD". */
  constructor(bytes: Uint8Array, at: number, why: string) {
    super(bytes, at, `#UD: ${why}`);
    this.name = "UdError";
  }
}

/**
 * The bytes end before the instruction does: read more bytes (the next
 * page, say) and decode again. `at` is how many bytes were consumed.
 */
export class TruncatedError extends DecodeError {
  /** Builds the error. */
  constructor(bytes: Uint8Array, at: number) {
    super(bytes, at, "truncated: the instruction goes on past the bytes given");
    this.name = "TruncatedError";
  }
}

/**
 * The instruction would be longer than 15 bytes: the CPU raises #GP(0)
 * (SDM Vol. 2, 2.3.11; Vol. 3A, 6.15 "Interrupt 13").
 */
export class TooLongError extends DecodeError {
  /** Builds the error; the message says "#GP(0)". */
  constructor(bytes: Uint8Array, at: number) {
    super(bytes, at, "#GP(0): longer than 15 bytes");
    this.name = "TooLongError";
  }
}

// ---------------------------------------------------------------------------
// Prefix classes (SDM Vol. 2, 2.1.1)

const P_SEG = 1;
const P_OSZ = 2;
const P_ASZ = 3;
const P_LOCK = 4;
const P_REP = 5;
const P_REX = 6;

const PREFIX = new Uint8Array(256);
for (const b of [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65]) PREFIX[b] = P_SEG;
PREFIX[0x66] = P_OSZ;
PREFIX[0x67] = P_ASZ;
PREFIX[0xf0] = P_LOCK;
PREFIX[0xf2] = P_REP;
PREFIX[0xf3] = P_REP;
for (let b = 0x40; b < 0x50; b++) PREFIX[b] = P_REX;

const SEG_OF_PREFIX: Record<number, SegIndex> = {
  0x26: 0,
  0x2e: 1,
  0x36: 2,
  0x3e: 3,
  0x64: 4,
  0x65: 5,
};

type Slot = Node | null | undefined;

const MAP_IDS: OpcodeMap[] = ["legacy", "0f", "0f38", "0f3a", "3dnow", "xop8", "xop9", "xopa"];
const MAP_LEGACY = 0;
const MAP_0F = 1;
const MAP_38 = 2;
const MAP_3A = 3;
const MAP_3DNOW = 4;
const MAP_XOP8 = 5;
const MAP_XOP9 = 6;
const MAP_XOPA = 7;

function modrmTable(t: readonly Slot[]): Uint8Array {
  const out = new Uint8Array(256);
  for (let i = 0; i < 256; i++) out[i] = needsModrm(t[i]) ? 1 : 0;
  return out;
}

const NEED_1 = modrmTable(ONE_BYTE);
const NEED_0F = modrmTable(TWO_BYTE);
const NEED_VEX0F = modrmTable(VEX_0F);
const NEED_EVEX0F = modrmTable(EVEX_0F);

// VEX.vvvv etc.
const VK_NONE = 0;
const VK_VEX2 = 1;
const VK_VEX3 = 2;
const VK_EVEX = 3;
const VK_XOP = 4;
const VEX_KIND_NAMES = [null, "vex2", "vex3", "evex", "xop"] as const;

// ---------------------------------------------------------------------------
// Decoder state: module-level scratch, reset by every decode (JavaScript
// runs one decode at a time), so a decode allocates only its result.

let B: Uint8Array = new Uint8Array(0);
let O = 0; // offset of the instruction in B
let P = 0; // bytes consumed
let LIM = 0; // bytes available (from O)
let MODE: Mode = 64;

let p66 = false;
let p67 = false;
let lock = false;
let repLast = 0; // 0, 0xf2, 0xf3
let segPfx = -1;
let rex = 0;
let npfx = 0;
const pfxBytes = new Uint8Array(16);

let vexKind = 0;
let vexW = false;
let vexL = 0; // 0: 128, 1: 256, 2: 512
let vexV = 0; // vvvv, inverted back (with V' for EVEX)
let vexPP = 0;
let evexP2 = 0;

let modrm = -1;
let mMod = 0;
let mReg = 0;
let mRm = 0;

// memory operand (from ModRM or moffs)
let memBase = NO_REG;
let memIndex = NO_REG;
let memScale: 1 | 2 | 4 | 8 = 1;
let memDispLo = 0; // low 32 bits (signed for ModRM displacements)
let memDispHi = 0; // high 32 bits for moffs64
let memDispSize = 0; // bytes of displacement in the encoding
let memSegDefault: SegIndex = 3;

let imm0Lo = 0;
let imm0Hi = 0;
let imm1 = 0;
let nimm = 0;
let relDisp = 0;
let farSel = 0;

let mandatory: 0 | 0x66 | 0xf2 | 0xf3 = 0;
let opSize: 2 | 4 | 8 = 4;
let addrSize: 2 | 4 | 8 = 8;

function fail(why: string): never {
  throw new DecodeError(B.slice(O, O + Math.min(LIM, 15)), P, why);
}

function ud(why: string): never {
  throw new UdError(B.slice(O, O + Math.min(LIM, 15)), P, why);
}

/** Reads the next byte, checking the 15-byte limit and the end of the input. */
function next(): number {
  if (P >= 15) throw new TooLongError(B.slice(O, O + 15), P);
  if (P >= LIM) throw new TruncatedError(B.slice(O, O + LIM), P);
  return B[O + P++];
}

/** The next byte without consuming it. */
function peek(): number {
  if (P >= 15) throw new TooLongError(B.slice(O, O + 15), P);
  if (P >= LIM) throw new TruncatedError(B.slice(O, O + LIM), P);
  return B[O + P];
}

function read16(): number {
  const a = next();
  return a | (next() << 8);
}

function read32(): number {
  const a = next();
  const b = next();
  const c = next();
  return (a | (b << 8) | (c << 16) | (next() << 24)) | 0;
}

// ---------------------------------------------------------------------------
// ModRM and SIB (SDM Vol. 2, 2.1.5, Tables 2-1, 2-2, 2-3; 2.2.1.6 RIP-relative)

function readModrm(): void {
  modrm = next();
  mMod = modrm >> 6;
  mReg = (modrm >> 3) & 7;
  mRm = modrm & 7;
}

/** REX.B / VEX.B, REX.X / VEX.X as 0 or 8. */
function rexB(): number {
  return rex & 1 ? 8 : 0;
}
function rexX(): number {
  return rex & 2 ? 8 : 0;
}

const BASE16 = [3, 3, 5, 5, 6, 7, 5, 3]; // bx, bx, bp, bp, si, di, bp, bx
const INDEX16 = [6, 7, 6, 7, NO_REG, NO_REG, NO_REG, NO_REG]; // si, di, si, di

function readMem(): void {
  memScale = 1;
  memDispHi = 0;
  memIndex = NO_REG;
  if (addrSize === 2) {
    // 16-bit addressing: Table 2-1.
    if (mMod === 0 && mRm === 6) {
      memBase = NO_REG;
      memDispLo = read16();
      memDispSize = 2;
      memSegDefault = 3;
      return;
    }
    memBase = BASE16[mRm];
    memIndex = INDEX16[mRm];
    // [bp+si], [bp+di] and [bp+disp] default to SS (SDM Vol. 1, 3.7.5).
    memSegDefault = mRm === 2 || mRm === 3 || mRm === 6 ? 2 : 3;
    if (mMod === 1) {
      memDispLo = (next() << 24) >> 24;
      memDispSize = 1;
    } else if (mMod === 2) {
      memDispLo = (read16() << 16) >> 16;
      memDispSize = 2;
    } else {
      memDispLo = 0;
      memDispSize = 0;
    }
    return;
  }
  // 32/64-bit addressing: Tables 2-2 and 2-3.
  let base: number;
  if (mRm === 4) {
    const sib = next();
    memScale = (1 << (sib >> 6)) as 1 | 2 | 4 | 8;
    const idx = ((sib >> 3) & 7) | rexX();
    memIndex = idx === 4 ? NO_REG : idx; // index 100b without REX.X: none
    base = sib & 7;
    if (base === 5 && mMod === 0) {
      memBase = NO_REG;
      memDispLo = read32();
      memDispSize = 4;
      memSegDefault = 3;
      return;
    }
    base |= rexB();
  } else if (mRm === 5 && mMod === 0) {
    // disp32: RIP-relative in 64-bit mode, absolute otherwise.
    memBase = MODE === 64 ? RIP_BASE : NO_REG;
    memDispLo = read32();
    memDispSize = 4;
    memSegDefault = 3;
    return;
  } else {
    base = mRm | rexB();
  }
  memBase = base;
  memSegDefault = base === 4 || base === 5 ? 2 : 3; // rsp/rbp bases use SS
  if (mMod === 1) {
    memDispLo = (next() << 24) >> 24;
    memDispSize = 1;
  } else if (mMod === 2) {
    memDispLo = read32();
    memDispSize = 4;
  } else {
    memDispLo = 0;
    memDispSize = 0;
  }
}

// ---------------------------------------------------------------------------
// The decoded instruction

const GPR64 = [
  "rax",
  "rcx",
  "rdx",
  "rbx",
  "rsp",
  "rbp",
  "rsi",
  "rdi",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
];
const GPR32 = [
  "eax",
  "ecx",
  "edx",
  "ebx",
  "esp",
  "ebp",
  "esi",
  "edi",
  "r8d",
  "r9d",
  "r10d",
  "r11d",
  "r12d",
  "r13d",
  "r14d",
  "r15d",
];
const GPR16 = [
  "ax",
  "cx",
  "dx",
  "bx",
  "sp",
  "bp",
  "si",
  "di",
  "r8w",
  "r9w",
  "r10w",
  "r11w",
  "r12w",
  "r13w",
  "r14w",
  "r15w",
];
const GPR8 = [
  "al",
  "cl",
  "dl",
  "bl",
  "spl",
  "bpl",
  "sil",
  "dil",
  "r8b",
  "r9b",
  "r10b",
  "r11b",
  "r12b",
  "r13b",
  "r14b",
  "r15b",
];
const GPR8H = ["al", "cl", "dl", "bl", "ah", "ch", "dh", "bh"];
const SEGS = ["es", "cs", "ss", "ds", "fs", "gs", "?", "?"];

function gprName(index: number, size: number, high8: boolean): string {
  switch (size) {
    case 8:
      return GPR64[index];
    case 4:
      return GPR32[index];
    case 2:
      return GPR16[index];
    default:
      return high8 ? GPR8H[index] : GPR8[index];
  }
}

const PTR_WORDS: Record<number, string> = {
  1: "BYTE PTR ",
  2: "WORD PTR ",
  4: "DWORD PTR ",
  6: "FWORD PTR ",
  8: "QWORD PTR ",
  10: "TBYTE PTR ",
  16: "XMMWORD PTR ",
  32: "YMMWORD PTR ",
  64: "ZMMWORD PTR ",
};

function hex(v: bigint): string {
  return "0x" + v.toString(16);
}

function maskOf(size: number): bigint {
  return (1n << BigInt(size * 8)) - 1n;
}

/** The raw facts of one decode, kept so operands and text can be built on demand. */
interface Raw {
  form: Form;
  mode: Mode;
  ip: bigint;
  rex: number;
  modrm: number;
  vexKind: number;
  vexW: boolean;
  vexL: number;
  vexV: number;
  evexP2: number;
  memBase: number;
  memIndex: number;
  memScale: 1 | 2 | 4 | 8;
  memDispLo: number;
  memDispHi: number;
  memDispSize: number;
  memSeg: SegIndex;
  memSegOverride: boolean;
  imm0Lo: number;
  imm0Hi: number;
  imm1: number;
  relDisp: number;
  farSel: number;
  npfx: number;
  pfx: Uint8Array | null;
  /** 66 was an operand-size prefix (not mandatory, not ignored). */
  use66: boolean;
  /** 66 was consumed as a mandatory prefix. */
  p66Mand: boolean;
  /** The decode went through a mandatory-prefix selector. */
  pfxSel: boolean;
  /** The decode went through a REX.W/VEX.W selector. */
  wSel: boolean;
  /** LOCK MOV CR0 read as MOV CR8. */
  crHi: boolean;
  fwait: boolean;
  evexP0: number;
  osz: number;
}

/** A decoded instruction; `operands` and `text` are built on first access. */
class Decoded implements Instruction {
  readonly mode: Mode;
  readonly length: number;
  readonly mnemonic: string;
  readonly opSize: 2 | 4 | 8;
  readonly addrSize: 2 | 4 | 8;
  readonly lock: boolean;
  readonly rep: "rep" | "repne" | null;
  readonly segOverride: SegIndex | null;
  readonly rex: number;
  readonly map: OpcodeMap;
  readonly opcode: number;
  readonly modrm: number;
  readonly mandatory: 0 | 0x66 | 0xf2 | 0xf3;
  #src: Uint8Array;
  #off: number;
  #raw: Raw;
  #ops: Operand[] | null = null;
  #text: string | null = null;
  #bytes: Uint8Array | null = null;

  constructor(
    src: Uint8Array,
    off: number,
    length: number,
    mnemonic: string,
    map: number,
    opcode: number,
    raw: Raw,
  ) {
    this.#src = src;
    this.#off = off;
    this.#raw = raw;
    this.mode = raw.mode;
    this.length = length;
    this.mnemonic = mnemonic;
    this.opSize = opSize;
    this.addrSize = addrSize;
    this.lock = lock;
    this.rep = repLast === 0 || mandatory === repLast ? null : repLast === 0xf3 ? "rep" : "repne";
    this.segOverride = segPfx < 0 ? null : (segPfx as SegIndex);
    this.rex = vexKind === VK_NONE ? rex : 0; // VEX/EVEX/XOP carry their R/X/B/W in `vex`
    this.map = MAP_IDS[map];
    this.opcode = opcode;
    this.modrm = raw.modrm;
    this.mandatory = mandatory;
  }

  /** The instruction's bytes (a view of the input). */
  get bytes(): Uint8Array {
    return this.#bytes ??= this.#src.subarray(this.#off, this.#off + this.length);
  }

  /** VEX/EVEX/XOP information. */
  get vex(): Instruction["vex"] {
    const r = this.#raw;
    if (r.vexKind === VK_NONE) return null;
    return {
      kind: VEX_KIND_NAMES[r.vexKind]!,
      l: (128 << r.vexL) as 128 | 256 | 512,
      w: r.vexW,
      vvvv: r.vexV,
    };
  }

  /** Operands in Intel order. */
  get operands(): readonly Operand[] {
    return this.#ops ??= buildOperands(this, this.#raw);
  }

  /** objdump-style Intel text. */
  get text(): string {
    return this.#text ??= formatText(this, this.#raw);
  }
}

// ---------------------------------------------------------------------------
// Operand materialisation (lazy)

function vecClass(width: number): "xmm" | "ymm" | "zmm" {
  return width >= 64 ? "zmm" : width === 32 ? "ymm" : "xmm";
}

function vecWidth(sp: Spec, r: Raw): number {
  if (sp.rw === SZ_X) return 16 << r.vexL;
  return sp.rw || 16;
}

function buildOperands(insn: Decoded, r: Raw): Operand[] {
  const out: Operand[] = [];
  const os = insn.opSize;
  const mode = r.mode;
  const rx = r.rex;
  const evex = r.vexKind === VK_EVEX;
  // EVEX.R' (P0 bit 4, inverted) extends ModRM.reg to 32 vector registers (SDM Vol. 2, 2.7.2).
  const reg = ((r.modrm >> 3) & 7) | (rx & 4 ? 8 : 0) | (evex && !(r.evexP0 & 0x10) ? 16 : 0);
  const rmReg = (r.modrm & 7) | (rx & 1 ? 8 : 0);
  const isReg = r.modrm >= 0xc0;
  let immIdx = 0;
  const sz = (s: number) => sizeFor(s, os, insn.addrSize, r);
  for (const sp of r.form.ops) {
    switch (sp.m) {
      case M_E:
      case M_R:
      case M_RA:
        if (isReg || sp.m !== M_E) {
          const s = sz(sp.s);
          out.push(gpr(rmReg, s, rx, mode));
        } else out.push(mem(insn, r, sp));
        break;
      case M_M:
        out.push(mem(insn, r, sp));
        break;
      case M_G:
        out.push(gpr(((r.modrm >> 3) & 7) | (rx & 4 ? 8 : 0), sz(sp.s), rx, mode));
        break;
      case M_Z:
        out.push(gpr(zReg(insn, r), sz(sp.s), rx, mode));
        break;
      case M_FIX:
        out.push({ kind: "reg", cls: "gpr", index: sp.r, size: sz(sp.s) });
        break;
      case M_SEG:
        out.push({ kind: "reg", cls: "seg", index: sp.r, size: 2 });
        break;
      case M_S:
        out.push({ kind: "reg", cls: "seg", index: (r.modrm >> 3) & 7, size: 2 });
        break;
      case M_C:
        out.push({
          kind: "reg",
          cls: "cr",
          index: ((r.modrm >> 3) & 7) | (rx & 4 || r.crHi ? 8 : 0),
          size: sz(sp.s),
        });
        break;
      case M_D:
        out.push({ kind: "reg", cls: "dr", index: (r.modrm >> 3) & 7, size: sz(sp.s) });
        break;
      case M_I: {
        let v: bigint;
        let s: number;
        if (immIdx === 0) {
          immIdx++;
          const n = sp.s === SZ_V ? os : sp.s === SZ_Z ? (os === 2 ? 2 : 4) : sp.s;
          v = n === 8 ? (BigInt(r.imm0Hi >>> 0) << 32n) | BigInt(r.imm0Lo >>> 0) : BigInt(r.imm0Lo);
          // Ib sign-extended to the operand size (Ibs), Iz sign-extended to 64 bits.
          if (sp.r === 1) s = os;
          else if (sp.s === SZ_Z) s = os;
          else s = n;
          v = BigInt.asUintN(s * 8, v);
        } else {
          s = sp.s;
          v = BigInt(r.imm1 >>> 0) & maskOf(s);
        }
        out.push({ kind: "imm", value: v, size: s });
        break;
      }
      case M_ONE:
        out.push({ kind: "imm", value: 1n, size: 1 });
        break;
      case M_J: {
        const next = r.ip + BigInt(insn.length);
        const bits = mode === 64 && os === 8 ? 64 : os * 8;
        out.push({ kind: "rel", target: BigInt.asUintN(bits, next + BigInt(r.relDisp)) });
        break;
      }
      case M_A:
        out.push({ kind: "far", selector: r.farSel, offset: BigInt(r.imm0Lo >>> 0) });
        break;
      case M_O:
      case M_X:
      case M_Y:
      case M_XLAT:
        out.push(mem(insn, r, sp));
        break;
      case M_V:
        out.push(vreg(reg, vecWidth(sp, r)));
        break;
      case M_W:
      case M_U:
        if (isReg) {
          out.push(vreg(rmReg | (evex && !(r.evexP0 & 0x40) ? 16 : 0), vecWidth(sp, r)));
        } else out.push(mem(insn, r, sp));
        break;
      case M_H:
        out.push(vreg(r.vexV, vecWidth(sp, r)));
        break;
      case M_L:
        out.push(vreg((r.imm0Lo >> 4) & (mode === 64 ? 15 : 7), vecWidth(sp, r)));
        break;
      case M_XMM0:
        out.push({ kind: "reg", cls: "xmm", index: 0, size: 16 });
        break;
      case M_P:
        out.push({ kind: "reg", cls: "mmx", index: (r.modrm >> 3) & 7, size: 8 });
        break;
      case M_Q:
      case M_N:
        if (isReg) out.push({ kind: "reg", cls: "mmx", index: r.modrm & 7, size: 8 });
        else out.push(mem(insn, r, sp));
        break;
      case M_B:
        out.push(gpr(r.vexV & 15, sz(sp.s), 0x40, mode));
        break;
      case M_ST:
        out.push({ kind: "reg", cls: "st", index: 0, size: 10 });
        break;
      case M_STI:
        out.push({ kind: "reg", cls: "st", index: r.modrm & 7, size: 10 });
        break;
      case M_BR:
        out.push({ kind: "reg", cls: "bnd", index: (r.modrm >> 3) & 7, size: 16 });
        break;
      case M_BE:
        if (isReg) out.push({ kind: "reg", cls: "bnd", index: r.modrm & 7, size: 16 });
        else out.push(mem(insn, r, sp));
        break;
      case M_BA:
        if (isReg) out.push(gpr(rmReg, insn.addrSize, rx, mode));
        else out.push(mem(insn, r, sp));
        break;
      case M_KR:
        out.push({ kind: "reg", cls: "k", index: (r.modrm >> 3) & 7, size: 8 });
        break;
      case M_KE:
        if (isReg) out.push({ kind: "reg", cls: "k", index: r.modrm & 7, size: 8 });
        else out.push(mem(insn, r, sp));
        break;
      case M_KH:
        out.push({ kind: "reg", cls: "k", index: r.vexV & 7, size: 8 });
        break;
    }
  }
  return out;
}

function zReg(insn: Decoded, r: Raw): number {
  return (insn.opcode & 7) | (r.rex & 1 ? 8 : 0);
}

function gpr(index: number, size: number, rx: number, mode: Mode): Operand {
  if (size === 1 && rx === 0 && index >= 4 && index < 8) {
    return { kind: "reg", cls: "gpr", index, size: 1, high8: true };
  }
  void mode;
  return { kind: "reg", cls: "gpr", index, size };
}

function vreg(index: number, width: number): Operand {
  return { kind: "reg", cls: vecClass(width), index, size: width };
}

function sizeFor(s: number, os: number, as: number, r: Raw): number {
  if (s >= 0) return s;
  switch (s) {
    case SZ_V:
      return os;
    case SZ_Z:
      return os === 2 ? 2 : 4;
    case SZ_Y:
      return (r.vexKind !== VK_NONE ? r.vexW : (r.rex & 8) !== 0) && r.mode === 64 ? 8 : 4;
    case SZ_X:
      return 16 << r.vexL;
    case SZ_XH:
      return 8 << r.vexL;
    case SZ_XQ:
      return 4 << r.vexL;
    case SZ_XO:
      return 2 << r.vexL;
    case SZ_P:
      return os === 2 ? 4 : 6;
    case SZ_S:
      return r.mode === 64 ? 10 : 6;
    case SZ_A:
      return os * 2;
    case SZ_C:
      return r.mode === 64 ? 8 : 4;
    case SZ_ENV:
      return os === 2 ? 14 : 28;
    case SZ_FSAVE:
      return os === 2 ? 94 : 108;
    case SZ_ADDR:
      return as;
    case SZ_VQ:
      return r.mode === 64 ? 8 : os;
  }
  return 0;
}

function mem(insn: Decoded, r: Raw, sp: Spec): MemOperand {
  const as = insn.addrSize;
  const size = sp.a0 ? 0 : sizeFor(sp.s, insn.opSize, as, r);
  if (sp.m === M_X || sp.m === M_Y) {
    // String operands: DS:rSI (overridable) and ES:rDI (SDM Vol. 1, 7.3.9).
    const dst = sp.m === M_Y;
    return {
      kind: "mem",
      seg: dst ? 0 : (r.memSegOverride ? r.memSeg : 3),
      segOverride: !dst && r.memSegOverride,
      base: dst ? 7 : 6,
      index: NO_REG,
      scale: 1,
      disp: 0n,
      size,
      addrSize: as,
    };
  }
  if (sp.m === M_XLAT) {
    return {
      kind: "mem",
      seg: r.memSegOverride ? r.memSeg : 3,
      segOverride: r.memSegOverride,
      base: 3,
      index: 0, // AL, zero-extended (SDM Vol. 2, XLAT)
      scale: 1,
      disp: 0n,
      size: 1,
      addrSize: as,
    };
  }
  // EVEX embedded broadcast: the memory operand is one element (SDM Vol. 2, 2.7.5).
  const bcst = r.vexKind === VK_EVEX && (r.evexP2 & 0x10) !== 0 && sp.m === M_W;
  let disp: bigint;
  if (sp.m === M_O) {
    disp = as === 8
      ? (BigInt(r.memDispHi >>> 0) << 32n) | BigInt(r.memDispLo >>> 0)
      : BigInt(r.memDispLo >>> 0);
  } else {
    disp = BigInt(r.memDispLo);
    if (r.vexKind === VK_EVEX && r.memDispSize === 1) disp *= BigInt(evexN(r, size));
  }
  return {
    kind: "mem",
    seg: r.memSeg,
    segOverride: r.memSegOverride,
    base: r.memBase,
    index: r.memIndex,
    scale: r.memScale,
    disp,
    size: bcst ? (r.vexW ? 8 : 4) : size,
    addrSize: as,
  };
}

/** EVEX disp8*N (SDM Vol. 2, 2.7.5): full-vector N, or the element size with broadcast. */
function evexN(r: Raw, size: number): number {
  if (r.evexP2 & 0x10) return r.vexW ? 8 : 4;
  return size || 16 << r.vexL;
}

// ---------------------------------------------------------------------------
// Text (objdump -M intel)

function regText(o: Operand): string {
  if (o.kind !== "reg") return "";
  switch (o.cls) {
    case "gpr":
      return gprName(o.index, o.size, o.high8 === true);
    case "seg":
      return SEGS[o.index];
    case "cr":
      return "cr" + o.index;
    case "dr":
      return "dr" + o.index;
    case "mmx":
      return "mm" + o.index;
    case "st":
      return "st(" + o.index + ")";
    case "bnd":
      return "bnd" + o.index;
    case "k":
      return "k" + o.index;
    default:
      return o.cls + o.index;
  }
}

function memText(o: MemOperand, sp: Spec, r: Raw): string {
  let s = "";
  if (!sp.np && sp.m !== M_O && sp.m !== M_BE && sp.m !== M_BA) {
    if (sp.kw) s = sp.kw + " PTR ";
    else if (r.vexKind === VK_EVEX && (r.evexP2 & 0x10) && sp.m === M_W) {
      s = (o.size === 8 ? "QWORD" : "DWORD") + " BCST ";
    } else {
      const shown = sp.a0 ? sizeFor(sp.s, opSizeOf(r), o.addrSize, r) : o.size;
      s = PTR_WORDS[shown] ?? "";
    }
  }
  const as = o.addrSize;
  const regs = as === 8 ? GPR64 : as === 4 ? GPR32 : GPR16;
  const str = sp.m === M_X || sp.m === M_Y || sp.m === M_XLAT;
  // In 64-bit mode objdump shows only FS/GS overrides in the operand.
  const showSeg = str ||
    (o.segOverride && (r.mode !== 64 || o.seg >= 4));
  if (o.base === NO_REG && o.index === NO_REG) {
    const seg = o.segOverride && (r.mode !== 64 || o.seg >= 4) ? SEGS[o.seg] : "ds";
    return s + seg + ":" + hex(BigInt.asUintN(as * 8, o.disp));
  }
  if (showSeg) {
    // In 64-bit mode objdump shows ES/CS/SS/DS overrides of a string source as ds:.
    s += (sp.m !== M_Y && str && r.mode === 64 && o.seg < 4 ? "ds" : SEGS[o.seg]) + ":";
  }
  s += "[";
  if (o.base === RIP_BASE) {
    s += (as === 8 ? "rip" : "eip") + "+" + hex(BigInt.asUintN(64, o.disp)) + "]";
    return s;
  }
  let first = true;
  if (o.base !== NO_REG) {
    s += regs[o.base];
    first = false;
  }
  if (o.index !== NO_REG && !str) {
    s += (first ? "" : "+") + regs[o.index] + (as === 2 ? "" : "*" + o.scale);
    first = false;
  }
  if (r.memDispSize > 0 && !str) {
    const d = o.disp;
    s += d < 0n ? "-" + hex(-d) : "+" + hex(d);
  }
  return s + "]";
}

function opSizeOf(r: Raw): number {
  return r.osz;
}

const REX_NAMES = (() => {
  const out: string[] = [];
  for (let i = 0; i < 16; i++) {
    const bits = (i & 8 ? "W" : "") + (i & 4 ? "R" : "") + (i & 2 ? "X" : "") + (i & 1 ? "B" : "");
    out.push(bits ? "rex." + bits : "rex");
  }
  return out;
})();

/**
 * Whether the instruction used its 66 prefix and REX.W, as objdump judges it
 * (it prints an unused 66 as "data16" and an unused REX as "rex.W" & co.).
 */
function prefixUse(insn: Decoded, r: Raw): { p66: boolean; w: boolean } {
  const form = r.form;
  const ff = form.f;
  let uses66 = (form.mnv !== null && !(ff & F_ASZ) && !(ff & F_MNW)) || (ff & F_SFX) !== 0;
  let usesW = uses66 && !(ff & F_NOW);
  for (const sp of form.ops) {
    const s = sp.s;
    if (s === SZ_V || s === SZ_P || s === SZ_A || s === SZ_ENV || s === SZ_FSAVE) {
      uses66 = true;
      if (!(ff & F_NOW)) usesW = true;
    } else if (s === SZ_Z) {
      uses66 = true;
      if (sp.m === M_I) usesW = true; // in/out/ins/outs stay 32-bit: REX.W unused
    } else if (s === SZ_Y) usesW = true;
    if ((sp.m === M_J && s !== 1) || (sp.m === M_I && sp.r === 1)) uses66 = usesW = true;
  }
  const d64 = r.mode === 64 && (ff & F_D64) !== 0;
  const w = (usesW && !d64) || r.wSel || (ff & F_MNW) !== 0;
  // Under REX.W objdump counts 66 as used only where it looked for a
  // mandatory prefix (and for movsxd).
  const rexW = r.mode === 64 && (r.rex & 8) !== 0 && !(ff & F_NOW);
  const p66 = r.p66Mand ||
    (r.use66 && uses66 && (!rexW || r.pfxSel || (insn.map === "legacy" && insn.opcode === 0x63)));
  return { p66, w };
}

function formatText(insn: Decoded, r: Raw): string {
  const ops = insn.operands;
  const form = r.form;
  const parts: string[] = [];
  const used = prefixUse(insn, r);
  // Prefix words, in the order of the bytes (objdump prints unused prefixes).
  const usesMem = ops.some((o) => o.kind === "mem");
  const hasModrmMem = r.modrm >= 0 && r.modrm < 0xc0 &&
    form.ops.some((s) =>
      s.m === M_E || s.m === M_M || s.m === M_W || s.m === M_Q || s.m === M_BE || s.m === M_BA ||
      s.m === M_KE
    );
  const pf = r.pfx;
  let lastSeg = -1;
  let lastRep = -1;
  let last66 = -1;
  let last67 = -1;
  if (pf) {
    for (let i = 0; i < r.npfx; i++) {
      const k = PREFIX[pf[i]];
      if (k === P_SEG) lastSeg = i;
      else if (k === P_REP) lastRep = i;
      else if (k === P_OSZ) last66 = i;
      else if (k === P_ASZ) last67 = i;
    }
    for (let i = 0; i < r.npfx; i++) {
      const b = pf[i];
      switch (PREFIX[b]) {
        case P_LOCK:
          if (!r.crHi) parts.push("lock");
          break;
        case P_REP: {
          if (i === lastRep && insn.mandatory === b) break;
          const hle = (insn.lock && (form.f & F_HLE)) ||
            ((form.f & F_HLEX) && hasModrmMem) ||
            (b === 0xf3 && (form.f & F_HLEM) && hasModrmMem);
          if (hle) parts.push(b === 0xf2 ? "xacquire" : "xrelease");
          else if (form.f & F_REP) parts.push(b === 0xf3 ? "rep" : "repnz");
          else if (b === 0xf2 && (form.f & F_BND)) parts.push("bnd");
          else parts.push(b === 0xf3 ? "repz" : "repnz");
          break;
        }
        case P_SEG: {
          const seg = SEG_OF_PREFIX[b];
          if (b === 0x3e && (form.f & F_NOTRACK)) {
            parts.push("notrack");
            break;
          }
          const strSrc = form.ops.some((s) => s.m === M_X || s.m === M_XLAT);
          const inOperand = i === lastSeg && usesMem && (r.mode !== 64 || seg >= 4 || strSrc) &&
            ops.some((o) => o.kind === "mem" && o.segOverride);
          if (!inOperand) parts.push(SEGS[seg]);
          break;
        }
        case P_OSZ:
          // A repeated 66 counts once (the last); objdump names the others.
          if (!used.p66 || i !== last66) parts.push(r.mode === 16 ? "data32" : "data16");
          break;
        case P_ASZ: {
          const used = hasModrmMem || (form.f & F_ASZ) ||
            form.ops.some((s) => s.m === M_X || s.m === M_Y || s.m === M_XLAT);
          if (!used || i !== last67) parts.push(r.mode === 32 ? "addr16" : "addr32");
          break;
        }
      }
    }
  }
  if (r.rex && r.vexKind === VK_NONE) {
    // objdump prints the REX byte unless every bit of it was used (a byte
    // register numbered 4-7 uses the bare 40h).
    let bits = rexUsed(r, used.w) & r.rex;
    if (
      bits ||
      ops.some((o, i) =>
        o.kind === "reg" && o.cls === "gpr" && o.size === 1 && o.index >= 4 && o.index < 8 &&
        form.ops[i].m !== M_FIX
      )
    ) bits |= 0x40;
    if ((r.rex ^ bits) !== 0) parts.push(REX_NAMES[r.rex & 15]);
  }
  parts.push(insn.mnemonic);
  const texts: string[] = [];
  const dropImm = insn.mnemonic !== r.form.mn && (form.f & F_PRED) !== 0;
  for (let i = 0; i < ops.length; i++) {
    const o = ops[i];
    const sp = form.ops[i];
    switch (o.kind) {
      case "reg": {
        let t = regText(o);
        if (o.cls === "st" && sp.m === M_ST) t = "st";
        if (r.vexKind === VK_EVEX && i === 0 && (r.evexP2 & 7)) {
          t += "{k" + (r.evexP2 & 7) + "}" + (r.evexP2 & 0x80 ? "{z}" : "");
        }
        texts.push(t);
        break;
      }
      case "mem":
        texts.push(memText(o, sp, r));
        break;
      case "imm":
        if (dropImm && i === ops.length - 1) break;
        texts.push(sp.m === M_ONE ? "1" : hex(o.value));
        break;
      case "rel":
        texts.push(hex(o.target));
        break;
      case "far":
        texts.push(hex(BigInt(o.selector)) + ":" + hex(o.offset));
        break;
    }
  }
  return texts.length ? parts.join(" ") + " " + texts.join(",") : parts.join(" ");
}

/** Which REX bits the instruction used (for objdump's "rex.W" words). */
function rexUsed(r: Raw, wUsed: boolean): number {
  let used = wUsed ? 8 : 0;
  const isReg = r.modrm >= 0xc0;
  for (const sp of r.form.ops) {
    switch (sp.m) {
      case M_G:
      case M_C:
      case M_V:
      case M_D:
        used |= 4;
        break;
      case M_Q:
      case M_N:
      case M_BE:
      case M_KE:
        if (!isReg) used |= (r.modrm & 7) === 4 ? 3 : 1;
        break;
      case M_E:
      case M_W:
      case M_U:
      case M_R:
      case M_M:
      case M_RA:
      case M_BA:
        if (isReg || sp.m === M_R || sp.m === M_RA) used |= 1;
        else if (r.modrm >= 0) {
          used |= 1;
          if ((r.modrm & 7) === 4) used |= 2; // a SIB byte
        }
        break;
      case M_Z:
        used |= 1;
        break;
    }
  }
  return used;
}

// ---------------------------------------------------------------------------
// The decoder

/**
 * Decodes one instruction at the start of `bytes` in `mode`; `ip` is its
 * address (used to resolve relative branch targets, default 0).
 *
 * @throws {UdError} the encoding raises #UD on the CPU.
 * @throws {TruncatedError} `bytes` ends before the instruction does.
 * @throws {TooLongError} the instruction would exceed 15 bytes (#GP(0)).
 * @throws {DecodeError} an encoding this decoder does not know.
 */
export function decode(bytes: Uint8Array, mode: Mode, ip = 0n): Instruction {
  return decodeAt(bytes, 0, mode, ip);
}

/**
 * Decodes the instruction at `bytes[offset]` (a linear sweep without
 * subarrays); otherwise as {@linkcode decode}.
 */
export function decodeAt(bytes: Uint8Array, offset: number, mode: Mode, ip = 0n): Instruction {
  B = bytes;
  O = offset;
  P = 0;
  LIM = bytes.length - offset;
  MODE = mode;
  p66 = false;
  p67 = false;
  lock = false;
  repLast = 0;
  segPfx = -1;
  rex = 0;
  npfx = 0;
  vexKind = VK_NONE;
  vexW = false;
  vexL = 0;
  vexV = 0;
  vexPP = 0;
  evexP2 = 0;
  evexP0 = 0;
  modrm = -1;
  memBase = NO_REG;
  memIndex = NO_REG;
  memDispSize = 0;
  memDispLo = 0;
  memDispHi = 0;
  nimm = 0;
  mandatory = 0;
  let fwait = false;

  // Legacy prefixes and REX (SDM Vol. 2, 2.1.1, 2.2.1). A REX prefix counts
  // only right before the opcode; a legacy prefix after it cancels it.
  let c: number;
  for (;;) {
    c = peek();
    const k = PREFIX[c];
    if (k === 0) {
      // fwait (9B) before an x87 instruction: objdump prints the pair as one
      // instruction (fstsw, fsave, finit... for the no-wait forms); do the same.
      if (c === 0x9b && !fwait && fwaitPairs()) {
        fwait = true;
        rex = 0;
        P++;
        continue;
      }
      break;
    }
    if (k === P_REX) {
      if (mode !== 64) break;
      rex = c;
      P++;
      continue;
    }
    rex = 0;
    if (npfx < 16) pfxBytes[npfx++] = c;
    switch (k) {
      case P_SEG:
        segPfx = SEG_OF_PREFIX[c];
        break;
      case P_OSZ:
        p66 = true;
        break;
      case P_ASZ:
        p67 = true;
        break;
      case P_LOCK:
        lock = true;
        break;
      case P_REP:
        repLast = c;
        break;
    }
    P++;
  }
  addrSize = mode === 64 ? (p67 ? 4 : 8) : mode === 32 ? (p67 ? 2 : 4) : (p67 ? 4 : 2);

  // Opcode and escapes (SDM Vol. 2, 2.1.2; VEX 2.3; EVEX 2.7; XOP: AMD APM Vol. 3, 1.8).
  let map = MAP_LEGACY;
  let op = next();
  let node: Slot;
  let needModrm = false;
  if (op === 0x0f) {
    op = next();
    if (op === 0x38) {
      map = MAP_38;
      op = next();
      node = MAP_0F38[op];
      needModrm = true;
    } else if (op === 0x3a) {
      map = MAP_3A;
      op = next();
      node = MAP_0F3A[op];
      needModrm = true;
    } else if (op === 0x0f) {
      map = MAP_3DNOW;
      node = FORM_3DNOW;
      needModrm = true;
    } else {
      map = MAP_0F;
      node = TWO_BYTE[op];
      needModrm = NEED_0F[op] === 1;
    }
  } else if ((op === 0xc4 || op === 0xc5) && (mode === 64 || (peek() & 0xc0) === 0xc0)) {
    if (p66 || repLast || lock || rex) ud("VEX after a 66/F2/F3/LOCK/REX prefix");
    const b1 = next();
    let mmmmm = 1;
    let rr: number;
    if (op === 0xc5) {
      vexKind = VK_VEX2;
      rr = b1 & 0x80 ? 0 : 4;
      rex = 0x40 | rr;
      vexV = (~b1 >> 3) & 15;
      vexL = (b1 >> 2) & 1;
      vexPP = b1 & 3;
    } else {
      vexKind = VK_VEX3;
      const b2 = next();
      mmmmm = b1 & 0x1f;
      rex = 0x40 | (b1 & 0x80 ? 0 : 4) | (b1 & 0x40 ? 0 : 2) | (b1 & 0x20 ? 0 : 1) |
        (b2 & 0x80 ? 8 : 0);
      vexW = (b2 & 0x80) !== 0;
      vexV = (~b2 >> 3) & 15;
      vexL = (b2 >> 2) & 1;
      vexPP = b2 & 3;
    }
    if (mode !== 64) {
      // Outside 64-bit mode only 8 registers: VEX.R/X/B/vvvv[3] are ignored.
      rex &= ~7;
      vexV &= 7;
    }
    op = next();
    if (mmmmm === 1) {
      map = MAP_0F;
      node = VEX_0F[op];
      needModrm = NEED_VEX0F[op] === 1;
    } else if (mmmmm === 2) {
      map = MAP_38;
      node = VEX_0F38[op];
      needModrm = true;
    } else if (mmmmm === 3) {
      map = MAP_3A;
      node = VEX_0F3A[op];
      needModrm = true;
    } else ud("reserved VEX map");
  } else if (op === 0x62 && (mode === 64 || (peek() & 0xc0) === 0xc0)) {
    if (p66 || repLast || lock || rex) ud("EVEX after a 66/F2/F3/LOCK/REX prefix");
    const p0 = next();
    const p1 = next();
    const p2 = next();
    if ((p1 & 4) === 0) ud("EVEX P1 bit 2 clear");
    vexKind = VK_EVEX;
    evexP0 = p0;
    rex = 0x40 | (p0 & 0x80 ? 0 : 4) | (p0 & 0x40 ? 0 : 2) | (p0 & 0x20 ? 0 : 1) |
      (p1 & 0x80 ? 8 : 0);
    vexW = (p1 & 0x80) !== 0;
    vexV = ((~p1 >> 3) & 15) | (p2 & 8 ? 0 : 16);
    vexL = (p2 >> 5) & 3;
    vexPP = p1 & 3;
    evexP2 = p2;
    if (mode !== 64) {
      rex &= ~7;
      vexV &= 7;
    }
    op = next();
    const mm = p0 & 7;
    if (mm === 1) {
      map = MAP_0F;
      node = EVEX_0F[op];
      needModrm = NEED_EVEX0F[op] === 1;
    } else if (mm === 2) {
      map = MAP_38;
      node = EVEX_0F38[op];
      needModrm = true;
    } else if (mm === 3) {
      map = MAP_3A;
      node = EVEX_0F3A[op];
      needModrm = true;
    } else fail("EVEX map " + mm + " is not known to this decoder");
  } else if (op === 0x8f && (peek() & 0x1f) >= 8) {
    if (p66 || repLast || lock || rex) ud("XOP after a 66/F2/F3/LOCK/REX prefix");
    const b1 = next();
    const b2 = next();
    vexKind = VK_XOP;
    rex = 0x40 | (b1 & 0x80 ? 0 : 4) | (b1 & 0x40 ? 0 : 2) | (b1 & 0x20 ? 0 : 1) |
      (b2 & 0x80 ? 8 : 0);
    vexW = (b2 & 0x80) !== 0;
    vexV = (~b2 >> 3) & 15;
    vexL = (b2 >> 2) & 1;
    vexPP = b2 & 3;
    if (mode !== 64) {
      rex &= ~7;
      vexV &= 7;
    }
    const mm = b1 & 0x1f;
    op = next();
    needModrm = true;
    if (mm === 8) {
      map = MAP_XOP8;
      node = XOP_8[op];
    } else if (mm === 9) {
      map = MAP_XOP9;
      node = XOP_9[op];
    } else if (mm === 10) {
      map = MAP_XOPA;
      node = XOP_A[op];
    } else ud("reserved XOP map");
  } else {
    node = ONE_BYTE[op];
    needModrm = NEED_1[op] === 1;
    if (op === 0x90) {
      // 90: nop; F3 90: pause; REX.B 90: xchg r8, rAX; 66 90: xchg ax, ax (objdump).
      if (rex & 1) node = FORM_XCHG_R8;
      else if (repLast === 0xf3) {
        node = FORM_PAUSE;
        mandatory = 0xf3;
      } else if (p66) node = FORM_XCHG_AX;
    }
  }

  if (needModrm) readModrm();

  // Walk the selectors down to a form.
  let p66Mand = false;
  let wSel = false;
  let pfxSel = false;
  while (node && node.k !== K_FORM) {
    const t = node.t;
    let nxt: Slot;
    switch (node.k) {
      case K_REG:
        nxt = t[mReg];
        break;
      case K_MOD:
        nxt = t[mMod === 3 ? 1 : 0];
        break;
      case K_RM:
        nxt = t[mRm];
        break;
      case K_PFX: {
        pfxSel = true;
        if (vexKind !== VK_NONE) {
          nxt = t[vexPP];
          break;
        }
        // Mandatory prefixes (SDM Vol. 2, 2.1.2): F2/F3 (the last one) win over 66.
        nxt = undefined;
        let picked = false;
        if (repLast) {
          const i = repLast === 0xf3 ? 2 : 3;
          const c2 = t[i];
          if (c2 !== undefined) {
            nxt = c2;
            mandatory = repLast as 0xf2 | 0xf3;
            picked = true;
          }
        }
        if (!picked && p66) {
          const c1 = t[1];
          if (c1 !== undefined) {
            nxt = c1;
            mandatory = 0x66;
            p66Mand = true;
            picked = true;
          }
        }
        if (!picked) nxt = t[0];
        break;
      }
      case K_MODE:
        nxt = t[mode === 64 ? 1 : 0];
        break;
      case K_KEEP:
        // A form shared with the unprefixed map: the prefix keeps its ordinary meaning.
        nxt = t[0];
        if (mandatory === 0x66) p66Mand = false;
        mandatory = 0;
        break;
      case K_W:
        wSel = true;
        nxt = t[(vexKind !== VK_NONE ? vexW : (rex & 8) !== 0) ? 1 : 0];
        break;
      case K_W64:
        wSel = true;
        nxt = t[mode === 64 && (vexKind !== VK_NONE ? vexW : (rex & 8) !== 0) ? 1 : 0];
        break;
      case K_L:
        nxt = t[vexL ? 1 : 0];
        break;
      case K_OSZ: {
        const o = mode === 64 && (rex & 8) ? 2 : ((mode === 16) !== p66) ? 0 : 1;
        nxt = t[o];
        break;
      }
    }
    if (nxt === null) ud("invalid opcode");
    node = nxt;
  }
  if (node === null) ud("invalid opcode");
  if (node === undefined) {
    if (map === MAP_LEGACY) ud("invalid opcode");
    fail("opcode not known to this decoder");
  }
  const form = node as Form;
  const ff = form.f;
  if (mode === 64 && (ff & F_I64)) ud("invalid in 64-bit mode");
  if (mode !== 64 && (ff & F_O64)) ud("valid only in 64-bit mode");

  // Operand size (SDM Vol. 2, 2.2.1.2, Table 2-4; 3.3.4 for default 64-bit operations).
  // objdump ignores 66 on short (rel8) branches; in 64-bit mode so does this decoder.
  const jb = form.ops.length === 1 && form.ops[0].m === M_J && form.ops[0].s === 1;
  const use66 = p66 && !p66Mand && !(ff & F_NO66) && !(jb && mode === 64);
  if (vexKind !== VK_NONE) opSize = vexW && mode === 64 ? 8 : 4;
  else if (mode === 64) {
    if (ff & F_D64) opSize = use66 && !(rex & 8) ? 2 : 8;
    else opSize = rex & 8 && !(ff & F_NOW) ? 8 : use66 ? 2 : 4;
  } else opSize = (mode === 16) !== use66 ? 2 : 4;

  // ModRM memory operand, then the specs in order (immediates come last).
  const isMem = modrm >= 0 && mMod !== 3;
  if (isMem && !(ff & F_MODANY)) readMem();
  for (let i = 0; i < form.ops.length; i++) {
    const sp = form.ops[i];
    switch (sp.m) {
      case M_M:
        if (!isMem) ud("register operand where memory is required");
        break;
      case M_R:
      case M_U:
      case M_N:
      case M_RA:
        if (isMem && !(ff & F_MODANY)) ud("memory operand where a register is required");
        break;
      case M_S:
        if (mReg > 5) ud("reserved segment register");
        if (i === 0 && mReg === 1) ud("mov to CS");
        break;
      case M_C: {
        const n = mReg | (rex & 4 || (lock && mode !== 64) ? 8 : 0);
        // Valid control registers: CR0, CR2, CR3, CR4, CR8 (SDM Vol. 2, MOV to/from CR).
        if (!(n === 0 || n === 2 || n === 3 || n === 4 || n === 8)) ud("reserved control register");
        break;
      }
      case M_D:
        if (rex & 4) ud("reserved debug register");
        break;
      case M_BR:
        // MPX has bnd0-bnd3 only (SDM Vol. 1, 17.3) and no 16-bit addressing.
        if (mReg > 3 || (rex & 4)) ud("reserved bound register");
        if (isMem && addrSize === 2) ud("MPX with 16-bit addressing");
        if (memBase === RIP_BASE && isMem && /^bnd(ldx|stx|mk)$/.test(form.mn)) {
          ud("RIP-relative MPX");
        }
        break;
      case M_BE:
        if (!isMem && (mRm > 3 || (rex & 1))) ud("reserved bound register");
        break;
      case M_I: {
        let n = sp.s;
        if (n === SZ_V) n = opSize;
        else if (n === SZ_Z) n = opSize === 2 ? 2 : 4;
        if (nimm === 0) {
          if (n === 1) imm0Lo = (next() << 24) >> 24;
          else if (n === 2) imm0Lo = (read16() << 16) >> 16;
          else if (n === 4) imm0Lo = read32();
          else {
            imm0Lo = read32();
            imm0Hi = read32();
          }
          if (n !== 8) imm0Hi = imm0Lo < 0 ? -1 : 0;
        } else {
          imm1 = n === 1 ? next() : read16();
        }
        nimm++;
        break;
      }
      case M_L:
        imm0Lo = next();
        nimm++;
        break;
      case M_J:
        relDisp = sp.s === 1
          ? (next() << 24) >> 24
          : opSize === 2
          ? (read16() << 16) >> 16
          : read32();
        break;
      case M_A:
        // ptr16:16 or ptr16:32: the offset comes first (SDM Vol. 2, CALL/JMP far).
        imm0Lo = opSize === 2 ? read16() : read32();
        farSel = read16();
        break;
      case M_O:
        // moffs: an offset of address size (SDM Vol. 2, MOV A0-A3).
        if (addrSize === 8) {
          memDispLo = read32();
          memDispHi = read32();
        } else if (addrSize === 4) memDispLo = read32();
        else memDispLo = read16();
        memDispSize = addrSize;
        memBase = NO_REG;
        memIndex = NO_REG;
        memSegDefault = 3;
        break;
    }
  }
  // 3DNow!: the operation is a suffix byte after the operands (AMD 3DNow! manual, 1.3).
  let mn = form.mn;
  if (map === MAP_3DNOW) {
    const sfx = next();
    const name = AMD3DNOW[sfx];
    if (!name) ud("undefined 3DNow! suffix");
    mn = name;
    op = sfx;
  }
  // XOP map 8 always has an imm8; map A has an imm32 (in its form).
  if (map === MAP_XOP8 && nimm === 0 && !form.ops.some((s) => s.m === M_L)) {
    imm0Lo = next();
    nimm++;
  }

  if (vexKind !== VK_NONE && vexKind !== VK_EVEX && vexL && (ff & F_L0)) {
    ud("VEX.L = 1 on a 128-bit-only form");
  }
  // VEX.vvvv (and EVEX.V') must be 1111b when the form has no operand there (SDM Vol. 2, 2.3.6).
  if (vexKind !== VK_NONE && vexV !== 0 && !form.ops.some(usesVvvv)) ud("VEX.vvvv not 1111b");
  // LOCK (SDM Vol. 2, LOCK: #UD unless the form is lockable with a memory destination).
  // Outside 64-bit mode, LOCK MOV CR0 is AMD's alternative encoding of MOV CR8
  // (AMD APM Vol. 3, MOV CRn: CPUID Fn8000_0001 ECX[AltMovCr8]); objdump decodes it so.
  let crHi = false;
  if (lock && map === MAP_0F && (op === 0x20 || op === 0x22) && mode !== 64 && mReg === 0) {
    crHi = true;
  } else if (lock && (!(ff & F_LOCK) || !isMem)) ud("LOCK prefix on a form that does not take it");

  // Mnemonic variants.
  if (form.mnv) {
    if (ff & F_ASZ) mn = form.mnv[addrSize === 2 ? 0 : addrSize === 4 ? 1 : 2];
    else if (ff & F_MNW) mn = form.mnv[rex & 8 ? 2 : 1];
    else mn = form.mnv[opSize === 2 ? 0 : opSize === 4 ? 1 : 2];
  }
  if (fwait && (ff & F_FWAIT)) mn = "f" + mn.slice(2); // fnstsw -> fstsw
  if (ff & F_SFX) {
    const def = mode === 16 ? 2 : mode === 32 ? 4 : (ff & F_D64) ? 8 : 4;
    if (opSize !== def) mn += opSize === 2 ? "w" : opSize === 4 ? "d" : "q";
  }
  if ((ff & F_MOVABS) && mode === 64) {
    if (op >= 0xa0 && op <= 0xa3 ? addrSize === 8 : opSize === 8) mn = "movabs";
  }
  if (ff & F_PRED) {
    const pred = imm0Lo & 0xff;
    if (map === MAP_3A) {
      const nm = PCLMUL_NAMES[pred];
      if (nm) mn = (vexKind !== VK_NONE ? "v" : "") + nm;
    } else if (pred < (vexKind !== VK_NONE ? 32 : 8)) {
      const base = form.mn.slice(0, form.mn.length - 2); // "cmp" / "vcmp"
      mn = base + CMP_PREDICATES[pred] + form.mn.slice(-2);
    }
  }

  const len = P;
  const raw: Raw = {
    form,
    mode,
    ip,
    rex,
    modrm,
    vexKind,
    vexW,
    vexL,
    vexV,
    evexP2,
    evexP0,
    memBase,
    memIndex,
    memScale,
    memDispLo,
    memDispHi,
    memDispSize,
    memSeg: segPfx >= 0 ? (segPfx as SegIndex) : memSegDefault,
    memSegOverride: segPfx >= 0,
    imm0Lo,
    imm0Hi,
    imm1,
    relDisp,
    farSel,
    npfx,
    pfx: npfx ? pfxBytes.slice(0, npfx) : null,
    use66,
    p66Mand,
    pfxSel,
    wSel,
    fwait,
    osz: opSize,
    crHi,
  };
  return new Decoded(B, O, len, mn, map, op, raw);
}

let evexP0 = 0;

function usesVvvv(s: Spec): boolean {
  return s.m === M_H || s.m === M_B || s.m === M_KH;
}

/** True when the byte after this 9B (past any prefixes) is an x87 escape (D8-DF). */
function fwaitPairs(): boolean {
  for (let i = P + 1; i < LIM && i < 15; i++) {
    const x = B[O + i];
    if (x >= 0xd8 && x <= 0xdf) return true;
    if (PREFIX[x] === 0 || (PREFIX[x] === P_REX && MODE !== 64)) return false;
  }
  return false;
}

/**
 * The length of the instruction at `bytes[offset]`, or a negative number
 * when it does not decode (-1 #UD or unknown, -2 truncated, -3 too long).
 */
export function instructionLength(bytes: Uint8Array, offset: number, mode: Mode): number {
  try {
    return decodeAt(bytes, offset, mode).length;
  } catch (e) {
    if (e instanceof TruncatedError) return -2;
    if (e instanceof TooLongError) return -3;
    if (e instanceof DecodeError) return -1;
    throw e;
  }
}

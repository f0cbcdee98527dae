/**
 * Opcode tables for the x86 decoder (decode.ts), built once when the module
 * loads from a compact description: every opcode map of SDM Vol. 2,
 * Appendix A (one-byte map, Table A-2; two-byte 0F map, Table A-3; three-byte
 * 0F38/0F3A maps, Tables; ModRM opcode-extension groups, Table A-6;
 * x87 escape maps, Tables A-7..A-22) plus the VEX/EVEX forms derived from the
 * legacy SSE forms. Mnemonics are spelled as `objdump -d -M intel` (GNU
 * binutils) prints them.
 *
 * A table slot holds a {@link Node}: either a {@link Form} (one instruction
 * form: mnemonic, operand specs, flags) or a selector that picks a child by
 * ModRM.reg, ModRM.mod, ModRM.rm, the mandatory prefix, the mode, VEX.W or
 * VEX.L. `null` marks an encoding that is invalid on the CPU (#UD); a hole
 * (`undefined`) one this decoder does not know.
 *
 * @module
 */

// ---------------------------------------------------------------------------
// Operand specs (the addressing-method letters of SDM Vol. 2, A.2.1)

/** ModRM r/m: a general register or memory. */
export const M_E = 1;
/** ModRM reg: a general register. */
export const M_G = 2;
/** ModRM r/m: memory only (#UD with mod = 3). */
export const M_M = 3;
/** ModRM r/m: a general register only (mod = 3). */
export const M_R = 4;
/** Low 3 opcode bits (+ REX.B): a general register. */
export const M_Z = 5;
/** Immediate. */
export const M_I = 6;
/** Relative branch offset. */
export const M_J = 7;
/** moffs: an absolute offset of address size, no ModRM. */
export const M_O = 8;
/** ptr16:16 / ptr16:32 far pointer immediate. */
export const M_A = 9;
/** A fixed general register (`r` = number). */
export const M_FIX = 10;
/** A fixed segment register (`r` = number). */
export const M_SEG = 11;
/** ModRM reg: a segment register. */
export const M_S = 12;
/** ModRM reg: a control register. */
export const M_C = 13;
/** ModRM reg: a debug register. */
export const M_D = 14;
/** String source DS:rSI (segment overridable). */
export const M_X = 15;
/** String destination ES:rDI. */
export const M_Y = 16;
/** xlat's DS:[rBX+AL]. */
export const M_XLAT = 17;
/** ModRM reg: a vector register. */
export const M_V = 18;
/** ModRM r/m: a vector register or memory. */
export const M_W = 19;
/** ModRM r/m: a vector register only. */
export const M_U = 20;
/** VEX.vvvv: a vector register. */
export const M_H = 21;
/** imm8[7:4]: a vector register (VEX is4). */
export const M_L = 22;
/** ModRM reg: an MMX register. */
export const M_P = 23;
/** ModRM r/m: an MMX register or memory. */
export const M_Q = 24;
/** ModRM r/m: an MMX register only. */
export const M_N = 25;
/** VEX.vvvv: a general register. */
export const M_B = 26;
/** x87 ST(0). */
export const M_ST = 27;
/** x87 ST(i) from ModRM.rm. */
export const M_STI = 28;
/** The constant 1 of the shift-by-one forms. */
export const M_ONE = 29;
/** ModRM reg: an MPX bound register. */
export const M_BR = 30;
/** ModRM r/m: a bound register or memory. */
export const M_BE = 31;
/** ModRM r/m: a general register of address size, or memory (MPX bndcl/bndcu/bndcn). */
export const M_BA = 32;
/** ModRM reg: an opmask register. */
export const M_KR = 33;
/** ModRM r/m: an opmask register or memory. */
export const M_KE = 34;
/** VEX.vvvv: an opmask register. */
export const M_KH = 35;
/** ModRM r/m: a general register of address size (umonitor), never memory. */
export const M_RA = 36;
/** The fixed register xmm0 (blendvps & co.). */
export const M_XMM0 = 37;

// Size codes: positive values are bytes; negative ones are computed at decode time.
/** Size code: operand size. */
export const SZ_V = -1;
/** Size code: operand size, 64 -> 32 (immediates, in/out). */
export const SZ_Z = -2;
/** Size code: 4, or 8 with REX.W in 64-bit mode. */
export const SZ_Y = -3;
/** Size code: vector by VEX.L (16/32/64). */
export const SZ_X = -4;
/** Size code: half vector by VEX.L (8/16/32). */
export const SZ_XH = -5;
/** Size code: far pointer m16:16/m16:32/m16:64 (2 + operand size). */
export const SZ_P = -6;
/** Size code: pseudo-descriptor: 6, or 10 in 64-bit mode. */
export const SZ_S = -7;
/** Size code: bound pair: 2 * operand size. */
export const SZ_A = -8;
/** Size code: control/debug register moves: 8 in 64-bit mode, else 4. */
export const SZ_C = -9;
/** Size code: x87 environment: 14 or 28. */
export const SZ_ENV = -10;
/** Size code: x87 state: 94 or 108. */
export const SZ_FSAVE = -11;
/** Size code: quarter vector by VEX.L (4/8/16). */
export const SZ_XQ = -12;
/** Size code: eighth vector by VEX.L (2/4/8). */
export const SZ_XO = -13;
/** Size code: address size. */
export const SZ_ADDR = -14;
/** Size code: 8 in 64-bit mode, else operand size (near indirect branches). */
export const SZ_VQ = -15;

/** One operand spec. */
export interface Spec {
  /** Addressing method (M_*). */
  readonly m: number;
  /** Size code (bytes or SZ_*). */
  readonly s: number;
  /** Fixed register number for M_FIX / M_SEG. */
  readonly r: number;
  /** Memory operands: print no `SIZE PTR` keyword. */
  readonly np: boolean;
  /** Memory operands: the access size is 0 (nop, prefetch, clflush, lea) though a size is printed. */
  readonly a0: boolean;
  /** Register operands: the register's width code for vector registers (SZ_X, 16, 32 ...). */
  readonly rw: number;
  /** A keyword printed instead of the size one (e.g. "OWORD"). */
  readonly kw: string;
}

// Form flags
/** LOCK allowed (with a memory destination). */
export const F_LOCK = 1 << 0;
/** Default operand size 64 in 64-bit mode (push, pop, near branches...). */
export const F_D64 = 1 << 1;
/** Invalid in 64-bit mode (#UD). */
export const F_I64 = 1 << 2;
/** Valid only in 64-bit mode. */
export const F_O64 = 1 << 3;
/** objdump adds a size suffix (w/d/q) when the operand size is not the mode's default. */
export const F_SFX = 1 << 4;
/** String instruction that takes REP (F3 prints "rep"). */
export const F_REP = 1 << 5;
/** String instruction that takes REPE/REPNE (cmps, scas). */
export const F_REPZ = 1 << 6;
/** Branch: F2 prints "bnd". */
export const F_BND = 1 << 7;
/** Indirect branch: 3E prints "notrack". */
export const F_NOTRACK = 1 << 8;
/** HLE: F2/F3 with LOCK print xacquire/xrelease. */
export const F_HLE = 1 << 9;
/** The VEX form takes VEX.vvvv as its second operand (non-destructive source). */
export const F_NDS = 1 << 10;
/** No VEX form. */
export const F_NOVEX = 1 << 11;
/** The mnemonic is chosen by the imm8 predicate (cmpps/pclmulqdq pseudo-ops). */
export const F_PRED = 1 << 12;
/** mov to/from CR/DR: ModRM.mod is ignored (always a register). */
export const F_MODANY = 1 << 13;
/** Mnemonic variants chosen by address size (jcxz/jecxz/jrcxz). */
export const F_ASZ = 1 << 14;
/** objdump calls it movabs with a 64-bit address or immediate. */
export const F_MOVABS = 1 << 15;
/** Operand size is 64 in 64-bit mode whatever the prefixes (mov cr, mov dr). */
export const F_F64 = 1 << 16;
/** xchg-style HLE: F2/F3 print xacquire/xrelease even without LOCK (xchg with memory). */
export const F_HLEX = 1 << 17;
/** mov to memory: F3 prints xrelease. */
export const F_HLEM = 1 << 18;
/** x87 instruction that fwait (9B) merges with: objdump prints it as one instruction. */
export const F_FWAIT = 1 << 19;
/** The 66 prefix is ignored (not an operand size) and printed as "data16". */
export const F_NO66 = 1 << 20;
/** The 66 prefix changes the operand size but objdump prints it anyway as data16. */
export const F_VEXW = 1 << 21;
/** REX.W/VEX.W selects a 'q' variant: mnemonic variants by W rather than operand size. */
export const F_MNW = 1 << 22;
/** Invalid with VEX.L = 1 (scalar or 128-bit-only VEX forms keep the 128-bit registers). */
export const F_L0 = 1 << 23;
/** REX.W does not change the operand size (x87 environment forms, far indirect branches as objdump decodes them). */
export const F_NOW = 1 << 24;

/** Node kind: an instruction form. */
export const K_FORM = 0;
/** Node kind: select by ModRM.reg. */
export const K_REG = 1;
/** Node kind: select by ModRM.mod (memory, register). */
export const K_MOD = 2;
/** Node kind: select by ModRM.rm. */
export const K_RM = 3;
/** Node kind: select by the mandatory prefix (none, 66, F3, F2). */
export const K_PFX = 4;
/** Node kind: select by mode (legacy, 64-bit). */
export const K_MODE = 5;
/** Node kind: select by REX.W / VEX.W. */
export const K_W = 6;
/** Node kind: select by VEX.L. */
export const K_L = 7;
/** Node kind: select by operand size. */
export const K_OSZ = 8;
/** Under a prefix selector: use the child but leave the prefix unconsumed (it keeps its usual meaning). */
export const K_KEEP = 9;
/** Selects by REX.W / VEX.W in 64-bit mode only (a GPR width: W is ignored elsewhere). */
export const K_W64 = 10;

/** One instruction form. */
export interface Form {
  readonly k: 0;
  /** The mnemonic (objdump spelling). */
  readonly mn: string;
  /** Variants by operand size (index 0: 16, 1: 32, 2: 64) or, with F_ASZ, by address size. */
  readonly mnv: readonly string[] | null;
  readonly ops: readonly Spec[];
  readonly f: number;
  /** Needs a ModRM byte. */
  readonly modrm: boolean;
  /** Number of immediate bytes that do not depend on the operand size (-1: computed). */
}

/** A selector node. */
export interface Sel {
  readonly k: 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10;
  readonly t: readonly (Node | null | undefined)[];
}

/** A table slot. */
export type Node = Form | Sel;

const SPEC_CACHE = new Map<string, Spec>();

const SIZE_CODES: Record<string, number> = {
  b: 1,
  w: 2,
  d: 4,
  q: 8,
  dq: 16,
  qq: 32,
  o: 16,
  t: 10,
  v: SZ_V,
  z: SZ_Z,
  y: SZ_Y,
  x: SZ_X,
  xh: SZ_XH,
  xq: SZ_XQ,
  xo: SZ_XO,
  p: SZ_P,
  s: SZ_S,
  a: SZ_A,
  c: SZ_C,
  e: SZ_ENV,
  f: SZ_FSAVE,
  fx: 512,
  ss: 4,
  sd: 8,
  ps: SZ_X,
  pd: SZ_X,
  vq: SZ_VQ,
  ad: SZ_ADDR,
  "": 0,
};

const FIXED_GPR: Record<string, [number, number]> = {
  AL: [0, 1],
  CL: [1, 1],
  DX: [2, 2],
  AX: [0, 2],
  rAX: [0, SZ_V],
  eAX: [0, SZ_Z],
  rCX: [1, SZ_V],
};

const FIXED_SEG: Record<string, number> = { ES: 0, CS: 1, SS: 2, DS: 3, FS: 4, GS: 5 };

/**
 * Parses an operand spec: a method letter and a size code, e.g. "Eb", "Gv",
 * "Wss", "Ib", "AL", "ST"; suffixes: "!" no size keyword, "~" access size 0,
 * "^KW" a size keyword of its own.
 */
export function spec(code: string): Spec {
  const hit = SPEC_CACHE.get(code);
  if (hit) return hit;
  let c = code;
  let np = false;
  let a0 = false;
  let kw = "";
  const caret = c.indexOf("^");
  if (caret >= 0) {
    kw = c.slice(caret + 1);
    c = c.slice(0, caret);
  }
  if (c.endsWith("!")) {
    np = true;
    c = c.slice(0, -1);
  }
  if (c.endsWith("~")) {
    a0 = true;
    c = c.slice(0, -1);
  }
  let m = 0;
  let s = 0;
  let r = 0;
  let rw = 0;
  if (c in FIXED_GPR) {
    m = M_FIX;
    [r, s] = FIXED_GPR[c];
  } else if (c in FIXED_SEG) {
    m = M_SEG;
    r = FIXED_SEG[c];
    s = 2;
  } else if (c === "XMM0") {
    m = M_XMM0;
    s = 16;
    rw = 16;
  } else if (c === "ST") m = M_ST;
  else if (c === "STi") m = M_STI;
  else if (c === "1") m = M_ONE;
  else if (c === "XLAT") {
    m = M_XLAT;
    s = 1;
  } else if (c === "Ap") {
    m = M_A;
    s = SZ_P;
  } else if (c === "Sw") {
    m = M_S;
    s = 2;
  } else if (c === "Cc") {
    m = M_C;
    s = SZ_C;
  } else if (c === "Dc") {
    m = M_D;
    s = SZ_C;
  } else if (c === "BR") {
    m = M_BR;
    s = 16;
  } else if (c === "BE") {
    m = M_BE;
    s = 16;
  } else if (c === "BA") {
    m = M_BA;
    s = SZ_ADDR;
  } else if (c === "RA") {
    m = M_RA;
    s = SZ_ADDR;
  } else if (c === "KR" || c === "KE" || c === "KH") {
    m = c === "KR" ? M_KR : c === "KE" ? M_KE : M_KH;
    s = 8;
  } else {
    const letter = c[0];
    const rest = c.slice(1);
    const methods: Record<string, number> = {
      E: M_E,
      G: M_G,
      M: M_M,
      R: M_R,
      Z: M_Z,
      I: M_I,
      J: M_J,
      O: M_O,
      X: M_X,
      Y: M_Y,
      V: M_V,
      W: M_W,
      U: M_U,
      H: M_H,
      L: M_L,
      P: M_P,
      Q: M_Q,
      N: M_N,
      B: M_B,
    };
    m = methods[letter];
    if (!m) throw new Error(`bad operand spec ${code}`);
    if (m === M_I && rest === "s") {
      // Ibs: imm8 sign-extended to the operand size (SDM Vol. 2, A.2.2 note on 6B/83).
      s = 1;
      r = 1;
    } else if (m === M_I && rest === "bz") {
      s = 1;
    } else {
      if (!(rest in SIZE_CODES)) throw new Error(`bad operand size ${code}`);
      s = SIZE_CODES[rest];
    }
    if (m === M_V || m === M_W || m === M_U || m === M_H || m === M_L) {
      // Vector register width: by VEX.L for x/ps/pd, ymm for qq, else xmm.
      rw = s === SZ_X ? SZ_X : s === 32 ? 32 : 16;
    }
    if (m === M_P || m === M_Q || m === M_N) rw = 8;
  }
  const out: Spec = Object.freeze({ m, s, r, np, a0, rw, kw });
  SPEC_CACHE.set(code, out);
  return out;
}

const MODRM_METHODS = new Set([
  M_E,
  M_G,
  M_M,
  M_R,
  M_S,
  M_C,
  M_D,
  M_V,
  M_W,
  M_U,
  M_P,
  M_Q,
  M_N,
  M_STI,
  M_BR,
  M_BE,
  M_BA,
  M_KR,
  M_KE,
  M_RA,
]);

/**
 * One form: "mnemonic" or "m16/m32/m64" variants, operand specs separated
 * by commas, flags.
 */
export function f(mn: string, ops = "", flags = 0, modrm?: boolean): Form {
  const specs = ops === "" ? [] : ops.split(",").map(spec);
  const mnv = mn.includes("/") ? mn.split("/") : null;
  return Object.freeze({
    k: K_FORM as 0,
    mn: mnv ? mnv[1] : mn,
    mnv,
    ops: specs,
    f: flags,
    modrm: modrm ?? specs.some((s) => MODRM_METHODS.has(s.m)),
  });
}

type Slot = Node | null | undefined;

/** Selects by ModRM.reg. */
export function reg(...t: Slot[]): Sel {
  if (t.length !== 8) throw new Error("reg() needs 8 entries");
  return { k: K_REG as 1, t };
}
/** Selects by ModRM.mod: memory form, register form. */
export function mod(mem: Slot, r: Slot): Sel {
  return { k: K_MOD as 2, t: [mem, r] };
}
/** Selects by ModRM.rm (register forms). */
export function rm(...t: Slot[]): Sel {
  if (t.length !== 8) throw new Error("rm() needs 8 entries");
  return { k: K_RM as 3, t };
}
/**
 * Selects by the mandatory prefix: none, 66, F3, F2. `undefined` for 66,
 * F3 or F2 means "same as none, the prefix keeps its usual meaning".
 */
export function pfx(none: Slot, p66?: Slot, f3?: Slot, f2?: Slot): Sel {
  return { k: K_PFX as 4, t: [none, p66, f3, f2] };
}
/** Selects by mode: outside 64-bit mode, in 64-bit mode. */
export function mode(legacy: Slot, long: Slot): Sel {
  return { k: K_MODE as 5, t: [legacy, long] };
}
/** Selects by REX.W / VEX.W. */
export function w(w0: Slot, w1: Slot): Sel {
  return { k: K_W as 6, t: [w0, w1] };
}
/** Selects by REX.W / VEX.W where W widens a general register (64-bit mode only). */
export function w64(w0: Slot, w1: Slot): Sel {
  return { k: K_W64 as 10, t: [w0, w1] };
}
/** Selects by VEX.L. */
export function vl(l0: Slot, l1: Slot): Sel {
  return { k: K_L as 7, t: [l0, l1] };
}
/** Under a prefix selector: this child, with the prefix left unconsumed. */
export function keep(n: Slot): Sel {
  return { k: K_KEEP as 9, t: [n] };
}
/** Selects by operand size: 16, 32, 64. */
export function osz(o16: Slot, o32: Slot, o64: Slot): Sel {
  return { k: K_OSZ as 8, t: [o16, o32, o64] };
}

/** True when the node (or any node below it) needs a ModRM byte. */
export function needsModrm(n: Slot): boolean {
  if (!n) return false;
  if (n.k === K_FORM) return n.modrm;
  if (n.k === K_REG || n.k === K_MOD || n.k === K_RM) return true;
  return n.t.some(needsModrm);
}

const CC = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"];

// ---------------------------------------------------------------------------
// One-byte opcode map (SDM Vol. 2, Table A-2)

function alu(t: Slot[], base: number, mn: string): void {
  const lk = mn === "cmp" ? 0 : F_LOCK | F_HLE;
  t[base] = f(mn, "Eb,Gb", lk);
  t[base + 1] = f(mn, "Ev,Gv", lk);
  t[base + 2] = f(mn, "Gb,Eb");
  t[base + 3] = f(mn, "Gv,Ev");
  t[base + 4] = f(mn, "AL,Ib");
  t[base + 5] = f(mn, "rAX,Iz");
}

const ALU = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"];
const SHIFT = ["rol", "ror", "rcl", "rcr", "shl", "shr", null, "sar"];

function grp1(ops: string, flags = 0): Sel {
  return reg(
    ...ALU.map((m) => f(m, ops, (m === "cmp" ? 0 : F_LOCK | F_HLE) | flags)),
  );
}

function grp2(ops: string): Sel {
  // /6 is an undocumented alias of shl (SAL); objdump prints it as "shl".
  return reg(...SHIFT.map((m) => f(m ?? "shl", ops)));
}

function buildOneByte(): Slot[] {
  const t: Slot[] = new Array(256).fill(null);
  ALU.forEach((m, i) => alu(t, i * 8, m));
  // push/pop of segment registers, BCD adjust: invalid in 64-bit mode (A.2.5 superscript i64).
  t[0x06] = f("push", "ES", F_I64 | F_SFX);
  t[0x07] = f("pop", "ES", F_I64 | F_SFX);
  t[0x0e] = f("push", "CS", F_I64 | F_SFX);
  t[0x16] = f("push", "SS", F_I64 | F_SFX);
  t[0x17] = f("pop", "SS", F_I64 | F_SFX);
  t[0x1e] = f("push", "DS", F_I64 | F_SFX);
  t[0x1f] = f("pop", "DS", F_I64 | F_SFX);
  t[0x27] = f("daa", "", F_I64);
  t[0x2f] = f("das", "", F_I64);
  t[0x37] = f("aaa", "", F_I64);
  t[0x3f] = f("aas", "", F_I64);
  for (let i = 0; i < 8; i++) {
    // 40-4F are REX prefixes in 64-bit mode (SDM Vol. 2, 2.2.1).
    t[0x40 + i] = f("inc", "Zv", F_I64);
    t[0x48 + i] = f("dec", "Zv", F_I64);
    t[0x50 + i] = f("push", "Zv", F_D64);
    t[0x58 + i] = f("pop", "Zv", F_D64);
  }
  t[0x60] = f("pusha", "", F_I64 | F_SFX);
  t[0x61] = f("popa", "", F_I64 | F_SFX);
  t[0x62] = f("bound", "Gv,Ma", F_I64);
  // 63: ARPL outside 64-bit mode, MOVSXD in it (Table A-2 note).
  t[0x63] = mode(f("arpl", "Ew,Gw"), f("movsxd", "Gv,Ed"));
  t[0x68] = f("push", "Iz", F_D64 | F_SFX);
  t[0x69] = f("imul", "Gv,Ev,Iz");
  t[0x6a] = f("push", "Is", F_D64 | F_SFX);
  t[0x6b] = f("imul", "Gv,Ev,Is");
  t[0x6c] = f("ins", "Yb,DX", F_REP);
  t[0x6d] = f("ins", "Yz,DX", F_REP);
  t[0x6e] = f("outs", "DX,Xb", F_REP);
  t[0x6f] = f("outs", "DX,Xz", F_REP);
  for (let i = 0; i < 16; i++) t[0x70 + i] = f("j" + CC[i], "Jb", F_D64 | F_BND);
  t[0x80] = grp1("Eb,Ib");
  t[0x81] = grp1("Ev,Iz");
  t[0x82] = grp1("Eb,Ib", F_I64);
  t[0x83] = grp1("Ev,Is");
  t[0x84] = f("test", "Eb,Gb");
  t[0x85] = f("test", "Ev,Gv");
  t[0x86] = f("xchg", "Eb,Gb", F_LOCK | F_HLEX);
  t[0x87] = f("xchg", "Ev,Gv", F_LOCK | F_HLEX);
  t[0x88] = f("mov", "Eb,Gb", F_HLEM);
  t[0x89] = f("mov", "Ev,Gv", F_HLEM);
  t[0x8a] = f("mov", "Gb,Eb");
  t[0x8b] = f("mov", "Gv,Ev");
  // 8C: a memory destination is always 16 bits; a register one takes the operand size.
  t[0x8c] = mod(f("mov", "Mw,Sw"), f("mov", "Rv,Sw"));
  t[0x8d] = f("lea", "Gv,M!");
  t[0x8e] = mod(f("mov", "Sw,Mw"), f("mov", "Sw,Rv"));
  // 8F /0 is POP Ev; 8F with reg != 0 is XOP, recognised before the table.
  t[0x8f] = reg(f("pop", "Ev", F_D64), null, null, null, null, null, null, null);
  t[0x90] = f("nop"); // pause, xchg r8 and 66 90 are handled by the decoder
  for (let i = 1; i < 8; i++) t[0x90 + i] = f("xchg", "Zv,rAX");
  t[0x98] = f("cbw/cwde/cdqe");
  t[0x99] = f("cwd/cdq/cqo");
  t[0x9a] = f("call", "Ap", F_I64);
  t[0x9b] = f("fwait");
  t[0x9c] = f("pushf", "", F_D64 | F_SFX);
  t[0x9d] = f("popf", "", F_D64 | F_SFX);
  t[0x9e] = f("sahf");
  t[0x9f] = f("lahf");
  t[0xa0] = f("mov", "AL,Ob", F_MOVABS);
  t[0xa1] = f("mov", "rAX,Ov", F_MOVABS);
  t[0xa2] = f("mov", "Ob,AL", F_MOVABS);
  t[0xa3] = f("mov", "Ov,rAX", F_MOVABS);
  t[0xa4] = f("movs", "Yb,Xb", F_REP);
  t[0xa5] = f("movs", "Yv,Xv", F_REP);
  t[0xa6] = f("cmps", "Xb,Yb", F_REPZ);
  t[0xa7] = f("cmps", "Xv,Yv", F_REPZ);
  t[0xa8] = f("test", "AL,Ib");
  t[0xa9] = f("test", "rAX,Iz");
  t[0xaa] = f("stos", "Yb,AL", F_REP);
  t[0xab] = f("stos", "Yv,rAX", F_REP);
  t[0xac] = f("lods", "AL,Xb", F_REP);
  t[0xad] = f("lods", "rAX,Xv", F_REP);
  t[0xae] = f("scas", "AL,Yb", F_REPZ);
  t[0xaf] = f("scas", "rAX,Yv", F_REPZ);
  for (let i = 0; i < 8; i++) {
    t[0xb0 + i] = f("mov", "Zb,Ib");
    t[0xb8 + i] = f("mov", "Zv,Iv", F_MOVABS);
  }
  t[0xc0] = grp2("Eb,Ib");
  t[0xc1] = grp2("Ev,Ib");
  t[0xc2] = f("ret", "Iw", F_D64 | F_SFX | F_BND);
  t[0xc3] = f("ret", "", F_D64 | F_SFX | F_BND);
  // C4/C5 are VEX in 64-bit mode or with mod = 3; recognised before the table.
  t[0xc4] = f("les", "Gz,Mp", F_I64);
  t[0xc5] = f("lds", "Gz,Mp", F_I64);
  // C6/C7 /7 with mod=3 rm=0: RTM xabort/xbegin (SDM Vol. 2, XBEGIN/XABORT).
  t[0xc6] = reg(
    f("mov", "Eb,Ib", F_HLEM),
    null,
    null,
    null,
    null,
    null,
    null,
    mod(null, rm(f("xabort", "Ib"), null, null, null, null, null, null, null)),
  );
  t[0xc7] = reg(
    f("mov", "Ev,Iz", F_HLEM),
    null,
    null,
    null,
    null,
    null,
    null,
    mod(null, rm(f("xbegin", "Jz", F_D64 | F_SFX), null, null, null, null, null, null, null)),
  );
  t[0xc8] = f("enter", "Iw,Ib", F_D64 | F_SFX);
  t[0xc9] = f("leave", "", F_D64 | F_SFX);
  t[0xca] = f("retf", "Iw", F_SFX);
  t[0xcb] = f("retf", "", F_SFX);
  t[0xcc] = f("int3");
  t[0xcd] = f("int", "Ib");
  t[0xce] = f("into", "", F_I64);
  t[0xcf] = f("iret", "", F_SFX);
  t[0xd0] = grp2("Eb,1");
  t[0xd1] = grp2("Ev,1");
  t[0xd2] = grp2("Eb,CL");
  t[0xd3] = grp2("Ev,CL");
  t[0xd4] = f("aam", "Ib", F_I64);
  t[0xd5] = f("aad", "Ib", F_I64);
  t[0xd6] = null; // SALC: undefined in the SDM; objdump prints (bad)
  t[0xd7] = f("xlat", "XLAT");
  buildX87(t);
  t[0xe0] = f("loopne", "Jb", F_D64);
  t[0xe1] = f("loope", "Jb", F_D64);
  t[0xe2] = f("loop", "Jb", F_D64);
  t[0xe3] = f("jcxz/jecxz/jrcxz", "Jb", F_D64 | F_ASZ);
  t[0xe4] = f("in", "AL,Ib");
  t[0xe5] = f("in", "eAX,Ib");
  t[0xe6] = f("out", "Ib,AL");
  t[0xe7] = f("out", "Ib,eAX");
  t[0xe8] = f("call", "Jz", F_D64 | F_SFX | F_BND);
  t[0xe9] = f("jmp", "Jz", F_D64 | F_SFX | F_BND);
  t[0xea] = f("jmp", "Ap", F_I64);
  t[0xeb] = f("jmp", "Jb", F_D64 | F_BND);
  t[0xec] = f("in", "AL,DX");
  t[0xed] = f("in", "eAX,DX");
  t[0xee] = f("out", "DX,AL");
  t[0xef] = f("out", "DX,eAX");
  t[0xf1] = f("int1");
  t[0xf4] = f("hlt");
  t[0xf5] = f("cmc");
  t[0xf6] = reg(
    f("test", "Eb,Ib"),
    f("test", "Eb,Ib"), // /1: undocumented alias of TEST, objdump decodes it as test
    f("not", "Eb", F_LOCK | F_HLE),
    f("neg", "Eb", F_LOCK | F_HLE),
    f("mul", "Eb"),
    f("imul", "Eb"),
    f("div", "Eb"),
    f("idiv", "Eb"),
  );
  t[0xf7] = reg(
    f("test", "Ev,Iz"),
    f("test", "Ev,Iz"),
    f("not", "Ev", F_LOCK | F_HLE),
    f("neg", "Ev", F_LOCK | F_HLE),
    f("mul", "Ev"),
    f("imul", "Ev"),
    f("div", "Ev"),
    f("idiv", "Ev"),
  );
  t[0xf8] = f("clc");
  t[0xf9] = f("stc");
  t[0xfa] = f("cli");
  t[0xfb] = f("sti");
  t[0xfc] = f("cld");
  t[0xfd] = f("std");
  t[0xfe] = reg(
    f("inc", "Eb", F_LOCK | F_HLE),
    f("dec", "Eb", F_LOCK | F_HLE),
    null,
    null,
    null,
    null,
    null,
    null,
  );
  // FF /3 and /5 are far: m16:16/32/64 (objdump ignores REX.W there, as AMD does).
  t[0xff] = reg(
    f("inc", "Ev", F_LOCK | F_HLE),
    f("dec", "Ev", F_LOCK | F_HLE),
    f("call", "Ev", F_D64 | F_BND | F_NOTRACK),
    mod(f("call", "Mp", F_NOW), null),
    f("jmp", "Ev", F_D64 | F_BND | F_NOTRACK),
    mod(f("jmp", "Mp", F_NOW), null),
    f("push", "Ev", F_D64),
    null,
  );
  return t;
}

// ---------------------------------------------------------------------------
// x87 escape opcodes D8-DF (SDM Vol. 2, A.4, Tables A-7..A-22)

function buildX87(t: Slot[]): void {
  const arith = ["fadd", "fmul", "fcom", "fcomp", "fsub", "fsubr", "fdiv", "fdivr"];
  const iarith = ["fiadd", "fimul", "ficom", "ficomp", "fisub", "fisubr", "fidiv", "fidivr"];
  const sti = (mn: string, ops: string) => f(mn, ops);
  const each = (mn: string | null, ops: string): Sel =>
    rm(...Array.from({ length: 8 }, () => (mn ? sti(mn, ops) : null)));
  const one = (...names: (string | null)[]): Sel =>
    rm(...names.map((n) => (n ? f(n, "", 0, true) : null)));
  // D8
  t[0xd8] = mod(
    reg(...arith.map((m) => f(m, "Md"))),
    reg(
      each("fadd", "ST,STi"),
      each("fmul", "ST,STi"),
      each("fcom", "STi"),
      each("fcomp", "STi"),
      each("fsub", "ST,STi"),
      each("fsubr", "ST,STi"),
      each("fdiv", "ST,STi"),
      each("fdivr", "ST,STi"),
    ),
  );
  // D9
  t[0xd9] = mod(
    reg(
      f("fld", "Md"),
      null,
      f("fst", "Md"),
      f("fstp", "Md"),
      f("fldenv", "Me!", F_SFX | F_NOW),
      f("fldcw", "Mw"),
      f("fnstenv", "Me!", F_FWAIT | F_SFX | F_NOW),
      f("fnstcw", "Mw", F_FWAIT),
    ),
    reg(
      each("fld", "STi"),
      each("fxch", "STi"),
      one("fnop", null, null, null, null, null, null, null),
      null,
      one("fchs", "fabs", null, null, "ftst", "fxam", null, null),
      one("fld1", "fldl2t", "fldl2e", "fldpi", "fldlg2", "fldln2", "fldz", null),
      one("f2xm1", "fyl2x", "fptan", "fpatan", "fxtract", "fprem1", "fdecstp", "fincstp"),
      one("fprem", "fyl2xp1", "fsqrt", "fsincos", "frndint", "fscale", "fsin", "fcos"),
    ),
  );
  // DA
  t[0xda] = mod(
    reg(...iarith.map((m) => f(m, "Md"))),
    reg(
      each("fcmovb", "ST,STi"),
      each("fcmove", "ST,STi"),
      each("fcmovbe", "ST,STi"),
      each("fcmovu", "ST,STi"),
      null,
      one(null, "fucompp", null, null, null, null, null, null),
      null,
      null,
    ),
  );
  // DB
  t[0xdb] = mod(
    reg(
      f("fild", "Md"),
      f("fisttp", "Md"),
      f("fist", "Md"),
      f("fistp", "Md"),
      null,
      f("fld", "Mt"),
      null,
      f("fstp", "Mt"),
    ),
    reg(
      each("fcmovnb", "ST,STi"),
      each("fcmovne", "ST,STi"),
      each("fcmovnbe", "ST,STi"),
      each("fcmovnu", "ST,STi"),
      rm(
        f("fneni(8087 only)", "", F_FWAIT, true),
        f("fndisi(8087 only)", "", F_FWAIT, true),
        f("fnclex", "", F_FWAIT, true),
        f("fninit", "", F_FWAIT, true),
        f("fnsetpm(287 only)", "", 0, true),
        f("frstpm(287 only)", "", 0, true),
        null,
        null,
      ),
      each("fucomi", "ST,STi"),
      each("fcomi", "ST,STi"),
      null,
    ),
  );
  // DC: register forms have ST(i) as destination; /4../7 are fsubr, fsub,
  // fdivr, fdiv (Table A-19: DC E0+i is FSUBR ST(i),ST(0)).
  t[0xdc] = mod(
    reg(...arith.map((m) => f(m, "Mq"))),
    reg(
      each("fadd", "STi,ST"),
      each("fmul", "STi,ST"),
      null,
      null,
      each("fsubr", "STi,ST"),
      each("fsub", "STi,ST"),
      each("fdivr", "STi,ST"),
      each("fdiv", "STi,ST"),
    ),
  );
  // DD
  t[0xdd] = mod(
    reg(
      f("fld", "Mq"),
      f("fisttp", "Mq"),
      f("fst", "Mq"),
      f("fstp", "Mq"),
      f("frstor", "Mf!", F_SFX | F_NOW),
      null,
      f("fnsave", "Mf!", F_FWAIT | F_SFX | F_NOW),
      f("fnstsw", "Mw", F_FWAIT),
    ),
    reg(
      each("ffree", "STi"),
      null,
      each("fst", "STi"),
      each("fstp", "STi"),
      each("fucom", "STi"),
      each("fucomp", "STi"),
      null,
      null,
    ),
  );
  // DE
  t[0xde] = mod(
    reg(...iarith.map((m) => f(m, "Mw"))),
    reg(
      each("faddp", "STi,ST"),
      each("fmulp", "STi,ST"),
      null,
      one(null, "fcompp", null, null, null, null, null, null),
      each("fsubrp", "STi,ST"),
      each("fsubp", "STi,ST"),
      each("fdivrp", "STi,ST"),
      each("fdivp", "STi,ST"),
    ),
  );
  // DF
  t[0xdf] = mod(
    reg(
      f("fild", "Mw"),
      f("fisttp", "Mw"),
      f("fist", "Mw"),
      f("fistp", "Mw"),
      f("fbld", "Mt"),
      f("fild", "Mq"),
      f("fbstp", "Mt"),
      f("fistp", "Mq"),
    ),
    reg(
      each("ffreep", "STi"),
      null,
      null,
      null,
      rm(f("fnstsw", "AX", F_FWAIT, true), null, null, null, null, null, null, null),
      each("fucomip", "ST,STi"),
      each("fcomip", "ST,STi"),
      null,
    ),
  );
}

// ---------------------------------------------------------------------------
// Two-byte opcode map 0F (SDM Vol. 2, Table A-3)

/** An SSE form with MMX (no prefix) and SSE2 (66) variants: "mn Pq,Qq" / "mn Vx,Wx". */
function mmxSse(mn: string, mmx: string, sse: string, flags = F_NDS): Sel {
  return pfx(f(mn, mmx, F_NOVEX), f(mn, sse, flags), null, null);
}

/** A packed-integer op: mm, mm/m64 or xmm, xmm/m128 (66). */
function pint(mn: string): Sel {
  return mmxSse(mn, "Pq,Qq", "Vx,Wx");
}

/** ps/pd/ss/sd arithmetic (none/66/F3/F2). */
function arith4(base: string, nds = F_NDS, scalarNds = F_NDS): Sel {
  return pfx(
    f(base + "ps", "Vx,Wx", nds),
    f(base + "pd", "Vx,Wx", nds),
    f(base + "ss", "Vdq,Wss", scalarNds),
    f(base + "sd", "Vdq,Wsd", scalarNds),
  );
}

function buildTwoByte(): Slot[] {
  const t: Slot[] = new Array(256).fill(null);
  // 0F 00: group 6
  // sldt/str: a memory destination is always 16 bits (SDM Vol. 2, SLDT/STR).
  t[0x00] = reg(
    mod(f("sldt", "Mw"), f("sldt", "Rv")),
    mod(f("str", "Mw"), f("str", "Rv")),
    f("lldt", "Ew"),
    f("ltr", "Ew"),
    f("verr", "Ew"),
    f("verw", "Ew"),
    null,
    null,
  );
  // 0F 01: group 7 (Table A-6)
  const n = null;
  const r0 = (name: string | null, ops = "") => (name ? f(name, ops, 0, true) : null);
  // Descriptor-table loads/stores: objdump names the operand size outside 64-bit mode.
  const desc = (nm: string) => mode(f(`${nm}w/${nm}d/${nm}d`, "Ms!"), f(nm, "Ms!", F_NO66));
  // Rows with prefix variants: a prefix without a variant is invalid there.
  const pf = (none: string | null, p66: string | null, f3: string | null, f2: string | null) =>
    pfx(r0(none), r0(p66), r0(f3), r0(f2));
  t[0x01] = reg(
    mod(
      desc("sgdt"),
      rm(
        r0("enclv"),
        r0("vmcall"),
        r0("vmlaunch"),
        r0("vmresume"),
        r0("vmxoff"),
        r0("pconfig"),
        pf("wrmsrns", n, "wrmsrlist", "rdmsrlist"),
        n,
      ),
    ),
    mod(
      desc("sidt"),
      rm(
        r0("monitor"),
        r0("mwait"),
        r0("clac"),
        r0("stac"),
        pf(n, "tdcall", n, n),
        pf(n, "seamret", n, n),
        pf(n, "seamops", n, n),
        pf("encls", "seamcall", n, n),
      ),
    ),
    mod(
      desc("lgdt"),
      rm(r0("xgetbv"), r0("xsetbv"), n, n, r0("vmfunc"), r0("xend"), r0("xtest"), r0("enclu")),
    ),
    mod(
      desc("lidt"),
      rm(
        r0("vmrun"),
        pf("vmmcall", n, "vmgexit", "vmgexit"),
        r0("vmload"),
        r0("vmsave"),
        r0("stgi"),
        r0("clgi"),
        r0("skinit"),
        r0("invlpga"),
      ),
    ),
    mod(f("smsw", "Mw"), f("smsw", "Rv")),
    mod(
      pfx(null, null, f("rstorssp", "Mq"), null),
      rm(
        pf("serialize", n, "setssbsy", "xsusldtrk"),
        pf(n, n, n, "xresldtrk"),
        pf(n, n, "saveprevssp", n),
        n,
        pfx(null, null, f("uiret", "", F_O64, true), null),
        pf(n, n, "testui", n),
        pf("rdpkru", n, "clui", n),
        pf("wrpkru", n, "stui", n),
      ),
    ),
    f("lmsw", "Ew"),
    mod(
      f("invlpg", "Mb~"),
      rm(
        f("swapgs", "", F_O64, true),
        r0("rdtscp"),
        pf("monitorx", n, "mcommit", n),
        pf("mwaitx", n, n, n),
        r0("clzero"),
        pf("rdpru", n, "rmpquery", n),
        pfx(r0("invlpgb"), null, f("rmpadjust", "", F_O64, true), f("rmpupdate", "", F_O64, true)),
        pf("tlbsync", n, "psmash", "pvalidate"),
      ),
    ),
  );
  t[0x02] = mod(f("lar", "Gv,Mw"), f("lar", "Gv,Rv"));
  t[0x03] = mod(f("lsl", "Gv,Mw"), f("lsl", "Gv,Rv"));
  t[0x05] = f("syscall", "", 0);
  t[0x06] = f("clts");
  // sysret: objdump always spells the size in 64-bit mode (sysretd/sysretq).
  t[0x07] = mode(f("sysret"), f("sysretd/sysretd/sysretq", "", F_MNW));
  t[0x08] = f("invd");
  t[0x09] = pfx(f("wbinvd"), null, f("wbnoinvd"), null);
  t[0x0b] = f("ud2");
  // 0F 0D: AMD prefetch group; all register forms are invalid.
  t[0x0d] = mod(
    reg(
      f("prefetch", "Mb~"),
      f("prefetchw", "Mb~"),
      f("prefetchwt1", "Mb~"),
      f("prefetch", "Mb~"),
      f("prefetch", "Mb~"),
      f("prefetch", "Mb~"),
      f("prefetch", "Mb~"),
      f("prefetch", "Mb~"),
    ),
    null,
  );
  t[0x0e] = f("femms");
  // 0F 0F: 3DNow! (decoded specially; the suffix byte selects the operation).
  t[0x10] = pfx(
    f("movups", "Vx,Wx"),
    f("movupd", "Vx,Wx"),
    mod(f("movss", "Vdq,Wss"), f("movss", "Vdq,Udq", F_NDS)),
    mod(f("movsd", "Vdq,Wsd"), f("movsd", "Vdq,Udq", F_NDS)),
  );
  t[0x11] = pfx(
    f("movups", "Wx,Vx"),
    f("movupd", "Wx,Vx"),
    mod(f("movss", "Wss,Vdq"), f("movss", "Udq,Vdq", F_NDS)),
    mod(f("movsd", "Wsd,Vdq"), f("movsd", "Udq,Vdq", F_NDS)),
  );
  t[0x12] = pfx(
    mod(f("movlps", "Vdq,Mq", F_NDS | F_L0), f("movhlps", "Vdq,Udq", F_NDS | F_L0)),
    mod(f("movlpd", "Vdq,Mq", F_NDS | F_L0), null),
    f("movsldup", "Vx,Wx"),
    f("movddup", "Vx,Wxh"),
  );
  t[0x13] = pfx(
    mod(f("movlps", "Mq,Vdq", F_L0), null),
    mod(f("movlpd", "Mq,Vdq", F_L0), null),
    null,
    null,
  );
  t[0x14] = pfx(f("unpcklps", "Vx,Wx", F_NDS), f("unpcklpd", "Vx,Wx", F_NDS), null, null);
  t[0x15] = pfx(f("unpckhps", "Vx,Wx", F_NDS), f("unpckhpd", "Vx,Wx", F_NDS), null, null);
  t[0x16] = pfx(
    mod(f("movhps", "Vdq,Mq", F_NDS | F_L0), f("movlhps", "Vdq,Udq", F_NDS | F_L0)),
    mod(f("movhpd", "Vdq,Mq", F_NDS | F_L0), null),
    f("movshdup", "Vx,Wx"),
    null,
  );
  t[0x17] = pfx(
    mod(f("movhps", "Mq,Vdq", F_L0), null),
    mod(f("movhpd", "Mq,Vdq", F_L0), null),
    null,
    null,
  );
  // 0F 18: prefetch hints; other encodings are reserved NOPs (SDM Vol. 2, NOP).
  const hintNop = f("nop", "Ev~");
  t[0x18] = mod(
    reg(
      f("prefetchnta", "Mb~"),
      f("prefetcht0", "Mb~"),
      f("prefetcht1", "Mb~"),
      f("prefetcht2", "Mb~"),
      hintNop,
      hintNop,
      hintNop,
      hintNop,
    ),
    hintNop,
  );
  t[0x19] = hintNop;
  // 0F 1A/1B: MPX (bound registers); without the prefix they are NOPs on register forms.
  const kn = keep(hintNop);
  t[0x1a] = pfx(
    mod(f("bndldx", "BR,M!"), hintNop),
    f("bndmov", "BR,BE"),
    f("bndcl", "BR,BA"),
    f("bndcu", "BR,BA"),
  );
  t[0x1b] = pfx(
    mod(f("bndstx", "M!,BR"), hintNop),
    f("bndmov", "BE,BR"),
    mod(f("bndmk", "BR,M!"), kn),
    f("bndcn", "BR,BA"),
  );
  t[0x1c] = pfx(
    mod(
      reg(f("cldemote", "Mb~"), hintNop, hintNop, hintNop, hintNop, hintNop, hintNop, hintNop),
      hintNop,
    ),
    keep(hintNop),
    keep(hintNop),
    keep(hintNop),
  );
  t[0x1d] = hintNop;
  // 0F 1E: F3 0F 1E FA/FB are endbr64/endbr32 (CET); F3 0F 1E /1 with mod=3 rdssp.
  t[0x1e] = pfx(
    hintNop,
    undefined,
    mod(
      kn,
      reg(
        kn,
        w64(f("rdsspd", "Rd"), f("rdsspq", "Rq")),
        kn,
        kn,
        kn,
        kn,
        kn,
        rm(kn, kn, f("endbr64", "", 0, true), f("endbr32", "", 0, true), kn, kn, kn, kn),
      ),
    ),
    undefined,
  );
  t[0x1f] = hintNop;
  // 0F 20-23: mov to/from CR/DR; mod is ignored (SDM Vol. 2, MOV-Move to/from Control Registers).
  t[0x20] = f("mov", "Rc,Cc", F_MODANY | F_NO66);
  t[0x21] = f("mov", "Rc,Dc", F_MODANY | F_NO66);
  t[0x22] = f("mov", "Cc,Rc", F_MODANY | F_NO66);
  t[0x23] = f("mov", "Dc,Rc", F_MODANY | F_NO66);
  t[0x28] = pfx(f("movaps", "Vx,Wx"), f("movapd", "Vx,Wx"), null, null);
  t[0x29] = pfx(f("movaps", "Wx,Vx"), f("movapd", "Wx,Vx"), null, null);
  t[0x2a] = pfx(
    f("cvtpi2ps", "Vdq,Qq", F_NOVEX),
    f("cvtpi2pd", "Vdq,Qq", F_NOVEX),
    f("cvtsi2ss", "Vdq,Ey", F_NDS),
    f("cvtsi2sd", "Vdq,Ey", F_NDS),
  );
  t[0x2b] = pfx(
    mod(f("movntps", "Mx,Vx"), null),
    mod(f("movntpd", "Mx,Vx"), null),
    mod(f("movntss", "Md,Vdq", F_NOVEX), null),
    mod(f("movntsd", "Mq,Vdq", F_NOVEX), null),
  );
  t[0x2c] = pfx(
    f("cvttps2pi", "Pq,Wq", F_NOVEX),
    f("cvttpd2pi", "Pq,Wdq", F_NOVEX),
    f("cvttss2si", "Gy,Wss"),
    f("cvttsd2si", "Gy,Wsd"),
  );
  t[0x2d] = pfx(
    f("cvtps2pi", "Pq,Wq", F_NOVEX),
    f("cvtpd2pi", "Pq,Wdq", F_NOVEX),
    f("cvtss2si", "Gy,Wss"),
    f("cvtsd2si", "Gy,Wsd"),
  );
  t[0x2e] = pfx(f("ucomiss", "Vdq,Wss"), f("ucomisd", "Vdq,Wsd"), null, null);
  t[0x2f] = pfx(f("comiss", "Vdq,Wss"), f("comisd", "Vdq,Wsd"), null, null);
  t[0x30] = f("wrmsr");
  t[0x31] = f("rdtsc");
  t[0x32] = f("rdmsr");
  t[0x33] = f("rdpmc");
  t[0x34] = f("sysenter");
  t[0x35] = mode(f("sysexit"), f("sysexitd/sysexitd/sysexitq", "", F_MNW));
  t[0x37] = f("getsec");
  // 0F 38 and 0F 3A escape to the three-byte maps (handled by the decoder).
  for (let i = 0; i < 16; i++) {
    t[0x40 + i] = f("cmov" + CC[i], "Gv,Ev");
    t[0x80 + i] = f("j" + CC[i], "Jz", F_D64 | F_BND);
    t[0x90 + i] = f("set" + CC[i], "Eb");
  }
  t[0x50] = pfx(mod(null, f("movmskps", "Gy,Ux")), mod(null, f("movmskpd", "Gy,Ux")), null, null);
  t[0x51] = arith4("sqrt", 0, F_NDS);
  t[0x52] = pfx(f("rsqrtps", "Vx,Wx"), null, f("rsqrtss", "Vdq,Wss", F_NDS), null);
  t[0x53] = pfx(f("rcpps", "Vx,Wx"), null, f("rcpss", "Vdq,Wss", F_NDS), null);
  t[0x54] = pfx(f("andps", "Vx,Wx", F_NDS), f("andpd", "Vx,Wx", F_NDS), null, null);
  t[0x55] = pfx(f("andnps", "Vx,Wx", F_NDS), f("andnpd", "Vx,Wx", F_NDS), null, null);
  t[0x56] = pfx(f("orps", "Vx,Wx", F_NDS), f("orpd", "Vx,Wx", F_NDS), null, null);
  t[0x57] = pfx(f("xorps", "Vx,Wx", F_NDS), f("xorpd", "Vx,Wx", F_NDS), null, null);
  t[0x58] = arith4("add");
  t[0x59] = arith4("mul");
  t[0x5a] = pfx(
    f("cvtps2pd", "Vx,Wxh"),
    f("cvtpd2ps", "Vdq,Wx"),
    f("cvtss2sd", "Vdq,Wss", F_NDS),
    f("cvtsd2ss", "Vdq,Wsd", F_NDS),
  );
  t[0x5b] = pfx(f("cvtdq2ps", "Vx,Wx"), f("cvtps2dq", "Vx,Wx"), f("cvttps2dq", "Vx,Wx"), null);
  t[0x5c] = arith4("sub");
  t[0x5d] = arith4("min");
  t[0x5e] = arith4("div");
  t[0x5f] = arith4("max");
  // 60-62: the MMX forms read only 32 bits of memory.
  t[0x60] = mmxSse("punpcklbw", "Pq,Qd", "Vx,Wx");
  t[0x61] = mmxSse("punpcklwd", "Pq,Qd", "Vx,Wx");
  t[0x62] = mmxSse("punpckldq", "Pq,Qd", "Vx,Wx");
  t[0x63] = pint("packsswb");
  t[0x64] = pint("pcmpgtb");
  t[0x65] = pint("pcmpgtw");
  t[0x66] = pint("pcmpgtd");
  t[0x67] = pint("packuswb");
  t[0x68] = pint("punpckhbw");
  t[0x69] = pint("punpckhwd");
  t[0x6a] = pint("punpckhdq");
  t[0x6b] = pint("packssdw");
  t[0x6c] = pfx(null, f("punpcklqdq", "Vx,Wx", F_NDS), null, null);
  t[0x6d] = pfx(null, f("punpckhqdq", "Vx,Wx", F_NDS), null, null);
  // 6E/7E: movd, or movq with REX.W (SDM Vol. 2, MOVD/MOVQ).
  t[0x6e] = pfx(
    w64(f("movd", "Pq,Ed", F_NOVEX), f("movq", "Pq,Eq", F_NOVEX)),
    w64(f("movd", "Vdq,Ed", F_L0), f("movq", "Vdq,Eq", F_L0)),
    null,
    null,
  );
  t[0x6f] = pfx(f("movq", "Pq,Qq", F_NOVEX), f("movdqa", "Vx,Wx"), f("movdqu", "Vx,Wx"), null);
  t[0x70] = pfx(
    f("pshufw", "Pq,Qq,Ib", F_NOVEX),
    f("pshufd", "Vx,Wx,Ib"),
    f("pshufhw", "Vx,Wx,Ib"),
    f("pshuflw", "Vx,Wx,Ib"),
  );
  const shImm = (
    names: (string | null)[],
    dq: (string | null)[] = [null, null, null, null, null, null, null, null],
  ) =>
    mod(
      null,
      reg(
        ...names.map((nm, i) =>
          nm || dq[i]
            ? pfx(nm ? f(nm, "Nq,Ib", F_NOVEX) : null, f((nm ?? dq[i])!, "Ux,Ib"), null, null)
            : null
        ),
      ),
    );
  t[0x71] = shImm([null, null, "psrlw", null, "psraw", null, "psllw", null]);
  t[0x72] = shImm([null, null, "psrld", null, "psrad", null, "pslld", null]);
  t[0x73] = shImm(
    [null, null, "psrlq", null, null, null, "psllq", null],
    [null, null, null, "psrldq", null, null, null, "pslldq"],
  );
  t[0x74] = pint("pcmpeqb");
  t[0x75] = pint("pcmpeqw");
  t[0x76] = pint("pcmpeqd");
  t[0x77] = pfx(f("emms"), null, null, null);
  // 78/79: VMX vmread/vmwrite (64-bit operands in 64-bit mode), AMD SSE4a with 66/F2.
  t[0x78] = pfx(
    f("vmread", "Ec,Gc", F_NO66),
    mod(null, f("extrq", "Udq,Ib,Ib", F_NOVEX)),
    null,
    mod(null, f("insertq", "Vdq,Udq,Ib,Ib", F_NOVEX)),
  );
  t[0x79] = pfx(
    f("vmwrite", "Gc,Ec", F_NO66),
    mod(null, f("extrq", "Vdq,Udq", F_NOVEX)),
    null,
    mod(null, f("insertq", "Vdq,Udq", F_NOVEX)),
  );
  t[0x7c] = pfx(null, f("haddpd", "Vx,Wx", F_NDS), null, f("haddps", "Vx,Wx", F_NDS));
  t[0x7d] = pfx(null, f("hsubpd", "Vx,Wx", F_NDS), null, f("hsubps", "Vx,Wx", F_NDS));
  t[0x7e] = pfx(
    w64(f("movd", "Ed,Pq", F_NOVEX), f("movq", "Eq,Pq", F_NOVEX)),
    w64(f("movd", "Ed,Vdq", F_L0), f("movq", "Eq,Vdq", F_L0)),
    f("movq", "Vdq,Wq", F_L0),
    null,
  );
  t[0x7f] = pfx(f("movq", "Qq,Pq", F_NOVEX), f("movdqa", "Wx,Vx"), f("movdqu", "Wx,Vx"), null);
  t[0xa0] = f("push", "FS", F_D64 | F_SFX);
  t[0xa1] = f("pop", "FS", F_D64 | F_SFX);
  t[0xa2] = f("cpuid");
  t[0xa3] = f("bt", "Ev,Gv");
  t[0xa4] = f("shld", "Ev,Gv,Ib");
  t[0xa5] = f("shld", "Ev,Gv,CL");
  // A6/A7: VIA PadLock (xsha1, xcrypt-*): left unknown, not #UD.
  t[0xa6] = undefined;
  t[0xa7] = undefined;
  t[0xa8] = f("push", "GS", F_D64 | F_SFX);
  t[0xa9] = f("pop", "GS", F_D64 | F_SFX);
  t[0xaa] = f("rsm");
  t[0xab] = f("bts", "Ev,Gv", F_LOCK | F_HLE);
  t[0xac] = f("shrd", "Ev,Gv,Ib");
  t[0xad] = f("shrd", "Ev,Gv,CL");
  // 0F AE: group 15 (Table A-6); the 64-bit forms of fxsave & co. take REX.W.
  const wq = (mn: string, ops: string, flags = 0) => w(f(mn, ops, flags), f(mn + "64", ops, flags));
  const fx = [
    wq("fxsave", "Mfx!"),
    wq("fxrstor", "Mfx!"),
    f("ldmxcsr", "Md"),
    f("stmxcsr", "Md"),
  ].map(keep);
  const rm0 = (x: Form) => rm(x, null, null, null, null, null, null, null);
  t[0xae] = mod(
    pfx(
      reg(
        wq("fxsave", "Mfx!"),
        wq("fxrstor", "Mfx!"),
        f("ldmxcsr", "Md"),
        f("stmxcsr", "Md"),
        wq("xsave", "M!"),
        wq("xrstor", "M!"),
        wq("xsaveopt", "M!"),
        f("clflush", "Mb~"),
      ),
      reg(fx[0], fx[1], fx[2], fx[3], null, null, f("clwb", "Mb~"), f("clflushopt", "Mb~")),
      reg(fx[0], fx[1], fx[2], fx[3], f("ptwrite", "Ey"), null, f("clrssbsy", "Mq"), null),
      reg(fx[0], fx[1], fx[2], fx[3], null, null, null, null),
    ),
    pfx(
      reg(
        null,
        null,
        null,
        null,
        null,
        f("lfence", "", 0, true), // any rm (objdump); SDM: E8-EF
        rm0(f("mfence", "", 0, true)),
        rm0(f("sfence", "", 0, true)),
      ),
      reg(
        null,
        null,
        null,
        null,
        null,
        null,
        f("tpause", "Rd"),
        keep(rm0(f("sfence", "", 0, true))),
      ),
      reg(
        f("rdfsbase", "Ry", F_O64),
        f("rdgsbase", "Ry", F_O64),
        f("wrfsbase", "Ry", F_O64),
        f("wrgsbase", "Ry", F_O64),
        f("ptwrite", "Ey"),
        w64(f("incsspd", "Rd"), f("incsspq", "Rq")),
        f("umonitor", "RA"),
        keep(rm0(f("sfence", "", 0, true))),
      ),
      reg(
        null,
        null,
        null,
        null,
        null,
        null,
        f("umwait", "Rd"),
        keep(rm0(f("sfence", "", 0, true))),
      ),
    ),
  );
  t[0xaf] = f("imul", "Gv,Ev");
  t[0xb0] = f("cmpxchg", "Eb,Gb", F_LOCK | F_HLE);
  t[0xb1] = f("cmpxchg", "Ev,Gv", F_LOCK | F_HLE);
  t[0xb2] = mod(f("lss", "Gv,Mp"), null);
  t[0xb3] = f("btr", "Ev,Gv", F_LOCK | F_HLE);
  t[0xb4] = mod(f("lfs", "Gv,Mp"), null);
  t[0xb5] = mod(f("lgs", "Gv,Mp"), null);
  t[0xb6] = f("movzx", "Gv,Eb");
  t[0xb7] = f("movzx", "Gv,Ew");
  t[0xb8] = pfx(null, null, f("popcnt", "Gv,Ev"), null);
  t[0xb9] = f("ud1", "Gv,Ev");
  t[0xba] = reg(
    null,
    null,
    null,
    null,
    f("bt", "Ev,Ib"),
    f("bts", "Ev,Ib", F_LOCK | F_HLE),
    f("btr", "Ev,Ib", F_LOCK | F_HLE),
    f("btc", "Ev,Ib", F_LOCK | F_HLE),
  );
  t[0xbb] = f("btc", "Ev,Gv", F_LOCK | F_HLE);
  t[0xbc] = pfx(f("bsf", "Gv,Ev"), undefined, f("tzcnt", "Gv,Ev"), null);
  t[0xbd] = pfx(f("bsr", "Gv,Ev"), undefined, f("lzcnt", "Gv,Ev"), null);
  t[0xbe] = f("movsx", "Gv,Eb");
  t[0xbf] = f("movsx", "Gv,Ew");
  t[0xc0] = f("xadd", "Eb,Gb", F_LOCK | F_HLE);
  t[0xc1] = f("xadd", "Ev,Gv", F_LOCK | F_HLE);
  t[0xc2] = pfx(
    f("cmpps", "Vx,Wx,Ib", F_NDS | F_PRED),
    f("cmppd", "Vx,Wx,Ib", F_NDS | F_PRED),
    f("cmpss", "Vdq,Wss,Ib", F_NDS | F_PRED),
    f("cmpsd", "Vdq,Wsd,Ib", F_NDS | F_PRED),
  );
  t[0xc3] = pfx(mod(f("movnti", "My,Gy"), null), null, null, null);
  t[0xc4] = pfx(
    mod(f("pinsrw", "Pq,Mw,Ib", F_NOVEX), f("pinsrw", "Pq,Rd,Ib", F_NOVEX)),
    mod(f("pinsrw", "Vdq,Mw,Ib", F_NDS | F_L0), f("pinsrw", "Vdq,Rd,Ib", F_NDS | F_L0)),
    null,
    null,
  );
  t[0xc5] = pfx(
    mod(null, f("pextrw", "Gd,Nq,Ib", F_NOVEX)),
    mod(null, f("pextrw", "Gd,Udq,Ib", F_L0)),
    null,
    null,
  );
  t[0xc6] = pfx(f("shufps", "Vx,Wx,Ib", F_NDS), f("shufpd", "Vx,Wx,Ib", F_NDS), null, null);
  // 0F C7: group 9. cmpxchg8b, or cmpxchg16b with REX.W (SDM Vol. 2, CMPXCHG8B/CMPXCHG16B).
  const g9 = [
    null,
    w(f("cmpxchg8b", "Mq", F_LOCK | F_HLE), f("cmpxchg16b", "Mo^OWORD", F_LOCK | F_HLE)),
    null,
    wq("xrstors", "M!"),
    wq("xsavec", "M!"),
    wq("xsaves", "M!"),
    f("vmptrld", "Mq"),
    f("vmptrst", "Mq"),
  ];
  const g9k = g9.map((x) => (x ? keep(x) : null));
  t[0xc7] = mod(
    pfx(
      reg(...g9),
      reg(g9k[0], g9k[1], g9k[2], g9k[3], g9k[4], g9k[5], f("vmclear", "Mq"), g9k[7]),
      reg(g9k[0], g9k[1], g9k[2], g9k[3], g9k[4], g9k[5], f("vmxon", "Mq"), g9k[7]),
      reg(g9k[0], g9k[1], g9k[2], g9k[3], g9k[4], g9k[5], null, g9k[7]),
    ),
    pfx(
      reg(null, null, null, null, null, null, f("rdrand", "Rv"), f("rdseed", "Rv")),
      undefined,
      reg(null, null, null, null, null, null, f("senduipi", "Rq", F_O64), f("rdpid", "Rc")),
      null,
    ),
  );
  for (let i = 0; i < 8; i++) t[0xc8 + i] = f("bswap", "Zv");
  t[0xd0] = pfx(null, f("addsubpd", "Vx,Wx", F_NDS), null, f("addsubps", "Vx,Wx", F_NDS));
  t[0xd1] = pint("psrlw");
  t[0xd2] = pint("psrld");
  t[0xd3] = pint("psrlq");
  t[0xd4] = pint("paddq");
  t[0xd5] = pint("pmullw");
  t[0xd6] = pfx(
    null,
    f("movq", "Wq,Vdq", F_L0),
    mod(null, f("movq2dq", "Vdq,Nq", F_NOVEX)),
    mod(null, f("movdq2q", "Pq,Udq", F_NOVEX)),
  );
  t[0xd7] = pfx(
    mod(null, f("pmovmskb", "Gy,Nq", F_NOVEX)),
    mod(null, f("pmovmskb", "Gy,Ux")),
    undefined,
    undefined,
  );
  const pnames: Record<number, string> = {
    0xd8: "psubusb",
    0xd9: "psubusw",
    0xda: "pminub",
    0xdb: "pand",
    0xdc: "paddusb",
    0xdd: "paddusw",
    0xde: "pmaxub",
    0xdf: "pandn",
    0xe0: "pavgb",
    0xe1: "psraw",
    0xe2: "psrad",
    0xe3: "pavgw",
    0xe4: "pmulhuw",
    0xe5: "pmulhw",
    0xe8: "psubsb",
    0xe9: "psubsw",
    0xea: "pminsw",
    0xeb: "por",
    0xec: "paddsb",
    0xed: "paddsw",
    0xee: "pmaxsw",
    0xef: "pxor",
    0xf1: "psllw",
    0xf2: "pslld",
    0xf3: "psllq",
    0xf4: "pmuludq",
    0xf5: "pmaddwd",
    0xf6: "psadbw",
    0xf8: "psubb",
    0xf9: "psubw",
    0xfa: "psubd",
    0xfb: "psubq",
    0xfc: "paddb",
    0xfd: "paddw",
    0xfe: "paddd",
  };
  for (const [op, nm] of Object.entries(pnames)) t[Number(op)] = pint(nm);
  t[0xe6] = pfx(null, f("cvttpd2dq", "Vdq,Wx"), f("cvtdq2pd", "Vx,Wxh"), f("cvtpd2dq", "Vdq,Wx"));
  t[0xe7] = pfx(
    mod(f("movntq", "Mq,Pq", F_NOVEX), null),
    mod(f("movntdq", "Mx,Vx"), null),
    null,
    null,
  );
  t[0xf0] = pfx(null, null, null, mod(f("lddqu", "Vx,Mx!"), null));
  t[0xf7] = pfx(
    mod(null, f("maskmovq", "Pq,Nq", F_NOVEX)),
    mod(null, f("maskmovdqu", "Vdq,Udq", F_L0)),
    null,
    null,
  );
  t[0xff] = f("ud0", "Gv,Ev");
  return t;
}

// ---------------------------------------------------------------------------
// Three-byte maps 0F 38 and 0F 3A (SDM Vol. 2, Tables)

function build0f38(): Slot[] {
  const t: Slot[] = new Array(256);
  const ssse3 = [
    "pshufb",
    "phaddw",
    "phaddd",
    "phaddsw",
    "pmaddubsw",
    "phsubw",
    "phsubd",
    "phsubsw",
    "psignb",
    "psignw",
    "psignd",
    "pmulhrsw",
  ];
  ssse3.forEach((nm, i) => (t[i] = pint(nm)));
  for (let i = 0x0c; i < 0x10; i++) t[i] = null;
  t[0x10] = pfx(null, f("pblendvb", "Vdq,Wdq,XMM0", F_NOVEX), null, null);
  t[0x14] = pfx(null, f("blendvps", "Vdq,Wdq,XMM0", F_NOVEX), null, null);
  t[0x15] = pfx(null, f("blendvpd", "Vdq,Wdq,XMM0", F_NOVEX), null, null);
  t[0x17] = pfx(null, f("ptest", "Vx,Wx"), null, null);
  t[0x1c] = mmxSse("pabsb", "Pq,Qq", "Vx,Wx", 0);
  t[0x1d] = mmxSse("pabsw", "Pq,Qq", "Vx,Wx", 0);
  t[0x1e] = mmxSse("pabsd", "Pq,Qq", "Vx,Wx", 0);
  const mov = (nm: string, sz: string) => pfx(null, f(nm, "Vx,W" + sz), null, null);
  t[0x20] = mov("pmovsxbw", "xh");
  t[0x21] = mov("pmovsxbd", "xq");
  t[0x22] = mov("pmovsxbq", "xo");
  t[0x23] = mov("pmovsxwd", "xh");
  t[0x24] = mov("pmovsxwq", "xq");
  t[0x25] = mov("pmovsxdq", "xh");
  t[0x30] = mov("pmovzxbw", "xh");
  t[0x31] = mov("pmovzxbd", "xq");
  t[0x32] = mov("pmovzxbq", "xo");
  t[0x33] = mov("pmovzxwd", "xh");
  t[0x34] = mov("pmovzxwq", "xq");
  t[0x35] = mov("pmovzxdq", "xh");
  const p66 = (nm: string, flags = F_NDS) => pfx(null, f(nm, "Vx,Wx", flags), null, null);
  t[0x28] = p66("pmuldq");
  t[0x29] = p66("pcmpeqq");
  t[0x2a] = pfx(null, mod(f("movntdqa", "Vx,Mx"), null), null, null);
  t[0x2b] = p66("packusdw");
  t[0x37] = p66("pcmpgtq");
  const mm = [
    "pminsb",
    "pminsd",
    "pminuw",
    "pminud",
    "pmaxsb",
    "pmaxsd",
    "pmaxuw",
    "pmaxud",
    "pmulld",
  ];
  mm.forEach((nm, i) => (t[0x38 + i] = p66(nm)));
  t[0x41] = pfx(null, f("phminposuw", "Vdq,Wdq", F_L0), null, null);
  t[0x80] = pfx(null, mod(f("invept", "Gc,Mo^OWORD", F_NO66), null), null, null);
  t[0x81] = pfx(null, mod(f("invvpid", "Gc,Mo^OWORD", F_NO66), null), null, null);
  t[0x82] = pfx(null, mod(f("invpcid", "Gc,M!", F_NO66), null), null, null);
  t[0xc8] = pfx(f("sha1nexte", "Vdq,Wdq", F_NOVEX), null, null, null);
  t[0xc9] = pfx(f("sha1msg1", "Vdq,Wdq", F_NOVEX), null, null, null);
  t[0xca] = pfx(f("sha1msg2", "Vdq,Wdq", F_NOVEX), null, null, null);
  t[0xcb] = pfx(f("sha256rnds2", "Vdq,Wdq,XMM0", F_NOVEX), null, null, null);
  t[0xcc] = pfx(f("sha256msg1", "Vdq,Wdq", F_NOVEX), null, null, null);
  t[0xcd] = pfx(f("sha256msg2", "Vdq,Wdq", F_NOVEX), null, null, null);
  t[0xcf] = p66("gf2p8mulb");
  t[0xdb] = pfx(null, f("aesimc", "Vdq,Wdq", F_L0), null, null);
  // Key Locker (Intel Key Locker Specification): F3 forms; the wide ones take no register.
  const kl = (nm: string) => mod(f(nm, "Vdq,M!", F_NOVEX), null);
  t[0xd8] = pfx(
    null,
    null,
    mod(
      reg(
        f("aesencwide128kl", "M!"),
        f("aesdecwide128kl", "M!"),
        f("aesencwide256kl", "M!"),
        f("aesdecwide256kl", "M!"),
        null,
        null,
        null,
        null,
      ),
      null,
    ),
    null,
  );
  t[0xdc] = pfx(
    null,
    f("aesenc", "Vx,Wx", F_NDS),
    mod(kl("aesenc128kl"), f("loadiwkey", "Vdq,Udq", F_NOVEX)),
    null,
  );
  t[0xdd] = pfx(null, f("aesenclast", "Vx,Wx", F_NDS), kl("aesdec128kl"), null);
  t[0xde] = pfx(null, f("aesdec", "Vx,Wx", F_NDS), kl("aesenc256kl"), null);
  t[0xdf] = pfx(null, f("aesdeclast", "Vx,Wx", F_NDS), kl("aesdec256kl"), null);
  t[0xfa] = pfx(null, null, mod(null, f("encodekey128", "Gd,Rd")), null);
  t[0xfb] = pfx(null, null, mod(null, f("encodekey256", "Gd,Rd")), null);
  // RAO-INT atomic operations (Intel ISE, AADD/AAND/AOR/AXOR).
  t[0xfc] = pfx(
    mod(f("aadd", "My,Gy"), null),
    mod(f("aand", "My,Gy"), null),
    mod(f("axor", "My,Gy"), null),
    mod(f("aor", "My,Gy"), null),
  );
  // F0/F1: movbe (no prefix or 66), crc32 (F2; F2+66 for 16-bit). SDM Vol. 2, MOVBE, CRC32.
  t[0xf0] = pfx(
    mod(f("movbe", "Gv,Mv"), null),
    keep(mod(f("movbe", "Gv,Mv"), null)),
    null,
    f("crc32", "Gy,Eb"),
  );
  t[0xf1] = pfx(
    mod(f("movbe", "Mv,Gv"), null),
    keep(mod(f("movbe", "Mv,Gv"), null)),
    null,
    f("crc32", "Gy,Ev"),
  );
  t[0xf5] = pfx(null, mod(w(f("wrussd", "Md!,Gd"), f("wrussq", "Mq!,Gq")), null), null, null);
  t[0xf6] = pfx(
    mod(w(f("wrssd", "Md!,Gd"), f("wrssq", "Mq!,Gq")), null),
    f("adcx", "Gy,Ey"),
    f("adox", "Gy,Ey"),
    null,
  );
  t[0xf8] = pfx(
    null,
    mod(f("movdir64b", "Gad,M!", F_NO66), null),
    mod(f("enqcmds", "Gad,M!"), null),
    mod(f("enqcmd", "Gad,M!"), null),
  );
  t[0xf9] = pfx(mod(f("movdiri", "My,Gy"), null), null, null, null);
  return t;
}

function build0f3a(): Slot[] {
  const t: Slot[] = new Array(256);
  const p66 = (nm: string, ops: string, flags = F_NDS) => pfx(null, f(nm, ops, flags), null, null);
  t[0x08] = p66("roundps", "Vx,Wx,Ib", 0);
  t[0x09] = p66("roundpd", "Vx,Wx,Ib", 0);
  t[0x0a] = p66("roundss", "Vdq,Wss,Ib", F_NDS);
  t[0x0b] = p66("roundsd", "Vdq,Wsd,Ib", F_NDS);
  t[0x0c] = p66("blendps", "Vx,Wx,Ib");
  t[0x0d] = p66("blendpd", "Vx,Wx,Ib");
  t[0x0e] = p66("pblendw", "Vx,Wx,Ib");
  t[0x0f] = mmxSse("palignr", "Pq,Qq,Ib", "Vx,Wx,Ib");
  // 14-17: a register destination is a 32-bit GPR (64 with REX.W for pextrq).
  t[0x14] = pfx(
    null,
    mod(f("pextrb", "Mb,Vdq,Ib", F_L0), f("pextrb", "Rd,Vdq,Ib", F_L0)),
    null,
    null,
  );
  t[0x15] = pfx(
    null,
    mod(f("pextrw", "Mw,Vdq,Ib", F_L0), f("pextrw", "Rd,Vdq,Ib", F_L0)),
    null,
    null,
  );
  t[0x16] = pfx(
    null,
    w64(f("pextrd", "Ed,Vdq,Ib", F_L0), f("pextrq", "Eq,Vdq,Ib", F_L0)),
    null,
    null,
  );
  t[0x17] = pfx(null, f("extractps", "Ed,Vdq,Ib", F_L0), null, null);
  t[0x20] = pfx(
    null,
    mod(f("pinsrb", "Vdq,Mb,Ib", F_NDS | F_L0), f("pinsrb", "Vdq,Rd,Ib", F_NDS | F_L0)),
    null,
    null,
  );
  t[0x21] = p66("insertps", "Vdq,Wd,Ib", F_NDS | F_L0);
  t[0x22] = pfx(
    null,
    w64(f("pinsrd", "Vdq,Ed,Ib", F_NDS | F_L0), f("pinsrq", "Vdq,Eq,Ib", F_NDS | F_L0)),
    null,
    null,
  );
  t[0x40] = p66("dpps", "Vx,Wx,Ib");
  t[0x41] = p66("dppd", "Vdq,Wdq,Ib", F_NDS | F_L0);
  t[0x42] = p66("mpsadbw", "Vx,Wx,Ib");
  t[0x44] = p66("pclmulqdq", "Vx,Wx,Ib", F_NDS | F_PRED);
  // pcmpestri/m with REX.W take 64-bit lengths in rax/rdx (objdump: pcmpestriq).
  t[0x60] = pfx(
    null,
    w64(f("pcmpestrm", "Vdq,Wdq,Ib", F_L0), f("pcmpestrmq", "Vdq,Wdq,Ib", F_L0)),
    null,
    null,
  );
  t[0x61] = pfx(
    null,
    w64(f("pcmpestri", "Vdq,Wdq,Ib", F_L0), f("pcmpestriq", "Vdq,Wdq,Ib", F_L0)),
    null,
    null,
  );
  t[0x62] = p66("pcmpistrm", "Vdq,Wdq,Ib", F_L0);
  t[0x63] = p66("pcmpistri", "Vdq,Wdq,Ib", F_L0);
  t[0xcc] = pfx(f("sha1rnds4", "Vdq,Wdq,Ib", F_NOVEX), null, null, null);
  t[0xce] = p66("gf2p8affineqb", "Vx,Wx,Ib");
  t[0xcf] = p66("gf2p8affineinvqb", "Vx,Wx,Ib");
  t[0xdf] = p66("aeskeygenassist", "Vdq,Wdq,Ib", F_L0);
  return t;
}

/** 3DNow! operations by their suffix byte (AMD 3DNow! Technology Manual, Table 11). */
export const AMD3DNOW: Record<number, string> = {
  0x0c: "pi2fw",
  0x0d: "pi2fd",
  0x1c: "pf2iw",
  0x1d: "pf2id",
  0x8a: "pfnacc",
  0x8e: "pfpnacc",
  0x90: "pfcmpge",
  0x94: "pfmin",
  0x96: "pfrcp",
  0x97: "pfrsqrt",
  0x9a: "pfsub",
  0x9e: "pfadd",
  0xa0: "pfcmpgt",
  0xa4: "pfmax",
  0xa6: "pfrcpit1",
  0xa7: "pfrsqit1",
  0xaa: "pfsubr",
  0xae: "pfacc",
  0xb0: "pfcmpeq",
  0xb4: "pfmul",
  0xb6: "pfrcpit2",
  0xb7: "pmulhrw",
  0xbb: "pswapd",
  0xbf: "pavgusb",
};

/** The one 3DNow! form: mm, mm/m64 (the operation comes from the suffix byte). */
export const FORM_3DNOW: Form = f("3dnow", "Pq,Qq");

/** The one-byte opcode map. */
export const ONE_BYTE: readonly Slot[] = buildOneByte();
/** The 0F opcode map. */
export const TWO_BYTE: readonly Slot[] = buildTwoByte();
/** The 0F 38 opcode map. */
export const MAP_0F38: readonly Slot[] = build0f38();
/** The 0F 3A opcode map. */
export const MAP_0F3A: readonly Slot[] = build0f3a();

/** Special forms the decoder picks by hand. */
export const FORM_PAUSE: Form = f("pause");
/** 90 with REX.B: xchg r8, rAX. */
export const FORM_XCHG_R8: Form = f("xchg", "Zv,rAX");
/** 66 90 (objdump: xchg ax,ax). */
export const FORM_XCHG_AX: Form = f("xchg", "Zv,rAX");

/** Immediate predicates of cmpps & co. (SDM Vol. 2, CMPPS, Table 3-1); objdump's pseudo-op names. */
export const CMP_PREDICATES = [
  "eq",
  "lt",
  "le",
  "unord",
  "neq",
  "nlt",
  "nle",
  "ord",
  "eq_uq",
  "nge",
  "ngt",
  "false",
  "neq_oq",
  "ge",
  "gt",
  "true",
  "eq_os",
  "lt_oq",
  "le_oq",
  "unord_s",
  "neq_us",
  "nlt_uq",
  "nle_uq",
  "ord_s",
  "eq_us",
  "nge_uq",
  "ngt_uq",
  "false_os",
  "neq_os",
  "ge_oq",
  "gt_oq",
  "true_us",
];

/** pclmulqdq pseudo-ops by imm8 (binutils' names). */
export const PCLMUL_NAMES: Record<number, string> = {
  0x00: "pclmullqlqdq",
  0x01: "pclmulhqlqdq",
  0x10: "pclmullqhqdq",
  0x11: "pclmulhqhqdq",
};

/**
 * VEX, EVEX and XOP opcode tables for the x86 decoder (decode.ts).
 *
 * Most VEX forms are the legacy SSE forms of the same map, opcode and
 * implied prefix (SDM Vol. 2, 2.3: VEX.pp encodes 66/F3/F2, VEX.mmmmm the
 * 0F/0F38/0F3A escape) with a "v" in front of the mnemonic and, for the
 * non-destructive forms, VEX.vvvv inserted as the first source. They are
 * derived from the legacy tables; the VEX-only instructions (broadcasts,
 * permutes, 128-bit lane inserts/extracts, FMA, BMI1/BMI2, AMX tile
 * control) are listed here. EVEX forms reuse the VEX names except where
 * AVX-512 renamed them by element width (vmovdqa32, vpxord, ...).
 *
 * @module
 */
import {
  f,
  F_L0,
  F_NDS,
  F_NOVEX,
  F_O64,
  type Form,
  K_FORM,
  M_N,
  M_P,
  M_Q,
  M_U,
  M_V,
  M_W,
  MAP_0F38,
  MAP_0F3A,
  mod,
  type Node,
  pfx,
  reg,
  rm,
  type Sel,
  type Spec,
  spec,
  SZ_X,
  TWO_BYTE,
  vl,
  w,
  w64,
} from "./_decode_tables.ts";

type Slot = Node | null | undefined;

const VEC_METHODS = new Set([M_V, M_W, M_U]);

/** The VEX form of a legacy SSE form, or null when it has none. */
function vexForm(form: Form): Form | null {
  if (form.f & F_NOVEX) return null;
  if (!form.ops.some((s) => VEC_METHODS.has(s.m))) return null;
  if (form.ops.some((s) => s.m === M_P || s.m === M_Q || s.m === M_N)) return null;
  const ops: Spec[] = [...form.ops];
  if (form.f & F_NDS) {
    const first = ops[0];
    const h = first.s === SZ_X ? spec("Hx") : spec("Hdq");
    ops.splice(1, 0, h);
  }
  return Object.freeze({ ...form, mn: "v" + form.mn, mnv: null, ops, f: form.f & ~F_NDS });
}

/** Converts a legacy node: prefix selectors become VEX.pp selectors (no fallback). */
function vexNode(n: Slot, underPfx: boolean): Slot {
  // A legacy encoding that is invalid says nothing about VEX: leave it unknown.
  if (n === null || n === undefined) return undefined;
  if (n.k === K_FORM) return underPfx ? vexForm(n) ?? undefined : undefined;
  const t = n.t.map((c, i) => {
    if (n.k === 4) {
      // VEX.pp is an exact selector: an empty slot is invalid, never "same as none".
      return vexNode(c === undefined && i !== 0 ? null : c, true);
    }
    return vexNode(c, underPfx);
  });
  return { k: n.k, t } as Sel;
}

function derive(legacy: readonly Slot[]): Slot[] {
  return legacy.map((n) => vexNode(n, false));
}

/** VEX map 0F. */
function buildVex0f(): Slot[] {
  const t = derive(TWO_BYTE);
  // vzeroupper (VEX.128) / vzeroall (VEX.256): no ModRM (SDM Vol. 2, VZEROUPPER).
  // VEX.pp and VEX.W are ignored here (objdump decodes every pp).
  t[0x77] = vl(f("vzeroupper", "", 0, false), f("vzeroall", "", 0, false));
  // Shift by immediate: VEX.vvvv is the destination (SDM Vol. 2, PSRLW/PSRLD/PSRLQ).
  const sh = (names: (string | null)[]) =>
    mod(
      null,
      reg(...names.map((nm) => (nm ? pfx(null, f("v" + nm, "Hx,Ux,Ib"), null, null) : null))),
    );
  t[0x71] = sh([null, null, "psrlw", null, "psraw", null, "psllw", null]);
  t[0x72] = sh([null, null, "psrld", null, "psrad", null, "pslld", null]);
  t[0x73] = sh([null, null, "psrlq", "psrldq", null, null, "psllq", "pslldq"]);
  t[0xae] = mod(
    pfx(
      reg(null, null, f("vldmxcsr", "Md"), f("vstmxcsr", "Md"), null, null, null, null),
      null,
      null,
      null,
    ),
    null,
  );
  // vmovd/vmovq: VEX.W selects the GPR width.
  t[0x6e] = pfx(null, w64(f("vmovd", "Vdq,Ed", F_L0), f("vmovq", "Vdq,Eq", F_L0)), null, null);
  t[0x7e] = pfx(
    null,
    w64(f("vmovd", "Ed,Vdq", F_L0), f("vmovq", "Eq,Vdq", F_L0)),
    f("vmovq", "Vdq,Wq", F_L0),
    null,
  );
  // AVX-512 opmask instructions (SDM Vol. 2, KADDW & co.): the suffix comes
  // from VEX.pp and VEX.W (none/W0 w, none/W1 q, 66/W0 b, 66/W1 d).
  const kop = (base: string, ops: string, l: 0 | 1) => {
    const form = (sfx: string) => mod(null, f(base + sfx, ops));
    const byW = pfx(w(form("w"), form("q")), w(form("b"), form("d")), null, null);
    return l ? vl(null, byW) : vl(byW, null);
  };
  t[0x41] = kop("kand", "KR,KH,KE", 1);
  t[0x42] = kop("kandn", "KR,KH,KE", 1);
  t[0x45] = kop("kor", "KR,KH,KE", 1);
  t[0x46] = kop("kxnor", "KR,KH,KE", 1);
  t[0x47] = kop("kxor", "KR,KH,KE", 1);
  t[0x4a] = kop("kadd", "KR,KH,KE", 1);
  t[0x44] = kop("knot", "KR,KE", 0);
  t[0x98] = kop("kortest", "KR,KE", 0);
  t[0x99] = kop("ktest", "KR,KE", 0);
  t[0x4b] = vl(
    null,
    pfx(
      w(mod(null, f("kunpckwd", "KR,KH,KE")), mod(null, f("kunpckdq", "KR,KH,KE"))),
      w(mod(null, f("kunpckbw", "KR,KH,KE")), null),
      null,
      null,
    ),
  );
  const kmov = (ops: string, memOk: boolean) => {
    const one = (sfx: string) => (memOk ? f("kmov" + sfx, ops) : mod(null, f("kmov" + sfx, ops)));
    return vl(pfx(w(one("w"), one("q")), w(one("b"), one("d")), null, null), null);
  };
  t[0x90] = kmov("KR,KE", true);
  t[0x91] = vl(
    pfx(
      w(mod(f("kmovw", "Mw,KR"), null), mod(f("kmovq", "Mq,KR"), null)),
      w(mod(f("kmovb", "Mb,KR"), null), mod(f("kmovd", "Md,KR"), null)),
      null,
      null,
    ),
    null,
  );
  t[0x92] = vl(
    pfx(
      w(mod(null, f("kmovw", "KR,Rd")), null),
      w(mod(null, f("kmovb", "KR,Rd")), null),
      null,
      w64(mod(null, f("kmovd", "KR,Rd")), mod(null, f("kmovq", "KR,Rq"))),
    ),
    null,
  );
  t[0x93] = vl(
    pfx(
      w(mod(null, f("kmovw", "Gd,KE")), null),
      w(mod(null, f("kmovb", "Gd,KE")), null),
      null,
      w64(mod(null, f("kmovd", "Gd,KE")), mod(null, f("kmovq", "Gq,KE"))),
    ),
    null,
  );
  // 0F 2A: vcvtsi2ss/sd take a 32- or 64-bit GPR by VEX.W.
  return t;
}

/** Names of FMA forms: 0F38 96-BF (SDM Vol. 2, VFMADD132PS & co.). */
const FMA_OPS: Record<number, string> = {
  0x96: "vfmaddsub132p",
  0x97: "vfmsubadd132p",
  0x98: "vfmadd132p",
  0x99: "vfmadd132s",
  0x9a: "vfmsub132p",
  0x9b: "vfmsub132s",
  0x9c: "vfnmadd132p",
  0x9d: "vfnmadd132s",
  0x9e: "vfnmsub132p",
  0x9f: "vfnmsub132s",
  0xa6: "vfmaddsub213p",
  0xa7: "vfmsubadd213p",
  0xa8: "vfmadd213p",
  0xa9: "vfmadd213s",
  0xaa: "vfmsub213p",
  0xab: "vfmsub213s",
  0xac: "vfnmadd213p",
  0xad: "vfnmadd213s",
  0xae: "vfnmsub213p",
  0xaf: "vfnmsub213s",
  0xb6: "vfmaddsub231p",
  0xb7: "vfmsubadd231p",
  0xb8: "vfmadd231p",
  0xb9: "vfmadd231s",
  0xba: "vfmsub231p",
  0xbb: "vfmsub231s",
  0xbc: "vfnmadd231p",
  0xbd: "vfnmadd231s",
  0xbe: "vfnmsub231p",
  0xbf: "vfnmsub231s",
};

/** VEX map 0F38. */
function buildVex0f38(): Slot[] {
  const t = derive(MAP_0F38);
  const p66 = (x: Slot) => pfx(null, x, null, null);
  t[0x0c] = p66(w(f("vpermilps", "Vx,Hx,Wx"), null));
  t[0x0d] = p66(w(f("vpermilpd", "Vx,Hx,Wx"), null));
  t[0x0e] = p66(w(f("vtestps", "Vx,Wx"), null));
  t[0x0f] = p66(w(f("vtestpd", "Vx,Wx"), null));
  t[0x13] = p66(w(f("vcvtph2ps", "Vx,Wxh"), null));
  t[0x16] = p66(vl(null, w(f("vpermps", "Vqq,Hqq,Wqq"), null)));
  t[0x18] = p66(w(f("vbroadcastss", "Vx,Wd"), null));
  t[0x19] = p66(vl(null, w(f("vbroadcastsd", "Vqq,Wq"), null)));
  t[0x1a] = p66(vl(null, mod(w(f("vbroadcastf128", "Vqq,Mdq"), null), null)));
  t[0x2c] = p66(mod(w(f("vmaskmovps", "Vx,Hx,Mx"), null), null));
  t[0x2d] = p66(mod(w(f("vmaskmovpd", "Vx,Hx,Mx"), null), null));
  t[0x2e] = p66(mod(w(f("vmaskmovps", "Mx,Hx,Vx"), null), null));
  t[0x2f] = p66(mod(w(f("vmaskmovpd", "Mx,Hx,Vx"), null), null));
  t[0x36] = p66(vl(null, w(f("vpermd", "Vqq,Hqq,Wqq"), null)));
  t[0x45] = p66(w(f("vpsrlvd", "Vx,Hx,Wx"), f("vpsrlvq", "Vx,Hx,Wx")));
  t[0x46] = p66(w(f("vpsravd", "Vx,Hx,Wx"), null));
  t[0x47] = p66(w(f("vpsllvd", "Vx,Hx,Wx"), f("vpsllvq", "Vx,Hx,Wx")));
  // AMX tile configuration (Intel SDM Vol. 2, LDTILECFG/STTILECFG/TILERELEASE).
  const tr = f("tilerelease", "", F_L0 | F_O64, true);
  t[0x49] = pfx(
    w(
      mod(
        f("ldtilecfg", "M!", F_L0 | F_O64),
        reg(
          rm(tr, null, null, null, null, null, null, null),
          null,
          null,
          null,
          null,
          null,
          null,
          null,
        ),
      ),
      null,
    ),
    w(mod(f("sttilecfg", "M!", F_L0 | F_O64), null), null),
    null,
    null,
  );
  t[0xcf] = p66(w(f("vgf2p8mulb", "Vx,Hx,Wx"), null));
  t[0x58] = p66(w(f("vpbroadcastd", "Vx,Wd"), null));
  t[0x59] = p66(w(f("vpbroadcastq", "Vx,Wq"), null));
  t[0x5a] = p66(vl(null, mod(w(f("vbroadcasti128", "Vqq,Mdq"), null), null)));
  t[0x78] = p66(w(f("vpbroadcastb", "Vx,Wb"), null));
  t[0x79] = p66(w(f("vpbroadcastw", "Vx,Ww"), null));
  t[0x8c] = p66(mod(w(f("vpmaskmovd", "Vx,Hx,Mx"), f("vpmaskmovq", "Vx,Hx,Mx")), null));
  t[0x8e] = p66(mod(w(f("vpmaskmovd", "Mx,Hx,Vx"), f("vpmaskmovq", "Mx,Hx,Vx")), null));
  for (const [op, base] of Object.entries(FMA_OPS)) {
    const scalar = base.endsWith("s");
    t[Number(op)] = p66(
      scalar
        ? w(f(base + "s", "Vdq,Hdq,Wss"), f(base + "d", "Vdq,Hdq,Wsd"))
        : w(f(base + "s", "Vx,Hx,Wx"), f(base + "d", "Vx,Hx,Wx")),
    );
  }
  // BMI1/BMI2 (SDM Vol. 2, ANDN, BEXTR, BLSI, BLSMSK, BLSR, BZHI, MULX, PDEP, PEXT, SARX/SHLX/SHRX).
  t[0xf2] = pfx(f("andn", "Gy,By,Ey", F_L0), null, null, null);
  t[0xf3] = pfx(
    reg(
      null,
      f("blsr", "By,Ey", F_L0),
      f("blsmsk", "By,Ey", F_L0),
      f("blsi", "By,Ey", F_L0),
      null,
      null,
      null,
      null,
    ),
    null,
    null,
    null,
  );
  t[0xf5] = pfx(
    f("bzhi", "Gy,Ey,By", F_L0),
    null,
    f("pext", "Gy,By,Ey", F_L0),
    f("pdep", "Gy,By,Ey", F_L0),
  );
  t[0xf6] = pfx(null, null, null, f("mulx", "Gy,By,Ey", F_L0));
  t[0xf7] = pfx(
    f("bextr", "Gy,Ey,By", F_L0),
    f("shlx", "Gy,Ey,By", F_L0),
    f("sarx", "Gy,Ey,By", F_L0),
    f("shrx", "Gy,Ey,By", F_L0),
  );
  return t;
}

/** VEX map 0F3A. */
function buildVex0f3a(): Slot[] {
  const t = derive(MAP_0F3A);
  const p66 = (x: Slot) => pfx(null, x, null, null);
  t[0x00] = p66(vl(null, w(null, f("vpermq", "Vqq,Wqq,Ib"))));
  t[0x01] = p66(vl(null, w(null, f("vpermpd", "Vqq,Wqq,Ib"))));
  t[0x02] = p66(w(f("vpblendd", "Vx,Hx,Wx,Ib"), null));
  t[0x04] = p66(w(f("vpermilps", "Vx,Wx,Ib"), null));
  t[0x05] = p66(w(f("vpermilpd", "Vx,Wx,Ib"), null));
  t[0x06] = p66(vl(null, w(f("vperm2f128", "Vqq,Hqq,Wqq,Ib"), null)));
  t[0x18] = p66(vl(null, w(f("vinsertf128", "Vqq,Hqq,Wdq,Ib"), null)));
  t[0x19] = p66(vl(null, w(f("vextractf128", "Wdq,Vqq,Ib"), null)));
  t[0x1d] = p66(w(f("vcvtps2ph", "Wxh,Vx,Ib"), null));
  t[0x38] = p66(vl(null, w(f("vinserti128", "Vqq,Hqq,Wdq,Ib"), null)));
  t[0x39] = p66(vl(null, w(f("vextracti128", "Wdq,Vqq,Ib"), null)));
  t[0x46] = p66(vl(null, w(f("vperm2i128", "Vqq,Hqq,Wqq,Ib"), null)));
  t[0x4a] = p66(w(f("vblendvps", "Vx,Hx,Wx,Lx"), null));
  t[0x4b] = p66(w(f("vblendvpd", "Vx,Hx,Wx,Lx"), null));
  t[0x4c] = p66(w(f("vpblendvb", "Vx,Hx,Wx,Lx"), null));
  t[0xf0] = pfx(null, null, null, f("rorx", "Gy,Ey,Ib", F_L0));
  t[0xce] = p66(w(null, f("vgf2p8affineqb", "Vx,Hx,Wx,Ib")));
  t[0xcf] = p66(w(null, f("vgf2p8affineinvqb", "Vx,Hx,Wx,Ib")));
  const ksh = (b: string, d: string) =>
    pfx(null, vl(w(mod(null, f(b, "KR,KE,Ib")), mod(null, f(d, "KR,KE,Ib"))), null), null, null);
  t[0x30] = ksh("kshiftrb", "kshiftrw");
  t[0x31] = ksh("kshiftrd", "kshiftrq");
  t[0x32] = ksh("kshiftlb", "kshiftlw");
  t[0x33] = ksh("kshiftld", "kshiftlq");
  return t;
}

/** VEX map 0F (VEX.mmmmm = 1). */
export const VEX_0F: readonly Slot[] = buildVex0f();
/** VEX map 0F38 (VEX.mmmmm = 2). */
export const VEX_0F38: readonly Slot[] = buildVex0f38();
/** VEX map 0F3A (VEX.mmmmm = 3). */
export const VEX_0F3A: readonly Slot[] = buildVex0f3a();

// ---------------------------------------------------------------------------
// EVEX (SDM Vol. 2, 2.7): the VEX tables with AVX-512's own names.

function evexOverrides(base: readonly Slot[], extra: Record<number, Slot>): Slot[] {
  const t = [...base];
  for (const [op, n] of Object.entries(extra)) t[Number(op)] = n;
  return t;
}

const dq = (d: string, q: string, ops: string) => w(f(d, ops), f(q, ops));

/** EVEX map 0F. */
export const EVEX_0F: readonly Slot[] = evexOverrides(VEX_0F, {
  0x6f: pfx(
    null,
    dq("vmovdqa32", "vmovdqa64", "Vx,Wx"),
    dq("vmovdqu32", "vmovdqu64", "Vx,Wx"),
    dq("vmovdqu8", "vmovdqu16", "Vx,Wx"),
  ),
  0x7f: pfx(
    null,
    dq("vmovdqa32", "vmovdqa64", "Wx,Vx"),
    dq("vmovdqu32", "vmovdqu64", "Wx,Vx"),
    dq("vmovdqu8", "vmovdqu16", "Wx,Vx"),
  ),
  // EVEX.NDD group 13: the source may be memory (m32bcst/m64bcst too), unlike VEX.
  0x72: reg(
    pfx(null, dq("vprord", "vprorq", "Hx,Wx,Ib"), null, null),
    pfx(null, dq("vprold", "vprolq", "Hx,Wx,Ib"), null, null),
    pfx(null, f("vpsrld", "Hx,Wx,Ib"), null, null),
    null,
    pfx(null, dq("vpsrad", "vpsraq", "Hx,Wx,Ib"), null, null),
    null,
    pfx(null, f("vpslld", "Hx,Wx,Ib"), null, null),
    null,
  ),
  0xdb: pfx(null, dq("vpandd", "vpandq", "Vx,Hx,Wx"), null, null),
  0xdf: pfx(null, dq("vpandnd", "vpandnq", "Vx,Hx,Wx"), null, null),
  0xeb: pfx(null, dq("vpord", "vporq", "Vx,Hx,Wx"), null, null),
  0xef: pfx(null, dq("vpxord", "vpxorq", "Vx,Hx,Wx"), null, null),
});

/** EVEX map 0F38. */
export const EVEX_0F38: readonly Slot[] = evexOverrides(VEX_0F38, {
  // EVEX.W1 59 is vpbroadcastq, W0 vbroadcasti32x2 (AVX512DQ); VEX has only W0 vpbroadcastq.
  0x59: pfx(null, dq("vbroadcasti32x2", "vpbroadcastq", "Vx,Wq"), null, null),
  0x76: pfx(null, dq("vpermi2d", "vpermi2q", "Vx,Hx,Wx"), null, null),
  0x77: pfx(null, dq("vpermi2ps", "vpermi2pd", "Vx,Hx,Wx"), null, null),
  0x7e: pfx(null, dq("vpermt2d", "vpermt2q", "Vx,Hx,Wx"), null, null),
  0x7f: pfx(null, dq("vpermt2ps", "vpermt2pd", "Vx,Hx,Wx"), null, null),
  0x15: pfx(null, dq("vprolvd", "vprolvq", "Vx,Hx,Wx"), null, null),
  0x14: pfx(null, dq("vprorvd", "vprorvq", "Vx,Hx,Wx"), null, null),
});

/** EVEX map 0F3A. */
export const EVEX_0F3A: readonly Slot[] = evexOverrides(VEX_0F3A, {
  0x25: pfx(null, dq("vpternlogd", "vpternlogq", "Vx,Hx,Wx,Ib"), null, null),
});

// ---------------------------------------------------------------------------
// XOP (AMD64 APM Vol. 4, Appendix A: XOP opcode maps 8, 9 and A)

const xop = (mn: string, ops: string) => f(mn, ops, 0, true);

function buildXop8(): Slot[] {
  const t: Slot[] = new Array(256);
  const four: Record<number, string> = {
    0x85: "vpmacssww",
    0x86: "vpmacsswd",
    0x87: "vpmacssdql",
    0x8e: "vpmacssdd",
    0x8f: "vpmacssdqh",
    0x95: "vpmacsww",
    0x96: "vpmacswd",
    0x97: "vpmacsdql",
    0x9e: "vpmacsdd",
    0x9f: "vpmacsdqh",
    0xa2: "vpcmov",
    0xa3: "vpperm",
    0xa6: "vpmadcsswd",
    0xb6: "vpmadcswd",
  };
  for (const [op, nm] of Object.entries(four)) t[Number(op)] = xop(nm, "Vx,Hx,Wx,Lx");
  ["vprotb", "vprotw", "vprotd", "vprotq"].forEach((
    nm,
    i,
  ) => (t[0xc0 + i] = xop(nm, "Vdq,Wdq,Ib")));
  ["vpcomb", "vpcomw", "vpcomd", "vpcomq"].forEach((
    nm,
    i,
  ) => (t[0xcc + i] = xop(nm, "Vdq,Hdq,Wdq,Ib")));
  ["vpcomub", "vpcomuw", "vpcomud", "vpcomuq"].forEach((
    nm,
    i,
  ) => (t[0xec + i] = xop(nm, "Vdq,Hdq,Wdq,Ib")));
  return t;
}

function buildXop9(): Slot[] {
  const t: Slot[] = new Array(256);
  // TBM (AMD64 APM Vol. 3, BLCFILL & co.).
  t[0x01] = reg(
    null,
    f("blcfill", "By,Ey"),
    f("blsfill", "By,Ey"),
    f("blcs", "By,Ey"),
    f("tzmsk", "By,Ey"),
    f("blcic", "By,Ey"),
    f("blsic", "By,Ey"),
    f("t1mskc", "By,Ey"),
  );
  t[0x02] = reg(null, f("blcmsk", "By,Ey"), null, null, null, null, f("blci", "By,Ey"), null);
  t[0x12] = mod(
    null,
    reg(f("llwpcb", "Ry"), f("slwpcb", "Ry"), null, null, null, null, null, null),
  );
  ["vfrczps", "vfrczpd", "vfrczss", "vfrczsd"].forEach((nm, i) => (t[0x80 + i] = xop(nm, "Vx,Wx")));
  ["vprotb", "vprotw", "vprotd", "vprotq"].forEach((
    nm,
    i,
  ) => (t[0x90 + i] = xop(nm, "Vdq,Wdq,Hdq")));
  ["vpshlb", "vpshlw", "vpshld", "vpshlq"].forEach((
    nm,
    i,
  ) => (t[0x94 + i] = xop(nm, "Vdq,Wdq,Hdq")));
  ["vpshab", "vpshaw", "vpshad", "vpshaq"].forEach((
    nm,
    i,
  ) => (t[0x98 + i] = xop(nm, "Vdq,Wdq,Hdq")));
  const two: Record<number, string> = {
    0xc1: "vphaddbw",
    0xc2: "vphaddbd",
    0xc3: "vphaddbq",
    0xc6: "vphaddwd",
    0xc7: "vphaddwq",
    0xcb: "vphadddq",
    0xd1: "vphaddubw",
    0xd2: "vphaddubd",
    0xd3: "vphaddubq",
    0xd6: "vphadduwd",
    0xd7: "vphadduwq",
    0xdb: "vphaddudq",
    0xe1: "vphsubbw",
    0xe2: "vphsubwd",
    0xe3: "vphsubdq",
  };
  for (const [op, nm] of Object.entries(two)) t[Number(op)] = xop(nm, "Vdq,Wdq");
  return t;
}

function buildXopA(): Slot[] {
  const t: Slot[] = new Array(256);
  // Map A takes a 32-bit immediate (AMD64 APM Vol. 3, BEXTR (TBM), LWPINS, LWPVAL).
  t[0x10] = f("bextr", "Gy,Ey,Id");
  t[0x12] = reg(
    f("lwpins", "By,Ed,Id"),
    f("lwpval", "By,Ed,Id"),
    null,
    null,
    null,
    null,
    null,
    null,
  );
  return t;
}

/** XOP map 8 (always an imm8). */
export const XOP_8: readonly Slot[] = buildXop8();
/** XOP map 9. */
export const XOP_9: readonly Slot[] = buildXop9();
/** XOP map A (imm32). */
export const XOP_A: readonly Slot[] = buildXopA();

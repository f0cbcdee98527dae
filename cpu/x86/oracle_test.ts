// The real CPU as the oracle for dhyve's x86 executor.
//
// Each family below is a list of instructions in Intel syntax (or raw bytes
// where GNU as would pick another encoding). They are assembled with GNU as
// (one run per family), every instruction gets inputs (the cross product of
// edge values over its first two operands, then seeded random states: all of
// rax..r15, RFLAGS, xmm0-15, the upper ymm halves, MXCSR, the x87 control
// word and a 256-byte buffer across a page boundary that the memory operands
// point into), and each case runs twice:
// - natively at CPL3 in cpu/x86/oracle/ (built with gcc here), faults caught
//   as signals whose frame names the vector, error code and CR2;
// - through exec.ts's emulate() on a 64-bit CPL3 CpuState (testing.ts
//   fakes) with 4-level paging that maps the same linear pages (the second
//   data page elsewhere in guest-physical memory).
// Every register, RFLAGS (OF SF ZF AF PF CF DF, undefined ones included:
// the executor follows the CPUID vendor, set to this host's), RIP, the
// vector state, the buffer, the rest of the data pages, the exception with
// its error code and CR2, and the DIRTY bits of what changed must agree.
//
// DHYVE_ORACLE_SEED=<n> reruns with other random inputs (the seed is printed
// with every failure); DHYVE_ORACLE_STATS=1 prints the cases per family.
import assert from "node:assert/strict";
import {
  ARITH_FLAGS,
  assemble,
  compareOutcomes,
  describeCase,
  FLAG,
  Harness,
  HAS_AVX512,
  hostHas,
  hostVendor,
  LAYOUT,
  makeCases,
  maskOf,
  memOffset,
  type Operands,
  Rng,
  runEmulated,
  type State,
  type Template,
} from "./_oracle.ts";
import { decode } from "./decode.ts";
import { emulate } from "./exec.ts";

const SEED = Number(Deno.env.get("DHYVE_ORACLE_SEED") ?? 0x5eed);
const VENDOR = hostVendor();

let harness: Promise<Harness> | null = null;
function native(): Promise<Harness> {
  harness ??= Harness.build();
  return harness;
}
globalThis.addEventListener("unload", () => {
  harness?.then((h) => h.disposeSync()).catch(() => {});
});

function hashName(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Runs a family on the CPU and the executor and fails with every difference. */
async function check(family: string, templates: Template[]): Promise<void> {
  const codes = await assemble(templates.map((t) => t.asm));
  const seed = (SEED ^ hashName(family)) >>> 0;
  const cases = makeCases(templates, codes, new Rng(seed));
  const want = await (await native()).run(cases);
  const failures = new Map<string, { count: number; first: string }>();
  let failed = 0;
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i];
    // The harness itself: a tested instruction must stay inside the buffer (but a REP string
    // instruction may get part of the way into the guard page's neighbourhood before it faults).
    if (want[i].vector < 0) {
      assert.equal(want[i].stray, 0, `${c.text}: the CPU wrote outside the buffer (a bad case)`);
    }
    // Every other case lets a REP instruction stop after 2 iterations and go on in the next call.
    const got = runEmulated(c, emulate, i % 2 ? 2 : undefined);
    const diffs = compareOutcomes(c, want[i], got);
    if (diffs.length === 0) continue;
    failed++;
    const f = failures.get(c.text);
    if (f) f.count++;
    else failures.set(c.text, { count: 1, first: describeCase(c, diffs) });
  }
  if (Deno.env.get("DHYVE_ORACLE_STATS")) {
    const faults = want.filter((w) => w.vector >= 0).length;
    console.log(
      `${family}: ${cases.length} cases (${faults} faulting on the CPU), ` +
        `${templates.length} instructions, ${failed} failed`,
    );
  }
  if (failed > 0) {
    const lines = [
      `${family}: ${failed} of ${cases.length} cases differ from this CPU (${VENDOR}), ` +
      `in ${failures.size} of ${templates.length} instructions; seed ${SEED} ` +
      `(DHYVE_ORACLE_SEED=${SEED} reruns them). First case of each:`,
    ];
    let shown = 0;
    for (const [text, f] of failures) {
      if (shown++ >= 40) {
        lines.push(`... and ${failures.size - 40} more instructions`);
        break;
      }
      lines.push(`--- ${text}: ${f.count} cases`, f.first);
    }
    assert.fail(lines.join("\n"));
  }
}

// ---------------------------------------------------------------------------
// Operand names

type Bits = 8 | 16 | 32 | 64;
const SIZES: Bits[] = [8, 16, 32, 64];
const PTR: Record<Bits, string> = { 8: "byte", 16: "word", 32: "dword", 64: "qword" };
/** Register pairs (destination, source) per width; the rotation varies the encodings (REX, high bytes). */
const PAIRS: Record<Bits, [string, string][]> = {
  8: [["al", "bl"], ["r9b", "sil"], ["ah", "dh"], ["dil", "r15b"], ["cl", "ch"]],
  16: [["ax", "bx"], ["r10w", "si"], ["dx", "r14w"], ["bp", "cx"]],
  32: [["eax", "ebx"], ["r11d", "esi"], ["edx", "r13d"], ["ebp", "ecx"]],
  64: [["rax", "rbx"], ["r12", "rsi"], ["rdx", "r8"], ["rbp", "rcx"]],
};
/** The accumulator per width (short forms). */
const ACC: Record<Bits, string> = { 8: "al", 16: "ax", 32: "eax", 64: "rax" };
/** A register of a width that is not the memory base (rdi) or an accumulator. */
const OTHER: Record<Bits, string> = { 8: "bl", 16: "bx", 32: "ebx", 64: "rbx" };

function pair(bits: Bits, n: number): [string, string] {
  const p = PAIRS[bits];
  return p[n % p.length];
}

function signed(v: bigint, bits: number): bigint {
  return BigInt.asIntN(bits, v);
}

function imm(v: bigint): string {
  return v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
}

// ---------------------------------------------------------------------------
// Setups for particular instructions

/** Sets a GPR's low bits to a value, keeping the rest. */
function setLow(s: State, reg: number, bits: number, v: bigint): void {
  const m = maskOf(bits);
  s.gpr[reg] = (s.gpr[reg] & ~m) | (v & m);
}

function readMem(s: State, ops: Operands, bytes: number): bigint {
  const at = memOffset(ops.mem!, s.gpr);
  let v = 0n;
  for (let b = bytes - 1; b >= 0; b--) v = (v << 8n) | BigInt(s.mem[at + b]);
  return v;
}

/** A shift/rotate count in CL: the interesting ones around each width, then any byte. */
function countSetup(bits: number) {
  const special = [0, 1, 2, bits - 1, bits, bits + 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65];
  return (s: State, rng: Rng): void => {
    const c = rng.chance(0.7) ? rng.pick(special) : rng.int(256);
    setLow(s, 1, 8, BigInt(c));
  };
}

// ---------------------------------------------------------------------------
// The families

const ALU = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"] as const;
const READS_CF = new Set(["adc", "sbb", "rcl", "rcr"]);

Deno.test("oracle: the native harness reports results and faults", async () => {
  const lines = ["add rax, rbx", "div ecx", "movdqa xmm0, [rdi]", "mov rax, [rdi]", "ud2"];
  const codes = await assemble(lines);
  const cases = makeCases(
    lines.map((asm) => ({ asm, random: 1, edges: false })),
    codes,
    new Rng(1),
  );
  const [add, div, movdqa, load, ud2] = cases;
  add.input.gpr[0] = 0x7fffffffffffffffn;
  add.input.gpr[3] = 1n;
  div.input.gpr[1] = 0n;
  movdqa.input.gpr[7] = BigInt(LAYOUT.buf + 8);
  load.input.gpr[7] = BigInt(LAYOUT.guard - 4);
  const out = await (await native()).run(cases);
  assert.equal(out[0].vector, -1);
  assert.equal(out[0].state.gpr[0], 0x8000000000000000n);
  assert.equal(out[0].state.rflags & ARITH_FLAGS, FLAG.OF | FLAG.SF | FLAG.AF | FLAG.PF);
  assert.equal(out[0].state.rip, BigInt(LAYOUT.code + 3));
  assert.equal(out[1].vector, 0, "div by zero: #DE");
  assert.deepEqual([out[2].vector, out[2].errorCode], [13, 0], "misaligned movdqa: #GP(0)");
  assert.deepEqual(
    [out[3].vector, out[3].errorCode, out[3].faultAddr],
    [14, 4, BigInt(LAYOUT.guard)],
    "a read across into the guard page: #PF(U, not present) at its start",
  );
  assert.equal(out[4].vector, 6, "ud2: #UD");
  for (const [i, o] of out.entries()) {
    if (o.vector >= 0) assert.deepEqual(o.state.gpr, cases[i].input.gpr, "a fault changes nothing");
  }
  assert.equal(add.code.length + ud2.code.length, 5);
});

Deno.test("oracle: add/or/adc/sbb/and/sub/xor/cmp", async () => {
  const t: Template[] = [];
  ALU.forEach((op, n) => {
    const carry = READS_CF.has(op);
    for (const bits of SIZES) {
      const [d, s] = pair(bits, n);
      const p = PTR[bits];
      t.push({ asm: `${op} ${d}, ${s}`, carry });
      t.push({ asm: `{load} ${op} ${d}, ${s}`, carry, random: 8, edges: false });
      t.push({ asm: `${op} ${d}, ${p} ptr [rdi]`, carry, random: 12 });
      t.push({ asm: `${op} ${p} ptr [rsi+0x10], ${s}`, carry, random: 12 });
      t.push({ asm: `${op} ${p} ptr [rbx+rcx*2-8], ${d}`, carry, random: 8, edges: false });
      // imm8 (sign-extended for 16/32/64), imm16/imm32, the accumulator short forms
      const imms = bits === 8 ? [0n, 1n, 0x7fn, -0x80n, -1n] : [
        1n,
        0x7fn,
        -0x80n,
        -1n,
        bits === 16 ? 0x7fffn : 0x7fffffffn,
        bits === 16 ? -0x8000n : -0x80000000n,
        0x1234n,
      ];
      for (const v of imms) {
        t.push({ asm: `${op} ${OTHER[bits]}, ${imm(v)}`, carry, random: 4 });
        t.push({ asm: `${op} ${ACC[bits]}, ${imm(v)}`, carry, random: 4 });
      }
      t.push({ asm: `${op} ${p} ptr [rdi], ${imm(bits === 8 ? 0x80n : 0x7fn)}`, carry, random: 8 });
      t.push({
        asm: `${op} ${p} ptr [rdi+0x20], ${imm(bits === 8 ? 0xffn : -0x12345n)}`,
        carry,
        random: 8,
      });
      if (op !== "cmp") {
        t.push({ asm: `lock ${op} ${p} ptr [rdi], ${s}`, carry, random: 8 });
        t.push({ asm: `lock ${op} ${p} ptr [rdi], ${imm(0x55n)}`, carry, random: 4, edges: false });
      }
    }
    // 32-bit addressing
    t.push({ asm: `${op} eax, dword ptr [edi+4]`, carry, random: 6, edges: false });
  });
  await check("alu", t);
});

Deno.test("oracle: inc/dec/neg/not", async () => {
  const t: Template[] = [];
  for (const op of ["inc", "dec", "neg", "not"]) {
    for (const bits of SIZES) {
      for (const [d] of PAIRS[bits].slice(0, 3)) t.push({ asm: `${op} ${d}`, random: 12 });
      t.push({ asm: `${op} ${PTR[bits]} ptr [rdi]`, random: 12 });
      t.push({ asm: `lock ${op} ${PTR[bits]} ptr [rdi+8]`, random: 6 });
    }
  }
  await check("incdec", t);
});

Deno.test("oracle: test", async () => {
  const t: Template[] = [];
  for (const bits of SIZES) {
    for (const [d, s] of PAIRS[bits].slice(0, 2)) t.push({ asm: `test ${d}, ${s}` });
    t.push({ asm: `test ${PTR[bits]} ptr [rdi], ${OTHER[bits]}` });
    const v = bits === 8 ? 0x80n : bits === 16 ? 0x8001n : 0x80000001n;
    t.push({ asm: `test ${ACC[bits]}, ${imm(bits === 64 ? -0x7fffffffn : v)}` });
    t.push({ asm: `test ${OTHER[bits]}, ${imm(bits === 64 ? -1n : v)}` });
    t.push({
      asm: `test ${PTR[bits]} ptr [rdi], ${imm(bits === 8 ? 1n : 0x10001n & maskOf(bits))}`,
    });
  }
  await check("test", t);
});

Deno.test("oracle: shl/shr/sar/sal/rol/ror/rcl/rcr", async () => {
  const t: Template[] = [];
  for (const op of ["shl", "shr", "sar", "sal", "rol", "ror", "rcl", "rcr"]) {
    const carry = READS_CF.has(op);
    for (const bits of SIZES) {
      const [d] = pair(bits, bits);
      const p = PTR[bits];
      t.push({ asm: `${op} ${d}, 1`, carry, random: 16 });
      t.push({ asm: `${op} ${p} ptr [rdi], 1`, carry, random: 8 });
      t.push({ asm: `${op} ${d}, cl`, carry, random: 64, edges: false, setup: countSetup(bits) });
      t.push({ asm: `${op} ${OTHER[bits]}, cl`, carry, random: 16, setup: countSetup(bits) });
      t.push({
        asm: `${op} ${p} ptr [rdi], cl`,
        carry,
        random: 24,
        edges: false,
        setup: countSetup(bits),
      });
      for (
        const n of new Set([0, 2, 3, 7, 8, 9, bits - 1, bits, bits + 1, 31, 32, 33, 63, 64, 255])
      ) {
        t.push({ asm: `${op} ${d}, ${n}`, carry, random: 6 });
      }
      t.push({ asm: `${op} ${p} ptr [rdi+4], 5`, carry, random: 8 });
    }
  }
  await check("shift", t);
});

Deno.test("oracle: shld/shrd", async () => {
  const t: Template[] = [];
  for (const op of ["shld", "shrd"]) {
    for (const bits of [16, 32, 64] as const) {
      const [d, s] = pair(bits, 0);
      const p = PTR[bits];
      // 16-bit counts 17-31: "the result is undefined" (SDM SHLD/SHRD); the executor does what
      // the CPU vendor's hardware does, so they are compared too.
      for (const n of new Set([0, 1, 2, 7, bits - 1, bits, 17, 20, 24, 31, 33, 63, 64])) {
        t.push({ asm: `${op} ${d}, ${s}, ${n}`, random: 8 });
      }
      const counts = (s: State, rng: Rng) => {
        const c = rng.pick([0, 1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, rng.int(256)]);
        setLow(s, 1, 8, BigInt(c));
      };
      t.push({ asm: `${op} ${d}, ${s}, cl`, random: 48, edges: false, setup: counts });
      t.push({ asm: `${op} ${p} ptr [rdi], ${s}, cl`, random: 24, edges: false, setup: counts });
      t.push({ asm: `${op} ${p} ptr [rdi], ${s}, 3`, random: 8 });
      if (bits === 16) {
        for (const n of [17, 20, 24, 31]) {
          t.push({ asm: `${op} ${d}, ${s}, ${n}`, random: 8, note: "PROBE16" });
        }
      }
    }
  }
  await check("shld", t);
});

Deno.test("oracle: bt/bts/btr/btc", async () => {
  const t: Template[] = [];
  for (const op of ["bt", "bts", "btr", "btc"]) {
    for (const bits of [16, 32, 64] as const) {
      const [d, s] = pair(bits, 1);
      const p = PTR[bits];
      t.push({ asm: `${op} ${d}, ${s}`, random: 24 });
      for (const n of [0, 5, bits - 1, bits, bits + 3, 255]) {
        t.push({ asm: `${op} ${d}, ${n}`, random: 6 });
        if (n < 64 || n === 255) t.push({ asm: `${op} ${p} ptr [rdi], ${n}`, random: 6 });
      }
      // A bit offset in a register reaches outside the operand (signed, SDM BT "bit offset
      // operand ... -2^63 to 2^63-1"): point rdi into the middle of the buffer.
      const far = (s: State, rng: Rng) => {
        s.gpr[7] = BigInt(LAYOUT.buf + 128 + (rng.int(8) & ~(bits / 8 - 1)));
        const off = BigInt(rng.int(1800) - 900);
        setLow(s, 6, bits, off);
      };
      t.push({
        asm: `${op} ${p} ptr [rdi], ${bits === 16 ? "si" : bits === 32 ? "esi" : "rsi"}`,
        random: 48,
        edges: false,
        setup: far,
      });
      if (op !== "bt") {
        t.push({
          asm: `lock ${op} ${p} ptr [rdi], ${bits === 16 ? "si" : bits === 32 ? "esi" : "rsi"}`,
          random: 16,
          edges: false,
          setup: far,
        });
        t.push({ asm: `lock ${op} ${p} ptr [rdi], ${bits - 2}`, random: 6 });
      }
    }
  }
  await check("bt", t);
});

Deno.test("oracle: bsf/bsr/tzcnt/lzcnt/popcnt", async () => {
  const t: Template[] = [];
  const ops = ["bsf", "bsr", "popcnt"];
  if (hostHas("bmi1")) ops.push("tzcnt");
  if (hostHas("abm")) ops.push("lzcnt");
  for (const op of ops) {
    for (const bits of [16, 32, 64] as const) {
      const [d, s] = pair(bits, 2);
      t.push({ asm: `${op} ${d}, ${s}`, random: 32 });
      t.push({ asm: `${op} ${d}, ${PTR[bits]} ptr [rdi]`, random: 16 });
      // zero input
      t.push({
        asm: `${op} ${OTHER[bits]}, ${d}`,
        random: 8,
        edges: false,
        setup: (st) => setLow(st, 0, bits, 0n),
      });
    }
  }
  await check("bitscan", t);
});

Deno.test("oracle: mul/imul/div/idiv", async () => {
  const t: Template[] = [];
  for (const bits of SIZES) {
    const p = PTR[bits];
    for (const op of ["mul", "imul"]) {
      t.push({ asm: `${op} ${OTHER[bits]}`, random: 24 });
      t.push({ asm: `${op} ${ACC[bits]}`, random: 8 });
      t.push({ asm: `${op} ${p} ptr [rdi]`, random: 16 });
    }
    if (bits !== 8) {
      const [d, s] = pair(bits as Bits, 1);
      t.push({ asm: `imul ${d}, ${s}`, random: 24 });
      t.push({ asm: `imul ${d}, ${p} ptr [rdi]`, random: 12 });
      for (const v of [0n, 1n, -1n, 0x7fn, -0x80n, 3n]) {
        t.push({ asm: `imul ${d}, ${s}, ${imm(v)}`, random: 4 });
      }
      for (const v of [0x7fffn, -0x8000n, 0x12345n, -0x80000000n, 0x7fffffffn]) {
        if (bits === 16 && (v > 0x7fffn || v < -0x8000n)) continue;
        t.push({ asm: `imul ${d}, ${p} ptr [rdi], ${imm(v)}`, random: 4 });
        t.push({ asm: `imul ${d}, ${s}, ${imm(v)}`, random: 4 });
      }
    }
    // Division: mostly dividends whose quotient fits, some that overflow (#DE), some by zero.
    const dividend =
      (signedDiv: boolean, src: "reg" | "mem") => (s: State, rng: Rng, ops: Operands) => {
        const dx = bits === 8 ? null : 2;
        let divisor = src === "reg" ? s.gpr[3] & maskOf(bits) : readMem(s, ops, bits / 8);
        const r = rng.int(10);
        if (r === 0) divisor = 0n;
        if (r <= 1) {
          if (src === "reg") setLow(s, 3, bits, divisor);
          return; // as is: overflow or #DE likely
        }
        if (divisor === 0n) divisor = 3n;
        if (src === "reg") setLow(s, 3, bits, divisor);
        else {
          const at = memOffset(ops.mem!, s.gpr);
          for (let b = 0; b < bits / 8; b++) {
            s.mem[at + b] = Number((divisor >> BigInt(8 * b)) & 0xffn);
          }
        }
        // The dividend: a quotient that fits times the divisor plus a remainder below it.
        const big = 2 * bits;
        let dividend: bigint;
        if (signedDiv) {
          const dv = signed(divisor, bits);
          const q = signed(rng.u64(), bits) >> BigInt(rng.int(bits));
          const mag = dv < 0n ? -dv : dv;
          let rem = BigInt.asUintN(64, rng.u64()) % mag;
          if (rng.chance(0.5)) rem = -rem;
          let v = q * dv + rem;
          // keep the remainder's sign the dividend's (idiv truncates toward zero)
          if ((v < 0n && rem > 0n) || (v > 0n && rem < 0n)) v = q * dv;
          if (rng.chance(0.1)) v = signed(BigInt(rng.int(1000)) - 500n, big);
          dividend = BigInt.asUintN(big, v);
        } else {
          const q = (rng.u64() & maskOf(bits)) >> BigInt(rng.int(bits));
          dividend = q * divisor + (rng.u64() % divisor);
        }
        if (dx === null) setLow(s, 0, 16, dividend);
        else {
          setLow(s, 0, bits, dividend & maskOf(bits));
          setLow(s, dx, bits, dividend >> BigInt(bits));
        }
      };
    for (const op of ["div", "idiv"]) {
      t.push({
        asm: `${op} ${OTHER[bits]}`,
        random: 64,
        edges: false,
        setup: dividend(op === "idiv", "reg"),
      });
      t.push({
        asm: `${op} ${p} ptr [rdi]`,
        random: 32,
        edges: false,
        setup: dividend(op === "idiv", "mem"),
      });
      t.push({ asm: `${op} ${OTHER[bits]}`, random: 16 });
    }
  }
  await check("muldiv", t);
});

Deno.test("oracle: movzx/movsx/movsxd, mov, lea, bswap, movbe, cbw..cqo, lahf/sahf", async () => {
  const t: Template[] = [];
  for (const op of ["movzx", "movsx"]) {
    for (
      const [d, s] of [
        ["ax", "bl"],
        ["eax", "bl"],
        ["rax", "bl"],
        ["eax", "bx"],
        ["rax", "bx"],
        ["edx", "ah"],
        ["r9d", "sil"],
        ["r10", "dil"],
        ["cx", "r8b"],
      ]
    ) {
      t.push({ asm: `${op} ${d}, ${s}`, random: 8 });
    }
    for (
      const [d, p] of [["ax", "byte"], ["eax", "byte"], ["rax", "byte"], ["eax", "word"], [
        "rax",
        "word",
      ]]
    ) {
      t.push({ asm: `${op} ${d}, ${p} ptr [rdi]`, random: 8 });
    }
  }
  t.push({ asm: "movsxd rax, ebx", random: 8 }, { asm: "movsxd r8, dword ptr [rdi]", random: 8 });
  t.push({ asm: "movsxd eax, ebx", random: 8 });
  t.push({ asm: ".byte 0x66, 0x63, 0xc3", random: 16, edges: false }); // movsxd ax, bx
  for (const bits of SIZES) {
    const [d, s] = pair(bits, 1);
    t.push({ asm: `mov ${d}, ${s}`, random: 8, edges: false });
    t.push({ asm: `mov ${d}, ${PTR[bits]} ptr [rdi]`, random: 8, edges: false });
    t.push({ asm: `mov ${PTR[bits]} ptr [rdi], ${s}`, random: 8, edges: false });
    t.push({
      asm: `mov ${PTR[bits]} ptr [rdi], ${imm(bits === 8 ? 0x80n : -2n)}`,
      random: 4,
      edges: false,
    });
  }
  t.push({ asm: "mov rax, 0x123456789abcdef0", random: 2, edges: false });
  t.push({ asm: "mov r9d, 0x80000000", random: 2, edges: false });
  // lea: addresses are arithmetic here; no memory is touched, so any register values do.
  const anyRegs = (s: State, rng: Rng) => {
    for (const r of [0, 1, 2, 3, 5, 6, 7, 8, 9, 13]) s.gpr[r] = rng.u64() >> BigInt(rng.int(64));
  };
  for (
    const l of [
      "lea rax, [rbx+rcx*4+0x10]",
      "lea eax, [rbx+rcx*8-0x80]",
      "lea ax, [rbx+rsi+0x7fff]",
      "lea rax, [ebx+ecx*2+1]",
      "lea r9, [r13+0x12345678]",
      "lea rdx, [rbp+r9*1]",
      "lea esi, [rip+0x100]",
      "lea rdi, [rcx*4]",
      "lea r8d, [ebp-1]",
    ]
  ) t.push({ asm: l, random: 12, edges: false, setup: anyRegs });
  for (const [d] of [["eax"], ["r9d"], ["rax"], ["r14"]]) t.push({ asm: `bswap ${d}`, random: 12 });
  // BSWAP r16: "the result is undefined" (SDM BSWAP); Intel and AMD hardware write 0.
  t.push({ asm: ".byte 0x66, 0x0f, 0xc8", random: 8, edges: false }); // bswap ax
  t.push({ asm: ".byte 0x66, 0x41, 0x0f, 0xcb", random: 8, edges: false }); // bswap r11w
  if (hostHas("movbe")) {
    for (const bits of [16, 32, 64] as const) {
      const [d] = pair(bits, 1);
      t.push({ asm: `movbe ${d}, ${PTR[bits]} ptr [rdi]`, random: 12 });
      t.push({ asm: `movbe ${PTR[bits]} ptr [rdi], ${d}`, random: 12 });
    }
  }
  for (const l of ["cbw", "cwde", "cdqe", "cwd", "cdq", "cqo", "lahf", "sahf"]) {
    t.push({ asm: l, random: 24, edges: false });
  }
  // lahf/sahf with every flag combination (AH arbitrary)
  t.push({
    asm: "sahf",
    random: 256,
    edges: false,
    setup: (s, rng) => setLow(s, 0, 16, BigInt(rng.int(65536))),
  });
  await check("moves", t);
});

const CONDS = [
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
];

/** Every combination of the flags the conditions read (CF PF ZF SF OF), DF and AF random. */
function allFlags(): (s: State, rng: Rng) => void {
  let n = 0;
  return (s, rng) => {
    const k = n++ % 32;
    let f = 0x202n;
    if (k & 1) f |= FLAG.CF;
    if (k & 2) f |= FLAG.PF;
    if (k & 4) f |= FLAG.ZF;
    if (k & 8) f |= FLAG.SF;
    if (k & 16) f |= FLAG.OF;
    if (rng.chance(0.5)) f |= FLAG.AF;
    if (rng.chance(0.2)) f |= FLAG.DF;
    s.rflags = f;
  };
}

Deno.test("oracle: setcc/cmovcc (all 16 conditions)", async () => {
  const t: Template[] = [];
  for (const cc of CONDS) {
    t.push({ asm: `set${cc} al`, random: 32, edges: false, setup: allFlags() });
    t.push({ asm: `set${cc} r10b`, random: 32, edges: false, setup: allFlags() });
    t.push({ asm: `set${cc} byte ptr [rdi]`, random: 32, edges: false, setup: allFlags() });
    for (const bits of [16, 32, 64] as const) {
      const [d, s] = pair(bits, 2);
      t.push({ asm: `cmov${cc} ${d}, ${s}`, random: 32, edges: false, setup: allFlags() });
    }
    t.push({ asm: `cmov${cc} eax, dword ptr [rdi]`, random: 32, edges: false, setup: allFlags() });
    t.push({ asm: `cmov${cc} r9, qword ptr [rdi]`, random: 32, edges: false, setup: allFlags() });
  }
  await check("cond", t);
});

Deno.test("oracle: xchg/xadd/cmpxchg/cmpxchg8b/cmpxchg16b", async () => {
  const t: Template[] = [];
  for (const bits of SIZES) {
    const [d, s] = pair(bits, 1);
    const p = PTR[bits];
    t.push({ asm: `xchg ${d}, ${s}`, random: 8, edges: false });
    t.push({ asm: `xchg ${p} ptr [rdi], ${s}`, random: 8, edges: false });
    if (bits !== 8) t.push({ asm: `xchg ${ACC[bits]}, ${OTHER[bits]}`, random: 8, edges: false });
    t.push({ asm: `xadd ${d}, ${s}`, random: 16 });
    t.push({ asm: `xadd ${p} ptr [rdi], ${s}`, random: 16 });
    t.push({ asm: `lock xadd ${p} ptr [rdi], ${s}`, random: 16 });
    // cmpxchg: half the cases with the accumulator equal to the destination
    const [cd, cs] = bits === 8 ? ["bl", "cl"] : [OTHER[bits], pair(bits, 3)[1]];
    const eqReg = (st: State, rng: Rng) => {
      if (rng.chance(0.5)) setLow(st, 0, bits, st.gpr[3] & maskOf(bits));
    };
    const eqMem = (st: State, rng: Rng, ops: Operands) => {
      if (rng.chance(0.5)) setLow(st, 0, bits, readMem(st, ops, bits / 8));
    };
    t.push({ asm: `cmpxchg ${cd}, ${cs}`, random: 32, setup: eqReg });
    t.push({ asm: `cmpxchg ${p} ptr [rdi], ${cs}`, random: 24, setup: eqMem });
    t.push({ asm: `lock cmpxchg ${p} ptr [rdi], ${cs}`, random: 24, setup: eqMem });
    t.push({ asm: `cmpxchg ${ACC[bits]}, ${cs}`, random: 8 });
  }
  // cmpxchg8b/16b: rdx:rax equal to memory half the time; 16b needs 16-byte alignment (#GP(0))
  for (const [insn, size] of [["cmpxchg8b", 8], ["cmpxchg16b", 16]] as const) {
    const eq = (st: State, rng: Rng, ops: Operands) => {
      if (size === 16 && rng.chance(0.85)) {
        const at = memOffset(ops.mem!, st.gpr);
        st.gpr[7] -= BigInt(at % 16);
      }
      if (rng.chance(0.5)) {
        const half = size * 4;
        const v = readMem(st, ops, size);
        setLow(st, 0, half, v & maskOf(half));
        setLow(st, 2, half, v >> BigInt(half));
      }
    };
    const p = size === 8 ? "qword" : "xmmword";
    t.push({ asm: `${insn} ${p} ptr [rdi]`, random: 48, edges: false, setup: eq });
    t.push({ asm: `lock ${insn} ${p} ptr [rdi]`, random: 48, edges: false, setup: eq });
  }
  await check("atomic", t);
});

Deno.test("oracle: crc32", { ignore: !hostHas("sse4_2") }, async () => {
  const t: Template[] = [];
  for (
    const [d, s] of [
      ["eax", "bl"],
      ["eax", "bx"],
      ["eax", "ebx"],
      ["rax", "rbx"],
      ["r9d", "r10b"],
      ["rax", "bl"],
    ]
  ) {
    t.push({ asm: `crc32 ${d}, ${s}`, random: 24 });
  }
  for (const [d, p] of [["eax", "byte"], ["eax", "word"], ["eax", "dword"], ["rax", "qword"]]) {
    t.push({ asm: `crc32 ${d}, ${p} ptr [rdi]`, random: 24 });
  }
  await check("crc32", t);
});

// ---------------------------------------------------------------------------
// String instructions

const STRING_OPS = ["movs", "stos", "lods", "cmps", "scas"] as const;

/**
 * Points rsi/rdi so that `count` elements in the DF direction stay in the
 * buffer, and for cmps/scas makes some elements equal so that repe/repne
 * stop in the middle.
 */
function stringSetup(op: string, size: number, rep: string) {
  return (s: State, rng: Rng): void => {
    const df = rng.chance(0.5);
    s.rflags = df ? s.rflags | FLAG.DF : s.rflags & ~FLAG.DF;
    const count = rep ? rng.pick([0, 1, 2, 3, rng.int(12), rng.int(24)]) : 1;
    const span = Math.max(1, count) * size;
    const place = () => {
      const room = LAYOUT.bufLen - span;
      let off = rng.int(room + 1);
      if (rng.chance(0.7)) off -= off % size;
      // with DF=1 the first element is the highest
      return LAYOUT.buf + (df ? off + span - size : off);
    };
    s.gpr[6] = BigInt(place());
    s.gpr[7] = BigInt(place());
    if (rep) s.gpr[1] = BigInt(count) | (rng.chance(0.2) ? rng.u64() & ~maskOf(32) & 0n : 0n);
    if (op === "cmps" || op === "scas") {
      // Copy source elements to the destination, then spoil one: repe runs until it.
      const si = Number(s.gpr[6]) - LAYOUT.buf, di = Number(s.gpr[7]) - LAYOUT.buf;
      const dir = df ? -1 : 1;
      const same = rng.int(Math.max(1, count) + 1);
      for (let e = 0; e < same; e++) {
        for (let b = 0; b < size; b++) {
          const d = di + dir * e * size + b;
          if (op === "cmps") s.mem[d] = s.mem[si + dir * e * size + b];
          else s.mem[d] = Number((s.gpr[0] >> BigInt(8 * b)) & 0xffn);
        }
      }
    }
  };
}

Deno.test("oracle: movs/stos/lods/cmps/scas with rep/repe/repne, DF 0 and 1", async () => {
  const t: Template[] = [];
  const suffix: Record<number, string> = { 1: "b", 2: "w", 4: "d", 8: "q" };
  for (const op of STRING_OPS) {
    const reps = op === "cmps" || op === "scas" ? ["", "repe", "repne"] : ["", "rep"];
    for (const size of [1, 2, 4, 8]) {
      for (const rep of reps) {
        t.push({
          asm: `${rep} ${op}${suffix[size]}`.trim(),
          random: rep ? 40 : 16,
          edges: false,
          setup: stringSetup(op, size, rep),
        });
      }
    }
  }
  // 32-bit addressing (67): esi/edi/ecx
  t.push({
    asm: "rep movsb byte ptr es:[edi], byte ptr [esi]",
    random: 16,
    edges: false,
    setup: stringSetup("movs", 1, "rep"),
  });
  t.push({
    asm: "rep stosd dword ptr es:[edi], eax",
    random: 16,
    edges: false,
    setup: stringSetup("stos", 4, "rep"),
  });
  // 32-bit addressing with junk in bits 63:32 of RSI, RDI and RCX: ESI, EDI and ECX are used
  const junk = (op: string, size: number) => {
    const inner = stringSetup(op, size, "rep");
    return (s: State, rng: Rng) => {
      inner(s, rng);
      for (const r of [1, 6, 7]) s.gpr[r] |= BigInt(rng.u32() || 1) << 32n;
    };
  };
  t.push({
    asm: ".byte 0x67, 0xf3, 0xa4",
    random: 24,
    edges: false,
    setup: junk("movs", 1),
    note: "rep movsb, a32",
  });
  t.push({
    asm: ".byte 0x67, 0xf3, 0x48, 0xab",
    random: 24,
    edges: false,
    setup: junk("stos", 8),
    note: "rep stosq, a32",
  });
  t.push({
    asm: ".byte 0x67, 0xf3, 0xa7",
    random: 24,
    edges: false,
    setup: junk("cmps", 4),
    note: "repe cmpsd, a32",
  });
  t.push({
    asm: ".byte 0x67, 0xf2, 0x66, 0xaf",
    random: 24,
    edges: false,
    setup: junk("scas", 2),
    note: "repne scasw, a32",
  });
  t.push({
    asm: ".byte 0x67, 0xac",
    random: 12,
    edges: false,
    setup: junk("lods", 1),
    note: "lodsb, a32",
  });
  // segment overrides on the source (GS base is 0 here, as in the emulated CPU)
  t.push({
    asm: ".byte 0x65, 0xf3, 0xa4",
    random: 12,
    edges: false,
    setup: stringSetup("movs", 1, "rep"),
    note: "rep movsb gs:",
  });
  t.push({
    asm: ".byte 0x65, 0xad",
    random: 12,
    edges: false,
    setup: stringSetup("lods", 4, ""),
    note: "lodsd gs:",
  });
  await check("string", t);
});

// ---------------------------------------------------------------------------
// SSE

Deno.test("oracle: SSE moves, logic and integer arithmetic", async () => {
  const t: Template[] = [];
  const x = (n: number) => `xmm${n}`;
  // movd/movq between GPRs, memory and XMM
  t.push(
    { asm: "movd xmm1, eax", random: 8, edges: false },
    { asm: "movd xmm9, r10d", random: 8, edges: false },
    { asm: "movd eax, xmm2", random: 8, edges: false },
    { asm: "movd r11d, xmm12", random: 8, edges: false },
    { asm: "movq xmm3, rax", random: 8, edges: false },
    { asm: "movq r9, xmm14", random: 8, edges: false },
    { asm: "movd xmm4, dword ptr [rdi]", random: 8, edges: false },
    { asm: "movd dword ptr [rdi], xmm5", random: 8, edges: false },
    { asm: "movq xmm6, qword ptr [rdi]", random: 8, edges: false },
    { asm: "movq qword ptr [rdi], xmm7", random: 8, edges: false },
    { asm: "movq xmm8, xmm13", random: 8, edges: false },
  );
  for (const op of ["movdqa", "movdqu", "movaps", "movups", "movapd", "movupd"]) {
    t.push({ asm: `${op} ${x(1)}, ${x(2)}`, random: 6, edges: false });
    t.push({ asm: `${op} ${x(10)}, ${x(3)}`, random: 6, edges: false });
    // the aligned forms raise #GP(0) on a misaligned operand (align: "any" gives both)
    t.push({ asm: `${op} ${x(4)}, xmmword ptr [rdi]`, random: 16, edges: false, align: "any" });
    t.push({ asm: `${op} xmmword ptr [rdi], ${x(11)}`, random: 16, edges: false, align: "any" });
  }
  const binary = [
    "pxor",
    "por",
    "pand",
    "pandn",
    "paddb",
    "paddw",
    "paddd",
    "paddq",
    "psubb",
    "psubw",
    "psubd",
    "psubq",
    "pcmpeqb",
    "pcmpeqw",
    "pcmpeqd",
    "punpcklbw",
    "punpcklwd",
    "punpckldq",
    "punpcklqdq",
    "punpckhbw",
    "punpckhwd",
    "punpckhdq",
    "punpckhqdq",
    "xorps",
    "andps",
    "orps",
  ];
  for (const op of binary) {
    t.push({ asm: `${op} ${x(1)}, ${x(2)}`, random: 12, edges: false });
    t.push({ asm: `${op} ${x(12)}, ${x(12)}`, random: 2, edges: false });
    t.push({ asm: `${op} ${x(9)}, xmmword ptr [rdi]`, random: 12, edges: false, align: "any" });
  }
  t.push({ asm: "pmovmskb eax, xmm3", random: 16, edges: false });
  t.push({ asm: "pmovmskb r10d, xmm15", random: 16, edges: false });
  for (const n of [0x00, 0x1b, 0x4e, 0xb1, 0xe4, 0xff]) {
    t.push({ asm: `pshufd xmm1, xmm2, ${n}`, random: 4, edges: false });
    t.push({ asm: `pshufd xmm8, xmmword ptr [rdi], ${n}`, random: 4, edges: false, align: "any" });
  }
  await check("sse", t);
});

Deno.test("oracle: SSE2-SSE4.1 shuffles, shifts, packs, saturation, extracts, scalar moves", async () => {
  const t: Template[] = [];
  const binary = [
    "pcmpgtb",
    "pcmpgtw",
    "pcmpgtd",
    "paddusb",
    "paddusw",
    "paddsb",
    "paddsw",
    "psubusb",
    "psubusw",
    "psubsb",
    "psubsw",
    "pminub",
    "pmaxub",
    "pminsw",
    "pmaxsw",
    "pmullw",
    "pmulhw",
    "pmulhuw",
    "pmuludq",
    "pmaddwd",
    "packsswb",
    "packuswb",
    "packssdw",
    "unpcklps",
    "unpckhps",
    "unpcklpd",
    "unpckhpd",
    "andnps",
    "andnpd",
    "xorpd",
    "orpd",
    "andpd",
  ];
  if (hostHas("ssse3")) binary.push("pshufb");
  for (const op of binary) {
    t.push({ asm: `${op} xmm1, xmm2`, random: 16, edges: false });
    t.push({ asm: `${op} xmm13, xmm6`, random: 4, edges: false });
    t.push({ asm: `${op} xmm9, xmmword ptr [rdi]`, random: 8, edges: false, align: "aligned" });
  }
  // Lane shifts: by an xmm count (its low 64 bits, any size), by a memory count, by imm8.
  const counts = (s: State, rng: Rng) => {
    const v = rng.pick([
      0n,
      1n,
      7n,
      8n,
      15n,
      16n,
      17n,
      31n,
      32n,
      33n,
      63n,
      64n,
      65n,
      255n,
      1n << 32n,
      1n << 63n,
    ]);
    const c = rng.chance(0.8) ? v : rng.u64();
    for (let b = 0; b < 8; b++) s.xmm[2 * 16 + b] = Number((c >> BigInt(8 * b)) & 0xffn);
  };
  for (const op of ["psllw", "pslld", "psllq", "psrlw", "psrld", "psrlq", "psraw", "psrad"]) {
    t.push({ asm: `${op} xmm1, xmm2`, random: 24, edges: false, setup: counts });
    t.push({ asm: `${op} xmm3, xmmword ptr [rdi]`, random: 4, edges: false, align: "aligned" });
    for (const n of [0, 1, 7, 15, 16, 31, 32, 63, 64, 255]) {
      t.push({ asm: `${op} xmm4, ${n}`, random: 2, edges: false });
    }
  }
  for (const op of ["pslldq", "psrldq"]) {
    for (const n of [0, 1, 7, 8, 15, 16, 17, 255]) {
      t.push({ asm: `${op} xmm5, ${n}`, random: 2, edges: false });
    }
  }
  for (const n of [0x00, 0x1b, 0x4e, 0xb1, 0xe4, 0xff]) {
    for (const op of ["pshuflw", "pshufhw"]) {
      t.push({ asm: `${op} xmm1, xmm2, ${n}`, random: 3, edges: false });
      t.push({
        asm: `${op} xmm10, xmmword ptr [rdi], ${n}`,
        random: 2,
        edges: false,
        align: "any",
      });
    }
    t.push({ asm: `shufps xmm1, xmm2, ${n}`, random: 3, edges: false });
    t.push({
      asm: `shufps xmm3, xmmword ptr [rdi], ${n}`,
      random: 2,
      edges: false,
      align: "aligned",
    });
    t.push({ asm: `shufpd xmm1, xmm2, ${n & 3}`, random: 3, edges: false });
  }
  if (hostHas("ssse3")) {
    for (const n of [0, 1, 4, 8, 15, 16, 17, 24, 31, 32, 255]) {
      t.push({ asm: `palignr xmm1, xmm2, ${n}`, random: 3, edges: false });
    }
    t.push({
      asm: "palignr xmm7, xmmword ptr [rdi], 5",
      random: 4,
      edges: false,
      align: "aligned",
    });
  }
  t.push({ asm: "movmskps eax, xmm3", random: 12, edges: false });
  t.push({ asm: "movmskpd r9d, xmm11", random: 12, edges: false });
  for (const n of [0, 3, 7, 8, 255]) {
    t.push({ asm: `pextrw eax, xmm2, ${n}`, random: 3, edges: false });
  }
  for (const n of [0, 5, 7, 255]) {
    t.push({ asm: `pinsrw xmm1, ecx, ${n}`, random: 3, edges: false });
  }
  t.push({ asm: "pinsrw xmm1, word ptr [rdi], 2", random: 4, edges: false });
  if (hostHas("sse4_1")) {
    for (const n of [0, 6, 15, 16, 255]) {
      t.push({ asm: `pextrb eax, xmm2, ${n}`, random: 3, edges: false });
      t.push({ asm: `pinsrb xmm3, ecx, ${n}`, random: 3, edges: false });
    }
    t.push({ asm: "pextrb byte ptr [rdi], xmm2, 9", random: 3, edges: false });
    t.push({ asm: "pextrw word ptr [rdi], xmm2, 5", random: 3, edges: false });
    t.push({ asm: "pinsrb xmm3, byte ptr [rdi], 11", random: 3, edges: false });
    for (const n of [0, 1, 3, 4]) {
      t.push({ asm: `pextrd r10d, xmm5, ${n}`, random: 3, edges: false });
      t.push({ asm: `pinsrd xmm6, edx, ${n}`, random: 3, edges: false });
    }
    t.push({ asm: "pextrd dword ptr [rdi], xmm5, 2", random: 3, edges: false });
    t.push({ asm: "pinsrd xmm6, dword ptr [rdi], 1", random: 3, edges: false });
    for (const n of [0, 1, 2]) {
      t.push({ asm: `pextrq rax, xmm7, ${n}`, random: 3, edges: false });
      t.push({ asm: `pinsrq xmm8, rbx, ${n}`, random: 3, edges: false });
    }
    t.push({ asm: "pextrq qword ptr [rdi], xmm7, 1", random: 3, edges: false });
    t.push({ asm: "pinsrq xmm8, qword ptr [rdi], 0", random: 3, edges: false });
    // PTEST: ZF = (a AND b) == 0, CF = (NOT a AND b) == 0, the others cleared
    t.push({ asm: "ptest xmm1, xmm2", random: 32, edges: false });
    t.push({ asm: "ptest xmm3, xmm3", random: 8, edges: false });
    t.push({ asm: "ptest xmm4, xmmword ptr [rdi]", random: 8, edges: false, align: "aligned" });
    t.push({ asm: "movntdqa xmm5, xmmword ptr [rdi]", random: 8, edges: false, align: "any" });
  }
  // Scalar and half moves: register forms merge, loads zero (movss/movsd) or keep the other half
  for (const op of ["movss", "movsd"]) {
    t.push({ asm: `${op} xmm1, xmm2`, random: 4, edges: false });
    t.push({
      asm: `${op} xmm3, ${op === "movss" ? "dword" : "qword"} ptr [rdi]`,
      random: 4,
      edges: false,
    });
    t.push({
      asm: `${op} ${op === "movss" ? "dword" : "qword"} ptr [rdi], xmm4`,
      random: 4,
      edges: false,
    });
  }
  for (const op of ["movlps", "movhps", "movlpd", "movhpd"]) {
    t.push({ asm: `${op} xmm5, qword ptr [rdi]`, random: 4, edges: false });
    t.push({ asm: `${op} qword ptr [rdi], xmm6`, random: 4, edges: false });
  }
  t.push({ asm: "movhlps xmm1, xmm2", random: 4, edges: false }, {
    asm: "movlhps xmm3, xmm4",
    random: 4,
    edges: false,
  });
  t.push({ asm: "movnti dword ptr [rdi], eax", random: 4, edges: false });
  t.push({ asm: "movnti qword ptr [rdi], r9", random: 4, edges: false });
  t.push({ asm: "movntdq xmmword ptr [rdi], xmm3", random: 8, edges: false, align: "any" });
  t.push({ asm: "movntps xmmword ptr [rdi], xmm3", random: 4, edges: false, align: "any" });
  t.push({ asm: "lddqu xmm2, xmmword ptr [rdi]", random: 4, edges: false, align: "any" });
  await check("sse2", t);
});

Deno.test("oracle: AVX (VEX.128 and VEX.256) moves, logic, arithmetic, broadcasts", {
  ignore: !hostHas("avx2"),
}, async () => {
  const t: Template[] = [];
  const r = { random: 8, edges: false } as const;
  for (const op of ["vmovdqu", "vmovdqa", "vmovups", "vmovaps"]) {
    t.push({ asm: `${op} ymm1, ymm2`, ...r }, { asm: `${op} xmm3, xmm4`, ...r });
    t.push({ asm: `${op} ymm5, ymmword ptr [rdi]`, random: 12, edges: false, align: "any" });
    t.push({ asm: `${op} ymmword ptr [rdi], ymm6`, random: 12, edges: false, align: "any" });
    t.push({ asm: `${op} xmm7, xmmword ptr [rdi]`, random: 8, edges: false, align: "any" });
    t.push({ asm: `${op} xmmword ptr [rdi], xmm8`, random: 8, edges: false, align: "any" });
  }
  for (
    const op of [
      "vpxor",
      "vpor",
      "vpand",
      "vpandn",
      "vxorps",
      "vpaddb",
      "vpaddw",
      "vpaddd",
      "vpaddq",
      "vpsubb",
      "vpsubq",
      "vpcmpeqb",
      "vpcmpeqd",
      "vpcmpgtw",
      "vpminub",
      "vpmaxub",
      "vpunpcklbw",
      "vpunpckhqdq",
      "vpshufb",
      "vpaddusb",
      "vpsubsw",
    ]
  ) {
    t.push({ asm: `${op} xmm1, xmm2, xmm3`, ...r });
    t.push({ asm: `${op} ymm4, ymm5, ymm6`, ...r });
    t.push({ asm: `${op} ymm9, ymm10, ymmword ptr [rdi]`, random: 4, edges: false, align: "any" });
    t.push({ asm: `${op} xmm11, xmm11, xmmword ptr [rdi]`, random: 4, edges: false, align: "any" });
  }
  for (const n of [0, 0x1b, 0xe4]) {
    t.push({ asm: `vpshufd xmm1, xmm2, ${n}`, ...r }, { asm: `vpshufd ymm3, ymm4, ${n}`, ...r });
  }
  for (const n of [0, 3, 16, 17]) {
    t.push({ asm: `vpslldq ymm1, ymm2, ${n}`, ...r }, { asm: `vpsrldq xmm3, xmm4, ${n}`, ...r });
    t.push({ asm: `vpsllw ymm1, ymm2, ${n}`, ...r }, { asm: `vpsrad xmm3, xmm4, ${n}`, ...r });
    t.push({ asm: `vpalignr ymm5, ymm6, ymm7, ${n}`, ...r });
  }
  t.push({ asm: "vpsllq ymm1, ymm2, xmm3", ...r }, { asm: "vpsrlw xmm1, xmm2, xmm3", ...r });
  for (
    const [op, p] of [
      ["vpbroadcastb", "byte"],
      ["vpbroadcastw", "word"],
      ["vpbroadcastd", "dword"],
      ["vpbroadcastq", "qword"],
    ]
  ) {
    t.push({ asm: `${op} xmm1, xmm2`, ...r }, { asm: `${op} ymm3, xmm4`, ...r });
    t.push({ asm: `${op} ymm5, ${p} ptr [rdi]`, ...r });
  }
  t.push({ asm: "vbroadcastss ymm1, dword ptr [rdi]", ...r }, {
    asm: "vbroadcastss xmm2, xmm3",
    ...r,
  });
  t.push({ asm: "vbroadcastsd ymm1, qword ptr [rdi]", ...r }, {
    asm: "vbroadcasti128 ymm4, xmmword ptr [rdi]",
    ...r,
  });
  t.push({ asm: "vbroadcastf128 ymm5, xmmword ptr [rdi]", ...r });
  t.push({ asm: "vzeroupper", ...r }, { asm: "vzeroall", ...r });
  t.push({ asm: "vmovd xmm1, eax", ...r }, { asm: "vmovq xmm2, r9", ...r }, {
    asm: "vmovd ecx, xmm3",
    ...r,
  });
  t.push(
    { asm: "vmovq xmm4, qword ptr [rdi]", ...r },
    { asm: "vmovq qword ptr [rdi], xmm5", ...r },
    { asm: "vmovq xmm6, xmm7", ...r },
  );
  t.push({ asm: "vmovss xmm1, xmm2, xmm3", ...r }, { asm: "vmovsd xmm4, qword ptr [rdi]", ...r });
  t.push({ asm: "vmovss dword ptr [rdi], xmm5", ...r }, { asm: "vmovsd xmm6, xmm7, xmm8", ...r });
  t.push({ asm: "vpmovmskb eax, ymm3", random: 12, edges: false }, {
    asm: "vpmovmskb ecx, xmm4",
    random: 12,
    edges: false,
  });
  t.push({ asm: "vptest ymm1, ymm2", random: 16, edges: false }, {
    asm: "vptest xmm3, xmm3",
    random: 8,
    edges: false,
  });
  await check("avx", t);
});

Deno.test("oracle: MXCSR and x87 control (ldmxcsr/stmxcsr/fnstcw/fldcw/fnstsw/fninit/fnclex/fwait/emms)", async () => {
  const mxcsr = (s: State, rng: Rng, ops: Operands) => {
    // Valid values (any of the 16 defined bits, DAZ included) and now and then a reserved bit: #GP(0).
    let v = BigInt(rng.int(0x10000));
    if (rng.chance(0.15)) v |= 1n << BigInt(16 + rng.int(16));
    if (rng.chance(0.3)) v = 0x1f80n;
    const at = memOffset(ops.mem!, s.gpr);
    for (let b = 0; b < 4; b++) s.mem[at + b] = Number((v >> BigInt(8 * b)) & 0xffn);
    s.mxcsr = rng.chance(0.5) ? 0x1f80 : rng.int(0x10000);
  };
  const fcw = (s: State, rng: Rng) => {
    s.fcw = rng.chance(0.3) ? 0x37f : (rng.int(0x10000) & 0x1f3f) | 0x40;
    s.mxcsr = rng.chance(0.5) ? 0x1f80 : rng.int(0x10000);
  };
  const r = { random: 24, edges: false } as const;
  const t: Template[] = [
    { asm: "ldmxcsr dword ptr [rdi]", random: 48, edges: false, setup: mxcsr },
    { asm: "stmxcsr dword ptr [rdi]", ...r, setup: fcw },
    { asm: "fnstcw word ptr [rdi]", ...r, setup: fcw },
    { asm: "fnstsw ax", ...r, setup: fcw },
    { asm: "fnstsw word ptr [rdi]", ...r },
    { asm: "fninit", ...r, setup: fcw },
    { asm: "fnclex", ...r, setup: fcw },
    { asm: "fwait", ...r, setup: fcw },
    { asm: "emms", ...r },
  ];
  await check("fpctl", t);
});

Deno.test("oracle: fldcw", async () => {
  // Any 16-bit value in memory; the CPU keeps only the defined FCW bits.
  await check("fldcw", [{ asm: "fldcw word ptr [rdi]", random: 32, edges: false }]);
});

// ---------------------------------------------------------------------------
// Branches: a taken branch goes LAYOUT.taken bytes past the next instruction, where the
// harness has a way back too; every target here is one of the two.

/** A RET's stack: one of the ways back on top. */
function ret(s: State, rng: Rng, _o: Operands, code: Uint8Array): void {
  stackSetup(s, rng);
  const at = Number(s.gpr[4]) - LAYOUT.buf;
  const v = target(code, rng.chance(0.5));
  for (let b = 0; b < 8; b++) s.mem[at + b] = Number((v >> BigInt(8 * b)) & 0xffn);
}

/** LOOPcc/JrCXZ inputs: counts 0, 1, 2, 2^32 (+1) and any, with ZF either way. */
function cx(s: State, rng: Rng): void {
  s.gpr[1] = rng.pick([0n, 1n, 2n, 0x100000000n, 0x100000001n, rng.u64()]);
  if (rng.chance(0.5)) s.rflags ^= FLAG.ZF;
}

/** The address after the instruction, or the taken target. */
function target(code: Uint8Array, taken: boolean, offset = 0): bigint {
  return BigInt(LAYOUT.code + offset + code.length + (taken ? LAYOUT.taken : 0));
}

Deno.test("oracle: jcc (16 conditions), jmp, call, ret, loop/loope/loopne, jrcxz/jecxz", async () => {
  const t: Template[] = [];
  const d8 = LAYOUT.taken;
  CONDS.forEach((cc, n) => {
    t.push({
      asm: `.byte 0x${(0x70 + n).toString(16)}, ${d8}`,
      random: 32,
      edges: false,
      setup: allFlags(),
      note: `j${cc} rel8`,
    });
    t.push({
      asm: `.byte 0x0f, 0x${(0x80 + n).toString(16)}, ${d8}, 0, 0, 0`,
      random: 32,
      edges: false,
      setup: allFlags(),
      note: `j${cc} rel32`,
    });
  });
  const stack = (s: State, rng: Rng) => stackSetup(s, rng);
  const r = { random: 8, edges: false } as const;
  t.push({ asm: `.byte 0xeb, ${d8}`, ...r }); // jmp rel8
  t.push({ asm: `.byte 0xe9, ${d8}, 0, 0, 0`, ...r }); // jmp rel32
  t.push({ asm: `.byte 0xe8, ${d8}, 0, 0, 0`, ...r, setup: stack }); // call rel32
  // indirect: the register or memory holds one of the two ways back
  const reg = (i: number) => (s: State, rng: Rng, _o: Operands, code: Uint8Array) => {
    stackSetup(s, rng);
    s.gpr[i] = target(code, rng.chance(0.5));
  };
  const mem = (s: State, rng: Rng, ops: Operands, code: Uint8Array) => {
    stackSetup(s, rng);
    const at = memOffset(ops.mem!, s.gpr);
    const v = target(code, rng.chance(0.5));
    for (let b = 0; b < 8; b++) s.mem[at + b] = Number((v >> BigInt(8 * b)) & 0xffn);
  };
  t.push({ asm: "jmp rax", ...r, setup: reg(0) }, { asm: "jmp r11", ...r, setup: reg(11) });
  t.push({ asm: "call rcx", ...r, setup: reg(1) }, { asm: "call r14", ...r, setup: reg(14) });
  t.push({ asm: "jmp qword ptr [rdi]", ...r, setup: mem }, {
    asm: "call qword ptr [rdi+8]",
    ...r,
    setup: mem,
  });
  // ret pops one of the ways back; ret imm16 releases more
  t.push({ asm: "ret", ...r, setup: ret }, { asm: "ret 0x10", ...r, setup: ret });
  // loop family and jrcxz: counts 0, 1, 2 and any, with ZF either way
  for (
    const [name, op] of [["loop", 0xe2], ["loope", 0xe1], ["loopne", 0xe0], [
      "jrcxz",
      0xe3,
    ]] as const
  ) {
    t.push({
      asm: `.byte 0x${op.toString(16)}, ${d8}`,
      random: 24,
      edges: false,
      setup: cx,
      note: name,
    });
    t.push({
      asm: `.byte 0x67, 0x${op.toString(16)}, ${d8}`,
      random: 24,
      edges: false,
      setup: cx,
      note: `${name} (ecx)`,
    });
  }
  await check("branch", t);
});

Deno.test("oracle: branches with operand size 16, to non-canonical and unmapped targets", async () => {
  const t: Template[] = [];
  const d8 = LAYOUT.taken;
  const r = { random: 8, edges: false } as const;
  const stack = (s: State, rng: Rng) => stackSetup(s, rng);
  // Operand size 16 (66): AMD truncates the new RIP to 16 bits (and a call pushes 2 bytes);
  // Intel ignores the prefix (SDM JMP/CALL: "In 64-bit mode ... operand size is forced to 64
  // bits"; AMD APM Vol. 3, JMP/CALL: "the operand size ... 16 bits ... truncated"). Below the
  // data pages nothing is mapped: the fetch at the truncated target faults, natively too.
  const small = (s: State, rng: Rng) => {
    stackSetup(s, rng);
    s.gpr[0] = (rng.u64() & ~0xffffn) | target(new Uint8Array(3), true);
  };
  t.push({ asm: `.byte 0x66, 0xeb, ${d8}`, ...r, setup: stack, note: "jmp rel8, o16" });
  t.push({ asm: `.byte 0x66, 0xe9, ${d8}, 0`, ...r, setup: stack, note: "jmp rel16" });
  t.push({ asm: `.byte 0x66, 0xe8, ${d8}, 0`, ...r, setup: stack, note: "call rel16" });
  t.push({
    asm: `.byte 0x66, 0x74, ${d8}`,
    random: 16,
    edges: false,
    setup: allFlags(),
    note: "jz rel8, o16",
  });
  t.push({
    asm: `.byte 0x66, 0x0f, 0x84, ${d8}, 0`,
    random: 16,
    edges: false,
    setup: allFlags(),
    note: "jz rel16",
  });
  t.push({
    asm: `.byte 0x66, 0xe2, ${d8}`,
    random: 16,
    edges: false,
    setup: cx,
    note: "loop rel8, o16",
  });
  t.push({
    asm: `.byte 0x66, 0xe3, ${d8}`,
    random: 16,
    edges: false,
    setup: cx,
    note: "jrcxz rel8, o16",
  });
  t.push({ asm: ".byte 0x66, 0xff, 0xe0", ...r, setup: small, note: "jmp ax" });
  t.push({ asm: ".byte 0x66, 0xff, 0xd0", ...r, setup: small, note: "call ax" });
  t.push({ asm: ".byte 0x66, 0xc3", ...r, setup: ret, note: "ret, o16" });
  // A non-canonical target: #GP(0) on the branch, nothing changed
  const nc = (s: State, rng: Rng) => {
    stackSetup(s, rng);
    s.gpr[0] = 0x8000000000000000n | rng.u64();
    const at = Number(s.gpr[4]) - LAYOUT.buf;
    for (let b = 0; b < 8; b++) s.mem[at + b] = Number((s.gpr[0] >> BigInt(8 * b)) & 0xffn);
  };
  t.push({ asm: "jmp rax", ...r, setup: nc, note: "non-canonical" }, {
    asm: "call rax",
    ...r,
    setup: nc,
    note: "non-canonical",
  });
  t.push({ asm: "ret", ...r, setup: nc, note: "non-canonical" });
  // A canonical target with nothing there: the fetch faults (#PF with I/D), RIP = the target
  const unmappedTarget = (s: State, rng: Rng) => {
    stackSetup(s, rng);
    s.gpr[0] = BigInt(LAYOUT.guard + 8 * rng.int(16));
  };
  t.push({ asm: "jmp rax", ...r, setup: unmappedTarget, note: "unmapped target" });
  t.push({ asm: "call rax", ...r, setup: unmappedTarget, note: "unmapped target" });
  // A non-canonical target and a read-only stack: which fault comes first. AMD pushes first
  // (#PF, measured here); Intel's CALL checks the target first (#GP, SDM CALL pseudocode).
  t.push({
    asm: "call rax",
    ...r,
    note: "non-canonical target, read-only stack",
    setup: (s, rng) => {
      s.gpr[0] = 0x8000000000000000n | rng.u64();
      s.gpr[4] = BigInt(LAYOUT.code + 0x808);
    },
  });
  await check("branch16", t);
});

// ---------------------------------------------------------------------------
// Accesses across the page boundary in the middle of the buffer (the emulated guest maps
// the second page elsewhere in guest-physical memory)

Deno.test("oracle: accesses that cross a page boundary", async () => {
  const boundary = LAYOUT.data + 4096;
  const t: Template[] = [];
  for (
    const l of [
      "mov ax, word ptr [rdi]",
      "mov eax, dword ptr [rdi]",
      "mov rax, qword ptr [rdi]",
      "mov qword ptr [rdi], rbx",
      "mov dword ptr [rdi], 0x12345678",
      "add qword ptr [rdi], rbx",
      "adc dword ptr [rdi], ecx",
      "neg word ptr [rdi]",
      "shl qword ptr [rdi], cl",
      "shrd dword ptr [rdi], eax, 7",
      "bts qword ptr [rdi], 63",
      "btc dword ptr [rdi], eax",
      "xadd qword ptr [rdi], rdx",
      "cmpxchg qword ptr [rdi], rbx",
      "cmpxchg8b qword ptr [rdi]",
      "movzx eax, word ptr [rdi]",
      "movbe rax, qword ptr [rdi]",
      "movbe dword ptr [rdi], ecx",
      "crc32 rax, qword ptr [rdi]",
      "imul rax, qword ptr [rdi], 3",
      "div dword ptr [rdi]",
      "movdqu xmm1, xmmword ptr [rdi]",
      "movdqu xmmword ptr [rdi], xmm2",
      "paddd xmm3, xmmword ptr [rdi]",
      "movq xmm4, qword ptr [rdi]",
      "movd dword ptr [rdi], xmm5",
      "vmovdqu ymm6, ymmword ptr [rdi]",
      "vmovdqu ymmword ptr [rdi], ymm7",
      "push qword ptr [rdi]",
      "pop qword ptr [rdi]",
      "cmpxchg16b xmmword ptr [rdi]",
    ]
  ) {
    if (l.includes("ymm") && !hostHas("avx2")) continue;
    t.push({
      asm: l,
      random: 24,
      edges: false,
      setup: (s, rng) => {
        // 1 to 31 bytes before the boundary: most of these straddle it
        s.gpr[7] = BigInt(boundary - 1 - rng.int(31));
        s.gpr[4] = BigInt(boundary - 4 + 8 * rng.int(2) - 8 * rng.int(2)); // push/pop across too
        if (l.startsWith("div")) setLow(s, 2, 32, 0n);
        if (l.startsWith("btc")) s.gpr[0] = BigInt(rng.int(64)); // a bit offset that stays near
      },
    });
  }
  // stack and string instructions across it
  for (
    const l of ["push rax", "pop rbx", "rep movsb", "rep movsd", "rep stosq", "repe cmpsw", "lodsq"]
  ) {
    t.push({
      asm: l,
      random: 24,
      edges: false,
      setup: (s, rng) => {
        s.gpr[4] = BigInt(boundary - 8 + rng.int(16));
        s.gpr[6] = BigInt(boundary - 16 + rng.int(16));
        s.gpr[7] = BigInt(boundary - 40 + rng.int(40));
        s.gpr[1] = BigInt(rng.int(12));
        s.rflags &= ~FLAG.DF;
      },
    });
  }
  await check("crossing", t);
});

// ---------------------------------------------------------------------------
// Addressing forms

Deno.test("oracle: addressing (RIP-relative, SIB, 32-bit wrap, disp8/disp32, gs)", async () => {
  const t: Template[] = [];
  const r = { random: 12, edges: false } as const;
  t.push({ asm: "mov eax, dword ptr [rip+0x11223344]", ...r, ripTarget: 0x40 });
  t.push({ asm: "add qword ptr [rip+0x11223344], 0x12", ...r, ripTarget: 0x80 }); // imm after disp
  t.push({ asm: "cmp byte ptr [rip+0x11223344], 0x7f", ...r, ripTarget: 0xf0 });
  t.push({ asm: "movdqu xmm3, xmmword ptr [rip+0x11223344]", ...r, ripTarget: 0x21 });
  t.push({ asm: "lea rax, [rip+0x11223344]", ...r, ripTarget: 0 });
  for (
    const l of [
      "mov eax, dword ptr [r12]",
      "mov eax, dword ptr [r13]",
      "mov eax, dword ptr [rbp]",
      "mov rax, qword ptr [r12+r13*2+0x10]",
      "add dword ptr [rbx+rsi*4-0x40], ecx",
      "sub qword ptr [r8+r9*8+0x1000], rdx",
      "xor eax, dword ptr [rdi+rcx]",
      "or word ptr [r15+0x7f], 0x1234",
      "{disp32} mov eax, dword ptr [rdi+8]",
      "mov eax, dword ptr [edi+0x10]",
      "add dword ptr [ebx+ecx*4], eax",
    ]
  ) t.push({ asm: l, ...r });
  // No base: [index*scale+disp32]
  t.push({
    asm: "mov eax, dword ptr [rcx*8+0x10e00]",
    ...r,
    setup: (s, rng) => {
      s.gpr[1] = BigInt(0x20 + rng.int(0x1c));
    },
  });
  // A negative index
  t.push({
    asm: "mov rax, qword ptr [rsi+rdx*4]",
    ...r,
    setup: (s, rng) => {
      const k = BigInt(1 + rng.int(8));
      s.gpr[2] = BigInt.asUintN(64, -k);
      s.gpr[6] = BigInt(LAYOUT.buf + 0x40) + 4n * k;
    },
  });
  // 32-bit addressing wraps at 4 GiB: edi + disp is taken modulo 2^32 (SDM Vol. 1, 3.3.7)
  t.push({
    asm: "mov eax, dword ptr [edi+0x11f40]",
    ...r,
    setup: (s) => {
      s.gpr[7] = 0xfffff000n;
    },
  });
  t.push({
    asm: "add dword ptr [ebx+ecx*2], 1",
    ...r,
    setup: (s) => {
      s.gpr[3] = BigInt(LAYOUT.buf + 0x40) + 0xffff0000n;
      s.gpr[1] = 0x80008000n;
    },
  });
  // An address-size prefix on 64-bit registers' upper halves: ignored bits 63:32
  t.push({
    asm: "mov eax, dword ptr [edi]",
    ...r,
    setup: (s) => {
      s.gpr[7] = (0xdeadbeefn << 32n) | BigInt(LAYOUT.buf + 0x30);
    },
  });
  // GS (base 0 for a Linux process, as in the emulated CPU)
  t.push({ asm: "mov eax, dword ptr gs:[rdi]", ...r });
  t.push({ asm: "add qword ptr gs:[rdi+8], rbx", ...r });
  await check("addressing", t);
});

// ---------------------------------------------------------------------------
// Stack and flag instructions

/** RSP (and RBP, RDI) somewhere in the buffer with room either way; sometimes misaligned. */
function stackSetup(s: State, rng: Rng): void {
  const at = (room: number) =>
    LAYOUT.buf + 64 + 8 * rng.int((LAYOUT.bufLen - 128) / 8) + (rng.chance(0.1) ? rng.int(8) : 0) -
    room;
  s.gpr[4] = BigInt(at(0));
  s.gpr[5] = BigInt(at(0));
  s.gpr[7] = BigInt(at(0));
}

/** A value for POPF to pop: any flags but TF and AC (which would trap in the harness itself). */
function popfSetup(size: 2 | 8) {
  return (s: State, rng: Rng): void => {
    stackSetup(s, rng);
    let v = rng.u64() & ~0x40100n;
    if (rng.chance(0.5)) v &= 0xfffn;
    const at = Number(s.gpr[4]) - LAYOUT.buf;
    for (let b = 0; b < size; b++) s.mem[at + b] = Number((v >> BigInt(8 * b)) & 0xffn);
  };
}

Deno.test("oracle: push/pop/pushf/popf/leave, clc/stc/cmc/cld/std", async () => {
  const t: Template[] = [];
  const st = { random: 16, edges: false, setup: stackSetup };
  for (
    const l of [
      "push rax",
      "push r13",
      "push rsp",
      "push ax",
      "push 0x7f",
      "push -0x80",
      "push 0x12345678",
      "push -0x12345678",
      "push qword ptr [rdi]",
      "push word ptr [rdi+2]",
      "push qword ptr [rsp+8]",
      "pop rbx",
      "pop r9",
      "pop rsp",
      "pop cx",
      "pop qword ptr [rdi]",
      "pop qword ptr [rsp+8]",
      "pop word ptr [rdi]",
      "pushfq",
      "pushfw",
      "leave",
      "clc",
      "stc",
      "cmc",
      "cld",
      "std",
    ]
  ) t.push({ asm: l, ...st });
  t.push({ asm: "popfq", random: 64, edges: false, setup: popfSetup(8) });
  t.push({ asm: "popfw", random: 32, edges: false, setup: popfSetup(2) });
  // CLI/STI at CPL3 with IOPL 0: #GP(0) (SDM CLI, "Protected Mode Exceptions")
  t.push({ asm: "cli", random: 2, edges: false }, { asm: "sti", random: 2, edges: false });
  await check("stack", t);
});

// ---------------------------------------------------------------------------
// Which accesses an instruction makes, seen through the faults they cause: a count of
// zero, a false condition, an operand that is only read, alignment before paging.

Deno.test("oracle: faults that depend on which accesses happen", async () => {
  const ro = BigInt(LAYOUT.code + 0x800); // mapped, read-only
  const unmapped = BigInt(LAYOUT.guard + 0x100);
  const nonCanonical = 0x8000000000000000n;
  const point = (v: bigint, more?: (s: State, rng: Rng) => void) => (s: State, rng: Rng) => {
    s.gpr[7] = v;
    s.gpr[6] = v;
    more?.(s, rng);
  };
  const cl = (n: number) => (s: State) => setLow(s, 1, 8, BigInt(n));
  const r = { random: 4, edges: false } as const;
  const t: Template[] = [];
  for (
    const [where, v] of [["ro", ro], ["unmapped", unmapped], [
      "noncanonical",
      nonCanonical,
    ]] as const
  ) {
    const note = `rdi ${where}`;
    t.push(
      // a shift or rotate by zero still reads and writes its memory operand (or not)
      { asm: "shl dword ptr [rdi], cl", ...r, note, setup: point(v, cl(0)) },
      { asm: "rol qword ptr [rdi], cl", ...r, note, setup: point(v, cl(64)) },
      { asm: "rcr byte ptr [rdi], cl", ...r, note, setup: point(v, cl(9)) },
      { asm: "shld dword ptr [rdi], eax, cl", ...r, note, setup: point(v, cl(32)) },
      // CMOVcc reads its source even when the condition is false (SDM CMOVcc)
      {
        asm: "cmovz eax, dword ptr [rdi]",
        ...r,
        note,
        setup: point(v, (s) => (s.rflags &= ~FLAG.ZF)),
      },
      // CMPXCHG writes its destination even when the comparison fails (SDM CMPXCHG)
      { asm: "cmpxchg dword ptr [rdi], ebx", ...r, note, setup: point(v) },
      { asm: "cmpxchg8b qword ptr [rdi]", ...r, note, setup: point(v) },
      { asm: "xchg qword ptr [rdi], rax", ...r, note, setup: point(v) },
      { asm: "xadd word ptr [rdi], ax", ...r, note, setup: point(v) },
      { asm: "bt dword ptr [rdi], 3", ...r, note, setup: point(v) },
      { asm: "bts dword ptr [rdi], 3", ...r, note, setup: point(v) },
      { asm: "setz byte ptr [rdi]", ...r, note, setup: point(v) },
      { asm: "test dword ptr [rdi], eax", ...r, note, setup: point(v) },
      { asm: "cmp qword ptr [rdi], 0", ...r, note, setup: point(v) },
      // nothing is accessed: no fault
      { asm: "lea rax, [rdi+8]", ...r, note, setup: point(v) },
      { asm: "nop dword ptr [rdi]", ...r, note, setup: point(v) },
      { asm: "prefetcht0 byte ptr [rdi]", ...r, note, setup: point(v) },
      { asm: "rep movsb", ...r, note, setup: point(v, (s) => (s.gpr[1] = 0n)) },
      { asm: "rep stosq", ...r, note, setup: point(v, (s) => (s.gpr[1] = 0n)) },
      { asm: "repe cmpsb", ...r, note, setup: point(v, (s) => (s.gpr[1] = 0n)) },
      { asm: "clflush byte ptr [rdi]", ...r, note, setup: point(v) },
      // alignment (#GP) before paging (#PF)
      { asm: "movdqa xmm0, xmmword ptr [rdi+1]", ...r, note, setup: point(v) },
      { asm: "movaps xmmword ptr [rdi+8], xmm1", ...r, note, setup: point(v) },
      { asm: "cmpxchg16b xmmword ptr [rdi+8]", ...r, note, setup: point(v) },
      { asm: "paddb xmm1, xmmword ptr [rdi+4]", ...r, note, setup: point(v) },
      ...(hostHas("avx")
        ? [{ asm: "vmovdqa ymm0, ymmword ptr [rdi+16]", ...r, note, setup: point(v) }]
        : []),
      // POP to memory: a fault in the write leaves RSP as it was (SDM POP)
      {
        asm: "pop qword ptr [rdi]",
        ...r,
        note,
        setup: point(v, (s, rng) => stackSetupKeep(s, rng)),
      },
      {
        asm: "push qword ptr [rdi]",
        ...r,
        note,
        setup: point(v, (s, rng) => stackSetupKeep(s, rng)),
      },
      {
        asm: "movs qword ptr es:[rdi], qword ptr [rsi]",
        ...r,
        note,
        setup: point(v, (s) => (s.gpr[6] = BigInt(LAYOUT.buf))),
      },
    );
  }
  // the stack itself read-only or unmapped
  for (const [where, v] of [["ro", ro], ["unmapped", unmapped]] as const) {
    for (const l of ["push rax", "pop rbx", "pushfq", "call rax", "ret"]) {
      t.push({
        asm: l,
        ...r,
        note: `rsp ${where}`,
        setup: (s, _rng, _o, code) => {
          s.gpr[4] = v + 8n;
          s.gpr[0] = target(code, true); // a canonical target (see the branch family for others)
        },
      });
    }
  }
  // an access that starts canonical and ends beyond the canonical range: #GP(0)
  const edge = (back: number) => (s: State) => {
    s.gpr[7] = 0x0000800000000000n - BigInt(back);
  };
  t.push({ asm: "mov rax, qword ptr [rdi]", ...r, setup: edge(4) });
  t.push({ asm: "mov qword ptr [rdi], rax", ...r, setup: edge(1) });
  t.push({ asm: "movdqu xmm0, xmmword ptr [rdi]", ...r, setup: edge(8) });
  await check("access", t);
});

/** A stack in the buffer, rdi kept. */
function stackSetupKeep(s: State, rng: Rng): void {
  const rdi = s.gpr[7];
  stackSetup(s, rng);
  s.gpr[7] = rdi;
}

// ---------------------------------------------------------------------------
// Alignment checking: CPL3, CR0.AM = 1 (as Linux sets it) and RFLAGS.AC = 1

Deno.test("oracle: alignment check (#AC) with RFLAGS.AC at CPL3", async () => {
  const ac = 1n << 18n;
  const at = (s: State, rng: Rng) => {
    s.rflags |= ac;
    const off = BigInt(rng.pick([0, 1, 2, 3, 4, 6, 8, 12, 15]));
    s.gpr[7] = BigInt(LAYOUT.buf + 0x40) + off;
    s.gpr[6] = BigInt(LAYOUT.buf + 0x20) + off;
    s.gpr[4] = BigInt(LAYOUT.buf + 0xa0) + off;
    s.gpr[1] = BigInt(rng.int(4));
  };
  const r = { random: 24, edges: false, setup: at } as const;
  const t: Template[] = [];
  for (
    const l of [
      "mov al, byte ptr [rdi]",
      "mov ax, word ptr [rdi]",
      "mov eax, dword ptr [rdi]",
      "mov rax, qword ptr [rdi]",
      "mov qword ptr [rdi], rax",
      "add dword ptr [rdi], eax",
      "movzx eax, word ptr [rdi]",
      "bt dword ptr [rdi], 3",
      "cmpxchg8b qword ptr [rdi]",
      "movdqu xmm0, xmmword ptr [rdi]",
      "movq xmm1, qword ptr [rdi]",
      "movd dword ptr [rdi], xmm2",
      "push rax",
      "pop rbx",
      "push word ptr [rdi]",
      "rep movsd",
      "rep stosw",
      "lodsq",
      "fnstcw word ptr [rdi]",
      "stmxcsr dword ptr [rdi]",
      "lea rax, [rdi]",
    ]
  ) t.push({ asm: l, ...r });
  await check("alignment", t);
});

// ---------------------------------------------------------------------------
// Prefixes, hint instructions, traps and what CPL3 may not do

Deno.test("oracle: prefix combinations, nops and hints, movabs, traps, #UD and #GP at CPL3", async () => {
  const r = { random: 8, edges: false } as const;
  const t: Template[] = [];
  for (
    const [bytes, note] of [
      ["0x66, 0x48, 0x01, 0xd8", "66 with REX.W: add rax, rbx (REX.W wins)"],
      ["0x66, 0x66, 0x01, 0xd8", "66 66: add ax, bx"],
      ["0x48, 0x66, 0x01, 0xd8", "REX before 66 is ignored: add ax, bx"],
      ["0x48, 0x41, 0x01, 0xd8", "two REX, the last counts: add r8d, ebx"],
      ["0x2e, 0x01, 0x07", "cs: add [rdi], eax (ignored in 64-bit mode)"],
      ["0x36, 0x26, 0x3e, 0x01, 0x07", "ss: es: ds: add [rdi], eax"],
      ["0xf3, 0x01, 0xd8", "rep on add: ignored"],
      ["0xf2, 0x31, 0xd8", "repne on xor: ignored"],
      ["0xf2, 0xa4", "repne movsb: as rep"],
      ["0x65, 0xa4", "gs: movsb"],
      ["0x66, 0x6a, 0x80", "push imm8 as a word"],
      ["0x66, 0x68, 0x34, 0x12", "push imm16"],
      ["0x90", "nop: rax stays"],
      ["0x41, 0x90", "xchg r8d, eax: both zero-extended"],
      ["0x87, 0xc0", "xchg eax, eax (87 c0): zero-extends rax"],
      ["0x48, 0x90", "xchg rax, rax (REX.W 90): a nop"],
      ["0xf3, 0x90", "pause"],
      ["0x0f, 0x1f, 0x44, 0x00, 0x00", "nop dword ptr [rax+rax]"],
      ["0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00", "nop word ptr [rax+rax]"],
      ["0xf3, 0x0f, 0x1e, 0xfa", "endbr64"],
      ["0x0f, 0xae, 0xe8", "lfence"],
      ["0x0f, 0xae, 0xf0", "mfence"],
      ["0x0f, 0xae, 0xf8", "sfence"],
    ] as const
  ) {
    t.push({
      asm: `.byte ${bytes}`,
      ...r,
      note,
      setup: bytes.includes("0xa4") || bytes.includes("0x6a") || bytes.includes("0x68")
        ? stackAndString
        : undefined,
    });
  }
  for (
    const l of [
      "prefetcht0 byte ptr [rdi]",
      "prefetchnta byte ptr [rdi+0x40]",
      "clflush byte ptr [rdi]",
    ]
  ) {
    t.push({ asm: l, ...r });
  }
  if (hostHas("clflushopt")) t.push({ asm: "clflushopt byte ptr [rdi]", ...r });
  // movabs with a 64-bit absolute address (moffs)
  t.push({ asm: `movabs eax, dword ptr [0x${(LAYOUT.buf + 0x40).toString(16)}]`, ...r });
  t.push({ asm: `movabs qword ptr [0x${(LAYOUT.buf + 0x48).toString(16)}], rax`, ...r });
  t.push({ asm: `movabs al, byte ptr [0x${(LAYOUT.buf + 0x51).toString(16)}]`, ...r });
  // traps: RIP past the instruction (SDM Vol. 3A, 6.5)
  // (int1/icebp, F1, is left out: natively this host reports its #DB with RIP on the
  // instruction, not after it as for a trap; the hypervisor below intercepts ICEBP. INT n,
  // CD ib, is not emulated.)
  t.push({ asm: "int3", ...r });
  // #UD
  for (
    const [bytes, note] of [
      ["0xce", "into (invalid in 64-bit mode)"],
      ["0x27", "daa (invalid in 64-bit mode)"],
      ["0xd6", "salc (invalid in 64-bit mode)"],
      ["0x82, 0xc0, 0x01", "82 /0 (invalid in 64-bit mode)"],
      ["0x0f, 0xff, 0xc0", "ud0"],
      ["0x0f, 0xb9, 0xc0", "ud1"],
      ["0xf0, 0x0f, 0xa3, 0x07", "lock bt [rdi], eax (bt does not take lock)"],
      ["0xf0, 0xff, 0xc0", "lock inc eax (register destination)"],
      ["0xf0, 0x90", "lock nop"],
      ["0x0f, 0x01, 0xca", "clac at CPL3"],
      ["0x0f, 0x01, 0xcb", "stac at CPL3"],
      ["0xc5, 0xf9, 0x6f, 0xc1", "VEX vmovdqa xmm0, xmm1 (VEX.pp = 66): fine, the control"],
      ["0x66, 0xc5, 0xf9, 0x6f, 0xc1", "66 before VEX: #UD"],
      ["0xf0, 0xc5, 0xf9, 0x6f, 0xc1", "lock before VEX: #UD"],
    ] as const
  ) {
    if (!note.includes("VEX") || hostHas("avx")) {
      t.push({ asm: `.byte ${bytes}`, random: 2, edges: false, note });
    }
  }
  // #GP(0): privileged at CPL3
  for (
    const [bytes, note] of [
      ["0xf4", "hlt"],
      ["0x0f, 0x20, 0xc0", "mov rax, cr0"],
      ["0x0f, 0x22, 0xd8", "mov cr3, rax"],
      ["0x0f, 0x21, 0xc0", "mov rax, dr0"],
      ["0x0f, 0x32", "rdmsr"],
      ["0x0f, 0x30", "wrmsr"],
      ["0x0f, 0x01, 0x17", "lgdt [rdi]"],
      ["0x0f, 0x01, 0x1f", "lidt [rdi]"],
      ["0x0f, 0x01, 0x3f", "invlpg [rdi]"],
      ["0x0f, 0x09", "wbinvd"],
      ["0x0f, 0x08", "invd"],
      ["0x0f, 0x06", "clts"],
      ["0x0f, 0x01, 0xf0", "lmsw ax"],
      ["0x0f, 0x01, 0xf8", "swapgs"],
      ["0x0f, 0x01, 0xd1", "xsetbv"],
    ] as const
  ) t.push({ asm: `.byte ${bytes}`, random: 2, edges: false, note });
  await check("misc", t);
});

/** For the string and stack instructions among the prefix cases: room for one element either way. */
function stackAndString(s: State, rng: Rng): void {
  stackSetup(s, rng);
  s.gpr[6] = BigInt(LAYOUT.buf + 0x40 + rng.int(0x80));
  s.gpr[7] = BigInt(LAYOUT.buf + 0x40 + rng.int(0x80));
  s.gpr[1] = BigInt(rng.int(8));
}

// ---------------------------------------------------------------------------
// Faults

Deno.test("oracle: faults (#DE, #UD, #GP, #PF) match the CPU's", async () => {
  const nearGuard = (back: number) => (s: State) => {
    s.gpr[7] = BigInt(LAYOUT.guard - back);
  };
  const nonCanonical = (s: State) => {
    s.gpr[7] = 0x8000000000000000n;
  };
  const t: Template[] = [
    { asm: "div ecx", random: 4, edges: false, setup: (s) => setLow(s, 1, 32, 0n) },
    {
      asm: "idiv rcx",
      random: 4,
      edges: false,
      setup: (s) => {
        s.gpr[1] = maskOf(64);
        s.gpr[0] = 1n << 63n;
        s.gpr[2] = maskOf(64);
      },
    },
    {
      asm: "div byte ptr [rdi]",
      random: 4,
      edges: false,
      setup: (s, _r, ops) => {
        s.mem[memOffset(ops.mem!, s.gpr)] = 1;
        setLow(s, 0, 16, 0x100n);
      },
    },
    { asm: "ud2", random: 2, edges: false },
    // a non-canonical address through RSP or RBP: #SS(0) (SDM Vol. 3A, 6.15, interrupt 12)
    {
      asm: "mov rax, qword ptr [rbp+8]",
      random: 2,
      edges: false,
      setup: (s) => {
        s.gpr[5] = 0x8000000000000000n;
      },
    },
    {
      asm: "mov qword ptr [rsp], rax",
      random: 2,
      edges: false,
      setup: (s) => {
        s.gpr[4] = 0x8000000000000000n;
      },
    },
    // lock on a register destination or a non-lockable instruction: #UD (SDM LOCK)
    { asm: ".byte 0xf0, 0x01, 0xd8", random: 2, edges: false }, // lock add eax, ebx
    { asm: ".byte 0xf0, 0x39, 0x07", random: 2, edges: false }, // lock cmp [rdi], eax
    { asm: ".byte 0xf0, 0x8b, 0x07", random: 2, edges: false }, // lock mov eax, [rdi]
    { asm: ".byte 0x0f, 0xc7, 0xc8", random: 2, edges: false }, // cmpxchg8b with a register operand
    // 16-byte alignment
    { asm: "movdqa xmm0, xmmword ptr [rdi]", random: 2, edges: false, setup: nearGuard(0x31) },
    { asm: "cmpxchg16b xmmword ptr [rdi]", random: 2, edges: false, setup: nearGuard(0x38) },
    // a non-canonical address: #GP(0)
    { asm: "mov rax, qword ptr [rdi]", random: 2, edges: false, setup: nonCanonical },
    { asm: "add qword ptr [rdi], rax", random: 2, edges: false, setup: nonCanonical },
    // accesses into the unmapped page after the buffer: #PF with the CPU's error code and CR2
    { asm: "mov rax, qword ptr [rdi]", random: 2, edges: false, setup: nearGuard(4) },
    { asm: "mov qword ptr [rdi], rax", random: 2, edges: false, setup: nearGuard(4) },
    { asm: "add dword ptr [rdi], eax", random: 2, edges: false, setup: nearGuard(0) },
    { asm: "movdqu xmm1, xmmword ptr [rdi]", random: 2, edges: false, setup: nearGuard(8) },
    { asm: "movdqu xmmword ptr [rdi], xmm1", random: 2, edges: false, setup: nearGuard(15) },
    { asm: "lock cmpxchg qword ptr [rdi], rbx", random: 2, edges: false, setup: nearGuard(2) },
    {
      asm: "bt dword ptr [rdi], esi",
      random: 2,
      edges: false,
      setup: (s) => {
        s.gpr[7] = BigInt(LAYOUT.buf);
        s.gpr[6] = BigInt(8 * (LAYOUT.guard - LAYOUT.buf) + 5);
      },
    },
    // an instruction fetch that runs into the unmapped page after the code page: #PF(U, I)
    { asm: "add qword ptr [rdi], 0x12345678", random: 2, edges: false, codeOffset: 4096 - 4 },
    { asm: "add eax, ebx", random: 2, edges: false, codeOffset: 4096 - 1 },
    // a write to the read-only code page: #PF(P, W, U)
    {
      asm: "mov dword ptr [rdi], eax",
      random: 2,
      edges: false,
      setup: (s) => {
        s.gpr[7] = BigInt(LAYOUT.code + 0x800);
      },
    },
    // below the data page (unmapped too)
    {
      asm: "mov eax, dword ptr [rdi]",
      random: 2,
      edges: false,
      setup: (s) => {
        s.gpr[7] = BigInt(LAYOUT.data - 2);
      },
    },
    // REP string instructions that run into the unmapped page: the CPU stops at the element
    // that faults with RCX/RSI/RDI counting the ones done (SDM REP, "... the registers
    // indicate the state at the point of the exception")
    {
      asm: "rep stosb",
      random: 4,
      edges: false,
      setup: (s) => {
        s.gpr[7] = BigInt(LAYOUT.guard - 5);
        s.gpr[1] = 9n;
        s.rflags &= ~FLAG.DF;
      },
    },
    {
      asm: "rep movsq",
      random: 4,
      edges: false,
      setup: (s) => {
        s.gpr[6] = BigInt(LAYOUT.buf);
        s.gpr[7] = BigInt(LAYOUT.guard - 16);
        s.gpr[1] = 4n;
        s.rflags &= ~FLAG.DF;
      },
    },
    {
      asm: "rep lodsd",
      random: 4,
      edges: false,
      setup: (s) => {
        s.gpr[6] = BigInt(LAYOUT.guard - 8);
        s.gpr[1] = 5n;
        s.rflags &= ~FLAG.DF;
      },
    },
  ];
  await check("faults", t);
});

// ---------------------------------------------------------------------------
// AVX-512 (EVEX): _exec_evex.ts against this CPU where it has AVX-512F and AVX-512VL

const EVEX_BINARY = [
  "vpermi2d",
  "vpermi2q",
  "vpermt2d",
  "vpermt2q",
  "vprolvd",
  "vprorvd",
  "vprolvq",
  "vprorvq",
  "vpaddd",
  "vpaddq",
  "vpsubd",
  "vpsubq",
  "vpxord",
  "vpxorq",
  "vpord",
  "vporq",
  "vpandd",
  "vpandq",
  "vpandnd",
  "vpandnq",
];

/** Sets k`n` (bits 15:0) in a case's input. */
function setK(s: State, n: number, v: number): void {
  s.k[8 * n] = v & 0xff;
  s.k[8 * n + 1] = (v >> 8) & 0xff;
  for (let b = 2; b < 8; b++) s.k[8 * n + b] = 0;
}

Deno.test("oracle: AVX-512 (EVEX) integer permutes, rotates, arithmetic, logic, masks, broadcast", {
  ignore: !HAS_AVX512,
}, async () => {
  const t: Template[] = [];
  const r = { random: 6, edges: false } as const;
  const m = { random: 4, edges: false, align: "any" } as const;
  const regs = [["xmm", "xmm1", "xmm2", "xmm3"], ["ymm", "ymm20", "ymm5", "ymm31"], [
    "zmm",
    "zmm17",
    "zmm18",
    "zmm9",
  ]] as const;
  const masks = ["", "{k1}", "{k2}{z}"];
  const ptr: Record<string, string> = { xmm: "xmmword", ymm: "ymmword", zmm: "zmmword" };
  for (const op of EVEX_BINARY) {
    const q = op.endsWith("q");
    for (const [w, d, a, b] of regs) {
      for (const k of masks) t.push({ asm: `${op} ${d}${k}, ${a}, ${b}`, ...r });
      t.push({ asm: `${op} ${d}{k3}, ${a}, ${ptr[w]} ptr [rdi]`, ...m });
      const n = (w === "xmm" ? 16 : w === "ymm" ? 32 : 64) / (q ? 8 : 4);
      t.push({ asm: `${op} ${d}{k4}{z}, ${a}, [rdi]{1to${n}}`, ...m });
    }
  }
  for (const op of ["vpternlogd", "vpternlogq"]) {
    for (const imm of [0x96, 0xe8, 0xca, 0x00, 0xff, 0x5a]) {
      t.push({ asm: `${op} zmm1, zmm2, zmm3, ${imm}`, ...r });
      t.push({ asm: `${op} ymm25{k5}, ymm26, ymmword ptr [rdi], ${imm}`, ...m });
    }
    t.push({ asm: `${op} xmm4{k6}{z}, xmm5, [rdi]{1to${op.endsWith("q") ? 2 : 4}}, 0x78`, ...m });
  }
  for (const op of ["vprold", "vprord", "vprolq", "vprorq"]) {
    for (const n of [0, 1, 7, 31, 32, 63, 200]) {
      t.push({ asm: `${op} xmm1, xmm2, ${n}`, ...r }, {
        asm: `${op} zmm30{k7}, zmm16, ${n}`,
        ...r,
      });
      t.push({ asm: `${op} ymm3{k1}{z}, ymm4, ${n}`, ...r });
    }
  }
  for (const n of [0x1b, 0xe4, 0x4e]) {
    t.push({ asm: `vpshufd zmm1{k2}, zmm2, ${n}`, ...r }, {
      asm: `vpshufd xmm23, xmm24, ${n}`,
      ...r,
    });
    t.push({ asm: `vpshufd ymm5, ymmword ptr [rdi], ${n}`, ...m });
    t.push({ asm: `vpshufd zmm7{k1}, zmmword ptr [rdi], ${n}`, ...m });
    t.push({ asm: `vpshufd zmm6{k3}{z}, [rdi]{1to16}, ${n}`, ...m });
  }
  for (const [w, d] of [["xmm", "xmm16"], ["ymm", "ymm7"], ["zmm", "zmm29"]] as const) {
    t.push({ asm: `vpbroadcastd ${d}{k1}, xmm2`, ...r }, {
      asm: `vpbroadcastd ${d}, dword ptr [rdi]`,
      ...m,
    });
    t.push({ asm: `vpbroadcastd ${d}{k2}{z}, dword ptr [rdi]`, ...m });
    void w;
  }
  // The exact bytes of blake2s_compress_avx512's vpermi2d (Linux 6.1 arch/x86/crypto).
  t.push({ asm: ".byte 0x62, 0x72, 0x4d, 0x28, 0x76, 0xc7", random: 24, edges: false });
  await check("avx512", t);
});

Deno.test(
  "oracle: AVX-512 (EVEX) moves: vmovdqa32/64, vmovdqu32/64, masks, alignment, fault suppression",
  {
    ignore: !HAS_AVX512,
  },
  async () => {
    const t: Template[] = [];
    const m = { random: 8, edges: false, align: "any" } as const;
    for (const op of ["vmovdqa32", "vmovdqa64", "vmovdqu32", "vmovdqu64"]) {
      for (const [w, p] of [["xmm", "xmmword"], ["ymm", "ymmword"], ["zmm", "zmmword"]] as const) {
        for (const k of ["", "{k1}", "{k2}{z}"]) {
          t.push({ asm: `${op} ${w}1${k}, ${w}2`, random: 4, edges: false });
          t.push({ asm: `${op} ${w}19${k}, ${p} ptr [rdi]`, ...m });
        }
        for (const k of ["", "{k3}"]) t.push({ asm: `${op} ${p} ptr [rdi]${k}, ${w}21`, ...m });
      }
    }
    // A load reaching into the unmapped guard page: with a mask that selects only the elements
    // in the mapped page, no fault (SDM Vol. 2, 2.8 memory fault suppression).
    for (
      const [op, kv] of [["vmovdqu32", 0x00ff], ["vmovdqu64", 0x0f], ["vmovdqu32", 0x0100]] as const
    ) {
      t.push({
        asm: `${op} zmm3{k1}, zmmword ptr [rdi]`,
        random: 2,
        edges: false,
        note: `k1 = ${kv}, rdi 32 bytes before the guard page`,
        setup: (s) => {
          s.gpr[7] = BigInt(LAYOUT.guard - 32);
          setK(s, 1, kv);
        },
      });
      t.push({
        asm: `vpaddd zmm3{k1}, zmm4, zmmword ptr [rdi]`,
        random: 2,
        edges: false,
        note: `k1 = ${kv}, rdi 32 bytes before the guard page`,
        setup: (s) => {
          s.gpr[7] = BigInt(LAYOUT.guard - 32);
          setK(s, 1, op === "vmovdqu64" ? 0x00ff : kv);
        },
      });
    }
    for (
      const asm of [
        "vpshufd zmm3{k1}, zmmword ptr [rdi], 0x1b",
        "vpermi2d zmm3{k1}, zmm4, zmmword ptr [rdi]",
        "vpternlogq zmm3{k1}, zmm4, zmmword ptr [rdi], 0x96",
      ]
    ) {
      t.push({
        asm,
        random: 2,
        edges: false,
        note: "k1 = 0xff, rdi 32 bytes before the guard page",
        setup: (s) => {
          s.gpr[7] = BigInt(LAYOUT.guard - 32);
          setK(s, 1, 0x00ff);
        },
      });
    }
    await check("avx512-moves", t);
  },
);

Deno.test("oracle: AVX-512 (EVEX) #UD encodings", { ignore: !HAS_AVX512 }, async () => {
  const r = { random: 2, edges: false } as const;
  const bytes = (s: string) => ".byte " + s.split(" ").map((b) => "0x" + b).join(", ");
  const t: Template[] = [
    ["62 f1 6d 68 fe cb", "EVEX.L'L = 11b"],
    ["62 f1 6d 58 fe cb", "EVEX.b with register operands"],
    ["62 f1 ed 48 fe cb", "vpaddd with EVEX.W1"],
    ["62 f1 6d 48 d4 cb", "vpaddq with EVEX.W0"],
    ["62 f1 fd 48 70 c1 1b", "vpshufd with EVEX.W1"],
    ["62 f1 7d 58 6f 0f", "vmovdqa32 with EVEX.b"],
    ["62 e1 fe c9 7f 0f", "vmovdqu64 store with {z}"],
    ["62 f9 6d 48 fe cb", "EVEX P0 bit 3"],
    ["62 f1 6d c8 fe cb", "{z} without a mask"],
    ["62 f2 7d 58 58 0f", "vpbroadcastd with EVEX.b"],
  ].map(([b, note]) => ({ asm: bytes(b), note, ...r }));
  await check("avx512-ud", t);
});

/** Whether the decoder takes these bytes (forms it wrongly rejects today are tested once it does). */
function decodes(bytes: number[]): boolean {
  try {
    decode(new Uint8Array(bytes), 64, 0n);
    return true;
  } catch {
    return false;
  }
}

// The decoder (_decode_vex.ts) rejects these valid encodings with #UD today: the memory forms
// of EVEX 0F 72 /0 and /1 (vprord/vprold/q m, imm8) and EVEX.W1 0F38 59 (vpbroadcastq).
// The executor implements them; this family runs as soon as the decoder decodes them.
Deno.test("oracle: AVX-512 (EVEX) vprold/vprord memory forms, vpbroadcastq", {
  ignore: !HAS_AVX512 || !decodes([0x62, 0xf1, 0x75, 0x48, 0x72, 0x48, 0x02, 0x03]) ||
    !decodes([0x62, 0xf2, 0xfd, 0x48, 0x59, 0xca]),
}, async () => {
  const m = { random: 6, edges: false, align: "any" } as const;
  const t: Template[] = [];
  for (const op of ["vprold", "vprord", "vprolq", "vprorq"]) {
    const n = op.endsWith("q") ? 8 : 16;
    t.push({ asm: `${op} zmm1{k1}, zmmword ptr [rdi], 7`, ...m });
    t.push({ asm: `${op} ymm21{k2}{z}, [rdi]{1to${n / 2}}, 33`, ...m });
  }
  t.push({ asm: "vpbroadcastq zmm1{k1}, xmm2", ...m }, {
    asm: "vpbroadcastq ymm17, qword ptr [rdi]",
    ...m,
  });
  t.push({ asm: "vpbroadcastq xmm3{k2}{z}, qword ptr [rdi]", ...m });
  await check("avx512-decoder-gaps", t);
});

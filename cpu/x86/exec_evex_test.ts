/**
 * Tests of the EVEX (AVX-512F/VL) integer instructions of _exec_evex.ts:
 * results, masking, broadcast, registers 16-31, zeroing above the vector
 * length, the XSTATE_BV bits, #UD/#NM/#GP rules, memory fault suppression,
 * and the decoder's disp8*N (SDM Vol. 2, 2.7.5) for the forms used.
 */
import assert from "node:assert/strict";
import { assertException, assertOk, machine, run } from "./_exec_test_util.ts";
import { decode } from "./decode.ts";
import { hex, type TestCpu, TestMachine, XSAVE_COMPONENTS } from "./testing.ts";
import type { MemOperand } from "./types.ts";

const YMMH = XSAVE_COMPONENTS[2].offset;
const KREG = XSAVE_COMPONENTS[5].offset;
const ZMMH = XSAVE_COMPONENTS[6].offset;
const HI16 = XSAVE_COMPONENTS[7].offset;
const DATA = TestMachine.DATA;

function m512() {
  return machine({ avx512: true });
}

/** Sets ZMM `r` to 64 bytes (XSTATE_BV bits as the processor would have them). */
function setZ(cpu: TestCpu, r: number, v: Uint8Array): void {
  const x = cpu.xsaveArea;
  if (r < 16) {
    x.set(v.subarray(0, 16), 160 + 16 * r);
    x.set(v.subarray(16, 32), YMMH + 16 * r);
    x.set(v.subarray(32, 64), ZMMH + 32 * r);
    x[512] |= 0x46;
  } else {
    x.set(v, HI16 + 64 * (r - 16));
    x[512] |= 0x80;
  }
}

function getZ(cpu: TestCpu, r: number): Uint8Array {
  const x = cpu.xsaveArea;
  const out = new Uint8Array(64);
  if (r < 16) {
    out.set(x.subarray(160 + 16 * r, 176 + 16 * r));
    out.set(x.subarray(YMMH + 16 * r, YMMH + 16 * r + 16), 16);
    out.set(x.subarray(ZMMH + 32 * r, ZMMH + 32 * r + 32), 32);
  } else out.set(x.subarray(HI16 + 64 * (r - 16), HI16 + 64 * (r - 15)));
  return out;
}

function setK(cpu: TestCpu, k: number, v: number): void {
  new DataView(cpu.xsaveArea.buffer).setBigUint64(KREG + 8 * k, BigInt(v), true);
  cpu.xsaveArea[512] |= 0x20;
}

function dwords(...v: number[]): Uint8Array {
  const out = new Uint8Array(64);
  const dv = new DataView(out.buffer);
  v.forEach((x, i) => dv.setUint32(4 * i, x >>> 0, true));
  return out;
}

function qwords(...v: bigint[]): Uint8Array {
  const out = new Uint8Array(64);
  const dv = new DataView(out.buffer);
  v.forEach((x, i) => dv.setBigUint64(8 * i, BigInt.asUintN(64, x), true));
  return out;
}

function getD(b: Uint8Array): number[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return Array.from({ length: b.length / 4 }, (_, i) => dv.getUint32(4 * i, true));
}

function getQ(b: Uint8Array): bigint[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return Array.from({ length: b.length / 8 }, (_, i) => dv.getBigUint64(8 * i, true));
}

const seq = <T = number>(n: number, f: (i: number) => T): T[] =>
  Array.from({ length: n }, (_, i) => f(i));
const ones = () => new Uint8Array(64).fill(0xee);

Deno.test("evex: blake2s_compress_avx512's vpermi2d ymm8,ymm6,ymm7 (62 72 4d 28 76 c7)", () => {
  const m = m512();
  // Indexes 0-15 (bit 3 selects ymm7), noise in the bits above bit 3.
  const idx = [3, 8, 15, 0, 0x10 | 7, 0xfffffff9, 4, 12];
  const t0 = seq(8, (i) => 0x100 + i), t1 = seq(8, (i) => 0x200 + i);
  setZ(m.cpu, 8, dwords(...idx, ...seq(8, () => 0xdeadbeef)));
  setZ(m.cpu, 6, dwords(...t0, ...seq(8, () => 1)));
  setZ(m.cpu, 7, dwords(...t1, ...seq(8, () => 2)));
  const r = run(m, "62 72 4d 28 76 c7");
  assertOk(r);
  assert.equal(r.kind === "ok" && r.insn.text, "vpermi2d ymm8,ymm6,ymm7");
  const want = idx.map((x) => ((x & 8) ? t1 : t0)[x & 7]);
  assert.deepEqual(getD(getZ(m.cpu, 8)), [...want, ...seq(8, () => 0)]);
  assert.equal(m.cpu.rip, TestMachine.CODE + 6n);
  assert.ok(m.cpu.dirty & 8, "DIRTY.extended");
});

Deno.test("evex: vprord xmm1,xmm2,7 and the other rotates", () => {
  const m = m512();
  const src = [0x80000001, 0x12345678, 0, 0xffffffff];
  setZ(m.cpu, 2, dwords(...src, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9));
  setZ(m.cpu, 1, ones());
  assertOk(run(m, "62 f1 75 08 72 c2 07"));
  const ror = (x: number, n: number) => ((x >>> n) | (x << (32 - n))) >>> 0;
  assert.deepEqual(getD(getZ(m.cpu, 1)), [...src.map((x) => ror(x, 7)), ...seq(12, () => 0)]);
  // vprolq zmm16,zmm17,13 (registers 16-31 in component 7).
  const m2 = m512();
  const q = [1n, 0x8000000000000000n, 0x0123456789abcdefn, 0n, 5n, 6n, 7n, (1n << 64n) - 1n];
  setZ(m2.cpu, 17, qwords(...q));
  assertOk(run(m2, "62 b1 fd 40 72 c9 0d"));
  const rol = (x: bigint, n: bigint) => BigInt.asUintN(64, (x << n) | (x >> (64n - n)));
  assert.deepEqual(getQ(getZ(m2.cpu, 16)), q.map((x) => rol(x, 13n)));
  assert.equal(m2.cpu.xsaveArea[512] & 0x80, 0x80);
  // vprorvd zmm1,zmm2,DWORD BCST [rax]: counts broadcast from memory, taken mod 32.
  const m3 = m512();
  m3.cpu.gpr[0] = DATA;
  m3.poke(DATA, 4, 33n);
  setZ(m3.cpu, 2, dwords(...seq(16, (i) => i + 2)));
  assertOk(run(m3, "62 f2 6d 58 14 08"));
  assert.deepEqual(getD(getZ(m3.cpu, 1)), seq(16, (i) => ror(i + 2, 1)));
});

Deno.test("evex: vpermt2d ymm20,ymm21,ymm22 and vprolvq xmm31,xmm30,xmm29", () => {
  const m = m512();
  const idx = [0, 1, 8, 9, 15, 7, 2, 10];
  setZ(m.cpu, 21, dwords(...idx));
  setZ(m.cpu, 20, dwords(...seq(8, (i) => 0xa0 + i), ...seq(8, () => 0x77)));
  setZ(m.cpu, 22, dwords(...seq(8, (i) => 0xb0 + i)));
  assertOk(run(m, "62 a2 55 20 7e e6"));
  const want = idx.map((x) => (x & 8 ? 0xb0 : 0xa0) + (x & 7));
  assert.deepEqual(getD(getZ(m.cpu, 20)), [...want, ...seq(8, () => 0)]);

  const m2 = m512();
  setZ(m2.cpu, 30, qwords(0x8000000000000001n, 3n, 4n, 4n, 4n, 4n, 4n, 4n));
  setZ(m2.cpu, 29, qwords(65n, 0n));
  setZ(m2.cpu, 31, ones());
  assertOk(run(m2, "62 02 8d 00 15 fd"));
  assert.deepEqual(getQ(getZ(m2.cpu, 31)), [3n, 3n, 0n, 0n, 0n, 0n, 0n, 0n]);
});

Deno.test("evex: vpaddd with merging and zeroing masking", () => {
  const a = seq(16, (i) => 0xfffffff0 + i), b = seq(16, (i) => 0x20 + i);
  const sum = a.map((x, i) => (x + b[i]) >>> 0);
  const old = seq(16, (i) => 0x1000 + i);
  for (const [code, zero] of [["62 f1 6d 49 fe cb", false], ["62 f1 6d c9 fe cb", true]] as const) {
    const m = m512();
    setZ(m.cpu, 2, dwords(...a));
    setZ(m.cpu, 3, dwords(...b));
    setZ(m.cpu, 1, dwords(...old));
    setK(m.cpu, 1, 0xfffa5a5); // bits above 15 are not elements
    assertOk(run(m, code));
    const want = seq(16, (i) => ((0xa5a5 >> i) & 1) ? sum[i] : zero ? 0 : old[i]);
    assert.deepEqual(getD(getZ(m.cpu, 1)), want, code);
  }
});

Deno.test("evex: vpaddq with embedded broadcast and zeroing; vpsubd, logic, ternlog", () => {
  const m = m512();
  m.cpu.gpr[0] = DATA;
  m.poke(DATA + 8n, 8, 0x100000000n);
  setZ(m.cpu, 2, qwords(...seq(8, (i) => i).map(BigInt)));
  setK(m.cpu, 2, 0x0f);
  assertOk(run(m, "62 f1 ed da d4 48 01")); // vpaddq zmm1{k2}{z},zmm2,QWORD BCST [rax+0x8]
  assert.deepEqual(getQ(getZ(m.cpu, 1)), [
    ...seq(4, (i) => 0x100000000n + BigInt(i)),
    0n,
    0n,
    0n,
    0n,
  ]);

  const m2 = m512();
  const x = seq(16, (i) => (i * 0x9e3779b9) >>> 0);
  const y = seq(16, (i) => (i * 0x85ebca6b + 7) >>> 0);
  const z = seq(16, (i) => (i * 0xc2b2ae35 + 3) >>> 0);
  setZ(m2.cpu, 1, dwords(...x));
  setZ(m2.cpu, 2, dwords(...y));
  setZ(m2.cpu, 3, dwords(...z));
  assertOk(run(m2, "62 f3 6d 48 25 cb 96")); // vpternlogd zmm1,zmm2,zmm3,0x96 (3-way xor)
  assert.deepEqual(getD(getZ(m2.cpu, 1)), x.map((v, i) => (v ^ y[i] ^ z[i]) >>> 0));
  setZ(m2.cpu, 29, dwords(...x));
  setZ(m2.cpu, 30, dwords(...y));
  assertOk(run(m2, "62 01 0d 40 ef fd")); // vpxord zmm31,zmm30,zmm29
  assert.deepEqual(getD(getZ(m2.cpu, 31)), x.map((v, i) => (v ^ y[i]) >>> 0));
  setZ(m2.cpu, 4, dwords(...x));
  setZ(m2.cpu, 5, dwords(...y));
  assertOk(run(m2, "62 f1 dd 08 df dd")); // vpandnq xmm3,xmm4,xmm5
  assert.deepEqual(
    getD(getZ(m2.cpu, 3)),
    [...x.slice(0, 4).map((v, i) => (~v & y[i]) >>> 0), ...seq(12, () => 0)],
  );
  setZ(m2.cpu, 3, dwords(...z));
  setZ(m2.cpu, 1, ones());
  setK(m2.cpu, 7, 0b0110);
  assertOk(run(m2, "62 f1 ed 2f eb cb")); // vporq ymm1{k7},ymm2,ymm3 (merging)
  const or = getQ(getZ(m2.cpu, 1));
  const yq = getQ(dwords(...y)), zq = getQ(dwords(...z));
  assert.deepEqual(or.slice(0, 4), [
    0xeeeeeeeeeeeeeeeen,
    yq[1] | zq[1],
    yq[2] | zq[2],
    0xeeeeeeeeeeeeeeeen,
  ]);
  assert.deepEqual(or.slice(4), [0n, 0n, 0n, 0n]);
});

Deno.test("evex: vmovdqa32/64 and vmovdqu32/64 loads, stores, masks, alignment", () => {
  const m = m512();
  m.cpu.gpr[0] = DATA;
  for (let i = 0; i < 64; i++) m.poke(DATA + BigInt(i), 1, BigInt(i + 1));
  assertOk(run(m, "62 f1 7d 48 6f 08")); // vmovdqa32 zmm1,[rax]
  assert.deepEqual(Array.from(getZ(m.cpu, 1)), seq(64, (i) => i + 1));
  // Misaligned: #GP(0), nothing changed.
  m.cpu.rip = TestMachine.CODE;
  m.cpu.gpr[0] = DATA + 16n;
  assertException(run(m, "62 f1 7d 48 6f 08"), 13, 0);
  // vmovdqa64 [rax],ymm17 needs 32-byte alignment only.
  m.cpu.rip = TestMachine.CODE;
  m.cpu.gpr[0] = DATA + 0x60n;
  setZ(m.cpu, 17, dwords(...seq(16, (i) => 0x11111111 * (i + 1))));
  assertOk(run(m, "62 e1 fd 28 7f 08"));
  assert.equal(m.peek(DATA + 0x60n, 4), 0x11111111n);
  assert.equal(m.peek(DATA + 0x7cn, 4), 0x88888888n);
  assert.equal(m.peek(DATA + 0x80n, 4), 0n); // nothing past 32 bytes
  // vmovdqu64 [rax]{k1},zmm17: only the selected qwords are written.
  m.cpu.rip = TestMachine.CODE;
  m.cpu.gpr[0] = DATA + 0x103n;
  setK(m.cpu, 1, 0b10000001);
  assertOk(run(m, "62 e1 fe 49 7f 08"));
  assert.equal(m.peek(DATA + 0x103n, 8), 0x2222222211111111n);
  assert.equal(m.peek(DATA + 0x10bn, 8), 0n);
  assert.equal(m.peek(DATA + 0x13bn, 8), 0x11111110ffffffffn);
  // vmovdqu32 zmm18{k1},[rax]: merging load.
  setZ(m.cpu, 18, ones());
  m.cpu.rip = TestMachine.CODE;
  m.cpu.gpr[0] = DATA;
  setK(m.cpu, 1, 0x8001);
  assertOk(run(m, "62 e1 7e 49 6f 10"));
  const got = getZ(m.cpu, 18);
  assert.deepEqual(Array.from(got.subarray(0, 8)), [1, 2, 3, 4, 0xee, 0xee, 0xee, 0xee]);
  assert.deepEqual(Array.from(got.subarray(60)), [61, 62, 63, 64]);
  // vmovdqu32 zmm1,zmm2 and vmovdqu64 xmm1,[rax+0x10] (disp8*16).
  setZ(m.cpu, 2, dwords(...seq(16, (i) => i)));
  m.cpu.rip = TestMachine.CODE;
  assertOk(run(m, "62 f1 7e 48 6f ca"));
  assert.deepEqual(getD(getZ(m.cpu, 1)), seq(16, (i) => i));
  m.cpu.rip = TestMachine.CODE;
  assertOk(run(m, "62 f1 fe 08 6f 48 01"));
  assert.deepEqual(Array.from(getZ(m.cpu, 1)), [...seq(16, (i) => i + 17), ...seq(48, () => 0)]);
});

Deno.test("evex: masked-off elements are not accessed (memory fault suppression)", () => {
  // The page after the data (0x610000) is unmapped: a 64-byte access at 0x60fff0 crosses into it.
  const m = m512();
  m.cpu.gpr[0] = DATA + 0xfff0n;
  setK(m.cpu, 1, 0x000f); // the first 16 bytes only
  m.poke(DATA + 0xfff0n, 4, 0xcafef00dn);
  assertOk(run(m, "62 e1 7e 49 6f 10")); // vmovdqu32 zmm18{k1},[rax]
  assert.equal(getD(getZ(m.cpu, 18))[0], 0xcafef00d);
  m.cpu.rip = TestMachine.CODE;
  setK(m.cpu, 1, 0x0010); // the first element in the unmapped page
  assertException(run(m, "62 e1 7e 49 6f 10"), 14, undefined, DATA + 0x10000n);
  // Without a mask the whole operand is accessed.
  m.cpu.rip = TestMachine.CODE;
  assertException(run(m, "62 f1 7e 48 6f 08"), 14);
  // A masked store: the same.
  m.cpu.rip = TestMachine.CODE;
  setK(m.cpu, 1, 0x03);
  assertOk(run(m, "62 e1 fe 49 7f 08")); // vmovdqu64 [rax]{k1},zmm17
});

Deno.test("evex: vpshufd and vpbroadcastd/q", () => {
  const m = m512();
  setZ(m.cpu, 25, dwords(...seq(16, (i) => i)));
  assertOk(run(m, "62 01 7d 48 70 c1 1b")); // vpshufd zmm24,zmm25,0x1b
  assert.deepEqual(getD(getZ(m.cpu, 24)), seq(16, (i) => (i & ~3) + 3 - (i & 3)));
  m.cpu.rip = TestMachine.CODE;
  m.cpu.gpr[0] = DATA;
  m.poke(DATA + 0x40n, 4, 0x12345678n);
  setZ(m.cpu, 30, ones());
  setK(m.cpu, 3, 0b10100101);
  assertOk(run(m, "62 62 7d 2b 58 70 10")); // vpbroadcastd ymm30{k3},DWORD PTR [rax+0x40]
  assert.deepEqual(getD(getZ(m.cpu, 30)), [
    ...seq(8, (i) => ((0xa5 >> i) & 1) ? 0x12345678 : 0xeeeeeeee),
    ...seq(8, () => 0),
  ]);
  m.cpu.rip = TestMachine.CODE;
  setZ(m.cpu, 2, dwords(7, 8, 9));
  assertOk(run(m, "62 f2 7d 48 58 ca")); // vpbroadcastd zmm1,xmm2
  assert.deepEqual(getD(getZ(m.cpu, 1)), seq(16, () => 7));
});

Deno.test("evex: #UD without OSXSAVE, AVX-512 state in XCR0, AVX512F/VL; #NM with CR0.TS", () => {
  const code = "62 72 4d 28 76 c7";
  let m = m512();
  m.cpu.xcr0 = 7n;
  assertException(run(m, code), 6);
  m = m512();
  m.cpu.cr4 &= ~(1n << 18n);
  assertException(run(m, code), 6);
  m = machine(); // CPUID without AVX-512
  m.cpu.xcr0 = 0xe7n;
  assertException(run(m, code), 6);
  m = m512();
  const l7 = m.cpu.cpuidTable.get("7.0")!;
  m.cpu.cpuidTable.set("7.0", [l7[0], l7[1] & 0x7fffffff, l7[2], l7[3]]); // no AVX512VL
  assertException(run(m, code), 6);
  m.cpu.rip = TestMachine.CODE;
  assertOk(run(m, "62 f1 6d 48 fe cb")); // 512 bits need only AVX512F
  m = m512();
  m.cpu.cr0 |= 8n; // TS
  assertException(run(m, code), 7);
});

Deno.test("evex: #UD for reserved fields, wrong W, EVEX.b and {z} where not allowed", () => {
  const cases: [string, string][] = [
    ["62 f1 6d 68 fe cb", "EVEX.L'L = 11b"],
    ["62 f1 6d 58 fe cb", "EVEX.b with register operands"],
    ["62 f1 ed 48 fe cb", "vpaddd with EVEX.W1"],
    ["62 f1 6d 48 d4 cb", "vpaddq with EVEX.W0"],
    ["62 f1 fd 48 70 c1 1b", "vpshufd with EVEX.W1"],
    ["62 f1 7d 58 6f 08", "vmovdqa32 with EVEX.b"],
    ["62 e1 fe c9 7f 08", "vmovdqu64 store with {z}"],
    ["62 f9 6d 48 fe cb", "EVEX P0 bit 3"],
  ];
  for (const [code, why] of cases) {
    const m = m512();
    m.cpu.gpr[0] = DATA;
    assertException(run(m, code), 6, undefined, undefined);
    void why;
  }
});

Deno.test("evex: other EVEX instructions are reported unsupported, nothing changed", () => {
  const m = m512();
  const r = run(m, "62 f2 6d 48 77 cb"); // vpermi2ps zmm1,zmm2,zmm3
  assert.equal(r.kind, "unsupported");
  assert.match(r.kind === "unsupported" ? r.message : "", /EVEX.*vpermi2ps/);
  assert.equal(m.cpu.rip, TestMachine.CODE);
  assert.equal(m.cpu.dirty, 0);
});

Deno.test("evex: the decoder's disp8*N (SDM Vol. 2, 2.7.5) for these forms", () => {
  // [bytes, disp]: full vector (N = VL/8), broadcast (N = element size), Tuple1 Scalar (N = 4).
  const cases: [string, bigint][] = [
    ["62 f2 ed 4a 76 48 01", 64n], // vpermi2q zmm1{k2},zmm2,[rax+0x40]
    ["62 f2 6d 58 76 48 10", 64n], // vpermi2d zmm1,zmm2,DWORD BCST [rax+0x40]
    ["62 f2 ed 08 7e 48 01", 16n], // vpermt2q xmm1,xmm2,[rax+0x10]
    ["62 f1 6d 48 fe 48 01", 64n], // vpaddd zmm1,zmm2,[rax+0x40]
    ["62 f1 ed d9 d4 48 01", 8n], // vpaddq zmm1{k1}{z},zmm2,QWORD BCST [rax+0x8]
    ["62 f3 ed 39 25 48 01 e8", 8n], // vpternlogq ymm1{k1},ymm2,QWORD BCST [rax+0x8],0xe8
    ["62 f1 7e c9 6f 48 01", 64n], // vmovdqu32 zmm1{k1}{z},[rax+0x40]
    ["62 f1 7d 28 6f 48 01", 32n], // vmovdqa32 ymm1,[rax+0x20]
    ["62 f1 fd 48 7f 48 ff", -64n], // vmovdqa64 [rax-0x40],zmm1
    ["62 f1 7d 48 70 48 01 1b", 64n], // vpshufd zmm1,[rax+0x40],0x1b
    ["62 f1 7d 39 70 48 01 1b", 4n], // vpshufd ymm1{k1},DWORD BCST [rax+0x4],0x1b
    ["62 f2 7d 48 58 48 01", 4n], // vpbroadcastd zmm1,DWORD PTR [rax+0x4]
    ["62 f2 7d 48 58 48 10", 64n], // vpbroadcastd zmm1,DWORD PTR [rax+0x40]
    ["62 f2 6d 58 14 48 ff", -4n], // vprorvd zmm1,zmm2,DWORD BCST [rax-0x4]
  ];
  for (const [bytes, disp] of cases) {
    const d = decode(hex(bytes), 64, 0n);
    const mem = d.operands.find((o) => o.kind === "mem") as MemOperand;
    assert.equal(mem.disp, disp, `${bytes}: ${d.text}`);
  }
});

function decodes(bytes: string): boolean {
  try {
    decode(hex(bytes), 64, 0n);
    return true;
  } catch {
    return false;
  }
}

// The decoder rejects these today (EVEX 0F 72 /1 with memory, EVEX.W1 0F38 59): they run
// here once it decodes them.
Deno.test("evex: vprold with a memory operand, vpbroadcastq", {
  ignore: !decodes("62 f1 75 48 72 48 02 03") || !decodes("62 f2 fd a9 59 48 01"),
}, () => {
  const m = m512();
  m.cpu.gpr[0] = DATA;
  for (let i = 0; i < 16; i++) m.poke(DATA + 0x80n + BigInt(4 * i), 4, BigInt(0x80000000 + i));
  assertOk(run(m, "62 f1 75 48 72 48 02 03")); // vprold zmm1,ZMMWORD PTR [rax+0x80],0x3
  assert.deepEqual(
    getD(getZ(m.cpu, 1)),
    seq(16, (i) => (((0x80000000 + i) << 3) | 4) >>> 0),
  );
  m.cpu.rip = TestMachine.CODE;
  m.poke(DATA + 8n, 8, 0x1122334455667788n);
  setK(m.cpu, 1, 0b0101);
  assertOk(run(m, "62 f2 fd a9 59 48 01")); // vpbroadcastq ymm1{k1}{z},QWORD PTR [rax+0x8]
  assert.deepEqual(getQ(getZ(m.cpu, 1)), [
    0x1122334455667788n,
    0n,
    0x1122334455667788n,
    0n,
    0n,
    0n,
    0n,
    0n,
  ]);
});

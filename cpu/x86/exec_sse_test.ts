// SSE/SSE2/AVX data movement and integer SIMD, MMX moves, MXCSR and x87 control.
import assert from "node:assert/strict";
import { assertException, assertFaultNoChange, assertOk, machine, run } from "./_exec_test_util.ts";
import { leRead, leWrite, TestMachine } from "./testing.ts";

const DATA = TestMachine.DATA;
const CODE = TestMachine.CODE;
const X = 0x0f0e0d0c0b0a09080706050403020100n; // bytes 0..15

function again(m: TestMachine, code: string) {
  m.cpu.rip = CODE;
  return run(m, code);
}

function ymmHi(m: TestMachine, i: number): bigint {
  return leRead(m.cpu.xsaveArea, 576 + 16 * i, 16);
}

Deno.test("movd/movq between XMM and general registers zero the rest of the XMM register", () => {
  const m = machine();
  const c = m.cpu;
  c.setXmm(0, X);
  c.gpr[0] = 0xffff_ffff_8765_4321n;
  assertOk(run(m, "66 0f 6e c0")); // movd xmm0,eax
  assert.equal(c.xmm(0), 0x8765_4321n);
  assertOk(again(m, "66 48 0f 6e c0")); // movq xmm0,rax
  assert.equal(c.xmm(0), 0xffff_ffff_8765_4321n);
  c.setXmm(1, X);
  assertOk(again(m, "66 0f 7e c8")); // movd eax,xmm1: zero-extends into rax
  assert.equal(c.gpr[0], 0x03020100n);
  assertOk(again(m, "66 48 0f 7e cb")); // movq rbx,xmm1
  assert.equal(c.gpr[3], 0x0706050403020100n);
  assert.equal(c.xsaveArea[512] & 2, 2, "XSTATE_BV[1] set");
});

Deno.test("movq xmm,xmm/m64 and movq m64,xmm", () => {
  const m = machine();
  const c = m.cpu;
  c.setXmm(1, X);
  c.setXmm(0, -1n & ((1n << 128n) - 1n));
  assertOk(run(m, "f3 0f 7e c1")); // movq xmm0,xmm1
  assert.equal(c.xmm(0), 0x0706050403020100n);
  c.setXmm(2, -1n & ((1n << 128n) - 1n));
  assertOk(again(m, "66 0f d6 ca")); // movq xmm2,xmm1
  assert.equal(c.xmm(2), 0x0706050403020100n);
  c.gpr[7] = DATA;
  assertOk(again(m, "66 0f d6 0f")); // movq QWORD PTR [rdi],xmm1
  assert.equal(m.peek(DATA, 8), 0x0706050403020100n);
  m.poke(DATA + 8n, 8, 0xaabbn);
  assertOk(again(m, "f3 0f 7e 5f 08")); // movq xmm3,QWORD PTR [rdi+0x8]
  assert.equal(c.xmm(3), 0xaabbn);
});

Deno.test("movdqa needs 16-byte alignment (#GP(0)); movdqu crosses pages", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[7] = DATA + 8n;
  assertFaultNoChange(m, "66 0f 6f 07", 13, 0); // movdqa xmm0,XMMWORD PTR [rdi]
  assertFaultNoChange(m, "66 0f 7f 07", 13, 0); // movdqa XMMWORD PTR [rdi],xmm0
  assertFaultNoChange(m, "0f 29 07", 13, 0); // movaps XMMWORD PTR [rdi],xmm0
  assertFaultNoChange(m, "66 0f ef 07", 13, 0); // pxor xmm0,XMMWORD PTR [rdi]: legacy SSE m128 is aligned
  c.setXmm(4, X);
  c.gpr[7] = DATA + 0xff8n;
  assertOk(run(m, "f3 0f 7f 27")); // movdqu XMMWORD PTR [rdi],xmm4
  assert.equal(m.peek(DATA + 0xff8n, 8), 0x0706050403020100n);
  assert.equal(m.peek(DATA + 0x1000n, 8), 0x0f0e0d0c0b0a0908n);
  assertOk(again(m, "0f 10 2f")); // movups xmm5,XMMWORD PTR [rdi]
  assert.equal(c.xmm(5), X);
  c.gpr[7] = DATA + 0x20n;
  assertOk(again(m, "66 0f e7 2f")); // movntdq XMMWORD PTR [rdi],xmm5
  assert.equal(m.peek(DATA + 0x20n, 16), X);
});

Deno.test("movss/movsd: loads zero the rest, register moves merge", () => {
  const m = machine();
  const c = m.cpu;
  c.setXmm(0, X);
  c.setXmm(1, 0xffff_ffff_ffff_ffff_ffff_ffff_ffff_ffffn);
  assertOk(run(m, "f3 0f 10 c8")); // movss xmm1,xmm0
  assert.equal(c.xmm(1), 0xffff_ffff_ffff_ffff_ffff_ffff_0302_0100n);
  assertOk(again(m, "f2 0f 10 c8")); // movsd xmm1,xmm0
  assert.equal(c.xmm(1), 0xffff_ffff_ffff_ffff_0706_0504_0302_0100n);
  m.poke(DATA, 8, 0x1122_3344_5566_7788n);
  c.gpr[7] = DATA;
  assertOk(again(m, "f3 0f 10 0f")); // movss xmm1,DWORD PTR [rdi]
  assert.equal(c.xmm(1), 0x5566_7788n);
  assertOk(again(m, "f2 0f 11 07")); // movsd QWORD PTR [rdi],xmm0
  assert.equal(m.peek(DATA, 8), 0x0706_0504_0302_0100n);
});

Deno.test("movlps/movhps/movhlps/movlhps", () => {
  const m = machine();
  const c = m.cpu;
  c.setXmm(0, X);
  c.gpr[7] = DATA;
  m.poke(DATA, 8, 0xaaaan);
  assertOk(run(m, "0f 16 07")); // movhps xmm0,QWORD PTR [rdi]
  assert.equal(c.xmm(0), (0xaaaan << 64n) | 0x0706050403020100n);
  assertOk(again(m, "0f 13 47 08")); // movlps QWORD PTR [rdi+0x8],xmm0
  assert.equal(m.peek(DATA + 8n, 8), 0x0706050403020100n);
  c.setXmm(1, X);
  assertOk(again(m, "0f 12 c1")); // movhlps xmm0,xmm1
  assert.equal(c.xmm(0), (0xaaaan << 64n) | 0x0f0e0d0c0b0a0908n);
});

Deno.test("integer SIMD: logic, add/sub, compare, shuffle, unpack, shifts, pmovmskb", () => {
  const m = machine();
  const c = m.cpu;
  const ones = (1n << 128n) - 1n;
  const cases: [string, bigint, bigint, bigint][] = [
    ["66 0f ef c1", X, ones, X ^ ones], // pxor xmm0,xmm1
    ["66 0f eb c1", X, 0x80n, X | 0x80n], // por
    ["66 0f db c1", X, 0xffn << 8n, 0x0100n], // pand
    ["66 0f df c1", 0xffn, X, X & ~0xffn], // pandn
    ["0f 57 c1", X, X, 0n], // xorps
    ["66 0f fc c1", 0xffn, 0x01n, 0n], // paddb: wraps per byte
    ["66 0f fd c1", 0xffffn, 0x0002n, 0x0001n], // paddw
    ["66 0f fe c1", 0xffff_ffffn, 1n, 0n], // paddd
    ["66 0f d4 c1", (1n << 64n) - 1n, 1n, 0n], // paddq: no carry into the next lane
    ["66 0f f8 c1", 0n, 1n, 0xffn], // psubb
    ["66 0f fb c1", 0n, 1n, (1n << 64n) - 1n], // psubq
    ["66 0f 74 c1", 0x0102n, 0x0302n, ones ^ 0xff00n], // pcmpeqb (the other bytes are 0 = 0)
    ["66 0f 76 c1", 5n, 5n, ones], // pcmpeqd
    ["66 0f 60 c1", 0x0201n, 0x0b0an, 0x0b020a01n], // punpcklbw
    ["66 0f 6c c1", 1n, 2n, (2n << 64n) | 1n], // punpcklqdq
    ["66 0f 6d c1", 1n << 64n, 2n << 64n, (2n << 64n) | 1n], // punpckhqdq
  ];
  for (const [code, a, b, want] of cases) {
    c.setXmm(0, a).setXmm(1, b);
    assertOk(again(m, code));
    assert.equal(c.xmm(0), want, code);
  }
  c.setXmm(1, X);
  assertOk(again(m, "66 0f 70 c1 1b")); // pshufd xmm0,xmm1,0x1b: reverse the dwords
  assert.equal(c.xmm(0), 0x03020100_07060504_0b0a0908_0f0e0d0cn);
  c.setXmm(0, X);
  assertOk(again(m, "66 0f 73 f8 04")); // pslldq xmm0,0x4
  assert.equal(c.xmm(0), (X << 32n) & ones);
  c.setXmm(0, X);
  assertOk(again(m, "66 0f 73 d8 10")); // psrldq xmm0,0x10: all gone
  assert.equal(c.xmm(0), 0n);
  c.setXmm(0, X);
  assertOk(again(m, "66 0f 73 f0 08")); // psllq xmm0,0x8: per 64-bit lane
  assert.equal(c.xmm(0), 0x0e0d0c0b0a090800_0605040302010000n);
  c.setXmm(0, X).setXmm(1, 64n);
  assertOk(again(m, "66 0f d3 c1")); // psrlq xmm0,xmm1: count 64 clears
  assert.equal(c.xmm(0), 0n);
  c.setXmm(1, 0x8000_0000_0000_0000_0000_0000_0000_0080n);
  assertOk(again(m, "66 0f d7 c1")); // pmovmskb eax,xmm1
  assert.equal(c.gpr[0], 0x8001n);
});

Deno.test("SSE exceptions: #UD with CR0.EM or without CR4.OSFXSR, #NM with CR0.TS", () => {
  const m = machine();
  m.cpu.cr0 |= 0x4n; // EM
  assertFaultNoChange(m, "66 0f ef c0", 6);
  m.cpu.cr0 &= ~0x4n;
  m.cpu.cr4 &= ~0x200n;
  assertFaultNoChange(m, "66 0f ef c0", 6);
  m.cpu.cr4 |= 0x200n;
  m.cpu.cr0 |= 0x8n; // TS
  assertFaultNoChange(m, "66 0f ef c0", 7);
  assertFaultNoChange(m, "0f ae 10", 7); // ldmxcsr
});

Deno.test("AVX: VEX.256 moves and logic; VEX.128 zeroes the upper half; vzeroupper", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[7] = DATA;
  for (let k = 0n; k < 32n; k++) m.poke(DATA + k, 1, k);
  assertOk(run(m, "c5 fe 6f 07")); // vmovdqu ymm0,YMMWORD PTR [rdi]
  assert.equal(c.xmm(0), X);
  assert.equal(ymmHi(m, 0), X + 0x10101010101010101010101010101010n);
  assert.equal(c.xsaveArea[512] & 4, 4, "XSTATE_BV[2] set");
  assertOk(again(m, "c5 fd ef c8")); // vpxor ymm1,ymm0,ymm0
  assert.equal(c.xmm(1), 0n);
  assertOk(again(m, "c5 f9 ef d0")); // vpxor xmm2,xmm0,xmm0 ... into xmm2: upper cleared
  assertOk(again(m, "c5 f9 6f c8")); // vmovdqa xmm1,xmm0: ymm1 upper cleared
  assert.equal(ymmHi(m, 1), 0n);
  assert.notEqual(ymmHi(m, 0), 0n);
  assertOk(again(m, "66 0f ef c0")); // legacy pxor xmm0,xmm0 keeps ymm0's upper half
  assert.notEqual(ymmHi(m, 0), 0n);
  assertOk(again(m, "c5 f8 77")); // vzeroupper
  assert.equal(ymmHi(m, 0), 0n);
  c.gpr[7] = DATA + 0x10n;
  assertFaultNoChange(m, "c5 fd 6f 07", 13, 0); // vmovdqa ymm0,[rdi]: 32-byte alignment
  c.xcr0 = 3n;
  assertFaultNoChange(m, "c5 fe 6f 07", 6); // AVX not enabled in XCR0
});

Deno.test("MMX: movq mm0,m64 sets TOP = 0 and all tags valid; emms empties them", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[7] = DATA;
  m.poke(DATA, 8, 0x1122334455667788n);
  c.xsaveArea[3] = 0x38; // TOP = 7
  assertOk(run(m, "0f 6f 07")); // movq mm0,QWORD PTR [rdi]
  assert.equal(leRead(c.xsaveArea, 32, 10), 0xffff1122334455667788n);
  assert.equal(c.xsaveArea[4], 0xff);
  assert.equal(c.xsaveArea[3] & 0x38, 0);
  assertOk(again(m, "0f 7e c0")); // movd eax,mm0
  assert.equal(c.gpr[0], 0x55667788n);
  assertOk(again(m, "0f 77")); // emms
  assert.equal(c.xsaveArea[4], 0);
  c.xsaveArea[2] = 0x81; // pending unmasked x87 exception: MMX instructions raise #MF
  assertFaultNoChange(m, "0f 6f 07", 16);
});

Deno.test("ldmxcsr/stmxcsr: reserved bits are #GP(0)", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[7] = DATA;
  m.poke(DATA, 4, 0x9fc0n);
  assertOk(run(m, "0f ae 17")); // ldmxcsr DWORD PTR [rdi]
  assert.equal(leRead(c.xsaveArea, 24, 4), 0x9fc0n);
  assertOk(again(m, "0f ae 5f 04")); // stmxcsr DWORD PTR [rdi+0x4]
  assert.equal(m.peek(DATA + 4n, 4), 0x9fc0n);
  m.poke(DATA, 4, 0x10000n); // bit 16 is reserved (MXCSR_MASK 0xffff)
  assertFaultNoChange(m, "0f ae 17", 13, 0);
  m.poke(DATA, 4, 0x1f80n);
  assertOk(again(m, "c5 f8 ae 17")); // vldmxcsr DWORD PTR [rdi]
  assert.equal(leRead(c.xsaveArea, 24, 4), 0x1f80n);
});

Deno.test("x87 control: fninit, fnstcw/fldcw, fnstsw, fnclex, finit waits", () => {
  const m = machine();
  const c = m.cpu;
  const x = c.xsaveArea;
  leWrite(x, 0, 2, 0x1234n);
  leWrite(x, 2, 2, 0x3800n);
  x[4] = 0xff;
  assertOk(run(m, "db e3")); // fninit
  assert.equal(leRead(x, 0, 2), 0x37fn);
  assert.equal(leRead(x, 2, 2), 0n);
  assert.equal(x[4], 0);
  c.gpr[7] = DATA;
  m.poke(DATA, 2, 0x027en); // unmask IM
  leWrite(x, 2, 2, 0x0001n); // IE pending
  assertOk(again(m, "d9 2f")); // fldcw WORD PTR [rdi]
  assert.equal(leRead(x, 2, 2), 0x8081n, "ES and B set: IE is now unmasked");
  assertOk(again(m, "df e0")); // fnstsw ax
  assert.equal(c.gpr[0] & 0xffffn, 0x8081n);
  assertException(again(m, "9b df e0"), 16); // fstsw ax waits first: #MF
  assertOk(again(m, "db e2")); // fnclex
  assert.equal(leRead(x, 2, 2), 0n);
  assertOk(again(m, "d9 7f 02")); // fnstcw WORD PTR [rdi+0x2]
  assert.equal(m.peek(DATA + 2n, 2), 0x027en);
  c.cr0 |= 0x4n; // EM: x87 instructions raise #NM
  assertFaultNoChange(m, "db e3", 7);
});

Deno.test("fldcw keeps the defined FCW bits only, bit 6 reading as 1 (both vendors)", () => {
  // SDM Vol. 1, 8.1.5: bits 6 and 13-15 reserved (7 too since the 287). Measured on AMD Zen;
  // Bochs models Intel the same.
  for (const vendor of ["amd", "intel"] as const) {
    for (
      const [mem, fcw] of [[0xffe3n, 0x1f63n], [0xffffn, 0x1f7fn], [0n, 0x40n], [0x80n, 0x40n]]
    ) {
      const m = machine({ vendor });
      m.cpu.gpr[7] = DATA;
      m.poke(DATA, 2, mem);
      assertOk(run(m, "d9 2f")); // fldcw WORD PTR [rdi]
      assert.equal(leRead(m.cpu.xsaveArea, 0, 2), fcw, `${vendor}: fldcw 0x${mem.toString(16)}`);
      assertOk(again(m, "d9 7f 02")); // fnstcw WORD PTR [rdi+0x2]
      assert.equal(m.peek(DATA + 2n, 2), fcw);
    }
  }
});

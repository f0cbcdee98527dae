// FXSAVE/FXRSTOR and the XSAVE family: layouts, round trips in both formats,
// header rules and faults.
import assert from "node:assert/strict";
import { assertFaultNoChange, assertOk, machine, run } from "./_exec_test_util.ts";
import { leRead, leWrite, TestMachine } from "./testing.ts";

const DATA = TestMachine.DATA;
const CODE = TestMachine.CODE;
const AREA = DATA + 0x1000n; // 64-byte aligned, 4 KiB of room before the unmapped page... plenty

/** Fills the live x87/SSE/AVX state with recognizable values. */
function fillState(m: TestMachine): void {
  const x = m.cpu.xsaveArea;
  leWrite(x, 0, 2, 0x027fn); // FCW
  leWrite(x, 2, 2, 0x3820n); // FSW: TOP 7, PE
  x[4] = 0x80; // FTW: ST7 valid
  leWrite(x, 6, 2, 0x0123n); // FOP
  leWrite(x, 8, 8, 0xffff_8000_1234_5678n); // FIP
  leWrite(x, 16, 8, 0xffff_8000_8765_4321n); // FDP
  leWrite(x, 24, 4, 0x1fa0n); // MXCSR
  for (let i = 0; i < 8; i++) leWrite(x, 32 + 16 * i, 10, 0x4000_8000_0000_0000_0000n + BigInt(i));
  for (let i = 0; i < 16; i++) leWrite(x, 160 + 16 * i, 16, 0x1111_0000n * BigInt(i + 1));
  for (let i = 0; i < 16; i++) leWrite(x, 576 + 16 * i, 16, 0x2222_0000n * BigInt(i + 1)); // YMM_Hi128
  x[512] = 7; // XSTATE_BV: x87, SSE, AVX in use
}

function again(m: TestMachine, code: string) {
  m.cpu.rip = CODE;
  return run(m, code);
}

Deno.test("fxsave64: the 64-bit layout; bytes 416-511 untouched", () => {
  const m = machine();
  fillState(m);
  m.cpu.gpr[7] = AREA;
  m.mem.bytes.fill(0xee, m.phys(AREA), m.phys(AREA) + 512);
  assertOk(run(m, "48 0f ae 07")); // fxsave64 [rdi]
  const b = m.mem.bytes.subarray(m.phys(AREA));
  assert.equal(leRead(b, 0, 2), 0x027fn);
  assert.equal(leRead(b, 2, 2), 0x3820n);
  assert.equal(b[4], 0x80);
  assert.equal(leRead(b, 6, 2), 0x0123n);
  assert.equal(leRead(b, 8, 8), 0xffff_8000_1234_5678n);
  assert.equal(leRead(b, 16, 8), 0xffff_8000_8765_4321n);
  assert.equal(leRead(b, 24, 4), 0x1fa0n);
  assert.equal(leRead(b, 28, 4), 0xffffn); // MXCSR_MASK
  assert.equal(leRead(b, 32 + 16 * 3, 10), 0x4000_8000_0000_0000_0003n);
  assert.equal(leRead(b, 160 + 16 * 15, 16), 0x1111_0000n * 16n);
  assert.ok(b.subarray(416, 512).every((v) => v === 0xee));
});

Deno.test("fxsave (32-bit format): FIP/FDP as 32-bit offsets, FCS/FDS 0", () => {
  const m = machine();
  fillState(m);
  m.cpu.gpr[7] = AREA;
  assertOk(run(m, "0f ae 07")); // fxsave [rdi]
  const b = m.mem.bytes.subarray(m.phys(AREA));
  assert.equal(leRead(b, 8, 4), 0x1234_5678n);
  assert.equal(leRead(b, 12, 4), 0n);
  assert.equal(leRead(b, 16, 4), 0x8765_4321n);
  assert.equal(leRead(b, 20, 4), 0n);
});

Deno.test("fxrstor restores what fxsave saved; bad MXCSR is #GP(0); alignment and #NM", () => {
  const m = machine();
  fillState(m);
  const saved = m.cpu.xsaveArea.slice(0, 416);
  m.cpu.gpr[7] = AREA;
  assertOk(run(m, "48 0f ae 07")); // fxsave64 [rdi]
  m.cpu.xsaveArea.fill(0, 0, 28); // everything but MXCSR_MASK, which is not a register
  m.cpu.xsaveArea.fill(0, 32, 416);
  assertOk(again(m, "48 0f ae 0f")); // fxrstor64 [rdi]
  assert.deepEqual(m.cpu.xsaveArea.slice(0, 416), saved);
  m.poke(AREA + 24n, 4, 0x10000n);
  assertFaultNoChange(m, "48 0f ae 0f", 13, 0);
  m.cpu.gpr[7] = AREA + 8n;
  assertFaultNoChange(m, "48 0f ae 07", 13, 0);
  m.cpu.gpr[7] = AREA;
  m.cpu.cr0 |= 0x8n;
  assertFaultNoChange(m, "48 0f ae 07", 7);
});

Deno.test("xsave (standard): RFBM = XCR0 & EDX:EAX; XSTATE_BV bits outside RFBM are kept", () => {
  const m = machine();
  fillState(m);
  m.cpu.xsaveArea[512] = 3; // AVX not in use
  const c = m.cpu;
  c.gpr[7] = AREA;
  c.gpr[2] = 0xffff_ffffn;
  c.gpr[0] = 0xffff_ffffn;
  m.poke(AREA + 512n, 8, 0x4n); // a stale XSTATE_BV with AVX
  assertOk(run(m, "48 0f ae 27")); // xsave64 [rdi]
  const b = m.mem.bytes.subarray(m.phys(AREA));
  assert.equal(leRead(b, 512, 8), 3n, "XSTATE_BV = XINUSE & RFBM");
  assert.equal(leRead(b, 576, 16), 0x2222_0000n, "the AVX component is written anyway");
  assert.equal(leRead(b, 160, 16), 0x1111_0000n);
  // RFBM = SSE only: the x87 part is left alone, MXCSR written, XSTATE_BV[0] kept.
  m.mem.bytes.fill(0xcc, m.phys(AREA), m.phys(AREA) + 576);
  m.poke(AREA + 512n, 8, 0x5n);
  for (let k = 520n; k < 576n; k += 8n) m.poke(AREA + k, 8, 0n);
  c.gpr[2] = 0n;
  c.gpr[0] = 2n;
  assertOk(again(m, "0f ae 27")); // xsave [rdi]
  assert.equal(b[0], 0xcc);
  assert.equal(leRead(b, 24, 4), 0x1fa0n);
  assert.equal(leRead(b, 512, 8), 0x7n, "bit 1 from XINUSE, bits 0 and 2 as they were");
});

Deno.test("xrstor (standard) round trip; components with XSTATE_BV clear are initialized", () => {
  const m = machine();
  fillState(m);
  const c = m.cpu;
  const saved = c.xsaveArea.slice(0, 832);
  c.gpr[7] = AREA;
  c.gpr[2] = 0n;
  c.gpr[0] = 7n;
  assertOk(run(m, "48 0f ae 27")); // xsave64 [rdi]
  c.xsaveArea.fill(0x5a, 0, 28); // scramble the registers (not MXCSR_MASK and the header)
  c.xsaveArea.fill(0x5a, 32, 512);
  c.xsaveArea.fill(0x5a, 576, 832);
  c.dirty = 0;
  assertOk(again(m, "48 0f ae 2f")); // xrstor64 [rdi]
  assert.deepEqual(c.xsaveArea.slice(0, 416), saved.slice(0, 416));
  assert.deepEqual(c.xsaveArea.slice(512, 832), saved.slice(512, 832));
  assert.ok(c.dirty !== 0);
  // XSTATE_BV without x87 and AVX: those are initialized; MXCSR still comes from memory.
  m.poke(AREA + 512n, 8, 2n);
  m.poke(AREA + 24n, 4, 0x1f00n);
  assertOk(again(m, "48 0f ae 2f"));
  const x = c.xsaveArea;
  assert.equal(leRead(x, 0, 2), 0x37fn);
  assert.equal(leRead(x, 8, 8), 0n);
  assert.equal(leRead(x, 576, 16), 0n);
  assert.equal(leRead(x, 24, 4), 0x1f00n);
  assert.equal(x[512] & 7, 2, "XINUSE follows XSTATE_BV");
});

Deno.test("xrstor header rules: #GP(0) and nothing changed", () => {
  const m = machine();
  fillState(m);
  const c = m.cpu;
  c.gpr[7] = AREA;
  c.gpr[0] = 7n;
  assertOk(run(m, "48 0f ae 27"));
  c.rip = CODE;
  const bad: [bigint, number, bigint][] = [
    [512n, 8, 0x100n | 7n], // XSTATE_BV bit not in XCR0
    [520n, 8, 1n], // XCOMP_BV non-zero in the standard form
    [528n, 8, 1n], // bytes 23:16 of the header
  ];
  for (const [off, size, v] of bad) {
    const old = m.peek(AREA + off, size);
    m.poke(AREA + off, size, v);
    assertFaultNoChange(m, "48 0f ae 2f", 13, 0);
    m.poke(AREA + off, size, old);
  }
  m.poke(AREA + 24n, 4, 0xffff_0000n); // MXCSR reserved bits
  assertFaultNoChange(m, "48 0f ae 2f", 13, 0);
  c.gpr[7] = AREA + 16n;
  assertFaultNoChange(m, "48 0f ae 2f", 13, 0); // not 64-byte aligned
  c.cr4 &= ~(1n << 18n);
  c.gpr[7] = AREA;
  assertFaultNoChange(m, "48 0f ae 2f", 6); // CR4.OSXSAVE = 0
});

Deno.test("xsavec: compacted layout, only components in use, XCOMP_BV = RFBM | bit 63", () => {
  const m = machine();
  fillState(m);
  const c = m.cpu;
  c.xcr0 = 0x207n; // x87, SSE, AVX, PKRU
  c.cr4 |= 1n << 22n; // PKE
  leWrite(c.xsaveArea, 2688, 4, 0x55n); // PKRU
  c.xsaveArea[513] = 2; // XSTATE_BV[9]
  c.xsaveArea[512] = 3; // AVX not in use
  c.gpr[7] = AREA;
  c.gpr[2] = 0xffff_ffffn;
  c.gpr[0] = 0xffff_ffffn;
  m.mem.bytes.fill(0xcc, m.phys(AREA), m.phys(AREA) + 1024);
  assertOk(run(m, "48 0f c7 27")); // xsavec64 [rdi]
  const b = m.mem.bytes.subarray(m.phys(AREA));
  assert.equal(leRead(b, 512, 8), 0x203n);
  assert.equal(leRead(b, 520, 8), (1n << 63n) | 0x207n);
  assert.equal(leRead(b, 528, 8), 0xccccccccccccccccn, "the rest of the header is not written");
  assert.equal(b[576], 0xcc, "AVX (not in use) not written, its space kept");
  assert.equal(leRead(b, 576 + 256, 4), 0x55n, "PKRU after AVX's 256 bytes");
  // Round trip through the compacted form.
  c.xsaveArea.fill(0, 0, 512);
  leWrite(c.xsaveArea, 2688, 4, 0n);
  for (let k = 528n; k < 576n; k += 8n) m.poke(AREA + k, 8, 0n);
  assertOk(again(m, "48 0f ae 2f")); // xrstor64 [rdi]
  assert.equal(leRead(c.xsaveArea, 2688, 4), 0x55n);
  assert.equal(leRead(c.xsaveArea, 160, 16), 0x1111_0000n);
  assert.equal(leRead(c.xsaveArea, 0, 2), 0x027fn);
  assert.equal(leRead(c.xsaveArea, 576, 16), 0n, "AVX initialized");
});

Deno.test("xrstor (compacted): header rules and MXCSR initialized without XSTATE_BV[1]", () => {
  const m = machine();
  fillState(m);
  const c = m.cpu;
  c.gpr[7] = AREA;
  c.gpr[0] = 7n;
  for (let k = 512n; k < 576n; k += 8n) m.poke(AREA + k, 8, 0n);
  assertOk(run(m, "48 0f c7 27")); // xsavec64 [rdi]
  m.poke(AREA + 512n, 8, 1n); // only x87 in the image
  assertOk(again(m, "48 0f ae 2f"));
  assert.equal(leRead(c.xsaveArea, 24, 4), 0x1f80n);
  assert.equal(leRead(c.xsaveArea, 160, 16), 0n);
  m.poke(AREA + 512n, 8, 0x201n); // XSTATE_BV bit not in XCOMP_BV
  assertFaultNoChange(m, "48 0f ae 2f", 13, 0);
  m.poke(AREA + 512n, 8, 1n);
  m.poke(AREA + 560n, 8, 1n); // bytes 63:16 of the header
  assertFaultNoChange(m, "48 0f ae 2f", 13, 0);
  m.poke(AREA + 560n, 8, 0n);
  m.poke(AREA + 520n, 8, (1n << 63n) | 0x207n); // XCOMP_BV bit not in XCR0
  assertFaultNoChange(m, "48 0f ae 2f", 13, 0);
});

Deno.test("xsaves/xrstors: CPL 0 only; compacted form only; xsaveopt saves like xsave", () => {
  const m = machine();
  fillState(m);
  const c = m.cpu;
  c.gpr[7] = AREA;
  c.gpr[0] = 7n;
  assertOk(run(m, "48 0f c7 2f")); // xsaves64 [rdi]
  assert.equal(m.peek(AREA + 520n, 8), (1n << 63n) | 7n);
  c.xsaveArea.fill(0, 160, 416);
  assertOk(again(m, "48 0f c7 1f")); // xrstors64 [rdi]
  assert.equal(leRead(c.xsaveArea, 160, 16), 0x1111_0000n);
  m.poke(AREA + 520n, 8, 0n);
  assertFaultNoChange(m, "48 0f c7 1f", 13, 0); // standard form
  assertOk(again(m, "48 0f ae 37")); // xsaveopt64 [rdi]
  assert.equal(m.peek(AREA + 576n, 16), 0x2222_0000n);
  const u = machine({ cpl: 3 });
  u.cpu.gpr[7] = AREA;
  assertFaultNoChange(u, "48 0f c7 2f", 13, 0);
});

Deno.test("fxrstor and xrstor load FCW as fldcw does: defined bits only, bit 6 set", () => {
  const m = machine();
  m.cpu.gpr[7] = AREA;
  assertOk(run(m, "48 0f ae 07")); // fxsave64 [rdi]
  m.poke(AREA, 2, 0xffe3n);
  assertOk(again(m, "48 0f ae 0f")); // fxrstor64 [rdi]
  assert.equal(leRead(m.cpu.xsaveArea, 0, 2), 0x1f63n);
  m.cpu.gpr[0] = 1n; // RFBM: x87
  m.cpu.gpr[2] = 0n;
  assertOk(again(m, "48 0f ae 27")); // xsave64 [rdi]
  m.poke(AREA, 2, 0xffffn);
  assertOk(again(m, "48 0f ae 2f")); // xrstor64 [rdi]
  assert.equal(leRead(m.cpu.xsaveArea, 0, 2), 0x1f7fn);
  assertOk(again(m, "48 0f ae 07")); // fxsave64 stores the register as loaded
  assert.equal(m.peek(AREA, 2), 0x1f7fn);
});

Deno.test("#AC with fxsave/fxrstor: AMD #AC below 4-byte alignment and #GP(0) above; Intel #GP(0); xsave #GP(0)", () => {
  for (const vendor of ["amd", "intel"] as const) {
    const m = machine({ cpl: 3, vendor });
    m.cpu.cr0 |= 1n << 18n; // AM
    m.cpu.rflags |= 1n << 18n; // AC
    m.cpu.gpr[7] = AREA + 2n;
    assertFaultNoChange(m, "48 0f ae 07", vendor === "amd" ? 17 : 13, 0); // fxsave64 [rdi]
    assertFaultNoChange(m, "48 0f ae 0f", vendor === "amd" ? 17 : 13, 0); // fxrstor64 [rdi]
    m.cpu.gpr[7] = AREA + 8n;
    assertFaultNoChange(m, "48 0f ae 07", 13, 0);
    m.cpu.gpr[0] = 3n;
    m.cpu.gpr[7] = AREA + 2n;
    assertFaultNoChange(m, "48 0f ae 27", 13, 0); // xsave64 [rdi]: the 64-byte rule first
    m.cpu.gpr[7] = AREA;
    assertOk(run(m, "48 0f ae 07")); // aligned: fine
  }
});

/**
 * Tests of the x86 decoder: tricky encodings one by one, then a corpus of
 * assembly sources (testdata/*.s) assembled with GNU as and compared with
 * `objdump -d -M intel` on every instruction (length, mnemonic and text).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  decode,
  decodeAt,
  DecodeError,
  instructionLength,
  TooLongError,
  TruncatedError,
  UdError,
} from "./decode.ts";
import { type MemOperand, type Mode, NO_REG, type Operand, RIP_BASE, SEG } from "./types.ts";

function hexBytes(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  return new Uint8Array((clean.match(/../g) ?? []).map((x) => parseInt(x, 16)));
}

function d(hex: string, mode: Mode = 64, ip = 0n) {
  return decode(hexBytes(hex), mode, ip);
}

function mem(o: Operand | undefined): MemOperand {
  assert.ok(o && o.kind === "mem", `not a memory operand: ${JSON.stringify(o, big)}`);
  return o;
}

function big(_k: string, v: unknown) {
  return typeof v === "bigint" ? "0x" + v.toString(16) : v;
}

// ---------------------------------------------------------------------------
// Unit tests

Deno.test("prefixes in any order and repeated: the last segment override wins", () => {
  const a = d("f0 64 66 0f b1 0b"); // lock fs cmpxchg [rbx],cx
  const b = d("66 64 f0 0f b1 0b");
  for (const i of [a, b]) {
    assert.equal(i.length, 6);
    assert.equal(i.mnemonic, "cmpxchg");
    assert.equal(i.lock, true);
    assert.equal(i.opSize, 2);
    assert.equal(i.segOverride, SEG.fs);
    assert.equal(mem(i.operands[0]).seg, SEG.fs);
  }
  const c = d("2e 65 3e 64 8b 00"); // last override: fs
  assert.equal(c.segOverride, SEG.fs);
  assert.equal(mem(c.operands[1]).seg, SEG.fs);
  assert.equal(c.text, "cs gs ds mov eax,DWORD PTR fs:[rax]");
  const r = d("f3 f2 a6"); // the last of F2/F3 counts
  assert.equal(r.rep, "repne");
  const r2 = d("66 66 66 90");
  assert.equal(r2.length, 4);
  assert.equal(r2.mnemonic, "xchg");
});

Deno.test("REX counts only right before the opcode", () => {
  const a = d("48 01 c8");
  assert.equal(a.text, "add rax,rcx");
  assert.equal(a.opSize, 8);
  // A legacy prefix after REX cancels it (SDM Vol. 2, 2.2.1).
  const b = d("48 66 01 c8");
  assert.equal(b.length, 4);
  assert.equal(b.rex, 0);
  assert.equal(b.opSize, 2);
  assert.equal(b.mnemonic, "add");
  assert.deepEqual(b.operands[1], { kind: "reg", cls: "gpr", index: 1, size: 2 });
  // Two REX: the last one counts.
  const c = d("41 48 01 c8");
  assert.equal(c.rex, 0x48);
  assert.deepEqual(c.operands[0], { kind: "reg", cls: "gpr", index: 0, size: 8 });
  // 40-4F are inc/dec outside 64-bit mode.
  assert.equal(d("48", 32).mnemonic, "dec");
  assert.equal(d("40", 16).text, "inc ax");
});

Deno.test("high byte registers and REX byte registers", () => {
  const a = d("88 e0"); // mov al, ah
  assert.deepEqual(a.operands[1], { kind: "reg", cls: "gpr", index: 4, size: 1, high8: true });
  assert.equal(a.text, "mov al,ah");
  const b = d("40 88 e0"); // with REX: spl
  assert.deepEqual(b.operands[1], { kind: "reg", cls: "gpr", index: 4, size: 1 });
  assert.equal(b.text, "mov al,spl");
  assert.equal(d("44 88 f8").text, "mov al,r15b");
  assert.equal(d("b7 01").text, "mov bh,0x1");
});

Deno.test("RIP-relative and 32-bit addressing in 64-bit mode", () => {
  const a = d("48 8d 05 10 00 00 00", 64, 0x1000n); // lea rax,[rip+0x10]
  const m = mem(a.operands[1]);
  assert.equal(m.base, RIP_BASE);
  assert.equal(m.disp, 0x10n);
  assert.equal(m.size, 0);
  assert.equal(a.text, "lea rax,[rip+0x10]");
  const b = d("8b 05 f0 ff ff ff"); // negative displacement
  assert.equal(mem(b.operands[1]).disp, -16n);
  assert.equal(b.text, "mov eax,DWORD PTR [rip+0xfffffffffffffff0]");
  // With 67h: eip-relative, address size 4.
  const c = d("67 8b 05 00 01 00 00");
  assert.equal(c.addrSize, 4);
  assert.equal(mem(c.operands[1]).addrSize, 4);
  assert.equal(c.text, "mov eax,DWORD PTR [eip+0x100]");
  // Outside 64-bit mode, mod=00 rm=101 is an absolute disp32.
  const e = d("8b 05 78 56 34 12", 32);
  assert.equal(mem(e.operands[1]).base, NO_REG);
  assert.equal(e.text, "mov eax,DWORD PTR ds:0x12345678");
});

Deno.test("SIB: no base, no index, rsp/rbp/r12/r13 and the SS default", () => {
  const a = d("8b 04 25 78 56 34 12"); // [disp32], no base no index
  const ma = mem(a.operands[1]);
  assert.equal(ma.base, NO_REG);
  assert.equal(ma.index, NO_REG);
  assert.equal(ma.disp, 0x12345678n);
  assert.equal(a.text, "mov eax,DWORD PTR ds:0x12345678");
  const b = d("8b 04 8d 10 00 00 00"); // [rcx*4+0x10], no base
  const mb = mem(b.operands[1]);
  assert.equal(mb.base, NO_REG);
  assert.equal(mb.index, 1);
  assert.equal(mb.scale, 4);
  assert.equal(b.text, "mov eax,DWORD PTR [rcx*4+0x10]");
  const c = d("8b 04 24"); // [rsp]: SS
  assert.equal(mem(c.operands[1]).seg, SEG.ss);
  const e = d("8b 45 08"); // [rbp+8]: SS
  assert.equal(mem(e.operands[1]).seg, SEG.ss);
  assert.equal(mem(e.operands[1]).disp, 8n);
  const f = d("41 8b 04 24"); // [r12]: DS
  assert.equal(mem(f.operands[1]).base, 12);
  assert.equal(mem(f.operands[1]).seg, SEG.ds);
  const g = d("41 8b 45 00"); // [r13+0]: needs a disp8
  assert.equal(g.length, 4);
  assert.equal(g.text, "mov eax,DWORD PTR [r13+0x0]");
  const h = d("42 8b 04 20"); // REX.X: index r12
  assert.equal(mem(h.operands[1]).index, 12);
  assert.equal(h.text, "mov eax,DWORD PTR [rax+r12*1]");
});

Deno.test("16-bit addressing", () => {
  const a = d("8b 00", 16);
  const m = mem(a.operands[1]);
  assert.equal(m.base, 3); // bx
  assert.equal(m.index, 6); // si
  assert.equal(m.addrSize, 2);
  assert.equal(a.text, "mov ax,WORD PTR [bx+si]");
  const b = d("8b 46 fe", 16); // [bp-2]: SS
  assert.equal(mem(b.operands[1]).seg, SEG.ss);
  assert.equal(b.text, "mov ax,WORD PTR [bp-0x2]");
  const c = d("8b 06 34 12", 16); // [disp16]
  assert.equal(mem(c.operands[1]).base, NO_REG);
  assert.equal(c.text, "mov ax,WORD PTR ds:0x1234");
  const e = d("67 66 8b 44 8d 10", 16); // 32-bit addressing and operand in 16-bit mode
  assert.equal(e.text, "mov eax,DWORD PTR [ebp+ecx*4+0x10]");
  const f = d("8b 00", 32); // 32-bit mode, 67h: 16-bit addressing
  assert.equal(f.text, "mov eax,DWORD PTR [eax]");
  assert.equal(d("67 8b 00", 32).text, "mov eax,DWORD PTR [bx+si]");
});

Deno.test("moffs: address-size offsets, movabs in 64-bit mode", () => {
  const a = d("a1 88 77 66 55 44 33 22 11");
  assert.equal(a.length, 9);
  assert.equal(a.mnemonic, "movabs");
  const m = mem(a.operands[1]);
  assert.equal(m.disp, 0x1122334455667788n);
  assert.equal(m.size, 4);
  assert.equal(a.text, "movabs eax,ds:0x1122334455667788");
  const b = d("67 a0 44 33 22 11"); // 32-bit moffs in 64-bit mode
  assert.equal(b.length, 6);
  assert.equal(b.mnemonic, "mov");
  assert.equal(d("a3 78 56 34 12", 32).text, "mov ds:0x12345678,eax");
  assert.equal(d("a2 34 12", 16).text, "mov ds:0x1234,al");
  assert.equal(d("64 a1 10 00 00 00", 32).text, "mov eax,fs:0x10");
});

Deno.test("immediate sizes", () => {
  assert.equal(d("48 b8 88 77 66 55 44 33 22 11").length, 10); // movabs imm64
  assert.equal(d("48 c7 c0 ff ff ff ff").text, "mov rax,0xffffffffffffffff"); // imm32 sign-extended
  assert.equal(d("66 b8 34 12").length, 4); // imm16 with 66h
  assert.equal(d("66 05 34 12").length, 4);
  assert.equal(d("66 05 34 12 00 00", 16).length, 6); // 66h in 16-bit mode: imm32
  assert.equal(d("48 83 c0 ff").text, "add rax,0xffffffffffffffff"); // imm8 sign-extended
  const e = d("c8 10 00 02"); // enter imm16, imm8
  assert.equal(e.length, 4);
  assert.equal(e.text, "enter 0x10,0x2");
  assert.deepEqual(e.operands, [
    { kind: "imm", value: 0x10n, size: 2 },
    { kind: "imm", value: 2n, size: 1 },
  ]);
  assert.equal(d("f6 c1 01").length, 3); // test r/m8, imm8
  assert.equal(d("f7 c1 01 00 00 00").length, 6); // test r/m32, imm32
  assert.equal(d("66 f7 c1 01 00").length, 5); // test r/m16, imm16
  assert.equal(d("48 f7 c1 01 00 00 00").length, 7); // test r/m64, imm32
  assert.equal(d("f6 d1").length, 2); // not: no immediate
  assert.equal(d("c2 08 00").text, "ret 0x8");
  const far = d("ea 78 56 34 12 10 00", 32); // jmp ptr16:32
  assert.equal(far.length, 7);
  assert.deepEqual(far.operands[0], { kind: "far", selector: 0x10, offset: 0x12345678n });
  assert.equal(d("66 ea 34 12 10 00", 32).length, 6); // ptr16:16
  assert.equal(d("9a 34 12 08 00", 16).text, "call 0x8:0x1234");
  assert.equal(d("6a ff").text, "push 0xffffffffffffffff");
  assert.equal(d("66 6a ff").text, "pushw 0xffff");
});

Deno.test("relative branches resolve against the next instruction", () => {
  const a = d("e8 00 01 00 00", 64, 0xffffffff81000000n);
  assert.deepEqual(a.operands[0], { kind: "rel", target: 0xffffffff81000105n });
  const b = d("eb fe", 64, 0x1000n);
  assert.deepEqual(b.operands[0], { kind: "rel", target: 0x1000n });
  const c = d("e9 00 00", 16, 0xfffdn); // 16-bit IP wraps
  assert.deepEqual(c.operands[0], { kind: "rel", target: 0n });
  // 66h near branch in 64-bit mode: rel16 (AMD; as objdump decodes it).
  const e = d("66 e9 10 00", 64, 0x1000n);
  assert.equal(e.length, 4);
  assert.equal(e.mnemonic, "jmpw");
  assert.deepEqual(e.operands[0], { kind: "rel", target: 0x1014n });
  assert.equal(d("0f 84 00 00 00 00").opSize, 8);
  assert.equal(d("67 e3 00").mnemonic, "jecxz");
  assert.equal(d("e3 00").mnemonic, "jrcxz");
});

Deno.test("default 64-bit operand size: push, pop, branches", () => {
  assert.equal(d("50").opSize, 8);
  assert.equal(d("66 50").opSize, 2);
  assert.equal(d("ff 30").text, "push QWORD PTR [rax]");
  assert.equal(d("ff d0").text, "call rax");
  assert.equal(d("41 ff e3").text, "jmp r11");
  assert.equal(d("9c").mnemonic, "pushf");
  assert.equal(d("66 9d").mnemonic, "popfw");
  assert.equal(d("48 cf").mnemonic, "iretq");
  assert.equal(d("cf", 32).mnemonic, "iret");
  assert.equal(d("48 cb").mnemonic, "retfq");
  assert.equal(d("48 0f 07").mnemonic, "sysretq");
});

Deno.test("invalid in 64-bit mode: #UD", () => {
  for (
    const hex of [
      "06",
      "07",
      "0e",
      "16",
      "17",
      "1e",
      "1f",
      "27",
      "2f",
      "37",
      "3f",
      "60",
      "61",
      "ce",
      "d4 0a",
      "d5 0a",
      "82 c0 01",
      "9a 00 00 00 00 00 00",
      "ea 00 00 00 00 00 00",
    ]
  ) {
    assert.throws(() => d(hex), UdError, hex);
  }
  // c4/c5/62 are VEX/EVEX in 64-bit mode, les/lds/bound elsewhere.
  assert.equal(d("c4 00", 32).mnemonic, "les");
  assert.equal(d("c5 00", 32).mnemonic, "lds");
  assert.equal(d("62 00", 32).mnemonic, "bound");
  assert.equal(d("06", 32).mnemonic, "push");
  assert.equal(d("37", 16).mnemonic, "aaa");
  assert.equal(d("0f 05", 32).mnemonic, "syscall");
  assert.throws(() => d("0f 01 f8", 32), UdError); // swapgs outside 64-bit mode
  assert.throws(() => d("f3 0f ae c0", 32), UdError); // rdfsbase
});

Deno.test("LOCK misuse is #UD", () => {
  assert.throws(() => d("f0 01 c8"), UdError); // register destination
  assert.throws(() => d("f0 01 c8"), /#UD/);
  assert.throws(() => d("f0 90"), UdError); // not lockable
  assert.throws(() => d("f0 8b 00"), UdError); // mov is not lockable
  assert.throws(() => d("f0 39 00"), UdError); // cmp is not lockable
  assert.throws(() => d("f0 0f c7 c8"), UdError); // cmpxchg8b needs memory anyway
  assert.equal(d("f0 01 08").text, "lock add DWORD PTR [rax],ecx");
  assert.equal(d("f0 48 0f c7 0f").text, "lock cmpxchg16b OWORD PTR [rdi]");
  // LOCK MOV CR0 is MOV CR8 outside 64-bit mode (AMD).
  assert.equal(d("f0 0f 22 c0", 32).text, "mov cr8,eax");
});

Deno.test("other #UD encodings", () => {
  assert.throws(() => d("8d c0"), UdError); // lea with a register
  assert.throws(() => d("c4 e2 7c f2 c1"), UdError); // BMI with VEX.L=1
  assert.throws(() => d("8e c8"), UdError); // mov cs, r
  assert.throws(() => d("8c f0"), UdError); // no segment register 6
  assert.throws(() => d("0f 20 c8"), UdError); // cr1
  assert.throws(() => d("44 0f 21 c0"), UdError); // dr8
  assert.throws(() => d("0f"), TruncatedError);
  assert.throws(() => d("0f ff"), TruncatedError);
  assert.throws(() => d("66 c5 f9 6e c0"), UdError); // VEX after 66h
  assert.throws(() => d("c5 f1 11 00"), UdError); // VEX.vvvv must be 1111b when unused
  assert.throws(() => d("d6"), UdError); // SALC
  assert.throws(() => d("0f 04"), UdError);
  // Unknown to the decoder (not #UD): a plain DecodeError.
  for (const hex of ["0f a7 c8", "c4 e3 79 5c c1 20"]) { // VIA PadLock, AMD FMA4
    assert.throws(() => d(hex), DecodeError);
    try {
      d(hex);
    } catch (err) {
      assert.ok(!(err instanceof UdError), hex);
    }
  }
});

Deno.test("over 15 bytes is #GP; truncated input says so", () => {
  const long = hexBytes("66".repeat(14) + "05 00 00");
  assert.throws(() => decode(long, 64), TooLongError);
  assert.throws(() => decode(long, 64), /#GP\(0\)/);
  assert.throws(() => decode(hexBytes("66".repeat(16)), 64), TooLongError);
  const ok = hexBytes("66".repeat(11) + "05 00 00"); // exactly 15
  assert.equal(decode(ok, 64).length, 14);
  assert.equal(decode(hexBytes("2e".repeat(14) + "90"), 64).length, 15);
  assert.throws(() => d("48 8b 84 24 00 00"), TruncatedError);
  try {
    d("0f");
    assert.fail("no error");
  } catch (err) {
    assert.ok(err instanceof TruncatedError);
    assert.ok(err instanceof DecodeError);
    assert.equal(err.at, 1);
    assert.deepEqual(Array.from(err.bytes), [0x0f]);
  }
  assert.throws(() => d(""), TruncatedError);
  assert.equal(instructionLength(hexBytes("0f"), 0, 64), -2);
  assert.equal(instructionLength(hexBytes("06"), 0, 64), -1);
  assert.equal(instructionLength(hexBytes("66".repeat(15) + "90"), 0, 64), -3);
});

Deno.test("instructions KVM's emulator gives up on", () => {
  const cases: [string, string][] = [
    ["cc", "int3"],
    ["0f 01 ca", "clac"],
    ["0f 01 cb", "stac"],
    ["f3 48 0f b8 c1", "popcnt rax,rcx"],
    ["f0 48 0f c7 4f 10", "lock cmpxchg16b OWORD PTR [rdi+0x10]"],
    ["48 0f ae 6f 40", "xrstor64 [rdi+0x40]"],
    ["0f ae 2f", "xrstor [rdi]"],
    ["9b", "fwait"],
    ["0f ae 17", "ldmxcsr DWORD PTR [rdi]"],
    ["66 0f 6e c0", "movd xmm0,eax"],
    ["66 48 0f 7e c0", "movq rax,xmm0"],
    ["f3 0f 7e 06", "movq xmm0,QWORD PTR [rsi]"],
    ["66 0f d6 07", "movq QWORD PTR [rdi],xmm0"],
    ["48 0f c7 1f", "xrstors64 [rdi]"],
    ["0f ae 27", "xsave [rdi]"],
    ["48 0f ae 37", "xsaveopt64 [rdi]"],
    ["48 0f c7 27", "xsavec64 [rdi]"],
    ["0f c7 2f", "xsaves [rdi]"],
    ["48 0f ae 07", "fxsave64 [rdi]"],
    ["0f ae 0f", "fxrstor [rdi]"],
  ];
  for (const [hex, text] of cases) assert.equal(d(hex).text, text, hex);
  const x = d("0f ae 6f 40");
  assert.equal(mem(x.operands[0]).size, 0); // xrstor: size defined by XCR0 / the header
  const f = d("48 0f ae 07");
  assert.equal(mem(f.operands[0]).size, 512);
  const c = d("f0 48 0f c7 4f 10");
  assert.equal(mem(c.operands[0]).size, 16);
  assert.equal(c.lock, true);
  assert.equal(c.opcode, 0xc7);
  assert.equal(c.map, "0f");
  assert.equal(c.modrm, 0x4f);
  const m = d("66 0f 6e c0");
  assert.equal(m.mandatory, 0x66);
  assert.deepEqual(m.operands, [
    { kind: "reg", cls: "xmm", index: 0, size: 16 },
    { kind: "reg", cls: "gpr", index: 0, size: 4 },
  ]);
  const p = d("f3 0f b8 c1");
  assert.equal(p.mandatory, 0xf3);
  assert.equal(p.rep, null);
});

Deno.test("mandatory prefixes select SSE forms; other prefixes keep their meaning", () => {
  assert.equal(d("0f 10 c1").mnemonic, "movups");
  assert.equal(d("66 0f 10 c1").mnemonic, "movupd");
  assert.equal(d("f3 0f 10 c1").mnemonic, "movss");
  assert.equal(d("f2 0f 10 c1").mnemonic, "movsd");
  assert.equal(d("66 f2 0f 10 c1").mnemonic, "movsd"); // F2 wins over 66
  assert.equal(d("f3 f2 0f 10 c1").mnemonic, "movsd"); // the last of F2/F3
  assert.throws(() => d("f3 0f 28 c1"), UdError); // movaps has no F3 form
  assert.equal(d("f3 0f 40 c1").text, "repz cmovo eax,ecx"); // F3 not mandatory here
  assert.equal(d("66 0f bc c1").text, "bsf ax,cx"); // 66 is the operand size
  assert.equal(d("66 f3 0f bc c1").text, "tzcnt ax,cx");
  assert.equal(d("66 0f ae 38").text, "clflushopt BYTE PTR [rax]");
  assert.equal(d("66 0f ae 00").text, "data16 fxsave [rax]");
  assert.equal(d("66 0f 71 d0 02").text, "psrlw xmm0,0x2");
  assert.equal(d("0f 71 d0 02").text, "psrlw mm0,0x2");
  assert.equal(d("0f c2 c1 00").mnemonic, "cmpeqps");
  assert.equal(d("0f c2 c1 08").text, "cmpps xmm0,xmm1,0x8");
  assert.equal(d("66 0f 3a 44 c1 11").mnemonic, "pclmulhqhqdq");
});

Deno.test("x87 and fwait", () => {
  assert.equal(d("d9 c9").text, "fxch st(1)");
  assert.equal(d("d8 c1").text, "fadd st,st(1)");
  assert.equal(d("dc c1").text, "fadd st(1),st");
  assert.equal(d("de e9").text, "fsubp st(1),st");
  assert.equal(d("dd 00").text, "fld QWORD PTR [rax]");
  assert.equal(d("db 28").text, "fld TBYTE PTR [rax]");
  assert.equal(d("d9 38").text, "fnstcw WORD PTR [rax]");
  assert.equal(d("d9 28").text, "fldcw WORD PTR [rax]");
  assert.equal(d("db e3").text, "fninit");
  assert.equal(d("df e0").text, "fnstsw ax");
  // fwait + a no-wait control instruction decodes as one (objdump's fstsw & co.).
  const w = d("9b df e0");
  assert.equal(w.length, 3);
  assert.equal(w.mnemonic, "fstsw");
  assert.equal(d("9b db e3").mnemonic, "finit");
  assert.equal(d("9b 66 d9 30").text, "fstenvw [rax]");
  assert.equal(d("9b 9b").length, 1);
  assert.equal(d("9b").text, "fwait");
  assert.throws(() => d("d9 d1"), UdError);
  const fx = d("66 dd 30", 32);
  assert.equal(fx.mnemonic, "fnsavew");
  assert.equal(mem(fx.operands[0]).size, 94);
});

Deno.test("VEX, EVEX and XOP", () => {
  const a = d("c5 f9 6e e9");
  assert.equal(a.text, "vmovd xmm5,ecx");
  assert.deepEqual(a.vex, { kind: "vex2", l: 128, w: false, vvvv: 0 });
  const b = d("c4 43 7d 39 c0 01");
  assert.equal(b.text, "vextracti128 xmm8,ymm8,0x1");
  assert.equal(b.map, "0f3a");
  assert.equal(d("c5 fe 6f 36").text, "vmovdqu ymm6,YMMWORD PTR [rsi]");
  assert.equal(d("c4 c1 59 ef df").text, "vpxor xmm3,xmm4,xmm15");
  assert.equal(d("c5 f8 77").text, "vzeroupper");
  assert.equal(d("c4 e2 78 49 c0").text, "tilerelease");
  assert.equal(d("c4 e2 f3 f7 c2").text, "shrx rax,rdx,rcx");
  assert.equal(d("c4 e2 71 f7 c2").text, "shlx eax,edx,ecx");
  const e = d("62 f1 65 08 72 c3 10");
  assert.equal(e.text, "vprord xmm3,xmm3,0x10");
  assert.equal(e.vex?.kind, "evex");
  assert.equal(d("62 72 4d 28 76 c7").text, "vpermi2d ymm8,ymm6,ymm7");
  const z = d("62 f1 6d c9 fe 48 01"); // masking, disp8*N
  assert.equal(z.text, "vpaddd zmm1{k1}{z},zmm2,ZMMWORD PTR [rax+0x40]");
  assert.equal(mem(z.operands[2]).disp, 0x40n);
  assert.equal(d("8f e9 78 90 c1").mnemonic, "vprotb"); // XOP map 9
  assert.equal(d("8f e8 78 c0 c1 05").length, 6); // XOP map 8: imm8
  assert.equal(d("8f c0").mnemonic, "pop"); // 8F /0 stays pop
  assert.equal(d("c5 f9 6e e9", 32).text, "vmovd xmm5,ecx");
});

Deno.test("system instructions", () => {
  const cases: [string, string, Mode?][] = [
    ["0f 01 10", "lgdt [rax]"],
    ["0f 01 18", "lidt [rax]"],
    ["0f 01 00", "sgdt [rax]"],
    ["0f 01 10", "lgdtd [eax]", 32],
    ["66 0f 01 10", "lgdtw [eax]", 32],
    ["0f 00 d0", "lldt ax"],
    ["0f 00 18", "ltr WORD PTR [rax]"],
    ["0f 00 c0", "sldt eax"],
    ["0f 00 c8", "str eax"],
    ["0f 22 d8", "mov cr3,rax"],
    ["0f 20 e0", "mov rax,cr4"],
    ["44 0f 22 c0", "mov cr8,rax"],
    ["0f 23 f8", "mov dr7,rax"],
    ["0f 22 c0", "mov cr0,eax", 32],
    ["0f 30", "wrmsr"],
    ["0f 32", "rdmsr"],
    ["0f 31", "rdtsc"],
    ["0f 01 f9", "rdtscp"],
    ["f3 0f c7 f8", "rdpid rax"],
    ["0f a2", "cpuid"],
    ["f4", "hlt"],
    ["0f 01 38", "invlpg BYTE PTR [rax]"],
    ["66 0f 38 82 07", "invpcid rax,[rdi]"],
    ["0f 09", "wbinvd"],
    ["0f 01 f8", "swapgs"],
    ["0f 05", "syscall"],
    ["0f 07", "sysretd"],
    ["0f 34", "sysenter"],
    ["0f 35", "sysexitd"],
    ["0f 01 d0", "xgetbv"],
    ["0f 01 d1", "xsetbv"],
    ["0f 01 c8", "monitor"],
    ["0f 01 c9", "mwait"],
    ["0f ae 38", "clflush BYTE PTR [rax]"],
    ["66 0f ae 30", "clwb BYTE PTR [rax]"],
    ["0f ae e8", "lfence"],
    ["0f ae f0", "mfence"],
    ["0f ae f8", "sfence"],
    ["0f 18 08", "prefetcht0 BYTE PTR [rax]"],
    ["0f 0d 08", "prefetchw BYTE PTR [rax]"],
    ["0f c7 f0", "rdrand eax"],
    ["48 0f c7 f8", "rdseed rax"],
    ["f3 48 0f ae c0", "rdfsbase rax"],
    ["f3 0f ae d8", "wrgsbase eax"],
    ["0f ff 00", "ud0 eax,DWORD PTR [rax]"],
    ["0f b9 00", "ud1 eax,DWORD PTR [rax]"],
    ["0f 0b", "ud2"],
    ["0f 01 c1", "vmcall"],
    ["0f 01 d9", "vmmcall"],
    ["f3 0f 01 d9", "vmgexit"],
    ["cf", "iret"],
    ["cd 80", "int 0x80"],
    ["ce", "into", 32],
    ["e4 60", "in al,0x60"],
    ["ef", "out dx,eax"],
  ];
  for (const [hex, text, mode] of cases) assert.equal(d(hex, mode ?? 64).text, text, hex);
  assert.deepEqual(d("0f 22 d8").operands, [
    { kind: "reg", cls: "cr", index: 3, size: 8 },
    { kind: "reg", cls: "gpr", index: 0, size: 8 },
  ]);
  // mov to/from CR ignores mod (always a register, SDM Vol. 2 MOV CR).
  assert.equal(d("0f 20 18").text, "mov rax,cr3");
  const lg = d("0f 01 10");
  assert.equal(mem(lg.operands[0]).size, 10);
  assert.equal(mem(d("0f 01 10", 32).operands[0]).size, 6);
});

Deno.test("decodeAt sweeps without copying; bytes is a view of the instruction", () => {
  const buf = hexBytes("90 48 89 c8 c3");
  const a = decodeAt(buf, 1, 64, 0x1001n);
  assert.equal(a.length, 3);
  assert.deepEqual(Array.from(a.bytes), [0x48, 0x89, 0xc8]);
  assert.equal(decodeAt(buf, 4, 64).mnemonic, "ret");
  assert.equal(instructionLength(buf, 0, 64), 1);
});

// ---------------------------------------------------------------------------
// The corpus against binutils

/** objdump words that are prefixes, not the mnemonic. */
const PREFIX_WORDS = new Set([
  "lock",
  "rep",
  "repz",
  "repnz",
  "data16",
  "data32",
  "addr16",
  "addr32",
  "cs",
  "ds",
  "es",
  "ss",
  "fs",
  "gs",
  "notrack",
  "bnd",
  "xacquire",
  "xrelease",
]);

function mnemonicOf(text: string): string {
  const w = text.split(" ");
  let i = 0;
  while (i < w.length - 1 && (PREFIX_WORDS.has(w[i]) || w[i].startsWith("rex"))) i++;
  return w[i];
}

/**
 * objdump's text, normalised: its "# target" comment and "<symbol>"
 * annotations dropped and runs of spaces made one. Nothing else.
 */
function normText(t: string): string {
  return t.replace(/\s+#.*$/, "").replace(/ <[^>]*>/g, "").replace(/\s+/g, " ").trim();
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

interface CorpusResult {
  checked: number;
  mismatches: string[];
}

/** Assembles testdata/<file>, disassembles it with objdump and compares every instruction. */
async function checkCorpus(file: string, mode: Mode): Promise<CorpusResult> {
  const src = new URL(`./testdata/${file}`, import.meta.url).pathname;
  const dir = await Deno.makeTempDir({ prefix: "dhyve-decode-" });
  try {
    const obj = `${dir}/x.o`;
    const bin = `${dir}/x.bin`;
    await run("as", [mode === 64 ? "--64" : "--32", "-o", obj, src]);
    await run("objcopy", ["-O", "binary", "--only-section=.text", obj, bin]);
    const arch = mode === 64 ? "i386:x86-64" : mode === 32 ? "i386" : "i8086";
    // The raw section: no symbols, so branch targets print as plain addresses.
    const dis = await run("objdump", [
      "-D",
      "-w",
      "--no-show-raw-insn",
      "-b",
      "binary",
      "-m",
      arch,
      "-M",
      "intel",
      bin,
    ]);
    const bytes = await Deno.readFile(bin);
    const insns: { addr: number; text: string }[] = [];
    for (const line of dis.split("\n")) {
      const m = /^\s*([0-9a-f]+):\t(.*)$/.exec(line);
      if (m) insns.push({ addr: parseInt(m[1], 16), text: normText(m[2]) });
    }
    const mismatches: string[] = [];
    let off = 0;
    for (let i = 0; i < insns.length; i++) {
      const { addr, text } = insns[i];
      const len = (i + 1 < insns.length ? insns[i + 1].addr : bytes.length) - addr;
      assert.equal(addr, off, `${file}: sweep out of step at 0x${addr.toString(16)}`);
      off += len;
      let got = "";
      try {
        const insn = decodeAt(bytes, addr, mode, BigInt(addr));
        if (insn.length !== len) got = `length ${insn.length}, want ${len}: ${insn.text}`;
        else if (insn.mnemonic !== mnemonicOf(text)) {
          got = `mnemonic ${insn.mnemonic}: ${insn.text}`;
        } else if (insn.text !== text) got = `text ${insn.text}`;
        else continue;
      } catch (e) {
        got = (e as Error).message;
      }
      mismatches.push(`${file}+0x${addr.toString(16)}: objdump "${text}" | decoder ${got}`);
    }
    return { checked: insns.length, mismatches };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const CORPUS: [string, Mode][] = [
  ["gp64.s", 64],
  ["sys64.s", 64],
  ["legacy32.s", 32],
  ["real16.s", 16],
];

for (const [file, mode] of CORPUS) {
  Deno.test(`corpus ${file} (${mode}-bit) agrees with objdump on length, mnemonic and text`, async () => {
    const r = await checkCorpus(file, mode);
    assert.ok(r.checked > 50, `${file}: only ${r.checked} instructions`);
    assert.deepEqual(r.mismatches, [], `${r.mismatches.length} of ${r.checked} differ`);
  });
}

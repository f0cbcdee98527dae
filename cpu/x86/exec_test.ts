// The executor's core: fetch, decode, commit, faults leaving state unchanged,
// traps, segmentation, page crossings, atomic paths, string instructions and
// system instructions. Instructions are written as bytes with their assembly
// in a comment (objdump -M intel).
import assert from "node:assert/strict";
import {
  arith,
  assertException,
  assertFaultNoChange,
  assertOk,
  FL,
  machine,
  run,
} from "./_exec_test_util.ts";
import { DR6_BS, emulate, execute } from "./exec.ts";
import { decode } from "./decode.ts";
import { flatSegment, hex, TestMachine } from "./testing.ts";
import { DIRTY, SEG } from "./types.ts";

const DATA = TestMachine.DATA;
const CODE = TestMachine.CODE;
const STACK = TestMachine.STACK_TOP;

/** Compare-exchanges on the data pages (the page walker's A/D updates use cmpxchg too). */
function dataCmpxchgs(m: TestMachine): number {
  return m.mem.log.filter((a) => a.op === "cmpxchg" && a.gpa >= 0x10000 && a.gpa < 0x20000).length;
}

// ---------------------------------------------------------------------------
// The instructions measured failing under nested KVM

Deno.test("int3 is a trap: RIP moves past it and #BP is reported", () => {
  const m = machine();
  const r = run(m, "cc"); // int3
  assert.equal(assertException(r, 3).errorCode, undefined);
  assert.equal(m.cpu.rip, CODE + 1n);
  assert.equal(m.cpu.dirty, DIRTY.rip);
});

Deno.test("clac/stac change RFLAGS.AC; #UD at CPL 3 and without SMAP", () => {
  const m = machine();
  assertOk(run(m, "0f 01 cb")); // stac
  assert.equal(m.cpu.rflags & FL.AC, FL.AC);
  assert.equal(m.cpu.rip, CODE + 3n);
  m.cpu.rip = CODE;
  assertOk(run(m, "0f 01 ca")); // clac
  assert.equal(m.cpu.rflags & FL.AC, 0n);
  assertFaultNoChange(machine({ cpl: 3 }), "0f 01 ca", 6);
  const noSmap = machine({ cpuid: { "7": [0, 0x1, 0, 0] } });
  assertFaultNoChange(noSmap, "0f 01 cb", 6);
});

Deno.test("popcnt: 16/32/64-bit, register and memory, flags", () => {
  const m = machine();
  m.cpu.gpr[3] = 0xf0f0_0000_0000_0001n;
  m.cpu.rflags = 2n | FL.CF | FL.OF | FL.SF | FL.ZF | FL.AF | FL.PF;
  assertOk(run(m, "f3 48 0f b8 c3")); // popcnt rax,rbx
  assert.equal(m.cpu.gpr[0], 9n);
  assert.equal(arith(m.cpu.rflags), 0n, "all status flags cleared for a non-zero source");
  m.cpu.rip = CODE;
  m.cpu.gpr[0] = 0xffff_ffff_ffff_ffffn;
  assertOk(run(m, "f3 0f b8 c3")); // popcnt eax,ebx: 32-bit result zero-extended
  assert.equal(m.cpu.gpr[0], 1n);
  m.cpu.rip = CODE;
  m.poke(DATA, 2, 0n);
  m.cpu.gpr[6] = DATA;
  m.cpu.gpr[0] = 0x1234_5678n;
  assertOk(run(m, "66 f3 0f b8 06")); // popcnt ax,WORD PTR [rsi]
  assert.equal(m.cpu.gpr[0], 0x1234_0000n);
  assert.equal(arith(m.cpu.rflags), FL.ZF);
});

Deno.test("lock cmpxchg16b: success and failure through one 16-byte compare-exchange", () => {
  const m = machine();
  const c = m.cpu;
  m.poke(DATA + 0x10n, 8, 0x1111n).poke(DATA + 0x18n, 8, 0x2222n);
  c.gpr[7] = DATA;
  c.gpr[0] = 0x1111n; // rdx:rax = expected
  c.gpr[2] = 0x2222n;
  c.gpr[3] = 0xaaaan; // rcx:rbx = new
  c.gpr[1] = 0xbbbbn;
  m.mem.logging = true;
  assertOk(run(m, "f0 48 0f c7 4f 10")); // lock cmpxchg16b OWORD PTR [rdi+0x10]
  assert.equal(dataCmpxchgs(m), 1);
  assert.equal(m.peek(DATA + 0x10n, 8), 0xaaaan);
  assert.equal(m.peek(DATA + 0x18n, 8), 0xbbbbn);
  assert.equal(c.rflags & FL.ZF, FL.ZF);
  assert.equal(c.rip, CODE + 6n);
  // Now the compare fails: RDX:RAX get the memory value and ZF is cleared.
  c.rip = CODE;
  assertOk(run(m, "f0 48 0f c7 4f 10"));
  assert.equal(c.gpr[0], 0xaaaan);
  assert.equal(c.gpr[2], 0xbbbbn);
  assert.equal(c.rflags & FL.ZF, 0n);
  assert.equal(m.peek(DATA + 0x10n, 8), 0xaaaan, "memory unchanged");
});

Deno.test("cmpxchg16b: a misaligned operand is #GP(0) with nothing changed", () => {
  const m = machine();
  m.cpu.gpr[7] = DATA + 8n;
  assertFaultNoChange(m, "f0 48 0f c7 0f", 13, 0); // lock cmpxchg16b [rdi]
});

Deno.test("cmpxchg8b: EDX:EAX vs m64, ECX:EBX stored; the 32-bit halves zero-extend", () => {
  const m = machine();
  const c = m.cpu;
  m.poke(DATA + 4n, 8, 0x0000_0002_0000_0001n); // unaligned is fine for cmpxchg8b
  c.gpr[7] = DATA + 4n;
  c.gpr[0] = 0xffff_ffff_0000_0009n;
  c.gpr[2] = 0xffff_ffff_0000_0009n;
  assertOk(run(m, "0f c7 0f")); // cmpxchg8b QWORD PTR [rdi]
  assert.equal(c.gpr[0], 1n);
  assert.equal(c.gpr[2], 2n);
  assert.equal(c.rflags & FL.ZF, 0n);
});

Deno.test("fwait: #NM with CR0.TS and CR0.MP, #MF with a pending unmasked exception", () => {
  const m = machine();
  assertOk(run(m, "9b")); // fwait
  m.cpu.cr0 |= 0x8n; // TS (MP is set by createCpu)
  m.cpu.rip = CODE;
  assertFaultNoChange(m, "9b", 7);
  m.cpu.cr0 &= ~0x8n;
  m.cpu.xsaveArea[2] = 0x81; // FSW: IE | ES
  assertFaultNoChange(m, "9b", 16);
});

// ---------------------------------------------------------------------------
// Fetch

Deno.test("fetch: an instruction crossing into an unmapped page is #PF on that page (I/D set)", () => {
  const m = machine();
  // Put "mov eax, 0x11223344" (b8 44 33 22 11) so that 2 bytes are on the last code page.
  m.cpu.rip = 0x402ffen;
  m.mem.load(0x2ffe, hex("b8 44"));
  m.mem.load(0x3000, hex("33 22 11")); // physical page 0x3000 is RAM but its linear page is unmapped
  const r = emulate(m.cpu, m.mem);
  assertException(r, 14, 0x10, 0x403000n); // not present, fetch
  assert.equal(m.cpu.rip, 0x402ffen);
  // Map the next page and it runs.
  m.pt!.map(0x403000n, 0x3000);
  assertOk(emulate(m.cpu, m.mem));
  assert.equal(m.cpu.gpr[0], 0x11223344n);
  assert.equal(m.cpu.rip, 0x403003n);
});

Deno.test("fetch: an instruction that ends on its page does not touch the next one", () => {
  const m = machine();
  m.cpu.rip = 0x402fffn;
  m.mem.load(0x2fff, hex("90")); // nop, the last byte of the mapped code
  assertOk(emulate(m.cpu, m.mem));
  assert.equal(m.cpu.rip, 0x403000n);
});

Deno.test("fetch: a non-executable code page is #PF with I/D; a user page at CPL 0 with SMEP too", () => {
  const m = machine();
  m.pt!.map(0x401000n, 0x1000, { noExecute: true });
  assertFaultNoChange(m, "90", 14, 0x11);
  m.pt!.map(0x401000n, 0x1000, { user: true });
  m.cpu.cr4 |= 1n << 20n;
  assertFaultNoChange(m, "90", 14, 0x11);
});

Deno.test("decode errors: invalid opcode #UD, LOCK misuse #UD, longer than 15 bytes #GP(0)", () => {
  const m = machine();
  assertFaultNoChange(m, "0f 0b", 6); // ud2
  assertFaultNoChange(m, "f0 90", 6); // lock nop
  assertFaultNoChange(m, "f0 01 c0", 6); // lock add eax,eax (register destination)
  assertFaultNoChange(m, "66".repeat(15) + "90", 13, 0);
});

Deno.test("unsupported instructions change nothing and name the instruction", () => {
  const m = machine();
  m.code("0f 31"); // rdtsc
  const r = emulate(m.cpu, m.mem);
  assert.equal(r.kind, "unsupported");
  assert.match((r as { message: string }).message, /rdtsc/);
  assert.equal(m.cpu.rip, CODE);
  assert.equal(m.cpu.dirty, 0);
});

// ---------------------------------------------------------------------------
// Memory operands, faults, page crossings

Deno.test("a fault changes nothing: a write to a read-only page, after register updates", () => {
  const m = machine();
  m.pt!.map(0x600000n, 0x10000, { writable: false });
  m.cpu.gpr[7] = DATA;
  // xadd [rdi], eax would update eax too: nothing may change.
  const x = assertFaultNoChange(m, "0f c1 07", 14, 0x3); // xadd DWORD PTR [rdi],eax
  assert.equal(x.cr2, DATA);
});

Deno.test("push to an unmapped stack page: #PF with CR2, RSP unchanged", () => {
  const m = machine();
  m.cpu.gpr[4] = 0x7f0000n; // the stack page below is not mapped
  const x = assertFaultNoChange(m, "50", 14, 0x2); // push rax
  assert.equal(x.cr2, 0x7efff8n);
});

Deno.test("an operand crossing into an unmapped page faults on the second page and writes nothing", () => {
  const m = machine();
  m.cpu.gpr[7] = 0x60fffen;
  m.cpu.gpr[0] = 0x11223344n;
  const x = assertFaultNoChange(m, "89 07", 14, 0x2); // mov DWORD PTR [rdi],eax
  assert.equal(x.cr2, 0x610000n);
});

Deno.test("an operand crossing a page boundary reads and writes both pages", () => {
  const m = machine();
  m.cpu.gpr[7] = DATA + 0xffen;
  m.poke(DATA + 0xffen, 4, 0x01020304n);
  m.cpu.gpr[0] = 0x10n;
  assertOk(run(m, "01 07")); // add DWORD PTR [rdi],eax
  assert.equal(m.peek(DATA + 0xffen, 4), 0x01020314n);
});

Deno.test("64-bit mode: non-canonical addresses are #GP(0), or #SS(0) through RSP/RBP", () => {
  const m = machine();
  m.cpu.gpr[3] = 0x0000_8000_0000_0000n;
  assertFaultNoChange(m, "8b 03", 13, 0); // mov eax,DWORD PTR [rbx]
  m.cpu.gpr[5] = 0x0000_8000_0000_0000n;
  assertFaultNoChange(m, "8b 45 00", 12, 0); // mov eax,DWORD PTR [rbp+0x0]
  // FS base applies in 64-bit mode; DS base does not.
  m.cpu.seg[SEG.fs].base = DATA;
  m.cpu.seg[SEG.ds].base = 0x1000n;
  m.poke(DATA + 0x10n, 4, 0xabcdn);
  m.cpu.gpr[3] = 0x10n;
  assertOk(run(m, "64 8b 03")); // mov eax,DWORD PTR fs:[rbx]
  assert.equal(m.cpu.gpr[0], 0xabcdn);
});

Deno.test("RIP-relative operands and 32-bit address-size wrap", () => {
  const m = machine();
  m.poke(DATA, 8, 0x55n);
  // mov rax,QWORD PTR [rip+disp]: next RIP = CODE+7, DATA = CODE + 7 + disp
  const disp = Number(DATA - (CODE + 7n));
  const d = new Uint8Array(4);
  new DataView(d.buffer).setInt32(0, disp, true);
  m.code(new Uint8Array([0x48, 0x8b, 0x05, ...d]));
  assertOk(emulate(m.cpu, m.mem));
  assert.equal(m.cpu.gpr[0], 0x55n);
  // addr32: [ebx+0x10] with ebx = 0xfffffff8 wraps to 8... here we use a mapped address instead.
  m.cpu.rip = CODE;
  m.cpu.gpr[3] = 0xffff_ffff_0000_0000n | (DATA - 0x10n);
  assertOk(run(m, "67 8b 43 10")); // mov eax,DWORD PTR [ebx+0x10]
  assert.equal(m.cpu.gpr[0], 0x55n);
});

Deno.test("32-bit protected mode: segment limits, expand-down, #SS for the stack, null segments", () => {
  const m = machine({ mode: "protected32" });
  const c = m.cpu;
  c.seg[SEG.ds] = { ...flatSegment("data"), limit: 0x10fff };
  c.gpr[3] = 0x10ffcn;
  assertOk(run(m, "8b 03")); // mov eax,DWORD PTR [ebx]: last byte at the limit
  c.rip = 0x1000n;
  c.gpr[3] = 0x10ffdn;
  assertFaultNoChange(m, "8b 03", 13, 0);
  // Expand-down: valid offsets are above the limit.
  c.seg[SEG.ds] = { ...flatSegment("data"), type: 0x7, limit: 0x10fff };
  c.gpr[3] = 0x11000n;
  assertOk(run(m, "8b 03"));
  c.rip = 0x1000n;
  c.gpr[3] = 0x10000n;
  assertFaultNoChange(m, "8b 03", 13, 0);
  // Read-only data segment: a write is #GP(0).
  c.seg[SEG.ds] = { ...flatSegment("data"), type: 0x1 };
  assertFaultNoChange(m, "89 03", 13, 0);
  // The stack segment faults with #SS(0).
  c.seg[SEG.ss] = { ...flatSegment("data"), limit: 0x3ffff };
  c.gpr[4] = 0x40002n;
  assertFaultNoChange(m, "50", 12, 0); // push eax: writes 0x3fffe..0x40001
  // A null segment register: #GP(0).
  c.seg[SEG.es] = { ...flatSegment("data"), unusable: 1, present: 0 };
  assertFaultNoChange(m, "26 8b 03", 13, 0);
});

Deno.test("real mode: 16-bit addressing with segment bases", () => {
  const m = machine({ mode: "real" });
  const c = m.cpu;
  c.seg[SEG.ds] = { ...c.seg[SEG.ds], base: 0x10000n, selector: 0x1000 };
  m.mem.set(0x10000 + 0x1234, 2, 0xbeefn);
  c.gpr[3] = 0x1234n;
  assertOk(run(m, "8b 07")); // mov ax,WORD PTR [bx]
  assert.equal(c.gpr[0] & 0xffffn, 0xbeefn);
  assert.equal(c.rip, 0x1002n);
  c.rip = 0x1000n;
  assertOk(run(m, "50")); // push ax
  assert.equal(c.gpr[4], 0xffeen);
  assert.equal(m.mem.get(0x3ffee, 2), 0xbeefn);
});

Deno.test("16-bit protected mode: [bx+si] addressing, 16-bit stack, 16-bit IP", () => {
  const m = machine({ mode: "protected16" });
  const c = m.cpu;
  c.gpr[3] = 0x8000n;
  c.gpr[6] = 0x0234n;
  m.mem.set(0x8234, 2, 0x4242n);
  assertOk(run(m, "8b 00")); // mov ax,WORD PTR [bx+si]
  assert.equal(c.gpr[0] & 0xffffn, 0x4242n);
  c.rip = 0x1000n;
  c.gpr[6] = 0x9000n; // 0x8000 + 0x9000 wraps to 0x1000 (16-bit address size)
  m.mem.set(0x1000, 2, 0x9090n);
  assertOk(run(m, "8b 00"));
  assert.equal(c.gpr[0] & 0xffffn, 0x008bn, "read the code bytes at 0x1000");
  c.rip = 0x1000n;
  assertOk(run(m, "66 50")); // push eax (32-bit operand on a 16-bit stack)
  assert.equal(c.gpr[4], 0xffecn);
});

// ---------------------------------------------------------------------------
// Locked read-modify-write

Deno.test("lock add retries its compare-exchange when another vCPU wrote in between", () => {
  const m = machine();
  m.cpu.gpr[7] = DATA;
  m.cpu.gpr[0] = 5n;
  m.poke(DATA, 4, 100n);
  let raced = false;
  m.mem.beforeCmpxchg = (gpa) => {
    if (!raced && gpa === m.phys(DATA)) {
      raced = true;
      m.mem.set(gpa, 4, 1000n); // the other vCPU's add lands first
    }
  };
  m.mem.logging = true;
  assertOk(run(m, "f0 01 07")); // lock add DWORD PTR [rdi],eax
  assert.equal(m.peek(DATA, 4), 1005n, "no update lost");
  assert.equal(dataCmpxchgs(m), 2);
});

Deno.test("xchg with memory is atomic without LOCK; lock inc/xadd/bts go through cmpxchg", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[7] = DATA;
  m.poke(DATA, 8, 7n);
  c.gpr[0] = 9n;
  m.mem.logging = true;
  assertOk(run(m, "48 87 07")); // xchg QWORD PTR [rdi],rax
  assert.equal(c.gpr[0], 7n);
  assert.equal(m.peek(DATA, 8), 9n);
  for (const code of ["f0 ff 07", "f0 0f c1 07", "f0 0f ab 07"]) { // lock inc / lock xadd / lock bts
    c.rip = CODE;
    assertOk(run(m, code));
  }
  assert.equal(dataCmpxchgs(m), 4);
  // 9, inc: 10, xadd with eax = 7: 17 (eax = 10), bts with eax = 10: 17 | 1 << 10.
  assert.equal(m.peek(DATA, 8), 17n | (1n << 10n));
  assert.equal(c.gpr[0], 10n);
});

Deno.test("a locked operand split across two pages is done non-atomically", () => {
  const m = machine();
  m.cpu.gpr[7] = DATA + 0xffen;
  m.poke(DATA + 0xffen, 4, 0xffffn);
  m.mem.logging = true;
  assertOk(run(m, "f0 ff 07")); // lock inc DWORD PTR [rdi]
  assert.equal(m.peek(DATA + 0xffen, 4), 0x10000n);
  assert.equal(dataCmpxchgs(m), 0);
});

// ---------------------------------------------------------------------------
// Traps, RF, dirty bits

Deno.test("RFLAGS.TF: the instruction completes, then #DB with DR6.BS; RF is cleared", () => {
  const m = machine();
  m.cpu.rflags = 2n | FL.TF | FL.RF;
  const r = run(m, "48 ff c0"); // inc rax
  const x = assertException(r, 1);
  assert.equal(x.dr6, DR6_BS);
  assert.equal(m.cpu.gpr[0], 1n);
  assert.equal(m.cpu.rip, CODE + 3n);
  assert.equal(m.cpu.rflags & FL.RF, 0n);
});

Deno.test("dirty bits name only what changed", () => {
  const m = machine();
  m.cpu.rflags = 2n | FL.ZF;
  assertOk(run(m, "48 31 c0")); // xor rax,rax with rax = 0 already: flags change (PF), no GPR change
  assert.equal(m.cpu.dirty, DIRTY.rip);
  m.cpu.dirty = 0;
  m.cpu.rip = CODE;
  assertOk(run(m, "66 0f ef c0")); // pxor xmm0,xmm0
  assert.equal(m.cpu.dirty, DIRTY.rip | DIRTY.extended);
});

// ---------------------------------------------------------------------------
// String instructions

Deno.test("rep movsb copies forward; rep stosq with DF set goes backward", () => {
  const m = machine();
  const c = m.cpu;
  for (let k = 0n; k < 16n; k++) m.poke(DATA + k, 1, k + 1n);
  c.gpr[6] = DATA;
  c.gpr[7] = DATA + 0x100n;
  c.gpr[1] = 16n;
  assertOk(run(m, "f3 a4")); // rep movs BYTE PTR es:[rdi],BYTE PTR ds:[rsi]
  assert.equal(m.peek(DATA + 0x100n, 8), 0x0807060504030201n);
  assert.equal(c.gpr[1], 0n);
  assert.equal(c.gpr[6], DATA + 16n);
  assert.equal(c.rip, CODE + 2n);
  c.rip = CODE;
  c.rflags |= FL.DF;
  c.gpr[7] = DATA + 0x208n;
  c.gpr[1] = 2n;
  c.gpr[0] = 0x1122334455667788n;
  assertOk(run(m, "f3 48 ab")); // rep stos QWORD PTR es:[rdi],rax
  assert.equal(m.peek(DATA + 0x200n, 8), 0x1122334455667788n);
  assert.equal(m.peek(DATA + 0x208n, 8), 0x1122334455667788n);
  assert.equal(c.gpr[7], DATA + 0x1f8n);
});

Deno.test("rep movsb with overlapping operands replicates as the byte-by-byte copy does", () => {
  const m = machine();
  const c = m.cpu;
  m.poke(DATA, 1, 0xabn);
  c.gpr[6] = DATA;
  c.gpr[7] = DATA + 1n;
  c.gpr[1] = 8n;
  assertOk(run(m, "f3 a4"));
  assert.equal(m.peek(DATA, 8), 0xababababababababn);
});

Deno.test("rep stos stops after maxRepIterations with RIP on the instruction and RF set", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[7] = DATA;
  c.gpr[1] = 10n;
  c.gpr[0] = 0x5an;
  assertOk(run(m, "f3 aa", { maxRepIterations: 4 }));
  assert.equal(c.rip, CODE);
  assert.equal(c.gpr[1], 6n);
  assert.equal(c.gpr[7], DATA + 4n);
  assert.equal(c.rflags & FL.RF, FL.RF);
  assertOk(emulate(c, m.mem, { maxRepIterations: 4 }));
  assertOk(emulate(c, m.mem, { maxRepIterations: 4 }));
  assert.equal(c.rip, CODE + 2n);
  assert.equal(c.gpr[1], 0n);
  assert.equal(c.rflags & FL.RF, 0n);
  assert.equal(m.peek(DATA, 8), 0x5a5a5a5a5a5a5a5an);
  assert.equal(m.peek(DATA + 8n, 2), 0x5a5an);
  assert.equal(m.peek(DATA + 10n, 1), 0n);
});

Deno.test("a fault mid-way through rep movs keeps the iterations done, RIP stays", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[6] = DATA;
  c.gpr[7] = 0x60fffcn; // 4 bytes before the unmapped page
  c.gpr[1] = 8n;
  m.poke(DATA, 8, 0x0807060504030201n);
  const r = run(m, "f3 a4");
  assertException(r, 14, 0x2, 0x610000n);
  assert.equal(c.rip, CODE);
  assert.equal(c.gpr[1], 4n);
  assert.equal(c.gpr[6], DATA + 4n);
  assert.equal(c.gpr[7], 0x610000n);
  assert.equal(m.peek(0x60fffcn, 4), 0x04030201n);
});

Deno.test("repe cmpsb stops at the first difference; repne scasb finds a byte", () => {
  const m = machine();
  const c = m.cpu;
  m.poke(DATA, 4, 0x44332211n).poke(DATA + 0x10n, 4, 0x44ff2211n);
  c.gpr[6] = DATA;
  c.gpr[7] = DATA + 0x10n;
  c.gpr[1] = 4n;
  assertOk(run(m, "f3 a6")); // repz cmps
  assert.equal(c.gpr[1], 1n);
  assert.equal(c.gpr[6], DATA + 3n);
  assert.equal(c.rflags & FL.ZF, 0n);
  assert.equal(c.rflags & FL.CF, FL.CF, "0x33 < 0xff");
  c.rip = CODE;
  c.gpr[7] = DATA;
  c.gpr[1] = 100n;
  c.gpr[0] = 0x33n;
  assertOk(run(m, "f2 ae")); // repnz scas al,BYTE PTR es:[rdi]
  assert.equal(c.gpr[7], DATA + 3n);
  assert.equal(c.gpr[1], 97n);
  assert.equal(c.rflags & FL.ZF, FL.ZF);
});

Deno.test("ins/outs and in/out use the port I/O given, with the I/O permission check", () => {
  const m = machine();
  const c = m.cpu;
  const written: [number, number, number][] = [];
  const io = {
    in: (port: number, size: number) => port + size,
    out: (p: number, s: number, v: number) => void written.push([p, s, v]),
  };
  c.gpr[2] = 0x3f8n;
  assertOk(run(m, "ec", { io })); // in al,dx
  assert.equal(c.gpr[0] & 0xffn, 0xf9n);
  c.rip = CODE;
  c.gpr[0] = 0x41n;
  assertOk(run(m, "e6 80", { io })); // out 0x80,al
  assert.deepEqual(written, [[0x80, 1, 0x41]]);
  c.rip = CODE;
  c.gpr[7] = DATA;
  c.gpr[1] = 2n;
  assertOk(run(m, "66 f3 6d", { io })); // rep ins WORD PTR es:[rdi],dx
  assert.equal(m.peek(DATA, 4), 0x03fa03fan);
  // At CPL 3 with IOPL 0 the TSS I/O bitmap decides: none within the TSS limit is #GP(0).
  const u = machine({ cpl: 3 });
  u.cpu.tr = { ...u.cpu.tr, base: DATA + 0x800n, limit: 0x67 };
  u.poke(DATA + 0x800n + 102n, 2, 0x68n);
  u.cpu.gpr[2] = 0x3f9n;
  assertFaultNoChange(u, "ec", 13, 0, { io });
  // A bitmap with bit 0x3f9 clear allows the port; bit set refuses it.
  u.cpu.tr = { ...u.cpu.tr, limit: 0x68 + 0x2000 };
  u.poke(DATA + 0x800n + 0x68n + 0x7fn, 1, 0xfdn); // ports 0x3f8-0x3ff: only 0x3f9 allowed
  assertOk(run(u, "ec", { io }));
  u.cpu.rip = CODE;
  assertFaultNoChange(u, "66 ed", 13, 0, { io }); // in ax,dx: 0x3f9-0x3fa, 0x3fa refused
  // Without port I/O: unsupported.
  c.rip = CODE;
  assert.equal(run(m, "ec").kind, "unsupported");
});

// ---------------------------------------------------------------------------
// System instructions

Deno.test("cpuid, rdmsr and wrmsr (EFER and the FS/GS bases live in the state)", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[0] = 0xffff_ffff_0000_0000n;
  assertOk(run(m, "0f a2")); // cpuid leaf 0
  assert.equal(c.gpr[3], 0x756e6547n); // "Genu"
  assert.equal(c.gpr[0], 0xdn);
  c.rip = CODE;
  c.gpr[1] = 0xc0000080n;
  assertOk(run(m, "0f 32")); // rdmsr EFER
  assert.equal(c.gpr[0], 0xd01n);
  c.rip = CODE;
  c.gpr[1] = 0xc0000100n;
  c.gpr[2] = 0x1n;
  c.gpr[0] = 0x2000n;
  c.dirty = 0;
  assertOk(run(m, "0f 30")); // wrmsr FS_BASE
  assert.equal(c.seg[SEG.fs].base, 0x1_0000_2000n);
  assert.equal(c.dirty & DIRTY.sregs, DIRTY.sregs);
  c.rip = CODE;
  c.gpr[1] = 0x12345n;
  assertFaultNoChange(m, "0f 32", 13, 0); // unknown MSR
  c.gpr[1] = 0xc0000101n;
  c.gpr[2] = 0x8000n; // non-canonical GS base
  assertFaultNoChange(m, "0f 30", 13, 0);
  c.gpr[1] = 0xc0000080n;
  c.gpr[2] = 0n;
  c.gpr[0] = 0xd01n | (1n << 20n); // a reserved EFER bit
  assertFaultNoChange(m, "0f 30", 13, 0);
  assertFaultNoChange(machine({ cpl: 3 }), "0f 32", 13, 0);
});

Deno.test("swapgs exchanges GS.base and IA32_KERNEL_GS_BASE; rd/wrfsbase", () => {
  const m = machine();
  const c = m.cpu;
  c.seg[SEG.gs].base = 0x1111n;
  c.msrs.set(0xc0000102, 0x2222n);
  assertOk(run(m, "0f 01 f8")); // swapgs
  assert.equal(c.seg[SEG.gs].base, 0x2222n);
  assert.equal(c.msrs.get(0xc0000102), 0x1111n);
  c.rip = CODE;
  assertFaultNoChange(m, "f3 48 0f ae c0", 6); // rdfsbase rax without CR4.FSGSBASE
  c.cr4 |= 1n << 16n;
  c.gpr[0] = 0x7fff_0000_1000n;
  assertOk(run(m, "f3 48 0f ae d0")); // wrfsbase rax
  assert.equal(c.seg[SEG.fs].base, 0x7fff_0000_1000n);
});

Deno.test("mov to/from CR0, CR3, CR4, CR8 with the reserved-bit checks", () => {
  const m = machine();
  const c = m.cpu;
  assertOk(run(m, "0f 20 e0")); // mov rax,cr4
  assert.equal(c.gpr[0], c.cr4);
  c.rip = CODE;
  c.gpr[0] = c.cr4 | (1n << 7n); // PGE
  assertOk(run(m, "0f 22 e0")); // mov cr4,rax
  assert.equal(c.cr4 & (1n << 7n), 1n << 7n);
  c.rip = CODE;
  c.gpr[0] = c.cr4 | (1n << 15n); // reserved
  assertFaultNoChange(m, "0f 22 e0", 13, 0);
  c.gpr[0] = c.cr4 & ~0x20n; // clearing PAE in long mode
  assertFaultNoChange(m, "0f 22 e0", 13, 0);
  c.gpr[0] = c.cr0 & ~(1n << 31n); // clearing PG in 64-bit mode
  assertFaultNoChange(m, "0f 22 c0", 13, 0);
  c.gpr[0] = 1n << 60n; // CR3 above MAXPHYADDR
  assertFaultNoChange(m, "0f 22 d8", 13, 0);
  c.gpr[0] = 16n;
  assertFaultNoChange(m, "44 0f 22 c0", 13, 0); // mov cr8,rax: bits 63:4 reserved
  c.gpr[0] = 5n;
  assertOk(run(m, "44 0f 22 c0"));
  assert.equal(c.cr8, 5n);
  assertFaultNoChange(machine({ cpl: 3 }), "0f 20 d8", 13, 0);
});

Deno.test("xgetbv/xsetbv: XCR0 rules", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[1] = 0n;
  assertOk(run(m, "0f 01 d0")); // xgetbv
  assert.equal(c.gpr[0], 7n);
  assert.equal(c.gpr[2], 0n);
  for (const bad of [6n, 5n, 0x207n | 0x100n]) { // no x87; AVX without SSE; an unsupported bit
    c.rip = CODE;
    c.gpr[0] = bad;
    assertFaultNoChange(m, "0f 01 d1", 13, 0);
  }
  c.gpr[0] = 0x203n;
  c.dirty = 0;
  assertOk(run(m, "0f 01 d1")); // xsetbv
  assert.equal(c.xcr0, 0x203n);
  assert.equal(c.dirty & DIRTY.xcr0, DIRTY.xcr0);
  c.cr4 &= ~(1n << 18n);
  c.rip = CODE;
  assertFaultNoChange(m, "0f 01 d0", 6);
});

Deno.test("lgdt/sgdt and lidt/sidt round trip; sgdt at CPL 3 with UMIP is #GP", () => {
  const m = machine();
  const c = m.cpu;
  m.poke(DATA, 2, 0x7fn).poke(DATA + 2n, 8, 0xffff_8000_0012_3000n);
  c.gpr[0] = DATA;
  assertOk(run(m, "0f 01 10")); // lgdt [rax]
  assert.deepEqual(c.gdtr, { base: 0xffff_8000_0012_3000n, limit: 0x7f });
  c.rip = CODE;
  c.gpr[0] = DATA + 0x20n;
  assertOk(run(m, "0f 01 00")); // sgdt [rax]
  assert.equal(m.peek(DATA + 0x20n, 2), 0x7fn);
  assert.equal(m.peek(DATA + 0x22n, 8), 0xffff_8000_0012_3000n);
  const u = machine({ cpl: 3 });
  u.cpu.cr4 |= 1n << 11n;
  u.cpu.gpr[0] = DATA;
  assertFaultNoChange(u, "0f 01 00", 13, 0);
});

Deno.test("invlpg, wbinvd, clflush and prefetch do nothing but check what they must", () => {
  const m = machine();
  m.cpu.gpr[0] = 0xdead_0000n; // unmapped: invlpg and prefetch do not fault
  assertOk(run(m, "0f 01 38")); // invlpg BYTE PTR [rax]
  m.cpu.rip = CODE;
  assertOk(run(m, "0f 18 08")); // prefetcht0 BYTE PTR [rax]
  m.cpu.rip = CODE;
  assertException(run(m, "0f ae 38"), 14); // clflush BYTE PTR [rax] translates its operand
  m.cpu.rip = CODE;
  assertOk(run(m, "0f 09")); // wbinvd
  assertFaultNoChange(machine({ cpl: 3 }), "0f 09", 13, 0);
});

Deno.test("rdrand reports no random number: CF = 0, destination 0", () => {
  const m = machine({ cpuid: { "1": [0x906ea, 0x800, (1 << 30) | (1 << 26), 0x178bfbff] } });
  m.cpu.gpr[0] = 5n;
  m.cpu.rflags = 2n | FL.CF | FL.ZF;
  assertOk(run(m, "48 0f c7 f0")); // rdrand rax
  assert.equal(m.cpu.gpr[0], 0n);
  assert.equal(arith(m.cpu.rflags), 0n);
});

Deno.test("pushf/popf: IOPL and IF change only when privilege allows; VM and RF never", () => {
  const m = machine({ cpl: 3 });
  const c = m.cpu;
  c.rflags = 2n | FL.IF;
  m.poke(TestMachine.STACK_TOP - 8n, 8, 0x3000n | 0x10000n | 0x20000n | 0x1n); // IOPL 3, RF, VM, CF
  c.gpr[4] = TestMachine.STACK_TOP - 8n;
  assertOk(run(m, "9d")); // popf at CPL 3 with IOPL 0: IF is kept (CPL > IOPL), IOPL too
  assert.equal(c.rflags, 2n | FL.IF | FL.CF);
  assert.equal(c.gpr[4], TestMachine.STACK_TOP);
  c.rip = CODE;
  assertOk(run(m, "9c")); // pushf: the image has RF and VM cleared
  assert.equal(m.peek(TestMachine.STACK_TOP - 8n, 8), 2n | 0x200n | 1n);
});

Deno.test("execute() runs an already-decoded instruction", () => {
  const m = machine();
  const insn = decode(hex("48 83 c0 05"), 64, CODE); // add rax,0x5
  assertOk(execute(m.cpu, m.mem, insn));
  assert.equal(m.cpu.gpr[0], 5n);
  assert.equal(m.cpu.rip, CODE + 4n);
});

Deno.test("protection keys: PKRU is read only when a user page is accessed", () => {
  const m = machine({ cpl: 3 });
  const c = m.cpu;
  c.cr4 |= 1n << 22n; // PKE
  m.pt!.map(0x600000n, 0x10000, { user: true, pkey: 3 });
  c.xsaveArea[513] |= 2; // XSTATE_BV[9]
  c.xsaveArea[2688] = 1 << 6; // PKRU.AD3
  c.extendedLoads = 0;
  assertOk(run(m, "48 ff c0")); // inc rax: no memory access, no PKRU read
  assert.equal(c.extendedLoads, 0);
  c.rip = CODE;
  c.gpr[7] = DATA;
  const x = assertFaultNoChange(m, "8b 07", 14, 0x25); // mov eax,DWORD PTR [rdi]: P | U | PK
  assert.equal(x.cr2, DATA);
  c.xsaveArea[2688] = 2 << 6; // WD3 only: reads are fine, writes fault
  assertOk(run(m, "8b 07"));
  c.rip = CODE;
  assertFaultNoChange(m, "89 07", 14, 0x27);
});

Deno.test("compatibility mode: 32-bit code under long mode, 32-bit stack and addresses", () => {
  const m = machine({ mode: "compat32" });
  const c = m.cpu;
  c.gpr[4] = 0xffff_ffff_0080_0000n; // ESP = 0x800000; the upper half is ignored and kept
  c.gpr[0] = 0x1_2345_6789n;
  assertOk(run(m, "50")); // push eax
  assert.equal(m.peek(0x7ffffcn, 4), 0x2345_6789n);
  assert.equal(c.gpr[4], 0x7f_fffcn, "ESP written as a 32-bit register: zero-extended");
  assert.equal(c.rip, CODE + 1n);
  c.rip = CODE;
  assertOk(run(m, "48")); // dec eax: 0x48 is not a REX prefix outside 64-bit mode
  assert.equal(c.gpr[0], 0x2345_6788n);
});

Deno.test("TF with a REP instruction: one iteration, then #DB with RIP still on it", () => {
  const m = machine();
  const c = m.cpu;
  c.rflags = 2n | FL.TF;
  c.gpr[7] = DATA;
  c.gpr[1] = 3n;
  const r = run(m, "f3 aa"); // rep stos BYTE PTR es:[rdi],al
  assert.equal(assertException(r, 1).dr6, DR6_BS);
  assert.equal(c.gpr[1], 2n);
  assert.equal(c.rip, CODE);
});

// ---------------------------------------------------------------------------
// Alignment checking (SDM Vol. 3A, 6.15 "Interrupt 17", Table 6-7)

/** A CPL 3 machine with CR0.AM and RFLAGS.AC set (as Linux user space with AC set). */
function acMachine(vendor: "intel" | "amd" = "amd"): TestMachine {
  const m = machine({ cpl: 3, vendor });
  m.cpu.cr0 |= 1n << 18n; // AM
  m.cpu.rflags |= FL.AC;
  return m;
}

Deno.test("#AC(0): misaligned data accesses at CPL 3 with CR0.AM and RFLAGS.AC; bytes and lea never", () => {
  const m = acMachine();
  const c = m.cpu;
  c.gpr[7] = DATA + 2n;
  assertFaultNoChange(m, "8b 07", 17, 0); // mov eax,DWORD PTR [rdi]
  assertFaultNoChange(m, "48 89 07", 17, 0); // mov QWORD PTR [rdi],rax
  assertFaultNoChange(m, "01 07", 17, 0); // add DWORD PTR [rdi],eax (read-modify-write)
  assertFaultNoChange(m, "f0 0f c1 07", 17, 0); // lock xadd DWORD PTR [rdi],eax
  assertFaultNoChange(m, "0f c7 0f", 17, 0); // cmpxchg8b QWORD PTR [rdi]
  assertFaultNoChange(m, "0f ba 27 03", 17, 0); // bt DWORD PTR [rdi],0x3
  c.gpr[1] = 0n;
  assertFaultNoChange(m, "d3 27", 17, 0); // shl DWORD PTR [rdi],cl: a zero count still accesses it
  assertFaultNoChange(m, "0f 45 07", 17, 0); // cmovne eax,DWORD PTR [rdi]: read even when false
  c.gpr[7] = DATA + 1n;
  assertFaultNoChange(m, "66 8b 07", 17, 0); // mov ax,WORD PTR [rdi]
  assertFaultNoChange(m, "0f b7 07", 17, 0); // movzx eax,WORD PTR [rdi]
  assertFaultNoChange(m, "0f ae 1f", 17, 0); // stmxcsr DWORD PTR [rdi]
  assertFaultNoChange(m, "d9 3f", 17, 0); // fnstcw WORD PTR [rdi]
  assertOk(run(m, "8a 07")); // mov al,BYTE PTR [rdi]
  c.rip = CODE;
  assertOk(run(m, "48 8d 07")); // lea rax,[rdi]
  c.rip = CODE;
  assertOk(run(m, "0f 18 0f")); // prefetcht0 BYTE PTR [rdi]
  // Aligned accesses are fine.
  c.rip = CODE;
  c.gpr[7] = DATA + 8n;
  assertOk(run(m, "48 8b 07")); // mov rax,QWORD PTR [rdi]
});

Deno.test("#AC needs CPL 3, CR0.AM and RFLAGS.AC together", () => {
  for (const [cpl, am, ac] of [[0, true, true], [3, false, true], [3, true, false]] as const) {
    const m = machine({ cpl });
    if (am) m.cpu.cr0 |= 1n << 18n;
    if (ac) m.cpu.rflags |= FL.AC;
    m.cpu.gpr[7] = DATA + 1n;
    assertOk(run(m, "8b 07")); // mov eax,DWORD PTR [rdi]
  }
});

Deno.test("#AC on the stack: push, pop, call, ret, pushf, leave with a misaligned RSP", () => {
  for (const code of ["50", "5b", "e8 00 00 00 00", "c3", "9c", "66 50"]) {
    const m = acMachine();
    m.cpu.gpr[4] = STACK - 0x101n; // odd: misaligned for every size
    assertFaultNoChange(m, code, 17, 0);
  }
  const m = acMachine();
  m.cpu.gpr[4] = STACK - 0x102n; // 2-aligned: a 16-bit push is fine, a 64-bit one is not
  assertOk(run(m, "66 50")); // push ax
  m.cpu.rip = CODE;
  assertFaultNoChange(m, "50", 17, 0); // push rax
  m.cpu.gpr[5] = STACK - 0x101n;
  assertFaultNoChange(m, "c9", 17, 0); // leave: pops rbp at a misaligned RBP
});

Deno.test("#AC for string elements: each iteration is checked; byte strings never", () => {
  const m = acMachine();
  const c = m.cpu;
  c.gpr[6] = DATA;
  c.gpr[7] = DATA + 0x101n;
  c.gpr[1] = 4n;
  assertFaultNoChange(m, "f3 a5", 17, 0); // rep movsd: the destination is misaligned
  c.gpr[6] = DATA + 2n;
  c.gpr[7] = DATA + 0x100n;
  assertFaultNoChange(m, "f3 a5", 17, 0); // rep movsd: the source is misaligned
  assertFaultNoChange(m, "48 ad", 17, 0); // lodsq
  assertOk(run(m, "f3 a4")); // rep movsb
  assert.equal(c.gpr[1], 0n);
});

Deno.test("#AC order: after segmentation and canonical checks and an instruction's #GP alignment, before #PF", () => {
  const m = acMachine();
  const c = m.cpu;
  c.gpr[7] = 0x610001n; // an unmapped page: #AC comes first
  assertFaultNoChange(m, "8b 07", 17, 0);
  c.gpr[7] = 0x60fffen; // crossing into the unmapped page: #AC
  assertFaultNoChange(m, "8b 07", 17, 0);
  c.gpr[7] = 0x0000_8000_0000_0001n; // non-canonical: #GP(0) first
  assertFaultNoChange(m, "8b 07", 13, 0);
  c.gpr[7] = DATA + 1n;
  assertFaultNoChange(m, "66 0f 6f 07", 13, 0); // movdqa: #GP(0) wins over #AC
  assertFaultNoChange(m, "48 0f c7 0f", 13, 0); // cmpxchg16b: #GP(0) wins
  m.pt!.map(DATA, 0x10000, { user: true, writable: false });
  c.gpr[7] = DATA + 2n;
  assertFaultNoChange(m, "89 07", 17, 0); // a read-only page: #AC before #PF
  c.gpr[7] = DATA;
  assertFaultNoChange(m, "89 07", 14, 7); // aligned: the #PF
});

Deno.test("#AC for SIMD operands: 2/4/8-byte ones by size; 16- and 32-byte ones at 16 on AMD, at 8 on Intel", () => {
  const a = acMachine("amd");
  const c = a.cpu;
  c.gpr[7] = DATA + 4n;
  assertFaultNoChange(a, "f3 0f 7e 07", 17, 0); // movq xmm0,QWORD PTR [rdi]
  assertOk(run(a, "66 0f 3a 16 07 01")); // pextrd DWORD PTR [rdi],xmm0,0x1: 4 is enough
  c.rip = CODE;
  c.gpr[7] = DATA + 8n;
  assertFaultNoChange(a, "f3 0f 6f 07", 17, 0); // movdqu xmm0,XMMWORD PTR [rdi]
  assertFaultNoChange(a, "c5 fe 6f 07", 17, 0); // vmovdqu ymm0,YMMWORD PTR [rdi]
  c.gpr[7] = DATA + 16n;
  assertOk(run(a, "c5 fe 6f 07")); // vmovdqu ymm0,YMMWORD PTR [rdi]: 16 is enough
  const i = acMachine("intel");
  i.cpu.gpr[7] = DATA + 8n;
  assertOk(run(i, "f3 0f 6f 07")); // movdqu at 8: no #AC on Intel (SDM 6.15)
  i.cpu.gpr[7] = DATA + 4n;
  assertFaultNoChange(i, "f3 0f 6f 07", 17, 0);
  assertFaultNoChange(i, "f3 0f 7e 07", 17, 0); // movq xmm0,QWORD PTR [rdi]
  i.cpu.gpr[7] = DATA + 2n;
  assertFaultNoChange(i, "66 0f 7e 07", 17, 0); // movd DWORD PTR [rdi],xmm0
  assertOk(run(i, "66 0f 3a 14 07 01")); // pextrb BYTE PTR [rdi],xmm0,0x1
});

Deno.test("#AC for sgdt's pseudo-descriptor (4) and far pointers (as their offset)", () => {
  const m = acMachine();
  const c = m.cpu;
  c.gpr[0] = DATA + 4n;
  assertOk(run(m, "0f 01 00")); // sgdt [rax]: 10 bytes, 4-byte alignment is enough
  c.rip = CODE;
  c.gpr[0] = DATA + 2n;
  assertFaultNoChange(m, "0f 01 00", 17, 0);
  // lgs: m16:16 needs 2, m16:32 needs 4 (measured on AMD Zen); the selectors are null.
  c.gpr[7] = DATA + 0x42n;
  assertOk(run(m, "66 0f b5 07")); // lgs ax,DWORD PTR [rdi]
  c.rip = CODE;
  assertFaultNoChange(m, "0f b5 07", 17, 0); // lgs eax,FWORD PTR [rdi]
});

// The executor's segment loads and far transfers (_exec_segment.ts): iret in
// every mode, int n, far jmp/call/ret, mov/pop to segment registers and
// lds/lss, with the descriptor checks and their faults. Instructions are
// written as bytes with their assembly in a comment (objdump -M intel).
import assert from "node:assert/strict";
import {
  assertException,
  assertFaultNoChange,
  assertOk,
  FL,
  machine,
  run,
} from "./_exec_test_util.ts";
import { DR6_BS, emulate } from "./exec.ts";
import { hex, TestMachine } from "./testing.ts";
import { DIRTY, SEG, type SegmentCache } from "./types.ts";

const DATA = TestMachine.DATA;
const CODE = TestMachine.CODE;
const STACK = TestMachine.STACK_TOP;

/** A segment descriptor (SDM Vol. 3A, 3.4.5, Figure 3-8). */
function desc(
  base: number,
  limit: number,
  type: number,
  o: { s?: number; dpl?: number; p?: number; l?: number; db?: number; g?: number } = {},
): bigint {
  const { s = 1, dpl = 0, p = 1, l = 0, db = 1, g = 1 } = o;
  const lo = ((limit & 0xffff) | ((base & 0xffff) << 16)) >>> 0;
  const hi = (((base >>> 16) & 0xff) | (type << 8) | (s << 12) | (dpl << 13) | (p << 15) |
    (limit & 0xf0000) | (l << 21) | (db << 22) | (g << 23) | (base & 0xff000000)) >>> 0;
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** The test GDT: a Linux-like layout plus descriptors that fail each check. */
const GDT: Record<number, bigint> = {
  0x08: desc(0, 0xfffff, 0xb), // kernel code, 32-bit
  0x10: desc(0, 0xfffff, 0xb, { l: 1, db: 0 }), // kernel code, 64-bit
  0x18: desc(0, 0xfffff, 0x3), // kernel data
  0x20: desc(0, 0xfffff, 0xb, { dpl: 3 }), // user code, 32-bit
  0x28: desc(0, 0xfffff, 0x3, { dpl: 3 }), // user data
  0x30: desc(0, 0xfffff, 0xb, { dpl: 3, l: 1, db: 0 }), // user code, 64-bit
  0x38: desc(0, 0xfffff, 0x3, { p: 0 }), // data, not present
  0x40: desc(0, 0xfffff, 0xb, { p: 0, l: 1, db: 0 }), // 64-bit code, not present
  0x48: desc(0, 0xfffff, 0x1), // read-only data
  0x50: desc(0, 0xfffff, 0xb, { l: 1, db: 1 }), // code with L and D: invalid in IA-32e mode
  0x58: desc(0, 0, 0xc, { s: 0 }), // a call gate
  0x60: desc(0, 0xfffff, 0xf, { l: 1, db: 0 }), // conforming 64-bit code, DPL 0
  0x68: desc(0, 0xfffff, 0x2), // data, accessed bit clear
  0x70: desc(0, 0xfff, 0x9, { g: 0 }), // 32-bit code, 4 KiB limit, accessed bit clear
  0x78: desc(0x12340000, 0xfffff, 0x3), // data based at 0x12340000
  0x88: desc(0, 0xfffff, 0x8), // execute-only code (not loadable in DS)
};
const GDT_LIMIT = 0x8f;

/** Where the GDT lives: long mode at a data page (linear), protected mode at 0x20000. */
function withGdt(m: TestMachine): bigint {
  const long = m.pt !== null;
  const base = long ? DATA + 0x8000n : 0x20000n;
  for (const [sel, d] of Object.entries(GDT)) {
    if (long) m.poke(base + BigInt(sel), 8, d);
    else m.mem.set(Number(base) + Number(sel), 8, d);
  }
  m.cpu.gdtr = { base, limit: GDT_LIMIT };
  return base;
}

/** Pushes `values` (first = lowest address) as the frame at RSP/ESP, each `size` bytes. */
function frame(m: TestMachine, size: number, values: bigint[]): void {
  const sp = m.cpu.gpr[4];
  values.forEach((v, k) => {
    const at = sp + BigInt(k * size);
    if (m.pt) m.poke(at, size, v);
    else m.mem.set(Number(at), size, v);
  });
}

function seg(m: TestMachine, s: number): SegmentCache {
  return m.cpu.seg[s];
}

/** A 64-bit machine at CPL 0 with the test GDT, CS 0x10 and SS/DS 0x18. */
function long0(): TestMachine {
  const m = machine();
  withGdt(m);
  m.cpu.seg[SEG.cs].selector = 0x10;
  for (const s of [SEG.ss, SEG.ds, SEG.es]) m.cpu.seg[s].selector = 0x18;
  return m;
}

/** A 32-bit protected-mode machine at CPL 0 with the test GDT (CS 0x08, the rest 0x18). */
function prot0(): TestMachine {
  const m = machine({ mode: "protected32" });
  withGdt(m);
  m.cpu.seg[SEG.cs].selector = 0x08;
  return m;
}

// ---------------------------------------------------------------------------
// IRET

Deno.test("iretq at CPL 0 to CPL 0: pops RIP, CS, RFLAGS, RSP and SS; RF as loaded", () => {
  const m = long0();
  const c = m.cpu;
  c.gpr[4] = STACK - 0x100n;
  const flags = 2n | FL.CF | FL.IF | FL.RF | FL.AC | 0x2000n; // IOPL 2
  frame(m, 8, [0x401234n, 0x10n, flags, STACK - 0x40n, 0x18n]);
  assertOk(run(m, "48 cf")); // iretq
  assert.equal(c.rip, 0x401234n);
  assert.equal(c.gpr[4], STACK - 0x40n);
  assert.equal(c.rflags, flags, "RF, IOPL, IF and AC loaded at CPL 0");
  assert.equal(seg(m, SEG.cs).selector, 0x10);
  assert.equal(seg(m, SEG.cs).l, 1);
  assert.equal(seg(m, SEG.ss).selector, 0x18);
  assert.equal(c.dirty, DIRTY.gpr | DIRTY.rip | DIRTY.sregs);
});

Deno.test("iretq to CPL 0 with a null SS (as after an interrupt from user space) loads it", () => {
  const m = long0();
  const c = m.cpu;
  c.gpr[4] = STACK - 0x100n;
  frame(m, 8, [0x401000n, 0x10n, 2n, STACK - 8n, 0n]);
  assertOk(run(m, "48 cf")); // iretq
  const ss = seg(m, SEG.ss);
  assert.equal(ss.selector, 0);
  assert.equal(ss.dpl, 0, "CPL stays 0 (SS.DPL)");
  assert.equal(c.gpr[4], STACK - 8n);
  // A null SS with RPL != the new CPL, or to CPL 3, is #GP(0).
  c.rip = CODE;
  c.gpr[4] = STACK - 0x100n;
  frame(m, 8, [0x401000n, 0x10n, 2n, STACK - 8n, 3n]);
  assertFaultNoChange(m, "48 cf", 13, 0);
  frame(m, 8, [0x401000n, 0x33n, 2n, STACK - 8n, 3n]);
  assertFaultNoChange(m, "48 cf", 13, 0);
});

Deno.test("iretq to CPL 3: user CS and SS, kernel DS made null, FS base kept, CPL 3", () => {
  const m = long0();
  const c = m.cpu;
  c.seg[SEG.fs] = { ...c.seg[SEG.fs], selector: 0, unusable: 1, present: 0, base: 0x7f00n };
  c.gpr[4] = STACK - 0x100n;
  frame(m, 8, [0x7000_0000_1000n, 0x33n, 2n | FL.IF, 0x7fff_0000n, 0x2bn]);
  assertOk(run(m, "48 cf")); // iretq
  assert.equal(c.rip, 0x7000_0000_1000n);
  assert.equal(seg(m, SEG.cs).selector, 0x33);
  assert.equal(seg(m, SEG.cs).dpl, 3);
  assert.equal(seg(m, SEG.ss).selector, 0x2b);
  assert.equal(seg(m, SEG.ss).dpl, 3, "CPL 3");
  assert.equal(c.gpr[4], 0x7fff_0000n);
  assert.equal(seg(m, SEG.ds).selector, 0, "DPL-0 data is not usable at CPL 3");
  assert.equal(seg(m, SEG.ds).unusable, 1);
  assert.equal(seg(m, SEG.fs).base, 0x7f00n, "a null FS keeps its base (user TLS)");
  assert.equal(c.rflags & FL.IF, FL.IF);
});

Deno.test("iret RFLAGS rules: IF only if CPL <= IOPL, IOPL and VIF/VIP only at CPL 0, 16-bit keeps the upper half", () => {
  const m = machine({ cpl: 3 });
  withGdt(m);
  const c = m.cpu;
  const user = () => {
    c.rip = CODE;
    c.gpr[4] = STACK - 0x100n;
  };
  // CPL 3, IOPL 0: IF and IOPL stay as they were (IF set, IOPL 0).
  user();
  c.rflags = 2n | FL.IF;
  const img = 2n | FL.CF | FL.IOPL | 0x180000n | FL.AC; // IF clear, IOPL 3, VIF, VIP, AC
  frame(m, 8, [0x401000n, 0x33n, img, STACK - 8n, 0x2bn]);
  assertOk(run(m, "48 cf")); // iretq
  assert.equal(c.rflags, 2n | FL.IF | FL.CF | FL.AC);
  // CPL 3 with IOPL 3: IF follows the image; IOPL still does not.
  user();
  c.rflags = 2n | FL.IF | FL.IOPL;
  frame(m, 8, [0x401000n, 0x33n, 2n, STACK - 8n, 0x2bn]);
  assertOk(run(m, "48 cf"));
  assert.equal(c.rflags, 2n | FL.IOPL);
  // CPL 0: everything, VIF and VIP too; VM never.
  const k = long0();
  k.cpu.gpr[4] = STACK - 0x100n;
  frame(k, 8, [0x401000n, 0x10n, img | 0x20000n, STACK - 8n, 0x18n]);
  assertOk(run(k, "48 cf"));
  assert.equal(k.cpu.rflags, img);
  // iretw in 32-bit protected mode: only FLAGS[15:0] change; RF is not loaded (and cleared).
  const p = prot0();
  p.cpu.rflags = 2n | FL.AC | FL.RF | FL.IF;
  p.cpu.gpr[4] = 0x3f000n;
  frame(p, 2, [0x2000n, 0x08n, 2n | FL.CF]);
  assertOk(run(p, "66 cf")); // iretw
  assert.equal(p.cpu.rflags, 2n | FL.AC | FL.CF);
  assert.equal(p.cpu.rip, 0x2000n);
  assert.equal(p.cpu.gpr[4], 0x3f006n);
});

Deno.test("iretd in 32-bit protected mode: same privilege pops 3 words; outer privilege pops ESP and SS too", () => {
  const m = prot0();
  const c = m.cpu;
  c.gpr[4] = 0x3f000n;
  frame(m, 4, [0x1234n, 0x08n, 0x202n]);
  assertOk(run(m, "cf")); // iret
  assert.equal(c.rip, 0x1234n);
  assert.equal(c.gpr[4], 0x3f00cn);
  assert.equal(c.rflags, 0x202n);
  assert.equal(c.dirty & DIRTY.sregs, DIRTY.sregs);
  // To CPL 3: ESP and SS from the frame, DS (DPL 0) made null.
  c.rip = 0x1000n;
  c.gpr[4] = 0x3f000n;
  frame(m, 4, [0x5000n, 0x23n, 0x202n, 0x8000n, 0x2bn]);
  assertOk(run(m, "cf"));
  assert.equal(c.rip, 0x5000n);
  assert.equal(c.gpr[4], 0x8000n);
  assert.equal(seg(m, SEG.cs).selector, 0x23);
  assert.equal(seg(m, SEG.ss).dpl, 3);
  assert.equal(seg(m, SEG.ds).unusable, 1);
  assert.equal(seg(m, SEG.ds).selector, 0);
});

Deno.test("iret faults change nothing: each descriptor check with its error code", () => {
  const cases: [string, bigint[], number, number][] = [
    ["null CS", [0x401000n, 0n, 2n, STACK, 0x18n], 13, 0],
    ["CS beyond the GDT limit", [0x401000n, 0x90n, 2n, STACK, 0x18n], 13, 0x90],
    ["CS is data", [0x401000n, 0x18n, 2n, STACK, 0x18n], 13, 0x18],
    ["CS RPL < CPL", [0x401000n, 0x10n, 2n, STACK, 0x18n], 13, 0x10], // at CPL 3 below
    ["nonconforming CS with DPL != RPL", [0x401000n, 0x13n, 2n, STACK, 0x18n], 13, 0x10],
    ["CS not present", [0x401000n, 0x40n, 2n, STACK, 0x18n], 11, 0x40],
    ["CS with L and D", [0x401000n, 0x50n, 2n, STACK, 0x18n], 13, 0x50],
    ["SS RPL != CS RPL", [0x401000n, 0x33n, 2n, STACK, 0x28n], 13, 0x28],
    ["SS not writable", [0x401000n, 0x10n, 2n, STACK, 0x48n], 13, 0x48],
    ["SS DPL != RPL", [0x401000n, 0x33n, 2n, STACK, 0x1bn], 13, 0x18],
    ["SS not present", [0x401000n, 0x10n, 2n, STACK, 0x38n], 12, 0x38],
    ["SS is code", [0x401000n, 0x10n, 2n, STACK, 0x10n], 13, 0x10],
    ["non-canonical RIP", [0x8000_0000_0000n, 0x10n, 2n, STACK, 0x18n], 13, 0],
  ];
  for (const [what, values, vector, code] of cases) {
    const m = what === "CS RPL < CPL" ? machine({ cpl: 3 }) : long0();
    withGdt(m);
    m.cpu.gpr[4] = STACK - 0x100n;
    frame(m, 8, values);
    const x = assertFaultNoChange(m, "48 cf", vector, code);
    assert.equal(x.errorCode, code, what);
  }
  // NT = 1: #GP(0) in IA-32e mode; a task return (unsupported) in protected mode.
  const m = long0();
  m.cpu.rflags = 2n | 0x4000n;
  assertFaultNoChange(m, "48 cf", 13, 0);
  const p = prot0();
  p.cpu.rflags = 2n | 0x4000n;
  const r = run(p, "cf");
  assert.equal(r.kind, "unsupported");
  assert.match((r as { message: string }).message, /NT = 1.*task return/);
  // An EIP beyond the new CS limit: #GP(0); the stack beyond SS's limit: #SS(0).
  const q = prot0();
  q.cpu.gpr[4] = 0x3f000n;
  frame(q, 4, [0xff0n, 0x70n, 2n]);
  assertOk(run(q, "cf"));
  q.cpu.rip = 0x1000n;
  q.cpu.seg[SEG.cs] = { ...q.cpu.seg[SEG.cs], limit: 0xffffffff };
  q.cpu.gpr[4] = 0x3f000n;
  frame(q, 4, [0x1000n, 0x08n, 2n]);
  q.cpu.seg[SEG.ss] = { ...q.cpu.seg[SEG.ss], limit: 0x3f008 };
  assertFaultNoChange(q, "cf", 12, 0);
  q.cpu.seg[SEG.ss] = { ...q.cpu.seg[SEG.ss], limit: 0xffffffff };
  frame(q, 4, [0x2000n, 0x70n, 2n]);
  assertFaultNoChange(q, "cf", 13, 0);
});

Deno.test("iret sets a clear accessed bit in the descriptor; on a read-only GDT page that is a #PF", () => {
  const m = long0();
  const gdt = DATA + 0x8000n;
  m.poke(gdt + 0x10n, 8, desc(0, 0xfffff, 0xa, { l: 1, db: 0 }));
  m.cpu.gpr[4] = STACK - 0x100n;
  frame(m, 8, [0x401000n, 0x10n, 2n, STACK, 0x18n]);
  assertOk(run(m, "48 cf"));
  assert.equal(Number((m.peek(gdt + 0x10n, 8) >> 40n) & 0xfn), 0xb, "accessed bit set in memory");
  assert.equal(seg(m, SEG.cs).type, 0xb);
  // Read-only GDT page: the write of the accessed bit faults (W/R set in the error code).
  const r = long0();
  r.poke(gdt + 0x10n, 8, desc(0, 0xfffff, 0xa, { l: 1, db: 0 }));
  r.pt!.map(gdt, r.phys(gdt), { writable: false });
  r.cpu.gpr[4] = STACK - 0x100n;
  frame(r, 8, [0x401000n, 0x10n, 2n, STACK, 0x18n]);
  const x = assertFaultNoChange(r, "48 cf", 14);
  assert.equal(x.cr2, gdt + 0x15n);
  assert.equal(x.errorCode! & 3, 3, "present, write");
});

Deno.test("iret in real mode (16- and 32-bit) and in virtual-8086 mode with IOPL 3", () => {
  const m = machine({ mode: "real" });
  const c = m.cpu;
  const sp = 0x3000 * 16 + 0xfff0;
  m.mem.set(sp, 2, 0x0100n).set(sp + 2, 2, 0x2000n).set(sp + 4, 2, 0xf2d7n);
  c.rflags = 2n | 0x100000n; // VIP stays
  assertOk(run(m, "cf")); // iret
  assert.equal(c.rip, 0x100n);
  assert.equal(seg(m, SEG.cs).selector, 0x2000);
  assert.equal(seg(m, SEG.cs).base, 0x20000n);
  assert.equal(c.gpr[4], 0xfff6n);
  assert.equal(
    c.rflags,
    0x100000n | 0x72d7n,
    "bits 15 and 3, 5 of the image read as 0, bit 1 as 1",
  );
  // 66 cf: 32-bit frame; EFLAGS := (image AND 257FD5H) OR (EFLAGS AND 1A0000H).
  const r = machine({ mode: "real" });
  r.mem.set(sp, 4, 0x0200n).set(sp + 4, 4, 0x1000n).set(sp + 8, 4, 0x3f7fd7n);
  r.cpu.rflags = 2n | 0x80000n;
  assertOk(run(r, "66 cf"));
  assert.equal(r.cpu.rip, 0x200n);
  assert.equal(r.cpu.rflags, (0x3f7fd7n & 0x257fd5n) | 0x80000n | 2n);
  assert.equal(r.cpu.gpr[4], 0xfffcn);

  const v = machine({ mode: "protected32" });
  v.cpu.rflags = 2n | 0x20000n | FL.IOPL; // VM, IOPL 3
  v.cpu.seg[SEG.ss] = { ...v.cpu.seg[SEG.ss], base: 0n, db: 0, limit: 0xffff };
  v.cpu.gpr[4] = 0x8000n;
  v.mem.set(0x8000, 2, 0x10n).set(0x8002, 2, 0x0100n).set(0x8004, 2, 0x0201n);
  assertOk(run(v, "cf"));
  assert.equal(v.cpu.rflags, 2n | 0x20000n | FL.IOPL | FL.IF | FL.CF, "VM and IOPL kept");
  assert.equal(seg(v, SEG.cs).base, 0x1000n);
  const w = machine({ mode: "protected32" });
  w.cpu.rflags = 2n | 0x20000n; // IOPL 0
  assertFaultNoChange(w, "cf", 13, 0);
});

Deno.test("iret with TF set traps (#DB, BS) after it completes; TF loaded by iret does not", () => {
  const m = prot0();
  m.cpu.rflags = 2n | FL.TF;
  m.cpu.gpr[4] = 0x3f000n;
  frame(m, 4, [0x1234n, 0x08n, 0x2n]);
  const r = run(m, "cf");
  assert.equal(assertException(r, 1).dr6, DR6_BS);
  assert.equal(m.cpu.rip, 0x1234n);
  const n = prot0();
  n.cpu.gpr[4] = 0x3f000n;
  frame(n, 4, [0x1234n, 0x08n, 0x102n]);
  assertOk(run(n, "cf"));
  assert.equal(n.cpu.rflags & FL.TF, FL.TF);
});

// ---------------------------------------------------------------------------
// INT n

Deno.test("int n is a software interrupt: RIP past it, no error code, any vector", () => {
  const m = machine();
  const r = run(m, "cd 80"); // int 0x80
  const x = assertException(r, 0x80);
  assert.equal(x.software, true);
  assert.equal(x.errorCode, undefined);
  assert.equal(m.cpu.rip, CODE + 2n);
  m.cpu.rip = CODE;
  const e = assertException(run(m, "cd 0e"), 14); // int 0xe: not a #PF
  assert.equal(e.software, true);
  assert.equal(e.errorCode, undefined);
  // int3 and into stay exceptions.
  m.cpu.rip = CODE;
  assert.equal(assertException(run(m, "cc"), 3).software, undefined);
  // Real mode too.
  const rm = machine({ mode: "real" });
  assert.equal(assertException(run(rm, "cd 10"), 0x10).software, true);
  assert.equal(rm.cpu.rip, 0x1002n);
});

Deno.test("int n at CPL 3: the gate's DPL must be 3 and the gate within the IDT (#GP(n*8+2))", () => {
  const m = machine({ cpl: 3 });
  const idt = DATA + 0x4000n;
  m.cpu.idtr = { base: idt, limit: 0x80 * 16 + 15 };
  m.poke(idt + 0x80n * 16n, 8, desc(0, 0, 0xe, { s: 0, dpl: 3 })); // a DPL-3 interrupt gate
  m.poke(idt + 0x40n * 16n, 8, desc(0, 0, 0xe, { s: 0, dpl: 0 }));
  assert.equal(assertException(run(m, "cd 80"), 0x80).software, true);
  m.cpu.rip = CODE;
  assertFaultNoChange(m, "cd 40", 13, 0x40 * 8 + 2);
  m.cpu.idtr = { base: idt, limit: 0x80 * 16 + 14 };
  assertFaultNoChange(m, "cd 80", 13, 0x80 * 8 + 2);
  // Virtual-8086 mode with IOPL < 3: #GP(0).
  const v = machine({ mode: "protected32" });
  v.cpu.rflags = 2n | 0x20000n;
  assertFaultNoChange(v, "cd 21", 13, 0);
});

// ---------------------------------------------------------------------------
// Far jmp, call, ret

Deno.test("far jmp through m16:32 from 64-bit to compatibility mode, and back with m16:64 (Intel)", () => {
  const m = long0();
  const c = m.cpu;
  m.poke(DATA, 4, 0x2000n).poke(DATA + 4n, 2, 0x08n);
  c.gpr[3] = DATA;
  assertOk(run(m, "ff 2b")); // jmp FWORD PTR [rbx]
  assert.equal(c.rip, 0x2000n);
  assert.equal(seg(m, SEG.cs).selector, 0x08);
  assert.equal(seg(m, SEG.cs).l, 0);
  assert.equal(seg(m, SEG.cs).db, 1);
  // REX.W: m16:64 on Intel.
  const k = long0();
  k.poke(DATA, 8, 0x7000_0000_0000n).poke(DATA + 8n, 2, 0x10n);
  k.cpu.gpr[3] = DATA;
  assertOk(run(k, "48 ff 2b")); // rex.W jmp FWORD PTR [rbx]
  assert.equal(k.cpu.rip, 0x7000_0000_0000n);
  // AMD ignores REX.W: m16:32.
  const a = machine({ vendor: "amd" });
  withGdt(a);
  a.poke(DATA, 4, 0x3000n).poke(DATA + 4n, 2, 0x10n);
  a.cpu.gpr[3] = DATA;
  assertOk(run(a, "48 ff 2b"));
  assert.equal(a.cpu.rip, 0x3000n);
  // The register form is #UD.
  const u = long0();
  assertFaultNoChange(u, "ff eb", 6);
});

Deno.test("far jmp checks: data, DPL, not present, L+D, call gate (unsupported), conforming keeps CPL", () => {
  const m = long0();
  m.cpu.gpr[3] = DATA;
  const jmp = (sel: number) => m.poke(DATA, 4, 0x1000n).poke(DATA + 4n, 2, BigInt(sel));
  jmp(0x18);
  assertFaultNoChange(m, "ff 2b", 13, 0x18);
  jmp(0x30); // DPL 3 nonconforming at CPL 0
  assertFaultNoChange(m, "ff 2b", 13, 0x30);
  jmp(0x13); // RPL 3 > CPL 0
  assertFaultNoChange(m, "ff 2b", 13, 0x10);
  jmp(0x40);
  assertFaultNoChange(m, "ff 2b", 11, 0x40);
  jmp(0x50);
  assertFaultNoChange(m, "ff 2b", 13, 0x50);
  jmp(0);
  assertFaultNoChange(m, "ff 2b", 13, 0);
  jmp(0x58);
  const r = run(m, "ff 2b");
  assert.equal(r.kind, "unsupported");
  assert.match((r as { message: string }).message, /call gate/);
  // A conforming DPL-0 segment from CPL 3: allowed, CS.RPL stays 3.
  const u = machine({ cpl: 3 });
  withGdt(u);
  u.poke(DATA, 4, 0x1000n).poke(DATA + 4n, 2, 0x60n);
  u.cpu.gpr[3] = DATA;
  assertOk(run(u, "ff 2b"));
  assert.equal(seg(u, SEG.cs).selector, 0x63);
  assert.equal(seg(u, SEG.cs).dpl, 0);
  assert.equal(seg(u, SEG.ss).dpl, 3, "CPL unchanged");
});

Deno.test("jmp ptr16:32 in protected mode checks the new CS limit; in real mode it loads base = selector * 16", () => {
  const m = prot0();
  assertOk(run(m, "ea 00 08 00 00 70 00")); // jmp 0x70:0x800
  assert.equal(m.cpu.rip, 0x800n);
  assert.equal(seg(m, SEG.cs).limit, 0xfff);
  assert.equal(seg(m, SEG.cs).selector, 0x70);
  assert.equal(m.mem.get(0x20000 + 0x70 + 5, 1) & 1n, 1n, "accessed bit set");
  const p = prot0();
  assertFaultNoChange(p, "ea 00 10 00 00 70 00", 13, 0); // beyond the 4 KiB limit
  const r = machine({ mode: "real" });
  assertOk(run(r, "ea 34 12 00 f0")); // jmp 0xf000:0x1234
  assert.equal(r.cpu.rip, 0x1234n);
  assert.equal(seg(r, SEG.cs).base, 0xf0000n);
  assert.equal(seg(r, SEG.cs).selector, 0xf000);
});

Deno.test("far call pushes CS and the return address; retf and lretq return; retf imm16 releases parameters", () => {
  const m = prot0();
  const c = m.cpu;
  assertOk(run(m, "9a 00 20 00 00 08 00")); // call 0x8:0x2000
  assert.equal(c.rip, 0x2000n);
  assert.equal(c.gpr[4], 0x40000n - 8n);
  assert.equal(m.mem.get(0x3fff8, 4), 0x1007n);
  assert.equal(m.mem.get(0x3fffc, 4), 0x08n);
  assertOk(run(m, "ca 08 00")); // retf 0x8
  assert.equal(c.rip, 0x1007n);
  assert.equal(c.gpr[4], 0x40000n + 8n);
  // 64-bit: lretq (48 cb) to compatibility mode, retf with 32-bit operands.
  const k = long0();
  k.cpu.gpr[4] = STACK - 0x100n;
  frame(k, 8, [0x5000n, 0x08n]);
  assertOk(run(k, "48 cb")); // lretq
  assert.equal(k.cpu.rip, 0x5000n);
  assert.equal(seg(k, SEG.cs).selector, 0x08);
  assert.equal(k.cpu.gpr[4], STACK - 0x100n + 16n);
  const l = long0();
  l.cpu.gpr[4] = STACK - 0x100n;
  frame(l, 4, [0x401000n, 0x10n]);
  assertOk(run(l, "cb")); // retf (m16:32)
  assert.equal(l.cpu.rip, 0x401000n);
  assert.equal(l.cpu.gpr[4], STACK - 0x100n + 8n);
  // A far call whose push faults changes nothing (the stack page below is not mapped).
  const f = long0();
  f.poke(DATA, 4, 0x1000n).poke(DATA + 4n, 2, 0x10n);
  f.cpu.gpr[3] = DATA;
  f.cpu.gpr[4] = 0x7f0000n;
  assertFaultNoChange(f, "ff 1b", 14); // call FWORD PTR [rbx]
});

Deno.test("retf to an outer privilege level pops SS:ESP, releases parameters on both stacks, nulls DS", () => {
  const m = prot0();
  const c = m.cpu;
  c.gpr[4] = 0x3f000n;
  // EIP, CS, 8 bytes of parameters, ESP, SS.
  frame(m, 4, [0x5000n, 0x23n, 0n, 0n, 0x9000n, 0x2bn]);
  assertOk(run(m, "ca 08 00")); // retf 0x8
  assert.equal(c.rip, 0x5000n);
  assert.equal(seg(m, SEG.cs).selector, 0x23);
  assert.equal(seg(m, SEG.ss).selector, 0x2b);
  assert.equal(c.gpr[4], 0x9008n);
  assert.equal(seg(m, SEG.ds).unusable, 1);
  // To CPL 3 with a DPL-0 SS: #GP(SS).
  const p = prot0();
  p.cpu.gpr[4] = 0x3f000n;
  frame(p, 4, [0x5000n, 0x23n, 0x9000n, 0x18n]);
  assertFaultNoChange(p, "cb", 13, 0x18);
});

// ---------------------------------------------------------------------------
// Segment register loads

Deno.test("mov Sreg: data segments load their base and limit; null DS is unusable; the checks fault", () => {
  const m = prot0();
  const c = m.cpu;
  c.gpr[0] = 0x78n;
  assertOk(run(m, "8e d8")); // mov ds,eax
  assert.equal(seg(m, SEG.ds).base, 0x12340000n);
  assert.equal(seg(m, SEG.ds).limit, 0xffffffff);
  assert.equal(seg(m, SEG.ds).selector, 0x78);
  assert.equal(c.dirty & DIRTY.sregs, DIRTY.sregs);
  c.rip = 0x1000n;
  c.gpr[0] = 0n;
  assertOk(run(m, "8e c0")); // mov es,eax: null
  assert.equal(seg(m, SEG.es).unusable, 1);
  // The accessed bit is set in the descriptor.
  c.rip = 0x1000n;
  c.gpr[0] = 0x68n;
  assertOk(run(m, "8e e0")); // mov fs,eax
  assert.equal(m.mem.get(0x20000 + 0x68 + 5, 1), 0x93n);
  assert.equal(seg(m, SEG.fs).type, 3);
  const cases: [string, number, number, number][] = [
    ["8e d8", 0x38, 11, 0x38], // mov ds: not present
    ["8e d8", 0x88, 13, 0x88], // execute-only code
    ["8e d8", 0x98, 13, 0x98], // beyond the limit
    ["8e d0", 0x00, 13, 0], // mov ss: null
    ["8e d0", 0x48, 13, 0x48], // mov ss: read-only
    ["8e d0", 0x38, 12, 0x38], // mov ss: not present
    ["8e d0", 0x2b, 13, 0x28], // mov ss: RPL 3 at CPL 0
    ["8e d0", 0x28, 13, 0x28], // mov ss: DPL 3 at CPL 0
  ];
  for (const [code, sel, vector, err] of cases) {
    const p = prot0();
    p.cpu.gpr[0] = BigInt(sel);
    assertFaultNoChange(p, code, vector, err);
  }
  // At CPL 3 a DPL-0 data segment is #GP; a readable conforming code segment is not.
  const u = machine({ mode: "protected32", cpl: 3 });
  withGdt(u);
  u.cpu.gpr[0] = 0x18n;
  assertFaultNoChange(u, "8e d8", 13, 0x18);
  u.cpu.gpr[0] = 0x63n;
  assertOk(run(u, "8e d8"));
});

Deno.test("mov ss in 64-bit mode may load a null selector at CPL 0; real mode loads selector * 16", () => {
  const m = long0();
  m.cpu.gpr[0] = 0n;
  assertOk(run(m, "8e d0")); // mov ss,eax
  assert.equal(seg(m, SEG.ss).selector, 0);
  assert.equal(seg(m, SEG.ss).dpl, 0);
  m.cpu.rip = CODE;
  m.cpu.gpr[0] = 3n;
  assertFaultNoChange(m, "8e d0", 13, 0); // RPL != CPL
  const r = machine({ mode: "real" });
  r.cpu.gpr[0] = 0x1234n;
  assertOk(run(r, "8e d8")); // mov ds,ax
  assert.equal(seg(r, SEG.ds).base, 0x12340n);
  assert.equal(seg(r, SEG.ds).selector, 0x1234);
});

Deno.test("pop ds, pop fs and lss load segment registers from memory", () => {
  const m = prot0();
  const c = m.cpu;
  c.gpr[4] = 0x3f000n;
  m.mem.set(0x3f000, 4, 0xffff0078n); // the upper half of the slot is ignored
  assertOk(run(m, "1f")); // pop ds
  assert.equal(seg(m, SEG.ds).base, 0x12340000n);
  assert.equal(c.gpr[4], 0x3f004n);
  const k = long0();
  k.cpu.gpr[4] = STACK - 8n;
  k.cpu.seg[SEG.fs] = { ...k.cpu.seg[SEG.fs], base: 0x5555n };
  frame(k, 8, [0x18n]);
  assertOk(run(k, "0f a1")); // pop fs
  assert.equal(seg(k, SEG.fs).selector, 0x18);
  assert.equal(seg(k, SEG.fs).base, 0n);
  assert.equal(k.cpu.gpr[4], STACK);
  // lss esp,[ebx]: the offset into ESP and the selector into SS, together.
  const l = prot0();
  l.mem.set(0x10000, 4, 0x2345n).set(0x10004, 2, 0x18n);
  l.cpu.gpr[3] = 0x10000n;
  assertOk(run(l, "0f b2 23")); // lss esp,FWORD PTR [ebx]
  assert.equal(l.cpu.gpr[4], 0x2345n);
  assert.equal(seg(l, SEG.ss).selector, 0x18);
  l.cpu.rip = 0x1000n;
  l.mem.set(0x10004, 2, 0x38n);
  assertFaultNoChange(l, "0f b2 23", 12, 0x38);
});

Deno.test("execute-only code, LDT selectors and an unusable LDT", () => {
  // A selector with TI = 1 and no LDT: #GP(selector).
  const m = prot0();
  m.cpu.gpr[0] = 0x1cn;
  assertFaultNoChange(m, "8e d8", 13, 0x1c);
  // With an LDT at 0x28000 holding a data descriptor at index 1.
  const l = prot0();
  l.mem.set(0x28008, 8, desc(0x1000, 0xfffff, 0x3));
  l.cpu.ldtr = { ...l.cpu.ldtr, base: 0x28000n, limit: 0xf, unusable: 0, present: 1 };
  l.cpu.gpr[0] = 0x0cn;
  assertOk(run(l, "8e d8"));
  assert.equal(seg(l, SEG.ds).base, 0x1000n);
});

Deno.test("emulate() fetches through the new mode after a far jmp: the next instruction decodes as 32-bit", () => {
  const m = long0();
  m.poke(DATA, 4, 0x401100n).poke(DATA + 4n, 2, 0x08n);
  m.cpu.gpr[3] = DATA;
  assertOk(run(m, "ff 2b"));
  m.mem.load(m.phys(0x401100n), hex("48")); // dec eax in 32-bit code
  m.cpu.gpr[0] = 5n;
  assertOk(emulate(m.cpu, m.mem));
  assert.equal(m.cpu.gpr[0], 4n);
});

Deno.test("mov ss and pop ss leave the mov-ss interrupt shadow and hold off the single-step trap", () => {
  // SDM Vol. 3A, 6.8.3: interrupts, debug exceptions and single-step traps wait for the next
  // instruction after an SS load by mov or pop (not lss).
  const m = long0();
  m.cpu.gpr[0] = 0x18n;
  let r = run(m, "8e d0"); // mov ss,eax
  assertOk(r);
  assert.equal(r.kind === "ok" && r.shadow, "mov-ss");
  m.cpu.rip = CODE;
  r = run(m, "8e d8"); // mov ds,eax: no shadow
  assertOk(r);
  assert.equal(r.kind === "ok" ? r.shadow : "?", undefined);
  // With TF set: no #DB after mov ss; the next instruction (TF still set) traps.
  m.cpu.rip = CODE;
  m.cpu.rflags |= FL.TF;
  r = run(m, "8e d0");
  assertOk(r);
  assert.equal(r.kind === "ok" && r.shadow, "mov-ss");
  assert.equal(m.cpu.rip, CODE + 2n);
  assert.equal(m.cpu.rflags & FL.TF, FL.TF);
  m.cpu.rip = CODE;
  assert.equal(assertException(run(m, "90"), 1).dr6, DR6_BS); // nop: the single-step trap
  // pop ss (32-bit protected mode).
  const p = prot0();
  p.cpu.gpr[4] = 0x3f000n;
  p.mem.set(0x3f000, 4, 0x18n);
  r = run(p, "17"); // pop ss
  assertOk(r);
  assert.equal(r.kind === "ok" && r.shadow, "mov-ss");
  assert.equal(p.cpu.gpr[4], 0x3f004n);
  // lss loads SS without a shadow.
  const l = prot0();
  l.mem.set(0x10000, 4, 0x2345n).set(0x10004, 2, 0x18n);
  l.cpu.gpr[3] = 0x10000n;
  r = run(l, "0f b2 23"); // lss esp,FWORD PTR [ebx]
  assertOk(r);
  assert.equal(r.kind === "ok" ? r.shadow : "?", undefined);
});

Deno.test("lgs with REX.W: m16:64 on Intel; AMD ignores REX.W (m16:32, the offset zero-extended)", () => {
  const i = long0();
  i.poke(DATA, 8, 0x1122_3344_5566_7788n).poke(DATA + 8n, 2, 0x18n);
  i.cpu.gpr[7] = DATA;
  assertOk(run(i, "48 0f b5 07")); // lgs rax,[rdi]
  assert.equal(i.cpu.gpr[0], 0x1122_3344_5566_7788n);
  assert.equal(seg(i, SEG.gs).selector, 0x18);
  const a = machine({ vendor: "amd" });
  withGdt(a);
  a.poke(DATA, 4, 0x5566_7788n).poke(DATA + 4n, 2, 0x18n);
  a.cpu.gpr[0] = 0xffff_ffff_ffff_ffffn;
  a.cpu.gpr[7] = DATA;
  assertOk(run(a, "48 0f b5 07")); // lgs rax,FWORD PTR [rdi] (measured on Zen)
  assert.equal(a.cpu.gpr[0], 0x5566_7788n);
  assert.equal(seg(a, SEG.gs).selector, 0x18);
});

// ---------------------------------------------------------------------------
// LAR and LSL

/** long0() with more descriptors for LAR/LSL after the shared GDT. */
function examineMachine(cpl = 0): TestMachine {
  const m = cpl === 0 ? long0() : machine({ cpl });
  const base = withGdt(m);
  const extra: Record<number, bigint> = {
    // Linux's per-CPU segment (GDT_ENTRY_CPUNODE): the CPU number in the limit, DPL 3, G = 0.
    0x90: desc(0, 0x1001, 0x3, { dpl: 3, g: 0 }),
    0x98: desc(0x5000, 0x67, 0x9, { s: 0, g: 0 }), // a 64-bit TSS, available
    0xa0: desc(0x5000, 0x67, 0x1, { s: 0, g: 0 }), // a 16-bit TSS: no such thing in IA-32e mode
    0xa8: desc(0, 0xffff, 0x3, { g: 0, p: 0 }), // not present: LAR/LSL do not care
  };
  for (const [sel, d] of Object.entries(extra)) m.poke(base + BigInt(sel), 8, d);
  m.cpu.gdtr = { base, limit: 0xaf };
  return m;
}

const ZF = 0x40n;

Deno.test("lsl: the limit in bytes and ZF for an accessible descriptor; ZF clear, no fault, otherwise", () => {
  const cases: [string, number, bigint | undefined][] = [
    ["0f 03 c1", 0x93, 0x1001n], // lsl eax,ecx: Linux's CPUNODE read, RPL 3
    ["0f 03 c1", 0x18, 0xffffffffn], // a 4-KiB granular data segment: limit << 12 | fff
    ["0f 03 c1", 0x98, 0x67n], // a 64-bit TSS
    ["0f 03 c1", 0xa8, 0xffffn], // not present is fine
    ["0f 03 c1", 0xab, undefined], // RPL 3 above DPL 0
    ["0f 03 c1", 0xa0, undefined], // a 16-bit TSS in IA-32e mode
    ["0f 03 c1", 0x58, undefined], // a call gate has no limit for LSL
    ["0f 03 c1", 0x00, undefined], // null
    ["0f 03 c1", 0x1f8, undefined], // beyond the GDT's limit: ZF = 0, no #GP
    ["0f 03 c1", 0x04, undefined], // TI = 1 with no LDT
  ];
  for (const [code, sel, want] of cases) {
    const m = examineMachine();
    m.cpu.gpr[0] = 0xdead_beef_0000_0000n;
    m.cpu.gpr[1] = BigInt(sel);
    m.cpu.rflags = 2n | (want === undefined ? ZF : 0n);
    assertOk(run(m, code));
    if (want === undefined) {
      assert.equal(m.cpu.rflags & ZF, 0n, `selector ${sel}: ZF`);
      assert.equal(m.cpu.gpr[0], 0xdead_beef_0000_0000n, `selector ${sel}: unchanged`);
    } else {
      assert.equal(m.cpu.rflags & ZF, ZF, `selector ${sel}: ZF`);
      // A 32-bit destination is zero-extended.
      assert.equal(m.cpu.gpr[0], want, `selector ${sel}`);
    }
  }
  // 16-bit operand size: the low 16 bits of the limit, the rest of the register kept.
  const m = examineMachine();
  m.cpu.gpr[0] = 0x1111_2222_3333_4444n;
  m.cpu.gpr[1] = 0x18n;
  assertOk(run(m, "66 0f 03 c1")); // lsl ax,cx
  assert.equal(m.cpu.gpr[0], 0x1111_2222_3333_ffffn);
  // At CPL 3 a DPL-0 data segment fails the privilege check; DPL 3 passes.
  const u = examineMachine(3);
  u.cpu.gpr[1] = 0x18n;
  u.cpu.rflags = 2n | ZF;
  assertOk(run(u, "0f 03 c1"));
  assert.equal(u.cpu.rflags & ZF, 0n);
  u.cpu.rip = TestMachine.CODE;
  u.cpu.gpr[1] = 0x93n;
  assertOk(run(u, "48 0f 03 c1")); // lsl rax,rcx
  assert.equal(u.cpu.gpr[0], 0x1001n);
});

Deno.test("lar: the access rights (descriptor bits 23:8 without the limit's 19:16) for the types it accepts", () => {
  const rights = (sel: number) => (GDT[sel] >> 32n) & 0x00f0ff00n;
  for (const sel of [0x10, 0x18, 0x58, 0x60]) { // 64-bit code, data, a call gate, conforming code
    const m = examineMachine();
    m.cpu.gpr[1] = BigInt(sel);
    assertOk(run(m, "0f 02 c1")); // lar eax,ecx
    assert.equal(m.cpu.rflags & ZF, ZF, `selector ${sel}`);
    assert.equal(m.cpu.gpr[0], rights(sel), `selector ${sel}`);
  }
  const m = examineMachine();
  m.cpu.gpr[0] = 7n;
  m.cpu.gpr[1] = 0xa0n; // a 16-bit TSS
  assertOk(run(m, "0f 02 c1"));
  assert.equal(m.cpu.rflags & ZF, 0n);
  assert.equal(m.cpu.gpr[0], 7n);
  // Real mode: #UD.
  const r = machine({ mode: "real" });
  assertException(run(r, "0f 03 c1"), 6);
});

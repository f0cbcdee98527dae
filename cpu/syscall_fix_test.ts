import assert from "node:assert/strict";
import {
  MSR_LSTAR,
  MSR_STAR,
  readFrame,
  SyscallCompletion,
  syscallSegments,
} from "./syscall_fix.ts";
import { createCpu, PageTableBuilder, TestMemory } from "./x86/testing.ts";
import { DIRTY, GPR, SEG } from "./x86/types.ts";

Deno.test("syscallSegments: CS and SS as 64-bit SYSCALL loads them (SDM Vol. 2B, SYSCALL)", () => {
  // Linux: STAR = __USER32_CS (0x23) << 48 | __KERNEL_CS (0x10) << 32.
  const linux = syscallSegments((0x23n << 48n) | (0x10n << 32n));
  assert.deepEqual(linux.cs, {
    base: 0n,
    limit: 0xffffffff,
    present: 1,
    dpl: 0,
    s: 1,
    g: 1,
    avl: 0,
    unusable: 0,
    selector: 0x10,
    type: 11,
    l: 1,
    db: 0,
  });
  assert.equal(linux.ss.selector, 0x18);
  assert.equal(linux.ss.type, 3);
  assert.equal(linux.ss.db, 1);
  assert.equal(linux.ss.l, 0);
  // The RPL bits of STAR[47:32] are cleared for CS (AND FFFCH), not for SS (+ 8).
  const rpl = syscallSegments(0x0013n << 32n);
  assert.equal(rpl.cs.selector, 0x10);
  assert.equal(rpl.ss.selector, 0x1b);
  assert.equal(MSR_STAR, 0xc0000081);
  assert.equal(MSR_LSTAR, 0xc0000082);
});

// A small 64-bit guest: the kernel half maps the IDT, the #PF handler's page and the
// kernel stack; the user half maps a code page holding a SYSCALL.
const LSTAR = 0xffffffff81c00080n;
const HANDLER = 0xffffffff81c00be0n;
const IDT = 0xfffffe0000000000n;
const KSTACK = 0xffffc90000010000n; // its top page
const USER_CODE = 0x400000n;
const SYSCALL_AT = USER_CODE + 0x41bn; // 0F 05 here; RCX = the next instruction
const USER_RSP = 0x7fff55f894d0n;
const STAR = (0x23n << 48n) | (0x10n << 32n);

function machine() {
  const mem = new TestMemory(0x40000);
  const pt = new PageTableBuilder(mem, "4level", 0x1000);
  pt.map(IDT, 0x20000);
  pt.map(HANDLER & ~0xfffn, 0x21000);
  pt.map(KSTACK, 0x22000);
  pt.map(USER_CODE, 0x23000, { user: true, writable: false });
  // IDT vector 14: a 64-bit interrupt gate to HANDLER (SDM Vol. 3A, figure 6-8).
  const gate = new DataView(mem.bytes.buffer, 0x20000 + 14 * 16, 16);
  gate.setUint16(0, Number(HANDLER & 0xffffn), true);
  gate.setUint16(2, 0x10, true);
  gate.setUint8(5, 0x8e);
  gate.setUint16(6, Number((HANDLER >> 16n) & 0xffffn), true);
  gate.setUint32(8, Number(HANDLER >> 32n), true);
  mem.bytes.set([0x0f, 0x05], 0x23000 + Number(SYSCALL_AT - USER_CODE));
  const cpu = createCpu({ mode: "long", cr3: pt.cr3 });
  cpu.idtr = { base: IDT, limit: 0xfff };
  cpu.msrs.set(MSR_LSTAR, LSTAR);
  cpu.msrs.set(MSR_STAR, STAR);
  return { mem, cpu };
}

/** The CPU as it enters the #PF handler after a fault at `faultRip` from CPL3. */
function atPfHandler(faultRip: bigint, opts: { rcx?: bigint; r11?: bigint } = {}) {
  const m = machine();
  const { cpu, mem } = m;
  const rsp = KSTACK + 0x1000n - 48n;
  const frame = new DataView(mem.bytes.buffer, 0x22000 + 0x1000 - 48, 48);
  [0xfn, faultRip, 0x33n, 0x10002n, USER_RSP, 0x2bn].forEach((v, i) =>
    frame.setBigUint64(8 * i, v, true)
  );
  cpu.rip = HANDLER;
  cpu.gpr[GPR.rsp] = rsp;
  cpu.gpr[GPR.rcx] = opts.rcx ?? SYSCALL_AT + 2n;
  cpu.gpr[GPR.r11] = opts.r11 ?? 0x246n;
  cpu.gpr[GPR.rax] = 12n;
  cpu.dirty = 0;
  return m;
}

Deno.test("a #PF at LSTAR from CPL3 after a SYSCALL becomes that SYSCALL's end", () => {
  const { cpu, mem } = atPfHandler(LSTAR);
  assert.deepEqual(readFrame(cpu, mem, cpu.gpr[GPR.rsp])?.rip, LSTAR);
  const fix = new SyscallCompletion();
  assert.equal(fix.check(cpu, mem), true);
  assert.equal(fix.completed, 1);
  assert.equal(cpu.rip, LSTAR);
  assert.equal(cpu.gpr[GPR.rsp], USER_RSP, "SYSCALL leaves RSP alone");
  assert.equal(cpu.rflags, 0x2n, "RF cleared, the masked flags kept");
  assert.equal(cpu.seg[SEG.cs].selector, 0x10);
  assert.equal(cpu.seg[SEG.cs].dpl, 0);
  assert.equal(cpu.seg[SEG.cs].l, 1);
  assert.equal(cpu.seg[SEG.ss].selector, 0x18);
  assert.equal(cpu.gpr[GPR.rcx], SYSCALL_AT + 2n);
  assert.equal(cpu.gpr[GPR.r11], 0x246n);
  assert.equal(cpu.gpr[GPR.rax], 12n);
  assert.equal(
    cpu.dirty & (DIRTY.gpr | DIRTY.rip | DIRTY.sregs),
    DIRTY.gpr | DIRTY.rip | DIRTY.sregs,
  );
});

Deno.test("other page faults, and look-alikes that are no SYSCALL, are left to the guest", () => {
  const cases: [string, ReturnType<typeof atPfHandler>][] = [
    ["a user page fault", atPfHandler(USER_CODE + 0x800n)],
    ["a fault at another kernel address", atPfHandler(HANDLER)],
    ["RCX not after a SYSCALL", atPfHandler(LSTAR, { rcx: SYSCALL_AT + 1n })],
    ["RCX unmapped", atPfHandler(LSTAR, { rcx: 0x900000n })],
    ["R11 with IOPL 3", atPfHandler(LSTAR, { r11: 0x3246n })],
  ];
  for (const [what, { cpu, mem }] of cases) {
    const before = { rip: cpu.rip, rsp: cpu.gpr[GPR.rsp], cs: { ...cpu.seg[SEG.cs] } };
    assert.equal(new SyscallCompletion().check(cpu, mem), false, what);
    assert.deepEqual(
      { rip: cpu.rip, rsp: cpu.gpr[GPR.rsp], cs: { ...cpu.seg[SEG.cs] } },
      before,
      what,
    );
    assert.equal(cpu.dirty, 0, what);
  }
  // Not at the #PF handler: nothing is even read.
  const { cpu, mem } = atPfHandler(LSTAR);
  cpu.rip = HANDLER + 3n;
  mem.logging = true;
  const fix = new SyscallCompletion();
  assert.equal(fix.check(cpu, mem), false);
  // Reading the IDT gate is all it did (once per IDTR base).
  assert.ok(mem.log.every((a) => a.gpa < 0x20000 + 4096 || a.gpa < 0x10000));
});

// Unit tests of cpu/fallback.ts that need no KVM: the CPUID table lookup,
// the double-fault rules, guest-physical memory over RAM and MMIO, and the
// handler's outcomes (messages, exception and software-interrupt delivery
// into kvm_vcpu_events, DR6 for a single-step #DB, NMI unblocking by iret,
// errors caught) over a fake vCPU, with stand-in executors and with the real
// one. tests/fallback_kvm_test.ts runs the same adapter on a real vCPU.
import assert from "node:assert/strict";
import {
  combineExceptions,
  CpuidTable,
  type EmulateFn,
  FallbackEmulator,
  type FallbackOutcome,
  GuestPhysicalMemory,
  type MmioPort,
} from "./fallback.ts";
import type { HostAtomics } from "./atomic.ts";
import { KVM_CPUID_FLAG_SIGNIFCANT_INDEX, KVM_VCPU_EVENTS_STRUCT } from "./kvm_abi.ts";
import type { CpuidEntry } from "./kvm.ts";
import { GuestMemory } from "../lib/guest_memory.ts";
import { DecodeError, DIRTY, type Instruction, type StepResult } from "./x86/types.ts";
import { createCpu, TestCpu } from "./x86/testing.ts";

const EV = KVM_VCPU_EVENTS_STRUCT.o;

function entry(fn: number, index: number, regs: number[], flags = 0): CpuidEntry {
  const [eax, ebx, ecx, edx] = regs;
  return { function: fn, index, flags, eax, ebx, ecx, edx };
}

const INTEL = [0x16, 0x756e6547, 0x6c65746e, 0x49656e69]; // max leaf 0x16, "GenuineIntel"
const AMD = [0x10, 0x68747541, 0x444d4163, 0x69746e65]; // "AuthenticAMD"

Deno.test("CPUID table: indexed leaves, out-of-range leaves (Intel: highest basic leaf; AMD: zeros), live bits", () => {
  const intel = new CpuidTable([
    entry(0, 0, INTEL),
    entry(1, 0, [0x906ea, 0x00010800, 0x7ffafbff & ~(1 << 27), 0xbfebfbff]),
    entry(7, 0, [0, 1 << 20, 0, 0], KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
    entry(7, 1, [5, 0, 0, 0], KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
    entry(0xd, 0, [0xe7, 0, 0xa88, 0], KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
    entry(0xd, 2, [256, 576, 0, 0], KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
    entry(0xd, 5, [64, 1088, 0, 0], KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
    entry(0x16, 0, [1, 2, 3, 4]),
    entry(0x80000000, 0, [0x80000008, 0, 0, 0]),
  ]);
  const live = { cr4: 0n, apicBase: 0xfee00900n, xcr0: 3n };
  assert.deepEqual(intel.read(7, 0, live), [0, 1 << 20, 0, 0]);
  assert.deepEqual(intel.read(7, 1, live), [5, 0, 0, 0]);
  assert.deepEqual(intel.read(7, 2, live), [0, 0, 0, 0]); // an indexed leaf without that subleaf
  // Leaf 0x16 has no significant index: any subleaf reads it.
  assert.deepEqual(intel.read(0x16, 9, live), [1, 2, 3, 4]);
  // Above the maximum basic leaf, and above the maximum extended one: Intel returns leaf 0x16.
  assert.deepEqual(intel.read(0x40, 0, live), [1, 2, 3, 4]);
  assert.deepEqual(intel.read(0x80000010, 0, live), [1, 2, 3, 4]);
  // OSXSAVE follows CR4.OSXSAVE; APIC follows IA32_APIC_BASE.EN.
  assert.equal(intel.read(1, 0, live)[2] & (1 << 27), 0);
  assert.notEqual(intel.read(1, 0, { ...live, cr4: 1n << 18n })[2] & (1 << 27), 0);
  assert.notEqual(intel.read(1, 0, live)[3] & (1 << 9), 0);
  assert.equal(intel.read(1, 0, { ...live, apicBase: 0xfee00000n })[3] & (1 << 9), 0);
  assert.notEqual(intel.read(7, 0, { ...live, cr4: 1n << 22n })[2] & (1 << 4), 0); // OSPKE
  // Leaf 0DH.0 EBX: the area for the components enabled in XCR0.
  assert.equal(intel.read(0xd, 0, live)[1], 576);
  assert.equal(intel.read(0xd, 0, { ...live, xcr0: 7n })[1], 832);
  assert.equal(intel.read(0xd, 0, { ...live, xcr0: 0x27n })[1], 1152);

  const amd = new CpuidTable([entry(0, 0, AMD), entry(0x80000000, 0, [0x80000021, 0, 0, 0])]);
  assert.deepEqual(amd.read(0x40, 0, live), [0, 0, 0, 0]);
});

Deno.test("double-fault rules: contributory after contributory and #PF after #PF are #DF; anything after #DF is a triple fault", () => {
  assert.deepEqual(combineExceptions(undefined, { vector: 3 }), { kind: "deliver", vector: 3 });
  assert.deepEqual(combineExceptions(undefined, { vector: 13, errorCode: 0x10 }), {
    kind: "deliver",
    vector: 13,
    errorCode: 0x10,
  });
  // #GP without a given error code still pushes one (0).
  assert.deepEqual(combineExceptions(undefined, { vector: 13 }), {
    kind: "deliver",
    vector: 13,
    errorCode: 0,
  });
  const df = { kind: "deliver", vector: 8, errorCode: 0 };
  assert.deepEqual(combineExceptions(13, { vector: 0 }), df); // #GP then #DE
  assert.deepEqual(combineExceptions(14, { vector: 14, errorCode: 2 }), df); // #PF then #PF
  assert.deepEqual(combineExceptions(14, { vector: 13, errorCode: 0 }), df); // #PF then #GP
  // #GP then #PF: handled serially, the #PF replaces it (SDM Vol. 3A, Table 6-5).
  assert.deepEqual(combineExceptions(13, { vector: 14, errorCode: 2 }), {
    kind: "deliver",
    vector: 14,
    errorCode: 2,
  });
  // A benign one first: the new exception is delivered.
  assert.deepEqual(combineExceptions(1, { vector: 13, errorCode: 0 }).kind, "deliver");
  assert.deepEqual(combineExceptions(8, { vector: 13, errorCode: 0 }), { kind: "triple-fault" });
  assert.deepEqual(combineExceptions(8, { vector: 3 }), { kind: "triple-fault" });
});

/** 64 KiB of "RAM" at [0, 0x8000) and [0x9000, 0x10000), MMIO in between. */
function testMemory() {
  const span = new Uint8Array(0x10000);
  const ram = new GuestMemory(span, [
    { name: "low", gpa: 0, size: 0x8000 },
    { name: "high", gpa: 0x9000, size: 0x7000 },
  ]);
  const log: string[] = [];
  const mmio: MmioPort = {
    read(address, size) {
      log.push(`r${size}@${address.toString(16)}`);
      return size === 1 ? 0xab : size === 2 ? 0xabab : 0xabababab;
    },
    write(address, size, value) {
      log.push(`w${size}@${address.toString(16)}=${value.toString(16)}`);
    },
    read64(address) {
      log.push(`r8@${address.toString(16)}`);
      return 0xababababababababn;
    },
    write64(address, value) {
      log.push(`w8@${address.toString(16)}=${value.toString(16)}`);
    },
  };
  const cas: [bigint, number, bigint, bigint][] = [];
  const atomics = {
    cmpxchg(address: bigint, size: number, expected: bigint, desired: bigint) {
      cas.push([address, size, expected, desired]);
      return expected;
    },
  } as unknown as HostAtomics;
  const mem = new GuestPhysicalMemory(ram, 0x7f0000000000n, mmio, () => atomics);
  return { span, mem, log, cas };
}

Deno.test("guest-physical memory: RAM through GuestMemory, MMIO in aligned pieces, mixed accesses split at pages", () => {
  const { span, mem, log, cas } = testMemory();
  span.set([1, 2, 3, 4], 0x100);
  const out = new Uint8Array(4);
  mem.read(0x100, out);
  assert.deepEqual([...out], [1, 2, 3, 4]);
  mem.write(0x7ffe, new Uint8Array([9, 9]));
  assert.deepEqual([...span.subarray(0x7ffe, 0x8000)], [9, 9]);
  assert.equal(mem.isRam(0x7ffe, 2), true);
  assert.equal(mem.isRam(0x7ffe, 3), false);
  assert.equal(mem.isRam(0x8000, 1), false);

  // MMIO: 16 bytes at 0x8004 go out as 4 + 8 + 4 (naturally aligned).
  const m = new Uint8Array(16);
  mem.read(0x8004, m);
  assert.deepEqual(log.splice(0), ["r4@8004", "r8@8008", "r4@8010"]);
  assert.equal(m[0], 0xab);
  mem.write(0x8001, new Uint8Array([1, 2, 3]));
  assert.deepEqual(log.splice(0), ["w1@8001=1", "w2@8002=302"]);

  // A read across the end of RAM: the RAM page, then the MMIO page.
  const x = new Uint8Array(4);
  span.set([5, 6], 0x7ffe);
  mem.read(0x7ffe, x);
  assert.deepEqual([...x], [5, 6, 0xab, 0xab]);
  assert.deepEqual(log.splice(0), ["r2@8000"]);

  // Compare-exchange on RAM goes to libatomic at host base + gpa.
  mem.cmpxchg(0x9010, 16, 1n, 2n);
  assert.deepEqual(cas, [[0x7f0000009010n, 16, 1n, 2n]]);
  // On MMIO: read, compare, write.
  assert.equal(mem.cmpxchg(0x8010, 4, 0xababababn, 7n), 0xababababn);
  assert.deepEqual(log.splice(0), ["r4@8010", "w4@8010=7"]);
  assert.equal(mem.cmpxchg(0x8010, 4, 1n, 7n), 0xababababn);
  assert.deepEqual(log.splice(0), ["r4@8010"]);

  // Beyond the span: refused, never a raw access.
  assert.throws(() => mem.read(-1, new Uint8Array(1)), RangeError);
  assert.equal(mem.isRam(0x10000, 1), false);
});

/** A fake vCPU for the handler: TestCpu plus load/commit/events, counting calls. */
class FakeCpu extends TestCpu {
  loads = 0;
  commits = 0;
  flushes = 0;
  eventsDirty = false;
  /** The bits of each raiseDr6 call. */
  readonly dr6: number[] = [];
  committedDirty = -1;
  readonly ev = new Uint8Array(KVM_VCPU_EVENTS_STRUCT.size);
  load(): void {
    this.loads++;
    this.dirty = 0;
  }
  commit(): void {
    this.commits++;
    this.committedDirty = this.dirty;
    this.dirty = 0;
  }
  events(): Uint8Array {
    return this.ev;
  }
  markEventsDirty(): void {
    this.eventsDirty = true;
  }
  flush(): void {
    this.flushes++;
  }
  raiseDr6(bits: number): void {
    this.dr6.push(bits);
  }
}

function fakeCpu(mode: "protected32" | "real" = "protected32"): FakeCpu {
  const base = createCpu({ mode });
  const cpu = new FakeCpu();
  Object.assign(cpu, { cr0: base.cr0, cr4: base.cr4 });
  for (let i = 0; i < 6; i++) cpu.seg[i] = base.seg[i];
  cpu.rip = 0x1000n;
  return cpu;
}

function insn(mnemonic: string, text: string): Instruction {
  return {
    mode: 32,
    bytes: new Uint8Array([0x90]),
    length: 1,
    mnemonic,
    operands: [],
    opSize: 4,
    addrSize: 4,
    lock: false,
    rep: null,
    segOverride: null,
    rex: 0,
    vex: null,
    map: "legacy",
    opcode: 0x90,
    modrm: -1,
    mandatory: 0,
    text,
  };
}

function handler(cpu: FakeCpu, emulate?: EmulateFn) {
  const { mem } = testMemory();
  return new FallbackEmulator({ index: 2, cpu, memory: mem, emulate });
}

function fatal(o: FallbackOutcome): Extract<FallbackOutcome, { kind: "fatal" }> {
  assert.equal(o.kind, "fatal");
  return o as Extract<FallbackOutcome, { kind: "fatal" }>;
}

Deno.test("handler: an executed instruction is committed and counted by its mnemonic", () => {
  const cpu = fakeCpu();
  const out = handler(cpu, (c): StepResult => {
    c.rip += 3n;
    c.dirty |= DIRTY.rip;
    return { kind: "ok", insn: insn("clac", "clac") };
  }).handle();
  assert.deepEqual(out, { kind: "resumed", label: "clac" });
  assert.equal(cpu.loads, 1);
  assert.equal(cpu.commits, 1);
  assert.equal(cpu.committedDirty, DIRTY.rip);
  assert.equal(cpu.eventsDirty, false);
});

Deno.test("handler: unsupported and undecodable end the VM with a message naming the instruction", () => {
  const o1 = fatal(
    handler(fakeCpu(), () => ({
      kind: "unsupported",
      message: "not implemented",
      insn: insn("vfmadd231ps", "vfmadd231ps ymm0,ymm1,ymm2"),
    })).handle(),
  );
  assert.equal(o1.suspend, "error");
  assert.equal(
    o1.message,
    'vcpu 2: cannot emulate "vfmadd231ps ymm0,ymm1,ymm2" at rip 0x1000: not implemented',
  );
  const o2 = fatal(
    handler(fakeCpu(), () => {
      throw new DecodeError(new Uint8Array([0x0f, 0xff]), 2, "no such opcode");
    }).handle(new Uint8Array([0x0f, 0xff])),
  );
  assert.match(
    o2.message,
    /^vcpu 2: cannot emulate the instruction at rip 0x1000 \[bytes 0f ff\]: cannot decode 0f ff: no such opcode$/,
  );
});

Deno.test("handler: the executor of cpu/x86/exec.ts by default; what it does not implement is named", () => {
  const { span, mem } = testMemory();
  span.set([0xd9, 0xfa], 0x1000); // fsqrt
  const cpu = fakeCpu();
  const o = fatal(new FallbackEmulator({ index: 1, cpu, memory: mem }).handle());
  assert.equal(
    o.message,
    `vcpu 1: cannot emulate "fsqrt" at rip 0x1000: dhyve's instruction emulator does not implement fsqrt`,
  );
  assert.equal(cpu.commits, 0);
  span.set([0x0f, 0x01, 0xcb], 0x1000); // stac
  const ok = new FallbackEmulator({ index: 1, cpu, memory: mem }).handle();
  assert.deepEqual(ok, { kind: "resumed", label: "stac" });
  assert.equal(cpu.rip, 0x1003n);
  assert.equal(cpu.rflags & (1n << 18n), 1n << 18n);
});

Deno.test("handler: an error thrown inside the executor or the adapter becomes a fatal outcome, never an exception", () => {
  const o = fatal(
    handler(fakeCpu(), () => {
      throw new TypeError("x is undefined");
    }).handle(),
  );
  assert.match(
    o.message,
    /^vcpu 2: internal error while emulating the instruction at rip 0x1000: TypeError: x is undefined$/,
  );
  const cpu = fakeCpu();
  cpu.commit = () => {
    throw new Error("KVM_SET_XSAVE failed: EINVAL");
  };
  const o2 = fatal(
    handler(cpu, () => ({ kind: "ok", insn: insn("xrstor", "xrstor [rdi]") })).handle(),
  );
  assert.match(
    o2.message,
    /internal error while emulating "xrstor \[rdi\]" at rip 0x1000: KVM_SET_XSAVE failed/,
  );
});

Deno.test("handler: an exception is injected through kvm_vcpu_events; #PF sets CR2 first", () => {
  const cpu = fakeCpu();
  const out = handler(cpu, () => ({
    kind: "exception",
    exception: { vector: 14, errorCode: 2, cr2: 0xdead000n },
    insn: insn("mov", "mov eax,[0xdead000]"),
  })).handle();
  assert.deepEqual(out, { kind: "resumed", label: "mov" });
  assert.equal(cpu.ev[EV.exceptionInjected], 1);
  assert.equal(cpu.ev[EV.exceptionPending], 0);
  assert.equal(cpu.ev[EV.exceptionNr], 14);
  assert.equal(cpu.ev[EV.exceptionHasErrorCode], 1);
  assert.equal(new DataView(cpu.ev.buffer).getUint32(EV.exceptionErrorCode, true), 2);
  assert.equal(cpu.cr2, 0xdead000n);
  assert.equal(cpu.committedDirty & DIRTY.sregs, DIRTY.sregs);
  assert.equal(cpu.eventsDirty, true);

  // A trap (int3) without an instruction decoded is counted by its vector name.
  const bp = fakeCpu();
  const o2 = handler(bp, () => ({ kind: "exception", exception: { vector: 3 } })).handle();
  assert.deepEqual(o2, { kind: "resumed", label: "#BP" });
  assert.equal(bp.ev[EV.exceptionHasErrorCode], 0);

  // Real mode pushes no error code.
  const rm = fakeCpu("real");
  handler(rm, () => ({ kind: "exception", exception: { vector: 13, errorCode: 0 } })).handle();
  assert.equal(rm.ev[EV.exceptionNr], 13);
  assert.equal(rm.ev[EV.exceptionHasErrorCode], 0);
});

Deno.test("handler: pending exceptions: KVM's own #UD is dropped, a pending #GP plus a new #GP is a #DF, a pending #DF is a triple fault", () => {
  const gp = (): StepResult => ({
    kind: "exception",
    exception: { vector: 13, errorCode: 0x28 },
    insn: insn("iretd", "iretd"),
  });
  // KVM's #UD (no error code) from its failed emulation: replaced.
  const a = fakeCpu();
  a.ev[EV.exceptionInjected] = 1;
  a.ev[EV.exceptionNr] = 6;
  handler(a, gp).handle();
  assert.equal(a.ev[EV.exceptionNr], 13);
  assert.equal(new DataView(a.ev.buffer).getUint32(EV.exceptionErrorCode, true), 0x28);

  const b = fakeCpu();
  b.ev[EV.exceptionPending] = 1;
  b.ev[EV.exceptionNr] = 13;
  b.ev[EV.exceptionHasErrorCode] = 1;
  handler(b, gp).handle();
  assert.equal(b.ev[EV.exceptionNr], 8);
  assert.equal(b.ev[EV.exceptionHasErrorCode], 1);
  assert.equal(new DataView(b.ev.buffer).getUint32(EV.exceptionErrorCode, true), 0);

  const c = fakeCpu();
  c.ev[EV.exceptionInjected] = 1;
  c.ev[EV.exceptionNr] = 8;
  c.ev[EV.exceptionHasErrorCode] = 1;
  const o = fatal(handler(c, gp).handle());
  assert.equal(o.suspend, "triple-fault");
  assert.match(
    o.message,
    /triple fault: #GP raised by "iretd" at rip 0x1000 while a #DF was pending/,
  );
  assert.equal(c.commits, 0);
});

Deno.test("handler: int n is injected as an interrupt past the instruction, not as an exception", () => {
  const { span, mem } = testMemory();
  span.set([0xcd, 0x0e], 0x1000); // int 0xe
  const cpu = fakeCpu();
  // KVM's own #UD from the failed emulation: dropped.
  cpu.ev[EV.exceptionInjected] = 1;
  cpu.ev[EV.exceptionNr] = 6;
  const out = new FallbackEmulator({ index: 0, cpu, memory: mem }).handle();
  assert.deepEqual(out, { kind: "resumed", label: "int" });
  assert.equal(cpu.rip, 0x1002n, "RIP past the INT: the return address the delivery pushes");
  assert.equal(cpu.ev[EV.interruptInjected], 1);
  assert.equal(cpu.ev[EV.interruptNr], 14);
  assert.equal(cpu.ev[EV.interruptSoft], 0);
  assert.equal(cpu.ev[EV.exceptionInjected], 0);
  assert.equal(cpu.ev[EV.exceptionHasErrorCode], 0, "int 14 pushes no error code");
  assert.equal(cpu.eventsDirty, true);
  assert.equal(cpu.commits, 1);

  // An interrupt still being delivered: the INT is left undone, to run again after it.
  const busy = fakeCpu();
  busy.ev[EV.interruptInjected] = 1;
  busy.ev[EV.interruptNr] = 0x30;
  const o = new FallbackEmulator({ index: 0, cpu: busy, memory: mem }).handle();
  assert.deepEqual(o, { kind: "resumed", label: "int" });
  assert.equal(busy.commits, 0);
  assert.equal(busy.ev[EV.interruptNr], 0x30);
});

Deno.test("handler: a single-step #DB ORs its DR6 bits in before delivery; other exceptions leave DR6 alone", () => {
  const db = fakeCpu();
  handler(db, () => ({
    kind: "exception",
    exception: { vector: 1, dr6: 0x4000 },
    insn: insn("popcnt", "popcnt eax,eax"),
  })).handle();
  assert.deepEqual(db.dr6, [0x4000]);
  assert.equal(db.ev[EV.exceptionNr], 1);
  assert.equal(db.commits, 1);
  // int1 (icebp): a #DB without condition bits.
  const ice = fakeCpu();
  handler(ice, () => ({ kind: "exception", exception: { vector: 1 } })).handle();
  assert.deepEqual(ice.dr6, []);
  // A #DB that becomes a triple fault changes nothing.
  const tf = fakeCpu();
  tf.ev[EV.exceptionInjected] = 1;
  tf.ev[EV.exceptionNr] = 8;
  tf.ev[EV.exceptionHasErrorCode] = 1;
  const o = fatal(
    handler(tf, () => ({ kind: "exception", exception: { vector: 1, dr6: 0x4000 } })).handle(),
  );
  assert.equal(o.suspend, "triple-fault");
  assert.deepEqual(tf.dr6, []);
});

Deno.test("handler: an emulated iret unblocks NMIs, also when it faults; other instructions do not", () => {
  for (
    const r of [
      { kind: "ok", insn: insn("iret", "iret") },
      { kind: "exception", exception: { vector: 13, errorCode: 0x18 }, insn: insn("iret", "iret") },
    ] as StepResult[]
  ) {
    const cpu = fakeCpu();
    cpu.ev[EV.nmiMasked] = 1;
    handler(cpu, () => r).handle();
    assert.equal(cpu.ev[EV.nmiMasked], 0);
    assert.equal(cpu.eventsDirty, true);
  }
  const other = fakeCpu();
  other.ev[EV.nmiMasked] = 1;
  handler(other, () => ({ kind: "ok", insn: insn("clac", "clac") })).handle();
  assert.equal(other.ev[EV.nmiMasked], 1);
  assert.equal(other.eventsDirty, false);
  // Nothing masked: the events stay clean (no write-back).
  const clean = fakeCpu();
  handler(clean, () => ({ kind: "ok", insn: insn("iretq", "iretq") })).handle();
  assert.equal(clean.eventsDirty, false);
});

Deno.test("handler: mov ss and sti open an interrupt shadow in the events; the next emulated instruction closes it", () => {
  const cpu = fakeCpu();
  const evView = new DataView(cpu.ev.buffer, cpu.ev.byteOffset, cpu.ev.byteLength);
  handler(cpu, () => ({ kind: "ok", insn: insn("sti", "sti"), shadow: "sti" })).handle();
  assert.equal(cpu.ev[EV.interruptShadow], 2); // KVM_X86_SHADOW_INT_STI
  assert.equal(evView.getUint32(EV.flags, true) & 0x4, 0x4); // KVM_VCPUEVENT_VALID_SHADOW
  assert.equal(cpu.eventsDirty, true);
  const next = fakeCpu();
  next.ev[EV.interruptShadow] = 1;
  handler(next, () => ({ kind: "ok", insn: insn("clac", "clac") })).handle();
  assert.equal(next.ev[EV.interruptShadow], 0);
  assert.equal(next.eventsDirty, true);
  const movSs = fakeCpu();
  handler(movSs, () => ({ kind: "ok", insn: insn("mov", "mov ss,eax"), shadow: "mov-ss" }))
    .handle();
  assert.equal(movSs.ev[EV.interruptShadow], 1); // KVM_X86_SHADOW_INT_MOV_SS
});

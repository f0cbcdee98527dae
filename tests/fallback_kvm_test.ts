// Integration tests of dhyve's fallback instruction emulator on KVM
// (cpu/fallback.ts with the executor of cpu/x86/): instructions KVM's
// emulator gives up on at CPL0 in small flat 32-bit guests (int3, int n,
// iret, clac, stac, popcnt under TF, fsqrt).
//
// - In this process, on a one-vCPU machine (bench/_fallback_harness.ts):
//   the adapter's state traffic both through the kvm_run page (sync regs)
//   and through ioctls; int3 and its handler's iret; int n delivered as a
//   software interrupt (no error code, return address past the INT); a
//   single-step #DB with DR6.BS; faults the executor raises (#GP and #NP
//   with selector error codes, from iret); the XSAVE area; guest RAM
//   compare-exchange; the message when the executor does not implement an
//   instruction.
// - Through `main.ts up`: the vCPU Worker's run loop with the executor, the
//   statistics in --report, the `-v` summary line, the status-4 message.
//
// On a machine whose KVM runs ring 0 natively (VT-x/SVM) none of these
// instructions exits to dhyve: the tests then check the guest's results only.
import assert from "node:assert/strict";
import { FlatMachine, LOAD } from "../bench/_fallback_harness.ts";
import { hostAtomics } from "../cpu/atomic.ts";
import { type EmulateFn, GuestPhysicalMemory } from "../cpu/fallback.ts";
import { getXsave } from "../cpu/kvm.ts";
import { libc } from "../cpu/libc.ts";
import { emulate } from "../cpu/x86/exec.ts";
import { DIRTY } from "../cpu/x86/types.ts";
import { guestBytes, MAIN, type RunResult, Scratch, testEnv } from "./helpers.ts";

// dhyve opens libc and libatomic once per thread and keeps them: open them
// before the sanitizers count.
libc();
hostAtomics();

/** fallback_min's results (tests/guests/pm/fallback_min.S). */
function minResults(m: FlatMachine) {
  const r = m.memory.memory;
  return {
    bpCount: r.readU32(LOAD + 8),
    bpEip: r.readU32(LOAD + 12),
    expectEip: r.readU32(LOAD + 16),
    clacDone: r.readU32(LOAD + 20),
    acAfter: r.readU32(LOAD + 24),
  };
}

/** fallback_sys's results (tests/guests/pm/fallback_sys.S). */
function sysResults(m: FlatMachine) {
  const r = m.memory.memory;
  const u = (o: number) => r.readU32(LOAD + o);
  return {
    int40Eip: u(8),
    int40Expect: u(12),
    int14Frame: u(16),
    int3bEip: u(20),
    int3bExpect: u(24),
    dbDr6: u(28),
    dbEip: u(32),
    dbExpect: u(36),
    result: u(40),
  };
}

for (const sync of [true, false]) {
  const how = sync ? "state through the kvm_run page (sync regs)" : "state through ioctls";
  Deno.test(`int3 at CPL0: the #BP handler runs and its iret returns to the next instruction; clac clears AC (${how})`, async () => {
    const m = FlatMachine.create(await guestBytes("pm/fallback_min"), { sync });
    try {
      const run = m.run(10_000);
      assert.equal(run.fatal, undefined, run.fatal?.message);
      const r = minResults(m);
      assert.equal(r.bpCount, 2);
      assert.equal(r.bpEip, r.expectEip, "the trap's return address is the next instruction");
      assert.equal(r.acAfter, 0);
      // 30 with SMAP (stac and clac ran), 6 without.
      assert.equal(run.exitValue, r.clacDone ? 30 : 6);
      if (run.fallbacks.size > 0) {
        assert.equal(run.fallbacks.get("int3"), 2);
        assert.equal(run.fallbacks.get("iret"), 2, "both iretd (cf) emulated");
      }
    } finally {
      m.close();
    }
  });

  Deno.test(`int n is a software interrupt; TF over an emulated instruction gives #DB with DR6.BS (${how})`, async () => {
    const m = FlatMachine.create(await guestBytes("pm/fallback_sys"), { sync });
    try {
      const run = m.run(10_000);
      assert.equal(run.fatal, undefined, run.fatal?.message);
      const r = sysResults(m);
      assert.equal(r.int40Eip, r.int40Expect, "int $0x40 returns after itself");
      assert.equal(r.int14Frame, 12, "int $14 pushes no error code");
      assert.equal(r.int3bEip, r.int3bExpect, "int $3 (cd 03) returns after itself");
      assert.equal(r.dbEip, r.dbExpect, "the single-step #DB follows popcnt");
      assert.equal(r.dbDr6 & 0x4000, 0x4000, `DR6.BS (DR6 ${r.dbDr6.toString(16)})`);
      assert.equal(run.exitValue, 15);
      if (run.fallbacks.size > 0) {
        assert.equal(run.fallbacks.get("int"), 3);
        assert.equal(run.fallbacks.get("popcnt"), 1);
        assert.equal(run.fallbacks.get("iret"), 4);
      }
    } finally {
      m.close();
    }
  });

  Deno.test(`faults the executor raises reach the guest as faults with their error codes; an unimplemented instruction ends the run, named (${how})`, async () => {
    const m = FlatMachine.create(await guestBytes("pm/fallback_exc"), { sync });
    try {
      const run = m.run(10_000);
      const r = m.memory.memory;
      const u = (o: number) => r.readU32(LOAD + o);
      if (run.fallbacks.size === 0) return; // ring 0 runs natively: no fallback to test
      assert.equal(u(8), 1, "#GP handler ran once");
      assert.equal(u(12), 0x18, "#GP error code: the data selector iret tried as CS");
      assert.equal(u(16), u(20), "#GP points at the iret");
      assert.equal(u(24), 1, "#NP handler ran once");
      assert.equal(u(28), 0x20, "#NP error code: the selector not present");
      assert.equal(u(32), u(36), "#NP points at the iret");
      assert.equal(run.fallbacks.get("iret"), 4);
      assert.equal(run.fatal?.suspend, "error");
      assert.equal(
        run.fatal!.message,
        `vcpu 0: cannot emulate "fsqrt" at rip 0x${u(40).toString(16)}: ` +
          "dhyve's instruction emulator does not implement fsqrt",
      );
    } finally {
      m.close();
    }
  });
}

Deno.test("the XSAVE area and XCR0 are read when the executor asks, and the area written back when dirty", async () => {
  let xcr0 = 0n;
  let touched = false;
  // The executor, and after its clac a change to XMM7 as an SSE instruction would make.
  const wrapped: EmulateFn = (cpu, mem) => {
    const r = emulate(cpu, mem);
    if (r.kind === "ok" && r.insn.mnemonic === "clac") {
      xcr0 = cpu.xcr0;
      const x = cpu.extended();
      // XMM7 (legacy region offset 160 + 16 * 7) and XSTATE_BV.SSE.
      x.fill(0x5a, 160 + 16 * 7, 160 + 16 * 8);
      x[512] |= 2;
      cpu.dirty |= DIRTY.extended;
      touched = true;
    }
    return r;
  };
  const m = FlatMachine.create(await guestBytes("pm/fallback_min"), {
    emulate: wrapped,
    sync: true,
  });
  try {
    const run = m.run(10_000);
    assert.equal(run.fatal, undefined, run.fatal?.message);
    if (!touched) return; // no SMAP or no fallback here
    assert.equal(xcr0 & 1n, 1n, "XCR0 has x87");
    const x = getXsave(m.vcpuFd);
    assert.deepEqual([...x.subarray(160 + 16 * 7, 160 + 16 * 8)], Array(16).fill(0x5a));
  } finally {
    m.close();
  }
});

Deno.test("cmpxchg16b on guest RAM through libatomic: exchanges on a match, bounds-checked", async () => {
  const m = FlatMachine.create(await guestBytes("pm/fallback_min"), { sync: true });
  try {
    const mmio = { read: () => 0, write: () => {}, read64: () => 0n, write64: () => {} };
    const mem = new GuestPhysicalMemory(m.memory.memory, m.memory.base, mmio, hostAtomics);
    const big = (1n << 100n) | 5n;
    assert.equal(mem.cmpxchg(0x20000, 16, 0n, big), 0n);
    assert.equal(m.memory.memory.readU64(0x20000), 5n);
    assert.equal(m.memory.memory.readU64(0x20008), 1n << 36n);
    assert.equal(mem.cmpxchg(0x20000, 16, 1n, 0n), big, "a mismatch leaves memory alone");
    assert.equal(m.memory.memory.readU64(0x20000), 5n);
    assert.equal(mem.cmpxchg(0x20004, 4, 0n, 0xffffffffn), 0n);
    assert.equal(m.memory.memory.readU64(0x20000), 0xffffffff00000005n);
    // Outside RAM it is no raw access (the MMIO stub reads 0).
    assert.equal(mem.cmpxchg(16 << 20, 8, 0n, 1n), 0n);
  } finally {
    m.close();
  }
});

/** Runs `main.ts up` on a flat 32-bit guest. */
async function up(
  guest: "pm/fallback_min" | "pm/fallback_exc" | "pm/fallback_sys",
  args: string[],
): Promise<RunResult & { report?: Record<string, unknown> }> {
  const s = await Scratch.create();
  try {
    const toml = await s.flatVm(guest);
    const report = `${s.dir}/report.json`;
    const t0 = performance.now();
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "up", ...args, "--report", report, toml],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: testEnv(),
      signal: AbortSignal.timeout(60_000),
    }).output();
    const dec = new TextDecoder();
    let json: Record<string, unknown> | undefined;
    try {
      json = JSON.parse(await Deno.readTextFile(report));
    } catch { /* no report */ }
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
      ms: performance.now() - t0,
      report: json,
    };
  } finally {
    await s.close();
  }
}

type VcpuReport = {
  exits: Record<string, number>;
  fallbacks: Record<string, { count: number; ms: number }>;
};

Deno.test("dhyve's vCPU loop: int3 and iret are emulated, counted per mnemonic in --report and summed up at -v", async () => {
  const r = await up("pm/fallback_min", ["-v"]);
  assert.ok(r.code === 61 || r.code === 13, `exit ${r.code}\n${r.stderr}`);
  const v = (r.report!.vcpus as VcpuReport[])[0];
  if (v.exits.fallback === 0) return; // ring 0 runs natively here
  assert.equal(v.fallbacks.int3.count, 2);
  assert.equal(v.fallbacks.iret.count, 2);
  const total = Object.values(v.fallbacks).reduce((n, c) => n + c.count, 0);
  assert.equal(v.exits.fallback, total);
  assert.ok(v.fallbacks.int3.ms > 0);
  assert.match(r.stderr, /fallbacks: (int3|iret) 2 \([0-9.]+ ms\), (int3|iret) 2 /);
});

Deno.test("dhyve's vCPU loop: int n, iret and the single-step #DB with DR6.BS", async () => {
  const r = await up("pm/fallback_sys", []);
  assert.equal(r.code, (15 << 1) | 1, `exit ${r.code}\n${r.stderr}`);
  const v = (r.report!.vcpus as VcpuReport[])[0];
  if (v.exits.fallback === 0) return; // ring 0 runs natively here
  assert.equal(v.fallbacks.int.count, 3);
  assert.equal(v.fallbacks.iret.count, 4);
});

Deno.test("dhyve: an instruction the executor does not implement ends the VM with 4, naming it, with the registers", async () => {
  const r = await up("pm/fallback_exc", []);
  if (r.code === (0x55 << 1 | 1)) return; // ring 0 runs natively here
  assert.equal(r.code, 4, r.stderr);
  const image = await guestBytes("pm/fallback_exc");
  const at = new DataView(image.buffer, image.byteOffset).getUint32(40, true);
  const rip = at.toString(16);
  assert.match(
    r.stderr,
    new RegExp(
      `vcpu 0: cannot emulate "fsqrt" at rip 0x${rip}: dhyve's instruction emulator does not implement fsqrt`,
    ),
  );
  assert.match(r.stderr, /KVM internal error: instruction emulation failed/);
  assert.match(r.stderr, new RegExp(`rip=0x${rip.padStart(16, "0")}`));
  assert.match(r.stderr, new RegExp(`code at gpa 0x${rip}: d9 fa`));
  assert.doesNotMatch(r.stderr, /Uncaught|^\s+at .*:\d+:\d+\)?$/m);
  const v = (r.report!.vcpus as VcpuReport[])[0];
  assert.equal(v.exits.internal_error, 1);
  assert.equal(v.fallbacks.iret.count, 4, "the two faulting irets and the handlers' irets");
});

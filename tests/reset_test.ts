// Integration test: many in-place reboots (vm.on_reset = "restart") while
// device timers are busy: every reboot stops the old instance's threads
// before closing its KVM fds, and nothing leaks.
import assert from "node:assert/strict";
import { configFromObject, Vm, type VmConfig } from "../mod.ts";
import { libc } from "../cpu/libc.ts";
import { guestBytes, Scratch, within } from "./helpers.ts";

// dhyve opens libc once per thread and keeps it: open it before the sanitizers count.
libc();

function kvmHandles(): { vcpuMaps: number; kvmFds: number } {
  const maps = Deno.readTextFileSync("/proc/self/maps");
  const vcpuMaps = maps.split("\n").filter((l) => l.includes("anon_inode:kvm-vcpu")).length;
  let kvmFds = 0;
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${e.name}`).startsWith("anon_inode:kvm-")) kvmFds++;
    } catch { /* the fd closed meanwhile */ }
  }
  return { vcpuMaps, kvmFds };
}

/** Two vCPUs, 16 MiB, `guest` entered in real mode at 0x10000, debug-exit at 0xF4; `extra` on top. */
async function rawConfig(
  s: Scratch,
  guest: `rm/${string}`,
  extra: Record<string, unknown>,
): Promise<VmConfig> {
  const image = await s.write("guest.bin", await guestBytes(guest));
  return configFromObject({
    cpu: { cpus: 2 },
    memory: { size: "16M" },
    boot: { kind: "raw", image, address: 0x10000, entry: "real16" },
    device: [{ type: "debug-exit", port: 0xf4, size: 1 }],
    ...extra,
  }, `${s.dir}/vm.toml`);
}

Deno.test("20 reboots in place with RTC interrupts at 8192 Hz: all finish, nothing leaks", async () => {
  const s = await Scratch.create();
  try {
    const config = await rawConfig(s, "rm/reboot_loop", {
      vm: { on_reset: "restart" },
      console: { com1: "none" },
    });
    const before = kvmHandles();
    await using vm = await Vm.create(config);
    await vm.start();
    const exit = await vm.wait();
    assert.equal(exit.kind, "debug-exit", exit.message);
    assert.equal(exit.status, (20 << 1) | 1);
    assert.equal(vm.resets, 19);
    assert.deepEqual(kvmHandles(), before);
  } finally {
    await s.close();
  }
});

Deno.test("pause stops every vCPU in place and resume lets the guest go on", async () => {
  const s = await Scratch.create();
  try {
    // echo.S polls COM1, which is absent here (a floating bus reads 0xFF), so it
    // exits to dhyve all the time: while paused, it must not.
    const config = await rawConfig(s, "rm/echo", { console: { com1: "none", com2: "none" } });
    await using vm = await Vm.create(config);
    await vm.start();
    assert.equal(await vm.pause(), true);
    assert.deepEqual(vm.machine.vcpus.map((v) => v.control.state), ["paused", "paused"]);
    const exitsWhilePaused = vm.stats()[0].exits.io;
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(vm.stats()[0].exits.io, exitsWhilePaused, "no exits while paused");
    vm.resume();
    vm.requestSuspend({ kind: "poweroff", message: "test: done" });
    const exit = await vm.wait();
    assert.equal(exit.kind, "poweroff");
    assert.equal(await vm.pause(), false, "a stopped VM does not pause");
  } finally {
    await s.close();
  }
});

Deno.test("resume then pause at once, 300 times: no request is lost between the threads", async () => {
  const s = await Scratch.create();
  try {
    // Each resume() posts "run" and the pause() right after it posts "pause"
    // while the vCPU thread may be between reading "run" and taking it.
    const config = await rawConfig(s, "rm/echo", { console: { com1: "none", com2: "none" } });
    await using vm = await Vm.create(config);
    await vm.start();
    for (let i = 0; i < 300; i++) {
      assert.equal(await vm.pause(), true, `pause ${i}`);
      vm.resume();
      // Spin 0-150 µs so that some pauses land just as the vCPU thread wakes.
      const until = performance.now() + (i % 16) * 0.01;
      while (performance.now() < until) { /* spin */ }
    }
  } finally {
    await s.close();
  }
});

Deno.test("a resume that comes while a pause is under way wins: the guest runs on", async () => {
  const s = await Scratch.create();
  try {
    const config = await rawConfig(s, "rm/echo", { console: { com1: "none", com2: "none" } });
    await using vm = await Vm.create(config);
    await vm.start();
    for (let i = 0; i < 50; i++) {
      const pausing = vm.pause();
      vm.resume();
      assert.equal(await pausing, false, `pause ${i} gave up`);
      const before = vm.stats()[0].exits.io;
      const deadline = Date.now() + 5000;
      while (vm.stats()[0].exits.io === before && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 1));
      }
      assert.ok(vm.stats()[0].exits.io > before, `the guest runs after resume ${i}`);
    }
  } finally {
    await s.close();
  }
});

Deno.test("a pause that fails (during a reboot in place) leaves no host pause: the halt rule still ends the VM", async () => {
  const s = await Scratch.create();
  try {
    const config = await rawConfig(s, "rm/reset_then_halt", {
      cpu: { cpus: 1 },
      vm: { on_reset: "restart" },
      console: { com1: "none" },
    });
    await using vm = await Vm.create(config);
    await vm.start();
    const exit = vm.wait();
    // A host that pauses and resumes now and then, until a pause fails: one
    // that comes while a reset rebuilds the VM returns false.
    let failed = 0;
    for (const t0 = Date.now(); Date.now() - t0 < 10_000 && failed === 0;) {
      if (await vm.pause()) vm.resume();
      else failed++;
      await new Promise((r) => setTimeout(r, 0));
    }
    assert.ok(failed > 0, "no pause failed: the test did not hit a reset");
    const end = await within(exit, 20_000);
    assert.equal(end?.kind ?? "still running after 20 s", "halt");
    assert.equal(vm.resets, 5);
  } finally {
    await s.close();
  }
});

Deno.test("a vCPU that never stops (stuck on the device lock) still ends the VM, with status 4 naming it", async () => {
  const s = await Scratch.create();
  try {
    const image = await s.write("guest.bin", await guestBytes("rm/spew"));
    const config = configFromObject({
      memory: { size: "16M" },
      boot: { kind: "raw", image, address: 0x10000, entry: "real16" },
      console: { com1: { file: "/dev/null" }, com2: "none" },
    }, `${s.dir}/vm.toml`);
    const vm = await Vm.create(config, { stopTimeoutMs: 500 });
    await vm.start();
    while (vm.stats()[0].exits.io === 0) await new Promise((r) => setTimeout(r, 1));
    // This thread takes the device lock and keeps it: the vCPU blocks on its
    // next UART access, as behind a device that never returns.
    const lock = vm.machine.control.lock;
    while (!lock.tryAcquire()) await new Promise((r) => setTimeout(r, 1));
    // Until the vCPU waits for it: its exit count stops moving.
    for (let seen = -1; vm.stats()[0].exits.io !== seen;) {
      seen = vm.stats()[0].exits.io;
      await new Promise((r) => setTimeout(r, 50));
    }
    vm.requestSuspend({ kind: "poweroff", message: "test: done" });
    const exit = await within(vm.wait(), 20_000);
    lock.release();
    assert.ok(exit, "the VM did not end within 20 s");
    assert.equal(exit.kind, "error");
    assert.equal(exit.status, 4);
    // The timer thread may be blocked on the same lock (a device timer firing).
    assert.match(
      exit.message ?? "",
      /^test: done; then these threads did not stop within 500 ms: vcpu 0 \(running\)(, the timer thread)?$/,
    );
  } finally {
    await s.close();
  }
});

Deno.test("a host pause holds while the VM waits: the halt check does not resume it", async () => {
  const s = await Scratch.create();
  try {
    // Paused, echo.S makes no exits, which the halt check (every 500 ms while
    // the VM waits) must not take for a quiet guest and resume.
    const config = await rawConfig(s, "rm/echo", { console: { com1: "none", com2: "none" } });
    await using vm = await Vm.create(config);
    await vm.start();
    const exit = vm.wait();
    assert.equal(await vm.pause(), true);
    const exitsWhilePaused = vm.stats()[0].exits.io;
    await new Promise((r) => setTimeout(r, 1600));
    assert.deepEqual(vm.stats().map((v) => v.state), ["paused", "paused"]);
    assert.equal(vm.stats()[0].exits.io, exitsWhilePaused, "no exits while paused");
    vm.resume();
    const deadline = Date.now() + 5000;
    while (vm.stats()[0].exits.io === exitsWhilePaused && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(vm.stats()[0].exits.io > exitsWhilePaused, "the guest runs again after resume");
    vm.requestSuspend({ kind: "poweroff", message: "test: done" });
    assert.equal((await exit).kind, "poweroff");
  } finally {
    await s.close();
  }
});

// Integration tests: real-mode guests on KVM drive every way a VM ends, and
// the console in both directions. Each runs `main.ts up` as a subprocess.
import assert from "node:assert/strict";
import { runFlatGuest, Scratch, spawnDhyve } from "./helpers.ts";

Deno.test("a guest prints on COM1 and ends through debug-exit with (v << 1) | 1; --report writes the exit and per-vCPU statistics", async () => {
  const s = await Scratch.create();
  try {
    const report = `${s.dir}/r.json`;
    const r = await runFlatGuest("rm/hello", { args: ["--report", report] });
    assert.equal(r.stdout, "hello from real mode\n");
    assert.equal(r.code, 33, r.stderr);
    assert.match(r.stderr, /debug-exit: guest wrote 0x10/);
    const j = JSON.parse(await Deno.readTextFile(report));
    assert.equal(j.exit.kind, "debug-exit");
    assert.equal(j.exit.status, 33);
    assert.equal(j.vcpus.length, 1);
    // One OUT per character plus one LSR read each, then the debug-exit OUT.
    assert.ok(j.vcpus[0].exits.io >= 2 * "hello from real mode\n".length + 1);
    assert.ok(j.vcpus[0].firstRunWallMs > 0);
  } finally {
    await s.close();
  }
});

Deno.test("piped stdin reaches the guest's UART and its echo comes back on stdout", async () => {
  const input = "hello, guest.";
  const r = await runFlatGuest("rm/echo", { stdin: input });
  assert.equal(r.stdout, input);
  assert.equal(r.code, ((input.length << 1) | 1) & 0xff, r.stderr);
});

Deno.test("more input than the receive FIFO holds arrives complete and in order", async () => {
  const input = "0123456789abcdefghijklmnopqrstuvwxyz".repeat(4) + ".";
  const r = await runFlatGuest("rm/echo", { stdin: input });
  assert.equal(r.stdout, input);
  assert.equal(r.code, ((input.length << 1) | 1) & 0xff, r.stderr);
});

Deno.test("reset through the reset control register (0xCF9) exits with 0", async () => {
  const r = await runFlatGuest("rm/reset_cf9");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /reset control register: 0x06 written to port 0xcf9/);
});

Deno.test("reset through the i8042 (0xFE to port 0x64) exits with 0", async () => {
  const r = await runFlatGuest("rm/reset_kbd");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /i8042 reset/);
});

Deno.test("ACPI S5 through PM1a_CNT powers off with 1", async () => {
  const r = await runFlatGuest("rm/poweroff");
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /ACPI S5/);
});

Deno.test("a triple fault exits with 3 and logs the vCPU state", async () => {
  const r = await runFlatGuest("pm/triple");
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /vcpu 0 \(apic id 0\): triple fault/);
  assert.match(r.stderr, /rip=0x[0-9a-f]{16}/);
  assert.match(r.stderr, /cs=0010 base=0x0000000000000000 limit=ffffffff/);
});

Deno.test("an instruction KVM cannot run exits with 4 and logs registers and the bytes at RIP", async () => {
  const r = await runFlatGuest("rm/mmio_exec");
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /KVM internal error/);
  assert.match(r.stderr, /rip=0x[0-9a-f]{16}/);
  assert.match(r.stderr, /gpa 0xa0000 is not RAM|code at gpa/);
});

Deno.test("an unclaimed port reads as 0xFF; strict_io makes it fatal and names it", async () => {
  const loose = await runFlatGuest("rm/unclaimed");
  assert.equal(loose.code, 0xff, loose.stderr);
  const strict = await runFlatGuest("rm/unclaimed", { extra: "[vm]\nstrict_io = true\n" });
  assert.equal(strict.code, 4, strict.stderr);
  assert.match(strict.stderr, /unclaimed pio 1-byte read at 0xe0/);
});

Deno.test("on_reset = restart reboots in place; the RTC keeps its time and NVRAM across the reset", async () => {
  const r = await runFlatGuest("rm/rtc_reset", { extra: '[vm]\non_reset = "restart"\n' });
  assert.equal(r.code, 0x83, r.stderr);
  assert.match(r.stderr, /restarting the VM/);
  // Without restart, the same reset ends dhyve with status 0.
  const once = await runFlatGuest("rm/rtc_reset");
  assert.equal(once.code, 0, once.stderr);
});

Deno.test("COM1 to a file: the guest's output lands there and stdout stays empty", async () => {
  const s = await Scratch.create();
  try {
    const log = `${s.dir}/serial.log`;
    const r = await runFlatGuest("rm/hello", { extra: `[console]\ncom1 = { file = "${log}" }\n` });
    assert.equal(r.code, 33, r.stderr);
    assert.equal(r.stdout, "");
    assert.equal(await Deno.readTextFile(log), "hello from real mode\n");
  } finally {
    await s.close();
  }
});

Deno.test("COM1 = none: the UART does not exist, the guest's polling reads a floating bus", async () => {
  // hello.S polls LSR (0x3FD) for THRE: an absent UART reads 0xFF, so it goes on and exits.
  const r = await runFlatGuest("rm/hello", { extra: `[console]\ncom1 = "none"\n` });
  assert.equal(r.code, 33, r.stderr);
  assert.equal(r.stdout, "");
});

Deno.test("port 0x61 (PIT channel 2 gate) is KVM's: it works even with strict_io", async () => {
  const r = await runFlatGuest("rm/port61", { extra: "[vm]\nstrict_io = true\n" });
  assert.equal(r.code, 0x23, r.stderr);
});

Deno.test("every vCPU halted with interrupts disabled: the VM halts with status 2", async () => {
  const r = await runFlatGuest("rm/ready_halt", { extra: "[cpu]\ncpus = 2\n" });
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, "ready\n");
  // The AP never got INIT/SIPI: it is not active and does not count.
  assert.match(r.stderr, /halt: every vCPU \(1\) is halted with interrupts disabled/);
});

Deno.test("a guest idling with interrupts enabled is not halted", async () => {
  // It idles for ever: 1.5 s after its "ready" (three rounds of the halt
  // check), dhyve must still be running it.
  const s = await Scratch.create();
  try {
    const child = spawnDhyve(["up", await s.flatVm("rm/ready_idle")]);
    const stderr = new Response(child.stderr).text();
    const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const reader = child.stdout.getReader();
    let out = "";
    while (!out.includes("ready\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    let exited = false;
    const status = child.status.then((st) => (exited = true, st));
    await new Promise((r) => setTimeout(r, 1500));
    const early = exited;
    child.kill("SIGKILL");
    clearTimeout(killer);
    await reader.cancel();
    const st = await status;
    assert.equal(out, "ready\n");
    assert.equal(early, false, `exited by itself with ${st.code}: ${await stderr}`);
  } finally {
    await s.close();
  }
});

Deno.test("Linux's PCI mechanism #1 probe (0xCFB, 0xCF8, 0xCFC) works with strict_io", async () => {
  const r = await runFlatGuest("rm/pci_probe", { extra: "[vm]\nstrict_io = true\n" });
  assert.equal(r.code, 3, r.stderr);
});

Deno.test("an unaligned MMIO read split at a page boundary (exits of 1 + 3 and 2 + 2 bytes)", async () => {
  const r = await runFlatGuest("pm/mmio_split");
  assert.equal(r.code, 35, r.stderr);
});

Deno.test("HPET LegacyReplacement on and off (KVM's PIT told through KVM_SET_PIT2)", async () => {
  const r = await runFlatGuest("pm/hpet_legacy");
  assert.equal(r.code, 33, r.stderr);
});

Deno.test("up -v prints a progress line every 5 s on stderr, never on the guest's console", async () => {
  const s = await Scratch.create();
  try {
    const child = spawnDhyve(["up", "-v", await s.flatVm("rm/ready_idle")]);
    const stdout = new Response(child.stdout).text();
    const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const reader = child.stderr.getReader();
    let err = "";
    while (!/up \d+s: \d+ exits\/s, fallbacks \d+ \(\+\d+\/s\)/.test(err)) {
      const { value, done } = await reader.read();
      if (done) break;
      err += new TextDecoder().decode(value);
    }
    child.kill("SIGKILL");
    clearTimeout(killer);
    await reader.cancel();
    await child.status;
    assert.match(err, /up [56]s: \d+ exits\/s, fallbacks 0 \(\+0\/s\)/, err);
    assert.equal(await stdout, "ready\n");
  } finally {
    await s.close();
  }
});

// Integration tests: SIGTERM and SIGINT do what they do in bhyve: press the
// ACPI power button when the guest listens for it, otherwise (or on a second
// signal) power the VM off.
import assert from "node:assert/strict";
import { Scratch, spawnDhyve } from "./helpers.ts";

/** Boots `guest`, waits for "ready" on its console, sends `signals` and returns the exit. */
async function signalled(
  guest: `rm/${string}`,
  signals: Deno.Signal[],
): Promise<{ code: number; stderr: string }> {
  const s = await Scratch.create();
  try {
    const child = spawnDhyve(["up", await s.flatVm(guest)]);
    const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const stderr = new Response(child.stderr).text();
    const reader = child.stdout.getReader();
    let out = "";
    while (!out.includes("ready\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    for (const sig of signals) {
      child.kill(sig);
      await new Promise((r) => setTimeout(r, 200));
    }
    await reader.cancel();
    const status = await child.status;
    clearTimeout(killer);
    return { code: status.code, stderr: await stderr };
  } finally {
    await s.close();
  }
}

Deno.test("SIGTERM presses the ACPI power button of a guest that listens for it", async () => {
  const r = await signalled("rm/pwrbtn", ["SIGTERM"]);
  assert.equal(r.code, 0x85, r.stderr);
  assert.match(r.stderr, /SIGTERM: pressed the ACPI power button/);
});

Deno.test("SIGTERM powers off a guest that does not listen to the power button", async () => {
  const r = await signalled("rm/ready_idle", ["SIGTERM"]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /SIGTERM: forced poweroff/);
});

Deno.test("a second signal forces the poweroff when the guest does not act on the button", async () => {
  const r = await signalled("rm/pwrbtn_deaf", ["SIGINT", "SIGINT"]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /SIGINT: pressed the ACPI power button/);
  assert.match(r.stderr, /SIGINT: forced poweroff/);
});

Deno.test("a console nobody reads slows the guest down but never makes dhyve unresponsive", async () => {
  const s = await Scratch.create();
  try {
    // After its first bytes (dhyve's signal handlers are in place before the
    // guest runs), stdout is not read: the pipe fills, then dhyve's output ring.
    const child = spawnDhyve(["up", await s.flatVm("rm/spew")]);
    const stderr = new Response(child.stderr).text();
    const reader = child.stdout.getReader();
    await reader.read();
    reader.releaseLock();
    await new Promise((r) => setTimeout(r, 1500));
    const t0 = performance.now();
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    const status = await child.status;
    clearTimeout(killer);
    const ms = performance.now() - t0;
    await child.stdout.cancel();
    const err = await stderr;
    assert.equal(status.code, 1, err);
    assert.match(err, /SIGTERM: forced poweroff/);
    assert.ok(ms < 10_000, `took ${ms} ms to stop`);
  } finally {
    await s.close();
  }
});

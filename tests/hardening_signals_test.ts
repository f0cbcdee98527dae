// Integration tests: a signal while `up` starts a VM (checking a large
// definition, creating thousands of devices, starting the Workers, waiting
// for a console FIFO's reader) ends dhyve within a second with status 1 (a
// poweroff: the guest never ran), and releases everything, the control
// socket included. And a console FIFO opens without blocking `up`.
import assert from "node:assert/strict";
import { Scratch, spawnDhyve } from "./helpers.ts";

/** Devices enough for the start to take many seconds (each thread attaches all of them). */
const MANY_DEVICES = 20_000;

/** A probe VM with `n` debug-exit devices (inline tables keep the file under the 1 MiB limit). */
function manyDevicesToml(n: number): string {
  const devices = Array.from(
    { length: n },
    (_, i) => `{ type = "debug-exit", port = ${0x2000 + i}, size = 1 },`,
  );
  // The array comes first: a top-level key after a table would belong to it.
  return `device = [\n${devices.join("\n")}\n]\n[vm]\nname = "many"\n[cpu]\ncpus = 2\n` +
    `[boot]\nkind = "probe"\n[console]\ncom1 = "none"\n`;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `up toml` with its control socket at `ctl`, sends `signal` after
 * `delayMs`, and returns how it ended and how long it took to end after
 * the signal.
 */
async function signalDuringStart(
  toml: string,
  ctl: string,
  signal: Deno.Signal,
  delayMs: number,
): Promise<{ code: number; stderr: string; stdout: string; ms: number }> {
  const child = spawnDhyve(["up", "--ctl", ctl, toml]);
  const out = new Response(child.stdout).text();
  const err = new Response(child.stderr).text();
  const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  try {
    await new Promise((r) => setTimeout(r, delayMs));
    const t0 = performance.now();
    child.kill(signal);
    const status = await child.status;
    const ms = performance.now() - t0;
    return { code: status.code, stderr: await err, stdout: await out, ms };
  } finally {
    clearTimeout(killer);
  }
}

for (
  const [signal, delayMs] of [["SIGTERM", 1000], ["SIGINT", 2000], ["SIGHUP", 3000]] as const
) {
  Deno.test(`${signal} ${delayMs} ms into the start of a VM with ${MANY_DEVICES} devices ends dhyve within a second, status 1, socket removed`, async () => {
    const s = await Scratch.create();
    try {
      const toml = await s.write("vm.toml", manyDevicesToml(MANY_DEVICES));
      const ctl = `${s.dir}/ctl.sock`;
      const r = await signalDuringStart(toml, ctl, signal, delayMs);
      assert.equal(r.code, 1, r.stderr);
      assert.ok(r.ms < 1500, `took ${Math.round(r.ms)} ms to end after ${signal}\n${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${signal}: stopped while starting, before the guest ran`));
      assert.equal(r.stdout, "", "the guest ran");
      assert.equal(exists(ctl), false, "the control socket was left behind");
    } finally {
      await s.close();
    }
  });
}

Deno.test("a console FIFO without a reader: up says it waits, and SIGTERM ends it at once with status 1", async () => {
  const s = await Scratch.create();
  try {
    const fifo = `${s.dir}/console.fifo`;
    await new Deno.Command("mkfifo", { args: [fifo] }).output();
    const toml = await s.write(
      "vm.toml",
      `[vm]\nname = "fifo"\n[boot]\nkind = "probe"\n[console]\ncom1 = { file = "console.fifo" }\n`,
    );
    const ctl = `${s.dir}/ctl.sock`;
    const child = spawnDhyve(["up", "--ctl", ctl, toml]);
    const out = new Response(child.stdout).text();
    const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    try {
      // Wait for the message: up is then waiting, not blocked in open(2).
      const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
      let err = "";
      while (!err.includes("waiting for one")) {
        const { value, done } = await reader.read();
        if (done) break;
        err += value;
      }
      assert.match(err, /console file .*console\.fifo is a FIFO with no reader; waiting for one/);
      const t0 = performance.now();
      child.kill("SIGTERM");
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        err += value;
      }
      const status = await child.status;
      const ms = performance.now() - t0;
      assert.equal(status.code, 1, err);
      assert.ok(ms < 1500, `took ${Math.round(ms)} ms`);
      assert.match(err, /SIGTERM: stopped while starting, before the guest ran/);
      assert.equal(await out, "");
      assert.equal(exists(ctl), false, "the control socket was left behind");
    } finally {
      clearTimeout(killer);
    }
  } finally {
    await s.close();
  }
});

Deno.test("a console FIFO with a reader gets the guest's output; a reader that leaves is named by port and path", async () => {
  const s = await Scratch.create();
  try {
    const fifo = `${s.dir}/console.fifo`;
    await new Deno.Command("mkfifo", { args: [fifo] }).output();
    const toml = await s.write(
      "vm.toml",
      `[vm]\nname = "fifo"\n[boot]\nkind = "probe"\n[console]\ncom1 = { file = "console.fifo" }\n`,
    );
    // A reader that reads it all: the probe's report arrives whole.
    const child = spawnDhyve(["up", "--no-ctl", toml]);
    const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const reader = await Deno.open(fifo, { read: true });
    const console = new Response(reader.readable).text();
    const out = await child.output();
    clearTimeout(killer);
    const err = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 1, err);
    assert.match(await console, /^probe: dhyve probe/m);

    // A reader that takes 10 bytes and leaves: the output stops, said by port and path.
    const child2 = spawnDhyve(["up", "--no-ctl", toml]);
    const killer2 = setTimeout(() => child2.kill("SIGKILL"), 30_000);
    const f = await Deno.open(fifo, { read: true });
    await f.read(new Uint8Array(10));
    f.close();
    const out2 = await child2.output();
    clearTimeout(killer2);
    const err2 = new TextDecoder().decode(out2.stderr);
    assert.equal(out2.code, 1, err2);
    assert.match(err2, /com1 output to \S*console\.fifo stopped: its reader went away/);
  } finally {
    await s.close();
  }
});

// Integration tests: the console on a terminal. `script` (util-linux) gives
// dhyve a pseudo-terminal, so stdin goes into raw mode and the Ctrl-A
// escapes work.
import assert from "node:assert/strict";
import { MAIN, Scratch } from "./helpers.ts";

/** Runs dhyve under a pty; `keys` are typed after `delayMs`, one batch every 300 ms. */
async function onTerminal(guest: `rm/${string}`, keys: string[], delayMs: number) {
  const s = await Scratch.create();
  try {
    const toml = await s.flatVm(guest);
    const child = new Deno.Command("script", {
      args: ["-qec", `${Deno.execPath()} run -A ${MAIN} up ${toml}`, "/dev/null"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const w = child.stdin.getWriter();
    await new Promise((r) => setTimeout(r, delayMs));
    for (const k of keys) {
      await w.write(new TextEncoder().encode(k));
      await new Promise((r) => setTimeout(r, 300));
    }
    await w.close();
    const out = await child.output();
    clearTimeout(killer);
    return {
      code: out.code,
      text: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
    };
  } finally {
    await s.close();
  }
}

Deno.test("on a terminal, Ctrl-A h shows the escapes and Ctrl-A x quits with status 1", async () => {
  // Type only after Deno's 500 ms grace period, so the vCPU kick also proves that
  // dhyve's kick signal does not wake Deno's inspector (it listens on SIGUSR1).
  const r = await onTerminal("rm/ready_idle", ["\x01h", "\x01x"], 1200);
  assert.equal(r.code, 1, r.text);
  assert.match(r.text, /ready/);
  assert.match(r.text, /Ctrl-A x +quit \(forced poweroff\)/);
  assert.match(r.text, /console: quit \(Ctrl-A x\)/);
  assert.doesNotMatch(r.text, /Debugger listening/);
});

Deno.test("on a terminal, typed keys reach the guest, Ctrl-A Ctrl-A sends one Ctrl-A", async () => {
  // echo.S echoes until '.', then exits with (n << 1) | 1 where n counts the bytes it read.
  const r = await onTerminal("rm/echo", ["ab\x01\x01c."], 800);
  assert.equal(r.code, ((5 << 1) | 1) & 0xff, r.text);
});

/**
 * Issue 11, item 7: stdin input is held in a bounded buffer with
 * back-pressure. A child dhyve console whose guest never reads must stop
 * taking stdin once it holds INPUT_HOLD bytes, so a chatty writer blocks
 * (the pipe fills) instead of dhyve growing.
 *
 * @module
 */
import assert from "node:assert/strict";

const CONSOLE = new URL("../lib/console.ts", import.meta.url).href;
const LOCK = new URL("../lib/vm/lock.ts", import.meta.url).href;

/** The child: stdin wired to a device whose FIFO takes nothing; prints what it holds. */
const CHILD = `
import { StdinConsole, INPUT_HOLD } from "${CONSOLE}";
import { SharedMutex } from "${LOCK}";
const device = { receive: () => 0, rxSpace: () => 0 };
const lock = new SharedMutex(new Int32Array(new SharedArrayBuffer(4)), 0);
const stdin = new StdinConsole(() => device, lock, { quit() {}, powerButton() {} });
stdin.start();
setInterval(() => console.log("held " + stdin.held + " of " + INPUT_HOLD), 100);
`;

Deno.test("stdin: a guest that never reads holds dhyve to a bounded buffer; the writer is held back", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", CHILD],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  const chunk = new Uint8Array(4096).fill(0x61);
  const total = 8 * 1024 * 1024;
  let written = 0;
  try {
    // Write until a write stays blocked for half a second (or all 8 MiB went).
    while (written < total) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stalled = await Promise.race([
        writer.write(chunk).then(() => false),
        new Promise<boolean>((r) => timer = setTimeout(() => r(true), 500)),
      ]);
      clearTimeout(timer);
      if (stalled) break;
      written += chunk.length;
    }
    // Unbounded, the child read all 8 MiB; bounded, a few pipe buffers at most.
    assert.ok(written < 1024 * 1024, `the child took ${written} bytes of stdin without limit`);
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!/held \d+ of \d+\n/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    const [, held, limit] = /held (\d+) of (\d+)/.exec(text)!.map(Number);
    assert.ok(held <= limit, `held ${held} bytes, over the limit of ${limit}`);
    await reader.cancel();
  } finally {
    child.kill("SIGKILL");
    await writer.abort().catch(() => {});
    await child.status;
  }
});

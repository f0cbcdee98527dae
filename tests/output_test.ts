// Integration test: console output held back by a stalled reader is all
// written out when the VM ends, including the bytes the UART still holds in
// its transmit FIFO because dhyve's output ring was full.
import assert from "node:assert/strict";
import { configFromObject, Vm } from "../mod.ts";
import { libc } from "../cpu/libc.ts";
import { guestBytes, Scratch } from "./helpers.ts";

// dhyve opens libc once per thread and keeps it: open it before the sanitizers count.
libc();

/** Where burst.S counts its 16-byte bursts (DS:0x8000, DS = 0x1000). */
const BURSTS_GPA = 0x18000;
const LINE = "0123456789abcde\n";

Deno.test("a stalled console reader: the bytes a full ring left in the UART are written out at the end", async () => {
  const s = await Scratch.create();
  try {
    // COM1 goes to a FIFO that this test holds open (read-write, so that
    // dhyve's open for writing does not wait) and does not read at first:
    // the pipe fills, then dhyve's ring, then the UART's transmit FIFO.
    const fifo = `${s.dir}/com1`;
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.equal(mk.code, 0, "mkfifo");
    const reader = await Deno.open(fifo, { read: true, write: true });
    const image = await s.write("guest.bin", await guestBytes("rm/burst"));
    const config = configFromObject({
      memory: { size: "16M" },
      boot: { kind: "raw", image, address: 0x10000, entry: "real16" },
      console: { com1: { file: fifo }, com2: "none" },
    }, `${s.dir}/vm.toml`);
    const vm = await Vm.create(config);
    await vm.start();
    const ram = vm.machine.memory.memory;
    // Wait until the guest is stuck on THRE: its burst count stops moving.
    let bursts = -1;
    for (let still = 0; still < 5;) {
      await new Promise((r) => setTimeout(r, 100));
      const n = ram.readU32(BURSTS_GPA);
      still = n === bursts && n > 0 ? still + 1 : 0;
      bursts = n;
    }
    const expected = bursts * LINE.length;
    assert.ok(expected > 64 * 1024, `the guest wrote ${expected} bytes before it stalled`);
    // The host ends the VM (as Ctrl-A x does) and only now reads the console.
    // Once the VM has ended, dhyve wrote all it will write: the test then
    // puts a sentinel in the pipe itself and reads up to it.
    vm.requestSuspend({ kind: "poweroff", message: "test: done" });
    const SENTINEL = "<end>";
    const ended = vm.wait().then(async (exit) => {
      // A second descriptor: the first is busy with the pending read.
      using w = await Deno.open(fifo, { write: true });
      await w.write(new TextEncoder().encode(SENTINEL));
      return exit;
    });
    let text = "";
    const buf = new Uint8Array(64 * 1024);
    const decoder = new TextDecoder();
    while (!text.endsWith(SENTINEL)) {
      const n = await reader.read(buf);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n), { stream: true });
    }
    assert.equal((await ended).kind, "poweroff");
    reader.close();
    text = text.slice(0, -SENTINEL.length);
    const got = text.length;
    assert.equal(got, expected, "every byte the guest wrote reached the console");
    assert.equal(text, LINE.repeat(bursts));
  } finally {
    await s.close();
  }
});

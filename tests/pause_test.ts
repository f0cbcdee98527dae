import assert from "node:assert/strict";
import { configFromObject } from "../lib/config.ts";
import { Vm } from "../lib/vm.ts";
import { libc } from "../cpu/libc.ts";
import { guestBytes, Scratch } from "./helpers.ts";

// dhyve opens libc once per thread and keeps it: open it before the sanitizers count.
libc();

Deno.test("a host pause holds while the VM waits: the halt check does not resume it", async () => {
  const s = await Scratch.create();
  try {
    // echo.S polls the absent COM1 and so exits to dhyve all the time; paused,
    // it makes no exits, which the halt check (every 500 ms) must not take
    // for a quiet guest and resume.
    const image = await s.write("echo.bin", await guestBytes("rm/echo"));
    const config = configFromObject({
      cpu: { cpus: 2 },
      memory: { size: "16M" },
      boot: { kind: "raw", image, address: 0x10000, entry: "real16" },
      console: { com1: "none", com2: "none" },
      device: [{ type: "debug-exit", port: 0xf4, size: 1 }],
    }, `${s.dir}/vm.toml`);
    const vm = await Vm.create(config);
    await vm.start();
    const exit = vm.wait();
    assert.equal(await vm.pause(), true);
    const exitsWhilePaused = vm.stats()[0].exits.io;
    await new Promise((r) => setTimeout(r, 1600));
    assert.deepEqual(vm.stats().map((v) => v.state), ["paused", "paused"]);
    assert.equal(vm.stats()[0].exits.io, exitsWhilePaused, "no exits while paused");
    vm.resume();
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(vm.stats()[0].exits.io > exitsWhilePaused, "the guest runs again after resume");
    vm.requestSuspend({ kind: "poweroff", message: "test: done" });
    assert.equal((await exit).kind, "poweroff");
  } finally {
    await s.close();
  }
});

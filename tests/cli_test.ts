// Integration tests of the CLI's inspection commands.
import assert from "node:assert/strict";
import { DEMO, dhyve } from "./helpers.ts";

Deno.test("dhyve check prints the effective config, topology, memory map, PCI routing and tables", async () => {
  const r = await dhyve(["check", DEMO]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split("\n");
  for (
    const expected of [
      "vm.name=demo",
      "vm.on_reset=exit",
      "memory.size=268435456 (256 MiB)",
      "memory.lowmem_limit=3221225472 (3 GiB)",
      "cpu.cpus=2",
      "cpu.sockets=2",
      "console.com1=stdio",
      "pci[0].type=testdev",
      "topology: 2 sockets x 1 cores x 1 threads = 2 vCPUs",
      "  cpu 1: socket 1 core 0 thread 0 apic id 1",
      "  0x000000000-0x00009ffff  ram",
      "  0x0e0000000-0x0efffffff  reserved",
      "  00:03.0 testdev  INTA -> IOAPIC pin 16, PIRQA (IRQ 5)",
      "  00:1f.0 lpc",
      "  RSDP at 0xf0000, 36 bytes",
    ]
  ) {
    assert.ok(
      lines.includes(expected),
      `missing line ${JSON.stringify(expected)} in:\n${r.stdout}`,
    );
  }
});

Deno.test("dhyve devices lists every model with where it may be placed", async () => {
  const r = await dhyve(["devices"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^debug-exit +\[\[device\]\] +Test exit port/m);
  assert.match(r.stdout, /^testdev +\[\[pci\]\] +dhyve's PCI test device/m);
  assert.match(r.stdout, /^uart16550 +built-in /m);
});

Deno.test("an unknown command or option is a usage error with status 2", async () => {
  const a = await dhyve(["frobnicate"]);
  assert.equal(a.code, 2);
  assert.match(a.stderr, /unknown command 'frobnicate'/);
  const b = await dhyve(["up", "--no-such-flag", DEMO]);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /unknown option '--no-such-flag'/);
});

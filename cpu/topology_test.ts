import assert from "node:assert/strict";
import { apicIdOf, cpuPlaces, formatTopology, topologyBits } from "./topology.ts";

Deno.test("APIC IDs pack socket, core and thread fields", () => {
  const cpu = { cores: 3, threads: 3 };
  assert.deepEqual(topologyBits(cpu), { threadBits: 2, coreBits: 2 });
  assert.deepEqual(topologyBits({ cores: 1, threads: 1 }), { threadBits: 0, coreBits: 0 });
  assert.deepEqual(topologyBits({ cores: 4, threads: 2 }), { threadBits: 1, coreBits: 2 });
  assert.equal(apicIdOf(0, cpu), 0);
  assert.equal(apicIdOf(2, cpu), 2);
  assert.equal(apicIdOf(3, cpu), 0b0100); // core 1, thread 0
  assert.equal(apicIdOf(9, cpu), 0b1_00_00); // socket 1
  assert.equal(apicIdOf(179, cpu), (19 << 4) | (2 << 2) | 2);
  assert.equal(apicIdOf(5, { cores: 1, threads: 1 }), 5);
});

Deno.test("cpuPlaces lists present CPUs first, then the not-present ones", () => {
  const places = cpuPlaces({ sockets: 2, cores: 1, threads: 1, cpus: 2, maxcpus: 4 });
  assert.deepEqual(places.map((p) => [p.apicId, p.socket, p.present]), [
    [0, 0, true],
    [1, 1, true],
    [2, 2, false],
    [3, 3, false],
  ]);
  const smt = cpuPlaces({ sockets: 2, cores: 2, threads: 2, cpus: 8, maxcpus: 8 });
  assert.deepEqual(smt.map((p) => p.apicId), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(smt[5], { index: 5, thread: 1, core: 0, socket: 1, apicId: 5, present: true });
});

Deno.test("formatTopology names every CPU and its APIC ID", () => {
  const text = formatTopology({ sockets: 1, cores: 3, threads: 1, cpus: 3, maxcpus: 3 });
  assert.equal(
    text,
    [
      "topology: 1 sockets x 3 cores x 1 threads = 3 vCPUs",
      "apic id fields: thread 0 bits, core 2 bits, package from bit 2",
      "  cpu 0: socket 0 core 0 thread 0 apic id 0",
      "  cpu 1: socket 0 core 1 thread 0 apic id 1",
      "  cpu 2: socket 0 core 2 thread 0 apic id 2",
    ].join("\n"),
  );
});

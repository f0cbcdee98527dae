// Integration tests: the probe guest reports the machine it was handed; the
// report must match the configuration (CPUs and APIC IDs, memory map,
// multiboot command line and modules).
import assert from "node:assert/strict";
import {
  apicIdOf,
  computeLayout,
  configFromObject,
  KvmUnavailableError,
  runVm,
  Vm,
} from "../mod.ts";
import { probeImage } from "../lib/boot/_probe_image.ts";
import { DEMO, dhyve, probeReport, Scratch } from "./helpers.ts";
import { libc } from "../cpu/libc.ts";

// dhyve opens libc once per thread and keeps it for the life of the process;
// open it here, before the resource sanitizer starts counting in a test.
libc();

const E820_NAMES: Record<number, string> = {
  1: "ram",
  2: "reserved",
  3: "acpi",
  4: "nvs",
  5: "unusable",
};

/** Boots the probe with `toml` (a [boot] table is added) and returns the run and its report. */
async function probe(toml: string, timeoutMs?: number) {
  const s = await Scratch.create();
  try {
    const path = await s.write("vm.toml", `${toml}\n[boot]\nkind = "probe"\n`);
    const r = await dhyve(["up", path], { timeoutMs });
    return { ...r, report: probeReport(r.stdout) };
  } finally {
    await s.close();
  }
}

function cpuLines(report: Map<string, string>): string[] {
  return [...report.entries()].filter(([k]) => /^cpu\[\d+\]$/.test(k)).map(([k, v]) =>
    `${k}: ${v}`
  );
}

function expectCpus(report: Map<string, string>, ids: number[]): void {
  const lines = cpuLines(report);
  assert.deepEqual(
    lines,
    ids.map((id, i) => `cpu[${i}]: apic=${id} x2apic=${id}${i === 0 ? " bsp" : ""}`),
  );
  assert.match(report.get("cpu.count") ?? "", new RegExp(`^${ids.length} `));
}

Deno.test("the demo config boots, reports both vCPUs and powers off within 10 s", async () => {
  const r = await dhyve(["up", DEMO]);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
  const report = probeReport(r.stdout);
  assert.equal(report.get("probe"), "poweroff");
  assert.equal(report.get("cpu.hypervisor")?.startsWith("dhyve dhyve"), true);
  expectCpus(report, [0, 1]);
});

Deno.test("sockets = 2, cores = 2: four vCPUs, APIC IDs 0-3", async () => {
  const r = await probe("[cpu]\nsockets = 2\ncores = 2");
  assert.equal(r.code, 1, r.stderr);
  expectCpus(r.report, [0, 1, 2, 3]);
  assert.equal(
    r.report.get("cpu.topology"),
    "smt_shift=0 core_shift=1 threads_per_core=1 logical_per_package=2",
  );
});

Deno.test("three cores per socket leave a gap in the APIC IDs", async () => {
  const cpu = { sockets: 2, cores: 3, threads: 1 };
  const r = await probe("[cpu]\nsockets = 2\ncores = 3");
  assert.equal(r.code, 1, r.stderr);
  const ids = Array.from({ length: 6 }, (_, i) => apicIdOf(i, cpu));
  assert.deepEqual(ids, [0, 1, 2, 4, 5, 6]);
  expectCpus(r.report, ids);
});

Deno.test("the memory map the probe is handed is the layout's e820 map, for 64 GiB on a small host too", async () => {
  for (const size of ["256M", "64G"]) {
    const r = await probe(`[memory]\nsize = "${size}"`);
    assert.equal(r.code, 1, r.stderr);
    const layout = computeLayout(size === "64G" ? 64 * 2 ** 30 : 256 * 2 ** 20);
    const expected = layout.e820.map((e, i) => {
      const hex = (n: number) => "0x" + n.toString(16).padStart(16, "0");
      return `mem[${i}]: ${hex(e.addr)}-${hex(e.addr + e.size - 1)} ${E820_NAMES[e.type]}`;
    });
    const got = r.stdout.split("\n").filter((l) => l.startsWith("mem["));
    assert.deepEqual(got, expected);
  }
});

Deno.test("a multiboot kernel gets its command line and modules", async () => {
  const s = await Scratch.create();
  try {
    const kernel = await s.write("probe.elf", probeImage());
    const a = new TextEncoder().encode("first module\n");
    const b = new Uint8Array(5000).map((_, i) => (i * 7) & 0xff);
    await s.write("a.txt", a);
    await s.write("b.bin", b);
    const toml = await s.write(
      "vm.toml",
      `[boot]
kind = "multiboot"
kernel = "${kernel}"
cmdline = "console=ttyS0 hello=world"
modules = [{ path = "a.txt", cmdline = "alpha" }, { path = "b.bin", cmdline = "beta x=1" }]
`,
    );
    const r = await dhyve(["up", toml]);
    assert.equal(r.code, 1, r.stderr);
    const report = probeReport(r.stdout);
    assert.equal(report.get("boot.loader"), "dhyve");
    assert.equal(report.get("boot.cmdline"), '"console=ttyS0 hello=world"');
    const m0 = report.get("boot.module[0]") ?? "";
    const m1 = report.get("boot.module[1]") ?? "";
    assert.match(
      m0,
      new RegExp(
        `size=${a.length} crc32=0x${crc32(a).toString(16).padStart(8, "0")} cmdline="alpha"`,
      ),
    );
    assert.match(
      m1,
      new RegExp(
        `size=${b.length} crc32=0x${crc32(b).toString(16).padStart(8, "0")} cmdline="beta x=1"`,
      ),
    );
    // Modules are page-aligned and do not overlap.
    const start = (m: string) => parseInt(/start=0x([0-9a-f]+)/.exec(m)![1], 16);
    assert.equal(start(m0) % 4096, 0);
    assert.equal(start(m1) % 4096, 0);
    assert.ok(start(m1) >= start(m0) + a.length);
  } finally {
    await s.close();
  }
});

Deno.test("the library builds, runs and reports a VM (mod.ts)", async () => {
  const config = configFromObject({
    cpu: { cpus: 2 },
    boot: { kind: "probe" },
    console: { com1: "none" },
  });
  const vm = await Vm.create(config);
  await vm.start();
  const exit = await vm.wait();
  assert.equal(exit.kind, "poweroff");
  assert.equal(exit.status, 1);
  const stats = vm.stats();
  assert.deepEqual(stats.map((s) => s.apicId), [0, 1]);
  assert.ok(stats[0].exits.io > 0);
  assert.ok(stats.every((s) => s.state === "finished"));
  // runVm is the one-call form.
  assert.equal((await runVm(config)).status, 1);
});

Deno.test("a missing KVM device gives a one-line error that says how to fix it", async () => {
  const config = configFromObject({ boot: { kind: "probe" }, console: { com1: "none" } });
  await assert.rejects(
    () => Vm.create(config, { kvmPath: "/nonexistent/kvm" }),
    (e: Error) => {
      assert.ok(e instanceof KvmUnavailableError);
      assert.match(
        e.message,
        /^\/nonexistent\/kvm does not exist: load KVM \(modprobe kvm_intel or kvm_amd\)/,
      );
      assert.ok(!e.message.includes("\n"));
      return true;
    },
  );
});

Deno.test("a malformed VM definition exits with 2 and names file:line:col and the key", async () => {
  const s = await Scratch.create();
  try {
    const path = await s.write("bad.toml", `[memory]\nsize = "12X"\n[boot]\nkind = "probe"\n`);
    const r = await dhyve(["up", path]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`${path}:2:8: memory.size: `));
    assert.equal(r.stdout, "");
  } finally {
    await s.close();
  }
});

/** CRC-32/IEEE, as the probe computes it. */
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** The probe's check lines: name -> "ok" | "FAIL ..." | "skip ...". */
function checks(stdout: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const x = /^check\.([a-z0-9.]+): (.*)$/.exec(line);
    if (x) m.set(x[1], x[2]);
  }
  return m;
}

const ALL_CHECKS = [
  "acpi.checksums",
  "acpi.location",
  "madt.cpus",
  "madt.topology",
  "madt.ioapic",
  "mptable",
  "pci.enum",
  "pci.ecam",
  "hpet.irq",
  "msi",
  "intx",
  "intx.pic",
  "rtc",
];

/** The probe's cpu.topology line for one-thread, one-core packages. */
const FLAT_TOPOLOGY = "smt_shift=0 core_shift=0 threads_per_core=1 logical_per_package=1";

for (
  const [name, cpu, enabled, disabled, apicIds, topology] of [
    ["1 vCPU", "cpus = 1", 1, 0, [0], FLAT_TOPOLOGY],
    [
      "2 sockets x 2 cores x 2 threads",
      "sockets = 2\ncores = 2\nthreads = 2",
      8,
      0,
      [0, 1, 2, 3, 4, 5, 6, 7],
      "smt_shift=1 core_shift=2 threads_per_core=2 logical_per_package=4",
    ],
    ["cpus = 2 with maxcpus = 4", "cpus = 2\nmaxcpus = 4", 2, 2, [0, 1], FLAT_TOPOLOGY],
  ] as const
) {
  Deno.test(`the probe checks the whole machine from the inside, every check ok: ${name}`, async () => {
    const r = await probe(
      `[cpu]\n${cpu}\n[[pci]]\nslot = 3\ntype = "testdev"\n[[pci]]\nslot = 5\nfunction = 0\ntype = "testdev"`,
    );
    assert.equal(r.code, 1, r.stderr);
    // The vCPUs that run, their APIC IDs and the CPUID topology they see.
    expectCpus(r.report, [...apicIds]);
    assert.equal(r.report.get("cpu.topology"), topology);
    const c = checks(r.stdout);
    assert.deepEqual([...c.keys()], ALL_CHECKS);
    for (const [k, v] of c) assert.equal(v, "ok", `check.${k}: ${v}\n${r.stdout}`);
    assert.equal(r.report.get("madt.cpus"), `enabled=${enabled} disabled=${disabled}`);
    assert.match(
      r.report.get("cpu.count") ?? "",
      new RegExp(`^${enabled} expected=${enabled} source=madt`),
    );
    assert.match(r.stdout, /^probe: checks=13 ok=13 failed=0 skipped=0$/m);
    assert.equal(r.report.get("probe"), "poweroff");
    // The PCI functions: host bridge, the test devices, the LPC bridge.
    const pci = r.stdout.split("\n").filter((l) => l.startsWith("pci 00:"));
    assert.deepEqual(pci.map((l) => l.slice(0, 22)), [
      "pci 00:00.0: 8086:1237",
      "pci 00:03.0: 6468:0001",
      "pci 00:05.0: 6468:0001",
      "pci 00:1f.0: 8086:7000",
    ]);
  });
}

Deno.test("x2APIC IDs above 254: 85 sockets x 3 cores (IDs up to 338), every vCPU starts, every check ok", async () => {
  // Cores take 2 bits of the APIC ID, so socket s holds IDs 4s..4s+2; from
  // socket 64 on they exceed 254 and need x2APIC. The MADT lists them as
  // x2APIC entries; the MP table (8-bit IDs) only the first 64 sockets.
  // 255 Workers take about 15 s and 3 GB here: allow a slow machine 2 minutes.
  const r = await probe(
    `[memory]\nsize = "1G"\n[cpu]\nsockets = 85\ncores = 3\nx2apic = true`,
    120_000,
  );
  assert.equal(r.code, 1, r.stderr);
  const ids = Array.from({ length: 85 * 3 }, (_, i) => Math.floor(i / 3) * 4 + (i % 3));
  assert.deepEqual(
    cpuLines(r.report),
    ids.map((id, i) => `cpu[${i}]: apic=${id & 0xff} x2apic=${id}${i === 0 ? " bsp" : ""}`),
  );
  assert.equal(r.report.get("madt.cpus"), "enabled=255 disabled=0");
  const c = checks(r.stdout);
  for (const k of ALL_CHECKS.filter((k) => !["msi", "intx", "intx.pic"].includes(k))) {
    assert.equal(c.get(k), "ok", `check.${k}: ${c.get(k)}`);
  }
});

Deno.test("without ACPI the probe finds the MP table; without either it still boots", async () => {
  const mp = await probe(`[cpu]\ncpus = 2\n[firmware]\nacpi = false`);
  assert.equal(mp.code, 1, mp.stderr);
  assert.match(mp.report.get("cpu.count") ?? "", /^2 expected=2 source=mptable/);
  assert.equal(checks(mp.stdout).get("mptable"), "ok");
  const none = await probe(`[cpu]\ncpus = 2\n[firmware]\nacpi = false\nmptable = false`);
  assert.equal(none.code, 1, none.stderr);
  assert.match(none.report.get("cpu.count") ?? "", /^2 expected=- source=none/);
  assert.equal(none.report.get("probe"), "poweroff");
});

// Integration tests: `dhyve tables` writes the firmware tables of a VM
// definition, and iasl (acpica-tools) disassembles every one of them with no
// errors and no warnings.
import assert from "node:assert/strict";
import { iasl, iaslAvailable, problemLines } from "../lib/acpi/_iasl.ts";
import { DEMO, dhyve, Scratch } from "./helpers.ts";

const HAVE_IASL = iaslAvailable();

const CONFIGS: Record<string, string | undefined> = {
  "configs/demo.toml": undefined,
  "2 sockets x 2 cores x 2 threads, two PCI test devices":
    `[cpu]\nsockets = 2\ncores = 2\nthreads = 2\n[boot]\nkind = "probe"\n` +
    `[[pci]]\nslot = 3\ntype = "testdev"\n[[pci]]\nslot = 4\ntype = "testdev"\n`,
  "cpus = 2, maxcpus = 4": `[cpu]\ncpus = 2\nmaxcpus = 4\n[boot]\nkind = "probe"\n`,
};

for (const [name, toml] of Object.entries(CONFIGS)) {
  Deno.test(`dhyve tables + iasl -d: no errors, no warnings (${name})`, async () => {
    const s = await Scratch.create();
    try {
      const path = toml === undefined ? DEMO : await s.write("vm.toml", toml);
      const out = `${s.dir}/tables`;
      const r = await dhyve(["tables", path, "--out", out]);
      assert.equal(r.code, 0, r.stderr);
      const files = [...Deno.readDirSync(out)].map((e) => e.name).sort();
      assert.deepEqual(files, [
        "APIC.dat",
        "DSDT.dat",
        "FACP.dat",
        "FACS.dat",
        "HPET.dat",
        "MCFG.dat",
        "RSDT.dat",
        "SPCR.dat",
        "XSDT.dat",
        "mp-config.bin",
        "mp-floating.bin",
        "rsdp.bin",
      ]);
      const dat = files.filter((f) => f.endsWith(".dat"));
      assert.ok(HAVE_IASL, "iasl is missing: apt-get install acpica-tools");
      const d = await iasl(["-d", ...dat], out);
      assert.equal(d.code, 0, d.output);
      // Every line that mentions an error or a warning (and more: see problemLines).
      assert.deepEqual(problemLines(d.output), [], d.output);
      for (const f of dat) {
        assert.ok(Deno.statSync(`${out}/${f.replace(".dat", ".dsl")}`).size > 0, f);
      }
    } finally {
      await s.close();
    }
  });
}

Deno.test("dhyve tables needs --out and refuses a bad config with status 2", async () => {
  const a = await dhyve(["tables", DEMO]);
  assert.equal(a.code, 2);
  assert.match(a.stderr, /--out/);
  const s = await Scratch.create();
  try {
    const bad = await s.write("bad.toml", `[cpu]\ncpus = 3\nsockets = 2\n[boot]\nkind = "probe"\n`);
    const b = await dhyve(["tables", bad, "--out", `${s.dir}/t`]);
    assert.equal(b.code, 2);
    assert.match(
      b.stderr,
      /cpu\.cpus: topology 2 sockets x 1 cores x 1 threads = 2 vCPUs does not match cpus = 3/,
    );
  } finally {
    await s.close();
  }
});

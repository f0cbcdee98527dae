// Integration tests of the CLI's inspection commands, and of the output paths
// (`tables --out`, `up --report`) it refuses with status 2.
import assert from "node:assert/strict";
import { DEMO, dhyve, Scratch } from "./helpers.ts";

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

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

Deno.test("an empty --out or --report is a usage error, and tables writes nothing into /", async () => {
  // An empty --out used to write the tables to /<file>; /DSDT.dat is the
  // witness (left alone if something else put it there).
  const witness = "/DSDT.dat";
  const before = exists(witness);
  const a = await dhyve(["tables", DEMO, "--out", ""]);
  assert.equal(a.code, 2, a.stderr);
  assert.match(a.stderr, /option '--out <dir>' argument '' is invalid\. The path is empty\./);
  assert.equal(a.stdout, "");
  if (!before) assert.equal(exists(witness), false, `${witness} was written`);
  // An empty --report used to mean no report, silently; the VM is not created.
  const b = await dhyve(["up", "--report", "", DEMO]);
  assert.equal(b.code, 2, b.stderr);
  assert.match(b.stderr, /option '--report <file>' argument '' is invalid\. The path is empty\./);
  assert.equal(b.stdout, "");
});

Deno.test("dhyve tables: an output file or directory it cannot write is a usage error with status 2", async () => {
  const s = await Scratch.create();
  try {
    // The directory exists, a file in it cannot be written (it is a directory).
    const out = `${s.dir}/t`;
    await Deno.mkdir(`${out}/rsdp.bin`, { recursive: true });
    const a = await dhyve(["tables", DEMO, "--out", out]);
    assert.equal(a.code, 2, a.stderr);
    assert.equal(
      a.stderr,
      `dhyve: cannot write ${out}/rsdp.bin: it is a directory\n`,
    );
    // A trailing slash does not double the separator.
    const b = await dhyve(["tables", DEMO, "--out", `${out}/`]);
    assert.equal(b.code, 2, b.stderr);
    assert.equal(
      b.stderr,
      `dhyve: cannot write ${out}/rsdp.bin: it is a directory\n`,
    );
    // The directory cannot be created (a file is in the way).
    const file = await s.write("file", "");
    const c = await dhyve(["tables", DEMO, "--out", file]);
    assert.equal(c.code, 2, c.stderr);
    assert.equal(c.stderr, `dhyve: cannot create ${file}: it already exists\n`);
  } finally {
    await s.close();
  }
});

Deno.test("dhyve tables with ACPI and the MP table off says there is nothing to write, status 0", async () => {
  const s = await Scratch.create();
  try {
    const toml = await s.write(
      "vm.toml",
      `[boot]\nkind = "probe"\n[firmware]\nacpi = false\nmptable = false\n`,
    );
    const out = `${s.dir}/t`;
    const r = await dhyve(["tables", toml, "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "");
    assert.equal(
      r.stderr,
      "dhyve: no firmware tables to write: [firmware] acpi and mptable are both off\n",
    );
    assert.deepEqual([...Deno.readDirSync(out)], []);
  } finally {
    await s.close();
  }
});

Deno.test("up --report to a path it cannot write is a usage error with status 2, before the VM runs", async () => {
  const s = await Scratch.create();
  try {
    const missing = `${s.dir}/no/such/dir/r.json`;
    const a = await dhyve(["up", "--report", missing, DEMO]);
    assert.equal(a.code, 2, a.stderr);
    assert.equal(a.stdout, "", "the guest ran");
    assert.equal(
      a.stderr,
      `dhyve: cannot write ${missing}: it does not exist\n`,
    );
    const b = await dhyve(["up", "--report", s.dir, DEMO]);
    assert.equal(b.code, 2, b.stderr);
    assert.equal(b.stdout, "", "the guest ran");
    assert.equal(b.stderr, `dhyve: cannot write ${s.dir}: it is a directory\n`);
  } finally {
    await s.close();
  }
});

Deno.test("up --report naming the config file or the boot image is refused, and both stay whole", async () => {
  const s = await Scratch.create();
  try {
    const toml = await s.flatVm("rm/hello");
    const image = `${s.dir}/guest.bin`;
    const before = [await Deno.readFile(toml), await Deno.readFile(image)];
    const a = await dhyve(["up", "--report", toml, toml]);
    assert.equal(a.code, 2, a.stderr);
    assert.equal(
      a.stderr,
      `dhyve: --report ${toml} is the config file; the report would overwrite it\n`,
    );
    const b = await dhyve(["up", "--report", image, toml]);
    assert.equal(b.code, 2, b.stderr);
    assert.equal(
      b.stderr,
      `dhyve: --report ${image} is the boot image (boot.image); the report would overwrite it\n`,
    );
    assert.deepEqual([await Deno.readFile(toml), await Deno.readFile(image)], before);
    // Nor may it be a console file: both would write over each other.
    const withLog = await s.flatVm("rm/hello", `[console]\ncom1 = { file = "serial.log" }\n`);
    const log = `${s.dir}/serial.log`;
    const c = await dhyve(["up", "--report", log, withLog]);
    assert.equal(c.code, 2, c.stderr);
    assert.equal(
      c.stderr,
      `dhyve: --report ${log} is the console file of com1; the report would overwrite it\n`,
    );
  } finally {
    await s.close();
  }
});

Deno.test("up --report replaces what the file held with the whole report", async () => {
  const s = await Scratch.create();
  try {
    const report = await s.write("r.json", "stale ".repeat(100_000));
    const r = await dhyve(["up", "-q", "--report", report, DEMO]);
    assert.equal(r.code, 1, r.stderr);
    const j = JSON.parse(await Deno.readTextFile(report));
    assert.equal(j.vm, "demo");
    assert.equal(j.exit.kind, "poweroff");
    assert.equal(j.vcpus.length, 2);
  } finally {
    await s.close();
  }
});

Deno.test("paths in the CLI's own messages reach the terminal escaped, and OS errors in words", async () => {
  const s = await Scratch.create();
  try {
    // A directory that cannot be created: the path holds ESC [2J and U+202E.
    const file = await s.write("file", "");
    const out = `${file}/\u001b[2J\u202e`;
    const a = await dhyve(["tables", DEMO, "--out", out]);
    assert.equal(a.code, 2, a.stderr);
    assert.equal(
      a.stderr,
      `dhyve: cannot create "${file}/\\u001b[2J\\u202e": a part of the path is not a directory\n`,
    );
    const report = `${s.dir}/no/\u001b]0;x\u0007.json`;
    const b = await dhyve(["up", "--report", report, DEMO]);
    assert.equal(b.code, 2, b.stderr);
    assert.equal(
      b.stderr,
      `dhyve: cannot write "${s.dir}/no/\\u001b]0;x\\u0007.json": it does not exist\n`,
    );
  } finally {
    await s.close();
  }
});

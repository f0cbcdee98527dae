import assert from "node:assert/strict";
import {
  ConfigError,
  configFromObject,
  formatConfig,
  formatIssue,
  loadConfig,
  parseConfig,
  type VmConfig,
} from "./config.ts";

/** Runs `fn` with a temp dir holding guest.bin (512 bytes), kernel.elf and initrd.img. */
async function withFiles(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dhyve_config_test_" });
  try {
    await Deno.writeFile(`${dir}/guest.bin`, new Uint8Array(512));
    await Deno.writeFile(`${dir}/kernel.elf`, new Uint8Array(64));
    await Deno.writeFile(`${dir}/initrd.img`, new Uint8Array(16));
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Asserts that parsing `toml` fails with exactly these formatted issues. */
async function assertIssues(toml: string, expected: string[], file = "vm.toml"): Promise<void> {
  const error = await parseConfig(toml, file).then(
    () => assert.fail("expected a ConfigError"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ConfigError, `not a ConfigError: ${error}`);
  assert.deepEqual(error.issues.map(formatIssue), expected);
  assert.equal(error.message, expected.join("\n"));
}

const FULL = `
[vm]
name = "demo-1"
strict_io = true

[memory]
size = "1.5G"
lowmem_limit = "2GiB"

[cpu]
sockets = 2
cores = 2
threads = 2
maxcpus = 16
x2apic = true

[boot]          # kind inferred from kernel
kernel = "kernel.elf"
cmdline = "console=ttyS0 quiet"

[[boot.modules]]
path = "initrd.img"
cmdline = "initrd"

[[boot.modules]]
path = "sub/../guest.bin"

[console]
com1 = { file = "serial.log" }
com2 = "stdio"

[firmware]
acpi = false
mptable = true

[rtc]
use_localtime = true

[[device]]
type = "debug-exit"
port = 0xf4
size = 2

[[device]]
type = "debug-exit"
port = 0x500

[[pci]]
slot = 3
type = "testdev"

[[pci]]
slot = 3
function = 1
type = "testdev"
`;

function fullExpected(dir: string): VmConfig {
  return {
    file: `${dir}/full.toml`,
    baseDir: dir,
    vm: { name: "demo-1", strictIo: true, onReset: "exit" },
    memory: { size: 1536 * 2 ** 20, lowmemLimit: 2 * 2 ** 30 },
    cpu: { cpus: 8, sockets: 2, cores: 2, threads: 2, maxcpus: 16, x2apic: true },
    boot: {
      kind: "multiboot",
      kernel: `${dir}/kernel.elf`,
      cmdline: "console=ttyS0 quiet",
      modules: [
        { path: `${dir}/initrd.img`, cmdline: "initrd" },
        { path: `${dir}/guest.bin`, cmdline: "" },
      ],
    },
    console: { com1: { kind: "file", path: `${dir}/serial.log` }, com2: { kind: "stdio" } },
    firmware: { acpi: false, mptable: true },
    rtc: { useLocaltime: true },
    devices: [
      { type: "debug-exit", port: 0xf4, size: 2 },
      { type: "debug-exit", port: 0x500, size: 4 },
    ],
    pci: [
      { slot: 3, function: 0, type: "testdev" },
      { slot: 3, function: 1, type: "testdev" },
    ],
  };
}

Deno.test("a full config parses to the expected VmConfig", async () => {
  await withFiles(async (dir) => {
    const config = await parseConfig(FULL, `${dir}/full.toml`);
    assert.deepEqual(structuredClone(config), fullExpected(dir));
  });
});

Deno.test("loadConfig reads the file and resolves paths against its directory", async () => {
  await withFiles(async (dir) => {
    await Deno.writeTextFile(`${dir}/full.toml`, FULL);
    const config = await loadConfig(`${dir}/full.toml`);
    assert.deepEqual(structuredClone(config), fullExpected(dir));
  });
});

Deno.test("loadConfig names a missing file", async () => {
  await assert.rejects(() => loadConfig("/nonexistent/dhyve/vm.toml"), {
    name: "ConfigError",
    message: "/nonexistent/dhyve/vm.toml: cannot read config file: not found",
  });
});

Deno.test("a raw boot config parses, entry_point defaulting to address", async () => {
  await withFiles(async (dir) => {
    const toml =
      `[boot]\nkind = "raw"\nimage = "guest.bin"\naddress = 0x100000\nentry = "long64"\n`;
    const config = await parseConfig(toml, `${dir}/raw.toml`);
    assert.deepEqual(config.boot, {
      kind: "raw",
      image: `${dir}/guest.bin`,
      address: 0x100000,
      entry: "long64",
      entryPoint: 0x100000,
    });
    const inferred = await parseConfig(
      `[boot]\nimage = "guest.bin"\naddress = 0x7c00\nentry = "real16"\nentry_point = 0x7dff\n`,
      `${dir}/raw.toml`,
    );
    assert.deepEqual(inferred.boot, {
      kind: "raw",
      image: `${dir}/guest.bin`,
      address: 0x7c00,
      entry: "real16",
      entryPoint: 0x7dff,
    });
  });
});

Deno.test("configFromObject validates a plain object the same way", async () => {
  await withFiles(async (dir) => {
    const fromToml = await parseConfig(FULL, `${dir}/full.toml`);
    const obj = {
      vm: { name: "demo-1", strict_io: true },
      memory: { size: "1.5G", lowmem_limit: 2 * 2 ** 30 },
      cpu: { sockets: 2, cores: 2, threads: 2, maxcpus: 16, x2apic: true },
      boot: {
        kernel: `${dir}/kernel.elf`,
        cmdline: "console=ttyS0 quiet",
        modules: [{ path: `${dir}/initrd.img`, cmdline: "initrd" }, { path: `${dir}/guest.bin` }],
      },
      console: { com1: { file: `${dir}/serial.log` }, com2: "stdio" },
      firmware: { acpi: false, mptable: true },
      rtc: { use_localtime: true },
      device: [{ type: "debug-exit", port: 0xf4, size: 2 }, { type: "debug-exit", port: 0x500 }],
      pci: [{ slot: 3, type: "testdev" }, { slot: 3, function: 1, type: "testdev" }],
    };
    const config = configFromObject(obj);
    assert.deepEqual(config, { ...fromToml, file: "<object>", baseDir: Deno.cwd() });
  });
});

Deno.test("configFromObject reports issues without positions", () => {
  assert.throws(
    () =>
      configFromObject({
        memory: { size: 1.5 },
        cpu: { cpus: 2.5, toString: 1 },
        boot: { kind: "probe" },
      }),
    {
      message: [
        '<object>: memory.size: expected a size (a string like "256M" or an integer byte count), got a float',
        "<object>: cpu.toString: unknown key `toString` in [cpu]",
        "<object>: cpu.cpus: expected an integer, got a float",
      ].join("\n"),
    },
  );
  assert.throws(() => configFromObject("nope"), {
    message: "<object>: expected a table, got a string",
  });
});

Deno.test("defaults: only [boot] kind = probe", async () => {
  const config = await parseConfig(`[boot]\nkind = "probe"\n`, "/srv/vms/demo.toml");
  assert.deepEqual(structuredClone(config), {
    file: "/srv/vms/demo.toml",
    baseDir: "/srv/vms",
    vm: { name: "demo", strictIo: false, onReset: "exit" },
    memory: { size: 256 * 2 ** 20, lowmemLimit: 3 * 2 ** 30 },
    cpu: { cpus: 1, sockets: 1, cores: 1, threads: 1, maxcpus: 1, x2apic: false },
    boot: { kind: "probe" },
    console: { com1: { kind: "stdio" }, com2: { kind: "none" } },
    firmware: { acpi: true, mptable: true },
    rtc: { useLocaltime: false },
    devices: [],
    pci: [],
  });
  assert.equal(configFromObject({ boot: { kind: "probe" } }).vm.name, "vm");
  assert.equal((await parseConfig(`[boot]\nkind = "probe"\n`, "my vm!.toml")).vm.name, "my-vm");
});

Deno.test("bhyve topology rules", async () => {
  const cpu = async (body: string) =>
    (await parseConfig(`[boot]\nkind = "probe"\n[cpu]\n${body}`, "t.toml")).cpu;
  assert.deepEqual(await cpu("cpus = 4\n"), {
    cpus: 4,
    sockets: 4,
    cores: 1,
    threads: 1,
    maxcpus: 4,
    x2apic: false,
  });
  assert.deepEqual(await cpu("sockets = 2\ncores = 2\n"), {
    cpus: 4,
    sockets: 2,
    cores: 2,
    threads: 1,
    maxcpus: 4,
    x2apic: false,
  });
  assert.deepEqual(await cpu("cpus = 4\nsockets = 2\ncores = 2\n"), {
    cpus: 4,
    sockets: 2,
    cores: 2,
    threads: 1,
    maxcpus: 4,
    x2apic: false,
  });
  assert.deepEqual(await cpu("cpus = 2\nmaxcpus = 4\n"), {
    cpus: 2,
    sockets: 2,
    cores: 1,
    threads: 1,
    maxcpus: 4,
    x2apic: false,
  });
  // 3 threads x 3 cores x 20 sockets needs x2APIC; with it, the config is fine.
  const big = await cpu("threads = 3\ncores = 3\nsockets = 20\nx2apic = true\n");
  assert.equal(big.cpus, 180);
});

Deno.test("malformed configs: each issue names file:line:col, key path and problem", async () => {
  await withFiles(async (dir) => {
    const cases: [string, string, string[]][] = [
      [
        "TOML syntax error",
        `[boot]\nkind = "probe"\n[memory]\nsize = 256M\n`,
        ["vm.toml:4:11: invalid TOML: illegal character in numeric literal"],
      ],
      [
        "TOML duplicate key",
        `[boot]\nkind = "probe"\n[cpu]\ncpus = 1\ncpus = 2\n`,
        ["vm.toml:5:1: invalid TOML: trying to redefine an already defined table or value"],
      ],
      [
        "unknown top-level table",
        `[boot]\nkind = "probe"\n\n[network]\nmode = "nat"\n`,
        ["vm.toml:4:1: network: unknown table [network]"],
      ],
      [
        "unknown top-level table with a suggestion",
        `[boot]\nkind = "probe"\n[[devices]]\ntype = "debug-exit"\n`,
        ['vm.toml:3:1: devices: unknown table [[devices]]; did you mean "device"?'],
      ],
      [
        "unknown key with a suggestion",
        `[boot]\nkind = "probe"\n[memory]\nsise = "1G"\n`,
        ['vm.toml:4:1: memory.sise: unknown key `sise` in [memory]; did you mean "size"?'],
      ],
      [
        "wrong type",
        `[vm]\nname = 42\n[boot]\nkind = "probe"\n`,
        ["vm.toml:2:8: vm.name: expected a string, got an integer"],
      ],
      [
        "float for an integer key",
        `[boot]\nkind = "probe"\n[cpu]\ncpus = 2.0\n`,
        ["vm.toml:4:8: cpu.cpus: expected an integer, got a float"],
      ],
      [
        "zero memory",
        `[boot]\nkind = "probe"\n[memory]\nsize = 0\n`,
        ["vm.toml:4:8: memory.size: memory size must be at least 2 MiB"],
      ],
      [
        "misaligned memory size",
        `[boot]\nkind = "probe"\n[memory]\nsize = "2049K"\n`,
        ["vm.toml:4:8: memory.size: memory size 2049 KiB is not a multiple of 4 KiB"],
      ],
      [
        "bad size string",
        `[boot]\nkind = "probe"\n[memory]\nsize = "12X"\n`,
        [
          'vm.toml:4:8: memory.size: invalid size "12X": expected a number with an optional unit K, M, G or T (e.g. "512M", "1.5G")',
        ],
      ],
      [
        "misaligned lowmem limit",
        `[boot]\nkind = "probe"\n[memory]\nlowmem_limit = "3073M"\n`,
        ["vm.toml:4:16: memory.lowmem_limit: lowmem_limit 0xc0100000 is not a multiple of 2 MiB"],
      ],
      [
        "lowmem limit too high",
        `[boot]\nkind = "probe"\n[memory]\nlowmem_limit = "3584M"\n`,
        ["vm.toml:4:16: memory.lowmem_limit: lowmem_limit must be at most 3328 MiB (0xd0000000)"],
      ],
      [
        "topology that does not multiply out",
        `[boot]\nkind = "probe"\n[cpu]\ncpus = 3\nsockets = 2\ncores = 2\n`,
        ["vm.toml:4:8: cpu.cpus: topology 2 sockets x 2 cores x 1 threads = 4 vCPUs does not match cpus = 3"],
      ],
      [
        "cores with a lone cpus: sockets defaults to cpus",
        `[boot]\nkind = "probe"\n[cpu]\ncpus = 4\ncores = 2\n`,
        [
          "vm.toml:4:8: cpu.cpus: topology 4 sockets x 2 cores x 1 threads = 8 vCPUs does not match cpus = 4 (sockets defaults to cpus)",
        ],
      ],
      [
        "maxcpus below cpus",
        `[boot]\nkind = "probe"\n[cpu]\ncpus = 4\nmaxcpus = 2\n`,
        ["vm.toml:5:11: cpu.maxcpus: maxcpus = 2 is less than cpus = 4"],
      ],
      [
        "maxcpus above 255",
        `[boot]\nkind = "probe"\n[cpu]\nmaxcpus = 256\n`,
        ["vm.toml:4:11: cpu.maxcpus: maxcpus = 256 exceeds the limit of 255"],
      ],
      [
        "topology above 255 vCPUs",
        `[boot]\nkind = "probe"\n[cpu]\nsockets = 16\ncores = 16\nx2apic = true\n`,
        ["vm.toml:3:1: cpu: topology 16 sockets x 16 cores x 1 threads = 256 vCPUs exceeds the limit of 255"],
      ],
      [
        "APIC IDs needing x2apic",
        `[boot]\nkind = "probe"\n[cpu]\nthreads = 3\ncores = 3\nsockets = 20\n`,
        [
          "vm.toml:3:1: cpu.maxcpus: vCPU 179 would have APIC ID 314, above the xAPIC limit of 254: this topology needs x2apic = true",
        ],
      ],
      [
        "unknown key in an array-of-tables entry",
        `[boot]\nkind = "probe"\n[[device]]\ntype = "debug-exit"\nprot = 0xf4\n`,
        ['vm.toml:5:1: device[0].prot: unknown key `prot` in device[0]; did you mean "port"?'],
      ],
      [
        "a table where an array of tables belongs, and a non-table entry",
        `device = { type = "debug-exit" }\npci = [3]\n[boot]\nkind = "probe"\n`,
        [
          "vm.toml:1:10: device: expected an array of tables, got a table",
          "vm.toml:2:8: pci[0]: expected a table, got an integer",
        ],
      ],
      [
        "empty file",
        "",
        ["vm.toml:1:1: boot: missing required table [boot]"],
      ],
      [
        "missing [boot]",
        `[vm]\nname = "x"\n`,
        ["vm.toml:1:1: boot: missing required table [boot]"],
      ],
      [
        "unknown boot kind",
        `[boot]\nkind = "uefi"\n`,
        ['vm.toml:2:8: boot.kind: unknown boot kind "uefi"; expected "probe", "raw" or "multiboot"'],
      ],
      [
        "boot kind not inferable",
        `\n[boot]\ncmdline = "x"\n`,
        ['vm.toml:2:1: boot.kind: missing required key `kind` ("probe", "raw" or "multiboot")'],
      ],
      [
        "raw without address",
        `[boot]\nkind = "raw"\nimage = "${dir}/guest.bin"\nentry = "prot32"\n`,
        ["vm.toml:1:1: boot.address: missing required key `address` (the guest-physical load address)"],
      ],
      [
        "entry_point outside the image",
        `[boot]\nimage = "${dir}/guest.bin"\naddress = 0x100000\nentry = "prot32"\nentry_point = 0x100200\n`,
        ["vm.toml:5:15: boot.entry_point: entry point 0x100200 is outside the image [0x100000, 0x100200)"],
      ],
      [
        "raw image in the firmware area (backed, but reserved in e820)",
        `[memory]\nsize = "2M"\n[boot]\nimage = "${dir}/guest.bin"\naddress = 0xd0000\nentry = "real16"\n`,
        [
          "vm.toml:5:11: boot.address: image [0xd0000, 0xd0200) does not fit in one guest RAM range (RAM: [0x0, 0xa0000), [0x100000, 0x200000))",
        ],
      ],
      [
        "raw image outside RAM",
        `[memory]\nsize = "2M"\n[boot]\nimage = "${dir}/guest.bin"\naddress = 0x1fff00\nentry = "prot32"\n`,
        [
          "vm.toml:5:11: boot.address: image [0x1fff00, 0x200100) does not fit in one guest RAM range (RAM: [0x0, 0xa0000), [0x100000, 0x200000))",
        ],
      ],
      [
        "missing kernel file",
        `[boot]\nkind = "multiboot"\nkernel = "${dir}/missing.elf"\n`,
        [`vm.toml:3:10: boot.kernel: cannot read ${dir}/missing.elf: not found`],
      ],
      [
        "kernel is a directory",
        `[boot]\nkernel = "${dir}"\n`,
        [`vm.toml:2:10: boot.kernel: ${dir} is not a regular file`],
      ],
      [
        "module without path, with a bad cmdline",
        `[boot]\nkernel = "${dir}/kernel.elf"\nmodules = [\n  { cmdline = 7, path = "${dir}/initrd.img" },\n  { cmdline = "x" },\n]\n`,
        [
          "vm.toml:4:15: boot.modules[0].cmdline: expected a string, got an integer",
          "vm.toml:5:3: boot.modules[1].path: missing required key `path`",
        ],
      ],
      [
        "debug-exit port colliding with COM1",
        `[boot]\nkind = "probe"\n[[device]]\ntype = "debug-exit"\nport = 0x3fc\n`,
        ["vm.toml:5:8: device[0].port: ports 0x3fc-0x3ff overlap the platform's com1 ports 0x3f8-0x3ff"],
      ],
      [
        "two debug-exit devices overlapping",
        `[boot]\nkind = "probe"\n[[device]]\ntype = "debug-exit"\n[[device]]\ntype = "debug-exit"\nport = 0xf6\nsize = 1\n`,
        ["vm.toml:7:8: device[1].port: ports 0xf6-0xf6 overlap device[0] (debug-exit at 0xf4-0xf7)"],
      ],
      [
        "duplicate pci slot",
        `[boot]\nkind = "probe"\n[[pci]]\nslot = 3\ntype = "testdev"\n[[pci]]\nslot = 3\ntype = "testdev"\n`,
        ["vm.toml:7:8: pci[1].slot: slot 3 function 0 is already used by pci[0]"],
      ],
      [
        "pci slot 31",
        `[boot]\nkind = "probe"\n[[pci]]\nslot = 31\ntype = "testdev"\n`,
        ["vm.toml:4:8: pci[0].slot: slot 31 is the LPC bridge; use a slot from 1 to 30"],
      ],
      [
        "pci function without function 0",
        `[boot]\nkind = "probe"\n[[pci]]\nslot = 5\nfunction = 2\ntype = "testdev"\n`,
        ["vm.toml:5:12: pci[0].function: function 2 in slot 5 needs function 0 in the same slot"],
      ],
      [
        "two stdio consoles",
        `[boot]\nkind = "probe"\n[console]\ncom1 = "stdio"\ncom2 = "stdio"\n`,
        ['vm.toml:5:8: console.com2: com1 and com2 cannot both use "stdio"'],
      ],
      [
        "stdio on com2 with com1 left at its default",
        `[boot]\nkind = "probe"\n[console]\ncom2 = "stdio"\n`,
        [
          'vm.toml:4:8: console.com2: com1 and com2 cannot both use "stdio" (com1 defaults to "stdio"; set com1 = "none" or a file)',
        ],
      ],
      [
        "console file in a missing directory",
        `[boot]\nkind = "probe"\n[console]\ncom1 = { file = "${dir}/nope/serial.log" }\n`,
        [`vm.toml:4:17: console.com1.file: directory ${dir}/nope does not exist`],
      ],
      [
        "multiple issues reported together, in source order",
        [
          `[boot]`,
          `kind = "raw"`,
          `image = "${dir}/guest.bin"`,
          `address = 0x100000`,
          `entry = "prot33"`,
          `kernel = "x"`,
          `[memory]`,
          `size = "1.3K"`,
          `[cpu]`,
          `cores = 0`,
          `[[pci]]`,
          `slot = 0`,
          `type = "testdve"`,
          `[rtc]`,
          `use_localtime = "yes"`,
          `use_localtim = true`,
          ``,
        ].join("\n"),
        [
          'vm.toml:5:9: boot.entry: unknown entry mode "prot33"; expected "real16", "prot32" or "long64"',
          'vm.toml:6:1: boot.kernel: key `kernel` does not apply to boot kind "raw"',
          'vm.toml:8:8: memory.size: invalid size "1.3K": not a whole number of bytes',
          "vm.toml:10:9: cpu.cores: cores must be at least 1",
          "vm.toml:12:8: pci[0].slot: slot 0 is the host bridge; use a slot from 1 to 30",
          'vm.toml:13:8: pci[0].type: unknown pci device type "testdve"; known: "testdev"',
          "vm.toml:15:17: rtc.use_localtime: expected a boolean, got a string",
          'vm.toml:16:1: rtc.use_localtim: unknown key `use_localtim` in [rtc]; did you mean "use_localtime"?',
        ],
      ],
    ];
    for (const [name, toml, expected] of cases) {
      await assertIssues(toml, expected).catch((e) => {
        throw new Error(`case "${name}": ${e.message}`);
      });
    }
  });
});

Deno.test("dotted keys and inline tables are located too", async () => {
  await assertIssues(
    `boot.kind = "probe"\nmemory = { size = "1G", lowmem_limt = 1 }\ncpu.threads = "2"\n`,
    [
      'vm.toml:2:25: memory.lowmem_limt: unknown key `lowmem_limt` in [memory]; did you mean "lowmem_limit"?',
      "vm.toml:3:15: cpu.threads: expected an integer, got a string",
    ],
  );
});

Deno.test("formatConfig prints every setting, defaults included", async () => {
  await withFiles(async (dir) => {
    const config = await parseConfig(FULL, `${dir}/full.toml`);
    assert.equal(
      formatConfig(config),
      `vm.name=demo-1
vm.strict_io=true
vm.on_reset=exit
memory.size=1610612736 (1536 MiB)
memory.lowmem_limit=2147483648 (2 GiB)
cpu.cpus=8
cpu.sockets=2
cpu.cores=2
cpu.threads=2
cpu.maxcpus=16
cpu.x2apic=true
boot.kind=multiboot
boot.kernel=${dir}/kernel.elf
boot.cmdline=console=ttyS0 quiet
boot.modules[0].path=${dir}/initrd.img
boot.modules[0].cmdline=initrd
boot.modules[1].path=${dir}/guest.bin
boot.modules[1].cmdline=""
console.com1.file=${dir}/serial.log
console.com2=stdio
firmware.acpi=false
firmware.mptable=true
rtc.use_localtime=true
device[0].type=debug-exit
device[0].port=0xf4
device[0].size=2
device[1].type=debug-exit
device[1].port=0x500
device[1].size=4
pci[0].slot=3
pci[0].function=0
pci[0].type=testdev
pci[1].slot=3
pci[1].function=1
pci[1].type=testdev
`,
    );
  });
});

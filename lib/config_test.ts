import assert from "node:assert/strict";
import {
  ConfigError,
  configFromObject,
  formatConfig,
  formatIssue,
  loadConfig,
  MAX_CONFIG_SIZE,
  parseConfig,
  type VmConfig,
} from "./config.ts";

/**
 * A 64-byte Multiboot kernel the loader accepts: an a.out-kludge header
 * (flag 16) at offset 0 loading the whole file at 1 MiB, entered at byte 32.
 */
function multibootKernel(): Uint8Array {
  const bytes = new Uint8Array(64);
  const dv = new DataView(bytes.buffer);
  const flags = 1 << 16;
  dv.setUint32(0, 0x1badb002, true);
  dv.setUint32(4, flags, true);
  dv.setUint32(8, -(0x1badb002 + flags) >>> 0, true);
  dv.setUint32(12, 0x100000, true); // header_addr
  dv.setUint32(16, 0x100000, true); // load_addr
  dv.setUint32(28, 0x100020, true); // entry_addr
  return bytes;
}

/** Runs `fn` with a temp dir holding guest.bin (512 bytes), kernel.elf and initrd.img. */
async function withFiles(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dhyve_config_test_" });
  try {
    await Deno.writeFile(`${dir}/guest.bin`, new Uint8Array(512));
    await Deno.writeFile(`${dir}/kernel.elf`, multibootKernel());
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
    vm: {
      name: "demo-1",
      strictIo: true,
      onReset: "exit",
      clockRate: 1,
      ioeventfd: true,
      irqfd: true,
    },
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
    message: "/nonexistent/dhyve/vm.toml: cannot read config file: it does not exist",
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
    vm: {
      name: "demo",
      strictIo: false,
      onReset: "exit",
      clockRate: 1,
      ioeventfd: true,
      irqfd: true,
    },
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
        ["vm.toml:5:1: invalid TOML: key cpu.cpus is already defined: first at line 4, column 1"],
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
        ['vm.toml:2:8: boot.kind: unknown boot kind "uefi"; expected "probe", "raw", "multiboot" or "linux"'],
      ],
      [
        "boot kind not inferable",
        `\n[boot]\ncmdline = "x"\n`,
        ['vm.toml:2:1: boot.kind: missing required key `kind` ("probe", "raw", "multiboot" or "linux")'],
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
        [`vm.toml:3:10: boot.kernel: cannot read ${dir}/missing.elf: it does not exist`],
      ],
      [
        "kernel is a directory",
        `[boot]\nkernel = "${dir}"\n`,
        [`vm.toml:2:10: boot.kernel: ${dir} is a directory, not a regular file`],
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
          'vm.toml:5:9: boot.entry: unknown entry mode "prot33"; expected "real16", "prot32" or "long64"; did you mean "prot32"?',
          'vm.toml:6:1: boot.kernel: key `kernel` does not apply to boot kind "raw"',
          'vm.toml:8:8: memory.size: invalid size "1.3K": not a whole number of bytes',
          "vm.toml:10:9: cpu.cores: cores must be at least 1",
          "vm.toml:12:8: pci[0].slot: slot 0 is the host bridge; use a slot from 1 to 30",
          'vm.toml:13:8: pci[0].type: unknown pci device type "testdve"; known: "testdev", "virtio-blk", "virtio-net", "virtio-console" or "virtio-rng"; did you mean "testdev"?',
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

Deno.test("[vm] clock_rate: a number from 1/64 to 1, 1 by default", async () => {
  for (
    const [text, want] of [["0.25", 0.25], ["1", 1], ["1.0", 1], ["0.015625", 1 / 64]] as const
  ) {
    const config = await parseConfig(
      `[boot]\nkind = "probe"\n[vm]\nclock_rate = ${text}\n`,
      "vm.toml",
    );
    assert.equal(config.vm.clockRate, want, text);
  }
  for (
    const [text, message] of [
      ["0", "0 is out of range"],
      ["2", "2 is out of range"],
      ["0.01", "0.01 is out of range"],
      ["-0.5", "-0.5 is out of range"],
      ["nan", "expected a number between 1/64 and 1"],
      ['"fast"', "expected a number between 1/64 and 1"],
    ]
  ) {
    await assert.rejects(
      parseConfig(`[boot]\nkind = "probe"\n[vm]\nclock_rate = ${text}\n`, "vm.toml"),
      (e: Error) => {
        assert.match(
          e.message,
          new RegExp(`vm\\.clock_rate: .*${message.replace(/[.()]/g, "\\$&")}`),
        );
        return true;
      },
      text,
    );
  }
});

Deno.test("formatConfig prints every setting, defaults included", async () => {
  await withFiles(async (dir) => {
    const config = await parseConfig(FULL, `${dir}/full.toml`);
    assert.equal(
      formatConfig(config),
      `vm.name=demo-1
vm.strict_io=true
vm.on_reset=exit
vm.clock_rate=1
vm.ioeventfd=true
vm.irqfd=true
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

Deno.test("a console file may not be an input of the VM: the console truncates it", async () => {
  await withFiles(async (dir) => {
    const image = `[boot]\nimage = "${dir}/guest.bin"\naddress = 0x100000\nentry = "prot32"\n`;
    await assertIssues(`${image}[console]\ncom1 = { file = "${dir}/guest.bin" }\n`, [
      `vm.toml:6:17: console.com1.file: ${dir}/guest.bin is the boot image (boot.image); the console would truncate it`,
    ]);
    // Through a symbolic link and a path that is only lexically different.
    await Deno.symlink(`${dir}/initrd.img`, `${dir}/initrd-link`);
    await assertIssues(
      [
        `[boot]`,
        `kernel = "kernel.elf"`,
        `modules = [{ path = "initrd.img" }]`,
        `[console]`,
        `com1 = { file = "initrd-link" }`,
        `com2 = { file = "sub/../kernel.elf" }`,
        ``,
      ].join("\n"),
      [
        `${dir}/vm.toml:5:17: console.com1.file: "initrd-link" (${dir}/initrd-link) is a module (boot.modules[0].path); the console would truncate it`,
        `${dir}/vm.toml:6:17: console.com2.file: "sub/../kernel.elf" (${dir}/kernel.elf) is the kernel (boot.kernel); the console would truncate it`,
      ],
      `${dir}/vm.toml`,
    );
    // The config file itself.
    const self = `[boot]\nkind = "probe"\n[console]\ncom1 = { file = "self.toml" }\n`;
    await Deno.writeTextFile(`${dir}/self.toml`, self);
    await assert.rejects(() => loadConfig(`${dir}/self.toml`), {
      name: "ConfigError",
      message:
        `${dir}/self.toml:4:17: console.com1.file: "self.toml" (${dir}/self.toml) is the config file itself; the console would truncate it`,
    });
    assert.equal(await Deno.readTextFile(`${dir}/self.toml`), self);
    assert.throws(
      () =>
        configFromObject(
          { boot: { kind: "probe" }, console: { com1: { file: "x.toml" } } },
          `${dir}/x.toml`,
        ),
      {
        message:
          `${dir}/x.toml: console.com1.file: "x.toml" (${dir}/x.toml) is the config file itself; the console would truncate it`,
      },
    );
    // com1 and com2 on one file (here through a link) would overwrite each other.
    await Deno.writeTextFile(`${dir}/out.log`, "");
    await Deno.symlink(`${dir}/out.log`, `${dir}/out-link.log`);
    await assertIssues(
      `[boot]\nkind = "probe"\n[console]\ncom1 = { file = "out.log" }\ncom2 = { file = "out-link.log" }\n`,
      [`${dir}/vm.toml:5:17: console.com2.file: com1 already writes to ${dir}/out.log`],
      `${dir}/vm.toml`,
    );
    // Files that are no input are fine, existing or not.
    const ok = await parseConfig(
      `${image}[console]\ncom1 = { file = "serial.log" }\ncom2 = { file = "/dev/null" }\n`,
      `${dir}/vm.toml`,
    );
    assert.deepEqual(ok.console, {
      com1: { kind: "file", path: `${dir}/serial.log` },
      com2: { kind: "file", path: "/dev/null" },
    });
    // Two ports on one device (a terminal, a pipe, /dev/null) harm nothing:
    // only a regular file would be truncated and overwritten.
    const devices = await parseConfig(
      `${image}[console]\ncom1 = { file = "/dev/null" }\ncom2 = { file = "/dev/null" }\n`,
      `${dir}/vm.toml`,
    );
    assert.equal(devices.console.com2.kind, "file");
  });
});

Deno.test("a console file must be a path to a file in an existing directory", async () => {
  await withFiles(async (dir) => {
    const toml = (file: string) =>
      `[boot]\nkind = "probe"\n[console]\ncom1 = { file = "${file}" }\n`;
    const cases: [string, string][] = [
      ["", "path must not be empty"],
      [dir, `${dir} is a directory`],
      [".", `"." (${dir}) is a directory`],
      [`${dir}/guest.bin/serial.log`, `${dir}/guest.bin is not a directory`],
      [`${dir}/guest.bin/a/b/serial.log`, `${dir}/guest.bin is not a directory`],
      [`${dir}/nope/deeper/serial.log`, `directory ${dir}/nope/deeper does not exist`],
    ];
    for (const [file, message] of cases) {
      await assertIssues(
        toml(file),
        [`${dir}/vm.toml:4:17: console.com1.file: ${message}`],
        `${dir}/vm.toml`,
      );
    }
  });
});

/** `[[pci]]` entries for functions 0..n-1 of each of `slots`. */
function pciFunctions(slots: readonly [slot: number, functions: number][]): string {
  return slots.flatMap(([slot, n]) =>
    Array.from(
      { length: n },
      (_, fn) => `[[pci]]\nslot = ${slot}\nfunction = ${fn}\ntype = "testdev"\n`,
    )
  ).join("");
}

Deno.test("PCI functions beyond what the INTx pins carry (31 sources per IOAPIC pin) are refused", async () => {
  const probe = `[boot]\nkind = "probe"\n`;
  const full = Array.from({ length: 15 }, (_, i) => [i + 1, 8] as [number, number]);
  // 124 functions: 15 full slots and INTA-INTD of slot 16, 31 on each of pins 16-19.
  const ok = await parseConfig(probe + pciFunctions([...full, [16, 4]]), "vm.toml");
  assert.equal(ok.pci.length, 124);
  // The 125th function shares INTA of slot 16, routed to pin 16 like every INTA.
  await assertIssues(probe + pciFunctions([...full, [16, 5]]), [
    "vm.toml:3:1: pci: 125 functions are too many for the PCI interrupt pins: IOAPIC pin 16 would carry the INTx of 32 functions, and a pin takes at most 31 (INTx is spread over pins 16-19 by slot and pin INTA-INTD)",
  ]);
  // The limit is per pin, so fewer functions may be too many: with 5 functions
  // per slot, INTA of every slot carries two functions and lands on pin 16.
  const five = Array.from({ length: 16 }, (_, i) => [i + 1, 5] as [number, number]);
  await assertIssues(probe + pciFunctions(five), [
    "vm.toml:3:1: pci: 80 functions are too many for the PCI interrupt pins: IOAPIC pin 16 would carry the INTx of 32 functions, and a pin takes at most 31 (INTx is spread over pins 16-19 by slot and pin INTA-INTD)",
  ]);
});

Deno.test("raw images the entry mode cannot reach are refused", async () => {
  await withFiles(async (dir) => {
    const raw = (lines: string) => `[boot]\nimage = "${dir}/guest.bin"\n${lines}`;
    const high = (entry: string) =>
      `[memory]\nsize = "5G"\n${raw(`address = 0x100000000\nentry = "${entry}"\n`)}`;
    const cases: [string, string, string[]][] = [
      [
        "real16 above 1 MiB",
        raw(`address = 0x100000\nentry = "real16"\n`),
        [
          'vm.toml:3:11: boot.address: real-mode entry point 0x100000 is not below 1 MiB (0x100000), the most "real16" can reach',
        ],
      ],
      [
        "real16 with an entry point above 1 MiB",
        raw(`address = 0x100000\nentry = "real16"\nentry_point = 0x100010\n`),
        [
          'vm.toml:5:15: boot.entry_point: real-mode entry point 0x100010 is not below 1 MiB (0x100000), the most "real16" can reach',
        ],
      ],
      [
        "prot32 above 4 GiB",
        high("prot32"),
        [
          'vm.toml:5:11: boot.address: image [0x100000000, 0x100000200) lies above 4 GiB, out of reach: "prot32" enters with paging off and 32-bit addresses',
        ],
      ],
      [
        "long64 above 4 GiB",
        high("long64"),
        [
          'vm.toml:5:11: boot.address: image [0x100000000, 0x100000200) lies above 4 GiB, out of reach: "long64" identity-maps only the first 4 GiB',
        ],
      ],
      [
        "prot32 over the zero page",
        raw(`address = 0x7e00\nentry = "prot32"\n`),
        [
          'vm.toml:3:11: boot.address: image [0x7e00, 0x8000) overlaps the zero page [0x7000, 0x8000) that "prot32" entry writes; load it at 0x8000 or above',
        ],
      ],
      [
        "long64 over the zero page",
        raw(`address = 0x6f00\nentry = "long64"\nentry_point = 0x6f00\n`),
        [
          'vm.toml:3:11: boot.address: image [0x6f00, 0x7100) overlaps the zero page [0x7000, 0x8000) that "long64" entry writes; load it at 0x8000 or above',
        ],
      ],
    ];
    for (const [name, toml, expected] of cases) {
      await assertIssues(toml, expected).catch((e) => {
        throw new Error(`case "${name}": ${e.message}`);
      });
    }
    // What each mode can reach is fine: real16 over 0x7000 (no zero page),
    // prot32 right after the zero page, long64 up to 4 GiB.
    for (const [address, entry] of [[0x7000, "real16"], [0x8000, "prot32"], [0x9fe00, "long64"]]) {
      const config = await parseConfig(
        raw(`address = ${address}\nentry = "${entry}"\n`),
        "vm.toml",
      );
      assert.equal(config.boot.kind === "raw" && config.boot.address, address);
    }
  });
});

Deno.test("loadConfig reads only regular files up to 1 MiB", async () => {
  await withFiles(async (dir) => {
    await assert.rejects(() => loadConfig("/dev/zero"), {
      name: "ConfigError",
      message: "/dev/zero: cannot read config file: not a regular file (a character device)",
    });
    await assert.rejects(() => loadConfig(dir), {
      name: "ConfigError",
      message: `${dir}: cannot read config file: not a regular file (a directory)`,
    });
    // A FIFO is refused before it is opened (opening it would wait for a writer).
    const mkfifo = await new Deno.Command("mkfifo", { args: [`${dir}/fifo.toml`] }).output();
    assert.ok(mkfifo.success, "mkfifo failed");
    await assert.rejects(() => loadConfig(`${dir}/fifo.toml`), {
      name: "ConfigError",
      message: `${dir}/fifo.toml: cannot read config file: not a regular file (a FIFO)`,
    });
    // At most MAX_CONFIG_SIZE bytes.
    assert.equal(MAX_CONFIG_SIZE, 1024 * 1024);
    const body = `[boot]\nkind = "probe"\n`;
    await Deno.writeTextFile(`${dir}/max.toml`, body.padEnd(MAX_CONFIG_SIZE, "\n"));
    assert.equal((await loadConfig(`${dir}/max.toml`)).boot.kind, "probe");
    await Deno.writeTextFile(`${dir}/big.toml`, body.padEnd(MAX_CONFIG_SIZE + 1, "\n"));
    await assert.rejects(() => loadConfig(`${dir}/big.toml`), {
      name: "ConfigError",
      message: `${dir}/big.toml: config file is 1048577 bytes; the limit is 1 MiB`,
    });
  });
});

Deno.test("loadConfig refuses invalid UTF-8, naming line, column and byte offset", async () => {
  await withFiles(async (dir) => {
    const bytes = (...parts: (string | number[])[]) =>
      new Uint8Array(
        parts.flatMap((p) => typeof p === "string" ? [...new TextEncoder().encode(p)] : p),
      );
    const cases: [Uint8Array, string][] = [
      [
        bytes(`[vm]\nname = "x`, [0xff], `y"\n[boot]\nkind = "probe"\n`),
        "2:10: invalid UTF-8 at byte offset 14 (a TOML file must be UTF-8)",
      ],
      // The column counts characters: "é" is two bytes, one column.
      [
        bytes(`[boot]\nkind = "probe"\n[vm]\nname = "é`, [0xc3, 0x28], `"\n`),
        "4:10: invalid UTF-8 at byte offset 37 (a TOML file must be UTF-8)",
      ],
      // A UTF-16 surrogate (U+D800) encoded as UTF-8.
      [
        bytes([0xed, 0xa0, 0x80]),
        "1:1: invalid UTF-8 at byte offset 0 (a TOML file must be UTF-8)",
      ],
      // A sequence cut short by the end of the file.
      [
        bytes(`# €`, [0xe2, 0x82]),
        "1:4: invalid UTF-8 at byte offset 5 (a TOML file must be UTF-8)",
      ],
    ];
    for (const [content, expected] of cases) {
      await Deno.writeFile(`${dir}/bad.toml`, content);
      await assert.rejects(() => loadConfig(`${dir}/bad.toml`), {
        name: "ConfigError",
        message: `${dir}/bad.toml:${expected}`,
      });
    }
  });
});

Deno.test("a NUL character in a command line is refused (the guest's string would end there)", async () => {
  await withFiles(async (dir) => {
    const modules = `modules = [{ path = "${dir}/initrd.img", cmdline = `;
    await assertIssues(
      `[boot]\nkernel = "${dir}/kernel.elf"\ncmdline = "a\\u0000b"\n${modules}"x\\u0000" }]\n`,
      [
        "vm.toml:3:11: boot.cmdline: command line must not contain a NUL character (\\u0000)",
        `vm.toml:4:${
          modules.length + 1
        }: boot.modules[0].cmdline: command line must not contain a NUL character (\\u0000)`,
      ],
    );
    assert.throws(
      () => configFromObject({ boot: { kernel: `${dir}/kernel.elf`, cmdline: "a\0b" } }),
      {
        message: "<object>: boot.cmdline: command line must not contain a NUL character (\\u0000)",
      },
    );
  });
});

Deno.test("a multiboot kernel must not be empty and must have a multiboot header in its first 8 KiB", async () => {
  await withFiles(async (dir) => {
    await Deno.writeFile(`${dir}/empty.elf`, new Uint8Array(0));
    await assertIssues(`[boot]\nkernel = "${dir}/empty.elf"\n`, [
      `vm.toml:2:10: boot.kernel: ${dir}/empty.elf is empty`,
    ]);
    await assertIssues(`[boot]\nkernel = "${dir}/guest.bin"\n`, [
      `vm.toml:2:10: boot.kernel: ${dir}/guest.bin has no multiboot header in the first 8 KiB`,
    ]);
    // The last place a header may start (it must end within 8 KiB), and one past it.
    const at = (offset: number) => {
      const bytes = new Uint8Array(9000);
      bytes.set(multibootKernel().subarray(0, 12), offset);
      return bytes;
    };
    await Deno.writeFile(`${dir}/late.elf`, at(8180));
    assert.equal(
      (await parseConfig(`[boot]\nkernel = "${dir}/late.elf"\n`, "vm.toml")).boot.kind,
      "multiboot",
    );
    await Deno.writeFile(`${dir}/late.elf`, at(8184));
    await assertIssues(`[boot]\nkernel = "${dir}/late.elf"\n`, [
      `vm.toml:2:10: boot.kernel: ${dir}/late.elf has no multiboot header in the first 8 KiB`,
    ]);
  });
});

Deno.test("unknown names get a hint when close, ignoring case", async () => {
  await withFiles(async (dir) => {
    const cases: [string, string][] = [
      [
        `[boot]\nkind = "Probe"\n`,
        'vm.toml:2:8: boot.kind: unknown boot kind "Probe"; expected "probe", "raw", "multiboot" or "linux"; did you mean "probe"?',
      ],
      [
        `[boot]\nkind = "MULTIBOOT"\n`,
        'vm.toml:2:8: boot.kind: unknown boot kind "MULTIBOOT"; expected "probe", "raw", "multiboot" or "linux"; did you mean "multiboot"?',
      ],
      [
        `[boot]\nimage = "${dir}/guest.bin"\naddress = 0x8000\nentry = "Real16"\n`,
        'vm.toml:4:9: boot.entry: unknown entry mode "Real16"; expected "real16", "prot32" or "long64"; did you mean "real16"?',
      ],
      [
        `[boot]\nkind = "probe"\n[[device]]\ntype = "debug_exit"\n`,
        'vm.toml:4:8: device[0].type: unknown device type "debug_exit"; known: "debug-exit"; did you mean "debug-exit"?',
      ],
      [
        `[boot]\nkind = "probe"\n[[pci]]\nslot = 3\ntype = "TestDev"\n`,
        'vm.toml:5:8: pci[0].type: unknown pci device type "TestDev"; known: "testdev", "virtio-blk", "virtio-net", "virtio-console" or "virtio-rng"; did you mean "testdev"?',
      ],
      [
        `[boot]\nkind = "probe"\n[console]\ncom1 = "STDIO"\n`,
        'vm.toml:4:8: console.com1: unknown console "STDIO"; expected "stdio", "none" or { file = "path" }; did you mean "stdio"?',
      ],
      [
        `[boot]\nkind = "probe"\n[vm]\non_reset = "Restart"\n`,
        'vm.toml:4:12: vm.on_reset: unknown reset action "Restart"; known: "exit" or "restart"; did you mean "restart"?',
      ],
      [
        `[boot]\nkind = "probe"\n[memory]\nLOWMEM_LIMIT = "2G"\n`,
        'vm.toml:4:1: memory.LOWMEM_LIMIT: unknown key `LOWMEM_LIMIT` in [memory]; did you mean "lowmem_limit"?',
      ],
      // Nothing close: no hint.
      [
        `[boot]\nkind = "bios"\n`,
        'vm.toml:2:8: boot.kind: unknown boot kind "bios"; expected "probe", "raw", "multiboot" or "linux"',
      ],
    ];
    for (const [toml, expected] of cases) await assertIssues(toml, [expected]);
  });
});

Deno.test('a COM port set to "none" frees its ports for [[device]] entries', async () => {
  await withFiles(async (dir) => {
    const device = (port: number) => `[[device]]\ntype = "debug-exit"\nport = ${port}\n`;
    // com2 defaults to "none"; com1 may be set to it.
    const a = await parseConfig(`[boot]\nkind = "probe"\n${device(0x2f8)}`, "vm.toml");
    assert.deepEqual(a.devices, [{ type: "debug-exit", port: 0x2f8, size: 4 }]);
    const b = await parseConfig(
      `[boot]\nkind = "probe"\n[console]\ncom1 = "none"\ncom2 = "stdio"\n${device(0x3f8)}`,
      "vm.toml",
    );
    assert.deepEqual(b.devices, [{ type: "debug-exit", port: 0x3f8, size: 4 }]);
    // An enabled port keeps its range.
    await assertIssues(
      `[boot]\nkind = "probe"\n[console]\ncom2 = { file = "${dir}/com2.log" }\n${device(0x2fc)}`,
      ["vm.toml:7:8: device[0].port: ports 0x2fc-0x2ff overlap the platform's com2 ports 0x2f8-0x2ff"],
    );
    await assertIssues(
      `[boot]\nkind = "probe"\n[console]\ncom1 = { file = "${dir}/com1.log" }\n${device(0x3f8)}`,
      ["vm.toml:7:8: device[0].port: ports 0x3f8-0x3fb overlap the platform's com1 ports 0x3f8-0x3ff"],
    );
  });
});

Deno.test("PCI functions are kept in bus order (slot, then function), whatever the file order", async () => {
  const pci = (slot: number, fn: number) =>
    `[[pci]]\nslot = ${slot}\nfunction = ${fn}\ntype = "testdev"\n`;
  const config = await parseConfig(
    `[boot]\nkind = "probe"\n${pci(5, 0)}${pci(3, 7)}${pci(3, 0)}${pci(3, 2)}`,
    "vm.toml",
  );
  assert.deepEqual(config.pci.map((p) => [p.slot, p.function]), [[3, 0], [3, 2], [3, 7], [5, 0]]);
  const lines = formatConfig(config).split("\n").filter((l) => l.startsWith("pci["));
  assert.deepEqual(lines, [
    "pci[0].slot=3",
    "pci[0].function=0",
    "pci[0].type=testdev",
    "pci[1].slot=3",
    "pci[1].function=2",
    "pci[1].type=testdev",
    "pci[2].slot=3",
    "pci[2].function=7",
    "pci[2].type=testdev",
    "pci[3].slot=5",
    "pci[3].function=0",
    "pci[3].type=testdev",
  ]);
});

/**
 * A minimal bzImage (boot.rst setup header): 4 setup sectors, protocol
 * `version`, 64-bit entry, relocatable, pref_address 16 MiB, init_size
 * `initSize`, cmdline_size 63, then 4 KiB of protected-mode code.
 */
function bzImageFile(version = 0x020f, initSize = 0x400000): Uint8Array {
  const b = new Uint8Array(5 * 512 + 0x1000);
  const dv = new DataView(b.buffer);
  b[0x1f1] = 4; // setup_sects
  dv.setUint16(0x1fe, 0xaa55, true); // boot_flag
  b[0x201] = 0x6a; // the header ends at 0x26c
  dv.setUint32(0x202, 0x53726448, true); // "HdrS"
  dv.setUint16(0x206, version, true);
  b[0x211] = 1; // loadflags: LOADED_HIGH
  dv.setUint32(0x22c, 0x7fffffff, true); // initrd_addr_max
  dv.setUint32(0x230, 0x200000, true); // kernel_alignment
  b[0x234] = 1; // relocatable_kernel
  dv.setUint16(0x236, 1, true); // xloadflags: XLF_KERNEL_64
  dv.setUint32(0x238, 63, true); // cmdline_size
  dv.setBigUint64(0x258, 0x1000000n, true); // pref_address
  dv.setUint32(0x260, initSize, true); // init_size
  return b;
}

/** A minimal ELF64 vmlinux at 16 MiB with a PVH entry note (or without). */
async function pvhFile(pvh = true): Promise<Uint8Array> {
  const { buildElf, PT_NOTE } = await import("./boot/_testing.ts");
  const note = new Uint8Array(12 + 4 + 8);
  const dv = new DataView(note.buffer);
  dv.setUint32(0, 4, true);
  dv.setUint32(4, 8, true);
  dv.setUint32(8, pvh ? 18 : 17, true); // XEN_ELFNOTE_PHYS32_ENTRY
  note.set(new TextEncoder().encode("Xen\0"), 12);
  dv.setUint32(16, 0x1000010, true);
  return buildElf({
    class: 64,
    entry: 0x1000000,
    segments: [
      { paddr: 0x1000000, data: new Uint8Array(0x1000).fill(0x90), memsz: 0x2000 },
      { type: PT_NOTE, paddr: 0, data: note },
    ],
  });
}

async function withLinuxFiles(fn: (dir: string) => Promise<void>): Promise<void> {
  await withFiles(async (dir) => {
    await Deno.writeFile(`${dir}/vmlinuz`, bzImageFile());
    await Deno.writeFile(`${dir}/vmlinux`, await pvhFile());
    await Deno.writeFile(`${dir}/initrd.gz`, new Uint8Array(0x3000).fill(1));
    await fn(dir);
  });
}

Deno.test("linux boot: kernel, initrd and cmdline, resolved and shown in the effective config", async () => {
  await withLinuxFiles(async (dir) => {
    const c = await parseConfig(
      `[boot]\nkind = "linux"\nkernel = "vmlinuz"\ninitrd = "initrd.gz"\ncmdline = "console=ttyS0"\n`,
      `${dir}/vm.toml`,
    );
    assert.deepEqual(c.boot, {
      kind: "linux",
      kernel: `${dir}/vmlinuz`,
      initrd: `${dir}/initrd.gz`,
      cmdline: "console=ttyS0",
    });
    const text = formatConfig(c);
    assert.match(text, /^boot\.kind=linux$/m);
    assert.match(text, new RegExp(`^boot\\.kernel=${dir}/vmlinuz$`, "m"));
    assert.match(text, new RegExp(`^boot\\.initrd=${dir}/initrd\\.gz$`, "m"));
    assert.match(text, /^boot\.cmdline=console=ttyS0$/m);
    // Without an initrd and a cmdline.
    const bare = await parseConfig(
      `[boot]\nkind = "linux"\nkernel = "vmlinux"\n`,
      `${dir}/vm.toml`,
    );
    assert.deepEqual(bare.boot, { kind: "linux", kernel: `${dir}/vmlinux`, cmdline: "" });
    assert.doesNotMatch(formatConfig(bare), /boot\.initrd/);
  });
});

Deno.test("linux boot: the kind is inferred from the keys and the kernel's format", async () => {
  await withLinuxFiles(async (dir) => {
    const kind = async (boot: string) =>
      (await parseConfig(`[boot]\n${boot}\n`, `${dir}/vm.toml`)).boot.kind;
    assert.equal(await kind(`kernel = "vmlinuz"`), "linux"); // a bzImage
    assert.equal(await kind(`kernel = "vmlinux"`), "linux"); // an ELF with a PVH note
    assert.equal(await kind(`kernel = "kernel.elf"`), "multiboot"); // a multiboot header
    assert.equal(await kind(`kernel = "vmlinux"\ninitrd = "initrd.img"`), "linux");
    // Only Linux takes an initrd: a multiboot kernel with one is told what to use.
    await assertIssues(`[boot]\nkernel = "${dir}/kernel.elf"\ninitrd = "${dir}/initrd.img"\n`, [
      `vm.toml:2:10: boot.kernel: ${dir}/kernel.elf: unknown kernel format (first bytes 02 b0 ad 1b): neither a bzImage (0xAA55 and "HdrS" at 0x1fe/0x202) nor an ELF vmlinux; it has a multiboot header: use kind = "multiboot"`,
    ]);
    assert.equal(
      await kind(`kernel = "kernel.elf"\nmodules = [{ path = "initrd.img" }]`),
      "multiboot",
    );
    // An ELF without a PVH note or multiboot header stays "multiboot", which says what is missing.
    await Deno.writeFile(`${dir}/plain.elf`, await pvhFile(false));
    await assertIssues(`[boot]\nkernel = "${dir}/plain.elf"\n`, [
      `vm.toml:2:10: boot.kernel: ${dir}/plain.elf has no multiboot header in the first 8 KiB`,
    ]);
  });
});

Deno.test("linux boot: refused before any VM exists, naming the file and the key", async () => {
  await withLinuxFiles(async (dir) => {
    const boot = (extra: string) => `[boot]\nkind = "linux"\n${extra}\n`;
    // An unknown format.
    await assertIssues(boot(`kernel = "${dir}/guest.bin"`), [
      `vm.toml:3:10: boot.kernel: ${dir}/guest.bin: unknown kernel format (first bytes 00 00 00 00): neither a bzImage (0xAA55 and "HdrS" at 0x1fe/0x202) nor an ELF vmlinux`,
    ]);
    await assertIssues(boot(`kernel = "${dir}/kernel.elf"`), [
      `vm.toml:3:10: boot.kernel: ${dir}/kernel.elf: unknown kernel format (first bytes 02 b0 ad 1b): neither a bzImage (0xAA55 and "HdrS" at 0x1fe/0x202) nor an ELF vmlinux; it has a multiboot header: use kind = "multiboot"`,
    ]);
    // An ELF without the PVH note.
    await Deno.writeFile(`${dir}/plain.elf`, await pvhFile(false));
    const noPvh = await parseConfig(boot(`kernel = "${dir}/plain.elf"`), "vm.toml").catch((e) => e);
    assert.ok(noPvh instanceof ConfigError);
    assert.match(
      noPvh.message,
      /boot\.kernel: .*plain\.elf: an ELF kernel without a PVH entry note/,
    );
    // A setup header older than 2.06.
    await Deno.writeFile(`${dir}/old`, bzImageFile(0x0205));
    await assertIssues(boot(`kernel = "${dir}/old"`), [
      `vm.toml:3:10: boot.kernel: ${dir}/old: boot protocol 2.05 is too old (dhyve needs 2.06 or later)`,
    ]);
    // A command line over the kernel's cmdline_size (63 here).
    await assertIssues(boot(`kernel = "${dir}/vmlinuz"\ncmdline = "${"x".repeat(64)}"`), [
      `vm.toml:4:11: boot.cmdline: command line is 64 bytes; ${dir}/vmlinuz (its cmdline_size) takes at most 63`,
    ]);
    // A kernel that does not fit below the lowmem end: 40 MiB of init_size in 32 MiB.
    await Deno.writeFile(`${dir}/big`, bzImageFile(0x020f, 40 * 1024 * 1024));
    await assertIssues(`[memory]\nsize = "32M"\n${boot(`kernel = "${dir}/big"`)}`, [
      `vm.toml:5:10: boot.kernel: ${dir}/big needs 41943040 bytes (init_size) at a 0x200000-aligned address, and the RAM below the lowmem end 0x2000000 has no such room`,
    ]);
    // An initrd that does not fit above the kernel: 16 MiB + 4 MiB of kernel in 24 MiB.
    await Deno.writeFile(`${dir}/big.img`, new Uint8Array(5 * 1024 * 1024));
    await assertIssues(
      `[memory]\nsize = "24M"\n${boot(`kernel = "${dir}/vmlinuz"\ninitrd = "${dir}/big.img"`)}`,
      [
        `vm.toml:6:10: boot.initrd: ${dir}/big.img (5242880 bytes) does not fit in RAM between the kernel's end 0x1400000 and 0x1800000 (the lowmem end)`,
      ],
    );
    // A PVH kernel linked above the RAM.
    await assertIssues(`[memory]\nsize = "16M"\n${boot(`kernel = "${dir}/vmlinux"`)}`, [
      `vm.toml:5:10: boot.kernel: ${dir}/vmlinux: its segment at [0x1000000, 0x1002000) is not in guest RAM below the lowmem end (a PVH kernel is loaded where it is linked; see \`dhyve check\` for the memory map)`,
    ]);
    // Keys of other kinds, a missing initrd.
    await assertIssues(boot(`kernel = "${dir}/vmlinuz"\nmodules = []`), [
      'vm.toml:4:1: boot.modules: key `modules` does not apply to boot kind "linux"',
    ]);
    await assertIssues(boot(`kernel = "${dir}/vmlinuz"\ninitrd = "${dir}/nope"`), [
      `vm.toml:4:10: boot.initrd: cannot read ${dir}/nope: it does not exist`,
    ]);
    await assertIssues(boot(`initrd = "${dir}/initrd.gz"`), [
      "vm.toml:1:1: boot.kernel: missing required key `kernel`",
    ]);
  });
});

Deno.test("linux boot: the initrd is a boot input a console file may not overwrite", async () => {
  const { bootInputs } = await import("./config.ts");
  assert.deepEqual(
    bootInputs({ kind: "linux", kernel: "/k", initrd: "/i", cmdline: "" }).map((i) => i.what),
    ["the kernel (boot.kernel)", "the initrd (boot.initrd)"],
  );
  await withLinuxFiles(async (dir) => {
    const e = await parseConfig(
      `[boot]\nkernel = "vmlinuz"\ninitrd = "initrd.gz"\n[console]\ncom1 = { file = "initrd.gz" }\n`,
      `${dir}/vm.toml`,
    ).catch((e) => e);
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /the initrd \(boot\.initrd\); the console would truncate it/);
  });
});

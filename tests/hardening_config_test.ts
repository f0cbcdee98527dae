/**
 * Issue 11: hostile VM definitions and input files. One test per class:
 * terminal injection (item 1), host error text (4), parser corners (6),
 * reading before checking (2) and "check passes, up refuses" (3).
 *
 * @module
 */
import assert from "node:assert/strict";
import { ConfigError, formatIssue, loadConfig, parseConfig } from "../lib/config.ts";
import { escapeText, quote } from "../lib/quote.ts";

/** The formatted issues of a definition that must be refused. */
async function issues(toml: string, file = "vm.toml"): Promise<string[]> {
  const e = await parseConfig(toml, file).then(() => undefined, (e: unknown) => e);
  assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
  return e.issues.map(formatIssue);
}

/** No control, bidi or separator character reaches the terminal. */
function assertSafe(text: string): void {
  assert.equal(escapeText(text), text, `raw control or bidi characters in ${JSON.stringify(text)}`);
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dhyve_hardening_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A Multiboot a.out-kludge header at offset 0 with these addresses, in a file of `size` bytes. */
function aoutKernel(
  a: { header: number; load: number; loadEnd?: number; bssEnd?: number; entry: number },
  size = 64,
  flags = 1 << 16,
): Uint8Array {
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, 0x1badb002, true);
  dv.setUint32(4, flags, true);
  dv.setUint32(8, -(0x1badb002 + flags) >>> 0, true);
  dv.setUint32(12, a.header, true);
  dv.setUint32(16, a.load, true);
  dv.setUint32(20, a.loadEnd ?? 0, true);
  dv.setUint32(24, a.bssEnd ?? 0, true);
  dv.setUint32(28, a.entry, true);
  return b;
}

const GOOD = { header: 0x100000, load: 0x100000, entry: 0x100020 };

Deno.test("item 1: keys, values and paths reach the terminal escaped and cut", async () => {
  const hostile = [
    `[boot]\nkind = "probe"\n[firmware]\n"\\u001b[2J\\u001b[H" = 1\n`,
    `[boot]\nkind = "probe"\n[vm]\nname = "a\\u202eexe.txt"\n`,
    `[boot]\nkind = "probe"\n[vm]\nname = "line\\nvm.toml:1:1: forged"\n`,
    `[boot]\nkind = "\\u0000\\u009b31m"\n`,
    `[boot]\nkind = "raw"\nimage = "x\\u001b]0;title\\u0007"\naddress = 0\nentry = "real16"\n`,
    `[boot]\nkind = "probe"\n[console]\ncom1 = { file = "/nonexistent/\\u2066\\u001b[31m" }\n`,
    `[boot]\nkind = "probe"\n[memory]\nsize = "1\\u001b[2J"\n`,
  ];
  for (const toml of hostile) {
    for (const line of await issues(toml)) {
      assertSafe(line);
      assert.ok(!line.includes("\n"), line);
    }
  }
  // The file name given on the command line is user text too.
  for (const line of await issues(`[boot]\nkind = "nope"\n`, "vm\u001b[2J.toml")) assertSafe(line);

  // A 1 MB value is quoted cut, with its size.
  const [line] = await issues(`[boot]\nkind = "probe"\n[vm]\nname = "${"x".repeat(1_000_000)}"\n`);
  assert.ok(line.length < 300, `a ${line.length}-character line`);
  assert.match(line, /"x{80}…" \(1000000 characters\)/);
  // quote() counts characters, not UTF-16 units, and never splits a pair.
  assert.equal(quote("😀".repeat(100), 3), `"😀😀😀…" (100 characters)`);
  assert.equal(quote('a"\\\u202e'), '"a\\"\\\\\\u202e"');
});

Deno.test("item 4: host errors are said in words, naming the file and the key", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "");
    const cases = [
      [`image = "${dir}/file/x"`, "a part of the path is not a directory"],
      [`image = "${dir}/missing"`, "it does not exist"],
      [`image = "${dir}"`, "is a directory, not a regular file"],
    ];
    for (const [key, words] of cases) {
      const [line] = await issues(
        `[boot]\nkind = "raw"\n${key}\naddress = 0x1000\nentry = "real16"\n`,
      );
      assert.match(line, /boot\.image: /);
      assert.ok(line.includes(words), line);
      assert.doesNotMatch(line, /os error|errno|\(os |stat '|open '/, line);
    }
    const e = await loadConfig(`${dir}/file/vm.toml`).catch((e) => e);
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /cannot read config file: a part of the path is not a directory$/);
  });
});

Deno.test("item 6: parser corners: BOMs, impossible dates, duplicates named, long keys and strings", async () => {
  await withDir(async (dir) => {
    const enc = new TextEncoder();
    const body = enc.encode(`[boot]\nkind = "probe"\n`);
    // One BOM is fine; two are not, also through loadConfig (TextDecoder eats one).
    await Deno.writeFile(`${dir}/one.toml`, new Uint8Array([0xef, 0xbb, 0xbf, ...body]));
    await loadConfig(`${dir}/one.toml`);
    await Deno.writeFile(
      `${dir}/two.toml`,
      new Uint8Array([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf, ...body]),
    );
    const e = await loadConfig(`${dir}/two.toml`).catch((e) => e);
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /two\.toml:1:1: invalid TOML: a second byte order mark/);
  });
  // Days no calendar has, anywhere a date may stand.
  for (
    const [date, why] of [["2023-02-29", "February 2023 has 28 days"], [
      "2024-04-31T10:00:00Z",
      "April 2024 has 30 days",
    ], ["1900-02-29", "February 1900 has 28 days"]]
  ) {
    assert.deepEqual(await issues(`[boot]\nkind = "probe"\n[vm]\nx = [1, 2, ${date}]\n`), [
      `vm.toml:4:12: invalid TOML: impossible date ${date.slice(0, 10)}: ${why}`,
    ]);
  }
  // A duplicate names what and both places.
  assert.deepEqual(await issues(`[boot]\nkind = "probe"\n[vm]\nname = "a"\n\n[vm]\n`), [
    "vm.toml:6:2: invalid TOML: table [vm] is already defined: first at line 3, column 1",
  ]);
  assert.deepEqual(await issues(`vm.name = "a"\n[boot]\nkind = "probe"\n[vm]\n`), [
    "vm.toml:4:2: invalid TOML: table [vm] is already defined: first at line 1, column 1 (by key vm.name)",
  ]);
  // A dotted key of 16,000 parts: linear, not quadratic.
  const t0 = performance.now();
  const dotted = Array.from({ length: 16000 }, (_, i) => `k${i}`).join(".");
  assert.deepEqual(await issues(`[boot]\nkind = "probe"\n[vm]\n${dotted} = 1\n`), [
    "vm.toml:4:1: vm.k0: unknown key `k0` in [vm]",
  ]);
  assert.ok(performance.now() - t0 < 3000, `took ${performance.now() - t0} ms`);
  // Long strings, numbers and quoted keys keep every position.
  const long = "y".repeat(130_000);
  assert.deepEqual(
    await issues(
      `[boot]\nkind = "probe"\n[vm]\nx = { a = "${long}", b = ${
        "9".repeat(130_000)
      } }\nname = 7\n"${long}" = 1\n`,
    ),
    [
      "vm.toml:4:1: vm.x: unknown key `x` in [vm]",
      "vm.toml:5:8: vm.name: expected a string, got an integer",
      `vm.toml:6:1: vm."${"y".repeat(80)}…" (130000 characters): unknown key "${
        "y".repeat(80)
      }…" (130000 characters) in [vm]`,
    ],
  );
});

Deno.test("item 2: input sizes are checked by stat before reading; special files are refused", async () => {
  await withDir(async (dir) => {
    await Deno.writeFile(`${dir}/k.bin`, aoutKernel(GOOD));
    // A sparse 5 GiB module: refused from its size, in well under the time a read takes.
    using f = await Deno.open(`${dir}/huge.mod`, { write: true, create: true });
    await f.truncate(5 * 1024 ** 3);
    const t0 = performance.now();
    const lines = await issues(
      `[memory]\nsize = "16M"\n[boot]\nkind = "multiboot"\nkernel = "${dir}/k.bin"\n[[boot.modules]]\npath = "${dir}/huge.mod"\n`,
    );
    assert.ok(performance.now() - t0 < 2000, `took ${performance.now() - t0} ms: was it read?`);
    assert.equal(lines.length, 1);
    assert.match(
      lines[0],
      /boot\.modules\[0\]\.path: module .*huge\.mod at \[0x101000, 0x140101000\) \(5368709120 bytes\) does not fit in guest RAM/,
    );
    // Special files are refused before they are opened (opening a FIFO blocks).
    const fifo = `${dir}/fifo`;
    await new Deno.Command("mkfifo", { args: [fifo] }).output();
    for (const [path, kind] of [[fifo, "a FIFO"], ["/dev/zero", "a character device"]]) {
      const [line] = await issues(
        `[boot]\nkind = "raw"\nimage = "${path}"\naddress = 0x1000\nentry = "real16"\n`,
      );
      assert.ok(line.includes(`${path} is ${kind}, not a regular file`), line);
    }
  });
});

Deno.test("item 3: check refuses what up would refuse: console files and Multiboot kernels", async () => {
  await withDir(async (dir) => {
    await Deno.writeFile(`${dir}/k.bin`, aoutKernel(GOOD));
    const boot = `[boot]\nkind = "multiboot"\nkernel = "${dir}/k.bin"\n`;
    const consoleIssue = async (file: string) =>
      (await issues(`${boot}[console]\ncom1 = { file = "${file}" }\n`).catch(() => []))[0];
    await parseConfig(`${boot}[console]\ncom1 = { file = "${dir}/ok.log" }\n`, "vm.toml");
    await Deno.symlink(`${dir}/no/such/dir/log`, `${dir}/dangling`);
    assert.match(
      await consoleIssue(`${dir}/dangling`),
      /is a symbolic link to .*no\/such\/dir\/log, which does not exist, and directory .*no\/such\/dir does not exist/,
    );
    // A socket.
    const sock = Deno.listen({ transport: "unix", path: `${dir}/sock` });
    try {
      assert.match(await consoleIssue(`${dir}/sock`), /sock is a socket/);
    } finally {
      sock.close();
    }
    // Unwritable: a read-only sysfs attribute, and a directory that takes no new files.
    if ((await Deno.stat("/sys/kernel/vmcoreinfo").catch(() => undefined))?.isFile) {
      assert.match(
        await consoleIssue("/sys/kernel/vmcoreinfo"),
        /cannot write \/sys\/kernel\/vmcoreinfo \(a regular file\): permission denied/,
      );
    }
    if ((await Deno.stat("/sys/kernel").catch(() => undefined))?.isDirectory) {
      assert.match(
        await consoleIssue("/sys/kernel/dhyve.log"),
        /cannot create files in \/sys\/kernel: /,
      );
    }
    // A FIFO without a reader passes: up waits for one (and obeys signals) instead of blocking.
    await new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).output();
    await parseConfig(`${boot}[console]\ncom1 = { file = "${dir}/fifo" }\n`, "vm.toml");

    // Multiboot headers the loader refuses are refused by check.
    const kernels: [Uint8Array, RegExp][] = [
      [aoutKernel(GOOD, 64, (1 << 16) | (1 << 3)), /unsupported multiboot header flags 0x8/],
      [
        aoutKernel({ header: 0x100000, load: 0x100100, entry: 0x100100 }),
        /bad a\.out kludge addresses/,
      ],
      [
        aoutKernel({ header: 0xa0000, load: 0xa0000, entry: 0xa0020 }),
        /does not fit in guest RAM .*VGA/,
      ],
      [
        aoutKernel({ header: 0x100000, load: 0x100000, entry: 0x200000 }),
        /entry point 0x200000 is outside the loaded image/,
      ],
      [
        aoutKernel({ header: 0x100000, load: 0x100000, loadEnd: 0x101000, entry: 0x100020 }),
        /past the end of the file/,
      ],
    ];
    for (const [bytes, re] of kernels) {
      await Deno.writeFile(`${dir}/bad.bin`, bytes);
      const [line] = await issues(`[boot]\nkind = "multiboot"\nkernel = "${dir}/bad.bin"\n`);
      assert.match(line, /boot\.kernel: /);
      assert.match(line, re);
    }
  });
});

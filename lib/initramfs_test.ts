import assert from "node:assert/strict";
import {
  arrangeEntries,
  buildInitramfs,
  collectDir,
  type CpioEntry,
  cpioNewc,
  gzip,
  InitramfsError,
  NEWC_HEADER_SIZE,
  parseDeviceSpec,
  parseDeviceSpecFile,
} from "./initramfs.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const dec = new TextDecoder();

async function sh(
  cmd: string,
  args: string[],
  opts: { cwd?: string; stdin?: Uint8Array } = {},
): Promise<{ code: number; out: string; err: string }> {
  const child = new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    stdin: opts.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin) {
    const w = child.stdin.getWriter();
    await w.write(opts.stdin);
    await w.close();
  }
  const o = await child.output();
  return { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new DecompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(s).arrayBuffer());
}

const isRoot = Deno.uid() === 0;

/** The name in a `cpio -tv` line: what follows the date ("Mon DD HH:MM" or "Mon DD YYYY"). */
function nameOf(line: string): string {
  const m = line.match(/\s[A-Z][a-z]{2}\s+\d+\s+(?:\d{4}|\d\d:\d\d)\s(.*)$/);
  if (!m) throw new Error(`unexpected cpio -tv line: ${line}`);
  return m[1];
}

const sample: CpioEntry[] = [
  { path: "bin", type: "dir", perm: 0o755 },
  { path: "bin/busybox", type: "file", perm: 0o755, data: new TextEncoder().encode("#!busybox\n") },
  { path: "bin/sh", type: "symlink", perm: 0o777, target: "busybox" },
  { path: "dev", type: "dir", perm: 0o755 },
  { path: "dev/console", type: "char", perm: 0o600, major: 5, minor: 1 },
  { path: "dev/sda", type: "block", perm: 0o660, major: 8, minor: 0, gid: 6 },
  { path: "dev/pipe", type: "fifo", perm: 0o644 },
  {
    path: "init",
    type: "file",
    perm: 0o755,
    data: new TextEncoder().encode("#!/bin/sh\necho hi\n"),
  },
  { path: "tmp", type: "dir", perm: 0o1777 },
  { path: "empty", type: "file", perm: 0o644, data: new Uint8Array(0), mtime: 1700000000 },
];

Deno.test("newc: the format's layout (magic, 110-byte header, 4-byte alignment, trailer)", () => {
  const a = cpioNewc([{ path: "init", type: "file", perm: 0o755, data: Uint8Array.of(1, 2, 3) }]);
  const text = dec.decode(a.subarray(0, NEWC_HEADER_SIZE));
  assert.equal(text.slice(0, 6), "070701");
  const field = (i: number) => parseInt(text.slice(6 + 8 * i, 14 + 8 * i), 16);
  assert.equal(field(1), 0o100755); // mode
  assert.equal(field(4), 1); // nlink
  assert.equal(field(6), 3); // filesize
  assert.equal(field(11), 5); // namesize, "init\0"
  assert.equal(field(12), 0); // check
  // Header + name = 115, padded to 116; data 3 padded to 4.
  assert.deepEqual([...a.subarray(110, 116)], [0x69, 0x6e, 0x69, 0x74, 0, 0]);
  assert.deepEqual([...a.subarray(116, 120)], [1, 2, 3, 0]);
  assert.equal(dec.decode(a.subarray(120, 126)), "070701");
  assert.equal(dec.decode(a.subarray(120 + 110, 120 + 120)), "TRAILER!!!");
  assert.equal(a.length % 4, 0);
});

Deno.test("newc: cpio -t lists every entry with its type and mode; the archive is gzip-intact", async () => {
  const gz = await gzip(cpioNewc(sample));
  assert.deepEqual(await gunzip(gz), cpioNewc(sample));
  const t = await sh("gzip", ["-t"], { stdin: gz });
  assert.equal(t.code, 0, t.err);
  const list = await sh("cpio", ["-itv", "--quiet"], { stdin: cpioNewc(sample) });
  assert.equal(list.code, 0, list.err);
  const lines = list.out.trim().split("\n");
  assert.equal(lines.length, sample.length);
  const byName = new Map(lines.map((l) => [nameOf(l), l]));
  assert.match(byName.get("bin")!, /^drwxr-xr-x/);
  assert.match(byName.get("bin/busybox")!, /^-rwxr-xr-x/);
  assert.match(byName.get("bin/sh -> busybox")!, /^lrwxrwxrwx/);
  assert.match(byName.get("dev/console")!, /^crw------- .* 5,\s+1 /);
  assert.match(byName.get("dev/sda")!, /^brw-rw---- .* 8,\s+0 /);
  assert.match(byName.get("dev/pipe")!, /^prw-r--r--/);
  assert.match(byName.get("tmp")!, /^drwxrwxrwt/);
});

Deno.test({
  name: "newc: cpio -i extracts the files, links and device nodes as written",
  ignore: !isRoot,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "dhyve-cpio-" });
    try {
      const x = await sh("cpio", ["-idm", "--quiet", "--no-absolute-filenames"], {
        cwd: dir,
        stdin: cpioNewc(sample),
      });
      assert.equal(x.code, 0, x.err);
      assert.equal(await Deno.readTextFile(`${dir}/init`), "#!/bin/sh\necho hi\n");
      assert.equal((await Deno.stat(`${dir}/init`)).mode! & 0o7777, 0o755);
      assert.equal(await Deno.readLink(`${dir}/bin/sh`), "busybox");
      const con = await Deno.lstat(`${dir}/dev/console`);
      assert.equal(con.isCharDevice, true);
      assert.equal(con.mode! & 0o7777, 0o600);
      assert.equal((await Deno.lstat(`${dir}/dev/pipe`)).isFifo, true);
      assert.equal((await Deno.stat(`${dir}/tmp`)).mode! & 0o7777, 0o1777);
      assert.equal((await Deno.stat(`${dir}/empty`)).mtime!.getTime(), 1700000000 * 1000);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("device specs: mknod-like lines; errors name the place and the problem", () => {
  assert.deepEqual(parseDeviceSpec("dev/console c 5 1 0600"), {
    path: "dev/console",
    type: "char",
    perm: 0o600,
    uid: 0,
    gid: 0,
    major: 5,
    minor: 1,
  });
  assert.deepEqual(parseDeviceSpec("/dev/sda b 8 0 660 0 6"), {
    path: "dev/sda",
    type: "block",
    perm: 0o660,
    uid: 0,
    gid: 6,
    major: 8,
    minor: 0,
  });
  assert.equal(parseDeviceSpec("dev/null c 1 3").perm, 0o600);
  assert.equal(parseDeviceSpec("run/fifo p 0644").type, "fifo");
  assert.throws(
    () => parseDeviceSpec("dev/x q 1 2", "--dev #1"),
    /--dev #1: type "q" is not c, b or p/,
  );
  assert.throws(() => parseDeviceSpec("dev/x c 1", "d"), /d: minor "" is not a number/);
  assert.throws(() => parseDeviceSpec("dev/x c 4096 1"), /major 4096 is out of range/);
  assert.throws(() => parseDeviceSpec("dev/x c 1 1 0999"), /mode "0999" is not a number/);
  assert.throws(() => parseDeviceSpec("../x c 1 1"), /"\.\." in path/);
  const file = "# devices\n\ndev/console c 5 1 0600\ndev/bad c x 1\n";
  assert.throws(() => parseDeviceSpecFile(file, "devs.txt"), /devs\.txt:4: major "x"/);
  assert.equal(parseDeviceSpecFile("dev/console c 5 1\n# end\n", "f").length, 1);
});

Deno.test("arrange: parents first (added when missing), later entries replace earlier ones", () => {
  const out = arrangeEntries([
    { path: "a/b/c", type: "file", perm: 0o644, data: Uint8Array.of(1) },
    { path: "a", type: "dir", perm: 0o700 },
    { path: "a-z", type: "file", perm: 0o644 },
    { path: "a/b/c", type: "file", perm: 0o600, data: Uint8Array.of(2) },
  ]);
  assert.deepEqual(out.map((e) => e.path), ["a", "a/b", "a/b/c", "a-z"]);
  assert.equal(out[0].perm, 0o700);
  assert.equal(out[1].perm, 0o755);
  assert.equal(out[2].data![0], 2);
  assert.throws(
    () =>
      arrangeEntries([
        { path: "f", type: "file", perm: 0o644 },
        { path: "f/g", type: "file", perm: 0o644 },
      ]),
    /f\/g: its parent f is a file/,
  );
});

Deno.test("collectDir: a tree with a symlink and a hard link (stored as a copy), owned by root", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dhyve-tree-" });
  try {
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(`${dir}/bin/tool`, "TOOL");
    await Deno.chmod(`${dir}/bin/tool`, 0o750);
    await Deno.link(`${dir}/bin/tool`, `${dir}/bin/alias`);
    await Deno.symlink("tool", `${dir}/bin/ln`);
    const entries = await collectDir(dir, { mtime: 5 });
    assert.deepEqual(entries.map((e) => [e.path, e.type]), [
      ["bin", "dir"],
      ["bin/alias", "file"],
      ["bin/ln", "symlink"],
      ["bin/tool", "file"],
    ]);
    assert.equal(dec.decode(entries[1].data), "TOOL");
    assert.equal(entries[1].perm, 0o750);
    assert.equal(entries[2].target, "tool");
    assert.ok(entries.every((e) => e.uid === 0 && e.gid === 0 && e.mtime === 5));
    const image = await buildInitramfs({ dir, compress: false });
    const list = await sh("cpio", ["-it", "--quiet"], { stdin: image });
    assert.deepEqual(list.out.trim().split("\n"), ["bin", "bin/alias", "bin/ln", "bin/tool"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("newc: a non-file entry's data is ignored; a device node needs numbers", () => {
  assert.throws(
    () => cpioNewc([{ path: "dev/x", type: "char", perm: 0o600 }]),
    InitramfsError,
  );
  assert.throws(() => cpioNewc([{ path: "l", type: "symlink", perm: 0o777 }]), /without a target/);
});

Deno.test("CLI: dhyve initramfs DIR -o OUT --dev ... --devices FILE writes a gzipped newc archive", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dhyve-initramfs-cli-" });
  try {
    await Deno.mkdir(`${dir}/root/bin`, { recursive: true });
    await Deno.writeTextFile(`${dir}/root/init`, "#!/bin/sh\n");
    await Deno.chmod(`${dir}/root/init`, 0o755);
    await Deno.writeTextFile(`${dir}/devs`, "dev/null c 1 3 0666\n");
    const out = `${dir}/root/out.cpio.gz`; // inside the tree: left out of itself
    const run = (args: string[]) =>
      sh(Deno.execPath(), ["run", "-A", MAIN, "initramfs", ...args], { cwd: dir });
    const r = await run([
      "root",
      "-o",
      out,
      "--dev",
      "dev/console c 5 1 0600",
      "--devices",
      "devs",
    ]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /wrote .*out\.cpio\.gz: \d+ bytes \(newc cpio, gzip\)/);
    const list = await sh("cpio", ["-itv", "--quiet"], {
      stdin: await gunzip(await Deno.readFile(out)),
    });
    const names = list.out.trim().split("\n").map(nameOf);
    assert.deepEqual(names, ["bin", "dev", "dev/console", "dev/null", "init"]);
    // Usage errors: status 2 with the reason.
    const bad = await run(["root", "-o", `${dir}/x.gz`, "--dev", "dev/x z 1 1"]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--dev #1: type "z" is not c, b or p/);
    const missing = await run(["nope", "-o", `${dir}/x.gz`]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /cannot read directory nope/);
    const noOut = await run(["root", "-o", `${dir}/no/such/dir/x.gz`]);
    assert.equal(noOut.code, 2);
    assert.match(noOut.err, /cannot write .*x\.gz/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

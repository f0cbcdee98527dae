import assert from "node:assert/strict";
import { ConfigError, defaultMac, formatConfig, formatIssue, parseConfig } from "./config.ts";

const PROBE = `[boot]\nkind = "probe"\n`;

async function issues(toml: string, file: string): Promise<string[]> {
  const e = await parseConfig(toml, file).then(() => undefined, (e: unknown) => e);
  assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
  return e.issues.map(formatIssue);
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dhyve-virtio-config-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("config: virtio devices parse with their defaults and show in formatConfig", async () => {
  await withDir(async (dir) => {
    await Deno.writeFile(`${dir}/d.img`, new Uint8Array(4096));
    const c = await parseConfig(
      PROBE +
        `[[pci]]\nslot = 3\ntype = "virtio-blk"\npath = "d.img"\n` +
        `[[pci]]\nslot = 4\ntype = "virtio-net"\ntap = "tap0"\n` +
        `[[pci]]\nslot = 5\ntype = "virtio-console"\nsocket = "c.sock"\n` +
        `[[pci]]\nslot = 6\ntype = "virtio-rng"\n`,
      `${dir}/vm.toml`,
    );
    const [blk, net, con, rng] = c.pci;
    assert.deepEqual(blk, {
      slot: 3,
      function: 0,
      type: "virtio-blk",
      path: `${dir}/d.img`,
      size: 4096,
      readonly: false,
      serial: "dhyve-3.0",
      discard: true,
    });
    assert.deepEqual(net, {
      slot: 4,
      function: 0,
      type: "virtio-net",
      tap: "tap0",
      mac: defaultMac("vm/4.0"),
    });
    assert.deepEqual(con, {
      slot: 5,
      function: 0,
      type: "virtio-console",
      socket: `${dir}/c.sock`,
    });
    assert.deepEqual(rng, { slot: 6, function: 0, type: "virtio-rng" });
    assert.equal(c.vm.ioeventfd, true);
    const shown = formatConfig(c);
    for (
      const line of [
        "vm.ioeventfd=true",
        "pci[0].size=4096 (4 KiB)",
        "pci[0].serial=dhyve-3.0",
        "pci[1].tap=tap0",
        `pci[1].mac=${defaultMac("vm/4.0")}`,
        `pci[2].socket=${dir}/c.sock`,
        "pci[3].type=virtio-rng",
      ]
    ) assert.ok(shown.includes(line + "\n"), `${line} in:\n${shown}`);
  });
});

Deno.test("config: the default MAC is stable, unicast and locally administered (52:54:00)", () => {
  const a = defaultMac("vm/4.0");
  assert.equal(a, defaultMac("vm/4.0"));
  assert.notEqual(a, defaultMac("vm/5.0"));
  assert.notEqual(a, defaultMac("other/4.0"));
  assert.match(a, /^52:54:00(:[0-9a-f]{2}){3}$/);
});

Deno.test("config: bad virtio-blk entries are refused, each naming the key", async () => {
  await withDir(async (dir) => {
    await Deno.writeFile(`${dir}/odd.img`, new Uint8Array(1000));
    await Deno.writeFile(`${dir}/empty.img`, new Uint8Array());
    await Deno.writeFile(`${dir}/ok.img`, new Uint8Array(512));
    await Deno.writeFile(`${dir}/ro.img`, new Uint8Array(512));
    await Deno.chmod(`${dir}/ro.img`, 0o444);
    const blk = (slot: number, body: string) =>
      `[[pci]]\nslot = ${slot}\ntype = "virtio-blk"\n${body}\n`;
    const got = await issues(
      PROBE + blk(3, "") + blk(4, `path = "odd.img"`) + blk(5, `path = "empty.img"`) +
        blk(6, `path = "ok.img"\nserial = "${"s".repeat(21)}"`) +
        blk(7, `path = "ok.img"\ntap = "x"`) + blk(8, `path = "missing.img"`) +
        blk(9, `path = "ok.img"\nreadonly = true`),
      `${dir}/vm.toml`,
    );
    const want = [
      /pci\[0\]\.path: missing required key `path`/,
      /pci\[1\]\.path: "odd\.img" \(.*\) holds 1000 bytes; a disk image must be a non-empty whole number of 512-byte sectors/,
      /pci\[2\]\.path: "empty\.img" \(.*\) holds 0 bytes/,
      /pci\[3\]\.serial: serial "s{21}" must be at most 20 printable ASCII characters/,
      /pci\[4\]\.tap: unknown key/,
      /pci\[5\]\.path: cannot read "missing\.img" \(.*\): it does not exist/,
      // ok.img is writable in pci[3]: pci[4] may not share it, nor may the read-only pci[6].
      /pci\[4\]\.path: pci\[3\] uses the same image/,
      /pci\[6\]\.path: pci\[3\] uses the same image; only read-only disks may share one/,
    ];
    for (const re of want) assert.ok(got.some((l) => re.test(l)), `${re} in:\n${got.join("\n")}`);
    // As root the mode bits do not stop a write; elsewhere ro.img needs readonly = true.
    if (Deno.uid() !== 0) {
      const ro = await issues(PROBE + blk(3, `path = "ro.img"`), `${dir}/vm.toml`);
      assert.match(
        ro[0],
        /cannot write "ro\.img" \(.*\): .* \(set readonly = true to attach it read-only\)/,
      );
    }
  });
});

Deno.test("config: bad virtio-net and virtio-console entries are refused", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/plain`, "x");
    const net = (slot: number, body: string) =>
      `[[pci]]\nslot = ${slot}\ntype = "virtio-net"\n${body}\n`;
    const con = (slot: number, body: string) =>
      `[[pci]]\nslot = ${slot}\ntype = "virtio-console"\n${body}\n`;
    const got = await issues(
      PROBE + net(3, "") + net(4, `tap = "a/b"`) + net(5, `tap = "t1"\nmac = "01:00:00:00:00:01"`) +
        net(6, `tap = "t2"\nmac = "nonsense"`) + net(7, `tap = "t1"\nmac = "52:54:00:00:00:09"`) +
        con(8, "") + con(9, `file = "out.log"\nsocket = "s"`) + con(10, `socket = "plain"`),
      `${dir}/vm.toml`,
    );
    const want = [
      /pci\[0\]\.tap: missing required key `tap`/,
      /pci\[1\]\.tap: invalid tap name "a\/b"/,
      /pci\[2\]\.mac: 01:00:00:00:00:01 is a multicast address/,
      /pci\[3\]\.mac: invalid MAC address "nonsense"/,
      /pci\[4\]\.tap: pci\[2\] uses tap t1 already/,
      /pci\[5\]: a virtio-console needs exactly one of `file` \(output\) or `socket` \(both ways\)/,
      /pci\[6\]: a virtio-console needs exactly one of/,
      /pci\[7\]\.socket: "plain" \(.*\) exists and is not a socket; dhyve will not replace it/,
    ];
    for (const re of want) assert.ok(got.some((l) => re.test(l)), `${re} in:\n${got.join("\n")}`);
  });
});

Deno.test("config: [vm] ioeventfd = false is kept", async () => {
  const c = await parseConfig(`[vm]\nioeventfd = false\n` + PROBE, "vm.toml");
  assert.equal(c.vm.ioeventfd, false);
  assert.match(formatConfig(c), /^vm\.ioeventfd=false$/m);
});

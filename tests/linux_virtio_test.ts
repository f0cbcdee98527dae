/**
 * Linux uses dhyve's virtio devices (slow: only with DHYVE_SLOW_TESTS=1).
 *
 * configs/linux.toml boots with `dhyve.virtio` on its command line and five
 * virtio functions: an ext4 disk the test makes with mkfs.ext4, a read-only
 * raw disk, a NIC on a tap device in a network namespace the test creates
 * (dhyve runs inside it, and a TCP echo listener waits at 10.0.2.2:7777), a
 * console port on a unix socket the test talks to, and an entropy device.
 * The init script (configs/linux-init.sh) uses each and reports; the test
 * then reads the file the guest wrote straight from the image with debugfs.
 *
 * Needs root (network namespaces, tap devices), mkfs.ext4 and debugfs
 * (e2fsprogs), and `ip` (iproute2); `.ci/run` installs them.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fetchLinux } from "../tools/fetch_linux.ts";
import { SLOW_TESTS } from "./helpers.ts";
import { parseInitLines, runLinux } from "./_linux.ts";

const CONFIG = new URL("../configs/linux.toml", import.meta.url).pathname;
const HOST_IP = "10.0.2.2";
const ECHO_PORT = 7777;

async function sh(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return text;
}

/** A TCP echo listener (runs inside the namespace; answers "echo: LINE" and closes). */
const ECHO_SERVER = `
const l = Deno.listen({ hostname: Deno.args[0], port: Number(Deno.args[1]) });
console.log("listening");
for await (const c of l) {
  (async () => {
    const buf = new Uint8Array(4096);
    let got = "";
    while (!got.includes("\\n")) {
      const n = await c.read(buf);
      if (n === null) break;
      got += new TextDecoder().decode(buf.subarray(0, n));
    }
    await c.write(new TextEncoder().encode("echo: " + got.split("\\n")[0] + "\\n"));
    c.close();
  })();
}
`;

Deno.test({
  name:
    "linux virtio: the guest mounts an ext4 virtio-blk disk and writes a file the host reads, is refused writes on a read-only disk, echoes over virtio-net through a tap, talks both ways on a virtio-console socket and reads /dev/hwrng",
  // Network namespaces and tap devices need root (CAP_NET_ADMIN); .ci/run is root.
  ignore: !SLOW_TESTS || Deno.uid() !== 0,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cache = await fetchLinux({ log: (s) => console.log(s) });
    assert.ok(cache.ready, "fetch-linux did not fill the cache");
    const dir = await Deno.makeTempDir({ prefix: "dhyve-virtio-" });
    const ns = `dhyve-test-${Deno.pid}`;
    const tap = `dhtap${Deno.pid % 10000}`;
    const cleanups: (() => Promise<unknown> | unknown)[] = [];
    try {
      // The disks: a 64 MiB ext4 image with a file in it, a 1 MiB raw image.
      const disk = `${dir}/disk.img`, ro = `${dir}/ro.img`;
      await Deno.mkdir(`${dir}/content`);
      await Deno.writeFile(`${dir}/content/hello`, new TextEncoder().encode("made on the host\n"));
      await Deno.writeFile(disk, new Uint8Array());
      await Deno.truncate(disk, 64 << 20);
      await sh("mkfs.ext4", ["-q", "-F", "-d", `${dir}/content`, disk]);
      await Deno.writeFile(ro, new Uint8Array(1 << 20).fill(0xa5));
      // The network: a namespace with the tap, the host's address on it, the echo listener.
      await sh("ip", ["netns", "add", ns]);
      cleanups.push(() => sh("ip", ["netns", "del", ns]).catch(() => {}));
      const inNs = ["ip", "netns", "exec", ns];
      await sh(inNs[0], [...inNs.slice(1), "ip", "link", "set", "lo", "up"]);
      await sh(inNs[0], [...inNs.slice(1), "ip", "tuntap", "add", "dev", tap, "mode", "tap"]);
      await sh(inNs[0], [...inNs.slice(1), "ip", "addr", "add", `${HOST_IP}/24`, "dev", tap]);
      await sh(inNs[0], [...inNs.slice(1), "ip", "link", "set", tap, "up"]);
      const echo = new Deno.Command(inNs[0], {
        args: [
          ...inNs.slice(1),
          Deno.execPath(),
          "eval",
          ECHO_SERVER,
          HOST_IP,
          String(ECHO_PORT),
        ],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      cleanups.push(async () => {
        try {
          echo.kill("SIGKILL");
        } catch { /* gone */ }
        await echo.status;
        await echo.stdout.cancel().catch(() => {});
      });
      const socket = `${dir}/console.sock`;
      const toml = `${dir}/linux.toml`;
      await Deno.writeTextFile(
        toml,
        (await Deno.readTextFile(CONFIG))
          .replace(/^kernel = .*$/m, `kernel = "${cache.vmlinux}"`)
          .replace(/^initrd = .*$/m, `initrd = "${cache.initramfsRaw}"`)
          .replace(/^cmdline = "(.*)"$/m, 'cmdline = "$1 dhyve.virtio"') +
          `
[[pci]]
slot = 4
type = "virtio-blk"
path = "${disk}"
serial = "dhyve-test-disk"

[[pci]]
slot = 5
type = "virtio-blk"
path = "${ro}"
readonly = true

[[pci]]
slot = 6
type = "virtio-net"
tap = "${tap}"

[[pci]]
slot = 7
type = "virtio-console"
socket = "${socket}"

[[pci]]
slot = 8
type = "virtio-rng"
`,
      );
      // The console port's host side: connect once the socket exists, answer the guest's line.
      let fromGuest = "";
      const talk = (async () => {
        for (let i = 0; i < 600; i++) {
          try {
            const conn = await Deno.connect({ transport: "unix", path: socket });
            const buf = new Uint8Array(1024);
            while (!fromGuest.includes("\n")) {
              const n = await conn.read(buf);
              if (n === null) break;
              fromGuest += new TextDecoder().decode(buf.subarray(0, n));
            }
            await conn.write(new TextEncoder().encode("host to guest through virtio-console\n"));
            // Held open until the VM ends (the guest reads the line meanwhile).
            await conn.read(buf).catch(() => null);
            conn.close();
            return;
          } catch {
            await new Promise((r) => setTimeout(r, 1000));
          }
        }
      })();
      const run = await runLinux(toml, `${dir}/report.json`, { prefix: inNs });
      await Promise.race([talk, new Promise((r) => setTimeout(r, 2000))]);
      const tail = (s: string, n: number) => s.split("\n").slice(-n).join("\n");
      const context = `\n--- console (last 50 lines) ---\n${
        tail(run.stdout, 50)
      }\n--- stderr ---\n${tail(run.stderr, 30)}`;
      console.log(
        `linux virtio: init's first line at ${
          run.firstInitMs === undefined ? "never" : `${(run.firstInitMs / 1000).toFixed(1)} s`
        }; whole run ${(run.totalMs / 1000).toFixed(1)} s; exit ${run.status.code}`,
      );
      const { facts } = parseInitLines(run.stdout);
      for (
        const name of [
          "check.virtio.blk",
          "check.virtio.blk_readonly",
          "check.virtio.rng",
          "check.virtio.net",
          "check.virtio.console",
        ]
      ) {
        const v = facts.get(name);
        assert.ok(v !== undefined, `${name} missing${context}`);
        assert.match(v, /^ok\b/, `${name}: ${v}${context}`);
      }
      const failed = [...facts].filter(([k, v]) => k.startsWith("check.") && !/^ok\b/.test(v));
      assert.deepEqual(failed, [], `failed checks${context}`);
      assert.equal(facts.get("blk.read"), "made on the host", `the host's file${context}`);
      assert.equal(fromGuest.trim(), "guest to host through virtio-console", context);
      assert.equal(run.status.code, 1, `exit status (poweroff)${context}`);
      // The file the guest wrote, read from the image on the host.
      const f = await sh("debugfs", ["-R", "cat /f", disk]);
      assert.equal(f.trim(), "written by the guest through virtio-blk");
      // The read-only image is untouched.
      assert.ok((await Deno.readFile(ro)).every((b) => b === 0xa5), "read-only image changed");
    } finally {
      for (const c of cleanups.reverse()) await c();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

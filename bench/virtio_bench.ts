/**
 * Part 6 of `deno task bench`: virtio-blk sequential throughput inside
 * Linux, next to the host's own on the same image files.
 *
 * One boot of configs/linux.toml (the kernel and initramfs of
 * `deno task fetch-linux`) with two virtio disks on two image files: the
 * first with ioeventfd and irqfd (the default), the second with both off
 * (notifications through the vCPU's MMIO exit, interrupts through
 * KVM_SIGNAL_MSI). `dhyve.bench=MIB` on the command line makes the init
 * script (configs/linux-init.sh) run `dd` with O_DIRECT and 1 MiB blocks,
 * writing then reading MIB MiB of each disk. Before the boot the host runs
 * the same `dd` commands on the same files.
 *
 * The guest's dd times itself with the guest's clock, which runs at
 * `[vm] clock_rate` of real time (the guest calibrates its TSC against the
 * HPET): its seconds are divided by the rate to get real seconds. Exits per
 * MiB are the BAR accesses that reached dhyve for that device (each one a
 * vCPU exit to user space), from the run's report, over the MiB moved.
 *
 * Usage: deno run -A bench/virtio_bench.ts [--mib N]   (default 64)
 *
 * @module
 */
import { loadConfig } from "../lib/config.ts";
import { fetchLinux } from "../tools/fetch_linux.ts";
import { parseInitLines, runLinux } from "../tests/_linux.ts";

const CONFIG = new URL("../configs/linux.toml", import.meta.url).pathname;

/**
 * Bytes and seconds of a dd run: GNU dd's summary line ("N bytes (...)
 * copied, S s, ..."), or the init script's "bytes=N seconds=S" (busybox's dd
 * does not time itself).
 */
export function parseDd(line: string): { bytes: number; seconds: number } | undefined {
  const m = line.match(/(\d+) bytes .*copied, ([\d.]+) s/) ??
    line.match(/bytes=(\d+) seconds=([\d.]+)/);
  return m && Number(m[2]) > 0 ? { bytes: Number(m[1]), seconds: Number(m[2]) } : undefined;
}

async function hostDd(args: string[]): Promise<{ bytes: number; seconds: number }> {
  const out = await new Deno.Command("dd", { args, stdout: "null", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stderr);
  const r = parseDd(text.trim().split("\n").at(-1) ?? "");
  if (!out.success || !r) throw new Error(`dd ${args.join(" ")}: ${text.trim()}`);
  return r;
}

const mibps = (r: { bytes: number; seconds: number }) => r.bytes / 2 ** 20 / r.seconds;

/** Runs the benchmark and prints its table. */
export async function virtioBench(mib = 64): Promise<void> {
  console.log(`\nvirtio-blk inside Linux (dd, O_DIRECT, 1 MiB blocks, ${mib} MiB each way):`);
  const cache = await fetchLinux({ log: () => {} });
  if (!cache.ready) throw new Error("fetch-linux did not fill the cache");
  const dir = await Deno.makeTempDir({ prefix: "dhyve-virtio-bench-" });
  try {
    const disks = [
      { file: `${dir}/fast.img`, slot: 4, mode: "ioeventfd + irqfd", extra: "" },
      {
        file: `${dir}/exits.img`,
        slot: 5,
        mode: "MMIO exits + KVM_SIGNAL_MSI",
        extra: "ioeventfd = false\nirqfd = false\n",
      },
    ];
    const host: { write: number; read: number }[] = [];
    for (const d of disks) {
      await Deno.writeFile(d.file, new Uint8Array());
      await Deno.truncate(d.file, mib * 2 ** 20);
      const write = await hostDd([
        "if=/dev/zero",
        `of=${d.file}`,
        "bs=1M",
        `count=${mib}`,
        "oflag=direct",
        "conv=notrunc",
      ]);
      const read = await hostDd([
        `if=${d.file}`,
        "of=/dev/null",
        "bs=1M",
        `count=${mib}`,
        "iflag=direct",
      ]);
      host.push({ write: mibps(write), read: mibps(read) });
    }
    const toml = `${dir}/bench.toml`;
    await Deno.writeTextFile(
      toml,
      (await Deno.readTextFile(CONFIG))
        .replace(/^kernel = .*$/m, `kernel = "${cache.vmlinux}"`)
        .replace(/^initrd = .*$/m, `initrd = "${cache.initramfsRaw}"`)
        .replace(/^cmdline = "(.*)"$/m, `cmdline = "$1 dhyve.bench=${mib}"`) +
        disks.map((d) =>
          `\n[[pci]]\nslot = ${d.slot}\ntype = "virtio-blk"\npath = "${d.file}"\n${d.extra}`
        ).join(""),
    );
    const rate = (await loadConfig(toml)).vm.clockRate;
    const report = `${dir}/report.json`;
    const t0 = performance.now();
    const run = await runLinux(toml, report);
    const { facts } = parseInitLines(run.stdout);
    let virtio: Record<string, { barAccesses: number; interrupts: number }> = {};
    try {
      virtio = JSON.parse(await Deno.readTextFile(report)).virtio ?? {};
    } catch { /* no report: the counters stay unknown */ }
    console.log(
      `  one boot of ${
        ((performance.now() - t0) / 1000).toFixed(0)
      } s; guest seconds / clock_rate ${rate} = real seconds`,
    );
    console.log(
      "  mode                          guest write  guest read   host write   host read   guest/host w, r   exits/MiB  irqs/MiB",
    );
    disks.forEach((d, i) => {
      const dev = `vd${String.fromCharCode(97 + i)}`;
      const w = parseDd(facts.get(`bench.${dev}.write`) ?? "");
      const r = parseDd(facts.get(`bench.${dev}.read`) ?? "");
      const fix = (x: { bytes: number; seconds: number } | undefined) =>
        x && { bytes: x.bytes, seconds: x.seconds / rate };
      const gw = fix(w), gr = fix(r);
      const stats = virtio[`virtio-blk@${d.slot}.0`];
      const cell = (v: number | undefined, unit = " MiB/s") =>
        v === undefined ? "?".padStart(12) : `${v.toFixed(1)}${unit}`.padStart(12);
      const pct = (g: number | undefined, h: number) =>
        g === undefined ? "?" : `${(100 * g / h).toFixed(1)}%`;
      console.log(
        `  ${d.mode.padEnd(29)} ${cell(gw && mibps(gw))} ${cell(gr && mibps(gr))} ${
          cell(host[i].write)
        } ${cell(host[i].read)}   ${pct(gw && mibps(gw), host[i].write)}, ${
          pct(gr && mibps(gr), host[i].read)
        }   ${cell(stats && stats.barAccesses / (2 * mib), "")} ${
          cell(stats && stats.interrupts / (2 * mib), "")
        }`,
      );
      if (!w || !r) {
        console.log(
          `    (no dd result for ${dev}: exit ${run.status.code}; ${
            run.stdout.split("\n").filter((l) => l.includes("bench.")).join(" | ") ||
            "no bench lines"
          })`,
        );
      }
    });
    console.log(
      "  target: guest >= 50% of the host's throughput (the guest's kernel is emulated on our machines; see the README)",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--mib");
  await virtioBench(i >= 0 ? Number(Deno.args[i + 1]) : 64);
}

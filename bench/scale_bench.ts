/**
 * What a VM's own threads cost: peak RSS and start time for 1, 8 and 64
 * vCPUs (the "scale" item of the hostile-input issue).
 *
 * Each VM runs the outloop guest (tests/guests/outloop: the BSP does a short
 * `out 0x80` loop, then a debug-exit write that ends dhyve with status 1);
 * the APs wait for a SIPI inside KVM_RUN, so every vCPU's Worker is up and
 * in its run loop. Peak RSS is the process's VmHWM (/proc/PID/status, polled
 * every 10 ms; it only grows); the start is from spawning `deno run -A
 * main.ts up` to the first KVM_RUN of the last vCPU (the report's
 * `firstRunWallMs`). Per further vCPU: the difference to the 1-vCPU run
 * divided by the extra vCPUs. Targets (issue 11, item 8): a 1-vCPU VM under
 * 66 MiB peak (QEMU's figure on the same guest), each further vCPU under
 * 8 MiB and 20 ms.
 *
 * Part of `deno task bench`; alone: `deno run -A bench/scale_bench.ts [--runs R]`.
 *
 * @module
 */
import { buildGuest, OUTLOOP_COUNT_OFFSET } from "../tests/guests/build.ts";
import { flatGuestToml } from "../tests/helpers.ts";

/** One measured start. */
export interface ScaleSample {
  readonly cpus: number;
  /** Peak RSS (VmHWM), MiB. */
  readonly peakMiB: number;
  /** Spawn to the last vCPU's first KVM_RUN, ms. */
  readonly startMs: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** VmHWM of `pid` in KiB, or 0 once the process is gone. */
function peakKiB(pid: number): number {
  try {
    const m = Deno.readTextFileSync(`/proc/${pid}/status`).match(/^VmHWM:\s+(\d+) kB$/m);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Starts one VM of `cpus` vCPUs and measures it. */
async function sample(dir: string, image: string, cpus: number): Promise<ScaleSample> {
  const toml = `${dir}/scale${cpus}.toml`;
  const report = `${dir}/scale${cpus}.json`;
  await Deno.writeTextFile(
    toml,
    flatGuestToml(image, `[vm]\nname = "scale-${cpus}"\n[console]\ncom1 = "none"\n`, "real16", {
      cpus,
    }),
  );
  const main = new URL("../main.ts", import.meta.url).pathname;
  const spawnedAt = performance.timeOrigin + performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, "up", "-q", "--no-ctl", toml, "--report", report],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let peak = 0;
  const poll = setInterval(() => peak = Math.max(peak, peakKiB(child.pid)), 10);
  const [status, err] = await Promise.all([child.status, new Response(child.stderr).text()]);
  clearInterval(poll);
  if (status.code !== 1) throw new Error(`dhyve with ${cpus} vCPUs exited ${status.code}:\n${err}`);
  const r = JSON.parse(await Deno.readTextFile(report)) as { vcpus: { firstRunWallMs: number }[] };
  const last = Math.max(...r.vcpus.map((v) => v.firstRunWallMs));
  return { cpus, peakMiB: peak / 1024, startMs: last - spawnedAt };
}

/** Runs the benchmark and prints its lines. */
export async function scaleBench(counts = [1, 8, 64], runs = 3): Promise<ScaleSample[]> {
  const dir = await Deno.makeTempDir({ prefix: "dhyve-scale-bench-" });
  try {
    const image = await buildGuest("outloop");
    new DataView(image.buffer, image.byteOffset).setUint32(OUTLOOP_COUNT_OFFSET, 1000, true);
    const path = `${dir}/outloop.bin`;
    await Deno.writeFile(path, image);
    console.log(`\nVM scale: peak RSS and start time by vCPU count, median of ${runs} runs`);
    const out: ScaleSample[] = [];
    for (const cpus of counts) {
      const xs: ScaleSample[] = [];
      for (let i = 0; i < runs; i++) xs.push(await sample(dir, path, cpus));
      out.push({
        cpus,
        peakMiB: median(xs.map((x) => x.peakMiB)),
        startMs: median(xs.map((x) => x.startMs)),
      });
    }
    const one = out.find((s) => s.cpus === 1);
    for (const s of out) {
      let per = "";
      if (one && s.cpus > 1) {
        const mib = (s.peakMiB - one.peakMiB) / (s.cpus - 1);
        const ms = (s.startMs - one.startMs) / (s.cpus - 1);
        per = `; per further vCPU ${mib.toFixed(1)} MiB (target < 8: ${
          mib < 8 ? "met" : "missed"
        }), ${ms.toFixed(1)} ms (target < 20: ${ms < 20 ? "met" : "missed"})`;
      } else if (s.cpus === 1) {
        per = ` (target < 66 MiB: ${s.peakMiB < 66 ? "met" : "missed"})`;
      }
      console.log(
        `  ${String(s.cpus).padStart(3)} vCPUs: peak RSS ${s.peakMiB.toFixed(1)} MiB, ` +
          `spawn to every vCPU running ${s.startMs.toFixed(0)} ms${per}`,
      );
    }
    return out;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--runs");
  await scaleBench([1, 8, 64], i >= 0 ? Number(Deno.args[i + 1]) : 3);
}

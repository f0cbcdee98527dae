/**
 * The exit benchmark, measured in one run:
 *
 * 1. The port-I/O exit round trip: the same real-mode guest
 *    (tests/guests/outloop: `out 0x80` in a loop, then a debug-exit write)
 *    runs under a raw C KVM loop (bench/kvm_loop.c, built with gcc now) and
 *    under dhyve (`main.ts up`, the POST-code port on the vCPU's own thread).
 *    Each run reports the time from its first KVM_RUN to the debug-exit, and
 *    the per-exit cost is the median over alternating runs. The ratio
 *    dhyve / C is printed with its target (<= 1.10).
 * 2. Start-up: from spawning `deno run -A main.ts up` to its first KVM_RUN
 *    (target < 150 ms), taken from the same dhyve runs.
 * 3. The fallback instruction emulator (cpu/fallback.ts with the executor of
 *    cpu/x86/exec.ts): a flat 32-bit guest (tests/guests/pm/fallback_bench)
 *    loops over `out 0x80` (the port-I/O exit again, as the baseline),
 *    `int3` (its #BP handler returns with `iret`: a round trip of two
 *    fallbacks where KVM's emulator gives up on both), `clac` (one
 *    fallback; skipped without SMAP) or `int $0x40` (a software interrupt
 *    and the handler's `iret`: two fallbacks), each in its own dhyve run,
 *    alternating. Each is printed as a ratio to the port-I/O exit (target:
 *    one fallback <= 2x).
 * 4. The control socket: a `stats` round trip against a running VM, client
 *    start excluded (target: median < 5 ms), and a `regs.get`, which goes
 *    through the vCPU's thread (bench/ctl_bench.ts).
 * 5. The VM's scale: peak RSS and start time for 1, 8 and 64 vCPUs
 *    (bench/scale_bench.ts).
 * 6. virtio-blk inside Linux: guest-side sequential O_DIRECT throughput
 *    next to the host's on the same files, and exits per MiB, with
 *    ioeventfd/irqfd on and off (bench/virtio_bench.ts; one Linux boot,
 *    about seven minutes here; `--no-linux` skips it).
 *
 * Timings on our machines are noisy (guest ring 0 is emulated): the runs
 * alternate and medians are compared, never absolute numbers across runs.
 *
 * Usage: deno task bench [--iterations N] [--runs R] [--fallback-iterations F]
 * [--ctl-round-trips C] [--no-linux]
 *
 * @module
 */
import { buildGuest, OUTLOOP_COUNT_OFFSET } from "../tests/guests/build.ts";
import { flatGuestToml } from "../tests/helpers.ts";
import { ctlBench } from "./ctl_bench.ts";
import { scaleBench } from "./scale_bench.ts";
import { virtioBench } from "./virtio_bench.ts";

const args = new Map<string, string>();
const argv = Deno.args.filter((a) => a !== "--no-linux");
for (let i = 0; i < argv.length; i += 2) {
  args.set(argv[i].replace(/^--/, ""), argv[i + 1]);
}
const ITERATIONS = Number(args.get("iterations") ?? 100_000);
const RUNS = Number(args.get("runs") ?? 5);
const FALLBACK_ITERATIONS = Number(args.get("fallback-iterations") ?? 20_000);
const CTL_ROUND_TRIPS = Number(args.get("ctl-round-trips") ?? 1000);

const root = new URL("..", import.meta.url).pathname;
const dir = await Deno.makeTempDir({ prefix: "dhyve-bench-" });

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function run(
  cmd: string,
  argv: string[],
  cwd = root,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, {
    args: argv,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

try {
  // The guest, with the loop count patched in.
  const image = await buildGuest("outloop");
  new DataView(image.buffer, image.byteOffset).setUint32(OUTLOOP_COUNT_OFFSET, ITERATIONS, true);
  const imagePath = `${dir}/outloop.bin`;
  await Deno.writeFile(imagePath, image);

  // The C baseline.
  const cc = await run("gcc", ["-O2", "-o", `${dir}/kvm_loop`, `${root}bench/kvm_loop.c`]);
  if (cc.code !== 0) throw new Error(`gcc failed:\n${cc.stderr}`);

  // dhyve's VM definition for the same guest.
  const toml = flatGuestToml(imagePath, `[vm]\nname = "exit-bench"\n[console]\ncom1 = "none"\n`);
  await Deno.writeTextFile(`${dir}/bench.toml`, toml);

  const cNs: number[] = [];
  const dNs: number[] = [];
  const startMs: number[] = [];
  console.log(
    `exit benchmark: ${ITERATIONS} port-I/O exits per run, ${RUNS} runs each, alternating`,
  );
  for (let i = 0; i < RUNS; i++) {
    const c = await run(`${dir}/kvm_loop`, [imagePath]);
    if (c.code !== 0) throw new Error(`kvm_loop failed: ${c.stderr}`);
    const cr = JSON.parse(c.stdout) as { io_exits: number; ns: number };
    cNs.push(cr.ns / cr.io_exits);

    const report = `${dir}/report${i}.json`;
    const spawnedAt = performance.timeOrigin + performance.now();
    const d = await run(Deno.execPath(), [
      "run",
      "-A",
      `${root}main.ts`,
      "up",
      "-q",
      `${dir}/bench.toml`,
      "--report",
      report,
    ]);
    if (d.code !== 1) {
      throw new Error(`dhyve exited with ${d.code} (expected 1, debug-exit 0):\n${d.stderr}`);
    }
    const r = JSON.parse(await Deno.readTextFile(report)) as {
      vcpus: { exits: { io: number }; runNs: number; firstRunWallMs: number }[];
    };
    const v = r.vcpus[0];
    dNs.push(v.runNs / v.exits.io);
    startMs.push(v.firstRunWallMs - spawnedAt);
    console.log(
      `  run ${i + 1}: C ${(cNs[i] / 1000).toFixed(2)} us/exit, dhyve ${
        (dNs[i] / 1000).toFixed(2)
      } us/exit, ` +
        `start to first KVM_RUN ${startMs[i].toFixed(1)} ms`,
    );
  }
  const ratio = median(dNs) / median(cNs);
  const start = median(startMs);
  console.log("");
  console.log(
    `port-I/O exit round trip: C ${(median(cNs) / 1000).toFixed(2)} us, dhyve ${
      (median(dNs) / 1000).toFixed(2)
    } us`,
  );
  console.log(
    `ratio dhyve/C: ${ratio.toFixed(3)} (target <= 1.10: ${ratio <= 1.1 ? "met" : "missed"})`,
  );
  console.log(
    `process start to first KVM_RUN: ${start.toFixed(1)} ms median (target < 150 ms: ${
      start < 150 ? "met" : "missed"
    })`,
  );
  await fallbackBench();
  // Part 4: the control socket's round trip (bench/ctl_bench.ts).
  await ctlBench(CTL_ROUND_TRIPS);
  // Part 5: peak RSS and start time by vCPU count (bench/scale_bench.ts).
  await scaleBench();
  // Part 6: virtio-blk throughput inside Linux (bench/virtio_bench.ts).
  if (!Deno.args.includes("--no-linux")) await virtioBench();
} finally {
  await Deno.remove(dir, { recursive: true });
}

/** Part 3: the cost of one fallback, as a ratio to the port-I/O exit. */
async function fallbackBench(): Promise<void> {
  const base = await buildGuest("pm/fallback_bench");
  const N = FALLBACK_ITERATIONS;
  const image = async (mode: number): Promise<string> => {
    const b = base.slice();
    const dv = new DataView(b.buffer);
    dv.setUint32(4, N, true); // loop count
    dv.setUint32(8, mode, true); // 1 out, 2 int3 + iret, 3 clac, 4 int $0x40 + iret
    const path = `${dir}/fallback${mode}.bin`;
    await Deno.writeFile(path, b);
    const toml = `${dir}/fallback${mode}.toml`;
    await Deno.writeTextFile(
      toml,
      flatGuestToml(path, `[vm]\nname = "fallback-bench"\n[console]\ncom1 = "none"\n`, "prot32"),
    );
    return toml;
  };
  const MODES = [1, 2, 3, 4];
  const tomls = await Promise.all(MODES.map(image));

  /** One dhyve run: ns per iteration, or a string saying why there is none. */
  const once = async (mode: number, i: number): Promise<number | string> => {
    const report = `${dir}/fallback-report-${mode}-${i}.json`;
    const d = await run(
      Deno.execPath(),
      ["run", "-A", `${root}main.ts`, "up", "-q", tomls[mode - 1], "--report", report],
    );
    if (d.code === 0xff) return "the guest has no SMAP";
    if (d.code !== 1) return `dhyve exited with ${d.code}: ${d.stderr.split("\n")[0]}`;
    const r = JSON.parse(await Deno.readTextFile(report)) as {
      vcpus: { exits: { fallback: number; io: number }; runNs: number }[];
    };
    const v = r.vcpus[0];
    if (mode > 1 && v.exits.fallback < N) {
      return `only ${v.exits.fallback} fallbacks: KVM ran the instruction itself`;
    }
    return v.runNs / N;
  };

  console.log("");
  console.log(
    `fallback benchmark: ${N} iterations per run, ${RUNS} runs each, alternating, flat 32-bit guest`,
  );
  const ns: (number[] | string)[] = MODES.map(() => []);
  for (let i = 0; i < RUNS; i++) {
    for (const mode of MODES) {
      if (typeof ns[mode - 1] === "string") continue;
      const r = await once(mode, i);
      if (typeof r === "string") ns[mode - 1] = r;
      else (ns[mode - 1] as number[]).push(r);
    }
  }
  const io = ns[0];
  if (typeof io === "string") {
    console.log(`  port-I/O baseline failed: ${io}`);
    return;
  }
  const ioUs = median(io) / 1000;
  console.log(`  port-I/O exit (out 0x80)          ${ioUs.toFixed(2)} us  1.00x`);
  const line = (label: string, xs: number[] | string, fallbacks: number) => {
    if (typeof xs === "string") {
      console.log(`  ${label.padEnd(34)}skipped: ${xs}`);
      return;
    }
    const us = median(xs) / 1000;
    const per = us / fallbacks;
    console.log(
      `  ${label.padEnd(34)}${us.toFixed(2)} us  ${(us / ioUs).toFixed(2)}x` +
        (fallbacks > 1
          ? `  (${per.toFixed(2)} us, ${(per / ioUs).toFixed(2)}x per fallback)`
          : "") +
        `  (target <= 2x per fallback: ${per / ioUs <= 2 ? "met" : "missed"})`,
    );
  };
  line("int3 round trip (int3 + iret)", ns[1], 2);
  line("clac", ns[2], 1);
  line("int $0x40 round trip (int + iret)", ns[3], 2);
}

/**
 * The control socket's latency: a `stats` request and its answer over one
 * connection (client start excluded), against a running VM (the
 * tests/guests/lm/ctl guest, which polls CMOS and so keeps its vCPU busy
 * with port-I/O exits), and a `regs.get`, which goes through the vCPU's own
 * thread. Median and 99th percentile of many round trips; the target is a
 * `stats` median under 5 ms. Part of `deno task bench` (bench/exit_bench.ts
 * runs it last); alone: `deno run -A bench/ctl_bench.ts [--round-trips N]`.
 *
 * @module
 */
import { buildGuest } from "../tests/guests/build.ts";
import { flatGuestToml } from "../tests/helpers.ts";
import { CtlClient } from "../lib/ctl/client.ts";

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

/** Runs the benchmark and prints its lines. */
export async function ctlBench(roundTrips = 1000): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dhyve-ctl-bench-" });
  const main = new URL("../main.ts", import.meta.url).pathname;
  let child: Deno.ChildProcess | undefined;
  let client: CtlClient | undefined;
  try {
    const image = `${dir}/guest.bin`;
    await Deno.writeFile(image, await buildGuest("lm/ctl"));
    const toml = `${dir}/vm.toml`;
    await Deno.writeTextFile(toml, `[vm]\nname = "bench"\n` + flatGuestToml(image, "", "long64"));
    const socket = `${dir}/bench.sock`;
    child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", main, "up", "-q", "--ctl", socket, toml],
      stdin: "null",
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        client = await CtlClient.connect(socket);
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const measure = async (cmd: string, args: Record<string, unknown>) => {
      for (let i = 0; i < 50; i++) await client!.request(cmd, args); // warm up
      const ms: number[] = [];
      for (let i = 0; i < roundTrips; i++) {
        const t0 = performance.now();
        await client!.request(cmd, args);
        ms.push(performance.now() - t0);
      }
      return ms;
    };
    const stats = await measure("stats", {});
    const regs = await measure("regs.get", { cpu: 0, names: ["rip"] });
    console.log("");
    console.log(`ctl benchmark: ${roundTrips} round trips each over one connection, guest running`);
    const med = percentile(stats, 0.5);
    console.log(
      `  stats round trip      median ${med.toFixed(3)} ms, p99 ${
        percentile(stats, 0.99).toFixed(3)
      } ms (target median < 5 ms: ${med < 5 ? "met" : "missed"})`,
    );
    console.log(
      `  regs.get (vCPU call)  median ${percentile(regs, 0.5).toFixed(3)} ms, p99 ${
        percentile(regs, 0.99).toFixed(3)
      } ms`,
    );
    await client.request("poweroff");
    await child.status;
    child = undefined;
  } finally {
    client?.close();
    if (child) {
      child.kill("SIGKILL");
      await child.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--round-trips");
  await ctlBench(i >= 0 ? Number(Deno.args[i + 1]) : 1000);
}

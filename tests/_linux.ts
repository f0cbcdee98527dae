/**
 * Running configs/linux.toml-like VMs in the Linux tests: one `dhyve up`
 * with a time limit, its console and timings, and the parser of the
 * "dhyve-init: KEY: VALUE" lines of configs/linux-init.sh.
 *
 * @module
 */
import { MAIN, testEnv } from "./helpers.ts";

/** A file that gets a copy of the console as it comes (DHYVE_LINUX_CONSOLE), to follow a boot. */
const CONSOLE_COPY = Deno.env.get("DHYVE_LINUX_CONSOLE");

/** The boot's time limit (DHYVE_LINUX_TIMEOUT_S, default 1500 s). */
export const TIMEOUT_S = Number(Deno.env.get("DHYVE_LINUX_TIMEOUT_S") ?? 1500);

/** One `dhyve-init: KEY: VALUE` line of the init script. */
const LINE = /^dhyve-init: ([\w.]+)(?:: (.*))?$/;

/** Parses init's lines into key -> value (the first value of a repeated key wins, `pci` collects). */
export function parseInitLines(console: string): { facts: Map<string, string>; pci: string[] } {
  const facts = new Map<string, string>();
  const pci: string[] = [];
  for (const raw of console.split(/\r?\n/)) {
    const m = raw.trim().match(LINE);
    if (!m) continue;
    const [, key, value = ""] = m;
    if (key === "pci") pci.push(value);
    else if (!facts.has(key)) facts.set(key, value);
  }
  return { facts, pci };
}

/** What one run of a Linux VM gave. */
export interface LinuxRun {
  readonly status: Deno.CommandStatus;
  readonly stdout: string;
  readonly stderr: string;
  /** When init's first line appeared (ms after the start), if it did. */
  readonly firstInitMs: number | undefined;
  readonly totalMs: number;
}

/**
 * Runs `dhyve up toml --report report` (behind `prefix`, a command such as
 * `ip netns exec NS`, when given) until it exits. At the time limit:
 * SIGTERM twice (dhyve forces a poweroff and still writes its report),
 * SIGKILL if that is not enough. `onStdout` sees the console as it grows.
 */
export async function runLinux(
  toml: string,
  report: string,
  opts: { prefix?: readonly string[]; onStdout?: (all: string) => void } = {},
): Promise<LinuxRun> {
  const t0 = performance.now();
  const argv = [
    ...(opts.prefix ?? []),
    Deno.execPath(),
    "run",
    "-A",
    MAIN,
    "up",
    toml,
    "--report",
    report,
  ];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: testEnv(),
  }).spawn();
  const timers: ReturnType<typeof setTimeout>[] = [];
  const kill = (sig: Deno.Signal) => {
    try {
      child.kill(sig);
    } catch { /* already gone */ }
  };
  timers.push(setTimeout(() => {
    kill("SIGTERM");
    timers.push(setTimeout(() => kill("SIGTERM"), 1000));
    timers.push(setTimeout(() => kill("SIGKILL"), 15_000));
  }, TIMEOUT_S * 1000));
  let stdout = "";
  let firstInitMs: number | undefined;
  const dec = new TextDecoder();
  const readOut = (async () => {
    for await (const chunk of child.stdout) {
      stdout += dec.decode(chunk, { stream: true });
      if (firstInitMs === undefined && stdout.includes("dhyve-init: ")) {
        firstInitMs = performance.now() - t0;
      }
      opts.onStdout?.(stdout);
      if (CONSOLE_COPY) Deno.writeFileSync(CONSOLE_COPY, chunk, { append: true });
    }
  })();
  const errText = new Response(child.stderr).text();
  const status = await child.status;
  timers.forEach((t) => clearTimeout(t));
  await readOut;
  const stderr = await errText;
  return { status, stdout, stderr, firstInitMs, totalMs: performance.now() - t0 };
}

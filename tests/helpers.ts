/**
 * Helpers for the integration tests: build a guest, write a VM definition
 * into a temporary directory and run `main.ts up` on it as a subprocess.
 *
 * @module
 */
import { buildGuest, type GuestName } from "./guests/build.ts";

const ROOT = new URL("..", import.meta.url);
/** dhyve's CLI entry point. */
export const MAIN: string = new URL("main.ts", ROOT).pathname;
/** The demo VM definition (configs/demo.toml). */
export const DEMO: string = new URL("configs/demo.toml", ROOT).pathname;

/**
 * A flat test guest: real mode (tests/guests/rm), 32-bit protected mode
 * (tests/guests/pm) or 64-bit long mode (tests/guests/lm).
 */
export type FlatGuestName = `rm/${string}` | `pm/${string}` | `lm/${string}`;

/** The raw entry mode of a flat test guest: `long64` for lm/, `prot32` for pm/, else `real16`. */
export function flatGuestEntry(name: FlatGuestName): "real16" | "prot32" | "long64" {
  return name.startsWith("lm/") ? "long64" : name.startsWith("pm/") ? "prot32" : "real16";
}

/** Machine options of a flat test guest's VM definition. */
export interface FlatVmOptions {
  /** vCPUs (`[cpu] cpus`); omitted: one, and `extra` may then hold its own `[cpu]` table. */
  readonly cpus?: number;
  /** `[memory] size`, "16M" by default. */
  readonly memory?: string;
  /** Replaces the guest's built bytes (a patched copy, say). */
  readonly image?: Uint8Array;
}

/** What a dhyve run produced. */
export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** A scratch directory for one test; removed by `close()`. */
export class Scratch {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Creates the directory. */
  static async create(): Promise<Scratch> {
    return new Scratch(await Deno.makeTempDir({ prefix: "dhyve-it-" }));
  }

  /** Writes a file and returns its path. */
  async write(name: string, content: string | Uint8Array): Promise<string> {
    const path = `${this.dir}/${name}`;
    if (typeof content === "string") await Deno.writeTextFile(path, content);
    else await Deno.writeFile(path, content);
    return path;
  }

  /**
   * Writes a flat test guest (`rm/<name>`, `pm/<name>` or `lm/<name>`, see
   * {@link runFlatGuest}) and its VM definition ({@link flatGuestToml} with
   * `extra` and `opts`); returns the definition's path.
   */
  async flatVm(name: FlatGuestName, extra = "", opts: FlatVmOptions = {}): Promise<string> {
    const image = await this.write("guest.bin", opts.image ?? await guestBytes(name));
    return await this.write("vm.toml", flatGuestToml(image, extra, flatGuestEntry(name), opts));
  }

  /** Removes the directory. */
  async close(): Promise<void> {
    await Deno.remove(this.dir, { recursive: true });
  }
}

const cache = new Map<string, Uint8Array>();

/** Builds a guest once per test process. */
export async function guestBytes(name: GuestName): Promise<Uint8Array> {
  let b = cache.get(name);
  if (!b) cache.set(name, b = await buildGuest(name));
  return b;
}

/**
 * The runtime directory test VMs get (XDG_RUNTIME_DIR): one per test process,
 * so that their control sockets (lib/ctl/paths.ts) never meet a VM of the
 * same name that a user or another test run has up on this machine.
 */
export const TEST_RUNTIME_DIR: string = Deno.makeTempDirSync({ prefix: "dhyve-test-run-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(TEST_RUNTIME_DIR, { recursive: true });
  } catch { /* already gone */ }
});

/** The environment of a dhyve the tests spawn: colours off, the test runtime directory. */
export function testEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { NO_COLOR: "1", XDG_RUNTIME_DIR: TEST_RUNTIME_DIR, ...extra };
}

/** Spawns `deno run -A main.ts <args>` with stdout and stderr piped and colours off. */
export function spawnDhyve(
  args: string[],
  stdin: "null" | "piped" = "null",
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdin,
    stdout: "piped",
    stderr: "piped",
    env: testEnv(),
  }).spawn();
}

/** Runs `deno run -A main.ts <args>` with optional stdin; kills it after `timeoutMs`. */
export async function dhyve(
  args: string[],
  opts: { stdin?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  const t0 = performance.now();
  const child = spawnDhyve(args, opts.stdin === undefined ? "null" : "piped");
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
  try {
    const out = await child.output();
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
      ms: performance.now() - t0,
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A raw VM definition for a flat guest at 0x10000 (real16, prot32 or long64
 * entry), with the debug-exit port at 0xf4 and `extra` appended.
 */
export function flatGuestToml(
  image: string,
  extra = "",
  entry: "real16" | "prot32" | "long64" = "real16",
  opts: Pick<FlatVmOptions, "cpus" | "memory"> = {},
): string {
  const cpu = opts.cpus === undefined ? "" : `[cpu]\ncpus = ${opts.cpus}\n`;
  return `[memory]
size = "${opts.memory ?? "16M"}"
${cpu}[boot]
kind = "raw"
image = "${image}"
address = 0x10000
entry = "${entry}"
[[device]]
type = "debug-exit"
port = 0xf4
size = 1
${extra}`;
}

/**
 * Boots a flat test guest and returns the run: `rm/<name>` (tests/guests/rm,
 * real mode), `pm/<name>` (tests/guests/pm, 32-bit protected mode) or
 * `lm/<name>` (tests/guests/lm, 64-bit long mode).
 */
export async function runFlatGuest(
  name: FlatGuestName,
  opts: FlatVmOptions & { extra?: string; stdin?: string; timeoutMs?: number; args?: string[] } =
    {},
): Promise<RunResult> {
  const s = await Scratch.create();
  try {
    const toml = await s.flatVm(name, opts.extra, opts);
    return await dhyve(["up", ...(opts.args ?? []), toml], opts);
  } finally {
    await s.close();
  }
}

/** Parses the probe's `key: value` report lines. */
export function probeReport(stdout: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const i = line.indexOf(": ");
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 2));
  }
  return m;
}

/** `p`'s value, or undefined when it has not settled within `ms` (no timer is left behind). */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), ms));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Slow tests (a Linux boot, the decoder over a whole kernel) run only when
 * DHYVE_SLOW_TESTS=1: opt-in for a local `deno task test`, always on in
 * `.ci/run`. Use as `Deno.test({ name, ignore: !SLOW_TESTS, fn })`.
 */
export const SLOW_TESTS: boolean = Deno.env.get("DHYVE_SLOW_TESTS") === "1";

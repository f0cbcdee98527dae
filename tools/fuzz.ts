/**
 * `deno task fuzz`: dhyve's guest-side device fuzzer.
 *
 * The guest (tests/guests/lm/fuzz.S) issues a seeded stream of random port
 * and MMIO accesses of every width to every device window dhyve models
 * (UARTs, RTC/CMOS, i8042, ACPI PM block, POST, PCI configuration through
 * mechanism #1 and ECAM, the PCI test device's BARs, MSI-X table and PBA,
 * the HPET, unclaimed holes), with and without interrupts, on 1 or 2 vCPUs.
 * This harness builds the guest, patches its header per run, boots it with
 * `main.ts up` once per seed and fails on any dhyve-side error: an exit
 * status the guest did not ask for (4 above all: an exception in a device
 * model ends the VM with it), an error logged on stderr, a hang (a run past
 * its time limit), a guest that saw an exception, a guest whose operation
 * stream differs from the replay here (dhyve corrupted its memory or
 * registers), or a growing peak RSS.
 *
 * The operation stream is a pure function of the seed: {@linkcode replay}
 * computes it from the windows table it reads out of the guest binary, and
 * every completed run's hash is checked against it. A failing seed is cut
 * down to the shortest failing prefix (binary search on the guest's "stop
 * after op N" field) and printed as a list of operations with the command
 * that reproduces it.
 *
 * ```
 * deno run -A tools/fuzz.ts [--seeds N] [--ops N] [--mode NAME|all] [--seed S]
 *   [--first-seed S] [--jobs J] [--timeout SEC] [--raw-shift K] [--no-minimize]
 *   [--list] [--quiet]
 * ```
 *
 * Exit status 0 when no run failed, 1 otherwise, 2 for bad arguments.
 *
 * @module
 */
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { buildGuest } from "../tests/guests/build.ts";

const ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
const MAIN = `${ROOT}/main.ts`;

// ---------------------------------------------------------------------------
// The guest's binary interface (tests/guests/lm/fuzz.S).

/**
 * The header of the `lm/fuzz` guest: the magic at `magicOffset`, then
 * little-endian 64-bit words: seed, operations per vCPU, flags
 * ({@linkcode FUZZ_FLAGS}), stop (each vCPU runs at most this many
 * operations; 0: no limit), raw shift (a port write skips the VM-ending
 * fix-ups with probability 2^-k; 0: never), and where the windows table
 * lies (byte offset, byte size, entry size).
 */
export const FUZZ_GUEST_HEADER = Object.freeze({
  magic: "DHYVEFZ1",
  magicOffset: 8,
  seedOffset: 16,
  opsOffset: 24,
  flagsOffset: 32,
  stopOffset: 40,
  rawShiftOffset: 48,
  tableOffsetOffset: 56,
  tableSizeOffset: 64,
  entrySizeOffset: 72,
});

/** Header flags: bit 0 interrupts enabled, bit 1 the AP takes part (two vCPUs). */
export const FUZZ_FLAGS = Object.freeze({ irq: 1, smp: 2 });

/** The guest's exit values through the debug-exit port (status = value * 2 + 1). */
export const FUZZ_EXIT = Object.freeze({
  /** All operations done, report printed: status 33. */
  done: 0x10,
  /** The guest took an exception: status 35. */
  exception: 0x11,
  /** The AP never came up: status 39. */
  apTimeout: 0x13,
});

/** Window kinds of the guest's table. */
export const WINDOW_KINDS = ["port", "mmio", "bar", "ecam", "cfg1", "restore"] as const;
/** One window kind. */
export type WindowKind = typeof WINDOW_KINDS[number];

/** A window of the guest's table (see fuzz.S `windows`). */
export interface FuzzWindow {
  /** Index in the table (folded into the operation hash). */
  readonly index: number;
  readonly name: string;
  readonly kind: WindowKind;
  /**
   * Port windows: bit 0 = hold the PCI configuration lock, bit 1 = string
   * I/O too. BAR windows: the BAR index.
   */
  readonly flags: number;
  /** Selection weight out of 256. */
  readonly weight: number;
  /** Cumulative weight: chosen when `selector < cumulative`. */
  readonly cumulative: number;
  /** The widths drawn from (index = r1 bits 8-9). */
  readonly widths: readonly [number, number, number, number];
  /** Port or MMIO base; for BAR windows the offset inside the BAR. */
  readonly base: number;
  /** Offset mask. */
  readonly mask: number;
}

/** Reads the windows table out of a built `lm/fuzz` image. */
export function parseWindows(image: Uint8Array): FuzzWindow[] {
  const h = FUZZ_GUEST_HEADER;
  const magic = new TextDecoder().decode(image.subarray(h.magicOffset, h.magicOffset + 8));
  if (magic !== h.magic) throw new Error(`not the fuzz guest: magic ${JSON.stringify(magic)}`);
  const v = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const at = Number(v.getBigUint64(h.tableOffsetOffset, true));
  const size = Number(v.getBigUint64(h.tableSizeOffset, true));
  const entry = Number(v.getBigUint64(h.entrySizeOffset, true));
  if (entry !== 24 || size % entry !== 0 || at + size > image.length) {
    throw new Error(`bad windows table: offset ${at}, size ${size}, entry ${entry}`);
  }
  const out: FuzzWindow[] = [];
  let prev = 0;
  for (let i = 0; i < size / entry; i++) {
    const o = at + i * entry;
    const kind = WINDOW_KINDS[image[o]];
    if (!kind) throw new Error(`window ${i}: unknown kind ${image[o]}`);
    const cumulative = v.getUint16(o + 2, true);
    const nameBytes = image.subarray(o + 16, o + 24);
    const end = nameBytes.indexOf(0);
    out.push({
      index: i,
      name: new TextDecoder().decode(end < 0 ? nameBytes : nameBytes.subarray(0, end)),
      kind,
      flags: image[o + 1],
      weight: cumulative - prev,
      cumulative,
      widths: [image[o + 4], image[o + 5], image[o + 6], image[o + 7]],
      base: v.getUint32(o + 8, true),
      mask: v.getUint32(o + 12, true),
    });
    prev = cumulative;
  }
  if (prev !== 256) throw new Error(`window weights add up to ${prev}, not 256`);
  return out;
}

/** Guest header values to patch. */
export interface GuestParams {
  readonly seed: bigint | number;
  /** Operations per vCPU. */
  readonly ops: number;
  readonly flags: number;
  /** Each vCPU stops after this many operations (0: no limit). */
  readonly stop?: number;
  /** Raw shift (0: every port write is fixed up). */
  readonly rawShift?: number;
}

/** A copy of `image` with its header set to `p`. */
export function patchGuest(image: Uint8Array, p: GuestParams): Uint8Array {
  const h = FUZZ_GUEST_HEADER;
  const out = image.slice();
  const v = new DataView(out.buffer);
  v.setBigUint64(h.seedOffset, BigInt.asUintN(64, BigInt(p.seed)), true);
  v.setBigUint64(h.opsOffset, BigInt(p.ops), true);
  v.setBigUint64(h.flagsOffset, BigInt(p.flags), true);
  v.setBigUint64(h.stopOffset, BigInt(p.stop ?? 0), true);
  v.setBigUint64(h.rawShiftOffset, BigInt(p.rawShift ?? 0), true);
  return out;
}

// ---------------------------------------------------------------------------
// The PRNG and the replay.

const M64 = (1n << 64n) - 1n;
const GAMMA = 0x9e3779b97f4a7c15n;
const MIX1 = 0xbf58476d1ce4e5b9n;
const MIX2 = 0x94d049bb133111ebn;
const CPU_STRIDE = 0xd1b54a32d192ed03n;
const FNV_BASIS = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;

/**
 * splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
 * generators", OOPSLA 2014), as the guest runs it.
 */
export class SplitMix64 {
  #state: bigint;

  /** Starts at `seed` (taken modulo 2^64). */
  constructor(seed: bigint) {
    this.#state = BigInt.asUintN(64, seed);
  }

  /** The next 64-bit output. */
  next(): bigint {
    this.#state = (this.#state + GAMMA) & M64;
    let z = this.#state;
    z = ((z ^ (z >> 30n)) * MIX1) & M64;
    z = ((z ^ (z >> 27n)) * MIX2) & M64;
    return z ^ (z >> 31n);
  }
}

/** The PRNG stream of vCPU `cpu` for `seed`. */
export function cpuStream(seed: bigint | number, cpu: number): SplitMix64 {
  return new SplitMix64(BigInt(seed) + BigInt(cpu) * CPU_STRIDE);
}

/** What the guest prints as `prng=`: the xor of vCPU 0's first 16 outputs. */
export function prngCheck(seed: bigint | number): bigint {
  const r = cpuStream(seed, 0);
  let x = 0n;
  for (let i = 0; i < 16; i++) x ^= r.next();
  return x;
}

/** Message data bytes (fuzz.S data_positions): vector at p, delivery mode at p + 1. */
const DATA_POSITIONS = [
  0x008,
  0x018,
  0x028,
  0x038,
  0x04c,
  0x110,
  0x130,
  0x150,
  0x170,
  0x190,
  0x1b0,
  0x1d0,
  0x1f0,
];
const FIXTAB = new Uint8Array(4096);
for (const p of DATA_POSITIONS) {
  FIXTAB[p] = 1;
  FIXTAB[p + 1] = 2;
}

/** The guest's fix_msi: message data bytes get a vector >= 32 and fixed delivery. */
function fixMsi(value: bigint, pos: number, width: number): bigint {
  const p = pos & 0xfff;
  if (p > 0x1f1) return value;
  for (let i = 0; i < width; i++) {
    const t = FIXTAB[p + i];
    const shift = BigInt(8 * i);
    if (t === 1) value |= 0x20n << shift;
    else if (t === 2) value &= ~(0x07n << shift) & M64;
  }
  return value;
}

/** What a port write may do if not fixed up. */
type Ending = "reset" | "poweroff";

/** The guest's fix_port; `ends` says what the unfixed write may do when it differs. */
function fixPort(
  port: number,
  value: bigint,
  width: number,
  raw: boolean,
): { value: bigint; ends?: Ending } {
  if (port >= 0xcfc && port <= 0xcff) return { value: fixMsi(value, 0x4c + port - 0xcfc, width) };
  let fixed = value;
  let ends: Ending = "reset";
  if (port === 0xcf9) fixed = value & ~4n; // RST_CNT.RST_CPU
  else if (port === 0x64 && (value & 0xf1n) === 0xf0n) fixed = value | 1n; // pulse reset
  else if (port === 0x60) fixed = value | 1n; // output port bit 0
  else if (port === 0x404) [fixed, ends] = [value & ~0x2000n, "poweroff"]; // SLP_EN
  else if (port === 0x405) [fixed, ends] = [value & ~0x20n, "poweroff"];
  if (fixed === value) return { value };
  return raw ? { value, ends } : { value: fixed };
}

const ECAM = 0xe0000000;
const DEVTAB = [0, 3, 31, 3];
const WIDTH_MASK: Record<number, bigint> = { 1: 0xffn, 2: 0xffffn, 4: 0xffffffffn, 8: M64 };

/** One operation of a replayed stream. */
export interface FuzzOp {
  /** 1-based index in its vCPU's stream. */
  readonly n: number;
  readonly cpu: number;
  readonly window: FuzzWindow;
  readonly width: number;
  readonly write: boolean;
  /** The VM-ending fix-ups were skipped. */
  readonly raw: boolean;
  /** Offset in the window; for ECAM and mechanism #1 bus << 20 | dev << 15 | fn << 12 | reg. */
  readonly offset: number;
  /** The port, or the MMIO address (BARs at `bars`). */
  readonly address: number;
  /** The value written (after the fix-ups); 0 for reads. */
  readonly value: bigint;
  /** The value before the fix-ups, when they changed it. */
  readonly unfixed?: bigint;
  /** Mechanism #1: the CONFIG_ADDRESS value written first. */
  readonly cf8?: number;
  /** String I/O (rep outs/ins): the element count. */
  readonly count?: number;
  /** A raw write that may end the VM (reset or poweroff) on purpose. */
  readonly ends?: Ending;
}

/** What {@linkcode replay} needs. */
export interface ReplayOptions {
  readonly seed: bigint | number;
  readonly cpu: number;
  /** Operations to replay. */
  readonly ops: number;
  readonly rawShift?: number;
  /** The test device's BAR0 and BAR1 addresses (for printing only). */
  readonly bars?: readonly [number, number];
}

/** A replayed stream: its operations and the hash the guest prints for it. */
export interface Replay {
  readonly ops: FuzzOp[];
  readonly hash: bigint;
}

/** Replays vCPU `o.cpu`'s operation stream exactly as the guest issues it. */
export function replay(windows: readonly FuzzWindow[], o: ReplayOptions): Replay {
  const sel = new Uint8Array(256);
  for (let s = 0, w = 0; s < 256; s++) {
    while (s >= windows[w].cumulative) w++;
    sel[s] = w;
  }
  const k = Math.min(o.rawShift ?? 0, 16);
  const rawMask = k === 0 ? 0n : ((1n << BigInt(k)) - 1n) << 15n;
  const bars = o.bars ?? [0xc0000000, 0xc0001000];
  const rng = cpuStream(o.seed, o.cpu);
  let h = FNV_BASIS;
  const hash = (x: bigint) => h = ((h ^ x) * FNV_PRIME) & M64;
  const ops: FuzzOp[] = [];
  for (let n = 1; n <= o.ops; n++) {
    const r1 = rng.next();
    const lo = Number(r1 & 0xffffffffn);
    const win = windows[sel[lo & 0xff]];
    const width = win.widths[(lo >>> 8) & 3];
    const write = (lo & 0x400) !== 0;
    const raw = rawMask !== 0n && (r1 & rawMask) === 0n;
    const r2 = rng.next();
    let value: bigint;
    switch ((lo >>> 11) & 7) {
      case 0:
        value = 0n;
        break;
      case 1:
        value = M64;
        break;
      case 2:
        value = r2 & 0xfn;
        break;
      case 3:
        value = (1n << (r2 & 63n)) & M64;
        break;
      case 4:
        value = r2 & 0xffn;
        break;
      default:
        value = r2;
    }
    value &= WIDTH_MASK[width];
    const align = (lo & 0x4000) !== 0;
    let offset = Number((r1 >> 32n) & BigInt(win.mask));
    if (align) offset &= ~(width - 1);
    let address = 0;
    let cf8: number | undefined;
    let count: number | undefined;
    let ends: Ending | undefined;
    const original = value;
    if (win.kind === "ecam" || win.kind === "cfg1") {
      const r3 = rng.next();
      const l3 = Number(r3 & 0xffffffffn);
      let reg = l3 & 0xfff;
      if (((l3 >>> 12) & 3) !== 3) reg &= 0xff;
      const fn = ((l3 >>> 17) & 3) === 3 ? (l3 >>> 14) & 7 : 0;
      const dev = ((l3 >>> 19) & 3) !== 3 ? DEVTAB[(l3 >>> 21) & 3] : (l3 >>> 23) & 31;
      const bus = Number((r3 >> 28n) & 7n) === 7 ? Number((r3 >> 31n) & 0xffn) : 0;
      let a = (bus << 20 | dev << 15 | fn << 12 | reg) >>> 0;
      if (align) a &= ~(width - 1);
      if (win.kind === "ecam") {
        offset = a;
        address = ECAM + a;
        if (write) value = fixMsi(value, a, width);
      } else {
        cf8 = Number(r3 >> 60n) === 7
          ? Number((r3 >> 24n) & 0xffffffffn)
          : (0x80000000 | ((a >>> 4) & 0xffff00) | (a & 0xfc)) >>> 0;
        hash(BigInt(cf8));
        address = 0xcfc + offset;
        if (write) value = fixMsi(value, (cf8 & 0xfc) + offset, width);
      }
    } else if (win.kind === "port") {
      address = win.base + offset;
      if ((win.flags & 2) !== 0 && r1 >> 63n === 1n) {
        count = Number((r1 >> 56n) & 15n) + 1;
        hash(BigInt(count) | 1n << 32n);
      } else if (write) ({ value, ends } = fixPort(address, value, width, raw));
    } else if (win.kind === "mmio" || win.kind === "bar") {
      const base = win.kind === "bar" ? bars[win.flags] + win.base : win.base;
      address = base + offset;
      if (write) value = fixMsi(value, address, width);
    }
    hash(
      BigInt(offset) << 16n | BigInt(win.index) | BigInt(width << 8) |
        (write ? 1n << 12n : 0n) | (raw ? 1n << 13n : 0n),
    );
    if (write) hash(value);
    ops.push({
      n,
      cpu: o.cpu,
      window: win,
      width,
      write,
      raw,
      offset,
      address,
      value: write ? value : 0n,
      ...(write && value !== original ? { unfixed: original } : {}),
      ...(cf8 !== undefined ? { cf8 } : {}),
      ...(count !== undefined ? { count } : {}),
      ...(ends ? { ends } : {}),
    });
  }
  return { ops, hash: h };
}

const hex = (v: number | bigint, pad = 0) => `0x${v.toString(16).padStart(pad, "0")}`;

function bdf(a: number): string {
  const bus = (a >>> 20) & 0xff, dev = (a >>> 15) & 31, fn = (a >>> 12) & 7;
  return `${bus.toString(16).padStart(2, "0")}:${dev.toString(16).padStart(2, "0")}.${fn}`;
}

/** One line for an operation: `#    17 cpu0 ecam     w4 write 00:03.0+0x004 (0xe0018004) = 0x6`. */
export function formatOp(op: FuzzOp): string {
  const w = op.window;
  let where: string;
  switch (w.kind) {
    case "port":
      where = op.count === undefined
        ? `port ${hex(op.address, 3)}`
        : `port ${hex(op.address, 3)} x${op.count} (rep ${op.write ? "outs" : "ins"})`;
      break;
    case "mmio":
      where = `mmio ${hex(op.address, 8)}`;
      break;
    case "bar":
      where = `bar${w.flags}+${hex(w.base + op.offset, 3)} (${hex(op.address, 8)})`;
      break;
    case "ecam":
      where = `${bdf(op.offset)}+${hex(op.offset & 0xfff, 3)} (${hex(op.address, 8)})`;
      break;
    case "cfg1":
      where = `cf8=${hex(op.cf8 ?? 0, 8)} port ${hex(op.address, 3)}`;
      break;
    case "restore":
      return `#${String(op.n).padStart(6)} cpu${op.cpu} ${
        w.name.padEnd(8)
      } test device BARs and command back to their boot values`;
  }
  let text = `#${String(op.n).padStart(6)} cpu${op.cpu} ${w.name.padEnd(8)} w${op.width} ${
    op.write ? "write" : "read "
  } ${where}`;
  if (op.write) text += ` = ${hex(op.value)}`;
  if (op.unfixed !== undefined) text += ` (fixed up from ${hex(op.unfixed)})`;
  if (op.raw && op.write) text += " [raw]";
  if (op.ends) text += op.ends === "reset" ? " [may reset the VM]" : " [may power the VM off]";
  return text;
}

// ---------------------------------------------------------------------------
// Modes and runs.

/** A fuzzing mode: vCPUs and header flags. */
export interface FuzzMode {
  readonly name: string;
  readonly cpus: 1 | 2;
  readonly flags: number;
}

/** The modes: {1, 2} vCPUs x {interrupts off, on}. */
export const FUZZ_MODES: readonly FuzzMode[] = Object.freeze([
  { name: "1cpu", cpus: 1, flags: 0 },
  { name: "1cpu-irq", cpus: 1, flags: FUZZ_FLAGS.irq },
  { name: "2cpu", cpus: 2, flags: FUZZ_FLAGS.smp },
  { name: "2cpu-irq", cpus: 2, flags: FUZZ_FLAGS.smp | FUZZ_FLAGS.irq },
]);

/**
 * The VM definition of a fuzz run: 16 MiB, `cpus` vCPUs, the raw
 * `guest.bin` next to it entered in long mode at 0x10000, both UARTs to
 * files there (`com1.log`, `com2.log`: the stream writes junk to them), the
 * debug-exit port at 0xf4 and the PCI test device in slot 3.
 */
export function fuzzToml(cpus: number): string {
  return `[vm]
name = "fuzz"
[memory]
size = "16M"
[cpu]
cpus = ${cpus}
[boot]
kind = "raw"
image = "guest.bin"
address = 0x10000
entry = "long64"
[console]
com1 = { file = "com1.log" }
com2 = { file = "com2.log" }
[[device]]
type = "debug-exit"
port = 0xf4
size = 1
[[pci]]
slot = 3
type = "testdev"
`;
}

/** How a run ended. `completed`, `reset` and `poweroff` are fine; the rest are failures. */
export type Outcome =
  | "completed"
  | "reset"
  | "poweroff"
  | "dhyve-error"
  | "hang"
  | "unrequested-reset"
  | "unrequested-poweroff"
  | "halt"
  | "triple-fault"
  | "guest-exception"
  | "ap-timeout"
  | "replay-mismatch"
  | "log-error"
  | "rss-growth"
  | "bad-status";

/** Whether an outcome is a failure. */
export function isFailure(o: Outcome): boolean {
  return o !== "completed" && o !== "reset" && o !== "poweroff";
}

/** One run's parameters. */
export interface RunParams {
  readonly image: Uint8Array;
  readonly windows: readonly FuzzWindow[];
  readonly mode: FuzzMode;
  readonly seed: number;
  /** Operations per vCPU. */
  readonly ops: number;
  readonly stop?: number;
  readonly rawShift: number;
  readonly timeoutMs: number;
  /** Keep the run directory (for a reproduction). */
  readonly keep?: boolean;
}

/** What one run gave. */
export interface RunResult {
  readonly outcome: Outcome;
  /** Words on what happened (the exit message, the guest's exception line, ...). */
  readonly detail: string;
  readonly status: number | null;
  /**
   * Operations the guest reports (all vCPUs); for a reset or poweroff, an
   * estimate: up to the first operation of the stream that asks for it.
   */
  readonly ops: number;
  readonly irqs: number;
  readonly unclaimed: number;
  /** Peak RSS of the dhyve process, bytes (VmHWM, polled). */
  readonly rssBytes: number;
  readonly ms: number;
  /** The run directory when kept. */
  readonly dir?: string;
}

async function peakRss(pid: number): Promise<number | undefined> {
  try {
    const s = await Deno.readTextFile(`/proc/${pid}/status`);
    const m = /^VmHWM:\s+(\d+) kB/m.exec(s);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

const DONE_RE =
  /fuzz done ops=(\d+) o0=(\d+) h0=0x([0-9a-f]+)(?: o1=(\d+) h1=0x([0-9a-f]+))? irqs=(\d+) nmis=(\d+)/g;
const BOOT_RE =
  /fuzz boot seed=0x[0-9a-f]+ ops=\d+ flags=0x[0-9a-f]+ bar0=0x([0-9a-f]+) bar1=0x([0-9a-f]+) prng=0x([0-9a-f]+)/;

/** The guest's COM1 log, decoded byte for byte (it holds binary junk from the stream). */
function latin1(bytes: Uint8Array): string {
  return new TextDecoder("latin1").decode(bytes);
}

/** Boots one fuzz run and classifies it. */
export async function runFuzz(p: RunParams): Promise<RunResult> {
  const dir = await Deno.makeTempDir({ prefix: `dhyve-fuzz-${p.mode.name}-${p.seed}-` });
  const t0 = performance.now();
  try {
    const image = patchGuest(p.image, {
      seed: p.seed,
      ops: p.ops,
      flags: p.mode.flags,
      stop: p.stop,
      rawShift: p.rawShift,
    });
    await Deno.writeFile(`${dir}/guest.bin`, image);
    await Deno.writeTextFile(`${dir}/vm.toml`, fuzzToml(p.mode.cpus));
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        "up",
        "-q",
        "--no-ctl",
        "--report",
        `${dir}/report.json`,
        `${dir}/vm.toml`,
      ],
      cwd: dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", XDG_RUNTIME_DIR: dir },
    }).spawn();
    let rss = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const r = await peakRss(child.pid);
        if (r !== undefined) rss = Math.max(rss, r);
        await new Promise((res) => setTimeout(res, 50));
      }
    })();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, p.timeoutMs);
    const out = await child.output();
    clearTimeout(timer);
    polling = false;
    await poller;
    const ms = performance.now() - t0;
    const stderr = new TextDecoder().decode(out.stderr).trim();
    const stdout = new TextDecoder().decode(out.stdout).trim();
    const com1 = latin1(await Deno.readFile(`${dir}/com1.log`).catch(() => new Uint8Array()));
    let report: {
      exit?: { kind?: string; status?: number; message?: string };
      unclaimed?: number;
    } = {};
    try {
      report = JSON.parse(await Deno.readTextFile(`${dir}/report.json`));
    } catch { /* no report: killed */ }
    const status = timedOut ? null : out.code;
    const base = {
      status,
      irqs: 0,
      unclaimed: report.unclaimed ?? 0,
      rssBytes: rss,
      ms,
      ...(p.keep ? { dir } : {}),
    };
    const opsPerCpu = p.stop ? Math.min(p.stop, p.ops) : p.ops;
    const message = report.exit?.message ?? "";
    const logs = [stderr, stdout].filter((s) => s).join("\n");
    const cut = (s: string) => s.length > 2000 ? `${s.slice(0, 2000)}...` : s;
    if (timedOut) {
      return {
        ...base,
        outcome: "hang",
        detail: `no exit after ${p.timeoutMs / 1000} s (killed)`,
        ops: 0,
      };
    }
    if (status === 4) {
      return { ...base, outcome: "dhyve-error", detail: cut(message || logs), ops: 0 };
    }
    if (status === 0 || status === 1) {
      const kind: Ending = status === 0 ? "reset" : "poweroff";
      const streams = Array.from(
        { length: p.mode.cpus },
        (_, cpu) =>
          replay(p.windows, { seed: p.seed, cpu, ops: opsPerCpu, rawShift: p.rawShift }).ops,
      );
      const firsts = streams.map((s) => s.find((op) => op.ends === kind)?.n ?? Infinity);
      const requested = firsts.some((n) => n !== Infinity);
      // The vCPUs run at about the same pace: the VM ended around the first
      // request on any of them.
      const ops = requested ? Math.min(...firsts) * p.mode.cpus : 0;
      if (!requested) {
        return {
          ...base,
          outcome: status === 0 ? "unrequested-reset" : "unrequested-poweroff",
          detail: cut(`${message} (no operation of the stream asked for it)`),
          ops,
        };
      }
      if (logs) return { ...base, outcome: "log-error", detail: cut(logs), ops };
      return { ...base, outcome: kind, detail: message, ops };
    }
    if (status === 2) return { ...base, outcome: "halt", detail: cut(message), ops: 0 };
    if (status === 3) return { ...base, outcome: "triple-fault", detail: cut(message), ops: 0 };
    if (status === FUZZ_EXIT.exception * 2 + 1) {
      const line = /fuzz exception [^\n]*/.exec(com1)?.[0] ?? "exception";
      return { ...base, outcome: "guest-exception", detail: line, ops: 0 };
    }
    if (status === FUZZ_EXIT.apTimeout * 2 + 1) {
      return { ...base, outcome: "ap-timeout", detail: "the AP never came up", ops: 0 };
    }
    if (status !== FUZZ_EXIT.done * 2 + 1) {
      return {
        ...base,
        outcome: "bad-status",
        detail: cut(`exit status ${status}: ${message || logs}`),
        ops: 0,
      };
    }
    const done = [...com1.matchAll(DONE_RE)].at(-1);
    if (!done) {
      return { ...base, outcome: "replay-mismatch", detail: 'no "fuzz done" line', ops: 0 };
    }
    const boot = BOOT_RE.exec(com1);
    const bars: [number, number] | undefined = boot
      ? [parseInt(boot[1], 16), parseInt(boot[2], 16)]
      : undefined;
    const got = [[done[2], done[3]], [done[4], done[5]]];
    const problems: string[] = [];
    if (!boot) problems.push('no "fuzz boot" line');
    else if (BigInt(`0x${boot[3]}`) !== prngCheck(p.seed)) problems.push("prng check differs");
    for (let cpu = 0; cpu < p.mode.cpus; cpu++) {
      const [o, hh] = got[cpu];
      const r = replay(p.windows, {
        seed: p.seed,
        cpu,
        ops: opsPerCpu,
        rawShift: p.rawShift,
        bars,
      });
      if (o === undefined || Number(o) !== opsPerCpu) {
        problems.push(`cpu${cpu}: ${o ?? "no"} operations, expected ${opsPerCpu}`);
      } else if (BigInt(`0x${hh}`) !== r.hash) {
        problems.push(`cpu${cpu}: hash 0x${hh}, replay ${hex(r.hash)}`);
      }
    }
    const result = { ...base, ops: Number(done[1]), irqs: Number(done[6]) };
    if (problems.length) {
      return { ...result, outcome: "replay-mismatch", detail: problems.join("; ") };
    }
    if (logs) return { ...result, outcome: "log-error", detail: cut(logs) };
    return { ...result, outcome: "completed", detail: "" };
  } finally {
    if (!p.keep) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// Minimization.

/** The shortest failing prefix of a failing seed. */
export interface Minimized {
  /** Operations per vCPU that still fail. */
  readonly ops: number;
  readonly result: RunResult;
  /** Runs spent. */
  readonly runs: number;
}

/**
 * Binary search for the smallest N (operations per vCPU, through the
 * guest's stop field) whose run still fails. A probe counts as failing
 * when any of `tries` runs fails (failures that need a race may not show
 * every time). Returns undefined when the full run no longer fails.
 * `run` boots one run (the tests pass a stand-in).
 */
export async function minimize(
  p: RunParams,
  tries = 2,
  progress: (n: number, r: RunResult) => void = () => {},
  run: (p: RunParams) => Promise<RunResult> = runFuzz,
): Promise<Minimized | undefined> {
  let runs = 0;
  const probe = async (n: number): Promise<RunResult | undefined> => {
    for (let i = 0; i < tries; i++) {
      runs++;
      // stop = 0 means "no limit" to the guest: no operation at all is ops = 0.
      const r = await run(n === 0 ? { ...p, ops: 0, stop: undefined } : { ...p, stop: n });
      progress(n, r);
      if (isFailure(r.outcome)) return r;
    }
    return undefined;
  };
  const full = p.stop ?? p.ops;
  let hiResult = await probe(full);
  if (!hiResult) return undefined;
  let lo = 0, hi = full;
  // N = 0 runs no operation: if even that fails, it is not the stream.
  if (await probe(0)) return { ops: 0, result: hiResult, runs };
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    const r = await probe(mid);
    if (r) [hi, hiResult] = [mid, r];
    else lo = mid;
  }
  return { ops: hi, result: hiResult, runs };
}

// ---------------------------------------------------------------------------
// The CLI.

/** Options of {@linkcode main}. */
export interface FuzzCliOptions {
  readonly seeds: number;
  readonly firstSeed: number;
  readonly ops: number;
  readonly modes: readonly FuzzMode[];
  readonly jobs: number;
  readonly timeoutSec?: number;
  readonly rawShift: number;
  readonly minimize: boolean;
  readonly list: boolean;
  readonly quiet: boolean;
}

/** Per-mode figures of a fuzz campaign. */
export interface ModeFigures {
  readonly mode: string;
  runs: number;
  ops: number;
  irqs: number;
  unclaimed: number;
  outcomes: Partial<Record<Outcome, number>>;
  rss: number[];
  baselineRss: number;
  runMs: number;
  wallMs: number;
  failures: { seed: number; result: RunResult }[];
}

/**
 * RSS growth across the runs of a mode (each a fresh process): the median
 * peak RSS of the last quarter of the runs more than 25% above the first
 * quarter's (needs 8 runs). Returns a description, or undefined.
 */
export function rssGrowth(rss: readonly number[]): string | undefined {
  if (rss.length < 8) return undefined;
  const q = Math.floor(rss.length / 4);
  const median = (a: readonly number[]) => {
    const s = [...a].sort((x, y) => x - y);
    return s[Math.floor(s.length / 2)];
  };
  const first = median(rss.slice(0, q)), last = median(rss.slice(-q));
  return last > first * 1.25
    ? `median peak RSS ${mib(first)} in the first quarter, ${mib(last)} in the last`
    : undefined;
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

/** The default per-run limit: 30 s plus 3 ms per operation and vCPU. */
export function defaultTimeoutSec(ops: number, cpus: number): number {
  return 30 + Math.ceil(ops * cpus * 0.003);
}

function log(quiet: boolean, line: string): void {
  if (!quiet) console.log(line);
}

function repro(mode: FuzzMode, seed: number, ops: number, rawShift: number): string {
  const raw = rawShift === DEFAULT_RAW_SHIFT ? "" : ` --raw-shift ${rawShift}`;
  return `deno task fuzz --mode ${mode.name} --seed ${seed} --ops ${ops}${raw} --no-minimize`;
}

/** The default raw shift: one port write in 1024 skips the VM-ending fix-ups. */
export const DEFAULT_RAW_SHIFT = 10;

async function printOps(
  windows: readonly FuzzWindow[],
  mode: FuzzMode,
  seed: number,
  ops: number,
  rawShift: number,
  limit: number,
): Promise<void> {
  const lines: string[] = [];
  for (let cpu = 0; cpu < mode.cpus; cpu++) {
    const r = replay(windows, { seed, cpu, ops, rawShift });
    lines.push(`cpu${cpu}: ${ops} operations, hash ${hex(r.hash)}`);
    for (const op of r.ops) {
      lines.push(`${op.n === ops ? ">>> " : "    "}${formatOp(op)}`);
    }
  }
  if (lines.length <= limit) {
    console.log(lines.join("\n"));
    return;
  }
  const file = await Deno.makeTempFile({
    prefix: `dhyve-fuzz-${mode.name}-${seed}-`,
    suffix: ".txt",
  });
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
  for (let cpu = 0; cpu < mode.cpus; cpu++) {
    const r = replay(windows, { seed, cpu, ops, rawShift });
    const tail = r.ops.slice(-Math.floor(limit / mode.cpus));
    console.log(`cpu${cpu}: the last ${tail.length} of ${ops} operations:`);
    for (const op of tail) console.log(`${op.n === ops ? ">>> " : "    "}${formatOp(op)}`);
  }
  console.log(`all ${ops * mode.cpus} operations: ${file}`);
}

/** Runs a campaign; resolves with the per-mode figures. */
export async function fuzz(o: FuzzCliOptions): Promise<ModeFigures[]> {
  const image = await buildGuest("lm/fuzz");
  const windows = parseWindows(image);
  const figures: ModeFigures[] = [];
  if (o.list) {
    for (const mode of o.modes) {
      for (let s = o.firstSeed; s < o.firstSeed + o.seeds; s++) {
        console.log(`mode ${mode.name} seed ${s}:`);
        await printOps(windows, mode, s, o.ops, o.rawShift, Infinity);
      }
    }
    return figures;
  }
  for (const mode of o.modes) {
    const t0 = performance.now();
    const timeoutMs = 1000 * (o.timeoutSec ?? defaultTimeoutSec(o.ops, mode.cpus));
    const params = (seed: number, ops = o.ops): RunParams => ({
      image,
      windows,
      mode,
      seed,
      ops,
      rawShift: o.rawShift,
      timeoutMs,
    });
    const base = await runFuzz(params(0, 0));
    const f: ModeFigures = {
      mode: mode.name,
      runs: 0,
      ops: 0,
      irqs: 0,
      unclaimed: 0,
      outcomes: {},
      rss: [],
      baselineRss: base.rssBytes,
      runMs: 0,
      wallMs: 0,
      failures: [],
    };
    figures.push(f);
    if (isFailure(base.outcome)) {
      f.failures.push({ seed: 0, result: base });
      console.log(
        `${mode.name}: the 0-operation baseline run failed: ${base.outcome} ${base.detail}`,
      );
    }
    log(o.quiet, `${mode.name}: baseline (0 operations) peak RSS ${mib(base.rssBytes)}`);
    const seeds = Array.from({ length: o.seeds }, (_, i) => o.firstSeed + i);
    const results = new Map<number, RunResult>();
    let next = 0;
    const worker = async () => {
      while (next < seeds.length) {
        const seed = seeds[next++];
        const r = await runFuzz(params(seed));
        results.set(seed, r);
        const line = `${mode.name} seed ${seed}: ${r.outcome} ${r.ops} ops, ${
          (r.ms / 1000).toFixed(1)
        } s, rss ${mib(r.rssBytes)}, irqs ${r.irqs}, unclaimed ${r.unclaimed}${
          r.detail && r.outcome !== "completed" ? ` - ${r.detail}` : ""
        }`;
        if (isFailure(r.outcome)) console.log(line);
        else log(o.quiet, line);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, o.jobs) }, worker));
    for (const seed of seeds) {
      const r = results.get(seed)!;
      f.runs++;
      f.ops += r.ops;
      f.irqs += r.irqs;
      f.unclaimed += r.unclaimed;
      f.outcomes[r.outcome] = (f.outcomes[r.outcome] ?? 0) + 1;
      f.rss.push(r.rssBytes);
      f.runMs += r.ms;
      if (isFailure(r.outcome)) f.failures.push({ seed, result: r });
    }
    const growth = rssGrowth(f.rss);
    if (growth) {
      f.outcomes["rss-growth"] = 1;
      f.failures.push({
        seed: -1,
        result: {
          outcome: "rss-growth",
          detail: growth,
          status: null,
          ops: 0,
          irqs: 0,
          unclaimed: 0,
          rssBytes: 0,
          ms: 0,
        },
      });
      console.log(`${mode.name}: RSS growth: ${growth}`);
    }
    // A run far above the mode's 0-operation baseline: RSS that grows with operations.
    for (const seed of seeds) {
      const r = results.get(seed)!;
      if (base.rssBytes > 0 && r.rssBytes > base.rssBytes * 1.25) {
        f.outcomes["rss-growth"] = (f.outcomes["rss-growth"] ?? 0) + 1;
        const detail = `peak RSS ${mib(r.rssBytes)}, baseline ${mib(base.rssBytes)}`;
        f.failures.push({ seed, result: { ...r, outcome: "rss-growth", detail } });
        console.log(`${mode.name} seed ${seed}: rss-growth: ${detail}`);
      }
    }
    if (o.minimize) {
      for (const { seed, result } of f.failures.filter((x) => x.seed > 0)) {
        if (result.outcome === "rss-growth") continue;
        console.log(`\n${mode.name} seed ${seed}: ${result.outcome}: ${result.detail}`);
        console.log("looking for the shortest failing prefix...");
        const m = await minimize(
          params(seed),
          2,
          (n, r) => log(o.quiet, `  ${n} ops: ${r.outcome}`),
        );
        if (!m) {
          console.log(`  ${mode.name} seed ${seed} passed when run again (not reproducible)`);
          continue;
        }
        console.log(
          `${mode.name} seed ${seed}: fails after ${m.ops} operations per vCPU (${m.runs} runs): ${m.result.outcome}: ${m.result.detail}`,
        );
        if (m.ops > 0) await printOps(windows, mode, seed, m.ops, o.rawShift, 120);
        const kept = await runFuzz({ ...params(seed), stop: m.ops, keep: true });
        console.log(`reproduce: ${repro(mode, seed, m.ops, o.rawShift)}`);
        if (kept.dir) {
          console.log(`  or: deno run -A main.ts up ${kept.dir}/vm.toml (${kept.outcome})`);
        }
      }
    }
    f.wallMs = performance.now() - t0;
  }
  printSummary(figures);
  return figures;
}

/** Prints the per-mode summary table. */
export function printSummary(figures: readonly ModeFigures[]): void {
  const rows = [[
    "mode",
    "runs",
    "operations",
    "completed",
    "reset",
    "poweroff",
    "failed",
    "irqs",
    "unclaimed",
    "rss base/median/max",
    "run time",
    "wall",
  ]];
  for (const f of figures) {
    const failed = Object.entries(f.outcomes)
      .filter(([k]) => isFailure(k as Outcome))
      .reduce((a, [, v]) => a + v, 0);
    const s = [...f.rss].sort((a, b) => a - b);
    rows.push([
      f.mode,
      String(f.runs),
      String(f.ops),
      String(f.outcomes.completed ?? 0),
      String(f.outcomes.reset ?? 0),
      String(f.outcomes.poweroff ?? 0),
      String(failed),
      String(f.irqs),
      String(f.unclaimed),
      s.length
        ? `${mib(f.baselineRss)}/${mib(s[Math.floor(s.length / 2)])}/${mib(s[s.length - 1])}`
        : "-",
      `${(f.runMs / 1000).toFixed(0)} s`,
      `${(f.wallMs / 1000).toFixed(0)} s`,
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  console.log("");
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd());
  for (const f of figures) {
    const fails = Object.entries(f.outcomes).filter(([k]) => isFailure(k as Outcome));
    if (fails.length) {
      console.log(`${f.mode} failures: ${fails.map(([k, v]) => `${k} ${v}`).join(", ")}`);
    }
  }
}

function intArg(min: number) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v))) {
      throw new InvalidArgumentError(`expected an integer >= ${min}`);
    }
    return Number(v);
  };
}

/** Parses the command line into {@linkcode FuzzCliOptions}. */
export function parseArgs(args: string[]): FuzzCliOptions {
  const program = new Command()
    .name("deno task fuzz")
    .description("dhyve's guest-side device fuzzer")
    .option("--seeds <n>", "seeds per mode", intArg(1), 200)
    .option("--first-seed <s>", "the first seed", intArg(0), 1)
    .option("--seed <s>", "run this one seed only", intArg(0))
    .option("--ops <n>", "operations per vCPU and run", intArg(0), 20000)
    .option(
      "--mode <name>",
      `${FUZZ_MODES.map((m) => m.name).join(", ")} or all`,
      "all",
    )
    .option("--jobs <j>", "runs in parallel", intArg(1), 1)
    .option(
      "--timeout <sec>",
      "per-run time limit (default: 30 s + 3 ms per operation and vCPU)",
      intArg(1),
    )
    .option(
      "--raw-shift <k>",
      "a port write skips the reset/poweroff fix-ups with probability 2^-k (0: never)",
      intArg(0),
      DEFAULT_RAW_SHIFT,
    )
    .option("--no-minimize", "do not cut failing seeds down")
    .option("--list", "print the operations of the seeds (replayed) instead of running them")
    .option("--quiet", "print failures and the summary only")
    .exitOverride()
    .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) });
  program.parse(args, { from: "user" });
  const v = program.opts();
  const mode = String(v.mode);
  const modes = mode === "all" ? FUZZ_MODES : FUZZ_MODES.filter((m) => m.name === mode);
  if (!modes.length) {
    throw new Error(
      `unknown mode ${JSON.stringify(mode)}: ${FUZZ_MODES.map((m) => m.name).join(", ")} or all`,
    );
  }
  const single = v.seed as number | undefined;
  return {
    seeds: single === undefined ? v.seeds : 1,
    firstSeed: single ?? v.firstSeed,
    ops: v.ops,
    modes,
    jobs: v.jobs,
    timeoutSec: v.timeout,
    rawShift: Math.min(v.rawShift, 16),
    minimize: v.minimize,
    list: Boolean(v.list),
    quiet: Boolean(v.quiet),
  };
}

/** The CLI: parses `args`, runs the campaign, returns the exit status. */
export async function main(args: string[]): Promise<number> {
  let o: FuzzCliOptions;
  try {
    o = parseArgs(args);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    console.error(`fuzz: ${e instanceof Error ? e.message : e}`);
    return 2;
  }
  const figures = await fuzz(o);
  return figures.some((f) => f.failures.length) ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));

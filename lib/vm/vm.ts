/**
 * A running VM: starts the vCPU Workers, waits for a VM-wide suspend
 * (reset, poweroff, halt, triple fault, error or debug exit), stops every
 * vCPU and releases everything, whatever the path out.
 *
 * Exit statuses are bhyve's: 0 reset, 1 poweroff, 2 halt, 3 triple fault,
 * 4 error; a debug-exit device write of v gives (v << 1) | 1.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { KVM_MP_STATE, KVM_RUN_STRUCT } from "../../cpu/kvm_abi.ts";
import { getMpState, getRegs } from "../../cpu/kvm.ts";
import { libc, SIGUSR2 } from "../../cpu/libc.ts";
import type { VcpuWorkerMessage } from "../../cpu/vcpu_worker.ts";
import type { SuspendKind, SuspendRequest } from "../../devices/device.ts";
import type { VmConfig } from "../config.ts";
import { type BuildOptions, Machine, type VcpuHandle } from "./machine.ts";
import type { PrespawnedWorkers } from "./workers.ts";
import { type FallbackCount, VCPU_REQUEST, VcpuControl, type VcpuStatName } from "./vm_control.ts";
import type { VcpuAnswer, VcpuOp } from "../ctl/vcpu_ops.ts";

const log = getLogger(["dhyve", "vm"]);
const progressLog = getLogger(["dhyve", "progress"]);

/** bhyve's exit statuses by suspend kind (debug-exit carries its own). */
export const EXIT_STATUS: Readonly<Record<Exclude<SuspendKind, "debug-exit">, number>> = Object
  .freeze({
    reset: 0,
    poweroff: 1,
    halt: 2,
    "triple-fault": 3,
    error: 4,
  });

/** How a VM ended. */
export interface VmExit {
  readonly kind: SuspendKind;
  /** The process exit status dhyve uses for it. */
  readonly status: number;
  readonly message?: string;
}

/** Per-vCPU statistics. */
export interface VcpuStats {
  readonly index: number;
  readonly apicId: number;
  readonly state: string;
  readonly exits: Readonly<Record<VcpuStatName, number>>;
  /**
   * Instructions KVM could not emulate that dhyve emulated (cpu/fallback.ts),
   * by mnemonic (an exception name when nothing decoded): count and time spent.
   */
  readonly fallbacks: Readonly<Record<string, FallbackCount>>;
  /** Wall-clock ms (performance.timeOrigin-based) of the first KVM_RUN. */
  readonly firstRunWallMs: number;
  /** Nanoseconds from the first KVM_RUN to leaving the run loop. */
  readonly runNs: number;
}

/**
 * Adds the fallback counts of `from` into `into` (by mnemonic).
 */
function addFallbacks(
  into: Map<string, { count: number; ms: number }>,
  from: Readonly<Record<string, FallbackCount>>,
): void {
  for (const [name, c] of Object.entries(from)) {
    const t = into.get(name) ?? { count: 0, ms: 0 };
    t.count += c.count;
    t.ms += c.ms;
    into.set(name, t);
  }
}

/**
 * One line for the log: `fallbacks: clac 1480 (31 ms), int3 12 (0.4 ms)`,
 * most frequent first; undefined when there were none.
 */
export function formatFallbackSummary(
  counts: Readonly<Record<string, FallbackCount>>,
): string | undefined {
  const entries = Object.entries(counts).sort((a, b) => b[1].count - a[1].count);
  if (entries.length === 0) return undefined;
  const ms = (v: number) => (v >= 10 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2));
  return `fallbacks: ${
    entries.map(([name, c]) => `${name} ${c.count} (${ms(c.ms)} ms)`).join(", ")
  }`;
}

/** Options for {@linkcode Vm.create}. */
export interface VmOptions extends BuildOptions {
  /** Workers spawned ahead (lib/vm/workers.ts), to overlap their start-up with building the machine. */
  readonly workers?: PrespawnedWorkers;
  /** How long to wait for the vCPUs and the timer thread to stop after a suspend (ms). */
  readonly stopTimeoutMs?: number;
  /**
   * Every this many ms while the VM runs, log a status line at info level
   * on the `["dhyve", "progress"]` logger (stderr, never the guest's
   * console): elapsed time, exits per second, fallbacks so far. 0 (the
   * default) for none. A Linux boot takes minutes here; `up -v` shows it.
   */
  readonly progressMs?: number;
}

/** One sample of a running VM's counters, for the progress line. */
export interface ProgressSample {
  /** ms since the VM started (performance.now() based). */
  readonly ms: number;
  /** Exits of every vCPU so far, this instance. */
  readonly exits: number;
  /** Fallbacks of every vCPU so far, across resets in place. */
  readonly fallbacks: number;
}

/**
 * The progress line from two samples: `up 42s: 1234 exits/s, fallbacks
 * 5678 (+120/s)`. The rates are over the interval between the samples.
 */
export function formatProgress(prev: ProgressSample, cur: ProgressSample): string {
  const dt = Math.max(1, cur.ms - prev.ms) / 1000;
  const rate = (a: number, b: number) => Math.max(0, Math.round((b - a) / dt));
  return `up ${Math.round(cur.ms / 1000)}s: ${
    rate(prev.exits, cur.exits)
  } exits/s, fallbacks ${cur.fallbacks} (+${rate(prev.fallbacks, cur.fallbacks)}/s)`;
}

/** The exit status of a suspend request. */
export function exitStatusOf(req: SuspendRequest): number {
  if (req.kind === "debug-exit") return (req.status ?? 1) & 0xff;
  return EXIT_STATUS[req.kind];
}

let signalUsers = 0;
const noop = () => {};
/** How long the vCPUs must make no exit to dhyve before the halt rule is checked (ms). */
const HALT_CHECK_MS = 500;
/** States in which a vCPU is out of its run loop. */
const OUT_OF_LOOP = new Set(["suspended", "paused", "finished", "created"]);

/** A VM built from a config; call {@linkcode Vm.start} then {@linkcode Vm.wait}. */
export class Vm {
  /** The machine: memory, devices, vCPUs. */
  readonly machine: Machine;
  readonly #stopTimeoutMs: number;
  readonly #progressMs: number;
  readonly #signal: AbortSignal | undefined;
  #progressTimer: ReturnType<typeof setInterval> | undefined;
  #startedAt = 0;
  #started = false;
  #finished: Promise<VmExit> | undefined;
  #closed = false;
  #resets = 0;
  #finalStats: VcpuStats[] | undefined;
  #finalVirtio: ReturnType<Machine["virtioStats"]> | undefined;
  /** Fallback counts of the instances a reset in place has replaced. */
  readonly #earlierFallbacks = new Map<string, { count: number; ms: number }>();
  /** A host request (poweroff, ...) that came while a guest reset was being handled. */
  #hostRequest: SuspendRequest | undefined;
  /** Exits of all vCPUs at the last halt check. */
  #lastExits = -1;
  /** The host paused the VM ({@linkcode Vm.pause}): the halt check leaves it paused. */
  #hostPaused = false;
  /** Counts resume() calls: a pause under way gives up when one comes. */
  #resumes = 0;
  /** vCPUs the host paused one by one ({@linkcode Vm.pauseVcpu}), by index. */
  readonly #pausedVcpus = new Set<number>();
  /** The last host call of each vCPU (by index): calls to one vCPU run one after another. */
  readonly #calls = new Map<number, Promise<unknown>>();
  /** The latest start of the vCPUs (told to run), at power-on or after a reboot in place. */
  #starting: Promise<void> = Promise.resolve();

  private constructor(machine: Machine, options: VmOptions) {
    this.machine = machine;
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 5000;
    this.#progressMs = options.progressMs ?? 0;
    this.#signal = options.signal;
    this.#bindWorkers();
  }

  /** Builds the machine for `config` (vCPU Workers start loading at once). */
  static async create(config: VmConfig, options: VmOptions = {}): Promise<Vm> {
    const machine = await Machine.create(config, options, options.workers);
    return new Vm(machine, options);
  }

  /** Listens to the current vCPU Workers (again after a reset). */
  #bindWorkers(): void {
    const control = this.machine.control;
    for (const v of this.machine.vcpus) {
      v.worker.onmessage = (e: MessageEvent<VcpuWorkerMessage>) => this.#onWorkerMessage(e.data);
      v.worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        control.requestSuspend({
          kind: "error",
          message: `vcpu ${v.place.index}: worker error: ${e.message}`,
        });
      };
    }
  }

  /** How many times the guest reset the VM in place (`on_reset = "restart"`). */
  get resets(): number {
    return this.#resets;
  }

  #onWorkerMessage(m: VcpuWorkerMessage): void {
    if (m.type === "log") {
      const props = { message: m.message };
      if (m.level === "error") log.error("{message}", props);
      else if (m.level === "warning") log.warn("{message}", props);
      else if (m.level === "info") log.info("{message}", props);
      else log.debug("{message}", props);
    }
  }

  /**
   * Starts every vCPU. The BSP runs the payload; APs wait for INIT/SIPI in
   * KVM. Throws the reason of the options' `signal` (BuildOptions) if it
   * aborts before every vCPU was told to run: none runs then, and the caller
   * closes the VM.
   */
  async start(): Promise<void> {
    if (this.#started) throw new Error("VM already started");
    this.#started = true;
    if (signalUsers++ === 0) Deno.addSignalListener("SIGUSR2", noop);
    this.#startedAt = performance.now();
    if (this.#progressMs > 0) {
      let prev = this.progress();
      this.#progressTimer = setInterval(() => {
        const cur = this.progress();
        progressLog.info("{line}", { line: formatProgress(prev, cur) });
        prev = cur;
      }, this.#progressMs);
    }
    await (this.#starting = this.#startVcpus());
  }

  /** The counters the progress line is made of, now. */
  progress(): ProgressSample {
    const exits = VcpuControl.slot("exits");
    let n = 0;
    for (const v of this.machine.currentVcpus) n += v.control.stats[exits];
    let fallbacks = 0;
    for (const c of Object.values(this.fallbackSummary())) fallbacks += c.count;
    return { ms: this.#startedAt ? performance.now() - this.#startedAt : 0, exits: n, fallbacks };
  }

  async #startVcpus(): Promise<void> {
    const signal = this.#signal;
    signal?.throwIfAborted();
    // A start given up stops waiting for the Workers at once.
    let onAbort = noop;
    const aborted = new Promise<void>((resolve) => (onAbort = resolve));
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      // Every Worker publishes its thread id once it has attached its devices; a
      // Worker that failed to start says "finished" instead.
      for (const v of this.machine.vcpus) {
        await Promise.race([
          v.control.waitTid(10_000),
          v.control.waitStateChange("created", 10_000),
          aborted,
        ]);
        signal?.throwIfAborted();
        if (v.control.tid === 0) {
          this.machine.control.requestSuspend({
            kind: "error",
            message: `vcpu ${v.place.index}: worker did not start`,
          });
          return;
        }
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    for (const v of this.machine.vcpus) v.control.setRequest(VCPU_REQUEST.run);
  }

  /** Interrupts a vCPU's KVM_RUN (immediate_exit + SIGUSR2 to its thread). */
  #kick(v: VcpuHandle): void {
    Atomics.store(v.run.bytes, KVM_RUN_STRUCT.o.immediateExit, 1);
    const tid = v.control.tid;
    if (tid !== 0) libc().tgkill(tid, SIGUSR2);
  }

  /**
   * Requests a VM-wide suspend (a forced poweroff, say). A request that comes
   * while the guest's own reset is being handled wins over restarting.
   */
  requestSuspend(req: SuspendRequest): void {
    if (!this.machine.control.requestSuspend(req)) this.#hostRequest ??= req;
  }

  /**
   * Presses the ACPI power button. Resolves false when the guest has not
   * enabled the power button event (no ACPI OS is listening), or while the
   * VM is between two instances (a reset).
   */
  async pressPowerButton(): Promise<boolean> {
    const pm = this.machine.currentDevices?.devices.find((d) => d.powerButton)?.powerButton;
    if (!pm || this.#closed) return false;
    // The main thread never sleeps on the device lock: it would stop handling signals.
    return await this.machine.control.lock.withAsync(() => {
      if (!pm.enabled) return false;
      pm.press();
      return true;
    });
  }

  /**
   * Pauses every vCPU: each leaves KVM_RUN and waits. Device timers go on
   * (their interrupts are queued for when the vCPUs run again). Resolves
   * true when all are paused; false if the VM is stopping, stopped or
   * between two instances (a reset), if {@linkcode Vm.resume} came first, or
   * if a vCPU did not pause within the stop timeout.
   */
  async pause(): Promise<boolean> {
    if (!this.#started || this.#closed) return false;
    this.#hostPaused = true;
    const resumes = this.#resumes;
    // Not before every vCPU was told to run: that request would undo the pause.
    await this.#starting;
    const paused = await this.#pauseAll(() => this.#resumes === resumes && !this.#closed);
    if (!paused && this.#resumes === resumes) {
      // A pause that failed leaves no host pause behind: those vCPUs it did
      // stop run again, and the halt check watches the guest as before.
      this.#hostPaused = false;
      this.#resumeAll();
    }
    return paused;
  }

  /** Resumes vCPUs paused by {@linkcode Vm.pause}; a pause still under way gives up. */
  resume(): void {
    this.#hostPaused = false;
    this.#pausedVcpus.clear();
    this.#resumes++;
    this.#resumeAll();
  }

  /** True while the host holds the whole VM paused ({@linkcode Vm.pause}). */
  get hostPaused(): boolean {
    return this.#hostPaused;
  }

  /** Indices of the vCPUs the host paused one by one. */
  get pausedVcpus(): readonly number[] {
    return [...this.#pausedVcpus].sort((a, b) => a - b);
  }

  /** The current vCPU with `index`; throws a one-line reason when there is none. */
  #vcpuAt(index: number): VcpuHandle {
    const vcpus = this.machine.currentVcpus;
    if (this.#closed || !this.#started) throw new Error("the VM is not running");
    if (vcpus.length === 0) throw new Error("the VM is between two instances (a reset)");
    const v = vcpus.find((x) => x.place.index === index);
    if (!v) throw new Error(`vcpu ${index} does not exist (0-${vcpus.length - 1})`);
    return v;
  }

  /**
   * Pauses one vCPU (it leaves KVM_RUN and waits); the others run on.
   * Resolves true once it is paused, false if it did not pause in time or
   * the VM is stopping.
   */
  async pauseVcpu(index: number): Promise<boolean> {
    const v = this.#vcpuAt(index);
    await this.#starting;
    if (this.machine.control.suspending) return false;
    this.#pausedVcpus.add(index);
    v.control.setRequest(VCPU_REQUEST.pause);
    const late = await this.#kickWhile(
      [v],
      (x) =>
        x.control.request === VCPU_REQUEST.pause || x.control.state === "running" ||
        x.control.state === "created",
      () => this.#pausedVcpus.has(index),
    );
    return late.length === 0 && v.control.state === "paused";
  }

  /** Resumes one vCPU paused by {@linkcode Vm.pauseVcpu} or by {@linkcode Vm.pause}. */
  resumeVcpu(index: number): void {
    const v = this.#vcpuAt(index);
    if (this.#hostPaused) {
      // One vCPU out of a VM-wide pause: the others stay paused, one by one.
      this.#hostPaused = false;
      this.#resumes++;
      for (const o of this.machine.currentVcpus) this.#pausedVcpus.add(o.place.index);
    }
    this.#pausedVcpus.delete(index);
    if (v.control.state === "paused" || v.control.request === VCPU_REQUEST.pause) {
      v.control.setRequest(VCPU_REQUEST.run);
    }
  }

  /**
   * Runs `op` on vCPU `index`, in that vCPU's thread between two KVM_RUNs
   * (lib/ctl/vcpu_ops.ts): it is kicked out of KVM_RUN, serves the call and
   * runs on. Calls to one vCPU run one at a time. Throws a one-line message
   * when the vCPU does not exist, the VM is not running, the vCPU did not
   * answer within `timeoutMs`, or the operation failed.
   */
  callVcpu(index: number, op: VcpuOp, timeoutMs = 2000): Promise<unknown> {
    const prev = this.#calls.get(index) ?? Promise.resolve();
    const next = prev.catch(() => {}).then(() => this.#callVcpu(index, op, timeoutMs));
    this.#calls.set(index, next);
    const forget = () => {
      if (this.#calls.get(index) === next) this.#calls.delete(index);
    };
    next.then(forget, forget);
    return next;
  }

  async #callVcpu(index: number, op: VcpuOp, timeoutMs: number): Promise<unknown> {
    const v = this.#vcpuAt(index);
    const state = v.control.state;
    if (state === "finished" || state === "suspended" || this.machine.control.suspending) {
      throw new Error(`vcpu ${index} is stopping (${state})`);
    }
    if (!v.control.postCall(JSON.stringify(op))) {
      throw new Error(`vcpu ${index} is still busy with an earlier request that timed out`);
    }
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const left = deadline - performance.now();
      const last = left <= 20;
      const answer = await v.control.waitCall(Math.max(0, Math.min(20, left)), last);
      if (answer !== undefined) {
        const a = JSON.parse(answer) as VcpuAnswer;
        if (!a.ok) throw new Error(a.error);
        return a.result;
      }
      if (last || this.#closed) {
        throw new Error(`vcpu ${index} did not answer within ${timeoutMs} ms (${v.control.state})`);
      }
      // Out of KVM_RUN (a call is served at the top of the run loop), or awake
      // if it sleeps paused: the notify of the post may have come too early.
      if (v.control.state === "running") this.#kick(v);
      v.control.nudge();
    }
  }

  /**
   * Pauses every vCPU while `wanted()` holds; true when all are paused (and
   * it still holds). Read the vCPUs' registers only after a true result.
   */
  async #pauseAll(wanted: () => boolean): Promise<boolean> {
    const vcpus = this.machine.currentVcpus;
    if (!wanted() || vcpus.length === 0 || this.machine.control.suspending) return false;
    for (const v of vcpus) v.control.setRequest(VCPU_REQUEST.pause);
    // Pending until the vCPU thread took the request and said "paused" (or
    // stopped): between the two its state still reads as before.
    const late = await this.#kickWhile(
      vcpus,
      (v) =>
        v.control.request === VCPU_REQUEST.pause || v.control.state === "running" ||
        v.control.state === "created",
      wanted,
    );
    return late.length === 0 && wanted() && vcpus.every((v) => v.control.state === "paused");
  }

  /**
   * Kicks those of `vcpus` for which `pending` holds until none does, the
   * stop timeout passes, the VM closes or `goOn()` turns false; returns
   * those still pending.
   */
  async #kickWhile(
    vcpus: readonly VcpuHandle[],
    pending: (v: VcpuHandle) => boolean,
    goOn: () => boolean = () => true,
  ): Promise<VcpuHandle[]> {
    const deadline = Date.now() + this.#stopTimeoutMs;
    for (;;) {
      const left = vcpus.filter(pending);
      if (left.length === 0 || Date.now() > deadline || this.#closed || !goOn()) return left;
      for (const v of left) this.#kick(v);
      await Promise.race(left.map((v) => v.control.waitStateChange(v.control.state, 20)));
    }
  }

  /**
   * Tells every paused vCPU to run, and every one whose pause request is
   * still pending. A "run" for a vCPU already running only costs it one
   * pass through its control loop; none replaces an "exit" (setRequest).
   */
  #resumeAll(): void {
    if (this.#closed) return;
    for (const v of this.machine.currentVcpus) {
      if (this.#pausedVcpus.has(v.place.index)) continue;
      if (v.control.state === "paused" || v.control.request === VCPU_REQUEST.pause) {
        v.control.setRequest(VCPU_REQUEST.run);
      }
    }
  }

  /** The virtio devices' counters by function name (as they were at the end, once the VM has stopped). */
  virtioStats(): ReturnType<Machine["virtioStats"]> {
    return this.#finalVirtio ?? this.machine.virtioStats();
  }

  /** Statistics of every vCPU (as they were at the end, once the VM has stopped). */
  stats(): VcpuStats[] {
    return this.#finalStats ?? this.#collectStats();
  }

  #collectStats(): VcpuStats[] {
    return this.machine.currentVcpus.map((v) => ({
      index: v.place.index,
      apicId: v.place.apicId,
      state: v.control.state,
      exits: v.control.snapshotStats(),
      fallbacks: v.control.fallbacks.snapshot(),
      firstRunWallMs: v.control.firstRunWallMs,
      runNs: v.control.suspendNs > 0 ? v.control.suspendNs - v.control.firstRunNs : 0,
    }));
  }

  /**
   * Instruction-emulator fallbacks of the whole run, all vCPUs together and
   * across resets in place: count and milliseconds by mnemonic.
   */
  fallbackSummary(): Record<string, FallbackCount> {
    const total = new Map(
      [...this.#earlierFallbacks].map(([k, v]) => [k, { ...v }] as const),
    );
    for (const v of this.stats()) addFallbacks(total, v.fallbacks);
    return Object.fromEntries(total);
  }

  /** Resolves when the VM has suspended and everything is released. */
  wait(): Promise<VmExit> {
    this.#finished ??= this.#waitAndStop();
    return this.#finished;
  }

  async #waitAndStop(): Promise<VmExit> {
    const control = this.machine.control;
    try {
      for (;;) {
        const seen = control.wakeCount();
        const req = control.suspendRequest();
        if (!req) {
          await control.waitWake(seen, HALT_CHECK_MS);
          if (control.wakeCount() === seen) await this.#checkHalt();
          continue;
        }
        // Threads still running are named by machine.stop() too, which then
        // keeps guest RAM, fds and run pages for them when the VM is closed.
        await this.#stopVcpus();
        const late = await this.machine.stop(this.#stopTimeoutMs);
        this.#finalStats = this.#collectStats();
        this.#finalVirtio = this.machine.virtioStats();
        if (late.length > 0) {
          await this.machine.flushOutput();
          const message = `${
            req.message ?? req.kind
          }; then these threads did not stop within ${this.#stopTimeoutMs} ms: ${late.join(", ")}`;
          log.error("{message}", { message });
          return { kind: "error", status: EXIT_STATUS.error, message };
        }
        const host = this.#hostRequest;
        if (req.kind === "reset" && this.machine.config.vm.onReset === "restart" && !host) {
          // A reboot in place: a new KVM instance over the same RAM mapping and device state.
          this.#resets++;
          for (const v of this.#finalStats) addFallbacks(this.#earlierFallbacks, v.fallbacks);
          log.info("{cause}: restarting the VM", { cause: req.message ?? "reset" });
          await this.machine.reset();
          // The new instance's vCPUs all run: no host pause carries over.
          this.#hostPaused = false;
          this.#pausedVcpus.clear();
          this.#bindWorkers();
          this.#finalStats = undefined;
          await (this.#starting = this.#startVcpus());
          continue;
        }
        if (!await this.machine.flushOutput()) {
          log.warn("console output was not all written out: its reader stalled");
        }
        // The first request wins; a host request only replaces a guest reset
        // (a reset is not done until the new instance runs).
        const final = req.kind === "reset" && host ? host : req;
        const exit: VmExit = {
          kind: final.kind,
          status: exitStatusOf(final),
          message: final.message,
        };
        const props = { message: final.message ?? final.kind };
        if (final.kind === "error" || final.kind === "triple-fault") log.error("{message}", props);
        else log.info("{message}", props);
        const summary = formatFallbackSummary(this.fallbackSummary());
        if (summary) log.debug("{summary}", { summary });
        return exit;
      }
    } finally {
      this.close();
    }
  }

  /**
   * bhyve's halt rule: when every active vCPU is halted with interrupts
   * disabled, nothing but an NMI could wake the machine, and no device sends
   * one, so the VM halts (exit status 2). KVM handles HLT in the kernel, so
   * this looks from outside: when the vCPUs made no exit to dhyve for a
   * while, they are paused briefly and their MP state and RFLAGS.IF read.
   * APs never started by INIT/SIPI are not active and do not count.
   */
  async #checkHalt(): Promise<void> {
    const slot = VcpuControl.slot("exits");
    const exits = this.machine.currentVcpus.reduce((n, v) => n + v.control.stats[slot], 0);
    const quiet = exits === this.#lastExits;
    this.#lastExits = exits;
    // A VM the host paused makes no exits either; it is not the guest's halt.
    if (
      !quiet || this.#hostPaused || this.#pausedVcpus.size > 0 || this.#closed || !this.#started
    ) {
      return;
    }
    const resumes = this.#resumes;
    const paused = await this.#pauseAll(() =>
      this.#resumes === resumes && !this.#hostPaused && !this.#closed
    );
    let active = 0, halted = 0;
    try {
      // From here on no await: no other request can reach the vCPUs, so each
      // stays paused (out of KVM_RUN) while its MP state and registers are
      // read; a vCPU inside KVM_RUN would block these ioctls.
      if (!paused) return;
      for (const v of this.machine.vcpus) {
        const mp = getMpState(v.fd);
        if (mp === KVM_MP_STATE.UNINITIALIZED || mp === KVM_MP_STATE.INIT_RECEIVED) continue;
        active++;
        // RFLAGS.IF is bit 9 (Intel SDM Vol. 1, 3.4.3).
        if (mp === KVM_MP_STATE.HALTED && (getRegs(v.fd).rflags & 0x200n) === 0n) halted++;
      }
    } finally {
      if (!this.#hostPaused) this.#resumeAll();
    }
    if (active > 0 && halted === active) {
      this.machine.control.requestSuspend({
        kind: "halt",
        message: `halt: every vCPU (${active}) is halted with interrupts disabled`,
      });
    }
  }

  /** Kicks every vCPU until it is out of its run loop, or until the stop timeout. */
  async #stopVcpus(): Promise<void> {
    await this.#kickWhile(this.machine.vcpus, (v) => !OUT_OF_LOOP.has(v.control.state));
  }

  /** Releases the machine: terminates the Workers, unmaps memory, closes fds. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#progressTimer);
    this.machine.close();
    if (this.#started && --signalUsers === 0) Deno.removeSignalListener("SIGUSR2", noop);
  }

  /**
   * `await using vm = await Vm.create(...)`: a VM still running when the
   * scope ends is powered off by the host (as `Ctrl-A x` does) and waited
   * for; one never started is just closed.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#started || this.#closed) {
      this.close();
      return;
    }
    this.requestSuspend({ kind: "poweroff", message: "host: the VM's owner let it go" });
    await this.wait();
  }
}

/** Builds, starts and runs a VM to its end. */
export async function runVm(config: VmConfig, options: VmOptions = {}): Promise<VmExit> {
  const vm = await Vm.create(config, options);
  try {
    await vm.start();
  } catch (e) {
    vm.close();
    throw e;
  }
  return await vm.wait();
}

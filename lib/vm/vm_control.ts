/**
 * The shared control block of a running VM, visible to every thread: the
 * VM-wide suspend request (bhyve's vm_suspend: the first request wins, every
 * vCPU then leaves its run loop), a wake-up word the main thread waits on,
 * the device lock word, and per-vCPU control words and statistics.
 *
 * All fields are in SharedArrayBuffers; cross-thread fields are accessed
 * with Atomics.
 *
 * @module
 */
import type { SuspendKind, SuspendRequest } from "../../devices/device.ts";
import { SharedMutex } from "./lock.ts";

/** Suspend kinds as stored in shared memory (0 = running). */
export const SUSPEND_CODES: Readonly<Record<SuspendKind, number>> = Object.freeze({
  reset: 1,
  poweroff: 2,
  halt: 3,
  "triple-fault": 4,
  error: 5,
  "debug-exit": 6,
});

const KIND_OF_CODE: Record<number, SuspendKind> = Object.fromEntries(
  Object.entries(SUSPEND_CODES).map(([k, v]) => [v, k as SuspendKind]),
);

// Int32 word indices of the VM block.
const W_SUSPEND = 0;
const W_STATUS = 1;
const W_LOCK = 2;
const W_WAKE = 3;
const W_MSG_LEN = 4;
const W_UNCLAIMED = 5;
const WORDS = 8;
const MSG_BYTES = 2048;

/** The VM-wide shared block. */
export class VmControl {
  /** The shared buffer; send it to each Worker. */
  readonly buffer: SharedArrayBuffer;
  readonly #w: Int32Array;
  readonly #msg: Uint8Array;
  /** The device lock, shared by all threads. */
  readonly lock: SharedMutex;

  /** Creates a fresh block, or binds one received from another thread. */
  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(WORDS * 4 + MSG_BYTES);
    this.#w = new Int32Array(this.buffer, 0, WORDS);
    this.#msg = new Uint8Array(this.buffer, WORDS * 4, MSG_BYTES);
    this.lock = new SharedMutex(this.#w, W_LOCK);
  }

  /**
   * Requests a VM-wide suspend. Only the first request takes effect (later
   * ones return false); the main thread is woken to stop the other vCPUs.
   */
  requestSuspend(req: SuspendRequest): boolean {
    if (Atomics.compareExchange(this.#w, W_SUSPEND, 0, -1) !== 0) return false;
    // Publish status and message before the kind, so readers of the kind see them.
    Atomics.store(this.#w, W_STATUS, req.status ?? 0);
    const bytes = new TextEncoder().encode(req.message ?? "").subarray(0, MSG_BYTES);
    this.#msg.set(bytes);
    Atomics.store(this.#w, W_MSG_LEN, bytes.length);
    Atomics.store(this.#w, W_SUSPEND, SUSPEND_CODES[req.kind]);
    this.wake();
    return true;
  }

  /** True once a suspend has been requested (even while it is being published). */
  get suspending(): boolean {
    return Atomics.load(this.#w, W_SUSPEND) !== 0;
  }

  /** The published suspend request, if any. */
  suspendRequest(): SuspendRequest | undefined {
    const code = Atomics.load(this.#w, W_SUSPEND);
    if (code <= 0) return undefined;
    const len = Atomics.load(this.#w, W_MSG_LEN);
    const message = new TextDecoder().decode(this.#msg.slice(0, len));
    return {
      kind: KIND_OF_CODE[code],
      status: Atomics.load(this.#w, W_STATUS),
      message: message || undefined,
    };
  }

  /** Clears the suspend request (VM reset re-runs the same VM). */
  clearSuspend(): void {
    Atomics.store(this.#w, W_MSG_LEN, 0);
    Atomics.store(this.#w, W_STATUS, 0);
    Atomics.store(this.#w, W_SUSPEND, 0);
  }

  /** Wakes the main thread (it waits with {@linkcode VmControl.waitWake}). */
  wake(): void {
    Atomics.add(this.#w, W_WAKE, 1);
    Atomics.notify(this.#w, W_WAKE);
  }

  /** The current wake counter, to pass to {@linkcode VmControl.waitWake}. */
  wakeCount(): number {
    return Atomics.load(this.#w, W_WAKE);
  }

  /** Resolves when the wake counter moves past `seen`, or after `timeoutMs`. */
  async waitWake(seen: number, timeoutMs?: number): Promise<void> {
    const r = Atomics.waitAsync(this.#w, W_WAKE, seen, timeoutMs);
    if (r.async) await r.value;
  }

  /** Counts one unclaimed port/MMIO access. */
  countUnclaimed(): void {
    Atomics.add(this.#w, W_UNCLAIMED, 1);
  }

  /** Unclaimed accesses so far, all vCPUs together. */
  get unclaimed(): number {
    return Atomics.load(this.#w, W_UNCLAIMED);
  }
}

/** vCPU states (design.md trait 9). */
export const VCPU_STATE = Object.freeze({
  created: 0,
  running: 1,
  paused: 2,
  suspended: 3,
  finished: 4,
});

/** The name of a vCPU state. */
export type VcpuStateName = keyof typeof VCPU_STATE;
const STATE_NAMES = Object.keys(VCPU_STATE) as VcpuStateName[];

/** Requests the main thread makes of a vCPU. */
export const VCPU_REQUEST = Object.freeze({ none: 0, run: 1, pause: 2, exit: 3 });

/** Statistics slots of a vCPU (Float64 each). */
export const VCPU_STATS = [
  "exits",
  "io",
  "mmio",
  "intr",
  "hlt",
  "shutdown",
  "internal_error",
  "other",
  "unclaimed",
  "fallback",
] as const;
/** A statistics slot name. */
export type VcpuStatName = typeof VCPU_STATS[number];

// Int32 words of a vCPU block.
const V_STATE = 0;
const V_REQUEST = 1;
const V_TID = 2;
/** The host-call mailbox word: {@linkcode VCPU_CALL}. */
const V_CALL = 3;
const V_WORDS = 4;
// Float64 slots after the words: statistics, then timestamps.
const V_FIRST_RUN = VCPU_STATS.length; // wall-clock ms (performance.timeOrigin + now) of the first KVM_RUN
const V_FIRST_RUN_NS = V_FIRST_RUN + 1; // CLOCK_MONOTONIC ns of the first KVM_RUN
const V_SUSPEND_NS = V_FIRST_RUN + 2; // CLOCK_MONOTONIC ns when the vCPU left its run loop
const V_F64 = V_FIRST_RUN + 3;
const V_STATS_BYTES = V_WORDS * 4 + V_F64 * 8;

/** States of a vCPU's host-call mailbox (the word V_CALL). */
export const VCPU_CALL = Object.freeze({ idle: 0, posted: 1, taken: 2, done: 3 });
/**
 * Bytes of a host call's message (UTF-8 JSON after a 4-byte length), each
 * way. Control requests are short; the longest answer (a page walk with
 * five levels, or every register) takes a few KiB.
 */
export const VCPU_CALL_BYTES = 16 * 1024;

/** Slots of the per-mnemonic fallback table; the last one counts everything past it. */
export const FALLBACK_SLOTS = 64;
/** Bytes of a mnemonic name in the table (UTF-8, longer names are cut). */
const FALLBACK_NAME_BYTES = 31;
const FB_HEADER = 8; // Int32: slots in use, then padding
const FB_NAMES = FB_HEADER; // per slot: 1 length byte + name
const FB_NUMBERS = FB_NAMES + FALLBACK_SLOTS * (FALLBACK_NAME_BYTES + 1); // per slot: count, ns (f64)
const FB_BYTES = FB_NUMBERS + FALLBACK_SLOTS * 16;
/** The name the last slot counts under once the others are taken. */
export const FALLBACK_OVERFLOW = "(other)";

/** Fallback counts of one mnemonic: how many, and the time spent in dhyve for them. */
export interface FallbackCount {
  readonly count: number;
  /** Milliseconds spent handling them (from KVM_RUN returning to entering it again). */
  readonly ms: number;
}

/**
 * A vCPU's instruction-emulator fallbacks by mnemonic, in shared memory:
 * the vCPU thread is the only writer and the main thread can read it at
 * any time, also after the thread is gone (a report, a reset in place). A
 * slot's name is written before the slot count that publishes it is
 * stored, and never changes after.
 */
export class FallbackCounters {
  readonly #used: Int32Array;
  readonly #names: Uint8Array;
  readonly #numbers: Float64Array;
  /** Writer side: name -> slot. */
  readonly #slots = new Map<string, number>();

  /** Binds the table at `offset` (8-aligned) of `buffer`. */
  constructor(buffer: SharedArrayBuffer, offset: number) {
    this.#used = new Int32Array(buffer, offset, 2);
    this.#names = new Uint8Array(
      buffer,
      offset + FB_NAMES,
      FALLBACK_SLOTS * (FALLBACK_NAME_BYTES + 1),
    );
    this.#numbers = new Float64Array(buffer, offset + FB_NUMBERS, FALLBACK_SLOTS * 2);
  }

  /** Bytes the table takes. */
  static readonly bytes: number = FB_BYTES;

  /** Counts one fallback of `name` that took `ns` nanoseconds (vCPU thread only). */
  record(name: string, ns: number): void {
    let slot = this.#slots.get(name);
    if (slot === undefined) {
      const used = Atomics.load(this.#used, 0);
      if (used < FALLBACK_SLOTS - 1) {
        slot = used;
        this.#writeName(slot, name);
        Atomics.store(this.#used, 0, used + 1);
      } else {
        slot = FALLBACK_SLOTS - 1;
        if (used === FALLBACK_SLOTS - 1) {
          this.#writeName(slot, FALLBACK_OVERFLOW);
          Atomics.store(this.#used, 0, FALLBACK_SLOTS);
        }
      }
      this.#slots.set(name, slot);
    }
    this.#numbers[2 * slot]++;
    this.#numbers[2 * slot + 1] += ns;
  }

  #writeName(slot: number, name: string): void {
    const at = slot * (FALLBACK_NAME_BYTES + 1);
    const bytes = new TextEncoder().encode(name).subarray(0, FALLBACK_NAME_BYTES);
    this.#names.set(bytes, at + 1);
    this.#names[at] = bytes.length;
  }

  /** The counts by name, in the order first seen. */
  snapshot(): Record<string, FallbackCount> {
    const out: Record<string, FallbackCount> = {};
    const used = Math.min(Atomics.load(this.#used, 0), FALLBACK_SLOTS);
    const dec = new TextDecoder();
    for (let i = 0; i < used; i++) {
      const at = i * (FALLBACK_NAME_BYTES + 1);
      const name = dec.decode(this.#names.slice(at + 1, at + 1 + this.#names[at]));
      out[name] = { count: this.#numbers[2 * i], ms: this.#numbers[2 * i + 1] / 1e6 };
    }
    return out;
  }
}

/** One vCPU's shared control words and statistics. */
export class VcpuControl {
  /** The shared buffer; send it to the vCPU's Worker. */
  readonly buffer: SharedArrayBuffer;
  readonly #w: Int32Array;
  /** Statistics and timestamps; the owning vCPU thread is the only writer. */
  readonly stats: Float64Array;
  /** Instruction-emulator fallbacks by mnemonic; the owning vCPU thread is the only writer. */
  readonly fallbacks: FallbackCounters;

  /** Creates a fresh block, or binds one received from another thread. */
  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ??
      new SharedArrayBuffer(V_STATS_BYTES + FallbackCounters.bytes + 4 + VCPU_CALL_BYTES);
    this.#w = new Int32Array(this.buffer, 0, V_WORDS);
    this.stats = new Float64Array(this.buffer, V_WORDS * 4, V_F64);
    this.fallbacks = new FallbackCounters(this.buffer, V_STATS_BYTES);
    const at = V_STATS_BYTES + FallbackCounters.bytes;
    this.#callLen = new Int32Array(this.buffer, at, 1);
    this.#callData = new Uint8Array(this.buffer, at + 4, VCPU_CALL_BYTES);
  }

  readonly #callLen: Int32Array;
  readonly #callData: Uint8Array;

  /**
   * Host calls: the main thread asks the vCPU thread to run a short
   * operation on its vCPU between two KVM_RUNs (registers, debug registers,
   * an NMI, a page walk): only the thread that runs a vCPU may use its fd
   * without waiting for KVM_RUN to return. The main thread posts the
   * message and kicks the vCPU; the vCPU thread takes it, runs it and
   * answers in the same area. One call at a time per vCPU. False when the
   * mailbox is still busy with an earlier call the vCPU thread has taken.
   */
  postCall(message: string): boolean {
    const cur = Atomics.load(this.#w, V_CALL);
    if (cur === VCPU_CALL.posted || cur === VCPU_CALL.taken) return false;
    this.#putCall(message);
    Atomics.store(this.#w, V_CALL, VCPU_CALL.posted);
    // A vCPU thread asleep on its request word wakes on this notify (the value stays).
    Atomics.notify(this.#w, V_REQUEST);
    return true;
  }

  /** True while a posted call waits for the vCPU thread (read by the vCPU thread). */
  get callPending(): boolean {
    return Atomics.load(this.#w, V_CALL) === VCPU_CALL.posted;
  }

  /** Takes the posted call's message (vCPU thread); undefined if it was withdrawn. */
  takeCall(): string | undefined {
    if (
      Atomics.compareExchange(this.#w, V_CALL, VCPU_CALL.posted, VCPU_CALL.taken) !==
        VCPU_CALL.posted
    ) return undefined;
    return new TextDecoder().decode(this.#callData.slice(0, Atomics.load(this.#callLen, 0)));
  }

  /** Answers the call taken (vCPU thread) and wakes the caller. */
  answerCall(message: string): void {
    this.#putCall(message);
    Atomics.store(this.#w, V_CALL, VCPU_CALL.done);
    Atomics.notify(this.#w, V_CALL);
  }

  /** Wakes a vCPU thread asleep on its request word again (the call is still pending). */
  nudge(): void {
    Atomics.notify(this.#w, V_REQUEST);
  }

  /**
   * Waits up to `timeoutMs` for the answer. Returns it (the mailbox is idle
   * again), or undefined: with `giveUp`, a call still not taken is
   * withdrawn (without, it stays posted for another wait); one the vCPU
   * thread is running keeps the mailbox busy until it answers, and that
   * late answer is dropped by the next {@linkcode postCall}.
   */
  async waitCall(timeoutMs: number, giveUp = true): Promise<string | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const cur = Atomics.load(this.#w, V_CALL);
      if (cur === VCPU_CALL.done) {
        const answer = new TextDecoder().decode(
          this.#callData.slice(0, Atomics.load(this.#callLen, 0)),
        );
        Atomics.store(this.#w, V_CALL, VCPU_CALL.idle);
        return answer;
      }
      const left = deadline - performance.now();
      if (cur === VCPU_CALL.idle || left <= 0) break;
      const r = Atomics.waitAsync(this.#w, V_CALL, cur, left);
      if (r.async) await r.value;
    }
    if (giveUp) Atomics.compareExchange(this.#w, V_CALL, VCPU_CALL.posted, VCPU_CALL.idle);
    return undefined;
  }

  #putCall(message: string): void {
    const { read, written } = new TextEncoder().encodeInto(message, this.#callData);
    if (read < message.length) throw new RangeError("vCPU call message too long");
    Atomics.store(this.#callLen, 0, written);
  }

  /** The vCPU's state. */
  get state(): VcpuStateName {
    return STATE_NAMES[Atomics.load(this.#w, V_STATE)];
  }

  /** Sets the state (vCPU thread only) and wakes anyone waiting on it. */
  setState(s: VcpuStateName): void {
    Atomics.store(this.#w, V_STATE, VCPU_STATE[s]);
    Atomics.notify(this.#w, V_STATE);
  }

  /** Resolves when the state differs from `s`, or after `timeoutMs`. */
  async waitStateChange(s: VcpuStateName, timeoutMs?: number): Promise<void> {
    const r = Atomics.waitAsync(this.#w, V_STATE, VCPU_STATE[s], timeoutMs);
    if (r.async) await r.value;
  }

  /** The pending request (read by the vCPU thread). */
  get request(): number {
    return Atomics.load(this.#w, V_REQUEST);
  }

  /**
   * Posts a request and wakes the vCPU thread if it sleeps on its request
   * word. A later request replaces one not yet taken, except "exit", which
   * stays until the vCPU takes it: a pause or resume must not keep a
   * stopping vCPU from finishing.
   */
  setRequest(r: number): void {
    for (;;) {
      const cur = Atomics.load(this.#w, V_REQUEST);
      if (cur === VCPU_REQUEST.exit) return;
      if (Atomics.compareExchange(this.#w, V_REQUEST, cur, r) === cur) break;
    }
    Atomics.notify(this.#w, V_REQUEST);
  }

  /** Sleeps (vCPU thread) until the request word is no longer `r`. */
  waitRequestChange(r: number, timeoutMs?: number): void {
    Atomics.wait(this.#w, V_REQUEST, r, timeoutMs);
  }

  /** Atomically takes the pending request, leaving `none`. */
  takeRequest(): number {
    return Atomics.exchange(this.#w, V_REQUEST, VCPU_REQUEST.none);
  }

  /** The vCPU thread's kernel thread id, 0 until it started. */
  get tid(): number {
    return Atomics.load(this.#w, V_TID);
  }

  /** Publishes the vCPU thread's tid. */
  set tid(t: number) {
    Atomics.store(this.#w, V_TID, t);
    Atomics.notify(this.#w, V_TID);
  }

  /** Resolves once the tid is published, or after `timeoutMs`. */
  async waitTid(timeoutMs?: number): Promise<number> {
    const r = Atomics.waitAsync(this.#w, V_TID, 0, timeoutMs);
    if (r.async) await r.value;
    return this.tid;
  }

  /** Index of a statistics slot. */
  static slot(name: VcpuStatName): number {
    return VCPU_STATS.indexOf(name);
  }

  /** Wall-clock time (ms, sub-ms precision) of the first KVM_RUN, 0 before. */
  get firstRunWallMs(): number {
    return this.stats[V_FIRST_RUN];
  }

  /** Monotonic ns of the first KVM_RUN, 0 before. */
  get firstRunNs(): number {
    return this.stats[V_FIRST_RUN_NS];
  }

  /** Monotonic ns when the vCPU last left its run loop. */
  get suspendNs(): number {
    return this.stats[V_SUSPEND_NS];
  }

  /** Records the first KVM_RUN (vCPU thread). */
  markFirstRun(wallMs: number, ns: number): void {
    this.stats[V_FIRST_RUN] = wallMs;
    this.stats[V_FIRST_RUN_NS] = ns;
  }

  /** Records leaving the run loop (vCPU thread). */
  markSuspend(ns: number): void {
    this.stats[V_SUSPEND_NS] = ns;
  }

  /** A copy of the statistics by name. */
  snapshotStats(): Record<VcpuStatName, number> {
    const out = {} as Record<VcpuStatName, number>;
    VCPU_STATS.forEach((n, i) => (out[n] = this.stats[i]));
    return out;
  }
}

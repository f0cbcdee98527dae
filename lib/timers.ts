/**
 * Device timers shared by all threads. Each timer of each device owns a slot
 * holding its absolute deadline (ns on the VM clock, or "disarmed"). Any
 * thread may arm a slot (a vCPU writing an HPET comparator, say); one timer
 * thread sleeps until the earliest deadline and runs the owning device's
 * `onTimer` under the device lock. Arming bumps a generation word and
 * notifies the timer thread, so it never sleeps past a new, earlier deadline.
 *
 * @module
 */
import type { Timer } from "../devices/device.ts";

/** In a timer thread's stop block (Int32Array): set to 1 to ask the thread to stop. */
export const TIMER_STOP = 0;
/** In a timer thread's stop block: the thread sets it to 1 once it has stopped. */
export const TIMER_STOPPED = 1;

/** The "disarmed" deadline. */
export const DISARMED = -1n;

/** Shared timer slots. */
export class TimerTable {
  /** The shared buffer; send it to every thread. */
  readonly buffer: SharedArrayBuffer;
  /** Deadlines in ns on the VM clock; DISARMED when off. */
  readonly deadlines: BigInt64Array;
  readonly #gen: Int32Array;

  /** Creates a table of `slots` timers, or binds a received buffer. */
  constructor(slotsOrBuffer: number | SharedArrayBuffer) {
    this.buffer = typeof slotsOrBuffer === "number"
      ? new SharedArrayBuffer(8 + Math.max(1, slotsOrBuffer) * 8)
      : slotsOrBuffer;
    this.#gen = new Int32Array(this.buffer, 0, 2);
    this.deadlines = new BigInt64Array(this.buffer, 8);
    if (typeof slotsOrBuffer === "number") this.deadlines.fill(DISARMED);
  }

  /** Number of slots. */
  get size(): number {
    return this.deadlines.length;
  }

  /** The timer of slot `slot`, usable from the calling thread. */
  timer(slot: number): Timer {
    if (!(slot >= 0 && slot < this.deadlines.length)) {
      throw new Error(`timer slot ${slot} out of range`);
    }
    return {
      arm: (deadline: number) => {
        const d = BigInt(Math.max(0, Math.ceil(deadline)));
        if (Atomics.exchange(this.deadlines, slot, d) !== d) this.#kick();
      },
      cancel: () => {
        Atomics.store(this.deadlines, slot, DISARMED);
      },
    };
  }

  /** Wakes the timer thread so it looks at the slots (and its stop word) again. */
  #kick(): void {
    Atomics.add(this.#gen, 0, 1);
    Atomics.notify(this.#gen, 0);
  }

  /** Wakes the timer thread, e.g. after setting its stop word. */
  wake(): void {
    this.#kick();
  }

  /** Disarms every timer (a VM reset keeps only what devices re-arm). */
  disarmAll(): void {
    for (let i = 0; i < this.deadlines.length; i++) Atomics.store(this.deadlines, i, DISARMED);
    this.#kick();
  }

  /** The generation word, read before scanning the slots. */
  generation(): number {
    return Atomics.load(this.#gen, 0);
  }

  /** Sleeps (timer thread) until the generation moves past `seen` or `timeoutMs` passes. */
  sleep(seen: number, timeoutMs: number): void {
    Atomics.wait(this.#gen, 0, seen, timeoutMs);
  }

  /** The earliest armed deadline, or undefined. */
  earliest(): number | undefined {
    let best: bigint | undefined;
    for (let i = 0; i < this.deadlines.length; i++) {
      const d = Atomics.load(this.deadlines, i);
      if (d !== DISARMED && (best === undefined || d < best)) best = d;
    }
    return best === undefined ? undefined : Number(best);
  }

  /**
   * Disarms and returns the slot if its deadline has passed at `now`
   * (compare-and-swap, so a concurrent re-arm is never lost).
   */
  takeExpired(slot: number, now: number): boolean {
    const d = Atomics.load(this.deadlines, slot);
    if (d === DISARMED || Number(d) > now) return false;
    return Atomics.compareExchange(this.deadlines, slot, d, DISARMED) === d;
  }
}

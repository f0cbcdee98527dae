/**
 * The VM's device lock: a futex-style mutex over one Int32 in shared memory,
 * usable from every thread (each vCPU Worker and the main thread). Device
 * models run under it, so their shared state changes one access at a time.
 * Uncontended acquire/release is one compare-exchange each; a contended
 * acquire sleeps in Atomics.wait instead of spinning.
 *
 * States: 0 free, 1 held, 2 held with waiters (Drepper, "Futexes Are Tricky").
 *
 * @module
 */
import type { DeviceLock } from "../../devices/bus.ts";

/** A mutex over `word[index]` of a shared Int32Array. */
export class SharedMutex implements DeviceLock {
  readonly #word: Int32Array;
  readonly #index: number;

  /** Binds the mutex to a word that every participating thread shares. */
  constructor(word: Int32Array, index: number) {
    this.#word = word;
    this.#index = index;
  }

  /** Takes the lock, sleeping while another thread holds it. */
  acquire(): void {
    const w = this.#word, i = this.#index;
    let c = Atomics.compareExchange(w, i, 0, 1);
    if (c === 0) return;
    // Brief spin: device accesses are short, a sleep costs a context switch.
    for (let spin = 0; spin < 100; spin++) {
      c = Atomics.compareExchange(w, i, 0, 1);
      if (c === 0) return;
    }
    if (c !== 2) c = Atomics.exchange(w, i, 2);
    while (c !== 0) {
      Atomics.wait(w, i, 2);
      c = Atomics.exchange(w, i, 2);
    }
  }

  /** Takes the lock if it is free; never waits. */
  tryAcquire(): boolean {
    return Atomics.compareExchange(this.#word, this.#index, 0, 1) === 0;
  }

  /**
   * Runs `fn` with the lock held, without ever blocking the calling thread:
   * while another thread holds the lock it retries every millisecond. For the
   * main thread, which must never sleep in Atomics.wait (its event loop
   * handles signals and the console).
   */
  async withAsync<T>(fn: () => T, retryMs = 1): Promise<T> {
    while (!this.tryAcquire()) await new Promise((r) => setTimeout(r, retryMs));
    try {
      return fn();
    } finally {
      this.release();
    }
  }

  /** Releases the lock, waking one sleeper if there is one. */
  release(): void {
    if (Atomics.sub(this.#word, this.#index, 1) !== 1) {
      Atomics.store(this.#word, this.#index, 0);
      Atomics.notify(this.#word, this.#index, 1);
    }
  }

  /** Runs `fn` with the lock held. */
  with<T>(fn: () => T): T {
    this.acquire();
    try {
      return fn();
    } finally {
      this.release();
    }
  }
}

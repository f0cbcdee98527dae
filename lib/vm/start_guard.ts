/**
 * Signals while `up` starts a VM: checking the definition, binding the
 * control socket, loading the payload, creating the devices, starting the
 * Workers. A SIGTERM, SIGINT or SIGHUP in that time ends dhyve within a
 * second with status 1 (a poweroff: the guest never ran), releasing
 * everything.
 *
 * Two listeners hear each signal. The main thread's aborts
 * {@linkcode StartGuard.signal}; the build looks at it between its steps
 * (and while a console FIFO waits for a reader), and `up` then releases
 * what exists and exits. A small thread's (lib/vm/start_guard_worker.ts)
 * covers the stretches in which the main thread is busy and hears
 * nothing: unless the main thread claimed the way out within a short grace,
 * it removes the control socket and ends the process at once, which
 * releases the rest (fds, guest RAM). Once the guest runs,
 * {@linkcode StartGuard.dispose} hands the signals over to the running
 * VM's own handlers (bhyve's: the ACPI power button, then a forced
 * poweroff).
 *
 * @module
 */
import {
  CLAIM_DONE,
  CLAIM_GUARD,
  CLAIM_MAIN,
  CLAIM_NONE,
  type StartGuardInit,
  type StartGuardSocket,
} from "./start_guard_worker.ts";

/** The signals that end a start. */
export const START_SIGNALS: readonly Deno.Signal[] = ["SIGTERM", "SIGINT", "SIGHUP"];

/** The reason {@linkcode StartGuard.signal} aborts with: which signal came. */
export class StartAborted extends Error {
  /** The signal. */
  readonly signalName: Deno.Signal;
  /** Builds the error. */
  constructor(signalName: Deno.Signal) {
    super(`${signalName}: stopped while starting, before the guest ran`);
    this.name = "StartAborted";
    this.signalName = signalName;
  }
}

/** Timing of a {@linkcode StartGuard}. */
export interface StartGuardOptions {
  /** ms the main thread has to claim the way out before the guard thread ends dhyve (default 250). */
  readonly graceMs?: number;
  /** ms after a signal by which dhyve has ended, whoever claimed (default 800). */
  readonly deadlineMs?: number;
}

/** Listens for the start signals until {@linkcode StartGuard.dispose}. */
export class StartGuard {
  readonly #controller = new AbortController();
  readonly #claim = new Int32Array(new SharedArrayBuffer(4));
  readonly #worker: Worker;
  readonly #listeners: [Deno.Signal, () => void][];
  #disposed = false;

  /** Starts listening (in this thread at once, in the guard thread within a few ms). */
  constructor(options: StartGuardOptions = {}) {
    this.#listeners = START_SIGNALS.map((s) => [s, () => this.#abort(s)]);
    for (const [s, f] of this.#listeners) Deno.addSignalListener(s, f);
    this.#worker = new Worker(new URL("./start_guard_worker.ts", import.meta.url), {
      type: "module",
      name: "start-guard",
    });
    this.#worker.postMessage(
      {
        claim: this.#claim.buffer as SharedArrayBuffer,
        graceMs: options.graceMs ?? 250,
        deadlineMs: options.deadlineMs ?? 800,
        signals: START_SIGNALS,
      } satisfies StartGuardInit,
    );
  }

  /** Aborts, with a {@linkcode StartAborted}, on the first start signal. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  #abort(name: Deno.Signal): void {
    if (!this.#controller.signal.aborted) this.#controller.abort(new StartAborted(name));
  }

  /** The control socket to remove if the guard thread must end dhyve itself. */
  watchSocket(path: string): void {
    let ino: number | null = null;
    try {
      ino = Deno.lstatSync(path).ino;
    } catch { /* not there: removing it is a no-op anyway */ }
    this.#worker.postMessage({ socket: path, ino } satisfies StartGuardSocket);
  }

  /**
   * This thread takes the way out of an aborted start (it will release
   * and exit): true, unless the guard thread already took it (it is ending
   * dhyve at this moment).
   */
  claim(): boolean {
    const was = Atomics.compareExchange(this.#claim, 0, CLAIM_NONE, CLAIM_MAIN);
    return was === CLAIM_NONE || was === CLAIM_MAIN;
  }

  /**
   * The start is over: stops listening and ends the guard thread. Install
   * the running VM's signal handlers first (a signal with no listener at
   * all would be lost). False when the guard thread is already ending
   * dhyve. Idempotent.
   */
  dispose(): boolean {
    if (this.#disposed) return true;
    const was = Atomics.compareExchange(this.#claim, 0, CLAIM_NONE, CLAIM_DONE);
    if (was === CLAIM_GUARD) return false;
    this.#disposed = true;
    for (const [s, f] of this.#listeners) Deno.removeSignalListener(s, f);
    this.#worker.terminate();
    return true;
  }
}

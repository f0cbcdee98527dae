/**
 * The host side of the serial console: stdin into the UART that is wired to
 * "stdio". On a terminal, stdin is put in raw mode (so Ctrl-C reaches the
 * guest) and an escape sequence, Ctrl-A followed by a key, talks to dhyve:
 *
 * - `Ctrl-A x`: quit (forced poweroff, exit status 1)
 * - `Ctrl-A p`: press the ACPI power button (the guest shuts down)
 * - `Ctrl-A Ctrl-A`: send one Ctrl-A to the guest
 * - `Ctrl-A h` or `Ctrl-A ?`: show this help on stderr
 *
 * Piped stdin works too: it is fed to the guest without escape processing,
 * as fast as the UART's receive FIFO takes it; at end of input the guest
 * simply sees no more bytes. At most {@linkcode INPUT_HOLD} bytes wait in
 * dhyve for a guest that does not read: beyond that, stdin is not read
 * until the guest takes some (back-pressure), so memory stays flat.
 *
 * @module
 */
import type { ConsoleInput } from "../devices/registry.ts";
import { getLogger } from "@logtape/logtape";
import type { SharedMutex } from "./vm/lock.ts";

const log = getLogger(["dhyve", "console"]);

/** Ctrl-A. */
export const ESCAPE = 0x01;

/** What the escape sequences ask for. */
export interface ConsoleActions {
  quit(): void;
  powerButton(): void;
}

/** The help text for the escape sequences. */
export const ESCAPE_HELP = [
  "dhyve console escapes:",
  "  Ctrl-A x       quit (forced poweroff)",
  "  Ctrl-A p       press the ACPI power button",
  "  Ctrl-A Ctrl-A  send Ctrl-A to the guest",
  "  Ctrl-A h       this help",
].join("\r\n") + "\r\n";

/**
 * Splits terminal input into guest bytes and escape actions. Pure and
 * stateful across calls (an escape may straddle two reads).
 */
export class EscapeParser {
  #pending = false;

  /** Returns the bytes for the guest; calls `actions` for escapes. */
  feed(input: Uint8Array, actions: ConsoleActions & { help(): void }): Uint8Array {
    const out: number[] = [];
    for (const b of input) {
      if (this.#pending) {
        this.#pending = false;
        if (b === ESCAPE) out.push(ESCAPE);
        else if (b === 0x78 /* x */ || b === 0x58) actions.quit();
        else if (b === 0x70 /* p */ || b === 0x50) actions.powerButton();
        else if (b === 0x68 /* h */ || b === 0x3f /* ? */) actions.help();
        // Anything else after Ctrl-A is dropped, as QEMU does.
      } else if (b === ESCAPE) {
        this.#pending = true;
      } else {
        out.push(b);
      }
    }
    return Uint8Array.from(out);
  }
}

/**
 * Bytes of guest input dhyve holds for a guest that is slow to read them
 * (the UART's receive FIFO is full). When they are all held, dhyve stops
 * reading stdin until the guest takes some: the terminal or the pipe then
 * holds the rest (back-pressure), and dhyve's memory stays flat whatever
 * is typed or piped in.
 */
export const INPUT_HOLD = 4096;

/** Feeds stdin to a console device until stopped. */
export class StdinConsole {
  readonly #device: () => ConsoleInput | undefined;
  readonly #lock: SharedMutex;
  readonly #actions: ConsoleActions & { help(): void };
  readonly #tty: boolean;
  readonly #parser = new EscapeParser();
  /** Input not yet taken by the device: the bytes themselves, copied out of stdin's buffers. */
  readonly #held = new Uint8Array(INPUT_HOLD);
  #heldLength = 0;
  /** Resolves the reader's wait for room in #held. */
  #room: (() => void) | undefined;
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  /**
   * Binds stdin to the device `device()` returns (looked up on each use: a VM
   * reset replaces the main thread's device instances); accesses take `lock`.
   */
  constructor(device: () => ConsoleInput | undefined, lock: SharedMutex, actions: ConsoleActions) {
    this.#device = device;
    this.#lock = lock;
    this.#actions = {
      ...actions,
      help: () => Deno.stderr.writeSync(new TextEncoder().encode(ESCAPE_HELP)),
    };
    this.#tty = Deno.stdin.isTerminal();
  }

  /** Starts reading (raw mode on a terminal). */
  start(): void {
    if (this.#tty) Deno.stdin.setRaw(true);
    this.#reader = Deno.stdin.readable.getReader();
    void this.#pump(this.#reader);
  }

  /** Bytes read from stdin and not yet taken by the device (at most {@linkcode INPUT_HOLD}). */
  get held(): number {
    return this.#heldLength;
  }

  async #pump(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    try {
      for (;;) {
        // Back-pressure: no read while all that may be held is held.
        while (this.#heldLength === INPUT_HOLD && !this.#stopped) {
          await new Promise<void>((resolve) => this.#room = resolve);
        }
        if (this.#stopped) break;
        const { value, done } = await reader.read();
        if (done || this.#stopped) break;
        const bytes = this.#tty ? this.#parser.feed(value, this.#actions) : value;
        for (let at = 0; at < bytes.length && !this.#stopped;) {
          const n = Math.min(INPUT_HOLD - this.#heldLength, bytes.length - at);
          this.#held.set(bytes.subarray(at, at + n), this.#heldLength);
          this.#heldLength += n;
          at += n;
          this.#flush();
          if (at < bytes.length && this.#heldLength === INPUT_HOLD) {
            await new Promise<void>((resolve) => this.#room = resolve);
          }
        }
      }
    } catch {
      // stdin closed or cancelled on stop
    }
  }

  /**
   * Moves held input into the device's FIFO. Retries shortly while the FIFO
   * is full, the device lock is busy or the VM is between two instances: the
   * main thread never waits for the lock, and input is never dropped.
   */
  #flush(): void {
    if (this.#stopped) return;
    try {
      const device = this.#device();
      if (this.#heldLength > 0 && device && this.#lock.tryAcquire()) {
        let n: number;
        try {
          n = device.receive(this.#held.subarray(0, this.#heldLength));
        } finally {
          this.#lock.release();
        }
        if (n > 0) {
          this.#held.copyWithin(0, n, this.#heldLength);
          this.#heldLength -= n;
          this.#wakeReader();
        }
      }
    } catch (e) {
      this.#heldLength = 0;
      this.#wakeReader();
      log.error("console input dropped: {message}", { message: (e as Error).message });
    }
    if (this.#heldLength > 0 && this.#retry === undefined) {
      // The guest drains the FIFO from its own thread; look again shortly.
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        this.#flush();
      }, 2);
    }
  }

  #wakeReader(): void {
    const wake = this.#room;
    this.#room = undefined;
    wake?.();
  }

  /** Stops reading and restores the terminal. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    this.#wakeReader();
    try {
      await this.#reader?.cancel();
    } catch { /* already closed */ }
    this.#reader?.releaseLock();
    if (this.#tty) {
      try {
        Deno.stdin.setRaw(false);
      } catch { /* not a terminal any more */ }
    }
  }
}

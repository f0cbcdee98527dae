/**
 * The console writer thread: it moves bytes from the output rings
 * (lib/output.ts) to their file descriptors with blocking write(2)s, outside
 * the device lock, so a slow or stalled reader never blocks a vCPU. When it
 * makes room in a ring a device was waiting on, it wakes the timer thread,
 * which tells the devices. On stop it writes out everything still queued.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { EAGAIN, EINTR, libc } from "../cpu/libc.ts";
import { OutputRing } from "./output.ts";
import { errnoText } from "./os_error.ts";
import { escapeText } from "./quote.ts";
import { TimerTable } from "./timers.ts";
import { WRITER_BELL, WRITER_STOP, WRITER_STOPPED } from "./output_constants.ts";

/** What the writer thread is given. */
export interface OutputWorkerInit {
  /** Each output: its ring and the file descriptor it goes to. */
  readonly outputs: readonly {
    readonly ring: SharedArrayBuffer;
    readonly fd: number;
    /** What the output is, for messages ("com1 output to serial.log"); "console output" when absent. */
    readonly name?: string;
  }[];
  /** The control block (WRITER_* words, lib/output_constants.ts). */
  readonly control: SharedArrayBuffer;
  /** The timer table, to wake the timer thread when a device may send again. */
  readonly timers: SharedArrayBuffer;
}

self.onmessage = (e: MessageEvent<OutputWorkerInit>) => {
  self.onmessage = null;
  const c = libc();
  const ctl = new Int32Array(e.data.control);
  const timers = new TimerTable(e.data.timers);
  const outputs = e.data.outputs.map((o) => ({
    ring: new OutputRing(o.ring),
    fd: o.fd,
    name: o.name ?? "console output",
    broken: false,
  }));
  try {
    for (;;) {
      const seen = Atomics.load(ctl, WRITER_BELL);
      for (const o of outputs) {
        while (o.ring.used > 0) {
          const chunk = o.ring.peek();
          let n = chunk.length;
          if (!o.broken) {
            const r = Number(c.fn.write(o.fd, chunk, BigInt(chunk.length)));
            if (r < 0) {
              const err = c.errno();
              if (err === EINTR) continue;
              if (err === EAGAIN) {
                // A non-blocking descriptor that is full: wait a little and retry.
                Atomics.wait(ctl, WRITER_STOPPED, 0, 1);
                continue;
              }
              // The reader is gone (EPIPE, a closed file): the output goes nowhere from now on.
              o.broken = true;
              const msg = new TextEncoder().encode(
                `dhyve: ${escapeText(o.name)} stopped: ${errnoText(err)}\n`,
              );
              c.fn.write(2, msg, BigInt(msg.length));
            } else {
              n = r;
            }
          }
          if (o.ring.consume(n)) timers.wake();
        }
      }
      if (Atomics.load(ctl, WRITER_STOP) !== 0) break;
      Atomics.wait(ctl, WRITER_BELL, seen);
    }
  } finally {
    Atomics.store(ctl, WRITER_STOPPED, 1);
    Atomics.notify(ctl, WRITER_STOPPED);
  }
  self.close();
};

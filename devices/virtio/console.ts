/**
 * virtio-console (virtio 1.2 §5.3) with a single port: receiveq0 (0) and
 * transmitq0 (1), no MULTIPORT (so no control queues, §5.3.2), over an
 * injected {@linkcode ConsoleBackend} (a file, a socket, a terminal).
 *
 * Features offered (§5.3.3): SIZE when both `cols` and `rows` are given.
 * Not EMERG_WRITE: an emerg_wr write happens on a vCPU thread, away from
 * the backend (which belongs to the I/O worker), so it could only be
 * stored, not delivered; offering it would silently lose those characters.
 *
 * Decisions:
 * - Transmit (§5.3.6): each chain's bytes go to the backend straight from
 *   guest memory (no copy). When the backend takes fewer bytes (full), the
 *   chain stays in flight, unreturned, with its unwritten rest; nothing more
 *   is popped, so the guest is throttled by its own ring and no byte is
 *   lost or buffered on the host. The I/O worker polls only for
 *   readability, so there is no "writable again" event: the rest is retried
 *   on the next event of any kind (a notification of either queue, or input
 *   being readable); a notification is armed so that the guest's next write
 *   is such an event. A backend that throws loses the rest of that chain,
 *   counted in `txDropped` and logged.
 * - Receive (§5.3.6): input is read straight into the guest's buffer (its
 *   first writable segment), one read per chain. With no buffers posted the
 *   input fd is not polled (poll is level-triggered, an undrained fd would
 *   spin the worker) until the receive queue is notified. read() = -1
 *   (closed) or a throwing read stops input for good.
 *
 * @module
 */
import { ChainReader, ChainWriter, type SplitQueue } from "./queue.ts";
import {
  type DescriptorChain,
  errorText,
  featureBit,
  VIRTIO_ID,
  type VirtioDeviceModel,
  type VirtioQueueContext,
  type VirtioQueueHandler,
} from "./types.ts";

// ---------------------------------------------------------------------------
// Constants (virtio 1.2 §5.3).

/** virtio-console feature bits (§5.3.3), as bit numbers. */
export const VIRTIO_CONSOLE_F = {
  /** Configuration cols and rows are valid: offered when a size is configured. */
  size: 0,
  /** Multiple ports and control queues (not offered). */
  multiport: 1,
  /** Emergency write through emerg_wr (not offered, see the module notes). */
  emergWrite: 2,
} as const;

/** Device configuration offsets (§5.3.4, struct virtio_console_config). */
export const CONSOLE_CONFIG = {
  /** le16 cols. */
  cols: 0,
  /** le16 rows. */
  rows: 2,
  /** le32 max_nr_ports (meaningful with MULTIPORT only). */
  maxNrPorts: 4,
  /** le32 emerg_wr (meaningful with EMERG_WRITE only). */
  emergWr: 8,
  /** Bytes of the configuration. */
  size: 12,
} as const;

/** Queue indices of port 0 (§5.3.2). */
export const CONSOLE_QUEUE = { rx: 0, tx: 1 } as const;
/** Size of each queue. */
export const CONSOLE_QUEUE_SIZE = 256;
/** PCI class: simple communication controller, other. */
export const CONSOLE_PCI_CLASS = 0x078000;

// ---------------------------------------------------------------------------
// The model.

/** The host end of a console port. */
export interface ConsoleBackend {
  /** An fd that is readable when input is waiting, or null for output only. May change between calls. */
  readonly fd: number | null;
  /**
   * The fd output goes to, polled for writability while output is held
   * (absent or null: the worker cannot wait for room, held output is
   * retried at the next event).
   */
  readonly outFd?: number | null;
  /**
   * Writes what it can of `bytes` (valid only during the call): the bytes
   * taken, fewer (0 included) when full. May throw: the rest of that chain
   * is dropped and counted.
   */
  write(bytes: Uint8Array): number;
  /** Reads input into `buf`: the bytes read, 0 when there is nothing now, -1 when closed for good. */
  read(buf: Uint8Array): number;
}

/** What a virtio-console device is configured with. */
export interface VirtioConsoleOptions {
  /** Console width in characters (with `rows`: VIRTIO_CONSOLE_F_SIZE). */
  readonly cols?: number;
  /** Console height in characters (with `cols`: VIRTIO_CONSOLE_F_SIZE). */
  readonly rows?: number;
}

/**
 * The virtio-console device model (§5.3): class 0x078000, one port
 * (receiveq0, transmitq0, 256 entries each), SIZE when `cols` and `rows`
 * are both given (each 1..65535; RangeError otherwise, or when only one is).
 * The configuration is read-only.
 */
export function virtioConsoleModel(o: VirtioConsoleOptions = {}): VirtioDeviceModel {
  const { cols, rows } = o;
  if ((cols === undefined) !== (rows === undefined)) {
    throw new RangeError("virtio-console: give both cols and rows, or neither");
  }
  for (const [name, v] of [["cols", cols], ["rows", rows]] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 1 && v <= 0xffff)) {
      throw new RangeError(`virtio-console: ${name} ${v} is not in 1..65535`);
    }
  }
  const sized = cols !== undefined && rows !== undefined;
  return {
    deviceId: VIRTIO_ID.console,
    pciClass: CONSOLE_PCI_CLASS,
    features: sized ? featureBit(VIRTIO_CONSOLE_F.size) : 0n,
    queueSizes: [CONSOLE_QUEUE_SIZE, CONSOLE_QUEUE_SIZE],
    configSize: CONSOLE_CONFIG.size,
    initConfig(config: Uint8Array): void {
      const v = new DataView(config.buffer, config.byteOffset, config.byteLength);
      config.fill(0, 0, CONSOLE_CONFIG.size);
      // §5.3.4: cols/rows are valid with SIZE only; 0 otherwise.
      v.setUint16(CONSOLE_CONFIG.cols, cols ?? 0, true);
      v.setUint16(CONSOLE_CONFIG.rows, rows ?? 0, true);
      // §5.3.4: max_nr_ports exists with MULTIPORT only; one port is the truth.
      v.setUint32(CONSOLE_CONFIG.maxNrPorts, 1, true);
      // emerg_wr stays 0: EMERG_WRITE is not offered, and writes are dropped
      // (no configWritable).
    },
  };
}

// ---------------------------------------------------------------------------
// The queue handler.

/** Counters of a virtio-console handler. */
export interface ConsoleStats {
  /** Bytes delivered to the guest. */
  rxBytes: number;
  /** Failed backend reads (each one stops input). */
  rxErrors: number;
  /** Bytes the backend took from the guest. */
  txBytes: number;
  /** Guest bytes lost because the backend threw. */
  txDropped: number;
  /** Backend writes that threw. */
  txErrors: number;
  /** Times the backend was full with guest output still waiting. */
  txStalls: number;
}

/** A virtio-console queue handler with its counters. */
export type ConsoleHandler = VirtioQueueHandler & {
  readonly stats: Readonly<ConsoleStats>;
  /** Whether guest output waits for the backend (a chain is in flight). */
  readonly txPending: boolean;
};

/**
 * The work of a virtio-console port in its I/O worker: guest output to
 * `backend.write`, `backend.read` input into the guest's receive buffers
 * (see the module notes for back-pressure and closing). `queues` are the
 * enabled queues by index (null: not enabled). notify() throws
 * {@linkcode VirtqueueError} on a malformed ring.
 */
export function createConsoleHandler(
  ctx: VirtioQueueContext,
  queues: readonly (SplitQueue | null | undefined)[],
  backend: ConsoleBackend,
): ConsoleHandler {
  return new ConsoleQueueHandler(ctx, queues, backend);
}

class ConsoleQueueHandler implements VirtioQueueHandler {
  readonly stats: ConsoleStats = {
    rxBytes: 0,
    rxErrors: 0,
    txBytes: 0,
    txDropped: 0,
    txErrors: 0,
    txStalls: 0,
  };
  readonly #ctx: VirtioQueueContext;
  readonly #rx: SplitQueue | null;
  readonly #tx: SplitQueue | null;
  readonly #backend: ConsoleBackend;
  /** The transmit chain being written, not yet returned. */
  #txChain: DescriptorChain | null = null;
  /** Its bytes not yet written: live views of guest memory, from #txAt on. */
  #txViews: Uint8Array[] = [];
  #txAt = 0;
  /** A receive chain popped but not filled yet (no input was waiting). */
  #rxHeld: DescriptorChain | null = null;
  /** No receive buffers: input is not polled until the receive queue is notified. */
  #rxStarved = false;
  /** Input closed (or failed): never polled again. */
  #inputClosed = false;
  #closed = false;

  constructor(
    ctx: VirtioQueueContext,
    queues: readonly (SplitQueue | null | undefined)[],
    backend: ConsoleBackend,
  ) {
    this.#ctx = ctx;
    this.#rx = queues[CONSOLE_QUEUE.rx] ?? null;
    this.#tx = queues[CONSOLE_QUEUE.tx] ?? null;
    this.#backend = backend;
  }

  get txPending(): boolean {
    return this.#txChain !== null;
  }

  notify(q: number): void {
    if (this.#closed) return;
    if (q === CONSOLE_QUEUE.rx) {
      // The driver posted receive buffers: poll the input again.
      this.#rxStarved = false;
      this.#serveRx();
      if (this.#txChain) this.#serveTx(); // any event retries held output
    } else if (q === CONSOLE_QUEUE.tx) {
      this.#serveTx();
    }
  }

  pollWritableFds(): readonly number[] {
    const fd = this.#backend.outFd;
    return this.#closed || this.#txChain === null || fd === undefined || fd === null || fd < 0
      ? []
      : [fd];
  }

  pollFds(): readonly number[] {
    const fd = this.#backend.fd;
    if (this.#closed || fd === null || !this.#rx || this.#rxStarved || this.#inputClosed) return [];
    return [fd];
  }

  ready(_fd: number): void {
    if (this.#closed) return;
    this.#serveRx();
    if (this.#txChain) this.#serveTx(); // any event retries held output
  }

  close(): void {
    // Reset: the rings are gone; chains in flight are forgotten with them.
    this.#closed = true;
    this.#txChain = null;
    this.#txViews = [];
    this.#rxHeld = null;
  }

  /**
   * Writes the chain in flight, then pops and writes more until the queue
   * is empty or the backend is full (§5.3.6: the transmitq carries output).
   */
  #serveTx(): void {
    const q = this.#tx;
    if (!q) return;
    for (;;) {
      if (this.#txChain !== null && !this.#flush(q)) {
        // Full: keep the chain, and make the guest's next write an event
        // (§2.7.10), which retries.
        this.stats.txStalls++;
        q.armNotification();
        break;
      }
      const chain = q.pop();
      if (chain === null) {
        q.armNotification();
        if (q.pending() === 0) break;
        continue;
      }
      this.#txChain = chain;
      this.#txViews = new ChainReader(this.#ctx.memory, chain).views(chain.readableLength);
      this.#txAt = 0;
    }
    if (q.shouldInterrupt()) this.#ctx.interrupt(CONSOLE_QUEUE.tx);
  }

  /**
   * Writes the rest of the chain in flight; returns it (len 0: transmit
   * buffers are device-readable only) and returns true when done, false
   * when the backend is full.
   */
  #flush(q: SplitQueue): boolean {
    const chain = this.#txChain!;
    const views = this.#txViews;
    while (this.#txAt < views.length) {
      const v = views[this.#txAt];
      let n: number;
      try {
        n = this.#backend.write(v);
      } catch (e) {
        let lost = 0;
        for (let i = this.#txAt; i < views.length; i++) lost += views[i].length;
        this.stats.txErrors++;
        this.stats.txDropped += lost;
        this.#ctx.log(`output: ${lost} bytes lost: ${errorText(e)}`);
        break;
      }
      n = Number.isInteger(n) ? Math.min(Math.max(n, 0), v.length) : 0;
      this.stats.txBytes += n;
      if (n < v.length) {
        views[this.#txAt] = v.subarray(n);
        return false;
      }
      this.#txAt++;
    }
    this.#txChain = null;
    this.#txViews = [];
    q.push(chain.head, 0);
    return true;
  }

  /** Reads input into receive buffers while both are there (§5.3.6). */
  #serveRx(): void {
    const q = this.#rx;
    if (!q || this.#rxStarved || this.#inputClosed || this.#backend.fd === null) return;
    for (let i = 0; i < q.size; i++) {
      let chain = this.#rxHeld;
      if (chain === null) {
        chain = q.pop();
        if (chain === null) {
          // §2.7.10: a notification when the driver posts the next buffer.
          q.armNotification();
          if (q.pending() > 0) continue;
          this.#rxStarved = true;
          break;
        }
        if (chain.writableLength === 0) {
          q.push(chain.head, 0); // nothing can go in it
          continue;
        }
        this.#rxHeld = chain;
      }
      // Straight into guest memory: the first writable segment (the
      // writer's own count is not used; len is what was read).
      const [dst] = new ChainWriter(this.#ctx.memory, chain).views(chain.writable[0].len);
      let n: number;
      try {
        n = this.#backend.read(dst);
      } catch (e) {
        this.stats.rxErrors++;
        this.#inputClosed = true;
        this.#ctx.log(`input failed, no longer read: ${errorText(e)}`);
        break;
      }
      if (n < 0) {
        this.#inputClosed = true;
        this.#ctx.log("input closed");
        break;
      }
      if (!(n > 0)) break; // nothing now: the chain waits
      n = Math.min(Math.floor(n), dst.length);
      this.#rxHeld = null;
      q.push(chain.head, n);
      this.stats.rxBytes += n;
    }
    if (q.shouldInterrupt()) this.#ctx.interrupt(CONSOLE_QUEUE.rx);
  }
}

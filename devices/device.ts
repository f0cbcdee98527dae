/**
 * What a device model is and what it is given.
 *
 * A device is a pure state machine: it sees only offsets inside its own
 * window (`read(offset, size)` / `write(offset, size, value)`) and reaches
 * the outside world only through what it is handed: interrupt lines, a
 * clock, timers, an output sink and the VM's suspend request. Nothing in
 * `devices/` touches `Deno.*` or FFI, so every model is unit-tested with
 * fakes and an exact clock.
 *
 * @module
 */

/** Access widths in bytes. */
export type AccessSize = 1 | 2 | 4 | 8;

/** A device on a bus: offsets are relative to the start of its range. */
export interface BusDevice {
  /** Reads `size` bytes at `offset`; the value is zero-extended. */
  read(offset: number, size: AccessSize): number;
  /** Writes the low `size` bytes of `value` at `offset`. */
  write(offset: number, size: AccessSize, value: number): void;
  /** A 64-bit read, for devices with 64-bit registers; else the bus splits it in two. */
  read64?(offset: number): bigint;
  /** A 64-bit write; else the bus splits it in two 32-bit writes. */
  write64?(offset: number, value: bigint): void;
}

/** An interrupt line into the interrupt controllers (a GSI). */
export interface IrqLine {
  /** Drives the line high (level-triggered sources hold it there). */
  assert(): void;
  /** Drives the line low. */
  deassert(): void;
  /** A rising then falling edge (edge-triggered sources). */
  pulse(): void;
}

/**
 * Drives a level-triggered output: asserts or deasserts `line` only when the
 * level changes from `was` to `level` (a device recomputes its level after
 * every access, as bhyve's uart_toggle_intr does, but the controllers must
 * see transitions only). Returns `level`, for the device to store. A missing
 * `line` (an unwired output) drives nothing.
 */
export function driveLine(
  line: Pick<IrqLine, "assert" | "deassert"> | undefined,
  was: boolean,
  level: boolean,
): boolean {
  if (level !== was) {
    if (level) line?.assert();
    else line?.deassert();
  }
  return level;
}

/** A monotonic clock in nanoseconds. Tests drive it by hand. */
export interface Clock {
  /** Nanoseconds since an arbitrary, fixed origin. */
  now(): number;
}

/** A one-shot timer owned by a device; on expiry the device's `onTimer` runs. */
export interface Timer {
  /** Arms (or re-arms) the timer for the absolute time `deadline` (ns, {@linkcode Clock}). */
  arm(deadline: number): void;
  /** Disarms the timer. */
  cancel(): void;
}

/** A byte sink (a console backend). */
export interface Output {
  /**
   * Takes as many of `bytes` as it has room for, at once, and returns how
   * many (0 when it is full). Never blocks. A device holds the rest and
   * retries when the host says the sink has room again.
   */
  write(bytes: Uint8Array): number;
}

/** Why a VM stops: bhyve's suspend kinds, plus dhyve's error and debug-exit. */
export type SuspendKind = "reset" | "poweroff" | "halt" | "triple-fault" | "error" | "debug-exit";

/** A request to suspend the whole VM. */
export interface SuspendRequest {
  readonly kind: SuspendKind;
  /** For `debug-exit`: the process exit status. */
  readonly status?: number;
  /** A human-readable cause, logged once. */
  readonly message?: string;
}

/** Lets a device stop the VM (reset, poweroff, debug exit, ...). */
export interface Platform {
  /** Requests a VM-wide suspend; the first request wins. */
  suspend(request: SuspendRequest): void;
}

/** The local APICs' interrupt message window, 0xFEE00000-0xFEEFFFFF (Intel SDM Vol. 3A, 11.11.1). */
export const MSI_WINDOW = { base: 0xfee00000, size: 0x100000 } as const;

/**
 * Whether a message-signalled write to `address` is an interrupt (falls in
 * {@linkcode MSI_WINDOW}). Any other address is a memory write, which
 * KVM_SIGNAL_MSI would still deliver as an interrupt (it ignores bits 31:20).
 */
export function isMsiAddress(address: number): boolean {
  return address >= MSI_WINDOW.base && address < MSI_WINDOW.base + MSI_WINDOW.size;
}

/** Delivers message-signalled interrupts (PCI MSI/MSI-X, HPET FSB). */
export interface MsiSink {
  /**
   * Sends one message: a write of `data` to `address` (0xFEExxxxx on x86).
   * `vector` is the MSI-X table entry it comes from, when it does (a host
   * may keep one route per vector, e.g. a KVM irqfd).
   */
  send(address: number, data: number, vector?: number): void;
}

/**
 * Implemented by devices that own timers. A device gets its timers from its
 * host (numbered 0..n-1 for that device) and is called back with the
 * number of the timer that expired. Callbacks run with the device lock held,
 * on whichever thread runs the VM's timers, possibly late: a device must
 * derive what happened from the clock, never from the callback's timing.
 */
export interface TimerOwner {
  /** Timer `id` reached its deadline. */
  onTimer(id: number): void;
}

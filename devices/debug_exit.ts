/**
 * A debug-exit port for test guests, compatible with QEMU's isa-debug-exit:
 * a guest write of value v ends the VM with process exit status
 * (v << 1) | 1 (the operating system keeps the low 8 bits). Reads return 0.
 *
 * @module
 */
import type { AccessSize, BusDevice, Platform } from "./device.ts";

/** The exit status for a written value (before the OS truncates it to 8 bits). */
export function debugExitStatus(value: number): number {
  return ((value << 1) | 1) >>> 0;
}

/** The debug-exit port. Stateless, hence lock-free. */
export class DebugExit implements BusDevice {
  readonly #platform: Platform;

  /** Builds the device; `platform` receives the exit request. */
  constructor(deps: { platform: Platform }) {
    this.#platform = deps.platform;
  }

  /** Reads return 0. */
  read(_offset: number, _size: AccessSize): number {
    return 0;
  }

  /** Any write ends the VM with status (value << 1) | 1. */
  write(offset: number, size: AccessSize, value: number): void {
    const status = debugExitStatus(value);
    this.#platform.suspend({
      kind: "debug-exit",
      status,
      message: `debug-exit: guest wrote 0x${
        value.toString(16)
      } (${size} bytes at offset ${offset}): exit status ${status & 0xff}`,
    });
  }
}

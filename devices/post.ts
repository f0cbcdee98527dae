/**
 * The POST code port (0x80). Firmware and kernels write progress codes here
 * and also use it as a short I/O delay (Linux's outb_p). dhyve keeps the last
 * code for inspection; reads return it.
 *
 * Lock-free: the state is one byte and every access is a single store or
 * load, so it runs without the device lock. It is also the port the exit
 * benchmark drives.
 *
 * @module
 */
import type { AccessSize, BusDevice } from "./device.ts";
import { defineState, type StateOf } from "./state.ts";

/** State of the POST code port. */
export const PostState = defineState("post", 2, { code: "u8" });

/** The POST code port. */
export class PostPort implements BusDevice {
  readonly #s: StateOf<typeof PostState.fields>;

  /** Binds the device to `state` (fresh when omitted). */
  constructor(state: StateOf<typeof PostState.fields> = PostState.create()) {
    this.#s = state;
  }

  /** The last code written. */
  get code(): number {
    return this.#s.code;
  }

  /** Reads return the last code (only the low byte is decoded). */
  read(_offset: number, _size: AccessSize): number {
    return this.#s.code;
  }

  /** Stores the low byte as the current POST code. */
  write(_offset: number, _size: AccessSize, value: number): void {
    this.#s.code = value & 0xff;
  }

  /** Power-on state: code 0. */
  reset(): void {
    this.#s.code = 0;
  }
}

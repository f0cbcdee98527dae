/**
 * The reset control register at port 0xCF9 (Intel I/O Controller Hub
 * datasheets, "RST_CNT - Reset Control Register"):
 *
 * - bit 1 SYS_RST: hard (1) or soft (0) reset; dhyve treats both the same;
 * - bit 2 RST_CPU: a 0 -> 1 transition starts the reset selected by bit 1;
 * - bit 3 FULL_RST: full power cycle on hard reset; treated like a reset.
 *
 * Guests commonly write 0x02 then 0x06, or 0x06/0x0E directly (Linux's
 * reboot=pci). A reset request suspends the VM with kind "reset".
 *
 * @module
 */
import type { AccessSize, BusDevice, Platform } from "./device.ts";
import { defineState, type StateOf } from "./state.ts";

/** RST_CNT bits. */
export const RST_CNT = Object.freeze({ SYS_RST: 1 << 1, RST_CPU: 1 << 2, FULL_RST: 1 << 3 });
const WRITABLE = RST_CNT.SYS_RST | RST_CNT.RST_CPU | RST_CNT.FULL_RST;

/** State of the reset control register. */
export const ResetControlState = defineState("reset-control", 1, { value: "u8" });

/** The 0xCF9 reset control register. */
export class ResetControl implements BusDevice {
  readonly #platform: Platform;
  readonly #s: StateOf<typeof ResetControlState.fields>;

  /** Builds the register; `platform` receives the reset request. */
  constructor(deps: { platform: Platform }, state = ResetControlState.create()) {
    this.#platform = deps.platform;
    this.#s = state;
  }

  /** Reads return the register (bits 1-3). */
  read(_offset: number, _size: AccessSize): number {
    return this.#s.value;
  }

  /** Stores bits 1-3; RST_CPU going from 0 to 1 resets the VM. */
  write(_offset: number, _size: AccessSize, value: number): void {
    const old = this.#s.value;
    const v = value & WRITABLE;
    this.#s.value = v;
    if (!(old & RST_CNT.RST_CPU) && (v & RST_CNT.RST_CPU)) {
      this.#platform.suspend({
        kind: "reset",
        message: `reset control register: 0x${
          v.toString(16).padStart(2, "0")
        } written to port 0xcf9`,
      });
    }
  }

  /** Power-on value: 0 (the ICH default). */
  reset(): void {
    this.#s.value = 0;
  }
}

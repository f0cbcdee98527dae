/**
 * Raw binary images: copied byte for byte to a guest-physical load address
 * and entered at an entry point in real, protected or long mode.
 *
 * - real16: CS:IP = (entry >> 4):(entry & 15), DS = ES = FS = GS = CS,
 *   SS:SP = 0000:7000. Nothing else is provided.
 * - prot32: flat 4 GiB segments (CS 0x10, data 0x18), paging off, ESI = the
 *   zero page (struct boot_params with the e820 map) at 0x7000, ESP = 0x7000.
 * - long64: the same, in 64-bit mode with the first 4 GiB identity-mapped by
 *   2 MiB pages; RSI = the zero page.
 *
 * @module
 */
import type { GuestMemory } from "../guest_memory.ts";
import { type E820Entry, inE820Ram, RAW_STACK_TOP, ZERO_PAGE } from "../layout.ts";
import type { EntryMode } from "../config.ts";
import { type ByteSource, bytesSource } from "../file_read.ts";
import { showPath } from "../quote.ts";
import {
  type EntryState,
  longModeEntry,
  protectedModeEntry,
  realModeEntry,
  zeroRegs,
} from "./entry.ts";
import { BOOT_PARAMS, writeZeroPage } from "./zero_page.ts";

/**
 * Loads a raw image from `source` and returns the BSP entry state. Where it
 * goes is checked from the source's size first; its bytes are then read
 * straight into guest RAM (in bounded chunks for a file), never copied
 * whole into dhyve's own memory.
 */
export function loadRawFrom(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  source: ByteSource,
  address: number,
  mode: EntryMode,
  entryPoint: number,
  name: string = source.name,
): EntryState {
  const what = showPath(name);
  const size = source.size;
  if (!inE820Ram(e820, address, size)) {
    throw new Error(
      `${what}: [0x${address.toString(16)}, 0x${
        (address + size).toString(16)
      }) (${size} bytes) is not in guest RAM`,
    );
  }
  if (entryPoint < address || entryPoint >= address + size) {
    throw new Error(`${what}: entry point 0x${entryPoint.toString(16)} is outside the image`);
  }
  if (
    mode !== "real16" && address < ZERO_PAGE + BOOT_PARAMS.size &&
    address + size > ZERO_PAGE
  ) {
    throw new Error(`${what}: the image overlaps the zero page at 0x${ZERO_PAGE.toString(16)}`);
  }
  source.readInto(0, mem.slice(address, size));
  if (mode === "real16") return realModeEntry(entryPoint, RAW_STACK_TOP);
  writeZeroPage(mem, ZERO_PAGE, e820);
  const regs = {
    ...zeroRegs(),
    rip: BigInt(entryPoint),
    rsi: BigInt(ZERO_PAGE),
    rsp: BigInt(RAW_STACK_TOP),
  };
  return mode === "prot32" ? protectedModeEntry(mem, regs) : longModeEntry(mem, regs);
}

/** Loads a raw image held in memory (see {@linkcode loadRawFrom}) and returns the BSP entry state. */
export function loadRaw(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  image: Uint8Array,
  address: number,
  mode: EntryMode,
  entryPoint: number,
  name = "image",
): EntryState {
  return loadRawFrom(mem, e820, bytesSource(image, name), address, mode, entryPoint, name);
}

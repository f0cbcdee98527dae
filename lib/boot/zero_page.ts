/**
 * The Linux "zero page" (struct boot_params), as much of it as dhyve fills.
 * Raw images entered in 32- or 64-bit mode get one in ESI/RSI, with the e820
 * memory map, so they can find their RAM the way a Linux kernel does.
 *
 * Source: Documentation/arch/x86/zero-page.rst and boot.rst.
 *
 * @module
 */
import type { GuestMemory } from "../guest_memory.ts";
import type { E820Entry } from "../layout.ts";

/** Field offsets in struct boot_params. */
export const BOOT_PARAMS = Object.freeze({
  size: 4096,
  /** u64: physical address of the ACPI RSDP (read by kernels with protocol 2.14+). */
  acpiRsdpAddr: 0x070,
  /** u32: bits 32-63 of the ramdisk address (with XLF_CAN_BE_LOADED_ABOVE_4G). */
  extRamdiskImage: 0x0c0,
  /** u32: bits 32-63 of the ramdisk size. */
  extRamdiskSize: 0x0c4,
  /** u32: bits 32-63 of the command line pointer. */
  extCmdLinePtr: 0x0c8,
  /**
   * u8: must be 0 from the loader; the kernel treats a nonzero sentinel as
   * "the loader copied uninitialised bytes" and clears fields (zero-page.rst).
   */
  sentinel: 0x1ef,
  /** u8: number of entries in e820_table. */
  e820Entries: 0x1e8,
  /** The setup header starts here (struct setup_header). */
  hdr: 0x1f1,
  /** u32: command line pointer (setup_header.cmd_line_ptr). */
  cmdLinePtr: 0x228,
  /** struct boot_e820_entry[128]: u64 addr, u64 size, u32 type (20 bytes each). */
  e820Table: 0x2d0,
  e820Max: 128,
  e820EntrySize: 20,
});

/** Writes a zeroed boot_params at `at` with the e820 map filled in. */
export function writeZeroPage(mem: GuestMemory, at: number, e820: readonly E820Entry[]): void {
  if (e820.length > BOOT_PARAMS.e820Max) throw new Error(`too many e820 entries (${e820.length})`);
  mem.fill(at, BOOT_PARAMS.size, 0);
  mem.writeU8(at + BOOT_PARAMS.e820Entries, e820.length);
  e820.forEach((e, i) => {
    const p = at + BOOT_PARAMS.e820Table + i * BOOT_PARAMS.e820EntrySize;
    mem.writeU64(p, BigInt(e.addr));
    mem.writeU64(p + 8, BigInt(e.size));
    mem.writeU32(p + 16, e.type);
  });
}

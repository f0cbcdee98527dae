/**
 * Linux bzImage loading per the x86 boot protocol
 * (Documentation/arch/x86/boot.rst, "THE LINUX/x86 BOOT PROTOCOL").
 *
 * dhyve is a 32/64-bit boot loader in the sense of boot.rst "32-bit BOOT
 * PROTOCOL" and "64-bit BOOT PROTOCOL": it skips the real-mode setup code,
 * loads the protected-mode kernel at its preferred (or an aligned) address,
 * fills struct boot_params ("zero page") itself and enters either startup_32
 * (protected mode, paging off) or startup_64 (long mode, identity-mapped) with
 * RSI/ESI = the zero page.
 *
 * @module
 */
import type { GuestMemory } from "../guest_memory.ts";
import { type ByteSource, bytesSource } from "../file_read.ts";
import { showPath } from "../quote.ts";
import { E820, type E820Entry, inE820Ram, ZERO_PAGE } from "../layout.ts";
import { type EntryState, longModeEntry, protectedModeEntry, zeroRegs } from "./entry.ts";
import { BOOT_PARAMS, writeZeroPage } from "./zero_page.ts";

/** The setup header starts at offset 0x1f1 of the file and of boot_params (boot.rst "THE REAL-MODE KERNEL HEADER"). */
export const SETUP_HEADER_OFFSET = 0x1f1;

/** Field offsets of struct setup_header, from the start of the file / boot_params (boot.rst, field table). */
export const SETUP_HEADER = Object.freeze({
  /** u8: size of the setup in 512-byte sectors (0 means 4). */
  setupSects: 0x1f1,
  /** u32: size of the 32-bit code in 16-byte paragraphs. */
  syssize: 0x1f4,
  /** u16: 0xAA55. */
  bootFlag: 0x1fe,
  /** u16: the jump instruction; its second byte + 0x202 is the end of the header (boot.rst "Details of header fields", 0x200). */
  jump: 0x200,
  /** u32: "HdrS" (0x53726448). */
  header: 0x202,
  /** u16: boot protocol version, major << 8 | minor. */
  version: 0x206,
  /** u16: pointer to the kernel version string, minus 0x200. */
  kernelVersion: 0x20e,
  /** u8: boot loader identifier. */
  typeOfLoader: 0x210,
  /** u8: boot protocol option flags. */
  loadflags: 0x211,
  /** u32: the 32-bit entry point (default 0x100000). */
  code32Start: 0x214,
  /** u32: initrd load address. */
  ramdiskImage: 0x218,
  /** u32: initrd size. */
  ramdiskSize: 0x21c,
  /** u16: end of the setup heap minus 0x200. */
  heapEndPtr: 0x224,
  /** u8: extended boot loader version. */
  extLoaderVer: 0x226,
  /** u8: extended boot loader type. */
  extLoaderType: 0x227,
  /** u32: 32-bit pointer to the kernel command line. */
  cmdLinePtr: 0x228,
  /** u32: highest legal initrd address (2.03+). */
  initrdAddrMax: 0x22c,
  /** u32: physical address alignment the kernel needs (2.05+). */
  kernelAlignment: 0x230,
  /** u8: whether the kernel is relocatable (2.05+). */
  relocatableKernel: 0x234,
  /** u8: minimum alignment, as a power of two (2.10+). */
  minAlignment: 0x235,
  /** u16: XLF_* flags (2.12+). */
  xloadflags: 0x236,
  /** u32: maximum size of the command line, without the NUL (2.06+). */
  cmdlineSize: 0x238,
  /** u32: hardware subarchitecture (2.07+). */
  hardwareSubarch: 0x23c,
  /** u32: offset of the compressed kernel from the start of the protected-mode code (2.08+). */
  payloadOffset: 0x248,
  /** u32: length of the compressed payload (2.08+). */
  payloadLength: 0x24c,
  /** u64: physical pointer to a linked list of struct setup_data (2.09+). */
  setupData: 0x250,
  /** u64: preferred load address (2.10+). */
  prefAddress: 0x258,
  /** u32: linear memory the kernel needs from its load address before it is done (2.10+). */
  initSize: 0x260,
  /** u32: EFI handover offset (2.11+). */
  handoverOffset: 0x264,
  /** u32: offset of kernel_info (2.15+). */
  kernelInfoOffset: 0x268,
});

/** "HdrS", the setup header magic. */
export const HDRS_MAGIC = 0x53726448;
/** loadflags bits (boot.rst "Details of header fields", loadflags). */
export const LOADFLAGS = Object.freeze({
  /** The protected-mode code is loaded at 0x100000. */
  LOADED_HIGH: 1 << 0,
  /** KASLR was used (set by the kernel). */
  KASLR_FLAG: 1 << 1,
  /** Do not reload segment registers in the 32-bit entry point. */
  KEEP_SEGMENTS: 1 << 6,
  /** heap_end_ptr is valid. */
  CAN_USE_HEAP: 1 << 7,
});
/** xloadflags bits (boot.rst, xloadflags, 2.12+). */
export const XLF = Object.freeze({
  /** The kernel has the legacy 64-bit entry point at load address + 0x200. */
  KERNEL_64: 1 << 0,
  /** The kernel, boot_params, cmdline and ramdisk may lie above 4 GiB. */
  CAN_BE_LOADED_ABOVE_4G: 1 << 1,
  EFI_HANDOVER_32: 1 << 2,
  EFI_HANDOVER_64: 1 << 3,
  EFI_KEXEC: 1 << 4,
  /** XLF_5LEVEL: the kernel can be entered with 5-level paging on. */
  FIVE_LEVEL: 1 << 5,
  /** XLF_5LEVEL_ENABLED: the kernel has 5-level paging enabled. */
  FIVE_LEVEL_ENABLED: 1 << 6,
});

/** The oldest boot protocol dhyve loads: 2.06 (cmdline_size, relocatable kernels, 32-bit entry). */
export const MIN_BOOT_PROTOCOL = 0x0206;

/** A parsed bzImage. */
export interface BzImage {
  /** Protocol version, major << 8 | minor (0x020f = 2.15). */
  readonly version: number;
  /** Setup sectors (after the boot sector); the protected-mode code starts at (setupSects + 1) * 512. */
  readonly setupSects: number;
  /** File offset of the protected-mode kernel. */
  readonly kernelOffset: number;
  /** Bytes of protected-mode kernel in the file. */
  readonly kernelSize: number;
  readonly loadflags: number;
  readonly xloadflags: number;
  readonly code32Start: number;
  readonly initrdAddrMax: number;
  readonly kernelAlignment: number;
  readonly relocatable: boolean;
  readonly minAlignment: number;
  /** The longest command line the kernel takes, without its NUL. */
  readonly cmdlineSize: number;
  readonly payloadOffset: number;
  readonly payloadLength: number;
  readonly prefAddress: number;
  readonly initSize: number;
  /** The version string the header points to ("6.1.0-57-cloud-amd64 (...) #1 SMP ..."), if any. */
  readonly versionString: string;
  /** The setup header bytes, 0x1f1 up to its end (copied into boot_params). */
  readonly header: Uint8Array;
}

/** Whether `bytes` looks like a bzImage: the boot flag 0xAA55 and the "HdrS" magic. */
export function isBzImage(bytes: Uint8Array): boolean {
  if (bytes.length < 0x206) return false;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return dv.getUint16(SETUP_HEADER.bootFlag, true) === 0xaa55 &&
    dv.getUint32(SETUP_HEADER.header, true) === HDRS_MAGIC;
}

const hex = (n: number) => "0x" + n.toString(16);

/** Formats a protocol version as "2.15". */
export function protocolVersion(v: number): string {
  return `${v >> 8}.${(v & 0xff).toString().padStart(2, "0")}`;
}

/**
 * Parses a bzImage's setup header. Throws (naming `what`) when it is not a
 * bzImage, its protocol is older than 2.06, or its sizes do not add up.
 * `bytes` may be only the file's head (the setup, up to 32 KiB) when
 * `fileSize` gives the whole file's size.
 */
export function parseBzImage(
  bytes: Uint8Array,
  what = "kernel",
  fileSize: number = bytes.length,
): BzImage {
  if (!isBzImage(bytes)) throw new Error(`${what}: not a bzImage (no 0xAA55/"HdrS" setup header)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u8 = (o: number) => bytes[o];
  const u16 = (o: number) => dv.getUint16(o, true);
  const u32 = (o: number) => dv.getUint32(o, true);
  const version = u16(SETUP_HEADER.version);
  if (version < MIN_BOOT_PROTOCOL) {
    throw new Error(
      `${what}: boot protocol ${protocolVersion(version)} is too old (dhyve needs ${
        protocolVersion(MIN_BOOT_PROTOCOL)
      } or later)`,
    );
  }
  // The header ends at 0x202 + the jump's displacement byte (boot.rst, 0x201).
  const headerEnd = 0x202 + u8(SETUP_HEADER.jump + 1);
  if (headerEnd > bytes.length || headerEnd < SETUP_HEADER.cmdlineSize + 4) {
    throw new Error(`${what}: setup header end ${hex(headerEnd)} is out of range`);
  }
  // boot.rst, setup_sects: "If this field is 0, the real value is 4."
  const setupSects = u8(SETUP_HEADER.setupSects) || 4;
  const kernelOffset = (setupSects + 1) * 512;
  if (kernelOffset >= fileSize) {
    throw new Error(`${what}: setup (${setupSects} sectors) is longer than the file`);
  }
  const loadflags = u8(SETUP_HEADER.loadflags);
  if (!(loadflags & LOADFLAGS.LOADED_HIGH)) {
    throw new Error(`${what}: a zImage (loaded below 1 MiB) is not supported; need a bzImage`);
  }
  const at = (field: number, since: number) => (version >= since ? u32(field) : 0);
  const versionPtr = u16(SETUP_HEADER.kernelVersion);
  let versionString = "";
  if (versionPtr) {
    // boot.rst kernel_version: the string is at this value + 0x200.
    const start = versionPtr + 0x200;
    const end = bytes.indexOf(0, start);
    if (start < kernelOffset && end > start) {
      versionString = new TextDecoder().decode(bytes.subarray(start, Math.min(end, start + 256)));
    }
  }
  return {
    version,
    setupSects,
    kernelOffset,
    kernelSize: fileSize - kernelOffset,
    loadflags,
    xloadflags: version >= 0x020c ? u16(SETUP_HEADER.xloadflags) : 0,
    code32Start: u32(SETUP_HEADER.code32Start),
    // boot.rst initrd_addr_max: before 2.03 the limit was 0x37ffffff.
    initrdAddrMax: u32(SETUP_HEADER.initrdAddrMax),
    kernelAlignment: u32(SETUP_HEADER.kernelAlignment),
    relocatable: u8(SETUP_HEADER.relocatableKernel) !== 0,
    minAlignment: version >= 0x020a ? u8(SETUP_HEADER.minAlignment) : 0,
    cmdlineSize: u32(SETUP_HEADER.cmdlineSize),
    payloadOffset: at(SETUP_HEADER.payloadOffset, 0x0208),
    payloadLength: at(SETUP_HEADER.payloadLength, 0x0208),
    prefAddress: version >= 0x020a ? Number(dv.getBigUint64(SETUP_HEADER.prefAddress, true)) : 0,
    initSize: at(SETUP_HEADER.initSize, 0x020a),
    versionString,
    header: bytes.slice(SETUP_HEADER_OFFSET, headerEnd),
  };
}

/** Compression formats of a bzImage payload, by magic (lib/decompress_*.c, scripts/Makefile.lib). */
export type PayloadCompression = "gzip" | "bzip2" | "lzma" | "xz" | "lzo" | "lz4" | "zstd" | "none";

/** Recognises a compressed stream by its magic bytes. */
export function payloadCompression(b: Uint8Array): PayloadCompression | undefined {
  const m = (...xs: number[]) => xs.every((x, i) => b[i] === x);
  if (m(0x1f, 0x8b)) return "gzip";
  if (m(0x42, 0x5a, 0x68)) return "bzip2"; // "BZh"
  if (m(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return "xz";
  if (m(0x28, 0xb5, 0x2f, 0xfd)) return "zstd";
  if (m(0x89, 0x4c, 0x5a, 0x4f)) return "lzo"; // "\x89LZO"
  if (m(0x02, 0x21, 0x4c, 0x18)) return "lz4"; // legacy frame
  if (m(0x5d, 0x00, 0x00)) return "lzma";
  if (m(0x7f, 0x45, 0x4c, 0x46)) return "none"; // an uncompressed ELF
  return undefined;
}

/** The compressed kernel inside a bzImage (boot.rst payload_offset/payload_length, 2.08+). */
export interface BzPayload {
  readonly compression: PayloadCompression;
  /** The compressed bytes as the kernel's build put them there. */
  readonly bytes: Uint8Array;
  /**
   * The uncompressed size, from the 4-byte little-endian trailer the kernel
   * build appends to every method but gzip (scripts/Makefile.lib size_append;
   * gzip carries it as ISIZE), or undefined when it cannot be known.
   */
  readonly uncompressedSize: number | undefined;
  /** The stream without that trailer, as a standard decompressor takes it. */
  readonly stream: Uint8Array;
}

/** Finds the compressed payload of a bzImage; throws (naming `what`) when there is none. */
export function bzImagePayload(bytes: Uint8Array, what = "kernel"): BzPayload {
  const bz = parseBzImage(bytes, what);
  if (bz.version < 0x0208 || bz.payloadLength === 0) {
    throw new Error(
      `${what}: boot protocol ${protocolVersion(bz.version)} has no payload_offset (needs 2.08+)`,
    );
  }
  const start = bz.kernelOffset + bz.payloadOffset;
  const end = start + bz.payloadLength;
  if (end > bytes.length) {
    throw new Error(`${what}: payload [${hex(start)}, ${hex(end)}) runs past the file end`);
  }
  const payload = bytes.subarray(start, end);
  const compression = payloadCompression(payload);
  if (!compression) {
    throw new Error(
      `${what}: unknown payload compression (magic ${
        [...payload.subarray(0, 4)].map((x) => x.toString(16).padStart(2, "0")).join(" ")
      })`,
    );
  }
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const last = payload.length >= 4 ? dv.getUint32(payload.length - 4, true) : undefined;
  const trailer = compression !== "gzip" && compression !== "none";
  return {
    compression,
    bytes: payload,
    uncompressedSize: compression === "none" ? payload.length : last,
    stream: trailer ? payload.subarray(0, payload.length - 4) : payload,
  };
}

// ---------------------------------------------------------------------------
// Shared by the bzImage and PVH loaders.

/** Which `[boot]` key a Linux boot problem belongs to. */
export type LinuxBootKey = "kernel" | "initrd" | "cmdline";

/** A Linux payload that cannot be booted; `key` names the `[boot]` key at fault. */
export class LinuxBootError extends Error {
  /** The `[boot]` key at fault. */
  readonly key: LinuxBootKey;
  /** Builds the error. */
  constructor(key: LinuxBootKey, message: string) {
    super(message);
    this.name = "LinuxBootError";
    this.key = key;
  }
}

/**
 * Where the command line goes: 0x20000, as QEMU puts it, in conventional RAM
 * away from the zero page (0x7000) and below the firmware area. boot.rst
 * (cmd_line_ptr): anywhere from the end of the setup heap to 0xA0000 for the
 * real-mode path; with the 32/64-bit protocol any address below 4 GiB.
 */
export const LINUX_CMDLINE_ADDR = 0x20000;
/** The largest command line dhyve places at {@linkcode LINUX_CMDLINE_ADDR}, NUL included. */
export const LINUX_CMDLINE_AREA = 0x1000;
/** Where the kernel goes at the lowest: 1 MiB (boot.rst: the protected-mode kernel is loaded at 0x100000). */
export const LINUX_LOW_LIMIT = 0x100000;
const PAGE = 0x1000;
const FOUR_GIB = 0x1_0000_0000;

/** A placed range [start, end). */
export interface Range {
  readonly start: number;
  readonly end: number;
}

/** `start-end` (end exclusive), as dhyve's other payload descriptions write ranges. */
const span = (r: Range) => `${hex(r.start)}-${hex(r.end)}`;

/**
 * The e820 RAM below 4 GiB and not below `floor`, clipped; the loaders only
 * place kernels and initrds there (the "lowmem" RAM).
 */
function lowRam(e820: readonly E820Entry[], floor = 0): Range[] {
  return e820
    .filter((e) => e.type === E820.RAM)
    .map((e) => ({ start: Math.max(e.addr, floor), end: Math.min(e.addr + e.size, FOUR_GIB) }))
    .filter((r) => r.end > r.start);
}

/** The end of the RAM below 4 GiB (the lowmem end), for messages. */
function lowRamEnd(e820: readonly E820Entry[]): number {
  return Math.max(0, ...lowRam(e820).map((r) => r.end));
}

/** Whether [start, end) lies inside one e820 RAM entry. */
function inRam(e820: readonly E820Entry[], r: Range): boolean {
  return inE820Ram(e820, r.start, r.end - r.start);
}

/**
 * Places an initrd of `size` bytes as high as it goes (as QEMU and GRUB do):
 * page aligned, at or above `floor` (the end of the kernel), ending at or
 * below `ceiling`, inside one e820 RAM entry below 4 GiB.
 */
export function placeInitrd(
  e820: readonly E820Entry[],
  size: number,
  floor: number,
  ceiling: number,
  what = "initrd",
): Range {
  let best: Range | undefined;
  for (const r of lowRam(e820, floor)) {
    const top = Math.min(r.end, ceiling);
    const start = Math.floor((top - size) / PAGE) * PAGE;
    if (start >= r.start && start + size <= top && (!best || start > best.start)) {
      best = { start, end: start + size };
    }
  }
  if (!best) {
    throw new LinuxBootError(
      "initrd",
      `${what} (${size} bytes) does not fit in RAM between the kernel's end ${hex(floor)} and ${
        hex(Math.min(ceiling, lowRamEnd(e820)))
      } (the lowmem end${ceiling < lowRamEnd(e820) ? " or the kernel's initrd_addr_max" : ""})`,
    );
  }
  return best;
}

/** Checks a command line against the kernel's limit (bytes, without the NUL). */
export function checkCmdline(cmdline: string, limit: number, why: string): Uint8Array {
  const bytes = new TextEncoder().encode(cmdline);
  if (bytes.includes(0)) throw new LinuxBootError("cmdline", "command line contains a NUL");
  if (bytes.length > limit) {
    throw new LinuxBootError(
      "cmdline",
      `command line is ${bytes.length} bytes; ${why} takes at most ${limit}`,
    );
  }
  if (bytes.length >= LINUX_CMDLINE_AREA) {
    throw new LinuxBootError(
      "cmdline",
      `command line is ${bytes.length} bytes; dhyve places at most ${LINUX_CMDLINE_AREA - 1}`,
    );
  }
  return bytes;
}

/** Writes the NUL-terminated command line at {@linkcode LINUX_CMDLINE_ADDR}; returns its address. */
export function writeCmdline(mem: GuestMemory, bytes: Uint8Array): number {
  mem.write(LINUX_CMDLINE_ADDR, bytes);
  mem.writeU8(LINUX_CMDLINE_ADDR + bytes.length, 0);
  return LINUX_CMDLINE_ADDR;
}

/**
 * Finds the ACPI RSDP dhyve's firmware tables put in guest memory: the
 * "RSD PTR " signature on a 16-byte boundary in 0xE0000-0xFFFFF with a valid
 * checksum over its first 20 bytes (ACPI 6.5, 5.2.5.1 "Finding the RSDP on
 * IA-PC Systems" and 5.2.5.3). Undefined when ACPI is off.
 */
export function findRsdp(mem: GuestMemory): number | undefined {
  const sig = new TextEncoder().encode("RSD PTR ");
  for (let a = 0xe0000; a < 0x100000; a += 16) {
    if (!mem.contains(a, 20)) continue;
    const b = mem.slice(a, 20);
    if (!sig.every((x, i) => b[i] === x)) continue;
    if ((b.reduce((s, x) => s + x, 0) & 0xff) === 0) return a;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// bzImage placement and loading.

/** What the bzImage loader does, decided before any guest memory exists. */
export interface BzImagePlan {
  readonly format: "bzimage";
  readonly bz: BzImage;
  /** The protected-mode kernel's load address and the space it needs: max(init_size, its size). */
  readonly kernel: Range;
  /** The entry point: load + 0x200 (startup_64) or load (startup_32). */
  readonly entry: number;
  readonly entry64: boolean;
  readonly initrd?: Range;
  readonly zeroPage: number;
  readonly cmdline: number;
  readonly cmdlineBytes: number;
}

/** Names for messages. */
export interface LinuxNames {
  readonly kernel?: string;
  readonly initrd?: string;
}

const alignUp = (n: number, a: number) => (a > 1 ? Math.ceil(n / a) * a : n);

/**
 * Decides where a bzImage, its initrd and command line go in a machine with
 * this e820 map; throws {@linkcode LinuxBootError} (with the `[boot]` key)
 * when something does not fit or the command line is too long.
 *
 * The kernel (boot.rst "Details of header fields" and "64-bit BOOT PROTOCOL"):
 * - at `pref_address` (2.10+) when [pref_address, + init_size) is RAM: where
 *   the kernel runs anyway, so it does not move itself;
 * - else, for a relocatable kernel (relocatable_kernel, 2.05+), at the lowest
 *   `kernel_alignment`-aligned address from 1 MiB where init_size fits;
 * - a non-relocatable kernel that does not fit at its address is refused.
 * init_size (2.10+) is "the amount of linear contiguous memory starting at
 * the kernel runtime start address that the kernel needs before it is
 * capable of examining its memory map"; before 2.10 the file size is used.
 *
 * The initrd: above the kernel's init_size, as high as it goes below
 * min(initrd_addr_max + 1, the lowmem end) (boot.rst initrd_addr_max: "the
 * maximum address that may be occupied by the initial ramdisk contents").
 */
export function planBzImage(
  bz: BzImage,
  e820: readonly E820Entry[],
  initrdSize: number | undefined,
  cmdline: string,
  names: LinuxNames = {},
): BzImagePlan {
  const kname = names.kernel ?? "kernel";
  // boot.rst cmdline_size (2.06+): "the maximum size of the command line
  // without the terminating zero".
  const cmd = checkCmdline(cmdline, bz.cmdlineSize, `${kname} (its cmdline_size)`);
  const need = Math.max(bz.initSize, bz.kernelSize);
  const fits = (start: number) => inRam(e820, { start, end: start + need });
  const pref = bz.prefAddress || LINUX_LOW_LIMIT;
  let load: number | undefined;
  if (pref >= LINUX_LOW_LIMIT && fits(pref)) load = pref;
  else if (bz.relocatable) {
    const align = Math.max(bz.kernelAlignment, PAGE);
    for (const r of lowRam(e820, LINUX_LOW_LIMIT)) {
      const start = alignUp(r.start, align);
      if (start + need <= r.end) {
        load = start;
        break;
      }
    }
  }
  if (load === undefined) {
    throw new LinuxBootError(
      "kernel",
      `${kname} needs ${need} bytes (init_size) ${
        bz.relocatable
          ? `at a ${hex(bz.kernelAlignment)}-aligned address`
          : `at ${hex(pref)} (it is not relocatable)`
      }, and the RAM below the lowmem end ${hex(lowRamEnd(e820))} has no such room`,
    );
  }
  const kernel = { start: load, end: load + need };
  let initrd: Range | undefined;
  if (initrdSize !== undefined) {
    // boot.rst initrd_addr_max: before 2.03 the limit was 0x37ffffff.
    const max = (bz.version >= 0x0203 ? bz.initrdAddrMax : 0x37ffffff) + 1;
    initrd = placeInitrd(e820, initrdSize, kernel.end, max, names.initrd ?? "initrd");
  }
  const entry64 = (bz.xloadflags & XLF.KERNEL_64) !== 0;
  return {
    format: "bzimage",
    bz,
    kernel,
    // boot.rst "64-bit BOOT PROTOCOL": "the kernel's 64-bit entry point is at
    // the load address + 0x200"; the 32-bit entry (startup_32) is at the load
    // address itself ("32-bit BOOT PROTOCOL").
    entry: entry64 ? load + 0x200 : load,
    entry64,
    initrd,
    zeroPage: ZERO_PAGE,
    cmdline: LINUX_CMDLINE_ADDR,
    cmdlineBytes: cmd.length,
  };
}

/**
 * The boot loader type dhyve writes into type_of_loader: 0xFF. boot.rst
 * (type_of_loader): "If your boot loader has an assigned id (see table
 * below), enter 0xTV here ... Otherwise, enter 0xFF here." dhyve has no
 * assigned ID (QEMU's is 0xB); IDs above 0xF need type 0xE plus
 * ext_loader_type, also assigned only by the maintainers. The kernel only
 * shows the value (/proc/sys/kernel/bootloader_type).
 */
export const LINUX_LOADER_TYPE = 0xff;

/**
 * Reads an initrd into the range the plan placed it at. Its size was taken
 * from `stat` when the plan was made; a file that changed since is refused
 * rather than cut or overrun.
 */
export function loadInitrd(mem: GuestMemory, initrd: ByteSource, placed: Range): void {
  if (initrd.size !== placed.end - placed.start) {
    throw new LinuxBootError(
      "initrd",
      `${showPath(initrd.name)} is ${initrd.size} bytes, not the ${
        placed.end - placed.start
      } it was planned for`,
    );
  }
  initrd.readInto(0, mem.slice(placed.start, initrd.size));
}

/**
 * Loads a bzImage per `plan` (from {@linkcode planBzImage}) and writes its
 * zero page; returns the BSP entry state: startup_64 in long mode with the
 * first 4 GiB identity mapped, or startup_32 in flat protected mode, with
 * RSI/ESI = the zero page (boot.rst "32-bit BOOT PROTOCOL", "64-bit BOOT
 * PROTOCOL"). The kernel's protected-mode part and the initrd are read from
 * their sources straight into guest RAM; nothing else of them is read.
 */
export function loadBzImageFrom(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  image: ByteSource,
  initrd: ByteSource | undefined,
  cmdline: string,
  plan: BzImagePlan,
  rsdp: number | undefined,
): EntryState {
  const { bz } = plan;
  if (image.size !== bz.kernelOffset + bz.kernelSize) {
    throw new LinuxBootError(
      "kernel",
      `${showPath(image.name)} is ${image.size} bytes, not the ${
        bz.kernelOffset + bz.kernelSize
      } it was planned for`,
    );
  }
  // The protected-mode part of the file, from (setup_sects + 1) * 512, goes
  // to the load address; the rest of init_size is the kernel's to use.
  image.readInto(bz.kernelOffset, mem.slice(plan.kernel.start, bz.kernelSize));
  if (initrd && plan.initrd) loadInitrd(mem, initrd, plan.initrd);
  writeCmdline(mem, new TextEncoder().encode(cmdline));

  // boot.rst "32-bit BOOT PROTOCOL": "the boot loader ... should allocate a
  // struct boot_params, clear it, then load the setup header from the kernel
  // image at offset 0x01f1 ... and fill in the fields below".
  const zp = plan.zeroPage;
  writeZeroPage(mem, zp, e820);
  mem.write(zp + SETUP_HEADER_OFFSET, bz.header);
  mem.writeU8(zp + SETUP_HEADER.typeOfLoader, LINUX_LOADER_TYPE);
  mem.writeU8(zp + SETUP_HEADER.extLoaderVer, 0);
  mem.writeU8(zp + SETUP_HEADER.extLoaderType, 0);
  // loadflags: LOADED_HIGH stays; KEEP_SEGMENTS off (the kernel may reload
  // them: dhyve's are flat); CAN_USE_HEAP off (no real-mode setup runs).
  mem.writeU8(
    zp + SETUP_HEADER.loadflags,
    (bz.loadflags | LOADFLAGS.LOADED_HIGH) & ~(LOADFLAGS.KEEP_SEGMENTS | LOADFLAGS.CAN_USE_HEAP),
  );
  // code32_start: "the address to jump to in protected mode" (boot.rst); set
  // to where the kernel is, as a loader that moves it must.
  mem.writeU32(zp + SETUP_HEADER.code32Start, plan.kernel.start);
  mem.writeU32(zp + SETUP_HEADER.cmdLinePtr, plan.cmdline);
  mem.writeU32(zp + SETUP_HEADER.ramdiskImage, plan.initrd?.start ?? 0);
  mem.writeU32(
    zp + SETUP_HEADER.ramdiskSize,
    plan.initrd ? plan.initrd.end - plan.initrd.start : 0,
  );
  mem.writeU32(zp + BOOT_PARAMS.extRamdiskImage, 0);
  mem.writeU32(zp + BOOT_PARAMS.extRamdiskSize, 0);
  mem.writeU32(zp + BOOT_PARAMS.extCmdLinePtr, 0);
  mem.writeU64(zp + SETUP_HEADER.setupData, 0n);
  // boot.rst, acpi_rsdp_addr (protocol 2.14+): the RSDP's physical address.
  if (bz.version >= 0x020e && rsdp !== undefined) {
    mem.writeU64(zp + BOOT_PARAMS.acpiRsdpAddr, BigInt(rsdp));
  }
  mem.writeU8(zp + BOOT_PARAMS.sentinel, 0);
  const regs = {
    ...zeroRegs(),
    rip: BigInt(plan.entry),
    rsi: BigInt(zp),
    // Not required by either protocol (the kernel sets up its stack first
    // thing), but harmless: below the zero page.
    rsp: BigInt(ZERO_PAGE),
  };
  // 32-bit protocol: "%ebp, %edi and %ebx must be zero" - zeroRegs().
  return plan.entry64 ? longModeEntry(mem, regs) : protectedModeEntry(mem, regs);
}

/** {@linkcode loadBzImageFrom} for a kernel and an initrd held in memory. */
export function loadBzImage(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  image: Uint8Array,
  initrd: Uint8Array | undefined,
  cmdline: string,
  plan: BzImagePlan,
  rsdp: number | undefined,
): EntryState {
  return loadBzImageFrom(
    mem,
    e820,
    bytesSource(image, "kernel"),
    initrd && bytesSource(initrd, "initrd"),
    cmdline,
    plan,
    rsdp,
  );
}

/** Lines describing a bzImage plan, for logs and `dhyve check`. */
export function describeBzImage(plan: BzImagePlan): string[] {
  const bz = plan.bz;
  return [
    `bzImage, boot protocol ${protocolVersion(bz.version)}${
      bz.versionString ? `, version ${bz.versionString.split(" ")[0]}` : ""
    }`,
    `kernel at ${span(plan.kernel)} (init_size ${hex(bz.initSize)}; ${
      bz.relocatable ? `relocatable, alignment ${hex(bz.kernelAlignment)}` : "not relocatable"
    }; pref_address ${hex(bz.prefAddress)})`,
    `entry ${plan.entry64 ? "startup_64 (64-bit)" : "startup_32 (32-bit)"} at ${hex(plan.entry)}`,
    plan.initrd ? `initrd at ${span(plan.initrd)}` : "no initrd",
    `zero page at ${hex(plan.zeroPage)}`,
    `cmdline at ${hex(plan.cmdline)} (${plan.cmdlineBytes} of at most ${bz.cmdlineSize} bytes)`,
  ];
}

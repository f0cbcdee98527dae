/**
 * Multiboot v1 loading, as QEMU's -kernel does it: ELF32 kernels (program
 * headers, physical addresses) or the a.out kludge (header flag 16), page
 * aligned modules placed after the kernel, and the boot information
 * structure with memory sizes, the e820-derived memory map, the command
 * line, modules and the boot loader name. Entered in 32-bit protected mode
 * with EAX = 0x2BADB002 and EBX = the info structure.
 *
 * Source: Multiboot Specification version 0.6.96, sections 3.1 (header),
 * 3.2 (machine state) and 3.3 (boot information format).
 *
 * @module
 */
import type { GuestMemory } from "../guest_memory.ts";
import { E820, type E820Entry, inE820Ram, LEGACY } from "../layout.ts";
import { type ByteSource, bytesSource, fileSource, readRange } from "../file_read.ts";
import { showPath } from "../quote.ts";
import { EM_386, isElf } from "./elf.ts";
import { type EntryState, protectedModeEntry, zeroRegs } from "./entry.ts";

/** The header magic (3.1.2). */
export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
/** The value in EAX at entry (3.2). */
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
/** The header must lie within the first 8192 bytes, 32-bit aligned (3.1.1). */
const SEARCH_LIMIT = 8192;

/** Header flags (3.1.2). */
export const MB_HEADER = Object.freeze({
  PAGE_ALIGN: 1 << 0,
  MEMORY_INFO: 1 << 1,
  VIDEO_MODE: 1 << 2,
  AOUT_KLUDGE: 1 << 16,
});

/** Info structure flags (3.3). */
export const MB_INFO = Object.freeze({
  MEMORY: 1 << 0,
  BOOTDEV: 1 << 1,
  CMDLINE: 1 << 2,
  MODS: 1 << 3,
  MEM_MAP: 1 << 6,
  LOADER_NAME: 1 << 9,
});

/** A parsed multiboot header. */
export interface MultibootHeader {
  /** Byte offset of the header in the file. */
  readonly offset: number;
  readonly flags: number;
  /** Present with the a.out kludge. */
  readonly addresses?: {
    readonly headerAddr: number;
    readonly loadAddr: number;
    readonly loadEndAddr: number;
    readonly bssEndAddr: number;
    readonly entryAddr: number;
  };
}

/** Finds and validates the multiboot header; undefined when there is none. */
export function findMultibootHeader(image: Uint8Array): MultibootHeader | undefined {
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const end = Math.min(image.length, SEARCH_LIMIT) - 12;
  for (let off = 0; off <= end; off += 4) {
    if (dv.getUint32(off, true) !== MULTIBOOT_HEADER_MAGIC) continue;
    const flags = dv.getUint32(off + 4, true);
    const checksum = dv.getUint32(off + 8, true);
    if (((MULTIBOOT_HEADER_MAGIC + flags + checksum) >>> 0) !== 0) continue;
    if (!(flags & MB_HEADER.AOUT_KLUDGE)) return { offset: off, flags };
    if (off + 32 > image.length) {
      throw new Error("multiboot header truncated (a.out kludge fields)");
    }
    return {
      offset: off,
      flags,
      addresses: {
        headerAddr: dv.getUint32(off + 12, true),
        loadAddr: dv.getUint32(off + 16, true),
        loadEndAddr: dv.getUint32(off + 20, true),
        bssEndAddr: dv.getUint32(off + 24, true),
        entryAddr: dv.getUint32(off + 28, true),
      },
    };
  }
  return undefined;
}

/** A module for the kernel. */
export interface MultibootModule {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly cmdline: string;
}

/** What the loader placed where, for logs and `dhyve check`. */
export interface MultibootLayout {
  readonly kernel: { readonly start: number; readonly end: number; readonly entry: number };
  readonly modules: readonly {
    readonly name: string;
    readonly start: number;
    readonly end: number;
  }[];
  readonly info: number;
}

/** A Multiboot boot decided, before guest memory is touched or a module byte read. */
export interface MultibootPlan extends MultibootLayout {
  readonly header: MultibootHeader;
  /** Kernel file ranges to load: `filesz` bytes from `offset` to `addr`, then zeros up to `memsz`. */
  readonly pieces: readonly {
    readonly offset: number;
    readonly addr: number;
    readonly filesz: number;
    readonly memsz: number;
  }[];
  readonly modules: readonly {
    readonly name: string;
    readonly start: number;
    readonly end: number;
    readonly cmdline: string;
  }[];
  readonly cmdline: string;
  /** End of the boot information area (info structure, memory map, module list, strings). */
  readonly infoEnd: number;
}

/** A Multiboot kernel or module that cannot be booted; the message names the file and why. */
export class MultibootError extends Error {
  /** The `[boot]` key the problem belongs to: "kernel" or "modules[i].path". */
  readonly key: string;
  /** Builds the error. */
  constructor(key: string, message: string) {
    super(message);
    this.name = "MultibootError";
    this.key = key;
  }
}

/** How much of a kernel {@linkcode findMultibootHeader} needs: the search area and the a.out fields. */
export const MULTIBOOT_HEAD = SEARCH_LIMIT + 32;
/** The most program header bytes an ELF kernel may have (64 KiB: 2048 32-byte headers). */
const MAX_PHDR_BYTES = 64 * 1024;
const PT_LOAD = 1;
const FOUR_GIB = 2 ** 32;

const pageUp = (n: number) => Math.ceil(n / 0x1000) * 0x1000;
const hex = (n: number) => "0x" + n.toString(16);
const span = (a: number, b: number) => `[${hex(a)}, ${hex(b)})`;

/** Throws unless [addr, addr+len) lies inside one e820 RAM range. */
function requireRam(
  e820: readonly E820Entry[],
  addr: number,
  len: number,
  key: string,
  what: string,
): void {
  if (len === 0 || inE820Ram(e820, addr, len)) return;
  const ram = e820.filter((e) => e.type === E820.RAM).map((e) => span(e.addr, e.addr + e.size));
  const vga = addr < LEGACY.end && addr + len > 0xa0000
    ? "; 0xa0000-0xfffff is the VGA and firmware area, not RAM"
    : "";
  throw new MultibootError(
    key,
    `${what} at ${span(addr, addr + len)} (${len} bytes) does not fit in guest RAM (RAM: ${
      ram.join(", ")
    })${vga}`,
  );
}

/** The loadable segments of an ELF32 i386 kernel, read from `source` without reading the segments. */
function elfPieces(source: ByteSource, head: Uint8Array, name: string): {
  entry: number;
  pieces: MultibootPlan["pieces"];
  segments: { vaddr: number; paddr: number; memsz: number }[];
} {
  const fail = (why: string) => new MultibootError("kernel", `${name}: ${why}`);
  if (head.length < 52) throw fail("truncated ELF header");
  if (
    head[4] !== 1 || head[5] !== 1 ||
    new DataView(head.buffer, head.byteOffset).getUint16(18, true) !== EM_386
  ) {
    throw fail(
      `multiboot ELF kernels must be ELF32 little-endian i386 (this one is ELF${
        head[4] === 2 ? 64 : 32
      }${head[5] === 1 ? "" : " big-endian"}, machine ${
        new DataView(head.buffer, head.byteOffset).getUint16(18, true)
      })`,
    );
  }
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const entry = dv.getUint32(24, true);
  const phoff = dv.getUint32(28, true);
  const phentsize = dv.getUint16(42, true);
  const phnum = dv.getUint16(44, true);
  if (phnum === 0) throw fail("no program headers");
  if (phentsize < 32) throw fail(`program header size ${phentsize} too small`);
  const phBytes = phnum * phentsize;
  if (phBytes > MAX_PHDR_BYTES) throw fail(`${phnum} program headers are too many`);
  if (phoff + phBytes > source.size) throw fail("program headers outside the file");
  const ph = phoff + phBytes <= head.length
    ? head.subarray(phoff, phoff + phBytes)
    : readRange(source, phoff, phBytes);
  const pv = new DataView(ph.buffer, ph.byteOffset, ph.byteLength);
  const pieces: { offset: number; addr: number; filesz: number; memsz: number }[] = [];
  const segments: { vaddr: number; paddr: number; memsz: number }[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = i * phentsize;
    if (pv.getUint32(at, true) !== PT_LOAD) continue;
    const offset = pv.getUint32(at + 4, true);
    const vaddr = pv.getUint32(at + 8, true);
    const paddr = pv.getUint32(at + 12, true);
    const filesz = pv.getUint32(at + 16, true);
    const memsz = pv.getUint32(at + 20, true);
    if (filesz > memsz) throw fail(`segment ${i} has filesz > memsz`);
    if (offset + filesz > source.size) throw fail(`segment ${i} extends past the end of the file`);
    if (paddr + memsz > FOUR_GIB) {
      throw fail(`segment ${i} ${span(paddr, paddr + memsz)} runs past 4 GiB`);
    }
    if (memsz === 0) continue;
    pieces.push({ offset, addr: paddr, filesz, memsz });
    segments.push({ vaddr, paddr, memsz });
  }
  if (pieces.length === 0) throw fail("no loadable segments");
  return { entry, pieces, segments };
}

/**
 * Decides where a Multiboot kernel, its modules and the boot information
 * go in a machine with this e820 map, reading only the kernel's headers
 * and knowing the modules by their sizes. Everything {@linkcode loadMultiboot}
 * would refuse is refused here, as a {@linkcode MultibootError} naming the
 * `[boot]` key: no header, unsupported header flags, bad a.out kludge
 * addresses, an ELF kernel that is not ELF32 i386, a load outside guest RAM
 * (the VGA hole included), an entry point outside the image, modules or
 * boot information that do not fit.
 */
export function planMultiboot(
  kernel: ByteSource,
  cmdline: string,
  modules: readonly { readonly name: string; readonly size: number; readonly cmdline: string }[],
  e820: readonly E820Entry[],
  kernelName: string = kernel.name,
): MultibootPlan {
  const name = showPath(kernelName);
  const fail = (why: string) => new MultibootError("kernel", `${name}: ${why}`);
  if (kernel.size === 0) throw new MultibootError("kernel", `${name} is empty`);
  const head = readRange(kernel, 0, Math.max(MULTIBOOT_HEAD, 52));
  let header: MultibootHeader | undefined;
  try {
    header = findMultibootHeader(head);
  } catch (e) {
    throw fail((e as Error).message);
  }
  if (!header) {
    throw new MultibootError("kernel", `${name} has no multiboot header in the first 8 KiB`);
  }
  // Bits 0-15 are requirements the loader must meet or refuse (3.1.2). dhyve
  // meets 0 (page-aligned modules) and 1 (memory info); for 2 (video mode)
  // it boots with no graphics mode information, as QEMU does.
  const unknown = header.flags & 0xfff8;
  if (unknown) {
    throw fail(
      `unsupported multiboot header flags ${
        hex(unknown)
      } (dhyve meets bits 0-2 and the a.out kludge, bit 16)`,
    );
  }

  let pieces: MultibootPlan["pieces"];
  let kStart: number, kEnd: number, entry: number;
  if (header.addresses) {
    const a = header.addresses;
    // The a.out kludge (3.1.3): the file offset of load_addr follows from header_addr.
    if (a.headerAddr < a.loadAddr) {
      throw fail(
        `bad a.out kludge addresses: header_addr ${hex(a.headerAddr)} is below load_addr ${
          hex(a.loadAddr)
        }`,
      );
    }
    const fileStart = header.offset - (a.headerAddr - a.loadAddr);
    if (fileStart < 0) {
      throw fail(
        `bad a.out kludge addresses: load_addr ${
          hex(a.loadAddr)
        } would start ${-fileStart} bytes before the file`,
      );
    }
    if (a.loadEndAddr !== 0 && a.loadEndAddr <= a.loadAddr) {
      throw fail(
        `bad a.out kludge addresses: load_end_addr ${hex(a.loadEndAddr)} is not above load_addr ${
          hex(a.loadAddr)
        }`,
      );
    }
    const loadLen = a.loadEndAddr ? a.loadEndAddr - a.loadAddr : kernel.size - fileStart;
    if (loadLen <= 0 || fileStart + loadLen > kernel.size) {
      throw fail(
        `a.out kludge load range ${span(a.loadAddr, a.loadAddr + loadLen)} needs file bytes ${
          span(fileStart, fileStart + loadLen)
        }, past the end of the file (${kernel.size} bytes)`,
      );
    }
    if (a.bssEndAddr !== 0 && a.bssEndAddr < a.loadAddr + loadLen) {
      throw fail(
        `bad a.out kludge addresses: bss_end_addr ${hex(a.bssEndAddr)} is below load_end_addr ${
          hex(a.loadAddr + loadLen)
        }`,
      );
    }
    const memEnd = a.bssEndAddr ? a.bssEndAddr : a.loadAddr + loadLen;
    pieces = [{ offset: fileStart, addr: a.loadAddr, filesz: loadLen, memsz: memEnd - a.loadAddr }];
    kStart = a.loadAddr;
    kEnd = memEnd;
    entry = a.entryAddr;
  } else {
    if (!isElf(head)) {
      throw fail("multiboot kernel is neither ELF nor a.out kludge (header flag 16)");
    }
    const elf = elfPieces(kernel, head, name);
    pieces = elf.pieces;
    kStart = Math.min(...pieces.map((p) => p.addr));
    kEnd = Math.max(...pieces.map((p) => p.addr + p.memsz));
    // e_entry is a virtual address. A kernel linked where it is loaded has
    // vaddr = paddr; a higher-half kernel is entered at the physical address
    // of its entry, through the segment that holds it (as GRUB does).
    const seg = elf.segments.find((x) => elf.entry >= x.vaddr && elf.entry < x.vaddr + x.memsz);
    entry = seg ? elf.entry - seg.vaddr + seg.paddr : elf.entry;
  }
  const part = header.addresses ? "image" : "segment";
  for (const p of pieces) requireRam(e820, p.addr, p.memsz, "kernel", `${name}: ${part}`);
  if (!(entry >= kStart && entry < kEnd)) {
    throw fail(`entry point ${hex(entry)} is outside the loaded image ${span(kStart, kEnd)}`);
  }

  // Modules: page aligned (flag 0), one after the other above the kernel.
  let at = pageUp(kEnd);
  const placed: { name: string; start: number; end: number; cmdline: string }[] = [];
  modules.forEach((m, i) => {
    requireRam(
      e820,
      at,
      m.size,
      `modules[${i}].path`,
      `module ${showPath(m.name)}`,
    );
    placed.push({ name: m.name, start: at, end: at + m.size, cmdline: m.cmdline });
    at = pageUp(at + m.size);
  });

  // The boot information area: info structure, memory map, module list, strings.
  const enc = new TextEncoder();
  const strings = [...placed.map((m) => m.cmdline), cmdline, LOADER_NAME];
  const stringBytes = strings.reduce((n, s) => n + enc.encode(s).length + 1, 0);
  const info = at;
  const infoEnd = info + 128 + e820.length * 24 + placed.length * 16 + stringBytes;
  requireRam(e820, info, infoEnd - info, "kernel", "the multiboot boot information");
  return {
    header,
    pieces,
    kernel: { start: kStart, end: kEnd, entry },
    modules: placed,
    cmdline,
    info,
    infoEnd,
  };
}

const LOADER_NAME = "dhyve";

/**
 * Loads a multiboot kernel and its modules into guest memory and writes the
 * boot information. Returns the BSP entry state and what went where. The
 * files are read straight into guest RAM, in bounded chunks.
 */
export function loadMultibootFrom(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  kernel: ByteSource,
  cmdline: string,
  modules: readonly ByteSource[],
  moduleCmdlines: readonly string[],
  kernelName: string = kernel.name,
): { entry: EntryState; layout: MultibootLayout } {
  const plan = planMultiboot(
    kernel,
    cmdline,
    modules.map((m, i) => ({ name: m.name, size: m.size, cmdline: moduleCmdlines[i] ?? "" })),
    e820,
    kernelName,
  );
  for (const p of plan.pieces) {
    if (p.filesz > 0) kernel.readInto(p.offset, mem.slice(p.addr, p.filesz));
    mem.fill(p.addr + p.filesz, p.memsz - p.filesz, 0);
  }
  plan.modules.forEach((m, i) => {
    if (m.end > m.start) modules[i].readInto(0, mem.slice(m.start, m.end - m.start));
  });
  const layout: MultibootLayout = {
    kernel: plan.kernel,
    modules: plan.modules.map(({ name, start, end }) => ({ name, start, end })),
    info: plan.info,
  };
  return { entry: writeBootInformation(mem, e820, plan), layout };
}

/**
 * Loads a multiboot kernel and its modules, given as files: each is checked
 * with stat first, only the kernel's headers and the ranges it loads are
 * read, and modules too big for guest RAM are refused before a byte is read.
 */
export function loadMultibootFiles(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  kernel: string,
  cmdline: string,
  modules: readonly { readonly path: string; readonly cmdline: string }[],
): { entry: EntryState; layout: MultibootLayout } {
  return loadMultibootFrom(
    mem,
    e820,
    fileSource(kernel),
    cmdline,
    modules.map((m) => fileSource(m.path)),
    modules.map((m) => m.cmdline),
  );
}

/**
 * Loads a multiboot kernel and its modules from bytes in memory (see
 * {@linkcode loadMultibootFiles} for files).
 */
export function loadMultiboot(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  kernel: Uint8Array,
  cmdline: string,
  modules: readonly MultibootModule[],
  kernelName = "kernel",
): { entry: EntryState; layout: MultibootLayout } {
  return loadMultibootFrom(
    mem,
    e820,
    bytesSource(kernel, kernelName),
    cmdline,
    modules.map((m) => bytesSource(m.bytes, m.name)),
    modules.map((m) => m.cmdline),
    kernelName,
  );
}

/** Writes the boot information of `plan` (3.3) and returns the BSP's entry state (3.2). */
function writeBootInformation(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  plan: MultibootPlan,
): EntryState {
  const enc = new TextEncoder();
  const info = plan.info;
  const mmapAddr = info + 128;
  const mmapLen = e820.length * 24;
  const modsAddr = mmapAddr + mmapLen;
  let strings = modsAddr + plan.modules.length * 16;
  const putString = (s: string): number => {
    const b = enc.encode(s);
    mem.write(strings, b);
    mem.writeU8(strings + b.length, 0);
    const p = strings;
    strings += b.length + 1;
    return p;
  };
  mem.fill(info, plan.infoEnd - info, 0);

  const lowRam = e820.find((e) => e.type === E820.RAM && e.addr === 0);
  const upperRam = e820.find((e) => e.type === E820.RAM && e.addr === LEGACY.end);
  const flags = MB_INFO.MEMORY | MB_INFO.MEM_MAP | MB_INFO.CMDLINE | MB_INFO.MODS |
    MB_INFO.LOADER_NAME;
  // mem_lower: KiB from 0; mem_upper: KiB from 1 MiB to the first hole (3.3).
  mem.writeU32(info + 4, Math.min(640, Math.floor((lowRam?.size ?? 0) / 1024)));
  mem.writeU32(info + 8, Math.floor((upperRam?.size ?? 0) / 1024));
  e820.forEach((e, i) => {
    const p = mmapAddr + i * 24;
    mem.writeU32(p, 20); // size of the entry, not counting this field
    mem.writeU64(p + 4, BigInt(e.addr));
    mem.writeU64(p + 12, BigInt(e.size));
    mem.writeU32(p + 20, e.type);
  });
  mem.writeU32(info + 44, mmapLen);
  mem.writeU32(info + 48, mmapAddr);
  plan.modules.forEach((m, i) => {
    const p = modsAddr + i * 16;
    mem.writeU32(p, m.start);
    mem.writeU32(p + 4, m.end);
    mem.writeU32(p + 8, putString(m.cmdline));
  });
  mem.writeU32(info + 20, plan.modules.length);
  mem.writeU32(info + 24, modsAddr);
  mem.writeU32(info + 16, putString(plan.cmdline));
  mem.writeU32(info + 64, putString(LOADER_NAME));
  mem.writeU32(info, flags);

  const regs = {
    ...zeroRegs(),
    rax: BigInt(MULTIBOOT_BOOTLOADER_MAGIC),
    rbx: BigInt(info),
    rip: BigInt(plan.kernel.entry),
  };
  return protectedModeEntry(mem, regs);
}

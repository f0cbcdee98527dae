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
import { EM_386, isElf, parseElf } from "./elf.ts";
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

const pageUp = (n: number) => Math.ceil(n / 0x1000) * 0x1000;

/** Throws unless [addr, addr+len) lies inside e820 RAM. */
function requireRam(e820: readonly E820Entry[], addr: number, len: number, what: string): void {
  if (len === 0) return;
  if (!inE820Ram(e820, addr, len)) {
    throw new Error(
      `${what} at [0x${addr.toString(16)}, 0x${
        (addr + len).toString(16)
      }) is not in guest RAM (see \`dhyve check\` for the memory map)`,
    );
  }
}

/**
 * Loads a multiboot kernel and its modules into guest memory and writes the
 * boot information. Returns the BSP entry state and what went where.
 */
export function loadMultiboot(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  kernel: Uint8Array,
  cmdline: string,
  modules: readonly MultibootModule[],
  kernelName = "kernel",
): { entry: EntryState; layout: MultibootLayout } {
  const header = findMultibootHeader(kernel);
  if (!header) throw new Error(`${kernelName}: no multiboot header in the first 8 KiB`);
  // Bits 0-15 are requirements the loader must meet or refuse (3.1.2). dhyve
  // meets 0 (page-aligned modules) and 1 (memory info); for 2 (video mode)
  // it boots with no graphics mode information, as QEMU does.
  const unknown = header.flags & 0xfff8;
  if (unknown) {
    throw new Error(`${kernelName}: unsupported multiboot header flags 0x${unknown.toString(16)}`);
  }

  let kStart = Infinity, kEnd = 0, entry: number;
  if (header.addresses) {
    const a = header.addresses;
    // The a.out kludge (3.1.3): file offset of load_addr follows from header_addr.
    const fileStart = header.offset - (a.headerAddr - a.loadAddr);
    if (fileStart < 0 || a.headerAddr < a.loadAddr) {
      throw new Error(`${kernelName}: bad a.out kludge addresses`);
    }
    const loadLen = a.loadEndAddr ? a.loadEndAddr - a.loadAddr : kernel.length - fileStart;
    if (loadLen <= 0 || fileStart + loadLen > kernel.length) {
      throw new Error(`${kernelName}: a.out kludge load range outside the file`);
    }
    const memEnd = a.bssEndAddr
      ? Math.max(a.bssEndAddr, a.loadAddr + loadLen)
      : a.loadAddr + loadLen;
    requireRam(e820, a.loadAddr, memEnd - a.loadAddr, `${kernelName} image`);
    mem.write(a.loadAddr, kernel.subarray(fileStart, fileStart + loadLen));
    mem.fill(a.loadAddr + loadLen, memEnd - (a.loadAddr + loadLen), 0);
    kStart = a.loadAddr;
    kEnd = memEnd;
    entry = a.entryAddr;
  } else {
    if (!isElf(kernel)) {
      throw new Error(`${kernelName}: multiboot kernel is neither ELF nor a.out-kludge`);
    }
    const elf = parseElf(kernel, kernelName);
    if (elf.class !== 32 || elf.machine !== EM_386) {
      throw new Error(
        `${kernelName}: multiboot ELF kernels must be ELF32 i386 (this one is ELF${elf.class})`,
      );
    }
    for (const s of elf.segments) {
      requireRam(e820, s.paddr, s.memsz, `${kernelName} segment`);
      mem.write(s.paddr, kernel.subarray(s.offset, s.offset + s.filesz));
      mem.fill(s.paddr + s.filesz, s.memsz - s.filesz, 0);
      kStart = Math.min(kStart, s.paddr);
      kEnd = Math.max(kEnd, s.paddr + s.memsz);
    }
    // e_entry is a virtual address. A kernel linked where it is loaded has
    // vaddr = paddr; a higher-half kernel is entered at the physical address
    // of its entry, through the segment that holds it (as GRUB does).
    const seg = elf.segments.find((x) => elf.entry >= x.vaddr && elf.entry < x.vaddr + x.memsz);
    entry = seg ? elf.entry - seg.vaddr + seg.paddr : elf.entry;
  }
  if (!(entry >= kStart && entry < kEnd)) {
    throw new Error(
      `${kernelName}: entry point 0x${entry.toString(16)} is outside the loaded image`,
    );
  }

  // Modules: page aligned (flag 0), one after the other above the kernel.
  let at = pageUp(kEnd);
  const placed: { name: string; start: number; end: number; cmdline: string }[] = [];
  for (const m of modules) {
    requireRam(e820, at, m.bytes.length, `module ${m.name}`);
    mem.write(at, m.bytes);
    placed.push({ name: m.name, start: at, end: at + m.bytes.length, cmdline: m.cmdline });
    at = pageUp(at + m.bytes.length);
  }

  // The boot information area: info structure, memory map, module list, strings.
  const enc = new TextEncoder();
  const info = at;
  const mmapAddr = info + 128;
  const mmapLen = e820.length * 24;
  const modsAddr = mmapAddr + mmapLen;
  let strings = modsAddr + placed.length * 16;
  const putString = (s: string): number => {
    const b = enc.encode(s);
    requireRam(e820, strings, b.length + 1, "multiboot strings");
    mem.write(strings, b);
    mem.writeU8(strings + b.length, 0);
    const p = strings;
    strings += b.length + 1;
    return p;
  };
  requireRam(e820, info, strings - info, "multiboot information");
  mem.fill(info, strings - info, 0);

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
  placed.forEach((m, i) => {
    const p = modsAddr + i * 16;
    mem.writeU32(p, m.start);
    mem.writeU32(p + 4, m.end);
    mem.writeU32(p + 8, putString(m.cmdline));
  });
  mem.writeU32(info + 20, placed.length);
  mem.writeU32(info + 24, modsAddr);
  mem.writeU32(info + 16, putString(cmdline));
  mem.writeU32(info + 64, putString("dhyve"));
  mem.writeU32(info, flags);

  const regs = {
    ...zeroRegs(),
    rax: BigInt(MULTIBOOT_BOOTLOADER_MAGIC),
    rbx: BigInt(info),
    rip: BigInt(entry),
  };
  return {
    entry: protectedModeEntry(mem, regs),
    layout: {
      kernel: { start: kStart, end: kEnd, entry },
      modules: placed.map(({ name, start, end }) => ({ name, start, end })),
      info,
    },
  };
}

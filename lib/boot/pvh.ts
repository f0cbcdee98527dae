/**
 * PVH boot of an uncompressed ELF kernel (Linux's vmlinux), the way Xen,
 * QEMU and Firecracker enter it without firmware.
 *
 * Sources:
 * - xen/include/public/elfnote.h: XEN_ELFNOTE_PHYS32_ENTRY (18), "Physical
 *   entry point into the kernel ... in 32-bit protected mode with paging
 *   disabled", in a note owned by "Xen";
 * - xen/include/public/arch-x86/hvm/start_info.h: struct hvm_start_info
 *   (version 1, with the memory map), hvm_modlist_entry,
 *   hvm_memmap_table_entry, and the machine state at entry;
 * - Documentation/virt/... and arch/x86/platform/pvh/{head.S,enlighten.c}:
 *   Linux's side (pvh_start_xen reads EBX; the first module is the initrd;
 *   rsdp_paddr becomes boot_params.acpi_rsdp_addr).
 *
 * The kernel is loaded at its segments' physical addresses (a PVH kernel is
 * entered where it was linked), the start info goes to 0x7000 with the
 * module list and memory map after it, the command line to 0x20000.
 *
 * @module
 */
import type { Segment } from "../../cpu/regs.ts";
import type { GuestMemory } from "../guest_memory.ts";
import { type E820Entry, inE820Ram, ZERO_PAGE } from "../layout.ts";
import { type ElfNote, type ElfSegment, isElf, parseElfNotes } from "./elf.ts";
import { type ByteSource, bytesSource, InputFileError, readRange } from "../file_read.ts";
import { showPath } from "../quote.ts";
import { type EntryState, protectedModeEntry, zeroRegs } from "./entry.ts";
import {
  checkCmdline,
  LINUX_CMDLINE_ADDR,
  LinuxBootError,
  type LinuxNames,
  loadInitrd,
  placeInitrd,
  type Range,
  writeCmdline,
} from "./linux.ts";

/** XEN_ELFNOTE_PHYS32_ENTRY: the PVH entry point note type (elfnote.h). */
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;
/** The owner name of Xen's ELF notes. */
export const XEN_NOTE_NAME = "Xen";
/** hvm_start_info.magic: XEN_HVM_START_MAGIC_VALUE (start_info.h). */
export const XEN_HVM_START_MAGIC_VALUE = 0x336ec578;
/** The start info version dhyve writes: 1 (with memmap_paddr/memmap_entries). */
export const HVM_START_INFO_VERSION = 1;

/** struct hvm_start_info (start_info.h), version 1: field offsets, 56 bytes. */
export const HVM_START_INFO = Object.freeze({
  size: 56,
  /** u32: XEN_HVM_START_MAGIC_VALUE. */
  magic: 0,
  /** u32: the structure's version. */
  version: 4,
  /** u32: SIF_xxx flags. */
  flags: 8,
  /** u32: number of modules. */
  nrModules: 12,
  /** u64: physical address of the hvm_modlist_entry array. */
  modlistPaddr: 16,
  /** u64: physical address of the NUL-terminated command line. */
  cmdlinePaddr: 24,
  /** u64: physical address of the ACPI RSDP. */
  rsdpPaddr: 32,
  /** u64: physical address of the hvm_memmap_table_entry array (version 1). */
  memmapPaddr: 40,
  /** u32: entries in the memory map (version 1). */
  memmapEntries: 48,
  /** u32: reserved, 0. */
  reserved: 52,
});

/** struct hvm_modlist_entry: field offsets, 32 bytes. */
export const HVM_MODLIST_ENTRY = Object.freeze({
  size: 32,
  paddr: 0,
  size_: 8,
  cmdlinePaddr: 16,
  reserved: 24,
});

/** struct hvm_memmap_table_entry: field offsets, 24 bytes; `type` takes the e820 values (XEN_HVM_MEMMAP_TYPE_*). */
export const HVM_MEMMAP_ENTRY = Object.freeze({
  size: 24,
  addr: 0,
  size_: 8,
  type: 16,
  reserved: 20,
});

/** Where dhyve puts the start info; the module list and memory map follow in the same page. */
export const PVH_START_INFO_ADDR = ZERO_PAGE;
const MODLIST_OFFSET = 0x40;
const MEMMAP_OFFSET = 0x100;
/** Memory map entries that fit in the start info page after the module list. */
export const PVH_MAX_MEMMAP = Math.floor((0x1000 - MEMMAP_OFFSET) / HVM_MEMMAP_ENTRY.size);

/**
 * The longest command line for a PVH Linux kernel: x86's COMMAND_LINE_SIZE
 * is 2048 with the NUL (arch/x86/include/uapi/asm/setup.h); a vmlinux does
 * not say so itself, and a longer one would be cut off silently.
 */
export const PVH_CMDLINE_MAX = 2047;

/** A PVH-capable ELF kernel. */
export interface PvhKernel {
  /** The 32-bit physical entry point from XEN_ELFNOTE_PHYS32_ENTRY. */
  readonly entry: number;
  readonly class: 32 | 64;
  readonly segments: readonly ElfSegment[];
  /** The physical range the loadable segments cover. */
  readonly image: Range;
}

const hex = (n: number) => "0x" + n.toString(16);

/** The entry point a XEN_ELFNOTE_PHYS32_ENTRY note holds. */
function pvhEntryOf(notes: readonly ElfNote[], what: string): number | undefined {
  const note = notes.find((n) => n.name === XEN_NOTE_NAME && n.type === XEN_ELFNOTE_PHYS32_ENTRY);
  if (!note) return undefined;
  // Linux emits the note as a 32-bit value (.long) in older kernels and as a
  // pointer-sized one (_ASM_PTR) in newer ones; the entry is 32-bit either way.
  if (note.desc.length !== 4 && note.desc.length !== 8) {
    throw new Error(`${what}: XEN_ELFNOTE_PHYS32_ENTRY has ${note.desc.length} bytes, not 4 or 8`);
  }
  const dv = new DataView(note.desc.buffer, note.desc.byteOffset, note.desc.byteLength);
  if (note.desc.length === 8 && dv.getUint32(4, true) !== 0) {
    throw new Error(`${what}: the PVH entry point is above 4 GiB`);
  }
  return dv.getUint32(0, true);
}

/** The PVH entry point of an ELF image, or undefined when it has no XEN_ELFNOTE_PHYS32_ENTRY note. */
export function findPvhEntry(bytes: Uint8Array, what = "kernel"): number | undefined {
  return pvhEntryOf(parseElfNotes(bytes, what), what);
}

/** The most program header bytes read from a kernel (64 KiB: over a thousand headers). */
const MAX_PHDR_BYTES = 64 * 1024;
/** The most note bytes read from a kernel (1 MiB; Linux's .notes are a few hundred bytes). */
const MAX_NOTE_BYTES = 1024 * 1024;
const PT_LOAD = 1;
const PT_NOTE = 4;

/**
 * The loadable segments and the notes of an ELF kernel, read from `source`
 * without reading the segments themselves: the ELF header, the program
 * headers (at most {@linkcode MAX_PHDR_BYTES}) and the PT_NOTE segments (at
 * most {@linkcode MAX_NOTE_BYTES} together). The same checks, with the same
 * words, as lib/boot/elf.ts's parseElf and parseElfNotes, which work on a
 * whole image in memory; a vmlinux with its debug information is hundreds
 * of MB, of which only the segments are loaded.
 */
function readElfKernel(source: ByteSource, what: string): {
  class: 32 | 64;
  segments: ElfSegment[];
  notes: ElfNote[];
} {
  const head = readRange(source, 0, 64);
  if (!isElf(head)) throw new Error(`${what}: not an ELF file`);
  const cls = head[4];
  if (cls !== 1 && cls !== 2) throw new Error(`${what}: unknown ELF class ${cls}`);
  const is64 = cls === 2;
  if (head.length < (is64 ? 64 : 52)) throw new Error(`${what}: truncated ELF header`);
  if (head[5] !== 1) throw new Error(`${what}: not little-endian`);
  const hv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const phoff = is64 ? Number(hv.getBigUint64(32, true)) : hv.getUint32(28, true);
  const phentsize = hv.getUint16(is64 ? 54 : 42, true);
  const phnum = hv.getUint16(is64 ? 56 : 44, true);
  if (phnum === 0) throw new Error(`${what}: no program headers`);
  if (phentsize < (is64 ? 56 : 32)) {
    throw new Error(`${what}: program header size ${phentsize} too small`);
  }
  const phBytes = phnum * phentsize;
  if (phBytes > MAX_PHDR_BYTES) {
    throw new Error(`${what}: ${phnum} program headers of ${phentsize} bytes are too many`);
  }
  if (phoff + phBytes > source.size) throw new Error(`${what}: program headers outside the file`);
  const ph = readRange(source, phoff, phBytes);
  const dv = new DataView(ph.buffer, ph.byteOffset, ph.byteLength);
  const u = (at: number) => (is64 ? Number(dv.getBigUint64(at, true)) : dv.getUint32(at, true));
  const segments: ElfSegment[] = [];
  const notes: ElfNote[] = [];
  let noteBytes = 0;
  for (let i = 0; i < phnum; i++) {
    const at = i * phentsize;
    const type = dv.getUint32(at, true);
    // Field offsets: System V ABI "Program Header" (Elf64_Phdr / Elf32_Phdr).
    const offset = u(at + (is64 ? 8 : 4));
    const filesz = u(at + (is64 ? 32 : 16));
    if (type === PT_NOTE) {
      if (offset + filesz > source.size) {
        throw new Error(`${what}: note segment ${i} outside the file`);
      }
      noteBytes += filesz;
      if (noteBytes > MAX_NOTE_BYTES) {
        throw new Error(`${what}: its note segments hold over ${MAX_NOTE_BYTES} bytes`);
      }
      notes.push(...notesIn(readRange(source, offset, filesz), offset, what));
    }
    if (type !== PT_LOAD) continue;
    const seg: ElfSegment = {
      offset,
      vaddr: u(at + (is64 ? 16 : 8)),
      paddr: u(at + (is64 ? 24 : 12)),
      filesz,
      memsz: u(at + (is64 ? 40 : 20)),
    };
    if (seg.filesz > seg.memsz) throw new Error(`${what}: segment ${i} has filesz > memsz`);
    if (seg.offset + seg.filesz > source.size) {
      throw new Error(`${what}: segment ${i} extends past the file`);
    }
    if (seg.memsz > 0) segments.push(seg);
  }
  if (segments.length === 0) throw new Error(`${what}: no loadable segments`);
  return { class: is64 ? 64 : 32, segments, notes };
}

/**
 * The notes of one PT_NOTE segment's bytes (read from file offset `base`):
 * namesz, descsz, type, then the name and the descriptor, each padded to 4
 * bytes (System V ABI "Note Section").
 */
function notesIn(bytes: Uint8Array, base: number, what: string): ElfNote[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder();
  const notes: ElfNote[] = [];
  let p = 0;
  while (p + 12 <= bytes.length) {
    const namesz = dv.getUint32(p, true);
    const descsz = dv.getUint32(p + 4, true);
    const nameAt = p + 12;
    const descAt = nameAt + ((namesz + 3) & ~3);
    if (descAt + descsz > bytes.length) {
      throw new Error(`${what}: note at file offset ${base + p} overruns its segment`);
    }
    const name = bytes.subarray(nameAt, nameAt + namesz);
    const nul = name.indexOf(0);
    notes.push({
      name: dec.decode(nul < 0 ? name : name.subarray(0, nul)),
      type: dv.getUint32(p + 8, true),
      desc: bytes.subarray(descAt, descAt + descsz),
    });
    p = descAt + ((descsz + 3) & ~3);
  }
  return notes;
}

/**
 * Reads an ELF kernel's headers and notes from `source` (not its
 * segments) for PVH boot; throws {@linkcode LinuxBootError} (key `kernel`)
 * when it is not ELF, has no PVH note, or its entry point is outside its
 * segments.
 */
export function readPvhKernel(source: ByteSource, what: string = showPath(source.name)): PvhKernel {
  let elf;
  let entry: number | undefined;
  try {
    elf = readElfKernel(source, what);
    entry = pvhEntryOf(elf.notes, what);
  } catch (e) {
    if (e instanceof InputFileError) throw e;
    throw new LinuxBootError("kernel", (e as Error).message);
  }
  if (entry === undefined) {
    throw new LinuxBootError(
      "kernel",
      `${what}: an ELF kernel without a PVH entry note (a "Xen" note of type ${XEN_ELFNOTE_PHYS32_ENTRY}, XEN_ELFNOTE_PHYS32_ENTRY); build it with CONFIG_PVH=y`,
    );
  }
  const start = Math.min(...elf.segments.map((s) => s.paddr));
  const end = Math.max(...elf.segments.map((s) => s.paddr + s.memsz));
  if (!elf.segments.some((s) => entry >= s.paddr && entry < s.paddr + s.memsz)) {
    throw new LinuxBootError(
      "kernel",
      `${what}: the PVH entry point ${hex(entry)} is outside its loadable segments`,
    );
  }
  return { entry, class: elf.class, segments: elf.segments, image: { start, end } };
}

/**
 * Parses an ELF kernel held in memory for PVH boot (see
 * {@linkcode readPvhKernel}).
 */
export function parsePvhKernel(bytes: Uint8Array, what = "kernel"): PvhKernel {
  return readPvhKernel(bytesSource(bytes, what), what);
}

/** What the PVH loader does, decided before any guest memory exists. */
export interface PvhPlan {
  readonly format: "pvh";
  readonly kernel: PvhKernel;
  readonly initrd?: Range;
  readonly startInfo: number;
  readonly cmdline: number;
  readonly cmdlineBytes: number;
}

/**
 * Decides where a PVH kernel's pieces go; throws {@linkcode LinuxBootError}
 * when a segment is not in RAM, the initrd does not fit above the kernel
 * below the lowmem end, or the command line is too long.
 */
export function planPvh(
  kernel: PvhKernel,
  e820: readonly E820Entry[],
  initrdSize: number | undefined,
  cmdline: string,
  names: LinuxNames = {},
): PvhPlan {
  const kname = names.kernel ?? "kernel";
  const cmd = checkCmdline(cmdline, PVH_CMDLINE_MAX, "Linux (x86 COMMAND_LINE_SIZE)");
  for (const s of kernel.segments) {
    if (!inE820Ram(e820, s.paddr, s.memsz)) {
      throw new LinuxBootError(
        "kernel",
        `${kname}: its segment at [${hex(s.paddr)}, ${
          hex(s.paddr + s.memsz)
        }) is not in guest RAM below the lowmem end (a PVH kernel is loaded where it is linked; see \`dhyve check\` for the memory map)`,
      );
    }
  }
  if (e820.length > PVH_MAX_MEMMAP) throw new Error(`too many e820 entries (${e820.length})`);
  const initrd = initrdSize === undefined ? undefined : placeInitrd(
    e820,
    initrdSize,
    Math.ceil(kernel.image.end / 0x1000) * 0x1000,
    2 ** 32,
    names.initrd ?? "initrd",
  );
  return {
    format: "pvh",
    kernel,
    initrd,
    startInfo: PVH_START_INFO_ADDR,
    cmdline: LINUX_CMDLINE_ADDR,
    cmdlineBytes: cmd.length,
  };
}

/** TR as start_info.h asks: "a 32-bit TSS (active) with a base of '0' and a limit of '0x67'". */
const PVH_TR: Segment = {
  base: 0n,
  limit: 0x67,
  selector: 0,
  type: 0xb, // 32-bit TSS, busy (Intel SDM Vol. 3A, Table 3-2)
  present: 1,
  dpl: 0,
  db: 0,
  s: 0,
  l: 0,
  g: 0,
  avl: 0,
  unusable: 0,
};

/**
 * Loads a PVH kernel per `plan`, writes hvm_start_info (version 1, with the
 * memory map, the initrd as module 0, the command line and the RSDP) and
 * returns the entry state start_info.h prescribes: 32-bit flat protected
 * mode, paging off, CR4 = 0, IF clear, EBX = the start info's address.
 * Of the kernel, only its segments are read, straight into guest RAM.
 */
export function loadPvhFrom(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  image: ByteSource,
  initrd: ByteSource | undefined,
  cmdline: string,
  plan: PvhPlan,
  rsdp: number | undefined,
): EntryState {
  // Only the segments' file bytes are read, each straight into guest RAM.
  for (const s of plan.kernel.segments) {
    if (s.filesz > 0) image.readInto(s.offset, mem.slice(s.paddr, s.filesz));
    mem.fill(s.paddr + s.filesz, s.memsz - s.filesz, 0);
  }
  if (initrd && plan.initrd) loadInitrd(mem, initrd, plan.initrd);
  const cmd = writeCmdline(mem, new TextEncoder().encode(cmdline));

  const si = plan.startInfo;
  const modlist = si + MODLIST_OFFSET;
  const memmap = si + MEMMAP_OFFSET;
  mem.fill(si, 0x1000, 0);
  mem.writeU32(si + HVM_START_INFO.magic, XEN_HVM_START_MAGIC_VALUE);
  mem.writeU32(si + HVM_START_INFO.version, HVM_START_INFO_VERSION);
  mem.writeU32(si + HVM_START_INFO.flags, 0);
  mem.writeU64(si + HVM_START_INFO.cmdlinePaddr, BigInt(cmd));
  mem.writeU64(si + HVM_START_INFO.rsdpPaddr, BigInt(rsdp ?? 0));
  if (plan.initrd) {
    // Linux takes the first module as its initrd (arch/x86/platform/pvh/enlighten.c).
    mem.writeU32(si + HVM_START_INFO.nrModules, 1);
    mem.writeU64(si + HVM_START_INFO.modlistPaddr, BigInt(modlist));
    mem.writeU64(modlist + HVM_MODLIST_ENTRY.paddr, BigInt(plan.initrd.start));
    mem.writeU64(modlist + HVM_MODLIST_ENTRY.size_, BigInt(plan.initrd.end - plan.initrd.start));
  }
  e820.forEach((e, i) => {
    const p = memmap + i * HVM_MEMMAP_ENTRY.size;
    mem.writeU64(p + HVM_MEMMAP_ENTRY.addr, BigInt(e.addr));
    mem.writeU64(p + HVM_MEMMAP_ENTRY.size_, BigInt(e.size));
    mem.writeU32(p + HVM_MEMMAP_ENTRY.type, e.type);
  });
  mem.writeU64(si + HVM_START_INFO.memmapPaddr, BigInt(memmap));
  mem.writeU32(si + HVM_START_INFO.memmapEntries, e820.length);

  // start_info.h: "ebx: contains the physical memory address where the loader
  // has placed the boot start info structure"; everything else unspecified.
  const regs = { ...zeroRegs(), rip: BigInt(plan.kernel.entry), rbx: BigInt(si) };
  const base = protectedModeEntry(mem, regs);
  return { ...base, sregs: (initial) => ({ ...base.sregs(initial), tr: PVH_TR }) };
}

/** {@linkcode loadPvhFrom} for a kernel and an initrd held in memory. */
export function loadPvh(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  image: Uint8Array,
  initrd: Uint8Array | undefined,
  cmdline: string,
  plan: PvhPlan,
  rsdp: number | undefined,
): EntryState {
  return loadPvhFrom(
    mem,
    e820,
    bytesSource(image, "kernel"),
    initrd && bytesSource(initrd, "initrd"),
    cmdline,
    plan,
    rsdp,
  );
}

/** Lines describing a PVH plan, for logs and `dhyve check`. */
export function describePvh(plan: PvhPlan): string[] {
  const k = plan.kernel;
  return [
    `ELF${k.class} vmlinux, PVH entry (XEN_ELFNOTE_PHYS32_ENTRY) at ${hex(k.entry)}`,
    `kernel at ${hex(k.image.start)}-${hex(k.image.end)} (${k.segments.length} segments)`,
    plan.initrd ? `initrd at ${hex(plan.initrd.start)}-${hex(plan.initrd.end)}` : "no initrd",
    `start_info (version ${HVM_START_INFO_VERSION}) at ${hex(plan.startInfo)}`,
    `cmdline at ${hex(plan.cmdline)} (${plan.cmdlineBytes} of at most ${PVH_CMDLINE_MAX} bytes)`,
  ];
}

/**
 * A minimal ELF reader for boot payloads: the header and the PT_LOAD
 * program headers of 32- and 64-bit little-endian x86 images.
 *
 * Source: System V ABI, "ELF Header" and "Program Header"; x86 psABI
 * supplements (EM_386 = 3, EM_X86_64 = 62).
 *
 * @module
 */

/** A loadable segment. */
export interface ElfSegment {
  /** Offset of the segment's bytes in the file. */
  readonly offset: number;
  /** Physical (load) address. */
  readonly paddr: number;
  /** Virtual address. */
  readonly vaddr: number;
  /** Bytes present in the file. */
  readonly filesz: number;
  /** Bytes in memory (the rest is zero-filled). */
  readonly memsz: number;
}

/** The parts of an ELF image a loader needs. */
export interface ElfImage {
  readonly class: 32 | 64;
  readonly machine: number;
  readonly entry: number;
  readonly segments: readonly ElfSegment[];
}

/** ELF machine numbers. */
export const EM_386 = 3;
/** ELF machine numbers. */
export const EM_X86_64 = 62;

const PT_LOAD = 1;

/** True when `bytes` starts with the ELF magic. */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c &&
    bytes[3] === 0x46;
}

/** Parses an ELF image; throws with a clear message on anything malformed. */
export function parseElf(bytes: Uint8Array, what = "ELF image"): ElfImage {
  if (!isElf(bytes)) throw new Error(`${what}: not an ELF file`);
  const cls = bytes[4];
  if (cls !== 1 && cls !== 2) throw new Error(`${what}: unknown ELF class ${cls}`);
  // The ELF header is 52 bytes for ELF32 and 64 bytes for ELF64.
  if (bytes.length < (cls === 2 ? 64 : 52)) throw new Error(`${what}: truncated ELF header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes[5] !== 1) throw new Error(`${what}: not little-endian`);
  const is64 = cls === 2;
  const machine = dv.getUint16(18, true);
  const u = (off: number) => (is64 ? Number(dv.getBigUint64(off, true)) : dv.getUint32(off, true));
  const entry = u(24);
  const phoff = is64 ? Number(dv.getBigUint64(32, true)) : dv.getUint32(28, true);
  const phentsize = dv.getUint16(is64 ? 54 : 42, true);
  const phnum = dv.getUint16(is64 ? 56 : 44, true);
  const minEnt = is64 ? 56 : 32;
  if (phnum === 0) throw new Error(`${what}: no program headers`);
  if (phentsize < minEnt) throw new Error(`${what}: program header size ${phentsize} too small`);
  if (phoff + phnum * phentsize > bytes.length) {
    throw new Error(`${what}: program headers outside the file`);
  }
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (dv.getUint32(at, true) !== PT_LOAD) continue;
    const seg: ElfSegment = is64
      ? {
        offset: Number(dv.getBigUint64(at + 8, true)),
        vaddr: Number(dv.getBigUint64(at + 16, true)),
        paddr: Number(dv.getBigUint64(at + 24, true)),
        filesz: Number(dv.getBigUint64(at + 32, true)),
        memsz: Number(dv.getBigUint64(at + 40, true)),
      }
      : {
        offset: dv.getUint32(at + 4, true),
        vaddr: dv.getUint32(at + 8, true),
        paddr: dv.getUint32(at + 12, true),
        filesz: dv.getUint32(at + 16, true),
        memsz: dv.getUint32(at + 20, true),
      };
    if (seg.filesz > seg.memsz) throw new Error(`${what}: segment ${i} has filesz > memsz`);
    if (seg.offset + seg.filesz > bytes.length) {
      throw new Error(`${what}: segment ${i} extends past the file`);
    }
    if (seg.memsz > 0) segments.push(seg);
  }
  if (segments.length === 0) throw new Error(`${what}: no loadable segments`);
  return { class: is64 ? 64 : 32, machine, entry, segments };
}

/** An ELF note (System V ABI, "Note Section"): name, type and descriptor bytes. */
export interface ElfNote {
  /** The owner, without its NUL ("Xen", "GNU", "Linux"). */
  readonly name: string;
  readonly type: number;
  readonly desc: Uint8Array;
}

const PT_NOTE = 4;

/**
 * The notes in an ELF image's PT_NOTE segments. Each note is namesz, descsz,
 * type (4 bytes each), then the name and the descriptor, each padded to 4
 * bytes (System V ABI "Note Section"; 4-byte alignment is what x86 kernels
 * use for both ELF classes). Throws (naming `what`) on a malformed note.
 */
export function parseElfNotes(bytes: Uint8Array, what = "ELF image"): ElfNote[] {
  if (!isElf(bytes)) throw new Error(`${what}: not an ELF file`);
  const is64 = bytes[4] === 2;
  if (bytes.length < (is64 ? 64 : 52)) throw new Error(`${what}: truncated ELF header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const phoff = is64 ? Number(dv.getBigUint64(32, true)) : dv.getUint32(28, true);
  const phentsize = dv.getUint16(is64 ? 54 : 42, true);
  const phnum = dv.getUint16(is64 ? 56 : 44, true);
  if (phoff + phnum * phentsize > bytes.length) {
    throw new Error(`${what}: program headers outside the file`);
  }
  const notes: ElfNote[] = [];
  const dec = new TextDecoder();
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (dv.getUint32(at, true) !== PT_NOTE) continue;
    const offset = is64 ? Number(dv.getBigUint64(at + 8, true)) : dv.getUint32(at + 4, true);
    const size = is64 ? Number(dv.getBigUint64(at + 32, true)) : dv.getUint32(at + 16, true);
    if (offset + size > bytes.length) {
      throw new Error(`${what}: note segment ${i} outside the file`);
    }
    const end = offset + size;
    let p = offset;
    while (p + 12 <= end) {
      const namesz = dv.getUint32(p, true);
      const descsz = dv.getUint32(p + 4, true);
      const type = dv.getUint32(p + 8, true);
      const nameAt = p + 12;
      const descAt = nameAt + ((namesz + 3) & ~3);
      const next = descAt + ((descsz + 3) & ~3);
      if (descAt + descsz > end) {
        throw new Error(`${what}: note at file offset ${p} overruns its segment`);
      }
      const nameBytes = bytes.subarray(nameAt, nameAt + namesz);
      const nul = nameBytes.indexOf(0);
      notes.push({
        name: dec.decode(nul < 0 ? nameBytes : nameBytes.subarray(0, nul)),
        type,
        desc: bytes.subarray(descAt, descAt + descsz),
      });
      p = next;
    }
  }
  return notes;
}

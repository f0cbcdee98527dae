/**
 * Fixtures shared by the boot loaders' unit tests: guest memory, the
 * power-on segment registers and a hand-built ELF image.
 *
 * @module
 */
import { GuestMemory } from "../guest_memory.ts";
import { computeLayout, MiB } from "../layout.ts";
import type { Segment, Sregs } from "../../cpu/regs.ts";
import { EM_386, EM_X86_64 } from "./elf.ts";

/** 16 MiB of guest memory: the backing span and its GuestMemory over the layout's RAM. */
export function memory(): { span: Uint8Array; mem: GuestMemory } {
  const span = new Uint8Array(16 * MiB);
  return { span, mem: new GuestMemory(span, computeLayout(16 * MiB).ram) };
}

/** Power-on segment state, roughly as KVM reports it after vCPU creation. */
export function resetSegment(selector: number, base: bigint, code: boolean): Segment {
  return {
    base,
    limit: 0xffff,
    selector,
    type: code ? 0xb : 0x3,
    present: 1,
    dpl: 0,
    db: 0,
    s: 1,
    l: 0,
    g: 0,
    avl: 0,
    unusable: 0,
  };
}

/** The sregs of a freshly created vCPU (CS:IP = F000:FFF0, CR0 = CD | NW | ET). */
export function initialSregs(): Sregs {
  const data = resetSegment(0, 0n, false);
  return {
    cs: resetSegment(0xf000, 0xffff0000n, true),
    ds: data,
    es: data,
    fs: data,
    gs: data,
    ss: data,
    tr: { ...data, type: 0xb, s: 0 },
    ldt: { ...data, type: 0x2, s: 0 },
    gdt: { base: 0n, limit: 0xffff },
    idt: { base: 0n, limit: 0xffff },
    cr0: 0x60000010n, // CD | NW | ET
    cr2: 0n,
    cr3: 0n,
    cr4: 0n,
    cr8: 0n,
    efer: 0n,
    apicBase: 0xfee00900n,
    interruptBitmap: [0n, 0n, 0n, 0n],
  };
}

/** Program header type of a loadable segment. */
export const PT_LOAD = 1;
/** Program header type of a note segment. */
export const PT_NOTE = 4;

/** One program header of {@link buildElf}. */
export interface SegSpec {
  type?: number;
  paddr: number;
  vaddr?: number;
  data?: Uint8Array;
  memsz?: number;
  /** Overrides of what is written into the program header. */
  offset?: number;
  filesz?: number;
}

/** The image {@link buildElf} writes. */
export interface ElfSpec {
  class: 32 | 64;
  entry: number;
  segments: SegSpec[];
  machine?: number;
  phoff?: number;
  phentsize?: number;
  phnum?: number;
  /**
   * File offset of the first segment's data (the rest follow it back to
   * back); by default just after the program headers, 16-byte aligned.
   */
  dataOffset?: number;
}

/** Builds an ELF image by hand (System V ABI header and program headers, little-endian). */
export function buildElf(spec: ElfSpec): Uint8Array {
  const is64 = spec.class === 64;
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const n = spec.segments.length;
  const dataStart = spec.dataOffset ?? Math.ceil((ehsize + n * phentsize) / 16) * 16;
  const offsets: number[] = [];
  let at = dataStart;
  for (const s of spec.segments) {
    offsets.push(at);
    at += s.data?.length ?? 0;
  }
  const bytes = new Uint8Array(Math.max(at, dataStart));
  const dv = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1]);
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, spec.machine ?? (is64 ? EM_X86_64 : EM_386), true);
  dv.setUint32(20, 1, true);
  const phoff = spec.phoff ?? ehsize;
  if (is64) {
    dv.setBigUint64(24, BigInt(spec.entry), true);
    dv.setBigUint64(32, BigInt(phoff), true);
    dv.setUint16(52, ehsize, true);
    dv.setUint16(54, spec.phentsize ?? phentsize, true);
    dv.setUint16(56, spec.phnum ?? n, true);
  } else {
    dv.setUint32(24, spec.entry, true);
    dv.setUint32(28, phoff, true);
    dv.setUint16(40, ehsize, true);
    dv.setUint16(42, spec.phentsize ?? phentsize, true);
    dv.setUint16(44, spec.phnum ?? n, true);
  }
  spec.segments.forEach((s, i) => {
    const p = ehsize + i * phentsize;
    const filesz = s.filesz ?? s.data?.length ?? 0;
    const memsz = s.memsz ?? filesz;
    const offset = s.offset ?? offsets[i];
    const vaddr = s.vaddr ?? s.paddr;
    if (p + phentsize > bytes.length) return;
    dv.setUint32(p, s.type ?? PT_LOAD, true);
    if (is64) {
      dv.setUint32(p + 4, 5, true);
      dv.setBigUint64(p + 8, BigInt(offset), true);
      dv.setBigUint64(p + 16, BigInt(vaddr), true);
      dv.setBigUint64(p + 24, BigInt(s.paddr), true);
      dv.setBigUint64(p + 32, BigInt(filesz), true);
      dv.setBigUint64(p + 40, BigInt(memsz), true);
      dv.setBigUint64(p + 48, 0x1000n, true);
    } else {
      dv.setUint32(p + 4, offset, true);
      dv.setUint32(p + 8, vaddr, true);
      dv.setUint32(p + 12, s.paddr, true);
      dv.setUint32(p + 16, filesz, true);
      dv.setUint32(p + 20, memsz, true);
      dv.setUint32(p + 24, 5, true);
      dv.setUint32(p + 28, 0x1000, true);
    }
    if (s.data) bytes.set(s.data, offsets[i]);
  });
  return bytes;
}

/** One ELF note: namesz, descsz, type, name and desc each padded to 4 bytes (System V ABI, "Note Section"). */
export function elfNote(name: string, type: number, desc: Uint8Array): Uint8Array {
  const n = new TextEncoder().encode(name + "\0");
  const pad = (x: number) => (x + 3) & ~3;
  const b = new Uint8Array(12 + pad(n.length) + pad(desc.length));
  const dv = new DataView(b.buffer);
  dv.setUint32(0, n.length, true);
  dv.setUint32(4, desc.length, true);
  dv.setUint32(8, type, true);
  b.set(n, 12);
  b.set(desc, 12 + pad(n.length));
  return b;
}

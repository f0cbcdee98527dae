/**
 * vCPU register state as plain data, with encoders for the KVM structs
 * (kvm_regs, kvm_sregs, kvm_segment). 64-bit values are bigints: guest
 * addresses such as 0xffffffff81000000 do not fit a double.
 *
 * @module
 */
import {
  KVM_DTABLE_STRUCT,
  KVM_REGS_STRUCT,
  KVM_SEGMENT_STRUCT,
  KVM_SREGS_STRUCT,
} from "./kvm_abi.ts";

/** The general-purpose registers, RIP and RFLAGS (kvm_regs). */
export interface Regs {
  rax: bigint;
  rbx: bigint;
  rcx: bigint;
  rdx: bigint;
  rsi: bigint;
  rdi: bigint;
  rsp: bigint;
  rbp: bigint;
  r8: bigint;
  r9: bigint;
  r10: bigint;
  r11: bigint;
  r12: bigint;
  r13: bigint;
  r14: bigint;
  r15: bigint;
  rip: bigint;
  rflags: bigint;
}

/** The names of {@linkcode Regs}, in kvm_regs order. */
export const REG_NAMES = Object.keys(KVM_REGS_STRUCT.o) as (keyof Regs)[];

/** A segment register with its descriptor cache (kvm_segment). */
export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  /** Descriptor type (4 bits). */
  type: number;
  present: number;
  dpl: number;
  /** Default operation size (D/B). */
  db: number;
  /** Code/data (1) or system (0) descriptor. */
  s: number;
  /** 64-bit code segment. */
  l: number;
  /** Granularity: limit in 4 KiB units. */
  g: number;
  avl: number;
  unusable: number;
}

/** A descriptor-table register (GDTR/IDTR). */
export interface DTable {
  base: bigint;
  limit: number;
}

/** Segment, descriptor-table and control registers (kvm_sregs). */
export interface Sregs {
  cs: Segment;
  ds: Segment;
  es: Segment;
  fs: Segment;
  gs: Segment;
  ss: Segment;
  tr: Segment;
  ldt: Segment;
  gdt: DTable;
  idt: DTable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apicBase: bigint;
  /** Pending external interrupt bitmap (256 bits), as four u64 words. */
  interruptBitmap: bigint[];
}

/** The segment register names of {@linkcode Sregs}. */
export const SEGMENT_NAMES = ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const;

/** Decodes a kvm_regs buffer. */
export function decodeRegs(buf: Uint8Array): Regs {
  const dv = new DataView(buf.buffer, buf.byteOffset, KVM_REGS_STRUCT.size);
  const out = {} as Regs;
  for (const name of REG_NAMES) out[name] = dv.getBigUint64(KVM_REGS_STRUCT.o[name], true);
  return out;
}

/** Encodes {@linkcode Regs} into a kvm_regs buffer. */
export function encodeRegs(regs: Regs, buf = new Uint8Array(KVM_REGS_STRUCT.size)): Uint8Array {
  const dv = new DataView(buf.buffer, buf.byteOffset, KVM_REGS_STRUCT.size);
  for (const name of REG_NAMES) {
    dv.setBigUint64(KVM_REGS_STRUCT.o[name], BigInt.asUintN(64, regs[name]), true);
  }
  return buf;
}

function decodeSegment(dv: DataView, at: number): Segment {
  const o = KVM_SEGMENT_STRUCT.o;
  return {
    base: dv.getBigUint64(at + o.base, true),
    limit: dv.getUint32(at + o.limit, true),
    selector: dv.getUint16(at + o.selector, true),
    type: dv.getUint8(at + o.type),
    present: dv.getUint8(at + o.present),
    dpl: dv.getUint8(at + o.dpl),
    db: dv.getUint8(at + o.db),
    s: dv.getUint8(at + o.s),
    l: dv.getUint8(at + o.l),
    g: dv.getUint8(at + o.g),
    avl: dv.getUint8(at + o.avl),
    unusable: dv.getUint8(at + o.unusable),
  };
}

function encodeSegment(dv: DataView, at: number, s: Segment): void {
  const o = KVM_SEGMENT_STRUCT.o;
  dv.setBigUint64(at + o.base, BigInt.asUintN(64, s.base), true);
  dv.setUint32(at + o.limit, s.limit >>> 0, true);
  dv.setUint16(at + o.selector, s.selector, true);
  dv.setUint8(at + o.type, s.type);
  dv.setUint8(at + o.present, s.present);
  dv.setUint8(at + o.dpl, s.dpl);
  dv.setUint8(at + o.db, s.db);
  dv.setUint8(at + o.s, s.s);
  dv.setUint8(at + o.l, s.l);
  dv.setUint8(at + o.g, s.g);
  dv.setUint8(at + o.avl, s.avl);
  dv.setUint8(at + o.unusable, s.unusable);
}

/** Decodes a kvm_sregs buffer. */
export function decodeSregs(buf: Uint8Array): Sregs {
  const dv = new DataView(buf.buffer, buf.byteOffset, KVM_SREGS_STRUCT.size);
  const o = KVM_SREGS_STRUCT.o;
  const dt = (at: number): DTable => ({
    base: dv.getBigUint64(at + KVM_DTABLE_STRUCT.o.base, true),
    limit: dv.getUint16(at + KVM_DTABLE_STRUCT.o.limit, true),
  });
  const out = {
    gdt: dt(o.gdt),
    idt: dt(o.idt),
    cr0: dv.getBigUint64(o.cr0, true),
    cr2: dv.getBigUint64(o.cr2, true),
    cr3: dv.getBigUint64(o.cr3, true),
    cr4: dv.getBigUint64(o.cr4, true),
    cr8: dv.getBigUint64(o.cr8, true),
    efer: dv.getBigUint64(o.efer, true),
    apicBase: dv.getBigUint64(o.apicBase, true),
    interruptBitmap: [0, 1, 2, 3].map((i) => dv.getBigUint64(o.interruptBitmap + 8 * i, true)),
  } as Sregs;
  for (const name of SEGMENT_NAMES) out[name] = decodeSegment(dv, o[name]);
  return out;
}

/** Encodes {@linkcode Sregs} into a kvm_sregs buffer. */
export function encodeSregs(s: Sregs, buf = new Uint8Array(KVM_SREGS_STRUCT.size)): Uint8Array {
  const dv = new DataView(buf.buffer, buf.byteOffset, KVM_SREGS_STRUCT.size);
  const o = KVM_SREGS_STRUCT.o;
  for (const name of SEGMENT_NAMES) encodeSegment(dv, o[name], s[name]);
  for (const [at, t] of [[o.gdt, s.gdt], [o.idt, s.idt]] as const) {
    dv.setBigUint64(at + KVM_DTABLE_STRUCT.o.base, BigInt.asUintN(64, t.base), true);
    dv.setUint16(at + KVM_DTABLE_STRUCT.o.limit, t.limit, true);
  }
  dv.setBigUint64(o.cr0, s.cr0, true);
  dv.setBigUint64(o.cr2, s.cr2, true);
  dv.setBigUint64(o.cr3, s.cr3, true);
  dv.setBigUint64(o.cr4, s.cr4, true);
  dv.setBigUint64(o.cr8, s.cr8, true);
  dv.setBigUint64(o.efer, s.efer, true);
  dv.setBigUint64(o.apicBase, s.apicBase, true);
  for (let i = 0; i < 4; i++) {
    dv.setBigUint64(o.interruptBitmap + 8 * i, s.interruptBitmap[i] ?? 0n, true);
  }
  return buf;
}

/** CR0, CR4 and IA32_EFER bits: one definition, the emulator's (cpu/x86). */
export { CR0, CR4, EFER } from "./x86/_exec_ctx.ts";

/** Formats a 64-bit register for humans: 0x-prefixed, 16 hex digits. */
export function hex64(v: bigint): string {
  return "0x" + BigInt.asUintN(64, v).toString(16).padStart(16, "0");
}

/** A multi-line dump of the registers, for triple-fault and error reports. */
export function formatRegisters(regs: Regs, sregs?: Sregs): string {
  const r = regs;
  const lines = [
    `rax=${hex64(r.rax)} rbx=${hex64(r.rbx)} rcx=${hex64(r.rcx)} rdx=${hex64(r.rdx)}`,
    `rsi=${hex64(r.rsi)} rdi=${hex64(r.rdi)} rsp=${hex64(r.rsp)} rbp=${hex64(r.rbp)}`,
    `r8 =${hex64(r.r8)} r9 =${hex64(r.r9)} r10=${hex64(r.r10)} r11=${hex64(r.r11)}`,
    `r12=${hex64(r.r12)} r13=${hex64(r.r13)} r14=${hex64(r.r14)} r15=${hex64(r.r15)}`,
    `rip=${hex64(r.rip)} rflags=${hex64(r.rflags)}`,
  ];
  if (sregs) {
    const seg = (n: string, s: Segment) =>
      `${n}=${s.selector.toString(16).padStart(4, "0")} base=${hex64(s.base)} limit=${
        s.limit.toString(16).padStart(8, "0")
      } type=${s.type} dpl=${s.dpl} db=${s.db} l=${s.l} p=${s.present}`;
    for (const n of SEGMENT_NAMES) lines.push(seg(n, sregs[n]));
    lines.push(
      `gdt=${hex64(sregs.gdt.base)}/${sregs.gdt.limit.toString(16)} idt=${hex64(sregs.idt.base)}/${
        sregs.idt.limit.toString(16)
      }`,
      `cr0=${hex64(sregs.cr0)} cr2=${hex64(sregs.cr2)} cr3=${hex64(sregs.cr3)} cr4=${
        hex64(sregs.cr4)
      }`,
      `cr8=${hex64(sregs.cr8)} efer=${hex64(sregs.efer)} apic_base=${hex64(sregs.apicBase)}`,
    );
  }
  return lines.join("\n");
}

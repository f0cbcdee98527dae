/**
 * CPU entry states for boot payloads: 16-bit real mode, 32-bit flat
 * protected mode and 64-bit long mode with identity-mapped page tables.
 *
 * The GDT and page tables are written into dhyve's firmware area (see
 * FIRMWARE in layout.ts). Selectors follow the Linux boot protocol
 * (Documentation/arch/x86/boot.rst): __BOOT_CS = 0x10, __BOOT_DS = 0x18.
 *
 * @module
 */
import type { EntryMode } from "../config.ts";
import type { GuestMemory } from "../guest_memory.ts";
import { FIRMWARE, GiB } from "../layout.ts";
import { CR0, CR4, EFER, type Regs, type Segment, type Sregs } from "../../cpu/regs.ts";

/** Boot CS and DS selectors (Linux boot protocol). */
export const BOOT_CS = 0x10;
/** Boot data selector. */
export const BOOT_DS = 0x18;

/** What to load into the BSP before its first KVM_RUN. */
export interface EntryState {
  readonly mode: EntryMode;
  readonly regs: Regs;
  /** Applied on top of the vCPU's power-on sregs. */
  readonly sregs: (initial: Sregs) => Sregs;
}

/** All-zero general registers with RFLAGS = 2 (bit 1 is reserved and reads as 1). */
export function zeroRegs(): Regs {
  return {
    rax: 0n,
    rbx: 0n,
    rcx: 0n,
    rdx: 0n,
    rsi: 0n,
    rdi: 0n,
    rsp: 0n,
    rbp: 0n,
    r8: 0n,
    r9: 0n,
    r10: 0n,
    r11: 0n,
    r12: 0n,
    r13: 0n,
    r14: 0n,
    r15: 0n,
    rip: 0n,
    rflags: 2n,
  };
}

/** A GDT descriptor (Intel SDM Vol. 3A, 3.4.5) from base, limit and access/flags. */
function descriptor(base: number, limit: number, access: number, flags: number): bigint {
  let d = BigInt(limit & 0xffff);
  d |= BigInt(base & 0xffffff) << 16n;
  d |= BigInt(access & 0xff) << 40n;
  d |= BigInt((limit >>> 16) & 0xf) << 48n;
  d |= BigInt(flags & 0xf) << 52n;
  d |= BigInt((base >>> 24) & 0xff) << 56n;
  return d;
}

// access: P | DPL0 | S | type; flags: G | D/B | L | AVL
const CODE32 = descriptor(0, 0xfffff, 0x9b, 0xc); // present, code, execute/read, accessed; 4 KiB granularity, 32-bit
const CODE64 = descriptor(0, 0xfffff, 0x9b, 0xa); // L = 1, D = 0 (Intel SDM 3.4.5.1)
const DATA = descriptor(0, 0xfffff, 0x93, 0xc); // present, data, read/write, accessed; 32-bit

function flatSegment(selector: number, code: boolean, long: boolean): Segment {
  return {
    base: 0n,
    limit: 0xffffffff,
    selector,
    type: code ? 0xb : 0x3,
    present: 1,
    dpl: 0,
    db: code && long ? 0 : 1,
    s: 1,
    l: code && long ? 1 : 0,
    g: 1,
    avl: 0,
    unusable: 0,
  };
}

function writeGdt(mem: GuestMemory, long: boolean): void {
  mem.fill(FIRMWARE.gdt, 0x20, 0);
  mem.writeU64(FIRMWARE.gdt + BOOT_CS, long ? CODE64 : CODE32);
  mem.writeU64(FIRMWARE.gdt + BOOT_DS, DATA);
}

/** Writes identity-mapping page tables for the first 4 GiB (2 MiB pages); returns CR3. */
export function writeIdentityPageTables(mem: GuestMemory): number {
  const pml4 = FIRMWARE.pageTables;
  const pdpt = pml4 + 0x1000;
  const pd = pdpt + 0x1000;
  mem.fill(pml4, FIRMWARE.pageTablesEnd - pml4, 0);
  // Present | writable (Intel SDM Vol. 3A, 4.5, Tables 4-15..4-18).
  mem.writeU64(pml4, BigInt(pdpt | 0x3));
  for (let i = 0; i < 4; i++) {
    mem.writeU64(pdpt + 8 * i, BigInt((pd + 0x1000 * i) | 0x3));
    for (let j = 0; j < 512; j++) {
      const phys = i * GiB + j * 0x200000;
      // Present | writable | PS (2 MiB page).
      mem.writeU64(pd + 0x1000 * i + 8 * j, BigInt(phys) | 0x83n);
    }
  }
  return pml4;
}

/**
 * Real-mode entry at physical `entry` (< 1 MiB): CS:IP = (entry >> 4):(entry & 15),
 * DS = ES = FS = GS = CS, SS:SP = 0000:`stackTop`.
 */
export function realModeEntry(entry: number, stackTop: number): EntryState {
  if (entry >= 0x100000) {
    throw new Error(`real-mode entry point 0x${entry.toString(16)} is above 1 MiB`);
  }
  const seg = entry >>> 4;
  const regs = { ...zeroRegs(), rip: BigInt(entry & 0xf), rsp: BigInt(stackTop) };
  // A real-mode segment: base = selector * 16, 64 KiB limit, 16-bit, byte granular.
  const realSeg = (selector: number, code: boolean): Segment => ({
    ...flatSegment(selector, code, false),
    base: BigInt(selector << 4),
    limit: 0xffff,
    db: 0,
    g: 0,
  });
  return {
    mode: "real16",
    regs,
    sregs: (initial) => ({
      ...initial,
      cs: realSeg(seg, true),
      ds: realSeg(seg, false),
      es: realSeg(seg, false),
      fs: realSeg(seg, false),
      gs: realSeg(seg, false),
      ss: realSeg(0, false),
    }),
  };
}

/** 32-bit flat protected-mode entry (paging off); writes the boot GDT. */
export function protectedModeEntry(mem: GuestMemory, regs: Regs): EntryState {
  writeGdt(mem, false);
  return {
    mode: "prot32",
    regs,
    sregs: (initial) => ({
      ...initial,
      cs: flatSegment(BOOT_CS, true, false),
      ds: flatSegment(BOOT_DS, false, false),
      es: flatSegment(BOOT_DS, false, false),
      fs: flatSegment(BOOT_DS, false, false),
      gs: flatSegment(BOOT_DS, false, false),
      ss: flatSegment(BOOT_DS, false, false),
      gdt: { base: BigInt(FIRMWARE.gdt), limit: 0x1f },
      idt: { base: 0n, limit: 0 },
      cr0: (initial.cr0 | CR0.PE | CR0.ET) & ~(CR0.PG | CR0.CD | CR0.NW),
      cr3: 0n,
      cr4: 0n,
      efer: 0n,
    }),
  };
}

/** 64-bit long-mode entry with the first 4 GiB identity-mapped; writes GDT and page tables. */
export function longModeEntry(mem: GuestMemory, regs: Regs): EntryState {
  writeGdt(mem, true);
  const cr3 = writeIdentityPageTables(mem);
  return {
    mode: "long64",
    regs,
    sregs: (initial) => ({
      ...initial,
      cs: flatSegment(BOOT_CS, true, true),
      ds: flatSegment(BOOT_DS, false, true),
      es: flatSegment(BOOT_DS, false, true),
      fs: flatSegment(BOOT_DS, false, true),
      gs: flatSegment(BOOT_DS, false, true),
      ss: flatSegment(BOOT_DS, false, true),
      gdt: { base: BigInt(FIRMWARE.gdt), limit: 0x1f },
      idt: { base: 0n, limit: 0 },
      cr0: (initial.cr0 | CR0.PE | CR0.PG | CR0.ET) & ~(CR0.CD | CR0.NW),
      cr3: BigInt(cr3),
      cr4: CR4.PAE,
      efer: EFER.LME | EFER.LMA,
    }),
  };
}

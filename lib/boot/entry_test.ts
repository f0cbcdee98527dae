import assert from "node:assert/strict";
import type { GuestMemory } from "../guest_memory.ts";
import { FIRMWARE } from "../layout.ts";
import { CR0, CR4, EFER, type Segment } from "../../cpu/regs.ts";
import {
  BOOT_CS,
  BOOT_DS,
  longModeEntry,
  protectedModeEntry,
  realModeEntry,
  writeIdentityPageTables,
  zeroRegs,
} from "./entry.ts";
import { initialSregs, memory } from "./_testing.ts";

interface Descriptor {
  base: number;
  /** Effective limit in bytes (G applied). */
  limit: number;
  type: number;
  s: number;
  dpl: number;
  p: number;
  avl: number;
  l: number;
  db: number;
  g: number;
}

/** Decodes an 8-byte segment descriptor (Intel SDM Vol. 3A, 3.4.5, Figure 3-8). */
function decodeDescriptor(d: bigint): Descriptor {
  const f = (lo: number, n: number) => Number((d >> BigInt(lo)) & ((1n << BigInt(n)) - 1n));
  const rawLimit = f(0, 16) | (f(48, 4) << 16);
  const g = f(55, 1);
  return {
    base: (f(16, 24) | (f(56, 8) << 24)) >>> 0,
    limit: g ? rawLimit * 4096 + 4095 : rawLimit,
    type: f(40, 4),
    s: f(44, 1),
    dpl: f(45, 2),
    p: f(47, 1),
    avl: f(52, 1),
    l: f(53, 1),
    db: f(54, 1),
    g,
  };
}

const FLAT_CODE32 = {
  base: 0,
  limit: 0xffffffff,
  type: 0xb,
  s: 1,
  dpl: 0,
  p: 1,
  avl: 0,
  l: 0,
  db: 1,
  g: 1,
};
const FLAT_DATA = { ...FLAT_CODE32, type: 0x3 };

/** The cached segment must match what the guest would load from the GDT. */
function assertSegmentMatches(seg: Segment, d: Descriptor, selector: number): void {
  assert.equal(seg.selector, selector);
  assert.equal(seg.base, BigInt(d.base));
  assert.equal(seg.limit, d.limit);
  assert.deepEqual(
    [seg.type, seg.s, seg.dpl, seg.present, seg.avl, seg.l, seg.db, seg.g, seg.unusable],
    [d.type, d.s, d.dpl, d.p, d.avl, d.l, d.db, d.g, 0],
  );
}

Deno.test("zeroRegs: everything 0 but the reserved RFLAGS bit 1", () => {
  const r = zeroRegs();
  assert.equal(r.rflags, 2n);
  assert.ok(Object.entries(r).every(([k, v]) => k === "rflags" || v === 0n));
  assert.equal(Object.keys(r).length, 18);
});

Deno.test("32-bit entry: the boot GDT holds flat 4 GiB code and data at 0x10/0x18", () => {
  const { mem } = memory();
  mem.fill(FIRMWARE.gdt, 0x20, 0xee);
  const regs = { ...zeroRegs(), rip: 0x100000n };
  const entry = protectedModeEntry(mem, regs);
  assert.equal(entry.mode, "prot32");
  assert.equal(entry.regs, regs);
  assert.equal(BOOT_CS, 0x10);
  assert.equal(BOOT_DS, 0x18);
  assert.equal(mem.readU64(FIRMWARE.gdt), 0n, "null descriptor");
  assert.equal(mem.readU64(FIRMWARE.gdt + 8), 0n, "unused descriptor");
  const code = decodeDescriptor(mem.readU64(FIRMWARE.gdt + BOOT_CS));
  const data = decodeDescriptor(mem.readU64(FIRMWARE.gdt + BOOT_DS));
  assert.deepEqual(code, FLAT_CODE32);
  assert.deepEqual(data, FLAT_DATA);

  const s = entry.sregs(initialSregs());
  assertSegmentMatches(s.cs, code, BOOT_CS);
  for (const name of ["ds", "es", "fs", "gs", "ss"] as const) {
    assertSegmentMatches(s[name], data, BOOT_DS);
  }
  assert.deepEqual(s.gdt, { base: BigInt(FIRMWARE.gdt), limit: 0x1f });
  assert.deepEqual(s.idt, { base: 0n, limit: 0 });
  assert.equal(s.cr0 & CR0.PE, CR0.PE);
  assert.equal(s.cr0 & (CR0.PG | CR0.CD | CR0.NW), 0n, "paging and cache-disable off");
  assert.equal(s.cr0 & CR0.ET, CR0.ET);
  assert.equal(s.cr4, 0n);
  assert.equal(s.efer, 0n);
  assert.equal(s.apicBase, 0xfee00900n, "other sregs kept");
  assert.deepEqual(s.tr, initialSregs().tr);
});

Deno.test("64-bit entry: the code segment has L = 1, D = 0; data stays flat", () => {
  const { mem } = memory();
  const entry = longModeEntry(mem, { ...zeroRegs(), rip: 0x1000000n, rsi: 0x7000n });
  assert.equal(entry.mode, "long64");
  const code = decodeDescriptor(mem.readU64(FIRMWARE.gdt + BOOT_CS));
  const data = decodeDescriptor(mem.readU64(FIRMWARE.gdt + BOOT_DS));
  assert.deepEqual(code, { ...FLAT_CODE32, l: 1, db: 0 });
  assert.deepEqual(data, FLAT_DATA);
  const s = entry.sregs(initialSregs());
  assertSegmentMatches(s.cs, code, BOOT_CS);
  for (const name of ["ds", "es", "fs", "gs", "ss"] as const) {
    assertSegmentMatches(s[name], data, BOOT_DS);
  }
  assert.equal(s.cr0 & (CR0.PE | CR0.PG), CR0.PE | CR0.PG);
  assert.equal(s.cr0 & (CR0.CD | CR0.NW), 0n);
  assert.equal(s.cr3, BigInt(FIRMWARE.pageTables));
  assert.equal(s.cr4 & CR4.PAE, CR4.PAE);
  assert.equal(s.efer & (EFER.LME | EFER.LMA), EFER.LME | EFER.LMA);
  assert.equal(entry.regs.rsi, 0x7000n);
});

/** Walks PML4 -> PDPT -> PD (2 MiB pages) from `cr3`, as the MMU does (Intel SDM Vol. 3A, 4.5). */
function translate(mem: GuestMemory, cr3: number, va: number): number | undefined {
  const ADDR = 0x000ffffffffff000n;
  const v = BigInt(va);
  const pml4e = mem.readU64(cr3 + Number((v >> 39n) & 511n) * 8);
  if (!(pml4e & 1n)) return undefined;
  assert.equal(pml4e & 2n, 2n, "PML4E writable");
  const pdpte = mem.readU64(Number(pml4e & ADDR) + Number((v >> 30n) & 511n) * 8);
  if (!(pdpte & 1n)) return undefined;
  assert.equal(pdpte & 0x80n, 0n, "no 1 GiB pages");
  assert.equal(pdpte & 2n, 2n, "PDPTE writable");
  const pde = mem.readU64(Number(pdpte & ADDR) + Number((v >> 21n) & 511n) * 8);
  if (!(pde & 1n)) return undefined;
  assert.equal(pde & 0x80n, 0x80n, "a 2 MiB page (PS)");
  assert.equal(pde & 2n, 2n, "PDE writable");
  return Number((pde & 0x000fffffffe00000n) | (v & 0x1fffffn));
}

Deno.test("the identity page tables map the first 4 GiB to themselves with 2 MiB pages", () => {
  const { span, mem } = memory();
  mem.fill(FIRMWARE.pageTables, FIRMWARE.pageTablesEnd - FIRMWARE.pageTables, 0xff); // stale junk
  const cr3 = writeIdentityPageTables(mem);
  assert.equal(cr3, FIRMWARE.pageTables);
  for (let k = 0; k < 2048; k++) {
    const va = k * 0x200000;
    assert.equal(translate(mem, cr3, va), va, `2 MiB page ${k}`);
  }
  for (
    const va of [
      0,
      0x1234,
      0x7c00,
      0x100000,
      0x1fffff,
      0xfee00000,
      0xfee000f0,
      0xfec00000,
      0xffffffff,
    ]
  ) {
    assert.equal(translate(mem, cr3, va), va, `0x${va.toString(16)}`);
  }
  assert.equal(translate(mem, cr3, 0x100000000), undefined, "nothing at or above 4 GiB");
  assert.equal(translate(mem, cr3, 0x8000000000), undefined, "second PML4 entry empty");
  // Everything written stays inside the page-table area.
  assert.ok(
    span.subarray(FIRMWARE.pageTablesEnd, FIRMWARE.pageTablesEnd + 0x1000).every((b) => b === 0),
  );
  assert.ok(span.subarray(FIRMWARE.gdt, FIRMWARE.pageTables).every((b) => b === 0));
});

Deno.test("real-mode entry splits the address into CS:IP", () => {
  const e = realModeEntry(0x7c00, 0x7000);
  assert.equal(e.mode, "real16");
  assert.equal(e.regs.rip, 0n);
  assert.equal(e.regs.rsp, 0x7000n);
  const s = e.sregs(initialSregs());
  assert.equal(s.cs.selector, 0x7c0);
  assert.equal(s.cs.base, 0x7c00n);
  assert.equal(s.cs.limit, 0xffff);
  assert.equal(s.cs.type, 0xb);
  assert.equal(s.cs.db, 0, "16-bit");
  assert.equal(s.cs.g, 0);
  for (const name of ["ds", "es", "fs", "gs"] as const) {
    assert.equal(s[name].selector, 0x7c0);
    assert.equal(s[name].base, 0x7c00n);
    assert.equal(s[name].type, 0x3);
  }
  assert.equal(s.ss.selector, 0);
  assert.equal(s.ss.base, 0n);
  assert.equal(s.cr0, initialSregs().cr0, "still real mode: CR0 untouched");

  const odd = realModeEntry(0x12345, 0x9000);
  assert.equal(odd.regs.rip, 5n);
  assert.equal(odd.sregs(initialSregs()).cs.selector, 0x1234);
  assert.equal(odd.sregs(initialSregs()).cs.base, 0x12340n);
  const top = realModeEntry(0xfffff, 0);
  assert.equal(top.regs.rip, 0xfn);
  assert.equal(top.sregs(initialSregs()).cs.selector, 0xffff);
  // CS base + IP is the entry point.
  for (const entry of [0, 0x500, 0x7c00, 0x12345, 0x9fffe, 0xfffff]) {
    const r = realModeEntry(entry, 0);
    assert.equal(r.sregs(initialSregs()).cs.base + r.regs.rip, BigInt(entry));
  }
});

Deno.test("a real-mode entry at or above 1 MiB throws", () => {
  assert.throws(() => realModeEntry(0x100000, 0), /real-mode entry point 0x100000 is above 1 MiB/);
  assert.throws(() => realModeEntry(0x1000000, 0), /0x1000000 is above 1 MiB/);
});

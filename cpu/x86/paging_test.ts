import assert from "node:assert/strict";
import {
  inspect,
  type PageAccess,
  type PagingRegs,
  PF_I,
  PF_P,
  PF_PK,
  PF_RSVD,
  PF_U,
  PF_W,
  translate,
  walk,
  type WalkOk,
} from "./paging.ts";
import { PageTableBuilder, TestMemory } from "./testing.ts";

const CR0_PE_PG = 0x80000001n;
const CR0_WP = 0x10000n;
const CR4_PSE = 0x10n;
const CR4_PAE = 0x20n;
const CR4_LA57 = 0x1000n;
const CR4_SMEP = 1n << 20n;
const CR4_SMAP = 1n << 21n;
const CR4_PKE = 1n << 22n;
const EFER_LMA_LME = 0x500n;
const EFER_NXE = 0x800n;
const AC = 1n << 18n;

function long4(
  mem: TestMemory,
  extra: Partial<PagingRegs> = {},
): { pt: PageTableBuilder; regs: PagingRegs } {
  const pt = new PageTableBuilder(mem, "4level", 0x10000);
  return {
    pt,
    regs: {
      cr0: CR0_PE_PG | CR0_WP,
      cr3: pt.cr3,
      cr4: CR4_PAE,
      efer: EFER_LMA_LME | EFER_NXE,
      ...extra,
    },
  };
}

function ok(r: ReturnType<typeof walk>, what = ""): WalkOk {
  assert.ok(r.ok, `${what}: walk faulted with error code ${r.ok ? "" : r.errorCode.toString(16)}`);
  return r;
}

function errorCode(r: ReturnType<typeof walk>): number {
  assert.ok(!r.ok, "walk succeeded but a fault was expected");
  return r.errorCode;
}

Deno.test("paging off: linear is physical, 32 bits", () => {
  const mem = new TestMemory(0x1000);
  const r = ok(walk({ cr0: 1n, cr3: 0n, cr4: 0n, efer: 0n }, mem, 0x1_2345_6789n, { write: true }));
  assert.equal(r.gpa, 0x2345_6789);
  assert.deepEqual(r.levels, []);
});

Deno.test("32-bit paging: 4 KiB page, A and D set with 4-byte compare-exchanges", () => {
  const mem = new TestMemory(0x100000);
  const pt = new PageTableBuilder(mem, "32bit", 0x10000);
  pt.map(0xc0001000n, 0x5000);
  const regs = { cr0: CR0_PE_PG, cr3: pt.cr3, cr4: 0n, efer: 0n };
  const r = ok(walk(regs, mem, 0xc0001abcn, {}));
  assert.equal(r.gpa, 0x5abc);
  assert.equal(r.pageSize, 4096);
  assert.deepEqual(r.levels.map((l) => l.name), ["pde", "pte"]);
  assert.equal(pt.entry(0xc0001000n, 1) & 0x60n, 0x20n, "read: A set, D clear");
  assert.equal(pt.entry(0xc0001000n, 2) & 0x60n, 0x20n);
  mem.cmpxchgCount = 0;
  ok(walk(regs, mem, 0xc0001abcn, { write: true }));
  assert.equal(pt.entry(0xc0001000n, 1) & 0x60n, 0x60n, "write: D set in the PTE");
  assert.equal(pt.entry(0xc0001000n, 2) & 0x40n, 0n, "no D in a PDE that points to a table");
  assert.equal(mem.cmpxchgCount, 1);
  mem.cmpxchgCount = 0;
  ok(walk(regs, mem, 0xc0001abcn, { write: true }));
  assert.equal(mem.cmpxchgCount, 0, "nothing to update: no compare-exchange");
});

Deno.test("32-bit paging: 4 MiB pages need CR4.PSE; PSE-36 high bits; bit 21 reserved", () => {
  const mem = new TestMemory(0x100000);
  const pt = new PageTableBuilder(mem, "32bit", 0x10000);
  pt.map(0x80000000n, 0x1_0040_0000, { size: 4 << 20 });
  const regs = { cr0: CR0_PE_PG, cr3: pt.cr3, cr4: CR4_PSE, efer: 0n };
  const r = ok(walk(regs, mem, 0x80123456n, { write: true }, { maxPhyAddr: 40 }));
  assert.equal(r.gpa, 0x1_0052_3456);
  assert.equal(r.pageSize, 4 << 20);
  assert.equal(r.levels.length, 1);
  assert.equal(r.levels[0].leaf, true);
  assert.equal(pt.entry(0x80000000n, 2) & 0x60n, 0x60n);
  // PSE-36 bits above MAXPHYADDR are reserved.
  assert.equal(errorCode(walk(regs, mem, 0x80000000n, {}, { maxPhyAddr: 32 })), PF_P | PF_RSVD);
  pt.setEntry(0x80000000n, 2, pt.entry(0x80000000n, 2) | (1n << 21n));
  assert.equal(errorCode(walk(regs, mem, 0x80000000n, {})), PF_P | PF_RSVD);
  // Without CR4.PSE the PS bit is ignored: the PDE points to a page table (here: empty).
  pt.setEntry(0x80000000n, 2, 0x20083n);
  mem.set(0x20000, 4, 0x7003n);
  const r2 = ok(walk({ ...regs, cr4: 0n }, mem, 0x80000123n, {}));
  assert.equal(r2.gpa, 0x7123);
});

Deno.test("32-bit paging: not present, R/W with CR0.WP, U/S; no I/D bit without SMEP", () => {
  const mem = new TestMemory(0x100000);
  const pt = new PageTableBuilder(mem, "32bit", 0x10000);
  pt.map(0x1000n, 0x3000, { writable: false });
  const regs = { cr0: CR0_PE_PG, cr3: pt.cr3, cr4: 0n, efer: 0n };
  assert.equal(errorCode(walk(regs, mem, 0x400000n, {})), 0, "no PDE");
  assert.equal(errorCode(walk(regs, mem, 0x2000n, { write: true, user: true })), PF_W | PF_U);
  assert.equal(
    errorCode(walk(regs, mem, 0x2000n, { fetch: true })),
    0,
    "fetch: I/D only with SMEP or NXE",
  );
  ok(walk(regs, mem, 0x1000n, { write: true }));
  assert.equal(
    errorCode(walk({ ...regs, cr0: regs.cr0 | CR0_WP }, mem, 0x1000n, { write: true })),
    PF_P | PF_W,
  );
  assert.equal(errorCode(walk(regs, mem, 0x1000n, { user: true })), PF_P | PF_U);
  assert.equal(errorCode(walk({ ...regs, cr4: CR4_SMEP }, mem, 0x2000n, { fetch: true })), PF_I);
});

Deno.test("PAE paging: PDPTEs, 2 MiB pages, NX, reserved bits", () => {
  const mem = new TestMemory(0x100000);
  const pt = new PageTableBuilder(mem, "pae", 0x10000);
  pt.map(0xc0200000n, 0x400000, { size: 2 << 20 });
  pt.map(0x40001000n, 0x6000, { noExecute: true });
  const regs = { cr0: CR0_PE_PG | CR0_WP, cr3: pt.cr3, cr4: CR4_PAE, efer: EFER_NXE };
  const r = ok(walk(regs, mem, 0xc0212345n, {}));
  assert.equal(r.gpa, 0x412345);
  assert.equal(r.pageSize, 2 << 20);
  assert.deepEqual(r.levels.map((l) => l.name), ["pdpte", "pde"]);
  assert.equal(mem.get(Number(pt.cr3) + 3 * 8, 8) & 0x20n, 0n, "PAE PDPTEs have no A flag");
  // NX: a fetch faults, with I/D.
  assert.equal(errorCode(walk(regs, mem, 0x40001000n, { fetch: true })), PF_P | PF_I);
  ok(walk(regs, mem, 0x40001000n, {}));
  // Without NXE bit 63 is reserved.
  assert.equal(errorCode(walk({ ...regs, efer: 0n }, mem, 0x40001000n, {})), PF_P | PF_RSVD);
  // A PDPTE that is not present, and one with a reserved bit (bit 1).
  assert.equal(errorCode(walk(regs, mem, 0x00000000n, { write: true })), PF_W);
  mem.set(Number(pt.cr3), 8, 0x20003n);
  assert.equal(errorCode(walk(regs, mem, 0x00000000n, {})), PF_P | PF_RSVD);
  // 2 MiB PDE with bit 13 set: reserved.
  pt.setEntry(0xc0200000n, 2, pt.entry(0xc0200000n, 2) | 0x2000n);
  assert.equal(errorCode(walk(regs, mem, 0xc0200000n, {})), PF_P | PF_RSVD);
  // Bits 62:M are reserved in PAE entries (unlike 4-level paging).
  pt.setEntry(0x40001000n, 1, pt.entry(0x40001000n, 1) | (1n << 55n));
  assert.equal(errorCode(walk(regs, mem, 0x40001000n, {})), PF_P | PF_RSVD);
});

Deno.test("PAE paging: the PDPTE registers take precedence over memory", () => {
  const mem = new TestMemory(0x100000);
  const pt = new PageTableBuilder(mem, "pae", 0x10000);
  pt.map(0x1000n, 0x7000);
  const pdpte0 = mem.get(Number(pt.cr3), 8);
  mem.set(Number(pt.cr3), 8, 0n); // changed in memory after the CR3 load
  const regs = {
    cr0: CR0_PE_PG,
    cr3: pt.cr3,
    cr4: CR4_PAE,
    efer: 0n,
    pdptes: [pdpte0, 0n, 0n, 0n],
  };
  assert.equal(ok(walk(regs, mem, 0x1010n, {})).gpa, 0x7010);
});

Deno.test("4-level paging: 4 KiB, 2 MiB and 1 GiB pages", () => {
  const mem = new TestMemory(0x200000);
  const { pt, regs } = long4(mem);
  pt.map(0xffff800000001000n, 0x9000);
  pt.map(0xffff800000200000n, 0x1_0000_0000 + 0x200000, { size: 2 << 20 });
  pt.map(0x7f0040000000n, 0x2_4000_0000, { size: 1 << 30 });
  let r = ok(walk(regs, mem, 0xffff800000001fffn, {}));
  assert.equal(r.gpa, 0x9fff);
  assert.deepEqual(r.levels.map((l) => l.name), ["pml4e", "pdpte", "pde", "pte"]);
  r = ok(walk(regs, mem, 0xffff8000003fedcbn, {}));
  assert.equal(r.gpa, 0x1_003f_edcb);
  assert.equal(r.pageSize, 2 << 20);
  r = ok(walk(regs, mem, 0x7f007fffffffn, { write: true }));
  assert.equal(r.gpa, 0x2_7fff_ffff);
  assert.equal(r.pageSize, 1 << 30);
  assert.equal(r.levels[1].leaf, true);
  assert.equal(pt.entry(0x7f0040000000n, 3) & 0x60n, 0x60n);
});

Deno.test("4-level paging: reserved bits (above MAXPHYADDR, PML4E.PS, large-page low bits)", () => {
  const mem = new TestMemory(0x200000);
  const { pt, regs } = long4(mem);
  pt.map(0x1000n, 0x9000);
  pt.map(0x40000000n, 0x40000000, { size: 1 << 30 });
  ok(walk(regs, mem, 0x1000n, {}, { maxPhyAddr: 46 }));
  pt.setEntry(0x1000n, 1, pt.entry(0x1000n, 1) | (1n << 46n));
  assert.equal(
    errorCode(walk(regs, mem, 0x1000n, { user: true }, { maxPhyAddr: 46 })),
    PF_P | PF_RSVD | PF_U,
  );
  ok(walk(regs, mem, 0x1000n, {}, { maxPhyAddr: 47 }));
  // Bits 58:52 are ignored and 62:59 are the protection key in 4-level paging.
  pt.setEntry(0x1000n, 1, pt.entry(0x1000n, 1) & ~(1n << 46n) | (0x7fn << 52n));
  ok(walk(regs, mem, 0x1000n, {}));
  pt.setEntry(0x40000000n, 3, pt.entry(0x40000000n, 3) | 0x2000n);
  assert.equal(errorCode(walk(regs, mem, 0x40000000n, {})), PF_P | PF_RSVD);
  const pml4e = mem.get(Number(pt.cr3), 8);
  mem.set(Number(pt.cr3), 8, pml4e | 0x80n);
  const f = walk(regs, mem, 0x1000n, { fetch: true });
  assert.equal(errorCode(f), PF_P | PF_RSVD | PF_I);
  assert.equal(f.levels.length, 1);
  assert.equal(f.levels[0].reserved, true);
});

Deno.test("4-level paging: U/S and R/W combine over all levels; CR0.WP for supervisor writes", () => {
  const mem = new TestMemory(0x200000);
  const { pt, regs } = long4(mem);
  pt.map(0x1000n, 0x9000, { user: true });
  const user: PageAccess = { user: true, write: true };
  ok(walk(regs, mem, 0x1000n, user));
  // Clear R/W in the PDPTE: the page is read-only for everyone with WP, for user always.
  const pdpte = pt.entry(0x1000n, 3);
  pt.setEntry(0x1000n, 3, pdpte & ~2n);
  assert.equal(errorCode(walk(regs, mem, 0x1000n, user)), PF_P | PF_W | PF_U);
  assert.equal(
    errorCode(walk(regs, mem, 0x1000n, { write: true, implicitSupervisor: true })),
    PF_P | PF_W,
  );
  ok(walk({ ...regs, cr0: CR0_PE_PG }, mem, 0x1000n, { write: true }));
  ok(walk(regs, mem, 0x1000n, { user: true }));
  // Clear U/S in the PML4E: a supervisor page.
  pt.setEntry(0x1000n, 3, pdpte);
  mem.set(Number(pt.cr3), 8, mem.get(Number(pt.cr3), 8) & ~4n);
  assert.equal(errorCode(walk(regs, mem, 0x1000n, { user: true })), PF_P | PF_U);
  assert.equal(
    errorCode(walk(regs, mem, 0x1000n, { user: true, fetch: true })),
    PF_P | PF_U | PF_I,
  );
});

Deno.test("4-level paging: NX, SMEP, SMAP with RFLAGS.AC and implicit accesses", () => {
  const mem = new TestMemory(0x200000);
  const { pt, regs } = long4(mem);
  pt.map(0x1000n, 0x9000, { user: true });
  pt.map(0x2000n, 0xa000, { noExecute: true });
  assert.equal(errorCode(walk(regs, mem, 0x2000n, { fetch: true })), PF_P | PF_I);
  assert.equal(
    errorCode(walk(regs, mem, 0x2000n, { fetch: true, user: true })),
    PF_P | PF_I | PF_U,
  );
  // SMEP: supervisor fetch from a user page.
  ok(walk(regs, mem, 0x1000n, { fetch: true }));
  const smep = { ...regs, cr4: regs.cr4 | CR4_SMEP };
  assert.equal(errorCode(walk(smep, mem, 0x1000n, { fetch: true })), PF_P | PF_I);
  ok(walk(smep, mem, 0x1000n, { fetch: true, user: true }));
  // SMAP: supervisor data access to a user page, unless AC (explicit accesses only).
  const smap = { ...regs, cr4: regs.cr4 | CR4_SMAP };
  assert.equal(errorCode(walk(smap, mem, 0x1000n, {})), PF_P);
  assert.equal(errorCode(walk(smap, mem, 0x1000n, { write: true })), PF_P | PF_W);
  ok(walk({ ...smap, rflags: AC }, mem, 0x1000n, { write: true }));
  assert.equal(
    errorCode(walk({ ...smap, rflags: AC }, mem, 0x1000n, { implicitSupervisor: true })),
    PF_P,
  );
  assert.equal(
    errorCode(
      walk({ ...smap, rflags: AC }, mem, 0x1000n, { implicitSupervisor: true, user: true }),
    ),
    PF_P,
    "an implicit supervisor access at CPL 3 is not a user access",
  );
  ok(walk(smap, mem, 0x1000n, { user: true, write: true }));
  ok(walk(smap, mem, 0x1000n, { fetch: true }), "SMAP does not restrict fetches");
  // AC with a read-only user page and WP: still a write-protection fault.
  pt.map(0x3000n, 0xb000, { user: true, writable: false });
  assert.equal(
    errorCode(walk({ ...smap, rflags: AC }, mem, 0x3000n, { write: true })),
    PF_P | PF_W,
  );
});

Deno.test("4-level paging: protection keys", () => {
  const mem = new TestMemory(0x200000);
  const { pt, regs } = long4(mem, {});
  pt.map(0x1000n, 0x9000, { user: true, pkey: 5 });
  pt.map(0x2000n, 0xa000, { user: false, pkey: 5 });
  const ad5 = 1 << 10, wd5 = 1 << 11;
  const pke = { ...regs, cr4: regs.cr4 | CR4_PKE };
  const r = ok(walk(pke, mem, 0x1000n, { user: true }));
  assert.equal(r.protectionKey, 5);
  assert.equal(
    errorCode(walk({ ...pke, pkru: ad5 }, mem, 0x1000n, { user: true })),
    PF_P | PF_U | PF_PK,
  );
  ok(
    walk({ ...pke, pkru: ad5 }, mem, 0x1000n, { user: true, fetch: true }),
    "keys do not apply to fetches",
  );
  ok(walk({ ...pke, pkru: ad5 }, mem, 0x2000n, {}), "nor to supervisor pages");
  ok(walk({ ...pke, pkru: wd5 }, mem, 0x1000n, { user: true }));
  assert.equal(
    errorCode(walk({ ...pke, pkru: wd5 }, mem, 0x1000n, { user: true, write: true })),
    PF_P | PF_W | PF_U | PF_PK,
  );
  // Supervisor writes to a user page: WD applies only with CR0.WP.
  assert.equal(
    errorCode(walk({ ...pke, pkru: wd5 }, mem, 0x1000n, { write: true })),
    PF_P | PF_W | PF_PK,
  );
  ok(walk({ ...pke, pkru: wd5, cr0: CR0_PE_PG }, mem, 0x1000n, { write: true }));
  ok(walk({ ...regs, pkru: ad5 }, mem, 0x1000n, { user: true }), "CR4.PKE off");
});

Deno.test("5-level paging: LA57 uses bits 56:48", () => {
  const mem = new TestMemory(0x200000);
  const pt = new PageTableBuilder(mem, "5level", 0x10000);
  pt.map(0xff11000000003000n, 0xc000);
  const regs = { cr0: CR0_PE_PG, cr3: pt.cr3, cr4: CR4_PAE | CR4_LA57, efer: EFER_LMA_LME };
  const r = ok(walk(regs, mem, 0xff11000000003456n, {}));
  assert.equal(r.gpa, 0xc456);
  assert.deepEqual(r.levels.map((l) => l.name), ["pml5e", "pml4e", "pdpte", "pde", "pte"]);
  assert.equal(errorCode(walk(regs, mem, 0xff12000000003456n, {})), 0);
});

Deno.test("accessed/dirty: only after a successful walk; D only in the leaf for writes", () => {
  const mem = new TestMemory(0x200000);
  const { pt, regs } = long4(mem);
  pt.map(0x1000n, 0x9000, { writable: false });
  assert.equal(errorCode(walk(regs, mem, 0x1000n, { write: true })), PF_P | PF_W);
  assert.equal(pt.entry(0x1000n, 1) & 0x60n, 0n, "a faulting walk sets nothing");
  assert.equal(mem.get(Number(pt.cr3), 8) & 0x20n, 0n);
  ok(walk(regs, mem, 0x1000n, {}, { setAccessedDirty: false }));
  assert.equal(pt.entry(0x1000n, 1) & 0x60n, 0n);
  ok(walk(regs, mem, 0x1000n, {}));
  for (const level of [4, 3, 2, 1]) assert.equal(pt.entry(0x1000n, level) & 0x60n, 0x20n);
});

Deno.test("accessed/dirty: a racing update of an entry makes the walk start again", () => {
  const mem = new TestMemory(0x200000);
  const { pt, regs } = long4(mem);
  pt.map(0x1000n, 0x9000);
  const pte = pt.entryAddress(0x1000n, 1);
  let raced = false;
  mem.beforeCmpxchg = (gpa) => {
    if (gpa === pte && !raced) {
      raced = true;
      // Another vCPU remaps the page to 0xa000 between our read and our update.
      mem.set(pte, 8, 0xa003n);
    }
  };
  const r = ok(walk(regs, mem, 0x1000n, { write: true }));
  assert.ok(raced);
  assert.equal(r.gpa, 0xa000, "the second walk sees the new entry");
  assert.equal(mem.get(pte, 8), 0xa063n);
});

Deno.test("inspect: no faults for permissions, no A/D, per-level permissions", () => {
  const mem = new TestMemory(0x200000);
  const { pt, regs } = long4(mem, { cr4: CR4_PAE | CR4_SMAP | CR4_SMEP });
  pt.map(0x1000n, 0x9000, { user: true, writable: false, noExecute: true });
  const r = ok(inspect(regs, mem, 0x1234n));
  assert.equal(r.gpa, 0x9234);
  assert.equal(r.writable, false);
  assert.equal(r.user, true);
  assert.equal(r.executable, false);
  assert.deepEqual(r.levels.map((l) => [l.name, l.writable, l.user, l.noExecute, l.leaf]), [
    ["pml4e", true, true, false, false],
    ["pdpte", true, true, false, false],
    ["pde", true, true, false, false],
    ["pte", false, true, true, true],
  ]);
  assert.equal(r.levels[3].value, 0x8000000000009005n);
  assert.equal(pt.entry(0x1000n, 1) & 0x60n, 0n, "no A/D");
  const miss = inspect(regs, mem, 0x200000n);
  assert.equal(miss.ok, false);
  assert.deepEqual(miss.levels.map((l) => l.present), [true, true, false]);
});

Deno.test("translate: the allocation-free form gives the same answers", () => {
  const mem = new TestMemory(0x200000);
  const { pt, regs } = long4(mem);
  pt.map(0x1000n, 0x9000);
  const out = { gpa: 0, pageSize: 0 };
  assert.equal(translate(regs, mem, 0x1008n, { write: true }, out), -1);
  assert.deepEqual(out, { gpa: 0x9008, pageSize: 4096 });
  assert.equal(translate(regs, mem, 0x2008n, { user: true }, out), PF_U);
});

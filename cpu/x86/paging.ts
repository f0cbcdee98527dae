/**
 * The x86 page walker: linear to guest-physical address translation as the
 * processor does it (Intel SDM Vol. 3A, chapter 4; AMD APM Vol. 2, 5.3-5.6).
 *
 * Covers paging off, 32-bit paging (4 KiB and, with CR4.PSE, 4 MiB pages),
 * PAE paging (PDPTEs, 2 MiB pages), 4-level and 5-level paging (CR4.LA57,
 * 1 GiB / 2 MiB / 4 KiB pages); reserved-bit checks, present, R/W with
 * CR0.WP, U/S, NX (EFER.NXE), SMEP, SMAP (with RFLAGS.AC and implicit
 * supervisor accesses) and protection keys (CR4.PKE with PKRU); the #PF
 * error code (SDM 4.7); and the accessed and dirty flags (SDM 4.8), set
 * through {@linkcode PhysicalMemory.cmpxchg} so that vCPUs running natively
 * and updating the same entries lose nothing.
 *
 * Two ways to use it:
 * - {@linkcode walk} as the processor does (permission checks, A/D
 *   updates): the executor's path.
 * - {@linkcode inspect}: no permission faults and no A/D writes, with the
 *   entry of every level and the effective permissions: for debuggers and
 *   `ctl gla2gpa`.
 *
 * @module
 */

import type { PhysicalMemory } from "./types.ts";

/** The registers paging depends on (a subset of {@linkcode CpuState}). */
export interface PagingRegs {
  /** CR0 (PG, WP). */
  readonly cr0: bigint;
  /** CR3 (the top-level table). */
  readonly cr3: bigint;
  /** CR4 (PSE, PAE, LA57, SMEP, SMAP, PKE). */
  readonly cr4: bigint;
  /** IA32_EFER (LMA, NXE). */
  readonly efer: bigint;
  /** RFLAGS, for SMAP's AC flag (absent: AC = 0). */
  readonly rflags?: bigint;
  /** The PKRU register, for protection keys when CR4.PKE = 1 (absent: 0, all access allowed). */
  readonly pkru?: number;
  /**
   * The four PDPTE registers of PAE paging as the CPU loaded them at the last
   * CR3 write (SDM 4.4.1). Absent: the walker reads them from memory at CR3,
   * which differs only if the guest changed its PDPT without reloading CR3.
   */
  readonly pdptes?: readonly bigint[];
}

/** What kind of access is being translated (SDM 4.6). */
export interface PageAccess {
  /** A data write (else a read). */
  readonly write?: boolean;
  /** CPL = 3 at the time of the access. */
  readonly user?: boolean;
  /** An instruction fetch. */
  readonly fetch?: boolean;
  /**
   * An implicit supervisor-mode access (GDT/LDT/IDT/TSS reads, ...): a
   * supervisor access even at CPL 3, and SMAP applies regardless of RFLAGS.AC.
   */
  readonly implicitSupervisor?: boolean;
}

/** How to walk. */
export interface WalkOptions {
  /** Set the accessed and dirty flags as the processor does (default true). */
  readonly setAccessedDirty?: boolean;
  /**
   * Check access rights (default true). When false, only a non-present
   * entry or a reserved bit fails the walk: the no-fault mode of {@linkcode inspect}.
   */
  readonly checkPermissions?: boolean;
  /** MAXPHYADDR, CPUID.80000008H:EAX[7:0] (default 52): bits above it in entries are reserved. */
  readonly maxPhyAddr?: number;
}

/** The name of a paging-structure entry. */
export type LevelName = "pml5e" | "pml4e" | "pdpte" | "pde" | "pte";

/** One paging-structure entry the walk read. */
export interface PageLevel {
  /** Which paging structure the entry is in. */
  readonly name: LevelName;
  /** 5 (PML5E) down to 1 (PTE). */
  readonly level: number;
  /** Guest-physical address of the entry. */
  readonly address: number;
  /** The entry as read (before any A/D update); 4-byte entries of 32-bit paging are zero-extended. */
  readonly value: bigint;
  /** P (bit 0). */
  readonly present: boolean;
  /** R/W (bit 1); true for PAE PDPTEs, which have no R/W bit. */
  readonly writable: boolean;
  /** U/S (bit 2); true for PAE PDPTEs, which have no U/S bit. */
  readonly user: boolean;
  /** XD (bit 63) with EFER.NXE = 1 in PAE/4-level/5-level paging. */
  readonly noExecute: boolean;
  /** A reserved bit is set (the walk faults here with RSVD). */
  readonly reserved: boolean;
  /** This entry maps the page (PS set, or a PTE). */
  readonly leaf: boolean;
  /** For a leaf: the size of the page it maps. */
  readonly pageSize?: number;
}

/** A translation that succeeded. */
export interface WalkOk {
  /** Success. */
  readonly ok: true;
  /** The guest-physical address. */
  readonly gpa: number;
  /** Size of the page (4096, 2 MiB, 4 MiB or 1 GiB; 4096 with paging off). */
  readonly pageSize: number;
  /** The entries read, top level first (empty with paging off). */
  readonly levels: PageLevel[];
  /** Effective permissions of the page: writable (R/W in all levels). */
  readonly writable: boolean;
  /** Effective permissions: user-accessible (U/S in all levels). */
  readonly user: boolean;
  /** Effective permissions: executable (no XD in any level). */
  readonly executable: boolean;
  /** The protection key of the page (4-level and 5-level paging; 0 otherwise). */
  readonly protectionKey: number;
}

/** A translation that faulted. */
export interface WalkFault {
  /** Failure. */
  readonly ok: false;
  /** The #PF error code (SDM Vol. 3A 4.7): see the PF_* constants. */
  readonly errorCode: number;
  /** The entries read up to and including the one that failed. */
  readonly levels: PageLevel[];
}

/** The result of {@linkcode walk}. */
export type WalkResult = WalkOk | WalkFault;

/** #PF error code: P, the fault was a protection violation (0: a not-present page). */
export const PF_P = 1 << 0;
/** #PF error code: W/R, the access was a write. */
export const PF_W = 1 << 1;
/** #PF error code: U/S, the access was a user-mode access. */
export const PF_U = 1 << 2;
/** #PF error code: RSVD, a reserved bit was set in a paging-structure entry. */
export const PF_RSVD = 1 << 3;
/** #PF error code: I/D, an instruction fetch (only with SMEP, or NXE in PAE/4-level paging). */
export const PF_I = 1 << 4;
/** #PF error code: PK, a protection-key violation. */
export const PF_PK = 1 << 5;

// Control-register bits (SDM Vol. 3A 2.5, 2.2.1).
const CR0_WP = 1n << 16n;
const CR0_PG = 1n << 31n;
const CR4_PSE = 1n << 4n;
const CR4_PAE = 1n << 5n;
const CR4_LA57 = 1n << 12n;
const CR4_SMEP = 1n << 20n;
const CR4_SMAP = 1n << 21n;
const CR4_PKE = 1n << 22n;
const EFER_LMA = 1n << 10n;
const EFER_NXE = 1n << 11n;
const RFLAGS_AC = 1n << 18n;

const TWO32 = 4294967296;
const LEVEL_NAMES: readonly LevelName[] = ["pte", "pte", "pde", "pdpte", "pml4e", "pml5e"];

/**
 * Where {@linkcode translate} puts a successful translation (reused by the
 * caller to avoid an allocation per access).
 */
export interface TranslateOut {
  /** The guest-physical address. */
  gpa: number;
  /** The size of the page it is in. */
  pageSize: number;
}

// Scratch for the entries of the current walk (up to 5 levels), used to set
// A/D flags after the walk succeeded.
const entAddr = new Float64Array(5);
const entLo = new Uint32Array(5);
const entHi = new Uint32Array(5);
const entWide = new Uint8Array(5); // 1: 8-byte entry, 0: 4-byte entry
const entAD = new Uint8Array(5); // 1: the entry has an A flag the walk sets
const scratch = new Uint8Array(8);
const scratch4 = scratch.subarray(0, 4);
const scratchView = new DataView(scratch.buffer);

/** The result of the core walk: -1 for success, else a #PF error code. */
const OK = -1;

/**
 * Translates `linear` as the processor does, without allocating: fills `out`
 * and returns -1 on success, or returns the #PF error code. This is the
 * executor's fast path; {@linkcode walk} is the same walk with a result object.
 */
export function translate(
  regs: PagingRegs,
  mem: PhysicalMemory,
  linear: bigint,
  access: PageAccess,
  out: TranslateOut,
  options?: WalkOptions,
): number {
  return walkCore(regs, mem, linear, access, options, out, null, null);
}

/**
 * Walks the paging structures for `linear` (SDM Vol. 3A, chapter 4): checks
 * access rights for `access` and sets accessed/dirty flags unless `options`
 * say otherwise. Returns the guest-physical address and every entry read, or
 * the #PF error code.
 */
export function walk(
  regs: PagingRegs,
  mem: PhysicalMemory,
  linear: bigint,
  access: PageAccess,
  options?: WalkOptions,
): WalkResult {
  const out: TranslateOut = { gpa: 0, pageSize: 0 };
  const levels: PageLevel[] = [];
  const perms = { w: true, u: true, x: true, pk: 0 };
  const code = walkCore(regs, mem, linear, access, options, out, levels, perms);
  if (code !== OK) return { ok: false, errorCode: code, levels };
  return {
    ok: true,
    gpa: out.gpa,
    pageSize: out.pageSize,
    levels,
    writable: perms.w,
    user: perms.u,
    executable: perms.x,
    protectionKey: perms.pk,
  };
}

/**
 * The no-fault walk for debuggers and `ctl gla2gpa`: no permission checks
 * and no accessed/dirty updates; fails only on a non-present entry or a
 * reserved bit. Every level's entry and the page's effective permissions
 * are in the result.
 */
export function inspect(
  regs: PagingRegs,
  mem: PhysicalMemory,
  linear: bigint,
  options?: { readonly maxPhyAddr?: number },
): WalkResult {
  return walk(regs, mem, linear, {}, {
    setAccessedDirty: false,
    checkPermissions: false,
    maxPhyAddr: options?.maxPhyAddr,
  });
}

/** Reads an 8-byte entry at `addr` into entLo/entHi[slot]. */
function read8(mem: PhysicalMemory, addr: number, slot: number): void {
  mem.read(addr, scratch);
  entLo[slot] = scratchView.getUint32(0, true);
  entHi[slot] = scratchView.getUint32(4, true);
  entAddr[slot] = addr;
  entWide[slot] = 1;
}

/** Reads a 4-byte entry at `addr` into entLo[slot] (entHi = 0). */
function read4(mem: PhysicalMemory, addr: number, slot: number): void {
  mem.read(addr, scratch4);
  entLo[slot] = scratchView.getUint32(0, true);
  entHi[slot] = 0;
  entAddr[slot] = addr;
  entWide[slot] = 0;
}

function entryValue(slot: number): bigint {
  return (BigInt(entHi[slot]) << 32n) | BigInt(entLo[slot]);
}

interface Perms {
  w: boolean;
  u: boolean;
  x: boolean;
  pk: number;
}

function walkCore(
  regs: PagingRegs,
  mem: PhysicalMemory,
  linear: bigint,
  access: PageAccess,
  options: WalkOptions | undefined,
  out: TranslateOut,
  levels: PageLevel[] | null,
  perms: Perms | null,
): number {
  const cr0 = regs.cr0, cr4 = regs.cr4, efer = regs.efer;
  const linLo = Number(linear & 0xffffffffn);
  if ((cr0 & CR0_PG) === 0n) {
    // Paging off: linear addresses are 32 bits and map 1:1 (SDM 4.1.1).
    out.gpa = linLo;
    out.pageSize = 4096;
    return OK;
  }
  const setAD = options?.setAccessedDirty ?? true;
  const check = options?.checkPermissions ?? true;
  const maxPhy = options?.maxPhyAddr ?? 52;
  const write = access.write === true;
  const fetch = access.fetch === true;
  const implicit = access.implicitSupervisor === true;
  const userMode = access.user === true && !implicit;
  const pae = (cr4 & CR4_PAE) !== 0n;
  const lma = (efer & EFER_LMA) !== 0n;
  const nxe = pae && (efer & EFER_NXE) !== 0n;
  const smep = (cr4 & CR4_SMEP) !== 0n;

  // The error-code bits that describe the access (SDM 4.7).
  let accBits = (write ? PF_W : 0) | (userMode ? PF_U : 0);
  if (fetch && (smep || nxe)) accBits |= PF_I;
  // Reserved physical-address bits 51:M in the high half of an 8-byte entry.
  const addrRsvdHi = maxPhy >= 52 ? 0 : (0xfffff & ~((1 << (maxPhy - 32)) - 1)) >>> 0;
  const nxRsvdHi = nxe ? 0 : 0x80000000;

  for (let attempt = 0;; attempt++) {
    if (levels) levels.length = 0;
    let w = true, u = true, nx = false;
    let n = 0; // entries read
    let gpa: number;
    let pageSize: number;
    let leafSlot: number;
    let pkey = 0;

    if (!pae) {
      // 32-bit paging (SDM 4.3).
      const pdeAddr = Number(regs.cr3 & 0xfffff000n) + ((linLo >>> 22) << 2);
      read4(mem, pdeAddr, 0);
      entAD[0] = 1;
      n = 1;
      const pde = entLo[0];
      const big = (pde & 0x80) !== 0 && (cr4 & CR4_PSE) !== 0n;
      let rsvd = false;
      if ((pde & 1) && big) {
        // 4-MiB page: bit 21 and bits 20:(M-19) are reserved (PSE-36, SDM Table 4-4).
        const m = Math.min(maxPhy, 40);
        const rsvdMask = ((1 << 21) | (0x1fe000 & ~(((1 << (m - 32)) - 1) << 13))) >>> 0;
        rsvd = (pde & rsvdMask) !== 0;
      }
      if (levels) pushLevel(levels, 2, 0, pde & 1, rsvd, big, big ? 4 << 20 : 0, false);
      if (!(pde & 1)) return accBits;
      if (rsvd) return accBits | PF_P | PF_RSVD;
      w = (pde & 2) !== 0;
      u = (pde & 4) !== 0;
      if (big) {
        gpa = ((pde & 0xffc00000) >>> 0) + ((pde >>> 13) & 0xff) * TWO32 + (linLo & 0x3fffff);
        pageSize = 4 << 20;
        leafSlot = 0;
      } else {
        const pteAddr = ((pde & 0xfffff000) >>> 0) + (((linLo >>> 12) & 0x3ff) << 2);
        read4(mem, pteAddr, 1);
        entAD[1] = 1;
        n = 2;
        const pte = entLo[1];
        if (levels) pushLevel(levels, 1, 1, pte & 1, false, true, 4096, false);
        if (!(pte & 1)) return accBits;
        w &&= (pte & 2) !== 0;
        u &&= (pte & 4) !== 0;
        gpa = ((pte & 0xfffff000) >>> 0) + (linLo & 0xfff);
        pageSize = 4096;
        leafSlot = 1;
      }
    } else {
      // PAE (SDM 4.4), 4-level and 5-level paging (SDM 4.5).
      const linHi = Number((linear >> 32n) & 0xffffffffn);
      let level: number;
      let tableBase: number;
      let rsvdHi: number; // reserved bits of the high half for PDE/PTE in this mode
      if (!lma) {
        // PAE: the PDPTE comes from the PDPTE registers (SDM 4.4.1).
        const idx = linLo >>> 30;
        if (regs.pdptes) {
          const v = regs.pdptes[idx];
          entLo[0] = Number(v & 0xffffffffn);
          entHi[0] = Number(v >> 32n);
          entAddr[0] = Number(regs.cr3 & 0xffffffe0n) + idx * 8;
          entWide[0] = 1;
        } else {
          read8(mem, Number(regs.cr3 & 0xffffffe0n) + idx * 8, 0);
        }
        entAD[0] = 0; // PDPTEs have no accessed flag in PAE paging
        n = 1;
        const lo = entLo[0], hi = entHi[0];
        // Reserved: bits 2:1, 8:5 and 63:M (SDM Table 4-8).
        const pdpteRsvdHi = (~((1 << (maxPhy - 32)) - 1)) >>> 0;
        const rsvd = (lo & 0x1e6) !== 0 || (hi & pdpteRsvdHi) !== 0;
        if (levels) pushLevel(levels, 3, 0, lo & 1, rsvd, false, 0, false, true);
        if (!(lo & 1)) return accBits;
        if (rsvd) return accBits | PF_P | PF_RSVD;
        tableBase = (hi & 0xfffff) * TWO32 + ((lo & 0xfffff000) >>> 0);
        level = 2;
        // PAE PDE/PTE: bits 62:M reserved, 63 reserved unless NXE (SDM Tables 4-9 to 4-11).
        rsvdHi = ((0x7fffffff & ~((1 << (maxPhy - 32)) - 1)) | nxRsvdHi) >>> 0;
      } else {
        level = (cr4 & CR4_LA57) !== 0n ? 5 : 4;
        tableBase = Number(regs.cr3 & 0x000ffffffffff000n);
        rsvdHi = (addrRsvdHi | nxRsvdHi) >>> 0;
      }
      for (;;) {
        let idx: number;
        switch (level) {
          case 5:
            idx = (linHi >>> 16) & 0x1ff;
            break;
          case 4:
            idx = (linHi >>> 7) & 0x1ff;
            break;
          case 3:
            idx = ((linLo >>> 30) | (linHi << 2)) & 0x1ff;
            break;
          case 2:
            idx = (linLo >>> 21) & 0x1ff;
            break;
          default:
            idx = (linLo >>> 12) & 0x1ff;
        }
        const slot = n++;
        read8(mem, tableBase + idx * 8, slot);
        entAD[slot] = 1;
        const lo = entLo[slot], hi = entHi[slot];
        const ps = level <= 3 && level >= 2 && (lo & 0x80) !== 0;
        const leaf = ps || level === 1;
        let rsvd = (hi & rsvdHi) !== 0;
        // PML5E/PML4E bit 7 is reserved (SDM Tables 4-14, 4-15);
        // a 1-GiB PDPTE reserves bits 29:13, a 2-MiB PDE bits 20:13 (Tables 4-17, 4-19).
        if (level >= 4) rsvd ||= (lo & 0x80) !== 0;
        else if (ps) rsvd ||= (lo & (level === 3 ? 0x3fffe000 : 0x1fe000)) !== 0;
        const size = level === 3 ? 1 << 30 : level === 2 ? 2 << 20 : 4096;
        if (levels) {
          pushLevel(
            levels,
            level,
            slot,
            lo & 1,
            rsvd,
            leaf,
            leaf ? size : 0,
            nxe && (hi >>> 31) !== 0,
          );
        }
        if (!(lo & 1)) return accBits;
        if (rsvd) return accBits | PF_P | PF_RSVD;
        w &&= (lo & 2) !== 0;
        u &&= (lo & 4) !== 0;
        if (nxe && (hi >>> 31) !== 0) nx = true;
        if (leaf) {
          const offMask = size - 1;
          const baseLo = (lo & ~offMask) >>> 0;
          gpa = (hi & 0xfffff) * TWO32 + baseLo + (linLo & offMask);
          pageSize = size;
          leafSlot = slot;
          if (lma) pkey = (hi >>> 27) & 0xf;
          break;
        }
        tableBase = (hi & 0xfffff) * TWO32 + ((lo & 0xfffff000) >>> 0);
        level--;
      }
    }

    if (perms) {
      perms.w = w;
      perms.u = u;
      perms.x = !nx;
      perms.pk = pkey;
    }

    if (check) {
      // Access rights (SDM 4.6).
      let fault = false;
      let pkFault = false;
      if (fetch) {
        if (nx) fault = true;
        else if (userMode) fault = !u;
        else fault = smep && u;
      } else {
        if (userMode) {
          fault = !u || (write && !w);
        } else if (
          u && (cr4 & CR4_SMAP) !== 0n && (implicit || ((regs.rflags ?? 0n) & RFLAGS_AC) === 0n)
        ) {
          fault = true;
        } else {
          fault = write && !w && (cr0 & CR0_WP) !== 0n;
        }
        // Protection keys apply to data accesses to user-mode pages (SDM 4.6.2).
        if (!fault && u && lma && (cr4 & CR4_PKE) !== 0n) {
          const pkru = regs.pkru ?? 0;
          const ad = (pkru >>> (2 * pkey)) & 1;
          const wd = (pkru >>> (2 * pkey + 1)) & 1;
          if (ad || (write && wd && (userMode || (cr0 & CR0_WP) !== 0n))) fault = pkFault = true;
        }
      }
      if (fault) return accBits | PF_P | (pkFault ? PF_PK : 0);
    }

    out.gpa = gpa;
    out.pageSize = pageSize;
    if (!setAD) return OK;

    // Accessed and dirty flags (SDM 4.8): set A in every entry used, D in the
    // leaf for a write; atomically, and walk again if an entry changed under us.
    let raced = false;
    for (let i = 0; i < n; i++) {
      if (!entAD[i]) continue;
      let bits = (entLo[i] & 0x20) ? 0 : 0x20;
      if (write && i === leafSlot && !(entLo[i] & 0x40)) bits |= 0x40;
      if (bits === 0) continue;
      if (!updateEntry(mem, i, bits)) {
        raced = true;
        break;
      }
    }
    if (!raced || attempt >= 8) return OK;
  }
}

/** Sets `bits` in entry `slot` with a compare-exchange; false if the entry changed meanwhile. */
function updateEntry(mem: PhysicalMemory, slot: number, bits: number): boolean {
  const addr = entAddr[slot];
  const wide = entWide[slot] === 1;
  const size = wide ? 8 : 4;
  const old = wide ? entryValue(slot) : BigInt(entLo[slot]);
  const desired = old | BigInt(bits);
  if (!mem.isRam(addr, size)) {
    // Paging structures outside RAM (MMIO): no atomic operation there.
    const b = new Uint8Array(size);
    const dv = new DataView(b.buffer);
    if (wide) dv.setBigUint64(0, desired, true);
    else dv.setUint32(0, Number(desired), true);
    mem.write(addr, b);
    return true;
  }
  return mem.cmpxchg(addr, size, old, desired) === old;
}

function pushLevel(
  levels: PageLevel[],
  level: number,
  slot: number,
  present: number,
  reserved: boolean,
  leaf: boolean,
  pageSize: number,
  noExecute: boolean,
  paePdpte = false,
): void {
  const lo = entLo[slot];
  const p = present !== 0;
  const entry: PageLevel = {
    name: LEVEL_NAMES[level],
    level,
    address: entAddr[slot],
    value: entWide[slot] ? entryValue(slot) : BigInt(lo),
    present: p,
    writable: paePdpte ? true : (lo & 2) !== 0,
    user: paePdpte ? true : (lo & 4) !== 0,
    noExecute,
    reserved: p && reserved,
    leaf: p && !reserved && leaf,
    ...(p && !reserved && leaf ? { pageSize } : {}),
  };
  levels.push(entry);
}

/**
 * Completes the 64-bit SYSCALL of a guest whose host leaves it half done.
 *
 * On the nested, paravirtual KVM of our development machines (see
 * ../shared/environment.md: ring-3 guest code runs natively, ring-0 code in
 * KVM's instruction emulator), a SYSCALL executed at CPL3 loads RIP from
 * IA32_LSTAR, saves the next RIP in RCX and RFLAGS in R11 and masks RFLAGS
 * with IA32_FMASK, but leaves CS and SS at the user's selectors: still at
 * CPL3, the CPU faults fetching the kernel's entry point (a #PF at LSTAR, CS
 * RPL 3), and the kernel kills the caller. A Linux guest panics with
 * "Attempted to kill init!" at init's first system call.
 *
 * What SYSCALL should also have done (SDM Vol. 2B, "SYSCALL", 64-bit mode):
 * CS.Selector := IA32_STAR[47:32] AND FFFCH, a flat 64-bit code segment
 * (base 0, limit 4 GiB, type 11: execute/read, accessed; S 1, DPL 0, P 1,
 * L 1, D 0, G 1); SS.Selector := IA32_STAR[47:32] + 8, a flat data segment
 * (type 3: read/write, accessed; S 1, DPL 0, P 1, B 1, G 1); CPL := 0; RSP
 * unchanged.
 *
 * dhyve sees the resulting #PF as the guest's page-fault handler starts: on
 * these hosts its first instruction is one KVM's emulator gives up on (Linux
 * begins every exception entry with CLAC where the CPU has SMAP), so the
 * fallback emulator is called with RIP at the handler (IDT vector 14). There
 * the exception frame (SDM Vol. 3A, 6.14.2: error code, RIP, CS, RFLAGS,
 * RSP, SS) tells a half-done SYSCALL from a page fault: RIP = LSTAR, CS with
 * RPL 3, and RCX just past a SYSCALL instruction (0F 05) in the caller's
 * code. dhyve then drops the exception and puts the vCPU where the SYSCALL
 * should have left it: CS and SS from STAR, RIP = LSTAR, RSP the caller's,
 * RFLAGS as masked (RF clear). The handler's instruction does not run.
 *
 * A user program that jumps to LSTAR itself (to fault) with RCX after some
 * SYSCALL gets a system call instead of a SIGSEGV: what the SYSCALL at RCX -
 * 2 would have done, with the RCX and R11 it chose. R11 becomes RFLAGS on
 * the kernel's SYSRET, so an R11 with bits a CPL3 program cannot hold
 * (IOPL, VM) is left alone: that program gets its fault.
 *
 * @module
 */
import { inspect } from "./x86/paging.ts";
import {
  type CpuState,
  DIRTY,
  GPR,
  type PhysicalMemory,
  SEG,
  type SegmentCache,
} from "./x86/types.ts";

/** IA32_STAR: SYSCALL/SYSRET segment selectors (bits 47:32 for SYSCALL). */
export const MSR_STAR = 0xc0000081;
/** IA32_LSTAR: the 64-bit SYSCALL entry point. */
export const MSR_LSTAR = 0xc0000082;

/** The #PF vector. */
const PF_VECTOR = 14;
/** RFLAGS bits no CPL3 program holds in the RFLAGS SYSCALL saves: IOPL (13:12), VM (17). */
const RFLAGS_PRIVILEGED = 0x3000n | (1n << 17n);
/** RFLAGS.RF. */
const RFLAGS_RF = 1n << 16n;

/** The segment loads SYSCALL makes in 64-bit mode (SDM Vol. 2B, "SYSCALL"), from IA32_STAR. */
export function syscallSegments(star: bigint): { cs: SegmentCache; ss: SegmentCache } {
  const base = Number((star >> 32n) & 0xffffn);
  const flat = { base: 0n, limit: 0xffffffff, present: 1, dpl: 0, s: 1, g: 1, avl: 0, unusable: 0 };
  return {
    cs: { ...flat, selector: base & 0xfffc, type: 11, l: 1, db: 0 },
    ss: { ...flat, selector: (base + 8) & 0xffff, type: 3, l: 0, db: 1 },
  };
}

/** The 64-bit exception frame at RSP, error code first (SDM Vol. 3A, 6.14.2, figure 6-9). */
export interface ExceptionFrame {
  readonly errorCode: bigint;
  readonly rip: bigint;
  readonly cs: number;
  readonly rflags: bigint;
  readonly rsp: bigint;
  readonly ss: number;
}

/** One vCPU's SYSCALL completion (see the module doc). */
export class SyscallCompletion {
  /** The IDTR base the handler address was read for (-1n: none yet). */
  #idtBase = -1n;
  /** The #PF handler's address (0n: not known). */
  #pfHandler = 0n;
  /** IA32_LSTAR and IA32_STAR as last read (0n: read again). */
  #lstar = 0n;
  #star = 0n;
  /** SYSCALLs dhyve completed. */
  completed = 0;

  /**
   * Called with the vCPU's state loaded, before the fallback emulator runs
   * the instruction at RIP. Returns true when RIP is the guest's #PF handler
   * entered for a half-done SYSCALL and the state now is that SYSCALL's end
   * (the caller writes it back and resumes); false to go on as usual.
   */
  check(cpu: CpuState, mem: PhysicalMemory): boolean {
    const cs = cpu.seg[SEG.cs];
    if (cs.l !== 1 || (cs.selector & 3) !== 0) return false;
    if (cpu.idtr.base !== this.#idtBase) this.#readHandler(cpu, mem);
    if (this.#pfHandler === 0n || cpu.rip !== this.#pfHandler) return false;
    const frame = readFrame(cpu, mem, cpu.gpr[GPR.rsp]);
    if (frame === undefined || (frame.cs & 3) !== 3) return false;
    if (this.#lstar === 0n || frame.rip !== this.#lstar) {
      // A fault at some kernel address from CPL3: LSTAR may have been set (or moved) since.
      if (frame.rip < 0x8000_0000_0000_0000n) return false;
      this.#lstar = cpu.readMsr(MSR_LSTAR) ?? 0n;
      this.#star = cpu.readMsr(MSR_STAR) ?? 0n;
      if (frame.rip !== this.#lstar) return false;
    }
    const rcx = cpu.gpr[GPR.rcx];
    const r11 = cpu.gpr[GPR.r11];
    if ((r11 & RFLAGS_PRIVILEGED) !== 0n || !followsSyscall(cpu, mem, rcx)) return false;
    const seg = syscallSegments(this.#star);
    Object.assign(cpu.seg[SEG.cs], seg.cs);
    Object.assign(cpu.seg[SEG.ss], seg.ss);
    cpu.rip = this.#lstar;
    cpu.gpr[GPR.rsp] = frame.rsp;
    cpu.rflags = (frame.rflags & ~RFLAGS_RF) | 2n;
    cpu.dirty |= DIRTY.gpr | DIRTY.rip | DIRTY.sregs;
    this.completed++;
    return true;
  }

  /** Reads the #PF gate of the IDT (a 16-byte 64-bit gate, SDM Vol. 3A, 6.14.1). */
  #readHandler(cpu: CpuState, mem: PhysicalMemory): void {
    this.#idtBase = cpu.idtr.base;
    this.#pfHandler = 0n;
    if (cpu.idtr.limit < PF_VECTOR * 16 + 15) return;
    const gate = readLinear(cpu, mem, cpu.idtr.base + BigInt(PF_VECTOR * 16), 16);
    if (gate === undefined) return;
    const v = new DataView(gate.buffer);
    const present = (gate[5] & 0x80) !== 0;
    if (!present) return;
    this.#pfHandler = BigInt(v.getUint16(0, true)) | (BigInt(v.getUint16(6, true)) << 16n) |
      (BigInt(v.getUint32(8, true)) << 32n);
  }
}

/** Whether the two bytes before `rcx` in the current address space are SYSCALL (0F 05). */
function followsSyscall(cpu: CpuState, mem: PhysicalMemory, rcx: bigint): boolean {
  const bytes = readLinear(cpu, mem, rcx - 2n, 2, true);
  return bytes !== undefined && bytes[0] === 0x0f && bytes[1] === 0x05;
}

/** The exception frame at `rsp`, or undefined when it is not mapped in RAM. */
export function readFrame(
  cpu: CpuState,
  mem: PhysicalMemory,
  rsp: bigint,
): ExceptionFrame | undefined {
  const b = readLinear(cpu, mem, rsp, 48);
  if (b === undefined) return undefined;
  const v = new DataView(b.buffer);
  const q = (i: number) => v.getBigUint64(8 * i, true);
  return {
    errorCode: q(0),
    rip: q(1),
    cs: Number(q(2) & 0xffffn),
    rflags: q(3),
    rsp: q(4),
    ss: Number(q(5) & 0xffffn),
  };
}

/**
 * Reads `length` bytes at a linear address through the guest's page tables
 * (no faults, no accessed/dirty updates), page by page; undefined when a
 * page is not mapped, not RAM, or (with `user`) not user-accessible.
 */
function readLinear(
  cpu: CpuState,
  mem: PhysicalMemory,
  linear: bigint,
  length: number,
  user = false,
): Uint8Array | undefined {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const at = BigInt.asUintN(64, linear + BigInt(done));
    const w = inspect(cpu, mem, at);
    if (!w.ok || (user && !w.user)) return undefined;
    const n = Math.min(length - done, 4096 - Number(at & 0xfffn));
    if (!mem.isRam(w.gpa, n)) return undefined;
    mem.read(w.gpa, out.subarray(done, done + n));
    done += n;
  }
  return out;
}

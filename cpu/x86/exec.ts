/**
 * dhyve's fallback x86 executor: fetches the instruction at CS:RIP through
 * the page walker, decodes it, executes it on a {@linkcode CpuState} and
 * guest-physical memory, and writes back the state, for the instructions
 * KVM's own emulator gives up on (and many more).
 *
 * Rules every instruction follows (SDM Vol. 3A, 6.5 and 6.6):
 * - A fault changes nothing: register results are computed in scratch
 *   copies, memory writes are translated and checked first and written only
 *   when the instruction completes, and RIP stays on the instruction. The
 *   page walker's accessed/dirty updates are the one exception, as on the
 *   processor. REP string instructions keep the iterations done before a fault.
 * - A trap (int3's #BP, int n's software interrupt, the single-step #DB)
 *   is reported with the instruction completed and RIP past it.
 * - Locked read-modify-writes (LOCK prefix, xchg with memory) go through
 *   {@linkcode PhysicalMemory.cmpxchg} until no other vCPU changed the
 *   value between read and write. An operand split across two pages, or
 *   outside RAM, is read and written non-atomically.
 * - Only the {@linkcode DIRTY} bits of what changed are set in `cpu.dirty`.
 *
 * Segment loads and far transfers (iret, int n, far jmp/call/ret, mov and
 * pop to segment registers, lds/les/lfs/lgs/lss) are in _exec_segment.ts,
 * which says what of them is left out (gates, task switches, virtual-8086
 * returns).
 *
 * Not emulated (reported as "unsupported"): call gates and task switches,
 * sysret/syscall/sysenter/sysexit, hlt, x87 arithmetic, SSE/AVX floating-point arithmetic and conversions, EVEX
 * (AVX-512) forms other than the integer ones in _exec_evex.ts, rdtsc/rdtscp (no guest TSC here), debug registers, port I/O
 * without an {@linkcode EmulateOptions.io}, and anything else not in the
 * handler tables of the _exec_*.ts modules. Data breakpoints (DR7) are not
 * checked; no SIMD floating-point arithmetic is emulated, so #XM is never
 * raised.
 *
 * Alignment checking (#AC(0), SDM Vol. 3A, 6.15 "Interrupt 17") is done
 * for every data access (operands, stack pushes and pops, string elements,
 * far pointers) when CR0.AM, RFLAGS.AC and CPL 3 hold as the instruction
 * starts; never at CPL 0-2, for instruction fetches, or for implicit
 * supervisor accesses (descriptor tables, TSS). The alignments per data type
 * and the per-vendor rules for SIMD operands and fxsave/fxrstor are in
 * _exec_ctx.ts (Ctx.acAlignment) and _exec_xsave.ts; the order is
 * segmentation, the instruction's own #GP alignment, #AC, then paging.
 *
 * The interrupt shadow (SDM Vol. 3A, 6.8.3; Vol. 2B, MOV, POP, STI): after
 * mov ss and pop ss, and after sti that sets IF, the "ok" result carries
 * `shadow` for the adapter to give KVM. After mov/pop ss the single-step
 * trap of RFLAGS.TF is held off too: it is not reported for that
 * instruction, and comes after the next one, which runs with TF still set.
 *
 * Near branches with a 66h prefix in 64-bit mode follow the CPUID vendor:
 * AMD truncates RIP to 16 bits (and pushes/pops 2 bytes), Intel ignores the
 * prefix (see nearSize in _exec_alu.ts). The decoder reads a rel16 for 66h
 * with E8, E9 and 0F 80-8F as AMD and objdump do; for Intel, {@linkcode emulate}
 * decodes those again without the 66h prefixes (a rel32), and
 * {@linkcode execute} reports such an already-decoded instruction as
 * "unsupported".
 *
 * What the executor expects of a {@linkcode CpuState}:
 * - CPL is SS.DPL (CS.DPL may differ for conforming code); the mode comes
 *   from CR0.PE, RFLAGS.VM, EFER.LMA, CS.L and CS.DB; segment limits are
 *   byte-granular (as in kvm_segment).
 * - wrmsr to IA32_EFER, IA32_FS_BASE and IA32_GS_BASE calls `writeMsr` and
 *   also updates `efer` / `seg[fs|gs].base` (DIRTY.sregs), so that writing
 *   back sregs keeps the new value; rdmsr of those reads the fields.
 * - `extended()` is read only by instructions that use the x87/SSE/AVX
 *   state (and for PKRU, only when a protection key is checked); a
 *   component whose XSTATE_BV bit is clear must hold its initial values
 *   there, as KVM_GET_XSAVE provides them.
 * - Flags the SDM leaves undefined follow the CPUID vendor: measured on an
 *   AMD Zen for AuthenticAMD; for GenuineIntel as Bochs/QEMU model Intel
 *   (not measured here). The _exec_alu.ts comments say which is which.
 *
 * @module
 */

import { ALU_HANDLERS, type Handler, LOCKABLE } from "./_exec_alu.ts";
import { EVEX_HANDLERS } from "./_exec_evex.ts";
import { Ctx, F, Fault, type PortIo, Unsupported, VEC } from "./_exec_ctx.ts";
import { SSE_HANDLERS } from "./_exec_sse.ts";
import { STRING_HANDLERS, stringOp } from "./_exec_string.ts";
import { movCr, movDr, SYSTEM_HANDLERS } from "./_exec_system.ts";
import { farCall, farJmp, movSreg, popSreg, SEGMENT_HANDLERS } from "./_exec_segment.ts";
import { XSAVE_HANDLERS } from "./_exec_xsave.ts";
import { decode, TooLongError, TruncatedError, UdError } from "./decode.ts";
import {
  type CpuState,
  DecodeError,
  DIRTY,
  type Instruction,
  type Mode,
  type PhysicalMemory,
  SEG,
  type StepResult,
} from "./types.ts";

export type { PortIo } from "./_exec_ctx.ts";

/** Options for {@linkcode emulate} and {@linkcode execute}. */
export interface EmulateOptions {
  /**
   * Iterations a REP string instruction may run in one call (default
   * 4096). With more to do, RIP stays on the instruction with RCX/RSI/RDI
   * updated and RFLAGS.RF set; the guest executes it again.
   */
  readonly maxRepIterations?: number;
  /**
   * Port I/O for in/out/ins/outs. Without it those instructions are
   * "unsupported" (the KVM adapter exits to its port bus instead).
   */
  readonly io?: PortIo;
  /** The decoder (default: decode.ts); for tests. */
  readonly decode?: (bytes: Uint8Array, mode: Mode, ip: bigint) => Instruction;
}

/** DR6.BS: the single-step condition of a #DB (SDM Vol. 3A, 18.2.3). */
export const DR6_BS = 1 << 14;

const HANDLERS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  ...ALU_HANDLERS,
  ...STRING_HANDLERS,
  ...SYSTEM_HANDLERS,
  ...SEGMENT_HANDLERS,
  ...SSE_HANDLERS,
  ...XSAVE_HANDLERS,
]);

// The decoder (like objdump) marks an operand size other than the mode's default with a
// suffix on these: pushw, popq, callw, retw, leavew...
const SUFFIXED = new Map<string, Handler>();
for (const base of ["push", "pop", "pushf", "popf", "call", "jmp", "ret", "leave", "enter"]) {
  const h = HANDLERS.get(base);
  if (h) {
    for (const sfx of ["w", "d", "q"]) if (!HANDLERS.has(base + sfx)) SUFFIXED.set(base + sfx, h);
  }
}

/** The handler for an instruction, or undefined when it is not emulated. */
function lookup(i: Instruction): Handler | undefined {
  // EVEX (AVX-512) forms have handlers of their own (_exec_evex.ts), never the VEX ones.
  if (i.vex?.kind === "evex") return EVEX_HANDLERS.get(i.mnemonic);
  if (i.mnemonic === "mov" && i.map === "0f") {
    // 0F 20-23: moves to and from control and debug registers.
    if (i.opcode === 0x20 || i.opcode === 0x22) return movCr;
    if (i.opcode === 0x21 || i.opcode === 0x23) return movDr;
  }
  if (i.map === "legacy") {
    // Far jmp/call: EA and 9A (ptr16:16/32), FF /5 and FF /3 (m16:16/32/64).
    if (i.opcode === 0xea) return farJmp;
    if (i.opcode === 0x9a) return farCall;
    if (i.opcode === 0xff && i.modrm >= 0) {
      const r = (i.modrm >> 3) & 7;
      if (r === 5) return farJmp;
      if (r === 3) return farCall;
    }
    if (i.opcode === 0x8e) return movSreg; // mov Sreg, r/m16
    if (i.opcode === 0x07 || i.opcode === 0x17 || i.opcode === 0x1f) return popSreg;
  } else if (i.map === "0f" && (i.opcode === 0xa1 || i.opcode === 0xa9)) {
    return popSreg; // pop fs, pop gs
  }
  if (
    i.map === "legacy" &&
    ((i.opcode >= 0xa4 && i.opcode <= 0xa7) || (i.opcode >= 0xaa && i.opcode <= 0xaf) ||
      (i.opcode >= 0x6c && i.opcode <= 0x6f))
  ) {
    return stringOp;
  }
  return HANDLERS.get(i.mnemonic) ?? SUFFIXED.get(i.mnemonic);
}

/** True when the executor has a handler for this decoded instruction (some forms may still be unsupported). */
export function isEmulated(i: Instruction): boolean {
  return lookup(i) !== undefined;
}

// One context reused by every call (execution is synchronous); a nested call gets its own.
let shared: Ctx | null = new Ctx();

/**
 * Executes one decoded instruction on `cpu`: the state changes and RIP
 * advances ("ok"), or nothing changes and the fault is returned, or the
 * instruction completes and a trap is returned ("exception" with RIP past
 * it: int3's #BP, int n's software interrupt, or #DB with `dr6` =
 * {@linkcode DR6_BS} when RFLAGS.TF was set before it), or "unsupported". `insn` must have been decoded in the
 * CPU's current mode at CS:RIP.
 */
export function execute(
  cpu: CpuState,
  mem: PhysicalMemory,
  insn: Instruction,
  options?: EmulateOptions,
): StepResult {
  const c = shared ?? new Ctx();
  shared = null;
  try {
    c.reset(cpu, mem, insn);
    return run(c, insn, options);
  } finally {
    shared = c;
  }
}

function run(c: Ctx, insn: Instruction, options: EmulateOptions | undefined): StepResult {
  c.maxRep = Math.max(1, options?.maxRepIterations ?? 4096);
  c.io = options?.io;
  if (insn.mode !== c.mode) {
    return {
      kind: "unsupported",
      message: `${insn.text}: decoded for ${insn.mode}-bit mode, the CPU is in ${c.mode}-bit mode`,
      insn,
    };
  }
  const handler = lookup(insn);
  if (!handler && insn.vex?.kind === "evex") {
    return {
      kind: "unsupported",
      message: `dhyve's instruction emulator does not implement the EVEX (AVX-512) form of ` +
        `${insn.mnemonic} (${insn.text})`,
      insn,
    };
  }
  if (!handler) {
    return {
      kind: "unsupported",
      message: `dhyve's instruction emulator does not implement ${insn.mnemonic}`,
      insn,
    };
  }
  if (c.f.vendor === "intel" && intelRel32(insn)) {
    return {
      kind: "unsupported",
      message: `${insn.text}: decoded with a rel16, but Intel ignores 66h on near branches in ` +
        `64-bit mode (a rel32); decode it with emulate()`,
      insn,
    };
  }
  const tf = (c.flags & F.TF) !== 0;
  try {
    if (insn.lock && (!LOCKABLE.has(insn.mnemonic) || insn.operands[0]?.kind !== "mem")) {
      throw new Fault(VEC.UD);
    }
    handler(c, insn);
  } catch (e) {
    if (e instanceof Fault) {
      // A REP string instruction keeps the iterations it completed.
      if (c.keepPartial) commit(c, FAULTED);
      return { kind: "exception", exception: e.exception, insn };
    }
    if (e instanceof Unsupported) return { kind: "unsupported", message: e.message, insn };
    throw e;
  }
  commit(c, c.incomplete ? AGAIN : DONE);
  if (c.trap) return { kind: "exception", exception: c.trap, insn };
  // mov/pop ss hold off the single-step trap until after the next instruction (SDM Vol. 3A,
  // 6.8.3): TF is still set when that one runs, so it traps then.
  if (tf && c.shadow !== "mov-ss") {
    return { kind: "exception", exception: { vector: VEC.DB, dr6: DR6_BS }, insn };
  }
  if (c.shadow) return { kind: "ok", insn, shadow: c.shadow };
  return { kind: "ok", insn };
}

const DONE = 0, AGAIN = 1, FAULTED = 2;

/**
 * Writes the instruction's results to the CPU: held memory writes, changed
 * registers, RFLAGS and RIP. DONE: RIP moves on and RF is cleared (SDM Vol.
 * 3A, 18.3.1.1). AGAIN (a REP instruction stopped early): RIP stays and RF
 * is set, as when the processor takes an interrupt between iterations.
 * FAULTED (a REP instruction faulting mid-way): RIP and RF stay.
 */
function commit(c: Ctx, how: number): void {
  const cpu = c.cpu;
  c.flushWrites();
  let dirty = c.dirty;
  const g = cpu.gpr;
  for (let k = 0; k < 16; k++) {
    if (g[k] !== c.gpr[k]) {
      g[k] = c.gpr[k];
      dirty |= DIRTY.gpr;
    }
  }
  let flags = c.flags | 2;
  if (how === DONE && !c.loadRf) flags &= ~F.RF;
  else if (how === AGAIN) flags |= F.RF;
  const rflags = (cpu.rflags & ~0xffffffffn) | BigInt(flags >>> 0);
  if (rflags !== cpu.rflags) {
    cpu.rflags = rflags;
    dirty |= DIRTY.rip;
  }
  if (how === DONE && c.rip !== cpu.rip) {
    cpu.rip = c.rip;
    dirty |= DIRTY.rip;
  }
  cpu.dirty |= dirty;
}

/**
 * Fetches, decodes and executes the instruction at CS:RIP (see
 * {@linkcode execute} for the result). The fetch goes through segmentation
 * (CS limit outside 64-bit mode) and the page walker as an instruction
 * fetch; bytes on the next page are read only when the instruction reaches
 * into it, and a fault there is a #PF for that page.
 */
export function emulate(cpu: CpuState, mem: PhysicalMemory, options?: EmulateOptions): StepResult {
  const c = shared ?? new Ctx();
  shared = null;
  try {
    c.reset(cpu, mem, null);
    let insn: Instruction;
    try {
      insn = fetchDecode(c, options?.decode ?? decode);
    } catch (e) {
      if (e instanceof Fault) return { kind: "exception", exception: e.exception };
      if (e instanceof Unsupported) return { kind: "unsupported", message: e.message };
      throw e;
    }
    c.setInsn(insn);
    return run(c, insn, options);
  } finally {
    shared = c;
  }
}

const fetchBuf = new Uint8Array(15);

type Decoder = (bytes: Uint8Array, mode: Mode, ip: bigint) => Instruction;

/**
 * A near jmp/call/jcc with a rel32 opcode (E8, E9, 0F 80-8F) that the decoder
 * read with a rel16 (66h in 64-bit mode): right for AMD, not for Intel.
 */
function intelRel32(i: Instruction): boolean {
  if (i.mode !== 64 || i.opSize !== 2) return false;
  if (i.map === "legacy") return i.opcode === 0xe8 || i.opcode === 0xe9;
  return i.map === "0f" && i.opcode >= 0x80 && i.opcode <= 0x8f;
}

function isPrefix(x: number): boolean {
  return x === 0x66 || x === 0x67 || x === 0xf0 || x === 0xf2 || x === 0xf3 || x === 0x26 ||
    x === 0x2e || x === 0x36 || x === 0x3e || x === 0x64 || x === 0x65 || (x & 0xf0) === 0x40;
}

/**
 * Decodes with `dec`; for Intel in 64-bit mode, a near branch with 66h and a rel32
 * opcode is decoded again with its 66h prefixes left out (at RIP + their
 * count, so that the target comes out right), and returned with all its
 * bytes: Intel ignores 66h there (SDM Vol. 2A, 2.2.1.7, JMP, CALL, Jcc).
 */
function decodeFor(c: Ctx, dec: Decoder, bytes: Uint8Array, mode: Mode, ip: bigint): Instruction {
  const insn = dec(bytes, mode, ip);
  if (mode !== 64 || c.f.vendor !== "intel" || !intelRel32(insn)) return insn;
  const kept: number[] = [];
  let k = 0;
  let dropped = 0;
  for (; k < bytes.length && isPrefix(bytes[k]); k++) {
    if (bytes[k] === 0x66) dropped++;
    else kept.push(bytes[k]);
  }
  const rest = new Uint8Array(kept.length + bytes.length - k);
  rest.set(kept);
  rest.set(bytes.subarray(k), kept.length);
  const d = dec(rest, mode, ip + BigInt(dropped));
  const length = d.length + dropped;
  if (length > 15) throw new TooLongError(bytes.slice(0, 15), 15);
  // The decoder's instruction builds some fields on first use: copy them all now.
  return {
    mode: d.mode,
    bytes: bytes.slice(0, length),
    length,
    mnemonic: d.mnemonic,
    operands: d.operands,
    opSize: d.opSize,
    addrSize: d.addrSize,
    lock: d.lock,
    rep: d.rep,
    segOverride: d.segOverride,
    rex: d.rex,
    vex: d.vex,
    map: d.map,
    opcode: d.opcode,
    modrm: d.modrm,
    mandatory: d.mandatory,
    text: d.text,
  };
}

function fetchDecode(c: Ctx, dec: Decoder): Instruction {
  const cpu = c.cpu;
  const rip = cpu.rip;
  let lin: bigint;
  let avail = 15; // bytes the segment allows
  if (c.mode === 64) {
    if (!c.canonical(rip)) throw new Fault(VEC.GP, 0);
    lin = rip;
  } else {
    const cs = cpu.seg[SEG.cs];
    const ip = rip & 0xffffffffn;
    const limit = BigInt(cs.limit >>> 0);
    if (ip > limit) throw new Fault(VEC.GP, 0);
    avail = Number(limit - ip + 1n > 15n ? 15n : limit - ip + 1n);
    lin = (cs.base + ip) & 0xffffffffn;
  }
  const inPage = 4096 - Number(lin & 0xfffn);
  const first = Math.min(avail, inPage);
  const gpa = c.translate(lin, false, true);
  fetchRam(c, gpa, fetchBuf.subarray(0, first));
  try {
    return decodeFor(c, dec, fetchBuf.slice(0, first), c.mode, rip);
  } catch (e) {
    if (!(e instanceof TruncatedError) || first >= avail) throw decodeFault(e, first < 15);
  }
  // The instruction goes on into the next page: fetch from it too.
  const next = c.mode === 64
    ? BigInt.asUintN(64, lin + BigInt(first))
    : (lin + BigInt(first)) & 0xffffffffn;
  if (c.mode === 64 && !c.canonical(next)) throw new Fault(VEC.GP, 0);
  const gpa2 = c.translate(next, false, true);
  fetchRam(c, gpa2, fetchBuf.subarray(first, avail));
  try {
    return decodeFor(c, dec, fetchBuf.slice(0, avail), c.mode, rip);
  } catch (e) {
    throw decodeFault(e, avail < 15);
  }
}

/**
 * Reads instruction bytes from RAM. Code in device memory (MMIO, or a hole
 * no device claims) is not executed: a device register read has side
 * effects, and an unclaimed hole reads as all ones, which would turn a wild
 * jump into an endless stream of #UDs instead of a clear stop.
 */
function fetchRam(c: Ctx, gpa: number, out: Uint8Array): void {
  if (!c.mem.isRam(gpa, out.length)) {
    throw new Unsupported(
      `instruction fetch from guest-physical 0x${gpa.toString(16)}, which is not RAM`,
    );
  }
  c.mem.read(gpa, out);
}

/** What a decoder error means for the guest. `limited`: the bytes ended at the CS limit. */
function decodeFault(e: unknown, limited: boolean): Fault | Unsupported {
  if (e instanceof UdError) return new Fault(VEC.UD);
  if (e instanceof TooLongError) return new Fault(VEC.GP, 0);
  // Running into the CS limit is #GP(0) (SDM Vol. 3A, 5.3).
  if (e instanceof TruncatedError && limited) return new Fault(VEC.GP, 0);
  if (e instanceof DecodeError) return new Unsupported(e.message);
  throw e;
}

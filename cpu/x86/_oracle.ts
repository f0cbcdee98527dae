/**
 * The machinery behind oracle_test.ts: the real CPU as the reference for
 * dhyve's x86 executor.
 *
 * - {@linkcode assemble} turns Intel-syntax lines into instruction bytes
 *   with GNU as (one `as` run for a whole list).
 * - {@linkcode Harness} builds cpu/x86/oracle/ (harness.c + stub.S) with gcc
 *   and runs cases on this host's CPU at CPL3, faults included (the signal
 *   frame's trap number and error code become the exception).
 * - {@linkcode runEmulated} runs the same case through exec.ts `emulate()`
 *   (fetch, decode, execute) on a 64-bit CPL3 CpuState with paging that maps
 *   the same pages, and checks that what changed is marked DIRTY.
 * - {@linkcode compareOutcomes} says, field by field, where the two differ.
 * - {@linkcode Rng}, {@linkcode parseOperands} and {@linkcode makeCases}
 *   generate inputs: edge values for each operand, seeded random ones.
 *
 * Private module (leading underscore): only oracle_test.ts uses it.
 *
 * @module
 */

import { createCpu, PageTableBuilder, type TestCpu, TestMemory } from "./testing.ts";
import { type CpuState, DIRTY, type PhysicalMemory, type StepResult } from "./types.ts";

/** Where the native harness and the emulated guest both put things (harness.c). */
export const LAYOUT = Object.freeze({
  /** The two data pages; the buffer lies across the boundary between them. */
  data: 0x10000,
  /**
   * Where the emulated guest keeps the second data page (linear data + 4096):
   * not after the first, so that an access across the boundary that is not
   * translated page by page reads the wrong bytes.
   */
  data2Phys: 0x30000,
  /** The page after the data pages: mapped in neither (PROT_NONE natively). */
  guard: 0x12000,
  /** The page the instruction runs in. */
  code: 0x20000,
  /** The buffer memory operands point into: 128 bytes each side of the page boundary. */
  buf: 0x10f80,
  /** Its length. */
  bufLen: 256,
  /** What the rest of the data pages holds (a write there is a stray write). */
  pattern: 0xa5,
  /** RSP when a case does not set it (unmapped: only stack cases point it into the buffer). */
  rsp: 0x7ff0n,
  /** A taken branch's target: this far past the next instruction (harness.c puts a way back there). */
  taken: 0x40,
});

/** The register part of struct oracle_regs (harness.c), then the buffer. */
const REGS_STATE = 2272;
const REGS_BYTES = REGS_STATE + LAYOUT.bufLen;
const CASE_BYTES = 24 + REGS_BYTES;
const RESULT_BYTES = 32 + REGS_BYTES;

/** RFLAGS bits. */
export const FLAG = Object.freeze({
  CF: 1n << 0n,
  PF: 1n << 2n,
  AF: 1n << 4n,
  ZF: 1n << 6n,
  SF: 1n << 7n,
  TF: 1n << 8n,
  IF: 1n << 9n,
  DF: 1n << 10n,
  OF: 1n << 11n,
  RF: 1n << 16n,
});
/** The six arithmetic flags. */
export const ARITH_FLAGS: bigint = FLAG.CF | FLAG.PF | FLAG.AF | FLAG.ZF | FLAG.SF | FLAG.OF;

/** Register names by number (types.ts GPR order). */
export const GPR_NAMES = [
  "rax",
  "rcx",
  "rdx",
  "rbx",
  "rsp",
  "rbp",
  "rsi",
  "rdi",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
] as const;

/** The architectural state a case starts from or ends in. */
export interface State {
  /** rax ... r15. */
  gpr: BigUint64Array;
  rflags: bigint;
  rip: bigint;
  /** xmm0 ... xmm15, 16 bytes each. */
  xmm: Uint8Array;
  /** Bits 255:128 of ymm0 ... ymm15, 16 bytes each (compared only where the host has AVX). */
  ymmh: Uint8Array;
  /**
   * Bits 511:256 of zmm0 ... zmm15, 32 bytes each; zmm16 ... zmm31, 64 bytes each;
   * k0 ... k7, 8 bytes each (bits 15:0 used): loaded and compared only where the host has
   * AVX-512F and AVX-512VL ({@linkcode HAS_AVX512}).
   */
  zmmh: Uint8Array;
  zmmHi16: Uint8Array;
  k: Uint8Array;
  /** MXCSR. */
  mxcsr: number;
  /** The x87 control word. */
  fcw: number;
  /** The x87 status word (output only: the harness starts every case with FNINIT). */
  fsw: number;
  /** The buffer at {@linkcode LAYOUT.buf}. */
  mem: Uint8Array;
}

/** One instruction and the state it starts from. */
export interface Case {
  /** The assembly it came from (for messages). */
  text: string;
  code: Uint8Array;
  /** Where in the code page the instruction sits. */
  codeOffset: number;
  input: State;
  /** RFLAGS bits not compared for this case (architecturally undefined and vendor-specific). */
  ignoreFlags: bigint;
  /** Why some flags are ignored (printed with a failure). */
  note?: string;
}

/** What running a case did. */
export interface Outcome {
  /** The exception vector, or -1 when the instruction completed. */
  vector: number;
  /** The error code (for #GP, #PF, ...), 0 otherwise. */
  errorCode: number;
  /** The faulting linear address for #PF. */
  faultAddr: bigint;
  /** Bytes of the data pages outside the buffer that changed. */
  stray: number;
  /** The state after the instruction (or at the fault). */
  state: State;
  /** Set when the emulator could not run the case at all ("unsupported", a throw). */
  problem?: string;
  /**
   * State the executor changed without setting the DIRTY bit that makes the
   * KVM adapter write it back (cpu/x86/types.ts DIRTY).
   */
  notDirty?: string[];
}

/** A fresh zeroed state. */
export function emptyState(): State {
  return {
    gpr: new BigUint64Array(16),
    rflags: 0x202n,
    rip: BigInt(LAYOUT.code),
    xmm: new Uint8Array(256),
    ymmh: new Uint8Array(256),
    zmmh: new Uint8Array(512),
    zmmHi16: new Uint8Array(1024),
    k: new Uint8Array(64),
    mxcsr: 0x1f80,
    fcw: 0x37f,
    fsw: 0,
    mem: new Uint8Array(LAYOUT.bufLen),
  };
}

/** A deep copy. */
export function cloneState(s: State): State {
  return {
    gpr: s.gpr.slice(),
    rflags: s.rflags,
    rip: s.rip,
    xmm: s.xmm.slice(),
    ymmh: s.ymmh.slice(),
    zmmh: s.zmmh.slice(),
    zmmHi16: s.zmmHi16.slice(),
    k: s.k.slice(),
    mxcsr: s.mxcsr,
    fcw: s.fcw,
    fsw: s.fsw,
    mem: s.mem.slice(),
  };
}

function writeRegs(view: DataView, bytes: Uint8Array, at: number, s: State): void {
  for (let i = 0; i < 16; i++) view.setBigUint64(at + 8 * i, s.gpr[i], true);
  view.setBigUint64(at + 128, s.rflags, true);
  view.setBigUint64(at + 136, s.rip, true);
  bytes.set(s.xmm, at + 144);
  bytes.set(s.ymmh, at + 400);
  view.setUint32(at + 656, s.mxcsr, true);
  view.setUint16(at + 660, s.fcw, true);
  view.setUint16(at + 662, s.fsw, true);
  bytes.set(s.zmmh, at + 672);
  bytes.set(s.zmmHi16, at + 1184);
  bytes.set(s.k, at + 2208);
  bytes.set(s.mem, at + REGS_STATE);
}

function readRegs(view: DataView, bytes: Uint8Array, at: number): State {
  const gpr = new BigUint64Array(16);
  for (let i = 0; i < 16; i++) gpr[i] = view.getBigUint64(at + 8 * i, true);
  return {
    gpr,
    rflags: view.getBigUint64(at + 128, true),
    rip: view.getBigUint64(at + 136, true),
    xmm: bytes.slice(at + 144, at + 400),
    ymmh: bytes.slice(at + 400, at + 656),
    mxcsr: view.getUint32(at + 656, true),
    fcw: view.getUint16(at + 660, true),
    fsw: view.getUint16(at + 662, true),
    zmmh: bytes.slice(at + 672, at + 1184),
    zmmHi16: bytes.slice(at + 1184, at + 2208),
    k: bytes.slice(at + 2208, at + 2272),
    mem: bytes.slice(at + REGS_STATE, at + REGS_STATE + LAYOUT.bufLen),
  };
}

// ---------------------------------------------------------------------------
// Tools: gcc, as, objcopy

async function tool(cmd: string, args: string[], what: string): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `the x86 oracle needs \`${cmd}\` (${what}), which is not installed: ` +
          `apt-get install ${cmd === "gcc" ? "gcc" : "binutils"}`,
      );
    }
    throw e;
  }
  if (out.code !== 0) {
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    throw new Error(`${cmd} ${args.join(" ")} failed (${what}):\n${text}`);
  }
}

/**
 * Assembles Intel-syntax lines (GNU as, `.intel_syntax noprefix`, 64-bit)
 * with one `as` run; returns each line's bytes. A line may also be raw
 * bytes in GNU as syntax (`.byte 0x0f, 0x0b`).
 */
export async function assemble(lines: readonly string[]): Promise<Uint8Array[]> {
  if (lines.length === 0) return [];
  const dir = await Deno.makeTempDir({ prefix: "dhyve-oracle-as-" });
  try {
    const src = [".intel_syntax noprefix", ".text"];
    // A table of lengths first (each resolved at the end of assembly), then the instructions.
    for (let i = 0; i < lines.length; i += 16) {
      const chunk = [];
      for (let j = i; j < Math.min(lines.length, i + 16); j++) chunk.push(`.Le${j}-.Ls${j}`);
      src.push(`.byte ${chunk.join(", ")}`);
    }
    const firstLine = src.length + 1;
    lines.forEach((line, i) => {
      if (line.includes("\n") || line.includes(";")) {
        throw new Error(`one instruction per line: ${line}`);
      }
      src.push(`.Ls${i}: ${line}`, `.Le${i}:`);
    });
    await Deno.writeTextFile(`${dir}/a.s`, src.join("\n") + "\n");
    try {
      await tool("as", ["--64", "-o", `${dir}/a.o`, `${dir}/a.s`], "GNU as assembles the cases");
    } catch (e) {
      // Name the offending lines rather than the generated file's line numbers.
      const msg = String((e as Error).message).replace(
        /a\.s:(\d+):/g,
        (_, n) => `[${lines[Math.floor((Number(n) - firstLine) / 2)] ?? "?"}]:`,
      );
      throw new Error(msg);
    }
    await tool("objcopy", ["-O", "binary", "-j", ".text", `${dir}/a.o`, `${dir}/a.bin`], "objcopy");
    const bin = await Deno.readFile(`${dir}/a.bin`);
    const out: Uint8Array[] = [];
    let at = lines.length;
    for (let i = 0; i < lines.length; i++) {
      const len = bin[i];
      if (len === 0 || len > 15) throw new Error(`\`${lines[i]}\` assembled to ${len} bytes`);
      out.push(bin.slice(at, at + len));
      at += len;
    }
    if (at !== bin.length) throw new Error(`assembled ${bin.length} bytes, expected ${at}`);
    return out;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The native side: harness.c + stub.S built with gcc in a temporary directory. */
export class Harness {
  readonly #dir: string;
  readonly #exe: string;

  private constructor(dir: string) {
    this.#dir = dir;
    this.#exe = `${dir}/oracle`;
  }

  /** Builds the harness (throws with a clear message when gcc is missing). */
  static async build(): Promise<Harness> {
    const dir = await Deno.makeTempDir({ prefix: "dhyve-oracle-" });
    try {
      const src = new URL("./oracle/", import.meta.url).pathname;
      await tool(
        "gcc",
        ["-O2", "-Wall", "-o", `${dir}/oracle`, `${src}harness.c`, `${src}stub.S`],
        "it builds the native oracle cpu/x86/oracle/",
      );
      return new Harness(dir);
    } catch (e) {
      await Deno.remove(dir, { recursive: true });
      throw e;
    }
  }

  /** Runs the cases on this CPU, in order. */
  async run(cases: readonly Case[]): Promise<Outcome[]> {
    const input = new Uint8Array(CASE_BYTES * cases.length);
    const view = new DataView(input.buffer);
    cases.forEach((c, i) => {
      const at = i * CASE_BYTES;
      if (c.code.length > 15) throw new Error(`${c.text}: ${c.code.length} bytes`);
      input.set(c.code, at);
      view.setUint32(at + 16, c.code.length, true);
      view.setUint32(at + 20, c.codeOffset, true);
      writeRegs(view, input, at + 24, c.input);
    });
    const child = new Deno.Command(this.#exe, {
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = child.output();
    const writer = child.stdin.getWriter();
    let writeError = "";
    try {
      await writer.write(input);
      await writer.close();
    } catch (e) {
      // The harness died early: its exit status and stderr say why.
      writeError = ` (${(e as Error).message})`;
      await writer.abort().catch(() => {});
    }
    const out = await output;
    if (out.code !== 0 || writeError || out.stdout.length !== RESULT_BYTES * cases.length) {
      throw new Error(
        `the native oracle failed (exit ${out.code}, signal ${out.signal}${writeError}, ` +
          `${out.stdout.length / RESULT_BYTES} of ${cases.length} results):\n` +
          new TextDecoder().decode(out.stderr),
      );
    }
    const rv = new DataView(out.stdout.buffer, out.stdout.byteOffset, out.stdout.byteLength);
    return cases.map((_, i) => {
      const at = i * RESULT_BYTES;
      return {
        vector: rv.getInt32(at, true),
        errorCode: Number(rv.getBigUint64(at + 8, true) & 0xffffffffn),
        faultAddr: rv.getBigUint64(at + 16, true),
        stray: rv.getUint32(at + 24, true),
        state: readRegs(rv, out.stdout, at + 32),
      };
    });
  }

  /** Removes the temporary directory. */
  async dispose(): Promise<void> {
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  /** Removes the temporary directory (for an unload handler). */
  disposeSync(): void {
    try {
      Deno.removeSync(this.#dir, { recursive: true });
    } catch {
      // already gone
    }
  }
}

// ---------------------------------------------------------------------------
// The emulated side

/** The executor's entry point (exec.ts `emulate`). */
export type EmulateFn = (
  cpu: CpuState,
  mem: PhysicalMemory,
  options?: { maxRepIterations?: number },
) => StepResult;

/** Where the page tables of the emulated guest live (above everything else). */
const TABLES = 0x80000;

/** The emulated guest: RAM, paging and a CPU factory, reused from case to case. */
class Guest {
  readonly mem = new TestMemory(0x100000);
  readonly cr3: bigint;
  readonly vendor: "intel" | "amd";

  constructor() {
    const pt = new PageTableBuilder(this.mem, "4level", TABLES);
    // The same pages as harness.c, user-accessible; the guard page stays unmapped.
    pt.map(BigInt(LAYOUT.data), LAYOUT.data, { user: true, writable: true });
    pt.map(BigInt(LAYOUT.data + 4096), LAYOUT.data2Phys, { user: true, writable: true });
    pt.map(BigInt(LAYOUT.code), LAYOUT.code, { user: true, writable: false });
    this.cr3 = pt.cr3;
    // CPUID's vendor, which the executor follows for what the SDM leaves undefined (Hygon's
    // cores are AMD's).
    this.vendor = ["AuthenticAMD", "HygonGenuine"].includes(hostVendor()) ? "amd" : "intel";
  }

  /** A CPL3 64-bit CPU in the case's state, with memory set up as harness.c does. */
  load(c: Case): TestCpu {
    const m = this.mem.bytes;
    m.fill(LAYOUT.pattern, LAYOUT.data, LAYOUT.data + 4096);
    m.fill(LAYOUT.pattern, LAYOUT.data2Phys, LAYOUT.data2Phys + 4096);
    const half = LAYOUT.data + 4096 - LAYOUT.buf;
    m.set(c.input.mem.subarray(0, half), LAYOUT.buf);
    m.set(c.input.mem.subarray(half), LAYOUT.data2Phys);
    m.fill(0xcc, LAYOUT.code, LAYOUT.code + 4096);
    // The bytes harness.c puts there: the instruction (what fits in the page), then a jmp
    // qword ptr [rip+0] after it and another one a taken branch's distance further.
    const at = LAYOUT.code + c.codeOffset;
    m.set(c.code.subarray(0, 4096 - c.codeOffset), at);
    for (const back of [0, LAYOUT.taken]) {
      const stub = at + c.code.length + back;
      const slot = (stub + 6 + 7) & ~7; // harness.c put_jmp
      if (slot + 8 <= LAYOUT.code + 4096) m.set([0xff, 0x25, slot - (stub + 6), 0, 0, 0], stub);
    }
    const cpu = createCpu({
      mode: "long",
      cpl: 3,
      cr3: this.cr3,
      vendor: this.vendor,
      avx512: HAS_AVX512,
    });
    // Linux runs user space with CR0.AM set: RFLAGS.AC = 1 at CPL3 enables alignment checks.
    cpu.cr0 |= 1n << 18n;
    cpu.gpr.set(c.input.gpr);
    cpu.rip = c.input.rip;
    cpu.rflags = c.input.rflags;
    const x = cpu.xsaveArea;
    x.set(c.input.xmm, 160);
    const xv = new DataView(x.buffer, x.byteOffset);
    xv.setUint32(24, c.input.mxcsr, true);
    xv.setUint16(0, c.input.fcw, true);
    xv.setUint16(2, 0, true); // FSW: clear after the harness's FNINIT
    x[512] |= 2; // XSTATE_BV: SSE state present
    if (HAS_AVX) {
      x.set(c.input.ymmh, this.#ymmOffset(cpu));
      x[512] |= 4; // and AVX state
    }
    if (HAS_AVX512) {
      // Opmask, ZMM_Hi256 and Hi16_ZMM (XSAVE components 5, 6, 7).
      x.set(c.input.k, cpu.cpuid(0xd, 5)[1]);
      x.set(c.input.zmmh, cpu.cpuid(0xd, 6)[1]);
      x.set(c.input.zmmHi16, cpu.cpuid(0xd, 7)[1]);
      x[512] |= 0xe0;
    }
    cpu.dirty = 0;
    return cpu;
  }

  /** Where the upper ymm halves are in the XSAVE area (CPUID.(EAX=0DH,ECX=2):EBX). */
  #ymmOffset(cpu: TestCpu): number {
    return cpu.cpuid(0xd, 2)[1];
  }

  /** An AVX-512 state component's bytes (zeros when not in use or not compared). */
  #component(cpu: TestCpu, i: number, size: number): Uint8Array {
    const x = cpu.xsaveArea;
    if (!HAS_AVX512 || !(x[512] & (1 << i))) return new Uint8Array(size);
    const at = cpu.cpuid(0xd, i)[1];
    return x.slice(at, at + size);
  }

  /** The state and outcome after the executor ran. */
  outcome(cpu: TestCpu, vector: number, errorCode: number, cr2: bigint): Outcome {
    const m = this.mem.bytes;
    const x = cpu.xsaveArea;
    // A component whose XSTATE_BV bit is clear is in its initial state: zeros.
    const bv = x[512];
    const ymm = this.#ymmOffset(cpu);
    let stray = 0;
    const half = LAYOUT.data + 4096 - LAYOUT.buf;
    for (let a = LAYOUT.data; a < LAYOUT.buf; a++) if (m[a] !== LAYOUT.pattern) stray++;
    for (let a = LAYOUT.data2Phys + LAYOUT.bufLen - half; a < LAYOUT.data2Phys + 4096; a++) {
      if (m[a] !== LAYOUT.pattern) stray++;
    }
    const mem = new Uint8Array(LAYOUT.bufLen);
    mem.set(m.subarray(LAYOUT.buf, LAYOUT.buf + half));
    mem.set(m.subarray(LAYOUT.data2Phys, LAYOUT.data2Phys + LAYOUT.bufLen - half), half);
    return {
      vector,
      errorCode,
      faultAddr: cr2,
      stray,
      state: {
        gpr: cpu.gpr.slice(),
        rflags: cpu.rflags,
        rip: cpu.rip,
        xmm: bv & 2 ? x.slice(160, 160 + 256) : new Uint8Array(256),
        ymmh: HAS_AVX && bv & 4 ? x.slice(ymm, ymm + 256) : new Uint8Array(256),
        zmmh: this.#component(cpu, 6, 512),
        zmmHi16: this.#component(cpu, 7, 1024),
        k: this.#component(cpu, 5, 64),
        mxcsr: new DataView(x.buffer, x.byteOffset).getUint32(24, true),
        fcw: new DataView(x.buffer, x.byteOffset).getUint16(0, true),
        fsw: new DataView(x.buffer, x.byteOffset).getUint16(2, true),
        mem,
      },
    };
  }
}

let guest: Guest | null = null;
/** Whether ymm state is loaded and compared (harness.c does so where the CPU has AVX). */
const HAS_AVX = hostHas("avx");
/** Whether zmm0-31 and k0-k7 are loaded and compared (harness.c: AVX-512F and AVX-512VL). */
export const HAS_AVX512: boolean = HAS_AVX && hostHas("avx512f") && hostHas("avx512vl");

/**
 * Runs a case through the executor. A REP string instruction may take
 * several calls (the executor stops after `maxRepIterations` with RIP
 * unchanged, as the CPU does for an interrupt): it is called again until
 * RIP moves on; the end state must be the CPU's all the same.
 */
export function runEmulated(c: Case, emulate: EmulateFn, maxRepIterations?: number): Outcome {
  guest ??= new Guest();
  const cpu = guest.load(c);
  const start = cpu.rip;
  for (let step = 0; step < 10000; step++) {
    let r: StepResult;
    try {
      r = emulate(cpu, guest.mem, maxRepIterations ? { maxRepIterations } : undefined);
    } catch (e) {
      return {
        ...guest.outcome(cpu, -1, 0, 0n),
        problem: `the executor threw: ${(e as Error).stack ?? e}`,
      };
    }
    if (r.kind === "unsupported") {
      return { ...guest.outcome(cpu, -1, 0, 0n), problem: `unsupported: ${r.message}` };
    }
    if (r.kind === "exception") {
      const x = r.exception;
      // After a stop part-way (RF set, as for an interrupt there), RF stays set until the
      // instruction completes: a fault in a later call leaves it, unlike the CPU's single run.
      if (step > 0) cpu.rflags &= ~FLAG.RF;
      return dirtyCheck(c, cpu, guest.outcome(cpu, x.vector, x.errorCode ?? 0, x.cr2 ?? 0n));
    }
    if (cpu.rip !== start || !r.insn.rep) break;
  }
  // Natively the instruction is followed by a way back to the harness, and a taken branch
  // finds another one LAYOUT.taken bytes further; anywhere else the CPU goes on to fetch
  // there and faults (a branch to an unmapped page, or one whose target the CPU truncated).
  // The executor's next step is that fetch.
  const next = BigInt(LAYOUT.code + c.codeOffset + c.code.length);
  if (cpu.rip !== next && cpu.rip !== next + BigInt(LAYOUT.taken)) {
    let r: StepResult;
    try {
      r = emulate(cpu, guest.mem);
    } catch (e) {
      return {
        ...guest.outcome(cpu, -1, 0, 0n),
        problem: `the executor threw: ${(e as Error).stack ?? e}`,
      };
    }
    if (r.kind === "exception") {
      const x = r.exception;
      return dirtyCheck(c, cpu, guest.outcome(cpu, x.vector, x.errorCode ?? 0, x.cr2 ?? 0n));
    }
    return {
      ...guest.outcome(cpu, -1, 0, 0n),
      problem: `execution went on at ${cpu.rip.toString(16)} (the CPU would fault fetching there)`,
    };
  }
  return dirtyCheck(c, cpu, guest.outcome(cpu, -1, 0, 0n));
}

function differ(a: ArrayLike<unknown>, b: ArrayLike<unknown>): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return true;
  return false;
}

/** Notes state that changed without its DIRTY bit (the adapter would not write it back). */
function dirtyCheck(c: Case, cpu: TestCpu, o: Outcome): Outcome {
  const i = c.input, s = o.state, missing: string[] = [];
  if (differ(i.gpr, s.gpr) && !(cpu.dirty & DIRTY.gpr)) missing.push("gpr");
  if ((i.rip !== s.rip || i.rflags !== s.rflags) && !(cpu.dirty & DIRTY.rip)) missing.push("rip");
  const ext = differ(i.xmm, s.xmm) || differ(i.ymmh, s.ymmh) || differ(i.zmmh, s.zmmh) ||
    differ(i.zmmHi16, s.zmmHi16) || differ(i.k, s.k) || i.mxcsr !== s.mxcsr ||
    i.fcw !== s.fcw || s.fsw !== 0;
  if (ext && !(cpu.dirty & DIRTY.extended)) missing.push("extended");
  if (missing.length > 0) o.notDirty = missing;
  return o;
}

/** This host's CPU vendor ("GenuineIntel", "AuthenticAMD", ...) from /proc/cpuinfo. */
export function hostVendor(): string {
  try {
    const m = /^vendor_id\s*:\s*(\S+)/m.exec(Deno.readTextFileSync("/proc/cpuinfo"));
    return m ? m[1] : "unknown";
  } catch {
    return "unknown";
  }
}

/** Whether this host's CPU has a feature flag (as /proc/cpuinfo spells it, e.g. "sse4_2"). */
export function hostHas(flag: string): boolean {
  try {
    const m = /^flags\s*:(.*)$/m.exec(Deno.readTextFileSync("/proc/cpuinfo"));
    return m ? m[1].split(/\s+/).includes(flag) : false;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// Random inputs

/** A small seeded generator (splitmix32-style), reproducible from its seed. */
export class Rng {
  #s: number;

  constructor(seed: number) {
    this.#s = seed >>> 0;
  }

  /** A uniform 32-bit value. */
  u32(): number {
    this.#s = (this.#s + 0x9e3779b9) >>> 0;
    let z = this.#s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 0x100000000) * n);
  }

  /** A uniform 64-bit value. */
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }

  /** One of the items. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** Random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

/** The mask of a width in bits. */
export function maskOf(bits: number): bigint {
  return (1n << BigInt(bits)) - 1n;
}

/** The edge values of a width: zero, one, the sign boundary and the all-ones end. */
export function edgeValues(bits: number): bigint[] {
  const m = maskOf(bits);
  const half = 1n << BigInt(bits - 1);
  return [0n, 1n, 2n, half - 1n, half, half + 1n, m - 1n, m];
}

/** A value interesting at some width: an edge of a random width or random bits. */
export function interesting(rng: Rng): bigint {
  const r = rng.int(8);
  if (r < 3) {
    const bits = rng.pick([8, 16, 32, 64]);
    let v = rng.pick(edgeValues(bits));
    // What lies above the edge: zeros, ones (sign-extended looking) or noise.
    const above = ~maskOf(bits) & maskOf(64);
    const up = rng.int(3);
    if (up === 1) v |= above;
    else if (up === 2) v |= rng.u64() & above;
    return v;
  }
  if (r === 3) return BigInt(rng.int(80)); // small: counts, bit numbers
  if (r === 4) return maskOf(64) - BigInt(rng.int(80)); // small negative
  if (r === 5) return rng.u64() & rng.u64(); // sparse bits
  return rng.u64();
}

/** Random flags: any of the arithmetic flags, DF sometimes (IF is always set at CPL3). */
export function randomFlags(rng: Rng): bigint {
  let f = 0x202n;
  f |= BigInt(rng.u32()) & ARITH_FLAGS;
  if (rng.chance(0.25)) f |= FLAG.DF;
  return f;
}

function fillXmm(rng: Rng, xmm: Uint8Array): void {
  const view = new DataView(xmm.buffer, xmm.byteOffset, xmm.byteLength);
  for (let r = 0; r < 16; r++) {
    const kind = rng.int(6);
    if (kind === 0 && r > 0) {
      xmm.copyWithin(r * 16, (r - 1) * 16, r * 16); // equal neighbours: pcmpeq hits
      continue;
    }
    const lane = rng.pick([1, 2, 4, 8]);
    for (let at = 0; at < 16; at += lane) {
      const bits = lane * 8;
      let v = rng.chance(0.5) ? rng.pick(edgeValues(bits)) : rng.u64() & maskOf(bits);
      if (kind === 1) v = 0n;
      for (let b = 0; b < lane; b++) {
        view.setUint8(r * 16 + at + b, Number((v >> BigInt(8 * b)) & 0xffn));
      }
    }
  }
}

function fillMem(rng: Rng, mem: Uint8Array): void {
  const view = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
  for (let at = 0; at < mem.length; at += 8) {
    view.setBigUint64(at, interesting(rng), true);
  }
}

// ---------------------------------------------------------------------------
// Operands of an assembly line

const GPR_BY_NAME = new Map<string, { index: number; bits: number; shift: number }>();
{
  const legacy8 = ["al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil"];
  const legacy16 = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"];
  for (let i = 0; i < 16; i++) {
    GPR_BY_NAME.set(GPR_NAMES[i], { index: i, bits: 64, shift: 0 });
    if (i < 8) {
      GPR_BY_NAME.set("e" + GPR_NAMES[i].slice(1), { index: i, bits: 32, shift: 0 });
      GPR_BY_NAME.set(legacy16[i], { index: i, bits: 16, shift: 0 });
      GPR_BY_NAME.set(legacy8[i], { index: i, bits: 8, shift: 0 });
    } else {
      GPR_BY_NAME.set(`r${i}d`, { index: i, bits: 32, shift: 0 });
      GPR_BY_NAME.set(`r${i}w`, { index: i, bits: 16, shift: 0 });
      GPR_BY_NAME.set(`r${i}b`, { index: i, bits: 8, shift: 0 });
    }
  }
  ["ah", "ch", "dh", "bh"].forEach((n, i) => GPR_BY_NAME.set(n, { index: i, bits: 8, shift: 8 }));
}

/** An operand of an assembly line that inputs can be chosen for. */
export type Slot =
  | { kind: "gpr"; index: number; bits: number; shift: number }
  | { kind: "xmm"; index: number; bytes: number }
  | { kind: "mem"; bits: number };

/** A memory operand: base + index * scale + disp, with the registers named. */
export interface MemRef {
  base: number;
  index: number;
  scale: number;
  disp: number;
  /** Bytes accessed, 0 when the line does not say (and no register operand does). */
  size: number;
  /** 32-bit addressing ([edi]). */
  addr32: boolean;
}

/** What an assembly line's operands are. */
export interface Operands {
  slots: Slot[];
  mem: MemRef | null;
}

const PTR_SIZE: Record<string, number> = {
  byte: 1,
  word: 2,
  dword: 4,
  qword: 8,
  xmmword: 16,
  oword: 16,
  ymmword: 32,
  zmmword: 64,
};

/** Parses the operands of an Intel-syntax line (registers, at most one memory operand). */
export function parseOperands(line: string): Operands {
  const m = /^\s*(?:(?:lock|rep|repe|repz|repne|repnz)\s+)*\S+\s*(.*)$/.exec(
    line.replace(/\{\w+\}\s*/g, ""),
  );
  const rest = m ? m[1] : "";
  const slots: Slot[] = [];
  let mem: MemRef | null = null;
  if (rest === "" || line.trim().startsWith(".")) return { slots, mem };
  for (const raw of rest.split(",")) {
    const op = raw.trim().toLowerCase();
    const br = /^(?:(\w+)\s+ptr\s+)?(?:\w+:)?\[(.*)\]$/.exec(op);
    if (br) {
      const ref: MemRef = {
        base: -1,
        index: -1,
        scale: 1,
        disp: 0,
        size: br[1] ? PTR_SIZE[br[1]] ?? 0 : 0,
        addr32: false,
      };
      for (const t of br[2].replace(/-/g, "+-").split("+").map((s) => s.trim()).filter(Boolean)) {
        const sc = /^(\w+)\*(\d)$/.exec(t);
        const reg = GPR_BY_NAME.get(sc ? sc[1] : t);
        if (reg) {
          if (reg.bits === 32) ref.addr32 = true;
          if (sc || ref.base >= 0) {
            ref.index = reg.index;
            ref.scale = sc ? Number(sc[2]) : 1;
          } else ref.base = reg.index;
        } else if (/^-?(0x[0-9a-f]+|\d+)$/.test(t)) {
          ref.disp += t.startsWith("-") ? -Number(t.slice(1)) : Number(t);
        } else if (t !== "rip") throw new Error(`cannot parse memory operand ${op} in ${line}`);
      }
      mem = ref;
      slots.push({ kind: "mem", bits: ref.size * 8 });
      continue;
    }
    const reg = GPR_BY_NAME.get(op);
    if (reg) slots.push({ kind: "gpr", ...reg });
    const x = /^([xyz])mm(\d+)$/.exec(op);
    if (x) {
      slots.push({
        kind: "xmm",
        index: Number(x[2]),
        bytes: x[1] === "z" ? 64 : x[1] === "y" ? 32 : 16,
      });
    }
  }
  // A memory operand without "ptr" takes its size from a register operand.
  if (mem && mem.size === 0) {
    const r = slots.find((s) => s.kind !== "mem");
    if (r) mem.size = r.kind === "xmm" ? r.bytes : r.bits / 8;
    const ms = slots.find((s) => s.kind === "mem");
    if (ms && ms.kind === "mem") ms.bits = mem.size * 8;
  }
  return { slots, mem };
}

/** Offset into the buffer of a memory operand, given the registers. */
export function memOffset(ref: MemRef, gpr: BigUint64Array): number {
  let ea = BigInt(ref.disp);
  if (ref.base >= 0) ea += gpr[ref.base];
  if (ref.index >= 0) ea += gpr[ref.index] * BigInt(ref.scale);
  ea &= ref.addr32 ? maskOf(32) : maskOf(64);
  return Number(ea - BigInt(LAYOUT.buf));
}

/**
 * Points a memory operand at `offset` in the buffer: the base register gets
 * what is left after a small index and the displacement.
 */
export function placeMem(ref: MemRef, gpr: BigUint64Array, offset: number, rng: Rng): void {
  let idx = 0n;
  if (ref.index >= 0 && ref.index !== ref.base) {
    idx = BigInt(rng.int(4));
    gpr[ref.index] = idx;
  }
  if (ref.base < 0) return; // [index*scale+disp] or [rip+disp]: lea only, left as is
  const base = BigInt(LAYOUT.buf + offset - ref.disp) - idx * BigInt(ref.scale);
  gpr[ref.base] = base;
}

/** Sets a register or memory slot to a value (other bits of the register kept). */
export function setSlot(s: State, slot: Slot, v: bigint, ops: Operands): void {
  if (slot.kind === "gpr") {
    const m = maskOf(slot.bits) << BigInt(slot.shift);
    s.gpr[slot.index] = (s.gpr[slot.index] & ~m) | ((v << BigInt(slot.shift)) & m);
  } else if (slot.kind === "mem" && ops.mem) {
    const at = memOffset(ops.mem, s.gpr);
    for (let b = 0; b < slot.bits / 8; b++) s.mem[at + b] = Number((v >> BigInt(8 * b)) & 0xffn);
  }
}

/** How a family builds the cases of one assembly line. */
export interface Template {
  /** One instruction, Intel syntax (or `.byte ...`). */
  asm: string;
  /** Random cases (default 24). */
  random?: number;
  /** Also the cross product of edge values over the operands (default true). */
  edges?: boolean;
  /** Run every case with CF=0 and with CF=1 (instructions that read CF). */
  carry?: boolean;
  /** RFLAGS bits not compared, with `note` saying why. */
  ignoreFlags?: bigint;
  /** Why (cites the SDM). */
  note?: string;
  /** Adjusts each case's input after the default filling (pointers, counts); `code` is the instruction. */
  setup?: (s: State, rng: Rng, ops: Operands, code: Uint8Array) => void;
  /**
   * For a RIP-relative operand written as `[rip+0x11223344]`: the buffer
   * offset it is to reach; the displacement is patched in after assembly.
   */
  ripTarget?: number;
  /** Memory operand offsets: "aligned" to its size or "any" (default: mostly aligned). */
  align?: "aligned" | "any";
  /** Where the instruction sits in the code page (default 0). */
  codeOffset?: number;
}

/** Builds the cases of the templates, given their assembled bytes. */
export function makeCases(
  templates: readonly Template[],
  codes: readonly Uint8Array[],
  rng: Rng,
): Case[] {
  const cases: Case[] = [];
  templates.forEach((t, ti) => {
    const ops = parseOperands(t.asm);
    let code = codes[ti];
    if (t.ripTarget !== undefined) {
      code = code.slice();
      const at = code.findIndex((_, i) =>
        code[i] === 0x44 && code[i + 1] === 0x33 && code[i + 2] === 0x22 && code[i + 3] === 0x11
      );
      if (at < 0) throw new Error(`${t.asm}: no [rip+0x11223344] to patch`);
      const next = LAYOUT.code + (t.codeOffset ?? 0) + code.length;
      new DataView(code.buffer).setInt32(at, LAYOUT.buf + t.ripTarget - next, true);
      // For the input generator the operand is now simply the buffer at ripTarget.
      if (ops.mem) ops.mem = { ...ops.mem, base: -1, index: -1, disp: LAYOUT.buf + t.ripTarget };
    }
    const inputs: State[] = [];
    const fresh = (): State => {
      const s = emptyState();
      for (let i = 0; i < 16; i++) s.gpr[i] = interesting(rng);
      s.gpr[4] = LAYOUT.rsp;
      s.rflags = randomFlags(rng);
      fillXmm(rng, s.xmm);
      if (HAS_AVX) fillXmm(rng, s.ymmh);
      if (HAS_AVX512) {
        fillXmm(rng, s.zmmh.subarray(0, 256));
        fillXmm(rng, s.zmmh.subarray(256));
        for (let q = 0; q < 4; q++) fillXmm(rng, s.zmmHi16.subarray(256 * q, 256 * q + 256));
        // Masks (bits 15:0, what kmovw loads): none, all, a few or random elements.
        for (let k = 0; k < 8; k++) {
          const v = rng.pick([
            0,
            0xffff,
            1,
            0x8000,
            0x00ff,
            rng.u32() & 0xffff,
            rng.u32() & 0xffff,
          ]);
          s.k[8 * k] = v & 0xff;
          s.k[8 * k + 1] = v >> 8;
        }
      }
      fillMem(rng, s.mem);
      if (/^\s*\.byte/.test(t.asm)) {
        // Raw bytes: whatever memory operand they have goes through rdi, rsi or rbx.
        for (const r of [3, 6, 7]) s.gpr[r] = BigInt(LAYOUT.buf + 0x40 + 8 * rng.int(16));
      }
      if (ops.mem) {
        const size = Math.max(1, ops.mem.size);
        let off = rng.int(LAYOUT.bufLen - Math.max(16, size) + 1);
        if (locked || (t.align !== "any" && rng.chance(0.8))) off -= off % size;
        placeMem(ops.mem, s.gpr, off, rng);
      }
      return s;
    };
    // Locked accesses stay aligned: a split lock is slow for everyone on the host (and #AC
    // where split-lock detection is on).
    const locked = /^\s*lock\b/.test(t.asm) || /^\s*xchg\b.*\[/.test(t.asm);
    const valueSlots = ops.slots.filter((s) => s.kind !== "xmm");
    if (t.edges !== false && valueSlots.length > 0) {
      // Every combination of edge values over the first two operands.
      const [a, b] = valueSlots;
      const ea = edgeValues(a.bits);
      const eb = b ? edgeValues(b.bits) : [0n];
      for (const va of ea) {
        for (const vb of eb) {
          const s = fresh();
          setSlot(s, a, va, ops);
          if (b) setSlot(s, b, vb, ops);
          // A register that is also the memory operand's base or index stays a pointer.
          if (
            ops.mem &&
            [a, b].some((x) =>
              x?.kind === "gpr" && (x.index === ops.mem!.base || x.index === ops.mem!.index)
            )
          ) {
            placeMem(ops.mem, s.gpr, rng.int(LAYOUT.bufLen - 16 + 1), rng);
            if (a.kind === "mem") setSlot(s, a, va, ops);
            if (b?.kind === "mem") setSlot(s, b, vb, ops);
          }
          inputs.push(s);
        }
      }
    }
    for (let i = 0; i < (t.random ?? 24); i++) inputs.push(fresh());
    for (const s of inputs) {
      t.setup?.(s, rng, ops, code);
      const variants = t.carry ? [0n, 1n] : [null];
      for (const cf of variants) {
        const input = cloneState(s);
        if (cf !== null) input.rflags = (input.rflags & ~FLAG.CF) | cf;
        input.rip = BigInt(LAYOUT.code + (t.codeOffset ?? 0));
        cases.push({
          text: t.asm,
          code,
          codeOffset: t.codeOffset ?? 0,
          input,
          ignoreFlags: t.ignoreFlags ?? 0n,
          note: t.note,
        });
      }
    }
  });
  return cases;
}

// ---------------------------------------------------------------------------
// Comparison

function hex(v: bigint, digits = 16): string {
  return "0x" + v.toString(16).padStart(digits, "0");
}

function hexBytes(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}

const FLAG_NAMES: [bigint, string][] = [
  [1n << 18n, "AC"],
  [FLAG.RF, "RF"],
  [FLAG.OF, "OF"],
  [FLAG.DF, "DF"],
  [FLAG.SF, "SF"],
  [FLAG.ZF, "ZF"],
  [FLAG.AF, "AF"],
  [FLAG.PF, "PF"],
  [FLAG.CF, "CF"],
];

function flagText(f: bigint): string {
  return FLAG_NAMES.filter(([b]) => f & b).map(([, n]) => n).join(" ") || "-";
}

const VECTOR_NAMES: Record<number, string> = {
  [-1]: "none",
  0: "#DE",
  1: "#DB",
  3: "#BP",
  4: "#OF",
  5: "#BR",
  6: "#UD",
  7: "#NM",
  12: "#SS",
  13: "#GP",
  14: "#PF",
  16: "#MF",
  17: "#AC",
  19: "#XM",
};

/** The differences between what the CPU did (`want`) and what the emulator did (`got`). */
export function compareOutcomes(c: Case, want: Outcome, got: Outcome): string[] {
  const diffs: string[] = [];
  if (got.problem) return [got.problem];
  if (got.notDirty) {
    diffs.push(
      `changed without its DIRTY bit (the KVM adapter would not write it back): ` +
        got.notDirty.join(", "),
    );
  }
  if (want.vector !== got.vector) {
    const what = (o: Outcome) =>
      `${VECTOR_NAMES[o.vector] ?? o.vector}` +
      (o.vector >= 0 ? `(${o.errorCode})` : "") +
      (o.vector === 14 ? ` at ${hex(o.faultAddr)}` : "") +
      ` with rip ${hex(o.state.rip)}`;
    diffs.push(`exception: CPU ${what(want)}, emulator ${what(got)}`);
    return diffs;
  }
  if (want.vector >= 0) {
    // A fault leaves the state as it was: only the exception itself is compared.
    if ([8, 10, 11, 12, 13, 14, 17].includes(want.vector) && want.errorCode !== got.errorCode) {
      diffs.push(`error code: CPU ${want.errorCode}, emulator ${got.errorCode}`);
    }
    if (want.vector === 14 && want.faultAddr !== got.faultAddr) {
      diffs.push(`CR2: CPU ${hex(want.faultAddr)}, emulator ${hex(got.faultAddr)}`);
    }
  }
  const w = want.state, g = got.state;
  for (let i = 0; i < 16; i++) {
    if (w.gpr[i] !== g.gpr[i]) {
      diffs.push(`${GPR_NAMES[i]}: CPU ${hex(w.gpr[i])}, emulator ${hex(g.gpr[i])}`);
    }
  }
  const keep = ~c.ignoreFlags & maskOf(64);
  if ((w.rflags & keep) !== (g.rflags & keep)) {
    const d = (w.rflags ^ g.rflags) & keep;
    diffs.push(
      `rflags: CPU ${hex(w.rflags, 4)} [${flagText(w.rflags)}], emulator ${hex(g.rflags, 4)} ` +
        `[${flagText(g.rflags)}], differ in ${flagText(d) === "-" ? hex(d, 4) : flagText(d)}`,
    );
  }
  if (w.rip !== g.rip) diffs.push(`rip: CPU ${hex(w.rip)}, emulator ${hex(g.rip)}`);
  for (let r = 0; r < 16; r++) {
    const a = w.xmm.subarray(r * 16, r * 16 + 16), b = g.xmm.subarray(r * 16, r * 16 + 16);
    if (a.some((x, i) => x !== b[i])) {
      diffs.push(`xmm${r}: CPU ${hexBytes(a)}, emulator ${hexBytes(b)}`);
    }
  }
  if (HAS_AVX) {
    for (let r = 0; r < 16; r++) {
      const a = w.ymmh.subarray(r * 16, r * 16 + 16), b = g.ymmh.subarray(r * 16, r * 16 + 16);
      if (a.some((x, i) => x !== b[i])) {
        diffs.push(`ymm${r}[255:128]: CPU ${hexBytes(a)}, emulator ${hexBytes(b)}`);
      }
    }
  }
  if (HAS_AVX512) {
    const cmp = (
      name: (r: number) => string,
      a: Uint8Array,
      b: Uint8Array,
      n: number,
      first: number,
    ) => {
      for (let r = 0; r * n < a.length; r++) {
        const x = a.subarray(r * n, r * n + n), y = b.subarray(r * n, r * n + n);
        if (x.some((v, i) => v !== y[i])) {
          diffs.push(`${name(r + first)}: CPU ${hexBytes(x)}, emulator ${hexBytes(y)}`);
        }
      }
    };
    cmp((r) => `zmm${r}[511:256]`, w.zmmh, g.zmmh, 32, 0);
    cmp((r) => `zmm${r}`, w.zmmHi16, g.zmmHi16, 64, 16);
    cmp((r) => `k${r}`, w.k, g.k, 8, 0);
  }
  if (w.fcw !== g.fcw) {
    diffs.push(`x87 FCW: CPU ${hex(BigInt(w.fcw), 4)}, emulator ${hex(BigInt(g.fcw), 4)}`);
  }
  if (w.fsw !== g.fsw) {
    diffs.push(`x87 FSW: CPU ${hex(BigInt(w.fsw), 4)}, emulator ${hex(BigInt(g.fsw), 4)}`);
  }
  if (w.mxcsr !== g.mxcsr) {
    diffs.push(`mxcsr: CPU ${hex(BigInt(w.mxcsr), 8)}, emulator ${hex(BigInt(g.mxcsr), 8)}`);
  }
  const bad: number[] = [];
  for (let i = 0; i < LAYOUT.bufLen; i++) if (w.mem[i] !== g.mem[i]) bad.push(i);
  if (bad.length > 0) {
    const lo = bad[0] & ~7, hi = Math.min(LAYOUT.bufLen, (bad[bad.length - 1] | 7) + 1);
    diffs.push(
      `memory ${hex(BigInt(LAYOUT.buf + lo), 5)}..${hex(BigInt(LAYOUT.buf + hi), 5)}: ` +
        `CPU ${hexBytes(w.mem.subarray(lo, Math.min(hi, lo + 32)))}, ` +
        `emulator ${hexBytes(g.mem.subarray(lo, Math.min(hi, lo + 32)))}`,
    );
  }
  if (want.stray !== got.stray) {
    diffs.push(`bytes written outside the buffer: CPU ${want.stray}, emulator ${got.stray}`);
  }
  return diffs;
}

/** A failing case, printed so that it can be rerun by hand. */
export function describeCase(c: Case, diffs: readonly string[]): string {
  const s = c.input;
  const regs = GPR_NAMES.map((n, i) => `${n}=${hex(s.gpr[i])}`);
  const lines = [
    `${c.text}  [${hexBytes(c.code)}]${c.note ? `  (${c.note})` : ""}`,
    `  in:  ${regs.slice(0, 4).join(" ")}`,
    `       ${regs.slice(4, 8).join(" ")}`,
    `       ${regs.slice(8, 12).join(" ")}`,
    `       ${regs.slice(12).join(" ")}`,
    `       rflags=${hex(s.rflags, 4)} [${flagText(s.rflags)}]`,
  ];
  if (HAS_AVX512 && /\{k\d\}/.test(c.text)) {
    const k = Array.from({ length: 8 }, (_, i) => s.k[8 * i] | (s.k[8 * i + 1] << 8));
    lines.push(`       ${k.map((v, i) => `k${i}=${hex(BigInt(v), 4)}`).join(" ")}`);
  }
  const ops = parseOperands(c.text);
  for (const slot of ops.slots) {
    if (slot.kind === "xmm") {
      lines.push(
        `       xmm${slot.index}=${
          hexBytes(s.xmm.subarray(slot.index * 16, slot.index * 16 + 16))
        }`,
      );
    }
  }
  if (ops.mem && ops.mem.base >= 0) {
    const at = memOffset(ops.mem, s.gpr);
    if (at >= 0 && at < LAYOUT.bufLen) {
      lines.push(
        `       mem[${hex(BigInt(LAYOUT.buf + at), 5)}]=` +
          hexBytes(s.mem.subarray(at, Math.min(LAYOUT.bufLen, at + Math.max(ops.mem.size, 8)))),
      );
    }
  }
  for (const d of diffs) lines.push(`  ${d}`);
  return lines.join("\n");
}

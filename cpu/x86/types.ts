/**
 * The contracts between the parts of dhyve's x86 instruction emulator:
 * the decoder's typed instruction, the architectural CPU state the executor
 * works on, the guest-physical memory it reaches through the page walker,
 * and the result of emulating one instruction.
 *
 * Everything under cpu/x86/ is free of KVM, FFI and Deno APIs: the KVM
 * adapter (cpu/fallback.ts) implements {@linkcode CpuState} and
 * {@linkcode PhysicalMemory} over a vCPU, and the unit tests implement them
 * over plain arrays. That keeps the door open to running whole stretches of
 * guest code in dhyve later.
 *
 * Sources: Intel SDM Vol. 2 (instruction format, chapter 2; instruction
 * reference, chapters 3-5), Vol. 3A (paging, chapter 4; exceptions,
 * chapter 6), Vol. 1 (XSAVE, chapter 13).
 *
 * @module
 */

/** The processor mode an instruction is decoded in (the default operand size of CS). */
export type Mode = 16 | 32 | 64;

/** Segment register numbers, in the order of the Sreg field of ModRM (SDM Vol. 2, 3.1.1.3). */
export const SEG = Object.freeze({ es: 0, cs: 1, ss: 2, ds: 3, fs: 4, gs: 5 });
/** A segment register number (see {@linkcode SEG}). */
export type SegIndex = 0 | 1 | 2 | 3 | 4 | 5;
/** Segment register names by number. */
export const SEG_NAMES = ["es", "cs", "ss", "ds", "fs", "gs"] as const;

/** General-purpose register numbers (rax = 0 ... r15 = 15), as encoded with REX. */
export const GPR = Object.freeze({
  rax: 0,
  rcx: 1,
  rdx: 2,
  rbx: 3,
  rsp: 4,
  rbp: 5,
  rsi: 6,
  rdi: 7,
  r8: 8,
  r9: 9,
  r10: 10,
  r11: 11,
  r12: 12,
  r13: 13,
  r14: 14,
  r15: 15,
});

/** The pseudo base register of a RIP-relative memory operand. */
export const RIP_BASE = 16;
/** "No register" in a memory operand's base or index. */
export const NO_REG = -1;

/** Register files an operand can name. */
export type RegClass =
  | "gpr"
  | "seg"
  | "cr"
  | "dr"
  | "mmx"
  | "xmm"
  | "ymm"
  | "zmm"
  | "st"
  | "k"
  | "bnd";

/** A register operand. */
export interface RegOperand {
  readonly kind: "reg";
  readonly cls: RegClass;
  /** Register number in its file (for "gpr" 0-15, see {@linkcode GPR}). */
  readonly index: number;
  /** Width in bytes as the instruction uses it (gpr: 1, 2, 4 or 8; xmm: 16; ...). */
  readonly size: number;
  /** AH, CH, DH or BH: a byte register numbered 4-7 without a REX prefix. */
  readonly high8?: boolean;
}

/** A memory operand: seg:[base + index * scale + disp]. */
export interface MemOperand {
  readonly kind: "mem";
  /** The segment used (the override if any, else the default: SS for rsp/rbp bases, else DS). */
  readonly seg: SegIndex;
  /** True when a segment-override prefix chose `seg`. */
  readonly segOverride: boolean;
  /** Base register number, {@linkcode RIP_BASE} for RIP-relative, {@linkcode NO_REG} for none. */
  readonly base: number;
  /** Index register number or {@linkcode NO_REG}. */
  readonly index: number;
  readonly scale: 1 | 2 | 4 | 8;
  /** The displacement, sign-extended. */
  readonly disp: bigint;
  /** Bytes accessed (0 where the instruction defines no size, e.g. lea, nop, xsave). */
  readonly size: number;
  /** Address size in bytes (2, 4 or 8). */
  readonly addrSize: 2 | 4 | 8;
}

/** An immediate operand. */
export interface ImmOperand {
  readonly kind: "imm";
  /**
   * The value as the instruction uses it: sign- or zero-extended to `size`
   * bytes, as an unsigned bigint of `size * 8` bits.
   */
  readonly value: bigint;
  /** Width in bytes after extension. */
  readonly size: number;
}

/** A relative branch target, already resolved against the next instruction's address. */
export interface RelOperand {
  readonly kind: "rel";
  /** next RIP + displacement, truncated to the operand size. */
  readonly target: bigint;
}

/** A far pointer (ptr16:16/ptr16:32 of a direct far jmp/call). */
export interface FarOperand {
  readonly kind: "far";
  readonly selector: number;
  readonly offset: bigint;
}

/** Any operand. */
export type Operand = RegOperand | MemOperand | ImmOperand | RelOperand | FarOperand;

/** Which opcode map the instruction's opcode byte is in (SDM Vol. 2, Appendix A). */
export type OpcodeMap = "legacy" | "0f" | "0f38" | "0f3a" | "3dnow" | "xop8" | "xop9" | "xopa";

/** A decoded instruction. */
export interface Instruction {
  /** The mode it was decoded in. */
  readonly mode: Mode;
  /** Its bytes (exactly `length` of them). */
  readonly bytes: Uint8Array;
  /** Length in bytes (1-15). */
  readonly length: number;
  /**
   * The mnemonic in Intel syntax, lower case, without prefixes, as
   * `objdump -d -M intel` names it (e.g. "cmpxchg16b", "movzx", "popcnt").
   */
  readonly mnemonic: string;
  /** Operands in Intel order (destination first). */
  readonly operands: readonly Operand[];
  /** Effective operand size in bytes (2, 4 or 8). */
  readonly opSize: 2 | 4 | 8;
  /** Effective address size in bytes (2, 4 or 8). */
  readonly addrSize: 2 | 4 | 8;
  /** A LOCK prefix (F0) is present. */
  readonly lock: boolean;
  /** The last of F2/F3 when present and not consumed as a mandatory prefix. */
  readonly rep: "rep" | "repne" | null;
  /** The segment-override prefix, if any. */
  readonly segOverride: SegIndex | null;
  /** The REX byte (0x40-0x4f), or 0 without one. */
  readonly rex: number;
  /** VEX/EVEX/XOP information, when the instruction has such a prefix. */
  readonly vex: {
    readonly kind: "vex2" | "vex3" | "evex" | "xop";
    /** Vector length in bits (128, 256 or 512). */
    readonly l: 128 | 256 | 512;
    /** W bit. */
    readonly w: boolean;
    /** The extra source register (vvvv, already inverted). */
    readonly vvvv: number;
  } | null;
  /** The opcode map. */
  readonly map: OpcodeMap;
  /** The opcode byte within its map. */
  readonly opcode: number;
  /** The ModRM byte, or -1 without one. */
  readonly modrm: number;
  /**
   * The mandatory/size prefix that selected this form of a 0F-map
   * instruction (0x66, 0xf2, 0xf3), or 0 for none.
   */
  readonly mandatory: 0 | 0x66 | 0xf2 | 0xf3;
  /** The text form for logs, e.g. "lock cmpxchg16b [rdi+0x10]". */
  readonly text: string;
}

/** Bytes the decoder cannot decode: never guessed, reported with the raw bytes. */
export class DecodeError extends Error {
  /** The bytes looked at (up to 15). */
  readonly bytes: Uint8Array;
  /** Bytes consumed before the decoder gave up. */
  readonly at: number;

  /** Builds the error; the message names the bytes in hex. */
  constructor(bytes: Uint8Array, at: number, why: string) {
    super(
      `cannot decode ${
        Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ")
      }: ${why}`,
    );
    this.name = "DecodeError";
    this.bytes = bytes;
    this.at = at;
  }
}

/** A segment register with its hidden descriptor cache (the same fields as kvm_segment). */
export interface SegmentCache {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}

/** What the executor changed, so the adapter writes back only that. */
export const DIRTY = Object.freeze({
  /** gpr[] */
  gpr: 1 << 0,
  /** rip or rflags */
  rip: 1 << 1,
  /** seg[], tr, ldtr, gdtr, idtr, cr0, cr2, cr3, cr4, cr8, efer */
  sregs: 1 << 2,
  /** The extended (x87/SSE/AVX) state in `extended()` */
  extended: 1 << 3,
  /** xcr0 */
  xcr0: 1 << 4,
});

/**
 * The architectural state of one logical processor, as the executor sees
 * it. The executor sets bits in `dirty` for every part it changes; it
 * changes nothing when the instruction faults.
 */
export interface CpuState {
  /** rax ... r15, full 64 bits each. */
  readonly gpr: BigUint64Array;
  rip: bigint;
  rflags: bigint;
  /** es, cs, ss, ds, fs, gs (indexed by {@linkcode SEG}). */
  readonly seg: SegmentCache[];
  tr: SegmentCache;
  ldtr: SegmentCache;
  gdtr: { base: bigint; limit: number };
  idtr: { base: bigint; limit: number };
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  /** XCR0 (XFEATURE_ENABLED_MASK). */
  xcr0: bigint;
  /**
   * The x87/SSE/AVX state as an XSAVE area in the standard (non-compacted)
   * format (SDM Vol. 1, 13.4): the legacy region (FCW at 0, MXCSR at 24,
   * ST0-7 at 32, XMM0-15 at 160), the XSAVE header at 512 (XSTATE_BV),
   * then each component at the offset CPUID.(EAX=0DH,ECX=i).EBX gives.
   * Loaded on first call (it costs an ioctl); the executor sets
   * `DIRTY.extended` after changing the returned bytes.
   */
  extended(): Uint8Array;
  /** CPUID as the guest sees it: [eax, ebx, ecx, edx]. */
  cpuid(leaf: number, subleaf: number): readonly [number, number, number, number];
  /** RDMSR: undefined for an MSR the vCPU does not have (the executor raises #GP(0)). */
  readMsr(index: number): bigint | undefined;
  /** WRMSR: false when the vCPU refuses the value (the executor raises #GP(0)). */
  writeMsr(index: number, value: bigint): boolean;
  /** Bits of {@linkcode DIRTY}. */
  dirty: number;
}

/**
 * Guest-physical memory. Addresses outside RAM may be MMIO: the adapter
 * routes them to the device buses; `isRam` says which.
 */
export interface PhysicalMemory {
  /** True when [gpa, gpa + length) lies inside one RAM range. */
  isRam(gpa: number, length: number): boolean;
  /** Reads `out.length` bytes at `gpa` (RAM or MMIO) into `out`. */
  read(gpa: number, out: Uint8Array): void;
  /** Writes `data` at `gpa` (RAM or MMIO). */
  write(gpa: number, data: Uint8Array): void;
  /**
   * Atomic compare-exchange of `size` (1, 2, 4, 8 or 16) bytes at `gpa`
   * in RAM, with respect to other vCPUs running natively: if the bytes
   * equal `expected`, they become `desired`. Returns the value found (equal
   * to `expected` when the exchange happened). Little-endian values.
   */
  cmpxchg(gpa: number, size: number, expected: bigint, desired: bigint): bigint;
}

/** An exception the instruction raised, to be delivered to the guest (SDM Vol. 3A, 6.15). */
export interface X86Exception {
  /**
   * Vector: 0 #DE, 1 #DB, 3 #BP, 4 #OF, 6 #UD, 7 #NM, 10 #TS, 11 #NP, 12 #SS, 13 #GP, 14 #PF,
   * 16 #MF, 17 #AC, 19 #XM; any of 0-255 for a {@linkcode X86Exception.software} interrupt.
   */
  readonly vector: number;
  /** The error code, for the vectors that push one (8, 10-14, 17, 21). */
  readonly errorCode?: number;
  /** The faulting linear address, for #PF (becomes CR2 at delivery). */
  readonly cr2?: bigint;
  /**
   * For #DB: the DR6 bits of the condition (e.g. BS, bit 14, for the
   * single-step trap after an instruction run with RFLAGS.TF set), to be
   * ORed into DR6 at delivery (SDM Vol. 3A, 18.2.3).
   */
  readonly dr6?: number;
  /**
   * A software interrupt (INT n, SDM Vol. 2A "INT n/INTO/INT3/INT1"): the
   * instruction completed, RIP points past it, and the event is delivered
   * through IDT entry `vector` as an interrupt, whatever the vector: no
   * error code is pushed (`int 14` is not a #PF) and no exception class
   * applies. The gate-DPL check of a software interrupt (gate DPL >= CPL)
   * was made by the executor. Absent for exceptions, including the software
   * exceptions of int3 (#BP), into (#OF) and int1 (#DB).
   */
  readonly software?: boolean;
}

/**
 * What emulating one instruction did:
 * - "ok": executed; state and RIP updated. `shadow`, when present, says the
 *   instruction leaves an interrupt shadow (SDM Vol. 3A, 6.8.3; Vol. 2B,
 *   MOV, POP, STI): "mov-ss" after mov ss or pop ss (interrupts, NMIs and
 *   debug exceptions, the single-step trap included, are held off until the
 *   next instruction completes; the executor then reports no single-step
 *   #DB for this one), "sti" after sti that set IF (it was 0): maskable
 *   interrupts are held off until the next instruction completes. The
 *   adapter passes it on to the vCPU (KVM: kvm_vcpu_events.interrupt.shadow
 *   = KVM_X86_SHADOW_INT_MOV_SS (1) or KVM_X86_SHADOW_INT_STI (2), with
 *   KVM_VCPUEVENT_VALID_SHADOW); absent means no shadow, also none left from
 *   before this instruction.
 * - "exception": nothing changed (for a fault) or RIP moved past it (for a
 *   trap such as int3's #BP); the exception is to be delivered.
 * - "unsupported": the instruction decoded but the executor does not
 *   implement it (or the bytes did not decode); nothing changed.
 */
export type StepResult =
  | { readonly kind: "ok"; readonly insn: Instruction; readonly shadow?: "mov-ss" | "sti" }
  | { readonly kind: "exception"; readonly exception: X86Exception; readonly insn?: Instruction }
  | { readonly kind: "unsupported"; readonly message: string; readonly insn?: Instruction };

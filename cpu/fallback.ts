/**
 * The KVM side of dhyve's fallback instruction emulator. When KVM's own
 * emulator gives up on an instruction (KVM_EXIT_INTERNAL_ERROR, suberror
 * KVM_INTERNAL_ERROR_EMULATION; api.rst 5, "KVM_EXIT_INTERNAL_ERROR"), the
 * vCPU thread decodes and executes it itself with the executor of
 * cpu/x86/exec.ts (imported statically: dhyve has no other), writes back
 * only the state that changed and re-enters the guest.
 *
 * - {@linkcode KvmCpuState}: the executor's {@linkcode CpuState} over a
 *   vCPU. General and segment/control registers are loaded eagerly at each
 *   fallback; the XSAVE area and XCR0 only when the executor asks (each
 *   costs an ioctl). Where KVM has KVM_CAP_SYNC_REGS (api.rst 5,
 *   "kvm_valid_regs"/"kvm_dirty_regs"), the first fallback asks KVM to copy
 *   kvm_regs, kvm_sregs and kvm_vcpu_events into the kvm_run page at every
 *   exit from then on, and to take them back from it at the next KVM_RUN:
 *   later fallbacks need no ioctl at all for them. That matters here: on
 *   the nested paravirtual KVM of the development machines each vCPU ioctl
 *   costs about 7 us, as much as a whole port-I/O exit. Without the capability, KVM_GET/SET_REGS and
 *   KVM_GET/SET_SREGS do the same job.
 * - {@linkcode GuestPhysicalMemory}: the executor's {@linkcode PhysicalMemory}
 *   over guest RAM (every address bounds-checked through GuestMemory) with
 *   everything else routed to the MMIO bus, and compare-exchange on RAM
 *   through libatomic (cpu/atomic.ts) so it is atomic against the vCPUs
 *   running natively.
 * - {@linkcode FallbackEmulator}: one emulation failure in, an outcome out:
 *   resumed (state written back, any exception or software interrupt
 *   queued for delivery) or fatal (a message for the VM's error exit). It
 *   never throws.
 *
 * Exceptions go to the guest through kvm_vcpu_events (api.rst 4.32
 * KVM_SET_VCPU_EVENTS): exception.injected = 1 with the vector and error
 * code. For #PF, CR2 is written through kvm_sregs first, which KVM applies
 * before the events (sync_regs() takes regs, then sregs, then events; with
 * ioctls dhyve calls them in that order). KVM_CAP_EXCEPTION_PAYLOAD would
 * carry CR2 in the event instead, but enabling it changes how every
 * KVM_GET_VCPU_EVENTS reports exceptions (pending apart from injected), for
 * all of dhyve; CR2 through sregs is what KVM itself does without it. For
 * the same reason the DR6 bits of a single-step #DB go through
 * KVM_SET_DEBUGREGS. The software interrupt of `int n` is injected as an
 * interrupt (kvm_vcpu_events.interrupt), see {@linkcode FallbackEmulator}.
 *
 * Sources: Documentation/virt/kvm/api.rst; Intel SDM Vol. 3A 6.15
 * (exception classes, Table 6-5), Vol. 1 13.4 (XSAVE area), Vol. 2A CPUID;
 * arch/x86/kvm/x86.c (handle_emulation_failure, kvm_multiple_exception,
 * sync_regs) and arch/x86/kvm/cpuid.c (kvm_cpuid) for KVM's behaviour.
 *
 * @module
 */
import { SyscallCompletion } from "./syscall_fix.ts";
import {
  checkExtension,
  type CpuidEntry,
  getDebugregsInto,
  getFpu,
  getMsrs,
  getRegsRaw,
  getSregsRaw,
  getVcpuEvents,
  getXcrs,
  getXsave,
  getXsave2,
  type RunPage,
  setDebugregs,
  setFpu,
  setMsrs,
  setRegsRaw,
  setSregsRaw,
  setVcpuEvents,
  setXcrs,
  setXsave,
} from "./kvm.ts";
import {
  KVM_CAP,
  KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
  KVM_DEBUGREGS_STRUCT,
  KVM_FPU_STRUCT,
  KVM_REGS_STRUCT,
  KVM_RUN_STRUCT,
  KVM_SEGMENT_STRUCT,
  KVM_SREGS_STRUCT,
  KVM_SYNC_X86,
  KVM_VCPU_EVENTS_STRUCT,
  KVM_VCPUEVENT_VALID_SHADOW,
  KVM_XSAVE_STRUCT,
  XCR_XFEATURE_ENABLED_MASK,
} from "./kvm_abi.ts";
import type { HostAtomics } from "./atomic.ts";
import type { GuestMemory } from "../lib/guest_memory.ts";
import {
  type CpuState,
  DIRTY,
  type Instruction,
  type PhysicalMemory,
  type SegmentCache,
  type StepResult,
  type X86Exception,
} from "./x86/types.ts";
import { emulate as executor } from "./x86/exec.ts";
import { CR4 } from "./regs.ts";

/** The executor's entry point: `emulate` of cpu/x86/exec.ts, or a stand-in in unit tests. */
export type EmulateFn = (cpu: CpuState, mem: PhysicalMemory) => StepResult;

const O = KVM_RUN_STRUCT.o;
const R = KVM_REGS_STRUCT;
const S = KVM_SREGS_STRUCT.o;
const SEGO = KVM_SEGMENT_STRUCT.o;
const EV = KVM_VCPU_EVENTS_STRUCT.o;
/** kvm_vcpu_events.interrupt.shadow values (arch/x86/include/uapi/asm/kvm.h). */
const KVM_X86_SHADOW_INT_MOV_SS = 1;
const KVM_X86_SHADOW_INT_STI = 2;

/** kvm_regs u64 slot of each GPR number (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8-r15). */
const KVM_SLOT_OF_GPR = [0, 2, 3, 1, 6, 7, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15];
const RIP_SLOT = R.o.rip / 8;
const RFLAGS_SLOT = R.o.rflags / 8;
/** kvm_sregs offset of each segment register in SEG order (es, cs, ss, ds, fs, gs). */
const SEG_OFFSETS = [S.es, S.cs, S.ss, S.ds, S.fs, S.gs];

/** The sync-regs bits dhyve asks KVM to copy out at every exit once a fallback happened. */
export const SYNC_ALL: number = KVM_SYNC_X86.REGS | KVM_SYNC_X86.SREGS | KVM_SYNC_X86.EVENTS;

/** Exception vector names, for counters and messages (SDM Vol. 3A, Table 6-1). */
export const VECTOR_NAMES: readonly string[] = [
  "#DE",
  "#DB",
  "NMI",
  "#BP",
  "#OF",
  "#BR",
  "#UD",
  "#NM",
  "#DF",
  "#MF(9)",
  "#TS",
  "#NP",
  "#SS",
  "#GP",
  "#PF",
  "#15",
  "#MF",
  "#AC",
  "#MC",
  "#XM",
  "#VE",
  "#CP",
];

function vectorName(v: number): string {
  return VECTOR_NAMES[v] ?? `#${v}`;
}

function hex(v: number | bigint): string {
  return "0x" + v.toString(16);
}

function emptySegment(): SegmentCache {
  return {
    base: 0n,
    limit: 0,
    selector: 0,
    type: 0,
    present: 0,
    dpl: 0,
    db: 0,
    s: 0,
    l: 0,
    g: 0,
    avl: 0,
    unusable: 0,
  };
}

function readSegment(dv: DataView, at: number, s: SegmentCache): void {
  s.base = dv.getBigUint64(at + SEGO.base, true);
  s.limit = dv.getUint32(at + SEGO.limit, true);
  s.selector = dv.getUint16(at + SEGO.selector, true);
  s.type = dv.getUint8(at + SEGO.type);
  s.present = dv.getUint8(at + SEGO.present);
  s.dpl = dv.getUint8(at + SEGO.dpl);
  s.db = dv.getUint8(at + SEGO.db);
  s.s = dv.getUint8(at + SEGO.s);
  s.l = dv.getUint8(at + SEGO.l);
  s.g = dv.getUint8(at + SEGO.g);
  s.avl = dv.getUint8(at + SEGO.avl);
  s.unusable = dv.getUint8(at + SEGO.unusable);
}

function writeSegment(dv: DataView, at: number, s: SegmentCache): void {
  dv.setBigUint64(at + SEGO.base, BigInt.asUintN(64, s.base), true);
  dv.setUint32(at + SEGO.limit, s.limit >>> 0, true);
  dv.setUint16(at + SEGO.selector, s.selector & 0xffff, true);
  dv.setUint8(at + SEGO.type, s.type & 0xff);
  dv.setUint8(at + SEGO.present, s.present & 0xff);
  dv.setUint8(at + SEGO.dpl, s.dpl & 0xff);
  dv.setUint8(at + SEGO.db, s.db & 0xff);
  dv.setUint8(at + SEGO.s, s.s & 0xff);
  dv.setUint8(at + SEGO.l, s.l & 0xff);
  dv.setUint8(at + SEGO.g, s.g & 0xff);
  dv.setUint8(at + SEGO.avl, s.avl & 0xff);
  dv.setUint8(at + SEGO.unusable, s.unusable & 0xff);
}

// --- CPUID -------------------------------------------------------------------

/** CPUID leaf 1 ECX.OSXSAVE, EDX.APIC; leaf 7 ECX.OSPKE (SDM Vol. 2A, CPUID). */
const CPUID1_ECX_OSXSAVE = 1 << 27;
const CPUID1_EDX_APIC = 1 << 9;
const CPUID7_ECX_OSPKE = 1 << 4;
const APIC_BASE_ENABLE = 1n << 11n;

/** CPUID of the host CPU: [eax, ebx, ecx, edx] (cpu/libc.ts hostCpuid). */
export type HostCpuid = (
  leaf: number,
  subleaf: number,
) => readonly [number, number, number, number];

/**
 * The CPUID words that are pure feature flags, keyed by leaf * 0x100 +
 * subleaf, with the bits taken from the host (SDM Vol. 2A, CPUID, Tables
 * 3-10 and 3-11; leaf 7 and 0DH.1 from the same table; 80000001H from the
 * AMD APM Vol. 3, E.4.2). Leaf 1 ECX leaves out bit 27 (OSXSAVE, which
 * follows CR4) and bit 31 (the hypervisor bit, which is dhyve's to say).
 */
const FEATURE_WORDS = new Map<number, readonly [number, number, number, number]>([
  [0x100, [0, 0, 0x77ffffff, 0xffffffff]],
  [0x700, [0, 0xffffffff, 0xffffffff, 0xffffffff]],
  [0x701, [0xffffffff, 0, 0, 0]],
  [0xd01, [0xffffffff, 0, 0, 0]],
  [0x8000000100, [0, 0, 0xffffffff, 0xffffffff]],
]);

/**
 * A vCPU's CPUID table as the guest sees it, looked up as KVM's kvm_cpuid()
 * does (arch/x86/kvm/cpuid.c): an entry matches its function, and its
 * index too when KVM_CPUID_FLAG_SIGNIFCANT_INDEX is set; a leaf above the
 * maximum of its range reads as the highest basic leaf on Intel and as
 * zeros elsewhere (SDM Vol. 2A, CPUID: "If a value entered for CPUID.EAX is
 * higher than the maximum input value ... the data for the highest basic
 * information leaf is returned"). The bits KVM keeps in step with the
 * vCPU's registers (kvm_update_cpuid_runtime) are filled from `live`.
 */
export class CpuidTable {
  readonly #byLeaf = new Map<number, CpuidEntry[]>();
  readonly #maxBasic: number;
  readonly #intel: boolean;
  readonly #zero = Object.freeze([0, 0, 0, 0] as const);

  readonly #host: HostCpuid | undefined;

  /**
   * Indexes `entries` (the table given to KVM_SET_CPUID2). With `host`,
   * the feature words are merged with the host CPU's ({@linkcode
   * FEATURE_WORDS}): where KVM_SET_CPUID2 cannot hide features (as on our
   * nested machines, see ../shared/environment.md) the guest runs on the
   * host's bits, and the emulator must not refuse (#UD) what the guest's
   * own CPUID offered it. On hardware that masks CPUID this changes
   * nothing the guest can tell: an instruction the host has executes
   * natively there whatever CPUID says, and never reaches the emulator.
   */
  constructor(entries: readonly CpuidEntry[], host?: HostCpuid) {
    this.#host = host;
    for (const e of entries) {
      const list = this.#byLeaf.get(e.function >>> 0) ?? [];
      list.push(e);
      this.#byLeaf.set(e.function >>> 0, list);
    }
    const leaf0 = this.#byLeaf.get(0)?.[0];
    this.#maxBasic = leaf0?.eax ?? 0;
    // "GenuineIntel": EBX "Genu", EDX "ineI", ECX "ntel".
    this.#intel = leaf0 !== undefined && leaf0.ebx === 0x756e6547 && leaf0.edx === 0x49656e69 &&
      leaf0.ecx === 0x6c65746e;
  }

  #find(leaf: number, subleaf: number): CpuidEntry | undefined {
    const list = this.#byLeaf.get(leaf);
    if (!list) return undefined;
    for (const e of list) {
      if (!(e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e.index === subleaf) return e;
    }
    return undefined;
  }

  /** The raw [eax, ebx, ecx, edx] for `leaf`/`subleaf`, before the live bits. */
  raw(leaf: number, subleaf: number): readonly [number, number, number, number] {
    leaf >>>= 0;
    subleaf >>>= 0;
    let e = this.#find(leaf, subleaf);
    if (!e && this.#intel) {
      const rangeBase = (leaf & 0xc0000000) >>> 0;
      const max = this.#find(rangeBase, 0)?.eax ?? 0;
      if (rangeBase === 0 ? leaf > this.#maxBasic : leaf > (max >>> 0)) {
        e = this.#find(this.#maxBasic, subleaf);
      }
    }
    const r: readonly [number, number, number, number] = e
      ? [e.eax >>> 0, e.ebx >>> 0, e.ecx >>> 0, e.edx >>> 0]
      : this.#zero;
    return this.#host ? this.#merge(leaf, subleaf, r, this.#host) : r;
  }

  #merge(
    leaf: number,
    subleaf: number,
    r: readonly [number, number, number, number],
    host: HostCpuid,
  ): readonly [number, number, number, number] {
    if (leaf === 0xd && subleaf >= 2 && r[0] === 0) {
      // An XSAVE component the table does not describe: its size and offset
      // are the hardware's (SDM Vol. 1, 13.2), so the host's answer is exact.
      return host(leaf, subleaf);
    }
    const masks = FEATURE_WORDS.get(leaf * 0x100 + (leaf === 7 || leaf === 0xd ? subleaf : 0));
    if (!masks) return r;
    const h = host(leaf, subleaf);
    return [
      (r[0] | (h[0] & masks[0])) >>> 0,
      (r[1] | (h[1] & masks[1])) >>> 0,
      (r[2] | (h[2] & masks[2])) >>> 0,
      (r[3] | (h[3] & masks[3])) >>> 0,
    ];
  }

  /**
   * CPUID as the guest sees it now: `live` gives CR4, IA32_APIC_BASE and
   * (lazily, only for leaf 0DH) XCR0.
   */
  read(
    leaf: number,
    subleaf: number,
    live: { readonly cr4: bigint; readonly apicBase: bigint; readonly xcr0: bigint },
  ): readonly [number, number, number, number] {
    const r = this.raw(leaf, subleaf);
    leaf >>>= 0;
    if (leaf === 1) {
      let [a, b, c, d] = r;
      c = (live.cr4 & CR4.OSXSAVE) ? c | CPUID1_ECX_OSXSAVE : c & ~CPUID1_ECX_OSXSAVE;
      d = (live.apicBase & APIC_BASE_ENABLE) ? d : d & ~CPUID1_EDX_APIC;
      return [a >>> 0, b >>> 0, c >>> 0, d >>> 0];
    }
    if (leaf === 7 && subleaf === 0) {
      const [a, b, c, d] = r;
      const c2 = (live.cr4 & CR4.PKE) ? c | CPUID7_ECX_OSPKE : c & ~CPUID7_ECX_OSPKE;
      return [a, b, c2 >>> 0, d];
    }
    if (leaf === 0xd && subleaf === 0) {
      // EBX: the XSAVE area size for the features enabled in XCR0 (SDM Vol. 1, 13.2).
      const [a, , c, d] = r;
      return [a, this.xsaveSize(live.xcr0), c, d];
    }
    return r;
  }

  /** Bytes of a standard-format XSAVE area holding the components in `xcr0`. */
  xsaveSize(xcr0: bigint): number {
    let size = 512 + 64;
    for (let i = 2; i < 63; i++) {
      if (!((xcr0 >> BigInt(i)) & 1n)) continue;
      const [sz, off] = this.raw(0xd, i);
      if (sz !== 0) size = Math.max(size, off + sz);
    }
    return size;
  }
}

// --- CPU state ---------------------------------------------------------------

/**
 * What {@linkcode FallbackEmulator} needs of a vCPU besides the executor's
 * {@linkcode CpuState}: loading it after an exit, writing back what changed,
 * and its pending events.
 */
export interface FallbackCpu extends CpuState {
  /** Reads the vCPU's state (after an exit); clears `dirty`. */
  load(): void;
  /** Writes back what changed (always the general registers). */
  commit(): void;
  /** The vCPU's struct kvm_vcpu_events, to read and change in place. */
  events(): Uint8Array;
  /** Marks the events for writing back at commit(). */
  markEventsDirty(): void;
  /** Applies state still waiting for the next KVM_RUN now. */
  flush(): void;
  /**
   * ORs `bits` (DR6 condition bits, e.g. BS) into DR6 for a #DB about to
   * be delivered, clearing B0-B3 first (SDM Vol. 3A, 18.2.3).
   */
  raiseDr6(bits: number): void;
}

/** Where a vCPU's state comes from and goes to. */
export interface KvmCpuOptions {
  /** The vCPU fd. */
  readonly fd: number;
  /** The VM fd (for KVM_CHECK_EXTENSION). */
  readonly vmFd: number;
  /**
   * The vCPU's kvm_run page, when KVM_CAP_SYNC_REGS covers regs, sregs and
   * events ({@linkcode SYNC_ALL}); null to use ioctls only. The first
   * fallback reads the state with ioctls and sets `kvm_valid_regs`, so KVM
   * copies it out at every later exit: a guest that never needs the
   * fallback (ring 0 running natively) pays nothing for it.
   */
  readonly sync: RunPage | null;
  /** The CPUID table given to the vCPU (KVM_SET_CPUID2). */
  readonly cpuid: readonly CpuidEntry[];
  /** The host's CPUID, merged into the feature words (see {@linkcode CpuidTable}). */
  readonly hostCpuid?: HostCpuid;
}

/** Where the vCPU's extended state comes from. */
type XsaveSource = { kind: "xsave2"; size: number } | { kind: "xsave" } | { kind: "fpu" };

/**
 * The executor's view of a KVM vCPU. Call {@linkcode KvmCpuState.load} after
 * an exit, let the executor work, then {@linkcode KvmCpuState.commit}.
 */
export class KvmCpuState implements FallbackCpu {
  /** rax ... r15 (GPR order). */
  readonly gpr: BigUint64Array = new BigUint64Array(16);
  /** RIP. */
  rip = 0n;
  /** RFLAGS. */
  rflags = 0n;
  /** es, cs, ss, ds, fs, gs. */
  readonly seg: SegmentCache[] = Array.from({ length: 6 }, emptySegment);
  /** TR. */
  tr: SegmentCache = emptySegment();
  /** LDTR. */
  ldtr: SegmentCache = emptySegment();
  /** GDTR. */
  gdtr: { base: bigint; limit: number } = { base: 0n, limit: 0 };
  /** IDTR. */
  idtr: { base: bigint; limit: number } = { base: 0n, limit: 0 };
  /** CR0. */
  cr0 = 0n;
  /** CR2. */
  cr2 = 0n;
  /** CR3. */
  cr3 = 0n;
  /** CR4. */
  cr4 = 0n;
  /** CR8 (TPR). */
  cr8 = 0n;
  /** IA32_EFER. */
  efer = 0n;
  /** IA32_APIC_BASE as KVM reported it (read-only here; for CPUID's APIC bit). */
  apicBase = 0n;
  /** Bits of DIRTY set by the executor. */
  dirty = 0;

  readonly #fd: number;
  readonly #sync: RunPage | null;
  readonly #regs: Uint8Array;
  readonly #regs64: BigUint64Array;
  readonly #sregs: Uint8Array;
  readonly #sregsView: DataView;
  readonly #events: Uint8Array;
  readonly #cpuid: CpuidTable;
  readonly #xsaveSource: XsaveSource;
  readonly #hasXcrs: boolean;
  #xsave: Uint8Array | null = null;
  #fpu: Uint8Array | null = null;
  #extendedLoaded = false;
  #xcr0 = 0n;
  #xcr0Loaded = false;
  #eventsLoaded = false;
  #eventsDirty = false;
  #debugregs: Uint8Array | null = null;
  /** kvm_valid_regs is set: KVM fills the run page's copies at every exit. */
  #armed = false;

  /** Binds a vCPU. Checks the capabilities it will use once, here. */
  constructor(options: KvmCpuOptions) {
    this.#fd = options.fd;
    this.#sync = options.sync;
    if (options.sync) {
      const b = options.sync.bytes;
      this.#regs = b.subarray(O.syncRegs, O.syncRegs + R.size);
      this.#sregs = b.subarray(O.syncSregs, O.syncSregs + KVM_SREGS_STRUCT.size);
      this.#events = b.subarray(O.syncEvents, O.syncEvents + KVM_VCPU_EVENTS_STRUCT.size);
    } else {
      this.#regs = new Uint8Array(R.size);
      this.#sregs = new Uint8Array(KVM_SREGS_STRUCT.size);
      this.#events = new Uint8Array(KVM_VCPU_EVENTS_STRUCT.size);
    }
    this.#regs64 = new BigUint64Array(this.#regs.buffer, this.#regs.byteOffset, R.size / 8);
    this.#sregsView = new DataView(
      this.#sregs.buffer,
      this.#sregs.byteOffset,
      this.#sregs.byteLength,
    );
    this.#cpuid = new CpuidTable(options.cpuid, options.hostCpuid);
    const xsave2 = checkExtension(options.vmFd, KVM_CAP.XSAVE2);
    if (xsave2 > KVM_XSAVE_STRUCT.size) this.#xsaveSource = { kind: "xsave2", size: xsave2 };
    else if (checkExtension(options.vmFd, KVM_CAP.XSAVE)) this.#xsaveSource = { kind: "xsave" };
    else this.#xsaveSource = { kind: "fpu" };
    this.#hasXcrs = checkExtension(options.vmFd, KVM_CAP.XCRS) !== 0;
  }

  /** True once KVM copies the state into the kvm_run page at every exit (KVM_CAP_SYNC_REGS). */
  get synced(): boolean {
    return this.#armed;
  }

  /** Reads regs and sregs of the vCPU (stopped after an exit) and forgets the lazy parts. */
  load(): void {
    const armed = this.#armed;
    if (!armed) {
      // Into the run page's copies when there is sync regs: commit() then
      // hands them back through kvm_dirty_regs either way.
      getRegsRaw(this.#fd, this.#regs);
      getSregsRaw(this.#fd, this.#sregs);
      if (this.#sync) {
        this.#sync.view.setUint32(O.kvmValidRegs, SYNC_ALL, true);
        this.#armed = true;
      }
    }
    const r = this.#regs64;
    for (let i = 0; i < 16; i++) this.gpr[i] = r[KVM_SLOT_OF_GPR[i]];
    this.rip = r[RIP_SLOT];
    this.rflags = r[RFLAGS_SLOT];
    const dv = this.#sregsView;
    for (let i = 0; i < 6; i++) readSegment(dv, SEG_OFFSETS[i], this.seg[i]);
    readSegment(dv, S.tr, this.tr);
    readSegment(dv, S.ldt, this.ldtr);
    this.gdtr.base = dv.getBigUint64(S.gdt, true);
    this.gdtr.limit = dv.getUint16(S.gdt + 8, true);
    this.idtr.base = dv.getBigUint64(S.idt, true);
    this.idtr.limit = dv.getUint16(S.idt + 8, true);
    this.cr0 = dv.getBigUint64(S.cr0, true);
    this.cr2 = dv.getBigUint64(S.cr2, true);
    this.cr3 = dv.getBigUint64(S.cr3, true);
    this.cr4 = dv.getBigUint64(S.cr4, true);
    this.cr8 = dv.getBigUint64(S.cr8, true);
    this.efer = dv.getBigUint64(S.efer, true);
    this.apicBase = dv.getBigUint64(S.apicBase, true);
    this.dirty = 0;
    this.#extendedLoaded = false;
    this.#xcr0Loaded = false;
    this.#eventsLoaded = armed;
    this.#eventsDirty = false;
  }

  /** XCR0, read with KVM_GET_XCRS on first use after each load. */
  get xcr0(): bigint {
    if (!this.#xcr0Loaded) {
      this.#xcr0 = this.#hasXcrs
        ? getXcrs(this.#fd).find((x) => x.xcr === XCR_XFEATURE_ENABLED_MASK)?.value ?? 1n
        : 1n;
      this.#xcr0Loaded = true;
    }
    return this.#xcr0;
  }

  /** Sets XCR0 (the executor marks DIRTY.xcr0). */
  set xcr0(v: bigint) {
    this.#xcr0 = v;
    this.#xcr0Loaded = true;
  }

  /** The XSAVE area (standard format), read with one ioctl on first use after each load. */
  extended(): Uint8Array {
    if (this.#extendedLoaded) return this.#xsave!;
    const src = this.#xsaveSource;
    if (src.kind === "xsave2") {
      this.#xsave ??= new Uint8Array(src.size);
      getXsave2(this.#fd, this.#xsave);
    } else if (src.kind === "xsave") {
      this.#xsave ??= new Uint8Array(KVM_XSAVE_STRUCT.size);
      getXsave(this.#fd, this.#xsave);
    } else {
      this.#xsave ??= new Uint8Array(KVM_XSAVE_STRUCT.size);
      this.#fpu = getFpu(this.#fd, this.#fpu ?? undefined);
      fpuToXsave(this.#fpu, this.#xsave);
    }
    this.#extendedLoaded = true;
    return this.#xsave;
  }

  /** CPUID as the guest sees it (the vCPU's table, with the bits KVM keeps live). */
  cpuid(leaf: number, subleaf: number): readonly [number, number, number, number] {
    return this.#cpuid.read(leaf, subleaf, this);
  }

  /** RDMSR through KVM_GET_MSRS; undefined when KVM does not know the MSR. */
  readMsr(index: number): bigint | undefined {
    return getMsrs(this.#fd, [index])[0];
  }

  /**
   * WRMSR through KVM_SET_MSRS; false when KVM refuses. KVM treats these as
   * host-initiated writes, which it checks less strictly than a guest's.
   */
  writeMsr(index: number, value: bigint): boolean {
    return setMsrs(this.#fd, [{ index, value }]) === 1;
  }

  /**
   * The vCPU's kvm_vcpu_events (api.rst 4.31), from the kvm_run page or
   * KVM_GET_VCPU_EVENTS. Changes take effect through {@linkcode commit}
   * after {@linkcode markEventsDirty}.
   */
  events(): Uint8Array {
    if (!this.#eventsLoaded) {
      getVcpuEvents(this.#fd, this.#events);
      this.#eventsLoaded = true;
    }
    return this.#events;
  }

  /** Marks the events (changed in place) for writing back. */
  markEventsDirty(): void {
    this.#eventsDirty = true;
  }

  /**
   * DR6 for a #DB the fallback delivers: KVM_GET_DEBUGREGS, then
   * KVM_SET_DEBUGREGS (api.rst 4.33, 4.34) with B0-B3 cleared and `bits`
   * set, as KVM itself treats a #DB payload (kvm_deliver_exception_payload
   * in arch/x86/kvm/x86.c). Without KVM_CAP_EXCEPTION_PAYLOAD (see the
   * module comment) an injected #DB carries no DR6 bits, so they go here.
   * Two ioctls, only for the single-step trap of an emulated instruction.
   */
  raiseDr6(bits: number): void {
    const buf = this.#debugregs ??= new Uint8Array(KVM_DEBUGREGS_STRUCT.size);
    getDebugregsInto(this.#fd, buf);
    const dv = new DataView(buf.buffer);
    const at = KVM_DEBUGREGS_STRUCT.o.dr6;
    dv.setBigUint64(at, (dv.getBigUint64(at, true) & ~0xfn) | BigInt(bits >>> 0), true);
    dv.setUint32(KVM_DEBUGREGS_STRUCT.o.flags, 0, true);
    setDebugregs(this.#fd, buf);
  }

  /**
   * Writes back what changed: regs always (KVM_SET_REGS also drops the #UD
   * that KVM queues when its emulator fails at CPL0, see
   * {@linkcode FallbackEmulator}), then sregs, XCR0, the extended state and
   * the events, each only when dirty. With sync regs, regs/sregs/events go
   * back through kvm_dirty_regs at the next KVM_RUN (in the same order).
   */
  commit(): void {
    const r = this.#regs64;
    for (let i = 0; i < 16; i++) r[KVM_SLOT_OF_GPR[i]] = this.gpr[i];
    r[RIP_SLOT] = BigInt.asUintN(64, this.rip);
    r[RFLAGS_SLOT] = BigInt.asUintN(64, this.rflags);
    let syncDirty = KVM_SYNC_X86.REGS;
    if (!this.#sync) setRegsRaw(this.#fd, this.#regs);
    if (this.dirty & DIRTY.sregs) {
      const dv = this.#sregsView;
      for (let i = 0; i < 6; i++) writeSegment(dv, SEG_OFFSETS[i], this.seg[i]);
      writeSegment(dv, S.tr, this.tr);
      writeSegment(dv, S.ldt, this.ldtr);
      dv.setBigUint64(S.gdt, BigInt.asUintN(64, this.gdtr.base), true);
      dv.setUint16(S.gdt + 8, this.gdtr.limit & 0xffff, true);
      dv.setBigUint64(S.idt, BigInt.asUintN(64, this.idtr.base), true);
      dv.setUint16(S.idt + 8, this.idtr.limit & 0xffff, true);
      dv.setBigUint64(S.cr0, BigInt.asUintN(64, this.cr0), true);
      dv.setBigUint64(S.cr2, BigInt.asUintN(64, this.cr2), true);
      dv.setBigUint64(S.cr3, BigInt.asUintN(64, this.cr3), true);
      dv.setBigUint64(S.cr4, BigInt.asUintN(64, this.cr4), true);
      dv.setBigUint64(S.cr8, BigInt.asUintN(64, this.cr8), true);
      dv.setBigUint64(S.efer, BigInt.asUintN(64, this.efer), true);
      // apic_base and interrupt_bitmap go back as KVM gave them.
      if (this.#sync) syncDirty |= KVM_SYNC_X86.SREGS;
      else setSregsRaw(this.#fd, this.#sregs);
    }
    if (this.dirty & DIRTY.xcr0) {
      setXcrs(this.#fd, [{ xcr: XCR_XFEATURE_ENABLED_MASK, value: this.#xcr0 }]);
    }
    if ((this.dirty & DIRTY.extended) && this.#extendedLoaded) {
      if (this.#xsaveSource.kind === "fpu") {
        // Only without KVM_CAP_XSAVE (kernels before 2.6.36). KVM_SET_FPU does
        // not take MXCSR (kvm_arch_vcpu_ioctl_set_fpu): an ldmxcsr is lost there.
        xsaveToFpu(this.#xsave!, this.#fpu!);
        setFpu(this.#fd, this.#fpu!);
      } else setXsave(this.#fd, this.#xsave!);
    }
    if (this.#eventsDirty) {
      if (this.#sync) syncDirty |= KVM_SYNC_X86.EVENTS;
      else setVcpuEvents(this.#fd, this.#events);
    }
    if (this.#sync) {
      const v = this.#sync.view;
      v.setUint32(O.kvmDirtyRegs, v.getUint32(O.kvmDirtyRegs, true) | syncDirty, true);
    }
    this.dirty = 0;
    this.#eventsDirty = false;
  }

  /**
   * With sync regs: applies state still waiting in kvm_dirty_regs through
   * ioctls now, for a vCPU that leaves its run loop before the next KVM_RUN
   * (another thread may read or set its registers meanwhile).
   */
  flush(): void {
    if (!this.#sync) return;
    const v = this.#sync.view;
    const dirty = v.getUint32(O.kvmDirtyRegs, true);
    if (dirty === 0) return;
    if (dirty & KVM_SYNC_X86.REGS) setRegsRaw(this.#fd, this.#regs);
    if (dirty & KVM_SYNC_X86.SREGS) setSregsRaw(this.#fd, this.#sregs);
    if (dirty & KVM_SYNC_X86.EVENTS) setVcpuEvents(this.#fd, this.#events);
    v.setUint32(O.kvmDirtyRegs, 0, true);
  }
}

/** kvm_fpu -> the legacy region of an XSAVE area (FXSAVE layout, SDM Vol. 1, 10.5.1). */
function fpuToXsave(fpu: Uint8Array, out: Uint8Array): void {
  const F = KVM_FPU_STRUCT.o;
  const f = new DataView(fpu.buffer, fpu.byteOffset, fpu.byteLength);
  const x = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out.fill(0);
  x.setUint16(0, f.getUint16(F.fcw, true), true);
  x.setUint16(2, f.getUint16(F.fsw, true), true);
  x.setUint8(4, f.getUint8(F.ftwx)); // the abridged tag byte, as FXSAVE stores it
  x.setUint16(6, f.getUint16(F.lastOpcode, true), true);
  x.setBigUint64(8, f.getBigUint64(F.lastIp, true), true);
  x.setBigUint64(16, f.getBigUint64(F.lastDp, true), true);
  x.setUint32(24, f.getUint32(F.mxcsr, true), true);
  x.setUint32(28, 0xffff, true); // MXCSR_MASK: all of the low 16 bits writable
  out.set(fpu.subarray(F.fpr, F.fpr + 128), 32); // ST0-7 / MM0-7, 16 bytes each
  out.set(fpu.subarray(F.xmm, F.xmm + 256), 160); // XMM0-15
  x.setBigUint64(512, 3n, true); // XSTATE_BV: x87 and SSE
}

/** The legacy region of an XSAVE area -> kvm_fpu. */
function xsaveToFpu(xsave: Uint8Array, fpu: Uint8Array): void {
  const F = KVM_FPU_STRUCT.o;
  const f = new DataView(fpu.buffer, fpu.byteOffset, fpu.byteLength);
  const x = new DataView(xsave.buffer, xsave.byteOffset, xsave.byteLength);
  f.setUint16(F.fcw, x.getUint16(0, true), true);
  f.setUint16(F.fsw, x.getUint16(2, true), true);
  f.setUint8(F.ftwx, x.getUint8(4));
  f.setUint16(F.lastOpcode, x.getUint16(6, true), true);
  f.setBigUint64(F.lastIp, x.getBigUint64(8, true), true);
  f.setBigUint64(F.lastDp, x.getBigUint64(16, true), true);
  f.setUint32(F.mxcsr, x.getUint32(24, true), true);
  fpu.set(xsave.subarray(32, 160), F.fpr);
  fpu.set(xsave.subarray(160, 416), F.xmm);
}

// --- memory ----------------------------------------------------------------

/** The MMIO bus as the emulator uses it (devices/bus.ts MmioBus). */
export interface MmioPort {
  read(address: number, size: 1 | 2 | 4): number;
  write(address: number, size: 1 | 2 | 4, value: number): void;
  read64(address: number): bigint;
  write64(address: number, value: bigint): void;
}

const PAGE = 4096;

/**
 * Guest-physical memory for the executor: RAM through the bounds-checked
 * {@linkcode GuestMemory}, everything else through the MMIO bus.
 */
export class GuestPhysicalMemory implements PhysicalMemory {
  readonly #ram: GuestMemory;
  readonly #base: bigint;
  readonly #mmio: MmioPort;
  readonly #atomics: () => HostAtomics;
  readonly #scratch = new Uint8Array(8);
  readonly #scratchView = new DataView(this.#scratch.buffer);

  /**
   * `ram` checks every address; `hostBase` is the host address of
   * guest-physical 0 in the same mapping (for libatomic); `atomics` is
   * called on the first compare-exchange (libatomic loads then).
   */
  constructor(ram: GuestMemory, hostBase: bigint, mmio: MmioPort, atomics: () => HostAtomics) {
    this.#ram = ram;
    this.#base = hostBase;
    this.#mmio = mmio;
    this.#atomics = atomics;
  }

  /** True when [gpa, gpa + length) lies in one RAM range. */
  isRam(gpa: number, length: number): boolean {
    return this.#ram.contains(gpa, length);
  }

  /** Reads RAM or MMIO; an access that mixes the two is split at page boundaries. */
  read(gpa: number, out: Uint8Array): void {
    if (this.#ram.contains(gpa, out.length)) {
      out.set(this.#ram.slice(gpa, out.length));
      return;
    }
    this.#split(gpa, out.length, (at, off, len) => {
      if (this.#ram.contains(at, len)) out.set(this.#ram.slice(at, len), off);
      else this.#mmioRead(at, out.subarray(off, off + len));
    });
  }

  /** Writes RAM or MMIO; an access that mixes the two is split at page boundaries. */
  write(gpa: number, data: Uint8Array): void {
    if (this.#ram.contains(gpa, data.length)) {
      this.#ram.write(gpa, data);
      return;
    }
    this.#split(gpa, data.length, (at, off, len) => {
      if (this.#ram.contains(at, len)) this.#ram.write(at, data.subarray(off, off + len));
      else this.#mmioWrite(at, data.subarray(off, off + len));
    });
  }

  /**
   * Compare-exchange: on RAM a libatomic `lock cmpxchg`/`cmpxchg16b` at the
   * host address, atomic against the other vCPUs running natively. On MMIO
   * (a locked instruction on a device register, which no guest relies on) a
   * read, a compare and a write: each access is whole, the pair is not.
   */
  cmpxchg(gpa: number, size: number, expected: bigint, desired: bigint): bigint {
    if (this.#ram.contains(gpa, size)) {
      return this.#atomics().cmpxchg(this.#base + BigInt(gpa), size, expected, desired);
    }
    const buf = new Uint8Array(size);
    this.read(gpa, buf);
    let found = 0n;
    for (let i = size - 1; i >= 0; i--) found = (found << 8n) | BigInt(buf[i]);
    if (found === BigInt.asUintN(size * 8, expected)) {
      let v = desired;
      for (let i = 0; i < size; i++, v >>= 8n) buf[i] = Number(v & 0xffn);
      this.write(gpa, buf);
    }
    return found;
  }

  /** Calls `fn(gpa, offset, length)` for each piece of [gpa, gpa+length) within one page. */
  #split(gpa: number, length: number, fn: (at: number, off: number, len: number) => void): void {
    if (!Number.isSafeInteger(gpa) || gpa < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new RangeError(`bad guest-physical access [${gpa}, +${length})`);
    }
    let off = 0;
    while (off < length) {
      const at = gpa + off;
      const len = Math.min(length - off, PAGE - (at % PAGE));
      fn(at, off, len);
      off += len;
    }
  }

  /** MMIO in naturally aligned pieces of 8, 4, 2 or 1 bytes. */
  #mmioRead(gpa: number, out: Uint8Array): void {
    const v = this.#scratchView;
    let off = 0;
    while (off < out.length) {
      const at = gpa + off;
      const size = pieceSize(at, out.length - off);
      if (size === 8) v.setBigUint64(0, this.#mmio.read64(at), true);
      else if (size === 4) v.setUint32(0, this.#mmio.read(at, 4) >>> 0, true);
      else if (size === 2) v.setUint16(0, this.#mmio.read(at, 2), true);
      else v.setUint8(0, this.#mmio.read(at, 1));
      out.set(this.#scratch.subarray(0, size), off);
      off += size;
    }
  }

  #mmioWrite(gpa: number, data: Uint8Array): void {
    const v = this.#scratchView;
    let off = 0;
    while (off < data.length) {
      const at = gpa + off;
      const size = pieceSize(at, data.length - off);
      this.#scratch.set(data.subarray(off, off + size));
      if (size === 8) this.#mmio.write64(at, v.getBigUint64(0, true));
      else if (size === 4) this.#mmio.write(at, 4, v.getUint32(0, true));
      else if (size === 2) this.#mmio.write(at, 2, v.getUint16(0, true));
      else this.#mmio.write(at, 1, v.getUint8(0));
      off += size;
    }
  }
}

function pieceSize(at: number, left: number): 1 | 2 | 4 | 8 {
  for (const s of [8, 4, 2] as const) if (left >= s && at % s === 0) return s;
  return 1;
}

// --- exceptions --------------------------------------------------------------

/** Exception classes for double-fault detection (SDM Vol. 3A, 6.15, Table 6-4). */
function exceptionClass(v: number): "benign" | "contributory" | "pf" | "df" {
  if (v === 14) return "pf";
  if (v === 8) return "df";
  if (v === 0 || v === 10 || v === 11 || v === 12 || v === 13) return "contributory";
  return "benign";
}

/** Vectors that push an error code in protected mode (SDM Vol. 3A, Table 6-1). */
function pushesErrorCode(v: number): boolean {
  return v === 8 || (v >= 10 && v <= 14) || v === 17 || v === 21;
}

/** What to deliver, given an exception already pending and a new one. */
export type Delivery =
  | { readonly kind: "deliver"; readonly vector: number; readonly errorCode?: number }
  | { readonly kind: "triple-fault" };

/**
 * The exception to deliver when `next` comes while `prev` (a vector, or
 * undefined for none) is pending, as KVM's kvm_multiple_exception() and SDM
 * Vol. 3A Table 6-5 decide: contributory after contributory, or a #PF or
 * contributory after #PF, is a #DF (error code 0); anything after a #DF
 * shuts the processor down (triple fault); otherwise the new exception
 * replaces the old, which the guest's re-execution raises again.
 */
export function combineExceptions(prev: number | undefined, next: X86Exception): Delivery {
  if (prev !== undefined) {
    if (prev === 8) return { kind: "triple-fault" };
    const a = exceptionClass(prev);
    const b = exceptionClass(next.vector);
    if ((a === "contributory" && b === "contributory") || (a === "pf" && b !== "benign")) {
      return { kind: "deliver", vector: 8, errorCode: 0 };
    }
  }
  return next.errorCode !== undefined || pushesErrorCode(next.vector)
    ? { kind: "deliver", vector: next.vector, errorCode: next.errorCode ?? 0 }
    : { kind: "deliver", vector: next.vector };
}

// --- the handler -------------------------------------------------------------

/** How one emulation failure ended. */
export type FallbackOutcome =
  | {
    readonly kind: "resumed";
    /** What to count it under: the mnemonic, or the exception's name when nothing decoded. */
    readonly label: string;
  }
  | {
    readonly kind: "fatal";
    /** How the VM ends: an error (status 4) or a triple fault (status 3). */
    readonly suspend: "error" | "triple-fault";
    readonly message: string;
  };

/** The pieces of a {@linkcode FallbackEmulator}. */
export interface FallbackOptions {
  /** The vCPU index, for messages. */
  readonly index: number;
  readonly cpu: FallbackCpu;
  readonly memory: PhysicalMemory;
  /** The executor (default: `emulate` of cpu/x86/exec.ts); unit tests give a stand-in. */
  readonly emulate?: EmulateFn;
  /**
   * Completes SYSCALLs the host left half done (cpu/syscall_fix.ts), seen
   * when the guest's page-fault handler starts; default: on.
   */
  readonly syscalls?: SyscallCompletion | null;
}

/**
 * Handles KVM_EXIT_INTERNAL_ERROR / KVM_INTERNAL_ERROR_EMULATION: loads the
 * vCPU state, runs the executor on the instruction at CS:RIP, writes back
 * what changed and queues any exception or interrupt it raised.
 *
 * KVM's handle_emulation_failure() (arch/x86/kvm/x86.c) queues a #UD before
 * it exits to user space at CPL0 (seen on stock KVM; the paravirtual KVM of
 * the development machines does not). That #UD is KVM's reaction to its own
 * failure, not the guest's: a pending or injected #UD without an error code
 * found at such an exit is dropped (KVM_SET_REGS drops a pending one too);
 * any other exception found pending is combined with the new one by the
 * double-fault rules ({@linkcode combineExceptions}).
 *
 * Events, all with RIP as the executor left it:
 * - #BP and #OF (int3, into) are traps of software-exception type: the
 *   executor moves RIP past the instruction and the event is injected as
 *   an exception at the new RIP, which the guest's handler returns to.
 * - A single-step #DB carries DR6.BS: {@linkcode FallbackCpu.raiseDr6}
 *   sets it before the #DB is injected (SDM Vol. 3A, 18.3.1.4).
 * - `int n` ({@linkcode X86Exception.software}) is injected as an
 *   interrupt (kvm_vcpu_events.interrupt, injected = 1, soft = 0) at the
 *   RIP past the instruction, which the delivery pushes as the return
 *   address; its vector's exception rules (an error code for 8, 10-14, 17)
 *   do not apply, as for INT n on the processor. With soft = 1 KVM would
 *   push RIP plus the length of the last exit's instruction (VMX: the
 *   stale event_exit_inst_len; SVM: it decodes the instruction at RIP
 *   again), which is right only with RIP still on the INT. The gate-DPL
 *   check of a software interrupt, which an injected interrupt skips, is
 *   the executor's (it matters only at CPL > 0; the fallback runs at CPL0).
 *   While KVM still holds an interrupt to deliver (interrupt.injected), the
 *   INT is left undone, to run again after that interrupt's handler.
 * - An emulated iret unblocks NMIs (SDM Vol. 3A, 6.7.1, "even if the
 *   instruction causes a fault"): kvm_vcpu_events.nmi.masked is cleared, as
 *   KVM's emulator does for the real-mode iret it emulates itself
 *   (emulate_iret_real in arch/x86/kvm/emulate.c; its em_iret leaves
 *   protected-mode iret unimplemented, which is why iret reaches dhyve).
 *
 * All of this is checked on KVM by tests/fallback_kvm_test.ts.
 */
export class FallbackEmulator {
  readonly #index: number;
  readonly #cpu: FallbackCpu;
  readonly #memory: PhysicalMemory;
  readonly #emulate: EmulateFn;
  readonly #syscalls: SyscallCompletion | null;

  /** Binds the vCPU, its memory and the executor. */
  constructor(options: FallbackOptions) {
    this.#index = options.index;
    this.#cpu = options.cpu;
    this.#memory = options.memory;
    this.#emulate = options.emulate ?? executor;
    this.#syscalls = options.syscalls === undefined ? new SyscallCompletion() : options.syscalls;
  }

  /** The CPU state (for flush() when the vCPU leaves its run loop). */
  get cpu(): FallbackCpu {
    return this.#cpu;
  }

  /**
   * Handles one emulation failure. `kvmBytes` are the instruction bytes KVM
   * reported in kvm_run.emulation_failure (for messages), if any. Never throws.
   */
  handle(kvmBytes?: Uint8Array): FallbackOutcome {
    const cpu = this.#cpu;
    let rip = -1n;
    let insn: Instruction | undefined;
    try {
      cpu.load();
      rip = cpu.rip;
      if (this.#syscalls?.check(cpu, this.#memory)) {
        cpu.commit();
        return { kind: "resumed", label: "syscall" };
      }
      let r: StepResult;
      try {
        r = this.#emulate(cpu, this.#memory);
      } catch (e) {
        if (e instanceof Error && e.name === "DecodeError") {
          return this.#fatal(
            `cannot emulate the instruction at ${this.#where(rip, kvmBytes)}: ${e.message}`,
          );
        }
        throw e;
      }
      insn = r.insn;
      if (r.kind === "unsupported") {
        const what = insn
          ? `"${insn.text}" at ${this.#where(rip)}`
          : `the instruction at ${this.#where(rip, kvmBytes)}`;
        return this.#fatal(`cannot emulate ${what}: ${r.message}`);
      }
      // IRET unblocks NMIs, also when it faults (SDM Vol. 3A, 6.7.1).
      if (insn && insn.mnemonic.startsWith("iret")) this.#unblockNmi();
      if (r.kind === "exception") {
        const ex = r.exception;
        if (ex.software) {
          const label = insn?.mnemonic ?? `int ${hex(ex.vector)}`;
          // An interrupt KVM is still delivering holds the one injection slot: leave the
          // INT undone (nothing committed, RIP on it); the guest runs it again after that
          // interrupt's handler, and it comes back here.
          if (cpu.events()[EV.interruptInjected]) return { kind: "resumed", label };
          this.#queueInterrupt(ex.vector);
          cpu.commit();
          return { kind: "resumed", label };
        }
        const d = this.#queueException(ex);
        if (d.kind === "triple-fault") {
          return {
            kind: "fatal",
            suspend: "triple-fault",
            message: `vcpu ${this.#index}: triple fault: ${vectorName(ex.vector)} ` +
              `raised by ${insn ? `"${insn.text}"` : "the instruction"} at ${this.#where(rip)} ` +
              `while a #DF was pending`,
          };
        }
        if (d.vector === 1 && ex.vector === 1 && ex.dr6) cpu.raiseDr6(ex.dr6);
        cpu.commit();
        return { kind: "resumed", label: insn?.mnemonic ?? vectorName(ex.vector) };
      }
      // The emulated instruction used up any interrupt shadow KVM had, and mov ss,
      // pop ss or sti (with IF clear) opens a new one for the next instruction
      // (SDM Vol. 3A, 6.8.3; api.rst KVM_SET_VCPU_EVENTS, interrupt.shadow).
      const shadow = r.shadow === "mov-ss"
        ? KVM_X86_SHADOW_INT_MOV_SS
        : r.shadow === "sti"
        ? KVM_X86_SHADOW_INT_STI
        : 0;
      const ev = cpu.events();
      if (ev[EV.interruptShadow] !== shadow) {
        ev[EV.interruptShadow] = shadow;
        const flags = new DataView(ev.buffer, ev.byteOffset, ev.byteLength);
        flags.setUint32(
          EV.flags,
          flags.getUint32(EV.flags, true) | KVM_VCPUEVENT_VALID_SHADOW,
          true,
        );
        cpu.markEventsDirty();
      }
      cpu.commit();
      return { kind: "resumed", label: r.insn.mnemonic };
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      const what = insn ? `"${insn.text}"` : "the instruction";
      return this.#fatal(
        `internal error while emulating ${what} at ${
          rip >= 0n ? this.#where(rip, kvmBytes) : "rip ?"
        }: ` +
          `${err.name === "Error" ? "" : `${err.name}: `}${err.message}`,
      );
    }
  }

  /** KVM's own #UD from its failed emulation, pending or injected (see the class comment). */
  #kvmsOwnUd(ev: Uint8Array): boolean {
    return ev[EV.exceptionNr] === 6 && !ev[EV.exceptionHasErrorCode];
  }

  /**
   * Puts `ex` into the vCPU's events (after the pending-event rules). For
   * #PF, CR2 goes into sregs first. Returns what was decided.
   */
  #queueException(ex: X86Exception): Delivery {
    const cpu = this.#cpu;
    const ev = cpu.events();
    const dv = new DataView(ev.buffer, ev.byteOffset, ev.byteLength);
    let prev: number | undefined;
    if (ev[EV.exceptionInjected] || ev[EV.exceptionPending]) {
      if (!this.#kvmsOwnUd(ev)) prev = ev[EV.exceptionNr];
    }
    const d = combineExceptions(prev, ex);
    if (d.kind === "triple-fault") return d;
    if (d.vector === 14 && ex.vector === 14 && ex.cr2 !== undefined) {
      cpu.cr2 = ex.cr2;
      cpu.dirty |= DIRTY.sregs;
    }
    // Real mode pushes no error code (SDM Vol. 3A, 20.1.4); KVM strips it too.
    const protectedMode = (cpu.cr0 & 1n) !== 0n;
    const hasCode = d.errorCode !== undefined && protectedMode;
    ev[EV.exceptionInjected] = 1;
    ev[EV.exceptionPending] = 0;
    ev[EV.exceptionNr] = d.vector;
    ev[EV.exceptionHasErrorCode] = hasCode ? 1 : 0;
    dv.setUint32(EV.exceptionErrorCode, hasCode ? d.errorCode! >>> 0 : 0, true);
    // No payload: CR2 travels in sregs, DR6 through raiseDr6 (see the module comment).
    ev[EV.exceptionHasPayload] = 0;
    dv.setBigUint64(EV.exceptionPayload, 0n, true);
    cpu.markEventsDirty();
    return d;
  }

  /**
   * Injects the software interrupt of `int n` (see the class comment). An
   * exception KVM left pending is dropped: its own #UD, or anything else,
   * which the guest's re-execution raises again (as a new exception
   * replaces a benign one in {@linkcode combineExceptions}).
   */
  #queueInterrupt(vector: number): void {
    const cpu = this.#cpu;
    const ev = cpu.events();
    const dv = new DataView(ev.buffer, ev.byteOffset, ev.byteLength);
    ev[EV.exceptionInjected] = 0;
    ev[EV.exceptionPending] = 0;
    ev[EV.exceptionHasErrorCode] = 0;
    dv.setUint32(EV.exceptionErrorCode, 0, true);
    ev[EV.exceptionHasPayload] = 0;
    dv.setBigUint64(EV.exceptionPayload, 0n, true);
    ev[EV.interruptInjected] = 1;
    ev[EV.interruptNr] = vector & 0xff;
    ev[EV.interruptSoft] = 0;
    cpu.markEventsDirty();
  }

  /** Clears kvm_vcpu_events.nmi.masked after an emulated iret (free with sync regs). */
  #unblockNmi(): void {
    const ev = this.#cpu.events();
    if (ev[EV.nmiMasked]) {
      ev[EV.nmiMasked] = 0;
      this.#cpu.markEventsDirty();
    }
  }

  #where(rip: bigint, kvmBytes?: Uint8Array): string {
    const cs = this.#cpu.seg[1];
    const at = `rip ${hex(rip)}${cs.base !== 0n ? ` (cs base ${hex(cs.base)})` : ""}`;
    if (!kvmBytes || kvmBytes.length === 0) return at;
    return `${at} [bytes ${
      Array.from(kvmBytes, (b) => b.toString(16).padStart(2, "0")).join(" ")
    }]`;
  }

  #fatal(message: string): FallbackOutcome {
    return { kind: "fatal", suspend: "error", message: `vcpu ${this.#index}: ${message}` };
  }
}

/** The instruction bytes KVM put in kvm_run.emulation_failure, if it did (api.rst 5). */
export function emulationFailureBytes(run: Uint8Array, view: DataView): Uint8Array | undefined {
  const ndata = view.getUint32(O.internalNdata, true);
  if (ndata < 3) return undefined; // flags + insn_size/insn_bytes take data[0..2]
  if (!(view.getBigUint64(O.emulationFailureFlags, true) & 1n)) return undefined;
  const n = Math.min(run[O.emulationFailureInsnSize], 15);
  return run.slice(O.emulationFailureInsnBytes, O.emulationFailureInsnBytes + n);
}

/**
 * A one-vCPU KVM machine in the calling thread for exercising dhyve's
 * fallback instruction emulator (cpu/fallback.ts with the executor of
 * cpu/x86/exec.ts) without the rest of dhyve: a flat 32-bit protected-mode
 * guest at 0x10000 (dhyve's boot GDT shape: CS 0x10, DS 0x18), 16 MiB of
 * RAM, the in-kernel irqchip, and a run loop that hands emulation failures
 * to a {@linkcode FallbackEmulator}. Used by tests/fallback_kvm_test.ts,
 * which looks at the vCPU and guest RAM between and after runs.
 *
 * @module
 */
import {
  closeFd,
  createIrqchip,
  createVcpu,
  createVm,
  getSregs,
  getSupportedCpuid,
  getVcpuMmapSize,
  mapRunPage,
  openKvm,
  type RunPage,
  setCpuid2,
  setIdentityMapAddr,
  setRegs,
  setSregs,
  setTssAddr,
  setUserMemoryRegion,
  unmapRunPage,
} from "../cpu/kvm.ts";
import { IOCTL, KVM_EXIT, KVM_INTERNAL_ERROR, KVM_RUN_STRUCT } from "../cpu/kvm_abi.ts";
import { hostCpuid, libc } from "../cpu/libc.ts";
import { hostAtomics } from "../cpu/atomic.ts";
import {
  type EmulateFn,
  emulationFailureBytes,
  FallbackEmulator,
  type FallbackOutcome,
  GuestPhysicalMemory,
  KvmCpuState,
  type MmioPort,
} from "../cpu/fallback.ts";
import { type HostMemory, mapGuestRam } from "../lib/memory.ts";

/** Where the flat guests are loaded and entered. */
export const LOAD = 0x10000;
const GDT = 0x1000;
const RAM = 16 << 20;

/** How a run of the test machine ended. */
export interface HarnessRun {
  /** The byte written to port 0xf4, or undefined when the run ended otherwise. */
  readonly exitValue?: number;
  /** A fatal fallback outcome, when that ended the run. */
  readonly fatal?: Extract<FallbackOutcome, { kind: "fatal" }>;
  /** Port-I/O exits (not counting the final 0xf4 write). */
  readonly io: number;
  /** Fallbacks by label. */
  readonly fallbacks: ReadonlyMap<string, number>;
  /** Nanoseconds from the first KVM_RUN to the end. */
  readonly ns: number;
}

/** A one-vCPU machine running a flat 32-bit guest. */
export class FlatMachine {
  readonly #kvm: number;
  readonly #vm: number;
  readonly #vcpu: number;
  readonly #run: RunPage;
  /** Guest RAM. */
  readonly memory: HostMemory;
  /** The adapter's CPU state. */
  readonly cpu: KvmCpuState;
  readonly #fallback: FallbackEmulator;

  private constructor(
    kvm: number,
    vm: number,
    vcpu: number,
    run: RunPage,
    memory: HostMemory,
    cpu: KvmCpuState,
    fallback: FallbackEmulator,
  ) {
    this.#kvm = kvm;
    this.#vm = vm;
    this.#vcpu = vcpu;
    this.#run = run;
    this.memory = memory;
    this.cpu = cpu;
    this.#fallback = fallback;
  }

  /**
   * Builds the machine with `image` at 0x10000. `sync` chooses sync regs
   * (the kvm_run page) or ioctls for the adapter's register traffic.
   * `emulate` (default: the executor) lets a test look at the state around
   * the executor's call.
   */
  static create(
    image: Uint8Array,
    options: { sync: boolean; emulate?: EmulateFn; mmio?: MmioPort },
  ): FlatMachine {
    const kvm = openKvm();
    const vm = createVm(kvm);
    const memory = mapGuestRam([{ name: "ram", gpa: 0, size: RAM }]);
    try {
      setTssAddr(vm, 0xfffbd000);
      setIdentityMapAddr(vm, 0xfffbc000);
      setUserMemoryRegion(vm, 0, 0, RAM, memory.base);
      createIrqchip(vm);
      const vcpu = createVcpu(vm, 0);
      const cpuid = getSupportedCpuid(kvm);
      setCpuid2(vcpu, cpuid);
      const run = mapRunPage(vcpu, getVcpuMmapSize(kvm));
      memory.memory.write(LOAD, image);
      // The boot GDT: 0x10 flat 32-bit code, 0x18 flat data (SDM Vol. 3A, 3.4.5).
      memory.memory.writeU64(GDT + 0x10, 0x00cf9b000000ffffn);
      memory.memory.writeU64(GDT + 0x18, 0x00cf93000000ffffn);
      const s = getSregs(vcpu);
      const seg = (selector: number, type: number) => ({
        base: 0n,
        limit: 0xffffffff,
        selector,
        type,
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        avl: 0,
        unusable: 0,
      });
      s.cs = seg(0x10, 0xb);
      s.ds =
        s.es =
        s.fs =
        s.gs =
        s.ss =
          seg(0x18, 0x3);
      s.gdt = { base: BigInt(GDT), limit: 0x1f };
      s.cr0 |= 1n;
      setSregs(vcpu, s);
      setRegs(vcpu, {
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
        rip: BigInt(LOAD),
        rflags: 2n,
      });
      const cpu = new KvmCpuState({
        fd: vcpu,
        vmFd: vm,
        sync: options.sync ? run : null,
        cpuid,
        // As the vCPU Worker does: the guest may see the host's features (see CpuidTable).
        hostCpuid,
      });
      const noMmio: MmioPort = {
        read: () => 0xffffffff,
        write: () => {},
        read64: () => 0xffffffffffffffffn,
        write64: () => {},
      };
      const fallback = new FallbackEmulator({
        index: 0,
        cpu,
        memory: new GuestPhysicalMemory(
          memory.memory,
          memory.base,
          options.mmio ?? noMmio,
          hostAtomics,
        ),
        emulate: options.emulate,
      });
      return new FlatMachine(kvm, vm, vcpu, run, memory, cpu, fallback);
    } catch (e) {
      memory.unmap();
      closeFd(vm);
      closeFd(kvm);
      throw e;
    }
  }

  /**
   * Runs until the guest writes port 0xf4, a fallback is fatal, or
   * `maxExits` exits; any other exit throws.
   */
  run(maxExits = 10_000_000): HarnessRun {
    const c = libc();
    const O = KVM_RUN_STRUCT.o;
    const view = this.#run.view;
    const bytes = this.#run.bytes;
    const fallbacks = new Map<string, number>();
    let io = 0;
    const t0 = performance.now();
    const done = (r: Partial<HarnessRun>): HarnessRun => ({
      io,
      fallbacks,
      ns: (performance.now() - t0) * 1e6,
      ...r,
    });
    for (let n = 0; n < maxExits; n++) {
      if (c.fn.ioctl(this.#vcpu, IOCTL.KVM_RUN, 0n) < 0) {
        throw new Error(`KVM_RUN: ${c.strerror(c.errno())}`);
      }
      const reason = view.getUint32(O.exitReason, true);
      if (reason === KVM_EXIT.IO) {
        const port = view.getUint16(O.ioPort, true);
        if (port === 0xf4) {
          return done({ exitValue: bytes[Number(view.getBigUint64(O.ioDataOffset, true))] });
        }
        io++;
        continue;
      }
      if (
        reason === KVM_EXIT.INTERNAL_ERROR &&
        view.getUint32(O.internalSuberror, true) === KVM_INTERNAL_ERROR.EMULATION
      ) {
        const out = this.#fallback.handle(emulationFailureBytes(bytes, view));
        if (out.kind === "fatal") return done({ fatal: out });
        fallbacks.set(out.label, (fallbacks.get(out.label) ?? 0) + 1);
        continue;
      }
      throw new Error(`unexpected exit ${reason}`);
    }
    return done({});
  }

  /** The vCPU fd. */
  get vcpuFd(): number {
    return this.#vcpu;
  }

  /** Releases everything. */
  close(): void {
    try {
      this.cpu.flush();
    } catch { /* closing anyway */ }
    unmapRunPage(this.#run);
    closeFd(this.#vcpu);
    closeFd(this.#vm);
    closeFd(this.#kvm);
    this.memory.unmap();
  }
}

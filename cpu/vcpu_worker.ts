/**
 * The vCPU Worker: one per vCPU, it owns the vCPU's KVM_RUN loop.
 *
 * It receives one {@linkcode VcpuWorkerInit} message, attaches every device
 * of the VM in its own thread (the device state is shared, see
 * devices/state.ts), publishes its kernel thread id and then obeys its
 * control word: `run` enters the loop, `pause` parks it, `exit` ends it. The
 * main thread interrupts a blocking KVM_RUN by setting `immediate_exit` in
 * the vCPU's kvm_run page and sending SIGUSR2 to this thread (api.rst 5.2,
 * "immediate_exit"). Port and MMIO exits are handled right here, on the
 * vCPU's thread, so an exit costs no cross-thread round trip.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { attachGuestMemory } from "../lib/memory.ts";
import type { RamRange } from "../lib/layout.ts";
import { attachAll, type VmShared } from "../lib/vm/host.ts";
import { VCPU_REQUEST, VcpuControl, VmControl } from "../lib/vm/vm_control.ts";
import type { DeviceSpec } from "../devices/registry.ts";
import { EAGAIN, EINTR, hostCpuid, libc } from "./libc.ts";
import {
  checkExtension,
  type CpuidEntry,
  getRegs,
  getSregs,
  mapRunPage,
  translate,
  unmapRunPage,
} from "./kvm.ts";
import { IOCTL, KVM_CAP, KVM_EXIT_NAMES, KVM_INTERNAL_ERROR, KVM_RUN_STRUCT } from "./kvm_abi.ts";
import { hostAtomics } from "./atomic.ts";
import {
  emulationFailureBytes,
  FallbackEmulator,
  GuestPhysicalMemory,
  KvmCpuState,
  SYNC_ALL,
} from "./fallback.ts";
import { decodeExit, type IoExit, type MmioExit } from "./exits.ts";
import { formatRegisters } from "./regs.ts";
import type { GuestMemory } from "../lib/guest_memory.ts";
import { serveVcpuOp } from "../lib/ctl/vcpu_ops.ts";

/** Everything a vCPU Worker needs, sent once by the main thread. */
export interface VcpuWorkerInit {
  readonly index: number;
  readonly apicId: number;
  readonly vcpuFd: number;
  readonly runSize: number;
  /** This vCPU's control block. */
  readonly control: SharedArrayBuffer;
  /** The VM's shared pieces (control block, IRQ lines, timers, clock). */
  readonly shared: VmShared;
  readonly memory: {
    readonly base: bigint;
    readonly span: number;
    readonly ranges: readonly RamRange[];
  };
  readonly devices: readonly DeviceSpec[];
  /** The CPUID table given to this vCPU (KVM_SET_CPUID2), for the instruction emulator. */
  readonly cpuid: readonly CpuidEntry[];
}

/** Messages a vCPU Worker posts to the main thread. */
export type VcpuWorkerMessage =
  | { readonly type: "ready"; readonly index: number }
  | {
    readonly type: "log";
    readonly level: "debug" | "info" | "warning" | "error";
    readonly message: string;
  }
  | { readonly type: "finished"; readonly index: number };

const post = (m: VcpuWorkerMessage) => self.postMessage(m);
const log = (level: "debug" | "info" | "warning" | "error", message: string) =>
  post({ type: "log", level, message });

/** SystemEvent types (api.rst, KVM_EXIT_SYSTEM_EVENT). */
const SYSTEM_EVENT_SHUTDOWN = 1;
const SYSTEM_EVENT_RESET = 2;
const SYSTEM_EVENT_CRASH = 3;

function hex(n: number | bigint, width = 0): string {
  return "0x" + n.toString(16).padStart(width, "0");
}

/** Bytes at the guest's RIP (through its current paging mode), for error reports. */
function bytesAtRip(fd: number, memory: GuestMemory, csBase: bigint, rip: bigint): string {
  try {
    const linear = BigInt.asUintN(64, csBase + rip);
    const t = translate(fd, linear);
    if (!t.valid) return `(rip ${hex(linear)} does not translate)`;
    const gpa = Number(t.physical);
    const n = Math.max(0, Math.min(16, 0x1000 - (gpa & 0xfff)));
    if (!memory.contains(gpa, n)) return `(rip ${hex(linear)} -> gpa ${hex(gpa)} is not RAM)`;
    const bytes = memory.read(gpa, n);
    return `code at gpa ${hex(gpa)}: ${
      Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ")
    }`;
  } catch (e) {
    return `(cannot read code at rip: ${(e as Error).message})`;
  }
}

function vcpuState(fd: number, memory: GuestMemory, withCode: boolean): string {
  try {
    const regs = getRegs(fd);
    const sregs = getSregs(fd);
    const text = formatRegisters(regs, sregs);
    return withCode ? `${text}\n${bytesAtRip(fd, memory, sregs.cs.base, regs.rip)}` : text;
  } catch (e) {
    return `(registers unavailable: ${(e as Error).message})`;
  }
}

function start(init: VcpuWorkerInit): void {
  const c = libc();
  const control = new VcpuControl(init.control);
  const memory = attachGuestMemory(init.memory.base, init.memory.span, init.memory.ranges);
  const stats = control.stats;
  const S_EXITS = VcpuControl.slot("exits");
  const S_IO = VcpuControl.slot("io");
  const S_MMIO = VcpuControl.slot("mmio");
  const S_INTR = VcpuControl.slot("intr");
  const S_HLT = VcpuControl.slot("hlt");
  const S_SHUTDOWN = VcpuControl.slot("shutdown");
  const S_INTERNAL = VcpuControl.slot("internal_error");
  const S_OTHER = VcpuControl.slot("other");
  const S_UNCLAIMED = VcpuControl.slot("unclaimed");
  const S_FALLBACK = VcpuControl.slot("fallback");

  const seenUnclaimed = new Set<string>();
  const vmc = new VmControl(init.shared.control);
  const { devices: { pio, mmio } } = attachAll(init.shared, init.devices, {
    strict: init.shared.strictIo,
    record(bus, address, size, write) {
      stats[S_UNCLAIMED]++;
      vmc.countUnclaimed();
      if (seenUnclaimed.size >= 256) return;
      const key = `${bus}:${address}:${write}`;
      if (!seenUnclaimed.has(key)) {
        seenUnclaimed.add(key);
        log(
          "debug",
          `vcpu ${init.index}: unclaimed ${bus} ${size}-byte ${write ? "write" : "read"} at ${
            hex(address)
          }`,
        );
      }
    },
  });

  const page = mapRunPage(init.vcpuFd, init.runSize);
  const run = page.bytes;
  const view = page.view;
  const O = KVM_RUN_STRUCT.o;
  const fd = init.vcpuFd;
  const runIoctl = IOCTL.KVM_RUN;
  const ioctl = c.fn.ioctl;

  // The fallback instruction emulator (cpu/fallback.ts, with the executor of
  // cpu/x86/exec.ts, part of this module's static graph: it loads while the
  // main thread builds the machine, the Workers being spawned ahead). With KVM_CAP_SYNC_REGS,
  // after the first fallback KVM copies regs, sregs and events into the run page
  // at every exit (api.rst 5, "kvm_valid_regs"), so later fallbacks need no
  // ioctl to read or write them.
  const syncCap = checkExtension(init.shared.vmFd, KVM_CAP.SYNC_REGS);
  const sync = (syncCap & SYNC_ALL) === SYNC_ALL ? page : null;
  const fallback = new FallbackEmulator({
    index: init.index,
    cpu: new KvmCpuState({
      fd,
      vmFd: init.shared.vmFd,
      sync,
      cpuid: init.cpuid,
      hostCpuid,
    }),
    memory: new GuestPhysicalMemory(memory, init.memory.base, mmio, hostAtomics),
  });
  const fallbacks = control.fallbacks;

  // Control requests for this vCPU (lib/ctl): served between two KVM_RUNs.
  const opContext = {
    index: init.index,
    fd,
    memory,
    // MAXPHYADDR is CPUID.80000008H:EAX[7:0] (SDM Vol. 3A 4.1.4); 36 without the leaf.
    maxPhyAddr: (init.cpuid.find((e) => e.function === 0x80000008)?.eax ?? 36) & 0xff,
    flush: () => fallback.cpu.flush(),
  };
  const serveCall = (): void => {
    const message = control.takeCall();
    if (message !== undefined) control.answerCall(serveVcpuOp(opContext, message));
  };

  control.tid = c.gettid();
  post({ type: "ready", index: init.index });

  const suspend = (kind: "triple-fault" | "error" | "poweroff" | "reset", message: string) => {
    vmc.requestSuspend({ kind, message });
  };

  /** Port I/O: `count` accesses of `size` bytes through the data area of the run page. */
  const handleIo = (e: IoExit): void => {
    const { port, size, count } = e;
    let at = e.dataOffset;
    if (e.out) {
      for (let i = 0; i < count; i++, at += size) {
        const v = size === 1
          ? run[at]
          : size === 2
          ? view.getUint16(at, true)
          : view.getUint32(at, true);
        pio.write(port, size, v);
      }
    } else {
      for (let i = 0; i < count; i++, at += size) {
        const v = pio.read(port, size);
        if (size === 1) run[at] = v;
        else if (size === 2) view.setUint16(at, v, true);
        else view.setUint32(at, v >>> 0, true);
      }
    }
  };

  /**
   * MMIO through kvm_run.mmio.data: 1, 2, 4 or 8 bytes, or 3, 5, 6 or 7 for
   * the piece of an access KVM split at a page boundary, which goes to the
   * devices byte by byte (no device register is that wide).
   */
  const handleMmio = (e: MmioExit): void => {
    const { address, size } = e;
    const d = O.mmioData;
    if (e.write) {
      if (size === 8) mmio.write64(address, view.getBigUint64(d, true));
      else if (size === 4) mmio.write(address, 4, view.getUint32(d, true));
      else if (size === 2) mmio.write(address, 2, view.getUint16(d, true));
      else for (let i = 0; i < size; i++) mmio.write(address + i, 1, run[d + i]);
    } else {
      if (size === 8) view.setBigUint64(d, mmio.read64(address), true);
      else if (size === 4) view.setUint32(d, mmio.read(address, 4) >>> 0, true);
      else if (size === 2) view.setUint16(d, mmio.read(address, 2), true);
      else for (let i = 0; i < size; i++) run[d + i] = mmio.read(address + i, 1);
    }
  };

  /** The run loop; returns when the VM suspends or the vCPU is told to pause or exit. */
  const runLoop = (): void => {
    if (control.firstRunNs === 0) {
      control.markFirstRun(
        performance.timeOrigin + performance.now(),
        c.monotonicNs(init.shared.clockBaseSec),
      );
    }
    for (;;) {
      if (control.callPending) serveCall();
      if (control.request !== VCPU_REQUEST.none || vmc.suspending) return;
      const r = ioctl(fd, runIoctl, 0n);
      stats[S_EXITS]++;
      if (r < 0) {
        const e = c.errno();
        if (e === EINTR || e === EAGAIN) {
          // A kick: immediate_exit was set or a signal arrived. Clear it with a
          // sequentially consistent store (a full fence on x86), so it cannot be
          // reordered after the read of the request word at the top of the loop.
          Atomics.store(run, O.immediateExit, 0);
          stats[S_INTR]++;
          continue;
        }
        suspend("error", `vcpu ${init.index}: KVM_RUN failed: ${c.strerror(e)}`);
        return;
      }
      const exit = decodeExit(run, view);
      switch (exit.reason) {
        case "io":
          stats[S_IO]++;
          handleIo(exit);
          break;
        case "mmio":
          stats[S_MMIO]++;
          handleMmio(exit);
          break;
        case "intr":
          stats[S_INTR]++;
          Atomics.store(run, O.immediateExit, 0);
          break;
        case "hlt":
          // Only without an in-kernel LAPIC; dhyve always has one. Nothing to do.
          stats[S_HLT]++;
          break;
        case "shutdown":
          // A triple fault: the CPU could not deliver #DF (Intel SDM Vol. 3A, 6.15, interrupt 8).
          stats[S_SHUTDOWN]++;
          suspend(
            "triple-fault",
            `vcpu ${init.index} (apic id ${init.apicId}): triple fault\n${
              vcpuState(fd, memory, false)
            }`,
          );
          return;
        case "internal-error": {
          if (exit.suberror === KVM_INTERNAL_ERROR.EMULATION) {
            const t0 = performance.now();
            const outcome = fallback.handle(emulationFailureBytes(run, view));
            if (outcome.kind === "resumed") {
              stats[S_FALLBACK]++;
              fallbacks.record(outcome.label, (performance.now() - t0) * 1e6);
              break;
            }
            stats[S_INTERNAL]++;
            suspend(
              outcome.suspend,
              `${outcome.message}\n(after a KVM internal error: instruction emulation failed)\n${
                vcpuState(fd, memory, true)
              }`,
            );
            return;
          }
          stats[S_INTERNAL]++;
          // The other suberrors (api.rst 5, KVM_EXIT_INTERNAL_ERROR): nothing to fall back on.
          const what = exit.suberror === KVM_INTERNAL_ERROR.SIMUL_EX
            ? "an exception while delivering an exception"
            : exit.suberror === KVM_INTERNAL_ERROR.DELIVERY_EV
            ? "event delivery failed"
            : `suberror ${exit.suberror}`;
          const data = exit.data.length ? ` [${exit.data.map((d) => hex(d)).join(", ")}]` : "";
          suspend(
            "error",
            `vcpu ${init.index}: KVM internal error: ${what}${data}\n${
              vcpuState(fd, memory, true)
            }`,
          );
          return;
        }
        case "fail-entry":
          stats[S_OTHER]++;
          suspend(
            "error",
            `vcpu ${init.index}: VM entry failed, hardware reason ${hex(exit.hardwareReason)}\n${
              vcpuState(fd, memory, false)
            }`,
          );
          return;
        case "system-event":
          stats[S_OTHER]++;
          if (exit.type === SYSTEM_EVENT_SHUTDOWN) {
            suspend("poweroff", `vcpu ${init.index}: system event shutdown`);
          } else if (exit.type === SYSTEM_EVENT_RESET) {
            suspend("reset", `vcpu ${init.index}: system event reset`);
          } else if (exit.type === SYSTEM_EVENT_CRASH) {
            suspend("error", `vcpu ${init.index}: guest crash event`);
          } else suspend("error", `vcpu ${init.index}: unknown system event ${exit.type}`);
          return;
        case "other":
          stats[S_OTHER]++;
          suspend(
            "error",
            `vcpu ${init.index}: unexpected exit ${KVM_EXIT_NAMES[exit.code] ?? exit.code}\n${
              vcpuState(fd, memory, false)
            }`,
          );
          return;
      }
    }
  };

  // The control loop: wait for a request, act on it.
  // The request is taken (read and cleared) in one atomic exchange and the
  // value taken is the one acted on: a request posted between a separate read
  // and clear would otherwise be lost (a pause right after a resume, say).
  for (;;) {
    const req = control.takeRequest();
    if (req === VCPU_REQUEST.none) {
      if (control.callPending) serveCall();
      else control.waitRequestChange(VCPU_REQUEST.none);
      continue;
    }
    if (req === VCPU_REQUEST.exit) break;
    if (req === VCPU_REQUEST.pause) {
      control.setState("paused");
      continue;
    }
    // run
    control.setState("running");
    try {
      runLoop();
    } catch (e) {
      const err = e as Error;
      vmc.requestSuspend({ kind: "error", message: `vcpu ${init.index}: ${err.message}` });
    }
    try {
      // State an emulated instruction left for the next KVM_RUN is applied now:
      // the main thread may read or set the registers before that run.
      fallback.cpu.flush();
    } catch (e) {
      vmc.requestSuspend({
        kind: "error",
        message: `vcpu ${init.index}: cannot write back emulated state: ${(e as Error).message}`,
      });
    }
    control.markSuspend(c.monotonicNs(init.shared.clockBaseSec));
    control.setState(vmc.suspending ? "suspended" : "paused");
  }
  // The kvm_run mapping holds the vCPU file (and with it the whole VM) open:
  // drop it before saying we are done, so closing the fds frees the VM.
  unmapRunPage(page);
  control.setState("finished");
  post({ type: "finished", index: init.index });
  self.close();
}

self.onmessage = (e: MessageEvent<VcpuWorkerInit>) => {
  self.onmessage = null;
  try {
    start(e.data);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    log("error", `vcpu ${e.data.index}: worker failed: ${msg}`);
    const vm = new VmControl(e.data.shared.control);
    vm.requestSuspend({ kind: "error", message: `vcpu ${e.data.index}: ${msg}` });
    new VcpuControl(e.data.control).setState("finished");
    post({ type: "finished", index: e.data.index });
    self.close();
  }
};

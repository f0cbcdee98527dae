/**
 * The vCPU Worker: one per vCPU, it owns the vCPU's KVM_RUN loop.
 *
 * It receives one {@linkcode VcpuWorkerInit} message, attaches every device
 * of the VM in its own thread (the device state is shared, see
 * devices/state.ts), publishes its kernel thread id and then obeys its
 * control word: `run` enters the loop, `pause` parks it, `exit` ends it. The
 * main thread interrupts a blocking KVM_RUN by setting `immediate_exit` in
 * the vCPU's kvm_run page and sending SIGUSR1 to this thread (api.rst 5.2,
 * "immediate_exit"). Port and MMIO exits are handled right here, on the
 * vCPU's thread, so an exit costs no cross-thread round trip.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { attachGuestMemory } from "../lib/memory.ts";
import type { RamRange } from "../lib/layout.ts";
import { attachAll, type VmShared } from "../lib/host.ts";
import { VCPU_REQUEST, VcpuControl, VmControl } from "../lib/vm_control.ts";
import type { DeviceSpec } from "../devices/registry.ts";
import type { AccessSize } from "../devices/device.ts";
import { EAGAIN, EINTR, libc } from "./libc.ts";
import { getRegs, getSregs, mapRunPage, translate } from "./kvm.ts";
import { IOCTL, KVM_EXIT, KVM_EXIT_IO_OUT, KVM_EXIT_NAMES, KVM_RUN_STRUCT } from "./kvm_abi.ts";
import { formatRegisters } from "./regs.ts";
import type { GuestMemory } from "../lib/guest_memory.ts";

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

  const seenUnclaimed = new Set<string>();
  const vmc = new VmControl(init.shared.control);
  const { devices: { pio, mmio } } = attachAll(init.shared, init.devices, {
    strict: init.shared.strictIo,
    record(bus, address, size, write) {
      stats[S_UNCLAIMED]++;
      vmc.countUnclaimed();
      const key = `${bus}:${address}:${write}`;
      if (seenUnclaimed.size < 256 && !seenUnclaimed.has(key)) {
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

  control.tid = c.gettid();
  post({ type: "ready", index: init.index });

  const suspend = (kind: "triple-fault" | "error" | "poweroff" | "reset", message: string) => {
    vmc.requestSuspend({ kind, message });
  };

  /** Handles a KVM_EXIT_IO: `count` accesses of `size` bytes at the data offset. */
  const handleIo = (): void => {
    const size = run[O.ioSize] as AccessSize;
    const port = view.getUint16(O.ioPort, true);
    const count = view.getUint32(O.ioCount, true);
    let at = Number(view.getBigUint64(O.ioDataOffset, true));
    if (at + size * count > run.length) throw new Error(`KVM_EXIT_IO data outside the run page`);
    if (run[O.ioDirection] === KVM_EXIT_IO_OUT) {
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

  /** Handles a KVM_EXIT_MMIO of 1, 2, 4 or 8 bytes. */
  const handleMmio = (): void => {
    const addr = Number(view.getBigUint64(O.mmioPhysAddr, true));
    const len = view.getUint32(O.mmioLen, true);
    const d = O.mmioData;
    if (run[O.mmioIsWrite]) {
      if (len === 8) mmio.write64(addr, view.getBigUint64(d, true));
      else if (len === 4) mmio.write(addr, 4, view.getUint32(d, true));
      else if (len === 2) mmio.write(addr, 2, view.getUint16(d, true));
      else if (len === 1) mmio.write(addr, 1, run[d]);
      else throw new Error(`MMIO write of ${len} bytes at ${hex(addr)}`);
    } else {
      if (len === 8) view.setBigUint64(d, mmio.read64(addr), true);
      else if (len === 4) view.setUint32(d, mmio.read(addr, 4) >>> 0, true);
      else if (len === 2) view.setUint16(d, mmio.read(addr, 2), true);
      else if (len === 1) run[d] = mmio.read(addr, 1);
      else throw new Error(`MMIO read of ${len} bytes at ${hex(addr)}`);
    }
  };

  /** The run loop; returns when the VM suspends or the vCPU is told to pause or exit. */
  const runLoop = (): void => {
    if (control.firstRunNs === 0) {
      control.markFirstRun(performance.timeOrigin + performance.now(), c.monotonicNs());
    }
    for (;;) {
      if (control.request !== VCPU_REQUEST.none || vmc.suspending) return;
      const r = ioctl(fd, runIoctl, 0n);
      stats[S_EXITS]++;
      if (r < 0) {
        const e = c.errno();
        if (e === EINTR || e === EAGAIN) {
          // A kick: immediate_exit was set or a signal arrived. Clear it and look at the control words.
          run[O.immediateExit] = 0;
          stats[S_INTR]++;
          continue;
        }
        suspend("error", `vcpu ${init.index}: KVM_RUN failed: ${c.strerror(e)}`);
        return;
      }
      const reason = view.getUint32(O.exitReason, true);
      switch (reason) {
        case KVM_EXIT.IO:
          stats[S_IO]++;
          handleIo();
          break;
        case KVM_EXIT.MMIO:
          stats[S_MMIO]++;
          handleMmio();
          break;
        case KVM_EXIT.INTR:
          stats[S_INTR]++;
          run[O.immediateExit] = 0;
          break;
        case KVM_EXIT.HLT:
          // Only without an in-kernel LAPIC; dhyve always has one. Nothing to do.
          stats[S_HLT]++;
          break;
        case KVM_EXIT.SHUTDOWN:
          // A triple fault: the CPU could not deliver #DF (Intel SDM Vol. 3A, 6.15, interrupt 8).
          stats[S_SHUTDOWN]++;
          suspend(
            "triple-fault",
            `vcpu ${init.index} (apic id ${init.apicId}): triple fault\n${
              vcpuState(fd, memory, false)
            }`,
          );
          return;
        case KVM_EXIT.INTERNAL_ERROR: {
          stats[S_INTERNAL]++;
          const sub = view.getUint32(O.internalSuberror, true);
          const n = Math.min(view.getUint32(O.internalNdata, true), 16);
          const data = Array.from(
            { length: n },
            (_, i) => hex(view.getBigUint64(O.internalData + 8 * i, true)),
          );
          const what = sub === 1 ? "instruction emulation failed" : `suberror ${sub}`;
          suspend(
            "error",
            `vcpu ${init.index}: KVM internal error: ${what}${
              data.length ? ` [${data.join(", ")}]` : ""
            }\n${vcpuState(fd, memory, true)}`,
          );
          return;
        }
        case KVM_EXIT.FAIL_ENTRY:
          stats[S_OTHER]++;
          suspend(
            "error",
            `vcpu ${init.index}: VM entry failed, hardware reason ${
              hex(view.getBigUint64(O.failEntryReason, true))
            }\n${vcpuState(fd, memory, false)}`,
          );
          return;
        case KVM_EXIT.SYSTEM_EVENT: {
          stats[S_OTHER]++;
          const type = view.getUint32(O.systemEventType, true);
          if (type === SYSTEM_EVENT_SHUTDOWN) {
            suspend("poweroff", `vcpu ${init.index}: system event shutdown`);
          } else if (type === SYSTEM_EVENT_RESET) {
            suspend("reset", `vcpu ${init.index}: system event reset`);
          } else if (type === SYSTEM_EVENT_CRASH) {
            suspend("error", `vcpu ${init.index}: guest crash event`);
          } else suspend("error", `vcpu ${init.index}: unknown system event ${type}`);
          return;
        }
        default:
          stats[S_OTHER]++;
          suspend(
            "error",
            `vcpu ${init.index}: unexpected exit ${KVM_EXIT_NAMES[reason] ?? reason}\n${
              vcpuState(fd, memory, false)
            }`,
          );
          return;
      }
    }
  };

  // The control loop: wait for a request, act on it.
  for (;;) {
    const req = control.request;
    if (req === VCPU_REQUEST.none) {
      control.waitRequestChange(VCPU_REQUEST.none);
      continue;
    }
    if (req === VCPU_REQUEST.exit) break;
    if (req === VCPU_REQUEST.pause) {
      control.takeRequest();
      control.setState("paused");
      continue;
    }
    // run
    control.takeRequest();
    control.setState("running");
    try {
      runLoop();
    } catch (e) {
      const err = e as Error;
      vmc.requestSuspend({ kind: "error", message: `vcpu ${init.index}: ${err.message}` });
    }
    control.markSuspend(c.monotonicNs());
    control.setState(vmc.suspending ? "suspended" : "paused");
  }
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

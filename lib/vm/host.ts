/**
 * The host side of the device interface, for one thread: interrupt lines
 * through KVM_IRQ_LINE (wired-OR per GSI, see lib/irq.ts), MSIs through
 * KVM_SIGNAL_MSI, the VM clock, shared timers, console outputs on file
 * descriptors and suspend requests through the shared {@linkcode VmControl}.
 * Every thread of the VMM (main, the timer thread and each vCPU Worker)
 * builds one of these and attaches the same device specs with it, then puts
 * them on its own buses.
 *
 * @module
 */
import { irqLine, setPitHpetLegacy, signalMsi } from "../../cpu/kvm.ts";
import { libc } from "../../cpu/libc.ts";
import { type DeviceLock, MmioBus, PortBus, type UnclaimedPolicy } from "../../devices/bus.ts";
import { isMsiAddress, type Output } from "../../devices/device.ts";
import {
  attachDevice,
  type AttachedDevice,
  type DeviceContext,
  type DeviceSpec,
} from "../../devices/registry.ts";
import { IrqLineTable, picOnlyGsi } from "../irq.ts";
import { TimerTable } from "../timers.ts";
import { OutputRing } from "../output.ts";
import { WRITER_BELL } from "../output_constants.ts";
import { VmControl } from "./vm_control.ts";
import { signalEventfd } from "../virtio/host_io.ts";

/** The shared pieces of a VM every thread binds (all plain data or SharedArrayBuffers). */
export interface VmShared {
  readonly vmFd: number;
  readonly control: SharedArrayBuffer;
  readonly irqLines: SharedArrayBuffer;
  readonly timers: SharedArrayBuffer;
  /** The CLOCK_MONOTONIC second the VM clock counts from (the second the VM was created in). */
  readonly clockBaseSec: number;
  /**
   * Guest seconds per real second of the VM clock ([vm] clock_rate, 1 by
   * default): every device clock (HPET, ACPI PM timer, RTC, timer deadlines)
   * advances at this rate.
   */
  readonly clockRate: number;
  /** Console output rings by output id (null: the output goes nowhere). */
  readonly outputs: readonly (SharedArrayBuffer | null)[];
  /** The console writer's control block (lib/output_worker.ts); its bell is rung after each write. */
  readonly writer: SharedArrayBuffer;
  readonly strictIo: boolean;
  /** The MSI routes of the virtio devices' irqfds (lib/virtio/msi_routes.ts). */
  readonly msiRoutes: SharedArrayBuffer;
}

/**
 * The VM clock at `rate` guest ns per real ns ([vm] clock_rate), from a real
 * ns clock that starts near 0 (the VM's creation): integer ns, as the device
 * models expect; at rate 1 exactly the real clock.
 */
export function vmClock(rate: number, realNs: () => number): () => number {
  return rate === 1 ? realNs : () => Math.floor(realNs() * rate);
}

/** Real milliseconds until the VM clock, now at `now`, reaches `deadline` (both VM ns). */
export function realMsUntil(deadline: number, now: number, rate: number): number {
  return (deadline - now) / 1e6 / rate;
}

/** One thread's view of the shared VM pieces. */
export interface ThreadHost {
  readonly control: VmControl;
  readonly timers: TimerTable;
  readonly context: DeviceContext;
  /** The VM clock (ns since VM creation, at the VM's clock rate). */
  now(): number;
  /** Guest ns per real ns of {@linkcode ThreadHost.now} (VmShared.clockRate). */
  readonly clockRate: number;
}

/** Builds the calling thread's host. `attached` is filled as devices attach. */
export function threadHost(
  shared: VmShared,
  attached: Map<string, AttachedDevice>,
  overrides: Partial<Pick<DeviceContext, "msi">> = {},
): ThreadHost {
  const c = libc();
  const control = new VmControl(shared.control);
  const timers = new TimerTable(shared.timers);
  const lines = new IrqLineTable(shared.irqLines);
  const line = lines.lines((gsi, level) => irqLine(shared.vmFd, gsi, level));
  const outputs = new Map<number, Output>();
  const discard: Output = { write: (bytes) => bytes.length };
  const writer = new Int32Array(shared.writer);
  const base = shared.clockBaseSec;
  const rate = shared.clockRate;
  const now = vmClock(rate, () => c.monotonicNs(base));
  const context: DeviceContext = {
    irq: line,
    msi: {
      send: (address, data) => {
        // Only a write into the local APICs' window is an interrupt. Like
        // bhyve, dhyve drops the others (no device model here writes guest
        // memory for a message).
        if (isMsiAddress(address)) signalMsi(shared.vmFd, address, data);
      },
    },
    clock: { now },
    platform: { suspend: (req) => void control.requestSuspend(req) },
    output(id: number): Output {
      const buffer = shared.outputs[id];
      if (!buffer) return discard;
      let out = outputs.get(id);
      if (!out) {
        const ring = new OutputRing(buffer);
        out = {
          write: (bytes) => {
            const n = ring.write(bytes);
            if (n > 0) {
              Atomics.add(writer, WRITER_BELL, 1);
              Atomics.notify(writer, WRITER_BELL);
            }
            return n;
          },
        };
        outputs.set(id, out);
      }
      return out;
    },
    timers: (spec: DeviceSpec) =>
      Array.from({ length: spec.timerCount }, (_, i) => timers.timer(spec.timerBase + i)),
    device: (name: string) => attached.get(name),
    hostTime: () => Date.now() / 1000,
    picOnlyGsi,
    pitHpetLegacy: (on) => setPitHpetLegacy(shared.vmFd, on),
    signal: signalEventfd,
    ...overrides,
  };
  return { control, timers, context, now, clockRate: rate };
}

/** The devices and buses of one thread. */
export interface ThreadDevices {
  readonly devices: readonly AttachedDevice[];
  readonly byName: ReadonlyMap<string, AttachedDevice>;
  readonly pio: PortBus;
  readonly mmio: MmioBus;
  /** Timer slot -> the device owning it and its local timer id. */
  readonly timerOwners: readonly { readonly device: AttachedDevice; readonly id: number }[];
}

/** Attaches every spec in the calling thread (in order) and registers their ranges on fresh buses. */
export function attachAll(
  shared: VmShared,
  specs: readonly DeviceSpec[],
  policy: UnclaimedPolicy,
  overrides: Partial<Pick<DeviceContext, "msi">> = {},
): { host: ThreadHost; devices: ThreadDevices } {
  const byName = new Map<string, AttachedDevice>();
  const host = threadHost(shared, byName, overrides);
  const lock: DeviceLock = host.control.lock;
  const pio = new PortBus(lock, policy);
  const mmio = new MmioBus(lock, policy);
  const devices: AttachedDevice[] = [];
  const timerOwners: { device: AttachedDevice; id: number }[] = [];
  for (const spec of specs) {
    const d = attachDevice(host.context, spec);
    devices.push(d);
    byName.set(spec.name, d);
    for (const r of d.ranges) (r.bus === "pio" ? pio : mmio).register(r);
    if (d.ioFallback) pio.setFallback(d.ioFallback);
    for (let i = 0; i < spec.timerCount; i++) {
      timerOwners[spec.timerBase + i] = { device: d, id: i };
    }
  }
  return { host, devices: { devices, byName, pio, mmio, timerOwners } };
}

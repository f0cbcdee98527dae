/**
 * The host side of the device interface, for one thread: interrupt lines
 * through KVM_IRQ_LINE, the monotonic clock, console outputs on file
 * descriptors, and suspend requests through the shared {@linkcode VmControl}.
 * Every thread of the VMM (main and each vCPU Worker) builds one of these and
 * attaches the same device specs with it, then puts them on its own buses.
 *
 * @module
 */
import { irqLine } from "../cpu/kvm.ts";
import { libc } from "../cpu/libc.ts";
import { type DeviceLock, MmioBus, PortBus, type UnclaimedPolicy } from "../devices/bus.ts";
import type { IrqLine, Output } from "../devices/device.ts";
import {
  attachDevice,
  type AttachedDevice,
  type DeviceContext,
  type DeviceSpec,
} from "../devices/registry.ts";
import type { VmControl } from "./vm_control.ts";

/** Console outputs: file descriptors by output id (see the uart16550 spec option `output`). */
export type OutputFds = readonly number[];

/** Builds the calling thread's device context. */
export function hostContext(vmFd: number, control: VmControl, outputFds: OutputFds): DeviceContext {
  const c = libc();
  const lines = new Map<number, IrqLine>();
  const outputs = new Map<number, Output>();
  const discard: Output = { write() {} };
  return {
    irq(gsi: number): IrqLine {
      let line = lines.get(gsi);
      if (!line) {
        line = {
          assert: () => irqLine(vmFd, gsi, 1),
          deassert: () => irqLine(vmFd, gsi, 0),
          pulse: () => {
            irqLine(vmFd, gsi, 1);
            irqLine(vmFd, gsi, 0);
          },
        };
        lines.set(gsi, line);
      }
      return line;
    },
    clock: { now: () => c.monotonicNs() },
    platform: { suspend: (req) => void control.requestSuspend(req) },
    output(id: number): Output {
      const fd = outputFds[id];
      if (fd === undefined || fd < 0) return discard;
      let out = outputs.get(id);
      if (!out) {
        out = { write: (bytes) => c.writeAll(fd, bytes) };
        outputs.set(id, out);
      }
      return out;
    },
  };
}

/** The devices and buses of one thread. */
export interface ThreadDevices {
  readonly devices: readonly AttachedDevice[];
  readonly pio: PortBus;
  readonly mmio: MmioBus;
}

/** Attaches every spec in the calling thread and registers their ranges on fresh buses. */
export function attachAll(
  ctx: DeviceContext,
  specs: readonly DeviceSpec[],
  lock: DeviceLock,
  policy: UnclaimedPolicy,
): ThreadDevices {
  const pio = new PortBus(lock, policy);
  const mmio = new MmioBus(lock, policy);
  const devices = specs.map((s) => attachDevice(ctx, s));
  for (const d of devices) {
    for (const r of d.ranges) (r.bus === "pio" ? pio : mmio).register(r);
  }
  return { devices, pio, mmio };
}

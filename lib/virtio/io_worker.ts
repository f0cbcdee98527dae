/**
 * The I/O thread of one virtio device: it alone walks the device's queues,
 * so a slow disk never holds a vCPU and one device's I/O never waits behind
 * another's.
 *
 * It attaches the VM's devices like every thread does, finds its virtio
 * function, and then sleeps in poll(2) on the device's eventfds: one per
 * queue (signalled by KVM's ioeventfd, or by a vCPU thread that saw the
 * notify write itself), a wake eventfd (device status changes, a moved BAR,
 * a stop request) and the fds its backend wants watched (a tap, a socket).
 *
 * With `ioeventfd` on, it registers each queue's notify address with KVM
 * (KVM_IOEVENTFD) and follows the BAR when the guest moves it, so a notify
 * costs the guest an exit into the kernel only.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { ioeventfd, irqfd, signalMsi } from "../../cpu/kvm.ts";
import { isMsiAddress, type MsiSink } from "../../devices/device.ts";
import { MsiRouteTable } from "./msi_routes.ts";
import { attachGuestMemory } from "../memory.ts";
import type { RamRange } from "../layout.ts";
import { attachAll, type VmShared } from "../vm/host.ts";
import type { DeviceSpec } from "../../devices/registry.ts";
import { SplitQueue } from "../../devices/virtio/queue.ts";
import type { VirtioPciFunction } from "../../devices/virtio/pci.ts";
import {
  type VirtioQueueContext,
  type VirtioQueueHandler,
  VirtqueueError,
} from "../../devices/virtio/types.ts";
import { createBlkHandler } from "../../devices/virtio/blk.ts";
import { createNetHandler } from "../../devices/virtio/net.ts";
import { createConsoleHandler } from "../../devices/virtio/console.ts";
import { createRngHandler } from "../../devices/virtio/rng.ts";
import {
  drainEventfd,
  FileBlockBackend,
  FileConsoleBackend,
  HOST_RANDOM,
  pollFds,
  signalEventfd,
  SocketConsoleBackend,
  TapBackend,
} from "./host_io.ts";
import { IO_STOP, IO_STOPPED, type VirtioHostSpec } from "./spec.ts";

/** The one message an I/O worker receives. */
export interface IoWorkerInit {
  readonly shared: VmShared;
  readonly specs: readonly DeviceSpec[];
  readonly memory: { base: bigint; span: number; ranges: readonly RamRange[] };
  /** The virtio function's name (the "pci" device's function name). */
  readonly device: string;
  /** What the host side of the device is. */
  readonly host: VirtioHostSpec;
  /** Int32 [IO_STOP] = 1 asks the thread to stop (then wake it); it sets [IO_STOPPED]. */
  readonly stop: SharedArrayBuffer;
  /** Register queue notify addresses with KVM_IOEVENTFD. */
  readonly ioeventfd: boolean;
  /** Deliver MSI-X vectors through KVM irqfds (else KVM_SIGNAL_MSI). */
  readonly irqfd: boolean;
}

/** What the worker posts. */
export type IoWorkerMessage =
  | { readonly type: "ready" }
  | {
    readonly type: "log";
    readonly level: "debug" | "info" | "warning" | "error";
    readonly message: string;
  };

const post = (m: IoWorkerMessage) => self.postMessage(m);

/** Builds the backend and the handler factory of a device. */
function backendFor(host: VirtioHostSpec) {
  switch (host.kind) {
    case "virtio-blk": {
      const b = new FileBlockBackend(host.fd, host.path, host.size, host.readonly);
      return {
        create: (ctx: VirtioQueueContext, queues: readonly (SplitQueue | null)[]) =>
          createBlkHandler(ctx, queues, b, host.options),
        close: () => {},
      };
    }
    case "virtio-net": {
      const b = new TapBackend(host.fd, host.tap);
      return {
        create: (ctx: VirtioQueueContext, queues: readonly (SplitQueue | null)[]) =>
          createNetHandler(ctx, queues, b),
        close: () => {},
      };
    }
    case "virtio-console": {
      const b = host.socket
        ? new SocketConsoleBackend(host.fd, host.socket)
        : new FileConsoleBackend(host.fd, host.file ?? "");
      return {
        create: (ctx: VirtioQueueContext, queues: readonly (SplitQueue | null)[]) =>
          createConsoleHandler(ctx, queues, b),
        close: () => b instanceof SocketConsoleBackend ? b.close() : undefined,
      };
    }
    case "virtio-rng":
      return {
        create: (ctx: VirtioQueueContext, queues: readonly (SplitQueue | null)[]) =>
          createRngHandler(ctx, queues, HOST_RANDOM),
        close: () => {},
      };
  }
}

/**
 * The MSI sink of the I/O thread: its device's MSI-X vectors go through
 * their irqfds, each bound to its slot of the MSI route table; a vector
 * whose message changed gets its route first. The vector's masking and
 * pending bit were handled by the MSI-X capability before this is called,
 * and it runs with the device lock held (inside the transport's interrupt),
 * which serializes the route updates of all threads.
 */
function irqfdSink(init: IoWorkerInit, routes: MsiRouteTable): MsiSink {
  const { vmFd } = init.shared;
  const { irqFds, routeSlot } = init.host;
  return {
    send(address, data, vector) {
      if (!isMsiAddress(address)) return;
      if (vector === undefined || vector < 0 || vector >= irqFds.length) {
        signalMsi(vmFd, address, data);
        return;
      }
      const slot = routeSlot + vector;
      if (!routes.routes(slot, address, data)) routes.set(vmFd, slot, address, data);
      signalEventfd(irqFds[vector]);
    },
  };
}

function run(init: IoWorkerInit): void {
  const routes = new MsiRouteTable(init.shared.msiRoutes);
  // The routes of this device's vectors are set on first use; KVM_IRQFD
  // binds each eventfd to its slot's GSI now (a GSI without a route yet
  // delivers nothing).
  const bound: number[] = [];
  if (init.irqfd) {
    init.host.irqFds.forEach((fd, v) => {
      irqfd(init.shared.vmFd, fd, MsiRouteTable.gsi(init.host.routeSlot + v));
      bound.push(fd);
    });
  }
  const { host, devices } = attachAll(
    init.shared,
    init.specs,
    { strict: false, record() {} },
    init.irqfd ? { msi: irqfdSink(init, routes) } : {},
  );
  const lock = host.control.lock;
  const memory = attachGuestMemory(init.memory.base, init.memory.span, init.memory.ranges);
  const fn = devices.devices
    .map((d) => d.pciFunction?.(init.device))
    .find((f) => f !== undefined) as VirtioPciFunction | undefined;
  if (!fn) throw new Error(`virtio I/O thread: no function ${init.device}`);
  const stop = new Int32Array(init.stop);
  const spec = init.host;
  const backend = backendFor(spec);
  const name = init.device;
  const logged = new Set<string>();
  const logOnce = (level: "warning" | "error", message: string) => {
    if (logged.has(message) || logged.size > 100) return;
    logged.add(message);
    post({ type: "log", level, message: `${name}: ${message}` });
  };

  let handler = null as VirtioQueueHandler | null;
  /** Queue notify addresses registered with KVM, by queue. */
  const registered = new Map<number, number>();
  const deassignAll = () => {
    for (const [q, addr] of registered) {
      try {
        ioeventfd(init.shared.vmFd, addr, 2, spec.queueFds[q], true);
      } catch { /* the VM is going away */ }
    }
    registered.clear();
  };
  /** Keeps each queue's ioeventfd on its notify word as the BAR moves (under the lock). */
  const followNotifyWindow = () => {
    for (let q = 0; q < spec.queueFds.length; q++) {
      const want = fn.notifyAddress(q);
      const have = registered.get(q);
      if (want === have) continue;
      if (have !== undefined) {
        ioeventfd(init.shared.vmFd, have, 2, spec.queueFds[q], true);
        registered.delete(q);
      }
      if (want === null) continue;
      try {
        ioeventfd(init.shared.vmFd, want, 2, spec.queueFds[q]);
        registered.set(q, want);
      } catch (e) {
        // Another registration there (a guest that stacked BARs): notifies
        // still work through the vCPU's exit.
        logOnce("warning", `no ioeventfd for queue ${q}: ${(e as Error).message}`);
      }
    }
  };

  const context: VirtioQueueContext = {
    memory,
    get features() {
      return fn.features;
    },
    get config() {
      return fn.deviceConfig;
    },
    interrupt: (q) => lock.with(() => fn.interrupt(q)),
    configChanged: () => lock.with(() => fn.configChanged()),
    log: (message) => logOnce("warning", message),
  };

  const dropHandler = () => {
    handler?.close?.();
    handler = null;
  };
  const fail = (e: unknown) => {
    const why = e instanceof VirtqueueError
      ? `the driver's queue is malformed (${e.message}): the device needs a reset`
      : `device error, the device needs a reset: ${(e as Error)?.stack ?? e}`;
    logOnce(e instanceof VirtqueueError ? "warning" : "error", why);
    dropHandler();
    lock.with(() => fn.setNeedsReset(why));
  };

  /** Under the lock: follows resets and DRIVER_OK; true when the handler is new. */
  const sync = (): boolean => {
    if (init.ioeventfd) followNotifyWindow();
    if (fn.resetPending) {
      dropHandler();
      fn.completeReset();
      return false;
    }
    if (handler && !fn.driverOk) dropHandler();
    if (handler || !fn.driverOk) return false;
    try {
      const queues = Array.from({ length: fn.queueCount }, (_, q) => {
        const layout = fn.queueLayout(q);
        return layout ? new SplitQueue(memory, layout) : null;
      });
      handler = backend.create(context, queues);
      return true;
    } catch (e) {
      const why = e instanceof VirtqueueError
        ? `the driver's queue setup is invalid (${e.message}): the device needs a reset`
        : `cannot start the device: ${(e as Error).message}`;
      logOnce("warning", why);
      fn.setNeedsReset(why);
      return false;
    }
  };

  // DHYVE_VIRTIO_TRACE=1: one log line per wake-up of this thread (what woke
  // it, what the handler was told), to follow a driver from the host.
  let trace = false;
  try {
    trace = Deno.env.get("DHYVE_VIRTIO_TRACE") === "1";
  } catch { /* no env permission: no trace */ }
  post({ type: "ready" });
  // The host placed the BARs at power-on (no config write moved them): the
  // notify words get their ioeventfds now, before the driver's first kick.
  try {
    lock.with(sync);
  } catch (e) {
    fail(e);
  }
  const queueFds = spec.queueFds;
  for (;;) {
    if (Atomics.load(stop, IO_STOP) !== 0) break;
    const fds = [spec.wakeFd, ...queueFds, ...(handler?.pollFds?.() ?? [])];
    const out = handler?.pollWritableFds?.() ?? [];
    const ready = pollFds(fds, out, -1);
    if (Atomics.load(stop, IO_STOP) !== 0) break;
    const kicked: number[] = [];
    for (const fd of ready) {
      if (fd === spec.wakeFd) drainEventfd(fd);
      const q = queueFds.indexOf(fd);
      if (q >= 0 && drainEventfd(fd)) kicked.push(q);
    }
    let fresh = false;
    try {
      fresh = lock.with(sync);
    } catch (e) {
      fail(e);
    }
    const h = handler as VirtioQueueHandler | null;
    if (trace) {
      post({
        type: "log",
        level: "warning",
        message: `${name} trace: ready fds ${ready.join(",")} kicked ${
          kicked.join(",")
        } fresh ${fresh} handler ${h !== null} status ${fn.status} watch ${
          h?.pollFds?.().join(",") ?? ""
        }`,
      });
    }
    if (!h) continue;
    try {
      // A fresh handler looks at every queue: buffers may have been made
      // available before DRIVER_OK, or notified while no handler existed.
      for (const q of fresh ? queueFds.map((_, i) => i) : kicked) h.notify(q);
      const watched = new Set([...h.pollFds?.() ?? [], ...out]);
      for (const fd of ready) if (watched.has(fd)) h.ready?.(fd);
    } catch (e) {
      fail(e);
    }
  }
  dropHandler();
  lock.with(deassignAll);
  bound.forEach((fd, v) => {
    try {
      irqfd(init.shared.vmFd, fd, MsiRouteTable.gsi(init.host.routeSlot + v), true);
    } catch { /* the VM is going away */ }
  });
  backend.close();
  for (const fd of [spec.wakeFd, ...queueFds]) drainEventfd(fd);
  Atomics.store(stop, IO_STOPPED, 1);
  Atomics.notify(stop, IO_STOPPED);
}

self.onmessage = (e: MessageEvent<IoWorkerInit>) => {
  self.onmessage = null;
  try {
    run(e.data);
  } catch (err) {
    post({ type: "log", level: "error", message: `${e.data.device}: ${(err as Error).stack}` });
    const stop = new Int32Array(e.data.stop);
    Atomics.store(stop, IO_STOPPED, 1);
    Atomics.notify(stop, IO_STOPPED);
  }
};

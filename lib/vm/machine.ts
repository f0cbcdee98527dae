/**
 * Builds a whole machine from a validated {@linkcode VmConfig}, as a recipe:
 * lay out memory -> create the VM and its memory slots -> create the
 * interrupt controllers -> create the vCPUs (CPUID, topology) -> attach the
 * devices -> write the firmware tables -> load the boot payload. Starting the
 * vCPUs is a separate call (see lib/vm/vm.ts).
 *
 * A machine has two parts. Its resources last as long as it does: the guest
 * RAM mapping, the device state (shared buffers), the VM clock, the console
 * outputs, the timer slots. Its KVM instance (the VM fd, the vCPUs and their
 * Workers, the timer thread) is rebuilt by a VM reset, which is how a reset
 * keeps what a real machine keeps across one: the RTC's time and NVRAM.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { buildCpuid } from "../../cpu/cpuid.ts";
import {
  checkExtension,
  closeFd,
  type CpuidEntry,
  createIrqchip,
  createPit2,
  createVcpu,
  createVm,
  getLapic,
  getSregs,
  getSupportedCpuid,
  getVcpuMmapSize,
  KVM_PIT_SPEAKER_DUMMY,
  mapRunPage,
  openKvm,
  type RunPage,
  setCpuid2,
  setGsiRouting,
  setIdentityMapAddr,
  setLapic,
  setPicLevelIrqs,
  setRegs,
  setSregs,
  setTssAddr,
  setUserMemoryRegion,
  unmapRunPage,
} from "../../cpu/kvm.ts";
import { KVM_CAP } from "../../cpu/kvm_abi.ts";
import { libc } from "../../cpu/libc.ts";
import { type CpuPlace, cpuPlaces } from "../../cpu/topology.ts";
import type { VcpuWorkerInit } from "../../cpu/vcpu_worker.ts";
import { type DeviceSpec, DeviceSpecs, pciFunctionName } from "../../devices/registry.ts";
import {
  IO_STOP,
  IO_STOPPED,
  isVirtio,
  openVirtioHost,
  VIRTIO_QUEUES,
  type VirtioHostSpec,
  type VirtioPciConfig,
  virtioVectors,
} from "../virtio/spec.ts";
import type { IoWorkerInit, IoWorkerMessage } from "../virtio/io_worker.ts";
import { signalEventfd } from "../virtio/host_io.ts";
import { MsiRouteTable } from "../virtio/msi_routes.ts";
import { VirtioPciFunction } from "../../devices/virtio/pci.ts";
import { type LoadedPayload, loadPayload } from "../boot/payload.ts";
import { openConsoleFile } from "../console_file.ts";
import { showPath } from "../quote.ts";
import { describePlatform, type FirmwarePlatform } from "../firmware/platform.ts";
import {
  buildFirmwareTables,
  type FirmwareTables,
  writeFirmwareTables,
} from "../firmware/tables.ts";
import type { ConsoleBackend, VmConfig } from "../config.ts";
import { attachAll, type ThreadDevices, type ThreadHost, type VmShared } from "./host.ts";
import { IrqLineTable } from "../irq.ts";
import { type MemoryLayout, MMIO } from "../layout.ts";
import { type HostMemory, mapGuestRam } from "../memory.ts";
import { IRQ, PORT } from "../platform.ts";
import type { TimerWorkerInit } from "../timer_worker.ts";
import { TIMER_STOP, TIMER_STOPPED, TimerTable } from "../timers.ts";
import { OutputRing } from "../output.ts";
import {
  WRITER_BELL,
  WRITER_CONTROL_BYTES,
  WRITER_STOP,
  WRITER_STOPPED,
} from "../output_constants.ts";
import type { OutputWorkerInit } from "../output_worker.ts";
import { type PrespawnedWorkers, prespawnWorkers } from "./workers.ts";
import { VCPU_REQUEST, VcpuControl, VmControl } from "./vm_control.ts";

const log = getLogger(["dhyve", "machine"]);

/** A vCPU as the main thread sees it. */
export interface VcpuHandle {
  readonly place: CpuPlace;
  readonly fd: number;
  readonly worker: Worker;
  readonly control: VcpuControl;
  /** The main thread's mapping of the kvm_run page (for immediate_exit). */
  readonly run: RunPage;
}

/** Options for {@linkcode Machine.create}. */
export interface BuildOptions {
  /** The KVM device (default /dev/kvm). */
  readonly kvmPath?: string;
  /**
   * Gives up the build (a signal came): {@linkcode Machine.create} then
   * releases what it made and throws the signal's reason. It is looked at
   * between the steps of the build and while a console FIFO waits for its
   * reader.
   */
  readonly signal?: AbortSignal;
  /** Told once when a console FIFO has no reader yet and the build waits for one. */
  readonly onWait?: (message: string) => void;
}

/** Console output ids used in uart specs. */
const OUTPUT_COM1 = 0;
const OUTPUT_COM2 = 1;

/** LAPIC register offsets and LVT bits (Intel SDM Vol. 3A, 10.5.1). */
const APIC_LVT_LINT0 = 0x350;
const APIC_LVT_LINT1 = 0x360;
const APIC_MODE_NMI = 0x4 << 8;
const APIC_MODE_EXTINT = 0x7 << 8;
const APIC_LVT_MASKED = 1 << 16;

/** An open console output: its descriptor (-1: none) and what it is, for messages. */
interface OutputFd {
  readonly fd: number;
  readonly name: string;
}

/**
 * Opens the console output of `port`: stdout, nothing, or a file (created
 * and truncated; a FIFO is opened without blocking and waited for while
 * `options.signal` allows, lib/console_file.ts).
 */
async function openOutput(
  port: string,
  backend: ConsoleBackend,
  options: BuildOptions,
): Promise<OutputFd> {
  if (backend.kind === "stdio") return { fd: 1, name: `${port} output to standard output` };
  if (backend.kind === "none") return { fd: -1, name: `${port} output` };
  const fd = await openConsoleFile(backend.path, {
    signal: options.signal,
    onWait: options.onWait,
  });
  return { fd, name: `${port} output to ${showPath(backend.path)}` };
}

/**
 * Lets the event loop run (a signal's listener among others) and throws
 * the signal's reason if the build was given up.
 */
async function checkpoint(signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return;
  signal.throwIfAborted();
  await new Promise((resolve) => setTimeout(resolve, 0));
  signal.throwIfAborted();
}

/** The host's UTC offset in seconds (for rtc.use_localtime). */
function localUtcOffsetSeconds(): number {
  return -new Date().getTimezoneOffset() * 60;
}

/** The platform's devices, as specs, for a config (in attach order). */
export function platformDeviceSpecs(
  config: VmConfig,
  platform = describePlatform(config),
  virtioHosts: ReadonlyMap<string, VirtioHostSpec> = new Map(),
): DeviceSpecs {
  const specs = new DeviceSpecs();
  if (config.console.com1.kind !== "none") {
    specs.add("uart16550", "com1", { port: PORT.com1, irq: IRQ.com1, output: OUTPUT_COM1 });
  }
  if (config.console.com2.kind !== "none") {
    specs.add("uart16550", "com2", { port: PORT.com2, irq: IRQ.com2, output: OUTPUT_COM2 });
  }
  specs.add("i8042", "i8042");
  specs.add("reset-control", "reset-control");
  specs.add("post", "post");
  specs.add("acpi-pm", "acpi-pm", { port: PORT.pm1aEvent, sci: IRQ.sci });
  specs.add("rtc", "rtc", {
    port: PORT.rtc,
    irq: IRQ.rtc,
    utcOffset: config.rtc.useLocaltime ? localUtcOffsetSeconds() : 0,
    lowmemEnd: platform.layout.lowmemEnd,
    highmemSize: platform.layout.highmemSize,
  });
  specs.add("hpet", "hpet", { address: platform.hpet.address });
  const users = new Map(config.pci.map((p) => [`${p.slot}.${p.function}`, p]));
  const fns = platform.pciFunctions.filter((f) => users.has(`${f.slot}.${f.function}`));
  specs.add("pci", "pci", {
    ecamBase: platform.ecam.base,
    mem32Start: platform.pciWindows.mem32.start,
    mem32End: platform.pciWindows.mem32.end,
    mem64Start: platform.pciWindows.mem64.start,
    mem64End: platform.pciWindows.mem64.end,
    pirqIrqs: [...platform.routing.pirqIrqs],
    functions: fns.map((f) => {
      const p = users.get(`${f.slot}.${f.function}`)!;
      const host = virtioHosts.get(pciFunctionName(f));
      return {
        slot: f.slot,
        function: f.function,
        model: f.model,
        intx: f.intx,
        virtio: isVirtio(p)
          ? {
            options: virtioModelOptions(p),
            queueFds: host?.queueFds ?? Array(VIRTIO_QUEUES[p.type]).fill(-1),
            wakeFd: host?.wakeFd ?? -1,
          }
          : undefined,
      };
    }),
  });
  config.devices.forEach((d, i) => {
    specs.add(d.type, `${d.type}${config.devices.length > 1 ? i : ""}`, {
      port: d.port,
      size: d.size,
    });
  });
  return specs;
}

/** The plain-data options of a virtio function's model (devices/virtio/models.ts). */
function virtioModelOptions(p: VirtioPciConfig): Record<string, unknown> {
  switch (p.type) {
    case "virtio-blk":
      return { size: p.size, readonly: p.readonly, serial: p.serial, discard: p.discard };
    case "virtio-net":
      return { mac: p.mac.split(":").map((x) => parseInt(x, 16)) };
    default:
      return {};
  }
}

/** One KVM incarnation of the machine (rebuilt by a VM reset). */
interface Instance {
  readonly vmFd: number;
  readonly vcpus: readonly VcpuHandle[];
  readonly host: ThreadHost;
  readonly devices: ThreadDevices;
  readonly payload: LoadedPayload;
  /**
   * Ends the vCPU Workers (which must be out of their run loops) and the
   * timer thread, and waits for them; names the threads that did not stop
   * (with the state each was left in), empty when all did.
   */
  stop(timeoutMs: number): Promise<string[]>;
  /** Terminates the Workers, then unmaps the run pages and closes the vCPU fds and the VM fd. */
  close(): void;
}

/** Runs cleanups in reverse order, ignoring their failures (best effort on the way out). */
class Cleanups {
  readonly #fns: (() => void)[] = [];
  add(fn: () => void): void {
    this.#fns.push(fn);
  }
  run(): void {
    for (const f of this.#fns.splice(0).reverse()) {
      try {
        f();
      } catch { /* best effort */ }
    }
  }
}

/** A built machine: its lasting resources and its current KVM instance. */
export class Machine {
  /** The VM definition. */
  readonly config: VmConfig;
  /** The guest-physical memory map. */
  readonly layout: MemoryLayout;
  /** Guest RAM on the host. */
  readonly memory: HostMemory;
  /** The device specs (their state buffers last across resets). */
  readonly specs: readonly DeviceSpec[];
  /** The VM-wide control block (suspend requests, device lock). */
  readonly control: VmControl;
  /** /dev/kvm. */
  readonly kvmFd: number;
  /** What the firmware tables describe. */
  readonly platform: FirmwarePlatform;
  /** The firmware tables written into each instance's RAM. */
  readonly firmware: FirmwareTables;
  readonly #places: readonly CpuPlace[];
  /** Each vCPU's CPUID table (by place), set on its vCPU in every instance. */
  readonly #cpuids: readonly (readonly CpuidEntry[])[];
  readonly #runSize: number;
  readonly #timers: TimerTable;
  readonly #lines: IrqLineTable;
  /** The virtio functions' host sides, by function name. */
  readonly #virtio: ReadonlyMap<string, VirtioHostSpec>;
  /** Their irqfds' MSI routes. */
  readonly #msiRoutes: MsiRouteTable;
  /** Console output rings by output id (null: the output goes nowhere). */
  readonly #outputs: readonly (OutputRing | null)[];
  /** The console writer thread and its control block. */
  readonly #writer: Worker;
  readonly #writerControl: Int32Array<SharedArrayBuffer>;
  readonly #clockBaseSec: number;
  readonly #resources: Cleanups;
  /** Cleared when a thread did not stop: guest RAM then stays mapped (a thread may still use it). */
  readonly #safety: { unmapRam: boolean };
  #instance: Instance | undefined;

  private constructor(
    config: VmConfig,
    memory: HostMemory,
    platform: FirmwarePlatform,
    kvmFd: number,
    places: readonly CpuPlace[],
    supported: readonly CpuidEntry[],
    runSize: number,
    outputs: readonly OutputFd[],
    resources: Cleanups,
    safety: { unmapRam: boolean },
    virtio: ReadonlyMap<string, VirtioHostSpec>,
  ) {
    this.config = config;
    this.layout = platform.layout;
    this.memory = memory;
    this.#virtio = virtio;
    this.#msiRoutes = new MsiRouteTable(
      [...virtio.values()].reduce((n, v) => n + v.irqFds.length, 0),
    );
    const specs = platformDeviceSpecs(config, platform, virtio);
    this.specs = specs.list;
    this.platform = platform;
    this.kvmFd = kvmFd;
    this.#places = places;
    this.#cpuids = places.map((place) =>
      buildCpuid(supported, config.cpu, place.apicId, { x2apic: config.cpu.x2apic })
    );
    this.#runSize = runSize;
    this.#outputs = outputs.map((o) => (o.fd >= 0 ? new OutputRing() : null));
    this.#writerControl = new Int32Array(new SharedArrayBuffer(WRITER_CONTROL_BYTES));
    this.#resources = resources;
    this.#safety = safety;
    this.control = new VmControl();
    this.#timers = new TimerTable(specs.timerSlots);
    this.#lines = new IrqLineTable();
    this.#clockBaseSec = libc().monotonicSeconds();
    this.#writer = new Worker(new URL("../output_worker.ts", import.meta.url), {
      type: "module",
      name: "console",
    });
    resources.add(() => this.#writer.terminate());
    this.#writer.postMessage(
      {
        outputs: this.#outputs.flatMap((r, id) =>
          r ? [{ ring: r.buffer, fd: outputs[id].fd, name: outputs[id].name }] : []
        ),
        control: this.#writerControl.buffer,
        timers: this.#timers.buffer,
      } satisfies OutputWorkerInit,
    );
    // The MP table's processor entries carry the CPU signature and features (CPUID.01H EAX, EDX).
    const leaf1 = supported.find((e) => e.function === 1);
    this.firmware = buildFirmwareTables(
      platform,
      leaf1 && { signature: leaf1.eax, features: leaf1.edx },
    );
  }

  /**
   * Builds the machine described by `config`. `workers`, when given, were
   * spawned earlier with {@linkcode prespawnWorkers} (one vCPU Worker per vCPU).
   */
  static async create(
    config: VmConfig,
    options: BuildOptions = {},
    workers?: PrespawnedWorkers,
  ): Promise<Machine> {
    const resources = new Cleanups();
    const present = cpuPlaces({ ...config.cpu }).filter((p) => p.present);
    const spawned = workers ?? prespawnWorkers(present.length);
    resources.add(() => [...spawned.vcpus, spawned.timer].forEach((w) => w.terminate()));
    const safety = { unmapRam: true };
    try {
      if (spawned.vcpus.length !== present.length) {
        throw new Error("one vCPU Worker per vCPU is needed");
      }
      await checkpoint(options.signal);
      const platform = describePlatform(config);
      const kvmFd = openKvm(options.kvmPath);
      resources.add(() => closeFd(kvmFd));
      checkCapabilities(kvmFd, present);
      const memory = mapGuestRam(platform.layout.ram);
      resources.add(() => {
        if (safety.unmapRam) memory.unmap();
        else log.warn("guest RAM left mapped: a thread that did not stop may still use it");
      });
      // Each output is released with the machine from the moment it is open.
      const outputs: OutputFd[] = [];
      resources.add(() => outputs.forEach((o) => o.fd > 2 && libc().fn.close(o.fd)));
      for (const port of ["com1", "com2"] as const) {
        outputs.push(await openOutput(port, config.console[port], options));
      }
      // The virtio devices' images, taps and sockets, and their eventfds.
      const virtio = new Map<string, VirtioHostSpec>();
      let routeSlot = 0;
      for (const p of config.pci.filter(isVirtio)) {
        const h = openVirtioHost(p, routeSlot);
        routeSlot += virtioVectors(p.type);
        resources.add(h.close);
        virtio.set(pciFunctionName({ model: p.type, slot: p.slot, function: p.function }), h.spec);
      }
      await checkpoint(options.signal);
      const machine = new Machine(
        config,
        memory,
        platform,
        kvmFd,
        present,
        getSupportedCpuid(kvmFd),
        getVcpuMmapSize(kvmFd),
        outputs,
        resources,
        safety,
        virtio,
      );
      await checkpoint(options.signal);
      machine.#instance = await machine.#createInstance(true, spawned, options.signal);
      return machine;
    } catch (e) {
      resources.run();
      throw e;
    }
  }

  #current(): Instance {
    if (!this.#instance) {
      throw new Error("the machine has no KVM instance (closed, or being reset)");
    }
    return this.#instance;
  }

  /** The current KVM VM fd. */
  get vmFd(): number {
    return this.#current().vmFd;
  }

  /** The current vCPUs. */
  get vcpus(): readonly VcpuHandle[] {
    return this.#current().vcpus;
  }

  /** The main thread's instances of the devices (current instance). */
  get devices(): ThreadDevices {
    return this.#current().devices;
  }

  /** The main thread's devices, or undefined while a reset rebuilds the instance (or after close). */
  get currentDevices(): ThreadDevices | undefined {
    return this.#instance?.devices;
  }

  /** The current vCPUs, or none while a reset rebuilds the instance (or after close). */
  get currentVcpus(): readonly VcpuHandle[] {
    return this.#instance?.vcpus ?? [];
  }

  /** The main thread's host (current instance). */
  get host(): ThreadHost {
    return this.#current().host;
  }

  /** What was loaded to boot. */
  get payload(): LoadedPayload {
    return this.#current().payload;
  }

  /**
   * Stops the current instance's threads: the vCPU Workers (out of their run
   * loops already) and the timer thread. Names the threads that did not
   * stop in time (empty when all did): the machine must then not be reset,
   * and its guest RAM stays mapped when it is closed, because a thread may
   * still use it.
   */
  async stop(timeoutMs = 5000): Promise<string[]> {
    const late = (await this.#instance?.stop(timeoutMs)) ?? [];
    if (late.length > 0) this.#safety.unmapRam = false;
    return late;
  }

  /**
   * A VM reset, after {@linkcode Machine.stop}: drops the KVM instance, clears
   * RAM, resets every device (the RTC keeps its time and NVRAM) and builds a
   * new instance with fresh vCPU Workers, firmware tables and boot payload.
   */
  async reset(): Promise<void> {
    if (!this.#safety.unmapRam) {
      throw new Error("cannot reset: a vCPU or timer thread did not stop");
    }
    // What the UARTs hold goes out before their state is reset (a stalled
    // reader delays the reboot up to 2 s; after that the bytes are lost).
    if (!await this.#handOverHeldOutput(Date.now() + 2000)) {
      log.warn("console output held by a device was lost at the reset: its reader stalled");
    }
    this.#instance?.close();
    this.#instance = undefined;
    this.memory.discard();
    this.#timers.disarmAll();
    this.#lines.clearAll();
    this.#msiRoutes.clear();
    this.control.clearSuspend();
    this.#instance = await this.#createInstance(false);
  }

  /**
   * Writes out the console output still queued and stops the console writer
   * (after the vCPUs stopped). False when the output could not be written
   * within `timeoutMs` (a reader that does not read).
   */
  async flushOutput(timeoutMs = 2000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const handed = await this.#handOverHeldOutput(deadline);
    const ctl = this.#writerControl;
    Atomics.store(ctl, WRITER_STOP, 1);
    Atomics.add(ctl, WRITER_BELL, 1);
    Atomics.notify(ctl, WRITER_BELL);
    return await waitFlag(ctl, WRITER_STOPPED, deadline) && handed;
  }

  /**
   * With the vCPUs and the timer thread stopped: hands the console devices'
   * held bytes (a UART's transmit FIFO, kept while the ring was full) to the
   * writer as it makes room, until none are held or the deadline. Without
   * this they would be lost when the VM ends or resets.
   */
  async #handOverHeldOutput(deadline: number): Promise<boolean> {
    const devices = (this.#instance?.devices.devices ?? []).filter((d) => d.outputHeld);
    const lock = this.control.lock;
    for (;;) {
      // Never wait for the lock past the deadline: a thread that did not
      // stop may hold it for good.
      let held = -1;
      if (lock.tryAcquire()) {
        try {
          held = 0;
          for (const d of devices) {
            d.onOutputReady?.();
            held += d.outputHeld!();
          }
        } finally {
          lock.release();
        }
      }
      if (held === 0) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** The virtio devices' counters by function name (VirtioPciFunction.stats); empty while no instance. */
  virtioStats(): Record<string, ReturnType<VirtioPciFunction["stats"]>> {
    const out: Record<string, ReturnType<VirtioPciFunction["stats"]>> = {};
    const pci = this.#instance?.devices.devices.find((d) => d.pciFunction);
    for (const name of this.#virtio.keys()) {
      const fn = pci?.pciFunction?.(name);
      if (fn instanceof VirtioPciFunction) out[name] = fn.stats();
    }
    return out;
  }

  /** Releases everything: the instance, then the resources. Idempotent. */
  close(): void {
    this.#instance?.close();
    this.#instance = undefined;
    this.#resources.run();
  }

  async #createInstance(
    powerOn: boolean,
    workers?: PrespawnedWorkers,
    signal?: AbortSignal,
  ): Promise<Instance> {
    const spawned = workers ?? prespawnWorkers(this.#places.length);
    const vcpuWorkers = spawned.vcpus;
    const timerWorker = spawned.timer;
    const control = this.control;
    timerWorker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      control.requestSuspend({ kind: "error", message: `timer thread: ${e.message}` });
    };
    const timerStop = new Int32Array(new SharedArrayBuffer(8));
    const stopTimerThread = () => {
      Atomics.store(timerStop, TIMER_STOP, 1);
      this.#timers.wake();
    };
    // One I/O thread per virtio device (lib/virtio/io_worker.ts).
    const io = [...this.#virtio].map(([device, host]) => {
      const p = this.config.pci.find((f) =>
        pciFunctionName({ model: f.type, slot: f.slot, function: f.function }) === device
      );
      const tuning = p && p.type !== "testdev" ? p : {};
      const worker = new Worker(new URL("../virtio/io_worker.ts", import.meta.url), {
        type: "module",
        name: `io ${device}`,
      });
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        control.requestSuspend({ kind: "error", message: `I/O thread of ${device}: ${e.message}` });
      };
      worker.onmessage = (e: MessageEvent<IoWorkerMessage>) => {
        const m = e.data;
        if (m.type === "log") {
          if (m.level === "error") log.error("{message}", { message: m.message });
          else if (m.level === "warning") log.warn("{message}", { message: m.message });
          else log.debug("{message}", { message: m.message });
        }
      };
      return {
        device,
        host,
        worker,
        tuning: tuning as { ioeventfd?: boolean; irqfd?: boolean },
        stop: new Int32Array(new SharedArrayBuffer(8)),
      };
    });
    const stopIoThreads = () => {
      for (const t of io) {
        Atomics.store(t.stop, IO_STOP, 1);
        signalEventfd(t.host.wakeFd);
      }
    };
    const terminateWorkers = () => {
      stopTimerThread();
      stopIoThreads();
      for (const w of [...vcpuWorkers, timerWorker, ...io.map((t) => t.worker)]) w.terminate();
    };
    // KVM resources, released in reverse order: run pages, vCPU fds, then the VM fd.
    const kvm = new Cleanups();
    try {
      const config = this.config;
      // The VM and its memory slots.
      const vmFd = createVm(this.kvmFd);
      kvm.add(() => closeFd(vmFd));
      // Intel VMX needs a TSS (3 pages) and an identity-map page for real mode (api.rst 4.36, 4.37).
      setTssAddr(vmFd, MMIO.kvmTss);
      setIdentityMapAddr(vmFd, MMIO.kvmIdentityMap);
      this.layout.ram.forEach((r, slot) =>
        setUserMemoryRegion(vmFd, slot, r.gpa, r.size, this.memory.base + BigInt(r.gpa))
      );

      // Interrupt controllers and timers in the kernel: LAPICs, IOAPIC, 8259 pair, 8254,
      // with dhyve's GSI routing (lib/irq.ts) and the SCI level-triggered in the ELCR.
      createIrqchip(vmFd);
      // KVM_PIT_SPEAKER_DUMMY makes KVM serve port 0x61 (PIT channel 2 gate and output,
      // used by guests to calibrate timers); without it the port would be unclaimed.
      createPit2(vmFd, KVM_PIT_SPEAKER_DUMMY);
      setGsiRouting(vmFd, this.#msiRoutes.table());
      // Level-triggered in the ELCR: the SCI and the ISA IRQs the PIRQs are routed to.
      setPicLevelIrqs(vmFd, [IRQ.sci, ...this.platform.routing.levelIrqs]);

      // vCPUs: the vCPU id is the APIC ID; CPUID describes the topology.
      const vcpuFds = this.#places.map((place, i) => {
        const fd = createVcpu(vmFd, place.apicId);
        kvm.add(() => closeFd(fd));
        setCpuid2(fd, this.#cpuids[i]);
        // Virtual wire mode, as a PC BIOS leaves it (MP spec 1.4, 3.6.2.2): the
        // BSP's LINT0 takes the 8259's ExtINT; every LINT1 takes NMI.
        const lapic = getLapic(fd);
        const lv = new DataView(lapic.buffer);
        lv.setUint32(
          APIC_LVT_LINT0,
          place.index === 0 ? APIC_MODE_EXTINT : APIC_MODE_EXTINT | APIC_LVT_MASKED,
          true,
        );
        lv.setUint32(APIC_LVT_LINT1, APIC_MODE_NMI, true);
        setLapic(fd, lapic);
        return { place, fd };
      });

      // Devices: attached here, in the timer thread and in every vCPU thread.
      const shared: VmShared = {
        vmFd,
        control: control.buffer,
        irqLines: this.#lines.buffer,
        timers: this.#timers.buffer,
        clockBaseSec: this.#clockBaseSec,
        clockRate: config.vm.clockRate,
        outputs: this.#outputs.map((r) => r?.buffer ?? null),
        writer: this.#writerControl.buffer,
        strictIo: config.vm.strictIo,
        msiRoutes: this.#msiRoutes.buffer,
      };
      await checkpoint(signal);
      const { host, devices } = attachAll(shared, this.specs, {
        strict: config.vm.strictIo,
        record() {},
      });
      control.lock.with(() => {
        for (const d of devices.devices) (powerOn && d.powerOn ? d.powerOn : d.reset)();
      });
      timerWorker.postMessage(
        { shared, specs: this.specs, stop: timerStop.buffer } satisfies TimerWorkerInit,
      );
      for (const t of io) {
        t.worker.postMessage(
          {
            shared,
            specs: this.specs,
            memory: { base: this.memory.base, span: this.memory.span, ranges: this.layout.ram },
            device: t.device,
            host: t.host,
            stop: t.stop.buffer,
            ioeventfd: t.tuning.ioeventfd ?? config.vm.ioeventfd,
            irqfd: t.tuning.irqfd ?? config.vm.irqfd,
          } satisfies IoWorkerInit,
        );
      }

      // Firmware tables (ACPI, MP) in the firmware area, then the boot payload and the BSP's entry state.
      await checkpoint(signal);
      writeFirmwareTables(this.memory.memory, this.firmware);
      const payload = await loadPayload(this.memory.memory, this.layout.e820, config.boot);
      await checkpoint(signal);
      const bsp = vcpuFds[0];
      setSregs(bsp.fd, payload.entry.sregs(getSregs(bsp.fd)));
      setRegs(bsp.fd, payload.entry.regs);
      log.debug("loaded {payload}", { payload: payload.description });

      // Hand each Worker its vCPU.
      const vcpus: VcpuHandle[] = vcpuFds.map(({ place, fd }, i) => {
        const vc = new VcpuControl();
        const init: VcpuWorkerInit = {
          index: place.index,
          apicId: place.apicId,
          vcpuFd: fd,
          runSize: this.#runSize,
          control: vc.buffer,
          shared,
          memory: { base: this.memory.base, span: this.memory.span, ranges: this.layout.ram },
          devices: this.specs,
          cpuid: this.#cpuids[i],
        };
        vcpuWorkers[i].postMessage(init);
        const run = mapRunPage(fd, this.#runSize);
        kvm.add(() => unmapRunPage(run));
        return { place, fd, worker: vcpuWorkers[i], control: vc, run };
      });

      const stop = async (timeoutMs: number): Promise<string[]> => {
        const deadline = Date.now() + timeoutMs;
        const left = () => Math.max(0, deadline - Date.now());
        const late: string[] = [];
        // The timer thread finishes the callback it may be in, then stops; the
        // vCPUs are out of their run loops, so no guest code needs it any more.
        stopTimerThread();
        // Each vCPU Worker drops its kvm_run mapping and reports "finished".
        for (const v of vcpus) v.control.setRequest(VCPU_REQUEST.exit);
        for (const v of vcpus) {
          while (v.control.state !== "finished" && left() > 0) {
            await v.control.waitStateChange(v.control.state, Math.min(left(), 100));
          }
          if (v.control.state !== "finished") {
            late.push(`vcpu ${v.place.index} (${v.control.state})`);
          }
        }
        if (!await waitFlag(timerStop, TIMER_STOPPED, deadline)) late.push("the timer thread");
        // The I/O threads finish the request they serve (a disk write lands), then stop.
        stopIoThreads();
        for (const t of io) {
          if (!await waitFlag(t.stop, IO_STOPPED, deadline)) {
            late.push(`the I/O thread of ${t.device}`);
          }
        }
        return late;
      };
      return {
        vmFd,
        vcpus,
        host,
        devices,
        payload,
        stop,
        close: () => {
          terminateWorkers();
          // terminate() cannot take a thread out of an ioctl: one that did not
          // stop may still use its run page and fds (a closed fd number can
          // be reused by the next VM), so they stay, like guest RAM does.
          if (this.#safety.unmapRam) kvm.run();
          else {log.warn(
              "KVM fds and run pages left open: a thread that did not stop may still use them",
            );}
        },
      };
    } catch (e) {
      terminateWorkers();
      kvm.run();
      throw e;
    }
  }
}

/** Waits until another thread sets word `index` of `flags` to non-zero; false at `deadline` (Date.now() ms). */
async function waitFlag(flags: Int32Array, index: number, deadline: number): Promise<boolean> {
  while (Atomics.load(flags, index) === 0) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    const r = Atomics.waitAsync(flags, index, 0, Math.min(left, 100));
    if (r.async) await r.value;
  }
  return true;
}

/** Checks the KVM capabilities dhyve relies on, and the vCPU limits. */
function checkCapabilities(kvmFd: number, present: readonly CpuPlace[]): void {
  const needed = [
    ["IRQCHIP", KVM_CAP.IRQCHIP],
    ["USER_MEMORY", KVM_CAP.USER_MEMORY],
    ["SET_TSS_ADDR", KVM_CAP.SET_TSS_ADDR],
    ["PIT2", KVM_CAP.PIT2],
    ["IMMEDIATE_EXIT", KVM_CAP.IMMEDIATE_EXIT],
    ["IRQ_ROUTING", KVM_CAP.IRQ_ROUTING],
    ["SIGNAL_MSI", KVM_CAP.SIGNAL_MSI],
  ] as const;
  for (const [name, cap] of needed) {
    if (!checkExtension(kvmFd, cap)) {
      throw new Error(`KVM lacks KVM_CAP_${name}, which dhyve needs`);
    }
  }
  const maxVcpus = checkExtension(kvmFd, KVM_CAP.MAX_VCPUS) ||
    checkExtension(kvmFd, KVM_CAP.NR_VCPUS);
  if (present.length > maxVcpus) {
    throw new Error(`KVM allows ${maxVcpus} vCPUs; the config asks for ${present.length}`);
  }
  const maxId = checkExtension(kvmFd, KVM_CAP.MAX_VCPU_ID) || maxVcpus;
  const highest = Math.max(...present.map((p) => p.apicId));
  if (highest >= maxId) {
    throw new Error(`KVM allows vCPU ids below ${maxId}; APIC ID ${highest} is too high`);
  }
}

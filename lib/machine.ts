/**
 * Builds a whole machine from a validated {@linkcode VmConfig}, as a recipe:
 * lay out memory -> create the VM and its memory slots -> create the
 * interrupt controllers -> create the vCPUs (CPUID, topology) -> attach the
 * devices -> load the boot payload. Starting the vCPUs is a separate call
 * (see lib/vm.ts).
 *
 * vCPU Workers are spawned first, so their module loading overlaps the KVM
 * setup done here; each one is handed its vCPU when the machine is ready.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { buildCpuid } from "../cpu/cpuid.ts";
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
} from "../cpu/kvm.ts";
import { KVM_CAP } from "../cpu/kvm_abi.ts";
import { type CpuPlace, cpuPlaces } from "../cpu/topology.ts";
import { cString, libc, O_CLOEXEC } from "../cpu/libc.ts";
import type { VcpuWorkerInit } from "../cpu/vcpu_worker.ts";
import { type DeviceSpec, DeviceSpecs } from "../devices/registry.ts";
import { type LoadedPayload, loadPayload } from "./boot/payload.ts";
import type { ConsoleBackend, VmConfig } from "./config.ts";
import { attachAll, type ThreadDevices, type ThreadHost, type VmShared } from "./host.ts";
import { gsiRoutes, IrqLineTable } from "./irq.ts";
import { TimerTable } from "./timers.ts";
import type { TimerWorkerInit } from "./timer_worker.ts";
import { computeLayout, type MemoryLayout, MMIO } from "./layout.ts";
import { type HostMemory, mapGuestRam } from "./memory.ts";
import { IRQ, PORT } from "./platform.ts";
import { VcpuControl, VmControl } from "./vm_control.ts";

const log = getLogger(["dhyve", "machine"]);

/** A vCPU as the main thread sees it. */
export interface VcpuHandle {
  readonly place: CpuPlace;
  readonly fd: number;
  readonly worker: Worker;
  readonly control: VcpuControl;
  /** The main thread's mapping of the kvm_run page (for immediate_exit). */
  readonly run: RunPage;
  readonly cpuid: readonly CpuidEntry[];
}

/** A built machine, ready to start. */
export interface Machine {
  readonly config: VmConfig;
  readonly layout: MemoryLayout;
  readonly kvmFd: number;
  readonly vmFd: number;
  readonly memory: HostMemory;
  readonly control: VmControl;
  readonly specs: readonly DeviceSpec[];
  /** The main thread's instances of the devices. */
  readonly devices: ThreadDevices;
  /** The main thread's host (clock, timers, lines). */
  readonly host: ThreadHost;
  /** What every thread binds. */
  readonly shared: VmShared;
  /** The thread that runs device timers. */
  readonly timerWorker: Worker;
  readonly vcpus: readonly VcpuHandle[];
  /** File descriptors of the console outputs (by output id; -1 = none). */
  readonly outputFds: readonly number[];
  readonly payload: LoadedPayload;
  /** Releases every resource (workers must already be stopped). */
  close(): void;
}

/** Options for {@linkcode buildMachine}. */
export interface BuildOptions {
  /** The KVM device (default /dev/kvm). */
  readonly kvmPath?: string;
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

function openOutput(backend: ConsoleBackend): number {
  if (backend.kind === "stdio") return 1;
  if (backend.kind === "none") return -1;
  const c = libc();
  // O_WRONLY | O_CREAT | O_TRUNC
  const fd = c.fn.open(cString(backend.path), 0o1 | 0o100 | 0o1000 | O_CLOEXEC, 0o644);
  if (fd < 0) throw new Error(`cannot open console file ${backend.path}: ${c.strerror(c.errno())}`);
  return fd;
}

/** The platform's devices, as specs, for a config (in attach order). */
export function platformDeviceSpecs(config: VmConfig): DeviceSpecs {
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
  config.devices.forEach((d, i) => {
    specs.add(d.type, `${d.type}${config.devices.length > 1 ? i : ""}`, {
      port: d.port,
      size: d.size,
    });
  });
  return specs;
}

/** Workers spawned ahead of the machine, to overlap their start-up with KVM setup. */
export function spawnVcpuWorkers(n: number): Worker[] {
  const url = new URL("../cpu/vcpu_worker.ts", import.meta.url);
  return Array.from({ length: n }, (_, i) => new Worker(url, { type: "module", name: `vcpu${i}` }));
}

/** The timer thread (lib/timer_worker.ts). */
export function spawnTimerWorker(): Worker {
  return new Worker(new URL("./timer_worker.ts", import.meta.url), {
    type: "module",
    name: "timers",
  });
}

/**
 * Builds the machine described by `config`. `workers`, when given, are
 * vCPU Workers spawned earlier with {@linkcode spawnVcpuWorkers}.
 */
export async function buildMachine(
  config: VmConfig,
  options: BuildOptions = {},
  workers?: Worker[],
): Promise<Machine> {
  const cleanups: (() => void)[] = [];
  const cleanup = () => {
    for (const f of cleanups.reverse()) {
      try {
        f();
      } catch { /* best effort */ }
    }
  };
  const places = cpuPlaces({ ...config.cpu });
  const present = places.filter((p) => p.present);
  const spawned = workers ?? spawnVcpuWorkers(present.length);
  cleanups.push(() => spawned.forEach((w) => w.terminate()));
  const timerWorker = spawnTimerWorker();
  cleanups.push(() => timerWorker.terminate());
  try {
    // Memory layout.
    const layout = computeLayout(config.memory.size, config.memory.lowmemLimit);

    // The VM and its memory slots.
    const kvmFd = openKvm(options.kvmPath);
    cleanups.push(() => closeFd(kvmFd));
    for (
      const [name, cap] of [
        ["IRQCHIP", KVM_CAP.IRQCHIP],
        ["USER_MEMORY", KVM_CAP.USER_MEMORY],
        [
          "SET_TSS_ADDR",
          KVM_CAP.SET_TSS_ADDR,
        ],
        ["PIT2", KVM_CAP.PIT2],
        ["IMMEDIATE_EXIT", KVM_CAP.IMMEDIATE_EXIT],
      ] as const
    ) {
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

    const vmFd = createVm(kvmFd);
    cleanups.push(() => closeFd(vmFd));
    // Intel VMX needs a TSS (3 pages) and an identity-map page for real mode (api.rst 4.36, 4.37).
    setTssAddr(vmFd, MMIO.kvmTss);
    setIdentityMapAddr(vmFd, MMIO.kvmIdentityMap);

    const memory = mapGuestRam(layout.ram);
    cleanups.push(() => memory.unmap());
    layout.ram.forEach((r, slot) =>
      setUserMemoryRegion(vmFd, slot, r.gpa, r.size, memory.base + BigInt(r.gpa))
    );

    // Interrupt controllers and timers in the kernel: LAPICs, IOAPIC, 8259 pair, 8254,
    // with dhyve's GSI routing (lib/irq.ts) and the SCI level-triggered in the ELCR.
    createIrqchip(vmFd);
    createPit2(vmFd);
    setGsiRouting(vmFd, gsiRoutes());
    setPicLevelIrqs(vmFd, [IRQ.sci]);

    // vCPUs: the vCPU id is the APIC ID; CPUID describes the topology.
    const supported = getSupportedCpuid(kvmFd);
    const runSize = getVcpuMmapSize(kvmFd);
    const vcpuFds: { place: CpuPlace; fd: number; cpuid: CpuidEntry[] }[] = [];
    for (const place of present) {
      const fd = createVcpu(vmFd, place.apicId);
      cleanups.push(() => closeFd(fd));
      const cpuid = buildCpuid(supported, config.cpu, place.apicId, { x2apic: config.cpu.x2apic });
      setCpuid2(fd, cpuid);
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
      vcpuFds.push({ place, fd, cpuid });
    }

    // Devices: one spec each, attached here, in the timer thread and in every vCPU thread.
    const outputFds = [openOutput(config.console.com1), openOutput(config.console.com2)];
    cleanups.push(() => outputFds.forEach((fd) => fd > 2 && libc().fn.close(fd)));
    const specs = platformDeviceSpecs(config);
    const shared: VmShared = {
      vmFd,
      control: new VmControl().buffer,
      irqLines: new IrqLineTable().buffer,
      timers: new TimerTable(specs.timerSlots).buffer,
      clockBaseNs: libc().monotonicNs(),
      outputFds,
      strictIo: config.vm.strictIo,
    };
    const { host, devices } = attachAll(shared, specs.list, {
      strict: config.vm.strictIo,
      record() {},
    });
    const control = host.control;
    control.lock.with(() => devices.devices.forEach((d) => d.reset()));
    cleanups.push(() => host.timers.stop());
    timerWorker.postMessage({ shared, specs: specs.list } satisfies TimerWorkerInit);

    // The boot payload and the BSP's entry state.
    const payload = await loadPayload(memory.memory, layout.e820, config.boot);
    const bsp = vcpuFds[0];
    setSregs(bsp.fd, payload.entry.sregs(getSregs(bsp.fd)));
    setRegs(bsp.fd, payload.entry.regs);
    log.debug("loaded {payload}", { payload: payload.description });

    // Hand each Worker its vCPU.
    const vcpus: VcpuHandle[] = vcpuFds.map(({ place, fd, cpuid }, i) => {
      const vc = new VcpuControl();
      const init: VcpuWorkerInit = {
        index: place.index,
        apicId: place.apicId,
        vcpuFd: fd,
        runSize,
        control: vc.buffer,
        shared,
        memory: { base: memory.base, span: memory.span, ranges: layout.ram },
        devices: specs.list,
      };
      spawned[i].postMessage(init);
      const run = mapRunPage(fd, runSize);
      cleanups.push(() => unmapRunPage(run));
      return { place, fd, worker: spawned[i], control: vc, run, cpuid };
    });

    return {
      config,
      layout,
      kvmFd,
      vmFd,
      memory,
      control,
      specs: specs.list,
      devices,
      host,
      shared,
      timerWorker,
      vcpus,
      outputFds,
      payload,
      close: cleanup,
    };
  } catch (e) {
    cleanup();
    throw e;
  }
}

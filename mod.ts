/**
 * dhyve as a library: build a VM from a config, run it, await its exit.
 *
 * ```ts
 * import { loadConfig, runVm } from "./mod.ts";
 * const config = await loadConfig("configs/demo.toml");
 * const exit = await runVm(config); // { kind: "poweroff", status: 1, ... }
 * ```
 *
 * Or step by step, to keep a handle on the running VM:
 *
 * ```ts
 * import { configFromObject, Vm } from "./mod.ts";
 * const vm = await Vm.create(configFromObject({ boot: { kind: "probe" }, console: { com1: "none" } }));
 * await vm.start();
 * const exit = await vm.wait();
 * console.log(exit.status, vm.stats());
 * ```
 *
 * @module
 */
export {
  type BootConfig,
  ConfigError,
  configFromObject,
  type ConfigIssue,
  type ConsoleBackend,
  type DeviceConfig,
  type EntryMode,
  formatConfig,
  formatIssue,
  loadConfig,
  parseConfig,
  type PciConfig,
  type VmConfig,
} from "./lib/config.ts";
export {
  EXIT_STATUS,
  exitStatusOf,
  runVm,
  type VcpuStats,
  Vm,
  type VmExit,
  type VmOptions,
} from "./lib/vm/vm.ts";
export { type BuildOptions, Machine, type VcpuHandle } from "./lib/vm/machine.ts";
export { computeLayout, formatLayout, type MemoryLayout } from "./lib/layout.ts";
export { GuestMemory, GuestMemoryError } from "./lib/guest_memory.ts";
export { PayloadError } from "./lib/boot/payload.ts";
export { setupLogging } from "./lib/log.ts";
export { KvmError, KvmUnavailableError } from "./cpu/kvm.ts";
export { apicIdOf, cpuPlaces, type Topology, topologyBits } from "./cpu/topology.ts";
export { DEVICE_MODELS, type DeviceModel } from "./devices/registry.ts";
export type { SuspendKind, SuspendRequest } from "./devices/device.ts";

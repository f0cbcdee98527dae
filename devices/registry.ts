/**
 * The device registry: one table from model name to a factory. The machine
 * builder describes every device as a plain-data {@linkcode DeviceSpec}
 * (model, name, options, shared state buffer); each thread of the VMM then
 * attaches its own instance of the model over that same state with
 * {@linkcode attachDevice}, with interrupt lines, clock and outputs that
 * work in that thread. `dhyve devices` lists {@linkcode DEVICE_MODELS}.
 *
 * @module
 */
import { IRQ, PORT } from "../lib/platform.ts";
import {
  AcpiPm,
  AcpiPmState,
  GPE0_BLK_LEN,
  GPE0_OFFSET,
  PM1_CNT_LEN,
  PM1_CNT_OFFSET,
  PM1_EVT_LEN,
  PM1_EVT_OFFSET,
  PM_TMR_LEN,
  PM_TMR_OFFSET,
} from "./acpi_pm.ts";
import { DebugExit } from "./debug_exit.ts";
import type { BusDevice, Clock, IrqLine, MsiSink, Output, Platform, Timer } from "./device.ts";
import { allOnes, type PortFallback } from "./bus.ts";
import { I8042, I8042State } from "./i8042.ts";
import { PostPort, PostState } from "./post.ts";
import { ResetControl, ResetControlState } from "./reset_control.ts";
import { Uart16550, Uart16550State, UART_WINDOW } from "./uart16550.ts";
import { Rtc, RTC_WINDOW, RtcState } from "./rtc.ts";
import { Hpet, HPET_GSIS, HPET_TIMERS, HPET_WINDOW, HpetState } from "./hpet.ts";
import {
  ECAM_SIZE,
  PCI_CONFIG_ADDRESS_PORT,
  PCI_CONFIG_ADDRESS_PORTS,
  PCI_CONFIG_DATA_PORT,
  PCI_CONFIG_DATA_PORTS,
  PCI_CONFIG_PROBE_PORT,
  PCI_CONFIG_PROBE_PORTS,
  PciHost,
  PciHostState,
} from "./pci/host.ts";
import { LPC_SLOT, PciLpcBridge, PciLpcState } from "./pci/lpc.ts";
import { PciTestDevice, PciTestDeviceState } from "./pci/testdev.ts";
import type { PciFunction } from "./pci/function.ts";
import { VirtioPciFunction, virtioPciState } from "./virtio/pci.ts";
import { virtioModel } from "./virtio/models.ts";
import type { FieldSpecs, StateLayout } from "./state.ts";

/** What a thread gives the devices it attaches. */
export interface DeviceContext {
  /** The interrupt line of GSI `gsi`. */
  irq(gsi: number): IrqLine;
  /** The monotonic clock. */
  readonly clock: Clock;
  /** VM-wide suspend requests. */
  readonly platform: Platform;
  /** Console output number `id` (see the spec's options); discarding when absent. */
  output(id: number): Output;
  /** Message-signalled interrupts. */
  readonly msi: MsiSink;
  /** The timers of a spec (its slots), usable from this thread. */
  timers(spec: DeviceSpec): Timer[];
  /** A device attached earlier in this thread, by instance name. */
  device(name: string): AttachedDevice | undefined;
  /** Host wall-clock time in seconds since the Unix epoch (for the RTC at power-on). */
  hostTime(): number;
  /** The GSI that reaches only the 8259's IRQ `irq` (PCI INTx through a PIRQ link). */
  picOnlyGsi(irq: number): number;
  /** Disconnects (or reconnects) the in-kernel PIT's IRQ 0: the HPET's LegacyReplacement. */
  pitHpetLegacy(on: boolean): void;
  /** Signals eventfd `fd` (a virtio queue's notification, an I/O thread's wake-up). */
  signal(fd: number): void;
}

/** A device as plain data: what to build and where its state lives. */
export interface DeviceSpec {
  /** The model name (a key of {@linkcode DEVICE_MODELS}). */
  readonly model: string;
  /** The instance name, unique in the VM (e.g. "com1"). */
  readonly name: string;
  /** Model-specific options: plain data (structured-clone safe). */
  readonly options: Readonly<Record<string, unknown>>;
  /** The shared state buffer. */
  readonly state: SharedArrayBuffer;
  /** First timer slot of the device (see lib/timers.ts). */
  readonly timerBase: number;
  /** Number of timers the device owns. */
  readonly timerCount: number;
}

/** A claimed range, before it goes onto a bus. */
export interface DeviceRange {
  readonly bus: "pio" | "mmio";
  readonly name: string;
  readonly base: number;
  readonly length: number;
  readonly device: BusDevice;
  readonly lockFree?: boolean;
}

/** A device that takes console input. */
export interface ConsoleInput {
  /** Pushes bytes; returns how many were accepted. */
  receive(bytes: Uint8Array): number;
  /** Bytes that would be accepted now. */
  rxSpace(): number;
}

/** A device attached in one thread. */
export interface AttachedDevice {
  readonly spec: DeviceSpec;
  /** Its ranges on the buses. */
  readonly ranges: readonly DeviceRange[];
  /**
   * A VM reset (main thread): puts the device in its reset state. Devices
   * that keep state across a reset (the RTC's time and NVRAM) keep it.
   */
  reset(): void;
  /** Power-on, at VM creation; devices without one get `reset()`. */
  powerOn?(): void;
  /** Present on devices that take console input. */
  readonly console?: ConsoleInput;
  /** Present on the ACPI PM block. */
  readonly powerButton?: { press(): void; readonly enabled: boolean };
  /** Present on devices with timers: timer `id` (0-based, of this device) expired. */
  onTimer?(id: number): void;
  /** Present on devices that write console output: a backend that was full has room again. */
  onOutputReady?(): void;
  /** With onOutputReady: bytes the device holds because its backend was full. */
  outputHeld?(): number;
  /** Present on the RTC: connects or disconnects its IRQ output (HPET LegacyReplacement). */
  irqGate?(connected: boolean): void;
  /** Present on the PCI host: decodes ports no fixed range claims (I/O BARs). */
  readonly ioFallback?: PortFallback;
  /** Present on the PCI host: a function by its name (e.g. "virtio-blk@3.0"). */
  pciFunction?(name: string): PciFunction | undefined;
}

/** A device model in the registry. */
export interface DeviceModel {
  /** The model name, used in specs and (for user-placeable ones) in the TOML `type`. */
  readonly model: string;
  /** One line for `dhyve devices`. */
  readonly summary: string;
  /** Whether `[[device]] type = ...` may place it; platform devices are built in. */
  readonly userPlaceable: boolean;
  /** A fresh shared state buffer for one instance with these options. */
  newState(options: DeviceSpec["options"]): SharedArrayBuffer;
  /** Timers each instance needs (0 when absent). */
  readonly timers?: number;
  /** Builds the instance for the calling thread. */
  attach(ctx: DeviceContext, spec: DeviceSpec): AttachedDevice;
}

const num = (spec: Pick<DeviceSpec, "name" | "options">, key: string): number => {
  const v = spec.options[key];
  if (typeof v !== "number") throw new Error(`device ${spec.name}: option ${key} must be a number`);
  return v;
};

const EMPTY_STATE = () => new SharedArrayBuffer(8);

/** A fresh, zeroed shared buffer for one `layout` (what `layout.create()` allocates). */
function newSharedState<F extends FieldSpecs>(layout: StateLayout<F>): SharedArrayBuffer {
  return new SharedArrayBuffer(layout.size);
}

/** Ports that are decoded but do nothing: writes are dropped, reads float (all ones). */
const FLOATING: BusDevice = {
  read: (_offset, size) => allOnes(size),
  write: () => {},
};

/** An INTx route as PCI specs carry it (lib/pci_routing.ts IntxRoute). */
interface SpecIntxRoute {
  readonly slot: number;
  readonly function: number;
  readonly pin: number;
  readonly ioapicPin: number;
  readonly pirq: number;
  readonly isaIrq: number;
}

/** A PCI function in the "pci" spec's options. */
interface SpecPciFunction {
  readonly slot: number;
  readonly function: number;
  /** "testdev" or a virtio type ("virtio-blk", ...). */
  readonly model: string;
  readonly intx?: SpecIntxRoute;
  /** For virtio functions: the model's options and the notification eventfds. */
  readonly virtio?: {
    readonly options: Readonly<Record<string, unknown>>;
    /** Eventfd of each queue (-1: none, e.g. in `dhyve check`). */
    readonly queueFds: readonly number[];
    /** The I/O thread's wake eventfd (-1: none). */
    readonly wakeFd: number;
  };
}

/** The name of a function: its model and place ("virtio-blk@3.0"). */
export function pciFunctionName(f: Pick<SpecPciFunction, "model" | "slot" | "function">): string {
  return `${f.model}@${f.slot}.${f.function}`;
}

/** The state layout of one function of the "pci" spec. */
// deno-lint-ignore no-explicit-any
function functionLayout(f: SpecPciFunction): StateLayout<any> {
  if (f.model === "testdev") return PciTestDeviceState;
  return virtioPciState(virtioModel(f.model, f.virtio?.options ?? {}));
}

/** The layouts of the "pci" spec's buffer, in order: host, LPC, then each function. */
// deno-lint-ignore no-explicit-any
function pciLayouts(fns: readonly SpecPciFunction[]): StateLayout<any>[] {
  return [PciHostState, PciLpcState, ...fns.map(functionLayout)];
}

/** Offsets of the layouts packed one after the other (8-aligned; every size is a multiple of 8). */
// deno-lint-ignore no-explicit-any
function packOffsets(layouts: readonly StateLayout<any>[]): { offsets: number[]; size: number } {
  const offsets: number[] = [];
  let at = 0;
  for (const l of layouts) {
    offsets.push(at);
    at += l.size;
  }
  return { offsets, size: at };
}

/** The functions of a "pci" spec. */
function pciFunctions(spec: DeviceSpec): SpecPciFunction[] {
  const fns = spec.options.functions;
  if (!Array.isArray(fns)) throw new Error(`device ${spec.name}: option functions must be a list`);
  return fns as SpecPciFunction[];
}

/** Every device model dhyve has, by name. */
export const DEVICE_MODELS: ReadonlyMap<string, DeviceModel> = new Map<string, DeviceModel>(
  ([
    {
      model: "uart16550",
      summary: "16550A UART with 16-byte FIFOs (COM ports), wired to the console",
      userPlaceable: false,
      newState: () => newSharedState(Uart16550State),
      attach(ctx, spec) {
        const uart = new Uart16550(
          { irq: ctx.irq(num(spec, "irq")), out: ctx.output(num(spec, "output")) },
          Uart16550State.bind(spec.state),
        );
        return {
          spec,
          ranges: [{
            bus: "pio",
            name: spec.name,
            base: num(spec, "port"),
            length: UART_WINDOW,
            device: uart,
          }],
          reset: () => uart.reset(),
          console: uart,
          onOutputReady: () => uart.outputReady(),
          outputHeld: () => uart.outputHeld(),
        };
      },
    },
    {
      model: "i8042",
      summary: "8042 keyboard controller (no keyboard attached): reset line, A20, self-test",
      userPlaceable: false,
      newState: () => newSharedState(I8042State),
      attach(ctx, spec) {
        const kbc = new I8042(
          { platform: ctx.platform, irq1: ctx.irq(IRQ.keyboard), irq12: ctx.irq(IRQ.mouse) },
          I8042State.bind(spec.state),
        );
        const ports = kbc.ports();
        return {
          spec,
          ranges: [
            { bus: "pio", name: "i8042-data", base: PORT.i8042Data, length: 1, device: ports.data },
            {
              bus: "pio",
              name: "i8042-command",
              base: PORT.i8042Command,
              length: 1,
              device: ports.command,
            },
          ],
          reset: () => kbc.reset(),
        };
      },
    },
    {
      model: "reset-control",
      summary: "Reset control register at port 0xCF9 (ICH RST_CNT)",
      userPlaceable: false,
      newState: () => newSharedState(ResetControlState),
      attach(ctx, spec) {
        const dev = new ResetControl(
          { platform: ctx.platform },
          ResetControlState.bind(spec.state),
        );
        return {
          spec,
          ranges: [{
            bus: "pio",
            name: spec.name,
            base: PORT.resetControl,
            length: 1,
            device: dev,
          }],
          reset: () => dev.reset(),
        };
      },
    },
    {
      model: "post",
      summary: "POST code port 0x80 (keeps the last code)",
      userPlaceable: false,
      newState: () => newSharedState(PostState),
      attach(_ctx, spec) {
        const dev = new PostPort(PostState.bind(spec.state));
        return {
          spec,
          ranges: [{
            bus: "pio",
            name: spec.name,
            base: PORT.post,
            length: 1,
            device: dev,
            lockFree: true,
          }],
          reset: () => dev.reset(),
        };
      },
    },
    {
      model: "acpi-pm",
      summary: "ACPI PM1a event/control blocks (power button, S5) and the 3.58 MHz PM timer",
      userPlaceable: false,
      timers: 1,
      newState: () => newSharedState(AcpiPmState),
      attach(ctx, spec) {
        const pm = new AcpiPm(
          {
            clock: ctx.clock,
            sci: ctx.irq(num(spec, "sci")),
            platform: ctx.platform,
            timers: ctx.timers(spec),
          },
          AcpiPmState.bind(spec.state),
        );
        const base = num(spec, "port");
        return {
          spec,
          ranges: [
            {
              bus: "pio",
              name: "pm1a-event",
              base: base + PM1_EVT_OFFSET,
              length: PM1_EVT_LEN,
              device: pm.event,
            },
            {
              bus: "pio",
              name: "pm1a-control",
              base: base + PM1_CNT_OFFSET,
              length: PM1_CNT_LEN,
              device: pm.control,
            },
            {
              bus: "pio",
              name: "pm-timer",
              base: base + PM_TMR_OFFSET,
              length: PM_TMR_LEN,
              device: pm.timer,
              lockFree: true,
            },
            {
              bus: "pio",
              name: "gpe0",
              base: base + GPE0_OFFSET,
              length: GPE0_BLK_LEN,
              device: pm.gpe,
            },
          ],
          reset: () => pm.reset(),
          onTimer: (id) => pm.onTimer(id),
          powerButton: {
            press: () => pm.pressPowerButton(),
            get enabled() {
              return pm.powerButtonEnabled;
            },
          },
        };
      },
    },
    {
      model: "debug-exit",
      summary:
        "Test exit port: a write of v ends dhyve with status (v << 1) | 1 (QEMU isa-debug-exit)",
      userPlaceable: true,
      newState: EMPTY_STATE,
      attach(ctx, spec) {
        const dev = new DebugExit({ platform: ctx.platform });
        return {
          spec,
          ranges: [{
            bus: "pio",
            name: spec.name,
            base: num(spec, "port"),
            length: num(spec, "size"),
            device: dev,
            lockFree: true,
          }],
          reset: () => {},
        };
      },
    },
    {
      model: "rtc",
      summary: "MC146818 RTC with 256 bytes of CMOS: periodic, update-ended and alarm interrupts",
      userPlaceable: false,
      timers: 1,
      newState: () => newSharedState(RtcState),
      attach(ctx, spec) {
        const rtc = new Rtc({
          irq: ctx.irq(num(spec, "irq")),
          clock: ctx.clock,
          timers: ctx.timers(spec),
          hostTime: () => ctx.hostTime(),
          utcOffsetSeconds: num(spec, "utcOffset"),
          memory: { lowmemEnd: num(spec, "lowmemEnd"), highmemSize: num(spec, "highmemSize") },
        }, RtcState.bind(spec.state));
        const { low, high } = rtc.ports();
        const port = num(spec, "port");
        return {
          spec,
          ranges: [
            { bus: "pio", name: "rtc", base: port, length: RTC_WINDOW, device: low },
            // The upper CMOS bank's index/data pair follows (0x72/0x73).
            {
              bus: "pio",
              name: "rtc-extended",
              base: port + RTC_WINDOW,
              length: RTC_WINDOW,
              device: high,
            },
          ],
          reset: () => rtc.reset(),
          powerOn: () => rtc.powerOn(),
          irqGate: (connected) => rtc.setIrqConnected(connected),
          onTimer: (id) => rtc.onTimer(id),
        };
      },
    },
    {
      model: "hpet",
      summary:
        "HPET: 8 timers, 32-bit counter at 16.78 MHz, one-shot/periodic, IOAPIC, FSB (MSI) and legacy routes",
      userPlaceable: false,
      timers: HPET_TIMERS,
      newState: () => newSharedState(HpetState),
      attach(ctx, spec) {
        // Every line the HPET can drive is taken now, in the same order in every
        // thread, so each thread gets the same wired-OR source bits.
        const lines = new Map(HPET_GSIS.map((g) => [g, ctx.irq(g)] as const));
        const hpet = new Hpet({
          clock: ctx.clock,
          timers: ctx.timers(spec),
          irq: (gsi) => {
            const line = lines.get(gsi);
            if (!line) throw new Error(`hpet: GSI ${gsi} is not wired`);
            return line;
          },
          msi: ctx.msi,
          // LegacyReplacement disconnects the PIT's IRQ 0 and the RTC's IRQ 8 (2.3.5).
          legacyReplacement: (on) => {
            ctx.device("rtc")?.irqGate?.(!on);
            ctx.pitHpetLegacy(on);
          },
        }, HpetState.bind(spec.state));
        return {
          spec,
          ranges: [{
            bus: "mmio",
            name: "hpet",
            base: num(spec, "address"),
            length: HPET_WINDOW,
            device: hpet,
          }],
          reset: () => hpet.reset(),
          onTimer: (id) => hpet.onTimer(id),
        };
      },
    },
    {
      model: "pci",
      summary:
        "PCI bus 0: host bridge (0xCF8/0xCFC and ECAM), LPC bridge with PIRQ router, BAR windows",
      userPlaceable: false,
      newState: (options) =>
        new SharedArrayBuffer(
          packOffsets(pciLayouts(pciFunctions({ options } as DeviceSpec))).size,
        ),
      attach(ctx, spec) {
        const fns = pciFunctions(spec);
        const { offsets } = packOffsets(pciLayouts(fns));
        const buf = spec.state;
        const lpc = new PciLpcBridge({
          pirqIrqs: spec.options.pirqIrqs as number[],
          isaIrq: (irq) => ctx.irq(ctx.picOnlyGsi(irq)),
        }, PciLpcState.bind(buf, offsets[1]));
        const devices = fns.map((f, i) => {
          const intx = f.intx
            ? {
              pin: f.intx.pin,
              line: f.intx.isaIrq,
              sink: lpc.intxSink(f.intx, ctx.irq(f.intx.ioapicPin)),
            }
            : undefined;
          const name = pciFunctionName(f);
          let device: PciFunction;
          if (f.model === "testdev") {
            device = new PciTestDevice(
              { msi: ctx.msi, intx },
              PciTestDeviceState.bind(buf, offsets[2 + i]),
              name,
            );
          } else {
            const v = f.virtio;
            const signal = (fd: number | undefined) => {
              if (fd !== undefined && fd >= 0) ctx.signal(fd);
            };
            const model = virtioModel(f.model, v?.options ?? {});
            device = new VirtioPciFunction(
              model,
              {
                msi: ctx.msi,
                intx,
                kick: (q: number) => signal(v?.queueFds[q]),
                wake: v && v.wakeFd >= 0 ? () => signal(v.wakeFd) : undefined,
                notifyMoved: () => signal(v?.wakeFd),
              },
              virtioPciState(model).bind(buf, offsets[2 + i]),
              name,
            );
          }
          return { slot: f.slot, function: f.function, device };
        });
        const byName = new Map(devices.map((d) => [d.device.name, d.device]));
        const window = (start: string, end: string) => ({
          start: num(spec, start),
          end: num(spec, end),
        });
        const ecamBase = num(spec, "ecamBase");
        const mem32 = window("mem32Start", "mem32End"), mem64 = window("mem64Start", "mem64End");
        const host = new PciHost({
          ecamBase,
          mem32,
          mem64,
          functions: [{ slot: LPC_SLOT, function: 0, device: lpc }, ...devices],
        }, PciHostState.bind(buf, offsets[0]));
        const d = host.devices;
        return {
          spec,
          ranges: [
            {
              bus: "pio",
              name: "pci-config-address",
              base: PCI_CONFIG_ADDRESS_PORT,
              length: PCI_CONFIG_ADDRESS_PORTS,
              device: d.configAddress,
            },
            {
              bus: "pio",
              name: "pci-config-data",
              base: PCI_CONFIG_DATA_PORT,
              length: PCI_CONFIG_DATA_PORTS,
              device: d.configData,
            },
            // The mechanism #2 byte ports Linux pokes while probing for
            // mechanism #1: accepted and ignored so strict_io guests still
            // boot. Reads float.
            {
              bus: "pio",
              name: "pci-config-probe",
              base: PCI_CONFIG_PROBE_PORT,
              length: PCI_CONFIG_PROBE_PORTS,
              device: FLOATING,
              lockFree: true,
            },
            {
              bus: "mmio",
              name: "pci-ecam",
              base: ecamBase,
              length: ECAM_SIZE,
              device: d.ecam,
            },
            {
              bus: "mmio",
              name: "pci-mem32",
              base: mem32.start,
              length: mem32.end - mem32.start,
              device: d.mem32Window,
            },
            {
              bus: "mmio",
              name: "pci-mem64",
              base: mem64.start,
              length: mem64.end - mem64.start,
              device: d.mem64Window,
            },
          ],
          reset: () => host.reset(),
          pciFunction: (name) => byName.get(name),
          // I/O BARs are decoded wherever the OS puts them, below any fixed port.
          ioFallback: {
            read: (port, size) => host.ioRead(port, size),
            write: (port, size, v) => host.ioWrite(port, size, v),
          },
        };
      },
    },
  ] satisfies DeviceModel[]).map((m) => [m.model, m] as const),
);

/** The PCI function types a `[[pci]]` entry may place, by TOML `type`. */
export const PCI_DEVICE_TYPES: ReadonlyMap<string, { readonly summary: string }> = new Map([
  ["testdev", {
    summary:
      "dhyve's PCI test device (6468:0001): BAR0 registers, MSI, MSI-X (4 vectors), INTx on demand",
  }],
  ["virtio-blk", {
    summary: "virtio block device (1af4:1042) on a raw image: read-only, flush, discard, serial",
  }],
  ["virtio-net", { summary: "virtio network device (1af4:1041) on a host tap device" }],
  ["virtio-console", {
    summary: "virtio console (1af4:1043): one port to a file or a unix socket",
  }],
  ["virtio-rng", { summary: "virtio entropy device (1af4:1044) fed by the host's getrandom" }],
]);

/** Attaches a spec's model in the calling thread. */
export function attachDevice(ctx: DeviceContext, spec: DeviceSpec): AttachedDevice {
  const model = DEVICE_MODELS.get(spec.model);
  if (!model) throw new Error(`unknown device model ${spec.model} (device ${spec.name})`);
  return model.attach(ctx, spec);
}

/** Builds a VM's device specs, handing out timer slots as it goes. */
export class DeviceSpecs {
  readonly #specs: DeviceSpec[] = [];
  #timerSlots = 0;

  /** Adds an instance of `model` named `name`, with fresh state. */
  add(model: string, name: string, options: DeviceSpec["options"] = {}): DeviceSpec {
    const m = DEVICE_MODELS.get(model);
    if (!m) throw new Error(`unknown device model ${model}`);
    if (this.#specs.some((s) => s.name === name)) {
      throw new Error(`device name ${name} is used twice`);
    }
    const timerCount = m.timers ?? 0;
    const spec = {
      model,
      name,
      options,
      state: m.newState(options),
      timerBase: this.#timerSlots,
      timerCount,
    };
    this.#timerSlots += timerCount;
    this.#specs.push(spec);
    return spec;
  }

  /** Every spec, in the order they were added (the attach order). */
  get list(): readonly DeviceSpec[] {
    return this.#specs;
  }

  /** Timer slots used by all specs. */
  get timerSlots(): number {
    return this.#timerSlots;
  }
}

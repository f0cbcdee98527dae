/**
 * The DSDT of a dhyve machine, built from its {@linkcode FirmwarePlatform}
 * with the typed AML encoder:
 *
 * ```
 * \_S5               sleep type of soft-off
 * \PICM, \_PIC       interrupt model chosen by the OS (ACPI 6.5, 5.8.1)
 * \_SB.PCI0          PCIe host bridge: _CRS windows, _PRT (APIC or PIC routing)
 * \_SB.PCI0.ISA      LPC bridge at 0:31.0: PIRQ router registers, ISA devices
 *   COM1, COM2, RTC, TIMR (PIT), PIC, HPET, MBRS (motherboard resources)
 * \_SB.LNKA-LNKH     PCI interrupt links over PIRQA-PIRQH
 * \_SB.PWRB          power button
 * \_SB.Cxxx          processor devices (ACPI0007), one per MADT entry
 * ```
 *
 * Processor devices: the MADT alone is enough for an OS to start the CPUs,
 * but an OS binds its processor driver (and, for hot-add, finds the
 * not-present CPUs) through ACPI0007 devices whose _UID matches the MADT
 * "ACPI Processor UID" (ACPI 6.5, 8.4 and 5.2.12.2). So each CPU gets one,
 * with _STA 0x0F when present and 0x00 when not.
 *
 * @module
 */
import {
  AddressSpaceResource,
  And,
  ARG,
  CreateField,
  Decrement,
  Device,
  EisaId,
  Field,
  FindSetRightBit,
  If,
  ioPort,
  ioWindow,
  IrqResource,
  LLess,
  LOCAL,
  Memory32FixedResource,
  memoryWindow,
  Method,
  Name,
  Notify,
  ns,
  OperationRegion,
  Or,
  Package,
  ResourceTemplate,
  Return,
  Scope,
  ShiftLeft,
  Store,
  str,
  type TermArg,
} from "./aml.ts";
import { HPET_WINDOW } from "../../devices/hpet.ts";
import {
  LPC_SLOT,
  PIRQ_ROUT_IRQEN_N,
  PIRQ_ROUT_WRITABLE,
  PIRQA_ROUT,
  PIRQE_ROUT,
} from "../../devices/pci/lpc.ts";
import type { FirmwarePlatform } from "../firmware/platform.ts";
import { routedPins } from "../pci_routing.ts";
import { PORT } from "../platform.ts";
import { DefinitionBlock, tableIds } from "./tables.ts";

/** The legacy VGA memory window passed through the host bridge. */
export const VGA_WINDOW = Object.freeze({ start: 0xa0000, end: 0xbffff });
/** Names of the PIRQ route control fields, PIRQA..PIRQH. */
export const PIRQ_FIELDS: readonly string[] = [
  "PIRA",
  "PIRB",
  "PIRC",
  "PIRD",
  "PIRE",
  "PIRF",
  "PIRG",
  "PIRH",
];
/** Names of the link devices, PIRQA..PIRQH. */
export const LINK_NAMES: readonly string[] = [
  "LNKA",
  "LNKB",
  "LNKC",
  "LNKD",
  "LNKE",
  "LNKF",
  "LNKG",
  "LNKH",
];
/** Path of the LPC bridge device. */
export const ISA_PATH = "\\_SB.PCI0.ISA";

/** `Name (_S5, Package () { SLP_TYPa, SLP_TYPb, 0, 0 })` (ACPI 6.5, 7.4.2). */
export function sleepObjects(p: FirmwarePlatform): TermArg[] {
  // There is no PM1b block; its SLP_TYPb is 0.
  return [new Name("_S5", new Package([p.pm.slpTypS5, 0, 0, 0]))];
}

/**
 * `PICM` and `\_PIC (model)`: the OS calls _PIC with 0 (PIC), 1 (APIC) or
 * 2 (SAPIC) (ACPI 6.5, 5.8.1); _PRT reads PICM to choose the routing table.
 */
export function picObjects(): TermArg[] {
  return [
    new Name("PICM", 0),
    new Method("_PIC", 1, [Store(ARG[0], ns("PICM"))]),
  ];
}

/**
 * `PRTA` (APIC mode: address 0xSSSSFFFF, pin 0-3, source 0, GSI) and
 * `PRTP` (PIC mode: ..., the link device, index 0), one entry per routed
 * (slot, pin), and `_PRT` returning one of them according to PICM
 * (ACPI 6.5, 6.2.13).
 */
export function prtObjects(p: FirmwarePlatform): TermArg[] {
  const pins = routedPins(p.routing);
  const address = (slot: number) => (slot << 16) | 0xffff;
  return [
    new Name(
      "PRTA",
      new Package(pins.map((r) => new Package([address(r.slot), r.pin - 1, 0, r.ioapicPin]))),
    ),
    new Name(
      "PRTP",
      new Package(
        pins.map((r) =>
          new Package([address(r.slot), r.pin - 1, ns(`\\_SB.${LINK_NAMES[r.pirq]}`), 0])
        ),
      ),
    ),
    new Method("_PRT", 0, [new If(ns("PICM"), [Return(ns("PRTA"))], [Return(ns("PRTP"))])]),
  ];
}

/** The host bridge's _CRS: bus numbers, I/O and memory windows (the ranges it decodes). */
export function hostBridgeResources(p: FirmwarePlatform): ResourceTemplate {
  const w = p.pciWindows;
  return new ResourceTemplate([
    new AddressSpaceResource({
      width: 16,
      type: "bus",
      min: p.ecam.startBus,
      max: p.ecam.endBus,
    }),
    // The configuration mechanism #1 ports, consumed by the bridge itself.
    ioPort(PORT.pciConfigAddress, 8),
    ...w.io.map(([start, end]) => ioWindow(start, end)),
    // The legacy VGA window goes to PCI (there is no RAM there).
    memoryWindow(VGA_WINDOW.start, VGA_WINDOW.end, "Cacheable"),
    memoryWindow(w.mem32.start, w.mem32.end - 1),
    memoryWindow(w.mem64.start, w.mem64.end - 1),
  ]);
}

/** One ISA device: `_HID` (EISA ID), optional `_UID`, `_CRS`. */
function isaDevice(
  name: string,
  hid: string,
  uid: number | undefined,
  crs: ResourceTemplate,
): Device {
  return new Device(name, [
    new Name("_HID", new EisaId(hid)),
    ...(uid === undefined ? [] : [new Name("_UID", uid)]),
    new Name("_CRS", crs),
  ]);
}

/**
 * The LPC bridge `ISA` (0:31.0): the PIRQ route control registers as a
 * PCI_Config region (0x60-0x63 PIRQA-D, 0x68-0x6B PIRQE-H, ICH
 * convention) and the legacy devices behind it.
 */
export function isaBridge(p: FirmwarePlatform): Device {
  const fields: { name: string; bits: number }[] = PIRQ_FIELDS.map((name) => ({ name, bits: 8 }));
  return new Device("ISA", [
    new Name("_ADR", LPC_SLOT << 16),
    // PIRQA-D at PIRQA_ROUT, a gap, PIRQE-H at PIRQE_ROUT.
    new OperationRegion("PIRQ", "PCI_Config", PIRQA_ROUT, PIRQE_ROUT + 4 - PIRQA_ROUT),
    new Field("PIRQ", { access: "ByteAcc", lock: false, update: "Preserve" }, [
      ...fields.slice(0, 4),
      { offset: PIRQE_ROUT - PIRQA_ROUT },
      ...fields.slice(4),
    ]),
    ...p.serial.map((s) =>
      isaDevice(
        `COM${s.uid}`,
        "PNP0501",
        s.uid,
        new ResourceTemplate([ioPort(s.port, 8), new IrqResource([s.irq])]),
      )
    ),
    isaDevice(
      "RTC",
      "PNP0B00",
      undefined,
      new ResourceTemplate([
        ioPort(p.rtc.port, 2),
        // The second (extended) CMOS bank's index/data pair.
        ioPort(p.rtc.port + 2, 2),
        new IrqResource([p.rtc.irq]),
      ]),
    ),
    isaDevice(
      "TIMR",
      "PNP0100",
      undefined,
      new ResourceTemplate([ioPort(PORT.pit, 4), new IrqResource([0])]),
    ),
    isaDevice(
      "PIC",
      "PNP0000",
      undefined,
      new ResourceTemplate([
        ioPort(PORT.picMaster, 2),
        ioPort(PORT.picSlave, 2),
        ioPort(PORT.elcr, 2),
        new IrqResource([2]),
      ]),
    ),
    isaDevice(
      "HPET",
      "PNP0103",
      0,
      new ResourceTemplate([new Memory32FixedResource(p.hpet.address, HPET_WINDOW, false)]),
    ),
    // Motherboard resources: ports and memory no device above claims, so the OS
    // keeps them out of its allocations; listing the ECAM range here is what
    // makes OSes trust the MCFG (PCI Firmware Spec 3.2, 4.1.2). The reset
    // register (0xCF9) is not listed: PCI0's _CRS already consumes 0xCF8-0xCFF.
    isaDevice(
      "MBRS",
      "PNP0C02",
      0,
      new ResourceTemplate([
        ioPort(p.pm.pm1aEvent, p.pm.gpe0 + p.pm.gpe0Length - p.pm.pm1aEvent),
        ioPort(PORT.post, 1),
        new Memory32FixedResource(
          p.ecam.base + (p.ecam.startBus << 20),
          (p.ecam.endBus - p.ecam.startBus + 1) << 20,
        ),
      ]),
    ),
  ]);
}

/** `\_SB.PCI0`: the PCIe host bridge with its _CRS, _PRT and the LPC bridge. */
export function hostBridge(p: FirmwarePlatform): Device {
  return new Device("PCI0", [
    new Name("_HID", new EisaId("PNP0A08")),
    new Name("_CID", new EisaId("PNP0A03")),
    // No _ADR: a device has a _HID or an _ADR, not both (ACPI 6.5, 6.1; iasl warning 3073).
    new Name("_UID", 0),
    new Name("_SEG", p.ecam.segment),
    new Name("_BBN", p.ecam.startBus),
    new Name("_CRS", hostBridgeResources(p)),
    ...prtObjects(p),
    isaBridge(p),
  ]);
}

/** The flags of a PIRQ link's IRQ: level-triggered, active-low, shared (PCI INTx). */
const LINK_IRQ = Object.freeze({ trigger: "level", polarity: "low", shared: true } as const);

/**
 * `\_SB.LNKx` (PNP0C0F) for PIRQ `index` (0 = A): _STA, _PRS, _CRS, _SRS
 * and _DIS over the route control register PIRx of the LPC bridge, whose
 * bit 7 (IRQEN#) disables the route and bits 3-0 hold the ISA IRQ.
 */
export function linkDevice(index: number, p: FirmwarePlatform): Device {
  const reg = ns(`${ISA_PATH}.${PIRQ_FIELDS[index]}`);
  return new Device(LINK_NAMES[index], [
    new Name("_HID", new EisaId("PNP0C0F")),
    new Name("_UID", index + 1),
    // Present and functioning; enabled (0x0B) unless the route is off (0x09).
    new Method("_STA", 0, [new If(And(reg, PIRQ_ROUT_IRQEN_N), [Return(0x09)], [Return(0x0b)])]),
    new Name("_PRS", new ResourceTemplate([new IrqResource(p.pirqPossibleIrqs, LINK_IRQ)])),
    // The current IRQ: an IRQ descriptor whose mask is 1 << IRQ, or empty when disabled.
    new Method("_CRS", 0, [
      new Name("RTLA", new ResourceTemplate([new IrqResource([], LINK_IRQ)])),
      new CreateField("CreateWordField", ns("RTLA"), 1, "IRQ0"),
      And(reg, PIRQ_ROUT_WRITABLE, LOCAL[0]),
      new If(LLess(LOCAL[0], PIRQ_ROUT_IRQEN_N), [ShiftLeft(1, LOCAL[0], ns("IRQ0"))]),
      Return(ns("RTLA")),
    ], { serialized: true }),
    // The IRQ chosen by the OS: the lowest bit set in the descriptor's mask, 1-based, minus one.
    new Method("_SRS", 1, [
      new CreateField("CreateWordField", ARG[0], 1, "IRQ0"),
      FindSetRightBit(ns("IRQ0"), LOCAL[0]),
      Decrement(LOCAL[0]),
      Store(LOCAL[0], reg),
    ], { serialized: true }),
    new Method("_DIS", 0, [Or(reg, PIRQ_ROUT_IRQEN_N, reg)]),
  ]);
}

/**
 * `\_SB.PWRB` (PNP0C0C), the machine's power button: a control-method button
 * (FADT PWR_BUTTON = 1, ACPI 6.5, 4.8.2.2.1.2). A press sets its GPE's status
 * bit; OSPM runs `\_GPE._Exx`, which notifies the button with 0x80 ("button
 * pressed", 5.6.6), and the OS shuts down.
 */
export function powerButton(): Device {
  return new Device("PWRB", [new Name("_HID", new EisaId("PNP0C0C")), new Name("_UID", 0)]);
}

/** `\_GPE._Exx` for the power button's GPE (edge: the status bit latches the press; 5.6.4.1). */
export function gpeObjects(p: FirmwarePlatform): TermArg[] {
  const name = `_E${p.pm.powerButtonGpe.toString(16).toUpperCase().padStart(2, "0")}`;
  return [new Scope("\\_GPE", [new Method(name, 0, [Notify(ns("\\_SB.PWRB"), 0x80)])])];
}

/** The name of the processor device of CPU `uid`: C000-C0FE (hexadecimal, as QEMU does). */
export function cpuDeviceName(uid: number): string {
  if (uid < 0 || uid > 0xfff) throw new RangeError(`CPU UID ${uid} has no device name`);
  return `C${uid.toString(16).toUpperCase().padStart(3, "0")}`;
}

/** `\_SB.Cxxx` (ACPI0007) for every CPU: _UID = the MADT UID, _STA 0x0F present or 0x00 absent. */
export function processorDevices(p: FirmwarePlatform): Device[] {
  return p.cpus.map((cpu) =>
    new Device(cpuDeviceName(cpu.uid), [
      new Name("_HID", str("ACPI0007")),
      new Name("_UID", cpu.uid),
      new Method("_STA", 0, [Return(cpu.present ? 0x0f : 0x00)]),
    ])
  );
}

/** Every term of the DSDT of `p`. */
export function dsdtTerms(p: FirmwarePlatform): TermArg[] {
  return [
    ...sleepObjects(p),
    ...picObjects(),
    new Scope("\\_SB", [
      hostBridge(p),
      ...LINK_NAMES.map((_, i) => linkDevice(i, p)),
      powerButton(),
      ...processorDevices(p),
    ]),
    ...gpeObjects(p),
  ];
}

/** The DSDT of `p`. */
export function buildDsdt(p: FirmwarePlatform): DefinitionBlock {
  return new DefinitionBlock("DSDT", tableIds(p), dsdtTerms(p));
}

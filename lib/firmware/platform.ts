/**
 * What the firmware tables describe: one plain-data description of the
 * machine, derived from the config alone (no KVM), so that `dhyve tables`
 * works anywhere and every table (ACPI, MP) tells the same story as the
 * devices the machine builder creates from the same description.
 *
 * @module
 */
import { cpuPlaces } from "../../cpu/topology.ts";
import type { VmConfig } from "../config.ts";
import { computeLayout, FIRMWARE, type MemoryLayout, MMIO } from "../layout.ts";
import { type IntxRoute, type PciRouting, pirqPossibleIrqs, routeIntx } from "../pci_routing.ts";
import { IRQ, ISA_RESERVED_IRQS, PORT } from "../platform.ts";
import {
  HPET_MIN_PERIOD_TICKS,
  HPET_REVISION,
  HPET_TIMERS,
  HPET_VENDOR_ID,
} from "../../devices/hpet.ts";
import { GPE0_BLK_LEN, POWER_BUTTON_GPE } from "../../devices/acpi_pm.ts";
import { LPC_SLOT } from "../../devices/pci/lpc.ts";

/** A processor as the tables list it. */
export interface FirmwareCpu {
  /** ACPI processor UID (= the CPU index). */
  readonly uid: number;
  readonly apicId: number;
  /** Present at boot (enabled); else listed as online-capable. */
  readonly present: boolean;
}

/** An ISA interrupt source override (MADT type 2; MP I/O interrupt entries). */
export interface IsaOverride {
  readonly irq: number;
  readonly gsi: number;
  /** "conform" = ISA defaults (edge, active high). */
  readonly trigger: "conform" | "edge" | "level";
  readonly polarity: "conform" | "high" | "low";
}

/** A PCI function on bus 0. */
export interface FirmwarePciFunction {
  readonly slot: number;
  readonly function: number;
  /** The model ("hostbridge", "lpc", "testdev", ...). */
  readonly model: string;
  /** INTx routing, for functions that use INTx. */
  readonly intx?: IntxRoute;
}

/** A COM port. */
export interface FirmwareSerial {
  /** 1 for COM1, 2 for COM2 (ACPI _UID). */
  readonly uid: number;
  readonly port: number;
  readonly irq: number;
}

/** The platform as the firmware tables see it. */
export interface FirmwarePlatform {
  /** OEM ID of every table (6 characters). */
  readonly oemId: string;
  /** OEM table ID (8 characters). */
  readonly oemTableId: string;
  readonly layout: MemoryLayout;
  readonly cpus: readonly FirmwareCpu[];
  /** x2APIC offered (MADT then uses x2APIC entries for IDs above 254). */
  readonly x2apic: boolean;
  readonly lapicBase: number;
  readonly ioapic: {
    readonly id: number;
    readonly address: number;
    readonly gsiBase: number;
    readonly pins: number;
  };
  readonly isaOverrides: readonly IsaOverride[];
  /** ACPI fixed hardware. */
  readonly pm: {
    readonly sciIrq: number;
    readonly pm1aEvent: number;
    readonly pm1aControl: number;
    readonly pmTimer: number;
    /** The GPE0 block (status and enable, 2 bytes each). */
    readonly gpe0: number;
    readonly gpe0Length: number;
    /** The GPE of the power button (\_SB.PWRB, a control-method button). */
    readonly powerButtonGpe: number;
    /** SLP_TYPa of S5 (the \_S5 package). */
    readonly slpTypS5: number;
  };
  /** The FADT reset register: an I/O port and the value to write. */
  readonly reset: { readonly port: number; readonly value: number };
  readonly hpet: {
    readonly address: number;
    readonly timers: number;
    readonly counter64: boolean;
    readonly legacyCapable: boolean;
    readonly vendorId: number;
    readonly revision: number;
    /** Minimum clock ticks for periodic mode without lost interrupts. */
    readonly minTick: number;
  };
  readonly ecam: {
    readonly base: number;
    readonly segment: number;
    readonly startBus: number;
    readonly endBus: number;
  };
  readonly pciWindows: {
    /** I/O ranges given to PCI, [start, end] inclusive pairs. */
    readonly io: readonly (readonly [number, number])[];
    readonly mem32: { readonly start: number; readonly end: number };
    readonly mem64: { readonly start: number; readonly end: number };
  };
  readonly pciFunctions: readonly FirmwarePciFunction[];
  readonly routing: PciRouting;
  /** ISA IRQs a PIRQ link may take (the links' _PRS). */
  readonly pirqPossibleIrqs: readonly number[];
  readonly serial: readonly FirmwareSerial[];
  readonly rtc: { readonly port: number; readonly irq: number };
  /** Where the tables go: [start, end). */
  readonly tablesRegion: { readonly start: number; readonly end: number };
  readonly acpi: boolean;
  readonly mptable: boolean;
}

/** The PCI slot/function of the platform's own functions. */
export const HOSTBRIDGE_SLOT = 0;

/** Describes the machine of `config` for the firmware tables. */
export function describePlatform(config: VmConfig): FirmwarePlatform {
  const layout = computeLayout(config.memory.size, config.memory.lowmemLimit);
  const cpus = cpuPlaces(config.cpu).map((p) => ({
    uid: p.index,
    apicId: p.apicId,
    present: p.present,
  }));
  const serial: FirmwareSerial[] = [];
  if (config.console.com1.kind !== "none") serial.push({ uid: 1, port: PORT.com1, irq: IRQ.com1 });
  if (config.console.com2.kind !== "none") serial.push({ uid: 2, port: PORT.com2, irq: IRQ.com2 });
  const userFunctions = config.pci.map((p) => ({
    slot: p.slot,
    function: p.function,
    model: p.type,
  }));
  const routing = routeIntx(userFunctions, ISA_RESERVED_IRQS);
  const pciFunctions: FirmwarePciFunction[] = [
    { slot: HOSTBRIDGE_SLOT, function: 0, model: "hostbridge" },
    ...userFunctions.map((f) => ({
      ...f,
      intx: routing.routes.find((r) => r.slot === f.slot && r.function === f.function),
    })),
    { slot: LPC_SLOT, function: 0, model: "lpc" },
  ];
  return {
    oemId: "DHYVE ",
    oemTableId: "DHYVEVM ",
    layout,
    cpus,
    x2apic: config.cpu.x2apic,
    lapicBase: MMIO.lapicBase,
    ioapic: { id: 0, address: MMIO.ioapicBase, gsiBase: 0, pins: 24 },
    isaOverrides: [
      // The PIT's IRQ 0 arrives on IOAPIC pin 2 (the 8259 cascade input on a PC).
      { irq: 0, gsi: 2, trigger: "conform", polarity: "conform" },
      // The SCI is a level-triggered, active-high line (ACPI 6.5, 5.2.12.5).
      { irq: IRQ.sci, gsi: IRQ.sci, trigger: "level", polarity: "high" },
    ],
    pm: {
      sciIrq: IRQ.sci,
      pm1aEvent: PORT.pm1aEvent,
      pm1aControl: PORT.pm1aControl,
      pmTimer: PORT.pmTimer,
      gpe0: PORT.gpe0,
      gpe0Length: GPE0_BLK_LEN,
      powerButtonGpe: POWER_BUTTON_GPE,
      slpTypS5: 5,
    },
    reset: { port: PORT.resetControl, value: 0x06 },
    hpet: {
      address: MMIO.hpetBase,
      timers: HPET_TIMERS,
      counter64: false,
      legacyCapable: true,
      vendorId: HPET_VENDOR_ID,
      revision: HPET_REVISION,
      minTick: HPET_MIN_PERIOD_TICKS,
    },
    ecam: { base: MMIO.ecamBase, segment: 0, startBus: 0, endBus: 255 },
    pciWindows: {
      io: [[0x0000, 0x0cf7], [0x0d00, 0xffff]],
      mem32: { start: layout.pciHole32.start, end: layout.pciHole32.end },
      mem64: { start: layout.pciHole64.start, end: layout.pciHole64.end },
    },
    pciFunctions,
    routing,
    pirqPossibleIrqs: pirqPossibleIrqs(ISA_RESERVED_IRQS),
    serial,
    rtc: { port: PORT.rtc, irq: IRQ.rtc },
    tablesRegion: { start: FIRMWARE.tables, end: FIRMWARE.tablesEnd },
    acpi: config.firmware.acpi,
    mptable: config.firmware.mptable,
  };
}

/**
 * The fixed I/O ports and interrupt lines of dhyve's PC platform: one table,
 * used by the machine builder to place devices, by the firmware tables to
 * describe them and by config validation to refuse devices that collide.
 * Values follow the PC/AT conventions and bhyve's choices where a choice was
 * free (PM1 block at 0x400, SCI on IRQ 9).
 *
 * @module
 */

/** A fixed port range of the platform. */
export interface FixedPorts {
  readonly name: string;
  readonly base: number;
  readonly length: number;
  /** Who serves it: dhyve in user space, or KVM's in-kernel models. */
  readonly owner: "dhyve" | "kvm";
  /** Present only when this COM port is enabled (a port set to "none" does not exist). */
  readonly onlyWith?: "com1" | "com2";
}

/** Which of the platform's optional devices a machine has. */
export interface PlatformDevices {
  /** COM1 exists (its console is not "none"). */
  readonly com1: boolean;
  /** COM2 exists (its console is not "none"). */
  readonly com2: boolean;
}

/** Port numbers. */
export const PORT = Object.freeze({
  /** 8259A master: command, data. */
  picMaster: 0x20,
  /** 8254 PIT channels 0-2 and mode register. */
  pit: 0x40,
  /** i8042 data port. */
  i8042Data: 0x60,
  /** NMI status and control, PIT channel 2 gate (KVM's speaker port). */
  port61: 0x61,
  /** i8042 status/command port. */
  i8042Command: 0x64,
  /** MC146818 RTC index and data. */
  rtc: 0x70,
  /** POST code port. */
  post: 0x80,
  /** 8259A slave: command, data. */
  picSlave: 0xa0,
  /** COM2 (16550). */
  com2: 0x2f8,
  /** COM1 (16550). */
  com1: 0x3f8,
  /** ACPI PM1a event block: status (2 bytes) + enable (2 bytes). */
  pm1aEvent: 0x400,
  /** ACPI PM1a control block (2 bytes). */
  pm1aControl: 0x404,
  /** ACPI PM timer (4 bytes). */
  pmTimer: 0x408,
  /** ACPI GPE0 block: status (2 bytes) + enable (2 bytes). */
  gpe0: 0x40c,
  /** ELCR: edge/level control of the 8259 pair (2 bytes). */
  elcr: 0x4d0,
  /** PCI configuration mechanism #1: address. */
  pciConfigAddress: 0xcf8,
  /** Reset control register. */
  resetControl: 0xcf9,
  /** PCI configuration mechanism #1: data. */
  pciConfigData: 0xcfc,
});

/** Interrupt lines (ISA IRQ == GSI for 0-15, with IRQ0 -> GSI2 on the IOAPIC). */
export const IRQ = Object.freeze({
  pit: 0,
  keyboard: 1,
  com2: 3,
  com1: 4,
  rtc: 8,
  /** ACPI SCI (level, active high on the IOAPIC; bhyve uses 9 too). */
  sci: 9,
  mouse: 12,
});

/**
 * The ISA IRQs the platform's own ISA devices use (the COM ports, whether
 * enabled or not, the SCI and the mouse), which PCI PIRQ links stay off
 * (the `isaReserved` of lib/pci_routing.ts routeIntx).
 */
export const ISA_RESERVED_IRQS: readonly number[] = Object.freeze([
  IRQ.com1,
  IRQ.com2,
  IRQ.sci,
  IRQ.mouse,
]);

/**
 * Every fixed port range of the platform. Devices from the config may not
 * overlap any of these that exist: a COM port's range exists only while the
 * port is enabled (`onlyWith`).
 */
export const FIXED_PORTS: readonly FixedPorts[] = Object.freeze([
  { name: "pic-master", base: PORT.picMaster, length: 2, owner: "kvm" },
  { name: "pit", base: PORT.pit, length: 4, owner: "kvm" },
  { name: "i8042-data", base: PORT.i8042Data, length: 1, owner: "dhyve" },
  { name: "port61", base: PORT.port61, length: 1, owner: "kvm" },
  { name: "i8042-command", base: PORT.i8042Command, length: 1, owner: "dhyve" },
  { name: "rtc", base: PORT.rtc, length: 2, owner: "dhyve" },
  { name: "rtc-extended", base: PORT.rtc + 2, length: 2, owner: "dhyve" },
  { name: "post", base: PORT.post, length: 1, owner: "dhyve" },
  { name: "pic-slave", base: PORT.picSlave, length: 2, owner: "kvm" },
  { name: "com2", base: PORT.com2, length: 8, owner: "dhyve", onlyWith: "com2" },
  { name: "com1", base: PORT.com1, length: 8, owner: "dhyve", onlyWith: "com1" },
  { name: "pm1a-event", base: PORT.pm1aEvent, length: 4, owner: "dhyve" },
  { name: "pm1a-control", base: PORT.pm1aControl, length: 2, owner: "dhyve" },
  { name: "pm-timer", base: PORT.pmTimer, length: 4, owner: "dhyve" },
  { name: "gpe0", base: PORT.gpe0, length: 4, owner: "dhyve" },
  { name: "elcr", base: PORT.elcr, length: 2, owner: "kvm" },
  { name: "pci-config-address", base: PORT.pciConfigAddress, length: 1, owner: "dhyve" },
  { name: "reset-control", base: PORT.resetControl, length: 1, owner: "dhyve" },
  { name: "pci-config-probe", base: PORT.resetControl + 1, length: 2, owner: "dhyve" },
  { name: "pci-config-data", base: PORT.pciConfigData, length: 4, owner: "dhyve" },
]);

/**
 * The fixed range that overlaps [base, base+length), if any, on a machine
 * with the optional devices `present` (by default: all of them).
 */
export function fixedPortConflict(
  base: number,
  length: number,
  present: PlatformDevices = { com1: true, com2: true },
): FixedPorts | undefined {
  return FIXED_PORTS.find((f) =>
    (f.onlyWith === undefined || present[f.onlyWith]) &&
    base < f.base + f.length && f.base < base + length
  );
}

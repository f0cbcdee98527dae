/**
 * The PCI host: the host bridge function at 00:00.0, the two ways to reach
 * configuration space (mechanism #1 at ports 0xCF8/0xCFC and ECAM), BAR
 * decoding for the MMIO windows and I/O ports, and BAR placement at power-on.
 *
 * Only bus 0 exists. Configuration reads of absent functions (or of other
 * buses) return all ones, as a master abort does (PCI 3.0 §6.1: the host
 * bridge returns 0xFFFF for the Vendor ID of a non-existent device); writes
 * to them are dropped.
 *
 * BARs are placed like bhyve's pci_emul_alloc_bar, without a BIOS: at
 * {@linkcode PciHost.reset} every BAR of every function gets a naturally
 * aligned address, I/O BARs from 0x2000 up, 32-bit memory BARs in the 32-bit
 * window, and 64-bit memory BARs in the 64-bit window when larger than a
 * threshold (bhyve: 128 MiB; smaller 64-bit BARs stay below 4 GiB, where
 * every driver can reach them). Larger BARs are placed first, as bhyve does
 * since it sorts its BAR allocations by size, so the windows pack without
 * holes. Decoding is then switched on in the command register of every
 * function with BARs, for the spaces it uses (bhyve does the same).
 *
 * Decoding reads the BAR registers at each access, so a guest that moves a
 * BAR or turns decoding off is obeyed at once; no bus ranges change.
 *
 * @module
 */
import { allOnes } from "../bus.ts";
import type { AccessSize, BusDevice } from "../device.ts";
import { defineState } from "../state.ts";
import {
  PCI_COMMAND,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_HEADER_TYPE,
  PCI_HEADER_TYPE_MULTIFUNCTION,
  type PciBarSpec,
} from "./config.ts";
import { buildConfigTemplate } from "./config.ts";
import { PCI_FUNCTION_FIELDS, PciFunction } from "./function.ts";

// ---------------------------------------------------------------------------
// Configuration mechanism #1 (PCI 3.0 §3.2.2.3.2).

/** CONFIG_ADDRESS port. */
export const PCI_CONFIG_ADDRESS_PORT = 0xcf8;
/**
 * CONFIG_ADDRESS: ports claimed. Only 0xCF8 itself: a dword access is decoded
 * by its first port, and 0xCF9 is the reset control register (byte access).
 */
export const PCI_CONFIG_ADDRESS_PORTS = 1;
/** CONFIG_DATA ports (0xCFC-0xCFF). */
export const PCI_CONFIG_DATA_PORT = 0xcfc;
/** CONFIG_DATA: number of ports. */
export const PCI_CONFIG_DATA_PORTS = 4;
/**
 * 0xCFA-0xCFB: byte ports of the old configuration mechanism #2 (its Forward
 * register is 0xCFA). Linux writes 0xCFB while probing for mechanism #1
 * (arch/x86/pci/direct.c, pci_check_type1); the platform accepts and ignores it.
 */
export const PCI_CONFIG_PROBE_PORT = 0xcfa;
/** The mechanism #2 probe ports: number of ports. */
export const PCI_CONFIG_PROBE_PORTS = 2;
/** CONFIG_ADDRESS bit 31: enable configuration cycles through CONFIG_DATA. */
export const CONFIG_ADDRESS_ENABLE = 0x80000000;
/** CONFIG_ADDRESS bits 23:16: bus number. */
export const CONFIG_ADDRESS_BUS_SHIFT = 16;
/** CONFIG_ADDRESS bits 15:11: device number. */
export const CONFIG_ADDRESS_DEVICE_SHIFT = 11;
/** CONFIG_ADDRESS bits 10:8: function number. */
export const CONFIG_ADDRESS_FUNCTION_SHIFT = 8;
/** CONFIG_ADDRESS bits 7:2: the dword register number (as a byte offset). */
export const CONFIG_ADDRESS_REGISTER_MASK = 0xfc;
/**
 * CONFIG_ADDRESS bits that hold what was written: bits 30:24 are reserved
 * (read 0) and bits 1:0 read 0 here (type-0 translation, §3.2.2.3.2).
 */
export const CONFIG_ADDRESS_WRITABLE = 0x80fffffc;

// ---------------------------------------------------------------------------
// ECAM (PCI Express Base 3.0 §7.2.2, table 7-1).

/** ECAM: bus number at address bits 27:20. */
export const ECAM_BUS_SHIFT = 20;
/** ECAM: device number at address bits 19:15. */
export const ECAM_DEVICE_SHIFT = 15;
/** ECAM: function number at address bits 14:12. */
export const ECAM_FUNCTION_SHIFT = 12;
/** ECAM: register offset at address bits 11:0. */
export const ECAM_REGISTER_MASK = 0xfff;
/** ECAM window of 256 buses x 32 devices x 8 functions x 4 KiB. */
export const ECAM_SIZE = 256 << 20;

/** Devices per bus. */
export const PCI_SLOTS = 32;
/** Functions per device. */
export const PCI_FUNCTIONS = 8;

// ---------------------------------------------------------------------------
// The host bridge function (00:00.0).

/** Host bridge vendor: Intel. */
export const HOSTBRIDGE_VENDOR_ID = 0x8086;
/** Host bridge device: 82441FX (i440FX) PMC. */
export const HOSTBRIDGE_DEVICE_ID = 0x1237;
/** Class 06/00/00: bridge, host bridge. */
export const HOSTBRIDGE_CLASS = 0x060000;

/** I/O BARs are placed from here up (bhyve's PCI_EMUL_IOBASE). */
export const PCI_IO_BASE = 0x2000;
/** ... and below here (bhyve's PCI_EMUL_IOLIMIT). */
export const PCI_IO_LIMIT = 0x10000;
/** 64-bit BARs larger than this go in the 64-bit window (bhyve's rule). */
export const PCI_MEM64_HIGH_THRESHOLD = 128 * 1024 * 1024;

/** State of the host: the host bridge function and the CONFIG_ADDRESS latch. */
export const PciHostState = defineState("pci-host", 1, {
  ...PCI_FUNCTION_FIELDS,
  /** The latched CONFIG_ADDRESS (§3.2.2.3.2). */
  configAddress: "u32",
});

/** A bound {@linkcode PciHostState}. */
export type PciHostRegisters = ReturnType<typeof PciHostState.create>;

/** An address window, [start, end). */
export interface PciWindow {
  readonly start: number;
  readonly end: number;
}

/** A function attached at a slot of bus 0. */
export interface PciSlotFunction {
  readonly slot: number;
  readonly function: number;
  readonly device: PciFunction;
}

/** How the host is set up. */
export interface PciHostOptions {
  /** Guest-physical base of the ECAM window (256 MiB). */
  readonly ecamBase: number;
  /** The 32-bit MMIO window BARs are placed and decoded in. */
  readonly mem32: PciWindow;
  /** The 64-bit MMIO window. */
  readonly mem64: PciWindow;
  /** The I/O window; [0x2000, 0x10000) by default. */
  readonly io?: PciWindow;
  /** 64-bit BARs larger than this go in the 64-bit window; 128 MiB by default. */
  readonly mem64Threshold?: number;
  /** The functions on bus 0 besides the host bridge (00:00.0 is taken). */
  readonly functions: readonly PciSlotFunction[];
}

/** The host's devices for the buses. */
export interface PciHostDevices {
  /** Port 0xCF8, 1 port (decoded by first port: a dword arrives as offset 0, size 4). */
  readonly configAddress: BusDevice;
  /** Ports 0xCFC-0xCFF. */
  readonly configData: BusDevice;
  /** MMIO [ecamBase, ecamBase + 256 MiB). */
  readonly ecam: BusDevice;
  /** MMIO [mem32.start, mem32.end): BAR decoding, offsets from mem32.start. */
  readonly mem32Window: BusDevice;
  /** MMIO [mem64.start, mem64.end): BAR decoding, offsets from mem64.start. */
  readonly mem64Window: BusDevice;
}

interface BarRef {
  readonly fn: PciFunction;
  readonly bar: PciBarSpec;
  readonly slot: number;
  readonly function: number;
}

const hex = (n: number) => `0x${n.toString(16)}`;
const bdf = (slot: number, fn: number) => `00:${slot.toString(16).padStart(2, "0")}.${fn}`;

/** The host bridge function at 00:00.0 (no BARs, no interrupt). */
export function hostBridgeFunction(state: PciHostRegisters): PciFunction {
  return new PciFunction(
    "hostbridge",
    buildConfigTemplate({
      vendorId: HOSTBRIDGE_VENDOR_ID,
      deviceId: HOSTBRIDGE_DEVICE_ID,
      classCode: HOSTBRIDGE_CLASS,
    }),
    {},
    state,
  );
}

/** The PCI host (bus 0). */
export class PciHost {
  /** The host bridge at 00:00.0. */
  readonly hostBridge: PciFunction;
  /** The devices to put on the buses. */
  readonly devices: PciHostDevices;
  readonly #s: PciHostRegisters;
  /** devfn (slot << 3 | function) -> function. */
  readonly #fns: readonly (PciFunction | undefined)[];
  readonly #list: readonly PciSlotFunction[];
  readonly #mem: readonly BarRef[];
  readonly #io: readonly BarRef[];
  readonly #o: Required<PciHostOptions>;

  /**
   * Builds the host over `state` (used as it is; without one, a fresh state
   * is created and reset). Throws on a bad slot or two functions at one place.
   */
  constructor(options: PciHostOptions, state?: PciHostRegisters) {
    this.#o = {
      io: { start: PCI_IO_BASE, end: PCI_IO_LIMIT },
      mem64Threshold: PCI_MEM64_HIGH_THRESHOLD,
      ...options,
    };
    const s = state ?? PciHostState.create();
    this.#s = s;
    this.hostBridge = hostBridgeFunction(s);
    const fns: (PciFunction | undefined)[] = new Array(PCI_SLOTS * PCI_FUNCTIONS).fill(undefined);
    const list: PciSlotFunction[] = [{ slot: 0, function: 0, device: this.hostBridge }];
    fns[0] = this.hostBridge;
    for (const f of options.functions) {
      if (
        !Number.isInteger(f.slot) || f.slot < 0 || f.slot >= PCI_SLOTS ||
        !Number.isInteger(f.function) || f.function < 0 || f.function >= PCI_FUNCTIONS
      ) {
        throw new Error(`pci: ${f.device.name}: bad slot ${f.slot} function ${f.function}`);
      }
      const devfn = f.slot * PCI_FUNCTIONS + f.function;
      const other = fns[devfn];
      if (other) {
        throw new Error(
          `pci: ${f.device.name} and ${other.name} both at ${bdf(f.slot, f.function)}`,
        );
      }
      fns[devfn] = f.device;
      list.push(f);
    }
    list.sort((a, b) => a.slot - b.slot || a.function - b.function);
    this.#fns = fns;
    this.#list = list;
    const mem: BarRef[] = [], io: BarRef[] = [];
    for (const f of list) {
      for (const bar of f.device.bars) {
        (bar.kind === "io" ? io : mem).push({
          fn: f.device,
          bar,
          slot: f.slot,
          function: f.function,
        });
      }
    }
    this.#mem = mem;
    this.#io = io;
    this.devices = this.#busDevices();
    if (!state) this.reset();
  }

  /** The bound register state. */
  get state(): PciHostRegisters {
    return this.#s;
  }

  /** The functions on bus 0, host bridge included, by slot and function. */
  get functions(): readonly PciSlotFunction[] {
    return this.#list;
  }

  /** The latched CONFIG_ADDRESS. */
  get configAddress(): number {
    return this.#s.configAddress;
  }

  /** The function at `bus`:`slot`.`fn`, if present (only bus 0 exists). */
  functionAt(bus: number, slot: number, fn: number): PciFunction | undefined {
    if (bus !== 0 || slot < 0 || slot >= PCI_SLOTS || fn < 0 || fn >= PCI_FUNCTIONS) {
      return undefined;
    }
    return this.#fns[slot * PCI_FUNCTIONS + fn];
  }

  /**
   * Power-on state of the whole bus: the CONFIG_ADDRESS latch, every
   * function (each releases its INTx pin), the multi-function bits, then
   * BAR placement and decode enables. Throws, naming the function and BAR,
   * when a window is too small.
   */
  reset(): void {
    this.#s.configAddress = 0;
    for (const f of this.#list) f.device.reset();
    // §6.2.1: header type bit 7 marks a device with more than one function.
    for (const f of this.#list) {
      const siblings = this.#list.filter((g) => g.slot === f.slot).length;
      if (siblings > 1) {
        const cfg = f.device.config;
        cfg.set8(PCI_HEADER_TYPE, cfg.get8(PCI_HEADER_TYPE) | PCI_HEADER_TYPE_MULTIFUNCTION);
      }
    }
    this.#placeBars();
  }

  /** A configuration read (all ones for an absent function). */
  configRead(bus: number, slot: number, fn: number, offset: number, size: AccessSize): number {
    const f = this.functionAt(bus, slot, fn);
    return f ? f.configRead(offset, size) : allOnes(size);
  }

  /** A configuration write (dropped for an absent function). */
  configWrite(
    bus: number,
    slot: number,
    fn: number,
    offset: number,
    size: AccessSize,
    value: number,
  ): void {
    this.functionAt(bus, slot, fn)?.configWrite(offset, size, value);
  }

  /**
   * A memory read at guest-physical `address`: the value when a memory BAR
   * of a function with memory decoding on claims the whole access, else
   * undefined.
   */
  mmioRead(address: number, size: AccessSize): number | undefined {
    const hit = this.#findMem(address, size);
    return hit ? hit.fn.barRead(hit.bar.index, address - hit.base, size) : undefined;
  }

  /** A memory write; false when no BAR claims it. */
  mmioWrite(address: number, size: AccessSize, value: number): boolean {
    const hit = this.#findMem(address, size);
    if (!hit) return false;
    hit.fn.barWrite(hit.bar.index, address - hit.base, size, value);
    return true;
  }

  /**
   * A port read: the value when an I/O BAR of a function with I/O decoding
   * on claims `port` (decoded by the first port, like the port bus), else
   * undefined.
   */
  ioRead(port: number, size: AccessSize): number | undefined {
    const hit = this.#findIo(port);
    return hit ? hit.fn.barRead(hit.bar.index, port - hit.base, size) : undefined;
  }

  /** A port write; false when no BAR claims it. */
  ioWrite(port: number, size: AccessSize, value: number): boolean {
    const hit = this.#findIo(port);
    if (!hit) return false;
    hit.fn.barWrite(hit.bar.index, port - hit.base, size, value);
    return true;
  }

  // -------------------------------------------------------------------------

  #findMem(address: number, size: number): (BarRef & { base: number }) | undefined {
    for (const r of this.#mem) {
      if (!r.fn.memoryEnabled) continue;
      const base = r.fn.config.barAddress(r.bar);
      if (address >= base && address + size <= base + r.bar.size) return { ...r, base };
    }
    return undefined;
  }

  #findIo(port: number): (BarRef & { base: number }) | undefined {
    for (const r of this.#io) {
      if (!r.fn.ioEnabled) continue;
      const base = r.fn.config.barAddress(r.bar);
      if (port >= base && port < base + r.bar.size) return { ...r, base };
    }
    return undefined;
  }

  #placeBars(): void {
    const o = this.#o;
    const windows = {
      io: { name: "I/O", w: o.io, bars: [] as BarRef[] },
      mem32: { name: "32-bit MMIO", w: o.mem32, bars: [] as BarRef[] },
      mem64: { name: "64-bit MMIO", w: o.mem64, bars: [] as BarRef[] },
    };
    for (const r of [...this.#io, ...this.#mem]) {
      const k = r.bar.kind === "mem64" && r.bar.size <= o.mem64Threshold ? "mem32" : r.bar.kind;
      windows[k].bars.push(r);
    }
    for (const { name, w, bars } of Object.values(windows)) {
      // Largest first (stable: then slot, function, BAR order), so natural
      // alignment leaves no holes after the first BAR.
      const sorted = [...bars].sort((a, b) => b.bar.size - a.bar.size);
      let next = w.start;
      for (const r of sorted) {
        const address = Math.ceil(next / r.bar.size) * r.bar.size;
        if (address + r.bar.size > w.end) {
          throw new Error(
            `pci: no room for BAR${r.bar.index} (${r.bar.kind}, ${hex(r.bar.size)} bytes) of ` +
              `${r.fn.name} at ${bdf(r.slot, r.function)} in the ${name} window ` +
              `[${hex(w.start)}, ${hex(w.end)})`,
          );
        }
        r.fn.config.setBarAddress(r.bar, address);
        next = address + r.bar.size;
      }
    }
    for (const f of this.#list) {
      const bars = f.device.bars;
      if (bars.length === 0) continue;
      const cfg = f.device.config;
      let cmd = cfg.get16(PCI_COMMAND);
      if (bars.some((b) => b.kind === "io")) cmd |= PCI_COMMAND_IO;
      if (bars.some((b) => b.kind !== "io")) cmd |= PCI_COMMAND_MEMORY;
      cfg.set16(PCI_COMMAND, cmd);
    }
  }

  #configDataTarget(): { bus: number; slot: number; fn: number; reg: number } | undefined {
    const a = this.#s.configAddress;
    // §3.2.2.3.2: with the enable bit clear, CONFIG_DATA accesses are plain
    // I/O cycles that nobody claims.
    if (!(a & CONFIG_ADDRESS_ENABLE)) return undefined;
    return {
      bus: (a >>> CONFIG_ADDRESS_BUS_SHIFT) & 0xff,
      slot: (a >>> CONFIG_ADDRESS_DEVICE_SHIFT) & 0x1f,
      fn: (a >>> CONFIG_ADDRESS_FUNCTION_SHIFT) & 0x7,
      reg: a & CONFIG_ADDRESS_REGISTER_MASK,
    };
  }

  #busDevices(): PciHostDevices {
    const s = this.#s;
    const o = this.#o;
    const ecam = (offset: number) => ({
      bus: (offset >>> ECAM_BUS_SHIFT) & 0xff,
      slot: (offset >>> ECAM_DEVICE_SHIFT) & 0x1f,
      fn: (offset >>> ECAM_FUNCTION_SHIFT) & 0x7,
      reg: offset & ECAM_REGISTER_MASK,
    });
    const window = (
      base: number,
      read: (a: number, size: AccessSize) => number | undefined,
      write: (a: number, size: AccessSize, v: number) => boolean,
    ): BusDevice => ({
      read: (offset, size) => read(base + offset, size) ?? allOnes(size),
      write: (offset, size, value) => void write(base + offset, size, value),
    });
    return {
      configAddress: {
        read: (offset, size) => {
          // §3.2.2.3.2: only a full dword access reaches CONFIG_ADDRESS;
          // others are ordinary I/O cycles that nothing here claims.
          if (offset !== 0 || size !== 4) return allOnes(size);
          return s.configAddress;
        },
        write: (offset, size, value) => {
          if (offset !== 0 || size !== 4) return;
          s.configAddress = (value & CONFIG_ADDRESS_WRITABLE) >>> 0;
        },
      },
      // A configuration access is one dword's byte enables: one that runs
      // past the dword (a word at 0xCFF, say) reaches no register (bhyve
      // ignores it too); on ECAM such an access is undefined (PCIe 3.0,
      // 7.2.2). Reads give all ones, writes are dropped.
      configData: {
        read: (offset, size) => {
          const t = this.#configDataTarget();
          if (!t || offset + size > 4) return allOnes(size);
          return this.configRead(t.bus, t.slot, t.fn, t.reg + offset, size);
        },
        write: (offset, size, value) => {
          const t = this.#configDataTarget();
          if (t && offset + size <= 4) {
            this.configWrite(t.bus, t.slot, t.fn, t.reg + offset, size, value);
          }
        },
      },
      ecam: {
        read: (offset, size) => {
          const t = ecam(offset);
          if ((t.reg & 3) + size > 4) return allOnes(size);
          return this.configRead(t.bus, t.slot, t.fn, t.reg, size);
        },
        write: (offset, size, value) => {
          const t = ecam(offset);
          if ((t.reg & 3) + size <= 4) this.configWrite(t.bus, t.slot, t.fn, t.reg, size, value);
        },
      },
      mem32Window: window(
        o.mem32.start,
        (a, z) => this.mmioRead(a, z),
        (a, z, v) => this.mmioWrite(a, z, v),
      ),
      mem64Window: window(
        o.mem64.start,
        (a, z) => this.mmioRead(a, z),
        (a, z, v) => this.mmioWrite(a, z, v),
      ),
    };
  }
}

/**
 * The base of every PCI function: configuration reads and writes, BAR access
 * dispatch, INTx and the MSI/MSI-X capabilities.
 *
 * A function is built from a {@linkcode PciConfigTemplate} (immutable, the
 * same in every thread) and registers in shared state: the 4096 bytes of
 * configuration space and the INTx levels ({@linkcode PCI_FUNCTION_FIELDS}),
 * plus the MSI-X table and PBA ({@linkcode msixFields}) when it has MSI-X.
 * A model's own layout spreads these fields into its `defineState(...)`, so
 * one buffer holds all of a function's state.
 *
 * INTx: the model drives its internal level with {@linkcode PciFunction.setIntx};
 * the pin is asserted while that level is high, the command register's
 * INTx Disable bit is clear (PCI 3.0 §6.2.2) and neither MSI nor MSI-X is
 * enabled (§6.8.1.3, §6.8.2.3: an enabled function "is prohibited from using
 * its INTx# pin"). Status bit 3 shows the internal level whatever the
 * masking (§6.2.3). The pin reaches the interrupt controllers through an
 * injected {@linkcode IntxSink} (see `lpc.ts`).
 *
 * Section numbers refer to the PCI Local Bus Specification, revision 3.0.
 *
 * @module
 */
import { allOnes } from "../bus.ts";
import { type AccessSize, driveLine, type MsiSink } from "../device.ts";
import { defineState } from "../state.ts";
import {
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_CONFIG_SPACE_SIZE,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
  type PciBarSpec,
  PciConfigSpace,
  type PciConfigTemplate,
} from "./config.ts";
import { MsiCapability, MSIX_CAP_LENGTH, MsixCapability } from "./msi.ts";

/** Where a function's INTx pin goes (built by the LPC bridge from the routing). */
export interface IntxSink {
  /** The pin went active. */
  assert(): void;
  /** The pin went inactive. */
  deassert(): void;
}

/** A function's INTx wiring. */
export interface PciIntxWiring {
  /** The interrupt pin register (1 = INTA# .. 4 = INTD#). */
  readonly pin: number;
  /** The power-on interrupt line register (the PIRQ's ISA IRQ). */
  readonly line: number;
  /** Where the pin's level goes. */
  readonly sink: IntxSink;
}

/** What a function is given. */
export interface PciFunctionDeps {
  /** Where MSI/MSI-X messages go. Without it messages are dropped. */
  readonly msi?: MsiSink;
  /** INTx wiring; without it the function has no interrupt pin. */
  readonly intx?: PciIntxWiring;
}

/** The state fields every function has; spread them into a model's layout. */
export const PCI_FUNCTION_FIELDS = {
  /** Configuration space (ECAM-sized; offsets >= 0x100 read 0). */
  config: ["u8", PCI_CONFIG_SPACE_SIZE],
  /** The level the model asks for (status bit 3). */
  intxLevel: "bool",
  /** The level last driven on the sink. */
  intxLine: "bool",
} as const;

/** State of a function with nothing more than the base (e.g. a host bridge). */
export const PciFunctionState = defineState("pci-function", 1, PCI_FUNCTION_FIELDS);

/** The registers a function binds: any layout that includes the base fields. */
export interface PciFunctionRegisters {
  readonly config: Uint8Array;
  intxLevel: boolean;
  intxLine: boolean;
  /** The MSI-X table, for functions with MSI-X ({@linkcode msixFields}). */
  readonly msixTable?: Uint32Array;
  /** The MSI-X PBA, for functions with MSI-X. */
  readonly msixPba?: Uint32Array;
}

/**
 * A PCI function. Subclasses implement their BARs by overriding
 * {@linkcode PciFunction.handleBarRead}/{@linkcode PciFunction.handleBarWrite}
 * and may watch config writes with {@linkcode PciFunction.onConfigWrite}.
 */
export class PciFunction {
  /** A name for messages (the model or instance name). */
  readonly name: string;
  /** The live configuration space. */
  readonly config: PciConfigSpace;
  /** The MSI capability, if declared. */
  readonly msi: MsiCapability | undefined;
  /** The MSI-X capability, if declared. */
  readonly msix: MsixCapability | undefined;
  readonly #s: PciFunctionRegisters;
  readonly #intx: IntxSink | undefined;

  /**
   * Builds a function over `state` (used as it is: call
   * {@linkcode PciFunction.reset} for the power-on state). The interrupt pin
   * and line registers of `template` should come from `deps.intx`; use
   * {@linkcode intxHeader} when building the template.
   */
  constructor(
    name: string,
    template: PciConfigTemplate,
    deps: PciFunctionDeps,
    state: PciFunctionRegisters,
  ) {
    this.name = name;
    this.#s = state;
    this.#intx = deps.intx?.sink;
    this.config = new PciConfigSpace(template, state.config);
    const msi = template.capabilities.find((c) => c.id === PCI_CAP_ID_MSI);
    this.msi = msi ? new MsiCapability(this.config, msi.offset, deps.msi) : undefined;
    const msix = template.capabilities.find((c) => c.id === PCI_CAP_ID_MSIX);
    if (msix) {
      if (!state.msixTable || !state.msixPba) {
        throw new Error(`${name}: MSI-X needs msixTable/msixPba in the state layout`);
      }
      this.msix = new MsixCapability(
        this.config,
        msix.offset,
        state.msixTable,
        state.msixPba,
        deps.msi,
      );
    } else {
      this.msix = undefined;
    }
  }

  /** The declared BARs. */
  get bars(): readonly PciBarSpec[] {
    return this.config.template.bars;
  }

  /** The level the model asks for. */
  get intxLevel(): boolean {
    return this.#s.intxLevel;
  }

  /** The level driven on the INTx pin now (after masking). */
  get intxLine(): boolean {
    return this.#s.intxLine;
  }

  /** Whether memory decoding is on (command bit 1). */
  get memoryEnabled(): boolean {
    return (this.config.command & PCI_COMMAND_MEMORY) !== 0;
  }

  /** Whether I/O decoding is on (command bit 0). */
  get ioEnabled(): boolean {
    return (this.config.command & PCI_COMMAND_IO) !== 0;
  }

  /**
   * Power-on state: configuration space from the template, INTx low (the
   * pin is released first if it was driven), MSI-X vectors masked.
   * Subclasses extend it and call `super.reset()` first.
   */
  reset(): void {
    const s = this.#s;
    s.intxLine = driveLine(this.#intx, s.intxLine, false);
    s.intxLevel = false;
    this.config.reset();
    this.msix?.reset();
  }

  /**
   * A configuration read of `size` bytes at `offset` (0-4095). An access
   * that crosses a dword boundary is split at it.
   */
  configRead(offset: number, size: AccessSize): number {
    if (size === 8) size = 4;
    const first = 4 - (offset & 3);
    if (size <= first) return this.readConfigDword(offset, size);
    const lo = this.readConfigDword(offset, first as AccessSize);
    const hi = this.readConfigDword(offset + first, (size - first) as AccessSize);
    return lo + hi * 2 ** (8 * first);
  }

  /** A configuration write; an access that crosses a dword boundary is split at it. */
  configWrite(offset: number, size: AccessSize, value: number): void {
    if (size === 8) size = 4;
    const first = 4 - (offset & 3);
    if (size <= first) {
      this.#writePiece(offset, size, value);
      return;
    }
    this.#writePiece(offset, first as AccessSize, value % 2 ** (8 * first));
    this.#writePiece(
      offset + first,
      (size - first) as AccessSize,
      Math.floor(value / 2 ** (8 * first)),
    );
  }

  /**
   * A read of `size` bytes at `offset` in BAR `bar`. The MSI-X table and
   * PBA are served here; the rest goes to {@linkcode PciFunction.handleBarRead}.
   */
  barRead(bar: number, offset: number, size: AccessSize): number {
    const x = this.msix;
    if (x?.inTable(bar, offset)) return x.tableRead(offset - x.tableOffset, size);
    if (x?.inPba(bar, offset)) return x.pbaRead(offset - x.pbaOffset, size);
    return this.handleBarRead(bar, offset, size);
  }

  /** A write in BAR `bar`; MSI-X table/PBA here, the rest to {@linkcode PciFunction.handleBarWrite}. */
  barWrite(bar: number, offset: number, size: AccessSize, value: number): void {
    const x = this.msix;
    if (x?.inTable(bar, offset)) return x.tableWrite(offset - x.tableOffset, size, value);
    if (x?.inPba(bar, offset)) return x.pbaWrite(offset - x.pbaOffset, size, value);
    this.handleBarWrite(bar, offset, size, value);
  }

  /** Sets the function's internal INTx level (the model's interrupt condition). */
  setIntx(level: boolean): void {
    const s = this.#s;
    s.intxLevel = level;
    // §6.2.3 bit 3: reflects the interrupt in the function, masked or not.
    const status = this.config.get16(PCI_STATUS);
    this.config.set16(
      PCI_STATUS,
      level ? status | PCI_STATUS_INTERRUPT : status & ~PCI_STATUS_INTERRUPT,
    );
    this.#updateIntx();
  }

  /** A read in one of the model's BARs; all ones by default (nothing there). */
  protected handleBarRead(_bar: number, _offset: number, size: AccessSize): number {
    return allOnes(size);
  }

  /** A write in one of the model's BARs; ignored by default. */
  protected handleBarWrite(
    _bar: number,
    _offset: number,
    _size: AccessSize,
    _value: number,
  ): void {}

  /**
   * Called after each config write piece (within one dword), with the
   * value the bytes had before. Masks and RW1C were already applied.
   */
  protected onConfigWrite(_offset: number, _size: AccessSize, _old: number): void {}

  /** Reads within one dword; subclasses may override to compute registers. */
  protected readConfigDword(offset: number, size: AccessSize): number {
    return this.config.read(offset, size);
  }

  #writePiece(offset: number, size: AccessSize, value: number): void {
    const old = this.config.read(offset, size);
    this.config.write(offset, size, value);
    const end = offset + size;
    const touches = (at: number, len: number) => offset < at + len && at < end;
    if (this.msi && touches(this.msi.offset, this.msi.length)) this.msi.afterWrite();
    if (this.msix && touches(this.msix.offset, MSIX_CAP_LENGTH)) this.msix.afterWrite();
    this.onConfigWrite(offset, size, old);
    // The command register's INTx Disable or an MSI/MSI-X enable may have
    // changed: re-evaluate the pin.
    this.#updateIntx();
  }

  #updateIntx(): void {
    const s = this.#s;
    const masked = (this.config.command & PCI_COMMAND_INTX_DISABLE) !== 0 ||
      (this.msi?.enabled ?? false) || (this.msix?.enabled ?? false);
    s.intxLine = driveLine(this.#intx, s.intxLine, s.intxLevel && !masked);
  }
}

/** The header fields a function's INTx wiring fills in (pin and line registers). */
export function intxHeader(
  intx: PciIntxWiring | undefined,
): { interruptPin: number; interruptLine?: number } {
  return intx ? { interruptPin: intx.pin, interruptLine: intx.line } : { interruptPin: 0 };
}

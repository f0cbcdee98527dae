/**
 * An 8042 keyboard controller (PS/2-compatible, IBM PC AT lineage) with no
 * keyboard and no mouse attached.
 *
 * What guests use it for on a VM: the CPU reset line (command 0xFE, or an
 * output-port write with bit 0 clear), the A20 gate bit, the self-test and
 * command byte probing that firmware and OS drivers do before they decide
 * that nothing is plugged in. Bytes sent to the absent keyboard or mouse are
 * answered the way a controller answers when no device clocks them in: a
 * time-out (see {@linkcode I8042_NO_DEVICE}).
 *
 * The controller decodes two ports, 0x60 (data) and 0x64 (status/command),
 * which are not contiguous for the bus (0x61 belongs to port B), so the model
 * is one class over offsets 0 (data) and 4 (status/command), with
 * {@linkcode I8042.ports} giving the two 1-port views the VMM registers.
 *
 * References: "IBM PC AT Technical Reference", System Board section,
 * "Keyboard Controller" (status register, command byte, commands, input and
 * output ports), cited as [AT-TR]; the PS/2 extensions of the same controller
 * (auxiliary device port, IRQ12, commands 0xA7-0xA9 and 0xD2-0xD4) as found
 * on every PS/2-compatible controller, cited as [PS/2].
 *
 * @module
 */
import {
  type AccessSize,
  type BusDevice,
  driveLine,
  type IrqLine,
  type Platform,
} from "./device.ts";
import { defineState } from "./state.ts";

// ---------------------------------------------------------------------------
// Window offsets (the VMM maps port 0x60 to offset 0 and port 0x64 to 4).

/** Offset of the data port (I/O port 0x60): output buffer / input buffer (data). */
export const I8042_DATA = 0;
/** Offset of the status/command port (I/O port 0x64). */
export const I8042_COMMAND = 4;

// Status register, read at port 0x64 ([AT-TR] "Status Register"; [PS/2] bits 5, 6).
/** Status: output buffer full (a byte waits at port 0x60). */
export const STS_OBF = 0x01;
/** Status: input buffer full. Always 0 here: every byte is consumed at once. */
export const STS_IBF = 0x02;
/** Status: system flag; 0 after power-on, 1 after a successful self-test. */
export const STS_SYS_FLAG = 0x04;
/** Status: command/data (A2); 1 when the last byte was written to port 0x64. */
export const STS_CMD = 0x08;
/** Status: keyboard inhibit switch; 1 = not inhibited (a VM has no keylock). */
export const STS_UNLOCKED = 0x10;
/** Status: the output buffer holds auxiliary-device (mouse) data [PS/2]. */
export const STS_AUX_OBF = 0x20;
/** Status: general time-out [PS/2] (the AT's transmit/receive time-outs). */
export const STS_TIMEOUT = 0x40;
/** Status: parity error on the last byte received from a device. */
export const STS_PARITY = 0x80;

// Controller command byte (controller RAM byte 0; [AT-TR] "Command Byte").
/** Command byte: raise IRQ1 when keyboard data fills the output buffer. */
export const CB_KBD_INT = 0x01;
/** Command byte: raise IRQ12 when auxiliary data fills the output buffer [PS/2]. */
export const CB_AUX_INT = 0x02;
/** Command byte: system flag (copied to the status register when written). */
export const CB_SYS_FLAG = 0x04;
/** Command byte: inhibit override (AT; reserved on PS/2). */
export const CB_INHIBIT_OVERRIDE = 0x08;
/** Command byte: keyboard interface disabled. */
export const CB_KBD_DISABLE = 0x10;
/** Command byte: auxiliary interface disabled [PS/2]. */
export const CB_AUX_DISABLE = 0x20;
/** Command byte: translate keyboard scan codes to set 1 (PC compatibility). */
export const CB_XLATE = 0x40;

// Output port ([AT-TR] "Output Port"; [PS/2] bits 2, 3, 5).
/** Output port: system reset line, active low (0 resets the CPU). */
export const OUT_RESET = 0x01;
/** Output port: gate A20 (1 = A20 enabled). */
export const OUT_A20 = 0x02;
/** Output port: auxiliary data line [PS/2]. */
export const OUT_AUX_DATA = 0x04;
/** Output port: auxiliary clock line [PS/2]. */
export const OUT_AUX_CLOCK = 0x08;
/** Output port: output buffer full with keyboard data (the IRQ1 pin). */
export const OUT_KBD_OBF = 0x10;
/** Output port: output buffer full with auxiliary data (the IRQ12 pin) [PS/2]. */
export const OUT_AUX_OBF = 0x20;
/** Output port: keyboard clock line. */
export const OUT_KBD_CLOCK = 0x40;
/** Output port: keyboard data line. */
export const OUT_KBD_DATA = 0x80;

// Input port ([AT-TR] "Input Port").
/** Input port: keyboard inhibit switch; 1 = not inhibited. */
export const IN_UNLOCKED = 0x80;
/** Input port: display switch; 0 = primary display is color. */
export const IN_MONOCHROME = 0x40;
/** Input port: manufacturing jumper; 1 = not installed. */
export const IN_NO_MFG_JUMPER = 0x20;

// Controller commands, written to port 0x64 ([AT-TR] "Commands (I/O Address Hex 64)").
/** Read controller RAM byte (cmd - 0x20); 0x20 reads the command byte. */
export const CMD_READ_RAM = 0x20;
/** Last read-RAM command. */
export const CMD_READ_RAM_LAST = 0x3f;
/** Write controller RAM byte (cmd - 0x60) with the next data byte; 0x60 writes the command byte. */
export const CMD_WRITE_RAM = 0x60;
/** Last write-RAM command. */
export const CMD_WRITE_RAM_LAST = 0x7f;
/** Disable the auxiliary interface (sets CB_AUX_DISABLE) [PS/2]. */
export const CMD_DISABLE_AUX = 0xa7;
/** Enable the auxiliary interface (clears CB_AUX_DISABLE) [PS/2]. */
export const CMD_ENABLE_AUX = 0xa8;
/** Test the auxiliary interface lines; answers 0x00 (no error) [PS/2]. */
export const CMD_TEST_AUX = 0xa9;
/** Controller self-test; answers 0x55. */
export const CMD_SELF_TEST = 0xaa;
/** Test the keyboard interface lines; answers 0x00 (no error). */
export const CMD_TEST_KBD = 0xab;
/** Disable the keyboard interface (sets CB_KBD_DISABLE). */
export const CMD_DISABLE_KBD = 0xad;
/** Enable the keyboard interface (clears CB_KBD_DISABLE). */
export const CMD_ENABLE_KBD = 0xae;
/** Read the input port. */
export const CMD_READ_INPUT = 0xc0;
/** Read the output port. */
export const CMD_READ_OUTPUT = 0xd0;
/** Write the output port with the next data byte. */
export const CMD_WRITE_OUTPUT = 0xd1;
/** Place the next data byte in the output buffer as keyboard data [PS/2]. */
export const CMD_WRITE_KBD_OBUF = 0xd2;
/** Place the next data byte in the output buffer as auxiliary data [PS/2]. */
export const CMD_WRITE_AUX_OBUF = 0xd3;
/** Send the next data byte to the auxiliary device [PS/2]. */
export const CMD_WRITE_AUX = 0xd4;
/** Disable A20 (output port bit 1 = 0); a common 8042 firmware extension. */
export const CMD_DISABLE_A20 = 0xdd;
/** Enable A20 (output port bit 1 = 1); a common 8042 firmware extension. */
export const CMD_ENABLE_A20 = 0xdf;
/** First pulse-output-port command: 0xF0-0xFF pulse the bits clear in the low nibble. */
export const CMD_PULSE_OUTPUT = 0xf0;
/** The conventional CPU reset command: pulse output port bit 0 only. */
export const CMD_RESET_CPU = 0xfe;

/** Self-test passed ([AT-TR] command 0xAA). */
export const SELF_TEST_OK = 0x55;
/** Interface test: no error ([AT-TR] command 0xAB). */
export const INTERFACE_OK = 0x00;
/**
 * The byte a controller hands back when a byte sent to a device was never
 * clocked in: [AT-TR] "Sending Data to the Keyboard" loads hex FE into the
 * output buffer with the transmit time-out bit (PS/2: the general time-out,
 * bit 6) set. With no device attached, every byte sent to one times out so.
 */
export const I8042_NO_DEVICE = 0xfe;

/** Controller RAM bytes addressable by commands 0x20-0x3F / 0x60-0x7F. */
export const I8042_RAM_SIZE = 32;

/**
 * Command byte at power-on. [AT-TR] leaves it to the controller firmware;
 * both interrupts enabled, as QEMU's pckbd starts, so firmware that expects
 * interrupt-driven replies works before it programs the byte.
 */
export const I8042_POWER_ON_COMMAND_BYTE = CB_KBD_INT | CB_AUX_INT;
/** Output port at power-on: reset line inactive, A20 enabled, device lines idle high. */
export const I8042_POWER_ON_OUTPUT_PORT = OUT_RESET | OUT_A20 | OUT_AUX_DATA | OUT_AUX_CLOCK |
  OUT_KBD_CLOCK | OUT_KBD_DATA;
/** Input port value read by command 0xC0: not inhibited, no jumper, color display. */
export const I8042_INPUT_PORT = IN_UNLOCKED | IN_NO_MFG_JUMPER;

/** Register state of the 8042 (snapshot format; version bumps with the fields). */
export const I8042State = defineState("i8042", 1, {
  /** Controller RAM; byte 0 is the command byte. */
  ram: ["u8", I8042_RAM_SIZE],
  /** The status register (STS_*); IBF is never set. */
  status: "u8",
  /** The output buffer latch (keeps its last byte after it is read). */
  outputBuffer: "u8",
  /** The output port as last written (OUT_KBD_OBF/OUT_AUX_OBF are derived). */
  outputPort: "u8",
  /** The command waiting for its data byte at port 0x60; 0 = none. */
  pendingCommand: "u8",
  /** Level last driven on IRQ1. */
  irq1Level: "bool",
  /** Level last driven on IRQ12. */
  irq12Level: "bool",
});

/** A bound {@linkcode I8042State}. */
export type I8042Registers = ReturnType<typeof I8042State.create>;

/** What the 8042 is given. */
export interface I8042Deps {
  /** Where CPU reset requests go. */
  platform: Platform;
  /** The keyboard interrupt (ISA IRQ1); absent = not wired. */
  irq1?: IrqLine;
  /** The auxiliary-device interrupt (ISA IRQ12); absent = not wired. */
  irq12?: IrqLine;
}

function hex(v: number): string {
  return `0x${v.toString(16).toUpperCase().padStart(2, "0")}`;
}

/** An 8042 keyboard controller with nothing plugged in. */
export class I8042 implements BusDevice {
  readonly #platform: Platform;
  readonly #irq1: IrqLine | undefined;
  readonly #irq12: IrqLine | undefined;
  readonly #s: I8042Registers;

  /**
   * Builds the controller over `state`. Without `state`, a fresh one is
   * created in its power-on state; with one (e.g. bound in a vCPU Worker),
   * it is used as it is.
   */
  constructor(deps: I8042Deps, state?: I8042Registers) {
    this.#platform = deps.platform;
    this.#irq1 = deps.irq1;
    this.#irq12 = deps.irq12;
    if (state) {
      this.#s = state;
    } else {
      this.#s = I8042State.create();
      this.reset();
    }
  }

  /** The bound register state. */
  get state(): I8042Registers {
    return this.#s;
  }

  /** Puts the controller in its power-on state (VM creation and VM reset). */
  reset(): void {
    const s = this.#s;
    const irq1 = s.irq1Level, irq12 = s.irq12Level;
    I8042State.clear(s);
    s.irq1Level = irq1;
    s.irq12Level = irq12;
    // [AT-TR] status bit 2: the controller sets the system flag to 0 at
    // power-on (the BIOS reads 0 as a cold boot); nothing in the buffers.
    s.status = STS_UNLOCKED;
    s.ram[0] = I8042_POWER_ON_COMMAND_BYTE;
    s.outputPort = I8042_POWER_ON_OUTPUT_PORT;
    this.#update();
  }

  /** The two 1-port views the VMM registers at 0x60 and 0x64. */
  ports(): { data: BusDevice; command: BusDevice } {
    return {
      data: {
        read: (_offset, size) => this.read(I8042_DATA, size),
        write: (_offset, size, value) => this.write(I8042_DATA, size, value),
      },
      command: {
        read: (_offset, size) => this.read(I8042_COMMAND, size),
        write: (_offset, size, value) => this.write(I8042_COMMAND, size, value),
      },
    };
  }

  /** A read at offset 0 (data) or 4 (status); wider accesses act as a byte access. */
  read(offset: number, _size: AccessSize): number {
    const s = this.#s;
    if (offset === I8042_DATA) {
      // [AT-TR] status bit 0: reading the output buffer clears OBF. The
      // latch keeps the byte, so a read with OBF clear returns it again.
      s.status &= ~(STS_OBF | STS_AUX_OBF);
      this.#update();
      return s.outputBuffer;
    }
    if (offset === I8042_COMMAND) return s.status; // can be read at any time, no side effects
    return 0xff; // not decoded
  }

  /** A write at offset 0 (data) or 4 (command); only the low byte is used. */
  write(offset: number, _size: AccessSize, value: number): void {
    const byte = value & 0xff;
    if (offset === I8042_DATA) this.#writeData(byte);
    else if (offset === I8042_COMMAND) this.#writeCommand(byte);
    else return;
    this.#update();
  }

  // -------------------------------------------------------------------------

  #writeCommand(cmd: number): void {
    const s = this.#s;
    // [AT-TR] status bit 3: writing port 0x64 sets the command/data bit.
    s.status |= STS_CMD;
    // A new command replaces one still waiting for its data byte.
    s.pendingCommand = 0;
    if (cmd >= CMD_READ_RAM && cmd <= CMD_READ_RAM_LAST) {
      this.#reply(s.ram[cmd - CMD_READ_RAM], false);
      return;
    }
    if (cmd >= CMD_WRITE_RAM && cmd <= CMD_WRITE_RAM_LAST) {
      s.pendingCommand = cmd;
      return;
    }
    if (cmd >= CMD_PULSE_OUTPUT) {
      // [AT-TR] commands F0-FF: pulse output port bits 0-3 low for about
      // 6 us; a bit is pulsed when the command's bit is 0. Bit 0 is the
      // system reset line, so F0, F2, ... FE reset the CPU; FF pulses
      // nothing. The other lines (A20, aux lines) are back at once.
      if (!(cmd & OUT_RESET)) {
        this.#platform.suspend({
          kind: "reset",
          message: `i8042 reset (${hex(cmd)} to port 0x64)`,
        });
      }
      return;
    }
    switch (cmd) {
      case CMD_DISABLE_AUX:
        s.ram[0] |= CB_AUX_DISABLE;
        return;
      case CMD_ENABLE_AUX:
        s.ram[0] &= ~CB_AUX_DISABLE;
        return;
      case CMD_TEST_AUX:
      case CMD_TEST_KBD:
        // The interface lines are not stuck (nothing is plugged in to hold
        // them), so the test passes: 00.
        this.#reply(INTERFACE_OK, false);
        return;
      case CMD_SELF_TEST:
        // [AT-TR] status bit 2: set to 1 after a successful self-test.
        s.status |= STS_SYS_FLAG;
        this.#reply(SELF_TEST_OK, false);
        return;
      case CMD_DISABLE_KBD:
        s.ram[0] |= CB_KBD_DISABLE;
        return;
      case CMD_ENABLE_KBD:
        s.ram[0] &= ~CB_KBD_DISABLE;
        return;
      case CMD_READ_INPUT:
        this.#reply(I8042_INPUT_PORT, false);
        return;
      case CMD_READ_OUTPUT:
        this.#reply(this.#outputPortValue(), false);
        return;
      case CMD_WRITE_OUTPUT:
      case CMD_WRITE_KBD_OBUF:
      case CMD_WRITE_AUX_OBUF:
      case CMD_WRITE_AUX:
        s.pendingCommand = cmd;
        return;
      case CMD_DISABLE_A20:
        // KVM has no A20 gate: the bit is kept for read-back only.
        s.outputPort &= ~OUT_A20;
        return;
      case CMD_ENABLE_A20:
        s.outputPort |= OUT_A20;
        return;
      default:
        // Undefined commands are ignored, as by the 8042 firmware: no reply,
        // no state change beyond the command/data bit.
        return;
    }
  }

  #writeData(byte: number): void {
    const s = this.#s;
    // [AT-TR] status bit 3: writing port 0x60 clears the command/data bit.
    s.status &= ~STS_CMD;
    const cmd = s.pendingCommand;
    s.pendingCommand = 0;
    if (cmd >= CMD_WRITE_RAM && cmd <= CMD_WRITE_RAM_LAST) {
      const index = cmd - CMD_WRITE_RAM;
      s.ram[index] = byte;
      // [AT-TR] status bit 2: the system flag can be changed by writing the
      // system flag bit of the command byte.
      if (index === 0) {
        s.status = byte & CB_SYS_FLAG ? s.status | STS_SYS_FLAG : s.status & ~STS_SYS_FLAG;
      }
      return;
    }
    switch (cmd) {
      case CMD_WRITE_OUTPUT:
        // Bits 4 and 5 are driven by the output buffer logic; they are kept
        // but read back as the buffer state (see #outputPortValue).
        s.outputPort = byte;
        // [AT-TR] output port bit 0: the system reset line is active low;
        // writing it 0 resets the CPU.
        if (!(byte & OUT_RESET)) {
          this.#platform.suspend({
            kind: "reset",
            message: `i8042 reset (output port write ${hex(byte)}, bit 0 clear)`,
          });
        }
        return;
      case CMD_WRITE_KBD_OBUF:
        this.#reply(byte, false); // [PS/2] as if the keyboard had sent it
        return;
      case CMD_WRITE_AUX_OBUF:
        this.#reply(byte, true); // [PS/2] as if the mouse had sent it
        return;
      case CMD_WRITE_AUX:
        this.#noDevice(true); // no mouse clocks the byte in
        return;
      default:
        // No command pending: the byte goes to the keyboard, which is absent.
        this.#noDevice(false);
        return;
    }
  }

  /**
   * A byte sent to a device that is not there: it is never clocked out, the
   * transmission times out and the controller reports it ([AT-TR] status bit
   * 5, "transmit time-out": the only error when the byte was not clocked
   * out; [PS/2] reports it in the general time-out bit 6) with
   * {@linkcode I8042_NO_DEVICE} in the output buffer. Drivers see an
   * immediate failure instead of waiting out their own time-out.
   */
  #noDevice(aux: boolean): void {
    this.#reply(I8042_NO_DEVICE, aux);
    this.#s.status |= STS_TIMEOUT;
  }

  /** Loads the output buffer (overwriting an unread byte, as the 8042 does). */
  #reply(byte: number, aux: boolean): void {
    const s = this.#s;
    s.outputBuffer = byte;
    // The error bits describe the byte now in the output buffer.
    s.status &= ~(STS_TIMEOUT | STS_PARITY | STS_AUX_OBF);
    s.status |= STS_OBF | (aux ? STS_AUX_OBF : 0);
  }

  /** The output port as read by 0xD0: bits 4/5 show the buffer state (the IRQ pins). */
  #outputPortValue(): number {
    const s = this.#s;
    let v = s.outputPort & ~(OUT_KBD_OBF | OUT_AUX_OBF);
    if (s.status & STS_OBF) v |= s.status & STS_AUX_OBF ? OUT_AUX_OBF : OUT_KBD_OBF;
    return v;
  }

  /**
   * Recomputes IRQ1 and IRQ12 from the registers. [AT-TR] output port bit 4
   * (the IRQ1 pin) follows "output buffer full" when the command byte enables
   * the keyboard interrupt; [PS/2] bit 5 (IRQ12) does the same for auxiliary
   * data. Both are levels: high until the guest reads port 0x60.
   */
  #update(): void {
    const s = this.#s;
    const full = (s.status & STS_OBF) !== 0;
    const aux = (s.status & STS_AUX_OBF) !== 0;
    const cb = s.ram[0];
    const irq1 = full && !aux && (cb & CB_KBD_INT) !== 0;
    const irq12 = full && aux && (cb & CB_AUX_INT) !== 0;
    s.irq1Level = driveLine(this.#irq1, s.irq1Level, irq1);
    s.irq12Level = driveLine(this.#irq12, s.irq12Level, irq12);
  }
}

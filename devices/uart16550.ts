/**
 * A 16550A UART (TI/National PC16550D), as wired as COM1-COM4 on a PC.
 *
 * The model sees the UART's 8-port window (offsets 0-7). The transmitter is
 * infinitely fast: a byte written to THR leaves at once through the injected
 * {@linkcode Output} (or, in loopback, lands in the receive FIFO), so THRE and
 * TEMT are set again at once, unless the backend is full: then the byte
 * waits in the transmit FIFO (16 bytes, 1 in 16450 mode) with THRE clear,
 * as on a slow line, until the host calls {@linkcode Uart16550.outputReady}. The receiver has a 16-byte FIFO (1 byte in 16450
 * mode) that the console backend fills through {@linkcode Uart16550.receive}.
 *
 * All register state lives in {@linkcode Uart16550State}, so the same UART
 * can be bound in several threads over one SharedArrayBuffer; the VM's device
 * lock must serialize guest accesses and host-side calls (`receive`, `reset`).
 *
 * Section numbers below refer to the PC16550D datasheet ("PC16550D Universal
 * Asynchronous Receiver/Transmitter with FIFOs", National Semiconductor/TI).
 *
 * @module
 */
import { type AccessSize, type BusDevice, driveLine, type IrqLine, type Output } from "./device.ts";
import { defineState } from "./state.ts";

// ---------------------------------------------------------------------------
// Register offsets (§8, register summary table). A0-A2 select; DLAB = LCR bit 7.

/** Receiver Buffer Register (read, DLAB=0). */
export const UART_RBR = 0;
/** Transmitter Holding Register (write, DLAB=0). */
export const UART_THR = 0;
/** Divisor Latch, least significant byte (DLAB=1). */
export const UART_DLL = 0;
/** Interrupt Enable Register (DLAB=0). */
export const UART_IER = 1;
/** Divisor Latch, most significant byte (DLAB=1). */
export const UART_DLM = 1;
/** Interrupt Identification Register (read). */
export const UART_IIR = 2;
/** FIFO Control Register (write). */
export const UART_FCR = 2;
/** Line Control Register. */
export const UART_LCR = 3;
/** Modem Control Register. */
export const UART_MCR = 4;
/** Line Status Register. */
export const UART_LSR = 5;
/** Modem Status Register. */
export const UART_MSR = 6;
/** Scratch Register. */
export const UART_SCR = 7;
/** Ports the UART decodes. */
export const UART_WINDOW = 8;

// Interrupt Enable Register (§8.7).
/** IER: enable Received Data Available (and character timeout) interrupt. */
export const IER_ERBFI = 0x01;
/** IER: enable Transmitter Holding Register Empty interrupt. */
export const IER_ETBEI = 0x02;
/** IER: enable Receiver Line Status interrupt. */
export const IER_ELSI = 0x04;
/** IER: enable Modem Status interrupt. */
export const IER_EDSSI = 0x08;
/** IER: the implemented bits; bits 4-7 are always 0 (§8.7). */
export const IER_MASK = 0x0f;

// Interrupt Identification Register (§8.6).
/** IIR bit 0: 1 = no interrupt pending (the bit is active low). */
export const IIR_NO_INT = 0x01;
/** IIR bits 3:1 mask (interrupt ID). */
export const IIR_ID_MASK = 0x0e;
/** IIR ID: receiver line status (highest priority). */
export const IIR_RLS = 0x06;
/** IIR ID: received data available. */
export const IIR_RDA = 0x04;
/** IIR ID: character timeout indication (FIFO mode only). */
export const IIR_CTI = 0x0c;
/** IIR ID: transmitter holding register empty. */
export const IIR_THRE = 0x02;
/** IIR ID: modem status (lowest priority). */
export const IIR_MS = 0x00;
/** IIR bits 7:6: both set when FCR bit 0 is set (FIFOs enabled). */
export const IIR_FIFOS_ENABLED = 0xc0;

// FIFO Control Register (§8.5).
/** FCR: enable both FIFOs; must be 1 for the other bits to be programmed. */
export const FCR_ENABLE = 0x01;
/** FCR: clear the receive FIFO (self-clearing). */
export const FCR_RX_RESET = 0x02;
/** FCR: clear the transmit FIFO (self-clearing). */
export const FCR_TX_RESET = 0x04;
/** FCR: DMA mode select (RXRDY/TXRDY pin mode; no effect here). */
export const FCR_DMA_MODE = 0x08;
/** FCR bits 7:6: receive FIFO trigger level. */
export const FCR_TRIGGER_MASK = 0xc0;
/** FCR trigger level: 1 byte. */
export const FCR_TRIGGER_1 = 0x00;
/** FCR trigger level: 4 bytes. */
export const FCR_TRIGGER_4 = 0x40;
/** FCR trigger level: 8 bytes. */
export const FCR_TRIGGER_8 = 0x80;
/** FCR trigger level: 14 bytes. */
export const FCR_TRIGGER_14 = 0xc0;

// Line Control Register (§8.1).
/** LCR bits 1:0: word length select (5-8 bits). */
export const LCR_WLS_MASK = 0x03;
/** LCR: number of stop bits. */
export const LCR_STB = 0x04;
/** LCR: parity enable. */
export const LCR_PEN = 0x08;
/** LCR: even parity select. */
export const LCR_EPS = 0x10;
/** LCR: stick parity. */
export const LCR_STICK_PARITY = 0x20;
/** LCR: set break. */
export const LCR_SET_BREAK = 0x40;
/** LCR: divisor latch access bit. */
export const LCR_DLAB = 0x80;

// Modem Control Register (§8.8).
/** MCR: data terminal ready. */
export const MCR_DTR = 0x01;
/** MCR: request to send. */
export const MCR_RTS = 0x02;
/** MCR: OUT1 output. */
export const MCR_OUT1 = 0x04;
/** MCR: OUT2 output; on PCs it enables the UART's interrupt onto the ISA bus. */
export const MCR_OUT2 = 0x08;
/** MCR: local loopback. */
export const MCR_LOOP = 0x10;
/** MCR: the implemented bits; bits 5-7 are always 0 (§8.8). */
export const MCR_MASK = 0x1f;

// Line Status Register (§8.4).
/** LSR: data ready. */
export const LSR_DR = 0x01;
/** LSR: overrun error. */
export const LSR_OE = 0x02;
/** LSR: parity error. */
export const LSR_PE = 0x04;
/** LSR: framing error. */
export const LSR_FE = 0x08;
/** LSR: break interrupt. */
export const LSR_BI = 0x10;
/** LSR: transmitter holding register (FIFO) empty. */
export const LSR_THRE = 0x20;
/** LSR: transmitter empty (THR and shift register). */
export const LSR_TEMT = 0x40;
/** LSR: error in receiver FIFO (FIFO mode only). */
export const LSR_RXFIFO_ERROR = 0x80;
/** LSR: the error bits that raise the receiver line status interrupt. */
export const LSR_ERRORS = LSR_OE | LSR_PE | LSR_FE | LSR_BI;

// Modem Status Register (§8.9).
/** MSR: delta clear to send. */
export const MSR_DCTS = 0x01;
/** MSR: delta data set ready. */
export const MSR_DDSR = 0x02;
/** MSR: trailing edge ring indicator. */
export const MSR_TERI = 0x04;
/** MSR: delta data carrier detect. */
export const MSR_DDCD = 0x08;
/** MSR: the four delta bits (cleared by reading MSR). */
export const MSR_DELTA_MASK = 0x0f;
/** MSR: clear to send. */
export const MSR_CTS = 0x10;
/** MSR: data set ready. */
export const MSR_DSR = 0x20;
/** MSR: ring indicator. */
export const MSR_RI = 0x40;
/** MSR: data carrier detect. */
export const MSR_DCD = 0x80;

/** Depth of the receive (and transmit) FIFO. */
export const UART_FIFO_SIZE = 16;

/**
 * Divisor loaded at power-on: 1, i.e. 115200 baud from the PC's 1.8432 MHz
 * clock. The datasheet leaves the divisor latches undefined at power-on (the
 * reset-configuration table does not list them); a non-zero value matters:
 * Linux's earlycon probes the baud rate as clock / 16 / divisor.
 */
export const UART_POWER_ON_DIVISOR = 1;

/** Register state of a 16550A (snapshot format; version bumps with the fields). */
export const Uart16550State = defineState("uart16550", 2, {
  /** Transmit FIFO ring: bytes the backend has not taken yet. */
  txFifo: ["u8", UART_FIFO_SIZE],
  /** Index of the oldest byte in `txFifo`. */
  txHead: "u8",
  /** Bytes in `txFifo`. */
  txCount: "u8",
  /** Receive FIFO ring. */
  rxFifo: ["u8", UART_FIFO_SIZE],
  /** Index of the oldest byte in `rxFifo`. */
  rxHead: "u8",
  /** Bytes in `rxFifo`. */
  rxCount: "u8",
  ier: "u8",
  lcr: "u8",
  mcr: "u8",
  /** The sticky LSR bits (OE/PE/FE/BI); DR, THRE and TEMT are derived. */
  lsrErrors: "u8",
  /** The whole MSR, delta bits included. */
  msr: "u8",
  scr: "u8",
  dll: "u8",
  dlm: "u8",
  /** FCR bits that stick: FCR_ENABLE, FCR_DMA_MODE, the trigger level. */
  fcr: "u8",
  /** The THR-empty interrupt condition (IIR would report it if IER_ETBEI). */
  threPending: "bool",
  /** The level last driven on the IRQ line. */
  irqLevel: "bool",
});

/** A bound {@linkcode Uart16550State}. */
export type Uart16550Registers = ReturnType<typeof Uart16550State.create>;

/** What a UART is given. */
export interface Uart16550Deps {
  /** The interrupt line (COM1: IRQ4, COM2: IRQ3). */
  irq: IrqLine;
  /** Where transmitted bytes go (the console backend). */
  out: Output;
}

const TRIGGER_LEVEL: Record<number, number> = {
  [FCR_TRIGGER_1]: 1,
  [FCR_TRIGGER_4]: 4,
  [FCR_TRIGGER_8]: 8,
  [FCR_TRIGGER_14]: 14,
};

/** The MSR input bits (no deltas) that the given MCR produces. */
function modemInputs(mcr: number): number {
  if (mcr & MCR_LOOP) {
    // §8.8: in loopback the four modem control outputs are internally
    // connected to the four modem control inputs: RTS->CTS, DTR->DSR,
    // OUT1->RI, OUT2->DCD.
    return (mcr & MCR_RTS ? MSR_CTS : 0) | (mcr & MCR_DTR ? MSR_DSR : 0) |
      (mcr & MCR_OUT1 ? MSR_RI : 0) | (mcr & MCR_OUT2 ? MSR_DCD : 0);
  }
  // Not a datasheet rule: the virtual line behaves like a connected terminal
  // (CTS, DSR and DCD asserted, no ring), so a tty open never blocks on
  // carrier and CTS flow control never stalls the guest.
  return MSR_CTS | MSR_DSR | MSR_DCD;
}

/**
 * A 16550A UART.
 *
 * Interrupt wiring (PC-specific, IBM PC/AT serial adapter): the UART's INTR
 * pin reaches the PIC through a tri-state buffer enabled by the OUT2 output,
 * so the IRQ line is driven high only while an interrupt is pending AND
 * MCR.OUT2 = 1. In loopback the datasheet forces the modem control output
 * pins inactive (§8.8), which disables that buffer too: no IRQ in loopback,
 * while IIR still reports the pending source (polled loopback tests work).
 */
export class Uart16550 implements BusDevice {
  readonly #irq: IrqLine;
  readonly #out: Output;
  readonly #s: Uart16550Registers;

  /**
   * Builds a UART over `state`. Without `state`, a fresh one is created in
   * its power-on state; with one (e.g. bound in a vCPU Worker), it is used
   * as it is.
   */
  constructor(deps: Uart16550Deps, state?: Uart16550Registers) {
    this.#irq = deps.irq;
    this.#out = deps.out;
    if (state) {
      this.#s = state;
    } else {
      this.#s = Uart16550State.create();
      this.reset();
    }
  }

  /** The bound register state. */
  get state(): Uart16550Registers {
    return this.#s;
  }

  /** Puts the UART in its power-on state (VM creation and VM reset). */
  reset(): void {
    const s = this.#s;
    const level = s.irqLevel;
    // Master reset values (reset-configuration table): IER, IIR, FCR, LCR,
    // MCR cleared, LSR = THRE|TEMT, MSR deltas cleared, MSR inputs follow
    // the (virtual) modem lines. The FIFOs are emptied.
    Uart16550State.clear(s);
    s.irqLevel = level;
    s.msr = modemInputs(0);
    // The divisor latches and SCR are not touched by master reset; their
    // power-on value is undefined, so pick a usable divisor.
    s.dll = UART_POWER_ON_DIVISOR & 0xff;
    s.dlm = UART_POWER_ON_DIVISOR >> 8;
    this.#update();
  }

  /** Free space in the receive FIFO (0 in loopback, where the line input is disconnected). */
  rxSpace(): number {
    const s = this.#s;
    if (s.mcr & MCR_LOOP) return 0; // §8.8: in loopback SIN is disconnected
    return this.#rxCapacity() - s.rxCount;
  }

  /**
   * Pushes console input into the receive FIFO. Takes only what fits (never
   * causes an overrun) and returns how many bytes it took; the backend
   * retries the rest later (after the guest drained the FIFO).
   */
  receive(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.rxSpace());
    for (let i = 0; i < n; i++) this.#rxPush(bytes[i]);
    if (n > 0) this.#update();
    return n;
  }

  /** A guest read of `size` bytes at `offset`; wider accesses act as a byte access. */
  read(offset: number, _size: AccessSize): number {
    const value = this.#readReg(offset);
    this.#update();
    return value;
  }

  /** A guest write; only the low byte of `value` is used. */
  write(offset: number, _size: AccessSize, value: number): void {
    this.#writeReg(offset, value & 0xff);
    this.#update();
  }

  /** The IIR value the guest would read now (without its side effects). */
  interruptId(): number {
    const s = this.#s;
    const fifoBits = s.fcr & FCR_ENABLE ? IIR_FIFOS_ENABLED : 0; // §8.6: bits 7:6 mirror FCR0
    return this.#pendingId() | fifoBits;
  }

  // -------------------------------------------------------------------------

  #readReg(offset: number): number {
    const s = this.#s;
    const dlab = (s.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case UART_RBR:
        return dlab ? s.dll : this.#rxPop();
      case UART_IER:
        return dlab ? s.dlm : s.ier;
      case UART_IIR: {
        const iir = this.interruptId();
        // Interrupt control functions table: the THRE interrupt is reset by
        // reading IIR, but only when THRE is the source IIR reports.
        if ((iir & (IIR_ID_MASK | IIR_NO_INT)) === IIR_THRE) s.threPending = false;
        return iir;
      }
      case UART_LCR:
        return s.lcr;
      case UART_MCR:
        return s.mcr;
      case UART_LSR: {
        // A driver polling LSR retries a held transmission (the backend may have room now).
        this.#drainTx();
        // §8.4: THRE is set when THR (the transmit FIFO) is empty, TEMT when the
        // shift register is empty too: both when the backend took every byte.
        // DR is set while the receiver holds data.
        const empty = s.txCount === 0 ? LSR_THRE | LSR_TEMT : 0;
        const lsr = s.lsrErrors | empty | (s.rxCount > 0 ? LSR_DR : 0);
        // §8.4: OE, PE, FE and BI are reset whenever the CPU reads LSR. LSR
        // bit 7 is never set: PE/FE/BI are never received here.
        s.lsrErrors = 0;
        return lsr;
      }
      case UART_MSR: {
        const msr = s.msr;
        // §8.9: the delta bits are reset when the CPU reads MSR.
        s.msr &= ~MSR_DELTA_MASK;
        return msr;
      }
      case UART_SCR:
        return s.scr;
      default:
        return 0xff; // outside the 8-port window: nothing drives the bus
    }
  }

  #writeReg(offset: number, value: number): void {
    const s = this.#s;
    const dlab = (s.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case UART_THR:
        if (dlab) s.dll = value;
        else this.#transmit(value);
        return;
      case UART_IER:
        if (dlab) {
          s.dlm = value;
          return;
        }
        // Enabling ETBEI while THR is empty raises the THRE interrupt: the
        // condition is edge-triggered on the enable. Drivers (Linux 8250's
        // THRE test, bhyve's uart_emul) rely on it.
        if (!(s.ier & IER_ETBEI) && value & IER_ETBEI && s.txCount === 0) s.threPending = true;
        s.ier = value & IER_MASK; // §8.7: bits 4-7 are always 0
        return;
      case UART_FCR:
        this.#writeFcr(value);
        return;
      case UART_LCR:
        s.lcr = value;
        return;
      case UART_MCR:
        this.#writeMcr(value);
        return;
      case UART_LSR:
        // §8.4: LSR is intended for read operations only (writing it is a
        // factory test); ignored.
        return;
      case UART_MSR:
        // §8.9: MSR reflects the modem inputs; writes are ignored.
        return;
      case UART_SCR:
        s.scr = value; // §8.12: no effect on the UART, holds a byte for the CPU
        return;
    }
  }

  #writeFcr(value: number): void {
    const s = this.#s;
    // §8.5 FCR0: changing between FIFO and 16450 mode clears both FIFOs.
    if ((s.fcr ^ value) & FCR_ENABLE) {
      this.#rxClear();
      this.#txClear();
    }
    if (!(value & FCR_ENABLE)) {
      // §8.5 FCR0: must be 1 when the other bits are written or they are not
      // programmed; with it 0 the UART runs in 16450 mode (1-byte receiver).
      s.fcr = 0;
      return;
    }
    // §8.5 FCR1: clears the receive FIFO and its counter (self-clearing bit).
    if (value & FCR_RX_RESET) this.#rxClear();
    // §8.5 FCR2: clears the transmit FIFO and its counter (self-clearing bit).
    if (value & FCR_TX_RESET) this.#txClear();
    s.fcr = value & (FCR_ENABLE | FCR_DMA_MODE | FCR_TRIGGER_MASK);
  }

  #writeMcr(value: number): void {
    const s = this.#s;
    const mcr = value & MCR_MASK; // §8.8: bits 5-7 are always 0
    s.mcr = mcr;
    const now = modemInputs(mcr);
    const before = s.msr;
    // §8.9: a delta bit records a change of its input since MSR was last
    // read; in loopback the inputs are the MCR outputs (§8.8), so MCR writes
    // produce modem status changes (and interrupts).
    let delta = 0;
    if ((now ^ before) & MSR_CTS) delta |= MSR_DCTS;
    if ((now ^ before) & MSR_DSR) delta |= MSR_DDSR;
    if ((now ^ before) & MSR_DCD) delta |= MSR_DDCD;
    // §8.9 TERI: set only on the trailing edge (RI going from on to off).
    if (before & MSR_RI && !(now & MSR_RI)) delta |= MSR_TERI;
    s.msr = (before & MSR_DELTA_MASK) | delta | now;
  }

  #transmit(byte: number): void {
    const s = this.#s;
    if (s.mcr & MCR_LOOP) {
      // §8.8: in loopback the transmitter shift register output is looped
      // back into the receiver shift register input; SOUT stays marking.
      this.#rxPushFromLine(byte);
      // Interrupt control functions table: writing THR resets the THRE
      // interrupt; the byte leaves at once, so THR is empty again (a new
      // THR-empty event), which lets an interrupt-driven driver keep sending.
      s.threPending = true;
      return;
    }
    // Writing THR resets the THRE interrupt; the byte joins the transmit FIFO.
    s.threPending = false;
    const capacity = s.fcr & FCR_ENABLE ? UART_FIFO_SIZE : 1;
    // A byte written while the FIFO is full is lost, as on the chip (the
    // guest ignored THRE); none is lost while a driver honours THRE.
    if (s.txCount < capacity) {
      s.txFifo[(s.txHead + s.txCount) % UART_FIFO_SIZE] = byte;
      s.txCount++;
    }
    this.#drainTx();
  }

  /**
   * Hands queued bytes to the backend, as many as it takes. When the FIFO
   * becomes empty THR is empty again: a THR-empty event.
   */
  #drainTx(): void {
    const s = this.#s;
    if (s.txCount === 0) return;
    while (s.txCount > 0) {
      // All 8 bits go out whatever LCR's word length says: the backend is
      // byte-oriented, and guests that print before programming LCR
      // (power-on LCR = 0 means 5-bit words) still produce readable output.
      const run = Math.min(s.txCount, UART_FIFO_SIZE - s.txHead);
      const n = this.#out.write(s.txFifo.subarray(s.txHead, s.txHead + run));
      s.txHead = (s.txHead + n) % UART_FIFO_SIZE;
      s.txCount -= n;
      if (n < run) break;
    }
    if (s.txCount === 0) {
      s.txHead = 0;
      s.threPending = true;
    }
  }

  #txClear(): void {
    const s = this.#s;
    if (s.txCount > 0) s.threPending = true;
    s.txHead = 0;
    s.txCount = 0;
  }

  /**
   * The host's console backend has room again: send what the transmit FIFO
   * holds (and raise the THR-empty interrupt once it is empty).
   */
  outputReady(): void {
    this.#drainTx();
    this.#update();
  }

  /** Bytes the transmit FIFO holds: those the backend had no room for. */
  outputHeld(): number {
    return this.#s.txCount;
  }

  #rxCapacity(): number {
    // §8.5: in 16450 mode (FIFOs disabled) the receiver holds a single byte.
    return this.#s.fcr & FCR_ENABLE ? UART_FIFO_SIZE : 1;
  }

  #rxClear(): void {
    const s = this.#s;
    s.rxHead = 0;
    s.rxCount = 0;
  }

  #rxPush(byte: number): void {
    const s = this.#s;
    s.rxFifo[(s.rxHead + s.rxCount) % UART_FIFO_SIZE] = byte;
    s.rxCount++;
  }

  /** A character completed by the receiver (loopback): may overrun. */
  #rxPushFromLine(byte: number): void {
    const s = this.#s;
    if (s.rxCount < this.#rxCapacity()) {
      this.#rxPush(byte);
      return;
    }
    s.lsrErrors |= LSR_OE;
    if (!(s.fcr & FCR_ENABLE)) {
      // §8.4 LSR1 (16450 mode): the next character is transferred into RBR
      // anyway, destroying the previous one.
      s.rxFifo[s.rxHead] = byte;
    }
    // §8.4 LSR1 (FIFO mode): the character in the shift register is
    // overwritten and not transferred to the full FIFO: it is dropped.
  }

  #rxPop(): number {
    const s = this.#s;
    // Reading an empty RBR returns 0 (the datasheet leaves it undefined).
    if (s.rxCount === 0) return 0;
    const byte = s.rxFifo[s.rxHead];
    s.rxHead = (s.rxHead + 1) % UART_FIFO_SIZE;
    s.rxCount--;
    return byte;
  }

  /** IIR bits 3:0 for the highest-priority pending source (§8.6 priorities). */
  #pendingId(): number {
    const s = this.#s;
    const ier = s.ier;
    // 1st: receiver line status (OE/PE/FE/BI), reset by reading LSR.
    if (ier & IER_ELSI && s.lsrErrors & LSR_ERRORS) return IIR_RLS;
    if (ier & IER_ERBFI && s.rxCount > 0) {
      // 2nd: received data available. §8.10: in FIFO mode it is raised when
      // the FIFO reaches the trigger level and reset when it drops below;
      // in 16450 mode when RBR holds a character.
      if (!(s.fcr & FCR_ENABLE)) return IIR_RDA;
      if (s.rxCount >= TRIGGER_LEVEL[s.fcr & FCR_TRIGGER_MASK]) return IIR_RDA;
      // 2nd: character timeout (FIFO mode only, §8.10): data below the
      // trigger level with no FIFO activity for 4 character times. There is
      // no character timing here, so it is reported at once; it is reset by
      // reading RBR (and comes back while data remains).
      return IIR_CTI;
    }
    // 3rd: transmitter holding register empty.
    if (ier & IER_ETBEI && s.threPending) return IIR_THRE;
    // 4th: modem status (CTS/DSR/RI/DCD changes), reset by reading MSR.
    if (ier & IER_EDSSI && s.msr & MSR_DELTA_MASK) return IIR_MS;
    return IIR_NO_INT;
  }

  /** Recomputes the IRQ output from the registers (bhyve's uart_toggle_intr). */
  #update(): void {
    const s = this.#s;
    // PC wiring: OUT2 gates INTR onto the bus; in loopback the OUT2 pin is
    // forced inactive (§8.8), so the gate is closed (see the class doc).
    const gate = (s.mcr & (MCR_OUT2 | MCR_LOOP)) === MCR_OUT2;
    s.irqLevel = driveLine(this.#irq, s.irqLevel, gate && this.#pendingId() !== IIR_NO_INT);
  }
}

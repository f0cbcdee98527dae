/**
 * ACPI fixed hardware: the PM1a event and control blocks and the power
 * management timer (ACPI 6.5, 4.8.3 "Power Management Timer",
 * 4.8.4 "Fixed Hardware ... PM1 Event/Control Registers").
 *
 * - PM1 event block (4 bytes): PM1_STS (write 1 to clear) and PM1_EN.
 * - PM1 control block (2 bytes): SCI_EN, SLP_TYPx, SLP_EN. Writing SLP_EN
 *   with SLP_TYPx = 5 (the value dhyve's \_S5 package advertises) powers the
 *   VM off; other sleep types are not supported and are ignored, as bhyve
 *   does.
 * - PM timer (4 bytes): a free-running 3.579545 MHz counter, 32 bits wide
 *   (the FADT sets TMR_VAL_EXT). TMR_STS is set whenever bit 31 changes.
 *
 * - GPE0 block (4 bytes): GPE0_STS (write 1 to clear) and GPE0_EN, 16
 *   general-purpose events (4.8.4.1). The power button is GPE 0: dhyve's
 *   button is a control-method one (\_SB.PWRB, FADT PWR_BUTTON = 1), which
 *   the DSDT's \_GPE._E00 notifies.
 *
 * The SCI is a level-triggered line, asserted while SCI_EN is set and some
 * PM1_STS or GPE0_STS bit is set together with its enable bit. The firmware has no SMI
 * command port (FADT SMI_CMD = 0), so the machine is always in ACPI mode and
 * SCI_EN is set at reset (ACPI 6.5, 4.8.3.2.1).
 *
 * @module
 */
import {
  type AccessSize,
  type BusDevice,
  type Clock,
  driveLine,
  type IrqLine,
  type Platform,
  type Timer,
  type TimerOwner,
} from "./device.ts";
import { defineState, type StateOf } from "./state.ts";

/** PM1_STS bits (ACPI 6.5, Table 4.16). */
export const PM1_STS = Object.freeze({
  TMR: 1 << 0,
  BM: 1 << 4,
  GBL: 1 << 5,
  PWRBTN: 1 << 8,
  SLPBTN: 1 << 9,
  RTC: 1 << 10,
  WAK: 1 << 15,
});

/** PM1_EN bits (ACPI 6.5, Table 4.17). */
export const PM1_EN = Object.freeze({
  TMR: 1 << 0,
  GBL: 1 << 5,
  PWRBTN: 1 << 8,
  SLPBTN: 1 << 9,
  RTC: 1 << 10,
});

/** PM1_CNT bits (ACPI 6.5, Table 4.18). */
export const PM1_CNT = Object.freeze({
  SCI_EN: 1 << 0,
  BM_RLD: 1 << 1,
  GBL_RLS: 1 << 2,
  SLP_TYP_SHIFT: 10,
  SLP_TYP_MASK: 7 << 10,
  SLP_EN: 1 << 13,
});

// Block layout. The lengths are the FADT's (ACPI 6.5, 5.2.9, Table 5.9:
// PM1_EVT_LEN, PM1_CNT_LEN, PM_TMR_LEN, GPE0_BLK_LEN); the offsets from the
// device's base port are dhyve's packing of the four blocks (lib/platform.ts).

/** Bytes of the PM1 event block: PM1_STS and PM1_EN, 2 bytes each (FADT PM1_EVT_LEN). */
export const PM1_EVT_LEN = 4;
/** Bytes of the PM1 control block: PM1_CNT (FADT PM1_CNT_LEN). */
export const PM1_CNT_LEN = 2;
/** Bytes of the PM timer: TMR_VAL (FADT PM_TMR_LEN). */
export const PM_TMR_LEN = 4;
/** Bytes of the GPE0 block: GPE0_STS and GPE0_EN, 2 bytes each (FADT GPE0_BLK_LEN). */
export const GPE0_BLK_LEN = 4;
/** Offset of the PM1 event block from the device's base port. */
export const PM1_EVT_OFFSET = 0;
/** Offset of the PM1 control block (dword aligned after the event block). */
export const PM1_CNT_OFFSET = 4;
/** Offset of the PM timer. */
export const PM_TMR_OFFSET = 8;
/** Offset of the GPE0 block. */
export const GPE0_OFFSET = 12;

/** The general-purpose event of the power button (GPE0_STS/GPE0_EN bit). */
export const POWER_BUTTON_GPE = 0;

/** The SLP_TYPx value of S5 in dhyve's \_S5 package (bhyve uses 5 as well). */
export const SLP_TYP_S5 = 5;
/** The PM timer frequency in Hz (ACPI 6.5, 4.8.3.3). */
export const PM_TIMER_HZ = 3579545;

const STS_WRITABLE = PM1_STS.TMR | PM1_STS.BM | PM1_STS.GBL | PM1_STS.PWRBTN | PM1_STS.SLPBTN |
  PM1_STS.RTC | PM1_STS.WAK;
const EN_WRITABLE = PM1_EN.TMR | PM1_EN.GBL | PM1_EN.PWRBTN | PM1_EN.SLPBTN | PM1_EN.RTC;
// SLP_EN is write-only and reads as zero; GBL_RLS is write-only as well.
const CNT_STORED = PM1_CNT.SCI_EN | PM1_CNT.BM_RLD | PM1_CNT.SLP_TYP_MASK;

/**
 * A read of a status/enable register pair (the PM1 event block and the GPE0
 * block share the layout: STS at 0, EN at 2; ACPI 6.5, 4.8.4.1 and 4.8.4.2:
 * byte, word or dword accesses). `sts` and `en` are the 16-bit registers.
 */
function readPair(sts: number, en: number, offset: number, size: AccessSize): number {
  const regs = sts | (en << 16);
  return size >= 4 && offset === 0
    ? regs >>> 0
    : (regs >>> (offset * 8)) & (size === 1 ? 0xff : 0xffff);
}

/**
 * A write to a status/enable register pair, split into its byte lanes so
 * that 1-, 2- and 4-byte writes agree. The status register is write 1 to
 * clear (ACPI 6.5, 4.8.3.1 and 4.8.4.1) within `stsMask`; the enable
 * register keeps the bits in `enMask`. `pair` and the result hold the
 * status in bits 15:0 and the enable register in bits 31:16.
 */
function writePair(
  pair: number,
  offset: number,
  size: AccessSize,
  value: number,
  stsMask: number,
  enMask: number,
): number {
  let sts = pair & 0xffff;
  let en = pair >>> 16;
  for (let i = 0; i < size && offset + i < 4; i++) {
    const byte = (value >>> (i * 8)) & 0xff;
    const at = offset + i;
    if (at < 2) {
      sts &= ~((byte << (at * 8)) & stsMask);
    } else {
      const shift = (at - 2) * 8;
      en = (en & ~(0xff << shift)) | ((byte << shift) & enMask);
    }
  }
  return ((sts & 0xffff) | ((en & 0xffff) << 16)) >>> 0;
}

/** State of the ACPI PM block. */
export const AcpiPmState = defineState("acpi-pm", 1, {
  sts: "u16",
  en: "u16",
  cnt: "u16",
  gpeSts: "u16",
  gpeEn: "u16",
  /** Clock value (ns) at which the PM timer read 0. */
  timerOrigin: "f64",
  /** The timer's bit 31 when TMR_STS was last evaluated. */
  timerBit31: "u8",
  sciLevel: "bool",
});

/** The ACPI PM1 event/control blocks and PM timer. */
export class AcpiPm implements TimerOwner {
  readonly #clock: Clock;
  readonly #sci: IrqLine;
  readonly #platform: Platform;
  readonly #timer: Timer | undefined;
  readonly #s: StateOf<typeof AcpiPmState.fields>;

  /**
   * Builds the block; `sci` is the SCI line (GSI 9). `timers[0]`, when
   * given, raises the timer-overflow event (TMR_STS with TMR_EN) on time;
   * without it the event is noticed at the next PM1 register access.
   */
  constructor(
    deps: { clock: Clock; sci: IrqLine; platform: Platform; timers?: Timer[] },
    state: StateOf<typeof AcpiPmState.fields> = AcpiPmState.create(),
  ) {
    this.#clock = deps.clock;
    this.#sci = deps.sci;
    this.#platform = deps.platform;
    this.#timer = deps.timers?.[0];
    this.#s = state;
  }

  /** PM timer ticks since `timerOrigin`, now (each entry point reads the clock once). */
  #ticks(): number {
    return Math.floor(((this.#clock.now() - this.#s.timerOrigin) * PM_TIMER_HZ) / 1e9);
  }

  /** The current PM timer value (32 bits). */
  timerValue(): number {
    return this.#ticks() % 2 ** 32;
  }

  #updateTimerStatus(ticks: number): void {
    // TMR_STS: set when the timer's most significant bit changes (4.8.3.3).
    const bit31 = ticks % 2 ** 32 >= 2 ** 31 ? 1 : 0;
    if (bit31 !== this.#s.timerBit31) {
      this.#s.timerBit31 = bit31;
      this.#s.sts |= PM1_STS.TMR;
    }
  }

  /** Arms the overflow timer for the next change of bit 31 while TMR_EN is set. */
  #armTimer(ticks: number): void {
    if (!this.#timer) return;
    if (!(this.#s.en & PM1_EN.TMR)) {
      this.#timer.cancel();
      return;
    }
    const next = (Math.floor(ticks / 2 ** 31) + 1) * 2 ** 31;
    this.#timer.arm(this.#s.timerOrigin + Math.ceil((next * 1e9) / PM_TIMER_HZ));
  }

  /** The overflow timer expired: latch TMR_STS, update the SCI, re-arm. */
  onTimer(_id: number): void {
    const ticks = this.#ticks();
    this.#updateTimerStatus(ticks);
    this.#updateSci();
    this.#armTimer(ticks);
  }

  #updateSci(): void {
    const s = this.#s;
    const level = (s.cnt & PM1_CNT.SCI_EN) !== 0 &&
      ((s.sts & s.en) !== 0 || (s.gpeSts & s.gpeEn) !== 0);
    s.sciLevel = driveLine(this.#sci, s.sciLevel, level);
  }

  /** Presses the power button: its GPE status bit, and an SCI if the GPE is enabled (the guest shuts down). */
  pressPowerButton(): void {
    this.#s.gpeSts |= 1 << POWER_BUTTON_GPE;
    this.#updateSci();
  }

  /** Whether the guest enabled the power button's GPE (an ACPI OS is listening). */
  get powerButtonEnabled(): boolean {
    return (this.#s.gpeEn & (1 << POWER_BUTTON_GPE)) !== 0 && (this.#s.cnt & PM1_CNT.SCI_EN) !== 0;
  }

  /** Power-on state: ACPI mode (SCI_EN), all events clear and disabled, timer restarted. */
  reset(): void {
    this.#s.sts = 0;
    this.#s.en = 0;
    this.#s.gpeSts = 0;
    this.#s.gpeEn = 0;
    this.#s.cnt = PM1_CNT.SCI_EN;
    this.#s.timerOrigin = this.#clock.now();
    this.#s.timerBit31 = 0;
    this.#timer?.cancel();
    this.#updateSci();
  }

  /** The PM1 event block (PM1_STS at 0, PM1_EN at 2). */
  readonly event: BusDevice = {
    read: (offset: number, size: AccessSize): number => {
      this.#updateTimerStatus(this.#ticks());
      this.#updateSci();
      return readPair(this.#s.sts, this.#s.en, offset, size);
    },
    write: (offset: number, size: AccessSize, value: number): void => {
      const s = this.#s;
      // PM1_STS: write 1 to clear (4.8.3.1); PM1_EN: the implemented enables.
      const pair = writePair(s.sts | (s.en << 16), offset, size, value, STS_WRITABLE, EN_WRITABLE);
      s.sts = pair & 0xffff;
      s.en = pair >>> 16;
      const ticks = this.#ticks();
      this.#updateTimerStatus(ticks);
      this.#updateSci();
      this.#armTimer(ticks);
    },
  };

  /** The PM1 control block (PM1_CNT, 2 bytes). */
  readonly control: BusDevice = {
    read: (offset: number, size: AccessSize): number => {
      const v = this.#s.cnt >>> (offset * 8);
      return size === 1 ? v & 0xff : v & 0xffff;
    },
    write: (offset: number, size: AccessSize, value: number): void => {
      let v = value << (offset * 8);
      if (size === 1) v = (this.#s.cnt & ~(0xff << (offset * 8))) | (v & (0xff << (offset * 8)));
      // SCI_EN is owned by the (absent) SMI handler; the OS cannot clear it (4.8.3.2.1).
      this.#s.cnt = (v & CNT_STORED) | PM1_CNT.SCI_EN;
      if (v & PM1_CNT.SLP_EN) {
        const slpTyp = (v & PM1_CNT.SLP_TYP_MASK) >> PM1_CNT.SLP_TYP_SHIFT;
        if (slpTyp === SLP_TYP_S5) {
          this.#platform.suspend({
            kind: "poweroff",
            message: "ACPI S5: SLP_EN with SLP_TYP 5 in PM1a_CNT",
          });
        }
      }
      this.#updateSci();
    },
  };

  /** The GPE0 block (GPE0_STS at 0, GPE0_EN at 2; byte-accessible, 4.8.4.1). */
  readonly gpe: BusDevice = {
    read: (offset: number, size: AccessSize): number =>
      readPair(this.#s.gpeSts, this.#s.gpeEn, offset, size),
    write: (offset: number, size: AccessSize, value: number): void => {
      const s = this.#s;
      // GPE0_STS: write 1 to clear; all 16 events have status and enable bits.
      const pair = writePair(s.gpeSts | (s.gpeEn << 16), offset, size, value, 0xffff, 0xffff);
      s.gpeSts = pair & 0xffff;
      s.gpeEn = pair >>> 16;
      this.#updateSci();
    },
  };

  /** The PM timer (read-only; needs no lock: it only reads the clock and a constant). */
  readonly timer: BusDevice = {
    read: (offset: number, size: AccessSize): number => {
      const v = this.timerValue() / 2 ** (offset * 8);
      return size >= 4 ? Math.floor(v) >>> 0 : Math.floor(v) & (size === 1 ? 0xff : 0xffff);
    },
    write: (): void => {},
  };
}

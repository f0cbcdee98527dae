/**
 * The PC real-time clock and CMOS RAM: a Motorola MC146818A, as on the IBM
 * PC/AT (ports 0x70/0x71, IRQ 8), plus the upper 128 bytes of CMOS RAM that
 * Intel chipsets decode at ports 0x72/0x73.
 *
 * Behaviour follows the MC146818A datasheet; bhyve's vrtc (sys/amd64/vmm/
 * io/vrtc.c) is the model for the choices the datasheet leaves open. Section
 * names below ("Update cycle", "Register B", ...) refer to the datasheet.
 *
 * Time is kept as seconds, not as register bytes: while the divider runs
 * and SET is 0, the RTC shows `base + floor((clock - phase) / 1 s)`, where
 * `phase` is one of the divider's update instants. Everything else (the
 * time registers, UIP, the PF/AF/UF flags) is derived from the clock on each
 * access, so the model is exact whether or not timer callbacks ran, ran
 * late or ran twice; the one timer only makes the IRQ line rise on time.
 *
 * Deliberate differences from the chip, all of them bhyve's as well:
 * - Changing DM (binary/BCD) or 24/12 does not convert the stored time on a
 *   real chip; here the time is seconds, so the time registers always read
 *   in the current format. The alarm bytes are stored as written.
 * - Day of week is derived from the date (1 = Sunday); a value the guest
 *   writes is dropped at the next update (bhyve ignores it too: guests set
 *   it inconsistently).
 * - The guest's date and time take effect when it clears SET (or, written
 *   with SET = 0, at once). If they do not form a valid date the clock stops
 *   and the registers keep the guest's bytes until it writes a valid time
 *   (bhyve's "broken time", without bhyve's option of stopping the VM).
 * - The update itself is instantaneous, at the second boundary; UIP is set
 *   during the 244 us before it (datasheet "Update cycle": UIP = 0 means no
 *   update for at least 244 us, which is all a guest may rely on).
 * - DSE is stored but no daylight-saving adjustment is made; SQWE is stored
 *   (there is no SQW pin).
 *
 * All state lives in {@linkcode RtcState}, so the RTC can be bound in every
 * thread; the VM's device lock must serialize guest accesses, `onTimer` and
 * the host-side calls.
 *
 * @module
 */
import {
  type AccessSize,
  type BusDevice,
  type Clock,
  driveLine,
  type IrqLine,
  type Timer,
  type TimerOwner,
} from "./device.ts";
import { defineState, type StateOf } from "./state.ts";

// ---------------------------------------------------------------------------
// Ports (offsets in each 2-port window).

/** Index port (0x70, and 0x72 for the upper bank): write-only on the PC/AT. */
export const RTC_INDEX_PORT = 0;
/** Data port (0x71, and 0x73 for the upper bank). */
export const RTC_DATA_PORT = 1;
/** Ports each window decodes. */
export const RTC_WINDOW = 2;
/** Index port bit 7: NMI disable (PC/AT wiring, not part of the MC146818A). */
export const RTC_INDEX_NMI_DISABLE = 0x80;
/** Index port bits 6:0: the register or CMOS byte selected. */
export const RTC_INDEX_MASK = 0x7f;
/** What a read of an index port returns: the port is write-only (nothing drives the bus). */
export const RTC_INDEX_READ_VALUE = 0xff;

// ---------------------------------------------------------------------------
// Registers (datasheet "Address map").

/** Seconds (0-59). */
export const RTC_SECONDS = 0x00;
/** Seconds alarm. */
export const RTC_SECONDS_ALARM = 0x01;
/** Minutes (0-59). */
export const RTC_MINUTES = 0x02;
/** Minutes alarm. */
export const RTC_MINUTES_ALARM = 0x03;
/** Hours (0-23, or 1-12 with RTC_HOUR_PM). */
export const RTC_HOURS = 0x04;
/** Hours alarm. */
export const RTC_HOURS_ALARM = 0x05;
/** Day of week (1-7, Sunday = 1). */
export const RTC_DAY_OF_WEEK = 0x06;
/** Day of month (1-31). */
export const RTC_DAY_OF_MONTH = 0x07;
/** Month (1-12). */
export const RTC_MONTH = 0x08;
/** Year (0-99). */
export const RTC_YEAR = 0x09;
/** Register A: UIP, divider, rate select. */
export const RTC_REG_A = 0x0a;
/** Register B: SET, interrupt enables, data mode. */
export const RTC_REG_B = 0x0b;
/** Register C: interrupt flags (read-only, cleared by reading). */
export const RTC_REG_C = 0x0c;
/** Register D: valid RAM and time (read-only). */
export const RTC_REG_D = 0x0d;
/** First byte of the user RAM (the datasheet's 50 bytes, the PC's CMOS bytes). */
export const RTC_NVRAM_START = 0x0e;
/** Century (PC/AT convention, ACPI FADT CENTURY): kept in step with the clock. */
export const RTC_CENTURY = 0x32;
/** Bytes of CMOS RAM with the upper bank (ports 0x72/0x73). */
export const CMOS_SIZE = 256;
/** First byte of the upper bank. */
export const CMOS_UPPER_START = 0x80;

// Register A (datasheet "Register A").
/** A: update in progress (read-only). */
export const REG_A_UIP = 0x80;
/** A: divider control bits DV2-DV0. */
export const REG_A_DV_MASK = 0x70;
/** A: DV = 010, the 32.768 kHz time base; the only setting that counts time on a PC. */
export const REG_A_DV_32768 = 0x20;
/** A: DV = 11x holds the divider chain in reset. */
export const REG_A_DV_RESET = 0x60;
/** A: rate select RS3-RS0 of the periodic interrupt. */
export const REG_A_RS_MASK = 0x0f;
/** A: the writable bits (UIP is read-only). */
export const REG_A_WRITABLE = REG_A_DV_MASK | REG_A_RS_MASK;

// Register B (datasheet "Register B").
/** B: SET: inhibits updates so the time can be written. */
export const REG_B_SET = 0x80;
/** B: periodic interrupt enable. */
export const REG_B_PIE = 0x40;
/** B: alarm interrupt enable. */
export const REG_B_AIE = 0x20;
/** B: update-ended interrupt enable. */
export const REG_B_UIE = 0x10;
/** B: square-wave enable (stored only: no SQW pin). */
export const REG_B_SQWE = 0x08;
/** B: data mode: 1 = binary, 0 = BCD. */
export const REG_B_DM = 0x04;
/** B: 1 = 24-hour mode, 0 = 12-hour mode. */
export const REG_B_24H = 0x02;
/** B: daylight-saving enable (stored only, no adjustment). */
export const REG_B_DSE = 0x01;

// Register C (datasheet "Register C").
/** C: IRQF: some flag is set together with its enable (the IRQ pin is driven). */
export const REG_C_IRQF = 0x80;
/** C: periodic interrupt flag. */
export const REG_C_PF = 0x40;
/** C: alarm interrupt flag. */
export const REG_C_AF = 0x20;
/** C: update-ended interrupt flag. */
export const REG_C_UF = 0x10;

// Register D (datasheet "Register D").
/** D: valid RAM and time: the battery is fine (always 1 here). */
export const REG_D_VRT = 0x80;

/** Seconds register: the bits a write stores (bit 7 is read-only, as in bhyve). */
export const RTC_SECONDS_WRITABLE = 0x7f;
/** Hours register bit 7 in 12-hour mode: PM. */
export const RTC_HOUR_PM = 0x80;
/** Alarm byte "don't care" code: both top bits set (0xC0-0xFF) match every value. */
export const RTC_ALARM_DONT_CARE = 0xc0;

/** UIP is set this long before each update (datasheet "Update cycle", tBUC = 244 us). */
export const RTC_UIP_NS = 244_000;
/** After the divider leaves reset the first update comes 500 ms later (datasheet "Register A"). */
export const RTC_DIVIDER_RESTART_NS = 500_000_000;
/** `deadline` when the timer is disarmed. */
const DEADLINE_NONE = -1;
/** `deadline` after a callback: the timer may or may not still be armed. */
const DEADLINE_UNKNOWN = -2;
/** One second in ns. */
const NS_PER_S = 1_000_000_000;
const SECONDS_PER_DAY = 86_400;

// ---------------------------------------------------------------------------
// CMOS configuration bytes (IBM PC/AT BIOS conventions, as bhyve and QEMU
// leave them for firmware).

/** CMOS: shutdown status byte (0 = normal power-on). */
export const CMOS_SHUTDOWN_STATUS = 0x0f;
/** CMOS: diskette drive types (0 = no drives). */
export const CMOS_FLOPPY_TYPES = 0x10;
/** CMOS: equipment byte. */
export const CMOS_EQUIPMENT = 0x14;
/** Equipment byte bit 1: math coprocessor installed. */
export const CMOS_EQUIPMENT_FPU = 0x02;
/** CMOS: base memory in KiB, low byte (0x16: high byte). */
export const CMOS_BASE_MEMORY = 0x15;
/** CMOS: extended memory above 1 MiB in KiB, low byte (0x18: high byte). */
export const CMOS_EXT_MEMORY = 0x17;
/** CMOS: checksum of bytes 0x10-0x2D, high byte (0x2F: low byte). */
export const CMOS_CHECKSUM = 0x2e;
/** CMOS: extended memory above 1 MiB in KiB as the POST found it, low byte (0x31: high byte). */
export const CMOS_EXT_MEMORY_POST = 0x30;
/** CMOS: memory above 16 MiB (below 4 GiB) in 64 KiB units, low byte (0x35: high byte). */
export const CMOS_MEMORY_ABOVE_16M = 0x34;
/** CMOS: memory above 4 GiB in 64 KiB units, 3 bytes little-endian (0x5B-0x5D). */
export const CMOS_MEMORY_ABOVE_4G = 0x5b;
/** First and last CMOS byte covered by the AT checksum. */
const CHECKSUM_FIRST = 0x10;
const CHECKSUM_LAST = 0x2d;
/** Base memory the PC/AT reports: 640 KiB. */
export const CMOS_BASE_MEMORY_KIB = 640;

/** Register A at power-on: DV = 010 (32.768 kHz, running), RS = 0110 (1024 Hz). */
export const RTC_POWER_ON_REG_A = 0x26;
/** Register B at power-on: 24-hour mode, BCD, no interrupts. */
export const RTC_POWER_ON_REG_B = REG_B_24H;

const KiB = 1024;
const MiB = 1024 * KiB;

/** The periodic interrupt rate (Hz) of rate select `rs` with a 32.768 kHz time base; 0 = off. */
export function periodicRateHz(rs: number): number {
  rs &= REG_A_RS_MASK;
  if (rs === 0) return 0;
  // Datasheet table "Periodic interrupt rate and square-wave output
  // frequency" (32.768 kHz time base): RS = 1 and 2 repeat the 256 Hz and
  // 128 Hz taps of RS = 8 and 9 (the 8192/4096 Hz taps are only used with
  // the faster time bases).
  if (rs === 1) return 256;
  if (rs === 2) return 128;
  return 32768 >> (rs - 1);
}

/** The CMOS bytes a PC BIOS leaves for the given memory (offset -> value). */
export function cmosMemoryBytes(memory: RtcMemory): Map<number, number> {
  const bytes = new Map<number, number>();
  const put16 = (at: number, v: number) => {
    bytes.set(at, v & 0xff);
    bytes.set(at + 1, (v >> 8) & 0xff);
  };
  bytes.set(CMOS_FLOPPY_TYPES, 0);
  bytes.set(CMOS_EQUIPMENT, CMOS_EQUIPMENT_FPU); // no diskettes, EGA/VGA-class display, no mouse
  put16(CMOS_BASE_MEMORY, CMOS_BASE_MEMORY_KIB);
  // Extended memory between 1 MiB and the end of low RAM, in KiB, capped at
  // 0xFFFF (about 64 MiB); firmware uses 0x34/0x35 beyond that.
  const extKiB = Math.min(0xffff, Math.max(0, Math.floor((memory.lowmemEnd - MiB) / KiB)));
  put16(CMOS_EXT_MEMORY, extKiB);
  put16(CMOS_EXT_MEMORY_POST, extKiB);
  // bhyve's rtc_init: 64 KiB chunks above 16 MiB and below 4 GiB, and above 4 GiB.
  const above16 = Math.min(
    0xffff,
    Math.max(0, Math.floor((memory.lowmemEnd - 16 * MiB) / (64 * KiB))),
  );
  put16(CMOS_MEMORY_ABOVE_16M, above16);
  const above4g = Math.min(0xffffff, Math.floor(memory.highmemSize / (64 * KiB)));
  bytes.set(CMOS_MEMORY_ABOVE_4G, above4g & 0xff);
  bytes.set(CMOS_MEMORY_ABOVE_4G + 1, (above4g >> 8) & 0xff);
  bytes.set(CMOS_MEMORY_ABOVE_4G + 2, (above4g >> 16) & 0xff);
  return bytes;
}

// ---------------------------------------------------------------------------
// Calendar arithmetic (proleptic Gregorian, pure integer math).

/** Days from 1970-01-01 to the given date (H. Hinnant's days_from_civil). */
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** The date of a day count from 1970-01-01 (H. Hinnant's civil_from_days). */
function civilFromDays(z: number): { y: number; m: number; d: number } {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp + (mp < 10 ? 3 : -9);
  return { y: yoe + era * 400 + (m <= 2 ? 1 : 0), m, d };
}

function daysInMonth(y: number, m: number): number {
  return daysFromCivil(m === 12 ? y + 1 : y, m === 12 ? 1 : m + 1, 1) - daysFromCivil(y, m, 1);
}

/** A calendar time (24-hour clock, full year). */
interface CalendarTime {
  sec: number;
  min: number;
  hour: number;
  /** 0 = Sunday. */
  dow: number;
  day: number;
  month: number;
  year: number;
}

function toCalendar(t: number): CalendarTime {
  const days = Math.floor(t / SECONDS_PER_DAY);
  const sod = t - days * SECONDS_PER_DAY;
  const { y, m, d } = civilFromDays(days);
  return {
    sec: sod % 60,
    min: Math.floor(sod / 60) % 60,
    hour: Math.floor(sod / 3600),
    dow: (((days + 4) % 7) + 7) % 7, // 1970-01-01 was a Thursday
    day: d,
    month: m,
    year: y,
  };
}

function toBcd(v: number): number {
  v = ((v % 100) + 100) % 100;
  return ((v / 10) | 0) * 16 + (v % 10);
}

/** Encodes `v` in the data mode of register B: binary with DM = 1, else BCD (datasheet "Register B"). */
function encode(v: number, regB: number): number {
  return regB & REG_B_DM ? v & 0xff : toBcd(v);
}

/** The hours byte of `hour24` (0-23) in the data mode and 24/12 mode of register B. */
function hourByte(hour24: number, regB: number): number {
  if (regB & REG_B_24H) return encode(hour24, regB);
  // 12-hour mode (datasheet "Time, calendar and alarm data modes"):
  // 1-12 with bit 7 = PM; midnight is 12 AM, noon 12 PM.
  return encode(hour24 % 12 === 0 ? 12 : hour24 % 12, regB) | (hour24 >= 12 ? RTC_HOUR_PM : 0);
}

/** Time register `index` (one of {@linkcode TIME_REGISTERS}) of calendar time `c`, in the format of register B. */
function timeByte(index: number, c: CalendarTime, regB: number): number {
  switch (index) {
    case RTC_SECONDS:
      return encode(c.sec, regB);
    case RTC_MINUTES:
      return encode(c.min, regB);
    case RTC_HOURS:
      return hourByte(c.hour, regB);
    case RTC_DAY_OF_WEEK:
      return encode(c.dow + 1, regB);
    case RTC_DAY_OF_MONTH:
      return encode(c.day, regB);
    case RTC_MONTH:
      return encode(c.month, regB);
    case RTC_YEAR:
      return encode(c.year % 100, regB);
    case RTC_CENTURY:
      return encode(Math.floor(c.year / 100), regB);
  }
  throw new RangeError(`rtc: register ${index} is not a time register`);
}

/** The registers that make up the date and time (day of week included). */
const TIME_REGISTERS: ReadonlySet<number> = new Set([
  RTC_SECONDS,
  RTC_MINUTES,
  RTC_HOURS,
  RTC_DAY_OF_WEEK,
  RTC_DAY_OF_MONTH,
  RTC_MONTH,
  RTC_YEAR,
  RTC_CENTURY,
]);

/** The time registers of seconds `t` in the format of register B (index -> byte). */
function timeBytes(t: number, regB: number): Map<number, number> {
  const c = toCalendar(t);
  return new Map([...TIME_REGISTERS].map((index) => [index, timeByte(index, c, regB)]));
}

/** Whether alarm byte `alarm` matches time byte `value`; a "don't care" code (11xxxxxx) matches any (datasheet "Alarm"). */
function alarmMatch(alarm: number, value: number): boolean {
  return (alarm & RTC_ALARM_DONT_CARE) === RTC_ALARM_DONT_CARE || alarm === value;
}

/** Splits a read into byte lanes (an ISA 16-bit access hits two consecutive ports); lanes past the window float. */
function readLanes(offset: number, size: AccessSize, read: (offset: number) => number): number {
  let v = 0;
  for (let i = 0; i < size && i < 4; i++) {
    const o = offset + i;
    const b = o < RTC_WINDOW ? read(o) : 0xff;
    v += b * 2 ** (8 * i);
  }
  return v;
}

/** Splits a write into byte lanes, low byte first; lanes past the window are dropped. */
function writeLanes(
  offset: number,
  size: AccessSize,
  value: number,
  write: (offset: number, byte: number) => void,
): void {
  for (let i = 0; i < size && i < 4; i++) {
    const o = offset + i;
    if (o < RTC_WINDOW) write(o, (value >>> (i * 8)) & 0xff);
  }
}

/** Decodes a byte in the data mode of register B; NaN if it is not valid BCD. */
function decode(byte: number, regB: number): number {
  if (regB & REG_B_DM) return byte;
  const hi = byte >> 4, lo = byte & 0x0f;
  return hi > 9 || lo > 9 ? NaN : hi * 10 + lo;
}

/** Reads a date and time out of register bytes; NaN if they are not a valid time (bhyve's rtc_to_secs). */
function parseTime(cmos: Uint8Array, regB: number): number {
  const dec = (i: number) => decode(cmos[i], regB);
  const sec = dec(RTC_SECONDS), min = dec(RTC_MINUTES);
  let hour: number;
  if (regB & REG_B_24H) {
    hour = dec(RTC_HOURS);
    if (!(hour >= 0 && hour <= 23)) return NaN;
  } else {
    const h = decode(cmos[RTC_HOURS] & ~RTC_HOUR_PM, regB);
    if (!(h >= 1 && h <= 12)) return NaN;
    hour = (h % 12) + (cmos[RTC_HOURS] & RTC_HOUR_PM ? 12 : 0);
  }
  const day = dec(RTC_DAY_OF_MONTH), month = dec(RTC_MONTH);
  const yy = dec(RTC_YEAR), century = dec(RTC_CENTURY);
  if (!(sec >= 0 && sec <= 59 && min >= 0 && min <= 59)) return NaN;
  if (!(yy >= 0 && yy <= 99 && century >= 0 && century <= 99)) return NaN;
  if (!(month >= 1 && month <= 12)) return NaN;
  const year = century * 100 + yy;
  if (!(day >= 1 && day <= daysInMonth(year, month))) return NaN;
  // The day of week is not checked: guests set it inconsistently (bhyve).
  return daysFromCivil(year, month, day) * SECONDS_PER_DAY + hour * 3600 + min * 60 + sec;
}

/** The first instant (integer ns) after `now` of the series origin + k * period. */
export function nextEdge(origin: number, period: number, now: number): number {
  const k = Math.floor((now - origin) / period) + 1;
  let d = Math.ceil(origin + k * period);
  // Floating-point rounding must never give a deadline at which the edge
  // has not happened yet (the callback would find nothing and re-arm). Each
  // step moves to a larger double: past 2^53 ns (104 days of VM uptime) d + 1
  // is d again, and a plain d++ would spin for ever under the device lock.
  while (Math.floor((d - origin) / period) < k) d += Math.max(1, Number.EPSILON * d);
  return d;
}

// ---------------------------------------------------------------------------

/** Register state of the RTC (snapshot format; version bumps with the fields). */
export const RtcState = defineState("mc146818", 1, {
  /**
   * CMOS bytes 0-255: the alarm bytes and the RAM; the time bytes (0-9 and
   * the century) only while `latched`. 0x0A-0x0D are unused (see below).
   */
  cmos: ["u8", CMOS_SIZE],
  /** Register selected at port 0x70 (bits 6:0). */
  index: "u8",
  /** Port 0x70 bit 7 as last written (the NMI mask; stored only). */
  nmiDisabled: "bool",
  /** Byte of the upper bank selected at port 0x72 (bits 6:0). */
  upperIndex: "u8",
  /** Register A without UIP. */
  regA: "u8",
  regB: "u8",
  /** PF/AF/UF (register C without IRQF, which is derived). */
  flags: "u8",
  /** The time registers hold the guest's bytes (SET = 1, or an invalid time): the clock does not count. */
  latched: "bool",
  /** RTC time (seconds, in the guest's time zone) at `phaseNs`; the held time while the divider is reset. */
  base: "f64",
  /** A divider update instant (integer ns on the clock): updates come at phaseNs + k s. */
  phaseNs: "f64",
  /** Clock (ns) up to which the flags were derived. */
  evalNs: "f64",
  /** The armed timer deadline (ns); -1 when disarmed, -2 when unknown (after a callback). */
  deadline: "f64",
  /** The level driven on IRQ 8. */
  irqLevel: "bool",
  /** The IRQ output is disconnected (HPET LegacyReplacement, IA-PC HPET 1.0a 2.3.5). */
  disconnected: "bool",
});

/** A bound {@linkcode RtcState}. */
export type RtcRegisters = StateOf<typeof RtcState.fields>;

/** The guest's memory, for the CMOS memory-size bytes. */
export interface RtcMemory {
  /** End of RAM below 4 GiB (bytes). */
  readonly lowmemEnd: number;
  /** RAM above 4 GiB (bytes). */
  readonly highmemSize: number;
}

/** What the RTC is given. */
export interface RtcDeps {
  /** IRQ 8. */
  irq: IrqLine;
  /** The VM's monotonic clock (ns). */
  clock: Clock;
  /** One timer (timer 0). */
  timers: readonly Timer[];
  /** Host wall-clock time, seconds since the Unix epoch (may be fractional); read only by powerOn(). */
  hostTime: () => number;
  /** Seconds added to UTC for the guest (0 for UTC; the host's offset with rtc.use_localtime). */
  utcOffsetSeconds: number;
  /** Memory sizes for the CMOS configuration bytes. */
  memory: RtcMemory;
}

/** The MC146818A RTC with 256 bytes of CMOS RAM. */
export class Rtc implements BusDevice, TimerOwner {
  readonly #irq: IrqLine;
  readonly #clock: Clock;
  readonly #timer: Timer;
  readonly #hostTime: () => number;
  readonly #offset: number;
  readonly #memory: RtcMemory;
  readonly #s: RtcRegisters;
  readonly #upper: BusDevice;
  // Byte-lane handlers, made once rather than per access.
  readonly #lowRead = (offset: number): number => this.#portRead(offset);
  readonly #lowWrite = (offset: number, byte: number): void => this.#portWrite(offset, byte);
  readonly #highRead = (offset: number): number => this.#upperRead(offset);
  readonly #highWrite = (offset: number, byte: number): void => this.#upperWrite(offset, byte);

  /**
   * Builds the RTC over `state`. Without `state`, a fresh one is created and
   * powered on ({@linkcode Rtc.powerOn}); with one, it is used as it is.
   */
  constructor(deps: RtcDeps, state?: RtcRegisters) {
    if (deps.timers.length < 1) throw new Error("rtc: needs one timer");
    this.#irq = deps.irq;
    this.#clock = deps.clock;
    this.#timer = deps.timers[0];
    this.#hostTime = deps.hostTime;
    this.#offset = deps.utcOffsetSeconds;
    this.#memory = deps.memory;
    this.#upper = {
      read: (offset, size) => readLanes(offset, size, this.#highRead),
      write: (offset, size, value) => writeLanes(offset, size, value, this.#highWrite),
    };
    if (state) {
      this.#s = state;
    } else {
      this.#s = RtcState.create();
      this.powerOn();
    }
  }

  /** The bound register state. */
  get state(): RtcRegisters {
    return this.#s;
  }

  /** The two windows: `low` at 0x70 (registers and bytes 0-127), `high` at 0x72 (bytes 128-255). */
  ports(): { low: BusDevice; high: BusDevice } {
    return { low: this, high: this.#upper };
  }

  /** Whether the guest set the NMI-disable bit (port 0x70 bit 7) in its last index write. */
  get nmiDisabled(): boolean {
    return this.#s.nmiDisabled;
  }

  /**
   * Power-on (VM creation): the time from the host, empty CMOS RAM with the
   * PC configuration bytes, A = 0x26, B = 0x02, no flags, IRQ low.
   */
  powerOn(): void {
    const s = this.#s;
    const now = this.#clock.now();
    const level = s.irqLevel;
    RtcState.clear(s);
    s.irqLevel = level;
    s.deadline = DEADLINE_NONE;
    this.#timer.cancel();
    s.index = RTC_REG_D; // a harmless register, as bhyve's vrtc_init leaves it
    s.regA = RTC_POWER_ON_REG_A;
    s.regB = RTC_POWER_ON_REG_B;
    s.evalNs = now;
    this.#setSeconds(this.#hostTime() + this.#offset, now);
    for (const [at, v] of cmosMemoryBytes(this.#memory)) s.cmos[at] = v;
    let sum = 0;
    for (let i = CHECKSUM_FIRST; i <= CHECKSUM_LAST; i++) sum += s.cmos[i];
    // IBM PC/AT BIOS: the sum of bytes 0x10-0x2D, big-endian at 0x2E/0x2F.
    s.cmos[CMOS_CHECKSUM] = (sum >> 8) & 0xff;
    s.cmos[CMOS_CHECKSUM + 1] = sum & 0xff;
    this.#finish(now);
  }

  /**
   * VM reset: the time and the CMOS RAM survive (the chip is battery-backed);
   * the datasheet's RESET pin clears PIE, AIE, UIE, SQWE and IRQF/PF/AF/UF
   * ("RESET" pin description), which drops the IRQ line.
   */
  reset(): void {
    const s = this.#s;
    const now = this.#clock.now();
    this.#advance(now);
    s.regB &= ~(REG_B_PIE | REG_B_AIE | REG_B_UIE | REG_B_SQWE);
    s.flags = 0;
    this.#finish(now);
  }

  /** The time the guest's RTC shows, in seconds since the epoch (UTC); NaN while it holds an invalid date. */
  getTime(): number {
    const now = this.#clock.now();
    const t = this.#seconds(now);
    return t - this.#offset;
  }

  /** Sets the RTC to `seconds` since the epoch (UTC; may be fractional: the divider phase follows). */
  setTime(seconds: number): void {
    if (!Number.isFinite(seconds)) throw new RangeError(`rtc: bad time ${seconds}`);
    const now = this.#clock.now();
    this.#advance(now);
    this.#setSeconds(seconds + this.#offset, now);
    this.#finish(now);
  }

  /** Reads CMOS byte `offset` (14-255) without side effects; 0x32 is the century the clock shows. */
  readNvram(offset: number): number {
    this.#checkNvramOffset(offset);
    const now = this.#clock.now();
    return offset >= CMOS_UPPER_START ? this.#s.cmos[offset] : this.#peek(offset, now);
  }

  /** Writes CMOS byte `offset` (14-255, except the century byte 0x32: use setTime). */
  writeNvram(offset: number, value: number): void {
    this.#checkNvramOffset(offset);
    if (offset === RTC_CENTURY) {
      throw new RangeError("rtc: the century byte is part of the clock; use setTime");
    }
    this.#s.cmos[offset] = value & 0xff;
  }

  /** A guest read; wider accesses read consecutive ports. */
  read(offset: number, size: AccessSize): number {
    return readLanes(offset, size, this.#lowRead);
  }

  /** A guest write; wider accesses write consecutive ports, low byte first. */
  write(offset: number, size: AccessSize, value: number): void {
    writeLanes(offset, size, value, this.#lowWrite);
  }

  /** The timer expired: derive the flags from the clock and re-arm. */
  onTimer(_id: number): void {
    // The timer is one-shot and has fired (or the callback is spurious):
    // either way its state is unknown now, so #schedule arms or cancels it.
    this.#s.deadline = DEADLINE_UNKNOWN;
    const now = this.#clock.now();
    this.#advance(now);
    this.#finish(now);
  }

  // -------------------------------------------------------------------------

  #checkNvramOffset(offset: number): void {
    if (!(Number.isInteger(offset) && offset >= RTC_NVRAM_START && offset < CMOS_SIZE)) {
      throw new RangeError(
        `rtc: CMOS offset ${offset} is not in ${RTC_NVRAM_START}..${CMOS_SIZE - 1}`,
      );
    }
  }

  #upperRead(offset: number): number {
    if (offset === RTC_INDEX_PORT) return RTC_INDEX_READ_VALUE;
    return this.#s.cmos[CMOS_UPPER_START + this.#s.upperIndex];
  }

  #upperWrite(offset: number, value: number): void {
    // Intel ICH "RTC": ports 72h/73h reach the upper 128 bytes; the index
    // uses bits 6:0 (address 128 + index).
    if (offset === RTC_INDEX_PORT) this.#s.upperIndex = value & RTC_INDEX_MASK;
    else this.#s.cmos[CMOS_UPPER_START + this.#s.upperIndex] = value;
  }

  #portRead(offset: number): number {
    if (offset === RTC_INDEX_PORT) return RTC_INDEX_READ_VALUE; // PC/AT: port 70h is write-only
    const s = this.#s;
    const now = this.#clock.now();
    this.#advance(now);
    let value: number;
    if (s.index === RTC_REG_C) {
      value = s.flags | (this.#irqf() ? REG_C_IRQF : 0);
      // Register C: reading it clears IRQF, PF, AF and UF.
      s.flags = 0;
    } else {
      value = this.#peek(s.index, now);
    }
    this.#finish(now);
    return value;
  }

  /** Register `index` (0-127) as a read would return it, without side effects. */
  #peek(index: number, now: number): number {
    const s = this.#s;
    if (TIME_REGISTERS.has(index)) {
      if (s.latched) return s.cmos[index];
      return timeByte(index, toCalendar(this.#seconds(now)), s.regB);
    }
    switch (index) {
      case RTC_REG_A:
        return s.regA | (this.#uip(now) ? REG_A_UIP : 0);
      case RTC_REG_B:
        return s.regB;
      case RTC_REG_C:
        return s.flags | (this.#irqf() ? REG_C_IRQF : 0);
      case RTC_REG_D:
        return REG_D_VRT; // Register D: VRT reads 1 (power is good); bits 6-0 read 0
      default:
        return s.cmos[index]; // alarm bytes and RAM
    }
  }

  #portWrite(offset: number, value: number): void {
    const s = this.#s;
    if (offset === RTC_INDEX_PORT) {
      s.index = value & RTC_INDEX_MASK;
      s.nmiDisabled = (value & RTC_INDEX_NMI_DISABLE) !== 0;
      return;
    }
    const now = this.#clock.now();
    this.#advance(now);
    const index = s.index;
    if (TIME_REGISTERS.has(index)) {
      this.#writeTime(index, value, now);
    } else if (index === RTC_REG_A) {
      this.#writeA(value, now);
    } else if (index === RTC_REG_B) {
      this.#writeB(value, now);
    } else if (index === RTC_REG_C || index === RTC_REG_D) {
      // Registers C and D are read-only (datasheet "Register C", "Register D").
    } else {
      s.cmos[index] = value; // alarm bytes and RAM
    }
    this.#finish(now);
  }

  #writeTime(index: number, value: number, now: number): void {
    const s = this.#s;
    if (!s.latched) this.#latchRegisters(now);
    // bhyve: bit 7 of the seconds register is read-only (seconds never need it).
    s.cmos[index] = index === RTC_SECONDS ? value & RTC_SECONDS_WRITABLE : value;
    // Register B SET: with SET = 1 the bytes wait for SET to clear; without
    // it the written field takes effect at once (the datasheet lets the time
    // be written at any time; the next update counts on from it).
    if (!(s.regB & REG_B_SET)) this.#commit(now);
  }

  #writeA(value: number, now: number): void {
    const s = this.#s;
    const wasRunning = this.#dividerRunning();
    s.regA = value & REG_A_WRITABLE; // Register A: UIP is read-only
    const running = this.#dividerRunning();
    if (wasRunning && !running) {
      // Divider held (DV = 11x, or a time base a PC does not have; bhyve
      // treats every DV other than 010 alike): the time freezes at the
      // current second and the sub-second phase is lost.
      s.base += Math.floor((now - s.phaseNs) / NS_PER_S);
    } else if (!wasRunning && running) {
      // Register A: "the first update cycle begins one-half second later"
      // after the divider chain leaves reset.
      s.phaseNs = Math.round(now) + RTC_DIVIDER_RESTART_NS - NS_PER_S;
    }
  }

  #writeB(value: number, now: number): void {
    const s = this.#s;
    const old = s.regB;
    if (!(old & REG_B_SET) && value & REG_B_SET) {
      // Register B: "UIE is cleared ... when the SET bit goes high".
      value &= ~REG_B_UIE;
      // Updates stop; the registers hold the current time, in the format
      // in force before this write (a chip does not convert them).
      if (!s.latched) this.#latchRegisters(now);
    }
    s.regB = value;
    if (old & REG_B_SET && !(value & REG_B_SET)) this.#commit(now);
  }

  /** Copies the current time into the time registers and stops counting. */
  #latchRegisters(now: number): void {
    const s = this.#s;
    for (const [at, v] of timeBytes(this.#seconds(now), s.regB)) s.cmos[at] = v;
    s.latched = true;
  }

  /** Takes the time registers as the new time (when they form a valid one) and counts on from it. */
  #commit(now: number): void {
    const s = this.#s;
    const t = parseTime(s.cmos, s.regB);
    if (Number.isNaN(t)) {
      s.latched = true; // invalid: the clock stays stopped on the guest's bytes
      return;
    }
    // The divider kept running while SET was 1 (SET only inhibits the
    // transfer), so the next update comes at the divider's next second.
    s.base = t - this.#elapsedSeconds(now);
    s.latched = false;
  }

  /** Sets the time to `t` (seconds, guest time zone, may be fractional). */
  #setSeconds(t: number, now: number): void {
    const s = this.#s;
    const whole = Math.floor(t);
    if (this.#dividerRunning()) {
      s.phaseNs = Math.round(now - (t - whole) * NS_PER_S);
      s.base = whole - this.#elapsedSeconds(now);
    } else {
      s.base = whole;
    }
    const set = (s.regB & REG_B_SET) !== 0;
    s.latched = false;
    // The guest owns the registers while SET = 1: show it the new time there.
    if (set) this.#latchRegisters(now);
  }

  #dividerRunning(): boolean {
    return (this.#s.regA & REG_A_DV_MASK) === REG_A_DV_32768;
  }

  /** Whole seconds the divider counted since `phaseNs` (0 while it is held). */
  #elapsedSeconds(now: number): number {
    return this.#dividerRunning() ? Math.floor((now - this.#s.phaseNs) / NS_PER_S) : 0;
  }

  /** The RTC time at `now` (seconds, guest time zone); NaN while latched on an invalid date. */
  #seconds(now: number): number {
    const s = this.#s;
    if (s.latched) return parseTime(s.cmos, s.regB);
    return s.base + this.#elapsedSeconds(now);
  }

  #uip(now: number): boolean {
    const s = this.#s;
    // Register A UIP: SET = 1 inhibits updates and clears UIP; a held
    // divider makes no updates.
    if (!this.#dividerRunning() || s.regB & REG_B_SET) return false;
    const intoSecond = (now - s.phaseNs) - Math.floor((now - s.phaseNs) / NS_PER_S) * NS_PER_S;
    return intoSecond >= NS_PER_S - RTC_UIP_NS;
  }

  #periodNs(): number {
    const hz = periodicRateHz(this.#s.regA);
    return hz === 0 ? 0 : NS_PER_S / hz; // exact: the rates are powers of two
  }

  /** Raises the flags of the events in (evalNs, now] (datasheet "Interrupts"). */
  #advance(now: number): void {
    const s = this.#s;
    const from = s.evalNs;
    if (!(now > from)) return;
    s.evalNs = now;
    if (!this.#dividerRunning()) return;
    // Register C: PF, AF and UF are set whatever the enable bits say.
    const period = this.#periodNs();
    if (period > 0) {
      if (Math.floor((now - s.phaseNs) / period) > Math.floor((from - s.phaseNs) / period)) {
        s.flags |= REG_C_PF;
      }
    }
    if (s.latched) return; // no updates: SET = 1 or an invalid time
    const k0 = Math.floor((from - s.phaseNs) / NS_PER_S);
    const k1 = Math.floor((now - s.phaseNs) / NS_PER_S);
    if (k1 <= k0) return;
    s.flags |= REG_C_UF;
    if (s.flags & REG_C_AF) return;
    // The alarm fires at an update whose new time matches the three alarm
    // bytes; a day holds every hh:mm:ss, so looking at the last day is enough.
    for (let k = Math.max(k0 + 1, k1 - SECONDS_PER_DAY + 1); k <= k1; k++) {
      if (this.#alarmMatches(s.base + k)) {
        s.flags |= REG_C_AF;
        break;
      }
    }
  }

  #alarmMatches(t: number): boolean {
    const s = this.#s;
    const sod = t - Math.floor(t / SECONDS_PER_DAY) * SECONDS_PER_DAY;
    return alarmMatch(s.cmos[RTC_SECONDS_ALARM], encode(sod % 60, s.regB)) &&
      alarmMatch(s.cmos[RTC_MINUTES_ALARM], encode(Math.floor(sod / 60) % 60, s.regB)) &&
      alarmMatch(s.cmos[RTC_HOURS_ALARM], hourByte(Math.floor(sod / 3600), s.regB));
  }

  /** IRQF: some flag set together with its enable (Register C). */
  #irqf(): boolean {
    const s = this.#s;
    return ((s.flags & REG_C_PF) !== 0 && (s.regB & REG_B_PIE) !== 0) ||
      ((s.flags & REG_C_AF) !== 0 && (s.regB & REG_B_AIE) !== 0) ||
      ((s.flags & REG_C_UF) !== 0 && (s.regB & REG_B_UIE) !== 0);
  }

  /**
   * Connects or disconnects the IRQ output. While the HPET's LegacyReplacement
   * is on, its timer 1 drives IRQ 8 and the RTC's interrupt is disconnected
   * (IA-PC HPET 1.0a, 2.3.5); the RTC itself runs on and sets its flags.
   */
  setIrqConnected(connected: boolean): void {
    this.#s.disconnected = !connected;
    const now = this.#clock.now();
    this.#advance(now);
    this.#finish(now);
  }

  /** Drives the IRQ line from IRQF and arms the timer for the next event. */
  #finish(now: number): void {
    const s = this.#s;
    s.irqLevel = driveLine(this.#irq, s.irqLevel, !s.disconnected && this.#irqf());
    this.#schedule(now);
  }

  /** Arms the timer for the next event that can raise IRQF (none while IRQF is set: the line is high already). */
  #schedule(now: number): void {
    const s = this.#s;
    let next = Infinity;
    if (!s.irqLevel && this.#dividerRunning()) {
      const period = this.#periodNs();
      if (s.regB & REG_B_PIE && period > 0) next = nextEdge(s.phaseNs, period, now);
      if (s.regB & (REG_B_UIE | REG_B_AIE) && !s.latched) {
        next = Math.min(next, nextEdge(s.phaseNs, NS_PER_S, now));
      }
    }
    if (next === Infinity) {
      if (s.deadline !== DEADLINE_NONE) {
        s.deadline = DEADLINE_NONE;
        this.#timer.cancel();
      }
    } else if (next !== s.deadline) {
      s.deadline = next;
      this.#timer.arm(next);
    }
  }
}

/**
 * The High Precision Event Timer (IA-PC HPET Specification 1.0a): one timer
 * block of 8 comparators over a 32-bit main counter at 16.777216 MHz, as
 * bhyve's vhpet has it (sys/amd64/vmm/io/vhpet.c), plus LegacyReplacement
 * routing. Section numbers below refer to the HPET specification.
 *
 * The counter is not stored: while ENABLE_CNF is 1 it is
 * `(base + ticks(clock - start)) mod 2^32`, computed with exact integer
 * arithmetic (2^24 / 10^9 = 32768 / 1953125). Each comparator's next match
 * is kept as an absolute tick count since `start`; every access and every
 * timer callback first processes the matches that happened since the last
 * one, from the clock alone, so callbacks may be late, early, repeated or
 * missing without the model losing a period. A timer's `Timer` is armed for
 * the exact nanosecond of its next match when that match would interrupt.
 *
 * Interrupt delivery of timer n, in this order:
 * 1. FSB_EN_CNF: a message `msi.send(FSB address, FSB value)`; always edge.
 *    (Intel PCH datasheet, "HPET interrupt mapping": LegacyReplacement does
 *    not preclude delivery of IRQ0/IRQ8 by direct FSB messages.)
 * 2. LEG_RT_CNF and n = 0: GSI 0 (the platform wires it to PIC IRQ 0 and
 *    IOAPIC pin 2); LEG_RT_CNF and n = 1: GSI 8 (2.3.5, LEG_RT_CNF).
 * 3. Otherwise GSI = INT_ROUTE_CNF, only if that pin is set in INT_ROUTE_CAP
 *    (IOAPIC pins 20-23). Another route is stored as written but delivers
 *    nothing: the spec leaves it undefined, and no wire exists for it.
 * Edge-triggered timers pulse their line. Level-triggered timers set their
 * GINTR_STA bit; the line is high while some level timer routed to it has
 * its status bit set, INT_ENB_CNF set and the block enabled, so writing 1 to
 * the status bit, disabling the timer or the block, or moving the route
 * drops the line (re-evaluated after every register write). Lines shared by
 * several level timers are wired-OR.
 *
 * LegacyReplacement: the spec disconnects the 8254 and RTC interrupts while
 * LEG_RT_CNF is set (2.3.5). The model reports the change through
 * `legacyReplacement`; the platform then disconnects the RTC's IRQ 8 and
 * tells KVM's in-kernel PIT (KVM_PIT_FLAGS_HPET_LEGACY).
 *
 * All state lives in {@linkcode HpetState}; the VM's device lock serializes
 * guest accesses and `onTimer`.
 *
 * @module
 */
import type {
  AccessSize,
  BusDevice,
  Clock,
  IrqLine,
  MsiSink,
  Timer,
  TimerOwner,
} from "./device.ts";
import { defineState, type StateOf } from "./state.ts";

// ---------------------------------------------------------------------------
// Block parameters.

/** Comparators in the block (2.3.1: 3 to 32). */
export const HPET_TIMERS = 8;
/** Bytes of MMIO the block decodes (2.3.1: 1 KiB). */
export const HPET_WINDOW = 0x400;
/** The main counter frequency in Hz: 2^24, exactly (bhyve's HPET_FREQ). */
export const HPET_FREQUENCY_HZ = 16_777_216;
/**
 * The shortest period a periodic timer runs at, in ticks (7.6 us): the
 * "minimum clock tick" the ACPI HPET table advertises (lib/firmware/platform.ts).
 */
export const HPET_MIN_PERIOD_TICKS = 0x80;
/** COUNTER_CLK_PERIOD: the tick period in femtoseconds, rounded down (2.3.4). */
export const HPET_CLK_PERIOD_FS = Math.floor(1e15 / HPET_FREQUENCY_HZ);
/** Vendor ID in GCAP_ID (Intel). */
export const HPET_VENDOR_ID = 0x8086;
/** Revision ID in GCAP_ID (must not be 0). */
export const HPET_REVISION = 1;
/** #routeOf: the timer delivers by FSB message (TN_FSB_EN). */
const ROUTE_FSB = -1;
/** #routeOf: the timer's route reaches no wire (INT_ROUTE_CNF outside INT_ROUTE_CAP). */
const ROUTE_NONE = -2;
/** `deadline` of a disarmed timer. */
const DEADLINE_NONE = -1;
/** `deadline` after a callback: the timer may or may not still be armed. */
const DEADLINE_UNKNOWN = -2;
/** Counter modulus: the main counter and the comparators are 32 bits. */
const COUNTER_MOD = 2 ** 32;

// ns -> ticks is ns * 2^24 / 10^9 = ns * 32768 / 1953125, in lowest terms.
const TICKS_NUM = 32768;
const NS_DEN = 1953125;

// ---------------------------------------------------------------------------
// Register offsets (2.3.1, Table 2 "Memory-mapped register space").

/** General Capabilities and ID register (64-bit, read-only). */
export const HPET_GCAP_ID = 0x000;
/** General Configuration register. */
export const HPET_GEN_CONF = 0x010;
/** General Interrupt Status register. */
export const HPET_GINTR_STA = 0x020;
/** Main Counter Value register. */
export const HPET_MAIN_CNT = 0x0f0;
/** Timer n's registers start at HPET_TIMER_BASE + HPET_TIMER_STRIDE * n. */
export const HPET_TIMER_BASE = 0x100;
/** Spacing of the timers' register blocks. */
export const HPET_TIMER_STRIDE = 0x20;
/** Timer register: Configuration and Capability (offset in the timer's block). */
export const HPET_TN_CONF_CAP = 0x00;
/** Timer register: Comparator Value. */
export const HPET_TN_COMPARATOR = 0x08;
/** Timer register: FSB Interrupt Route (value in 31:0, address in 63:32). */
export const HPET_TN_FSB_ROUTE = 0x10;

// GCAP_ID low dword (2.3.4).
/** GCAP_ID: REV_ID (7:0). */
export const GCAP_REV_ID_MASK = 0xff;
/** GCAP_ID: NUM_TIM_CAP (12:8): the number of the last timer. */
export const GCAP_NUM_TIM_SHIFT = 8;
/** GCAP_ID: COUNT_SIZE_CAP (13): 1 = 64-bit counter; 0 here. */
export const GCAP_COUNT_SIZE_CAP = 1 << 13;
/** GCAP_ID: LEG_RT_CAP (15): LegacyReplacement routing supported. */
export const GCAP_LEG_RT_CAP = 1 << 15;
/** GCAP_ID: VENDOR_ID (31:16). */
export const GCAP_VENDOR_ID_SHIFT = 16;

// GEN_CONF (2.3.5).
/** GEN_CONF: ENABLE_CNF: the main counter runs and timers may interrupt. */
export const GEN_CONF_ENABLE = 1 << 0;
/** GEN_CONF: LEG_RT_CNF: LegacyReplacement routing of timers 0 and 1. */
export const GEN_CONF_LEG_RT = 1 << 1;
/** GEN_CONF: the implemented bits (the rest are reserved, read 0). */
export const GEN_CONF_WRITABLE = GEN_CONF_ENABLE | GEN_CONF_LEG_RT;

// Tn_CONF_CAP low dword (2.3.8).
/** Tn_CONF: INT_TYPE_CNF: 0 = edge, 1 = level. */
export const TN_INT_TYPE_LEVEL = 1 << 1;
/** Tn_CONF: INT_ENB_CNF: the timer may interrupt. */
export const TN_INT_ENB = 1 << 2;
/** Tn_CONF: TYPE_CNF: periodic mode. */
export const TN_TYPE_PERIODIC = 1 << 3;
/** Tn_CONF: PER_INT_CAP (read-only 1): periodic mode supported. */
export const TN_PER_INT_CAP = 1 << 4;
/** Tn_CONF: SIZE_CAP (read-only 0): a 32-bit comparator. */
export const TN_SIZE_CAP = 1 << 5;
/** Tn_CONF: VAL_SET_CNF: the next comparator write sets the accumulator (self-clearing). */
export const TN_VAL_SET = 1 << 6;
/** Tn_CONF: 32MODE_CNF: force a 64-bit timer to 32 bits; read-only 0 on 32-bit timers (2.3.8). */
export const TN_32MODE = 1 << 8;
/** Tn_CONF: INT_ROUTE_CNF field shift (13:9). */
export const TN_INT_ROUTE_SHIFT = 9;
/** Tn_CONF: INT_ROUTE_CNF field mask. */
export const TN_INT_ROUTE_MASK = 0x1f << TN_INT_ROUTE_SHIFT;
/** Tn_CONF: FSB_EN_CNF: deliver by FSB message. */
export const TN_FSB_EN = 1 << 14;
/** Tn_CONF: FSB_INT_DEL_CAP (read-only 1): FSB delivery supported. */
export const TN_FSB_INT_DEL_CAP = 1 << 15;
/** Tn_CONF: INT_ROUTE_CAP (upper dword): IOAPIC pins 20-23 (bhyve: the top 4 pins). */
export const TN_INT_ROUTE_CAP = 0x00f00000;
/** Tn_CONF: the read/write bits of the low dword. */
export const TN_WRITABLE = TN_INT_TYPE_LEVEL | TN_INT_ENB | TN_TYPE_PERIODIC | TN_VAL_SET |
  TN_INT_ROUTE_MASK | TN_FSB_EN;
/** Tn_CONF: the read-only capability bits of the low dword. */
export const TN_CAPS = TN_PER_INT_CAP | TN_FSB_INT_DEL_CAP;

/** GSI of timer 0 in LegacyReplacement mode (IRQ0; IOAPIC pin 2 by the platform's wiring). */
export const HPET_LEGACY_GSI_TIMER0 = 0;
/** GSI of timer 1 in LegacyReplacement mode (IRQ8). */
export const HPET_LEGACY_GSI_TIMER1 = 8;

/**
 * Every GSI the block can drive, in the order the platform must take its
 * lines (the order fixes each line's wired-OR source bit, so every thread
 * uses this one list): the two LegacyReplacement GSIs (2.3.5), then the
 * IOAPIC pins set in INT_ROUTE_CAP (2.3.8), lowest first.
 */
export const HPET_GSIS: readonly number[] = Object.freeze([
  HPET_LEGACY_GSI_TIMER0,
  HPET_LEGACY_GSI_TIMER1,
  ...Array.from({ length: 32 }, (_, pin) => pin).filter((pin) => (TN_INT_ROUTE_CAP >>> pin) & 1),
]);

/** The GCAP_ID register (2.3.4) as a 64-bit value. */
export const HPET_GCAP_ID_VALUE: bigint = (BigInt(HPET_CLK_PERIOD_FS) << 32n) |
  BigInt(
    ((HPET_VENDOR_ID << GCAP_VENDOR_ID_SHIFT) | GCAP_LEG_RT_CAP |
      ((HPET_TIMERS - 1) << GCAP_NUM_TIM_SHIFT) | HPET_REVISION) >>> 0,
  );

/**
 * Whether GEN_CONF `config` has LegacyReplacement in effect: LEG_RT_CNF with
 * ENABLE_CNF (2.3.5), the condition under which the 8254 and RTC interrupts
 * are disconnected.
 */
function legacyReplacementOn(config: number): boolean {
  return (config & (GEN_CONF_ENABLE | GEN_CONF_LEG_RT)) === (GEN_CONF_ENABLE | GEN_CONF_LEG_RT);
}

/** Counter ticks in `ns` whole nanoseconds: floor(ns * 2^24 / 10^9), exactly. */
export function ticksIn(ns: number): number {
  ns = Math.floor(ns);
  const q = Math.floor(ns / NS_DEN);
  const r = ns - q * NS_DEN;
  return q * TICKS_NUM + Math.floor((r * TICKS_NUM) / NS_DEN);
}

/** The first whole nanosecond at which `ticks` ticks have elapsed: ceil(ticks * 10^9 / 2^24). */
export function nsForTicks(ticks: number): number {
  const q = Math.floor(ticks / TICKS_NUM);
  const r = ticks - q * TICKS_NUM;
  return q * NS_DEN + Math.ceil((r * NS_DEN) / TICKS_NUM);
}

/** {@linkcode HPET_MIN_PERIOD_TICKS} in nanoseconds: the soonest a timer is re-armed. */
const MIN_PERIOD_NS = nsForTicks(HPET_MIN_PERIOD_TICKS);

/** Register state of the HPET (snapshot format; version bumps with the fields). */
export const HpetState = defineState("hpet", 1, {
  /** GEN_CONF. */
  config: "u32",
  /** GINTR_STA. */
  isr: "u32",
  /** The counter value at `startNs`; the value itself while halted. */
  counterBase: "f64",
  /** Clock (whole ns) at which the counter last started (or was written while running). */
  startNs: "f64",
  /** Tn_CONF low dwords (read/write and capability bits). */
  conf: ["u32", HPET_TIMERS],
  /** Tn_COMPARATOR (the accumulator in periodic mode). */
  comparator: ["u32", HPET_TIMERS],
  /** The increment of a periodic timer: the last value written to the comparator. */
  period: ["u32", HPET_TIMERS],
  /** Tn_FSB_ROUTE 31:0 (FSB_INT_VAL). */
  fsbValue: ["u32", HPET_TIMERS],
  /** Tn_FSB_ROUTE 63:32 (FSB_INT_ADDR). */
  fsbAddress: ["u32", HPET_TIMERS],
  /** Tick (since `startNs`) of each timer's next unprocessed match; valid while the counter runs. */
  nextMatch: ["f64", HPET_TIMERS],
  /** Armed deadline of each timer (ns); -1 when disarmed, -2 when unknown (after a callback). */
  deadline: ["f64", HPET_TIMERS],
  /** GSIs (bit n = GSI n) this block drives high. */
  gsiLevel: "u32",
});

/** A bound {@linkcode HpetState}. */
export type HpetRegisters = StateOf<typeof HpetState.fields>;

/** What the HPET is given. */
export interface HpetDeps {
  /** The VM's monotonic clock (ns). */
  clock: Clock;
  /** One timer per comparator (HPET_TIMERS of them). */
  timers: readonly Timer[];
  /** The interrupt line of GSI `gsi`. */
  irq: (gsi: number) => IrqLine;
  /** FSB (MSI) delivery. */
  msi: MsiSink;
  /**
   * LegacyReplacement turned on or off (ENABLE_CNF and LEG_RT_CNF both set;
   * 2.3.5): while it is on the platform disconnects the 8254's IRQ 0 and the
   * RTC's IRQ 8, whose pins the HPET's timers 0 and 1 then drive.
   */
  legacyReplacement?: (on: boolean) => void;
}

/** The HPET block. */
export class Hpet implements BusDevice, TimerOwner {
  readonly #clock: Clock;
  readonly #timers: readonly Timer[];
  readonly #irq: (gsi: number) => IrqLine;
  readonly #msi: MsiSink;
  readonly #legacy: ((on: boolean) => void) | undefined;
  readonly #lines = new Map<number, IrqLine>();
  readonly #s: HpetRegisters;

  /**
   * Builds the HPET over `state`. Without `state`, a fresh one is created in
   * its power-on state; with one, it is used as it is.
   */
  constructor(deps: HpetDeps, state?: HpetRegisters) {
    if (deps.timers.length < HPET_TIMERS) throw new Error(`hpet: needs ${HPET_TIMERS} timers`);
    this.#clock = deps.clock;
    this.#timers = deps.timers;
    this.#irq = deps.irq;
    this.#msi = deps.msi;
    this.#legacy = deps.legacyReplacement;
    if (state) {
      this.#s = state;
    } else {
      this.#s = HpetState.create();
      this.reset();
    }
  }

  /** The bound register state. */
  get state(): HpetRegisters {
    return this.#s;
  }

  /**
   * Power-on state (2.3: register defaults): counter 0 and halted, every
   * timer one-shot, edge, disabled, route 0, comparators all ones; status
   * clear, lines low, timers cancelled.
   */
  reset(): void {
    const s = this.#s;
    const gsiLevel = s.gsiLevel;
    const wasLegacy = legacyReplacementOn(s.config);
    HpetState.clear(s);
    if (wasLegacy) this.#legacy?.(false);
    s.gsiLevel = gsiLevel;
    for (let n = 0; n < HPET_TIMERS; n++) {
      s.conf[n] = TN_CAPS;
      s.comparator[n] = 0xffffffff;
      s.deadline[n] = DEADLINE_NONE;
      this.#timers[n].cancel();
    }
    this.#finish(this.#clock.now());
  }

  /** The main counter now. */
  counter(): number {
    return this.#counterAt(this.#clock.now());
  }

  /** A 32-bit read (1- and 2-byte reads return the addressed bytes of the dword). */
  read(offset: number, size: AccessSize): number {
    if (size === 8) return Number(this.read64(offset)); // exact up to 2^53; the bus uses read64
    const now = this.#clock.now();
    this.#advance(now);
    const dword = this.#readDword(offset & ~3, now);
    this.#finish(now);
    if (size === 4) return dword;
    const shift = (offset & 3) * 8;
    return (dword >>> shift) & (size === 1 ? 0xff : 0xffff);
  }

  /** A 32-bit write. The spec allows only 32- and 64-bit accesses (2.3): narrower writes are ignored. */
  write(offset: number, size: AccessSize, value: number): void {
    if (size === 8) {
      this.write64(offset, BigInt(Math.floor(value)) & 0xffffffffffffffffn);
      return;
    }
    if (size !== 4 || offset & 3) return;
    const now = this.#clock.now();
    this.#advance(now);
    this.#writeDword(offset, value >>> 0, now);
    this.#advance(now); // a write may make a match due at once (comparator = counter)
    this.#finish(now);
  }

  /** A 64-bit read: the two dwords at the same instant. */
  read64(offset: number): bigint {
    const now = this.#clock.now();
    this.#advance(now);
    const base = offset & ~7;
    const lo = this.#readDword(base, now);
    const hi = this.#readDword(base + 4, now);
    this.#finish(now);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** A 64-bit write: one register write (the upper dwords of the counter and comparators are ignored). */
  write64(offset: number, value: bigint): void {
    if (offset & 7) return;
    const now = this.#clock.now();
    this.#advance(now);
    this.#writeDword(offset, Number(value & 0xffffffffn), now);
    this.#writeDword(offset + 4, Number((value >> 32n) & 0xffffffffn), now);
    this.#advance(now);
    this.#finish(now);
  }

  /** Timer `id` expired: process the matches due by now and re-arm. */
  onTimer(id: number): void {
    // The timer is one-shot and has fired (or the callback is spurious):
    // either way its state is unknown now, so #schedule arms or cancels it.
    if (id >= 0 && id < HPET_TIMERS) this.#s.deadline[id] = DEADLINE_UNKNOWN;
    const now = this.#clock.now();
    this.#advance(now);
    this.#finish(now);
  }

  // -------------------------------------------------------------------------

  #enabled(): boolean {
    return (this.#s.config & GEN_CONF_ENABLE) !== 0;
  }

  /** Ticks elapsed since `startNs` at `now` (meaningful while enabled). */
  #ticksAt(now: number): number {
    // max(0, ...): a clock read on another thread may lag the start by a hair.
    return ticksIn(Math.max(0, Math.floor(now) - this.#s.startNs));
  }

  #counterAt(now: number): number {
    const s = this.#s;
    if (!this.#enabled()) return s.counterBase;
    return (s.counterBase + this.#ticksAt(now)) % COUNTER_MOD;
  }

  /** Sets timer n's next match to the first tick >= now at which the counter equals its comparator. */
  #aimAt(n: number, now: number): void {
    const s = this.#s;
    const a = this.#ticksAt(now);
    const v = (s.counterBase + a) % COUNTER_MOD;
    // A comparator equal to the counter matches at once (as bhyve does).
    s.nextMatch[n] = a + (((s.comparator[n] - v) % COUNTER_MOD) + COUNTER_MOD) % COUNTER_MOD;
  }

  /** Where timer n's interrupt goes: a GSI (>= 0), {@linkcode ROUTE_FSB} or {@linkcode ROUTE_NONE}. */
  #routeOf(n: number): number {
    const s = this.#s;
    const conf = s.conf[n];
    if (conf & TN_FSB_EN) return ROUTE_FSB;
    if (s.config & GEN_CONF_LEG_RT) {
      // 2.3.5 LEG_RT_CNF: timer 0 -> IRQ0 (IOAPIC pin 2), timer 1 -> IRQ8.
      if (n === 0) return HPET_LEGACY_GSI_TIMER0;
      if (n === 1) return HPET_LEGACY_GSI_TIMER1;
    }
    const pin = (conf & TN_INT_ROUTE_MASK) >>> TN_INT_ROUTE_SHIFT;
    // 2.3.8 INT_ROUTE_CNF: only the pins set in INT_ROUTE_CAP are wired.
    return (TN_INT_ROUTE_CAP >>> pin) & 1 ? pin : ROUTE_NONE;
  }

  /** Whether timer n interrupts as a level (status bit + held line). */
  #levelTriggered(n: number): boolean {
    const conf = this.#s.conf[n];
    // FSB messages are edge events whatever INT_TYPE_CNF says.
    return (conf & TN_INT_TYPE_LEVEL) !== 0 && (conf & TN_FSB_EN) === 0;
  }

  /** Processes every timer's matches in (last processed, now]. */
  #advance(now: number): void {
    const s = this.#s;
    if (!this.#enabled()) return;
    const a = this.#ticksAt(now);
    for (let n = 0; n < HPET_TIMERS; n++) {
      const next = s.nextMatch[n];
      if (next > a) continue;
      const periodic = (s.conf[n] & TN_TYPE_PERIODIC) !== 0 && s.period[n] !== 0;
      // 2.3.9.2.2: a periodic timer's comparator grows by the period at each
      // match; several missed periods are accounted at once, so that the
      // comparator is the next match in the future. A one-shot comparator
      // stays put and matches again when the 32-bit counter comes round
      // (2.3.9.2.1; no 64-bit counter here to wrap differently).
      const step = periodic ? s.period[n] : COUNTER_MOD;
      const k = Math.floor((a - next) / step) + 1;
      s.nextMatch[n] = next + k * step;
      if (periodic) s.comparator[n] = (s.comparator[n] + (k * step) % COUNTER_MOD) % COUNTER_MOD;
      this.#fire(n); // missed matches coalesce into one interrupt
    }
  }

  /** Timer n's comparator matched. */
  #fire(n: number): void {
    const s = this.#s;
    if (this.#levelTriggered(n)) {
      // 2.3.6 GINTR_STA: set by hardware for a level-triggered timer when
      // its interrupt is active; 2.3.8 INT_ENB_CNF: a disabled timer "will
      // still operate and generate appropriate status bits". The line
      // follows the status in #updateLines.
      s.isr |= 1 << n;
      return;
    }
    if (!(s.conf[n] & TN_INT_ENB)) return;
    const route = this.#routeOf(n);
    if (route === ROUTE_FSB) this.#msi.send(s.fsbAddress[n], s.fsbValue[n]);
    else if (route >= 0) this.#line(route).pulse();
  }

  #line(gsi: number): IrqLine {
    let line = this.#lines.get(gsi);
    if (!line) {
      line = this.#irq(gsi);
      this.#lines.set(gsi, line);
    }
    return line;
  }

  #readDword(offset: number, now: number): number {
    const s = this.#s;
    switch (offset) {
      case HPET_GCAP_ID:
        return Number(HPET_GCAP_ID_VALUE & 0xffffffffn);
      case HPET_GCAP_ID + 4:
        return Number(HPET_GCAP_ID_VALUE >> 32n);
      case HPET_GEN_CONF:
        return s.config;
      case HPET_GINTR_STA:
        return s.isr;
      case HPET_MAIN_CNT:
        return this.#counterAt(now);
    }
    // Timer n's block: HPET_TIMER_BASE + HPET_TIMER_STRIDE * n (2.3.1, Table 2).
    const rel = offset - HPET_TIMER_BASE;
    const n = Math.floor(rel / HPET_TIMER_STRIDE);
    if (rel >= 0 && n < HPET_TIMERS) {
      switch (rel % HPET_TIMER_STRIDE) {
        case HPET_TN_CONF_CAP:
          return s.conf[n];
        case HPET_TN_CONF_CAP + 4:
          return TN_INT_ROUTE_CAP;
        case HPET_TN_COMPARATOR:
          return s.comparator[n];
        case HPET_TN_FSB_ROUTE:
          return s.fsbValue[n];
        case HPET_TN_FSB_ROUTE + 4:
          return s.fsbAddress[n];
      }
    }
    // Reserved registers and the upper halves of 32-bit registers read 0.
    return 0;
  }

  #writeDword(offset: number, value: number, now: number): void {
    const s = this.#s;
    switch (offset) {
      case HPET_GEN_CONF:
        this.#writeConfig(value, now);
        return;
      case HPET_GINTR_STA:
        // 2.3.6: writing 1 clears a level-triggered timer's status bit.
        s.isr &= ~(value & ((1 << HPET_TIMERS) - 1));
        return;
      case HPET_MAIN_CNT:
        // 2.3.7: software should write the counter only while it is halted.
        // Written while running, it counts on from the new value at once
        // (bhyve's choice); the comparators' next matches follow.
        s.counterBase = value;
        if (this.#enabled()) this.#start(now);
        return;
    }
    const rel = offset - HPET_TIMER_BASE;
    const n = Math.floor(rel / HPET_TIMER_STRIDE);
    // GCAP_ID, reserved space and upper halves of 32-bit registers: read-only.
    if (rel < 0 || n >= HPET_TIMERS) return;
    switch (rel % HPET_TIMER_STRIDE) {
      case HPET_TN_CONF_CAP:
        this.#writeTimerConfig(n, value);
        return;
      case HPET_TN_COMPARATOR:
        this.#writeComparator(n, value, now);
        return;
      case HPET_TN_FSB_ROUTE:
        s.fsbValue[n] = value;
        return;
      case HPET_TN_FSB_ROUTE + 4:
        s.fsbAddress[n] = value;
        return;
    }
  }

  #writeConfig(value: number, now: number): void {
    const s = this.#s;
    const old = s.config;
    s.config = value & GEN_CONF_WRITABLE;
    const on = legacyReplacementOn(s.config);
    if (legacyReplacementOn(old) !== on) this.#legacy?.(on);
    if (!(old & GEN_CONF_ENABLE) && s.config & GEN_CONF_ENABLE) {
      this.#start(now);
    } else if (old & GEN_CONF_ENABLE && !(s.config & GEN_CONF_ENABLE)) {
      // 2.3.5 ENABLE_CNF = 0: the counter halts, keeping its value, and
      // no timer interrupts.
      s.counterBase = (s.counterBase + ticksIn(Math.floor(now) - s.startNs)) % COUNTER_MOD;
    }
  }

  /** (Re)starts counting from `counterBase` at `now`; each timer next matches its comparator. */
  #start(now: number): void {
    const s = this.#s;
    s.startNs = Math.floor(now);
    for (let n = 0; n < HPET_TIMERS; n++) this.#aimAt(n, now);
  }

  #writeTimerConfig(n: number, value: number): void {
    const s = this.#s;
    // Read-only bits keep their value: PER_INT_CAP, SIZE_CAP, FSB_INT_DEL_CAP,
    // and 32MODE_CNF (read-only 0 on a 32-bit timer, 2.3.8).
    s.conf[n] = (value & TN_WRITABLE) | TN_CAPS;
    // bhyve: a one-shot timer has no period; a later switch to periodic
    // needs a comparator write to set one.
    if (!(s.conf[n] & TN_TYPE_PERIODIC)) s.period[n] = 0;
  }

  #writeComparator(n: number, value: number, now: number): void {
    const s = this.#s;
    const conf = s.conf[n];
    if (conf & TN_TYPE_PERIODIC) {
      // 2.3.9.2.2: the comparator grows by "the last value written to
      // that register", so every write sets the period; with VAL_SET_CNF
      // the write also sets the accumulator (Tn_VAL_SET_CNF). This is the
      // behaviour of bhyve and QEMU, and suits both the single-write
      // (Intel) and the two-write (AMD 81xx) sequences guests use.
      s.period[n] = value;
      if (conf & TN_VAL_SET) {
        s.comparator[n] = value;
        if (this.#enabled()) this.#aimAt(n, now);
      }
    } else {
      s.comparator[n] = value;
      if (this.#enabled()) this.#aimAt(n, now);
    }
    // 2.3.8 VAL_SET_CNF: "automatically clears" after the comparator write.
    s.conf[n] &= ~TN_VAL_SET;
  }

  /** Drives the level lines and arms the timers. */
  #finish(now: number): void {
    this.#updateLines();
    this.#schedule(now);
  }

  /** Re-evaluates every GSI driven by a level-triggered timer (wired-OR). */
  #updateLines(): void {
    const s = this.#s;
    let want = 0;
    if (this.#enabled()) {
      for (let n = 0; n < HPET_TIMERS; n++) {
        if (!(s.isr & (1 << n)) || !(s.conf[n] & TN_INT_ENB) || !this.#levelTriggered(n)) continue;
        // A level timer is never FSB-routed (#levelTriggered), so route is a GSI or none.
        const route = this.#routeOf(n);
        if (route >= 0) want |= 1 << route;
      }
    }
    want >>>= 0;
    const changed = (want ^ s.gsiLevel) >>> 0;
    if (changed === 0) return;
    s.gsiLevel = want;
    for (let gsi = 0; gsi < 32; gsi++) {
      if (!((changed >>> gsi) & 1)) continue;
      if ((want >>> gsi) & 1) this.#line(gsi).assert();
      else this.#line(gsi).deassert();
    }
  }

  /**
   * Arms each timer for its next match when that match would interrupt;
   * cancels it otherwise. A periodic timer with a period below the minimum
   * clock tick (IA-PC HPET 1.0a, 3.2.4: interrupts may then be lost) is
   * never armed sooner than a minimum period after `now`: the matches in
   * between coalesce into one interrupt while the comparator still advances
   * by the exact period, so a guest cannot make the timer thread spin.
   */
  #schedule(now: number): void {
    const s = this.#s;
    const enabled = this.#enabled();
    for (let n = 0; n < HPET_TIMERS; n++) {
      let deadline = DEADLINE_NONE;
      const conf = s.conf[n];
      const useful = enabled && (conf & TN_INT_ENB) !== 0 && this.#routeOf(n) !== ROUTE_NONE &&
        // A level timer whose status is still set changes nothing at its
        // next match (the line is high already); the match is processed
        // lazily at the next access.
        !(this.#levelTriggered(n) && s.isr & (1 << n));
      if (useful) {
        deadline = s.startNs + nsForTicks(s.nextMatch[n]);
        const short = (conf & TN_TYPE_PERIODIC) !== 0 && s.period[n] !== 0 &&
          s.period[n] < HPET_MIN_PERIOD_TICKS;
        if (short) deadline = Math.max(deadline, now + MIN_PERIOD_NS);
      }
      if (deadline === s.deadline[n]) continue;
      s.deadline[n] = deadline;
      if (deadline === DEADLINE_NONE) this.#timers[n].cancel();
      else this.#timers[n].arm(deadline);
    }
  }
}

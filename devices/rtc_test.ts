import assert from "node:assert/strict";
import { FakeClock, FakeIrq, FakeTimer } from "./_fakes.ts";
import {
  CMOS_BASE_MEMORY,
  CMOS_CHECKSUM,
  CMOS_EQUIPMENT,
  CMOS_EXT_MEMORY,
  CMOS_EXT_MEMORY_POST,
  CMOS_FLOPPY_TYPES,
  CMOS_MEMORY_ABOVE_16M,
  CMOS_MEMORY_ABOVE_4G,
  nextEdge,
  periodicRateHz,
  REG_A_UIP,
  REG_B_24H,
  REG_B_AIE,
  REG_B_DM,
  REG_B_PIE,
  REG_B_SET,
  REG_B_SQWE,
  REG_B_UIE,
  REG_C_AF,
  REG_C_IRQF,
  REG_C_PF,
  REG_C_UF,
  REG_D_VRT,
  Rtc,
  RTC_CENTURY,
  RTC_DAY_OF_MONTH,
  RTC_DAY_OF_WEEK,
  RTC_HOURS,
  RTC_HOURS_ALARM,
  RTC_MINUTES,
  RTC_MINUTES_ALARM,
  RTC_MONTH,
  RTC_REG_A,
  RTC_REG_B,
  RTC_REG_C,
  RTC_REG_D,
  RTC_SECONDS,
  RTC_SECONDS_ALARM,
  RTC_YEAR,
  type RtcMemory,
  RtcState,
} from "./rtc.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Clock value at power-on (not the clock's origin). */
const C0 = 7e9;
const S = 1e9;
/** Host time at power-on: Thursday 2024-02-29 13:45:30.25 UTC. */
const HOST = Date.UTC(2024, 1, 29, 13, 45, 30) / 1000 + 0.25;
/** The first update after power-on: the fraction .25 s has passed. */
const U1 = C0 + 0.75 * S;

function setup(
  opts: { utcOffsetSeconds?: number; memory?: RtcMemory; host?: number } = {},
) {
  const clock = new FakeClock();
  clock.t = C0;
  const irq = new FakeIrq();
  const timer = new FakeTimer();
  const memory = opts.memory ?? { lowmemEnd: 256 * MiB, highmemSize: 0 };
  const rtc = new Rtc({
    irq,
    clock,
    timers: [timer],
    hostTime: () => opts.host ?? HOST,
    utcOffsetSeconds: opts.utcOffsetSeconds ?? 0,
    memory,
  });
  const rd = (reg: number) => {
    rtc.write(0, 1, reg);
    return rtc.read(1, 1);
  };
  const wr = (reg: number, value: number) => {
    rtc.write(0, 1, reg);
    rtc.write(1, 1, value);
  };
  return { clock, irq, timer, rtc, rd, wr };
}

Deno.test("rtc: power-on registers and the time in BCD, 24-hour mode", () => {
  const { rd } = setup();
  assert.equal(rd(RTC_REG_A), 0x26);
  assert.equal(rd(RTC_REG_B), 0x02);
  assert.equal(rd(RTC_REG_C), 0);
  assert.equal(rd(RTC_REG_D), REG_D_VRT);
  assert.equal(rd(RTC_SECONDS), 0x30);
  assert.equal(rd(RTC_MINUTES), 0x45);
  assert.equal(rd(RTC_HOURS), 0x13);
  assert.equal(rd(RTC_DAY_OF_WEEK), 5); // Thursday, Sunday = 1
  assert.equal(rd(RTC_DAY_OF_MONTH), 0x29);
  assert.equal(rd(RTC_MONTH), 0x02);
  assert.equal(rd(RTC_YEAR), 0x24);
  assert.equal(rd(RTC_CENTURY), 0x20);
});

Deno.test("rtc: the time counts from the host time, updates at the second boundary", () => {
  const { clock, rd, rtc } = setup();
  clock.t = U1 - 1;
  assert.equal(rd(RTC_SECONDS), 0x30);
  clock.t = U1;
  assert.equal(rd(RTC_SECONDS), 0x31);
  clock.t = U1 + 29 * S;
  assert.equal(rd(RTC_SECONDS), 0x00);
  assert.equal(rd(RTC_MINUTES), 0x46);
  assert.equal(rtc.getTime(), Math.floor(HOST) + 30);
});

Deno.test("rtc: binary mode and 12-hour mode (bit 7 = PM)", () => {
  const { rd, wr, rtc } = setup();
  wr(RTC_REG_B, REG_B_24H | REG_B_DM);
  assert.equal(rd(RTC_SECONDS), 30);
  assert.equal(rd(RTC_MINUTES), 45);
  assert.equal(rd(RTC_HOURS), 13);
  assert.equal(rd(RTC_YEAR), 24);
  assert.equal(rd(RTC_CENTURY), 20);
  assert.equal(rd(RTC_MONTH), 2);
  wr(RTC_REG_B, 0); // 12-hour, BCD
  assert.equal(rd(RTC_HOURS), 0x81); // 1 PM
  assert.equal(rd(RTC_MINUTES), 0x45);
  wr(RTC_REG_B, REG_B_DM); // 12-hour, binary
  assert.equal(rd(RTC_HOURS), 0x81);
  rtc.setTime(Date.UTC(2024, 0, 1, 0, 5, 0) / 1000); // midnight hour: 12 AM
  assert.equal(rd(RTC_HOURS), 12);
  rtc.setTime(Date.UTC(2024, 0, 1, 12, 5, 0) / 1000); // noon: 12 PM
  assert.equal(rd(RTC_HOURS), 0x80 | 12);
  wr(RTC_REG_B, 0);
  assert.equal(rd(RTC_HOURS), 0x92);
  rtc.setTime(Date.UTC(2024, 0, 1, 11, 5, 0) / 1000);
  assert.equal(rd(RTC_HOURS), 0x11);
});

Deno.test("rtc: the guest sets the date and time with SET and it runs on from there", () => {
  const { clock, rd, wr, rtc } = setup();
  wr(RTC_REG_B, REG_B_SET | REG_B_24H | REG_B_UIE);
  assert.equal(rd(RTC_REG_B), REG_B_SET | REG_B_24H, "SET clears UIE");
  // Frozen while SET = 1, and UIP stays 0.
  clock.t = C0 + 5 * S - 100_000;
  assert.equal(rd(RTC_SECONDS), 0x30);
  assert.equal(rd(RTC_REG_A) & REG_A_UIP, 0);
  wr(RTC_SECONDS, 0x58);
  wr(RTC_MINUTES, 0x59);
  wr(RTC_HOURS, 0x23);
  wr(RTC_DAY_OF_MONTH, 0x31);
  wr(RTC_MONTH, 0x12);
  wr(RTC_YEAR, 0x25);
  wr(RTC_CENTURY, 0x20);
  assert.equal(rd(RTC_SECONDS), 0x58, "the written bytes read back while SET = 1");
  wr(RTC_REG_B, REG_B_24H);
  const set = Date.UTC(2025, 11, 31, 23, 59, 58) / 1000;
  assert.equal(rtc.getTime(), set);
  assert.equal(rd(RTC_DAY_OF_WEEK), 4); // 2025-12-31 is a Wednesday
  // The divider kept its phase: updates still come at C0 + 0.75 s + k s.
  const next = U1 + 5 * S;
  clock.t = next - 1;
  assert.equal(rd(RTC_SECONDS), 0x58);
  clock.t = next;
  assert.equal(rd(RTC_SECONDS), 0x59);
  clock.t = next + S;
  assert.equal(rd(RTC_SECONDS), 0x00);
  assert.equal(rd(RTC_MINUTES), 0x00);
  assert.equal(rd(RTC_HOURS), 0x00);
  assert.equal(rd(RTC_DAY_OF_MONTH), 0x01);
  assert.equal(rd(RTC_MONTH), 0x01);
  assert.equal(rd(RTC_YEAR), 0x26);
  assert.equal(rtc.getTime(), set + 2);
});

Deno.test("rtc: time written while SET = 1 is lost time; a single field written with SET = 0 applies at once", () => {
  const { clock, rd, wr, rtc } = setup();
  wr(RTC_REG_B, REG_B_SET | REG_B_24H);
  clock.t = C0 + 10 * S;
  wr(RTC_REG_B, REG_B_24H);
  assert.equal(rtc.getTime(), Math.floor(HOST), "updates were inhibited for 10 s");
  wr(RTC_MINUTES, 0x10);
  assert.equal(rd(RTC_MINUTES), 0x10);
  assert.equal(rd(RTC_SECONDS), 0x30);
  assert.equal(rtc.getTime(), Date.UTC(2024, 1, 29, 13, 10, 30) / 1000);
});

Deno.test("rtc: an invalid date stops the clock until a valid one is written", () => {
  const { clock, rd, wr, rtc } = setup();
  wr(RTC_REG_B, REG_B_SET | REG_B_24H);
  wr(RTC_MONTH, 0x13);
  wr(RTC_REG_B, REG_B_24H);
  assert.ok(Number.isNaN(rtc.getTime()));
  clock.t = C0 + 3 * S;
  assert.equal(rd(RTC_MONTH), 0x13);
  assert.equal(rd(RTC_SECONDS), 0x30, "no updates");
  assert.equal(rd(RTC_REG_C) & REG_C_UF, 0);
  wr(RTC_MONTH, 0x03);
  assert.equal(rtc.getTime(), Date.UTC(2024, 2, 29, 13, 45, 30) / 1000);
  clock.t = U1 + 3 * S;
  assert.equal(rd(RTC_SECONDS), 0x31);
});

Deno.test("rtc: periodic interrupt at 1024 Hz and at 2 Hz", () => {
  const { clock, irq, timer, rd, wr, rtc } = setup();
  assert.equal(periodicRateHz(6), 1024);
  assert.equal(periodicRateHz(15), 2);
  assert.equal(periodicRateHz(1), 256);
  assert.equal(periodicRateHz(3), 8192);
  // The divider's phase: updates at C0 - 0.25 s + k s; 1024 Hz ticks every
  // 976562.5 ns from there, one of them exactly at C0.
  const phase = C0 - 0.25 * S;
  const p1024 = S / 1024;
  wr(RTC_REG_B, REG_B_24H | REG_B_PIE);
  const d1 = Math.ceil(phase + 257 * p1024);
  assert.equal(timer.armed, d1);
  clock.t = d1 - 1;
  assert.equal(rd(RTC_REG_C), 0);
  assert.equal(irq.level, false);
  clock.t = d1;
  rtc.onTimer(0);
  assert.deepEqual(irq.calls, ["assert"]);
  assert.equal(timer.armed, null, "no timer while IRQF is set");
  assert.equal(rd(RTC_REG_C), REG_C_IRQF | REG_C_PF);
  assert.deepEqual(irq.calls, ["assert", "deassert"]);
  assert.equal(timer.armed, Math.ceil(phase + 258 * p1024));
  // 2 Hz: ticks at phase + k * 500 ms, i.e. C0 + 0.25 s, C0 + 0.75 s, ...
  wr(RTC_REG_A, 0x2f);
  assert.equal(timer.armed, C0 + 0.25 * S);
  clock.t = C0 + 0.25 * S - 1;
  assert.equal(rd(RTC_REG_C), 0);
  clock.t = C0 + 0.25 * S;
  rtc.onTimer(0);
  assert.equal(irq.level, true);
  assert.equal(rd(RTC_REG_C), REG_C_IRQF | REG_C_PF);
  assert.equal(timer.armed, C0 + 0.75 * S);
  // A late callback: flags come from the clock, one interrupt.
  clock.t = C0 + 2.1 * S;
  rtc.onTimer(0);
  assert.equal(rd(RTC_REG_C), REG_C_IRQF | REG_C_PF | REG_C_UF);
  assert.equal(timer.armed, C0 + 2.25 * S);
  // PF is set even with PIE = 0, without IRQF and without an interrupt.
  wr(RTC_REG_B, REG_B_24H);
  assert.equal(timer.armed, null);
  const before = irq.calls.length;
  clock.t = C0 + 3 * S;
  assert.equal(rd(RTC_REG_C), REG_C_PF | REG_C_UF);
  assert.equal(irq.calls.length, before);
  // RS = 0: no periodic flag.
  wr(RTC_REG_A, 0x20);
  clock.t = C0 + 3.4 * S;
  assert.equal(rd(RTC_REG_C), 0);
});

Deno.test("rtc: update-ended interrupt once a second", () => {
  const { clock, irq, timer, rd, wr, rtc } = setup();
  wr(RTC_REG_A, 0x20); // RS = 0: no periodic flag in the way
  wr(RTC_REG_B, REG_B_24H | REG_B_UIE);
  assert.equal(timer.armed, U1);
  clock.t = U1;
  rtc.onTimer(0);
  assert.deepEqual(irq.calls, ["assert"]);
  assert.equal(rd(RTC_SECONDS), 0x31);
  assert.equal(rd(RTC_REG_C), REG_C_IRQF | REG_C_UF);
  assert.deepEqual(irq.calls, ["assert", "deassert"]);
  assert.equal(rd(RTC_REG_C), 0);
  assert.equal(timer.armed, U1 + S);
  // A spurious early callback changes nothing and keeps the deadline.
  clock.t = U1 + 0.5 * S;
  rtc.onTimer(0);
  assert.equal(irq.level, false);
  assert.equal(timer.armed, U1 + S);
  // The callback never runs: a read of C still sees the update (and the
  // line, which nobody raised, needs no glitch).
  clock.t = U1 + S;
  assert.equal(rd(RTC_REG_C), REG_C_IRQF | REG_C_UF);
  assert.deepEqual(irq.calls, ["assert", "deassert"]);
  // Several seconds late: one flag, one interrupt.
  clock.t = U1 + 5.5 * S;
  rtc.onTimer(0);
  assert.deepEqual(irq.calls, ["assert", "deassert", "assert"]);
  assert.equal(rd(RTC_REG_C), REG_C_IRQF | REG_C_UF);
  assert.equal(timer.armed, U1 + 6 * S);
});

Deno.test("rtc: alarm interrupt, exact and with don't-care bytes", () => {
  const { clock, irq, timer, rd, wr, rtc } = setup();
  wr(RTC_REG_A, 0x20); // RS = 0: no periodic flag in the way
  wr(RTC_SECONDS_ALARM, 0x35);
  wr(RTC_MINUTES_ALARM, 0x45);
  wr(RTC_HOURS_ALARM, 0x13);
  wr(RTC_REG_B, REG_B_24H | REG_B_AIE);
  assert.equal(timer.armed, U1, "AIE: checked at every update");
  clock.t = U1 + 3 * S; // 13:45:34
  rtc.onTimer(0);
  assert.equal(irq.level, false);
  assert.equal(rd(RTC_REG_C), REG_C_UF);
  clock.t = U1 + 4 * S; // 13:45:35
  rtc.onTimer(0);
  assert.equal(irq.level, true);
  assert.equal(rd(RTC_REG_C), REG_C_IRQF | REG_C_AF | REG_C_UF);
  assert.equal(irq.level, false);
  // Every minute at :00 (hour and minute "don't care").
  wr(RTC_SECONDS_ALARM, 0x00);
  wr(RTC_MINUTES_ALARM, 0xff);
  wr(RTC_HOURS_ALARM, 0xc0);
  clock.t = U1 + 28 * S; // 13:45:59
  rtc.onTimer(0);
  assert.equal(irq.level, false);
  rd(RTC_REG_C);
  clock.t = U1 + 29 * S; // 13:46:00
  rtc.onTimer(0);
  assert.equal(irq.level, true);
  assert.equal(rd(RTC_REG_C), REG_C_IRQF | REG_C_AF | REG_C_UF);
  // Missed while nobody looked: AF is still found (the next minute passed).
  clock.t = U1 + 29 * S + 150 * S;
  assert.equal(rd(RTC_REG_C), REG_C_IRQF | REG_C_AF | REG_C_UF);
  // AF is set without AIE too, but raises no interrupt.
  wr(RTC_REG_B, REG_B_24H);
  clock.t += 60 * S;
  assert.equal(rd(RTC_REG_C), REG_C_AF | REG_C_UF);
  // 12-hour mode: the alarm hour carries the PM bit.
  wr(RTC_REG_B, REG_B_AIE);
  wr(RTC_SECONDS_ALARM, 0xc0);
  wr(RTC_MINUTES_ALARM, 0xc0);
  wr(RTC_HOURS_ALARM, 0x81); // 1 PM
  rd(RTC_REG_C);
  clock.t += S;
  assert.equal(rd(RTC_REG_C), REG_C_IRQF | REG_C_AF | REG_C_UF);
  wr(RTC_HOURS_ALARM, 0x01); // 1 AM: no match
  clock.t += S;
  assert.equal(rd(RTC_REG_C), REG_C_UF);
});

Deno.test("rtc: reading C clears the flags and drops the IRQ line", () => {
  const { clock, irq, rd, wr, rtc } = setup();
  wr(RTC_REG_A, 0x20); // RS = 0: no periodic flag in the way
  wr(RTC_REG_B, REG_B_24H | REG_B_UIE);
  clock.t = U1;
  rtc.onTimer(0);
  assert.equal(irq.level, true);
  // Reading other registers leaves it alone.
  rd(RTC_REG_A);
  rd(RTC_SECONDS);
  assert.equal(irq.level, true);
  assert.equal(rd(RTC_REG_C), REG_C_IRQF | REG_C_UF);
  assert.equal(irq.level, false);
  assert.equal(rd(RTC_REG_C), 0);
  assert.deepEqual(irq.calls, ["assert", "deassert"]);
  // Clearing the enable also drops IRQF (it is derived).
  clock.t = U1 + S;
  rtc.onTimer(0);
  assert.equal(irq.level, true);
  wr(RTC_REG_B, REG_B_24H);
  assert.equal(irq.level, false);
  assert.equal(rd(RTC_REG_C), REG_C_UF);
  // Writes to C and D are ignored.
  wr(RTC_REG_C, 0xff);
  wr(RTC_REG_D, 0x00);
  assert.equal(rd(RTC_REG_C), 0);
  assert.equal(rd(RTC_REG_D), REG_D_VRT);
});

Deno.test("rtc: UIP is set in the 244 us before each update", () => {
  const { clock, rd, wr } = setup();
  clock.t = U1 - 244_001;
  assert.equal(rd(RTC_REG_A), 0x26);
  clock.t = U1 - 244_000;
  assert.equal(rd(RTC_REG_A), 0x26 | REG_A_UIP);
  assert.equal(rd(RTC_SECONDS), 0x30);
  clock.t = U1 - 1;
  assert.equal(rd(RTC_REG_A), 0x26 | REG_A_UIP);
  clock.t = U1;
  assert.equal(rd(RTC_REG_A), 0x26);
  assert.equal(rd(RTC_SECONDS), 0x31);
  // UIP is read-only.
  wr(RTC_REG_A, 0xa6);
  assert.equal(rd(RTC_REG_A), 0x26);
  // SET = 1 clears UIP.
  clock.t = U1 + S - 1000;
  assert.equal(rd(RTC_REG_A), 0x26 | REG_A_UIP);
  wr(RTC_REG_B, REG_B_24H | REG_B_SET);
  assert.equal(rd(RTC_REG_A), 0x26);
});

Deno.test("rtc: divider reset holds the time; the first update comes 500 ms after release", () => {
  const { clock, timer, rd, wr, rtc } = setup();
  clock.t = U1 + 0.2 * S; // :31
  wr(RTC_REG_B, REG_B_24H | REG_B_UIE | REG_B_PIE);
  wr(RTC_REG_A, 0x66); // DV = 110
  assert.equal(timer.armed, null);
  rd(RTC_REG_C);
  clock.t += 10 * S;
  assert.equal(rd(RTC_SECONDS), 0x31);
  assert.equal(rd(RTC_REG_A), 0x66, "no UIP while held");
  assert.equal(rd(RTC_REG_C), 0, "no flags while held");
  const release = clock.t;
  wr(RTC_REG_A, 0x26);
  assert.equal(timer.armed, Math.ceil(release + S / 1024), "periodic ticks follow the new phase");
  wr(RTC_REG_B, REG_B_24H | REG_B_UIE);
  assert.equal(timer.armed, release + 0.5 * S);
  clock.t = release + 0.5 * S - 1;
  assert.equal(rd(RTC_SECONDS), 0x31);
  clock.t = release + 0.5 * S;
  assert.equal(rd(RTC_SECONDS), 0x32);
  clock.t = release + 1.5 * S;
  assert.equal(rd(RTC_SECONDS), 0x33);
  assert.equal(rtc.getTime(), Math.floor(HOST) + 3);
});

Deno.test("rtc: reset() keeps the time and NVRAM, clears the enables, flags and line", () => {
  const { clock, irq, timer, rd, wr, rtc } = setup();
  wr(0x40, 0x5a);
  rtc.write(0, 1, 0x80 | 0x41); // NMI-disable bit set with the index
  assert.equal(rtc.nmiDisabled, true);
  rtc.write(1, 1, 0xa5);
  assert.equal(rtc.readNvram(0x41), 0xa5);
  wr(RTC_REG_B, REG_B_24H | REG_B_UIE | REG_B_AIE | REG_B_PIE | REG_B_SQWE | REG_B_DM);
  clock.t = U1;
  rtc.onTimer(0);
  assert.equal(irq.level, true);
  rtc.reset();
  assert.equal(irq.level, false);
  assert.equal(timer.armed, null);
  assert.equal(rd(RTC_REG_B), REG_B_24H | REG_B_DM);
  assert.equal(rd(RTC_REG_C), 0);
  assert.equal(rd(0x40), 0x5a);
  assert.equal(rd(0x41), 0xa5);
  assert.equal(rd(RTC_SECONDS), 31);
  clock.t = U1 + S;
  assert.equal(rd(RTC_SECONDS), 32);
});

Deno.test("rtc: powerOn() CMOS memory bytes for 256 MiB", () => {
  const { rtc } = setup({ memory: { lowmemEnd: 256 * MiB, highmemSize: 0 } });
  const b = (o: number) => rtc.readNvram(o);
  assert.equal(b(CMOS_FLOPPY_TYPES), 0);
  assert.equal(b(CMOS_EQUIPMENT), 0x02);
  assert.deepEqual([b(CMOS_BASE_MEMORY), b(CMOS_BASE_MEMORY + 1)], [0x80, 0x02]); // 640 KiB
  assert.deepEqual([b(CMOS_EXT_MEMORY), b(CMOS_EXT_MEMORY + 1)], [0xff, 0xff]); // capped
  assert.deepEqual([b(CMOS_EXT_MEMORY_POST), b(CMOS_EXT_MEMORY_POST + 1)], [0xff, 0xff]);
  // (256 - 16) MiB / 64 KiB = 3840 = 0x0F00.
  assert.deepEqual([b(CMOS_MEMORY_ABOVE_16M), b(CMOS_MEMORY_ABOVE_16M + 1)], [0x00, 0x0f]);
  assert.deepEqual([0, 1, 2].map((i) => b(CMOS_MEMORY_ABOVE_4G + i)), [0, 0, 0]);
  let sum = 0;
  for (let i = 0x10; i <= 0x2d; i++) sum += b(i);
  assert.equal((b(CMOS_CHECKSUM) << 8) | b(CMOS_CHECKSUM + 1), sum);
  // Everything else in the RAM is clear.
  const known = new Set([0x14, 0x15, 0x16, 0x17, 0x18, 0x2e, 0x2f, 0x30, 0x31, 0x34, 0x35, 0x32]);
  for (let i = 0x0e; i < 256; i++) if (!known.has(i)) assert.equal(b(i), 0, `byte ${i}`);
});

Deno.test("rtc: powerOn() CMOS memory bytes for 4 GiB (3 GiB low) + 1 GiB high, and 32 MiB", () => {
  const big = setup({ memory: { lowmemEnd: 3 * GiB, highmemSize: GiB } }).rtc;
  // (3072 - 16) MiB / 64 KiB = 48896 = 0xBF00; 1 GiB / 64 KiB = 16384 = 0x004000.
  assert.deepEqual([big.readNvram(0x34), big.readNvram(0x35)], [0x00, 0xbf]);
  assert.deepEqual([big.readNvram(0x5b), big.readNvram(0x5c), big.readNvram(0x5d)], [
    0x00,
    0x40,
    0x00,
  ]);
  assert.deepEqual([big.readNvram(0x17), big.readNvram(0x18)], [0xff, 0xff]);
  const small = setup({ memory: { lowmemEnd: 32 * MiB, highmemSize: 0 } }).rtc;
  // 31 MiB above 1 MiB = 31744 KiB = 0x7C00; 16 MiB above 16 MiB = 256 x 64 KiB.
  assert.deepEqual([small.readNvram(0x17), small.readNvram(0x18)], [0x00, 0x7c]);
  assert.deepEqual([small.readNvram(0x30), small.readNvram(0x31)], [0x00, 0x7c]);
  assert.deepEqual([small.readNvram(0x34), small.readNvram(0x35)], [0x00, 0x01]);
});

Deno.test("rtc: the century register follows the clock and sets it", () => {
  const { clock, rd, wr, rtc } = setup({ host: Date.UTC(1999, 11, 31, 23, 59, 59) / 1000 + 0.5 });
  assert.equal(rd(RTC_CENTURY), 0x19);
  assert.equal(rd(RTC_YEAR), 0x99);
  clock.t = C0 + 0.5 * S;
  assert.equal(rd(RTC_CENTURY), 0x20);
  assert.equal(rd(RTC_YEAR), 0x00);
  assert.equal(rd(RTC_MONTH), 0x01);
  assert.equal(rd(RTC_DAY_OF_MONTH), 0x01);
  assert.equal(rd(RTC_DAY_OF_WEEK), 7); // 2000-01-01 was a Saturday
  assert.equal(rtc.readNvram(RTC_CENTURY), 0x20);
  wr(RTC_REG_B, REG_B_24H | REG_B_DM);
  assert.equal(rd(RTC_CENTURY), 20);
  // Written outside SET (OpenBSD does), the century moves the clock.
  wr(RTC_CENTURY, 21);
  assert.equal(rtc.getTime(), Date.UTC(2100, 0, 1, 0, 0, 0) / 1000);
  assert.throws(() => rtc.writeNvram(RTC_CENTURY, 0x20), RangeError);
});

Deno.test("rtc: local time offset", () => {
  const { rd, rtc } = setup({ utcOffsetSeconds: 3600 });
  assert.equal(rd(RTC_HOURS), 0x14);
  assert.equal(rtc.getTime(), Math.floor(HOST));
  rtc.setTime(Date.UTC(2030, 5, 15, 22, 30, 0) / 1000);
  assert.equal(rd(RTC_HOURS), 0x23);
  assert.equal(rd(RTC_DAY_OF_MONTH), 0x15);
  assert.equal(rtc.getTime(), Date.UTC(2030, 5, 15, 22, 30, 0) / 1000);
  const west = setup({ utcOffsetSeconds: -5 * 3600 });
  assert.equal(west.rd(RTC_HOURS), 0x08);
});

Deno.test("rtc: setTime() keeps a fractional phase; NVRAM host API and the upper bank", () => {
  const { clock, rd, rtc } = setup();
  rtc.setTime(1_000_000_000.75);
  assert.equal(rtc.getTime(), 1_000_000_000);
  clock.t = C0 + 0.25 * S - 1;
  assert.equal(rtc.getTime(), 1_000_000_000);
  clock.t = C0 + 0.25 * S;
  assert.equal(rtc.getTime(), 1_000_000_001);
  assert.equal(rd(RTC_SECONDS), 0x41); // 2001-09-09 01:46:41 UTC
  rtc.writeNvram(0x20, 0x11);
  rtc.writeNvram(0x90, 0x22);
  assert.equal(rd(0x20), 0x11);
  assert.throws(() => rtc.readNvram(13), RangeError);
  assert.throws(() => rtc.writeNvram(256, 0), RangeError);
  const { low, high } = rtc.ports();
  assert.equal(low, rtc);
  high.write(0, 1, 0x10);
  assert.equal(high.read(1, 1), 0x22);
  high.write(1, 1, 0x33);
  assert.equal(rtc.readNvram(0x90), 0x33);
  high.write(0, 1, 0x7f);
  high.write(1, 1, 0x44);
  assert.equal(rtc.readNvram(0xff), 0x44);
  assert.equal(high.read(0, 1), 0xff, "index ports read 0xFF");
  assert.equal(rtc.read(0, 1), 0xff);
  // A 16-bit access at 0x70 writes the index and the data.
  rtc.write(0, 2, (0x77 << 8) | 0x21);
  assert.equal(rtc.readNvram(0x21), 0x77);
});

Deno.test("rtc: the state binds in another instance (another thread) and sees the same clock", () => {
  const { clock, rtc, timer, irq } = setup();
  const other = new Rtc(
    {
      irq,
      clock,
      timers: [timer],
      hostTime: () => {
        throw new Error("not read when a state is given");
      },
      utcOffsetSeconds: 0,
      memory: { lowmemEnd: 0, highmemSize: 0 },
    },
    RtcState.bind(RtcState.bufferOf(rtc.state)),
  );
  clock.t = U1 + 2 * S;
  assert.equal(other.getTime(), Math.floor(HOST) + 3);
  other.write(0, 1, RTC_SECONDS);
  assert.equal(rtc.read(1, 1), 0x33);
});

Deno.test("rtc: a disconnected IRQ output (HPET LegacyReplacement) drops the line; the flags go on", () => {
  const { clock, irq, timer, rd, wr, rtc } = setup();
  wr(RTC_REG_B, REG_B_24H | REG_B_PIE);
  clock.t = timer.armed!;
  rtc.onTimer(0);
  assert.equal(irq.level, true);
  rtc.setIrqConnected(false);
  assert.equal(irq.level, false, "disconnected: the line drops although IRQF is set");
  rtc.setIrqConnected(true);
  assert.equal(irq.level, true, "reconnected with IRQF still set: the line follows it again");
  rtc.setIrqConnected(false);
  assert.equal(rd(RTC_REG_C), REG_C_IRQF | REG_C_PF, "register C still reports the event");
  clock.t = timer.armed!;
  rtc.onTimer(0);
  assert.equal(irq.level, false, "no interrupt while disconnected");
  assert.deepEqual(irq.calls, ["assert", "deassert", "assert", "deassert"]);
});

Deno.test("rtc: interrupt edges are found after 104 days of uptime too (past 2^53 ns)", () => {
  // Past 2^53 a double cannot hold every nanosecond: the search for the
  // first edge after `now` must still move forward and end.
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (const period of [1e9 / 8192, 1e9 / 1024, 1e9 / 2, 1e9]) {
    for (let i = 0; i < 2000; i++) {
      const origin = Math.floor(rand() * 1e9);
      const now = 2 ** 53 + Math.floor(rand() * 2 ** 40);
      const d = nextEdge(origin, period, now);
      const k = Math.floor((now - origin) / period) + 1;
      assert.ok(d > now, `edge ${d} after ${now}`);
      assert.ok(Math.floor((d - origin) / period) >= k, "the edge has happened at the deadline");
      assert.ok(d - now <= period + 2 ** 12, "no later than the next edge (within rounding)");
    }
  }
});

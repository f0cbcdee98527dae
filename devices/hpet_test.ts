import assert from "node:assert/strict";
import { FakeClock, FakeIrqs, FakeMsi, FakeTimer } from "./_fakes.ts";
import {
  GEN_CONF_ENABLE,
  GEN_CONF_LEG_RT,
  Hpet,
  HPET_CLK_PERIOD_FS,
  HPET_FREQUENCY_HZ,
  HPET_GCAP_ID,
  HPET_GEN_CONF,
  HPET_GINTR_STA,
  HPET_GSIS,
  HPET_MAIN_CNT,
  HPET_MIN_PERIOD_TICKS,
  HPET_TIMERS,
  HPET_TN_COMPARATOR,
  HPET_TN_CONF_CAP,
  HPET_TN_FSB_ROUTE,
  type HpetDeps,
  HpetState,
  nsForTicks,
  ticksIn,
  TN_FSB_EN,
  TN_FSB_INT_DEL_CAP,
  TN_INT_ENB,
  TN_INT_ROUTE_SHIFT,
  TN_INT_TYPE_LEVEL,
  TN_PER_INT_CAP,
  TN_TYPE_PERIODIC,
  TN_VAL_SET,
} from "./hpet.ts";

/** The clock when the tests start the counter (not the clock's origin). */
const C0 = 3e9;
const S = 1e9;
const T = (n: number, reg: number) => 0x100 + 0x20 * n + reg;
const route = (pin: number) => pin << TN_INT_ROUTE_SHIFT;

/** Exact reference: ticks after `ns` ns (BigInt). */
const refTicks = (ns: bigint) => ns * BigInt(HPET_FREQUENCY_HZ) / 1_000_000_000n;
/** Exact reference: first ns at which `ticks` ticks have elapsed. */
const refNs = (ticks: bigint) =>
  (ticks * 1_000_000_000n + BigInt(HPET_FREQUENCY_HZ) - 1n) / BigInt(HPET_FREQUENCY_HZ);
/** The clock when `ticks` ticks have elapsed since the tests started the counter (at C0). */
const at = (ticks: number) => C0 + Number(refNs(BigInt(ticks)));

/** An HPET with fake lines, timers and MSI sink, the clock at C0; `overrides` replace deps. */
function setup(overrides: Partial<HpetDeps> = {}) {
  const clock = new FakeClock();
  clock.t = C0;
  const irqs = new FakeIrqs();
  const lines = irqs.lines, irq = irqs.line;
  const timers = Array.from({ length: HPET_TIMERS }, () => new FakeTimer());
  const msi = new FakeMsi();
  const hpet = new Hpet({ clock, timers, irq, msi, ...overrides });
  const r32 = (offset: number) => hpet.read(offset, 4);
  const w32 = (offset: number, value: number) => hpet.write(offset, 4, value);
  /** Fires timer n as the timer thread would (the fake timer is consumed). */
  const fire = (n: number) => {
    timers[n].armed = null;
    hpet.onTimer(n);
  };
  return { clock, lines, irq, timers, msi, hpet, r32, w32, fire };
}

Deno.test("hpet: HPET_GSIS lists the legacy GSIs, then the INT_ROUTE_CAP pins, in order", () => {
  // The order the machine builder used to hard-code; it fixes the wired-OR source bits.
  assert.deepEqual(HPET_GSIS, [0, 8, 20, 21, 22, 23]);
});

Deno.test("hpet: tick arithmetic is exact", () => {
  assert.equal(HPET_CLK_PERIOD_FS, 59604644);
  for (
    const ns of [
      0n,
      1n,
      59n,
      60n,
      953n,
      954n,
      999_999_999n,
      1_000_000_000n,
      123_456_789_012n,
      86_400_000_000_123n,
    ]
  ) {
    assert.equal(ticksIn(Number(ns)), Number(refTicks(ns)), `ticks in ${ns} ns`);
  }
  for (
    const t of [
      0n,
      1n,
      16n,
      1000n,
      32767n,
      32768n,
      16_777_216n,
      2n ** 32n + 1000n,
      123_456_789_123n,
    ]
  ) {
    const ns = nsForTicks(Number(t));
    assert.equal(ns, Number(refNs(t)), `ns for ${t} ticks`);
    assert.ok(ticksIn(ns) >= Number(t) && (ns === 0 || ticksIn(ns - 1) < Number(t)));
  }
});

Deno.test("hpet: GCAP_ID by read64 and by two 32-bit reads; read-only", () => {
  const { hpet, r32, w32 } = setup();
  // REV_ID 1, NUM_TIM_CAP 7, COUNT_SIZE_CAP 0, LEG_RT_CAP 1, vendor 0x8086.
  assert.equal(r32(HPET_GCAP_ID), 0x80868701);
  assert.equal(r32(HPET_GCAP_ID + 4), 59604644);
  assert.equal(hpet.read64(HPET_GCAP_ID), (59604644n << 32n) | 0x80868701n);
  w32(HPET_GCAP_ID, 0);
  hpet.write64(HPET_GCAP_ID, 0n);
  assert.equal(hpet.read64(HPET_GCAP_ID), (59604644n << 32n) | 0x80868701n);
  // Timer capabilities: INT_ROUTE_CAP = pins 20-23, periodic and FSB capable, 32-bit.
  assert.equal(hpet.read64(T(5, HPET_TN_CONF_CAP)), (0x00f00000n << 32n) | 0x8010n);
  assert.equal(r32(T(5, HPET_TN_CONF_CAP)), TN_PER_INT_CAP | TN_FSB_INT_DEL_CAP);
  assert.equal(r32(T(5, HPET_TN_COMPARATOR)), 0xffffffff);
  assert.equal(r32(T(5, HPET_TN_COMPARATOR + 4)), 0);
  // Read-only and reserved bits ignore writes.
  w32(T(5, HPET_TN_CONF_CAP), 0xffffffff);
  // Writable: INT_TYPE, INT_ENB, TYPE, VAL_SET, INT_ROUTE, FSB_EN; plus the two capability bits.
  assert.equal(r32(T(5, HPET_TN_CONF_CAP)), 0xfe5e);
  w32(T(5, HPET_TN_CONF_CAP + 4), 0);
  assert.equal(r32(T(5, HPET_TN_CONF_CAP + 4)), 0x00f00000);
  w32(HPET_GEN_CONF, 0xfffffffc);
  assert.equal(r32(HPET_GEN_CONF), 0);
});

Deno.test("hpet: the main counter runs only while enabled, exactly, and wraps at 2^32", () => {
  const { clock, hpet, r32, w32 } = setup();
  clock.t = C0 + S;
  assert.equal(r32(HPET_MAIN_CNT), 0);
  clock.t = C0;
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE);
  assert.equal(r32(HPET_MAIN_CNT), 0);
  clock.t = C0 + 59;
  assert.equal(r32(HPET_MAIN_CNT), 0);
  clock.t = C0 + 60;
  assert.equal(r32(HPET_MAIN_CNT), 1);
  clock.t = C0 + S;
  assert.equal(r32(HPET_MAIN_CNT), HPET_FREQUENCY_HZ);
  clock.t = C0 + 123_456_789;
  assert.equal(r32(HPET_MAIN_CNT), Number(refTicks(123_456_789n)));
  assert.equal(hpet.read64(HPET_MAIN_CNT), refTicks(123_456_789n), "the upper half reads 0");
  // 300 s: past one wrap (2^32 ticks = 256 s).
  clock.t = C0 + 300 * S + 7;
  assert.equal(r32(HPET_MAIN_CNT), Number(refTicks(300_000_000_007n) % 2n ** 32n));
  // Halting keeps the value.
  w32(HPET_GEN_CONF, 0);
  const held = Number(refTicks(300_000_000_007n) % 2n ** 32n);
  clock.t = C0 + 400 * S;
  assert.equal(r32(HPET_MAIN_CNT), held);
  // Written while halted, then counting through the wrap.
  w32(HPET_MAIN_CNT, 0xfffffff0);
  assert.equal(r32(HPET_MAIN_CNT), 0xfffffff0);
  w32(HPET_MAIN_CNT + 4, 0x12345678); // the upper half of a 32-bit counter: ignored
  assert.equal(hpet.read64(HPET_MAIN_CNT), 0xfffffff0n);
  const start = clock.t;
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE);
  clock.t = start + 953; // 15.99 ticks
  assert.equal(r32(HPET_MAIN_CNT), 0xffffffff);
  clock.t = start + 954; // 16.005 ticks
  assert.equal(r32(HPET_MAIN_CNT), 0);
  // Written while running: counts on from the written value.
  w32(HPET_MAIN_CNT, 100);
  clock.t += 60;
  assert.equal(r32(HPET_MAIN_CNT), 101);
  assert.equal(hpet.counter(), 101);
});

Deno.test("hpet: a one-shot timer fires once, at the exact ns, then after a counter wrap", () => {
  const { clock, lines, timers, r32, w32, fire } = setup();
  w32(T(2, HPET_TN_CONF_CAP), TN_INT_ENB | route(20));
  w32(T(2, HPET_TN_COMPARATOR), 1000);
  assert.equal(timers[2].armed, null, "no deadline while the counter is halted");
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE);
  const due = at(1000); // 1000 ticks = 59604.64 ns
  assert.equal(due, C0 + 59605);
  assert.equal(timers[2].armed, due);
  clock.t = due - 1;
  assert.equal(r32(HPET_MAIN_CNT), 999);
  assert.equal(lines.get(20), undefined);
  clock.t = due;
  fire(2);
  assert.deepEqual(lines.get(20)!.calls, ["pulse"]);
  assert.equal(r32(T(2, HPET_TN_COMPARATOR)), 1000, "a one-shot comparator stays put");
  // The next match is when the 32-bit counter comes round again.
  assert.equal(timers[2].armed, at(2 ** 32 + 1000));
  // A spurious callback later on: nothing is due.
  clock.t = due + 5000;
  fire(2);
  assert.deepEqual(lines.get(20)!.calls, ["pulse"]);
  assert.equal(timers[2].armed, at(2 ** 32 + 1000));
  // Other timers never armed.
  for (const n of [0, 1, 3, 4, 5, 6, 7]) assert.equal(timers[n].armed, null, `timer ${n}`);
});

Deno.test("hpet: a periodic timer fires every period, and accounts missed periods after a late callback", () => {
  const { clock, lines, timers, r32, w32, fire } = setup();
  // Linux's sequence: periodic + VAL_SET, comparator = first expiry, then the period.
  w32(T(0, HPET_TN_CONF_CAP), TN_INT_ENB | TN_TYPE_PERIODIC | TN_VAL_SET | route(21));
  w32(T(0, HPET_TN_COMPARATOR), 1000);
  w32(T(0, HPET_TN_COMPARATOR), 1000);
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE);
  assert.equal(timers[0].armed, at(1000));
  for (const k of [1, 2, 3]) {
    clock.t = at(1000 * k);
    fire(0);
    assert.equal(lines.get(21)!.calls.length, k);
    assert.equal(r32(T(0, HPET_TN_COMPARATOR)), 1000 * (k + 1));
    assert.equal(timers[0].armed, at(1000 * (k + 1)));
  }
  // Late by 2.5 periods: one interrupt; the comparator is the next match in the future.
  clock.t = at(6500);
  fire(0);
  assert.deepEqual(lines.get(21)!.calls, ["pulse", "pulse", "pulse", "pulse"]);
  assert.equal(r32(T(0, HPET_TN_COMPARATOR)), 7000);
  assert.equal(timers[0].armed, at(7000));
  // The callback never runs: an access processes the match anyway.
  clock.t = at(7000);
  assert.equal(r32(T(0, HPET_TN_COMPARATOR)), 8000);
  assert.equal(lines.get(21)!.calls.length, 5);
  assert.equal(timers[0].armed, at(8000));
  // Across the 32-bit wrap.
  clock.t = at(2 ** 32 + 500);
  fire(0);
  const next = Math.ceil((2 ** 32 + 500) / 1000) * 1000; // the next multiple of the period
  assert.equal(r32(T(0, HPET_TN_COMPARATOR)), next - 2 ** 32);
  assert.equal(timers[0].armed, at(next));
});

Deno.test("hpet: VAL_SET sets the accumulator; without it a periodic write sets only the period", () => {
  const { clock, timers, r32, w32, hpet, fire } = setup();
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE);
  w32(T(1, HPET_TN_CONF_CAP), TN_INT_ENB | TN_TYPE_PERIODIC | TN_VAL_SET | route(20));
  assert.equal(r32(T(1, HPET_TN_CONF_CAP)) & TN_VAL_SET, TN_VAL_SET);
  w32(T(1, HPET_TN_COMPARATOR), 5000);
  assert.equal(r32(T(1, HPET_TN_CONF_CAP)) & TN_VAL_SET, 0, "VAL_SET clears itself");
  assert.equal(r32(T(1, HPET_TN_COMPARATOR)), 5000);
  w32(T(1, HPET_TN_COMPARATOR), 2000); // the period only
  assert.equal(r32(T(1, HPET_TN_COMPARATOR)), 5000);
  assert.equal(timers[1].armed, at(5000));
  clock.t = at(5000);
  fire(1);
  assert.equal(r32(T(1, HPET_TN_COMPARATOR)), 7000);
  // A 64-bit write with VAL_SET: one write; the upper half does not clobber the period.
  w32(T(1, HPET_TN_CONF_CAP), TN_INT_ENB | TN_TYPE_PERIODIC | TN_VAL_SET | route(20));
  hpet.write64(T(1, HPET_TN_COMPARATOR), 10000n);
  assert.equal(hpet.read64(T(1, HPET_TN_COMPARATOR)), 10000n);
  clock.t = at(10000);
  fire(1);
  assert.equal(r32(T(1, HPET_TN_COMPARATOR)), 20000);
  // One-shot: every write sets the comparator.
  w32(T(1, HPET_TN_CONF_CAP), TN_INT_ENB | route(20));
  w32(T(1, HPET_TN_COMPARATOR), 30000);
  assert.equal(r32(T(1, HPET_TN_COMPARATOR)), 30000);
  assert.equal(timers[1].armed, at(30000));
});

Deno.test("hpet: level-triggered: GINTR_STA and the line until software clears it", () => {
  const { clock, lines, timers, r32, w32, fire } = setup();
  w32(T(3, HPET_TN_CONF_CAP), TN_INT_TYPE_LEVEL | TN_INT_ENB | route(22));
  w32(T(3, HPET_TN_COMPARATOR), 100);
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE);
  assert.equal(timers[3].armed, at(100));
  clock.t = at(100);
  fire(3);
  const l22 = lines.get(22)!;
  assert.deepEqual(l22.calls, ["assert"]);
  assert.equal(r32(HPET_GINTR_STA), 1 << 3);
  assert.equal(timers[3].armed, null, "nothing to do while the status is set");
  // Writing 0s or other bits changes nothing; writing 1 clears it.
  w32(HPET_GINTR_STA, 0);
  w32(HPET_GINTR_STA, 1 << 2);
  assert.equal(l22.level, true);
  w32(HPET_GINTR_STA, 1 << 3);
  assert.equal(r32(HPET_GINTR_STA), 0);
  assert.deepEqual(l22.calls, ["assert", "deassert"]);
  assert.equal(timers[3].armed, at(2 ** 32 + 100));
  // Again, via a periodic level timer; then disabling the timer drops the line.
  w32(
    T(3, HPET_TN_CONF_CAP),
    TN_INT_TYPE_LEVEL | TN_INT_ENB | TN_TYPE_PERIODIC | TN_VAL_SET | route(22),
  );
  w32(T(3, HPET_TN_COMPARATOR), 1000);
  fire(3); // spurious: nothing due
  assert.equal(l22.level, false);
  clock.t = at(1000);
  fire(3);
  assert.equal(l22.level, true);
  w32(T(3, HPET_TN_CONF_CAP), TN_INT_TYPE_LEVEL | TN_TYPE_PERIODIC | route(22));
  assert.equal(l22.level, false, "INT_ENB = 0 drops the line");
  assert.equal(r32(HPET_GINTR_STA), 1 << 3, "the status stays (2.3.8)");
  w32(T(3, HPET_TN_CONF_CAP), TN_INT_TYPE_LEVEL | TN_INT_ENB | TN_TYPE_PERIODIC | route(23));
  assert.equal(l22.level, false);
  assert.equal(lines.get(23)!.level, true, "the line follows the route");
  w32(HPET_GEN_CONF, 0);
  assert.equal(lines.get(23)!.level, false, "a halted block interrupts nothing");
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE);
  assert.equal(lines.get(23)!.level, true);
  w32(HPET_GINTR_STA, 0xff);
  assert.equal(lines.get(23)!.level, false);
  // Two level timers on one pin: wired-OR.
  w32(T(3, HPET_TN_CONF_CAP), TN_INT_TYPE_LEVEL | TN_INT_ENB | route(23));
  w32(T(4, HPET_TN_CONF_CAP), TN_INT_TYPE_LEVEL | TN_INT_ENB | route(23));
  const now = Number(refTicks(BigInt(clock.t - C0)));
  w32(T(3, HPET_TN_COMPARATOR), now + 10);
  w32(T(4, HPET_TN_COMPARATOR), now + 20);
  // (The counter restarted between ticks above, so take the armed deadlines.)
  clock.t = Math.max(timers[3].armed!, timers[4].armed!);
  fire(3);
  assert.equal(r32(HPET_GINTR_STA), (1 << 3) | (1 << 4));
  w32(HPET_GINTR_STA, 1 << 3);
  assert.equal(lines.get(23)!.level, true);
  w32(HPET_GINTR_STA, 1 << 4);
  assert.equal(lines.get(23)!.level, false);
});

Deno.test("hpet: FSB delivery sends the route's address and value", () => {
  const { clock, lines, msi, timers, r32, w32, hpet, fire } = setup();
  hpet.write64(T(4, HPET_TN_FSB_ROUTE), (0xfee01000n << 32n) | 0x4041n);
  assert.equal(r32(T(4, HPET_TN_FSB_ROUTE)), 0x4041);
  assert.equal(r32(T(4, HPET_TN_FSB_ROUTE + 4)), 0xfee01000);
  w32(T(4, HPET_TN_CONF_CAP), TN_FSB_EN | TN_INT_ENB | TN_INT_TYPE_LEVEL | route(20));
  w32(T(4, HPET_TN_COMPARATOR), 50);
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE);
  assert.equal(timers[4].armed, at(50));
  clock.t = at(50);
  fire(4);
  assert.deepEqual(msi.sent, [{ address: 0xfee01000, data: 0x4041 }]);
  assert.equal(r32(HPET_GINTR_STA), 0, "FSB messages are edges: no status");
  assert.equal(lines.size, 0, "no GSI involved");
});

Deno.test("hpet: LegacyReplacement routes timers 0 and 1 to GSI 0 and 8", () => {
  const { clock, lines, timers, w32, fire } = setup();
  w32(T(0, HPET_TN_CONF_CAP), TN_INT_ENB | route(20));
  w32(T(0, HPET_TN_COMPARATOR), 10);
  w32(T(1, HPET_TN_CONF_CAP), TN_INT_ENB | route(20));
  w32(T(1, HPET_TN_COMPARATOR), 20);
  w32(T(2, HPET_TN_CONF_CAP), TN_INT_ENB | route(21));
  w32(T(2, HPET_TN_COMPARATOR), 30);
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE | GEN_CONF_LEG_RT);
  for (const n of [0, 1, 2]) {
    clock.t = timers[n].armed!;
    fire(n);
  }
  assert.equal(clock.t, at(30));
  assert.deepEqual(lines.get(0)!.calls, ["pulse"]);
  assert.deepEqual(lines.get(8)!.calls, ["pulse"]);
  assert.deepEqual(lines.get(21)!.calls, ["pulse"], "timer 2 keeps its own route");
  assert.equal(lines.get(20), undefined);
});

Deno.test("hpet: a route outside INT_ROUTE_CAP gives no interrupt", () => {
  const { clock, lines, timers, r32, w32, fire } = setup();
  w32(T(5, HPET_TN_CONF_CAP), TN_INT_ENB | route(5));
  assert.equal((r32(T(5, HPET_TN_CONF_CAP)) >> TN_INT_ROUTE_SHIFT) & 0x1f, 5, "stored as written");
  w32(T(5, HPET_TN_COMPARATOR), 10);
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE);
  assert.equal(timers[5].armed, null);
  clock.t = C0 + S;
  fire(5);
  r32(HPET_MAIN_CNT);
  assert.equal(lines.size, 0);
  // Level-triggered on an unwired pin: status, but no line.
  w32(T(5, HPET_TN_CONF_CAP), TN_INT_TYPE_LEVEL | TN_INT_ENB | route(19));
  w32(T(5, HPET_TN_COMPARATOR), Number(refTicks(BigInt(clock.t - C0))) + 5);
  clock.t += S;
  assert.equal(r32(HPET_GINTR_STA), 1 << 5);
  assert.equal(lines.size, 0);
});

Deno.test("hpet: disabling a timer or the block cancels its timer", () => {
  const { timers, w32 } = setup();
  w32(T(6, HPET_TN_CONF_CAP), TN_INT_ENB | route(20));
  w32(T(6, HPET_TN_COMPARATOR), 1000);
  w32(T(7, HPET_TN_CONF_CAP), TN_INT_ENB | route(20));
  w32(T(7, HPET_TN_COMPARATOR), 2000);
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE);
  assert.ok(timers[6].armed !== null && timers[7].armed !== null);
  w32(T(6, HPET_TN_CONF_CAP), route(20));
  assert.equal(timers[6].armed, null);
  assert.equal(timers[6].log.at(-1), "cancel");
  w32(HPET_GEN_CONF, 0);
  assert.equal(timers[7].armed, null);
  assert.equal(timers[7].log.at(-1), "cancel");
  // Re-enabling re-arms from the halted counter.
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE);
  assert.equal(timers[7].armed, at(2000));
});

Deno.test("hpet: interrupts disabled: matches still advance a periodic comparator, silently", () => {
  const { clock, lines, timers, r32, w32 } = setup();
  w32(T(2, HPET_TN_CONF_CAP), TN_TYPE_PERIODIC | TN_VAL_SET | route(20));
  w32(T(2, HPET_TN_COMPARATOR), 100);
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE);
  assert.equal(timers[2].armed, null);
  clock.t = at(350);
  assert.equal(r32(T(2, HPET_TN_COMPARATOR)), 400);
  assert.equal(lines.size, 0);
});

Deno.test("hpet: reset() is the power-on state", () => {
  const { clock, lines, timers, r32, w32, hpet, fire } = setup();
  w32(T(3, HPET_TN_CONF_CAP), TN_INT_TYPE_LEVEL | TN_INT_ENB | route(22));
  w32(T(3, HPET_TN_COMPARATOR), 100);
  w32(T(4, HPET_TN_CONF_CAP), TN_INT_ENB | route(20));
  w32(T(4, HPET_TN_COMPARATOR), 1_000_000);
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE | GEN_CONF_LEG_RT);
  clock.t = at(100);
  fire(3);
  assert.equal(lines.get(22)!.level, true);
  hpet.reset();
  assert.equal(lines.get(22)!.level, false);
  assert.equal(r32(HPET_GEN_CONF), 0);
  assert.equal(r32(HPET_GINTR_STA), 0);
  assert.equal(r32(HPET_MAIN_CNT), 0);
  clock.t += S;
  assert.equal(r32(HPET_MAIN_CNT), 0);
  for (let n = 0; n < HPET_TIMERS; n++) {
    assert.equal(r32(T(n, HPET_TN_CONF_CAP)), TN_PER_INT_CAP | TN_FSB_INT_DEL_CAP);
    assert.equal(r32(T(n, HPET_TN_COMPARATOR)), 0xffffffff);
    assert.equal(r32(T(n, HPET_TN_FSB_ROUTE)), 0);
    assert.equal(timers[n].armed, null);
  }
});

Deno.test("hpet: the state binds in another instance (another thread)", () => {
  const { clock, timers, irq, msi, hpet, w32 } = setup();
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE);
  const other = new Hpet(
    { clock, timers, irq, msi },
    HpetState.bind(HpetState.bufferOf(hpet.state)),
  );
  clock.t = C0 + S;
  assert.equal(other.read(HPET_MAIN_CNT, 4), HPET_FREQUENCY_HZ);
  assert.equal(other.read(HPET_GEN_CONF, 4), GEN_CONF_ENABLE);
});

Deno.test("hpet: below the minimum tick, matches coalesce; the comparator still steps by the period", () => {
  const { clock, lines, timers, r32, w32, fire } = setup();
  w32(T(0, HPET_TN_CONF_CAP), TN_INT_ENB | TN_TYPE_PERIODIC | TN_VAL_SET | route(21));
  w32(T(0, HPET_TN_COMPARATOR), 100);
  w32(T(0, HPET_TN_COMPARATOR), 1); // a period of 1 tick: an interrupt storm if taken literally
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE);
  clock.t = at(100);
  fire(0);
  assert.equal(lines.get(21)!.calls.length, 1);
  assert.equal(r32(T(0, HPET_TN_COMPARATOR)), 101, "the next match, one tick on");
  // The host timer is not armed for the next tick but a minimum period later...
  const minNs = Number(refNs(BigInt(HPET_MIN_PERIOD_TICKS)));
  assert.ok(timers[0].armed! >= clock.t + minNs - 1, `${timers[0].armed} vs ${clock.t + minNs}`);
  // ...where the matches in between arrive as one interrupt.
  clock.t = timers[0].armed!;
  fire(0);
  assert.equal(lines.get(21)!.calls.length, 2);
});

Deno.test("hpet: LegacyReplacement is reported when it turns on and off (enable and LEG_RT both set)", () => {
  const calls: boolean[] = [];
  const { hpet, w32 } = setup({ legacyReplacement: (on) => calls.push(on) });
  w32(HPET_GEN_CONF, GEN_CONF_LEG_RT); // not enabled: no legacy routing yet
  assert.deepEqual(calls, []);
  w32(HPET_GEN_CONF, GEN_CONF_LEG_RT | GEN_CONF_ENABLE);
  w32(HPET_GEN_CONF, GEN_CONF_LEG_RT | GEN_CONF_ENABLE); // no change, no call
  assert.deepEqual(calls, [true]);
  w32(HPET_GEN_CONF, GEN_CONF_ENABLE);
  assert.deepEqual(calls, [true, false]);
  w32(HPET_GEN_CONF, GEN_CONF_LEG_RT | GEN_CONF_ENABLE);
  hpet.reset(); // power-on: legacy off again
  assert.deepEqual(calls, [true, false, true, false]);
});

import assert from "node:assert/strict";
import { FakeClock, FakeIrq, FakePlatform } from "./_fakes.ts";
import {
  AcpiPm,
  AcpiPmState,
  PM1_CNT,
  PM1_EN,
  PM1_STS,
  PM_TIMER_HZ,
  POWER_BUTTON_GPE,
  SLP_TYP_S5,
} from "./acpi_pm.ts";

const T0 = 5e9; // the clock at reset, so the timer origin is not the clock's origin

function setup() {
  const clock = new FakeClock();
  const sci = new FakeIrq();
  const platform = new FakePlatform();
  const state = AcpiPmState.create();
  const pm = new AcpiPm({ clock, sci, platform }, state);
  clock.t = T0;
  pm.reset();
  return { clock, sci, platform, state, pm };
}

/** The PM timer value after `dt` ns, computed exactly with integers. */
const ticksAfter = (dt: bigint) => Number((dt * BigInt(PM_TIMER_HZ) / 1_000_000_000n) % 2n ** 32n);
/** First dt (ns) at which the timer reaches `ticks` (exact). */
const dtFor = (ticks: bigint) =>
  (ticks * 1_000_000_000n + BigInt(PM_TIMER_HZ) - 1n) / BigInt(PM_TIMER_HZ);

Deno.test("the PM timer counts at 3.579545 MHz from reset", () => {
  const { clock, pm } = setup();
  const at = (dt: number) => {
    clock.t = T0 + dt;
    return pm.timer.read(0, 4);
  };
  assert.equal(PM_TIMER_HZ, 3579545);
  assert.equal(at(0), 0);
  assert.equal(at(279), 0); // one tick is 279.37 ns
  assert.equal(at(280), 1);
  assert.equal(at(1000), 3);
  assert.equal(at(1e6), 3579);
  assert.equal(at(1e9), 3579545);
  assert.equal(at(10e9), 35795450);
  for (const dt of [123456789n, 987654321987n, 599932015940n, 599932015941n]) {
    assert.equal(at(Number(dt)), ticksAfter(dt), `at ${dt} ns`);
  }
  assert.equal(pm.timerValue(), ticksAfter(599932015941n));
});

Deno.test("the PM timer wraps at 2^32", () => {
  const { clock, pm } = setup();
  const wrap = dtFor(2n ** 32n);
  assert.equal(wrap, 1199864031882n);
  clock.t = T0 + Number(wrap) - 1;
  assert.equal(pm.timer.read(0, 4), 0xffffffff);
  clock.t = T0 + Number(wrap);
  assert.equal(pm.timer.read(0, 4), 0);
  clock.t = T0 + 1200e9; // 1200 s: 4295454000 ticks
  assert.equal(pm.timer.read(0, 4), 4295454000 - 2 ** 32); // 486704
});

Deno.test("the PM timer reads as bytes and words too; writes are ignored", () => {
  const { clock, pm } = setup();
  clock.t = T0 + 1e9; // 3579545 = 0x00369E99
  assert.equal(pm.timer.read(0, 1), 0x99);
  assert.equal(pm.timer.read(1, 1), 0x9e);
  assert.equal(pm.timer.read(2, 1), 0x36);
  assert.equal(pm.timer.read(3, 1), 0x00);
  assert.equal(pm.timer.read(0, 2), 0x9e99);
  assert.equal(pm.timer.read(2, 2), 0x0036);
  clock.t = T0 + Number(dtFor(0xfedcba98n)); // high bytes set
  assert.equal(pm.timer.read(0, 4), 0xfedcba98);
  assert.equal(pm.timer.read(3, 1), 0xfe);
  assert.equal(pm.timer.read(2, 2), 0xfedc);
  pm.timer.write(0, 4, 0);
  assert.equal(pm.timer.read(0, 4), 0xfedcba98);
});

Deno.test("TMR_STS is set when bit 31 of the timer flips, in both directions", () => {
  const { clock, pm } = setup();
  const half = Number(dtFor(2n ** 31n));
  const sts = () => pm.event.read(0, 2);
  clock.t = T0 + half - 1;
  assert.equal(sts() & PM1_STS.TMR, 0, "bit 31 still clear");
  clock.t = T0 + half;
  assert.equal(sts() & PM1_STS.TMR, PM1_STS.TMR, "0 -> 1");
  pm.event.write(0, 2, PM1_STS.TMR);
  assert.equal(sts() & PM1_STS.TMR, 0, "cleared, and no new flip");
  clock.t = T0 + Number(dtFor(2n ** 32n)) - 1;
  assert.equal(sts() & PM1_STS.TMR, 0, "bit 31 still set just before the wrap");
  clock.t = T0 + Number(dtFor(2n ** 32n));
  assert.equal(sts() & PM1_STS.TMR, PM1_STS.TMR, "1 -> 0 at the wrap");
});

Deno.test("PM1_STS is write-1-to-clear, lane by lane", () => {
  const { clock, pm, state } = setup();
  clock.t = T0 + Number(dtFor(2n ** 31n));
  // PWRBTN_STS as a restored state would hold it (no dhyve event sets it:
  // the power button is a GPE); TMR_STS from the timer.
  state.sts |= PM1_STS.PWRBTN;
  const sts = () => pm.event.read(0, 2);
  assert.equal(sts(), PM1_STS.TMR | PM1_STS.PWRBTN);
  pm.event.write(0, 2, 0); // writing zeros clears nothing
  assert.equal(sts(), PM1_STS.TMR | PM1_STS.PWRBTN);
  pm.event.write(1, 1, 0x01); // byte 1 bit 0 = PWRBTN_STS (bit 8)
  assert.equal(sts(), PM1_STS.TMR);
  state.sts |= PM1_STS.PWRBTN;
  pm.event.write(0, 1, 0xff); // the low lane cannot reach bit 8
  assert.equal(sts(), PM1_STS.PWRBTN);
  assert.equal(pm.event.read(1, 1), 0x01);
  assert.equal(pm.event.read(0, 1), 0x00);
  pm.event.write(0, 2, 0xffff);
  assert.equal(sts(), 0);
});

Deno.test("PM1_EN reads back what was written, limited to its defined bits", () => {
  const { pm, state } = setup();
  pm.event.write(2, 2, 0xffff);
  const all = PM1_EN.TMR | PM1_EN.GBL | PM1_EN.PWRBTN | PM1_EN.SLPBTN | PM1_EN.RTC;
  assert.equal(all, 0x0721);
  assert.equal(pm.event.read(2, 2), 0x0721);
  assert.equal(pm.event.read(2, 1), 0x21);
  assert.equal(pm.event.read(3, 1), 0x07);
  pm.event.write(3, 1, 0x01); // only the high byte changes
  assert.equal(pm.event.read(2, 2), 0x0121);
  pm.event.write(2, 1, 0x00);
  assert.equal(pm.event.read(2, 2), 0x0100);
  // A dword write covers STS (write 1 to clear) and EN together.
  state.sts |= PM1_STS.PWRBTN;
  pm.event.write(0, 4, (PM1_EN.TMR << 16) | PM1_STS.PWRBTN);
  assert.equal(pm.event.read(0, 4), PM1_EN.TMR << 16);
  assert.equal(pm.event.read(0, 2), 0, "STS lanes read separately");
});

Deno.test("the SCI follows SCI_EN && (PM1_STS & PM1_EN || GPE0_STS & GPE0_EN)", () => {
  const { clock, sci, pm } = setup();
  assert.deepEqual(sci.calls, [], "nothing pending after reset");
  clock.t = T0 + Number(dtFor(2n ** 31n)); // TMR_STS
  assert.equal(pm.event.read(0, 2) & PM1_STS.TMR, PM1_STS.TMR);
  assert.equal(sci.level, false, "TMR_STS alone raises no SCI");
  pm.event.write(2, 2, PM1_EN.TMR); // enabling a pending event raises it
  assert.equal(sci.level, true);
  pm.event.write(2, 2, PM1_EN.TMR | PM1_EN.RTC); // no change of level, no new edge
  assert.deepEqual(sci.calls, ["assert"]);
  pm.event.write(0, 2, PM1_STS.TMR); // clearing the status drops it
  assert.equal(sci.level, false);
  pm.pressPowerButton(); // GPE 0, not enabled
  assert.equal(sci.level, false);
  pm.gpe.write(2, 1, 1 << POWER_BUTTON_GPE); // enabling the pending GPE raises it
  assert.equal(sci.level, true);
  pm.gpe.write(2, 2, 0); // disabling drops it too
  assert.equal(sci.level, false);
  assert.deepEqual(sci.calls, ["assert", "deassert", "assert", "deassert"]);
});

Deno.test("GPE0_STS is write-1-to-clear and GPE0_EN reads back, byte lanes included", () => {
  const { pm } = setup();
  pm.gpe.write(2, 2, 0xabcd);
  assert.equal(pm.gpe.read(2, 2), 0xabcd);
  assert.equal(pm.gpe.read(3, 1), 0xab);
  pm.pressPowerButton();
  assert.equal(pm.gpe.read(0, 2), 1 << POWER_BUTTON_GPE);
  assert.equal(pm.gpe.read(0, 4), ((0xabcd << 16) | (1 << POWER_BUTTON_GPE)) >>> 0);
  pm.gpe.write(0, 1, 0); // zeros clear nothing
  assert.equal(pm.gpe.read(0, 1), 1 << POWER_BUTTON_GPE);
  pm.gpe.write(0, 1, 1 << POWER_BUTTON_GPE);
  assert.equal(pm.gpe.read(0, 2), 0);
  pm.reset();
  assert.equal(pm.gpe.read(0, 4), 0);
});

Deno.test("no SCI while SCI_EN is clear (a state restored without it)", () => {
  const clock = new FakeClock();
  const sci = new FakeIrq();
  const state = AcpiPmState.create();
  state.gpeEn = 1 << POWER_BUTTON_GPE;
  state.cnt = 0;
  const pm = new AcpiPm({ clock, sci, platform: new FakePlatform() }, state);
  assert.equal(pm.powerButtonEnabled, false);
  pm.pressPowerButton();
  assert.equal(sci.level, false);
  assert.deepEqual(sci.calls, []);
  pm.control.write(0, 2, 0); // any PM1_CNT write sets SCI_EN again
  assert.equal(pm.control.read(0, 2) & PM1_CNT.SCI_EN, PM1_CNT.SCI_EN);
  assert.equal(sci.level, true);
});

Deno.test("the power button is GPE 0: with and without the GPE enabled", () => {
  const { sci, pm } = setup();
  assert.equal(pm.powerButtonEnabled, false, "no OS listening yet");
  pm.pressPowerButton();
  assert.deepEqual(sci.calls, []);
  pm.gpe.write(0, 2, 1 << POWER_BUTTON_GPE);
  pm.gpe.write(2, 2, 1 << POWER_BUTTON_GPE);
  assert.equal(pm.powerButtonEnabled, true);
  assert.deepEqual(sci.calls, []);
  pm.pressPowerButton();
  assert.deepEqual(sci.calls, ["assert"]);
  assert.equal(pm.gpe.read(0, 2), 1 << POWER_BUTTON_GPE);
  assert.equal(pm.event.read(0, 2) & PM1_STS.PWRBTN, 0, "there is no fixed-hardware button");
  pm.pressPowerButton(); // a second press while pending changes nothing
  assert.deepEqual(sci.calls, ["assert"]);
});

Deno.test("SLP_EN with SLP_TYP 5 requests poweroff; other sleep types do not", () => {
  assert.equal(SLP_TYP_S5, 5);
  for (let typ = 0; typ < 8; typ++) {
    const { platform, pm } = setup();
    pm.control.write(0, 2, PM1_CNT.SCI_EN | (typ << PM1_CNT.SLP_TYP_SHIFT) | PM1_CNT.SLP_EN);
    if (typ === 5) {
      assert.equal(platform.requests.length, 1);
      assert.equal(platform.requests[0].kind, "poweroff");
      assert.match(platform.requests[0].message ?? "", /S5/);
    } else {
      assert.deepEqual(platform.requests, [], `SLP_TYP ${typ}`);
    }
  }
  // SLP_TYP 5 without SLP_EN only selects the state.
  const { platform, pm } = setup();
  pm.control.write(0, 2, 5 << 10);
  assert.equal(platform.requests.length, 0);
  // SLP_EN reads as zero; SLP_TYP is kept.
  assert.equal(pm.control.read(0, 2), (5 << 10) | PM1_CNT.SCI_EN);
  // The usual byte write to the high half: SLP_EN | SLP_TYP 5 = 0x34.
  pm.control.write(1, 1, 0x34);
  assert.equal(platform.requests.length, 1);
  assert.equal(platform.requests[0].kind, "poweroff");
  assert.equal(pm.control.read(1, 1), 0x14);
});

Deno.test("SCI_EN cannot be cleared and PM1_CNT keeps only its stored bits", () => {
  const { pm } = setup();
  assert.equal(pm.control.read(0, 2), PM1_CNT.SCI_EN, "ACPI mode from reset");
  pm.control.write(0, 2, 0);
  assert.equal(pm.control.read(0, 2), PM1_CNT.SCI_EN);
  pm.control.write(0, 1, 0);
  assert.equal(pm.control.read(0, 1), PM1_CNT.SCI_EN);
  // BM_RLD is stored; GBL_RLS (write-only) and undefined bits are not.
  pm.control.write(0, 2, 0xc000 | PM1_CNT.GBL_RLS | PM1_CNT.BM_RLD | 0x0300 | (3 << 10));
  assert.equal(pm.control.read(0, 2), PM1_CNT.SCI_EN | PM1_CNT.BM_RLD | (3 << 10));
  // A byte write to the low half keeps SLP_TYP in the high half.
  pm.control.write(0, 1, 0);
  assert.equal(pm.control.read(0, 2), PM1_CNT.SCI_EN | (3 << 10));
});

Deno.test("reset() returns to power-on state and drops the SCI", () => {
  const { clock, sci, pm } = setup();
  pm.event.write(2, 2, PM1_EN.PWRBTN | PM1_EN.RTC);
  pm.gpe.write(2, 2, 1 << POWER_BUTTON_GPE);
  pm.pressPowerButton();
  pm.control.write(0, 2, (3 << 10) | PM1_CNT.BM_RLD);
  assert.equal(sci.level, true);
  clock.t = T0 + 30e9;
  assert.ok(pm.timer.read(0, 4) > 0);
  pm.reset();
  assert.equal(sci.level, false);
  assert.deepEqual(sci.calls, ["assert", "deassert"]);
  assert.equal(pm.event.read(0, 4), 0, "STS and EN clear");
  assert.equal(pm.gpe.read(0, 4), 0, "GPE0 STS and EN clear");
  assert.equal(pm.control.read(0, 2), PM1_CNT.SCI_EN);
  assert.equal(pm.timer.read(0, 4), 0, "the timer restarts");
  clock.t += 1e9;
  assert.equal(pm.timer.read(0, 4), 3579545);
  assert.equal(pm.powerButtonEnabled, false);
});

Deno.test("the state lives in the shared layout (another bind sees the registers)", () => {
  const { state, pm } = setup();
  pm.event.write(2, 2, PM1_EN.PWRBTN);
  pm.gpe.write(2, 2, 1 << POWER_BUTTON_GPE);
  pm.pressPowerButton();
  const other = AcpiPmState.bind(AcpiPmState.bufferOf(state));
  assert.equal(other.en, PM1_EN.PWRBTN);
  assert.equal(other.gpeSts, 1 << POWER_BUTTON_GPE);
  assert.equal(other.gpeEn, 1 << POWER_BUTTON_GPE);
  assert.equal(other.cnt, PM1_CNT.SCI_EN);
  assert.equal(other.timerOrigin, T0);
  assert.equal(other.sciLevel, true);
});

Deno.test({
  name: "TMR_STS with TMR_EN raises the SCI",
  fn() {
    const { clock, sci, pm } = setup();
    pm.event.write(2, 2, PM1_EN.TMR);
    clock.t = T0 + Number(dtFor(2n ** 31n));
    assert.equal(pm.event.read(0, 2) & PM1_STS.TMR, PM1_STS.TMR);
    assert.equal(sci.level, true);
  },
});

import assert from "node:assert/strict";
import { FakeIrq, FakePlatform } from "./_fakes.ts";
import {
  CB_AUX_DISABLE,
  CB_AUX_INT,
  CB_KBD_DISABLE,
  CB_KBD_INT,
  CB_SYS_FLAG,
  CB_XLATE,
  CMD_DISABLE_A20,
  CMD_DISABLE_AUX,
  CMD_DISABLE_KBD,
  CMD_ENABLE_A20,
  CMD_ENABLE_AUX,
  CMD_ENABLE_KBD,
  CMD_READ_INPUT,
  CMD_READ_OUTPUT,
  CMD_READ_RAM,
  CMD_RESET_CPU,
  CMD_SELF_TEST,
  CMD_TEST_AUX,
  CMD_TEST_KBD,
  CMD_WRITE_AUX,
  CMD_WRITE_AUX_OBUF,
  CMD_WRITE_KBD_OBUF,
  CMD_WRITE_OUTPUT,
  CMD_WRITE_RAM,
  I8042,
  I8042_COMMAND,
  I8042_DATA,
  I8042_INPUT_PORT,
  I8042_NO_DEVICE,
  I8042_POWER_ON_COMMAND_BYTE,
  I8042_POWER_ON_OUTPUT_PORT,
  I8042State,
  OUT_A20,
  OUT_AUX_OBF,
  OUT_KBD_OBF,
  OUT_RESET,
  SELF_TEST_OK,
  STS_AUX_OBF,
  STS_CMD,
  STS_OBF,
  STS_SYS_FLAG,
  STS_TIMEOUT,
  STS_UNLOCKED,
} from "./i8042.ts";

function setup() {
  const platform = new FakePlatform();
  const irq1 = new FakeIrq();
  const irq12 = new FakeIrq();
  const kbc = new I8042({ platform, irq1, irq12 });
  const status = () => kbc.read(I8042_COMMAND, 1);
  const data = () => kbc.read(I8042_DATA, 1);
  const cmd = (v: number) => kbc.write(I8042_COMMAND, 1, v);
  const put = (v: number) => kbc.write(I8042_DATA, 1, v);
  /** A command with a one-byte reply: returns the reply. */
  const ask = (v: number) => {
    cmd(v);
    assert.equal(status() & STS_OBF, STS_OBF, `command 0x${v.toString(16)} replies`);
    return data();
  };
  return { platform, irq1, irq12, kbc, status, data, cmd, put, ask };
}

Deno.test("i8042: power-on status", () => {
  const { status, irq1, irq12, platform } = setup();
  assert.equal(status(), STS_UNLOCKED, "no data, IBF clear, system flag 0 (cold boot)");
  assert.deepEqual(irq1.calls, []);
  assert.deepEqual(irq12.calls, []);
  assert.equal(platform.requests.length, 0);
});

Deno.test("i8042: self test answers 0x55 and sets the system flag", () => {
  const { status, data, cmd } = setup();
  cmd(CMD_SELF_TEST);
  assert.equal(status(), STS_UNLOCKED | STS_CMD | STS_SYS_FLAG | STS_OBF);
  assert.equal(data(), SELF_TEST_OK);
  assert.equal(status() & STS_OBF, 0, "reading port 0x60 clears OBF");
  assert.equal(status() & STS_SYS_FLAG, STS_SYS_FLAG);
  assert.equal(data(), SELF_TEST_OK, "the output latch keeps its byte");
});

Deno.test("i8042: interface tests answer 0x00", () => {
  const { ask } = setup();
  assert.equal(ask(CMD_TEST_KBD), 0x00);
  assert.equal(ask(CMD_TEST_AUX), 0x00);
});

Deno.test("i8042: command byte round trip and system flag", () => {
  const { ask, cmd, put, status } = setup();
  assert.equal(ask(CMD_READ_RAM), I8042_POWER_ON_COMMAND_BYTE);
  cmd(CMD_WRITE_RAM);
  assert.equal(status() & STS_CMD, STS_CMD);
  put(CB_XLATE | CB_SYS_FLAG | CB_KBD_INT);
  assert.equal(status() & STS_CMD, 0, "a port 0x60 write clears the command/data bit");
  assert.equal(status() & STS_SYS_FLAG, STS_SYS_FLAG, "system flag follows command byte bit 2");
  assert.equal(ask(CMD_READ_RAM), CB_XLATE | CB_SYS_FLAG | CB_KBD_INT);
  cmd(CMD_WRITE_RAM);
  put(0x00);
  assert.equal(status() & STS_SYS_FLAG, 0);
  assert.equal(ask(CMD_READ_RAM), 0x00);
  // other controller RAM bytes (0x21-0x3F / 0x61-0x7F)
  cmd(CMD_WRITE_RAM + 5);
  put(0xa5);
  assert.equal(ask(CMD_READ_RAM + 5), 0xa5);
  assert.equal(ask(CMD_READ_RAM), 0x00);
});

Deno.test("i8042: enable/disable keyboard and aux edit the command byte", () => {
  const { ask, cmd } = setup();
  cmd(CMD_DISABLE_KBD);
  cmd(CMD_DISABLE_AUX);
  assert.equal(ask(CMD_READ_RAM), I8042_POWER_ON_COMMAND_BYTE | CB_KBD_DISABLE | CB_AUX_DISABLE);
  cmd(CMD_ENABLE_KBD);
  assert.equal(ask(CMD_READ_RAM), I8042_POWER_ON_COMMAND_BYTE | CB_AUX_DISABLE);
  cmd(CMD_ENABLE_AUX);
  assert.equal(ask(CMD_READ_RAM), I8042_POWER_ON_COMMAND_BYTE);
});

Deno.test("i8042: 0xFE pulses the reset line", () => {
  const { cmd, platform } = setup();
  cmd(CMD_RESET_CPU);
  assert.deepEqual(platform.requests, [{
    kind: "reset",
    message: "i8042 reset (0xFE to port 0x64)",
  }]);
});

Deno.test("i8042: pulse commands reset only when bit 0 is clear", () => {
  const { cmd, platform, status } = setup();
  cmd(0xff); // pulses nothing
  cmd(0xfd); // pulses A20 only
  cmd(0xf1);
  assert.equal(platform.requests.length, 0);
  cmd(0xf0);
  assert.deepEqual(platform.requests.map((r) => r.kind), ["reset"]);
  assert.match(platform.requests[0].message ?? "", /0xF0/);
  assert.equal(status() & STS_OBF, 0, "pulse commands do not reply");
});

Deno.test("i8042: output port read and write", () => {
  const { ask, cmd, put, platform } = setup();
  assert.equal(ask(CMD_READ_OUTPUT), I8042_POWER_ON_OUTPUT_PORT);
  assert.equal(I8042_POWER_ON_OUTPUT_PORT & (OUT_RESET | OUT_A20), OUT_RESET | OUT_A20);
  cmd(CMD_WRITE_OUTPUT);
  put(OUT_RESET); // A20 off, no reset
  assert.equal(platform.requests.length, 0);
  assert.equal(ask(CMD_READ_OUTPUT), OUT_RESET);
  cmd(CMD_ENABLE_A20);
  assert.equal(ask(CMD_READ_OUTPUT), OUT_RESET | OUT_A20);
  cmd(CMD_DISABLE_A20);
  assert.equal(ask(CMD_READ_OUTPUT), OUT_RESET);
  // bits 4/5 read back as the output buffer state, whatever was written
  cmd(CMD_WRITE_OUTPUT);
  put(OUT_RESET | OUT_KBD_OBF | OUT_AUX_OBF);
  assert.equal(ask(CMD_READ_OUTPUT), OUT_RESET);
  cmd(CMD_WRITE_KBD_OBUF);
  put(0x12);
  cmd(CMD_READ_OUTPUT); // read while the buffer is still full of keyboard data
  assert.equal(ask(CMD_READ_OUTPUT) & (OUT_KBD_OBF | OUT_AUX_OBF), OUT_KBD_OBF);
});

Deno.test("i8042: 0xD1 with bit 0 clear resets the system", () => {
  const { cmd, put, platform } = setup();
  cmd(CMD_WRITE_OUTPUT);
  put(OUT_A20); // bit 0 = 0
  assert.equal(platform.requests.length, 1);
  assert.equal(platform.requests[0].kind, "reset");
  assert.match(platform.requests[0].message ?? "", /output port/);
});

Deno.test("i8042: input port", () => {
  const { ask } = setup();
  assert.equal(ask(CMD_READ_INPUT), I8042_INPUT_PORT);
});

Deno.test("i8042: IRQ1 follows OBF with keyboard data when enabled", () => {
  const { cmd, put, data, status, irq1, irq12 } = setup();
  cmd(CMD_WRITE_KBD_OBUF);
  put(0x1c);
  assert.equal(status() & (STS_OBF | STS_AUX_OBF), STS_OBF);
  assert.deepEqual(irq1.calls, ["assert"]);
  assert.equal(data(), 0x1c);
  assert.deepEqual(irq1.calls, ["assert", "deassert"]);
  // disable the keyboard interrupt: no IRQ1
  cmd(CMD_WRITE_RAM);
  put(0);
  cmd(CMD_WRITE_KBD_OBUF);
  put(0x1d);
  assert.equal(status() & STS_OBF, STS_OBF);
  assert.deepEqual(irq1.calls, ["assert", "deassert"]);
  // enabling it while the buffer is full raises it
  cmd(CMD_WRITE_RAM);
  put(CB_KBD_INT);
  assert.equal(irq1.level, true);
  assert.equal(data(), 0x1d);
  assert.equal(irq1.level, false);
  assert.deepEqual(irq12.calls, []);
});

Deno.test("i8042: IRQ12 follows OBF with aux data when enabled", () => {
  const { cmd, put, data, status, irq1, irq12 } = setup();
  cmd(CMD_WRITE_AUX_OBUF);
  put(0x5a);
  assert.equal(status() & (STS_OBF | STS_AUX_OBF), STS_OBF | STS_AUX_OBF);
  assert.equal(irq12.level, true);
  assert.deepEqual(irq1.calls, []);
  assert.equal(data(), 0x5a);
  assert.equal(status() & (STS_OBF | STS_AUX_OBF), 0);
  assert.equal(irq12.level, false);
  cmd(CMD_WRITE_RAM);
  put(CB_KBD_INT); // aux interrupt off
  cmd(CMD_WRITE_AUX_OBUF);
  put(0x5b);
  assert.deepEqual(irq12.calls, ["assert", "deassert"]);
  assert.equal(irq1.level, false, "aux data never raises IRQ1");
  cmd(CMD_WRITE_RAM);
  put(CB_KBD_INT | CB_AUX_INT);
  assert.equal(irq12.level, true);
});

Deno.test("i8042: bytes for the absent keyboard time out with 0xFE", () => {
  const { put, data, status, irq1 } = setup();
  put(0xff); // keyboard reset command, nobody there
  assert.equal(status() & (STS_OBF | STS_AUX_OBF | STS_TIMEOUT), STS_OBF | STS_TIMEOUT);
  assert.equal(irq1.level, true);
  assert.equal(data(), I8042_NO_DEVICE);
  assert.equal(irq1.level, false);
  // a later controller reply clears the time-out
  const { ask, put: put2, status: status2 } = setup();
  put2(0xf2);
  assert.equal(status2() & STS_TIMEOUT, STS_TIMEOUT);
  assert.equal(ask(CMD_TEST_KBD), 0x00);
  assert.equal(status2() & STS_TIMEOUT, 0);
});

Deno.test("i8042: bytes for the absent mouse time out on the aux channel", () => {
  const { cmd, put, data, status, irq12, irq1 } = setup();
  cmd(CMD_WRITE_AUX);
  put(0xf4);
  assert.equal(
    status() & (STS_OBF | STS_AUX_OBF | STS_TIMEOUT),
    STS_OBF | STS_AUX_OBF | STS_TIMEOUT,
  );
  assert.equal(irq12.level, true);
  assert.equal(irq1.level, false);
  assert.equal(data(), I8042_NO_DEVICE);
});

Deno.test("i8042: unknown commands are ignored", () => {
  const { cmd, put, status, ask, platform, irq1 } = setup();
  for (const c of [0x00, 0x12, 0x90, 0xa0, 0xb5, 0xc8, 0xe0]) cmd(c);
  assert.equal(status(), STS_UNLOCKED | STS_CMD, "no reply, nothing else changed");
  assert.equal(platform.requests.length, 0);
  assert.deepEqual(irq1.calls, []);
  assert.equal(ask(CMD_READ_RAM), I8042_POWER_ON_COMMAND_BYTE);
  // a command replaces one still waiting for its data byte
  cmd(CMD_WRITE_RAM);
  cmd(0x90);
  put(0x00); // now goes to the (absent) keyboard, not to the command byte
  assert.equal(status() & STS_TIMEOUT, STS_TIMEOUT);
  assert.equal(ask(CMD_READ_RAM), I8042_POWER_ON_COMMAND_BYTE);
});

Deno.test("i8042: ports() adapters map 0x60 and 0x64", () => {
  const { kbc, platform } = setup();
  const { data, command } = kbc.ports();
  command.write(0, 1, CMD_SELF_TEST);
  assert.equal(command.read(0, 1) & STS_OBF, STS_OBF);
  assert.equal(data.read(0, 1), SELF_TEST_OK);
  command.write(0, 1, CMD_WRITE_RAM);
  data.write(0, 1, 0x47);
  command.write(0, 1, CMD_READ_RAM);
  assert.equal(data.read(0, 1), 0x47);
  command.write(0, 1, CMD_RESET_CPU);
  assert.equal(platform.requests.length, 1);
  // wide accesses are byte accesses
  command.write(0, 2, 0x1200 | CMD_SELF_TEST);
  assert.equal(data.read(0, 4), SELF_TEST_OK);
  assert.equal(kbc.read(1, 1), 0xff, "offsets 1-3 are not decoded");
});

Deno.test("i8042: reset() restores power-on state and drops the IRQs", () => {
  const { kbc, cmd, put, status, irq1, irq12, ask } = setup();
  cmd(CMD_SELF_TEST);
  cmd(CMD_WRITE_OUTPUT);
  put(OUT_RESET);
  cmd(CMD_WRITE_RAM);
  put(CB_KBD_INT | CB_AUX_INT | CB_KBD_DISABLE);
  cmd(CMD_WRITE_AUX_OBUF);
  put(1);
  cmd(CMD_WRITE_RAM); // left pending
  assert.equal(irq12.level, true);
  kbc.reset();
  assert.equal(irq12.level, false);
  assert.equal(irq1.level, false);
  assert.equal(status(), STS_UNLOCKED);
  put(0x00); // not a pending command byte any more: goes to the keyboard
  assert.equal(status() & STS_TIMEOUT, STS_TIMEOUT);
  kbc.reset();
  assert.equal(ask(CMD_READ_RAM), I8042_POWER_ON_COMMAND_BYTE);
  assert.equal(ask(CMD_READ_OUTPUT), I8042_POWER_ON_OUTPUT_PORT);
  kbc.reset();
  const fresh = new I8042({ platform: new FakePlatform() });
  assert.deepEqual(I8042State.save(kbc.state), I8042State.save(fresh.state));
});

Deno.test("i8042: works with no IRQ lines wired", () => {
  const platform = new FakePlatform();
  const kbc = new I8042({ platform });
  kbc.write(I8042_DATA, 1, 0xff);
  assert.equal(kbc.read(I8042_DATA, 1), I8042_NO_DEVICE);
});

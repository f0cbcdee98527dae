import assert from "node:assert/strict";
import type { AccessSize } from "../device.ts";
import { defineState } from "../state.ts";
import { FakeIntx, FakeMsi } from "../_fakes.ts";
import {
  buildConfigTemplate,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STATUS_INTERRUPT,
  PCI_VENDOR_ID,
} from "./config.ts";
import {
  intxHeader,
  PCI_FUNCTION_FIELDS,
  PciFunction,
  type PciFunctionDeps,
  PciFunctionState,
} from "./function.ts";
import {
  MSI_CONTROL,
  MSI_CTRL_ENABLE,
  msiCapability,
  MSIX_CONTROL,
  MSIX_CTRL_ENABLE,
  MSIX_CTRL_FUNCTION_MASK,
  msixCapability,
  msixFields,
} from "./msi.ts";

const State = defineState("fn-test", 1, { ...PCI_FUNCTION_FIELDS, ...msixFields(2) });

/** A function with one BAR that records its BAR accesses. */
class Recorder extends PciFunction {
  log: string[] = [];
  protected override handleBarRead(bar: number, offset: number, size: AccessSize): number {
    this.log.push(`r${bar}:${offset}:${size}`);
    return 0x1234;
  }
  protected override handleBarWrite(bar: number, offset: number, size: AccessSize, v: number) {
    this.log.push(`w${bar}:${offset}:${size}=${v.toString(16)}`);
  }
}

function setup() {
  const intx = new FakeIntx();
  const msi = new FakeMsi();
  const deps: PciFunctionDeps = { msi, intx: { pin: 1, line: 10, sink: intx } };
  const fn = new Recorder(
    "rec",
    buildConfigTemplate({
      vendorId: 0x1111,
      deviceId: 0x2222,
      classCode: 0xff0000,
      ...intxHeader(deps.intx),
      bars: [{ index: 0, kind: "mem32", size: 0x1000 }],
      capabilities: [
        msiCapability({ vectors: 1, addr64: true, perVectorMask: false }),
        msixCapability({
          vectors: 2,
          tableBar: 0,
          tableOffset: 0x800,
          pbaBar: 0,
          pbaOffset: 0xc00,
        }),
      ],
    }),
    deps,
    State.create(),
  );
  fn.reset();
  return { fn, intx, msi, msiCap: fn.msi!.offset, msixCap: fn.msix!.offset };
}

Deno.test("config: byte, word and dword reads at every aligned offset", () => {
  const { fn } = setup();
  assert.equal(fn.configRead(PCI_VENDOR_ID, 4), 0x22221111);
  assert.equal(fn.configRead(0, 2), 0x1111);
  assert.equal(fn.configRead(2, 2), 0x2222);
  assert.equal(fn.configRead(1, 1), 0x11);
  assert.equal(fn.configRead(3, 1), 0x22);
  assert.equal(fn.configRead(PCI_INTERRUPT_LINE, 2), 0x010a);
  assert.equal(fn.configRead(PCI_INTERRUPT_PIN, 1), 1);
});

Deno.test("config: unaligned accesses that cross a dword are split", () => {
  const { fn } = setup();
  // 0x02-0x05: device ID and the command register.
  assert.equal(fn.configRead(2, 4), 0x00002222);
  fn.configWrite(3, 2, 0x0622); // byte 3 (RO device ID) and byte 4 (command low)
  assert.equal(fn.configRead(PCI_COMMAND, 2), 0x0006);
  assert.equal(fn.configRead(0, 4), 0x22221111);
  fn.configWrite(0x3e, 4, 0x00ff_0000); // Min_Gnt/Max_Lat (RO) and the capability header
  assert.equal(fn.configRead(0x3c, 4), 0x0000010a);
  // A dword at 0xFE: the last two bytes, then two bytes of the (absent) extended space.
  assert.equal(fn.configRead(0xfe, 4), 0);
  assert.ok(fn.configRead(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
});

Deno.test("BAR dispatch: model registers vs MSI-X table and PBA", () => {
  const { fn } = setup();
  assert.equal(fn.barRead(0, 0x10, 4), 0x1234);
  fn.barWrite(0, 0x10, 2, 0xabcd);
  assert.equal(fn.barRead(0, 0x80c, 4), 1); // table entry 0 vector control
  fn.barWrite(0, 0x808, 4, 0x55); // table entry 0 data
  assert.equal(fn.barRead(0, 0xc00, 4), 0); // PBA
  assert.deepEqual(fn.log, ["r0:16:4", "w0:16:2=abcd"]);
  assert.equal(fn.msix!.entry(0).data, 0x55);
});

Deno.test("INTx: level drives the sink; INTx disable masks it; status shows the level", () => {
  const { fn, intx } = setup();
  fn.setIntx(true);
  assert.deepEqual(intx.calls, ["assert"]);
  assert.ok(fn.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
  assert.equal(fn.intxLine, true);
  fn.setIntx(true); // no change, no call
  assert.deepEqual(intx.calls, ["assert"]);
  fn.configWrite(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
  assert.deepEqual(intx.calls, ["assert", "deassert"]);
  // §6.2.3: the status bit is not affected by INTx disable.
  assert.ok(fn.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
  assert.equal(fn.intxLevel, true);
  assert.equal(fn.intxLine, false);
  fn.setIntx(false);
  fn.setIntx(true);
  assert.deepEqual(intx.calls, ["assert", "deassert"]);
  fn.configWrite(PCI_COMMAND, 2, 0);
  assert.deepEqual(intx.calls, ["assert", "deassert", "assert"]);
  fn.setIntx(false);
  assert.deepEqual(intx.calls, ["assert", "deassert", "assert", "deassert"]);
  assert.equal(fn.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
  // Software cannot set or clear the status bit.
  fn.configWrite(PCI_STATUS, 2, 0xffff);
  assert.equal(fn.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
});

Deno.test("INTx: MSI enable and MSI-X enable mask the pin", () => {
  const { fn, intx, msiCap, msixCap } = setup();
  fn.setIntx(true);
  fn.configWrite(msiCap + MSI_CONTROL, 2, MSI_CTRL_ENABLE);
  assert.deepEqual(intx.calls, ["assert", "deassert"]);
  assert.ok(fn.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
  fn.configWrite(msiCap + MSI_CONTROL, 2, 0);
  assert.deepEqual(intx.calls, ["assert", "deassert", "assert"]);
  // MSI-X enable masks INTx even while the function mask is set.
  fn.configWrite(msixCap + MSIX_CONTROL, 2, MSIX_CTRL_ENABLE | MSIX_CTRL_FUNCTION_MASK);
  assert.deepEqual(intx.calls, ["assert", "deassert", "assert", "deassert"]);
  fn.configWrite(msixCap + MSIX_CONTROL, 2, 0);
  assert.equal(intx.level, true);
});

Deno.test("reset releases an asserted pin and restores the header", () => {
  const { fn, intx } = setup();
  fn.configWrite(PCI_INTERRUPT_LINE, 1, 5);
  fn.setIntx(true);
  fn.reset();
  assert.deepEqual(intx.calls, ["assert", "deassert"]);
  assert.equal(fn.intxLevel, false);
  assert.equal(fn.configRead(PCI_INTERRUPT_LINE, 1), 10);
  assert.equal(fn.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
});

Deno.test("a function without INTx wiring has pin 0 and drives nothing", () => {
  const fn = new PciFunction(
    "plain",
    buildConfigTemplate({ vendorId: 1, deviceId: 2, classCode: 0 }),
    {},
    PciFunctionState.create(),
  );
  fn.reset();
  assert.equal(fn.configRead(PCI_INTERRUPT_LINE, 2), 0x00ff);
  fn.setIntx(true);
  assert.equal(fn.intxLine, true);
  assert.equal(fn.barRead(0, 0, 4), 0xffffffff);
});

Deno.test("state is shared: a second binding over the buffer is the same function", () => {
  const template = buildConfigTemplate({ vendorId: 1, deviceId: 2, classCode: 0 });
  const state = PciFunctionState.create();
  const a = new PciFunction("a", template, {}, state);
  a.reset();
  const b = new PciFunction(
    "b",
    template,
    {},
    PciFunctionState.bind(PciFunctionState.bufferOf(state)),
  );
  a.configWrite(PCI_COMMAND, 2, 2);
  a.setIntx(true);
  assert.equal(b.configRead(PCI_COMMAND, 2), 2);
  assert.equal(b.intxLevel, true);
  assert.ok(b.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
});

import assert from "node:assert/strict";
import { defineState } from "../state.ts";
import { FakeMsi } from "../_fakes.ts";
import { buildConfigTemplate, PCI_CAP_ID_MSI, PCI_CAP_ID_MSIX, type PciBarSpec } from "./config.ts";
import { PCI_FUNCTION_FIELDS, PciFunction, PciFunctionState } from "./function.ts";
import {
  MSI_ADDRESS_HI,
  MSI_ADDRESS_LO,
  MSI_CONTROL,
  MSI_CTRL_64BIT,
  MSI_CTRL_ENABLE,
  MSI_CTRL_PVM,
  MSI_DATA_32,
  MSI_DATA_64,
  MSI_MASK_32,
  MSI_MASK_64,
  MSI_PENDING_32,
  MSI_PENDING_64,
  msiCapability,
  type MsiSpec,
  MSIX_CONTROL,
  MSIX_CTRL_ENABLE,
  MSIX_CTRL_FUNCTION_MASK,
  MSIX_ENTRY_ADDRESS_HI,
  MSIX_ENTRY_ADDRESS_LO,
  MSIX_ENTRY_DATA,
  MSIX_ENTRY_SIZE,
  MSIX_ENTRY_VECTOR_CONTROL,
  MSIX_PBA,
  MSIX_TABLE,
  msixCapability,
  msixFields,
  msixPbaSize,
  type MsixSpec,
} from "./msi.ts";

const BASE = { vendorId: 0x1af4, deviceId: 0x1000, classCode: 0xff0000 };

function msiFunction(spec: MsiSpec) {
  const sink = new FakeMsi();
  const state = PciFunctionState.create();
  const fn = new PciFunction(
    "msi",
    buildConfigTemplate({ ...BASE, capabilities: [msiCapability(spec)] }),
    { msi: sink },
    state,
  );
  fn.reset();
  return { fn, sink, cap: fn.msi!.offset };
}

Deno.test("MSI 32-bit: registers, enable and delivery", () => {
  const { fn, sink, cap } = msiFunction({ vectors: 1, addr64: false, perVectorMask: false });
  assert.equal(cap, 0x40);
  assert.equal(fn.configRead(cap, 2), PCI_CAP_ID_MSI);
  assert.equal(fn.configRead(cap + MSI_CONTROL, 2), 0);
  assert.equal(fn.msi!.length, 0x0a);
  fn.configWrite(cap + MSI_ADDRESS_LO, 4, 0xfee01003);
  assert.equal(fn.configRead(cap + MSI_ADDRESS_LO, 4), 0xfee01000); // bits 1:0 reserved
  fn.configWrite(cap + MSI_DATA_32, 4, 0xffff4041);
  assert.equal(fn.configRead(cap + MSI_DATA_32, 4), 0x4041); // upper half reserved
  assert.equal(fn.msi!.send(0), "dropped"); // not enabled
  fn.configWrite(cap + MSI_CONTROL, 2, 0xffff);
  // Only enable and MME are writable; MME is clamped to the capable count.
  assert.equal(fn.configRead(cap + MSI_CONTROL, 2), 0x71);
  assert.equal(fn.msi!.enabledVectors, 1);
  assert.equal(fn.msi!.send(0), "sent");
  assert.equal(fn.msi!.send(1), "dropped");
  assert.deepEqual(sink.sent, [{ address: 0xfee01000, data: 0x4041 }]);
});

Deno.test("MSI 64-bit: upper address", () => {
  const { fn, sink, cap } = msiFunction({ vectors: 1, addr64: true, perVectorMask: false });
  assert.equal(fn.configRead(cap + MSI_CONTROL, 2), MSI_CTRL_64BIT);
  assert.equal(fn.msi!.length, 0x0e);
  fn.configWrite(cap + MSI_ADDRESS_LO, 4, 0xfee00000);
  fn.configWrite(cap + MSI_ADDRESS_HI, 4, 0x1);
  fn.configWrite(cap + MSI_DATA_64, 2, 0x0031);
  fn.configWrite(cap + MSI_CONTROL, 2, MSI_CTRL_ENABLE);
  assert.equal(fn.msi!.send(0), "sent");
  assert.deepEqual(sink.sent, [{ address: 0x1_fee0_0000, data: 0x31 }]);
});

Deno.test("MSI multiple messages: the vector is ORed into the low data bits", () => {
  const { fn, sink, cap } = msiFunction({ vectors: 8, addr64: false, perVectorMask: false });
  assert.equal(fn.configRead(cap + MSI_CONTROL, 2), 3 << 1); // MMC = log2(8)
  fn.configWrite(cap + MSI_ADDRESS_LO, 4, 0xfee00000);
  fn.configWrite(cap + MSI_DATA_32, 2, 0x4063);
  // Four vectors allocated (MME = 2): data bits 1:0 carry the vector.
  fn.configWrite(cap + MSI_CONTROL, 2, (2 << 4) | MSI_CTRL_ENABLE);
  assert.equal(fn.msi!.enabledVectors, 4);
  for (const v of [0, 1, 3]) assert.equal(fn.msi!.send(v), "sent");
  assert.equal(fn.msi!.send(4), "dropped");
  assert.deepEqual(sink.sent.map((m) => m.data), [0x4060, 0x4061, 0x4063]);
  // MME above MMC is taken as MMC.
  fn.configWrite(cap + MSI_CONTROL, 2, (5 << 4) | MSI_CTRL_ENABLE);
  assert.equal(fn.msi!.enabledVectors, 8);
  assert.equal(fn.msi!.messageData(7), 0x4067);
  assert.equal(fn.msi!.messageData(5), 0x4065);
});

Deno.test("MSI per-vector masking: masked vectors pend and go out on unmask", () => {
  for (const addr64 of [false, true]) {
    const { fn, sink, cap } = msiFunction({ vectors: 4, addr64, perVectorMask: true });
    const mask = cap + (addr64 ? MSI_MASK_64 : MSI_MASK_32);
    const pending = cap + (addr64 ? MSI_PENDING_64 : MSI_PENDING_32);
    assert.equal(fn.msi!.length, addr64 ? 0x18 : 0x14);
    assert.ok(fn.configRead(cap + MSI_CONTROL, 2) & MSI_CTRL_PVM);
    fn.configWrite(cap + MSI_ADDRESS_LO, 4, 0xfee00000);
    fn.configWrite(cap + (addr64 ? MSI_DATA_64 : MSI_DATA_32), 2, 0x50);
    fn.configWrite(cap + MSI_CONTROL, 2, (2 << 4) | MSI_CTRL_ENABLE);
    // Only the four implemented mask bits are writable.
    fn.configWrite(mask, 4, 0xffffffff);
    assert.equal(fn.configRead(mask, 4), 0xf);
    assert.equal(fn.msi!.send(2), "pending");
    assert.equal(fn.configRead(pending, 4), 0x4);
    fn.configWrite(pending, 4, 0); // read-only
    assert.equal(fn.configRead(pending, 4), 0x4);
    assert.deepEqual(sink.sent, []);
    fn.configWrite(mask, 4, 0xb); // vector 2 unmasked
    assert.deepEqual(sink.sent, [{ address: 0xfee00000, data: 0x52 }]);
    assert.equal(fn.configRead(pending, 4), 0);
  }
});

const MSIX: MsixSpec = { vectors: 4, tableBar: 1, tableOffset: 0, pbaBar: 1, pbaOffset: 0x800 };
const MsixState = defineState("msix-test", 1, { ...PCI_FUNCTION_FIELDS, ...msixFields(4) });

function msixFunction(
  spec = MSIX,
  bars: readonly PciBarSpec[] = [{ index: 1, kind: "mem32", size: 0x1000 }],
) {
  const sink = new FakeMsi();
  const state = MsixState.create();
  const fn = new PciFunction(
    "msix",
    buildConfigTemplate({ ...BASE, bars, capabilities: [msixCapability(spec)] }),
    { msi: sink },
    state,
  );
  fn.reset();
  return { fn, sink, state, cap: fn.msix!.offset };
}

/** Programs table entry `v` through BAR1. */
function program(fn: PciFunction, v: number, address: number, data: number, masked: boolean) {
  const e = v * MSIX_ENTRY_SIZE;
  fn.barWrite(1, e + MSIX_ENTRY_ADDRESS_LO, 4, address % 2 ** 32);
  fn.barWrite(1, e + MSIX_ENTRY_ADDRESS_HI, 4, Math.floor(address / 2 ** 32));
  fn.barWrite(1, e + MSIX_ENTRY_DATA, 4, data);
  fn.barWrite(1, e + MSIX_ENTRY_VECTOR_CONTROL, 4, masked ? 1 : 0);
}

Deno.test("MSI-X: capability registers", () => {
  const { fn, cap } = msixFunction();
  assert.equal(fn.configRead(cap, 1), PCI_CAP_ID_MSIX);
  assert.equal(fn.configRead(cap + MSIX_CONTROL, 2), 3); // N - 1
  assert.equal(fn.configRead(cap + MSIX_TABLE, 4), 0x00000001);
  assert.equal(fn.configRead(cap + MSIX_PBA, 4), 0x00000801);
  fn.configWrite(cap + MSIX_TABLE, 4, 0x1234);
  fn.configWrite(cap + MSIX_CONTROL, 2, 0xffff);
  assert.equal(fn.configRead(cap + MSIX_TABLE, 4), 1);
  assert.equal(fn.configRead(cap + MSIX_CONTROL, 2), 0xc003);
  assert.equal(msixPbaSize(4), 8);
  assert.equal(msixPbaSize(65), 16);
});

Deno.test("MSI-X: table entries power on masked and hold what is written", () => {
  const { fn } = msixFunction();
  for (let v = 0; v < 4; v++) {
    assert.equal(fn.barRead(1, v * 16 + MSIX_ENTRY_VECTOR_CONTROL, 4), 1);
    assert.equal(fn.barRead(1, v * 16 + MSIX_ENTRY_DATA, 4), 0);
  }
  program(fn, 2, 0xfee0_1003, 0x4055, true);
  assert.equal(fn.barRead(1, 0x20, 4), 0xfee01000);
  assert.equal(fn.barRead(1, 0x28, 4), 0x4055);
  assert.equal(fn.barRead(1, 0x28, 1), 0x55);
  assert.equal(fn.barRead(1, 0x29, 2), 0x40);
  // Reserved vector control bits read 0; narrow writes are ignored.
  fn.barWrite(1, 0x2c, 4, 0xfffffffe);
  assert.equal(fn.barRead(1, 0x2c, 4), 0);
  fn.barWrite(1, 0x28, 2, 0x1111);
  fn.barWrite(1, 0x28, 1, 0x11);
  assert.equal(fn.barRead(1, 0x28, 4), 0x4055);
  // Past the table and PBA, BAR1 belongs to the model (nothing: all ones).
  assert.equal(fn.barRead(1, 0x400, 4), 0xffffffff);
  assert.deepEqual(fn.msix!.entry(2), { address: 0xfee01000, data: 0x4055, masked: false });
});

Deno.test("MSI-X: disabled drops, enabled sends, function mask pends", () => {
  const { fn, sink, cap } = msixFunction();
  program(fn, 0, 0xfee00000, 0x41, false);
  program(fn, 1, 0x1_fee0_0000, 0x42, false);
  assert.equal(fn.msix!.send(0), "dropped");
  fn.configWrite(cap + MSIX_CONTROL, 2, MSIX_CTRL_ENABLE);
  assert.equal(fn.msix!.send(0), "sent");
  assert.equal(fn.msix!.send(1), "sent");
  assert.equal(fn.msix!.send(4), "dropped");
  assert.deepEqual(sink.sent, [
    { address: 0xfee00000, data: 0x41 },
    { address: 0x1_fee0_0000, data: 0x42 },
  ]);
  sink.sent = [];
  fn.configWrite(cap + MSIX_CONTROL, 2, MSIX_CTRL_ENABLE | MSIX_CTRL_FUNCTION_MASK);
  assert.equal(fn.msix!.send(1), "pending");
  assert.equal(fn.barRead(1, 0x800, 4), 0x2);
  fn.barWrite(1, 0x800, 4, 0); // the PBA is read-only
  assert.equal(fn.barRead(1, 0x800, 4), 0x2);
  assert.deepEqual(sink.sent, []);
  fn.configWrite(cap + MSIX_CONTROL, 2, MSIX_CTRL_ENABLE);
  assert.deepEqual(sink.sent, [{ address: 0x1_fee0_0000, data: 0x42 }]);
  assert.equal(fn.barRead(1, 0x800, 4), 0);
});

Deno.test("MSI-X: per-vector mask sets the pending bit; unmask delivers", () => {
  const { fn, sink, cap } = msixFunction();
  fn.configWrite(cap + MSIX_CONTROL, 2, MSIX_CTRL_ENABLE);
  program(fn, 3, 0xfee00000, 0x61, true);
  assert.equal(fn.msix!.send(3), "pending");
  assert.equal(fn.msix!.send(3), "pending"); // still one pending bit
  assert.ok(fn.msix!.pending(3));
  assert.equal(fn.barRead(1, 0x800, 4), 0x8);
  assert.equal(fn.barRead(1, 0x800, 1), 0x8);
  assert.equal(fn.barRead(1, 0x804, 4), 0);
  // Unmasking while MSI-X is disabled keeps it pending.
  fn.configWrite(cap + MSIX_CONTROL, 2, 0);
  fn.barWrite(1, 0x3c, 4, 0);
  assert.deepEqual(sink.sent, []);
  fn.barWrite(1, 0x3c, 4, 1);
  fn.configWrite(cap + MSIX_CONTROL, 2, MSIX_CTRL_ENABLE);
  assert.deepEqual(sink.sent, []);
  fn.barWrite(1, 0x3c, 4, 0);
  assert.deepEqual(sink.sent, [{ address: 0xfee00000, data: 0x61 }]);
  assert.equal(fn.barRead(1, 0x800, 4), 0);
  assert.equal(fn.msix!.pending(3), false);
});

Deno.test("MSI-X: reset masks every vector and clears the PBA", () => {
  const { fn, cap } = msixFunction();
  fn.configWrite(cap + MSIX_CONTROL, 2, MSIX_CTRL_ENABLE | MSIX_CTRL_FUNCTION_MASK);
  program(fn, 0, 0xfee00000, 0x41, false);
  fn.msix!.send(0);
  fn.reset();
  assert.equal(fn.configRead(cap + MSIX_CONTROL, 2), 3);
  assert.equal(fn.barRead(1, 0x0c, 4), 1);
  assert.equal(fn.barRead(1, 0x00, 4), 0);
  assert.equal(fn.barRead(1, 0x800, 4), 0);
});

Deno.test("MSI-X: table and PBA must lie in memory BARs", () => {
  assert.throws(() => msixFunction({ ...MSIX, tableBar: 2 }), /table: BAR2 is not a memory BAR/);
  assert.throws(
    () => msixFunction(MSIX, [{ index: 1, kind: "io", size: 0x100 }]),
    /not a memory BAR/,
  );
  assert.throws(() => msixFunction({ ...MSIX, pbaOffset: 0x1000 }), /PBA: does not fit/);
  assert.throws(() => msixFunction({ ...MSIX, pbaOffset: 0x20 }), /overlap/);
  assert.throws(() => msixCapability({ ...MSIX, tableOffset: 4 }), /QWORD/);
  assert.throws(() => msixCapability({ ...MSIX, vectors: 0 }), /vectors/);
  assert.throws(() => msiCapability({ vectors: 3 as 1, addr64: false, perVectorMask: false }));
  // A layout without the MSI-X arrays is refused.
  assert.throws(
    () =>
      new PciFunction(
        "x",
        buildConfigTemplate({
          ...BASE,
          bars: [{ index: 1, kind: "mem32", size: 0x1000 }],
          capabilities: [msixCapability(MSIX)],
        }),
        {},
        PciFunctionState.create(),
      ),
    /msixTable/,
  );
});

import assert from "node:assert/strict";
import { DEVICE_TYPES, PCI_TYPES } from "../lib/config.ts";
import { FIXED_PORTS, IRQ, PORT } from "../lib/platform.ts";
import { FakeClock, FakeIrqs, FakeMsi, FakePlatform, FakeTimer } from "./_fakes.ts";
import { HPET_GSIS } from "./hpet.ts";
import {
  attachDevice,
  DEVICE_MODELS,
  type DeviceContext,
  DeviceSpecs,
  PCI_DEVICE_TYPES,
} from "./registry.ts";

Deno.test("the TOML device types are exactly the registry's user-placeable models and PCI types", () => {
  const placeable = [...DEVICE_MODELS.values()].filter((m) => m.userPlaceable).map((m) => m.model)
    .sort();
  assert.deepEqual([...DEVICE_TYPES].sort(), placeable);
  assert.deepEqual([...PCI_TYPES].sort(), [...PCI_DEVICE_TYPES.keys()].sort());
});

Deno.test("DeviceSpecs hands out timer slots and refuses duplicate names and unknown models", () => {
  const specs = new DeviceSpecs();
  const pm = specs.add("acpi-pm", "pm", { port: 0x400, sci: 9 });
  const hpet = specs.add("hpet", "hpet", { address: 0xfed00000 });
  const rtc = specs.add("rtc", "rtc", {
    port: 0x70,
    irq: 8,
    utcOffset: 0,
    lowmemEnd: 1 << 24,
    highmemSize: 0,
  });
  assert.deepEqual([pm.timerBase, pm.timerCount, hpet.timerBase, hpet.timerCount, rtc.timerBase], [
    0,
    1,
    1,
    8,
    9,
  ]);
  assert.equal(specs.timerSlots, 10);
  assert.throws(() => specs.add("post", "pm"), /device name pm is used twice/);
  assert.throws(() => specs.add("no-such-model", "x"), /unknown device model no-such-model/);
});

Deno.test("every model's state buffer is shared memory (it is bound in every thread)", () => {
  for (const m of DEVICE_MODELS.values()) {
    const options = m.model === "pci" ? { functions: [] } : {};
    assert.ok(m.newState(options) instanceof SharedArrayBuffer, m.model);
  }
});

/** A DeviceContext of fakes; its interrupt lines come from `irqs`. */
function fakeContext(irqs = new FakeIrqs()): DeviceContext {
  return {
    irq: irqs.line,
    clock: new FakeClock(),
    platform: new FakePlatform(),
    output: () => ({ write: (b) => b.length }),
    msi: new FakeMsi(),
    timers: (s) => Array.from({ length: s.timerCount }, () => new FakeTimer()),
    device: () => undefined,
    hostTime: () => 0,
    picOnlyGsi: (irq) => irq,
    pitHpetLegacy: () => {},
    signal: () => {},
  };
}

Deno.test("the HPET takes every line it may drive at attach, in HPET_GSIS order", () => {
  const spec = new DeviceSpecs().add("hpet", "hpet", { address: 0xfed00000 });
  const irqs = new FakeIrqs();
  attachDevice(fakeContext(irqs), spec);
  assert.deepEqual(irqs.asked, [...HPET_GSIS]);
});

Deno.test("the platform devices claim exactly the platform's fixed port ranges", () => {
  const specs = new DeviceSpecs();
  specs.add("uart16550", "com1", { port: PORT.com1, irq: IRQ.com1, output: 0 });
  specs.add("uart16550", "com2", { port: PORT.com2, irq: IRQ.com2, output: 1 });
  specs.add("i8042", "i8042");
  specs.add("reset-control", "reset-control");
  specs.add("post", "post");
  specs.add("acpi-pm", "acpi-pm", { port: PORT.pm1aEvent, sci: IRQ.sci });
  specs.add("rtc", "rtc", {
    port: PORT.rtc,
    irq: IRQ.rtc,
    utcOffset: 0,
    lowmemEnd: 1 << 30,
    highmemSize: 0,
  });
  specs.add("pci", "pci", {
    ecamBase: 0xe0000000,
    mem32Start: 0xc0000000,
    mem32End: 0xe0000000,
    mem64Start: 2 ** 36,
    mem64End: 2 ** 37,
    pirqIrqs: new Array(8).fill(0x80),
    functions: [],
  });
  const ctx = fakeContext();
  const claimed = new Map<string, { base: number; length: number }>();
  for (const spec of specs.list) {
    for (const r of attachDevice(ctx, spec).ranges) {
      if (r.bus === "pio") claimed.set(r.name, { base: r.base, length: r.length });
    }
  }
  const fixed = FIXED_PORTS.filter((f) => f.owner === "dhyve");
  assert.deepEqual(
    Object.fromEntries(fixed.map((f) => [f.name, claimed.get(f.name)])),
    Object.fromEntries(fixed.map((f) => [f.name, { base: f.base, length: f.length }])),
  );
  assert.deepEqual([...claimed.keys()].sort(), fixed.map((f) => f.name).sort());
});

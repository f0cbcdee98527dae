import assert from "node:assert/strict";
import type { AccessSize } from "../device.ts";
import { defineState } from "../state.ts";
import {
  barOffset,
  buildConfigTemplate,
  PCI_COMMAND,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_HEADER_TYPE,
  type PciBarSpec,
} from "./config.ts";
import { PCI_FUNCTION_FIELDS, PciFunction, PciFunctionState } from "./function.ts";
import {
  CONFIG_ADDRESS_ENABLE,
  ECAM_SIZE,
  HOSTBRIDGE_CLASS,
  PCI_IO_BASE,
  PciHost,
  type PciHostOptions,
  PciHostState,
  type PciSlotFunction,
} from "./host.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const WINDOWS = {
  ecamBase: 0xe0000000,
  mem32: { start: 0xc0000000, end: 0xe0000000 },
  mem64: { start: 64 * GiB, end: 96 * GiB },
};

/** A function whose BARs echo the access: bar << 24 | offset << 4 | size. */
class Echo extends PciFunction {
  constructor(name: string, bars: readonly PciBarSpec[] = [], classCode = 0xff0000) {
    super(
      name,
      buildConfigTemplate({ vendorId: 0x1234, deviceId: 0x1000, classCode, bars }),
      {},
      EchoState.create(),
    );
  }
  writes: string[] = [];
  protected override handleBarRead(bar: number, offset: number, size: AccessSize): number {
    return (bar << 24 | offset << 4 | size) >>> 0;
  }
  protected override handleBarWrite(bar: number, offset: number, size: AccessSize, v: number) {
    this.writes.push(`${bar}:${offset.toString(16)}:${size}=${v.toString(16)}`);
  }
}
const EchoState = defineState("echo", 1, PCI_FUNCTION_FIELDS);

function host(functions: PciSlotFunction[], options: Partial<PciHostOptions> = {}) {
  return new PciHost({ ...WINDOWS, ...options, functions });
}

/** Mechanism #1 helpers over the host's port devices. */
function cf8(h: PciHost) {
  const { configAddress, configData } = h.devices;
  const select = (slot: number, fn: number, reg: number, bus = 0) =>
    configAddress.write(
      0,
      4,
      (CONFIG_ADDRESS_ENABLE | bus << 16 | slot << 11 | fn << 8 | reg) >>> 0,
    );
  return {
    read(slot: number, fn: number, reg: number, size: AccessSize = 4, bus = 0): number {
      select(slot, fn, reg & 0xfc, bus);
      return configData.read(reg & 3, size);
    },
    write(slot: number, fn: number, reg: number, size: AccessSize, v: number): void {
      select(slot, fn, reg & 0xfc);
      configData.write(reg & 3, size, v);
    },
  };
}

const ecamOffset = (bus: number, slot: number, fn: number, reg: number) =>
  bus << 20 | slot << 15 | fn << 12 | reg;

Deno.test("host bridge at 00:00.0", () => {
  const h = host([]);
  const c = cf8(h);
  assert.equal(c.read(0, 0, 0), 0x12378086);
  assert.equal(c.read(0, 0, 8) >>> 8, HOSTBRIDGE_CLASS);
  assert.equal(c.read(0, 0, 0x0c) >>> 16 & 0xff, 0);
  assert.equal(h.functions.length, 1);
});

Deno.test("CONFIG_ADDRESS: only dword accesses latch; reserved bits read 0", () => {
  const h = host([]);
  const { configAddress: a } = h.devices;
  a.write(0, 4, 0xffffffff);
  assert.equal(a.read(0, 4), 0x80fffffc);
  a.write(0, 4, 0x80000010);
  a.write(0, 1, 0x00);
  a.write(0, 2, 0x0000);
  assert.equal(a.read(0, 4), 0x80000010);
  // Narrow reads are plain I/O nobody answers.
  assert.equal(a.read(0, 1), 0xff);
  assert.equal(a.read(0, 2), 0xffff);
  assert.equal(h.configAddress, 0x80000010);
});

Deno.test("CONFIG_DATA: enable bit, byte/word offsets, absent functions", () => {
  const fn = new Echo("echo");
  const h = host([{ slot: 3, function: 0, device: fn }]);
  const { configAddress: a, configData: d } = h.devices;
  // Enable bit clear: reads float, writes are dropped.
  a.write(0, 4, 3 << 11 | 0x04);
  assert.equal(d.read(0, 4), 0xffffffff);
  assert.equal(d.read(1, 1), 0xff);
  d.write(0, 2, PCI_COMMAND_MEMORY);
  assert.equal(fn.configRead(PCI_COMMAND, 2), 0);
  const c = cf8(h);
  assert.equal(c.read(3, 0, 0), 0x10001234);
  assert.equal(c.read(3, 0, 1, 1), 0x12); // byte at 0xCFD
  assert.equal(c.read(3, 0, 2, 2), 0x1000); // word at 0xCFE
  assert.equal(c.read(3, 0, 3, 1), 0x10); // byte at 0xCFF
  assert.equal(c.read(3, 0, 0x0a, 1), 0x00);
  assert.equal(c.read(3, 0, 0x0b, 1), 0xff);
  c.write(3, 0, 0x3c, 1, 0x0b);
  c.write(3, 0, 0x05, 1, 0x04); // INTx disable via 0xCFD
  assert.equal(fn.configRead(0x3c, 1), 0x0b);
  assert.equal(fn.configRead(PCI_COMMAND, 2), 0x0400);
  // Absent functions and other buses read all ones.
  assert.equal(c.read(4, 0, 0), 0xffffffff);
  assert.equal(c.read(3, 1, 0), 0xffffffff);
  assert.equal(c.read(3, 0, 0, 2, 1), 0xffff);
  assert.equal(c.read(0, 0, 0, 4, 1), 0xffffffff);
  c.write(0, 0, 0x3c, 1, 0x0b); // on bus 0: host bridge interrupt line
  assert.equal(c.read(0, 0, 0x3c, 1), 0x0b);
});

Deno.test("ECAM gives the same results as mechanism #1", () => {
  const h = host([
    { slot: 3, function: 0, device: new Echo("a", [{ index: 0, kind: "mem32", size: 4096 }]) },
    { slot: 3, function: 2, device: new Echo("b", [{ index: 2, kind: "io", size: 32 }]) },
    { slot: 31, function: 0, device: new Echo("isa", [], 0x060100) },
  ]);
  const c = cf8(h);
  const ecam = h.devices.ecam;
  for (const slot of [0, 1, 3, 31]) {
    for (let fn = 0; fn < 8; fn++) {
      for (let reg = 0; reg < 0x100; reg += 4) {
        assert.equal(ecam.read(ecamOffset(0, slot, fn, reg), 4), c.read(slot, fn, reg));
        assert.equal(ecam.read(ecamOffset(0, slot, fn, reg + 2), 2), c.read(slot, fn, reg + 2, 2));
      }
    }
  }
  // Beyond 0x100 (ECAM only): 0 for a present function, all ones for an absent one.
  assert.equal(ecam.read(ecamOffset(0, 3, 0, 0x100), 4), 0);
  assert.equal(ecam.read(ecamOffset(0, 3, 1, 0x100), 4), 0xffffffff);
  assert.equal(ecam.read(ecamOffset(1, 3, 0, 0), 4), 0xffffffff);
  assert.equal(ecam.read(ECAM_SIZE - 4, 4), 0xffffffff);
  // Writes through ECAM land in the same registers.
  ecam.write(ecamOffset(0, 3, 0, 0x3c), 1, 0x0e);
  assert.equal(c.read(3, 0, 0x3c, 1), 0x0e);
  ecam.write(ecamOffset(2, 3, 0, 0x3c), 1, 0x0f);
  assert.equal(c.read(3, 0, 0x3c, 1), 0x0e);
});

Deno.test("a configuration access that runs past its dword reaches no register (0xCFx and ECAM)", () => {
  const fn = new Echo("echo", [
    { index: 0, kind: "mem32", size: 4096 },
    { index: 1, kind: "mem32", size: 4096 },
  ]);
  const h = host([{ slot: 3, function: 0, device: fn }]);
  const c = cf8(h);
  const bar1 = c.read(3, 0, 0x14);
  // A dword at 0xCFF (a byte of BAR0, then three of BAR1 if it spilled over).
  c.write(3, 0, 0x13, 4, 0xffffffff);
  assert.equal(c.read(3, 0, 0x14), bar1, "BAR1 untouched");
  assert.equal(c.read(3, 0, 0x13, 4), 0xffffffff);
  assert.equal(c.read(3, 0, 0x13, 2), 0xffff);
  assert.equal(
    c.read(3, 0, 0x12, 2),
    c.read(3, 0, 0x10) >>> 16,
    "a word within the dword still works",
  );
  // ECAM: a word at register 0x13 crosses into 0x14.
  const ecam = h.devices.ecam;
  ecam.write(ecamOffset(0, 3, 0, 0x13), 2, 0xffff);
  assert.equal(c.read(3, 0, 0x14), bar1);
  assert.equal(ecam.read(ecamOffset(0, 3, 0, 0x13), 2), 0xffff);
  assert.equal(ecam.read(ecamOffset(0, 3, 0, 0x11), 2), (c.read(3, 0, 0x10) >>> 8) & 0xffff);
});

Deno.test("multi-function slots get header type bit 7", () => {
  const h = host([
    { slot: 3, function: 0, device: new Echo("a") },
    { slot: 3, function: 1, device: new Echo("b") },
    { slot: 4, function: 0, device: new Echo("c") },
  ]);
  const c = cf8(h);
  assert.equal(c.read(3, 0, PCI_HEADER_TYPE, 1), 0x80);
  assert.equal(c.read(3, 1, PCI_HEADER_TYPE, 1), 0x80);
  assert.equal(c.read(4, 0, PCI_HEADER_TYPE, 1), 0x00);
});

Deno.test("attach errors: taken place, bad slot", () => {
  assert.throws(() => host([{ slot: 0, function: 0, device: new Echo("x") }]), /hostbridge/);
  assert.throws(
    () =>
      host([
        { slot: 5, function: 0, device: new Echo("x") },
        { slot: 5, function: 0, device: new Echo("y") },
      ]),
    /y and x both at 00:05\.0/,
  );
  assert.throws(() => host([{ slot: 32, function: 0, device: new Echo("x") }]), /bad slot/);
});

Deno.test("BAR placement: natural alignment, largest first, per window", () => {
  const a = new Echo("a", [
    { index: 0, kind: "mem32", size: 0x1000 },
    { index: 1, kind: "mem64", size: 0x10000 },
    { index: 3, kind: "io", size: 0x20 },
    { index: 4, kind: "io", size: 0x100 },
  ]);
  const b = new Echo("b", [
    { index: 0, kind: "mem32", size: 0x100000 },
    { index: 2, kind: "mem64", size: 256 * MiB, prefetchable: true },
    { index: 5, kind: "io", size: 0x4 },
  ]);
  const c = new Echo("c", []);
  const h = host([
    { slot: 1, function: 0, device: a },
    { slot: 2, function: 0, device: b },
    { slot: 4, function: 0, device: c },
  ]);
  const addr = (f: PciFunction, i: number) =>
    f.config.barAddress(f.bars.find((x) => x.index === i)!);
  // 32-bit window: b's 1 MiB, then a's 64 KiB (64-bit but small: below 4 GiB, as bhyve), then 4 KiB.
  assert.equal(addr(b, 0), 0xc0000000);
  assert.equal(addr(a, 1), 0xc0100000);
  assert.equal(addr(a, 0), 0xc0110000);
  // The 256 MiB 64-bit BAR goes high.
  assert.equal(addr(b, 2), 64 * GiB);
  assert.equal(b.configRead(barOffset(2), 4), 0x0000000c);
  assert.equal(b.configRead(barOffset(3), 4), 16);
  // I/O from 0x2000: 0x100, 0x20, 0x4.
  assert.equal(addr(a, 4), PCI_IO_BASE);
  assert.equal(addr(a, 3), 0x2100);
  assert.equal(addr(b, 5), 0x2120);
  assert.equal(a.configRead(barOffset(3), 4), 0x2101);
  for (const f of [a, b]) {
    for (const bar of f.bars) assert.equal(addr(f, bar.index) % bar.size, 0);
  }
  // Decoding is on for the spaces each function uses; none without BARs.
  assert.equal(a.configRead(PCI_COMMAND, 2), PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
  assert.equal(c.configRead(PCI_COMMAND, 2), 0);
  assert.equal(h.hostBridge.configRead(PCI_COMMAND, 2), 0);
  // A threshold of 0 puts every 64-bit BAR high.
  host([{ slot: 1, function: 0, device: a }], { mem64Threshold: 0 });
  assert.equal(addr(a, 1), 64 * GiB);
  assert.equal(addr(a, 0), 0xc0000000);
});

Deno.test("BAR placement: an unaligned window start is rounded up", () => {
  const a = new Echo("a", [{ index: 0, kind: "mem32", size: 0x10000 }]);
  host([{ slot: 1, function: 0, device: a }], { mem32: { start: 0xc0001000, end: 0xc0100000 } });
  assert.equal(a.config.barAddress(a.bars[0]), 0xc0010000);
});

Deno.test("BAR placement: a window too small names the function", () => {
  const big = new Echo("big", [{ index: 0, kind: "mem32", size: 1 * GiB }]);
  assert.throws(
    () => host([{ slot: 6, function: 1, device: big }]),
    /no room for BAR0 \(mem32, 0x40000000 bytes\) of big at 00:06\.1 in the 32-bit MMIO window/,
  );
  const io = new Echo("io", [{ index: 0, kind: "io", size: 0x100 }]);
  assert.throws(
    () => host([{ slot: 2, function: 0, device: io }], { io: { start: 0x2000, end: 0x2080 } }),
    /of io at 00:02\.0 in the I\/O window/,
  );
  const high = new Echo("high", [{ index: 0, kind: "mem64", size: 64 * GiB }]);
  assert.throws(() => host([{ slot: 2, function: 0, device: high }]), /64-bit MMIO window/);
});

Deno.test("BAR decoding: windows, command enables and moved BARs", () => {
  const a = new Echo("a", [
    { index: 0, kind: "mem32", size: 0x1000 },
    { index: 2, kind: "mem64", size: 256 * MiB },
    { index: 4, kind: "io", size: 0x20 },
  ]);
  const h = host([{ slot: 1, function: 0, device: a }]);
  const { mem32Window, mem64Window } = h.devices;
  assert.equal(h.mmioRead(0xc0000010, 4), 0x0000104);
  assert.equal(mem32Window.read(0x10, 4), 0x0000104);
  assert.equal(mem32Window.read(0xffc, 2), 0x000ffc2);
  assert.equal(mem64Window.read(0x40, 4), 0x2000404);
  // I/O BARs are decoded by absolute port (the port bus's fallback).
  assert.equal(h.ioRead(0x2004, 1), 0x4000041);
  mem32Window.write(0x20, 4, 0xdead);
  assert.equal(h.ioWrite(0x201f, 1, 0x7), true);
  assert.deepEqual(a.writes, ["0:20:4=dead", "4:1f:1=7"]);
  // Outside every BAR: unclaimed (the windows read all ones).
  assert.equal(h.mmioRead(0xc0001000, 4), undefined);
  assert.equal(mem32Window.read(0x1000, 4), 0xffffffff);
  assert.equal(h.mmioWrite(0xc0001000, 4, 0), false);
  assert.equal(h.mmioRead(0xc0000ffe, 4), undefined); // straddles the BAR end
  assert.equal(h.ioRead(0x2020, 1), undefined);
  // Memory decoding off: memory BARs vanish, I/O stays.
  a.configWrite(PCI_COMMAND, 2, PCI_COMMAND_IO);
  assert.equal(h.mmioRead(0xc0000010, 4), undefined);
  assert.equal(h.ioRead(0x2000, 1), 0x4000001);
  a.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  assert.equal(h.ioRead(0x2000, 1), undefined);
  assert.equal(h.ioWrite(0x2000, 1, 0), false);
  // The guest moves BAR0.
  a.configWrite(barOffset(0), 4, 0xd0000000);
  assert.equal(h.mmioRead(0xc0000010, 4), undefined);
  assert.equal(h.mmioRead(0xd0000010, 4), 0x0000104);
});

Deno.test("reset: every function back to power-on, BARs placed again", () => {
  const a = new Echo("a", [{ index: 0, kind: "mem32", size: 0x1000 }]);
  const state = PciHostState.create();
  const h = new PciHost({ ...WINDOWS, functions: [{ slot: 1, function: 0, device: a }] }, state);
  assert.equal(a.config.barAddress(a.bars[0]), 0); // state used as it is
  h.reset();
  a.configWrite(barOffset(0), 4, 0xd0000000);
  a.configWrite(0x3c, 1, 3);
  h.devices.configAddress.write(0, 4, 0x80000000);
  h.hostBridge.configWrite(PCI_COMMAND, 2, 0x7);
  h.reset();
  assert.equal(a.config.barAddress(a.bars[0]), 0xc0000000);
  assert.equal(a.configRead(0x3c, 1), 0xff);
  assert.equal(h.configAddress, 0);
  assert.equal(h.hostBridge.configRead(PCI_COMMAND, 2), 0);
  // A second host bound over the same state sees the same latch.
  h.devices.configAddress.write(0, 4, 0x80001800);
  const h2 = new PciHost(
    { ...WINDOWS, functions: [{ slot: 1, function: 0, device: a }] },
    PciHostState.bind(PciHostState.bufferOf(state)),
  );
  assert.equal(h2.devices.configAddress.read(0, 4), 0x80001800);
  assert.equal(PciFunctionState.size <= PciHostState.size, true);
});

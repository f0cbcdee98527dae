import assert from "node:assert/strict";
import { FakeIrq, FakeIrqs, FakeMsi } from "../_fakes.ts";
import { PciHost } from "./host.ts";
import { PciLpcBridge } from "./lpc.ts";
import {
  PciTestDevice,
  PciTestDeviceState,
  TESTDEV_DELIVERY,
  TESTDEV_DELIVERY_DROPPED,
  TESTDEV_DELIVERY_MSI,
  TESTDEV_DELIVERY_MSIX,
  TESTDEV_DELIVERY_MSIX_PENDING,
  TESTDEV_DELIVERY_NONE,
  TESTDEV_INTX,
  TESTDEV_MAGIC,
  TESTDEV_MAGIC_VALUE,
  TESTDEV_SCRATCH,
  TESTDEV_SEND,
} from "./testdev.ts";

const MEM32 = { start: 0xc0000000, end: 0xe0000000 };

/** A machine as the integrator wires it: host, LPC at 31, the test device at slot 3. */
function machine() {
  const msi = new FakeMsi();
  const ioapic = new FakeIrq();
  const { lines: isa, line } = new FakeIrqs();
  const lpc = new PciLpcBridge({
    pirqIrqs: [10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80],
    isaIrq: line,
  });
  const route = { slot: 3, function: 0, pin: 1, ioapicPin: 16, pirq: 0, isaIrq: 10 };
  const dev = new PciTestDevice({
    msi,
    intx: { pin: route.pin, line: route.isaIrq, sink: lpc.intxSink(route, ioapic) },
  });
  const host = new PciHost({
    ecamBase: 0xe0000000,
    mem32: MEM32,
    mem64: { start: 2 ** 36, end: 2 ** 37 },
    functions: [{ slot: 3, function: 0, device: dev }, { slot: 31, function: 0, device: lpc }],
  });
  const { configAddress, configData, mem32Window } = host.devices;
  // The probe guest's helpers (tests/guests/probe/pci.c), over the bus devices.
  const bdf = 3 << 3;
  const sel = (reg: number) =>
    configAddress.write(0, 4, (0x80000000 | bdf << 8 | reg & 0xfc) >>> 0);
  const cfgRead = (reg: number) => (sel(reg), configData.read(0, 4));
  const cfgWrite = (reg: number, v: number) => (sel(reg), configData.write(0, 4, v));
  const cfgWrite16 = (reg: number, v: number) => (sel(reg), configData.write(reg & 2, 2, v));
  const rd32 = (a: number) => mem32Window.read(a - MEM32.start, 4);
  const wr32 = (a: number, v: number) => mem32Window.write(a - MEM32.start, 4, v);
  return { msi, ioapic, isa, lpc, dev, host, cfgRead, cfgWrite, cfgWrite16, rd32, wr32 };
}

Deno.test("test device: identity and capabilities as the probe expects", () => {
  const { cfgRead } = machine();
  assert.equal(cfgRead(0x00), 0x00016468);
  assert.equal(cfgRead(0x08), 0xff000001);
  assert.equal(cfgRead(0x0c) >>> 16 & 0xff, 0);
  assert.equal(cfgRead(0x2c), 0x00016468);
  assert.equal(cfgRead(0x3c) & 0xffff, 0x010a);
  assert.ok(cfgRead(0x04) & 1 << 20);
  assert.equal(cfgRead(0x34) & 0xff, 0x40);
  // MSI at 0x40: 64-bit, 1 message, no per-vector masking; next is MSI-X at 0x50.
  assert.equal(cfgRead(0x40), 0x00805005);
  // MSI-X at 0x50: 4 vectors, table BIR 1 offset 0, PBA BIR 1 offset 0x800.
  assert.equal(cfgRead(0x50), 0x00030011);
  assert.equal(cfgRead(0x54), 0x00000001);
  assert.equal(cfgRead(0x58), 0x00000801);
  // BAR sizing: both 4 KiB 32-bit non-prefetchable memory.
  for (const bar of [0x10, 0x14]) {
    const old = cfgRead(bar);
    assert.equal(old & 0xfff, 0);
    assert.ok(old >= MEM32.start);
  }
});

Deno.test("test device: the probe's MSI sequence delivers vector 0x41", () => {
  const { msi, cfgRead, cfgWrite, cfgWrite16, rd32, wr32, dev } = machine();
  const bar = (cfgRead(0x10) & ~0xf) >>> 0;
  cfgWrite16(0x04, (cfgRead(0x04) & 0xffff) | 1 << 1 | 1 << 2 | 1 << 10);
  assert.equal(rd32(bar + TESTDEV_MAGIC), TESTDEV_MAGIC_VALUE);
  let cap = 0;
  for (let p = cfgRead(0x34) & 0xfc, n = 0; p && n < 48; n++) {
    const d = cfgRead(p);
    if ((d & 0xff) === 0x05) {
      cap = p;
      break;
    }
    p = (d >> 8) & 0xfc;
  }
  assert.equal(cap, 0x40);
  const ctl = cfgRead(cap) >>> 16, is64 = ctl & (1 << 7);
  assert.ok(is64);
  cfgWrite(cap + 4, 0xfee00000 | 2 << 12);
  cfgWrite(cap + 8, 0);
  cfgWrite16(cap + 0x0c, 0x41);
  cfgWrite16(cap + 2, (ctl & ~0x70) | 1);
  assert.equal(rd32(bar + TESTDEV_DELIVERY), TESTDEV_DELIVERY_NONE);
  wr32(bar + TESTDEV_SEND, 0);
  assert.deepEqual(msi.sent, [{ address: 0xfee02000, data: 0x41 }]);
  assert.equal(rd32(bar + TESTDEV_DELIVERY), TESTDEV_DELIVERY_MSI);
  assert.equal(rd32(bar + TESTDEV_SEND), 1);
  // Vector 1 is beyond the one enabled message.
  wr32(bar + TESTDEV_SEND, 1);
  assert.equal(rd32(bar + TESTDEV_DELIVERY), TESTDEV_DELIVERY_DROPPED);
  cfgWrite16(cap + 2, ctl & ~1);
  wr32(bar + TESTDEV_SEND, 0);
  assert.equal(rd32(bar + TESTDEV_DELIVERY), TESTDEV_DELIVERY_DROPPED);
  assert.equal(rd32(bar + TESTDEV_SEND), 1);
  assert.equal(dev.msi!.enabled, false);
});

Deno.test("test device: MSI-X send, pending while masked, delivery on unmask", () => {
  const { msi, cfgRead, cfgWrite16, rd32, wr32 } = machine();
  const bar0 = (cfgRead(0x10) & ~0xf) >>> 0, bar1 = (cfgRead(0x14) & ~0xf) >>> 0;
  // Vector 2: address, data, unmasked; vector 3 left masked.
  wr32(bar1 + 0x20, 0xfee00000);
  wr32(bar1 + 0x24, 0);
  wr32(bar1 + 0x28, 0x52);
  wr32(bar1 + 0x2c, 0);
  wr32(bar1 + 0x30, 0xfee01000);
  wr32(bar1 + 0x38, 0x53);
  cfgWrite16(0x52, 0x8000); // MSI-X enable
  wr32(bar0 + TESTDEV_SEND, 2);
  assert.equal(rd32(bar0 + TESTDEV_DELIVERY), TESTDEV_DELIVERY_MSIX);
  wr32(bar0 + TESTDEV_SEND, 3);
  assert.equal(rd32(bar0 + TESTDEV_DELIVERY), TESTDEV_DELIVERY_MSIX_PENDING);
  assert.equal(rd32(bar1 + 0x800), 0x8);
  wr32(bar0 + TESTDEV_SEND, 4); // no such entry
  assert.equal(rd32(bar0 + TESTDEV_DELIVERY), TESTDEV_DELIVERY_DROPPED);
  assert.equal(rd32(bar0 + TESTDEV_SEND), 1);
  wr32(bar1 + 0x3c, 0); // unmask vector 3: the pending message goes out
  assert.equal(rd32(bar1 + 0x800), 0);
  assert.equal(rd32(bar0 + TESTDEV_SEND), 2);
  assert.deepEqual(msi.sent, [
    { address: 0xfee00000, data: 0x52 },
    { address: 0xfee01000, data: 0x53 },
  ]);
});

Deno.test("test device: INTx control through the router", () => {
  const { ioapic, isa, cfgRead, cfgWrite16, rd32, wr32 } = machine();
  const bar = (cfgRead(0x10) & ~0xf) >>> 0;
  wr32(bar + TESTDEV_INTX, 1);
  assert.equal(rd32(bar + TESTDEV_INTX), 3);
  assert.equal(ioapic.level, true);
  assert.equal(isa.get(10)!.level, true);
  assert.ok(cfgRead(0x04) & 1 << 19); // status: interrupt
  cfgWrite16(0x04, (cfgRead(0x04) & 0xffff) | 1 << 10); // INTx disable
  assert.equal(rd32(bar + TESTDEV_INTX), 1);
  assert.equal(ioapic.level, false);
  assert.equal(isa.get(10)!.level, false);
  assert.ok(cfgRead(0x04) & 1 << 19);
  cfgWrite16(0x04, (cfgRead(0x04) & 0xffff) & ~(1 << 10));
  assert.equal(rd32(bar + TESTDEV_INTX), 3);
  wr32(bar + TESTDEV_INTX, 0);
  assert.equal(rd32(bar + TESTDEV_INTX), 0);
  assert.equal(ioapic.level, false);
  assert.equal(cfgRead(0x04) & 1 << 19, 0);
});

Deno.test("test device: scratch, access sizes, unknown registers", () => {
  const { rd32, wr32, host, cfgRead } = machine();
  const bar = (cfgRead(0x10) & ~0xf) >>> 0;
  const w = host.devices.mem32Window;
  assert.equal(rd32(bar + TESTDEV_SCRATCH), 0);
  wr32(bar + TESTDEV_SCRATCH, 0xcafef00d);
  assert.equal(rd32(bar + TESTDEV_SCRATCH), 0xcafef00d);
  // Narrow reads return the bytes of the register; narrow writes are ignored.
  assert.equal(w.read(bar - MEM32.start + 1, 1), 0x68);
  assert.equal(w.read(bar - MEM32.start + 2, 2), 0x7476);
  w.write(bar - MEM32.start + TESTDEV_SCRATCH, 2, 0);
  w.write(bar - MEM32.start + TESTDEV_INTX, 1, 1);
  assert.equal(rd32(bar + TESTDEV_SCRATCH), 0xcafef00d);
  assert.equal(rd32(bar + TESTDEV_INTX), 0);
  // The magic is read-only; other offsets read 0.
  wr32(bar + TESTDEV_MAGIC, 0);
  assert.equal(rd32(bar + TESTDEV_MAGIC), TESTDEV_MAGIC_VALUE);
  assert.equal(rd32(bar + 0x14), 0);
  assert.equal(rd32(bar + 0xffc), 0);
});

Deno.test("test device: reset and a second binding over the shared state", () => {
  const { dev, rd32, wr32, cfgRead, host, msi } = machine();
  const bar = (cfgRead(0x10) & ~0xf) >>> 0;
  wr32(bar + TESTDEV_SCRATCH, 7);
  const twin = new PciTestDevice(
    { msi },
    PciTestDeviceState.bind(PciTestDeviceState.bufferOf(dev.state)),
  );
  assert.equal(twin.barRead(0, TESTDEV_SCRATCH, 4), 7);
  host.reset();
  assert.equal(rd32(bar + TESTDEV_SCRATCH), 0);
  assert.equal(twin.barRead(0, TESTDEV_SCRATCH, 4), 0);
  assert.equal(twin.barRead(1, 0x0c, 4), 1); // MSI-X vectors masked again
});

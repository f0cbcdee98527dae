import assert from "node:assert/strict";
import { FakeIntx, FakeMsi } from "../_fakes.ts";
import type { AccessSize } from "../device.ts";
import { PCI_CAP_ID_MSIX } from "../pci/config.ts";
import { PciHost } from "../pci/host.ts";
import {
  PCI_CAP_ID_VNDR,
  VIRTIO_PCI_CAP,
  VIRTIO_PCI_COMMON as C,
  VIRTIO_PCI_COMMON_LENGTH,
  VIRTIO_PCI_TRANSPORT_FEATURES,
  VirtioPciFunction,
  virtioPciState,
} from "./pci.ts";
import {
  featureBit,
  VIRTIO_F,
  VIRTIO_ID,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_STATUS as S,
  type VirtioDeviceModel,
} from "./types.ts";

const BAR0 = 0xc0000000;
const BAR1 = 0xc0004000;
const ISR = 0x1000, DEVCFG = 0x2000, NOTIFY = 0x3000;
const MODEL_FEATURES = featureBit(0) | featureBit(5);
const VERSION_1 = featureBit(VIRTIO_F.version1);

/** A device with two queues and 12 bytes of configuration, bytes 8-11 writable. */
function fakeModel(over: Partial<VirtioDeviceModel> = {}): VirtioDeviceModel {
  return {
    deviceId: VIRTIO_ID.console,
    pciClass: 0x078000,
    features: MODEL_FEATURES,
    queueSizes: [256, 64],
    configSize: 12,
    initConfig(config) {
      for (let i = 0; i < 8; i++) config[i] = 0x11 * (i + 1);
    },
    configWritable: (offset, size) => offset >= 8 && offset + size <= 12,
    ...over,
  };
}

/** A function with recording sinks, BARs unplaced. */
function setup(opts: { wake?: boolean; model?: VirtioDeviceModel } = {}) {
  const msi = new FakeMsi();
  const intx = new FakeIntx();
  const kicks: number[] = [];
  const log: string[] = [];
  const calls = { wake: 0, moved: 0 };
  const fn = new VirtioPciFunction(opts.model ?? fakeModel(), {
    msi,
    intx: { pin: 1, line: 11, sink: intx },
    kick: (q) => kicks.push(q),
    wake: opts.wake === false ? undefined : () => calls.wake++,
    notifyMoved: () => calls.moved++,
    log: (m) => log.push(m),
  });
  const cfg = (off: number, size: AccessSize = 4) => fn.configRead(off, size);
  const cfgW = (off: number, size: AccessSize, v: number) => fn.configWrite(off, size, v);
  const rd = (off: number, size: AccessSize = 4) => fn.barRead(0, off, size);
  const wr = (off: number, size: AccessSize, v: number) => fn.barWrite(0, off, size, v);
  const status = () => rd(C.deviceStatus, 1);
  const setStatus = (v: number) => wr(C.deviceStatus, 1, v);
  /** Places the BARs and turns on memory decoding and bus mastering, as firmware does. */
  const place = () => {
    cfgW(0x10, 4, BAR0);
    cfgW(0x14, 4, BAR1);
    cfgW(0x04, 2, 0x0006);
  };
  return { fn, msi, intx, kicks, log, calls, cfg, cfgW, rd, wr, status, setStatus, place };
}

type Rig = ReturnType<typeof setup>;

interface Cap {
  id: number;
  at: number;
  cfgType?: number;
  bar?: number;
  offset?: number;
  length?: number;
  multiplier?: number;
}

/** Walks the capability list as a driver does (PCI 3.0 §6.7, virtio §4.1.4.1). */
function readCaps({ cfg }: Rig): Cap[] {
  assert.ok(cfg(0x06, 2) & 0x10, "capabilities list bit");
  const caps: Cap[] = [];
  for (let at = cfg(0x34, 1); at !== 0; at = cfg(at + 1, 1)) {
    assert.ok(caps.length < 16, "capability list loops");
    const id = cfg(at, 1);
    if (id !== PCI_CAP_ID_VNDR) {
      caps.push({ id, at });
      continue;
    }
    const cfgType = cfg(at + 3, 1);
    caps.push({
      id,
      at,
      cfgType,
      bar: cfg(at + 4, 1),
      offset: cfg(at + 8),
      length: cfg(at + 12),
      multiplier: cfgType === VIRTIO_PCI_CAP.notify ? cfg(at + 16) : undefined,
    });
    assert.equal(cfg(at + 2, 1), cfgType === VIRTIO_PCI_CAP.notify || cfgType === 5 ? 20 : 16);
  }
  return caps;
}

function vcap(r: Rig, cfgType: number): Cap {
  const c = readCaps(r).find((c) => c.cfgType === cfgType);
  assert.ok(c, `cap type ${cfgType}`);
  return c;
}

/** Sets up MSI-X (entry v: address 0xfee00000 + v << 12, data 0x40 + v) and enables it. */
function enableMsix(r: Rig) {
  const msix = readCaps(r).find((c) => c.id === PCI_CAP_ID_MSIX)!;
  for (let v = 0; v < 3; v++) {
    r.fn.barWrite(1, v * 16, 4, 0xfee00000 + (v << 12));
    r.fn.barWrite(1, v * 16 + 4, 4, 0);
    r.fn.barWrite(1, v * 16 + 8, 4, 0x40 + v);
    r.fn.barWrite(1, v * 16 + 12, 4, 0);
  }
  r.cfgW(msix.at + 2, 2, 0x8000);
  assert.ok(r.fn.msix?.enabled);
}

/** Linux's virtio_pci_modern probe + virtio_dev_probe, up to DRIVER_OK. */
function linuxInit(r: Rig, opts: { msix?: boolean } = {}) {
  const { rd, wr, status, setStatus, fn } = r;
  r.place();
  if (opts.msix) enableMsix(r);
  setStatus(0);
  if (fn.resetPending) fn.completeReset();
  assert.equal(status(), 0);
  setStatus(S.acknowledge);
  setStatus(S.acknowledge | S.driver);
  wr(C.deviceFeatureSelect, 4, 0);
  const lo = rd(C.deviceFeature);
  wr(C.deviceFeatureSelect, 4, 1);
  const hi = rd(C.deviceFeature);
  const offered = BigInt(hi) << 32n | BigInt(lo);
  const want = offered & (VERSION_1 | featureBit(VIRTIO_F.ringEventIdx) | featureBit(0));
  wr(C.driverFeatureSelect, 4, 0);
  wr(C.driverFeature, 4, Number(want & 0xffffffffn));
  wr(C.driverFeatureSelect, 4, 1);
  wr(C.driverFeature, 4, Number(want >> 32n));
  setStatus(S.acknowledge | S.driver | S.featuresOk);
  assert.equal(status() & S.featuresOk, S.featuresOk);
  if (opts.msix) wr(C.configMsixVector, 2, 0);
  const num = rd(C.numQueues, 2);
  for (let q = 0; q < num; q++) {
    wr(C.queueSelect, 2, q);
    const size = rd(C.queueSize, 2);
    assert.ok(size > 0);
    assert.equal(rd(C.queueEnable, 2), 0);
    const base = 0x100000 * (q + 1);
    wr(C.queueSize, 2, size / 2);
    if (opts.msix) wr(C.queueMsixVector, 2, q + 1);
    wr(C.queueDesc, 4, base);
    wr(C.queueDesc + 4, 4, 0);
    wr(C.queueDriver, 4, base + 0x4000);
    wr(C.queueDriver + 4, 4, 0);
    wr(C.queueDevice, 4, base + 0x8000);
    wr(C.queueDevice + 4, 4, 1); // a high half, to see both halves land
    assert.equal(rd(C.queueNotifyOff, 2), q);
    wr(C.queueEnable, 2, 1);
  }
  setStatus(S.acknowledge | S.driver | S.featuresOk | S.driverOk);
}

Deno.test("virtio-pci: identity, BARs and the capability chain (§4.1.2, §4.1.4)", () => {
  const r = setup();
  const { cfg, cfgW } = r;
  assert.equal(cfg(0x00), (0x1040 + VIRTIO_ID.console) << 16 | 0x1af4);
  assert.equal(cfg(0x08), 0x07800001); // class 07/80/00, revision 1
  assert.equal(cfg(0x2c), (0x1040 + VIRTIO_ID.console) << 16 | 0x1af4);
  assert.equal(cfg(0x3d, 1), 1); // INTA#
  assert.equal(cfg(0x3c, 1), 11);
  // BAR sizing: 16 KiB and 4 KiB of 32-bit memory.
  cfgW(0x10, 4, 0xffffffff);
  assert.equal(cfg(0x10), 0xffffc000);
  cfgW(0x14, 4, 0xffffffff);
  assert.equal(cfg(0x14), 0xfffff000);

  const caps = readCaps(r);
  const msix = caps.find((c) => c.id === PCI_CAP_ID_MSIX)!;
  assert.equal(cfg(msix.at + 2, 2) & 0x7ff, 2); // 3 vectors: queues + 1
  assert.equal(cfg(msix.at + 4), 0x000 | 1); // table in BAR1 at 0
  assert.equal(cfg(msix.at + 8), 0x800 | 1); // PBA in BAR1 at 0x800
  const virtio = caps.filter((c) => c.id === PCI_CAP_ID_VNDR).map((c) => ({
    type: c.cfgType,
    bar: c.bar,
    offset: c.offset,
    length: c.length,
    multiplier: c.multiplier,
  }));
  assert.deepEqual(virtio, [
    { type: 1, bar: 0, offset: 0x0000, length: VIRTIO_PCI_COMMON_LENGTH, multiplier: undefined },
    { type: 2, bar: 0, offset: 0x3000, length: 8, multiplier: 4 },
    { type: 3, bar: 0, offset: 0x1000, length: 1, multiplier: undefined },
    { type: 4, bar: 0, offset: 0x2000, length: 12, multiplier: undefined },
    { type: 5, bar: 0, offset: 0, length: 0, multiplier: undefined },
  ]);
  // Every capability is dword aligned and inside the 256-byte space.
  for (const c of caps) assert.ok(c.at % 4 === 0 && c.at >= 0x40 && c.at < 0x100);
});

Deno.test("virtio-pci: a model without device configuration has no device capability", () => {
  const r = setup({ model: fakeModel({ configSize: 0, queueSizes: [64] }) });
  const types = readCaps(r).map((c) => c.cfgType).filter((t) => t !== undefined);
  assert.deepEqual(types, [1, 2, 3, 5]);
  assert.equal(r.rd(DEVCFG, 4), 0);
});

Deno.test("virtio-pci: the whole Linux init, queues as the I/O worker sees them", () => {
  const r = setup();
  linuxInit(r);
  const { fn } = r;
  assert.equal(r.calls.wake >= 2, true); // the reset and DRIVER_OK
  assert.equal(fn.driverOk, true);
  assert.equal(fn.features, VERSION_1 | featureBit(VIRTIO_F.ringEventIdx) | featureBit(0));
  assert.equal(fn.queueCount, 2);
  assert.deepEqual(fn.queueLayout(0), {
    size: 128,
    desc: 0x100000,
    avail: 0x104000,
    used: 2 ** 32 + 0x108000,
    eventIdx: true,
    indirect: false,
  });
  assert.equal(fn.queueLayout(1)?.size, 32);
  assert.equal(fn.queueLayout(2), null);
  assert.equal(fn.status, S.acknowledge | S.driver | S.featuresOk | S.driverOk);
});

Deno.test("virtio-pci: device features window and FEATURES_OK refusal (§3.1.1 step 6)", () => {
  const r = setup();
  const { rd, wr, status, setStatus, fn } = r;
  wr(C.deviceFeatureSelect, 4, 0);
  assert.equal(rd(C.deviceFeature), Number(MODEL_FEATURES) | 1 << 28 | 1 << 29);
  wr(C.deviceFeatureSelect, 4, 1);
  assert.equal(rd(C.deviceFeature), 1); // VERSION_1 only: never ACCESS_PLATFORM
  wr(C.deviceFeatureSelect, 4, 2);
  assert.equal(rd(C.deviceFeature), 0);
  assert.equal(fn.offeredFeatures, MODEL_FEATURES | VIRTIO_PCI_TRANSPORT_FEATURES);

  const offerDriver = (f: bigint) => {
    wr(C.driverFeatureSelect, 4, 0);
    wr(C.driverFeature, 4, Number(f & 0xffffffffn));
    wr(C.driverFeatureSelect, 4, 1);
    wr(C.driverFeature, 4, Number(f >> 32n));
  };
  setStatus(S.acknowledge | S.driver);
  // Without VERSION_1: refused.
  offerDriver(featureBit(0));
  setStatus(S.acknowledge | S.driver | S.featuresOk);
  assert.equal(status(), S.acknowledge | S.driver);
  assert.equal(fn.features, 0n);
  // A bit that was not offered (bit 40), or ACCESS_PLATFORM: refused.
  offerDriver(VERSION_1 | featureBit(40));
  setStatus(S.acknowledge | S.driver | S.featuresOk);
  assert.equal(status() & S.featuresOk, 0);
  offerDriver(VERSION_1 | featureBit(VIRTIO_F.accessPlatform));
  setStatus(S.acknowledge | S.driver | S.featuresOk);
  assert.equal(status() & S.featuresOk, 0);
  // A proper subset: accepted.
  offerDriver(VERSION_1 | featureBit(5));
  wr(C.driverFeatureSelect, 4, 1);
  assert.equal(rd(C.driverFeature), 1);
  setStatus(S.acknowledge | S.driver | S.featuresOk);
  assert.equal(status() & S.featuresOk, S.featuresOk);
  assert.equal(fn.features, VERSION_1 | featureBit(5));
  // No new feature bits after FEATURES_OK.
  wr(C.driverFeatureSelect, 4, 0);
  wr(C.driverFeature, 4, 0xffffffff);
  assert.equal(rd(C.driverFeature), 1 << 5);
  assert.equal(fn.features, VERSION_1 | featureBit(5));
  // DRIVER_OK without FEATURES_OK is stored but the device is not live.
  const r2 = setup();
  r2.setStatus(S.acknowledge | S.driver | S.driverOk);
  assert.equal(r2.fn.driverOk, false);
});

Deno.test("virtio-pci: queue registers (§4.1.4.3)", () => {
  const r = setup();
  const { rd, wr, fn } = r;
  assert.equal(rd(C.numQueues, 2), 2);
  wr(C.queueSelect, 2, 0);
  assert.equal(rd(C.queueSize, 2), 256);
  assert.equal(rd(C.queueMsixVector, 2), VIRTIO_MSI_NO_VECTOR);
  // Sizes: a power of two no larger than the maximum.
  wr(C.queueSize, 2, 100);
  assert.equal(rd(C.queueSize, 2), 256);
  wr(C.queueSize, 2, 512);
  assert.equal(rd(C.queueSize, 2), 256);
  wr(C.queueSize, 2, 0);
  assert.equal(rd(C.queueSize, 2), 256);
  wr(C.queueSize, 2, 16);
  assert.equal(rd(C.queueSize, 2), 16);
  // 64-bit addresses: two 32-bit halves, or one 64-bit access.
  wr(C.queueDesc, 4, 0x12345000);
  wr(C.queueDesc + 4, 4, 0x2);
  assert.equal(rd(C.queueDesc), 0x12345000);
  assert.equal(rd(C.queueDesc + 4), 2);
  assert.equal(rd(C.queueDesc, 8), 2 * 2 ** 32 + 0x12345000);
  wr(C.queueDriver, 8, 3 * 2 ** 32 + 0x6000);
  assert.equal(rd(C.queueDriver), 0x6000);
  assert.equal(rd(C.queueDriver + 4), 3);
  // A write of 0 to queue_enable is ignored; 1 enables.
  wr(C.queueEnable, 2, 0);
  assert.equal(rd(C.queueEnable, 2), 0);
  assert.equal(fn.queueLayout(0), null);
  wr(C.queueEnable, 2, 1);
  assert.equal(rd(C.queueEnable, 2), 1);
  wr(C.queueEnable, 2, 0);
  assert.equal(rd(C.queueEnable, 2), 1);
  // Once enabled the ring's place and size are fixed.
  wr(C.queueSize, 2, 8);
  wr(C.queueDesc, 4, 0x9000);
  assert.deepEqual(
    [rd(C.queueSize, 2), rd(C.queueDesc)],
    [16, 0x12345000],
  );
  // Vectors the table does not have read back as NO_VECTOR (§4.1.5.1.2).
  wr(C.queueMsixVector, 2, 2);
  assert.equal(rd(C.queueMsixVector, 2), 2);
  wr(C.queueMsixVector, 2, 3);
  assert.equal(rd(C.queueMsixVector, 2), VIRTIO_MSI_NO_VECTOR);
  wr(C.configMsixVector, 2, 7);
  assert.equal(rd(C.configMsixVector, 2), VIRTIO_MSI_NO_VECTOR);
  wr(C.configMsixVector, 2, 0);
  assert.equal(rd(C.configMsixVector, 2), 0);
  // Queue 1 is separate.
  wr(C.queueSelect, 2, 1);
  assert.deepEqual([rd(C.queueSize, 2), rd(C.queueEnable, 2), rd(C.queueNotifyOff, 2)], [
    64,
    0,
    1,
  ]);
  // A queue that does not exist reads size 0 and takes no writes.
  wr(C.queueSelect, 2, 5);
  assert.equal(rd(C.queueSelect, 2), 5);
  assert.equal(rd(C.queueSize, 2), 0);
  assert.equal(rd(C.queueMsixVector, 2), VIRTIO_MSI_NO_VECTOR);
  wr(C.queueSize, 2, 4);
  wr(C.queueEnable, 2, 1);
  wr(C.queueDesc, 4, 0x1000);
  assert.deepEqual([rd(C.queueSize, 2), rd(C.queueEnable, 2), rd(C.queueDesc)], [0, 0, 0]);
  // queue_notify_data and queue_reset (not offered) read 0.
  wr(C.queueSelect, 2, 0);
  wr(C.queueReset, 2, 1);
  assert.equal(rd(C.queueNotifyData, 2), 0);
  assert.equal(rd(C.queueReset, 2), 0);
  // Past the structure: 0.
  assert.equal(rd(VIRTIO_PCI_COMMON_LENGTH, 4), 0);
  // RO registers ignore writes.
  wr(C.numQueues, 2, 9);
  wr(C.configGeneration, 1, 9);
  assert.equal(rd(C.numQueues, 2), 2);
  assert.equal(rd(C.configGeneration, 1), 0);
});

Deno.test("virtio-pci: DRIVER_OK wakes the worker; notify kicks valid queues (§4.1.5.2)", () => {
  const r = setup();
  linuxInit(r);
  const ready = S.acknowledge | S.driver | S.featuresOk;
  // The DRIVER_OK write itself woke the worker.
  r.setStatus(ready);
  const before = r.calls.wake;
  r.setStatus(ready | S.driverOk);
  assert.equal(r.calls.wake, before + 1);
  r.setStatus(ready | S.driverOk); // no change: no wake
  assert.equal(r.calls.wake, before + 1);
  // A driver clearing DRIVER_OK (not a spec sequence) is stored, and wakes.
  r.setStatus(ready);
  assert.equal(r.status(), ready);
  assert.equal(r.fn.driverOk, false);
  assert.equal(r.calls.wake, before + 2);
  r.setStatus(ready | S.driverOk);
  r.wr(NOTIFY + 0, 2, 0);
  r.wr(NOTIFY + 4, 2, 1);
  r.wr(NOTIFY + 4, 4, 1);
  r.wr(NOTIFY + 0, 1, 0);
  r.wr(NOTIFY + 8, 2, 2); // no queue 2
  r.wr(NOTIFY + 2, 2, 0); // not a notification word
  r.wr(NOTIFY + 0xffc, 2, 0);
  assert.deepEqual(r.kicks, [0, 1, 1, 0]);
  assert.equal(r.rd(NOTIFY, 2), 0);
});

Deno.test("virtio-pci: INTx with the ISR (§4.1.4.5)", () => {
  const r = setup();
  linuxInit(r);
  const { fn, intx, rd, cfg } = r;
  fn.interrupt(0);
  assert.equal(intx.level, true);
  assert.ok(cfg(0x06, 2) & 0x08); // PCI status: interrupt
  fn.interrupt(1);
  assert.deepEqual(intx.calls, ["assert"]);
  assert.equal(rd(ISR, 1), 1);
  assert.equal(intx.level, false);
  assert.equal(cfg(0x06, 2) & 0x08, 0);
  assert.equal(rd(ISR, 1), 0); // cleared by the read
  fn.configChanged();
  assert.equal(rd(C.configGeneration, 1), 1);
  assert.equal(intx.level, true);
  fn.interrupt(0);
  assert.equal(rd(ISR, 4), 3); // any width reads the byte
  assert.equal(intx.level, false);
  // Only the status byte clears; writes are ignored.
  fn.interrupt(0);
  assert.equal(rd(ISR + 1, 1), 0);
  r.wr(ISR, 1, 0);
  assert.equal(intx.level, true);
  assert.equal(rd(ISR, 1), 1);
  // Invalid queues raise nothing.
  fn.interrupt(7);
  fn.interrupt(-1);
  assert.equal(intx.level, false);
  // INTx Disable masks the pin, not the ISR.
  r.cfgW(0x04, 2, 0x0406);
  fn.interrupt(1);
  assert.equal(intx.level, false);
  assert.equal(rd(ISR, 1), 1);
});

Deno.test("virtio-pci: configuration changes are signalled only after DRIVER_OK", () => {
  const r = setup();
  r.place();
  r.fn.configChanged();
  assert.equal(r.rd(C.configGeneration, 1), 1);
  assert.equal(r.intx.level, false);
  assert.equal(r.rd(ISR, 1), 0);
  for (let i = 0; i < 255; i++) r.fn.configChanged();
  assert.equal(r.rd(C.configGeneration, 1), 0); // wraps (u8)
});

Deno.test("virtio-pci: MSI-X vectors for queues and configuration (§4.1.5.1.2)", () => {
  const r = setup();
  linuxInit(r, { msix: true });
  const { fn, msi, intx, rd } = r;
  fn.interrupt(0);
  fn.interrupt(1);
  fn.configChanged();
  assert.deepEqual(msi.sent, [
    { address: 0xfee01000, data: 0x41 },
    { address: 0xfee02000, data: 0x42 },
    { address: 0xfee00000, data: 0x40 },
  ]);
  assert.equal(intx.level, false);
  assert.equal(rd(ISR, 1), 0); // the ISR is unused with MSI-X
  // An unmapped queue sends nothing.
  r.wr(C.queueSelect, 2, 1);
  r.wr(C.queueMsixVector, 2, VIRTIO_MSI_NO_VECTOR);
  fn.interrupt(1);
  assert.equal(msi.sent.length, 3);
  // A masked vector goes pending and is sent when unmasked.
  fn.barWrite(1, 1 * 16 + 12, 4, 1);
  fn.interrupt(0);
  assert.equal(msi.sent.length, 3);
  assert.equal(fn.msix?.pending(1), true);
  fn.barWrite(1, 1 * 16 + 12, 4, 0);
  assert.deepEqual(msi.sent[3], { address: 0xfee01000, data: 0x41 });
});

Deno.test("virtio-pci: reset handshake (§2.4, §4.1.4.3.1)", () => {
  const r = setup();
  linuxInit(r, { msix: true });
  const { fn, rd, wr, status, setStatus } = r;
  r.fn.interrupt(0);
  const gen = fn.resetGeneration;
  const wakes = r.calls.wake;
  const live = S.acknowledge | S.driver | S.featuresOk | S.driverOk;
  setStatus(0);
  assert.equal(r.calls.wake, wakes + 1);
  assert.equal(fn.resetPending, true);
  assert.equal(fn.driverOk, false);
  // The old value shows until the I/O worker completes the reset.
  assert.equal(status(), live);
  // Writes in between are dropped.
  assert.equal(rd(C.queueSelect, 2), 1);
  wr(C.queueSelect, 2, 0);
  setStatus(S.acknowledge);
  assert.equal(rd(C.queueSelect, 2), 1);
  assert.equal(status(), live);
  // The queues are still there for the worker to drain.
  assert.notEqual(fn.queueLayout(0), null);
  fn.completeReset();
  assert.equal(fn.resetPending, false);
  assert.equal(fn.resetGeneration, gen + 1);
  assert.equal(status(), 0);
  assert.equal(fn.features, 0n);
  assert.equal(rd(C.configMsixVector, 2), VIRTIO_MSI_NO_VECTOR);
  for (let q = 0; q < 2; q++) {
    wr(C.queueSelect, 2, q);
    assert.equal(rd(C.queueSize, 2), [256, 64][q]);
    assert.equal(rd(C.queueMsixVector, 2), VIRTIO_MSI_NO_VECTOR);
    assert.equal(rd(C.queueEnable, 2), 0);
    assert.equal(rd(C.queueDesc, 8), 0);
    assert.equal(rd(C.queueDriver, 8), 0);
    assert.equal(rd(C.queueDevice, 8), 0);
    assert.equal(fn.queueLayout(q), null);
  }
  wr(C.driverFeatureSelect, 4, 1);
  assert.equal(rd(C.driverFeature), 0);
  // Not a PCI reset: BARs, command, MSI-X table and device configuration stay.
  assert.equal(r.cfg(0x10), BAR0);
  assert.equal(r.cfg(0x04, 2) & 0x6, 0x6);
  assert.equal(fn.msix?.enabled, true);
  assert.equal(fn.barRead(1, 16, 4), 0xfee01000);
  assert.equal(rd(DEVCFG, 1), 0x11);
  // And the device works again after a second init.
  linuxInit(r, { msix: true });
  assert.equal(fn.driverOk, true);
});

Deno.test("virtio-pci: without a wake dependency a reset completes at once", () => {
  const r = setup({ wake: false });
  linuxInit(r);
  r.fn.interrupt(0);
  assert.equal(r.intx.level, true);
  const gen = r.fn.resetGeneration;
  r.setStatus(0);
  assert.equal(r.fn.resetPending, false);
  assert.equal(r.status(), 0);
  assert.equal(r.fn.resetGeneration, gen + 1);
  assert.equal(r.intx.level, false); // the ISR is cleared too
  assert.equal(r.rd(ISR, 1), 0);
});

Deno.test("virtio-pci: DEVICE_NEEDS_RESET (§2.1.2)", () => {
  const r = setup();
  linuxInit(r, { msix: true });
  const { fn, msi, status, setStatus } = r;
  fn.setNeedsReset("ring broke");
  assert.deepEqual(r.log, ["ring broke"]);
  assert.equal(status() & S.deviceNeedsReset, S.deviceNeedsReset);
  assert.equal(fn.needsReset, true);
  assert.equal(fn.driverOk, false);
  assert.deepEqual(msi.sent, [{ address: 0xfee00000, data: 0x40 }]); // the config vector
  assert.equal(r.rd(C.configGeneration, 1), 1);
  fn.setNeedsReset("again");
  assert.equal(msi.sent.length, 1);
  // The driver's read-modify-write keeps the device's bit without storing it.
  setStatus(status() | S.failed);
  assert.equal(status(), S.acknowledge | S.driver | S.featuresOk | S.driverOk | S.failed | 0x40);
  setStatus(0);
  fn.completeReset();
  assert.equal(status(), 0);
  assert.equal(fn.needsReset, false);
});

Deno.test("virtio-pci: notifyAddress follows memory decoding and BAR0", () => {
  const r = setup();
  const { fn, cfgW, calls } = r;
  assert.equal(fn.notifyAddress(0), null);
  cfgW(0x10, 4, BAR0); // memory decoding off: nothing decodes, nothing moved
  assert.equal(calls.moved, 0);
  assert.equal(fn.notifyAddress(0), null);
  cfgW(0x04, 2, 0x0002);
  assert.equal(calls.moved, 1);
  assert.equal(fn.notifyAddress(0), BAR0 + NOTIFY);
  assert.equal(fn.notifyAddress(1), BAR0 + NOTIFY + 4);
  assert.equal(fn.notifyAddress(2), null);
  assert.equal(fn.notifyAddress(0.5), null);
  cfgW(0x04, 2, 0x0006); // bus master only: not moved
  assert.equal(calls.moved, 1);
  cfgW(0x10, 4, 0xd0000000);
  assert.equal(calls.moved, 2);
  assert.equal(fn.notifyAddress(1), 0xd0000000 + NOTIFY + 4);
  cfgW(0x10, 4, 0xd0000000); // the same value: not moved
  assert.equal(calls.moved, 2);
  cfgW(0x14, 4, BAR1); // BAR1 holds no notification words
  assert.equal(calls.moved, 2);
  cfgW(0x04, 1, 0x04);
  assert.equal(calls.moved, 3);
  assert.equal(fn.notifyAddress(0), null);
  // A BAR at 0 is not placed.
  cfgW(0x10, 4, 0);
  cfgW(0x04, 2, 0x0002);
  assert.equal(fn.notifyAddress(0), null);
  // A PCI reset with decoding on tells the host too.
  cfgW(0x10, 4, BAR0);
  const moved = calls.moved;
  fn.reset();
  assert.equal(calls.moved, moved + 1);
  assert.equal(fn.notifyAddress(0), null);
});

Deno.test("virtio-pci: the PCI configuration access capability (§4.1.4.8)", () => {
  const r = setup();
  const cap = vcap(r, VIRTIO_PCI_CAP.pci).at;
  const { cfg, cfgW, fn } = r;
  const window = (bar: number, offset: number, length: number) => {
    cfgW(cap + 4, 1, bar);
    cfgW(cap + 8, 4, offset);
    cfgW(cap + 12, 4, length);
  };
  // Works with the BARs unplaced and memory decoding off: that is its purpose.
  window(0, C.numQueues, 2);
  assert.equal(cfg(cap + 16), 2);
  window(0, C.deviceFeatureSelect, 4);
  cfgW(cap + 16, 4, 1);
  assert.equal(r.rd(C.deviceFeatureSelect), 1);
  window(0, C.deviceFeature, 4);
  assert.equal(cfg(cap + 16), 1);
  window(0, C.deviceStatus, 1);
  cfgW(cap + 16, 1, S.acknowledge);
  assert.equal(r.status(), S.acknowledge);
  assert.equal(cfg(cap + 16, 1), S.acknowledge);
  // The device configuration, and a notify through the window.
  window(0, DEVCFG + 4, 4);
  assert.equal(cfg(cap + 16), 0x88776655);
  window(0, NOTIFY + 4, 2);
  cfgW(cap + 16, 2, 1);
  assert.deepEqual(r.kicks, [1]);
  // The ISR: a read through the window clears it.
  fn.interrupt(0);
  assert.equal(r.intx.level, true);
  window(0, ISR, 1);
  assert.equal(cfg(cap + 16, 1), 1);
  assert.equal(r.intx.level, false);
  assert.equal(r.rd(ISR, 1), 0);
  // Misaligned, odd lengths, outside the BAR, a BAR that does not exist: nothing.
  cfgW(cap + 16, 4, 0xdeadbeef);
  window(0, C.deviceFeatureSelect + 1, 2);
  assert.equal(cfg(cap + 16), 0xdeadbeef);
  window(0, C.deviceFeatureSelect, 3);
  assert.equal(cfg(cap + 16), 0xdeadbeef);
  window(0, 0x4000, 4);
  assert.equal(cfg(cap + 16), 0xdeadbeef);
  window(3, 0, 4);
  assert.equal(cfg(cap + 16), 0xdeadbeef);
  cfgW(cap + 16, 4, 0);
  // The MSI-X table in BAR1 is reachable too.
  window(1, 8, 4);
  cfgW(cap + 16, 4, 0x1234);
  assert.equal(fn.barRead(1, 8, 4), 0x1234);
  // The type and capability length are read-only.
  cfgW(cap + 2, 2, 0xffff);
  assert.equal(cfg(cap + 2, 2), 5 << 8 | 20);
});

Deno.test("virtio-pci: device configuration (§4.1.4.6)", () => {
  const r = setup();
  const { rd, wr, fn } = r;
  assert.equal(rd(DEVCFG, 1), 0x11);
  assert.equal(rd(DEVCFG, 2), 0x2211);
  assert.equal(rd(DEVCFG + 1, 4), 0x55443322);
  assert.equal(rd(DEVCFG, 8), 0x8877665544332211);
  assert.equal(rd(DEVCFG + 10, 4), 0); // past configSize
  wr(DEVCFG, 4, 0xffffffff); // read-only part
  assert.equal(rd(DEVCFG, 4), 0x44332211);
  wr(DEVCFG + 8, 4, 0xcafef00d);
  assert.equal(rd(DEVCFG + 8, 4), 0xcafef00d);
  wr(DEVCFG + 10, 4, 0); // runs past the end
  assert.equal(rd(DEVCFG + 8, 4), 0xcafef00d);
  assert.deepEqual([...fn.deviceConfig.subarray(8)], [0x0d, 0xf0, 0xfe, 0xca]);
  assert.equal(fn.deviceConfig.length, 12);
  // The device side changes it and bumps the generation.
  fn.deviceConfig[0] = 0x99;
  fn.configChanged();
  assert.equal(rd(DEVCFG, 1), 0x99);
  assert.equal(rd(C.configGeneration, 1), 1);
  // A model without configWritable takes no writes.
  const ro = setup({ model: fakeModel({ configWritable: undefined }) });
  ro.wr(DEVCFG + 8, 4, 1);
  assert.equal(ro.rd(DEVCFG + 8, 4), 0);
});

Deno.test("virtio-pci: a PCI reset restores everything, the device configuration included", () => {
  const r = setup();
  linuxInit(r, { msix: true });
  r.wr(DEVCFG + 8, 4, 0x1234);
  r.fn.deviceConfig[0] = 0;
  r.fn.configChanged();
  const gen = r.fn.resetGeneration;
  r.fn.reset();
  assert.equal(r.cfg(0x10), 0);
  assert.equal(r.fn.msix?.enabled, false);
  assert.equal(r.status(), 0);
  assert.equal(r.rd(C.configGeneration, 1), 0);
  assert.equal(r.rd(DEVCFG, 1), 0x11);
  assert.equal(r.rd(DEVCFG + 8, 4), 0);
  assert.equal(r.fn.resetGeneration, gen + 1);
});

Deno.test("virtio-pci: all state is shared: a second binding sees everything", () => {
  const model = fakeModel();
  const r = setup({ model });
  linuxInit(r);
  const layout = virtioPciState(model);
  assert.equal(virtioPciState(fakeModel()), layout);
  const kicks: number[] = [];
  const other = new VirtioPciFunction(
    model,
    { kick: (q) => kicks.push(q) },
    layout.bind(layout.bufferOf(r.fn.state)),
  );
  assert.equal(other.driverOk, true);
  assert.deepEqual(other.queueLayout(0), r.fn.queueLayout(0));
  assert.equal(other.features, r.fn.features);
  other.barWrite(0, C.deviceStatus, 1, 0);
  assert.equal(r.fn.resetPending, false); // no wake there: completed at once
  assert.equal(r.status(), 0);
  // A snapshot round trip.
  const saved = layout.save(r.fn.state);
  const fresh = layout.create();
  layout.load(fresh, saved);
  assert.deepEqual(layout.save(fresh), saved);
});

Deno.test("virtio-pci: odd widths and offsets never throw", () => {
  const r = setup();
  linuxInit(r, { msix: true });
  const sizes: AccessSize[] = [1, 2, 4, 8];
  let seed = 1;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let off = 0; off < 0x4000; off += off < 0x40 || (off >= 0x2000 && off < 0x2010) ? 1 : 61) {
    for (const size of sizes) {
      r.fn.barRead(0, off, size);
      r.fn.barWrite(0, off, size, rand() * (size === 8 ? 2 ** 20 : 1) % 2 ** (8 * size));
    }
  }
  for (let off = 0; off < 0x1000; off += 7) {
    for (const size of sizes) {
      r.fn.barRead(1, off, size);
      r.fn.barWrite(1, off, size, rand());
    }
  }
  for (let off = 0; off < 0x100; off++) {
    for (const size of sizes) {
      r.fn.configRead(off, size);
      r.fn.configWrite(off, size, rand());
    }
  }
  // A bad queue number, a vector of NaN: nothing.
  r.fn.interrupt(NaN);
  assert.equal(r.fn.queueLayout(NaN), null);
});

Deno.test("virtio-pci: unaligned common configuration accesses", () => {
  const r = setup();
  const { rd, wr } = r;
  // device_status and config_generation in one 16-bit read.
  wr(C.deviceStatus, 1, S.acknowledge);
  assert.equal(rd(C.deviceStatus, 2), S.acknowledge);
  // A byte write into queue_select's high byte merges.
  wr(C.queueSelect, 2, 1);
  wr(C.queueSelect + 1, 1, 0);
  assert.equal(rd(C.queueSelect, 2), 1);
  // A 32-bit write over queue_select and queue_size writes both.
  wr(C.queueSelect, 4, 32 << 16 | 1);
  assert.equal(rd(C.queueSize, 2), 32);
  // A 64-bit read across feature select and feature.
  wr(C.deviceFeatureSelect, 4, 1);
  assert.equal(rd(C.deviceFeatureSelect, 8), 1 * 2 ** 32 + 1);
});

Deno.test("virtio-pci: bad models are refused", () => {
  const deps = { kick() {} };
  assert.throws(() => new VirtioPciFunction(fakeModel({ queueSizes: [] }), deps), /0 queues/);
  assert.throws(() => new VirtioPciFunction(fakeModel({ queueSizes: [100] }), deps), /size 100/);
  assert.throws(
    () => new VirtioPciFunction(fakeModel({ queueSizes: [65536] }), deps),
    /size 65536/,
  );
  assert.throws(() => new VirtioPciFunction(fakeModel({ configSize: 300 }), deps), /config size/);
  assert.throws(
    () => new VirtioPciFunction(fakeModel({ queueSizes: new Array(128).fill(8) }), deps),
    /128 queues/,
  );
  // 127 queues fit (128 vectors end at the PBA).
  const big = new VirtioPciFunction(fakeModel({ queueSizes: new Array(127).fill(8) }), deps);
  assert.equal(big.msix?.vectors, 128);
});

Deno.test("virtio-pci: behind the PCI host: BARs placed by the host, MMIO reaches the function", () => {
  const r = setup();
  const MEM32 = { start: 0xc0000000, end: 0xe0000000 };
  const host = new PciHost({
    ecamBase: 0xe0000000,
    mem32: MEM32,
    mem64: { start: 2 ** 36, end: 2 ** 37 },
    functions: [{ slot: 4, function: 0, device: r.fn }],
  });
  const w = host.devices.mem32Window;
  const bar0 = r.fn.config.barAddress(r.fn.bars[0]);
  assert.ok(bar0 >= MEM32.start && bar0 % 0x4000 === 0);
  assert.equal(r.fn.memoryEnabled, true);
  assert.equal(w.read(bar0 - MEM32.start + C.numQueues, 2), 2);
  // Configuration space through ECAM: the vendor capability chain starts at 0x34.
  const ecam = (reg: number, size: AccessSize) => host.devices.ecam.read(4 << 15 | reg, size);
  assert.equal(ecam(0, 4), (0x1040 + VIRTIO_ID.console) << 16 | 0x1af4);
  assert.equal(r.fn.notifyAddress(1), bar0 + NOTIFY + 4);
  w.write(r.fn.notifyAddress(1)! - MEM32.start, 2, 1);
  assert.deepEqual(r.kicks, [1]);
});

import assert from "node:assert/strict";
import type { AccessSize, BusDevice } from "./device.ts";
import {
  allOnes,
  type BusRange,
  type DeviceLock,
  MmioBus,
  PortBus,
  UnclaimedAccessError,
  type UnclaimedPolicy,
} from "./bus.ts";

type Access = [op: "r" | "w", offset: number, size: number, value?: number];

/** A device that records every access and whether the lock was held during it. */
class Recorder implements BusDevice {
  log: Access[] = [];
  lockedDuring: boolean[] = [];
  constructor(
    readonly lock?: FakeLock,
    readonly value: (offset: number, size: AccessSize) => number = () => 0,
  ) {}
  read(offset: number, size: AccessSize): number {
    this.log.push(["r", offset, size]);
    this.lockedDuring.push(this.lock?.held ?? false);
    return this.value(offset, size);
  }
  write(offset: number, size: AccessSize, value: number): void {
    this.log.push(["w", offset, size, value]);
    this.lockedDuring.push(this.lock?.held ?? false);
  }
}

class FakeLock implements DeviceLock {
  acquires = 0;
  releases = 0;
  held = false;
  acquire(): void {
    assert.equal(this.held, false, "lock taken twice");
    this.acquires++;
    this.held = true;
  }
  release(): void {
    assert.equal(this.held, true, "lock released while not held");
    this.releases++;
    this.held = false;
  }
}

class RecordingPolicy implements UnclaimedPolicy {
  seen: [string, number, number, boolean][] = [];
  constructor(readonly strict = false) {}
  record(bus: "pio" | "mmio", address: number, size: number, write: boolean): void {
    this.seen.push([bus, address, size, write]);
  }
}

const range = (name: string, base: number, length: number, device: BusDevice = new Recorder()) => ({
  name,
  base,
  length,
  device,
});

Deno.test("allOnes gives the all-ones value of each access size", () => {
  assert.equal(allOnes(1), 0xff);
  assert.equal(allOnes(2), 0xffff);
  assert.equal(allOnes(4), 0xffffffff);
});

Deno.test("inserting an overlapping range throws and names both ranges", () => {
  for (const bus of [new PortBus(), new MmioBus()]) {
    bus.register(range("com1", 0x3f8, 8));
    assert.throws(
      () => bus.register(range("intruder", 0x3fc, 2)),
      (e: Error) => {
        assert.match(e.message, /intruder \[0x3fc, \+0x2\)/);
        assert.match(e.message, /overlaps com1 \[0x3f8, \+0x8\)/);
        return true;
      },
    );
    // Overlapping the first byte and the last byte both count.
    assert.throws(() => bus.register(range("low", 0x3f0, 9)), /low .*overlaps com1/);
    assert.throws(() => bus.register(range("high", 0x3ff, 1)), /high .*overlaps com1/);
    // Adjacent ranges are fine.
    bus.register(range("below", 0x3f0, 8));
    bus.register(range("above", 0x400, 1));
    assert.deepEqual(bus.list().map((r) => r.name), ["below", "com1", "above"]);
  }
});

Deno.test("a range name may be used only once, even without overlap", () => {
  const bus = new PortBus();
  bus.register(range("com1", 0x3f8, 8));
  assert.throws(() => bus.register(range("com1", 0x2f8, 8)), /pio range name com1 is already used/);
  const mmio = new MmioBus();
  mmio.register(range("hpet", 0xfed00000, 0x400));
  assert.throws(
    () => mmio.register(range("hpet", 0xfec00000, 0x100)),
    /mmio range name hpet is already used/,
  );
  assert.equal(mmio.list().length, 1);
});

Deno.test("bad bases and lengths are refused", () => {
  const bus = new PortBus();
  assert.throws(() => bus.register(range("zero", 0x10, 0)), /zero: bad base\/length/);
  assert.throws(() => bus.register(range("neg", -1, 2)), /neg: bad base\/length/);
  assert.throws(() => bus.register(range("frac", 0x10, 1.5)), /frac: bad base\/length/);
  assert.throws(() => bus.register(range("nan", NaN, 1)), /nan: bad base\/length/);
  assert.throws(() => bus.register(range("past", 0xfffe, 4)), /past ends past 0x10000/);
  bus.register(range("last", 0xffff, 1)); // the very last port is fine
  assert.equal(bus.find(0xffff)?.name, "last");
  const mmio = new MmioBus();
  assert.throws(() => mmio.register(range("huge", 2 ** 52 - 8, 16)), /huge ends past/);
});

Deno.test("PortBus decodes by the first port: a dword at 0xCF8 goes to the range at 0xCF8", () => {
  const bus = new PortBus();
  const addr = new Recorder(undefined, () => 0x80000000);
  const rst = new Recorder(undefined, () => 0x06);
  bus.register(range("pci-addr", 0xcf8, 1, addr));
  bus.register(range("reset", 0xcf9, 1, rst));
  assert.equal(bus.read(0xcf8, 4), 0x80000000);
  bus.write(0xcf8, 4, 0x8000f800);
  assert.deepEqual(addr.log, [["r", 0, 4], ["w", 0, 4, 0x8000f800]]);
  assert.deepEqual(rst.log, [], "the spanned port 0xCF9 sees nothing");
  assert.equal(bus.read(0xcf9, 1), 0x06);
  bus.write(0xcf9, 1, 0x0e);
  assert.deepEqual(rst.log, [["r", 0, 1], ["w", 0, 1, 0x0e]]);
});

Deno.test("PortBus hands the device offsets from its base", () => {
  const bus = new PortBus();
  const uart = new Recorder(undefined, (o) => 0x10 + o);
  bus.register(range("com1", 0x3f8, 8, uart));
  assert.equal(bus.read(0x3fd, 1), 0x15);
  bus.write(0x3fb, 1, 0x80);
  assert.deepEqual(uart.log, [["r", 5, 1], ["w", 3, 1, 0x80]]);
  assert.equal(bus.find(0x3ff)?.name, "com1");
  assert.equal(bus.find(0x400), undefined);
  assert.equal(bus.find(0x3f7), undefined);
});

Deno.test("PortBus keeps its map right when ranges are inserted out of order", () => {
  const bus = new PortBus();
  const devs = [0x70, 0x20, 0x3f8, 0x60, 0xa0].map((base) => {
    const d = new Recorder(undefined, () => base);
    bus.register(range(`r${base}`, base, 2, d));
    return [base, d] as const;
  });
  for (const [base] of devs) {
    assert.equal(bus.read(base, 1), base);
    assert.equal(bus.read(base + 1, 1), base);
    assert.equal(bus.find(base)?.name, `r${base}`);
  }
  assert.deepEqual(bus.list().map((r) => r.base), [0x20, 0x60, 0x70, 0xa0, 0x3f8]);
});

Deno.test("unclaimed reads return all ones of the access size and are recorded", () => {
  const policy = new RecordingPolicy();
  const pio = new PortBus(undefined, policy);
  assert.equal(pio.read(0x1234, 1), 0xff);
  assert.equal(pio.read(0x1234, 2), 0xffff);
  assert.equal(pio.read(0x1234, 4), 0xffffffff);
  pio.write(0x1235, 2, 0xbeef);
  const mmio = new MmioBus(undefined, policy);
  mmio.register(range("dev", 0xd0000000, 0x10));
  assert.equal(mmio.read(0xc0000000, 2), 0xffff);
  // An access that starts inside a range but runs past its end is unclaimed too.
  assert.equal(mmio.read(0xd000000e, 4), 0xffffffff);
  mmio.write(0xd0000010, 1, 1);
  assert.equal(mmio.read64(0xc0001000), 0xffffffffffffffffn);
  mmio.write64(0xc0001000, 5n);
  assert.deepEqual(policy.seen, [
    ["pio", 0x1234, 1, false],
    ["pio", 0x1234, 2, false],
    ["pio", 0x1234, 4, false],
    ["pio", 0x1235, 2, true],
    ["mmio", 0xc0000000, 2, false],
    ["mmio", 0xd000000e, 4, false],
    ["mmio", 0xd0000010, 1, true],
    ["mmio", 0xc0001000, 8, false],
    ["mmio", 0xc0001000, 8, true],
  ]);
  assert.deepEqual((mmio.list()[0].device as Recorder).log, [], "the device saw nothing");
});

Deno.test("strict mode makes unclaimed accesses fatal, naming bus, address and size", () => {
  const policy = new RecordingPolicy(true);
  const pio = new PortBus(undefined, policy);
  assert.throws(
    () => pio.read(0x1234, 4),
    (e: unknown) => {
      assert.ok(e instanceof UnclaimedAccessError);
      assert.equal(e.name, "UnclaimedAccessError");
      assert.equal(e.bus, "pio");
      assert.equal(e.address, 0x1234);
      assert.equal(e.message, "unclaimed pio 4-byte read at 0x1234");
      return true;
    },
  );
  const mmio = new MmioBus(undefined, policy);
  assert.throws(
    () => mmio.write(0xd0000000, 2, 0xbeef),
    (e: unknown) => {
      assert.ok(e instanceof UnclaimedAccessError);
      assert.equal(e.bus, "mmio");
      assert.equal(e.address, 0xd0000000);
      assert.equal(e.message, "unclaimed mmio 2-byte write of 0xbeef at 0xd0000000");
      return true;
    },
  );
  assert.throws(() => mmio.read64(0xd0000000), /unclaimed mmio 8-byte read at 0xd0000000/);
  assert.deepEqual(policy.seen, [], "nothing is recorded when the access is fatal");
});

Deno.test("MmioBus binary search finds the right range among many", () => {
  const bus = new MmioBus();
  const n = 1000;
  // Insert in a scrambled order: i * 7919 mod n visits every index once.
  for (let k = 0; k < n; k++) {
    const i = (k * 7919) % n;
    bus.register(
      range(`r${i}`, 0x100000000 + i * 0x2000, 0x1000, new Recorder(undefined, () => i)),
    );
  }
  const bases = bus.list().map((r) => r.base);
  assert.deepEqual(bases, [...bases].sort((a, b) => a - b));
  for (let i = 0; i < n; i++) {
    const base = 0x100000000 + i * 0x2000;
    assert.equal(bus.find(base)?.name, `r${i}`);
    assert.equal(bus.find(base + 0xfff)?.name, `r${i}`);
    assert.equal(bus.find(base + 0x1000), undefined, "the gap after each range is unclaimed");
    assert.equal(bus.read(base + 0x10, 4), i);
  }
  assert.equal(bus.find(0xffffffff), undefined);
  assert.equal(bus.find(0x100000000 + n * 0x2000), undefined);
  // Alternate between two ranges so the last-hit cache is not what answers.
  for (let k = 0; k < 10; k++) {
    assert.equal(bus.find(0x100000000 + 3 * 0x2000 + k)?.name, "r3");
    assert.equal(bus.find(0x100000000 + 997 * 0x2000 + k)?.name, "r997");
  }
});

Deno.test("read64 splits into two 32-bit reads and assembles values above 2^53 exactly", () => {
  const lock = new FakeLock();
  const bus = new MmioBus(lock);
  const dev = new Recorder(lock, (o) => (o === 0x10 ? 0xdeadbeef : o === 0x14 ? 0xfedcba98 : 0));
  bus.register(range("dev", 0xfed00000, 0x400, dev));
  assert.equal(bus.read64(0xfed00010), 0xfedcba98deadbeefn);
  assert.deepEqual(dev.log, [["r", 0x10, 4], ["r", 0x14, 4]]);
  assert.deepEqual(dev.lockedDuring, [true, true]);
  assert.equal(lock.acquires, 1, "both halves under one lock hold");
  assert.equal(lock.releases, 1);
});

Deno.test("read(..., 8) splits too and is exact up to 2^53", () => {
  const bus = new MmioBus();
  const dev = new Recorder(undefined, (o) => (o === 0 ? 0xffffffff : 0x1fffff));
  bus.register(range("dev", 0xfed00000, 0x400, dev));
  assert.equal(bus.read(0xfed00000, 8), 2 ** 53 - 1);
  assert.deepEqual(dev.log, [["r", 0, 4], ["r", 4, 4]]);
});

Deno.test("write64 splits into low then high 32-bit writes when the device has no write64", () => {
  const lock = new FakeLock();
  const bus = new MmioBus(lock);
  const dev = new Recorder(lock);
  bus.register(range("dev", 0xfed00000, 0x400, dev));
  bus.write64(0xfed00008, 0xfedcba9876543210n);
  assert.deepEqual(dev.log, [["w", 8, 4, 0x76543210], ["w", 12, 4, 0xfedcba98]]);
  assert.deepEqual(dev.lockedDuring, [true, true]);
  assert.equal(lock.acquires, 1);
  assert.equal(lock.releases, 1);
});

Deno.test("read64/write64 go to the device's own 64-bit handlers when it has them", () => {
  const seen: [string, number, bigint?][] = [];
  const dev: BusDevice = {
    read: () => assert.fail("32-bit read used"),
    write: () => assert.fail("32-bit write used"),
    read64: (o) => {
      seen.push(["r64", o]);
      return 0xffffffffffffffffn;
    },
    write64: (o, v) => {
      seen.push(["w64", o, v]);
    },
  };
  const bus = new MmioBus();
  bus.register(range("hpet", 0xfed00000, 0x400, dev));
  assert.equal(bus.read64(0xfed000f0), 0xffffffffffffffffn);
  bus.write64(0xfed000f0, 0x8000000000000001n);
  assert.deepEqual(seen, [["r64", 0xf0], ["w64", 0xf0, 0x8000000000000001n]]);
});

Deno.test("8-byte accesses that run past the end of a range are unclaimed", () => {
  const policy = new RecordingPolicy();
  const bus = new MmioBus(undefined, policy);
  const dev = new Recorder();
  bus.register(range("dev", 0x1000, 0x10, dev));
  assert.equal(bus.read64(0x100c), 0xffffffffffffffffn);
  bus.write64(0x100c, 1n);
  assert.deepEqual(dev.log, []);
  assert.equal(policy.seen.length, 2);
});

Deno.test("the device lock is held around every access to a locked range", () => {
  const lock = new FakeLock();
  const pio = new PortBus(lock);
  const mmio = new MmioBus(lock);
  const pdev = new Recorder(lock, () => 7);
  const mdev = new Recorder(lock, () => 9);
  pio.register(range("uart", 0x3f8, 8, pdev));
  mmio.register(range("ioapic", 0xfec00000, 0x20, mdev));
  pio.read(0x3f8, 1);
  pio.write(0x3f9, 1, 1);
  mmio.read(0xfec00010, 4);
  mmio.write(0xfec00000, 4, 1);
  assert.equal(lock.acquires, 4);
  assert.equal(lock.releases, 4);
  assert.equal(lock.held, false);
  assert.deepEqual([...pdev.lockedDuring, ...mdev.lockedDuring], [true, true, true, true]);
  // Unclaimed accesses never touch the lock.
  pio.read(0x1234, 1);
  mmio.write(0xd0000000, 4, 0);
  assert.equal(lock.acquires, 4);
});

Deno.test("the lock is released when the device throws", () => {
  const lock = new FakeLock();
  const bus = new PortBus(lock);
  bus.register(range("bad", 0x10, 1, {
    read: () => {
      throw new Error("device broke");
    },
    write: () => {
      throw new Error("device broke");
    },
  }));
  assert.throws(() => bus.read(0x10, 1), /device broke/);
  assert.throws(() => bus.write(0x10, 1, 0), /device broke/);
  assert.equal(lock.acquires, 2);
  assert.equal(lock.releases, 2);
  assert.equal(lock.held, false);
  const mmio = new MmioBus(lock);
  mmio.register(range("bad", 0x1000, 8, {
    read: () => {
      throw new Error("device broke");
    },
    write: () => {},
  }));
  assert.throws(() => mmio.read64(0x1000), /device broke/);
  assert.equal(lock.held, false);
});

Deno.test("lockFree ranges are accessed without the lock", () => {
  const lock = new FakeLock();
  const pio = new PortBus(lock);
  const mmio = new MmioBus(lock);
  const post = new Recorder(lock, () => 0x55);
  const timer = new Recorder(lock, () => 0x1234);
  pio.register({ ...range("post", 0x80, 1, post), lockFree: true });
  mmio.register({ ...range("timer", 0xfed00000, 0x10, timer), lockFree: true });
  assert.equal(pio.read(0x80, 1), 0x55);
  pio.write(0x80, 1, 0xaa);
  assert.equal(mmio.read(0xfed00000, 4), 0x1234);
  mmio.write(0xfed00004, 2, 3);
  assert.equal(lock.acquires, 0);
  assert.equal(lock.releases, 0);
  assert.deepEqual([...post.lockedDuring, ...timer.lockedDuring], [false, false, false, false]);
});

Deno.test({
  name: "read64/write64 of a lockFree range do not take the lock",
  fn() {
    const lock = new FakeLock();
    const bus = new MmioBus(lock);
    bus.register({ ...range("counter", 0xfed00000, 0x10, new Recorder(lock)), lockFree: true });
    bus.read64(0xfed00000);
    bus.write64(0xfed00000, 1n);
    assert.equal(lock.acquires, 0);
  },
});

Deno.test({
  name: "an 8-byte read of a lockFree range without read64 is split like a locked one",
  fn() {
    const bus = new MmioBus();
    const dev = new Recorder(undefined, (o) => (o === 0 ? 1 : 2));
    bus.register({ ...range("counter", 0xfed00000, 0x10, dev), lockFree: true });
    assert.equal(bus.read(0xfed00000, 8), 2 * 2 ** 32 + 1);
    assert.deepEqual(dev.log, [["r", 0, 4], ["r", 4, 4]]);
  },
});

Deno.test({
  name: "write(..., 8) splits into two 32-bit writes when the device has no write64",
  fn() {
    const bus = new MmioBus();
    const dev = new Recorder();
    bus.register(range("dev", 0x1000, 0x10, dev));
    bus.write(0x1000, 8, 2 * 2 ** 32 + 1);
    assert.deepEqual(dev.log, [["w", 0, 4, 1], ["w", 4, 4, 2]]);
  },
});

Deno.test("written values are masked to the access size", () => {
  const dev = new Recorder();
  const pio = new PortBus();
  pio.register(range("dev", 0x10, 4, dev));
  pio.write(0x10, 1, 0x1ff);
  pio.write(0x10, 2, 0x12345);
  pio.write(0x10, 4, -1);
  pio.write(0x10, 4, 0x1_0000_0002);
  pio.write(0x10, 1, -2);
  const mdev = new Recorder();
  const mmio = new MmioBus();
  mmio.register({ ...range("mdev", 0x1000, 4, mdev), lockFree: true });
  mmio.write(0x1000, 1, 0xabcd);
  mmio.write(0x1000, 2, 0xfffff);
  mmio.write(0x1000, 4, 0xffffffff);
  assert.deepEqual(dev.log.map((a) => a[3]), [0xff, 0x2345, 0xffffffff, 2, 0xfe]);
  assert.deepEqual(mdev.log.map((a) => a[3]), [0xcd, 0xffff, 0xffffffff]);
});

Deno.test("list() returns ranges sorted by base with their flags", () => {
  const bus = new MmioBus();
  const ranges: BusRange[] = [
    { ...range("lapic", 0xfee00000, 0x1000), lockFree: false },
    { ...range("ioapic", 0xfec00000, 0x20) },
    { ...range("hpet", 0xfed00000, 0x400), lockFree: true },
  ];
  ranges.forEach((r) => bus.register(r));
  assert.deepEqual(bus.list().map((r) => [r.name, r.lockFree ?? false]), [
    ["ioapic", false],
    ["hpet", true],
    ["lapic", false],
  ]);
});

Deno.test("PortBus: ports no range claims go to the fallback (I/O BARs), under the lock, before the unclaimed policy", () => {
  const lock = new FakeLock();
  const policy = new RecordingPolicy();
  const bus = new PortBus(lock, policy);
  bus.register(range("com1", 0x3f8, 8, new Recorder(lock, () => 0x12)));
  const seen: string[] = [];
  bus.setFallback({
    read: (port, size) => {
      seen.push(`r ${port.toString(16)} ${size} locked=${lock.held}`);
      return port === 0xc000 ? 0xabcd : undefined;
    },
    write: (port, size, value) => {
      seen.push(`w ${port.toString(16)} ${size} ${value.toString(16)}`);
      return port === 0xc000;
    },
  });
  assert.equal(bus.read(0xc000, 2), 0xabcd);
  bus.write(0xc000, 1, 0x1ff); // masked to the access size
  assert.equal(bus.read(0xc004, 1), 0xff, "unclaimed by the fallback too");
  bus.write(0xc004, 1, 1);
  assert.equal(bus.read(0x3f8, 1), 0x12, "a fixed range never reaches the fallback");
  assert.deepEqual(seen, [
    "r c000 2 locked=true",
    "w c000 1 ff",
    "r c004 1 locked=true",
    "w c004 1 1",
  ]);
  assert.deepEqual(policy.seen, [["pio", 0xc004, 1, false], ["pio", 0xc004, 1, true]]);
});

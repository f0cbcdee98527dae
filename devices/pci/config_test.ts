import assert from "node:assert/strict";
import {
  barOffset,
  buildConfigTemplate,
  PCI_BAR0,
  PCI_CACHE_LINE_SIZE,
  PCI_CAP_NEXT,
  PCI_CAPABILITY_LIST,
  PCI_CLASS_PROG,
  PCI_COMMAND,
  PCI_COMMAND_WRITABLE,
  PCI_CONFIG_SPACE_SIZE,
  PCI_DEVICE_ID,
  PCI_HEADER_TYPE,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_REVISION_ID,
  PCI_ROM_ADDRESS,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STATUS_DETECTED_PARITY,
  PCI_STATUS_INTERRUPT,
  PCI_STATUS_REC_MASTER_ABORT,
  PCI_STATUS_RW1C,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
  type PciCapabilitySpec,
  PciConfigSpace,
  type PciConfigSpec,
} from "./config.ts";

function space(spec: PciConfigSpec): PciConfigSpace {
  const cfg = new PciConfigSpace(
    buildConfigTemplate(spec),
    new Uint8Array(new SharedArrayBuffer(PCI_CONFIG_SPACE_SIZE)),
  );
  cfg.reset();
  return cfg;
}

const BASE = { vendorId: 0x1234, deviceId: 0x5678, classCode: 0x020000 };

/** The read-back of BAR `index` after writing all ones (§6.2.5.1 sizing). */
function size(cfg: PciConfigSpace, index: number): number {
  cfg.write(barOffset(index), 4, 0xffffffff);
  return cfg.read(barOffset(index), 4);
}

Deno.test("header: identity fields are read-only", () => {
  const cfg = space({
    ...BASE,
    revisionId: 3,
    subsystemVendorId: 0xaaaa,
    subsystemId: 0xbbbb,
    interruptPin: 2,
    interruptLine: 11,
  });
  assert.equal(cfg.read(PCI_VENDOR_ID, 4), 0x56781234);
  assert.equal(cfg.read(PCI_REVISION_ID, 4), 0x02000003);
  assert.equal(cfg.read(PCI_SUBSYSTEM_VENDOR_ID, 4), 0xbbbbaaaa);
  for (const o of [PCI_VENDOR_ID, PCI_DEVICE_ID, PCI_CLASS_PROG, PCI_HEADER_TYPE]) {
    cfg.write(o, 2, 0xffff);
  }
  cfg.write(PCI_SUBSYSTEM_VENDOR_ID, 4, 0);
  cfg.write(PCI_INTERRUPT_PIN, 1, 4);
  assert.equal(cfg.read(PCI_VENDOR_ID, 4), 0x56781234);
  assert.equal(cfg.read(PCI_REVISION_ID, 4), 0x02000003);
  assert.equal(cfg.read(PCI_HEADER_TYPE, 1), 0);
  assert.equal(cfg.read(PCI_SUBSYSTEM_ID, 2), 0xbbbb);
  assert.equal(cfg.read(PCI_INTERRUPT_PIN, 1), 2);
  // The interrupt line is a R/W scratch register; the ROM BAR is absent.
  assert.equal(cfg.read(PCI_INTERRUPT_LINE, 1), 11);
  cfg.write(PCI_INTERRUPT_LINE, 1, 5);
  assert.equal(cfg.read(PCI_INTERRUPT_LINE, 1), 5);
  cfg.write(PCI_ROM_ADDRESS, 4, 0xffffffff);
  assert.equal(cfg.read(PCI_ROM_ADDRESS, 4), 0);
  cfg.write(PCI_CACHE_LINE_SIZE, 1, 0x10);
  assert.equal(cfg.read(PCI_CACHE_LINE_SIZE, 1), 0x10);
});

Deno.test("header: no interrupt pin means line 0xFF (unknown)", () => {
  const cfg = space(BASE);
  assert.equal(cfg.read(PCI_INTERRUPT_LINE, 2), 0x00ff);
});

Deno.test("command: only implemented bits are writable", () => {
  const cfg = space(BASE);
  assert.equal(cfg.command, 0);
  cfg.write(PCI_COMMAND, 2, 0xffff);
  assert.equal(cfg.command, PCI_COMMAND_WRITABLE);
  assert.equal(PCI_COMMAND_WRITABLE, 0x0547);
  cfg.write(PCI_COMMAND, 1, 0);
  assert.equal(cfg.command, 0x0500);
});

Deno.test("status: RW1C error bits, read-only INTx and capability bits", () => {
  const cfg = space(BASE);
  cfg.set16(
    PCI_STATUS,
    PCI_STATUS_INTERRUPT | PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_DETECTED_PARITY,
  );
  // Writing 0 changes nothing; writing 1 clears only that RW1C bit.
  cfg.write(PCI_STATUS, 2, 0);
  assert.equal(
    cfg.read(PCI_STATUS, 2),
    PCI_STATUS_INTERRUPT | PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_DETECTED_PARITY,
  );
  cfg.write(PCI_STATUS, 2, PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_INTERRUPT);
  assert.equal(cfg.read(PCI_STATUS, 2), PCI_STATUS_INTERRUPT | PCI_STATUS_DETECTED_PARITY);
  cfg.write(PCI_STATUS, 2, 0xffff);
  assert.equal(cfg.read(PCI_STATUS, 2), PCI_STATUS_INTERRUPT);
  assert.equal(PCI_STATUS_RW1C, 0xf900);
  // A dword write to the command register leaves status alone when its high half is 0.
  cfg.set16(PCI_STATUS, PCI_STATUS_DETECTED_PARITY);
  cfg.write(PCI_COMMAND, 4, 0x00000002);
  assert.equal(cfg.read(PCI_COMMAND, 4), (PCI_STATUS_DETECTED_PARITY << 16 | 2) >>> 0);
});

Deno.test("BAR sizing: 32-bit memory, prefetchable or not", () => {
  const cfg = space({
    ...BASE,
    bars: [
      { index: 0, kind: "mem32", size: 0x1000 },
      { index: 1, kind: "mem32", size: 16, prefetchable: true },
      { index: 2, kind: "mem32", size: 2 ** 31 },
    ],
  });
  assert.equal(cfg.read(PCI_BAR0, 4), 0);
  assert.equal(size(cfg, 0), 0xfffff000);
  assert.equal(size(cfg, 1), 0xfffffff8);
  assert.equal(size(cfg, 2), 0x80000000);
  // Unused slots read 0 and stay 0.
  assert.equal(size(cfg, 3), 0);
  assert.equal(size(cfg, 5), 0);
  // An address is taken within the writable bits.
  cfg.write(barOffset(0), 4, 0xc0001234);
  assert.equal(cfg.read(barOffset(0), 4), 0xc0001000);
  assert.equal(cfg.barAddress(cfg.template.bars[0]), 0xc0001000);
});

Deno.test("BAR sizing: 64-bit memory occupies two slots", () => {
  const cfg = space({
    ...BASE,
    bars: [
      { index: 0, kind: "mem64", size: 0x100000, prefetchable: true },
      { index: 2, kind: "mem64", size: 2 ** 33 },
    ],
  });
  assert.equal(cfg.read(barOffset(0), 4), 0x0000000c);
  assert.equal(size(cfg, 0), 0xfff0000c);
  assert.equal(size(cfg, 1), 0xffffffff);
  assert.equal(size(cfg, 2), 0x00000004);
  assert.equal(size(cfg, 3), 0xfffffffe);
  const [b0, b2] = cfg.template.bars;
  cfg.write(barOffset(0), 4, 0x12300000);
  cfg.write(barOffset(1), 4, 0x1);
  assert.equal(cfg.barAddress(b0), 0x1_1230_0000);
  cfg.setBarAddress(b2, 2 ** 36);
  assert.equal(cfg.read(barOffset(2), 4), 0x4);
  assert.equal(cfg.read(barOffset(3), 4), 0x10);
  assert.equal(cfg.barAddress(b2), 2 ** 36);
});

Deno.test("BAR sizing: I/O", () => {
  const cfg = space({
    ...BASE,
    bars: [{ index: 4, kind: "io", size: 32 }, { index: 5, kind: "io", size: 4 }],
  });
  assert.equal(cfg.read(barOffset(4), 4), 0x1);
  assert.equal(size(cfg, 4), 0xffffffe1);
  assert.equal(size(cfg, 5), 0xfffffffd);
  cfg.write(barOffset(4), 4, 0x2047);
  assert.equal(cfg.read(barOffset(4), 4), 0x2041);
  assert.equal(cfg.barAddress(cfg.template.bars[0]), 0x2040);
});

Deno.test("BAR declarations are checked", () => {
  const bad: PciConfigSpec["bars"][] = [
    [{ index: 0, kind: "mem32", size: 0x1800 }],
    [{ index: 0, kind: "mem32", size: 8 }],
    [{ index: 0, kind: "io", size: 2 }],
    [{ index: 0, kind: "io", size: 16, prefetchable: true }],
    [{ index: 5, kind: "mem64", size: 4096 }],
    [{ index: 6, kind: "mem32", size: 4096 }],
    [{ index: 0, kind: "mem64", size: 4096 }, { index: 1, kind: "mem32", size: 4096 }],
    [{ index: 0, kind: "mem32", size: 2 ** 32 }],
  ];
  for (const bars of bad) {
    assert.throws(() => buildConfigTemplate({ ...BASE, bars }), /BAR\d/, JSON.stringify(bars));
  }
  assert.throws(
    () =>
      space({ ...BASE, bars: [{ index: 0, kind: "mem32", size: 4096 }] }).setBarAddress(
        { index: 0, kind: "mem32", size: 4096 },
        0x800,
      ),
    /not aligned/,
  );
});

function cap(id: number, length: number, offset?: number): PciCapabilitySpec {
  return {
    id,
    length,
    offset,
    init(c) {
      c.value(2, 2, 0xbeef);
      c.writable(2, 1, 0x0f);
    },
  };
}

Deno.test("capability list: appended in order and walkable", () => {
  const cfg = space({ ...BASE, capabilities: [cap(0x09, 6), cap(0x05, 10), cap(0x11, 12, 0x80)] });
  assert.ok(cfg.read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
  const walk: [number, number][] = [];
  for (let p = cfg.read(PCI_CAPABILITY_LIST, 1) & 0xfc; p !== 0;) {
    walk.push([p, cfg.read(p, 1)]);
    p = cfg.read(p + PCI_CAP_NEXT, 1) & 0xfc;
  }
  // 0x40 (6 bytes) -> 0x48 (next dword) -> fixed 0x80.
  assert.deepEqual(walk, [[0x40, 0x09], [0x48, 0x05], [0x80, 0x11]]);
  assert.deepEqual(cfg.template.capabilities.map((c) => c.offset), [0x40, 0x48, 0x80]);
  // ID and next pointer are read-only; the body follows its masks.
  cfg.write(0x40, 4, 0);
  assert.equal(cfg.read(0x40, 4), 0xbee04809);
  cfg.write(PCI_CAPABILITY_LIST, 1, 0);
  assert.equal(cfg.read(PCI_CAPABILITY_LIST, 1), 0x40);
});

Deno.test("capability list: empty, overlapping and misplaced capabilities", () => {
  const cfg = space(BASE);
  assert.equal(cfg.read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
  assert.equal(cfg.read(PCI_CAPABILITY_LIST, 1), 0);
  assert.throws(
    () => buildConfigTemplate({ ...BASE, capabilities: [cap(1, 8, 0x40), cap(2, 8, 0x44)] }),
    /overlaps/,
  );
  assert.throws(() => buildConfigTemplate({ ...BASE, capabilities: [cap(1, 8, 0x3c)] }), /0x40/);
  assert.throws(() => buildConfigTemplate({ ...BASE, capabilities: [cap(1, 8, 0x42)] }), /align/);
  assert.throws(() => buildConfigTemplate({ ...BASE, capabilities: [cap(1, 8, 0xfc)] }), /fit/);
  const outside: PciCapabilitySpec = { id: 1, length: 4, init: (c) => c.value(4, 1, 1) };
  assert.throws(() => buildConfigTemplate({ ...BASE, capabilities: [outside] }), /outside/);
});

Deno.test("offsets at and above 0x100 read 0 and ignore writes", () => {
  const cfg = space(BASE);
  assert.equal(cfg.read(0x100, 4), 0);
  cfg.write(0x100, 4, 0xffffffff);
  cfg.write(0xffc, 4, 0xffffffff);
  assert.equal(cfg.read(0x100, 4), 0);
  assert.equal(cfg.read(0xffc, 4), 0);
  assert.throws(() => cfg.set8(0x100, 1), /outside/);
});

Deno.test("reset restores the power-on contents", () => {
  const cfg = space({ ...BASE, bars: [{ index: 0, kind: "mem32", size: 4096 }] });
  cfg.write(PCI_COMMAND, 2, 0xffff);
  cfg.write(barOffset(0), 4, 0xffffffff);
  cfg.reset();
  assert.equal(cfg.command, 0);
  assert.equal(cfg.read(barOffset(0), 4), 0);
});

Deno.test("device-specific registers outside capabilities", () => {
  const cfg = space({ ...BASE, writable: [[0x60, 1, 0x8f]], values: [[0x60, 1, 0x80]] });
  assert.equal(cfg.read(0x60, 1), 0x80);
  cfg.write(0x60, 1, 0x7b);
  assert.equal(cfg.read(0x60, 1), 0x0b);
  assert.throws(
    () => buildConfigTemplate({ ...BASE, capabilities: [cap(1, 8)], writable: [[0x40, 1, 1]] }),
    /device-specific/,
  );
});

Deno.test("a device-specific register may not run into a capability, by any byte", () => {
  // A capability at 0x50; registers that start before it but reach into it.
  const caps = [cap(1, 8, 0x50)];
  assert.throws(
    () =>
      buildConfigTemplate({ ...BASE, capabilities: caps, writable: [[0x4c, 4, 0], [0x4e, 4, 1]] }),
    /device register at 0x4e: not in the free device-specific region/,
  );
  assert.throws(
    () => buildConfigTemplate({ ...BASE, capabilities: caps, values: [[0x4f, 2, 0xffff]] }),
    /device register at 0x4f: not in the free device-specific region/,
  );
  // Right up to the capability is fine.
  const t = buildConfigTemplate({ ...BASE, capabilities: caps, values: [[0x4c, 4, 0x12345678]] });
  assert.equal(t.initial[0x4f], 0x12);
  assert.equal(t.initial[0x50], 1);
});

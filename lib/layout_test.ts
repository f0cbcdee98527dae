import assert from "node:assert/strict";
import {
  computeLayout,
  DEFAULT_LOWMEM_LIMIT,
  E820,
  type E820Entry,
  FIRMWARE,
  formatLayout,
  formatSize,
  GiB,
  hexAddr,
  KiB,
  LEGACY,
  MAX_LOWMEM_LIMIT,
  type MemoryLayout,
  MiB,
  MMIO,
  PCI_HOLE64_SIZE,
} from "./layout.ts";

const RAM = E820.RAM, RES = E820.RESERVED;
const ECAM: E820Entry = { addr: 0xe0000000, size: 0x10000000, type: RES };
const LEGACY_E820: E820Entry[] = [
  { addr: 0, size: 0xa0000, type: RAM },
  { addr: 0xc0000, size: 0x40000, type: RES },
];

/** Invariants every layout must satisfy. */
function checkInvariants(l: MemoryLayout): void {
  // e820: sorted, non-overlapping, RAM entries exactly the RAM slots minus the reserved legacy part.
  for (let i = 1; i < l.e820.length; i++) {
    const a = l.e820[i - 1], b = l.e820[i];
    assert.ok(a.addr + a.size <= b.addr, `e820 entries ${i - 1} and ${i} overlap or are unsorted`);
  }
  // The 128 KiB VGA window is carved out of low RAM (not backed), as on a PC.
  const ramBytes = l.ram.reduce((n, r) => n + r.size, 0);
  assert.equal(ramBytes, l.size - 0x20000, "the slots hold all the RAM but the VGA window");
  const e820Ram = l.e820.filter((e) => e.type === RAM).reduce((n, e) => n + e.size, 0);
  assert.equal(e820Ram, ramBytes - 0x40000, "everything but the 0xC0000-0xFFFFF area is usable");
  // The legacy hole is never RAM; the option-ROM/BIOS area and ECAM are reserved.
  for (const r of l.ram) {
    assert.ok(
      r.gpa + r.size <= LEGACY.conventionalEnd || r.gpa >= LEGACY.vgaEnd,
      `${r.name} in VGA hole`,
    );
    assert.ok(
      r.gpa + r.size <= MMIO.ecamBase || r.gpa >= 4 * GiB,
      `${r.name} reaches the MMIO area`,
    );
  }
  assert.deepEqual(l.e820.slice(0, 2), LEGACY_E820);
  assert.ok(l.e820.some((e) => e.addr === ECAM.addr && e.size === ECAM.size && e.type === RES));
  for (const e of l.e820.filter((e) => e.type === RAM)) {
    assert.ok(
      l.ram.some((r) => e.addr >= r.gpa && e.addr + e.size <= r.gpa + r.size),
      `e820 RAM at ${hexAddr(e.addr)} is not backed by a slot`,
    );
  }
  // Windows: the 32-bit one ends at ECAM, the 64-bit one sits above RAM on a 1 GiB boundary.
  assert.equal(l.pciHole32.end, MMIO.ecamBase);
  assert.equal(l.pciHole32.start, l.lowmemLimit);
  assert.ok(l.pciHole64.start >= l.ramEnd && l.pciHole64.start >= 4 * GiB);
  assert.equal(l.pciHole64.start % GiB, 0);
  assert.equal(l.pciHole64.end - l.pciHole64.start, PCI_HOLE64_SIZE);
}

Deno.test("256 MiB: all RAM below 4 GiB, conventional + low slots", () => {
  const l = computeLayout(256 * MiB);
  checkInvariants(l);
  assert.equal(l.lowmemLimit, DEFAULT_LOWMEM_LIMIT);
  assert.equal(l.lowmemEnd, 256 * MiB);
  assert.equal(l.highmemSize, 0);
  assert.equal(l.ramEnd, 256 * MiB);
  assert.deepEqual(l.ram, [
    { name: "conventional", gpa: 0, size: 640 * KiB },
    { name: "low", gpa: 0xc0000, size: 256 * MiB - 0xc0000 },
  ]);
  assert.deepEqual(l.e820, [
    ...LEGACY_E820,
    { addr: 0x100000, size: 255 * MiB, type: RAM },
    ECAM,
  ]);
  assert.deepEqual(l.pciHole32, { start: 0xc0000000, end: 0xe0000000 });
  assert.deepEqual(l.pciHole64, { start: 4 * GiB, end: 36 * GiB });
});

Deno.test("exactly 3 GiB fills low memory and has no high slot", () => {
  const l = computeLayout(3 * GiB);
  checkInvariants(l);
  assert.equal(l.lowmemEnd, 3 * GiB);
  assert.equal(l.highmemSize, 0);
  assert.equal(l.ram.length, 2);
  assert.equal(l.ram[1].gpa + l.ram[1].size, 0xc0000000);
  assert.deepEqual(l.e820, [
    ...LEGACY_E820,
    { addr: 0x100000, size: 3 * GiB - MiB, type: RAM },
    ECAM,
  ]);
  assert.equal(l.ramEnd, 3 * GiB);
  assert.equal(l.pciHole64.start, 4 * GiB);
});

Deno.test("4 GiB: the last 1 GiB goes above 4 GiB", () => {
  const l = computeLayout(4 * GiB);
  checkInvariants(l);
  assert.equal(l.lowmemEnd, 3 * GiB);
  assert.equal(l.highmemSize, GiB);
  assert.deepEqual(l.ram[2], { name: "high", gpa: 0x100000000, size: GiB });
  assert.deepEqual(l.e820, [
    ...LEGACY_E820,
    { addr: 0x100000, size: 3 * GiB - MiB, type: RAM },
    ECAM,
    { addr: 0x100000000, size: GiB, type: RAM },
  ]);
  assert.equal(l.ramEnd, 5 * GiB);
  assert.deepEqual(l.pciHole64, { start: 5 * GiB, end: 37 * GiB });
});

Deno.test("64 GiB: 61 GiB above 4 GiB, the 64-bit window above that", () => {
  const l = computeLayout(64 * GiB);
  checkInvariants(l);
  assert.equal(l.highmemSize, 61 * GiB);
  assert.equal(l.ramEnd, 65 * GiB);
  assert.deepEqual(l.ram.map((r) => [r.name, r.gpa, r.size]), [
    ["conventional", 0, 0xa0000],
    ["low", 0xc0000, 3 * GiB - 0xc0000],
    ["high", 4 * GiB, 61 * GiB],
  ]);
  assert.deepEqual(l.e820.at(-1), { addr: 4 * GiB, size: 61 * GiB, type: RAM });
  assert.deepEqual(l.pciHole64, { start: 65 * GiB, end: 97 * GiB });
});

Deno.test("a high RAM end off a 1 GiB boundary rounds the 64-bit window up", () => {
  const l = computeLayout(4 * GiB + 2 * MiB);
  checkInvariants(l);
  assert.equal(l.ramEnd, 5 * GiB + 2 * MiB);
  assert.equal(l.pciHole64.start, 6 * GiB);
});

Deno.test("a custom lowmem limit moves the split and the 32-bit window", () => {
  const l = computeLayout(4 * GiB, 2 * GiB);
  checkInvariants(l);
  assert.equal(l.lowmemLimit, 2 * GiB);
  assert.equal(l.lowmemEnd, 2 * GiB);
  assert.equal(l.highmemSize, 2 * GiB);
  assert.deepEqual(l.ram.map((r) => [r.gpa, r.size]), [
    [0, 0xa0000],
    [0xc0000, 2 * GiB - 0xc0000],
    [4 * GiB, 2 * GiB],
  ]);
  assert.deepEqual(l.pciHole32, { start: 2 * GiB, end: 0xe0000000 });
  assert.equal(l.ramEnd, 6 * GiB);
  assert.equal(l.pciHole64.start, 6 * GiB);
  // The largest allowed limit leaves 256 MiB of 32-bit window below ECAM.
  const max = computeLayout(8 * GiB, MAX_LOWMEM_LIMIT);
  checkInvariants(max);
  assert.equal(max.lowmemEnd, 0xd0000000);
  assert.equal(max.pciHole32.end - max.pciHole32.start, 256 * MiB);
  assert.equal(max.highmemSize, 8 * GiB - 0xd0000000);
});

Deno.test("the smallest RAM size still has a RAM entry above 1 MiB", () => {
  const l = computeLayout(2 * MiB);
  checkInvariants(l);
  assert.deepEqual(l.e820[2], { addr: 0x100000, size: MiB, type: RAM });
});

Deno.test("firmware areas lie in the reserved 0xC0000-0xFFFFF e820 entry", () => {
  const reserved = computeLayout(256 * MiB).e820[1];
  for (
    const [a, b] of [[FIRMWARE.gdt, FIRMWARE.pageTables], [
      FIRMWARE.pageTables,
      FIRMWARE.pageTablesEnd,
    ], [FIRMWARE.tables, FIRMWARE.tablesEnd]]
  ) {
    assert.ok(a >= reserved.addr && b <= reserved.addr + reserved.size && a < b);
  }
  // PML4 + PDPT + 4 PDs, one page each.
  assert.equal(FIRMWARE.pageTablesEnd - FIRMWARE.pageTables, 6 * 4096);
});

Deno.test("formatSize uses the largest exact unit, else bytes", () => {
  assert.equal(formatSize(256 * MiB), "256 MiB");
  assert.equal(formatSize(4 * GiB), "4 GiB");
  assert.equal(formatSize(1536 * KiB), "1536 KiB");
  assert.equal(formatSize(640 * KiB), "640 KiB");
  assert.equal(formatSize(2 * 1024 * GiB), "2 TiB");
  assert.equal(formatSize(GiB + MiB), "1025 MiB");
  assert.equal(formatSize(1023), "1023 B");
  assert.equal(formatSize(4097), "4097 B");
  assert.equal(formatSize(0), "0 B");
});

Deno.test("hexAddr pads to 9 digits by default", () => {
  assert.equal(hexAddr(0xfee00000), "0x0fee00000");
  assert.equal(hexAddr(0x100000000), "0x100000000");
  assert.equal(hexAddr(0x10, 4), "0x0010");
});

Deno.test("formatLayout renders slots, e820 and windows", () => {
  assert.equal(
    formatLayout(computeLayout(256 * MiB)),
    [
      "memory: 256 MiB (low 256 MiB below 0x0c0000000, high 0 B from 0x100000000)",
      "ram slots:",
      "  slot 0  0x000000000-0x00009ffff    640 KiB  conventional",
      "  slot 1  0x0000c0000-0x00fffffff  261376 KiB  low",
      "e820:",
      "  0x000000000-0x00009ffff  ram",
      "  0x0000c0000-0x0000fffff  reserved",
      "  0x000100000-0x00fffffff  ram",
      "  0x0e0000000-0x0efffffff  reserved",
      "pci window 32-bit: 0x0c0000000-0x0dfffffff",
      "pci window 64-bit: 0x100000000-0x8ffffffff",
    ].join("\n"),
  );
  const text = formatLayout(computeLayout(4 * GiB));
  assert.match(
    text,
    /^memory: 4 GiB \(low 3 GiB below 0x0c0000000, high 1 GiB from 0x100000000\)$/m,
  );
  assert.match(text, /^ {2}slot 2 {2}0x100000000-0x13fffffff {6}1 GiB {2}high$/m);
  assert.match(text, /^ {2}0x100000000-0x13fffffff {2}ram$/m);
  assert.match(text, /^pci window 64-bit: 0x140000000-0x93fffffff$/m);
  // Unknown e820 types are shown by number.
  const l = computeLayout(256 * MiB);
  const odd = { ...l, e820: [...l.e820, { addr: 0xfffbc000, size: 0x4000, type: 9 }] };
  assert.match(formatLayout(odd), /^ {2}0x0fffbc000-0x0fffbffff {2}type 9$/m);
  const acpi = { ...l, e820: [{ addr: 0xe0000, size: 0x20000, type: E820.ACPI }] };
  assert.match(formatLayout(acpi), /^ {2}0x0000e0000-0x0000fffff {2}acpi$/m);
});

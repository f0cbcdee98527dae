import assert from "node:assert/strict";
import { platform, u32, u64 } from "./_testing.ts";
import { byteSum } from "../acpi/_struct.ts";
import { GuestMemory } from "../guest_memory.ts";
import {
  buildFirmwareTables,
  type FirmwareTables,
  POINTER_AREA,
  writeFirmwareTables,
} from "./tables.ts";

function at(t: FirmwareTables, sig: string) {
  const x = t.tables.find((y) => y.signature === sig);
  assert.ok(x, `${sig} missing`);
  return x;
}

Deno.test("layout: region bounds, alignment, no overlaps, pointers in the BIOS search area", () => {
  for (
    const cfg of [{}, { cpu: { sockets: 85, cores: 3, x2apic: true } }, {
      pci: [{ slot: 3, type: "testdev" }],
    }]
  ) {
    const p = platform(cfg);
    const t = buildFirmwareTables(p);
    const { start, end } = p.tablesRegion;
    const sorted = [...t.tables].sort((a, b) => a.address - b.address);
    for (const [i, x] of sorted.entries()) {
      assert.ok(x.address >= start && x.address + x.bytes.length <= end, x.signature);
      assert.equal(x.address % (x.signature === "FACS" ? 64 : 16), 0, x.signature);
      if (i > 0) {
        const prev = sorted[i - 1];
        assert.ok(
          prev.address + prev.bytes.length <= x.address,
          `${prev.signature}/${x.signature}`,
        );
      }
    }
    for (const sig of ["RSDP", "_MP_"]) {
      const x = at(t, sig);
      assert.ok(x.address >= POINTER_AREA.start && x.address + x.bytes.length <= 0x100000, sig);
    }
    assert.equal(t.rsdp, at(t, "RSDP").address);
    assert.equal(t.mpFloating, at(t, "_MP_").address);
  }
});

Deno.test("pointers point at the right tables; checksums hold after placement", () => {
  const t = buildFirmwareTables(platform({ cpu: { cpus: 2 } }));
  assert.deepEqual(t.tables.map((x) => x.signature), [
    "RSDP",
    "XSDT",
    "RSDT",
    "FACP",
    "FACS",
    "DSDT",
    "APIC",
    "HPET",
    "MCFG",
    "SPCR",
    "_MP_",
    "PCMP",
  ]);
  const rsdp = at(t, "RSDP").bytes;
  assert.equal(byteSum(rsdp.subarray(0, 20)), 0);
  assert.equal(byteSum(rsdp), 0);
  assert.equal(u32(rsdp, 16), at(t, "RSDT").address);
  assert.equal(u64(rsdp, 24), at(t, "XSDT").address);
  const pointed = ["FACP", "APIC", "HPET", "MCFG", "SPCR"].map((s) => at(t, s).address);
  const xsdt = at(t, "XSDT").bytes;
  const rsdt = at(t, "RSDT").bytes;
  assert.deepEqual(
    Array.from({ length: (xsdt.length - 36) / 8 }, (_, i) => u64(xsdt, 36 + 8 * i)),
    pointed,
  );
  assert.deepEqual(
    Array.from({ length: (rsdt.length - 36) / 4 }, (_, i) => u32(rsdt, 36 + 4 * i)),
    pointed,
  );
  const fadt = at(t, "FACP").bytes;
  assert.equal(u32(fadt, 36), at(t, "FACS").address);
  assert.equal(u32(fadt, 40), at(t, "DSDT").address);
  assert.equal(u64(fadt, 132), at(t, "FACS").address);
  assert.equal(u64(fadt, 140), at(t, "DSDT").address);
  assert.equal(u32(at(t, "_MP_").bytes, 4), at(t, "PCMP").address);
  for (const x of t.tables) {
    if (x.signature === "FACS") continue;
    assert.equal(byteSum(x.bytes), 0, x.signature);
    // Every table's own length field matches its bytes.
    if (!["RSDP", "_MP_", "PCMP"].includes(x.signature)) {
      assert.equal(u32(x.bytes, 4), x.bytes.length);
    }
  }
});

Deno.test("acpi = false and mptable = false leave their tables out", () => {
  const noAcpi = buildFirmwareTables(platform({ firmware: { acpi: false } }));
  assert.deepEqual(noAcpi.tables.map((x) => x.signature), ["_MP_", "PCMP"]);
  assert.equal(noAcpi.rsdp, undefined);
  assert.ok(noAcpi.mpFloating !== undefined);
  const noMp = buildFirmwareTables(platform({ firmware: { mptable: false } }));
  assert.ok(!noMp.tables.some((x) => x.signature === "_MP_" || x.signature === "PCMP"));
  assert.equal(noMp.mpFloating, undefined);
  assert.ok(noMp.rsdp !== undefined);
  const none = buildFirmwareTables(platform({ firmware: { acpi: false, mptable: false } }));
  assert.deepEqual(none, { tables: [], rsdp: undefined, mpFloating: undefined });
  // No COM1: no SPCR, and the root tables do not point at one.
  const noCom1 = buildFirmwareTables(platform({ console: { com1: "none" } }));
  assert.ok(!noCom1.tables.some((x) => x.signature === "SPCR"));
  assert.equal(at(noCom1, "XSDT").bytes.length, 36 + 4 * 8);
});

Deno.test("a region too small for the tables is refused", () => {
  const p = platform();
  assert.throws(
    () => buildFirmwareTables({ ...p, tablesRegion: { start: 0xf0000, end: 0xf0400 } }),
    /firmware tables overflow/,
  );
  // No room for the pointers in the search area.
  assert.throws(
    () => buildFirmwareTables({ ...p, tablesRegion: { start: 0xe0000, end: 0xf0000 } }),
    /no room for RSDP/,
  );
});

Deno.test("writeFirmwareTables copies every table into guest RAM", () => {
  const span = new Uint8Array(0x100000);
  const mem = new GuestMemory(span, [
    { name: "conventional", gpa: 0, size: 0xa0000 },
    { name: "low", gpa: 0xc0000, size: 0x40000 },
  ]);
  const t = buildFirmwareTables(platform());
  writeFirmwareTables(mem, t);
  for (const x of t.tables) assert.deepEqual(mem.read(x.address, x.bytes.length), x.bytes);
  assert.equal(new TextDecoder().decode(mem.read(t.rsdp!, 8)), "RSD PTR ");
  // A memory without the BIOS area is refused, not written past.
  const small = new GuestMemory(new Uint8Array(0xa0000), [{ name: "c", gpa: 0, size: 0xa0000 }]);
  assert.throws(() => writeFirmwareTables(small, t));
});

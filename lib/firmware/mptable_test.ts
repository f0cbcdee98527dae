import assert from "node:assert/strict";
import { ascii, platform } from "./_testing.ts";
import { byteSum } from "../acpi/_struct.ts";
import {
  buildMpConfigTable,
  DEFAULT_CPU_FEATURES,
  DEFAULT_CPU_SIGNATURE,
  MP_ENTRY,
  MP_FLOATING_LAYOUT,
  MP_HEADER_LAYOUT,
  MpFloatingPointer,
} from "./mptable.ts";

/** Splits the base table into entries (processor entries are 20 bytes, the rest 8). */
function entries(t: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const end = new DataView(t.buffer, t.byteOffset).getUint16(4, true);
  for (let at = 44; at < end;) {
    const n = t[at] === 0 ? 20 : 8;
    out.push(t.subarray(at, at + n));
    at += n;
  }
  return out;
}

Deno.test("MP layouts have the sizes of MP spec 1.4 tables 4-1 to 4-14", () => {
  assert.equal(MP_FLOATING_LAYOUT.size, 16);
  assert.equal(MP_FLOATING_LAYOUT.offsets.checksum, 10);
  assert.equal(MP_FLOATING_LAYOUT.offsets.feature2, 12);
  assert.equal(MP_HEADER_LAYOUT.size, 44);
  assert.equal(MP_HEADER_LAYOUT.offsets.entryCount, 34);
  assert.equal(MP_HEADER_LAYOUT.offsets.localApicAddress, 36);
  assert.equal(MP_HEADER_LAYOUT.offsets.extendedTableLength, 40);
  assert.deepEqual(
    Object.values(MP_ENTRY).map((e) => [e.type, e.layout.size]),
    [[0, 20], [1, 8], [2, 8], [3, 8], [4, 8]],
  );
});

Deno.test("floating pointer: signature, pointer, length, revision, checksum, virtual wire", () => {
  const f = new MpFloatingPointer(0xe0e00).toBytes();
  assert.equal(f.length, 16);
  assert.equal(ascii(f, 0, 4), "_MP_");
  assert.equal(new DataView(f.buffer).getUint32(4, true), 0xe0e00);
  assert.deepEqual([f[8], f[9]], [1, 4]);
  assert.equal(byteSum(f), 0);
  assert.deepEqual([...f.subarray(11, 16)], [0, 0, 0, 0, 0]); // config table present; IMCRP clear
});

Deno.test("configuration table: header, checksum and entry counts", () => {
  const p = platform({ cpu: { cpus: 2, maxcpus: 4 } });
  const t = buildMpConfigTable(p).toBytes();
  const v = new DataView(t.buffer);
  assert.equal(ascii(t, 0, 4), "PCMP");
  assert.equal(v.getUint16(4, true), t.length);
  assert.equal(t[6], 4);
  assert.equal(byteSum(t), 0);
  assert.equal(ascii(t, 8, 8), "DHYVE   ");
  assert.equal(ascii(t, 16, 12), "DHYVEVM     ");
  assert.equal(v.getUint32(28, true), 0); // no OEM table
  assert.equal(v.getUint32(36, true), 0xfee00000);
  assert.deepEqual([v.getUint16(40, true), t[42]], [0, 0]); // no extended table
  const e = entries(t);
  assert.equal(v.getUint16(34, true), e.length);
  const byType = [0, 1, 2, 3, 4].map((k) => e.filter((x) => x[0] === k).length);
  // 2 present CPUs (not the 2 absent ones), 2 buses, 1 IOAPIC, 15 ISA IRQs, 2 local.
  assert.deepEqual(byType, [2, 2, 1, 15, 2]);
  // Entries sorted by type (MP spec 4.3).
  assert.deepEqual(e.map((x) => x[0]), [...e.map((x) => x[0])].sort());
  assert.equal(t.length, 44 + 2 * 20 + 20 * 8);
});

Deno.test("configuration table: processor, bus, IOAPIC and local interrupt entries", () => {
  const p = platform({ cpu: { cpus: 2 } });
  const e = entries(buildMpConfigTable(p, { signature: 0x806f8, features: 0x178bfbff }).toBytes());
  const cpu = (x: Uint8Array) => new DataView(x.buffer, x.byteOffset);
  // BSP: APIC ID 0, version 0x14, EN|BP; the AP: EN only.
  assert.deepEqual([...e[0].subarray(0, 4)], [0, 0, 0x14, 3]);
  assert.deepEqual([...e[1].subarray(0, 4)], [0, 1, 0x14, 1]);
  assert.equal(cpu(e[0]).getUint32(4, true), 0x806f8);
  assert.equal(cpu(e[0]).getUint32(8, true), 0x178bfbff);
  assert.deepEqual([...e[2]], [1, 0, ...new TextEncoder().encode("PCI   ")]);
  assert.deepEqual([...e[3]], [1, 1, ...new TextEncoder().encode("ISA   ")]);
  assert.deepEqual([...e[4]], [2, 0, 0x11, 1, 0x00, 0x00, 0xc0, 0xfe]);
  const local = e.filter((x) => x[0] === 4);
  assert.deepEqual(local.map((x) => [...x]), [
    [4, 3, 0, 0, 1, 0, 0xff, 0], // ExtINT -> LINT0 of all APICs
    [4, 1, 0, 0, 1, 0, 0xff, 1], // NMI -> LINT1 of all APICs
  ]);
  // Defaults when the CPU is not given.
  const d = entries(buildMpConfigTable(p).toBytes());
  assert.equal(cpu(d[0]).getUint32(4, true), DEFAULT_CPU_SIGNATURE);
  assert.equal(cpu(d[0]).getUint32(8, true), DEFAULT_CPU_FEATURES);
});

Deno.test("I/O interrupt entries: ISA IRQs and PCI INTx of two devices", () => {
  const p = platform({ pci: [{ slot: 3, type: "testdev" }, { slot: 4, type: "testdev" }] });
  const io = entries(buildMpConfigTable(p).toBytes()).filter((x) => x[0] === 3).map((x) => [...x]);
  const isa = io.filter((x) => x[4] === 1);
  const pci = io.filter((x) => x[4] === 0);
  // [type, INT, flags lo, flags hi, bus, source IRQ, IOAPIC ID, pin]
  assert.equal(isa.length, 15);
  assert.deepEqual(isa[0], [3, 0, 0, 0, 1, 0, 0, 2]); // IRQ 0 -> pin 2
  assert.deepEqual(isa[1], [3, 0, 0, 0, 1, 1, 0, 1]);
  assert.ok(!isa.some((x) => x[5] === 2)); // no IRQ 2
  // The SCI: level-triggered, active high (0x0D).
  assert.deepEqual(isa.find((x) => x[5] === 9), [3, 0, 0x0d, 0, 1, 9, 0, 9]);
  assert.deepEqual(isa.find((x) => x[5] === 4), [3, 0, 0, 0, 1, 4, 0, 4]);
  // PCI: bus 0, source IRQ = slot << 2 | (pin - 1), active low / level (0x0F), GSI 16 and 17.
  assert.deepEqual(pci, [
    [3, 0, 0x0f, 0, 0, (3 << 2) | 0, 0, 16],
    [3, 0, 0x0f, 0, 0, (4 << 2) | 0, 0, 17],
  ]);
});

Deno.test("CPUs with APIC IDs above 254 cannot be listed in the MP table", () => {
  const p = platform({ cpu: { sockets: 85, cores: 3, x2apic: true } });
  const e = entries(buildMpConfigTable(p).toBytes());
  const cpus = e.filter((x) => x[0] === 0);
  const listable = p.cpus.filter((c) => c.present && c.apicId <= 254).length;
  assert.equal(cpus.length, listable);
  assert.ok(listable < p.cpus.length);
  assert.equal(cpus.filter((x) => x[3] & 2).length, 1);
});

import assert from "node:assert/strict";
import { ascii, platform, view } from "../firmware/_testing.ts";
import { buildFirmwareTables } from "../firmware/tables.ts";
import { byteSum } from "./_struct.ts";
import { compileSummary, iasl, iaslAvailable, problemLines, rsdpSource } from "./_iasl.ts";
import {
  buildFadt,
  buildHpet,
  buildMadt,
  buildMcfg,
  buildSpcr,
  encodeMadtEntry,
  Facs,
  FACS_LAYOUT,
  FADT_FLAGS,
  FADT_LAYOUT,
  GAS_LAYOUT,
  HEADER_LAYOUT,
  HPET_LAYOUT,
  hpetBlockId,
  IAPC_BOOT_ARCH,
  MADT_ENTRY,
  MADT_LAYOUT,
  madtEntries,
  MCFG_ALLOCATION_LAYOUT,
  MCFG_LAYOUT,
  mpsIntiFlags,
  Rsdp,
  RSDP_LAYOUT,
  Rsdt,
  SPCR_LAYOUT,
  Xsdt,
} from "./tables.ts";

Deno.test("layouts match the specification's offsets and sizes", () => {
  // ACPI 6.5 Table 5.4 (header), 5.3 (RSDP), 5.1 (GAS).
  assert.equal(HEADER_LAYOUT.size, 36);
  assert.equal(HEADER_LAYOUT.offsets.checksum, 9);
  assert.equal(HEADER_LAYOUT.offsets.oemTableId, 16);
  assert.equal(HEADER_LAYOUT.offsets.creatorId, 28);
  assert.equal(RSDP_LAYOUT.size, 36);
  assert.equal(RSDP_LAYOUT.offsets.rsdtAddress, 16);
  assert.equal(RSDP_LAYOUT.offsets.xsdtAddress, 24);
  assert.equal(RSDP_LAYOUT.offsets.extendedChecksum, 32);
  assert.equal(GAS_LAYOUT.size, 12);
  // FADT, ACPI 6.5 Table 5.9.
  const f = FADT_LAYOUT.offsets;
  assert.equal(FADT_LAYOUT.size, 276);
  assert.deepEqual(
    [f.firmwareCtrl, f.dsdt, f.sciInt, f.smiCmd, f.pm1aEvtBlk, f.pm1aCntBlk, f.pmTmrBlk],
    [36, 40, 46, 48, 56, 64, 76],
  );
  assert.deepEqual([f.pm1EvtLen, f.pm1CntLen, f.pmTmrLen, f.century, f.iapcBootArch], [
    88,
    89,
    91,
    108,
    109,
  ]);
  assert.deepEqual([f.flags, f.resetReg, f.resetValue, f.armBootArch, f.minorVersion], [
    112,
    116,
    128,
    129,
    131,
  ]);
  assert.deepEqual([f.xFirmwareCtrl, f.xDsdt, f.xPm1aEvtBlk, f.xPm1aCntBlk, f.xPmTmrBlk], [
    132,
    140,
    148,
    172,
    208,
  ]);
  assert.deepEqual([f.xGpe0Blk, f.sleepControlReg, f.sleepStatusReg, f.hypervisorVendorIdentity], [
    220,
    244,
    256,
    268,
  ]);
  // FACS, Table 5.14.
  assert.equal(FACS_LAYOUT.size, 64);
  assert.equal(FACS_LAYOUT.offsets.xFirmwareWakingVector, 24);
  assert.equal(FACS_LAYOUT.offsets.version, 32);
  assert.equal(FACS_LAYOUT.offsets.ospmFlags, 36);
  // MADT, Tables 5.19, 5.22, 5.24, 5.25, 5.28, 5.33, 5.34.
  assert.equal(MADT_LAYOUT.size, 44);
  assert.equal(MADT_LAYOUT.offsets.localApicAddress, 36);
  assert.equal(MADT_LAYOUT.offsets.flags, 40);
  const sizes = Object.fromEntries(
    Object.entries(MADT_ENTRY).map(([k, v]) => [k, [v.type, v.layout.size]]),
  );
  assert.deepEqual(sizes, {
    lapic: [0, 8],
    ioapic: [1, 12],
    iso: [2, 10],
    lapicNmi: [4, 6],
    x2apic: [9, 16],
    x2apicNmi: [10, 12],
  });
  assert.equal(MADT_ENTRY.iso.layout.offsets.gsi, 4);
  assert.equal(MADT_ENTRY.iso.layout.offsets.flags, 8);
  assert.equal(MADT_ENTRY.x2apic.layout.offsets.x2apicId, 4);
  assert.equal(MADT_ENTRY.x2apic.layout.offsets.uid, 12);
  assert.equal(MADT_ENTRY.x2apicNmi.layout.offsets.lint, 8);
  // HPET, IA-PC HPET 1.0a table 3.
  assert.equal(HPET_LAYOUT.size, 56);
  assert.deepEqual(
    [
      HPET_LAYOUT.offsets.eventTimerBlockId,
      HPET_LAYOUT.offsets.baseAddress,
      HPET_LAYOUT.offsets.hpetNumber,
      HPET_LAYOUT.offsets.minimumTick,
      HPET_LAYOUT.offsets.pageProtection,
    ],
    [36, 40, 52, 53, 55],
  );
  // MCFG, PCI Firmware 3.2 Tables 4-2 and 4-3.
  assert.equal(MCFG_LAYOUT.size, 44);
  assert.equal(MCFG_ALLOCATION_LAYOUT.size, 16);
  assert.equal(MCFG_ALLOCATION_LAYOUT.offsets.endBus, 11);
  // SPCR revision 2.
  assert.equal(SPCR_LAYOUT.size, 80);
  const s = SPCR_LAYOUT.offsets;
  assert.deepEqual([s.interfaceType, s.baseAddress, s.interruptType, s.irq, s.gsi, s.baudRate], [
    36,
    40,
    52,
    53,
    54,
    58,
  ]);
  assert.deepEqual([s.terminalType, s.pciDeviceId, s.pciVendorId, s.pciFlags, s.pciSegment], [
    62,
    64,
    66,
    71,
    75,
  ]);
});

Deno.test("FADT fields", () => {
  const p = platform();
  const b = buildFadt(p, { facs: 0xe0000, dsdt: 0xe0040 }).toAml();
  const v = view(b);
  assert.equal(b.length, 276);
  assert.equal(ascii(b, 0, 4), "FACP");
  assert.equal(b[8], 6); // revision
  assert.equal(b[131], 5); // minor version: ACPI 6.5
  assert.equal(byteSum(b), 0);
  assert.equal(ascii(b, 10, 6), "DHYVE ");
  assert.equal(ascii(b, 16, 8), "DHYVEVM ");
  assert.equal(ascii(b, 28, 4), "DHYV");
  assert.equal(v.getUint32(36, true), 0xe0000);
  assert.equal(v.getUint32(40, true), 0xe0040);
  assert.equal(v.getBigUint64(132, true), 0xe0000n);
  assert.equal(v.getBigUint64(140, true), 0xe0040n);
  assert.equal(v.getUint16(46, true), 9); // SCI_INT
  assert.equal(v.getUint32(48, true), 0); // SMI_CMD: no SMM, always in ACPI mode
  assert.equal(v.getUint32(56, true), 0x400);
  assert.equal(v.getUint32(64, true), 0x404);
  assert.equal(v.getUint32(76, true), 0x408);
  assert.deepEqual([b[88], b[89], b[91]], [4, 2, 4]);
  const flags = v.getUint32(112, true);
  const F = FADT_FLAGS;
  // PWR_BUTTON set: the power button is the control-method \_SB.PWRB (a GPE), not a fixed one.
  assert.equal(
    flags,
    F.WBINVD | F.PROC_C1 | F.PWR_BUTTON | F.SLP_BUTTON | F.FIX_RTC | F.RESET_REG_SUP |
      F.TMR_VAL_EXT,
  );
  // GPE0_BLK at 0x40C, 4 bytes (status + enable); no GPE1.
  assert.equal(v.getUint32(80, true), 0x40c);
  assert.equal(v.getUint32(84, true), 0);
  assert.equal(b[92], 4);
  assert.equal(b[93], 0);
  // P_LVL2_LAT > 100 and P_LVL3_LAT > 1000: no C2, no C3 (Table 5.9).
  assert.equal(v.getUint16(96, true), 0x0fff);
  assert.equal(v.getUint16(98, true), 0xffff);
  // X_GPE0_BLK: system I/O, 32 bits, byte access, 0x40C.
  assert.deepEqual([...b.subarray(220, 224)], [1, 32, 0, 1]);
  assert.equal(v.getBigUint64(224, true), 0x40cn);
  assert.equal(
    v.getUint16(109, true),
    IAPC_BOOT_ARCH.LEGACY_DEVICES | IAPC_BOOT_ARCH.VGA_NOT_PRESENT,
  );
  // RESET_REG: system I/O, 8 bits, byte access, 0xCF9; RESET_VALUE 6.
  assert.deepEqual([...b.subarray(116, 120)], [1, 8, 0, 1]);
  assert.equal(v.getBigUint64(120, true), 0xcf9n);
  assert.equal(b[128], 6);
  // X_PM1a_EVT_BLK, X_PM1a_CNT_BLK, X_PM_TMR_BLK: system I/O, 32/16/32 bits.
  assert.deepEqual([...b.subarray(148, 152)], [1, 32, 0, 2]);
  assert.equal(v.getBigUint64(152, true), 0x400n);
  assert.deepEqual([...b.subarray(172, 176)], [1, 16, 0, 2]);
  assert.equal(v.getBigUint64(176, true), 0x404n);
  assert.deepEqual([...b.subarray(208, 212)], [1, 32, 0, 3]);
  assert.equal(v.getBigUint64(212, true), 0x408n);
  assert.equal(ascii(b, 268, 8), "dhyve\0\0\0");
});

Deno.test("FACS, RSDP, RSDT, XSDT", () => {
  const facs = new Facs().toAml();
  assert.equal(facs.length, 64);
  assert.equal(ascii(facs, 0, 4), "FACS");
  assert.equal(view(facs).getUint32(4, true), 64);
  assert.equal(facs[32], 2);

  const rsdp = new Rsdp("DHYVE ", 0xe1000, 0xe2000).toAml();
  assert.equal(rsdp.length, 36);
  assert.equal(ascii(rsdp, 0, 8), "RSD PTR ");
  assert.equal(rsdp[15], 2);
  assert.equal(byteSum(rsdp.subarray(0, 20)), 0);
  assert.equal(byteSum(rsdp), 0);
  assert.equal(view(rsdp).getUint32(16, true), 0xe1000);
  assert.equal(view(rsdp).getUint32(20, true), 36);
  assert.equal(view(rsdp).getBigUint64(24, true), 0xe2000n);

  const ids = { oemId: "DHYVE ", oemTableId: "DHYVEVM " };
  const rsdt = new Rsdt(ids, [0xe0100, 0xe0200]).toAml();
  assert.equal(rsdt.length, 44);
  assert.equal(byteSum(rsdt), 0);
  assert.equal(view(rsdt).getUint32(40, true), 0xe0200);
  assert.throws(() => new Rsdt(ids, [2 ** 32]).toAml(), RangeError);
  const xsdt = new Xsdt(ids, [0xe0100, 0x1_0000_0000]).toAml();
  assert.equal(xsdt.length, 52);
  assert.equal(byteSum(xsdt), 0);
  assert.equal(view(xsdt).getBigUint64(44, true), 0x1_0000_0000n);
});

Deno.test("MADT: processors, IOAPIC, overrides, NMI", () => {
  const p = platform({ cpu: { cpus: 2, maxcpus: 4 } });
  const b = buildMadt(p).toAml();
  const v = view(b);
  assert.equal(byteSum(b), 0);
  assert.equal(ascii(b, 0, 4), "APIC");
  assert.equal(b[8], 6);
  assert.equal(v.getUint32(36, true), 0xfee00000);
  assert.equal(v.getUint32(40, true), 1); // PCAT_COMPAT
  // Walk the entries.
  const entries: number[][] = [];
  for (let at = 44; at < b.length; at += b[at + 1]) {
    entries.push([...b.subarray(at, at + b[at + 1])]);
  }
  assert.equal(entries.reduce((n, e) => n + e.length, 44), b.length);
  // Present CPUs enabled, the others online-capable only.
  assert.deepEqual(entries.slice(0, 4), [
    [0, 8, 0, 0, 1, 0, 0, 0],
    [0, 8, 1, 1, 1, 0, 0, 0],
    [0, 8, 2, 2, 2, 0, 0, 0],
    [0, 8, 3, 3, 2, 0, 0, 0],
  ]);
  // IOAPIC 0 at 0xFEC00000, GSI base 0.
  assert.deepEqual(entries[4], [1, 12, 0, 0, 0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0]);
  // IRQ 0 -> GSI 2 (conforming), IRQ 9 -> GSI 9 level/active-high (flags 0x0D).
  assert.deepEqual(entries[5], [2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
  assert.deepEqual(entries[6], [2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0]);
  // LINT1 NMI on all processors.
  assert.deepEqual(entries[7], [4, 6, 0xff, 0, 0, 1]);
  assert.equal(entries.length, 8);
});

Deno.test("MADT: x2APIC entries only for APIC IDs above 254, with the x2APIC NMI", () => {
  const p = platform({ cpu: { sockets: 85, cores: 3, x2apic: true } });
  const e = madtEntries(p);
  const x2 = e.filter((x) => x.type === "x2apic");
  const x1 = e.filter((x) => x.type === "lapic");
  assert.equal(x1.length + x2.length, 255);
  assert.ok(x1.every((x) => x.type === "lapic" && x.apicId <= 254));
  assert.ok(x2.length > 0 && x2.every((x) => x.type === "x2apic" && x.x2apicId > 254));
  assert.deepEqual(e.at(-1), { type: "x2apicNmi", uid: 0xffffffff, flags: 0, lint: 1 });
  const entry = encodeMadtEntry(x2[0]);
  assert.equal(entry.length, 16);
  assert.equal(entry[0], 9);
  assert.equal(view(entry).getUint32(4, true), x2[0].type === "x2apic" ? x2[0].x2apicId : -1);
  assert.equal(view(entry).getUint32(8, true), 1); // enabled
  assert.equal(byteSum(buildMadt(p).toAml()), 0);
  assert.equal(mpsIntiFlags({ polarity: "low", trigger: "level" }), 0x0f);
  assert.equal(mpsIntiFlags({ polarity: "high", trigger: "edge" }), 0x05);
});

Deno.test("HPET, MCFG and SPCR fields", () => {
  const p = platform();
  const h = buildHpet(p).toAml();
  const hv = view(h);
  assert.equal(h.length, 56);
  assert.equal(byteSum(h), 0);
  // Rev 1, 8 comparators (7), 32-bit counter, legacy capable, vendor 0x8086.
  assert.equal(hv.getUint32(36, true), 0x80868701);
  assert.equal(hpetBlockId(p.hpet), 0x80868701);
  assert.equal(h[40], 0); // system memory
  assert.equal(hv.getBigUint64(44, true), 0xfed00000n);
  assert.equal(h[52], 0); // HPET number
  assert.equal(hv.getUint16(53, true), 0x80);
  assert.equal(h[55], 0);

  const m = buildMcfg(p).toAml();
  const mv = view(m);
  assert.equal(m.length, 60);
  assert.equal(byteSum(m), 0);
  assert.equal(mv.getBigUint64(44, true), 0xe0000000n);
  assert.deepEqual([mv.getUint16(52, true), m[54], m[55]], [0, 0, 255]);

  const s = buildSpcr(p)!.toAml();
  const sv = view(s);
  assert.equal(s.length, 80);
  assert.equal(s[8], 2);
  assert.equal(byteSum(s), 0);
  assert.equal(s[36], 0); // 16550
  assert.deepEqual([...s.subarray(40, 44)], [1, 8, 0, 1]);
  assert.equal(sv.getBigUint64(44, true), 0x3f8n);
  assert.equal(s[52], 3); // dual 8259 + IOAPIC
  assert.equal(s[53], 4);
  assert.equal(sv.getUint32(54, true), 4);
  assert.deepEqual([...s.subarray(58, 63)], [7, 0, 1, 0, 0]); // 115200 8N1, no flow control, VT100
  assert.deepEqual([sv.getUint16(64, true), sv.getUint16(66, true)], [0xffff, 0xffff]);
  // No COM1, no SPCR.
  assert.equal(buildSpcr(platform({ console: { com1: "none", com2: "stdio" } })), undefined);
});

// ---------------------------------------------------------------------------
// iasl round trip

const HAVE_IASL = iaslAvailable();
/** Remarks iasl may make when recompiling our tables, by table. */
const ALLOWED_REMARKS: Record<string, RegExp> = {
  // An empty _PRT package pair (no PCI function uses INTx).
  DSDT: /^2095 Effective AML package length is zero$/,
};
/** Header bytes iasl rewrites when it recompiles a table: checksum, creator ID and revision. */
const IASL_OWNED = new Set([9, 28, 29, 30, 31, 32, 33, 34, 35]);

const ROUND_TRIP_CONFIGS: Record<string, (tmp: string) => Record<string, unknown>> = {
  "(a) 1 vCPU": () => ({}),
  "(b) 2 sockets x 2 cores x 2 threads, COM1 stdio + COM2 file": (tmp) => ({
    cpu: { sockets: 2, cores: 2, threads: 2 },
    console: { com2: { file: `${tmp}/com2.log` } },
  }),
  "(c) cpus 2, maxcpus 4": () => ({ cpu: { cpus: 2, maxcpus: 4 } }),
  "(d) two testdevs in slots 3 and 4, COM2 only": () => ({
    cpu: { cpus: 1 },
    console: { com1: "none", com2: "stdio" },
    pci: [{ slot: 3, type: "testdev" }, { slot: 4, type: "testdev" }],
  }),
  "(e) x2APIC: 85 sockets x 3 cores, APIC IDs up to 338": () => ({
    cpu: { sockets: 85, cores: 3, x2apic: true },
  }),
};

for (const [name, make] of Object.entries(ROUND_TRIP_CONFIGS)) {
  Deno.test({
    name: `iasl round trip: ${name}`,
    ignore: !HAVE_IASL,
    fn: async () => {
      const tmp = await Deno.makeTempDir({ prefix: "dhyve-acpi-" });
      try {
        const t = buildFirmwareTables(platform(make(tmp)));
        const acpi = t.tables.filter((x) => x.signature !== "_MP_" && x.signature !== "PCMP");
        for (const x of acpi) await Deno.writeFile(`${tmp}/${x.signature}.dat`, x.bytes);
        for (const x of acpi) {
          if (x.signature === "RSDP") continue;
          // Every table but the FACS (which has none) sums to zero.
          if (x.signature !== "FACS") assert.equal(byteSum(x.bytes), 0, `${x.signature} checksum`);
          // Disassemble.
          const d = await iasl(["-d", `${x.signature}.dat`], tmp);
          assert.equal(d.code, 0, `iasl -d ${x.signature}.dat:\n${d.output}`);
          assert.deepEqual(problemLines(d.output), [], `iasl -d ${x.signature}.dat`);
          const dsl = await Deno.readTextFile(`${tmp}/${x.signature}.dsl`);
          assert.deepEqual(problemLines(dsl), [], `${x.signature}.dsl`);
          // Compile the disassembly again (without name path optimization): no
          // errors or warnings, and the same bytes but for iasl's own header fields.
          const c = await iasl(["-on", `${x.signature}.dsl`], tmp);
          const s = compileSummary(c.output);
          assert.ok(s && c.code === 0, `iasl ${x.signature}.dsl:\n${c.output}`);
          assert.equal(s.errors, 0, c.output);
          assert.equal(s.warnings, 0, c.output);
          for (const r of s.remarkTexts) {
            assert.match(r, ALLOWED_REMARKS[x.signature] ?? /^$/, `${x.signature} remark`);
          }
          const again = await Deno.readFile(`${tmp}/${x.signature}.aml`);
          assert.equal(again.length, x.bytes.length, `${x.signature} recompiled length`);
          const header = x.signature !== "FACS";
          const diff = [...x.bytes.keys()].filter((i) =>
            again[i] !== x.bytes[i] && !(header && IASL_OWNED.has(i))
          );
          assert.deepEqual(
            diff,
            [],
            `${x.signature} differs from its recompilation at these offsets`,
          );
        }
        // The RSDP: iasl compiles it from source, checksums included, to the same bytes.
        const rsdp = acpi.find((x) => x.signature === "RSDP")!;
        const rv = view(rsdp.bytes);
        await Deno.writeTextFile(
          `${tmp}/rsdp.asl`,
          rsdpSource({
            oemId: "DHYVE ",
            rsdt: rv.getUint32(16, true),
            xsdt: Number(rv.getBigUint64(24, true)),
          }),
        );
        const r = await iasl(["rsdp.asl"], tmp);
        assert.equal(r.code, 0, r.output);
        assert.deepEqual(await Deno.readFile(`${tmp}/rsdp.aml`), rsdp.bytes);
        // All tables in one disassembler run.
        const files = acpi.filter((x) => x.signature !== "RSDP").map((x) => `${x.signature}.dat`);
        const all = await iasl(["-d", ...files], tmp);
        assert.equal(all.code, 0, all.output);
        assert.deepEqual(problemLines(all.output), []);
        assert.equal(
          (all.output.match(/Acpi Data Table \[\w+\] decoded/g) ?? []).length,
          files.length - 1,
        );
        assert.match(all.output, /Disassembly completed/);
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });
}

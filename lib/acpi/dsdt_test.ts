import assert from "node:assert/strict";
import { hex, platform } from "../firmware/_testing.ts";
import { encodeTerms, Name, type TermArg } from "./aml.ts";
import { byteSum } from "./_struct.ts";
import {
  buildDsdt,
  cpuDeviceName,
  dsdtTerms,
  gpeObjects,
  hostBridgeResources,
  linkDevice,
  picObjects,
  powerButton,
  processorDevices,
  prtObjects,
  sleepObjects,
} from "./dsdt.ts";

/** Two testdevs (slots 3 and 4: INTA# -> GSI 16/PIRQA and GSI 17/PIRQB), 256 MiB. */
const p = platform({ pci: [{ slot: 3, type: "testdev" }, { slot: 4, type: "testdev" }] });
/** One CPU present of two. */
const q = platform({ cpu: { cpus: 1, maxcpus: 2 } });

/**
 * Golden bytes: each `hex` is what iasl 20200925 (`iasl -on`, DSDT revision 2)
 * emits after the table header for the ASL in the comment.
 */
const GOLDEN: { title: string; hex: string; build: () => TermArg[] }[] = [
  {
    title: "_S5",
    // ASL (iasl -on; the External declarations' If (Zero) block is not part of the golden):
    //   Name (_S5, Package () { 0x05, Zero, Zero, Zero })
    hex: "085f53355f1207040a05000000",
    build: () => sleepObjects(p),
  },
  {
    title: "PICM and _PIC",
    // ASL (iasl -on; the External declarations' If (Zero) block is not part of the golden):
    //   Name (PICM, Zero)
    //   Method (_PIC, 1, NotSerialized) { Store (Arg0, PICM) }
    hex: "085049434d00140c5f5049430170685049434d",
    build: () => picObjects(),
  },
  {
    title: "_PRT for two functions in slots 3 and 4",
    // ASL (iasl -on; the External declarations' If (Zero) block is not part of the golden):
    //   External (PICM, IntObj)
    //   External (\_SB.LNKA, DeviceObj)
    //   External (\_SB.LNKB, DeviceObj)
    //   Name (PRTA, Package () {
    //       Package () { 0x0003FFFF, Zero, Zero, 0x10 },
    //       Package () { 0x0004FFFF, Zero, Zero, 0x11 },
    //   })
    //   Name (PRTP, Package () {
    //       Package () { 0x0003FFFF, Zero, \_SB.LNKA, Zero },
    //       Package () { 0x0004FFFF, Zero, \_SB.LNKB, Zero },
    //   })
    //   Method (_PRT, 0, NotSerialized)
    //   {
    //       If (PICM) { Return (PRTA) } Else { Return (PRTP) }
    //   }
    hex: "0850525441121a02120b040cffff030000000a10120b040cffff040000000a11" +
      "0850525450122a021213040cffff0300005c2e5f53425f4c4e4b41001213040c" +
      "ffff0400005c2e5f53425f4c4e4b420014185f50525400a00a5049434da45052" +
      "5441a106a450525450",
    build: () => prtObjects(p),
  },
  {
    title: "link device LNKA",
    // ASL (iasl -on; the External declarations' If (Zero) block is not part of the golden):
    //   External (\_SB.PCI0.ISA.PIRA, FieldUnitObj)
    //   Device (LNKA)
    //   {
    //       Name (_HID, EisaId ("PNP0C0F"))
    //       Name (_UID, One)
    //       Method (_STA, 0, NotSerialized)
    //       {
    //           If (And (\_SB.PCI0.ISA.PIRA, 0x80)) { Return (0x09) } Else { Return (0x0B) }
    //       }
    //       Name (_PRS, ResourceTemplate () { IRQ (Level, ActiveLow, Shared, ) {5,6,7,10,11,14,15} })
    //       Method (_CRS, 0, Serialized)
    //       {
    //           Name (RTLA, ResourceTemplate () { IRQ (Level, ActiveLow, Shared, ) {} })
    //           CreateWordField (RTLA, One, IRQ0)
    //           And (\_SB.PCI0.ISA.PIRA, 0x8F, Local0)
    //           If (LLess (Local0, 0x80)) { ShiftLeft (One, Local0, IRQ0) }
    //           Return (RTLA)
    //       }
    //       Method (_SRS, 1, Serialized)
    //       {
    //           CreateWordField (Arg0, One, IRQ0)
    //           FindSetRightBit (IRQ0, Local0)
    //           Decrement (Local0)
    //           Store (Local0, \_SB.PCI0.ISA.PIRA)
    //       }
    //       Method (_DIS, 0, NotSerialized)
    //       {
    //           Or (\_SB.PCI0.ISA.PIRA, 0x80, \_SB.PCI0.ISA.PIRA)
    //       }
    //   }
    hex: "5b82420f4c4e4b41085f4849440c41d00c0f085f5549440114275f53544100a0" +
      "1b7b5c2f045f53425f504349304953415f504952410a8000a40a09a104a40a0b" +
      "085f50525311090a0623e0cc1879001449045f435253080852544c4111090a06" +
      "2300001879008b52544c4101495251307b5c2f045f53425f504349304953415f" +
      "504952410a8f60a00c95600a8079016049525130a452544c41142a5f53525309" +
      "8b680149525130824952513060766070605c2f045f53425f504349304953415f" +
      "50495241142f5f444953007d5c2f045f53425f504349304953415f504952410a" +
      "805c2f045f53425f504349304953415f50495241",
    build: () => [linkDevice(0, p)],
  },
  {
    title: "host bridge _CRS (256 MiB, default lowmem limit)",
    // ASL (iasl -on; the External declarations' If (Zero) block is not part of the golden):
    //   Name (_CRS, ResourceTemplate ()
    //   {
    //       WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0x0000, 0x0000, 0x00FF, 0x0000, 0x0100)
    //       IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08)
    //       WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0x0000, 0x0000, 0x0CF7, 0x0000, 0x0CF8)
    //       WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0x0000, 0x0D00, 0xFFFF, 0x0000, 0xF300)
    //       DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite, 0x00000000, 0x000A0000, 0x000BFFFF, 0x00000000, 0x00020000)
    //       DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0x00000000, 0xC0000000, 0xDFFFFFFF, 0x00000000, 0x20000000)
    //       QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0x0000000000000000, 0x0000000100000000, 0x00000008FFFFFFFF, 0x0000000000000000, 0x0000000800000000)
    //   })
    hex: "085f43525311400a0a9c880d00020c0000000000ff00000000014701f80cf80c" +
      "0108880d00010c0300000000f70c0000f80c880d00010c030000000dffff0000" +
      "00f3871700000c030000000000000a00ffff0b00000000000000020087170000" +
      "0c0100000000000000c0ffffffdf00000000000000208a2b00000c0100000000" +
      "000000000000000001000000ffffffff08000000000000000000000000000000" +
      "080000007900",
    build: () => [new Name("_CRS", hostBridgeResources(p))],
  },
  {
    title: "power button and processor devices (CPU 0 present, CPU 1 absent)",
    // ASL (iasl -on; the External declarations' If (Zero) block is not part of the golden):
    //   Device (PWRB) { Name (_HID, EisaId ("PNP0C0C")) Name (_UID, Zero) }
    //   Device (C000) { Name (_HID, "ACPI0007") Name (_UID, Zero) Method (_STA, 0, NotSerialized) { Return (0x0F) } }
    //   Device (C001) { Name (_HID, "ACPI0007") Name (_UID, One) Method (_STA, 0, NotSerialized) { Return (Zero) } }
    hex: "5b821550575242085f4849440c41d00c0c085f554944005b822443303030085f" +
      "4849440d414350493030303700085f5549440014095f53544100a40a0f5b8223" +
      "43303031085f4849440d414350493030303700085f5549440114085f53544100" +
      "a400",
    build: () => [powerButton(), ...processorDevices(q)],
  },
];

for (const g of GOLDEN) {
  Deno.test(`dsdt golden: ${g.title}`, () => {
    assert.equal(hex(encodeTerms(g.build())), g.hex);
  });
}

Deno.test("the fixture routes as the goldens assume", () => {
  assert.deepEqual(
    p.routing.routes.map((r) => [r.slot, r.pin, r.ioapicPin, r.pirq]),
    [[3, 1, 16, 0], [4, 1, 17, 1]],
  );
  assert.deepEqual(p.pirqPossibleIrqs, [5, 6, 7, 10, 11, 14, 15]);
  assert.equal(p.pm.slpTypS5, 5);
});

Deno.test("DSDT: header, checksum and the objects of the platform", () => {
  const b = buildDsdt(p).toAml();
  assert.equal(String.fromCharCode(...b.subarray(0, 4)), "DSDT");
  assert.equal(new DataView(b.buffer).getUint32(4, true), b.length);
  assert.equal(b[8], 2);
  assert.equal(byteSum(b), 0);
  const text = new TextDecoder("latin1").decode(b);
  for (
    const name of ["_S5_", "PICM", "_PIC", "PCI0", "_PRT", "ISA_", "PIRQ", "COM1", "RTC_", "TIMR"]
  ) {
    assert.ok(text.includes(name), name);
  }
  for (const name of ["PIC_", "HPET", "MBRS", "LNKA", "LNKH", "PWRB", "C000"]) {
    assert.ok(text.includes(name), name);
  }
  // COM2 appears only when configured.
  assert.ok(!text.includes("COM2"));
  const both = new TextDecoder("latin1").decode(
    buildDsdt(platform({ console: { com1: "stdio", com2: { file: "/tmp/dhyve-com2.log" } } }))
      .toAml(),
  );
  assert.ok(both.includes("COM2"));
});

Deno.test("processor devices: one per CPU, _UID = MADT UID, named in hexadecimal", () => {
  const big = platform({ cpu: { sockets: 85, cores: 3, x2apic: true } });
  const devices = processorDevices(big);
  assert.equal(devices.length, 255);
  assert.equal(new Set(devices.map((d) => d.name.path)).size, 255);
  assert.equal(cpuDeviceName(0), "C000");
  assert.equal(cpuDeviceName(254), "C0FE");
  assert.equal(devices[254].name.path, "C0FE");
  // Every term list still encodes (the DSDT needs 4-byte PkgLengths nowhere, but 2-3 byte ones).
  assert.ok(encodeTerms(dsdtTerms(big)).length > 10000);
});

Deno.test("_PRT: one entry per routed (slot, pin), functions sharing a pin share it", () => {
  const multi = platform({
    pci: [
      { slot: 5, function: 0, type: "testdev" },
      { slot: 5, function: 1, type: "testdev" },
      { slot: 5, function: 2, type: "testdev" },
      { slot: 5, function: 3, type: "testdev" },
      { slot: 5, function: 4, type: "testdev" },
    ],
  });
  // Five functions spread over four pins: INTA# is used twice, listed once.
  const prt = prtObjects(multi)[0] as Name;
  const aml = prt.toAml();
  // Name PRTA Package: NameOp, 4-char name, PackageOp, PkgLength, NumElements.
  assert.equal(aml[0], 0x08);
  assert.equal(aml[5], 0x12);
  assert.equal(aml[7], 4);
});

Deno.test("the power button's GPE method notifies \\_SB.PWRB (golden bytes from iasl)", () => {
  // Scope (\_GPE) { Method (_E00, 0, NotSerialized) { Notify (\_SB.PWRB, 0x80) } }
  const golden = "10 1a 5c 5f 47 50 45 14 13 5f 45 30 30 00 86 5c 2e 5f 53 42 5f 50 57 52 42 0a 80";
  assert.equal(hex(encodeTerms(gpeObjects(platform()))), golden.replaceAll(" ", ""));
});

import assert from "node:assert/strict";
import { hex } from "../firmware/_testing.ts";
import {
  Add,
  AddressSpaceResource,
  AmlBuffer,
  AmlInteger,
  And,
  ARG,
  Arg,
  CreateField,
  Decrement,
  Device,
  EisaId,
  encodePkgLength,
  encodeRawPkgLength,
  encodeTerms,
  Field,
  FindSetRightBit,
  FixedIoResource,
  If,
  Increment,
  InterruptResource,
  ioPort,
  IoResource,
  ioWindow,
  IrqResource,
  LEqual,
  LGreaterEqual,
  LLess,
  LNot,
  LOCAL,
  Local,
  Memory32FixedResource,
  memoryWindow,
  Method,
  Name,
  NameString,
  Notify,
  ns,
  ONES,
  Op,
  OperationRegion,
  Or,
  Package,
  ResourceTemplate,
  Return,
  Scope,
  ShiftLeft,
  ShiftRight,
  Store,
  str,
  Subtract,
  type TermArg,
  wordBusNumber,
} from "./aml.ts";
import { checksum } from "./_struct.ts";

/** Hex of the 5000-byte initializer from its 5th byte on (the golden's first 4 are inline). */
const bigBufferTail = Array.from(
  { length: 4996 },
  (_, i) => ((i + 4) & 0xff).toString(16).padStart(2, "0"),
)
  .join("");

/**
 * Golden bytes: each `hex` is what iasl 20200925 (`iasl -on`, DSDT revision 2)
 * emits after the 36-byte table header for the ASL in the comment.
 */
const GOLDEN: { title: string; hex: string; build: () => TermArg[] }[] = [
  {
    title: "NameSeg padding, root and parent prefixes, dual and multi name paths",
    // ASL (iasl -on):
    //   Device (\_SB.PCI0) { Name (_ADR, Zero) Device (ISA) { Name (_ADR, 0x001F0000) Name (FOO, Zero) } }
    //   Scope (\_SB.PCI0.ISA) { Name (BAZ, Package () { ^ISA, ^^PCI0, \_SB.PCI0, \_SB.PCI0.ISA.FOO, \_SB }) }
    hex: "5b82285c2e5f53425f50434930085f414452005b82154953415f085f4144520c" +
      "00001f0008464f4f5f001046045c2f035f53425f504349304953415f0842415a" +
      "5f122f055e4953415f5e5e504349305c2e5f53425f504349305c2f045f53425f" +
      "504349304953415f464f4f5f5c5f53425f",
    build: () => [
      new Device("\\_SB.PCI0", [
        new Name("_ADR", 0),
        new Device("ISA", [new Name("_ADR", 0x001f0000), new Name("FOO", 0)]),
      ]),
      new Scope("\\_SB.PCI0.ISA", [
        new Name(
          "BAZ",
          new Package([
            ns("^ISA"),
            ns("^^PCI0"),
            ns("\\_SB.PCI0"),
            ns("\\_SB.PCI0.ISA.FOO"),
            ns("\\_SB"),
          ]),
        ),
      ]),
    ],
  },
  {
    title: "the root scope alone (NullName after the root prefix)",
    // ASL (iasl -on):
    //   Scope (\) { Name (R, Zero) }
    hex: "10095c0008525f5f5f00",
    build: () => [new Scope("\\", [new Name("R", 0)])],
  },
  {
    title: "integers take their smallest encoding",
    // ASL (iasl -on):
    //   Name (I0, 0)
    //   Name (I1, 1)
    //   Name (I2, 2)
    //   Name (I3, 0xFF)
    //   Name (I4, 0x100)
    //   Name (I5, 0xFFFF)
    //   Name (I6, 0x10000)
    //   Name (I7, 0xFFFFFFFF)
    //   Name (I8, 0x100000000)
    //   Name (I9, 0xFFFFFFFFFFFFFFFE)
    //   Name (IA, 0xFFFFFFFFFFFFFFFF)
    //   Name (IB, Ones)
    hex: "0849305f5f000849315f5f010849325f5f0a020849335f5f0aff0849345f5f0b" +
      "00010849355f5f0bffff0849365f5f0c000001000849375f5f0cffffffff0849" +
      "385f5f0e00000000010000000849395f5f0efeffffffffffffff0849415f5fff" +
      "0849425f5fff",
    build: () => [
      new Name("I0", 0),
      new Name("I1", 1),
      new Name("I2", 2),
      new Name("I3", 0xff),
      new Name("I4", 0x100),
      new Name("I5", 0xffff),
      new Name("I6", 0x10000),
      new Name("I7", 0xffffffff),
      new Name("I8", 0x100000000),
      new Name("I9", 0xfffffffffffffffen),
      new Name("IA", 0xffffffffffffffffn),
      new Name("IB", ONES),
    ],
  },
  {
    title: "strings, buffers and EisaId",
    // ASL (iasl -on):
    //   Name (_HID, "ACPI0007")
    //   Name (_CID, EisaId ("PNP0A03"))
    //   Name (HID2, EisaId ("PNP0C0F"))
    //   Name (BUF, Buffer () { 0x01, 0x02, 0x03 })
    //   Name (EMPT, "")
    hex: "085f4849440d414350493030303700085f4349440c41d00a0308484944320c41" +
      "d00c0f084255465f11060a0301020308454d50540d00",
    build: () => [
      new Name("_HID", str("ACPI0007")),
      new Name("_CID", new EisaId("PNP0A03")),
      new Name("HID2", new EisaId("PNP0C0F")),
      new Name("BUF", new AmlBuffer([1, 2, 3])),
      new Name("EMPT", str("")),
    ],
  },
  {
    title: "packages: empty, nested, and one whose PkgLength needs two bytes",
    // ASL (iasl -on):
    //   Name (P0, Package () {})
    //   Name (P1, Package () { Package () { 0x0003FFFF, Zero, \_SB, 0x10 }, "A" })
    //   Name (P2, Package () { 0x1000, 0x1001, 0x1002, 0x1003, 0x1004, 0x1005, 0x1006, 0x1007, 0x1008, 0x1009, 0x100a, 0x100b, 0x100c, 0x100d, 0x100e, 0x100f, 0x1010, 0x1011, 0x1012, 0x1013, 0x1014, 0x1015, 0x1016, 0x1017, 0x1018, 0x1019, 0x101a, 0x101b, 0x101c, 0x101d, 0x101e, 0x101f, 0x1020, 0x1021, 0x1022, 0x1023, 0x1024, 0x1025, 0x1026, 0x1027 })
    hex: "0850305f5f1202000850315f5f121502120f040cffff0300005c5f53425f0a10" +
      "0d41000850325f5f124b07280b00100b01100b02100b03100b04100b05100b06" +
      "100b07100b08100b09100b0a100b0b100b0c100b0d100b0e100b0f100b10100b" +
      "11100b12100b13100b14100b15100b16100b17100b18100b19100b1a100b1b10" +
      "0b1c100b1d100b1e100b1f100b20100b21100b22100b23100b24100b25100b26" +
      "100b2710",
    build: () => [
      new Name("P0", new Package([])),
      new Name("P1", new Package([new Package([0x0003ffff, 0, ns("\\_SB"), 0x10]), str("A")])),
      new Name("P2", new Package(Array.from({ length: 40 }, (_, i) => 0x1000 + i))),
    ],
  },
  {
    title: "a buffer whose PkgLength needs three bytes",
    // ASL (iasl -on):
    //   Name (BIG, Buffer () { 0x0, 0x1, 0x2, 0x3, 0x4, 0x5, 0x6, 0x ... (5012 bytes)
    hex:
      "084249475f118e38010b881300010203" /* iasl: 5012 bytes; the rest is the 5000 initializer bytes */ +
      bigBufferTail,
    build: () => [new Name("BIG", new AmlBuffer(Array.from({ length: 5000 }, (_, i) => i & 0xff)))],
  },
  {
    title: "methods: argument count, serialization, sync level; Return, Store, Locals and Args",
    // ASL (iasl -on):
    //   Method (M0, 0, NotSerialized) { Return (Zero) }
    //   Method (M1, 2, Serialized) { Store (Arg0, Local0) Store (Arg1, Local7) Return (Local0) }
    //   Method (M2, 7, NotSerialized, 3) { Return (Arg6) }
    hex: "14084d305f5f00a400140e4d315f5f0a706860706967a46014084d325f5f37a4" +
      "6e",
    build: () => [
      new Method("M0", 0, [Return(0)]),
      new Method("M1", 2, [Store(ARG[0], LOCAL[0]), Store(ARG[1], LOCAL[7]), Return(LOCAL[0])], {
        serialized: true,
      }),
      new Method("M2", 7, [Return(ARG[6])], { syncLevel: 3 }),
    ],
  },
  {
    title: "If/Else, logical operators and arithmetic with and without targets",
    // ASL (iasl -on):
    //   Name (PICM, Zero)
    //   Method (_PIC, 1, NotSerialized) { Store (Arg0, PICM) }
    //   Method (TST, 2, NotSerialized)
    //   {
    //       Store (Zero, Local0)
    //       If (LEqual (Arg0, 0x0A)) { Return (0x09) } Else { Return (0x0B) }
    //       If (LNot (PICM)) { Decrement (Local0) }
    //       If (LGreaterEqual (Arg1, 0x10)) { Increment (Local0) }
    //       If (LLess (Arg1, 2)) { Return (One) }
    //       And (Arg0, 0x8F, Local0)
    //       Or (Arg0, 0x80, Local1)
    //       ShiftLeft (One, Local0, Local2)
    //       ShiftRight (Local2, 1, Local3)
    //       Add (Local0, Local1, Local4)
    //       Subtract (Local0, One, Local5)
    //       Store (And (Arg1, 0x0F), Local6)
    //       FindSetRightBit (Arg1, Local0)
    //       Return (Local0)
    //   }
    hex: "085049434d00140c5f5049430170685049434d1448055453545f02700060a008" +
      "93680a0aa40a09a104a40a0ba008925049434d7660a0089295690a107560a007" +
      "95690a02a4017b680a8f607d680a8061790160627a6201637260616474600165" +
      "707b690a0f0066826960a460",
    build: () => [
      new Name("PICM", 0),
      new Method("_PIC", 1, [Store(ARG[0], ns("PICM"))]),
      new Method("TST", 2, [
        Store(0, LOCAL[0]),
        new If(LEqual(ARG[0], 0x0a), [Return(0x09)], [Return(0x0b)]),
        new If(LNot(ns("PICM")), [Decrement(LOCAL[0])]),
        new If(LGreaterEqual(ARG[1], 0x10), [Increment(LOCAL[0])]),
        new If(LLess(ARG[1], 2), [Return(1)]),
        And(ARG[0], 0x8f, LOCAL[0]),
        Or(ARG[0], 0x80, LOCAL[1]),
        ShiftLeft(1, LOCAL[0], LOCAL[2]),
        ShiftRight(LOCAL[2], 1, LOCAL[3]),
        Add(LOCAL[0], LOCAL[1], LOCAL[4]),
        Subtract(LOCAL[0], 1, LOCAL[5]),
        Store(And(ARG[1], 0x0f), LOCAL[6]),
        FindSetRightBit(ARG[1], LOCAL[0]),
        Return(LOCAL[0]),
      ]),
    ],
  },
  {
    title: "the other comparisons, Notify and the table-driven operators",
    // ASL (iasl -on):
    //   Device (PWRB) { Name (_HID, EisaId ("PNP0C0C")) }
    //   Method (TST, 2, NotSerialized)
    //   {
    //       If (LNotEqual (Arg0, Arg1)) { Notify (PWRB, 0x80) }
    //       If (LLessEqual (Arg0, Arg1)) { Return (LOr (LAnd (Arg0, Arg1), LGreater (Arg0, 1))) }
    //       Multiply (Arg0, 3, Local0)
    //       XOr (Arg0, Arg1, Local1)
    //       Not (Arg0, Local2)
    //       Return (SizeOf (Arg1))
    //   }
    hex: "5b820f50575242085f4849440c41d00c0c14305453545f02a00c929368698650" +
      "5752420a80a00d92946869a49190686994680177680a03607f686961806862a4" +
      "8769",
    build: () => [
      new Device("PWRB", [new Name("_HID", new EisaId("PNP0C0C"))]),
      new Method("TST", 2, [
        new If(new Op("LNotEqual", [ARG[0], ARG[1]]), [Notify(ns("PWRB"), 0x80)]),
        new If(new Op("LLessEqual", [ARG[0], ARG[1]]), [
          Return(
            new Op("LOr", [new Op("LAnd", [ARG[0], ARG[1]]), new Op("LGreater", [ARG[0], 1])]),
          ),
        ]),
        new Op("Multiply", [ARG[0], 3], LOCAL[0]),
        new Op("XOr", [ARG[0], ARG[1]], LOCAL[1]),
        new Op("Not", [ARG[0]], LOCAL[2]),
        Return(new Op("SizeOf", [ARG[1]])),
      ]),
    ],
  },
  {
    title: "operation regions in the three spaces, fields with Offset and every rule",
    // ASL (iasl -on):
    //   OperationRegion (PIRQ, PCI_Config, 0x60, 0x0C)
    //   Field (PIRQ, ByteAcc, NoLock, Preserve)
    //   {
    //       PIRA, 8, PIRB, 8, PIRC, 8, PIRD, 8,
    //       Offset (0x08),
    //       PIRE, 8, PIRF, 8, PIRG, 8, PIRH, 8
    //   }
    //   OperationRegion (PMIO, SystemIO, 0x0400, 0x0C)
    //   Field (PMIO, WordAcc, Lock, WriteAsOnes) { PSTS, 16, PEN, 16, , 4, CNT, 12, Offset (0x08), TMR, 32 }
    //   OperationRegion (MMIO, SystemMemory, 0xFED00000, 0x0400)
    //   Field (MMIO, DWordAcc, NoLock, WriteAsZeros) { Offset (0x100), BIG, 1000, FLAG, 1 }
    hex: "5b8050495251020a600a0c5b8130504952510150495241085049524208504952" +
      "43085049524408002050495245085049524608504952470850495248085b8050" +
      "4d494f010b00040a0c5b811e504d494f32505354531050454e5f100004434e54" +
      "5f0c0010544d525f205b804d4d494f000c0000d0fe0b00045b81144d4d494f43" +
      "0040804249475f483e464c414701",
    build: () => [
      new OperationRegion("PIRQ", "PCI_Config", 0x60, 0x0c),
      new Field("PIRQ", { access: "ByteAcc", lock: false, update: "Preserve" }, [
        { name: "PIRA", bits: 8 },
        { name: "PIRB", bits: 8 },
        { name: "PIRC", bits: 8 },
        { name: "PIRD", bits: 8 },
        { offset: 0x08 },
        { name: "PIRE", bits: 8 },
        { name: "PIRF", bits: 8 },
        { name: "PIRG", bits: 8 },
        { name: "PIRH", bits: 8 },
      ]),
      new OperationRegion("PMIO", "SystemIO", 0x400, 0x0c),
      new Field("PMIO", { access: "WordAcc", lock: true, update: "WriteAsOnes" }, [
        { name: "PSTS", bits: 16 },
        { name: "PEN", bits: 16 },
        { reserved: 4 },
        { name: "CNT", bits: 12 },
        { offset: 0x08 },
        { name: "TMR", bits: 32 },
      ]),
      new OperationRegion("MMIO", "SystemMemory", 0xfed00000, 0x400),
      new Field("MMIO", { access: "DWordAcc", lock: false, update: "WriteAsZeros" }, [
        { offset: 0x100 },
        { name: "BIG", bits: 1000 },
        { name: "FLAG", bits: 1 },
      ]),
    ],
  },
  {
    title: "CreateWordField / CreateDWordField over a resource template",
    // ASL (iasl -on):
    //   Method (_CRS, 0, Serialized)
    //   {
    //       Name (RTLA, ResourceTemplate () { IRQ (Level, ActiveLow, Shared, ) {} })
    //       CreateWordField (RTLA, One, IRQ0)
    //       CreateDWordField (RTLA, 0x02, DW)
    //       CreateByteField (RTLA, Zero, BY)
    //       CreateQWordField (RTLA, Zero, QW)
    //       CreateBitField (RTLA, 0x08, BT)
    //       Store (0x20, IRQ0)
    //       Return (RTLA)
    //   }
    hex: "1446055f435253080852544c4111090a062300001879008b52544c4101495251" +
      "308a52544c410a0244575f5f8c52544c410042595f5f8f52544c410051575f5f" +
      "8d52544c410a0842545f5f700a2049525130a452544c41",
    build: () => [
      new Method("_CRS", 0, [
        new Name(
          "RTLA",
          new ResourceTemplate([
            new IrqResource([], { trigger: "level", polarity: "low", shared: true }),
          ]),
        ),
        new CreateField("CreateWordField", ns("RTLA"), 1, "IRQ0"),
        new CreateField("CreateDWordField", ns("RTLA"), 2, "DW"),
        new CreateField("CreateByteField", ns("RTLA"), 0, "BY"),
        new CreateField("CreateQWordField", ns("RTLA"), 0, "QW"),
        new CreateField("CreateBitField", ns("RTLA"), 8, "BT"),
        Store(0x20, ns("IRQ0")),
        Return(ns("RTLA")),
      ], { serialized: true }),
    ],
  },
  {
    title: "small resource descriptors: IO, FixedIO, IRQ, IRQNoFlags",
    // ASL (iasl -on):
    //   Name (RT, ResourceTemplate ()
    //   {
    //       IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08, )
    //       IO (Decode10, 0x0100, 0x01F0, 0x10, 0x04, )
    //       FixedIO (0x0060, 0x01, )
    //       IRQNoFlags () {4}
    //       IRQNoFlags () {2,8}
    //       IRQ (Level, ActiveLow, Shared, ) {3,5,6,7,10,11,14,15}
    //       IRQ (Edge, ActiveHigh, Exclusive, ) {1}
    //       IRQ (Edge, ActiveLow, ExclusiveAndWake, ) {}
    //   })
    hex: "0852545f5f112b0a284701f803f803010847000001f00110044b600001221000" +
      "22040123e8cc1823020001230000297900",
    build: () => [
      new Name(
        "RT",
        new ResourceTemplate([
          ioPort(0x3f8, 8),
          new IoResource(0x100, 0x1f0, 0x10, 4, false),
          new FixedIoResource(0x60, 1),
          new IrqResource([4]),
          new IrqResource([2, 8]),
          new IrqResource([3, 5, 6, 7, 10, 11, 14, 15], {
            trigger: "level",
            polarity: "low",
            shared: true,
          }),
          new IrqResource([1], { trigger: "edge", polarity: "high", shared: false }),
          new IrqResource([], { trigger: "edge", polarity: "low", shared: false, wake: true }),
        ]),
      ),
    ],
  },
  {
    title: "large resource descriptors: Memory32Fixed, address spaces, extended Interrupt",
    // ASL (iasl -on):
    //   Name (RT, ResourceTemplate ()
    //   {
    //       WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0x0000, 0x0000, 0x00FF, 0x0000, 0x0100, , , )
    //       IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08, )
    //       WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0x0000, 0x0000, 0x0CF7, 0x0000, 0x0CF8, , , , TypeStatic, DenseTranslation)
    //       DWordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0x00000000, 0x00000D00, 0x0000FFFF, 0x00000000, 0x0000F300, , , , TypeStatic, DenseTranslation)
    //       DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite, 0x00000000, 0x000A0000, 0x000BFFFF, 0x00000000, 0x00020000, , , , AddressRangeMemory, TypeStatic)
    //       DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0x00000000, 0xC0000000, 0xDFFFFFFF, 0x00000000, 0x20000000, , , , AddressRangeMemory, TypeStatic)
    //       QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0x0000000000000000, 0x0000000100000000, 0x00000008FFFFFFFF, 0x0000000000000000, 0x0000000800000000, , , , AddressRangeMemory, TypeStatic)
    //       DWordMemory (ResourceConsumer, SubDecode, MinNotFixed, MaxNotFixed, Prefetchable, ReadOnly, 0x00000FFF, 0x10000000, 0x1FFFFFFF, 0x00000000, 0x10000000, , , , AddressRangeMemory, TypeStatic)
    //       Memory32Fixed (ReadOnly, 0xFED00000, 0x00000400, )
    //       Memory32Fixed (ReadWrite, 0xE0000000, 0x10000000, )
    //       Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, , , ) {9}
    //       Interrupt (ResourceConsumer, Edge, ActiveLow, Shared, , , ) {16, 17, 0x100}
    //   })
    hex: "0852545f5f11460f0af2880d00020c0000000000ff00000000014701f80cf80c" +
      "0108880d00010c0300000000f70c0000f80c871700010c0300000000000d0000" +
      "ffff00000000000000f30000871700000c030000000000000a00ffff0b000000" +
      "000000000200871700000c0100000000000000c0ffffffdf0000000000000020" +
      "8a2b00000c0100000000000000000000000001000000ffffffff080000000000" +
      "0000000000000000000008000000871700000306ff0f000000000010ffffff1f" +
      "0000000000000010860900000000d0fe0004000086090001000000e000000010" +
      "890600010109000000890e000f031000000011000000000100007900",
    build: () => [
      new Name(
        "RT",
        new ResourceTemplate([
          wordBusNumber(0, 0xff),
          ioPort(0xcf8, 8),
          ioWindow(0, 0xcf7),
          new AddressSpaceResource({ width: 32, type: "io", min: 0xd00, max: 0xffff }),
          memoryWindow(0xa0000, 0xbffff, "Cacheable"),
          memoryWindow(0xc0000000, 0xdfffffff),
          memoryWindow(0x100000000, 0x8ffffffff),
          new AddressSpaceResource({
            width: 32,
            type: "memory",
            consumer: true,
            subtractive: true,
            minFixed: false,
            maxFixed: false,
            cache: "Prefetchable",
            writable: false,
            granularity: 0xfff,
            min: 0x10000000,
            max: 0x1fffffff,
          }),
          new Memory32FixedResource(0xfed00000, 0x400, false),
          new Memory32FixedResource(0xe0000000, 0x10000000),
          new InterruptResource([9], { trigger: "level", polarity: "high", shared: false }),
          new InterruptResource([16, 17, 0x100], {
            trigger: "edge",
            polarity: "low",
            shared: true,
          }),
        ]),
      ),
    ],
  },
];

for (const g of GOLDEN) {
  Deno.test(`aml golden: ${g.title}`, () => {
    assert.equal(hex(encodeTerms(g.build())), g.hex);
  });
}

Deno.test("PkgLength: shortest encoding that counts itself (ACPI 6.5, 20.2.4)", () => {
  // One byte up to 63 in total.
  assert.deepEqual(encodePkgLength(0), Uint8Array.of(0x01));
  assert.deepEqual(encodePkgLength(62), Uint8Array.of(0x3f));
  // 63 bytes of content need 65 in total: two bytes, low nibble in the lead byte.
  assert.deepEqual(encodePkgLength(63), Uint8Array.of(0x41, 0x04));
  assert.deepEqual(encodePkgLength(4093), Uint8Array.of(0x4f, 0xff));
  // 4094 + 2 = 4096 no longer fits 12 bits: three bytes.
  assert.deepEqual(encodePkgLength(4094), Uint8Array.of(0x81, 0x00, 0x01));
  assert.deepEqual(encodePkgLength(2 ** 20 - 4), Uint8Array.of(0x8f, 0xff, 0xff));
  // Four bytes.
  assert.deepEqual(encodePkgLength(2 ** 20 - 3), Uint8Array.of(0xc1, 0x00, 0x00, 0x01));
  assert.deepEqual(encodePkgLength(2 ** 28 - 5), Uint8Array.of(0xcf, 0xff, 0xff, 0xff));
  assert.throws(() => encodePkgLength(2 ** 28 - 4), RangeError);
  // Field widths use the raw form (no self-count).
  assert.deepEqual(encodeRawPkgLength(8), Uint8Array.of(0x08));
  assert.deepEqual(encodeRawPkgLength(0x40), Uint8Array.of(0x40, 0x04));
  assert.deepEqual(encodeRawPkgLength(1000), Uint8Array.of(0x48, 0x3e));
});

Deno.test("a 4-byte PkgLength round-trips through a large buffer", () => {
  const data = new Uint8Array(2 ** 20);
  const aml = new AmlBuffer(data).toAml();
  // BufferOp, 4-byte PkgLength, DWordConst 0x00100000, data.
  const total = aml.length - 1;
  assert.equal(aml[0], 0x11);
  assert.equal(aml[1] >> 6, 3);
  assert.equal((aml[1] & 0x0f) | (aml[2] << 4) | (aml[3] << 12) | (aml[4] << 20), total);
  assert.deepEqual(aml.subarray(5, 10), Uint8Array.of(0x0c, 0x00, 0x00, 0x10, 0x00));
});

Deno.test("name strings: validation and encodings", () => {
  assert.equal(hex(ns("\\").toAml()), "5c00");
  assert.equal(hex(ns("^^A").toAml()), "5e5e415f5f5f");
  assert.equal(hex(ns("A.B.C.D").toAml()), "2f04415f5f5f425f5f5f435f5f5f445f5f5f");
  assert.deepEqual(new NameString("\\_SB.PCI0").segments, ["_SB", "PCI0"]);
  for (const bad of ["", "1ABC", "ABCDE", "a", "A..B", "A-B"]) {
    assert.throws(() => ns(bad), Error, bad);
  }
});

Deno.test("integers, strings and EISA IDs reject what AML cannot hold", () => {
  assert.throws(() => new AmlInteger(-1), RangeError);
  assert.throws(() => new AmlInteger(ONES + 1n), RangeError);
  assert.throws(() => new AmlInteger(2 ** 53), RangeError);
  assert.throws(() => str("caf\u00e9"), Error);
  assert.throws(() => new EisaId("PNP0a03"), Error);
  assert.equal(new EisaId("PNP0A03").value, 0x030ad041);
  assert.equal(new EisaId("PNP0C0F").value, 0x0f0cd041);
});

Deno.test("operators check their operand counts; methods their flags", () => {
  assert.throws(() => new Op("Add", [1]), /Add takes 2/);
  assert.throws(() => new Op("LEqual", [1, 2], LOCAL[0]), /takes no target/);
  assert.throws(() => new Method("X", 8, []), RangeError);
  assert.throws(() => new Method("X", 0, [], { syncLevel: 16 }), RangeError);
  assert.throws(() => new Local(8), RangeError);
  assert.throws(() => new Arg(7), RangeError);
});

Deno.test("a field Offset that moves backwards is refused", () => {
  const f = new Field("R", { access: "ByteAcc", lock: false, update: "Preserve" }, [
    { name: "A", bits: 16 },
    { offset: 1 },
  ]);
  assert.throws(() => f.toAml(), /moves backwards/);
});

Deno.test("resource templates: end tag checksum zero by default, computed on request", () => {
  const ds = [ioPort(0x70, 2), new IrqResource([8])];
  const plain = new ResourceTemplate(ds).bytes();
  // IO (Decode16, 0x70, 0x70, 1, 2), IRQNoFlags () {8}, EndTag with checksum 0.
  assert.equal(hex(plain), "4701700070000102" + "220001" + "7900");
  const summed = new ResourceTemplate(ds, { checksum: true }).bytes();
  assert.equal(summed.reduce((a, b) => (a + b) & 0xff, 0), 0);
  assert.equal(summed[summed.length - 1], checksum(plain));
  assert.deepEqual(summed.subarray(0, -1), plain.subarray(0, -1));
});

Deno.test("resource descriptors refuse values that do not fit", () => {
  assert.throws(() => new IoResource(0x10000, 0, 1, 1), RangeError);
  assert.throws(() => new IrqResource([16]), RangeError);
  assert.throws(() => new FixedIoResource(0x400, 1), RangeError);
  assert.throws(() => new Memory32FixedResource(2 ** 32, 1), RangeError);
  assert.throws(
    () => new AddressSpaceResource({ width: 16, type: "io", min: 0, max: 0x10000 }),
    RangeError,
  );
  assert.throws(
    () => new InterruptResource([], { trigger: "edge", polarity: "high", shared: false }),
    RangeError,
  );
  // Windows pick their width from the range.
  assert.equal(ioWindow(0, 0xffff).options.width, 16);
  assert.equal(memoryWindow(0xc0000000, 0xdfffffff).options.width, 32);
  assert.equal(memoryWindow(2 ** 32, 2 ** 33 - 1).options.width, 64);
  assert.equal(wordBusNumber(0, 255).options.type, "bus");
});

import assert from "node:assert/strict";
import { GuestMemory, GuestMemoryError } from "./guest_memory.ts";

const LOW_END = 0xa0000;
const HIGH_START = 0xc0000;
const END = 0x200000;
const HOLE_FILL = 0x5a;

function setup(): { span: Uint8Array; mem: GuestMemory } {
  const span = new Uint8Array(END);
  span.fill(HOLE_FILL, LOW_END, HIGH_START);
  const mem = new GuestMemory(span, [
    { name: "high", gpa: HIGH_START, size: END - HIGH_START },
    { name: "low", gpa: 0, size: LOW_END },
  ]);
  return { span, mem };
}

function holeUntouched(span: Uint8Array): boolean {
  return span.subarray(LOW_END, HIGH_START).every((b) => b === HOLE_FILL);
}

Deno.test("ranges are sorted and sized", () => {
  const { mem } = setup();
  assert.deepEqual(mem.ranges.map((r) => r.name), ["low", "high"]);
  assert.equal(mem.size, LOW_END + END - HIGH_START);
  assert.equal(mem.contains(0, LOW_END), true);
  assert.equal(mem.contains(HIGH_START, END - HIGH_START), true);
  assert.equal(mem.contains(0, LOW_END + 1), false);
  assert.equal(mem.contains(0xb0000, 0), false, "even an empty access in the hole is refused");
  assert.equal(mem.contains(LOW_END - 1, 1), true);
});

Deno.test("every access width reads and writes little-endian inside RAM", () => {
  const { span, mem } = setup();
  mem.writeU8(0x10, 0x1ab);
  mem.writeU16(0x20, 0xbeef);
  mem.writeU32(0x30, 0xdeadbeef);
  mem.writeU32(0x34, -1);
  mem.writeU64(0x40, 0x0123456789abcdefn);
  mem.writeU64(0x48, -1n);
  assert.equal(mem.readU8(0x10), 0xab);
  assert.equal(mem.readU16(0x20), 0xbeef);
  assert.equal(mem.readU32(0x30), 0xdeadbeef);
  assert.equal(mem.readU32(0x34), 0xffffffff);
  assert.equal(mem.readU64(0x40), 0x0123456789abcdefn);
  assert.equal(mem.readU64(0x48), 0xffffffffffffffffn);
  assert.deepEqual(Array.from(span.subarray(0x20, 0x22)), [0xef, 0xbe]);
  assert.deepEqual(Array.from(span.subarray(0x30, 0x34)), [0xef, 0xbe, 0xad, 0xde]);
  assert.deepEqual(Array.from(span.subarray(0x40, 0x48)), [
    0xef,
    0xcd,
    0xab,
    0x89,
    0x67,
    0x45,
    0x23,
    0x01,
  ]);
  // The last bytes of each range are reachable with every width.
  mem.writeU64(LOW_END - 8, 0x1122334455667788n);
  assert.equal(mem.readU32(LOW_END - 4), 0x11223344);
  assert.equal(mem.readU16(LOW_END - 2), 0x1122);
  assert.equal(mem.readU8(LOW_END - 1), 0x11);
  mem.writeU64(END - 8, 7n);
  assert.equal(mem.readU64(END - 8), 7n);
  mem.writeU16(HIGH_START, 0x1234);
  assert.equal(span[HIGH_START], 0x34);
  assert.ok(holeUntouched(span));
});

Deno.test("bulk read/write/fill/slice work inside one range", () => {
  const { span, mem } = setup();
  mem.write(HIGH_START + 0x100, new Uint8Array([1, 2, 3, 4]));
  assert.deepEqual(Array.from(mem.read(HIGH_START + 0x100, 4)), [1, 2, 3, 4]);
  const copy = mem.read(HIGH_START + 0x100, 4);
  copy[0] = 99;
  assert.equal(span[HIGH_START + 0x100], 1, "read() returns a copy");
  const live = mem.slice(HIGH_START + 0x100, 4);
  live[0] = 42;
  assert.equal(mem.readU8(HIGH_START + 0x100), 42, "slice() is a live view");
  mem.fill(0x1000, 0x10, 0xcc);
  assert.ok(span.subarray(0x1000, 0x1010).every((b) => b === 0xcc));
  assert.equal(span[0x1010], 0);
  mem.fill(0x2000, 4);
  assert.deepEqual(Array.from(span.subarray(0x2000, 0x2004)), [0, 0, 0, 0]);
  assert.equal(mem.read(0, 0).length, 0);
});

function expectError(f: () => unknown, gpa: number, length: number, why: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof GuestMemoryError, `got ${e}`);
    assert.equal(e.name, "GuestMemoryError");
    assert.ok(Object.is(e.gpa, gpa), `gpa ${e.gpa} != ${gpa}`);
    assert.equal(e.length, length);
    assert.match(e.message, why);
    return true;
  });
}

Deno.test("accesses that straddle a range end or start in the hole throw and touch nothing", () => {
  const { span, mem } = setup();
  const before = span.slice();
  const outside = /not inside guest RAM/;
  // Straddling the end of low RAM into the hole.
  expectError(() => mem.writeU16(LOW_END - 1, 0xffff), LOW_END - 1, 2, outside);
  expectError(() => mem.writeU32(LOW_END - 2, 0), LOW_END - 2, 4, outside);
  expectError(() => mem.writeU64(LOW_END - 4, 0n), LOW_END - 4, 8, outside);
  expectError(() => mem.write(LOW_END - 1, new Uint8Array(2)), LOW_END - 1, 2, outside);
  expectError(() => mem.fill(LOW_END - 0x10, 0x20, 0xee), LOW_END - 0x10, 0x20, outside);
  expectError(() => mem.readU64(LOW_END - 7), LOW_END - 7, 8, outside);
  // Starting in the hole.
  expectError(() => mem.writeU8(LOW_END, 1), LOW_END, 1, outside);
  expectError(() => mem.writeU32(HIGH_START - 2, 0), HIGH_START - 2, 4, outside);
  expectError(() => mem.readU8(0xb8000), 0xb8000, 1, outside);
  expectError(() => mem.slice(0xb8000, 0x1000), 0xb8000, 0x1000, outside);
  // Spanning the whole hole from RAM to RAM.
  expectError(() => mem.fill(0x9f000, 0x22000, 0xee), 0x9f000, 0x22000, outside);
  // Past the end of RAM.
  expectError(() => mem.writeU16(END - 1, 0), END - 1, 2, outside);
  expectError(() => mem.readU8(END), END, 1, outside);
  expectError(() => mem.read(END - 4, 8), END - 4, 8, outside);
  assert.ok(holeUntouched(span));
  assert.deepEqual(span, before, "no byte changed anywhere");
});

Deno.test("malformed addresses and lengths throw GuestMemoryError", () => {
  const { span, mem } = setup();
  const before = span.slice();
  const bad = /not a valid address\/length/;
  expectError(() => mem.writeU8(-1, 1), -1, 1, bad);
  expectError(() => mem.readU32(-4), -4, 4, bad);
  expectError(() => mem.writeU8(NaN, 1), NaN, 1, bad);
  expectError(() => mem.readU16(256.5), 256.5, 2, bad);
  expectError(() => mem.writeU32(2 ** 53, 0), 2 ** 53, 4, bad);
  expectError(() => mem.writeU64(Infinity, 0n), Infinity, 8, bad);
  expectError(() => mem.fill(0x100, -1), 0x100, -1, bad);
  expectError(() => mem.read(0x100, 1.5), 0x100, 1.5, bad);
  expectError(() => mem.read(0x100, NaN), 0x100, NaN, bad);
  // Huge but safe-integer values are simply outside RAM.
  expectError(() => mem.writeU8(2 ** 52, 1), 2 ** 52, 1, /not inside guest RAM/);
  expectError(() => mem.read(0, 2 ** 40), 0, 2 ** 40, /not inside guest RAM/);
  assert.deepEqual(span, before);
  assert.match(
    (() => {
      try {
        mem.readU8(LOW_END);
      } catch (e) {
        return (e as Error).message;
      }
      return "";
    })(),
    /^guest memory access \[0xa0000, \+1\): not inside guest RAM$/,
  );
});

Deno.test("the constructor refuses overlapping, malformed and out-of-span ranges", () => {
  const span = new Uint8Array(0x10000);
  assert.throws(
    () =>
      new GuestMemory(span, [
        { name: "a", gpa: 0x1000, size: 0x2000 },
        { name: "b", gpa: 0x2fff, size: 0x100 },
      ]),
    /RAM ranges a and b overlap/,
  );
  assert.throws(
    () =>
      new GuestMemory(span, [
        { name: "late", gpa: 0x8000, size: 0x1000 },
        { name: "early", gpa: 0, size: 0x8001 },
      ]),
    /RAM ranges early and late overlap/,
  );
  assert.throws(() => new GuestMemory(span, [{ name: "z", gpa: 0, size: 0 }]), /bad RAM range z/);
  assert.throws(() => new GuestMemory(span, [{ name: "f", gpa: 0.5, size: 8 }]), /bad RAM range f/);
  assert.throws(
    () => new GuestMemory(span, [{ name: "big", gpa: 0x8000, size: 0x8001 }]),
    /RAM range big outside the host span/,
  );
  // Touching ranges are not overlapping.
  const mem = new GuestMemory(span, [
    { name: "a", gpa: 0, size: 0x1000 },
    { name: "b", gpa: 0x1000, size: 0x1000 },
  ]);
  assert.equal(mem.size, 0x2000);
});

Deno.test("a span that is a subarray maps guest address 0 to its first byte", () => {
  const backing = new Uint8Array(0x3000);
  const span = backing.subarray(0x1000, 0x3000);
  const mem = new GuestMemory(span, [{ name: "ram", gpa: 0, size: 0x2000 }]);
  mem.writeU32(0, 0x04030201);
  assert.deepEqual(Array.from(backing.subarray(0x1000, 0x1004)), [1, 2, 3, 4]);
  assert.ok(backing.subarray(0, 0x1000).every((b) => b === 0));
  assert.equal(mem.readU32(0), 0x04030201);
});

Deno.test("readCString stops at NUL and at max", () => {
  const { mem } = setup();
  const text = new TextEncoder().encode("console=ttyS0 root=/dev/vda\0junk");
  mem.write(0x9000, text);
  assert.equal(mem.readCString(0x9000, 4096), "console=ttyS0 root=/dev/vda");
  assert.equal(mem.readCString(0x9000, 7), "console");
  assert.equal(mem.readCString(0x9000, 0), "");
  mem.write(0x9100, new Uint8Array([0]));
  assert.equal(mem.readCString(0x9100, 10), "");
  mem.write(0x9200, new TextEncoder().encode("dhyv\u00e9\0"));
  assert.equal(mem.readCString(0x9200, 100), "dhyv\u00e9", "UTF-8 is decoded");
  // A string running into the hole throws rather than reading it.
  mem.fill(LOW_END - 4, 4, 0x41);
  assert.equal(mem.readCString(LOW_END - 4, 4), "AAAA");
  assert.throws(() => mem.readCString(LOW_END - 4, 5), GuestMemoryError);
});

import assert from "node:assert/strict";
import { EM_386, EM_X86_64, isElf, parseElf } from "./elf.ts";
import { buildElf, PT_NOTE } from "./_testing.ts";

const data = (n: number, seed = 1) =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

Deno.test("isElf checks the four magic bytes", () => {
  assert.equal(isElf(new Uint8Array([0x7f, 0x45, 0x4c, 0x46])), true);
  assert.equal(isElf(new Uint8Array([0x7f, 0x45, 0x4c])), false);
  assert.equal(isElf(new Uint8Array([0x7f, 0x45, 0x4c, 0x47, 1])), false);
  assert.equal(isElf(new TextEncoder().encode("MZ\x90\x00")), false);
});

Deno.test("an ELF32 image yields its entry and PT_LOAD segments", () => {
  const img = buildElf({
    class: 32,
    entry: 0x100020,
    segments: [
      { paddr: 0x100000, data: data(0x40), memsz: 0x2000 },
      { type: PT_NOTE, paddr: 0, data: data(8) },
      { paddr: 0x200000, vaddr: 0xc0200000, data: data(0x10, 7) },
      { paddr: 0x300000, memsz: 0 }, // empty: skipped
    ],
  });
  const elf = parseElf(img);
  assert.equal(elf.class, 32);
  assert.equal(elf.machine, EM_386);
  assert.equal(elf.entry, 0x100020);
  assert.equal(elf.segments.length, 2);
  const [a, b] = elf.segments;
  assert.deepEqual(a, {
    offset: 0xc0,
    vaddr: 0x100000,
    paddr: 0x100000,
    filesz: 0x40,
    memsz: 0x2000,
  });
  assert.deepEqual(b, {
    offset: 0x108,
    vaddr: 0xc0200000,
    paddr: 0x200000,
    filesz: 0x10,
    memsz: 0x10,
  });
  assert.deepEqual(img.subarray(a.offset, a.offset + a.filesz), data(0x40));
  assert.deepEqual(img.subarray(b.offset, b.offset + b.filesz), data(0x10, 7));
});

Deno.test("an ELF64 image yields 64-bit addresses", () => {
  const img = buildElf({
    class: 64,
    entry: 0x1000000,
    segments: [{ paddr: 0x1000000, vaddr: 0xffffffff81000000, data: data(0x20), memsz: 0x1000 }],
  });
  const elf = parseElf(img);
  assert.equal(elf.class, 64);
  assert.equal(elf.machine, EM_X86_64);
  assert.equal(elf.entry, 0x1000000);
  assert.deepEqual(elf.segments, [
    { offset: 0x80, vaddr: 0xffffffff81000000, paddr: 0x1000000, filesz: 0x20, memsz: 0x1000 },
  ]);
});

Deno.test("a sub-array image is read from its own offset", () => {
  const img = buildElf({
    class: 32,
    entry: 0x100000,
    segments: [{ paddr: 0x100000, data: data(4) }],
  });
  const outer = new Uint8Array(img.length + 100);
  outer.set(img, 100);
  assert.deepEqual(parseElf(outer.subarray(100)), parseElf(img));
});

Deno.test("malformed images are refused with a clear message", () => {
  const good = () =>
    buildElf({ class: 32, entry: 0x100000, segments: [{ paddr: 0x100000, data: data(16) }] });
  const cases: [string, Uint8Array, RegExp][] = [];
  const notElf = good();
  notElf[1] = 0x46;
  cases.push(["bad magic", notElf, /^kernel: not an ELF file$/]);
  cases.push(["empty", new Uint8Array(0), /not an ELF file/]);
  cases.push(["truncated header", good().subarray(0, 40), /^kernel: truncated ELF header$/]);
  const cls = good();
  cls[4] = 3;
  cases.push(["unknown class", cls, /unknown ELF class 3/]);
  const be = good();
  be[5] = 2;
  cases.push(["big-endian", be, /not little-endian/]);
  cases.push([
    "no program headers",
    buildElf({ class: 32, entry: 0, segments: [], phnum: 0 }),
    /no program headers/,
  ]);
  cases.push([
    "small phentsize",
    buildElf({
      class: 32,
      entry: 0,
      segments: [{ paddr: 0x100000, data: data(4) }],
      phentsize: 16,
    }),
    /program header size 16 too small/,
  ]);
  cases.push([
    "phdrs outside the file",
    buildElf({
      class: 32,
      entry: 0,
      segments: [{ paddr: 0x100000, data: data(4) }],
      phoff: 0x1000,
    }),
    /program headers outside the file/,
  ]);
  cases.push([
    "phnum past the end",
    buildElf({ class: 64, entry: 0, segments: [{ paddr: 0x100000, data: data(4) }], phnum: 4 }),
    /program headers outside the file/,
  ]);
  cases.push([
    "filesz > memsz",
    buildElf({ class: 32, entry: 0, segments: [{ paddr: 0x100000, data: data(32), memsz: 16 }] }),
    /segment 0 has filesz > memsz/,
  ]);
  cases.push([
    "segment past the file",
    buildElf({
      class: 64,
      entry: 0,
      segments: [{ type: PT_NOTE, paddr: 0 }, {
        paddr: 0x100000,
        data: data(8),
        filesz: 0x100,
        memsz: 0x100,
      }],
    }),
    /segment 1 extends past the file/,
  ]);
  cases.push([
    "no PT_LOAD",
    buildElf({ class: 32, entry: 0, segments: [{ type: PT_NOTE, paddr: 0, data: data(8) }] }),
    /no loadable segments/,
  ]);
  cases.push([
    "only empty PT_LOADs",
    buildElf({ class: 64, entry: 0, segments: [{ paddr: 0x100000, memsz: 0 }] }),
    /no loadable segments/,
  ]);
  for (const [what, img, re] of cases) {
    assert.throws(() => parseElf(img, "kernel"), (e: unknown) => {
      assert.ok(e instanceof Error && !(e instanceof RangeError), `${what}: ${e}`);
      assert.match(e.message, re, what);
      assert.match(e.message, /^kernel: /, what);
      return true;
    });
  }
  assert.throws(() => parseElf(notElf), /^Error: ELF image: not an ELF file$/);
});

Deno.test({
  name: "a truncated ELF64 header is refused as truncated",
  fn() {
    const img = buildElf({ class: 64, entry: 0, segments: [{ paddr: 0x100000, data: data(8) }] });
    assert.throws(
      () => parseElf(img.subarray(0, 56), "kernel"),
      /^Error: kernel: truncated ELF header$/,
    );
  },
});

import assert from "node:assert/strict";
import { buildGuest, OUTLOOP_COUNT_OFFSET, sha256Hex } from "./build.ts";
import { PROBE_IMAGE_BASE64, PROBE_IMAGE_SHA256, probeImage } from "../../lib/boot/_probe_image.ts";
import { EM_386, isElf, parseElf } from "../../lib/boot/elf.ts";
import { findMultibootHeader } from "../../lib/boot/multiboot.ts";
import { guestBytes } from "../helpers.ts";

const STALE = "lib/boot/_probe_image.ts is stale: run `deno task guests` and commit the result";

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

Deno.test("probe: the embedded image is the one built from tests/guests/probe", async () => {
  const built = await guestBytes("probe");
  const embedded = probeImage();
  assert.ok(
    sameBytes(built, embedded),
    `${STALE} (built ${built.length} bytes, embedded ${embedded.length} bytes)`,
  );
  assert.equal(await sha256Hex(embedded), PROBE_IMAGE_SHA256, STALE);
  assert.equal(embedded.toBase64(), PROBE_IMAGE_BASE64);
});

Deno.test("probe: the build is deterministic", async () => {
  const a = await guestBytes("probe");
  const b = await buildGuest("probe");
  assert.ok(sameBytes(a, b), "two builds of the probe differ");
});

Deno.test("probe: a stripped ELF32 i386 multiboot v1 kernel", () => {
  const elf = probeImage();
  assert.ok(isElf(elf), "ELF magic");
  const image = parseElf(elf, "probe");
  assert.equal(image.class, 32, "ELFCLASS32");
  assert.equal(image.machine, EM_386, "EM_386");
  assert.equal(image.entry, 0x10000c, "entry just after the multiboot header");
  // The multiboot header: 4-byte aligned in the first 8 KiB with a valid checksum (else
  // not found); flags page-align + memory-info, no a.out kludge.
  const header = findMultibootHeader(elf);
  assert.ok(header, "multiboot header in the first 8 KiB");
  assert.equal(header.flags, 0x3);
  // Every PT_LOAD at or above 1 MiB.
  for (const seg of image.segments) {
    assert.ok(seg.paddr >= 0x100000, `PT_LOAD at 0x${seg.paddr.toString(16)}`);
  }
  // No symbol table (section headers: parseElf reads only the program headers).
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const shoff = v.getUint32(32, true), shentsize = v.getUint16(46, true);
  for (let i = 0; i < v.getUint16(48, true); i++) {
    const type = v.getUint32(shoff + i * shentsize + 4, true);
    assert.notEqual(type, 2, "SHT_SYMTAB present: the probe must be stripped");
  }
});

Deno.test("outloop: flat real-mode binary with the count slot at OUTLOOP_COUNT_OFFSET", async () => {
  const bin = await buildGuest("outloop");
  assert.ok(bin.length > OUTLOOP_COUNT_OFFSET + 4 && bin.length < 256, `size ${bin.length}`);
  // offset 0: short jmp over the slot, to just after it
  assert.equal(bin[0], 0xeb);
  assert.equal(2 + bin[1], OUTLOOP_COUNT_OFFSET + 4);
  const count = new DataView(bin.buffer, bin.byteOffset).getUint32(OUTLOOP_COUNT_OFFSET, true);
  assert.ok(count > 0, "a default count is stored in the slot");
  // the code loads ECX from CS:OUTLOOP_COUNT_OFFSET: mov ecx, [cs:disp16] = 8B 0E disp16
  const load = [0x8b, 0x0e, OUTLOOP_COUNT_OFFSET, 0x00];
  const found = bin.findIndex((_, i) => load.every((b, j) => bin[i + j] === b));
  assert.ok(found > OUTLOOP_COUNT_OFFSET, "mov ecx, cs:[OUTLOOP_COUNT_OFFSET] not found");
  assert.ok(sameBytes(bin, await buildGuest("outloop")), "two builds of outloop differ");
});

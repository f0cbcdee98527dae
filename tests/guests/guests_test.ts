import assert from "node:assert/strict";
import { buildGuest, OUTLOOP_COUNT_OFFSET, sha256Hex } from "./build.ts";
import { PROBE_IMAGE_BASE64, PROBE_IMAGE_SHA256, probeImage } from "../../lib/boot/_probe_image.ts";

const STALE = "lib/boot/_probe_image.ts is stale: run `deno task guests` and commit the result";

let firstProbe: Promise<Uint8Array> | undefined;
function probeBuild(): Promise<Uint8Array> {
  return firstProbe ??= buildGuest("probe");
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

Deno.test("probe: the embedded image is the one built from tests/guests/probe", async () => {
  const built = await probeBuild();
  const embedded = probeImage();
  assert.ok(
    sameBytes(built, embedded),
    `${STALE} (built ${built.length} bytes, embedded ${embedded.length} bytes)`,
  );
  assert.equal(await sha256Hex(embedded), PROBE_IMAGE_SHA256, STALE);
  assert.equal(embedded.toBase64(), PROBE_IMAGE_BASE64);
});

Deno.test("probe: the build is deterministic", async () => {
  const a = await probeBuild();
  const b = await buildGuest("probe");
  assert.ok(sameBytes(a, b), "two builds of the probe differ");
});

Deno.test("probe: a stripped ELF32 i386 multiboot v1 kernel", () => {
  const elf = probeImage();
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  assert.deepEqual([...elf.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], "ELF magic");
  assert.equal(elf[4], 1, "ELFCLASS32");
  assert.equal(v.getUint16(18, true), 3, "EM_386");
  assert.equal(v.getUint32(24, true), 0x10000c, "entry just after the multiboot header");
  // multiboot header: 4-byte aligned in the first 8 KiB; flags page-align + memory-info
  let at = -1;
  for (let i = 0; i + 12 <= Math.min(elf.length, 8192); i += 4) {
    if (v.getUint32(i, true) === 0x1badb002) {
      at = i;
      break;
    }
  }
  assert.ok(at >= 0, "multiboot header in the first 8 KiB");
  const flags = v.getUint32(at + 4, true);
  assert.equal(flags, 0x3);
  assert.equal((0x1badb002 + flags + v.getUint32(at + 8, true)) >>> 0, 0, "header checksum");
  // every PT_LOAD at or above 1 MiB; no symbol table
  const phoff = v.getUint32(28, true), phentsize = v.getUint16(42, true);
  for (let i = 0; i < v.getUint16(44, true); i++) {
    const ph = phoff + i * phentsize;
    if (v.getUint32(ph, true) === 1) assert.ok(v.getUint32(ph + 12, true) >= 0x100000);
  }
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

import assert from "node:assert/strict";
import { computeLayout, MiB } from "../layout.ts";
import {
  findMultibootHeader,
  loadMultiboot,
  MB_HEADER,
  MB_INFO,
  MULTIBOOT_BOOTLOADER_MAGIC,
  MULTIBOOT_HEADER_MAGIC,
} from "./multiboot.ts";
import { buildElf, initialSregs, memory, type SegSpec } from "./_testing.ts";

const e820 = computeLayout(16 * MiB).e820;

/** The a.out kludge address fields of a multiboot header (spec 3.1.3). */
interface AoutAddresses {
  header: number;
  load: number;
  loadEnd: number;
  bssEnd: number;
  entry: number;
}

/** A multiboot header (spec 3.1.2); with `aout`, the a.out kludge address fields (3.1.3). */
function mbHeader(
  flags: number,
  aout?: AoutAddresses,
  checksum = (-(MULTIBOOT_HEADER_MAGIC + flags)) >>> 0,
): Uint8Array {
  const b = new Uint8Array(aout ? 32 : 12);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, MULTIBOOT_HEADER_MAGIC, true);
  dv.setUint32(4, flags >>> 0, true);
  dv.setUint32(8, checksum, true);
  if (aout) {
    [aout.header, aout.load, aout.loadEnd, aout.bssEnd, aout.entry].forEach((v, i) =>
      dv.setUint32(12 + 4 * i, v, true)
    );
  }
  return b;
}

/** An ELF image with its segment data from file offset 0x1000. */
function elfImage(cls: 32 | 64, entry: number, segments: SegSpec[]): Uint8Array {
  return buildElf({ class: cls, entry, segments, dataOffset: 0x1000 });
}

/** A multiboot ELF kernel: the header sits at file offset 0x200 (outside any segment). */
function elfKernel(
  entry: number,
  segs: SegSpec[],
  flags = MB_HEADER.PAGE_ALIGN | MB_HEADER.MEMORY_INFO,
  cls: 32 | 64 = 32,
) {
  const img = elfImage(cls, entry, segs);
  img.set(mbHeader(flags), 0x200);
  return img;
}

/** Where the a.out kludge tests place the multiboot header in the file. */
const KLUDGE_AT = 0x40;

/** An a.out kludge header for a load at 0x200000 (0x800 bytes of file, bss to 0x202000). */
const KLUDGE: AoutAddresses = {
  header: 0x200040,
  load: 0x200000,
  loadEnd: 0x200800,
  bssEnd: 0x202000,
  entry: 0x200100,
};

/** Places an a.out kludge header (flags AOUT_KLUDGE | `flags`) at KLUDGE_AT in `file`. */
function withKludge(file: Uint8Array, aout: AoutAddresses, flags = 0): Uint8Array {
  file.set(mbHeader(MB_HEADER.AOUT_KLUDGE | flags, aout), KLUDGE_AT);
  return file;
}

const pattern = (n: number, seed: number) =>
  Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff | 1);

Deno.test("the header is found 4-byte aligned within 8 KiB; bad checksums are skipped", () => {
  const img = new Uint8Array(0x3000);
  img.set(mbHeader(0x3, undefined, 0x12345678), 0); // bad checksum: ignored
  img.set(mbHeader(0x3), 0x20);
  assert.deepEqual(findMultibootHeader(img), { offset: 0x20, flags: 0x3 });

  const unaligned = new Uint8Array(0x3000);
  unaligned.set(mbHeader(0x3), 0x22);
  assert.equal(findMultibootHeader(unaligned), undefined);

  const last = new Uint8Array(0x3000);
  last.set(mbHeader(0x2), 8192 - 12); // the last slot that fits completely
  assert.equal(findMultibootHeader(last)?.offset, 8180);

  const late = new Uint8Array(0x3000);
  late.set(mbHeader(0x2), 8184); // runs past 8 KiB
  late.set(mbHeader(0x2), 8192);
  assert.equal(findMultibootHeader(late), undefined);

  assert.equal(findMultibootHeader(new Uint8Array(0)), undefined);
  assert.equal(findMultibootHeader(new Uint8Array(8)), undefined);
  assert.equal(findMultibootHeader(mbHeader(0))?.offset, 0, "a 12-byte image is just the header");
});

Deno.test("the a.out kludge fields are read, and a truncated kludge header is refused", () => {
  const img = withKludge(new Uint8Array(0x100), KLUDGE, 3);
  assert.deepEqual(findMultibootHeader(img), {
    offset: 0x40,
    flags: 0x10003,
    addresses: {
      headerAddr: 0x200040,
      loadAddr: 0x200000,
      loadEndAddr: 0x200800,
      bssEndAddr: 0x202000,
      entryAddr: 0x200100,
    },
  });
  const cut = img.slice(0, KLUDGE_AT + 20);
  assert.throws(() => findMultibootHeader(cut), /multiboot header truncated/);
});

Deno.test("an ELF32 kernel is loaded at its physical addresses with bss zeroed", () => {
  const { span, mem } = memory();
  span.fill(0xaa, 0x100000, 0x110000);
  const text = pattern(0x100, 1), data2 = pattern(0x10, 2);
  const kernel = elfKernel(0x100010, [
    { paddr: 0x100000, vaddr: 0xc0100000, data: text, memsz: 0x3000 },
    { type: 4, paddr: 0x180000, data: pattern(8, 3), memsz: 8 }, // PT_NOTE: not loaded
    { paddr: 0x104000, data: data2, memsz: 0x10 },
  ]);
  const { entry, layout: placed } = loadMultiboot(mem, e820, kernel, "", []);
  assert.deepEqual(span.subarray(0x100000, 0x100100), text);
  assert.ok(span.subarray(0x100100, 0x103000).every((b) => b === 0), "bss zeroed");
  assert.ok(
    span.subarray(0x103000, 0x104000).every((b) => b === 0xaa),
    "gap between segments untouched",
  );
  assert.deepEqual(span.subarray(0x104000, 0x104010), data2);
  assert.ok(span.subarray(0x180000, 0x180008).every((b) => b === 0), "PT_NOTE not loaded");
  assert.deepEqual(placed.kernel, { start: 0x100000, end: 0x104010, entry: 0x100010 });
  assert.equal(placed.info, 0x105000, "info follows the kernel, page aligned");
  // Machine state (3.2): EAX magic, EBX info, flat 32-bit protected mode, paging off, IF clear.
  assert.equal(entry.mode, "prot32");
  assert.equal(entry.regs.rax, BigInt(MULTIBOOT_BOOTLOADER_MAGIC));
  assert.equal(entry.regs.rax, 0x2badb002n);
  assert.equal(entry.regs.rbx, 0x105000n);
  assert.equal(entry.regs.rip, 0x100010n);
  assert.equal(entry.regs.rflags & ((1n << 9n) | (1n << 17n)), 0n, "IF and VM clear");
  const s = entry.sregs(initialSregs());
  assert.equal(s.cr0 & 1n, 1n);
  assert.equal(s.cr0 & (1n << 31n), 0n);
  for (const seg of [s.cs, s.ds, s.es, s.fs, s.gs, s.ss]) {
    assert.deepEqual([seg.base, seg.limit, seg.db, seg.g], [0n, 0xffffffff, 1, 1]);
  }
  assert.equal(s.cs.type & 0xa, 0xa, "CS is execute/read");
  assert.equal(s.ds.type & 0xa, 0x2, "DS is read/write data");
});

Deno.test("the info structure follows Multiboot 0.6.96, 3.3", () => {
  const { mem } = memory();
  const kernel = elfKernel(0x100000, [{ paddr: 0x100000, data: pattern(0x40, 9), memsz: 0x2800 }]);
  const modA = pattern(5000, 4), modB = pattern(10, 5);
  const { layout: placed } = loadMultiboot(mem, e820, kernel, "console=ttyS0 quiet", [
    { name: "initrd", bytes: modA, cmdline: "initrd.img arg=1" },
    { name: "tiny", bytes: modB, cmdline: "" },
  ]);
  // Modules: page aligned, one after the other above the kernel (which ends at 0x102800).
  assert.deepEqual(placed.modules, [
    { name: "initrd", start: 0x103000, end: 0x103000 + 5000 },
    { name: "tiny", start: 0x105000, end: 0x10500a },
  ]);
  assert.deepEqual(mem.read(0x103000, 5000), modA);
  assert.deepEqual(mem.read(0x105000, 10), modB);
  const info = placed.info;
  assert.equal(info, 0x106000);

  const u32 = (o: number) => mem.readU32(info + o);
  const flags = u32(0);
  assert.equal(
    flags,
    MB_INFO.MEMORY | MB_INFO.CMDLINE | MB_INFO.MODS | MB_INFO.MEM_MAP | MB_INFO.LOADER_NAME,
  );
  assert.equal(flags, (1 << 0) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 9));
  assert.equal(u32(4), 640, "mem_lower in KiB");
  assert.equal(u32(8), 15 * 1024, "mem_upper: KiB from 1 MiB to the first hole");
  assert.equal(u32(12), 0, "no boot_device (flag 1 clear)");
  assert.equal(mem.readCString(u32(16), 4096), "console=ttyS0 quiet");
  assert.equal(u32(20), 2, "mods_count");
  const mods = u32(24);
  const modEntry = (i: number) => [0, 4, 8, 12].map((o) => mem.readU32(mods + 16 * i + o));
  const [a, b] = [modEntry(0), modEntry(1)];
  assert.deepEqual([a[0], a[1], a[3]], [0x103000, 0x103000 + 5000, 0]);
  assert.deepEqual([b[0], b[1], b[3]], [0x105000, 0x10500a, 0]);
  assert.equal(mem.readCString(a[2], 4096), "initrd.img arg=1");
  assert.equal(mem.readCString(b[2], 4096), "");
  for (let o = 28; o < 44; o += 4) assert.equal(u32(o), 0, `syms field at ${o}`);
  // Memory map: size (20, not counting itself), base_addr, length, type; one per e820 entry.
  const mmapLength = u32(44), mmapAddr = u32(48);
  assert.equal(mmapLength, e820.length * 24);
  const entries = [];
  for (let p = mmapAddr; p < mmapAddr + mmapLength;) {
    const size = mem.readU32(p);
    assert.equal(size, 20);
    entries.push({
      addr: Number(mem.readU64(p + 4)),
      size: Number(mem.readU64(p + 12)),
      type: mem.readU32(p + 20),
    });
    p += size + 4;
  }
  assert.deepEqual(entries, e820);
  assert.equal(mem.readCString(u32(64), 64), "dhyve", "boot_loader_name");
  for (const o of [52, 56, 60, 68, 72, 76, 80, 84]) assert.equal(u32(o), 0, `unset field at ${o}`);
  // Everything the loader wrote lies in RAM above the modules.
  for (const p of [mmapAddr, mods, u32(16), u32(64), a[2], b[2]]) {
    assert.ok(p >= info && p < info + 0x1000);
  }
});

Deno.test("an a.out kludge kernel loads from the header's addresses", () => {
  const { span, mem } = memory();
  span.fill(0xaa, 0x200000, 0x204000);
  const file = withKludge(pattern(0x1000, 6), KLUDGE, MB_HEADER.PAGE_ALIGN | MB_HEADER.MEMORY_INFO);
  const { entry, layout: placed } = loadMultiboot(mem, e820, file, "", [], "raw.bin");
  assert.deepEqual(span.subarray(0x200000, 0x200800), file.subarray(0, 0x800));
  assert.ok(
    span.subarray(0x200800, 0x202000).every((b) => b === 0),
    "bss zeroed, rest of file not loaded",
  );
  assert.deepEqual(placed.kernel, { start: 0x200000, end: 0x202000, entry: 0x200100 });
  assert.equal(placed.info, 0x202000);
  assert.equal(entry.regs.rip, 0x200100n);

  // load_end_addr = 0: the whole file from load_addr; bss_end_addr = 0: no bss.
  const whole = withKludge(pattern(0x1800, 7), {
    header: 0x300040,
    load: 0x300000,
    loadEnd: 0,
    bssEnd: 0,
    entry: 0x300000,
  });
  const r = loadMultiboot(mem, e820, whole, "", []);
  assert.deepEqual(span.subarray(0x300000, 0x301800), whole);
  assert.deepEqual(r.layout.kernel, { start: 0x300000, end: 0x301800, entry: 0x300000 });

  // The header found at file offset 0x40 with header_addr - load_addr = 0x20 means the
  // load starts at file offset 0x20.
  const shifted = withKludge(pattern(0x200, 8), {
    header: 0x400020,
    load: 0x400000,
    loadEnd: 0x400100,
    bssEnd: 0,
    entry: 0x400000,
  });
  loadMultiboot(mem, e820, shifted, "", []);
  assert.deepEqual(span.subarray(0x400000, 0x400100), shifted.subarray(0x20, 0x120));
});

Deno.test("bad a.out kludge addresses are refused", () => {
  const { mem } = memory();
  const rows: [AoutAddresses, RegExp, string][] = [
    [
      { header: 0x200040, load: 0x200100, loadEnd: 0, bssEnd: 0, entry: 0x200100 },
      /kernel: bad a.out kludge addresses/,
      "header_addr below load_addr",
    ],
    [
      { header: 0x200100, load: 0x200000, loadEnd: 0, bssEnd: 0, entry: 0x200000 },
      /bad a.out kludge addresses/,
      "load_addr would lie before the start of the file",
    ],
    [
      { header: 0x200040, load: 0x200000, loadEnd: 0x201000, bssEnd: 0, entry: 0x200000 },
      /a.out kludge load range .* past the end of the file/,
      "load_end_addr past the end of the file",
    ],
    [
      { header: 0x9f040, load: 0x9f000, loadEnd: 0, bssEnd: 0xa1000, entry: 0x9f000 },
      /kernel: image at \[0x9f000, 0xa1000\) \(8192 bytes\) does not fit in guest RAM .*VGA/,
      "bss running into the VGA hole",
    ],
    [
      { header: 0x200040, load: 0x200000, loadEnd: 0, bssEnd: 0, entry: 0x300000 },
      /entry point 0x300000 is outside the loaded image/,
      "entry_addr past the loaded image",
    ],
  ];
  for (const [aout, re, message] of rows) {
    const file = withKludge(new Uint8Array(0x400), aout);
    assert.throws(() => loadMultiboot(mem, e820, file, "", []), re, message);
  }
});

Deno.test("unsupported header flags are refused; the video flag is tolerated", () => {
  const { mem } = memory();
  const seg = [{ paddr: 0x100000, data: pattern(16, 1), memsz: 16 }];
  for (const bad of [1 << 3, 1 << 4, 1 << 15]) {
    assert.throws(
      () => loadMultiboot(mem, e820, elfKernel(0x100000, seg, bad | 3), "", [], "k.elf"),
      new RegExp(`k\\.elf: unsupported multiboot header flags 0x${bad.toString(16)} `),
    );
  }
  loadMultiboot(mem, e820, elfKernel(0x100000, seg, MB_HEADER.VIDEO_MODE | 3), "", []);
  loadMultiboot(mem, e820, elfKernel(0x100000, seg, (1 << 17) | 3), "", []); // optional bits
});

Deno.test("kernels without a header or with an unloadable image are refused clearly", () => {
  const { mem } = memory();
  const seg = (paddr: number, memsz = 0x1000) => [{ paddr, data: pattern(16, 1), memsz }];
  assert.throws(
    () => loadMultiboot(mem, e820, elfImage(32, 0x100000, seg(0x100000)), "", [], "vmlinux"),
    /^MultibootError: vmlinux has no multiboot header in the first 8 KiB$/,
  );
  const raw = new Uint8Array(0x100);
  raw.set(mbHeader(3), 0);
  assert.throws(() => loadMultiboot(mem, e820, raw, "", []), /neither ELF nor a.out kludge/);
  // A segment in the VGA hole, in the reserved BIOS area, or past the end of RAM.
  for (const [paddr, memsz] of [[0xa0000, 0x1000], [0xf0000, 0x100], [0xff0000, 0x20000]]) {
    assert.throws(
      () => loadMultiboot(mem, e820, elfKernel(paddr, seg(paddr, memsz)), "", []),
      new RegExp(
        `kernel: segment at \\[0x${paddr.toString(16)}, 0x${
          (paddr + memsz).toString(16)
        }\\) \\(${memsz} bytes\\) does not fit in guest RAM`,
      ),
    );
  }
  assert.throws(
    () => loadMultiboot(mem, e820, elfKernel(0x200000, seg(0x100000)), "", []),
    /kernel: entry point 0x200000 is outside the loaded image/,
  );
  assert.throws(
    () => loadMultiboot(mem, e820, elfKernel(0x101000, seg(0x100000)), "", []),
    /entry point 0x101000 is outside/,
    "the first byte past the image",
  );
  assert.throws(
    () => loadMultiboot(mem, e820, elfKernel(0x100000, seg(0x100000), 3, 64), "", []),
    /kernel: multiboot ELF kernels must be ELF32 little-endian i386 \(this one is ELF64/,
  );
  assert.throws(
    () =>
      loadMultiboot(mem, e820, elfKernel(0x100000, seg(0x100000)), "", [
        { name: "huge", bytes: new Uint8Array(15 * MiB), cmdline: "" },
      ]),
    /module huge at \[0x101000, 0x[0-9a-f]+\) \(\d+ bytes\) does not fit in guest RAM/,
  );
});

Deno.test("a higher-half ELF kernel is entered at the physical address of its entry point", () => {
  // One segment linked at 0xC0100000 (virtual), loaded at 0x100000 (physical);
  // e_entry 0xC0100020 becomes 0x100020: paging is off at entry (spec 3.2).
  const img = elfKernel(0xc0100020, [{
    paddr: 0x100000,
    vaddr: 0xc0100000,
    data: pattern(0x40, 5),
    memsz: 0x40,
  }]);
  const { mem } = memory();
  const { entry, layout: placed } = loadMultiboot(mem, e820, img, "", []);
  assert.equal(entry.regs.rip, 0x100020n);
  assert.equal(placed.kernel.entry, 0x100020);
});

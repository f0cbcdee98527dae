import assert from "node:assert/strict";
import { GuestMemory } from "../guest_memory.ts";
import { computeLayout, MiB, ZERO_PAGE } from "../layout.ts";
import { CR0, EFER } from "../../cpu/regs.ts";
import {
  bzImagePayload,
  checkCmdline,
  findRsdp,
  HDRS_MAGIC,
  isBzImage,
  LINUX_CMDLINE_ADDR,
  LINUX_LOADER_TYPE,
  LinuxBootError,
  LOADFLAGS,
  parseBzImage,
  payloadCompression,
  placeInitrd,
  planBzImage,
  protocolVersion,
  SETUP_HEADER,
  SETUP_HEADER_OFFSET,
  XLF,
} from "./linux.ts";
import { detectLinuxFormat, loadLinux, loadLinuxFrom, planLinux } from "./payload.ts";
import { fileSource } from "../file_read.ts";
import { BOOT_PARAMS } from "./zero_page.ts";
import { initialSregs } from "./_testing.ts";
import { LINUX_CACHE_DIR, linuxCache } from "../../tools/fetch_linux.ts";

/** Options of the synthetic bzImage. */
interface BzSpec {
  version?: number;
  setupSects?: number;
  xloadflags?: number;
  loadflags?: number;
  relocatable?: boolean;
  kernelAlignment?: number;
  prefAddress?: number;
  initSize?: number;
  cmdlineSize?: number;
  initrdAddrMax?: number;
  kernel?: Uint8Array;
  /** The compressed payload placed at the start of the protected-mode code. */
  payload?: Uint8Array;
}

/**
 * A bzImage built by hand: boot sector + setup sectors with the setup header
 * (boot.rst field table), then the protected-mode code (`kernel`, or the
 * payload followed by filler).
 */
function bzImage(spec: BzSpec = {}): Uint8Array {
  const setupSects = spec.setupSects ?? 4;
  const kernel = spec.kernel ?? (() => {
    const k = new Uint8Array(0x3000);
    for (let i = 0; i < k.length; i++) k[i] = (i * 7 + 1) & 0xff;
    if (spec.payload) k.set(spec.payload, 0x100);
    return k;
  })();
  const off = (setupSects + 1) * 512;
  const b = new Uint8Array(off + kernel.length);
  const dv = new DataView(b.buffer);
  b[SETUP_HEADER.setupSects] = setupSects;
  dv.setUint16(SETUP_HEADER.bootFlag, 0xaa55, true);
  b[0x200] = 0xeb; // jmp short
  b[0x201] = 0x6a; // the header ends at 0x26c (protocol 2.15)
  dv.setUint32(SETUP_HEADER.header, HDRS_MAGIC, true);
  dv.setUint16(SETUP_HEADER.version, spec.version ?? 0x020f, true);
  // The version string, pointed to by kernel_version (+ 0x200), inside the setup.
  const vs = new TextEncoder().encode("6.9.9-test (dhyve@test) #1\0");
  b.set(vs, 0x400);
  dv.setUint16(SETUP_HEADER.kernelVersion, 0x400 - 0x200, true);
  b[SETUP_HEADER.typeOfLoader] = 0;
  b[SETUP_HEADER.loadflags] = spec.loadflags ?? LOADFLAGS.LOADED_HIGH;
  dv.setUint32(SETUP_HEADER.code32Start, 0x100000, true);
  dv.setUint32(SETUP_HEADER.initrdAddrMax, spec.initrdAddrMax ?? 0x7fffffff, true);
  dv.setUint32(SETUP_HEADER.kernelAlignment, spec.kernelAlignment ?? 0x200000, true);
  b[SETUP_HEADER.relocatableKernel] = spec.relocatable === false ? 0 : 1;
  b[SETUP_HEADER.minAlignment] = 21;
  dv.setUint16(SETUP_HEADER.xloadflags, spec.xloadflags ?? XLF.KERNEL_64, true);
  dv.setUint32(SETUP_HEADER.cmdlineSize, spec.cmdlineSize ?? 2047, true);
  if (spec.payload) {
    dv.setUint32(SETUP_HEADER.payloadOffset, 0x100, true);
    dv.setUint32(SETUP_HEADER.payloadLength, spec.payload.length, true);
  }
  dv.setBigUint64(SETUP_HEADER.prefAddress, BigInt(spec.prefAddress ?? 0x1000000), true);
  dv.setUint32(SETUP_HEADER.initSize, spec.initSize ?? 0x800000, true);
  b.set(kernel, off);
  return b;
}

function guest(size: number): { span: Uint8Array; mem: GuestMemory } {
  const span = new Uint8Array(size);
  return { span, mem: new GuestMemory(span, computeLayout(size).ram) };
}

const e820 = (size: number) => computeLayout(size).e820;

Deno.test("bzImage: the setup header's fields, the version string and the header bytes", () => {
  const img = bzImage({ setupSects: 6, prefAddress: 0x2000000, initSize: 0x1234000 });
  assert.equal(isBzImage(img), true);
  const bz = parseBzImage(img);
  assert.equal(bz.version, 0x020f);
  assert.equal(protocolVersion(bz.version), "2.15");
  assert.equal(bz.setupSects, 6);
  assert.equal(bz.kernelOffset, 7 * 512);
  assert.equal(bz.kernelSize, 0x3000);
  assert.equal(bz.prefAddress, 0x2000000);
  assert.equal(bz.initSize, 0x1234000);
  assert.equal(bz.relocatable, true);
  assert.equal(bz.cmdlineSize, 2047);
  assert.equal(bz.xloadflags & XLF.KERNEL_64, XLF.KERNEL_64);
  assert.equal(bz.versionString, "6.9.9-test (dhyve@test) #1");
  // 0x1f1 up to 0x202 + the jump's byte.
  assert.equal(bz.header.length, 0x26c - 0x1f1);
  // setup_sects = 0 means 4 (boot.rst).
  const zero = bzImage({ setupSects: 4 });
  zero[SETUP_HEADER.setupSects] = 0;
  assert.equal(parseBzImage(zero).setupSects, 4);
});

Deno.test("bzImage: refused when not a bzImage, too old, a zImage or cut short", () => {
  assert.throws(() => parseBzImage(new Uint8Array(4096), "k"), /k: not a bzImage/);
  assert.throws(
    () => parseBzImage(bzImage({ version: 0x0205 }), "old"),
    /old: boot protocol 2\.05 is too old \(dhyve needs 2\.06 or later\)/,
  );
  assert.doesNotThrow(() => parseBzImage(bzImage({ version: 0x0206 })));
  assert.throws(() => parseBzImage(bzImage({ loadflags: 0 })), /zImage/);
  const img = bzImage({ setupSects: 4 });
  assert.throws(() => parseBzImage(img.subarray(0, 5 * 512), "cut"), /longer than the file/);
});

Deno.test("bzImage plan: at pref_address with init_size; the initrd at the top of lowmem below initrd_addr_max", () => {
  const bz = parseBzImage(bzImage({ prefAddress: 0x1000000, initSize: 0x800000 }));
  const plan = planBzImage(bz, e820(256 * MiB), 0x123456, "console=ttyS0");
  assert.deepEqual(plan.kernel, { start: 0x1000000, end: 0x1800000 });
  assert.equal(plan.entry, 0x1000200);
  assert.equal(plan.entry64, true);
  // As high as it goes, page aligned, ending at or below 256 MiB.
  assert.equal(plan.initrd!.end, plan.initrd!.start + 0x123456);
  assert.equal(plan.initrd!.start % 0x1000, 0);
  assert.ok(plan.initrd!.end <= 256 * MiB && plan.initrd!.end > 256 * MiB - 0x1000);
  assert.equal(plan.cmdlineBytes, 13);
  // initrd_addr_max is the highest address the initrd may occupy.
  const low = parseBzImage(bzImage({ initrdAddrMax: 0x4ffffff }));
  const p2 = planBzImage(low, e820(256 * MiB), 0x10000, "");
  assert.equal(p2.initrd!.end <= 0x5000000, true);
  assert.equal(p2.initrd!.start, 0x5000000 - 0x10000);
});

Deno.test("bzImage plan: a relocatable kernel moves to an aligned address when pref_address has no room", () => {
  // 16 MiB of RAM: pref 16 MiB is past the end; 1 MiB rounded up to 2 MiB is where it goes.
  const bz = parseBzImage(bzImage({ prefAddress: 0x1000000, initSize: 0x400000 }));
  const plan = planBzImage(bz, e820(16 * MiB), undefined, "");
  assert.deepEqual(plan.kernel, { start: 0x200000, end: 0x600000 });
  assert.equal(plan.initrd, undefined);
  // Not relocatable: refused, naming the key.
  const fixed = parseBzImage(bzImage({ relocatable: false, initSize: 0x400000 }));
  assert.throws(
    () => planBzImage(fixed, e820(16 * MiB), undefined, "", { kernel: "vmlinuz" }),
    (e: unknown) =>
      e instanceof LinuxBootError && e.key === "kernel" &&
      /vmlinuz needs 4194304 bytes \(init_size\) at 0x1000000 \(it is not relocatable\)/.test(
        e.message,
      ),
  );
  // Too big for RAM at any alignment.
  const huge = parseBzImage(bzImage({ initSize: 0x2000000 }));
  assert.throws(
    () => planBzImage(huge, e820(16 * MiB), undefined, ""),
    (e: unknown) =>
      e instanceof LinuxBootError && e.key === "kernel" && /lowmem end 0x1000000/.test(e.message),
  );
});

Deno.test("bzImage plan: an initrd that does not fit above the kernel, and a command line over cmdline_size", () => {
  const bz = parseBzImage(bzImage({ initSize: 0x800000, cmdlineSize: 255 }));
  assert.throws(
    () => planBzImage(bz, e820(32 * MiB), 0x900000, "", { initrd: "big.img" }),
    (e: unknown) =>
      e instanceof LinuxBootError && e.key === "initrd" &&
      /big\.img \(9437184 bytes\) does not fit in RAM between the kernel's end 0x1800000 and 0x2000000/
        .test(e.message),
  );
  assert.doesNotThrow(() => planBzImage(bz, e820(32 * MiB), 0x800000, "x".repeat(255)));
  assert.throws(
    () => planBzImage(bz, e820(32 * MiB), undefined, "x".repeat(256), { kernel: "vmlinuz" }),
    (e: unknown) =>
      e instanceof LinuxBootError && e.key === "cmdline" &&
      /256 bytes; vmlinuz \(its cmdline_size\) takes at most 255/.test(e.message),
  );
  assert.throws(() => checkCmdline("a\0b", 100, "x"), /NUL/);
});

Deno.test("placeInitrd: highest page-aligned spot in one RAM entry, above the floor", () => {
  const map = e820(64 * MiB);
  assert.deepEqual(placeInitrd(map, 0x1800, 0x100000, 2 ** 32), {
    start: 64 * MiB - 0x2000,
    end: 64 * MiB - 0x800,
  });
  // Never in the legacy hole or the reserved firmware area.
  assert.throws(() => placeInitrd(map, 0x10000, 64 * MiB, 2 ** 32), LinuxBootError);
});

Deno.test("bzImage load: kernel bytes, zero page (header, loader type, cmdline, ramdisk, e820, RSDP) and the 64-bit entry", () => {
  const { mem, span } = guest(64 * MiB);
  // An RSDP where the firmware puts it, for findRsdp.
  const rsdp = new Uint8Array(36);
  rsdp.set(new TextEncoder().encode("RSD PTR "), 0);
  rsdp[15] = 2;
  rsdp[8] = (0x100 - rsdp.reduce((s, x) => s + x, 0) % 0x100) & 0xff;
  span.set(rsdp, 0xf0000);
  assert.equal(findRsdp(mem), 0xf0000);

  const img = bzImage({ initSize: 0x800000 });
  const initrd = new Uint8Array(0x2345).fill(0xab);
  const { entry, plan } = loadLinux(mem, e820(64 * MiB), img, initrd, "console=ttyS0 quiet");
  assert.equal(plan.format, "bzimage");
  if (plan.format !== "bzimage") return;
  const bz = plan.bz;
  // The protected-mode code at the load address.
  assert.deepEqual(mem.read(0x1000000, bz.kernelSize), img.subarray(bz.kernelOffset));
  // The initrd, highest in RAM.
  assert.deepEqual(mem.read(plan.initrd!.start, initrd.length), initrd);
  const zp = ZERO_PAGE;
  const dv = new DataView(span.buffer);
  // The setup header copied from the image, then the loader's fields.
  assert.equal(dv.getUint32(zp + SETUP_HEADER.header, true), HDRS_MAGIC);
  assert.equal(dv.getUint16(zp + SETUP_HEADER.version, true), 0x020f);
  assert.equal(span[zp + SETUP_HEADER.typeOfLoader], LINUX_LOADER_TYPE);
  assert.equal(span[zp + SETUP_HEADER.typeOfLoader], 0xff);
  assert.equal(span[zp + SETUP_HEADER.loadflags] & LOADFLAGS.LOADED_HIGH, LOADFLAGS.LOADED_HIGH);
  assert.equal(dv.getUint32(zp + SETUP_HEADER.cmdLinePtr, true), LINUX_CMDLINE_ADDR);
  assert.equal(mem.readCString(LINUX_CMDLINE_ADDR, 100), "console=ttyS0 quiet");
  assert.equal(dv.getUint32(zp + SETUP_HEADER.ramdiskImage, true), plan.initrd!.start);
  assert.equal(dv.getUint32(zp + SETUP_HEADER.ramdiskSize, true), initrd.length);
  assert.equal(dv.getUint32(zp + SETUP_HEADER.code32Start, true), 0x1000000);
  assert.equal(dv.getBigUint64(zp + BOOT_PARAMS.acpiRsdpAddr, true), 0xf0000n);
  assert.equal(span[zp + BOOT_PARAMS.sentinel], 0);
  const map = e820(64 * MiB);
  assert.equal(span[zp + BOOT_PARAMS.e820Entries], map.length);
  map.forEach((e, i) => {
    const p = zp + BOOT_PARAMS.e820Table + i * BOOT_PARAMS.e820EntrySize;
    assert.equal(Number(dv.getBigUint64(p, true)), e.addr);
    assert.equal(Number(dv.getBigUint64(p + 8, true)), e.size);
    assert.equal(dv.getUint32(p + 16, true), e.type);
  });
  // startup_64: load address + 0x200, RSI = the zero page, long mode.
  assert.equal(entry.mode, "long64");
  assert.equal(entry.regs.rip, 0x1000200n);
  assert.equal(entry.regs.rsi, BigInt(zp));
  assert.equal(entry.regs.rbx, 0n);
  const s = entry.sregs(initialSregs());
  assert.equal(s.efer & EFER.LMA, EFER.LMA);
  assert.equal(s.cr0 & CR0.PG, CR0.PG);
});

Deno.test("bzImage load: without XLF_KERNEL_64 the 32-bit entry at the load address; no RSDP before 2.14", () => {
  const { mem, span } = guest(64 * MiB);
  const img = bzImage({ xloadflags: 0, version: 0x020d });
  const { entry } = loadLinux(mem, e820(64 * MiB), img, undefined, "", { rsdp: 0xf0000 });
  assert.equal(entry.mode, "prot32");
  assert.equal(entry.regs.rip, 0x1000000n);
  assert.equal(entry.regs.rsi, BigInt(ZERO_PAGE));
  // boot.rst 32-bit protocol: EBP, EDI and EBX zero.
  assert.equal(entry.regs.rbp | entry.regs.rdi | entry.regs.rbx, 0n);
  const s = entry.sregs(initialSregs());
  assert.equal(s.cs.selector, 0x10);
  assert.equal(s.ds.selector, 0x18);
  assert.equal(s.cr0 & CR0.PG, 0n);
  const dv = new DataView(span.buffer);
  assert.equal(dv.getBigUint64(ZERO_PAGE + BOOT_PARAMS.acpiRsdpAddr, true), 0n);
  assert.equal(dv.getUint32(ZERO_PAGE + SETUP_HEADER.ramdiskImage, true), 0);
});

Deno.test("payload: compression by magic, the size trailer, and an unknown payload", () => {
  assert.equal(payloadCompression(Uint8Array.of(0x1f, 0x8b, 8)), "gzip");
  assert.equal(payloadCompression(Uint8Array.of(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0)), "xz");
  assert.equal(payloadCompression(Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd)), "zstd");
  assert.equal(payloadCompression(Uint8Array.of(0x02, 0x21, 0x4c, 0x18)), "lz4");
  assert.equal(payloadCompression(Uint8Array.of(0x5d, 0, 0)), "lzma");
  assert.equal(payloadCompression(Uint8Array.of(1, 2, 3, 4)), undefined);
  // xz + the 4-byte uncompressed size the kernel build appends.
  const xz = Uint8Array.of(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 9, 9, 0x78, 0x56, 0x34, 0x12);
  const p = bzImagePayload(bzImage({ payload: xz }));
  assert.equal(p.compression, "xz");
  assert.equal(p.uncompressedSize, 0x12345678);
  assert.deepEqual(p.stream, xz.subarray(0, 8));
  // gzip keeps its own trailer (ISIZE).
  const gz = Uint8Array.of(0x1f, 0x8b, 8, 0, 1, 2, 3, 4);
  assert.equal(bzImagePayload(bzImage({ payload: gz })).stream.length, gz.length);
  assert.throws(
    () => bzImagePayload(bzImage({ payload: Uint8Array.of(9, 9, 9, 9, 9) }), "k"),
    /k: unknown payload compression \(magic 09 09 09 09\)/,
  );
  assert.throws(() => bzImagePayload(bzImage(), "k"), /payload_offset/);
});

Deno.test("format detection: bzImage, ELF, and a clear error for anything else", () => {
  assert.equal(detectLinuxFormat(bzImage()), "bzimage");
  assert.equal(detectLinuxFormat(Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, 2, 1)), "pvh");
  assert.throws(
    () => detectLinuxFormat(new TextEncoder().encode("#!/bin/sh\n"), "k.sh"),
    (e: unknown) =>
      e instanceof LinuxBootError && e.key === "kernel" &&
      /k\.sh: unknown kernel format \(first bytes 23 21 2f 62\)/.test(e.message),
  );
  assert.throws(() => detectLinuxFormat(new Uint8Array(0)), /the file is empty/);
});

const cache = linuxCache();

Deno.test({
  name:
    "real kernel: Debian's cloud bzImage plans in 256 MiB, not in 32 MiB, and its payload is the cached vmlinux",
  ignore: !cache.ready,
  fn: async () => {
    const img = await Deno.readFile(cache.vmlinuz);
    const bz = parseBzImage(img, cache.vmlinuz);
    assert.ok(bz.version >= 0x020f, `protocol ${protocolVersion(bz.version)}`);
    assert.equal(bz.xloadflags & XLF.KERNEL_64, XLF.KERNEL_64);
    assert.equal(bz.relocatable, true);
    assert.ok(bz.versionString.startsWith(cache.kernelVersion!), bz.versionString);
    const initrdSize = (await Deno.stat(cache.initramfs)).size;
    const plan = planLinux(img, initrdSize, "console=ttyS0", e820(256 * MiB));
    assert.equal(plan.format, "bzimage");
    if (plan.format !== "bzimage") return;
    assert.equal(plan.kernel.start, bz.prefAddress);
    assert.ok(plan.initrd!.start >= plan.kernel.end);
    const payload = bzImagePayload(img);
    const vmlinux = await Deno.readFile(cache.vmlinux);
    assert.equal(payload.uncompressedSize, vmlinux.length);
    // Too little RAM for init_size: refused before any VM exists.
    assert.throws(
      () => planLinux(img, initrdSize, "", e820(32 * MiB)),
      (e: unknown) => e instanceof LinuxBootError && e.key === "kernel",
    );
  },
});

Deno.test({
  name: "real kernel: the cache directory is .cache/linux in the repository",
  fn: () => {
    assert.ok(LINUX_CACHE_DIR.endsWith("/.cache/linux"));
    assert.equal(cache.vmlinux, `${LINUX_CACHE_DIR}/vmlinux`);
  },
});

Deno.test("ABI: the setup header and boot_params offsets match the system's <asm/bootparam.h> (gcc offsetof)", async () => {
  const hdr: [string, number][] = [
    ["setup_sects", SETUP_HEADER.setupSects],
    ["syssize", SETUP_HEADER.syssize],
    ["boot_flag", SETUP_HEADER.bootFlag],
    ["jump", SETUP_HEADER.jump],
    ["header", SETUP_HEADER.header],
    ["version", SETUP_HEADER.version],
    ["kernel_version", SETUP_HEADER.kernelVersion],
    ["type_of_loader", SETUP_HEADER.typeOfLoader],
    ["loadflags", SETUP_HEADER.loadflags],
    ["code32_start", SETUP_HEADER.code32Start],
    ["ramdisk_image", SETUP_HEADER.ramdiskImage],
    ["ramdisk_size", SETUP_HEADER.ramdiskSize],
    ["heap_end_ptr", SETUP_HEADER.heapEndPtr],
    ["ext_loader_ver", SETUP_HEADER.extLoaderVer],
    ["ext_loader_type", SETUP_HEADER.extLoaderType],
    ["cmd_line_ptr", SETUP_HEADER.cmdLinePtr],
    ["initrd_addr_max", SETUP_HEADER.initrdAddrMax],
    ["kernel_alignment", SETUP_HEADER.kernelAlignment],
    ["relocatable_kernel", SETUP_HEADER.relocatableKernel],
    ["min_alignment", SETUP_HEADER.minAlignment],
    ["xloadflags", SETUP_HEADER.xloadflags],
    ["cmdline_size", SETUP_HEADER.cmdlineSize],
    ["hardware_subarch", SETUP_HEADER.hardwareSubarch],
    ["payload_offset", SETUP_HEADER.payloadOffset],
    ["payload_length", SETUP_HEADER.payloadLength],
    ["setup_data", SETUP_HEADER.setupData],
    ["pref_address", SETUP_HEADER.prefAddress],
    ["init_size", SETUP_HEADER.initSize],
    ["handover_offset", SETUP_HEADER.handoverOffset],
    ["kernel_info_offset", SETUP_HEADER.kernelInfoOffset],
  ];
  const bp: [string, number][] = [
    ["acpi_rsdp_addr", BOOT_PARAMS.acpiRsdpAddr],
    ["ext_ramdisk_image", BOOT_PARAMS.extRamdiskImage],
    ["ext_ramdisk_size", BOOT_PARAMS.extRamdiskSize],
    ["ext_cmd_line_ptr", BOOT_PARAMS.extCmdLinePtr],
    ["e820_entries", BOOT_PARAMS.e820Entries],
    ["sentinel", BOOT_PARAMS.sentinel],
    ["hdr", SETUP_HEADER_OFFSET],
    ["e820_table", BOOT_PARAMS.e820Table],
  ];
  const lines = [
    ...hdr.map(([f]) => `offsetof(struct boot_params, hdr.${f})`),
    ...bp.map(([f]) => `offsetof(struct boot_params, ${f})`),
    "sizeof(struct boot_params)",
    "sizeof(struct boot_e820_entry)",
  ];
  const src =
    `#include <stdio.h>\n#include <stddef.h>\n#include <asm/bootparam.h>\nint main(void) {\n${
      lines.map((l) => `  printf("%zu\\n", (size_t)${l});`).join("\n")
    }\n  return 0;\n}\n`;
  const dir = await Deno.makeTempDir({ prefix: "dhyve-bootparam-" });
  try {
    await Deno.writeTextFile(`${dir}/t.c`, src);
    const cc = await new Deno.Command("gcc", {
      args: ["-o", `${dir}/t`, `${dir}/t.c`],
      stderr: "piped",
    }).output();
    assert.equal(cc.code, 0, `gcc failed:\n${new TextDecoder().decode(cc.stderr)}`);
    const out = await new Deno.Command(`${dir}/t`, { stdout: "piped" }).output();
    const got = new TextDecoder().decode(out.stdout).trim().split("\n").map(Number);
    const want = [
      ...hdr.map(([, o]) => o),
      ...bp.map(([, o]) => o),
      BOOT_PARAMS.size,
      BOOT_PARAMS.e820EntrySize,
    ];
    lines.forEach((l, i) => assert.equal(want[i], got[i], l));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bzImage from a file: its size is checked before its kernel is read, then read straight into guest RAM", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dhyve_bz_" });
  try {
    const img = bzImage();
    const path = `${dir}/bzImage`;
    await Deno.writeFile(path, img);
    const size = 64 * MiB;
    const { mem, span } = guest(size);
    const { plan } = loadLinuxFrom(mem, e820(size), fileSource(path), undefined, "", { rsdp: 0 });
    assert.equal(plan.format, "bzimage");
    if (plan.format !== "bzimage") return;
    const k = plan.bz.kernelOffset;
    assert.deepEqual(
      span.subarray(plan.kernel.start, plan.kernel.start + img.length - k),
      img.subarray(k),
    );
    // 2 GiB (a hole after the setup) cannot load in 64 MiB: refused from the size alone.
    await Deno.truncate(path, 2 * 1024 * MiB);
    const before = Deno.memoryUsage().rss;
    assert.throws(
      () => loadLinuxFrom(mem, e820(size), fileSource(path), undefined, "", { rsdp: 0 }),
      (e: unknown) =>
        e instanceof LinuxBootError && e.key === "kernel" && /needs \d+ bytes/.test(e.message),
    );
    const grew = Deno.memoryUsage().rss - before;
    assert.ok(grew < 64 * MiB, `RSS grew by ${grew} bytes: the file was read`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { GuestMemory } from "../guest_memory.ts";
import { computeLayout, E820, MiB } from "../layout.ts";
import { CR0 } from "../../cpu/regs.ts";
import { parseElfNotes } from "./elf.ts";
import { LINUX_CMDLINE_ADDR, LinuxBootError } from "./linux.ts";
import { loadLinux, loadLinuxFrom, planLinux } from "./payload.ts";
import { fileSource } from "../file_read.ts";
import {
  findPvhEntry,
  HVM_MEMMAP_ENTRY,
  HVM_MODLIST_ENTRY,
  HVM_START_INFO,
  parsePvhKernel,
  PVH_CMDLINE_MAX,
  PVH_START_INFO_ADDR,
  readPvhKernel,
  XEN_ELFNOTE_PHYS32_ENTRY,
  XEN_HVM_START_MAGIC_VALUE,
} from "./pvh.ts";
import { buildElf, elfNote, initialSregs, PT_NOTE } from "./_testing.ts";
import { linuxCache } from "../../tools/fetch_linux.ts";

const u32 = (v: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
};
const u64 = (v: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
};

const concat = (...xs: Uint8Array[]) => {
  const out = new Uint8Array(xs.reduce((n, x) => n + x.length, 0));
  let at = 0;
  for (const x of xs) {
    out.set(x, at);
    at += x.length;
  }
  return out;
};

/**
 * A vmlinux-like ELF64: text at 16 MiB (linked high, loaded at its paddr),
 * bss after it, and a note segment with other Xen notes before the PVH entry
 * note, as Linux's .notes has them.
 */
function vmlinux(opts: { entryDesc?: Uint8Array; noPvh?: boolean; paddr?: number } = {}) {
  const paddr = opts.paddr ?? 0x1000000;
  const text = new Uint8Array(0x2000);
  for (let i = 0; i < text.length; i++) text[i] = (i * 13 + 5) & 0xff;
  const notes = concat(
    elfNote("Xen", 6, new TextEncoder().encode("linux\0")),
    elfNote("GNU", 3, new Uint8Array(20).fill(7)),
    ...(opts.noPvh ? [] : [
      elfNote("Xen", XEN_ELFNOTE_PHYS32_ENTRY, opts.entryDesc ?? u64(paddr + 0x850)),
    ]),
  );
  return buildElf({
    class: 64,
    entry: 0x1000000,
    segments: [
      { paddr, vaddr: 0xffffffff81000000 + (paddr - 0x1000000), data: text, memsz: 0x5000 },
      { type: PT_NOTE, paddr: 0, data: notes },
    ],
  });
}

function guest(size: number): { span: Uint8Array; mem: GuestMemory } {
  const span = new Uint8Array(size);
  return { span, mem: new GuestMemory(span, computeLayout(size).ram) };
}

Deno.test("ELF notes: name, type and descriptor of each note in PT_NOTE segments", () => {
  const notes = parseElfNotes(vmlinux());
  assert.deepEqual(notes.map((n) => [n.name, n.type, n.desc.length]), [
    ["Xen", 6, 6],
    ["GNU", 3, 20],
    ["Xen", 18, 8],
  ]);
});

Deno.test("PVH entry note: 8-byte (newer kernels) and 4-byte (older) descriptors; absent; malformed", () => {
  assert.equal(findPvhEntry(vmlinux()), 0x1000850);
  assert.equal(findPvhEntry(vmlinux({ entryDesc: u32(0x1000123) })), 0x1000123);
  assert.equal(findPvhEntry(vmlinux({ noPvh: true })), undefined);
  assert.throws(() => findPvhEntry(vmlinux({ entryDesc: new Uint8Array(2) }), "k"), /2 bytes/);
  assert.throws(
    () => parsePvhKernel(vmlinux({ noPvh: true }), "vmlinux"),
    (e: unknown) =>
      e instanceof LinuxBootError && e.key === "kernel" &&
      /vmlinux: an ELF kernel without a PVH entry note .*type 18, XEN_ELFNOTE_PHYS32_ENTRY/.test(
        e.message,
      ),
  );
  assert.throws(
    () => parsePvhKernel(vmlinux({ entryDesc: u64(0x200000) }), "k"),
    /entry point 0x200000 is outside its loadable segments/,
  );
});

Deno.test("PVH load: segments at their physical addresses, hvm_start_info v1 with memmap, module, cmdline and RSDP", () => {
  const size = 64 * MiB;
  const { mem, span } = guest(size);
  const img = vmlinux();
  const initrd = new Uint8Array(0x1234).fill(0x5a);
  const { entry, plan } = loadLinux(mem, computeLayout(size).e820, img, initrd, "console=ttyS0", {
    rsdp: 0xf0000,
  });
  assert.equal(plan.format, "pvh");
  if (plan.format !== "pvh") return;
  // The text where it is linked (paddr), the rest of memsz zeroed.
  assert.equal(span[0x1000000], img[parsePvhKernel(img).segments[0].offset]);
  assert.deepEqual(mem.read(0x1002000, 0x3000), new Uint8Array(0x3000));
  const si = PVH_START_INFO_ADDR;
  const dv = new DataView(span.buffer);
  assert.equal(dv.getUint32(si + HVM_START_INFO.magic, true), XEN_HVM_START_MAGIC_VALUE);
  assert.equal(dv.getUint32(si + HVM_START_INFO.magic, true), 0x336ec578);
  assert.equal(dv.getUint32(si + HVM_START_INFO.version, true), 1);
  assert.equal(dv.getUint32(si + HVM_START_INFO.flags, true), 0);
  assert.equal(dv.getBigUint64(si + HVM_START_INFO.cmdlinePaddr, true), BigInt(LINUX_CMDLINE_ADDR));
  assert.equal(mem.readCString(LINUX_CMDLINE_ADDR, 64), "console=ttyS0");
  assert.equal(dv.getBigUint64(si + HVM_START_INFO.rsdpPaddr, true), 0xf0000n);
  // The initrd as module 0, above the kernel, highest in lowmem.
  assert.equal(dv.getUint32(si + HVM_START_INFO.nrModules, true), 1);
  const mod = Number(dv.getBigUint64(si + HVM_START_INFO.modlistPaddr, true));
  const at = Number(dv.getBigUint64(mod + HVM_MODLIST_ENTRY.paddr, true));
  assert.equal(Number(dv.getBigUint64(mod + HVM_MODLIST_ENTRY.size_, true)), initrd.length);
  assert.equal(at, plan.initrd!.start);
  assert.ok(at >= 0x1005000 && at + initrd.length <= size && at % 0x1000 === 0);
  assert.deepEqual(mem.read(at, initrd.length), initrd);
  // The memory map is the e820 map.
  const map = computeLayout(size).e820;
  const mm = Number(dv.getBigUint64(si + HVM_START_INFO.memmapPaddr, true));
  assert.equal(dv.getUint32(si + HVM_START_INFO.memmapEntries, true), map.length);
  map.forEach((e, i) => {
    const p = mm + i * HVM_MEMMAP_ENTRY.size;
    assert.equal(Number(dv.getBigUint64(p + HVM_MEMMAP_ENTRY.addr, true)), e.addr);
    assert.equal(Number(dv.getBigUint64(p + HVM_MEMMAP_ENTRY.size_, true)), e.size);
    assert.equal(dv.getUint32(p + HVM_MEMMAP_ENTRY.type, true), e.type);
  });
  assert.equal(map[0].type, E820.RAM);
  // start_info.h: 32-bit flat protected mode, paging off, EBX = start info, TR a 32-bit TSS.
  assert.equal(entry.mode, "prot32");
  assert.equal(entry.regs.rip, 0x1000850n);
  assert.equal(entry.regs.rbx, BigInt(si));
  assert.equal(entry.regs.rflags & 0x200n, 0n); // IF clear
  const s = entry.sregs(initialSregs());
  assert.equal(s.cr0 & CR0.PE, CR0.PE);
  assert.equal(s.cr0 & CR0.PG, 0n);
  assert.equal(s.cr4, 0n);
  assert.equal(s.cs.base, 0n);
  assert.equal(s.cs.limit, 0xffffffff);
  assert.equal(s.cs.db, 1);
  assert.equal(s.tr.type, 0xb);
  assert.equal(s.tr.limit, 0x67);
});

Deno.test("PVH: without an initrd there are no modules", () => {
  const { mem, span } = guest(64 * MiB);
  loadLinux(mem, computeLayout(64 * MiB).e820, vmlinux(), undefined, "");
  const dv = new DataView(span.buffer);
  assert.equal(dv.getUint32(PVH_START_INFO_ADDR + HVM_START_INFO.nrModules, true), 0);
  assert.equal(dv.getBigUint64(PVH_START_INFO_ADDR + HVM_START_INFO.modlistPaddr, true), 0n);
});

Deno.test("PVH plan: refused when a segment is not in RAM, the initrd does not fit, or the cmdline is too long", () => {
  const small = computeLayout(16 * MiB).e820;
  assert.throws(
    () => planLinux(vmlinux(), undefined, "", small, { kernel: "vmlinux" }),
    (e: unknown) =>
      e instanceof LinuxBootError && e.key === "kernel" &&
      /vmlinux: its segment at \[0x1000000, 0x1005000\) is not in guest RAM/.test(e.message),
  );
  const map = computeLayout(32 * MiB).e820;
  assert.throws(
    () => planLinux(vmlinux(), 0x1000000, "", map, { initrd: "init.gz" }),
    (e: unknown) => e instanceof LinuxBootError && e.key === "initrd" && /init\.gz/.test(e.message),
  );
  assert.doesNotThrow(() => planLinux(vmlinux(), undefined, "x".repeat(PVH_CMDLINE_MAX), map));
  assert.throws(
    () => planLinux(vmlinux(), undefined, "x".repeat(PVH_CMDLINE_MAX + 1), map),
    (e: unknown) =>
      e instanceof LinuxBootError && e.key === "cmdline" && /2048 bytes/.test(e.message),
  );
});

const cache = linuxCache();

Deno.test({
  name: "real kernel: Debian's vmlinux has a PVH entry inside its image and plans in 256 MiB",
  ignore: !cache.ready,
  fn: async () => {
    const img = await Deno.readFile(cache.vmlinux);
    const k = parsePvhKernel(img, cache.vmlinux);
    assert.equal(k.class, 64);
    assert.ok(k.entry >= k.image.start && k.entry < k.image.end);
    const plan = planLinux(img, 0x100000, "console=ttyS0", computeLayout(256 * MiB).e820);
    assert.equal(plan.format, "pvh");
    assert.ok(plan.initrd!.start >= k.image.end);
  },
});

Deno.test("ABI: hvm_start_info v1 is 56 bytes, hvm_modlist_entry 32, hvm_memmap_table_entry 24 (start_info.h)", () => {
  // The last field of each ends the structure (all naturally aligned, no padding).
  assert.equal(HVM_START_INFO.reserved + 4, HVM_START_INFO.size);
  assert.equal(HVM_START_INFO.size, 56);
  assert.equal(HVM_START_INFO.memmapPaddr, 40); // "offset 40" in start_info.h's layout comment
  assert.equal(HVM_MODLIST_ENTRY.reserved + 8, HVM_MODLIST_ENTRY.size);
  assert.equal(HVM_MODLIST_ENTRY.size, 32);
  assert.equal(HVM_MEMMAP_ENTRY.reserved + 4, HVM_MEMMAP_ENTRY.size);
  assert.equal(HVM_MEMMAP_ENTRY.size, 24);
});

Deno.test("PVH from a file: only the headers, the notes and the segments are read, whatever the file's size", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dhyve_pvh_" });
  try {
    // A vmlinux with 2 GiB of debug information after its segments (a hole here).
    const img = vmlinux();
    const path = `${dir}/vmlinux`;
    await Deno.writeFile(path, img);
    await Deno.truncate(path, 2 * 1024 * MiB);
    const source = fileSource(path);
    const size = 64 * MiB;
    const { mem, span } = guest(size);
    const before = Deno.memoryUsage().rss;
    const { plan } = loadLinuxFrom(mem, computeLayout(size).e820, source, undefined, "", {
      rsdp: 0xf0000,
    });
    const grew = Deno.memoryUsage().rss - before;
    assert.equal(plan.format, "pvh");
    const text = parsePvhKernel(img).segments[0];
    assert.deepEqual(
      span.subarray(0x1000000, 0x1000000 + text.filesz),
      img.subarray(text.offset, text.offset + text.filesz),
    );
    assert.ok(grew < 64 * MiB, `RSS grew by ${grew} bytes: the file was read`);
    // The kernel's program headers or notes may not send the reader past the file's end.
    const cut = `${dir}/cut`;
    await Deno.writeFile(cut, img.subarray(0, 0x100));
    assert.throws(
      () => readPvhKernel(fileSource(cut), "cut"),
      (e: unknown) =>
        e instanceof LinuxBootError &&
        /cut: (note )?segment \d+ (extends past|outside) the file/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

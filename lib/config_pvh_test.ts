/**
 * Issue 11, item 2 for `check`: a PVH kernel (an ELF vmlinux) is checked
 * from its headers and notes only. A 3 GiB sparse vmlinux whose loadable
 * bytes are a few KiB passes `check` without the file being read: the RSS
 * of this process does not grow by its size (it did: `check` read all of it).
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseConfig } from "./config.ts";
import { buildElf, elfNote, PT_NOTE } from "./boot/_testing.ts";
import { XEN_ELFNOTE_PHYS32_ENTRY } from "./boot/pvh.ts";

const MiB = 1 << 20;

Deno.test("check reads a PVH vmlinux's headers and notes, not the whole file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dhyve-pvh-check-" });
  try {
    const entry = new Uint8Array(4);
    new DataView(entry.buffer).setUint32(0, 0x1000000, true);
    const elf = buildElf({
      class: 64,
      entry: 0x1000000,
      segments: [
        {
          paddr: 0x1000000,
          vaddr: 0xffffffff81000000,
          data: new Uint8Array(0x1000).fill(0x90),
          memsz: 0x5000,
        },
        { type: PT_NOTE, paddr: 0, data: elfNote("Xen", XEN_ELFNOTE_PHYS32_ENTRY, entry) },
      ],
    });
    const kernel = `${dir}/vmlinux`;
    await Deno.writeFile(kernel, elf);
    // The rest of the file is a hole: 3 GiB that no page cache or disk holds.
    await Deno.truncate(kernel, 3 * 1024 * MiB);
    const before = Deno.memoryUsage().rss;
    const config = await parseConfig(
      `[boot]\nkind = "linux"\nkernel = "vmlinux"\ncmdline = "console=ttyS0"\n`,
      `${dir}/vm.toml`,
    );
    const grew = Deno.memoryUsage().rss - before;
    assert.equal(config.boot.kind, "linux");
    assert.ok(grew < 64 * MiB, `RSS grew by ${(grew / MiB).toFixed(0)} MiB: the kernel was read`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

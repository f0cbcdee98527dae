/**
 * Issue 11, the `up` side of items 2 and 4: the boot payload loader checks
 * every input file with stat before reading it (a special file is refused
 * by name, a file too big for guest RAM is refused from its size), reads
 * only what it loads, straight into guest RAM, and says what is wrong in
 * words, naming the `[boot]` key and the file. These call the loader
 * directly: `check` refuses the same inputs first, so `up` meets them only
 * when a file changes between the two.
 *
 * @module
 */
import assert from "node:assert/strict";
import { GuestMemory } from "../lib/guest_memory.ts";
import { computeLayout, MiB } from "../lib/layout.ts";
import { loadPayload, PayloadError } from "../lib/boot/payload.ts";
import type { BootConfig } from "../lib/config.ts";
import { buildElf } from "../lib/boot/_testing.ts";
import { escapeText } from "../lib/quote.ts";

const RAM = 16 * MiB;
const GiB = 1024 * MiB;

function guest(
  size = RAM,
): { span: Uint8Array; mem: GuestMemory; e820: ReturnType<typeof computeLayout>["e820"] } {
  const span = new Uint8Array(size);
  const layout = computeLayout(size);
  return { span, mem: new GuestMemory(span, layout.ram), e820: layout.e820 };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dhyve_payload_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * The loader's refusal of `boot`, within `ms`. A loader that opens a FIFO
 * blocks in open(2) until a writer comes: after `ms` the FIFO at `fifo`
 * (if any) is opened for writing and closed, so such a loader fails this
 * test instead of hanging it.
 */
async function refusal(boot: BootConfig, fifo?: string, ms = 2000): Promise<PayloadError> {
  const { mem, e820 } = guest();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), ms)));
  const result = loadPayload(mem, e820, boot, { rsdp: 0 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  const first = await Promise.race([result, late]);
  clearTimeout(timer);
  if (first === "late") {
    if (fifo) (await Deno.open(fifo, { write: true })).close();
    await result;
    assert.fail(`the loader took over ${ms} ms (it blocked on the file)`);
  }
  assert.ok(first instanceof PayloadError, `expected a PayloadError, got ${first}`);
  assertSafe(first.message);
  return first;
}

function assertSafe(text: string): void {
  assert.equal(escapeText(text), text, `raw control characters in ${JSON.stringify(text)}`);
}

/** A file of `size` bytes that holds `head` and then a hole (no disk, no page cache). */
async function sparse(path: string, head: Uint8Array, size: number): Promise<string> {
  await Deno.writeFile(path, head);
  await Deno.truncate(path, size);
  return path;
}

/** The growth of this process's RSS while `fn` runs. */
async function rssGrowth(fn: () => Promise<void>): Promise<number> {
  const before = Deno.memoryUsage().rss;
  await fn();
  return Deno.memoryUsage().rss - before;
}

Deno.test("a FIFO, a device or a directory as a boot input is refused by name, with its key, before it is opened", async () => {
  await withDir(async (dir) => {
    const fifo = `${dir}/in.fifo`;
    await new Deno.Command("mkfifo", { args: [fifo] }).output();
    const raw = (image: string): BootConfig => ({
      kind: "raw",
      image,
      address: 0x10000,
      entry: "real16",
      entryPoint: 0x10000,
    });
    const a = await refusal(raw(fifo), fifo);
    assert.equal(a.message, `boot.image: ${fifo} is a FIFO, not a regular file`);
    const b = await refusal(raw("/dev/null"));
    assert.equal(b.message, "boot.image: /dev/null is a character device, not a regular file");
    const c = await refusal({ kind: "linux", kernel: dir, cmdline: "" });
    assert.equal(c.message, `boot.kernel: ${dir} is a directory, not a regular file`);
    const kernel = `${dir}/k.elf`;
    await Deno.writeFile(kernel, multibootKernel());
    const d = await refusal(
      { kind: "multiboot", kernel, cmdline: "", modules: [{ path: fifo, cmdline: "" }] },
      fifo,
    );
    assert.equal(d.message, `boot.modules[0].path: ${fifo} is a FIFO, not a regular file`);
    const e = await refusal({ kind: "linux", kernel, initrd: fifo, cmdline: "" }, fifo);
    assert.equal(e.message, `boot.initrd: ${fifo} is a FIFO, not a regular file`);
  });
});

Deno.test("host errors are said in words, naming the key and the file (escaped)", async () => {
  await withDir(async (dir) => {
    const missing = `${dir}/gone\u001b[2J.bin`;
    const a = await refusal({
      kind: "raw",
      image: missing,
      address: 0x10000,
      entry: "real16",
      entryPoint: 0x10000,
    });
    assert.equal(
      a.message,
      `boot.image: cannot read "${dir}/gone\\u001b[2J.bin": it does not exist`,
    );
    const b = await refusal({ kind: "linux", kernel: `${dir}/file/x`, cmdline: "" });
    assert.doesNotMatch(b.message, /os error|errno/);
  });
});

/** A Multiboot ELF32 kernel: 4 KiB of code at 1 MiB with the header at its start. */
function multibootKernel(): Uint8Array {
  const text = new Uint8Array(0x1000);
  const dv = new DataView(text.buffer);
  dv.setUint32(0, 0x1badb002, true);
  dv.setUint32(4, 0, true);
  dv.setUint32(8, -0x1badb002 >>> 0, true);
  return buildElf({ class: 32, entry: 0x100000, segments: [{ paddr: 0x100000, data: text }] });
}

Deno.test("inputs too big for guest RAM are refused from their size, without reading them", async () => {
  await withDir(async (dir) => {
    const kernel = `${dir}/k.elf`;
    await Deno.writeFile(kernel, multibootKernel());
    const huge = await sparse(`${dir}/huge.bin`, new Uint8Array(16).fill(0x90), 2 * GiB);
    let module: PayloadError | undefined, image: PayloadError | undefined;
    let linux: PayloadError | undefined;
    const grew = await rssGrowth(async () => {
      module = await refusal({
        kind: "multiboot",
        kernel,
        cmdline: "",
        modules: [{ path: huge, cmdline: "" }],
      });
      image = await refusal({
        kind: "raw",
        image: huge,
        address: 0x10000,
        entry: "real16",
        entryPoint: 0x10000,
      });
      linux = await refusal({ kind: "linux", kernel: huge, cmdline: "" });
    });
    assert.match(
      module!.message,
      /^boot\.modules\[0\]\.path: module .*huge\.bin.*does not fit in guest RAM/,
    );
    assert.match(
      image!.message,
      /huge\.bin: \[0x10000, 0x80010000\) \(2147483648 bytes\) is not in guest RAM/,
    );
    // Not a kernel at all: said from its first bytes.
    assert.match(linux!.message, /^boot\.kernel: .*huge\.bin: unknown kernel format/);
    assert.ok(grew < 64 * MiB, `RSS grew by ${grew} bytes: the file was read`);
  });
});

Deno.test("a raw image is read straight into guest RAM at its address", async () => {
  await withDir(async (dir) => {
    const bytes = new Uint8Array(0x3001).map((_, i) => (i * 7 + 3) & 0xff);
    const image = `${dir}/guest.bin`;
    await Deno.writeFile(image, bytes);
    const { mem, e820 } = guest();
    const p = await loadPayload(mem, e820, {
      kind: "raw",
      image,
      address: 0x10000,
      entry: "real16",
      entryPoint: 0x10000,
    });
    assert.deepEqual(mem.read(0x10000, bytes.length), bytes);
    assert.equal(
      p.description,
      `raw image ${image} (12289 bytes) at 0x10000, real16 entry at 0x10000`,
    );
  });
});

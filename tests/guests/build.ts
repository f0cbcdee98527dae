/**
 * Builds dhyve's test guests from source, reproducibly.
 *
 * - `probe` (tests/guests/probe/): a Multiboot v1 ELF32 kernel, linked at
 *   1 MiB, that prints a report on COM1 and powers off. Its stripped ELF is
 *   embedded in lib/boot/_probe_image.ts.
 * - `outloop` (tests/guests/outloop/): a flat 16-bit real-mode binary for the
 *   port I/O exit benchmark; load it at 0x10000 and enter with CS=0x1000,
 *   IP=0; patch the loop count at {@link OUTLOOP_COUNT_OFFSET}.
 * - `rm/<name>`, `pm/<name>`, `lm/<name>`: small flat guests in real mode,
 *   32-bit protected mode and 64-bit long mode (see {@link GuestName}).
 *
 * CLI:
 * - `deno run -A tests/guests/build.ts` builds all guests into
 *   tests/guests/out/ (git-ignored) for inspection;
 * - `deno run -A tests/guests/build.ts --write` (`deno task guests`)
 *   regenerates lib/boot/_probe_image.ts.
 *
 * Needs gcc (with -m32) and GNU binutils. The output is byte-identical across
 * runs and checkout paths: no debug info, prefix maps, `--build-id=none`, all
 * symbols stripped, no timestamps.
 *
 * @module
 */

/**
 * Names of the guests this module builds: the probe, the benchmark's outloop,
 * the small real-mode test guests `rm/<name>` (tests/guests/rm/<name>.S,
 * flat binaries loaded at 0x10000 and entered at CS=0x1000, IP=0) and the
 * 32-bit ones `pm/<name>` (tests/guests/pm/<name>.S, flat binaries linked and
 * loaded at 0x10000, entered in flat protected mode at 0x10000) and the
 * 64-bit ones `lm/<name>` (tests/guests/lm/<name>.S, x86-64 flat binaries
 * linked and loaded at 0x10000, entered by the raw payload's `long64` mode
 * at 0x10000).
 */
export type GuestName = "probe" | "outloop" | `rm/${string}` | `pm/${string}` | `lm/${string}`;

/** Where the flat real-mode guests are loaded (entered at CS = REAL_MODE_LOAD >> 4, IP = 0). */
export const REAL_MODE_LOAD = 0x10000;

/** Where the flat protected- and long-mode guests are linked, loaded and entered. */
export const FLAT_LOAD = 0x10000;

/**
 * The header of the `lm/fallback` guest (tests/guests/lm/fallback.S): the
 * magic at `magicOffset`, then little-endian 64-bit words: the mask of
 * checks to run (bit i runs check i of the guest's table), the iteration
 * count of the two-vCPU cmpxchg16b counter, and the self-test flag (not 0:
 * every snippet's "CPL0" run is done at CPL3 too).
 */
export const FALLBACK_GUEST_HEADER = Object.freeze({
  magic: "DHYVEFB1",
  magicOffset: 8,
  maskOffset: 16,
  iterationsOffset: 24,
  selfTestOffset: 32,
});

/** Byte offset of the 32-bit little-endian loop count in the outloop binary. */
export const OUTLOOP_COUNT_OFFSET = 4;

const GUESTS_DIR = new URL(".", import.meta.url);
const REPO_ROOT = new URL("../../", import.meta.url);
const PROBE_IMAGE_MODULE = new URL("lib/boot/_probe_image.ts", REPO_ROOT);
const OUT_DIR = new URL("out/", GUESTS_DIR);

/** Probe sources, in link order (entry.S first). */
const PROBE_SOURCES = [
  "entry.S",
  "main.c",
  "lib.c",
  "idt.c",
  "smp.c",
  "acpi.c",
  "mp.c",
  "pci.c",
  "hpet.c",
  "rtc.c",
];

/**
 * Fixed compiler flags. Ring-0 guest code runs in KVM's instruction emulator
 * on the development machines, so only plain integer instructions: no
 * SSE/x87/AVX, i586 (no cmov).
 */
const PROBE_CFLAGS = [
  "-m32",
  "-march=i586",
  "-mgeneral-regs-only",
  "-ffreestanding",
  "-fno-pic",
  "-fno-pie",
  "-fno-stack-protector",
  "-fno-asynchronous-unwind-tables",
  "-fno-builtin",
  "-fno-ident",
  "-Os",
  "-Wall",
  "-Wextra",
  "-Werror",
];

const PROBE_LDFLAGS = [
  "-m",
  "elf_i386",
  "-nostdlib",
  "-n", // no page alignment in the file: a smaller image
  "--build-id=none",
  "-s", // strip all symbols
  "-T",
  "linker.ld",
];

function path(url: URL): string {
  return decodeURIComponent(url.pathname);
}

async function run(cmd: string, args: string[], cwd: string): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
      .output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `building the test guests needs \`${cmd}\` (gcc with -m32 and GNU binutils), ` +
          `which is not installed; on Debian: apt-get install gcc binutils`,
      );
    }
    throw e;
  }
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code}):\n${text}`);
  }
}

async function buildProbe(tmp: string): Promise<Uint8Array> {
  const src = path(new URL("probe/", GUESTS_DIR));
  const objs: string[] = [];
  for (const file of PROBE_SOURCES) {
    const obj = `${tmp}/${file.replace(/\.[cS]$/, ".o")}`;
    await run("gcc", [
      ...PROBE_CFLAGS,
      `-ffile-prefix-map=${src}=probe/`,
      `-ffile-prefix-map=${tmp}/=`,
      "-c",
      file,
      "-o",
      obj,
    ], src);
    objs.push(obj);
  }
  const elf = `${tmp}/probe.elf`;
  await run("ld", [...PROBE_LDFLAGS, "-o", elf, ...objs], src);
  return await Deno.readFile(elf);
}

/**
 * Assembles a flat guest `dir/name.S` linked at `linkAddress` (code at offset
 * 0 of the binary); `bits` 32 builds an i386 object (for 16- and 32-bit
 * code), 64 an x86-64 one. Only `.text` (with its subsections) is kept.
 */
async function buildFlat(
  tmp: string,
  dir: string,
  name: string,
  linkAddress = 0,
  bits: 32 | 64 = 32,
): Promise<Uint8Array> {
  const src = path(new URL(`${dir}/`, GUESTS_DIR));
  try {
    await Deno.stat(`${src}${name}.S`);
  } catch {
    throw new Error(`unknown guest ${dir}/${name}: no ${src}${name}.S`);
  }
  await run("gcc", [
    bits === 64 ? "-m64" : "-m32",
    "-c",
    `${name}.S`,
    "-o",
    `${tmp}/${name}.o`,
  ], src);
  await run("ld", [
    "-m",
    bits === 64 ? "elf_x86_64" : "elf_i386",
    "-nostdlib",
    "--build-id=none",
    `-Ttext=0x${linkAddress.toString(16)}`,
    "-e",
    `0x${linkAddress.toString(16)}`,
    "-o",
    `${tmp}/${name}.elf`,
    `${tmp}/${name}.o`,
  ], tmp);
  await run("objcopy", ["-O", "binary", "-j", ".text", `${name}.elf`, `${name}.bin`], tmp);
  return await Deno.readFile(`${tmp}/${name}.bin`);
}

/**
 * Builds one guest from source in a fresh temporary directory and returns its
 * final bytes: for `probe` the stripped ELF, for `outloop` the flat binary.
 */
export async function buildGuest(name: GuestName): Promise<Uint8Array> {
  const tmp = await Deno.makeTempDir({ prefix: `dhyve-guest-${name.replace("/", "-")}-` });
  try {
    if (name === "probe") return await buildProbe(tmp);
    if (name === "outloop") return await buildFlat(tmp, "outloop", "outloop");
    const m = /^(rm|pm|lm)\/([a-z0-9_]+)$/.exec(name);
    if (m) {
      return await buildFlat(
        tmp,
        m[1],
        m[2],
        m[1] === "rm" ? 0 : FLAT_LOAD,
        m[1] === "lm" ? 64 : 32,
      );
    }
    throw new Error(
      `unknown guest ${
        JSON.stringify(name)
      }: expected "probe", "outloop", "rm/<name>", "pm/<name>" or "lm/<name>"`,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/** Hex SHA-256 of bytes. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Source text of lib/boot/_probe_image.ts for the given probe image. */
export async function probeImageModule(image: Uint8Array): Promise<string> {
  const b64 = image.toBase64();
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 92) lines.push(`  "${b64.slice(i, i + 92)}",`);
  return [
    "// Generated by tests/guests/build.ts from tests/guests/probe; do not edit;",
    "// `deno task guests` regenerates it.",
    "",
    `/** The probe guest (Multiboot v1 ELF32 kernel, ${image.length} bytes), base64. */`,
    "export const PROBE_IMAGE_BASE64: string = [",
    ...lines,
    '].join("");',
    "",
    "/** SHA-256 of the probe image, hex. */",
    "export const PROBE_IMAGE_SHA256: string =",
    `  "${await sha256Hex(image)}";`,
    "",
    "/** The probe image's bytes (a fresh copy on each call). */",
    "export function probeImage(): Uint8Array {",
    "  return Uint8Array.fromBase64(PROBE_IMAGE_BASE64);",
    "}",
    "",
  ].join("\n");
}

async function main(args: string[]): Promise<void> {
  if (args.includes("--write")) {
    const image = await buildGuest("probe");
    await Deno.mkdir(new URL(".", PROBE_IMAGE_MODULE), { recursive: true });
    await Deno.writeTextFile(PROBE_IMAGE_MODULE, await probeImageModule(image));
    console.log(`wrote ${path(PROBE_IMAGE_MODULE)} (probe: ${image.length} bytes)`);
    return;
  }
  await Deno.mkdir(OUT_DIR, { recursive: true });
  for (
    const [name, file] of [
      ["probe", "probe.elf"],
      ["outloop", "outloop.bin"],
      ["lm/fallback", "fallback.bin"],
    ] as const
  ) {
    const bytes = await buildGuest(name);
    await Deno.writeFile(new URL(file, OUT_DIR), bytes);
    console.log(`${path(new URL(file, OUT_DIR))}: ${bytes.length} bytes`);
  }
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    Deno.exit(1);
  }
}

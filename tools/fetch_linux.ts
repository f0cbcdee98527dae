/**
 * `deno task fetch-linux`: fetches Debian's cloud kernel and busybox-static
 * into `.cache/linux/` (git-ignored) for configs/linux.toml and the Linux
 * tests, and derives what they need from them:
 *
 * - `vmlinuz`: the bzImage from `linux-image-<version>-cloud-amd64`
 *   (the package `linux-image-cloud-amd64` depends on), and its `config`;
 * - `vmlinux`: the uncompressed ELF kernel, decompressed from the bzImage's
 *   payload (boot.rst payload_offset/payload_length, protocol 2.08+) with
 *   the lz4, xz or zstd command (Debian 12's kernel is lz4; the tool is
 *   installed with apt-get when missing);
 * - `busybox`: the static busybox binary;
 * - `modules/`: the kernel's virtio modules ({@linkcode LINUX_MODULES}: the
 *   cloud kernel builds its virtio drivers as modules);
 * - `initramfs.cpio.gz`: busybox, configs/linux-init.sh as /init, the
 *   modules in /lib/modules/ and a few device nodes, built with
 *   lib/initramfs.ts; `initramfs.cpio`, the same archive uncompressed.
 *
 * Downloading is skipped when the cache holds the files already; the
 * initramfs is rebuilt when the init script changed. `linuxCache()` tells
 * other code where everything is without fetching.
 *
 * @module
 */
import { bzImagePayload } from "../lib/boot/linux.ts";
import { buildInitramfs, type CpioEntry, parseDeviceSpecFile } from "../lib/initramfs.ts";

const ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");

/** The cache directory: `<repo>/.cache/linux`. */
export const LINUX_CACHE_DIR: string = `${ROOT}/.cache/linux`;
/** The init script baked into the initramfs. */
export const LINUX_INIT_SCRIPT: string = `${ROOT}/configs/linux-init.sh`;
/** The Debian packages fetched. */
export const LINUX_PACKAGES = Object.freeze({
  kernel: "linux-image-cloud-amd64",
  busybox: "busybox-static",
});

/**
 * The kernel modules the initramfs carries, in load order (each after what
 * it depends on, as the modules' `depends=` say): the virtio PCI transport
 * and the block, entropy, console and network drivers.
 */
export const LINUX_MODULES: readonly string[] = [
  "drivers/virtio/virtio_ring.ko",
  "drivers/virtio/virtio.ko",
  "drivers/virtio/virtio_pci_modern_dev.ko",
  "drivers/virtio/virtio_pci_legacy_dev.ko",
  "drivers/virtio/virtio_pci.ko",
  "drivers/block/virtio_blk.ko",
  "drivers/char/hw_random/virtio-rng.ko",
  "drivers/char/virtio_console.ko",
  "net/core/failover.ko",
  "drivers/net/net_failover.ko",
  "drivers/net/virtio_net.ko",
];

/** A module's file name in the cache and the initramfs (its basename). */
function moduleName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** Device nodes in the initramfs (lib/initramfs.ts device spec lines). */
export const LINUX_INITRAMFS_DEVICES =
  `# The kernel opens /dev/console for init's stdio before /init runs
# (Documentation/filesystems/ramfs-rootfs-initramfs.rst); the rest is for the
# init script until it mounts devtmpfs.
dev/console c 5 1 0600
dev/null c 1 3 0666
dev/ttyS0 c 4 64 0600
dev/kmsg c 1 11 0644
`;

/** Where the cached Linux files are. */
export interface LinuxCache {
  /** The cache directory. */
  readonly dir: string;
  /** The bzImage. */
  readonly vmlinuz: string;
  /** The uncompressed ELF kernel (with its PVH entry note). */
  readonly vmlinux: string;
  /** The gzip-compressed newc initramfs with busybox and the init script. */
  readonly initramfs: string;
  /**
   * The same archive uncompressed (what configs/linux.toml boots: where the
   * guest's kernel code is emulated, inflating the gzip costs the boot
   * minutes of CPU time).
   */
  readonly initramfsRaw: string;
  /** The static busybox binary. */
  readonly busybox: string;
  /** The directory of the kernel modules ({@linkcode LINUX_MODULES}). */
  readonly modules: string;
  /** The kernel's build configuration (/boot/config-VERSION). */
  readonly config: string;
  /** The kernel release ("6.1.0-57-cloud-amd64"), or null before the first fetch. */
  readonly kernelVersion: string | null;
  /** True when the fetch completed: vmlinuz, vmlinux, both initramfs files and busybox exist. */
  readonly ready: boolean;
}

/** What the fetch recorded in `manifest.json`. */
interface Manifest {
  kernelPackage: string;
  kernelVersion: string;
  busyboxPackage: string;
  compression: string;
  fetchedAt: string;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function readManifest(dir: string): Manifest | null {
  try {
    return JSON.parse(Deno.readTextFileSync(`${dir}/manifest.json`)) as Manifest;
  } catch {
    return null;
  }
}

/**
 * The cache's paths (in `dir`, default {@linkcode LINUX_CACHE_DIR}); fetches
 * nothing and never throws. `ready` says whether they all exist.
 */
export function linuxCache(dir: string = LINUX_CACHE_DIR): LinuxCache {
  const paths = {
    dir,
    vmlinuz: `${dir}/vmlinuz`,
    vmlinux: `${dir}/vmlinux`,
    initramfs: `${dir}/initramfs.cpio.gz`,
    initramfsRaw: `${dir}/initramfs.cpio`,
    busybox: `${dir}/busybox`,
    modules: `${dir}/modules`,
    config: `${dir}/config`,
  };
  const manifest = readManifest(dir);
  const ready = manifest !== null &&
    [
      paths.vmlinuz,
      paths.vmlinux,
      paths.initramfs,
      paths.initramfsRaw,
      paths.busybox,
      ...LINUX_MODULES.map((m) => `${paths.modules}/${moduleName(m)}`),
    ].every(exists);
  return { ...paths, kernelVersion: manifest?.kernelVersion ?? null, ready };
}

/** Options of {@linkcode fetchLinux}. */
export interface FetchOptions {
  /** The cache directory (default {@linkcode LINUX_CACHE_DIR}). */
  readonly dir?: string;
  /** Progress lines (default: stderr). */
  readonly log?: (line: string) => void;
  /** Fetch again even when the cache is complete. */
  readonly force?: boolean;
}

async function run(cmd: string, args: string[], cwd?: string): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    throw new Error(`cannot run ${cmd}: ${(e as Error).message}`);
  }
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`${cmd} ${args.join(" ")} failed (status ${out.code}): ${err}`);
  }
  return new TextDecoder().decode(out.stdout);
}

async function have(cmd: string): Promise<boolean> {
  try {
    const out = await new Deno.Command("sh", {
      args: ["-c", `command -v ${cmd}`],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

/** Makes sure `cmd` exists, installing Debian package `pkg` with apt-get if not. */
async function ensureTool(cmd: string, pkg: string, log: (s: string) => void): Promise<void> {
  if (await have(cmd)) return;
  log(`fetch-linux: ${cmd} is missing; apt-get install -y ${pkg}`);
  await run("apt-get", ["install", "-y", "-q", pkg]);
  if (!(await have(cmd))) throw new Error(`${cmd} is still missing after installing ${pkg}`);
}

/** The package `linux-image-cloud-amd64` depends on (the versioned kernel image). */
async function resolveKernelPackage(): Promise<string> {
  const out = await run("apt-cache", ["depends", "--important", LINUX_PACKAGES.kernel]);
  const m = out.match(/Depends:\s*(linux-image-\S+)/);
  if (!m) throw new Error(`cannot tell which kernel ${LINUX_PACKAGES.kernel} depends on:\n${out}`);
  return m[1];
}

/** Decompresses `stream` with the xz or zstd command line tool. */
async function decompress(
  stream: Uint8Array,
  compression: string,
  tmp: string,
  log: (s: string) => void,
): Promise<Uint8Array> {
  const tools: Record<string, [string, string, string[]]> = {
    xz: ["xz", "xz-utils", ["-dc", "--single-stream"]],
    zstd: ["zstd", "zstd", ["-dc", "-q"]],
    gzip: ["gzip", "gzip", ["-dc"]],
    lzma: ["xz", "xz-utils", ["-dc", "--format=lzma"]],
    bzip2: ["bzip2", "bzip2", ["-dc"]],
    lz4: ["lz4", "lz4", ["-dc"]],
  };
  const t = tools[compression];
  if (!t) throw new Error(`no decompressor for a ${compression} kernel payload`);
  await ensureTool(t[0], t[1], log);
  const src = `${tmp}/payload.${compression}`;
  await Deno.writeFile(src, stream);
  const out = await new Deno.Command(t[0], {
    args: [...t[2], src],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  // gzip complains about the trailing bytes after its member but still writes the data.
  if (!out.success && compression !== "gzip") {
    throw new Error(
      `${t[0]} could not decompress the kernel payload: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
  return out.stdout;
}

/**
 * Extracts the uncompressed ELF vmlinux from a bzImage's payload. The
 * payload of an x86 bzImage is vmlinux.bin (vmlinux objcopy'd, still an ELF)
 * followed by its relocations for a relocatable kernel
 * (arch/x86/boot/compressed/Makefile).
 */
export async function extractVmlinux(
  bzImage: Uint8Array,
  what = "kernel",
  log: (s: string) => void = () => {},
): Promise<{ vmlinux: Uint8Array; compression: string }> {
  const payload = bzImagePayload(bzImage, what);
  if (payload.compression === "none") return { vmlinux: payload.bytes, compression: "none" };
  const tmp = await Deno.makeTempDir({ prefix: "dhyve-vmlinux-" });
  try {
    const out = await decompress(payload.stream, payload.compression, tmp, log);
    if (payload.uncompressedSize !== undefined && out.length !== payload.uncompressedSize) {
      throw new Error(
        `${what}: the ${payload.compression} payload gave ${out.length} bytes, the trailer says ${payload.uncompressedSize}`,
      );
    }
    if (!(out[0] === 0x7f && out[1] === 0x45 && out[2] === 0x4c && out[3] === 0x46)) {
      throw new Error(`${what}: the decompressed payload is not an ELF file`);
    }
    return { vmlinux: out, compression: payload.compression };
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/**
 * Builds the initramfs: busybox as /bin/busybox (+ /bin/sh), the init script
 * as /init, the `modules` (name -> bytes) in /lib/modules/, device nodes.
 */
export async function buildLinuxInitramfs(
  busybox: Uint8Array,
  initScript: Uint8Array,
  compress = true,
  modules: ReadonlyMap<string, Uint8Array> = new Map(),
): Promise<Uint8Array> {
  const entries: CpioEntry[] = [
    ...(modules.size > 0
      ? [
        { path: "lib", type: "dir", perm: 0o755 } as CpioEntry,
        { path: "lib/modules", type: "dir", perm: 0o755 } as CpioEntry,
      ]
      : []),
    ...[...modules].map(([name, data]): CpioEntry => ({
      path: `lib/modules/${name}`,
      type: "file",
      perm: 0o644,
      data,
    })),
    { path: "bin/busybox", type: "file", perm: 0o755, data: busybox },
    { path: "bin/sh", type: "symlink", perm: 0o777, target: "busybox" },
    { path: "init", type: "file", perm: 0o755, data: initScript },
    ...["dev", "proc", "sys", "tmp", "sbin", "usr/bin", "usr/sbin", "root"].map((
      path,
    ): CpioEntry => ({ path, type: "dir", perm: path === "tmp" ? 0o1777 : 0o755 })),
    ...parseDeviceSpecFile(LINUX_INITRAMFS_DEVICES, "fetch_linux.ts devices"),
  ];
  return await buildInitramfs({ entries, mtime: 0, compress });
}

async function mtime(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).mtime?.getTime() ?? 0;
  } catch {
    return -1;
  }
}

/**
 * Fetches and prepares the cache (see the module doc); a no-op for the parts
 * already there. Returns {@linkcode linuxCache}.
 */
export async function fetchLinux(opts: FetchOptions = {}): Promise<LinuxCache> {
  const dir = opts.dir ?? LINUX_CACHE_DIR;
  const log = opts.log ?? ((s: string) => console.error(s));
  await Deno.mkdir(dir, { recursive: true });
  let c = linuxCache(dir);
  const downloaded = readManifest(dir) !== null &&
    [
      c.vmlinuz,
      c.vmlinux,
      c.busybox,
      c.config,
      ...LINUX_MODULES.map((m) => `${c.modules}/${moduleName(m)}`),
    ].every(exists);
  if (downloaded && !opts.force) {
    log(`fetch-linux: ${dir} already holds kernel ${c.kernelVersion}; nothing to download`);
  } else {
    for (const [cmd, pkg] of [["apt-get", "apt"], ["dpkg-deb", "dpkg"]]) {
      if (!(await have(cmd))) throw new Error(`fetch-linux needs ${cmd} (Debian's ${pkg})`);
    }
    const kernelPkg = await resolveKernelPackage();
    log(`fetch-linux: ${LINUX_PACKAGES.kernel} -> ${kernelPkg}`);
    const tmp = await Deno.makeTempDir({ prefix: "dhyve-fetch-linux-" });
    try {
      log(`fetch-linux: apt-get download ${kernelPkg} ${LINUX_PACKAGES.busybox}`);
      await run("apt-get", ["download", "-q", kernelPkg, LINUX_PACKAGES.busybox], tmp);
      const debs = [...Deno.readDirSync(tmp)].map((d) => d.name).filter((n) => n.endsWith(".deb"));
      const kdeb = debs.find((n) => n.startsWith(kernelPkg + "_"));
      const bdeb = debs.find((n) => n.startsWith(LINUX_PACKAGES.busybox + "_"));
      if (!kdeb || !bdeb) throw new Error(`apt-get download gave ${debs.join(", ") || "nothing"}`);
      for (const deb of [kdeb, bdeb]) {
        log(`fetch-linux: dpkg-deb -x ${deb}`);
        await run("dpkg-deb", ["-x", `${tmp}/${deb}`, `${tmp}/root`]);
      }
      const boot = [...Deno.readDirSync(`${tmp}/root/boot`)].map((d) => d.name);
      const vmlinuzName = boot.find((n) => n.startsWith("vmlinuz-"));
      if (!vmlinuzName) throw new Error(`${kdeb} has no /boot/vmlinuz-*`);
      const version = vmlinuzName.slice("vmlinuz-".length);
      await Deno.copyFile(`${tmp}/root/boot/${vmlinuzName}`, `${dir}/vmlinuz`);
      // (Debian's System.map is a stub: the real one is in the -dbg package.)
      await Deno.copyFile(`${tmp}/root/boot/config-${version}`, `${dir}/config`);
      await Deno.copyFile(`${tmp}/root/bin/busybox`, `${dir}/busybox`);
      await Deno.mkdir(c.modules, { recursive: true });
      for (const m of LINUX_MODULES) {
        await Deno.copyFile(
          `${tmp}/root/lib/modules/${version}/kernel/${m}`,
          `${c.modules}/${moduleName(m)}`,
        );
      }
      await Deno.chmod(`${dir}/busybox`, 0o755);
      const bz = await Deno.readFile(`${dir}/vmlinuz`);
      log(`fetch-linux: extracting vmlinux from ${vmlinuzName}`);
      const { vmlinux, compression } = await extractVmlinux(bz, vmlinuzName, log);
      await Deno.writeFile(`${dir}/vmlinux`, vmlinux);
      const manifest: Manifest = {
        kernelPackage: kdeb.replace(/\.deb$/, ""),
        kernelVersion: version,
        busyboxPackage: bdeb.replace(/\.deb$/, ""),
        compression,
        fetchedAt: new Date().toISOString(),
      };
      // Written last: its presence marks a complete download.
      await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify(manifest, null, 2) + "\n");
      log(
        `fetch-linux: kernel ${version} (${bz.length} bytes, ${compression} payload; vmlinux ${vmlinux.length} bytes), ${manifest.busyboxPackage}`,
      );
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  }
  c = linuxCache(dir);
  const initTime = await mtime(LINUX_INIT_SCRIPT);
  if (initTime < 0) throw new Error(`fetch-linux: the init script ${LINUX_INIT_SCRIPT} is missing`);
  const modulePaths = LINUX_MODULES.map((m) => `${c.modules}/${moduleName(m)}`);
  const inputs = Math.max(
    initTime,
    await mtime(c.busybox),
    ...await Promise.all(modulePaths.map(mtime)),
  );
  const stale = Math.min(await mtime(c.initramfs), await mtime(c.initramfsRaw)) < inputs;
  if (opts.force || stale) {
    const busybox = await Deno.readFile(c.busybox);
    const init = await Deno.readFile(LINUX_INIT_SCRIPT);
    const modules = new Map<string, Uint8Array>();
    for (const m of LINUX_MODULES) {
      modules.set(moduleName(m), await Deno.readFile(`${c.modules}/${moduleName(m)}`));
    }
    for (const [path, compress] of [[c.initramfs, true], [c.initramfsRaw, false]] as const) {
      const image = await buildLinuxInitramfs(busybox, init, compress, modules);
      await Deno.writeFile(path, image);
      log(`fetch-linux: wrote ${path} (${image.length} bytes)`);
    }
  }
  return linuxCache(dir);
}

if (import.meta.main) {
  try {
    const c = await fetchLinux({ force: Deno.args.includes("--force") });
    console.log(JSON.stringify(c, null, 2));
  } catch (e) {
    console.error(`fetch-linux: ${(e as Error).message}`);
    Deno.exit(1);
  }
}

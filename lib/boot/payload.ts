/**
 * Loads the configured boot payload into guest memory: the built-in probe,
 * a raw image, a Multiboot kernel with modules, or a Linux kernel (bzImage
 * or PVH vmlinux) with its initrd.
 *
 * @module
 */
import type { BootConfig } from "../config.ts";
import type { GuestMemory } from "../guest_memory.ts";
import type { E820Entry } from "../layout.ts";
import { isElf } from "./elf.ts";
import type { EntryState } from "./entry.ts";
import {
  type ByteSource,
  bytesSource,
  fileSource,
  InputFileError,
  readRange,
} from "../file_read.ts";
import { showPath } from "../quote.ts";
import {
  type BzImagePlan,
  describeBzImage,
  findRsdp,
  isBzImage,
  LinuxBootError,
  type LinuxNames,
  loadBzImageFrom,
  parseBzImage,
  planBzImage,
} from "./linux.ts";
import {
  findMultibootHeader,
  loadMultiboot,
  loadMultibootFrom,
  MultibootError,
} from "./multiboot.ts";
import { describePvh, loadPvhFrom, planPvh, type PvhPlan, readPvhKernel } from "./pvh.ts";
import { loadRawFrom } from "./raw.ts";

/** How much of a bzImage {@linkcode planLinux} needs: the boot sector and the setup (setup_sects is a u8). */
export const LINUX_HEAD = 256 * 512;

/** The formats a `linux` kernel may have. */
export type LinuxFormat = "bzimage" | "pvh";

/** A Linux boot decided: a {@linkcode BzImagePlan} or a {@linkcode PvhPlan}. */
export type LinuxPlan = BzImagePlan | PvhPlan;

/**
 * Tells a Linux kernel's format from its bytes: a bzImage (the boot
 * protocol's 0xAA55 boot flag and "HdrS" magic, boot.rst) or an ELF image
 * (booted through its PVH note). Throws {@linkcode LinuxBootError} for
 * anything else, naming what the file looks like.
 */
export function detectLinuxFormat(bytes: Uint8Array, what = "kernel"): LinuxFormat {
  if (isBzImage(bytes)) return "bzimage";
  if (isElf(bytes)) return "pvh";
  const magic = [...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
  let hint = "";
  try {
    if (findMultibootHeader(bytes.subarray(0, 8192 + 32))) {
      hint = '; it has a multiboot header: use kind = "multiboot"';
    }
  } catch { /* not multiboot either */ }
  throw new LinuxBootError(
    "kernel",
    `${what}: unknown kernel format (first bytes ${
      magic || "none: the file is empty"
    }): neither a bzImage (0xAA55 and "HdrS" at 0x1fe/0x202) nor an ELF vmlinux${hint}`,
  );
}

/**
 * Decides how a Linux kernel boots in a machine with this e820 map, without
 * touching guest memory: detects the format, checks the setup header or PVH
 * note, the command line length and that kernel and initrd fit below the
 * lowmem end. Throws {@linkcode LinuxBootError} naming the `[boot]` key.
 * For a bzImage, `kernel` may be the file's first {@linkcode LINUX_HEAD}
 * bytes when `fileSize` is the whole size; an ELF kernel must be whole.
 */
export function planLinux(
  kernel: Uint8Array,
  initrdSize: number | undefined,
  cmdline: string,
  e820: readonly E820Entry[],
  names: LinuxNames = {},
  fileSize: number = kernel.length,
): LinuxPlan {
  const what = names.kernel ?? "kernel";
  if (detectLinuxFormat(kernel, what) === "bzimage") {
    return planBzImageHead(kernel, fileSize, initrdSize, cmdline, e820, names);
  }
  return planPvh(readPvhKernel(bytesSource(kernel, what), what), e820, initrdSize, cmdline, names);
}

function planBzImageHead(
  head: Uint8Array,
  fileSize: number,
  initrdSize: number | undefined,
  cmdline: string,
  e820: readonly E820Entry[],
  names: LinuxNames,
): BzImagePlan {
  let bz;
  try {
    bz = parseBzImage(head, names.kernel ?? "kernel", fileSize);
  } catch (e) {
    throw new LinuxBootError("kernel", (e as Error).message);
  }
  return planBzImage(bz, e820, initrdSize, cmdline, names);
}

/**
 * {@linkcode planLinux} for a kernel read from `kernel` (a file, say): only
 * what the plan needs is read, the bzImage's setup or the ELF's headers
 * and notes, whatever the file's size.
 */
export function planLinuxFrom(
  kernel: ByteSource,
  initrdSize: number | undefined,
  cmdline: string,
  e820: readonly E820Entry[],
  names: LinuxNames = {},
): LinuxPlan {
  const what = names.kernel ?? kernel.name;
  const head = readRange(kernel, 0, LINUX_HEAD);
  if (detectLinuxFormat(head, what) === "bzimage") {
    return planBzImageHead(head, kernel.size, initrdSize, cmdline, e820, names);
  }
  return planPvh(readPvhKernel(kernel, what), e820, initrdSize, cmdline, names);
}

/** Lines describing a Linux plan, for logs and `dhyve check`. */
export function describeLinuxPlan(plan: LinuxPlan): string[] {
  return plan.format === "bzimage" ? describeBzImage(plan) : describePvh(plan);
}

/**
 * Loads a Linux kernel (and initrd) from their sources into guest memory
 * per {@linkcode planLinuxFrom} and returns the BSP entry state and the
 * plan. Everything is decided from the sources' sizes and headers first;
 * then only the loaded ranges are read, straight into guest RAM. `rsdp` is
 * the ACPI RSDP's address; when omitted, it is looked up in guest memory
 * (the firmware tables are written before the payload).
 */
export function loadLinuxFrom(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  kernel: ByteSource,
  initrd: ByteSource | undefined,
  cmdline: string,
  options: { readonly rsdp?: number; readonly names?: LinuxNames } = {},
): { entry: EntryState; plan: LinuxPlan } {
  const plan = planLinuxFrom(kernel, initrd?.size, cmdline, e820, options.names);
  const rsdp = options.rsdp ?? findRsdp(mem);
  const entry = plan.format === "bzimage"
    ? loadBzImageFrom(mem, e820, kernel, initrd, cmdline, plan, rsdp)
    : loadPvhFrom(mem, e820, kernel, initrd, cmdline, plan, rsdp);
  return { entry, plan };
}

/** {@linkcode loadLinuxFrom} for a kernel and an initrd held in memory. */
export function loadLinux(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  kernel: Uint8Array,
  initrd: Uint8Array | undefined,
  cmdline: string,
  options: { readonly rsdp?: number; readonly names?: LinuxNames } = {},
): { entry: EntryState; plan: LinuxPlan } {
  const what = options.names?.kernel ?? "kernel";
  return loadLinuxFrom(
    mem,
    e820,
    bytesSource(kernel, what),
    initrd && bytesSource(initrd, options.names?.initrd ?? "initrd"),
    cmdline,
    options,
  );
}

/** A loaded payload: how to enter it, and a line for the log. */
export interface LoadedPayload {
  readonly entry: EntryState;
  readonly description: string;
}

/** The payload cannot be loaded: a bad file, a bad format, or it does not fit. */
export class PayloadError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "PayloadError";
  }
}

/**
 * A boot input file as a {@linkcode ByteSource}: checked with stat (a
 * regular file; a FIFO, a device, a socket or a directory is refused by
 * name before it is opened) and read later only where the loader places
 * it. `key` is the `[boot]` key that names it: every failure, now or when
 * it is read, is a {@linkcode PayloadError} that starts with it.
 */
function payloadFile(path: string, key: string): ByteSource {
  const keyed = (e: unknown): unknown =>
    e instanceof InputFileError ? new PayloadError(`boot.${key}: ${e.message}`) : e;
  let file: ByteSource;
  try {
    file = fileSource(path);
  } catch (e) {
    throw keyed(e);
  }
  return {
    name: file.name,
    size: file.size,
    readInto(offset, into) {
      try {
        file.readInto(offset, into);
      } catch (e) {
        throw keyed(e);
      }
    },
  };
}

/**
 * Runs a loader, saying what it refuses as a {@linkcode PayloadError} that
 * names the `[boot]` key: `boot.kernel: ...`, `boot.modules[1].path: ...`.
 */
function asPayloadError<T>(load: () => T): T {
  try {
    return load();
  } catch (e) {
    if (e instanceof LinuxBootError || e instanceof MultibootError) {
      throw new PayloadError(`boot.${e.key}: ${e.message}`);
    }
    if (e instanceof InputFileError) throw new PayloadError(e.message);
    throw e;
  }
}

const hex = (n: number) => "0x" + n.toString(16);

/**
 * Lines describing where `boot` would go in a machine with this e820 map,
 * for `dhyve check` (only the files' headers are read, guest memory is not
 * touched). A Linux kernel shows its format, entry, load address, initrd
 * and command line placement; failures are {@linkcode PayloadError}s.
 */
export function describePayload(
  boot: BootConfig,
  e820: readonly E820Entry[],
): string[] {
  switch (boot.kind) {
    case "probe":
      return ["built-in probe (a Multiboot kernel)"];
    case "raw":
      return [
        `raw image ${showPath(boot.image)}, ${boot.entry} entry at 0x${
          boot.entryPoint.toString(16)
        }`,
      ];
    case "multiboot":
      return [`multiboot kernel ${showPath(boot.kernel)}, ${boot.modules.length} module(s)`];
    case "linux": {
      const kernel = payloadFile(boot.kernel, "kernel");
      const initrd = boot.initrd === undefined ? undefined : payloadFile(boot.initrd, "initrd");
      const plan = asPayloadError(() =>
        planLinuxFrom(kernel, initrd?.size, boot.cmdline, e820, linuxNames(boot))
      );
      return [`linux kernel ${showPath(boot.kernel)}`, ...describeLinuxPlan(plan)];
    }
  }
}

/** The names Linux boot messages give the kernel and the initrd: their paths, escaped. */
function linuxNames(boot: { readonly kernel: string; readonly initrd?: string }): LinuxNames {
  return {
    kernel: showPath(boot.kernel),
    ...(boot.initrd !== undefined ? { initrd: showPath(boot.initrd) } : {}),
  };
}

/** Where the firmware put things a payload may pass on (ACPI's RSDP, for Linux). */
export interface PayloadFirmware {
  /** The RSDP's guest-physical address; looked up in guest memory when omitted. */
  readonly rsdp?: number;
}

/** Loads `boot` into `mem` and returns the BSP entry state; failures are {@linkcode PayloadError}s. */
export async function loadPayload(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  boot: BootConfig,
  firmware: PayloadFirmware = {},
): Promise<LoadedPayload> {
  try {
    return await load(mem, e820, boot, firmware);
  } catch (e) {
    if (e instanceof PayloadError) throw e;
    throw new PayloadError(`boot payload: ${(e as Error).message}`);
  }
}

async function load(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  boot: BootConfig,
  firmware: PayloadFirmware,
): Promise<LoadedPayload> {
  switch (boot.kind) {
    case "probe": {
      // Imported on demand: other payloads need not parse the embedded image.
      const { probeImage } = await import("./_probe_image.ts");
      const { entry, layout } = loadMultiboot(mem, e820, probeImage(), "", [], "probe");
      return {
        entry,
        description: `built-in probe at ${hex(layout.kernel.start)}-${
          hex(layout.kernel.end)
        }, entry ${hex(layout.kernel.entry)}`,
      };
    }
    case "raw": {
      const image = payloadFile(boot.image, "image");
      const entry = loadRawFrom(
        mem,
        e820,
        image,
        boot.address,
        boot.entry,
        boot.entryPoint,
        boot.image,
      );
      return {
        entry,
        description: `raw image ${showPath(boot.image)} (${image.size} bytes) at ${
          hex(boot.address)
        }, ${boot.entry} entry at ${hex(boot.entryPoint)}`,
      };
    }
    case "multiboot": {
      // Like loadMultibootFiles, with each file's [boot] key in its errors.
      const kernel = payloadFile(boot.kernel, "kernel");
      const modules = boot.modules.map((m, i) => payloadFile(m.path, `modules[${i}].path`));
      const { entry, layout } = asPayloadError(() =>
        loadMultibootFrom(
          mem,
          e820,
          kernel,
          boot.cmdline,
          modules,
          boot.modules.map((m) => m.cmdline),
        )
      );
      return {
        entry,
        description: `multiboot kernel ${showPath(boot.kernel)} at ${hex(layout.kernel.start)}-${
          hex(layout.kernel.end)
        }, ${layout.modules.length} module(s), info at ${hex(layout.info)}`,
      };
    }
    case "linux": {
      const kernel = payloadFile(boot.kernel, "kernel");
      const initrd = boot.initrd === undefined ? undefined : payloadFile(boot.initrd, "initrd");
      const { entry, plan } = asPayloadError(() =>
        loadLinuxFrom(mem, e820, kernel, initrd, boot.cmdline, {
          rsdp: firmware.rsdp,
          names: linuxNames(boot),
        })
      );
      return {
        entry,
        description: `linux kernel ${showPath(boot.kernel)}: ${describeLinuxPlan(plan).join("; ")}`,
      };
    }
  }
}

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
  type BzImagePlan,
  describeBzImage,
  findRsdp,
  isBzImage,
  LinuxBootError,
  type LinuxNames,
  loadBzImage,
  parseBzImage,
  planBzImage,
} from "./linux.ts";
import { findMultibootHeader, loadMultiboot } from "./multiboot.ts";
import { describePvh, loadPvh, parsePvhKernel, planPvh, type PvhPlan } from "./pvh.ts";
import { loadRaw } from "./raw.ts";

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
    let bz;
    try {
      bz = parseBzImage(kernel, what, fileSize);
    } catch (e) {
      throw new LinuxBootError("kernel", (e as Error).message);
    }
    return planBzImage(bz, e820, initrdSize, cmdline, names);
  }
  return planPvh(parsePvhKernel(kernel, what), e820, initrdSize, cmdline, names);
}

/** Lines describing a Linux plan, for logs and `dhyve check`. */
export function describeLinuxPlan(plan: LinuxPlan): string[] {
  return plan.format === "bzimage" ? describeBzImage(plan) : describePvh(plan);
}

/**
 * Loads a Linux kernel (and initrd) into guest memory per {@linkcode planLinux}
 * and returns the BSP entry state and the plan. `rsdp` is the ACPI RSDP's
 * address; when omitted, it is looked up in guest memory (the firmware
 * tables are written before the payload).
 */
export function loadLinux(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  kernel: Uint8Array,
  initrd: Uint8Array | undefined,
  cmdline: string,
  options: { readonly rsdp?: number; readonly names?: LinuxNames } = {},
): { entry: EntryState; plan: LinuxPlan } {
  const plan = planLinux(kernel, initrd?.length, cmdline, e820, options.names);
  const rsdp = options.rsdp ?? findRsdp(mem);
  const entry = plan.format === "bzimage"
    ? loadBzImage(mem, e820, kernel, initrd, cmdline, plan, rsdp)
    : loadPvh(mem, e820, kernel, initrd, cmdline, plan, rsdp);
  return { entry, plan };
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

async function readPayloadFile(path: string, what: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    throw new PayloadError(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

const hex = (n: number) => "0x" + n.toString(16);

/**
 * Lines describing where `boot` would go in a machine with this e820 map,
 * for `dhyve check` (the files are read, guest memory is not touched). A
 * Linux kernel shows its format, entry, load address, initrd and command
 * line placement; failures are {@linkcode PayloadError}s.
 */
export async function describePayload(
  boot: BootConfig,
  e820: readonly E820Entry[],
): Promise<string[]> {
  switch (boot.kind) {
    case "probe":
      return ["built-in probe (a Multiboot kernel)"];
    case "raw":
      return [`raw image ${boot.image}, ${boot.entry} entry at 0x${boot.entryPoint.toString(16)}`];
    case "multiboot":
      return [`multiboot kernel ${boot.kernel}, ${boot.modules.length} module(s)`];
    case "linux": {
      const kernel = await readPayloadFile(boot.kernel, "kernel");
      let initrdSize: number | undefined;
      if (boot.initrd !== undefined) {
        try {
          initrdSize = (await Deno.stat(boot.initrd)).size;
        } catch (e) {
          throw new PayloadError(`cannot read initrd ${boot.initrd}: ${(e as Error).message}`);
        }
      }
      try {
        const plan = planLinux(kernel, initrdSize, boot.cmdline, e820, {
          kernel: boot.kernel,
          initrd: boot.initrd,
        });
        return [`linux kernel ${boot.kernel}`, ...describeLinuxPlan(plan)];
      } catch (e) {
        if (e instanceof LinuxBootError) throw new PayloadError(`boot.${e.key}: ${e.message}`);
        throw e;
      }
    }
  }
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
      const image = await readPayloadFile(boot.image, "raw image");
      const entry = loadRaw(
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
        description: `raw image ${boot.image} (${image.length} bytes) at ${
          hex(boot.address)
        }, ${boot.entry} entry at ${hex(boot.entryPoint)}`,
      };
    }
    case "multiboot": {
      const kernel = await readPayloadFile(boot.kernel, "kernel");
      const modules = await Promise.all(
        boot.modules.map(async (m) => ({
          name: m.path,
          bytes: await readPayloadFile(m.path, "module"),
          cmdline: m.cmdline,
        })),
      );
      const { entry, layout } = loadMultiboot(
        mem,
        e820,
        kernel,
        boot.cmdline,
        modules,
        boot.kernel,
      );
      return {
        entry,
        description: `multiboot kernel ${boot.kernel} at ${hex(layout.kernel.start)}-${
          hex(layout.kernel.end)
        }, ${layout.modules.length} module(s), info at ${hex(layout.info)}`,
      };
    }
    case "linux": {
      const kernel = await readPayloadFile(boot.kernel, "kernel");
      const initrd = boot.initrd === undefined
        ? undefined
        : await readPayloadFile(boot.initrd, "initrd");
      try {
        const { entry, plan } = loadLinux(mem, e820, kernel, initrd, boot.cmdline, {
          rsdp: firmware.rsdp,
          names: { kernel: boot.kernel, initrd: boot.initrd },
        });
        return {
          entry,
          description: `linux kernel ${boot.kernel}: ${describeLinuxPlan(plan).join("; ")}`,
        };
      } catch (e) {
        if (e instanceof LinuxBootError) throw new PayloadError(`boot.${e.key}: ${e.message}`);
        throw e;
      }
    }
  }
}

/**
 * Loads the configured boot payload into guest memory: the built-in probe,
 * a raw image, or a Multiboot kernel with modules.
 *
 * @module
 */
import type { BootConfig } from "../config.ts";
import type { GuestMemory } from "../guest_memory.ts";
import type { E820Entry } from "../layout.ts";
import type { EntryState } from "./entry.ts";
import { loadMultiboot } from "./multiboot.ts";
import { loadRaw } from "./raw.ts";

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

/** Loads `boot` into `mem` and returns the BSP entry state; failures are {@linkcode PayloadError}s. */
export async function loadPayload(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  boot: BootConfig,
): Promise<LoadedPayload> {
  try {
    return await load(mem, e820, boot);
  } catch (e) {
    if (e instanceof PayloadError) throw e;
    throw new PayloadError(`boot payload: ${(e as Error).message}`);
  }
}

async function load(
  mem: GuestMemory,
  e820: readonly E820Entry[],
  boot: BootConfig,
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
  }
}

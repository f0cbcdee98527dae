/**
 * The virtio device types by `[[pci]]` type: the {@linkcode VirtioDeviceModel}
 * each thread builds from the plain-data options in the device spec.
 *
 * @module
 */
import type { VirtioDeviceModel } from "./types.ts";
import { virtioBlkModel } from "./blk.ts";
import { virtioNetModel } from "./net.ts";
import { virtioConsoleModel } from "./console.ts";
import { virtioRngModel } from "./rng.ts";

/** The model of virtio type `type` with its spec options. */
export function virtioModel(
  type: string,
  options: Readonly<Record<string, unknown>>,
): VirtioDeviceModel {
  switch (type) {
    case "virtio-blk":
      return virtioBlkModel({
        size: options.size as number,
        readonly: options.readonly as boolean,
        serial: options.serial as string,
        discard: options.discard as boolean,
      });
    case "virtio-net":
      return virtioNetModel({ mac: Uint8Array.from(options.mac as number[]) });
    case "virtio-console":
      return virtioConsoleModel({});
    case "virtio-rng":
      return virtioRngModel();
  }
  throw new Error(`unknown virtio type ${type}`);
}

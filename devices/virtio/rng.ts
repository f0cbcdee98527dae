/**
 * virtio-rng, the entropy device (virtio 1.2 §5.4): the driver makes
 * device-writable buffers available on its one queue (requestq, §5.4.2) and
 * the device fills them with random bytes. No feature bits (§5.4.3), no
 * device configuration (§5.4.4).
 *
 * The randomness comes from an injected {@linkcode RandomSource} (the host
 * side, getrandom(2), lives in lib/virtio/).
 *
 * Decisions:
 * - Each chain gets min(writable length, {@linkcode VIRTIO_RNG_MAX_CHAIN_BYTES})
 *   bytes: §5.4.6.2 lets the device use less than the whole buffer, and the
 *   cap bounds the work a guest can ask for with one chain. The source is
 *   asked for at most {@linkcode RANDOM_SOURCE_MAX_FILL} bytes a call.
 * - Device-readable buffers (§5.4.6.1: the driver MUST NOT add them) are
 *   ignored; a chain with nothing writable comes back with used len 0.
 * - If the source fails, the chain comes back with used len 0 (no byte is
 *   claimed to be random) and the failure is logged.
 *
 * @module
 */
import { ChainWriter, serveAvailable, type SplitQueue } from "./queue.ts";
import {
  type DescriptorChain,
  errorText,
  VIRTIO_ID,
  type VirtioDeviceModel,
  type VirtioQueueContext,
  type VirtioQueueHandler,
} from "./types.ts";

/** The request queue's maximum size. */
export const VIRTIO_RNG_QUEUE_SIZE = 256;
/** The most bytes one chain receives (64 KiB). */
export const VIRTIO_RNG_MAX_CHAIN_BYTES = 65536;
/** The most bytes asked of {@linkcode RandomSource.fill} in one call (getrandom's usual bound). */
export const RANDOM_SOURCE_MAX_FILL = 65536;
/** PCI class: unclassified device, subclass 0xff, as QEMU's virtio-rng-pci (PCI_CLASS_OTHERS). */
export const VIRTIO_RNG_PCI_CLASS = 0x00ff00;

/** Where random bytes come from (the host's getrandom(2), or a fake in tests). */
export interface RandomSource {
  /**
   * Fills all of `dst` (at most {@linkcode RANDOM_SOURCE_MAX_FILL} bytes)
   * with random bytes. `dst` may be a live view of guest RAM: keep no
   * reference to it. May throw; the handler then returns nothing.
   */
  fill(dst: Uint8Array): void;
}

/**
 * The virtio-rng device model: device ID 4, one queue of
 * {@linkcode VIRTIO_RNG_QUEUE_SIZE}, no device features, no configuration.
 */
export function virtioRngModel(): VirtioDeviceModel {
  return {
    deviceId: VIRTIO_ID.rng,
    pciClass: VIRTIO_RNG_PCI_CLASS,
    features: 0n, // §5.4.3: none.
    queueSizes: [VIRTIO_RNG_QUEUE_SIZE],
    configSize: 0, // §5.4.4: none.
    initConfig(_config: Uint8Array): void {},
  };
}

/**
 * The request handler of a virtio-rng device: fills the buffers of queue 0
 * (`queues[0]`; null: not enabled, notifications are ignored). Throws
 * {@linkcode VirtqueueError} from `notify` on a malformed ring.
 */
export function createRngHandler(
  ctx: VirtioQueueContext,
  queues: readonly (SplitQueue | null)[],
  source: RandomSource,
): VirtioQueueHandler {
  /** Fills one chain; returns the used length. */
  function serve(chain: DescriptorChain): number {
    const writer = new ChainWriter(ctx.memory, chain);
    const views = writer.views(Math.min(chain.writableLength, VIRTIO_RNG_MAX_CHAIN_BYTES));
    try {
      for (const v of views) {
        for (let at = 0; at < v.length; at += RANDOM_SOURCE_MAX_FILL) {
          source.fill(v.subarray(at, at + RANDOM_SOURCE_MAX_FILL));
        }
      }
    } catch (e) {
      ctx.log(`virtio-rng: the random source failed: ${errorText(e)}`);
      return 0;
    }
    return writer.written;
  }

  return {
    notify(q: number): void {
      const queue = q === 0 ? queues[0] : null;
      if (!queue) return;
      serveAvailable(queue, serve, () => ctx.interrupt(q));
    },
  };
}

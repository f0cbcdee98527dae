/**
 * The contract between dhyve's virtio pieces (virtio 1.2, OASIS, 2022):
 *
 * - `queue.ts`: split virtqueues over guest RAM (§2.7), every descriptor
 *   checked, and chain readers/writers;
 * - `pci.ts`: the modern virtio-over-PCI transport (§4.1), written once: a
 *   {@linkcode PciFunction} whose state is shared by every thread;
 * - one file per device (`blk.ts`, `net.ts`, `console.ts`, `rng.ts`): a
 *   {@linkcode VirtioDeviceModel} (what the transport shows the driver) and
 *   a {@linkcode VirtioQueueHandler} (the work, in the device's I/O worker);
 * - `lib/virtio/`: the host side (backends, the I/O worker, ioeventfd).
 *
 * Threads: vCPU threads run the transport's register accesses (common
 * configuration, ISR, device configuration, MSI-X table) under the VM's
 * device lock. A notify write reaches the device's I/O worker through an
 * eventfd (KVM's ioeventfd, or the vCPU thread writing it). The I/O worker
 * alone walks the queues; it takes the device lock only to read the queue
 * registers and to raise interrupts, never around backend I/O.
 *
 * Nothing here touches `Deno.*` or FFI: backends are injected.
 *
 * @module
 */
import type { GuestMemory } from "../../lib/guest_memory.ts";

// ---------------------------------------------------------------------------
// Constants (virtio 1.2).

/** PCI vendor ID of every virtio device (§4.1.2). */
export const VIRTIO_PCI_VENDOR_ID = 0x1af4;
/** Modern PCI device IDs are 0x1040 + the virtio device ID (§4.1.2.1). */
export const VIRTIO_PCI_DEVICE_ID_BASE = 0x1040;
/** PCI revision ID of a modern-only device: 1 or more (§4.1.2.1). */
export const VIRTIO_PCI_REVISION = 1;

/** Virtio device IDs (§5). */
export const VIRTIO_ID = { net: 1, block: 2, console: 3, rng: 4 } as const;

/** Device status bits (§2.1). */
export const VIRTIO_STATUS = {
  acknowledge: 1,
  driver: 2,
  driverOk: 4,
  featuresOk: 8,
  deviceNeedsReset: 0x40,
  failed: 0x80,
} as const;

/** Reserved feature bits (§6), as bit numbers. */
export const VIRTIO_F = {
  /** §6: descriptors may point to indirect tables (§2.7.5.3). */
  ringIndirectDesc: 28,
  /** §6: used_event / avail_event (§2.7.7, §2.7.10). */
  ringEventIdx: 29,
  /** §6: compliance with this specification (modern interface). */
  version1: 32,
  /** §6: the device sits behind an IOMMU. dhyve never offers it and refuses it. */
  accessPlatform: 33,
} as const;

/** The message of any thrown value (a backend may throw anything), for device logs. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A feature bit number as a mask. */
export function featureBit(bit: number): bigint {
  return 1n << BigInt(bit);
}

/** Descriptor flags (§2.7.5). */
export const VIRTQ_DESC_F = { next: 1, write: 2, indirect: 4 } as const;
/** Avail ring flag: the driver does not want interrupts (§2.7.6). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** Used ring flag: the device does not want notifications (§2.7.8). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;
/** The largest queue size a split virtqueue may have (§2.7). */
export const VIRTQ_MAX_SIZE = 32768;

/** ISR status bits (§4.1.4.5). */
export const VIRTIO_ISR = { queue: 1, config: 2 } as const;
/** "No vector" in msix_config / queue_msix_vector (§4.1.5.1.2). */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

// ---------------------------------------------------------------------------
// Queues.

/** Where one split virtqueue lives, as the driver configured it (§4.1.4.3). */
export interface QueueLayout {
  /** Queue size (a power of two, 1..32768). */
  readonly size: number;
  /** Descriptor table address. */
  readonly desc: number;
  /** Driver area (available ring) address. */
  readonly avail: number;
  /** Device area (used ring) address. */
  readonly used: number;
  /** Whether VIRTIO_F_RING_EVENT_IDX was negotiated. */
  readonly eventIdx: boolean;
  /** Whether VIRTIO_F_RING_INDIRECT_DESC was negotiated. */
  readonly indirect: boolean;
}

/** A contiguous guest buffer of a chain (already checked to be inside RAM). */
export interface Segment {
  readonly gpa: number;
  readonly len: number;
}

/** One available descriptor chain, flattened (indirect tables expanded). */
export interface DescriptorChain {
  /** The head descriptor index (what goes into the used ring). */
  readonly head: number;
  /** Device-readable buffers, in order (they all precede the writable ones, §2.7.4.2). */
  readonly readable: readonly Segment[];
  /** Device-writable buffers, in order. */
  readonly writable: readonly Segment[];
  /** Sum of the readable lengths. */
  readonly readableLength: number;
  /** Sum of the writable lengths. */
  readonly writableLength: number;
}

/**
 * A malformed ring: the device must set DEVICE_NEEDS_RESET (§2.1.2) and
 * stop using the queue. The message says what was wrong, for the log.
 */
export class VirtqueueError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "VirtqueueError";
  }
}

/** The guest memory a queue uses: {@linkcode GuestMemory}, or a fake in tests. */
export type QueueMemory = Pick<
  GuestMemory,
  | "contains"
  | "slice"
  | "readU16"
  | "readU32"
  | "readU64"
  | "writeU16"
  | "writeU32"
>;

// ---------------------------------------------------------------------------
// Devices.

/**
 * What the transport shows the driver for one device type: the static
 * description (the same in every thread).
 */
export interface VirtioDeviceModel {
  /** The virtio device ID ({@linkcode VIRTIO_ID}). */
  readonly deviceId: number;
  /** The PCI class code (class << 16 | subclass << 8 | prog-if). */
  readonly pciClass: number;
  /**
   * The device's feature bits: device-specific ones (0-23) and any reserved
   * ones it supports beyond what the transport adds itself (VERSION_1,
   * RING_INDIRECT_DESC, RING_EVENT_IDX).
   */
  readonly features: bigint;
  /** The maximum size of each queue (the length is the number of queues). */
  readonly queueSizes: readonly number[];
  /** Bytes of device-specific configuration (§4.1.4.6), at most 256. */
  readonly configSize: number;
  /** Writes the power-on device configuration into `config` (configSize bytes). */
  initConfig(config: Uint8Array): void;
  /**
   * A driver write into the device configuration (after the bytes were
   * stored when `writable` says so). Absent: the configuration is read-only
   * and writes are dropped.
   */
  configWritable?(offset: number, size: number): boolean;
}

/** What the transport gives a queue handler in the I/O worker. */
export interface VirtioQueueContext {
  /** Guest RAM. */
  readonly memory: QueueMemory;
  /** The negotiated features (FEATURES_OK was accepted). */
  readonly features: bigint;
  /** The device configuration bytes (shared; read under the device lock). */
  readonly config: Uint8Array;
  /**
   * Tells the driver that queue `q` has used buffers: the transport raises
   * the queue's MSI-X vector or the INTx line with ISR bit 0, unless the
   * queue suppressed it (the handler asks the queue, see `SplitQueue`).
   */
  interrupt(q: number): void;
  /** The device configuration changed (ISR bit 1, the config vector). */
  configChanged(): void;
  /** Logs one message for this device (rate-limited by the caller). */
  log(message: string): void;
}

/**
 * The work of one device, in its I/O worker: created at DRIVER_OK with the
 * enabled queues, dropped at device reset.
 */
export interface VirtioQueueHandler {
  /**
   * Queue `q` was notified (or is worth a look): pop and serve what is
   * available. Throws {@linkcode VirtqueueError} on a malformed ring; the
   * transport then sets DEVICE_NEEDS_RESET and stops calling.
   */
  notify(q: number): void;
  /** Host file descriptors whose readiness (POLLIN) the worker should wait for. */
  pollFds?(): readonly number[];
  /**
   * Host file descriptors whose writability (POLLOUT) the worker should wait
   * for: a backend that took only part of the output, while the handler
   * holds the rest. Empty when nothing is held (POLLOUT is level-triggered).
   */
  pollWritableFds?(): readonly number[];
  /** One of {@linkcode VirtioQueueHandler.pollFds} is readable, or one of the writable ones writable. */
  ready?(fd: number): void;
  /** The device is being reset or the VM stops: drop in-flight work. */
  close?(): void;
}

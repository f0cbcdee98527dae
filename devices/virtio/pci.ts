/**
 * The modern virtio-over-PCI transport (virtio 1.2 §4.1), written once: a
 * {@linkcode VirtioPciFunction} shows any {@linkcode VirtioDeviceModel} to
 * the driver as a PCI function.
 *
 * - IDs 1af4:(1040 + device ID), revision 1, subsystem 1af4:(1040 + device
 *   ID), the model's class code (§4.1.2.1: a modern-only device).
 * - BAR0: 16 KiB of 32-bit memory holding the virtio structures: common
 *   configuration at 0x0000 (§4.1.4.3), ISR status at 0x1000 (§4.1.4.5),
 *   device configuration at 0x2000 (§4.1.4.6, absent when the model has
 *   none) and the notification words at 0x3000 (§4.1.4.4: multiplier 4,
 *   queue q notifies at 0x3000 + 4q).
 * - BAR1: 4 KiB of 32-bit memory holding the MSI-X table at 0x000 and the
 *   PBA at 0x800, with one vector per queue plus one for configuration
 *   changes.
 * - Capabilities: MSI-X, then one vendor-specific capability (§4.1.4) per
 *   structure (common, notify, ISR, device) and the PCI configuration access
 *   capability (§4.1.4.8), a window onto the BARs through configuration
 *   space.
 *
 * Threads: every register lives in one shared state layout
 * ({@linkcode virtioPciState}) that the vCPU threads and the device's I/O
 * worker bind, under the VM's device lock. The vCPU side runs the register
 * accesses; the I/O worker reads the negotiated setup
 * ({@linkcode VirtioPciFunction.queueLayout}), raises interrupts and
 * finishes device resets ({@linkcode VirtioPciFunction.completeReset}), so a
 * reset never pulls the rings from under a request in flight.
 *
 * Decisions where the spec leaves room:
 * - Accesses of any width or alignment are served byte by byte: a read
 *   returns the bytes of the registers it covers, a write changes the
 *   registers it covers (merged with their other bytes). Nothing throws.
 * - While a reset is pending, common configuration writes other than
 *   another 0 to device_status are dropped (§2.4: the driver must wait).
 * - driver_feature writes after FEATURES_OK are dropped (§3.1.1 step 5: the
 *   driver "MUST NOT accept new feature bits after this step").
 * - queue_size, queue_desc, queue_driver and queue_device writes to an
 *   enabled queue are dropped (§4.1.4.3.2: configure, then enable); a
 *   queue_size that is not a power of two in 1..max is dropped (§2.7).
 * - Interrupts for configuration changes are sent only after DRIVER_OK
 *   (§2.1.2, and Linux ignores earlier ones); the generation moves anyway.
 * - A virtio reset keeps the device configuration bytes (a disk's capacity,
 *   a MAC address); a PCI reset ({@linkcode VirtioPciFunction.reset})
 *   rewrites them from the model.
 *
 * Section numbers refer to virtio 1.2 (OASIS, 2022) unless they name PCI.
 *
 * @module
 */
import type { AccessSize } from "../device.ts";
import { defineState, type StateLayout, type StateOf } from "../state.ts";
import {
  barOffset,
  buildConfigTemplate,
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  type PciBarSpec,
  type PciCapabilitySpec,
  type PciConfigTemplate,
} from "../pci/config.ts";
import {
  intxHeader,
  PCI_FUNCTION_FIELDS,
  PciFunction,
  type PciFunctionDeps,
} from "../pci/function.ts";
import { msixCapability, msixFields } from "../pci/msi.ts";
import {
  featureBit,
  type QueueLayout,
  VIRTIO_F,
  VIRTIO_ID,
  VIRTIO_ISR,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_DEVICE_ID_BASE,
  VIRTIO_PCI_REVISION,
  VIRTIO_PCI_VENDOR_ID,
  VIRTIO_STATUS,
  type VirtioDeviceModel,
  VIRTQ_MAX_SIZE,
} from "./types.ts";

// ---------------------------------------------------------------------------
// Capabilities (§4.1.4).

/** PCI capability ID of a vendor-specific capability (PCI 3.0 appendix H), used by every virtio structure. */
export const PCI_CAP_ID_VNDR = 0x09;

/** virtio_pci_cap.cfg_type values (§4.1.4). */
export const VIRTIO_PCI_CAP = {
  /** Common configuration (§4.1.4.3). */
  common: 1,
  /** Notifications (§4.1.4.4). */
  notify: 2,
  /** ISR status (§4.1.4.5). */
  isr: 3,
  /** Device-specific configuration (§4.1.4.6). */
  device: 4,
  /** PCI configuration access (§4.1.4.8). */
  pci: 5,
} as const;

/** virtio_pci_cap field offsets, relative to the capability (§4.1.4). */
export const VIRTIO_PCI_CAP_FIELD = {
  /** cap_len (u8): the capability's length. */
  capLen: 2,
  /** cfg_type (u8). */
  cfgType: 3,
  /** bar (u8): the BAR holding the structure. */
  bar: 4,
  /** id (u8): tells apart capabilities of the same type (shared memory only; 0 here). */
  id: 5,
  /** offset (le32) of the structure in the BAR. */
  offset: 8,
  /** length (le32) of the structure. */
  length: 12,
  /** virtio_pci_notify_cap.notify_off_multiplier (le32, §4.1.4.4). */
  notifyOffMultiplier: 16,
  /** virtio_pci_cfg_cap.pci_cfg_data (u8[4], §4.1.4.8). */
  pciCfgData: 16,
} as const;

/** Bytes of a virtio_pci_cap (§4.1.4). */
export const VIRTIO_PCI_CAP_LENGTH = 16;
/** Bytes of a virtio_pci_notify_cap (§4.1.4.4). */
export const VIRTIO_PCI_NOTIFY_CAP_LENGTH = 20;
/** Bytes of a virtio_pci_cfg_cap (§4.1.4.8). */
export const VIRTIO_PCI_CFG_CAP_LENGTH = 20;

// ---------------------------------------------------------------------------
// BARs.

/** The BAR holding the virtio structures. */
export const VIRTIO_PCI_BAR = 0;
/** Bytes of BAR0. */
export const VIRTIO_PCI_BAR_SIZE = 0x4000;
/** Offset of the common configuration in BAR0. */
export const VIRTIO_PCI_COMMON_OFFSET = 0x0000;
/** Offset of the ISR status byte in BAR0. */
export const VIRTIO_PCI_ISR_OFFSET = 0x1000;
/** Offset of the device-specific configuration in BAR0. */
export const VIRTIO_PCI_DEVICE_OFFSET = 0x2000;
/** Offset of the notification words in BAR0. */
export const VIRTIO_PCI_NOTIFY_OFFSET = 0x3000;
/** Bytes each structure's region spans in BAR0. */
export const VIRTIO_PCI_REGION_SIZE = 0x1000;
/** notify_off_multiplier: queue q's word is at 4 * queue_notify_off = 4q (§4.1.4.4). */
export const VIRTIO_PCI_NOTIFY_MULTIPLIER = 4;
/** Bytes the ISR capability describes (one status byte, §4.1.4.5). */
export const VIRTIO_PCI_ISR_LENGTH = 1;
/** The BAR holding the MSI-X table and PBA. */
export const VIRTIO_PCI_MSIX_BAR = 1;
/** Bytes of BAR1. */
export const VIRTIO_PCI_MSIX_BAR_SIZE = 0x1000;
/** MSI-X table offset in BAR1. */
export const VIRTIO_PCI_MSIX_TABLE = 0x000;
/** MSI-X PBA offset in BAR1. */
export const VIRTIO_PCI_MSIX_PBA = 0x800;
/** Most queues a function may have: the MSI-X table (16 bytes a vector) must end below the PBA. */
export const VIRTIO_PCI_MAX_QUEUES = VIRTIO_PCI_MSIX_PBA / 16 - 1;
/** Most bytes of device-specific configuration (the state holds 256). */
export const VIRTIO_PCI_MAX_CONFIG = 256;

// ---------------------------------------------------------------------------
// Common configuration (§4.1.4.3, struct virtio_pci_common_cfg).

/** Register offsets of the common configuration structure (§4.1.4.3). */
export const VIRTIO_PCI_COMMON = {
  /** le32 RW: which 32 feature bits device_feature shows (0: 0-31, 1: 32-63). */
  deviceFeatureSelect: 0x00,
  /** le32 RO: the device's feature bits, the selected 32. */
  deviceFeature: 0x04,
  /** le32 RW: which 32 feature bits driver_feature shows. */
  driverFeatureSelect: 0x08,
  /** le32 RW: the driver's accepted feature bits, the selected 32. */
  driverFeature: 0x0c,
  /** le16 RW: the MSI-X vector of configuration changes. */
  configMsixVector: 0x10,
  /** le16 RO: the number of queues. */
  numQueues: 0x12,
  /** u8 RW: device status (§2.1). */
  deviceStatus: 0x14,
  /** u8 RO: configuration atomicity value (§2.5, §4.1.4.3). */
  configGeneration: 0x15,
  /** le16 RW: the queue the queue_* registers show. */
  queueSelect: 0x16,
  /** le16 RW: the selected queue's size (the maximum at reset, 0: no such queue). */
  queueSize: 0x18,
  /** le16 RW: the selected queue's MSI-X vector. */
  queueMsixVector: 0x1a,
  /** le16 RW: 1 enables the selected queue. */
  queueEnable: 0x1c,
  /** le16 RO: the selected queue's notification word, in multipliers. */
  queueNotifyOff: 0x1e,
  /** le64 RW: descriptor table address (two le32 halves, low first). */
  queueDesc: 0x20,
  /** le64 RW: driver area (available ring) address. */
  queueDriver: 0x28,
  /** le64 RW: device area (used ring) address. */
  queueDevice: 0x30,
  /** le16 RO: only with VIRTIO_F_NOTIF_CONFIG_DATA (not offered): reads 0. */
  queueNotifyData: 0x38,
  /** le16 RW: only with VIRTIO_F_RING_RESET (not offered): reads 0. */
  queueReset: 0x3a,
} as const;

/** Bytes of the common configuration structure (virtio 1.2, with queue_notify_data and queue_reset). */
export const VIRTIO_PCI_COMMON_LENGTH = 0x3c;

/**
 * The registers by first byte, with their widths: the 64-bit addresses are
 * two 32-bit halves, so 32-bit and 64-bit accesses both work (§4.1.3.1).
 */
const COMMON_FIELDS: readonly (readonly [number, number])[] = [
  [0x00, 4],
  [0x04, 4],
  [0x08, 4],
  [0x0c, 4],
  [0x10, 2],
  [0x12, 2],
  [0x14, 1],
  [0x15, 1],
  [0x16, 2],
  [0x18, 2],
  [0x1a, 2],
  [0x1c, 2],
  [0x1e, 2],
  [0x20, 4],
  [0x24, 4],
  [0x28, 4],
  [0x2c, 4],
  [0x30, 4],
  [0x34, 4],
  [0x38, 2],
  [0x3a, 2],
];

/** For each byte of the structure, the offset of the register holding it. */
const FIELD_START = new Uint8Array(VIRTIO_PCI_COMMON_LENGTH);
/** For each register's first byte, its width. */
const FIELD_WIDTH = new Uint8Array(VIRTIO_PCI_COMMON_LENGTH);
for (const [at, width] of COMMON_FIELDS) {
  FIELD_WIDTH[at] = width;
  for (let i = 0; i < width; i++) FIELD_START[at + i] = at;
}

/** The feature bits the transport itself adds to every model's (§6). */
export const VIRTIO_PCI_TRANSPORT_FEATURES: bigint = featureBit(VIRTIO_F.version1) |
  featureBit(VIRTIO_F.ringIndirectDesc) | featureBit(VIRTIO_F.ringEventIdx);

const FEATURE_MASK_64 = (1n << 64n) - 1n;

/**
 * The feature bits a function offers for `model`: the model's, plus
 * VERSION_1, RING_INDIRECT_DESC and RING_EVENT_IDX, never ACCESS_PLATFORM
 * (dhyve has no IOMMU, §6).
 */
export function virtioOfferedFeatures(model: VirtioDeviceModel): bigint {
  return (model.features | VIRTIO_PCI_TRANSPORT_FEATURES) & FEATURE_MASK_64 &
    ~featureBit(VIRTIO_F.accessPlatform);
}

// ---------------------------------------------------------------------------
// State.

/** The field specifications of {@linkcode virtioPciFields} (its literal, spelled out as a type). */
export type VirtioPciFields =
  & typeof PCI_FUNCTION_FIELDS
  & ReturnType<typeof msixFields>
  & {
    readonly deviceFeatureSelect: "u32";
    readonly driverFeatureSelect: "u32";
    readonly driverFeatures: readonly ["u32", number];
    readonly configMsixVector: "u16";
    readonly deviceStatus: "u8";
    readonly configGeneration: "u8";
    readonly queueSelect: "u16";
    readonly queueSize: readonly ["u16", number];
    readonly queueMsixVector: readonly ["u16", number];
    readonly queueEnable: readonly ["u8", number];
    readonly queueDesc: readonly ["u32", number];
    readonly queueDriver: readonly ["u32", number];
    readonly queueDevice: readonly ["u32", number];
    readonly isr: "u8";
    readonly deviceConfig: readonly ["u8", number];
    readonly resetPending: "bool";
    readonly resetGeneration: "u32";
    readonly needsReset: "bool";
    readonly statBarAccesses: "f64";
    readonly statKicks: "f64";
    readonly statInterrupts: "f64";
  };

/** The fields of a function with `queues` queues (see {@linkcode virtioPciState}). */
function virtioPciFields(queues: number): VirtioPciFields {
  const n = Math.max(1, queues);
  return {
    ...PCI_FUNCTION_FIELDS,
    ...msixFields(queues + 1),
    /** device_feature_select. */
    deviceFeatureSelect: "u32",
    /** driver_feature_select. */
    driverFeatureSelect: "u32",
    /** The driver's feature bits: [0] bits 0-31, [1] bits 32-63. */
    driverFeatures: ["u32", 2],
    /** config_msix_vector. */
    configMsixVector: "u16",
    /** device_status as the driver wrote it (DEVICE_NEEDS_RESET lives in needsReset). */
    deviceStatus: "u8",
    /** config_generation. */
    configGeneration: "u8",
    /** queue_select. */
    queueSelect: "u16",
    /** queue_size, per queue. */
    queueSize: ["u16", n],
    /** queue_msix_vector, per queue. */
    queueMsixVector: ["u16", n],
    /** queue_enable, per queue. */
    queueEnable: ["u8", n],
    /** queue_desc, per queue: [2q] low half, [2q + 1] high half. */
    queueDesc: ["u32", 2 * n],
    /** queue_driver, per queue, as queueDesc. */
    queueDriver: ["u32", 2 * n],
    /** queue_device, per queue, as queueDesc. */
    queueDevice: ["u32", 2 * n],
    /** The ISR status byte (§4.1.4.5). */
    isr: "u8",
    /** The device-specific configuration bytes (§4.1.4.6). */
    deviceConfig: ["u8", VIRTIO_PCI_MAX_CONFIG],
    /** The driver wrote 0 to device_status; the I/O worker has not reset the device yet. */
    resetPending: "bool",
    /** Counts completed resets (virtio and PCI), so the I/O worker notices each one. */
    resetGeneration: "u32",
    /** DEVICE_NEEDS_RESET (§2.1.2). */
    needsReset: "bool",
    /** Statistics (kept across resets): BAR accesses that reached dhyve (each a vCPU exit). */
    statBarAccesses: "f64",
    /** ... of which notifications (what KVM's ioeventfd would have taken). */
    statKicks: "f64",
    /** Interrupts raised (MSI-X messages sent or pended, INTx assertions). */
    statInterrupts: "f64",
  } as const;
}

/** A bound virtio PCI function state. */
export type VirtioPciRegisters = StateOf<VirtioPciFields>;

const layouts = new Map<string, StateLayout<VirtioPciFields>>();

/**
 * The state layout of a virtio function showing `model` (only its device ID
 * and queue count matter): the PCI function fields, the MSI-X table and PBA
 * of queues + 1 vectors, and every virtio register. The same layout is bound
 * by every thread; nothing that matters lives outside it.
 */
export function virtioPciState(model: VirtioDeviceModel): StateLayout<VirtioPciFields> {
  const n = model.queueSizes.length;
  const key = `${model.deviceId}:${n}`;
  let layout = layouts.get(key);
  if (!layout) {
    layout = defineState(`virtio-pci-${deviceName(model.deviceId)}`, 1, virtioPciFields(n));
    layouts.set(key, layout);
  }
  return layout;
}

// ---------------------------------------------------------------------------
// The function.

/** What a virtio function is given, beyond a PCI function's MSI sink and INTx wiring. */
export interface VirtioPciDeps extends PciFunctionDeps {
  /** Queue `q` was notified (§4.1.5.2): signal the device's I/O worker. */
  kick(q: number): void;
  /**
   * Wake the I/O worker: a reset is pending or DRIVER_OK changed. Without
   * it, a reset completes at once on the writing thread.
   */
  wake?(): void;
  /** The notification words moved (BAR0 or memory decoding changed): re-read {@linkcode VirtioPciFunction.notifyAddress}. */
  notifyMoved?(): void;
  /** Logs one message for this function. */
  log?(message: string): void;
}

/** The VIRTIO_ID key of `id`, or the number. */
function deviceName(id: number): string {
  return Object.entries(VIRTIO_ID).find(([, v]) => v === id)?.[0] ?? String(id);
}

const isPowerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0;

/** Checks a model; throws naming what is wrong. */
function checkModel(model: VirtioDeviceModel): void {
  const what = `virtio device ${model.deviceId}`;
  const n = model.queueSizes.length;
  if (n < 1 || n > VIRTIO_PCI_MAX_QUEUES) {
    throw new Error(`${what}: ${n} queues (must be 1-${VIRTIO_PCI_MAX_QUEUES})`);
  }
  model.queueSizes.forEach((size, q) => {
    // §2.7: a split queue's size is a power of two, at most 32768.
    if (!Number.isInteger(size) || !isPowerOfTwo(size) || size > VIRTQ_MAX_SIZE) {
      throw new Error(`${what}: queue ${q} size ${size} (a power of two, 1-${VIRTQ_MAX_SIZE})`);
    }
  });
  const c = model.configSize;
  if (!Number.isInteger(c) || c < 0 || c > VIRTIO_PCI_MAX_CONFIG) {
    throw new Error(`${what}: config size ${c} (must be 0-${VIRTIO_PCI_MAX_CONFIG})`);
  }
}

/** A virtio structure capability (§4.1.4); `multiplier` makes it a notify capability. */
function structureCap(
  cfgType: number,
  offset: number,
  length: number,
  multiplier?: number,
): PciCapabilitySpec {
  const F = VIRTIO_PCI_CAP_FIELD;
  const capLength = multiplier === undefined ? VIRTIO_PCI_CAP_LENGTH : VIRTIO_PCI_NOTIFY_CAP_LENGTH;
  return {
    id: PCI_CAP_ID_VNDR,
    length: capLength,
    init(cap) {
      cap.value(F.capLen, 1, capLength);
      cap.value(F.cfgType, 1, cfgType);
      cap.value(F.bar, 1, VIRTIO_PCI_BAR);
      cap.value(F.offset, 4, offset);
      cap.value(F.length, 4, length);
      if (multiplier !== undefined) cap.value(F.notifyOffMultiplier, 4, multiplier);
    },
  };
}

/** The PCI configuration access capability (§4.1.4.8): bar, offset, length and data are R/W. */
function pciCfgCap(): PciCapabilitySpec {
  const F = VIRTIO_PCI_CAP_FIELD;
  return {
    id: PCI_CAP_ID_VNDR,
    length: VIRTIO_PCI_CFG_CAP_LENGTH,
    init(cap) {
      cap.value(F.capLen, 1, VIRTIO_PCI_CFG_CAP_LENGTH);
      cap.value(F.cfgType, 1, VIRTIO_PCI_CAP.pci);
      cap.writable(F.bar, 1, 0xff);
      cap.writable(F.offset, 4, 0xffffffff);
      cap.writable(F.length, 4, 0xffffffff);
      cap.writable(F.pciCfgData, 4, 0xffffffff);
    },
  };
}

/** The function's configuration space (§4.1.2, §4.1.4). The PCI cfg capability comes last. */
function template(model: VirtioDeviceModel, deps: PciFunctionDeps): PciConfigTemplate {
  checkModel(model);
  const n = model.queueSizes.length;
  const id = VIRTIO_PCI_DEVICE_ID_BASE + model.deviceId;
  return buildConfigTemplate({
    vendorId: VIRTIO_PCI_VENDOR_ID,
    deviceId: id,
    revisionId: VIRTIO_PCI_REVISION,
    classCode: model.pciClass,
    // §4.1.2.1: the subsystem IDs are informational; mirror the IDs.
    subsystemVendorId: VIRTIO_PCI_VENDOR_ID,
    subsystemId: id,
    ...intxHeader(deps.intx),
    bars: [
      { index: VIRTIO_PCI_BAR, kind: "mem32", size: VIRTIO_PCI_BAR_SIZE },
      { index: VIRTIO_PCI_MSIX_BAR, kind: "mem32", size: VIRTIO_PCI_MSIX_BAR_SIZE },
    ],
    capabilities: [
      msixCapability({
        vectors: n + 1,
        tableBar: VIRTIO_PCI_MSIX_BAR,
        tableOffset: VIRTIO_PCI_MSIX_TABLE,
        pbaBar: VIRTIO_PCI_MSIX_BAR,
        pbaOffset: VIRTIO_PCI_MSIX_PBA,
      }),
      structureCap(VIRTIO_PCI_CAP.common, VIRTIO_PCI_COMMON_OFFSET, VIRTIO_PCI_COMMON_LENGTH),
      // §4.1.4.4: the region must reach queue_notify_off * multiplier + 2
      // for every queue; a whole word each is given.
      structureCap(
        VIRTIO_PCI_CAP.notify,
        VIRTIO_PCI_NOTIFY_OFFSET,
        n * VIRTIO_PCI_NOTIFY_MULTIPLIER,
        VIRTIO_PCI_NOTIFY_MULTIPLIER,
      ),
      structureCap(VIRTIO_PCI_CAP.isr, VIRTIO_PCI_ISR_OFFSET, VIRTIO_PCI_ISR_LENGTH),
      // §4.1.4.6: present "for any device type which has a device-specific
      // configuration"; virtio-rng has none.
      ...(model.configSize > 0
        ? [structureCap(VIRTIO_PCI_CAP.device, VIRTIO_PCI_DEVICE_OFFSET, model.configSize)]
        : []),
      pciCfgCap(),
    ],
  });
}

/** Byte `i` (little endian) of `value`, a non-negative integer of up to 8 bytes. */
function byteOf(value: number, i: number): number {
  return Math.floor(value / 2 ** (8 * i)) & 0xff;
}

/**
 * A virtio device on PCI (§4.1). The vCPU threads run its register
 * accesses; the I/O worker (holding the device lock) uses the rest of its
 * API: {@linkcode VirtioPciFunction.driverOk}, {@linkcode VirtioPciFunction.features},
 * {@linkcode VirtioPciFunction.queueLayout}, {@linkcode VirtioPciFunction.completeReset},
 * {@linkcode VirtioPciFunction.interrupt} and friends.
 */
export class VirtioPciFunction extends PciFunction {
  /** The device model shown. */
  readonly model: VirtioDeviceModel;
  /** The feature bits offered (§6, {@linkcode virtioOfferedFeatures}). */
  readonly offeredFeatures: bigint;
  /** The number of queues. */
  readonly queueCount: number;
  /** The configuration offset of the PCI configuration access capability (§4.1.4.8). */
  readonly pciCfgCapOffset: number;
  readonly #s: VirtioPciRegisters;
  readonly #deps: VirtioPciDeps;
  readonly #bar0: PciBarSpec;

  /**
   * Builds the function over `state` (a {@linkcode virtioPciState} of
   * `model`, used as it is; without one, a fresh state is created and
   * reset). `deps.intx` supplies the interrupt pin and line registers and
   * the INTx sink. Throws on a model the transport cannot show.
   */
  constructor(
    model: VirtioDeviceModel,
    deps: VirtioPciDeps,
    state?: VirtioPciRegisters,
    name = `virtio-${deviceName(model.deviceId)}`,
  ) {
    const s = state ?? virtioPciState(model).create();
    super(name, template(model, deps), deps, s);
    this.model = model;
    this.offeredFeatures = virtioOfferedFeatures(model);
    this.queueCount = model.queueSizes.length;
    const caps = this.config.template.capabilities;
    this.pciCfgCapOffset = caps[caps.length - 1].offset;
    this.#bar0 = this.bars.find((b) => b.index === VIRTIO_PCI_BAR)!;
    this.#s = s;
    this.#deps = deps;
    if (!state) this.reset();
  }

  /** The bound register state. */
  get state(): VirtioPciRegisters {
    return this.#s;
  }

  // -------------------------------------------------------------------------
  // For the I/O worker (with the device lock held).

  /** device_status as the driver reads it: its bits, plus DEVICE_NEEDS_RESET (§2.1). */
  get status(): number {
    const s = this.#s;
    return s.deviceStatus | (s.needsReset ? VIRTIO_STATUS.deviceNeedsReset : 0);
  }

  /**
   * Whether the device is live: FEATURES_OK and DRIVER_OK set (§3.1.1),
   * no DEVICE_NEEDS_RESET and no reset pending.
   */
  get driverOk(): boolean {
    const s = this.#s;
    const want = VIRTIO_STATUS.driverOk | VIRTIO_STATUS.featuresOk;
    return (s.deviceStatus & want) === want && !s.needsReset && !s.resetPending;
  }

  /** The negotiated features: the driver's, once FEATURES_OK stuck (§3.1.1); else 0. */
  get features(): bigint {
    const s = this.#s;
    if ((s.deviceStatus & VIRTIO_STATUS.featuresOk) === 0) return 0n;
    return this.#driverFeatures() & this.offeredFeatures;
  }

  /** Whether the driver wrote 0 to device_status and the reset is not done yet. */
  get resetPending(): boolean {
    return this.#s.resetPending;
  }

  /** Counts completed resets: a worker that sees it change drops what it had. */
  get resetGeneration(): number {
    return this.#s.resetGeneration;
  }

  /** Whether DEVICE_NEEDS_RESET is set (§2.1.2). */
  get needsReset(): boolean {
    return this.#s.needsReset;
  }

  /** The device-specific configuration bytes (configSize of them, shared). */
  get deviceConfig(): Uint8Array {
    return this.#s.deviceConfig.subarray(0, this.model.configSize);
  }

  /**
   * Where enabled queue `q` lives (§4.1.4.3), with the ring features
   * negotiated; null for a queue that does not exist or is not enabled.
   */
  queueLayout(q: number): QueueLayout | null {
    if (!this.#validQueue(q) || !this.#s.queueEnable[q]) return null;
    const s = this.#s, f = this.features;
    const addr = (a: Uint32Array) => a[2 * q + 1] * 2 ** 32 + a[2 * q];
    return {
      size: s.queueSize[q],
      desc: addr(s.queueDesc),
      avail: addr(s.queueDriver),
      used: addr(s.queueDevice),
      eventIdx: (f & featureBit(VIRTIO_F.ringEventIdx)) !== 0n,
      indirect: (f & featureBit(VIRTIO_F.ringIndirectDesc)) !== 0n,
    };
  }

  /**
   * Finishes a device reset (§2.4, §4.1.4.3.1): the virtio registers go
   * back to their power-on values, device_status reads 0 again and the
   * reset generation moves. The PCI configuration space, the BARs and the
   * MSI-X table stay: a virtio reset is not a PCI reset.
   */
  completeReset(): void {
    this.#s.resetPending = false;
    this.#resetVirtio();
  }

  /**
   * Queue `q` has used buffers (§4.1.5.3): with MSI-X enabled, its vector
   * is signalled unless it is VIRTIO_MSI_NO_VECTOR; otherwise ISR bit 0 is
   * set and INTx asserted (§4.1.4.5).
   */
  interrupt(q: number): void {
    if (!this.#validQueue(q)) return;
    this.#signal(this.#s.queueMsixVector[q], VIRTIO_ISR.queue);
  }

  /**
   * The device configuration changed (§4.1.5.4): config_generation moves
   * (§2.5) and, once DRIVER_OK is set, the config vector or ISR bit 1
   * with INTx tells the driver.
   */
  configChanged(): void {
    const s = this.#s;
    s.configGeneration = (s.configGeneration + 1) & 0xff;
    if ((s.deviceStatus & VIRTIO_STATUS.driverOk) === 0) return;
    this.#signal(s.configMsixVector, VIRTIO_ISR.config);
  }

  /**
   * The device hit an error it cannot recover from (§2.1.2): sets
   * DEVICE_NEEDS_RESET and, the first time, notifies a configuration
   * change. `reason` goes to the log dependency.
   */
  setNeedsReset(reason?: string): void {
    const s = this.#s;
    if (s.needsReset) return;
    if (reason) this.#deps.log?.(reason);
    s.needsReset = true;
    this.configChanged();
  }

  /**
   * The guest-physical address of queue `q`'s notification word, for a
   * KVM ioeventfd; null when `q` does not exist, memory decoding is off or
   * BAR0 is not placed.
   */
  notifyAddress(q: number): number | null {
    if (!this.#validQueue(q)) return null;
    const base = this.#notifyBase();
    return base === null ? null : base + q * VIRTIO_PCI_NOTIFY_MULTIPLIER;
  }

  /**
   * Power-on (PCI) reset: the configuration space, BARs and MSI-X table,
   * every virtio register, and the device configuration from the model.
   */
  override reset(): void {
    const movedFrom = this.#notifyBase();
    super.reset();
    const s = this.#s;
    s.resetPending = false;
    this.#resetVirtio();
    s.configGeneration = 0;
    s.deviceConfig.fill(0);
    this.model.initConfig(this.deviceConfig);
    // Memory decoding is off now: ioeventfds on the old place must go.
    if (movedFrom !== null) this.#deps.notifyMoved?.();
  }

  // -------------------------------------------------------------------------
  // BAR accesses.

  /** The device's counters: BAR accesses that exited to dhyve, notifications among them, interrupts. */
  stats(): { barAccesses: number; kicks: number; interrupts: number } {
    const s = this.#s;
    return { barAccesses: s.statBarAccesses, kicks: s.statKicks, interrupts: s.statInterrupts };
  }

  override barRead(bar: number, offset: number, size: AccessSize): number {
    this.#s.statBarAccesses++;
    return super.barRead(bar, offset, size);
  }

  override barWrite(bar: number, offset: number, size: AccessSize, value: number): void {
    this.#s.statBarAccesses++;
    super.barWrite(bar, offset, size, value);
  }

  protected override handleBarRead(bar: number, offset: number, size: AccessSize): number {
    if (bar !== VIRTIO_PCI_BAR) return 0; // BAR1 outside the table and PBA
    const region = offset - (offset % VIRTIO_PCI_REGION_SIZE);
    const rel = offset - region;
    switch (region) {
      case VIRTIO_PCI_COMMON_OFFSET:
        return this.#commonRead(rel, size);
      case VIRTIO_PCI_ISR_OFFSET:
        return rel === 0 ? this.#readIsr() : 0;
      case VIRTIO_PCI_DEVICE_OFFSET:
        return this.#deviceConfigRead(rel, size);
      default:
        return 0; // the notification words read 0
    }
  }

  protected override handleBarWrite(
    bar: number,
    offset: number,
    size: AccessSize,
    value: number,
  ): void {
    if (bar !== VIRTIO_PCI_BAR) return;
    const region = offset - (offset % VIRTIO_PCI_REGION_SIZE);
    const rel = offset - region;
    switch (region) {
      case VIRTIO_PCI_COMMON_OFFSET:
        this.#commonWrite(rel, size, value);
        return;
      case VIRTIO_PCI_DEVICE_OFFSET:
        this.#deviceConfigWrite(rel, size, value);
        return;
      case VIRTIO_PCI_NOTIFY_OFFSET: {
        // §4.1.4.4: queue q's word is at queue_notify_off * multiplier = 4q;
        // the value written (the queue index, §4.1.5.2) is not needed.
        const q = rel / VIRTIO_PCI_NOTIFY_MULTIPLIER;
        if (this.#validQueue(q)) {
          this.#s.statKicks++;
          this.#deps.kick(q);
        }
        return;
      }
      default:
        return; // §4.1.4.5: ISR status is read-only
    }
  }

  // -------------------------------------------------------------------------
  // Configuration space: BAR0 tracking and the PCI cfg access window.

  protected override onConfigWrite(offset: number, size: AccessSize, old: number): void {
    const end = offset + size;
    const touches = (at: number, len: number) => offset < at + len && at < end;
    const bar0 = barOffset(VIRTIO_PCI_BAR);
    if (touches(PCI_COMMAND, 1)) {
      // The memory decoding bit is in the command register's low byte.
      const was = byteOf(old, PCI_COMMAND - offset);
      if ((was ^ this.config.get8(PCI_COMMAND)) & PCI_COMMAND_MEMORY) this.#deps.notifyMoved?.();
    } else if (touches(bar0, 4) && this.memoryEnabled) {
      if (this.config.read(offset, size) !== old) this.#deps.notifyMoved?.();
    }
    const data = this.pciCfgCapOffset + VIRTIO_PCI_CAP_FIELD.pciCfgData;
    if (touches(data, 4)) this.#cfgWindow("write");
  }

  protected override readConfigDword(offset: number, size: AccessSize): number {
    const data = this.pciCfgCapOffset + VIRTIO_PCI_CAP_FIELD.pciCfgData;
    if (offset < data + 4 && data < offset + size) this.#cfgWindow("read");
    return super.readConfigDword(offset, size);
  }

  /**
   * §4.1.4.8: an access to pci_cfg_data performs an access of cap.length
   * bytes at cap.offset of BAR cap.bar: a read stores the bytes read in
   * pci_cfg_data, a write sends its first cap.length bytes. The driver
   * "MUST NOT" ask for anything but an aligned 1, 2 or 4 bytes inside a
   * BAR: anything else does nothing.
   */
  #cfgWindow(kind: "read" | "write"): void {
    const cap = this.pciCfgCapOffset, F = VIRTIO_PCI_CAP_FIELD, cfg = this.config;
    const barIndex = cfg.get8(cap + F.bar);
    const off = cfg.get32(cap + F.offset);
    const len = cfg.get32(cap + F.length);
    const bar = this.bars.find((b) => b.index === barIndex);
    if (!bar || (len !== 1 && len !== 2 && len !== 4) || off % len !== 0) return;
    if (off + len > bar.size) return;
    const data = cap + F.pciCfgData;
    if (kind === "read") {
      const v = this.barRead(barIndex, off, len);
      for (let i = 0; i < len; i++) cfg.set8(data + i, byteOf(v, i));
    } else {
      this.barWrite(barIndex, off, len, cfg.read(data, len));
    }
  }

  // -------------------------------------------------------------------------
  // Common configuration (§4.1.4.3).

  #commonRead(offset: number, size: number): number {
    let v = 0;
    let start = -1, reg = 0;
    for (let i = size - 1; i >= 0; i--) {
      const o = offset + i;
      let byte = 0;
      if (o < VIRTIO_PCI_COMMON_LENGTH) {
        if (FIELD_START[o] !== start) {
          start = FIELD_START[o];
          reg = this.#commonGet(start);
        }
        byte = byteOf(reg, o - start);
      }
      v = v * 256 + byte;
    }
    return v;
  }

  /** Writes every register the access covers, merged with the bytes it does not. */
  #commonWrite(offset: number, size: number, value: number): void {
    const end = offset + size;
    let o = offset;
    while (o < end && o < VIRTIO_PCI_COMMON_LENGTH) {
      const start = FIELD_START[o], width = FIELD_WIDTH[start];
      let reg = this.#commonGet(start);
      for (let b = Math.max(start, offset); b < Math.min(start + width, end); b++) {
        const scale = 2 ** (8 * (b - start));
        reg += (byteOf(value, b - offset) - byteOf(reg, b - start)) * scale;
      }
      this.#commonSet(start, reg);
      o = start + width;
    }
  }

  /** The value of the register at `at` (no side effects). */
  #commonGet(at: number): number {
    const s = this.#s, C = VIRTIO_PCI_COMMON;
    const q = s.queueSelect, valid = this.#validQueue(q);
    switch (at) {
      case C.deviceFeatureSelect:
        return s.deviceFeatureSelect;
      case C.deviceFeature: {
        const sel = s.deviceFeatureSelect;
        return sel < 2 ? Number((this.offeredFeatures >> BigInt(32 * sel)) & 0xffffffffn) : 0;
      }
      case C.driverFeatureSelect:
        return s.driverFeatureSelect;
      case C.driverFeature:
        return s.driverFeatureSelect < 2 ? s.driverFeatures[s.driverFeatureSelect] : 0;
      case C.configMsixVector:
        return s.configMsixVector;
      case C.numQueues:
        return this.queueCount;
      case C.deviceStatus:
        // While a reset is pending the old value shows: the driver polls
        // until it reads 0 (§2.4, §4.1.4.3.1).
        return this.status;
      case C.configGeneration:
        return s.configGeneration;
      case C.queueSelect:
        return q;
      case C.queueSize:
        // §4.1.4.3.1: 0 for a queue that is not available.
        return valid ? s.queueSize[q] : 0;
      case C.queueMsixVector:
        return valid ? s.queueMsixVector[q] : VIRTIO_MSI_NO_VECTOR;
      case C.queueEnable:
        return valid ? s.queueEnable[q] : 0;
      case C.queueNotifyOff:
        return valid ? q : 0;
      case C.queueDesc:
      case C.queueDesc + 4:
        return valid ? s.queueDesc[2 * q + (at - C.queueDesc) / 4] : 0;
      case C.queueDriver:
      case C.queueDriver + 4:
        return valid ? s.queueDriver[2 * q + (at - C.queueDriver) / 4] : 0;
      case C.queueDevice:
      case C.queueDevice + 4:
        return valid ? s.queueDevice[2 * q + (at - C.queueDevice) / 4] : 0;
      default:
        // queue_notify_data (no VIRTIO_F_NOTIF_CONFIG_DATA) and queue_reset
        // (no VIRTIO_F_RING_RESET, §4.1.4.3.1: "MUST present a 0") read 0.
        return 0;
    }
  }

  /** A driver write of the whole register at `at`. */
  #commonSet(at: number, value: number): void {
    const s = this.#s, C = VIRTIO_PCI_COMMON;
    if (at === C.deviceStatus) {
      this.#writeStatus(value & 0xff);
      return;
    }
    // §2.4: after writing 0 the driver waits for device_status to read 0.
    if (s.resetPending) return;
    const q = s.queueSelect, valid = this.#validQueue(q);
    const configurable = valid && !s.queueEnable[q];
    switch (at) {
      case C.deviceFeatureSelect:
        s.deviceFeatureSelect = value >>> 0;
        return;
      case C.driverFeatureSelect:
        s.driverFeatureSelect = value >>> 0;
        return;
      case C.driverFeature:
        // §3.1.1 step 5: no new feature bits after FEATURES_OK.
        if (s.deviceStatus & VIRTIO_STATUS.featuresOk) return;
        if (s.driverFeatureSelect < 2) s.driverFeatures[s.driverFeatureSelect] = value >>> 0;
        return;
      case C.configMsixVector:
        s.configMsixVector = this.#mapVector(value);
        return;
      case C.queueSelect:
        s.queueSelect = value & 0xffff;
        return;
      case C.queueSize:
        // §2.7: a split queue's size is a power of two; §4.1.4.3.2: the
        // driver may only lower it.
        if (configurable && isPowerOfTwo(value) && value <= this.model.queueSizes[q]) {
          s.queueSize[q] = value;
        }
        return;
      case C.queueMsixVector:
        if (valid) s.queueMsixVector[q] = this.#mapVector(value);
        return;
      case C.queueEnable:
        // §4.1.4.3.2: "The driver MUST NOT write a 0 to queue_enable."
        if (valid && value !== 0) s.queueEnable[q] = 1;
        return;
      case C.queueDesc:
      case C.queueDesc + 4:
        if (configurable) s.queueDesc[2 * q + (at - C.queueDesc) / 4] = value >>> 0;
        return;
      case C.queueDriver:
      case C.queueDriver + 4:
        if (configurable) s.queueDriver[2 * q + (at - C.queueDriver) / 4] = value >>> 0;
        return;
      case C.queueDevice:
      case C.queueDevice + 4:
        if (configurable) s.queueDevice[2 * q + (at - C.queueDevice) / 4] = value >>> 0;
        return;
      default:
        // device_feature, num_queues, config_generation, queue_notify_off and
        // queue_notify_data are read-only; queue_reset is not offered.
        return;
    }
  }

  /**
   * §4.1.5.1.2: a vector the table does not have cannot be mapped, which
   * the device reports by reading back VIRTIO_MSI_NO_VECTOR.
   */
  #mapVector(value: number): number {
    const v = value & 0xffff;
    return v < (this.msix?.vectors ?? 0) ? v : VIRTIO_MSI_NO_VECTOR;
  }

  /** A driver write of device_status (§2.1, §3.1.1). */
  #writeStatus(value: number): void {
    const s = this.#s, S = VIRTIO_STATUS;
    if (value === 0) {
      // §2.4 / §4.1.4.3.1: 0 resets the device. The I/O worker may be in
      // the middle of a request: it finishes the reset under the device
      // lock; until then device_status keeps its old value.
      const wake = this.#deps.wake;
      if (!wake) {
        this.completeReset();
        return;
      }
      s.resetPending = true;
      wake();
      return;
    }
    if (s.resetPending) return;
    const old = s.deviceStatus;
    // DEVICE_NEEDS_RESET is the device's bit (§2.1): a driver's copy of it
    // in a read-modify-write is not stored.
    let next = value & ~S.deviceNeedsReset;
    // §2.2.2: FEATURES_OK does not stick for a set the device cannot accept
    // (the driver sees that in §3.1.1 step 6): bits that were not offered,
    // or no VERSION_1 (§6.2: a modern-only device may refuse that).
    if ((next & S.featuresOk) !== 0 && (old & S.featuresOk) === 0 && !this.#featuresAcceptable()) {
      next &= ~S.featuresOk;
    }
    s.deviceStatus = next;
    if ((old ^ next) & S.driverOk) this.#deps.wake?.();
  }

  #driverFeatures(): bigint {
    const d = this.#s.driverFeatures;
    return BigInt(d[1]) << 32n | BigInt(d[0]);
  }

  #featuresAcceptable(): boolean {
    const f = this.#driverFeatures();
    return (f & ~this.offeredFeatures) === 0n && (f & featureBit(VIRTIO_F.version1)) !== 0n;
  }

  // -------------------------------------------------------------------------
  // ISR, device configuration, interrupts.

  /** §4.1.4.5: reading the ISR status returns it, clears it and deasserts INTx. */
  #readIsr(): number {
    const s = this.#s;
    const v = s.isr;
    s.isr = 0;
    this.setIntx(false);
    return v;
  }

  #deviceConfigRead(offset: number, size: number): number {
    const c = this.#s.deviceConfig, n = this.model.configSize;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) {
      const o = offset + i;
      v = v * 256 + (o < n ? c[o] : 0);
    }
    return v;
  }

  #deviceConfigWrite(offset: number, size: number, value: number): void {
    if (offset + size > this.model.configSize) return;
    if (!this.model.configWritable?.(offset, size)) return;
    const c = this.#s.deviceConfig;
    for (let i = 0; i < size; i++) c[offset + i] = byteOf(value, i);
  }

  /**
   * Tells the driver (§4.1.5.3, §4.1.5.4): with MSI-X enabled, `vector`
   * unless it is NO_VECTOR; otherwise the ISR bit and INTx (§4.1.4.5: the
   * PCI status interrupt bit follows the ISR).
   */
  #signal(vector: number, isrBit: number): void {
    const x = this.msix;
    if (x?.enabled) {
      if (vector !== VIRTIO_MSI_NO_VECTOR && x.send(vector) !== "dropped") this.#s.statInterrupts++;
      return;
    }
    this.#s.statInterrupts++;
    this.#s.isr |= isrBit;
    this.setIntx(true);
  }

  /** Power-on values of the virtio registers (§2.4, §4.1.4.3.1, §4.1.5.1.2). */
  #resetVirtio(): void {
    const s = this.#s;
    s.deviceFeatureSelect = 0;
    s.driverFeatureSelect = 0;
    s.driverFeatures.fill(0);
    // §4.1.5.1.2: every event unmapped at reset.
    s.configMsixVector = VIRTIO_MSI_NO_VECTOR;
    s.deviceStatus = 0;
    s.needsReset = false;
    s.queueSelect = 0;
    for (let q = 0; q < this.queueCount; q++) {
      s.queueSize[q] = this.model.queueSizes[q];
      s.queueMsixVector[q] = VIRTIO_MSI_NO_VECTOR;
      s.queueEnable[q] = 0; // §4.1.4.3.1: "MUST present a 0 in queue_enable on reset"
    }
    s.queueDesc.fill(0);
    s.queueDriver.fill(0);
    s.queueDevice.fill(0);
    s.isr = 0;
    this.setIntx(false);
    s.resetGeneration = (s.resetGeneration + 1) >>> 0;
  }

  #validQueue(q: number): boolean {
    return Number.isInteger(q) && q >= 0 && q < this.queueCount;
  }

  /** The notification region's address, or null when it does not decode. */
  #notifyBase(): number | null {
    if (!this.memoryEnabled) return null;
    const base = this.config.barAddress(this.#bar0);
    return base === 0 ? null : base + VIRTIO_PCI_NOTIFY_OFFSET;
  }
}

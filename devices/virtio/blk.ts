/**
 * virtio-blk (virtio 1.2 §5.2): a disk behind one request queue.
 *
 * {@linkcode virtioBlkModel} is what the transport shows the driver (device
 * ID 2, features, the §5.2.4 configuration layout); {@linkcode createBlkHandler}
 * serves the requests (§5.2.6) in the device's I/O worker. The disk itself is
 * an injected {@linkcode BlockBackend} (the host side lives in lib/virtio/).
 *
 * Request shape (§5.2.6): a 16-byte header {type u32, reserved u32, sector
 * u64} at the start of the device-readable part, then the data (readable for
 * OUT/DISCARD/WRITE_ZEROES, writable for IN/GET_ID), then the 1-byte status
 * in the last device-writable byte. Following §2.6.4 (message framing) no
 * particular split of these fields into descriptors is assumed.
 *
 * Decisions where the spec leaves room:
 * - The status byte is the last writable byte, and §2.7.8.2 makes the used
 *   `len` a prefix of the writable part ("the device MUST write at least len
 *   bytes ... beginning at the first device-writable buffer"), so every
 *   completion reports the whole writable length: data + status for IN and
 *   GET_ID, 1 for the usual OUT/FLUSH/DISCARD/WRITE_ZEROES shape. On an
 *   error the data bytes before the status are undefined (as in QEMU).
 * - A chain with no writable byte cannot carry a status: it is returned with
 *   used len 0, without doing anything, and logged once per handler.
 * - A malformed request (header under 16 bytes, IN/OUT data not a multiple
 *   of 512 bytes, a range past the capacity, discard segments not a whole
 *   number of 16-byte records or more of them than max_*_seg, more sectors
 *   than max_*_sectors) is completed with VIRTIO_BLK_S_IOERR ("device or
 *   driver error", §5.2.6); it never stops the queue. Only a malformed ring
 *   ({@linkcode VirtqueueError} from the queue) escapes `notify`.
 * - Any exception from the backend is an I/O error: VIRTIO_BLK_S_IOERR.
 * - Read-only disks offer VIRTIO_BLK_F_RO and neither DISCARD nor
 *   WRITE_ZEROES (both modify the disk); OUT on them is IOERR (§5.2.6.1).
 * - DISCARD and WRITE_ZEROES are served only when the driver negotiated the
 *   feature; otherwise (and for every other type we do not implement:
 *   GET_LIFETIME, SECURE_ERASE, the zoned types, legacy SCSI) UNSUPP.
 * - GET_ID has no feature bit in §5.2.3: it is always served.
 *
 * @module
 */
import { ChainReader, ChainWriter, serveAvailable, type SplitQueue } from "./queue.ts";
import {
  type DescriptorChain,
  errorText,
  featureBit,
  VIRTIO_ID,
  type VirtioDeviceModel,
  type VirtioQueueContext,
  type VirtioQueueHandler,
} from "./types.ts";

// ---------------------------------------------------------------------------
// Constants (§5.2).

/** Feature bits (§5.2.3), as bit numbers. */
export const VIRTIO_BLK_F = {
  /** Maximum size of any single segment is in size_max. Not offered. */
  sizeMax: 1,
  /** Maximum number of segments in a request is in seg_max. */
  segMax: 2,
  /** Disk-style geometry in geometry. Not offered. */
  geometry: 4,
  /** The device is read-only. */
  ro: 5,
  /** Block size of the disk is in blk_size. */
  blkSize: 6,
  /** Cache flush command support. */
  flush: 9,
  /** Optimal I/O alignment in topology. Not offered. */
  topology: 10,
  /** Writeback/writethrough toggle in writeback. Not offered. */
  configWce: 11,
  /** Multiqueue (num_queues). Not offered. */
  mq: 12,
  /** DISCARD command, limits in max_discard_sectors / max_discard_seg. */
  discard: 13,
  /** WRITE_ZEROES command, limits in max_write_zeroes_sectors / _seg. */
  writeZeroes: 14,
  /** GET_LIFETIME command. Not offered. */
  lifetime: 15,
  /** SECURE_ERASE command. Not offered. */
  secureErase: 16,
  /** Zoned block device. Not offered. */
  zoned: 17,
} as const;

/** Request types (§5.2.6). */
export const VIRTIO_BLK_T = {
  in: 0,
  out: 1,
  flush: 4,
  getId: 8,
  getLifetime: 10,
  discard: 11,
  writeZeroes: 13,
  secureErase: 14,
} as const;

/** Request status values (§5.2.6). */
export const VIRTIO_BLK_S = { ok: 0, ioerr: 1, unsupp: 2 } as const;

/** The unmap flag of a discard/write-zeroes segment (§5.2.6, flags bit 0). */
export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

/** Byte offsets in struct virtio_blk_config (§5.2.4), all little-endian. */
export const VIRTIO_BLK_CONFIG = {
  /** le64: capacity in 512-byte sectors. */
  capacity: 0,
  /** le32: size_max (VIRTIO_BLK_F_SIZE_MAX). */
  sizeMax: 8,
  /** le32: seg_max (VIRTIO_BLK_F_SEG_MAX). */
  segMax: 12,
  /** {le16 cylinders, u8 heads, u8 sectors} (VIRTIO_BLK_F_GEOMETRY). */
  geometry: 16,
  /** le32: blk_size (VIRTIO_BLK_F_BLK_SIZE). */
  blkSize: 20,
  /** {u8, u8, le16, le32} topology (VIRTIO_BLK_F_TOPOLOGY). */
  topology: 24,
  /** u8: writeback (VIRTIO_BLK_F_CONFIG_WCE); u8 unused0 follows. */
  writeback: 32,
  /** u16: num_queues (VIRTIO_BLK_F_MQ). */
  numQueues: 34,
  /** le32 (VIRTIO_BLK_F_DISCARD). */
  maxDiscardSectors: 36,
  /** le32 (VIRTIO_BLK_F_DISCARD). */
  maxDiscardSeg: 40,
  /** le32 (VIRTIO_BLK_F_DISCARD). */
  discardSectorAlignment: 44,
  /** le32 (VIRTIO_BLK_F_WRITE_ZEROES). */
  maxWriteZeroesSectors: 48,
  /** le32 (VIRTIO_BLK_F_WRITE_ZEROES). */
  maxWriteZeroesSeg: 52,
  /** u8 (VIRTIO_BLK_F_WRITE_ZEROES); u8 unused1[3] follows. */
  writeZeroesMayUnmap: 56,
} as const;

/**
 * Bytes of configuration the device shows: through unused1, the end of the
 * write-zeroes fields (the secure-erase and zoned fields are not offered).
 */
export const VIRTIO_BLK_CONFIG_SIZE = 60;

/** The protocol's unit: capacity and sector numbers count 512-byte sectors (§5.2.4). */
export const VIRTIO_BLK_SECTOR_SIZE = 512;
/** The GET_ID string length (§5.2.6: NUL-padded, up to 20 bytes). */
export const VIRTIO_BLK_ID_BYTES = 20;
/** Bytes of the request header {type, reserved, sector} (§5.2.6). */
export const VIRTIO_BLK_HEADER_SIZE = 16;
/** Bytes of one discard/write-zeroes segment {sector, num_sectors, flags} (§5.2.6). */
export const VIRTIO_BLK_SEGMENT_SIZE = 16;
/** The request queue's maximum size. */
export const VIRTIO_BLK_QUEUE_SIZE = 256;
/**
 * seg_max: data descriptors per request. A request spends one descriptor on
 * the header and one on the status, so the rest of a full queue (QEMU's
 * choice too).
 */
export const VIRTIO_BLK_SEG_MAX = VIRTIO_BLK_QUEUE_SIZE - 2;
/** blk_size: the logical block size offered (the protocol's sector). */
export const VIRTIO_BLK_BLOCK_SIZE = 512;
/**
 * max_discard_sectors and max_write_zeroes_sectors: 2^22 - 1 sectors (just
 * under 2 GiB), which bounds the work of one request.
 */
export const VIRTIO_BLK_MAX_DISCARD_SECTORS = 0x3f_ffff;
/** max_discard_seg and max_write_zeroes_seg: one segment per request, as QEMU. */
export const VIRTIO_BLK_MAX_DISCARD_SEG = 1;
/**
 * discard_sector_alignment: 8 sectors (4 KiB), the granularity at which a
 * host file system can deallocate; a hint for splitting (§5.2.5).
 */
export const VIRTIO_BLK_DISCARD_SECTOR_ALIGNMENT = 8;
/** PCI class of a virtio disk: mass storage, SCSI (0x0100), as QEMU's virtio-blk-pci. */
export const VIRTIO_BLK_PCI_CLASS = 0x010000;

// ---------------------------------------------------------------------------
// Interfaces.

/**
 * The disk behind a virtio-blk device (the host side implements it in
 * lib/virtio/). Offsets and lengths are in bytes; the handler only passes
 * ranges inside [0, size), and its data arrays may be live views of guest
 * RAM (read into `dst`, write from `src`; keep no reference after the call).
 * Any exception is reported to the guest as VIRTIO_BLK_S_IOERR.
 */
export interface BlockBackend {
  /** The disk size in bytes. */
  readonly size: number;
  /** Whether writes are refused. */
  readonly readonly: boolean;
  /** Fills `dst` with the bytes at `offset`. */
  read(offset: number, dst: Uint8Array): void;
  /** Stores `src` at `offset`. */
  write(offset: number, src: Uint8Array): void;
  /** Makes every completed write stable (§5.2.6.1). */
  flush(): void;
  /** May deallocate [offset, offset+length); later reads return anything. */
  discard(offset: number, length: number): void;
  /** Zeroes [offset, offset+length); `unmap`: it may deallocate as well. */
  writeZeroes(offset: number, length: number, unmap: boolean): void;
}

/** How one virtio-blk device looks to the guest. */
export interface VirtioBlkOptions {
  /** Disk size in bytes; the guest sees floor(size / 512) sectors. */
  readonly size: number;
  /** Offer VIRTIO_BLK_F_RO and fail every write. */
  readonly readonly: boolean;
  /** The GET_ID string: printable ASCII, at most 20 bytes. */
  readonly serial: string;
  /** Offer DISCARD and WRITE_ZEROES (ignored when read-only). */
  readonly discard: boolean;
}

// ---------------------------------------------------------------------------
// Functions.

/**
 * Checks options (a bad serial or size is a host configuration error, not a
 * guest one): throws RangeError naming the problem.
 */
export function validateBlkOptions(o: VirtioBlkOptions): void {
  if (!Number.isSafeInteger(o.size) || o.size < 0) {
    throw new RangeError(`virtio-blk: size ${o.size} is not a byte count`);
  }
  if (o.serial.length > VIRTIO_BLK_ID_BYTES) {
    throw new RangeError(
      `virtio-blk: serial "${o.serial}" is longer than ${VIRTIO_BLK_ID_BYTES} characters`,
    );
  }
  for (let i = 0; i < o.serial.length; i++) {
    const c = o.serial.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) {
      throw new RangeError(`virtio-blk: serial "${o.serial}" is not printable ASCII`);
    }
  }
}

/**
 * The GET_ID answer: the serial as ASCII, NUL-padded to 20 bytes (with no
 * NUL at all when it is 20 characters long, §5.2.6).
 */
export function blkIdBytes(serial: string): Uint8Array {
  const out = new Uint8Array(VIRTIO_BLK_ID_BYTES);
  for (let i = 0; i < Math.min(serial.length, VIRTIO_BLK_ID_BYTES); i++) {
    out[i] = serial.charCodeAt(i) & 0x7f;
  }
  return out;
}

/** The feature bits a device with these options offers (§5.2.3). */
export function blkFeatures(o: VirtioBlkOptions): bigint {
  let f = featureBit(VIRTIO_BLK_F.segMax) | featureBit(VIRTIO_BLK_F.blkSize) |
    // §5.2.5.2: devices SHOULD always offer VIRTIO_BLK_F_FLUSH.
    featureBit(VIRTIO_BLK_F.flush);
  if (o.readonly) f |= featureBit(VIRTIO_BLK_F.ro);
  else if (o.discard) {
    f |= featureBit(VIRTIO_BLK_F.discard) | featureBit(VIRTIO_BLK_F.writeZeroes);
  }
  return f;
}

/**
 * The virtio-blk device model: device ID 2, one request queue of
 * {@linkcode VIRTIO_BLK_QUEUE_SIZE}, the §5.2.4 configuration. Throws
 * RangeError on bad options (see {@linkcode validateBlkOptions}).
 */
export function virtioBlkModel(o: VirtioBlkOptions): VirtioDeviceModel {
  validateBlkOptions(o);
  const features = blkFeatures(o);
  const discard = !o.readonly && o.discard;
  const capacity = BigInt(Math.floor(o.size / VIRTIO_BLK_SECTOR_SIZE));
  return {
    deviceId: VIRTIO_ID.block,
    pciClass: VIRTIO_BLK_PCI_CLASS,
    features,
    queueSizes: [VIRTIO_BLK_QUEUE_SIZE],
    configSize: VIRTIO_BLK_CONFIG_SIZE,
    initConfig(config: Uint8Array): void {
      // §5.2.5.2: the padding (unused0, unused1) and every field of a
      // feature not offered stay 0.
      config.fill(0, 0, VIRTIO_BLK_CONFIG_SIZE);
      const v = new DataView(config.buffer, config.byteOffset, VIRTIO_BLK_CONFIG_SIZE);
      const C = VIRTIO_BLK_CONFIG;
      v.setBigUint64(C.capacity, capacity, true);
      v.setUint32(C.segMax, VIRTIO_BLK_SEG_MAX, true);
      v.setUint32(C.blkSize, VIRTIO_BLK_BLOCK_SIZE, true);
      if (discard) {
        v.setUint32(C.maxDiscardSectors, VIRTIO_BLK_MAX_DISCARD_SECTORS, true);
        v.setUint32(C.maxDiscardSeg, VIRTIO_BLK_MAX_DISCARD_SEG, true);
        v.setUint32(C.discardSectorAlignment, VIRTIO_BLK_DISCARD_SECTOR_ALIGNMENT, true);
        v.setUint32(C.maxWriteZeroesSectors, VIRTIO_BLK_MAX_DISCARD_SECTORS, true);
        v.setUint32(C.maxWriteZeroesSeg, VIRTIO_BLK_MAX_DISCARD_SEG, true);
        // §5.2.6.1: set iff a write-zeroes request may deallocate; the
        // backend gets the unmap flag and may punch a hole.
        v.setUint8(C.writeZeroesMayUnmap, 1);
      }
    },
    // No configWritable: without CONFIG_WCE every field is read-only (§5.2.4).
  };
}

/** "0x1f" for messages. */
function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/**
 * The request handler of a virtio-blk device: serves queue 0 (§5.2.6).
 * `queues[0]` is the request queue (null: not enabled, notifications are
 * ignored). Throws {@linkcode VirtqueueError} from `notify` on a malformed
 * ring; every request-level problem becomes a status byte instead.
 */
export function createBlkHandler(
  ctx: VirtioQueueContext,
  queues: readonly (SplitQueue | null)[],
  backend: BlockBackend,
  options: VirtioBlkOptions,
): VirtioQueueHandler {
  validateBlkOptions(options);
  const memory = ctx.memory;
  // The reachable disk: the capacity the guest was shown, never past the
  // backend's end, in whole sectors. Every backend range lies inside it.
  const sectors = Math.floor(Math.min(options.size, backend.size) / VIRTIO_BLK_SECTOR_SIZE);
  const limit = sectors * VIRTIO_BLK_SECTOR_SIZE;
  const readonly = options.readonly || backend.readonly;
  const idBytes = blkIdBytes(options.serial);
  const offered = options.discard && !options.readonly;
  const canDiscard = offered && (ctx.features & featureBit(VIRTIO_BLK_F.discard)) !== 0n;
  const canWriteZeroes = offered &&
    (ctx.features & featureBit(VIRTIO_BLK_F.writeZeroes)) !== 0n;
  let warnedNoStatus = false;

  /** The byte offset of [sector, +length) if it lies inside the disk, else -1. */
  function rangeOffset(sector: bigint, length: number): number {
    if (sector > BigInt(sectors)) return -1;
    const offset = Number(sector) * VIRTIO_BLK_SECTOR_SIZE;
    return length <= limit - offset ? offset : -1;
  }

  /** Runs a backend call; any exception becomes IOERR (and a log line). */
  function io(what: string, call: () => void): number {
    try {
      call();
      return VIRTIO_BLK_S.ok;
    } catch (e) {
      ctx.log(`virtio-blk: ${what} failed: ${errorText(e)}`);
      return VIRTIO_BLK_S.ioerr;
    }
  }

  /** VIRTIO_BLK_T_IN: disk -> the writable data, which is `dataLength` bytes. */
  function doIn(sector: bigint, writer: ChainWriter, dataLength: number): number {
    if (dataLength % VIRTIO_BLK_SECTOR_SIZE !== 0) return VIRTIO_BLK_S.ioerr;
    const offset = rangeOffset(sector, dataLength);
    if (offset < 0) return VIRTIO_BLK_S.ioerr;
    if (dataLength === 0) return VIRTIO_BLK_S.ok;
    const views = writer.views(dataLength);
    return io(`read [${hex(offset)}, +${dataLength})`, () => {
      let at = offset;
      for (const v of views) {
        backend.read(at, v);
        at += v.length;
      }
    });
  }

  /** VIRTIO_BLK_T_OUT: the readable data after the header -> disk. */
  function doOut(sector: bigint, reader: ChainReader): number {
    // §5.2.6.1: IOERR for a write on a read-only device, and no data written.
    if (readonly) return VIRTIO_BLK_S.ioerr;
    const length = reader.remaining;
    if (length % VIRTIO_BLK_SECTOR_SIZE !== 0) return VIRTIO_BLK_S.ioerr;
    const offset = rangeOffset(sector, length);
    if (offset < 0) return VIRTIO_BLK_S.ioerr;
    if (length === 0) return VIRTIO_BLK_S.ok;
    const views = reader.views(length);
    return io(`write [${hex(offset)}, +${length})`, () => {
      let at = offset;
      for (const v of views) {
        backend.write(at, v);
        at += v.length;
      }
    });
  }

  /** VIRTIO_BLK_T_DISCARD / VIRTIO_BLK_T_WRITE_ZEROES: segments in the readable data. */
  function doRanges(type: number, reader: ChainReader): number {
    const zeroes = type === VIRTIO_BLK_T.writeZeroes;
    if (!(zeroes ? canWriteZeroes : canDiscard)) return VIRTIO_BLK_S.unsupp;
    if (readonly) return VIRTIO_BLK_S.ioerr; // §5.2.6.1: both modify the disk.
    const length = reader.remaining;
    const count = length / VIRTIO_BLK_SEGMENT_SIZE;
    // §5.2.6: "one or more segments", at most max_*_seg of them.
    if (!Number.isInteger(count) || count === 0 || count > VIRTIO_BLK_MAX_DISCARD_SEG) {
      return VIRTIO_BLK_S.ioerr;
    }
    const bytes = reader.read(length);
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const ranges: [number, number, boolean][] = [];
    // Check every segment before touching the disk.
    for (let i = 0; i < count; i++) {
      const at = i * VIRTIO_BLK_SEGMENT_SIZE;
      const sector = v.getBigUint64(at, true);
      const num = v.getUint32(at + 8, true);
      const flags = v.getUint32(at + 12, true);
      // §5.2.6.1: UNSUPP if any unknown flag is set, and for a discard
      // with the unmap flag set.
      if ((flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0) return VIRTIO_BLK_S.unsupp;
      const unmap = (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0;
      if (!zeroes && unmap) return VIRTIO_BLK_S.unsupp;
      // More than max_*_sectors is a driver error.
      if (num > VIRTIO_BLK_MAX_DISCARD_SECTORS) return VIRTIO_BLK_S.ioerr;
      const size = num * VIRTIO_BLK_SECTOR_SIZE;
      const offset = rangeOffset(sector, size);
      if (offset < 0) return VIRTIO_BLK_S.ioerr;
      if (size > 0) ranges.push([offset, size, unmap]);
    }
    // §5.2.6: on IOERR the state of each segment is indeterminate.
    for (const [offset, size, unmap] of ranges) {
      const status = zeroes
        ? io(
          `write-zeroes [${hex(offset)}, +${size})`,
          () => backend.writeZeroes(offset, size, unmap),
        )
        : io(`discard [${hex(offset)}, +${size})`, () => backend.discard(offset, size));
      if (status !== VIRTIO_BLK_S.ok) return status;
    }
    return VIRTIO_BLK_S.ok;
  }

  /** Serves one chain; returns the used length. */
  function serve(chain: DescriptorChain): number {
    if (chain.writableLength === 0) {
      if (!warnedNoStatus) {
        warnedNoStatus = true;
        ctx.log(`virtio-blk: request ${chain.head} has no writable status byte; dropped`);
      }
      return 0;
    }
    const reader = new ChainReader(memory, chain);
    const writer = new ChainWriter(memory, chain);
    // The writable bytes before the status byte (§5.2.6: status is last).
    const dataLength = chain.writableLength - 1;
    let status: number = VIRTIO_BLK_S.ioerr;
    if (reader.remaining >= VIRTIO_BLK_HEADER_SIZE) {
      const header = reader.read(VIRTIO_BLK_HEADER_SIZE);
      const h = new DataView(header.buffer, header.byteOffset, header.byteLength);
      const type = h.getUint32(0, true);
      // h[4..8) is `reserved` (legacy ioprio): ignored.
      const sector = h.getBigUint64(8, true);
      switch (type) {
        case VIRTIO_BLK_T.in:
          status = doIn(sector, writer, dataLength);
          break;
        case VIRTIO_BLK_T.out:
          status = doOut(sector, reader);
          break;
        case VIRTIO_BLK_T.flush:
          // §5.2.6: sector is unused for a flush.
          status = io("flush", () => backend.flush());
          break;
        case VIRTIO_BLK_T.getId:
          writer.write(idBytes.subarray(0, Math.min(dataLength, VIRTIO_BLK_ID_BYTES)));
          status = VIRTIO_BLK_S.ok;
          break;
        case VIRTIO_BLK_T.discard:
        case VIRTIO_BLK_T.writeZeroes:
          status = doRanges(type, reader);
          break;
        default:
          status = VIRTIO_BLK_S.unsupp;
      }
    }
    // Step over what was not written (the views count as written), so the
    // status lands in the last writable byte and len covers it (§2.7.8.2).
    if (writer.remaining > 1) writer.views(writer.remaining - 1);
    writer.write(Uint8Array.of(status));
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

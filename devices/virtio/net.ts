/**
 * virtio-net (virtio 1.2 §5.1): one receive and one transmit queue over a
 * host tap device that carries plain Ethernet frames (IFF_TAP | IFF_NO_PI).
 *
 * Features offered (§5.1.3): MAC, STATUS (the link is always up) and MTU
 * when one is configured. Nothing else: the tap has no virtio-net header
 * (no IFF_VNET_HDR), so it can neither take partially checksummed or GSO
 * frames from the guest (CSUM, HOST_TSO4/6/ECN/UFO/USO) nor hand such
 * frames in (GUEST_CSUM, GUEST_TSO4/6/ECN/UFO/USO); every frame crosses
 * whole and fully checksummed. No MRG_RXBUF (one chain per received frame),
 * no CTRL_VQ (no control queue, so no MAC filtering or MQ either).
 *
 * Decisions:
 * - TX (§5.1.6.2): the 12-byte header (VERSION_1 makes it always 12 bytes,
 *   §5.1.6.1) is skipped; a chain whose header is short, whose gso_type is
 *   not GSO_NONE (no HOST_* offload was offered) or whose frame is shorter
 *   than an Ethernet header or longer than {@linkcode NET_MAX_FRAME} is
 *   dropped and counted; every chain goes back with written = 0.
 * - RX (§5.1.6.3, §5.1.6.4): one frame per chain, behind a zeroed header
 *   with num_buffers = 1 (§5.1.6.4.1: required without MRG_RXBUF). A frame
 *   that does not fit the chain it was meant for is dropped and counted, and
 *   the chain is kept for the next frame (returning it empty would only make
 *   the driver count a length error and post it again). A chain too small
 *   for any frame (under 12 + 14 bytes) is returned at once with len 0 so it
 *   cannot wedge the queue.
 * - Flow control: while the receive queue has no buffers the tap is not
 *   polled (poll is level-triggered: a readable tap nobody drains would make
 *   the I/O worker spin); the next receive-queue notification resumes it.
 *   Frames the host sends meanwhile wait in the tap's own queue (and the
 *   kernel drops them when it fills, as a NIC with no descriptors would).
 *
 * @module
 */
import { ChainReader, ChainWriter, type SplitQueue } from "./queue.ts";
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
// Constants (virtio 1.2 §5.1).

/** virtio-net feature bits (§5.1.3), as bit numbers. */
export const VIRTIO_NET_F = {
  /** Device handles packets with partial checksum (not offered). */
  csum: 0,
  /** Driver handles packets with partial checksum (not offered). */
  guestCsum: 1,
  /** Control channel offloads reconfiguration (not offered). */
  ctrlGuestOffloads: 2,
  /** Device maximum MTU reporting: offered when an MTU is configured. */
  mtu: 3,
  /** Device has a given MAC address: always offered. */
  mac: 5,
  /** Driver can receive TSOv4 (not offered). */
  guestTso4: 7,
  /** Driver can receive TSOv6 (not offered). */
  guestTso6: 8,
  /** Driver can receive TSO with ECN (not offered). */
  guestEcn: 9,
  /** Driver can receive UFO (not offered). */
  guestUfo: 10,
  /** Device can receive TSOv4 (not offered). */
  hostTso4: 11,
  /** Device can receive TSOv6 (not offered). */
  hostTso6: 12,
  /** Device can receive TSO with ECN (not offered). */
  hostEcn: 13,
  /** Device can receive UFO (not offered). */
  hostUfo: 14,
  /** Driver can merge receive buffers (not offered). */
  mrgRxbuf: 15,
  /** Configuration status field is available: always offered. */
  status: 16,
  /** Control channel is available (not offered). */
  ctrlVq: 17,
  /** Multiqueue with automatic receive steering (not offered). */
  mq: 22,
} as const;

/** `status` bit: the link is up (§5.1.4). */
export const VIRTIO_NET_S_LINK_UP = 1;

/** Device configuration offsets (§5.1.4, struct virtio_net_config). */
export const NET_CONFIG = {
  /** u8 mac[6]. */
  mac: 0,
  /** le16 status. */
  status: 6,
  /** le16 max_virtqueue_pairs. */
  maxVirtqueuePairs: 8,
  /** le16 mtu. */
  mtu: 10,
  /** Bytes dhyve exposes: through mtu (speed/duplex and RSS are not offered). */
  size: 12,
} as const;

/**
 * Bytes of struct virtio_net_hdr with VERSION_1 (§5.1.6): flags u8,
 * gso_type u8, hdr_len le16, gso_size le16, csum_start le16, csum_offset
 * le16, num_buffers le16. num_buffers is always there in the modern
 * interface (§5.1.6.1).
 */
export const NET_HDR_SIZE = 12;
/** Offset of gso_type in the header. */
const HDR_GSO_TYPE = 1;
/** Offset of num_buffers in the header. */
const HDR_NUM_BUFFERS = 10;
/** gso_type GSO_NONE; bit 7 is the ECN flag (§5.1.6). */
const GSO_TYPE_MASK = 0x7f;

/** Bytes of an Ethernet header (destination, source, EtherType). */
export const ETH_HLEN = 14;
/** Bytes of an 802.1Q tag, allowed on top of the MTU on receive. */
const VLAN_HLEN = 4;
/** The largest frame either direction carries: a 65535-byte payload plus the Ethernet header. */
export const NET_MAX_FRAME = 65535 + ETH_HLEN;

/** Queue indices (§5.1.2, without MQ or CTRL_VQ). */
export const NET_QUEUE = { rx: 0, tx: 1 } as const;
/** Size of each queue. */
export const NET_QUEUE_SIZE = 256;
/** PCI class: network controller, Ethernet. */
export const NET_PCI_CLASS = 0x020000;

/** Receive calls per ready() before giving the worker back (the tap stays readable). */
const RX_BATCH = 256;
/** Consecutive receive failures after which the tap is no longer polled. */
const RX_MAX_ERRORS = 64;

// ---------------------------------------------------------------------------
// The model.

/** The host end of a virtio-net device: a tap opened IFF_TAP | IFF_NO_PI, non-blocking. */
export interface NetBackend {
  /** The fd to poll for readability (frames from the host). */
  readonly fd: number;
  /**
   * Sends one Ethernet frame (no virtio header) to the host. The buffer is
   * only valid during the call. May throw: the frame is dropped and counted.
   */
  send(frame: Uint8Array): void;
  /**
   * Receives one frame into `buf`: its length, or 0 when none is waiting. A
   * frame longer than `buf` may come back truncated to `buf.length`. May throw.
   */
  receive(buf: Uint8Array): number;
}

/** What a virtio-net device is configured with. */
export interface VirtioNetOptions {
  /** The MAC address (6 bytes). */
  readonly mac: Uint8Array;
  /** The MTU to advertise (VIRTIO_NET_F_MTU, 68..65535); absent: not offered. */
  readonly mtu?: number;
}

/**
 * The virtio-net device model (§5.1): class 0x020000, receiveq0 and
 * transmitq0 of 256 entries, features MAC, STATUS and (when `mtu` is given)
 * MTU; config mac, status = LINK_UP, max_virtqueue_pairs = 1, mtu. Throws
 * RangeError on a MAC that is not 6 bytes or an MTU outside 68..65535
 * (§5.1.4.1).
 */
export function virtioNetModel(o: VirtioNetOptions): VirtioDeviceModel {
  if (o.mac.length !== 6) {
    throw new RangeError(`virtio-net: the MAC has ${o.mac.length} bytes, not 6`);
  }
  const mac = Uint8Array.from(o.mac);
  const mtu = o.mtu;
  // §5.1.4.1: the device MUST set mtu to between 68 and 65535 inclusive.
  if (mtu !== undefined && !(Number.isInteger(mtu) && mtu >= 68 && mtu <= 65535)) {
    throw new RangeError(`virtio-net: MTU ${mtu} is not in 68..65535`);
  }
  let features = featureBit(VIRTIO_NET_F.mac) | featureBit(VIRTIO_NET_F.status);
  if (mtu !== undefined) features |= featureBit(VIRTIO_NET_F.mtu);
  return {
    deviceId: VIRTIO_ID.net,
    pciClass: NET_PCI_CLASS,
    features,
    queueSizes: [NET_QUEUE_SIZE, NET_QUEUE_SIZE],
    configSize: NET_CONFIG.size,
    initConfig(config: Uint8Array): void {
      const v = new DataView(config.buffer, config.byteOffset, config.byteLength);
      config.fill(0, 0, NET_CONFIG.size);
      config.set(mac, NET_CONFIG.mac);
      // §5.1.4: with STATUS, bit 0 is the link state; there is no carrier to lose.
      v.setUint16(NET_CONFIG.status, VIRTIO_NET_S_LINK_UP, true);
      // §5.1.4: only meaningful with MQ/RSS (not offered); 1 pair is the truth.
      v.setUint16(NET_CONFIG.maxVirtqueuePairs, 1, true);
      // §5.1.4: only meaningful with MTU; 0 otherwise.
      v.setUint16(NET_CONFIG.mtu, mtu ?? 0, true);
    },
  };
}

// ---------------------------------------------------------------------------
// The queue handler.

/** Counters of a virtio-net handler (frames and bytes exclude the virtio header). */
export interface NetStats {
  /** Frames delivered to the guest. */
  rxFrames: number;
  /** Bytes delivered to the guest. */
  rxBytes: number;
  /** Frames from the host dropped: too short, too long, or larger than the guest's buffer. */
  rxDropped: number;
  /** Receive buffers returned empty because they cannot hold any frame. */
  rxBadBuffers: number;
  /** Failed backend receives. */
  rxErrors: number;
  /** Frames sent to the host. */
  txFrames: number;
  /** Bytes sent to the host. */
  txBytes: number;
  /** Guest frames dropped: short header, GSO, runt or oversized frame. */
  txDropped: number;
  /** Frames the backend refused (send threw). */
  txErrors: number;
}

/** A virtio-net queue handler with its counters. */
export type NetHandler = VirtioQueueHandler & { readonly stats: Readonly<NetStats> };

/**
 * The work of a virtio-net device in its I/O worker: transmits the guest's
 * frames to `backend`, and delivers the backend's frames into the guest's
 * receive buffers while it has some (see the module notes). `queues` are
 * the enabled queues by index (null: not enabled by the driver). The
 * handler's notify() throws {@linkcode VirtqueueError} on a malformed ring.
 */
export function createNetHandler(
  ctx: VirtioQueueContext,
  queues: readonly (SplitQueue | null | undefined)[],
  backend: NetBackend,
): NetHandler {
  return new NetQueueHandler(ctx, queues, backend);
}

class NetQueueHandler implements VirtioQueueHandler {
  readonly stats: NetStats = {
    rxFrames: 0,
    rxBytes: 0,
    rxDropped: 0,
    rxBadBuffers: 0,
    rxErrors: 0,
    txFrames: 0,
    txBytes: 0,
    txDropped: 0,
    txErrors: 0,
  };
  readonly #ctx: VirtioQueueContext;
  readonly #rx: SplitQueue | null;
  readonly #tx: SplitQueue | null;
  readonly #backend: NetBackend;
  /** The largest frame handed to the guest (§5.1.4.1 with MTU). */
  readonly #rxLimit: number;
  /** One frame from the tap; one byte more than the largest, to see truncation. */
  readonly #rxBuf = new Uint8Array(NET_MAX_FRAME + 1);
  /** One frame to the tap. */
  readonly #txBuf = new Uint8Array(NET_MAX_FRAME);
  readonly #hdr = new Uint8Array(NET_HDR_SIZE);
  readonly #rxHdr = new Uint8Array(NET_HDR_SIZE);
  /** A receive chain popped but not used yet (its frame did not fit). */
  #rxHeld: DescriptorChain | null = null;
  /** The receive queue ran out of buffers: the tap is not polled until it is notified. */
  #rxStarved = false;
  /** Receiving failed too often: the tap is no longer polled. */
  #rxBroken = false;
  #rxErrorRun = 0;
  #closed = false;

  constructor(
    ctx: VirtioQueueContext,
    queues: readonly (SplitQueue | null | undefined)[],
    backend: NetBackend,
  ) {
    this.#ctx = ctx;
    this.#rx = queues[NET_QUEUE.rx] ?? null;
    this.#tx = queues[NET_QUEUE.tx] ?? null;
    this.#backend = backend;
    let limit = NET_MAX_FRAME;
    if (ctx.features & featureBit(VIRTIO_NET_F.mtu)) {
      // §5.1.4.1: with MTU negotiated, the device MUST NOT pass received
      // packets larger than mtu plus the low-level Ethernet header (an
      // 802.1Q tag included, as Linux sizes its buffers).
      const c = ctx.config;
      const mtu = c.length >= NET_CONFIG.mtu + 2
        ? c[NET_CONFIG.mtu] | (c[NET_CONFIG.mtu + 1] << 8)
        : 0;
      if (mtu >= 68) limit = Math.min(limit, mtu + ETH_HLEN + VLAN_HLEN);
    }
    this.#rxLimit = limit;
    // §5.1.6.4: the header of a received frame: flags 0, GSO_NONE, no
    // checksum information, and num_buffers 1 (no MRG_RXBUF, §5.1.6.4.1).
    this.#rxHdr[HDR_NUM_BUFFERS] = 1;
  }

  notify(q: number): void {
    if (this.#closed) return;
    if (q === NET_QUEUE.tx) this.#serveTx();
    else if (q === NET_QUEUE.rx) {
      // §5.1.6.3: the driver posted receive buffers: poll the tap again.
      this.#rxStarved = false;
      this.#serveRx();
    }
  }

  pollFds(): readonly number[] {
    if (this.#closed || !this.#rx || this.#rxStarved || this.#rxBroken) return [];
    return [this.#backend.fd];
  }

  ready(fd: number): void {
    if (this.#closed || fd !== this.#backend.fd) return;
    this.#serveRx();
  }

  close(): void {
    // Reset (§2.1, §4.1.4.3.2): the rings are gone; a held chain is simply forgotten.
    this.#closed = true;
    this.#rxHeld = null;
  }

  /** Transmits everything available (§5.1.6.2), then re-arms notifications. */
  #serveTx(): void {
    const q = this.#tx;
    if (!q) return;
    for (;;) {
      let served = 0;
      for (let chain = q.pop(); chain !== null; chain = q.pop()) {
        this.#transmit(chain);
        // §2.7.8: len counts the bytes written into the buffer: none here.
        q.push(chain.head, 0);
        if (++served === q.size) {
          // A driver that keeps the ring full would starve receive: give it a turn.
          if (q.shouldInterrupt()) this.#ctx.interrupt(NET_QUEUE.tx);
          this.#serveRx();
          served = 0;
        }
      }
      if (q.shouldInterrupt()) this.#ctx.interrupt(NET_QUEUE.tx);
      // §2.7.10: ask for a notification, then look once more (a buffer made
      // available before the driver saw avail_event brings none).
      q.armNotification();
      if (q.pending() === 0) return;
    }
  }

  /** Sends one transmit chain's frame to the backend, or drops and counts it. */
  #transmit(chain: DescriptorChain): void {
    const total = chain.readableLength;
    if (total < NET_HDR_SIZE) {
      this.stats.txDropped++;
      this.#ctx.log(`transmit chain ${chain.head}: ${total} bytes, shorter than the header`);
      return;
    }
    const reader = new ChainReader(this.#ctx.memory, chain);
    reader.readInto(this.#hdr);
    // §5.1.6.2.1: without HOST_TSO*/UFO/USO the driver MUST NOT send GSO
    // frames; the tap could not segment one, so it is dropped. The flags are
    // ignored (§5.1.6.2.1: NEEDS_CSUM needs CSUM, which was not offered).
    if ((this.#hdr[HDR_GSO_TYPE] & GSO_TYPE_MASK) !== 0) {
      this.stats.txDropped++;
      this.#ctx.log(`transmit chain ${chain.head}: GSO frame without a GSO feature`);
      return;
    }
    const len = total - NET_HDR_SIZE;
    if (len < ETH_HLEN || len > NET_MAX_FRAME) {
      this.stats.txDropped++;
      this.#ctx.log(`transmit chain ${chain.head}: a ${len}-byte frame`);
      return;
    }
    const frame = this.#txBuf.subarray(0, len);
    reader.readInto(frame);
    try {
      this.#backend.send(frame);
    } catch (e) {
      this.stats.txErrors++;
      this.#ctx.log(`transmit: ${errorText(e)}`);
      return;
    }
    this.stats.txFrames++;
    this.stats.txBytes += len;
  }

  /**
   * Delivers frames from the backend while the receive queue has buffers
   * (§5.1.6.4), at most {@linkcode RX_BATCH} receives per call. With no
   * buffers left it arms a notification and stops polling the tap.
   */
  #serveRx(): void {
    const q = this.#rx;
    if (!q || this.#rxStarved || this.#rxBroken || this.#closed) return;
    for (let i = 0; i < RX_BATCH; i++) {
      let chain = this.#rxHeld;
      if (chain === null) {
        chain = q.pop();
        if (chain === null) {
          // §2.7.10: a notification when the driver posts the next buffer.
          q.armNotification();
          if (q.pending() > 0) continue;
          this.#rxStarved = true;
          break;
        }
        if (chain.writableLength < NET_HDR_SIZE + ETH_HLEN) {
          // No frame can ever fit: hand it back empty rather than hold the queue.
          this.stats.rxBadBuffers++;
          this.#ctx.log(`receive chain ${chain.head}: ${chain.writableLength} writable bytes`);
          q.push(chain.head, 0);
          continue;
        }
        this.#rxHeld = chain;
      }
      let n: number;
      try {
        n = this.#backend.receive(this.#rxBuf);
      } catch (e) {
        this.stats.rxErrors++;
        this.#ctx.log(`receive: ${errorText(e)}`);
        if (++this.#rxErrorRun >= RX_MAX_ERRORS) {
          this.#rxBroken = true;
          this.#ctx.log(`receive failed ${RX_MAX_ERRORS} times in a row: no longer reading`);
        }
        break;
      }
      this.#rxErrorRun = 0;
      if (!(n > 0)) break; // nothing waiting
      if (n < ETH_HLEN || n > this.#rxLimit || NET_HDR_SIZE + n > chain.writableLength) {
        // A runt, a frame over the MTU, or one longer than this buffer (no
        // MRG_RXBUF to spread it): dropped; the chain waits for the next one.
        this.stats.rxDropped++;
        continue;
      }
      const w = new ChainWriter(this.#ctx.memory, chain);
      w.write(this.#rxHdr);
      w.write(this.#rxBuf.subarray(0, n));
      this.#rxHeld = null;
      q.push(chain.head, w.written);
      this.stats.rxFrames++;
      this.stats.rxBytes += n;
    }
    if (q.shouldInterrupt()) this.#ctx.interrupt(NET_QUEUE.rx);
  }
}

/**
 * The MSI routes of a VM's irqfds, shared by every thread: KVM's GSI
 * routing table (KVM_SET_GSI_ROUTING) holds dhyve's fixed irqchip routes
 * (lib/irq.ts) plus one MSI route per slot here, and the call replaces the
 * whole table. A virtio device's I/O thread owns a run of slots, one per
 * MSI-X vector, each bound to an eventfd with KVM_IRQFD: when the guest
 * programs a vector (or moves it), the thread sets its slot and reinstalls
 * the table, under the device lock, which serializes every update.
 *
 * @module
 */
import { type GsiRoute, setGsiRouting } from "../../cpu/kvm.ts";
import { gsiRoutes } from "../irq.ts";

/** The GSI of slot 0 (above lib/irq.ts's fixed GSIs, 0-55). */
export const MSI_GSI_BASE = 64;
/** Words per slot: valid, address low, address high, data. */
const SLOT_WORDS = 4;

/** The shared MSI route slots of one VM. */
export class MsiRouteTable {
  readonly #w: Int32Array;

  /** A table of `slots` slots, or the table another thread made (its buffer). */
  constructor(from: number | SharedArrayBuffer) {
    this.#w = new Int32Array(
      typeof from === "number" ? new SharedArrayBuffer(Math.max(1, from) * SLOT_WORDS * 4) : from,
    );
  }

  /** The buffer, for other threads. */
  get buffer(): SharedArrayBuffer {
    return this.#w.buffer as SharedArrayBuffer;
  }

  /** Slots in the table. */
  get slots(): number {
    return this.#w.length / SLOT_WORDS;
  }

  /** The GSI of `slot`. */
  static gsi(slot: number): number {
    return MSI_GSI_BASE + slot;
  }

  /** Whether `slot` routes to (address, data) already. */
  routes(slot: number, address: number, data: number): boolean {
    const at = slot * SLOT_WORDS, w = this.#w;
    return w[at] === 1 && w[at + 1] === (address | 0) &&
      w[at + 2] === (Math.floor(address / 2 ** 32) | 0) && w[at + 3] === (data | 0);
  }

  /**
   * Routes `slot` to the message (address, data) and installs the VM's
   * whole routing table on `vmFd`. Call with the device lock held.
   */
  set(vmFd: number, slot: number, address: number, data: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots) {
      throw new RangeError(`MSI route slot ${slot} of ${this.slots}`);
    }
    const at = slot * SLOT_WORDS, w = this.#w;
    w[at + 1] = address | 0;
    w[at + 2] = Math.floor(address / 2 ** 32) | 0;
    w[at + 3] = data | 0;
    w[at] = 1;
    setGsiRouting(vmFd, this.table());
  }

  /** The whole routing table: the fixed irqchip routes and every set slot. */
  table(): GsiRoute[] {
    const out = gsiRoutes();
    const w = this.#w;
    for (let slot = 0; slot < this.slots; slot++) {
      const at = slot * SLOT_WORDS;
      if (w[at] !== 1) continue;
      out.push({
        gsi: MsiRouteTable.gsi(slot),
        kind: "msi",
        address: (w[at + 1] >>> 0) + (w[at + 2] >>> 0) * 2 ** 32,
        data: w[at + 3] >>> 0,
      });
    }
    return out;
  }

  /** Forgets every route (a new KVM instance starts with the fixed ones). */
  clear(): void {
    this.#w.fill(0);
  }
}

/**
 * A virtio device's host resources as plain data, and their opening: the
 * main thread opens them once per machine (so a missing image or a tap that
 * cannot be attached stops `up` before the VM runs), they last across VM
 * resets, and each I/O Worker receives their file descriptor numbers.
 *
 * @module
 */
import type { PciConfig } from "../config.ts";
import { showPath } from "../quote.ts";
import { closeFd, listenUnix, newEventfd, openTap } from "./host_io.ts";
import { libc } from "../../cpu/libc.ts";

/** The I/O Worker's stop block: Int32 [IO_STOP] = 1 asks it to stop. */
export const IO_STOP = 0;
/** ... and it sets [IO_STOPPED] = 1 when it has. */
export const IO_STOPPED = 1;

/** Queues of each virtio type (virtio 1.2 §5.1.2, §5.2.2, §5.3.2, §5.4.2). */
export const VIRTIO_QUEUES: Readonly<Record<VirtioType, number>> = {
  "virtio-blk": 1,
  "virtio-net": 2,
  "virtio-console": 2,
  "virtio-rng": 1,
};

/** MSI-X vectors of a virtio type: one per queue and one for configuration changes. */
export function virtioVectors(type: VirtioType): number {
  return VIRTIO_QUEUES[type] + 1;
}

/** The `[[pci]]` types that are virtio devices. */
export type VirtioType = "virtio-blk" | "virtio-net" | "virtio-console" | "virtio-rng";

/** A `[[pci]]` entry of a virtio type. */
export type VirtioPciConfig = Extract<PciConfig, { type: VirtioType }>;

/** Whether a `[[pci]]` entry is a virtio device. */
export function isVirtio(p: PciConfig): p is VirtioPciConfig {
  return p.type in VIRTIO_QUEUES;
}

/** The notification eventfds every virtio device has. */
interface VirtioFds {
  /** One eventfd per queue: a notify of queue q signals queueFds[q]. */
  readonly queueFds: readonly number[];
  /** Wakes the I/O Worker for a status change, a moved BAR or a stop. */
  readonly wakeFd: number;
  /** One eventfd per MSI-X vector (queues + 1), bound with KVM_IRQFD to its MSI route. */
  readonly irqFds: readonly number[];
  /** The first of the device's slots in the VM's MSI route table, one per vector. */
  readonly routeSlot: number;
}

/** A virtio device's host side, as the I/O Worker receives it. */
export type VirtioHostSpec =
  & VirtioFds
  & (
    | {
      readonly kind: "virtio-blk";
      readonly fd: number;
      readonly path: string;
      readonly size: number;
      readonly readonly: boolean;
      readonly options: {
        readonly size: number;
        readonly readonly: boolean;
        readonly serial: string;
        readonly discard: boolean;
      };
    }
    | { readonly kind: "virtio-net"; readonly fd: number; readonly tap: string }
    | {
      readonly kind: "virtio-console";
      readonly fd: number;
      readonly file?: string;
      readonly socket?: string;
    }
    | { readonly kind: "virtio-rng" }
  );

/** O_RDWR / O_RDONLY / O_WRONLY|O_CREAT|O_TRUNC, O_CLOEXEC (x86-64). */
const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0o100, O_TRUNC = 0o1000;
const O_CLOEXEC = 0o2000000, O_NONBLOCK = 0o4000;

function openPath(path: string, flags: number, what: string): number {
  const c = libc();
  const fd = c.fn.open(new TextEncoder().encode(path + "\0"), flags | O_CLOEXEC, 0o644);
  if (fd < 0) throw new Error(`cannot open ${what} ${showPath(path)}: ${c.strerror(c.errno())}`);
  return fd;
}

/**
 * Opens the host side of virtio entry `p`: its eventfds and its backend
 * (the image, the tap, the console file or socket). Returns the spec and a
 * function that releases all of it.
 */
export function openVirtioHost(
  p: VirtioPciConfig,
  routeSlot: number,
): { spec: VirtioHostSpec; close(): void } {
  const fds: number[] = [];
  const cleanups: (() => void)[] = [() => fds.forEach(closeFd)];
  const close = () => cleanups.splice(0).reverse().forEach((f) => f());
  try {
    const queueFds = Array.from({ length: VIRTIO_QUEUES[p.type] }, () => {
      const fd = newEventfd();
      fds.push(fd);
      return fd;
    });
    const wakeFd = newEventfd();
    fds.push(wakeFd);
    const irqFds = Array.from({ length: virtioVectors(p.type) }, () => {
      const fd = newEventfd();
      fds.push(fd);
      return fd;
    });
    const base = { queueFds, wakeFd, irqFds, routeSlot };
    let spec: VirtioHostSpec;
    switch (p.type) {
      case "virtio-blk": {
        const fd = openPath(p.path, p.readonly ? O_RDONLY : O_RDWR, "disk image");
        fds.push(fd);
        spec = {
          ...base,
          kind: p.type,
          fd,
          path: p.path,
          size: p.size,
          readonly: p.readonly,
          options: { size: p.size, readonly: p.readonly, serial: p.serial, discard: p.discard },
        };
        break;
      }
      case "virtio-net": {
        const fd = openTap(p.tap);
        fds.push(fd);
        spec = { ...base, kind: p.type, fd, tap: p.tap };
        break;
      }
      case "virtio-console": {
        if (p.socket !== undefined) {
          const fd = listenUnix(p.socket);
          fds.push(fd);
          const path = p.socket;
          cleanups.push(() => {
            try {
              Deno.removeSync(path);
            } catch { /* gone */ }
          });
          spec = { ...base, kind: p.type, fd, socket: p.socket };
        } else {
          const fd = openPath(
            p.file!,
            O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK,
            "console file",
          );
          fds.push(fd);
          spec = { ...base, kind: p.type, fd, file: p.file };
        }
        break;
      }
      case "virtio-rng":
        spec = { ...base, kind: p.type };
        break;
    }
    return { spec, close };
  } catch (e) {
    close();
    throw e;
  }
}

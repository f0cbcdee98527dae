/**
 * The host side of the virtio devices: eventfds, poll(2), and the backends
 * the device models in devices/virtio/ are given (a disk image, a tap
 * device, a console file or unix socket, the host's random numbers).
 *
 * Every function works on plain file descriptor numbers, which are valid in
 * every thread of the process: the main thread opens a device's files when
 * it builds the machine (so a missing image or a busy tap is reported before
 * the VM starts) and the device's I/O Worker uses them.
 *
 * @module
 */
import { cString, EAGAIN, EINTR, libc } from "../../cpu/libc.ts";
import type { BlockBackend } from "../../devices/virtio/blk.ts";
import type { ConsoleBackend } from "../../devices/virtio/console.ts";
import type { NetBackend } from "../../devices/virtio/net.ts";
import type { RandomSource } from "../../devices/virtio/rng.ts";

/** eventfd(2) flags (linux/eventfd.h). */
const EFD_CLOEXEC = 0o2000000, EFD_NONBLOCK = 0o4000;
/** poll(2) events. */
export const POLLIN = 0x1;
const POLLOUT = 0x4;
const POLLERR = 0x8, POLLHUP = 0x10, POLLNVAL = 0x20;
/** fallocate(2) modes (linux/falloc.h). */
const FALLOC_FL_KEEP_SIZE = 0x01, FALLOC_FL_PUNCH_HOLE = 0x02, FALLOC_FL_ZERO_RANGE = 0x10;
/** socket(2) constants (x86-64). */
const AF_UNIX = 1, SOCK_STREAM = 1, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000;
/** open(2) flags. */
const O_RDWR = 2, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
/** TUNSETIFF = _IOW('T', 202, int) and its flags (linux/if_tun.h). */
const TUNSETIFF = 0x400454ca, IFF_TAP = 0x0002, IFF_NO_PI = 0x1000;
/** IFNAMSIZ (linux/if.h). */
export const IFNAMSIZ = 16;

/** A host call that failed: what was done, on what, and the errno text. */
export class HostIoError extends Error {
  /** The errno value. */
  readonly errno: number;
  /** Builds the error from the calling thread's errno. */
  constructor(what: string, errno = libc().errno()) {
    super(`${what}: ${libc().strerror(errno)}`);
    this.name = "HostIoError";
    this.errno = errno;
  }
}

// ---------------------------------------------------------------------------
// eventfds and poll.

/** A new non-blocking eventfd (counter 0). */
export function newEventfd(): number {
  const fd = libc().fn.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) throw new HostIoError("eventfd");
  return fd;
}

const ONE = new BigUint64Array([1n]);
const ONE_BYTES = new Uint8Array(ONE.buffer);
const DRAIN = new Uint8Array(8);

/** Adds 1 to eventfd `fd`, waking whoever polls it. */
export function signalEventfd(fd: number): void {
  libc().fn.write(fd, ONE_BYTES, 8n);
}

/** Reads and clears eventfd `fd`'s counter; true when it was non-zero. */
export function drainEventfd(fd: number): boolean {
  return Number(libc().fn.read(fd, DRAIN, 8n)) === 8;
}

/** Closes `fd`, ignoring errors (best effort on the way out). */
export function closeFd(fd: number): void {
  if (fd >= 0) libc().fn.close(fd);
}

/**
 * Blocks until one of `readable` is readable or one of `writable` writable
 * (or either in error), or `timeoutMs` passes (-1: no limit); returns the
 * ready fds. EINTR returns [].
 */
export function pollFds(
  readable: readonly number[],
  writable: readonly number[],
  timeoutMs: number,
): number[] {
  const fds = [...readable, ...writable];
  const buf = new Uint8Array(fds.length * 8);
  const dv = new DataView(buf.buffer);
  fds.forEach((fd, i) => {
    dv.setInt32(i * 8, fd, true);
    dv.setInt16(i * 8 + 4, i < readable.length ? POLLIN : POLLOUT, true);
  });
  const c = libc();
  const n = c.fn.poll(buf, BigInt(fds.length), timeoutMs);
  if (n < 0) {
    const e = c.errno();
    if (e === EINTR) return [];
    throw new HostIoError("poll", e);
  }
  const out: number[] = [];
  for (let i = 0; i < fds.length && out.length < n; i++) {
    const ev = dv.getInt16(i * 8 + 6, true);
    if (ev & (POLLIN | POLLOUT | POLLERR | POLLHUP | POLLNVAL)) out.push(fds[i]);
  }
  return out;
}

// ---------------------------------------------------------------------------
// A raw disk image.

/**
 * A disk image through pread/pwrite straight into guest buffers: no copy,
 * no seek (one file position would race nothing, but pread needs none).
 */
export class FileBlockBackend implements BlockBackend {
  readonly #fd: number;
  readonly #path: string;
  /** Bytes of the image. */
  readonly size: number;
  /** Whether the guest may only read. */
  readonly readonly: boolean;

  /** Wraps an open image (`fd` of `path`, `size` bytes). */
  constructor(fd: number, path: string, size: number, readonly: boolean) {
    this.#fd = fd;
    this.#path = path;
    this.size = size;
    this.readonly = readonly;
  }

  /** Reads `dst.length` bytes at `offset`; a short read (the file shrank) fills zeros. */
  read(offset: number, dst: Uint8Array): void {
    const c = libc();
    let done = 0;
    while (done < dst.length) {
      const n = Number(
        c.fn.pread(this.#fd, dst.subarray(done), BigInt(dst.length - done), BigInt(offset + done)),
      );
      if (n < 0) {
        if (c.errno() === EINTR) continue;
        throw new HostIoError(`read of ${this.#path} at ${offset + done}`);
      }
      if (n === 0) {
        dst.fill(0, done);
        return;
      }
      done += n;
    }
  }

  /** Writes `src` at `offset`. */
  write(offset: number, src: Uint8Array): void {
    if (this.readonly) throw new Error(`${this.#path} is read-only`);
    const c = libc();
    let done = 0;
    while (done < src.length) {
      const n = Number(
        c.fn.pwrite(this.#fd, src.subarray(done), BigInt(src.length - done), BigInt(offset + done)),
      );
      if (n < 0) {
        if (c.errno() === EINTR) continue;
        throw new HostIoError(`write of ${this.#path} at ${offset + done}`);
      }
      if (n === 0) throw new Error(`write of ${this.#path} at ${offset + done}: no progress`);
      done += n;
    }
  }

  /** fdatasync: what was written reaches the disk. */
  flush(): void {
    if (libc().fn.fdatasync(this.#fd) < 0) throw new HostIoError(`fdatasync of ${this.#path}`);
  }

  /** Punches a hole: the range reads zeros and gives its blocks back to the host. */
  discard(offset: number, length: number): void {
    this.#fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length, "discard");
  }

  /** Zeroes a range: by punching a hole when the guest allows unmapping, else in place. */
  writeZeroes(offset: number, length: number, unmap: boolean): void {
    if (unmap) return this.discard(offset, length);
    try {
      this.#fallocate(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length, "write-zeroes");
    } catch {
      // A file system without ZERO_RANGE (tmpfs before 6.x): write the zeros.
      const zeros = new Uint8Array(Math.min(length, 1 << 20));
      for (let at = 0; at < length; at += zeros.length) {
        this.write(offset + at, zeros.subarray(0, Math.min(zeros.length, length - at)));
      }
    }
  }

  #fallocate(mode: number, offset: number, length: number, what: string): void {
    if (this.readonly) throw new Error(`${this.#path} is read-only`);
    if (libc().fn.fallocate(this.#fd, mode, BigInt(offset), BigInt(length)) < 0) {
      throw new HostIoError(`${what} of ${this.#path} [${offset}, +${length})`);
    }
  }
}

// ---------------------------------------------------------------------------
// A tap device.

/**
 * Opens (or creates, when allowed) tap device `name` through /dev/net/tun,
 * non-blocking, plain Ethernet frames (IFF_TAP | IFF_NO_PI). Returns its fd.
 */
export function openTap(name: string): number {
  const c = libc();
  const fd = c.fn.open(cString("/dev/net/tun"), O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd < 0) throw new HostIoError("cannot open /dev/net/tun");
  // struct ifreq: char ifr_name[IFNAMSIZ]; short ifr_flags; (40 bytes in all).
  const ifr = new Uint8Array(40);
  const nameBytes = new TextEncoder().encode(name);
  if (nameBytes.length >= IFNAMSIZ) {
    c.fn.close(fd);
    throw new Error(`tap name "${name}" is longer than ${IFNAMSIZ - 1} bytes`);
  }
  ifr.set(nameBytes);
  new DataView(ifr.buffer).setInt16(IFNAMSIZ, IFF_TAP | IFF_NO_PI, true);
  if (c.fn.ioctlBuf(fd, TUNSETIFF, ifr) < 0) {
    const e = c.errno();
    c.fn.close(fd);
    throw new HostIoError(`cannot attach to tap device ${name}`, e);
  }
  return fd;
}

/** A tap device as a virtio-net backend. */
export class TapBackend implements NetBackend {
  /** The tap's fd (polled for frames from the host). */
  readonly fd: number;
  readonly #name: string;

  /** Wraps tap `name` open on `fd` (see {@linkcode openTap}). */
  constructor(fd: number, name: string) {
    this.fd = fd;
    this.#name = name;
  }

  /** Sends one frame to the host; a full queue or a vanished tap throws (the frame is dropped). */
  send(frame: Uint8Array): void {
    const c = libc();
    const n = Number(c.fn.write(this.fd, frame, BigInt(frame.length)));
    if (n < 0) throw new HostIoError(`write to tap ${this.#name}`);
  }

  /** One frame from the host into `buf`, or 0 when none is waiting. */
  receive(buf: Uint8Array): number {
    const c = libc();
    const n = Number(c.fn.read(this.fd, buf, BigInt(buf.length)));
    if (n >= 0) return n;
    const e = c.errno();
    if (e === EAGAIN || e === EINTR) return 0;
    throw new HostIoError(`read from tap ${this.#name}`, e);
  }
}

// ---------------------------------------------------------------------------
// Console ports.

/** A console port written to a file (or a device): output only. */
export class FileConsoleBackend implements ConsoleBackend {
  /** No input. */
  readonly fd: number | null = null;
  readonly #out: number;
  readonly #path: string;

  /** Wraps `fd`, open for writing on `path`. */
  constructor(fd: number, path: string) {
    this.#out = fd;
    this.#path = path;
  }

  /** The file (a FIFO or terminal may be full). */
  get outFd(): number {
    return this.#out;
  }

  /** Writes what the file takes now. */
  write(bytes: Uint8Array): number {
    const c = libc();
    const n = Number(c.fn.write(this.#out, bytes, BigInt(bytes.length)));
    if (n >= 0) return n;
    const e = c.errno();
    if (e === EAGAIN || e === EINTR) return 0;
    throw new HostIoError(`write to ${this.#path}`, e);
  }

  /** Never any input. */
  read(_buf: Uint8Array): number {
    return -1;
  }
}

/**
 * Creates a listening unix stream socket at `path` (non-blocking). A stale
 * socket file left by an earlier run is replaced; any other file is not.
 */
export function listenUnix(path: string): number {
  const bytes = new TextEncoder().encode(path);
  // struct sockaddr_un: sa_family_t (2 bytes), char sun_path[108].
  if (bytes.length >= 108) throw new Error(`socket path ${path} is longer than 107 bytes`);
  let st: Deno.FileInfo | undefined;
  try {
    st = Deno.lstatSync(path);
  } catch { /* absent */ }
  if (st && !st.isSocket) throw new Error(`${path} exists and is not a socket; it stays as it is`);
  if (st) Deno.removeSync(path); // a stale socket of an earlier run
  const c = libc();
  const fd = c.fn.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new HostIoError("socket");
  const addr = new Uint8Array(110);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(bytes, 2);
  if (c.fn.bind(fd, addr, 2 + bytes.length + 1) < 0 || c.fn.listen(fd, 1) < 0) {
    const e = c.errno();
    c.fn.close(fd);
    throw new HostIoError(`cannot listen on ${path}`, e);
  }
  return fd;
}

/**
 * A console port on a unix socket: one client at a time, both ways. With no
 * client connected, what the guest writes is dropped, as a serial port with
 * nothing attached would lose it; a new client gets what follows.
 */
export class SocketConsoleBackend implements ConsoleBackend {
  readonly #listener: number;
  readonly #path: string;
  #client = -1;

  /** Wraps the listening socket `listener` bound at `path`. */
  constructor(listener: number, path: string) {
    this.#listener = listener;
    this.#path = path;
  }

  /** The client while one is connected, else the listener (readable = a client is waiting). */
  get fd(): number {
    return this.#client >= 0 ? this.#client : this.#listener;
  }

  /** The client, while one is connected. */
  get outFd(): number | null {
    return this.#client >= 0 ? this.#client : null;
  }

  /** Writes to the client; with none, the bytes are dropped (all reported taken). */
  write(bytes: Uint8Array): number {
    if (this.#client < 0) return bytes.length;
    const c = libc();
    const n = Number(c.fn.write(this.#client, bytes, BigInt(bytes.length)));
    if (n >= 0) return n;
    const e = c.errno();
    if (e === EAGAIN || e === EINTR) return 0;
    this.#drop(); // EPIPE, ECONNRESET: the client went away
    return bytes.length;
  }

  /** Input from the client; accepts a waiting client first (then returns 0). */
  read(buf: Uint8Array): number {
    const c = libc();
    if (this.#client < 0) {
      const fd = c.fn.accept4(this.#listener, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) this.#client = fd;
      return 0;
    }
    const n = Number(c.fn.read(this.#client, buf, BigInt(buf.length)));
    if (n > 0) return n;
    if (n < 0) {
      const e = c.errno();
      if (e === EAGAIN || e === EINTR) return 0;
    }
    this.#drop(); // end of file or an error: wait for the next client
    return 0;
  }

  /** Closes the client and the listener and removes the socket file. */
  close(): void {
    this.#drop();
    closeFd(this.#listener);
    try {
      Deno.removeSync(this.#path);
    } catch { /* gone already */ }
  }

  #drop(): void {
    closeFd(this.#client);
    this.#client = -1;
  }
}

// ---------------------------------------------------------------------------
// Entropy.

/** The host's random numbers (getrandom(2) under crypto.getRandomValues). */
export const HOST_RANDOM: RandomSource = {
  fill(dst: Uint8Array): void {
    // getRandomValues takes at most 65536 bytes per call (WebCrypto).
    for (let at = 0; at < dst.length; at += 65536) {
      crypto.getRandomValues(dst.subarray(at, Math.min(dst.length, at + 65536)));
    }
  },
};

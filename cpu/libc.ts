/**
 * The libc functions dhyve calls through Deno FFI, and the only place in
 * dhyve besides `cpu/kvm.ts` that handles raw pointers.
 *
 * Every thread (the main thread and each vCPU Worker) opens its own handle
 * with {@linkcode libc}: FFI symbols cannot cross Workers. `ioctl` is variadic
 * in C; it is bound here under fixed-arity aliases (integer argument or
 * buffer argument), which is sound on x86-64 SysV because the callee reads
 * its third argument from the same register either way.
 *
 * `errno` is thread-local: {@linkcode Libc.errno} reads the calling thread's
 * copy through a view made once per thread, right after the failing call and
 * before anything else can run on that thread.
 *
 * @module
 */

const SYMBOLS = {
  open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /**
   * ioctl(fd, request, unsigned long arg). The request is bound as u32: the
   * kernel's sys_ioctl takes `unsigned int cmd`, and every KVM request fits.
   */
  ioctl: { parameters: ["i32", "u32", "usize"], result: "i32" },
  /** ioctl(fd, request, void *arg) */
  ioctlBuf: { parameters: ["i32", "u32", "buffer"], result: "i32", name: "ioctl" },
  mmap: {
    parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"],
    result: "pointer",
  },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  mprotect: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  getpid: { parameters: [], result: "i32" },
  /** syscall(nr, a0, a1, a2): gettid and tgkill have no glibc 2.36 wrapper in every build */
  syscall3: { parameters: ["i64", "i64", "i64", "i64"], result: "i64", name: "syscall" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  /** The XSI strerror_r: fills the buffer and returns 0, or an error number. */
  strerror_r: { parameters: ["i32", "buffer", "usize"], result: "i32", name: "__xpg_strerror_r" },
  isatty: { parameters: ["i32"], result: "i32" },
  // For the virtio devices' host side (lib/virtio/host_io.ts).
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  /** poll(struct pollfd *fds, nfds_t n, int timeout); run by an I/O Worker, which may block in it. */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize", name: "pread64" },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize", name: "pwrite64" },
  fdatasync: { parameters: ["i32"], result: "i32" },
  fallocate: { parameters: ["i32", "i32", "i64", "i64"], result: "i32", name: "fallocate64" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32" },
} as const;

/** mmap(2) protections and flags (linux/mman.h, x86-64). */
export const PROT_NONE = 0;
/** Pages may be read. */
export const PROT_READ = 1;
/** Pages may be written. */
export const PROT_WRITE = 2;
/** Pages may be executed. */
export const PROT_EXEC = 4;
/** Changes are shared (used for the kvm_run page of a vCPU fd). */
export const MAP_SHARED = 0x01;
/** Changes are private. */
export const MAP_PRIVATE = 0x02;
/** Place the mapping exactly at the given address. */
export const MAP_FIXED = 0x10;
/** Not backed by a file. */
export const MAP_ANONYMOUS = 0x20;
/** Do not reserve swap space: RAM is committed page by page on first touch. */
export const MAP_NORESERVE = 0x4000;
/** madvise: the pages may be freed; anonymous memory reads back as zeros. */
export const MADV_DONTNEED = 4;

/** open(2): open for writing only. */
export const O_WRONLY = 1;
/** open(2): open for reading and writing. */
export const O_RDWR = 2;
/** open(2): create the file if it does not exist. */
export const O_CREAT = 0o100;
/** open(2): truncate an existing file to length 0. */
export const O_TRUNC = 0o1000;
/** Close the descriptor on exec. */
export const O_CLOEXEC = 0o2000000;

const SYS_gettid = 186n;
const SYS_tgkill = 234n;
const CLOCK_MONOTONIC = 1;

/**
 * The signal that kicks a vCPU thread out of KVM_RUN (x86-64 Linux numbering).
 * Not SIGUSR1: since 2.9.2 Deno starts its inspector on 127.0.0.1:9229 when
 * the process receives SIGUSR1 (as Node does), which a hypervisor must not do.
 */
export const SIGUSR2 = 12;

/** Symbolic names of the errno values dhyve is likely to meet (asm-generic/errno-base.h). */
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  5: "EIO",
  7: "E2BIG",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  19: "ENODEV",
  22: "EINVAL",
  24: "EMFILE",
  25: "ENOTTY",
  28: "ENOSPC",
  95: "EOPNOTSUPP",
};

/** errno values dhyve branches on. */
export const EINTR = 4;
/** Resource temporarily unavailable. */
export const EAGAIN = 11;
/** Permission denied. */
export const EACCES = 13;
/** No such file or directory. */
export const ENOENT = 2;
/** Argument list too long (an ioctl's buffer is too small). */
export const E2BIG = 7;
/** Operation not permitted; also what a bare -1 from a kernel function reads as. */
export const EPERM = 1;

type LibcSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** A per-thread libc handle with errno access. */
export class Libc {
  /** The raw FFI symbols. */
  readonly fn: LibcSymbols;
  readonly #errno: Deno.UnsafePointerView;
  /** A struct timespec (tv_sec, tv_nsec: two 64-bit fields), read as 32-bit halves. */
  readonly #ts = new Uint32Array(4);
  readonly #tsBytes = new Uint8Array(this.#ts.buffer);

  /** Opens libc for the calling thread. */
  constructor() {
    this.fn = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    const p = this.fn.__errno_location();
    if (p === null) throw new Error("libc: __errno_location returned NULL");
    this.#errno = new Deno.UnsafePointerView(p);
  }

  /** The calling thread's errno. Read it immediately after the failing call. */
  errno(): number {
    return this.#errno.getInt32(0);
  }

  /** "ENOENT: No such file or directory" for an errno value. */
  strerror(errno: number): string {
    const buf = new Uint8Array(256);
    let text = "unknown error";
    if (this.fn.strerror_r(errno, buf, BigInt(buf.length)) === 0) {
      const end = buf.indexOf(0);
      text = new TextDecoder().decode(buf.subarray(0, end < 0 ? buf.length : end));
    }
    const name = ERRNO_NAMES[errno];
    return name ? `${name}: ${text}` : `errno ${errno}: ${text}`;
  }

  /** The kernel thread id of the calling thread. */
  gettid(): number {
    return Number(this.fn.syscall3(SYS_gettid, 0n, 0n, 0n));
  }

  /** Sends `sig` to thread `tid` of this process; returns false if the thread is gone. */
  tgkill(tid: number, sig: number): boolean {
    const pid = this.fn.getpid();
    return this.fn.syscall3(SYS_tgkill, BigInt(pid), BigInt(tid), BigInt(sig)) === 0n;
  }

  /**
   * CLOCK_MONOTONIC in nanoseconds since `baseSeconds` (a whole second of the
   * same clock); the same clock in every thread. Counting from a recent base
   * keeps the value exact in a double (an absolute count passes 2^53 after
   * about 104 days of host uptime).
   */
  monotonicNs(baseSeconds = 0): number {
    this.fn.clock_gettime(CLOCK_MONOTONIC, this.#tsBytes);
    return (this.#seconds() - baseSeconds) * 1e9 + this.#ts[2];
  }

  /** The current CLOCK_MONOTONIC second, a base for {@linkcode Libc.monotonicNs}. */
  monotonicSeconds(): number {
    this.fn.clock_gettime(CLOCK_MONOTONIC, this.#tsBytes);
    return this.#seconds();
  }

  /** tv_sec of the last clock_gettime: a monotonic count, positive and far below 2^53. */
  #seconds(): number {
    return this.#ts[0] + this.#ts[1] * 2 ** 32;
  }
}

let shared: Libc | undefined;

/** The calling thread's libc handle, opened on first use. */
export function libc(): Libc {
  return shared ??= new Libc();
}

/** A NUL-terminated UTF-8 copy of `s` for passing to C. */
export function cString(s: string): Uint8Array {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/**
 * x86-64 machine code for `void cpuid(u32 leaf, u32 subleaf, u32 out[4])`
 * (System V: edi = leaf, esi = subleaf, rdx = out; RBX is callee-saved and
 * CPUID writes it, so it is saved around the instruction).
 */
const CPUID_STUB = Uint8Array.of(
  0x53, // push rbx
  0x49,
  0x89,
  0xd0, // mov r8, rdx
  0x89,
  0xf8, // mov eax, edi
  0x89,
  0xf1, // mov ecx, esi
  0x0f,
  0xa2, // cpuid
  0x41,
  0x89,
  0x00, // mov [r8], eax
  0x41,
  0x89,
  0x58,
  0x04, // mov [r8+4], ebx
  0x41,
  0x89,
  0x48,
  0x08, // mov [r8+8], ecx
  0x41,
  0x89,
  0x50,
  0x0c, // mov [r8+12], edx
  0x5b, // pop rbx
  0xc3, // ret
);

const CPUID_FN = { parameters: ["u32", "u32", "buffer"], result: "void" } as const;
let cpuidFn: Deno.UnsafeFnPointer<typeof CPUID_FN> | undefined;
const cpuidOut = new Uint32Array(4);

/**
 * CPUID as this host's user space sees it: [eax, ebx, ecx, edx]. A page is
 * written with {@linkcode CPUID_STUB}, then made read+execute (never
 * writable and executable at once), once per thread.
 */
export function hostCpuid(leaf: number, subleaf: number): [number, number, number, number] {
  if (!cpuidFn) {
    const c = libc();
    const MAP_FAILED = 0xffffffffffffffffn;
    const page = c.fn.mmap(
      null,
      4096n,
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS,
      -1,
      0n,
    );
    if (page === null || Deno.UnsafePointer.value(page) === MAP_FAILED) {
      throw new Error(`hostCpuid: mmap failed: ${c.strerror(c.errno())}`);
    }
    new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(page, 4096)).set(CPUID_STUB);
    if (c.fn.mprotect(page, 4096n, PROT_READ | PROT_EXEC) !== 0) {
      throw new Error(`hostCpuid: mprotect failed: ${c.strerror(c.errno())}`);
    }
    cpuidFn = new Deno.UnsafeFnPointer(page as Deno.PointerObject<typeof CPUID_FN>, CPUID_FN);
  }
  cpuidFn.call(leaf >>> 0, subleaf >>> 0, new Uint8Array(cpuidOut.buffer));
  return [cpuidOut[0], cpuidOut[1], cpuidOut[2], cpuidOut[3]];
}

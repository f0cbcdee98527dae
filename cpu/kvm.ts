/**
 * The KVM API, one function per ioctl. Callable from any thread: each call
 * uses the calling thread's libc handle. A failing ioctl throws
 * {@linkcode KvmError} naming the ioctl and the errno text.
 *
 * Source: Documentation/virt/kvm/api.rst.
 *
 * @module
 */
import {
  cString,
  E2BIG,
  EACCES,
  ENOENT,
  EPERM,
  libc,
  MAP_SHARED,
  O_CLOEXEC,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
} from "./libc.ts";
import {
  IOCTL,
  type IoctlName,
  KVM_API_VERSION,
  KVM_CPUID2_STRUCT,
  KVM_CPUID_ENTRY2_STRUCT,
  KVM_DEBUGREGS_STRUCT,
  KVM_FPU_STRUCT,
  KVM_IOEVENTFD_STRUCT,
  KVM_IRQ_LEVEL_STRUCT,
  KVM_IRQ_ROUTING_ENTRY_STRUCT,
  KVM_IRQ_ROUTING_IRQCHIP,
  KVM_IRQ_ROUTING_MSI,
  KVM_IRQ_ROUTING_STRUCT,
  KVM_IRQCHIP_STRUCT,
  KVM_IRQFD_STRUCT,
  KVM_LAPIC_STATE_STRUCT,
  KVM_MP_STATE_STRUCT,
  KVM_MSI_STRUCT,
  KVM_MSR_ENTRY_STRUCT,
  KVM_MSRS_STRUCT,
  KVM_PIC_STATE_STRUCT,
  KVM_PIT_CONFIG_STRUCT,
  KVM_PIT_FLAGS_HPET_LEGACY,
  KVM_PIT_STATE2_STRUCT,
  KVM_REGS_STRUCT,
  KVM_RUN_STRUCT,
  KVM_SREGS_STRUCT,
  KVM_TRANSLATION_STRUCT,
  KVM_USERSPACE_MEMORY_REGION_STRUCT,
  KVM_VCPU_EVENTS_STRUCT,
  KVM_XCR_STRUCT,
  KVM_XCRS_STRUCT,
  KVM_XSAVE_STRUCT,
} from "./kvm_abi.ts";
import { decodeRegs, decodeSregs, encodeRegs, encodeSregs, type Regs, type Sregs } from "./regs.ts";

/** A failed KVM ioctl: which one, and why. */
export class KvmError extends Error {
  /** The ioctl's kernel name, e.g. KVM_CREATE_VM. */
  readonly ioctl: string;
  /** The errno value. */
  readonly errno: number;

  /** Builds the error from the ioctl name and errno. */
  constructor(ioctl: string, errno: number, detail?: string) {
    super(`${ioctl} failed: ${libc().strerror(errno)}${detail ? ` (${detail})` : ""}`);
    this.name = "KvmError";
    this.ioctl = ioctl;
    this.errno = errno;
  }
}

/** /dev/kvm is missing or cannot be opened; the message says how to fix it. */
export class KvmUnavailableError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "KvmUnavailableError";
  }
}

function check(name: IoctlName, r: number, detail?: string): number {
  if (r < 0) throw new KvmError(name, libc().errno(), detail);
  return r;
}

function ioctlInt(fd: number, name: IoctlName, arg = 0, detail?: string): number {
  return check(name, libc().fn.ioctl(fd, IOCTL[name], BigInt(arg)), detail);
}

function ioctlBuf(fd: number, name: IoctlName, buf: Uint8Array, detail?: string): number {
  return check(name, libc().fn.ioctlBuf(fd, IOCTL[name], buf), detail);
}

// --- /dev/kvm --------------------------------------------------------------

/**
 * Opens /dev/kvm and checks the API version. A missing device or a
 * permission problem becomes a {@linkcode KvmUnavailableError} whose one-line
 * message says how to fix it.
 */
export function openKvm(path = "/dev/kvm"): number {
  const c = libc();
  const fd = c.fn.open(cString(path), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) {
    const e = c.errno();
    if (e === ENOENT) {
      throw new KvmUnavailableError(
        `${path} does not exist: load KVM (modprobe kvm_intel or kvm_amd) and enable VT-x/AMD-V in the firmware`,
      );
    }
    if (e === EACCES) {
      throw new KvmUnavailableError(
        `no permission to open ${path}: add your user to its group (sudo usermod -aG kvm $USER, then log in again) or run as root`,
      );
    }
    throw new KvmUnavailableError(`cannot open ${path}: ${c.strerror(e)}`);
  }
  let version: number;
  try {
    version = ioctlInt(fd, "KVM_GET_API_VERSION");
  } catch (e) {
    c.fn.close(fd);
    throw e;
  }
  if (version !== KVM_API_VERSION) {
    c.fn.close(fd);
    throw new KvmUnavailableError(
      `${path} speaks KVM API ${version}; dhyve needs ${KVM_API_VERSION}`,
    );
  }
  return fd;
}

/** KVM_CHECK_EXTENSION: 0 when absent, else a capability-specific value. */
export function checkExtension(fd: number, cap: number): number {
  return ioctlInt(fd, "KVM_CHECK_EXTENSION", cap);
}

/** KVM_GET_VCPU_MMAP_SIZE: the size of each vCPU's kvm_run mapping. */
export function getVcpuMmapSize(kvmFd: number): number {
  return ioctlInt(kvmFd, "KVM_GET_VCPU_MMAP_SIZE");
}

/** One CPUID leaf as KVM stores it. */
export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

function encodeCpuid(entries: readonly CpuidEntry[]): Uint8Array {
  const E = KVM_CPUID_ENTRY2_STRUCT;
  const buf = new Uint8Array(KVM_CPUID2_STRUCT.size + entries.length * E.size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(KVM_CPUID2_STRUCT.o.nent, entries.length, true);
  entries.forEach((e, i) => {
    const at = KVM_CPUID2_STRUCT.o.entries + i * E.size;
    dv.setUint32(at + E.o.function, e.function >>> 0, true);
    dv.setUint32(at + E.o.index, e.index >>> 0, true);
    dv.setUint32(at + E.o.flags, e.flags >>> 0, true);
    dv.setUint32(at + E.o.eax, e.eax >>> 0, true);
    dv.setUint32(at + E.o.ebx, e.ebx >>> 0, true);
    dv.setUint32(at + E.o.ecx, e.ecx >>> 0, true);
    dv.setUint32(at + E.o.edx, e.edx >>> 0, true);
  });
  return buf;
}

/** KVM_GET_SUPPORTED_CPUID: the leaves KVM can present to a guest. */
export function getSupportedCpuid(kvmFd: number): CpuidEntry[] {
  const E = KVM_CPUID_ENTRY2_STRUCT;
  for (let n = 256; n <= 4096; n *= 2) {
    const buf = new Uint8Array(KVM_CPUID2_STRUCT.size + n * E.size);
    const dv = new DataView(buf.buffer);
    dv.setUint32(KVM_CPUID2_STRUCT.o.nent, n, true);
    const r = libc().fn.ioctlBuf(kvmFd, IOCTL.KVM_GET_SUPPORTED_CPUID, buf);
    if (r < 0) {
      const e = libc().errno();
      if (e === E2BIG) continue;
      throw new KvmError("KVM_GET_SUPPORTED_CPUID", e);
    }
    const nent = dv.getUint32(KVM_CPUID2_STRUCT.o.nent, true);
    const out: CpuidEntry[] = [];
    for (let i = 0; i < nent; i++) {
      const at = KVM_CPUID2_STRUCT.o.entries + i * E.size;
      out.push({
        function: dv.getUint32(at + E.o.function, true),
        index: dv.getUint32(at + E.o.index, true),
        flags: dv.getUint32(at + E.o.flags, true),
        eax: dv.getUint32(at + E.o.eax, true),
        ebx: dv.getUint32(at + E.o.ebx, true),
        ecx: dv.getUint32(at + E.o.ecx, true),
        edx: dv.getUint32(at + E.o.edx, true),
      });
    }
    return out;
  }
  throw new KvmError("KVM_GET_SUPPORTED_CPUID", E2BIG, "more than 4096 entries");
}

// --- VM ----------------------------------------------------------------------

/** KVM_CREATE_VM (machine type 0). */
export function createVm(kvmFd: number): number {
  return ioctlInt(kvmFd, "KVM_CREATE_VM", 0);
}

/** KVM_SET_USER_MEMORY_REGION: maps guest-physical [gpa, gpa+size) to host memory. */
export function setUserMemoryRegion(
  vmFd: number,
  slot: number,
  gpa: number,
  size: number,
  hostAddress: bigint,
  flags = 0,
): void {
  const S = KVM_USERSPACE_MEMORY_REGION_STRUCT;
  const buf = new Uint8Array(S.size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(S.o.slot, slot, true);
  dv.setUint32(S.o.flags, flags, true);
  dv.setBigUint64(S.o.guestPhysAddr, BigInt(gpa), true);
  dv.setBigUint64(S.o.memorySize, BigInt(size), true);
  dv.setBigUint64(S.o.userspaceAddr, hostAddress, true);
  ioctlBuf(vmFd, "KVM_SET_USER_MEMORY_REGION", buf, `slot ${slot} at 0x${gpa.toString(16)}`);
}

/** KVM_SET_TSS_ADDR: three pages of guest-physical space KVM needs on Intel. */
export function setTssAddr(vmFd: number, gpa: number): void {
  ioctlInt(vmFd, "KVM_SET_TSS_ADDR", gpa);
}

/** KVM_SET_IDENTITY_MAP_ADDR: one page for the real-mode identity map on Intel. */
export function setIdentityMapAddr(vmFd: number, gpa: number): void {
  const buf = new Uint8Array(8);
  new DataView(buf.buffer).setBigUint64(0, BigInt(gpa), true);
  ioctlBuf(vmFd, "KVM_SET_IDENTITY_MAP_ADDR", buf);
}

/** KVM_CREATE_IRQCHIP: in-kernel LAPICs, IOAPIC and the 8259 pair. */
export function createIrqchip(vmFd: number): void {
  ioctlInt(vmFd, "KVM_CREATE_IRQCHIP");
}

/**
 * Sets the edge/level control (ELCR) bits of the in-kernel 8259 pair for
 * the ISA IRQs in `levelIrqs` (KVM_GET_IRQCHIP / KVM_SET_IRQCHIP). The ELCR
 * masks exclude IRQs 0, 1, 2, 8 and 13, which are always edge-triggered.
 */
export function setPicLevelIrqs(vmFd: number, levelIrqs: readonly number[]): void {
  for (const chip of [0, 1]) {
    const buf = new Uint8Array(KVM_IRQCHIP_STRUCT.size);
    const dv = new DataView(buf.buffer);
    dv.setUint32(KVM_IRQCHIP_STRUCT.o.chipId, chip, true);
    ioctlBuf(vmFd, "KVM_GET_IRQCHIP", buf, `pic ${chip}`);
    const at = KVM_IRQCHIP_STRUCT.o.chip;
    let elcr = buf[at + KVM_PIC_STATE_STRUCT.o.elcr];
    for (const irq of levelIrqs) if ((irq >> 3) === chip) elcr |= 1 << (irq & 7);
    buf[at + KVM_PIC_STATE_STRUCT.o.elcr] = elcr & buf[at + KVM_PIC_STATE_STRUCT.o.elcrMask];
    ioctlBuf(vmFd, "KVM_SET_IRQCHIP", buf, `pic ${chip}`);
  }
}

/**
 * Tells the in-kernel PIT whether the HPET's LegacyReplacement is on
 * (KVM_PIT_FLAGS_HPET_LEGACY): while it is, the PIT raises no IRQ 0
 * (IA-PC HPET 1.0a, 2.3.5). KVM_GET_PIT2, then KVM_SET_PIT2.
 */
export function setPitHpetLegacy(vmFd: number, on: boolean): void {
  const buf = new Uint8Array(KVM_PIT_STATE2_STRUCT.size);
  const dv = new DataView(buf.buffer);
  ioctlBuf(vmFd, "KVM_GET_PIT2", buf);
  const flags = dv.getUint32(KVM_PIT_STATE2_STRUCT.o.flags, true);
  dv.setUint32(
    KVM_PIT_STATE2_STRUCT.o.flags,
    on ? flags | KVM_PIT_FLAGS_HPET_LEGACY : flags & ~KVM_PIT_FLAGS_HPET_LEGACY,
    true,
  );
  ioctlBuf(vmFd, "KVM_SET_PIT2", buf);
}

/** KVM_PIT_SPEAKER_DUMMY: port 0x61 reads are answered by KVM. */
export const KVM_PIT_SPEAKER_DUMMY = 1;

/** KVM_CREATE_PIT2: the in-kernel 8254. */
export function createPit2(vmFd: number, flags = 0): void {
  const buf = new Uint8Array(KVM_PIT_CONFIG_STRUCT.size);
  new DataView(buf.buffer).setUint32(KVM_PIT_CONFIG_STRUCT.o.flags, flags, true);
  ioctlBuf(vmFd, "KVM_CREATE_PIT2", buf);
}

/**
 * Reusable KVM_IRQ_LINE argument buffers, one per thread (module state is
 * per Worker), so raising an interrupt allocates nothing.
 */
const irqLevelBuf = new Uint8Array(KVM_IRQ_LEVEL_STRUCT.size);
const irqLevelView = new DataView(irqLevelBuf.buffer);

/** KVM_IRQ_LINE: drives GSI `gsi` to `level` (0 or 1). */
export function irqLine(vmFd: number, gsi: number, level: number): void {
  irqLevelView.setUint32(KVM_IRQ_LEVEL_STRUCT.o.irq, gsi, true);
  irqLevelView.setUint32(KVM_IRQ_LEVEL_STRUCT.o.level, level, true);
  ioctlBuf(vmFd, "KVM_IRQ_LINE", irqLevelBuf);
}

const msiBuf = new Uint8Array(KVM_MSI_STRUCT.size);
const msiView = new DataView(msiBuf.buffer);

/**
 * KVM_SIGNAL_MSI: delivers one message-signalled interrupt. Returns > 0 if
 * delivered, 0 if the destination had it pending already (coalesced), -1 if
 * no local APIC accepted it. The last is the guest's doing (a destination
 * no CPU has, say): KVM's delivery returns a bare -1, read as EPERM, and the
 * message is lost as on hardware, not an error of dhyve's.
 */
export function signalMsi(vmFd: number, address: number, data: number): number {
  msiView.setUint32(KVM_MSI_STRUCT.o.addressLo, address >>> 0, true);
  msiView.setUint32(KVM_MSI_STRUCT.o.addressHi, Math.floor(address / 2 ** 32) >>> 0, true);
  msiView.setUint32(KVM_MSI_STRUCT.o.data, data >>> 0, true);
  const r = libc().fn.ioctlBuf(vmFd, IOCTL.KVM_SIGNAL_MSI, msiBuf);
  if (r >= 0) return r;
  const e = libc().errno();
  if (e === EPERM) return -1;
  throw new KvmError("KVM_SIGNAL_MSI", e);
}

/** One GSI routing entry: to an irqchip pin, or to an MSI. */
export type GsiRoute =
  | { gsi: number; kind: "irqchip"; irqchip: number; pin: number }
  | { gsi: number; kind: "msi"; address: number; data: number };

/** KVM_SET_GSI_ROUTING: replaces the whole GSI routing table. */
export function setGsiRouting(vmFd: number, routes: readonly GsiRoute[]): void {
  const H = KVM_IRQ_ROUTING_STRUCT;
  const E = KVM_IRQ_ROUTING_ENTRY_STRUCT;
  const buf = new Uint8Array(H.size + routes.length * E.size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(H.o.nr, routes.length, true);
  routes.forEach((r, i) => {
    const at = H.o.entries + i * E.size;
    dv.setUint32(at + E.o.gsi, r.gsi, true);
    if (r.kind === "irqchip") {
      dv.setUint32(at + E.o.type, KVM_IRQ_ROUTING_IRQCHIP, true);
      dv.setUint32(at + E.o.irqchip, r.irqchip, true);
      dv.setUint32(at + E.o.pin, r.pin, true);
    } else {
      dv.setUint32(at + E.o.type, KVM_IRQ_ROUTING_MSI, true);
      dv.setUint32(at + E.o.msiAddressLo, r.address >>> 0, true);
      dv.setUint32(at + E.o.msiAddressHi, Math.floor(r.address / 2 ** 32) >>> 0, true);
      dv.setUint32(at + E.o.msiData, r.data >>> 0, true);
    }
  });
  ioctlBuf(vmFd, "KVM_SET_GSI_ROUTING", buf, `${routes.length} routes`);
}

/** KVM_IOEVENTFD flag: deassign a registration (api.rst 4.59). */
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 1 << 2;

/**
 * KVM_IOEVENTFD: makes a guest MMIO write of `len` bytes (0: any length,
 * KVM_CAP_IOEVENTFD_ANY_LENGTH) at `address` signal eventfd `fd` inside the
 * kernel, without an exit to user space; or, with `deassign`, undoes it.
 */
export function ioeventfd(
  vmFd: number,
  address: number,
  len: number,
  fd: number,
  deassign = false,
): void {
  const S = KVM_IOEVENTFD_STRUCT;
  const buf = new Uint8Array(S.size);
  const dv = new DataView(buf.buffer);
  dv.setBigUint64(S.o.addr, BigInt(address), true);
  dv.setUint32(S.o.len, len, true);
  dv.setInt32(S.o.fd, fd, true);
  dv.setUint32(S.o.flags, deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0, true);
  ioctlBuf(vmFd, "KVM_IOEVENTFD", buf, `0x${address.toString(16)}+${len} fd ${fd}`);
}

/** KVM_IRQFD flag: deassign (api.rst 4.75). */
export const KVM_IRQFD_FLAG_DEASSIGN = 1 << 0;

/**
 * KVM_IRQFD: a write to eventfd `fd` raises GSI `gsi` inside the kernel
 * (through the GSI routing table: an MSI route delivers its message); or,
 * with `deassign`, undoes it.
 */
export function irqfd(vmFd: number, fd: number, gsi: number, deassign = false): void {
  const S = KVM_IRQFD_STRUCT;
  const buf = new Uint8Array(S.size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(S.o.fd, fd, true);
  dv.setUint32(S.o.gsi, gsi, true);
  dv.setUint32(S.o.flags, deassign ? KVM_IRQFD_FLAG_DEASSIGN : 0, true);
  ioctlBuf(vmFd, "KVM_IRQFD", buf, `fd ${fd} gsi ${gsi}`);
}

// --- vCPU --------------------------------------------------------------------

/** KVM_CREATE_VCPU: `id` is also the vCPU's initial APIC ID on x86. */
export function createVcpu(vmFd: number, id: number): number {
  return ioctlInt(vmFd, "KVM_CREATE_VCPU", id, `id ${id}`);
}

/** The kvm_run page of a vCPU, mapped into this process. */
export interface RunPage {
  /** The host address of the mapping. */
  readonly pointer: Deno.PointerObject;
  /** The whole mapping (kvm_run followed by the PIO data page). */
  readonly bytes: Uint8Array;
  /** A DataView over {@linkcode RunPage.bytes}. */
  readonly view: DataView;
}

/** mmap()s a vCPU's kvm_run structure (shared with the kernel). */
export function mapRunPage(vcpuFd: number, mmapSize: number): RunPage {
  if (mmapSize < KVM_RUN_STRUCT.size) throw new Error(`kvm_run mapping too small: ${mmapSize}`);
  const c = libc();
  const p = c.fn.mmap(null, BigInt(mmapSize), PROT_READ | PROT_WRITE, MAP_SHARED, vcpuFd, 0n);
  if (p === null || Deno.UnsafePointer.value(p) === 0xffffffffffffffffn) {
    throw new KvmError("mmap(kvm_run)", c.errno());
  }
  const bytes = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, mmapSize));
  return { pointer: p, bytes, view: new DataView(bytes.buffer) };
}

/** Unmaps a kvm_run page. */
export function unmapRunPage(page: RunPage): void {
  libc().fn.munmap(page.pointer, BigInt(page.bytes.length));
}

/** KVM_GET_REGS. */
export function getRegs(vcpuFd: number): Regs {
  const buf = new Uint8Array(KVM_REGS_STRUCT.size);
  ioctlBuf(vcpuFd, "KVM_GET_REGS", buf);
  return decodeRegs(buf);
}

/** KVM_SET_REGS. */
export function setRegs(vcpuFd: number, regs: Regs): void {
  ioctlBuf(vcpuFd, "KVM_SET_REGS", encodeRegs(regs));
}

/** KVM_GET_SREGS. */
export function getSregs(vcpuFd: number): Sregs {
  const buf = new Uint8Array(KVM_SREGS_STRUCT.size);
  ioctlBuf(vcpuFd, "KVM_GET_SREGS", buf);
  return decodeSregs(buf);
}

/** KVM_SET_SREGS. */
export function setSregs(vcpuFd: number, sregs: Sregs): void {
  ioctlBuf(vcpuFd, "KVM_SET_SREGS", encodeSregs(sregs));
}

/**
 * KVM_GET_REGS into a caller's buffer of {@linkcode KVM_REGS_STRUCT}.size
 * bytes (api.rst 4.11): no allocation, for the hot paths.
 */
export function getRegsRaw(vcpuFd: number, buf: Uint8Array): void {
  ioctlBuf(vcpuFd, "KVM_GET_REGS", buf);
}

/**
 * KVM_SET_REGS from a caller's kvm_regs buffer (api.rst 4.12). Note that
 * KVM also drops an exception it had queued but not yet delivered
 * (arch/x86/kvm/x86.c, __set_regs).
 */
export function setRegsRaw(vcpuFd: number, buf: Uint8Array): void {
  ioctlBuf(vcpuFd, "KVM_SET_REGS", buf);
}

/** KVM_GET_SREGS into a caller's buffer of {@linkcode KVM_SREGS_STRUCT}.size bytes (api.rst 4.13). */
export function getSregsRaw(vcpuFd: number, buf: Uint8Array): void {
  ioctlBuf(vcpuFd, "KVM_GET_SREGS", buf);
}

/**
 * KVM_SET_SREGS from a caller's kvm_sregs buffer (api.rst 4.14). A set bit
 * in interrupt_bitmap re-queues that external interrupt: pass back what
 * KVM_GET_SREGS returned.
 */
export function setSregsRaw(vcpuFd: number, buf: Uint8Array): void {
  ioctlBuf(vcpuFd, "KVM_SET_SREGS", buf);
}

/**
 * KVM_GET_VCPU_EVENTS (api.rst 4.31): pending and injected exception,
 * interrupt, NMI and SMI state, as a raw struct kvm_vcpu_events (read its
 * fields with {@linkcode KVM_VCPU_EVENTS_STRUCT}). Fills `buf` when given.
 */
export function getVcpuEvents(
  vcpuFd: number,
  buf: Uint8Array = new Uint8Array(KVM_VCPU_EVENTS_STRUCT.size),
): Uint8Array {
  ioctlBuf(vcpuFd, "KVM_GET_VCPU_EVENTS", buf);
  return buf;
}

/**
 * KVM_SET_VCPU_EVENTS (api.rst 4.32). The exception, interrupt and NMI
 * injected/masked fields are always taken; NMI pending, SIPI vector,
 * interrupt shadow, SMM state and the payload only with their flag bits.
 */
export function setVcpuEvents(vcpuFd: number, buf: Uint8Array): void {
  ioctlBuf(vcpuFd, "KVM_SET_VCPU_EVENTS", buf);
}

/** KVM_GET_FPU (api.rst 4.22): the x87/SSE state as a raw struct kvm_fpu. */
export function getFpu(
  vcpuFd: number,
  buf: Uint8Array = new Uint8Array(KVM_FPU_STRUCT.size),
): Uint8Array {
  ioctlBuf(vcpuFd, "KVM_GET_FPU", buf);
  return buf;
}

/** KVM_SET_FPU (api.rst 4.23). */
export function setFpu(vcpuFd: number, buf: Uint8Array): void {
  ioctlBuf(vcpuFd, "KVM_SET_FPU", buf);
}

/**
 * KVM_GET_XSAVE (api.rst 4.42, needs KVM_CAP_XSAVE): the vCPU's XSAVE area
 * in the standard (non-compacted) format, 4096 bytes. For guests whose
 * state is larger (AMX), use {@linkcode getXsave2}.
 */
export function getXsave(
  vcpuFd: number,
  buf: Uint8Array = new Uint8Array(KVM_XSAVE_STRUCT.size),
): Uint8Array {
  if (buf.length < KVM_XSAVE_STRUCT.size) throw new Error("KVM_GET_XSAVE needs 4096 bytes");
  ioctlBuf(vcpuFd, "KVM_GET_XSAVE", buf);
  return buf;
}

/**
 * KVM_GET_XSAVE2 (api.rst 4.134, needs KVM_CAP_XSAVE2): as KVM_GET_XSAVE,
 * but fills as many bytes as KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) returned
 * on the VM; `buf` must be at least that long.
 */
export function getXsave2(vcpuFd: number, buf: Uint8Array): Uint8Array {
  if (buf.length < KVM_XSAVE_STRUCT.size) throw new Error("KVM_GET_XSAVE2 needs >= 4096 bytes");
  ioctlBuf(vcpuFd, "KVM_GET_XSAVE2", buf);
  return buf;
}

/** KVM_SET_XSAVE (api.rst 4.43): reads 4096 bytes, or the KVM_CAP_XSAVE2 size when larger. */
export function setXsave(vcpuFd: number, buf: Uint8Array): void {
  if (buf.length < KVM_XSAVE_STRUCT.size) throw new Error("KVM_SET_XSAVE needs >= 4096 bytes");
  ioctlBuf(vcpuFd, "KVM_SET_XSAVE", buf);
}

/** One extended control register (XCR0 is number 0). */
export interface Xcr {
  readonly xcr: number;
  readonly value: bigint;
}

/** KVM_GET_XCRS (api.rst 4.44, needs KVM_CAP_XCRS). */
export function getXcrs(vcpuFd: number): Xcr[] {
  const buf = new Uint8Array(KVM_XCRS_STRUCT.size);
  const dv = new DataView(buf.buffer);
  ioctlBuf(vcpuFd, "KVM_GET_XCRS", buf);
  const n = Math.min(dv.getUint32(KVM_XCRS_STRUCT.o.nrXcrs, true), 16);
  const out: Xcr[] = [];
  for (let i = 0; i < n; i++) {
    const at = KVM_XCRS_STRUCT.o.xcrs + i * KVM_XCR_STRUCT.size;
    out.push({
      xcr: dv.getUint32(at + KVM_XCR_STRUCT.o.xcr, true),
      value: dv.getBigUint64(at + KVM_XCR_STRUCT.o.value, true),
    });
  }
  return out;
}

/**
 * KVM_SET_XCRS (api.rst 4.45). KVM checks each value as XSETBV would and
 * fails with EINVAL for one the vCPU cannot take.
 */
export function setXcrs(vcpuFd: number, xcrs: readonly Xcr[]): void {
  if (xcrs.length > 16) throw new Error("KVM_SET_XCRS takes at most 16 registers");
  const buf = new Uint8Array(KVM_XCRS_STRUCT.size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(KVM_XCRS_STRUCT.o.nrXcrs, xcrs.length, true);
  xcrs.forEach((x, i) => {
    const at = KVM_XCRS_STRUCT.o.xcrs + i * KVM_XCR_STRUCT.size;
    dv.setUint32(at + KVM_XCR_STRUCT.o.xcr, x.xcr, true);
    dv.setBigUint64(at + KVM_XCR_STRUCT.o.value, BigInt.asUintN(64, x.value), true);
  });
  ioctlBuf(vcpuFd, "KVM_SET_XCRS", buf);
}

/**
 * KVM_GET_MSRS on a vCPU (api.rst 4.18): the values of `indices`, in order.
 * KVM stops at the first MSR it does not know, so the result can be shorter
 * than `indices` (empty when the first is unknown).
 */
export function getMsrs(vcpuFd: number, indices: readonly number[]): bigint[] {
  const E = KVM_MSR_ENTRY_STRUCT;
  const buf = new Uint8Array(KVM_MSRS_STRUCT.size + indices.length * E.size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(KVM_MSRS_STRUCT.o.nmsrs, indices.length, true);
  indices.forEach((index, i) => {
    dv.setUint32(KVM_MSRS_STRUCT.o.entries + i * E.size + E.o.index, index >>> 0, true);
  });
  const n = ioctlBuf(vcpuFd, "KVM_GET_MSRS", buf);
  const out: bigint[] = [];
  for (let i = 0; i < n && i < indices.length; i++) {
    out.push(dv.getBigUint64(KVM_MSRS_STRUCT.o.entries + i * E.size + E.o.data, true));
  }
  return out;
}

/**
 * KVM_SET_MSRS on a vCPU (api.rst 4.19): returns how many were set; KVM
 * stops at the first MSR it does not know or whose value it refuses.
 */
export function setMsrs(
  vcpuFd: number,
  entries: readonly { readonly index: number; readonly value: bigint }[],
): number {
  const E = KVM_MSR_ENTRY_STRUCT;
  const buf = new Uint8Array(KVM_MSRS_STRUCT.size + entries.length * E.size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(KVM_MSRS_STRUCT.o.nmsrs, entries.length, true);
  entries.forEach((e, i) => {
    const at = KVM_MSRS_STRUCT.o.entries + i * E.size;
    dv.setUint32(at + E.o.index, e.index >>> 0, true);
    dv.setBigUint64(at + E.o.data, BigInt.asUintN(64, e.value), true);
  });
  return ioctlBuf(vcpuFd, "KVM_SET_MSRS", buf);
}

/** The debug registers (struct kvm_debugregs). */
export interface DebugRegs {
  /** DR0-DR3. */
  readonly db: readonly bigint[];
  readonly dr6: bigint;
  readonly dr7: bigint;
}

/** KVM_GET_DEBUGREGS (api.rst 4.34, needs KVM_CAP_DEBUGREGS). */
export function getDebugregs(vcpuFd: number): DebugRegs {
  const S = KVM_DEBUGREGS_STRUCT;
  const buf = new Uint8Array(S.size);
  const dv = new DataView(buf.buffer);
  ioctlBuf(vcpuFd, "KVM_GET_DEBUGREGS", buf);
  return {
    db: [0, 1, 2, 3].map((i) => dv.getBigUint64(S.o.db + 8 * i, true)),
    dr6: dv.getBigUint64(S.o.dr6, true),
    dr7: dv.getBigUint64(S.o.dr7, true),
  };
}

/** KVM_GET_DEBUGREGS into a caller's struct kvm_debugregs buffer (no allocation). */
export function getDebugregsInto(vcpuFd: number, buf: Uint8Array): void {
  ioctlBuf(vcpuFd, "KVM_GET_DEBUGREGS", buf);
}

/** KVM_SET_DEBUGREGS (api.rst 4.35) from a struct kvm_debugregs buffer. */
export function setDebugregs(vcpuFd: number, buf: Uint8Array): void {
  ioctlBuf(vcpuFd, "KVM_SET_DEBUGREGS", buf);
}

/** KVM_SET_CPUID2: the CPUID table this vCPU's guest sees. */
export function setCpuid2(vcpuFd: number, entries: readonly CpuidEntry[]): void {
  ioctlBuf(vcpuFd, "KVM_SET_CPUID2", encodeCpuid(entries), `${entries.length} entries`);
}

/** KVM_GET_LAPIC: the 1 KiB in-kernel LAPIC register page. */
export function getLapic(vcpuFd: number): Uint8Array {
  const buf = new Uint8Array(KVM_LAPIC_STATE_STRUCT.size);
  ioctlBuf(vcpuFd, "KVM_GET_LAPIC", buf);
  return buf;
}

/** KVM_SET_LAPIC. */
export function setLapic(vcpuFd: number, page: Uint8Array): void {
  ioctlBuf(vcpuFd, "KVM_SET_LAPIC", page);
}

/** KVM_GET_MP_STATE. */
export function getMpState(vcpuFd: number): number {
  const buf = new Uint8Array(KVM_MP_STATE_STRUCT.size);
  ioctlBuf(vcpuFd, "KVM_GET_MP_STATE", buf);
  return new DataView(buf.buffer).getUint32(0, true);
}

/**
 * KVM_NMI (api.rst 4.63): queues an NMI on the vCPU. With the in-kernel
 * irqchip this is the host's way to drive LINT1 (check the LVT entry first).
 */
export function injectNmi(vcpuFd: number): void {
  ioctlInt(vcpuFd, "KVM_NMI");
}

/** KVM_SET_DEBUGREGS from {@linkcode DebugRegs} (flags 0). */
export function setDebugregsFrom(vcpuFd: number, d: DebugRegs): void {
  const S = KVM_DEBUGREGS_STRUCT;
  const buf = new Uint8Array(S.size);
  const dv = new DataView(buf.buffer);
  d.db.forEach((v, i) => dv.setBigUint64(S.o.db + 8 * i, BigInt.asUintN(64, v), true));
  dv.setBigUint64(S.o.dr6, BigInt.asUintN(64, d.dr6), true);
  dv.setBigUint64(S.o.dr7, BigInt.asUintN(64, d.dr7), true);
  ioctlBuf(vcpuFd, "KVM_SET_DEBUGREGS", buf);
}

/** KVM_TRANSLATE: a guest linear address through the vCPU's current paging mode. */
export function translate(
  vcpuFd: number,
  linear: bigint,
): { physical: bigint; valid: boolean; writeable: boolean } {
  const S = KVM_TRANSLATION_STRUCT;
  const buf = new Uint8Array(S.size);
  const dv = new DataView(buf.buffer);
  dv.setBigUint64(S.o.linearAddress, linear, true);
  ioctlBuf(vcpuFd, "KVM_TRANSLATE", buf);
  return {
    physical: dv.getBigUint64(S.o.physicalAddress, true),
    valid: dv.getUint8(S.o.valid) !== 0,
    writeable: dv.getUint8(S.o.writeable) !== 0,
  };
}

/** Closes a KVM file descriptor (VM, vCPU or /dev/kvm). */
export function closeFd(fd: number): void {
  libc().fn.close(fd);
}

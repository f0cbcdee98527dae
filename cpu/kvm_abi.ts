/**
 * The KVM ABI as data: struct layouts as tables of field offsets, ioctl
 * numbers computed with the kernel's _IO/_IOR/_IOW/_IOWR encoding, and the
 * constants (exit reasons, capabilities) dhyve uses.
 *
 * Every layout names its C struct and each field's C member path, so
 * `kvm_abi_test.ts` can compile a program against the system's
 * `<linux/kvm.h>` with gcc and compare `sizeof`/`offsetof` one by one.
 *
 * Source: Documentation/virt/kvm/api.rst and include/uapi/linux/kvm.h,
 * arch/x86/include/uapi/asm/kvm.h.
 *
 * @module
 */

/** A C struct: its name, its size and each field's offset. */
export interface StructLayout<F extends string = string> {
  /** The C struct tag, e.g. `kvm_run`. */
  readonly c: string;
  /** sizeof(struct c). */
  readonly size: number;
  /** Field name -> byte offset. */
  readonly o: Readonly<Record<F, number>>;
  /** Field name -> C member path for offsetof (e.g. `io.port`). */
  readonly path: Readonly<Record<F, string>>;
}

function struct<F extends string>(
  c: string,
  size: number,
  fields: Record<F, readonly [path: string, offset: number]>,
): StructLayout<F> {
  const o = {} as Record<F, number>;
  const path = {} as Record<F, string>;
  for (const k of Object.keys(fields) as F[]) {
    path[k] = fields[k][0];
    o[k] = fields[k][1];
  }
  return Object.freeze({ c, size, o: Object.freeze(o), path: Object.freeze(path) });
}

/** struct kvm_run: the page shared with KVM for each vCPU (mmap of the vCPU fd). */
export const KVM_RUN_STRUCT = struct("kvm_run", 2352, {
  requestInterruptWindow: ["request_interrupt_window", 0],
  immediateExit: ["immediate_exit", 1],
  exitReason: ["exit_reason", 8],
  readyForInterruptInjection: ["ready_for_interrupt_injection", 12],
  ifFlag: ["if_flag", 13],
  flags: ["flags", 14],
  cr8: ["cr8", 16],
  apicBase: ["apic_base", 24],
  ioDirection: ["io.direction", 32],
  ioSize: ["io.size", 33],
  ioPort: ["io.port", 34],
  ioCount: ["io.count", 36],
  ioDataOffset: ["io.data_offset", 40],
  mmioPhysAddr: ["mmio.phys_addr", 32],
  mmioData: ["mmio.data", 40],
  mmioLen: ["mmio.len", 48],
  mmioIsWrite: ["mmio.is_write", 52],
  failEntryReason: ["fail_entry.hardware_entry_failure_reason", 32],
  failEntryCpu: ["fail_entry.cpu", 40],
  internalSuberror: ["internal.suberror", 32],
  internalNdata: ["internal.ndata", 36],
  internalData: ["internal.data", 40],
  systemEventType: ["system_event.type", 32],
  systemEventNdata: ["system_event.ndata", 36],
  systemEventData: ["system_event.data", 40],
  debugException: ["debug.arch.exception", 32],
  debugPc: ["debug.arch.pc", 40],
  debugDr6: ["debug.arch.dr6", 48],
  debugDr7: ["debug.arch.dr7", 56],
  msrError: ["msr.error", 32],
  msrReason: ["msr.reason", 40],
  msrIndex: ["msr.index", 44],
  msrData: ["msr.data", 48],
  emulationFailureFlags: ["emulation_failure.flags", 40],
  emulationFailureInsnSize: ["emulation_failure.insn_size", 48],
  emulationFailureInsnBytes: ["emulation_failure.insn_bytes", 49],
  kvmValidRegs: ["kvm_valid_regs", 288],
  kvmDirtyRegs: ["kvm_dirty_regs", 296],
  syncRegs: ["s.regs.regs", 304],
  syncSregs: ["s.regs.sregs", 448],
  syncEvents: ["s.regs.events", 760],
});

/** struct kvm_regs: 18 general registers, each a u64, in this order. */
export const KVM_REGS_STRUCT = struct("kvm_regs", 144, {
  rax: ["rax", 0],
  rbx: ["rbx", 8],
  rcx: ["rcx", 16],
  rdx: ["rdx", 24],
  rsi: ["rsi", 32],
  rdi: ["rdi", 40],
  rsp: ["rsp", 48],
  rbp: ["rbp", 56],
  r8: ["r8", 64],
  r9: ["r9", 72],
  r10: ["r10", 80],
  r11: ["r11", 88],
  r12: ["r12", 96],
  r13: ["r13", 104],
  r14: ["r14", 112],
  r15: ["r15", 120],
  rip: ["rip", 128],
  rflags: ["rflags", 136],
});

/** struct kvm_segment: a segment register with its hidden descriptor cache. */
export const KVM_SEGMENT_STRUCT = struct("kvm_segment", 24, {
  base: ["base", 0],
  limit: ["limit", 8],
  selector: ["selector", 12],
  type: ["type", 14],
  present: ["present", 15],
  dpl: ["dpl", 16],
  db: ["db", 17],
  s: ["s", 18],
  l: ["l", 19],
  g: ["g", 20],
  avl: ["avl", 21],
  unusable: ["unusable", 22],
});

/** struct kvm_dtable: GDTR/IDTR. */
export const KVM_DTABLE_STRUCT = struct("kvm_dtable", 16, {
  base: ["base", 0],
  limit: ["limit", 8],
});

/** struct kvm_sregs: segment, descriptor-table and control registers. */
export const KVM_SREGS_STRUCT = struct("kvm_sregs", 312, {
  cs: ["cs", 0],
  ds: ["ds", 24],
  es: ["es", 48],
  fs: ["fs", 72],
  gs: ["gs", 96],
  ss: ["ss", 120],
  tr: ["tr", 144],
  ldt: ["ldt", 168],
  gdt: ["gdt", 192],
  idt: ["idt", 208],
  cr0: ["cr0", 224],
  cr2: ["cr2", 232],
  cr3: ["cr3", 240],
  cr4: ["cr4", 248],
  cr8: ["cr8", 256],
  efer: ["efer", 264],
  apicBase: ["apic_base", 272],
  interruptBitmap: ["interrupt_bitmap", 280],
});

/** struct kvm_userspace_memory_region: one memory slot. */
export const KVM_USERSPACE_MEMORY_REGION_STRUCT = struct("kvm_userspace_memory_region", 32, {
  slot: ["slot", 0],
  flags: ["flags", 4],
  guestPhysAddr: ["guest_phys_addr", 8],
  memorySize: ["memory_size", 16],
  userspaceAddr: ["userspace_addr", 24],
});

/** struct kvm_cpuid2: header of a CPUID table; entries follow. */
export const KVM_CPUID2_STRUCT = struct("kvm_cpuid2", 8, {
  nent: ["nent", 0],
  entries: ["entries", 8],
});

/** struct kvm_cpuid_entry2: one CPUID leaf/subleaf. */
export const KVM_CPUID_ENTRY2_STRUCT = struct("kvm_cpuid_entry2", 40, {
  function: ["function", 0],
  index: ["index", 4],
  flags: ["flags", 8],
  eax: ["eax", 12],
  ebx: ["ebx", 16],
  ecx: ["ecx", 20],
  edx: ["edx", 24],
});

/** struct kvm_irq_level: KVM_IRQ_LINE argument. */
export const KVM_IRQ_LEVEL_STRUCT = struct("kvm_irq_level", 8, {
  irq: ["irq", 0],
  level: ["level", 4],
});

/** struct kvm_msi: KVM_SIGNAL_MSI argument. */
export const KVM_MSI_STRUCT = struct("kvm_msi", 32, {
  addressLo: ["address_lo", 0],
  addressHi: ["address_hi", 4],
  data: ["data", 8],
  flags: ["flags", 12],
  devid: ["devid", 16],
});

/** struct kvm_pit_config: KVM_CREATE_PIT2 argument. */
export const KVM_PIT_CONFIG_STRUCT = struct("kvm_pit_config", 64, {
  flags: ["flags", 0],
});

/** struct kvm_vcpu_events: pending/injected exception, interrupt, NMI, SMI. */
export const KVM_VCPU_EVENTS_STRUCT = struct("kvm_vcpu_events", 64, {
  exceptionInjected: ["exception.injected", 0],
  exceptionNr: ["exception.nr", 1],
  exceptionHasErrorCode: ["exception.has_error_code", 2],
  exceptionPending: ["exception.pending", 3],
  exceptionErrorCode: ["exception.error_code", 4],
  interruptInjected: ["interrupt.injected", 8],
  interruptNr: ["interrupt.nr", 9],
  interruptSoft: ["interrupt.soft", 10],
  interruptShadow: ["interrupt.shadow", 11],
  nmiInjected: ["nmi.injected", 12],
  nmiPending: ["nmi.pending", 13],
  nmiMasked: ["nmi.masked", 14],
  sipiVector: ["sipi_vector", 16],
  flags: ["flags", 20],
  smiSmm: ["smi.smm", 24],
  smiPending: ["smi.pending", 25],
  smiInsideNmi: ["smi.smm_inside_nmi", 26],
  smiLatchedInit: ["smi.latched_init", 27],
  tripleFaultPending: ["triple_fault.pending", 28],
  exceptionHasPayload: ["exception_has_payload", 55],
  exceptionPayload: ["exception_payload", 56],
});

/** struct kvm_mp_state: one u32. */
export const KVM_MP_STATE_STRUCT = struct("kvm_mp_state", 4, {});

/** struct kvm_msrs: header of an MSR list; entries follow. */
export const KVM_MSRS_STRUCT = struct("kvm_msrs", 8, {
  nmsrs: ["nmsrs", 0],
  entries: ["entries", 8],
});

/** struct kvm_msr_entry: index and value. */
export const KVM_MSR_ENTRY_STRUCT = struct("kvm_msr_entry", 16, {
  index: ["index", 0],
  data: ["data", 8],
});

/** struct kvm_translation: KVM_TRANSLATE (guest linear -> physical). */
export const KVM_TRANSLATION_STRUCT = struct("kvm_translation", 24, {
  linearAddress: ["linear_address", 0],
  physicalAddress: ["physical_address", 8],
  valid: ["valid", 16],
  writeable: ["writeable", 17],
  usermode: ["usermode", 18],
});

/** struct kvm_lapic_state: the 1 KiB LAPIC register page. */
export const KVM_LAPIC_STATE_STRUCT = struct("kvm_lapic_state", 1024, {});

/** struct kvm_irq_routing: header of a GSI routing table; entries follow. */
export const KVM_IRQ_ROUTING_STRUCT = struct("kvm_irq_routing", 8, {
  nr: ["nr", 0],
  flags: ["flags", 4],
  entries: ["entries", 8],
});

/** struct kvm_irq_routing_entry: one GSI -> irqchip pin or MSI. */
export const KVM_IRQ_ROUTING_ENTRY_STRUCT = struct("kvm_irq_routing_entry", 48, {
  gsi: ["gsi", 0],
  type: ["type", 4],
  flags: ["flags", 8],
  irqchip: ["u.irqchip.irqchip", 16],
  pin: ["u.irqchip.pin", 20],
  msiAddressLo: ["u.msi.address_lo", 16],
  msiAddressHi: ["u.msi.address_hi", 20],
  msiData: ["u.msi.data", 24],
});

/** struct kvm_enable_cap: KVM_ENABLE_CAP argument. */
export const KVM_ENABLE_CAP_STRUCT = struct("kvm_enable_cap", 104, {
  cap: ["cap", 0],
  flags: ["flags", 4],
  args: ["args", 8],
});

/** struct kvm_fpu: x87/SSE state. */
export const KVM_FPU_STRUCT = struct("kvm_fpu", 416, {
  fpr: ["fpr", 0],
  fcw: ["fcw", 128],
  fsw: ["fsw", 130],
  ftwx: ["ftwx", 132],
  lastOpcode: ["last_opcode", 134],
  lastIp: ["last_ip", 136],
  lastDp: ["last_dp", 144],
  xmm: ["xmm", 152],
  mxcsr: ["mxcsr", 408],
});

/**
 * struct kvm_xsave: the vCPU's XSAVE area in the standard (non-compacted)
 * format (api.rst 4.42 KVM_GET_XSAVE). 4096 bytes; with KVM_CAP_XSAVE2 a
 * larger buffer of the size that capability returns (api.rst 4.134).
 */
export const KVM_XSAVE_STRUCT = struct("kvm_xsave", 4096, {
  region: ["region", 0],
});

/** struct kvm_xcr: one extended control register (api.rst 4.44 KVM_GET_XCRS). */
export const KVM_XCR_STRUCT = struct("kvm_xcr", 16, {
  xcr: ["xcr", 0],
  value: ["value", 8],
});

/** struct kvm_xcrs: up to KVM_MAX_XCRS (16) kvm_xcr entries. */
export const KVM_XCRS_STRUCT = struct("kvm_xcrs", 392, {
  nrXcrs: ["nr_xcrs", 0],
  flags: ["flags", 4],
  xcrs: ["xcrs", 8],
});

/** struct kvm_debugregs: DR0-3, DR6, DR7. */
export const KVM_DEBUGREGS_STRUCT = struct("kvm_debugregs", 128, {
  db: ["db", 0],
  dr6: ["dr6", 32],
  dr7: ["dr7", 40],
  flags: ["flags", 48],
});

/** struct kvm_guest_debug: KVM_SET_GUEST_DEBUG argument. */
export const KVM_GUEST_DEBUG_STRUCT = struct("kvm_guest_debug", 72, {
  control: ["control", 0],
  arch: ["arch", 8],
});

/** struct kvm_clock_data: KVM_GET_CLOCK / KVM_SET_CLOCK. */
export const KVM_CLOCK_DATA_STRUCT = struct("kvm_clock_data", 48, {
  clock: ["clock", 0],
  flags: ["flags", 8],
});

/** struct kvm_irqfd: KVM_IRQFD argument. */
export const KVM_IRQFD_STRUCT = struct("kvm_irqfd", 32, {
  fd: ["fd", 0],
  gsi: ["gsi", 4],
  flags: ["flags", 8],
  resamplefd: ["resamplefd", 12],
});

/** struct kvm_ioeventfd: KVM_IOEVENTFD argument. */
export const KVM_IOEVENTFD_STRUCT = struct("kvm_ioeventfd", 64, {
  datamatch: ["datamatch", 0],
  addr: ["addr", 8],
  len: ["len", 16],
  fd: ["fd", 20],
  flags: ["flags", 24],
});

/** struct kvm_irqchip: KVM_GET/SET_IRQCHIP (PIC master/slave or IOAPIC state). */
export const KVM_IRQCHIP_STRUCT = struct("kvm_irqchip", 520, {
  chipId: ["chip_id", 0],
  chip: ["chip", 8],
});

/** struct kvm_pic_state: one 8259's state inside kvm_irqchip.chip. */
export const KVM_PIC_STATE_STRUCT = struct("kvm_pic_state", 16, {
  imr: ["imr", 2],
  elcr: ["elcr", 14],
  elcrMask: ["elcr_mask", 15],
});

/** struct kvm_pit_state2: KVM_GET/SET_PIT2 (the in-kernel 8254's channels and flags). */
export const KVM_PIT_STATE2_STRUCT = struct("kvm_pit_state2", 112, {
  channels: ["channels", 0],
  flags: ["flags", 72],
});

/** kvm_pit_state2.flags: the HPET's LegacyReplacement disconnected the PIT's IRQ 0. */
export const KVM_PIT_FLAGS_HPET_LEGACY = 0x1;

/** Every layout, for the header check. */
export const ALL_STRUCTS: readonly StructLayout[] = [
  KVM_RUN_STRUCT,
  KVM_REGS_STRUCT,
  KVM_SEGMENT_STRUCT,
  KVM_DTABLE_STRUCT,
  KVM_SREGS_STRUCT,
  KVM_USERSPACE_MEMORY_REGION_STRUCT,
  KVM_CPUID2_STRUCT,
  KVM_CPUID_ENTRY2_STRUCT,
  KVM_IRQ_LEVEL_STRUCT,
  KVM_MSI_STRUCT,
  KVM_PIT_CONFIG_STRUCT,
  KVM_VCPU_EVENTS_STRUCT,
  KVM_MP_STATE_STRUCT,
  KVM_MSRS_STRUCT,
  KVM_MSR_ENTRY_STRUCT,
  KVM_TRANSLATION_STRUCT,
  KVM_LAPIC_STATE_STRUCT,
  KVM_IRQ_ROUTING_STRUCT,
  KVM_IRQ_ROUTING_ENTRY_STRUCT,
  KVM_ENABLE_CAP_STRUCT,
  KVM_FPU_STRUCT,
  KVM_XSAVE_STRUCT,
  KVM_XCR_STRUCT,
  KVM_XCRS_STRUCT,
  KVM_DEBUGREGS_STRUCT,
  KVM_GUEST_DEBUG_STRUCT,
  KVM_CLOCK_DATA_STRUCT,
  KVM_IRQFD_STRUCT,
  KVM_IOEVENTFD_STRUCT,
  KVM_IRQCHIP_STRUCT,
  KVM_PIC_STATE_STRUCT,
  KVM_PIT_STATE2_STRUCT,
];

// --- ioctl numbers (include/uapi/asm-generic/ioctl.h) ---------------------

const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;
const KVMIO = 0xae;

function ioc(dir: number, nr: number, size: number): number {
  // dir:2 | size:14 | type:8 | nr:8, built without 32-bit sign trouble.
  return dir * 2 ** 30 + size * 2 ** 16 + KVMIO * 2 ** 8 + nr;
}
const io = (nr: number) => ioc(IOC_NONE, nr, 0);
const ior = (nr: number, size: number) => ioc(IOC_READ, nr, size);
const iow = (nr: number, size: number) => ioc(IOC_WRITE, nr, size);
const iowr = (nr: number, size: number) => ioc(IOC_READ | IOC_WRITE, nr, size);

/**
 * The ioctl numbers, one table. Keys are the kernel's names; each is checked
 * against `<linux/kvm.h>` in kvm_abi_test.ts.
 */
export const IOCTL = Object.freeze({
  // /dev/kvm
  KVM_GET_API_VERSION: io(0x00),
  KVM_CREATE_VM: io(0x01),
  KVM_GET_MSR_INDEX_LIST: iowr(0x02, 4),
  KVM_CHECK_EXTENSION: io(0x03),
  KVM_GET_VCPU_MMAP_SIZE: io(0x04),
  KVM_GET_SUPPORTED_CPUID: iowr(0x05, KVM_CPUID2_STRUCT.size),
  // VM
  KVM_CREATE_VCPU: io(0x41),
  KVM_SET_USER_MEMORY_REGION: iow(0x46, KVM_USERSPACE_MEMORY_REGION_STRUCT.size),
  KVM_SET_TSS_ADDR: io(0x47),
  KVM_SET_IDENTITY_MAP_ADDR: iow(0x48, 8),
  KVM_CREATE_IRQCHIP: io(0x60),
  KVM_IRQ_LINE: iow(0x61, KVM_IRQ_LEVEL_STRUCT.size),
  KVM_GET_IRQCHIP: iowr(0x62, KVM_IRQCHIP_STRUCT.size),
  // The kernel declares KVM_SET_IRQCHIP with _IOR although it writes state in.
  KVM_SET_IRQCHIP: ior(0x63, KVM_IRQCHIP_STRUCT.size),
  KVM_SET_GSI_ROUTING: iow(0x6a, KVM_IRQ_ROUTING_STRUCT.size),
  KVM_IRQFD: iow(0x76, KVM_IRQFD_STRUCT.size),
  KVM_CREATE_PIT2: iow(0x77, KVM_PIT_CONFIG_STRUCT.size),
  KVM_SET_BOOT_CPU_ID: io(0x78),
  KVM_IOEVENTFD: iow(0x79, KVM_IOEVENTFD_STRUCT.size),
  KVM_GET_CLOCK: ior(0x7c, KVM_CLOCK_DATA_STRUCT.size),
  KVM_SIGNAL_MSI: iow(0xa5, KVM_MSI_STRUCT.size),
  KVM_ENABLE_CAP: iow(0xa3, KVM_ENABLE_CAP_STRUCT.size),
  // vCPU
  KVM_RUN: io(0x80),
  KVM_GET_REGS: ior(0x81, KVM_REGS_STRUCT.size),
  KVM_SET_REGS: iow(0x82, KVM_REGS_STRUCT.size),
  KVM_GET_SREGS: ior(0x83, KVM_SREGS_STRUCT.size),
  KVM_SET_SREGS: iow(0x84, KVM_SREGS_STRUCT.size),
  KVM_TRANSLATE: iowr(0x85, KVM_TRANSLATION_STRUCT.size),
  KVM_INTERRUPT: iow(0x86, 4),
  KVM_GET_MSRS: iowr(0x88, KVM_MSRS_STRUCT.size),
  KVM_SET_MSRS: iow(0x89, KVM_MSRS_STRUCT.size),
  KVM_GET_FPU: ior(0x8c, KVM_FPU_STRUCT.size),
  KVM_SET_FPU: iow(0x8d, KVM_FPU_STRUCT.size),
  KVM_GET_LAPIC: ior(0x8e, KVM_LAPIC_STATE_STRUCT.size),
  KVM_SET_LAPIC: iow(0x8f, KVM_LAPIC_STATE_STRUCT.size),
  KVM_SET_CPUID2: iow(0x90, KVM_CPUID2_STRUCT.size),
  KVM_GET_MP_STATE: ior(0x98, KVM_MP_STATE_STRUCT.size),
  KVM_SET_MP_STATE: iow(0x99, KVM_MP_STATE_STRUCT.size),
  KVM_NMI: io(0x9a),
  KVM_SET_GUEST_DEBUG: iow(0x9b, KVM_GUEST_DEBUG_STRUCT.size),
  KVM_GET_VCPU_EVENTS: ior(0x9f, KVM_VCPU_EVENTS_STRUCT.size),
  KVM_SET_VCPU_EVENTS: iow(0xa0, KVM_VCPU_EVENTS_STRUCT.size),
  KVM_GET_PIT2: ior(0x9f, KVM_PIT_STATE2_STRUCT.size),
  KVM_SET_PIT2: iow(0xa0, KVM_PIT_STATE2_STRUCT.size),
  KVM_GET_DEBUGREGS: ior(0xa1, KVM_DEBUGREGS_STRUCT.size),
  KVM_SET_DEBUGREGS: iow(0xa2, KVM_DEBUGREGS_STRUCT.size),
  KVM_GET_XSAVE: ior(0xa4, KVM_XSAVE_STRUCT.size),
  KVM_SET_XSAVE: iow(0xa5, KVM_XSAVE_STRUCT.size),
  KVM_GET_XCRS: ior(0xa6, KVM_XCRS_STRUCT.size),
  KVM_SET_XCRS: iow(0xa7, KVM_XCRS_STRUCT.size),
  KVM_GET_XSAVE2: ior(0xcf, KVM_XSAVE_STRUCT.size),
});

/** The name of an ioctl. */
export type IoctlName = keyof typeof IOCTL;

/** KVM_GET_API_VERSION must return this (api.rst 4.1). */
export const KVM_API_VERSION = 12;

/** Exit reasons (kvm_run.exit_reason). */
export const KVM_EXIT = Object.freeze({
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  SET_TPR: 11,
  TPR_ACCESS: 12,
  NMI: 16,
  INTERNAL_ERROR: 17,
  SYSTEM_EVENT: 24,
  IOAPIC_EOI: 26,
  X86_RDMSR: 29,
  X86_WRMSR: 30,
  BUS_LOCK: 33,
  NOTIFY: 37,
});

/** Names of exit reasons for messages and statistics. */
export const KVM_EXIT_NAMES: Readonly<Record<number, string>> = Object.freeze(
  Object.fromEntries(Object.entries(KVM_EXIT).map(([k, v]) => [v, k.toLowerCase()])),
);

/** kvm_run.io.direction. */
export const KVM_EXIT_IO_IN = 0;
/** kvm_run.io.direction. */
export const KVM_EXIT_IO_OUT = 1;

/** internal.suberror values. */
export const KVM_INTERNAL_ERROR = Object.freeze({
  EMULATION: 1,
  SIMUL_EX: 2,
  DELIVERY_EV: 3,
  UNEXPECTED_EXIT_REASON: 4,
});

/** Capabilities dhyve checks (KVM_CHECK_EXTENSION). */
export const KVM_CAP = Object.freeze({
  IRQCHIP: 0,
  HLT: 1,
  USER_MEMORY: 3,
  SET_TSS_ADDR: 4,
  EXT_CPUID: 7,
  NR_VCPUS: 9,
  NR_MEMSLOTS: 10,
  PIT2: 33,
  SET_IDENTITY_MAP_ADDR: 37,
  IRQ_ROUTING: 25,
  SIGNAL_MSI: 77,
  MAX_VCPUS: 66,
  IMMEDIATE_EXIT: 136,
  MAX_VCPU_ID: 128,
  X86_USER_SPACE_MSR: 188,
  VCPU_EVENTS: 41,
  DEBUGREGS: 50,
  XSAVE: 55,
  XCRS: 56,
  SYNC_REGS: 74,
  EXCEPTION_PAYLOAD: 164,
  EXIT_ON_EMULATION_FAILURE: 204,
  XSAVE2: 208,
});

/** MP states (KVM_GET/SET_MP_STATE). */
export const KVM_MP_STATE = Object.freeze({
  RUNNABLE: 0,
  UNINITIALIZED: 1,
  INIT_RECEIVED: 2,
  HALTED: 3,
  SIPI_RECEIVED: 4,
});

/** kvm_irq_routing_entry.type. */
export const KVM_IRQ_ROUTING_IRQCHIP = 1;
/** kvm_irq_routing_entry.type. */
export const KVM_IRQ_ROUTING_MSI = 2;
/** irqchip ids for routing entries. */
export const KVM_IRQCHIP_PIC_MASTER = 0;
/** irqchip ids for routing entries. */
export const KVM_IRQCHIP_PIC_SLAVE = 1;
/** irqchip ids for routing entries. */
export const KVM_IRQCHIP_IOAPIC = 2;

/** kvm_vcpu_events.flags bits. */
export const KVM_VCPUEVENT_VALID_NMI_PENDING = 0x1;
/** kvm_vcpu_events.flags bits. */
export const KVM_VCPUEVENT_VALID_SIPI_VECTOR = 0x2;
/** kvm_vcpu_events.flags bits. */
export const KVM_VCPUEVENT_VALID_SHADOW = 0x4;
/** kvm_vcpu_events.flags bits. */
export const KVM_VCPUEVENT_VALID_SMM = 0x8;
/** kvm_vcpu_events.flags bits: exception.pending and the payload fields are valid. */
export const KVM_VCPUEVENT_VALID_PAYLOAD = 0x10;
/** kvm_vcpu_events.flags bits. */
export const KVM_VCPUEVENT_VALID_TRIPLE_FAULT = 0x20;

/** kvm_run.kvm_valid_regs / kvm_dirty_regs bits (api.rst 5, "kvm_valid_regs"; KVM_CAP_SYNC_REGS). */
export const KVM_SYNC_X86 = Object.freeze({ REGS: 1, SREGS: 2, EVENTS: 4 });

/** kvm_run.emulation_failure.flags: insn_size and insn_bytes are valid. */
export const KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES = 1;

/** XCR0 is XCR number 0 in struct kvm_xcr. */
export const XCR_XFEATURE_ENABLED_MASK = 0;

/** kvm_cpuid_entry2.flags: the leaf has subleaves selected by ECX. */
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

/**
 * The control operations that touch one vCPU: run by that vCPU's own thread
 * between two KVM_RUNs (cpu/vcpu_worker.ts serves the mailbox of
 * lib/vm/vm_control.ts), because a vCPU fd's ioctls wait for a KVM_RUN in
 * progress to return. The main thread posts a {@linkcode VcpuOp} as JSON
 * and gets a {@linkcode VcpuAnswer} back.
 *
 * Registers are plain names (`rax`, `cr3`, `dr7`, `cs.selector`,
 * `gdtr.base`) with hexadecimal string values, 64-bit safe in JSON.
 *
 * @module
 */
import {
  getDebugregs,
  getLapic,
  getMpState,
  getRegs,
  getSregs,
  injectNmi,
  setDebugregsFrom,
  setRegs,
  setSregs,
} from "../../cpu/kvm.ts";
import { KVM_MP_STATE } from "../../cpu/kvm_abi.ts";
import { REG_NAMES, type Regs, type Segment, SEGMENT_NAMES, type Sregs } from "../../cpu/regs.ts";
import { inspect, type PagingRegs } from "../../cpu/x86/paging.ts";
import type { PhysicalMemory } from "../../cpu/x86/types.ts";
import type { GuestMemory } from "../guest_memory.ts";

/** An operation on one vCPU. */
export type VcpuOp =
  | { readonly op: "regs.get" }
  | { readonly op: "regs.set"; readonly values: Readonly<Record<string, string>> }
  | { readonly op: "nmi" }
  | { readonly op: "lvt"; readonly pin: "lint0" | "lint1" }
  | { readonly op: "gla2gpa"; readonly address: string }
  | { readonly op: "mpstate" };

/** The answer to a {@linkcode VcpuOp}. */
export type VcpuAnswer =
  | { readonly ok: true; readonly result: unknown }
  | { readonly ok: false; readonly error: string };

/** What the vCPU thread lends an operation. */
export interface VcpuOpContext {
  readonly index: number;
  readonly fd: number;
  /** Guest RAM (the page walk reads the paging structures from it). */
  readonly memory: GuestMemory;
  /** MAXPHYADDR of this vCPU (CPUID 80000008H:EAX[7:0]). */
  readonly maxPhyAddr: number;
  /** Applies register state the instruction emulator left for the next KVM_RUN. */
  readonly flush: () => void;
}

/** A bad request: the message goes back to the client as it is. */
export class VcpuOpError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "VcpuOpError";
  }
}

// --- the register file --------------------------------------------------------

type Where = "regs" | "sregs" | "debug";

interface RegisterDef {
  readonly where: Where;
  readonly bits: number;
  get(r: Regs, s: Sregs, d: MutableDebug): bigint;
  set(r: Regs, s: Sregs, d: MutableDebug, v: bigint): void;
}

interface MutableDebug {
  db: bigint[];
  dr6: bigint;
  dr7: bigint;
}

/** Fields of a kvm_segment and their widths (the descriptor cache, SDM Vol. 3A 3.4.3). */
const SEGMENT_FIELDS: Readonly<Record<Exclude<keyof Segment, never>, number>> = {
  selector: 16,
  base: 64,
  limit: 32,
  type: 4,
  present: 1,
  dpl: 2,
  db: 1,
  s: 1,
  l: 1,
  g: 1,
  avl: 1,
  unusable: 1,
};

function buildRegisterTable(): Map<string, RegisterDef> {
  const t = new Map<string, RegisterDef>();
  for (const name of REG_NAMES) {
    t.set(name, {
      where: "regs",
      bits: 64,
      get: (r) => r[name],
      set: (r, _s, _d, v) => (r[name] = v),
    });
  }
  const sreg = (name: string, key: "cr0" | "cr2" | "cr3" | "cr4" | "cr8" | "efer" | "apicBase") =>
    t.set(name, {
      where: "sregs",
      bits: 64,
      get: (_r, s) => s[key],
      set: (_r, s, _d, v) => (s[key] = v),
    });
  for (const cr of ["cr0", "cr2", "cr3", "cr4", "cr8", "efer"] as const) sreg(cr, cr);
  sreg("apic_base", "apicBase");
  for (const [name, key] of [["gdtr", "gdt"], ["idtr", "idt"]] as const) {
    t.set(`${name}.base`, {
      where: "sregs",
      bits: 64,
      get: (_r, s) => s[key].base,
      set: (_r, s, _d, v) => (s[key].base = v),
    });
    t.set(`${name}.limit`, {
      where: "sregs",
      bits: 16,
      get: (_r, s) => BigInt(s[key].limit),
      set: (_r, s, _d, v) => (s[key].limit = Number(v)),
    });
  }
  for (const seg of SEGMENT_NAMES) {
    for (const [field, bits] of Object.entries(SEGMENT_FIELDS) as [keyof Segment, number][]) {
      t.set(`${seg}.${field}`, {
        where: "sregs",
        bits,
        get: (_r, s) => BigInt(s[seg][field]),
        set: (_r, s, _d, v) => {
          if (field === "base") s[seg].base = v;
          else (s[seg][field] as number) = Number(v);
        },
      });
    }
  }
  for (let i = 0; i < 4; i++) {
    t.set(`dr${i}`, {
      where: "debug",
      bits: 64,
      get: (_r, _s, d) => d.db[i],
      set: (_r, _s, d, v) => (d.db[i] = v),
    });
  }
  // DR6 and DR7 are 64-bit registers whose upper 32 bits must be zero
  // (SDM Vol. 3A 18.2.4, 18.2.5); KVM_SET_DEBUGREGS refuses them otherwise.
  for (const k of ["dr6", "dr7"] as const) {
    t.set(k, {
      where: "debug",
      bits: 32,
      get: (_r, _s, d) => d[k],
      set: (_r, _s, d, v) => (d[k] = v),
    });
  }
  return t;
}

/** Every register name `regs get|set` knows, in display order. */
export const REGISTERS: ReadonlyMap<string, RegisterDef> = buildRegisterTable();

/** Parses a register value: `0x` hex or decimal digits, 0 .. 2^bits - 1. */
export function parseRegisterValue(name: string, text: string): bigint {
  const def = REGISTERS.get(name);
  if (!def) throw new VcpuOpError(`unknown register "${name}"`);
  if (!/^(0x[0-9a-f]+|[0-9]+)$/i.test(text)) {
    throw new VcpuOpError(`${name}: "${text}" is not a number (hex with 0x, or decimal)`);
  }
  const v = BigInt(text);
  if (v >> BigInt(def.bits) !== 0n) {
    throw new VcpuOpError(`${name}: ${text} is out of range (${def.bits} bits)`);
  }
  return v;
}

function hex(v: bigint | number): string {
  return "0x" + v.toString(16);
}

function readAll(fd: number): { regs: Regs; sregs: Sregs; debug: MutableDebug } {
  const d = getDebugregs(fd);
  return {
    regs: getRegs(fd),
    sregs: getSregs(fd),
    debug: { db: [...d.db], dr6: d.dr6, dr7: d.dr7 },
  };
}

function registerValues(all: ReturnType<typeof readAll>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, def] of REGISTERS) out[name] = hex(def.get(all.regs, all.sregs, all.debug));
  return out;
}

// --- paging ----------------------------------------------------------------------

/** Guest RAM for the page walker, read-only: a paging structure outside RAM is an error, not an MMIO read. */
function walkerMemory(memory: GuestMemory): PhysicalMemory {
  const notRam = (gpa: number, n: number) =>
    new VcpuOpError(`a paging structure at gpa ${hex(gpa)} (+${n}) is not in guest RAM`);
  return {
    isRam: (gpa, length) => memory.contains(gpa, length),
    read(gpa, out) {
      if (!memory.contains(gpa, out.length)) throw notRam(gpa, out.length);
      out.set(memory.slice(gpa, out.length));
    },
    write(gpa, data) {
      throw notRam(gpa, data.length); // inspect() never writes; refuse if it ever did
    },
    cmpxchg(gpa, size) {
      throw notRam(gpa, size);
    },
  };
}

// Paging-mode bits (SDM Vol. 3A 2.5, 4.1.1).
const CR0_PG = 1n << 31n;
const CR4_PAE = 1n << 5n;
const CR4_LA57 = 1n << 12n;
const EFER_LMA = 1n << 10n;

function pagingMode(s: Sregs): "off" | "32-bit" | "pae" | "4-level" | "5-level" {
  if ((s.cr0 & CR0_PG) === 0n) return "off";
  if ((s.cr4 & CR4_PAE) === 0n) return "32-bit";
  if ((s.efer & EFER_LMA) === 0n) return "pae";
  return (s.cr4 & CR4_LA57) ? "5-level" : "4-level";
}

function gla2gpa(ctx: VcpuOpContext, text: string): unknown {
  if (!/^(0x[0-9a-f]+|[0-9]+)$/i.test(text)) {
    throw new VcpuOpError(`address "${text}" is not a number (hex with 0x, or decimal)`);
  }
  const linear = BigInt(text);
  if (linear >> 64n !== 0n) throw new VcpuOpError(`address ${text} is wider than 64 bits`);
  const regs = getRegs(ctx.fd);
  const sregs = getSregs(ctx.fd);
  const mode = pagingMode(sregs);
  // Linear addresses are 32 bits outside IA-32e mode (SDM Vol. 3A 4.1.1);
  // in 4/5-level paging they must be canonical (SDM Vol. 1 3.3.7.1), or
  // the access faults with #GP before any walk.
  if ((mode === "off" || mode === "32-bit" || mode === "pae") && linear >> 32n !== 0n) {
    throw new VcpuOpError(`address ${hex(linear)} is wider than 32 bits (paging mode ${mode})`);
  }
  if (mode === "4-level" || mode === "5-level") {
    const bits = mode === "4-level" ? 48n : 57n;
    if (BigInt.asUintN(64, BigInt.asIntN(Number(bits), linear)) !== linear) {
      throw new VcpuOpError(`address ${hex(linear)} is not canonical (paging mode ${mode})`);
    }
  }
  const pregs: PagingRegs = {
    cr0: sregs.cr0,
    cr3: sregs.cr3,
    cr4: sregs.cr4,
    efer: sregs.efer,
    rflags: regs.rflags,
  };
  const r = inspect(pregs, walkerMemory(ctx.memory), linear, { maxPhyAddr: ctx.maxPhyAddr });
  const levels = r.levels.map((l) => ({
    name: l.name,
    level: l.level,
    address: hex(l.address),
    value: hex(l.value),
    present: l.present,
    writable: l.writable,
    user: l.user,
    noExecute: l.noExecute,
    reserved: l.reserved,
    leaf: l.leaf,
    ...(l.pageSize ? { pageSize: l.pageSize } : {}),
  }));
  const base = { gla: hex(linear), mode, cr3: hex(sregs.cr3), levels };
  if (!r.ok) {
    const fault = r.levels.at(-1);
    return {
      ...base,
      mapped: false,
      errorCode: r.errorCode,
      reason: fault?.reserved
        ? `reserved bit set in the ${fault.name}`
        : `${fault?.name ?? "entry"} not present`,
    };
  }
  return {
    ...base,
    mapped: true,
    gpa: hex(r.gpa),
    pageSize: r.pageSize,
    writable: r.writable,
    user: r.user,
    executable: r.executable,
    protectionKey: r.protectionKey,
  };
}

// --- LINT pins ---------------------------------------------------------------------

/** LAPIC register offsets (Intel SDM Vol. 3A, Table 11-1 "Local APIC Register Address Map"). */
const APIC_LVT_LINT0 = 0x350;
const APIC_LVT_LINT1 = 0x360;
/** LVT bits (SDM Vol. 3A 11.5.1, Figure 11-8 "Local Vector Table"). */
const LVT_MASKED = 1 << 16;
const LVT_LEVEL = 1 << 15;
const DELIVERY_MODES = [
  "fixed",
  "reserved1",
  "smi",
  "reserved3",
  "nmi",
  "init",
  "reserved6",
  "extint",
];
/** IA32_APIC_BASE bit 11: the APIC is enabled (SDM Vol. 3A 11.4.4). */
const APIC_BASE_ENABLE = 1n << 11n;

/**
 * Drives a LINT pin of the vCPU's local APIC, as api.rst (4.63, KVM_NMI)
 * says a VMM with the in-kernel irqchip must: read the LVT entry of the pin
 * and, when it delivers an NMI, issue KVM_NMI. A masked pin delivers
 * nothing; other delivery modes (fixed, SMI, INIT, ExtINT) are not driven.
 */
function lvt(ctx: VcpuOpContext, pin: "lint0" | "lint1"): unknown {
  const page = getLapic(ctx.fd);
  const entry = new DataView(page.buffer).getUint32(
    pin === "lint0" ? APIC_LVT_LINT0 : APIC_LVT_LINT1,
    true,
  );
  const mode = DELIVERY_MODES[(entry >> 8) & 7];
  const base = {
    pin,
    lvt: hex(entry),
    mode,
    masked: (entry & LVT_MASKED) !== 0,
    trigger: entry & LVT_LEVEL ? "level" : "edge",
  };
  if ((getSregs(ctx.fd).apicBase & APIC_BASE_ENABLE) === 0n) {
    return { ...base, delivered: false, reason: "the local APIC is disabled (IA32_APIC_BASE)" };
  }
  if (base.masked) return { ...base, delivered: false, reason: "the LVT entry is masked" };
  if (mode !== "nmi") {
    throw new VcpuOpError(
      `vcpu ${ctx.index}: ${pin} delivers ${mode} (LVT ${
        hex(entry)
      }); only an NMI pin can be driven from the host`,
    );
  }
  injectNmi(ctx.fd);
  return { ...base, delivered: true };
}

// --- dispatch ---------------------------------------------------------------------

const MP_STATE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(KVM_MP_STATE).map(([k, v]) => [v, k.toLowerCase()]),
);

function setRegisters(ctx: VcpuOpContext, values: Readonly<Record<string, string>>): unknown {
  const parsed = Object.entries(values).map(([name, text]) => {
    const v = parseRegisterValue(name, text);
    return { name, def: REGISTERS.get(name)!, v };
  });
  if (parsed.length === 0) throw new VcpuOpError("regs set: no NAME=VALUE given");
  const all = readAll(ctx.fd);
  const touched = new Set<Where>();
  for (const p of parsed) {
    p.def.set(all.regs, all.sregs, all.debug, p.v);
    touched.add(p.def.where);
  }
  // Control and segment registers first: KVM checks the new CR0/CR4/EFER
  // together (kvm_valid_sregs), then the GPRs, then the debug registers.
  if (touched.has("sregs")) setSregs(ctx.fd, all.sregs);
  if (touched.has("regs")) setRegs(ctx.fd, all.regs);
  if (touched.has("debug")) setDebugregsFrom(ctx.fd, all.debug);
  const now = registerValues(readAll(ctx.fd));
  return Object.fromEntries(parsed.map((p) => [p.name, now[p.name]]));
}

/** Runs one operation (vCPU thread); the answer as JSON. Never throws. */
export function serveVcpuOp(ctx: VcpuOpContext, message: string): string {
  let answer: VcpuAnswer;
  try {
    ctx.flush();
    const op = JSON.parse(message) as VcpuOp;
    let result: unknown;
    switch (op.op) {
      case "regs.get": {
        const all = readAll(ctx.fd);
        result = {
          registers: registerValues(all),
          mpState: MP_STATE_NAMES[getMpState(ctx.fd)] ?? "unknown",
        };
        break;
      }
      case "regs.set":
        result = setRegisters(ctx, op.values);
        break;
      case "nmi":
        // KVM_NMI queues an NMI for the vCPU (api.rst 4.63), bhyve's vm_inject_nmi.
        injectNmi(ctx.fd);
        result = { injected: true };
        break;
      case "lvt":
        result = lvt(ctx, op.pin);
        break;
      case "gla2gpa":
        result = gla2gpa(ctx, op.address);
        break;
      case "mpstate":
        result = { mpState: MP_STATE_NAMES[getMpState(ctx.fd)] ?? "unknown" };
        break;
      default:
        throw new VcpuOpError(
          `unknown vCPU operation ${JSON.stringify((op as { op: unknown }).op)}`,
        );
    }
    answer = { ok: true, result };
  } catch (e) {
    answer = { ok: false, error: (e as Error).message };
  }
  return JSON.stringify(answer);
}

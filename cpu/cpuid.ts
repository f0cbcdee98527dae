/**
 * The CPUID table each vCPU sees: KVM's supported leaves, with the topology
 * leaves rewritten to match the configured sockets/cores/threads and the
 * vCPU's APIC ID, and dhyve's hypervisor leaf at 0x4000_0000 (KVM's own
 * paravirtual leaves move to 0x4000_0100, where Linux still finds them: it
 * scans 0x4000_0000-0x4001_0000 in steps of 0x100 for "KVMKVMKVM").
 *
 * Sources: Intel SDM Vol. 2A, CPUID (leaves 01H, 04H, 0BH, 1FH); AMD64 APM
 * Vol. 3, Appendix E (Fn8000_0008, Fn8000_001E).
 *
 * @module
 */
import type { CpuidEntry } from "./kvm.ts";
import { KVM_CPUID_FLAG_SIGNIFCANT_INDEX } from "./kvm_abi.ts";
import { type Topology, topologyBits } from "./topology.ts";

/** dhyve's hypervisor signature (EBX, ECX, EDX of leaf 0x4000_0000). */
export const DHYVE_SIGNATURE = "dhyve dhyve ";
/** The base dhyve's hypervisor leaves start at. */
export const HYPERVISOR_BASE = 0x40000000;
/** Where KVM's paravirtual leaves are moved to. */
export const KVM_LEAVES_BASE = 0x40000100;

/** Options that shape the table. */
export interface CpuidOptions {
  /** Offer x2APIC (CPUID.01H:ECX[21]). */
  readonly x2apic: boolean;
}

/** The CPU vendor from leaf 0 ("GenuineIntel", "AuthenticAMD", ...). */
export function vendorOf(entries: readonly CpuidEntry[]): string {
  const l0 = entries.find((e) => e.function === 0);
  if (!l0) return "unknown";
  return regsToString([l0.ebx, l0.edx, l0.ecx]);
}

function regsToString(regs: number[]): string {
  const bytes = new Uint8Array(regs.length * 4);
  const dv = new DataView(bytes.buffer);
  regs.forEach((r, i) => dv.setUint32(i * 4, r >>> 0, true));
  return new TextDecoder().decode(bytes);
}

function stringToRegs(s: string): number[] {
  const bytes = new TextEncoder().encode(s.padEnd(12, "\0").slice(0, 12));
  const dv = new DataView(bytes.buffer);
  return [0, 4, 8].map((o) => dv.getUint32(o, true));
}

const bits = (v: number, hi: number, lo: number) => (v >>> lo) & ((1 << (hi - lo + 1)) - 1);
const setBits = (v: number, hi: number, lo: number, field: number) => {
  const mask = ((1 << (hi - lo + 1)) - 1) << lo;
  return ((v & ~mask) | ((field << lo) & mask)) >>> 0;
};

/** Leaf 0BH/1FH level types (Intel SDM Vol. 2A, Table 3-8, ECX[15:8]). */
const LEVEL_SMT = 1;
const LEVEL_CORE = 2;

/**
 * Builds the CPUID table of the vCPU with APIC ID `apicId` from KVM's
 * supported table. Pure: the same inputs give the same table.
 */
export function buildCpuid(
  supported: readonly CpuidEntry[],
  topology: Topology,
  apicId: number,
  options: CpuidOptions,
): CpuidEntry[] {
  const { threadBits, coreBits } = topologyBits(topology);
  const perPackage = 1 << (threadBits + coreBits);
  const logicalPerPackage = topology.threads * topology.cores;
  const amd = vendorOf(supported) === "AuthenticAMD";
  const maxBasic = supported.find((e) => e.function === 0)?.eax ?? 0;
  const out: CpuidEntry[] = [];
  /**
   * Leaf 0BH/1FH subleaf `sub` (Intel SDM Vol. 2A, CPUID, "V2 Extended
   * Topology Enumeration Leaf"): 0 = SMT, 1 = core, then invalid levels.
   * EAX: bits to shift the x2APIC ID right to reach the next level; EBX:
   * logical processors at this level; ECX: level type and number.
   */
  const topologyLevel = (sub: number): { eax: number; ebx: number; ecx: number } =>
    sub === 0
      ? { eax: threadBits, ebx: topology.threads, ecx: (LEVEL_SMT << 8) | sub }
      : sub === 1
      ? { eax: threadBits + coreBits, ebx: logicalPerPackage, ecx: (LEVEL_CORE << 8) | sub }
      : { eax: 0, ebx: 0, ecx: sub };

  for (const src of supported) {
    const e = { ...src };
    switch (e.function) {
      case 0x1:
        // EBX[31:24] initial APIC ID; EBX[23:16] addressable logical IDs per package.
        e.ebx = setBits(e.ebx, 31, 24, apicId & 0xff);
        e.ebx = setBits(e.ebx, 23, 16, Math.min(perPackage, 255));
        // EDX[28] HTT: more than one addressable logical processor per package.
        e.edx = perPackage > 1 ? (e.edx | (1 << 28)) >>> 0 : (e.edx & ~(1 << 28)) >>> 0;
        // ECX[21] x2APIC, as configured (bhyve's x86.x2apic).
        e.ecx = options.x2apic ? (e.ecx | (1 << 21)) >>> 0 : (e.ecx & ~(1 << 21)) >>> 0;
        break;
      case 0x4: {
        // Deterministic cache parameters; EAX[4:0] = 0 ends the list.
        if (bits(e.eax, 4, 0) === 0) break;
        const level = bits(e.eax, 7, 5);
        // EAX[25:14]: max addressable IDs sharing this cache, minus 1: a core's
        // threads share L1/L2; the whole package shares L3.
        const sharing = level >= 3 ? perPackage : 1 << threadBits;
        e.eax = setBits(e.eax, 25, 14, sharing - 1);
        // EAX[31:26]: max addressable core IDs in the package, minus 1.
        e.eax = setBits(e.eax, 31, 26, (1 << coreBits) - 1);
        break;
      }
      case 0xb:
      case 0x1f: {
        // Extended topology enumeration: subleaf 0 = SMT, 1 = core, then invalid.
        Object.assign(e, topologyLevel(e.index), { edx: apicId >>> 0 });
        break;
      }
      case 0x80000008:
        if (amd) {
          // ECX[7:0] NC: threads in the package minus 1; ECX[15:12] ApicIdSize.
          e.ecx = setBits(e.ecx, 7, 0, logicalPerPackage - 1);
          e.ecx = setBits(e.ecx, 15, 12, threadBits + coreBits);
        }
        break;
      case 0x8000001e:
        if (amd) {
          // EAX extended APIC ID; EBX[15:8] threads per compute unit - 1, [7:0] unit ID;
          // ECX[7:0] node ID (one node per socket).
          e.eax = apicId >>> 0;
          e.ebx = setBits(
            setBits(e.ebx, 15, 8, topology.threads - 1),
            7,
            0,
            (apicId >> threadBits) & ((1 << coreBits) - 1),
          );
          e.ecx = setBits(e.ecx, 7, 0, apicId >> (threadBits + coreBits));
        }
        break;
      default:
        break;
    }
    if (e.function >= HYPERVISOR_BASE && e.function < HYPERVISOR_BASE + 0x100) {
      // KVM's paravirtual leaves move up by 0x100; their max-leaf value follows.
      e.function += KVM_LEAVES_BASE - HYPERVISOR_BASE;
      if (e.function === KVM_LEAVES_BASE) {
        e.eax = Math.max(e.eax + (KVM_LEAVES_BASE - HYPERVISOR_BASE), KVM_LEAVES_BASE);
      }
    }
    out.push(e);
  }

  // Leaves 0BH and 1FH must answer every subleaf; make sure the levels exist
  // even if KVM listed fewer subleaves.
  for (const fn of [0xb, 0x1f]) {
    if (fn > maxBasic) continue;
    for (let sub = 0; sub <= 2; sub++) {
      if (out.some((e) => e.function === fn && e.index === sub)) continue;
      out.push({
        function: fn,
        index: sub,
        flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
        ...topologyLevel(sub),
        edx: apicId >>> 0,
      });
    }
  }

  // dhyve's hypervisor leaf: max hypervisor leaf in EAX, signature in EBX:ECX:EDX.
  const [sb, sc, sd] = stringToRegs(DHYVE_SIGNATURE);
  out.push({
    function: HYPERVISOR_BASE,
    index: 0,
    flags: 0,
    eax: HYPERVISOR_BASE,
    ebx: sb,
    ecx: sc,
    edx: sd,
  });
  out.sort((a, b) => a.function - b.function || a.index - b.index);
  return out;
}

/** The hypervisor signature of a table's leaf `base`, for tests and `dhyve check`. */
export function signatureAt(entries: readonly CpuidEntry[], base: number): string | undefined {
  const e = entries.find((x) => x.function === base);
  return e ? regsToString([e.ebx, e.ecx, e.edx]) : undefined;
}

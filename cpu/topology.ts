/**
 * CPU topology: how sockets, cores and threads map to APIC IDs.
 *
 * An APIC ID is a bit field, one field per level (Intel SDM Vol. 3A, 9.9.1
 * "Hierarchical Mapping of Shared Resources"): the SMT field is
 * ceil(log2(threads)) bits wide, the core field ceil(log2(cores)) bits above
 * it, and the package (socket) number sits above both. CPU index i
 * (0-based, the order vCPUs are created in) is thread i % threads of core
 * floor(i / threads) % cores of socket floor(i / (threads * cores)).
 *
 * @module
 */

/** Sockets x cores x threads, and how many CPUs exist (cpus) or may (maxcpus). */
export interface Topology {
  readonly sockets: number;
  readonly cores: number;
  readonly threads: number;
  /** vCPUs present at boot. */
  readonly cpus: number;
  /** vCPUs the firmware tables describe (present ones first); >= cpus. */
  readonly maxcpus: number;
}

/** Widths of the APIC ID fields. */
export interface TopologyBits {
  /** Bits for the thread within a core. */
  readonly threadBits: number;
  /** Bits for the core within a package. */
  readonly coreBits: number;
}

/** ceil(log2(n)) for n >= 1. */
export function ceilLog2(n: number): number {
  return n <= 1 ? 0 : 32 - Math.clz32(n - 1);
}

/** The APIC ID field widths of a topology. */
export function topologyBits(t: Pick<Topology, "cores" | "threads">): TopologyBits {
  return { threadBits: ceilLog2(t.threads), coreBits: ceilLog2(t.cores) };
}

/**
 * The highest APIC ID an xAPIC (8-bit ID) can address; 255 is the broadcast
 * ID (Intel SDM Vol. 3A, 10.6.2.1). Higher IDs need x2APIC.
 */
export const MAX_XAPIC_ID = 254;

/** Where CPU `index` sits in the topology. */
export interface CpuPlace {
  readonly index: number;
  readonly socket: number;
  readonly core: number;
  readonly thread: number;
  readonly apicId: number;
  /** Whether a vCPU exists for it at boot (index < cpus). */
  readonly present: boolean;
}

/** Socket, core, thread and APIC ID of CPU `index` (indices past sockets*cores*threads continue into further sockets). */
function placeOf(
  index: number,
  t: Pick<Topology, "cores" | "threads">,
): Omit<CpuPlace, "index" | "present"> {
  const { threadBits, coreBits } = topologyBits(t);
  const thread = index % t.threads;
  const core = Math.floor(index / t.threads) % t.cores;
  const socket = Math.floor(index / (t.threads * t.cores));
  // Multiplication rather than << keeps large socket numbers exact.
  const apicId = socket * 2 ** (coreBits + threadBits) + core * 2 ** threadBits + thread;
  return { socket, core, thread, apicId };
}

/** The APIC ID of CPU `index` (indices past sockets*cores*threads continue into further sockets). */
export function apicIdOf(index: number, t: Pick<Topology, "cores" | "threads">): number {
  return placeOf(index, t).apicId;
}

/** Every CPU of the topology, present ones first. */
export function cpuPlaces(t: Topology): CpuPlace[] {
  return Array.from({ length: t.maxcpus }, (_, i) => ({
    index: i,
    ...placeOf(i, t),
    present: i < t.cpus,
  }));
}

/** A readable summary for `dhyve check`. */
export function formatTopology(t: Topology): string {
  const { threadBits, coreBits } = topologyBits(t);
  const lines = [
    `topology: ${t.sockets} sockets x ${t.cores} cores x ${t.threads} threads = ${t.cpus} vCPUs` +
    (t.maxcpus > t.cpus ? ` (maxcpus ${t.maxcpus})` : ""),
    `apic id fields: thread ${threadBits} bits, core ${coreBits} bits, package from bit ${
      threadBits + coreBits
    }`,
  ];
  for (const c of cpuPlaces(t)) {
    lines.push(
      `  cpu ${c.index}: socket ${c.socket} core ${c.core} thread ${c.thread} apic id ${c.apicId}${
        c.present ? "" : " (not present)"
      }`,
    );
  }
  return lines.join("\n");
}

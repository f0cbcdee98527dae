import assert from "node:assert/strict";
import type { CpuidEntry } from "./kvm.ts";
import {
  buildCpuid,
  DHYVE_SIGNATURE,
  HYPERVISOR_BASE,
  KVM_LEAVES_BASE,
  signatureAt,
  vendorOf,
} from "./cpuid.ts";
import { apicIdOf, type Topology } from "./topology.ts";

/** Three registers from a 12-byte string, little-endian, as CPUID returns them. */
function regs(s: string): [number, number, number] {
  const b = new TextEncoder().encode(s);
  assert.equal(b.length, 12);
  const dv = new DataView(b.buffer);
  return [dv.getUint32(0, true), dv.getUint32(4, true), dv.getUint32(8, true)];
}

const leaf = (fn: number, index: number, r: Partial<CpuidEntry> = {}): CpuidEntry => ({
  function: fn,
  index,
  flags: 0,
  eax: 0,
  ebx: 0,
  ecx: 0,
  edx: 0,
  ...r,
});

const SIG = 1; // KVM_CPUID_FLAG_SIGNIFCANT_INDEX

const [gi0, gi1, gi2] = regs("GenuineIntel"); // leaf 0 order is EBX, EDX, ECX
const [kvm0, kvm1, kvm2] = regs("KVMKVMKVM\0\0\0");

// A cache leaf EAX as hardware reports it: type, level, self-initializing, and host
// sharing fields (L1/L2 shared by 2 threads, L3 by 16, 8 cores) that dhyve must rewrite.
const cacheEax = (type: number, level: number, sharing: number) =>
  ((7 << 26) | ((sharing - 1) << 14) | (1 << 8) | (level << 5) | type) >>> 0;
const L1D = cacheEax(1, 1, 2),
  L1I = cacheEax(2, 1, 2),
  L2 = cacheEax(3, 2, 2),
  L3 = cacheEax(3, 3, 16);

const LEAF1_ECX = (0xfeda3203 | (1 << 21) | (1 << 31)) >>> 0; // x2APIC and hypervisor set by host
const LEAF1_EDX = 0x178bfbff; // HTT (bit 28) set by host

/** A KVM_GET_SUPPORTED_CPUID-like table for an Intel host. */
function intelTable(): CpuidEntry[] {
  return [
    leaf(0, 0, { eax: 0x1f, ebx: gi0, edx: gi1, ecx: gi2 }),
    leaf(1, 0, { eax: 0x000906ea, ebx: 0x07100800, ecx: LEAF1_ECX, edx: LEAF1_EDX }),
    leaf(4, 0, { flags: SIG, eax: L1D, ebx: 0x01c0003f, ecx: 0x3f, edx: 0 }),
    leaf(4, 1, { flags: SIG, eax: L1I, ebx: 0x01c0003f, ecx: 0x3f, edx: 0 }),
    leaf(4, 2, { flags: SIG, eax: L2, ebx: 0x00c0003f, ecx: 0x3ff, edx: 0 }),
    leaf(4, 3, { flags: SIG, eax: L3, ebx: 0x03c0003f, ecx: 0x2fff, edx: 6 }),
    leaf(4, 4, { flags: SIG }),
    leaf(0xb, 0, { flags: SIG, eax: 1, ebx: 2, ecx: 0x100, edx: 9 }),
    leaf(0xb, 1, { flags: SIG, eax: 4, ebx: 16, ecx: 0x201, edx: 9 }),
    leaf(0x1f, 0, { flags: SIG, eax: 1, ebx: 2, ecx: 0x100, edx: 9 }),
    leaf(0x40000000, 0, { eax: 0x40000001, ebx: kvm0, ecx: kvm1, edx: kvm2 }),
    leaf(0x40000001, 0, { eax: 0x01007afb }),
    leaf(0x80000000, 0, { eax: 0x80000008 }),
    leaf(0x80000008, 0, { eax: 0x3027, ecx: 0x0000700f }),
  ];
}

const topo = (
  sockets: number,
  cores: number,
  threads: number,
  cpus?: number,
  maxcpus?: number,
): Topology => {
  const n = sockets * cores * threads;
  return { sockets, cores, threads, cpus: cpus ?? n, maxcpus: maxcpus ?? cpus ?? n };
};

const get = (t: CpuidEntry[], fn: number, index = 0) => {
  const e = t.filter((x) => x.function === fn && x.index === index);
  assert.equal(e.length, 1, `leaf 0x${fn.toString(16)}.${index} appears ${e.length} times`);
  return e[0];
};
const bits = (v: number, hi: number, lo: number) => Math.floor(v / 2 ** lo) % 2 ** (hi - lo + 1);

interface Expect {
  apicId: number;
  /** EBX[23:16] of leaf 1 / addressable IDs per package. */
  perPackage: number;
  htt: boolean;
  smtShift: number;
  coreShift: number;
  threads: number;
  logical: number;
  /** Leaf 4 EAX[25:14] for L1/L2 and for L3, EAX[31:26]. */
  l1Sharing: number;
  l3Sharing: number;
  coresField: number;
}

function checkTopology(t: CpuidEntry[], x: Expect, x2apic: boolean): void {
  const l1 = get(t, 1);
  assert.equal(bits(l1.ebx, 31, 24), x.apicId & 0xff, "initial APIC ID");
  assert.equal(bits(l1.ebx, 23, 16), x.perPackage, "addressable IDs per package");
  assert.equal(bits(l1.ebx, 15, 0), 0x0800, "CLFLUSH size and brand index kept");
  assert.equal(bits(l1.edx, 28, 28), x.htt ? 1 : 0, "HTT");
  assert.equal(l1.edx & ~(1 << 28), LEAF1_EDX & ~(1 << 28), "other EDX bits kept");
  assert.equal(bits(l1.ecx, 21, 21), x2apic ? 1 : 0, "x2APIC");
  assert.equal((l1.ecx & ~(1 << 21)) >>> 0, (LEAF1_ECX & ~(1 << 21)) >>> 0, "other ECX bits kept");
  assert.equal(l1.eax, 0x000906ea);

  const caches: [number, number, number][] = [[0, L1D, x.l1Sharing], [1, L1I, x.l1Sharing], [
    2,
    L2,
    x.l1Sharing,
  ], [3, L3, x.l3Sharing]];
  for (const [sub, hostEax, sharing] of caches) {
    const e = get(t, 4, sub);
    assert.equal(bits(e.eax, 31, 26), x.coresField, `leaf 4.${sub} EAX[31:26]`);
    assert.equal(bits(e.eax, 25, 14), sharing, `leaf 4.${sub} EAX[25:14]`);
    assert.equal(bits(e.eax, 13, 0), bits(hostEax, 13, 0), `leaf 4.${sub} type/level kept`);
  }
  assert.deepEqual(
    get(t, 4, 4),
    leaf(4, 4, { flags: SIG }),
    "the terminating subleaf is left alone",
  );
  assert.equal(get(t, 4, 3).edx, 6, "EBX/ECX/EDX of cache leaves are kept");

  for (const fn of [0xb, 0x1f]) {
    const smt = get(t, fn, 0), core = get(t, fn, 1), end = get(t, fn, 2);
    assert.deepEqual(
      [smt.eax, smt.ebx, smt.ecx, smt.edx],
      [x.smtShift, x.threads, 0x100, x.apicId],
      `leaf 0x${fn.toString(16)}.0 (SMT)`,
    );
    assert.deepEqual(
      [core.eax, core.ebx, core.ecx, core.edx],
      [x.coreShift, x.logical, 0x201, x.apicId],
      `leaf 0x${fn.toString(16)}.1 (core)`,
    );
    assert.deepEqual(
      [end.eax, end.ebx, end.ecx, end.edx],
      [0, 0, 2, x.apicId],
      `leaf 0x${fn.toString(16)}.2 (invalid)`,
    );
    for (const e of [smt, core, end]) {
      assert.equal(e.flags & SIG, SIG, "subleaf index is significant");
    }
    assert.equal(t.filter((e) => e.function === fn).length, 3);
  }
}

/** A package of one single-threaded core: no HTT, nothing shared, zero shifts. */
const ONE_CPU_PACKAGE: Omit<Expect, "apicId"> = {
  perPackage: 1,
  htt: false,
  smtShift: 0,
  coreShift: 0,
  threads: 1,
  logical: 1,
  l1Sharing: 0,
  l3Sharing: 0,
  coresField: 0,
};

Deno.test("1 socket x 1 core x 1 thread", () => {
  const t = buildCpuid(intelTable(), topo(1, 1, 1), 0, { x2apic: false });
  checkTopology(t, { apicId: 0, ...ONE_CPU_PACKAGE }, false);
});

Deno.test("2 sockets x 2 cores x 2 threads, every vCPU", () => {
  const t8 = topo(2, 2, 2);
  for (let i = 0; i < 8; i++) {
    const apicId = apicIdOf(i, t8);
    assert.equal(apicId, i);
    const t = buildCpuid(intelTable(), t8, apicId, { x2apic: true });
    checkTopology(t, {
      apicId,
      perPackage: 4,
      htt: true,
      smtShift: 1,
      coreShift: 2,
      threads: 2,
      logical: 4,
      l1Sharing: 1, // two threads share L1/L2
      l3Sharing: 3, // the package's four share L3
      coresField: 1, // two cores
    }, true);
  }
});

Deno.test("1 socket x 3 cores x 1 thread rounds the core field up to 2 bits", () => {
  const t3 = topo(1, 3, 1);
  const t = buildCpuid(intelTable(), t3, apicIdOf(2, t3), { x2apic: false });
  checkTopology(t, {
    apicId: 2,
    perPackage: 4,
    htt: true,
    smtShift: 0,
    coreShift: 2,
    threads: 1,
    logical: 3, // three cores exist, four IDs are addressable
    l1Sharing: 0,
    l3Sharing: 3,
    coresField: 3,
  }, false);
});

Deno.test("cpus = 2, maxcpus = 4: one-CPU sockets, the hot-pluggable CPU's own APIC ID", () => {
  const t = topo(2, 1, 1, 2, 4); // bhyve's rule: sockets default to cpus
  for (const i of [0, 1, 3]) {
    const apicId = apicIdOf(i, t);
    assert.equal(apicId, i);
    checkTopology(
      buildCpuid(intelTable(), t, apicId, { x2apic: false }),
      { apicId, ...ONE_CPU_PACKAGE },
      false,
    );
  }
});

Deno.test("an APIC ID above 255 keeps its low byte in leaf 1 and all of it in leaf 0xB", () => {
  const t = buildCpuid(intelTable(), topo(1, 1, 1, 1, 300), 0x12c, { x2apic: true });
  assert.equal(bits(get(t, 1).ebx, 31, 24), 0x2c);
  assert.equal(get(t, 0xb, 0).edx, 0x12c);
  assert.equal(get(t, 0x1f, 1).edx, 0x12c);
});

Deno.test("leaf 0xB is filled in even when KVM lists none, but not past the max basic leaf", () => {
  const table = intelTable().filter((e) => e.function !== 0xb && e.function !== 0x1f);
  table[0] = { ...table[0], eax: 0xd };
  const t = buildCpuid(table, topo(1, 2, 2), 3, { x2apic: false });
  assert.deepEqual(
    t.filter((e) => e.function === 0xb).map((e) => [e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx]),
    [
      [0, SIG, 1, 2, 0x100, 3],
      [1, SIG, 2, 4, 0x201, 3],
      [2, SIG, 0, 0, 2, 3],
    ],
  );
  assert.equal(
    t.filter((e) => e.function === 0x1f).length,
    0,
    "0x1F is above the max basic leaf 0xD",
  );
});

Deno.test("KVM's further subleaves of 0xB/0x1F become invalid levels", () => {
  const table = [
    ...intelTable(),
    leaf(0x1f, 2, { flags: SIG, eax: 6, ebx: 32, ecx: 0x502, edx: 9 }),
  ];
  const t = buildCpuid(table, topo(1, 2, 1), 1, { x2apic: false });
  assert.deepEqual(get(t, 0x1f, 2), leaf(0x1f, 2, { flags: SIG, eax: 0, ebx: 0, ecx: 2, edx: 1 }));
});

Deno.test("dhyve's signature sits at 0x40000000 and KVM's leaves move to 0x40000100", () => {
  const t = buildCpuid(intelTable(), topo(1, 1, 1), 0, { x2apic: false });
  assert.equal(HYPERVISOR_BASE, 0x40000000);
  assert.equal(KVM_LEAVES_BASE, 0x40000100);
  assert.equal(DHYVE_SIGNATURE, "dhyve dhyve ");
  const dhyve = get(t, 0x40000000);
  assert.equal(signatureAt(t, 0x40000000), "dhyve dhyve ");
  assert.deepEqual([dhyve.ebx, dhyve.ecx, dhyve.edx], regs("dhyve dhyve "));
  assert.equal(dhyve.eax, 0x40000000, "max hypervisor leaf");
  const kvm = get(t, 0x40000100);
  assert.equal(signatureAt(t, 0x40000100), "KVMKVMKVM\0\0\0");
  assert.equal(kvm.eax, 0x40000101, "max leaf follows the move");
  assert.equal(get(t, 0x40000101).eax, 0x01007afb, "KVM's feature leaf moved intact");
  assert.deepEqual(
    t.filter((e) => e.function >= 0x40000000 && e.function < 0x50000000).map((e) => e.function),
    [0x40000000, 0x40000100, 0x40000101],
  );
  assert.equal(signatureAt(t, 0x40000200), undefined);
});

Deno.test("a KVM max-leaf value of 0 still points at the moved leaves", () => {
  const table = intelTable().map((e) => (e.function === 0x40000000 ? { ...e, eax: 0 } : e));
  const t = buildCpuid(table, topo(1, 1, 1), 0, { x2apic: false });
  assert.equal(get(t, 0x40000100).eax, 0x40000100);
});

Deno.test("the table is sorted, pure, and leaves vendor-specific AMD leaves of an Intel host alone", () => {
  const input = intelTable();
  const copy = structuredClone(input);
  const a = buildCpuid(input, topo(2, 2, 2), 5, { x2apic: true });
  const b = buildCpuid(input, topo(2, 2, 2), 5, { x2apic: true });
  assert.deepEqual(input, copy, "the supported table is not modified");
  assert.deepEqual(a, b);
  for (let i = 1; i < a.length; i++) {
    const p = a[i - 1], q = a[i];
    assert.ok(
      p.function < q.function || (p.function === q.function && p.index < q.index),
      "sorted, unique",
    );
  }
  assert.deepEqual(get(a, 0x80000008), leaf(0x80000008, 0, { eax: 0x3027, ecx: 0x0000700f }));
  assert.deepEqual(get(a, 0), input[0]);
  assert.equal(vendorOf(a), "GenuineIntel");
  assert.equal(vendorOf([]), "unknown");
});

Deno.test("an AuthenticAMD table gets 0x80000008 ECX and 0x8000001E topology fields", () => {
  const [a0, a1, a2] = regs("AuthenticAMD");
  const amd = [
    leaf(0, 0, { eax: 0x10, ebx: a0, edx: a1, ecx: a2 }),
    leaf(1, 0, { eax: 0x00a20f12, ebx: 0x00100800, ecx: 0x7ef8320b, edx: 0x178bfbff }),
    leaf(0x80000000, 0, { eax: 0x80000021 }),
    // Host: NC = 15, ApicIdSize = 7, PerfTscSize bits above kept.
    leaf(0x80000008, 0, { eax: 0x3030, ecx: 0x0003700f }),
    leaf(0x8000001e, 0, { eax: 0x11, ebx: 0x0100, ecx: 0x0300 }),
  ];
  assert.equal(vendorOf(amd), "AuthenticAMD");
  const t8 = topo(2, 2, 2);
  // CPU 6: socket 1, core 1, thread 0 -> APIC ID 0b1_1_0.
  const t = buildCpuid(amd, t8, apicIdOf(6, t8), { x2apic: false });
  const ext8 = get(t, 0x80000008);
  assert.equal(bits(ext8.ecx, 7, 0), 3, "NC: 4 threads per package - 1");
  assert.equal(bits(ext8.ecx, 15, 12), 2, "ApicIdSize: 2 bits below the package");
  assert.equal(bits(ext8.ecx, 31, 16), 0x0003, "other ECX bits kept");
  assert.equal(ext8.eax, 0x3030);
  const ext1e = get(t, 0x8000001e);
  assert.equal(ext1e.eax, 6, "extended APIC ID");
  assert.equal(bits(ext1e.ebx, 15, 8), 1, "threads per compute unit - 1");
  assert.equal(bits(ext1e.ebx, 7, 0), 1, "compute unit (core) ID");
  assert.equal(bits(ext1e.ecx, 7, 0), 1, "node ID = socket");
  assert.equal(bits(ext1e.ecx, 15, 8), 3, "NodesPerProcessor kept");
  // Leaf 0 max basic 0x10: 0xB is answered, 0x1F (above it) is not synthesized.
  assert.deepEqual(
    t.filter((e) => e.function === 0xb).map((e) => [e.eax, e.ebx, e.ecx, e.edx]),
    [[1, 2, 0x100, 6], [2, 4, 0x201, 6], [0, 0, 2, 6]],
  );
  assert.equal(t.filter((e) => e.function === 0x1f).length, 0);
  // Leaf 1 topology applies to AMD as well.
  assert.equal(bits(get(t, 1).ebx, 31, 24), 6);
  assert.equal(bits(get(t, 1).ebx, 23, 16), 4);
  // 1 x 1 x 1 on AMD.
  const one = buildCpuid(amd, topo(1, 1, 1), 0, { x2apic: false });
  assert.equal(bits(get(one, 0x80000008).ecx, 15, 0), 0);
  assert.deepEqual([
    get(one, 0x8000001e).eax,
    bits(get(one, 0x8000001e).ebx, 15, 0),
    bits(get(one, 0x8000001e).ecx, 7, 0),
  ], [0, 0, 0]);
});

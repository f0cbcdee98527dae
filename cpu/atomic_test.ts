// Tests of cpu/atomic.ts: compare-exchange semantics at every size, and a
// race of two Workers (libatomic) and a native `lock cmpxchg16b` loop (a
// tiny C library built with gcc now) on one 16-byte counter: no update may
// be lost and the two halves may never tear.
import assert from "node:assert/strict";
import { hostAtomics } from "./atomic.ts";
import { libc, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "./libc.ts";

// Opened once per thread and kept: open them before the sanitizers count.
libc();
hostAtomics();

/** A private anonymous mapping, like guest RAM, with its host address. */
function mapPage(): { address: bigint; bytes: Uint8Array; close(): void } {
  const c = libc();
  const p = c.fn.mmap(null, 4096n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  if (p === null) throw new Error("mmap failed");
  return {
    address: Deno.UnsafePointer.value(p),
    bytes: new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, 4096)),
    close: () => void c.fn.munmap(p, 4096n),
  };
}

Deno.test("cmpxchg of 1, 2, 4, 8 and 16 bytes: exchanges on a match, returns the value found", () => {
  const a = hostAtomics();
  const page = mapPage();
  try {
    const dv = new DataView(page.bytes.buffer);
    for (const size of [1, 2, 4, 8, 16]) {
      const at = 64;
      page.bytes.fill(0);
      const bits = BigInt(size * 8);
      const old = ((1n << bits) - 1n) / 3n; // 0x55...
      const next = ((1n << bits) - 1n) / 5n * 2n; // 0x66...
      for (let i = 0; i < size; i++) page.bytes[at + i] = Number((old >> BigInt(8 * i)) & 0xffn);
      // A mismatch changes nothing and reports what is there.
      assert.equal(a.cmpxchg(page.address + BigInt(at), size, old ^ 1n, next), old, `size ${size}`);
      assert.equal(a.cmpxchg(page.address + BigInt(at), size, old, next), old, `size ${size}`);
      let now = 0n;
      for (let i = size - 1; i >= 0; i--) now = (now << 8n) | BigInt(page.bytes[at + i]);
      assert.equal(now, next, `size ${size}`);
      // Neighbours untouched.
      assert.equal(page.bytes[at - 1], 0);
      assert.equal(page.bytes[at + size], 0);
    }
    // Unaligned 4- and 8-byte exchanges are fine (lock cmpxchg takes any alignment).
    dv.setUint32(13, 7, true);
    assert.equal(a.cmpxchg(page.address + 13n, 4, 7n, 9n), 7n);
    assert.equal(dv.getUint32(13, true), 9);
    dv.setBigUint64(101, 1n << 60n, true);
    assert.equal(a.cmpxchg(page.address + 101n, 8, 1n << 60n, 3n), 1n << 60n);
    assert.equal(dv.getBigUint64(101, true), 3n);
    // cmpxchg16b needs 16-byte alignment; refused rather than a host #GP.
    assert.throws(() => a.cmpxchg(page.address + 8n, 16, 0n, 1n), /not 16-byte aligned/);
    assert.throws(() => a.cmpxchg(page.address, 3, 0n, 1n), /no 3-byte/);
  } finally {
    page.close();
  }
});

Deno.test("libatomic's 16-byte exchange is lock-free here (cmpxchg16b)", () => {
  // libatomic's resolver and this check both read CPUID.01H:ECX.CX16.
  assert.equal(hostAtomics().lockFree16, true);
});

const NATIVE_C = `
#include <stdint.h>
/* Adds (1 + 2^64) to the 16-byte counter at p, n times, with lock cmpxchg16b. */
void inc16(volatile uint64_t *p, long n) {
  for (long i = 0; i < n; i++) {
    uint64_t lo = p[0], hi = p[1];
    for (;;) {
      uint64_t nlo = lo + 1, nhi = hi + 1;
      unsigned char ok;
      __asm__ volatile("lock cmpxchg16b %1; sete %0"
                       : "=q"(ok), "+m"(*(volatile __int128 *)p), "+a"(lo), "+d"(hi)
                       : "b"(nlo), "c"(nhi)
                       : "memory", "cc");
      if (ok) break;
    }
  }
}
`;

/** The Worker body: increments through atomic.ts, reporting how many retries it took. */
const WORKER_SOURCE = (atomicUrl: string) => `
import { hostAtomics } from ${JSON.stringify(atomicUrl)};
self.onmessage = (e) => {
  const { address, n } = e.data;
  const a = hostAtomics();
  let retries = 0;
  for (let i = 0; i < n; i++) {
    let seen = a.cmpxchg(address, 16, 0n, 0n);
    for (;;) {
      const lo = seen & ((1n << 64n) - 1n), hi = seen >> 64n;
      const next = (lo + 1n) | ((hi + 1n) << 64n);
      const found = a.cmpxchg(address, 16, seen, next);
      if (found === seen) break;
      retries++;
      seen = found;
    }
  }
  self.postMessage(retries);
};
`;

Deno.test("two Workers (libatomic) and a native lock cmpxchg16b loop race on one counter: no update lost, no tearing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dhyve-atomic-" });
  const page = mapPage();
  const workers: Worker[] = [];
  let lib:
    | Deno.DynamicLibrary<
      { inc16: { parameters: ["usize", "i64"]; result: "void"; nonblocking: true } }
    >
    | undefined;
  try {
    await Deno.writeTextFile(`${dir}/inc16.c`, NATIVE_C);
    const cc = await new Deno.Command("gcc", {
      args: ["-O2", "-shared", "-fPIC", "-o", `${dir}/inc16.so`, `${dir}/inc16.c`],
      stderr: "piped",
    }).output();
    assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
    lib = Deno.dlopen(
      `${dir}/inc16.so`,
      {
        inc16: { parameters: ["usize", "i64"], result: "void", nonblocking: true },
      } as const,
    );

    const address = page.address + 256n; // 16-byte aligned
    const N = 40_000;
    const src = WORKER_SOURCE(new URL("./atomic.ts", import.meta.url).href);
    const url = `data:application/javascript;base64,${btoa(src)}`;
    const done: Promise<number>[] = [];
    for (let i = 0; i < 2; i++) {
      const w = new Worker(url, { type: "module" });
      workers.push(w);
      done.push(
        new Promise((resolve, reject) => {
          w.onmessage = (e) => resolve(e.data as number);
          w.onerror = (e) => {
            e.preventDefault();
            reject(new Error(e.message));
          };
        }),
      );
    }
    // The native loop runs on a thread of its own (nonblocking FFI), at the same time.
    const native = lib.symbols.inc16(address, BigInt(N));
    for (const w of workers) w.postMessage({ address, n: N });
    const retries = await Promise.all(done);
    await native;
    const dv = new DataView(page.bytes.buffer);
    const lo = dv.getBigUint64(256, true);
    const hi = dv.getBigUint64(264, true);
    assert.equal(lo, BigInt(3 * N), `lost updates (retries ${retries})`);
    assert.equal(hi, BigInt(3 * N), "the two halves tore");
    // Retries mean the threads did overlap (a measure of the contention, not asserted).
    console.log(`cmpxchg16b race: ${3 * N} increments, ${retries[0] + retries[1]} retries`);
  } finally {
    for (const w of workers) w.terminate();
    lib?.close();
    page.close();
    await Deno.remove(dir, { recursive: true });
  }
});

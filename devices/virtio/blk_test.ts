import assert from "node:assert/strict";
import {
  blkIdBytes,
  type BlockBackend,
  createBlkHandler,
  VIRTIO_BLK_CONFIG,
  VIRTIO_BLK_CONFIG_SIZE,
  VIRTIO_BLK_F,
  VIRTIO_BLK_MAX_DISCARD_SECTORS,
  VIRTIO_BLK_S,
  VIRTIO_BLK_T,
  virtioBlkModel,
  type VirtioBlkOptions,
} from "./blk.ts";
import { SplitQueue } from "./queue.ts";
import {
  featureBit,
  VIRTIO_F,
  VIRTIO_ID,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VirtqueueError,
} from "./types.ts";
import { AVAIL, type Buf, Driver, FakeContext, QSIZE, RAM } from "./_testing.ts";

// ---------------------------------------------------------------------------
// Fakes.

/** An in-memory disk that records calls, checks ranges and can be told to fail. */
class MemBackend implements BlockBackend {
  readonly data: Uint8Array;
  readonly calls: string[] = [];
  readonly violations: string[] = [];
  fail: string | null = null;
  constructor(readonly size: number, readonly readonly = false) {
    this.data = new Uint8Array(size);
    for (let i = 0; i < size; i++) this.data[i] = (i * 7 + (i >> 9)) & 0xff;
  }
  #check(op: string, offset: number, length: number): void {
    this.calls.push(`${op} ${offset} ${length}`);
    const ok = Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 &&
      length >= 0 && offset + length <= this.size;
    if (!ok) this.violations.push(`${op} ${offset} ${length}`);
    if (this.fail === op) throw new Error(`injected ${op} failure`);
  }
  read(offset: number, dst: Uint8Array): void {
    this.#check("read", offset, dst.length);
    dst.set(this.data.subarray(offset, offset + dst.length));
  }
  write(offset: number, src: Uint8Array): void {
    this.#check("write", offset, src.length);
    this.data.set(src, offset);
  }
  flush(): void {
    this.#check("flush", 0, 0);
  }
  discard(offset: number, length: number): void {
    this.#check("discard", offset, length);
  }
  writeZeroes(offset: number, length: number, unmap: boolean): void {
    this.#check(unmap ? "writeZeroes-unmap" : "writeZeroes", offset, length);
    this.data.fill(0, offset, offset + length);
  }
}

const SECTORS = 64;

interface Setup {
  d: Driver;
  ctx: FakeContext;
  backend: MemBackend;
  handler: ReturnType<typeof createBlkHandler>;
  options: VirtioBlkOptions;
}

function setup(o: {
  size?: number;
  backendSize?: number;
  readonly?: boolean;
  discard?: boolean;
  serial?: string;
  features?: bigint;
  eventIdx?: boolean;
  queue?: typeof SplitQueue;
} = {}): Setup {
  const options: VirtioBlkOptions = {
    size: o.size ?? SECTORS * 512,
    readonly: o.readonly ?? false,
    serial: o.serial ?? "dhyve-disk0",
    discard: o.discard ?? true,
  };
  const d = new Driver({ eventIdx: o.eventIdx, queue: o.queue });
  const features = o.features ?? (virtioBlkModel(options).features | featureBit(VIRTIO_F.version1));
  const ctx = new FakeContext(d.mem, features, new Uint8Array(VIRTIO_BLK_CONFIG_SIZE));
  const backend = new MemBackend(o.backendSize ?? options.size, options.readonly);
  const handler = createBlkHandler(ctx, [d.queue], backend, options);
  return { d, ctx, backend, handler, options };
}

function header(type: number, sector: bigint | number): Uint8Array {
  const h = new Uint8Array(16);
  const v = new DataView(h.buffer);
  v.setUint32(0, type, true);
  v.setUint32(4, 0xdeadbeef, true); // reserved: ignored
  v.setBigUint64(8, BigInt(sector), true);
  return h;
}

function segment(sector: bigint | number, num: number, flags: number): Uint8Array {
  const s = new Uint8Array(16);
  const v = new DataView(s.buffer);
  v.setBigUint64(0, BigInt(sector), true);
  v.setUint32(8, num, true);
  v.setUint32(12, flags, true);
  return s;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function pattern(len: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (i * 13 + seed) & 0xff);
}

/** Sends one request with a separate header, data and status; returns the status and used len. */
function request(
  s: Setup,
  type: number,
  sector: bigint | number,
  data: { out?: Uint8Array; inLen?: number } = {},
): { status: number; len: number; inData: Uint8Array | null } {
  const bufs: Buf[] = [s.d.ro(header(type, sector))];
  if (data.out) bufs.push(s.d.ro(data.out));
  const inBuf = data.inLen !== undefined ? s.d.wo(data.inLen) : null;
  if (inBuf) bufs.push(inBuf);
  const status = s.d.wo(1);
  bufs.push(status);
  const head = s.d.add(bufs);
  s.handler.notify(0);
  const used = s.d.takeUsed();
  assert.equal(used.length, 1);
  assert.equal(used[0].id, head);
  return {
    status: s.d.mem.readU8(status.gpa),
    len: used[0].len,
    inData: inBuf ? s.d.mem.read(inBuf.gpa, inBuf.len) : null,
  };
}

function noViolations(s: Setup): void {
  assert.deepEqual(s.backend.violations, [], "backend ranges stay inside [0, size)");
}

// ---------------------------------------------------------------------------
// The model.

Deno.test("the model: device ID 2, mass-storage class, one queue of 256, features", () => {
  const m = virtioBlkModel({ size: 1 << 20, readonly: false, serial: "x", discard: true });
  assert.equal(m.deviceId, VIRTIO_ID.block);
  assert.equal(m.pciClass, 0x010000);
  assert.deepEqual(m.queueSizes, [256]);
  assert.equal(m.configSize, 60);
  const want = [
    VIRTIO_BLK_F.segMax,
    VIRTIO_BLK_F.blkSize,
    VIRTIO_BLK_F.flush,
    VIRTIO_BLK_F.discard,
    VIRTIO_BLK_F.writeZeroes,
  ].reduce((f, b) => f | featureBit(b), 0n);
  assert.equal(m.features, want);

  const ro = virtioBlkModel({ size: 1 << 20, readonly: true, serial: "", discard: true });
  assert.equal(
    ro.features,
    featureBit(VIRTIO_BLK_F.segMax) | featureBit(VIRTIO_BLK_F.blkSize) |
      featureBit(VIRTIO_BLK_F.flush) | featureBit(VIRTIO_BLK_F.ro),
    "read-only: RO, and no DISCARD/WRITE_ZEROES",
  );
  const plain = virtioBlkModel({ size: 1 << 20, readonly: false, serial: "", discard: false });
  assert.equal(plain.features & featureBit(VIRTIO_BLK_F.discard), 0n);
  assert.equal(plain.features & featureBit(VIRTIO_BLK_F.ro), 0n);
  assert.equal(plain.configWritable, undefined, "configuration is read-only");
});

Deno.test("the configuration follows §5.2.4, capacity in whole 512-byte sectors", () => {
  const m = virtioBlkModel({ size: 10 * 512 + 100, readonly: false, serial: "", discard: true });
  const config = new Uint8Array(m.configSize).fill(0xaa);
  m.initConfig(config);
  const v = new DataView(config.buffer);
  const C = VIRTIO_BLK_CONFIG;
  assert.equal(v.getBigUint64(C.capacity, true), 10n);
  assert.equal(v.getUint32(C.sizeMax, true), 0);
  assert.equal(v.getUint32(C.segMax, true), 254);
  assert.equal(v.getUint32(C.geometry, true), 0);
  assert.equal(v.getUint32(C.blkSize, true), 512);
  assert.equal(v.getBigUint64(C.topology, true), 0n);
  assert.equal(v.getUint32(C.writeback, true), 0, "writeback, unused0, num_queues");
  assert.equal(v.getUint32(C.maxDiscardSectors, true), VIRTIO_BLK_MAX_DISCARD_SECTORS);
  assert.equal(v.getUint32(C.maxDiscardSeg, true), 1);
  assert.equal(v.getUint32(C.discardSectorAlignment, true), 8);
  assert.equal(v.getUint32(C.maxWriteZeroesSectors, true), VIRTIO_BLK_MAX_DISCARD_SECTORS);
  assert.equal(v.getUint32(C.maxWriteZeroesSeg, true), 1);
  assert.equal(v.getUint32(C.writeZeroesMayUnmap, true), 1, "may_unmap, then unused1 = 0");
  assert.equal(C.writeZeroesMayUnmap + 4, VIRTIO_BLK_CONFIG_SIZE);

  const big = virtioBlkModel({ size: 2 ** 40, readonly: true, serial: "", discard: true });
  const c2 = new Uint8Array(big.configSize).fill(0xaa);
  big.initConfig(c2);
  const v2 = new DataView(c2.buffer);
  assert.equal(v2.getBigUint64(C.capacity, true), 2n ** 31n);
  assert.deepEqual([...c2.subarray(C.maxDiscardSectors)], new Array(24).fill(0), "no discard");
});

Deno.test("bad options are refused with a RangeError", () => {
  const base = { size: 512, readonly: false, serial: "", discard: false };
  assert.throws(() => virtioBlkModel({ ...base, serial: "x".repeat(21) }), RangeError);
  assert.throws(() => virtioBlkModel({ ...base, serial: "caf\u00e9" }), RangeError);
  assert.throws(() => virtioBlkModel({ ...base, serial: "a\0b" }), RangeError);
  assert.throws(() => virtioBlkModel({ ...base, size: -1 }), RangeError);
  assert.throws(() => virtioBlkModel({ ...base, size: 1.5 }), RangeError);
  assert.doesNotThrow(() => virtioBlkModel({ ...base, serial: "x".repeat(20) }));
});

Deno.test("the ID string is NUL-padded, without a NUL when 20 bytes long", () => {
  assert.deepEqual(
    [...blkIdBytes("ab")],
    [0x61, 0x62, ...new Array(18).fill(0)],
  );
  assert.deepEqual(
    new TextDecoder().decode(blkIdBytes("0123456789abcdefghij")),
    "0123456789abcdefghij",
  );
});

// ---------------------------------------------------------------------------
// Requests.

Deno.test("IN reads sectors into the writable data; used len = data + status", () => {
  const s = setup();
  const r = request(s, VIRTIO_BLK_T.in, 3, { inLen: 1024 });
  assert.equal(r.status, VIRTIO_BLK_S.ok);
  assert.equal(r.len, 1025);
  assert.deepEqual(r.inData, s.backend.data.slice(3 * 512, 5 * 512));
  assert.deepEqual(s.ctx.interrupts, [0]);
  noViolations(s);
});

Deno.test("IN across many segments, with the status in the same buffer as the data", () => {
  const s = setup();
  const a = s.d.wo(100);
  const b = s.d.wo(412);
  const c = s.d.wo(513); // 512 data bytes then the status byte
  const head = s.d.add([
    s.d.ro(header(VIRTIO_BLK_T.in, 10).subarray(0, 5)),
    s.d.ro(header(VIRTIO_BLK_T.in, 10).subarray(5)),
    a,
    b,
    c,
  ]);
  s.handler.notify(0);
  assert.deepEqual(s.d.takeUsed(), [{ id: head, len: 1025 }]);
  const got = concat(s.d.mem.read(a.gpa, 100), s.d.mem.read(b.gpa, 412), s.d.mem.read(c.gpa, 512));
  assert.deepEqual(got, s.backend.data.slice(10 * 512, 12 * 512));
  assert.equal(s.d.mem.readU8(c.gpa + 512), VIRTIO_BLK_S.ok);
  noViolations(s);
});

Deno.test("OUT writes the readable data to the disk; used len 1", () => {
  const s = setup();
  const data = pattern(1536, 5);
  const r = request(s, VIRTIO_BLK_T.out, 7, { out: data });
  assert.equal(r.status, VIRTIO_BLK_S.ok);
  assert.equal(r.len, 1);
  assert.deepEqual(s.backend.data.slice(7 * 512, 10 * 512), data);
  noViolations(s);
});

Deno.test("OUT with header and data in one buffer, and to the last sector", () => {
  const s = setup();
  const data = pattern(512, 9);
  const st = s.d.wo(1);
  const head = s.d.add([s.d.ro(concat(header(VIRTIO_BLK_T.out, SECTORS - 1), data)), st]);
  s.handler.notify(0);
  assert.deepEqual(s.d.takeUsed(), [{ id: head, len: 1 }]);
  assert.equal(s.d.mem.readU8(st.gpa), VIRTIO_BLK_S.ok);
  assert.deepEqual(s.backend.data.slice((SECTORS - 1) * 512), data);
  noViolations(s);
});

Deno.test("a read-only disk fails OUT with IOERR and writes nothing; IN still works", () => {
  const s = setup({ readonly: true });
  const before = s.backend.data.slice();
  const r = request(s, VIRTIO_BLK_T.out, 0, { out: pattern(512, 1) });
  assert.equal(r.status, VIRTIO_BLK_S.ioerr);
  assert.deepEqual(s.backend.data, before);
  assert.deepEqual(s.backend.calls, []);
  assert.equal(request(s, VIRTIO_BLK_T.in, 0, { inLen: 512 }).status, VIRTIO_BLK_S.ok);
  // DISCARD/WRITE_ZEROES are not offered on a read-only disk.
  const z = request(s, VIRTIO_BLK_T.writeZeroes, 0, { out: segment(0, 1, 0) });
  assert.equal(z.status, VIRTIO_BLK_S.unsupp);
  assert.deepEqual(s.backend.data, before);
  assert.equal(request(s, VIRTIO_BLK_T.flush, 0).status, VIRTIO_BLK_S.ok);
});

Deno.test("a backend that is read-only fails OUT with IOERR even if the options say writable", () => {
  const s = setup();
  const backend = new MemBackend(SECTORS * 512, true);
  const handler = createBlkHandler(s.ctx, [s.d.queue], backend, s.options);
  const st = s.d.wo(1);
  s.d.add([s.d.ro(header(VIRTIO_BLK_T.out, 0)), s.d.ro(pattern(512, 0)), st]);
  handler.notify(0);
  assert.equal(s.d.mem.readU8(st.gpa), VIRTIO_BLK_S.ioerr);
  assert.deepEqual(backend.calls, []);
});

Deno.test("FLUSH calls the backend; the sector field is ignored", () => {
  const s = setup();
  const r = request(s, VIRTIO_BLK_T.flush, 12345);
  assert.equal(r.status, VIRTIO_BLK_S.ok);
  assert.equal(r.len, 1);
  assert.deepEqual(s.backend.calls, ["flush 0 0"]);
});

Deno.test("GET_ID returns the serial, NUL-padded to 20 bytes, or as much as fits", () => {
  const s = setup({ serial: "dhyve-disk0" });
  const r = request(s, VIRTIO_BLK_T.getId, 0, { inLen: 20 });
  assert.equal(r.status, VIRTIO_BLK_S.ok);
  assert.equal(r.len, 21);
  assert.deepEqual(r.inData, blkIdBytes("dhyve-disk0"));
  const short = request(s, VIRTIO_BLK_T.getId, 0, { inLen: 5 });
  assert.equal(short.status, VIRTIO_BLK_S.ok);
  assert.deepEqual(new TextDecoder().decode(short.inData!), "dhyve");
  const s20 = setup({ serial: "ABCDEFGHIJKLMNOPQRST" });
  const full = request(s20, VIRTIO_BLK_T.getId, 0, { inLen: 20 });
  assert.equal(new TextDecoder().decode(full.inData!), "ABCDEFGHIJKLMNOPQRST");
  assert.deepEqual(s.backend.calls, []);
});

Deno.test("WRITE_ZEROES zeroes the range and passes the unmap flag", () => {
  const s = setup();
  let r = request(s, VIRTIO_BLK_T.writeZeroes, 0, { out: segment(4, 2, 1) });
  assert.equal(r.status, VIRTIO_BLK_S.ok);
  assert.equal(r.len, 1);
  assert.deepEqual(s.backend.data.slice(4 * 512, 6 * 512), new Uint8Array(1024));
  assert.notEqual(s.backend.data[6 * 512 + 1], 0);
  r = request(s, VIRTIO_BLK_T.writeZeroes, 0, { out: segment(SECTORS - 1, 1, 0) });
  assert.equal(r.status, VIRTIO_BLK_S.ok);
  assert.deepEqual(s.backend.calls, [
    `writeZeroes-unmap ${4 * 512} 1024`,
    `writeZeroes ${(SECTORS - 1) * 512} 512`,
  ]);
  // Zero sectors: nothing to do.
  assert.equal(
    request(s, VIRTIO_BLK_T.writeZeroes, 0, { out: segment(SECTORS, 0, 0) }).status,
    VIRTIO_BLK_S.ok,
  );
  assert.equal(s.backend.calls.length, 2);
  noViolations(s);
});

Deno.test("DISCARD reaches the backend; its unmap flag and unknown flags are UNSUPP", () => {
  const s = setup();
  assert.equal(
    request(s, VIRTIO_BLK_T.discard, 0, { out: segment(8, 8, 0) }).status,
    VIRTIO_BLK_S.ok,
  );
  assert.deepEqual(s.backend.calls, [`discard ${8 * 512} ${8 * 512}`]);
  const unsupp = [
    [VIRTIO_BLK_T.discard, 1], // §5.2.6.1: unmap set on a discard
    [VIRTIO_BLK_T.discard, 2],
    [VIRTIO_BLK_T.writeZeroes, 2],
    [VIRTIO_BLK_T.writeZeroes, 0x80000001],
  ];
  for (const [type, flags] of unsupp) {
    const r = request(s, type, 0, { out: segment(0, 1, flags) });
    assert.equal(r.status, VIRTIO_BLK_S.unsupp, `type ${type} flags ${flags}`);
  }
  assert.equal(s.backend.calls.length, 1);
});

Deno.test("DISCARD/WRITE_ZEROES bounds: past the end, too many sectors or segments -> IOERR", () => {
  const s = setup();
  const bad: [number, Uint8Array][] = [
    [VIRTIO_BLK_T.discard, segment(SECTORS, 1, 0)],
    [VIRTIO_BLK_T.discard, segment(SECTORS - 1, 2, 0)],
    [VIRTIO_BLK_T.writeZeroes, segment(2n ** 64n - 1n, 1, 0)],
    [VIRTIO_BLK_T.writeZeroes, segment(2n ** 55n, 1, 0)],
    [VIRTIO_BLK_T.writeZeroes, segment(0, VIRTIO_BLK_MAX_DISCARD_SECTORS + 1, 0)],
    [VIRTIO_BLK_T.writeZeroes, segment(0, 0xffffffff, 0)],
    [VIRTIO_BLK_T.discard, concat(segment(0, 1, 0), segment(2, 1, 0))], // max_discard_seg = 1
    [VIRTIO_BLK_T.discard, segment(0, 1, 0).subarray(0, 12)],
    [VIRTIO_BLK_T.writeZeroes, new Uint8Array(0)],
  ];
  for (const [type, out] of bad) {
    const r = request(s, type, 0, out.length ? { out } : {});
    assert.equal(r.status, VIRTIO_BLK_S.ioerr, `type ${type} ${out}`);
  }
  assert.deepEqual(s.backend.calls, []);
});

Deno.test("DISCARD/WRITE_ZEROES are UNSUPP unless offered and negotiated", () => {
  const off = setup({ discard: false });
  assert.equal(
    request(off, VIRTIO_BLK_T.discard, 0, { out: segment(0, 1, 0) }).status,
    VIRTIO_BLK_S.unsupp,
  );
  const notNegotiated = setup({
    features: featureBit(VIRTIO_F.version1) | featureBit(VIRTIO_BLK_F.discard),
  });
  assert.equal(
    request(notNegotiated, VIRTIO_BLK_T.writeZeroes, 0, { out: segment(0, 1, 0) }).status,
    VIRTIO_BLK_S.unsupp,
  );
  assert.equal(
    request(notNegotiated, VIRTIO_BLK_T.discard, 0, { out: segment(0, 1, 0) }).status,
    VIRTIO_BLK_S.ok,
  );
});

Deno.test("IN/OUT outside the capacity is IOERR and never reaches the backend", () => {
  const s = setup();
  const cases: [number, bigint | number, { out?: Uint8Array; inLen?: number }][] = [
    [VIRTIO_BLK_T.in, SECTORS - 1, { inLen: 1024 }],
    [VIRTIO_BLK_T.in, SECTORS, { inLen: 512 }],
    [VIRTIO_BLK_T.in, 2n ** 64n - 1n, { inLen: 512 }],
    [VIRTIO_BLK_T.in, 2n ** 54n, { inLen: 512 }],
    [VIRTIO_BLK_T.out, SECTORS - 1, { out: pattern(1024, 0) }],
    [VIRTIO_BLK_T.out, 2n ** 63n, { out: pattern(512, 0) }],
  ];
  for (const [type, sector, data] of cases) {
    assert.equal(request(s, type, sector, data).status, VIRTIO_BLK_S.ioerr, `${type} ${sector}`);
  }
  assert.deepEqual(s.backend.calls, []);
  // Empty transfers at the end are fine.
  assert.equal(request(s, VIRTIO_BLK_T.in, SECTORS, { inLen: 0 }).status, VIRTIO_BLK_S.ok);
  assert.equal(request(s, VIRTIO_BLK_T.out, SECTORS, {}).status, VIRTIO_BLK_S.ok);
  assert.deepEqual(s.backend.calls, []);
});

Deno.test("the backend is never asked for bytes past its own size", () => {
  // The options claim 64 sectors but the backend has 10.5: 10 are reachable.
  const s = setup({ backendSize: 10 * 512 + 256 });
  assert.equal(request(s, VIRTIO_BLK_T.in, 9, { inLen: 512 }).status, VIRTIO_BLK_S.ok);
  assert.equal(request(s, VIRTIO_BLK_T.in, 10, { inLen: 512 }).status, VIRTIO_BLK_S.ioerr);
  assert.equal(
    request(s, VIRTIO_BLK_T.out, 9, { out: pattern(1024, 0) }).status,
    VIRTIO_BLK_S.ioerr,
  );
  assert.equal(
    request(s, VIRTIO_BLK_T.writeZeroes, 0, { out: segment(5, 6, 0) }).status,
    VIRTIO_BLK_S.ioerr,
  );
  noViolations(s);
});

Deno.test("odd lengths and a short header are IOERR", () => {
  const s = setup();
  assert.equal(request(s, VIRTIO_BLK_T.in, 0, { inLen: 100 }).status, VIRTIO_BLK_S.ioerr);
  assert.equal(request(s, VIRTIO_BLK_T.in, 0, { inLen: 513 }).status, VIRTIO_BLK_S.ioerr);
  assert.equal(
    request(s, VIRTIO_BLK_T.out, 0, { out: pattern(511, 0) }).status,
    VIRTIO_BLK_S.ioerr,
  );
  // A header of 8 bytes.
  const st = s.d.wo(1);
  const head = s.d.add([s.d.ro(header(VIRTIO_BLK_T.flush, 0).subarray(0, 8)), st]);
  // No header at all, only a status byte.
  const st2 = s.d.wo(1);
  const head2 = s.d.add([st2]);
  s.handler.notify(0);
  assert.deepEqual(s.d.takeUsed(), [{ id: head, len: 1 }, { id: head2, len: 1 }]);
  assert.equal(s.d.mem.readU8(st.gpa), VIRTIO_BLK_S.ioerr);
  assert.equal(s.d.mem.readU8(st2.gpa), VIRTIO_BLK_S.ioerr);
  assert.deepEqual(s.backend.calls, []);
});

Deno.test("the status goes in the last writable byte; len covers the whole writable part", () => {
  const s = setup();
  // An OUT with 3 writable bytes: the status lands in the third, len = 3.
  const w = s.d.wo(3);
  const head = s.d.add([s.d.ro(header(VIRTIO_BLK_T.out, 1)), s.d.ro(pattern(512, 3)), w]);
  s.handler.notify(0);
  assert.deepEqual(s.d.takeUsed(), [{ id: head, len: 3 }]);
  assert.deepEqual([...s.d.mem.read(w.gpa, 3)], [0xee, 0xee, VIRTIO_BLK_S.ok]);
});

Deno.test("a chain without a writable byte is returned with len 0 and logged once", () => {
  const s = setup();
  const h1 = s.d.add([s.d.ro(header(VIRTIO_BLK_T.out, 0)), s.d.ro(pattern(512, 0))]);
  const h2 = s.d.add([s.d.ro(header(VIRTIO_BLK_T.flush, 0))]);
  s.handler.notify(0);
  assert.deepEqual(s.d.takeUsed(), [{ id: h1, len: 0 }, { id: h2, len: 0 }]);
  assert.deepEqual(s.backend.calls, [], "nothing is done for a request nobody can learn about");
  assert.equal(s.ctx.logs.length, 1);
  assert.match(s.ctx.logs[0], /no writable status byte/);
});

Deno.test("unknown and unimplemented request types are UNSUPP", () => {
  const s = setup();
  for (
    const t of [2, 3, 5, VIRTIO_BLK_T.getLifetime, VIRTIO_BLK_T.secureErase, 16, 99, 0x80000001]
  ) {
    const r = request(s, t, 0, { inLen: 512 });
    assert.equal(r.status, VIRTIO_BLK_S.unsupp, `type ${t}`);
    assert.equal(r.len, 513);
  }
  assert.deepEqual(s.backend.calls, []);
});

Deno.test("backend errors become IOERR and are logged; the queue keeps going", () => {
  const s = setup();
  for (
    const [op, type, data] of [
      ["read", VIRTIO_BLK_T.in, { inLen: 512 }],
      ["write", VIRTIO_BLK_T.out, { out: pattern(512, 0) }],
      ["flush", VIRTIO_BLK_T.flush, {}],
      ["discard", VIRTIO_BLK_T.discard, { out: segment(0, 1, 0) }],
      ["writeZeroes", VIRTIO_BLK_T.writeZeroes, { out: segment(0, 1, 0) }],
    ] as const
  ) {
    s.backend.fail = op;
    assert.equal(request(s, type, 0, data).status, VIRTIO_BLK_S.ioerr, op);
    assert.match(s.ctx.logs.at(-1)!, new RegExp(`injected ${op} failure`));
  }
  s.backend.fail = null;
  assert.equal(request(s, VIRTIO_BLK_T.in, 0, { inLen: 512 }).status, VIRTIO_BLK_S.ok);
  // A backend throwing something that is not an Error.
  const weird = setup();
  weird.backend.read = () => {
    throw "boom";
  };
  assert.equal(request(weird, VIRTIO_BLK_T.in, 0, { inLen: 512 }).status, VIRTIO_BLK_S.ioerr);
  assert.match(weird.ctx.logs[0], /boom/);
});

Deno.test("a malformed ring throws VirtqueueError out of notify", () => {
  const s = setup();
  // A buffer outside guest RAM.
  s.d.add([{ gpa: RAM - 8, len: 16, write: false }, s.d.wo(1)]);
  assert.throws(() => s.handler.notify(0), VirtqueueError);
  // avail idx far ahead of what a queue can hold.
  const t = setup();
  t.d.mem.writeU16(AVAIL + 2, QSIZE + 1);
  assert.throws(() => t.handler.notify(0), VirtqueueError);
  assert.deepEqual(t.ctx.interrupts, []);
});

Deno.test("several requests in one notify get one interrupt; other queues are ignored", () => {
  const s = setup();
  const sts = [0, 1, 2].map(() => s.d.wo(1));
  for (const st of sts) s.d.add([s.d.ro(header(VIRTIO_BLK_T.flush, 0)), st]);
  s.handler.notify(1); // no such queue
  assert.deepEqual(s.d.takeUsed(), []);
  s.handler.notify(0);
  assert.equal(s.d.takeUsed().length, 3);
  assert.deepEqual(s.ctx.interrupts, [0]);
  s.handler.notify(0); // nothing new: no interrupt
  assert.deepEqual(s.ctx.interrupts, [0]);
  // A handler with the queue not enabled does nothing.
  const none = createBlkHandler(s.ctx, [null], s.backend, s.options);
  s.d.add([s.d.ro(header(VIRTIO_BLK_T.flush, 0)), s.d.wo(1)]);
  none.notify(0);
  assert.deepEqual(s.d.takeUsed(), []);
});

Deno.test("VIRTQ_AVAIL_F_NO_INTERRUPT suppresses the interrupt, not the work", () => {
  const s = setup();
  s.d.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  assert.equal(request(s, VIRTIO_BLK_T.flush, 0).status, VIRTIO_BLK_S.ok);
  assert.deepEqual(s.ctx.interrupts, []);
  s.d.setAvailFlags(0);
  request(s, VIRTIO_BLK_T.flush, 0);
  assert.deepEqual(s.ctx.interrupts, [0]);
});

Deno.test("with EVENT_IDX: used_event decides the interrupt, avail_event is re-armed", () => {
  const s = setup({ eventIdx: true });
  s.d.setUsedEvent(1); // interrupt when used idx passes 1, i.e. at the 2nd completion
  request(s, VIRTIO_BLK_T.flush, 0);
  assert.deepEqual(s.ctx.interrupts, []);
  assert.equal(s.d.availEvent(), 1);
  request(s, VIRTIO_BLK_T.flush, 0);
  assert.deepEqual(s.ctx.interrupts, [0]);
  assert.equal(s.d.availEvent(), 2);
  request(s, VIRTIO_BLK_T.flush, 0);
  assert.deepEqual(s.ctx.interrupts, [0], "used_event 1 already passed");
});

Deno.test("a request that races the re-arm is served before notify returns", () => {
  let d: Driver | null = null;
  let raced = false;
  class RacyQueue extends SplitQueue {
    override armNotification(): void {
      super.armNotification();
      if (!raced && d) {
        raced = true;
        // The driver adds a buffer after it last read avail_event: no notify comes.
        d.add([d.ro(header(VIRTIO_BLK_T.flush, 0)), d.wo(1)]);
      }
    }
  }
  const s = setup({ eventIdx: true, queue: RacyQueue });
  d = s.d;
  s.d.add([s.d.ro(header(VIRTIO_BLK_T.flush, 0)), s.d.wo(1)]);
  s.handler.notify(0);
  assert.equal(s.d.takeUsed().length, 2);
  assert.deepEqual(s.backend.calls, ["flush 0 0", "flush 0 0"]);
});

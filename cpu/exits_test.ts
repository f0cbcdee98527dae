import assert from "node:assert/strict";
import { BadExitError, decodeExit } from "./exits.ts";
import { KVM_EXIT, KVM_RUN_STRUCT } from "./kvm_abi.ts";

const O = KVM_RUN_STRUCT.o;

function page(reason: number, fill: (dv: DataView, b: Uint8Array) => void = () => {}) {
  const bytes = new Uint8Array(4096 + KVM_RUN_STRUCT.size);
  const view = new DataView(bytes.buffer);
  view.setUint32(O.exitReason, reason, true);
  fill(view, bytes);
  return { bytes, view };
}

Deno.test("port I/O exits decode direction, port, size, count and the data offset", () => {
  const { bytes, view } = page(KVM_EXIT.IO, (dv, b) => {
    b[O.ioDirection] = 1;
    b[O.ioSize] = 2;
    dv.setUint16(O.ioPort, 0x3f8, true);
    dv.setUint32(O.ioCount, 3, true);
    dv.setBigUint64(O.ioDataOffset, 4096n, true);
  });
  assert.deepEqual(decodeExit(bytes, view), {
    reason: "io",
    out: true,
    port: 0x3f8,
    size: 2,
    count: 3,
    dataOffset: 4096,
  });
});

Deno.test("an I/O exit whose data would lie outside the run page, or with a bad size, is refused", () => {
  const outside = page(KVM_EXIT.IO, (dv, b) => {
    b[O.ioSize] = 4;
    dv.setUint32(O.ioCount, 2, true);
    dv.setBigUint64(O.ioDataOffset, BigInt(4096 + KVM_RUN_STRUCT.size - 4), true);
  });
  assert.throws(() => decodeExit(outside.bytes, outside.view), BadExitError);
  const badSize = page(KVM_EXIT.IO, (_dv, b) => (b[O.ioSize] = 3));
  assert.throws(() => decodeExit(badSize.bytes, badSize.view), /size 3/);
});

Deno.test("MMIO exits decode address, length and direction; bad lengths are refused", () => {
  const { bytes, view } = page(KVM_EXIT.MMIO, (dv, b) => {
    dv.setBigUint64(O.mmioPhysAddr, 0xfed000f0n, true);
    dv.setUint32(O.mmioLen, 8, true);
    b[O.mmioIsWrite] = 0;
  });
  assert.deepEqual(decodeExit(bytes, view), {
    reason: "mmio",
    write: false,
    address: 0xfed000f0,
    size: 8,
  });
  const bad = page(KVM_EXIT.MMIO, (dv) => dv.setUint32(O.mmioLen, 16, true));
  assert.throws(() => decodeExit(bad.bytes, bad.view), /length 16/);
  const none = page(KVM_EXIT.MMIO, (dv) => dv.setUint32(O.mmioLen, 0, true));
  assert.throws(() => decodeExit(none.bytes, none.view), /length 0/);
  // A piece of an access split at a page boundary.
  const piece = page(KVM_EXIT.MMIO, (dv) => dv.setUint32(O.mmioLen, 3, true));
  const split = decodeExit(piece.bytes, piece.view);
  assert.equal(split.reason === "mmio" && split.size, 3);
});

Deno.test("the other exits", () => {
  const d = (reason: number, f?: (dv: DataView, b: Uint8Array) => void) => {
    const p = page(reason, f);
    return decodeExit(p.bytes, p.view);
  };
  assert.deepEqual(d(KVM_EXIT.INTR), { reason: "intr" });
  assert.deepEqual(d(KVM_EXIT.HLT), { reason: "hlt" });
  assert.deepEqual(d(KVM_EXIT.SHUTDOWN), { reason: "shutdown" });
  assert.deepEqual(
    d(KVM_EXIT.INTERNAL_ERROR, (dv) => {
      dv.setUint32(O.internalSuberror, 1, true);
      dv.setUint32(O.internalNdata, 2, true);
      dv.setBigUint64(O.internalData, 0x11n, true);
      dv.setBigUint64(O.internalData + 8, 0x22n, true);
    }),
    { reason: "internal-error", suberror: 1, data: [0x11n, 0x22n] },
  );
  // ndata is capped at the 16 slots the structure has.
  const many = d(KVM_EXIT.INTERNAL_ERROR, (dv) => dv.setUint32(O.internalNdata, 1000, true));
  assert.equal(many.reason === "internal-error" && many.data.length, 16);
  assert.deepEqual(d(KVM_EXIT.FAIL_ENTRY, (dv) => dv.setBigUint64(O.failEntryReason, 7n, true)), {
    reason: "fail-entry",
    hardwareReason: 7n,
  });
  assert.deepEqual(d(KVM_EXIT.SYSTEM_EVENT, (dv) => dv.setUint32(O.systemEventType, 2, true)), {
    reason: "system-event",
    type: 2,
  });
  assert.deepEqual(d(99), { reason: "other", code: 99 });
});

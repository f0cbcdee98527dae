/**
 * vCPU exits as a discriminated union, decoded from the kvm_run page
 * (api.rst 5, "The kvm_run structure"). The decoder reads the fields a
 * reason defines and nothing else; data it reports (I/O data offsets, MMIO
 * lengths) is validated here, so the run loop can trust it.
 *
 * @module
 */
import { KVM_EXIT, KVM_EXIT_IO_OUT, KVM_RUN_STRUCT } from "./kvm_abi.ts";

const O = KVM_RUN_STRUCT.o;

/** A little-endian u64 field as a number, without a BigInt (the fields read here stay below 2^53). */
function u64(view: DataView, offset: number): number {
  return view.getUint32(offset, true) + view.getUint32(offset + 4, true) * 2 ** 32;
}

/** Port I/O: `count` accesses of `size` bytes; data at `dataOffset` in the run page. */
export interface IoExit {
  readonly reason: "io";
  readonly out: boolean;
  readonly port: number;
  readonly size: 1 | 2 | 4;
  readonly count: number;
  readonly dataOffset: number;
}

/** An access to a guest-physical address that is not RAM; data at kvm_run.mmio.data. */
export interface MmioExit {
  readonly reason: "mmio";
  readonly write: boolean;
  readonly address: number;
  /**
   * 1 to 8 bytes. Besides 1, 2, 4 and 8, KVM reports 3, 5, 6 or 7 for the
   * pieces of an access it split at a page boundary (an unaligned access
   * that ends on the next page).
   */
  readonly size: number;
}

/** The vCPU was interrupted (a kick, or a signal). */
export interface IntrExit {
  readonly reason: "intr";
}

/** HLT without an in-kernel LAPIC. */
export interface HltExit {
  readonly reason: "hlt";
}

/** A triple fault: the processor shut down (Intel SDM Vol. 3A, 6.15, interrupt 8). */
export interface ShutdownExit {
  readonly reason: "shutdown";
}

/** KVM could not go on (e.g. its instruction emulator failed). */
export interface InternalErrorExit {
  readonly reason: "internal-error";
  readonly suberror: number;
  readonly data: readonly bigint[];
}

/** VM entry failed. */
export interface FailEntryExit {
  readonly reason: "fail-entry";
  readonly hardwareReason: bigint;
}

/** A system event: shutdown, reset or crash. */
export interface SystemEventExit {
  readonly reason: "system-event";
  readonly type: number;
}

/** Any other exit reason. */
export interface OtherExit {
  readonly reason: "other";
  readonly code: number;
}

/** What KVM_RUN came back with. */
export type VcpuExit =
  | IoExit
  | MmioExit
  | IntrExit
  | HltExit
  | ShutdownExit
  | InternalErrorExit
  | FailEntryExit
  | SystemEventExit
  | OtherExit;

const INTR: IntrExit = Object.freeze({ reason: "intr" });
const HLT: HltExit = Object.freeze({ reason: "hlt" });
const SHUTDOWN: ShutdownExit = Object.freeze({ reason: "shutdown" });

/** Thrown when the run page holds something KVM never writes (a broken invariant). */
export class BadExitError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "BadExitError";
  }
}

/** Decodes the exit in a kvm_run page (`bytes`/`view` over the whole mapping). */
export function decodeExit(bytes: Uint8Array, view: DataView): VcpuExit {
  const code = view.getUint32(O.exitReason, true);
  switch (code) {
    case KVM_EXIT.IO: {
      const size = bytes[O.ioSize];
      const count = view.getUint32(O.ioCount, true);
      const dataOffset = u64(view, O.ioDataOffset);
      if (size !== 1 && size !== 2 && size !== 4) {
        throw new BadExitError(`KVM_EXIT_IO with size ${size}`);
      }
      if (dataOffset + size * count > bytes.length) {
        throw new BadExitError(
          `KVM_EXIT_IO data [${dataOffset}, +${size * count}) outside the run page`,
        );
      }
      return {
        reason: "io",
        out: bytes[O.ioDirection] === KVM_EXIT_IO_OUT,
        port: view.getUint16(O.ioPort, true),
        size,
        count,
        dataOffset,
      };
    }
    case KVM_EXIT.MMIO: {
      const size = view.getUint32(O.mmioLen, true);
      if (size < 1 || size > 8) throw new BadExitError(`KVM_EXIT_MMIO with length ${size}`);
      return {
        reason: "mmio",
        write: bytes[O.mmioIsWrite] !== 0,
        address: u64(view, O.mmioPhysAddr),
        size,
      };
    }
    case KVM_EXIT.INTR:
      return INTR;
    case KVM_EXIT.HLT:
      return HLT;
    case KVM_EXIT.SHUTDOWN:
      return SHUTDOWN;
    case KVM_EXIT.INTERNAL_ERROR: {
      const n = Math.min(view.getUint32(O.internalNdata, true), 16);
      return {
        reason: "internal-error",
        suberror: view.getUint32(O.internalSuberror, true),
        data: Array.from({ length: n }, (_, i) => view.getBigUint64(O.internalData + 8 * i, true)),
      };
    }
    case KVM_EXIT.FAIL_ENTRY:
      return { reason: "fail-entry", hardwareReason: view.getBigUint64(O.failEntryReason, true) };
    case KVM_EXIT.SYSTEM_EVENT:
      return { reason: "system-event", type: view.getUint32(O.systemEventType, true) };
    default:
      return { reason: "other", code };
  }
}

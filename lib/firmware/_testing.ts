/**
 * Fixtures shared by the firmware table tests (lib/firmware, lib/acpi): a
 * platform description from a config object, and readers for table bytes.
 *
 * @module
 */
import { configFromObject } from "../config.ts";
import { describePlatform, type FirmwarePlatform } from "./platform.ts";

/** The platform of a probe VM, with `obj` merged over the config's top level. */
export function platform(obj: Record<string, unknown> = {}): FirmwarePlatform {
  return describePlatform(configFromObject({ boot: { kind: "probe" }, ...obj }));
}

/** A DataView over exactly `b`. */
export function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** `n` bytes of `b` from `at`, one character per byte. */
export function ascii(b: Uint8Array, at: number, n: number): string {
  return String.fromCharCode(...b.subarray(at, at + n));
}

/** The bytes as lower-case hex, two digits each, no separators. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The little-endian u32 at `at`. */
export function u32(b: Uint8Array, at: number): number {
  return view(b).getUint32(at, true);
}

/** The little-endian u64 at `at`, as a number. */
export function u64(b: Uint8Array, at: number): number {
  return Number(view(b).getBigUint64(at, true));
}

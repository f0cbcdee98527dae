/**
 * Binary layouts as tables of fields: each layout lists its fields in order
 * with their sizes, from which the offsets and the total size follow; tests
 * compare the offsets with the specification's tables. Used by the ACPI
 * tables and the MP table.
 *
 * @module
 */

/** A field value: an integer (little-endian), raw bytes, or ASCII text; sizes must match. */
export type FieldValue = number | bigint | Uint8Array | string;

/** A binary layout: field offsets and sizes, and the total size. */
export interface StructLayout<N extends string> {
  /** Fields in order, with their sizes in bytes. */
  readonly fields: readonly (readonly [N, number])[];
  /** Offset of each field. */
  readonly offsets: Readonly<Record<N, number>>;
  /** Size of each field. */
  readonly sizes: Readonly<Record<N, number>>;
  /** Total size in bytes. */
  readonly size: number;
}

/** Builds a layout from `[name, size]` pairs, in order. */
export function defineStruct<const F extends readonly (readonly [string, number])[]>(
  fields: F,
): StructLayout<F[number][0]> {
  type N = F[number][0];
  const offsets = {} as Record<N, number>;
  const sizes = {} as Record<N, number>;
  let at = 0;
  for (const [name, size] of fields) {
    if (name in offsets) throw new Error(`field ${name} defined twice`);
    offsets[name as N] = at;
    sizes[name as N] = size;
    at += size;
  }
  return Object.freeze({
    fields: fields as unknown as readonly (readonly [N, number])[],
    offsets: Object.freeze(offsets),
    sizes: Object.freeze(sizes),
    size: at,
  });
}

/** Writes one field value into `out` at `offset`, checking that it fits `size`. */
export function writeField(
  out: Uint8Array,
  offset: number,
  size: number,
  value: FieldValue,
  name = "field",
): void {
  if (typeof value === "string") {
    if (value.length !== size || [...value].some((c) => c.charCodeAt(0) > 0x7f)) {
      throw new Error(`${name}: ${JSON.stringify(value)} is not ${size} ASCII characters`);
    }
    for (let i = 0; i < size; i++) out[offset + i] = value.charCodeAt(i);
  } else if (value instanceof Uint8Array) {
    if (value.length !== size) throw new Error(`${name}: ${value.length} bytes given for ${size}`);
    out.set(value, offset);
  } else {
    if (typeof value === "number" && !Number.isSafeInteger(value)) {
      throw new RangeError(`${name}: ${value} is not an integer`);
    }
    out.set(leBytes(value, size, `${name}: `), offset);
  }
}

/** Little-endian bytes of a non-negative integer; a value that does not fit throws, its message led by `what`. */
export function leBytes(value: number | bigint, size: number, what = ""): Uint8Array {
  let v = BigInt(value);
  if (v < 0n || v >= 1n << BigInt(size * 8)) {
    throw new RangeError(`${what}${value} does not fit in ${size} byte(s)`);
  }
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** Encodes `values` in `layout`; fields not given are zero. */
export function encodeStruct<N extends string>(
  layout: StructLayout<N>,
  values: Partial<Record<N, FieldValue>>,
): Uint8Array {
  const out = new Uint8Array(layout.size);
  for (const [name, size] of layout.fields) {
    const v = values[name];
    if (v !== undefined) writeField(out, layout.offsets[name], size, v, name);
  }
  return out;
}

/** `text` padded with `pad` (default space) to `length` characters; throws when longer. */
export function padAscii(text: string, length: number, pad = " "): string {
  if (text.length > length) throw new Error(`${JSON.stringify(text)} is longer than ${length}`);
  return text.padEnd(length, pad);
}

/** Concatenates byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The byte that makes the sum of `bytes` (that byte counted as 0) zero mod 256. */
export function checksum(bytes: Uint8Array): number {
  return (0x100 - byteSum(bytes)) & 0xff;
}

/** The sum of `bytes` mod 256 (0 for a correctly checksummed structure). */
export function byteSum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return sum;
}

/**
 * A typed AML encoder (ACPI 6.5, chapter 20 "ACPI Machine Language
 * Specification") and ACPI resource descriptors (ACPI 6.5, 6.4 "Resource
 * Data Types for ACPI").
 *
 * Every AML construct is a value with a `toAml()` method that returns its
 * bytes, exactly as iasl would emit them for the equivalent ASL: integers
 * take their smallest encoding (ZeroOp, OneOp, OnesOp, Byte/Word/DWord/
 * QWord prefixes), package lengths their shortest PkgLength form, name
 * paths their NameSeg / DualNamePath / MultiNamePath form. Resource
 * descriptors serialize to raw descriptor bytes; a
 * {@linkcode ResourceTemplate} wraps them into a Buffer with the end tag.
 *
 * Plain JavaScript numbers and bigints are accepted wherever a TermArg is,
 * and are encoded as integers. Names are never plain strings: use
 * {@linkcode NameString} (`ns("PIRA")`) for a reference and
 * {@linkcode AmlString} (`str("ACPI0007")`) for a string.
 *
 * @module
 */
import { checksum, concatBytes, leBytes } from "./_struct.ts";

/** Anything that serializes itself to AML (or, for resource descriptors, to descriptor bytes). */
export interface AmlObject {
  /** The encoded bytes. */
  toAml(): Uint8Array;
}

/** A TermArg: an AML object, or a number/bigint taken as an integer constant. */
export type TermArg = AmlObject | number | bigint;

// ---------------------------------------------------------------------------
// Encoding primitives

/**
 * Encodes `value` in the PkgLength format (ACPI 6.5, 20.2.4) without adding
 * the length of the encoding itself: the form used for field element widths
 * (NamedField, ReservedField), where the value is a count of bits.
 * Bits 7-6 of the lead byte give the count of following bytes; a one-byte
 * form holds 6 bits, the others hold 4 bits in the lead byte and 8 in each
 * following byte (at most 28 bits).
 */
export function encodeRawPkgLength(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0 || value >= 2 ** 28) {
    throw new RangeError(`PkgLength ${value} out of range`);
  }
  if (value < 0x40) return Uint8Array.of(value);
  const follow = value < 2 ** 12 ? 1 : value < 2 ** 20 ? 2 : 3;
  const out = new Uint8Array(follow + 1);
  out[0] = (follow << 6) | (value & 0x0f);
  for (let i = 1; i <= follow; i++) out[i] = (value >>> (4 + 8 * (i - 1))) & 0xff;
  return out;
}

/**
 * The PkgLength of a package whose contents (after the PkgLength) are
 * `contentLength` bytes. The encoded length counts the PkgLength bytes
 * themselves (ACPI 6.5, 20.2.4), so the shortest form that fits is chosen.
 */
export function encodePkgLength(contentLength: number): Uint8Array {
  for (let n = 1; n <= 4; n++) {
    const total = contentLength + n;
    const fits = n === 1 ? total < 0x40 : total < 2 ** (4 + 8 * (n - 1));
    if (fits) return encodeRawPkgLength(total);
  }
  throw new RangeError(`package of ${contentLength} bytes is too long for a PkgLength`);
}

/** `opcode PkgLength contents`. */
function pkg(opcode: readonly number[], contents: readonly Uint8Array[]): Uint8Array {
  const body = concatBytes(contents);
  return concatBytes([Uint8Array.from(opcode), encodePkgLength(body.length), body]);
}

/** Wraps numbers and bigints as {@linkcode AmlInteger}s. */
export function toTerm(v: TermArg): AmlObject {
  return typeof v === "number" || typeof v === "bigint" ? new AmlInteger(v) : v;
}

/** Encodes a list of terms back to back. */
export function encodeTerms(terms: readonly TermArg[]): Uint8Array {
  return concatBytes(terms.map((t) => toTerm(t).toAml()));
}

// ---------------------------------------------------------------------------
// Names (ACPI 6.5, 20.2.2 "Name Objects Encoding")

const ROOT_CHAR = 0x5c; // '\'
const PARENT_PREFIX = 0x5e; // '^'
const DUAL_NAME_PREFIX = 0x2e;
const MULTI_NAME_PREFIX = 0x2f;
const NULL_NAME = 0x00;

/**
 * A 4-character NameSeg: a lead character A-Z or `_`, then A-Z, 0-9 or `_`;
 * shorter names are padded with `_` (as iasl does: `ISA` is `ISA_`).
 */
export function encodeNameSeg(seg: string): Uint8Array {
  if (!/^[A-Z_][A-Z0-9_]{0,3}$/.test(seg)) {
    throw new Error(`invalid ACPI NameSeg ${JSON.stringify(seg)}`);
  }
  const padded = seg.padEnd(4, "_");
  return Uint8Array.from(padded, (c) => c.charCodeAt(0));
}

/**
 * A name path as written in ASL: an optional root `\` or parent prefixes
 * `^`, then NameSegs separated by dots (`\_SB.PCI0.ISA`, `^^LNKA`, `PIRA`,
 * `\`). Encoded as a NameSeg, DualNamePath, MultiNamePath or NullName.
 */
export class NameString implements AmlObject {
  /** The path as given. */
  readonly path: string;
  /** Root prefix present. */
  readonly root: boolean;
  /** Number of `^` prefixes. */
  readonly parents: number;
  /** The NameSegs, unpadded. */
  readonly segments: readonly string[];

  /** Parses `path`; throws on a malformed path. */
  constructor(path: string) {
    this.path = path;
    let rest = path;
    this.root = rest.startsWith("\\");
    if (this.root) rest = rest.slice(1);
    let parents = 0;
    while (!this.root && rest.startsWith("^")) {
      parents++;
      rest = rest.slice(1);
    }
    this.parents = parents;
    this.segments = rest === "" ? [] : rest.split(".");
    for (const s of this.segments) encodeNameSeg(s);
    if (this.segments.length === 0 && !this.root && parents === 0) {
      throw new Error("empty ACPI name path");
    }
    if (this.segments.length > 255) throw new Error(`name path ${path} has too many segments`);
  }

  /** The encoded NameString. */
  toAml(): Uint8Array {
    const prefix: number[] = [];
    if (this.root) prefix.push(ROOT_CHAR);
    for (let i = 0; i < this.parents; i++) prefix.push(PARENT_PREFIX);
    const segs = this.segments.map(encodeNameSeg);
    let path: Uint8Array;
    if (segs.length === 0) path = Uint8Array.of(NULL_NAME);
    else if (segs.length === 1) path = segs[0];
    else if (segs.length === 2) path = concatBytes([Uint8Array.of(DUAL_NAME_PREFIX), ...segs]);
    else path = concatBytes([Uint8Array.of(MULTI_NAME_PREFIX, segs.length), ...segs]);
    return concatBytes([Uint8Array.from(prefix), path]);
  }
}

/** Shorthand for `new NameString(path)`. */
export function ns(path: string): NameString {
  return new NameString(path);
}

/** The NullName as a Target: the result is discarded. */
export const NULL_TARGET: AmlObject = Object.freeze({ toAml: () => Uint8Array.of(NULL_NAME) });

// ---------------------------------------------------------------------------
// Data objects (ACPI 6.5, 20.2.3 "Data Objects Encoding")

const ZERO_OP = 0x00;
const ONE_OP = 0x01;
const ONES_OP = 0xff;
const BYTE_PREFIX = 0x0a;
const WORD_PREFIX = 0x0b;
const DWORD_PREFIX = 0x0c;
const STRING_PREFIX = 0x0d;
const QWORD_PREFIX = 0x0e;
const BUFFER_OP = 0x11;
const PACKAGE_OP = 0x12;
const VAR_PACKAGE_OP = 0x13;

/** The largest AML integer (64-bit tables, DSDT revision 2). */
export const ONES = (1n << 64n) - 1n;

/**
 * An integer constant in its smallest encoding: ZeroOp, OneOp, OnesOp
 * (all 64 bits set), or a Byte/Word/DWord/QWord prefix.
 */
export class AmlInteger implements AmlObject {
  /** The value, 0 to 2^64-1. */
  readonly value: bigint;

  /** Throws unless 0 <= value < 2^64. */
  constructor(value: number | bigint) {
    if (typeof value === "number" && !Number.isSafeInteger(value)) {
      throw new RangeError(`AML integer ${value} is not a safe integer`);
    }
    const v = BigInt(value);
    if (v < 0n || v > ONES) throw new RangeError(`AML integer ${value} out of range`);
    this.value = v;
  }

  /** The encoded integer. */
  toAml(): Uint8Array {
    const v = this.value;
    if (v === 0n) return Uint8Array.of(ZERO_OP);
    if (v === 1n) return Uint8Array.of(ONE_OP);
    if (v === ONES) return Uint8Array.of(ONES_OP);
    if (v <= 0xffn) return Uint8Array.of(BYTE_PREFIX, Number(v));
    if (v <= 0xffffn) return concatBytes([Uint8Array.of(WORD_PREFIX), leBytes(v, 2)]);
    if (v <= 0xffffffffn) return concatBytes([Uint8Array.of(DWORD_PREFIX), leBytes(v, 4)]);
    return concatBytes([Uint8Array.of(QWORD_PREFIX), leBytes(v, 8)]);
  }
}

/** An ASCII string constant (`String` object): `0x0D chars 0x00`. */
export class AmlString implements AmlObject {
  /** The text (ASCII 0x01-0x7F). */
  readonly value: string;

  /** Throws on characters outside 0x01-0x7F. */
  constructor(value: string) {
    if ([...value].some((c) => c.charCodeAt(0) < 0x01 || c.charCodeAt(0) > 0x7f)) {
      throw new Error(`AML string ${JSON.stringify(value)} is not ASCII`);
    }
    this.value = value;
  }

  /** The encoded string. */
  toAml(): Uint8Array {
    return concatBytes([
      Uint8Array.of(STRING_PREFIX),
      Uint8Array.from(this.value, (c) => c.charCodeAt(0)),
      Uint8Array.of(0),
    ]);
  }
}

/** Shorthand for `new AmlString(s)`. */
export function str(s: string): AmlString {
  return new AmlString(s);
}

/** A Buffer with initial contents: `BufferOp PkgLength BufferSize bytes`. */
export class AmlBuffer implements AmlObject {
  /** The initial contents; the buffer size is their length. */
  readonly data: Uint8Array;

  /** Copies `data`. */
  constructor(data: Uint8Array | readonly number[]) {
    this.data = Uint8Array.from(data);
  }

  /** The encoded buffer. */
  toAml(): Uint8Array {
    return pkg([BUFFER_OP], [new AmlInteger(this.data.length).toAml(), this.data]);
  }
}

/** An element of a package: a data object, a name reference or a nested package. */
export type PackageElement = TermArg;

/**
 * A Package: `PackageOp PkgLength NumElements elements` (up to 255
 * elements), else a VarPackage whose count is an integer TermArg.
 */
export class Package implements AmlObject {
  /** The elements. */
  readonly elements: readonly PackageElement[];

  /** Keeps `elements`. */
  constructor(elements: readonly PackageElement[]) {
    this.elements = elements;
  }

  /** The encoded package. */
  toAml(): Uint8Array {
    const n = this.elements.length;
    const body = encodeTerms(this.elements);
    return n <= 255
      ? pkg([PACKAGE_OP], [Uint8Array.of(n), body])
      : pkg([VAR_PACKAGE_OP], [new AmlInteger(n).toAml(), body]);
  }
}

/**
 * An EISA ID (`EisaId ("PNP0A03")`): three letters, five bits each, and
 * four hex digits, packed big-endian into a DWord that is then stored
 * little-endian (ACPI 6.5, 19.6.35). Encodes as an integer.
 */
export class EisaId implements AmlObject {
  /** The ID text, like `PNP0A03`. */
  readonly id: string;
  /** The 32-bit value as AML sees it. */
  readonly value: number;

  /** Throws unless `id` is three uppercase letters and four hex digits. */
  constructor(id: string) {
    if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new Error(`invalid EISA ID ${JSON.stringify(id)}`);
    this.id = id;
    const c = (i: number) => id.charCodeAt(i) - 0x40;
    const big = ((c(0) << 26) | (c(1) << 21) | (c(2) << 16) | parseInt(id.slice(3), 16)) >>> 0;
    // Byte-swap: the big-endian compressed ID is read as a little-endian DWord.
    this.value = (((big & 0xff) << 24) | ((big & 0xff00) << 8) | ((big >>> 8) & 0xff00) |
      (big >>> 24)) >>> 0;
  }

  /** The encoded integer. */
  toAml(): Uint8Array {
    return new AmlInteger(this.value).toAml();
  }
}

// ---------------------------------------------------------------------------
// Arguments and locals (ACPI 6.5, 20.2.6.1 / 20.2.6.2)

/** `Local0`-`Local7` (opcodes 0x60-0x67). */
export class Local implements AmlObject {
  /** The local's number. */
  readonly n: number;
  /** Throws unless 0 <= n <= 7. */
  constructor(n: number) {
    if (!Number.isInteger(n) || n < 0 || n > 7) throw new RangeError(`Local${n} does not exist`);
    this.n = n;
  }
  /** The opcode. */
  toAml(): Uint8Array {
    return Uint8Array.of(0x60 + this.n);
  }
}

/** `Arg0`-`Arg6` (opcodes 0x68-0x6E). */
export class Arg implements AmlObject {
  /** The argument's number. */
  readonly n: number;
  /** Throws unless 0 <= n <= 6. */
  constructor(n: number) {
    if (!Number.isInteger(n) || n < 0 || n > 6) throw new RangeError(`Arg${n} does not exist`);
    this.n = n;
  }
  /** The opcode. */
  toAml(): Uint8Array {
    return Uint8Array.of(0x68 + this.n);
  }
}

/** `Local0`..`Local7`. */
export const LOCAL: readonly Local[] = Object.freeze(
  Array.from({ length: 8 }, (_, i) => new Local(i)),
);
/** `Arg0`..`Arg6`. */
export const ARG: readonly Arg[] = Object.freeze(Array.from({ length: 7 }, (_, i) => new Arg(i)));

/** The Debug object (`DebugOp`, 0x5B 0x31). */
export const DEBUG: AmlObject = Object.freeze({ toAml: () => Uint8Array.of(0x5b, 0x31) });

// ---------------------------------------------------------------------------
// Named objects and namespace modifiers (ACPI 6.5, 20.2.5.1 / 20.2.5.2)

/** `Name (name, object)`: `NameOp NameString DataRefObject`. */
export class Name implements AmlObject {
  /** The name being defined. */
  readonly name: NameString;
  /** Its value. */
  readonly value: AmlObject;

  /** Defines `name` as `value`. */
  constructor(name: string, value: TermArg) {
    this.name = ns(name);
    this.value = toTerm(value);
  }

  /** The encoded definition. */
  toAml(): Uint8Array {
    return concatBytes([Uint8Array.of(0x08), this.name.toAml(), this.value.toAml()]);
  }
}

/** `Scope (name) { terms }`: `ScopeOp PkgLength NameString TermList`. */
export class Scope implements AmlObject {
  /** The scope's path. */
  readonly name: NameString;
  /** The terms inside. */
  readonly terms: readonly TermArg[];

  /** Opens `name` with `terms` inside. */
  constructor(name: string, terms: readonly TermArg[]) {
    this.name = ns(name);
    this.terms = terms;
  }

  /** The encoded scope. */
  toAml(): Uint8Array {
    return pkg([0x10], [this.name.toAml(), encodeTerms(this.terms)]);
  }
}

/** `Device (name) { terms }`: `DeviceOp PkgLength NameString TermList`. */
export class Device implements AmlObject {
  /** The device's path. */
  readonly name: NameString;
  /** The objects inside. */
  readonly terms: readonly TermArg[];

  /** Declares device `name` with `terms` inside. */
  constructor(name: string, terms: readonly TermArg[]) {
    this.name = ns(name);
    this.terms = terms;
  }

  /** The encoded device. */
  toAml(): Uint8Array {
    return pkg([0x5b, 0x82], [this.name.toAml(), encodeTerms(this.terms)]);
  }
}

/** Options of a {@linkcode Method}. */
export interface MethodOptions {
  /** Serialized (MethodFlags bit 3); default false (NotSerialized). */
  readonly serialized?: boolean;
  /** SyncLevel, 0-15 (MethodFlags bits 7-4); default 0. */
  readonly syncLevel?: number;
}

/**
 * `Method (name, args, serialized) { terms }`:
 * `MethodOp PkgLength NameString MethodFlags TermList`, MethodFlags =
 * ArgCount (bits 2-0) | SerializeFlag (bit 3) | SyncLevel (bits 7-4).
 */
export class Method implements AmlObject {
  /** The method's path. */
  readonly name: NameString;
  /** Number of arguments, 0-7. */
  readonly argCount: number;
  /** Whether the method is serialized. */
  readonly serialized: boolean;
  /** Its sync level. */
  readonly syncLevel: number;
  /** The body. */
  readonly terms: readonly TermArg[];

  /** Declares method `name`. */
  constructor(
    name: string,
    argCount: number,
    terms: readonly TermArg[],
    options: MethodOptions = {},
  ) {
    if (!Number.isInteger(argCount) || argCount < 0 || argCount > 7) {
      throw new RangeError(`method argument count ${argCount} out of range 0-7`);
    }
    const syncLevel = options.syncLevel ?? 0;
    if (!Number.isInteger(syncLevel) || syncLevel < 0 || syncLevel > 15) {
      throw new RangeError(`method sync level ${syncLevel} out of range 0-15`);
    }
    this.name = ns(name);
    this.argCount = argCount;
    this.serialized = options.serialized ?? false;
    this.syncLevel = syncLevel;
    this.terms = terms;
  }

  /** The encoded method. */
  toAml(): Uint8Array {
    const flags = this.argCount | (this.serialized ? 0x08 : 0) | (this.syncLevel << 4);
    return pkg([0x14], [this.name.toAml(), Uint8Array.of(flags), encodeTerms(this.terms)]);
  }
}

// ---------------------------------------------------------------------------
// Operation regions and fields (ACPI 6.5, 19.6.100 / 19.6.48, 20.2.5.2)

/** Region spaces (ACPI 6.5, Table 5.1 / 19.6.100). */
export const REGION_SPACE = Object.freeze({
  SystemMemory: 0x00,
  SystemIO: 0x01,
  PCI_Config: 0x02,
  EmbeddedControl: 0x03,
  SMBus: 0x04,
  SystemCMOS: 0x05,
  PciBarTarget: 0x06,
  IPMI: 0x07,
  GeneralPurposeIO: 0x08,
  GenericSerialBus: 0x09,
  PCC: 0x0a,
});

/** A region space name. */
export type RegionSpace = keyof typeof REGION_SPACE;

/**
 * `OperationRegion (name, space, offset, length)`:
 * `OpRegionOp NameString RegionSpace RegionOffset RegionLen`.
 */
export class OperationRegion implements AmlObject {
  /** The region's path. */
  readonly name: NameString;
  /** Its address space. */
  readonly space: RegionSpace;
  /** Start within the space. */
  readonly offset: AmlObject;
  /** Length in bytes. */
  readonly length: AmlObject;

  /** Declares region `name`. */
  constructor(name: string, space: RegionSpace, offset: TermArg, length: TermArg) {
    this.name = ns(name);
    this.space = space;
    this.offset = toTerm(offset);
    this.length = toTerm(length);
  }

  /** The encoded region. */
  toAml(): Uint8Array {
    return concatBytes([
      Uint8Array.of(0x5b, 0x80),
      this.name.toAml(),
      Uint8Array.of(REGION_SPACE[this.space]),
      this.offset.toAml(),
      this.length.toAml(),
    ]);
  }
}

/** Field access types (FieldFlags bits 3-0). */
export const FIELD_ACCESS = Object.freeze({
  AnyAcc: 0,
  ByteAcc: 1,
  WordAcc: 2,
  DWordAcc: 3,
  QWordAcc: 4,
  BufferAcc: 5,
});
/** Field update rules (FieldFlags bits 6-5). */
export const FIELD_UPDATE = Object.freeze({ Preserve: 0, WriteAsOnes: 1, WriteAsZeros: 2 });

/** Field flags: access type, lock rule, update rule. */
export interface FieldFlags {
  readonly access: keyof typeof FIELD_ACCESS;
  /** Lock (true) or NoLock (false). */
  readonly lock: boolean;
  readonly update: keyof typeof FIELD_UPDATE;
}

/**
 * One entry of a field list: a named field of `bits` bits, an `Offset (n)`
 * (a byte offset from the region start, compiled as a reserved field), or
 * an unnamed reserved field of `reserved` bits.
 */
export type FieldElement =
  | { readonly name: string; readonly bits: number }
  | { readonly offset: number }
  | { readonly reserved: number };

/**
 * `Field (region, access, lock, update) { elements }`:
 * `FieldOp PkgLength NameString FieldFlags FieldList`.
 */
export class Field implements AmlObject {
  /** The region the fields live in. */
  readonly region: NameString;
  /** Access, lock and update rules. */
  readonly flags: FieldFlags;
  /** The field list. */
  readonly elements: readonly FieldElement[];

  /** Declares fields over `region`. */
  constructor(region: string, flags: FieldFlags, elements: readonly FieldElement[]) {
    this.region = ns(region);
    this.flags = flags;
    this.elements = elements;
  }

  /** The encoded field list. */
  toAml(): Uint8Array {
    const f = this.flags;
    const flags = FIELD_ACCESS[f.access] | (f.lock ? 0x10 : 0) | (FIELD_UPDATE[f.update] << 5);
    const list: Uint8Array[] = [];
    let bit = 0;
    for (const e of this.elements) {
      if ("name" in e) {
        // NamedField := NameSeg PkgLength (the width in bits).
        list.push(encodeNameSeg(e.name), encodeRawPkgLength(e.bits));
        bit += e.bits;
      } else {
        const bits = "offset" in e ? e.offset * 8 - bit : e.reserved;
        if (bits < 0) {
          throw new Error(
            `field Offset (0x${("offset" in e ? e.offset : 0).toString(16)}) moves backwards`,
          );
        }
        // Offset (n) with nothing to skip emits nothing, as iasl does.
        if (bits === 0) continue;
        // ReservedField := 0x00 PkgLength.
        list.push(Uint8Array.of(0x00), encodeRawPkgLength(bits));
        bit += bits;
      }
    }
    return pkg([0x5b, 0x81], [this.region.toAml(), Uint8Array.of(flags), ...list]);
  }
}

/** The Create*Field operators (ACPI 6.5, 20.2.5.2): `op SourceBuff Index NameString`. */
export const CREATE_FIELD_OPS = Object.freeze({
  CreateBitField: 0x8d,
  CreateByteField: 0x8c,
  CreateWordField: 0x8b,
  CreateDWordField: 0x8a,
  CreateQWordField: 0x8f,
});

/** `CreateWordField (buffer, index, name)` and its Bit/Byte/DWord/QWord siblings. */
export class CreateField implements AmlObject {
  /** Which operator. */
  readonly op: keyof typeof CREATE_FIELD_OPS;
  /** The source buffer. */
  readonly buffer: AmlObject;
  /** Byte index (bit index for CreateBitField). */
  readonly index: AmlObject;
  /** The field's name. */
  readonly name: NameString;

  /** Declares field `name` over `buffer`. */
  constructor(op: keyof typeof CREATE_FIELD_OPS, buffer: TermArg, index: TermArg, name: string) {
    this.op = op;
    this.buffer = toTerm(buffer);
    this.index = toTerm(index);
    this.name = ns(name);
  }

  /** The encoded operator. */
  toAml(): Uint8Array {
    return concatBytes([
      Uint8Array.of(CREATE_FIELD_OPS[this.op]),
      this.buffer.toAml(),
      this.index.toAml(),
      this.name.toAml(),
    ]);
  }
}

// ---------------------------------------------------------------------------
// Statements and expressions (ACPI 6.5, 20.2.5.3 / 20.2.5.4)

/**
 * The expression and statement opcodes that are a fixed opcode followed by
 * operands: `operands` TermArgs and, when `target`, a Target (a SuperName
 * or NullName) that receives the result.
 */
export const OPCODES = Object.freeze({
  // Statements
  Return: { op: [0xa4], operands: 1, target: false },
  Notify: { op: [0x86], operands: 2, target: false },
  Break: { op: [0xa5], operands: 0, target: false },
  Noop: { op: [0xa3], operands: 0, target: false },
  Sleep: { op: [0x5b, 0x22], operands: 1, target: false },
  Stall: { op: [0x5b, 0x21], operands: 1, target: false },
  // Store (source, destination): the destination is the second operand.
  Store: { op: [0x70], operands: 2, target: false },
  // Arithmetic with a target
  Add: { op: [0x72], operands: 2, target: true },
  Subtract: { op: [0x74], operands: 2, target: true },
  Multiply: { op: [0x77], operands: 2, target: true },
  ShiftLeft: { op: [0x79], operands: 2, target: true },
  ShiftRight: { op: [0x7a], operands: 2, target: true },
  And: { op: [0x7b], operands: 2, target: true },
  NAnd: { op: [0x7c], operands: 2, target: true },
  Or: { op: [0x7d], operands: 2, target: true },
  NOr: { op: [0x7e], operands: 2, target: true },
  XOr: { op: [0x7f], operands: 2, target: true },
  Mod: { op: [0x85], operands: 2, target: true },
  Not: { op: [0x80], operands: 1, target: true },
  FindSetLeftBit: { op: [0x81], operands: 1, target: true },
  FindSetRightBit: { op: [0x82], operands: 1, target: true },
  Index: { op: [0x88], operands: 2, target: true },
  // Increment/Decrement take a SuperName and return the new value.
  Increment: { op: [0x75], operands: 1, target: false },
  Decrement: { op: [0x76], operands: 1, target: false },
  DerefOf: { op: [0x83], operands: 1, target: false },
  SizeOf: { op: [0x87], operands: 1, target: false },
  // Logical
  LAnd: { op: [0x90], operands: 2, target: false },
  LOr: { op: [0x91], operands: 2, target: false },
  LNot: { op: [0x92], operands: 1, target: false },
  LEqual: { op: [0x93], operands: 2, target: false },
  LGreater: { op: [0x94], operands: 2, target: false },
  LLess: { op: [0x95], operands: 2, target: false },
  // The negated comparisons are LNot applied to the opposite test.
  LNotEqual: { op: [0x92, 0x93], operands: 2, target: false },
  LLessEqual: { op: [0x92, 0x94], operands: 2, target: false },
  LGreaterEqual: { op: [0x92, 0x95], operands: 2, target: false },
});

/** The name of an operator in {@linkcode OPCODES}. */
export type OpName = keyof typeof OPCODES;

/** An operator application: `opcode operands [target]`. */
export class Op implements AmlObject {
  /** The operator. */
  readonly op: OpName;
  /** Its operands. */
  readonly operands: readonly AmlObject[];
  /** The result's destination, for operators that take one (NullName when absent). */
  readonly target?: AmlObject;

  /** Applies `op`; throws on the wrong operand count. */
  constructor(op: OpName, operands: readonly TermArg[], target?: AmlObject) {
    const d = OPCODES[op];
    if (operands.length !== d.operands) {
      throw new Error(`${op} takes ${d.operands} operand(s), got ${operands.length}`);
    }
    if (!d.target && target !== undefined) throw new Error(`${op} takes no target`);
    this.op = op;
    this.operands = operands.map(toTerm);
    this.target = d.target ? target ?? NULL_TARGET : undefined;
  }

  /** The encoded operator. */
  toAml(): Uint8Array {
    return concatBytes([
      Uint8Array.from(OPCODES[this.op].op),
      ...this.operands.map((o) => o.toAml()),
      ...(this.target ? [this.target.toAml()] : []),
    ]);
  }
}

/** `Return (value)`. */
export function Return(value: TermArg): Op {
  return new Op("Return", [value]);
}
/** `Store (source, destination)`. */
export function Store(source: TermArg, destination: AmlObject): Op {
  return new Op("Store", [source, destination]);
}
/** `Notify (object, value)`. */
export function Notify(object: AmlObject, value: TermArg): Op {
  return new Op("Notify", [object, value]);
}
/** `Add (a, b, target)`. */
export function Add(a: TermArg, b: TermArg, target?: AmlObject): Op {
  return new Op("Add", [a, b], target);
}
/** `Subtract (a, b, target)`. */
export function Subtract(a: TermArg, b: TermArg, target?: AmlObject): Op {
  return new Op("Subtract", [a, b], target);
}
/** `And (a, b, target)`. */
export function And(a: TermArg, b: TermArg, target?: AmlObject): Op {
  return new Op("And", [a, b], target);
}
/** `Or (a, b, target)`. */
export function Or(a: TermArg, b: TermArg, target?: AmlObject): Op {
  return new Op("Or", [a, b], target);
}
/** `ShiftLeft (a, count, target)`. */
export function ShiftLeft(a: TermArg, count: TermArg, target?: AmlObject): Op {
  return new Op("ShiftLeft", [a, count], target);
}
/** `ShiftRight (a, count, target)`. */
export function ShiftRight(a: TermArg, count: TermArg, target?: AmlObject): Op {
  return new Op("ShiftRight", [a, count], target);
}
/** `FindSetRightBit (a, target)`: 1-based index of the lowest set bit, 0 if none. */
export function FindSetRightBit(a: TermArg, target?: AmlObject): Op {
  return new Op("FindSetRightBit", [a], target);
}
/** `Increment (name)`. */
export function Increment(name: AmlObject): Op {
  return new Op("Increment", [name]);
}
/** `Decrement (name)`. */
export function Decrement(name: AmlObject): Op {
  return new Op("Decrement", [name]);
}
/** `LEqual (a, b)`. */
export function LEqual(a: TermArg, b: TermArg): Op {
  return new Op("LEqual", [a, b]);
}
/** `LGreaterEqual (a, b)`. */
export function LGreaterEqual(a: TermArg, b: TermArg): Op {
  return new Op("LGreaterEqual", [a, b]);
}
/** `LLess (a, b)`. */
export function LLess(a: TermArg, b: TermArg): Op {
  return new Op("LLess", [a, b]);
}
/** `LNot (a)`. */
export function LNot(a: TermArg): Op {
  return new Op("LNot", [a]);
}

/**
 * `If (predicate) { then } [Else { otherwise }]`: `IfOp PkgLength Predicate
 * TermList`, followed by `ElseOp PkgLength TermList` when `otherwise` is given.
 */
export class If implements AmlObject {
  /** The condition. */
  readonly predicate: AmlObject;
  /** Terms run when it is non-zero. */
  readonly then: readonly TermArg[];
  /** Terms run otherwise (no Else when undefined). */
  readonly otherwise?: readonly TermArg[];

  /** Builds the conditional. */
  constructor(predicate: TermArg, then: readonly TermArg[], otherwise?: readonly TermArg[]) {
    this.predicate = toTerm(predicate);
    this.then = then;
    this.otherwise = otherwise;
  }

  /** The encoded If (and Else). */
  toAml(): Uint8Array {
    const ifPart = pkg([0xa0], [this.predicate.toAml(), encodeTerms(this.then)]);
    if (this.otherwise === undefined) return ifPart;
    return concatBytes([ifPart, pkg([0xa1], [encodeTerms(this.otherwise)])]);
  }
}

/** `While (predicate) { terms }`: `WhileOp PkgLength Predicate TermList`. */
export class While implements AmlObject {
  /** The loop condition. */
  readonly predicate: AmlObject;
  /** The body. */
  readonly terms: readonly TermArg[];

  /** Builds the loop. */
  constructor(predicate: TermArg, terms: readonly TermArg[]) {
    this.predicate = toTerm(predicate);
    this.terms = terms;
  }

  /** The encoded loop. */
  toAml(): Uint8Array {
    return pkg([0xa2], [this.predicate.toAml(), encodeTerms(this.terms)]);
  }
}

// ---------------------------------------------------------------------------
// Resource descriptors (ACPI 6.5, 6.4)

/** A resource descriptor; `toAml()` gives its raw descriptor bytes. */
export interface ResourceDescriptor extends AmlObject {}

const SMALL_IRQ = 0x04; // small item names (6.4.2)
const SMALL_IO = 0x08;
const SMALL_FIXED_IO = 0x09;
const SMALL_END = 0x0f;
const LARGE_MEMORY32_FIXED = 0x86; // large item tags (6.4.3), bit 7 set
const LARGE_DWORD_ADDRESS = 0x87;
const LARGE_WORD_ADDRESS = 0x88;
const LARGE_EXTENDED_IRQ = 0x89;
const LARGE_QWORD_ADDRESS = 0x8a;

/** A small resource item: tag byte = name << 3 | length (6.4.2). */
function smallItem(name: number, body: readonly Uint8Array[]): Uint8Array {
  const b = concatBytes(body);
  if (b.length > 7) throw new Error("small resource item too long");
  return concatBytes([Uint8Array.of((name << 3) | b.length), b]);
}

/** A large resource item: tag byte, 16-bit length, body (6.4.3). */
function largeItem(tag: number, body: readonly Uint8Array[]): Uint8Array {
  const b = concatBytes(body);
  return concatBytes([Uint8Array.of(tag), leBytes(b.length, 2), b]);
}

function checkRange(what: string, v: number | bigint, max: number | bigint): void {
  if (typeof v === "number" && !Number.isSafeInteger(v)) {
    throw new RangeError(`${what} ${v} is not an integer`);
  }
  if (BigInt(v) < 0n || BigInt(v) > BigInt(max)) throw new RangeError(`${what} ${v} out of range`);
}

/** `IO (Decode16|Decode10, min, max, alignment, length)` (6.4.2.5). */
export class IoResource implements ResourceDescriptor {
  /** Construct `IO (Decode16, min, max, alignment, length)`. */
  constructor(
    readonly min: number,
    readonly max: number,
    readonly alignment: number,
    readonly length: number,
    readonly decode16 = true,
  ) {
    checkRange("IO minimum", min, 0xffff);
    checkRange("IO maximum", max, 0xffff);
    checkRange("IO alignment", alignment, 0xff);
    checkRange("IO length", length, 0xff);
  }
  /** The 8-byte descriptor. */
  toAml(): Uint8Array {
    return smallItem(SMALL_IO, [
      Uint8Array.of(this.decode16 ? 1 : 0),
      leBytes(this.min, 2),
      leBytes(this.max, 2),
      Uint8Array.of(this.alignment, this.length),
    ]);
  }
}

/** `IO (Decode16, port, port, 1, length)`: a fixed range, the usual case. */
export function ioPort(port: number, length: number): IoResource {
  return new IoResource(port, port, 1, length);
}

/** `FixedIO (base, length)` (6.4.2.6): a 10-bit decoded fixed range. */
export class FixedIoResource implements ResourceDescriptor {
  /** Construct `FixedIO (base, length)`. */
  constructor(readonly base: number, readonly length: number) {
    checkRange("FixedIO base", base, 0x3ff);
    checkRange("FixedIO length", length, 0xff);
  }
  /** The 4-byte descriptor. */
  toAml(): Uint8Array {
    return smallItem(SMALL_FIXED_IO, [leBytes(this.base, 2), Uint8Array.of(this.length)]);
  }
}

/** IRQ descriptor flags (6.4.2.1, byte 3). */
export interface IrqFlags {
  readonly trigger: "edge" | "level";
  readonly polarity: "high" | "low";
  readonly shared: boolean;
  readonly wake?: boolean;
}

/**
 * `IRQ (trigger, polarity, sharing) {irqs}` (6.4.2.1), or `IRQNoFlags ()
 * {irqs}` when `flags` is undefined (the 2-byte-body form, which means
 * edge-triggered, active-high, exclusive).
 */
export class IrqResource implements ResourceDescriptor {
  /** ISA IRQs (0-15). */
  readonly irqs: readonly number[];
  /** Flags, or undefined for IRQNoFlags. */
  readonly flags?: IrqFlags;

  /** Construct the descriptor. */
  constructor(irqs: readonly number[], flags?: IrqFlags) {
    for (const i of irqs) checkRange("IRQ", i, 15);
    this.irqs = irqs;
    this.flags = flags;
  }
  /** The 3- or 4-byte descriptor. */
  toAml(): Uint8Array {
    const mask = this.irqs.reduce((m, i) => m | (1 << i), 0);
    if (this.flags === undefined) return smallItem(SMALL_IRQ, [leBytes(mask, 2)]);
    const f = this.flags;
    const flags = (f.trigger === "edge" ? 0x01 : 0) | (f.polarity === "low" ? 0x08 : 0) |
      (f.shared ? 0x10 : 0) | (f.wake ? 0x20 : 0);
    return smallItem(SMALL_IRQ, [leBytes(mask, 2), Uint8Array.of(flags)]);
  }
}

/** `Memory32Fixed (ReadWrite|ReadOnly, base, length)` (6.4.3.4). */
export class Memory32FixedResource implements ResourceDescriptor {
  /** Construct the descriptor. */
  constructor(readonly base: number, readonly length: number, readonly writable = true) {
    checkRange("Memory32Fixed base", base, 0xffffffff);
    checkRange("Memory32Fixed length", length, 0xffffffff);
  }
  /** The 12-byte descriptor. */
  toAml(): Uint8Array {
    return largeItem(LARGE_MEMORY32_FIXED, [
      Uint8Array.of(this.writable ? 1 : 0),
      leBytes(this.base, 4),
      leBytes(this.length, 4),
    ]);
  }
}

/** Memory cacheability (_MEM) of an address space descriptor (6.4.3.5.5). */
export const MEMORY_CACHE = Object.freeze({
  NonCacheable: 0,
  Cacheable: 1,
  WriteCombining: 2,
  Prefetchable: 3,
});
/** I/O range (_RNG) of an I/O address space descriptor (6.4.3.5.5). */
export const IO_RANGE = Object.freeze({ NonISAOnlyRanges: 1, ISAOnlyRanges: 2, EntireRange: 3 });

/** Fields of a Word/DWord/QWord address space descriptor (6.4.3.5.1-3). */
export interface AddressSpaceOptions {
  /** 16 (Word), 32 (DWord) or 64 (QWord) bit fields. */
  readonly width: 16 | 32 | 64;
  readonly type: "memory" | "io" | "bus";
  /** ResourceProducer (false) or ResourceConsumer (true); default producer. */
  readonly consumer?: boolean;
  /** SubDecode (true) or PosDecode (false, default). */
  readonly subtractive?: boolean;
  /** MinFixed (default true). */
  readonly minFixed?: boolean;
  /** MaxFixed (default true). */
  readonly maxFixed?: boolean;
  /** Memory: cacheability (default NonCacheable). */
  readonly cache?: keyof typeof MEMORY_CACHE;
  /** Memory: ReadWrite (default true) or ReadOnly. */
  readonly writable?: boolean;
  /** I/O: the ISA range flag (default EntireRange). */
  readonly ioRange?: keyof typeof IO_RANGE;
  readonly granularity?: number | bigint;
  readonly min: number | bigint;
  readonly max: number | bigint;
  readonly translation?: number | bigint;
  /** The range length; default max - min + 1. */
  readonly length?: number | bigint;
}

/** `WordBusNumber`/`WordIO`/`DWordMemory`/`QWordMemory`/...: an address space descriptor. */
export class AddressSpaceResource implements ResourceDescriptor {
  /** The descriptor's fields. */
  readonly options: AddressSpaceOptions;

  /** Construct the descriptor; throws when a value does not fit the width. */
  constructor(options: AddressSpaceOptions) {
    this.options = options;
    const max = (1n << BigInt(options.width)) - 1n;
    for (const k of ["granularity", "min", "max", "translation", "length"] as const) {
      const v = options[k];
      if (v !== undefined) checkRange(`${k}`, v, max);
    }
  }

  /** The 16-, 26- or 46-byte descriptor. */
  toAml(): Uint8Array {
    const o = this.options;
    const size = o.width / 8;
    const tag = o.width === 16
      ? LARGE_WORD_ADDRESS
      : o.width === 32
      ? LARGE_DWORD_ADDRESS
      : LARGE_QWORD_ADDRESS;
    const resourceType = o.type === "memory" ? 0 : o.type === "io" ? 1 : 2;
    // General flags: bit 0 consumer, bit 1 _DEC, bit 2 _MIF, bit 3 _MAF.
    const general = (o.consumer ? 1 : 0) | (o.subtractive ? 2 : 0) |
      ((o.minFixed ?? true) ? 4 : 0) | ((o.maxFixed ?? true) ? 8 : 0);
    let specific = 0;
    if (o.type === "memory") {
      // Bit 0 _RW, bits 2-1 _MEM.
      specific = ((o.writable ?? true) ? 1 : 0) | (MEMORY_CACHE[o.cache ?? "NonCacheable"] << 1);
    } else if (o.type === "io") {
      // Bits 1-0 _RNG.
      specific = IO_RANGE[o.ioRange ?? "EntireRange"];
    }
    const length = o.length ?? BigInt(o.max) - BigInt(o.min) + 1n;
    return largeItem(tag, [
      Uint8Array.of(resourceType, general, specific),
      leBytes(o.granularity ?? 0, size),
      leBytes(o.min, size),
      leBytes(o.max, size),
      leBytes(o.translation ?? 0, size),
      leBytes(length, size),
    ]);
  }
}

/** `WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, len)`. */
export function wordBusNumber(min: number, max: number): AddressSpaceResource {
  return new AddressSpaceResource({ width: 16, type: "bus", min, max });
}

/** `WordIO`/`DWordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, len)`. */
export function ioWindow(min: number, max: number): AddressSpaceResource {
  return new AddressSpaceResource({ width: max <= 0xffff ? 16 : 32, type: "io", min, max });
}

/**
 * `DWordMemory`/`QWordMemory (ResourceProducer, PosDecode, MinFixed,
 * MaxFixed, cache, ReadWrite, 0, min, max, 0, len)`: DWord when the range
 * ends below 4 GiB, else QWord.
 */
export function memoryWindow(
  min: number,
  max: number,
  cache: keyof typeof MEMORY_CACHE = "NonCacheable",
): AddressSpaceResource {
  return new AddressSpaceResource({
    width: max <= 0xffffffff ? 32 : 64,
    type: "memory",
    min,
    max,
    cache,
  });
}

/** Flags of an extended interrupt descriptor (6.4.3.6). */
export interface InterruptFlags {
  /** ResourceConsumer (default true). */
  readonly consumer?: boolean;
  readonly trigger: "edge" | "level";
  readonly polarity: "high" | "low";
  readonly shared: boolean;
  readonly wake?: boolean;
}

/** `Interrupt (consumer, trigger, polarity, sharing) {gsis}` (6.4.3.6). */
export class InterruptResource implements ResourceDescriptor {
  /** Construct the descriptor (1-255 interrupts). */
  constructor(readonly interrupts: readonly number[], readonly flags: InterruptFlags) {
    if (interrupts.length < 1 || interrupts.length > 255) {
      throw new RangeError("Interrupt needs 1-255 interrupts");
    }
    for (const i of interrupts) checkRange("interrupt", i, 0xffffffff);
  }
  /** The descriptor. */
  toAml(): Uint8Array {
    const f = this.flags;
    const flags = ((f.consumer ?? true) ? 1 : 0) | (f.trigger === "edge" ? 2 : 0) |
      (f.polarity === "low" ? 4 : 0) | (f.shared ? 8 : 0) | (f.wake ? 0x10 : 0);
    return largeItem(LARGE_EXTENDED_IRQ, [
      Uint8Array.of(flags, this.interrupts.length),
      ...this.interrupts.map((i) => leBytes(i, 4)),
    ]);
  }
}

/** Options of a {@linkcode ResourceTemplate}. */
export interface ResourceTemplateOptions {
  /**
   * Compute the end tag's checksum so that all bytes of the template sum to
   * zero; by default it is 0, which "indicates that the checksum is to be
   * ignored" (6.4.2.9) and is what iasl emits.
   */
  readonly checksum?: boolean;
}

/**
 * `ResourceTemplate () { descriptors }`: the descriptors plus an end tag
 * (6.4.2.9), as a Buffer. `bytes()` gives the raw template.
 */
export class ResourceTemplate implements AmlObject {
  /** The descriptors, in order. */
  readonly descriptors: readonly ResourceDescriptor[];
  /** Whether the end tag carries a computed checksum. */
  readonly checksum: boolean;

  /** Construct the template. */
  constructor(descriptors: readonly ResourceDescriptor[], options: ResourceTemplateOptions = {}) {
    this.descriptors = descriptors;
    this.checksum = options.checksum ?? false;
  }

  /** The descriptors followed by the end tag. */
  bytes(): Uint8Array {
    const body = concatBytes(this.descriptors.map((d) => d.toAml()));
    const endTag = Uint8Array.of((SMALL_END << 3) | 1, 0);
    const out = concatBytes([body, endTag]);
    if (this.checksum) out[out.length - 1] = checksum(out);
    return out;
  }

  /** The Buffer term. */
  toAml(): Uint8Array {
    return new AmlBuffer(this.bytes()).toAml();
  }
}

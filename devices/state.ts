/**
 * Device state as typed layouts over shared memory.
 *
 * A device model's registers live in a {@linkcode StateLayout}: a fixed set
 * of named scalar and array fields laid out in one SharedArrayBuffer. The
 * same state can be bound in every thread of the VMM (each vCPU Worker and
 * the main thread), so a vCPU runs the device model itself on its own thread
 * and no exit pays for a cross-thread round trip; the VM's device lock
 * serializes the accesses. The layout also is the device's snapshot format:
 * plain data with a name and a version number, kept apart from the logic.
 *
 * ```ts
 * const UartState = defineState("uart16550", 1, { ier: "u8", rx: ["u8", 16] });
 * const s = UartState.create();   // fresh, zeroed
 * s.ier = 0x0f; s.rx[0] = 0x41;
 * const t = UartState.bind(UartState.bufferOf(s)); // same state, e.g. in a Worker
 * ```
 *
 * @module
 */

/** Scalar field types. */
export type ScalarType = "u8" | "u16" | "u32" | "i32" | "f64" | "bool";
/** Element types an array field may have. */
export type ElementType = "u8" | "u16" | "u32" | "i32" | "f64";
/** A field: a scalar, or `[element type, length]`. */
export type FieldSpec = ScalarType | readonly [ElementType, number];
/** A layout's fields. */
export type FieldSpecs = Readonly<Record<string, FieldSpec>>;

type ArrayFor<E> = E extends "u8" ? Uint8Array
  : E extends "u16" ? Uint16Array
  : E extends "u32" ? Uint32Array
  : E extends "i32" ? Int32Array
  : Float64Array;

/** The object a layout binds: scalar fields are properties, arrays are typed arrays. */
export type StateOf<F extends FieldSpecs> =
  & {
    -readonly [K in keyof F as F[K] extends readonly unknown[] ? never : K]: F[K] extends "bool"
      ? boolean
      : number;
  }
  & {
    readonly [K in keyof F as F[K] extends readonly unknown[] ? K : never]: F[K] extends
      readonly [infer E, number] ? ArrayFor<E> : never;
  };

/** Plain-data form of a state, for snapshots and inspection. */
export type PlainState = Record<string, number | boolean | number[]>;

/** A named, versioned layout of device state. */
export interface StateLayout<F extends FieldSpecs> {
  /** The model's name. */
  readonly name: string;
  /** Bumped whenever the fields change; a snapshot of another version is refused. */
  readonly version: number;
  /** Bytes of shared memory one instance needs. */
  readonly size: number;
  /** The field specifications. */
  readonly fields: F;
  /** A fresh, zeroed state in its own SharedArrayBuffer. */
  create(): StateOf<F>;
  /** Binds an existing buffer (e.g. one a Worker was sent). */
  bind(buffer: SharedArrayBuffer | ArrayBuffer, offset?: number): StateOf<F>;
  /** The buffer a state lives in, to send to another thread. */
  bufferOf(state: StateOf<F>): SharedArrayBuffer | ArrayBuffer;
  /** Copies a state into plain data. */
  save(state: StateOf<F>): PlainState;
  /** Loads plain data (from {@linkcode StateLayout.save}) into a state. */
  load(state: StateOf<F>, plain: PlainState): void;
  /** Zeroes every field. */
  clear(state: StateOf<F>): void;
}

const ELEMENT_SIZE: Record<ElementType | "bool", number> = {
  u8: 1,
  bool: 1,
  u16: 2,
  u32: 4,
  i32: 4,
  f64: 8,
};
const VIEW_KEY: Record<ElementType | "bool", string> = {
  u8: "$u8",
  bool: "$u8",
  u16: "$u16",
  u32: "$u32",
  i32: "$i32",
  f64: "$f64",
};
const BUFFER = Symbol("state buffer");

interface Placed {
  name: string;
  type: ElementType | "bool";
  length: number; // 0 for a scalar
  offset: number;
}

/** Defines a state layout. Fields are placed largest-alignment first, so all are aligned. */
export function defineState<F extends FieldSpecs>(
  name: string,
  version: number,
  fields: F,
): StateLayout<F> {
  const entries = Object.entries(fields).map(([n, spec]): Omit<Placed, "offset"> =>
    typeof spec === "string"
      ? { name: n, type: spec, length: 0 }
      : { name: n, type: spec[0], length: spec[1] }
  );
  for (const e of entries) {
    const spec = fields[e.name];
    // An array needs at least one element: a length of 0 would read as a scalar.
    if (typeof spec !== "string" && !(Number.isInteger(spec[1]) && spec[1] >= 1)) {
      throw new Error(
        `${name}.${e.name}: bad array length ${spec[1]} (an array needs at least 1 element)`,
      );
    }
  }
  entries.sort((a, b) => ELEMENT_SIZE[b.type] - ELEMENT_SIZE[a.type]);
  let at = 0;
  const placed: Placed[] = entries.map((e) => {
    const p = { ...e, offset: at };
    at += ELEMENT_SIZE[e.type] * Math.max(1, e.length);
    return p;
  });
  const size = Math.max(8, Math.ceil(at / 8) * 8);

  // One accessor class per layout: scalar fields are getters/setters on the
  // prototype over the instance's typed-array views.
  class Bound {
    declare $u8: Uint8Array;
    declare $u16: Uint16Array;
    declare $u32: Uint32Array;
    declare $i32: Int32Array;
    declare $f64: Float64Array;
    declare [BUFFER]: SharedArrayBuffer | ArrayBuffer;
    constructor(buffer: SharedArrayBuffer | ArrayBuffer, offset: number) {
      if (offset % 8 !== 0) throw new Error(`${name}: state offset ${offset} is not 8-aligned`);
      if (offset + size > buffer.byteLength) throw new Error(`${name}: buffer too small for state`);
      Object.defineProperty(this, BUFFER, { value: buffer });
      this.$u8 = new Uint8Array(buffer, offset, size);
      this.$u16 = new Uint16Array(buffer, offset, size / 2);
      this.$u32 = new Uint32Array(buffer, offset, size / 4);
      this.$i32 = new Int32Array(buffer, offset, size / 4);
      this.$f64 = new Float64Array(buffer, offset, size / 8);
      for (const p of placed) {
        if (p.length === 0) continue;
        const C = {
          u8: Uint8Array,
          u16: Uint16Array,
          u32: Uint32Array,
          i32: Int32Array,
          f64: Float64Array,
        }[
          p.type as ElementType
        ];
        Object.defineProperty(this, p.name, {
          value: new C(buffer as ArrayBuffer, offset + p.offset, p.length),
          enumerable: true,
        });
      }
    }
  }
  for (const p of placed) {
    if (p.length !== 0) continue;
    const key = VIEW_KEY[p.type] as "$u8";
    const index = p.offset / ELEMENT_SIZE[p.type];
    if (p.type === "bool") {
      Object.defineProperty(Bound.prototype, p.name, {
        get(this: Bound) {
          return this.$u8[index] !== 0;
        },
        set(this: Bound, v: boolean) {
          this.$u8[index] = v ? 1 : 0;
        },
        enumerable: true,
      });
    } else {
      Object.defineProperty(Bound.prototype, p.name, {
        get(this: Bound) {
          return this[key][index];
        },
        set(this: Bound, v: number) {
          this[key][index] = v;
        },
        enumerable: true,
      });
    }
  }

  const layout: StateLayout<F> = {
    name,
    version,
    size,
    fields,
    create() {
      return new Bound(new SharedArrayBuffer(size), 0) as unknown as StateOf<F>;
    },
    bind(buffer, offset = 0) {
      return new Bound(buffer, offset) as unknown as StateOf<F>;
    },
    bufferOf(state) {
      return (state as unknown as Bound)[BUFFER];
    },
    save(state) {
      const s = state as unknown as Record<string, unknown>;
      const out: PlainState = {};
      for (const p of placed) {
        const v = s[p.name];
        out[p.name] = p.length === 0 ? v as number | boolean : Array.from(v as ArrayLike<number>);
      }
      return out;
    },
    load(state, plain) {
      const s = state as unknown as Record<string, unknown>;
      for (const p of placed) {
        const v = plain[p.name];
        if (v === undefined) {
          throw new Error(`${name} v${version} snapshot: missing field ${p.name}`);
        }
        if (p.length === 0) {
          if (Array.isArray(v)) throw new Error(`${name} snapshot: ${p.name} must be a scalar`);
          s[p.name] = v;
        } else {
          if (!Array.isArray(v) || v.length !== p.length) {
            throw new Error(`${name} snapshot: ${p.name} must be an array of ${p.length}`);
          }
          (s[p.name] as { set(a: number[]): void }).set(v);
        }
      }
    },
    clear(state) {
      (state as unknown as Bound).$u8.fill(0);
    },
  };
  return Object.freeze(layout);
}

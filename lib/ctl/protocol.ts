/**
 * The control protocol, version 1: line-delimited JSON over a unix stream
 * socket, one request per line and one response line per request, in
 * order. The README's "Control (ctl)" section documents it for other
 * clients.
 *
 * ```
 * -> {"v":1,"id":7,"cmd":"regs.get","args":{"cpu":0,"names":["rip"]}}
 * <- {"v":1,"id":7,"ok":true,"result":{...}}
 * <- {"v":1,"id":8,"ok":false,"error":{"code":"bad-args","message":"..."}}
 * ```
 *
 * @module
 */

/** The protocol version this dhyve speaks (`"v"` in every request and response). */
export const PROTOCOL_VERSION = 1;

/** The longest request line, newline excluded; longer ones are refused and skipped. */
export const MAX_REQUEST_BYTES = 64 * 1024;

/** How long one request may take before it is answered with a `timeout` error (ms). */
export const REQUEST_TIMEOUT_MS = 5000;

/** How long a connection may hold a partial line before it is closed (ms). */
export const LINE_TIMEOUT_MS = 10_000;

/** Connections served at once; more are answered with `busy` and closed. */
export const MAX_CONNECTIONS = 64;

/** Error codes of a failed request. */
export type CtlErrorCode =
  /** The line is not a JSON object. */
  | "bad-json"
  /** The line is longer than {@linkcode MAX_REQUEST_BYTES}. */
  | "too-large"
  /** `v` is missing or not a version this dhyve speaks. */
  | "bad-version"
  /** `cmd` names no command. */
  | "unknown-command"
  /** An argument is missing, of the wrong type, or not allowed. */
  | "bad-args"
  /** A value (vCPU index, CMOS offset, register value) is out of range. */
  | "out-of-range"
  /** The VM cannot do it now (stopping, between two instances, a vCPU not answering). */
  | "unavailable"
  /** The request took longer than {@linkcode REQUEST_TIMEOUT_MS}. */
  | "timeout"
  /** Too many connections. */
  | "busy"
  /** The operation failed (a KVM error, say). */
  | "failed";

/** A request as sent on the wire. */
export interface CtlRequest {
  /** The protocol version, {@linkcode PROTOCOL_VERSION}. */
  readonly v: number;
  /** Echoed in the response (any JSON value; absent: null). */
  readonly id?: unknown;
  /** The command, e.g. `"stats"`. */
  readonly cmd: string;
  /** The command's arguments. */
  readonly args?: Readonly<Record<string, unknown>>;
}

/** A response as sent on the wire. */
export type CtlResponse =
  | { readonly v: number; readonly id: unknown; readonly ok: true; readonly result: unknown }
  | {
    readonly v: number;
    readonly id: unknown;
    readonly ok: false;
    readonly error: { readonly code: CtlErrorCode; readonly message: string };
  };

/** A request that fails with a code and a one-line message. */
export class CtlError extends Error {
  /** The error code. */
  readonly code: CtlErrorCode;
  /** Builds the error. */
  constructor(code: CtlErrorCode, message: string) {
    super(message);
    this.name = "CtlError";
    this.code = code;
  }
}

/** Every command of protocol version 1, with a line of help each (`dhyve ctl --help` shows them). */
export const COMMANDS: Readonly<Record<string, string>> = Object.freeze({
  hello: "the VM's name, dhyve's pid and the protocol version",
  stats: "exit counts by reason per vCPU and in total, fallback counts, run time",
  cpus: "active, paused and suspended vCPUs; topology and APIC ID per vCPU",
  memmap: "lowmem, highmem, the KVM memory slots and the e820 map",
  caps: "KVM capabilities by name (args: name)",
  "regs.get": "registers of a vCPU (args: cpu, names)",
  "regs.set": "set registers of a vCPU (args: cpu, values {name: value})",
  "rtc.time": "the RTC's time in seconds since the epoch (args: set)",
  "rtc.nvram": "a CMOS byte (args: offset, set)",
  nmi: "inject an NMI into a vCPU (args: cpu)",
  lvt: 'drive a local APIC LINT pin (args: pin "lint0"|"lint1", cpu N or "all")',
  pause: "pause the VM, or one vCPU (args: cpu)",
  resume: "resume the VM, or one vCPU (args: cpu)",
  reset: "reset the VM (the VM-wide suspend path)",
  poweroff: "power the VM off (args: button: press the ACPI power button instead)",
  gla2gpa: "translate a guest linear address through the vCPU's page tables (args: cpu, address)",
});

/**
 * Parses one request line. Throws a {@linkcode CtlError}; the request's
 * `id` is returned with it where it could be read, for the response.
 */
export function parseRequest(line: string): CtlRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    throw new CtlError("bad-json", `not JSON: ${(e as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CtlError("bad-json", "a request is a JSON object");
  }
  const r = value as Record<string, unknown>;
  if (r.v !== PROTOCOL_VERSION) {
    throw new CtlError(
      "bad-version",
      `unsupported protocol version ${
        JSON.stringify(r.v ?? null)
      }; this dhyve speaks ${PROTOCOL_VERSION}`,
    );
  }
  if (typeof r.cmd !== "string") throw new CtlError("bad-args", '"cmd" must be a string');
  if (!Object.hasOwn(COMMANDS, r.cmd)) {
    throw new CtlError("unknown-command", `unknown command ${JSON.stringify(r.cmd)}`);
  }
  if (
    r.args !== undefined &&
    (typeof r.args !== "object" || r.args === null || Array.isArray(r.args))
  ) {
    throw new CtlError("bad-args", '"args" must be an object');
  }
  for (const k of Object.keys(r)) {
    if (!["v", "id", "cmd", "args"].includes(k)) {
      throw new CtlError("bad-args", `unknown request field ${JSON.stringify(k)}`);
    }
  }
  return r as unknown as CtlRequest;
}

/** The `id` of a line that may not parse, for the error response (null when there is none). */
export function idOf(line: string): unknown {
  try {
    const v = JSON.parse(line);
    if (typeof v === "object" && v !== null && !Array.isArray(v)) return v.id ?? null;
  } catch { /* not JSON */ }
  return null;
}

/** Reads argument `name` of `args` with a type check. */
export function arg<T extends "number" | "string" | "boolean" | "object">(
  args: Readonly<Record<string, unknown>>,
  name: string,
  type: T,
  required: boolean,
):
  | (T extends "number" ? number
    : T extends "string" ? string
    : T extends "boolean" ? boolean
    : Record<string, unknown>)
  | undefined {
  const v = args[name];
  if (v === undefined || v === null) {
    if (required) throw new CtlError("bad-args", `missing argument "${name}"`);
    return undefined;
  }
  const ok = type === "object"
    ? typeof v === "object" && !Array.isArray(v)
    : typeof v === type && (type !== "number" || Number.isFinite(v));
  if (!ok) throw new CtlError("bad-args", `argument "${name}" must be a ${type}`);
  // deno-lint-ignore no-explicit-any
  return v as any;
}

/** Checks that `args` has only the named keys. */
export function onlyArgs(args: Readonly<Record<string, unknown>>, names: readonly string[]): void {
  for (const k of Object.keys(args)) {
    if (!names.includes(k)) {
      throw new CtlError(
        "bad-args",
        `unknown argument ${JSON.stringify(k)}${
          names.length ? ` (allowed: ${names.join(", ")})` : " (none allowed)"
        }`,
      );
    }
  }
}

/** An integer argument in [min, max]. */
export function intArg(
  args: Readonly<Record<string, unknown>>,
  name: string,
  min: number,
  max: number,
  required: boolean,
): number | undefined {
  const v = arg(args, name, "number", required);
  if (v === undefined) return undefined;
  if (!Number.isInteger(v)) throw new CtlError("bad-args", `argument "${name}" must be an integer`);
  if (v < min || v > max) {
    throw new CtlError("out-of-range", `${name} ${v} is out of range (${min}-${max})`);
  }
  return v;
}

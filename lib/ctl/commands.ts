/**
 * The control commands, on the VM's main thread: each takes the request's
 * arguments (checked here, strictly) and answers plain JSON data read from
 * the running VM, never made up. Commands that touch one vCPU go to that
 * vCPU's thread ({@linkcode Vm.callVcpu}, lib/ctl/vcpu_ops.ts); device
 * state is read and written under the device lock.
 *
 * @module
 */
import { checkExtension } from "../../cpu/kvm.ts";
import { KVM_CAP_NAMES } from "./_caps.ts";
import { E820 } from "../layout.ts";
import type { Vm } from "../vm/vm.ts";
import { VcpuControl } from "../vm/vm_control.ts";
import { CMOS_SIZE, Rtc, RTC_CENTURY, RTC_NVRAM_START, RtcState } from "../../devices/rtc.ts";
import { parseRegisterValue, REGISTERS, VcpuOpError } from "./vcpu_ops.ts";
import { arg, CtlError, intArg, onlyArgs, PROTOCOL_VERSION } from "./protocol.ts";

type Args = Readonly<Record<string, unknown>>;

/** What the commands work on. */
export interface CtlTarget {
  readonly vm: Vm;
  /** The control socket's path. */
  readonly socket: string;
  /** When the server started (Date.now() ms). */
  readonly startedAt: number;
}

const E820_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(E820).map(([k, v]) => [v, k.toLowerCase()]),
);

function hex(n: number | bigint): string {
  return "0x" + n.toString(16);
}

/** The VM's state in one word, for `list` and `hello`. */
export function vmState(vm: Vm): string {
  if (vm.machine.control.suspending) return "stopping";
  const vcpus = vm.machine.currentVcpus;
  if (vcpus.length === 0) return "resetting";
  if (vm.hostPaused) return "paused";
  if (vm.pausedVcpus.length > 0) return "partly-paused";
  return "running";
}

function vcpuIndex(vm: Vm, args: Args, required = true): number | undefined {
  const n = vm.machine.config.cpu.cpus;
  return intArg(args, "cpu", 0, n - 1, required);
}

/** Maps an error from below (a vCPU call, a device) to a CtlError. */
function failure(e: unknown): CtlError {
  if (e instanceof CtlError) return e;
  const message = (e as Error).message;
  if (e instanceof VcpuOpError || e instanceof RangeError) return new CtlError("bad-args", message);
  if (/out of range|is not a number|unknown register|not canonical|wider than/.test(message)) {
    return new CtlError("bad-args", message);
  }
  if (/did not answer|between two instances|not running|is stopping|still busy/.test(message)) {
    return new CtlError("unavailable", message);
  }
  return new CtlError("failed", message);
}

async function onVcpu(vm: Vm, index: number, op: Parameters<Vm["callVcpu"]>[1]): Promise<unknown> {
  try {
    return await vm.callVcpu(index, op);
  } catch (e) {
    throw failure(e);
  }
}

// --- rtc ---------------------------------------------------------------------------

/** A main-thread view of the RTC over its shared state, rebuilt for each KVM instance. */
const rtcViews = new WeakMap<object, Rtc>();

function rtcOf(vm: Vm): Rtc {
  const m = vm.machine;
  const spec = m.specs.find((s) => s.model === "rtc");
  if (!spec) throw new CtlError("unavailable", "this VM has no RTC");
  if (m.currentVcpus.length === 0) {
    throw new CtlError("unavailable", "the VM is between two instances (a reset)");
  }
  const host = m.host;
  let rtc = rtcViews.get(host);
  if (!rtc) {
    // The same device model over the same shared registers, as every vCPU
    // thread attaches it (devices/registry.ts, model "rtc").
    const o = spec.options as Record<string, number>;
    const ctx = host.context;
    rtc = new Rtc({
      irq: ctx.irq(o.irq),
      clock: ctx.clock,
      timers: ctx.timers(spec),
      hostTime: () => ctx.hostTime(),
      utcOffsetSeconds: o.utcOffset,
      memory: { lowmemEnd: o.lowmemEnd, highmemSize: o.highmemSize },
    }, RtcState.bind(spec.state));
    rtcViews.set(host, rtc);
  }
  return rtc;
}

/** Years the RTC can show with its century byte: 0 to 9999 (seconds since the epoch). */
const RTC_MIN_TIME = -62167219200; // 0000-01-01T00:00:00Z
const RTC_MAX_TIME = 253402300799; // 9999-12-31T23:59:59Z

async function rtcTime(vm: Vm, args: Args): Promise<unknown> {
  onlyArgs(args, ["set"]);
  const set = arg(args, "set", "number", false);
  if (set !== undefined && (set < RTC_MIN_TIME || set > RTC_MAX_TIME)) {
    throw new CtlError(
      "out-of-range",
      `time ${set} is out of the RTC's range (years 0-9999: ${RTC_MIN_TIME} to ${RTC_MAX_TIME})`,
    );
  }
  const rtc = rtcOf(vm);
  const t = await vm.machine.control.lock.withAsync(() => {
    if (set !== undefined) rtc.setTime(set);
    return rtc.getTime();
  });
  return {
    time: Number.isFinite(t) ? Math.floor(t) : null,
    iso: Number.isFinite(t) ? new Date(Math.floor(t) * 1000).toISOString() : null,
    ...(Number.isFinite(t) ? {} : { note: "the RTC holds an invalid date" }),
  };
}

async function rtcNvram(vm: Vm, args: Args): Promise<unknown> {
  onlyArgs(args, ["offset", "set"]);
  const offset = intArg(args, "offset", RTC_NVRAM_START, CMOS_SIZE - 1, true)!;
  const set = intArg(args, "set", 0, 255, false);
  if (set !== undefined && offset === RTC_CENTURY) {
    throw new CtlError("bad-args", "offset 0x32 is the RTC's century: set it with rtc time --set");
  }
  const rtc = rtcOf(vm);
  const value = await vm.machine.control.lock.withAsync(() => {
    if (set !== undefined) rtc.writeNvram(offset, set);
    return rtc.readNvram(offset);
  });
  return { offset, value };
}

// --- the commands ------------------------------------------------------------------

function hello(t: CtlTarget, args: Args): unknown {
  onlyArgs(args, []);
  return {
    name: t.vm.machine.config.vm.name,
    pid: Deno.pid,
    protocol: PROTOCOL_VERSION,
    socket: t.socket,
    startedAt: new Date(t.startedAt).toISOString(),
    uptimeMs: Date.now() - t.startedAt,
    state: vmState(t.vm),
    vcpus: t.vm.machine.config.cpu.cpus,
  };
}

function stats(t: CtlTarget, args: Args): unknown {
  onlyArgs(args, []);
  const vm = t.vm;
  const now = performance.timeOrigin + performance.now();
  const vcpus = vm.stats().map((s) => ({
    index: s.index,
    apicId: s.apicId,
    state: s.state,
    exits: s.exits,
    fallbacks: s.fallbacks,
    // Wall time in the run loop: to the stop once the vCPU left it, else to now.
    runMs: s.runNs > 0 ? s.runNs / 1e6 : s.firstRunWallMs > 0 ? now - s.firstRunWallMs : 0,
  }));
  const total: Record<string, number> = {};
  for (const v of vcpus) {
    for (const [k, n] of Object.entries(v.exits)) total[k] = (total[k] ?? 0) + n;
  }
  return {
    uptimeMs: Date.now() - t.startedAt,
    resets: vm.resets,
    unclaimed: vm.machine.control.unclaimed,
    total,
    fallbacks: vm.fallbackSummary(),
    vcpus,
  };
}

async function cpus(t: CtlTarget, args: Args): Promise<unknown> {
  onlyArgs(args, []);
  const vm = t.vm;
  const c = vm.machine.config.cpu;
  const vcpus = vm.machine.currentVcpus;
  if (vcpus.length === 0) {
    throw new CtlError("unavailable", "the VM is between two instances (a reset)");
  }
  const mp = await Promise.all(
    vcpus.map((v) =>
      onVcpu(vm, v.place.index, { op: "mpstate" }).then(
        (r) => (r as { mpState: string }).mpState,
        (e: CtlError) => `unknown (${e.message})`,
      )
    ),
  );
  const list = vcpus.map((v, i) => ({
    index: v.place.index,
    socket: v.place.socket,
    core: v.place.core,
    thread: v.place.thread,
    apicId: v.place.apicId,
    state: v.control.state,
    mpState: mp[i],
    exits: v.control.stats[VcpuControl.slot("exits")],
  }));
  // bhyve's active CPUs are those started (the BSP, and APs after INIT-SIPI);
  // here: an MP state past UNINITIALIZED/INIT_RECEIVED (api.rst 4.38).
  const active = list.filter((v) => ["runnable", "halted", "sipi_received"].includes(v.mpState));
  return {
    topology: {
      sockets: c.sockets,
      cores: c.cores,
      threads: c.threads,
      cpus: c.cpus,
      maxcpus: c.maxcpus,
    },
    active: active.map((v) => v.index),
    paused: list.filter((v) => v.state === "paused").map((v) => v.index),
    suspended: list.filter((v) => v.state === "suspended" || v.state === "finished").map((v) =>
      v.index
    ),
    vcpus: list,
  };
}

function memmap(t: CtlTarget, args: Args): unknown {
  onlyArgs(args, []);
  const m = t.vm.machine;
  const l = m.layout;
  return {
    size: l.size,
    lowmemLimit: l.lowmemLimit,
    lowmem: { start: 0, end: l.lowmemEnd },
    highmem: l.highmemSize > 0 ? { start: 2 ** 32, end: 2 ** 32 + l.highmemSize } : null,
    pciHole32: l.pciHole32,
    pciHole64: l.pciHole64,
    slots: l.ram.map((r, slot) => ({
      slot,
      name: r.name,
      gpa: r.gpa,
      size: r.size,
      hva: hex(m.memory.base + BigInt(r.gpa)),
    })),
    e820: l.e820.map((e) => ({
      addr: e.addr,
      size: e.size,
      type: e.type,
      typeName: E820_NAMES[e.type] ?? "unknown",
    })),
  };
}

function caps(t: CtlTarget, args: Args): unknown {
  onlyArgs(args, ["name"]);
  const m = t.vm.machine;
  // KVM_CHECK_EXTENSION on the VM fd answers for this VM (api.rst 4.4,
  // KVM_CAP_CHECK_EXTENSION_VM); /dev/kvm while a reset has no VM fd.
  const fd = m.currentVcpus.length > 0 ? m.vmFd : m.kvmFd;
  const value = (n: number) => {
    try {
      return checkExtension(fd, n);
    } catch {
      return 0;
    }
  };
  const name = arg(args, "name", "string", false);
  if (name !== undefined) {
    const key = name.toLowerCase().replace(/^kvm_cap_/, "");
    const n = KVM_CAP_NAMES.get(key);
    if (n === undefined) throw new CtlError("bad-args", `unknown capability "${name}"`);
    return { caps: [{ name: key, number: n, value: value(n) }] };
  }
  return {
    caps: [...KVM_CAP_NAMES].map(([k, n]) => ({ name: k, number: n, value: value(n) })),
  };
}

async function regsGet(t: CtlTarget, args: Args): Promise<unknown> {
  onlyArgs(args, ["cpu", "names"]);
  const cpu = vcpuIndex(t.vm, args)!;
  const names = args.names;
  if (
    names !== undefined && (!Array.isArray(names) || names.some((n) => typeof n !== "string"))
  ) {
    throw new CtlError("bad-args", 'argument "names" must be an array of register names');
  }
  for (const n of (names ?? []) as string[]) {
    if (!REGISTERS.has(n)) throw new CtlError("bad-args", `unknown register "${n}"`);
  }
  const r = await onVcpu(t.vm, cpu, { op: "regs.get" }) as {
    registers: Record<string, string>;
    mpState: string;
  };
  const wanted = names as string[] | undefined;
  return {
    cpu,
    mpState: r.mpState,
    registers: wanted?.length
      ? Object.fromEntries(wanted.map((n) => [n, r.registers[n]]))
      : r.registers,
  };
}

async function regsSet(t: CtlTarget, args: Args): Promise<unknown> {
  onlyArgs(args, ["cpu", "values"]);
  const cpu = vcpuIndex(t.vm, args)!;
  const values = arg(args, "values", "object", true)!;
  const text: Record<string, string> = {};
  for (const [name, v] of Object.entries(values)) {
    const s = typeof v === "number" && Number.isSafeInteger(v) && v >= 0
      ? String(v)
      : typeof v === "string"
      ? v
      : undefined;
    if (s === undefined) {
      throw new CtlError("bad-args", `${name}: a value is a string ("0x..." or decimal)`);
    }
    try {
      parseRegisterValue(name, s);
    } catch (e) {
      throw new CtlError(
        /out of range/.test((e as Error).message) ? "out-of-range" : "bad-args",
        (e as Error).message,
      );
    }
    text[name] = s;
  }
  if (Object.keys(text).length === 0) throw new CtlError("bad-args", "no register to set");
  return { cpu, registers: await onVcpu(t.vm, cpu, { op: "regs.set", values: text }) };
}

async function nmi(t: CtlTarget, args: Args): Promise<unknown> {
  onlyArgs(args, ["cpu"]);
  const cpu = vcpuIndex(t.vm, args)!;
  await onVcpu(t.vm, cpu, { op: "nmi" });
  return { cpu, injected: true };
}

async function lvt(t: CtlTarget, args: Args): Promise<unknown> {
  onlyArgs(args, ["pin", "cpu"]);
  const pin = arg(args, "pin", "string", true)!.toLowerCase();
  if (pin !== "lint0" && pin !== "lint1") {
    throw new CtlError("bad-args", `pin "${pin}" is not lint0 or lint1`);
  }
  const which = args.cpu === undefined || args.cpu === "all"
    ? t.vm.machine.currentVcpus.map((v) => v.place.index)
    : [vcpuIndex(t.vm, args)!];
  const out = [];
  for (const cpu of which) {
    out.push({ cpu, ...(await onVcpu(t.vm, cpu, { op: "lvt", pin }) as object) });
  }
  return { pins: out };
}

async function pause(t: CtlTarget, args: Args): Promise<unknown> {
  onlyArgs(args, ["cpu"]);
  const cpu = vcpuIndex(t.vm, args, false);
  let ok: boolean;
  try {
    ok = cpu === undefined ? await t.vm.pause() : await t.vm.pauseVcpu(cpu);
  } catch (e) {
    throw failure(e);
  }
  if (!ok) {
    throw new CtlError(
      "unavailable",
      `could not pause ${
        cpu === undefined ? "the VM" : `vcpu ${cpu}`
      } (stopping, or a vCPU did not stop in time)`,
    );
  }
  return { paused: cpu === undefined ? "all" : cpu };
}

function resume(t: CtlTarget, args: Args): unknown {
  onlyArgs(args, ["cpu"]);
  const cpu = vcpuIndex(t.vm, args, false);
  try {
    if (cpu === undefined) t.vm.resume();
    else t.vm.resumeVcpu(cpu);
  } catch (e) {
    throw failure(e);
  }
  return { resumed: cpu === undefined ? "all" : cpu };
}

function reset(t: CtlTarget, args: Args): unknown {
  onlyArgs(args, []);
  if (t.vm.machine.control.suspending) {
    throw new CtlError("unavailable", "the VM is already stopping");
  }
  t.vm.requestSuspend({ kind: "reset", message: "ctl: reset" });
  return { requested: "reset", onReset: t.vm.machine.config.vm.onReset };
}

async function poweroff(t: CtlTarget, args: Args): Promise<unknown> {
  onlyArgs(args, ["button"]);
  if (arg(args, "button", "boolean", false)) {
    if (!await t.vm.pressPowerButton()) {
      throw new CtlError(
        "unavailable",
        "the guest has not enabled the ACPI power button (no ACPI OS listens)",
      );
    }
    return { requested: "power-button" };
  }
  if (t.vm.machine.control.suspending) {
    throw new CtlError("unavailable", "the VM is already stopping");
  }
  t.vm.requestSuspend({ kind: "poweroff", message: "ctl: poweroff" });
  return { requested: "poweroff" };
}

async function gla2gpa(t: CtlTarget, args: Args): Promise<unknown> {
  onlyArgs(args, ["cpu", "address"]);
  const cpu = vcpuIndex(t.vm, args)!;
  const a = args.address;
  const address = typeof a === "number" && Number.isSafeInteger(a) && a >= 0
    ? hex(a)
    : typeof a === "string"
    ? a
    : undefined;
  if (address === undefined) {
    throw new CtlError("bad-args", 'argument "address" must be a string ("0x...") or a number');
  }
  return { cpu, ...(await onVcpu(t.vm, cpu, { op: "gla2gpa", address }) as object) };
}

/** The handlers by command name (protocol.ts lists the commands). */
export const HANDLERS: Readonly<
  Record<string, (t: CtlTarget, args: Args) => unknown | Promise<unknown>>
> = {
  hello,
  stats,
  cpus,
  memmap,
  caps,
  "regs.get": regsGet,
  "regs.set": regsSet,
  "rtc.time": (t, a) => rtcTime(t.vm, a),
  "rtc.nvram": (t, a) => rtcNvram(t.vm, a),
  nmi,
  lvt,
  pause,
  resume,
  reset,
  poweroff,
  gla2gpa,
};

/** Runs one request's command; throws a {@linkcode CtlError}. */
export async function runCommand(t: CtlTarget, cmd: string, args: Args): Promise<unknown> {
  const h = HANDLERS[cmd];
  if (!h) throw new CtlError("unknown-command", `unknown command ${JSON.stringify(cmd)}`);
  try {
    return await h(t, args);
  } catch (e) {
    throw failure(e);
  }
}

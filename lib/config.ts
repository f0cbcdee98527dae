/**
 * VM definitions: a TOML file parsed and validated into a typed
 * {@linkcode VmConfig}. Validation is strict (unknown tables and keys are
 * errors), collects every problem rather than stopping at the first, and
 * names each one as `file:line:column: key.path: message`.
 *
 * Successful parses touch only smol-toml. Source positions are needed only
 * to report errors, so the positional parser (toml-eslint-parser) is loaded
 * lazily on that path: that keeps start-up fast.
 *
 * @module
 */

import { parse, TomlError } from "smol-toml";
import { findRedefinition, impossibleDates, shrinkLongTokens } from "./_toml_scan.ts";
import { apicIdOf, MAX_XAPIC_ID } from "../cpu/topology.ts";
import { isElf } from "./boot/elf.ts";
import { isBzImage, LinuxBootError } from "./boot/linux.ts";
import { findMultibootHeader, MultibootError, planMultiboot } from "./boot/multiboot.ts";
import { consoleFileProblem } from "./console_file.ts";
import { fileKind, fileSource, InputFileError } from "./file_read.ts";
import { LINUX_HEAD, planLinuxFrom } from "./boot/payload.ts";
import { findPvhEntry } from "./boot/pvh.ts";
import { BOOT_PARAMS } from "./boot/zero_page.ts";
import { MAX_PIN_SOURCES } from "./irq.ts";
import {
  computeLayout,
  DEFAULT_LOWMEM_LIMIT,
  E820,
  formatSize,
  FOUR_GIB,
  inE820Ram,
  LOWMEM_LIMIT_ALIGN,
  MAX_LOWMEM_LIMIT,
  MAX_MEMORY,
  MEMORY_ALIGN,
  MiB,
  MIN_MEMORY,
  ZERO_PAGE,
} from "./layout.ts";
import { PCI_IOAPIC_PINS, routeIntx } from "./pci_routing.ts";
import { fixedPortConflict, ISA_RESERVED_IRQS } from "./platform.ts";
import { parseSize } from "./size.ts";
import { escapeText, quote, quoteIfNeeded, showPath } from "./quote.ts";
import { osErrorText } from "./os_error.ts";

// ---------------------------------------------------------------------------
// Types

/** A validated VM definition. Every path in it is absolute. */
export interface VmConfig {
  /** The TOML path as given, or `"<object>"` for {@linkcode configFromObject}. */
  readonly file: string;
  /** The directory relative paths were resolved against. */
  readonly baseDir: string;
  /** `[vm]`: the VM's name and whether unclaimed I/O is fatal (bhyve's x86.strictio). */
  readonly vm: {
    readonly name: string;
    readonly strictIo: boolean;
    /** What a guest reset does: end dhyve with status 0 (bhyve's way), or reboot the VM in place. */
    readonly onReset: "exit" | "restart";
    /**
     * Guest seconds per real second of the VM's clocks (HPET, ACPI PM timer,
     * RTC): 1 by default, down to 1/64. See the README ("clock_rate").
     */
    readonly clockRate: number;
    /**
     * Whether virtio queue notifications go through KVM's ioeventfd (no exit
     * to user space), as by default, or through the vCPU's MMIO exit.
     */
    readonly ioeventfd: boolean;
    /**
     * Whether virtio MSI-X interrupts go through KVM irqfds bound to MSI
     * routes, as by default, or through KVM_SIGNAL_MSI.
     */
    readonly irqfd: boolean;
  };
  /** `[memory]`: RAM size and the start of the 32-bit PCI hole, in bytes. */
  readonly memory: { readonly size: number; readonly lowmemLimit: number };
  /** `[cpu]`: the vCPU topology, after bhyve's calc_topology rules. */
  readonly cpu: {
    /** vCPUs started at boot (= sockets x cores x threads). */
    readonly cpus: number;
    readonly sockets: number;
    readonly cores: number;
    readonly threads: number;
    /** The most vCPUs the machine may have (>= cpus). */
    readonly maxcpus: number;
    /** Whether to expose x2APIC (needed when an APIC ID exceeds 254). */
    readonly x2apic: boolean;
  };
  /** `[boot]`: what to load and how to enter it. */
  readonly boot: BootConfig;
  /** `[console]`: where the two serial ports go. */
  readonly console: { readonly com1: ConsoleBackend; readonly com2: ConsoleBackend };
  /** `[firmware]`: which firmware tables to generate. */
  readonly firmware: { readonly acpi: boolean; readonly mptable: boolean };
  /** `[rtc]`: whether the RTC runs in local time rather than UTC. */
  readonly rtc: { readonly useLocaltime: boolean };
  /** `[[device]]` entries, in file order. */
  readonly devices: readonly DeviceConfig[];
  /** `[[pci]]` entries in bus order: sorted by slot, then function. */
  readonly pci: readonly PciConfig[];
}

/** The CPU modes a payload may be entered in (`boot.entry`). */
export const ENTRY_MODES = ["real16", "prot32", "long64"] as const;
/** The CPU mode a raw image is entered in. */
export type EntryMode = (typeof ENTRY_MODES)[number];

/**
 * The boot payload: `probe` (no payload; the machine is built and checked),
 * `raw` (a flat image copied to `address`, entered at `entryPoint` in
 * `entry` mode), `multiboot` (an ELF kernel with a command line and modules)
 * or `linux` (a bzImage or a PVH ELF vmlinux, an optional initrd and a
 * command line).
 */
export type BootConfig =
  | { readonly kind: "probe" }
  | {
    readonly kind: "raw";
    readonly image: string;
    readonly address: number;
    readonly entry: EntryMode;
    readonly entryPoint: number;
  }
  | {
    readonly kind: "multiboot";
    readonly kernel: string;
    readonly cmdline: string;
    readonly modules: readonly { readonly path: string; readonly cmdline: string }[];
  }
  | {
    readonly kind: "linux";
    readonly kernel: string;
    /** The initrd (initramfs) file, if any. */
    readonly initrd?: string;
    readonly cmdline: string;
  };

/** Where a serial port's output goes (and, for stdio, its input comes from). */
export type ConsoleBackend =
  | { readonly kind: "stdio" }
  | { readonly kind: "none" }
  | { readonly kind: "file"; readonly path: string };

/** A `[[device]]` entry: a device on a port range of its own. */
export type DeviceConfig = {
  readonly type: "debug-exit";
  readonly port: number;
  readonly size: 1 | 2 | 4;
};

/** Where a `[[pci]]` entry sits: bus 0, `slot`, `function`. */
interface PciPlace {
  readonly slot: number;
  readonly function: number;
}

/** Per-device overrides of `[vm] ioeventfd` and `[vm] irqfd` for a virtio entry. */
interface VirtioTuning {
  readonly ioeventfd?: boolean;
  readonly irqfd?: boolean;
}

/** A `[[pci]]` entry: a device at bus 0, `slot`, `function`. */
export type PciConfig =
  | PciPlace & { readonly type: "testdev" }
  | PciPlace & VirtioTuning & {
    readonly type: "virtio-blk";
    /** The raw disk image (absolute). */
    readonly path: string;
    /** Its size in bytes (a multiple of 512). */
    readonly size: number;
    readonly readonly: boolean;
    /** The serial the guest reads (GET_ID): at most 20 bytes of printable ASCII. */
    readonly serial: string;
    /** Whether the guest may discard and write zeroes (hole punching in the image). */
    readonly discard: boolean;
  }
  | PciPlace & VirtioTuning & {
    readonly type: "virtio-net";
    /** The host tap device. */
    readonly tap: string;
    /** The MAC address, "52:54:00:xx:xx:xx". */
    readonly mac: string;
  }
  | PciPlace & VirtioTuning & {
    readonly type: "virtio-console";
    /** Output to this file (absolute), or ... */
    readonly file?: string;
    /** ... both ways through a unix socket dhyve listens on (absolute). */
    readonly socket?: string;
  }
  | PciPlace & VirtioTuning & { readonly type: "virtio-rng" };

/** One problem found in a VM definition. */
export interface ConfigIssue {
  /** The config file (as given), or `"<object>"`. */
  file: string;
  /** 1-based line, when known. */
  line?: number;
  /** 1-based column, when known. */
  column?: number;
  /** The key path, like `cpu.cores` or `boot.modules[1].path`; `""` for the whole file. */
  path: string;
  /** What is wrong. */
  message: string;
}

/** RAM size when `memory.size` is not given. */
export const DEFAULT_MEMORY = 256 * MiB;
/** The highest vCPU count (maxcpus) a VM may have. */
export const MAX_VCPUS = 255;
/** The longest command line accepted, in bytes (without the NUL). */
export const MAX_CMDLINE = 4095;
/** The largest config file {@linkcode loadConfig} reads, in bytes. */
export const MAX_CONFIG_SIZE = 1 * MiB;

/** The known `[[device]]` types. */
export const DEVICE_TYPES = ["debug-exit"] as const;
/** The known `[[pci]]` types. */
export const PCI_TYPES = [
  "testdev",
  "virtio-blk",
  "virtio-net",
  "virtio-console",
  "virtio-rng",
] as const;
const BOOT_KINDS = ["probe", "raw", "multiboot", "linux"] as const;

/** Keys allowed in `[boot]` for each kind. */
const BOOT_KEYS: Readonly<Record<(typeof BOOT_KINDS)[number], readonly string[]>> = {
  probe: ["kind"],
  raw: ["kind", "image", "address", "entry", "entry_point"],
  multiboot: ["kind", "kernel", "cmdline", "modules"],
  linux: ["kind", "kernel", "initrd", "cmdline"],
};
const ALL_BOOT_KEYS = [...new Set(Object.values(BOOT_KEYS).flat())];

const TOP_LEVEL = ["vm", "memory", "cpu", "boot", "console", "firmware", "rtc", "device", "pci"];

const OBJECT_FILE = "<object>";

// ---------------------------------------------------------------------------
// Public API

/** Formats an issue as `file:line:column: path: message` (parts omitted when unknown or empty). */
export function formatIssue(issue: ConfigIssue): string {
  const file = showPath(issue.file);
  const where = issue.line === undefined ? file : `${file}:${issue.line}:${issue.column ?? 1}`;
  // Quoted user text is escaped where it is quoted; this catches anything left raw.
  return escapeText(`${where}: ${issue.path === "" ? "" : `${issue.path}: `}${issue.message}`);
}

/**
 * Parses and validates a VM definition given as TOML text. `file` names the
 * text in messages; relative paths inside resolve against its directory.
 *
 * Async only on the error path: positions of bad keys come from a parser
 * that is imported on demand.
 *
 * @throws {ConfigError} listing every problem found, each with line and column.
 */
export async function parseConfig(text: string, file: string): Promise<VmConfig> {
  // One byte order mark may open the file (editors write it); it is not part of line 1's columns.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.charCodeAt(0) === 0xfeff) {
    throw new ConfigError([{
      file,
      line: 1,
      column: 1,
      path: "",
      message: "invalid TOML: a second byte order mark (U+FEFF); a file may start with one at most",
    }]);
  }
  let doc: unknown;
  try {
    doc = parse(text, { integersAsBigInt: true });
  } catch (e) {
    throw new ConfigError([tomlIssue(text, file, e)]);
  }
  if (holdsDate(doc)) {
    // smol-toml lets Date roll February 30 over to March 2: refuse days no calendar has.
    const bad = impossibleDates(text);
    if (bad.length > 0) {
      throw new ConfigError(bad.map((d) => ({
        file,
        line: d.line,
        column: d.column,
        path: "",
        message: `invalid TOML: impossible date ${d.text}: ${d.why}`,
      })));
    }
  }
  const configPath = resolve(Deno.cwd(), file);
  const c = new Checker(dirname(configPath), true, configPath);
  const config = checkDocument(c, doc, file);
  if (c.findings.length > 0) throw new ConfigError(await locate(text, file, c.findings));
  return config;
}

/** The issue for a document smol-toml refused: its message's first line, and a redefinition named. */
function tomlIssue(text: string, file: string, e: unknown): ConfigIssue {
  if (!(e instanceof TomlError)) {
    return { file, path: "", message: `invalid TOML: ${errorText(e)}` };
  }
  let message = e.message.split("\n")[0].replace(/^Invalid TOML document: /, "");
  if (/redefine/.test(message)) message = redefinition(text, e.line) ?? message;
  return { file, line: e.line, column: e.column, path: "", message: `invalid TOML: ${message}` };
}

/** "[vm] is defined twice: first at line 1, column 1" for a redefinition refused at `line`. */
function redefinition(text: string, line: number): string | undefined {
  let found;
  try {
    found = findRedefinition(text, line);
  } catch {
    return undefined; // the plain message will do
  }
  if (found === undefined) return undefined;
  const { again, first } = found;
  const name = again.kind === "table"
    ? `table [${formatPath(again.path)}]`
    : again.kind === "array"
    ? `array of tables [[${formatPath(again.path)}]]`
    : `key ${formatPath(again.path)}`;
  const as = { key: "a key", table: "a table", array: "an array of tables" }[first.kind];
  const how = first.path.length !== again.path.length
    ? ` (by key ${formatPath(first.path)})`
    : first.kind !== again.kind
    ? ` (as ${as})`
    : "";
  return `${name} is already defined: first at line ${first.line}, column ${first.column}${how}`;
}

/** Whether a parsed document holds a date or time anywhere. */
function holdsDate(v: unknown): boolean {
  const stack = [v];
  while (stack.length > 0) {
    const x = stack.pop();
    if (x instanceof Date) return true;
    // One push per element: a spread of a huge array would overflow the stack.
    if (typeof x === "object" && x !== null) { for (const e of Object.values(x)) stack.push(e); }
  }
  return false;
}

/**
 * Reads a VM definition from `path` and validates it (see {@linkcode parseConfig}).
 * The file must be a regular file of at most {@linkcode MAX_CONFIG_SIZE}
 * bytes (a device or FIFO is refused before it is opened) holding UTF-8.
 *
 * @throws {ConfigError} when the file cannot be read or the definition is invalid.
 */
export async function loadConfig(path: string): Promise<VmConfig> {
  const bytes = await readConfigFile(path);
  let text: string;
  try {
    // Byte order marks are kept: parseConfig allows one and names a second.
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    const at = invalidUtf8Offset(bytes);
    const lineStart = at === 0 ? 0 : bytes.lastIndexOf(0x0a, at - 1) + 1;
    let line = 1;
    for (let i = 0; i < lineStart; i++) if (bytes[i] === 0x0a) line++;
    const column = new TextDecoder().decode(bytes.subarray(lineStart, at)).length + 1;
    throw new ConfigError([{
      file: path,
      line,
      column,
      path: "",
      message: `invalid UTF-8 at byte offset ${at} (a TOML file must be UTF-8)`,
    }]);
  }
  return await parseConfig(text, path);
}

/** The bytes of config file `path`: a regular file of at most MAX_CONFIG_SIZE bytes. */
async function readConfigFile(path: string): Promise<Uint8Array> {
  const fail = (message: string) => new ConfigError([{ file: path, path: "", message }]);
  const tooLarge = (size: string) =>
    fail(`config file is ${size}; the limit is ${formatSize(MAX_CONFIG_SIZE)}`);
  try {
    // Stat before opening: opening a FIFO blocks, and a device may never end.
    const st = await Deno.stat(path);
    if (!st.isFile) throw fail(`cannot read config file: not a regular file (${fileKind(st)})`);
    if (st.size > MAX_CONFIG_SIZE) throw tooLarge(`${st.size} bytes`);
    // Read one byte more than allowed, to see a file that grew since the stat.
    const bytes = readHead(path, MAX_CONFIG_SIZE + 1);
    if (bytes.length > MAX_CONFIG_SIZE) throw tooLarge(`over ${MAX_CONFIG_SIZE} bytes`);
    return bytes;
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw fail(`cannot read config file: ${errorText(e)}`);
  }
}

/** The offset of the first byte that does not begin a valid UTF-8 sequence (RFC 3629), or -1. */
function invalidUtf8Offset(b: Uint8Array): number {
  for (let i = 0; i < b.length;) {
    const lead = b[i];
    if (lead < 0x80) {
      i++;
      continue;
    }
    // Continuation bytes are 0x80-0xBF; the second byte's range excludes
    // overlong forms, UTF-16 surrogates and code points above U+10FFFF.
    let more: number, lo = 0x80, hi = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) more = 1;
    else if (lead >= 0xe0 && lead <= 0xef) {
      more = 2;
      if (lead === 0xe0) lo = 0xa0;
      if (lead === 0xed) hi = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      more = 3;
      if (lead === 0xf0) lo = 0x90;
      if (lead === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= more; k++) {
      const byte = b[i + k];
      if (byte === undefined || byte < (k === 1 ? lo : 0x80) || byte > (k === 1 ? hi : 0xbf)) {
        return i;
      }
    }
    i += more + 1;
  }
  return -1;
}

/**
 * Validates a VM definition built in code: a plain object shaped like the
 * parsed TOML (snake_case keys, sizes as strings or numbers). Issues carry no
 * positions. Relative paths resolve against the directory of `file`, or the
 * current directory for the default `"<object>"`.
 *
 * @throws {ConfigError} listing every problem found.
 */
export function configFromObject(obj: unknown, file: string = OBJECT_FILE): VmConfig {
  const configPath = file === OBJECT_FILE ? undefined : resolve(Deno.cwd(), file);
  const c = new Checker(
    configPath === undefined ? Deno.cwd() : dirname(configPath),
    false,
    configPath,
  );
  const config = checkDocument(c, obj, file);
  if (c.findings.length > 0) {
    throw new ConfigError(
      c.findings.map((f) => ({ file, path: formatPath(f.path), message: f.message })),
    );
  }
  return config;
}

/**
 * Renders the effective configuration, defaults included, one
 * `key.path=value` line per setting (like bhyve's config.dump). Sizes are
 * shown in bytes and in human form, ports and addresses in hex.
 */
export function formatConfig(config: VmConfig): string {
  const lines: string[] = [];
  const put = (key: string, value: string | number | boolean) => lines.push(`${key}=${value}`);
  const size = (n: number) => `${n} (${formatSize(n)})`;
  put("vm.name", shown(config.vm.name));
  put("vm.strict_io", config.vm.strictIo);
  put("vm.on_reset", config.vm.onReset);
  put("vm.clock_rate", config.vm.clockRate);
  put("vm.ioeventfd", config.vm.ioeventfd);
  put("vm.irqfd", config.vm.irqfd);
  put("memory.size", size(config.memory.size));
  put("memory.lowmem_limit", size(config.memory.lowmemLimit));
  const cpu = config.cpu;
  put("cpu.cpus", cpu.cpus);
  put("cpu.sockets", cpu.sockets);
  put("cpu.cores", cpu.cores);
  put("cpu.threads", cpu.threads);
  put("cpu.maxcpus", cpu.maxcpus);
  put("cpu.x2apic", cpu.x2apic);
  const boot = config.boot;
  put("boot.kind", boot.kind);
  if (boot.kind === "raw") {
    put("boot.image", shown(boot.image));
    put("boot.address", hex(boot.address));
    put("boot.entry", boot.entry);
    put("boot.entry_point", hex(boot.entryPoint));
  } else if (boot.kind === "linux") {
    put("boot.kernel", shown(boot.kernel));
    if (boot.initrd !== undefined) put("boot.initrd", shown(boot.initrd));
    put("boot.cmdline", shown(boot.cmdline));
  } else if (boot.kind === "multiboot") {
    put("boot.kernel", shown(boot.kernel));
    put("boot.cmdline", shown(boot.cmdline));
    boot.modules.forEach((m, i) => {
      put(`boot.modules[${i}].path`, shown(m.path));
      put(`boot.modules[${i}].cmdline`, shown(m.cmdline));
    });
  }
  for (const port of ["com1", "com2"] as const) {
    const backend = config.console[port];
    if (backend.kind === "file") put(`console.${port}.file`, shown(backend.path));
    else put(`console.${port}`, backend.kind);
  }
  put("firmware.acpi", config.firmware.acpi);
  put("firmware.mptable", config.firmware.mptable);
  put("rtc.use_localtime", config.rtc.useLocaltime);
  config.devices.forEach((d, i) => {
    put(`device[${i}].type`, d.type);
    put(`device[${i}].port`, hex(d.port));
    put(`device[${i}].size`, d.size);
  });
  config.pci.forEach((p, i) => {
    put(`pci[${i}].slot`, p.slot);
    put(`pci[${i}].function`, p.function);
    put(`pci[${i}].type`, p.type);
    if (p.type !== "testdev") {
      if (p.ioeventfd !== undefined) put(`pci[${i}].ioeventfd`, p.ioeventfd);
      if (p.irqfd !== undefined) put(`pci[${i}].irqfd`, p.irqfd);
    }
    if (p.type === "virtio-blk") {
      put(`pci[${i}].path`, shown(p.path));
      put(`pci[${i}].size`, size(p.size));
      put(`pci[${i}].readonly`, p.readonly);
      put(`pci[${i}].serial`, shown(p.serial));
      put(`pci[${i}].discard`, p.discard);
    } else if (p.type === "virtio-net") {
      put(`pci[${i}].tap`, shown(p.tap));
      put(`pci[${i}].mac`, p.mac);
    } else if (p.type === "virtio-console") {
      if (p.file !== undefined) put(`pci[${i}].file`, shown(p.file));
      if (p.socket !== undefined) put(`pci[${i}].socket`, shown(p.socket));
    }
  });
  return lines.join("\n") + "\n";
}

// ---------------------------------------------------------------------------
// Validation, section by section. Each function records findings on the
// Checker and returns a best-effort value; the caller throws if any finding
// was recorded, so fallback values never escape.

type Segment = string | number;
type Path = readonly Segment[];
type Table = Record<string, unknown>;

/** A finding before positions are known. */
interface Finding {
  readonly path: Path;
  readonly message: string;
  /** Point at the key itself (unknown keys) or at its value. */
  readonly at: "key" | "value";
}

function checkDocument(c: Checker, doc: unknown, file: string): VmConfig {
  const root = openTable(c, doc, [], TOP_LEVEL) ?? {};
  const vm = checkVm(c, root, file);
  const memory = checkMemory(c, root);
  const cpu = checkCpu(c, root);
  const boot = checkBoot(c, root, memory);
  const console = checkConsole(c, root, boot);
  const fw = openTable(c, get(root, "firmware"), ["firmware"], ["acpi", "mptable"]) ?? {};
  const firmware = {
    acpi: readBool(c, fw, ["firmware"], "acpi") ?? true,
    mptable: readBool(c, fw, ["firmware"], "mptable") ?? true,
  };
  const rtcTable = openTable(c, get(root, "rtc"), ["rtc"], ["use_localtime"]) ?? {};
  const rtc = { useLocaltime: readBool(c, rtcTable, ["rtc"], "use_localtime") ?? false };
  const devices = checkDevices(c, root, console);
  const pci = checkPci(c, root, vm.name, boot);
  return { file, baseDir: c.baseDir, vm, memory, cpu, boot, console, firmware, rtc, devices, pci };
}

function checkVm(c: Checker, root: Table, file: string): VmConfig["vm"] {
  const t = openTable(c, get(root, "vm"), ["vm"], [
    "name",
    "strict_io",
    "on_reset",
    "clock_rate",
    "ioeventfd",
  ]) ??
    {};
  let name = readString(c, t, ["vm"], "name");
  if (name !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(name)) {
    c.fail(
      ["vm", "name"],
      `invalid name ${quote(name)}: use 1-64 characters from A-Z a-z 0-9 . _ -`,
    );
  }
  name ??= defaultName(file);
  const onReset = has(t, "on_reset")
    ? readEnum(c, t, ["vm"], "on_reset", ["exit", "restart"] as const, "reset action") ?? "exit"
    : "exit";
  return {
    name,
    strictIo: readBool(c, t, ["vm"], "strict_io") ?? false,
    onReset,
    clockRate: readClockRate(c, t) ?? 1,
    ioeventfd: readBool(c, t, ["vm"], "ioeventfd") ?? true,
    irqfd: readBool(c, t, ["vm"], "irqfd") ?? true,
  };
}

/** The slowest clock rate: beyond it a guest's timeouts would outlast any use. */
export const MIN_CLOCK_RATE = 1 / 64;

/** `[vm] clock_rate`: a number in [1/64, 1] (an integer 1 or a float). */
function readClockRate(c: Checker, t: Table): number | undefined {
  const v = get(t, "clock_rate");
  if (v === undefined) return undefined;
  const p = ["vm", "clock_rate"];
  const n = typeof v === "bigint" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isFinite(n)) {
    c.fail(p, `expected a number between 1/64 and 1, got ${describe(v, c.toml)}`);
    return undefined;
  }
  if (n < MIN_CLOCK_RATE || n > 1) {
    c.fail(
      p,
      `${n} is out of range: the guest's clocks run at clock_rate seconds per second, ` +
        `from 0.015625 (1/64) to 1`,
    );
    return undefined;
  }
  return n;
}

function checkMemory(c: Checker, root: Table): VmConfig["memory"] {
  const t = openTable(c, get(root, "memory"), ["memory"], ["size", "lowmem_limit"]) ?? {};
  const size = readSize(c, t, ["memory"], "size") ?? DEFAULT_MEMORY;
  const lowmemLimit = readSize(c, t, ["memory"], "lowmem_limit") ?? DEFAULT_LOWMEM_LIMIT;
  if (c.ok(["memory", "size"])) {
    const p = ["memory", "size"];
    if (size < MIN_MEMORY) c.fail(p, `memory size must be at least ${formatSize(MIN_MEMORY)}`);
    else if (size > MAX_MEMORY) c.fail(p, `memory size must be at most ${formatSize(MAX_MEMORY)}`);
    else if (size % MEMORY_ALIGN !== 0) {
      c.fail(p, `memory size ${formatSize(size)} is not a multiple of ${formatSize(MEMORY_ALIGN)}`);
    }
  }
  if (c.ok(["memory", "lowmem_limit"])) {
    const p = ["memory", "lowmem_limit"];
    if (lowmemLimit < LOWMEM_LIMIT_ALIGN) {
      c.fail(p, `lowmem_limit must be at least ${formatSize(LOWMEM_LIMIT_ALIGN)}`);
    } else if (lowmemLimit > MAX_LOWMEM_LIMIT) {
      c.fail(
        p,
        `lowmem_limit must be at most ${formatSize(MAX_LOWMEM_LIMIT)} (${hex(MAX_LOWMEM_LIMIT)})`,
      );
    } else if (lowmemLimit % LOWMEM_LIMIT_ALIGN !== 0) {
      c.fail(
        p,
        `lowmem_limit ${hex(lowmemLimit)} is not a multiple of ${formatSize(LOWMEM_LIMIT_ALIGN)}`,
      );
    }
  }
  return { size, lowmemLimit };
}

/** bhyve's calc_topology: sockets default to cpus, cores and threads to 1. */
function checkCpu(c: Checker, root: Table): VmConfig["cpu"] {
  const keys = ["cpus", "sockets", "cores", "threads", "maxcpus"] as const;
  const t = openTable(c, get(root, "cpu"), ["cpu"], [...keys, "x2apic"]) ?? {};
  const given: Partial<Record<(typeof keys)[number], number>> = {};
  for (const key of keys) {
    const n = readInt(c, t, ["cpu"], key);
    if (n === undefined) continue;
    if (n < 1) c.fail(["cpu", key], `${key} must be at least 1`);
    else if (n > MAX_VCPUS) c.fail(["cpu", key], `${key} = ${n} exceeds the limit of ${MAX_VCPUS}`);
    else given[key] = n;
  }
  const x2apic = readBool(c, t, ["cpu"], "x2apic") ?? false;
  const cores = given.cores ?? 1;
  const threads = given.threads ?? 1;
  const sockets = given.sockets ?? given.cpus ?? 1;
  const product = sockets * cores * threads;
  const cpus = given.cpus ?? product;
  const maxcpus = given.maxcpus ?? cpus;
  const result = { cpus, sockets, cores, threads, maxcpus, x2apic };
  if (!c.ok(...keys.map((k) => ["cpu", k]))) return result;

  if (given.cpus !== undefined && product !== given.cpus) {
    const hint = given.sockets === undefined ? " (sockets defaults to cpus)" : "";
    c.fail(
      ["cpu", "cpus"],
      `topology ${sockets} sockets x ${cores} cores x ${threads} threads = ${product} vCPUs does not match cpus = ${given.cpus}${hint}`,
    );
    return result;
  }
  if (cpus > MAX_VCPUS) {
    c.fail(
      ["cpu"],
      `topology ${sockets} sockets x ${cores} cores x ${threads} threads = ${product} vCPUs exceeds the limit of ${MAX_VCPUS}`,
    );
    return result;
  }
  if (maxcpus < cpus) {
    c.fail(["cpu", "maxcpus"], `maxcpus = ${maxcpus} is less than cpus = ${cpus}`);
    return result;
  }
  const last = maxcpus - 1;
  const lastId = apicIdOf(last, result);
  if (lastId > MAX_XAPIC_ID && !x2apic) {
    const problem =
      `vCPU ${last} would have APIC ID ${lastId}, above the xAPIC limit of ${MAX_XAPIC_ID}`;
    c.fail(["cpu", "maxcpus"], `${problem}: this topology needs x2apic = true`);
  }
  return result;
}

function checkBoot(c: Checker, root: Table, memory: VmConfig["memory"]): BootConfig {
  const fallback: BootConfig = { kind: "probe" };
  const raw = get(root, "boot");
  if (raw === undefined) {
    if (c.ok([])) c.fail(["boot"], "missing required table [boot]"); // unless the whole document is bad
    return fallback;
  }
  const t = openTable(c, raw, ["boot"], ALL_BOOT_KEYS);
  if (t === undefined) return fallback;

  let kind: (typeof BOOT_KINDS)[number] | undefined;
  const kindText = readString(c, t, ["boot"], "kind");
  if (kindText !== undefined) {
    kind = BOOT_KINDS.find((k) => k === kindText);
    if (kind === undefined) {
      c.fail(
        ["boot", "kind"],
        `unknown boot kind ${quote(kindText)}; expected ${oneOf(BOOT_KINDS)}${
          suggest(kindText, BOOT_KINDS)
        }`,
      );
    }
  } else if (has(t, "kind")) {
    return fallback; // wrong type, already reported
  } else if (has(t, "kernel") && has(t, "image")) {
    c.fail(
      ["boot", "kind"],
      "missing `kind`, and it cannot be inferred: both `kernel` and `image` are given",
    );
  } else if (has(t, "initrd")) {
    kind = "linux"; // only Linux takes an initrd
  } else if (has(t, "modules")) {
    kind = "multiboot"; // only Multiboot takes modules
  } else if (has(t, "kernel")) {
    kind = inferKernelKind(c, t);
  } else if (has(t, "image")) {
    kind = "raw";
  } else {
    c.fail(["boot", "kind"], `missing required key \`kind\` (${oneOf(BOOT_KINDS)})`);
  }
  if (kind === undefined) return fallback;

  for (const key of Object.keys(t)) {
    if (ALL_BOOT_KEYS.includes(key) && !BOOT_KEYS[kind].includes(key)) {
      c.fail(["boot", key], `key \`${key}\` does not apply to boot kind "${kind}"`, "key");
    }
  }
  if (kind === "probe") return { kind };
  if (kind === "raw") return checkRawBoot(c, t, memory);
  if (kind === "linux") return checkLinuxBoot(c, t, memory);

  const kernel = readFile(c, t, ["boot"], "kernel", true);
  const cmdline = readCmdline(c, t, ["boot"], "cmdline");
  const modules = openTableArray(c, get(t, "modules"), ["boot", "modules"]).map(([m, i]) => {
    const p = ["boot", "modules", i];
    const mt = openTable(c, m, p, ["path", "cmdline"]);
    if (mt === undefined) return { path: "", size: 0, cmdline: "" }; // not a table, already reported
    const file = readFile(c, mt, p, "path", true);
    return {
      path: file?.path ?? "",
      size: file?.size ?? 0,
      cmdline: readCmdline(c, mt, p, "cmdline"),
    };
  });
  if (kernel !== undefined) checkMultiboot(c, kernel.path, cmdline, modules, memory);
  return {
    kind,
    kernel: kernel?.path ?? "",
    cmdline,
    modules: modules.map(({ path, cmdline }) => ({ path, cmdline })),
  };
}

/**
 * The kind of a `kernel` given without `kind`: "linux" for a bzImage or an
 * ELF with a PVH entry note and no Multiboot header, else "multiboot" (the
 * kind a lone `kernel` always meant; its checks report what is wrong).
 */
function inferKernelKind(c: Checker, t: Table): "linux" | "multiboot" {
  const given = get(t, "kernel");
  if (typeof given !== "string" || given === "") return "multiboot";
  const path = resolve(c.baseDir, given);
  try {
    // Stat first: opening a FIFO would block (readFile reports what it is).
    if (!Deno.statSync(path).isFile) return "multiboot";
    const head = readHead(path, LINUX_HEAD);
    if (findMultibootHeader(head) !== undefined) return "multiboot";
    if (isBzImage(head)) return "linux";
    if (isElf(head) && findPvhEntry(Deno.readFileSync(path), path) !== undefined) return "linux";
  } catch {
    // Unreadable or malformed: the multiboot checks say what is wrong.
  }
  return "multiboot";
}

/**
 * `kind = "linux"`: `kernel` (a bzImage or a PVH vmlinux), an optional
 * `initrd` and `cmdline`. Everything the loader would refuse is refused
 * here, before any VM exists: an unknown format, a setup header older than
 * 2.06, a command line over the kernel's limit, a kernel or initrd that does
 * not fit in the RAM below the lowmem end.
 */
function checkLinuxBoot(c: Checker, t: Table, memory: VmConfig["memory"]): BootConfig {
  const kernel = readFile(c, t, ["boot"], "kernel", true);
  const initrd = has(t, "initrd") ? readFile(c, t, ["boot"], "initrd", false) : undefined;
  const cmdline = readCmdline(c, t, ["boot"], "cmdline");
  if (kernel !== undefined && kernel.size === 0) {
    c.fail(["boot", "kernel"], `${showPath(kernel.path)} is empty`);
  }
  if (
    kernel !== undefined && kernel.size > 0 && c.ok(["boot", "cmdline"]) &&
    (!has(t, "initrd") || initrd !== undefined) &&
    c.ok(["memory", "size"], ["memory", "lowmem_limit"])
  ) {
    const { e820 } = computeLayout(memory.size, memory.lowmemLimit);
    try {
      // Only what the plan needs is read: a bzImage's setup, or an ELF's
      // headers and notes (never its segments: a vmlinux is tens of MiB).
      planLinuxFrom(fileSource(kernel.path), initrd?.size, cmdline, e820, {
        kernel: kernel.path,
        initrd: initrd?.path,
      });
    } catch (e) {
      if (e instanceof LinuxBootError) c.fail(["boot", e.key], e.message);
      else if (e instanceof InputFileError) c.fail(["boot", "kernel"], e.message);
      else c.fail(["boot", "kernel"], `cannot read ${showPath(kernel.path)}: ${errorText(e)}`);
    }
  }
  return {
    kind: "linux",
    kernel: kernel?.path ?? "",
    ...(initrd !== undefined ? { initrd: initrd.path } : {}),
    cmdline,
  };
}

/**
 * Everything the Multiboot loader would refuse, refused now (lib/boot/multiboot.ts
 * plans the boot without guest memory): no header, unsupported header
 * flags, bad a.out kludge addresses, a load outside guest RAM or into the
 * VGA hole, an entry point outside the image, modules (known by their
 * sizes, never read) or boot information that do not fit.
 */
function checkMultiboot(
  c: Checker,
  kernel: string,
  cmdline: string,
  modules: readonly { path: string; size: number; cmdline: string }[],
  memory: VmConfig["memory"],
): void {
  const moduleKeys = modules.map((_, i) => ["boot", "modules", i, "path"]);
  if (
    !c.ok(["boot", "cmdline"], ["boot", "modules"], ...moduleKeys) ||
    modules.some((m) => m.path === "") || !c.ok(["memory", "size"], ["memory", "lowmem_limit"])
  ) {
    // Check the kernel alone: the rest cannot be placed.
    modules = [];
  }
  const { e820 } = computeLayout(memory.size, memory.lowmemLimit);
  try {
    planMultiboot(
      fileSource(kernel),
      cmdline,
      modules.map((m) => ({ name: m.path, size: m.size, cmdline: m.cmdline })),
      e820,
    );
  } catch (e) {
    if (e instanceof MultibootError) {
      const key = e.key === "kernel"
        ? ["boot", "kernel"]
        : ["boot", "modules", Number(/\d+/.exec(e.key)![0]), "path"];
      c.fail(key, e.message);
    } else c.fail(["boot", "kernel"], errorText(e));
  }
}

function checkRawBoot(c: Checker, t: Table, memory: VmConfig["memory"]): BootConfig {
  const image = readFile(c, t, ["boot"], "image", true);
  const address = readInt(c, t, ["boot"], "address");
  if (address === undefined && !has(t, "address")) {
    c.fail(["boot", "address"], "missing required key `address` (the guest-physical load address)");
  } else if (address !== undefined && address < 0) {
    c.fail(["boot", "address"], "address must not be negative");
  }
  const entryText = readString(c, t, ["boot"], "entry");
  const entry = ENTRY_MODES.find((m) => m === entryText);
  if (entryText === undefined && !has(t, "entry")) {
    c.fail(["boot", "entry"], `missing required key \`entry\` (${oneOf(ENTRY_MODES)})`);
  } else if (entryText !== undefined && entry === undefined) {
    c.fail(
      ["boot", "entry"],
      `unknown entry mode ${quote(entryText)}; expected ${oneOf(ENTRY_MODES)}${
        suggest(entryText, ENTRY_MODES)
      }`,
    );
  }
  const entryPoint = readInt(c, t, ["boot"], "entry_point") ?? address ?? 0;

  if (image !== undefined && image.size === 0) {
    c.fail(["boot", "image"], `${showPath(image.path)} is empty`);
  }
  if (image !== undefined && image.size > 0 && address !== undefined && c.ok(["boot", "address"])) {
    const end = address + image.size;
    if (c.ok(["boot", "entry_point"]) && (entryPoint < address || entryPoint >= end)) {
      c.fail(
        ["boot", "entry_point"],
        `entry point ${hex(entryPoint)} is outside the image [${hex(address)}, ${hex(end)})`,
      );
    }
    if (c.ok(["memory", "size"], ["memory", "lowmem_limit"])) {
      // The loader only ever loads into what the e820 map calls RAM (the
      // firmware area 0xC0000-0xFFFFF is backed but reserved): check the same.
      const { e820 } = computeLayout(memory.size, memory.lowmemLimit);
      if (!inE820Ram(e820, address, end - address)) {
        const ram = e820.filter((e) => e.type === E820.RAM);
        const ranges = ram.map((r) => `[${hex(r.addr)}, ${hex(r.addr + r.size)})`).join(", ");
        const span = `[${hex(address)}, ${hex(end)})`;
        c.fail(
          ["boot", "address"],
          `image ${span} does not fit in one guest RAM range (RAM: ${ranges})`,
        );
      }
    }
    if (entry !== undefined && c.ok(["boot", "address"], ["boot", "entry_point"])) {
      checkEntryReach(c, entry, address, end, entryPoint, has(t, "entry_point"));
    }
  }
  return {
    kind: "raw",
    image: image?.path ?? "",
    address: address ?? 0,
    entry: entry ?? "prot32",
    entryPoint,
  };
}

/**
 * What the entry mode can reach (the loader, lib/boot/raw.ts and entry.ts,
 * checks the same again): real mode enters below 1 MiB; prot32 and long64
 * see only the first 4 GiB (32-bit addresses; long64's identity map) and
 * get the zero page at ZERO_PAGE, which the image must leave alone.
 */
function checkEntryReach(
  c: Checker,
  entry: EntryMode,
  address: number,
  end: number,
  entryPoint: number,
  entryPointGiven: boolean,
): void {
  const span = `[${hex(address)}, ${hex(end)})`;
  if (entry === "real16") {
    if (entryPoint >= MiB) {
      c.fail(
        ["boot", entryPointGiven ? "entry_point" : "address"],
        `real-mode entry point ${hex(entryPoint)} is not below 1 MiB (${
          hex(MiB)
        }), the most "real16" can reach`,
      );
    }
    return;
  }
  if (end > FOUR_GIB) {
    const why = entry === "prot32"
      ? `"prot32" enters with paging off and 32-bit addresses`
      : `"long64" identity-maps only the first 4 GiB`;
    c.fail(["boot", "address"], `image ${span} lies above 4 GiB, out of reach: ${why}`);
    return;
  }
  const zeroEnd = ZERO_PAGE + BOOT_PARAMS.size;
  if (address < zeroEnd && end > ZERO_PAGE) {
    c.fail(
      ["boot", "address"],
      `image ${span} overlaps the zero page [${hex(ZERO_PAGE)}, ${
        hex(zeroEnd)
      }) that "${entry}" entry writes; load it at ${hex(zeroEnd)} or above`,
    );
  }
}

function checkConsole(c: Checker, root: Table, boot: BootConfig): VmConfig["console"] {
  const t = openTable(c, get(root, "console"), ["console"], ["com1", "com2"]) ?? {};
  const read = (port: "com1" | "com2", fallback: ConsoleBackend): ConsoleBackend => {
    const p = ["console", port];
    const v = get(t, port);
    if (v === undefined) return fallback;
    if (v === "stdio" || v === "none") return { kind: v };
    const expected = `expected "stdio", "none" or { file = "path" }`;
    if (typeof v === "string") {
      c.fail(
        p,
        `unknown console ${quote(v)}; ${expected}${suggest(v, ["stdio", "none"])}`,
      );
      return fallback;
    }
    if (!isTable(v)) {
      c.fail(p, `${expected}, got ${describe(v, c.toml)}`);
      return fallback;
    }
    const ft = openTable(c, v, p, ["file"]) ?? {};
    const file = readString(c, ft, p, "file");
    if (file === undefined) {
      if (!has(ft, "file")) c.fail([...p, "file"], "missing required key `file`");
      return fallback;
    }
    if (file === "") {
      c.fail([...p, "file"], "path must not be empty");
      return fallback;
    }
    const path = resolve(c.baseDir, file);
    const name = fileName(file, path);
    const problem = consoleFileProblem(path, name) ?? inputClash(c, path, name, boot);
    if (problem !== undefined) c.fail([...p, "file"], problem);
    return { kind: "file", path };
  };
  const com1 = read("com1", { kind: "stdio" });
  const com2 = read("com2", { kind: "none" });
  if (com1.kind === "stdio" && com2.kind === "stdio") {
    const note = has(t, "com1") ? "" : ` (com1 defaults to "stdio"; set com1 = "none" or a file)`;
    c.fail(["console", "com2"], `com1 and com2 cannot both use "stdio"${note}`);
  }
  // Each port opens its file with O_TRUNC and writes at its own offset: two
  // ports on one file would overwrite each other's output.
  if (
    com1.kind === "file" && com2.kind === "file" && c.ok(["console", "com2", "file"]) &&
    sameFile(com1.path, com2.path)
  ) {
    c.fail(["console", "com2", "file"], `com1 already writes to ${showPath(com1.path)}`);
  }
  return { com1, com2 };
}

/**
 * Why console output `path` (shown as `name`) would destroy an input of the
 * VM, or undefined: the console truncates its file when the VM is created,
 * so it may not be the config file, the boot image, the kernel or a module.
 */
function inputClash(c: Checker, path: string, name: string, boot: BootConfig): string | undefined {
  const inputs = bootInputs(boot);
  if (c.configPath !== undefined) {
    inputs.unshift({ path: c.configPath, what: "the config file itself" });
  }
  const clash = inputs.find((i) => i.path !== "" && sameFile(path, i.path));
  return clash && `${name} is ${clash.what}; the console would truncate it`;
}

/** The files a boot payload reads (absolute paths), each with what it is and its key. */
export function bootInputs(boot: BootConfig): { path: string; what: string }[] {
  if (boot.kind === "raw") return [{ path: boot.image, what: "the boot image (boot.image)" }];
  if (boot.kind === "linux") {
    return [
      { path: boot.kernel, what: "the kernel (boot.kernel)" },
      ...(boot.initrd !== undefined
        ? [{ path: boot.initrd, what: "the initrd (boot.initrd)" }]
        : []),
    ];
  }
  if (boot.kind !== "multiboot") return [];
  return [
    { path: boot.kernel, what: "the kernel (boot.kernel)" },
    ...boot.modules.map((m, i) => ({ path: m.path, what: `a module (boot.modules[${i}].path)` })),
  ];
}

function checkDevices(c: Checker, root: Table, console: VmConfig["console"]): DeviceConfig[] {
  // A COM port set to "none" does not exist, and neither do its ports.
  const present = { com1: console.com1.kind !== "none", com2: console.com2.kind !== "none" };
  const devices: { config: DeviceConfig; index: number; valid: boolean }[] = [];
  for (const [raw, i] of openTableArray(c, get(root, "device"), ["device"])) {
    const p = ["device", i];
    const t = openTable(c, raw, p, ["type", "port", "size"]);
    if (t === undefined) continue; // not a table, already reported
    const type = readEnum(c, t, p, "type", DEVICE_TYPES, "device type") ?? "debug-exit";
    const port = readInt(c, t, p, "port") ?? 0xf4;
    if (c.ok([...p, "port"]) && (port < 0 || port > 0xffff)) {
      c.fail([...p, "port"], `port must be between 0x0 and 0xffff, got ${hex(port)}`);
    }
    const size = readInt(c, t, p, "size") ?? 4;
    if (c.ok([...p, "size"]) && size !== 1 && size !== 2 && size !== 4) {
      c.fail([...p, "size"], `size must be 1, 2 or 4, got ${size}`);
    }
    const valid = c.ok([...p, "port"], [...p, "size"]);
    devices.push({ config: { type, port, size: size as 1 | 2 | 4 }, index: i, valid });
  }
  const placed: { config: DeviceConfig; index: number }[] = [];
  for (const d of devices.filter((d) => d.valid)) {
    const { port, size } = d.config;
    const p = ["device", d.index, "port"];
    const range = portRange(port, size);
    const fixed = fixedPortConflict(port, size, present);
    const other = placed.find((o) =>
      port < o.config.port + o.config.size && o.config.port < port + size
    );
    if (port + size > 0x10000) c.fail(p, `ports ${range} run past 0xffff`);
    else if (fixed) {
      const theirs = portRange(fixed.base, fixed.length);
      c.fail(p, `ports ${range} overlap the platform's ${fixed.name} ports ${theirs}`);
    } else if (other) {
      const o = other.config;
      c.fail(
        p,
        `ports ${range} overlap device[${other.index}] (${o.type} at ${portRange(o.port, o.size)})`,
      );
    } else placed.push(d);
  }
  return devices.map((d) => d.config);
}

function checkPci(c: Checker, root: Table, vmName: string, boot: BootConfig): PciConfig[] {
  const entries: { config: PciConfig; index: number; valid: boolean }[] = [];
  for (const [raw, i] of openTableArray(c, get(root, "pci"), ["pci"])) {
    const p = ["pci", i];
    const type0 = isTable(raw) ? get(raw, "type") : undefined;
    const extra = typeof type0 === "string" ? PCI_TYPE_KEYS[type0] ?? [] : [];
    const t = openTable(c, raw, p, ["slot", "function", "type", ...extra]);
    if (t === undefined) continue; // not a table, already reported
    const slot = readInt(c, t, p, "slot");
    if (slot === undefined && !has(t, "slot")) {
      c.fail([...p, "slot"], "missing required key `slot` (1..30)");
    } else if (slot === 0) {
      c.fail([...p, "slot"], "slot 0 is the host bridge; use a slot from 1 to 30");
    } else if (slot === 31) {
      c.fail([...p, "slot"], "slot 31 is the LPC bridge; use a slot from 1 to 30");
    } else if (slot !== undefined && (slot < 1 || slot > 30)) {
      c.fail([...p, "slot"], `slot must be between 1 and 30, got ${slot}`);
    }
    const fn = readInt(c, t, p, "function") ?? 0;
    if (c.ok([...p, "function"]) && (fn < 0 || fn > 7)) {
      c.fail([...p, "function"], `function must be between 0 and 7, got ${fn}`);
    }
    const type = readEnum(c, t, p, "type", PCI_TYPES, "pci device type") ?? "testdev";
    const valid = slot !== undefined && c.ok([...p, "slot"], [...p, "function"]);
    const config = pciDevice(c, t, p, { slot: slot ?? 0, function: fn }, type, vmName, boot);
    entries.push({ config, index: i, valid });
  }
  checkVirtioClashes(c, entries.map((e) => e.config));
  const valid = entries.filter((e) => e.valid);
  let placed = valid.length === entries.length;
  for (const [k, e] of valid.entries()) {
    const { slot, function: fn } = e.config;
    const dup = valid.slice(0, k).find((o) => o.config.slot === slot && o.config.function === fn);
    if (dup) {
      placed = false;
      c.fail(
        ["pci", e.index, "slot"],
        `slot ${slot} function ${fn} is already used by pci[${dup.index}]`,
      );
    } else if (fn > 0 && !valid.some((o) => o.config.slot === slot && o.config.function === 0)) {
      placed = false;
      c.fail(
        ["pci", e.index, "function"],
        `function ${fn} in slot ${slot} needs function 0 in the same slot`,
      );
    }
  }
  const pci = entries.map((e) => e.config).sort((a, b) =>
    a.slot - b.slot || a.function - b.function
  );
  if (placed) checkIntxLoad(c, pci);
  return pci;
}

/** The keys each `[[pci]]` type takes beyond slot, function and type. */
const PCI_TYPE_KEYS: Readonly<Record<string, readonly string[]>> = {
  "virtio-blk": ["path", "readonly", "serial", "discard", "ioeventfd", "irqfd"],
  "virtio-net": ["tap", "mac", "ioeventfd", "irqfd"],
  "virtio-console": ["file", "socket", "ioeventfd", "irqfd"],
  "virtio-rng": ["ioeventfd", "irqfd"],
};

/** The longest virtio-blk serial (VIRTIO_BLK_ID_BYTES, virtio 1.2 §5.2.6). */
export const MAX_BLK_SERIAL = 20;

/** The type-specific part of a `[[pci]]` entry. */
function pciDevice(
  c: Checker,
  t: Table,
  p: Path,
  place: PciPlace,
  type: (typeof PCI_TYPES)[number],
  vmName: string,
  boot: BootConfig,
): PciConfig {
  if (type === "testdev") return { ...place, type };
  const tuning: { ioeventfd?: boolean; irqfd?: boolean } = {};
  for (const key of ["ioeventfd", "irqfd"] as const) {
    const v = readBool(c, t, p, key);
    if (v !== undefined) tuning[key] = v;
  }
  return { ...virtioDevice(c, t, p, place, type, vmName, boot), ...tuning };
}

/** The type-specific part of a virtio `[[pci]]` entry. */
function virtioDevice(
  c: Checker,
  t: Table,
  p: Path,
  place: PciPlace,
  type: Exclude<(typeof PCI_TYPES)[number], "testdev">,
  vmName: string,
  boot: BootConfig,
): PciConfig {
  switch (type) {
    case "virtio-rng":
      return { ...place, type };
    case "virtio-blk": {
      const readonly = readBool(c, t, p, "readonly") ?? false;
      const disk = readDisk(c, t, p, readonly, boot);
      const serial = readString(c, t, p, "serial") ??
        `dhyve-${place.slot}.${place.function}`;
      if (!/^[\x20-\x7e]*$/.test(serial) || serial.length > MAX_BLK_SERIAL) {
        c.fail(
          [...p, "serial"],
          `serial ${quote(serial)} must be at most ${MAX_BLK_SERIAL} printable ASCII characters`,
        );
      }
      return {
        ...place,
        type,
        path: disk?.path ?? "",
        size: disk?.size ?? 0,
        readonly,
        serial,
        discard: readBool(c, t, p, "discard") ?? true,
      };
    }
    case "virtio-net": {
      const tap = readString(c, t, p, "tap");
      if (tap === undefined) {
        if (!has(t, "tap")) c.fail([...p, "tap"], "missing required key `tap` (a host tap device)");
      } else if (!/^[A-Za-z0-9_.-]{1,15}$/.test(tap) || tap === "." || tap === "..") {
        c.fail(
          [...p, "tap"],
          `invalid tap name ${quote(tap)}: use 1-15 characters from A-Z a-z 0-9 . _ -`,
        );
      }
      const given = readString(c, t, p, "mac");
      let mac = given ?? defaultMac(`${vmName}/${place.slot}.${place.function}`);
      if (given !== undefined) {
        const m = /^([0-9a-fA-F]{2})(:[0-9a-fA-F]{2}){5}$/.test(given);
        const first = parseInt(given.slice(0, 2), 16);
        if (!m) {
          c.fail([...p, "mac"], `invalid MAC address ${quote(given)}: expected xx:xx:xx:xx:xx:xx`);
        } else if (first & 1) {
          c.fail([...p, "mac"], `${given} is a multicast address; a NIC needs a unicast one`);
        } else if (/^(00:){5}00$/.test(given)) {
          c.fail([...p, "mac"], "00:00:00:00:00:00 is not a usable MAC address");
        }
        mac = given.toLowerCase();
      }
      return { ...place, type, tap: tap ?? "", mac };
    }
    case "virtio-console": {
      const file = readString(c, t, p, "file");
      const socket = readString(c, t, p, "socket");
      if ((file === undefined) === (socket === undefined)) {
        c.fail(p, "a virtio-console needs exactly one of `file` (output) or `socket` (both ways)");
        return { ...place, type };
      }
      if (file !== undefined) {
        if (file === "") {
          c.fail([...p, "file"], "path must not be empty");
          return { ...place, type };
        }
        const path = resolve(c.baseDir, file);
        const name = fileName(file, path);
        const problem = consoleFileProblem(path, name) ?? inputClash(c, path, name, boot);
        if (problem !== undefined) c.fail([...p, "file"], problem);
        return { ...place, type, file: path };
      }
      const path = resolve(c.baseDir, socket!);
      const name = fileName(socket!, path);
      const problem = socketProblem(path, name);
      if (problem !== undefined) c.fail([...p, "socket"], problem);
      return { ...place, type, socket: path };
    }
  }
}

/** `path` of a virtio-blk entry: a regular file of whole 512-byte sectors, readable (and writable). */
function readDisk(
  c: Checker,
  t: Table,
  p: Path,
  readonly: boolean,
  boot: BootConfig,
): { path: string; size: number } | undefined {
  const disk = readFile(c, t, p, "path", true);
  if (!disk) return undefined;
  const at = [...p, "path"];
  const given = readString(c, t, p, "path") ?? disk.path;
  const name = fileName(given, disk.path);
  if (disk.size === 0 || disk.size % 512 !== 0) {
    c.fail(
      at,
      `${name} holds ${disk.size} bytes; a disk image must be a non-empty whole number of 512-byte sectors`,
    );
  }
  const clash = bootInputs(boot).find((b) => sameFile(b.path, disk.path));
  if (clash) c.fail(at, `${name} is the ${clash.what}; a disk image must be a file of its own`);
  if (!readonly) {
    try {
      Deno.openSync(disk.path, { read: true, write: true }).close();
    } catch (e) {
      c.fail(
        at,
        `cannot write ${name}: ${errorText(e)} (set readonly = true to attach it read-only)`,
      );
    }
  }
  return disk;
}

/** Why dhyve cannot listen on a unix socket at `path`, or undefined. */
function socketProblem(path: string, name: string): string | undefined {
  if (new TextEncoder().encode(path).length >= 108) {
    return `${name} is too long for a unix socket path (at most 107 bytes)`;
  }
  try {
    const st = Deno.lstatSync(path);
    if (!st.isSocket) return `${name} exists and is not a socket; dhyve will not replace it`;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) return `cannot use ${name}: ${errorText(e)}`;
    try {
      if (!Deno.statSync(dirname(path)).isDirectory) {
        return `the directory of ${name} is not a directory`;
      }
    } catch {
      return `the directory of ${name} does not exist`;
    }
  }
  return undefined;
}

/**
 * A stable, locally administered MAC for a NIC: 52:54:00 (the prefix QEMU
 * and libvirt use for virtual NICs) and three bytes of an FNV-1a hash of
 * `key` (the VM's name and the function's place), so a VM keeps its address.
 */
export function defaultMac(key: string): string {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(key)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  const bytes = [0x52, 0x54, 0x00, h >>> 16 & 0xff, h >>> 8 & 0xff, h & 0xff];
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** Two disks on one image (one of them writable), or two NICs on one tap or with one MAC. */
function checkVirtioClashes(c: Checker, pci: readonly PciConfig[]): void {
  pci.forEach((a, i) => {
    for (let j = 0; j < i; j++) {
      const b = pci[j];
      const at = ["pci", i];
      if (a.type === "virtio-blk" && b.type === "virtio-blk" && a.path && b.path) {
        if ((!a.readonly || !b.readonly) && sameFile(a.path, b.path)) {
          c.fail(
            [...at, "path"],
            `pci[${j}] uses the same image; only read-only disks may share one`,
          );
        }
      }
      if (a.type === "virtio-net" && b.type === "virtio-net") {
        if (a.tap && a.tap === b.tap) c.fail([...at, "tap"], `pci[${j}] uses tap ${a.tap} already`);
        if (a.mac === b.mac) c.fail([...at, "mac"], `pci[${j}] has MAC ${a.mac} already`);
      }
      if (a.type === "virtio-console" && b.type === "virtio-console") {
        if (a.socket && a.socket === b.socket) {
          c.fail([...at, "socket"], `pci[${j}] listens on this socket already`);
        }
        if (a.file && b.file && sameFile(a.file, b.file)) {
          c.fail([...at, "file"], `pci[${j}] writes to this file already`);
        }
      }
    }
  });
}

/**
 * Every function's INTx drives an IOAPIC pin, and a pin takes at most
 * MAX_PIN_SOURCES sources (lib/irq.ts): route the functions as the machine
 * will (lib/pci_routing.ts) and count the functions on each pin.
 */
function checkIntxLoad(c: Checker, pci: readonly PciConfig[]): void {
  if (pci.length <= MAX_PIN_SOURCES) return; // no pin can be over the limit
  const perPin = new Map<number, number>();
  for (const r of routeIntx(pci, ISA_RESERVED_IRQS).routes) {
    perPin.set(r.ioapicPin, (perPin.get(r.ioapicPin) ?? 0) + 1);
  }
  const [pin, count] = [...perPin].reduce((a, b) => (b[1] > a[1] ? b : a));
  if (count > MAX_PIN_SOURCES) {
    const pins = `${PCI_IOAPIC_PINS[0]}-${PCI_IOAPIC_PINS[PCI_IOAPIC_PINS.length - 1]}`;
    c.fail(
      ["pci"],
      `${pci.length} functions are too many for the PCI interrupt pins: IOAPIC pin ${pin} would carry the INTx of ${count} functions, and a pin takes at most ${MAX_PIN_SOURCES} (INTx is spread over pins ${pins} by slot and pin INTA-INTD)`,
    );
  }
}

// ---------------------------------------------------------------------------
// Readers. Each returns undefined when the key is absent or its value is
// invalid (after recording a finding); `c.ok(path)` tells the two apart.

/** An own property of a table (never one inherited from Object.prototype). */
function get(t: Table, key: string): unknown {
  return Object.hasOwn(t, key) ? t[key] : undefined;
}

function has(t: Table, key: string): boolean {
  return Object.hasOwn(t, key) && t[key] !== undefined;
}

function isTable(v: unknown): v is Table {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function isTableArray(v: unknown): boolean {
  return Array.isArray(v) && v.length > 0 && v.every(isTable);
}

/**
 * Checks that `v` (if present) is a table with only `known` keys. Returns the
 * table, `{}` when absent, or undefined when it is not a table.
 */
function openTable(
  c: Checker,
  v: unknown,
  path: Path,
  known: readonly string[],
): Table | undefined {
  if (v === undefined) return {};
  if (!isTable(v)) {
    c.fail(path, `expected a table, got ${describe(v, c.toml)}`);
    return undefined;
  }
  for (const key of Object.keys(v)) {
    if (known.includes(key)) continue;
    c.fail([...path, key], `${unknownKey(path, key, v[key])}${suggest(key, known)}`, "key");
  }
  return v;
}

/** "unknown table [foo]", "unknown key `foo` in [memory]", "... in device[0]". */
function unknownKey(path: Path, key: string, value: unknown): string {
  if (path.length === 0) {
    if (isTable(value)) return `unknown table [${formatPath([key])}]`;
    if (isTableArray(value)) return `unknown table [[${formatPath([key])}]]`;
    return `unknown key ${showKey(key)} at top level`;
  }
  const inArray = typeof path[path.length - 1] === "number";
  return `unknown key ${showKey(key)} in ${inArray ? formatPath(path) : `[${formatPath(path)}]`}`;
}

/** A key in backticks when bare, else quoted and escaped. */
function showKey(key: string): string {
  return /^[A-Za-z0-9_-]{1,80}$/.test(key) ? `\`${key}\`` : quote(key);
}

/** The elements of an array of tables, each with its index; [] when absent or not an array. */
function openTableArray(c: Checker, v: unknown, path: Path): [unknown, number][] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    c.fail(path, `expected an array of tables, got ${describe(v, c.toml)}`);
    return [];
  }
  return v.map((e, i) => [e, i]);
}

function readBool(c: Checker, t: Table, path: Path, key: string): boolean | undefined {
  const v = get(t, key);
  if (v === undefined || typeof v === "boolean") return v;
  c.fail([...path, key], `expected a boolean, got ${describe(v, c.toml)}`);
  return undefined;
}

function readString(c: Checker, t: Table, path: Path, key: string): string | undefined {
  const v = get(t, key);
  if (v === undefined || typeof v === "string") return v;
  c.fail([...path, key], `expected a string, got ${describe(v, c.toml)}`);
  return undefined;
}

/** TOML integers arrive as bigint; plain objects may use integral numbers. */
function toInt(c: Checker, v: unknown, p: Path): number | undefined {
  if (typeof v === "bigint" || (typeof v === "number" && !c.toml && Number.isInteger(v))) {
    const n = Number(v);
    if (Number.isSafeInteger(n) && BigInt(n) === BigInt(v)) return n;
    c.fail(p, `integer ${v} is out of range`);
    return undefined;
  }
  c.fail(p, `expected an integer, got ${describe(v, c.toml)}`);
  return undefined;
}

function readInt(c: Checker, t: Table, path: Path, key: string): number | undefined {
  const v = get(t, key);
  return v === undefined ? undefined : toInt(c, v, [...path, key]);
}

/** A size: a string for {@linkcode parseSize} or an integer byte count. */
function readSize(c: Checker, t: Table, path: Path, key: string): number | undefined {
  const v = get(t, key);
  const p = [...path, key];
  if (v === undefined) return undefined;
  if (
    typeof v !== "string" && typeof v !== "bigint" &&
    !(typeof v === "number" && !c.toml && Number.isInteger(v))
  ) {
    c.fail(
      p,
      `expected a size (a string like "256M" or an integer byte count), got ${describe(v, c.toml)}`,
    );
    return undefined;
  }
  const n = typeof v === "string" ? v : toInt(c, v, p);
  if (n === undefined) return undefined;
  try {
    return parseSize(n);
  } catch (e) {
    c.fail(p, errorText(e));
    return undefined;
  }
}

function readEnum<T extends string>(
  c: Checker,
  t: Table,
  path: Path,
  key: string,
  values: readonly T[],
  what: string,
): T | undefined {
  const p = [...path, key];
  if (!has(t, key)) {
    c.fail(p, `missing required key \`${key}\` (${oneOf(values)})`);
    return undefined;
  }
  const s = readString(c, t, path, key);
  if (s === undefined) return undefined;
  const found = values.find((v) => v === s);
  if (found === undefined) {
    c.fail(p, `unknown ${what} ${quote(s)}; known: ${oneOf(values)}${suggest(s, values)}`);
  }
  return found;
}

function readCmdline(c: Checker, t: Table, path: Path, key: string): string {
  const s = readString(c, t, path, key) ?? "";
  const bytes = new TextEncoder().encode(s).length;
  if (s.includes("\0")) {
    // The guest gets a NUL-terminated string: it would end at the first NUL.
    c.fail([...path, key], "command line must not contain a NUL character (\\u0000)");
  } else if (bytes > MAX_CMDLINE) {
    c.fail([...path, key], `command line is ${bytes} bytes; the limit is ${MAX_CMDLINE}`);
  }
  return s;
}

/** A path to an existing, readable regular file, resolved against baseDir. */
function readFile(
  c: Checker,
  t: Table,
  path: Path,
  key: string,
  required: boolean,
): { path: string; size: number } | undefined {
  const p = [...path, key];
  const given = readString(c, t, path, key);
  if (given === undefined) {
    if (required && !has(t, key)) c.fail(p, `missing required key \`${key}\``);
    return undefined;
  }
  if (given === "") {
    c.fail(p, "path must not be empty");
    return undefined;
  }
  const abs = resolve(c.baseDir, given);
  const name = fileName(given, abs);
  try {
    const st = Deno.statSync(abs);
    if (!st.isFile) {
      c.fail(p, `${name} is ${fileKind(st)}, not a regular file`);
      return undefined;
    }
    Deno.openSync(abs, { read: true }).close();
    return { path: abs, size: st.size };
  } catch (e) {
    c.fail(p, `cannot read ${name}: ${errorText(e)}`);
    return undefined;
  }
}

/** Up to `length` bytes from the start of file `path`. */
function readHead(path: string, length: number): Uint8Array {
  using f = Deno.openSync(path, { read: true });
  const buf = new Uint8Array(length);
  let n = 0;
  while (n < length) {
    const got = f.readSync(buf.subarray(n));
    if (got === null) break;
    n += got;
  }
  return buf.subarray(0, n);
}

/**
 * Whether two absolute paths name one regular file, where a write through
 * one would destroy what the other holds: the same inode (links, symlinks
 * included), or the same path of a file not created yet. Devices, FIFOs and
 * terminals are never "the same file" (two writers to one terminal or pipe
 * harm nothing).
 */
export function sameFile(a: string, b: string): boolean {
  let x: Deno.FileInfo, y: Deno.FileInfo;
  try {
    x = Deno.statSync(a);
    y = Deno.statSync(b);
  } catch {
    return a === b; // one of them does not exist (yet)
  }
  return x.isFile && y.isFile && x.ino !== null && x.dev === y.dev && x.ino === y.ino;
}

// ---------------------------------------------------------------------------
// Small helpers

/** What a value is, for "expected X, got Y" messages. */
function describe(v: unknown, toml: boolean): string {
  if (typeof v === "string") return "a string";
  if (typeof v === "bigint") return "an integer";
  // smol-toml gives integers as bigint, so a TOML number is always a float.
  if (typeof v === "number") return !toml && Number.isInteger(v) ? "an integer" : "a float";
  if (typeof v === "boolean") return "a boolean";
  if (Array.isArray(v)) return "an array";
  if (v instanceof Date) return "a date-time";
  if (v === null) return "null";
  if (v === undefined) return "nothing";
  return typeof v === "object" ? "a table" : `a ${typeof v}`;
}

/**
 * `did you mean "x"?` for the closest candidate within edit distance 2,
 * ignoring case (so "Probe" and "PROBE" suggest "probe"), else "".
 */
function suggest(word: string, candidates: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best === undefined ? "" : `; did you mean "${best}"?`;
}

/** Levenshtein distance. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}

function oneOf(values: readonly string[]): string {
  const quoted = values.map((v) => JSON.stringify(v));
  return quoted.length === 1
    ? quoted[0]
    : `${quoted.slice(0, -1).join(", ")} or ${quoted[quoted.length - 1]}`;
}

/**
 * An exact key for a path (maps and sets): unlike {@linkcode formatPath},
 * never cut, and built one segment at a time by {@linkcode segmentKey}.
 */
function pathKey(path: Path): string {
  let out = "";
  for (const seg of path) out += segmentKey(seg);
  return out;
}

function segmentKey(seg: Segment): string {
  return typeof seg === "number" ? `[${seg}]` : `.${JSON.stringify(seg)}`;
}

/** `cpu.cores`, `boot.modules[1].path`, `vm."odd key"`, for messages (odd keys escaped and cut). */
function formatPath(path: Path): string {
  let out = "";
  for (const [i, seg] of path.entries()) {
    if (out.length > MAX_SHOWN_PATH) return `${out}… (${path.length} keys)`;
    if (typeof seg === "number") out += `[${seg}]`;
    else {
      const name = /^[A-Za-z0-9_-]{1,80}$/.test(seg) ? seg : quote(seg);
      out += i === 0 ? name : `.${name}`;
    }
  }
  return out;
}

/** How long a key path in a message may grow before the rest is left out. */
const MAX_SHOWN_PATH = 200;

function hex(n: number): string {
  return n < 0 ? `-0x${(-n).toString(16)}` : `0x${n.toString(16)}`;
}

function portRange(base: number, length: number): string {
  return `${hex(base)}-${hex(base + length - 1)}`;
}

/** The default VM name: the file name without `.toml`, reduced to the allowed characters. */
function defaultName(file: string): string {
  if (file === OBJECT_FILE) return "vm";
  const name = basename(file).replace(/\.toml$/i, "").replace(/[^A-Za-z0-9._-]+/g, "-")
    .replace(/^-+|-+$/g, "").slice(0, 64);
  return name === "" ? "vm" : name;
}

/** A value for `formatConfig`: bare when plain, else quoted and escaped, never cut. */
function shown(s: string): string {
  return quoteIfNeeded(s, Infinity);
}

// POSIX path helpers (dhyve runs on Linux only). node:path is avoided on
// purpose: its first use initialises Node compatibility, costing ~8 ms of
// start-up.

/** An absolute, normalised path: `p` resolved against `base` (itself absolute). */
function resolve(base: string, p: string): string {
  const parts: string[] = [];
  for (const part of (p.startsWith("/") ? p : `${base}/${p}`).split("/")) {
    if (part === "..") parts.pop();
    else if (part !== "" && part !== ".") parts.push(part);
  }
  return "/" + parts.join("/");
}

/** The directory part of an absolute, normalised path. */
function dirname(p: string): string {
  return p.slice(0, Math.max(p.lastIndexOf("/"), 1));
}

/** The last component of a path. */
function basename(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}

/** What went wrong, in words (OS errors as a phrase, never "os error 20" or a path again). */
function errorText(e: unknown): string {
  return osErrorText(e);
}

/** A file named by a key: the path as given and, when relative, where it resolved. */
function fileName(given: string, abs: string): string {
  return given === abs ? showPath(abs) : `${quote(given)} (${showPath(abs)})`;
}

// ---------------------------------------------------------------------------
// Positions (error path only)

interface Positions {
  key?: { line: number; column: number };
  value?: { line: number; column: number };
  header?: { line: number; column: number };
}

/**
 * Attaches line:column to findings: the offending value (for unknown keys:
 * the key, or the header of an unknown table), else the nearest enclosing
 * table's header (or inline table), else 1:1.
 * Loads toml-eslint-parser on demand; issues come back in source order.
 */
async function locate(
  text: string,
  file: string,
  findings: readonly Finding[],
): Promise<ConfigIssue[]> {
  const root = newPlace();
  for (const f of findings) {
    let node = root;
    for (const seg of f.path) {
      let next = node.children.get(seg);
      if (next === undefined) node.children.set(seg, next = newPlace());
      node = next;
    }
  }
  let indexed = false;
  try {
    const { parseTOML } = await import("toml-eslint-parser");
    // It builds each token with a spread of its characters, which overflows the
    // stack on a long one: give it the text with long tokens written short.
    const shrunk = shrinkLongTokens(text);
    indexPositions(parseTOML(shrunk.text, { tomlVersion: "1.1" }), root, shrunk);
    indexed = true;
  } catch {
    // both parsers should accept the same text; if not, give no positions
  }
  const issues = findings.map((f): ConfigIssue => {
    const issue: ConfigIssue = { file, path: formatPath(f.path), message: f.message };
    if (!indexed) return issue;
    // The finding's own place, else the nearest enclosing one, else 1:1.
    const places = [root];
    for (const seg of f.path) places.push(places[places.length - 1].children.get(seg)!);
    const own = places[places.length - 1].pos;
    let pos = f.at === "key"
      ? own.header ?? own.key ?? own.value
      : own.value ?? own.header ?? own.key;
    for (let n = f.path.length - 1; pos === undefined && n > 0; n--) {
      const up = places[n].pos;
      pos = up.header ?? up.value ?? up.key;
    }
    pos ??= { line: 1, column: 1 };
    return { ...issue, line: pos.line, column: pos.column };
  });
  return issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}

/** A node of the tree of key paths the findings name, with the positions found for it. */
interface Place {
  readonly children: Map<Segment, Place>;
  readonly pos: Positions;
}

function newPlace(): Place {
  return { children: new Map(), pos: {} };
}

/** Minimal structural view of toml-eslint-parser's AST (only what is used here). */
interface AstNode {
  type: string;
  loc: { start: { line: number; column: number } };
  body?: AstNode[];
  key?: { keys: { type: string; name?: string; value?: string; loc: AstNode["loc"] }[] };
  value?: AstNode | unknown;
  elements?: AstNode[];
  resolvedKey?: (string | number)[];
}

/**
 * Records the positions of the key, value and table header of every path in
 * the tree `root`. Walks the document once and leaves a subtree as soon as
 * no finding lies in it, so the cost stays linear however long the dotted
 * keys (a key path is never built as a whole, let alone hashed). `shrunk`
 * maps the columns and key names of the parsed text back to the original.
 */
function indexPositions(
  program: { body: [unknown] },
  root: Place,
  shrunk: { column(line: number, column: number): number; key(name: string): string },
): void {
  const record = (place: Place, kind: keyof Positions, loc: AstNode["loc"]) => {
    // eslint columns are 0-based
    place.pos[kind] ??= {
      line: loc.start.line,
      column: shrunk.column(loc.start.line, loc.start.column + 1),
    };
  };
  const keyName = (k: { type: string; name?: string; value?: string }) =>
    shrunk.key((k.type === "TOMLBare" ? k.name : k.value) ?? "");
  const visitValue = (node: AstNode, place: Place): void => {
    if (node.type === "TOMLInlineTable") {
      for (const kv of node.body ?? []) visitKeyValue(kv, place);
    }
    if (node.type === "TOMLArray") {
      (node.elements ?? []).forEach((e, i) => {
        const at = place.children.get(i);
        if (at === undefined) return;
        record(at, "value", e.loc);
        visitValue(e, at);
      });
    }
  };
  const visitKeyValue = (kv: AstNode, base: Place): void => {
    let place = base;
    for (const k of kv.key?.keys ?? []) {
      const next = place.children.get(keyName(k));
      if (next === undefined) return;
      place = next;
      record(place, "key", k.loc);
    }
    const value = kv.value as AstNode;
    record(place, "value", value.loc);
    visitValue(value, place);
  };
  const top = program.body[0] as AstNode;
  for (const node of top.body ?? []) {
    if (node.type === "TOMLKeyValue") {
      visitKeyValue(node, root);
      continue;
    }
    // A [table] or [[array.table]] header: resolvedKey interleaves array indexes with names.
    const resolved = node.resolvedKey ?? [];
    const keys = node.key?.keys ?? [];
    const places: Place[] = [];
    let place: Place | undefined = root;
    let k = 0;
    for (const seg of resolved) {
      place = place.children.get(typeof seg === "string" ? shrunk.key(seg) : seg);
      if (place === undefined) break;
      places.push(place);
      if (typeof seg === "string" && keys[k]) record(place, "key", keys[k++].loc);
    }
    // The first [[name]] header also stands for the array as a whole.
    const n = resolved.length;
    if (typeof resolved[n - 1] === "number" && n >= 2 && places.length >= n - 1) {
      record(places[n - 2], "header", node.loc);
    }
    if (place === undefined) continue;
    record(place, "header", node.loc);
    for (const kv of node.body ?? []) visitKeyValue(kv, place);
  }
}

// ---------------------------------------------------------------------------
// Classes

/** Everything wrong with a VM definition; the message lists one issue per line. */
export class ConfigError extends Error {
  /** The issues, in source order where positions are known. */
  readonly issues: readonly ConfigIssue[];

  /** Builds the error from its issues (at least one). */
  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map(formatIssue).join("\n"));
    this.name = "ConfigError";
    this.issues = Object.freeze([...issues]);
  }
}

/** Collects findings during validation. */
class Checker {
  readonly findings: Finding[] = [];
  readonly #failed = new Set<string>();

  /**
   * @param baseDir where relative paths resolve
   * @param toml whether the document came from TOML (integers are bigints)
   * @param configPath the config file's absolute path; undefined for a plain object
   */
  constructor(
    readonly baseDir: string,
    readonly toml: boolean,
    readonly configPath?: string,
  ) {}

  fail(path: Path, message: string, at: Finding["at"] = "value"): void {
    this.findings.push({ path, message, at });
    this.#failed.add(pathKey(path));
  }

  /** True when no finding was recorded at any of these paths. */
  ok(...paths: Path[]): boolean {
    return paths.every((p) => !this.#failed.has(pathKey(p)));
  }
}

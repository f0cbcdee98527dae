/**
 * `dhyve ctl COMMAND [VM] [options]`: the command-line client of the
 * control protocol. Human-readable output by default, the protocol's
 * result as JSON with `--json`. Failures are one line on stderr.
 *
 * Exit statuses: 0 done; 1 the VM refused or failed the request; 2 a usage
 * error (nothing was sent); 3 no VM to talk to (unknown name, dead socket,
 * lost connection).
 *
 * @module
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { CtlClient, CtlConnectError, findVms, resolveVm } from "./client.ts";
import { socketPathFor } from "./paths.ts";
import { COMMANDS, CtlError } from "./protocol.ts";
import { REGISTERS } from "./vcpu_ops.ts";

/** Exit status: the VM refused or failed the request. */
export const CTL_EXIT_FAILED = 1;
/** Exit status: usage error. */
export const CTL_EXIT_USAGE = 2;
/** Exit status: no VM to talk to. */
export const CTL_EXIT_UNREACHABLE = 3;

/** A usage error found after parsing (one line). */
class UsageError extends Error {}

function die(message: string, status: number): never {
  Deno.stderr.writeSync(new TextEncoder().encode(`dhyve ctl: ${message}\n`));
  Deno.exit(status);
}

interface Common {
  json?: boolean;
  socket?: string;
}

/** Runs one request against VM `vm` (or the only one) and prints the answer. */
async function call(
  vm: string | undefined,
  opts: Common,
  cmd: string,
  args: Record<string, unknown>,
  format: (r: never) => string,
): Promise<void> {
  let client: CtlClient;
  try {
    client = await CtlClient.connect(opts.socket ?? await resolveVm(vm));
  } catch (e) {
    die((e as Error).message, CTL_EXIT_UNREACHABLE);
  }
  let result: unknown;
  try {
    result = await client.request(cmd, args);
  } catch (e) {
    client.close();
    if (e instanceof CtlError) die(e.message, CTL_EXIT_FAILED);
    die((e as Error).message, CTL_EXIT_UNREACHABLE);
  }
  client.close();
  console.log(opts.json ? JSON.stringify(result, null, 2) : format(result as never));
}

// --- argument parsers ---------------------------------------------------------------

function intOption(what: string, min: number, max: number) {
  return (v: string): number => {
    if (!/^(0x[0-9a-f]+|[0-9]+)$/i.test(v)) {
      throw new InvalidArgumentError(`${what} must be a number.`);
    }
    const n = Number(v);
    if (n < min || n > max) throw new InvalidArgumentError(`${what} must be ${min}-${max}.`);
    return n;
  };
}

const cpuOption = () =>
  new Option("--cpu <n>", "the vCPU index").argParser(intOption("--cpu", 0, 1 << 20));

function common(c: Command): Command {
  return c.option("--json", "print the result as JSON")
    .option("--socket <path>", "talk to the VM serving this socket (up --ctl PATH)");
}

// --- formatting -----------------------------------------------------------------------

function hex(n: number): string {
  return "0x" + n.toString(16);
}

function size(n: number): string {
  for (const [u, s] of [["G", 2 ** 30], ["M", 2 ** 20], ["K", 2 ** 10]] as const) {
    if (n >= s && n % s === 0) return `${n / s} ${u}iB`;
  }
  return `${n} bytes`;
}

function duration(ms: number): string {
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

type Counts = Record<string, number>;
type Fallbacks = Record<string, { count: number; ms: number }>;

function formatExits(e: Counts): string {
  const parts = Object.entries(e).filter(([k, n]) => k !== "exits" && n > 0).map(([k, n]) =>
    `${k} ${n}`
  );
  return `exits ${e.exits ?? 0}${parts.length ? ` (${parts.join(", ")})` : ""}`;
}

function formatFallbacks(f: Fallbacks): string {
  const e = Object.entries(f).sort((a, b) => b[1].count - a[1].count);
  return e.length
    ? e.map(([k, c]) => `${k} ${c.count} (${c.ms.toFixed(1)} ms)`).join(", ")
    : "none";
}

function formatStats(r: {
  uptimeMs: number;
  resets: number;
  unclaimed: number;
  total: Counts;
  fallbacks: Fallbacks;
  vcpus: { index: number; apicId: number; state: string; exits: Counts; runMs: number }[];
}): string {
  return [
    `uptime ${duration(r.uptimeMs)}, resets ${r.resets}, unclaimed accesses ${r.unclaimed}`,
    ...r.vcpus.map((v) =>
      `vcpu ${v.index} (apic id ${v.apicId}, ${v.state}, run ${duration(v.runMs)}): ${
        formatExits(v.exits)
      }`
    ),
    `total: ${formatExits(r.total)}`,
    `fallbacks: ${formatFallbacks(r.fallbacks)}`,
  ].join("\n");
}

function formatCpus(r: {
  topology: { sockets: number; cores: number; threads: number; cpus: number };
  active: number[];
  paused: number[];
  suspended: number[];
  vcpus: {
    index: number;
    socket: number;
    core: number;
    thread: number;
    apicId: number;
    state: string;
    mpState: string;
  }[];
}): string {
  const t = r.topology;
  const set = (a: number[]) => (a.length ? a.join(",") : "none");
  return [
    `topology: ${t.sockets} sockets x ${t.cores} cores x ${t.threads} threads, ${t.cpus} vCPUs`,
    `active: ${set(r.active)}`,
    `paused: ${set(r.paused)}`,
    `suspended: ${set(r.suspended)}`,
    ...r.vcpus.map((v) =>
      `cpu ${v.index}: socket ${v.socket} core ${v.core} thread ${v.thread} apic id ${v.apicId}, ${v.state}, mp state ${v.mpState}`
    ),
  ].join("\n");
}

function formatMemmap(r: {
  size: number;
  lowmem: { start: number; end: number };
  highmem: { start: number; end: number } | null;
  slots: { slot: number; name: string; gpa: number; size: number; hva: string }[];
  e820: { addr: number; size: number; typeName: string }[];
}): string {
  const range = (a: number, b: number) => `${hex(a).padStart(12)}-${hex(b - 1).padEnd(12)}`;
  return [
    `ram ${size(r.size)}`,
    `lowmem  ${range(r.lowmem.start, r.lowmem.end)} ${size(r.lowmem.end - r.lowmem.start)}`,
    r.highmem
      ? `highmem ${range(r.highmem.start, r.highmem.end)} ${size(r.highmem.end - r.highmem.start)}`
      : "highmem none",
    "kvm slots:",
    ...r.slots.map((s) =>
      `  slot ${s.slot} ${s.name.padEnd(8)} ${range(s.gpa, s.gpa + s.size)} ${
        size(s.size)
      } at hva ${s.hva}`
    ),
    "e820:",
    ...r.e820.map((e) => `  ${range(e.addr, e.addr + e.size)} ${e.typeName}`),
  ].join("\n");
}

function formatCaps(r: { caps: { name: string; number: number; value: number }[] }): string {
  if (r.caps.length === 1) {
    const c = r.caps[0];
    return `${c.name} (${c.number}): ${c.value}${c.value ? "" : " (not supported)"}`;
  }
  const w = Math.max(...r.caps.map((c) => c.name.length));
  return r.caps.map((c) => `${c.name.padEnd(w)} ${c.value}`).join("\n");
}

function formatRegs(
  r: { cpu: number; mpState?: string; registers: Record<string, string> },
): string {
  const names = Object.keys(r.registers);
  const w = Math.max(...names.map((n) => n.length));
  const lines = names.filter((n) => !/^(cs|ds|es|fs|gs|ss|tr|ldt)\./.test(n) || names.length < 20)
    .map((n) => `${n.padEnd(w)} ${r.registers[n]}`);
  // Segments in one line each when everything was asked for.
  if (names.length >= 20) {
    for (const seg of ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"]) {
      const f = (k: string) => r.registers[`${seg}.${k}`];
      if (f("selector") === undefined) continue;
      lines.push(
        `${seg.padEnd(w)} selector ${f("selector")} base ${f("base")} limit ${f("limit")} type ${
          f("type")
        } s ${f("s")} dpl ${f("dpl")} p ${f("present")} l ${f("l")} db ${f("db")} g ${f("g")}`,
      );
    }
  }
  return lines.join("\n");
}

interface Level {
  name: string;
  address: string;
  value: string;
  present: boolean;
  writable: boolean;
  user: boolean;
  noExecute: boolean;
  leaf: boolean;
  pageSize?: number;
}

function formatGla(r: {
  gla: string;
  mode: string;
  mapped: boolean;
  gpa?: string;
  pageSize?: number;
  writable?: boolean;
  user?: boolean;
  executable?: boolean;
  reason?: string;
  levels: Level[];
}): string {
  const head = r.mapped
    ? `${r.gla} -> ${r.gpa} (${size(r.pageSize!)} page, ${r.user ? "user" : "supervisor"}, ${
      r.writable ? "read/write" : "read-only"
    }, ${r.executable ? "executable" : "no-execute"})`
    : `${r.gla} is not mapped: ${r.reason}`;
  return [
    `${head} [paging ${r.mode}]`,
    ...r.levels.map((l) =>
      `  ${l.name.padEnd(5)} at ${l.address.padEnd(10)} = ${l.value.padEnd(18)} ${
        l.present ? "P" : "-"
      }${l.writable ? "W" : "-"}${l.user ? "U" : "S"}${l.noExecute ? "X" : "-"}${
        l.leaf ? ` leaf ${size(l.pageSize ?? 4096)}` : ""
      }`
    ),
  ].join("\n");
}

// --- the command tree -----------------------------------------------------------------

/**
 * Positional arguments of `regs get|set`: an optional VM name first (a word
 * that is neither a register name nor NAME=VALUE, and names a VM with a
 * socket in the runtime directory), then the registers.
 */
function splitVm(words: string[]): { vm?: string; rest: string[] } {
  const w = words[0];
  if (w !== undefined && !w.includes("=") && !REGISTERS.has(w.toLowerCase())) {
    try {
      Deno.lstatSync(socketPathFor(w));
      return { vm: w, rest: words.slice(1) };
    } catch { /* not a VM: a register name, checked by the caller */ }
  }
  return { rest: words };
}

function needCpu(cpu: number | undefined): number {
  if (cpu === undefined) throw new UsageError("--cpu N is required");
  return cpu;
}

/** Adds `ctl` and its subcommands to `program`. */
export function addCtlCommand(program: Command): Command {
  const ctl = program.command("ctl")
    .description("query and steer a running VM through its control socket")
    .showHelpAfterError(false)
    .addHelpText(
      "after",
      `\nProtocol commands (line-delimited JSON, README "Control (ctl)"):\n${
        Object.entries(COMMANDS).map(([k, v]) => `  ${k.padEnd(10)} ${v}`).join("\n")
      }\n\nExit statuses: 0 done, 1 the VM refused or failed the request, 2 usage error, 3 no VM to talk to.`,
    );
  const wrap = <A extends unknown[]>(fn: (...a: A) => Promise<void>) => async (...a: A) => {
    try {
      await fn(...a);
    } catch (e) {
      if (e instanceof UsageError) die(e.message, CTL_EXIT_USAGE);
      if (e instanceof CtlConnectError) die(e.message, CTL_EXIT_UNREACHABLE);
      throw e;
    }
  };

  ctl.command("list").description("the running VMs: name, pid, socket, uptime, state")
    .option("--json", "print the list as JSON")
    .action(wrap(async (opts: { json?: boolean }) => {
      const vms = (await findVms()).filter((v) => v.hello);
      if (opts.json) {
        console.log(JSON.stringify(vms.map((v) => ({ ...v.hello, socket: v.socket })), null, 2));
        return;
      }
      if (vms.length === 0) {
        console.log("no VM is running");
        return;
      }
      const rows = vms.map((v) => {
        const h = v.hello as { pid: number; uptimeMs: number; state: string };
        return [v.name, String(h.pid), h.state, duration(h.uptimeMs), v.socket];
      });
      rows.unshift(["NAME", "PID", "STATE", "UPTIME", "SOCKET"]);
      const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
      for (const r of rows) console.log(r.map((c, i) => c.padEnd(w[i])).join("  ").trimEnd());
    }));

  const simple: [string, string, (r: never) => string][] = [
    [
      "stats",
      "exit counts by reason per vCPU and in total, fallback counts, run time",
      formatStats,
    ],
    ["cpus", "active, paused and suspended vCPUs; topology and APIC ID per vCPU", formatCpus],
    ["memmap", "lowmem, highmem, the KVM memory slots and the e820 map", formatMemmap],
  ];
  for (const [name, description, format] of simple) {
    common(ctl.command(name).description(description).argument("[vm]", "the VM's [vm] name"))
      .action(wrap((vm: string | undefined, opts: Common) => call(vm, opts, name, {}, format)));
  }

  common(
    ctl.command("caps").description("KVM capabilities by name (bhyvectl --getcap/--capname)")
      .argument("[vm]", "the VM's [vm] name")
      .option("--capname <name>", "one capability, e.g. debugregs or KVM_CAP_DEBUGREGS")
      .option("--getcap", "every capability (the default)"),
  ).action(
    wrap((vm: string | undefined, opts: Common & { capname?: string }) =>
      call(vm, opts, "caps", opts.capname ? { name: opts.capname } : {}, formatCaps)
    ),
  );

  const regs = ctl.command("regs").description("read or write a vCPU's registers");
  common(
    regs.command("get").description(
      "registers of a vCPU: GPRs, rip, rflags, cr0/2/3/4/8, efer, apic_base, dr0-3, dr6, dr7, gdtr/idtr.base|limit, <seg>.selector|base|limit|type|...",
    ).argument("[words...]", "[VM] [NAME...]").addOption(cpuOption()),
  ).action(wrap(async (words: string[], opts: Common & { cpu?: number }) => {
    const { vm, rest } = splitVm(words);
    const names = rest.map((n) => n.toLowerCase());
    for (const n of names) if (!REGISTERS.has(n)) throw new UsageError(`unknown register "${n}"`);
    await call(vm, opts, "regs.get", { cpu: needCpu(opts.cpu), names }, formatRegs);
  }));
  common(
    regs.command("set").description("set registers of a vCPU (NAME=VALUE, hex with 0x or decimal)")
      .argument("[words...]", "[VM] NAME=VALUE...").addOption(cpuOption()),
  ).action(wrap(async (words: string[], opts: Common & { cpu?: number }) => {
    const { vm, rest } = splitVm(words);
    if (rest.length === 0) throw new UsageError("regs set needs NAME=VALUE");
    const values: Record<string, string> = {};
    for (const w of rest) {
      const i = w.indexOf("=");
      if (i <= 0) throw new UsageError(`"${w}" is not NAME=VALUE`);
      const name = w.slice(0, i).toLowerCase();
      if (!REGISTERS.has(name)) throw new UsageError(`unknown register "${name}"`);
      values[name] = w.slice(i + 1);
    }
    await call(
      vm,
      opts,
      "regs.set",
      { cpu: needCpu(opts.cpu), values },
      (r: { registers: Record<string, string> }) =>
        Object.entries(r.registers).map(([k, v]) => `${k} = ${v}`).join("\n"),
    );
  }));

  const rtc = ctl.command("rtc").description("the RTC's time and CMOS NVRAM");
  common(
    rtc.command("time").description("the RTC's time (seconds since the epoch, UTC)")
      .argument("[vm]", "the VM's [vm] name")
      .option("--set <unix>", "set it", (v: string) => {
        if (!/^-?[0-9]+$/.test(v)) throw new InvalidArgumentError("--set takes whole seconds.");
        return Number(v);
      }),
  ).action(wrap((vm: string | undefined, opts: Common & { set?: number }) =>
    call(
      vm,
      opts,
      "rtc.time",
      opts.set === undefined ? {} : { set: opts.set },
      (r: { time: number | null; iso: string | null; note?: string }) =>
        r.time === null ? `invalid (${r.note})` : `${r.time} (${r.iso})`,
    )
  ));
  common(
    rtc.command("nvram").description("a CMOS byte (offsets 14-255)")
      .argument("[vm]", "the VM's [vm] name")
      .addOption(
        new Option("--offset <n>", "the byte's offset").argParser(intOption("--offset", 0, 1e9)),
      )
      .addOption(new Option("--set <v>", "write it").argParser(intOption("--set", 0, 1e9))),
  ).action(wrap((vm: string | undefined, opts: Common & { offset?: number; set?: number }) => {
    if (opts.offset === undefined) throw new UsageError("--offset N is required");
    return call(
      vm,
      opts,
      "rtc.nvram",
      opts.set === undefined ? { offset: opts.offset } : { offset: opts.offset, set: opts.set },
      (r: { offset: number; value: number }) => `${hex(r.offset)}: ${hex(r.value)}`,
    );
  }));

  common(
    ctl.command("nmi").description("inject an NMI into a vCPU").argument(
      "[vm]",
      "the VM's [vm] name",
    )
      .addOption(cpuOption()),
  ).action(
    wrap((vm: string | undefined, opts: Common & { cpu?: number }) =>
      call(
        vm,
        opts,
        "nmi",
        { cpu: needCpu(opts.cpu) },
        (r: { cpu: number }) => `vcpu ${r.cpu}: NMI injected`,
      )
    ),
  );

  common(
    ctl.command("lvt").description("drive a LINT pin of the local APICs as its LVT entry says")
      .argument("[vm]", "the VM's [vm] name")
      .addOption(new Option("--pin <pin>", "the pin").choices(["lint0", "lint1"]))
      .option("--cpu <n|all>", "one vCPU, or all (the default)"),
  ).action(wrap((vm: string | undefined, opts: Common & { pin?: string; cpu?: string }) => {
    if (opts.pin === undefined) throw new UsageError("--pin lint0|lint1 is required");
    let cpu: number | "all" = "all";
    if (opts.cpu !== undefined && opts.cpu !== "all") {
      if (!/^[0-9]+$/.test(opts.cpu)) throw new UsageError("--cpu takes a vCPU index or all");
      cpu = Number(opts.cpu);
    }
    return call(vm, opts, "lvt", { pin: opts.pin, cpu }, (r: {
      pins: {
        cpu: number;
        pin: string;
        lvt: string;
        mode: string;
        delivered: boolean;
        reason?: string;
      }[];
    }) =>
      r.pins.map((p) =>
        `vcpu ${p.cpu}: ${p.pin} lvt ${p.lvt} (${p.mode}): ${
          p.delivered ? "NMI delivered" : `nothing delivered, ${p.reason}`
        }`
      ).join("\n"));
  }));

  for (
    const [name, description] of [["pause", "pause the VM, or one vCPU"], [
      "resume",
      "resume the VM, or one vCPU",
    ]]
  ) {
    common(
      ctl.command(name).description(description).argument("[vm]", "the VM's [vm] name")
        .addOption(cpuOption()),
    ).action(
      wrap((vm: string | undefined, opts: Common & { cpu?: number }) =>
        call(
          vm,
          opts,
          name,
          opts.cpu === undefined ? {} : { cpu: opts.cpu },
          (r: Record<string, unknown>) => {
            const what = r.paused ?? r.resumed;
            return `${name === "pause" ? "paused" : "resumed"} ${
              what === "all" ? "the VM" : `vcpu ${what}`
            }`;
          },
        )
      ),
    );
  }

  common(
    ctl.command("reset").description("reset the VM (bhyve's VM-wide suspend)").argument(
      "[vm]",
      "the VM's [vm] name",
    ),
  ).action(
    wrap((vm: string | undefined, opts: Common) =>
      call(
        vm,
        opts,
        "reset",
        {},
        (r: { onReset: string }) => `reset requested (on_reset = "${r.onReset}")`,
      )
    ),
  );
  common(
    ctl.command("poweroff").description("power the VM off (dhyve exits with status 1)")
      .argument("[vm]", "the VM's [vm] name")
      .option("--button", "press the ACPI power button instead (the guest decides)"),
  ).action(
    wrap((vm: string | undefined, opts: Common & { button?: boolean }) =>
      call(
        vm,
        opts,
        "poweroff",
        opts.button ? { button: true } : {},
        (r: { requested: string }) =>
          r.requested === "poweroff" ? "poweroff requested" : "power button pressed",
      )
    ),
  );

  common(
    ctl.command("gla2gpa").description(
      "translate a guest linear address through the vCPU's page tables (no fault, no accessed/dirty bits set)",
    ).argument("<words...>", "[VM] ADDR").addOption(cpuOption()),
  ).action(wrap((words: string[], opts: Common & { cpu?: number }) => {
    if (words.length > 2) throw new UsageError("gla2gpa takes [VM] ADDR");
    const [vm, addr] = words.length === 2 ? words : [undefined, words[0]];
    if (!/^(0x[0-9a-f]+|[0-9]+)$/i.test(addr)) {
      throw new UsageError(`address "${addr}" is not a number (hex with 0x, or decimal)`);
    }
    return call(vm, opts, "gla2gpa", { cpu: needCpu(opts.cpu), address: addr }, formatGla);
  }));
  return ctl;
}

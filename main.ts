/**
 * The dhyve command line. Thin: it parses arguments and calls the library.
 *
 * ```
 * deno run -A main.ts up vm.toml                boot a VM
 * deno run -A main.ts check vm.toml             print the effective config and memory map
 * deno run -A main.ts tables vm.toml --out DIR  write the firmware tables to DIR
 * deno run -A main.ts devices                   list the device models
 * deno run -A main.ts initramfs DIR -o OUT      write DIR as a gzipped newc initramfs
 * deno run -A main.ts ctl COMMAND [VM] [opts]   query and steer a running VM (its control socket)
 * ```
 *
 * Exit statuses: 0 reset, 1 poweroff, 2 halt, 3 triple fault, 4 error
 * (bhyve's); (v << 1) | 1 after a debug-exit write of v; 2 for usage and
 * config errors, before any VM is created.
 *
 * @module
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { getLogger, type LogLevel } from "@logtape/logtape";
import {
  bootInputs,
  ConfigError,
  formatConfig,
  loadConfig,
  sameFile,
  type VmConfig,
} from "./lib/config.ts";
import { setupLogging } from "./lib/log.ts";
import { osErrorText } from "./lib/os_error.ts";
import { escapeText, showPath } from "./lib/quote.ts";
import { addCtlCommand } from "./lib/ctl/cli.ts";

/** A poweroff (bhyve's 1); also a start given up by a signal, before the guest ran. */
const EXIT_POWEROFF = 1;
/** Usage and config errors. */
const EXIT_USAGE = 2;
/** Errors (bhyve's 4). */
const EXIT_ERROR = 4;

const log = getLogger(["dhyve"]);

/**
 * Writes `dhyve: <message>` to stderr, each of its lines with control and
 * bidi characters escaped: a message may quote user text, and that must not
 * drive the terminal. Paths in messages go through showPath.
 */
function note(message: string): void {
  const text = message.split("\n").map(escapeText).join("\n");
  Deno.stderr.writeSync(new TextEncoder().encode(`dhyve: ${text}\n`));
}

function fail(message: string, status: number): never {
  note(message);
  Deno.exit(status);
}

/**
 * What went wrong with a file, in words ("it is a directory"), for a message
 * that names the file itself (with {@linkcode showPath}).
 */
function reasonOf(e: unknown): string {
  return osErrorText(e);
}

/** `dir/name`; `dir` is not empty (the CLI refuses an empty path). */
function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

/** Commander argument parser: a path option's value must not be empty. */
function nonEmptyPath(value: string): string {
  if (value === "") throw new InvalidArgumentError("The path is empty.");
  return value;
}

/**
 * Which file of the VM `file` is (the config, a boot input, a console
 * output), or undefined: the report must not overwrite any of them.
 */
function vmFileNamed(config: VmConfig, configPath: string, file: string): string | undefined {
  const abs = (p: string) => (p.startsWith("/") ? p : `${Deno.cwd()}/${p}`);
  const files = [{ path: abs(configPath), what: "the config file" }, ...bootInputs(config.boot)];
  for (const [port, c] of [["com1", config.console.com1], ["com2", config.console.com2]] as const) {
    if (c.kind === "file") files.push({ path: c.path, what: `the console file of ${port}` });
  }
  return files.find((f) => sameFile(abs(file), f.path))?.what;
}

async function readConfig(path: string): Promise<VmConfig> {
  try {
    return await loadConfig(path);
  } catch (e) {
    if (e instanceof ConfigError) fail(`invalid VM definition:\n${e.message}`, EXIT_USAGE);
    throw e;
  }
}

function levelOf(opts: { verbose?: number; quiet?: boolean }): LogLevel {
  if (opts.quiet) return "error";
  if ((opts.verbose ?? 0) >= 2) return "trace";
  if ((opts.verbose ?? 0) >= 1) return "debug";
  return "info";
}

async function up(
  path: string,
  opts: { verbose?: number; quiet?: boolean; report?: string; ctl?: string | false },
): Promise<never> {
  // From here until the guest runs, a SIGTERM, SIGINT or SIGHUP ends dhyve
  // within a second with status 1, whatever step the start is in
  // (lib/vm/start_guard.ts); the running VM's handlers take over below.
  const { StartGuard } = await import("./lib/vm/start_guard.ts");
  const guard = new StartGuard();
  const signal = guard.signal;
  let ctl: import("./lib/ctl/server.ts").CtlServer | undefined;
  let report: Deno.FsFile | undefined;
  let vm: import("./lib/vm/vm.ts").Vm | undefined;
  /** Releases what the start made and exits: the start was given up by a signal. */
  const giveUp = async (): Promise<never> => {
    if (!guard.claim()) await new Promise(() => {}); // the guard thread is ending dhyve
    vm?.close();
    await ctl?.close();
    report?.close();
    fail((signal.reason as Error).message, EXIT_POWEROFF);
  };
  /** Lets a signal's listener run; gives up the start if one came. */
  const step = async (): Promise<void> => {
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (signal.aborted) await giveUp();
  };
  await setupLogging(levelOf(opts), (opts.verbose ?? 0) > 0);
  const config = await readConfig(path);
  await step();
  // The control socket is bound before the VM exists: a VM of the same name
  // still running is a usage error (status 2), and a stale socket is replaced.
  const { CtlServer } = await import("./lib/ctl/server.ts");
  if (opts.ctl !== false) {
    try {
      ctl = await CtlServer.bind(config.vm.name, { path: opts.ctl });
    } catch (e) {
      fail((e as Error).message, EXIT_USAGE);
    }
    guard.watchSocket(ctl.path);
  }
  await step();
  // Open the report before the VM exists: a destination that cannot be written
  // is a usage error now, not a lost report after the run. Truncated now, so a
  // report from an earlier run is never taken for this run's.
  if (opts.report !== undefined) {
    const clash = vmFileNamed(config, path, opts.report);
    if (clash) {
      await ctl?.close();
      fail(
        `--report ${showPath(opts.report)} is ${clash}; the report would overwrite it`,
        EXIT_USAGE,
      );
    }
    try {
      report = await Deno.open(opts.report, { write: true, create: true, truncate: true });
    } catch (e) {
      await ctl?.close();
      fail(`cannot write ${showPath(opts.report)}: ${reasonOf(e)}`, EXIT_USAGE);
    }
  }
  // Start the Workers now: they load their modules while this thread loads its own.
  const { prespawnWorkers } = await import("./lib/vm/workers.ts");
  const workers = prespawnWorkers(config.cpu.cpus);
  const { Vm } = await import("./lib/vm/vm.ts");
  const { StdinConsole } = await import("./lib/console.ts");
  const { KvmUnavailableError } = await import("./cpu/kvm.ts");
  const { PayloadError } = await import("./lib/boot/payload.ts");
  const { MultibootError } = await import("./lib/boot/multiboot.ts");
  const { InputFileError } = await import("./lib/file_read.ts");
  await step();

  try {
    vm = await Vm.create(config, {
      workers,
      // With -v: a status line every 5 s on stderr (a Linux boot takes minutes here).
      progressMs: (opts.verbose ?? 0) > 0 ? 5000 : 0,
      signal,
      onWait: (message) => log.warn("{message}", { message }),
    });
  } catch (e) {
    if (signal.aborted) await giveUp();
    await ctl?.close();
    if (e instanceof PayloadError || e instanceof MultibootError || e instanceof InputFileError) {
      fail(e.message, EXIT_USAGE);
    }
    if (e instanceof KvmUnavailableError) fail(e.message, EXIT_ERROR);
    fail(`cannot create the VM: ${(e as Error).message}`, EXIT_ERROR);
  }
  const running = vm;

  const stdioPort = (["com1", "com2"] as const).find((p) => config.console[p].kind === "stdio");
  const stdin = stdioPort
    ? new StdinConsole(
      () => running.machine.currentDevices?.byName.get(stdioPort)?.console,
      running.machine.control.lock,
      {
        quit: () =>
          running.requestSuspend({ kind: "poweroff", message: "console: quit (Ctrl-A x)" }),
        powerButton: () => {
          running.pressPowerButton().then((pressed) => {
            if (!pressed) log.warn("the guest does not listen to the ACPI power button");
          }, () => {});
        },
      },
    )
    : undefined;

  // bhyve's SIGTERM: ask the guest to power off through ACPI; a second
  // signal (or a guest that does not listen) forces the poweroff.
  let signalled = 0;
  const forcePoweroff = (why: string) =>
    running.requestSuspend({ kind: "poweroff", message: `${why}: forced poweroff` });
  const onSignal = (name: string) => () => {
    signalled++;
    if (signalled > 1) return forcePoweroff(name);
    running.pressPowerButton().then((pressed) => {
      if (pressed) {
        log.info("{name}: pressed the ACPI power button; send it again to force a poweroff", {
          name,
        });
      } else forcePoweroff(name);
    }, () => forcePoweroff(name));
  };
  // SIGHUP too: its default action would end dhyve without releasing the
  // VM or removing the control socket.
  const signals: [Deno.Signal, () => void][] = (["SIGTERM", "SIGINT", "SIGHUP"] as const).map((
    s,
  ) => [s, onSignal(s)]);

  let status = EXIT_ERROR;
  try {
    ctl?.serve(running);
    try {
      await running.start();
    } catch (e) {
      if (signal.aborted) await giveUp();
      throw e;
    }
    // The guest runs: its signal handlers take over from the start guard's
    // (added first, so that no signal finds no listener).
    for (const [s, f] of signals) Deno.addSignalListener(s, f);
    if (!guard.dispose() || signal.aborted) await giveUp();
    stdin?.start();
    const exit = await running.wait();
    status = exit.status;
    if (report) {
      const json = {
        vm: config.vm.name,
        exit,
        vcpus: running.stats(),
        unclaimed: running.machine.control.unclaimed,
        virtio: running.virtioStats(),
      };
      let bytes = new TextEncoder().encode(JSON.stringify(json, null, 2) + "\n");
      while (bytes.length) bytes = bytes.subarray(await report.write(bytes));
    }
  } catch (e) {
    log.error("{message}", { message: (e as Error).message });
    running.close();
  } finally {
    await ctl?.close();
    await stdin?.stop();
    report?.close();
    for (const [s, f] of signals) Deno.removeSignalListener(s, f);
  }
  Deno.exit(status);
}

async function check(path: string): Promise<void> {
  const config = await readConfig(path);
  const { formatLayout } = await import("./lib/layout.ts");
  const { formatTopology } = await import("./cpu/topology.ts");
  const { describePlatform } = await import("./lib/firmware/platform.ts");
  const { buildFirmwareTables } = await import("./lib/firmware/tables.ts");
  const platform = describePlatform(config);
  const hex = (n: number) => "0x" + n.toString(16);
  const bdf = (slot: number, fn: number) => `00:${slot.toString(16).padStart(2, "0")}.${fn}`;
  const pci = platform.pciFunctions.map((f) => {
    const r = f.intx;
    const intx = r
      ? `  INT${"ABCD"[r.pin - 1]} -> IOAPIC pin ${r.ioapicPin}, PIRQ${
        "ABCDEFGH"[r.pirq]
      } (IRQ ${r.isaIrq})`
      : "";
    return `  ${bdf(f.slot, f.function)} ${f.model}${intx}`;
  });
  const tables = buildFirmwareTables(platform).tables.map((t) =>
    `  ${t.signature.padEnd(4)} at ${hex(t.address)}, ${t.bytes.length} bytes`
  );
  const { describePayload, PayloadError } = await import("./lib/boot/payload.ts");
  const { MultibootError } = await import("./lib/boot/multiboot.ts");
  const { InputFileError } = await import("./lib/file_read.ts");
  let payload: string[];
  try {
    payload = describePayload(config.boot, platform.layout.e820);
  } catch (e) {
    if (e instanceof PayloadError || e instanceof MultibootError || e instanceof InputFileError) {
      fail(e.message, EXIT_USAGE);
    }
    throw e;
  }
  const out = [
    formatConfig(config).trimEnd(),
    "",
    formatTopology(config.cpu),
    "",
    formatLayout(platform.layout),
    "",
    "boot payload:",
    ...payload.map((l) => `  ${l}`),
    "",
    "pci bus 0:",
    ...pci,
    "",
    tables.length ? "firmware tables:" : "firmware tables: none",
    ...tables,
    "",
  ];
  console.log(out.join("\n"));
}

async function tables(path: string, opts: { out: string }): Promise<void> {
  const config = await readConfig(path);
  const { describePlatform } = await import("./lib/firmware/platform.ts");
  const { buildFirmwareTables } = await import("./lib/firmware/tables.ts");
  const built = buildFirmwareTables(describePlatform(config));
  try {
    await Deno.mkdir(opts.out, { recursive: true });
  } catch (e) {
    fail(`cannot create ${showPath(opts.out)}: ${reasonOf(e)}`, EXIT_USAGE);
  }
  if (built.tables.length === 0) {
    note("no firmware tables to write: [firmware] acpi and mptable are both off");
    return;
  }
  // ACPI tables with a standard header are <SIG>.dat, as acpidump/acpixtract name
  // them for iasl -d; the RSDP and the MP structures are not such tables.
  const names: Record<string, string> = {
    RSDP: "rsdp.bin",
    _MP_: "mp-floating.bin",
    PCMP: "mp-config.bin",
  };
  for (const t of built.tables) {
    const file = names[t.signature] ?? `${t.signature}.dat`;
    const dest = joinPath(opts.out, file);
    try {
      await Deno.writeFile(dest, t.bytes);
    } catch (e) {
      fail(`cannot write ${showPath(dest)}: ${reasonOf(e)}`, EXIT_USAGE);
    }
    console.log(
      `${file.padEnd(16)} 0x${t.address.toString(16).padStart(8, "0")}  ${
        String(t.bytes.length).padStart(5)
      } bytes`,
    );
  }
}

async function devices(): Promise<void> {
  const { DEVICE_MODELS, PCI_DEVICE_TYPES } = await import("./devices/registry.ts");
  const rows: [string, string, string][] = [
    ...[...DEVICE_MODELS.values()].map((m): [string, string, string] => [
      m.model,
      m.userPlaceable ? "[[device]]" : "built-in",
      m.summary,
    ]),
    ...[...PCI_DEVICE_TYPES].map((
      [type, t],
    ): [string, string, string] => [type, "[[pci]]", t.summary]),
  ];
  const width = Math.max(...rows.map((r) => r[0].length));
  for (const [name, where, summary] of rows) {
    console.log(`${name.padEnd(width)}  ${where.padEnd(10)}  ${summary}`);
  }
}

async function initramfs(
  dir: string,
  opts: { output: string; dev: string[]; devices?: string; keepOwner?: boolean; compress: boolean },
): Promise<void> {
  const { buildInitramfs, InitramfsError, parseDeviceSpec, parseDeviceSpecFile } = await import(
    "./lib/initramfs.ts"
  );
  const abs = (p: string) => (p.startsWith("/") ? p : `${Deno.cwd()}/${p}`).replace(/\/+$/, "");
  try {
    const st = await Deno.stat(dir);
    if (!st.isDirectory) fail(`${showPath(dir)} is not a directory`, EXIT_USAGE);
  } catch (e) {
    fail(`cannot read directory ${showPath(dir)}: ${reasonOf(e)}`, EXIT_USAGE);
  }
  try {
    const entries = opts.dev.map((d, i) => parseDeviceSpec(d, `--dev #${i + 1}`));
    if (opts.devices !== undefined) {
      let text: string;
      try {
        text = await Deno.readTextFile(opts.devices);
      } catch (e) {
        fail(`cannot read device spec file ${showPath(opts.devices)}: ${reasonOf(e)}`, EXIT_USAGE);
      }
      entries.push(...parseDeviceSpecFile(text, opts.devices));
    }
    const image = await buildInitramfs({
      dir,
      entries,
      keepOwner: opts.keepOwner,
      compress: opts.compress,
      exclude: [abs(opts.output)],
    });
    try {
      await Deno.writeFile(opts.output, image);
    } catch (e) {
      fail(`cannot write ${showPath(opts.output)}: ${reasonOf(e)}`, EXIT_USAGE);
    }
    note(
      `wrote ${showPath(opts.output)}: ${image.length} bytes (newc cpio${
        opts.compress ? ", gzip" : ""
      })`,
    );
  } catch (e) {
    if (e instanceof InitramfsError) fail(e.message, EXIT_USAGE);
    throw e;
  }
}

/** Builds the command tree. */
export function cli(): Command {
  const program = new Command()
    .name("dhyve")
    .description("a hypervisor for x86-64 Linux KVM, driven by a TOML VM definition")
    .exitOverride()
    .showHelpAfterError();
  program.command("up")
    .description("boot the VM described by a TOML file and run it until it stops")
    .argument("<vm.toml>", "the VM definition")
    .addOption(
      new Option("-v, --verbose", "more logging (repeat for more)").argParser((_v, prev: number) =>
        prev + 1
      ).default(0),
    )
    .option("-q, --quiet", "log errors only")
    .option(
      "--report <file>",
      "write a JSON report (exit, per-vCPU exit counts, timings, virtio counters) at the end",
      nonEmptyPath,
    )
    .option(
      "--ctl <path>",
      "serve the control socket at this path (default: $XDG_RUNTIME_DIR/dhyve/<name>.sock, /run/dhyve/ for root)",
      nonEmptyPath,
    )
    .option("--no-ctl", "serve no control socket")
    .action(up);
  program.command("check")
    .description("validate a VM definition; print the effective config, topology and memory map")
    .argument("<vm.toml>", "the VM definition")
    .action(check);
  program.command("tables")
    .description(
      "write the VM's firmware tables: each ACPI table as DIR/<SIG>.dat (for iasl -d), the RSDP and MP table as .bin",
    )
    .argument("<vm.toml>", "the VM definition")
    .requiredOption("--out <dir>", "directory to write the tables to", nonEmptyPath)
    .action(tables);
  program.command("devices")
    .description("list the device models")
    .action(devices);
  program.command("initramfs")
    .description(
      "write a directory tree as an initramfs: a newc cpio archive, gzip-compressed (owner root, hard links as copies)",
    )
    .argument("<dir>", "the root of the tree (/init and everything it needs)")
    .requiredOption("-o, --output <file>", "the archive to write", nonEmptyPath)
    .option(
      "--dev <spec>",
      'add a device node: "PATH c|b MAJOR MINOR [MODE [UID [GID]]]" or "PATH p [MODE ...]", e.g. "dev/console c 5 1 0600" (repeatable)',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option("--devices <file>", "add the device nodes listed in a file, one --dev spec a line")
    .option("--keep-owner", "keep the files' owners (default: everything is owned by root)")
    .option("--no-compress", "write the cpio archive without gzip")
    .action(initramfs);
  addCtlCommand(program);
  return program;
}

if (import.meta.main) {
  try {
    await cli().parseAsync(Deno.args, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      Deno.exit(e.exitCode === 0 ? 0 : EXIT_USAGE);
    }
    fail((e as Error).message, EXIT_ERROR);
  }
}

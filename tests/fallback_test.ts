/**
 * End to end: dhyve's fallback instruction emulation (cpu/fallback.ts,
 * cpu/x86/) on a 64-bit guest, tests/guests/lm/fallback.S.
 *
 * On the development machines KVM's instruction emulator runs all ring-0
 * code and gives up on some instructions (int3, clac/stac, popcnt, fwait,
 * ldmxcsr, cmpxchg16b, xsave/xrstor, xgetbv, movd/movq, pxor, ...); dhyve
 * then emulates them. The guest runs each at CPL0, checks the results
 * against constants and, where the instruction is legal there, against the
 * same snippet run natively at CPL3, and prints one `check.<name>:` line
 * per check. Each boot goes through `main.ts up --report`; the report's
 * per-vCPU `fallbacks` ({ [mnemonic]: { count, ms } }) must show the
 * instructions the guest ran.
 *
 * A self-test boot runs every differential snippet at CPL3 only: it checks
 * the guest's own expectations against the CPU and passes without any
 * fallback.
 *
 * @module
 */
import assert from "node:assert/strict";
import { dhyve, guestBytes, type RunResult, Scratch } from "./helpers.ts";
import { buildGuest, FALLBACK_GUEST_HEADER } from "./guests/build.ts";

/** The guest's checks, in the order of its table (bit i of the mask runs CHECKS[i]). */
const CHECKS = [
  "int3",
  "de",
  "clac_stac",
  "popcnt",
  "fwait",
  "fwait_mf",
  "mxcsr",
  "mxcsr_gp",
  "cmpxchg8b",
  "cmpxchg16b",
  "cmpxchg16b_gp",
  "sse_moves",
  "fxsave",
  "xsetbv",
  "xgetbv",
  "xsave",
  "xrstor",
  "xsaveopt",
  "xsavec",
  "xsaves",
  "straddle",
  "straddle_xsave",
  "insn_straddle",
  "pf_retry",
  "pf_straddle",
  "ud",
  "ud_cr",
  "nm",
  "smp_cas",
  // Bad input and edge cases: each in a VM of its own.
  "bad_rip",
  "bad_rip_straddle",
  "ud_invalid",
  "mmio_span",
  "int1",
  "int_imm",
] as const;
type Check = typeof CHECKS[number];

/** What the guest runs by default: everything up to smp_cas. */
const MAIN_CHECKS: readonly Check[] = CHECKS.slice(0, CHECKS.indexOf("smp_cas") + 1);

/** Checks whose every snippet also runs at CPL3 (the self-test runs those). */
const DIFFERENTIAL: readonly Check[] = [
  "popcnt",
  "fwait_mf",
  "mxcsr",
  "cmpxchg8b",
  "cmpxchg16b",
  "cmpxchg16b_gp",
  "sse_moves",
  "fxsave",
  "xsave",
  "xrstor",
  "xsaveopt",
  "xsavec",
  "straddle",
  "straddle_xsave",
  "insn_straddle",
  "pf_retry",
  "pf_straddle",
  "ud",
  "smp_cas",
  "bad_rip",
  "bad_rip_straddle",
  "ud_invalid",
];

/**
 * Mnemonics each check makes dhyve emulate (alternatives: any one of them),
 * when the check ran (was not skipped).
 */
const FALLBACK_MNEMONICS: Partial<Record<Check, readonly (readonly string[])[]>> = {
  int3: [["int3"]],
  clac_stac: [["clac"], ["stac"]],
  popcnt: [["popcnt"]],
  fwait: [["fwait", "wait"]],
  mxcsr: [["ldmxcsr"], ["stmxcsr"]],
  cmpxchg16b: [["cmpxchg16b"]],
  sse_moves: [["movd"], ["movq"], ["pxor"]],
  xgetbv: [["xgetbv"]],
  xsave: [["xsave"], ["xrstor"]],
  xrstor: [["xrstor"]],
  xsaveopt: [["xsaveopt"]],
  xsavec: [["xsavec"]],
  xsaves: [["xsaves"], ["xrstors"]],
};

/** Iterations of the two-vCPU counter (the guest's default). */
const ITERATIONS = 10_000;

/** Bytes of the guest with the header patched. */
async function fallbackImage(
  checks: readonly Check[],
  opts: { selfTest?: boolean; iterations?: number } = {},
): Promise<Uint8Array> {
  const h = FALLBACK_GUEST_HEADER;
  const image = (await guestBytes("lm/fallback")).slice();
  const v = new DataView(image.buffer);
  const magic = new TextDecoder().decode(image.subarray(h.magicOffset, h.magicOffset + 8));
  assert.equal(magic, h.magic, "lm/fallback: no header magic");
  let mask = 0n;
  for (const c of checks) mask |= 1n << BigInt(CHECKS.indexOf(c));
  v.setBigUint64(h.maskOffset, mask, true);
  v.setBigUint64(h.iterationsOffset, BigInt(opts.iterations ?? ITERATIONS), true);
  v.setBigUint64(h.selfTestOffset, opts.selfTest ? 1n : 0n, true);
  return image;
}

interface CheckLine {
  readonly result: "ok" | "FAIL" | "skip";
  readonly detail: string;
}

interface FallbackRun extends RunResult {
  readonly checks: Map<string, CheckLine>;
  readonly summary: string | undefined;
  // deno-lint-ignore no-explicit-any
  readonly report: any;
}

/** Boots lm/fallback with `checks` through `main.ts up --report`. */
async function runFallback(
  checks: readonly Check[],
  opts: { cpus?: number; selfTest?: boolean; iterations?: number; timeoutMs?: number } = {},
): Promise<FallbackRun> {
  const s = await Scratch.create();
  try {
    const image = await fallbackImage(checks, opts);
    const toml = await s.flatVm("lm/fallback", "", { cpus: opts.cpus ?? 1, image });
    const reportPath = `${s.dir}/report.json`;
    const r = await dhyve(["up", "--report", reportPath, toml], {
      timeoutMs: opts.timeoutMs ?? 120_000,
    });
    let report = undefined;
    try {
      report = JSON.parse(await Deno.readTextFile(reportPath));
    } catch {
      // no report: the assertions below say why the run ended
    }
    const lines = new Map<string, CheckLine>();
    for (const m of r.stdout.matchAll(/^check\.([a-z0-9_]+): (ok|FAIL|skip)\b ?(.*)$/gm)) {
      lines.set(m[1], { result: m[2] as CheckLine["result"], detail: m[3] });
    }
    const summary = /^summary: .*$/m.exec(r.stdout)?.[0];
    return { ...r, checks: lines, summary, report };
  } finally {
    await s.close();
  }
}

/** The run's output, for assertion messages. */
function describe(r: RunResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr.slice(-4000)}`;
}

/** Nothing in stderr that looks like an uncaught exception or an emulator crash. */
function assertCleanStderr(r: RunResult): void {
  assert.doesNotMatch(r.stderr, /Uncaught|^\s+at .*:\d+:\d+\)?$/m, `stack trace\n${describe(r)}`);
  assert.doesNotMatch(
    r.stderr,
    /internal error while emulating|TypeError|RangeError|ReferenceError/,
    `an exception inside dhyve\n${describe(r)}`,
  );
}

/**
 * Every check in `expected` printed ok (or skip, for a feature the CPU
 * lacks: the reason names a CPUID bit), and no other check line appeared.
 */
function assertChecksPassed(r: FallbackRun, expected: readonly Check[]): void {
  const out = describe(r);
  for (const c of expected) {
    const line = r.checks.get(c);
    assert.ok(line, `no line for check.${c} (did the guest stop before it?)\n${out}`);
    if (line.result === "skip") {
      assert.match(line.detail, /CPUID/, `check.${c} skipped without a CPU reason\n${out}`);
    } else {
      assert.equal(line.result, "ok", `check.${c}: ${line.result} ${line.detail}\n${out}`);
    }
  }
  assert.deepEqual([...r.checks.keys()], [...expected], `check lines\n${out}`);
  const ok = expected.filter((c) => r.checks.get(c)?.result === "ok").length;
  assert.equal(
    r.summary,
    `summary: ${ok} ok, 0 failed, ${expected.length - ok} skipped`,
    `summary line\n${out}`,
  );
  assert.equal(r.code, 33, `exit status (33: the guest wrote 0x10 to debug-exit)\n${out}`);
  assertCleanStderr(r);
}

/**
 * The report's fallback counts by mnemonic, all vCPUs together: the
 * per-vCPU `vcpus[i].fallbacks` ({ [mnemonic]: { count, ms } }), or a
 * top-level `fallbacks` of the same shape where there is one.
 */
// deno-lint-ignore no-explicit-any
function fallbackCounts(report: any): Map<string, number> {
  const counts = new Map<string, number>();
  const add = (table: unknown) => {
    if (!table || typeof table !== "object") return;
    for (const [name, v] of Object.entries(table as Record<string, { count?: unknown }>)) {
      const n = typeof v?.count === "number" ? v.count : NaN;
      assert.ok(Number.isFinite(n) && n >= 0, `fallbacks.${name}.count: ${JSON.stringify(v)}`);
      counts.set(name, (counts.get(name) ?? 0) + n);
    }
  };
  const perVcpu = Array.isArray(report?.vcpus) &&
    report.vcpus.some((v: { fallbacks?: unknown }) => v.fallbacks !== undefined);
  if (perVcpu) { for (const v of report.vcpus) add(v.fallbacks); }
  else add(report?.fallbacks);
  return counts;
}

/**
 * Whether KVM gave up on any instruction in the run (the report's per-vCPU
 * `exits.internal_error` or `exits.fallback`): where it runs ring 0
 * natively nothing falls back and the fallback table stays empty.
 */
// deno-lint-ignore no-explicit-any
function kvmGaveUp(report: any): boolean {
  let n = 0;
  for (const v of report?.vcpus ?? []) {
    n += (v.exits?.internal_error ?? 0) + (v.exits?.fallback ?? 0);
  }
  return n > 0;
}

Deno.test("fallback guest: the build is deterministic and carries its header", async () => {
  const a = await guestBytes("lm/fallback");
  const b = await buildGuest("lm/fallback");
  assert.ok(a.length === b.length && a.every((x, i) => x === b[i]), "two builds differ");
  const h = FALLBACK_GUEST_HEADER;
  assert.equal(new TextDecoder().decode(a.subarray(h.magicOffset, h.magicOffset + 8)), h.magic);
  const v = new DataView(a.buffer, a.byteOffset);
  const mask = v.getBigUint64(h.maskOffset, true);
  assert.equal(mask, (1n << BigInt(MAIN_CHECKS.length)) - 1n, "default mask: the main checks");
  assert.equal(v.getBigUint64(h.iterationsOffset, true), BigInt(ITERATIONS));
  assert.equal(v.getBigUint64(h.selfTestOffset, true), 0n);
  assert.ok(a.length < 64 * 1024, `${a.length} bytes: must stay below the page tables at 1 MiB`);
});

Deno.test("fallback guest self-test: its expectations hold on the CPU (snippets at CPL3 only)", async () => {
  const r = await runFallback(DIFFERENTIAL, { cpus: 2, selfTest: true });
  assert.match(r.stdout, /self-test/, describe(r));
  assertChecksPassed(r, DIFFERENTIAL);
});

Deno.test("fallback: every instruction KVM gives up on at CPL0 is emulated, checked against constants and CPL3", async (t) => {
  const r = await runFallback(MAIN_CHECKS, { cpus: 2 });
  const out = describe(r);
  const counts = fallbackCounts(r.report);
  // Where KVM runs ring 0 natively (VT-x/SVM on bare metal) nothing falls back;
  // on the development machines everything in FALLBACK_MNEMONICS does.
  const fellBack = kvmGaveUp(r.report);
  // One step per check, so that a failure names the instructions that failed.
  for (const c of MAIN_CHECKS) {
    await t.step(`check.${c}`, () => {
      const line = r.checks.get(c);
      assert.ok(line, `no line for check.${c} (did the guest stop before it?)\n${out}`);
      if (line.result === "skip") {
        assert.match(line.detail, /CPUID/, `check.${c} skipped without a CPU reason`);
        return;
      }
      assert.equal(line.result, "ok", `check.${c}: ${line.result} ${line.detail}`);
      if (!fellBack) return;
      for (const names of FALLBACK_MNEMONICS[c] ?? []) {
        assert.ok(
          names.some((n) => (counts.get(n) ?? 0) > 0),
          `check.${c}: the report counts no fallback of ${names.join(" or ")}; fallbacks: ${
            JSON.stringify(Object.fromEntries(counts))
          }`,
        );
      }
    });
  }
  await t.step("the run: summary, exit status, report, stderr", () => {
    assertChecksPassed(r, MAIN_CHECKS);
    assert.ok(r.report, `no --report written\n${out}`);
    assert.equal(r.report.exit?.status, 33);
  });
  await t.step("the two-vCPU counter: each BSP increment is an emulated lock cmpxchg16b", () => {
    assert.match(r.checks.get("smp_cas")?.detail ?? "", new RegExp(`2N = ${2 * ITERATIONS}\\b`));
    if (!fellBack) return;
    assert.ok(
      (counts.get("cmpxchg16b") ?? 0) >= ITERATIONS,
      `cmpxchg16b fallbacks ${counts.get("cmpxchg16b")} < ${ITERATIONS}`,
    );
  });
});

/** One bad-input or edge case in a VM of its own: the guest's check must pass. */
function alone(kind: "bad input" | "edge case", check: Check, what: string): void {
  Deno.test(`fallback, ${kind}: ${what}`, async () => {
    const r = await runFallback([check]);
    assertChecksPassed(r, [check]);
  });
}

alone(
  "bad input",
  "bad_rip",
  "a jump to a page not mapped or to a non-canonical address faults in the guest (#PF, #GP)",
);
alone(
  "bad input",
  "bad_rip_straddle",
  "an emulated instruction split by an unmapped page boundary is a #PF for the fetch; one that ends at the boundary runs",
);
alone(
  "bad input",
  "ud_invalid",
  "undefined opcodes (ud0, ud1, 0f 04, 0f 0a, ud2, salc) reach the guest's #UD handler, 16 bytes its #GP handler",
);
alone(
  "bad input",
  "mmio_span",
  "emulated accesses that span RAM and MMIO (the HPET) read both correctly",
);
alone("edge case", "int1", "int1 (icebp) at CPL0 reaches the guest's #DB handler as a trap");
alone("edge case", "int_imm", "int $3 (cd 03) at CPL0 reaches the guest's #BP handler as a trap");

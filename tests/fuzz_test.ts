// The device fuzzer (tools/fuzz.ts, tests/guests/lm/fuzz.S): the replay of
// the guest's operation stream against what the guest did, the harness's
// outcome rules and minimization, and a short campaign in every mode (the
// long one is `deno task fuzz`).
import assert from "node:assert/strict";
import {
  cpuStream,
  fuzz,
  FUZZ_GUEST_HEADER,
  FUZZ_MODES,
  fuzzToml,
  isFailure,
  minimize,
  parseArgs,
  parseWindows,
  patchGuest,
  prngCheck,
  replay,
  rssGrowth,
  runFuzz,
  type RunParams,
  type RunResult,
  SplitMix64,
} from "../tools/fuzz.ts";
import { dhyve, guestBytes, Scratch } from "./helpers.ts";

Deno.test("fuzz: splitmix64 gives the reference outputs", () => {
  // splitmix64.c (Vigna): seeded with 0, the first outputs are these.
  const r = new SplitMix64(0n);
  assert.equal(r.next(), 0xe220a8397b1dcdafn);
  assert.equal(r.next(), 0x6e789e6aa1b965f4n);
  assert.equal(r.next(), 0x06c45d188009454fn);
  // vCPU streams differ and vCPU 0's is the seed's.
  assert.equal(cpuStream(5, 0).next(), new SplitMix64(5n).next());
  assert.notEqual(cpuStream(5, 1).next(), cpuStream(5, 0).next());
});

Deno.test("fuzz: the guest's windows table covers every device window", async () => {
  const image = await guestBytes("lm/fuzz");
  const w = parseWindows(image);
  assert.equal(w.at(-1)!.cumulative, 256);
  const names = w.map((x) => x.name);
  for (
    const n of ["com1", "com2", "rtc", "i8042d", "i8042c", "pm", "post", "pciport", "cfg1", "ecam"]
      .concat(["hpet", "bar0reg", "msix", "pba", "restore"])
  ) assert.ok(names.includes(n), n);
  for (const x of w) {
    assert.ok(x.weight > 0, x.name);
    if (x.kind === "port") assert.deepEqual([...new Set(x.widths)].sort(), [1, 2, 4], x.name);
    else if (x.kind !== "cfg1") assert.deepEqual([...x.widths], [1, 2, 4, 8], x.name);
  }
  assert.throws(() => parseWindows(new Uint8Array(128)), /not the fuzz guest/);
});

Deno.test("fuzz: the replay fixes up message data and VM-ending writes", async () => {
  const w = parseWindows(await guestBytes("lm/fuzz"));
  const r = replay(w, { seed: 12345, cpu: 0, ops: 20000 });
  assert.equal(r.ops.length, 20000);
  let fixedMsi = 0, fixedPort = 0;
  for (const op of r.ops) {
    if (!op.write) continue;
    assert.ok(!op.raw && !op.ends, "no raw operation without a raw shift");
    if (op.window.kind === "port" && op.address === 0xcf9) assert.equal(op.value & 4n, 0n);
    if (op.window.kind === "port" && op.address === 0x60) assert.equal(op.value & 1n, 1n);
    if (op.window.kind === "port" && op.address === 0x404) assert.equal(op.value & 0x2000n, 0n);
    if (op.window.name === "msix" && op.offset === 8 && op.width >= 2) {
      assert.equal(op.value & 0x720n, 0x20n, "vector >= 32, fixed delivery");
    }
    if (op.unfixed !== undefined) {
      if (op.window.kind === "port" && op.address < 0xcfc) fixedPort++;
      else fixedMsi++;
    }
  }
  assert.ok(fixedMsi > 0 && fixedPort > 0, `fix-ups seen: msi ${fixedMsi}, port ${fixedPort}`);
  // With a raw shift some writes keep their value and may end the VM.
  const raw = replay(w, { seed: 12345, cpu: 0, ops: 20000, rawShift: 2 });
  assert.ok(raw.ops.some((op) => op.ends === "reset"));
  assert.notEqual(raw.hash, r.hash);
});

Deno.test("fuzz: the guest runs the stream the replay computes", async () => {
  const image = await guestBytes("lm/fuzz");
  const windows = parseWindows(image);
  const s = await Scratch.create();
  try {
    for (const [mode, seed] of [[FUZZ_MODES[0], 77], [FUZZ_MODES[2], 78]] as const) {
      await s.write("guest.bin", patchGuest(image, { seed, ops: 300, flags: mode.flags }));
      const toml = await s.write("vm.toml", fuzzToml(mode.cpus));
      const run = await dhyve(["up", "-q", "--no-ctl", toml], { timeoutMs: 60_000 });
      assert.equal(run.code, 33, run.stderr);
      const log = new TextDecoder("latin1").decode(await Deno.readFile(`${s.dir}/com1.log`));
      const boot = /fuzz boot seed=0x([0-9a-f]+) .* prng=0x([0-9a-f]+)/.exec(log);
      assert.ok(boot, log);
      assert.equal(BigInt(`0x${boot[1]}`), BigInt(seed));
      assert.equal(BigInt(`0x${boot[2]}`), prngCheck(seed), "the first 16 PRNG outputs");
      const done = /fuzz done ops=(\d+) o0=(\d+) h0=0x([0-9a-f]+)(?: o1=(\d+) h1=0x([0-9a-f]+))?/
        .exec(log);
      assert.ok(done, log);
      assert.equal(Number(done[1]), 300 * mode.cpus);
      for (let cpu = 0; cpu < mode.cpus; cpu++) {
        const want = replay(windows, { seed, cpu, ops: 300 }).hash;
        assert.equal(BigInt(`0x${done[3 + 2 * cpu]}`), want, `cpu${cpu} operation hash`);
      }
    }
  } finally {
    await s.close();
  }
});

Deno.test("fuzz: the stop field cuts the stream, and a requested reset is an outcome", async () => {
  const image = await guestBytes("lm/fuzz");
  const windows = parseWindows(image);
  const base: RunParams = {
    image,
    windows,
    mode: FUZZ_MODES[0],
    seed: 3,
    ops: 5000,
    stop: 250,
    rawShift: 0,
    timeoutMs: 60_000,
  };
  const cut = await runFuzz(base);
  assert.equal(cut.outcome, "completed", cut.detail);
  assert.equal(cut.ops, 250);
  // Every other port write raw: the first request to end the VM is a write
  // of RST_CPU to 0xCF9 (RST_CNT 0 -> 1 resets), and the run ends there at
  // the guest's request: a valid outcome, not a failure.
  let seed = 1;
  const first = (s: number) =>
    replay(windows, { seed: s, cpu: 0, ops: 2000, rawShift: 1 }).ops.find((op) => op.ends);
  while (first(seed)?.address !== 0xcf9) seed++;
  const ended = await runFuzz({ ...base, seed, ops: 2000, stop: 0, rawShift: 1 });
  assert.equal(ended.outcome, "reset", ended.detail);
  assert.equal(isFailure(ended.outcome), false);
  assert.equal(ended.ops, first(seed)!.n);
});

Deno.test("fuzz: minimize finds the shortest failing prefix", async () => {
  const fake = (stop: number | undefined, ops: number): RunResult => {
    const n = stop || ops;
    return {
      outcome: n >= 1234 ? "dhyve-error" : "completed",
      detail: "",
      status: n >= 1234 ? 4 : 33,
      ops: n,
      irqs: 0,
      unclaimed: 0,
      rssBytes: 0,
      ms: 0,
    };
  };
  const p = { ops: 20000, rawShift: 0 } as RunParams;
  const m = await minimize(p, 1, () => {}, (q) => Promise.resolve(fake(q.stop, q.ops)));
  assert.equal(m?.ops, 1234);
  assert.ok(m!.runs <= 17, `${m!.runs} runs`);
  const never = await minimize(p, 1, () => {}, (q) => Promise.resolve(fake(0, q.ops - 20000)));
  assert.equal(never, undefined);
});

Deno.test("fuzz: RSS growth and the command line", () => {
  assert.equal(rssGrowth([100, 101, 99, 100, 102, 100, 101, 100]), undefined);
  assert.match(rssGrowth([100, 100, 100, 100, 110, 120, 130, 140]) ?? "", /last/);
  const d = parseArgs([]);
  assert.deepEqual(
    [d.seeds, d.firstSeed, d.ops, d.modes.length, d.jobs, d.minimize, d.quiet],
    [200, 1, 20000, 4, 1, true, false],
  );
  const o = parseArgs(["--seed", "9", "--ops", "50", "--mode", "2cpu-irq", "--jobs", "2"]);
  assert.deepEqual([o.seeds, o.firstSeed, o.ops, o.modes.map((m) => m.name)], [1, 9, 50, [
    "2cpu-irq",
  ]]);
  assert.throws(() => parseArgs(["--mode", "3cpu"]), /unknown mode/);
  assert.equal(FUZZ_GUEST_HEADER.magic, "DHYVEFZ1");
});

Deno.test({
  name: "fuzz: a short campaign in every mode has no dhyve-side error",
  // 3 seeds x 2,000 operations per vCPU in each of the four modes.
  fn: async () => {
    const figures = await fuzz({
      seeds: 3,
      firstSeed: 1,
      ops: 2000,
      modes: FUZZ_MODES,
      jobs: 1,
      rawShift: 10,
      minimize: false,
      list: false,
      quiet: true,
    });
    assert.equal(figures.length, 4);
    for (const f of figures) {
      assert.equal(f.runs, 3);
      assert.deepEqual(
        f.failures.map((x) => `${x.seed}: ${x.result.outcome} ${x.result.detail}`),
        [],
        f.mode,
      );
    }
  },
});

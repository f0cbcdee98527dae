/**
 * Helpers shared by the executor's tests (exec*_test.ts): run hex bytes on a
 * {@linkcode TestMachine} and assert on the result.
 *
 * @module
 */

import assert from "node:assert/strict";
import { emulate, type EmulateOptions } from "./exec.ts";
import { snapshotCpu, TestMachine, type TestMachineOptions } from "./testing.ts";
import type { StepResult, X86Exception } from "./types.ts";

/** A machine in long mode (or `options.mode`). */
export function machine(options: TestMachineOptions = {}): TestMachine {
  return new TestMachine(options);
}

/** Writes `code` at CS:RIP and emulates one instruction. */
export function run(m: TestMachine, code: string, options?: EmulateOptions): StepResult {
  m.code(code);
  return emulate(m.cpu, m.mem, options);
}

function describe(r: StepResult): string {
  if (r.kind === "ok") return `ok (${r.insn.text})`;
  if (r.kind === "unsupported") return `unsupported: ${r.message}`;
  return `exception ${
    JSON.stringify(r.exception, (_k, v) => typeof v === "bigint" ? `0x${v.toString(16)}` : v)
  } (${r.insn?.text})`;
}

/** Asserts the instruction completed. */
export function assertOk(r: StepResult): void {
  assert.equal(r.kind, "ok", describe(r));
}

/** Asserts an exception with this vector (and error code and CR2 when given). */
export function assertException(
  r: StepResult,
  vector: number,
  errorCode?: number,
  cr2?: bigint,
): X86Exception {
  assert.equal(r.kind, "exception", describe(r));
  if (r.kind !== "exception") throw new Error("unreachable");
  assert.equal(r.exception.vector, vector, describe(r));
  if (errorCode !== undefined) assert.equal(r.exception.errorCode, errorCode, describe(r));
  if (cr2 !== undefined) assert.equal(r.exception.cr2, cr2, describe(r));
  return r.exception;
}

/**
 * Runs `code`, expecting a fault with this vector, and asserts that nothing
 * changed: registers, RIP, RFLAGS, extended state and all of memory.
 */
export function assertFaultNoChange(
  m: TestMachine,
  code: string,
  vector: number,
  errorCode?: number,
  options?: EmulateOptions,
): X86Exception {
  m.code(code);
  const before = snapshotCpu(m.cpu);
  const memBefore = m.mem.bytes.slice();
  const dirty = m.cpu.dirty;
  const r = emulate(m.cpu, m.mem, options);
  const x = assertException(r, vector, errorCode);
  assert.deepEqual(snapshotCpu(m.cpu), before, "the CPU state changed");
  // Only accessed/dirty flags of paging entries may change (as on the processor).
  const now = m.mem.bytes;
  for (let a = 0; a < now.length; a++) {
    if (now[a] !== memBefore[a] && ((now[a] ^ memBefore[a]) & ~0x60) !== 0) {
      assert.fail(`memory changed at 0x${a.toString(16)}: ${memBefore[a]} -> ${now[a]}`);
    }
  }
  assert.equal(m.cpu.dirty, dirty, "dirty bits set by a faulting instruction");
  return x;
}

/** RFLAGS bits. */
export const FL = Object.freeze({
  CF: 1n,
  PF: 4n,
  AF: 0x10n,
  ZF: 0x40n,
  SF: 0x80n,
  TF: 0x100n,
  IF: 0x200n,
  DF: 0x400n,
  OF: 0x800n,
  IOPL: 0x3000n,
  RF: 0x10000n,
  AC: 0x40000n,
});

/** The six status flags of RFLAGS. */
export function arith(rflags: bigint): bigint {
  return rflags & 0x8d5n;
}

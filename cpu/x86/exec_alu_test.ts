// General-purpose integer instructions: arithmetic, logic, shifts, bit
// operations, multiply/divide, moves, exchanges, stack, branches and flags,
// including vectors measured on an AMD Zen CPU for the flags the SDM leaves
// undefined.
import assert from "node:assert/strict";
import {
  arith,
  assertException,
  assertFaultNoChange,
  assertOk,
  FL,
  machine,
  run,
} from "./_exec_test_util.ts";
import { decode } from "./decode.ts";
import { execute } from "./exec.ts";
import { hex, TestMachine } from "./testing.ts";

const DATA = TestMachine.DATA;
const CODE = TestMachine.CODE;
const STACK = TestMachine.STACK_TOP;

function again(m: TestMachine, code: string) {
  m.cpu.rip = CODE;
  return run(m, code);
}

/**
 * Real-CPU results (AMD EPYC, Zen): bytes, assembly, [rax, rbx, rcx, rdx, rflags]
 * before and after. Produced by running each instruction natively at CPL 3.
 */
const AMD_VECTORS: [string, string, bigint[], bigint[]][] = [
  ["d2 e8", "shr al, cl", [
    0x400000000000000n,
    0x20n,
    0x92b0c4ff4ac442b9n,
    0x800000000000000n,
    0xad3n,
  ], [0x400000000000000n, 0x20n, 0x92b0c4ff4ac442b9n, 0x800000000000000n, 0x256n]],
  ["d2 e8", "shr al, cl", [0xfdn, 0x0n, 0x0n, 0x100000000n, 0xac2n], [
    0xfdn,
    0x0n,
    0x0n,
    0x100000000n,
    0xac2n,
  ]],
  ["d3 e8", "shr eax, cl", [
    0x74fe361ec5d6b5en,
    0x0n,
    0x100000000000000n,
    0xffffffffffffffffn,
    0xa82n,
  ], [0xec5d6b5en, 0x0n, 0x100000000000000n, 0xffffffffffffffffn, 0xa82n]],
  ["d3 e8", "shr eax, cl", [0x0n, 0x80000n, 0x62515617f32d355en, 0x400000000000000n, 0x293n], [
    0x0n,
    0x80000n,
    0x62515617f32d355en,
    0x400000000000000n,
    0x256n,
  ]],
  ["66 d3 e0", "shl ax, cl", [
    0x800000000000n,
    0x182ff74783681428n,
    0x0n,
    0x1000000000000000n,
    0x242n,
  ], [0x800000000000n, 0x182ff74783681428n, 0x0n, 0x1000000000000000n, 0x242n]],
  ["66 d3 e0", "shl ax, cl", [0xffffffffffffffffn, 0x0n, 0xffffffffffffffffn, 0x2en, 0xa97n], [
    0xffffffffffff0000n,
    0x0n,
    0xffffffffffffffffn,
    0x2en,
    0x256n,
  ]],
  ["48 d3 f8", "sar rax, cl", [
    0x800000000000000n,
    0x800000000000000n,
    0x3cn,
    0xffffffffffffffffn,
    0x257n,
  ], [0x0n, 0x800000000000000n, 0x3cn, 0xffffffffffffffffn, 0x257n]],
  ["48 d3 f8", "sar rax, cl", [
    0x51n,
    0x7090359ebe8e24ban,
    0x80000000n,
    0xf5a1eb36c6103d2an,
    0x2d2n,
  ], [0x51n, 0x7090359ebe8e24ban, 0x80000000n, 0xf5a1eb36c6103d2an, 0x2d2n]],
  ["66 d3 c0", "rol ax, cl", [0x5ffbd098fbc767aen, 0x8n, 0xffffffffffffffffn, 0x23n, 0xad2n], [
    0x5ffbd098fbc733d7n,
    0x8n,
    0xffffffffffffffffn,
    0x23n,
    0xad3n,
  ]],
  ["66 d3 c0", "rol ax, cl", [
    0xffffffffffffffffn,
    0x1000000000000000n,
    0x1000000000000000n,
    0x40000000000000n,
    0x256n,
  ], [0xffffffffffffffffn, 0x1000000000000000n, 0x1000000000000000n, 0x40000000000000n, 0x256n]],
  ["d2 d8", "rcr al, cl", [
    0x7db6db4202e56293n,
    0x4dc1ef01c5c405cfn,
    0x8000000000000000n,
    0xffffffffffffffffn,
    0x253n,
  ], [0x7db6db4202e56293n, 0x4dc1ef01c5c405cfn, 0x8000000000000000n, 0xffffffffffffffffn, 0x253n]],
  ["d2 d8", "rcr al, cl", [0x0n, 0x5an, 0x100000000000000n, 0x16n, 0xac3n], [
    0x0n,
    0x5an,
    0x100000000000000n,
    0x16n,
    0xac3n,
  ]],
  ["48 d3 d0", "rcl rax, cl", [0x400000000n, 0x100000000000000n, 0x94n, 0x32n, 0x207n], [
    0x40000000080000n,
    0x100000000000000n,
    0x94n,
    0x32n,
    0x206n,
  ]],
  ["48 d3 d0", "rcl rax, cl", [
    0x40n,
    0x2000000000000000n,
    0x100000000000000n,
    0x400000000000000n,
    0x253n,
  ], [0x40n, 0x2000000000000000n, 0x100000000000000n, 0x400000000000000n, 0x253n]],
  ["66 0f a5 d8", "shld ax, bx, cl", [
    0x4000000000000000n,
    0x2000000000000000n,
    0x55e1415f7944bfd4n,
    0x100000000000n,
    0x283n,
  ], [0x4000000000000000n, 0x2000000000000000n, 0x55e1415f7944bfd4n, 0x100000000000n, 0x256n]],
  ["66 0f a5 d8", "shld ax, bx, cl", [0x3bn, 0x13n, 0x0n, 0x23n, 0xad6n], [
    0x3bn,
    0x13n,
    0x0n,
    0x23n,
    0xad6n,
  ]],
  ["66 0f ad d8", "shrd ax, bx, cl", [
    0xffffffffffffffffn,
    0x0n,
    0x17n,
    0x535df3af2bbf3dd9n,
    0x2c2n,
  ], [0xffffffffffff0000n, 0x0n, 0x17n, 0x535df3af2bbf3dd9n, 0x256n]],
  ["66 0f ad d8", "shrd ax, bx, cl", [
    0x32f2c151c7d0f110n,
    0xffffffffffffffffn,
    0x80000000n,
    0xffffffffffffffffn,
    0x217n,
  ], [0x32f2c151c7d0f110n, 0xffffffffffffffffn, 0x80000000n, 0xffffffffffffffffn, 0x217n]],
  ["0f a5 d8", "shld eax, ebx, cl", [0x200000000000000n, 0x0n, 0x2n, 0xffffffffffffffffn, 0x243n], [
    0x0n,
    0x0n,
    0x2n,
    0xffffffffffffffffn,
    0x256n,
  ]],
  ["0f a5 d8", "shld eax, ebx, cl", [
    0x0n,
    0xffffffffffffffffn,
    0x817eb2fb757df125n,
    0xbb330192cd826180n,
    0x243n,
  ], [0x1fn, 0xffffffffffffffffn, 0x817eb2fb757df125n, 0xbb330192cd826180n, 0x212n]],
  ["48 0f ad d8", "shrd rax, rbx, cl", [
    0xffffffffffffffffn,
    0x2n,
    0x0n,
    0x2000000000000000n,
    0x257n,
  ], [0xffffffffffffffffn, 0x2n, 0x0n, 0x2000000000000000n, 0x257n]],
  ["48 0f ad d8", "shrd rax, rbx, cl", [
    0x2cn,
    0xd330c4aeccdc414cn,
    0x661c91cb5a72991bn,
    0x30n,
    0xad2n,
  ], [0x9b88298000000000n, 0xd330c4aeccdc414cn, 0x661c91cb5a72991bn, 0x30n, 0xa96n]],
  ["f6 e3", "mul bl", [
    0x52n,
    0x4c7c72c66be69d58n,
    0xffffffffffffffffn,
    0xa97328cb1b618137n,
    0xad7n,
  ], [0x1c30n, 0x4c7c72c66be69d58n, 0xffffffffffffffffn, 0xa97328cb1b618137n, 0xad7n]],
  ["f6 e3", "mul bl", [0x1a8999b2a95a7816n, 0x4cb55332001020f4n, 0x8en, 0x57n, 0xa57n], [
    0x1a8999b2a95a14f8n,
    0x4cb55332001020f4n,
    0x8en,
    0x57n,
    0xa57n,
  ]],
  ["48 f7 e3", "mul rbx", [0x51048f3883ca2f3dn, 0x800n, 0xc3n, 0x800baa5aa2d5f9e4n, 0xa17n], [
    0x2479c41e5179e800n,
    0x800n,
    0xc3n,
    0x288n,
    0xa17n,
  ]],
  [
    "48 f7 e3",
    "mul rbx",
    [0x40000000000n, 0x57446236ee0cea69n, 0x2en, 0x19cf6f21e5e48e79n, 0xa07n],
    [0x33a9a40000000000n, 0x57446236ee0cea69n, 0x2en, 0x15d1188dbb8n, 0xa07n],
  ],
  ["f7 eb", "imul ebx", [0x0n, 0x35n, 0x37n, 0x800000000000000n, 0xa57n], [
    0x0n,
    0x35n,
    0x37n,
    0x0n,
    0x256n,
  ]],
  ["f7 eb", "imul ebx", [0xfd87cd4574a961d3n, 0x0n, 0x87c1b15718b191f0n, 0x4000n, 0x2c2n], [
    0x0n,
    0x0n,
    0x87c1b15718b191f0n,
    0x0n,
    0x2c2n,
  ]],
  ["0f af c3", "imul eax, ebx", [0xdan, 0x16n, 0x42n, 0x8000000000000000n, 0xa43n], [
    0x12bcn,
    0x16n,
    0x42n,
    0x8000000000000000n,
    0x242n,
  ]],
  ["0f af c3", "imul eax, ebx", [0x2bn, 0xc9c6de6134fc22afn, 0xffffffffffffffffn, 0x0n, 0x2c7n], [
    0xe659d365n,
    0xc9c6de6134fc22afn,
    0xffffffffffffffffn,
    0x0n,
    0xac7n,
  ]],
  ["f7 f3", "div ebx", [0x0n, 0xa914fa71873c788cn, 0x7bn, 0x80000000000000n, 0xa06n], [
    0x0n,
    0xa914fa71873c788cn,
    0x7bn,
    0x0n,
    0xa12n,
  ]],
  ["f7 f3", "div ebx", [0x91n, 0x1aac09392d2f0b76n, 0x0n, 0x400000000000000n, 0x2d7n], [
    0x0n,
    0x1aac09392d2f0b76n,
    0x0n,
    0x91n,
    0x213n,
  ]],
  ["48 f7 fb", "idiv rbx", [0xccn, 0x2052f7d60803893fn, 0xeen, 0x0n, 0x216n], [
    0x0n,
    0x2052f7d60803893fn,
    0xeen,
    0xccn,
    0x212n,
  ]],
  ["48 f7 fb", "idiv rbx", [0x2n, 0x2000000000000000n, 0x0n, 0x1n, 0xa03n], [
    0x8n,
    0x2000000000000000n,
    0x0n,
    0x2n,
    0xa13n,
  ]],
  ["f6 f3", "div bl", [0xa5n, 0xffffffffffffffffn, 0x0n, 0x8000000000000000n, 0xa03n], [
    0xa500n,
    0xffffffffffffffffn,
    0x0n,
    0x8000000000000000n,
    0xa13n,
  ]],
  ["f6 f3", "div bl", [0x45n, 0x7ad8f67f3c16467cn, 0x0n, 0x3n, 0xa17n], [
    0x4500n,
    0x7ad8f67f3c16467cn,
    0x0n,
    0x3n,
    0xa13n,
  ]],
  ["0f bc c3", "bsf eax, ebx", [0x2000000n, 0x1fn, 0x100n, 0x8000000000000000n, 0x243n], [
    0x0n,
    0x1fn,
    0x100n,
    0x8000000000000000n,
    0x206n,
  ]],
  ["0f bc c3", "bsf eax, ebx", [0xffffffffffffffffn, 0x800000000000000n, 0x87n, 0x0n, 0xa52n], [
    0xffffffffffffffffn,
    0x800000000000000n,
    0x87n,
    0x0n,
    0x246n,
  ]],
  ["66 0f bd c3", "bsr ax, bx", [
    0x4000000000000000n,
    0x100000000n,
    0xcb3519504854d348n,
    0x8c9fe2b33020d83fn,
    0x247n,
  ], [0x4000000000000000n, 0x100000000n, 0xcb3519504854d348n, 0x8c9fe2b33020d83fn, 0x246n]],
  ["66 0f bd c3", "bsr ax, bx", [0x0n, 0x13n, 0x10000000000n, 0x1000000000000000n, 0xa97n], [
    0x4n,
    0x13n,
    0x10000000000n,
    0x1000000000000000n,
    0x202n,
  ]],
  ["f3 48 0f bc c3", "tzcnt rax, rbx", [
    0x200000000000000n,
    0xffffffffffffffffn,
    0xffffffffffffffffn,
    0x0n,
    0x2d2n,
  ], [0x0n, 0xffffffffffffffffn, 0xffffffffffffffffn, 0x0n, 0x242n]],
  ["f3 48 0f bc c3", "tzcnt rax, rbx", [
    0xa92e2ba46951461en,
    0xffffffffffffffffn,
    0x400000000000000n,
    0x2000000000000000n,
    0xa03n,
  ], [0x0n, 0xffffffffffffffffn, 0x400000000000000n, 0x2000000000000000n, 0xa42n]],
  ["f3 0f bd c3", "lzcnt eax, ebx", [0x3fn, 0x0n, 0x2000000000000000n, 0x100000000n, 0xa13n], [
    0x20n,
    0x0n,
    0x2000000000000000n,
    0x100000000n,
    0xa03n,
  ]],
  ["f3 0f bd c3", "lzcnt eax, ebx", [
    0x4fn,
    0x800000000000n,
    0xffffffffffffffffn,
    0x200000000000000n,
    0xa43n,
  ], [0x20n, 0x800000000000n, 0xffffffffffffffffn, 0x200000000000000n, 0xa03n]],
  ["66 f3 0f b8 c3", "popcnt ax, bx", [
    0xffffffffffffffffn,
    0x1n,
    0x25n,
    0x800000000000000n,
    0x297n,
  ], [0xffffffffffff0001n, 0x1n, 0x25n, 0x800000000000000n, 0x202n]],
  ["66 f3 0f b8 c3", "popcnt ax, bx", [
    0x6315286e11f3e451n,
    0x0n,
    0xan,
    0x70a4b77d1cf5f8een,
    0xa97n,
  ], [0x6315286e11f30000n, 0x0n, 0xan, 0x70a4b77d1cf5f8een, 0x242n]],
  ["48 0f a3 d8", "bt rax, rbx", [
    0xde56a52f2c5fa91n,
    0x200000000000000n,
    0xf7n,
    0xffffffffffffffffn,
    0xa47n,
  ], [0xde56a52f2c5fa91n, 0x200000000000000n, 0xf7n, 0xffffffffffffffffn, 0xa47n]],
  ["48 0f a3 d8", "bt rax, rbx", [
    0xffffffffffffffffn,
    0xffffffffffffffffn,
    0x0n,
    0xb5f9adc897a9d0afn,
    0xac6n,
  ], [0xffffffffffffffffn, 0xffffffffffffffffn, 0x0n, 0xb5f9adc897a9d0afn, 0xac7n]],
  ["0f bb d8", "btc eax, ebx", [0xffffffffffffffffn, 0x1000000000000000n, 0x0n, 0x1n, 0xa57n], [
    0xfffffffen,
    0x1000000000000000n,
    0x0n,
    0x1n,
    0xa57n,
  ]],
  ["0f bb d8", "btc eax, ebx", [
    0x400000000000000n,
    0x0n,
    0x200000000000000n,
    0xffffffffffffffffn,
    0x283n,
  ], [0x1n, 0x0n, 0x200000000000000n, 0xffffffffffffffffn, 0x282n]],
  ["20 d8", "and al, bl", [0x0n, 0xc24b9bf49ea63318n, 0xd1be7dcf0244378cn, 0x4000000n, 0x2d3n], [
    0x0n,
    0xc24b9bf49ea63318n,
    0xd1be7dcf0244378cn,
    0x4000000n,
    0x246n,
  ]],
  ["20 d8", "and al, bl", [
    0x2000000000000000n,
    0x0n,
    0xffffffffffffffffn,
    0x80c8b667bb002bb1n,
    0x286n,
  ], [0x2000000000000000n, 0x0n, 0xffffffffffffffffn, 0x80c8b667bb002bb1n, 0x246n]],
  ["48 85 d8", "test rax, rbx", [0x20n, 0xffffffffffffffffn, 0x1bn, 0x1630f3250a6f77d7n, 0xad2n], [
    0x20n,
    0xffffffffffffffffn,
    0x1bn,
    0x1630f3250a6f77d7n,
    0x202n,
  ]],
  ["48 85 d8", "test rax, rbx", [0x400000000000000n, 0x61n, 0x7ba464662b4e13acn, 0x4n, 0x293n], [
    0x400000000000000n,
    0x61n,
    0x7ba464662b4e13acn,
    0x4n,
    0x246n,
  ]],
  ["f7 d8", "neg eax", [
    0xffffffffffffffffn,
    0x453c65b0f94d566fn,
    0x200000000000n,
    0x2000000000000000n,
    0x212n,
  ], [0x1n, 0x453c65b0f94d566fn, 0x200000000000n, 0x2000000000000000n, 0x213n]],
  ["f7 d8", "neg eax", [0x400000000000n, 0x2n, 0x3a64fbeb74bfa43an, 0xffffffffffffffffn, 0x253n], [
    0x0n,
    0x2n,
    0x3a64fbeb74bfa43an,
    0xffffffffffffffffn,
    0x246n,
  ]],
  ["66 11 d8", "adc ax, bx", [
    0xc70c2c8a1285c4d5n,
    0x8000000000000000n,
    0xe1915091bbde6e3en,
    0xffffffffffffffffn,
    0x2d2n,
  ], [0xc70c2c8a1285c4d5n, 0x8000000000000000n, 0xe1915091bbde6e3en, 0xffffffffffffffffn, 0x282n]],
  ["66 11 d8", "adc ax, bx", [0x2n, 0x28n, 0xa1n, 0x100000000000000n, 0xa02n], [
    0x2an,
    0x28n,
    0xa1n,
    0x100000000000000n,
    0x202n,
  ]],
  ["48 19 d8", "sbb rax, rbx", [0x18n, 0x8dn, 0x0n, 0x800000000000000n, 0xa93n], [
    0xffffffffffffff8an,
    0x8dn,
    0x0n,
    0x800000000000000n,
    0x293n,
  ]],
  ["48 19 d8", "sbb rax, rbx", [0x40000000000n, 0x73n, 0x2000n, 0x8000000000000n, 0xa47n], [
    0x3ffffffff8cn,
    0x73n,
    0x2000n,
    0x8000000000000n,
    0x212n,
  ]],
  ["0f b1 cb", "cmpxchg ebx, ecx", [0x3n, 0x4000000n, 0x100000000000000n, 0x17n, 0xa17n], [
    0x4000000n,
    0x4000000n,
    0x100000000000000n,
    0x17n,
    0x287n,
  ]],
  ["0f b1 cb", "cmpxchg ebx, ecx", [
    0x4000000000n,
    0x330dda44084b06fen,
    0x200000000000n,
    0xcfn,
    0x212n,
  ], [0x84b06fen, 0x330dda44084b06fen, 0x200000000000n, 0xcfn, 0x293n]],
  [
    "48 0f c1 d8",
    "xadd rax, rbx",
    [0x60n, 0x544fd1e74b21ad7dn, 0x1bf548c8da6ad285n, 0x0n, 0xa46n],
    [0x544fd1e74b21adddn, 0x60n, 0x1bf548c8da6ad285n, 0x0n, 0x206n],
  ],
  ["48 0f c1 d8", "xadd rax, rbx", [
    0xbe065370cff15d9dn,
    0xe6a2b6bbd3ea2d16n,
    0x400000000000000n,
    0x800000000000000n,
    0x243n,
  ], [0xa4a90a2ca3db8ab3n, 0xbe065370cff15d9dn, 0x400000000000000n, 0x800000000000000n, 0x293n]],
];

Deno.test("measured AMD results, undefined flags included (CPUID vendor AuthenticAMD)", () => {
  const m = machine({ vendor: "amd" });
  const c = m.cpu;
  for (const [code, text, input, output] of AMD_VECTORS) {
    c.gpr[0] = input[0];
    c.gpr[3] = input[1];
    c.gpr[1] = input[2];
    c.gpr[2] = input[3];
    c.rflags = input[4];
    const r = again(m, code);
    if (r.kind === "exception") continue; // #DE cases are not in the table
    assertOk(r);
    const got = [c.gpr[0], c.gpr[3], c.gpr[1], c.gpr[2], c.rflags];
    assert.deepEqual(
      got.map((v) => v.toString(16)),
      output.map((v) => v.toString(16)),
      `${text} ${input.map((v) => v.toString(16))}`,
    );
  }
});

Deno.test("add/adc/sub/sbb/cmp: CF, OF, AF, SF, ZF, PF at each size, and AH", () => {
  const m = machine();
  const c = m.cpu;
  const cases: [string, bigint, bigint, bigint, bigint, bigint][] = [
    // code, rax, rbx, rflags in, rax out, status flags out
    ["00 d8", 0x7fn, 0x01n, 2n, 0x80n, FL.OF | FL.SF | FL.AF], // add al,bl
    ["00 d8", 0xffn, 0x01n, 2n, 0x00n, FL.CF | FL.ZF | FL.AF | FL.PF],
    ["66 01 d8", 0x8000n, 0x8000n, 2n, 0n, FL.CF | FL.OF | FL.ZF | FL.PF], // add ax,bx
    ["11 d8", 0xffff_ffffn, 0n, 2n | FL.CF, 0n, FL.CF | FL.ZF | FL.AF | FL.PF], // adc eax,ebx
    ["48 29 d8", 0n, 1n, 2n, (1n << 64n) - 1n, FL.CF | FL.SF | FL.AF | FL.PF], // sub rax,rbx
    ["48 19 d8", 5n, 5n, 2n | FL.CF, (1n << 64n) - 1n, FL.CF | FL.SF | FL.AF | FL.PF], // sbb rax,rbx
    ["80 ec 01", 0x0000n, 0n, 2n, 0xff00n, FL.CF | FL.SF | FL.AF | FL.PF], // sub ah,0x1
    ["3c 80", 0x7fn, 0n, 2n, 0x7fn, FL.CF | FL.OF | FL.SF | FL.PF], // cmp al,0x80
  ];
  for (const [code, a, b, fin, out, flags] of cases) {
    c.gpr[0] = a;
    c.gpr[3] = b;
    c.rflags = fin;
    assertOk(again(m, code));
    assert.equal(c.gpr[0], out, code);
    assert.equal(arith(c.rflags), flags, code);
  }
});

Deno.test("32-bit results zero-extend, 8/16-bit results merge", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[0] = 0xffff_ffff_ffff_ffffn;
  assertOk(run(m, "83 c0 01")); // add eax,0x1
  assert.equal(c.gpr[0], 0n);
  c.gpr[0] = 0x1111_2222_3333_4444n;
  assertOk(again(m, "66 83 c0 01")); // add ax,0x1
  assert.equal(c.gpr[0], 0x1111_2222_3333_4445n);
  assertOk(again(m, "80 c4 01")); // add ah,0x1
  assert.equal(c.gpr[0], 0x1111_2222_3333_4545n);
  assertOk(again(m, "48 83 c0 ff")); // add rax,-1 (imm8 sign-extended)
  assert.equal(c.gpr[0], 0x1111_2222_3333_4544n);
});

Deno.test("inc/dec keep CF; neg sets CF for a non-zero operand; not changes no flags", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[0] = 0xffn;
  c.rflags = 2n | FL.CF;
  assertOk(run(m, "fe c0")); // inc al
  assert.equal(arith(c.rflags), FL.CF | FL.ZF | FL.AF | FL.PF);
  c.gpr[0] = 0x80n;
  c.rflags = 2n;
  assertOk(again(m, "fe c8")); // dec al
  assert.equal(c.gpr[0], 0x7fn);
  assert.equal(arith(c.rflags), FL.OF | FL.AF);
  c.gpr[0] = 0n;
  c.rflags = 2n | FL.CF;
  assertOk(again(m, "48 f7 d8")); // neg rax
  assert.equal(arith(c.rflags), FL.ZF | FL.PF);
  c.rflags = 2n | FL.CF;
  assertOk(again(m, "48 f7 d0")); // not rax
  assert.equal(c.gpr[0], (1n << 64n) - 1n);
  assert.equal(c.rflags, 2n | FL.CF);
});

Deno.test("shifts: masked counts, a zero count changes no flags (but zero-extends), CF/OF", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[0] = 0xffff_ffff_8000_0001n;
  c.gpr[1] = 0x20n; // masked to 0 for 32-bit
  c.rflags = 2n | FL.CF | FL.OF;
  assertOk(run(m, "d3 e0")); // shl eax,cl
  assert.equal(c.gpr[0], 0x8000_0001n);
  assert.equal(c.rflags, 2n | FL.CF | FL.OF);
  assertOk(again(m, "d1 e0")); // shl eax,1
  assert.equal(c.gpr[0], 2n);
  assert.equal(
    c.rflags & (FL.CF | FL.OF),
    FL.CF | FL.OF,
    "CF = old bit 31; OF = CF xor new bit 31",
  );
  c.gpr[0] = 0x80n;
  assertOk(again(m, "d0 f8")); // sar al,1
  assert.equal(c.gpr[0], 0xc0n);
  assert.equal(c.rflags & (FL.CF | FL.OF), 0n);
  c.gpr[0] = 0x81n;
  c.gpr[1] = 9n;
  c.rflags = 2n | FL.CF;
  assertOk(again(m, "d2 d0")); // rcl al,cl: a 9-bit rotate by 9 is the identity
  assert.equal(c.gpr[0], 0x81n);
  assert.equal(c.rflags & FL.CF, FL.CF);
  c.gpr[1] = 1n;
  assertOk(again(m, "d2 d0")); // rcl al,1: CF into bit 0, bit 7 into CF
  assert.equal(c.gpr[0], 0x03n);
  assert.equal(c.rflags & (FL.CF | FL.OF), FL.CF | FL.OF);
  c.gpr[0] = 0x8000_0000_0000_0001n;
  assertOk(again(m, "48 d1 c8")); // ror rax,1
  assert.equal(c.gpr[0], 0xc000_0000_0000_0000n);
  assert.equal(c.rflags & (FL.CF | FL.OF), FL.CF);
});

Deno.test("shld/shrd move bits in from the source", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[0] = 0x1234_5678n;
  c.gpr[3] = 0x9abc_def0n;
  assertOk(run(m, "0f a4 d8 08")); // shld eax,ebx,0x8
  assert.equal(c.gpr[0], 0x3456_789an);
  assertOk(again(m, "0f ac d8 10")); // shrd eax,ebx,0x10
  assert.equal(c.gpr[0], 0xdef0_3456n);
});

Deno.test("bt/bts/btr/btc: register offsets reach beyond the operand in memory", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[7] = DATA + 0x100n;
  c.gpr[0] = 70n; // bit 6 of the qword at +8
  assertOk(run(m, "48 0f ab 07")); // bts QWORD PTR [rdi],rax
  assert.equal(m.peek(DATA + 0x108n, 8), 0x40n);
  assert.equal(c.rflags & FL.CF, 0n);
  c.gpr[0] = -1n & ((1n << 64n) - 1n); // bit -1: bit 63 of the qword at -8
  assertOk(again(m, "48 0f bb 07")); // btc QWORD PTR [rdi],rax
  assert.equal(m.peek(DATA + 0xf8n, 8), 1n << 63n);
  assertOk(again(m, "48 0f a3 07")); // bt QWORD PTR [rdi],rax
  assert.equal(c.rflags & FL.CF, FL.CF);
  c.gpr[0] = 70n;
  assertOk(again(m, "0f ba 37 46")); // btr DWORD PTR [rdi],0x46: immediates wrap (bit 6)
  assert.equal(m.peek(DATA + 0x100n, 4), 0n);
  c.gpr[3] = 0x10n;
  c.gpr[1] = 68n;
  assertOk(again(m, "48 0f a3 cb")); // bt rbx,rcx: register operands wrap (bit 4)
  assert.equal(c.rflags & FL.CF, FL.CF);
});

Deno.test("bsf/bsr of 0 leave the destination; tzcnt/lzcnt; lzcnt without ABM is bsr", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[0] = 0x1234n;
  c.gpr[3] = 0n;
  assertOk(run(m, "48 0f bc c3")); // bsf rax,rbx
  assert.equal(c.gpr[0], 0x1234n);
  assert.equal(c.rflags & FL.ZF, FL.ZF);
  c.gpr[3] = 0x8000_0000_0000_0100n;
  assertOk(again(m, "48 0f bc c3"));
  assert.equal(c.gpr[0], 8n);
  assertOk(again(m, "48 0f bd c3")); // bsr rax,rbx
  assert.equal(c.gpr[0], 63n);
  c.gpr[3] = 0n;
  assertOk(again(m, "f3 48 0f bc c3")); // tzcnt rax,rbx
  assert.equal(c.gpr[0], 64n);
  assert.equal(c.rflags & (FL.CF | FL.ZF), FL.CF);
  c.gpr[3] = 1n;
  assertOk(again(m, "f3 0f bd c3")); // lzcnt eax,ebx
  assert.equal(c.gpr[0], 31n);
  const old = machine({ cpuid: { [`${0x80000001}`]: [0, 0, 1, 0x2c100800] } });
  old.cpu.gpr[3] = 1n;
  assertOk(run(old, "f3 0f bd c3")); // lzcnt runs as bsr
  assert.equal(old.cpu.gpr[0], 0n);
});

Deno.test("mul/imul: 1-, 2- and 3-operand forms, CF = OF on overflow", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[0] = 0xffff_ffff_ffff_ffffn;
  c.gpr[3] = 2n;
  assertOk(run(m, "48 f7 e3")); // mul rbx
  assert.equal(c.gpr[0], 0xffff_ffff_ffff_fffen);
  assert.equal(c.gpr[2], 1n);
  assert.equal(c.rflags & (FL.CF | FL.OF), FL.CF | FL.OF);
  c.gpr[0] = 0xffff_ffff_ffff_ffffn; // -1
  assertOk(again(m, "48 f7 eb")); // imul rbx
  assert.equal(c.gpr[0], 0xffff_ffff_ffff_fffen);
  assert.equal(c.gpr[2], 0xffff_ffff_ffff_ffffn);
  assert.equal(c.rflags & (FL.CF | FL.OF), 0n);
  c.gpr[0] = 0x80n;
  c.gpr[3] = 0x2n;
  assertOk(again(m, "f6 e3")); // mul bl: AX = 0x100
  assert.equal(c.gpr[0], 0x100n);
  c.gpr[3] = 0x4000_0000n;
  assertOk(again(m, "6b c3 02")); // imul eax,ebx,0x2
  assert.equal(c.gpr[0], 0x8000_0000n);
  assert.equal(c.rflags & (FL.CF | FL.OF), FL.CF | FL.OF);
  c.gpr[0] = 3n;
  c.gpr[3] = 0xffff_ffff_ffff_fffbn; // -5
  assertOk(again(m, "48 0f af c3")); // imul rax,rbx
  assert.equal(c.gpr[0], 0xffff_ffff_ffff_fff1n);
  assert.equal(c.rflags & (FL.CF | FL.OF), 0n);
});

Deno.test("div/idiv: quotient and remainder, #DE for zero and overflow with nothing changed", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[2] = 1n;
  c.gpr[0] = 0n;
  c.gpr[3] = 3n;
  assertOk(run(m, "48 f7 f3")); // div rbx: 2^64 / 3
  assert.equal(c.gpr[0], 0x5555_5555_5555_5555n);
  assert.equal(c.gpr[2], 1n);
  c.gpr[2] = 0xffff_ffff_ffff_ffffn;
  c.gpr[0] = 0xffff_ffff_ffff_fff9n; // -7
  c.gpr[3] = 2n;
  assertOk(again(m, "48 f7 fb")); // idiv rbx: -7 / 2 = -3 rem -1
  assert.equal(c.gpr[0], 0xffff_ffff_ffff_fffdn);
  assert.equal(c.gpr[2], 0xffff_ffff_ffff_ffffn);
  c.rip = CODE;
  c.gpr[3] = 0n;
  assertFaultNoChange(m, "48 f7 f3", 0);
  c.gpr[2] = 0n;
  c.gpr[0] = 0x8000n; // -32768 / -1 overflows 8 bits... with AX / BL
  c.gpr[3] = 0xffn;
  assertFaultNoChange(m, "f6 fb", 0); // idiv bl
  c.gpr[2] = 5n;
  c.gpr[3] = 5n;
  assertFaultNoChange(m, "f7 f3", 0); // div ebx: quotient too big
});

Deno.test("movzx/movsx/movsxd, cmov (32-bit zero-extends even when false), setcc", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[3] = 0x80n;
  assertOk(run(m, "48 0f be c3")); // movsx rax,bl
  assert.equal(c.gpr[0], 0xffff_ffff_ffff_ff80n);
  assertOk(again(m, "0f b6 c3")); // movzx eax,bl
  assert.equal(c.gpr[0], 0x80n);
  c.gpr[3] = 0x8000_0000n;
  assertOk(again(m, "48 63 c3")); // movsxd rax,ebx
  assert.equal(c.gpr[0], 0xffff_ffff_8000_0000n);
  c.rflags = 2n;
  assertOk(again(m, "0f 44 c3")); // cmove eax,ebx (ZF = 0: not taken)
  assert.equal(c.gpr[0], 0x8000_0000n, "zero-extended");
  c.rflags = 2n | FL.ZF;
  c.gpr[3] = 7n;
  assertOk(again(m, "48 0f 44 c3")); // cmove rax,rbx
  assert.equal(c.gpr[0], 7n);
  c.rflags = 2n | FL.SF;
  assertOk(again(m, "0f 9c c0")); // setl al: SF != OF
  assert.equal(c.gpr[0], 1n);
});

Deno.test("xchg, xadd and cmpxchg register forms", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[0] = 1n;
  c.gpr[3] = 0xffff_ffff_0000_0002n;
  assertOk(run(m, "93")); // xchg ebx,eax: both zero-extended
  assert.equal(c.gpr[0], 2n);
  assert.equal(c.gpr[3], 1n);
  c.gpr[0] = 0xffff_ffff_0000_0000n;
  assertOk(again(m, "90")); // nop (xchg eax,eax) does not zero-extend
  assert.equal(c.gpr[0], 0xffff_ffff_0000_0000n);
  c.gpr[0] = 5n;
  c.gpr[3] = 5n;
  c.gpr[1] = 9n;
  assertOk(again(m, "48 0f b1 cb")); // cmpxchg rbx,rcx: equal
  assert.equal(c.gpr[3], 9n);
  assert.equal(c.rflags & FL.ZF, FL.ZF);
});

Deno.test("cbw/cwde/cdqe/cwd/cdq/cqo, bswap, movbe, crc32", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[0] = 0x80n;
  assertOk(run(m, "66 98")); // cbw
  assert.equal(c.gpr[0], 0xff80n);
  assertOk(again(m, "98")); // cwde
  assert.equal(c.gpr[0], 0xffff_ff80n);
  assertOk(again(m, "48 98")); // cdqe
  assert.equal(c.gpr[0], 0xffff_ffff_ffff_ff80n);
  assertOk(again(m, "48 99")); // cqo
  assert.equal(c.gpr[2], 0xffff_ffff_ffff_ffffn);
  c.gpr[0] = 0x1122_3344_5566_7788n;
  assertOk(again(m, "48 0f c8")); // bswap rax
  assert.equal(c.gpr[0], 0x8877_6655_4433_2211n);
  c.gpr[7] = DATA;
  m.poke(DATA, 4, 0x1234_5678n);
  assertOk(again(m, "0f 38 f0 07")); // movbe eax,DWORD PTR [rdi]
  assert.equal(c.gpr[0], 0x7856_3412n);
  // CRC-32C of "123456789" is 0xe3069283 (initial ~0, final inversion).
  for (const [k, ch] of [..."123456789"].entries()) {
    m.poke(DATA + BigInt(k), 1, BigInt(ch.charCodeAt(0)));
  }
  c.gpr[0] = 0xffff_ffffn;
  for (let k = 0; k < 9; k++) {
    c.gpr[7] = DATA + BigInt(k);
    assertOk(again(m, "f2 0f 38 f0 07")); // crc32 eax,BYTE PTR [rdi]
  }
  assert.equal(c.gpr[0] ^ 0xffff_ffffn, 0xe306_9283n);
});

Deno.test("push/pop: sizes, immediates, pop into [rsp]-based memory, leave", () => {
  const m = machine();
  const c = m.cpu;
  assertOk(run(m, "6a ff")); // push -1 (64-bit)
  assert.equal(c.gpr[4], STACK - 8n);
  assert.equal(m.peek(STACK - 8n, 8), 0xffff_ffff_ffff_ffffn);
  assertOk(again(m, "66 6a 01")); // pushw 0x1
  assert.equal(c.gpr[4], STACK - 10n);
  assertOk(again(m, "66 58")); // pop ax
  assert.equal(c.gpr[0] & 0xffffn, 1n);
  assertOk(again(m, "54")); // push rsp: the old value
  assert.equal(m.peek(STACK - 16n, 8), STACK - 8n);
  assertOk(again(m, "5c")); // pop rsp
  assert.equal(c.gpr[4], STACK - 8n);
  c.gpr[5] = STACK - 0x20n;
  m.poke(STACK - 0x20n, 8, 0x1234n);
  assertOk(again(m, "c9")); // leave
  assert.equal(c.gpr[5], 0x1234n);
  assert.equal(c.gpr[4], STACK - 0x18n);
});

Deno.test("enter with nesting levels 0 and 2; xlat", () => {
  const m = machine();
  const c = m.cpu;
  c.gpr[5] = 0x1234n;
  assertOk(run(m, "c8 10 00 00")); // enter 0x10,0x0
  assert.equal(m.peek(STACK - 8n, 8), 0x1234n);
  assert.equal(c.gpr[5], STACK - 8n);
  assert.equal(c.gpr[4], STACK - 0x18n);
  // Level 2: push rbp, push [rbp-8] (the outer frame pointer), push the new frame.
  m.poke(STACK - 0x10n, 8, 0xaaaan);
  assertOk(again(m, "c8 08 00 02")); // enter 0x8,0x2
  const frame = STACK - 0x20n;
  assert.equal(m.peek(frame, 8), STACK - 8n, "old rbp");
  assert.equal(m.peek(frame - 8n, 8), 0xaaaan, "the copied frame pointer");
  assert.equal(m.peek(frame - 16n, 8), frame, "the new frame pointer");
  assert.equal(c.gpr[5], frame);
  assert.equal(c.gpr[4], frame - 16n - 8n);
  c.gpr[3] = DATA;
  c.gpr[0] = 0x105n;
  m.poke(DATA + 5n, 1, 0x77n);
  assertOk(again(m, "d7")); // xlat BYTE PTR ds:[rbx]
  assert.equal(c.gpr[0], 0x177n);
});

Deno.test("near branches: jcc, jmp, call, ret, loop", () => {
  const m = machine();
  const c = m.cpu;
  c.rflags = 2n | FL.ZF;
  assertOk(run(m, "74 10")); // je +0x10
  assert.equal(c.rip, CODE + 0x12n);
  assertOk(again(m, "75 10")); // jne: not taken
  assert.equal(c.rip, CODE + 2n);
  assertOk(again(m, "e8 00 01 00 00")); // call +0x100
  assert.equal(c.rip, CODE + 0x105n);
  assert.equal(m.peek(STACK - 8n, 8), CODE + 5n);
  assertOk(again(m, "c3")); // ret
  assert.equal(c.rip, CODE + 5n);
  c.gpr[1] = 2n;
  assertOk(again(m, "e2 fe")); // loop: rcx 2 -> 1, taken
  assert.equal(c.rip, CODE);
  assert.equal(c.gpr[1], 1n);
  c.gpr[0] = 0x0000_8000_0000_0000n;
  assertFaultNoChange(m, "ff e0", 13, 0); // jmp rax: non-canonical target
});

Deno.test("lahf/sahf, clc/stc/cmc/cld/std, cli/sti privilege", () => {
  const m = machine();
  const c = m.cpu;
  c.rflags = 2n | FL.CF | FL.ZF | FL.OF;
  assertOk(run(m, "9f")); // lahf
  assert.equal((c.gpr[0] >> 8n) & 0xffn, 0x43n);
  c.gpr[0] = 0xd500n;
  assertOk(again(m, "9e")); // sahf: OF untouched
  assert.equal(c.rflags, 2n | 0xd5n | FL.OF);
  assertOk(again(m, "f5")); // cmc
  assert.equal(c.rflags & FL.CF, 0n);
  assertOk(again(m, "fd")); // std
  assert.equal(c.rflags & FL.DF, FL.DF);
  assertFaultNoChange(machine({ cpl: 3 }), "fa", 13, 0); // cli at CPL 3, IOPL 0
  assertException(run(machine(), "f0 f8"), 6); // lock clc
});

Deno.test("near branches with 66h in 64-bit mode: AMD truncates RIP to 16 bits in every form", () => {
  // AMD APM Vol. 3, JMP/Jcc/CALL/RET (Near), LOOP, JrCXZ; measured on Zen by oracle_test.ts.
  const a = machine({ vendor: "amd" });
  const c = a.cpu;
  const at = (n: number) => (CODE + BigInt(n)) & 0xffffn; // next RIP + disp, 16 bits
  assertOk(run(a, "66 eb 40")); // jmp rel8, o16
  assert.equal(c.rip, at(3 + 0x40));
  c.rflags = 2n | FL.ZF;
  assertOk(again(a, "66 74 40")); // je rel8, o16
  assert.equal(c.rip, at(3 + 0x40));
  c.gpr[1] = 2n;
  assertOk(again(a, "66 e2 40")); // loop rel8, o16: RCX still counts at the address size
  assert.equal(c.rip, at(3 + 0x40));
  assert.equal(c.gpr[1], 1n);
  c.gpr[1] = 0n;
  assertOk(again(a, "66 e3 40")); // jrcxz rel8, o16
  assert.equal(c.rip, at(3 + 0x40));
  assertOk(again(a, "66 e9 40 00")); // jmp rel16
  assert.equal(c.rip, at(4 + 0x40));
  assertOk(again(a, "66 0f 84 40 00")); // je rel16
  assert.equal(c.rip, at(5 + 0x40));
  c.gpr[0] = 0x1234_5678_9abc_def0n;
  assertOk(again(a, "66 ff e0")); // jmp ax
  assert.equal(c.rip, 0xdef0n);
  assertOk(again(a, "66 e8 40 00")); // call rel16: pushes 2 bytes
  assert.equal(c.rip, at(4 + 0x40));
  assert.equal(c.gpr[4], STACK - 2n);
  assert.equal(a.peek(STACK - 2n, 2), at(4));
  assertOk(again(a, "66 c3")); // ret, o16: pops 2 bytes
  assert.equal(c.rip, at(4));
  assert.equal(c.gpr[4], STACK);
  // REX.W wins over 66h: 64 bits.
  assertOk(again(a, "66 48 eb 40")); // rex.W jmp rel8
  assert.equal(c.rip, CODE + 4n + 0x40n);
});

Deno.test("near branches with 66h in 64-bit mode: Intel ignores the prefix (rel32, 64-bit RIP, 8-byte stack slots)", () => {
  // SDM Vol. 2A, 2.2.1.7 and JMP/CALL: near branches are 64-bit in 64-bit mode.
  const m = machine({ vendor: "intel" });
  const c = m.cpu;
  assertOk(run(m, "66 eb 40")); // jmp rel8
  assert.equal(c.rip, CODE + 3n + 0x40n);
  c.gpr[1] = 2n;
  assertOk(again(m, "66 e2 40")); // loop rel8
  assert.equal(c.rip, CODE + 3n + 0x40n);
  // E9, E8, 0F 8x keep their 32-bit displacement: 6 and 7 bytes long.
  const r = again(m, "66 e9 40 00 00 00"); // jmp rel32
  assertOk(r);
  assert.equal(r.insn?.length, 6);
  assert.equal(c.rip, CODE + 6n + 0x40n);
  c.rflags = 2n | FL.ZF;
  assertOk(again(m, "66 0f 84 40 00 00 00")); // je rel32
  assert.equal(c.rip, CODE + 7n + 0x40n);
  assertOk(again(m, "66 e8 40 00 00 00")); // call rel32: pushes 8 bytes
  assert.equal(c.rip, CODE + 6n + 0x40n);
  assert.equal(c.gpr[4], STACK - 8n);
  assert.equal(m.peek(STACK - 8n, 8), CODE + 6n);
  assertOk(again(m, "66 c3")); // ret: pops 8 bytes
  assert.equal(c.rip, CODE + 6n);
  assert.equal(c.gpr[4], STACK);
  c.gpr[0] = CODE + 0x123n;
  assertOk(again(m, "66 ff e0")); // jmp rax
  assert.equal(c.rip, CODE + 0x123n);
  assertOk(again(m, "66 ff d0")); // call rax: pushes 8 bytes
  assert.equal(c.rip, CODE + 0x123n);
  assert.equal(m.peek(STACK - 8n, 8), CODE + 3n);
  // A 66h rel32 branch split over two pages is fetched in two parts and decoded again.
  const k = machine({ vendor: "intel" });
  k.cpu.rip = CODE + 0xffcn;
  assertOk(run(k, "66 e9 10 00 00 00")); // jmp rel32 across the page boundary
  assert.equal(k.cpu.rip, CODE + 0x1002n + 0x10n);
  // execute() cannot fetch the rest of an instruction the decoder read with a rel16.
  const e = machine({ vendor: "intel" });
  const x = execute(e.cpu, e.mem, decode(hex("66 e9 40 00"), 64, CODE));
  assert.equal(x.kind, "unsupported");
  assert.equal(e.cpu.rip, CODE);
});

Deno.test("call to a non-canonical target with a read-only stack: AMD #PF (push first), Intel #GP(0)", () => {
  for (const vendor of ["amd", "intel"] as const) {
    const m = machine({ vendor });
    m.pt!.map(STACK - 0x1000n, 0x3f000, { writable: false });
    m.cpu.gpr[0] = 0xda32_a7ed_59b5_eb25n;
    if (vendor === "amd") {
      const x = assertFaultNoChange(m, "ff d0", 14, 0x3); // call rax
      assert.equal(x.cr2, STACK - 8n);
    } else {
      assertFaultNoChange(m, "ff d0", 13, 0);
    }
    // A canonical target: the push faults on both.
    m.cpu.gpr[0] = CODE;
    assertFaultNoChange(m, "ff d0", 14, 0x3);
    // A writable stack: #GP(0) for the target on both, nothing pushed.
    const w = machine({ vendor });
    w.cpu.gpr[0] = 0xda32_a7ed_59b5_eb25n;
    assertFaultNoChange(w, "ff d0", 13, 0);
  }
});

Deno.test("ret outside 64-bit mode: a target beyond the CS limit is #GP(0)", () => {
  const m = machine({ mode: "protected32" });
  m.cpu.seg[1] = { ...m.cpu.seg[1], limit: 0xffff };
  m.cpu.gpr[4] = 0x3f000n;
  m.mem.set(0x3f000, 4, 0x20000n);
  assertFaultNoChange(m, "c3", 13, 0); // ret
  m.mem.set(0x3f000, 4, 0x2000n);
  assertOk(run(m, "c3"));
  assert.equal(m.cpu.rip, 0x2000n);
});

Deno.test("sti leaves an interrupt shadow only when it sets IF; cli none", () => {
  const m = machine();
  const r = run(m, "fb"); // sti, IF = 0
  assertOk(r);
  assert.equal(r.kind === "ok" && r.shadow, "sti");
  assert.equal(m.cpu.rflags & FL.IF, FL.IF);
  const again1 = again(m, "fb"); // sti, IF already 1: no shadow
  assertOk(again1);
  assert.equal(again1.kind === "ok" ? again1.shadow : "?", undefined);
  const cli = again(m, "fa");
  assertOk(cli);
  assert.equal(cli.kind === "ok" ? cli.shadow : "?", undefined);
});

// Checks every struct layout and ioctl number in kvm_abi.ts against the
// system's <linux/kvm.h>: a C program is generated from the tables, built with
// gcc, and its sizeof/offsetof/ioctl values compared one by one.
import assert from "node:assert/strict";
import { ALL_STRUCTS, IOCTL, KVM_CAP } from "./kvm_abi.ts";

async function compileAndRun(source: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "dhyve-abi-" });
  try {
    await Deno.writeTextFile(`${dir}/abi.c`, source);
    const cc = await new Deno.Command("gcc", {
      args: ["-O0", "-o", `${dir}/abi`, `${dir}/abi.c`],
      stderr: "piped",
    }).output();
    assert.equal(cc.code, 0, `gcc failed:\n${new TextDecoder().decode(cc.stderr)}`);
    const run = await new Deno.Command(`${dir}/abi`, { stdout: "piped" }).output();
    assert.equal(run.code, 0);
    return new TextDecoder().decode(run.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("kvm struct layouts match <linux/kvm.h>", async () => {
  const lines: string[] = [];
  const expected: string[] = [];
  for (const s of ALL_STRUCTS) {
    lines.push(`printf("sizeof %s %zu\\n", "${s.c}", sizeof(struct ${s.c}));`);
    expected.push(`sizeof ${s.c} ${s.size}`);
    for (const [name, path] of Object.entries(s.path)) {
      lines.push(
        `printf("offsetof %s.%s %zu\\n", "${s.c}", "${name}", offsetof(struct ${s.c}, ${path}));`,
      );
      expected.push(`offsetof ${s.c}.${name} ${(s.o as Record<string, number>)[name]}`);
    }
  }
  const src = `#include <linux/kvm.h>
#include <stdio.h>
#include <stddef.h>
int main(void) {
${lines.join("\n")}
return 0; }
`;
  const got = (await compileAndRun(src)).trim().split("\n");
  assert.deepEqual(got, expected);
});

Deno.test("ioctl numbers and capability ids match <linux/kvm.h>", async () => {
  const lines: string[] = [];
  const expected: string[] = [];
  for (const [name, value] of Object.entries(IOCTL)) {
    lines.push(`printf("%s %lu\\n", "${name}", (unsigned long)${name});`);
    expected.push(`${name} ${value}`);
  }
  for (const [name, value] of Object.entries(KVM_CAP)) {
    lines.push(`printf("KVM_CAP_%s %lu\\n", "${name}", (unsigned long)KVM_CAP_${name});`);
    expected.push(`KVM_CAP_${name} ${value}`);
  }
  const src = `#include <linux/kvm.h>
#include <stdio.h>
int main(void) {
${lines.join("\n")}
return 0; }
`;
  const got = (await compileAndRun(src)).trim().split("\n");
  assert.deepEqual(got, expected);
});

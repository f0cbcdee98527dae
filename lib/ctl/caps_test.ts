// The capability table of lib/ctl/_caps.ts against the system's <linux/kvm.h>.
import assert from "node:assert/strict";
import { KVM_CAP_NAMES } from "./_caps.ts";

Deno.test("ctl capability numbers match <linux/kvm.h>", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dhyve-caps-" });
  try {
    const lines = [...KVM_CAP_NAMES.keys()].map((n) => {
      const c = `KVM_CAP_${n.toUpperCase()}`;
      return `#ifdef ${c}\nprintf("%s %d\\n", "${n}", (int)${c});\n#else\nprintf("%s missing\\n", "${n}");\n#endif`;
    });
    await Deno.writeTextFile(
      `${dir}/caps.c`,
      `#include <linux/kvm.h>\n#include <stdio.h>\nint main(void) {\n${
        lines.join("\n")
      }\nreturn 0; }\n`,
    );
    const cc = await new Deno.Command("gcc", {
      args: ["-O0", "-o", `${dir}/caps`, `${dir}/caps.c`],
      stderr: "piped",
    }).output();
    assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
    const run = await new Deno.Command(`${dir}/caps`, { stdout: "piped" }).output();
    const got = new TextDecoder().decode(run.stdout).trim().split("\n");
    assert.deepEqual(got, [...KVM_CAP_NAMES].map(([n, v]) => `${n} ${v}`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

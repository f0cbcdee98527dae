/**
 * Test support: runs the ACPICA compiler/disassembler (`iasl`) on tables
 * and reads its verdicts. Only tests use this; they skip themselves when
 * iasl is not installed.
 *
 * @module
 */

/** The result of one iasl run. */
export interface IaslRun {
  readonly code: number;
  /** stdout and stderr together. */
  readonly output: string;
}

/** Whether `iasl` can be run. */
export function iaslAvailable(): boolean {
  try {
    return new Deno.Command("iasl", { args: ["-v"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

/** Runs iasl with `args` in `cwd`. */
export async function iasl(args: readonly string[], cwd: string): Promise<IaslRun> {
  const r = await new Deno.Command("iasl", { args: [...args], cwd }).output();
  const dec = new TextDecoder();
  return { code: r.code, output: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

/** The counts of a compilation summary ("Compilation successful. 0 Errors, 1 Warnings, 2 Remarks"). */
export interface IaslSummary {
  readonly errors: number;
  readonly warnings: number;
  readonly remarks: number;
  /** The text of each remark ("2095 Effective AML package length is zero"). */
  readonly remarkTexts: readonly string[];
}

/** Parses a compilation summary; undefined when the output has none. */
export function compileSummary(output: string): IaslSummary | undefined {
  const m = /(\d+) Errors?, (\d+) Warnings?, (\d+) Remarks?/.exec(output);
  if (!m) return undefined;
  const remarkTexts = [...output.matchAll(/^Remark\s+(\d+)\s+-\s*[\s^]*(.*)$/gm)].map((r) =>
    `${r[1]} ${r[2].replace(/\^/g, "").trim()}`
  );
  return { errors: +m[1], warnings: +m[2], remarks: +m[3], remarkTexts };
}

/** Lines of disassembler output that report a problem. */
export function problemLines(output: string): string[] {
  return output.split("\n").filter((l) =>
    /\b(Error|Warning)\b|Could not|does not contain|Invalid|\*\*\*\*/i.test(l)
  );
}

/**
 * The RSDP in the data table compiler's source format (iasl cannot
 * disassemble an RSDP file, but compiles one and computes both checksums).
 */
export function rsdpSource(f: { oemId: string; rsdt: number; xsdt: number }): string {
  const hex = (n: number, d: number) => n.toString(16).toUpperCase().padStart(d, "0");
  return [
    `[0008]                          Signature : "RSD PTR "`,
    `[0001]                           Checksum : 00`,
    `[0006]                             Oem ID : "${f.oemId}"`,
    `[0001]                           Revision : 02`,
    `[0004]                       RSDT Address : ${hex(f.rsdt, 8)}`,
    `[0004]                             Length : 00000024`,
    `[0008]                       XSDT Address : ${hex(f.xsdt, 16)}`,
    `[0001]                  Extended Checksum : 00`,
    `[0003]                           Reserved : 000000`,
    "",
  ].join("\n");
}

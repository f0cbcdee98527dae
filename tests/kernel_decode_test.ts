/**
 * The x86 decoder against binutils on a whole Linux kernel (slow test).
 *
 * Every executable section of an uncompressed x86-64 vmlinux is decoded by
 * linear sweep and compared with `objdump -d -M intel --no-show-raw-insn`
 * on every instruction boundary: the length (from objdump's next address)
 * and the mnemonic (objdump's first word after its prefix words) must agree.
 *
 * objdump's "(bad)" lines (it gives up on a byte and goes on at the next
 * one) count as agreement when the decoder throws a DecodeError there too;
 * the sweep then goes on at objdump's next address, as objdump does.
 *
 * The vmlinux is the one `deno task fetch-linux` leaves in .cache/linux/
 * (tools/fetch_linux.ts, `linuxCache()`), or $DHYVE_VMLINUX when set.
 *
 * @module
 */
import assert from "node:assert/strict";
import { SLOW_TESTS } from "./helpers.ts";
import { decodeAt, DecodeError } from "../cpu/x86/decode.ts";
import { linuxCache } from "../tools/fetch_linux.ts";

/** objdump words that are prefixes, not the mnemonic. */
const PREFIX_WORDS = new Set([
  "lock",
  "rep",
  "repz",
  "repnz",
  "repe",
  "repne",
  "data16",
  "data32",
  "addr16",
  "addr32",
  "cs",
  "ds",
  "es",
  "ss",
  "fs",
  "gs",
  "notrack",
  "bnd",
  "xacquire",
  "xrelease",
]);

function isElf(path: string): boolean {
  try {
    const f = Deno.openSync(path);
    const b = new Uint8Array(4);
    f.readSync(b);
    f.close();
    return b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
  } catch {
    return false;
  }
}

function findVmlinux(): string | null {
  const env = Deno.env.get("DHYVE_VMLINUX");
  if (env) return env;
  const cache = linuxCache();
  return isElf(cache.vmlinux) ? cache.vmlinux : null;
}

interface Section {
  name: string;
  addr: bigint;
  offset: number;
  size: number;
}

/** The executable PROGBITS sections of an ELF64 little-endian file (ELF gABI, section header table). */
function execSections(elf: Uint8Array): Section[] {
  const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  assert.equal(elf[4], 2, "not ELF64");
  assert.equal(elf[5], 1, "not little-endian");
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true);
  const shnum = dv.getUint16(0x3c, true);
  const shstrndx = dv.getUint16(0x3e, true);
  const strOff = Number(dv.getBigUint64(shoff + shstrndx * shentsize + 0x18, true));
  const out: Section[] = [];
  for (let i = 0; i < shnum; i++) {
    const h = shoff + i * shentsize;
    const type = dv.getUint32(h + 4, true);
    const flags = dv.getBigUint64(h + 8, true);
    if (type !== 1 || (flags & 4n) === 0n) continue; // SHT_PROGBITS, SHF_EXECINSTR
    let end = strOff + dv.getUint32(h, true);
    const start = end;
    while (elf[end] !== 0) end++;
    out.push({
      name: new TextDecoder().decode(elf.subarray(start, end)),
      addr: dv.getBigUint64(h + 0x10, true),
      offset: Number(dv.getBigUint64(h + 0x18, true)),
      size: Number(dv.getBigUint64(h + 0x20, true)),
    });
  }
  return out;
}

/** Streams objdump's output line by line. */
async function* objdumpLines(path: string): AsyncGenerator<string> {
  const child = new Deno.Command("objdump", {
    args: ["-d", "-M", "intel", "--no-show-raw-insn", "-w", path],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let rest = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    const text = rest + chunk;
    let start = 0;
    for (;;) {
      const nl = text.indexOf("\n", start);
      if (nl < 0) break;
      yield text.slice(start, nl);
      start = nl + 1;
    }
    rest = text.slice(start);
  }
  if (rest) yield rest;
  const st = await child.status;
  assert.ok(st.success, "objdump failed");
}

/** objdump's text without its "# target" comment, "<symbol>" and extra spaces. */
function normText(text: string): string {
  return text.replace(/\s+#.*$/, "").replace(/ <[^>]*>/g, "").replace(/\s+/g, " ").trim();
}

function mnemonicOf(text: string): string {
  const words = text.trim().split(/\s+/);
  let i = 0;
  while (i < words.length - 1 && (PREFIX_WORDS.has(words[i]) || words[i].startsWith("rex"))) i++;
  return words[i];
}

Deno.test({
  name: "decoder agrees with objdump on every instruction of a Linux kernel",
  ignore: !SLOW_TESTS,
  fn: async () => {
    const path = findVmlinux();
    if (!path) {
      throw new Error(
        "no vmlinux: run `deno task fetch-linux` or set DHYVE_VMLINUX to an uncompressed x86-64 vmlinux",
      );
    }
    const elf = await Deno.readFile(path);
    const sections = execSections(elf);
    assert.ok(sections.length > 0, "no executable sections");

    // 1. Decode rate: a plain linear sweep over all executable sections.
    let swept = 0;
    let int3 = 0;
    const t0 = performance.now();
    for (const s of sections) {
      const bytes = elf.subarray(s.offset, s.offset + s.size);
      let off = 0;
      while (off < bytes.length) {
        let n = 1;
        try {
          n = decodeAt(bytes, off, 64).length;
        } catch (e) {
          if (!(e instanceof DecodeError)) throw e;
        }
        if (n === 1 && bytes[off] === 0xcc) int3++; // the padding between functions
        off += n;
        swept++;
      }
    }
    const sweepMs = performance.now() - t0;

    // 2. Agreement with objdump, boundary by boundary.
    const byName = new Map(sections.map((s) => [s.name, s]));
    let sec: Section | null = null;
    let bytes = new Uint8Array(0);
    let pendAddr = -1n; // the objdump instruction waiting for its length
    let pendText = "";
    let checked = 0;
    let textSame = 0;
    const textDiffs: string[] = [];
    let bad = 0;
    let badAgree = 0;
    const mismatches: string[] = [];
    const check = (addr: bigint, len: number, text: string) => {
      if (!sec) return;
      const off = Number(addr - sec.addr);
      checked++;
      const want = mnemonicOf(text);
      let got = "";
      let glen = -1;
      try {
        const d = decodeAt(bytes, off, 64, addr);
        got = d.mnemonic;
        glen = d.length;
        if (want !== "(bad)") {
          const t = normText(text);
          if (t === d.text) textSame++;
          else if (
            textDiffs.length < 20 && !textDiffs.some((x) => x.startsWith(mnemonicOf(t) + ":"))
          ) {
            textDiffs.push(`${mnemonicOf(t)}: ${t} | ${d.text}`);
          }
        }
      } catch (e) {
        if (!(e instanceof DecodeError)) throw e;
        got = (e as Error).message;
      }
      if (want === "(bad)") {
        bad++;
        if (glen < 0) {
          badAgree++;
          return;
        }
      } else if (glen === len && got === want) return;
      if (mismatches.length < 50) {
        mismatches.push(
          `${addr.toString(16)}: objdump [${len}] ${text.trim()} | decoder [${glen}] ${got}`,
        );
      } else mismatches.push("");
    };
    const flush = (nextAddr: bigint) => {
      if (pendAddr >= 0n) check(pendAddr, Number(nextAddr - pendAddr), pendText);
      pendAddr = -1n;
    };
    const t1 = performance.now();
    for await (const line of objdumpLines(path)) {
      if (line.startsWith("Disassembly of section ")) {
        if (sec) flush(sec.addr + BigInt(sec.size));
        const name = line.slice(23, -1);
        sec = byName.get(name) ?? null;
        bytes = sec ? elf.subarray(sec.offset, sec.offset + sec.size) : new Uint8Array(0);
        continue;
      }
      // "ffffffff81000000:\tlea    rsp,[rip+0x1a03f51]        # 0x..."
      const colon = line.indexOf(":\t");
      if (colon < 0 || !sec) continue;
      const head = line.slice(0, colon).trim();
      if (!/^[0-9a-f]+$/.test(head)) continue;
      const addr = BigInt("0x" + head);
      flush(addr);
      pendAddr = addr;
      pendText = line.slice(colon + 2);
    }
    if (sec) flush(sec.addr + BigInt(sec.size));
    const cmpMs = performance.now() - t1;

    const rate = swept / (sweepMs / 1000);
    console.log(
      `kernel: ${path}\n  sections: ${sections.map((s) => s.name).join(" ")}\n` +
        `  decode rate: ${swept} instructions (${int3} of them int3 padding) in ${
          sweepMs.toFixed(0)
        } ms = ` +
        `${(rate / 1e6).toFixed(2)} M instructions/s\n` +
        `  objdump comparison: ${checked} instructions checked in ${
          (cmpMs / 1000).toFixed(1)
        } s, ` +
        `${bad} (bad) (${badAgree} also rejected by the decoder), ${mismatches.length} mismatches\n` +
        `  text identical to objdump's (informative): ${textSame} of ${checked - bad}`,
    );
    for (const t of textDiffs.slice(0, 40)) console.log("  text: " + t);
    for (const m of mismatches.slice(0, 50)) console.log("  " + m);
    assert.ok(checked > 100_000, `only ${checked} instructions checked`);
    assert.equal(mismatches.length, 0, `${mismatches.length} mismatches with objdump`);
  },
});

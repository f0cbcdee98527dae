import assert from "node:assert/strict";
import { formatSize, parseSize } from "./size.ts";

Deno.test("parseSize accepts binary units, suffixes and any case", () => {
  const cases: [string | number, number][] = [
    ["512M", 512 * 2 ** 20],
    ["4G", 4 * 2 ** 30],
    ["1T", 2 ** 40],
    ["64K", 64 * 1024],
    ["64k", 64 * 1024],
    ["256MiB", 256 * 2 ** 20],
    ["256mib", 256 * 2 ** 20],
    ["256MB", 256 * 2 ** 20],
    ["256 MiB", 256 * 2 ** 20],
    [" 2G ", 2 * 2 ** 30],
    ["1.5G", 1.5 * 2 ** 30],
    ["0.5K", 512],
    ["1.0", 1],
    ["4096", 4096],
    ["4096B", 4096],
    ["0", 0],
    [0, 0],
    [268435456, 268435456],
  ];
  for (const [text, bytes] of cases) {
    assert.equal(parseSize(text), bytes, `parseSize(${JSON.stringify(text)})`);
  }
});

Deno.test("parseSize rejects malformed input with a helpful message", () => {
  const hint = 'expected a number with an optional unit K, M, G or T (e.g. "512M", "1.5G")';
  const cases: [string | number, string][] = [
    ["", `invalid size "": ${hint}`],
    ["12X", `invalid size "12X": ${hint}`],
    ["M", `invalid size "M": ${hint}`],
    ["-1M", `invalid size "-1M": ${hint}`],
    ["1.G", `invalid size "1.G": ${hint}`],
    ["1iB", `invalid size "1iB": ${hint}`],
    ["0x100", `invalid size "0x100": ${hint}`],
    ["1.3K", 'invalid size "1.3K": not a whole number of bytes'],
    ["0.1", 'invalid size "0.1": not a whole number of bytes'],
    ["9000000T", 'invalid size "9000000T": too large'],
    [-1, "invalid size -1: expected a whole, non-negative number of bytes"],
    [1.5, "invalid size 1.5: expected a whole, non-negative number of bytes"],
    [2 ** 53, "invalid size 9007199254740992: expected a whole, non-negative number of bytes"],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseSize(text), { message }, `parseSize(${JSON.stringify(text)})`);
  }
});

Deno.test("formatSize output parses back to the same size", () => {
  for (const n of [4096, 2 ** 21, 3 * 2 ** 30, 2 ** 40, 1000]) {
    assert.equal(parseSize(formatSize(n)), n);
  }
});

/**
 * Byte sizes as people write them in VM definitions: `"256M"`, `"4GiB"`,
 * `"1.5G"`, `"64k"` or a plain byte count. Units are binary (K = 1024) and
 * case-insensitive; `B` and `iB` suffixes are accepted and mean the same.
 *
 * @module
 */

export { formatSize } from "./layout.ts";
import { quote } from "./quote.ts";

/** Multiplier of each unit letter (binary units). */
const UNITS: Readonly<Record<string, bigint>> = Object.freeze({
  "": 1n,
  k: 1n << 10n,
  m: 1n << 20n,
  g: 1n << 30n,
  t: 1n << 40n,
});

/**
 * Digits, an optional fraction, then an optional unit: a letter K/M/G/T with
 * an optional `B` or `iB`, or a lone `B`.
 */
const SIZE_RE = /^(\d+)(?:\.(\d+))?\s*(?:([kmgt])(?:i?b)?|b)?$/i;

const SYNTAX_HINT = 'expected a number with an optional unit K, M, G or T (e.g. "512M", "1.5G")';

/**
 * Parses a byte size. A number must be a non-negative safe integer. A string
 * is a decimal number with an optional binary unit (`K`, `M`, `G`, `T`,
 * optionally followed by `B` or `iB`); a fraction is allowed when the result
 * is a whole number of bytes (`"1.5G"` yes, `"1.3K"` no).
 *
 * @throws {Error} with a message saying what was wrong, on malformed input,
 * a fractional byte count or a size above `Number.MAX_SAFE_INTEGER`.
 */
export function parseSize(text: string | number): number {
  if (typeof text === "number") {
    if (!Number.isSafeInteger(text) || text < 0) {
      throw new Error(`invalid size ${text}: expected a whole, non-negative number of bytes`);
    }
    return text;
  }
  const m = SIZE_RE.exec(text.trim());
  if (m === null) throw new Error(`invalid size ${quote(text)}: ${SYNTAX_HINT}`);
  const [, whole, fraction = "", unit = ""] = m;
  // Exact arithmetic: (whole.fraction * unit) must come out as an integer.
  const scale = 10n ** BigInt(fraction.length);
  const numerator = BigInt(whole + fraction) * UNITS[unit.toLowerCase()];
  if (numerator % scale !== 0n) {
    throw new Error(`invalid size ${quote(text)}: not a whole number of bytes`);
  }
  const bytes = numerator / scale;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new Error(`invalid size ${quote(text)}: too large`);
  }
  return Number(bytes);
}

/**
 * User text in dhyve's messages: keys, values and paths from a VM
 * definition or the command line reach a terminal, so every message that
 * quotes one shows it escaped and of bounded length. A key holding
 * `ESC [2J` must not clear the screen, a U+202E must not turn the rest of a
 * line around, a newline must not forge a second message, and a 1 MB value
 * must not become a 1 MB line.
 *
 * Escaped: the C0 and C1 controls and DEL (`\n`, `\t`, `\r` by name, the
 * rest as `\u001b`), Unicode format characters (bidi embeddings, overrides
 * and isolates, zero-width characters, the BOM, soft hyphen), the line and
 * paragraph separators, and lone surrogates.
 *
 * @module
 */

/** How many characters of a value a message quotes before cutting it. */
export const MAX_QUOTED_CHARS = 80;

/**
 * Characters that must not reach a terminal raw: controls (Cc: C0, DEL,
 * C1), format characters (Cf: bidi controls, zero-width characters, BOM),
 * line and paragraph separators and lone surrogates.
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
const UNSAFE_ALL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
/** What {@linkcode quote} escapes besides {@linkcode UNSAFE}: its own quote and escape characters. */
const QUOTED_ALL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}"\\]/gu;

const NAMED: Readonly<Record<string, string>> = {
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  '"': '\\"',
  "\\": "\\\\",
};

function escapeChar(ch: string): string {
  const named = NAMED[ch];
  if (named !== undefined) return named;
  const cp = ch.codePointAt(0)!;
  return cp > 0xffff ? `\\u{${cp.toString(16)}}` : `\\u${cp.toString(16).padStart(4, "0")}`;
}

/** Whether `s` holds a character {@linkcode escapeText} would escape. */
export function hasUnsafeChars(s: string): boolean {
  return UNSAFE.test(s);
}

/**
 * `s` with every control, format (bidi) and separator character written as
 * an escape (`\u001b`, `\u202e`, `\n`); everything else as is. For text
 * that is already a message: apply it to a whole line as the last step.
 */
export function escapeText(s: string): string {
  return UNSAFE.test(s) ? s.replace(UNSAFE_ALL, escapeChar) : s;
}

/**
 * The first `max` characters (code points) of `s` and the count of all of
 * them, without building an array of a long string's characters.
 */
function cut(s: string, max: number): { head: string; count: number; cut: boolean } {
  // A string of at most `max` UTF-16 units has at most `max` code points.
  if (s.length <= max) return { head: s, count: [...s].length, cut: false };
  let end = 0;
  let n = 0;
  while (end < s.length && n < max) {
    end += s.codePointAt(end)! > 0xffff ? 2 : 1;
    n++;
  }
  if (end >= s.length) return { head: s, count: n, cut: false };
  let count = n;
  for (let i = end; i < s.length; i += s.codePointAt(i)! > 0xffff ? 2 : 1) count++;
  return { head: s.slice(0, end), count, cut: true };
}

/**
 * A user value for a message: in double quotes, with `"`, `\` and the
 * unsafe characters escaped, and cut after `max` characters with the whole
 * length said: `"xxxx…" (1000000 characters)`.
 */
export function quote(s: string, max: number = MAX_QUOTED_CHARS): string {
  const { head, count, cut: wasCut } = cut(s, max);
  const body = head.replace(QUOTED_ALL, escapeChar);
  return wasCut ? `"${body}…" (${count} characters)` : `"${body}"`;
}

/**
 * A user string shown bare when it is plain (not empty, no spaces at its
 * ends, no quotes, backslashes or unsafe characters, and short), else as
 * {@linkcode quote} shows it. For names and paths, which read best bare.
 */
export function quoteIfNeeded(s: string, max: number = MAX_QUOTED_CHARS): string {
  const plain = s !== "" && s.length <= max && s.trim() === s && !/["\\]/.test(s) &&
    !UNSAFE.test(s);
  return plain ? s : quote(s, max);
}

/**
 * A file path for a message: bare when plain, else quoted; a long path
 * keeps more characters than a value (paths up to 4096 bytes are legal and
 * their ends matter), but is still cut.
 */
export function showPath(path: string): string {
  return quoteIfNeeded(path, 400);
}

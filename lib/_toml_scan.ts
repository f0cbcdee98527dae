/**
 * A small, lenient TOML scanner for the corners the two parsers leave to
 * dhyve (lib/config.ts): it walks a document once, telling keys from
 * values, and serves three needs.
 *
 * - Positions of a document with huge tokens: toml-eslint-parser builds
 *   each string and number with `String.fromCodePoint(...codes)`, which
 *   overflows the stack at about 100,000 characters. {@linkcode shrinkLongTokens}
 *   writes such tokens short (keeping every line break, so lines stay put)
 *   and maps the columns after them back.
 * - Impossible dates: smol-toml hands dates to `Date`, which rolls
 *   February 30 over to March 2. {@linkcode impossibleDates} finds them.
 * - Duplicate definitions: smol-toml says "trying to redefine an already
 *   defined table or value" and where, not what nor where it was first
 *   defined. {@linkcode findRedefinition} names both.
 *
 * The scanner expects text a TOML parser accepted (up to the point it is
 * asked about); on anything else it does its best and never throws.
 * Columns count UTF-16 units, 1-based, as both parsers do.
 *
 * @module
 */

/** A key or value token found by the scanner. */
interface Token {
  readonly role: "key" | "value";
  readonly kind: "basic" | "literal" | "ml-basic" | "ml-literal" | "word";
  /** Offsets into the text: [start, end). */
  readonly start: number;
  readonly end: number;
  readonly line: number;
  /** 1-based column of `start`. */
  readonly column: number;
}

/** A statement: a table header, an array-of-tables header or a key (its absolute path). */
export interface TomlStatement {
  readonly kind: "table" | "array" | "key";
  readonly path: readonly string[];
  readonly line: number;
  readonly column: number;
}

interface ScanResult {
  readonly tokens: Token[];
  readonly statements: TomlStatement[];
}

const BARE = /[A-Za-z0-9_-]/;
const WORD = /[A-Za-z0-9_+\-.:]/;

/** The text of a basic string's escapes (TOML 1.1: \b \t \n \f \r \e \" \\ \xHH \uHHHH \UHHHHHHHH). */
function decodeBasic(body: string): string {
  return body.replace(
    /\\(?:x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))/gs,
    (_m, x, u, U, c) => {
      const hex = x ?? u ?? U;
      if (hex !== undefined) {
        const cp = parseInt(hex, 16);
        return cp <= 0x10ffff ? String.fromCodePoint(cp) : "";
      }
      return ({
        b: "\b",
        t: "\t",
        n: "\n",
        f: "\f",
        r: "\r",
        e: "\x1b",
        '"': '"',
        "\\": "\\",
      } as Record<string, string>)[c] ?? c;
    },
  );
}

/** The key a key token names. */
function keyText(text: string, t: Token): string {
  const raw = text.slice(t.start, t.end);
  if (t.kind === "word") return raw;
  if (t.kind === "literal") return raw.slice(1, -1);
  return decodeBasic(raw.slice(1, -1));
}

/** Scans `text` up to offset `limit` (default: all of it). */
function scan(text: string, limit = text.length): ScanResult {
  const tokens: Token[] = [];
  const statements: TomlStatement[] = [];
  type Ctx = { kind: "top" } | { kind: "array" } | { kind: "inline"; base: string[] };
  const stack: Ctx[] = [{ kind: "top" }];
  let table: string[] = [];
  let expect = "key" as "key" | "value" | "after"; // (a cast: closures assign it too)
  let header: { kind: "table" | "array"; line: number; column: number } | undefined;
  let keyParts: string[] = [];
  let keyStart: { line: number; column: number } | undefined;
  // The key of the value being scanned: the base of an inline table it opens.
  let keyPathOfValue: string[] = [];
  let line = 1;
  let lineStart = 0;
  let i = 0;
  const top = () => stack[stack.length - 1];
  const base = (): string[] => {
    const c = top();
    return c.kind === "inline" ? c.base : table;
  };
  const afterValue = () => {
    expect = "after";
  };
  const token = (kind: Token["kind"], start: number, end: number, tokLine: number, col: number) => {
    const role = expect === "value" ? "value" : "key";
    const t: Token = { role, kind, start, end, line: tokLine, column: col };
    tokens.push(t);
    if (role === "value") afterValue();
    else {
      keyStart ??= { line: tokLine, column: col };
      keyParts.push(keyText(text, t));
    }
  };
  while (i < limit) {
    const ch = text[i];
    const col = i - lineStart + 1;
    if (ch === "\n") {
      line++;
      lineStart = i + 1;
      i++;
      if (top().kind === "top") expect = "key";
      continue;
    }
    if (ch === " " || ch === "\t" || ch === "\r") {
      i++;
      continue;
    }
    if (ch === "#") {
      while (i < limit && text[i] !== "\n") i++;
      continue;
    }
    if (ch === '"' || ch === "'") {
      const start = i;
      const startLine = line;
      const multi = text.startsWith(ch.repeat(3), i);
      if (multi) {
        i += 3;
        for (;;) {
          if (i >= text.length) break;
          if (text[i] === "\\" && ch === '"') {
            if (text[i + 1] === "\n") {
              line++;
              lineStart = i + 2;
            }
            i += 2;
            continue;
          }
          if (text[i] === "\n") {
            line++;
            lineStart = i + 1;
          }
          if (text.startsWith(ch.repeat(3), i)) {
            i += 3;
            // Up to two more quotes belong to the content (TOML: """a"""" is 'a"').
            while (i < text.length && text[i] === ch && text.startsWith(ch.repeat(3), i - 2)) i++;
            break;
          }
          i++;
        }
        token(ch === '"' ? "ml-basic" : "ml-literal", start, i, startLine, col);
      } else {
        i++;
        while (i < text.length && text[i] !== ch && text[i] !== "\n") {
          i += text[i] === "\\" && ch === '"' ? 2 : 1;
        }
        i++;
        token(ch === '"' ? "basic" : "literal", start, i, startLine, col);
      }
      continue;
    }
    if (expect === "value") {
      if (ch === "[") {
        stack.push({ kind: "array" });
        i++;
        continue;
      }
      if (ch === "{") {
        stack.push({ kind: "inline", base: [...base(), ...keyPathOfValue] });
        keyPathOfValue = [];
        expect = "key";
        i++;
        continue;
      }
      if (WORD.test(ch)) {
        const start = i;
        while (i < limit && WORD.test(text[i])) i++;
        token("word", start, i, line, col);
        continue;
      }
    }
    if (expect === "after" && WORD.test(ch)) {
      // The time after a date and a space ("1979-05-27 07:32:00").
      const start = i;
      while (i < limit && WORD.test(text[i])) i++;
      tokens.push({ role: "value", kind: "word", start, end: i, line, column: col });
      continue;
    }
    if (expect === "key" && BARE.test(ch)) {
      const start = i;
      while (i < limit && BARE.test(text[i])) i++;
      token("word", start, i, line, col);
      continue;
    }
    if (ch === "[" && expect === "key" && top().kind === "top" && keyParts.length === 0) {
      const array = text[i + 1] === "[";
      header = { kind: array ? "array" : "table", line, column: col };
      i += array ? 2 : 1;
      continue;
    }
    if (ch === "]") {
      if (header !== undefined) {
        table = keyParts;
        statements.push({
          kind: header.kind,
          path: table,
          line: header.line,
          column: header.column,
        });
        i += header.kind === "array" ? 2 : 1;
        header = undefined;
        keyParts = [];
        keyStart = undefined;
        afterValue();
        continue;
      }
      if (top().kind === "array") stack.pop();
      i++;
      afterValue();
      continue;
    }
    if (ch === "}") {
      if (top().kind === "inline") stack.pop();
      i++;
      afterValue();
      continue;
    }
    if (ch === ",") {
      expect = top().kind === "array" ? "value" : "key";
      i++;
      continue;
    }
    if (ch === "=") {
      const path = [...base(), ...keyParts];
      const at = keyStart ?? { line, column: col };
      statements.push({ kind: "key", path, line: at.line, column: at.column });
      keyPathOfValue = keyParts;
      keyParts = [];
      keyStart = undefined;
      expect = "value";
      i++;
      continue;
    }
    i++; // ".", or anything a parser would have refused
  }
  return { tokens, statements };
}

/** How {@linkcode shrinkLongTokens} changed a document, to map positions back. */
export interface ShrunkText {
  /** The text with every long token written short; as many lines as before. */
  readonly text: string;
  /**
   * The column in the original text of a column of `text`. Lines are the
   * same in both.
   */
  column(line: number, column: number): number;
  /** The original name of a key that was shortened (keys map to themselves otherwise). */
  key(name: string): string;
}

/** Tokens longer than this are shortened by {@linkcode shrinkLongTokens}. */
export const LONG_TOKEN = 4096;

/**
 * `text` with every string and number longer than `limit` characters
 * written short: a value string keeps only its line breaks, a number
 * becomes `0`, a quoted key becomes a short unique placeholder. Lines stay
 * where they were; columns after a shortened token on its last line are
 * mapped back by the result's `column`.
 */
export function shrinkLongTokens(text: string, limit: number = LONG_TOKEN): ShrunkText {
  // Long bare keys are left alone: the positional parser reads them fine.
  const long = scan(text).tokens.filter((t) =>
    t.end - t.start > limit && !(t.role === "key" && t.kind === "word")
  );
  if (long.length === 0) return { text, column: (_l, c) => c, key: (k) => k };
  const pieces: string[] = [];
  const keys = new Map<string, string>();
  // Per line: [first new column the shift applies to, old column - new column from there on].
  const shifts = new Map<number, [number, number][]>();
  let at = 0;
  let shiftLine = 0; // the line `shift` applies to
  let shift = 0; // new column - old column after the last edit on shiftLine
  for (const t of long) {
    pieces.push(text.slice(at, t.start));
    const old = text.slice(t.start, t.end);
    const breaks = old.split("\n").length - 1;
    let short: string;
    if (t.kind === "word") short = "0";
    else if (t.role === "key") {
      const name = `\u{e000}${keys.size}`;
      keys.set(name, keyText(text, t));
      short = t.kind === "literal" ? `'${name}'` : `"${name}"`;
    } else {
      const q = QUOTES[t.kind];
      short = q + "\n".repeat(breaks) + q;
    }
    pieces.push(short);
    at = t.end;
    const endLine = t.line + breaks;
    const oldEnd = t.end - (text.lastIndexOf("\n", t.end - 1) + 1) + 1;
    const newEnd = breaks > 0
      ? short.length - short.lastIndexOf("\n")
      : t.column + (t.line === shiftLine ? shift : 0) + short.length;
    shiftLine = endLine;
    shift = newEnd - oldEnd;
    const list = shifts.get(endLine) ?? [];
    list.push([newEnd, -shift]);
    shifts.set(endLine, list);
  }
  pieces.push(text.slice(at));
  return {
    text: pieces.join(""),
    column(line, column) {
      let delta = 0;
      for (const [from, d] of shifts.get(line) ?? []) if (column >= from) delta = d;
      return column + delta;
    },
    key: (k) => keys.get(k) ?? k,
  };
}

const QUOTES: Readonly<Record<Token["kind"], string>> = {
  basic: '"',
  literal: "'",
  "ml-basic": '"""',
  "ml-literal": "'''",
  word: "",
};

/** A date in a document that no calendar has. */
export interface ImpossibleDate {
  readonly line: number;
  readonly column: number;
  /** The date as written ("2023-02-30"). */
  readonly text: string;
  /** Why it cannot be ("February 2023 has 28 days"). */
  readonly why: string;
}

const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

/** The dates (RFC 3339 full-date, alone or starting a date-time) whose day does not exist. */
export function impossibleDates(text: string): ImpossibleDate[] {
  const found: ImpossibleDate[] = [];
  for (const t of scan(text).tokens) {
    if (t.role !== "value" || t.kind !== "word") continue;
    const m = /^(\d{4})-(\d{2})-(\d{2})(?![0-9])/.exec(text.slice(t.start, t.end));
    if (!m) continue;
    const [date, y, mo, d] = [m[0], Number(m[1]), Number(m[2]), Number(m[3])];
    if (mo < 1 || mo > 12) {
      found.push({ line: t.line, column: t.column, text: date, why: `there is no month ${mo}` });
      continue;
    }
    const days = new Date(Date.UTC(y, mo, 0)).getUTCDate();
    // Date.UTC maps years 0-99 to 1900-1999; February's length is all that can differ.
    const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
    const monthDays = mo === 2 ? (leap ? 29 : 28) : days;
    if (d < 1 || d > monthDays) {
      found.push({
        line: t.line,
        column: t.column,
        text: date,
        why: d < 1 ? "there is no day 0" : `${MONTHS[mo - 1]} ${y} has ${monthDays} days`,
      });
    }
  }
  return found;
}

/**
 * For a document a parser refused at `line` for redefining something: the
 * statement there (its absolute key path and kind) and where that path was
 * first defined, or undefined when the scanner cannot tell.
 */
export function findRedefinition(
  text: string,
  line: number,
): { again: TomlStatement; first: TomlStatement } | undefined {
  // Scan through the end of the refused line: the statement's key is complete there.
  let offset = 0;
  for (let l = 1; l < line && offset < text.length; l++) {
    const nl = text.indexOf("\n", offset);
    offset = nl < 0 ? text.length : nl + 1;
  }
  const nl = text.indexOf("\n", offset);
  const { statements } = scan(text, nl < 0 ? text.length : nl);
  const again = statements.findLast((s) => s.line === line);
  if (again === undefined) return undefined;
  const earlier = statements.slice(0, statements.indexOf(again));
  const n = again.path.length;
  const startsWithIt = (p: readonly string[]) =>
    p.length >= n && again.path.every((k, i) => p[i] === k);
  // The path itself defined earlier, else the first definition inside it (`a.b = 1` defines [a]).
  const first = earlier.find((s) => s.path.length === n && startsWithIt(s.path)) ??
    earlier.find((s) => startsWithIt(s.path));
  return first && { again, first };
}

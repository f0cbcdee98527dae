/**
 * Host errors said as a person would. Deno's error text ("Not a directory
 * (os error 20): stat '/a/b'") and a bare errno ("errno 6") are for
 * programmers; dhyve's messages name the file and the key themselves and
 * then say what is wrong in words: "cannot read boot.kernel /a/b: a part of
 * the path is not a directory".
 *
 * @module
 */

/** errno values (asm-generic/errno-base.h, errno.h) and what each means for a file. */
const ERRNO: Readonly<Record<number, readonly [name: string, text: string]>> = {
  1: ["EPERM", "the operation is not permitted"],
  2: ["ENOENT", "it does not exist"],
  4: ["EINTR", "the call was interrupted"],
  5: ["EIO", "an input/output error occurred"],
  6: ["ENXIO", "there is no device or reader behind it"],
  9: ["EBADF", "the file is not open for that"],
  11: ["EAGAIN", "it is busy for now"],
  12: ["ENOMEM", "the host is out of memory"],
  13: ["EACCES", "permission denied"],
  16: ["EBUSY", "it is busy"],
  17: ["EEXIST", "it already exists"],
  19: ["ENODEV", "the device does not exist"],
  20: ["ENOTDIR", "a part of the path is not a directory"],
  21: ["EISDIR", "it is a directory"],
  22: ["EINVAL", "the system refused the request as invalid"],
  23: ["ENFILE", "the host has too many open files"],
  24: ["EMFILE", "dhyve has too many open files"],
  26: ["ETXTBSY", "it is a program being run and cannot be written"],
  27: ["EFBIG", "the file would grow past its largest allowed size"],
  28: ["ENOSPC", "no space is left on the device"],
  30: ["EROFS", "it is on a read-only file system"],
  32: ["EPIPE", "its reader went away"],
  36: ["ENAMETOOLONG", "the path is too long"],
  40: ["ELOOP", "there are too many levels of symbolic links (a loop?)"],
  95: ["EOPNOTSUPP", "the operation is not supported there"],
  122: ["EDQUOT", "the disk quota is exceeded"],
};

const BY_NAME: ReadonlyMap<string, number> = new Map(
  Object.entries(ERRNO).map(([n, [name]]) => [name, Number(n)]),
);

/** What errno value `errno` means, in words ("it does not exist"). */
export function errnoText(errno: number): string {
  return ERRNO[errno]?.[1] ?? `the system reported error ${errno}`;
}

/** The errno behind an error from a Deno API, when it says one. */
export function errnoOf(e: unknown): number | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === "string" && BY_NAME.has(code)) return BY_NAME.get(code);
  const m = e instanceof Error ? /\(os error (\d+)\)/.exec(e.message) : null;
  return m ? Number(m[1]) : undefined;
}

/**
 * What went wrong, in words, for an error thrown by a Deno file API or by
 * dhyve itself. OS errors become a phrase ("permission denied"); Deno's
 * "(os error N)" and ": op 'path'" parts are dropped (the caller names the
 * file). Any other error keeps its message.
 */
export function osErrorText(e: unknown): string {
  const errno = errnoOf(e);
  if (errno !== undefined && ERRNO[errno] !== undefined) return ERRNO[errno][1];
  if (!(e instanceof Error)) return String(e);
  const text = e.message.replace(/: \w+ '.*'$/s, "").replace(/\s*\(os error \d+\)/, "");
  if (errno === undefined) return text;
  return text.charAt(0).toLowerCase() + text.slice(1);
}

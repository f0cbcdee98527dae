/**
 * Console output files (`com1 = { file = "..." }`): what `check` verifies
 * and how `up` opens them, kept in one place so that "check passes" means
 * "up opens it".
 *
 * `up` opens the file write-only, creating it and truncating it. `check`
 * must not truncate anything, so it probes instead: an existing file is
 * opened for writing without truncation (what a read-only sysfs attribute
 * or a read-only file system refuses, it refuses too), a file to be
 * created is tried as a hidden temporary file in its directory, a dangling
 * symbolic link is followed to the file open(2) would create. A socket or
 * a directory is refused. A FIFO is opened without blocking: `up` waits
 * for its reader while obeying signals, instead of hanging in open(2).
 *
 * @module
 */
import { cString, libc, O_CLOEXEC, O_CREAT, O_TRUNC, O_WRONLY } from "../cpu/libc.ts";
import { errnoText, osErrorText } from "./os_error.ts";
import { fileKind } from "./file_read.ts";
import { showPath } from "./quote.ts";

/** open(2): do not block (a FIFO without a reader fails with ENXIO instead). */
const O_NONBLOCK = 0o4000;
/** open(2): a terminal opened here never becomes dhyve's controlling terminal. */
const O_NOCTTY = 0o400;
const ENXIO = 6;
/** Symbolic links followed before giving up (the kernel's own limit is 40). */
const MAX_LINKS = 40;

/** open(2) through libc: the descriptor, or the errno as a negative number. */
function rawOpen(path: string, flags: number, mode = 0o644): number {
  const c = libc();
  const fd = c.fn.open(cString(path), flags, mode);
  return fd >= 0 ? fd : -c.errno();
}

function dirname(p: string): string {
  return p.slice(0, Math.max(p.lastIndexOf("/"), 1));
}

/**
 * Why `path` (absolute; shown as `name`) cannot take console output, or
 * undefined when `up` will open it. Truncates and blocks on nothing, and
 * needs no FFI: an existing file is opened for writing without truncation,
 * a file to be created is tried as a hidden temporary file in its
 * directory (removed at once), a FIFO is not opened (`up` waits for its
 * reader).
 */
export function consoleFileProblem(
  path: string,
  name: string = showPath(path),
): string | undefined {
  let target = path;
  for (let links = 0;; links++) {
    let st: Deno.FileInfo;
    try {
      st = Deno.lstatSync(target);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
        const via = target === path
          ? ""
          : `${name} is a symbolic link to ${showPath(target)}, which does not exist, and `;
        return newFileProblem(target, via);
      }
      return `cannot write ${name}: ${osErrorText(e)}`;
    }
    if (!st.isSymlink) return existingFileProblem(target, name, st);
    if (links >= MAX_LINKS) return `cannot write ${name}: too many levels of symbolic links`;
    const link = Deno.readLinkSync(target);
    target = link.startsWith("/") ? link : `${dirname(target)}/${link}`;
  }
}

/** An existing file, device, FIFO or socket. */
function existingFileProblem(path: string, name: string, st: Deno.FileInfo): string | undefined {
  if (st.isDirectory) return `${name} is a directory`;
  if (st.isSocket) {
    return `${name} is a socket; console output goes to a file, a FIFO or a terminal`;
  }
  // Opening a FIFO blocks until it has a reader; up waits for one without blocking.
  if (st.isFifo) return undefined;
  try {
    Deno.openSync(path, { write: true }).close();
    return undefined;
  } catch (e) {
    return `cannot write ${name} (${fileKind(st)}): ${osErrorText(e)}`;
  }
}

/**
 * A file `up` would create (`via` says how it was reached, for a dangling
 * link): its directory must exist and take new files.
 */
function newFileProblem(path: string, via: string): string | undefined {
  const dir = dirname(path);
  for (let d = dir;; d = dirname(d)) {
    try {
      const st = Deno.statSync(d);
      if (!st.isDirectory) return `${via}${showPath(d)} is not a directory`;
      if (d !== dir) return `${via}directory ${showPath(dir)} does not exist`;
      break;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory)) {
        return `${via}cannot access directory ${showPath(d)}: ${osErrorText(e)}`;
      }
      if (d === "/") return `${via}directory ${showPath(dir)} does not exist`;
    }
  }
  // Create a hidden file and remove it at once: the only sure test of "can create here".
  try {
    const tmp = Deno.makeTempFileSync({ dir, prefix: ".dhyve-check-" });
    Deno.removeSync(tmp);
    return undefined;
  } catch (e) {
    return `${via}cannot create files in ${showPath(dir)}: ${osErrorText(e)}`;
  }
}

/** What {@linkcode openConsoleFile} may be told. */
export interface OpenConsoleOptions {
  /** Stops waiting for a FIFO's reader (a signal arrived); the open then throws. */
  readonly signal?: AbortSignal;
  /** Called once when a FIFO has no reader yet and dhyve starts waiting for one. */
  readonly onWait?: (message: string) => void;
  /** How often to look for a reader, in ms (default 100). */
  readonly pollMs?: number;
}

/**
 * Opens console output file `path` as `up` does: write-only, created and
 * truncated. A FIFO is opened without blocking; while it has no reader,
 * this waits for one (calling `onWait` once), looking every `pollMs`, and
 * gives up when `signal` aborts. Returns the descriptor.
 *
 * @throws {Error} naming the file and saying, in words, why it cannot be opened.
 */
export async function openConsoleFile(
  path: string,
  options: OpenConsoleOptions = {},
): Promise<number> {
  const name = showPath(path);
  let fifo = false;
  try {
    fifo = Deno.statSync(path).isFifo === true;
  } catch { /* created below */ }
  if (!fifo) {
    const fd = rawOpen(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) throw new Error(`cannot open console file ${name}: ${errnoText(-fd)}`);
    return fd;
  }
  let waiting = false;
  for (;;) {
    options.signal?.throwIfAborted();
    const fd = rawOpen(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd >= 0) return fd;
    if (-fd !== ENXIO) throw new Error(`cannot open console file ${name}: ${errnoText(-fd)}`);
    if (!waiting) {
      waiting = true;
      options.onWait?.(`console file ${name} is a FIFO with no reader; waiting for one`);
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, options.pollMs ?? 100);
      function done() {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", done);
        resolve();
      }
      options.signal?.addEventListener("abort", done, { once: true });
    });
  }
}

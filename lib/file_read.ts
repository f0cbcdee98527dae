/**
 * Reading the VM's input files (kernels, modules, images) without trusting
 * them: each is checked with `stat` before a byte is read (a regular file,
 * and its size known), only the ranges a loader places are read, and they
 * are read in bounded chunks straight into their destination. So a 5 GB
 * module with 256 MiB of RAM is refused from its size alone, a 2 GB kernel
 * of which 38 bytes load costs 38 bytes, and a FIFO, a device or a socket
 * is refused before it is opened (opening a FIFO blocks; a device may never
 * end).
 *
 * @module
 */
import { osErrorText } from "./os_error.ts";
import { showPath } from "./quote.ts";

/** An input file that cannot be used; the message names the file and says why. */
export class InputFileError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "InputFileError";
  }
}

/** The largest read done at once: bigger ranges are read in chunks of this size. */
export const READ_CHUNK = 4 * 1024 * 1024;

/** "a directory", "a FIFO", ... for what a file that is not a regular file is. */
export function fileKind(st: Deno.FileInfo): string {
  if (st.isFile) return "a regular file";
  if (st.isDirectory) return "a directory";
  if (st.isSymlink) return "a symbolic link";
  if (st.isCharDevice) return "a character device";
  if (st.isBlockDevice) return "a block device";
  if (st.isFifo) return "a FIFO";
  if (st.isSocket) return "a socket";
  return "a special file";
}

/** A readable source of bytes: a file on the host, or bytes already in memory. */
export interface ByteSource {
  /** What it is, for messages (a path, shown escaped). */
  readonly name: string;
  /** Its size in bytes. */
  readonly size: number;
  /**
   * Bytes [offset, offset + into.length) into `into`. Throws
   * {@linkcode InputFileError} when the source ends early.
   */
  readInto(offset: number, into: Uint8Array): void;
}

/** A {@linkcode ByteSource} over bytes in memory. */
export function bytesSource(bytes: Uint8Array, name: string): ByteSource {
  return {
    name,
    size: bytes.length,
    readInto(offset, into) {
      if (offset + into.length > bytes.length) {
        throw new InputFileError(
          `${showPath(name)}: range past the end of its ${bytes.length} bytes`,
        );
      }
      into.set(bytes.subarray(offset, offset + into.length));
    },
  };
}

/**
 * Checks `path` with stat (following symbolic links): it must be a regular
 * file. Returns a {@linkcode ByteSource} that opens the file on each read.
 *
 * @throws {InputFileError} naming the file and saying what is wrong.
 */
export function fileSource(path: string): ByteSource {
  const name = showPath(path);
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(path);
  } catch (e) {
    throw new InputFileError(`cannot read ${name}: ${osErrorText(e)}`);
  }
  if (!st.isFile) {
    throw new InputFileError(`${name} is ${fileKind(st)}, not a regular file`);
  }
  return {
    name: path,
    size: st.size,
    readInto(offset, into) {
      let f: Deno.FsFile;
      try {
        f = Deno.openSync(path, { read: true });
      } catch (e) {
        throw new InputFileError(`cannot read ${name}: ${osErrorText(e)}`);
      }
      try {
        if (offset > 0) f.seekSync(offset, Deno.SeekMode.Start);
        let n = 0;
        while (n < into.length) {
          const got = f.readSync(into.subarray(n, Math.min(into.length, n + READ_CHUNK)));
          if (got === null || got === 0) {
            throw new InputFileError(
              `${name} ended at byte ${offset + n}, before the ${
                offset + into.length
              } bytes its size promised: it changed while dhyve read it, or is a special file`,
            );
          }
          n += got;
        }
      } catch (e) {
        if (e instanceof InputFileError) throw e;
        throw new InputFileError(`cannot read ${name}: ${osErrorText(e)}`);
      } finally {
        f.close();
      }
    },
  };
}

/** Bytes [offset, offset + length) of `source` in a new buffer (length is clamped to the source). */
export function readRange(source: ByteSource, offset: number, length: number): Uint8Array {
  const n = Math.max(0, Math.min(length, source.size - offset));
  const out = new Uint8Array(n);
  if (n > 0) source.readInto(offset, out);
  return out;
}

/**
 * The whole of a source of at most `max` bytes (its size is known before
 * anything is read).
 *
 * @throws {InputFileError} when it is larger than `max`.
 */
export function readWhole(source: ByteSource, max: number, what: string): Uint8Array {
  if (source.size > max) {
    throw new InputFileError(
      `${what} ${showPath(source.name)} is ${source.size} bytes; at most ${max} bytes can be used`,
    );
  }
  return readRange(source, 0, source.size);
}

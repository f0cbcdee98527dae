/**
 * initramfs images: a "newc" cpio archive, gzip-compressed, as the Linux
 * kernel unpacks it into its rootfs before running `/init`.
 *
 * Sources:
 * - Documentation/driver-api/early-userspace/buffer-format.rst (the
 *   initramfs buffer format: newc cpio, "070701", 4-byte alignment, the
 *   "TRAILER!!!" entry; compressed with gzip or another supported method);
 * - Documentation/filesystems/ramfs-rootfs-initramfs.rst (what the kernel
 *   needs: /init, and /dev/console for init's stdin/stdout/stderr);
 * - cpio(5) of libarchive, "New ASCII Format" (field order and meaning).
 *
 * Hard links are stored as independent copies (each entry its own inode,
 * nlink 1): the kernel would accept linked entries too, but copies keep the
 * writer simple and the archive readable by any tool.
 *
 * @module
 */

/** What an entry is. */
export type CpioEntryType = "file" | "dir" | "symlink" | "char" | "block" | "fifo" | "socket";

/** One archive member. Paths are relative, "/"-separated, without a leading "/". */
export interface CpioEntry {
  readonly path: string;
  readonly type: CpioEntryType;
  /** Permission bits (including setuid/setgid/sticky), 0..0o7777. */
  readonly perm: number;
  readonly uid?: number;
  readonly gid?: number;
  /** Seconds since the epoch. */
  readonly mtime?: number;
  /** A regular file's contents. */
  readonly data?: Uint8Array;
  /** A symbolic link's target. */
  readonly target?: string;
  /** A device node's major and minor numbers. */
  readonly major?: number;
  readonly minor?: number;
}

/** Bad input for an archive: a malformed device spec, a path that escapes, a file too big. */
export class InitramfsError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "InitramfsError";
  }
}

/** The file type bits of st_mode (POSIX <sys/stat.h>, as cpio(5) stores them). */
export const S_IF = Object.freeze({
  socket: 0o140000,
  symlink: 0o120000,
  file: 0o100000,
  block: 0o060000,
  dir: 0o040000,
  char: 0o020000,
  fifo: 0o010000,
});

/** The newc magic (buffer-format.rst: "070701" without checksums). */
export const NEWC_MAGIC = "070701";
/** The newc header: the magic and 13 fields of 8 hex digits. */
export const NEWC_HEADER_SIZE = 110;
/** The name of the entry that ends the archive (buffer-format.rst). */
export const NEWC_TRAILER = "TRAILER!!!";

const enc = new TextEncoder();
const MAX_U32 = 0xffffffff;

/** Checks and normalises an archive path: relative, no "..", no empty parts. */
export function normalizeCpioPath(path: string, where = "path"): string {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.length === 0) throw new InitramfsError(`${where}: empty path "${path}"`);
  if (parts.includes("..")) throw new InitramfsError(`${where}: ".." in path "${path}"`);
  if (path.includes("\0")) throw new InitramfsError(`${where}: NUL in path`);
  return parts.join("/");
}

function hex8(n: number, what: string): string {
  if (!Number.isInteger(n) || n < 0 || n > MAX_U32) {
    throw new InitramfsError(`${what} ${n} does not fit a newc header field (32 bits)`);
  }
  return n.toString(16).padStart(8, "0");
}

const pad4 = (n: number) => (4 - (n % 4)) % 4;

/**
 * Serialises `entries` as a newc cpio archive (uncompressed), in the order
 * given, with the trailer. Each entry gets its own inode number (1, 2, ...)
 * and nlink 1 (2 for directories).
 */
export function cpioNewc(entries: readonly CpioEntry[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const push = (b: Uint8Array) => {
    chunks.push(b);
    total += b.length;
    const p = pad4(b.length);
    if (p) {
      chunks.push(new Uint8Array(p));
      total += p;
    }
  };
  let ino = 1;
  const header = (
    name: string,
    mode: number,
    e: Partial<CpioEntry>,
    nlink: number,
    size: number,
    inode: number,
  ) => {
    const nameBytes = enc.encode(name + "\0");
    // One record: the 110-byte header followed by the NUL-terminated name,
    // padded together to a multiple of 4 ("namesize" counts the NUL).
    const fields = [
      inode,
      mode,
      e.uid ?? 0,
      e.gid ?? 0,
      nlink,
      Math.floor(e.mtime ?? 0),
      size,
      0, // devmajor: the device holding the file, unused by the kernel
      0, // devminor
      e.major ?? 0, // rdevmajor: a device node's numbers
      e.minor ?? 0, // rdevminor
      nameBytes.length,
      0, // check: always 0 in "070701" archives
    ];
    const what = ["ino", "mode", "uid", "gid", "nlink", "mtime", "filesize"];
    const text = NEWC_MAGIC +
      fields.map((f, i) => hex8(f, `${name}: ${what[i] ?? "field"}`)).join("");
    const rec = new Uint8Array(NEWC_HEADER_SIZE + nameBytes.length);
    rec.set(enc.encode(text), 0);
    rec.set(nameBytes, NEWC_HEADER_SIZE);
    push(rec);
  };
  for (const e of entries) {
    const path = normalizeCpioPath(e.path, "cpio entry");
    if (!Number.isInteger(e.perm) || e.perm < 0 || e.perm > 0o7777) {
      throw new InitramfsError(`${path}: permissions 0${e.perm.toString(8)} out of range`);
    }
    let body: Uint8Array = new Uint8Array(0);
    if (e.type === "file") body = e.data ?? body;
    else if (e.type === "symlink") {
      // A symlink's "file data" is its target, without a NUL (cpio(5)).
      if (!e.target) throw new InitramfsError(`${path}: symlink without a target`);
      body = enc.encode(e.target);
    }
    if (body.length > MAX_U32) {
      throw new InitramfsError(`${path}: ${body.length} bytes is over newc's 4 GiB file limit`);
    }
    if (
      (e.type === "char" || e.type === "block") && (e.major === undefined || e.minor === undefined)
    ) {
      throw new InitramfsError(`${path}: device node without major/minor numbers`);
    }
    header(path, S_IF[e.type] | e.perm, e, e.type === "dir" ? 2 : 1, body.length, ino++);
    if (body.length) push(body);
  }
  header(NEWC_TRAILER, 0, {}, 1, 0, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Compresses with gzip (RFC 1952) through the platform's CompressionStream. */
export async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * Parses one device node spec, as `mknod` takes it plus a path and a mode:
 * `PATH TYPE MAJOR MINOR [MODE [UID [GID]]]`, TYPE `c`, `b` or `p` (a FIFO,
 * without numbers), MODE octal (default 0600), e.g. `dev/console c 5 1 0600`.
 * `where` names the source in errors (file:line or the option).
 */
export function parseDeviceSpec(spec: string, where = "device spec"): CpioEntry {
  const f = spec.trim().split(/\s+/);
  const bad = (why: string) => new InitramfsError(`${where}: ${why} in "${spec.trim()}"`);
  if (f.length < 2) throw bad("expected PATH TYPE MAJOR MINOR [MODE [UID [GID]]]");
  const [path, kind] = f;
  const num = (s: string | undefined, what: string, radix = 10, max = MAX_U32) => {
    const re = radix === 8 ? /^0?[0-7]+$/ : /^\d+$/;
    if (s === undefined || !re.test(s)) throw bad(`${what} "${s ?? ""}" is not a number`);
    const n = parseInt(s, radix);
    if (n > max) throw bad(`${what} ${s} is out of range`);
    return n;
  };
  let type: CpioEntryType;
  let rest: string[];
  let major: number | undefined;
  let minor: number | undefined;
  if (kind === "c" || kind === "b") {
    type = kind === "c" ? "char" : "block";
    // Linux device numbers: 12-bit major, 20-bit minor (include/linux/kdev_t.h).
    major = num(f[2], "major", 10, 0xfff);
    minor = num(f[3], "minor", 10, 0xfffff);
    rest = f.slice(4);
  } else if (kind === "p") {
    type = "fifo";
    rest = f.slice(2);
  } else throw bad(`type "${kind}" is not c, b or p`);
  if (rest.length > 3) throw bad("too many fields");
  const perm = rest[0] === undefined ? 0o600 : num(rest[0], "mode", 8, 0o7777);
  const uid = rest[1] === undefined ? 0 : num(rest[1], "uid");
  const gid = rest[2] === undefined ? 0 : num(rest[2], "gid");
  return {
    path: normalizeCpioPath(path, where),
    type,
    perm,
    uid,
    gid,
    ...(major !== undefined ? { major, minor } : {}),
  };
}

/**
 * Parses a device spec file: one {@linkcode parseDeviceSpec} line each;
 * blank lines and lines starting with `#` are skipped. Errors name
 * `file:line`.
 */
export function parseDeviceSpecFile(text: string, file: string): CpioEntry[] {
  const out: CpioEntry[] = [];
  text.split("\n").forEach((line, i) => {
    const t = line.trim();
    if (t === "" || t.startsWith("#")) return;
    out.push(parseDeviceSpec(t, `${file}:${i + 1}`));
  });
  return out;
}

/** How {@linkcode collectDir} records owners and times. */
export interface CollectOptions {
  /** Keep the files' uid/gid (default: everything owned by root, 0:0). */
  readonly keepOwner?: boolean;
  /** Use this mtime for every entry (default: each file's own). */
  readonly mtime?: number;
  /** Absolute paths to leave out (the archive being written, when it lies inside the tree). */
  readonly exclude?: readonly string[];
}

/**
 * Walks `dir` and returns its contents as entries (paths relative to it),
 * parents before children, names sorted. Regular files, directories,
 * symlinks (stored as links, not followed), device nodes, FIFOs and sockets
 * are kept; hard links become copies.
 */
export async function collectDir(dir: string, opts: CollectOptions = {}): Promise<CpioEntry[]> {
  const out: CpioEntry[] = [];
  const root = dir === "/" ? "" : dir.replace(/\/+$/, "");
  const walk = async (rel: string) => {
    const abs = rel ? `${root}/${rel}` : dir;
    let names: string[];
    try {
      names = [];
      for await (const d of Deno.readDir(abs)) names.push(d.name);
    } catch (e) {
      throw new InitramfsError(`cannot read directory ${abs}: ${(e as Error).message}`);
    }
    names.sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const p = `${root}/${r}`;
      if (opts.exclude?.includes(p)) continue;
      let st: Deno.FileInfo;
      try {
        st = await Deno.lstat(p);
      } catch (e) {
        throw new InitramfsError(`cannot stat ${p}: ${(e as Error).message}`);
      }
      const mode = st.mode ?? 0o644;
      const base = {
        path: r,
        perm: mode & 0o7777,
        uid: opts.keepOwner ? st.uid ?? 0 : 0,
        gid: opts.keepOwner ? st.gid ?? 0 : 0,
        mtime: opts.mtime ?? Math.floor((st.mtime?.getTime() ?? 0) / 1000),
      };
      if (st.isSymlink) {
        out.push({ ...base, type: "symlink", target: await Deno.readLink(p) });
      } else if (st.isDirectory) {
        out.push({ ...base, type: "dir" });
        await walk(r);
      } else if (st.isFile) {
        let data: Uint8Array;
        try {
          data = await Deno.readFile(p);
        } catch (e) {
          throw new InitramfsError(`cannot read ${p}: ${(e as Error).message}`);
        }
        out.push({ ...base, type: "file", data });
      } else if (st.isCharDevice || st.isBlockDevice) {
        // st_rdev = (major << 8) | (minor & 0xff) | ((minor & ~0xff) << 12) in
        // glibc's 32-bit-compatible encoding of the low 32 bits.
        const rdev = st.rdev ?? 0;
        const major = ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
        const minor = (rdev & 0xff) | ((rdev >>> 12) & ~0xff);
        out.push({ ...base, type: st.isCharDevice ? "char" : "block", major, minor });
      } else if (st.isFifo) out.push({ ...base, type: "fifo" });
      else if (st.isSocket) out.push({ ...base, type: "socket" });
    }
  };
  await walk("");
  return out;
}

/**
 * Puts `entries` in an order the kernel can unpack: every parent directory
 * exists before its children (missing ones are added, mode 0755, root's), and
 * a later entry with the same path replaces an earlier one (so device specs
 * and extra files override the tree).
 */
export function arrangeEntries(entries: readonly CpioEntry[]): CpioEntry[] {
  const byPath = new Map<string, CpioEntry>();
  for (const e of entries) {
    const path = normalizeCpioPath(e.path, "cpio entry");
    byPath.set(path, { ...e, path });
  }
  for (const path of [...byPath.keys()]) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      const have = byPath.get(parent);
      if (!have) byPath.set(parent, { path: parent, type: "dir", perm: 0o755 });
      else if (have.type !== "dir") {
        throw new InitramfsError(
          `${path}: its parent ${parent} is a ${have.type}, not a directory`,
        );
      }
    }
  }
  // Sorting by path component puts a directory before everything under it.
  const key = (p: string) => p.split("/");
  return [...byPath.values()].sort((a, b) => {
    const ka = key(a.path), kb = key(b.path);
    for (let i = 0; i < Math.min(ka.length, kb.length); i++) {
      if (ka[i] !== kb[i]) return ka[i] < kb[i] ? -1 : 1;
    }
    return ka.length - kb.length;
  });
}

/** What goes into an initramfs. */
export interface InitramfsOptions extends CollectOptions {
  /** A directory whose contents become the root (optional). */
  readonly dir?: string;
  /** Extra entries (device nodes, files); they replace tree entries at the same path. */
  readonly entries?: readonly CpioEntry[];
  /** gzip the archive (default true). */
  readonly compress?: boolean;
}

/**
 * Builds an initramfs: the tree under `dir` plus `entries`, parents first,
 * as a newc cpio, gzip-compressed unless `compress` is false.
 */
export async function buildInitramfs(opts: InitramfsOptions): Promise<Uint8Array> {
  const tree = opts.dir === undefined ? [] : await collectDir(opts.dir, opts);
  const cpio = cpioNewc(arrangeEntries([...tree, ...(opts.entries ?? [])]));
  return opts.compress === false ? cpio : await gzip(cpio);
}

/**
 * Where control sockets live: `$XDG_RUNTIME_DIR/dhyve/` (the XDG Base
 * Directory Specification's place for sockets, private to the user), or
 * `/run/dhyve/` for root without one, or `$TMPDIR/dhyve-<uid>/` for others
 * without one. The directory is mode 0700 and owned by the user; each VM's
 * socket is `<name>.sock`, mode 0600.
 *
 * @module
 */

/** The file-name suffix of a control socket in the runtime directory. */
export const SOCKET_SUFFIX = ".sock";

/** The longest unix socket path (sockaddr_un.sun_path holds 108 bytes with the NUL, unix(7)). */
export const MAX_SOCKET_PATH = 107;

/** A problem with the runtime directory or a socket path: one line for the user. */
export class CtlPathError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "CtlPathError";
  }
}

function uid(): number {
  return Deno.uid() ?? 0;
}

/** The runtime directory for control sockets (not created). */
export function runtimeDir(): string {
  const xdg = Deno.env.get("XDG_RUNTIME_DIR");
  if (xdg && xdg.startsWith("/")) return `${xdg.replace(/\/+$/, "")}/dhyve`;
  if (uid() === 0) return "/run/dhyve";
  const tmp = Deno.env.get("TMPDIR") || "/tmp";
  return `${tmp.replace(/\/+$/, "")}/dhyve-${uid()}`;
}

/** The default socket path of VM `name`. */
export function socketPathFor(name: string): string {
  return `${runtimeDir()}/${name}${SOCKET_SUFFIX}`;
}

/**
 * Creates the runtime directory (mode 0700) or checks the one there: a
 * directory, not a symbolic link, owned by this user; its mode is set to
 * 0700 if it is looser.
 */
export function ensureRuntimeDir(dir = runtimeDir()): string {
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new CtlPathError(`cannot create the control directory ${dir}: ${reason(e)}`);
  }
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(dir);
  } catch (e) {
    throw new CtlPathError(`cannot read the control directory ${dir}: ${reason(e)}`);
  }
  if (!st.isDirectory) throw new CtlPathError(`${dir} is not a directory`);
  if (st.uid !== uid()) {
    throw new CtlPathError(`the control directory ${dir} belongs to uid ${st.uid}, not to you`);
  }
  if (((st.mode ?? 0) & 0o777) !== 0o700) {
    try {
      Deno.chmodSync(dir, 0o700);
    } catch (e) {
      throw new CtlPathError(`cannot make ${dir} private (mode 0700): ${reason(e)}`);
    }
  }
  return dir;
}

/** An OS error's reason without Deno's `: <op> '<path>'` suffix. */
export function reason(e: unknown): string {
  return (e as Error).message.replace(/: \w+ '.*'$/s, "");
}

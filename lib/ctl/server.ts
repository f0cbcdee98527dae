/**
 * The control socket of a running VM: a unix stream socket (mode 0600 in a
 * 0700 directory, lib/ctl/paths.ts) serving the line-delimited JSON
 * protocol of lib/ctl/protocol.ts to any number of clients at once.
 *
 * Each connection reads its lines in order and answers each; a line over
 * the size limit is answered with `too-large` and skipped to its newline; a
 * request over the time limit is answered with `timeout`; a connection that
 * holds a partial line too long, or does not read its answers, is closed.
 * Nothing a client sends stops the VM or the other clients.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Vm } from "../vm/vm.ts";
import { type CtlTarget, runCommand } from "./commands.ts";
import { ensureRuntimeDir, MAX_SOCKET_PATH, reason } from "./paths.ts";
import {
  CtlError,
  type CtlResponse,
  idOf,
  LINE_TIMEOUT_MS,
  MAX_CONNECTIONS,
  MAX_REQUEST_BYTES,
  parseRequest,
  PROTOCOL_VERSION,
  REQUEST_TIMEOUT_MS,
} from "./protocol.ts";

const log = getLogger(["dhyve", "ctl"]);

/** The socket cannot be made: a live VM of that name, or a path problem. */
export class CtlSocketError extends Error {
  /** True when another live dhyve serves the path. */
  readonly inUse: boolean;
  /** Builds the error. */
  constructor(message: string, inUse = false) {
    super(message);
    this.name = "CtlSocketError";
    this.inUse = inUse;
  }
}

/** An idle connection (no partial line, no request) is closed after this long (ms). */
const IDLE_TIMEOUT_MS = 5 * 60_000;

/** Whether something accepts connections on the unix socket `path`. */
export async function socketAlive(path: string): Promise<boolean> {
  try {
    const c = await Deno.connect({ transport: "unix", path });
    c.close();
    return true;
  } catch (e) {
    // ECONNREFUSED: a socket file nobody listens on (its dhyve was killed).
    if (e instanceof Deno.errors.ConnectionRefused || e instanceof Deno.errors.NotFound) {
      return false;
    }
    return true; // cannot tell (permissions, say): never take it for stale
  }
}

/**
 * Binds the socket at `path`. A socket file there that nobody listens on is
 * stale (a dhyve killed before it could remove it) and is replaced; a live
 * one is an error with `inUse` set.
 */
async function bindSocket(path: string, name: string): Promise<Deno.UnixListener> {
  if (new TextEncoder().encode(path).length > MAX_SOCKET_PATH) {
    throw new CtlSocketError(
      `control socket path ${path} is longer than ${MAX_SOCKET_PATH} bytes (unix(7))`,
    );
  }
  for (let attempt = 0;; attempt++) {
    try {
      const listener = Deno.listen({ transport: "unix", path });
      try {
        Deno.chmodSync(path, 0o600);
      } catch (e) {
        listener.close();
        throw new CtlSocketError(`cannot make ${path} private (mode 0600): ${reason(e)}`);
      }
      return listener;
    } catch (e) {
      if (e instanceof CtlSocketError) throw e;
      if (!(e instanceof Deno.errors.AddrInUse) || attempt > 0) {
        throw new CtlSocketError(`cannot create control socket ${path}: ${reason(e)}`);
      }
    }
    let isSocket = false;
    try {
      isSocket = Deno.lstatSync(path).isSocket ?? false;
    } catch { /* gone meanwhile: bind again */ }
    const inUse = () =>
      new CtlSocketError(
        `a VM named "${name}" is already running (control socket ${path}); ` +
          "give this one another [vm] name, or --ctl PATH, or --no-ctl",
        true,
      );
    if (isSocket) {
      if (await socketAlive(path)) throw inUse();
      // Confirm: a dhyve that bound the path a moment ago may not listen yet.
      await new Promise((r) => setTimeout(r, 50));
      if (await socketAlive(path)) throw inUse();
      log.debug("replacing the stale control socket {path}", { path });
    } else {
      try {
        Deno.lstatSync(path);
        throw new CtlSocketError(`${path} exists and is not a socket; not replacing it`);
      } catch (e) {
        if (e instanceof CtlSocketError) throw e;
      }
    }
    try {
      Deno.removeSync(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new CtlSocketError(`cannot remove the stale socket ${path}: ${reason(e)}`);
      }
    }
  }
}

/** Options for {@linkcode CtlServer.start}. */
export interface CtlServerOptions {
  /** The socket path; default: `<runtime dir>/<name>.sock` (the directory is made private). */
  readonly path?: string;
  /** The default runtime directory's path (for tests); default lib/ctl/paths.ts runtimeDir(). */
  readonly runtimeDir?: string;
}

/**
 * A VM's control socket server: {@linkcode CtlServer.bind} makes the socket
 * (before the VM is built, so that a name in use is found early),
 * {@linkcode CtlServer.serve} starts answering for the VM, and
 * {@linkcode CtlServer.close} removes the socket.
 */
export class CtlServer {
  /** The socket path. */
  readonly path: string;
  readonly #listener: Deno.UnixListener;
  readonly #conns = new Set<Deno.UnixConn>();
  readonly #inode: number | null;
  readonly #onUnload = () => this.#removeSocket();
  #target: CtlTarget | undefined;
  #closed = false;
  #accepting: Promise<void> | undefined;

  private constructor(path: string, listener: Deno.UnixListener) {
    this.path = path;
    this.#listener = listener;
    this.#inode = Deno.lstatSync(path).ino;
  }

  /** {@linkcode CtlServer.bind} then {@linkcode CtlServer.serve}. */
  static async start(vm: Vm, options: CtlServerOptions = {}): Promise<CtlServer> {
    const server = await CtlServer.bind(vm.machine.config.vm.name, options);
    server.serve(vm);
    return server;
  }

  /**
   * Creates the control socket of VM `name`; connections wait until
   * {@linkcode CtlServer.serve}. Throws a {@linkcode CtlSocketError} (one
   * line) when it cannot; `inUse` tells a live VM of that name.
   */
  static async bind(name: string, options: CtlServerOptions = {}): Promise<CtlServer> {
    let path = options.path;
    if (path === undefined) {
      let dir: string;
      try {
        dir = ensureRuntimeDir(options.runtimeDir);
      } catch (e) {
        throw new CtlSocketError((e as Error).message);
      }
      path = `${dir}/${name}.sock`;
    }
    const listener = await bindSocket(path, name);
    const server = new CtlServer(path, listener);
    // Deno.exit() runs "unload" listeners: the socket goes on that path too.
    globalThis.addEventListener("unload", server.#onUnload);
    log.debug("control socket {path}", { path });
    return server;
  }

  /** Starts answering requests about `vm`. */
  serve(vm: Vm): void {
    if (this.#target || this.#closed) return;
    this.#target = { vm, socket: this.path, startedAt: Date.now() };
    this.#accepting = this.#accept();
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.UnixConn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return; // closed
      }
      if (this.#closed) {
        conn.close();
        return;
      }
      if (this.#conns.size >= MAX_CONNECTIONS) {
        this.#refuse(conn);
        continue;
      }
      this.#conns.add(conn);
      this.#serve(conn).finally(() => {
        this.#conns.delete(conn);
        try {
          conn.close();
        } catch { /* closed already */ }
      });
    }
  }

  #refuse(conn: Deno.UnixConn): void {
    const line = JSON.stringify({
      v: PROTOCOL_VERSION,
      id: null,
      ok: false,
      error: { code: "busy", message: `too many control connections (${MAX_CONNECTIONS})` },
    }) + "\n";
    conn.write(new TextEncoder().encode(line)).catch(() => {}).finally(() => {
      try {
        conn.close();
      } catch { /* closed */ }
    });
  }

  /** Serves one connection until the client closes it or misbehaves. */
  async #serve(conn: Deno.UnixConn): Promise<void> {
    const buf = new Uint8Array(16 * 1024);
    const decoder = new TextDecoder("utf-8", { fatal: true });
    let parts: Uint8Array[] = [];
    let size = 0;
    let discarding = false;
    // One timer per connection: a partial line may wait LINE_TIMEOUT_MS, an
    // idle connection IDLE_TIMEOUT_MS; then the connection is closed.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        try {
          conn.close();
        } catch { /* closed */ }
      }, ms);
    };
    try {
      arm(IDLE_TIMEOUT_MS);
      for (;;) {
        let n: number | null;
        try {
          n = await conn.read(buf);
        } catch {
          return;
        }
        if (n === null || this.#closed) return;
        const chunk = buf.subarray(0, n);
        let start = 0;
        for (;;) {
          const nl = chunk.indexOf(10, start);
          if (nl < 0) break;
          const piece = chunk.subarray(start, nl);
          start = nl + 1;
          if (discarding) {
            discarding = false; // answered when it went over the limit
          } else if (size + piece.length > MAX_REQUEST_BYTES) {
            if (!await this.#send(conn, tooLarge())) return;
          } else {
            const line = join(parts, size, piece);
            let text: string | undefined;
            try {
              text = decoder.decode(line);
            } catch {
              if (
                !await this.#send(conn, errorResponse(null, new CtlError("bad-json", "not UTF-8")))
              ) return;
            }
            if (text !== undefined && text.trim() !== "") {
              if (!await this.#send(conn, await this.#handle(text))) return;
            }
          }
          parts = [];
          size = 0;
        }
        const rest = chunk.subarray(start);
        if (!discarding && rest.length > 0) {
          if (size + rest.length > MAX_REQUEST_BYTES) {
            discarding = true;
            parts = [];
            size = 0;
            if (!await this.#send(conn, tooLarge())) return;
          } else {
            parts.push(rest.slice());
            size += rest.length;
          }
        }
        arm(size > 0 || discarding ? LINE_TIMEOUT_MS : IDLE_TIMEOUT_MS);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Answers one request line (never throws). */
  async #handle(text: string): Promise<CtlResponse> {
    let id: unknown = null;
    try {
      const req = parseRequest(text);
      id = req.id ?? null;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new CtlError("timeout", `${req.cmd} took longer than ${REQUEST_TIMEOUT_MS} ms`),
            ),
          REQUEST_TIMEOUT_MS,
        );
      });
      try {
        const result = await Promise.race([
          runCommand(this.#target!, req.cmd, req.args ?? {}),
          late,
        ]);
        return { v: PROTOCOL_VERSION, id, ok: true, result };
      } finally {
        clearTimeout(timer);
      }
    } catch (e) {
      if (id === null) id = idOf(text);
      const err = e instanceof CtlError ? e : new CtlError("failed", (e as Error).message);
      return errorResponse(id, err);
    }
  }

  /** Writes a response; false (and the connection closed) when the client does not take it in time. */
  async #send(conn: Deno.UnixConn, r: CtlResponse): Promise<boolean> {
    let bytes = new TextEncoder().encode(JSON.stringify(r) + "\n");
    const timer = setTimeout(() => {
      try {
        conn.close();
      } catch { /* closed */ }
    }, REQUEST_TIMEOUT_MS);
    try {
      while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
      return true;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Removes the socket file if it is still this server's. */
  #removeSocket(): void {
    try {
      if (Deno.lstatSync(this.path).ino === this.#inode) Deno.removeSync(this.path);
    } catch { /* gone already */ }
  }

  /** Stops serving, closes every connection and removes the socket. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    globalThis.removeEventListener("unload", this.#onUnload);
    this.#removeSocket();
    try {
      this.#listener.close();
    } catch { /* closed */ }
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await this.#accepting;
  }
}

function join(parts: Uint8Array[], size: number, last: Uint8Array): Uint8Array {
  if (parts.length === 0) return last;
  const out = new Uint8Array(size + last.length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  out.set(last, at);
  return out;
}

function errorResponse(id: unknown, e: CtlError): CtlResponse {
  return { v: PROTOCOL_VERSION, id, ok: false, error: { code: e.code, message: e.message } };
}

function tooLarge(): CtlResponse {
  return errorResponse(
    null,
    new CtlError("too-large", `request line longer than ${MAX_REQUEST_BYTES} bytes`),
  );
}

/**
 * A client of the control protocol (lib/ctl/protocol.ts): connects to a
 * VM's socket, sends requests and reads their responses in order.
 *
 * ```ts
 * const c = await CtlClient.connect(socketPathFor("demo"));
 * try {
 *   console.log(await c.request("stats"));
 * } finally {
 *   c.close();
 * }
 * ```
 *
 * @module
 */
import { runtimeDir, SOCKET_SUFFIX } from "./paths.ts";
import {
  CtlError,
  type CtlErrorCode,
  type CtlResponse,
  PROTOCOL_VERSION,
  REQUEST_TIMEOUT_MS,
} from "./protocol.ts";

/** The VM cannot be reached: no socket, nobody listening, or it went away. */
export class CtlConnectError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "CtlConnectError";
  }
}

/** A connection to one VM's control socket. */
export class CtlClient {
  /** The socket path. */
  readonly path: string;
  readonly #conn: Deno.UnixConn;
  readonly #buf = new Uint8Array(64 * 1024);
  #pending: Uint8Array[] = [];
  #nextId = 1;
  #closed = false;

  private constructor(path: string, conn: Deno.UnixConn) {
    this.path = path;
    this.#conn = conn;
  }

  /** Connects to the socket at `path`. */
  static async connect(path: string): Promise<CtlClient> {
    try {
      return new CtlClient(path, await Deno.connect({ transport: "unix", path }));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new CtlConnectError(`no control socket at ${path}`);
      }
      if (e instanceof Deno.errors.ConnectionRefused) {
        throw new CtlConnectError(`the control socket ${path} is dead (its dhyve is gone)`);
      }
      throw new CtlConnectError(`cannot connect to ${path}: ${(e as Error).message}`);
    }
  }

  /**
   * Sends one request and returns its result; a failed request throws a
   * {@linkcode CtlError} with the server's code and message.
   */
  async request(
    cmd: string,
    args: Readonly<Record<string, unknown>> = {},
    timeoutMs = REQUEST_TIMEOUT_MS + 2000,
  ): Promise<unknown> {
    const id = this.#nextId++;
    await this.sendRaw(JSON.stringify({ v: PROTOCOL_VERSION, id, cmd, args }) + "\n");
    const r = await this.readResponse(timeoutMs);
    if (r.id !== id) {
      throw new CtlConnectError(`response out of order (id ${JSON.stringify(r.id)})`);
    }
    if (!r.ok) throw new CtlError(r.error.code as CtlErrorCode, r.error.message);
    return r.result;
  }

  /** Writes raw bytes (a request line, or anything: tests send malformed ones). */
  async sendRaw(data: string | Uint8Array): Promise<void> {
    let bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    try {
      while (bytes.length > 0) bytes = bytes.subarray(await this.#conn.write(bytes));
    } catch (e) {
      throw new CtlConnectError(`lost the connection to ${this.path}: ${(e as Error).message}`);
    }
  }

  /** Reads the next response line. */
  async readResponse(timeoutMs = REQUEST_TIMEOUT_MS + 2000): Promise<CtlResponse> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    try {
      timer = setTimeout(() => {
        timedOut = true;
        this.close();
      }, timeoutMs);
      for (;;) {
        const line = this.#takeLine();
        if (line !== undefined) return JSON.parse(line) as CtlResponse;
        let n: number | null;
        try {
          n = await this.#conn.read(this.#buf);
        } catch (e) {
          if (timedOut) throw new CtlConnectError(`no answer from ${this.path} in ${timeoutMs} ms`);
          throw new CtlConnectError(`lost the connection to ${this.path}: ${(e as Error).message}`);
        }
        if (n === null) {
          if (timedOut) throw new CtlConnectError(`no answer from ${this.path} in ${timeoutMs} ms`);
          throw new CtlConnectError(`${this.path} closed the connection`);
        }
        this.#pending.push(this.#buf.slice(0, n));
      }
    } finally {
      clearTimeout(timer);
    }
  }

  #takeLine(): string | undefined {
    let total = 0;
    for (let i = 0; i < this.#pending.length; i++) {
      const p = this.#pending[i];
      const nl = p.indexOf(10);
      if (nl >= 0) {
        const out = new Uint8Array(total + nl);
        let at = 0;
        for (let j = 0; j < i; j++) {
          out.set(this.#pending[j], at);
          at += this.#pending[j].length;
        }
        out.set(p.subarray(0, nl), at);
        const rest = p.subarray(nl + 1);
        this.#pending = rest.length
          ? [rest, ...this.#pending.slice(i + 1)]
          : this.#pending.slice(i + 1);
        return new TextDecoder().decode(out);
      }
      total += p.length;
    }
    return undefined;
  }

  /** Closes the connection. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }
}

/** A VM found in the runtime directory. */
export interface FoundVm {
  readonly name: string;
  readonly socket: string;
  /** The `hello` answer; undefined for a stale socket. */
  readonly hello?: Record<string, unknown>;
}

/** Every control socket in the runtime directory, each asked `hello` (stale ones have none). */
export async function findVms(dir = runtimeDir()): Promise<FoundVm[]> {
  const names: string[] = [];
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (e.name.endsWith(SOCKET_SUFFIX)) names.push(e.name.slice(0, -SOCKET_SUFFIX.length));
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw new CtlConnectError(`cannot read ${dir}: ${(e as Error).message}`);
  }
  names.sort();
  return await Promise.all(names.map(async (name) => {
    const socket = `${dir}/${name}${SOCKET_SUFFIX}`;
    try {
      const c = await CtlClient.connect(socket);
      try {
        return {
          name,
          socket,
          hello: await c.request("hello", {}, 2000) as Record<string, unknown>,
        };
      } finally {
        c.close();
      }
    } catch {
      return { name, socket };
    }
  }));
}

/**
 * The socket of VM `name`, or of the only running VM when `name` is
 * undefined. Throws a {@linkcode CtlConnectError} naming what is wrong.
 */
export async function resolveVm(name: string | undefined, dir = runtimeDir()): Promise<string> {
  if (name !== undefined) {
    const socket = `${dir}/${name}${SOCKET_SUFFIX}`;
    try {
      Deno.lstatSync(socket);
    } catch {
      throw new CtlConnectError(`no VM named "${name}" is running (no socket ${socket})`);
    }
    return socket;
  }
  const live = (await findVms(dir)).filter((v) => v.hello);
  if (live.length === 1) return live[0].socket;
  if (live.length === 0) throw new CtlConnectError(`no VM is running (no live socket in ${dir})`);
  throw new CtlConnectError(
    `${live.length} VMs are running (${live.map((v) => v.name).join(", ")}): name one`,
  );
}

/**
 * The start guard's thread (see lib/vm/start_guard.ts). It listens for
 * SIGTERM, SIGINT and SIGHUP while `up` starts a VM. The main thread hears
 * them too and, when it is free, gives up the start and releases
 * everything itself; but building a VM has long synchronous stretches
 * (parsing a large definition, creating thousands of devices) in which the
 * main thread hears nothing. So after a short grace this thread looks at
 * the claim word: if the main thread has not claimed the way out, this
 * thread takes it and ends dhyve at once; if the main thread has claimed
 * it but is still releasing when the deadline comes, this thread ends
 * dhyve all the same. Ending at once releases everything the kernel holds
 * for the process (KVM fds, guest RAM, console files); what lives on
 * outside it, the control socket, is removed first.
 *
 * @module
 */
/// <reference lib="deno.worker" />

/** The first message: the claim word and the timing. */
export interface StartGuardInit {
  /** Int32 [0]: the claim word (CLAIM_* in lib/vm/start_guard.ts). */
  readonly claim: SharedArrayBuffer;
  /** ms after a signal before this thread takes the way out unclaimed. */
  readonly graceMs: number;
  /** ms after a signal by which dhyve has ended, whoever claimed. */
  readonly deadlineMs: number;
  readonly signals: readonly Deno.Signal[];
}

/** A later message: the control socket to remove before ending dhyve (its inode, to be sure it is ours). */
export interface StartGuardSocket {
  readonly socket: string;
  readonly ino: number | null;
}

/** Claim word values (lib/vm/start_guard.ts re-exports them). */
export const CLAIM_NONE = 0;
/** The main thread is giving up the start and releasing. */
export const CLAIM_MAIN = 1;
/** The start is over: the guard has nothing more to do. */
export const CLAIM_DONE = 2;
/** This thread is ending dhyve. */
export const CLAIM_GUARD = 3;

/** Status dhyve ends with: a poweroff (README, "Exit codes"). */
const EXIT_POWEROFF = 1;

let socket: StartGuardSocket | undefined;

function removeSocket(): void {
  if (!socket) return;
  try {
    if (socket.ino === null || Deno.lstatSync(socket.socket).ino === socket.ino) {
      Deno.removeSync(socket.socket);
    }
  } catch { /* gone already */ }
}

function say(message: string): void {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(`dhyve: ${message}\n`));
  } catch { /* stderr closed */ }
}

self.onmessage = (e: MessageEvent<StartGuardInit>) => {
  const init = e.data;
  self.onmessage = (m: MessageEvent<StartGuardSocket>) => void (socket = m.data);
  const claim = new Int32Array(init.claim);
  // _exit(2), not exit(3): the main thread may be running JavaScript; the
  // C library's exit handlers must not run under it.
  const libc = Deno.dlopen("libc.so.6", { _exit: { parameters: ["i32"], result: "void" } });
  let heard = false;
  const onSignal = (name: Deno.Signal) => () => {
    if (heard) return;
    heard = true;
    setTimeout(() => {
      const was = Atomics.compareExchange(claim, 0, CLAIM_NONE, CLAIM_GUARD);
      if (was === CLAIM_DONE) return;
      if (was === CLAIM_NONE) {
        removeSocket();
        say(`${name}: stopped while starting, before the guest ran`);
        libc.symbols._exit(EXIT_POWEROFF);
      }
      // The main thread is releasing; it has until the deadline.
      setTimeout(() => {
        if (Atomics.load(claim, 0) === CLAIM_DONE) return;
        removeSocket();
        say(`${name}: releasing the VM took too long; ended at once`);
        libc.symbols._exit(EXIT_POWEROFF);
      }, Math.max(0, init.deadlineMs - init.graceMs));
    }, init.graceMs);
  };
  for (const s of init.signals) Deno.addSignalListener(s, onSignal(s));
  self.postMessage("ready");
};

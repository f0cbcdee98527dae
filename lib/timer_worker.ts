/**
 * The timer thread: it attaches every device of the VM (like each vCPU
 * Worker does), sleeps until the earliest armed deadline in the shared
 * {@linkcode TimerTable}, and runs each expired timer's `onTimer` under the
 * device lock. It also tells the devices when a full console output has room
 * again (`onOutputReady`): the console writer wakes it for that. Arming a timer from any thread wakes it (lib/timers.ts).
 * Atomics.wait gives it sub-millisecond wake-ups without depending on the
 * main thread's event loop.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { attachAll, realMsUntil, type VmShared } from "./vm/host.ts";
import type { DeviceSpec } from "../devices/registry.ts";
import { VmControl } from "./vm/vm_control.ts";
import { TIMER_STOP, TIMER_STOPPED } from "./timers.ts";
import { OutputRing } from "./output.ts";

/** The one message the timer thread receives. */
export interface TimerWorkerInit {
  readonly shared: VmShared;
  readonly specs: readonly DeviceSpec[];
  /**
   * This thread's stop block: Int32 [0] = 1 asks it to stop (the table's
   * wake() makes it look); it sets [1] = 1 when it has stopped.
   */
  readonly stop: SharedArrayBuffer;
}

function run(init: TimerWorkerInit): void {
  const { host, devices } = attachAll(init.shared, init.specs, { strict: false, record() {} });
  const { timers, control } = host;
  const lock = control.lock;
  const stop = new Int32Array(init.stop);
  // The console writer bumps a ring's ready count when it made room a device waits for.
  const rings = init.shared.outputs.map((b) => b && new OutputRing(b));
  // -1: the first pass tells the waiting devices once, for room made before
  // this thread started (after a reset, a full ring may drain meanwhile).
  const readySeen = rings.map(() => -1);
  const waiting = devices.devices.filter((d) => d.onOutputReady);
  self.postMessage({ type: "ready" });
  for (;;) {
    // The generation is read before the stop word: a stop posted (stop word,
    // then wake) after this read moves the generation, so the sleep below
    // returns at once instead of missing it and sleeping with nothing armed.
    const seen = timers.generation();
    if (Atomics.load(stop, TIMER_STOP) !== 0) break;
    let ready = false;
    rings.forEach((r, i) => {
      if (r && r.readyCount !== readySeen[i]) {
        readySeen[i] = r.readyCount;
        ready = true;
      }
    });
    if (ready) {
      lock.acquire();
      try {
        for (const d of waiting) d.onOutputReady!();
      } finally {
        lock.release();
      }
    }
    const now = host.now();
    for (let slot = 0; slot < timers.size; slot++) {
      if (!timers.takeExpired(slot, now)) continue;
      const owner = devices.timerOwners[slot];
      if (!owner?.device.onTimer) continue;
      lock.acquire();
      try {
        owner.device.onTimer(owner.id);
      } catch (e) {
        control.requestSuspend({
          kind: "error",
          message: `timer ${owner.id} of ${owner.device.spec.name}: ${(e as Error).message}`,
        });
      } finally {
        lock.release();
      }
    }
    const next = timers.earliest();
    if (next === undefined) {
      timers.sleep(seen, Infinity);
    } else {
      const wait = realMsUntil(next, host.now(), host.clockRate);
      if (wait > 0) timers.sleep(seen, wait);
    }
  }
}

self.onmessage = (e: MessageEvent<TimerWorkerInit>) => {
  self.onmessage = null;
  const stop = new Int32Array(e.data.stop);
  try {
    run(e.data);
  } catch (err) {
    // Without this thread no device timer fires: the VM cannot go on.
    new VmControl(e.data.shared.control).requestSuspend({
      kind: "error",
      message: `timer thread failed: ${(err as Error).message}`,
    });
  } finally {
    Atomics.store(stop, TIMER_STOPPED, 1);
    Atomics.notify(stop, TIMER_STOPPED);
  }
  self.close();
};

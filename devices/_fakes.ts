/**
 * Test doubles shared by the device unit tests: a settable clock, and
 * interrupt lines, timers, INTx and MSI sinks, platforms and outputs that
 * record every call.
 *
 * @module
 */
import type { Clock, IrqLine, MsiSink, Output, Platform, SuspendRequest, Timer } from "./device.ts";
import type { IntxSink } from "./pci/function.ts";

/** A Clock whose time the test sets. */
export class FakeClock implements Clock {
  /** The time now (ns). */
  t = 0;
  /** Returns {@linkcode FakeClock.t}. */
  now(): number {
    return this.t;
  }
}

/** A Timer that records its deadline and every call. */
export class FakeTimer implements Timer {
  /** The armed deadline, or null when not armed. */
  armed: number | null = null;
  /** Every call, in order: `arm <deadline>` or `cancel`. */
  log: string[] = [];
  /** Records an arm. */
  arm(deadline: number): void {
    this.armed = deadline;
    this.log.push(`arm ${deadline}`);
  }
  /** Records a cancel. */
  cancel(): void {
    this.armed = null;
    this.log.push("cancel");
  }
}

/** An IntxSink that records its calls and level. */
export class FakeIntx implements IntxSink {
  /** Every call, in order. */
  calls: string[] = [];
  /** The level now. */
  level = false;
  /** Records an assert. */
  assert(): void {
    this.calls.push("assert");
    this.level = true;
  }
  /** Records a deassert. */
  deassert(): void {
    this.calls.push("deassert");
    this.level = false;
  }
}

/** An IrqLine that records its calls (pulses too) and level. */
export class FakeIrq extends FakeIntx implements IrqLine {
  /** Records a pulse. */
  pulse(): void {
    this.calls.push("pulse");
  }
}

/** An MsiSink that records the messages. */
export class FakeMsi implements MsiSink {
  /** Every message, in order. */
  sent: { address: number; data: number }[] = [];
  /** Records a message. */
  send(address: number, data: number): void {
    this.sent.push({ address, data });
  }
}

/** A Platform that records the suspend requests. */
export class FakePlatform implements Platform {
  /** Every request, in order. */
  requests: SuspendRequest[] = [];
  /** Records a request. */
  suspend(request: SuspendRequest): void {
    this.requests.push(request);
  }
}

/** An Output that records the bytes written. */
export class FakeOutput implements Output {
  /** Every byte taken, in order. */
  bytes: number[] = [];
  /** How many writes there were. */
  writes = 0;
  /** How many more bytes it takes (a full backend: 0). */
  room = Infinity;
  /** Takes what fits in `room` and records it. */
  write(bytes: Uint8Array): number {
    this.writes++;
    const n = Math.min(bytes.length, this.room);
    this.room -= n;
    this.bytes.push(...bytes.subarray(0, n));
    return n;
  }
}

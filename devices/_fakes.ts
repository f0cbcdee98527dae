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

/** Interrupt lines by number (GSI or ISA IRQ), each a {@linkcode FakeIrq} made the first time it is asked for. */
export class FakeIrqs {
  /** The lines made so far, by number. */
  readonly lines: Map<number, FakeIrq> = new Map();
  /** Every number asked for, in order. */
  readonly asked: number[] = [];
  /** The line numbered `n`, made on first use: pass it as a device's line factory. */
  readonly line = (n: number): FakeIrq => {
    this.asked.push(n);
    let l = this.lines.get(n);
    if (!l) {
      l = new FakeIrq();
      this.lines.set(n, l);
    }
    return l;
  };
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

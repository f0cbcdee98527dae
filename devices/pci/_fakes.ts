/**
 * Test doubles shared by the PCI unit tests: interrupt lines, INTx and MSI
 * sinks that record every call.
 *
 * @module
 */
import type { IrqLine, MsiSink } from "../device.ts";
import type { IntxSink } from "./function.ts";

/** An IrqLine that records its calls and level. */
export class FakeIrq implements IrqLine {
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
  /** Records a pulse. */
  pulse(): void {
    this.calls.push("pulse");
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

/** An MsiSink that records the messages. */
export class FakeMsi implements MsiSink {
  /** Every message, in order. */
  sent: { address: number; data: number }[] = [];
  /** Records a message. */
  send(address: number, data: number): void {
    this.sent.push({ address, data });
  }
}

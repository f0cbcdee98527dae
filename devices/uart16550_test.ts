import assert from "node:assert/strict";
import { FakeIrq, FakeOutput } from "./_fakes.ts";
import {
  FCR_ENABLE,
  FCR_RX_RESET,
  FCR_TRIGGER_1,
  FCR_TRIGGER_14,
  FCR_TRIGGER_4,
  FCR_TRIGGER_8,
  FCR_TX_RESET,
  IER_EDSSI,
  IER_ELSI,
  IER_ERBFI,
  IER_ETBEI,
  IIR_CTI,
  IIR_FIFOS_ENABLED,
  IIR_MS,
  IIR_NO_INT,
  IIR_RDA,
  IIR_RLS,
  IIR_THRE,
  LCR_DLAB,
  LSR_DR,
  LSR_OE,
  LSR_TEMT,
  LSR_THRE,
  MCR_DTR,
  MCR_LOOP,
  MCR_OUT1,
  MCR_OUT2,
  MCR_RTS,
  MSR_CTS,
  MSR_DCD,
  MSR_DCTS,
  MSR_DDCD,
  MSR_DDSR,
  MSR_DSR,
  MSR_RI,
  MSR_TERI,
  Uart16550,
  Uart16550State,
  UART_DLL,
  UART_DLM,
  UART_FCR,
  UART_IER,
  UART_IIR,
  UART_LCR,
  UART_LSR,
  UART_MCR,
  UART_MSR,
  UART_RBR,
  UART_SCR,
  UART_THR,
} from "./uart16550.ts";

function setup() {
  const irq = new FakeIrq();
  const out = new FakeOutput();
  const uart = new Uart16550({ irq, out });
  const rd = (off: number) => uart.read(off, 1);
  const wr = (off: number, v: number) => uart.write(off, 1, v);
  return { irq, out, uart, rd, wr };
}

Deno.test("uart: power-on register values", () => {
  const { rd, irq, out } = setup();
  assert.equal(rd(UART_IER), 0);
  assert.equal(rd(UART_IIR), IIR_NO_INT);
  assert.equal(rd(UART_LCR), 0);
  assert.equal(rd(UART_MCR), 0);
  assert.equal(rd(UART_LSR), LSR_THRE | LSR_TEMT);
  assert.equal(rd(UART_MSR), MSR_CTS | MSR_DSR | MSR_DCD);
  assert.equal(rd(UART_SCR), 0);
  assert.deepEqual(irq.calls, []);
  assert.equal(out.writes, 0);
});

Deno.test("uart: divisor latch read/write under DLAB", () => {
  const { rd, wr, out } = setup();
  wr(UART_LCR, LCR_DLAB | 0x03);
  // power-on divisor is 1 (115200 baud), never 0
  assert.equal(rd(UART_DLL), 1);
  assert.equal(rd(UART_DLM), 0);
  wr(UART_DLL, 0x0c);
  wr(UART_DLM, 0x01);
  assert.equal(rd(UART_DLL), 0x0c);
  assert.equal(rd(UART_DLM), 0x01);
  assert.equal(out.writes, 0, "a DLL write is not a THR write");
  wr(UART_LCR, 0x03);
  // DLAB=0: offsets 0/1 are RBR/THR and IER again
  assert.equal(rd(UART_IER), 0);
  wr(UART_IER, 0xff);
  assert.equal(rd(UART_IER), 0x0f, "IER bits 4-7 read 0");
  wr(UART_LCR, LCR_DLAB);
  assert.equal(rd(UART_DLL), 0x0c);
  assert.equal(rd(UART_DLM), 0x01);
});

Deno.test("uart: LCR, MCR and SCR read back", () => {
  const { rd, wr } = setup();
  for (const v of [0x00, 0x1b, 0x7f, 0x03]) {
    wr(UART_LCR, v);
    assert.equal(rd(UART_LCR), v);
  }
  for (const v of [0x00, 0x55, 0xaa, 0xff]) {
    wr(UART_SCR, v);
    assert.equal(rd(UART_SCR), v);
  }
  wr(UART_MCR, 0xff);
  assert.equal(rd(UART_MCR), 0x1f, "MCR bits 5-7 read 0");
});

Deno.test("uart: wide accesses act as byte accesses", () => {
  const { uart, out } = setup();
  uart.write(UART_SCR, 4, 0x12345678);
  assert.equal(uart.read(UART_SCR, 4), 0x78);
  uart.write(UART_THR, 2, 0x4142);
  assert.deepEqual(out.bytes, [0x42]);
});

Deno.test("uart: THR writes emit bytes; THRE stays set", () => {
  const { rd, wr, out } = setup();
  for (const c of "hi\n") wr(UART_THR, c.charCodeAt(0));
  assert.deepEqual(out.bytes, [0x68, 0x69, 0x0a]);
  assert.equal(out.writes, 3);
  assert.equal(rd(UART_LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
});

Deno.test("uart: THRE interrupt sequence", () => {
  const { rd, wr, irq, out } = setup();
  wr(UART_MCR, MCR_OUT2);
  assert.equal(rd(UART_IIR), IIR_NO_INT);
  // enabling ETBEI while THR is empty raises THRE
  wr(UART_IER, IER_ETBEI);
  assert.deepEqual(irq.calls, ["assert"]);
  // reading IIR reports and clears it
  assert.equal(rd(UART_IIR), IIR_THRE);
  assert.equal(irq.level, false);
  assert.equal(rd(UART_IIR), IIR_NO_INT);
  // re-writing IER with ETBEI already set does not re-arm it (edge)
  wr(UART_IER, IER_ETBEI);
  assert.equal(rd(UART_IIR), IIR_NO_INT);
  // a THR write: the byte leaves, THR is empty again -> THRE again
  wr(UART_THR, 0x41);
  assert.deepEqual(out.bytes, [0x41]);
  assert.equal(irq.level, true);
  assert.equal(rd(UART_IIR), IIR_THRE);
  assert.equal(irq.level, false);
  // ETBEI 1 -> 0 -> 1 re-arms (Linux's UART_BUG_THRE probe)
  wr(UART_IER, 0);
  wr(UART_IER, IER_ETBEI);
  assert.equal(rd(UART_IIR), IIR_THRE);
  assert.deepEqual(irq.calls, ["assert", "deassert", "assert", "deassert", "assert", "deassert"]);
  // a disabled source is not reported
  wr(UART_IER, 0);
  wr(UART_THR, 0x42);
  assert.equal(rd(UART_IIR), IIR_NO_INT);
});

Deno.test("uart: RX data available without FIFO (16450 mode)", () => {
  const { uart, rd, wr, irq } = setup();
  wr(UART_MCR, MCR_OUT2);
  wr(UART_IER, IER_ERBFI);
  assert.equal(uart.rxSpace(), 1);
  assert.equal(rd(UART_LSR) & LSR_DR, 0);
  assert.equal(uart.receive(Uint8Array.of(0x61, 0x62)), 1, "the receiver holds one byte");
  assert.equal(uart.rxSpace(), 0);
  assert.equal(rd(UART_LSR) & LSR_DR, LSR_DR);
  assert.equal(irq.level, true);
  assert.equal(rd(UART_IIR), IIR_RDA, "no FIFO bits, no timeout indication in 16450 mode");
  assert.equal(rd(UART_RBR), 0x61);
  assert.equal(irq.level, false);
  assert.equal(rd(UART_IIR), IIR_NO_INT);
  assert.equal(rd(UART_LSR) & LSR_DR, 0);
  assert.equal(uart.receive(Uint8Array.of(0x62)), 1);
  assert.equal(rd(UART_RBR), 0x62);
  assert.deepEqual(irq.calls, ["assert", "deassert", "assert", "deassert"]);
});

Deno.test("uart: RX with FIFO: trigger level and character timeout", () => {
  const { uart, rd, wr, irq } = setup();
  wr(UART_MCR, MCR_OUT2);
  wr(UART_FCR, FCR_ENABLE | FCR_TRIGGER_4);
  wr(UART_IER, IER_ERBFI);
  assert.equal(uart.rxSpace(), 16);
  assert.equal(uart.receive(Uint8Array.of(1, 2, 3)), 3);
  // below the trigger level: reported at once as a character timeout
  assert.equal(rd(UART_IIR), IIR_FIFOS_ENABLED | IIR_CTI);
  assert.equal(irq.level, true);
  uart.receive(Uint8Array.of(4));
  assert.equal(rd(UART_IIR), IIR_FIFOS_ENABLED | IIR_RDA);
  assert.equal(rd(UART_RBR), 1);
  assert.equal(rd(UART_IIR), IIR_FIFOS_ENABLED | IIR_CTI, "below trigger again");
  assert.equal(rd(UART_RBR), 2);
  assert.equal(rd(UART_RBR), 3);
  assert.equal(rd(UART_RBR), 4);
  assert.equal(rd(UART_IIR), IIR_FIFOS_ENABLED | IIR_NO_INT);
  assert.equal(irq.level, false);
  assert.equal(rd(UART_LSR) & LSR_DR, 0);
});

Deno.test("uart: receive trigger levels 1/4/8/14", () => {
  for (
    const [fcr, level] of [[FCR_TRIGGER_1, 1], [FCR_TRIGGER_4, 4], [FCR_TRIGGER_8, 8], [
      FCR_TRIGGER_14,
      14,
    ]]
  ) {
    const { uart, rd, wr } = setup();
    wr(UART_FCR, FCR_ENABLE | fcr);
    wr(UART_IER, IER_ERBFI);
    for (let n = 1; n <= 16; n++) {
      uart.receive(Uint8Array.of(n));
      const id = rd(UART_IIR) & 0x0f;
      assert.equal(id, n >= level ? IIR_RDA : IIR_CTI, `trigger ${level}, ${n} bytes`);
    }
  }
});

Deno.test("uart: receive never overruns; rxSpace tracks the FIFO", () => {
  const { uart, rd, wr } = setup();
  wr(UART_FCR, FCR_ENABLE);
  const data = Uint8Array.from({ length: 20 }, (_, i) => 0x30 + i);
  assert.equal(uart.receive(data), 16);
  assert.equal(uart.rxSpace(), 0);
  assert.equal(uart.receive(data.subarray(16)), 0);
  assert.equal(rd(UART_LSR) & LSR_OE, 0);
  assert.equal(rd(UART_RBR), 0x30);
  assert.equal(uart.rxSpace(), 1);
  assert.equal(uart.receive(data.subarray(16)), 1);
  const got = [];
  while (rd(UART_LSR) & LSR_DR) got.push(rd(UART_RBR));
  assert.deepEqual(got, [...data.subarray(1, 17)]);
  assert.equal(rd(UART_RBR), 0, "an empty RBR reads 0");
});

Deno.test("uart: overrun in loopback, FIFO mode drops the new byte", () => {
  const { rd, wr } = setup();
  wr(UART_FCR, FCR_ENABLE | FCR_TRIGGER_14);
  wr(UART_MCR, MCR_LOOP);
  wr(UART_IER, IER_ELSI | IER_ERBFI);
  for (let i = 0; i < 17; i++) wr(UART_THR, i);
  assert.equal(rd(UART_IIR), IIR_FIFOS_ENABLED | IIR_RLS);
  const lsr = rd(UART_LSR);
  assert.equal(lsr & (LSR_OE | LSR_DR), LSR_OE | LSR_DR);
  assert.equal(rd(UART_LSR) & LSR_OE, 0, "reading LSR clears OE");
  assert.equal(rd(UART_IIR), IIR_FIFOS_ENABLED | IIR_RDA);
  const got = [];
  while (rd(UART_LSR) & LSR_DR) got.push(rd(UART_RBR));
  assert.deepEqual(got, [...Array(16).keys()]);
});

Deno.test("uart: overrun in 16450 mode overwrites the held byte", () => {
  const { rd, wr } = setup();
  wr(UART_MCR, MCR_LOOP);
  wr(UART_THR, 0x11);
  wr(UART_THR, 0x22);
  assert.equal(rd(UART_LSR) & (LSR_OE | LSR_DR), LSR_OE | LSR_DR);
  assert.equal(rd(UART_RBR), 0x22);
  assert.equal(rd(UART_LSR) & (LSR_OE | LSR_DR), 0);
});

Deno.test("uart: loopback routes THR to RBR and mirrors MCR into MSR", () => {
  const { uart, rd, wr, out } = setup();
  rd(UART_MSR);
  // Linux 8250 autoconfig: MCR = LOOP | OUT2 | RTS must read MSR[7:4] = DCD | CTS
  wr(UART_MCR, MCR_LOOP | MCR_OUT2 | MCR_RTS);
  assert.equal(rd(UART_MSR) & 0xf0, MSR_DCD | MSR_CTS);
  wr(UART_MCR, MCR_LOOP | MCR_DTR | MCR_OUT1);
  assert.equal(rd(UART_MSR) & 0xf0, MSR_DSR | MSR_RI);
  wr(UART_MCR, MCR_LOOP);
  assert.equal(rd(UART_MSR) & 0xf0, 0);
  wr(UART_THR, 0x5a);
  assert.equal(out.writes, 0, "loopback output does not reach the line");
  assert.equal(rd(UART_LSR) & LSR_DR, LSR_DR);
  assert.equal(rd(UART_RBR), 0x5a);
  // the line input is disconnected in loopback
  assert.equal(uart.rxSpace(), 0);
  assert.equal(uart.receive(Uint8Array.of(1)), 0);
  // leaving loopback: a connected terminal again
  wr(UART_MCR, 0);
  assert.equal(rd(UART_MSR) & 0xf0, MSR_CTS | MSR_DSR | MSR_DCD);
  wr(UART_THR, 0x5b);
  assert.deepEqual(out.bytes, [0x5b]);
});

Deno.test("uart: modem status deltas and interrupt", () => {
  const { rd, wr } = setup();
  wr(UART_IER, IER_EDSSI);
  assert.equal(rd(UART_IIR), IIR_NO_INT);
  // entering loopback drops CTS/DSR/DCD (MCR outputs are all 0)
  wr(UART_MCR, MCR_LOOP);
  assert.equal(rd(UART_IIR), IIR_MS);
  assert.equal(rd(UART_MSR), MSR_DCTS | MSR_DDSR | MSR_DDCD);
  assert.equal(rd(UART_IIR), IIR_NO_INT, "reading MSR clears the deltas");
  // RI: only the trailing edge sets TERI
  wr(UART_MCR, MCR_LOOP | MCR_OUT1);
  assert.equal(rd(UART_IIR), IIR_NO_INT);
  assert.equal(rd(UART_MSR), MSR_RI);
  wr(UART_MCR, MCR_LOOP);
  assert.equal(rd(UART_MSR), MSR_TERI);
  wr(UART_MCR, MCR_LOOP | MCR_RTS);
  assert.equal(rd(UART_MSR), MSR_DCTS | MSR_CTS);
});

Deno.test("uart: OUT2 gates the IRQ line; loopback closes the gate", () => {
  const { rd, wr, irq } = setup();
  wr(UART_IER, IER_ETBEI);
  assert.deepEqual(irq.calls, [], "pending, but OUT2 = 0");
  assert.equal(rd(UART_IIR), IIR_THRE, "IIR still reports it (polled mode)");
  wr(UART_IER, 0);
  wr(UART_IER, IER_ETBEI);
  wr(UART_MCR, MCR_OUT2);
  assert.deepEqual(irq.calls, ["assert"]);
  wr(UART_MCR, 0);
  assert.deepEqual(irq.calls, ["assert", "deassert"]);
  wr(UART_MCR, MCR_OUT2);
  assert.deepEqual(irq.calls, ["assert", "deassert", "assert"]);
  wr(UART_MCR, MCR_OUT2 | MCR_LOOP);
  assert.deepEqual(irq.calls, ["assert", "deassert", "assert", "deassert"]);
  assert.equal(rd(UART_IIR) & 0x0f, IIR_THRE);
});

Deno.test("uart: FCR RX reset, mode changes and IIR FIFO bits", () => {
  const { uart, rd, wr } = setup();
  wr(UART_FCR, FCR_ENABLE);
  assert.equal(rd(UART_IIR), IIR_FIFOS_ENABLED | IIR_NO_INT);
  uart.receive(Uint8Array.of(1, 2, 3));
  wr(UART_FCR, FCR_ENABLE | FCR_RX_RESET);
  assert.equal(rd(UART_LSR) & LSR_DR, 0, "RX FIFO reset empties the FIFO");
  assert.equal(uart.rxSpace(), 16);
  uart.receive(Uint8Array.of(1, 2, 3));
  // leaving FIFO mode clears the FIFOs; other bits are not programmed
  wr(UART_FCR, FCR_TRIGGER_14);
  assert.equal(rd(UART_IIR), IIR_NO_INT);
  assert.equal(rd(UART_LSR) & LSR_DR, 0);
  assert.equal(uart.rxSpace(), 1);
  uart.receive(Uint8Array.of(9));
  // entering FIFO mode clears them too; trigger back to 1 (FCR = 0 was held)
  wr(UART_FCR, FCR_ENABLE);
  assert.equal(rd(UART_LSR) & LSR_DR, 0);
  wr(UART_IER, IER_ERBFI);
  uart.receive(Uint8Array.of(7));
  assert.equal(rd(UART_IIR), IIR_FIFOS_ENABLED | IIR_RDA, "trigger level 1");
  // a write with FCR0 = 1 and no reset bits keeps the data
  wr(UART_FCR, FCR_ENABLE | FCR_TRIGGER_4);
  assert.equal(rd(UART_IIR), IIR_FIFOS_ENABLED | IIR_CTI);
  assert.equal(rd(UART_RBR), 7);
});

Deno.test("uart: interrupt priority RLS > RDA/CTI > THRE > MS", () => {
  const { rd, wr } = setup();
  wr(UART_FCR, FCR_ENABLE);
  wr(UART_IER, IER_ELSI | IER_ERBFI | IER_ETBEI | IER_EDSSI); // THRE pending
  wr(UART_MCR, MCR_LOOP); // modem status deltas
  for (let i = 0; i < 17; i++) wr(UART_THR, i); // data + overrun
  const id = () => rd(UART_IIR) & 0x0f;
  assert.equal(id(), IIR_RLS);
  rd(UART_LSR);
  assert.equal(id(), IIR_RDA);
  wr(UART_FCR, FCR_ENABLE | FCR_RX_RESET);
  assert.equal(id(), IIR_THRE);
  assert.equal(id(), IIR_MS, "reading IIR cleared THRE; modem status is next");
  rd(UART_MSR);
  assert.equal(id(), IIR_NO_INT);
});

Deno.test("uart: reset() restores power-on state and drops the IRQ", () => {
  const { uart, rd, wr, irq } = setup();
  wr(UART_LCR, LCR_DLAB);
  wr(UART_DLL, 0x30);
  wr(UART_LCR, 0x1b);
  wr(UART_FCR, FCR_ENABLE | FCR_TRIGGER_8);
  wr(UART_MCR, MCR_OUT2 | MCR_DTR);
  wr(UART_IER, IER_ERBFI | IER_ETBEI);
  wr(UART_SCR, 0x77);
  uart.receive(Uint8Array.of(1, 2));
  assert.equal(irq.level, true);
  uart.reset();
  assert.equal(irq.level, false);
  assert.equal(irq.calls.at(-1), "deassert");
  assert.equal(rd(UART_IER), 0);
  assert.equal(rd(UART_IIR), IIR_NO_INT);
  assert.equal(rd(UART_LCR), 0);
  assert.equal(rd(UART_MCR), 0);
  assert.equal(rd(UART_LSR), LSR_THRE | LSR_TEMT);
  assert.equal(rd(UART_MSR), MSR_CTS | MSR_DSR | MSR_DCD);
  assert.equal(rd(UART_SCR), 0);
  assert.equal(uart.rxSpace(), 1);
  wr(UART_LCR, LCR_DLAB);
  assert.equal(rd(UART_DLL), 1);
  assert.equal(rd(UART_DLM), 0);
  const fresh = Uart16550State.save(
    new Uart16550({ irq: new FakeIrq(), out: new FakeOutput() }).state,
  );
  wr(UART_LCR, 0);
  assert.deepEqual(Uart16550State.save(uart.state), fresh);
});

Deno.test("uart: two instances over one shared state act as one UART", () => {
  const irqA = new FakeIrq(), irqB = new FakeIrq();
  const out = new FakeOutput();
  const a = new Uart16550({ irq: irqA, out });
  const b = new Uart16550(
    { irq: irqB, out },
    Uart16550State.bind(Uart16550State.bufferOf(a.state)),
  );
  a.write(UART_MCR, 1, MCR_OUT2);
  a.write(UART_IER, 1, IER_ERBFI);
  a.receive(Uint8Array.of(0x55));
  assert.equal(irqA.level, true);
  assert.equal(b.read(UART_RBR, 1), 0x55);
  // b saw the level change from the shared state and lowered the line
  assert.deepEqual(irqB.calls, ["deassert"]);
  assert.equal(a.read(UART_LSR, 1) & LSR_DR, 0);
});

Deno.test("uart: a full backend holds bytes in the transmit FIFO with THRE clear; outputReady sends them", () => {
  const { uart, rd, wr, out, irq } = setup();
  wr(UART_FCR, FCR_ENABLE);
  wr(UART_MCR, MCR_OUT2);
  wr(UART_IER, IER_ETBEI);
  assert.equal(rd(UART_IIR) & 0x0f, IIR_THRE); // enabling ETBEI with THR empty (reading IIR clears it)
  out.room = 0;
  for (const ch of "hello") wr(UART_THR, ch.charCodeAt(0));
  assert.deepEqual(out.bytes, []);
  assert.equal(rd(UART_LSR) & (LSR_THRE | LSR_TEMT), 0, "THR not empty while the backend is full");
  assert.equal(rd(UART_IIR) & 0x0f, IIR_NO_INT, "no THRE interrupt while bytes wait");
  assert.equal(irq.level, false);
  out.room = Infinity;
  uart.outputReady();
  assert.equal(new TextDecoder().decode(Uint8Array.from(out.bytes)), "hello");
  assert.equal(rd(UART_LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
  assert.equal(irq.level, true, "THR-empty interrupt once the FIFO drained");
  assert.equal(rd(UART_IIR) & 0x0f, IIR_THRE);
});

Deno.test("uart: the transmit FIFO holds 16 bytes (1 in 16450 mode); more are lost, as on the chip", () => {
  const fifo = setup();
  fifo.wr(UART_FCR, FCR_ENABLE);
  fifo.out.room = 0;
  for (let i = 0; i < 20; i++) fifo.wr(UART_THR, 0x41 + i);
  fifo.out.room = Infinity;
  fifo.uart.outputReady();
  assert.deepEqual(fifo.out.bytes, Array.from({ length: 16 }, (_, i) => 0x41 + i));

  const single = setup(); // FIFOs off: THR holds one byte
  single.out.room = 0;
  single.wr(UART_THR, 0x31);
  single.wr(UART_THR, 0x32);
  single.out.room = Infinity;
  single.uart.outputReady();
  assert.deepEqual(single.out.bytes, [0x31]);
});

Deno.test("uart: a polled LSR read retries a held byte; FCR TX reset drops held bytes", () => {
  const a = setup();
  a.out.room = 0;
  a.wr(UART_THR, 0x61);
  a.out.room = Infinity;
  assert.equal(a.rd(UART_LSR) & LSR_THRE, LSR_THRE, "the LSR read sent it");
  assert.deepEqual(a.out.bytes, [0x61]);

  const b = setup();
  b.wr(UART_FCR, FCR_ENABLE);
  b.out.room = 0;
  b.wr(UART_THR, 0x62);
  b.wr(UART_FCR, FCR_ENABLE | FCR_TX_RESET);
  b.out.room = Infinity;
  assert.equal(b.rd(UART_LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
  b.uart.outputReady();
  assert.deepEqual(b.out.bytes, []);
});

Deno.test("uart: a partial take sends the rest later, in order", () => {
  const { uart, wr, out } = setup();
  wr(UART_FCR, FCR_ENABLE);
  out.room = 2;
  for (const ch of "abcdef") wr(UART_THR, ch.charCodeAt(0));
  assert.equal(new TextDecoder().decode(Uint8Array.from(out.bytes)), "ab");
  out.room = 3;
  uart.outputReady();
  out.room = Infinity;
  uart.outputReady();
  assert.equal(new TextDecoder().decode(Uint8Array.from(out.bytes)), "abcdef");
});

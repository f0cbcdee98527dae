import assert from "node:assert/strict";
import { DISARMED, TimerTable } from "./timers.ts";

Deno.test("timers arm, cancel and expire exactly once", () => {
  const t = new TimerTable(3);
  assert.equal(t.earliest(), undefined);
  const a = t.timer(0), b = t.timer(2);
  const g0 = t.generation();
  a.arm(5000);
  assert.ok(t.generation() > g0, "arming wakes the timer thread");
  b.arm(3000.2);
  assert.equal(t.earliest(), 3001);
  assert.equal(t.takeExpired(2, 3000), false);
  assert.equal(t.takeExpired(2, 3001), true);
  assert.equal(t.takeExpired(2, 9999), false, "a slot expires once");
  a.cancel();
  assert.equal(t.deadlines[0], DISARMED);
  assert.equal(t.earliest(), undefined);
  assert.throws(() => t.timer(3));
});

Deno.test("re-arming with the same deadline does not wake the timer thread again", () => {
  const t = new TimerTable(1);
  const a = t.timer(0);
  a.arm(100);
  const g = t.generation();
  a.arm(100);
  assert.equal(t.generation(), g);
});

Deno.test("a Worker sleeping on the table wakes when a slot is armed, and on wake()", async () => {
  const t = new TimerTable(1);
  const url = new URL("./timers.ts", import.meta.url).href;
  const src = `import { TimerTable } from "${url}";
self.onmessage = (e) => {
  const t = new TimerTable(e.data);
  const seen = t.generation();
  self.postMessage("sleeping");
  t.sleep(seen, 10000);
  self.postMessage(String(t.earliest()));
  t.sleep(t.generation(), 10000);
  self.postMessage(t.earliest() === undefined ? "disarmed" : "timeout");
};`;
  const w = new Worker(URL.createObjectURL(new Blob([src], { type: "text/javascript" })), {
    type: "module",
  });
  const messages: string[] = [];
  const next = () => new Promise<string>((r) => (w.onmessage = (e) => r(e.data)));
  w.postMessage(t.buffer);
  messages.push(await next());
  const woke = next();
  t.timer(0).arm(42);
  messages.push(await woke);
  const disarmed = next();
  t.disarmAll();
  messages.push(await disarmed);
  w.terminate();
  assert.deepEqual(messages, ["sleeping", "42", "disarmed"]);
});

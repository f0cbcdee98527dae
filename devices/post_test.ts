import assert from "node:assert/strict";
import { PostPort, PostState } from "./post.ts";

Deno.test("the POST port keeps the last code written and reads it back", () => {
  const post = new PostPort();
  assert.equal(post.code, 0, "power-on code is 0");
  assert.equal(post.read(0, 1), 0);
  post.write(0, 1, 0x12);
  assert.equal(post.code, 0x12);
  post.write(0, 1, 0x55);
  post.write(0, 1, 0xaa);
  assert.equal(post.code, 0xaa, "only the last code is kept");
  assert.equal(post.read(0, 1), 0xaa);
});

Deno.test("only the low byte of a wider write is the code", () => {
  const post = new PostPort();
  post.write(0, 2, 0x1234);
  assert.equal(post.code, 0x34);
  post.write(0, 4, 0xdeadbeef);
  assert.equal(post.code, 0xef);
  assert.equal(post.read(0, 4), 0xef);
});

Deno.test("reset() returns the code to 0", () => {
  const post = new PostPort();
  post.write(0, 1, 0x80);
  post.reset();
  assert.equal(post.code, 0);
  assert.equal(post.read(0, 1), 0);
});

Deno.test("the code lives in the shared state, so every bind of it agrees", () => {
  const state = PostState.create();
  const a = new PostPort(state);
  const b = new PostPort(PostState.bind(PostState.bufferOf(state)));
  a.write(0, 1, 0x42);
  assert.equal(b.code, 0x42);
  assert.equal(PostState.save(state).code, 0x42);
  b.reset();
  assert.equal(a.code, 0);
});

Deno.test("the POST state is the code alone (v2 dropped an unused write counter)", () => {
  assert.equal(PostState.version, 2);
  assert.deepEqual(Object.keys(PostState.save(PostState.create())), ["code"]);
});

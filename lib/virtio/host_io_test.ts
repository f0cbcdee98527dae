import assert from "node:assert/strict";
import {
  drainEventfd,
  FileBlockBackend,
  FileConsoleBackend,
  HOST_RANDOM,
  listenUnix,
  newEventfd,
  openTap,
  pollFds,
  signalEventfd,
  SocketConsoleBackend,
  TapBackend,
} from "./host_io.ts";
import { libc } from "../../cpu/libc.ts";

// Opened once for the module, before any test: a library loaded inside a test counts as a leak.
libc();
const close = (fd: number) => libc().fn.close(fd);

Deno.test("host_io: an eventfd wakes poll once signalled and reads back empty after a drain", () => {
  const a = newEventfd(), b = newEventfd();
  try {
    assert.deepEqual(pollFds([a, b], [], 0), []);
    signalEventfd(b);
    signalEventfd(b);
    assert.deepEqual(pollFds([a, b], [], 1000), [b]);
    assert.equal(drainEventfd(b), true);
    assert.equal(drainEventfd(b), false, "the counter was read whole");
    assert.deepEqual(pollFds([a, b], [], 0), []);
  } finally {
    close(a);
    close(b);
  }
});

Deno.test("host_io: a file block backend reads, writes, zeroes, punches holes and syncs", async () => {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeFile(path, new Uint8Array(8192).fill(7));
    const fd = libc().fn.open(new TextEncoder().encode(path + "\0"), 2, 0);
    assert.ok(fd >= 0);
    const b = new FileBlockBackend(fd, path, 8192, false);
    try {
      b.write(512, new Uint8Array(512).fill(1));
      const got = new Uint8Array(1024);
      b.read(0, got);
      assert.ok(got.subarray(0, 512).every((x) => x === 7));
      assert.ok(got.subarray(512).every((x) => x === 1));
      b.discard(4096, 4096);
      b.writeZeroes(0, 512, false);
      b.flush();
      const file = await Deno.readFile(path);
      assert.equal(file.length, 8192, "KEEP_SIZE: discard does not shrink the image");
      assert.ok(file.subarray(0, 512).every((x) => x === 0));
      assert.ok(file.subarray(512, 1024).every((x) => x === 1));
      assert.ok(file.subarray(4096).every((x) => x === 0));
      // Past the end of the file: zeros, not an error.
      const tail = new Uint8Array(16).fill(9);
      b.read(8192, tail);
      assert.ok(tail.every((x) => x === 0));
      const ro = new FileBlockBackend(fd, path, 8192, true);
      assert.throws(() => ro.write(0, new Uint8Array(1)), /read-only/);
      assert.throws(() => ro.discard(0, 512), /read-only/);
    } finally {
      close(fd);
    }
    // A bad fd: a clear error naming the file.
    const bad = new FileBlockBackend(9999, path, 8192, false);
    assert.throws(() => bad.read(0, new Uint8Array(1)), /read of .* at 0: EBADF/);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("host_io: a socket console talks to one client at a time, both ways", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/c.sock`;
  const b = new SocketConsoleBackend(listenUnix(path), path);
  try {
    const listener = b.fd;
    assert.equal(b.write(new TextEncoder().encode("lost")), 4, "no client: dropped, taken");
    const conn = await Deno.connect({ transport: "unix", path });
    assert.deepEqual(pollFds([listener], [], 1000), [listener]);
    const buf = new Uint8Array(64);
    assert.equal(b.read(buf), 0, "the first read accepts the client");
    assert.notEqual(b.fd, listener);
    await conn.write(new TextEncoder().encode("in"));
    assert.deepEqual(pollFds([b.fd], [], 1000), [b.fd]);
    assert.equal(b.read(buf), 2);
    assert.equal(new TextDecoder().decode(buf.subarray(0, 2)), "in");
    assert.equal(b.write(new TextEncoder().encode("out")), 3);
    const got = new Uint8Array(8);
    assert.equal(await conn.read(got), 3);
    conn.close();
    assert.deepEqual(pollFds([b.fd], [], 1000), [b.fd]);
    assert.equal(b.read(buf), 0, "end of file drops the client");
    assert.equal(b.fd, listener, "back to listening");
  } finally {
    b.close();
    await Deno.remove(dir, { recursive: true });
  }
  assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound, "close removes the socket");
});

Deno.test("host_io: listenUnix replaces a stale socket but never another file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/s`;
    close(listenUnix(path));
    close(listenUnix(path)); // the stale socket file is replaced
    await Deno.writeTextFile(`${dir}/f`, "keep");
    assert.throws(() => listenUnix(`${dir}/f`), /exists and is not a socket/);
    assert.equal(await Deno.readTextFile(`${dir}/f`), "keep");
    assert.throws(() => listenUnix(`${dir}/${"x".repeat(120)}`), /longer than 107 bytes/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("host_io: a file console writes and has no input", async () => {
  const path = await Deno.makeTempFile();
  try {
    const fd = libc().fn.open(new TextEncoder().encode(path + "\0"), 1, 0);
    const b = new FileConsoleBackend(fd, path);
    assert.equal(b.fd, null);
    assert.equal(b.write(new TextEncoder().encode("hello")), 5);
    assert.equal(b.read(new Uint8Array(4)), -1);
    close(fd);
    assert.equal(await Deno.readTextFile(path), "hello");
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("host_io: the host's random numbers fill more than one getRandomValues call", () => {
  const buf = new Uint8Array(200_000);
  HOST_RANDOM.fill(buf);
  // 200,000 random bytes all zero in a 64 KiB stretch would be a broken chunking.
  for (let at = 0; at < buf.length; at += 65536) {
    assert.ok(buf.subarray(at, at + 65536).some((x) => x !== 0), `chunk at ${at}`);
  }
});

Deno.test("host_io: a tap name too long is refused; a tap passes frames when the host allows one", () => {
  assert.throws(() => openTap("x".repeat(16)), /longer than 15 bytes/);
  let fd: number;
  try {
    fd = openTap(`dhut${Deno.pid % 100000}`);
  } catch (e) {
    // Not root, or no /dev/net/tun: the error says which.
    assert.match((e as Error).message, /tun|tap/);
    return;
  }
  try {
    const tap = new TapBackend(fd, "t");
    // The interface is down: nothing arrives, and a read does not block.
    assert.equal(tap.receive(new Uint8Array(2048)), 0);
  } finally {
    close(fd);
  }
});

// Store clones in the JS API (ZB-44..62) against real gateway binaries: every operation
// through a clone, change events, the live keys view, restarts with SQLite, stale data,
// buffered writes, and a master on one gateway cloned through a peered one.
import { test as nodeTest, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import * as broker from "../../pkg/node.mjs";
import { testGateway as gateway, shutdownAfter, within, expectStatus } from "./gateway.mjs";

const { Endpoint, Count, Timestamp, Timespan, BrokerError } = broker;

// Every test gets an overall deadline on top of the deadline of each wait in it.
const test = (name, fn) => nodeTest(name, { timeout: 90_000 }, fn);

// Temporary directories go once every test (and so every gateway using them) has ended.
const dirs = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir() {
  const d = mkdtempSync(path.join(tmpdir(), "broker-store-"));
  dirs.push(d);
  return d;
}

/** A new endpoint peered with `g`, shut down when test `t` ends. */
async function connected(t, g, options) {
  const ep = shutdownAfter(t, new Endpoint(options));
  await ep.peer(g.url);
  return ep;
}

/** The next change of `type` from an async iterator of changes, within 10 s in all. */
function nextOf(it, type) {
  return within(
    (async () => {
      for (;;) {
        const r = await it.next();
        assert.ok(!r.done, "iterator ended");
        if (r.value.type === type) return r.value;
      }
    })(),
    `a ${type} change`,
  );
}

async function rejectsWith(promise, code) {
  await assert.rejects(promise, (e) => e instanceof BrokerError && e.code === code);
}

test("ZB-48..55 every operation through a JS clone, with change events and a live keys view", async (t) => {
  const g = await gateway(t, ["--memory-store", "ops"]);
  const ep = await connected(t, g);
  assert.deepEqual(await ep.stores(), ["ops"]);
  const s = ep.attachClone("ops");
  await s.ready();
  const seen = [];
  const off = s.onChange((c) => seen.push(c));
  const changes = s.changes();
  const keys = s.keys; // live view

  await s.put("a", new Count(1n));
  assert.equal(await s.awaitIdle(), true);
  assert.deepEqual(s.get("a"), new Count(1n));
  assert.equal(keys.size, 1);
  assert.ok(keys.has("a"));
  assert.deepEqual(await nextOf(changes, "insert"), { type: "insert", key: "a", value: new Count(1n), expiry: undefined });

  await s.increment("a", new Count(4n));
  const upd = await nextOf(changes, "update");
  assert.deepEqual([upd.old, upd.value], [new Count(1n), new Count(5n)]);
  await s.decrement("a"); // default amount: Count(1)
  await rejectsWith(s.increment("a", 1n), "type_clash"); // integer onto a count
  assert.equal(await s.putUnique("a", "x"), false);
  assert.equal(await s.putUnique("b", "x"), true);
  await s.append("b", "yz");
  await s.insertInto("set", 1n);
  await s.insertInto("set", 2n);
  await s.removeFrom("set", 1n);
  await s.insertInto("tbl", "k", new Count(0n)); // a falsy value is still a value
  await s.push("vec", 1n);
  await s.push("vec", 3n);
  await s.insertInto("vec", new Count(1n), 2n); // positional
  await s.pop("vec");
  await rejectsWith(s.pop("missing"), "no_such_key");
  await rejectsWith(s.append("a", "x"), "type_clash");
  assert.equal(await s.awaitIdle(), true);
  assert.deepEqual(s.get("a"), new Count(4n));
  assert.equal(s.get("b"), "xyz");
  assert.deepEqual(s.get("set"), new Set([2n]));
  assert.deepEqual(s.get("tbl"), new Map([["k", new Count(0n)]]));
  assert.deepEqual(s.get("vec"), [1n, 2n]);
  assert.equal(s.getIndexFromValue("vec", new Count(1n)), 2n);
  assert.equal(s.getIndexFromValue("set", 2n), true);
  assert.deepEqual(s.getIndexFromValue("tbl", "k"), new Count(0n));
  assert.deepEqual([...keys], ["a", "b", "set", "tbl", "vec"]);
  assert.deepEqual(s.entries(1, 1), [["b", "xyz"]]);
  assert.deepEqual(await s.fetch("b"), "xyz");
  assert.equal(await s.exists("nope"), false);
  await rejectsWith(s.fetch("nope"), "no_such_key");
  await rejectsWith(s.put(Symbol("x"), 1), "conversion_failed"); // never sent

  await s.erase("b");
  await nextOf(changes, "erase");
  await s.put("short", 1n, { expiry: 0.1 });
  const exp = await nextOf(changes, "expire");
  assert.equal(exp.key, "short");
  await s.clear();
  assert.equal(await s.awaitIdle(), true);
  assert.equal(s.size, 0);
  assert.equal(keys.size, 0);
  off();
  assert.ok(seen.some((c) => c.type === "insert" && c.key === "vec"));
  s.detach();
  // Queued changes drain, then the iterator ends.
  let drained = 0;
  await within(
    (async () => {
      for await (const _ of changes) drained++;
    })(),
    "the changes iterator to end after detach",
  );
  assert.ok(drained > 0);
  await ep.shutdown();
});

test("ZB-44 attachMaster from JS; ZB-46 SQLite data and the clone survive a gateway restart (ZB-60 reset)", async (t) => {
  const dir = tempDir();
  const g = await gateway(t, ["--data-dir", dir]);
  const ep = await connected(t, g);
  const s = await ep.attachMaster("users", { backend: "sqlite" });
  assert.ok(s.synced);
  for (let i = 0n; i < 100n; i++) await s.put(i, new Timespan(i * 1000n));
  assert.equal(await s.awaitIdle(), true);
  assert.equal(s.size, 100);
  const changes = s.changes();
  const status = ep.makeStatusSubscriber(true);

  await g.stop("SIGKILL");
  // The clone keeps its cache while the master is away (ZB-60).
  await expectStatus(status, "peer_lost");
  assert.deepEqual(s.get(5n), new Timespan(5000n));
  // A write made while disconnected waits for the connection (mutation buffer).
  const buffered = s.put("while-down", true);

  const g2 = await gateway(t, ["--data-dir", dir, "--store", "users"], g.addr);
  await within(buffered, "the buffered write to be acknowledged after the restart");
  await nextOf(changes, "reset"); // a new master instance
  assert.equal(await s.awaitIdle(), true);
  assert.equal(s.get("while-down"), true);
  assert.deepEqual(s.get(99n), new Timespan(99000n));
  assert.equal(s.size, 101);
  await ep.shutdown();
  await g2.stop();
});

test("ZB-47 stale_interval and mutation_buffer_interval while the gateway is gone", async (t) => {
  const g = await gateway(t, ["--memory-store", "st"]);
  const ep = await connected(t, g, { reconnectMaxMs: 60_000 });
  const s = ep.attachClone("st", { staleInterval: 0, mutationBufferInterval: 0 });
  await s.ready();
  await s.put("k", 1n);
  assert.equal(await s.awaitIdle(), true);
  const status = ep.makeStatusSubscriber(true);
  await g.stop("SIGKILL");
  await expectStatus(status, "peer_lost");
  await new Promise((r) => setTimeout(r, 5)); // let the stale interval (0 s) pass
  assert.throws(() => s.get("k"), (e) => e.code === "stale_data");
  await rejectsWith(s.put("k", 2n), "request_timeout");
  ep.unpeer();
});

test("ZB-47 a clone waits for a master that does not exist yet", async (t) => {
  const g = await gateway(t, []);
  const ep = await connected(t, g);
  const s = ep.attachClone("later", { resyncInterval: 0.1 });
  const changes = s.changes();
  // no_such_master is not final: a ready() waiting meanwhile resolves once a master appears.
  const ready = s.ready(20_000);
  const err = await nextOf(changes, "error");
  assert.equal(err.code, "no_such_master");
  assert.equal(err.permanent, false);
  const other = await connected(t, g);
  const m = await other.attachMaster("later", { backend: "memory" });
  await m.put("k", "v");
  await ready;
  assert.equal(await s.awaitIdle(), true);
  assert.equal(s.get("k"), "v");
  await ep.shutdown();
  await other.shutdown();
});

test("ZB-58 master on gateway A, JS clone through peered gateway B", async (t) => {
  const a = await gateway(t, ["--memory-store", "shared"]);
  const b = await gateway(t, ["--peer", a.addr]);
  const onA = await connected(t, a);
  const master = onA.attachClone("shared");
  await master.ready();
  await master.put("k", new Count(1n));
  const ep = await connected(t, b);
  // B needs a moment to peer with A: attach retries until the master is found.
  const s = ep.attachClone("shared", { resyncInterval: 0.1 });
  await s.ready();
  assert.equal(await s.awaitIdle(), true);
  assert.deepEqual(s.get("k"), new Count(1n));
  await s.increment("k", new Count(41n));
  assert.equal(await master.awaitIdle(), true);
  assert.deepEqual(master.get("k"), new Count(42n));
  const changes = s.changes();
  await master.put("from-a", new Timestamp(1_700_000_000_000_000_000n));
  const ins = await nextOf(changes, "insert");
  assert.equal(ins.key, "from-a");
  await ep.shutdown();
  await onA.shutdown();
});

test("ZB-47 shutdown with a clone waiting to retry its attach lets Node exit", async (t) => {
  const g = await gateway(t);
  // A child process: a clone of a store nobody has (retried every second), then shutdown.
  const script = `
    import * as broker from ${JSON.stringify(new URL("../../pkg/node.mjs", import.meta.url).href)};
    const ep = new broker.Endpoint();
    await ep.peer(${JSON.stringify(g.url)});
    const s = ep.attachClone("nobody-has-it", { resyncInterval: 1 });
    await new Promise((r) => s.onChange((c) => c.type === "error" && r()));
    await ep.shutdown();
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: "inherit" });
  t.after(() => child.kill("SIGKILL"));
  const code = await within(new Promise((r) => child.on("exit", r)), "the child to exit after shutdown", 10_000);
  assert.equal(code, 0);
});

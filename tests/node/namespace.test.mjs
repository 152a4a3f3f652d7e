// Data Broker namespaces from Node through pkg/ against a real gateway binary (DB-01..28).
import { test as nodeTest, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as broker from "../../pkg/node.mjs";
import { testGateway, shutdownAfter, within } from "./gateway.mjs";
import { testRedis } from "./redis.mjs";

const { Endpoint, Namespace, DbrError, Count, DBR_CODES, getErrorCode, getErrorMessage } = broker;

// Every test gets an overall deadline on top of the deadline of each wait in it. Tests that
// start a gateway run twice: on the built-in namespace backend, and on a real redis-server
// (`--ns-backend`, RB-10), named "... [redis]".
const test = (name, opts, fn) => {
  if (typeof opts === "function") [opts, fn] = [{}, opts];
  for (const b of fn.length > 0 ? ["builtin", "redis"] : ["builtin"]) {
    nodeTest(b === "redis" ? `${name} [redis]` : name, { timeout: 90_000, ...opts }, (t) => {
      t.backend = b;
      return fn(t);
    });
  }
};
/** Tests of the built-in backend only. */
const builtinTest = (name, fn) => nodeTest(name, { timeout: 90_000 }, fn);

// Temporary directories go once every test (and so every gateway using them) has ended.
const dirs = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir() {
  const d = mkdtempSync(path.join(tmpdir(), "ns-node-"));
  dirs.push(d);
  return d;
}

/** A gateway on a data directory (and on the test's Redis), stopped when test `t` ends. */
async function gateway(t, dir = tempDir()) {
  const args = ["--data-dir", dir];
  if (t.backend === "redis") {
    t.redis ??= await testRedis(t);
    args.push("--ns-backend", t.redis.url);
  }
  const g = await testGateway(t, args);
  g.dir = dir;
  return g;
}

/** Resolves once gateway `g` counts `n` blocked reads/gets (`broker_ns_waiters`). */
async function waiters(g, n) {
  for (;;) {
    const text = await (await fetch(`${g.http}/metrics`)).text();
    const m = text.match(/^broker_ns_waiters (\d+)$/m);
    if (m && Number(m[1]) === n) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A new endpoint connected to `g`, shut down when test `t` ends. */
async function connected(t, g) {
  const ep = shutdownAfter(t, new Endpoint());
  await ep.peer(g.url, { retry: false });
  return ep;
}

async function rejectsWith(promise, code) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof DbrError, `a DbrError, not ${e}`);
    assert.equal(e.code, code);
    return true;
  });
}

test("DB-01..06: create, EXISTS, attach refcounts, query, delete with NSBUSY", async (t) => {
  const g = await gateway(t);
  const a = await connected(t, g);
  const b = await connected(t, g);
  const ns = await a.createNamespace("js-ns", { level: 2, groups: ["g"] });
  assert.ok(ns instanceof Namespace);
  await rejectsWith(b.createNamespace("js-ns"), "DBR_ERR_EXISTS");
  await rejectsWith(b.attachNamespace("missing"), "DBR_ERR_UNAVAIL");
  await rejectsWith(a.createNamespace("x".repeat(1024)), "DBR_ERR_NSINVAL");
  const nb = await b.attachNamespace("js-ns");
  await ns.put("k", 1);
  assert.deepEqual(await nb.query(), {
    name: "js-ns",
    level: 2,
    groups: ["g"],
    refcount: 2,
    markedForDelete: false,
    tupleNames: 1,
    totalValues: 1,
  });
  await rejectsWith(ns.delete(), "DBR_ERR_NSBUSY");
  await rejectsWith(ns.put("k", 2), "DBR_ERR_NSINVAL");
  assert.equal((await nb.query()).markedForDelete, true);
  assert.equal(await nb.read("k"), 1);
  await nb.detach();
  await rejectsWith(a.attachNamespace("js-ns"), "DBR_ERR_UNAVAIL");
  await a.shutdown();
  await b.shutdown();
});

test("DB-09..13: FIFO of typed and binary values, read index, buffer sizes", async (t) => {
  const g = await gateway(t);
  const ep = await connected(t, g);
  const ns = await ep.createNamespace("values");
  const values = ["text", new Uint8Array([0, 255, 10]), new Count(7n), [1.5, null], ""];
  for (const v of values) await ns.put("q", v);
  assert.equal(await ns.read("q", { index: 2, nowait: true }).then((c) => c.value), 7n);
  await rejectsWith(ns.read("q", { index: 5, nowait: true }), "DBR_ERR_UNAVAIL");
  assert.equal(await ns.get("q"), "text");
  assert.deepEqual(await ns.get("q"), new Uint8Array([0, 255, 10]));
  assert.ok((await ns.get("q")) instanceof Count);
  assert.deepEqual(await ns.get("q"), [1.5, null]);
  assert.equal(await ns.get("q"), "");
  assert.equal(await ns.testKey("q"), false);
  // Binary that happens to be UTF-8 comes back as a string unless asked for bytes.
  await ns.put("b", new Uint8Array([104, 105]));
  assert.deepEqual(await ns.read("b", { bytes: true }), new Uint8Array([104, 105]));
  // DB-13: a short buffer fails without consuming; partial reports the full size.
  await ns.put("big", "0123456789");
  await rejectsWith(ns.get("big", { capacity: 4 }), "DBR_ERR_UBUFFER");
  await assert.rejects(ns.get("big", { capacity: 4, partial: true }), (e) => e.size === 10);
  assert.deepEqual(await ns.get("big", { capacity: 10, withSize: true }), { value: "0123456789", size: 10 });
  await ep.shutdown();
});

test("DB-12/DB-33: 10 concurrent getters on one value, exactly one wins, first come first served", async (t) => {
  const g = await gateway(t);
  const producer = await connected(t, g);
  const p = await producer.createNamespace("race");
  const clients = await Promise.all(Array.from({ length: 10 }, () => connected(t, g)));
  const handles = await Promise.all(clients.map((c) => c.attachNamespace("race")));
  // The getters wait without a timeout of their own (a busy machine cannot make one give up
  // early). Each is registered at the gateway (its client's flush came back) before the next
  // asks, so the gateway's waiters are in this order.
  const gets = [];
  for (const [i, h] of handles.entries()) {
    gets.push(h.get("one", { timeoutMs: Infinity }));
    await within(clients[i].flush(), `getter ${i} sent`, 30_000);
    // On Redis the gateway asks Redis first: registered once /metrics counts it.
    await within(waiters(g, i + 1), `getter ${i} registered`, 30_000);
  }
  await p.put("one", "first");
  assert.equal(await within(gets[0], "the first getter to be served", 30_000), "first");
  // Exactly one getter took it: the value is gone. One value each for the other nine, in the
  // order they asked: a getter that had also received "first" would show it instead.
  assert.equal(await p.testKey("one"), false);
  for (let i = 1; i < 10; i++) await p.put("one", `value ${i}`);
  const rest = await within(Promise.all(gets.slice(1)), "the nine other getters to be served", 30_000);
  assert.deepEqual(rest, Array.from({ length: 9 }, (_, i) => `value ${i + 1}`));
  assert.equal(await p.testKey("one"), false);
  await Promise.all([producer, ...clients].map((c) => c.shutdown()));
});

test("DB-15: a blocked get is released by a put from another client; timeouts", async (t) => {
  const g = await gateway(t);
  const a = await connected(t, g);
  const b = await connected(t, g);
  const na = await a.createNamespace("block");
  const nb = await b.attachNamespace("block");
  const t0 = performance.now();
  await rejectsWith(na.get("nothing", { timeoutMs: 200 }), "DBR_ERR_TIMEOUT");
  assert.ok(performance.now() - t0 >= 190);
  const pending = na.get("job", { timeoutMs: Infinity });
  await a.flush();
  await nb.put("job", "work");
  assert.equal(await pending, "work");
  await a.shutdown();
  await b.shutdown();
});

test("DB-25: an aborted get never consumes a value", async (t) => {
  const g = await gateway(t);
  const ep = await connected(t, g);
  const ns = await ep.createNamespace("abort");
  const controller = new AbortController();
  const pending = ns.get("k", { timeoutMs: Infinity, signal: controller.signal });
  await ep.flush();
  controller.abort();
  await rejectsWith(pending, "DBR_ERR_CANCELLED");
  await ns.put("k", "kept");
  assert.equal(await ns.read("k", { nowait: true }), "kept");
  // Aborted after the gateway already answered: the value goes back to the head.
  await ns.put("k", "second");
  const late = new AbortController();
  const p = ns.get("k", { signal: late.signal });
  late.abort();
  await rejectsWith(p, "DBR_ERR_CANCELLED");
  assert.equal(await ns.get("k"), "kept");
  assert.equal(await ns.get("k"), "second");
  await ep.shutdown();
});

test("DB-27: a request whose connection closes before the answer is DBR_ERR_NOCONNECT, as in Rust", { timeout: 15_000 }, async (t) => {
  // The core fails the pending get with a Broker-level `shutting_down`; the rule that maps it
  // lives once in the core (the Rust client's test: db27_a_connection_lost_during_a_request_is_noconnect).
  const g = await gateway(t);
  const ep = await connected(t, g);
  const ns = await ep.createNamespace("lost");
  const pending = ns.get("k", { timeoutMs: Infinity });
  // The rejection is expected from here on (handled below, not "unhandled").
  pending.catch(() => {});
  await ep.flush(); // the gateway holds the waiting get
  await g.stop("SIGKILL");
  await assert.rejects(pending, (e) => {
    assert.ok(e instanceof DbrError, `a DbrError, not ${e}`);
    assert.equal(e.code, "DBR_ERR_NOCONNECT");
    assert.equal(e.errno, 15);
    assert.match(e.message, /shutting_down: /);
    return true;
  });
});

test("DB-17..22: remove, atomic move, directory and iterator with globs, testKey", async (t) => {
  const g = await gateway(t);
  const ep = await connected(t, g);
  const a = await ep.createNamespace("src");
  const b = await ep.createNamespace("dst", { level: 4 });
  for (const k of ["key-1", "key-2", "key-10", "other"]) await a.put(k, k);
  assert.deepEqual(await a.directory("key-?"), ["key-1", "key-2"]);
  assert.deepEqual(await a.directory("key-[^2]*"), ["key-1", "key-10"]);
  assert.equal((await a.directory("*", { limit: 2 })).length, 2);
  const seen = [];
  for await (const n of a.names("key-*", { pageSize: 2 })) seen.push(n);
  assert.deepEqual(seen, ["key-1", "key-10", "key-2"]);
  await a.move("key-1", b);
  assert.equal(await a.testKey("key-1"), false);
  assert.equal(await b.read("key-1"), "key-1");
  await a.put("key-1", "again");
  await rejectsWith(a.move("key-1", b), "DBR_ERR_EXISTS");
  await rejectsWith(a.move("absent", b), "DBR_ERR_UNAVAIL");
  await a.remove("other");
  await rejectsWith(a.remove("other"), "DBR_ERR_UNAVAIL");
  await ep.shutdown();
});

test("DB-27: all 24 codes with numbers, names and messages", () => {
  // The original's table, written out here rather than derived from DBR_CODES.
  const pinned = [
    [0, "DBR_SUCCESS", "Operation successful"],
    [1, "DBR_ERR_GENERIC", "A general or unknown error has occurred"],
    [2, "DBR_ERR_INVALID", "Invalid argument"],
    [3, "DBR_ERR_HANDLE", "An invalid handle was encountered inside"],
    [4, "DBR_ERR_INPROGRESS", "Operation in progress"],
    [5, "DBR_ERR_TIMEOUT", "Operation timed out"],
    [6, "DBR_ERR_UBUFFER", "Provided user buffer problem (too small, not available)"],
    [7, "DBR_ERR_UNAVAIL", "Entry not available"],
    [8, "DBR_ERR_EXISTS", "Entry already exists"],
    [9, "DBR_ERR_NSBUSY", "Namespace still referenced by a client"],
    [10, "DBR_ERR_NSINVAL", "Namespace is invalid"],
    [11, "DBR_ERR_NOMEMORY", "Insufficient memory or storage"],
    [12, "DBR_ERR_TAGERROR", "Invalid tag"],
    [13, "DBR_ERR_NOFILE", "File not found"],
    [14, "DBR_ERR_NOAUTH", "Access authorization required or failed"],
    [15, "DBR_ERR_NOCONNECT", "Connection to a storage backend failed"],
    [16, "DBR_ERR_CANCELLED", "Operation was cancelled"],
    [17, "DBR_ERR_NOTIMPL", "Operation not implemented"],
    [18, "DBR_ERR_INVALIDOP", "Invalid operation"],
    [19, "DBR_ERR_BE_POST", "Failed to post request to back-end"],
    [20, "DBR_ERR_BE_GENERAL", "Unspecified back-end error"],
    [21, "DBR_ERR_ITERATOR", "Invalid iterator or error iterating the namespace"],
    [22, "DBR_ERR_PLUGIN", "Error while processing request/data in data adapter"],
    [23, "DBR_ERR_MAXERROR", "Unknown Error"],
  ];
  assert.deepEqual(DBR_CODES, pinned);
  for (const [n, name, message] of pinned.slice(0, 23)) {
    assert.equal(getErrorCode(n), name);
    assert.equal(getErrorMessage(n), message);
  }
  for (const bad of [-1, 23, 24, 99, 1.5, "5"]) {
    assert.equal(getErrorCode(bad), "Unknown Error");
    assert.equal(getErrorMessage(bad), "Unknown Error");
  }
  const e = new DbrError(7, "ctx");
  assert.equal(e.code, "DBR_ERR_UNAVAIL");
  assert.equal(e.errno, 7);
});

test("DB-28/DB-23..25: the PyDBR-style dbr object with tags", async (t) => {
  const g = await gateway(t);
  const ep = await connected(t, g);
  const dbr = ep.dbr({ timeout: 1 });
  for (const f of ["create", "attach", "delete", "detach", "query", "put", "read", "get", "putA", "readA", "getA", "test", "cancel", "testKey", "directory", "iterator", "move", "remove", "addUnits", "removeUnits", "getErrorCode", "getErrorMessage"]) {
    assert.equal(typeof dbr[f], "function", f);
  }
  assert.deepEqual([dbr.DBR_FLAGS_NONE, dbr.DBR_FLAGS_NOWAIT, dbr.DBR_FLAGS_PARTIAL, dbr.DBR_FLAGS_MAX], [0, 1, 2, 3]);
  const h = await dbr.create("pydbr", dbr.DBR_PERST_VOLATILE_SIMPLE, dbr.DBR_GROUP_LIST_EMPTY);
  assert.ok(h);
  assert.equal(await dbr.create("pydbr", 0, null), null);
  assert.equal(await dbr.put(h, "v1", "k", dbr.DBR_GROUP_EMPTY), 0);
  assert.equal(await dbr.put(h, "v2", "k", dbr.DBR_GROUP_EMPTY), 0);
  assert.deepEqual(await dbr.read(h, "k", "", dbr.DBR_GROUP_EMPTY, dbr.DBR_FLAGS_NOWAIT | (1 << 4)), ["v2", 0]);
  const size = [1];
  assert.deepEqual(await dbr.get(h, "k", "", "0", dbr.DBR_FLAGS_PARTIAL, size), [null, 6]);
  assert.equal(size[0], 2);
  assert.deepEqual(await dbr.get(h, "k", "", "0", 0, size), ["v1", 0]);
  assert.deepEqual(await dbr.get(h, "nothing", "", "0", dbr.DBR_FLAGS_NOWAIT), [null, 7]);
  assert.deepEqual(await dbr.get(h, "nothing", "", "0"), [null, 5]);
  assert.equal(await dbr.testKey(h, "k"), 0);
  assert.deepEqual(await dbr.directory(h, "*", "0", 100, 1024), [["k"], 1, 0]);
  assert.deepEqual(await dbr.directory(h, "zz*", "0", 100, 1024), [[""], 0, 0]);
  let [key, it] = await dbr.iterator(h, dbr.DBR_ITERATOR_NEW, "0", "*");
  assert.equal(key, "k");
  [key, it] = await dbr.iterator(h, it, "0", "*");
  assert.deepEqual([key, it], [null, dbr.DBR_ITERATOR_DONE]);
  const state = {};
  assert.equal(await dbr.query(h, state, dbr.DBR_STATE_MASK_ALL), 0);
  assert.equal(state.totalValues, 1);
  // Tags: getA before the put completes after it.
  const [tag, buffer] = dbr.getA(h, "later", "", "0");
  assert.ok(tag >= 0 && tag < 1024);
  await ep.flush();
  assert.equal(dbr.test(tag), 4);
  const p = dbr.putA(h, "late value", "later", "0");
  assert.equal(await dbr.wait(p), 0);
  assert.equal(await dbr.wait(tag), 0);
  assert.equal(buffer.value, "late value");
  assert.equal(dbr.test(tag), 12);
  // A cancelled getA never consumes a later put.
  const [t2] = dbr.getA(h, "c", "", "0");
  await ep.flush();
  assert.equal(dbr.cancel(t2), 0);
  assert.equal(dbr.cancel(t2), 12);
  assert.equal(await dbr.put(h, "still here", "c", "0"), 0);
  assert.deepEqual(await dbr.read(h, "c", "", "0", 1), ["still here", 0]);
  // 1024 outstanding requests, the 1025th gets DB_TAG_ERROR.
  const tags = Array.from({ length: 1024 }, () => dbr.getA(h, "never", "", "0")[0]);
  assert.equal(new Set(tags).size, 1024);
  assert.equal(dbr.getA(h, "never", "", "0")[0], dbr.DB_TAG_ERROR);
  for (const tg of tags) dbr.cancel(tg);
  // DB-06/DB-10: bad handle INVALID, null state UBUFFER.
  assert.equal(await dbr.query(null, {}), 2);
  assert.equal(await dbr.query(h, null), 6);
  assert.equal(await dbr.put(null, "v", "k", "0"), 2);
  // DB-26: gather put, scatter read/get with the right NOWAIT meaning.
  assert.equal(await dbr.putGather(h, [], "sg", "0"), 2);
  assert.equal(await dbr.putGather(h, [new Uint8Array([1, 2]), "ab", new Uint8Array([255])], "sg", "0"), 0);
  const [pieces, c0] = await dbr.readScatter(h, [3, 10], "sg", "", "0", dbr.DBR_FLAGS_NOWAIT);
  assert.equal(c0, 0);
  assert.deepEqual(pieces.map((p) => [...p]), [[1, 2, 97], [98, 255]]);
  assert.equal((await dbr.getScatter(h, [2, 2], "sg", "", "0"))[1], 6);
  assert.deepEqual((await dbr.getScatter(h, [5], "sg", "", "0"))[0].map((p) => [...p]), [[1, 2, 97, 98, 255]]);
  assert.equal((await dbr.getScatter(h, [5], "sg", "", "0", dbr.DBR_FLAGS_NOWAIT))[1], 7);
  assert.equal(dbr.addUnits(h, []), 17);
  assert.equal(await dbr.delete("pydbr"), 0);
  assert.equal(await dbr.delete("pydbr"), 10);
  await ep.shutdown();
});

// Built-in only: on Redis the volatile namespace survives a gateway restart too.
builtinTest("DB-04/DB-07: a producer detaches before the consumer attaches; permanent data survives a restart", async (t) => {
  const dir = tempDir();
  let g = await gateway(t, dir);
  const producer = await connected(t, g);
  const ns = await producer.createNamespace("durable", { level: 5 });
  const mem = await producer.createNamespace("volatile", { level: 0 });
  await ns.put("q", "one");
  await ns.put("q", new Uint8Array([1, 2, 255]));
  await mem.put("q", 1);
  await ns.detach();
  await producer.shutdown();
  await g.stop("SIGTERM");
  g = await gateway(t, dir);
  const consumer = await connected(t, g);
  const c = await consumer.attachNamespace("durable");
  assert.equal((await c.query()).refcount, 1);
  assert.equal(await c.get("q"), "one");
  assert.deepEqual(await c.get("q"), new Uint8Array([1, 2, 255]));
  await rejectsWith(consumer.attachNamespace("volatile"), "DBR_ERR_UNAVAIL");
  await c.delete();
  await consumer.shutdown();
});

test("namespaces over the JSON encoding", async (t) => {
  const g = await gateway(t);
  const ep = shutdownAfter(t, new Endpoint({ encoding: "json" }));
  await ep.peer(g.url, { retry: false });
  const ns = await ep.createNamespace("json");
  await ns.put("k", new Uint8Array([0, 255]));
  await ns.put("k", new Count(18446744073709551615n));
  assert.deepEqual(await ns.get("k"), new Uint8Array([0, 255]));
  assert.equal((await ns.get("k")).value, 18446744073709551615n);
  await rejectsWith(ns.get("k", { nowait: true }), "DBR_ERR_UNAVAIL");
  await ep.shutdown();
});

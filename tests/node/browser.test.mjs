// The main flows of the JS client in headless Chromium, against a page served by the
// gateway: connect, subscribe, publish, receive, statuses, reconnect after a restart.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import os from "node:os";
import { mkdtempSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as broker from "../../pkg/node.mjs";
import { testGateway, shutdownAfter } from "./gateway.mjs";
import { launch, openPage } from "./chromium.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const pageDir = path.join(root, "tests/browser");
let browser;
before(async () => { browser = await launch(); });
after(async () => {
  await browser?.close();
});

/** A gateway serving tests/browser/, stopped when test `t` ends. */
function gateway(t, listen, args = []) {
  return testGateway(t, ["--web-dir", pageDir, ...args], listen);
}

test("browser: connect, subscribe, receive every type, publish to Node, statuses, reconnect", async (t) => {
  const g = await gateway(t);
  const { page, problems } = await openPage(browser, `${g.http}/`);
  const peerId = await page.evaluate(async (url) => window.start(url, ["/to-browser"]), g.url);
  assert.match(peerId, /^[0-9a-f-]{36}$/);

  // Node -> browser, a value of every kind.
  const node = shutdownAfter(t, new broker.Endpoint());
  await node.peer(g.url);
  const value = [new broker.Count(18446744073709551615n), -5n, 1.5, "s", new broker.Port(80, "tcp"), new Set(["a"]), new Map([[1n, null]])];
  node.publish("/to-browser/x", value);
  await page.waitForFunction(() => window.received.length === 1, null, { timeout: 10_000 });
  const [[topic, json]] = await page.evaluate(() => window.received);
  assert.equal(topic, "/to-browser/x");
  assert.equal(json, broker.jsToTypedJson(value));

  // browser -> Node.
  const sub = node.makeSubscriber("/from-browser");
  await node.flush();
  await page.evaluate(() => {
    const b = window.broker;
    window.ep.publish("/from-browser", [new b.Count(7n), new b.Timestamp(5n)]);
  });
  const [, got] = await sub.get({ timeoutMs: 10_000 });
  assert.equal(got[0].value, 7n);
  assert.equal(got[1].ns, 5n);

  // Statuses, then the gateway restarts on the same port: the page reconnects and resubscribes.
  assert.deepEqual(await page.evaluate(() => window.statuses.slice(0, 2)), ["endpoint_discovered", "peer_added"]);
  await node.shutdown();
  await g.stop("SIGKILL");
  await page.waitForFunction(() => window.statuses.includes("peer_lost"), null, { timeout: 10_000 });
  const g2 = await gateway(t, g.addr);
  await page.waitForFunction(() => window.statuses.filter((s) => s === "peer_added").length === 2, null, { timeout: 15_000 });
  await page.evaluate(() => window.ep.flush());
  const again = shutdownAfter(t, new broker.Endpoint());
  await again.peer(g2.url);
  again.publish("/to-browser/y", "after restart");
  await page.waitForFunction(() => window.received.length === 2, null, { timeout: 10_000 });
  assert.equal((await page.evaluate(() => window.received[1][0])), "/to-browser/y");
  await again.shutdown();
  // Reconnect attempts while the gateway was down log failed WebSocket connections; anything
  // else is a real problem.
  assert.deepEqual(problems.filter((p) => !p.includes("WebSocket connection to")), []);
});

test("browser: ZB-58 a clone in the page through gateway B of a master on gateway A", async (t) => {
  const a = await gateway(t, undefined, ["--memory-store", "inventory"]);
  const b = await gateway(t, undefined, ["--peer", a.addr]);
  const node = shutdownAfter(t, new broker.Endpoint());
  await node.peer(a.url);
  const master = node.attachClone("inventory");
  await master.ready();
  await master.put("apples", new broker.Count(3n));

  const { page, problems } = await openPage(browser, `${b.http}/`);
  await page.evaluate(async (url) => window.start(url, []), b.url);
  // The page clones the store through B (retrying until B has peered with A).
  const size = await page.evaluate(async () => {
    const s = window.ep.attachClone("inventory", { resyncInterval: 0.1 });
    window.store = s;
    window.changes = [];
    s.onChange((c) => window.changes.push([c.type, c.key ?? null]));
    await s.ready();
    return s.size;
  });
  assert.equal(size, 1);
  // A write from Node on A reaches the page; a write from the page reaches the master.
  await master.put("pears", new broker.Count(5n));
  await page.waitForFunction(() => window.changes.some(([t, k]) => t === "insert" && k === "pears"), null, { timeout: 10_000 });
  await page.evaluate(async () => {
    await window.store.increment("apples", new window.broker.Count(2n));
    if (!(await window.store.awaitIdle())) throw new Error("not idle");
  });
  assert.equal(await page.evaluate(() => window.store.get("apples").value), 5n);
  assert.equal(await master.awaitIdle(), true);
  assert.deepEqual(master.get("apples"), new broker.Count(5n));
  await node.shutdown();
  assert.deepEqual(problems, []);
});

test("browser: the browser build speaks the binary encoding; JSON frames say they are left out", async (t) => {
  const g = await gateway(t);
  const { page, problems } = await openPage(browser, `${g.http}/`);
  const refused = await page.evaluate(async (url) => {
    try {
      // Refused as the endpoint is made, before anything is sent.
      const ep = new window.broker.Endpoint({ encoding: "json", reconnectMaxMs: 200 });
      await ep.peer(url);
      return "connected";
    } catch (e) {
      return String(e?.message ?? e);
    }
  }, g.url);
  assert.match(refused, /JSON frames are not in this build/);
  const codec = await page.evaluate(() => {
    try {
      window.broker.frameToJson("client", new Uint8Array([1]));
      return "converted";
    } catch (e) {
      return String(e?.message ?? e);
    }
  });
  assert.match(codec, /JSON frames are not in this build/);
  // Typed JSON of values (what the dashboard shows) is there, as in Node.
  assert.equal(await page.evaluate(() => window.broker.jsToTypedJson(5n)), broker.jsToTypedJson(5n));
  // And the binary encoding works.
  await page.evaluate(async (url) => window.start(url, ["/x"]), g.url);
  await page.close();
  assert.deepEqual(problems, []);
});

test("browser: one connection per browser — three tabs share it (subscribe, publish, clone, statuses)", async (t) => {
  const g = await gateway(t, undefined, ["--memory-store", "shared-store"]);
  const metric = async (name) => {
    const text = await (await fetch(`${g.http}/metrics`)).text();
    return Number(text.match(new RegExp(`^broker_${name} (\\d+)$`, "m"))?.[1]);
  };
  const until = async (what, cond) => {
    const deadline = Date.now() + 10_000;
    while (!(await cond())) {
      if (Date.now() > deadline) assert.fail(`not in time: ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const context = await browser.newContext();
  t.after(() => context.close());
  const pages = [];
  for (let i = 0; i < 3; i++) {
    const page = await context.newPage();
    await page.goto(`${g.http}/`);
    await page.waitForFunction(() => document.getElementById("state").textContent === "ready", null, { timeout: 10_000 });
    const topics = i === 2 ? ["/shared", "/only-tab-2"] : ["/shared"];
    assert.equal(await page.evaluate(([url, topics]) => window.startShared(url, topics, "shared-store"), [g.url, topics]), true);
    pages.push(page);
  }
  // One WebSocket for the three tabs; their prefixes merged.
  assert.equal(await metric("connections_native"), 1);
  assert.equal(await metric("subscriptions"), 2);
  // Every tab hears it is connected, also those that joined the open connection.
  for (const page of pages) {
    await page.waitForFunction(() => window.shared.statuses.length >= 2, null, { timeout: 10_000 });
    assert.deepEqual((await page.evaluate(() => window.shared.statuses)).slice(0, 2), ["endpoint_discovered", "peer_added"]);
  }

  // Each tab publishes; every other tab receives it (as separate connections would).
  for (const [i, page] of pages.entries()) {
    await page.evaluate((i) => window.shared.ep.publish(`/shared/from-${i}`, new window.broker.Count(BigInt(i))), i);
  }
  // And a message from elsewhere reaches all three over the one connection.
  const node = shutdownAfter(t, new broker.Endpoint());
  await node.peer(g.url);
  node.publish("/shared/node", "from node");
  await node.flush();
  for (const [i, page] of pages.entries()) {
    await page.waitForFunction(() => window.shared.received.length === 3, null, { timeout: 10_000 });
    const topics = (await page.evaluate(() => window.shared.received.map(([t]) => t))).sort();
    const expect = ["/shared/from-0", "/shared/from-1", "/shared/from-2", "/shared/node"].filter((x) => x !== `/shared/from-${i}`);
    assert.deepEqual(topics, expect);
  }

  // A write through one tab's clone shows in every tab's clone, and in Node's.
  await pages[0].evaluate(() => window.shared.store.put("k", 5n));
  for (const page of pages) await page.waitForFunction(() => window.shared.store.get("k") === 5n, null, { timeout: 10_000 });
  await pages[1].evaluate(() => window.shared.store.increment("k", 2n));
  for (const page of pages) await page.waitForFunction(() => window.shared.store.get("k") === 7n, null, { timeout: 10_000 });
  const clone = await node.attachClone("shared-store").ready();
  await until("node sees 7", async () => clone.get("k") === 7n);

  // Namespaces through the worker: a blocking get in one tab is served by a put from another
  // (typed values both ways); a cancelled get rejects with DBR_ERR_CANCELLED and takes nothing.
  const got = pages[0].evaluate(async () => {
    const ns = await window.shared.ep.createNamespace("tabs");
    window.shared.ns = ns;
    const v = await ns.get("job", { timeoutMs: 10_000 });
    return [v instanceof window.broker.Count, String(v.value)];
  });
  await until("tab 0's get waits", async () => (await fetch(`${g.http}/metrics`).then((r) => r.text())).includes("broker_ns_waiters 1"));
  await pages[1].evaluate(async () => (await window.shared.ep.attachNamespace("tabs")).put("job", new window.broker.Count(9n)));
  assert.deepEqual(await got, [true, "9"]);
  const cancelled = await pages[0].evaluate(async () => {
    const ac = new AbortController();
    const p = window.shared.ns.get("job", { timeoutMs: Infinity, signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    try {
      await p;
      return "not cancelled";
    } catch (e) {
      return [e.name, e.code];
    }
  });
  assert.deepEqual(cancelled, ["DbrError", "DBR_ERR_CANCELLED"]);

  // A tab that closes gives its part up: its own prefix goes, the connection stays.
  await pages[2].close({ runBeforeUnload: true });
  await until("tab 2's prefix released", async () => (await metric("subscriptions")) === 1);
  assert.equal(await metric("connections_native"), 2); // the shared one and Node's
  node.publish("/shared/after", "still there");
  await node.flush();
  for (const page of pages.slice(0, 2)) {
    await page.waitForFunction(() => window.shared.received.some(([t]) => t === "/shared/after"), null, { timeout: 10_000 });
  }
});

test("browser: shared mode falls back to a connection of its own where SharedWorker is missing (Node)", async (t) => {
  const g = await gateway(t);
  const ep = shutdownAfter(t, new broker.Endpoint({ shared: true }));
  assert.notEqual(ep.shared, true);
  await ep.peer(g.url);
  const sub = ep.makeSubscriber("/fallback");
  await ep.flush();
  const other = shutdownAfter(t, new broker.Endpoint());
  await other.peer(g.url);
  other.publish("/fallback/x", "ok");
  assert.deepEqual(await sub.get({ timeoutMs: 10_000 }), ["/fallback/x", "ok"]);
});

test("browser: a durable clone (persist) — catches up after a reload, reads from IndexedDB with the gateway down, converges when it is back", async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "broker-kept-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const storeArgs = ["--store", "inv", "--data-dir", dir];
  let g = await testGateway(t, storeArgs);
  const pages = await gateway(t); // serves the page; stays up
  const node = shutdownAfter(t, new broker.Endpoint());
  await node.peer(g.url);
  const inv = await node.attachClone("inv").ready();
  const N = 100_000;
  for (let i = 0; i < N; i += 2_000) {
    const puts = [];
    for (let j = i; j < i + 2_000; j++) puts.push(inv.put(`k${String(j).padStart(6, "0")}`, new broker.Count(BigInt(j))));
    await Promise.all(puts);
  }
  const metric = async (name) => Number((await (await fetch(`${g.http}/metrics`)).text()).match(new RegExp(`^broker_${name} (\\d+)$`, "m"))?.[1]);

  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  await page.goto(`${pages.http}/?clone=${encodeURIComponent(g.url)}&store=inv`);
  await page.waitForFunction(() => window.kept?.synced, null, { timeout: 30_000 });
  assert.equal(await page.evaluate(() => window.keptStore.size), N);
  await page.evaluate(() => window.keptStore.save());

  // Reload with the gateway up: the kept state first, then only the updates since.
  await inv.put("meanwhile", "while the page was away");
  const catchups = await metric("store_clone_catchups_total");
  await page.reload();
  await page.waitForFunction(() => window.kept?.loaded, null, { timeout: 10_000 });
  const warm = await page.evaluate(() => window.kept.loaded);
  assert.equal(warm.size, N);
  await page.waitForFunction(() => window.kept.synced && window.keptStore.get("meanwhile") !== undefined, null, { timeout: 15_000 });
  assert.equal(await metric("store_clone_catchups_total"), catchups + 1, "caught up without a snapshot");
  await page.evaluate(() => window.keptStore.save());

  // Reload with the gateway down: the kept store, readable and marked stale.
  await g.stop("SIGKILL");
  await page.reload();
  await page.waitForFunction(() => window.kept?.loaded, null, { timeout: 10_000 });
  const cold = await page.evaluate(() => window.kept.loaded);
  console.log(`# durable clone of ${N + 1} keys: first rows ${cold.atMs.toFixed(0)} ms after navigation start (gateway down; up: ${warm.atMs.toFixed(0)} ms)`);
  assert.equal(cold.size, N + 1);
  assert.equal(cold.stale, true);
  assert.equal(cold.first, broker.jsToTypedJson(["k000000", new broker.Count(0n)]));
  assert.equal(await page.evaluate(() => window.keptStore.get("meanwhile")), "while the page was away");

  // The gateway comes back (a new master instance over the same file): a snapshot, applied
  // as the difference; a put made after it shows too.
  g = await testGateway(t, storeArgs, g.addr);
  const again = shutdownAfter(t, new broker.Endpoint());
  await again.peer(g.url);
  const inv2 = await again.attachClone("inv").ready();
  await inv2.put("after", 1n);
  await page.waitForFunction(() => window.kept.synced && window.keptStore.get("after") === 1n, null, { timeout: 20_000 });
  assert.equal(await page.evaluate(() => window.keptStore.stale), false);
  assert.equal(await page.evaluate(() => window.keptStore.size), N + 2);
  assert.deepEqual(problems, []);
});

// Tokens from JS (hardening): the token option of Endpoint goes in the hello; a refused token
// rejects peer() with `unauthorized` at once (no retries); denied operations fail with
// `unauthorized` (namespaces: DB-32 DBR_ERR_NOAUTH) and change nothing; a clone the token may
// not read is refused for good, and its ready() rejects at once.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as broker from "../../pkg/node.mjs";
import { testGateway, shutdownAfter, within } from "./gateway.mjs";

const { Endpoint, Count, BrokerError, DbrError } = broker;
const ADMIN = "admin-token-0123456789";
const WRITER = "writer-token-0123456789";
const dir = mkdtempSync(path.join(tmpdir(), "broker-auth-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const all = ["*"];
writeFileSync(path.join(dir, "auth.json"), JSON.stringify({
  tokens: [
    { name: "admin", token: ADMIN, grants: { publish: [""], subscribe: [""], store_read: all, store_write: all, store_master: all, ns_create: all, ns_put: all, ns_read: all, ns_get: all } },
    { name: "writer", token: WRITER, grants: { publish: ["a/"], subscribe: ["a/"], store_read: ["s"], ns_read: ["jobs"] } },
  ],
}));

/** A gateway with the tokens above, stopped when test `t` ends. */
function gateway(t) {
  return testGateway(t, ["--auth-file", path.join(dir, "auth.json"), "--memory-store", "s", "--memory-store", "secret", "--data-dir", dir]);
}

/** An endpoint with `token` peered with `g`, shut down when test `t` ends. */
async function connected(t, g, token) {
  const ep = shutdownAfter(t, new Endpoint({ token }));
  await ep.peer(g.url);
  return ep;
}

/** The next error event of `sub`, within 10 s in all. */
function nextError(sub) {
  return within(
    (async () => {
      for (;;) {
        const e = await sub.get({ timeoutMs: 10_000 });
        assert.ok(e, "an error event in time");
        if (e.type === "error") return e;
      }
    })(),
    "an error event",
  );
}

test("a refused token rejects peer() with unauthorized, without retrying", async (t) => {
  const g = await gateway(t);
  const ep = shutdownAfter(t, new Endpoint({ token: "not-a-token-of-this-gateway" }));
  const started = Date.now();
  await assert.rejects(ep.peer(g.url, { timeoutMs: 20_000 }), (e) => {
    assert.ok(e instanceof BrokerError);
    assert.equal(e.code, "unauthorized");
    return true;
  });
  // Refused at the first attempt, not at the timeout.
  assert.ok(Date.now() - started < 10_000);
  ep.shutdown();
});

test("grants limit publish, subscribe, stores and namespaces", async (t) => {
  const g = await gateway(t);
  const admin = await connected(t, g, ADMIN);
  const writer = await connected(t, g, WRITER);
  const everything = admin.makeSubscriber("");
  await admin.flush();
  const status = writer.makeStatusSubscriber();

  writer.publish("b/x", new Count(1n));
  const e = await nextError(status);
  assert.equal(e.code, "unauthorized");
  writer.publish("a/x", new Count(2n));
  const [topic] = await everything.get({ timeoutMs: 10_000 });
  assert.equal(topic, "a/x", "the denied message was not delivered");

  const store = writer.attachClone("s");
  await assert.rejects(store.put("k", 1n), (err) => err instanceof BrokerError && err.code === "unauthorized");
  const adminStore = admin.attachClone("s");
  assert.equal(await adminStore.awaitIdle(), true);
  assert.equal(adminStore.has("k"), false);

  const jobs = await admin.createNamespace("jobs");
  await jobs.put("t", "v");
  const wjobs = await writer.attachNamespace("jobs");
  await assert.rejects(wjobs.put("t", "w"), (err) => err instanceof DbrError && err.code === "DBR_ERR_NOAUTH");
  await assert.rejects(wjobs.get("t"), (err) => err instanceof DbrError && err.code === "DBR_ERR_NOAUTH");
  assert.equal(await jobs.get("t"), "v");
  for (const ep of [admin, writer]) ep.shutdown();
});

test("ZB-47: a clone without store_read rejects ready() at once with unauthorized, on every call", { timeout: 10_000 }, async (t) => {
  const g = await gateway(t);
  const writer = await connected(t, g, WRITER);
  const clone = writer.attachClone("secret", { resyncInterval: 0.1 });
  const errors = [];
  clone.onChange((c) => {
    if (c.type === "error") errors.push(c);
  });
  // ready's own timeout is twice the test's: only a refusal that arrives at once passes.
  const started = Date.now();
  await assert.rejects(clone.ready(20_000), (e) => {
    assert.ok(e instanceof BrokerError);
    assert.equal(e.code, "unauthorized");
    assert.match(e.message, /store_read/);
    return true;
  });
  assert.ok(Date.now() - started < 5_000, `refused after ${Date.now() - started} ms`);
  assert.deepEqual(errors.map((e) => [e.code, e.permanent]), [["unauthorized", true]]);
  assert.equal(clone.refusal?.code, "unauthorized");
  // Later calls reject at once too, and reads fail with the refusal, not stale_data.
  await assert.rejects(clone.ready(20_000), (e) => e instanceof BrokerError && e.code === "unauthorized");
  assert.throws(() => clone.get("k"), (e) => e instanceof BrokerError && e.code === "unauthorized");
  assert.equal(await clone.awaitIdle(20_000), false);
  // The store the token may read still works on the same connection.
  const s = writer.attachClone("s");
  assert.equal((await s.ready(5_000)).refusal, undefined);
});

test("ZB-47: a store name the gateway rejects is a final refusal too (invalid_data)", { timeout: 10_000 }, async (t) => {
  const g = await gateway(t);
  const admin = await connected(t, g, ADMIN);
  const clone = admin.attachClone("bad\u0001name");
  await assert.rejects(clone.ready(20_000), (e) => e instanceof BrokerError && e.code === "invalid_data");
  assert.equal(clone.refusal?.code, "invalid_data");
});

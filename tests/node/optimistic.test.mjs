// Optimistic writes of clones (`attachClone(name, { optimistic: true })`): a write shows in
// the clone's reads at once, marked pending; the master's answer confirms it, or rolls it
// back with the reason; concurrent writers end at the master's state.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as broker from "../../pkg/node.mjs";
import { testGateway, shutdownAfter, within } from "./gateway.mjs";

const { Endpoint, Count } = broker;

async function endpoint(t, g) {
  const ep = shutdownAfter(t, new Endpoint());
  await ep.peer(g.url);
  return ep;
}

test("optimistic: a write shows at once, pending, then confirmed; a plain clone waits for the master", async (t) => {
  const g = await testGateway(t, ["--memory-store", "s"]);
  const ep = await endpoint(t, g);
  const store = await ep.attachClone("s", { optimistic: true }).ready();
  const changes = [];
  store.onChange((c) => changes.push(c));
  const done = store.put("k", new Count(1n));
  // Synchronously visible, before any answer.
  assert.deepEqual(store.get("k"), new Count(1n));
  assert.equal(store.isPending("k"), true);
  assert.deepEqual(store.pendingKeys(), ["k"]);
  assert.equal(store.size, 1);
  assert.deepEqual(store.entries(), [["k", new Count(1n)]]);
  const inc = store.increment("k", new Count(2n));
  assert.deepEqual(store.get("k"), new Count(3n));
  await Promise.all([done, inc]);
  assert.equal(store.isPending("k"), false);
  assert.deepEqual(store.get("k"), new Count(3n), "not counted twice");
  assert.deepEqual(
    changes.filter((c) => ["pending", "confirmed"].includes(c.type)).map((c) => [c.type, c.value?.value]),
    [
      ["pending", 1n],
      ["pending", 3n],
      ["confirmed", 3n],
      ["confirmed", 3n],
    ],
  );
  // An erase shows as absent at once.
  const erased = store.erase("k");
  assert.equal(store.has("k"), false);
  assert.equal(store.size, 0);
  await erased;
  assert.equal(store.has("k"), false);

  // Without the option a write shows only when the master's update comes back.
  const ep2 = await endpoint(t, g);
  const plain = await ep2.attachClone("s").ready();
  const p = plain.put("p", 1n);
  assert.equal(plain.get("p"), undefined);
  await p;
  await plain.awaitIdle();
  assert.equal(plain.get("p"), 1n);
});

test("optimistic: the master refuses — rolled back with the reason, the view as before", async (t) => {
  const g = await testGateway(t, ["--memory-store", "s", "--store-max-value", "64"]);
  const ep = await endpoint(t, g);
  const store = await ep.attachClone("s", { optimistic: true }).ready();
  await store.put("k", "small");
  const changes = [];
  store.onChange((c) => changes.push(c));
  const big = store.put("k", "x".repeat(200));
  assert.equal(store.get("k"), "x".repeat(200));
  await assert.rejects(big, { code: "invalid_data" });
  assert.equal(store.get("k"), "small");
  assert.equal(store.isPending("k"), false);
  const rollback = changes.find((c) => c.type === "rollback");
  assert.equal(rollback.key, "k");
  assert.equal(rollback.value, "small");
  assert.equal(rollback.code, "invalid_data");
  // A new key refused: gone again.
  await assert.rejects(store.put("new", "y".repeat(200)), { code: "invalid_data" });
  assert.equal(store.has("new"), false);
});

test("optimistic: concurrent writers converge to the master's order", async (t) => {
  const g = await testGateway(t, ["--memory-store", "s"]);
  const a = await endpoint(t, g);
  const b = await endpoint(t, g);
  const sa = await a.attachClone("s", { optimistic: true }).ready();
  const sb = await b.attachClone("s", { optimistic: true }).ready();
  await sa.put("c", new Count(0n));
  await sb.awaitIdle();
  const writes = [];
  for (let i = 0; i < 200; i++) {
    writes.push(sa.increment("c", new Count(1n)));
    writes.push(sb.increment("c", new Count(1n)));
    if (i % 50 === 0) writes.push(sb.put("last", `b${i}`), sa.put("last", `a${i}`));
  }
  await Promise.all(writes);
  await within(
    (async () => {
      while (!(sa.synced && sb.synced && (await sa.awaitIdle()) && (await sb.awaitIdle()))) await new Promise((r) => setTimeout(r, 10));
    })(),
    "both idle",
  );
  const master = await sa.fetch("c");
  assert.deepEqual(master, new Count(400n));
  assert.deepEqual(sa.get("c"), master);
  assert.deepEqual(sb.get("c"), master);
  assert.equal(sa.get("last"), await sa.fetch("last"));
  assert.equal(sb.get("last"), await sb.fetch("last"));
  assert.deepEqual(sa.pendingKeys(), []);
  assert.deepEqual(sb.pendingKeys(), []);
  // A read through the clone is not a pending write.
  const read = sa.fetch("c");
  assert.equal(sa.isPending("c"), false);
  await read;
});

// Resume after a reconnect (`--history`): the Node client's connection is cut mid-stream by a
// relay between it and the gateway (the gateway keeps running); the endpoint reconnects by
// itself and gets every message exactly once, in order, and not its own publishes back. A
// gateway restart behind the relay is a `gap` status event, then what came since. A position
// saved before an application restart resumes a new endpoint (`resumeFrom`).
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import * as broker from "../../pkg/node.mjs";
import { testGateway, startGateway, shutdownAfter, within } from "./gateway.mjs";

const { Endpoint, Count } = broker;

/** A TCP relay to `target()` whose open connections `cut()` closes (a network blip). */
async function relay(t, target) {
  const open = new Set();
  const server = net.createServer((inbound) => {
    const { host, port } = target();
    const outbound = net.connect(port, host);
    open.add(inbound);
    open.add(outbound);
    const drop = () => {
      inbound.destroy();
      outbound.destroy();
      open.delete(inbound);
      open.delete(outbound);
    };
    inbound.pipe(outbound).on("error", drop);
    outbound.pipe(inbound).on("error", drop);
    inbound.on("close", drop);
    outbound.on("close", drop);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => {
    for (const s of open) s.destroy();
    return new Promise((r) => server.close(r));
  });
  return {
    url: `ws://127.0.0.1:${server.address().port}`,
    cut() {
      for (const s of open) s.destroy();
      open.clear();
    },
  };
}

/** Collects `[topic, count]` from `sub` into `out` until it ends. */
function collect(sub, out) {
  return (async () => {
    for await (const [topic, value] of sub) out.push([topic, Number(value.value)]);
  })();
}

async function until(what, cond, ms = 15_000) {
  await within(
    (async () => {
      while (!cond()) await new Promise((r) => setTimeout(r, 10));
    })(),
    what,
    ms,
  );
}

test("resume: a connection cut mid-stream reconnects and gets every message once, in order, not its own", async (t) => {
  const g = await testGateway(t, ["--history", "/h=100000"]);
  const r = await relay(t, () => g);
  const client = shutdownAfter(t, new Endpoint({ reconnectMaxMs: 200, statuses: true }));
  const statuses = client.makeStatusSubscriber(true);
  const got = [];
  collect(client.makeSubscriber("/h"), got);
  await client.peer(r.url);
  await client.flush();
  const publisher = shutdownAfter(t, new Endpoint());
  await publisher.peer(g.url);

  const N = 20_000;
  let sent = 0;
  const pace = (async () => {
    while (sent < N) {
      const batch = [];
      for (let i = 0; i < 250 && sent < N; i++) batch.push(["/h/x", new Count(BigInt(++sent))]);
      publisher.publishBatch(batch);
      await publisher.flush();
    }
  })();
  // Mid-stream the relay drops the connection; the client publishes under /h itself too.
  await until("a first part", () => got.length >= 2_000);
  client.publish("/h/mine", new Count(0n));
  await client.flush();
  r.cut();
  await pace;
  await until("every message", () => got.length >= N);
  await client.flush();
  const values = got.map(([, v]) => v);
  assert.equal(values.length, N, "nothing twice");
  assert.deepEqual(values, Array.from({ length: N }, (_, i) => i + 1));
  assert.ok(!got.some(([topic]) => topic === "/h/mine"), "its own publish came back");
  // It did reconnect: a second peer_added.
  const seen = statuses.poll().filter((e) => e.code === "peer_added");
  assert.ok(seen.length >= 2, JSON.stringify(seen));
  assert.equal(client.position().offsets["/h"] >= N, true);
  const metrics = await (await fetch(`${g.http}/metrics`)).text();
  assert.match(metrics, /^broker_resumes_total [1-9]/m);
});

test("resume: a gateway restart is a gap event, then what was published since", async (t) => {
  let current = await startGateway(["--history", "/h=1000"]);
  t.after(() => current.stop("SIGKILL"));
  const r = await relay(t, () => current);
  const client = shutdownAfter(t, new Endpoint({ reconnectMaxMs: 200 }));
  const statuses = client.makeStatusSubscriber(false);
  const got = [];
  collect(client.makeSubscriber("/h"), got);
  await client.peer(r.url);
  await client.flush();
  const p1 = new Endpoint();
  await p1.peer(current.url);
  p1.publish("/h/x", new Count(1n));
  await p1.flush();
  await until("the first message", () => got.length === 1);
  const before = client.position();
  await p1.shutdown();

  await current.stop();
  current = await startGateway(["--history", "/h=1000"]);
  const p2 = shutdownAfter(t, new Endpoint());
  await p2.peer(current.url);
  p2.publish("/h/x", new Count(2n));
  await p2.flush();
  // Only status subscribers with receiveStatuses=false: the gap arrives all the same.
  const gap = await within(
    (async () => {
      for await (const e of statuses) if (e.type === "gap") return e;
    })(),
    "a gap event",
  );
  assert.equal(gap.code, "gap");
  assert.equal(gap.prefix, "/h");
  assert.equal(gap.reason, "restart");
  assert.equal(gap.missed, null);
  await until("the message published after the restart", () => got.length === 2);
  assert.deepEqual(got.map(([, v]) => v), [1, 2]);
  assert.notEqual(client.position().epoch, before.epoch);
});

test("resume: resumeFrom a saved position after the application's restart; a bad position is refused", async (t) => {
  const g = await testGateway(t, ["--history", "/h=1000"]);
  const first = new Endpoint();
  const got1 = [];
  collect(first.makeSubscriber("/h"), got1);
  await first.peer(g.url);
  await first.flush();
  const p = shutdownAfter(t, new Endpoint());
  await p.peer(g.url);
  for (let i = 1; i <= 3; i++) p.publish("/h/x", new Count(BigInt(i)));
  await p.flush();
  await until("three", () => got1.length === 3);
  const saved = JSON.parse(JSON.stringify(first.position())); // as an application stores it
  await first.shutdown();
  for (let i = 4; i <= 6; i++) p.publish("/h/x", new Count(BigInt(i)));
  await p.flush();

  const second = shutdownAfter(t, new Endpoint({ resumeFrom: saved }));
  const got2 = [];
  collect(second.makeSubscriber("/h"), got2);
  await second.peer(g.url);
  await until("the three missed", () => got2.length === 3);
  assert.deepEqual(got2.map(([, v]) => v), [4, 5, 6]);

  assert.throws(() => new Endpoint({ resumeFrom: { epoch: 5, offsets: {} } }), { code: "invalid_data" });
  assert.throws(() => second.resume({ epoch: null, offsets: { "/h": -1 } }), { code: "invalid_data" });
});

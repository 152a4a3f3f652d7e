// The JS API of the npm package in pkg/ against a real gateway binary (Node 20, no flags).
import { test as nodeTest } from "node:test";
import assert from "node:assert/strict";
import * as broker from "../../pkg/node.mjs";
import { testGateway as gateway, shutdownAfter, within, until, expectStatus } from "./gateway.mjs";

const { Endpoint, Count, Address, Subnet, Port, Timestamp, Timespan, EnumValue, Event, BrokerError } = broker;

// Every test gets an overall deadline on top of the deadline of each wait in it.
const test = (name, fn) => nodeTest(name, { timeout: 60_000 }, fn);

/** A new endpoint peered with `g`, shut down when test `t` ends. */
async function connected(t, g, options) {
  const ep = shutdownAfter(t, new Endpoint(options));
  await ep.peer(g.url);
  return ep;
}

// One value of every Broker type, with the extremes JS numbers cannot hold.
const everyType = () => [
  null,
  true,
  new Count(18446744073709551615n),
  new Count(0n),
  -9223372036854775808n,
  9223372036854775807n,
  -7.5,
  Number.MAX_VALUE,
  "text ü 🎉",
  new Uint8Array([255, 0, 97]),
  new Address("192.168.1.1"),
  new Address("2001:db8::"),
  new Subnet("10.0.0.0/8"),
  new Port(53, "udp"),
  new Port(0, "?"),
  new Timestamp(1_404_901_004_123_456_789n),
  new Timestamp(-1n),
  new Timespan(-999n),
  new EnumValue("Log::WRITER_ASCII"),
  new Set([new Count(1n), "a"]),
  new Map([[new Count(18446744073709551615n), [new Set()]]]),
  [[], [null]],
];

test("ZB-25/ZB-33: every type arrives and is published back unchanged", async (t) => {
  const g = await gateway(t);
  const a = await connected(t, g);
  const b = await connected(t, g);
  const subA = a.makeSubscriber("/back");
  const subB = b.makeSubscriber(["/there"]);
  await a.flush();
  await b.flush();
  const sent = everyType();
  a.publish("/there", sent);
  const [topic, received] = await subB.get({ timeoutMs: 10_000 });
  assert.equal(topic, "/there");
  assert.equal(broker.jsToTypedJson(received), broker.jsToTypedJson(sent));
  assert.ok(received[2] instanceof Count && received[2].value === 18446744073709551615n);
  assert.equal(typeof received[4], "bigint");
  assert.ok(received[9] instanceof Uint8Array);
  assert.ok(received[19] instanceof Set && received[20] instanceof Map);
  b.publish("/back", received);
  const [, again] = await subA.get({ timeoutMs: 10_000 });
  assert.equal(broker.jsToTypedJson(again), broker.jsToTypedJson(sent));
  await a.shutdown();
  await b.shutdown();
});

test("ZB-34: Zeek events with counts and metadata", async (t) => {
  const g = await gateway(t);
  const a = await connected(t, g, { encoding: "json" });
  const b = await connected(t, g);
  const sub = b.makeSubscriber("/zeek");
  await b.flush();
  const ts = new Timestamp(1_681_827_194_000_000_000n);
  a.publish("/zeek/e", new Event("ping", [new Count(9007199254740993n), "x"], [[1, ts], [200n, true]]));
  const [, value] = await sub.get({ timeoutMs: 10_000 });
  const e = Event.fromValue(value);
  assert.equal(e.name, "ping");
  assert.equal(e.args[0].value, 9007199254740993n);
  assert.equal(e.metadata[0][1].ns, ts.ns);
  assert.equal(Event.fromValue(["not", "an", "event"]), null);
  await a.shutdown();
  await b.shutdown();
});

test("values JS cannot represent as Broker data fail loudly", async (t) => {
  const g = await gateway(t);
  const a = await connected(t, g);
  const bad = [
    [{ plain: "object" }, "conversion_failed"],
    [2n ** 64n, "conversion_failed"],
    [[1, { x: 1 }], "conversion_failed"],
    [new Set([new Count(1n), new Count(1n)]), "conversion_failed"],
    [new Port(70000, "tcp"), "conversion_failed"],
    [new Address("300.1.1.1"), "conversion_failed"],
    [Symbol("s"), "conversion_failed"],
  ];
  for (const [value, code] of bad) {
    assert.throws(() => a.publish("/x", value), (e) => e instanceof BrokerError && e.code === code, String(value?.toString?.()));
  }
  assert.throws(() => new Count(-1n), RangeError);
  assert.throws(() => a.publish("bad<$>", 1), (e) => e.code === "invalid_topic_key");
  await a.shutdown();
});

test("ZB-15..17: subscriber get/timeout/poll/available/async iteration and topic changes", async (t) => {
  const g = await gateway(t);
  const a = await connected(t, g);
  const b = await connected(t, g);
  const sub = b.makeSubscriber("/s");
  await b.flush();
  assert.equal(await sub.get({ timeoutMs: 30 }), null);
  for (let i = 0; i < 5; i++) a.publish("/s", new Count(BigInt(i)));
  await a.flush();
  await b.flush();
  assert.equal(sub.available, 5);
  const [, first] = await sub.get();
  assert.equal(first.value, 0n);
  assert.equal(sub.poll().length, 4);
  sub.addTopic("/t");
  await b.flush();
  a.publish("/t/1", "via /t");
  a.publish("/s", "end");
  const seen = [];
  await within(
    (async () => {
      for await (const [topic, value] of sub) {
        seen.push([topic, value]);
        if (seen.length === 2) break;
      }
    })(),
    "two messages through async iteration",
  );
  assert.deepEqual(seen, [["/t/1", "via /t"], ["/s", "end"]]);
  sub.removeTopic("/t");
  await b.flush();
  a.publish("/t/2", "gone");
  a.publish("/s", "still");
  assert.deepEqual(await sub.get({ timeoutMs: 10_000 }), ["/s", "still"]);
  sub.close();
  await assert.rejects(sub.get(), (e) => e.code === "shutting_down");
  await a.shutdown();
  await b.shutdown();
});

test("ZB-06/07: peers and peer subscriptions of the gateway", async (t) => {
  const g1 = await gateway(t);
  const g2 = await gateway(t, ["--peer", g1.addr, "--peer-retry", "0.2"]);
  const onG2 = await connected(t, g2);
  const onG1 = await connected(t, g1);
  onG1.makeSubscriber("/from-node");
  await onG1.flush();
  // No event announces a filter arriving from a peer gateway: poll, with a deadline.
  await until("/from-node in g2's peer subscriptions", async () => (await onG2.peerSubscriptions()).includes("/from-node"));
  const peers = await onG2.peers();
  assert.equal(peers.length, 1);
  assert.equal(peers[0].status, "peered");
  await onG1.shutdown();
  await onG2.shutdown();
});

test("statuses and reconnect after the gateway restarts (subscriptions restored)", async (t) => {
  const g = await gateway(t);
  const a = shutdownAfter(t, new Endpoint({ reconnectMaxMs: 200 }));
  const statuses = a.makeStatusSubscriber(true);
  await a.peer(g.url);
  assert.equal((await expectStatus(statuses, "endpoint_discovered")).node, a.peerId);
  await expectStatus(statuses, "peer_added");
  const sub = a.makeSubscriber("/r");
  await a.flush();
  await g.stop("SIGKILL");
  await expectStatus(statuses, "peer_lost");
  await expectStatus(statuses, "endpoint_unreachable");
  const g2 = await gateway(t, [], g.addr);
  await expectStatus(statuses, "peer_added");
  await a.flush();
  const b = await connected(t, g2);
  b.publish("/r", "after restart");
  assert.deepEqual(await sub.get({ timeoutMs: 10_000 }), ["/r", "after restart"]);
  await a.shutdown();
  await b.shutdown();
});

test("peer with retry off fails fast with peer_unavailable", async (t) => {
  const g = await gateway(t);
  const port = g.port;
  await g.stop();
  const a = shutdownAfter(t, new Endpoint());
  const statuses = a.makeStatusSubscriber();
  await assert.rejects(a.peer(`ws://127.0.0.1:${port}`, { retry: false, timeoutMs: 5000 }), (e) => e.code === "peer_unavailable");
  const e = await statuses.get({ timeoutMs: 10_000 });
  assert.ok(e, "a peer_unavailable error event in time");
  assert.equal(e.code, "peer_unavailable");
  await a.shutdown();
});

test("publishes in one turn of the event loop travel as one frame", async (t) => {
  const g = await gateway(t);
  const a = await connected(t, g);
  const b = await connected(t, g);
  const sub = b.makeSubscriber("/batch");
  await b.flush();
  const before = await metric(g, "frames_in_total");
  const items = [];
  for (let i = 0; i < 1000; i++) items.push(["/batch", new Count(BigInt(i))]);
  a.publishBatch(items);
  for (let i = 0; i < 1000; i++) a.publish("/batch", i);
  await a.flush();
  await b.flush();
  assert.equal(sub.available, 2000);
  // One frame for the 2000 publishes and the ping of a.flush(), one for b.flush().
  assert.equal((await metric(g, "frames_in_total")) - before, 2);
  await a.shutdown();
  await b.shutdown();
});

async function metric(g, name) {
  const text = await (await fetch(`${g.http}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`broker_${name} `));
  return Number(line.split(" ")[1]);
}

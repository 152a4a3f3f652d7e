// Zeek uplinks (ZU-04..19) from the JS side: the gateway binary as a client of the Zeek
// double (tests/src/bin/zeek-double), with Node endpoints and a page in headless Chromium on
// the gateway's side. What Zeek sends reaches JS subscribers with the right values; what JS
// publishes under a publish prefix reaches Zeek as the exact JSON a Zeek WebSocket client
// sends; Zeek's error replies and local refusals reach status subscribers; Zeek 8.2's
// table_change_infos frames (tests/fixtures/zeek) become read-only `zeek:` stores that JS
// clones, go stale when the uplink drops and converge to Zeek's re-sent table; two peered
// gateways on one Zeek deliver each Zeek message once.
import { test as nodeTest } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as broker from "../../pkg/node.mjs";
import { startGateway, within, until } from "./gateway.mjs";
import { startZeekDouble, eventMessage } from "./zeek-double.mjs";
import { launch, openPage } from "./chromium.mjs";

const { Endpoint, Count, Address, Port, Timestamp, Timespan, Event, BrokerError } = broker;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const pageDir = path.join(root, "tests/browser");

// Every test gets an overall deadline on top of the deadline of each wait in it.
const test = (name, fn) => nodeTest(name, { timeout: 90_000 }, fn);

/** Default deadline of a wait. */
const T = 10_000;

// What a test started goes when it ends, passed or failed, newest first: endpoints, then
// gateways, then the Zeek double (a double stopped first would have its gateways log the loss).
const cleanups = new WeakMap();

function onEnd(t, fn) {
  let stack = cleanups.get(t);
  if (!stack) {
    stack = [];
    cleanups.set(t, stack);
    t.after(async () => {
      const errors = [];
      while (stack.length) {
        try {
          await stack.pop()();
        } catch (e) {
          errors.push(e);
        }
      }
      if (errors.length) throw errors[0];
    });
  }
  stack.push(fn);
}

/** A Zeek double for test `t`. */
async function zeekDouble(t, args = []) {
  const zeek = await startZeekDouble(args);
  onEnd(t, () => zeek.stop());
  return zeek;
}

/** A gateway binary for test `t` (SIGKILLed at the end). */
async function gateway(t, args = [], listen = undefined) {
  const g = await startGateway(args, listen);
  onEnd(t, () => g.stop("SIGKILL"));
  return g;
}

/** A new endpoint connected to `g`. */
async function connected(t, g, options) {
  const ep = new Endpoint(options);
  onEnd(t, () => ep.shutdown());
  await ep.peer(g.url);
  return ep;
}

/** The exact text of a fixture file (one WebSocket frame as Zeek 8.2 sends it). */
function fixture(name) {
  return readFileSync(path.join(root, "tests/fixtures/zeek", name), "utf8");
}

/** The double publishes `message` (an object, or the exact text) to its clients. */
async function zeekPublish(zeek, message, clients = 1) {
  const answer = await zeek.command({ cmd: "publish", message }, "published");
  assert.equal(answer.delivered, clients, "clients the double delivered to");
}

/** Waits until the gateway's (only) uplink is connected; returns its info. */
async function uplinkConnected(ep) {
  let info;
  await until("the uplink to be connected", async () => {
    [info] = await ep.zeekUplinks();
    return info?.state === "connected";
  });
  return info;
}

/** The next status or error event of `sub` that `pred` accepts, skipping others. */
async function nextStatus(sub, what, pred, ms = T) {
  const deadline = performance.now() + ms;
  for (;;) {
    const left = deadline - performance.now();
    const e = left > 0 ? await sub.get({ timeoutMs: Math.ceil(left) }) : null;
    if (e === null) throw new Error(`no ${what} within ${ms} ms`);
    if (pred(e)) return e;
  }
}

/** `n` messages from `sub`, within `ms` in all. */
async function take(sub, n, ms = T) {
  const got = [];
  const deadline = performance.now() + ms;
  while (got.length < n) {
    const left = deadline - performance.now();
    const m = left > 0 ? await sub.get({ timeoutMs: Math.ceil(left) }) : null;
    if (m === null) throw new Error(`${got.length} of ${n} messages within ${ms} ms`);
    got.push(m);
  }
  return got;
}

/** Resolves once `cond()` holds for `store`, checked now and after each of its changes. */
async function settle(store, what, cond, ms = T) {
  let off = () => {};
  try {
    await within(
      new Promise((resolve) => {
        const check = () => {
          let ok = false;
          try {
            ok = cond();
          } catch {
            // stale_data before the first snapshot: not yet
          }
          if (ok) resolve();
        };
        off = store.onChange(check);
        check();
      }),
      what,
      ms,
    );
  } finally {
    off();
  }
}

async function rejectsWith(promise, code) {
  await assert.rejects(promise, (e) => e instanceof BrokerError && e.code === code);
}

/** Nanoseconds since the epoch of a UTC date and time with milliseconds. */
const utcNs = (y, mo, d, h, mi, s, ms) => BigInt(Date.UTC(y, mo - 1, d, h, mi, s, ms)) * 1_000_000n;
const SECOND = 1_000_000_000n;

// Broker JSON v1 values, for frames written here in the fixtures' (Zeek 8.2's) shape.
const J = {
  count: (n) => ({ "@data-type": "count", data: n }),
  string: (s) => ({ "@data-type": "string", data: s }),
  address: (a) => ({ "@data-type": "address", data: a }),
  port: (p) => ({ "@data-type": "port", data: p }),
  real: (x) => ({ "@data-type": "real", data: x }),
  timespan: (s) => ({ "@data-type": "timespan", data: s }),
  timestamp: (s) => ({ "@data-type": "timestamp", data: s }),
  enum: (s) => ({ "@data-type": "enum-value", data: s }),
  none: () => ({ "@data-type": "none", data: {} }),
  set: (xs) => ({ "@data-type": "set", data: xs }),
  vector: (xs) => ({ "@data-type": "vector", data: xs }),
};

const NODE_ID = "zeromq_manager_zeek-sensor_2791_NaMk0dwb4Q8fbIf7Ve";

/**
 * `Cluster::table_change_infos` of table `id` on its default topic, one info per
 * `[change, index columns, value]` (Zeek 8.2's shape, see tests/fixtures/zeek/README.md).
 */
function tableFrame(id, ts, changes) {
  const infos = changes.map(([change, index, value, previous]) =>
    J.vector([J.enum(change), J.timestamp(ts), J.vector(index), value ?? J.none(), previous ?? J.none()]),
  );
  return eventMessage(`zeek/table/${id}/`, "Cluster::table_change_infos", [
    J.vector([J.string(id), J.timestamp(ts), J.string(NODE_ID)]),
    J.vector(infos),
  ]);
}

/** A `Test::Endpoint` record in Broker JSON (fields in declaration order). */
function endpointRecord({ host, svc, uptime, seen, note, score, tags }) {
  return J.vector([
    J.address(host),
    J.port(svc),
    J.timespan(uptime),
    J.timestamp(seen),
    note === undefined ? J.none() : J.string(note),
    J.real(score),
    J.set(tags.map(J.string)),
  ]);
}

// The records of tests/fixtures/zeek/{table-record-values,publish-table-snapshot}.json as
// JS values: [host, svc, uptime, seen, note (unset: null), score, tags].
const WEB_1 = [
  new Address("10.0.0.5"),
  new Port(443, "tcp"),
  new Timespan(5400n * SECOND),
  new Timestamp(utcNs(2025, 6, 2, 8, 15, 29, 750)),
  null,
  0.5,
  new Set(["prod", "web"]),
];
const DNS_1 = [
  new Address("10.0.0.53"),
  new Port(53, "udp"),
  new Timespan(0n),
  new Timestamp(utcNs(2025, 6, 2, 10, 15, 33, 0)),
  "primary",
  0.75,
  new Set(["dns"]),
];

/** Up to 100 entries of a clone, as `[key, value]` pairs in key order. */
const entriesOf = (store) => store.entries(0, 100);

test("ZU-04/06/09: the handshake Zeek sees, zeekUplinks(), a Zeek event reaches a Node subscriber", async (t) => {
  const zeek = await zeekDouble(t, ["--event", "Test::up(count,string)"]);
  const g = await gateway(t, [
    "--zeek", zeek.url,
    "--zeek-subscribe", "zeek/",
    "--zeek-publish", "zeek/up/",
    "--zeek-app-name", "node-test",
    "--zeek-header", "Authorization: Basic dXNlcjpwYXNz",
  ]);
  const hello = await zeek.next("connected");
  assert.equal(hello.client, 0);
  assert.equal(hello.path, "/v1/messages/json");
  assert.equal(hello.app_name, "node-test");
  assert.equal(hello.headers["x-application-name"], "node-test");
  assert.equal(hello.headers.authorization, "Basic dXNlcjpwYXNz");
  const subscribed = await zeek.next("subscribed");
  assert.deepEqual(subscribed.topics, ["zeek/"]);
  assert.equal(subscribed.endpoint, zeek.endpoint(0));

  const ep = await connected(t, g);
  const info = await uplinkConnected(ep);
  assert.equal(info.url, zeek.url);
  assert.equal(info.zeek_endpoint, zeek.endpoint(0));
  assert.equal(info.zeek_version, "8.2.0-double");
  assert.deepEqual(info.subscribe, ["zeek/"]);
  assert.deepEqual(info.publish, ["zeek/up/"]);
  assert.equal(info.connects, 1);

  const sub = ep.makeSubscriber("zeek/");
  await ep.flush();
  await zeekPublish(zeek, eventMessage("zeek/down", "Test::down", [J.count(1), J.address("10.0.0.1")]));
  const [topic, value] = await sub.get({ timeoutMs: T });
  assert.equal(topic, "zeek/down");
  assert.deepEqual(value, [new Count(1n), new Count(1n), ["Test::down", [new Count(1n), new Address("10.0.0.1")]]]);
  const ev = Event.fromValue(value);
  assert.equal(ev.name, "Test::down");
  assert.ok(ev.args[0] instanceof Count && ev.args[0].value === 1n);
  assert.ok(ev.args[1] instanceof Address && ev.args[1].text === "10.0.0.1");
  const [counted] = await ep.zeekUplinks();
  assert.equal(counted.messages_in, 1);
});

test("ZU-18/08: JS events go up as Zeek's JSON; Zeek's refusal and read_only reach the status subscriber", async (t) => {
  const zeek = await zeekDouble(t, ["--event", "Test::up(count,string)"]);
  const g = await gateway(t, ["--zeek", zeek.url, "--zeek-subscribe", "zeek/", "--zeek-publish", "zeek/up/"]);
  await zeek.next("subscribed");
  // Zeek's error replies are the gateway's own error events: they reach clients that asked
  // for the gateway's statuses. A refusal of this client's publish comes either way.
  const ep = await connected(t, g, { statuses: true });
  await uplinkConnected(ep);
  const status = ep.makeStatusSubscriber(true);

  // An event Zeek declares: exactly the data-message a Zeek WebSocket client sends.
  ep.publish("zeek/up/a", new Event("Test::up", [new Count(5n), "x"]));
  const up = await zeek.next("received");
  assert.equal(up.client, 0);
  assert.equal(up.topic, "zeek/up/a");
  assert.equal(up.name, "Test::up");
  assert.deepEqual(
    up.message,
    eventMessage("zeek/up/a", "Test::up", [
      { "@data-type": "count", data: 5 },
      { "@data-type": "string", data: "x" },
    ]),
  );

  // An event Zeek has no declaration for: Zeek answers with an error object, which the
  // gateway surfaces as an error event.
  ep.publish("zeek/up/a", new Event("Test::nope", [new Count(1n)]));
  const rejected = await zeek.next("rejected");
  assert.deepEqual(rejected.error, {
    type: "error",
    code: "deserialization_failed",
    context: "failed to create Zeek event",
  });
  assert.equal(JSON.parse(rejected.message_text).data[2].data[0].data, "Test::nope");
  const zeekError = await nextStatus(status, "Zeek's error as an error event", (e) => e.type === "error");
  assert.equal(zeekError.code, "deserialization_failed");
  assert.equal(
    zeekError.context,
    `zeek uplink ${zeek.url}: Zeek answered deserialization_failed: failed to create Zeek event`,
  );

  // Not an event, under the publish prefix: refused here, nothing goes to Zeek.
  ep.publish("zeek/up/b", "not an event");
  const refused = await nextStatus(status, "the read_only refusal", (e) => e.type === "error");
  assert.equal(refused.code, "read_only");
  assert.match(refused.context, /zeek\/up\/b.*only events/);
  // An event from Zeek under the publish prefix (another Zeek client's, say) is delivered
  // here and never sent back up (ZU-19).
  const loop = ep.makeSubscriber("zeek/up/");
  await ep.flush();
  await zeekPublish(zeek, eventMessage("zeek/up/loop", "Test::up", [J.count(9), J.string("from Zeek")]));
  const [loopTopic, loopValue] = await loop.get({ timeoutMs: T });
  assert.equal(loopTopic, "zeek/up/loop");
  assert.deepEqual(Event.fromValue(loopValue).args, [new Count(9n), "from Zeek"]);
  // Barrier: the uplink is FIFO, so had the string or Zeek's own event gone up, Zeek would
  // have got it first.
  ep.publish("zeek/up/c", new Event("Test::up", [new Count(6n), "after"]));
  const next = await zeek.next((e) => e.event === "received" || e.event === "rejected");
  assert.equal(next.event, "received");
  assert.equal(next.topic, "zeek/up/c");
  assert.deepEqual(await zeek.command({ cmd: "stats" }, "stats"), {
    event: "stats",
    received: 2,
    rejected: 1,
    forwarded: 0,
  });
  const [info] = await ep.zeekUplinks();
  assert.equal(info.messages_in, 1);
  assert.equal(info.messages_out, 3);
  assert.equal(info.errors, 1);
  assert.equal(info.refused, 1);
  assert.equal(info.last_error, "deserialization_failed: failed to create Zeek event");
});

test("ZU-11..17: Zeek 8.2 table_change_infos frames become read-only zeek: stores cloned in Node", async (t) => {
  const zeek = await zeekDouble(t);
  const g = await gateway(t, ["--zeek", zeek.url]);
  await zeek.next("subscribed");
  const ep = await connected(t, g);
  await uplinkConnected(ep);
  // The events are delivered too: they count what the gateway has taken from Zeek.
  const events = ep.makeSubscriber("zeek/table/");
  await ep.flush();

  // What the tables hold before the fixtures' changes (as Cluster::publish_table would send
  // it), so that their REMOVED and EXPIRED changes have something to remove.
  const before = [
    tableFrame("Test::blocked", "2025-06-02T10:15:30.000", [
      ["TABLE_ELEMENT_NEW", [J.string("old.example.org")]],
    ]),
    tableFrame("Test::seen", "2025-06-02T10:15:30.000", [
      ["TABLE_ELEMENT_NEW", [J.address("10.0.0.9")], J.count(3)],
      ["TABLE_ELEMENT_NEW", [J.address("10.0.0.10")], J.count(4)],
    ]),
    tableFrame("Test::endpoints", "2025-06-02T10:15:30.000", [
      [
        "TABLE_ELEMENT_NEW",
        [J.string("old-1")],
        endpointRecord({
          host: "10.0.0.5", svc: "443/tcp", uptime: "5400s", seen: "2025-06-02T08:15:29.750",
          score: 0.5, tags: ["prod", "web"],
        }),
      ],
    ]),
  ];
  for (const f of before) await zeekPublish(zeek, f);
  await take(events, before.length);
  const blocked = ep.attachClone("zeek:Test::blocked");
  const seen = ep.attachClone("zeek:Test::seen");
  const endpoints = ep.attachClone("zeek:Test::endpoints");
  await Promise.all([blocked.ready(), seen.ready(), endpoints.ready()]);
  // The attach came after the gateway delivered the events, so the snapshots hold them.
  assert.deepEqual(entriesOf(blocked), [["old.example.org", null]]);
  assert.deepEqual(seen.get(new Address("10.0.0.9")), new Count(3n));
  assert.deepEqual(endpoints.get("old-1"), WEB_1);
  const changes = { blocked: [], seen: [], endpoints: [] };
  blocked.onChange((c) => changes.blocked.push([c.type, c.key]));
  seen.onChange((c) => changes.seen.push([c.type, c.key]));
  endpoints.onChange((c) => changes.endpoints.push([c.type, c.key]));

  const files = [
    "table-new-single-index.json",
    "table-two-column-index.json",
    "set-changes.json",
    "table-expired.json",
    "table-record-values.json",
    "table-new-with-network-timestamp.json",
  ];
  for (const f of files) await zeekPublish(zeek, fixture(f));
  const delivered = await take(events, files.length);
  assert.deepEqual(
    delivered.map(([topic, v]) => [topic, Event.fromValue(v)?.name]),
    files.map((f) => [JSON.parse(fixture(f)).topic, "Cluster::table_change_infos"]),
  );
  // The last one carries Zeek's network timestamp as event metadata.
  const [[key, ts]] = Event.fromValue(delivered.at(-1)[1]).metadata;
  assert.deepEqual([key, ts], [new Count(1n), new Timestamp(utcNs(2025, 6, 2, 10, 15, 50, 0))]);

  // table[addr] of count: the key is the single index column (10.0.0.3 from the event with
  // metadata).
  const hosts = ep.attachClone("zeek:Test::hosts");
  await hosts.ready();
  await settle(hosts, "four hosts", () => hosts.size === 4);
  assert.deepEqual(entriesOf(hosts), [
    [new Address("10.0.0.1"), new Count(1n)],
    [new Address("10.0.0.3"), new Count(1n)],
    [new Address("192.168.1.20"), new Count(7n)],
    [new Address("2001:db8::1"), new Count(42n)],
  ]);
  assert.deepEqual(hosts.get(new Address("2001:db8::1")), new Count(42n));

  // table[addr, port] of string: the key is the index vector [Address, Port]; CHANGED puts
  // the new value.
  const services = ep.attachClone("zeek:Test::services");
  await services.ready();
  await settle(services, "two services", () => services.size === 2);
  assert.deepEqual(entriesOf(services), [
    [[new Address("10.0.0.1"), new Port(80, "tcp")], "http"],
    [[new Address("10.0.0.2"), new Port(53, "udp")], "dns-primary"],
  ]);
  assert.equal(services.get([new Address("10.0.0.1"), new Port(80, "tcp")]), "http");

  // set[string]: elements with the value null; REMOVED erases.
  await settle(blocked, "the set's changes", () => blocked.size === 2 && !blocked.has("old.example.org"));
  assert.deepEqual(entriesOf(blocked), [
    ["bad.example.net", null],
    ["evil.example.com", null],
  ]);
  assert.deepEqual(changes.blocked.filter(([type]) => type === "erase"), [["erase", "old.example.org"]]);

  // EXPIRED removes the key (an expire change); the other element stays.
  await settle(seen, "the expiry", () => !seen.has(new Address("10.0.0.9")));
  assert.deepEqual(entriesOf(seen), [[new Address("10.0.0.10"), new Count(4n)]]);
  assert.deepEqual(changes.seen, [["expire", new Address("10.0.0.9")]]);

  // Records are vectors of their fields, an unset &optional field null; REMOVED erases.
  await settle(endpoints, "the record changes", () => endpoints.size === 2 && !endpoints.has("old-1"));
  assert.deepEqual(entriesOf(endpoints), [
    ["dns-1", DNS_1],
    ["web-1", WEB_1],
  ]);
  assert.deepEqual(changes.endpoints, [
    ["insert", "web-1"],
    ["insert", "dns-1"],
    ["erase", "old-1"],
  ]);

  // Read-only: writes through a clone are refused, nothing changes; clients cannot create
  // zeek: stores.
  await rejectsWith(hosts.put(new Address("10.0.0.99"), new Count(1n)), "read_only");
  await rejectsWith(services.erase([new Address("10.0.0.1"), new Port(80, "tcp")]), "read_only");
  await rejectsWith(blocked.clear(), "read_only");
  await rejectsWith(ep.attachMaster("zeek:Test::mine", { backend: "memory" }), "read_only");
  assert.equal(await hosts.awaitIdle(), true);
  assert.equal(hosts.size, 4);
  assert.equal(services.size, 2);
  assert.equal(blocked.size, 2);
});

test("ZU-15/17: after the uplink drops, a clone is told and converges to the table Zeek re-sends", async (t) => {
  const zeek = await zeekDouble(t);
  const g = await gateway(t, ["--zeek", zeek.url]);
  await zeek.next("subscribed");
  const ep = await connected(t, g, { statuses: true });
  await uplinkConnected(ep);
  const events = ep.makeSubscriber("zeek/table/");
  await ep.flush();

  // Test::endpoints as the gateway has it: the fixture's web-1 and dns-1, then web-1 changed
  // and db-1 added, neither of which the snapshot below has.
  await zeekPublish(zeek, fixture("table-record-values.json"));
  const web1Changed = {
    host: "10.0.0.5", svc: "443/tcp", uptime: "7200s", seen: "2025-06-02T10:15:35.000",
    note: "draining", score: 0.1, tags: ["web"],
  };
  const db1 = {
    host: "10.0.0.7", svc: "5432/tcp", uptime: "60s", seen: "2025-06-02T10:15:35.000",
    score: 0.5, tags: [],
  };
  await zeekPublish(
    zeek,
    tableFrame("Test::endpoints", "2025-06-02T10:15:35.010", [
      [
        "TABLE_ELEMENT_CHANGED",
        [J.string("web-1")],
        endpointRecord(web1Changed),
        endpointRecord({
          host: "10.0.0.5", svc: "443/tcp", uptime: "5400s", seen: "2025-06-02T08:15:29.750",
          score: 0.5, tags: ["prod", "web"],
        }),
      ],
      ["TABLE_ELEMENT_NEW", [J.string("db-1")], endpointRecord(db1)],
    ]),
  );
  await take(events, 2);
  const clone = ep.attachClone("zeek:Test::endpoints");
  await clone.ready();
  await settle(clone, "three endpoints", () => clone.size === 3);
  assert.deepEqual(clone.get("db-1"), [
    new Address("10.0.0.7"),
    new Port(5432, "tcp"),
    new Timespan(60n * SECOND),
    new Timestamp(utcNs(2025, 6, 2, 10, 15, 35, 0)),
    null,
    0.5,
    new Set(),
  ]);
  assert.equal(clone.get("web-1")[4], "draining");

  // What the next client gets right after its ack: the whole table, then the marker of
  // zeek/broker-gateway.zeek.
  const snapshot = fixture("publish-table-snapshot.json");
  assert.equal(JSON.parse(snapshot).topic, "zeek/table/Test::endpoints/");
  const set = await zeek.command(
    { cmd: "on_connect", messages: [snapshot, fixture("table-published-marker.json")] },
    "on_connect_set",
  );
  assert.equal(set.messages, 2);

  const status = ep.makeStatusSubscriber(true);
  const seen = [];
  let readableWhileAway;
  clone.onChange((c) => {
    seen.push(c);
    // The error comes before anything of the new connection: the cache still answers.
    if (c.type === "error") readableWhileAway = clone.get("db-1") !== undefined && clone.get("web-1")[4] === "draining";
  });
  assert.deepEqual(await zeek.command({ cmd: "kick" }, "kicked"), { event: "kicked", clients: 1 });

  const uplinkStatus = (e) => e.type === "status" && e.message.startsWith("zeek uplink");
  const lost = await nextStatus(status, "the uplink's peer_lost", uplinkStatus);
  assert.equal(lost.code, "peer_lost");
  assert.equal(lost.message, `zeek uplink ${zeek.url}: lost the connection to Zeek`);
  const added = await nextStatus(status, "the uplink's peer_added", uplinkStatus);
  assert.equal(added.code, "peer_added");
  assert.equal(
    added.message,
    `zeek uplink ${zeek.url}: connected to Zeek endpoint ${zeek.endpoint(1)} (version 8.2.0-double)`,
  );
  const again = await zeek.next("subscribed");
  assert.equal(again.client, 1);
  assert.equal(again.on_connect, 2);

  // Exactly the snapshot: db-1 (not re-sent) is gone, web-1 is Zeek's again.
  await settle(clone, "the re-sent table", () => clone.size === 2 && !clone.has("db-1") && clone.get("web-1")[4] === null);
  assert.deepEqual(entriesOf(clone), [
    ["dns-1", DNS_1],
    ["web-1", WEB_1],
  ]);
  const errors = seen.filter((c) => c.type === "error");
  assert.equal(errors.length, 1, JSON.stringify(errors));
  assert.equal(errors[0].code, "no_such_master");
  assert.equal(errors[0].permanent, false);
  assert.equal(readableWhileAway, true, "the clone answered from its cache while the uplink was down");
  // Then: the source is back (announced once; the JS layer may report it after changes that
  // arrived in the same frame), and only what the re-sent table changed.
  const afterError = seen.slice(seen.indexOf(errors[0]) + 1).map((c) => [c.type, c.key]);
  assert.equal(afterError.filter(([type]) => type === "synced").length, 1, JSON.stringify(afterError));
  assert.deepEqual(
    afterError.filter(([type]) => type !== "synced"),
    [
      ["update", "web-1"],
      ["erase", "db-1"],
    ],
  );
  assert.equal(clone.synced, true);
  const [info] = await ep.zeekUplinks();
  assert.equal(info.connects, 2);
  assert.equal(info.zeek_endpoint, zeek.endpoint(1));
});

test("ZU-06/18/17 in Chromium: a page receives from Zeek, publishes up to Zeek, clones a zeek: table", async (t) => {
  const browser = await launch();
  onEnd(t, () => browser.close());
  const zeek = await zeekDouble(t, ["--event", "Test::up(count,string)"]);
  const g = await gateway(t, ["--web-dir", pageDir, "--zeek", zeek.url, "--zeek-publish", "zeek/up/"]);
  await zeek.next("subscribed");
  await zeekPublish(zeek, fixture("table-two-column-index.json"));

  const { page, problems } = await openPage(browser, `${g.http}/`);
  await page.evaluate(async (url) => window.start(url, ["zeek/"]), g.url);

  // Down: an event from Zeek reaches the page's subscriber (so the uplink is live, for the
  // way up below).
  await zeekPublish(zeek, eventMessage("zeek/down", "Test::down", [J.count(1), J.address("10.0.0.1")]));
  await page.waitForFunction(() => window.received.some(([topic]) => topic === "zeek/down"), null, { timeout: T });
  const down = await page.evaluate(() => window.received.find(([topic]) => topic === "zeek/down")[1]);
  assert.equal(
    down,
    broker.jsToTypedJson([new Count(1n), new Count(1n), ["Test::down", [new Count(1n), new Address("10.0.0.1")]]]),
  );

  // Up: the page's event arrives at Zeek as a Zeek client's data-message.
  await page.evaluate(() => {
    const b = window.broker;
    window.ep.publish("zeek/up/page", new b.Event("Test::up", [new b.Count(7n), "from-page"]));
  });
  const up = await zeek.next("received");
  assert.equal(up.topic, "zeek/up/page");
  assert.deepEqual(
    up.message,
    eventMessage("zeek/up/page", "Test::up", [
      { "@data-type": "count", data: 7 },
      { "@data-type": "string", data: "from-page" },
    ]),
  );

  // The fixture's table, cloned in the page and listed in the document.
  const shown = await page.evaluate(async () => {
    const s = window.ep.attachClone("zeek:Test::services");
    await s.ready();
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the clone never had two entries")), 10_000);
      const check = () => {
        if (s.size === 2) {
          clearTimeout(timer);
          resolve();
        }
      };
      s.onChange(check);
      check();
    });
    const list = document.createElement("ul");
    list.id = "services";
    for (const [[host, svc], name] of s.entries()) {
      const li = document.createElement("li");
      li.textContent = `${host} ${svc} ${name}`;
      list.append(li);
    }
    document.body.append(list);
    let refused = null;
    try {
      await s.put([new window.broker.Address("10.0.0.3"), new window.broker.Port(22, "tcp")], "ssh");
    } catch (e) {
      refused = e.code;
    }
    return { refused };
  });
  assert.deepEqual(await page.locator("#services li").allTextContents(), [
    "10.0.0.1 80/tcp http",
    "10.0.0.2 53/udp dns-primary",
  ]);
  assert.equal(shown.refused, "read_only");
  assert.deepEqual(problems, []);
});

/** `n` free TCP ports on 127.0.0.1 (held until all are known, then released). */
async function freePorts(n) {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise((resolve, reject) => {
      const s = createServer();
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => resolve(s));
    })),
  );
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** The value of an unlabelled counter in a gateway's /metrics. */
async function metric(g, name) {
  const body = await within(fetch(`${g.http}/metrics`).then((r) => r.text()), "/metrics");
  const line = body.split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} in /metrics`);
  return Number(line.split(" ")[1]);
}

test("ZU-19: two peered gateways on one Zeek deliver each of 1,000 Zeek events once to each subscriber", async (t) => {
  const N = 1000;
  const zeek = await zeekDouble(t);
  const [p1, p2] = await freePorts(2);
  const gateways = await Promise.all([
    gateway(t, ["--zeek", zeek.url, "--peer", `127.0.0.1:${p2}`, "--peer-retry", "0.2"], `127.0.0.1:${p1}`),
    gateway(t, ["--zeek", zeek.url, "--peer", `127.0.0.1:${p1}`, "--peer-retry", "0.2"], `127.0.0.1:${p2}`),
  ]);
  const subscribers = [];
  const publishers = [];
  for (const g of gateways) {
    const ep = await connected(t, g);
    subscribers.push(ep.makeSubscriber("zeek/"));
    await ep.flush();
    publishers.push(await connected(t, g));
  }
  // The gateways dial each other; one of the two connections is closed as redundant
  // (ZB-63) at some point, possibly during the burst: nothing in flight on it is lost.
  // Both uplinks acknowledged, and each gateway knows the other's subscription.
  for (const c of publishers) await uplinkConnected(c);
  await until("both gateways subscribed on Zeek", async () => {
    const { clients } = await zeek.command({ cmd: "clients" }, "clients");
    return clients.length === 2 && clients.every((c) => c.topics.length === 1 && c.topics[0] === "zeek/");
  });
  for (const c of publishers) {
    await until("the peer's zeek/ subscription", async () => (await c.peerSubscriptions()).includes("zeek/"));
  }

  const done = await zeek.command({ cmd: "burst", topic: "zeek/b", name: "Test::b", count: N }, "burst_done");
  assert.equal(done.clients, 2);
  assert.equal(done.sent, N);

  // Everything each subscriber gets until both barriers: first every event at least once...
  const got = subscribers.map(() => []);
  const read = async (k, what, enough) => {
    const deadline = performance.now() + 30_000;
    while (!enough()) {
      const left = deadline - performance.now();
      const m = left > 0 ? await subscribers[k].get({ timeoutMs: Math.ceil(left) }) : null;
      if (m === null) throw new Error(`subscriber ${k + 1}: no ${what} within 30 s (${got[k].length} messages)`);
      got[k].push(m);
    }
  };
  const distinct = (k) => new Set(got[k].filter(([topic]) => topic === "zeek/b").map(([, v]) => v[2][1][0].value)).size;
  await Promise.all(subscribers.map((_, k) => read(k, `all ${N} events`, () => distinct(k) === N)));
  for (const c of publishers) {
    await until("each uplink to have taken the burst", async () => (await c.zeekUplinks())[0].messages_in === N);
  }
  // ...then a barrier from a client of each gateway. Links are FIFO: a subscriber that has
  // both has had every copy either gateway could still pass on.
  publishers.forEach((c, k) => c.publish("zeek/sync", `g${k + 1}`));
  const syncs = (k) => got[k].filter(([topic]) => topic === "zeek/sync").length;
  await Promise.all(subscribers.map((_, k) => read(k, "both barriers", () => syncs(k) === 2)));

  for (const [k, messages] of got.entries()) {
    const events = messages.filter(([topic]) => topic === "zeek/b");
    const counts = events.map(([, v]) => {
      const ev = Event.fromValue(v);
      assert.equal(ev.name, "Test::b");
      assert.ok(ev.args[1] instanceof Timestamp);
      return Number(ev.args[0].value);
    });
    assert.equal(counts.length, N, `gateway ${k + 1}: ${counts.length} deliveries of ${N} events`);
    assert.deepEqual(counts, Array.from({ length: N }, (_, i) => i), `gateway ${k + 1}: once each, in order`);
    assert.deepEqual(
      messages.filter(([topic]) => topic === "zeek/sync").map(([, v]) => v).sort(),
      ["g1", "g2"],
    );
  }
  // Each gateway had the other's copies too (over the peering) and dropped them.
  for (const g of gateways) assert.equal(await metric(g, "broker_uplink_duplicates_total"), N);
});

// The Zeek double as a Node client sees it (the Rust tests in tests/tests/zeek_double.rs
// cover it in depth): ack, fixed subscriptions, forwarding, Zeek's error objects.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { startZeekDouble, eventMessage } from "./zeek-double.mjs";
import { within } from "./gateway.mjs";

/** Opens a WebSocket and queues what it receives, for `recv`. */
async function connect(url, headers = {}) {
  const ws = new WebSocket(url, { headers });
  const queue = [];
  const waiting = [];
  ws.on("message", (data) => {
    const text = data.toString();
    const w = waiting.shift();
    if (w) w(text);
    else queue.push(text);
  });
  await within(new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  }), "the WebSocket to open");
  const recv = () =>
    within(queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiting.push(r)), "a message");
  const closed = new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  return { ws, recv, closed };
}

function ping(topic, text, n) {
  return JSON.stringify(
    eventMessage(topic, "ping", [
      { "@data-type": "string", data: text },
      { "@data-type": "count", data: n },
    ]),
  );
}

test("ZU-04/07/08: ack, forwarding to others only, Zeek's error objects", async (t) => {
  const zeek = await startZeekDouble(["--event", "ping(string,count)"]);
  t.after(() => zeek.stop());
  const a = await connect(zeek.url, { "X-Application-Name": "node-test" });
  a.ws.send(JSON.stringify(["/topic/"]));
  assert.deepEqual(JSON.parse(await a.recv()), {
    type: "ack",
    endpoint: zeek.endpoint(0),
    version: "8.2.0-double",
  });
  assert.equal((await zeek.next("subscribed")).client, 0);
  const b = await connect(zeek.url);
  b.ws.send(JSON.stringify(["/topic/x"]));
  assert.equal(JSON.parse(await b.recv()).endpoint, zeek.endpoint(1));
  await zeek.next("subscribed");

  const msg = ping("/topic/x/1", "hello", 1);
  a.ws.send(msg);
  assert.equal(await b.recv(), msg);
  const received = await zeek.next("received");
  assert.equal(received.delivered, 1);

  a.ws.send(JSON.stringify({ type: "data-message", topic: "/topic/x", "@data-type": "count", data: 1 }));
  assert.equal(
    await a.recv(),
    '{"type":"error","code":"deserialization_failed","context":"failed to create Zeek event"}',
  );
  // A's next message is the double's publish, not an echo of its own ping.
  const delivered = await zeek.command({ cmd: "publish", message: ping("/topic/a", "marker", 2) }, "published");
  assert.equal(delivered.delivered, 1);
  assert.equal(JSON.parse(await a.recv()).topic, "/topic/a");
  const { clients } = await zeek.command({ cmd: "clients" }, "clients");
  assert.deepEqual(clients.map((c) => c.app_name), ["node-test", null]);

  assert.deepEqual(await zeek.command({ cmd: "kick" }, "kicked"), { event: "kicked", clients: 2 });
  const end = await within(a.closed, "the kicked connection to close");
  assert.equal(end.code, 1006, "no Close frame");
});

test("ZU-03: another path gets invalid_uri and a close", async (t) => {
  const zeek = await startZeekDouble();
  t.after(() => zeek.stop());
  const c = await connect(zeek.url.replace("/v1/", "/v0/"));
  assert.equal(
    await c.recv(),
    '{"type":"error","code":"invalid_uri","context":"Invalid URI - use /v1/messages/json"}',
  );
  assert.deepEqual(await within(c.closed, "the close"), {
    code: 1008,
    reason: "Invalid URI - use /v1/messages/json",
  });
});

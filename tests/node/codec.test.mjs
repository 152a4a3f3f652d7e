// The npm package in pkg/ on Node 20 with no flags: every Broker type round-trips through the
// wasm codec unchanged (ZB-25, ZB-39), frames convert between their two forms, and bad input
// fails with a typed error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import * as broker from "../../pkg/node.mjs";

const v = (type, data) => `{"@data-type":"${type}","data":${data}}`;

// One value of every type, with the extremes that JS numbers cannot hold.
const EVERY_TYPE = [
  v("none", "{}"),
  v("boolean", "true"),
  v("count", "18446744073709551615"),
  v("count", "0"),
  v("integer", "-9223372036854775808"),
  v("integer", "9223372036854775807"),
  v("real", "-7.5"),
  v("real", "1.7976931348623157e+308"),
  v("real", "5e-324"),
  v("string", '"foo\\n\\"bar ü 🎉"'),
  v("string", "[255,0,97]"),
  v("address", '"192.168.1.1"'),
  v("address", '"2001:db8::"'),
  v("subnet", '"10.0.0.0/8"'),
  v("subnet", '"2001:db8::/32"'),
  v("port", '"8080/tcp"'),
  v("port", '"53/udp"'),
  v("port", '"0/icmp"'),
  v("port", '"1/?"'),
  v("timestamp", '"2014-07-09T10:16:44.000"'),
  v("timestamp", '"1969-12-31T23:59:58.000000001"'),
  v("timespan", '"1500ms"'),
  v("timespan", '"-999ns"'),
  v("enum-value", '"Log::WRITER_ASCII"'),
  v("set", `[${v("count", "1")},${v("string", '"a"')}]`),
  v("table", `[{"key":${v("count", "18446744073709551615")},"value":${v("vector", "[]")}}]`),
  v("vector", `[${v("vector", `[${v("set", "[]")}]`)},${v("none", "{}")}]`),
];

test("every type round-trips through the wasm codec unchanged", () => {
  for (const text of EVERY_TYPE) {
    const bytes = broker.encodeValue(text);
    assert.ok(bytes instanceof Uint8Array && bytes.length > 0);
    assert.equal(broker.decodeValue(bytes), text);
  }
});

test("a vector of every type round-trips as one value", () => {
  const all = v("vector", `[${EVERY_TYPE.join(",")}]`);
  assert.equal(broker.decodeValue(broker.encodeValue(all)), all);
});

test("a Zeek event with counts keeps every bit (ZB-34)", () => {
  const event = v("vector", `[${v("count", "1")},${v("count", "1")},${v("vector", `[${v("string", '"ping"')},${v("vector", `[${v("count", "9007199254740993")}]`)}]`)}]`);
  const msg = broker.zeekDataMessage("/topic", event);
  assert.equal(msg, `{"type":"data-message","topic":"/topic",${event.slice(1)}`);
  assert.equal(broker.parseZeekDataMessage(msg), msg);
  assert.equal(broker.valueToString(event), "(1, 1, (ping, (9007199254740993)))");
});

test("native frames convert between binary and JSON forms", () => {
  const frame = `{"v":1,"messages":[{"publish":{"topic":"/t","data":${v("vector", `[${EVERY_TYPE.join(",")}]`)}}},{"subscribe":{"topics":["/a","/b"]}},"bye"]}`;
  const bytes = broker.frameFromJson("client", frame);
  assert.equal(bytes[0], 1, "protocol version byte");
  assert.equal(broker.frameToJson("client", bytes), frame);
  const server = '{"v":1,"messages":[{"error":{"code":"invalid_topic_key","context":"bad"}}]}';
  assert.equal(broker.frameToJson("server", broker.frameFromJson("server", server)), server);
});

test("bad input throws a BrokerError with a stable code", () => {
  const cases = [
    [() => broker.encodeValue('{"@data-type":"count","data":-1}'), "invalid_json"],
    [() => broker.encodeValue('{"@data-type":"phone","data":"555"}'), "invalid_json"],
    [() => broker.encodeValue(v("set", `[${v("count", "1")},${v("count", "1")}]`)), "invalid_json"],
    [() => broker.decodeValue(new Uint8Array([99])), "deserialization_failed"],
    [() => broker.decodeValue(new Uint8Array([14, 0xff, 0xff, 0xff, 0xff, 0x0f])), "deserialization_failed"],
    [() => broker.frameToJson("client", new Uint8Array([7, 0, 0, 0, 0])), "peer_incompatible"],
    [() => broker.frameToJson("nope", new Uint8Array([1, 0, 0, 0, 0])), "invalid_data"],
    [() => broker.parseZeekDataMessage("How is it going?"), "deserialization_failed"],
  ];
  const names = new Map(broker.errorCodes().map(([n, name]) => [name, n]));
  for (const [fn, code] of cases) {
    assert.throws(fn, (e) => e instanceof Error && e.name === "BrokerError" && e.code === code);
    assert.ok(names.has(code), `${code} is in the core's table`);
  }
  // The table comes from the wasm build: Broker's numbering (ZB-22) plus `unauthorized` and
  // `read_only`.
  assert.equal(names.size, 44);
  assert.equal(names.get("deserialization_failed"), 37);
  assert.equal(names.get("unauthorized"), 42);
  assert.equal(names.get("read_only"), 43);
});

test("the browser build also loads (initSync with the wasm bytes)", async () => {
  const web = await import("../../pkg/dist/web/broker_wasm.js");
  const wasm = await readFile(new URL("../../pkg/dist/web/broker_wasm_bg.wasm", import.meta.url));
  web.initSync({ module: wasm });
  assert.equal(web.version(), broker.version());
  const text = v("count", "18446744073709551615");
  assert.equal(web.decodeValue(web.encodeValue(text)), text);
});

test("the direct JS encoder writes exactly what the Data path writes", () => {
  const b = broker;
  const values = [
    null, undefined, true, false, 0, -0, 1.5, NaN, Infinity, "", "ping ü", 0n, -1n, 9223372036854775807n,
    -9223372036854775808n, new b.Count(0n), new b.Count(18446744073709551615n), [], ["ping", new b.Count(300n)],
    [[[1, "x", [null]]]], new Uint8Array([1, 2]), new b.Port(80, "tcp"), new Set([1n]), new Map([["k", 2]]),
    new b.Timestamp(5n), [new b.Address("::1"), new b.EnumValue("E")],
  ];
  for (const v of values) {
    const direct = b.encodeJs(v);
    const viaData = b.encodeValue(b.jsToTypedJson(Number.isNaN(v) || v === Infinity ? 0 : v));
    if (Number.isNaN(v) || v === Infinity) {
      // JSON cannot carry these reals; compare with the decoded value instead.
      const back = b.decodeJs(direct);
      assert.ok(Object.is(back, v), String(v));
      continue;
    }
    assert.deepEqual([...direct], [...viaData], String(v));
  }
});

test("short strings kept for reuse come back right, also when many share a slot", () => {
  // More distinct short strings than the wasm side keeps (512 slots), interleaved with
  // repeats, non-UTF-8 bytes and strings just over the kept length: each decodes to itself.
  const strings = [];
  for (let i = 0; i < 3000; i++) strings.push(`s${i}`, "ping", "x".repeat(i % 40), `é${i % 7}`);
  const values = [...strings, new Uint8Array([255, 0, 97]), "", "y".repeat(32), "y".repeat(33)];
  for (const v of values) {
    const back = broker.decodeJs(broker.encodeJs(v));
    if (v instanceof Uint8Array) assert.deepEqual(back, v);
    else assert.equal(back, v);
  }
  // The same values inside one vector (one conversion, many lookups).
  assert.deepEqual(broker.decodeJs(broker.encodeJs(strings)), strings);
});

test("counts come back exact on both sides of 2^53 (number and bigint paths)", () => {
  for (const n of [0n, 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 64n - 1n]) {
    const back = broker.decodeJs(broker.encodeJs([new broker.Count(n)]))[0];
    assert.ok(back instanceof broker.Count, String(n));
    assert.equal(back.value, n);
  }
});

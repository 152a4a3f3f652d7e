// Rendering of Broker values (as the npm package hands them to JS) and parsing of values typed
// into the dashboard's forms. No protocol logic: only the package's value classes.
import {
  Count, Address, Subnet, Port, Timestamp, Timespan, EnumValue, Event, typedJsonToJs,
} from "/pkg/index.js";

const MAX_ITEMS = 50;

/** The Broker type name of a received value. */
export function typeOf(v) {
  if (v === null || v === undefined) return "none";
  switch (typeof v) {
    case "boolean": return "bool";
    case "bigint": return "int";
    case "number": return "real";
    case "string": return "string";
  }
  if (v instanceof Uint8Array) return "bytes";
  if (v instanceof Count) return "count";
  if (v instanceof Address) return "addr";
  if (v instanceof Subnet) return "subnet";
  if (v instanceof Port) return "port";
  if (v instanceof Timestamp) return "time";
  if (v instanceof Timespan) return "interval";
  if (v instanceof EnumValue) return "enum";
  if (v instanceof Event) return "event";
  if (v instanceof Date) return "time";
  if (Array.isArray(v)) return Event.fromValue(v) ? "event" : "vector";
  if (v instanceof Set) return "set";
  if (v instanceof Map) return "table";
  return "other";
}

/** A duration in ns as a short human text ("1.5 s", "250 ms", "-3 µs"). */
export function spanText(ns) {
  const neg = ns < 0n;
  const a = neg ? -ns : ns;
  const n = Number(a);
  let t;
  if (n >= 86_400e9) t = `${+(n / 86_400e9).toFixed(2)} d`;
  else if (n >= 3600e9) t = `${+(n / 3600e9).toFixed(2)} h`;
  else if (n >= 60e9) t = `${+(n / 60e9).toFixed(2)} min`;
  else if (n >= 1e9) t = `${+(n / 1e9).toFixed(3)} s`;
  else if (n >= 1e6) t = `${+(n / 1e6).toFixed(3)} ms`;
  else if (n >= 1e3) t = `${+(n / 1e3).toFixed(3)} µs`;
  else t = `${n} ns`;
  return neg ? `-${t}` : t;
}

/** A timestamp as ISO 8601 in UTC with the sub-millisecond digits kept. */
export function timeText(ts) {
  const ns = ts instanceof Date ? BigInt(ts.getTime()) * 1_000_000n : ts.ns;
  const ms = ns / 1_000_000n - (ns < 0n && ns % 1_000_000n !== 0n ? 1n : 0n);
  const d = new Date(Number(ms));
  if (Number.isNaN(d.getTime())) return `${ns}ns`;
  const rest = ns - ms * 1_000_000n;
  const iso = d.toISOString();
  return rest === 0n ? iso : `${iso.slice(0, -1)}${rest.toString().padStart(6, "0")}Z`;
}

function realText(n) {
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return `${n}.0`;
  return String(n);
}

function bytesText(b) {
  let s = "";
  for (const x of b.subarray(0, 64)) s += x >= 0x20 && x < 0x7f && x !== 0x5c ? String.fromCharCode(x) : `\\x${x.toString(16).padStart(2, "0")}`;
  return `b"${s}${b.length > 64 ? "…" : ""}"`;
}

function list(items, f) {
  const out = [];
  let i = 0;
  for (const x of items) {
    if (i++ === MAX_ITEMS) {
      out.push("…");
      break;
    }
    out.push(f(x));
  }
  return out.join(", ");
}

/** A one-line, readable text of any received value (Zeek's notation where it has one). */
export function valueText(v) {
  switch (typeOf(v)) {
    case "none": return "nil";
    case "bool": return v ? "T" : "F";
    case "int": return v.toString();
    case "real": return realText(v);
    case "string": return JSON.stringify(v);
    case "bytes": return bytesText(v);
    case "count": return v.value.toString();
    case "addr":
    case "subnet": return v.text;
    case "port": return `${v.number}/${v.protocol}`;
    case "time": return timeText(v);
    case "interval": return spanText(v.ns);
    case "enum": return v.name;
    case "event": {
      const e = v instanceof Event ? v : Event.fromValue(v);
      return `${e.name}(${list(e.args, valueText)})`;
    }
    case "vector": return `[${list(v, valueText)}]`;
    case "set": return `{${list(v, valueText)}}`;
    case "table": return `{${list(v, ([k, x]) => `${valueText(k)} → ${valueText(x)}`)}}`;
    default: return String(v);
  }
}

/**
 * Fills `el` with the value: a type badge and the text; events as name + arguments.
 * Cheap enough to run for every visible row every frame.
 */
export function renderValue(el, v) {
  const type = typeOf(v);
  const text = valueText(v);
  el.textContent = "";
  const badge = document.createElement("span");
  badge.className = `badge t-${type}`;
  badge.textContent = type;
  const body = document.createElement("span");
  body.className = `v t-${type}`;
  body.textContent = text;
  el.append(badge, body);
  el.title = text.length > 60 ? text : "";
}

/** Value types the forms offer, with a hint of the syntax. */
export const INPUT_TYPES = [
  ["string", "string", "text"],
  ["count", "count", "e.g. 42"],
  ["int", "integer", "e.g. -5"],
  ["real", "real", "e.g. 1.5"],
  ["bool", "bool", "true / false"],
  ["addr", "address", "e.g. 10.0.0.1"],
  ["subnet", "subnet", "e.g. 10.0.0.0/8"],
  ["port", "port", "e.g. 80/tcp"],
  ["time", "timestamp", "ISO 8601 or now"],
  ["interval", "timespan", "e.g. 1.5s, 250ms"],
  ["enum", "enum", "e.g. Log::WRITER_ASCII"],
  ["json", "JSON (vectors, tables)", "e.g. [1, \"a\", {\"k\": true}]"],
  ["event", "Zeek event", "name(JSON args), e.g. ping(\"hi\", 1)"],
  ["typed", "typed JSON", "{\"@data-type\":\"count\",\"data\":1}"],
];

/** Fills a <select> with the input types. */
export function fillTypeSelect(select, initial = "string") {
  for (const [value, label] of INPUT_TYPES) select.add(new Option(label, value, false, value === initial));
}

export function typeHint(type) {
  return INPUT_TYPES.find(([v]) => v === type)?.[2] ?? "";
}

const UNITS = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, min: 60e9, h: 3600e9, d: 86_400e9 };

/** Plain JSON to Broker values: integers become integers (bigint), objects tables. */
function fromJson(j) {
  if (j === null) return null;
  if (typeof j === "number") return Number.isInteger(j) ? BigInt(j) : j;
  if (Array.isArray(j)) return j.map(fromJson);
  if (typeof j === "object") return new Map(Object.entries(j).map(([k, x]) => [k, fromJson(x)]));
  return j;
}

/** Parses the text of a form field as a value of `type`; throws an Error with a readable message. */
export function parseValue(type, text) {
  const t = text.trim();
  const fail = (what) => {
    throw new Error(`not ${what}: ${JSON.stringify(text)}`);
  };
  switch (type) {
    case "string": return text;
    case "count": {
      if (!/^\d+$/.test(t)) fail("a count");
      return new Count(BigInt(t));
    }
    case "int": {
      if (!/^[+-]?\d+$/.test(t)) fail("an integer");
      return BigInt(t);
    }
    case "real": {
      const n = Number(t);
      if (t === "" || Number.isNaN(n)) fail("a real");
      return n;
    }
    case "bool": {
      if (/^(true|t|1|yes)$/i.test(t)) return true;
      if (/^(false|f|0|no)$/i.test(t)) return false;
      return fail("a bool");
    }
    case "addr": return new Address(t);
    case "subnet": return new Subnet(t);
    case "port": {
      const m = /^(\d+)(?:\/(tcp|udp|icmp|\?))?$/.exec(t);
      if (!m) fail("a port (80/tcp)");
      return new Port(Number(m[1]), m[2] ?? "tcp");
    }
    case "time": {
      if (t === "" || t === "now") return Timestamp.fromDate(new Date());
      if (/^\d+$/.test(t)) return new Timestamp(BigInt(t));
      const d = new Date(t);
      if (Number.isNaN(d.getTime())) fail("a timestamp");
      return Timestamp.fromDate(d);
    }
    case "interval": {
      const m = /^(-?\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|min|h|d)?$/.exec(t);
      if (!m) fail("a timespan (1.5s)");
      return new Timespan(BigInt(Math.round(Number(m[1]) * UNITS[m[2] ?? "s"])));
    }
    case "enum": return new EnumValue(t);
    case "json": {
      try {
        return fromJson(JSON.parse(t));
      } catch {
        return fail("JSON");
      }
    }
    case "event": {
      const m = /^([A-Za-z_][\w:]*)\s*(?:\((.*)\))?$/s.exec(t);
      if (!m) fail("an event: name(args)");
      let args = [];
      if (m[2] !== undefined && m[2].trim() !== "") {
        try {
          args = fromJson(JSON.parse(`[${m[2]}]`));
        } catch {
          fail("JSON arguments");
        }
      }
      return new Event(m[1], args);
    }
    case "typed": return typedJsonToJs(t);
    default: return fail(type);
  }
}

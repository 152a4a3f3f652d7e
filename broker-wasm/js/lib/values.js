// Value classes for the Broker types JavaScript has no type for (design decision 8).
// Every instance carries a `__broker` tag that the wasm core reads when publishing.

const NS_PER_MS = 1_000_000n;

/** An unsigned 64-bit count (Broker `count`). `value` is a bigint in 0..2^64-1. */
export class Count {
  /** @param {bigint | number} value */
  constructor(value) {
    const v = typeof value === "bigint" ? value : BigInt(value);
    if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new RangeError(`count out of range: ${v}`);
    /** @type {bigint} */
    this.value = v;
  }
  get __broker() { return "count"; }
  toString() { return this.value.toString(); }
  toJSON() { return this.value.toString(); }
  valueOf() { return this.value; }
}

/** An IPv4 or IPv6 address (Broker `address`), kept in its canonical text form. */
export class Address {
  /** @param {string} text e.g. "192.168.1.1" or "2001:db8::" */
  constructor(text) {
    /** @type {string} */
    this.text = String(text);
  }
  get __broker() { return "address"; }
  toString() { return this.text; }
  toJSON() { return this.text; }
}

/** A subnet (Broker `subnet`), e.g. "10.0.0.0/8". */
export class Subnet {
  /** @param {string} text */
  constructor(text) {
    /** @type {string} */
    this.text = String(text);
  }
  get __broker() { return "subnet"; }
  toString() { return this.text; }
  toJSON() { return this.text; }
}

/** A transport port (Broker `port`): number and protocol ("tcp", "udp", "icmp" or "?"). */
export class Port {
  /** @param {number} number @param {"tcp"|"udp"|"icmp"|"?"} [protocol] */
  constructor(number, protocol = "tcp") {
    /** @type {number} */
    this.number = number;
    /** @type {string} */
    this.protocol = protocol;
  }
  get __broker() { return "port"; }
  toString() { return `${this.number}/${this.protocol}`; }
  toJSON() { return this.toString(); }
}

/** A point in time with nanosecond precision (Broker `timestamp`); `ns` since the epoch. */
export class Timestamp {
  /** @param {bigint} ns */
  constructor(ns) {
    /** @type {bigint} */
    this.ns = BigInt(ns);
  }
  get __broker() { return "timestamp"; }
  /** @param {Date} date */
  static fromDate(date) { return new Timestamp(BigInt(date.getTime()) * NS_PER_MS); }
  /** The time as a Date (millisecond precision). */
  toDate() { return new Date(Number(this.ns / NS_PER_MS)); }
  toString() { return `${this.ns}ns`; }
  toJSON() { return this.toString(); }
}

/** A signed duration with nanosecond precision (Broker `timespan`). */
export class Timespan {
  /** @param {bigint} ns */
  constructor(ns) {
    /** @type {bigint} */
    this.ns = BigInt(ns);
  }
  get __broker() { return "timespan"; }
  /** @param {number} ms */
  static fromMillis(ms) { return new Timespan(BigInt(Math.round(ms * 1e6))); }
  /** The duration in milliseconds (as a number). */
  toMillis() { return Number(this.ns) / 1e6; }
  toString() { return `${this.ns}ns`; }
  toJSON() { return this.toString(); }
}

/** An enum value (Broker `enum_value`), e.g. "Log::WRITER_ASCII". */
export class EnumValue {
  /** @param {string} name */
  constructor(name) {
    /** @type {string} */
    this.name = String(name);
  }
  get __broker() { return "enum"; }
  toString() { return this.name; }
  toJSON() { return this.name; }
}

/**
 * A Zeek event (ZB-34): name, arguments and optional metadata `[[key, value], ...]`.
 * Published as `[1, 1, [name, args, metadata?]]`; received events arrive as that array,
 * which `Event.fromValue` turns back into an Event.
 */
export class Event {
  /** @param {string} name @param {unknown[]} [args] @param {Array<[number|bigint|Count, unknown]>} [metadata] */
  constructor(name, args = [], metadata = undefined) {
    this.name = name;
    this.args = args;
    this.metadata = metadata;
  }
  get __broker() { return "event"; }
  /**
   * The event carried by a received value, or `null` if it is not a valid Zeek event.
   * @param {unknown} value
   */
  static fromValue(value) {
    const isCount = (v, n) => v instanceof Count && v.value === n;
    if (!Array.isArray(value) || value.length < 3) return null;
    if (!isCount(value[0], 1n) || !isCount(value[1], 1n)) return null;
    const content = value[2];
    if (!Array.isArray(content) || content.length < 2) return null;
    const [name, args, meta] = content;
    if (typeof name !== "string" || !Array.isArray(args)) return null;
    let metadata;
    if (meta !== undefined) {
      if (!Array.isArray(meta)) return null;
      for (const e of meta) {
        if (!Array.isArray(e) || e.length !== 2 || !(e[0] instanceof Count)) return null;
        if (e[0].value === 1n && !(e[1] instanceof Timestamp)) return null;
      }
      metadata = meta;
    }
    return new Event(name, args, metadata);
  }
}

/** Shorthands: `count(5)`, `port(80, "tcp")`, ... */
export const count = (v) => new Count(v);
export const address = (t) => new Address(t);
export const subnet = (t) => new Subnet(t);
export const port = (n, p) => new Port(n, p);
export const timestamp = (ns) => new Timestamp(ns);
export const timespan = (ns) => new Timespan(ns);
export const enumValue = (n) => new EnumValue(n);

/**
 * Kind codes for the wasm core's classifier (must match KIND_* in src/wasm/convert.rs):
 * 0 none, 1 false, 2 true, 3 number, 4 string, 5 bigint, 6 array, 7 Count, 255 other.
 */
function kind(v) {
  switch (typeof v) {
    case "number": return 3;
    case "string": return 4;
    case "bigint": return 5;
    case "boolean": return v ? 2 : 1;
    case "undefined": return 0;
    case "object":
      if (v === null) return 0;
      if (Array.isArray(v)) return 6;
      if (v instanceof Count) return 7;
      return 255;
    default:
      return 255;
  }
}

/** The constructors the wasm core uses for received values, and its classifier. */
export const factories = {
  kind,
  count: (v) => new Count(v),
  // A count that fits a double exactly: one call from wasm instead of two (BigInt, then Count).
  countNumber: (n) => new Count(BigInt(n)),
  address: (t) => new Address(t),
  subnet: (t) => new Subnet(t),
  port: (n, p) => new Port(n, p),
  timestamp: (ns) => new Timestamp(ns),
  timespan: (ns) => new Timespan(ns),
  enumValue: (n) => new EnumValue(n),
};

// Types of the broker-wasm package (browser and Node entries share them).

/** Loads the wasm core; required once in browsers before using Endpoint, a no-op in Node. */
export function init(input?: unknown): Promise<void>;

/** An error with a stable `code`: a Broker error-code name such as `peer_unavailable`. */
export class BrokerError extends Error {
  readonly code: string;
  constructor(code: string, message: string);
}

/** An unsigned 64-bit count (Broker `count`). */
export class Count {
  readonly value: bigint;
  constructor(value: bigint | number);
}
/** An IPv4 or IPv6 address (Broker `address`). */
export class Address {
  readonly text: string;
  constructor(text: string);
}
/** A subnet (Broker `subnet`), e.g. "10.0.0.0/8". */
export class Subnet {
  readonly text: string;
  constructor(text: string);
}
/** A transport port (Broker `port`). */
export class Port {
  readonly number: number;
  readonly protocol: "tcp" | "udp" | "icmp" | "?";
  constructor(number: number, protocol?: "tcp" | "udp" | "icmp" | "?");
}
/** A point in time, nanoseconds since the epoch (Broker `timestamp`). */
export class Timestamp {
  readonly ns: bigint;
  constructor(ns: bigint);
  static fromDate(date: Date): Timestamp;
  toDate(): Date;
}
/** A signed duration in nanoseconds (Broker `timespan`). */
export class Timespan {
  readonly ns: bigint;
  constructor(ns: bigint);
  static fromMillis(ms: number): Timespan;
  toMillis(): number;
}
/** An enum value (Broker `enum_value`). */
export class EnumValue {
  readonly name: string;
  constructor(name: string);
}
/** A Zeek event: name, arguments, optional metadata pairs. */
export class Event {
  name: string;
  args: BrokerValue[];
  metadata?: Array<[number | bigint | Count, BrokerValue]>;
  constructor(name: string, args?: BrokerValue[], metadata?: Array<[number | bigint | Count, BrokerValue]>);
  /** The event carried by a received value, or null if it is not a valid Zeek event. */
  static fromValue(value: BrokerValue): Event | null;
}

export function count(v: bigint | number): Count;
export function address(text: string): Address;
export function subnet(text: string): Subnet;
export function port(n: number, protocol?: "tcp" | "udp" | "icmp" | "?"): Port;
export function timestamp(ns: bigint): Timestamp;
export function timespan(ns: bigint): Timespan;
export function enumValue(name: string): EnumValue;

/** Any value that maps to Broker data (see the README's mapping table). */
export type BrokerValue =
  | null
  | undefined
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | Count
  | Address
  | Subnet
  | Port
  | Timestamp
  | Timespan
  | EnumValue
  | Event
  | Date
  | BrokerValue[]
  | Set<BrokerValue>
  | Map<BrokerValue, BrokerValue>;

/** A status or error event (ZB-20). */
export type StatusEvent =
  | { type: "status"; code: string; codeNumber?: number; message: string; node?: string; address?: string; port?: number }
  | { type: "error"; code: string; codeNumber?: number; context: string };

/** A queue of `[topic, value]` messages. */
export class Subscriber {
  /** Messages dropped because the queue was full. */
  readonly dropped: number;
  /** Messages that can be taken without waiting. */
  readonly available: number;
  /** The next message; `null` after `timeoutMs`. Rejects with code `shutting_down` once closed. */
  get(options?: { timeoutMs?: number }): Promise<[string, BrokerValue] | null>;
  /** Every message queued now. */
  poll(): Array<[string, BrokerValue]>;
  addTopic(topic: string): void;
  removeTopic(topic: string): void;
  close(): void;
  [Symbol.asyncIterator](): AsyncIterator<[string, BrokerValue]>;
}

/** A queue of status and error events. */
export class StatusSubscriber {
  readonly receiveStatuses: boolean;
  readonly available: number;
  get(options?: { timeoutMs?: number }): Promise<StatusEvent | null>;
  poll(): StatusEvent[];
  close(): void;
  [Symbol.asyncIterator](): AsyncIterator<StatusEvent>;
}

/** A change of a clone (ZB-62). */
export type StoreChange =
  | { type: "insert"; key: BrokerValue; value: BrokerValue; expiry?: Timestamp }
  | { type: "update"; key: BrokerValue; old: BrokerValue; value: BrokerValue; expiry?: Timestamp }
  | { type: "erase"; key: BrokerValue }
  | { type: "expire"; key: BrokerValue }
  /** The master is a new instance (it restarted); the changes after this are the difference. */
  | { type: "reset" }
  /** A snapshot was applied: the clone is in sync. */
  | { type: "synced" }
  /** Attaching failed (e.g. `no_such_master`); retried every resync interval. */
  | { type: "error"; code: string; message: string };

/** Broker's clone parameters (ZB-47), in seconds. */
export interface CloneOptions {
  /** Pause between attach attempts while no master answers (default 10). */
  resyncInterval?: number;
  /** How long reads keep answering after the connection is lost (default 300; negative = forever). */
  staleInterval?: number;
  /** How long writes made while disconnected wait before failing with `request_timeout` (default 120). */
  mutationBufferInterval?: number;
}

/** The keys of a clone as a live view. */
export interface KeysView extends Iterable<BrokerValue> {
  readonly size: number;
  has(key: BrokerValue): boolean;
  /** Up to `limit` keys in key order from position `start`. */
  slice(start?: number, limit?: number): BrokerValue[];
}

/**
 * A clone of a store: local synchronous reads, writes that go to the master as promises,
 * and change events. Reads throw `stale_data` before the first snapshot and after the stale
 * interval without a master.
 */
export class Store {
  readonly name: string;
  /** True while in sync with the master. */
  readonly synced: boolean;
  readonly size: number;
  /** Live view of the keys. */
  readonly keys: KeysView;
  /** Resolves once the first snapshot arrived. */
  ready(timeoutMs?: number): Promise<Store>;
  get(key: BrokerValue): BrokerValue | undefined;
  has(key: BrokerValue): boolean;
  expiry(key: BrokerValue): Timestamp | undefined;
  entries(start?: number, limit?: number): Array<[BrokerValue, BrokerValue]>;
  getIndexFromValue(key: BrokerValue, index: BrokerValue): BrokerValue | undefined;
  /** `expiry` in seconds, relative to when the master applies the write. */
  put(key: BrokerValue, value: BrokerValue, options?: { expiry?: number }): Promise<void>;
  putUnique(key: BrokerValue, value: BrokerValue, options?: { expiry?: number }): Promise<boolean>;
  erase(key: BrokerValue): Promise<void>;
  clear(): Promise<void>;
  increment(key: BrokerValue, amount?: BrokerValue, options?: { expiry?: number }): Promise<void>;
  decrement(key: BrokerValue, amount?: BrokerValue, options?: { expiry?: number }): Promise<void>;
  append(key: BrokerValue, value: string, options?: { expiry?: number }): Promise<void>;
  insertInto(key: BrokerValue, index: BrokerValue, value?: BrokerValue, options?: { expiry?: number }): Promise<void>;
  removeFrom(key: BrokerValue, index: BrokerValue, options?: { expiry?: number }): Promise<void>;
  push(key: BrokerValue, value: BrokerValue, options?: { expiry?: number }): Promise<void>;
  pop(key: BrokerValue, options?: { expiry?: number }): Promise<void>;
  /** The master's value (a round trip). */
  fetch(key: BrokerValue): Promise<BrokerValue>;
  exists(key: BrokerValue): Promise<boolean>;
  /** True once in sync with every write of this endpoint applied; false after the timeout. */
  awaitIdle(timeoutMs?: number): Promise<boolean>;
  onChange(listener: (change: StoreChange) => void): () => void;
  changes(): AsyncIterableIterator<StoreChange>;
  detach(): void;
}

export interface EndpointOptions {
  /** Application name sent to the gateway. */
  name?: string;
  /** Wire encoding: compact binary (default) or JSON. */
  encoding?: "binary" | "json";
  /** Also receive the gateway's own status events. */
  statuses?: boolean;
  /** Longest pause between reconnection attempts, ms (default 10000). */
  reconnectMaxMs?: number;
  /** Queue length of each subscriber (default 100000). */
  queueSize?: number;
  /** Access token for the gateway. */
  token?: string;
}

/** A client endpoint connected to one gateway (mirrors Broker's Python Endpoint). */
export class Endpoint {
  /** The gateway's endpoint id once connected. */
  readonly peerId: string | null;
  constructor(options?: EndpointOptions);
  /** Connects (and keeps reconnecting) to `ws://host:port`. */
  peer(url: string, options?: { timeoutMs?: number; retry?: boolean }): Promise<boolean>;
  /** Disconnects and stops reconnecting. */
  unpeer(): void;
  publish(topic: string, value: BrokerValue): void;
  publishBatch(items: Array<[string, BrokerValue]>): void;
  makeSubscriber(topics: string | string[], options?: { queueSize?: number }): Subscriber;
  makeStatusSubscriber(receiveStatuses?: boolean): StatusSubscriber;
  peers(): Promise<Array<{ node?: string; address?: string; port?: number; status: string; outbound: boolean }>>;
  peerSubscriptions(): Promise<string[]>;
  peerGateway(host: string, port: number, options?: { retryMs?: number }): Promise<void>;
  /** A clone of store `name` (returned at once; see `Store.ready`). */
  attachClone(name: string, options?: CloneOptions): Store;
  /** Creates (or re-attaches) a master on the gateway; resolves with a synced clone of it. */
  attachMaster(
    name: string,
    options?: { backend?: "sqlite" | "memory"; options?: Map<string, BrokerValue>; timeoutMs?: number },
  ): Promise<Store>;
  /** Names of the stores the gateway holds. */
  stores(): Promise<string[]>;
  /** Resolves once the gateway has processed everything sent before. */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

export function version(): string;
export function encodeValue(json: string): Uint8Array;
export function decodeValue(bytes: Uint8Array): string;
export function valueToString(json: string): string;
export function frameFromJson(kind: "client" | "server" | "peer", json: string): Uint8Array;
export function frameToJson(kind: "client" | "server" | "peer", bytes: Uint8Array): string;
export function zeekDataMessage(topic: string, valueJson: string): string;
export function parseZeekDataMessage(text: string): string;
/** A JS value in the binary value encoding. */
export function encodeJs(value: BrokerValue): Uint8Array;
export function decodeJs(bytes: Uint8Array): BrokerValue;
export function jsToTypedJson(value: BrokerValue): string;
export function typedJsonToJs(json: string): BrokerValue;

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

/** A status or error event (ZB-20), or a gap in a resume. */
export type StatusEvent =
  | { type: "status"; code: string; codeNumber?: number; message: string; node?: string; address?: string; port?: number }
  | { type: "error"; code: string; codeNumber?: number; context: string }
  | GapEvent;

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
  /** A snapshot was applied (or the updates since the kept state): the clone is in sync. */
  | { type: "synced" }
  /** A durable clone read its kept state (`size` entries), before the connection. */
  | { type: "loaded"; size: number }
  /** `optimistic`: a write shows in the view (`value`: the key's view now; undefined = absent). */
  | { type: "pending" | "confirmed"; key: BrokerValue; value?: BrokerValue; id: number }
  /** `optimistic`: the master refused a write (or it never got there); the view went back. */
  | { type: "rollback"; key: BrokerValue; value?: BrokerValue; id: number; code: string; message: string }
  /**
   * Attaching failed or the master was lost. Not `permanent` (e.g. `no_such_master`): retried
   * every resync interval. `permanent` (e.g. `unauthorized`): a final refusal, no more attempts.
   */
  | { type: "error"; code: string; message: string; permanent: boolean };

/** Broker's clone parameters (ZB-47), in seconds. */
export interface CloneOptions {
  /** Pause between attach attempts while no master answers (default 10). */
  resyncInterval?: number;
  /** How long reads keep answering after the connection is lost (default 300; negative = forever). */
  staleInterval?: number;
  /** How long writes made while disconnected wait before failing with `request_timeout` (default 120). */
  mutationBufferInterval?: number;
  /**
   * Browsers: keep the clone's state in IndexedDB under this key (`true`: the store's name);
   * a reload reads it before the connection is up. Ignored where IndexedDB is missing.
   */
  persist?: boolean | string;
  /**
   * Writes through this clone show in its reads at once, marked pending (`isPending`) until
   * the master confirms them or they roll back (`pending` / `confirmed` / `rollback` changes).
   */
  optimistic?: boolean;
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
  /** True while not in sync: reads answer from the last known (or kept) state. */
  readonly stale: boolean;
  /** A durable clone: keeps its state now (if in sync and changed); true if it wrote. */
  save(): Promise<boolean>;
  /** `optimistic`: whether `key` has a write the master has not answered yet. */
  isPending(key: BrokerValue): boolean;
  /** `optimistic`: the keys with writes waiting for the master, in key order. */
  pendingKeys(): BrokerValue[];
  readonly size: number;
  /** Live view of the keys. */
  readonly keys: KeysView;
  /** The gateway's final refusal of this clone (e.g. `unauthorized`), or undefined. */
  readonly refusal: BrokerError | undefined;
  /**
   * Resolves once the first snapshot arrived; rejects with `request_timeout` after
   * `timeoutMs`, or at once with the refusal's code if the gateway refused the clone for good.
   */
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
  /** Wire encoding: compact binary (default) or JSON (JSON: Node.js only). */
  encoding?: "binary" | "json";
  /** Also receive the gateway's own status events. */
  statuses?: boolean;
  /** Longest pause between reconnection attempts, ms (default 10000). */
  reconnectMaxMs?: number;
  /** Queue length of each subscriber (default 100000). */
  queueSize?: number;
  /** Access token for the gateway (sent in the hello; see SECURITY in the README). */
  token?: string;
  /**
   * Browsers: share one connection per gateway among every tab of the origin (a
   * SharedWorker). The whole API works as on a connection of its own (not a clone's
   * getIndexFromValue/awaitIdle/changes, nor position/resume); `shutdown`/`unpeer` give
   * this tab's part up. Ignored where SharedWorker is missing.
   */
  shared?: boolean;
  /** Where to resume from at the first connection (a `position()` saved before). */
  resumeFrom?: Position;
}

/** Where an endpoint is in a gateway's histories (`--history`). */
export interface Position {
  /** The gateway's run (new at every start); null before any history was seen. */
  epoch: string | null;
  /** The last position received, per history prefix. */
  offsets: Record<string, number>;
}

/** A resume could not replay everything (delivered to every status subscriber). */
export interface GapEvent {
  type: "gap";
  code: "gap";
  prefix: string;
  /** Messages under the prefix that are lost, when known. */
  missed: number | null;
  reason: "restart" | "evicted" | "no_history";
  message: string;
}

/** A client endpoint connected to one gateway (mirrors Broker's Python Endpoint). */
export class Endpoint {
  /** The gateway's endpoint id once connected. */
  readonly peerId: string | null;
  constructor(options?: EndpointOptions);
  /**
   * Connects (and keeps reconnecting) to `ws://host:port` (or `wss://`). Rejects with code
   * `unauthorized`, without retrying, if the gateway refuses the token.
   */
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
  /** Asks the gateway to join a Zeek node's WebSocket API as a client (grant `admin`). */
  zeekUplink(
    url: string,
    options?: {
      subscribe?: string[];
      publish?: string[];
      headers?: Record<string, string>;
      appName?: string;
    },
  ): Promise<void>;
  /** Ends the gateway's uplink to `url` (grant `admin`). */
  zeekUnlink(url: string): Promise<void>;
  /** The gateway's uplinks to Zeek nodes and their state. */
  zeekUplinks(): Promise<UplinkInfo[]>;
  /** A clone of store `name` (returned at once; see `Store.ready`). */
  attachClone(name: string, options?: CloneOptions): Store;
  /** Creates (or re-attaches) a master on the gateway; resolves with a synced clone of it. */
  attachMaster(
    name: string,
    options?: { backend?: "sqlite" | "memory"; options?: Map<string, BrokerValue>; timeoutMs?: number },
  ): Promise<Store>;
  /** Names of the stores the gateway holds. */
  stores(): Promise<string[]>;
  /** Names of every namespace of the gateway, sorted. */
  namespaces(): Promise<string[]>;
  /** Where this endpoint is in the gateway's histories (save it to resume after a restart). */
  position(): Position;
  /** Replays what was published under history prefixes since `position`, for the subscriptions held now. */
  resume(position: Position): void;
  /** Resolves once the gateway has processed everything sent before. */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
  /** Creates a Data Broker namespace and attaches to it (DB-01); level 4/5 persist in SQLite. */
  createNamespace(name: string, options?: { level?: number; groups?: string[] }): Promise<Namespace>;
  /** Attaches to an existing namespace (DB-03). */
  attachNamespace(name: string): Promise<Namespace>;
  /** PyDBR's API over this endpoint (DB-28); `timeout` is DBR_TIMEOUT in seconds (0 = forever). */
  dbr(options?: { timeout?: number }): Dbr;
}

// ---- Data Broker namespaces (DB-01..28) ----

/**
 * `[number, name, message]` of the 24 Data Broker error codes (DB-27), from the wasm build
 * (in browsers: set by `init()`, like `DBR` and the two functions below).
 */
export const DBR_CODES: ReadonlyArray<readonly [number, string, string]>;
/** `DBR_SUCCESS`, `DBR_ERR_TIMEOUT`, ... by number. */
export const DBR: Readonly<Record<string, number>>;
/** The code's `DBR_*` name; "Unknown Error" outside 0..22. */
export function getErrorCode(code: number): string;
/** The original's message for a code; "Unknown Error" outside 0..22. */
export function getErrorMessage(code: number): string;

/** A failed namespace operation. */
export class DbrError extends Error {
  /** The `DBR_ERR_*` name, e.g. "DBR_ERR_TIMEOUT". */
  readonly code: string;
  /** The numeric code, e.g. 5. */
  readonly errno: number;
  /** For DBR_ERR_UBUFFER with `partial`: the value's full size. */
  readonly size?: number;
  constructor(errno: number, context?: string, size?: number);
}

export const DBR_FLAGS_NONE: 0;
export const DBR_FLAGS_NOWAIT: 1;
export const DBR_FLAGS_PARTIAL: 2;
export const DBR_FLAGS_MAX: 3;
export const DBR_READ_FLAGS_INDEX_SHIFT: 4;
export const DBR_PERST_VOLATILE_SIMPLE: 0;
export const DBR_PERST_VOLATILE_FT: 1;
export const DBR_PERST_TEMPORARY_SIMPLE: 2;
export const DBR_PERST_TEMPORARY_FT: 3;
export const DBR_PERST_PERMANENT_SIMPLE: 4;
export const DBR_PERST_PERMANENT_FT: 5;
export const DBR_PERST_MAX: 6;
export const DB_TAG_ERROR: -1;

/** The state of a namespace (DB-06). */
export interface NamespaceInfo {
  name: string;
  level: number;
  groups: string[];
  refcount: number;
  markedForDelete: boolean;
  tupleNames: number;
  totalValues: number;
}

/** Options of `read` and `get` (DB-11..15, DB-25). */
export interface GetOptions {
  /** Element to read, 0 = oldest (read only). */
  index?: number;
  /** Fail at once with DBR_ERR_UNAVAIL when there is no value. */
  nowait?: boolean;
  /** Wait up to this long (default 5000 ms; Infinity = until a put), then DBR_ERR_TIMEOUT. */
  timeoutMs?: number;
  /** Cancels the wait (DBR_ERR_CANCELLED); a cancelled get never consumes a value. */
  signal?: AbortSignal;
  /** Buffer size: larger values fail with DBR_ERR_UBUFFER and stay queued. */
  capacity?: number;
  /** With `capacity`: the error carries the value's full `size`. */
  partial?: boolean;
  /** Return strings as UTF-8 bytes (for binary values that happen to be valid UTF-8). */
  bytes?: boolean;
  /** Resolve with `{value, size}` instead of the value. */
  withSize?: boolean;
}

/** An attached namespace: a FIFO of values per tuple name. */
export class Namespace {
  readonly name: string;
  /** False after detach or delete. */
  readonly valid: boolean;
  put(key: string, value: BrokerValue): Promise<void>;
  read(key: string, options?: GetOptions): Promise<any>;
  get(key: string, options?: GetOptions): Promise<any>;
  remove(key: string): Promise<void>;
  /** Moves the whole queue of `key` to `to`, atomically. */
  move(key: string, to: Namespace): Promise<void>;
  testKey(key: string): Promise<boolean>;
  /** Names matching a glob (Redis rules: `*`, `?`, `[a-z]`, `[^x]`, `\`). */
  directory(pattern?: string, options?: { limit?: number }): Promise<string[]>;
  names(pattern?: string, options?: { pageSize?: number }): AsyncIterable<string>;
  query(): Promise<NamespaceInfo>;
  detach(): Promise<void>;
  /** Rejects with DBR_ERR_NSBUSY if other attachments remain (deleted at the last detach). */
  delete(): Promise<void>;
}

/** The buffer of `readA`/`getA`, filled when the request completes. */
export interface DbrBuffer {
  value: any;
  size: number;
}

/** PyDBR's API (DB-28): the same names and argument order; blocking calls return Promises. */
export interface Dbr {
  readonly [constant: string]: any;
  create(name: string, level: number, groups: unknown): Promise<Namespace | null>;
  attach(name: string): Promise<Namespace | null>;
  delete(name: string): Promise<number>;
  detach(handle: Namespace): Promise<number>;
  query(handle: Namespace, state?: object, mask?: unknown): Promise<number>;
  put(handle: Namespace, value: BrokerValue, name: string, group: string): Promise<number>;
  read(handle: Namespace, name: string, template: string, group: string, flag?: number, bufferSize?: number | [number]): Promise<[any, number]>;
  get(handle: Namespace, name: string, template: string, group: string, flag?: number, bufferSize?: number | [number]): Promise<[any, number]>;
  putA(handle: Namespace, value: BrokerValue, name: string, group: string): number;
  readA(handle: Namespace, name: string, template: string, group: string, flag?: number, bufferSize?: number | [number]): [number, DbrBuffer];
  getA(handle: Namespace, name: string, template: string, group: string, flag?: number, bufferSize?: number | [number]): [number, DbrBuffer];
  test(tag: number): number;
  /** Resolves with a tag's final code (a `test` loop without polling) and frees it. */
  wait(tag: number): Promise<number>;
  cancel(tag: number): number;
  testKey(handle: Namespace, name: string): Promise<number>;
  directory(handle: Namespace, matchTemplate: string, group: string, count: number, size: number): Promise<[string[], number, number]>;
  iterator(handle: Namespace, iterator: string | null, group: string, matchTemplate: string): Promise<[string | null, string | null]>;
  move(src: Namespace, srcGroup: string, name: string, template: string, dst: Namespace, dstGroup: string): Promise<number>;
  remove(handle: Namespace, group: string, name: string, template: string): Promise<number>;
  /** `dbrPut_gather` (DB-26): the parts concatenated into one binary value. */
  putGather(handle: Namespace, parts: Array<Uint8Array | string>, name: string, group: string): Promise<number>;
  /** `dbrRead_scatter` (DB-26): one value spread over pieces of `sizes[i]` bytes. */
  readScatter(handle: Namespace, sizes: number[], name: string, template: string, group: string, flags?: number): Promise<[Uint8Array[] | null, number]>;
  /** `dbrGet_scatter` (DB-26). */
  getScatter(handle: Namespace, sizes: number[], name: string, template: string, group: string, flags?: number): Promise<[Uint8Array[] | null, number]>;
  addUnits(...args: unknown[]): number;
  removeUnits(...args: unknown[]): number;
  getErrorCode(code: number): string;
  getErrorMessage(code: number): string;
}

/** PyDBR's API over a connected endpoint (same as `endpoint.dbr(options)`). */
export function createDbr(endpoint: Endpoint, options?: { timeout?: number }): Dbr;

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
/** `[number, name]` of Broker's error codes (ZB-22), from the wasm build: the `code` of a `BrokerError` is one of these names. */
export function errorCodes(): Array<[number, string]>;

/** An uplink of the gateway to a Zeek node's WebSocket API. */
export interface UplinkInfo {
  url: string;
  /** `connecting`, `connected`, `reconnecting` or `stopped`. */
  state: string;
  zeek_endpoint: string | null;
  zeek_version: string | null;
  subscribe: string[];
  publish: string[];
  messages_in: number;
  messages_out: number;
  errors: number;
  refused: number;
  connects: number;
  last_error: string | null;
}

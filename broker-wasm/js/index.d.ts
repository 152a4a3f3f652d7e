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

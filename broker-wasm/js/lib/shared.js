// `new Endpoint({ shared: true })` in a browser: the tab's side of an endpoint whose
// connection lives in a SharedWorker (shared-worker.js), so every tab of the origin shares one
// WebSocket per gateway. Values cross the MessagePort in the binary value encoding (the
// classes Count, Port, ... do not survive structured cloning). Subscribers and status
// subscribers are the usual classes, fed by the worker; clones are mirrored here from the
// worker's snapshot and changes, so reads stay synchronous.

import { BrokerError, asBrokerError } from "./errors.js";
import { Subscriber, StatusSubscriber } from "./subscriber.js";
import { callListeners } from "./store.js";

const BEAT_MS = 1_000;

const fail = (e) => {
  const err = new BrokerError(e.code, e.message);
  if (e.errno !== undefined) err.errno = e.errno;
  return err;
};

/** The tab's side of a shared endpoint (see the README, "One connection per browser"). */
export class SharedEndpoint {
  constructor(runtime, options) {
    this._wasm = runtime.wasm;
    this._options = { ...options, shared: undefined };
    this._queueSize = options.queueSize ?? 100_000;
    this._subs = new Map();
    this._statusSubs = new Set();
    this._stores = new Map();
    this._pending = new Map();
    this._rid = 0;
    this._sid = 0;
    this.peerId = undefined;
    this.shared = true;
    const worker = new SharedWorker(runtime.sharedWorkerUrl, { type: "module", name: "broker-wasm" });
    this._port = worker.port;
    this._port.onmessage = (e) => this._onMessage(e.data);
    this._port.start();
    this._beat = setInterval(() => this._port.postMessage({ op: "beat" }), BEAT_MS);
    this._bye = () => this._leave();
    globalThis.addEventListener?.("pagehide", this._bye);
    // What Subscriber and StatusSubscriber call on their endpoint.
    this._core = {
      addTopics: (sid, topics) => this._port.postMessage({ op: "addTopics", sid, topics }),
      removeTopics: (sid, topics) => this._port.postMessage({ op: "removeTopics", sid, topics }),
      removeSubscriber: (sid) => this._port.postMessage({ op: "unsubscribe", sid }),
    };
  }

  _schedule() {}

  _enc(v) {
    try {
      return this._wasm.encodeJs(v);
    } catch (e) {
      throw asBrokerError(e);
    }
  }

  _call(op, fields = {}) {
    const rid = ++this._rid;
    return new Promise((resolve, reject) => {
      this._pending.set(rid, { resolve, reject });
      this._port.postMessage({ op, rid, ...fields });
    });
  }

  _onMessage(m) {
    if (m.rid !== undefined) {
      const p = this._pending.get(m.rid);
      this._pending.delete(m.rid);
      if (m.ok) p?.resolve(m.value);
      else p?.reject(fail(m.error));
      return;
    }
    switch (m.ev) {
      case "msg":
        this._subs.get(m.sid)?._push([m.topic, this._wasm.decodeJs(m.value)]);
        return;
      case "status":
        for (const s of this._statusSubs) {
          if (m.event.type === "status" && !s.receiveStatuses) continue;
          s._push(m.event);
        }
        return;
      case "snapshot":
        this._stores.get(m.name)?._snapshot(m.entries);
        return;
      case "change":
        this._stores.get(m.name)?._change(m.change);
        return;
    }
  }

  /** Connects the shared connection (if no other tab did) and resolves once it is up. */
  async peer(url, options = {}) {
    this.peerId = await this._call("peer", { url, options, endpoint: this._options });
    return true;
  }

  /** This tab leaves the shared connection (which stays up for the other tabs). */
  unpeer() {
    this._leave();
  }

  publish(topic, value) {
    this._port.postMessage({ op: "publish", topic, value: this._enc(value) });
  }

  publishBatch(items) {
    this._port.postMessage({ op: "publishBatch", items: items.map(([t, v]) => [t, this._enc(v)]) });
  }

  makeSubscriber(topics, { queueSize } = {}) {
    const list = typeof topics === "string" ? [topics] : [...topics];
    const sid = ++this._sid;
    const sub = new Subscriber(this, sid, queueSize ?? this._queueSize);
    this._subs.set(sid, sub);
    this._port.postMessage({ op: "subscribe", sid, topics: list });
    return sub;
  }

  makeStatusSubscriber(receiveStatuses = false) {
    const sub = new StatusSubscriber(this, receiveStatuses, this._queueSize);
    if (this._statusSubs.size === 0) this._port.postMessage({ op: "statuses" });
    this._statusSubs.add(sub);
    return sub;
  }

  peers() {
    return this._call("call", { method: "peers" });
  }

  peerSubscriptions() {
    return this._call("call", { method: "peerSubscriptions" });
  }

  stores() {
    return this._call("call", { method: "stores" });
  }

  /** Resolves once the gateway has processed everything this tab published before. */
  flush() {
    return this._call("call", { method: "flush" });
  }

  attachClone(name, options = {}) {
    const existing = this._stores.get(name);
    if (existing) return existing;
    const store = new SharedStore(this, name);
    this._stores.set(name, store);
    this._port.postMessage({ op: "clone", name, options });
    return store;
  }

  _storeRequest(name, op, args) {
    const encoded = Object.fromEntries(
      Object.entries(args).map(([k, v]) => [k, v === undefined || k === "expiry" ? v : this._enc(v)]),
    );
    return this._call("storeOp", { name, storeOp: op, args: encoded }).then((r) =>
      r === undefined ? undefined : this._wasm.decodeJs(r),
    );
  }

  _leave() {
    if (this._left) return;
    this._left = true;
    clearInterval(this._beat);
    globalThis.removeEventListener?.("pagehide", this._bye);
    this._port.postMessage({ op: "bye" });
    for (const s of this._subs.values()) s._end();
    for (const s of this._statusSubs) s._end();
  }

  /** This tab's subscriptions and clones go; the connection stays for other tabs. */
  async shutdown() {
    this._leave();
  }
}

/** A clone seen from one tab: a mirror of the shared clone, updated by the worker. */
class SharedStore {
  constructor(endpoint, name) {
    this._endpoint = endpoint;
    this.name = name;
    this._entries = new Map(); // hex of the key's encoding -> [key, value, expiry]
    this._synced = false;
    this._listeners = new Set();
    this._readyWaiters = [];
  }

  _id(key) {
    const bytes = this._endpoint._enc(key);
    let s = "";
    for (const b of bytes) s += b.toString(16).padStart(2, "0");
    return s;
  }

  _snapshot(entries) {
    const dec = (b) => (b === undefined ? undefined : this._endpoint._wasm.decodeJs(b));
    this._entries.clear();
    for (const [k, v, e] of entries) {
      const key = dec(k);
      this._entries.set(this._id(key), [key, dec(v), dec(e)]);
    }
    this._synced = true;
    this._emit({ type: "synced" });
    for (const w of this._readyWaiters.splice(0)) w();
  }

  _change(c) {
    const dec = (b) => (b instanceof Uint8Array ? this._endpoint._wasm.decodeJs(b) : b);
    const change = { ...c };
    for (const k of ["key", "value", "old", "expiry"]) if (c[k] !== undefined) change[k] = dec(c[k]);
    switch (change.type) {
      case "insert":
      case "update":
        this._entries.set(this._id(change.key), [change.key, change.value, change.expiry]);
        break;
      case "erase":
      case "expire":
        this._entries.delete(this._id(change.key));
        break;
      case "reset":
        this._entries.clear();
        break;
      case "synced":
        this._synced = true;
        for (const w of this._readyWaiters.splice(0)) w();
        break;
    }
    this._emit(change);
  }

  _emit(change) {
    callListeners(this._listeners, change);
  }

  get synced() {
    return this._synced;
  }

  ready(timeoutMs = 10_000) {
    if (this._synced) return Promise.resolve(this);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._readyWaiters = this._readyWaiters.filter((w) => w !== waiter);
        reject(new BrokerError("request_timeout", `clone of ${this.name} not in sync within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = () => {
        clearTimeout(timer);
        resolve(this);
      };
      this._readyWaiters.push(waiter);
    });
  }

  _read(key) {
    if (!this._synced) throw new BrokerError("stale_data", `clone of ${this.name} has no snapshot yet`);
    return this._entries.get(this._id(key));
  }

  get(key) {
    return this._read(key)?.[1];
  }

  has(key) {
    return this._read(key) !== undefined;
  }

  expiry(key) {
    return this._read(key)?.[2];
  }

  get size() {
    return this._entries.size;
  }

  onChange(listener) {
    this._listeners.add(listener);
    return () => this._listeners.delete(listener);
  }

  _op(op, args) {
    return this._endpoint._storeRequest(this.name, op, args);
  }

  put(key, value, { expiry } = {}) {
    return this._op("put", { key, value, expiry });
  }

  erase(key) {
    return this._op("erase", { key });
  }

  increment(key, amount, { expiry } = {}) {
    return this._op("increment", { key, amount, expiry });
  }

  decrement(key, amount, { expiry } = {}) {
    return this._op("decrement", { key, amount, expiry });
  }

  detach() {
    if (this._detached) return;
    this._detached = true;
    this._endpoint._stores.delete(this.name);
    this._endpoint._port.postMessage({ op: "unclone", name: this.name });
  }
}

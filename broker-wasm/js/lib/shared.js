// `new Endpoint({ shared: true })` in a browser: the tab's side of an endpoint whose
// connection lives in a SharedWorker (shared-worker.js), so every tab of the origin shares one
// WebSocket per gateway. Values cross the MessagePort in the binary value encoding (the
// classes Count, Port, ... do not survive structured cloning). Subscribers and status
// subscribers are the usual classes, fed by the worker; clones are mirrored here from the
// worker's snapshot and changes, so reads stay synchronous.

import { BrokerError, asBrokerError } from "./errors.js";
import { Subscriber, StatusSubscriber } from "./subscriber.js";
import { KeysView, StoreWrites, callListeners } from "./store.js";
import { DbrError } from "./dbr-codes.js";
import { Namespace } from "./dbr-namespace.js";
import { createDbr } from "./dbr-pydbr.js";

const BEAT_MS = 1_000;

// An error as the worker sent it: a namespace's DbrError (errno) or a BrokerError (code).
const fail = (e) => {
  if (e.errno === undefined) return new BrokerError(e.code, e.message);
  const err = new DbrError(e.errno, undefined, e.size);
  err.message = e.message;
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
        if (m.peerId !== undefined) this.peerId = m.peerId;
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

  _method(method, ...args) {
    return this._call("call", { method, args });
  }

  peers() {
    return this._method("peers");
  }

  peerGateway(host, port, options) {
    return this._method("peerGateway", host, port, options);
  }

  zeekUplink(url, options) {
    return this._method("zeekUplink", url, options);
  }

  zeekUnlink(url) {
    return this._method("zeekUnlink", url);
  }

  zeekUplinks() {
    return this._method("zeekUplinks");
  }

  namespaces() {
    return this._method("namespaces");
  }

  createNamespace(name, { level = 0, groups = [] } = {}) {
    return Namespace._open(this, { op: "create", name, level, groups });
  }

  attachNamespace(name) {
    return Namespace._open(this, { op: "attach", name });
  }

  dbr(options) {
    return createDbr(this, options);
  }

  /**
   * One namespace request, run by the worker on its endpoint (dbr-namespace.js calls this);
   * an abort of `signal` cancels it there, with the same rules (DB-25).
   */
  _nsRequest(args, signal) {
    const rid = ++this._rid;
    const onAbort = () => this._port.postMessage({ op: "nsAbort", rid });
    signal?.addEventListener("abort", onAbort, { once: true });
    // Values cross in the binary value encoding, both ways.
    const sent = args.value === undefined ? args : { ...args, value: this._enc(args.value) };
    return new Promise((resolve, reject) => {
      this._pending.set(rid, { resolve, reject });
      this._port.postMessage({ op: "ns", rid, args: sent, encoded: sent !== args });
    })
      .then((r) => {
        if (!r?.encodedValue) return r;
        const { encodedValue: _, ...rest } = r;
        return { ...rest, value: this._wasm.decodeJs(r.value) };
      })
      .finally(() => signal?.removeEventListener("abort", onAbort));
  }

  /** Creates (or re-attaches) a master on the gateway, then a clone of it (as an endpoint's). */
  async attachMaster(name, { backend = "sqlite", options, timeoutMs = 10_000 } = {}) {
    await this._call("master", { name, backend, options: options === undefined ? undefined : this._enc(options) });
    return this.attachClone(name).ready(timeoutMs);
  }

  peerSubscriptions() {
    return this._method("peerSubscriptions");
  }

  stores() {
    return this._method("stores");
  }

  /** Resolves once the gateway has processed everything this tab published before. */
  flush() {
    return this._method("flush");
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
class SharedStore extends StoreWrites {
  constructor(endpoint, name) {
    super();
    this._endpoint = endpoint;
    this.name = name;
    this._entries = new Map(); // hex of the key's encoding -> [key, value, expiry, encoding]
    this._order = []; // the hex ids in key order (the clone's order: compareEncoded)
    this._pending = new Map(); // hex id -> optimistic writes waiting
    this._synced = false;
    /** The live view of the keys (in key order), as a clone's. */
    this.keys = new KeysView(this);
    this._listeners = new Set();
    this._readyWaiters = [];
  }

  _id(key) {
    return hex(this._endpoint._enc(key));
  }

  /** Where `bytes` (a key's encoding) is or would go in `_order`: [index, found]. */
  _position(bytes) {
    const compare = this._endpoint._wasm.compareEncoded;
    let lo = 0;
    let hi = this._order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = compare(this._entries.get(this._order[mid])[3], bytes);
      if (c === 0) return [mid, true];
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return [lo, false];
  }

  _set(key, value, expiry) {
    const bytes = this._endpoint._enc(key);
    const id = hex(bytes);
    if (!this._entries.has(id)) {
      this._entries.set(id, [key, value, expiry, bytes]);
      this._order.splice(this._position(bytes)[0], 0, id);
    } else {
      this._entries.set(id, [key, value, expiry, bytes]);
    }
  }

  _delete(key) {
    const id = this._id(key);
    const e = this._entries.get(id);
    if (!e) return;
    const [at, found] = this._position(e[3]);
    if (found) this._order.splice(at, 1);
    this._entries.delete(id);
  }

  _snapshot(entries) {
    const dec = (b) => (b === undefined ? undefined : this._endpoint._wasm.decodeJs(b));
    this._entries.clear();
    this._order = [];
    // The worker sends them in key order.
    for (const [k, v, e] of entries) {
      const id = hex(k);
      this._entries.set(id, [dec(k), dec(v), dec(e), k]);
      this._order.push(id);
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
        this._set(change.key, change.value, change.expiry);
        break;
      case "erase":
      case "expire":
        this._delete(change.key);
        break;
      case "reset":
        this._entries.clear();
        this._order = [];
        break;
      case "pending":
      case "confirmed":
      case "rollback": {
        // An optimistic write (the worker's clone has `optimistic`): the view of the key now.
        if (change.value === undefined) this._delete(change.key);
        else this._set(change.key, change.value, this._entries.get(this._id(change.key))?.[2]);
        const id = this._id(change.key);
        const n = (this._pending.get(id) ?? 0) + (change.type === "pending" ? 1 : -1);
        if (n > 0) this._pending.set(id, n);
        else this._pending.delete(id);
        break;
      }
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

  _read(key) {
    if (!this._synced) throw new BrokerError("stale_data", `clone of ${this.name} has no snapshot yet`);
    return key === undefined ? undefined : this._entries.get(this._id(key));
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

  /** Whether `key` has an optimistic write waiting for the master. */
  isPending(key) {
    return this._pending.has(this._id(key));
  }

  /** Keys with optimistic writes waiting, in key order. */
  pendingKeys() {
    return this._order.filter((id) => this._pending.has(id)).map((id) => this._entries.get(id)[0]);
  }

  get stale() {
    return !this._synced;
  }

  /** Up to `limit` `[key, value]` pairs in key order from position `start`. */
  entries(start = 0, limit = Infinity) {
    this._read(undefined);
    return this._order.slice(start, start + limit).map((id) => {
      const e = this._entries.get(id);
      return [e[0], e[1]];
    });
  }

  _keySlice(start, limit) {
    this._read(undefined);
    return this._order.slice(start, start + limit).map((id) => this._entries.get(id)[0]);
  }

  onChange(listener) {
    this._listeners.add(listener);
    return () => this._listeners.delete(listener);
  }

  _op(op, args) {
    return this._endpoint._storeRequest(this.name, op, args);
  }

  detach() {
    if (this._detached) return;
    this._detached = true;
    this._endpoint._stores.delete(this.name);
    this._endpoint._port.postMessage({ op: "unclone", name: this.name });
  }
}

function hex(bytes) {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

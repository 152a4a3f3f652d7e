// Store clones for the JS API (ZB-47..62). The replica lives in the wasm core; this file turns
// its events into callbacks and async iterators and its requests into promises.

import { BrokerError, asBrokerError } from "./errors.js";
import * as kept from "./persist.js";

const PAGE = 1024;
/** A durable clone saves its state this often while it changes (ms), and on `pagehide`. */
const SAVE_EVERY_MS = 5_000;

/**
 * The keys of a clone as a live view: `size`, `has(key)` and iteration always reflect the
 * current state of the replica.
 */
export class KeysView {
  constructor(store) {
    this._store = store;
  }

  /** Number of keys now. */
  get size() {
    return this._store.size;
  }

  /** Whether `key` is present now. */
  has(key) {
    return this._store.has(key);
  }

  /** Up to `limit` keys in key order, starting at position `start`. */
  slice(start = 0, limit = Infinity) {
    return this._store._keySlice(start, limit);
  }

  *[Symbol.iterator]() {
    for (let start = 0; ; start += PAGE) {
      const page = this.slice(start, PAGE);
      yield* page;
      if (page.length < PAGE) return;
    }
  }
}

/**
 * What a clone of its own and a shared clone's mirror in a tab have in common: waiting for
 * the first snapshot (`synced`, `refusal`, `_readyWaiters`) and the writes, each sent to the
 * master as `_op(op, args)`.
 */
export class StoreWrites {
  /**
   * Resolves once the clone has its first snapshot (at once if it has). Rejects with
   * `request_timeout` after `timeoutMs`; failed attaches (`no_such_master`) are retried
   * meanwhile every resync interval. A final refusal (see `refusal`) rejects at once with
   * its own code (e.g. `unauthorized`), also on every later call.
   */
  ready(timeoutMs = 10_000) {
    const refused = this.refusal;
    if (refused) return Promise.reject(refused);
    if (this.synced) return Promise.resolve(this);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._readyWaiters = this._readyWaiters.filter((w) => w !== waiter);
        reject(new BrokerError("request_timeout", `clone of ${this.name} not in sync within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (error) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(this);
      };
      this._readyWaiters.push(waiter);
    });
  }

  /** Inserts or overwrites (ZB-48). `expiry`: seconds from when the master applies it. */
  put(key, value, { expiry } = {}) {
    return this._op("put", { key, value, expiry });
  }

  /** Inserts only if absent; resolves `true` if inserted (ZB-49). */
  putUnique(key, value, { expiry } = {}) {
    return this._op("putUnique", { key, value, expiry });
  }

  /** Removes `key` (ZB-50). */
  erase(key) {
    return this._op("erase", { key });
  }

  /** Removes every key (ZB-50). */
  clear() {
    return this._op("clear", {});
  }

  /** Adds `amount` (default `new Count(1)`); type clashes reject with `type_clash` (ZB-51). */
  increment(key, amount, { expiry } = {}) {
    return this._op("increment", { key, amount, expiry });
  }

  /** Subtracts `amount` (default `new Count(1)`) (ZB-51). */
  decrement(key, amount, { expiry } = {}) {
    return this._op("decrement", { key, amount, expiry });
  }

  /** Appends a string (ZB-52). */
  append(key, value, { expiry } = {}) {
    return this._op("append", { key, value, expiry });
  }

  /** Adds to a set (no value), sets a table entry, or inserts into a vector (ZB-53). */
  insertInto(key, index, value, { expiry } = {}) {
    return this._op("insertInto", { key, index, value, expiry });
  }

  /** Removes a set element, a table entry or a vector position (ZB-53). */
  removeFrom(key, index, { expiry } = {}) {
    return this._op("removeFrom", { key, index, expiry });
  }

  /** Appends to a vector (ZB-54). */
  push(key, value, { expiry } = {}) {
    return this._op("push", { key, value, expiry });
  }

  /** Removes the last element of a vector (ZB-54). */
  pop(key, { expiry } = {}) {
    return this._op("pop", { key, expiry });
  }

  /** The master's value of `key` (a round trip; rejects `no_such_key`). */
  fetch(key) {
    return this._op("get", { key });
  }

  /** Whether the master has `key` (a round trip). */
  exists(key) {
    return this._op("exists", { key });
  }
}

/**
 * A clone of a store (ZB-47): a local replica of the master's entries, kept up to date by
 * a snapshot and then every update. Reads are local and synchronous; writes go to the
 * master and return promises; changes arrive as events.
 */
export class Store extends StoreWrites {
  constructor(endpoint, name, options) {
    super();
    this._endpoint = endpoint;
    /** The store's name. */
    this.name = name;
    this._listeners = new Set();
    this._iterators = new Set();
    this._readyWaiters = [];
    this._detached = false;
    /** The live view of the keys. */
    this.keys = new KeysView(this);
    const persist = options?.persist;
    this._keptAs = persist && kept.available() ? (typeof persist === "string" ? persist : name) : null;
    if (!this._keptAs) {
      this._attach(options);
      return;
    }
    // A durable clone: the kept state first (readable before the connection is up), then
    // the gateway brings it up to date.
    this._savedSeq = -1;
    this._loading = kept
      .load(this._keptAs)
      .catch(() => undefined)
      .then((bytes) => {
        this._loading = null;
        if (this._detached) return;
        this._attach(options, bytes instanceof Uint8Array ? bytes : undefined);
        if (this.size > 0) this._emit({ type: "loaded", size: this.size });
      });
    this._saveTimer = setInterval(() => this.save().catch(() => {}), SAVE_EVERY_MS);
    this._onHide = () => this.save().catch(() => {});
    globalThis.addEventListener?.("pagehide", this._onHide);
  }

  _attach(options, saved) {
    const core = this._endpoint._core;
    if (saved) core.attachCloneFrom(this.name, options ?? {}, saved);
    else core.attachClone(this.name, options ?? {});
    // Changes are computed only while someone listens (a big snapshot is cheaper without).
    this._watching();
    this._endpoint._schedule();
  }

  /**
   * A durable clone (`persist`): keeps its state now, if in sync and changed since it was
   * last kept (it also does every 5 s and when the page is hidden). Resolves true if it
   * wrote.
   */
  save() {
    // One at a time: a save resolves after the ones before it are written.
    this._saving = (this._saving ?? Promise.resolve()).catch(() => {}).then(() => this._saveNow());
    return this._saving;
  }

  async _saveNow() {
    if (!this._keptAs || this._loading || this._detached) return false;
    const core = this._endpoint._core;
    const seq = core.cloneSeq(this.name);
    if (!this.synced || seq === this._savedSeq) return false;
    const bytes = core.cloneExport(this.name);
    if (!bytes) return false;
    this._savedSeq = seq;
    try {
      await kept.save(this._keptAs, bytes);
      return true;
    } catch (e) {
      this._savedSeq = -1;
      this._emit({ type: "error", code: "backend_failure", message: `keeping the clone failed: ${e?.message ?? e}`, permanent: false });
      return false;
    }
  }

  /**
   * With `optimistic`: whether `key` has a write of this endpoint that the master has not
   * answered yet (the view shows it already).
   */
  isPending(key) {
    return this._read((c) => c.clonePending(this.name, key));
  }

  /** The keys with optimistic writes waiting for the master, in key order. */
  pendingKeys() {
    return this._read((c) => c.clonePendingKeys(this.name));
  }

  /** True while the replica is not in sync: reads answer from the last known state. */
  get stale() {
    return !this.synced;
  }

  /** True while the replica is in sync with the master. */
  get synced() {
    return this._endpoint._core.cloneSynced(this.name);
  }

  /**
   * The gateway's final refusal of this clone (a `BrokerError`, e.g. `unauthorized` when
   * the token lacks `store_read`, `invalid_data` for a name it rejects), or `undefined`.
   * A refused clone does not try again; `detach()` and attach anew to retry.
   */
  get refusal() {
    const e = this._endpoint._core.cloneRefusal(this.name);
    return e ? asBrokerError(e) : undefined;
  }

  _read(fn) {
    if (this._loading) throw new BrokerError("stale_data", `the clone of ${this.name} is loading its kept state`);
    try {
      return fn(this._endpoint._core);
    } catch (e) {
      throw asBrokerError(e);
    }
  }

  /**
   * The local value of `key`, or `undefined`. Throws `stale_data` before the first
   * snapshot and once the master was unreachable longer than the stale interval (ZB-55).
   */
  get(key) {
    return this._read((c) => c.cloneGet(this.name, key));
  }

  /** Whether `key` is present locally. */
  has(key) {
    return this._read((c) => c.cloneHas(this.name, key));
  }

  /** The local expiry of `key` (a `Timestamp`), or `undefined`. */
  expiry(key) {
    return this._read((c) => c.cloneExpiry(this.name, key));
  }

  /** Number of local entries. */
  get size() {
    return this._endpoint._core.cloneSize(this.name);
  }

  _keySlice(start, limit) {
    return this._read((c) => c.cloneKeys(this.name, start, Math.min(limit, 2 ** 32 - 1)));
  }

  /** Up to `limit` `[key, value]` pairs in key order from position `start`. */
  entries(start = 0, limit = Infinity) {
    return this._read((c) => c.cloneEntries(this.name, start, Math.min(limit, 2 ** 32 - 1)));
  }

  /**
   * An element of a container value, read locally (ZB-55): set membership, table value,
   * vector element.
   */
  getIndexFromValue(key, index) {
    return this._read((c) => c.cloneIndex(this.name, key, index));
  }

  _op(op, args) {
    return this._endpoint._storeRequest(this.name, op, args);
  }

  /**
   * Resolves `true` once the clone is in sync and every write made through this endpoint
   * was applied by the master and came back (Broker's `await_idle`, ZB-61); `false` after
   * `timeoutMs`.
   */
  async awaitIdle(timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs;
    const ep = this._endpoint;
    while (Date.now() < deadline) {
      const activity = ep._nextActivity();
      try {
        await withTimeout(ep.flush(), deadline - Date.now());
      } catch {
        return false;
      }
      if (ep._core.cloneIdle(this.name)) return true;
      if (ep._core.cloneRefusal(this.name)) return false;
      try {
        await withTimeout(activity, deadline - Date.now());
      } catch {
        return false;
      }
    }
    return false;
  }

  /**
   * Calls `listener(change)` for every change: `{type: "insert", key, value, expiry}`,
   * `{type: "update", key, old, value, expiry}`, `{type: "erase", key}`,
   * `{type: "expire", key}`, plus `{type: "reset"}` before the difference to a restarted
   * master's state, `{type: "synced"}` after each snapshot and
   * `{type: "error", code, message, permanent}` when an attach failed or the master was lost
   * (`permanent`: a final refusal, the clone stopped trying). Changes are computed only
   * while a listener or iterator exists. Returns an unsubscribe function.
   */
  onChange(listener) {
    this._listeners.add(listener);
    this._watching();
    return () => {
      this._listeners.delete(listener);
      this._watching();
    };
  }

  _watching() {
    if (this._detached || this._loading) return;
    const on = this._listeners.size > 0 || this._iterators.size > 0;
    this._endpoint._core.setCloneChanges(this.name, on);
  }

  /** The same changes as an async iterator (ends on `detach`). */
  changes() {
    const queue = [];
    let wake = null;
    const it = {
      push: (c) => {
        queue.push(c);
        if (wake) {
          wake();
          wake = null;
        }
      },
      end: () => {
        it.ended = true;
        if (wake) wake();
      },
      ended: false,
    };
    this._iterators.add(it);
    this._watching();
    const self = this;
    return {
      async next() {
        while (queue.length === 0) {
          if (it.ended || self._detached) return { done: true, value: undefined };
          await new Promise((r) => (wake = r));
        }
        return { done: false, value: queue.shift() };
      },
      async return() {
        self._iterators.delete(it);
        self._watching();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  /** Stops the clone; change iterators end. */
  detach() {
    if (this._detached) return;
    this._detached = true;
    clearInterval(this._saveTimer);
    if (this._onHide) globalThis.removeEventListener?.("pagehide", this._onHide);
    this._endpoint._core.detachClone(this.name);
    this._endpoint._stores.delete(this.name);
    this._endpoint._schedule();
    for (const it of this._iterators) it.end();
    this._iterators.clear();
  }

  _emit(change) {
    callListeners(this._listeners, change);
    for (const it of this._iterators) it.push(change);
  }

  _onEvent(e) {
    if (e.type === "storeWrite") {
      // An optimistic write: {type: "pending" | "confirmed" | "rollback", key, value, id,
      // and for a rollback code and message}.
      const change = { type: e.state, key: e.key, value: e.value, id: e.id };
      if (e.state === "rollback") Object.assign(change, { code: e.code, message: e.message });
      this._emit(change);
      return;
    }
    if (e.type === "storeError") {
      this._emit({ type: "error", code: e.code, message: e.context, permanent: e.permanent });
      if (e.permanent) {
        const error = new BrokerError(e.code, e.context);
        for (const w of this._readyWaiters.splice(0)) w(error);
      }
      return;
    }
    if (e.reset) this._emit({ type: "reset" });
    for (const c of e.changes) this._emit(c);
    if (e.synced) {
      this._emit({ type: "synced" });
      for (const w of this._readyWaiters.splice(0)) w();
      if (this._keptAs) this.save().catch(() => {});
    }
  }
}

function withTimeout(promise, ms) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("timeout")), Math.max(0, ms));
    promise.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** Calls each listener with `change`; one that throws does not stop the others (its error
 * is rethrown on its own). */
export function callListeners(listeners, change) {
  for (const l of listeners) {
    try {
      l(change);
    } catch (e) {
      queueMicrotask(() => {
        throw e;
      });
    }
  }
}

// The JS API over the wasm client core: Endpoint, Subscriber, StatusSubscriber. All protocol
// logic is in the core; this file owns the WebSocket, timers and promises.

import { factories } from "./values.js";
import { Namespace, createDbr } from "./namespace.js";
import { createStoreApi } from "./store.js";

const PATH = "/v1/broker";

/** An error with a stable `code`: a Broker error-code name such as `peer_unavailable`. */
export class BrokerError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.name = "BrokerError";
    /** @type {string} */
    this.code = code;
  }
}

function asBrokerError(e) {
  if (e instanceof BrokerError) return e;
  if (e && typeof e === "object" && typeof e.code === "string") return new BrokerError(e.code, e.message);
  return new BrokerError("unspecified", String(e && e.message ? e.message : e));
}

/**
 * Builds the API for one wasm build and one WebSocket implementation.
 * @param {any} wasm the wasm-bindgen module (initialised)
 * @param {any} WebSocketImpl the WebSocket class (the browser's, or the `ws` package in Node)
 */
export function createApi(wasm, WebSocketImpl) {
  wasm.registerValueClasses(factories);
  const textDecoder = new TextDecoder();
  const { Store } = createStoreApi({ BrokerError, asBrokerError });

  /** A queue of `[topic, value]` messages for some topic prefixes (ZB-14..19). */
  class Subscriber {
    constructor(endpoint, id, queueSize) {
      this._endpoint = endpoint;
      this._id = id;
      this._queueSize = queueSize;
      this._queue = [];
      this._head = 0;
      this._waiters = [];
      this._closed = false;
      /** Messages dropped because the queue was full. */
      this.dropped = 0;
    }

    _push(item) {
      const w = this._waiters.shift();
      if (w) {
        w.resolve(item);
        return;
      }
      if (this._queue.length - this._head >= this._queueSize) {
        this.dropped++;
        return;
      }
      this._queue.push(item);
    }

    _take() {
      const item = this._queue[this._head++];
      if (this._head > 1024 && this._head * 2 > this._queue.length) {
        this._queue = this._queue.slice(this._head);
        this._head = 0;
      }
      return item;
    }

    _end() {
      this._closed = true;
      for (const w of this._waiters.splice(0)) w.reject(new BrokerError("shutting_down", "subscriber closed"));
    }

    /** Messages that can be taken without waiting. */
    get available() {
      return this._queue.length - this._head;
    }

    /**
     * The next `[topic, value]`. With `timeoutMs`, resolves to `null` when nothing arrives in
     * time. Rejects with code `shutting_down` once the subscriber is closed and drained.
     * @param {{timeoutMs?: number}} [options]
     * @returns {Promise<[string, unknown] | null>}
     */
    get({ timeoutMs } = {}) {
      if (this.available > 0) return Promise.resolve(this._take());
      if (this._closed) return Promise.reject(new BrokerError("shutting_down", "subscriber closed"));
      return new Promise((resolve, reject) => {
        const waiter = { resolve, reject };
        if (timeoutMs !== undefined) {
          const timer = setTimeout(() => {
            const i = this._waiters.indexOf(waiter);
            if (i >= 0) this._waiters.splice(i, 1);
            resolve(null);
          }, timeoutMs);
          waiter.resolve = (v) => { clearTimeout(timer); resolve(v); };
          waiter.reject = (e) => { clearTimeout(timer); reject(e); };
        }
        this._waiters.push(waiter);
      });
    }

    /** Every message queued now, without waiting (ZB-16). @returns {Array<[string, unknown]>} */
    poll() {
      const out = this._queue.slice(this._head);
      this._queue = [];
      this._head = 0;
      return out;
    }

    /** Adds a prefix at any time (ZB-17). @param {string} topic */
    addTopic(topic) {
      this._endpoint._core.addTopics(this._id, [topic]);
      this._endpoint._schedule();
    }

    /** Removes a prefix at any time (ZB-17). @param {string} topic */
    removeTopic(topic) {
      this._endpoint._core.removeTopics(this._id, [topic]);
      this._endpoint._schedule();
    }

    /** Stops the subscription; queued messages can still be taken. */
    close() {
      if (this._closed) return;
      this._endpoint._core.removeSubscriber(this._id);
      this._endpoint._subs.delete(this._id);
      this._endpoint._schedule();
      this._end();
    }

    async *[Symbol.asyncIterator]() {
      for (;;) {
        let item;
        try {
          item = await this.get();
        } catch (e) {
          if (e instanceof BrokerError && e.code === "shutting_down") return;
          throw e;
        }
        yield item;
      }
    }
  }

  /**
   * Status and error events (ZB-20): `{type: "status", code, message, node?, address?, port?}`
   * or `{type: "error", code, context}`.
   */
  class StatusSubscriber extends Subscriber {
    constructor(endpoint, receiveStatuses, queueSize) {
      super(endpoint, -1, queueSize);
      this.receiveStatuses = receiveStatuses;
    }
    addTopic() { throw new BrokerError("bad_member_function_call", "status subscribers have no topics"); }
    removeTopic() { throw new BrokerError("bad_member_function_call", "status subscribers have no topics"); }
    close() {
      this._endpoint._statusSubs.delete(this);
      this._end();
    }
  }

  /**
   * A client endpoint connected to one gateway. Mirrors Broker's Python `Endpoint`:
   * `peer`, `unpeer`, `publish`, `publishBatch`, `makeSubscriber`, `makeStatusSubscriber`,
   * `peers`, `peerSubscriptions`, `shutdown`.
   */
  class Endpoint {
    /**
     * @param {{name?: string, encoding?: "binary"|"json", statuses?: boolean,
     *          reconnectMaxMs?: number, queueSize?: number, token?: string}} [options]
     */
    constructor(options = {}) {
      this._core = new wasm.ClientCore(options.encoding === "json", options.name ?? "broker-js");
      this._json = options.encoding === "json";
      this._core.setStatuses(options.statuses ?? false);
      if (options.token !== undefined) this._core.setToken(options.token);
      this._queueSize = options.queueSize ?? 100_000;
      this._reconnectMaxMs = options.reconnectMaxMs ?? 10_000;
      this._subs = new Map();
      this._statusSubs = new Set();
      this._pending = new Map();
      this._pongs = new Map();
      this._stores = new Map();
      this._activity = [];
      this._tickTimer = null;
      this._waitingOpen = [];
      this._ws = null;
      this._url = null;
      this._attempt = 0;
      this._timer = null;
      this._stopped = false;
      this._scheduled = false;
      /** The gateway's endpoint id once connected. */
      this.peerId = null;
    }

    /**
     * Connects to the gateway at `url` (e.g. `ws://127.0.0.1:9999`) and resolves once it
     * welcomed us. Keeps reconnecting after losses (jittered backoff, subscriptions
     * restored) until `unpeer` or `shutdown`. Rejects with `peer_unavailable` if no
     * connection succeeds within `timeoutMs` (or at the first failure with `retry: false`),
     * and with `unauthorized` at once if the gateway refuses the token (no retries then).
     * @param {string} url
     * @param {{timeoutMs?: number, retry?: boolean}} [options]
     */
    peer(url, { timeoutMs = 10_000, retry = true } = {}) {
      this._url = url.replace(/\/+$/, "").replace(/\/v1\/broker$/, "") + PATH;
      this._stopped = false;
      this._retry = retry;
      if (this._core.isOpen) return Promise.resolve(true);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this._waitingOpen = this._waitingOpen.filter((w) => w.resolve !== resolve);
          if (!retry || !this._core.isOpen) {
            reject(new BrokerError("peer_unavailable", `no connection to ${url} within ${timeoutMs} ms`));
          }
        }, timeoutMs);
        this._waitingOpen.push({
          resolve: (v) => { clearTimeout(timer); resolve(v); },
          reject: (e) => { clearTimeout(timer); reject(e); },
        });
        if (!this._ws) this._open();
      });
    }

    /** Disconnects and stops reconnecting (ZB-05). */
    unpeer() {
      this._stopped = true;
      clearTimeout(this._timer);
      if (this._ws) this._ws.close();
    }

    /**
     * Publishes one message; queued and sent with whatever else is published in the same
     * turn of the event loop, as one frame. Throws a `BrokerError` for values with no Broker
     * type (`conversion_failed`) or bad topics (`invalid_topic_key`).
     * @param {string} topic @param {unknown} value
     */
    publish(topic, value) {
      try {
        this._core.publish(topic, value);
      } catch (e) {
        throw asBrokerError(e);
      }
      this._schedule();
    }

    /** Publishes `[[topic, value], ...]` in order (all or nothing). */
    publishBatch(items) {
      try {
        this._core.publishBatch(items);
      } catch (e) {
        throw asBrokerError(e);
      }
      this._schedule();
    }

    /**
     * A subscriber for one prefix or several.
     * @param {string | string[]} topics
     * @param {{queueSize?: number}} [options]
     */
    makeSubscriber(topics, { queueSize } = {}) {
      const list = typeof topics === "string" ? [topics] : [...topics];
      let id;
      try {
        id = this._core.addSubscriber(list);
      } catch (e) {
        throw asBrokerError(e);
      }
      const sub = new Subscriber(this, id, queueSize ?? this._queueSize);
      this._subs.set(id, sub);
      this._schedule();
      return sub;
    }

    /**
     * A status subscriber: errors always, statuses if `receiveStatuses` (ZB-20). Connection
     * changes of this endpoint arrive as `endpoint_discovered`/`peer_added` and
     * `peer_lost`/`peer_removed` + `endpoint_unreachable`.
     */
    makeStatusSubscriber(receiveStatuses = false) {
      const sub = new StatusSubscriber(this, receiveStatuses, this._queueSize);
      this._statusSubs.add(sub);
      return sub;
    }

    /** The gateway's direct peers. */
    peers() {
      return this._request("peers", {});
    }

    /** The union of the filters of the gateway's peers (ZB-07). */
    peerSubscriptions() {
      return this._request("peerSubscriptions", {});
    }

    /** Asks the gateway to peer with another gateway. */
    peerGateway(host, port, { retryMs } = {}) {
      return this._request("peer", { host, port, retryMs });
    }

    /**
     * A clone of store `name` (ZB-47): returned at once; `await store.ready()` for the first
     * snapshot. Options in seconds, as Broker's: `resyncInterval` (10), `staleInterval`
     * (300, negative = never), `mutationBufferInterval` (120). The clone follows the
     * connection: after a reconnect it attaches again and gets the difference.
     * @param {string} name
     * @param {{resyncInterval?: number, staleInterval?: number, mutationBufferInterval?: number}} [options]
     */
    attachClone(name, options = {}) {
      const existing = this._stores.get(name);
      if (existing) return existing;
      const store = new Store(this, name, options);
      this._stores.set(name, store);
      return store;
    }

    /**
     * Creates (or re-attaches) a master store on the gateway (ZB-44) and resolves with a
     * clone of it once in sync. `backend`: `"sqlite"` (default) or `"memory"`; `options`:
     * Broker's backend options as a `Map` (e.g. `path`).
     * @param {string} name
     * @param {{backend?: "sqlite"|"memory", options?: Map<string, unknown>, timeoutMs?: number}} [options]
     */
    async attachMaster(name, { backend = "sqlite", options, timeoutMs = 10_000 } = {}) {
      await this._request("attachMaster", { store: name, backend, options });
      return this.attachClone(name).ready(timeoutMs);
    }

    /** Names of the stores the gateway holds (masters and relayed clones). */
    async stores() {
      const r = await this._request("stores", {});
      return r.names;

    }

    /**
     * Creates a Data Broker namespace and attaches to it (DB-01). `level` 4 or 5
     * (`DBR_PERST_PERMANENT_*`) keeps it in the gateway's SQLite, others in memory.
     * Rejects with a `DbrError` (`DBR_ERR_EXISTS`, `DBR_ERR_NSINVAL`, ...).
     * @param {string} name @param {{level?: number, groups?: string[]}} [options]
     */
    createNamespace(name, { level = 0, groups = [] } = {}) {
      return Namespace._open(this, { op: "create", name, level, groups });
    }

    /** Names of every namespace of the gateway, sorted (not in the Data Broker API). */
    async namespaces() {
      const r = await this._request("namespace", { op: "list" });
      return r.names;
    }

    /** Attaches to an existing namespace (DB-03); rejects with `DBR_ERR_UNAVAIL` if missing. */
    attachNamespace(name) {
      return Namespace._open(this, { op: "attach", name });
    }

    /** PyDBR's API over this endpoint (DB-28). @param {{timeout?: number}} [options] */
    dbr(options) {
      return createDbr(this, options);
    }

    /** Resolves once the gateway has processed everything published before. */
    flush() {
      const nonce = this._core.ping();
      const p = new Promise((resolve, reject) => this._pongs.set(nonce, { resolve, reject }));
      this._schedule();
      return p;
    }

    /** Disconnects for good; subscribers drain and then end. */
    async shutdown() {
      this._flush();
      this.unpeer();
      for (const s of this._subs.values()) s._end();
      for (const s of this._statusSubs) s._end();
    }

    _request(kind, args) {
      if (!this._core.isOpen) return Promise.reject(new BrokerError("shutting_down", "not connected"));
      let id;
      try {
        id = this._core.request(kind, args);
      } catch (e) {
        return Promise.reject(asBrokerError(e));
      }
      const p = new Promise((resolve, reject) => this._pending.set(id, { resolve, reject }));
      this._schedule();
      return p;
    }

    // Store operations wait while disconnected (the clone's mutation buffer interval).
    _storeRequest(store, op, args) {
      let id;
      try {
        id = this._core.storeRequest(store, op, args);
      } catch (e) {
        return Promise.reject(asBrokerError(e));
      }
      const p = new Promise((resolve, reject) => this._pending.set(id, { resolve, reject }));
      this._schedule();
      this._armTick();
      return p;
    }

    // Resolves after the next batch of events.
    _nextActivity() {
      return new Promise((resolve) => this._activity.push(resolve));
    }

    // Clone retries and buffered-write timeouts run on the core's timers.
    _armTick() {
      if (this._tickTimer || !this._core.needsTick) return;
      this._tickTimer = setTimeout(() => {
        this._tickTimer = null;
        this._dispatch(this._core.tick());
        this._flush();
        this._armTick();
      }, 50);
    }

    // A request whose promise resolves with the raw response event (ok or not), and its id
    // (for `_cancel`). Throws if the arguments cannot be converted.
    _requestRaw(kind, args) {
      const id = this._core.request(kind, args);
      const promise = new Promise((resolve) => this._pending.set(id, { resolve, reject: resolve, raw: true }));
      this._schedule();
      return { id, promise };
    }

    // Asks the gateway to cancel a pending request; its response still arrives.
    _cancel(id) {
      this._core.cancel(id);
      this._schedule();
    }

    _schedule() {
      if (this._scheduled) return;
      this._scheduled = true;
      queueMicrotask(() => this._flush());
    }

    _flush() {
      this._scheduled = false;
      const ws = this._ws;
      if (!ws || ws.readyState !== 1) return;
      const frame = this._core.takeFrame();
      if (frame !== undefined) ws.send(this._json ? textDecoder.decode(frame) : frame);
    }

    _status(code, message, extra = {}) {
      this._deliverStatus({ type: "status", code, message, node: this.peerId ?? undefined, ...extra });
    }

    _deliverStatus(event) {
      for (const s of this._statusSubs) {
        if (event.type === "status" && !s.receiveStatuses) continue;
        s._push(event);
      }
    }

    _open() {
      let ws;
      try {
        ws = new WebSocketImpl(this._url, this._core.subprotocol);
      } catch (e) {
        this._failed(e);
        return;
      }
      ws.binaryType = "arraybuffer";
      this._ws = ws;
      ws.onopen = () => {
        this._core.onOpen();
        this._flush();
      };
      ws.onmessage = (msg) => {
        let events;
        try {
          events = typeof msg.data === "string" ? this._core.onText(msg.data) : this._core.onFrame(new Uint8Array(msg.data));
        } catch (e) {
          this._deliverStatus({ type: "error", code: asBrokerError(e).code, context: String(e.message) });
          return;
        }
        this._dispatch(events);
        this._flush();
      };
      ws.onerror = () => {};
      ws.onclose = () => {
        const wasOpen = this._core.isOpen;
        this._ws = null;
        this._dispatch(this._core.onClose());
        if (wasOpen) {
          this._status(this._stopped ? "peer_removed" : "peer_lost", this._stopped ? "disconnected" : "lost the connection to the gateway");
          this._status("endpoint_unreachable", "lost the last path to the gateway");
        } else {
          this._failed(new Error("connection failed"));
        }
        if (!this._stopped && (wasOpen || this._retry !== false)) this._reconnect();
        if (this._stopped) {
          for (const w of this._waitingOpen.splice(0)) w.reject(new BrokerError("peer_unavailable", "unpeered"));
        }
      };
    }

    _failed(e) {
      this._deliverStatus({ type: "error", code: "peer_unavailable", context: `unable to connect to ${this._url}: ${e.message ?? e}` });
      if (this._retry === false) {
        this._stopped = true;
        for (const w of this._waitingOpen.splice(0)) w.reject(new BrokerError("peer_unavailable", `unable to connect to ${this._url}`));
      }
    }

    _reconnect() {
      const delay = wasm.reconnectDelayMs(this._attempt++, this._reconnectMaxMs, Math.random());
      clearTimeout(this._timer);
      this._timer = setTimeout(() => {
        if (!this._stopped && !this._ws) this._open();
      }, delay);
    }

    // Events of one frame: messages as `subscriber(s), topic, value` triples, other events as
    // objects with a `type`.
    _dispatch(events) {
      for (let i = 0; i < events.length; i++) {
        const e = events[i];
        if (typeof e === "number") {
          this._subs.get(e)?._push([events[i + 1], events[i + 2]]);
          i += 2;
          continue;
        }
        if (Array.isArray(e)) {
          const item = [events[i + 1], events[i + 2]];
          for (let j = 0; j < e.length; j++) this._subs.get(e[j])?._push(item);
          i += 2;
          continue;
        }
        switch (e.type) {
          case "connected":
            this._attempt = 0;
            this.peerId = e.endpoint;
            this._status("endpoint_discovered", "found the gateway", { node: e.endpoint });
            this._status("peer_added", "handshake successful", { node: e.endpoint });
            for (const w of this._waitingOpen.splice(0)) w.resolve(true);
            break;
          case "status":
            this._deliverStatus(e);
            break;
          case "error":
            this._deliverStatus(e);
            if (e.code === "unauthorized" && !this._core.isOpen) {
              // The gateway refused our token: retrying cannot help.
              this._stopped = true;
              clearTimeout(this._timer);
              for (const w of this._waitingOpen.splice(0)) w.reject(new BrokerError("unauthorized", e.context));
            }
            break;
          case "response": {
            const p = this._pending.get(e.id);
            if (!p) break;
            this._pending.delete(e.id);
            if (p.raw) p.resolve(e);
            else if (e.ok) p.resolve(e.value);
            else p.reject(new BrokerError(String(e.code), e.context));
            break;
          }
          case "pong": {
            const p = this._pongs.get(e.nonce);
            if (p) {
              this._pongs.delete(e.nonce);
              p.resolve();
            }
            break;
          }
          case "disconnected":
            for (const p of this._pongs.values()) p.reject(new BrokerError("shutting_down", "disconnected"));
            this._pongs.clear();
            break;
          case "store":
          case "storeError":
            this._stores.get(e.store)?._onEvent(e);
            break;
          default:
            break;
        }
      }
      if (this._activity.length) for (const r of this._activity.splice(0)) r();
      this._armTick();
    }
  }

  return { Endpoint, Subscriber, StatusSubscriber, BrokerError, Store, Namespace };
}

// The JS API over the wasm client core: `Endpoint` (the public methods; the connection
// machinery is in connection.js), with `Subscriber`, `StatusSubscriber` (subscriber.js),
// `Store` (store.js) and Data Broker namespaces (namespace.js). All protocol logic is in the
// core; these files own the WebSocket, timers and promises.

import { factories } from "./values.js";
import { BrokerError, asBrokerError } from "./errors.js";
import { Connection } from "./connection.js";
import { Subscriber, StatusSubscriber } from "./subscriber.js";
import { Store } from "./store.js";
import { Namespace, createDbr } from "./namespace.js";
import { installDbrCodes } from "./dbr-codes.js";
import { SharedEndpoint } from "./shared.js";

export { BrokerError };

const PATH = "/v1/broker";

/**
 * The public methods of an endpoint; `createApi` binds it to one wasm build and one
 * WebSocket class as `Endpoint`.
 */
class EndpointApi extends Connection {
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
    // A clone waiting to retry its attach would keep ticking (and keep Node running).
    clearTimeout(this._tickTimer);
    this._tickTimer = null;
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
   * Asks the gateway to join a Zeek node's WebSocket API as a client (grant `admin`), or to
   * change its uplink to that URL. `subscribe`: topic prefixes taken from Zeek (default
   * `["zeek/"]`); `publish`: prefixes whose events go up to Zeek (default none); `headers`:
   * extra handshake headers (`{Authorization: "..."}`); `appName`: `X-Application-Name`.
   * @param {string} url `ws://HOST:PORT/v1/messages/json` or `wss://...`
   * @param {{subscribe?: string[], publish?: string[], headers?: Record<string, string>, appName?: string}} [options]
   */
  zeekUplink(url, { subscribe, publish, headers, appName } = {}) {
    return this._request("zeekUplink", { url, subscribe, publish, headers, appName });
  }

  /** Ends the gateway's uplink to `url` (grant `admin`). */
  zeekUnlink(url) {
    return this._request("zeekUnlink", { url });
  }

  /**
   * The gateway's uplinks to Zeek nodes: `[{url, state, zeek_endpoint, zeek_version,
   * subscribe, publish, messages_in, messages_out, errors, refused, connects, last_error}]`.
   */
  zeekUplinks() {
    return this._request("zeekUplinks", {});
  }

  /**
   * A clone of store `name` (ZB-47): returned at once; `await store.ready()` for the first
   * snapshot. Options in seconds, as Broker's: `resyncInterval` (10), `staleInterval`
   * (300, negative = never), `mutationBufferInterval` (120). The clone follows the
   * connection: after a reconnect it attaches again and gets the difference (only the
   * updates since, when the gateway still has them). `persist: true` (or a key) keeps the
   * clone's state in the browser's IndexedDB: a reloaded page reads it at once (`stale`
   * until in sync); ignored where IndexedDB is missing. `optimistic: true`: writes through
   * the clone show in its reads at once, pending until the master confirms or rolls them
   * back (`pending`, `confirmed`, `rollback` changes; `isPending(key)`).
   * @param {string} name
   * @param {{resyncInterval?: number, staleInterval?: number, mutationBufferInterval?: number, persist?: boolean | string, optimistic?: boolean}} [options]
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

  /**
   * Where this endpoint is in the gateway's histories (`--history`): `{epoch, offsets}`,
   * the gateway's run and the last position received per history prefix. After a dropped
   * connection the endpoint resumes by itself; save this to resume after a restart of the
   * application (`new Endpoint({ resumeFrom })`, or `resume`).
   */
  position() {
    return this._core.position;
  }

  /**
   * Asks the gateway for what was published under its history prefixes since `position`,
   * for the subscriptions held now; it arrives before newer messages, each once. What cannot
   * be replayed is a `{type: "gap"}` status event.
   */
  resume(position) {
    try {
      this._core.resumeFrom(position);
    } catch (e) {
      throw new BrokerError("invalid_data", String(e.message ?? e));
    }
    this._schedule();
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
}

/**
 * Builds the API for one wasm build and one WebSocket implementation.
 * @param {any} wasm the wasm-bindgen module (initialised)
 * @param {any} WebSocketImpl the WebSocket class (the browser's, or the `ws` package in Node)
 */
export function createApi(wasm, WebSocketImpl, { sharedWorkerUrl } = {}) {
  wasm.registerValueClasses(factories);
  installDbrCodes(wasm);
  const runtime = { wasm, WebSocketImpl, sharedWorkerUrl };

  /**
   * A client endpoint connected to one gateway. Mirrors Broker's Python `Endpoint`:
   * `peer`, `unpeer`, `publish`, `publishBatch`, `makeSubscriber`, `makeStatusSubscriber`,
   * `peers`, `peerSubscriptions`, `shutdown`.
   */
  class Endpoint extends EndpointApi {
    /**
     * With `shared: true` in a browser that has SharedWorker, the connection lives in a
     * SharedWorker that every tab of the origin shares (see `SharedEndpoint`); elsewhere
     * the endpoint has its own connection.
     * @param {{name?: string, encoding?: "binary"|"json", statuses?: boolean,
     *          reconnectMaxMs?: number, queueSize?: number, token?: string,
     *          shared?: boolean}} [options]
     */
    constructor(options = {}) {
      if (options.shared && runtime.sharedWorkerUrl && typeof SharedWorker === "function") {
        // A constructor may hand back another object: the shared endpoint's tab side.
        return new SharedEndpoint(runtime, options);
      }
      super(runtime, options);
    }
  }

  return { Endpoint, Subscriber, StatusSubscriber, BrokerError, Store, Namespace };
}

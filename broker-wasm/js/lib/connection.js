// The wire side of an Endpoint: the WebSocket, reconnects, frames in and out of the wasm
// client core, request promises and the dispatch of the core's events. `Endpoint`
// (endpoint.js) adds the public API on top. All protocol logic is in the core.

import { BrokerError, asBrokerError } from "./errors.js";

const textDecoder = new TextDecoder();

/** `bytes` random bytes as hex (Web Crypto: browsers and Node 20). */
function randomHex(bytes) {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** The state and plumbing of one endpoint's connection (see `Endpoint`). */
export class Connection {
  /**
   * @param {{wasm: any, WebSocketImpl: any}} runtime the wasm build and the WebSocket class
   * @param {object} options the Endpoint's options
   */
  constructor(runtime, options) {
    this._wasm = runtime.wasm;
    this._WebSocket = runtime.WebSocketImpl;
    this._core = new this._wasm.ClientCore(options.encoding === "json", options.name ?? "broker-js");
    this._json = options.encoding === "json";
    this._core.setStatuses(options.statuses ?? false);
    if (options.token !== undefined) this._core.setToken(options.token);
    // Resuming (gateways with `--history`): this endpoint's name across its connections, and
    // where to resume from after the application's own restart.
    this._core.setInstance(randomHex(16));
    if (options.resumeFrom !== undefined) {
      try {
        this._core.setPosition(options.resumeFrom);
      } catch (e) {
        throw new BrokerError("invalid_data", String(e.message ?? e));
      }
    }
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
    // An optimistic clone's write shows at once (its "pending" change).
    this._dispatch(this._core.takeEvents());
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
    if (this._tickTimer || this._stopped || !this._core.needsTick) return;
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
      ws = new this._WebSocket(this._url, this._core.subprotocol);
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
    const delay = this._wasm.reconnectDelayMs(this._attempt++, this._reconnectMaxMs, Math.random());
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
      this._onEvent(e);
    }
    if (this._activity.length) for (const r of this._activity.splice(0)) r();
    this._armTick();
  }

  // One event other than a message.
  _onEvent(e) {
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
      case "gap":
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
      case "storeWrite":
        this._stores.get(e.store)?._onEvent(e);
        break;
      default:
        break;
    }
  }
}

// The SharedWorker behind `new Endpoint({ shared: true })`: one real Endpoint (one WebSocket)
// per gateway URL for every tab of the origin. Each tab talks to it over its MessagePort
// (protocol in shared.js); its subscribers and status subscribers are real ones here (the
// core merges their prefixes into the connection's subscription and drops a prefix when its
// last subscriber goes), clones are shared by store name and counted. A tab's part goes when
// it says goodbye (pagehide) or stops beating for BEAT_TIMEOUT_MS.
import { init, Endpoint, encodeJs, decodeJs } from "../index.js";
import { nsRequest } from "./dbr-namespace.js";

const BEAT_TIMEOUT_MS = 5_000;
const ready = init();

/** url -> { ep, tabs: Set<Tab>, stores: Map<name, {store, count}> } */
const gateways = new Map();

const enc = (v) => encodeJs(v);
const dec = (b) => decodeJs(b);
const errorOf = (e) => ({
  code: e?.code ?? "unspecified",
  message: String(e?.message ?? e),
  errno: e?.errno,
  size: e?.size,
});
const notPeered = () => Object.assign(new Error("not peered"), { code: "peer_unavailable" });

class Tab {
  constructor(port) {
    this.port = port;
    this.gateway = null;
    this.subs = new Map();
    this.topics = new Map(); // sid -> its prefixes, for messages between tabs
    this.wantsStatuses = false; // whether the tab made a status subscriber
    this.stores = new Map(); // name -> unsubscribe of its change listener
    this.waiting = []; // messages that came before `peer`
    this.aborts = new Map(); // rid -> AbortController of a namespace request
    this.seen = Date.now();
    port.onmessage = (e) => this.onMessage(e.data);
    port.start();
  }

  post(msg, transfer) {
    try {
      this.port.postMessage(msg, transfer ?? []);
    } catch {
      // The tab is gone; its beat stops and it is released.
    }
  }

  reply(rid, work) {
    Promise.resolve()
      .then(work)
      .then(
        (value) => this.post({ rid, ok: true, value }),
        (e) => this.post({ rid, ok: false, error: errorOf(e) }),
      );
  }

  async onMessage(m) {
    this.seen = Date.now();
    await ready;
    // Subscribing and publishing may come before `peer` (as with an endpoint of its own):
    // they wait for it.
    if (!this.gateway && !["peer", "beat", "bye", "statuses"].includes(m.op)) {
      this.waiting.push(m);
      return;
    }
    try {
      this.handle(m);
    } catch (e) {
      // What an endpoint of its own would throw at the call (a bad topic, ...) arrives here
      // late: the tab's status subscribers get it as an error.
      this.post({ ev: "status", event: { type: "error", code: e?.code ?? "unspecified", context: String(e?.message ?? e) } });
    }
  }

  handle(m) {
    const g = this.gateway;
    switch (m.op) {
      case "beat":
        return;
      case "bye":
        return this.release();
      case "peer":
        return this.reply(m.rid, () => this.peer(m.url, m.options, m.endpoint));
      case "publish":
        g?.ep.publish(m.topic, dec(m.value));
        return this.fanOut([[m.topic, m.value]]);
      case "publishBatch":
        g?.ep.publishBatch(m.items.map(([t, v]) => [t, dec(v)]));
        return this.fanOut(m.items);
      case "subscribe":
        this.topics.set(m.sid, new Set(m.topics));
        return this.subscribe(m.sid, m.topics);
      case "addTopics":
        for (const t of m.topics) {
          this.subs.get(m.sid)?.addTopic(t);
          this.topics.get(m.sid)?.add(t);
        }
        return;
      case "removeTopics":
        for (const t of m.topics) {
          this.subs.get(m.sid)?.removeTopic(t);
          this.topics.get(m.sid)?.delete(t);
        }
        return;
      case "unsubscribe":
        this.subs.get(m.sid)?.close();
        this.subs.delete(m.sid);
        this.topics.delete(m.sid);
        return;
      case "statuses":
        this.wantsStatuses = true;
        return;
      case "call":
        return this.reply(m.rid, () => {
          if (!g) throw notPeered();
          return g.ep[m.method](...(m.args ?? []));
        });
      case "ns": {
        // The endpoint's namespace request, with its rules for a cancel (DB-25).
        const abort = new AbortController();
        this.aborts.set(m.rid, abort);
        const args = m.encoded ? { ...m.args, value: dec(m.args.value) } : m.args;
        return this.reply(m.rid, async () => {
          try {
            const r = await nsRequest(g.ep, args, abort.signal);
            // A read's or get's value goes back encoded (see shared.js).
            return r !== null && typeof r === "object" && "value" in r ? { ...r, value: enc(r.value), encodedValue: true } : r;
          } finally {
            this.aborts.delete(m.rid);
          }
        });
      }
      case "nsAbort":
        return this.aborts.get(m.rid)?.abort();
      case "master":
        return this.reply(m.rid, async () => {
          const options = m.options === undefined ? undefined : dec(m.options);
          await g.ep._request("attachMaster", { store: m.name, backend: m.backend, options });
        });
      case "clone":
        return this.clone(m.name, m.options);
      case "storeOp":
        return this.reply(m.rid, async () => {
          const args = Object.fromEntries(
            Object.entries(m.args).map(([k, v]) => [k, v instanceof Uint8Array ? dec(v) : v]),
          );
          const r = await g.ep._storeRequest(m.name, m.storeOp, args);
          return r === undefined ? undefined : enc(r);
        });
      case "unclone":
        return this.unclone(m.name);
    }
  }

  async peer(url, options, endpointOptions) {
    let g = gateways.get(url);
    if (!g) {
      const { shared: _, ...own } = endpointOptions ?? {};
      g = { ep: new Endpoint({ name: "broker-js-shared", ...own }), tabs: new Set(), stores: new Map(), up: null };
      gateways.set(url, g);
      // Statuses of the one connection reach every tab; `up` keeps the events that said it
      // is connected, for tabs that join later.
      const st = g.ep.makeStatusSubscriber(true);
      (async () => {
        let found = null;
        for await (const e of st) {
          if (e.code === "endpoint_discovered") found = e;
          if (e.code === "peer_added") g.up = [found, e].filter(Boolean);
          if (e.code === "peer_lost" || e.code === "peer_removed") g.up = null;
          for (const t of g.tabs) t.statusEvent(e);
        }
      })();
    }
    this.gateway = g;
    const joined = g.up;
    g.tabs.add(this);
    for (const m of this.waiting.splice(0)) this.onMessage(m);
    await g.ep.peer(url, options);
    // A tab that joins an open connection hears that it is connected, as on its own.
    for (const e of joined ?? []) this.statusEvent(e);
    return g.ep.peerId;
  }

  /**
   * What separate connections would get from the gateway: a tab's publishes reach the
   * matching subscribers of the other tabs (the gateway sends nothing back to the connection
   * a message came from).
   */
  fanOut(items) {
    for (const other of this.gateway?.tabs ?? []) {
      if (other === this) continue;
      for (const [sid, prefixes] of other.topics) {
        for (const [topic, bytes] of items) {
          if ([...prefixes].some((p) => topic.startsWith(p))) {
            other.post({ ev: "msg", sid, topic, value: bytes });
          }
        }
      }
    }
  }

  subscribe(sid, topics) {
    const sub = this.gateway.ep.makeSubscriber(topics);
    this.subs.set(sid, sub);
    (async () => {
      for await (const [topic, value] of sub) {
        const bytes = enc(value);
        this.post({ ev: "msg", sid, topic, value: bytes }, [bytes.buffer]);
      }
    })();
  }

  statusEvent(e) {
    // With the gateway's id as the endpoint knows it when the event came (as `ep.peerId`).
    if (this.wantsStatuses) this.post({ ev: "status", event: e, peerId: this.gateway?.ep.peerId });
  }

  clone(name, options) {
    const g = this.gateway;
    let s = g.stores.get(name);
    if (!s) {
      s = { store: g.ep.attachClone(name, options), count: 0 };
      g.stores.set(name, s);
    }
    s.count++;
    const store = s.store;
    const forward = (c) => {
      const out = { ...c };
      for (const k of ["key", "value", "old", "expiry"]) if (c[k] !== undefined) out[k] = enc(c[k]);
      this.post({ ev: "change", name, change: out });
    };
    // In one turn: the listener, then the snapshot if there is one, so nothing falls between.
    this.stores.set(name, store.onChange(forward));
    if (store.synced) this.post({ ev: "snapshot", name, entries: snapshot(store) });
    else store.ready(3_600_000).catch(() => {});
  }

  unclone(name) {
    const off = this.stores.get(name);
    if (!off) return;
    off();
    this.stores.delete(name);
    const g = this.gateway;
    const s = g.stores.get(name);
    if (s && --s.count === 0) {
      s.store.detach();
      g.stores.delete(name);
    }
  }

  release() {
    for (const a of this.aborts.values()) a.abort();
    this.aborts.clear();
    for (const s of this.subs.values()) s.close();
    this.subs.clear();
    this.topics.clear();
    this.wantsStatuses = false;
    for (const name of [...this.stores.keys()]) this.unclone(name);
    const g = this.gateway;
    tabs.delete(this);
    if (!g) return;
    g.tabs.delete(this);
    if (g.tabs.size === 0) {
      for (const [url, other] of gateways) if (other === g) gateways.delete(url);
      g.ep.shutdown();
    }
  }
}

/** Every entry of a synced clone: [key, value, expiry] encoded. */
function snapshot(store) {
  return store.entries().map(([k, v]) => {
    const e = store.expiry(k);
    return [enc(k), enc(v), e === undefined ? undefined : enc(e)];
  });
}

const tabs = new Set();
setInterval(() => {
  const now = Date.now();
  for (const t of [...tabs]) if (now - t.seen > BEAT_TIMEOUT_MS) t.release();
}, 1_000);

globalThis.onconnect = (e) => {
  for (const port of e.ports) tabs.add(new Tab(port));
};

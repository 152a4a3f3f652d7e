// Stores: the gateway's stores (`ep.stores()`); one opened as a clone and shown in a
// virtualised table read with `store.entries(start, limit)`; changes are collected from
// `onChange` and applied once per animation frame, changed cells flash; search by key prefix;
// put / erase / increment. Stores named `zeek:` mirror Zeek tables: read-only, no write form.
// A store whose master the gateway lost is marked stale until changes flow again.
import { VirtualList } from "./vlist.js";
import { renderValue, valueText, typeOf, spanText, timeText, fillTypeSelect, parseValue, typeHint } from "./format.js";

const $ = (id) => document.getElementById(id);
const ROW = 28;
const FLASH_MS = 1000;

const keyText = (k) => (typeof k === "string" ? k : valueText(k));
const keyId = (k) => (typeof k === "string" ? `s${k}` : `${typeOf(k)}:${valueText(k)}`);
/** Stores that mirror a Zeek table (`&publish_on_change`), which only Zeek changes. */
const ZEEK_PREFIX = "zeek:";
const isZeekTable = (name) => name.startsWith(ZEEK_PREFIX);
/** The context of the clone's error while the gateway has lost the store's master. */
const LOST_MASTER = /lost the store's master/;
/** How often the list of stores is refreshed while the view is shown (new `zeek:` tables). */
const LIST_MS = 3000;

function expiryText(ts, now) {
  if (!ts) return "";
  const left = ts.ns - BigInt(Math.round(now)) * 1_000_000n;
  return left <= 0n ? "expiring" : `in ${spanText(left)}`;
}

/** The stores view: the list of stores, one clone in a table, writes. */
class StoresView {
  constructor(ctx) {
    this.ctx = ctx;
    this.ep = ctx.ep;
    this.store = null;
    this.off = null;
    this.prefix = "";
    this.keys = null; // keys matching the prefix, when searching
    this.structural = false; // keys added or removed since the last frame
    this.changed = 0; // changes since the last frame
    this.dirty = true;
    this.lastRescan = 0;
    this.lastTick = 0;
    this.changedAt = new Map();
    this.flashUntil = 0;
    this.state = "no store open";
    this.initial = true; // the first snapshot's inserts are not changes worth a flash
    this.error = "";
    this.refused = false; // the gateway refused the clone for good (e.g. unauthorized)
    this.stale = false; // the gateway lost the store's master: the entries are the last known
    this.readOnly = false; // a mirror of a Zeek table
    this.listed = ""; // the store names in the picker, to rebuild it only when they change
    this.stateShown = false; // the state line shows the current state
    this.stat = { changes: 0, rate: 0, windowStart: performance.now(), windowCount: 0 };
    this.list = new VirtualList($("store-viewport"), {
      rowHeight: ROW,
      count: () => this.size(),
      makeRow: () => this.makeRow(),
      render: (start, rows) => this.renderRows(start, rows),
    });
    this.bindPicker();
    this.bindWrites();
    setInterval(() => {
      if (this.ctx.currentView() === "stores") this.refreshList();
    }, LIST_MS);
  }

  size() {
    if (!this.store) return 0;
    return this.keys ? this.keys.length : this.store.size;
  }

  rescan() {
    this.lastRescan = performance.now();
    this.structural = false;
    if (!this.store || !this.prefix) {
      this.keys = null;
      return;
    }
    this.keys = [];
    try {
      for (const k of this.store.keys) if (keyText(k).startsWith(this.prefix)) this.keys.push(k);
    } catch (e) {
      this.error = e.message;
    }
  }

  makeRow() {
    const row = document.createElement("div");
    row.setAttribute("role", "row");
    row.className = "vrow";
    for (const cls of ["key", "value", "expiry"]) {
      const c = document.createElement("span");
      c.setAttribute("role", "cell");
      c.className = cls;
      row.append(c);
    }
    row.addEventListener("click", () => {
      if (row._key === undefined) return;
      const k = row._key;
      $("sk-type").value = typeof k === "string" ? "string" : "typed";
      $("sk").value = typeof k === "string" ? k : this.ctx.broker.jsToTypedJson(k);
    });
    return row;
  }

  /** `[key, value]` of rows `start..start+n` (with the search, of the matching keys). */
  pairs(start, n) {
    try {
      const pairs = this.keys
        ? this.keys.slice(start, start + n).map((k) => [k, this.store.get(k)])
        : this.store.entries(start, n);
      this.error = "";
      return pairs;
    } catch (e) {
      this.error = `${e.code ?? "error"}: ${e.message}`;
      return [];
    }
  }

  renderRows(start, rows) {
    const pairs = this.pairs(start, rows.length);
    const now = Date.now();
    const pnow = performance.now();
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      const [kc, vc, ec] = row.children;
      const pair = pairs[i];
      if (!pair) {
        row._key = undefined;
        kc._kid = undefined;
        kc.textContent = vc.textContent = ec.textContent = "";
        continue;
      }
      const [k, v] = pair;
      row._key = k;
      row.setAttribute("aria-rowindex", String(start + i + 2));
      // String keys as plain text; other keys (a Zeek table's addresses, ports, or vectors
      // for indexes of several columns) rendered by type like values.
      const kid = keyId(k);
      if (kc._kid !== kid) {
        kc._kid = kid;
        const kt = keyText(k);
        if (typeof k === "string") kc.textContent = kt;
        else renderValue(kc, k);
        kc.title = kt;
      }
      renderValue(vc, v);
      const pending = this.store.isPending?.(k) ?? false;
      row.classList.toggle("pending", pending);
      vc.title = pending ? "written here; waiting for the master" : "";
      const t = this.changedAt.get(keyId(k));
      vc.classList.toggle("changed", t !== undefined && pnow - t < FLASH_MS);
      let exp;
      try {
        exp = this.store.expiry(k);
      } catch {
        exp = undefined;
      }
      ec.textContent = expiryText(exp, now);
      ec.title = exp ? timeText(exp) : "";
    }
  }

  onChange(c) {
    switch (c.type) {
      case "insert":
      case "erase":
      case "expire":
        this.structural = true;
      // falls through
      case "update":
        this.changed++;
        this.stat.changes++;
        if (!this.initial) this.changedAt.set(keyId(c.key), performance.now());
        this.fresh(); // changes flow again
        break;
      case "pending":
      case "confirmed":
        // An optimistic write of this page: the row shows (or stops showing) it as pending.
        this.structural = true;
        this.changed++;
        break;
      case "rollback": {
        this.structural = true;
        this.changed++;
        const out = $("store-result");
        out.textContent = `rolled back ${keyText(c.key)}: ${c.code}: ${c.message}`;
        out.className = "error";
        break;
      }
      case "reset":
        this.state = "master restarted: resynchronising";
        this.structural = true;
        this.fresh(false);
        break;
      case "synced":
        this.state = "in sync";
        this.initial = false;
        this.structural = true;
        this.changed++;
        this.fresh(false);
        break;
      case "error":
        // A final refusal (e.g. a token without `store_read`) will not change: say so at once
        // instead of waiting. Other errors (`no_such_master`) are retried by the clone. The
        // gateway losing the master (e.g. a Zeek table's uplink is down) leaves the last known
        // entries readable: marked stale until changes arrive again.
        this.refused = c.permanent;
        if (!c.permanent && LOST_MASTER.test(c.message ?? "")) {
          this.stale = true;
          this.state = "stale (the gateway lost the master)";
        } else {
          this.state = this.refused ? `refused by the gateway: ${c.code} (${c.message})` : `waiting for the master (${c.code})`;
        }
        this.stateShown = false;
        this.dirty = true;
        break;
    }
  }

  /** The store is live again; `inSync`: say so in the state line. */
  fresh(inSync = true) {
    if (!this.stale) return;
    this.stale = false;
    if (inSync) this.state = "in sync";
    this.stateShown = false;
  }

  showState() {
    const el = $("store-state");
    const { store, refused } = this;
    el.textContent = store ? `${store.name}: ${refused ? this.state : this.error || this.state}` : this.state;
    el.classList.toggle("error", Boolean(store && refused));
    $("store-stale").hidden = !(store && this.stale && !refused);
    $("store-readonly").hidden = !(store && this.readOnly);
    $("store-form").hidden = Boolean(store && this.readOnly);
    this.stateShown = true;
  }

  open(name) {
    if (!name) return;
    // Opening a refused store again asks the gateway again.
    if (this.store?.name === name && !this.refused) return;
    this.close();
    this.readOnly = isZeekTable(name);
    // A Zeek table stays readable however long its uplink is away (marked stale meanwhile).
    // Writes from the page show at once, marked pending until the master answers.
    this.store = this.ep.attachClone(name, this.readOnly ? { resyncInterval: 1, staleInterval: -1 } : { resyncInterval: 1, optimistic: true });
    this.state = "attaching…";
    this.refused = false;
    this.stale = false;
    $("store-result").textContent = "";
    this.stateShown = false;
    this.initial = true;
    this.off = this.store.onChange((c) => this.onChange(c));
    this.changedAt.clear();
    this.rescan();
    this.dirty = true;
    $("store-viewport").scrollTop = 0;
    document.body.dataset.store = name;
  }

  close() {
    if (!this.store) return;
    this.off?.();
    this.store.detach();
    this.store = null;
    this.keys = null;
    this.state = "no store open";
    this.refused = false;
    this.stale = false;
    this.readOnly = false;
    this.stateShown = false;
    this.dirty = true;
  }

  async refreshList() {
    if (document.body.dataset.conn !== "connected") return;
    let names;
    try {
      names = await this.ep.stores();
    } catch {
      return;
    }
    // Rebuilt only when the names changed (the list is refreshed while the view is shown).
    const listed = JSON.stringify(names);
    if (listed === this.listed) return;
    this.listed = listed;
    const sel = $("store-select");
    const cur = sel.value || this.store?.name || "";
    sel.textContent = "";
    sel.add(new Option(names.length ? "(choose a store)" : "(no stores)", ""));
    for (const n of names) {
      const o = new Option(isZeekTable(n) ? `${n} (Zeek table, read-only)` : n, n, false, n === cur);
      sel.add(o);
    }
  }

  bindPicker() {
    $("store-refresh").addEventListener("click", () => this.refreshList());
    $("store-open").addEventListener("click", () => this.open($("store-select").value));
    $("store-select").addEventListener("change", (e) => this.open(e.target.value));
    $("store-search").addEventListener("input", (e) => {
      this.prefix = e.target.value;
      this.rescan();
      $("store-viewport").scrollTop = 0;
      this.dirty = true;
    });
  }

  // ---- writes ----
  bindWrites() {
    fillTypeSelect($("sk-type"), "string");
    fillTypeSelect($("sv-type"), "count");
    const hint = () => {
      $("sk").placeholder = typeHint($("sk-type").value);
      $("sv").placeholder = typeHint($("sv-type").value);
    };
    $("sk-type").addEventListener("change", hint);
    $("sv-type").addEventListener("change", hint);
    hint();
    $("store-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.write(e.submitter?.dataset.op ?? "put");
    });
  }

  /** `put`, `erase` or `increment` with the form's key, value and expiry. */
  async write(op) {
    const out = $("store-result");
    out.className = "";
    const store = this.store;
    if (!store) {
      out.textContent = "open a store first";
      out.className = "error";
      return;
    }
    if (this.readOnly) {
      out.textContent = `${store.name} mirrors a Zeek table (read-only)`;
      out.className = "error";
      return;
    }
    try {
      const key = parseValue($("sk-type").value, $("sk").value);
      const raw = $("sv").value;
      const expiry = $("sexp").value.trim();
      const opts = expiry === "" ? {} : { expiry: Number(expiry) };
      out.textContent = `${op}…`;
      if (op === "put") await store.put(key, parseValue($("sv-type").value, raw), opts);
      else if (op === "erase") await store.erase(key);
      else await store.increment(key, raw.trim() === "" ? undefined : parseValue($("sv-type").value, raw), opts);
      out.textContent = `${op} ${keyText(key)}: done`;
      out.className = "ok";
    } catch (err) {
      out.textContent = `${op} failed: ${err.code ? `${err.code}: ` : ""}${err.message}`;
      out.className = "error";
    }
  }

  /** Changes per second, over windows of a second. */
  measure(now) {
    const stat = this.stat;
    if (now - stat.windowStart < 1000) return;
    stat.rate = Math.round((stat.changes - stat.windowCount) / ((now - stat.windowStart) / 1000));
    stat.windowStart = now;
    stat.windowCount = stat.changes;
  }

  frame(now) {
    if (!this.store) {
      if (this.dirty && this.ctx.currentView() === "stores") {
        this.list.update();
        this.showState();
        $("store-stats").textContent = "–";
        this.dirty = false;
      }
      return;
    }
    this.measure(now);
    if (this.ctx.currentView() !== "stores") return;
    // Structural changes while searching: rescan at most every 200 ms.
    if (this.structural && this.keys && now - this.lastRescan > 200) this.rescan();
    else if (this.structural && !this.keys) this.structural = false;
    if (this.changed) {
      this.flashUntil = now + FLASH_MS;
      this.changed = 0;
      this.dirty = true;
    }
    const tick = now - this.lastTick > 500; // expiries count down, flashes end
    if (!this.stateShown) this.showState();
    if (this.dirty || tick || now < this.flashUntil) {
      this.list.update();
      this.dirty = false;
      if (tick) this.tick(now);
    }
  }

  /** Twice a second: old flashes are forgotten, the state and counts are shown. */
  tick(now) {
    this.lastTick = now;
    for (const [k, t] of this.changedAt) if (now - t > FLASH_MS * 2) this.changedAt.delete(k);
    const n = this.size();
    this.showState();
    $("store-stats").textContent = `${n} ${this.keys ? "matching" : "keys"} · ${this.stat.rate} changes/s`;
    $("store-table").setAttribute("aria-rowcount", String(n + 1));
  }

  shown() {
    this.refreshList();
    this.dirty = true;
  }

  connected() {
    this.refreshList();
  }
}

/** The stores view for the app (`frame`, `shown`, `connected`, `open`, `store`). */
export function setupStores(ctx) {
  return new StoresView(ctx);
}

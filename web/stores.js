// Stores: the gateway's stores (`ep.stores()`); one opened as a clone and shown in a
// virtualised table read with `store.entries(start, limit)`; changes are collected from
// `onChange` and applied once per animation frame, changed cells flash; search by key prefix;
// put / erase / increment.
import { VirtualList } from "./vlist.js";
import { renderValue, valueText, typeOf, spanText, timeText, fillTypeSelect, parseValue, typeHint } from "./format.js";

const $ = (id) => document.getElementById(id);
const ROW = 28;
const FLASH_MS = 1000;

const keyText = (k) => (typeof k === "string" ? k : valueText(k));
const keyId = (k) => (typeof k === "string" ? `s${k}` : `${typeOf(k)}:${valueText(k)}`);

export function setupStores(ctx) {
  const { ep } = ctx;
  let store = null;
  let off = null;
  let prefix = "";
  let keys = null; // keys matching the prefix, when searching
  let structural = false; // keys added or removed since the last frame
  let changed = 0; // changes since the last frame
  let dirty = true;
  let lastRescan = 0;
  let lastTick = 0;
  const changedAt = new Map();
  let flashUntil = 0;
  let state = "no store open";
  let initial = true; // the first snapshot's inserts are not changes worth a flash
  let error = "";
  let refused = false; // the gateway refused the clone for good (e.g. unauthorized)
  let stateShown = false; // the state line shows the current state
  const stat = { changes: 0, rate: 0, windowStart: performance.now(), windowCount: 0 };

  function size() {
    if (!store) return 0;
    return keys ? keys.length : store.size;
  }

  function rescan() {
    lastRescan = performance.now();
    structural = false;
    if (!store || !prefix) {
      keys = null;
      return;
    }
    keys = [];
    try {
      for (const k of store.keys) if (keyText(k).startsWith(prefix)) keys.push(k);
    } catch (e) {
      error = e.message;
    }
  }

  function expiryText(ts, now) {
    if (!ts) return "";
    const left = ts.ns - BigInt(Math.round(now)) * 1_000_000n;
    return left <= 0n ? "expiring" : `in ${spanText(left)}`;
  }

  const list = new VirtualList($("store-viewport"), {
    rowHeight: ROW,
    count: size,
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
        $("sk").value = typeof k === "string" ? k : ctx.broker.jsToTypedJson(k);
      });
      return row;
    },
    render(start, rows) {
      let pairs;
      try {
        if (keys) pairs = keys.slice(start, start + rows.length).map((k) => [k, store.get(k)]);
        else pairs = store.entries(start, rows.length);
        error = "";
      } catch (e) {
        pairs = [];
        error = `${e.code ?? "error"}: ${e.message}`;
      }
      const now = Date.now();
      const pnow = performance.now();
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i];
        const [kc, vc, ec] = row.children;
        const pair = pairs[i];
        if (!pair) {
          row._key = undefined;
          kc.textContent = vc.textContent = ec.textContent = "";
          continue;
        }
        const [k, v] = pair;
        row._key = k;
        row.setAttribute("aria-rowindex", String(start + i + 2));
        const kt = keyText(k);
        if (kc.textContent !== kt) {
          kc.textContent = kt;
          kc.title = kt;
        }
        renderValue(vc, v);
        const t = changedAt.get(keyId(k));
        const flash = t !== undefined && pnow - t < FLASH_MS;
        vc.classList.toggle("changed", flash);
        let exp;
        try {
          exp = store.expiry(k);
        } catch {
          exp = undefined;
        }
        ec.textContent = expiryText(exp, now);
        ec.title = exp ? timeText(exp) : "";
      }
    },
  });

  function onChange(c) {
    switch (c.type) {
      case "insert":
      case "erase":
      case "expire":
        structural = true;
      // falls through
      case "update":
        changed++;
        stat.changes++;
        if (!initial) changedAt.set(keyId(c.key), performance.now());
        break;
      case "reset":
        state = "master restarted: resynchronising";
        structural = true;
        break;
      case "synced":
        state = "in sync";
        initial = false;
        structural = true;
        changed++;
        break;
      case "error":
        // A final refusal (e.g. a token without `store_read`) will not change: say so at once
        // instead of waiting. Other errors (`no_such_master`) are retried by the clone.
        refused = c.permanent;
        state = refused ? `refused by the gateway: ${c.code} (${c.message})` : `waiting for the master (${c.code})`;
        stateShown = false;
        dirty = true;
        break;
    }
  }

  function showState() {
    const el = $("store-state");
    el.textContent = store ? `${store.name}: ${refused ? state : error || state}` : state;
    el.classList.toggle("error", Boolean(store && refused));
    stateShown = true;
  }

  function open(name) {
    if (!name) return;
    // Opening a refused store again asks the gateway again.
    if (store?.name === name && !refused) return;
    close();
    store = ep.attachClone(name, { resyncInterval: 1 });
    state = "attaching…";
    refused = false;
    stateShown = false;
    initial = true;
    off = store.onChange(onChange);
    changedAt.clear();
    rescan();
    dirty = true;
    $("store-viewport").scrollTop = 0;
    document.body.dataset.store = name;
  }

  function close() {
    if (!store) return;
    off?.();
    store.detach();
    store = null;
    keys = null;
    state = "no store open";
    refused = false;
    stateShown = false;
    dirty = true;
  }

  async function refreshList() {
    if (document.body.dataset.conn !== "connected") return;
    let names;
    try {
      names = await ep.stores();
    } catch {
      return;
    }
    const sel = $("store-select");
    const cur = sel.value || store?.name || "";
    sel.textContent = "";
    sel.add(new Option(names.length ? "(choose a store)" : "(no stores)", ""));
    for (const n of names) sel.add(new Option(n, n, false, n === cur));
  }

  $("store-refresh").addEventListener("click", refreshList);
  $("store-open").addEventListener("click", () => open($("store-select").value));
  $("store-select").addEventListener("change", (e) => open(e.target.value));
  $("store-search").addEventListener("input", (e) => {
    prefix = e.target.value;
    rescan();
    $("store-viewport").scrollTop = 0;
    dirty = true;
  });

  // ---- writes ----
  fillTypeSelect($("sk-type"), "string");
  fillTypeSelect($("sv-type"), "count");
  const hint = () => {
    $("sk").placeholder = typeHint($("sk-type").value);
    $("sv").placeholder = typeHint($("sv-type").value);
  };
  $("sk-type").addEventListener("change", hint);
  $("sv-type").addEventListener("change", hint);
  hint();
  $("store-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const op = e.submitter?.dataset.op ?? "put";
    const out = $("store-result");
    out.className = "";
    if (!store) {
      out.textContent = "open a store first";
      out.className = "error";
      return;
    }
    try {
      const key = parseValue($("sk-type").value, $("sk").value);
      const raw = $("sv").value;
      const expiryText = $("sexp").value.trim();
      const opts = expiryText === "" ? {} : { expiry: Number(expiryText) };
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
  });

  return {
    frame(now) {
      if (!store) {
        if (dirty && ctx.currentView() === "stores") {
          list.update();
          showState();
          $("store-stats").textContent = "–";
          dirty = false;
        }
        return;
      }
      if (now - stat.windowStart >= 1000) {
        stat.rate = Math.round((stat.changes - stat.windowCount) / ((now - stat.windowStart) / 1000));
        stat.windowStart = now;
        stat.windowCount = stat.changes;
      }
      if (ctx.currentView() !== "stores") return;
      // Structural changes while searching: rescan at most every 200 ms.
      if (structural && keys && now - lastRescan > 200) rescan();
      else if (structural && !keys) structural = false;
      if (changed) {
        flashUntil = now + FLASH_MS;
        changed = 0;
        dirty = true;
      }
      const tick = now - lastTick > 500; // expiries count down, flashes end
      if (!stateShown) showState();
      if (dirty || tick || now < flashUntil) {
        list.update();
        dirty = false;
        if (tick) {
          lastTick = now;
          for (const [k, t] of changedAt) if (now - t > FLASH_MS * 2) changedAt.delete(k);
          const n = size();
          showState();
          $("store-stats").textContent = `${n} ${keys ? "matching" : "keys"} · ${stat.rate} changes/s`;
          $("store-table").setAttribute("aria-rowcount", String(n + 1));
        }
      }
    },
    shown() {
      refreshList();
      dirty = true;
    },
    connected() {
      refreshList();
    },
    open,
    get store() {
      return store;
    },
  };
}

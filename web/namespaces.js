// Namespaces: every namespace of the gateway (`ep.namespaces()`), plus the ones opened here
// (remembered in localStorage, so a name stays listed while the gateway restarts). An open
// namespace shows its state (`query`), its tuple names (`directory`) with the length of each
// queue, and put / read / get.
import { renderValue, valueText, fillTypeSelect, parseValue, typeHint } from "./format.js";

const $ = (id) => document.getElementById(id);
const KEY = "broker-dashboard.namespaces";
const MAX_NAMES = 200;

function load() {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) ?? "[]");
    return Array.isArray(v) ? v.filter((x) => typeof x === "string") : [];
  } catch {
    return [];
  }
}

/**
 * Length of the queue of `key`: whether element `i` exists is a `read` with `nowait` and a
 * zero-byte buffer (the value is never sent: DBR_ERR_UBUFFER means it exists, DBR_ERR_UNAVAIL
 * that it does not), searched exponentially then by bisection.
 */
async function queueLength(ns, key) {
  const exists = async (i) => {
    try {
      await ns.read(key, { index: i, nowait: true, capacity: 0 });
      return true; // an empty value fits
    } catch (e) {
      if (e.code === "DBR_ERR_UBUFFER") return true;
      if (e.code === "DBR_ERR_UNAVAIL") return false;
      throw e;
    }
  };
  if (!(await exists(0))) return 0;
  let lo = 0; // exists
  let hi = 1;
  while (await exists(hi)) {
    lo = hi;
    hi *= 2;
    if (hi > 1 << 30) return lo + 1;
  }
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (await exists(mid)) lo = mid;
    else hi = mid;
  }
  return lo + 1;
}

export function setupNamespaces(ctx) {
  const { ep } = ctx;
  const names = load();
  let gatewayNames = []; // from the gateway's list
  const handles = new Map(); // name -> Namespace
  let current = null;
  let refreshing = false;
  let timer = null;

  const save = () => localStorage.setItem(KEY, JSON.stringify(names));

  async function syncList() {
    if (document.body.dataset.conn !== "connected") return;
    try {
      const list = await ep.namespaces();
      if (list.join("\n") !== gatewayNames.join("\n")) {
        gatewayNames = list;
        drawList();
      }
    } catch {
      // Disconnected meanwhile: the next refresh tries again.
    }
  }

  function drawList() {
    const ul = $("ns-list");
    ul.textContent = "";
    const all = [...new Set([...gatewayNames, ...names])].sort();
    if (all.length === 0) {
      const li = document.createElement("li");
      li.textContent = "none yet: attach or create one above";
      ul.append(li);
    }
    for (const n of all) {
      const li = document.createElement("li");
      const open = document.createElement("button");
      open.type = "button";
      open.textContent = n;
      open.className = "link";
      if (n === current) open.setAttribute("aria-current", "true");
      open.addEventListener("click", () => show(n));
      const forget = document.createElement("button");
      forget.type = "button";
      forget.textContent = "×";
      forget.setAttribute("aria-label", `Forget ${n}`);
      if (!names.includes(n)) forget.hidden = true; // listed by the gateway, not remembered
      forget.addEventListener("click", () => {
        names.splice(names.indexOf(n), 1);
        save();
        const h = handles.get(n);
        handles.delete(n);
        h?.detach().catch(() => {});
        if (current === n) {
          current = null;
          $("ns-title").textContent = "No namespace open";
          $("ns-info").textContent = "";
          $("ns-rows").textContent = "";
        }
        drawList();
      });
      li.append(open, forget);
      ul.append(li);
    }
  }

  function remember(name) {
    if (!names.includes(name)) {
      names.push(name);
      names.sort();
      save();
    }
  }

  async function handle(name) {
    let h = handles.get(name);
    if (h?.valid) return h;
    h = await ep.attachNamespace(name);
    handles.set(name, h);
    remember(name);
    return h;
  }

  async function refresh() {
    syncList();
    if (!current || refreshing || document.body.dataset.conn !== "connected") return;
    refreshing = true;
    const name = current;
    try {
      const ns = await handle(name);
      const info = await ns.query();
      if (name !== current) return;
      $("ns-info").textContent = `level ${info.level} · ${info.tupleNames} tuple names · ${info.totalValues} values · ${info.refcount} attachments${info.groups.length ? ` · groups ${info.groups.join(", ")}` : ""}`;
      const tuples = await ns.directory("*", { limit: MAX_NAMES });
      tuples.sort();
      const lengths = await Promise.all(tuples.map((k) => queueLength(ns, k).catch(() => "?")));
      if (name !== current) return;
      const body = $("ns-rows");
      body.textContent = "";
      if (tuples.length === 0) {
        const td = body.insertRow().insertCell();
        td.colSpan = 2;
        td.textContent = "no tuples";
      }
      tuples.forEach((k, i) => {
        const tr = body.insertRow();
        const b = document.createElement("button");
        b.type = "button";
        b.className = "link";
        b.textContent = k;
        b.addEventListener("click", () => ($("nk").value = k));
        tr.insertCell().append(b);
        tr.insertCell().textContent = String(lengths[i]);
      });
      if (info.tupleNames > tuples.length) {
        const td = body.insertRow().insertCell();
        td.colSpan = 2;
        td.textContent = `… and ${info.tupleNames - tuples.length} more`;
      }
    } catch (e) {
      handles.delete(name);
      $("ns-info").textContent = `${e.code ?? "error"}: ${e.message}`;
    } finally {
      refreshing = false;
    }
  }

  function show(name) {
    current = name;
    $("ns-title").textContent = `Namespace ${name}`;
    $("ns-rows").textContent = "";
    $("ns-info").textContent = "loading…";
    document.body.dataset.namespace = name;
    drawList();
    refresh();
  }

  $("ns-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const op = e.submitter?.dataset.op ?? "attach";
    const name = $("ns-name").value.trim();
    const out = $("ns-form-result");
    out.className = "";
    try {
      if (op === "create") {
        const h = await ep.createNamespace(name, { level: Number($("ns-level").value) });
        handles.set(name, h);
      } else await handle(name);
      remember(name);
      out.textContent = `${op === "create" ? "created" : "attached"} ${name}`;
      out.className = "ok";
      show(name);
    } catch (err) {
      out.textContent = `${err.code ?? "error"}: ${err.message}`;
      out.className = "error";
    }
  });

  fillTypeSelect($("nv-type"), "string");
  const hint = () => ($("nv").placeholder = typeHint($("nv-type").value));
  $("nv-type").addEventListener("change", hint);
  hint();
  $("ns-op-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const op = e.submitter?.dataset.op ?? "put";
    const out = $("ns-result");
    out.className = "result";
    out.textContent = "";
    if (!current) {
      out.textContent = "open a namespace first";
      out.classList.add("error");
      return;
    }
    const key = $("nk").value.trim();
    try {
      const ns = await handle(current);
      if (op === "put") {
        const v = parseValue($("nv-type").value, $("nv").value);
        await ns.put(key, v);
        out.textContent = `put ${valueText(v)} into ${key}`;
      } else {
        const v = await ns[op](key, { nowait: true });
        const label = document.createElement("span");
        label.textContent = `${op} ${key}: `;
        const val = document.createElement("span");
        renderValue(val, v);
        out.append(label, val);
      }
      out.classList.add("ok");
    } catch (err) {
      out.textContent = `${op} ${key}: ${err.code ?? "error"}: ${err.message}`;
      out.classList.add("error");
    }
    refresh();
  });

  drawList();
  return {
    shown() {
      refresh();
      clearInterval(timer);
      timer = setInterval(() => {
        if (ctx.currentView() === "namespaces") refresh();
        else clearInterval(timer);
      }, 2000);
    },
    connected() {
      handles.clear(); // attachments of a previous connection are gone
      syncList();
      refresh();
    },
  };
}

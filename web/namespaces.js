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

/** The namespaces view: the list, one namespace's state and tuples, put / read / get. */
class NamespacesView {
  constructor(ctx) {
    this.ctx = ctx;
    this.ep = ctx.ep;
    this.names = load(); // opened here (remembered)
    this.gatewayNames = []; // from the gateway's list
    this.handles = new Map(); // name -> Namespace
    this.current = null;
    this.refreshing = false;
    this.timer = null;
    this.bindOpenForm();
    this.bindOpForm();
    this.drawList();
  }

  save() {
    localStorage.setItem(KEY, JSON.stringify(this.names));
  }

  /** Where the namespaces live (`broker_ns_backend_up` of /metrics) and whether it answers. */
  async syncBackend() {
    try {
      const res = await fetch("/metrics", { cache: "no-store" });
      const text = await res.text();
      const m = text.match(/^broker_ns_backend_up\{backend="([^"]*)",address="((?:[^"\\]|\\.)*)"\} (\d+)$/m);
      if (!m) return;
      const [, backend, address, up] = m;
      $("ns-backend").textContent =
        backend === "builtin"
          ? "Backend: built-in (memory; SQLite for levels 4 and 5)"
          : `Backend: ${backend} ${address.replace(/\\(.)/g, "$1")}, ${up === "1" ? "up" : "DOWN (requests fail with DBR_ERR_NOCONNECT)"}`;
      $("ns-backend").dataset.up = up;
    } catch {
      // The gateway is away: the overview says so.
    }
  }

  async syncList() {
    this.syncBackend();
    if (document.body.dataset.conn !== "connected") return;
    try {
      const list = await this.ep.namespaces();
      if (list.join("\n") !== this.gatewayNames.join("\n")) {
        this.gatewayNames = list;
        this.drawList();
      }
    } catch {
      // Disconnected meanwhile: the next refresh tries again.
    }
  }

  drawList() {
    const ul = $("ns-list");
    ul.textContent = "";
    const all = [...new Set([...this.gatewayNames, ...this.names])].sort();
    if (all.length === 0) {
      const li = document.createElement("li");
      li.textContent = "none yet: attach or create one above";
      ul.append(li);
    }
    for (const n of all) ul.append(this.listItem(n));
  }

  /** A namespace in the list: open it, or forget it (if remembered here). */
  listItem(n) {
    const li = document.createElement("li");
    const open = document.createElement("button");
    open.type = "button";
    open.textContent = n;
    open.className = "link";
    if (n === this.current) open.setAttribute("aria-current", "true");
    open.addEventListener("click", () => this.show(n));
    const forget = document.createElement("button");
    forget.type = "button";
    forget.textContent = "×";
    forget.setAttribute("aria-label", `Forget ${n}`);
    if (!this.names.includes(n)) forget.hidden = true; // listed by the gateway, not remembered
    forget.addEventListener("click", () => this.forget(n));
    li.append(open, forget);
    return li;
  }

  forget(n) {
    this.names.splice(this.names.indexOf(n), 1);
    this.save();
    const h = this.handles.get(n);
    this.handles.delete(n);
    h?.detach().catch(() => {});
    if (this.current === n) {
      this.current = null;
      $("ns-title").textContent = "No namespace open";
      $("ns-info").textContent = "";
      $("ns-rows").textContent = "";
    }
    this.drawList();
  }

  remember(name) {
    if (!this.names.includes(name)) {
      this.names.push(name);
      this.names.sort();
      this.save();
    }
  }

  async handle(name) {
    let h = this.handles.get(name);
    if (h?.valid) return h;
    h = await this.ep.attachNamespace(name);
    this.handles.set(name, h);
    this.remember(name);
    return h;
  }

  async refresh() {
    this.syncList();
    if (!this.current || this.refreshing || document.body.dataset.conn !== "connected") return;
    this.refreshing = true;
    const name = this.current;
    try {
      const ns = await this.handle(name);
      const info = await ns.query();
      if (name !== this.current) return;
      $("ns-info").textContent = `level ${info.level} · ${info.tupleNames} tuple names · ${info.totalValues} values · ${info.refcount} attachments${info.groups.length ? ` · groups ${info.groups.join(", ")}` : ""}`;
      const tuples = await ns.directory("*", { limit: MAX_NAMES });
      tuples.sort();
      const lengths = await Promise.all(tuples.map((k) => queueLength(ns, k).catch(() => "?")));
      if (name !== this.current) return;
      drawTuples(tuples, lengths, info);
    } catch (e) {
      this.handles.delete(name);
      $("ns-info").textContent = `${e.code ?? "error"}: ${e.message}`;
    } finally {
      this.refreshing = false;
    }
  }

  show(name) {
    this.current = name;
    $("ns-title").textContent = `Namespace ${name}`;
    $("ns-rows").textContent = "";
    $("ns-info").textContent = "loading…";
    document.body.dataset.namespace = name;
    this.drawList();
    this.refresh();
  }

  /** Attach to or create a namespace by name. */
  bindOpenForm() {
    $("ns-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const op = e.submitter?.dataset.op ?? "attach";
      const name = $("ns-name").value.trim();
      const out = $("ns-form-result");
      out.className = "";
      try {
        if (op === "create") {
          const h = await this.ep.createNamespace(name, { level: Number($("ns-level").value) });
          this.handles.set(name, h);
        } else await this.handle(name);
        this.remember(name);
        out.textContent = `${op === "create" ? "created" : "attached"} ${name}`;
        out.className = "ok";
        this.show(name);
      } catch (err) {
        out.textContent = `${err.code ?? "error"}: ${err.message}`;
        out.className = "error";
      }
    });
  }

  /** Put, read or get on the open namespace. */
  bindOpForm() {
    fillTypeSelect($("nv-type"), "string");
    const hint = () => ($("nv").placeholder = typeHint($("nv-type").value));
    $("nv-type").addEventListener("change", hint);
    hint();
    $("ns-op-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      if (await this.runOp(e.submitter?.dataset.op ?? "put")) this.refresh();
    });
  }

  /** Runs `op` with the form's key (and value); false if no namespace is open. */
  async runOp(op) {
    const out = $("ns-result");
    out.className = "result";
    out.textContent = "";
    if (!this.current) {
      out.textContent = "open a namespace first";
      out.classList.add("error");
      return false;
    }
    const key = $("nk").value.trim();
    try {
      const ns = await this.handle(this.current);
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
    return true;
  }

  shown() {
    this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (this.ctx.currentView() === "namespaces") this.refresh();
      else clearInterval(this.timer);
    }, 2000);
  }

  connected() {
    this.handles.clear(); // attachments of a previous connection are gone
    this.syncList();
    this.refresh();
  }
}

/** The tuple names of the open namespace with the length of each queue. */
function drawTuples(tuples, lengths, info) {
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
}

/** The namespaces view for the app (`shown`, `connected`). */
export function setupNamespaces(ctx) {
  return new NamespacesView(ctx);
}

// Dashboard entry: connects to the gateway that serves the page through the npm package
// (/pkg/), then drives the four views. All protocol logic lives in the package.
import * as broker from "/pkg/index.js";
import { setupOverview } from "./overview.js";
import { setupTopics } from "./topics.js";
import { setupStores } from "./stores.js";
import { setupNamespaces } from "./namespaces.js";

const $ = (id) => document.getElementById(id);

// ---- tabs: a WAI-ARIA tablist with arrow keys, Home/End; the view is kept in the hash ----
const tabs = [...document.querySelectorAll('[role="tab"]')];
const views = new Map();

function select(tab, focus = false) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  if (focus) tab.focus();
  const name = tab.id.slice(4);
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  document.body.dataset.view = name;
  views.get(name)?.shown?.();
}

for (const t of tabs) {
  t.addEventListener("click", () => select(t));
  t.addEventListener("keydown", (e) => {
    const i = tabs.indexOf(t);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    select(tabs[(next + tabs.length) % tabs.length], true);
  });
}

/** The currently shown view's name. */
export const currentView = () => document.body.dataset.view;

// ---- connection ----
function setConn(state, text) {
  document.body.dataset.conn = state;
  $("conn").textContent = text;
}

await broker.init();
// With authentication on, open the dashboard once as `/?token=...`: the token is kept for this
// tab (sessionStorage) and removed from the address bar.
const params = new URLSearchParams(location.search);
if (params.has("token")) {
  sessionStorage.setItem("broker-token", params.get("token"));
  params.delete("token");
  const query = params.toString();
  history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
}
const token = sessionStorage.getItem("broker-token") ?? undefined;
// One connection for every tab of the dashboard (a SharedWorker; `?shared=0` gives this tab
// its own).
const ep = new broker.Endpoint({ name: "dashboard", reconnectMaxMs: 5_000, token, shared: params.get("shared") !== "0" });
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
const ctx = { ep, broker, wsUrl, currentView };
window.dash = ctx; // for the tests and the console

const overview = setupOverview(ctx);
views.set("overview", overview);
views.set("topics", setupTopics(ctx));
views.set("stores", setupStores(ctx));
views.set("namespaces", setupNamespaces(ctx));

// The page's own connection: its statuses name the gateway as the node. The gateway's statuses
// about its peers and its uplinks to Zeek (`zeek uplink <url>: ...`, no node) use the same
// codes and only go to the log and the overview.
const own = (e) => e.node !== undefined && e.node !== null && e.node === ep.peerId;

(async () => {
  const statuses = ep.makeStatusSubscriber(true);
  for await (const e of statuses) {
    overview.log(e);
    if (e.type !== "status" || !own(e)) continue;
    if (e.code === "peer_added") {
      setConn("connected", "connected");
      for (const v of views.values()) v.connected?.();
    } else if (e.code === "peer_lost") {
      setConn("reconnecting", "connection lost — reconnecting…");
    } else if (e.code === "peer_removed") {
      setConn("disconnected", "disconnected");
    }
  }
})();

// One loop for every view: each takes what arrived since the last frame and renders it once.
function frame(now) {
  for (const v of views.values()) v.frame?.(now);
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

select(tabs.find((t) => `#${t.id.slice(4)}` === location.hash) ?? tabs[0]);
ep.peer(wsUrl, { timeoutMs: 24 * 3600_000, retry: true }).catch((e) =>
  setConn("disconnected", e.code === "unauthorized"
    ? `the gateway refused the token: open this page as /?token=YOUR_TOKEN (${e.message})`
    : `cannot connect: ${e.message}`));

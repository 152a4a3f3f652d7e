// Overview: the gateway's id and version (/healthz), rates and counters from /metrics (polled
// every second, rates from counter deltas), the peers as a small graph, a connection log.

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const HISTORY = 60;

/** Prometheus text to a map of metric name to number. */
export function parseMetrics(text) {
  const m = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    m.set(line.slice(0, sp).trim(), Number(line.slice(sp + 1)));
  }
  return m;
}

const fmtNum = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)} k` : `${Math.round(n)}`);
const fmtBytes = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${Math.round(n)} B`);

function spark(id, values) {
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => `${(i * 120) / (HISTORY - 1)},${30 - (v / max) * 28 - 1}`).join(" ");
  $(id).firstElementChild.setAttribute("points", pts);
}

/** An SVG `<g>` node with a circle, a label and an optional second line. */
function graphNode(svg, x, y, label, cls, sub) {
  const gEl = document.createElementNS(SVG, "g");
  gEl.setAttribute("class", `node ${cls}`);
  gEl.setAttribute("transform", `translate(${x},${y})`);
  const c = document.createElementNS(SVG, "circle");
  c.setAttribute("r", "16");
  const t = document.createElementNS(SVG, "text");
  t.setAttribute("y", "30");
  t.textContent = label;
  gEl.append(c, t);
  if (sub) {
    const t2 = document.createElementNS(SVG, "text");
    t2.setAttribute("y", "42");
    t2.setAttribute("class", "small");
    t2.textContent = sub;
    gEl.append(t2);
  }
  svg.append(gEl);
}

/** An edge from the gateway (the origin) to `x, y`, behind the nodes. */
function graphLine(svg, x, y, cls) {
  const l = document.createElementNS(SVG, "line");
  l.setAttribute("x1", "0");
  l.setAttribute("y1", "0");
  l.setAttribute("x2", String(x));
  l.setAttribute("y2", String(y));
  l.setAttribute("class", cls);
  svg.prepend(l);
}

/** The overview view: health, metrics with sparklines, peers, the connection log. */
class OverviewView {
  constructor(ctx) {
    this.ep = ctx.ep;
    this.last = null; // the previous metrics sample, for rates
    this.hist = { in: [], out: [] };
    this.peers = [];
    this.metricsOk = false;
    this.logList = $("status-log");
    setInterval(() => this.poll(), 1000);
    setInterval(() => this.pollPeers(), 2000);
    this.poll();
    this.health();
    this.drawPeers();
  }

  async health() {
    try {
      const h = await (await fetch("/healthz", { cache: "no-store" })).json();
      $("gw-version").textContent = `gateway ${h.version}`;
      $("gw-id").textContent = h.endpoint;
      document.body.dataset.gateway = h.endpoint;
    } catch {
      $("gw-id").textContent = "unreachable";
    }
  }

  async poll() {
    let m;
    try {
      const res = await fetch("/metrics", { cache: "no-store" });
      if (!res.ok) throw new Error(res.statusText);
      m = parseMetrics(await res.text());
    } catch {
      this.metricsOk = false;
      this.last = null;
      $("m-in").textContent = $("m-out").textContent = "–";
      return;
    }
    if (!this.metricsOk) this.health(); // (re)appeared: maybe a new gateway instance
    this.metricsOk = true;
    const now = performance.now();
    if (this.last) this.showRates(m, now);
    this.last = { t: now, m };
    this.showCounters((k) => m.get(`broker_${k}`) ?? 0);
  }

  /** Rates from the counters' change since the last sample, and the sparklines. */
  showRates(m, now) {
    const last = this.last;
    const dt = (now - last.t) / 1000;
    // A restarted gateway's counters start again from zero: no negative rates.
    const rate = (k) => Math.max(0, ((m.get(`broker_${k}`) ?? 0) - (last.m.get(`broker_${k}`) ?? 0)) / dt);
    const rin = rate("messages_in_total");
    const rout = rate("messages_out_total");
    $("m-in").textContent = fmtNum(rin);
    $("m-out").textContent = fmtNum(rout);
    $("m-bytes").textContent = `${fmtBytes(rate("bytes_in_total"))}/s · ${fmtBytes(rate("bytes_out_total"))}/s`;
    const hist = this.hist;
    hist.in.push(rin);
    hist.out.push(rout);
    if (hist.in.length > HISTORY) hist.in.shift(), hist.out.shift();
    spark("spark-in", hist.in);
    spark("spark-out", hist.out);
  }

  /** Gauges and totals; `g(name)` reads `broker_<name>`. */
  showCounters(g) {
    const native = g("clients_native");
    const zeek = g("clients_zeek");
    $("m-clients").textContent = String(native + zeek);
    $("m-clients-detail").textContent = `${native} native · ${zeek} Zeek JSON`;
    $("m-drops").textContent = fmtNum(g("dropped_total"));
    $("m-drops-detail").textContent = `${g("slow_disconnects_total")} slow consumers disconnected`;
    $("m-errors").textContent = fmtNum(g("errors_total"));
    $("m-conn-total").textContent = `${g("connections_total")} connections since start`;
  }

  async pollPeers() {
    if (document.body.dataset.conn !== "connected") return;
    try {
      this.peers = await this.ep.peers();
    } catch {
      return;
    }
    this.drawPeers();
  }

  drawPeers() {
    this.drawPeerRows();
    this.drawPeerGraph();
  }

  drawPeerRows() {
    const rows = $("peer-rows");
    rows.textContent = "";
    if (this.peers.length === 0) {
      const tr = rows.insertRow();
      const td = tr.insertCell();
      td.colSpan = 4;
      td.textContent = "no peers";
    }
    for (const p of this.peers) {
      const tr = rows.insertRow();
      tr.insertCell().textContent = p.node ? p.node.slice(0, 8) : "–";
      tr.insertCell().textContent = p.address ? `${p.address}:${p.port}` : "–";
      tr.insertCell().textContent = p.outbound ? "outbound" : "inbound";
      const st = tr.insertCell();
      st.textContent = p.status;
      st.className = `st-${p.status}`;
    }
  }

  /** This page and the peers around the gateway, edges coloured by status. */
  drawPeerGraph() {
    const svg = $("peer-graph");
    for (const el of [...svg.querySelectorAll("g,line")]) el.remove();
    const conn = document.body.dataset.conn;
    graphLine(svg, -110, 0, `edge ${conn}`);
    graphNode(svg, -110, 0, "this page", `page ${conn}`, conn);
    const n = this.peers.length;
    this.peers.forEach((p, i) => {
      const a = n === 1 ? 0 : -Math.PI / 2.4 + (i * (Math.PI / 1.2)) / (n - 1);
      const x = Math.round(Math.cos(a) * 110);
      const y = Math.round(Math.sin(a) * 70);
      graphLine(svg, x, y, `edge st-${p.status}`);
      graphNode(svg, x, y, p.address ? `${p.address}:${p.port}` : (p.node ?? "peer").slice(0, 8), `st-${p.status}`, p.status);
    });
    graphNode(svg, 0, 0, "gateway", "gw", $("gw-id").textContent.slice(0, 8));
  }

  /** A status or error event for the log (the newest 50 are kept). */
  log(e) {
    const li = document.createElement("li");
    const time = new Date().toLocaleTimeString();
    li.textContent = `${time} ${e.code}: ${e.message ?? e.context ?? ""}`;
    if (e.type === "error") li.className = "err";
    this.logList.prepend(li);
    while (this.logList.childElementCount > 50) this.logList.lastElementChild.remove();
    if (e.code === "peer_lost" || e.code === "peer_added") this.drawPeers();
  }

  connected() {
    this.health();
    this.pollPeers();
  }

  shown() {
    this.drawPeers();
  }
}

/** The overview view for the app (`log`, `connected`, `shown`). */
export function setupOverview(ctx) {
  return new OverviewView(ctx);
}

// Overview: the gateway's id and version (/healthz), rates and counters from /metrics (polled
// every second, rates from counter deltas), the peers and the uplinks to Zeek as a small graph
// and tables, a connection log.

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

/**
 * An SVG `<g>` node with a label and an optional second line: a circle, or for an uplink to
 * Zeek (`shape` "zeek") a square marked Z.
 */
function graphNode(svg, x, y, label, cls, sub, shape = "circle") {
  const gEl = document.createElementNS(SVG, "g");
  gEl.setAttribute("class", `node ${cls}`);
  gEl.setAttribute("transform", `translate(${x},${y})`);
  if (shape === "zeek") {
    const r = document.createElementNS(SVG, "rect");
    for (const [k, v] of [["x", "-14"], ["y", "-14"], ["width", "28"], ["height", "28"], ["rx", "3"]]) r.setAttribute(k, v);
    const z = document.createElementNS(SVG, "text");
    z.setAttribute("class", "mark");
    z.textContent = "Z";
    gEl.append(r, z);
  } else {
    const c = document.createElementNS(SVG, "circle");
    c.setAttribute("r", "16");
    gEl.append(c);
  }
  const t = document.createElementNS(SVG, "text");
  t.setAttribute("y", "30");
  t.textContent = label;
  gEl.append(t);
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

/** `host:port` of an uplink's URL (the URL itself if it does not parse). */
function uplinkHost(url) {
  try {
    return new URL(url).host || url;
  } catch {
    return url;
  }
}

/** `text` cut to `n` characters with an ellipsis. */
const shorten = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

/** `promise`, or a rejection after `ms`. */
function within(promise, ms) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** How long the gateway may take to answer `peers`. */
const PEERS_MS = 10_000;
/** How long the gateway may take to answer `zeekUplinks` (one that predates it never does). */
const UPLINKS_MS = 5000;

/** The overview view: health, metrics with sparklines, peers and uplinks, the connection log. */
class OverviewView {
  constructor(ctx) {
    this.ep = ctx.ep;
    this.last = null; // the previous metrics sample, for rates
    this.hist = { in: [], out: [] };
    this.peers = [];
    this.uplinks = [];
    // Whether the gateway answers `zeekUplinks`: undefined until it did (or did not) on this
    // connection. One that predates uplinks drops the request: the table is hidden and the
    // request not repeated until the page reconnects.
    this.uplinksKnown = undefined;
    this.polling = null; // the peer poll in flight
    this.pollAgain = false; // asked for another poll while one was in flight
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

  /** Polls the peers and the uplinks; a call while a poll runs makes one more poll after it. */
  pollPeers() {
    if (this.polling) {
      this.pollAgain = true;
      return this.polling;
    }
    this.polling = (async () => {
      do {
        this.pollAgain = false;
        await this.pollOnce();
      } while (this.pollAgain);
      this.polling = null;
    })();
    return this.polling;
  }

  async pollOnce() {
    if (document.body.dataset.conn !== "connected") return;
    try {
      // (Bounded: a gateway that does not answer must not stall the polls queued behind.)
      this.peers = await within(this.ep.peers(), PEERS_MS);
    } catch {
      return;
    }
    await this.pollUplinks();
    this.drawPeers();
  }

  async pollUplinks() {
    if (this.uplinksKnown === false) return;
    try {
      this.uplinks = await within(this.ep.zeekUplinks(), UPLINKS_MS);
      this.uplinksKnown = true;
    } catch {
      // Lost the connection meanwhile: nothing learnt. A gateway that answered before keeps
      // its last answer; one that never did predates uplinks.
      if (document.body.dataset.conn !== "connected" || this.uplinksKnown) return;
      this.uplinksKnown = false;
      this.uplinks = [];
    }
  }

  drawPeers() {
    this.drawPeerRows();
    this.drawUplinkRows();
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

  /**
   * The uplinks to Zeek: URL, state, Zeek's endpoint id (shortened; in full in the title),
   * Zeek's version, messages received and sent, Zeek's errors, the last error (in full in the
   * title). Hidden when the gateway predates uplinks.
   */
  drawUplinkRows() {
    $("uplinks").hidden = this.uplinksKnown === false;
    const rows = $("uplink-rows");
    rows.textContent = "";
    if (this.uplinksKnown === undefined || this.uplinks.length === 0) {
      const td = rows.insertRow().insertCell();
      td.colSpan = 8;
      td.textContent = this.uplinksKnown ? "no uplinks" : "–";
      return;
    }
    for (const u of this.uplinks) {
      const tr = rows.insertRow();
      tr.dataset.url = u.url;
      const url = document.createElement("th");
      url.scope = "row";
      url.textContent = u.url;
      tr.append(url);
      const st = tr.insertCell();
      st.textContent = u.state;
      st.className = `state up-${u.state}`;
      const id = tr.insertCell();
      id.className = "endpoint mono";
      id.textContent = u.zeek_endpoint ? shorten(u.zeek_endpoint, 9) : "–";
      id.title = u.zeek_endpoint ?? "";
      tr.insertCell().textContent = u.zeek_version ?? "–";
      for (const n of [u.messages_in, u.messages_out, u.errors]) {
        const td = tr.insertCell();
        td.className = "num";
        td.textContent = fmtNum(Number(n ?? 0));
      }
      const err = tr.insertCell();
      if (u.last_error) {
        err.className = "err";
        const text = document.createElement("span");
        text.textContent = u.last_error;
        err.title = u.last_error;
        err.append(text);
      } else {
        err.textContent = "–";
      }
    }
  }

  /**
   * This page, the peers and the uplinks to Zeek around the gateway, edges coloured by
   * status.
   */
  drawPeerGraph() {
    const svg = $("peer-graph");
    for (const el of [...svg.querySelectorAll("g,line")]) el.remove();
    const conn = document.body.dataset.conn;
    graphLine(svg, -110, 0, `edge ${conn}`);
    graphNode(svg, -110, 0, "this page", `page ${conn}`, conn);
    const around = [...this.peers.map((p) => ["peer", p]), ...this.uplinks.map((u) => ["zeek", u])];
    const n = around.length;
    around.forEach(([kind, p], i) => {
      // On an arc right of the gateway, clear of its label and inside the view box.
      const a = n === 1 ? 0 : -Math.PI / 3 + (i * (Math.PI / 1.5)) / (n - 1);
      const x = Math.round(Math.cos(a) * 120);
      const y = Math.round(Math.sin(a) * 64);
      if (kind === "zeek") {
        graphLine(svg, x, y, `edge up-${p.state}`);
        graphNode(svg, x, y, `Zeek ${uplinkHost(p.url)}`, `zeek up-${p.state}`, p.state, "zeek");
        return;
      }
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
    if (e.code === "peer_lost" || e.code === "peer_added") {
      this.drawPeers();
      this.pollPeers(); // a peer or an uplink came or went
    } else if (e.type === "error" && e.context?.startsWith("zeek uplink ")) {
      this.pollPeers(); // Zeek's error replies: the uplink's counters and last error
    }
  }

  connected() {
    this.uplinksKnown = undefined; // maybe another gateway (version) now
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

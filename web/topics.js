// Topics: one Subscriber for the chosen prefixes, drained once per animation frame into a ring
// buffer of the last 10,000 messages, shown in a virtualised list; pause, clear, filter, and a
// form to publish a value.
import { VirtualList } from "./vlist.js";
import { renderValue, valueText, fillTypeSelect, parseValue, typeHint } from "./format.js";

const $ = (id) => document.getElementById(id);
export const CAPACITY = 10_000;
const ROW = 28;
const KEY = "broker-dashboard.topics";

const p2 = (n) => (n < 10 ? `0${n}` : `${n}`);
/** Local time of day with milliseconds (no Intl formatter per row: this runs every frame). */
function clock(ms) {
  const d = new Date(ms);
  return `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

/**
 * The last `CAPACITY` messages in a ring, numbered by `seq` (messages ever stored), with an
 * optional filter over the topic and the value's text.
 */
class MessageRing {
  constructor() {
    this.topic = new Array(CAPACITY);
    this.value = new Array(CAPACITY);
    this.time = new Float64Array(CAPACITY);
    this.text = new Array(CAPACITY); // rendered text, filled lazily (for the filter)
    this.total = 0; // messages ever stored
    this.base = 0; // seq of the first message after the last clear
    this.filter = "";
    this.matches = null; // seqs matching the filter, oldest first
  }

  /** The oldest seq still shown. */
  first() {
    return Math.max(this.base, this.total - CAPACITY);
  }

  /** Rows to show: the matches, or every message in the ring. */
  get shown() {
    return this.matches ? this.matches.length : this.total - this.first();
  }

  /** The seq of row `k`. */
  seqAt(k) {
    return this.matches ? this.matches[k] : this.first() + k;
  }

  textOf(seq) {
    const i = seq % CAPACITY;
    return (this.text[i] ??= valueText(this.value[i]));
  }

  matchesFilter(seq) {
    return this.topic[seq % CAPACITY].includes(this.filter) || this.textOf(seq).includes(this.filter);
  }

  setFilter(filter) {
    this.filter = filter;
    this.rebuildMatches();
  }

  rebuildMatches() {
    if (!this.filter) {
      this.matches = null;
      return;
    }
    this.matches = [];
    for (let s = this.first(); s < this.total; s++) if (this.matchesFilter(s)) this.matches.push(s);
  }

  /** Stores `[topic, value]` messages; returns how many shown rows left the top of the ring. */
  add(msgs, now) {
    const before = this.shown;
    for (const [t, v] of msgs) {
      const i = this.total % CAPACITY;
      this.topic[i] = t;
      this.value[i] = v;
      this.time[i] = now;
      this.text[i] = undefined;
      this.total++;
      if (this.matches && this.matchesFilter(this.total - 1)) this.matches.push(this.total - 1);
    }
    if (this.matches) {
      const f = this.first();
      let drop = 0;
      while (drop < this.matches.length && this.matches[drop] < f) drop++;
      if (drop) this.matches.splice(0, drop);
    }
    return before + (this.matches ? 0 : msgs.length) - this.shown;
  }

  /** Forgets every message stored so far. */
  clear() {
    this.base = this.total;
    this.rebuildMatches();
    for (let i = 0; i < CAPACITY; i++) this.value[i] = this.topic[i] = this.text[i] = undefined;
  }
}

function makeRow() {
  const row = document.createElement("div");
  row.setAttribute("role", "row");
  row.className = "vrow";
  for (const cls of ["time", "topic", "value"]) {
    const c = document.createElement("span");
    c.setAttribute("role", "cell");
    c.className = cls;
    row.append(c);
  }
  return row;
}

/** The topics view: subscriptions, the message list, the publish form. */
class TopicsView {
  constructor(ctx) {
    this.ctx = ctx;
    this.ep = ctx.ep;
    this.ring = new MessageRing();
    this.paused = false;
    this.dirty = true;
    this.sub = null;
    this.prefixes = [];
    this.arrivals = []; // [time, n] of the last second, for the rate
    this.statsAt = 0;
    this.list = new VirtualList($("topic-viewport"), {
      rowHeight: ROW,
      count: () => this.ring.shown,
      makeRow,
      render: (start, rows) => this.renderRows(start, rows),
    });
    this.list.stick = true;
    this.bindSubscriptions();
    this.bindControls();
    this.bindPublish();
  }

  renderRows(start, rows) {
    const ring = this.ring;
    for (let k = 0; k < rows.length; k++) {
      const row = rows[k];
      const seq = ring.seqAt(start + k);
      if (row.dataset.seq === String(seq)) continue;
      row.dataset.seq = String(seq);
      row.setAttribute("aria-rowindex", String(start + k + 2));
      const i = seq % CAPACITY;
      const [tc, pc, vc] = row.children;
      tc.textContent = clock(ring.time[i]);
      pc.textContent = ring.topic[i];
      pc.title = ring.topic[i];
      renderValue(vc, ring.value[i]);
    }
  }

  add(msgs) {
    const evicted = this.ring.add(msgs, Date.now());
    // Scrolled back: keep the rows in view in place while old ones leave the ring.
    if (!this.list.atBottom && !this.ring.matches && evicted > 0) this.list.viewport.scrollTop -= evicted * ROW;
    this.arrivals.push([performance.now(), msgs.length]);
    this.dirty = true;
  }

  stats(now) {
    const { arrivals, ring, sub } = this;
    while (arrivals.length && arrivals[0][0] < now - 1000) arrivals.shift();
    const rate = arrivals.reduce((a, [, n]) => a + n, 0);
    const shown = ring.shown;
    let s = `${shown} shown · ${ring.total - ring.base} received · ${rate}/s`;
    if (sub?.dropped) s += ` · ${sub.dropped} dropped`;
    if (this.paused) s += ` · paused, ${sub?.available ?? 0} waiting`;
    $("topic-stats").textContent = s;
    $("topic-table").setAttribute("aria-rowcount", String(shown + 1));
  }

  // ---- subscriptions ----
  drawChips() {
    const ul = $("sub-list");
    ul.textContent = "";
    for (const p of this.prefixes) {
      const li = document.createElement("li");
      li.textContent = p || "(everything)";
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "×";
      b.setAttribute("aria-label", `Unsubscribe from ${p || "everything"}`);
      b.addEventListener("click", () => this.unsubscribe(p));
      li.append(b);
      ul.append(li);
    }
    localStorage.setItem(KEY, JSON.stringify(this.prefixes));
  }

  subscribe(p) {
    if (this.prefixes.includes(p)) return;
    this.prefixes.push(p);
    if (this.sub) this.sub.addTopic(p);
    else this.sub = this.ep.makeSubscriber([p]);
    this.drawChips();
  }

  unsubscribe(p) {
    const i = this.prefixes.indexOf(p);
    if (i < 0) return;
    this.prefixes.splice(i, 1);
    if (this.prefixes.length === 0) {
      this.sub.close();
      this.sub = null;
    } else this.sub.removeTopic(p);
    this.drawChips();
  }

  bindSubscriptions() {
    $("sub-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.subscribe($("sub-prefix").value.trim());
      $("sub-prefix").value = "";
    });
    try {
      for (const p of JSON.parse(localStorage.getItem(KEY) ?? "[]")) if (typeof p === "string") this.subscribe(p);
    } catch {
      /* a broken entry: start empty */
    }
  }

  // ---- controls ----
  /** Every row renders again (the rows' seqs no longer mean the same). */
  redraw() {
    for (const r of this.list.rows) r.dataset.seq = "";
    this.dirty = true;
  }

  bindControls() {
    $("topic-filter").addEventListener("input", (e) => {
      this.ring.setFilter(e.target.value);
      this.redraw();
    });
    $("topic-pause").addEventListener("click", (e) => {
      this.paused = !this.paused;
      e.target.setAttribute("aria-pressed", String(this.paused));
      e.target.textContent = this.paused ? "Resume" : "Pause";
      this.dirty = true;
    });
    $("topic-clear").addEventListener("click", () => {
      this.ring.clear();
      this.redraw();
    });
  }

  // ---- publish ----
  bindPublish() {
    fillTypeSelect($("pub-type"));
    const hint = () => ($("pub-value").placeholder = typeHint($("pub-type").value));
    $("pub-type").addEventListener("change", hint);
    hint();
    $("pub-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const out = $("pub-result");
      try {
        const v = parseValue($("pub-type").value, $("pub-value").value);
        this.ep.publish($("pub-topic").value.trim(), v);
        out.textContent = `published ${valueText(v)}`;
        out.className = "ok";
      } catch (err) {
        out.textContent = err.message;
        out.className = "error";
      }
    });
  }

  frame(now) {
    if (this.sub && !this.paused) {
      const msgs = this.sub.poll();
      if (msgs.length) this.add(msgs);
    }
    if (this.ctx.currentView() !== "topics") return;
    const changed = this.dirty;
    if (this.dirty) {
      this.list.update();
      this.dirty = false;
    }
    if (now - this.statsAt > 250 || (changed && now - this.statsAt > 50)) {
      this.statsAt = now;
      this.stats(now);
    }
  }

  shown() {
    this.dirty = true;
  }

  /** Messages received since the last clear. */
  get count() {
    return this.ring.total - this.ring.base;
  }
}

/** The topics view for the app (`frame`, `shown`, `subscribe`, `count`). */
export function setupTopics(ctx) {
  return new TopicsView(ctx);
}

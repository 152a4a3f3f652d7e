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

export function setupTopics(ctx) {
  const { ep } = ctx;
  const topic = new Array(CAPACITY);
  const value = new Array(CAPACITY);
  const time = new Float64Array(CAPACITY);
  const text = new Array(CAPACITY); // rendered text, filled lazily (for the filter)
  let total = 0; // messages ever stored
  let base = 0; // seq of the first message after the last clear
  let filter = "";
  let matches = null; // seqs matching the filter, oldest first
  let paused = false;
  let dirty = true;
  let sub = null;
  const prefixes = [];
  const arrivals = []; // [time, n] of the last second, for the rate
  let statsAt = 0;

  const first = () => Math.max(base, total - CAPACITY);
  const textOf = (seq) => {
    const i = seq % CAPACITY;
    return (text[i] ??= valueText(value[i]));
  };
  const matchesFilter = (seq) => topic[seq % CAPACITY].includes(filter) || textOf(seq).includes(filter);

  function rebuildMatches() {
    if (!filter) {
      matches = null;
      return;
    }
    matches = [];
    for (let s = first(); s < total; s++) if (matchesFilter(s)) matches.push(s);
  }

  const list = new VirtualList($("topic-viewport"), {
    rowHeight: ROW,
    count: () => (matches ? matches.length : total - first()),
    makeRow() {
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
    },
    render(start, rows) {
      const f = first();
      for (let k = 0; k < rows.length; k++) {
        const row = rows[k];
        const seq = matches ? matches[start + k] : f + start + k;
        if (row.dataset.seq === String(seq)) continue;
        row.dataset.seq = String(seq);
        row.setAttribute("aria-rowindex", String(start + k + 2));
        const i = seq % CAPACITY;
        const [tc, pc, vc] = row.children;
        tc.textContent = clock(time[i]);
        pc.textContent = topic[i];
        pc.title = topic[i];
        renderValue(vc, value[i]);
      }
    },
  });
  list.stick = true;

  function add(msgs) {
    const now = Date.now();
    const before = matches ? matches.length : total - first();
    for (const [t, v] of msgs) {
      const i = total % CAPACITY;
      topic[i] = t;
      value[i] = v;
      time[i] = now;
      text[i] = undefined;
      total++;
      if (matches && matchesFilter(total - 1)) matches.push(total - 1);
    }
    if (matches) {
      const f = first();
      let drop = 0;
      while (drop < matches.length && matches[drop] < f) drop++;
      if (drop) matches.splice(0, drop);
    }
    // Scrolled back: keep the rows in view in place while old ones leave the ring.
    const evicted = before + (matches ? 0 : msgs.length) - (matches ? matches.length : total - first());
    if (!list.atBottom && !matches && evicted > 0) list.viewport.scrollTop -= evicted * ROW;
    arrivals.push([performance.now(), msgs.length]);
    dirty = true;
  }

  function stats(now) {
    while (arrivals.length && arrivals[0][0] < now - 1000) arrivals.shift();
    const rate = arrivals.reduce((a, [, n]) => a + n, 0);
    const shown = matches ? matches.length : total - first();
    let s = `${shown} shown · ${total - base} received · ${rate}/s`;
    if (sub?.dropped) s += ` · ${sub.dropped} dropped`;
    if (paused) s += ` · paused, ${sub?.available ?? 0} waiting`;
    $("topic-stats").textContent = s;
    $("topic-table").setAttribute("aria-rowcount", String(shown + 1));
  }

  // ---- subscriptions ----
  function drawChips() {
    const ul = $("sub-list");
    ul.textContent = "";
    for (const p of prefixes) {
      const li = document.createElement("li");
      li.textContent = p || "(everything)";
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "×";
      b.setAttribute("aria-label", `Unsubscribe from ${p || "everything"}`);
      b.addEventListener("click", () => unsubscribe(p));
      li.append(b);
      ul.append(li);
    }
    localStorage.setItem(KEY, JSON.stringify(prefixes));
  }

  function subscribe(p) {
    if (prefixes.includes(p)) return;
    prefixes.push(p);
    if (sub) sub.addTopic(p);
    else sub = ep.makeSubscriber([p]);
    drawChips();
  }

  function unsubscribe(p) {
    const i = prefixes.indexOf(p);
    if (i < 0) return;
    prefixes.splice(i, 1);
    if (prefixes.length === 0) {
      sub.close();
      sub = null;
    } else sub.removeTopic(p);
    drawChips();
  }

  $("sub-form").addEventListener("submit", (e) => {
    e.preventDefault();
    subscribe($("sub-prefix").value.trim());
    $("sub-prefix").value = "";
  });
  try {
    for (const p of JSON.parse(localStorage.getItem(KEY) ?? "[]")) if (typeof p === "string") subscribe(p);
  } catch {
    /* a broken entry: start empty */
  }

  // ---- controls ----
  $("topic-filter").addEventListener("input", (e) => {
    filter = e.target.value;
    rebuildMatches();
    for (const r of list.rows) r.dataset.seq = "";
    dirty = true;
  });
  $("topic-pause").addEventListener("click", (e) => {
    paused = !paused;
    e.target.setAttribute("aria-pressed", String(paused));
    e.target.textContent = paused ? "Resume" : "Pause";
    dirty = true;
  });
  $("topic-clear").addEventListener("click", () => {
    base = total;
    rebuildMatches();
    for (const r of list.rows) r.dataset.seq = "";
    for (let i = 0; i < CAPACITY; i++) value[i] = topic[i] = text[i] = undefined;
    dirty = true;
  });

  // ---- publish ----
  fillTypeSelect($("pub-type"));
  const hint = () => ($("pub-value").placeholder = typeHint($("pub-type").value));
  $("pub-type").addEventListener("change", hint);
  hint();
  $("pub-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const out = $("pub-result");
    try {
      const v = parseValue($("pub-type").value, $("pub-value").value);
      ep.publish($("pub-topic").value.trim(), v);
      out.textContent = `published ${valueText(v)}`;
      out.className = "ok";
    } catch (err) {
      out.textContent = err.message;
      out.className = "error";
    }
  });

  return {
    frame(now) {
      if (sub && !paused) {
        const msgs = sub.poll();
        if (msgs.length) add(msgs);
      }
      if (ctx.currentView() !== "topics") return;
      const changed = dirty;
      if (dirty) {
        list.update();
        dirty = false;
      }
      if (now - statsAt > 250 || (changed && now - statsAt > 50)) {
        statsAt = now;
        stats(now);
      }
    },
    shown() {
      dirty = true;
    },
    subscribe,
    get count() {
      return total - base;
    },
  };
}

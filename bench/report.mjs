// Assembles the figures the benchmark programs appended to BENCH_JSON files (one JSON line
// per figure: {"name", "value", "unit", "what", "paced"[, "note"]}, see rows.mjs and
// gateway/examples/common/rows.rs) into a markdown table and a JSON document, with ratios
// between rows of different programs added. Used by scripts/bench.sh:
//
//   node bench/report.mjs latest  --rows R.jsonl --out DIR [meta flags]
//       DIR/latest.md and DIR/latest.json, and timestamped copies (latest-<stamp>.*)
//   node bench/report.mjs compare --before B.jsonl --after A.jsonl --out DIR [meta flags]
//       DIR/compare.md and DIR/compare.json (before, after, change %), and timestamped copies
//
// Meta flags: --rev REV (compare: --before-rev, --after-rev), --cores N, --load-before
// "L1 L5 L15", --load-after "...", --groups a,b, --failed a,b (groups whose program failed),
// --missing-before a,b (compare: groups of the old revision that did not build or run).
import { readFileSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import path from "node:path";

/** Ratios computed from rows of different programs (a row only if both figures are there). */
const DERIVED = [
  {
    name: "ratio.gateway_native_1to1_vs_nats_ws",
    num: "gateway.native_1to1_batched",
    den: "nats.ws_node_1to1_paced",
    what: "native Rust 1 -> 1 batched through the gateway / NATS over WebSocket 1 -> 1 with nats.js (target >= 3)",
  },
  {
    name: "ratio.js_node_1to1_vs_nats_ws",
    num: "js.node_1to1_paced",
    den: "nats.ws_node_1to1_paced",
    what: "our JS client Node -> gateway -> Node / nats.js Node -> nats-server -> Node, both paced the same way",
  },
];

/** Units where a smaller value is better (latencies, times, memory, losses). */
const LOWER_IS_BETTER = new Set(["us", "ms", "s", "KiB", "messages"]);

function args(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith("--")) out[argv[i].slice(2)] = argv[++i] ?? "";
    else out._.push(argv[i]);
  }
  return out;
}

/** The middle value of `values` (the mean of the two middle ones for an even count). */
function median(values) {
  const s = [...values].sort((x, y) => x - y);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * The rows of a BENCH_JSON file, in order. A name seen more than once (`scripts/bench.sh
 * --rounds N`) gets the median of its values, and keeps them all in `runs`.
 */
function readRows(file) {
  const rows = new Map();
  if (!file || !existsSync(file)) return rows;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.trim()) continue;
    let r;
    try {
      r = JSON.parse(line);
    } catch {
      console.error(`report: skipping a line that is not JSON in ${file}: ${line.slice(0, 80)}`);
      continue;
    }
    if (typeof r.name !== "string") continue;
    const seen = rows.get(r.name);
    const runs = [...(seen?.runs ?? []), r.value];
    const notes = [...new Set([seen?.note, r.note].filter(Boolean))].join("; ");
    rows.set(r.name, { name: r.name, value: r.value, runs, unit: r.unit ?? "", what: r.what ?? "", paced: r.paced ?? "", ...(notes ? { note: notes } : {}) });
  }
  for (const r of rows.values()) {
    const finite = r.runs.filter(Number.isFinite);
    if (r.runs.length > 1 && finite.length) r.value = median(finite);
    if (r.runs.length < 2) delete r.runs;
  }
  // Each ratio goes right after the later of its two rows.
  const ordered = [...rows.values()];
  for (const d of DERIVED) {
    const [a, b] = [rows.get(d.num), rows.get(d.den)];
    if (a && b && Number.isFinite(a.value) && Number.isFinite(b.value) && b.value > 0) {
      let at = Math.max(ordered.indexOf(a), ordered.indexOf(b)) + 1;
      const ratio = {
        name: d.name,
        value: Math.round((a.value / b.value) * 100) / 100,
        unit: "x",
        what: d.what,
        paced: `${a.paced}; NATS: ${b.paced}`,
      };
      while (ordered[at]?.name.startsWith("ratio.")) at++;
      ordered.splice(at, 0, ratio);
    }
  }
  return new Map(ordered.map((r) => [r.name, r]));
}

/** " (median of N runs: min–max)" for a row measured more than once, else "". */
function spread(r) {
  const v = (r.runs ?? []).filter(Number.isFinite);
  return v.length > 1 ? ` (median of ${v.length} runs: ${fmt(Math.min(...v))}–${fmt(Math.max(...v))})` : "";
}

function fmt(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "missing";
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en");
  return String(Math.round(v * 100) / 100);
}

const cell = (s) => String(s ?? "").replaceAll("|", "\\|").replaceAll("\n", " ");

function list(s) {
  return s ? [...new Set(s.split(",").filter(Boolean))] : [];
}

function metaLines(meta) {
  const lines = [
    `- date: ${meta.date}`,
    ...(meta.rev ? [`- revision: ${meta.rev}`] : []),
    ...(meta.before_rev ? [`- before: ${meta.before_rev}`, `- after: ${meta.after_rev}`] : []),
    `- cores (nproc): ${meta.cores}`,
    `- load average (1, 5, 15 min) before: ${meta.load_before}; after: ${meta.load_after}`,
    `- benchmarks run: ${meta.groups.join(", ") || "none"}${meta.rounds > 1 ? ` (${meta.rounds} rounds; each figure is the median)` : ""}`,
  ];
  if (meta.failed.length) lines.push(`- failed (their rows are missing or partial): ${meta.failed.join(", ")}`);
  if (meta.missing_before?.length) lines.push(`- missing before (did not build or run on the old revision): ${meta.missing_before.join(", ")}`);
  return lines;
}

function stamp(date) {
  return date.replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}

function write(out, base, date, md, json) {
  mkdirSync(out, { recursive: true });
  const text = JSON.stringify(json, null, 2) + "\n";
  for (const name of [base, `${base}-${stamp(date)}`]) {
    writeFileSync(path.join(out, `${name}.md`), md);
    writeFileSync(path.join(out, `${name}.json`), text);
  }
  console.log(`==> ${path.join(out, base)}.md and .json (copies: ${base}-${stamp(date)}.*)`);
}

const a = args(process.argv.slice(2));
const mode = a._[0];
const meta = {
  date: new Date().toISOString(),
  cores: Number(a.cores) || null,
  load_before: a["load-before"] ?? "",
  load_after: a["load-after"] ?? "",
  groups: list(a.groups),
  rounds: Number(a.rounds) || 1,
  failed: list(a.failed),
};
if (!a.out) throw new Error("--out DIR is required");

if (mode === "latest") {
  meta.rev = a.rev ?? "";
  const rows = [...readRows(a.rows).values()];
  const md = [
    "# Benchmark figures",
    "",
    ...metaLines(meta),
    "",
    "| name | value | unit | what it measures | pacing |",
    "| --- | ---: | --- | --- | --- |",
    ...rows.map((r) => `| ${cell(r.name)} | ${fmt(r.value)} | ${cell(r.unit)} | ${cell(r.what)}${spread(r)}${r.note ? ` (**${cell(r.note)}**)` : ""} | ${cell(r.paced || "-")} |`),
    "",
  ].join("\n");
  write(a.out, "latest", meta.date, md, { ...meta, rows });
} else if (mode === "compare") {
  meta.before_rev = a["before-rev"] ?? "";
  meta.after_rev = a["after-rev"] ?? "";
  meta.missing_before = list(a["missing-before"]);
  const before = readRows(a.before);
  const after = readRows(a.after);
  const names = [...after.keys(), ...[...before.keys()].filter((n) => !after.has(n))];
  const rows = names.map((name) => {
    const [b, f] = [before.get(name), after.get(name)];
    const r = f ?? b;
    const bv = b && Number.isFinite(b.value) ? b.value : null;
    const av = f && Number.isFinite(f.value) ? f.value : null;
    const change = bv !== null && av !== null && bv !== 0 ? Math.round(((av - bv) / bv) * 1000) / 10 : null;
    return {
      name,
      before: bv,
      after: av,
      change_percent: change,
      ...(b?.runs ? { runs_before: b.runs } : {}),
      ...(f?.runs ? { runs_after: f.runs } : {}),
      unit: r.unit,
      better: LOWER_IS_BETTER.has(r.unit) ? "lower" : "higher",
      what: r.what,
      paced: r.paced,
      ...(b?.note ? { note_before: b.note } : {}),
      ...(f?.note ? { note_after: f.note } : {}),
    };
  });
  const pct = (c) => (c === null ? "-" : `${c > 0 ? "+" : ""}${c.toFixed(1)}%`);
  const md = [
    "# Benchmark comparison",
    "",
    ...metaLines(meta),
    "- both revisions ran the same benchmark programs (today's), back to back per benchmark" +
      (meta.rounds > 1 ? `, ${meta.rounds} rounds in alternating order (values: medians)` : ""),
    "",
    "| name | before | after | change | unit | better | what it measures | pacing |",
    "| --- | ---: | ---: | ---: | --- | --- | --- | --- |",
    ...rows.map((r) => {
      const notes = [r.note_before && `before: ${r.note_before}`, r.note_after && `after: ${r.note_after}`].filter(Boolean).join("; ");
      return `| ${cell(r.name)} | ${fmt(r.before)} | ${fmt(r.after)} | ${pct(r.change_percent)} | ${cell(r.unit)} | ${r.better} | ${cell(r.what)}${notes ? ` (**${cell(notes)}**)` : ""} | ${cell(r.paced || "-")} |`;
    }),
    "",
  ].join("\n");
  write(a.out, "compare", meta.date, md, { ...meta, rows });
} else {
  console.error("usage: node bench/report.mjs latest|compare ... (see the header)");
  process.exit(2);
}

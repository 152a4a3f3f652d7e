// Machine-readable figures of the Node benchmark programs: with BENCH_JSON=<file> in the
// environment, `row()` appends each figure to that file as one JSON line
// {"name", "value", "unit", "what", "paced"[, "note"]} (scripts/bench.sh collects them into
// target/bench/latest.md and .json). Without it nothing is written; the printed output is the
// same either way. `name` is stable across runs (runs are compared by it).
import { appendFileSync } from "node:fs";

/**
 * @param {string} name @param {number} value @param {string} unit
 * @param {string} what one phrase: what is measured
 * @param {string} paced how the load is paced ("" if that does not apply)
 * @param {string} [note] what went wrong in this run (e.g. messages lost), else ""
 */
export function row(name, value, unit, what, paced, note = "") {
  const file = process.env.BENCH_JSON;
  if (!file) return;
  const line = { name, value: Number.isFinite(value) ? value : null, unit, what, paced };
  if (note) line.note = note;
  appendFileSync(file, JSON.stringify(line) + "\n");
}

//! Machine-readable figures of the benchmark programs: with `BENCH_JSON=<file>` in the
//! environment, each figure is also appended to that file as one JSON line
//! `{"name", "value", "unit", "what", "paced"}` (`scripts/bench.sh` collects them into
//! `target/bench/latest.md` and `.json`). Without it nothing is written; the printed output
//! is the same either way.

use std::io::Write;

/// Appends one figure to `$BENCH_JSON` (if set). `name` is stable across runs (runs are
/// compared by it), `what` says in one phrase what is measured, `paced` how the load is
/// paced ("" if that does not apply). `note` (may be empty) flags a run that is not clean,
/// e.g. messages lost.
pub fn row(name: &str, value: f64, unit: &str, what: &str, paced: &str, note: &str) {
    let Some(path) = std::env::var_os("BENCH_JSON") else {
        return;
    };
    let mut line = serde_json::json!({
        "name": name,
        "value": if value.is_finite() { serde_json::json!(value) } else { serde_json::Value::Null },
        "unit": unit,
        "what": what,
        "paced": paced,
    });
    if !note.is_empty() {
        line["note"] = note.into();
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!("warning: BENCH_JSON {}: {e}", path.to_string_lossy());
    }
}

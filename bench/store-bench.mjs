// Store benchmark, Node side: master -> Node clone propagation latency (p50/p99) for an SQLite
// master (and a memory master beside it), and the time to attach a Node clone to the
// 1,000,000-key SQLite store left by the Rust benchmark (`gateway/examples/store_bench.rs`).
// Run with `scripts/bench-store.sh`.
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import * as broker from "../pkg/node.mjs";
import { startGateway } from "../tests/node/gateway.mjs";
import { row } from "./rows.mjs";

const { Endpoint, Count } = broker;
const dataDir = process.argv[2];
const ROUNDS = Number(process.env.ROUNDS ?? 5000);
/** Puts first made and reported apart (JIT and wasm tier-up warm-up). */
const WARMUP = Number(process.env.WARMUP ?? 2000);

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

if (!isMainThread) {
  // The clone, in its own thread (its own event loop and wasm instance): reports when each
  // value arrives, on the shared clock (timeOrigin + now).
  const ep = new Endpoint();
  await ep.peer(workerData.url);
  const clone = ep.attachClone(workerData.store);
  await clone.ready();
  clone.onChange((c) => {
    if (c.type === "insert" || c.type === "update") {
      parentPort.postMessage({ i: c.value.value, at: performance.timeOrigin + performance.now() });
    }
  });
  parentPort.postMessage({ ready: true });
  await new Promise(() => {});
}

/**
 * Propagation: a writer puts, a clone on another connection (in a worker thread) sees the
 * update. One write at a time; latency = put issued -> change event in the clone.
 */
async function propagation(url, store, label) {
  const writerEp = new Endpoint();
  await writerEp.peer(url);
  const writer = writerEp.attachClone(store);
  await writer.ready();
  const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { url, store }, argv: [dataDir] });
  let waiting = null;
  await new Promise((resolve) => {
    worker.on("message", (m) => {
      if (m.ready) return resolve();
      if (waiting && m.i === waiting.i) {
        const w = waiting;
        waiting = null;
        w.resolve(m.at);
      }
    });
  });
  const lat = [];
  try {
    for (let i = 0n; i < BigInt(WARMUP + ROUNDS); i++) {
      let timer;
      const seen = new Promise((resolve, reject) => {
        waiting = { i, resolve };
        timer = setTimeout(() => reject(new Error(`put ${i} not seen by the clone within 10 s`)), 10_000);
      });
      const t0 = performance.timeOrigin + performance.now();
      writer.put(`k${i % 100n}`, new Count(i));
      lat.push((await seen) - t0);
      clearTimeout(timer);
    }
  } finally {
    await worker.terminate();
    await writerEp.shutdown();
  }
  const cold = lat.slice(0, WARMUP).sort((a, b) => a - b);
  const warm = lat.slice(WARMUP).sort((a, b) => a - b);
  const us = (ms) => (ms * 1000).toFixed(0);
  const what = `put -> change event at a Node clone (worker), ${label} master`;
  for (const q of [50, 99]) {
    row(`store.node_clone_${label.toLowerCase()}_p${q}`, Math.round(pct(warm, q) * 1000), "us",
      `${what}, p${q} of ${ROUNDS.toLocaleString("en")} after ${WARMUP.toLocaleString("en")} warm-up puts`, "one put at a time");
  }
  row(`store.node_clone_${label.toLowerCase()}_cold_p99`, Math.round(pct(cold, 99) * 1000), "us",
    `${what}, p99 of the first ${WARMUP.toLocaleString("en")} (JIT warm-up)`, "one put at a time");
  return `p50 ${us(pct(warm, 50))} us, p99 ${us(pct(warm, 99))} us, max ${us(warm[warm.length - 1])} us ` +
    `(after ${WARMUP} warm-up puts; during them p99 ${us(pct(cold, 99))} us)`;
}

const g = await startGateway(["--data-dir", dataDir, "--store", "node-latency", "--memory-store", "node-latency-mem", "--store", "bench1m"]);
try {
  // The SQLite figure is the one to quote (a put is committed before it is replicated); the
  // memory master is beside it for comparison.
  console.log(`SQLite master -> Node clone propagation (${ROUNDS} puts, one at a time): ${await propagation(g.url, "node-latency", "SQLite")}`);
  console.log(`memory master -> Node clone propagation (${ROUNDS} puts, one at a time): ${await propagation(g.url, "node-latency-mem", "memory")}`);

  // Attach a Node clone to the 1M-key store.
  const ep = new Endpoint();
  await ep.peer(g.url);
  const t0 = performance.now();
  const big = ep.attachClone("bench1m");
  await big.ready(120_000);
  const ms = performance.now() - t0;
  console.log(`attach a Node clone to ${big.size.toLocaleString("en")} keys: ${(ms / 1000).toFixed(2)} s (snapshot and replica)`);
  row("store.node_clone_attach_1m", Math.round(ms / 10) / 100, "s",
    `attach a Node clone to a ${big.size.toLocaleString("en")}-key SQLite store (snapshot in, replica built)`, "");
  await ep.shutdown();
} finally {
  await g.stop();
}

// Store benchmark, Node side: master -> Node clone propagation latency (p50/p99) and the time
// to attach a Node clone to the 1,000,000-key store left by the Rust benchmark
// (`gateway/examples/store_bench.rs`). Run with `scripts/bench-store.sh`.
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import * as broker from "../pkg/node.mjs";
import { startGateway } from "../tests/node/gateway.mjs";

const { Endpoint, Count } = broker;
const dataDir = process.argv[2];
const ROUNDS = Number(process.env.ROUNDS ?? 5000);

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

if (!isMainThread) {
  // The clone, in its own thread (its own event loop and wasm instance): reports when each
  // value arrives, on the shared clock (timeOrigin + now).
  const ep = new Endpoint();
  await ep.peer(workerData.url);
  const clone = ep.attachClone("latency");
  await clone.ready();
  clone.onChange((c) => {
    if (c.type === "insert" || c.type === "update") {
      parentPort.postMessage({ i: c.value.value, at: performance.timeOrigin + performance.now() });
    }
  });
  parentPort.postMessage({ ready: true });
  await new Promise(() => {});
}

const g = await startGateway(["--data-dir", dataDir, "--memory-store", "latency", "--store", "bench1m"]);
try {
  // Propagation: a writer puts, a clone on another connection (in a worker thread) sees the
  // update. One write at a time; latency = put issued -> change event in the clone.
  const writerEp = new Endpoint();
  await writerEp.peer(g.url);
  const writer = writerEp.attachClone("latency");
  await writer.ready();
  const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { url: g.url }, argv: [dataDir] });
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
  for (let i = 0n; i < BigInt(ROUNDS); i++) {
    const seen = new Promise((resolve) => (waiting = { i, resolve }));
    const t0 = performance.timeOrigin + performance.now();
    writer.put(`k${i % 100n}`, new Count(i));
    lat.push((await seen) - t0);
  }
  lat.sort((a, b) => a - b);
  console.log(
    `master -> Node clone propagation (${ROUNDS} puts, one at a time): p50 ${(pct(lat, 50) * 1000).toFixed(0)} us, p99 ${(pct(lat, 99) * 1000).toFixed(0)} us, max ${(lat[lat.length - 1] * 1000).toFixed(0)} us`,
  );
  await worker.terminate();
  await writerEp.shutdown();

  // Attach a Node clone to the 1M-key store.
  const ep = new Endpoint();
  await ep.peer(g.url);
  const t0 = performance.now();
  const big = ep.attachClone("bench1m");
  await big.ready(120_000);
  const ms = performance.now() - t0;
  console.log(`attach a Node clone to ${big.size.toLocaleString("en")} keys: ${(ms / 1000).toFixed(2)} s (snapshot and replica)`);
  await ep.shutdown();
} finally {
  await g.stop();
}

// Zeek uplink benchmark: Zeek double -> uplink -> gateway -> Node client.
// Run with `scripts/bench-zeek.sh` (builds the release gateway, the release double and pkg/).
//
// What it measures: the double plays a Zeek node's WebSocket API and sends the event
// `Bench::tick(count i, time sent)` on `zeek/bench/t` (Broker JSON v1 text frames, as Zeek
// does) to its one client, the gateway's uplink; the gateway delivers each to a Node client
// (native protocol, binary) subscribed to `zeek/bench/`, running in a worker thread. For each
// rate the double is paced at (token bucket, steps of 5 ms), it prints the rate the Node
// client received at, losses (with where they were dropped), and the latency from the
// double's send time (microsecond timestamps; same host clock) to the Node client's receive,
// p50 and p99. Default queue sizes everywhere (gateway 8192 per consumer, JS subscriber
// 100,000); the last row is unpaced (the double as fast as the socket takes it). In the same
// run, the same path with a Rust client (`tests/examples/uplink_sink.rs`) instead of the Node
// one, to show what the JS client costs: receive rate and losses.
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as broker from "../pkg/node.mjs";
import { startGateway } from "../tests/node/gateway.mjs";
import { startZeekDouble } from "../tests/node/zeek-double.mjs";

const { Endpoint } = broker;
const SECONDS = Number(process.env.SECONDS ?? 3);
const RATES = (process.env.RATES ?? "100000,200000,300000,400000,0").split(",").map(Number);
const SILENCE_MS = 5_000;
const now = () => performance.timeOrigin + performance.now();

if (!isMainThread) {
  const { url } = workerData;
  const ep = new Endpoint();
  await ep.peer(url);
  const sub = ep.makeSubscriber("zeek/bench/");
  await ep.flush();
  parentPort.postMessage({ ready: true });
  parentPort.on("message", async ({ n }) => {
    const lat = new Float64Array(n);
    let got = 0;
    let firstAt = 0;
    let lastAt = 0;
    const take = (value) => {
      const t = now();
      // [Count 1, Count 1, ["Bench::tick", [Count i, Timestamp sent]]]
      const sent = value[2][1][1];
      if (got < n) lat[got] = t - Number(sent.ns) / 1e6;
      got++;
      lastAt = t;
    };
    while (got < n) {
      const m = await sub.get({ timeoutMs: SILENCE_MS });
      if (m === null) break;
      if (got === 0) firstAt = now();
      take(m[1]);
      for (const [, v] of sub.poll()) take(v);
    }
    const l = lat.subarray(0, Math.min(got, n)).sort();
    const q = (p) => (l.length ? l[Math.min(l.length - 1, Math.floor(l.length * p))] : NaN);
    parentPort.postMessage({ got, firstAt, lastAt, p50: q(0.5), p99: q(0.99), dropped: sub.dropped });
  });
}

async function metric(g, name) {
  const text = await (await fetch(`${g.http}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`broker_${name} `));
  return Number(line.split(" ")[1]);
}

async function main() {
  const zeek = await startZeekDouble(["--quiet", "--event", "Bench::tick(count,timestamp)"]);
  const g = await startGateway(["--zeek", zeek.url, "--zeek-subscribe", "zeek/bench/"]);
  try {
    await zeek.next((e) => e.event === "subscribed", 10_000);
    const w = new Worker(fileURLToPath(import.meta.url), { workerData: { url: g.url } });
    const inbox = [];
    let wake;
    w.on("message", (m) => {
      inbox.push(m);
      wake?.();
    });
    const next = async () => {
      while (inbox.length === 0) await new Promise((r) => (wake = r));
      return inbox.shift();
    };
    await next();
    console.log(`Zeek double -> uplink -> gateway -> Node client (${SECONDS} s per rate, default queues)`);
    console.log("  double paced at      received msgs/s   latency p50 / p99       losses");
    for (const rate of RATES) {
      const n = rate === 0 ? 1_000_000 : rate * SECONDS;
      const dropped0 = await metric(g, "dropped_total");
      w.postMessage({ n });
      zeek.send({ cmd: "burst", topic: "zeek/bench/t", name: "Bench::tick", count: n, rate, precise: true });
      const r = await next();
      await zeek.next((e) => e.event === "burst_done", 60_000);
      const gwDropped = (await metric(g, "dropped_total")) - dropped0;
      const secs = (r.lastAt - r.firstAt) / 1000;
      const recv = secs > 0 ? r.got / secs : 0;
      const lost = n - r.got;
      const label = rate === 0 ? "unpaced" : `${rate.toLocaleString("en")}/s`;
      const losses = lost === 0 ? "none lost" : `${lost} lost (gateway dropped ${gwDropped}, client ${r.dropped})`;
      console.log(
        `  ${label.padEnd(18)} ${recv.toFixed(0).padStart(12)}   ${r.p50.toFixed(3).padStart(8)} / ${r.p99.toFixed(3).padStart(8)} ms   ${losses}`,
      );
    }
    await w.terminate();
    const sink = process.env.UPLINK_SINK_BIN;
    if (sink) {
      console.log("  the same path with a Rust client (broker-client) instead of Node:");
      for (const rate of RATES.filter((r) => r >= 200_000 || r === 0)) {
        const n = rate === 0 ? 1_000_000 : rate * SECONDS;
        const dropped0 = await metric(g, "dropped_total");
        const child = spawn(sink, [g.url, String(n)], { stdio: ["ignore", "pipe", "inherit"] });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        while (!out.includes("ready")) await new Promise((r) => setTimeout(r, 20));
        const exited = new Promise((r) => child.once("exit", r));
        zeek.send({ cmd: "burst", topic: "zeek/bench/t", name: "Bench::tick", count: n, rate });
        await exited;
        await zeek.next((e) => e.event === "burst_done", 60_000);
        const gwDropped = (await metric(g, "dropped_total")) - dropped0;
        const [, got, recv] = out.match(/(\d+) received, (\d+) msgs\/s/) ?? [];
        const label = rate === 0 ? "unpaced" : `${rate.toLocaleString("en")}/s`;
        const lost = n - Number(got);
        console.log(`  ${label.padEnd(18)} ${String(recv).padStart(12)}   ${" ".repeat(22)}   ${lost === 0 ? "none lost" : `${lost} lost (gateway dropped ${gwDropped})`}`);
      }
    }
  } finally {
    await g.stop();
    await zeek.stop();
  }
}

if (isMainThread) await main();

// NATS over WebSocket, for comparison with bench/js-bench.mjs: a Node client -> nats-server
// -> Node client with the official JavaScript client (`nats.ws`, pinned in package.json), the
// same way js-bench measures our JS client through the gateway:
// - 1 -> 1 msgs/s, paced: the receiver (a worker thread: its own event loop) reports its
//   count every CREDIT messages and the publisher stays at most WINDOW messages ahead of it,
//   publishing in chunks of CHUNK, one chunk per turn of the event loop; N messages (default
//   1,000,000); rate = messages received / (first publish -> last receipt);
// - ping-pong round trips, one at a time (p50/p99 of 20,000 after 5,000 warm-up ones, whose
//   p99 is reported apart): publish, an echo client in a worker thread publishes it back, the
//   next message of the reply subject ends the trip.
// Payloads are 12 bytes, the size of the binary value ["ping", i] our clients publish for
// 16,384 <= i < 2,097,152 (most of the run); subjects are `bench.ping`, `bench.rt.*`.
// Both sides use the `ws` package as their WebSocket, as our JS client does on Node 20.
//
// It starts its own nats-server (Debian's `nats-server`, or $NATS_SERVER_BIN) with a config
// enabling WebSocket without TLS on a free port of 127.0.0.1, and stops it at the end, also
// on failure or interruption. Run with `scripts/bench-nats.sh` (installs nats-server when
// missing). With BENCH_JSON=<file>, the figures are also appended there (see rows.mjs).
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { track, stopChild } from "../tests/node/children.mjs";
import { row } from "./rows.mjs";
import { CHUNK, CREDIT, Credit, N, SILENCE_MS, WARMUP, WINDOW, coldAndWarm, now, tick } from "./pacing.mjs";

globalThis.WebSocket = WebSocket;
const { connect } = await import("nats.ws");

// N, CHUNK, WINDOW and CREDIT are bench/js-bench.mjs's (bench/pacing.mjs).
const ROUND_TRIPS = 20_000;
const PAYLOAD = 12;

/** A 12-byte payload carrying `i`. */
function payload(i) {
  const p = new Uint8Array(PAYLOAD);
  new DataView(p.buffer).setUint32(PAYLOAD - 4, i, true);
  return p;
}

if (!isMainThread) {
  const { url, mode } = workerData;
  const nc = await connect({ servers: url, maxReconnectAttempts: 0 });
  if (mode === "sink") {
    let got = 0;
    let credited = 0;
    let lastAt = 0;
    let done;
    const finished = new Promise((r) => { done = r; });
    nc.subscribe("bench.ping", {
      callback: (err) => {
        if (err) return done();
        got += 1;
        lastAt = now();
        if (got - credited >= CREDIT) {
          credited = got;
          parentPort.postMessage({ credit: got });
        }
        if (got >= N) done();
      },
    });
    await nc.flush();
    parentPort.postMessage({ ready: true });
    // Done at N messages, or once nothing arrived for SILENCE_MS (the rest counts as lost).
    let seen = -1;
    const watch = setInterval(() => {
      if (got === seen && got > 0) done();
      seen = got;
    }, SILENCE_MS);
    await finished;
    clearInterval(watch);
    parentPort.postMessage({ got, lastAt });
  } else {
    nc.subscribe("bench.rt.ping", { callback: (err, m) => { if (!err) nc.publish("bench.rt.pong", m.data); } });
    await nc.flush();
    parentPort.postMessage({ ready: true });
  }
  await new Promise(() => {});
}

async function worker(url, mode) {
  const w = new Worker(fileURLToPath(import.meta.url), { workerData: { url, mode } });
  const messages = [];
  const credit = new Credit();
  let wake;
  w.on("message", (m) => {
    if (m.credit !== undefined) return credit.update(m.credit);
    messages.push(m);
    wake?.();
  });
  w.on("error", (e) => { messages.push({ error: e }); wake?.(); });
  const next = async () => {
    while (messages.length === 0) await new Promise((r) => { wake = r; });
    const m = messages.shift();
    if (m.error) throw m.error;
    return m;
  };
  await next();
  return { w, next, credit };
}

async function oneToOne(url) {
  const { w, next, credit } = await worker(url, "sink");
  const nc = await connect({ servers: url, maxReconnectAttempts: 0 });
  const startAt = now();
  let sent = 0;
  for (let i = 0; i < N; i += CHUNK) {
    const end = Math.min(N, i + CHUNK);
    if (!(await credit.above(end - WINDOW))) break;
    for (let j = i; j < end; j++) nc.publish("bench.ping", payload(j));
    sent = end;
    await tick();
  }
  await nc.flush();
  const { got, lastAt } = await next();
  await nc.close();
  await w.terminate();
  return { got, sent, secs: (lastAt - startAt) / 1000 };
}

/** `WARMUP` + ROUND_TRIPS round trips: `cold` are the first WARMUP, `warm` the rest. */
async function roundTrips(url) {
  const { w } = await worker(url, "echo");
  const nc = await connect({ servers: url, maxReconnectAttempts: 0 });
  let arrived;
  nc.subscribe("bench.rt.pong", { callback: (err) => { if (!err) arrived?.(); } });
  await nc.flush();
  const rtts = new Float64Array(WARMUP + ROUND_TRIPS);
  for (let i = 0; i < WARMUP + ROUND_TRIPS; i++) {
    let timer;
    const pong = new Promise((resolve, reject) => {
      arrived = resolve;
      timer = setTimeout(() => reject(new Error(`round trip ${i}: no pong within ${SILENCE_MS} ms`)), SILENCE_MS);
    });
    const t = performance.now();
    nc.publish("bench.rt.ping", payload(i));
    await pong;
    rtts[i] = performance.now() - t;
    clearTimeout(timer);
  }
  await nc.close();
  await w.terminate();
  return coldAndWarm(rtts);
}

/** A free TCP port of 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts nats-server with WebSocket (no TLS) on a free port of 127.0.0.1; resolves once it
 * says it is ready, with its `url`, `version` and `stop()`. The process is killed if this
 * process exits or is interrupted first.
 */
async function startNats() {
  const bin = process.env.NATS_SERVER_BIN ?? "nats-server";
  const version = execFileSync(bin, ["--version"]).toString().trim();
  const [port, wsPort] = [await freePort(), await freePort()];
  const dir = mkdtempSync(path.join(os.tmpdir(), "nats-bench-"));
  const conf = path.join(dir, "nats.conf");
  writeFileSync(conf, `host: 127.0.0.1\nport: ${port}\nwebsocket {\n  host: 127.0.0.1\n  port: ${wsPort}\n  no_tls: true\n}\n`);
  const child = spawn(bin, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
  const exited = track(child);
  const stop = async () => {
    await stopChild(child, exited, () => child.kill("SIGTERM"), 10_000);
    rmSync(dir, { recursive: true, force: true });
  };
  const log = [];
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server not ready within 30 s:\n${log.join("\n")}`)), 30_000);
      child.once("error", (e) => { clearTimeout(timer); reject(e); });
      child.once("exit", (code, signal) => { clearTimeout(timer); reject(new Error(`nats-server exited (${code ?? signal}):\n${log.join("\n")}`)); });
      createInterface({ input: child.stderr }).on("line", (line) => {
        log.push(line);
        if (line.includes("Server is ready")) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `ws://127.0.0.1:${wsPort}`, version, stop };
}

if (isMainThread) {
  const nats = await startNats();
  let failed = false;
  try {
    console.log(`${N} messages of ${PAYLOAD} bytes per throughput case; ${nats.version}, WebSocket at ${nats.url}; nats.ws; Node ${process.version}`);
    console.log(`paced: publisher at most ${WINDOW} messages ahead of the receiver's count (as js-bench)`);
    console.log("Node nats.ws client -> nats-server (WebSocket) -> Node nats.ws client (receiver in a worker thread):");
    const r = await oneToOne(nats.url);
    const lost = N - r.got;
    const rate = r.got / r.secs;
    console.log(`  ${"paced".padEnd(34)} ${rate.toFixed(0).padStart(9)} msgs/s   ${r.got} of ${N} received, ${lost === 0 ? "none lost" : `${lost} lost (sent ${r.sent})`}`);
    row("nats.ws_node_1to1_paced", Math.round(rate), "msgs/s", "Node nats.ws client -> nats-server over WebSocket -> Node nats.ws client (worker)",
      `publisher at most ${WINDOW} messages ahead of the receiver's count`, lost === 0 ? "" : `${lost} of ${N} lost`);
    console.log(`Node ping-pong round trip through nats-server (${WARMUP.toLocaleString("en")} warm-up, then ${ROUND_TRIPS.toLocaleString("en")}; one at a time):`);
    const rt = await roundTrips(nats.url);
    console.log(`  warm-up p50 ${rt.cold.p50.toFixed(0)} us   p99 ${rt.cold.p99.toFixed(0)} us`);
    console.log(`  after   p50 ${rt.warm.p50.toFixed(0)} us   p99 ${rt.warm.p99.toFixed(0)} us`);
    const rtWhat = "Node ping -> nats-server -> Node echo (worker) -> nats-server -> Node";
    for (const q of ["p50", "p99"]) {
      row(`nats.ws_node_rtt_${q}`, Math.round(rt.warm[q]), "us", `${rtWhat}, ${q} of ${ROUND_TRIPS.toLocaleString("en")} after ${WARMUP.toLocaleString("en")} warm-up round trips`, "one message in flight");
    }
    row("nats.ws_node_rtt_cold_p99", Math.round(rt.cold.p99), "us", `${rtWhat}, p99 of the first ${WARMUP.toLocaleString("en")} (JIT warm-up)`, "one message in flight");
  } catch (e) {
    failed = true;
    console.error(e);
  } finally {
    await nats.stop();
  }
  process.exit(failed ? 1 : 0);
}

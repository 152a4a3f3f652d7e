// JS client benchmark with ["ping", i] messages: Node client -> gateway -> Node client
// (msgs/s), ping-pong round trips (p50/p99), and the receive rate of a client running in
// headless Chromium. Run with `scripts/bench-js.sh` (builds the release gateway and pkg/).
//
// Throughput is measured two ways, printed side by side:
// - paced (the figure to quote): default queue sizes everywhere (gateway 8192 messages per
//   consumer, JS subscriber 100,000), and the publisher stays at most WINDOW messages ahead of
//   what the receiver has counted (the receiver reports its count every CREDIT messages).
//   Publishing is fire-and-forget and queues are bounded, so this is the rate the system
//   sustains; any loss is reported.
// - unpaced: the publisher sends everything as fast as it can into queues raised to
//   10,000,000 (gateway and receiver). That measures how fast a burst is absorbed with
//   unbounded buffering, not a rate that holds with the defaults (with default queues an
//   unpaced publisher mostly measures how fast messages are dropped).
import { spawn } from "node:child_process";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as broker from "../pkg/node.mjs";
import { startGateway } from "../tests/node/gateway.mjs";
import { launch, openPage } from "../tests/node/chromium.mjs";
import { row } from "./rows.mjs";
import { CHUNK, CREDIT, Credit, N, SILENCE_MS, WARMUP, WINDOW, coldAndWarm, now, tick } from "./pacing.mjs";

const { Endpoint, Count } = broker;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** The Rust publisher of the Chromium cases (built by scripts/bench.sh and bench-js.sh). */
const RUST_PUBLISHER = process.env.BENCH_PUBLISHER_BIN ??
  path.join(process.env.CARGO_TARGET_DIR ?? path.join(root, "target"), "release/examples/bench_publisher");
/** Queue size of the unpaced runs. */
const HUGE = 10_000_000;

if (!isMainThread) {
  // The receiving client, in its own thread (its own event loop and wasm instance).
  const { url, mode, queueSize } = workerData;
  const ep = new Endpoint(queueSize ? { queueSize } : {});
  await ep.peer(url);
  if (mode === "sink") {
    const sub = ep.makeSubscriber("/bench/ping");
    await ep.flush();
    parentPort.postMessage({ ready: true });
    let got = 0;
    let credited = 0;
    let lastAt = 0;
    while (got < N) {
      const m = await sub.get({ timeoutMs: SILENCE_MS });
      if (m === null) break;
      got += 1 + sub.poll().length;
      lastAt = now();
      if (got - credited >= CREDIT) {
        credited = got;
        parentPort.postMessage({ credit: got });
      }
    }
    parentPort.postMessage({ got, lastAt, dropped: sub.dropped });
  } else {
    const sub = ep.makeSubscriber("/bench/rt/ping");
    await ep.flush();
    parentPort.postMessage({ ready: true });
    for await (const [, value] of sub) ep.publish("/bench/rt/pong", value);
  }
}

async function worker(url, mode, queueSize) {
  const w = new Worker(fileURLToPath(import.meta.url), { workerData: { url, mode, queueSize } });
  const messages = [];
  const credit = new Credit();
  let wake;
  w.on("message", (m) => {
    if (m.credit !== undefined) return credit.update(m.credit);
    messages.push(m);
    wake?.();
  });
  const next = async () => {
    while (messages.length === 0) await new Promise((r) => { wake = r; });
    return messages.shift();
  };
  await next();
  return { w, next, credit };
}

/**
 * Publishes N pings in chunks of CHUNK, one chunk per turn of the event loop. With `credit`,
 * waits before each chunk until the receiver is at most WINDOW behind; if it stops counting,
 * publishing stops (the shortfall shows as lost). Returns the start time and messages sent.
 */
async function publishAll(ep, topic, credit) {
  const startAt = now();
  let sent = 0;
  for (let i = 0; i < N; i += CHUNK) {
    const end = Math.min(N, i + CHUNK);
    if (credit && !(await credit.above(end - WINDOW))) break;
    for (let j = i; j < end; j++) ep.publish(topic, ["ping", new Count(BigInt(j))]);
    sent = end;
    await tick();
  }
  return { startAt, sent };
}

async function metric(g, name) {
  const text = await (await fetch(`${g.http}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`broker_${name} `));
  return Number(line.split(" ")[1]);
}

/** Prints a throughput case; with BENCH_JSON, also its row `name` (see rows.mjs). */
function report(label, { got, sent, secs, gatewayDropped, clientDropped }, name, what, paced) {
  const lost = N - got;
  const rate = (got / secs).toFixed(0).padStart(9);
  const losses = lost === 0 ? "none lost" : `${lost} lost (sent ${sent}; dropped by the gateway ${gatewayDropped}, by the receiver ${clientDropped})`;
  console.log(`  ${label.padEnd(34)} ${rate} msgs/s   ${got} of ${N} received, ${losses}`);
  row(name, Math.round(got / secs), "msgs/s", what, paced, lost === 0 ? "" : `${lost} of ${N} lost`);
}

const PACED = `publisher at most ${WINDOW} messages ahead of the receiver's count`;
const UNPACED = `unpaced, queues ${HUGE} (burst absorption)`;

async function nodeOneToOne(g, paced) {
  const { w, next, credit } = await worker(g.url, "sink", paced ? undefined : HUGE);
  const pub = new Endpoint();
  await pub.peer(g.url);
  const dropped0 = await metric(g, "dropped_total");
  const { startAt, sent } = await publishAll(pub, "/bench/ping", paced ? credit : null);
  const { got, lastAt, dropped } = await next();
  const gatewayDropped = (await metric(g, "dropped_total")) - dropped0;
  await pub.shutdown();
  await w.terminate();
  return { got, sent, secs: (lastAt - startAt) / 1000, gatewayDropped, clientDropped: dropped };
}

/** `WARMUP` + `n` round trips: `cold` are the first WARMUP, `warm` the n after them. */
async function roundTrips(g, n = 20_000) {
  const { w } = await worker(g.url, "echo");
  const ep = new Endpoint();
  await ep.peer(g.url);
  const sub = ep.makeSubscriber("/bench/rt/pong");
  await ep.flush();
  const rtts = new Float64Array(WARMUP + n);
  for (let i = 0; i < WARMUP + n; i++) {
    const t = performance.now();
    ep.publish("/bench/rt/ping", ["ping", new Count(BigInt(i))]);
    if ((await sub.get({ timeoutMs: SILENCE_MS })) === null) throw new Error(`round trip ${i}: no pong within ${SILENCE_MS} ms`);
    rtts[i] = performance.now() - t;
  }
  await ep.shutdown();
  await w.terminate();
  return coldAndWarm(rtts);
}

/**
 * The Rust publisher (`gateway/examples/bench_publisher.rs`): N pings to `topic`, paced by
 * the counts the receiver publishes to /bench/browser/credit when `paced`. Resolves with the
 * wall-clock start it printed and what it sent, once it exited.
 */
function rustPublisher(url, topic, paced) {
  const args = [url, topic, String(N), ...(paced ? ["--credit", "/bench/browser/credit", "--window", String(WINDOW)] : [])];
  const child = spawn(RUST_PUBLISHER, args, { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", () => {
      const startAt = Number(/^start (\S+)$/m.exec(out)?.[1]);
      const sent = Number(/^sent (\d+)$/m.exec(out)?.[1] ?? 0);
      if (!Number.isFinite(startAt)) reject(new Error(`${RUST_PUBLISHER} printed no start: ${out}`));
      else resolve({ startAt, sent });
    });
  });
}

async function chromiumReceive(browser, g, paced, publisher = "node") {
  const { page } = await openPage(browser, `${g.http}/bench.html`);
  try {
    await page.evaluate(([url, opts]) => window.startBench(url, opts), [g.url, paced ? { creditEvery: CREDIT } : { queueSize: HUGE }]);
    if (publisher === "rust") {
      const dropped0 = await metric(g, "dropped_total");
      const resultP = page.evaluate(([n, ms]) => window.waitFor(n, ms), [N, SILENCE_MS]);
      const { startAt, sent } = await rustPublisher(g.url, "/bench/browser", paced);
      const { got, lastAt, dropped } = await resultP;
      const gatewayDropped = (await metric(g, "dropped_total")) - dropped0;
      await page.evaluate(() => window.stopBench());
      return { got, sent, secs: (lastAt - startAt) / 1000, gatewayDropped, clientDropped: dropped };
    }
    const pub = new Endpoint();
    await pub.peer(g.url);
    const credit = new Credit();
    const credits = pub.makeSubscriber("/bench/browser/credit");
    await pub.flush();
    (async () => {
      for await (const [, c] of credits) credit.update(Number(c.value));
    })();
    const dropped0 = await metric(g, "dropped_total");
    const resultP = page.evaluate(([n, ms]) => window.waitFor(n, ms), [N, SILENCE_MS]);
    const { startAt, sent } = await publishAll(pub, "/bench/browser", paced ? credit : null);
    const { got, lastAt, dropped } = await resultP;
    const gatewayDropped = (await metric(g, "dropped_total")) - dropped0;
    await pub.shutdown();
    await page.evaluate(() => window.stopBench());
    return { got, sent, secs: (lastAt - startAt) / 1000, gatewayDropped, clientDropped: dropped };
  } finally {
    await page.close();
  }
}

if (isMainThread) {
  const web = ["--web-dir", path.join(root, "tests/browser")];
  const defaults = await startGateway(web);
  const raised = await startGateway(["--queue-size", String(HUGE), ...web]);
  const browser = await launch();
  try {
    console.log(`${N} ["ping", i] messages per throughput case; Node ${process.version}; ${new Date().toISOString()}`);
    console.log(`paced: default queues, publisher at most ${WINDOW} messages ahead of the receiver's count`);
    console.log(`unpaced: no pacing, gateway and receiver queues raised to ${HUGE} (burst absorption, not a sustained rate)`);
    console.log(`rate = messages received / (first publish -> last receipt)`);
    console.log("Node client -> gateway -> Node client (receiver in a worker thread):");
    const node = "Node client -> gateway -> Node client (receiver in a worker thread)";
    report("paced, default queues", await nodeOneToOne(defaults, true), "js.node_1to1_paced", node, PACED);
    report(`unpaced, queues ${HUGE}`, await nodeOneToOne(raised, false), "js.node_1to1_unpaced", node, UNPACED);
    console.log(`Node ping-pong round trip through the gateway (${WARMUP.toLocaleString("en")} warm-up, then 20,000; one at a time):`);
    const rt = await roundTrips(defaults);
    console.log(`  warm-up p50 ${rt.cold.p50.toFixed(0)} us   p99 ${rt.cold.p99.toFixed(0)} us`);
    console.log(`  after   p50 ${rt.warm.p50.toFixed(0)} us   p99 ${rt.warm.p99.toFixed(0)} us`);
    const rtWhat = "Node ping -> gateway -> Node echo (worker) -> gateway -> Node";
    for (const q of ["p50", "p99"]) {
      row(`js.node_rtt_${q}`, Math.round(rt.warm[q]), "us", `${rtWhat}, ${q} of 20,000 after ${WARMUP.toLocaleString("en")} warm-up round trips`, "one message in flight");
    }
    row("js.node_rtt_cold_p99", Math.round(rt.cold.p99), "us", `${rtWhat}, p99 of the first ${WARMUP.toLocaleString("en")} (JIT warm-up)`, "one message in flight");
    console.log("Node client -> gateway -> client in headless Chromium:");
    const page = "Node client -> gateway -> client in headless Chromium";
    report("paced, default queues", await chromiumReceive(browser, defaults, true), "js.chromium_1to1_paced", page, PACED);
    report(`unpaced, queues ${HUGE}`, await chromiumReceive(browser, raised, false), "js.chromium_1to1_unpaced", page, UNPACED);
    // The Node publisher tops out near 300,000 msgs/s here (converting and encoding each
    // value in wasm, masking each frame): a Rust publisher shows what the page itself takes.
    console.log("Rust client (gateway/examples/bench_publisher.rs) -> gateway -> client in headless Chromium:");
    const rustPage = "Rust client -> gateway -> client in headless Chromium";
    report("paced, default queues", await chromiumReceive(browser, defaults, true, "rust"), "js.chromium_rustpub_paced", rustPage, PACED);
    report(`unpaced, queues ${HUGE}`, await chromiumReceive(browser, raised, false, "rust"), "js.chromium_rustpub_unpaced", rustPage, UNPACED);
  } finally {
    await browser.close();
    await defaults.stop();
    await raised.stop();
  }
  process.exit(0);
}

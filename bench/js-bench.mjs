// JS client benchmark: Node client -> gateway -> Node client with ["ping", i] messages
// (msgs/s), ping-pong round trips (p50/p99), and the receive rate of a client running in
// headless Chromium. Run with `scripts/bench-js.sh` (builds the release gateway and pkg/).
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as broker from "../pkg/node.mjs";
import { startGateway } from "../tests/node/gateway.mjs";
import { launch, openPage } from "../tests/node/chromium.mjs";

const { Endpoint, Count } = broker;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const N = Number(process.env.N ?? 1_000_000);
const CHUNK = 2000;

const tick = () => new Promise((r) => setImmediate(r));

if (!isMainThread) {
  // The receiving client, in its own thread (its own event loop and wasm instance).
  const { url, mode } = workerData;
  const ep = new Endpoint({ queueSize: 10_000_000 });
  await ep.peer(url);
  if (mode === "sink") {
    const sub = ep.makeSubscriber("/bench/ping");
    await ep.flush();
    parentPort.postMessage({ ready: true });
    let got = 0;
    let first = 0;
    while (got < N) {
      const m = await sub.get({ timeoutMs: 20_000 });
      if (m === null) break;
      if (got === 0) first = performance.now();
      got += 1 + sub.poll().length;
    }
    parentPort.postMessage({ got, ms: performance.now() - first });
  } else {
    const sub = ep.makeSubscriber("/bench/rt/ping");
    await ep.flush();
    parentPort.postMessage({ ready: true });
    for await (const [, value] of sub) ep.publish("/bench/rt/pong", value);
  }
}

async function worker(url, mode) {
  const w = new Worker(fileURLToPath(import.meta.url), { workerData: { url, mode } });
  const messages = [];
  let wake;
  w.on("message", (m) => { messages.push(m); wake?.(); });
  const next = async () => {
    while (messages.length === 0) await new Promise((r) => { wake = r; });
    return messages.shift();
  };
  await next();
  return { w, next };
}

async function publishAll(ep, topic) {
  const start = performance.now();
  for (let i = 0; i < N; i += CHUNK) {
    for (let j = i; j < Math.min(N, i + CHUNK); j++) ep.publish(topic, ["ping", new Count(BigInt(j))]);
    await tick();
  }
  return start;
}

async function nodeOneToOne(g) {
  const { w, next } = await worker(g.url, "sink");
  const pub = new Endpoint();
  await pub.peer(g.url);
  const start = await publishAll(pub, "/bench/ping");
  const { got, ms } = await next();
  const total = performance.now() - start;
  await pub.shutdown();
  await w.terminate();
  return { got, rate: got / (ms / 1000), endToEnd: got / (total / 1000) };
}

async function roundTrips(g, n = 20_000) {
  const { w } = await worker(g.url, "echo");
  const ep = new Endpoint();
  await ep.peer(g.url);
  const sub = ep.makeSubscriber("/bench/rt/pong");
  await ep.flush();
  const rtts = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    ep.publish("/bench/rt/ping", ["ping", new Count(BigInt(i))]);
    await sub.get();
    rtts[i] = performance.now() - t;
  }
  rtts.sort();
  await ep.shutdown();
  await w.terminate();
  return { p50: rtts[Math.floor(n / 2)] * 1000, p99: rtts[Math.floor(n * 0.99)] * 1000 };
}

async function chromiumReceive(g) {
  const browser = await launch();
  try {
    const { page } = await openPage(browser, `${g.http}/bench.html`);
    await page.evaluate((url) => window.startBench(url), g.url);
    const pub = new Endpoint();
    await pub.peer(g.url);
    const resultP = page.evaluate((n) => window.waitFor(n), N);
    await publishAll(pub, "/bench/browser");
    const { got, ms } = await resultP;
    await pub.shutdown();
    return { got, rate: got / (ms / 1000) };
  } finally {
    await browser.close();
  }
}

if (isMainThread) {
  const g = await startGateway(["--queue-size", "10000000", "--web-dir", path.join(root, "tests/browser")]);
  try {
    console.log(`gateway ${g.addr}; ${N} messages per throughput case; Node ${process.version}`);
    const o = await nodeOneToOne(g);
    console.log(`Node 1 -> 1            ${o.rate.toFixed(0).padStart(10)} msgs/s received (${o.got} messages; ${o.endToEnd.toFixed(0)} msgs/s end to end)`);
    const rt = await roundTrips(g);
    console.log(`Node round trip        p50 ${rt.p50.toFixed(0)} us   p99 ${rt.p99.toFixed(0)} us`);
    const c = await chromiumReceive(g);
    console.log(`Chromium receiving     ${c.rate.toFixed(0).padStart(10)} msgs/s (${c.got} messages)`);
  } finally {
    await g.stop();
  }
  process.exit(0);
}

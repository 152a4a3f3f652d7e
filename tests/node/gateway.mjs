// Test helper: runs the broker-gateway binary on 127.0.0.1:0 (or a given port) and stops it.
// Every gateway started here is also killed when the process exits or is interrupted, so a
// failing or aborted test never leaves one running.
import { spawn } from "node:child_process";
import { track, stopChild } from "./children.mjs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** How long a gateway may take to print its address, and to exit once asked to. */
const START_MS = 30_000;
const STOP_MS = 10_000;

/** Path of the gateway binary (`scripts/test.sh` builds it). */
export function gatewayBin() {
  if (process.env.BROKER_GATEWAY_BIN) return process.env.BROKER_GATEWAY_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? path.join(root, "target");
  return path.join(target, "debug", "broker-gateway");
}

/**
 * Starts a gateway; resolves once it printed its address (rejects, with the process killed,
 * if it exits first, prints something else or says nothing within 30 s).
 * @param {string[]} [args] extra flags
 * @param {string} [listen] address, default 127.0.0.1:0
 */
export function startGateway(args = [], listen = "127.0.0.1:0") {
  const child = spawn(gatewayBin(), ["--listen", listen, "--log-level", "warn", ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = track(child);
  const stop = (signal = "SIGTERM") => stopChild(child, exited, () => child.kill(signal), STOP_MS);
  return new Promise((resolve, reject) => {
    const fail = (err) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`broker-gateway printed no address within ${START_MS} ms`)), START_MS);
    child.once("error", fail);
    child.once("exit", (code, signal) => fail(new Error(`broker-gateway exited early (${code ?? signal})`)));
    const lines = createInterface({ input: child.stdout });
    lines.once("line", (line) => {
      const addr = line.split("http://")[1];
      if (!addr) return fail(new Error(`unexpected first line: ${line}`));
      clearTimeout(timer);
      const [host, port] = [addr.slice(0, addr.lastIndexOf(":")), Number(addr.slice(addr.lastIndexOf(":") + 1))];
      resolve({
        addr,
        host,
        port,
        pid: child.pid,
        url: `ws://${addr}`,
        http: `http://${addr}`,
        /** Stops the gateway (SIGTERM by default; SIGKILL after 10 s) and waits for the exit. */
        stop,
      });
    });
  });
}

/**
 * Starts a gateway for test context `t` and stops it (SIGKILL) when the test ends, passed
 * or failed.
 */
export async function testGateway(t, args = [], listen = undefined) {
  const g = await startGateway(args, listen);
  t.after(() => g.stop("SIGKILL"));
  return g;
}

/** Shuts `endpoints` down when test `t` ends (their reconnect timers would keep Node alive). */
export function shutdownAfter(t, ...endpoints) {
  t.after(() => Promise.all(endpoints.map((ep) => ep.shutdown())));
  return endpoints[0];
}

/**
 * `promise`, or a rejection naming `what` once `ms` passed (the timer is cleared either way).
 * @template T @param {Promise<T>} promise @param {string} what @param {number} [ms]
 * @returns {Promise<T>}
 */
export async function within(promise, what, ms = 10_000) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls `cond` (sync or async) every `intervalMs` until it is true; fails naming `what` after
 * `ms`. Only for state that no event announces (e.g. subscriptions propagating between
 * gateways).
 */
export async function until(what, cond, { ms = 10_000, intervalMs = 20 } = {}) {
  const deadline = performance.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Resolves with the next status event with `code` from `sub`, skipping others; fails after `ms`. */
export async function expectStatus(sub, code, ms = 10_000) {
  const deadline = performance.now() + ms;
  for (;;) {
    const left = deadline - performance.now();
    const e = left > 0 ? await sub.get({ timeoutMs: left }) : null;
    if (e === null) throw new Error(`no ${code} status within ${ms} ms`);
    if (e.code === code) return e;
  }
}

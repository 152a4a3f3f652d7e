// Test helper: runs the broker-gateway binary on 127.0.0.1:0 (or a given port) and stops it.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Path of the gateway binary (`scripts/test.sh` builds it). */
export function gatewayBin() {
  if (process.env.BROKER_GATEWAY_BIN) return process.env.BROKER_GATEWAY_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? path.join(root, "target");
  return path.join(target, "debug", "broker-gateway");
}

/**
 * Starts a gateway; resolves once it printed its address.
 * @param {string[]} [args] extra flags
 * @param {string} [listen] address, default 127.0.0.1:0
 */
export function startGateway(args = [], listen = "127.0.0.1:0") {
  const child = spawn(gatewayBin(), ["--listen", listen, "--log-level", "warn", ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`broker-gateway exited early (${code})`)));
    lines.once("line", (line) => {
      const addr = line.split("http://")[1];
      if (!addr) return reject(new Error(`unexpected first line: ${line}`));
      const [host, port] = [addr.slice(0, addr.lastIndexOf(":")), Number(addr.slice(addr.lastIndexOf(":") + 1))];
      resolve({
        addr,
        host,
        port,
        url: `ws://${addr}`,
        http: `http://${addr}`,
        /** Stops the gateway (SIGTERM by default) and waits for the exit. */
        stop(signal = "SIGTERM") {
          return new Promise((res) => {
            if (child.exitCode !== null || child.signalCode !== null) return res();
            child.removeAllListeners("exit");
            child.once("exit", () => res());
            child.kill(signal);
          });
        },
      });
    });
  });
}

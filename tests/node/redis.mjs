// Test helper: a real redis-server (Debian's; scripts/ensure-tools.sh installs it) on a free
// port of 127.0.0.1, without persistence, for the namespace tests on Redis (RB-16). It is
// stopped when the test ends, and killed when the Node process exits.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { track, stopChild } from "./children.mjs";

const START_MS = 10_000;

/** A free TCP port of 127.0.0.1 (free when asked; a collision makes the start fail). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** True once `PING` on `port` answers `+PONG`. */
function pings(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once("error", () => done(false));
    sock.once("connect", () => sock.write("PING\r\n"));
    sock.once("data", (d) => done(d.toString().startsWith("+PONG")));
  });
}

/** Starts a redis-server for test `t`; resolves to `{ port, url, stop }` once it answers
 * (`stop` ends it early; it is stopped at the end of the test anyway). */
export async function testRedis(t) {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), "redis-node-"));
  const bin = process.env.REDIS_SERVER_BIN ?? "redis-server";
  const child = spawn(
    bin,
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    { stdio: "ignore" },
  );
  const exited = track(child);
  const stop = async () => {
    await stopChild(child, exited, () => child.kill("SIGKILL"), 5_000);
    rmSync(dir, { recursive: true, force: true });
  };
  t.after(stop);
  const deadline = Date.now() + START_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${bin} exited early (${child.exitCode}); scripts/ensure-tools.sh installs it`);
    if (await pings(port)) break;
    if (Date.now() > deadline) throw new Error(`${bin} did not answer on port ${port} within ${START_MS} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { port, url: `redis://127.0.0.1:${port}`, stop };
}

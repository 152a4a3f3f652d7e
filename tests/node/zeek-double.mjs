// Test helper: runs the Zeek double (`zeek-double`, a stand-in for Zeek's WebSocket API; its
// command line and stdin/stdout protocol are described in tests/src/bin/zeek-double/main.rs)
// and talks to it. Every double started here is killed when the process exits or is
// interrupted; it also exits by itself when its stdin closes.
import { spawn } from "node:child_process";
import { track, stopChild } from "./children.mjs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** How long the double may take to print its port, and to exit once asked to. */
const START_MS = 30_000;
const STOP_MS = 10_000;
/** Default deadline of `next`. */
const WAIT_MS = 10_000;

/** Path of the binary (`cargo build -p e2e --bin zeek-double`; `scripts/test.sh` builds it). */
export function zeekDoubleBin() {
  if (process.env.ZEEK_DOUBLE_BIN) return process.env.ZEEK_DOUBLE_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? path.join(root, "target");
  return path.join(target, "debug", "zeek-double");
}

/**
 * Starts the double; resolves once it printed its port (rejects, with the process killed, if
 * it exits first or says nothing within 30 s).
 * @param {string[]} [args] e.g. ["--event", "ping(string,count)"]
 * @returns {Promise<{port: number, node: string, url: string, pid: number,
 *   endpoint: (n: number) => string, send: (cmd: object) => void,
 *   next: (predicate: string | ((e: any) => boolean), ms?: number) => Promise<any>,
 *   command: (cmd: object, answer: string) => Promise<any>, stop: () => Promise<void>}>}
 */
export function startZeekDouble(args = []) {
  const child = spawn(zeekDoubleBin(), args, { stdio: ["pipe", "pipe", "inherit"] });
  const exited = track(child);
  // Lines not taken by any `next` yet, and the waits for new ones.
  const backlog = [];
  const waiters = new Set();
  let ended = false;
  const lines = createInterface({ input: child.stdout });
  lines.on("line", (line) => {
    let event;
    try {
      event = JSON.parse(line);
    } catch {
      event = { event: "unparsed", line };
    }
    for (const w of waiters) {
      if (w.predicate(event)) {
        waiters.delete(w);
        w.resolve(event);
        return;
      }
    }
    backlog.push(event);
  });
  lines.on("close", () => {
    ended = true;
    for (const w of waiters) w.reject(new Error(`zeek-double ended while waiting for ${w.what}`));
    waiters.clear();
  });

  /** The next event matching `predicate` (an event name or a function), earlier ones first. */
  const next = (predicate, ms = WAIT_MS) => {
    const what = typeof predicate === "string" ? predicate : "a matching event";
    const test = typeof predicate === "string" ? (e) => e.event === predicate : predicate;
    const i = backlog.findIndex(test);
    if (i >= 0) return Promise.resolve(backlog.splice(i, 1)[0]);
    if (ended) return Promise.reject(new Error(`zeek-double has ended; no ${what}`));
    return new Promise((resolve, reject) => {
      const w = {
        what,
        predicate: test,
        resolve: (e) => {
          clearTimeout(w.timer);
          resolve(e);
        },
        reject: (err) => {
          clearTimeout(w.timer);
          reject(err);
        },
      };
      w.timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`no ${what} from zeek-double within ${ms} ms; unmatched: ${JSON.stringify(backlog)}`));
      }, ms);
      waiters.add(w);
    });
  };
  const send = (cmd) => {
    child.stdin.write(JSON.stringify(cmd) + "\n");
  };
  const stop = () => stopChild(child, exited, () => child.stdin.end(), STOP_MS);

  return new Promise((resolve, reject) => {
    const fail = (err) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`zeek-double printed no port within ${START_MS} ms`)), START_MS);
    child.once("error", fail);
    next((e) => "listening" in e, START_MS).then((first) => {
      clearTimeout(timer);
      const { listening: port, node } = first;
      resolve({
        port,
        node,
        pid: child.pid,
        url: `ws://127.0.0.1:${port}/v1/messages/json`,
        /** The endpoint id in the ack of client `n`. */
        endpoint: (n) => `${node}-websocket-${n}`,
        send,
        next,
        /** Sends `cmd` and resolves with its answer, the next event named `answer`. */
        command: (cmd, answer) => {
          send(cmd);
          return next(answer);
        },
        /** Closes its stdin (it exits), SIGKILL after 10 s; waits for the exit. */
        stop,
      });
    }, fail);
  });
}

/**
 * A Zeek event as a Broker JSON v1 data-message, the object a Zeek WebSocket client sends
 * and receives: `[count 1, count 1, [name, [args...]]]`, each argument given in its typed
 * JSON form, e.g. `{ "@data-type": "count", data: 5 }`.
 */
export function eventMessage(topic, name, args) {
  return {
    type: "data-message",
    topic,
    "@data-type": "vector",
    data: [
      { "@data-type": "count", data: 1 },
      { "@data-type": "count", data: 1 },
      {
        "@data-type": "vector",
        data: [
          { "@data-type": "string", data: name },
          { "@data-type": "vector", data: args },
        ],
      },
    ],
  };
}

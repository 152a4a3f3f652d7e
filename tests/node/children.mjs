// Test helper: child processes (gateways, the Zeek double) that must not outlive the tests.
// Every process tracked here is killed when the Node process exits or is interrupted, so a
// failing or aborted test never leaves one running.

/** Child processes that have not exited yet. */
const running = new Set();

function killAll() {
  for (const child of running) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  running.clear();
}

// `exit` covers a normal end and process.exit(); signals end the process without it, so
// kill the children first and then die of the same signal (the handler is gone by then).
process.on("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.once(signal, () => {
    killAll();
    process.kill(process.pid, signal);
  });
}

/** Tracks `child` until it exits; the returned promise resolves when it has. */
export function track(child) {
  running.add(child);
  return new Promise((resolve) => {
    child.once("exit", () => {
      running.delete(child);
      resolve();
    });
  });
}

/**
 * Asks a running `child` to end with `ask()` and waits for `exited` (from `track`); SIGKILL if
 * it is still running after `ms`.
 */
export async function stopChild(child, exited, ask, ms) {
  if (child.exitCode === null && child.signalCode === null) {
    ask();
    let timer;
    const late = new Promise((resolve) => {
      timer = setTimeout(() => resolve("late"), ms);
    });
    if ((await Promise.race([exited, late])) === "late") child.kill("SIGKILL");
    clearTimeout(timer);
  }
  await exited;
}

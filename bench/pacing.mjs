// Pacing and percentiles shared by the Node benchmarks (js-bench, nats-bench), so that our
// client and nats.js are paced and summarised the same way.

/** Messages per throughput case. */
export const N = Number(process.env.N ?? 1_000_000);
/** The publisher sends this many per turn of the event loop. */
export const CHUNK = 2000;
/** Messages the paced publisher may be ahead of the receiver's count. */
export const WINDOW = 4096;
/** The receiver reports its count each time it grows by this much. */
export const CREDIT = 1024;

/** One turn of the event loop. */
export const tick = () => new Promise((r) => setImmediate(r));
/** Milliseconds on a clock shared by threads (and, in a page, with other processes). */
export const now = () => performance.timeOrigin + performance.now();

/** A receiver that got nothing new for this long is done (the rest counts as lost). */
export const SILENCE_MS = 10_000;

/** Round trips first made and reported apart (JIT and wasm tier-up warm-up). */
export const WARMUP = 5_000;

/** What a receiver has counted, as it reports it; `above(n)` waits until it passed `n`. */
export class Credit {
  constructor() {
    this.value = 0;
    this.waiter = null;
  }
  update(n) {
    this.value = Math.max(this.value, n);
    if (this.waiter && this.value >= this.waiter.n) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve(true);
    }
  }
  /** Resolves true once the count reached `n`, false if it did not move for SILENCE_MS. */
  above(n) {
    if (this.value >= n) return Promise.resolve(true);
    return new Promise((resolve) => {
      let seen = this.value;
      let timer;
      const check = () => {
        if (this.value === seen) {
          this.waiter = null;
          return resolve(false);
        }
        seen = this.value;
        timer = setTimeout(check, SILENCE_MS);
      };
      timer = setTimeout(check, SILENCE_MS);
      this.waiter = { n, resolve: (v) => { clearTimeout(timer); resolve(v); } };
    });
  }
}

/** Median and 99th percentile (us) of round-trip times in ms. */
export function percentiles(rtts) {
  const s = Float64Array.from(rtts).sort();
  return { p50: s[Math.floor(s.length / 2)] * 1000, p99: s[Math.floor(s.length * 0.99)] * 1000 };
}

/** Round-trip percentiles of `rtts` (ms): `cold` of the first WARMUP, `warm` of the rest. */
export function coldAndWarm(rtts) {
  return { cold: percentiles(rtts.subarray(0, WARMUP)), warm: percentiles(rtts.subarray(WARMUP)) };
}

"""Python publisher -> Python subscriber throughput and latency.

Measures what a Python program sees: one process publishes `(seq, send time in ns)` one
message per `publish` call on /bench/x, another process receives them (`get(timeout)` then
`poll()`; with Broker's bindings `select` on `fd()` then `poll()`) and records each message's latency (same monotonic clock in both processes). The publisher
is paced: for each offered rate it publishes in slices of 1 ms; `max` publishes as fast as
the loop can. Reports, per rate: messages received per second (first to last receipt) and the
latency percentiles.

  --impl ours     this package: both endpoints peer a broker-gateway (--port) (default)
  --impl broker   Broker's own Python bindings (e.g. Debian's python3-broker 1.4): the
                  subscriber listens, the publisher peers it directly (no gateway)

Run both through scripts/bench-python.sh, which builds the release gateway and package,
starts the gateway and runs Debian's python3-broker (installed if missing) in the same run.
"""

import argparse
import json
import os
import select
import subprocess
import sys
import time

import broker

TOPIC = "/bench/x"


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, int(round(p / 100.0 * (len(sorted_values) - 1))))
    return sorted_values[i]


def receiver(sub, impl):
    """Each implementation's fastest way to take what arrived, waiting at most 50 ms."""
    if impl == "broker":
        fd = sub.fd()

        def recv():
            if select.select([fd], [], [], 0.05)[0]:
                return sub.poll()
            return []
    else:

        def recv():
            first = sub.get(0.05)
            return [first] + sub.poll() if first is not None else []

    return recv


def subscriber(args):
    ep = broker.Endpoint()
    sub = ep.make_subscriber(TOPIC)
    recv = receiver(sub, args.impl)
    if args.impl == "broker":
        port = ep.listen("127.0.0.1", 0)
        print(json.dumps({"port": port}), flush=True)
    else:
        ep.peer("127.0.0.1", args.port)
        print(json.dumps({"port": None}), flush=True)
    # Rounds: warm-up messages (seq < 0) until the publisher sees "warm", then `n` messages.
    warm_seen = False
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        n = int(line)
        lat, first, last, got = [], None, None, 0
        deadline = time.monotonic() + args.timeout
        while got < n and time.monotonic() < deadline:
            for _, d in recv():
                now = time.perf_counter_ns()
                seq, sent = int(d[0]), int(d[1])
                if seq < 0:
                    if not warm_seen:
                        warm_seen = True
                        print("warm", flush=True)
                    continue
                if first is None:
                    first = now
                last = now
                got += 1
                lat.append(now - sent)
        lat.sort()
        span = (last - first) / 1e9 if got > 1 else float("nan")
        print(
            json.dumps(
                {
                    "received": got,
                    "rate": (got - 1) / span if got > 1 else 0,
                    "p50_us": percentile(lat, 50) / 1e3,
                    "p99_us": percentile(lat, 99) / 1e3,
                    "p999_us": percentile(lat, 99.9) / 1e3,
                }
            ),
            flush=True,
        )


def publish_paced(ep, n, rate):
    """Publishes n messages at `rate` per second (0 = as fast as possible)."""
    start = time.perf_counter()
    slice_n = max(1, int(rate / 1000)) if rate else n
    seq = 0
    while seq < n:
        end = min(n, seq + slice_n)
        for i in range(seq, end):
            ep.publish(TOPIC, (i, time.perf_counter_ns()))
        seq = end
        if rate:
            due = start + seq / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    return n / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=["ours", "broker"], default="ours")
    ap.add_argument("--port", type=int, default=9999, help="the gateway's port (--impl ours)")
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--rates", default="50000,100000,150000,max")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--role", default="pub")
    args = ap.parse_args()
    if args.role == "sub":
        return subscriber(args)

    sub = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--role", "sub", "--impl", args.impl,
         "--port", str(args.port), "--timeout", str(args.timeout)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        hello = json.loads(sub.stdout.readline())
        ep = broker.Endpoint()
        if args.impl == "broker":
            ep.peer("127.0.0.1", hello["port"])
        else:
            ep.peer("127.0.0.1", args.port)
        results = []
        for rate_s in args.rates.split(","):
            rate = 0 if rate_s == "max" else int(rate_s)
            sub.stdin.write(f"{args.messages}\n")
            sub.stdin.flush()
            if not results:
                # Warm up until the subscriber sees messages (its subscription has arrived).
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    ep.publish(TOPIC, (-1, time.perf_counter_ns()))
                    if select.select([sub.stdout], [], [], 0.05)[0]:
                        assert sub.stdout.readline().strip() == "warm"
                        break
                else:
                    raise SystemExit("the subscriber received nothing in 30 s")
            offered = publish_paced(ep, args.messages, rate)
            r = json.loads(sub.stdout.readline())
            r.update({"impl": args.impl, "offered": rate_s, "publish_rate": offered})
            results.append(r)
            print(
                f"{args.impl:6} offered {rate_s:>7}/s  published {offered:9.0f}/s  "
                f"received {r['received']:7d}/{args.messages}  {r['rate']:9.0f} msgs/s  "
                f"latency p50 {r['p50_us']:8.0f} us  p99 {r['p99_us']:8.0f} us  "
                f"p99.9 {r['p999_us']:8.0f} us",
                flush=True,
            )
        print(json.dumps(results))
        ep.shutdown() if hasattr(ep, "shutdown") else None
    finally:
        sub.stdin.close()
        sub.wait(30)


if __name__ == "__main__":
    main()

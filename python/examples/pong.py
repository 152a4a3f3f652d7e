# pong.py: the responder of the ping example in Python (what ping.zeek does in Zeek): peers
# the gateway at BROKER_PORT (default 9999) and answers every event ping(n) on /topic/test
# with pong(n). Prints "ready" once peered; stops after --count pings (default: never).

import argparse
import os

import broker

parser = argparse.ArgumentParser()
parser.add_argument("--count", type=int, default=0)
args = parser.parse_args()

with broker.Endpoint() as ep, ep.make_subscriber("/topic/test") as sub:
    if not ep.peer("", int(os.environ.get("BROKER_PORT", "9999"))):
        raise SystemExit("could not connect")
    print("ready", flush=True)
    answered = 0
    while not args.count or answered < args.count:
        (t, d) = sub.get()
        ev = broker.zeek.Event(d)
        if ev.name() == "ping":
            ep.publish("/topic/test", broker.zeek.Event("pong", *ev.args()))
            answered += 1

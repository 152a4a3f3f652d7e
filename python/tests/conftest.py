"""Shared fixtures: the real `broker-gateway` binary on a free port of 127.0.0.1, stopped when
the test ends, passed or failed."""

import os
import pathlib
import subprocess
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
START_S = 30.0


def gateway_bin():
    if os.environ.get("BROKER_GATEWAY_BIN"):
        return os.environ["BROKER_GATEWAY_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR") or str(ROOT / "target")
    return os.path.join(target, "debug", "broker-gateway")


class Gateway:
    """A running gateway: `host`, `port`, `url` (ws://), `http`."""

    def __init__(self, args=()):
        self.proc = subprocess.Popen(
            [gateway_bin(), "--listen", "127.0.0.1:0", "--log-level", "warn", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_S)
        if not line or "http://" not in line[0]:
            self.stop()
            raise RuntimeError(f"broker-gateway printed no address within {START_S} s: {line}")
        addr = line[0].split("http://", 1)[1].strip()
        self.host, port = addr.rsplit(":", 1)
        self.port = int(port)
        self.url = f"ws://{addr}"
        self.http = f"http://{addr}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def gateway():
    """Starts a gateway; more with `gateway.start(args)`; all are stopped afterwards."""
    started = []

    def start(args=()):
        g = Gateway(args)
        started.append(g)
        return g

    try:
        first = start()
        first.start = start
        yield first
    finally:
        for g in started:
            g.stop()

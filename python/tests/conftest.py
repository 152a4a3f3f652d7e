"""Shared fixtures: the real `broker-gateway` binary on a free port of 127.0.0.1, stopped when
the test ends, passed or failed."""

import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time

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


class Redis:
    """A real `redis-server` on a free port of 127.0.0.1, without persistence (RB-16)."""

    def __init__(self):
        exe = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server")
        if not exe:
            raise RuntimeError("redis-server is missing: scripts/ensure-tools.sh installs it")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="redis-test-")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_S
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.02)
        self.url = f"redis://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def gateway(request):
    """Starts a gateway; more with `gateway.start(args)`; all are stopped afterwards. With
    the indirect parameter "redis", namespaces live in a real redis-server started for the
    test (`--ns-backend`)."""
    started = []
    redis = Redis() if getattr(request, "param", "builtin") == "redis" else None
    base = ["--ns-backend", redis.url] if redis else []

    def start(args=()):
        g = Gateway([*base, *args])
        g.backend = "redis" if redis else "builtin"
        started.append(g)
        return g

    try:
        first = start()
        first.start = start
        yield first
    finally:
        for g in started:
            g.stop()
        if redis:
            redis.stop()

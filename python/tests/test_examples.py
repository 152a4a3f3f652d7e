"""The seed's ping.py, as printed, against a gateway with the Python responder pong.py."""

import os
import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def test_ping_py_against_a_gateway_with_a_responder(gateway):
    env = dict(os.environ, BROKER_PORT=str(gateway.port))
    pong = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "pong.py"), "--count", "5"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert pong.stdout.readline().strip() == "ready"
        out = subprocess.run(
            [sys.executable, str(EXAMPLES / "ping.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        # Broker 2.x, like this endpoint, reports EndpointDiscovered before PeerAdded (ZB-23),
        # so the example's first status check prints "could not connect" there too; the
        # five answers are as printed in the documentation.
        assert lines[-5:] == [f"received pong[{n}]" for n in range(5)]
        assert lines[:-5] in ([], ["could not connect"])
        assert pong.wait(10) == 0
    finally:
        if pong.poll() is None:
            pong.kill()
            pong.wait(10)
        pong.stdout.close()

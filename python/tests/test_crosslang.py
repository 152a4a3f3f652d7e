"""Values cross Python -> gateway -> Node.js -> gateway -> Python unchanged (ZB-25, ZB-34):
counts stay counts, 64-bit extremes, nanosecond timestamps, nested tables keyed by tuples."""

import ipaddress
import math
import pathlib
import shutil
import subprocess
import time

import pytest

import broker

HERE = pathlib.Path(__file__).resolve().parent
T = 30.0


def every_type():
    return [
        None,
        True,
        False,
        broker.Count(0),
        broker.Count(2**64 - 1),
        -(2**63),
        2**63 - 1,
        0,
        -7.5,
        1.7976931348623157e308,
        5e-324,
        math.inf,
        "text ü 🎉",
        "",
        b"\xff\x00a",
        ipaddress.ip_address("192.168.1.1"),
        ipaddress.ip_address("2001:db8::1"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
        broker.Port(53, broker.Port.UDP),
        broker.Port(443, broker.Port.TCP),
        broker.Port(8, broker.Port.ICMP),
        broker.Port(0, broker.Port.Unknown),
        broker.Timestamp.from_ns(1_404_901_004_123_456_789),
        broker.Timestamp.from_ns(-1),
        broker.Timespan(-999),
        broker.Timespan(86_400_000_000_001),
        broker.Enum("Log::WRITER_ASCII"),
        {broker.Count(1), "a", (1, 2)},
        set(),
        {},
        (),
        ((), (None,)),
        {(1, "x"): {(broker.Count(2), 3.5): ({"deep"}, {})}},
        {broker.Count(2**64 - 1): [broker.Count(1), -(2**63)]},
    ]


def normalised(v):
    """Python lists come back as tuples (Broker vectors)."""
    if isinstance(v, list):
        return tuple(normalised(x) for x in v)
    if isinstance(v, dict):
        return {normalised(k): normalised(x) for k, x in v.items()}
    return v


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_zb34_every_type_crosses_python_node_python_unchanged(gateway):
    values = every_type()
    with broker.Endpoint() as ep, ep.make_subscriber("/xlang/back") as sub:
        assert ep.peer(gateway.host, gateway.port, 0)
        node = subprocess.Popen(
            ["node", str(HERE / "echo.mjs"), gateway.url, str(len(values) + 1)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert node.stdout.readline().strip() == "ready"
            # Node's subscription reached the gateway; its advert reaching this endpoint comes
            # a moment later (no event says so): publish once the gateway asks for /xlang/out.
            deadline = time.monotonic() + T
            while not any("/xlang/out".startswith(p) for p in ep.peer_subscriptions()):
                assert time.monotonic() < deadline, "the gateway never asked for /xlang/out"
                time.sleep(0.01)
            for i, v in enumerate(values):
                ep.publish(f"/xlang/out/{i}", v)
            ep.publish("/xlang/out/all", values)
            got = sub.get(len(values) + 1, T)
            assert len(got) == len(values) + 1
            for i, v in enumerate(values):
                topic, back = got[i]
                assert topic == f"/xlang/back/{i}"
                assert back == normalised(v), f"value {i}: sent {v!r}, got {back!r}"
                assert type(back) is type(normalised(v)) or v is None, f"value {i}: {type(back)}"
            assert got[-1] == ("/xlang/back/all", normalised(values))
            # Nanoseconds and counts survive, not only equality of a coarser value.
            assert got[23][1].ns == 1_404_901_004_123_456_789
            assert got[4][1].value == 2**64 - 1
            assert node.wait(T) == 0
        finally:
            if node.poll() is None:
                node.kill()
                node.wait(10)
            node.stdout.close()

"""Broker's Python API over this project's endpoint.

A first slice: endpoints that listen, peer, publish and subscribe, and the data model of
Broker's Python bindings (``Count``, ``Port``, ``Enum``; ``ipaddress`` addresses and networks;
``datetime`` timestamps and timespans; ``set``, ``dict`` and ``tuple``).
"""

import datetime as _dt

from . import _broker

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_US = _dt.timedelta(microseconds=1)


class Count:
    """An unsigned 64-bit count (Python has no unsigned int)."""

    __slots__ = ("value",)

    def __init__(self, value):
        value = int(value)
        if not 0 <= value < 2**64:
            raise ValueError(f"count out of range: {value}")
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Count) and other.value == self.value

    def __hash__(self):
        return hash(("count", self.value))

    def __lt__(self, other):
        return self.value < other.value

    def __int__(self):
        return self.value

    def __repr__(self):
        return f"Count({self.value})"


class Port:
    """A transport-layer port: number and protocol."""

    Unknown, TCP, UDP, ICMP = 0, 1, 2, 3
    __slots__ = ("number", "protocol")

    def __init__(self, number, protocol=Unknown):
        self.number = int(number)
        self.protocol = int(protocol)

    def __eq__(self, other):
        return isinstance(other, Port) and (other.number, other.protocol) == (self.number, self.protocol)

    def __hash__(self):
        return hash(("port", self.number, self.protocol))

    def __repr__(self):
        return f"Port({self.number}, {self.protocol})"

    def __str__(self):
        return f"{self.number}/{['?', 'tcp', 'udp', 'icmp'][self.protocol]}"


class Enum:
    """An enum value, e.g. ``Enum("Log::WRITER_ASCII")``."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = str(name)

    def __eq__(self, other):
        return isinstance(other, Enum) and other.name == self.name

    def __hash__(self):
        return hash(("enum", self.name))

    def __repr__(self):
        return f"Enum({self.name!r})"


def _timestamp_ns(t):
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return ((t - _EPOCH) // _US) * 1000


def _timestamp_from_ns(ns):
    return _EPOCH + _dt.timedelta(microseconds=ns // 1000)


def _timespan_ns(d):
    return (d // _US) * 1000


def _timespan_from_ns(ns):
    return _dt.timedelta(microseconds=ns // 1000)


class Subscriber:
    """Messages on topic prefixes: ``get(timeout=None)``, ``poll()``, ``available()``."""

    def __init__(self, native):
        self._native = native

    def get(self, timeout=None):
        return self._native.get(timeout)

    def poll(self):
        return self._native.poll()

    def available(self):
        return self._native.available()

    def add_topic(self, topic):
        self._native.add_topic(topic)

    def remove_topic(self, topic):
        self._native.remove_topic(topic)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Endpoint:
    """An endpoint: ``listen``, ``peer``, ``publish``, ``make_subscriber``; a context manager
    that shuts it down on exit."""

    def __init__(self):
        self._native = _broker.Endpoint()

    def listen(self, host="", port=0):
        return self._native.listen(host, port)

    def peer(self, host, port, retry=10.0):
        return self._native.peer(host, port, float(retry))

    def peer_nosync(self, host, port, retry=10.0):
        self._native.peer_nosync(host, port, float(retry))

    def publish(self, topic, data):
        self._native.publish(str(topic), data)

    def make_subscriber(self, topics):
        if isinstance(topics, str):
            topics = [topics]
        return Subscriber(self._native.make_subscriber(list(topics)))

    def node_id(self):
        return self._native.node_id()

    def shutdown(self):
        self._native.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
        return False

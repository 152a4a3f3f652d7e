"""Broker's Python API over this project's endpoint.

A first slice: endpoints that listen, peer, publish and subscribe, and the data model of
Broker's Python bindings (``Count``, ``Port``, ``Enum``; ``ipaddress`` addresses and networks;
``datetime`` timestamps and timespans; ``set``, ``dict`` and ``tuple``).
"""

import collections as _collections
import datetime as _dt
import enum as _enum
import os as _os
import threading as _threading
import time as _time
import types as _types

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
    if isinstance(t, Timestamp):
        return t.ns
    if t.tzinfo is None:
        # A naive datetime is local time, as Python's ``datetime.timestamp()`` reads it.
        t = t.astimezone()
    return ((t - _EPOCH) // _US) * 1000


def _timestamp_from_ns(ns):
    return Timestamp.from_ns(ns)


def _timespan_ns(d):
    if isinstance(d, Timespan):
        return d.ns
    return (d // _US) * 1000


def _timespan_from_ns(ns):
    return Timespan(ns)


class SC(_enum.IntEnum):
    """Status codes (Broker's ``broker.SC``)."""

    Unspecified = 0
    PeerAdded = 1
    PeerRemoved = 2
    PeerLost = 3
    EndpointDiscovered = 4
    EndpointUnreachable = 5


def _camel(name):
    return "".join(p.capitalize() for p in name.split("_"))


# Broker's error codes (``broker.EC``), numbered as in Broker 2.x; the names are Broker's
# (``PeerUnavailable``, ``NoSuchKey``, ...). Built from the core's table.
EC = _enum.IntEnum(
    "EC",
    [(_camel(n) if n != "none" else "None_", c) for c, n in _broker.error_codes()],
)
EC.RequestTimeOut = EC.RequestTimeout  # Broker's Python spelling


class _Optional:
    """Broker's optional values: ``is_set()`` and ``get()``."""

    __slots__ = ("_v",)

    def __init__(self, v):
        self._v = v

    def is_set(self):
        return self._v is not None

    def get(self):
        return self._v

    def __repr__(self):
        return "nil" if self._v is None else repr(self._v)


class NetworkInfo:
    __slots__ = ("address", "port")

    def __init__(self, address, port):
        self.address, self.port = address, port

    def __repr__(self):
        return f"{self.address}:{self.port}"


class EndpointInfo:
    __slots__ = ("_node", "network")

    def __init__(self, node, network):
        self._node, self.network = node, network

    def node_id(self):
        return self._node

    def __repr__(self):
        return str(self._node)


class Status:
    """A status event: ``code()`` (``SC``), ``context()`` (``EndpointInfo``), ``message()``."""

    def __init__(self, code, message, node=None, address=None, port=None):
        self._code = SC(code)
        self._message = message
        net = NetworkInfo(address, port) if address is not None else None
        self._context = EndpointInfo(node, _Optional(net))

    def code(self):
        return self._code

    def context(self):
        return self._context

    def message(self):
        return self._message

    def __repr__(self):
        return f"Status({self._code.name}, {self._message!r})"


class Error:
    """An error event: ``code()`` (``EC``), ``context()`` (text)."""

    def __init__(self, code, context):
        self._code = EC(code)
        self._context = context

    def code(self):
        return self._code

    def context(self):
        return self._context

    def __repr__(self):
        return f"Error({self._code.name}, {self._context!r})"


def _status_or_error(t):
    if t is None:
        return None
    if t[0] == "status":
        return Status(t[1], t[2], t[3], t[4], t[5])
    return Error(t[1], t[2])


def _num_and_timeout(args, kwargs):
    """Broker's ``get()``, ``get(timeout)``, ``get(num)``, ``get(num, timeout)``."""
    num = kwargs.pop("num", None)
    timeout = kwargs.pop("timeout", None)
    if kwargs:
        raise TypeError(f"unexpected arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, int) and not isinstance(a, bool) and num is None:
            num = a
        else:
            timeout = a
    return num, timeout


def _seconds(t):
    if t is None:
        return None
    if isinstance(t, _dt.timedelta):
        return t.total_seconds()
    return float(t)


class _FdQueue:
    """What ``fd()`` switches a subscriber to: a thread moves its messages into a queue and
    keeps a pipe readable while the queue holds any, for ``select``/``poll`` loops."""

    def __init__(self, native, wrap):
        self._native, self._wrap = native, wrap
        self._r, self._w = _os.pipe()
        _os.set_blocking(self._r, False)
        self._items = _collections.deque()
        self._cv = _threading.Condition()
        self._signalled = False
        self._stop = False
        self._closed = False
        self._thread = _threading.Thread(target=self._pump, name="broker-fd", daemon=True)
        self._thread.start()

    def fd(self):
        return self._r

    def _pump(self):
        while not self._stop:
            try:
                first = self._native.get(0.1)
                more = self._native.poll() if first is not None else []
            except RuntimeError:  # the endpoint was shut down
                break
            if first is None:
                continue
            with self._cv:
                self._items.append(self._wrap(first))
                self._items.extend(self._wrap(x) for x in more)
                if not self._signalled:
                    _os.write(self._w, b"x")
                    self._signalled = True
                self._cv.notify_all()
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def _drained(self):
        if not self._items and self._signalled:
            try:
                _os.read(self._r, 64)
            except BlockingIOError:
                pass
            self._signalled = False

    def take(self, num, timeout):
        """Up to ``num`` items (``None``: one, unwrapped), waiting at most ``timeout``."""
        want = 1 if num is None else num
        deadline = None if timeout is None else _time.monotonic() + timeout
        out = []
        with self._cv:
            while len(out) < want:
                while self._items and len(out) < want:
                    out.append(self._items.popleft())
                if len(out) >= want or self._closed:
                    break
                left = None if deadline is None else deadline - _time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cv.wait(left)
            self._drained()
        if num is None:
            return out[0] if out else None
        return out

    def poll(self):
        with self._cv:
            out = list(self._items)
            self._items.clear()
            self._drained()
        return out

    def available(self):
        with self._cv:
            return len(self._items)

    def close(self):
        self._stop = True
        self._thread.join()
        _os.close(self._r)
        _os.close(self._w)


class _Receiver:
    """What subscribers share: ``fd()``, ``poll()``, ``available()``, ``reset()``, and the
    context manager that resets. ``_wrap`` turns a native item into what Python gets."""

    _wrap = staticmethod(lambda x: x)

    def __init__(self, native):
        self._native = native
        self._fdq = None

    def fd(self):
        """A file descriptor that is readable while items are available (for ``select``);
        from the first call on, items pass through a queue in Python."""
        if self._fdq is None:
            self._fdq = _FdQueue(self._native, self._wrap)
        return self._fdq.fd()

    def reset(self):
        """Releases the subscriber (a message subscriber's topics are unsubscribed)."""
        if self._fdq is not None:
            self._fdq.close()
            self._fdq = None
        self._native = None

    def get(self, *args, **kwargs):
        num, timeout = _num_and_timeout(args, kwargs)
        if self._fdq is not None:
            return self._fdq.take(num, _seconds(timeout))
        return self._get(num, _seconds(timeout))

    def poll(self):
        if self._fdq is not None:
            return self._fdq.poll()
        return [self._wrap(x) for x in self._native.poll()]

    def available(self):
        if self._fdq is not None:
            return self._fdq.available()
        return self._native.available()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.reset()
        return False


class StatusSubscriber(_Receiver):
    """Status and error events: ``get()``, ``get(timeout)``, ``get(n[, timeout])``,
    ``poll()``, ``available()``, ``fd()``, ``reset()``."""

    _wrap = staticmethod(_status_or_error)

    def _get(self, num, timeout):
        if num is None:
            return _status_or_error(self._native.get(timeout))
        out = []
        deadline = None if timeout is None else _time.monotonic() + timeout
        while len(out) < num:
            left = None if deadline is None else max(0.0, deadline - _time.monotonic())
            x = self._native.get(left)
            if x is None:
                break
            out.append(_status_or_error(x))
        return out


class Subscriber(_Receiver):
    """Messages on topic prefixes. ``get()`` waits for one; ``get(timeout)`` (seconds or a
    ``timedelta``) gives ``None`` after it; ``get(n)`` a list of ``n``; ``get(n, timeout)`` at
    most ``n``. Also ``poll()``, ``available()``, ``fd()``, ``reset()``, ``add_topic``,
    ``remove_topic``."""

    def _get(self, num, timeout):
        if num is None:
            return self._native.get(timeout)
        return self._native.get_many(num, timeout)

    def poll(self):
        if self._fdq is not None:
            return self._fdq.poll()
        return self._native.poll()

    def add_topic(self, topic):
        self._native.add_topic(topic)

    def remove_topic(self, topic):
        self._native.remove_topic(topic)


def _freeze(v):
    if isinstance(v, dict):
        return _types.MappingProxyType({_freeze(k): _freeze(x) for k, x in v.items()})
    if isinstance(v, (set, frozenset)):
        return frozenset(_freeze(x) for x in v)
    if isinstance(v, (tuple, list)):
        return tuple(_freeze(x) for x in v)
    return v


class SafeSubscriber(Subscriber):
    """A subscriber whose values are immutable (tables as read-only mappings, sets as
    frozensets, vectors as tuples), so that any of them may be used as a key."""

    def get(self, *args, **kwargs):
        r = super().get(*args, **kwargs)
        if r is None:
            return None
        if isinstance(r, list):
            return [(t, _freeze(d)) for t, d in r]
        return (r[0], _freeze(r[1]))

    def poll(self):
        return [(t, _freeze(d)) for t, d in super().poll()]


class Topic:
    """A topic: ``string()``, ``str()``, and ``/`` to append a level."""

    __slots__ = ("_s",)

    def __init__(self, s=""):
        self._s = s.string() if isinstance(s, Topic) else str(s)

    def string(self):
        return self._s

    def __str__(self):
        return self._s

    def __repr__(self):
        return f"Topic({self._s!r})"

    def __eq__(self, other):
        return isinstance(other, Topic) and other._s == self._s

    def __hash__(self):
        return hash(self._s)

    def __truediv__(self, other):
        right = str(other).strip("/")
        if not right:
            return Topic(self._s)
        if not self._s:
            return Topic(right)
        return Topic(self._s + "/" + right)


class Publisher:
    """Publishes to one topic: ``publish(data)``, ``publish_batch(*data)``."""

    def __init__(self, endpoint, topic):
        self._endpoint = endpoint
        self._topic = str(topic)

    def publish(self, data):
        self._endpoint.publish(self._topic, data)

    def publish_batch(self, *batch):
        for data in batch:
            self.publish(data)

    def demand(self):
        return 0

    def buffered(self):
        return 0

    def capacity(self):
        return 0

    def free_capacity(self):
        return 0

    def send_rate(self):
        return 0

    def reset(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def now():
    """The current time, as Broker's timestamps come: a UTC ``datetime``."""
    return _dt.datetime.now(_dt.timezone.utc)


class Timespan(_dt.timedelta):
    """A timespan (a ``timedelta`` that keeps nanoseconds): from nanoseconds (an int),
    seconds (a float) or a ``timedelta``; ``ns`` is its length in nanoseconds."""

    __slots__ = ("_ns",)

    def __new__(cls, x=0):
        if isinstance(x, Timespan):
            ns = x.ns
        elif isinstance(x, _dt.timedelta):
            ns = (x // _US) * 1000
        elif isinstance(x, float):
            ns = round(x * 1e9)
        else:
            ns = int(x)
        self = super().__new__(cls, microseconds=ns // 1000)
        self._ns = ns
        return self

    @property
    def ns(self):
        return self._ns

    def __eq__(self, other):
        if isinstance(other, Timespan):
            return self._ns == other._ns
        return super().__eq__(other)

    def __hash__(self):
        return super().__hash__()

    def __repr__(self):
        return f"Timespan({self._ns})"


class Timestamp(_dt.datetime):
    """A point in time as Broker keeps it: a UTC ``datetime`` that also keeps the
    nanoseconds below its microseconds (``nanosecond``, 0..999). ``Timestamp.from_ns(ns)``
    and ``ns`` convert from and to nanoseconds since the epoch; any ``datetime`` is accepted
    where a timestamp is expected."""

    __slots__ = ("_sub",)

    @classmethod
    def from_ns(cls, ns):
        t = _EPOCH + _dt.timedelta(microseconds=ns // 1000)
        self = cls(t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond, tzinfo=_dt.timezone.utc)
        self._sub = ns % 1000
        return self

    @property
    def nanosecond(self):
        return getattr(self, "_sub", 0)

    @property
    def ns(self):
        return ((self - _EPOCH) // _US) * 1000 + self.nanosecond

    def __eq__(self, other):
        if isinstance(other, Timestamp):
            return self.ns == other.ns
        return super().__eq__(other)

    def __hash__(self):
        return super().__hash__()

    def __repr__(self):
        return f"Timestamp.from_ns({self.ns})"


utc = _dt.timezone.utc


class _DataSet(list):
    """A set's elements as ``Data``, printed as Broker prints a set."""

    def __str__(self):
        return "Set{" + ", ".join(str(x) for x in self) + "}"


class Data(_broker.Data):
    """A Broker value (Broker's ``broker.Data``): ``Data(x)`` from a Python value,
    ``str()`` in Broker's notation, ``get_type()``, ``Data.to_py(d)``, ``Data.from_py(x)``;
    vectors and tables index to ``Data``."""

    class Type(_enum.IntEnum):
        Nil = 0
        Boolean = 1
        Count = 2
        Integer = 3
        Real = 4
        String = 5
        Address = 6
        Subnet = 7
        Port = 8
        Timestamp = 9
        Timespan = 10
        EnumValue = 11
        Set = 12
        Table = 13
        Vector = 14

    def get_type(self):
        return Data.Type(self.type_code())


    @staticmethod
    def from_py(x):
        return x if isinstance(x, Data) else Data(x)

    @staticmethod
    def to_py(d):
        return d.to_python() if isinstance(d, _broker.Data) else d


class Backend(_enum.IntEnum):
    """Where a master keeps its data: ``Memory`` or ``SQLite`` (a file; option ``path``)."""

    Memory = 0
    SQLite = 1


BrokerError = _broker.BrokerError


class Store:
    """A store handle from ``attach_master`` or ``attach_clone``: reads (``get``,
    ``exists``, ``keys``, ``get_index_from_value``; a clone reads its local replica), writes
    (``put``, ``put_unique``, ``erase``, ``clear``, ``increment``, ``decrement``,
    ``append``, ``insert_into``, ``remove_from``, ``push``, ``pop``; each waits for the
    master's answer and raises ``BrokerError`` if it refused), ``await_idle(timeout)``,
    ``name()``, ``reset()``. A context manager that resets it on exit."""

    __slots__ = ("_native", "_parent")

    def __init__(self, native, parent=None):
        self._native = native
        # Keeps the endpoint alive as long as the store.
        self._parent = parent

    def __getattr__(self, name):
        return getattr(self._native, name)

    def __repr__(self):
        kind = "clone" if self._native.is_clone() else "master"
        return f"Store({self._native.name()!r}, {kind})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.reset()
        return False


class BrokerOptions:
    """Broker's endpoint options. Accepted for compatibility; ``forward`` (default True)
    and the TLS settings have no effect here (endpoints always forward; TLS is configured on
    ``broker-gateway``)."""

    def __init__(self):
        self.forward = True
        self.disable_ssl = True
        self.ignore_broker_conf = True
        self.use_real_time = True


class Configuration:
    """Broker's endpoint configuration (``Configuration(BrokerOptions())``): accepted by
    ``Endpoint``; its settings have no effect here (see ``BrokerOptions``)."""

    def __init__(self, opts=None):
        self.options = opts if opts is not None else BrokerOptions()
        self.openssl_certificate = ""
        self.openssl_key = ""
        self.openssl_cafile = ""
        self.openssl_capath = ""
        self.openssl_passphrase = ""


class Endpoint:
    """An endpoint: ``listen``, ``peer``, ``publish``, ``make_subscriber``, stores; a
    context manager that shuts it down on exit. ``Endpoint(Configuration(...))`` is accepted
    as in Broker."""

    def __init__(self, config=None):
        self._config = config
        self._native = _broker.Endpoint()

    def listen(self, host="", port=0):
        return self._native.listen(host, port)

    def peer(self, host, port, retry=10.0):
        return self._native.peer(host, port, float(retry))

    def peer_nosync(self, host, port, retry=10.0):
        self._native.peer_nosync(host, port, float(retry))

    def publish(self, topic, data):
        if hasattr(data, "as_data"):
            data = data.as_data()
        self._native.publish(str(topic), data)

    def publish_batch(self, *batch):
        for topic, data in batch:
            self.publish(topic, data)

    def make_status_subscriber(self, receive_statuses=False):
        return StatusSubscriber(self._native.make_status_subscriber(bool(receive_statuses)))

    def unpeer(self, host, port):
        return self._native.unpeer(host, port)

    def peers(self):
        return self._native.peers()

    def peer_subscriptions(self):
        return self._native.peer_subscriptions()

    def await_peer(self, node, timeout=None):
        return self._native.await_peer(str(node), _seconds(timeout))

    def make_subscriber(self, topics, qsize=20, subscriber_class=Subscriber):
        if isinstance(topics, str):
            topics = [topics]
        return subscriber_class(self._native.make_subscriber([str(t) for t in topics]))

    def make_safe_subscriber(self, topics, qsize=20):
        return self.make_subscriber(topics, qsize, SafeSubscriber)

    def make_publisher(self, topic):
        return Publisher(self, topic)

    def node_id(self):
        return self._native.node_id()

    def metrics_text(self):
        """The endpoint's metrics in Prometheus' text format, as ``/metrics`` serves them
        (``broker_dropped_total``: messages a full subscriber queue did not take)."""
        return self._native.metrics_text()

    def attach_master(self, name, type=None, opts=None):
        """Creates or opens the master store ``name`` here (``Backend.Memory`` by default,
        ``Backend.SQLite`` with ``opts={"path": FILE}``)."""
        backend = Backend.Memory if type is None else Backend(type)
        native = self._native.attach_master(name, int(backend), dict(opts) if opts else None)
        return Store(native, self)

    def attach_clone(self, name):
        """A clone of store ``name``, mastered here or on a peer (also one peered later)."""
        return Store(self._native.attach_clone(name), self)

    def forward(self, topics):
        """Accepted for compatibility: endpoints forward whatever a peer subscribed to."""

    def shutdown(self):
        self._native.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
        return False


from . import zeek  # noqa: E402  (needs the classes above)

"""PyDBR (`dbr_module`, `_dbr_interface`) against the real gateway binary (DB-01..29)."""

import os
import pathlib
import pickle
import socket
import subprocess
import sys
import threading
import time

import pytest

import dbr_module
from _dbr_interface import ffi
from dbr_module import DataBroker, dbr



def pytest_generate_tests(metafunc):
    """Every test with a gateway runs on both namespace backends: the gateway's own, and a
    real redis-server (RB-10)."""
    if "gateway" in metafunc.fixturenames:
        metafunc.parametrize("gateway", ["builtin", "redis"], indirect=True)

G = dbr.DBR_GROUP_EMPTY
ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "python" / "examples" / "pydbr_example.py"
DEADLINE = 10.0


@pytest.fixture
def d(gateway):
    """A PyDBR context on the fixture's gateway, closed afterwards."""
    c = DataBroker(server=gateway.url)
    yield c
    c.close()


def create(c, name="ns"):
    h = c.create(name, c.DBR_PERST_VOLATILE_SIMPLE, ffi.new("DBR_GroupList_t"))
    assert h, c.lastError
    return h


def settle(c, tag, deadline=DEADLINE):
    """Polls `test(tag)` until the request is done (PyDBR's way), at most `deadline` s."""
    end = time.monotonic() + deadline
    while True:
        code = c.test(tag)
        if code != c.DBR_ERR_INPROGRESS:
            return code
        assert time.monotonic() < end, f"tag {tag} still in progress after {deadline} s"
        time.sleep(0.005)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- constants and utilities (DB-14, DB-27, DB-28) -------------------------------------


def test_db27_codes_names_and_messages_match_the_data_broker():
    assert [dbr.DBR_SUCCESS, dbr.DBR_ERR_TIMEOUT, dbr.DBR_ERR_UNAVAIL, dbr.DBR_ERR_NOCONNECT] == [0, 5, 7, 15]
    assert dbr.DBR_ERR_PLUGIN == 22 and dbr.DBR_ERR_MAXERROR == 23
    assert dbr.getErrorCode(dbr.DBR_ERR_TIMEOUT) == "DBR_ERR_TIMEOUT"
    assert dbr.getErrorCode(0) == "DBR_SUCCESS"
    assert dbr.getErrorMessage(0) == "Operation successful"
    assert dbr.getErrorMessage(dbr.DBR_ERR_UNAVAIL) == "Entry not available"
    assert dbr.getErrorMessage(dbr.DBR_ERR_MAXERROR) == "Unknown Error"
    assert dbr.getErrorMessage(-1) == "Unknown Error"
    # The Python table agrees with the Rust one the gateway's codes come from.
    from broker._broker import dbr_error_codes

    for code, name, message in dbr_error_codes():
        if code < dbr.DBR_ERR_MAXERROR:
            assert (dbr.getErrorCode(code), dbr.getErrorMessage(code)) == (name, message)
            assert getattr(dbr, name) == code


def test_db14_flags_levels_and_constants():
    assert (dbr.DBR_FLAGS_NONE, dbr.DBR_FLAGS_NOWAIT, dbr.DBR_FLAGS_PARTIAL, dbr.DBR_FLAGS_MAX) == (0, 1, 2, 3)
    assert [dbr.DBR_PERST_VOLATILE_SIMPLE, dbr.DBR_PERST_PERMANENT_FT, dbr.DBR_PERST_MAX] == [0, 5, 6]
    assert dbr.DBR_GROUP_EMPTY == "0" and dbr.DBR_STATE_MASK_ALL == 2**64 - 1
    assert dbr.DBR_ITERATOR_NEW == ffi.NULL and dbr.DBR_ITERATOR_DONE == ffi.NULL
    assert dbr.DB_TAG_ERROR == 2**64 - 1 and dbr.DBR_MAX_KEY_LEN == 1023


def test_db28_ffi_stand_in_allocates_the_types_pydbr_programs_use():
    assert ffi.new("DBR_GroupList_t")[0] == ffi.NULL
    assert ffi.new("DBR_Handle_t*")[0] == ffi.NULL
    state = ffi.new("DBR_State_t*")
    assert state[0] == 0
    state[0] = 7
    assert state[0] == 7
    with pytest.raises(OverflowError):
        state[0] = 2**32
    size = ffi.new("int64_t*", 256)
    assert size[0] == 256
    level = ffi.new("DBR_Tuple_persist_level_t*", dbr.DBR_PERST_TEMPORARY_FT)
    assert level[0] == 3
    buf = ffi.new("char[]", 8)
    assert len(buf) == 8 and buf[0] == b"\x00"
    buf[0:3] = b"abc"
    assert ffi.string(buf) == b"abc"
    raw = ffi.buffer(buf)
    assert raw[:] == b"abc\x00\x00\x00\x00\x00" and len(raw) == 8
    raw[3:5] = b"de"
    assert ffi.string(buf) == b"abcde"
    assert ffi.string(ffi.new("char[]", b"hi")) == b"hi" and len(ffi.new("char[]", b"hi")) == 3
    assert dbr.createBuf("char[]", 16)[:] == bytes(16)
    assert ffi.cast("int64_t", 2**64 - 1) == -1 and ffi.cast("DBR_Handle_t", 0) == ffi.NULL
    assert ffi.sizeof("int64_t") == 8 and ffi.sizeof("DBR_State_t") == 4
    assert not ffi.NULL and ffi.NULL == None  # noqa: E711 (PyDBR programs compare so)
    with pytest.raises(TypeError):
        ffi.new("DBR_Handle_t")  # void *: as cffi, no size to allocate
    with pytest.raises(TypeError):
        ffi.new("int")  # not a pointer or array


def test_db28_server_url_accepts_sock_ws_and_wss():
    assert dbr_module.server_url("sock://h:1") == "ws://h:1"
    assert dbr_module.server_url("ws://h:2") == "ws://h:2"
    assert dbr_module.server_url("wss://h:3") == "wss://h:3"
    assert dbr_module.server_url("h:4") == "ws://h:4"
    with pytest.raises(ValueError):
        dbr_module.server_url("http://h:5")


# ---- namespaces (DB-01..08) ------------------------------------------------------------


def test_db01_create_and_second_create_is_null(d):
    h = create(d)
    assert d.create("ns", d.DBR_PERST_VOLATILE_SIMPLE, ffi.new("DBR_GroupList_t")) == ffi.NULL
    assert d.create("bad-level", 99, ffi.new("DBR_GroupList_t")) is None
    assert d.delete("ns") == d.DBR_SUCCESS
    assert h  # a handle object, true like a non-NULL pointer


def test_db03_db04_attach_counts_and_detach_like_the_pydbr_example(d, gateway):
    h = create(d)
    state = ffi.new("DBR_State_t*")
    assert d.query(h, state, d.DBR_STATE_MASK_ALL) == d.DBR_SUCCESS
    for _ in range(10):
        a = d.attach("ns")
        assert a is h
    for _ in range(10):
        assert d.detach(h) == d.DBR_SUCCESS
    assert d.put(h, "still attached once", "k", G) == d.DBR_SUCCESS
    assert d.delete("ns") == d.DBR_SUCCESS
    assert d.attach("ns") is None
    assert d.attach("never-created") is None


def test_db04_detach_keeps_data_for_the_next_attach(d, gateway):
    h = create(d, "handoff")
    assert d.put(h, "payload", "k", G) == d.DBR_SUCCESS
    assert d.detach(h) == d.DBR_SUCCESS
    assert d.put(h, "x", "k", G) == d.DBR_ERR_NSINVAL  # the handle is gone
    other = DataBroker(server=gateway.url)
    try:
        h2 = other.attach("handoff")
        assert h2
        assert other.get(h2, "k", "", G, other.DBR_FLAGS_NOWAIT) == ("payload", other.DBR_SUCCESS)
        assert other.delete("handoff") == other.DBR_SUCCESS
    finally:
        other.close()


def test_db05_delete_nsbusy_while_another_client_holds_it(d, gateway):
    create(d, "shared")
    other = DataBroker(server=gateway.url)
    try:
        h2 = other.attach("shared")
        assert h2
        assert d.delete("shared") == d.DBR_ERR_NSBUSY
        assert d.delete("shared") == d.DBR_ERR_NSINVAL  # not held by this process any more
        assert other.put(h2, "v", "k", G) == other.DBR_SUCCESS  # holders keep access
        assert other.detach(h2) == other.DBR_SUCCESS  # the last detach deletes
        assert other.attach("shared") is None
    finally:
        other.close()
    assert d.delete("unknown") == d.DBR_ERR_NSINVAL


def test_db06_query_codes(d):
    h = create(d)
    state = ffi.new("DBR_State_t*")
    assert d.query(h, state, d.DBR_STATE_MASK_ALL) == d.DBR_SUCCESS
    assert d.query(ffi.NULL, state, d.DBR_STATE_MASK_ALL) == d.DBR_ERR_INVALID
    assert d.query(h, ffi.NULL, d.DBR_STATE_MASK_ALL) == d.DBR_ERR_UBUFFER
    assert d.query(ffi.new("DBR_Handle_t*"), state, d.DBR_STATE_MASK_ALL) == d.DBR_ERR_INVALID
    assert d.delete("ns") == d.DBR_SUCCESS
    assert d.query(h, state, d.DBR_STATE_MASK_ALL) == d.DBR_ERR_NSINVAL


def test_db08_units_and_eval_not_implemented(d):
    h = create(d)
    assert d.addUnits(h, None) == d.DBR_ERR_NOTIMPL
    assert d.removeUnits(h, None) == d.DBR_ERR_NOTIMPL
    assert d.eval(h, "v", "k", 1, G, None) == d.DBR_ERR_NOTIMPL


# ---- tuples (DB-09..18) ----------------------------------------------------------------


def test_db09_fifo_and_db12_get_removes(d):
    h = create(d)
    for v in ("Hello World!", "Goodbye!"):
        assert d.put(h, v, "testTup", G) == d.DBR_SUCCESS
    assert d.read(h, "testTup", "", G, d.DBR_FLAGS_NOWAIT) == ("Hello World!", d.DBR_SUCCESS)
    assert d.get(h, "testTup", "", G, d.DBR_FLAGS_NONE) == ("Hello World!", d.DBR_SUCCESS)
    assert d.read(h, "testTup", "", G, d.DBR_FLAGS_NONE) == ("Goodbye!", d.DBR_SUCCESS)
    assert d.get(h, "testTup", "", G, d.DBR_FLAGS_NONE) == ("Goodbye!", d.DBR_SUCCESS)
    assert d.get(h, "testTup", "", G, d.DBR_FLAGS_NOWAIT) == (None, d.DBR_ERR_UNAVAIL)
    assert d.testKey(h, "testTup") == d.DBR_ERR_UNAVAIL


def test_db09_binary_64bit_and_typed_values_round_trip(d):
    h = create(d)
    blob = bytes(range(256)) * 4 + b"\x00\x00"
    values = [
        blob,
        b"",
        "",
        "nul\x00inside",
        "ünïcödé ✓",
        2**63 - 1,
        -(2**63),
        2**64 - 1,
        1.5,
        [1, "two", b"\xff"],
        {"a": (1, 2)},
        None,
        "N.",  # text that would unpickle to None if it were taken for a pickle
    ]
    for i, v in enumerate(values):
        assert d.put(h, v, f"k{i}", G) == d.DBR_SUCCESS
    for i, v in enumerate(values):
        got, code = d.get(h, f"k{i}", "", G, d.DBR_FLAGS_NOWAIT)
        assert code == d.DBR_SUCCESS
        assert got == v and type(got) is type(v), (i, got)


def test_db29_foreign_bytes_and_untrusted_pickles(d):
    h = create(d)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    evil = pickle.dumps(Evil())
    # Stored as raw bytes by a non-Python producer: PyDBR puts bytes pickled, so go native.
    ctx, native, _ = d._resolve(h)
    assert ctx.put(native, evil, "evil") == 0
    assert ctx.put(native, b"\xff\xferaw", "raw") == 0
    got, code = d.get(h, "evil", "", G, d.DBR_FLAGS_NOWAIT)
    assert code == d.DBR_SUCCESS and got == evil  # handed over as bytes, not executed
    assert d.get(h, "raw", "", G, d.DBR_FLAGS_NOWAIT) == (b"\xff\xferaw", d.DBR_SUCCESS)


def test_db11_read_index_in_flags_and_past_end(d):
    h = create(d)
    for v in ("a", "b", "c"):
        d.put(h, v, "k", G)
    shift = d.DBR_READ_FLAGS_INDEX_SHIFT
    assert d.read(h, "k", "", G, d.DBR_FLAGS_NOWAIT | (2 << shift)) == ("c", 0)
    assert d.read(h, "k", "", G, d.DBR_FLAGS_NOWAIT | (3 << shift)) == (None, d.DBR_ERR_UNAVAIL)


def test_db13_buffer_size_in_and_out(d):
    h = create(d)
    d.put(h, "x" * 100, "k", G)
    size = [10]
    assert d.read(h, "k", "", G, d.DBR_FLAGS_NONE, size) == (None, d.DBR_ERR_UBUFFER)
    assert size == [10]  # unchanged without PARTIAL
    assert d.read(h, "k", "", G, d.DBR_FLAGS_PARTIAL, size) == (None, d.DBR_ERR_UBUFFER)
    assert size == [100]  # the full size with PARTIAL (PyDBR could not report it)
    size = [10]
    assert d.get(h, "k", "", G, d.DBR_FLAGS_NONE, size) == (None, d.DBR_ERR_UBUFFER)
    assert d.testKey(h, "k") == d.DBR_SUCCESS  # a get that does not fit consumes nothing
    size = [128]
    assert d.get(h, "k", "", G, d.DBR_FLAGS_NONE, size) == ("x" * 100, 0)
    assert size == [100]


def test_db15_blocking_read_times_out(gateway):
    c = DataBroker(server=gateway.url, timeout=0.5)
    try:
        h = create(c)
        t0 = time.monotonic()
        assert c.read(h, "missing", "", G, c.DBR_FLAGS_NONE) == (None, c.DBR_ERR_TIMEOUT)
        assert c.get(h, "missing", "", G, c.DBR_FLAGS_NONE) == (None, c.DBR_ERR_TIMEOUT)
        elapsed = time.monotonic() - t0
        assert 0.9 <= elapsed < 5.0, elapsed
    finally:
        c.close()


def test_db15_timeout_from_dbr_timeout_env(gateway, monkeypatch):
    monkeypatch.setenv("DBR_SERVER", gateway.url)
    monkeypatch.setenv("DBR_TIMEOUT", "0.3")
    c = DataBroker()
    try:
        h = create(c)
        t0 = time.monotonic()
        assert c.get(h, "missing", "", G, c.DBR_FLAGS_NONE) == (None, c.DBR_ERR_TIMEOUT)
        assert time.monotonic() - t0 < 3.0
    finally:
        c.close()


def test_db15_blocking_get_woken_by_put_from_a_second_connection(gateway):
    consumer = DataBroker(server=gateway.url, timeout=30)
    producer = DataBroker(server=gateway.url)
    try:
        h = create(consumer, "q")
        ph = producer.attach("q")
        assert ph
        result = []
        started = threading.Event()

        def blocked_get():
            started.set()
            t0 = time.monotonic()
            result.append((consumer.get(h, "job", "", G, consumer.DBR_FLAGS_NONE), time.monotonic() - t0))

        t = threading.Thread(target=blocked_get)
        t.start()
        assert started.wait(DEADLINE)
        # An async get of the same key queues behind the blocked one and shows the wait.
        tag, buf = consumer.getA(h, "job", "", G)
        assert consumer.test(tag) == consumer.DBR_ERR_INPROGRESS
        assert producer.put(ph, "first", "job", G) == producer.DBR_SUCCESS
        assert producer.put(ph, "second", "job", G) == producer.DBR_SUCCESS
        t.join(DEADLINE)
        assert not t.is_alive()
        (value, elapsed), = result
        assert settle(consumer, tag) == consumer.DBR_SUCCESS
        got = {value[0], consumer.decodeTuple(buf)}
        assert got == {"first", "second"}  # each value to exactly one getter
        assert value[1] == consumer.DBR_SUCCESS and elapsed < 29
    finally:
        producer.close()
        consumer.close()


def test_db15_blocking_get_woken_by_put_from_another_process(gateway):
    c = DataBroker(server=gateway.url, timeout=30)
    try:
        h = create(c, "xproc")
        tag, buf = c.getA(h, "k", "", G)
        assert c.test(tag) == c.DBR_ERR_INPROGRESS
        code = (
            "from dbr_module import dbr\n"
            "h = dbr.attach('xproc')\n"
            "assert h, dbr.lastError\n"
            "raise SystemExit(dbr.put(h, b'\\x00from another process', 'k', dbr.DBR_GROUP_EMPTY))\n"
        )
        env = dict(os.environ, DBR_SERVER=f"sock://{gateway.host}:{gateway.port}")
        proc = subprocess.run([sys.executable, "-c", code], env=env, timeout=30, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert settle(c, tag) == c.DBR_SUCCESS
        assert c.decodeTuple(buf) == b"\x00from another process"
    finally:
        c.close()


def test_db16_missing_namespace_and_bad_handles(d, gateway):
    h = create(d)
    other = DataBroker(server=gateway.url)
    try:
        h2 = other.attach("ns")
        assert other.detach(h2) == other.DBR_SUCCESS
    finally:
        other.close()
    assert d.delete("ns") == d.DBR_SUCCESS
    assert d.put(h, "v", "k", G) == d.DBR_ERR_NSINVAL
    assert d.get(h, "k", "", G, d.DBR_FLAGS_NOWAIT) == (None, d.DBR_ERR_NSINVAL)
    assert d.put(None, "v", "k", G) == d.DBR_ERR_INVALID
    assert d.put(ffi.new("DBR_Handle_t*"), "v", "k", G) == d.DBR_ERR_INVALID
    assert d.attach("ns") is None


def test_db17_remove(d):
    h = create(d)
    d.put(h, "a", "k", G)
    d.put(h, "b", "k", G)
    assert d.remove(h, G, "k", "") == d.DBR_SUCCESS
    assert d.testKey(h, "k") == d.DBR_ERR_UNAVAIL
    assert d.remove(h, G, "k", "") == d.DBR_ERR_UNAVAIL


def test_db18_move_between_namespaces(d):
    src, dst = create(d, "src"), create(d, "dst")
    for v in ("1", "2"):
        d.put(src, v, "k", G)
    assert d.move(src, G, "k", "", dst, G) == d.DBR_SUCCESS
    assert d.testKey(src, "k") == d.DBR_ERR_UNAVAIL
    assert d.get(dst, "k", "", G, d.DBR_FLAGS_NOWAIT) == ("1", 0)
    assert d.get(dst, "k", "", G, d.DBR_FLAGS_NOWAIT) == ("2", 0)
    assert d.move(src, G, "k", "", dst, G) == d.DBR_ERR_UNAVAIL


def test_db22_test_key(d):
    h = create(d)
    assert d.testKey(h, "k") == d.DBR_ERR_UNAVAIL
    d.put(h, "v", "k", G)
    assert d.testKey(h, "k") == d.DBR_SUCCESS
    assert d.read(h, "k", "", G, d.DBR_FLAGS_NOWAIT) == ("v", 0)  # testKey consumed nothing


# ---- directory and iterator (DB-20, DB-21) ---------------------------------------------


def test_db20_directory_count_size_and_pattern(d):
    h = create(d)
    assert d.directory(h, "*", G, 1000, 1024) == ([""], 0, d.DBR_SUCCESS)
    for i in range(5):
        d.put(h, str(i), f"key{i}", G)
    d.put(h, "x", "other", G)
    keys, rsize, code = d.directory(h, "*", G, 1000, 1024)
    assert code == 0 and sorted(keys) == ["key0", "key1", "key2", "key3", "key4", "other"]
    assert rsize == len("\n".join(keys))
    keys, _, code = d.directory(h, "key*", G, 1000, 1024)
    assert sorted(keys) == [f"key{i}" for i in range(5)]
    keys, _, _ = d.directory(h, "*", G, 2, 1024)
    assert len(keys) == 2
    full = "\n".join(d.directory(h, "*", G, 1000, 1024)[0])
    keys, rsize, _ = d.directory(h, "*", G, 1000, 9)
    assert rsize == len("\n".join(keys)) <= 9 and full.startswith("\n".join(keys))
    assert d.directory(h, "*", G, -1, 10)[2] == d.DBR_ERR_INVALID


def test_db21_iterator_pages_every_name_once_while_getting(d):
    h = create(d)
    names = {f"simple_key_{i}" for i in range(12)}
    for n in names:
        assert d.put(h, "v-" + n, n, G) == 0
    seen = []
    it = dbr.DBR_ITERATOR_NEW
    key, it = d.iterator(h, it, G, "")
    while it != dbr.DBR_ITERATOR_DONE:
        value, code = d.get(h, key, "", G, d.DBR_FLAGS_NONE)  # as the PyDBR example does
        assert (value, code) == ("v-" + key, 0)
        seen.append(key)
        assert len(seen) <= len(names)
        key, it = d.iterator(h, it, G, "")
    assert key is None
    assert sorted(seen) == sorted(names) and seen == sorted(seen)
    key, it = d.iterator(h, dbr.DBR_ITERATOR_NEW, G, "simple_*")
    assert (key, it) == (None, dbr.DBR_ITERATOR_DONE)


def test_db21_iterator_with_pattern(d):
    h = create(d)
    for n in ("a1", "a2", "b1"):
        d.put(h, "v", n, G)
    got = []
    key, it = d.iterator(h, dbr.DBR_ITERATOR_NEW, G, "a*")
    while it != dbr.DBR_ITERATOR_DONE:
        got.append(key)
        key, it = d.iterator(h, it, G, "a*")
    assert got == ["a1", "a2"]


# ---- asynchronous calls (DB-23..25) ----------------------------------------------------


def test_db23_db24_put_a_read_a_get_a_and_test(d):
    h = create(d)
    tag = d.putA(h, "Hello World!", "testTup", G)
    assert 0 <= tag < 1024
    assert settle(d, tag) == d.DBR_SUCCESS
    assert d.test(tag) == d.DBR_ERR_TAGERROR  # the tag is free after its final code
    rtag, rbuf = d.readA(h, "testTup", "", G)
    assert settle(d, rtag) == d.DBR_SUCCESS
    assert d.decodeTuple(rbuf) == "Hello World!" and rbuf[:] == b"Hello World!"
    gtag, gbuf = d.getA(h, "testTup", "", G, d.DBR_FLAGS_NONE)
    assert settle(d, gtag) == d.DBR_SUCCESS
    assert d.decodeTuple(gbuf) == "Hello World!"
    assert d.testKey(h, "testTup") == d.DBR_ERR_UNAVAIL
    ntag, _ = d.getA(h, "testTup", "", G, d.DBR_FLAGS_NOWAIT)
    assert settle(d, ntag) == d.DBR_ERR_UNAVAIL


def test_db24_tag_errors(d):
    h = create(d)
    assert d.test(5) == d.DBR_ERR_TAGERROR
    assert d.test(d.DB_TAG_ERROR) == d.DBR_ERR_TAGERROR
    assert d.cancel(d.DB_TAG_ERROR) == d.DBR_ERR_TAGERROR
    assert d.putA(None, "v", "k", G) == d.DB_TAG_ERROR
    assert d.getA(None, "k", "", G) == (d.DB_TAG_ERROR, None)
    assert d.test(-1) == d.DBR_ERR_TAGERROR
    assert h


def test_db25_cancelled_get_a_consumes_nothing(d, gateway):
    h = create(d)
    tag, buf = d.getA(h, "k", "", G)
    assert d.test(tag) == d.DBR_ERR_INPROGRESS
    assert d.cancel(tag) == d.DBR_SUCCESS
    assert d.test(tag) == d.DBR_ERR_TAGERROR
    assert d.cancel(tag) == d.DBR_ERR_TAGERROR
    assert d.put(h, "kept", "k", G) == 0
    # The cancelled waiter took nothing: the value is there for a plain read.
    assert d.read(h, "k", "", G, d.DBR_FLAGS_NOWAIT) == ("kept", 0)
    assert buf[:] == b""


def test_db28_read_a_of_binary_value_fills_buffer_and_size(d):
    h = create(d)
    d.put(h, bytes(range(10)), "bin", G)
    size = [64]
    tag, buf = d.readA(h, "bin", "", G, d.DBR_FLAGS_NONE, size)
    assert settle(d, tag) == 0
    assert d.decodeTuple(buf) == bytes(range(10))
    assert size[0] == len(buf) == len(pickle.dumps(bytes(range(10))))


# ---- connection (DBR_SERVER) -----------------------------------------------------------


def test_db28_unreachable_gateway_fails_fast_with_a_code(monkeypatch, gateway):
    # A handle from a reachable gateway first, then DBR_SERVER names a closed port.
    monkeypatch.setenv("DBR_SERVER", gateway.url)
    c = DataBroker()
    h = create(c)
    c.close()
    monkeypatch.setenv("DBR_SERVER", f"sock://127.0.0.1:{closed_port()}")
    t0 = time.monotonic()
    assert c.create("ns2", 0, ffi.new("DBR_GroupList_t")) is None
    assert c.attach("ns") is None
    assert "127.0.0.1" in c.lastError
    assert c.put(h, "v", "k", G) == c.DBR_ERR_NOCONNECT
    assert c.read(h, "k", "", G, c.DBR_FLAGS_NONE) == (None, c.DBR_ERR_NOCONNECT)
    assert c.testKey(h, "k") == c.DBR_ERR_NOCONNECT
    assert c.directory(h, "*", G, 0, 64)[2] == c.DBR_ERR_NOCONNECT
    assert c.getA(h, "k", "", G) == (c.DB_TAG_ERROR, None)
    assert c.detach(h) == c.DBR_ERR_NOCONNECT
    assert c.delete("ns") == c.DBR_ERR_NOCONNECT
    assert c.test(0) == c.DBR_ERR_TAGERROR
    assert time.monotonic() - t0 < 5.0


def test_db28_lost_connection_gives_noconnect_then_reconnects(gateway):
    c = DataBroker(server=gateway.url)
    try:
        h = create(c, "lost")
        assert c.put(h, "v", "k", G) == 0
        gateway.stop()
        t0 = time.monotonic()
        assert c.put(h, "v", "k", G) == c.DBR_ERR_NOCONNECT
        assert c.get(h, "k", "", G, c.DBR_FLAGS_NONE) == (None, c.DBR_ERR_NOCONNECT)
        assert c.putA(h, "v", "k", G) == c.DB_TAG_ERROR
        assert time.monotonic() - t0 < 5.0
        # A new gateway: the next call connects again. The handle's namespace died with
        # the old (in-memory) gateway; on Redis it lives on (RB-10) and the handle works.
        g2 = gateway.start()
        c._server = g2.url
        if gateway.backend == "redis":
            assert c.put(h, "v", "k", G) == 0
            # The killed gateway's attachment counts until its lease ends (RB-14).
            assert c.delete("lost") == c.DBR_ERR_NSBUSY
            return
        assert c.put(h, "v", "k", G) == c.DBR_ERR_NSINVAL
        h2 = create(c, "lost")
        assert c.put(h2, "again", "k", G) == 0
        assert c.get(h2, "k", "", G, c.DBR_FLAGS_NOWAIT) == ("again", 0)
    finally:
        c.close()


def test_db28_reconnect_reattaches_open_handles(d):
    h = create(d, "keep")
    assert d.put(h, "v", "k", G) == 0
    d.close()  # the gateway drops this connection's attachment; the next call attaches again
    assert d.read(h, "k", "", G, d.DBR_FLAGS_NOWAIT) == ("v", 0)
    assert d.delete("keep") == d.DBR_SUCCESS


def test_db28_process_wide_dbr_uses_dbr_server(gateway):
    env = dict(os.environ, DBR_SERVER=f"sock://{gateway.host}:{gateway.port}")
    code = (
        "from _dbr_interface import ffi\n"
        "from dbr_module import dbr\n"
        "h = dbr.create('envns', dbr.DBR_PERST_VOLATILE_SIMPLE, ffi.new('DBR_GroupList_t'))\n"
        "assert h, dbr.lastError\n"
        "assert dbr.put(h, 'v', 'k', dbr.DBR_GROUP_EMPTY) == dbr.DBR_SUCCESS\n"
        "print(dbr.getErrorCode(dbr.delete('envns')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, timeout=30, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "DBR_SUCCESS"


# ---- the example program ---------------------------------------------------------------


def test_db28_pydbr_example_program_runs_against_the_gateway(gateway):
    env = dict(os.environ, DBR_SERVER=f"sock://{gateway.host}:{gateway.port}")
    proc = subprocess.run([sys.executable, str(EXAMPLE)], env=env, timeout=60, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Read returned: Hello World! - status: Operation successful" in out
    assert "Async get tuple return value: Hello World!" in out
    assert "Keys on DBR: ['GoodbyeTuple', 'HelloTuple']" in out
    assert "On key simple_key_9 Get returned: test-value-9" in out
    assert "Exit Status: Operation successful" in out
    assert "FAILED" not in out


def test_db28_pydbr_example_program_fails_without_a_gateway():
    env = dict(os.environ, DBR_SERVER=f"sock://127.0.0.1:{closed_port()}")
    proc = subprocess.run([sys.executable, str(EXAMPLE)], env=env, timeout=60, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "FAILED" in proc.stdout

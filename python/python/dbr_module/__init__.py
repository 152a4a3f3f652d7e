"""`dbr_module`: PyDBR, the Python API of the IBM Data Broker, over this project's gateway.

A PyDBR program runs unchanged::

    from _dbr_interface import ffi
    from dbr_module import dbr

    hdl = dbr.create("jobs", dbr.DBR_PERST_VOLATILE_SIMPLE, ffi.new('DBR_GroupList_t'))
    dbr.put(hdl, "build", "todo", dbr.DBR_GROUP_EMPTY)
    value, rc = dbr.get(hdl, "todo", "", dbr.DBR_GROUP_EMPTY, dbr.DBR_FLAGS_NONE)

`dbr` talks to the gateway named by `DBR_SERVER` (`ws://HOST:PORT`, `wss://HOST:PORT`, or
PyDBR's `sock://HOST:PORT`, which means `ws://HOST:PORT`; default `ws://127.0.0.1:9999`). It
connects at its first call, keeps one connection per process and connects again on the call
after a lost connection. Failures are PyDBR's integer codes (`DBR_ERR_NOCONNECT` when the
gateway cannot be reached); no call raises for a Data Broker failure and every wait has a
deadline (`DBR_TIMEOUT` seconds for blocking read/get, default 5, 0 = forever).

Values: a `str` travels as its UTF-8 bytes and comes back as `str`; anything else (`bytes`,
numbers, containers, numpy arrays) is pickled as PyDBR does and comes back as the object.
Unpickling accepts only plain data types (see `DBR_UNPICKLE`); other bytes come back as text
when they are UTF-8, else as `bytes`.
"""

import io
import os
import pickle
import threading

from _dbr_interface import CBuffer, CData, ffi

__all__ = ["dbr", "DataBroker", "server_url"]

# Error codes (DB-27), as in errorcodes.h.
DBR_SUCCESS = 0
DBR_ERR_GENERIC = 1
DBR_ERR_INVALID = 2
DBR_ERR_HANDLE = 3
DBR_ERR_INPROGRESS = 4
DBR_ERR_TIMEOUT = 5
DBR_ERR_UBUFFER = 6
DBR_ERR_UNAVAIL = 7
DBR_ERR_EXISTS = 8
DBR_ERR_NSBUSY = 9
DBR_ERR_NSINVAL = 10
DBR_ERR_NOMEMORY = 11
DBR_ERR_TAGERROR = 12
DBR_ERR_NOFILE = 13
DBR_ERR_NOAUTH = 14
DBR_ERR_NOCONNECT = 15
DBR_ERR_CANCELLED = 16
DBR_ERR_NOTIMPL = 17
DBR_ERR_INVALIDOP = 18
DBR_ERR_BE_POST = 19
DBR_ERR_BE_GENERAL = 20
DBR_ERR_ITERATOR = 21
DBR_ERR_PLUGIN = 22
DBR_ERR_MAXERROR = 23

# Persistence levels (DBR_Tuple_persist_level_t); PERMANENT_* are stored on disk.
DBR_PERST_VOLATILE_SIMPLE = 0
DBR_PERST_VOLATILE_FT = 1
DBR_PERST_TEMPORARY_SIMPLE = 2
DBR_PERST_TEMPORARY_FT = 3
DBR_PERST_PERMANENT_SIMPLE = 4
DBR_PERST_PERMANENT_FT = 5
DBR_PERST_MAX = 6

# Request flags (DBR_Request_flags_t); a read's index goes in the bits from 4 up.
DBR_FLAGS_NONE = 0
DBR_FLAGS_NOWAIT = 1
DBR_FLAGS_PARTIAL = 2
DBR_FLAGS_MAX = 3
DBR_READ_FLAGS_INDEX_SHIFT = 4

DBR_MAX_KEY_LEN = 1023
DBR_GROUP_LIST_EMPTY = "0"
DBR_GROUP_EMPTY = "0"
DBR_UNIT_LIST_EMPTY = 0
DBR_STATE_MASK_ALL = 0xFFFFFFFFFFFFFFFF
DBR_ITERATOR_NEW = ffi.NULL
DBR_ITERATOR_DONE = ffi.NULL
# A failed putA/readA/getA (DB_TAG_ERROR, a uint64_t -1 as PyDBR shows it).
DB_TAG_ERROR = 0xFFFFFFFFFFFFFFFF
DBR_TAG_ERROR = DB_TAG_ERROR

DEFAULT_SERVER = "ws://127.0.0.1:9999"

_NAMES = {
    v: k
    for k, v in dict(globals()).items()
    if (k == "DBR_SUCCESS" or k.startswith("DBR_ERR_")) and isinstance(v, int)
}
_MESSAGES = {
    DBR_SUCCESS: "Operation successful",
    DBR_ERR_GENERIC: "A general or unknown error has occurred",
    DBR_ERR_INVALID: "Invalid argument",
    DBR_ERR_HANDLE: "An invalid handle was encountered inside",
    DBR_ERR_INPROGRESS: "Operation in progress",
    DBR_ERR_TIMEOUT: "Operation timed out",
    DBR_ERR_UBUFFER: "Provided user buffer problem (too small, not available)",
    DBR_ERR_UNAVAIL: "Entry not available",
    DBR_ERR_EXISTS: "Entry already exists",
    DBR_ERR_NSBUSY: "Namespace still referenced by a client",
    DBR_ERR_NSINVAL: "Namespace is invalid",
    DBR_ERR_NOMEMORY: "Insufficient memory or storage",
    DBR_ERR_TAGERROR: "Invalid tag",
    DBR_ERR_NOFILE: "File not found",
    DBR_ERR_NOAUTH: "Access authorization required or failed",
    DBR_ERR_NOCONNECT: "Connection to a storage backend failed",
    DBR_ERR_CANCELLED: "Operation was cancelled",
    DBR_ERR_NOTIMPL: "Operation not implemented",
    DBR_ERR_INVALIDOP: "Invalid operation",
    DBR_ERR_BE_POST: "Failed to post request to back-end",
    DBR_ERR_BE_GENERAL: "Unspecified back-end error",
    DBR_ERR_ITERATOR: "Invalid iterator or error iterating the namespace",
    DBR_ERR_PLUGIN: "Error while processing request/data in data adapter",
}
UNKNOWN_ERROR = "Unknown Error"


def server_url(value=None):
    """The gateway URL for a `DBR_SERVER` value (`None`: the environment, else the
    default). `sock://H:P` and a bare `H:P` mean `ws://H:P`; `ws://` and `wss://` stay."""
    if value is None:
        value = os.environ.get("DBR_SERVER") or DEFAULT_SERVER
    value = value.strip()
    if value.startswith("sock://"):
        return "ws://" + value[len("sock://") :]
    if value.startswith(("ws://", "wss://")):
        return value
    if "://" in value:
        raise ValueError(f"DBR_SERVER {value!r}: expected sock://, ws:// or wss://HOST:PORT")
    return "ws://" + value


def _timeout_from_env():
    raw = os.environ.get("DBR_TIMEOUT")
    if not raw:
        return 5.0
    try:
        return max(0.0, float(raw))
    except ValueError:
        return 5.0


# ---- values (DB-29) ------------------------------------------------------------------

# What the decoder unpickles (besides plain data, which needs no class): the types PyDBR
# programs store, numpy arrays included. `DBR_UNPICKLE=any` lifts the restriction (PyDBR's
# behaviour; only for gateways whose writers you trust).
_SAFE_CLASSES = {
    ("builtins", n)
    for n in ("set", "frozenset", "bytearray", "complex", "slice", "range", "object")
} | {
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
    ("collections", "deque"),
    ("datetime", "date"),
    ("datetime", "datetime"),
    ("datetime", "time"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("decimal", "Decimal"),
    ("fractions", "Fraction"),
    ("uuid", "UUID"),
    ("copyreg", "_reconstructor"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _SAFE_CLASSES or os.environ.get("DBR_UNPICKLE") == "any":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not unpickled (DBR_UNPICKLE=any allows it)")


def encode(value):
    """The bytes PyDBR stores for `value`: UTF-8 for `str`, else its pickle."""
    if isinstance(value, str):
        return value.encode()
    return pickle.dumps(value)


def decode(raw):
    """A stored value as PyDBR returns it: the unpickled object, else the text, else the
    bytes. Only data that starts like a pickle (protocol 2 and later) is unpickled, so no
    text is ever mistaken for one. Typed values of other clients come back as they are."""
    if not isinstance(raw, (bytes, bytearray)):
        return raw
    raw = bytes(raw)
    if len(raw) >= 2 and raw[0] == 0x80 and 2 <= raw[1] <= pickle.HIGHEST_PROTOCOL:
        try:
            return _SafeUnpickler(io.BytesIO(raw)).load()
        except Exception:
            pass
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


# ---- handles and iterators -------------------------------------------------------------


class Handle(CData):
    """A namespace handle (`DBR_Handle_t`). Attaching again to a name this process holds
    returns the same handle and counts once more; it stays valid until as many detaches."""

    _ctype = "DBR_Handle_t"

    def __init__(self, owner, name, native, gen):
        self._owner = owner
        self.name = name
        self._natives = [native]
        self._gen = gen
        self._deleted = False

    def __repr__(self):
        state = "deleted" if self._deleted else f"{len(self._natives)} attachment(s)"
        return f"<cdata 'DBR_Handle_t' namespace {self.name!r}, {state}>"

    def __bool__(self):
        return True


class Iterator(CData):
    """A position of `iterator` (`DBR_Iterator_t`): the last name handed out."""

    _ctype = "DBR_Iterator_t"

    def __init__(self, handle, template, after):
        self._handle = handle
        self._template = template
        self._after = after

    def __repr__(self):
        return f"<cdata 'DBR_Iterator_t' after {self._after!r}>"

    def __bool__(self):
        return True


def _text(s):
    if isinstance(s, (bytes, bytearray)):
        return bytes(s).decode()
    if isinstance(s, CData):
        return ""
    return "" if s is None else str(s)


# ---- the API ---------------------------------------------------------------------------


class DataBroker:
    """PyDBR's `dbr` module as an object: `dbr` is the process's instance. Another
    instance (`DataBroker(server=...)`) is a second, independent connection."""

    def __init__(self, server=None, timeout=None):
        self._server = server
        self._timeout = timeout
        self._lock = threading.RLock()
        self._ctx = None
        self._gen = 0
        self._open = {}
        self._pending = {}
        # The last connection error (for messages; not part of PyDBR).
        self.lastError = ""

    # -- connection --

    def _context(self):
        """The live connection, connecting if there is none; `None` if it fails."""
        with self._lock:
            ctx = self._ctx
            if ctx is not None and not ctx.is_closed():
                return ctx
            self._ctx = None
            try:
                from broker._broker import DbrContext

                url = server_url(self._server)
                timeout = self._timeout if self._timeout is not None else _timeout_from_env()
                ctx = DbrContext(url, timeout)
            except Exception as e:  # unreachable gateway, bad URL: a code, never an exception
                self.lastError = str(e)
                return None
            self._ctx = ctx
            self._gen += 1
            self._pending.clear()
            self.lastError = ""
            return ctx

    def _after(self, ctx, code):
        """Notes a lost connection (the next call connects again); returns `code`,
        NOCONNECT when the connection ended during the call."""
        if ctx.is_closed():
            with self._lock:
                if self._ctx is ctx:
                    self._ctx = None
            if code != DBR_SUCCESS:
                return DBR_ERR_NOCONNECT
        return code

    def _resolve(self, handle):
        """`(ctx, native handle, 0)` for a handle, or `(None, None, code)`."""
        if not isinstance(handle, Handle) or handle._owner is not self:
            return None, None, DBR_ERR_INVALID
        if handle._deleted or not handle._natives:
            return None, None, DBR_ERR_NSINVAL
        ctx = self._context()
        if ctx is None:
            return None, None, DBR_ERR_NOCONNECT
        if handle._gen != self._gen:
            # A new connection: the gateway dropped the old attachment; attach again.
            native = ctx.attach(handle.name)
            if native is None:
                code = self._after(ctx, DBR_ERR_NSINVAL)
                return None, None, code
            handle._natives = [native]
            handle._gen = self._gen
        return ctx, handle._natives[-1], DBR_SUCCESS

    def close(self):
        """Closes the connection (not in PyDBR; the next call connects again)."""
        with self._lock:
            ctx, self._ctx = self._ctx, None
        if ctx is not None:
            ctx.close()

    # -- utilities --

    @staticmethod
    def getErrorCode(error_code):
        """The name of a code, e.g. `'DBR_ERR_TIMEOUT'`."""
        if isinstance(error_code, int) and 0 <= error_code < DBR_ERR_MAXERROR:
            return _NAMES[error_code]
        return UNKNOWN_ERROR

    @staticmethod
    def getErrorMessage(error_code):
        """The Data Broker's message of a code; "Unknown Error" outside the table."""
        if isinstance(error_code, int):
            return _MESSAGES.get(error_code, UNKNOWN_ERROR)
        return UNKNOWN_ERROR

    @staticmethod
    def createBuf(buftype, bufsize):
        """A zero-filled buffer: `ffi.buffer(ffi.new(buftype, bufsize))`."""
        return ffi.buffer(ffi.new(buftype, bufsize))

    @staticmethod
    def decodeTuple(tuple_buffer):
        """The value in a buffer of `readA`/`getA` (after `test` gave DBR_SUCCESS)."""
        if isinstance(tuple_buffer, _AsyncBuffer):
            if tuple_buffer._typed is not None:
                return tuple_buffer._typed
            if not tuple_buffer._done:
                tuple_buffer._poll()
                if tuple_buffer._typed is not None:
                    return tuple_buffer._typed
        if isinstance(tuple_buffer, CBuffer):
            return decode(bytes(tuple_buffer))
        return decode(tuple_buffer)

    # -- namespaces --

    def create(self, dbrname, level, groups):
        """A handle for the new namespace `dbrname`, or `None` (PyDBR's NULL, equal to
        `ffi.NULL`) if it exists or the gateway is unreachable."""
        ctx = self._context()
        if ctx is None:
            return None
        glist = [g for g in groups if isinstance(g, str)] if isinstance(groups, (list, tuple)) else []
        try:
            level = int(level)
        except (TypeError, ValueError):
            return None
        if not 0 <= level < DBR_PERST_MAX:
            return None
        native = ctx.create(_text(dbrname), level, glist)
        self._after(ctx, DBR_SUCCESS)
        if native is None:
            return None
        handle = Handle(self, native.name, native, self._gen)
        self._open[handle.name] = handle
        return handle

    def attach(self, dbr_name):
        """A handle for the existing namespace `dbr_name`, or `None`. Within a process the
        same name gives the same handle (each attach needs its detach)."""
        ctx = self._context()
        if ctx is None:
            return None
        name = _text(dbr_name)
        native = ctx.attach(name)
        self._after(ctx, DBR_SUCCESS)
        if native is None:
            return None
        handle = self._open.get(name)
        if handle is not None and not handle._deleted and handle._natives and handle._gen == self._gen:
            handle._natives.append(native)
            return handle
        handle = Handle(self, name, native, self._gen)
        self._open[name] = handle
        return handle

    def delete(self, dbr_name):
        """Marks the namespace for deletion and gives up this process's attachments:
        DBR_SUCCESS when it is gone, DBR_ERR_NSBUSY while other clients hold it (it goes
        at their last detach), DBR_ERR_NSINVAL if this process does not hold it."""
        name = _text(dbr_name)
        handle = self._open.get(name)
        if handle is None:
            return DBR_ERR_NSINVAL
        ctx, native, code = self._resolve(handle)
        if ctx is None:
            return code
        extra, handle._natives = handle._natives[:-1], handle._natives[-1:]
        for other in extra:
            ctx.detach(other)
        code = ctx.delete(native)
        handle._deleted = True
        handle._natives = []
        self._open.pop(name, None)
        return self._after(ctx, code)

    def detach(self, dbr_handle):
        """Gives up one attachment; the data stays unless the namespace is marked."""
        ctx, native, code = self._resolve(dbr_handle)
        if ctx is None:
            return code
        code = ctx.detach(native)
        dbr_handle._natives.pop()
        if not dbr_handle._natives and self._open.get(dbr_handle.name) is dbr_handle:
            del self._open[dbr_handle.name]
        return self._after(ctx, code)

    def query(self, dbr_handle, dbr_state, state_mask):
        """DBR_SUCCESS if the namespace exists (like PyDBR, `dbr_state` is not filled)."""
        if dbr_handle is None or dbr_handle is ffi.NULL:
            return DBR_ERR_INVALID
        if dbr_state is None or dbr_state is ffi.NULL:
            return DBR_ERR_UBUFFER
        ctx, native, code = self._resolve(dbr_handle)
        if ctx is None:
            return code
        code, _info = ctx.query(native)
        return self._after(ctx, code)

    def addUnits(self, dbr_handle, units):
        return DBR_ERR_NOTIMPL

    def removeUnits(self, dbr_handle, units):
        return DBR_ERR_NOTIMPL

    def eval(self, dbr_hdl, tuple_val, tuple_name, size, group, fn_ptr):
        return DBR_ERR_NOTIMPL

    # -- tuples --

    def put(self, dbr_hdl, tuple_val, tuple_name, group):
        """Appends `tuple_val` to the queue `tuple_name`."""
        ctx, native, code = self._resolve(dbr_hdl)
        if ctx is None:
            return code
        return self._after(ctx, ctx.put(native, encode(tuple_val), _text(tuple_name)))

    def _fetch(self, get, dbr_hdl, tuple_name, flag, buffer_size):
        ctx, native, code = self._resolve(dbr_hdl)
        if ctx is None:
            return None, code
        capacity = None
        if buffer_size is not None:
            capacity = int(buffer_size[0])
            if capacity < 0:
                return None, DBR_ERR_INVALID
        value, code, size = ctx.fetch(native, _text(tuple_name), int(flag), capacity, get)
        code = self._after(ctx, code)
        if buffer_size is not None and size is not None and code in (DBR_SUCCESS, DBR_ERR_UBUFFER):
            buffer_size[0] = size
        if code != DBR_SUCCESS:
            return None, code
        return decode(value), code

    def read(self, dbr_hdl, tuple_name, match_template, group, flag, buffer_size=None):
        """`(value, code)`: the oldest value of `tuple_name`, left in place. Waits up to
        DBR_TIMEOUT unless `flag` has DBR_FLAGS_NOWAIT; `flag >> 4` picks a later element.
        `buffer_size` (a one-item list) caps the size in bytes and receives it."""
        return self._fetch(False, dbr_hdl, tuple_name, flag, buffer_size)

    def get(self, dbr_hdl, tuple_name, match_template, group, flag, buffer_size=None):
        """`(value, code)`: removes and returns the oldest value; like `read`. A value
        larger than `buffer_size` stays queued (DBR_ERR_UBUFFER)."""
        return self._fetch(True, dbr_hdl, tuple_name, flag, buffer_size)

    def putA(self, dbr_hdl, tuple_val, tuple_name, group):
        """A tag for an asynchronous put (check it with `test`), or DB_TAG_ERROR."""
        ctx, native, code = self._resolve(dbr_hdl)
        if ctx is None:
            return DB_TAG_ERROR
        tag = ctx.put_a(native, encode(tuple_val), _text(tuple_name))
        return DB_TAG_ERROR if tag < 0 else tag

    def _fetch_a(self, get, dbr_hdl, tuple_name, flag, buffer_size):
        ctx, native, code = self._resolve(dbr_hdl)
        if ctx is None:
            return DB_TAG_ERROR, None
        tag = ctx.fetch_a(native, _text(tuple_name), int(flag), get)
        if tag < 0:
            return DB_TAG_ERROR, None
        buf = _AsyncBuffer(self, tag, self._gen, buffer_size)
        self._pending[tag] = buf
        return tag, buf

    def readA(self, dbr_hdl, tuple_name, match_template, group, flag=DBR_FLAGS_NONE, buffer_size=None):
        """`(tag, buffer)`: an asynchronous read; once `test(tag)` gives DBR_SUCCESS the
        buffer holds the value (`decodeTuple(buffer)`). Never times out; `cancel` stops it."""
        return self._fetch_a(False, dbr_hdl, tuple_name, flag, buffer_size)

    def getA(self, dbr_hdl, tuple_name, match_template, group, flag=DBR_FLAGS_NONE, buffer_size=None):
        """`(tag, buffer)`: an asynchronous get, like `readA`; a cancelled getA consumes
        nothing."""
        return self._fetch_a(True, dbr_hdl, tuple_name, flag, buffer_size)

    def _tag_context(self, tag):
        """The connection a tag's request runs on, or None for a tag that cannot be ours."""
        if not isinstance(tag, int) or not 0 <= tag < 1 << 63:
            return None
        with self._lock:
            return self._ctx

    def test(self, tag):
        """DBR_ERR_INPROGRESS while the request runs, then its final code (the tag is
        free again); DBR_ERR_TAGERROR for an unknown tag."""
        ctx = self._tag_context(tag)
        if ctx is None:
            return DBR_ERR_TAGERROR
        code, value = ctx.test(tag)
        if code != DBR_ERR_INPROGRESS:
            buf = self._pending.pop(tag, None)
            if buf is not None:
                buf._complete(code, value)
        return self._after(ctx, code) if code not in (DBR_SUCCESS, DBR_ERR_INPROGRESS) else code

    def cancel(self, tag):
        """Stops a request and frees its tag (a cancelled getA never consumes a value)."""
        ctx = self._tag_context(tag)
        if ctx is None:
            return DBR_ERR_TAGERROR
        self._pending.pop(tag, None)
        return ctx.cancel(tag)

    def move(self, src_DBRHandle, src_group, tuple_name, match_template, dest_DBRHandle, dest_group):
        """Moves the whole queue `tuple_name` to another namespace (atomically)."""
        ctx, src, code = self._resolve(src_DBRHandle)
        if ctx is None:
            return code
        ctx2, dst, code = self._resolve(dest_DBRHandle)
        if ctx2 is None:
            return code
        return self._after(ctx, ctx.move(src, _text(tuple_name), dst))

    def remove(self, dbr_hdl, group, tuple_name, match_template):
        """Deletes every value of `tuple_name`; DBR_ERR_UNAVAIL if there is none."""
        ctx, native, code = self._resolve(dbr_hdl)
        if ctx is None:
            return code
        return self._after(ctx, ctx.remove(native, _text(tuple_name)))

    def testKey(self, dbr_hdl, tuple_name):
        """DBR_SUCCESS if `tuple_name` has a value, else DBR_ERR_UNAVAIL (never waits)."""
        ctx, native, code = self._resolve(dbr_hdl)
        if ctx is None:
            return code
        return self._after(ctx, ctx.test_key(native, _text(tuple_name)))

    def directory(self, dbr_hdl, match_template, group, count, size):
        """`(names, rsize, code)`: at most `count` names (0 = all) matching the glob
        `match_template`; the newline-joined list is cut to `size` bytes, `rsize` its
        length. No match gives `['']`."""
        ctx, native, code = self._resolve(dbr_hdl)
        if ctx is None:
            return [""], 0, code
        if int(count) < 0 or int(size) < 0:
            return [""], 0, DBR_ERR_INVALID
        names, rsize, code = ctx.directory(native, _text(match_template), int(count), int(size))
        return names, rsize, self._after(ctx, code)

    def iterator(self, dbr_hdl, iterator, group, match_template):
        """`(name, next iterator)`: start with DBR_ITERATOR_NEW, stop when the iterator is
        DBR_ITERATOR_DONE (the name is then `None`). Names come in name order."""
        ctx, native, code = self._resolve(dbr_hdl)
        if ctx is None:
            return None, DBR_ITERATOR_DONE
        if isinstance(iterator, Iterator):
            after, template = iterator._after, iterator._template
        else:
            after, template = None, _text(match_template)
        name, nxt, code = ctx.iterator(native, after, template)
        self._after(ctx, code)
        if name is None:
            return None, DBR_ITERATOR_DONE
        return name, Iterator(dbr_hdl, template, nxt)


class _AsyncBuffer(CBuffer):
    """The buffer `readA`/`getA` hand out: empty until `test` reports completion."""

    def __init__(self, owner, tag, gen, buffer_size):
        super().__init__(bytearray(), None)
        self._owner = owner
        self._tag = tag
        self._gen = gen
        self._buffer_size = buffer_size
        self._done = False
        self._typed = None

    def _poll(self):
        if self._owner._pending.get(self._tag) is self:
            self._owner.test(self._tag)

    def _complete(self, code, value):
        self._done = True
        if code != DBR_SUCCESS:
            return
        if isinstance(value, (bytes, bytearray)):
            self._data[:] = value
            if self._buffer_size is not None:
                self._buffer_size[0] = len(value)
        else:
            self._typed = value


dbr = DataBroker()
# Module-level constants stay reachable as `dbr.DBR_...`, the way PyDBR programs use them.
for _k, _v in list(globals().items()):
    if _k.startswith(("DBR_", "DB_")):
        setattr(DataBroker, _k, _v)
del _k, _v

"""`_dbr_interface`: a small pure-Python stand-in for the cffi module of PyDBR.

PyDBR programs allocate Data Broker types with `ffi.new(...)` and compare handles and
iterators with `ffi.NULL`. Nothing here talks to C: `ffi.new` returns Python objects that
behave like the cffi values those programs use (pointers with `p[0]`, zero-filled `char[]`
arrays, buffers with `buf[:]`), so `from _dbr_interface import ffi` works unchanged.

Supported: `ffi.new(ctype, init=None)` for pointer types (`'int64_t*'`, `'DBR_State_t*'`,
`'DBR_Handle_t*'`, `'DBR_Tuple_persist_level_t*'`, ...), pointer typedefs
(`'DBR_GroupList_t'`) and arrays (`'char[]'`, `'char[16]'`, `'int64_t[]'`); `ffi.NULL`;
`ffi.string`, `ffi.buffer`, `ffi.from_buffer`, `ffi.cast`, `ffi.sizeof`, `ffi.typeof`.
"""

__all__ = ["ffi", "CData", "CBuffer"]

# The C typedefs of libdatabroker.h, reduced to what they are.
_TYPEDEFS = {
    "DBR_Handle_t": "void *",
    "DBR_Iterator_t": "void *",
    "DBR_State_t": "uint32_t",
    "DBR_State_mask_t": "uint64_t",
    "DBR_Tag_t": "uint64_t",
    "DBR_Name_t": "char *",
    "DBR_Group_t": "char *",
    "DBR_GroupList_t": "char * *",
    "DBR_Unit_t": "char *",
    "DBR_UnitList_t": "char * *",
    "DBR_Tuple_name_t": "char *",
    "DBR_Tuple_template_t": "char *",
    "DBR_Tuple_persist_level_t": "int",
    "DBR_Request_flags_t": "int",
    "DBR_Errorcode_t": "int",
}

# Scalar types: (size in bytes, kind) with kind "int", "uint", "float", "char" or "bool".
_SCALARS = {
    "char": (1, "char"),
    "signed char": (1, "int"),
    "unsigned char": (1, "uint"),
    "_Bool": (1, "bool"),
    "bool": (1, "bool"),
    "short": (2, "int"),
    "unsigned short": (2, "uint"),
    "int": (4, "int"),
    "unsigned": (4, "uint"),
    "unsigned int": (4, "uint"),
    "long": (8, "int"),
    "unsigned long": (8, "uint"),
    "long long": (8, "int"),
    "unsigned long long": (8, "uint"),
    "int8_t": (1, "int"),
    "uint8_t": (1, "uint"),
    "int16_t": (2, "int"),
    "uint16_t": (2, "uint"),
    "int32_t": (4, "int"),
    "uint32_t": (4, "uint"),
    "int64_t": (8, "int"),
    "uint64_t": (8, "uint"),
    "size_t": (8, "uint"),
    "ssize_t": (8, "int"),
    "intptr_t": (8, "int"),
    "uintptr_t": (8, "uint"),
    "float": (4, "float"),
    "double": (8, "float"),
}


def _normalize(ctype):
    """`ctype` with typedefs resolved and spaces normalised, e.g. `'char * *'`."""
    if not isinstance(ctype, str):
        raise TypeError(f"expected a C type name, got {type(ctype).__name__}")
    text = ctype.replace("const ", " ").replace("*", " * ").replace("[", " [").strip()
    words = text.split()
    out = []
    for w in words:
        out.append(_TYPEDEFS.get(w, w))
    return " ".join(" ".join(out).split())


def _parse(ctype):
    """`(kind, inner, length)`: kind "pointer" (inner = pointee), "array" (inner = item,
    length or None) or "scalar" (inner = scalar name) or "void"."""
    t = _normalize(ctype)
    if t.endswith("]"):
        base, _, n = t[:-1].rpartition("[")
        n = n.strip()
        return "array", base.strip(), (int(n, 0) if n else None)
    if t.endswith("*"):
        return "pointer", t[:-1].strip(), None
    if t == "void":
        return "void", t, None
    if t in _SCALARS:
        return "scalar", t, None
    raise TypeError(f"unknown C type {ctype!r} (this stand-in knows the DBR_* types and C scalars)")


def _sizeof(t):
    kind, inner, n = _parse(t)
    if kind == "pointer":
        return 8
    if kind == "scalar":
        return _SCALARS[inner][0]
    if kind == "array":
        if n is None:
            raise TypeError(f"ctype {t!r} has no size")
        return n * _sizeof(inner)
    raise TypeError("ctype 'void' has no size")


def _default(item_type):
    kind, inner, _ = _parse(item_type)
    if kind == "pointer":
        return NULL
    if kind == "scalar":
        k = _SCALARS[inner][1]
        return {"char": b"\x00", "float": 0.0, "bool": False}.get(k, 0)
    raise TypeError(f"cannot instantiate ctype {item_type!r}")


def _convert(item_type, value):
    """`value` stored in an item of `item_type`, checked and wrapped like C would."""
    kind, inner, _ = _parse(item_type)
    if kind == "pointer":
        if value is None or value is NULL:
            return NULL
        return value
    size, k = _SCALARS[inner]
    if k == "char":
        if isinstance(value, int):
            value = bytes([value & 0xFF])
        if not isinstance(value, (bytes, bytearray)) or len(value) != 1:
            raise TypeError(f"initializer for ctype 'char' must be a bytes of length 1, not {value!r}")
        return bytes(value)
    if k == "float":
        return float(value)
    if k == "bool":
        return bool(value)
    value = int(value)
    bits = size * 8
    if k == "uint":
        if not 0 <= value < 1 << bits:
            raise OverflowError(f"integer {value} does not fit '{inner}'")
    elif not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
        raise OverflowError(f"integer {value} does not fit '{inner}'")
    return value


class CData:
    """Base of the stand-in's values (cffi's `CData`)."""

    _ctype = "void *"

    def __repr__(self):
        return f"<cdata '{self._ctype}' owning {self._size()} bytes>"

    def _size(self):
        return 8


class _Null(CData):
    """`ffi.NULL`: false, and equal to `None` and to every other NULL."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self):
        return "<cdata 'void *' NULL>"

    def __bool__(self):
        return False

    def __eq__(self, other):
        return other is None or isinstance(other, _Null)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return 0


NULL = _Null()


class _Pointer(CData):
    """What `ffi.new('T*')` returns: one item of type T, read and written as `p[0]`."""

    def __init__(self, ctype, item_type, init):
        self._ctype = ctype
        self._item_type = item_type
        self._value = _default(item_type) if init is None else _convert(item_type, init)

    def _size(self):
        kind, _, _ = _parse(self._item_type)
        return 8 if kind == "pointer" else _sizeof(self._item_type)

    def __getitem__(self, i):
        if i != 0:
            raise IndexError("this stand-in pointer owns one item: use p[0]")
        return self._value

    def __setitem__(self, i, value):
        if i != 0:
            raise IndexError("this stand-in pointer owns one item: use p[0]")
        self._value = _convert(self._item_type, value)

    def __bool__(self):
        return True


class _Array(CData):
    """What `ffi.new('T[]', n)` returns: n zero-filled items (`char` arrays are bytes)."""

    def __init__(self, ctype, item_type, length, init):
        self._ctype = ctype
        self._item_type = item_type
        self._char = _parse(item_type) == ("scalar", "char", None)
        items = None
        if isinstance(init, int) and not isinstance(init, bool):
            if length is not None:
                raise TypeError(f"ctype {ctype!r} has a fixed length; give items, not a size")
            length, init = init, None
        if isinstance(init, str):
            init = init.encode()
        if init is not None:
            items = list(init) if not isinstance(init, (bytes, bytearray)) else init
            if length is None:
                # A char array from bytes gets room for the terminating NUL, as in C.
                length = len(items) + (1 if self._char else 0)
            if len(items) > length:
                raise IndexError(f"initializer of {len(items)} items for an array of {length}")
        if length is None:
            raise TypeError(f"ctype {ctype!r}: give a size or an initializer")
        if self._char:
            self._items = bytearray(length)
            if items is not None:
                data = bytes(items) if isinstance(items, (bytes, bytearray)) else b"".join(
                    _convert("char", x) for x in items
                )
                self._items[: len(data)] = data
        else:
            self._items = [_default(item_type)] * length
            for i, x in enumerate(items or ()):
                self._items[i] = _convert(item_type, x)
        self._ctype = f"{item_type}[{length}]"

    def _size(self):
        return len(self._items) * _sizeof(self._item_type)

    def __len__(self):
        return len(self._items)

    def __getitem__(self, i):
        if isinstance(i, slice):
            if self._char:
                return bytes(self._items[i])
            return list(self._items[i])
        if self._char:
            return bytes([self._items[i]])
        return self._items[i]

    def __setitem__(self, i, value):
        if isinstance(i, slice):
            if self._char:
                data = bytes(value)
                if len(data) != len(range(*i.indices(len(self._items)))):
                    raise ValueError("slice assignment must keep the array's length")
                self._items[i] = data
            else:
                self._items[i] = [_convert(self._item_type, x) for x in value]
            return
        if self._char:
            self._items[i] = _convert("char", value)[0]
        else:
            self._items[i] = _convert(self._item_type, value)

    def __iter__(self):
        return (self[i] for i in range(len(self._items)))

    def __bool__(self):
        return True


class CBuffer:
    """What `ffi.buffer(cdata)` returns: the bytes of a `char[]`, sliceable (`buf[:]`),
    writable, and usable wherever Python takes bytes (`bytes(buf)`)."""

    def __init__(self, data=None, size=None):
        self._data = data if data is not None else bytearray()
        self._limit = size

    def _view(self):
        return self._data if self._limit is None else self._data[: self._limit]

    def __len__(self):
        n = len(self._data)
        return n if self._limit is None else min(n, self._limit)

    def __getitem__(self, i):
        v = self._view()[i]
        return bytes([v]) if isinstance(i, int) else bytes(v)

    def __setitem__(self, i, value):
        if isinstance(i, int):
            self._data[i] = value[0] if isinstance(value, (bytes, bytearray)) else int(value)
            return
        start, stop, step = i.indices(len(self))
        if step != 1 or len(value) != stop - start:
            raise ValueError("buffer slice assignment must keep the buffer's length")
        self._data[start:stop] = bytes(value)

    def __bytes__(self):
        return bytes(self._view())

    def __buffer__(self, flags):
        return memoryview(bytes(self._view()))

    def __repr__(self):
        return f"<_cffi_backend.buffer object, {len(self)} bytes>"

    def __eq__(self, other):
        if isinstance(other, CBuffer):
            return bytes(self) == bytes(other)
        if isinstance(other, (bytes, bytearray)):
            return bytes(self) == bytes(other)
        return NotImplemented

    __hash__ = None


class FFI:
    """The `ffi` object of `_dbr_interface`."""

    NULL = NULL
    CData = CData
    buffer_type = CBuffer
    RTLD_LAZY = 1
    RTLD_NOW = 2
    RTLD_GLOBAL = 256
    RTLD_LOCAL = 0

    def new(self, ctype, init=None):
        """A new zero-initialised value of pointer or array type `ctype`."""
        kind, inner, length = _parse(ctype)
        if kind == "pointer":
            if _parse(inner)[0] == "void":
                raise TypeError(f"cannot instantiate ctype '{_normalize(ctype)}' of unknown size")
            return _Pointer(ctype.strip(), inner, init)
        if kind == "array":
            return _Array(ctype.strip(), inner, length, init)
        raise TypeError(f"expected a pointer or array ctype, got '{ctype}'")

    def string(self, cdata, maxlen=-1):
        """The bytes of a `char[]` (or `char*` item, or bytes) up to the first NUL."""
        if isinstance(cdata, _Array) and cdata._char:
            data = bytes(cdata._items)
        elif isinstance(cdata, _Pointer) and isinstance(cdata[0], bytes):
            data = cdata[0]
        elif isinstance(cdata, CBuffer):
            data = bytes(cdata)
        elif isinstance(cdata, (bytes, bytearray)):
            data = bytes(cdata)
        elif isinstance(cdata, _Pointer):
            return cdata[0]
        else:
            raise TypeError(f"string() expects a char array or pointer, got {cdata!r}")
        if maxlen >= 0:
            data = data[:maxlen]
        return data.split(b"\x00", 1)[0]

    def buffer(self, cdata, size=-1):
        """The raw bytes of `cdata` (a `char[]`, another buffer, or bytes) as a buffer."""
        limit = None if size is None or size < 0 else size
        if isinstance(cdata, _Array):
            if cdata._char:
                return CBuffer(cdata._items, limit)
            raise TypeError("this stand-in gives buffers of char arrays only")
        if isinstance(cdata, CBuffer):
            return CBuffer(cdata._data, limit)
        if isinstance(cdata, bytearray):
            return CBuffer(cdata, limit)
        if isinstance(cdata, bytes):
            return CBuffer(bytearray(cdata), limit)
        raise TypeError(f"buffer() expects a char array, got {cdata!r}")

    def from_buffer(self, obj, require_writable=False):
        """A `char[]` over the bytes of `obj` (shared when `obj` is writable)."""
        if isinstance(obj, CBuffer):
            arr = _Array("char[]", "char", len(obj._data), None)
            arr._items = obj._data
            return arr
        if isinstance(obj, bytearray):
            arr = _Array("char[]", "char", len(obj), None)
            arr._items = obj
            return arr
        if require_writable:
            raise TypeError("from_buffer() needs a writable buffer")
        return _Array("char[]", "char", None, bytes(memoryview(obj)))

    def cast(self, ctype, value):
        """An integer cast to a scalar type (wrapping as C does), or 0 / None to NULL."""
        kind, inner, _ = _parse(ctype)
        if kind == "pointer":
            if value in (0, None) or value is NULL:
                return NULL
            return value
        if kind == "scalar":
            size, k = _SCALARS[inner]
            if k == "float":
                return float(value)
            if k == "char":
                return _convert("char", int(value) & 0xFF)
            if k == "bool":
                return bool(value)
            value = int(value) & ((1 << (size * 8)) - 1)
            if k == "int" and value >= 1 << (size * 8 - 1):
                value -= 1 << (size * 8)
            return value
        raise TypeError(f"cannot cast to '{ctype}'")

    def sizeof(self, ctype_or_cdata):
        if isinstance(ctype_or_cdata, CData):
            return ctype_or_cdata._size()
        return _sizeof(ctype_or_cdata)

    def typeof(self, cdata_or_ctype):
        if isinstance(cdata_or_ctype, CData):
            return cdata_or_ctype._ctype
        return _normalize(cdata_or_ctype)

    def dlopen(self, name, flags=0):
        raise OSError(
            f"{name}: this _dbr_interface is a stand-in without C libraries; "
            "dbr_module talks to the broker gateway instead"
        )


ffi = FFI()

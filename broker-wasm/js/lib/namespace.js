// Data Broker namespaces (tuple spaces) over an Endpoint: the idiomatic `Namespace` class,
// the `dbr` object with PyDBR's function names and argument order (DB-28), and the Data
// Broker error codes (DB-27). Every call returns a Promise; blocking reads and gets take an
// AbortSignal, and a cancelled get never consumes a value (DB-25).

/** `[number, name, message]` of every Data Broker error code (DB-27), byte-identical. */
export const DBR_CODES = [
  [0, "DBR_SUCCESS", "Operation successful"],
  [1, "DBR_ERR_GENERIC", "A general or unknown error has occurred"],
  [2, "DBR_ERR_INVALID", "Invalid argument"],
  [3, "DBR_ERR_HANDLE", "An invalid handle was encountered inside"],
  [4, "DBR_ERR_INPROGRESS", "Operation in progress"],
  [5, "DBR_ERR_TIMEOUT", "Operation timed out"],
  [6, "DBR_ERR_UBUFFER", "Provided user buffer problem (too small, not available)"],
  [7, "DBR_ERR_UNAVAIL", "Entry not available"],
  [8, "DBR_ERR_EXISTS", "Entry already exists"],
  [9, "DBR_ERR_NSBUSY", "Namespace still referenced by a client"],
  [10, "DBR_ERR_NSINVAL", "Namespace is invalid"],
  [11, "DBR_ERR_NOMEMORY", "Insufficient memory or storage"],
  [12, "DBR_ERR_TAGERROR", "Invalid tag"],
  [13, "DBR_ERR_NOFILE", "File not found"],
  [14, "DBR_ERR_NOAUTH", "Access authorization required or failed"],
  [15, "DBR_ERR_NOCONNECT", "Connection to a storage backend failed"],
  [16, "DBR_ERR_CANCELLED", "Operation was cancelled"],
  [17, "DBR_ERR_NOTIMPL", "Operation not implemented"],
  [18, "DBR_ERR_INVALIDOP", "Invalid operation"],
  [19, "DBR_ERR_BE_POST", "Failed to post request to back-end"],
  [20, "DBR_ERR_BE_GENERAL", "Unspecified back-end error"],
  [21, "DBR_ERR_ITERATOR", "Invalid iterator or error iterating the namespace"],
  [22, "DBR_ERR_PLUGIN", "Error while processing request/data in data adapter"],
  [23, "DBR_ERR_MAXERROR", "Unknown Error"],
];

/** `DBR_SUCCESS`, `DBR_ERR_TIMEOUT`, ... by number. */
export const DBR = Object.freeze(Object.fromEntries(DBR_CODES.map(([n, name]) => [name, n])));

/** PyDBR's `getErrorCode`: the code's name; `"Unknown Error"` outside 0..22. */
export function getErrorCode(code) {
  return Number.isInteger(code) && code >= 0 && code < 23 ? DBR_CODES[code][1] : "Unknown Error";
}

/** PyDBR's `getErrorMessage` (C `dbrGet_error`): the original's message. */
export function getErrorMessage(code) {
  return Number.isInteger(code) && code >= 0 && code < 23 ? DBR_CODES[code][2] : "Unknown Error";
}

/** A failed namespace operation: `code` is the `DBR_ERR_*` name, `errno` its number. */
export class DbrError extends Error {
  /** @param {number} errno @param {string} [context] @param {number} [size] */
  constructor(errno, context, size) {
    super(context ? `${getErrorMessage(errno)}: ${context}` : getErrorMessage(errno));
    this.name = "DbrError";
    /** @type {string} */
    this.code = getErrorCode(errno);
    /** @type {number} */
    this.errno = errno;
    /** For UBUFFER with `partial`: the value's full size (DB-13). */
    if (size !== undefined) this.size = size;
  }
}

export const DBR_FLAGS_NONE = 0;
export const DBR_FLAGS_NOWAIT = 1;
export const DBR_FLAGS_PARTIAL = 2;
export const DBR_FLAGS_MAX = 3;
export const DBR_READ_FLAGS_INDEX_SHIFT = 4;
export const DBR_PERST_VOLATILE_SIMPLE = 0;
export const DBR_PERST_VOLATILE_FT = 1;
export const DBR_PERST_TEMPORARY_SIMPLE = 2;
export const DBR_PERST_TEMPORARY_FT = 3;
export const DBR_PERST_PERMANENT_SIMPLE = 4;
export const DBR_PERST_PERMANENT_FT = 5;
export const DBR_PERST_MAX = 6;
export const DB_TAG_ERROR = -1;
const QUEUE_DEPTH = 1024;
const DEFAULT_TIMEOUT_MS = 5000;

const encoder = new TextEncoder();

function failure(ev) {
  if (typeof ev.code === "number") return new DbrError(ev.code, ev.context);
  // A Broker-level failure (e.g. the connection closed): no storage connection.
  return new DbrError(15, `${ev.code}: ${ev.context}`);
}

/**
 * Sends one namespace op. With a signal, an abort asks the gateway to cancel and waits for its
 * answer; a value a get took before the cancel arrived goes back to the head of its queue,
 * then the promise rejects with DBR_ERR_CANCELLED.
 */
async function nsRequest(ep, args, signal) {
  if (signal?.aborted) throw new DbrError(16, "aborted before sending");
  if (!ep._core.isOpen) throw new DbrError(15, "not connected");
  let req;
  try {
    req = ep._requestRaw("namespace", args);
  } catch (e) {
    throw new DbrError(2, e.message);
  }
  let aborted = false;
  const onAbort = () => {
    aborted = true;
    ep._cancel(req.id);
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  let ev;
  try {
    ev = await req.promise;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  if (aborted) {
    if (ev.ok && args.op === "get" && ev.value && typeof ev.value === "object" && "size" in ev.value) {
      const back = ep._requestRaw("namespace", { op: "restore", ns: args.ns, key: args.key, value: ev.value.value });
      const r = await back.promise;
      if (!r.ok) throw failure(r);
    }
    if (ev.ok || ev.code === 16) throw new DbrError(16, "the request was cancelled");
  }
  if (!ev.ok) throw failure(ev);
  return ev.value;
}

function waitOf({ nowait, timeoutMs } = {}) {
  if (nowait) return "nowait";
  if (timeoutMs === undefined) return DEFAULT_TIMEOUT_MS;
  if (timeoutMs === Infinity) return "forever";
  return timeoutMs;
}

function infoOf(i) {
  return {
    name: i.name,
    level: i.level,
    groups: i.groups,
    refcount: i.refcount,
    markedForDelete: i.marked_for_delete,
    tupleNames: i.tuple_names,
    totalValues: i.total_values,
  };
}

/**
 * An attached namespace (DB-01..22). Get one with `endpoint.createNamespace(name)` or
 * `endpoint.attachNamespace(name)`.
 */
export class Namespace {
  /** @internal */
  constructor(endpoint, name) {
    this._ep = endpoint;
    /** The namespace's name. */
    this.name = name;
    this._valid = true;
  }

  /** @internal */
  static async _open(endpoint, args) {
    await nsRequest(endpoint, args);
    return new Namespace(endpoint, args.name);
  }

  /** False after `detach` or `delete`: the handle is stale (NSINVAL). */
  get valid() {
    return this._valid;
  }

  _op(args, signal) {
    if (!this._valid) return Promise.reject(new DbrError(10, `the handle of \`${this.name}\` was detached or deleted`));
    return nsRequest(this._ep, args, signal);
  }

  /** Appends `value` to the FIFO of `key` (DB-10). */
  async put(key, value) {
    await this._op({ op: "put", ns: this.name, key, value });
  }

  async _fetch(op, key, options = {}) {
    const r = await this._op(
      {
        op,
        ns: this.name,
        key,
        index: options.index ?? 0,
        wait: waitOf(options),
        capacity: options.capacity,
        partial: options.partial ?? false,
      },
      options.signal,
    );
    if (options.capacity !== undefined && r.size > options.capacity) {
      throw new DbrError(6, `the value has ${r.size} bytes`, r.size);
    }
    let value = r.value;
    if (options.bytes && typeof value === "string") value = encoder.encode(value);
    return options.withSize ? { value, size: r.size } : value;
  }

  /**
   * The oldest value of `key` (or element `index`), left in place (DB-11). Waits up to
   * `timeoutMs` (default 5000; `Infinity` = until a put) unless `nowait`. Rejects with a
   * `DbrError`: `DBR_ERR_UNAVAIL`, `DBR_ERR_TIMEOUT`, `DBR_ERR_CANCELLED`, `DBR_ERR_UBUFFER`.
   * @param {string} key
   * @param {{index?: number, nowait?: boolean, timeoutMs?: number, signal?: AbortSignal,
   *          capacity?: number, partial?: boolean, bytes?: boolean, withSize?: boolean}} [options]
   */
  read(key, options) {
    return this._fetch("read", key, options);
  }

  /** Removes and returns the oldest value of `key` (DB-12); options as `read`, no `index`. */
  get(key, options = {}) {
    return this._fetch("get", key, { ...options, index: 0 });
  }

  /** Deletes every value of `key` (DB-17). */
  async remove(key) {
    await this._op({ op: "remove", ns: this.name, key });
  }

  /** Moves the whole queue of `key` to namespace `to`, atomically (DB-18). */
  async move(key, to) {
    if (!to._valid) throw new DbrError(10, `the handle of \`${to.name}\` was detached or deleted`);
    await this._op({ op: "move", from: this.name, key, to: to.name });
  }

  /** True if `key` has a value; never waits or consumes (DB-22). */
  testKey(key) {
    return this._op({ op: "testKey", ns: this.name, key });
  }

  /** Names matching a glob `pattern` (Redis rules; default `*`), at most `limit` (DB-20). */
  async directory(pattern = "*", { limit = 0 } = {}) {
    const r = await this._op({ op: "directory", ns: this.name, pattern, limit });
    return r.names;
  }

  /** Every matching name once, fetched in pages (DB-21). */
  async *names(pattern = "*", { pageSize = 256 } = {}) {
    let after;
    for (;;) {
      const r = await this._op({ op: "iterate", ns: this.name, pattern, after, limit: pageSize });
      yield* r.names;
      if (r.done || r.names.length === 0) return;
      after = r.names[r.names.length - 1];
    }
  }

  /** The namespace's state (DB-06): name, level, groups, refcount, markedForDelete, tupleNames, totalValues. */
  async query() {
    return infoOf(await this._op({ op: "query", name: this.name }));
  }

  /** Gives up this attachment (DB-04); the data stays unless the namespace is marked. */
  async detach() {
    const p = this._op({ op: "detach", name: this.name });
    this._valid = false;
    await p;
  }

  /** Marks for deletion and detaches (DB-05): rejects with NSBUSY if others still hold it. */
  async delete() {
    const p = this._op({ op: "delete", name: this.name });
    this._valid = false;
    await p;
  }
}

function concat(parts) {
  const bytes = parts.map((p) => (p instanceof Uint8Array ? p : encoder.encode(String(p))));
  const out = new Uint8Array(bytes.reduce((a, b) => a + b.length, 0));
  let at = 0;
  for (const b of bytes) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

function codeOf(e) {
  return e instanceof DbrError ? e.errno : 1;
}

async function code(p) {
  try {
    await p;
    return 0;
  } catch (e) {
    return codeOf(e);
  }
}

/**
 * PyDBR's API (DB-28) over one endpoint, for ported code: the same function names, argument
 * order and return shapes, but every blocking call returns a Promise. `putA`/`readA`/`getA`
 * return tags (0..1023) at once; `test(tag)` and `cancel(tag)` are synchronous.
 * @param {any} endpoint a connected Endpoint
 * @param {{timeout?: number}} [options] `DBR_TIMEOUT` in seconds (default 5, 0 = forever)
 */
export function createDbr(endpoint, { timeout = 5 } = {}) {
  const handles = new Map();
  const tags = new Array(QUEUE_DEPTH).fill(null);
  let nextTag = 0;

  const waitFor = (flags) =>
    flags & DBR_FLAGS_NOWAIT ? { nowait: true } : { timeoutMs: timeout === 0 ? Infinity : timeout * 1000 };

  function sizeIn(bufferSize) {
    if (bufferSize === undefined || bufferSize === null) return undefined;
    return Array.isArray(bufferSize) ? bufferSize[0] : bufferSize;
  }

  async function fetch(op, handle, name, flags, bufferSize, extra = {}) {
    if (!(handle instanceof Namespace)) return [null, 2];
    const options = {
      ...waitFor(flags),
      index: op === "read" ? flags >> DBR_READ_FLAGS_INDEX_SHIFT : 0,
      capacity: sizeIn(bufferSize),
      partial: (flags & DBR_FLAGS_PARTIAL) !== 0,
      withSize: true,
      ...extra,
    };
    try {
      const r = await handle._fetch(op, name, options);
      if (Array.isArray(bufferSize)) bufferSize[0] = r.size;
      return [r.value, 0];
    } catch (e) {
      if (Array.isArray(bufferSize) && e instanceof DbrError && e.size !== undefined) bufferSize[0] = e.size;
      return [null, codeOf(e)];
    }
  }

  function post(start, buffer = null) {
    for (let i = 0; i < QUEUE_DEPTH; i++) {
      const tag = (nextTag + i) % QUEUE_DEPTH;
      if (tags[tag] !== null) continue;
      nextTag = (tag + 1) % QUEUE_DEPTH;
      const controller = new AbortController();
      const slot = { done: false, code: 4, buffer, controller, promise: null };
      tags[tag] = slot;
      slot.promise = start(controller.signal).then((code) => {
        slot.done = true;
        slot.code = code;
        return code;
      });
      return tag;
    }
    return DB_TAG_ERROR;
  }

  function asyncFetch(op, handle, name, flags, bufferSize) {
    const buffer = { value: null, size: sizeIn(bufferSize) ?? 0 };
    const extra = flags & DBR_FLAGS_NOWAIT ? {} : { timeoutMs: Infinity };
    const tag = post(async (signal) => {
      const sizes = [buffer.size];
      const [value, c] = await fetch(op, handle, name, flags, bufferSize === undefined ? undefined : sizes, { ...extra, signal });
      buffer.value = value;
      buffer.size = sizes[0];
      return c;
    }, buffer);
    return [tag, buffer];
  }

  async function scatter(op, handle, sizes, name, flags) {
    if (!(handle instanceof Namespace) || !Array.isArray(sizes) || sizes.length === 0) return [null, 2];
    const total = sizes.reduce((a, b) => a + b, 0);
    const [value, c] = await fetch(op, handle, name, flags & ~DBR_FLAGS_PARTIAL, total, { bytes: true });
    if (c !== 0) return [null, c];
    const bytes = value instanceof Uint8Array ? value : encoder.encode(String(value));
    const pieces = [];
    let at = 0;
    for (const n of sizes) {
      pieces.push(bytes.subarray(at, Math.min(at + n, bytes.length)));
      at += n;
    }
    return [pieces, 0];
  }

  const dbr = {
    DBR_SUCCESS: 0,
    ...DBR,
    DBR_FLAGS_NONE,
    DBR_FLAGS_NOWAIT,
    DBR_FLAGS_PARTIAL,
    DBR_FLAGS_MAX,
    DBR_PERST_VOLATILE_SIMPLE,
    DBR_PERST_VOLATILE_FT,
    DBR_PERST_TEMPORARY_SIMPLE,
    DBR_PERST_TEMPORARY_FT,
    DBR_PERST_PERMANENT_SIMPLE,
    DBR_PERST_PERMANENT_FT,
    DBR_PERST_MAX,
    DBR_GROUP_EMPTY: "0",
    DBR_GROUP_LIST_EMPTY: "0",
    DBR_ITERATOR_NEW: null,
    DBR_ITERATOR_DONE: null,
    DBR_STATE_MASK_ALL: 0xffffffffffffffffn,
    DB_TAG_ERROR,

    /** `dbrCreate`: a handle, or null on any failure (the original's NULL). */
    async create(name, level, groups) {
      try {
        const h = await Namespace._open(endpoint, { op: "create", name, level, groups: Array.isArray(groups) ? groups : [] });
        handles.set(name, h);
        return h;
      } catch {
        return null;
      }
    },
    /** `dbrAttach`: a handle or null. */
    async attach(name) {
      try {
        const h = await Namespace._open(endpoint, { op: "attach", name });
        handles.set(name, h);
        return h;
      } catch {
        return null;
      }
    },
    /** `dbrDelete`: only for a namespace this object holds, else NSINVAL; NSBUSY if others hold it. */
    async delete(name) {
      const h = handles.get(name);
      if (!h) return 10;
      handles.delete(name);
      return code(h.delete());
    },
    /** `dbrDetach`. */
    async detach(handle) {
      if (!(handle instanceof Namespace)) return 2;
      if (!handle.valid) return 10;
      if (handles.get(handle.name) === handle) handles.delete(handle.name);
      return code(handle.detach());
    },
    /** `dbrQuery`: the code; fills `state` (an object) with the real state (the original never did). */
    async query(handle, state, _mask) {
      if (!(handle instanceof Namespace)) return 2;
      if (state === null) return 6;
      try {
        const info = await handle.query();
        if (state && typeof state === "object") Object.assign(state, info);
        return 0;
      } catch (e) {
        return codeOf(e);
      }
    },
    /** `dbrPut`. */
    async put(handle, value, name, _group) {
      if (!(handle instanceof Namespace)) return 2;
      return code(handle.put(name, value));
    },
    /** `dbrRead`: `[value, code]`; `bufferSize` a number or a one-element array (in/out). */
    read(handle, name, _template, _group, flag = 0, bufferSize = undefined) {
      return fetch("read", handle, name, flag, bufferSize);
    },
    /** `dbrGet`: like `read`, and removes the value (a value that does not fit stays queued). */
    get(handle, name, _template, _group, flag = 0, bufferSize = undefined) {
      return fetch("get", handle, name, flag, bufferSize);
    },
    /** `dbrPutA`: a tag or DB_TAG_ERROR. */
    putA(handle, value, name, _group) {
      return post(() => dbr.put(handle, value, name, _group));
    },
    /** `dbrReadA`: `[tag, buffer]`; `buffer.value`/`buffer.size` are set when `test` reports completion. */
    readA(handle, name, _template, _group, flag = 0, bufferSize = undefined) {
      return asyncFetch("read", handle, name, flag, bufferSize);
    },
    /** `dbrGetA`: like `readA`; a cancelled getA never consumes a value. */
    getA(handle, name, _template, _group, flag = 0, bufferSize = undefined) {
      return asyncFetch("get", handle, name, flag, bufferSize);
    },
    /** `dbrTest`: INPROGRESS, or the final code (the tag is then free); TAGERROR otherwise. */
    test(tag) {
      const slot = Number.isInteger(tag) ? tags[tag] : undefined;
      if (!slot) return 12;
      if (!slot.done) return 4;
      tags[tag] = null;
      return slot.code;
    },
    /** Resolves with the final code of a tag (a `test` loop without polling) and frees it. */
    async wait(tag) {
      const slot = Number.isInteger(tag) ? tags[tag] : undefined;
      if (!slot) return 12;
      const c = await slot.promise;
      if (tags[tag] === slot) tags[tag] = null;
      return c;
    },
    /** `dbrCancel`: the gateway drops the waiter; the tag is free at once. */
    cancel(tag) {
      const slot = Number.isInteger(tag) ? tags[tag] : undefined;
      if (!slot) return 12;
      tags[tag] = null;
      slot.controller.abort();
      return 0;
    },
    /** `dbrTestKey`. */
    async testKey(handle, name) {
      if (!(handle instanceof Namespace)) return 2;
      try {
        return (await handle.testKey(name)) ? 0 : 7;
      } catch (e) {
        return codeOf(e);
      }
    },
    /** `dbrDirectory`: `[names, size of the newline-joined list, code]`; no match gives `[""]`. */
    async directory(handle, matchTemplate, _group, count, size) {
      if (!(handle instanceof Namespace)) return [[""], 0, 2];
      try {
        let text = (await handle.directory(matchTemplate || "*", { limit: count })).join("\n");
        let bytes = encoder.encode(text);
        if (size !== undefined && bytes.length > size) {
          text = new TextDecoder().decode(bytes.subarray(0, size)).replace(/\uFFFD$/, "");
          bytes = encoder.encode(text);
        }
        return [text.split("\n"), bytes.length, 0];
      } catch (e) {
        return [[""], 0, codeOf(e)];
      }
    },
    /** `dbrIterator`: `[name, iterator]`; at the end `[null, DBR_ITERATOR_DONE]`. */
    async iterator(handle, iterator, _group, matchTemplate) {
      if (!(handle instanceof Namespace)) return [null, null];
      try {
        const r = await handle._op({ op: "iterate", ns: handle.name, pattern: matchTemplate || "*", after: iterator ?? undefined, limit: 1 });
        return r.names.length ? [r.names[0], r.names[0]] : [null, null];
      } catch {
        return [null, null];
      }
    },
    /** `dbrMove` (atomic here). */
    async move(src, _srcGroup, name, _template, dst, _dstGroup) {
      if (!(src instanceof Namespace) || !(dst instanceof Namespace)) return 2;
      if (src === dst || src.name === dst.name) return 0;
      return code(src.move(name, dst));
    },
    /** `dbrRemove`. */
    async remove(handle, _group, name, _template) {
      if (!(handle instanceof Namespace)) return 2;
      return code(handle.remove(name));
    },
    /**
     * `dbrPut_gather` (DB-26): the parts (`Uint8Array`s or strings) concatenated into one
     * binary value. An empty list is DBR_ERR_INVALID.
     */
    async putGather(handle, parts, name, _group) {
      if (!(handle instanceof Namespace) || !Array.isArray(parts) || parts.length === 0) return 2;
      return code(handle.put(name, concat(parts)));
    },
    /**
     * `dbrRead_scatter` (DB-26): one value spread over pieces of `sizes[i]` bytes, in order:
     * `[pieces, code]`. A value longer than all pieces together is DBR_ERR_UBUFFER (and a
     * get leaves it queued). `flags` keep their meaning (the original inverted NOWAIT here).
     */
    readScatter(handle, sizes, name, _template, _group, flags = 0) {
      return scatter("read", handle, sizes, name, flags);
    },
    /** `dbrGet_scatter` (DB-26): like `readScatter`, and removes the value. */
    getScatter(handle, sizes, name, _template, _group, flags = 0) {
      return scatter("get", handle, sizes, name, flags);
    },
    /** `dbrAddUnits` / `dbrRemoveUnits`: not implemented (DB-08). */
    addUnits() {
      return 17;
    },
    removeUnits() {
      return 17;
    },
    getErrorCode,
    getErrorMessage,
  };
  return dbr;
}

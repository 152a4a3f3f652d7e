// PyDBR's API (DB-28) over one endpoint, for ported code: `createDbr(endpoint)` gives an
// object with the same function names, argument order and return shapes as PyDBR; blocking
// calls return Promises, the tag layer (`putA`/`readA`/`getA`, `test`, `cancel`) is
// synchronous. The flag decoding, tag table, scatter/gather split and directory list are the
// wasm core's (shared with the Rust client's `dbr` module).

import { Namespace } from "./dbr-namespace.js";
import {
  DBR,
  DbrError,
  getErrorCode as errorName,
  getErrorMessage as errorMessage,
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
  DB_TAG_ERROR,
} from "./dbr-codes.js";

/** PyDBR's constants, own properties of every `dbr` object. */
function constants() {
  return {
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
  };
}

/** The functions of a `dbr` object; each is an own, bound property (like PyDBR's module functions). */
const FUNCTIONS = [
  "create", "attach", "delete", "detach", "query", "put", "read", "get", "putA", "readA", "getA",
  "test", "wait", "cancel", "testKey", "directory", "iterator", "move", "remove", "putGather",
  "readScatter", "getScatter", "addUnits", "removeUnits", "getErrorCode", "getErrorMessage",
];

function codeOf(e) {
  return e instanceof DbrError ? e.errno : DBR.DBR_ERR_GENERIC;
}

async function code(p) {
  try {
    await p;
    return 0;
  } catch (e) {
    return codeOf(e);
  }
}

function sizeIn(bufferSize) {
  if (bufferSize === undefined || bufferSize === null) return undefined;
  return Array.isArray(bufferSize) ? bufferSize[0] : bufferSize;
}

const isHandle = (h) => h instanceof Namespace;

/** The process-local context of the original library: handles by name, tags, `DBR_TIMEOUT`. */
class Dbr {
  #wasm;
  #endpoint;
  #timeout;
  #handles = new Map();
  #tags;

  constructor(endpoint, timeout) {
    Object.assign(this, constants());
    this.#endpoint = endpoint;
    this.#wasm = endpoint._wasm;
    this.#timeout = timeout;
    this.#tags = new this.#wasm.DbrTags();
    for (const name of FUNCTIONS) this[name] = this[name].bind(this);
  }

  /** A read or get with PyDBR flags and an in/out `bufferSize`: `[value, code]`. */
  async #fetch(op, handle, name, flags, bufferSize, { asynchronous = false, signal, bytes } = {}) {
    if (!isHandle(handle)) return [null, DBR.DBR_ERR_INVALID];
    const f = this.#wasm.dbrFetchOptions(flags, op === "get", this.#timeout, asynchronous);
    const options = { index: f.index, capacity: sizeIn(bufferSize), partial: f.partial, withSize: true, signal, bytes };
    try {
      const r = await handle._fetch(op, name, options, f.wait);
      if (Array.isArray(bufferSize)) bufferSize[0] = r.size;
      return [r.value, 0];
    } catch (e) {
      if (Array.isArray(bufferSize) && e instanceof DbrError && e.size !== undefined) bufferSize[0] = e.size;
      return [null, codeOf(e)];
    }
  }

  /** Starts an asynchronous call under a new tag (`DB_TAG_ERROR` if none is free). */
  #post(start, buffer = null) {
    const controller = new AbortController();
    const slot = { done: false, code: DBR.DBR_ERR_INPROGRESS, buffer, controller, promise: null };
    const tag = this.#tags.post(slot);
    if (tag === DB_TAG_ERROR) return tag;
    slot.promise = start(controller.signal).then((c) => {
      slot.done = true;
      slot.code = c;
      return c;
    });
    return tag;
  }

  #asyncFetch(op, handle, name, flags, bufferSize) {
    const buffer = { value: null, size: sizeIn(bufferSize) ?? 0 };
    const tag = this.#post(async (signal) => {
      const sizes = [buffer.size];
      const inOut = bufferSize === undefined ? undefined : sizes;
      const [value, c] = await this.#fetch(op, handle, name, flags, inOut, { asynchronous: true, signal });
      buffer.value = value;
      buffer.size = sizes[0];
      return c;
    }, buffer);
    return [tag, buffer];
  }

  async #scatter(op, handle, sizes, name, flags) {
    if (!isHandle(handle)) return [null, DBR.DBR_ERR_INVALID];
    const plan = this.#wasm.dbrScatterRequest(sizes, flags);
    if (plan.code !== 0) return [null, plan.code];
    const [value, c] = await this.#fetch(op, handle, name, plan.flags, plan.capacity, { bytes: true });
    if (c !== 0) return [null, c];
    return [this.#wasm.dbrScatter(value, sizes), 0];
  }

  /** `dbrCreate`: a handle, or null on any failure (the original's NULL). */
  async create(name, level, groups) {
    const args = { op: "create", name, level, groups: Array.isArray(groups) ? groups : [] };
    try {
      const h = await Namespace._open(this.#endpoint, args);
      this.#handles.set(name, h);
      return h;
    } catch {
      return null;
    }
  }

  /** `dbrAttach`: a handle or null. */
  async attach(name) {
    try {
      const h = await Namespace._open(this.#endpoint, { op: "attach", name });
      this.#handles.set(name, h);
      return h;
    } catch {
      return null;
    }
  }

  /** `dbrDelete`: only for a namespace this object holds, else NSINVAL; NSBUSY if others hold it. */
  async delete(name) {
    const h = this.#handles.get(name);
    if (!h) return DBR.DBR_ERR_NSINVAL;
    this.#handles.delete(name);
    return code(h.delete());
  }

  /** `dbrDetach`. */
  async detach(handle) {
    if (!isHandle(handle)) return DBR.DBR_ERR_INVALID;
    if (!handle.valid) return DBR.DBR_ERR_NSINVAL;
    if (this.#handles.get(handle.name) === handle) this.#handles.delete(handle.name);
    return code(handle.detach());
  }

  /** `dbrQuery`: the code; fills `state` (an object) with the real state (the original never did). */
  async query(handle, state, _mask) {
    if (!isHandle(handle)) return DBR.DBR_ERR_INVALID;
    if (state === null) return DBR.DBR_ERR_UBUFFER;
    try {
      const info = await handle.query();
      if (state && typeof state === "object") Object.assign(state, info);
      return 0;
    } catch (e) {
      return codeOf(e);
    }
  }

  /** `dbrPut`. */
  async put(handle, value, name, _group) {
    if (!isHandle(handle)) return DBR.DBR_ERR_INVALID;
    return code(handle.put(name, value));
  }

  /** `dbrRead`: `[value, code]`; `bufferSize` a number or a one-element array (in/out). */
  read(handle, name, _template, _group, flag = 0, bufferSize = undefined) {
    return this.#fetch("read", handle, name, flag, bufferSize);
  }

  /** `dbrGet`: like `read`, and removes the value (a value that does not fit stays queued). */
  get(handle, name, _template, _group, flag = 0, bufferSize = undefined) {
    return this.#fetch("get", handle, name, flag, bufferSize);
  }

  /** `dbrPutA`: a tag or DB_TAG_ERROR. */
  putA(handle, value, name, group) {
    return this.#post(() => this.put(handle, value, name, group));
  }

  /** `dbrReadA`: `[tag, buffer]`; `buffer.value`/`buffer.size` are set when `test` reports completion. */
  readA(handle, name, _template, _group, flag = 0, bufferSize = undefined) {
    return this.#asyncFetch("read", handle, name, flag, bufferSize);
  }

  /** `dbrGetA`: like `readA`; a cancelled getA never consumes a value. */
  getA(handle, name, _template, _group, flag = 0, bufferSize = undefined) {
    return this.#asyncFetch("get", handle, name, flag, bufferSize);
  }

  /** `dbrTest`: INPROGRESS, or the final code (the tag is then free); TAGERROR otherwise. */
  test(tag) {
    const slot = this.#tags.get(tag);
    if (!slot) return DBR.DBR_ERR_TAGERROR;
    if (!slot.done) return DBR.DBR_ERR_INPROGRESS;
    this.#tags.take(tag);
    return slot.code;
  }

  /** Resolves with the final code of a tag (a `test` loop without polling) and frees it. */
  async wait(tag) {
    const slot = this.#tags.get(tag);
    if (!slot) return DBR.DBR_ERR_TAGERROR;
    const c = await slot.promise;
    if (this.#tags.get(tag) === slot) this.#tags.take(tag);
    return c;
  }

  /** `dbrCancel`: the gateway drops the waiter; the tag is free at once. */
  cancel(tag) {
    const slot = this.#tags.take(tag);
    if (!slot) return DBR.DBR_ERR_TAGERROR;
    slot.controller.abort();
    return 0;
  }

  /** `dbrTestKey`. */
  async testKey(handle, name) {
    if (!isHandle(handle)) return DBR.DBR_ERR_INVALID;
    try {
      return (await handle.testKey(name)) ? 0 : DBR.DBR_ERR_UNAVAIL;
    } catch (e) {
      return codeOf(e);
    }
  }

  /** `dbrDirectory`: `[names, size of the newline-joined list, code]`; no match gives `[""]`. */
  async directory(handle, matchTemplate, _group, count, size) {
    if (!isHandle(handle)) return [[""], 0, DBR.DBR_ERR_INVALID];
    try {
      const names = await handle.directory(matchTemplate || "*", { limit: count });
      const [list, bytes] = this.#wasm.dbrDirectoryList(names, size);
      return [list, bytes, 0];
    } catch (e) {
      return [[""], 0, codeOf(e)];
    }
  }

  /** `dbrIterator`: `[name, iterator]`; at the end `[null, DBR_ITERATOR_DONE]`. */
  async iterator(handle, iterator, _group, matchTemplate) {
    if (!isHandle(handle)) return [null, null];
    const args = { op: "iterate", ns: handle.name, pattern: matchTemplate || "*", after: iterator ?? undefined, limit: 1 };
    try {
      const r = await handle._op(args);
      return r.names.length ? [r.names[0], r.names[0]] : [null, null];
    } catch {
      return [null, null];
    }
  }

  /** `dbrMove` (atomic here). */
  async move(src, _srcGroup, name, _template, dst, _dstGroup) {
    if (!isHandle(src) || !isHandle(dst)) return DBR.DBR_ERR_INVALID;
    if (src === dst || src.name === dst.name) return 0;
    return code(src.move(name, dst));
  }

  /** `dbrRemove`. */
  async remove(handle, _group, name, _template) {
    if (!isHandle(handle)) return DBR.DBR_ERR_INVALID;
    return code(handle.remove(name));
  }

  /**
   * `dbrPut_gather` (DB-26): the parts (`Uint8Array`s or strings) concatenated into one
   * binary value. An empty list is DBR_ERR_INVALID.
   */
  async putGather(handle, parts, name, _group) {
    if (!isHandle(handle) || !Array.isArray(parts)) return DBR.DBR_ERR_INVALID;
    const value = this.#wasm.dbrGather(parts.map((p) => (p instanceof Uint8Array ? p : String(p))));
    if (value === undefined) return DBR.DBR_ERR_INVALID;
    return code(handle.put(name, value));
  }

  /**
   * `dbrRead_scatter` (DB-26): one value spread over pieces of `sizes[i]` bytes, in order:
   * `[pieces, code]`. A value longer than all pieces together is DBR_ERR_UBUFFER (and a
   * get leaves it queued). `flags` keep their meaning (the original inverted NOWAIT here).
   */
  readScatter(handle, sizes, name, _template, _group, flags = 0) {
    return this.#scatter("read", handle, sizes, name, flags);
  }

  /** `dbrGet_scatter` (DB-26): like `readScatter`, and removes the value. */
  getScatter(handle, sizes, name, _template, _group, flags = 0) {
    return this.#scatter("get", handle, sizes, name, flags);
  }

  /** `dbrAddUnits`: not implemented (DB-08). */
  addUnits() {
    return DBR.DBR_ERR_NOTIMPL;
  }

  /** `dbrRemoveUnits`: not implemented (DB-08). */
  removeUnits() {
    return DBR.DBR_ERR_NOTIMPL;
  }

  /** PyDBR's `getErrorCode`. */
  getErrorCode(c) {
    return errorName(c);
  }

  /** PyDBR's `getErrorMessage`. */
  getErrorMessage(c) {
    return errorMessage(c);
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
  return new Dbr(endpoint, timeout);
}

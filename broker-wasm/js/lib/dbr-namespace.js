// The idiomatic `Namespace` handle (DB-01..22) and the one request path every namespace
// call takes. What an answer means (failure codes, the buffer check of DB-13,
// cancel-then-restore of DB-25) is decided by the wasm core (`dbrSettle`), the same rules the
// Rust client follows.

import { DBR, DbrError } from "./dbr-codes.js";

const DEFAULT_TIMEOUT_MS = 5000;
const encoder = new TextEncoder();

/** The error the core's rules chose. */
function errorOf(verdict) {
  return new DbrError(verdict.errno, verdict.context, verdict.size);
}

/**
 * Sends one namespace op. With a signal, an abort asks the gateway to cancel and waits for its
 * answer; a value a get took before the cancel arrived goes back to the head of its queue,
 * then the promise rejects with DBR_ERR_CANCELLED.
 */
export async function nsRequest(ep, args, signal) {
  if (signal?.aborted) throw new DbrError(DBR.DBR_ERR_CANCELLED, "aborted before sending");
  // A shared endpoint's tab (shared.js): the shared worker runs this function on its endpoint.
  if (ep.shared) return ep._nsRequest(args, signal);
  if (!ep._core.isOpen) throw new DbrError(DBR.DBR_ERR_NOCONNECT, "not connected");
  let req;
  try {
    req = ep._requestRaw("namespace", args);
  } catch (e) {
    throw new DbrError(DBR.DBR_ERR_INVALID, e.message);
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
  const verdict = ep._wasm.dbrSettle(args, ev, aborted);
  if (verdict === undefined) return ev.value;
  if (verdict.restore) {
    const back = { op: "restore", ns: args.ns, key: args.key, value: ev.value.value };
    const answer = await ep._requestRaw("namespace", back).promise;
    const failed = ep._wasm.dbrSettle(back, answer, false);
    if (failed !== undefined) throw errorOf(failed);
  }
  throw errorOf(verdict);
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

/** A handle used after `detach` or `delete` (NSINVAL, like a stale handle in DBR). */
function stale(ns) {
  return new DbrError(DBR.DBR_ERR_NSINVAL, `the handle of \`${ns.name}\` was detached or deleted`);
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
    if (!this._valid) return Promise.reject(stale(this));
    return nsRequest(this._ep, args, signal);
  }

  /** Appends `value` to the FIFO of `key` (DB-10). */
  async put(key, value) {
    await this._op({ op: "put", ns: this.name, key, value });
  }

  // A read or get; `wait` as the request takes it (the PyDBR layer passes the core's).
  async _fetch(op, key, options = {}, wait = waitOf(options)) {
    const r = await this._op(
      {
        op,
        ns: this.name,
        key,
        index: options.index ?? 0,
        wait,
        capacity: options.capacity,
        partial: options.partial ?? false,
      },
      options.signal,
    );
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
    if (!to._valid) throw stale(to);
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

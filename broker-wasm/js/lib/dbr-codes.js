// The Data Broker error codes (DB-27), request flags (DB-14), persistence levels (DB-07) and
// `DbrError`. The code table is not written here: it comes from the wasm build (the binding's
// `dbrCodes()`, `dbrErrorName()`, `dbrErrorMessage()`, the same table the gateway and the
// Rust client use) and is installed when the API is built, at import in Node and by `init()`
// in browsers.

/** @type {any} the wasm build whose table is installed */
let core = null;

/** `[number, name, message]` of every Data Broker error code (DB-27), from the wasm core. */
export let DBR_CODES;

/** `DBR_SUCCESS`, `DBR_ERR_TIMEOUT`, ... by number. */
export let DBR;

/**
 * Installs the code table of a wasm build (once: every build carries the same table).
 * @param {any} wasm the wasm-bindgen module
 */
export function installDbrCodes(wasm) {
  if (core) return;
  core = wasm;
  DBR_CODES = wasm.dbrCodes();
  DBR = Object.freeze(Object.fromEntries(DBR_CODES.map(([n, name]) => [name, n])));
}

function installed() {
  if (!core) throw new Error("broker-wasm: call init() before using the Data Broker error codes");
  return core;
}

/** PyDBR's `getErrorCode`: the code's name; `"Unknown Error"` outside 0..22. */
export function getErrorCode(code) {
  return installed().dbrErrorName(code);
}

/** PyDBR's `getErrorMessage` (C `dbrGet_error`): the original's message. */
export function getErrorMessage(code) {
  return installed().dbrErrorMessage(code);
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

// Data Broker namespaces (tuple spaces) over an Endpoint: the idiomatic `Namespace` class
// (dbr-namespace.js), `createDbr`, PyDBR's function names and argument order (DB-28,
// dbr-pydbr.js), and the error codes (DB-27, dbr-codes.js). Every call returns a Promise;
// blocking reads and gets take an AbortSignal, and a cancelled get never consumes a value
// (DB-25). The rules (failure codes, buffer sizes, cancellation, flags, tags, scatter/gather)
// are the wasm core's, shared with the Rust client; these files only wait and convert.

export {
  DBR_CODES,
  DBR,
  getErrorCode,
  getErrorMessage,
  DbrError,
  DBR_FLAGS_NONE,
  DBR_FLAGS_NOWAIT,
  DBR_FLAGS_PARTIAL,
  DBR_FLAGS_MAX,
  DBR_READ_FLAGS_INDEX_SHIFT,
  DBR_PERST_VOLATILE_SIMPLE,
  DBR_PERST_VOLATILE_FT,
  DBR_PERST_TEMPORARY_SIMPLE,
  DBR_PERST_TEMPORARY_FT,
  DBR_PERST_PERMANENT_SIMPLE,
  DBR_PERST_PERMANENT_FT,
  DBR_PERST_MAX,
  DB_TAG_ERROR,
} from "./dbr-codes.js";
export { Namespace } from "./dbr-namespace.js";
export { createDbr } from "./dbr-pydbr.js";

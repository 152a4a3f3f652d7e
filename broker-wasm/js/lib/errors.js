// Errors of the JS API: `BrokerError` carries a Broker error-code name (ZB-22) as `code`.
// Data Broker namespaces have their own `DbrError` (dbr-codes.js).

/** An error with a stable `code`: a Broker error-code name such as `peer_unavailable`. */
export class BrokerError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.name = "BrokerError";
    /** @type {string} */
    this.code = code;
  }
}

/** Any thrown value as a `BrokerError` (errors from the wasm core carry their code). */
export function asBrokerError(e) {
  if (e instanceof BrokerError) return e;
  if (e && typeof e === "object" && typeof e.code === "string") return new BrokerError(e.code, e.message);
  return new BrokerError("unspecified", String(e && e.message ? e.message : e));
}

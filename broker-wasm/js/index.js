// ES module entry for browsers and bundlers. Call `await init()` once (it fetches the .wasm
// next to the module), then use Endpoint, the codec functions and the error-code tables
// (DBR_CODES, DBR, getErrorCode, getErrorMessage come from the wasm build and are set by init).
import initWasm, * as wasm from "./dist/web/broker_wasm.js";
import { createApi } from "./lib/endpoint.js";

export * from "./lib/values.js";
export { BrokerError } from "./lib/endpoint.js";
export * from "./lib/namespace.js";

/** @type {any} */ export let Endpoint;
/** @type {any} */ export let Subscriber;
/** @type {any} */ export let StatusSubscriber;
/** @type {any} */ export let Store;

let ready;

/**
 * Loads the wasm core (once; later calls return the same promise).
 * @param {any} [input] optional module or URL for wasm-bindgen's init
 */
export function init(input) {
  ready ??= initWasm(input === undefined ? undefined : { module_or_path: input }).then(() => {
    const api = createApi(wasm, globalThis.WebSocket, {
      sharedWorkerUrl: new URL("./lib/shared-worker.js", import.meta.url),
    });
    Endpoint = api.Endpoint;
    Subscriber = api.Subscriber;
    StatusSubscriber = api.StatusSubscriber;
    Store = api.Store;
  });
  return ready;
}

export const version = (...a) => wasm.version(...a);
export const encodeValue = (...a) => wasm.encodeValue(...a);
export const decodeValue = (...a) => wasm.decodeValue(...a);
export const valueToString = (...a) => wasm.valueToString(...a);
export const frameFromJson = (...a) => wasm.frameFromJson(...a);
export const frameToJson = (...a) => wasm.frameToJson(...a);
export const zeekDataMessage = (...a) => wasm.zeekDataMessage(...a);
export const parseZeekDataMessage = (...a) => wasm.parseZeekDataMessage(...a);
export const encodeJs = (...a) => wasm.encodeJs(...a);
export const decodeJs = (...a) => wasm.decodeJs(...a);
export const jsToTypedJson = (...a) => wasm.jsToTypedJson(...a);
export const typedJsonToJs = (...a) => wasm.typedJsonToJs(...a);
export const errorCodes = (...a) => wasm.errorCodes(...a);

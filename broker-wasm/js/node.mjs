// ES module entry for Node.js: the Node build of the core (loads the wasm synchronously) and
// the Endpoint API over a WebSocket: the global one where Node has it, else the `ws` package.
import * as wasm from "./dist/node/broker_wasm.js";
import { createApi } from "./lib/endpoint.js";

const WebSocketImpl = globalThis.WebSocket ?? (await import("ws")).default;
const api = createApi(wasm, WebSocketImpl);

export * from "./lib/values.js";
export * from "./lib/namespace.js";
export const { Endpoint, Subscriber, StatusSubscriber, BrokerError, Store } = api;
export const {
  version,
  encodeValue,
  decodeValue,
  valueToString,
  frameFromJson,
  frameToJson,
  zeekDataMessage,
  parseZeekDataMessage,
  encodeJs,
  decodeJs,
  jsToTypedJson,
  typedJsonToJs,
  errorCodes,
} = wasm;

/** Nothing to wait for in Node (the wasm loads synchronously); kept for symmetry with browsers. */
export async function init() {}

// ES module entry for Node.js: re-exports the Node build (CommonJS, loads the wasm
// synchronously, so no init() call is needed).
export * from "./dist/node/broker_wasm.js";

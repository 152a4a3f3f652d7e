// Durable clones (`attachClone(name, { persist: true })`): a clone's state kept in the
// browser's IndexedDB (database `broker-wasm`, object store `clones`, one record per key), so
// a reloaded page shows it before the connection is up. Where IndexedDB is missing (Node) the
// option does nothing.

let db;

/** Whether this runtime can keep clones. */
export const available = () => typeof globalThis.indexedDB?.open === "function";

function open() {
  db ??= new Promise((resolve, reject) => {
    const req = globalThis.indexedDB.open("broker-wasm", 1);
    req.onupgradeneeded = () => req.result.createObjectStore("clones");
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return db;
}

function run(mode, f) {
  return open().then(
    (d) =>
      new Promise((resolve, reject) => {
        const tx = d.transaction("clones", mode);
        const req = f(tx.objectStore("clones"));
        tx.oncomplete = () => resolve(req.result);
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error);
      }),
  );
}

/** The bytes kept under `key`, or undefined. */
export function load(key) {
  return run("readonly", (s) => s.get(key));
}

/** Keeps `bytes` under `key`. */
export function save(key, bytes) {
  return run("readwrite", (s) => s.put(bytes, key));
}

/** Forgets what is kept under `key`. */
export function remove(key) {
  return run("readwrite", (s) => s.delete(key));
}

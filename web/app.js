// Dashboard entry: all protocol logic lives in the npm package served at /pkg/.
import init, { version, encodeValue, decodeValue, valueToString } from "/pkg/dist/web/broker_wasm.js";

const $ = (id) => document.getElementById(id);

async function health() {
  try {
    const res = await fetch("/healthz");
    const h = await res.json();
    $("health").textContent = `${h.status} · gateway ${h.version} · endpoint ${h.endpoint}`;
  } catch (e) {
    $("health").textContent = `unreachable: ${e.message}`;
    $("health").classList.add("error");
  }
}

function inspect() {
  const text = $("value").value;
  for (const id of ["rendered", "size", "roundtrip"]) $(id).classList.remove("error");
  try {
    const bytes = encodeValue(text);
    $("rendered").textContent = valueToString(text);
    $("size").textContent = `${bytes.length} bytes`;
    $("roundtrip").textContent = decodeValue(bytes);
  } catch (e) {
    $("rendered").textContent = `${e.code}: ${e.message}`;
    $("rendered").classList.add("error");
    $("size").textContent = "–";
    $("roundtrip").textContent = "–";
  }
}

await init();
document.title = `Broker gateway (core ${version()})`;
$("inspect").addEventListener("click", inspect);
health();
inspect();

// Test helper: a Node.js client (the npm package in pkg/) that receives COUNT messages under
// /xlang/out from the gateway at URL and publishes each value back unchanged under
// /xlang/back. Prints "ready" once subscribed; exits 0 after COUNT, 1 on a 30 s silence.
import * as broker from "../../pkg/node.mjs";

const [url, count] = [process.argv[2], Number(process.argv[3])];
const ep = new broker.Endpoint();
await ep.peer(url);
const sub = ep.makeSubscriber("/xlang/out");
await ep.flush();
console.log("ready");
let code = 0;
for (let i = 0; i < count; i++) {
  const got = await sub.get({ timeoutMs: 30_000 });
  if (!got) {
    code = 1;
    break;
  }
  const [topic, value] = got;
  ep.publish("/xlang/back" + topic.slice("/xlang/out".length), value);
}
await ep.flush();
await ep.shutdown();
process.exit(code);

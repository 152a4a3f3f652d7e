// pkg/ is a real npm package: packed with `npm pack`, installed into a throwaway project, and
// used from a Node ESM script and from a plain <script type="module"> page.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { testGateway } from "./gateway.mjs";
import { launch, openPage } from "./chromium.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const work = mkdtempSync(path.join(tmpdir(), "broker-pkg-"));
let tarball;
let packed;

before(() => {
  const out = execFileSync("npm", ["pack", "--json", "--pack-destination", work], { cwd: path.join(root, "pkg"), encoding: "utf8" });
  packed = JSON.parse(out)[0];
  tarball = path.join(work, packed.filename);
  writeFileSync(path.join(work, "package.json"), JSON.stringify({ name: "throwaway", private: true, type: "module" }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--no-save", tarball], { cwd: work, stdio: "inherit" });
});
after(() => rmSync(work, { recursive: true, force: true }));

test("the tarball holds exactly the listed files", () => {
  const files = packed.files.map((f) => f.path).sort();
  for (const f of ["package.json", "README.md", "index.js", "index.d.ts", "node.mjs", "lib/endpoint.js", "lib/values.js", "lib/namespace.js",
    "dist/web/broker_wasm.js", "dist/web/broker_wasm_bg.wasm", "dist/node/broker_wasm.js", "dist/node/broker_wasm_bg.wasm"]) {
    assert.ok(files.includes(f), `${f} missing from the package`);
  }
  assert.ok(files.every((f) => !f.includes("node_modules") && !f.endsWith(".tgz")), files.join(", "));
});

test("a Node ESM script imports the installed package and talks to a gateway", async (t) => {
  const g = await testGateway(t);
  const script = `
    import { Endpoint, Count, version } from "broker-wasm";
    const [url] = process.argv.slice(2);
    const a = new Endpoint(), b = new Endpoint();
    await a.peer(url); await b.peer(url);
    const sub = b.makeSubscriber("/pkg");
    await b.flush();
    a.publish("/pkg/test", [new Count(18446744073709551615n), "from the tarball"]);
    const [topic, [n, s]] = await sub.get({ timeoutMs: 10000 });
    console.log(JSON.stringify({ version: version(), topic, n: n.value.toString(), s }));
    await a.shutdown(); await b.shutdown();
    process.exit(0);
  `;
  writeFileSync(path.join(work, "script.mjs"), script);
  const out = execFileSync(process.execPath, ["script.mjs", g.url], { cwd: work, encoding: "utf8", timeout: 30_000 });
  const result = JSON.parse(out.trim().split("\n").pop());
  assert.deepEqual(result, { version: result.version, topic: "/pkg/test", n: "18446744073709551615", s: "from the tarball" });
  assert.match(result.version, /^\d+\.\d+\.\d+/);
});

test("a plain <script type=module> page uses the installed package in Chromium", async (t) => {
  const web = path.join(work, "web");
  mkdirSync(web, { recursive: true });
  writeFileSync(path.join(web, "index.html"), `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>t</title></head><body>
    <p id="state">loading</p>
    <script type="module">
      import { init, Endpoint, Count } from "/pkg/index.js";
      await init();
      const ep = new Endpoint();
      await ep.peer("ws://" + location.host);
      const sub = ep.makeSubscriber("/page");
      const other = new Endpoint();
      await other.peer("ws://" + location.host);
      await ep.flush();
      other.publish("/page", new Count(42n));
      const [, v] = await sub.get({ timeoutMs: 10000 });
      window.result = v.value.toString();
      document.getElementById("state").textContent = "ready";
    </script></body></html>`);
  const g = await testGateway(t, ["--web-dir", web, "--pkg-dir", path.join(work, "node_modules/broker-wasm")]);
  const browser = await launch();
  try {
    const { page, problems } = await openPage(browser, `${g.http}/`);
    assert.equal(await page.evaluate(() => window.result), "42");
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

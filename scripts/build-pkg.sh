#!/usr/bin/env bash
# Builds pkg/, the npm package, from broker-wasm: wasm-bindgen output for browsers
# (dist/web, ES module) and for Node.js (dist/node, CommonJS), TypeScript types, an ESM
# entry for Node, package.json and README. Everything in pkg/ is generated.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

target_dir=$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
# Node.js gets the build tuned for speed, browsers the one tuned for size (profiles in
# Cargo.toml), shrunk further by binaryen's wasm-opt (npm package `binaryen`, pinned in
# package-lock.json; scripts/ensure-tools.sh installs it).
cargo build -p broker-wasm --lib --target wasm32-unknown-unknown --profile wasm-release
# The browser build leaves out JSON frames (feature `json-frames`): browsers speak binary.
cargo build -p broker-wasm --lib --target wasm32-unknown-unknown --profile wasm-web \
  --no-default-features
node_wasm="$target_dir/wasm32-unknown-unknown/wasm-release/broker_wasm.wasm"
web_wasm="$target_dir/wasm32-unknown-unknown/wasm-web/broker_wasm.wasm"

rm -rf pkg/dist
wasm-bindgen --target web --out-dir pkg/dist/web "$web_wasm"
wasm-bindgen --target nodejs --out-dir pkg/dist/node "$node_wasm"
node_modules/.bin/wasm-opt -Oz --enable-reference-types --enable-bulk-memory \
  --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
  --enable-multivalue --strip-debug --strip-producers \
  -o pkg/dist/web/broker_wasm_bg.wasm pkg/dist/web/broker_wasm_bg.wasm
# Make the module type of each folder explicit, whatever the consumer's settings.
echo '{ "type": "module" }' > pkg/dist/web/package.json
echo '{ "type": "commonjs" }' > pkg/dist/node/package.json

rm -rf pkg/lib
mkdir -p pkg/lib
cp broker-wasm/js/lib/*.js pkg/lib/
echo '{ "type": "module" }' > pkg/lib/package.json
cp broker-wasm/js/index.js broker-wasm/js/node.mjs broker-wasm/js/index.d.ts broker-wasm/js/README.md pkg/
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
sed "s/@VERSION@/$version/" broker-wasm/js/package.json > pkg/package.json
# Precompressed copies (brotli at its best quality, gzip -9) of what browsers load, which the
# gateway serves to those that accept them (not part of the npm package's files).
rm -f pkg/*.br pkg/*.gz
node -e '
const fs = require("fs"), path = require("path"), zlib = require("zlib");
const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) =>
  e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]);
for (const f of ["pkg/index.js", ...walk("pkg/lib"), ...walk("pkg/dist/web")]) {
  if (!/\.(wasm|js)$/.test(f)) continue;
  const raw = fs.readFileSync(f);
  fs.writeFileSync(f + ".br", zlib.brotliCompressSync(raw, { params: {
    [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length } }));
  fs.writeFileSync(f + ".gz", zlib.gzipSync(raw, { level: 9 }));
}'
wasm=pkg/dist/web/broker_wasm_bg.wasm
echo "==> pkg/ built (broker-wasm $version; browser wasm $(wc -c < $wasm) bytes, $(wc -c < $wasm.br) brotli, $(wc -c < $wasm.gz) gzip)"

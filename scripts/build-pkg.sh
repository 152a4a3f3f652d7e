#!/usr/bin/env bash
# Builds pkg/, the npm package, from broker-wasm: wasm-bindgen output for browsers
# (dist/web, ES module) and for Node.js (dist/node, CommonJS), TypeScript types, an ESM
# entry for Node, package.json and README. Everything in pkg/ is generated.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

target_dir=$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
cargo build -p broker-wasm --lib --target wasm32-unknown-unknown --profile wasm-release
wasm="$target_dir/wasm32-unknown-unknown/wasm-release/broker_wasm.wasm"

rm -rf pkg/dist
wasm-bindgen --target web --out-dir pkg/dist/web "$wasm"
wasm-bindgen --target nodejs --out-dir pkg/dist/node "$wasm"
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
echo "==> pkg/ built (broker-wasm $version, $(wc -c < pkg/dist/web/broker_wasm_bg.wasm) bytes of wasm)"

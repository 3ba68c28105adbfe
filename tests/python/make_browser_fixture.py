#!/usr/bin/env python3
"""sentence-transformers vectors for the browser demo test (tests/browser_demo.rs).

    train/scripts/fetch_minilm.sh
    PY=$(tests/python/setup_venv.sh)
    $PY tests/python/make_browser_fixture.py [MODEL_DIR] [OUT_FILE]

Writes tests/fixtures/browser_minilm.json: a few short sentences (short because WebGPU in
headless Chromium is SwiftShader, a software rasteriser), a search query, and
SentenceTransformer(MODEL_DIR).encode(..., normalize_embeddings=True) of each, on CPU in
float32 — what all-MiniLM-L6-v2's own modules.json (mean pooling, Normalize) produce.
"""
import json
import platform
import sys
from pathlib import Path

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

ROOT = Path(__file__).resolve().parents[2]
MODEL = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "models" / "all-MiniLM-L6-v2"
OUT = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "tests" / "fixtures" / "browser_minilm.json"

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is strumming a musical instrument.",
    "The stock market fell sharply today.",
    "Share prices dropped at the close of trading.",
    "A cat sleeps on the sofa.",
]
QUERY = "Investors lost money on stocks."


def main():
    torch.manual_seed(0)
    model = SentenceTransformer(str(MODEL), device="cpu")
    vectors = model.encode(SENTENCES + [QUERY], normalize_embeddings=True, convert_to_numpy=True)
    fixture = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "generated_by": "tests/python/make_browser_fixture.py",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
        },
        "sentences": SENTENCES,
        "query": QUERY,
        "embeddings": [[round(float(x), 7) for x in v] for v in vectors[: len(SENTENCES)]],
        "query_embedding": [round(float(x), 7) for x in vectors[-1]],
    }
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(fixture, indent=1) + "\n", encoding="utf-8")
    tmp.replace(OUT)
    print("wrote", OUT, f"({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

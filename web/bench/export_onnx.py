#!/usr/bin/env python3
"""all-MiniLM-L6-v2 as transformers.js loads it, exported locally (no hub download).

    PY=$(tests/python/setup_venv.sh)
    $PY web/bench/export_onnx.py [MODEL_DIR] [OUT_DIR]

OUT_DIR (default models/all-MiniLM-L6-v2-onnx/) gets onnx/model.onnx (fp32, torch.onnx.export
of transformers' BertModel: input_ids, attention_mask, token_type_ids -> last_hidden_state,
dynamic batch and sequence axes) and the tokenizer/config files copied from MODEL_DIR. Checks
that onnxruntime's last_hidden_state equals PyTorch's before writing.
"""
import shutil
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from transformers import AutoModel, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
MODEL = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "models" / "all-MiniLM-L6-v2"
OUT = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "models" / "all-MiniLM-L6-v2-onnx"


class HiddenStates(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state


def main():
    tokenizer = AutoTokenizer.from_pretrained(str(MODEL))
    model = HiddenStates(AutoModel.from_pretrained(str(MODEL), attn_implementation="eager").eval())
    batch = tokenizer(["A short one.", "A somewhat longer sentence, with padding."],
                      padding=True, return_tensors="pt")
    inputs = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    with torch.no_grad():
        want = model(*inputs).numpy()
    (OUT / "onnx").mkdir(parents=True, exist_ok=True)
    tmp = OUT / "onnx" / "model.onnx.tmp"
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        model, inputs, str(tmp), input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"], opset_version=17, dynamo=False,
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                      "last_hidden_state": axes},
    )
    session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = session.run(None, {k: v.numpy() for k, v in zip(
        ["input_ids", "attention_mask", "token_type_ids"], inputs)})[0]
    real = batch["attention_mask"].numpy().astype(bool)  # padding positions are not compared
    diff = float(np.abs(got - want)[real].max())
    assert diff < 1e-4, f"onnxruntime differs from PyTorch by {diff}"
    tmp.replace(OUT / "onnx" / "model.onnx")
    for name in ["config.json", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "vocab.txt"]:
        if (MODEL / name).is_file():
            shutil.copy(MODEL / name, OUT / name)
    size = (OUT / "onnx" / "model.onnx").stat().st_size
    print(f"wrote {OUT}/onnx/model.onnx ({size} bytes; max |onnx - torch| = {diff:.2e})")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference throughput of all-MiniLM-L6-v2 on a 2-core CPU: sentence-transformers and ONNX Runtime.

    PY=$(tests/python/setup_venv.sh train/scripts/bench-requirements.txt)
    $PY train/scripts/bench_reference.py [--model models/all-MiniLM-L6-v2]
        [--data ../shared/data/glue/SST-2/dev.tsv] [--threads 2] [--repeats 3]

Encodes every sentence of the TSV's `sentence` column (SST-2 dev: 872) at batch 32 and batch 1 and
prints sentences/s (median of --repeats timed passes after one warm-up pass). Each pass includes
tokenisation, the encoder, masked mean pooling and L2 normalisation. Both engines sort sentences by
length before batching (sentence-transformers' encode does; the ONNX path copies it).
The ONNX model (encoder + pooling + normalisation) is exported with torch.onnx (dynamo) to a temp dir.
"""
import argparse
import csv
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
p = argparse.ArgumentParser()
p.add_argument("--model", default=str(ROOT / "models" / "all-MiniLM-L6-v2"))
p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "glue" / "SST-2" / "dev.tsv"))
p.add_argument("--threads", type=int, default=2)
p.add_argument("--repeats", type=int, default=3)
args = p.parse_args()
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import sentence_transformers  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

torch.set_num_threads(args.threads)
with open(args.data, newline="", encoding="utf-8") as f:
    sentences = [row["sentence"] for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]

st = SentenceTransformer(args.model, device="cpu").eval()
max_len = st.max_seq_length


class Pooled(torch.nn.Module):
    """The encoder plus masked mean pooling and L2 normalisation, as sentence-transformers does."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                      token_type_ids=token_type_ids).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        v = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(v, p=2.0, dim=1)


tmp = tempfile.TemporaryDirectory()
onnx_path = os.path.join(tmp.name, "minilm.onnx")
bert = transformers.AutoModel.from_pretrained(args.model, attn_implementation="eager").eval()
example = {k: torch.ones(2, 16, dtype=torch.int64) for k in ["input_ids", "attention_mask", "token_type_ids"]}
batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", max=512)
with torch.no_grad():
    torch.onnx.export(Pooled(bert).eval(), (), onnx_path, kwargs=example, input_names=list(example),
                      output_names=["sentence_embedding"], dynamo=True, external_data=False,
                      dynamic_shapes={k: {0: batch, 1: seq} for k in example})
so = ort.SessionOptions()
so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
tok = tokenizers.Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
tok.enable_truncation(max_len)
tok.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest in the batch, not to 128


def encode_st(texts, bs):
    return st.encode(texts, batch_size=bs, normalize_embeddings=True, convert_to_numpy=True)


def encode_ort(texts, bs):
    order = np.argsort([-len(t) for t in texts], kind="stable")  # as sentence-transformers sorts
    out = np.empty((len(texts), 384), np.float32)
    for i in range(0, len(texts), bs):
        idx = order[i:i + bs]
        enc = tok.encode_batch([texts[j] for j in idx])
        ids = np.array([e.ids for e in enc], np.int64)
        feed = {"input_ids": ids, "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
                "token_type_ids": np.zeros_like(ids)}
        out[idx] = sess.run(None, feed)[0]
    return out


ref = encode_st(sentences, 32)
agree = float(np.abs(encode_ort(sentences, 32) - ref).max())


def bench(fn, bs):
    fn(sentences[:64], bs)  # warm-up
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        fn(sentences, bs)
        times.append(time.perf_counter() - t)
    return len(sentences) / statistics.median(times), len(sentences) / min(times)


load = os.getloadavg()
rows = []
for name, fn in [("sentence-transformers (PyTorch)", encode_st), ("ONNX Runtime", encode_ort)]:
    for bs in (32, 1):
        med, best = bench(fn, bs)
        rows.append(f"| {name} | {bs} | {med:.1f} | {best:.1f} | {os.getloadavg()[0]:.2f} |")
        print(rows[-1], flush=True)
load_after = os.getloadavg()

cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
print(f"machine: {cpu or platform.processor()}, {os.cpu_count()} cores; {args.threads} threads; "
      f"load average {load[0]:.2f} before, {load_after[0]:.2f} after")
print(f"versions: python {platform.python_version()}, torch {torch.__version__}, transformers "
      f"{transformers.__version__}, sentence-transformers {sentence_transformers.__version__}, "
      f"onnxruntime {ort.__version__}, tokenizers {tokenizers.__version__}")
print(f"data: {len(sentences)} sentences from {args.data}; median (best) of {args.repeats} passes")
print(f"ONNX Runtime vs sentence-transformers embeddings: max-abs diff {agree:.1e}")
print("| engine | batch | sentences/s (median) | best | load after |")
print("| --- | ---: | ---: | ---: | ---: |")
print("\n".join(rows))

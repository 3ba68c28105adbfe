#!/usr/bin/env python3
"""PyTorch's side of the GPU embedding benchmark (bench_gpu.sh): sentences/s of a BERT sentence
encoder on CUDA, timed as bench_embed times bert-embed: tokenisation, the encoder, masked mean
pooling and L2 normalisation, sentences sorted by length and batched (as sentence-transformers'
encode does), one warm-up pass, then the median and best of --repeats passes.

    bench_embed_gpu.py --model DIR --tsv SST-2/dev.tsv [--batch-sizes 32,128]
                       [--dtypes float32,float16] [--repeats 3] [--save-vectors OUT.npy]

float16 runs the encoder under torch.autocast (what PyTorch users do for inference); the pooled
vectors are float32. --save-vectors writes the float32 run's vectors, in input order, for a
fidelity check against bert-embed's.
"""
import argparse
import csv
import json
import statistics
import time

import numpy as np
import tokenizers
import torch
import transformers

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--tsv", required=True)
p.add_argument("--batch-sizes", default="32,128")
p.add_argument("--dtypes", default="float32,float16")
p.add_argument("--repeats", type=int, default=3)
p.add_argument("--max-length", type=int, default=256)
p.add_argument("--save-vectors")
a = p.parse_args()

with open(a.tsv, newline="", encoding="utf-8") as f:
    sentences = [row["sentence"] for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
device = torch.device("cuda")
model = transformers.AutoModel.from_pretrained(a.model).to(device).eval()
tok = tokenizers.Tokenizer.from_file(f"{a.model}/tokenizer.json")
tok.enable_truncation(a.max_length)
tok.enable_padding(pad_id=0, pad_token="[PAD]")


@torch.inference_mode()
def encode(texts, batch, dtype):
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = torch.empty((len(texts), model.config.hidden_size), dtype=torch.float32, device=device)
    for i in range(0, len(texts), batch):
        idx = order[i:i + batch]
        enc = tok.encode_batch([texts[j] for j in idx])
        ids = torch.tensor([e.ids for e in enc], device=device)
        mask = torch.tensor([e.attention_mask for e in enc], device=device)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            h = model(input_ids=ids, attention_mask=mask,
                      token_type_ids=torch.zeros_like(ids)).last_hidden_state
        m = mask.unsqueeze(-1).float()
        v = (h.float() * m).sum(1) / m.sum(1).clamp(min=1e-9)
        out[torch.from_numpy(idx).to(device)] = torch.nn.functional.normalize(v, dim=1)
    return out.cpu().numpy()


for dtype_name in a.dtypes.split(","):
    dtype = getattr(torch, dtype_name)
    for batch in (int(b) for b in a.batch_sizes.split(",")):
        encode(sentences, batch, dtype)  # warm-up: cuBLAS heuristics, allocator
        rates = []
        for _ in range(a.repeats):
            torch.cuda.synchronize()
            start = time.perf_counter()
            vectors = encode(sentences, batch, dtype)
            rates.append(len(sentences) / (time.perf_counter() - start))
        print(json.dumps({"engine": "pytorch-cuda", "dtype": dtype_name, "batch": batch,
                          "sentences": len(sentences), "median": statistics.median(rates),
                          "best": max(rates), "torch": torch.__version__,
                          "gpu": torch.cuda.get_device_name()}), flush=True)
        if a.save_vectors and dtype_name == "float32":
            np.save(a.save_vectors, vectors)

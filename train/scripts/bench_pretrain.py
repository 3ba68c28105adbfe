#!/usr/bin/env python3
"""PyTorch's side of the pretraining benchmark (BENCHMARKS.md): transformers' BertForPreTraining
trained on the *same* bert-pipeline shards bert-train reads, batch by batch in file order, each
batch padded to its longest row (as bert-train's loader does), MLM + NSP loss, AdamW
(eps 1e-6, weight decay 0.01 except LayerNorm/bias), global-norm clipping at 1.0.

Usage: bench_pretrain.py SHARD_DIR [--layers 4 --hidden 256 --heads 4] [--batch-size 32]
                         [--steps 30 --warmup 10] [--threads N] [--device cuda] [--amp float16]
Prints sequences/s and tokens/s over the steps after the warm-up ones, and the model-FLOPs
utilisation against --peak-tflops (6 FLOPs per encoder parameter per token for forward and
backward, plus 12·layers·hidden·seq² for attention; embeddings and the heads left out;
bench_gpu.sh applies the same count to bert-train's sequences/s).
--amp float16|bfloat16 runs forward and backward under torch.autocast (float16 with a GradScaler:
dynamic loss scaling, as GluonNLP's and bert-train's --dtype float16), float32 master weights.
"""

import argparse
import glob
import json
import os
import sys
import time

import pyarrow as pa
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForPreTraining

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_optim import param_groups  # noqa: E402


def read_rows(shard_dir):
    rows = []
    manifest = json.load(open(os.path.join(shard_dir, "manifest.json")))
    for shard in manifest["shards"]:
        with pa.memory_map(os.path.join(shard_dir, shard["file"])) as source:
            rows.extend(pa.ipc.open_file(source).read_all().to_pylist())
    return manifest, rows


def batches(rows, batch_size, pad_id):
    for start in range(0, len(rows) - batch_size + 1, batch_size):
        chunk = rows[start:start + batch_size]
        seq = max(len(r["input_ids"]) for r in chunk)
        ids = torch.full((batch_size, seq), pad_id, dtype=torch.long)
        seg = torch.zeros((batch_size, seq), dtype=torch.long)
        mask = torch.zeros((batch_size, seq), dtype=torch.long)
        labels = torch.full((batch_size, seq), -100, dtype=torch.long)
        for i, r in enumerate(chunk):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            seg[i, :n] = torch.tensor(r["segment_ids"])
            mask[i, :n] = 1
            labels[i, r["masked_lm_positions"]] = torch.tensor(r["masked_lm_ids"])
        nsp = torch.tensor([r["next_sentence_label"] for r in chunk])
        yield ids, seg, mask, labels, nsp, int(mask.sum())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shards")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", choices=["float32", "float16", "bfloat16"], default="float32")
    p.add_argument("--peak-tflops", type=float, default=989.0,
                   help="the device's dense half-precision peak (H100/H200 SXM: 989)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = torch.device(a.device)
    dtype = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}[a.amp]
    scaler = torch.amp.GradScaler(a.device, enabled=a.amp == "float16")

    manifest, rows = read_rows(a.shards)
    vocab = manifest["vocab"]
    config = BertConfig(vocab_size=vocab["size"], hidden_size=a.hidden,
                        num_hidden_layers=a.layers, num_attention_heads=a.heads,
                        intermediate_size=4 * a.hidden, max_position_embeddings=512)
    model = BertForPreTraining(config).to(device)
    model.train()
    opt = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-4, eps=1e-6)

    seqs = tokens = flops = 0
    start = None

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    data = batches(rows, a.batch_size, vocab.get("pad_id", 0))
    for step in range(1, a.steps + 1):
        if step == a.warmup + 1:
            sync()
            start = time.perf_counter()
            seqs = tokens = flops = 0
        try:
            ids, seg, mask, labels, nsp, n_tokens = next(data)
        except StopIteration:
            data = batches(rows, a.batch_size, vocab.get("pad_id", 0))
            ids, seg, mask, labels, nsp, n_tokens = next(data)
        ids, seg, mask, labels, nsp = (t.to(device, non_blocking=True)
                                       for t in (ids, seg, mask, labels, nsp))
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = model(input_ids=ids, token_type_ids=seg, attention_mask=mask)
            v = out.prediction_logits.shape[-1]
            loss = (F.cross_entropy(out.prediction_logits.reshape(-1, v).float(),
                                    labels.reshape(-1), ignore_index=-100)
                    + F.cross_entropy(out.seq_relationship_logits.float(), nsp))
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        seqs += ids.shape[0]
        tokens += n_tokens
        flops += model_flops(a.layers, a.hidden, ids.shape[0], ids.shape[1])
    sync()
    elapsed = time.perf_counter() - start
    print(json.dumps({"torch": torch.__version__, "device": str(device), "amp": a.amp,
                      "threads": a.threads, "batch": a.batch_size,
                      "steps": a.steps - a.warmup, "seq_per_s": seqs / elapsed,
                      "tok_per_s": tokens / elapsed, "seconds": elapsed,
                      "mfu": flops / elapsed / (a.peak_tflops * 1e12),
                      "loss": loss.detach().item()}))


def model_flops(layers, hidden, batch, seq):
    """Training FLOPs of one batch of the encoder (forward + backward = 3 × forward): 2 FLOPs
    per multiply-add, 12·hidden² weights per layer, and the two attention products."""
    per_token = 6 * 12 * layers * hidden * hidden
    attention = 3 * 2 * 2 * layers * hidden * seq * seq
    return batch * (seq * per_token + attention)


if __name__ == "__main__":
    main()

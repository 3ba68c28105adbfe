#!/usr/bin/env python3
"""Reference losses of BERT pretraining from PyTorch + HuggingFace transformers.

Writes into OUT_DIR (default: train/tests/fixtures/pretrain_reference):
  config.json, model.safetensors  a tiny BertForPreTraining, initialised by transformers
  reference.json                  a batch, the learning rates, and the MLM / NSP losses and
                                  gradient norms of 10 steps on it, with AdamW (PyTorch's),
                                  BERTAdam (GluonNLP's: AdamW without bias correction) and
                                  LAMB (GluonNLP's, written out below: torch has none)

train/tests/pretrain_reference.rs loads the same weights into bert-train, runs its own training
step (train_step: loss, backward, global-norm clipping at 1.0, the optimizer with weight decay
0.01 except LayerNorm and biases, eps 1e-6) and compares at 1e-3 relative.

Usage: python train/scripts/make_pretrain_reference.py [OUT_DIR]
(the interpreter printed by tests/python/setup_venv.sh has torch and transformers).
"""

import copy
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForPreTraining

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_optim import BertAdam, Lamb, param_groups  # noqa: E402

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else
           Path(__file__).resolve().parents[1] / "tests/fixtures/pretrain_reference")
STEPS = 10
BASE_LR = 1e-3
WARMUP_RATIO = 0.1
WEIGHT_DECAY = 0.01
EPSILON = 1e-6
MAX_GRAD_NORM = 1.0
MASK_ID = 4
PAD_ID = 0


# LAMB's steps are relative to each tensor's norm: at AdamW's rate 10 steps barely move the loss,
# and a comparison of two losses that hardly changed would prove little.
LAMB_LR = 2e-2


def gluonnlp_lr(step: int, base_lr: float = BASE_LR) -> float:
    """Linear warmup then linear decay, steps counted from 1 (bert-train's LinearSchedule)."""
    warmup = int(STEPS * WARMUP_RATIO)
    if step < warmup or warmup >= STEPS:
        return base_lr * min(step / max(warmup, 1), 1.0)
    return max(base_lr * (1.0 - (step - warmup) / (STEPS - warmup)), 0.0)


def make_batch(vocab_size: int, gen: torch.Generator):
    """Four rows of different lengths (so padding is exercised), 2-3 masked tokens each."""
    rows = []
    for length, n_masked, nsp in [(16, 3, 0), (13, 3, 1), (10, 2, 1), (16, 3, 0)]:
        ids = torch.randint(5, vocab_size, (length,), generator=gen).tolist()
        segments = [0] * (length // 2) + [1] * (length - length // 2)
        positions = sorted(torch.randperm(length - 2, generator=gen)[:n_masked].add(1).tolist())
        masked_ids = [ids[p] for p in positions]
        for p in positions:
            ids[p] = MASK_ID
        rows.append({"input_ids": ids, "segment_ids": segments, "masked_positions": positions,
                     "masked_ids": masked_ids, "next_sentence_label": nsp})
    return rows


def tensors(rows):
    seq = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), seq), PAD_ID, dtype=torch.long)
    seg = torch.zeros((len(rows), seq), dtype=torch.long)
    mask = torch.zeros((len(rows), seq), dtype=torch.long)
    labels = torch.full((len(rows), seq), -100, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        seg[i, :n] = torch.tensor(r["segment_ids"])
        mask[i, :n] = 1
        for p, t in zip(r["masked_positions"], r["masked_ids"]):
            labels[i, p] = t
    nsp = torch.tensor([r["next_sentence_label"] for r in rows])
    return ids, seg, mask, labels, nsp


def losses(model, ids, seg, mask, labels, nsp):
    out = model(input_ids=ids, token_type_ids=seg, attention_mask=mask)
    vocab = out.prediction_logits.shape[-1]
    mlm = F.cross_entropy(out.prediction_logits.reshape(-1, vocab), labels.reshape(-1),
                          ignore_index=-100)
    return mlm, F.cross_entropy(out.seq_relationship_logits, nsp)


def train(model, optimizer_class, batch, base_lr=BASE_LR):
    """10 steps; the losses before each and after the last, the gradient norms, the rates."""
    optimizer = optimizer_class(param_groups(model, WEIGHT_DECAY),
                                lr=BASE_LR, betas=(0.9, 0.999), eps=EPSILON)
    model.train()
    steps, lrs = [], []
    for step in range(1, STEPS + 1):
        mlm, nsp = losses(model, *batch)
        optimizer.zero_grad()
        (mlm + nsp).backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        lr = gluonnlp_lr(step, base_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        steps.append({"mlm_loss": mlm.item(), "nsp_loss": nsp.item(), "grad_norm": norm.item()})
        lrs.append(lr)
    with torch.no_grad():
        mlm, nsp = losses(model, *batch)
    steps.append({"mlm_loss": mlm.item(), "nsp_loss": nsp.item()})
    return {"base_lr": base_lr, "lrs": lrs, "steps": steps}


def main():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=512, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=32,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                        attn_implementation="eager")
    model = BertForPreTraining(config)
    OUT.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(OUT, safe_serialization=True)

    rows = make_batch(config.vocab_size, torch.Generator().manual_seed(1))
    batch = tensors(rows)

    runs = {"adamw": train(copy.deepcopy(model), torch.optim.AdamW, batch),
            "bertadam": train(copy.deepcopy(model), BertAdam, batch),
            "lamb": train(copy.deepcopy(model), Lamb, batch, LAMB_LR)}

    reference = {
        "made_by": "train/scripts/make_pretrain_reference.py",
        "torch": torch.__version__,
        "optimizer": {"betas": [0.9, 0.999], "eps": EPSILON,
                      "weight_decay": WEIGHT_DECAY, "max_grad_norm": MAX_GRAD_NORM,
                      "base_lr": BASE_LR, "warmup_ratio": WARMUP_RATIO, "num_steps": STEPS},
        "pad_id": PAD_ID,
        "rows": rows,
        **runs,
    }
    (OUT / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    for name, run in runs.items():
        print(f"{name}: {run['steps'][0]} -> {run['steps'][-1]}")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

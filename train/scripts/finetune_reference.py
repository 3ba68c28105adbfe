#!/usr/bin/env python3
"""Fine-tune a HuggingFace BERT on a GLUE task with PyTorch, the way `bert-train
finetune-classifier` does, as the accuracy reference of BENCHMARKS.md.

    finetune_reference.py --task RTE --data-dir ../shared/data/glue/RTE \
        --model models/all-MiniLM-L6-v2 --seed 2 --output rte-seed2.json

Same recipe as ours (and GluonNLP's finetune_classifier.py): pairs tokenized by the model's
tokenizer, truncated to --max-len with longest_first; each epoch a seeded shuffle, batches
padded to their own longest row; cross-entropy (MSE for STS-B) on the pooled [CLS] through
transformers' AutoModelForSequenceClassification (its own head initialisation); BERTAdam
(AdamW without bias correction, written out in reference_optim.py) or torch's AdamW, weight decay 0.01 except
LayerNorm and biases; gradients clipped to global norm 1; the learning rate warms up linearly
over int(warmup_ratio * steps) steps and decays linearly to 0 (GluonNLP's schedule, which is
ours: step k (1-based) gets lr * k / warmup during warmup). Dev metrics after every epoch; the
JSON output holds them, the best epoch and the wall time (training + dev evaluation).
Random streams differ from ours (torch's generator vs burn's), so compare means over seeds.
"""
import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_optim import add_training_args, linear_schedule, make_optimizer, param_groups  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# (text_a column, text_b column or None, label column, labels or None for regression,
#  has header); as train/src/tasks/glue.rs.
TASKS = {
    "RTE": ("sentence1", "sentence2", "label", ["entailment", "not_entailment"], True),
    "MRPC": ("#1 String", "#2 String", "Quality", ["0", "1"], True),
    "SST": ("sentence", None, "label", ["0", "1"], True),
    "QNLI": ("question", "sentence", "label", ["entailment", "not_entailment"], True),
    "WNLI": ("sentence1", "sentence2", "label", ["0", "1"], True),
    "STS-B": ("sentence1", "sentence2", "score", None, True),
    "COLA": (3, None, 1, ["0", "1"], False),
}


def read_tsv(path, task):
    a, b, label, labels, header = TASKS[task]
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    rows = []
    names = None
    if header:
        names = lines[0].lstrip("\ufeff").split("\t")
        lines = lines[1:]
    col = (lambda c: c) if not header else (lambda c: names.index(c))
    ia, ib, il = col(a), (col(b) if b is not None else None), col(label)
    for line in lines:
        if not line.strip():
            continue
        fields = line.split("\t")
        y = float(fields[il]) if labels is None else labels.index(fields[il].strip())
        rows.append((fields[ia], fields[ib] if ib is not None else None, y))
    return rows


def metrics(task, preds, gold):
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import f1_score, matthews_corrcoef
    if task == "STS-B":
        return {"pearson": float(pearsonr(preds, gold)[0]), "spearman": float(spearmanr(preds, gold)[0])}
    out = {}
    if task == "MRPC":
        out["f1"] = float(f1_score(gold, preds))
    if task == "COLA":
        out["mcc"] = float(matthews_corrcoef(gold, preds))
    out["accuracy"] = float(sum(int(p == g) for p, g in zip(preds, gold)) / len(gold))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True, type=str.upper)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--model", required=True)
    add_training_args(p, lr=2e-5)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--dev-batch-size", type=int, default=32)
    p.add_argument("--max-train-examples", type=int)
    p.add_argument("--output", required=True)
    a = p.parse_args()
    if a.task not in TASKS:
        p.error(f"unknown task {a.task}; known: {', '.join(TASKS)}")

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    labels = TASKS[a.task][3]
    num_labels = 1 if labels is None else len(labels)
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForSequenceClassification.from_pretrained(a.model, num_labels=num_labels)
    model.to(a.device)

    def encode(rows):
        texts_a = [r[0] for r in rows]
        texts_b = [r[1] for r in rows] if rows[0][1] is not None else None
        enc = tokenizer(texts_a, texts_b, truncation=True, max_length=a.max_len)
        return [{k: enc[k][i] for k in ("input_ids", "token_type_ids", "attention_mask")}
                for i in range(len(rows))], [r[2] for r in rows]

    train_rows = read_tsv(os.path.join(a.data_dir, "train.tsv"), a.task)
    if a.max_train_examples:
        train_rows = train_rows[:a.max_train_examples]
    dev_rows = read_tsv(os.path.join(a.data_dir, "dev.tsv"), a.task)
    train_x, train_y = encode(train_rows)
    dev_x, dev_y = encode(dev_rows)

    groups = param_groups(model, a.weight_decay)
    optimizer = make_optimizer(a.optimizer, groups, a.lr, a.epsilon)

    steps_per_epoch = math.ceil(len(train_x) / a.batch_size)
    num_steps = steps_per_epoch * a.epochs
    lr_at, warmup = linear_schedule(a.lr, a.warmup_ratio, num_steps)
    loss_fn = torch.nn.MSELoss() if num_labels == 1 else torch.nn.CrossEntropyLoss()

    def batch(xs):
        return tokenizer.pad(xs, return_tensors="pt").to(a.device)

    def evaluate():
        model.eval()
        order = sorted(range(len(dev_x)), key=lambda i: len(dev_x[i]["input_ids"]))
        out = [None] * len(dev_x)
        with torch.no_grad():
            for s in range(0, len(order), a.dev_batch_size):
                idx = order[s:s + a.dev_batch_size]
                logits = model(**batch([dev_x[i] for i in idx])).logits
                for i, row in zip(idx, logits):
                    out[i] = row[0].item() if num_labels == 1 else int(row.argmax().item())
        model.train()
        return metrics(a.task, out, dev_y)

    print(f"{a.task}: {len(train_x)} train, {len(dev_x)} dev, {num_steps} steps, {warmup} warmup",
          file=sys.stderr)
    started = time.time()
    step = 0
    epochs = []
    model.train()
    for epoch in range(1, a.epochs + 1):
        gen = torch.Generator().manual_seed(a.seed * 1000 + epoch)
        order = torch.randperm(len(train_x), generator=gen).tolist()
        total = 0.0
        for s in range(0, len(order), a.batch_size):
            idx = order[s:s + a.batch_size]
            inputs = batch([train_x[i] for i in idx])
            target = torch.tensor([train_y[i] for i in idx],
                                  dtype=torch.float32 if num_labels == 1 else torch.long,
                                  device=a.device)
            logits = model(**inputs).logits
            loss = loss_fn(logits.squeeze(-1), target) if num_labels == 1 else loss_fn(logits, target)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            step += 1
            for g in optimizer.param_groups:
                g["lr"] = lr_at(step)
            optimizer.step()
            total += loss.item()
        dev = evaluate()
        epochs.append({"epoch": epoch, "train_loss": total / steps_per_epoch, "dev": dev,
                       "seconds": time.time() - started})
        print(f"epoch {epoch}: train loss {total / steps_per_epoch:.4f}; dev {dev} "
              f"({time.time() - started:.0f} s)", file=sys.stderr)
    primary = "pearson" if a.task == "STS-B" else ("f1" if a.task == "MRPC" else
                                                   ("mcc" if a.task == "COLA" else "accuracy"))
    best = max(epochs, key=lambda e: e["dev"][primary])
    result = {"task": a.task, "seed": a.seed, "flags": vars(a), "epochs": epochs,
              "best_epoch": best["epoch"], "best_dev": best["dev"], "primary": primary,
              "wall_seconds": time.time() - started, "torch": torch.__version__}
    with open(a.output, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result["best_dev"]))


if __name__ == "__main__":
    main()

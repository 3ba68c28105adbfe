#!/usr/bin/env python3
"""Fine-tune a HuggingFace BERT on SQuAD v1.1 with PyTorch, the way `bert-train finetune-squad`
does, as the SQuAD reference of BENCHMARKS.md.

    finetune_squad_reference.py --model models/all-MiniLM-L6-v2 \
        --train-file dev-v1.1.json --train-articles 0..38 \
        --predict-file dev-v1.1.json --predict-articles 38..48 \
        --output-dir out/squad-ref --seed 2

Same recipe as ours (train/src/finetune/squad/, itself Google's run_squad.py): the question cut to
--max-query-length tokens; the context, tokenized once by the model's tokenizer, in windows of
max_seq_length - query - 3 tokens starting every --doc-stride tokens, each
[CLS] question [SEP] window [SEP]; run_squad.py's "max context" flag per token; the answer's
first and last token (the first token ending after the answer starts, the last starting before
it ends; [CLS] when outside the window). Windows are built here, not by the tokenizer's
return_overflowing_tokens (its stride is an overlap and its last window differs), so they are
ours token for token (--dump-features writes them to check). Each epoch the windows in the same
seeded order as bert-train (its SplitMix64 shuffle, written out below), batches padded to their
longest row; loss the mean of the start and end cross-entropies (transformers'
AutoModelForQuestionAnswering, its own head initialisation from torch.manual_seed(seed));
BERTAdam, weight decay 0.01 except LayerNorm and biases, gradients clipped to norm 1, linear
warmup and decay (reference_optim.py, shared with finetune_reference.py). Predictions: the
n-best start and end positions of every window, spans inside the context, starting where the
window gives the token its most context, at most --max-answer-length tokens, best by start +
end logit; the answer is the context text under the token offsets. predictions.json is scored
with the official SQuAD v1.1 evaluation (its code below) on the predicted articles; the JSON
output (--output-dir/result.json) holds EM, F1, wall times and the flags.
Dropout and head initialisation use torch's generator, not burn's: compare means over seeds.
"""
import argparse
import collections
import json
import math
import os
import re
import string
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_optim import add_training_args, linear_schedule, make_optimizer, param_groups  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MASK64 = (1 << 64) - 1


def mix(seed, a, b):
    """bert-train's finetune::features::mix (SplitMix64's finaliser)."""
    rot = ((b << 32) | (b >> 32)) & MASK64
    z = seed ^ ((a * 0x9E3779B97F4A7C15) & MASK64) ^ rot
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def epoch_order(n, seed, epoch):
    """bert-train's finetune::features::epoch_order: Fisher-Yates driven by SplitMix64."""
    state = mix(seed, epoch, 0x5EED)
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        j = mix(state, 0, 0) % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def parse_range(spec):
    if spec is None:
        return None
    a, b = spec.split("..")
    return int(a), int(b)


def read_squad(path, articles, training):
    """Questions of articles START..END: (qid, question, context, answer char span or None).
    Training skips a question whose first answer does not match its offset, as bert-train."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)["data"]
    lo, hi = articles or (0, len(data))
    examples, bad = [], 0
    for article in data[lo:hi]:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                answer = None
                if qa.get("answers"):
                    a = qa["answers"][0]
                    s = a["answer_start"]
                    if context[s : s + len(a["text"])] == a["text"]:
                        answer = (s, s + len(a["text"]))
                    else:
                        bad += 1
                        if training:
                            continue
                examples.append((qa["id"], qa["question"], context, answer))
    return examples, bad, data[lo:hi]


def max_context_flags(spans):
    """run_squad.py's _check_is_max_context for every position of every window."""
    flags = []
    for i, (start, length) in enumerate(spans):
        row = []
        for pos in range(start, start + length):
            best, best_score = None, -math.inf
            for j, (s, n) in enumerate(spans):
                if s <= pos < s + n:
                    score = min(pos - s, s + n - 1 - pos) + 0.01 * n
                    if score > best_score:  # the first window wins ties
                        best, best_score = j, score
            row.append(best == i)
        flags.append(row)
    return flags


def squad_features(tokenizer, examples, max_seq_length, doc_stride, max_query_length):
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    questions = tokenizer([e[1] for e in examples], add_special_tokens=False)["input_ids"]
    contexts = {}
    out = []
    for index, ((_, _, context, answer), query) in enumerate(zip(examples, questions)):
        query = query[:max_query_length]
        if context not in contexts:
            enc = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
            contexts[context] = (enc["input_ids"], enc["offset_mapping"])
        doc_ids, doc_offsets = contexts[context]
        if not doc_ids:
            continue
        answer_tokens = None
        if answer is not None:
            a, b = answer
            first = next((k for k, (_, e) in enumerate(doc_offsets) if e > a), None)
            last = next((k for k in range(len(doc_offsets) - 1, -1, -1) if doc_offsets[k][0] < b), None)
            if first is not None and last is not None and first <= last:
                answer_tokens = (first, last)
        window = max_seq_length - len(query) - 3
        spans, start = [], 0
        while True:
            length = min(len(doc_ids) - start, window)
            spans.append((start, length))
            if start + length == len(doc_ids):
                break
            start += min(length, doc_stride)
        for (start, length), flags in zip(spans, max_context_flags(spans)):
            ids = [cls] + query + [sep]
            offset = len(ids)
            ids += doc_ids[start : start + length] + [sep]
            types = [0] * offset + [1] * (length + 1)
            offsets = [None] * offset + [tuple(o) for o in doc_offsets[start : start + length]] + [None]
            max_context = [False] * offset + flags + [False]
            sp, ep = 0, 0
            if answer_tokens and answer_tokens[0] >= start and answer_tokens[1] < start + length:
                sp, ep = offset + answer_tokens[0] - start, offset + answer_tokens[1] - start
            out.append(
                dict(example=index, input_ids=ids, token_type_ids=types, offsets=offsets,
                     max_context=max_context, start_position=sp, end_position=ep)
            )
    return out


def batch(features, torch, device):
    seq = max(len(f["input_ids"]) for f in features)
    ids = torch.zeros(len(features), seq, dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for r, f in enumerate(features):
        n = len(f["input_ids"])
        ids[r, :n] = torch.tensor(f["input_ids"])
        types[r, :n] = torch.tensor(f["token_type_ids"])
        mask[r, :n] = 1
    return dict(input_ids=ids.to(device), token_type_ids=types.to(device), attention_mask=mask.to(device))


def best_answers(examples, features, logits, n_best_size, max_answer_length):
    """bert-train's postprocess::best_answers for SQuAD 1.1: qid -> answer text."""
    by_example = collections.defaultdict(list)
    for i, f in enumerate(features):
        by_example[f["example"]].append(i)

    def top(xs):  # stable, as Rust's sort_by
        return sorted(range(len(xs)), key=lambda k: -xs[k])[:n_best_size]

    predictions = collections.OrderedDict()
    for index, (qid, _, context, _) in enumerate(examples):
        prelim = []
        for i in by_example[index]:
            f, (start, end) = features[i], logits[i]
            for s in top(start):
                for e in top(end):
                    a, b = f["offsets"][s], f["offsets"][e]
                    if a is None or b is None or e < s or e - s + 1 > max_answer_length:
                        continue
                    if not f["max_context"][s]:
                        continue
                    prelim.append((start[s] + end[e], a[0], b[1]))
        prelim.sort(key=lambda p: -p[0])
        seen, best = set(), None
        for _, a, b in prelim:
            if len(seen) >= n_best_size:
                break
            text = context[a:b]
            if text in seen:
                continue
            seen.add(text)
            if best is None:
                best = text
        predictions[qid] = best or ""
    return predictions


# The official SQuAD v1.1 evaluation (evaluate-v1.1.py), unchanged in substance.
def normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def exact_match_score(prediction, ground_truth):
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    return max(metric_fn(prediction, gt) for gt in ground_truths)


def evaluate(dataset, predictions):
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    print("Unanswered question " + qa["id"] + " will receive score 0.", file=sys.stderr)
                    continue
                ground_truths = [x["text"] for x in qa["answers"]]
                prediction = predictions[qa["id"]]
                exact_match += metric_max_over_ground_truths(exact_match_score, prediction, ground_truths)
                f1 += metric_max_over_ground_truths(f1_score, prediction, ground_truths)
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--train-file")
    p.add_argument("--train-articles")
    p.add_argument("--predict-file", required=True)
    p.add_argument("--predict-articles")
    p.add_argument("--max-seq-length", type=int, default=384)
    p.add_argument("--doc-stride", type=int, default=128)
    p.add_argument("--max-query-length", type=int, default=64)
    p.add_argument("--n-best-size", type=int, default=20)
    p.add_argument("--max-answer-length", type=int, default=30)
    add_training_args(p, lr=5e-5)
    p.add_argument("--test-batch-size", type=int, default=24)
    p.add_argument("--log-interval", type=int, default=50)
    p.add_argument("--output-dir", default="./output_dir")
    p.add_argument("--dump-features", metavar="PATH",
                   help="write the prediction windows (ids, types, start/end) as JSON lines and stop")
    a = p.parse_args()
    if a.max_seq_length < a.max_query_length + 4:
        p.error("--max-seq-length leaves no room for context")

    launched = time.time()
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    torch.set_num_threads(a.threads)
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    window = (a.max_seq_length, a.doc_stride, a.max_query_length)
    predict_examples, _, predict_articles = read_squad(a.predict_file, parse_range(a.predict_articles), False)
    predict_features = squad_features(tokenizer, predict_examples, *window)
    if a.dump_features:
        with open(a.dump_features, "w") as f:
            for x in predict_features:
                keys = ("example", "input_ids", "token_type_ids", "start_position", "end_position")
                f.write(json.dumps({k: x[k] for k in keys}) + "\n")
        print(f"{len(predict_features)} windows of {len(predict_examples)} questions", file=sys.stderr)
        return

    torch.manual_seed(a.seed)
    model = AutoModelForQuestionAnswering.from_pretrained(a.model)
    model.to(a.device)
    os.makedirs(a.output_dir, exist_ok=True)
    started = time.time()
    epochs = []
    if a.train_file:
        examples, bad, _ = read_squad(a.train_file, parse_range(a.train_articles), True)
        if bad:
            print(f"skipped {bad} training question(s) whose answer does not match its offset", file=sys.stderr)
        features = squad_features(tokenizer, examples, *window)
        n = len(features)
        steps_per_epoch = math.ceil(n / a.batch_size)
        num_steps = steps_per_epoch * a.epochs
        lr_at, warmup = linear_schedule(a.lr, a.warmup_ratio, num_steps)
        optimizer = make_optimizer(a.optimizer, param_groups(model, a.weight_decay), a.lr, a.epsilon)
        print(f"fine-tuning on {len(examples)} questions ({n} windows), {a.epochs} epochs of "
              f"{steps_per_epoch} steps, {warmup} warmup", file=sys.stderr)
        started = time.time()
        step = 0
        model.train()
        for epoch in range(1, a.epochs + 1):
            order = epoch_order(n, a.seed, epoch)
            total = 0.0
            for b, s in enumerate(range(0, n, a.batch_size)):
                rows = [features[i] for i in order[s : s + a.batch_size]]
                inputs = batch(rows, torch, a.device)
                out = model(**inputs,
                            start_positions=torch.tensor([f["start_position"] for f in rows], device=a.device),
                            end_positions=torch.tensor([f["end_position"] for f in rows], device=a.device))
                optimizer.zero_grad()
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                step += 1
                for g in optimizer.param_groups:
                    g["lr"] = lr_at(step)
                optimizer.step()
                total += out.loss.item()
                if step % a.log_interval == 0:
                    print(f"[epoch {epoch} step {b + 1}/{steps_per_epoch}] loss {out.loss.item():.4f} "
                          f"lr {lr_at(step):.3e} ({time.time() - started:.0f} s)", file=sys.stderr)
            epochs.append({"epoch": epoch, "train_loss": total / steps_per_epoch,
                           "seconds": time.time() - started})
            print(f"epoch {epoch}: train loss {total / steps_per_epoch:.4f} ({time.time() - started:.0f} s)",
                  file=sys.stderr)
    train_seconds = time.time() - started

    model.eval()
    logits = []
    with torch.no_grad():
        for s in range(0, len(predict_features), a.test_batch_size):
            chunk = predict_features[s : s + a.test_batch_size]
            out = model(**batch(chunk, torch, a.device))
            for r, f in enumerate(chunk):
                k = len(f["input_ids"])
                logits.append((out.start_logits[r, :k].tolist(), out.end_logits[r, :k].tolist()))
    predictions = best_answers(predict_examples, predict_features, logits, a.n_best_size, a.max_answer_length)
    with open(os.path.join(a.output_dir, "predictions.json"), "w", encoding="utf-8") as f:
        json.dump(predictions, f)
    scores = evaluate(predict_articles, predictions)
    result = {"exact_match": scores["exact_match"], "f1": scores["f1"], "seed": a.seed,
              "questions": len(predict_examples), "windows": len(predict_features),
              "epochs": epochs, "train_seconds": train_seconds,
              "wall_seconds": time.time() - started, "total_seconds": time.time() - launched,
              "flags": vars(a), "torch": torch.__version__}
    with open(os.path.join(a.output_dir, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(scores))


if __name__ == "__main__":
    main()

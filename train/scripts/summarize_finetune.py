#!/usr/bin/env python3
"""Table of a bench_finetune_gpu.sh output directory: per task and seed, each tool's best dev
score (the epoch each tool keeps), its per-epoch scores, its wall time and exit code; then the
mean over seeds that both tools finished.

    summarize_finetune.py OUT_DIR [--json PATH]
"""
import argparse
import glob
import json
import os
import re
import statistics


def wall(out, name):
    """(exit code, seconds) of a run, or None when it did not run."""
    try:
        rc, ms = open(os.path.join(out, name + ".time")).read().split()
        return int(rc), int(ms) / 1000
    except (OSError, ValueError):
        return None


def ours_glue(out, task, seed):
    path = os.path.join(out, f"ours-{task}-{seed}", "metrics.jsonl")
    if not os.path.exists(path):
        return None
    rows = [json.loads(line) for line in open(path) if line.strip()]
    rows = [r for r in rows if "epoch" in r]
    # dev: [{"split": ..., "metrics": [[name, value], ...]}]; the first metric is the primary one.
    epochs = [{name: value * 100 for name, value in r["dev"][0]["metrics"]} for r in rows]
    return finished(epochs)


def torch_glue(out, task, seed):
    path = os.path.join(out, f"torch-{task}-{seed}.json")
    if not os.path.exists(path):
        return None
    result = json.load(open(path))
    primary = result["primary"]
    epochs = [{primary: e["dev"][primary] * 100,
               **{k: v * 100 for k, v in e["dev"].items() if k != primary}}
              for e in result["epochs"]]
    return finished(epochs)


def finished(epochs):
    if not epochs:
        return None
    primary = next(iter(epochs[0]))
    best = max(epochs, key=lambda e: e[primary])  # first best, as both tools keep it
    return {"primary": primary, "best": best, "epochs": epochs}


def squad(out, tool, seed):
    if tool == "torch":
        path = os.path.join(out, f"torch-SQuAD-{seed}", "result.json")
        if not os.path.exists(path):
            return None
        r = json.load(open(path))
        return {"primary": "f1", "best": {"f1": r["f1"], "exact_match": r["exact_match"]}, "epochs": []}
    log = os.path.join(out, f"ours-SQuAD-{seed}.log")
    if not os.path.exists(log):
        return None
    scores = [json.loads(m) for m in re.findall(r'^(\{"exact_match".*\})$', open(log).read(), re.M)]
    if not scores:
        return None
    return {"primary": "f1", "best": {"f1": scores[-1]["f1"], "exact_match": scores[-1]["exact_match"]},
            "epochs": []}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--json")
    a = p.parse_args()
    names = [os.path.basename(f)[:-5] for f in glob.glob(os.path.join(a.out, "*.time"))]
    runs = sorted({tuple(n.split("-", 1)[1].rsplit("-", 1)) for n in names})
    table = []
    for task, seed in runs:
        row = {"task": task, "seed": int(seed)}
        for tool in ("ours", "torch"):
            if task == "SQuAD":
                score = squad(a.out, tool, seed)
            else:
                score = (ours_glue if tool == "ours" else torch_glue)(a.out, task, seed)
            row[tool] = {"score": score, "run": wall(a.out, f"{tool}-{task}-{seed}")}
        table.append(row)

    def fmt(cell):
        score, run = cell["score"], cell["run"]
        text = "—" if score is None else " ".join(f"{k} {v:.2f}" for k, v in score["best"].items())
        if score and len(score["epochs"]) > 1:
            text += " (epochs: " + " / ".join(f"{e[score['primary']]:.2f}" for e in score["epochs"]) + ")"
        if run:
            text += f" [{run[1]:.0f} s" + ("" if run[0] == 0 else f", exit {run[0]}") + "]"
        return text

    print("| task | seed | bert-train | PyTorch |\n| --- | ---: | --- | --- |")
    for row in table:
        print(f"| {row['task']} | {row['seed']} | {fmt(row['ours'])} | {fmt(row['torch'])} |")
    print()
    for task in sorted({r["task"] for r in table}):
        both = [r for r in table if r["task"] == task and r["ours"]["score"] and r["torch"]["score"]]
        if not both:
            continue
        means = {}
        for tool in ("ours", "torch"):
            keys = both[0][tool]["score"]["best"].keys()
            means[tool] = {k: statistics.mean(r[tool]["score"]["best"][k] for r in both) for k in keys}
        seeds = ", ".join(str(r["seed"]) for r in both)
        print(f"{task}, mean over seeds {seeds}: bert-train "
              + ", ".join(f"{k} {v:.2f}" for k, v in means["ours"].items())
              + "; PyTorch " + ", ".join(f"{k} {v:.2f}" for k, v in means["torch"].items()))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(table, f, indent=1)


if __name__ == "__main__":
    main()

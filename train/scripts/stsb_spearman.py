#!/usr/bin/env python3
"""Sentence-embedding quality on STS-B: Spearman correlation (x100) between the gold scores and
the cosine of each pair's two sentence vectors, as sentence-transformers reports it.

    stsb_spearman.py sentences DEV.tsv OUT.txt      # sentence1 then sentence2, one per line
    bert-embed --model DIR --file OUT.txt --format npy --output vectors.npy
    stsb_spearman.py score DEV.tsv vectors.npy [more.npy ...]

`score` prints one line per vectors file; with two or more it also compares them with the
first (lowest and mean cosine between the same sentence's vectors).
"""
import csv
import sys

import numpy as np


def read_pairs(path):
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(r["sentence1"], r["sentence2"], float(r["score"])) for r in rows]


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("sentences", "score"):
        sys.exit(__doc__)
    pairs = read_pairs(sys.argv[2])
    if sys.argv[1] == "sentences":
        with open(sys.argv[3], "w", encoding="utf-8") as f:
            for column in (0, 1):
                for p in pairs:
                    f.write(p[column].replace("\n", " ") + "\n")
        return
    from scipy.stats import spearmanr

    n = len(pairs)
    gold = [p[2] for p in pairs]
    first = None
    for path in sys.argv[3:]:
        v = np.load(path).astype(np.float64)
        if v.shape[0] != 2 * n:
            sys.exit(f"{path}: {v.shape[0]} vectors, expected {2 * n} (sentence1 then sentence2)")
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        cosines = (v[:n] * v[n:]).sum(axis=1)
        line = f"{path}: Spearman x100 {spearmanr(cosines, gold)[0] * 100:.3f}"
        if first is None:
            first = v
        else:
            same = (v * first).sum(axis=1)
            line += f"; against {sys.argv[3]}: cosine lowest {same.min():.6f}, mean {same.mean():.7f}"
        print(line)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Checks a bert-pipeline shard directory with independent tools: pyarrow reads the
shards, HuggingFace's Python `tokenizers` re-tokenizes the corpus.

usage: check_shards.py SHARD_DIR VOCAB_TXT CORPUS_FILE... [--lowercase]

Exit 0 when every check passes, 1 with the failed checks listed.
"""
import json
import os
import sys

import numpy as np
import pyarrow.ipc as ipc
from tokenizers import BertWordPieceTokenizer

EXPECTED_TYPES = {
    "segment_ids": "list<item: uint8 not null>",
    "masked_lm_positions": "list<item: uint16 not null>",
    "next_sentence_label": "uint8",
    "valid_length": "uint16",
}


def corpus_token_bytes(vocab, corpora, lowercase):
    """All sentences of the corpus tokenized, documents separated by a sentinel id."""
    tok = BertWordPieceTokenizer(vocab, lowercase=lowercase)
    docs, sentences = [], []
    for path in corpora:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    sentences.append(line)
                elif sentences:
                    docs.append(sentences)
                    sentences = []
        if sentences:
            docs.append(sentences)
            sentences = []
    stream = []
    for doc in docs:
        for enc in tok.encode_batch(doc, add_special_tokens=False):
            stream.extend(enc.ids)
        stream.append(0xFFFFFFFF)
    return np.asarray(stream, dtype="<u4").tobytes()


def main(argv):
    lowercase = "--lowercase" in argv
    args = [a for a in argv if a != "--lowercase"]
    if len(args) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    shard_dir, vocab, corpora = args[0], args[1], args[2:]
    manifest = json.load(open(os.path.join(shard_dir, "manifest.json")))
    cfg, v = manifest["config"], manifest["vocab"]
    cls, sep, mask = v["cls_id"], v["sep_id"], v["mask_id"]
    failures = []

    def check(ok, message):
        if not ok:
            failures.append(message)

    corpus = corpus_token_bytes(vocab, corpora, lowercase)
    rows = masked = maskable = random_next = kept = replaced = as_mask = 0
    unfound = 0
    for bucket in manifest["buckets"]:
        sizes = [s["instances"] for s in manifest["shards"] if s["bucket"] == bucket["index"]]
        check(sum(sizes) == bucket["instances"], f"bucket {bucket['index']}: shard sizes {sizes} != {bucket['instances']}")
        check(not sizes or max(sizes) - min(sizes) <= 1, f"bucket {bucket['index']}: unbalanced shards {sizes}")
        check(all(s <= cfg["shard_size"] for s in sizes), f"bucket {bucket['index']}: a shard above --shard-size")

    for shard in manifest["shards"]:
        table = ipc.open_file(os.path.join(shard_dir, shard["file"])).read_all()
        for name, t in EXPECTED_TYPES.items():
            check(str(table.schema.field(name).type) == t, f"{shard['file']}: {name} is {table.schema.field(name).type}")
        check(table.num_rows == shard["instances"], f"{shard['file']}: {table.num_rows} rows, manifest {shard['instances']}")
        d = table.to_pydict()
        for i in range(table.num_rows):
            ids = list(d["input_ids"][i])
            seg = d["segment_ids"][i]
            pos = d["masked_lm_positions"][i]
            lab = d["masked_lm_ids"][i]
            n = d["valid_length"][i]
            rows += 1
            where = f"{shard['file']} row {i}"
            check(len(ids) == n == len(seg), f"{where}: lengths disagree")
            check(shard["min_length"] <= n <= shard["max_length"], f"{where}: length {n} outside its bucket")
            check(n <= cfg["max_seq_length"], f"{where}: longer than max_seq_length")
            check(pos == sorted(set(pos)), f"{where}: masked positions not sorted and distinct")
            check(len(pos) <= cfg["max_predictions_per_seq"], f"{where}: too many predictions")
            for p, l in zip(pos, lab):
                if ids[p] == mask:
                    as_mask += 1
                elif ids[p] == l:
                    kept += 1
                else:
                    replaced += 1
                ids[p] = l  # undo the mask: the original token
            check(ids[0] == cls and ids[-1] == sep, f"{where}: not [CLS] ... [SEP]")
            seps = [j for j, t in enumerate(ids) if t == sep]
            check(len(seps) == 2, f"{where}: {len(seps)} [SEP] tokens")
            first_b = seps[0] + 1
            check(all(s == 0 for s in seg[:first_b]) and all(s == 1 for s in seg[first_b:]), f"{where}: segment ids")
            check(all(p not in (0, seps[0], n - 1) for p in pos), f"{where}: a special token is masked")
            # Undoing the masks must give real corpus text: A and B each a contiguous run of
            # the independently tokenized corpus.
            for part in (ids[1:seps[0]], ids[first_b:n - 1]):
                if corpus.find(np.asarray(part, dtype="<u4").tobytes()) < 0:
                    unfound += 1
            masked += len(pos)
            maskable += n - 3
            random_next += d["next_sentence_label"][i]

    check(rows == manifest["totals"]["instances"], f"{rows} rows, manifest says {manifest['totals']['instances']}")
    check(rows > 0, "no instances")
    check(unfound == 0, f"{unfound} segments are not contiguous corpus text (masked labels or segments wrong)")
    frac = masked / max(maskable, 1)
    p = cfg["masked_lm_prob"]
    check(abs(frac - p) < 0.02, f"masked fraction {frac:.4f} far from masked_lm_prob {p}")
    nsp = random_next / max(rows, 1)
    check(0.4 <= nsp <= 0.6, f"random-next fraction {nsp:.3f} is not about 50%")
    total = max(masked, 1)
    check(abs(as_mask / total - 0.8) < 0.03, f"[MASK] share {as_mask / total:.3f} is not about 80%")
    check(abs(kept / total - 0.1) < 0.03, f"kept share {kept / total:.3f} is not about 10%")
    check(abs(replaced / total - 0.1) < 0.03, f"random share {replaced / total:.3f} is not about 10%")
    print(
        f"{rows} instances: masked {frac:.4f} of tokens ([MASK] {as_mask / total:.3f}, kept {kept / total:.3f}, "
        f"random {replaced / total:.3f}), random next {nsp:.3f}"
    )
    if failures:
        print(f"{len(failures)} checks failed:", file=sys.stderr)
        for f in failures[:50]:
            print("  " + f, file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

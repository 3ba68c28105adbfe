#!/usr/bin/env bash
# GPU speed beside PyTorch in one call: embedding all-MiniLM-L6-v2-shaped encoders (bench_embed
# vs bench_embed_gpu.py) and pretraining bert_12_768_12 at seq 128 (bert-train vs
# bench_pretrain.py), printed as one table (BENCHMARKS.md, "GPU speed").
#
#   bench_gpu.sh BIN_DIR MODEL_DIR TSV SHARD_DIR OUT_DIR
#
# BIN_DIR holds this build's `bench_embed` (cargo build --release -p bert-train --example
# bench_embed) and `bert-train`, and optionally `bench_embed.wgsl`: the same example built with
# `--no-default-features --features wgpu,cpu` (no SPIR-V: once feature `vulkan` is on, cubecl
# compiles to SPIR-V on every Vulkan adapter that takes it, so WGSL on native Vulkan needs its
# own build). MODEL_DIR is a HuggingFace BERT directory; without weights (no *.safetensors) a
# random float32 model of its config.json is written first (speed does not depend on weights).
# TSV's first column holds the sentences (SST-2 dev: 872). SHARD_DIR: bert-pipeline shards built
# with --max-seq-length 128.
#
# Environment: EMBED_BATCHES ("32 128"), EMBED_DTYPES ("float32 float16"), PRETRAIN_BATCH (128), PRETRAIN_STEPS (30: the first
# 10 are warm-up), PRETRAIN_DTYPES ("float16 float32"), BACKEND (vulkan), DEADLINE (seconds
# from the start, 480), RUN_CAP (seconds one run may take), PY (python3), BERT_KERNEL_CACHE
# (OUT_DIR/kernels: a new OUT_DIR measures cold starts, the same one again warm ones). Each run is
# cut at the deadline; what finished is printed.
set -u
[ $# -eq 5 ] || { sed -n 2,21p "$0"; exit 2; }
BIN=$1 MODEL=$2 TSV=$3 SHARDS=$4 OUT=$5
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-python3} BACKEND=${BACKEND:-vulkan} DEADLINE=${DEADLINE:-480}
EMBED_BATCHES=${EMBED_BATCHES:-32 128} EMBED_DTYPES=${EMBED_DTYPES:-float32 float16}
PRETRAIN_BATCH=${PRETRAIN_BATCH:-128}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-30} PRETRAIN_DTYPES=${PRETRAIN_DTYPES:-float16 float32}
mkdir -p "$OUT"
export BERT_KERNEL_CACHE=${BERT_KERNEL_CACHE:-$OUT/kernels}
END=$(($(date +%s) + DEADLINE))
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

# run NAME CMD...: CMD cut at the deadline, its output in OUT/NAME.log.
run() {
    local name=$1 left=$((END - $(date +%s)))
    shift
    [ -n "${RUN_CAP:-}" ] && [ "$left" -gt "$RUN_CAP" ] && left=$RUN_CAP
    [ "$left" -gt 15 ] || { echo "skipped: deadline" >"$OUT/$name.log"; return 1; }
    echo "== $name ($left s left)" >&2
    timeout "$left" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    [ $rc -eq 0 ] || { echo "   exit $rc: $(tail -3 "$OUT/$name.log")" >&2; }
    return $rc
}
record() { echo "$1" >>"$RESULTS"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
    | sed 's/^/gpu: /' >&2

if ! ls "$MODEL"/*.safetensors >/dev/null 2>&1; then
    "$PY" - "$MODEL" <<'PYEOF' || exit 1
import shutil, sys, tempfile, torch, transformers
torch.manual_seed(0)
config = transformers.BertConfig.from_pretrained(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:  # only the weights: config.json stays as it was
    transformers.BertModel(config).save_pretrained(tmp, safe_serialization=True)
    shutil.copy(f"{tmp}/model.safetensors", f"{sys.argv[1]}/model.safetensors")
PYEOF
fi

# Embedding: ours on each compiler, then PyTorch (float32 and float16 autocast).
for b in $EMBED_BATCHES; do
    for variant in "$BACKEND:$BIN/bench_embed" "wgsl:$BIN/bench_embed.wgsl"; do
        label=${variant%%:*} exe=${variant#*:}
        [ -x "$exe" ] || continue
        backend=$BACKEND
        [ "$label" = wgsl ] && backend=wgpu
        for dtype in $EMBED_DTYPES; do
            name=embed-$label-$dtype-$b
            if run "$name" "$exe" --model "$MODEL" --tsv "$TSV" --backend "$backend" \
                --batch-size "$b" --repeats 3 --dtype "$dtype"; then
                line=$(grep 'sentences/s' "$OUT/$name.log")
                best=$(sed 's/.*best \([0-9.]*\).*/\1/' <<<"$line")
                median=$(sed 's/.*median \([0-9.]*\).*/\1/' <<<"$line")
                record "{\"task\":\"embed\",\"engine\":\"bert-embed $label\",\"dtype\":\"$dtype\",\"batch\":$b,\"median\":$median,\"best\":$best}"
            fi
        done
    done
done
if [ -n "${EMBED_BATCHES// /}" ] && run embed-pytorch "$PY" "$HERE/bench_embed_gpu.py" --model "$MODEL" --tsv "$TSV" \
    --batch-sizes "$(tr ' ' , <<<"$EMBED_BATCHES")"; then
    grep '^{' "$OUT/embed-pytorch.log" | sed 's/^{/{"task":"embed",/' >>"$RESULTS"
fi

# Pretraining bert_12_768_12: sequences/s over the steps after the 10th.
for dtype in $PRETRAIN_DTYPES; do
    ckpt=$OUT/ckpt-$dtype
    if run "pretrain-ours-$dtype" "$BIN/bert-train" --shards "$SHARDS" --model bert_12_768_12 \
        --backend "$BACKEND" --dtype "$dtype" --batch-size "$PRETRAIN_BATCH" \
        --num-steps "$PRETRAIN_STEPS" --log-interval 1 --ckpt-interval 1000000 \
        --ckpt-dir "$ckpt"; then
        "$PY" - "$ckpt/metrics.jsonl" "$dtype" "$PRETRAIN_BATCH" >>"$RESULTS" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rates = [r["seq_per_s"] for r in rows if r.get("step", 0) > 10 and "seq_per_s" in r]
# Seconds of each of the first steps (kernel compilation and autotuning land there).
first = [round(int(sys.argv[3]) / r["seq_per_s"], 2) for r in rows[:5]]
print(json.dumps({"task": "pretrain", "engine": "bert-train", "dtype": sys.argv[2],
                  "batch": int(sys.argv[3]), "seq_per_s": statistics.median(rates),
                  "first_steps_s": first}))
PYEOF
    fi
    amp=$dtype
    if run "pretrain-pytorch-$dtype" "$PY" "$HERE/bench_pretrain.py" "$SHARDS" --layers 12 \
        --hidden 768 --heads 12 --batch-size "$PRETRAIN_BATCH" --steps "$PRETRAIN_STEPS" \
        --warmup 10 --device cuda --amp "$amp"; then
        grep '^{' "$OUT/pretrain-pytorch-$dtype.log" | tail -1 \
            | sed 's/^{/{"task":"pretrain","engine":"pytorch",/' >>"$RESULTS"
    fi
done

"$PY" - "$RESULTS" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def mfu(seq_per_s, layers=12, hidden=768, seq=128, peak=989e12):
    # bench_pretrain.py's count: 6 FLOPs per encoder weight per token + attention.
    per_seq = seq * 6 * 12 * layers * hidden * hidden + 12 * layers * hidden * seq * seq
    return seq_per_s * per_seq / peak
print("| task | engine | dtype | batch | median | best / MFU |")
print("| --- | --- | --- | ---: | ---: | ---: |")
for r in rows:
    if r["task"] == "embed":
        print(f"| embed (sentences/s) | {r['engine']} | {r['dtype']} | {r['batch']} | {r['median']:.0f} | {r['best']:.0f} |")
    else:
        print(f"| pretrain (seq/s) | {r['engine']} | {r.get('dtype', r.get('amp'))} | {r['batch']} | {r['seq_per_s']:.1f} | {100 * mfu(r['seq_per_s']):.1f}% |")
PYEOF

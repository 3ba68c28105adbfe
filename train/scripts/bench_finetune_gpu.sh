#!/usr/bin/env bash
# Fine-tuning accuracy beside PyTorch on one GPU: MRPC and RTE (seeds 2 3 4) and SQuAD 1.1
# (train on dev-v1.1's first 38 articles, predict the last 10) with `bert-train` (wgpu) and
# with the PyTorch references (torch on CUDA), the flags of BENCHMARKS.md.
#
#   bench_finetune_gpu.sh BERT_TRAIN MODEL_DIR GLUE_DIR SQUAD_JSON OUT_DIR
#
# GLUE_DIR holds MRPC/ and RTE/ (train.tsv, dev.tsv). Each (tool, seed) pair is one lane running
# MRPC, RTE, then SQuAD, and all lanes run at once: the GPU is far from full with a 6-layer,
# 384-wide model, so lanes overlap well, but the wall times are those of a shared GPU.
# Every command is cut at DEADLINE seconds after the start, so a run that does not finish
# still leaves its finished tasks; summarize_finetune.py OUT_DIR prints the table.
#
# Environment: BACKEND (wgpu), TORCH_DEVICE (cuda), SEEDS ("2 3 4"), TASKS ("MRPC RTE SQuAD"),
# DEADLINE (seconds, 480), PY (python3), and for a quick smoke run MAX_TRAIN (rows per GLUE
# task), EPOCHS (GLUE epochs, 3), SQUAD_TRAIN / SQUAD_PREDICT (article ranges, 0..38 / 38..48),
# SQUAD_EPOCHS (2), SQUAD_SEQ (384).
set -u
[ $# -eq 5 ] || { sed -n 2,18p "$0"; exit 2; }
BERT_TRAIN=$1 MODEL=$2 GLUE=$3 SQUAD=$4 OUT=$5
HERE=$(cd "$(dirname "$0")" && pwd)
BACKEND=${BACKEND:-wgpu} TORCH_DEVICE=${TORCH_DEVICE:-cuda} PY=${PY:-python3}
SEEDS=${SEEDS:-2 3 4} TASKS=${TASKS:-MRPC RTE SQuAD} DEADLINE=${DEADLINE:-480}
EPOCHS=${EPOCHS:-3} SQUAD_TRAIN=${SQUAD_TRAIN:-0..38} SQUAD_PREDICT=${SQUAD_PREDICT:-38..48}
SQUAD_EPOCHS=${SQUAD_EPOCHS:-2} SQUAD_SEQ=${SQUAD_SEQ:-384}
LIMIT=()
[ -n "${MAX_TRAIN:-}" ] && LIMIT=(--max-train-examples "$MAX_TRAIN")
mkdir -p "$OUT"
END=$(($(date +%s) + DEADLINE))

GLUE_FLAGS=(--batch-size 32 --epochs "$EPOCHS" --lr 2e-5 --epsilon 1e-6 --optimizer bertadam
    --warmup-ratio 0.1 --max-len 128)
SQUAD_FLAGS=(--train-file "$SQUAD" --train-articles "$SQUAD_TRAIN" --predict-file "$SQUAD"
    --predict-articles "$SQUAD_PREDICT" --max-seq-length "$SQUAD_SEQ" --doc-stride 128
    --epochs "$SQUAD_EPOCHS" --lr 3e-5 --batch-size 12)

# run NAME CMD...: CMD cut at the deadline, its output in NAME.log, its wall time in NAME.time (exit code, milliseconds).
run() {
    local name=$1 left=$((END - $(date +%s)))
    shift
    [ "$left" -gt 10 ] || { echo "skipped: deadline" >"$OUT/$name.log"; return; }
    local start=$(date +%s%N)
    timeout "$left" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "$rc $((($(date +%s%N) - start) / 1000000))" >"$OUT/$name.time"
}

ours_lane() {
    local seed=$1 task
    for task in $TASKS; do
        if [ "$task" = SQuAD ]; then
            run "ours-SQuAD-$seed" "$BERT_TRAIN" finetune-squad --model "$MODEL" "${SQUAD_FLAGS[@]}" \
                --seed "$seed" --backend "$BACKEND" --output-dir "$OUT/ours-SQuAD-$seed"
        else
            run "ours-$task-$seed" "$BERT_TRAIN" finetune-classifier --task-name "$task" \
                --data-dir "$GLUE/$task" --model "$MODEL" "${GLUE_FLAGS[@]}" "${LIMIT[@]}" \
                --seed "$seed" --backend "$BACKEND" --output-dir "$OUT/ours-$task-$seed"
        fi
    done
}

torch_lane() {
    local seed=$1 task
    for task in $TASKS; do
        if [ "$task" = SQuAD ]; then
            run "torch-SQuAD-$seed" "$PY" "$HERE/finetune_squad_reference.py" --model "$MODEL" \
                "${SQUAD_FLAGS[@]}" --seed "$seed" --device "$TORCH_DEVICE" \
                --output-dir "$OUT/torch-SQuAD-$seed"
        else
            run "torch-$task-$seed" "$PY" "$HERE/finetune_reference.py" --task "$task" \
                --data-dir "$GLUE/$task" --model "$MODEL" "${GLUE_FLAGS[@]}" "${LIMIT[@]}" \
                --seed "$seed" --device "$TORCH_DEVICE" --output "$OUT/torch-$task-$seed.json"
        fi
    done
}

export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2} PYTHONUNBUFFERED=1
for seed in $SEEDS; do
    ours_lane "$seed" &
    torch_lane "$seed" &
done
wait
"$PY" "$HERE/summarize_finetune.py" "$OUT"

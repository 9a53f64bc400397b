#!/usr/bin/env bash
# LoRA training speed and memory: `pipespec tune` beside PyTorch + PEFT (scripts/tune-peft.py) on
# the same data, model and threads, alternating, ROUNDS rounds of STEPS steps each.
#
#   scripts/bench-tune.sh [TASK] [MODEL.gguf]      # TASK: boolq (default) or piqa
#
# Environment: ROUNDS (2), STEPS (20), BATCH (4), THREADS (2), PEFT_PY (the venv's python; by
# default scripts/peft-setup.sh makes one, a few GB). Both train rank 8, alpha 16 on q,k,v,o,gate,
# up,down with the same schedule, the completion and EOS as labels. pipespec's tokens/s counts
# every step; tune-peft.py leaves its first (warm-up) step out of its figure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TASK=${1:-boolq}
ROUNDS=${ROUNDS:-2}
STEPS=${STEPS:-20}
BATCH=${BATCH:-4}
THREADS=${THREADS:-2}
cargo build --release --quiet
PIPESPEC=./target/release/pipespec
MODEL=${2:-$($PIPESPEC fetch 2>&1 | sed -n 's/^default model ready: //p')}
PEFT_PY=${PEFT_PY:-$(bash scripts/peft-setup.sh | tail -n1)}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
$PIPESPEC tune --task "$TASK" --export-task "$WORK" 2>/dev/null

field() { python3 -c "import json, sys; r = json.loads(sys.stdin.read().strip().splitlines()[-1]); print(r['$1'])"; }
printf '| round | pipespec tokens/s | PEFT tokens/s | ratio | pipespec peak GB | PEFT peak GB |\n|---|---|---|---|---|---|\n'
for round in $(seq "$ROUNDS"); do
    ours=$($PIPESPEC tune --model "$MODEL" --data "$WORK/train.jsonl" --max-steps "$STEPS" \
        --batch "$BATCH" --threads "$THREADS" --eval-limit 0 --out "$WORK/a.gguf" --json 2>/dev/null)
    theirs=$("$PEFT_PY" scripts/tune-peft.py --model "$MODEL" --train "$WORK/train.jsonl" \
        --steps "$STEPS" --batch "$BATCH" --threads "$THREADS" --max-seq 512 --append-eos \
        --warmup-steps 1 2>/dev/null)
    a=$(field tokens_per_s <<<"$ours") b=$(field tokens_per_s <<<"$theirs")
    ma=$(field peak_rss_bytes <<<"$ours") mb=$(field peak_rss_bytes <<<"$theirs")
    python3 -c "print(f'| $round | {$a:.1f} | {$b:.1f} | {$a / $b:.2f}x | {$ma / 1e9:.2f} | {$mb / 1e9:.2f} |')"
done

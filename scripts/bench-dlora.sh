#!/usr/bin/env bash
# DLoRA ablation: local LoRA, split all-active, split kill-only and split Kill-and-Revive on one
# task, the cloud (`pipespec tune-cloud`) and the device (`pipespec tune --cloud`) as two processes
# on loopback, the same steps, seed and data for every run. Prints one markdown table.
#
#   scripts/bench-dlora.sh [TASK] [MODEL.gguf]          # TASK: boolq (default) or piqa
#
# Environment: STEPS (30), BATCH (4), EVAL (50 evaluation examples), LR (5e-4), THREADS (2),
# RUNS (local split kill-only kill-revive; also: bf16 = split all-active with --wire-bf16,
# split-delayed and kill-revive-delayed = through scripts/delay-proxy.py adding DELAY_MS (20)
# each way), EXTRA (more flags for every run), KEEP_DIR (keep the adapters and JSON reports
# there), PIPESPEC (a built binary to use as is).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TASK=${1:-boolq}
STEPS=${STEPS:-30}
BATCH=${BATCH:-4}
EVAL=${EVAL:-50}
LR=${LR:-5e-4}
THREADS=${THREADS:-2}
RUNS=${RUNS:-local split kill-only kill-revive}
DELAY_MS=${DELAY_MS:-20}
PORT=${PORT:-50561}
if [ -z "${PIPESPEC:-}" ]; then
    cargo build --release --quiet
    PIPESPEC=./target/release/pipespec
fi
MODEL=${2:-$($PIPESPEC fetch 2>&1 | sed -n 's/^default model ready: //p')}
WORK=${KEEP_DIR:-$(mktemp -d)}
mkdir -p "$WORK"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

$PIPESPEC tune-cloud --model "$MODEL" --listen "127.0.0.1:$PORT" --threads "$THREADS" \
    2>"$WORK/cloud.log" &
PIDS+=($!)
python3 scripts/delay-proxy.py --listen "127.0.0.1:$((PORT + 1))" --to "127.0.0.1:$PORT" \
    --delay-ms "$DELAY_MS" &
PIDS+=($!)
for _ in $(seq 120); do grep -q serving "$WORK/cloud.log" 2>/dev/null && break; sleep 1; done

common=(--model "$MODEL" --task "$TASK" --max-steps "$STEPS" --batch "$BATCH" --lr "$LR"
    --eval-limit "$EVAL" --threads "$THREADS" --seed 0 --json ${EXTRA:-})
split=(--cloud "127.0.0.1:$PORT")
for run in $RUNS; do
    case $run in
        local) extra=() ;;
        split) extra=("${split[@]}") ;;
        bf16) extra=("${split[@]}" --wire-bf16) ;;
        kill-only) extra=("${split[@]}" --kill-revive --no-revive) ;;
        kill-revive) extra=("${split[@]}" --kill-revive) ;;
        split-delayed) extra=(--cloud "127.0.0.1:$((PORT + 1))") ;;
        kill-revive-delayed) extra=(--cloud "127.0.0.1:$((PORT + 1))" --kill-revive) ;;
        *) echo "unknown run $run" >&2; exit 2 ;;
    esac
    $PIPESPEC tune "${common[@]}" "${extra[@]}" --out "$WORK/$run.gguf" \
        >"$WORK/$run.json" 2>"$WORK/$run.err"
done

python3 - "$WORK" $RUNS <<'PY'
import json, sys
work, runs = sys.argv[1], sys.argv[2:]
print("| run | eval loss | exact match | device GFLOP | vs all-active | link MB | vs all-active"
      " | round trips | kills | revivals | modules | s/step | peak RSS GB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for run in runs:
    r = json.load(open(f"{work}/{run}.json"))
    dev, link = r.get("device_flops"), (r.get("bytes_to_cloud") or 0) + (r.get("bytes_from_cloud") or 0)
    dev_all, link_all = r.get("device_flops_all_active"), r.get("bytes_all_active")
    ratio = lambda a, b: f"{a / b:.3f}" if a is not None and b else "-"
    number = lambda v, digits: "-" if v is None else f"{v:.{digits}f}"
    print(f"| {run} | {number(r['eval_loss_after'], 4)} | {number(r['eval_exact_match_after'], 3)} | "
          f"{(dev or 0) / 1e9:.1f} | {ratio(dev, dev_all)} | {link / 1e6:.0f} | {ratio(link, link_all)} | "
          f"{r.get('round_trips', 0)} | {r.get('kills', 0)} | {r.get('revivals', 0)} | "
          f"{r.get('active_modules', '-')} | {r['train_s'] / r['steps']:.2f} | "
          f"{r['peak_rss_bytes'] / 1e9:.2f} |")
PY

#!/usr/bin/env bash
# Decode and prefill side by side with llama.cpp's llama-bench, alternating, in one run.
# Usage: LLAMA_BENCH=/path/to/llama-bench scripts/bench-vs-llamacpp.sh [THREADS] [MODEL.gguf ...]
#   THREADS: 2 by default; MODEL: the default model if none is given.
#   ROUNDS (default 3) rounds; each runs llama-bench (pp512, tg128) then pipespec on the same
#   file: prefill of a ~500-token Spec-Bench prompt, and 128 tokens decoded from a 1-token
#   prompt as tg128 does. PIPESPEC_CPU=avx512|avxvnni|avx2|scalar forces pipespec's kernels.
# llama-bench is built by ../shared/tools/llamacpp-anchor.sh (not by this project).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads=${1:-2}
shift || true
bench=${LLAMA_BENCH:?set LLAMA_BENCH to a llama-bench binary}
rounds=${ROUNDS:-3}
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  models=("$(python3 -c 'import os,pathlib; h=os.environ.get("PIPESPEC_HOME") or str(pathlib.Path.home()/".cache/pipespec"); print(h+"/models/SmolLM2-135M-Instruct.Q4_1.gguf")')")
fi
# About 500 tokens of Spec-Bench text for prefill (llama-bench's pp512).
prompt=$(python3 -c "
import json
qs=[json.loads(l) for l in open('data/spec_bench/question.jsonl')]
print(' '.join(q['turns'][0] for q in qs[80:120])[:1480])")
pipespec=${PIPESPEC_BIN:-./target/release/pipespec}
field() { python3 -c "import json,sys; print('%.1f' % json.load(sys.stdin)['$1'])"; }
printf "%-28s %5s %10s %10s %10s %10s\n" model round "llama pp" "ours pp" "llama tg" "ours tg"
for model in "${models[@]}"; do
  name=$(basename "$model" .gguf)
  for round in $(seq "$rounds"); do
    read -r lpp ltg < <(LD_LIBRARY_PATH="$(dirname "$bench")" "$bench" -m "$model" -p 512 -n 128 \
      -t "$threads" -r 2 -o csv 2>/dev/null | python3 -c "
import csv,sys
rows={(r['n_prompt'],r['n_gen']):r['avg_ts'] for r in csv.DictReader(sys.stdin)}
print('%.1f %.1f' % (float(rows[('512','0')]), float(rows[('0','128')])))")
    pp=$("$pipespec" generate --model "$model" --raw --threads "$threads" --max-tokens 2 --ignore-eos \
      --json "$prompt" 2>/dev/null | field prefill_tok_s)
    tg=$("$pipespec" generate --model "$model" --raw --threads "$threads" --max-tokens 129 --ignore-eos \
      --json "Once" 2>/dev/null | field decode_tok_s)
    printf "%-28s %5s %10s %10s %10s %10s   pp %.2fx  tg %.2fx\n" "$name" "$round" "$lpp" "$pp" "$ltg" "$tg" \
      "$(python3 -c "print($pp/$lpp)")" "$(python3 -c "print($tg/$ltg)")"
  done
done

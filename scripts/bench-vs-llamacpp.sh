#!/usr/bin/env bash
# Decode and prefill side by side with llama.cpp's llama-bench, alternating, on the default model.
# Usage: LLAMA_BENCH=/path/to/llama-bench scripts/bench-vs-llamacpp.sh [THREADS]
# (llama-bench is not built here: build llama.cpp yourself, e.g. from the source vendored in the
# llama-cpp-python sdist, and point LLAMA_BENCH at it.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads=${1:-2}
bench=${LLAMA_BENCH:?set LLAMA_BENCH to a llama-bench binary}
model=$(python3 -c 'import os,pathlib; h=os.environ.get("PIPESPEC_HOME") or str(pathlib.Path.home()/".cache/pipespec"); print(h+"/models/SmolLM2-135M-Instruct.Q4_1.gguf")')
# About 500 tokens of Spec-Bench text for prefill (llama-bench's pp512).
prompt=$(python3 -c "
import json
qs=[json.loads(l) for l in open('../shared/data/spec_bench/question.jsonl')]
print(' '.join(q['turns'][0] for q in qs[80:120])[:1480])")
for round in 1 2 3; do
  LD_LIBRARY_PATH="$(dirname "$bench")" "$bench" -m "$model" -p 512 -n 128 -t "$threads" -r 2 2>&1 |
    grep -E "pp512|tg128" | awk -F'|' '{print "llama.cpp", $7, $8}'
  ./target/release/pipespec generate --model "$model" --raw --threads "$threads" --max-tokens 2 --ignore-eos --json "$prompt" 2>/dev/null |
    python3 -c "import json,sys; d=json.load(sys.stdin); print('pipespec prefill', d['prompt_tokens'], 'tokens: %.1f tok/s' % d['prefill_tok_s'])"
  # Decode from a 1-token context, as llama-bench's tg128.
  ./target/release/pipespec generate --model "$model" --raw --threads "$threads" --max-tokens 129 --ignore-eos --json "Once" 2>/dev/null |
    python3 -c "import json,sys; d=json.load(sys.stdin); print('pipespec decode 128: %.1f tok/s' % d['decode_tok_s'])"
done

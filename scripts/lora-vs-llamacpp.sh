#!/usr/bin/env bash
# Checks that a LoRA adapter written by `pipespec tune` loads in llama.cpp and gives there the same
# greedy text as in pipespec. Both run on the f32 conversion of the base (the values pipespec tune
# trains on), so no quantization differs between the engines. Each prompt is also run without the
# adapter, to show that the adapter changes the text (a check it could not fail otherwise).
#
#   LLAMA_COMPLETION=~/.cache/llamacpp-anchor/build/bin/llama-completion \
#     scripts/lora-vs-llamacpp.sh [ADAPTER.gguf] [BASE.gguf]
#
# Without ADAPTER one is trained first: `pipespec tune --task boolq` for STEPS steps (default 40)
# at a high learning rate, so that it moves the greedy text. BASE defaults to the default model.
# TOKENS (default 32) tokens per prompt, THREADS (default 2). Exits 1 on a mismatch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LLAMA_COMPLETION=${LLAMA_COMPLETION:-$HOME/.cache/llamacpp-anchor/build/bin/llama-completion}
TOKENS=${TOKENS:-32}
THREADS=${THREADS:-2}
STEPS=${STEPS:-40}
[ -x "$LLAMA_COMPLETION" ] || { echo "no llama-completion at $LLAMA_COMPLETION (../shared/tools/llamacpp-anchor.sh builds it)" >&2; exit 2; }
export LD_LIBRARY_PATH="$(dirname "$LLAMA_COMPLETION")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

cargo build --release --quiet
PIPESPEC=./target/release/pipespec
BASE=${2:-$($PIPESPEC fetch 2>&1 | sed -n 's/^default model ready: //p')}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

$PIPESPEC convert "$BASE" "$WORK/base-f32.gguf" --type f32 >/dev/null
ADAPTER=${1:-}
if [ -z "$ADAPTER" ]; then
    ADAPTER=$WORK/boolq.gguf
    echo "training an adapter: pipespec tune --task boolq --max-steps $STEPS --lr 1e-3" >&2
    $PIPESPEC tune --model "$BASE" --task boolq --max-steps "$STEPS" --lr 1e-3 --eval-limit 0 \
        --threads "$THREADS" --out "$ADAPTER" >/dev/null
fi

prompts=(
    "The capital of France is"
    "Once upon a time, in a small village by the sea,"
    "def fibonacci(n):"
    "Water boils at 100 degrees Celsius at sea level.
Question: does water boil at 100 degrees at sea level?
Answer:"
    "The Great Wall of China is visible from the Moon with the naked eye, a popular claim that astronauts have refuted.
Question: can you see the great wall of china from the moon?
Answer:"
)

ours() { # PROMPT [ADAPTER]
    $PIPESPEC generate --model "$WORK/base-f32.gguf" ${2:+--lora "$2"} --raw --temperature 0 \
        --max-tokens "$TOKENS" --threads "$THREADS" --json "$1" 2>/dev/null \
        | python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin)["text"])'
}
theirs() { # PROMPT [ADAPTER]
    "$LLAMA_COMPLETION" -m "$WORK/base-f32.gguf" ${2:+--lora "$2"} -p "$1" -n "$TOKENS" --temp 0 \
        -no-cnv --no-display-prompt --simple-io --no-warmup -t "$THREADS" -s 0 2>/dev/null </dev/null
}

same=0 changed=0
for prompt in "${prompts[@]}"; do
    a=$(ours "$prompt" "$ADAPTER")
    b=$(theirs "$prompt" "$ADAPTER")
    plain=$(ours "$prompt")
    # llama-completion may end its output with an end-of-text marker; the text before it counts.
    b=${b%" [end of text]"}
    if [ "$a" == "$b" ]; then
        same=$((same + 1)); verdict=same
    else
        verdict=DIFFERENT
    fi
    [ "$a" != "$plain" ] && changed=$((changed + 1))
    printf '%s | adapter changes the text: %s\n  pipespec:  %q\n  llama.cpp: %q\n  no adapter: %q\n' \
        "$verdict" "$([ "$a" != "$plain" ] && echo yes || echo no)" "$a" "$b" "$plain"
done
echo "greedy text equal in $same of ${#prompts[@]} prompts; the adapter changed $changed of them"
[ "$same" -eq "${#prompts[@]}" ]

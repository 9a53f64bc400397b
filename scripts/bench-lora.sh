#!/usr/bin/env bash
# Inference with a LoRA adapter: decode and prefill speed with it against without it (alternating,
# one process per run), and `sd`'s acceptance with the adapter on the target only (drafts from the
# base) against on the drafter too (--lora-drafters).
#
#   scripts/bench-lora.sh ADAPTER.gguf [TARGET.gguf] [DRAFT.gguf]
#
# TARGET defaults to the default model; DRAFT (for sd) to TARGET itself. ROUNDS (3), TOKENS (128),
# THREADS (2), PROMPTS (8: the first turns of that many Spec-Bench questions, one per category).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ADAPTER=${1:?usage: scripts/bench-lora.sh ADAPTER.gguf [TARGET.gguf] [DRAFT.gguf]}
ROUNDS=${ROUNDS:-3}
TOKENS=${TOKENS:-128}
THREADS=${THREADS:-2}
PROMPTS=${PROMPTS:-8}
cargo build --release --quiet
PIPESPEC=./target/release/pipespec
TARGET=${2:-$($PIPESPEC fetch 2>&1 | sed -n 's/^default model ready: //p')}
DRAFT=${3:-$TARGET}
LONG_PROMPT=$(python3 -c "import json; q = [json.loads(l) for l in open('data/spec_bench/question.jsonl')]; print(' '.join(t for x in q[:12] for t in x['turns']))")

speed() { # [--lora FILE]
    $PIPESPEC generate --model "$TARGET" "$@" --raw --max-tokens "$TOKENS" --ignore-eos \
        --threads "$THREADS" --json "Once upon a time" 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["decode_tok_s"])'
    $PIPESPEC generate --model "$TARGET" "$@" --raw --max-tokens 1 --threads "$THREADS" --json \
        "$LONG_PROMPT" 2>/dev/null | python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["prefill_tok_s"], r["prompt_tokens"])'
}
echo "| round | decode tok/s, none | decode tok/s, adapter | ratio | prefill tok/s, none | prefill tok/s, adapter | ratio |"
echo "|---|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
    read -r -d '' plain < <(speed; printf '\0') || true
    read -r -d '' adapted < <(speed --lora "$ADAPTER"; printf '\0') || true
    python3 - "$round" "$plain" "$adapted" <<'EOF'
import sys
r, plain, adapted = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
d0, p0, d1, p1 = float(plain[0]), float(plain[1]), float(adapted[0]), float(adapted[1])
print(f"| {r} | {d0:.1f} | {d1:.1f} | {d1 / d0:.2f}x | {p0:.0f} | {p1:.0f} | {p1 / p0:.2f}x |")
EOF
done
echo "(prefill over a $(speed | tail -1 | cut -d' ' -f2)-token prompt)"

echo
echo "sd acceptance, $PROMPTS Spec-Bench prompts, greedy, window 6 (drafter $(basename "$DRAFT"), target $(basename "$TARGET") with the adapter):"
python3 - "$PROMPTS" <<'EOF' >"${TMPDIR:-/tmp}/bench-lora-prompts.txt"
import json, sys
seen, out = set(), []
for line in open("data/spec_bench/question.jsonl"):
    q = json.loads(line)
    if q["category"] not in seen:
        seen.add(q["category"]); out.append(q["turns"][0].replace("\n", " "))
print("\n".join(out[: int(sys.argv[1])]))
EOF
for drafters in "" --lora-drafters; do
    accepted=0 drafted=0
    while IFS= read -r prompt; do
        read -r a d < <($PIPESPEC generate --strategy sd --chain "$DRAFT,$TARGET" --lora "$ADAPTER" $drafters \
            --max-tokens "$TOKENS" --threads "$THREADS" --json "$prompt" 2>/dev/null \
            | python3 -c 'import json, sys; l = json.load(sys.stdin)["levels"][0]; print(l["n_accepted"], l["n_drafted"])')
        accepted=$((accepted + a)) drafted=$((drafted + d))
    done <"${TMPDIR:-/tmp}/bench-lora-prompts.txt"
    python3 -c "print(f'  adapter on the target only{\" and the drafter\" if \"$drafters\" else \"\"}: {$accepted}/{$drafted} drafts accepted ({$accepted / max($drafted, 1):.3f})')"
done

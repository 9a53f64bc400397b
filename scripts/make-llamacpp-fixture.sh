#!/usr/bin/env bash
# Remakes crates/model/testdata/llamacpp-q4_k_m.gguf: a seeded random llama (every row a multiple
# of 256 values, examples/synthetic_gguf.rs) quantized to Q4_K_M by llama.cpp's own
# llama-quantize, built by ../shared/tools/llamacpp-anchor.sh (or give its bin folder as $1).
# The file is committed so that the tests need no llama.cpp build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${1:-$(bash ../shared/tools/llamacpp-anchor.sh | tail -n1)}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cargo run --release --quiet -p pipespec-model --example synthetic_gguf -- "$WORK/f32.gguf" 7
LD_LIBRARY_PATH=$BIN "$BIN/llama-quantize" "$WORK/f32.gguf" "$WORK/q4_k_m.gguf" Q4_K_M >"$WORK/log" 2>&1 \
    || { tail -20 "$WORK/log"; exit 1; }
mkdir -p crates/model/testdata
cp "$WORK/q4_k_m.gguf" crates/model/testdata/llamacpp-q4_k_m.gguf
grep -E "type|size" "$WORK/log" | tail -5

#!/usr/bin/env bash
# Create (or reuse) a Python venv with PyTorch + transformers + PEFT + gguf,
# used by scripts/tune-peft.py as a LoRA fine-tuning baseline against
# `pipespec tune`.
#
#   bash scripts/peft-setup.sh            # prints the venv's python path last
#   PY=$(bash scripts/peft-setup.sh | tail -n1)
#   "$PY" scripts/tune-peft.py --model M.gguf --train T.jsonl --steps 20
#
# Environment:
#   PIPESPEC_HOME     base dir (default ~/.cache/pipespec); the venv goes to
#                     $PIPESPEC_HOME/peft-venv
#   PYTHON            interpreter used to create the venv (default python3)
#   TORCH_INDEX_URL   optional pip index to take torch from (e.g. a CPU-only
#                     wheel index, where one is reachable). By default torch
#                     comes from PyPI, whose Linux x86_64 wheel pulls in the
#                     nvidia-*/cuda-* runtime packages (several GB on disk;
#                     they are not used on CPU).
#   PEFT_SETUP_FORCE=1  delete and recreate the venv
#
# Progress goes to stderr; the only stdout line is the python path.
set -euo pipefail

# Versions resolved together from PyPI and verified with tune-peft.py
# (SmolLM2-135M Q4_1 GGUF, CPU, float32).
TORCH_VERSION=2.15.0
TRANSFORMERS_VERSION=5.25.0
PEFT_VERSION=0.21.2
GGUF_VERSION=0.19.0
TOKENIZERS_VERSION=0.23.3
SENTENCEPIECE_VERSION=0.2.3
ACCELERATE_VERSION=1.16.0
SAFETENSORS_VERSION=0.8.0
HF_HUB_VERSION=2.4.0
NUMPY_VERSION=2.4.6

BASE="${PIPESPEC_HOME:-$HOME/.cache/pipespec}"
VENV="$BASE/peft-venv"
VPY="$VENV/bin/python"
PYTHON="${PYTHON:-python3}"

log() { echo "peft-setup: $*" >&2; }

check_venv() {
    [ -x "$VPY" ] || return 1
    "$VPY" - "$TORCH_VERSION" "$TRANSFORMERS_VERSION" "$PEFT_VERSION" "$GGUF_VERSION" \
        >/dev/null 2>&1 <<'EOF'
import sys
from importlib.metadata import version
want = dict(zip(["torch", "transformers", "peft", "gguf"], sys.argv[1:]))
import torch, transformers, peft, gguf, tokenizers, sentencepiece  # noqa: F401
from gguf.quants import dequantize  # noqa: F401
for name, v in want.items():
    have = version(name).split("+")[0]
    if have != v:
        sys.exit(f"{name} {have} != {v}")
x = torch.randn(4, 4, requires_grad=True)
(x @ x).sum().backward()
EOF
}

start=$(date +%s)

if [ "${PEFT_SETUP_FORCE:-0}" = 1 ] && [ -d "$VENV" ]; then
    log "PEFT_SETUP_FORCE=1: removing $VENV"
    rm -rf "$VENV"
fi

if check_venv; then
    log "reusing working venv $VENV"
    echo "$VPY"
    exit 0
fi

mkdir -p "$BASE"
if [ ! -x "$VPY" ] || ! "$VPY" -c 'import sys' >/dev/null 2>&1; then
    log "creating venv $VENV with $("$PYTHON" --version 2>&1)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
else
    log "venv $VENV exists but is incomplete or has other versions; (re)installing"
fi

"$VPY" -m pip install --disable-pip-version-check -q --upgrade pip >&2

TORCH_ARGS=()
if [ -n "${TORCH_INDEX_URL:-}" ]; then
    log "installing torch==$TORCH_VERSION from TORCH_INDEX_URL"
    "$VPY" -m pip install --disable-pip-version-check \
        --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION" >&2
else
    TORCH_ARGS=("torch==$TORCH_VERSION")
fi

log "installing packages (torch from PyPI brings the nvidia-* runtime: a few GB)"
"$VPY" -m pip install --disable-pip-version-check \
    "${TORCH_ARGS[@]}" \
    "transformers==$TRANSFORMERS_VERSION" \
    "peft==$PEFT_VERSION" \
    "gguf==$GGUF_VERSION" \
    "tokenizers==$TOKENIZERS_VERSION" \
    "sentencepiece==$SENTENCEPIECE_VERSION" \
    "accelerate==$ACCELERATE_VERSION" \
    "safetensors==$SAFETENSORS_VERSION" \
    "huggingface_hub==$HF_HUB_VERSION" \
    "numpy==$NUMPY_VERSION" >&2

if ! check_venv; then
    log "ERROR: the venv at $VENV does not import torch/transformers/peft/gguf at the pinned versions"
    "$VPY" -c 'import torch, transformers, peft, gguf' >&2 || true
    exit 1
fi

log "done in $(( $(date +%s) - start ))s; venv size $(du -sh "$VENV" 2>/dev/null | cut -f1)"
"$VPY" - >&2 <<'EOF'
from importlib.metadata import version
print("peft-setup: " + " ".join(f"{p}=={version(p)}" for p in
      ["torch", "transformers", "peft", "gguf", "tokenizers", "sentencepiece",
       "accelerate", "safetensors", "huggingface_hub", "numpy"]))
EOF
echo "$VPY"

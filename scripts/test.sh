#!/usr/bin/env bash
# The project's test command: release build, the default model and the tokenizer test data
# (both cached under $PIPESPEC_HOME, default ~/.cache/pipespec), then every test in the workspace.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release
./target/release/pipespec fetch
bash scripts/fetch-test-data.sh
# The official OpenAI client, driven by the server's tests.
python3 -m pip install --quiet 'openai>=1,<3'
cargo test --release --workspace --no-fail-fast

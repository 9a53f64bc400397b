#!/usr/bin/env bash
# Serving throughput side by side with llama-server, alternating, in one run: N concurrent
# streaming chat clients (greedy, ignore_eos, TOKENS tokens each) through the load example.
# Usage: LLAMA_SERVER=/path/to/llama-server scripts/bench-serve.sh [STREAMS ...]   (default 1 8 16)
#   MODEL      the target (default: the default model); THREADS (2); TOKENS (64); ROUNDS (2)
#   CHAIN      pipespec's --chain instead of --model (e.g. draft.gguf,target.gguf)
#   STRATEGY   pipespec's --strategy (default ar); ASK sets the strategy each request names
#   WARMUP=1 runs the load once unmeasured first (so the batching policy has measured passes
#   and acceptance); SKIP_LLAMA=1 runs pipespec only. llama-server is built by ../shared/tools/llamacpp-anchor.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
streams=("$@")
[ ${#streams[@]} -eq 0 ] && streams=(1 8 16)
threads=${THREADS:-2}
tokens=${TOKENS:-64}
rounds=${ROUNDS:-2}
model=${MODEL:-$(python3 -c 'import os,pathlib; h=os.environ.get("PIPESPEC_HOME") or str(pathlib.Path.home()/".cache/pipespec"); print(h+"/models/SmolLM2-135M-Instruct.Q4_1.gguf")')}
pipespec=${PIPESPEC_BIN:-./target/release/pipespec}
load=${LOAD_BIN:-./target/release/examples/load}
port=18080
[ -x "$load" ] || cargo build --release -q -p pipespec-server --example load

wait_up() {
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server did not come up" >&2
  return 1
}

run_load() { # ENGINE N
  local out
  [ -n "${WARMUP:-}" ] && "$load" "http://127.0.0.1:$port" "$2" "$tokens" ${ASK:-} >/dev/null
  out=$("$load" "http://127.0.0.1:$port" "$2" "$tokens" ${ASK:-} | tr '\n' ' ')
  printf "%-10s %3s streams | %s\n" "$1" "$2" "$out"
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

for round in $(seq "$rounds"); do
  for n in "${streams[@]}"; do
    if [ -n "${CHAIN:-}" ]; then levels=(--chain "$CHAIN"); else levels=(--model "$model"); fi
    "$pipespec" serve "${levels[@]}" --strategy "${STRATEGY:-ar}" --threads "$threads" \
      --port "$port" --max-concurrent "$(( n > 16 ? n : 16 ))" --ctx-size 1024 2>/dev/null &
    pid=$!
    wait_up && run_load "pipespec" "$n"
    stop "$pid"
    if [ -z "${SKIP_LLAMA:-}" ]; then
      server=${LLAMA_SERVER:?set LLAMA_SERVER to a llama-server binary (or SKIP_LLAMA=1)}
      LD_LIBRARY_PATH="$(dirname "$server")" "$server" -m "$model" -t "$threads" -np "$n" \
        -c "$(( n * 1024 ))" --port "$port" >/dev/null 2>&1 &
      pid=$!
      wait_up && run_load "llama" "$n"
      stop "$pid"
    fi
  done
done

#!/usr/bin/env python3
"""Side-by-side decode speed of the strategies on Spec-Bench prompts, interleaved per prompt.

Usage: scripts/compare-strategies.py [--per-category N] [--max-tokens 128] [--threads 2]

Builds nothing: run `cargo build --release` first. Makes the full-precision target with
`pipespec convert` when it is missing. Greedy, --ignore-eos, so every strategy must produce
exactly the target's `ar` tokens; a mismatch is reported as an error.
"""
import argparse
import collections
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "pipespec"
HOME = pathlib.Path(os.environ.get("PIPESPEC_HOME") or pathlib.Path.home() / ".cache" / "pipespec")
Q4 = HOME / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
F32 = HOME / "models" / "SmolLM2-135M-Instruct.F32.gguf"
QUESTIONS = ROOT.parent / "shared" / "data" / "spec_bench" / "question.jsonl"
CATEGORIES = ["summarization", "rag", "translation", "qa", "math_reasoning", "writing", "coding", "extraction"]

# (label, target, strategy, chain)
CONFIGS = [
    ("ar q4_1", "q4_1", "ar", [Q4]),
    ("lookup ngram->q4_1", "q4_1", "lookup", ["ngram", Q4]),
    ("ar f32", "f32", "ar", [F32]),
    ("sd q4_1->f32", "f32", "sd", [Q4, F32]),
    ("lookup ngram->f32", "f32", "lookup", ["ngram", F32]),
    ("staged q4_1->f32", "f32", "staged", [Q4, F32]),
    ("staged ngram->q4_1->f32", "f32", "staged", ["ngram", Q4, F32]),
    ("pipespec q4_1->f32", "f32", "pipespec", [Q4, F32]),
    ("pipespec ngram->q4_1->f32", "f32", "pipespec", ["ngram", Q4, F32]),
]


def run(strategy, chain, prompt, args):
    command = [str(BIN), "generate", "--json", "--ignore-eos", "--max-tokens", str(args.max_tokens),
               "--threads", str(args.threads), "--strategy", strategy, "--chain", ",".join(map(str, chain))]
    if args.window:
        command += ["--window", str(args.window)]
    done = subprocess.run(command, input=prompt, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: {done.stderr}")
    return json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-category", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window", type=int, default=0)
    args = parser.parse_args()
    if not F32.exists():
        subprocess.run([str(BIN), "convert", str(Q4), str(F32), "--type", "f32"], check=True)
    questions = [json.loads(line) for line in QUESTIONS.open()]
    prompts = []
    for category in CATEGORIES:
        prompts += [(category, q["turns"][0]) for q in questions if q["category"] == category][: args.per_category]
    results = collections.defaultdict(list)  # label -> [(category, json)]
    errors = []
    # Warm-up (page cache, allocator) excluded from the figures.
    for _, target, strategy, chain in CONFIGS:
        run(strategy, chain, "Hello", args)
    for index, (category, prompt) in enumerate(prompts):
        reference = {}
        for label, target, strategy, chain in CONFIGS:
            out = run(strategy, chain, prompt, args)
            if strategy == "ar":
                reference[target] = out["tokens"]
            elif out["tokens"] != reference[target]:
                errors.append(f"{label} differs from ar on prompt {index} ({category})")
            results[label].append((category, out))
        print(f"[{index + 1}/{len(prompts)}] {category}", file=sys.stderr)

    def summary(rows):
        decode = sum(r["decode_tok_s"] for _, r in rows) / len(rows)
        ttft = sum(r["ttft_s"] for _, r in rows) / len(rows)
        ms_per_token = 1000 * sum(r["wall_s"] for _, r in rows) / sum(len(r["tokens"]) for _, r in rows)
        return decode, ttft, ms_per_token

    print(f"{len(prompts)} prompts, {args.max_tokens} new tokens, {args.threads} threads, greedy\n")
    print("| strategy | categories | decode tok/s | vs ar | ttft s | vs ar | ms/token | acceptance per level |")
    print("|---|---|---|---|---|---|---|---|")
    groups = [("all", None), ("summarization+rag", {"summarization", "rag"})]
    for group, members in groups:
        for label, target, _, _ in CONFIGS:
            rows = [r for r in results[label] if members is None or r[0] in members]
            base = [r for r in results[f"ar {target}"] if members is None or r[0] in members]
            decode, ttft, ms = summary(rows)
            base_decode, base_ttft, _ = summary(base)
            levels = rows[0][1].get("levels", [])
            acceptance = []
            for level in range(len(levels) - 1):
                drafted = sum(r["levels"][level]["n_drafted"] for _, r in rows)
                accepted = sum(r["levels"][level]["n_accepted"] for _, r in rows)
                acceptance.append(f"{accepted / drafted:.0%}" if drafted else "-")
            print(f"| {label} | {group} | {decode:.1f} | {decode / base_decode:.2f}x | {ttft:.2f} | "
                  f"{ttft / base_ttft:.2f}x | {ms:.1f} | {' / '.join(acceptance) or '-'} |")
    print("\nmismatches:", "; ".join(errors) if errors else "none")


if __name__ == "__main__":
    main()

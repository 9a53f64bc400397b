#!/usr/bin/env python3
"""lookup's window and n-gram range against ar on Spec-Bench summarization and RAG prompts (f32 target).

Usage: scripts/sweep-lookup-window.py   (after `cargo build --release`; makes the f32 file with
`pipespec convert` when missing)
"""
import json
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = str(ROOT / "target" / "release" / "pipespec")
HOME = pathlib.Path(os.environ.get("PIPESPEC_HOME") or pathlib.Path.home() / ".cache" / "pipespec")
Q4 = str(HOME / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf")
F32 = str(HOME / "models" / "SmolLM2-135M-Instruct.F32.gguf")
QUESTIONS = ROOT.parent / "shared" / "data" / "spec_bench" / "question.jsonl"
SETTINGS = [(2, 2, 3), (3, 2, 3), (4, 2, 3), (6, 2, 3), (10, 2, 3), (3, 3, 4), (6, 3, 4), (6, 1, 3)]


def run(extra, prompt):
    command = [BIN, "generate", "--json", "--ignore-eos", "--max-tokens", "128", "--threads", "2"] + extra
    return json.loads(subprocess.run(command, input=prompt, capture_output=True, text=True, check=True).stdout)


def main():
    if not os.path.exists(F32):
        subprocess.run([BIN, "convert", Q4, F32, "--type", "f32"], check=True)
    questions = [json.loads(line) for line in QUESTIONS.open()]
    prompts = [q["turns"][0] for q in questions if q["category"] == "summarization"][2:5]
    prompts += [q["turns"][0] for q in questions if q["category"] == "rag"][2:5]
    configs = [("ar", ["--strategy", "ar", "--chain", F32])]
    configs += [(f"lookup window {w} n {a}-{b}", ["--strategy", "lookup", "--chain", "ngram," + F32, "--window", str(w),
                                                 "--ngram-min", str(a), "--ngram-max", str(b)]) for w, a, b in SETTINGS]
    results = {name: [] for name, _ in configs}
    for prompt in prompts:  # interleaved per prompt
        for name, extra in configs:
            results[name].append(run(extra, prompt))
    base = sum(r["decode_tok_s"] for r in results["ar"]) / len(prompts)
    for name, _ in configs:
        rows = results[name]
        decode = sum(r["decode_tok_s"] for r in rows) / len(rows)
        drafted = sum(r["levels"][0]["n_drafted"] for r in rows) if name != "ar" else 0
        accepted = sum(r["levels"][0]["n_accepted"] for r in rows) if name != "ar" else 0
        print(f"{name}: {decode:.1f} tok/s, {decode / base:.2f}x ar" + (f", accepted {accepted}/{drafted}" if drafted else ""))


if __name__ == "__main__":
    main()

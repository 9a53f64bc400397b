#!/usr/bin/env python3
"""PyTorch + PEFT LoRA fine-tuning baseline, to compare with `pipespec tune`.

Set up the interpreter with scripts/peft-setup.sh, then:

    PY=$(bash scripts/peft-setup.sh | tail -n1)
    "$PY" scripts/tune-peft.py --model BASE.gguf --train TRAIN.jsonl --steps 20

The GGUF is loaded (dequantized) by transformers into float32 on CPU and
wrapped with a PEFT LoRA adapter; training is a plain loop (no HF Trainer):
AdamW, linear warm-up then cosine decay to 0, global-norm clipping at 1.0.

Data: JSONL lines {"prompt": str, "completion": str}. An example's tokens are
[BOS if the GGUF/tokenizer adds one] + prompt + completion (+ EOS with
--append-eos); only the completion (and that EOS) are labels. Over --max-seq,
prompt tokens are dropped from the front (BOS kept, at least one prompt token
kept, whole completion kept); an example that cannot fit is skipped.

Timing: step 1 is a warm-up, excluded from tokens_per_s, which is the non-pad
tokens of steps 2..N over their wall time. Progress goes to stderr; stdout
gets exactly one JSON object at the end.
"""

import argparse
import json
import math
import os
import random
import resource
import sys
import time

SHORT_TARGETS = {
    "q": "q_proj",
    "k": "k_proj",
    "v": "v_proj",
    "o": "o_proj",
    "gate": "gate_proj",
    "up": "up_proj",
    "down": "down_proj",
}


def log(*args):
    print("tune-peft:", *args, file=sys.stderr, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="base model .gguf")
    p.add_argument("--train", required=True, help="JSONL of {prompt, completion}")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--targets", default="q,k,v,o,gate,up,down",
                   help="comma list of " + ",".join(SHORT_TARGETS))
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--max-seq", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--append-eos", action="store_true",
                   help="append EOS to each completion as a label (as pipespec tune does)")
    a = p.parse_args()
    if a.steps < 1 or a.batch < 1 or a.max_seq < 2 or a.rank < 1 or a.threads < 1:
        p.error("--steps, --batch, --rank, --threads must be >= 1 and --max-seq >= 2")
    if a.warmup_steps < 0:
        p.error("--warmup-steps must be >= 0")
    targets = []
    for t in a.targets.split(","):
        t = t.strip()
        if not t:
            continue
        if t not in SHORT_TARGETS:
            p.error(f"unknown target {t!r}: use {','.join(SHORT_TARGETS)}")
        targets.append(SHORT_TARGETS[t])
    if not targets:
        p.error("--targets is empty")
    a.target_modules = targets
    return a


def gguf_metadata(path):
    """A few tokenizer.ggml.* fields of the GGUF (None where absent)."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    out = {}
    for key in ("tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token",
                "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                "tokenizer.ggml.padding_token_id"):
        field = reader.fields.get(key)
        out[key] = field.contents() if field is not None else None
    return out


def lr_factor(step, total, warmup):
    """Rate multiplier of 0-based step `step`: (step+1)/warmup during warm-up,
    then cosine from 1 towards 0 over the remaining steps (the same schedule
    as pipespec tune's optim.rs)."""
    if step < warmup:
        return (step + 1) / warmup
    span = max(total - warmup, 1)
    progress = min((step - warmup) / span, 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def main():
    args = parse_args()
    t_start = time.perf_counter()

    import torch

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(args.threads)
    except RuntimeError:
        pass
    torch.manual_seed(args.seed)
    random.seed(args.seed)

    import transformers
    import peft
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_path = os.path.abspath(args.model)
    model_dir, model_file = os.path.split(model_path)

    # ---- load ------------------------------------------------------------
    t_load = time.perf_counter()
    meta = gguf_metadata(model_path)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, gguf_file=model_file)
    # transformers 5 renamed torch_dtype to dtype (the old name still works, with a warning).
    dtype_kw = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, gguf_file=model_file, **{dtype_kw: torch.float32})
    model.to("cpu")
    model.config.use_cache = False
    lora = LoraConfig(
        r=args.rank,
        lora_alpha=args.alpha,
        lora_dropout=0.0,
        bias="none",
        target_modules=args.target_modules,
        task_type=TaskType.CAUSAL_LM,
    )
    model = get_peft_model(model, lora)
    load_s = time.perf_counter() - t_load
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total_params = sum(p.numel() for p in model.parameters())
    log(f"loaded {model_file} in {load_s:.1f}s: {total_params} params, "
        f"{trainable} trainable (LoRA r={args.rank} alpha={args.alpha} on {','.join(args.target_modules)})")

    # ---- tokens ----------------------------------------------------------
    # The GGUF's own flag decides whether a BOS is added (that is what
    # llama.cpp-style engines, pipespec included, follow); the tokenizer's
    # add_bos_token only where the GGUF says nothing.
    gguf_bos = meta["tokenizer.ggml.add_bos_token"]
    add_bos = bool(gguf_bos) if gguf_bos is not None else bool(getattr(tokenizer, "add_bos_token", False))
    bos_id = tokenizer.bos_token_id
    if bos_id is None:
        bos_id = meta["tokenizer.ggml.bos_token_id"]
    if add_bos and bos_id is None:
        log("warning: the model asks for BOS but has no BOS id; not adding one")
        add_bos = False
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        eos_id = meta["tokenizer.ggml.eos_token_id"]
    if args.append_eos and eos_id is None:
        sys.exit("tune-peft: --append-eos but the model has no EOS id")
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = meta["tokenizer.ggml.padding_token_id"]
    if pad_id is None:
        pad_id = eos_id if eos_id is not None else 0
    log(f"add_bos={add_bos} (gguf {gguf_bos}, tokenizer {getattr(tokenizer, 'add_bos_token', None)}) "
        f"bos={bos_id} eos={eos_id} pad={pad_id} append_eos={args.append_eos}")

    examples = []
    skipped = 0
    with open(args.train, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) \
                    or not isinstance(row.get("completion"), str):
                sys.exit(f"tune-peft: {args.train}:{lineno}: need {{\"prompt\": str, \"completion\": str}}")
            head = [bos_id] if add_bos else []
            prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
            answer = tokenizer(row["completion"], add_special_tokens=False)["input_ids"]
            if args.append_eos:
                answer = answer + [eos_id]
            if not answer:
                skipped += 1
                continue
            over = len(head) + len(prompt) + len(answer) - args.max_seq
            if over > 0:
                # Drop the oldest prompt tokens; keep BOS, one prompt token
                # (something to predict the first completion token from) and
                # the whole completion.
                droppable = max(len(prompt) - 1, 0)
                if over > droppable:
                    skipped += 1
                    continue
                prompt = prompt[over:]
            ids = head + prompt + answer
            labels = [-100] * (len(head) + len(prompt)) + answer
            examples.append((ids, labels))
    if not examples:
        sys.exit(f"tune-peft: no usable example in {args.train}")
    if skipped:
        log(f"warning: skipped {skipped} example(s) that do not fit --max-seq {args.max_seq}")
    random.Random(args.seed).shuffle(examples)
    log(f"{len(examples)} examples, mean {sum(len(e[0]) for e in examples) / len(examples):.1f} tokens")

    def batch_at(step):
        rows = [examples[(step * args.batch + i) % len(examples)] for i in range(args.batch)]
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (ids, lab) in enumerate(rows):
            n = len(ids)
            input_ids[r, :n] = torch.tensor(ids, dtype=torch.long)
            labels[r, :n] = torch.tensor(lab, dtype=torch.long)
            mask[r, :n] = 1
        return input_ids, mask, labels

    # ---- train -----------------------------------------------------------
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, args.steps, args.warmup_steps))

    model.train()
    losses = []
    tokens_trained = 0
    timed_tokens = 0
    timed_s = 0.0
    t_train = time.perf_counter()
    for step in range(args.steps):
        input_ids, mask, labels = batch_at(step)
        n_tokens = int(mask.sum())
        lr_now = optimizer.param_groups[0]["lr"]
        t0 = time.perf_counter()
        out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
        loss = out.loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm=1.0)
        optimizer.step()
        scheduler.step()
        dt = time.perf_counter() - t0
        loss_v = float(loss.detach())
        losses.append(loss_v)
        tokens_trained += n_tokens
        if step > 0:
            timed_tokens += n_tokens
            timed_s += dt
        log(f"step {step + 1}/{args.steps} loss {loss_v:.4f} lr {lr_now:.3e} "
            f"grad_norm {float(grad_norm):.3f} tokens {n_tokens} {dt:.2f}s "
            f"({n_tokens / max(dt, 1e-9):.1f} tok/s){' [warm-up, untimed]' if step == 0 else ''}")
    train_s = time.perf_counter() - t_train

    if timed_s > 0:
        tokens_per_s = timed_tokens / timed_s
    else:
        # A single step: nothing but the warm-up to time.
        tokens_per_s = tokens_trained / max(train_s, 1e-9)
        log("warning: --steps 1 leaves no timed step; tokens_per_s includes the warm-up")
    last = losses[-min(10, len(losses)):]
    result = {
        "engine": "pytorch+peft",
        "torch": torch.__version__,
        "peft": peft.__version__,
        "steps": args.steps,
        "batch": args.batch,
        "tokens_trained": tokens_trained,
        "tokens_per_s": tokens_per_s,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "load_s": load_s,
        "train_loss_first": losses[0],
        "train_loss_last": sum(last) / len(last),
        "wall_s": time.perf_counter() - t_start,
    }
    log(f"trained {tokens_trained} tokens in {train_s:.1f}s")
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

"""IAPT's cost next to LoRA and the bare backbone, measured side by side in one run.

    python -m experiments.overhead            # what `make overhead` runs -> results/overhead.csv

Training: one optimiser step (forward, backward, AdamW) at batch 8 x 64 tokens for IAPT (m = 16, 4 soft
tokens) and for LoRA on every linear module at the closest rank by tunable parameters (peft), plus the
frozen backbone's forward + backward with respect to its input embeddings (the least any PEFT method
pays). Decoding: greedy generation of 32 new tokens for one 64-token prompt, IAPT vs the bare backbone.
Variants are interleaved over repeats so that machine noise hits them alike; medians are reported.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from iapt.backbones import DEFAULT_BACKBONE, load_backbone
from iapt.errors import cli
from iapt.evaluation.evaluator import autocast, cpu_has_bf16
from iapt.baselines.registry import build_method
from iapt.harness.runinfo import RESULTS, run_metadata, write_results


def timed(fn, sync=lambda: None) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def timed_repeats(jobs: dict, repeats: int, sync) -> dict:
    """One warm-up of every job, then `repeats` rounds with the jobs interleaved: {job: [seconds, …]}."""
    for fn in jobs.values():
        fn()
    times = {k: [] for k in jobs}
    for _ in range(repeats):
        for k, fn in jobs.items():
            times[k].append(timed(fn, sync))
    return times


def training_jobs(models: dict, bare, ids, instr, labels, device: str, precision: str) -> dict:
    """One optimiser step of each tuned model, and the frozen backbone's forward + backward to its inputs."""
    opts = {name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
            for name, m in models.items()}

    def step(name):
        with autocast(device, precision):
            loss = models[name](input_ids=ids, instruction_mask=instr, labels=labels).loss   # LoRA ignores the mask
        loss.backward()
        opts[name].step()
        opts[name].zero_grad(set_to_none=True)

    def frozen_step():
        emb = bare.get_input_embeddings()(ids).detach().requires_grad_(True)
        with autocast(device, precision):
            loss = bare(inputs_embeds=emb, labels=labels).loss
        loss.backward()
    return {**{f"train_step/{name}": (lambda name=name: step(name)) for name in models},
            "train_step/frozen_backbone": frozen_step}


def decoding_jobs(models: dict, prompt, new_tokens: int, device: str, precision: str) -> dict:
    def decode(model):
        with torch.no_grad(), autocast(device, precision):
            model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    return {f"decode/{name}": (lambda model=model: decode(model)) for name, model in models.items()}


def summary_rows(times: dict, args, counts: dict, rank: int, precision: str) -> pd.DataFrame:
    rows = []
    for k, ts in times.items():
        kind, method = k.split("/")
        med = statistics.median(ts)
        rows.append({"measure": kind, "method": method, "median_s": med, "min_s": min(ts), "max_s": max(ts),
                     "repeats": len(ts), "tokens_per_s": args.new_tokens / med if kind == "decode" else None,
                     "trainable_params": counts.get(method), "lora_rank": rank if method == "lora" else None,
                     "batch": args.batch if kind == "train_step" else 1, "seq": args.seq,
                     "new_tokens": args.new_tokens if kind == "decode" else None, "precision": precision})
    return pd.DataFrame(rows)


@cli
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default=DEFAULT_BACKBONE)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    start = time.time()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = "bf16" if device == "cuda" or cpu_has_bf16() else "fp32"
    torch.manual_seed(0)
    iapt_model = build_method("iapt", load_backbone(args.backbone)[0].to(device), size=16)
    budget = iapt_model.get_nb_trainable_parameters()[0]
    lora_model = build_method("lora", load_backbone(args.backbone)[0].to(device), budget=budget)
    bare = load_backbone(args.backbone)[0].to(device)
    for p in bare.parameters():
        p.requires_grad_(False)
    ids = torch.randint(100, bare.config.vocab_size, (args.batch, args.seq), device=device)
    instr = torch.ones_like(ids, dtype=torch.bool)
    instr[:, -8:] = False
    labels = ids.masked_fill(instr, -100)
    jobs = {**training_jobs({"iapt": iapt_model, "lora": lora_model}, bare, ids, instr, labels, device, precision),
            **decoding_jobs({"iapt": iapt_model, "bare_backbone": bare}, ids[:1], args.new_tokens, device, precision)}
    times = timed_repeats(jobs, args.repeats, torch.cuda.synchronize if device == "cuda" else (lambda: None))
    counts = {"iapt": budget, "lora": sum(p.numel() for p in lora_model.parameters() if p.requires_grad)}
    df = summary_rows(times, args, counts, lora_model.identity.size, precision)
    med = df.set_index(["measure", "method"])["median_s"]
    ratios = {"iapt_step_over_lora_step": med["train_step", "iapt"] / med["train_step", "lora"],
              "iapt_decode_tokens_per_s_over_bare": med["decode", "bare_backbone"] / med["decode", "iapt"]}
    path = args.out_dir / "overhead.csv"
    write_results(df, path, run_metadata(device=device, backbone=args.backbone, precision=precision, seeds=[0],
                                         profile="cpu", wall_time_s=round(time.time() - start, 1), ratios=ratios,
                                         targets={"iapt_step_over_lora_step": "<= 1.3",
                                                  "iapt_decode_tokens_per_s_over_bare": ">= 0.95"}))
    print(df.to_string(index=False))
    print({k: round(v, 3) for k, v in ratios.items()})
    print(f"wrote {path} and {path.with_suffix('.meta.json')}")

if __name__ == "__main__":
    main()

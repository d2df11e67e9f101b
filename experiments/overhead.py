"""IAPT's cost next to LoRA and the bare backbone, measured side by side in one run.

    python -m experiments.overhead            # what `make overhead` runs -> results/overhead.csv

Training: one optimiser step (forward, backward, AdamW) on real batches of 8 — sst2 (short prompts, a one-token
answer) and Natural Instructions (long task definitions, responses of several tokens, cut to 192 tokens) — for
IAPT (m = 16, 4 soft tokens) with its frozen instruction prefix (iapt.method.prefix), the same IAPT with one
full pass, LoRA on every linear module at the closest rank by tunable parameters (peft), and the frozen
backbone's forward + backward with respect to its input embeddings (the least any PEFT method pays).
Decoding: greedy generation of 32 new tokens for one 64-token prompt, IAPT vs the bare backbone. Variants are
interleaved over repeats so that machine noise hits them alike; medians are reported.
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
from iapt.precision import autocast, in_effect
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
    from tqdm.auto import tqdm
    times = {k: [] for k in jobs}
    with tqdm(total=len(jobs) * (repeats + 1), desc="overhead", unit="job") as bar:
        for fn in jobs.values():
            fn()
            bar.update(1)
        for _ in range(repeats):
            for k, fn in jobs.items():
                times[k].append(timed(fn, sync))
                bar.update(1)
    return times


def high_water_mb() -> float:
    """This process's peak resident memory. /proc's VmHWM belongs to the process's own address space; getrusage's
    maxrss would carry over the parent's peak through fork and exec (Linux keeps it)."""
    import resource
    try:
        line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory_of_one_step(backbone: str, method: str, data: str) -> None:
    """Run in a fresh process (see `peak_memory`): two training steps of one configuration, then print the
    process's peak resident memory before and after them, in MB."""
    from iapt.baselines.registry import count_trainable
    torch.manual_seed(0)
    base, tokenizer = load_backbone(backbone)
    precision = in_effect("cpu", "bf16")
    if method.startswith("iapt"):
        model = build_method("iapt", base, size=16, **({"frozen_prefix": False} if method == "iapt_full_pass" else {}))
    else:
        model = build_method(method, base, budget=count_trainable("iapt", base, 16))
    batch = real_batch(tokenizer, data, 256 if data == "sst2" else 192, "cpu")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loaded = high_water_mb()
    for _ in range(2):
        with autocast("cpu", precision):
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    print(f"PEAK {loaded:.1f} {high_water_mb():.1f}")


def peak_memory(backbone: str, methods, datasets) -> pd.DataFrame:
    """Each configuration's training-step peak RSS, from a fresh process of its own (a process's peak never
    falls, so configurations run in one process would hide each other's)."""
    import subprocess
    import sys
    rows = []
    for method in methods:
        for data in datasets:
            out = subprocess.run([sys.executable, "-m", "experiments.overhead", "--one-step", method, data,
                                  "--backbone", backbone], capture_output=True, text=True, check=True).stdout
            loaded, peak = map(float, next(l for l in out.splitlines() if l.startswith("PEAK")).split()[1:])
            rows.append({"measure": "peak_memory", "method": method, "data": data, "rss_loaded_mb": loaded,
                         "rss_peak_mb": peak, "rss_step_mb": peak - loaded})
    return pd.DataFrame(rows)


def real_batch(tokenizer, task_name: str, max_length: int, device: str):
    """The first 8 training examples of a task in the pinned format, as the training loop batches them."""
    from iapt.data.format import collate
    from iapt.data.splits import load_split
    from iapt.data.tasks import get_task
    from iapt.training.loop import training_features
    features = training_features(tokenizer, get_task(task_name), load_split(task_name, "train")[:8], max_length)
    return {k: v.to(device) for k, v in vars(collate(features, tokenizer.pad_token_id)).items()}


def training_jobs(models: dict, bare, batches: dict, device: str, precision: str) -> dict:
    """One optimiser step of each tuned model on each batch, and the frozen backbone's forward + backward to its
    inputs."""
    opts = {name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
            for name, m in models.items()}

    def step(name, b):
        with autocast(device, precision):
            loss = models[name](**b).loss   # LoRA ignores the instruction mask
        loss.backward()
        opts[name].step()
        opts[name].zero_grad(set_to_none=True)

    def frozen_step(b):
        emb = bare.get_input_embeddings()(b["input_ids"]).detach().requires_grad_(True)
        with autocast(device, precision):
            loss = bare(inputs_embeds=emb, attention_mask=b["attention_mask"], labels=b["labels"]).loss
        loss.backward()
    jobs = {}
    for data, b in batches.items():
        jobs |= {f"train_step/{name}/{data}": (lambda name=name, b=b: step(name, b)) for name in models}
        jobs[f"train_step/frozen_backbone/{data}"] = lambda b=b: frozen_step(b)
    return jobs


def decoding_jobs(models: dict, prompt, new_tokens: int, device: str, precision: str) -> dict:
    def decode(model):
        with torch.no_grad(), autocast(device, precision):
            model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    return {f"decode/{name}/random": (lambda model=model: decode(model)) for name, model in models.items()}


def summary_rows(times: dict, args, counts: dict, rank: int, precision: str, shapes: dict) -> pd.DataFrame:
    rows = []
    for k, ts in times.items():
        kind, method, data = k.split("/")
        med = statistics.median(ts)
        rows.append({"measure": kind, "method": method, "data": data, "median_s": med, "min_s": min(ts),
                     "max_s": max(ts), "repeats": len(ts),
                     "tokens_per_s": args.new_tokens / med if kind == "decode" else None,
                     "trainable_params": counts.get(method), "lora_rank": rank if method == "lora" else None,
                     "batch": shapes[data][0], "seq": shapes[data][1],
                     "new_tokens": args.new_tokens if kind == "decode" else None, "precision": precision})
    return pd.DataFrame(rows)


@cli
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default=DEFAULT_BACKBONE)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--seq", type=int, default=64, help="the decoding prompt's length")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--one-step", nargs=2, metavar=("METHOD", "DATA"), help=argparse.SUPPRESS)   # peak_memory's child
    args = ap.parse_args(argv)
    if args.one_step:
        return peak_memory_of_one_step(args.backbone, *args.one_step)
    start = time.time()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = in_effect(device, "bf16")   # a benchmark: bf16 where the hardware has it
    torch.manual_seed(0)
    bare, tokenizer = load_backbone(args.backbone, device=device)
    iapt_model = build_method("iapt", load_backbone(args.backbone, device=device)[0], size=16)
    full_pass = build_method("iapt", load_backbone(args.backbone, device=device)[0], size=16, frozen_prefix=False)
    budget = iapt_model.get_nb_trainable_parameters()[0]
    lora_model = build_method("lora", load_backbone(args.backbone, device=device)[0], budget=budget)
    for p in bare.parameters():
        p.requires_grad_(False)
    batches = {"sst2": real_batch(tokenizer, "sst2", 256, device), "ni": real_batch(tokenizer, "ni", 192, device)}
    prompt = torch.randint(100, bare.config.vocab_size, (1, args.seq), device=device)
    models = {"iapt": iapt_model, "iapt_full_pass": full_pass, "lora": lora_model}
    jobs = {**training_jobs(models, bare, batches, device, precision),
            **decoding_jobs({"iapt": iapt_model, "bare_backbone": bare}, prompt, args.new_tokens, device, precision)}
    times = timed_repeats(jobs, args.repeats, torch.cuda.synchronize if device == "cuda" else (lambda: None))
    counts = {m: budget for m in ("iapt", "iapt_full_pass")}
    counts["lora"] = sum(p.numel() for p in lora_model.parameters() if p.requires_grad)
    shapes = {**{d: tuple(b["input_ids"].shape) for d, b in batches.items()}, "random": (1, args.seq)}
    df = summary_rows(times, args, counts, lora_model.identity.size, precision, shapes)
    med = df.set_index(["measure", "method", "data"])["median_s"]
    ratios = {f"iapt_step_over_{other}_step_{d}": med["train_step", "iapt", d] / med["train_step", other, d]
              for d in batches for other in ("lora", "iapt_full_pass")}
    ratios["iapt_decode_tokens_per_s_over_bare"] = med["decode", "bare_backbone", "random"] / med["decode", "iapt", "random"]
    if device == "cpu":
        memory = peak_memory(args.backbone, list(models), list(batches))
        df = pd.concat([df, memory], ignore_index=True)
        by = memory.set_index(["method", "data"])["rss_step_mb"]
        ratios |= {f"iapt_step_memory_over_lora_{d}": by["iapt", d] / by["lora", d] for d in batches}
    path = args.out_dir / "overhead.csv"
    write_results(df, path, run_metadata(device=device, backbone=args.backbone, precision=precision, seeds=[0],
                                         profile="cpu", wall_time_s=round(time.time() - start, 1), ratios=ratios,
                                         targets={"iapt_step_over_lora_step_sst2": "<= 0.5",
                                                  "iapt_decode_tokens_per_s_over_bare": ">= 0.95"}))
    print(df.to_string(index=False))
    print({k: round(v, 3) for k, v in ratios.items()})
    print(f"wrote {path} and {path.with_suffix('.meta.json')}")

if __name__ == "__main__":
    main()

"""Table 5: one frozen backbone serving many tenants in one batch — IAPT against unmerged LoRA, side by side.

    python -m experiments.table5_multitenant --profile cpu      # what `make table5` runs (about 30 min here)
    python -m experiments.table5_multitenant --profile gpu      # cpu's grid, SmolLM2-1.7B architecture, random weights
    python -m experiments.table5_multitenant --profile full     # every factor (hours on this CPU; for a GPU)
    python -m experiments.table5_multitenant --profile smoke    # tiny random model, temporary folder

Around a central point (batch 32, 16 tenants, 64-token prompts, 32 new tokens) one factor varies at a time:
`cpu` varies the batch (1, 8) and the tenants (1, 32); `full` also 4 tenants, 32- and 128-token prompts and
16 and 64 new tokens. Per configuration and method, after a short warm-up, each repeat times one greedy
generation of exactly N new tokens (end-of-sequence ignored) with a clock that stamps every token: time to
first token (prefill), per-token decode latency and tokens/s all come from the same run. Methods run
interleaved within each repeat, so machine noise hits all alike. Adapters are random, non-zero and distinct
per tenant (speed does not depend on trained values); LoRA sits on every linear module at IAPT's
tunable-parameter budget (and on q, v only as a second point).
With --random-weights the backbone is built from its config alone (a folder holding config.json, e.g.
experiments/backbone_configs/smollm2-1.7b) with random weights on the device: tokens/s does not depend on the
weights' values, and a machine without the weights (or network) can still time a larger backbone.
Output (+ .meta.json), rewritten after each configuration: results/table5.csv (cpu), results/table5_full.csv
(full on a CPU), results/table5_gpu-<backbone>.csv (any profile on a GPU, the device named in the metadata).

The shared-prefix scenario (`shared_prefix` in the profile; --scenario shared_prefix runs it alone): every request
is one task definition of ~150 tokens (as in Natural Instructions) plus a short input of its own, in one
mixed-tenant batch. IAPT computes the shared prefix once for the batch (its prefix is the bare backbone's:
iapt/serving/shared_prefix.py), as the bare backbone does; gathered all-linear LoRA can share it only within a
tenant (once per distinct tenant), and is also timed prefilling every row in full. Output:
table5_shared_prefix.csv (table5_shared_prefix_gpu-<backbone>.csv on a GPU), with the time-to-first-token ratios
IAPT ÷ LoRA (the better of its two ways) and IAPT ÷ bare in the metadata.
"""
from __future__ import annotations

import copy
import functools
import os
import statistics
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import torch
from tqdm.auto import tqdm

from iapt import IAPTConfig
from iapt.backbones import load_backbone
from iapt.harness.scriptargs import chosen_profile, profile_parser
from iapt.errors import cli
from iapt.precision import autocast, in_effect
from iapt.method.generator import build_generators, theta_ids
from iapt.baselines.registry import count_trainable, size_for_budget
from iapt.harness.runinfo import COMMIT_AT_START, REPO, RESULTS, run_metadata, write_results
from experiments.common import load_settings
from iapt.serving.multitenant import (BareBackbone, GatheredLoRA, PeftMixedLoRA, StepClock, TenantIAPT,
                          TenantPromptTuning, random_lora)
from iapt.serving.shared_prefix import bare_shared, iapt_shared, lora_shared

# table5_multitenant.yaml beside this file
PROFILES = load_settings(__file__, ("backbone", "central", "vary", "repeats", "random_weights", "expected",
                                    "shared_prefix"))
CENTRAL = PROFILES["cpu"]["central"]
WARMUP_TOKENS = 2
METHODS = ["bare", "iapt", "lora_gathered", "lora_qv_gathered", "lora_peft", "prompt_tuning"]


class PeakMemory:
    """Memory a block adds at its peak: CUDA's allocator peak, or on CPU the process RSS sampled every 5 ms, each
    over what was held when the block began (the resident backbones)."""

    def __init__(self, device):
        self.device, self.peak = torch.device(device), 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)   # every server's resident backbone copy
            return self
        self.process, self.running = psutil.Process(), True
        self.base = self.peak = self.process.memory_info().rss
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.mb = (torch.cuda.max_memory_allocated(self.device) - self.base) / 2 ** 20   # growth, as on CPU
        else:
            self.running = False
            self.thread.join()
            self.mb = (self.peak - self.base) / 2 ** 20   # growth over the resident backbone
        return False


def commit_sent_to_device() -> dict:
    """A device machine gets a copy of the working tree whose git (if any) names the session's starting commit
    as dirty: the caller names the commit it sent in IAPT_GIT_COMMIT, and what git said there is kept beside it."""
    if os.environ.get("IAPT_GIT_COMMIT"):
        return {"git_commit": os.environ["IAPT_GIT_COMMIT"], "git_commit_on_device": COMMIT_AT_START}
    return {}


def random_backbone(config_dir: str, device):
    """The backbone's architecture with random weights, initialised directly on the device (fast for 1B+)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    folder = Path(config_dir) if Path(config_dir).exists() else REPO / config_dir   # profiles name it from the repo
    with torch.device(device):
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=torch.float32)


def build_servers(backbone: str, tenants: int, device, prompt_tokens: int = 16,
                  random_weights: bool = False) -> tuple[dict, dict]:
    """One server per method over a fresh copy of the backbone; returns (servers, tunable params per tenant)."""
    torch.manual_seed(0)
    if random_weights:
        ref = random_backbone(backbone, device)
        base = lambda: copy.deepcopy(ref)   # noqa: E731
    else:
        base = lambda: load_backbone(backbone)[0].to(device)   # noqa: E731
        ref = base()
    text = ref.config.get_text_config()
    config = IAPTConfig()
    generator_sets = []
    for _ in range(tenants):   # generators only: the tenants share the one backbone
        gens = build_generators(config, text.num_hidden_layers, text.hidden_size)
        with torch.no_grad():
            for p in gens.parameters():
                if id(p) not in theta_ids(gens):
                    p.normal_(0, 0.02)
        generator_sets.append(gens)
    budget = count_trainable("iapt", ref, config.bottleneck_dim)
    rank = size_for_budget("lora", ref, budget)
    rank_qv = size_for_budget("lora_qv", ref, budget)
    weights = random_lora(ref, tenants, rank)
    weights_qv = random_lora(ref, tenants, rank_qv, targets=("q_proj", "v_proj"))
    d = text.hidden_size
    servers = {"bare": BareBackbone(ref), "iapt": TenantIAPT(base(), config, generator_sets),
               "lora_gathered": GatheredLoRA(base(), weights), "lora_qv_gathered": GatheredLoRA(base(), weights_qv),
               "lora_peft": PeftMixedLoRA(base(), weights, rank),
               "prompt_tuning": TenantPromptTuning(base(), torch.randn(tenants, prompt_tokens, d) * 0.02)}
    count = lambda w: sum(a[0].numel() + a[1].numel() for a in w.values()) // tenants   # noqa: E731
    params = {"bare": 0, "iapt": budget, "lora_gathered": count(weights), "lora_qv_gathered": count(weights_qv),
              "lora_peft": count(weights), "prompt_tuning": prompt_tokens * d}
    sizes = {"iapt": f"m={config.bottleneck_dim}", "lora_gathered": f"r={rank}", "lora_qv_gathered": f"r={rank_qv}",
             "lora_peft": f"r={rank}", "prompt_tuning": f"{prompt_tokens} tokens"}
    for s in servers.values():
        s.to(device).eval()
    return servers, {"params": params, "sizes": sizes}


def requests(cfg: dict, vocab: int, device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(100, vocab, (cfg["batch"], cfg["prompt"]), generator=g)
    tenants = torch.arange(cfg["batch"]) % cfg["tenants"]
    return ids.to(device), torch.ones_like(ids).to(device), tenants.to(device)


def configurations(central: dict, vary: dict) -> list[tuple[str, dict]]:
    out = [("central", dict(central))]
    for factor, values in vary.items():
        for v in values:
            cfg = {**central, factor: v}
            if factor == "batch":   # fewer requests than tenants: every request its own tenant
                cfg["tenants"] = min(cfg["tenants"], v)
            if cfg["tenants"] <= cfg["batch"] and cfg != central:
                out.append((factor, cfg))
    return out


def served_in_full(server, prefix, ids, mask, tenants, new: int, clock):
    """No sharing: prefix + input as each row's own prompt."""
    return server.generate(*in_full(prefix, ids, mask), tenants, new, clock=clock)


SHARED_METHODS = {   # name: (server, how it serves a batch whose requests share one prefix)
    "bare, prefix once": ("bare", bare_shared),
    "iapt, prefix once": ("iapt", iapt_shared),
    "lora_gathered, prefix per tenant": ("lora_gathered", lora_shared),
    "lora_gathered, every row in full": ("lora_gathered", served_in_full),
    "iapt, every row in full": ("iapt", served_in_full),
}


def in_full(prefix, ids, mask):
    """Prefix + each row's input as one left-padded prompt per row (no sharing)."""
    rows = [torch.cat([prefix, r[m.bool()]]) for r, m in zip(ids, mask)]
    n = max(len(r) for r in rows)
    full = torch.zeros(len(rows), n, dtype=ids.dtype, device=ids.device)
    full_mask = torch.zeros_like(full)
    for i, r in enumerate(rows):
        full[i, n - len(r):], full_mask[i, n - len(r):] = r, 1
    return full, full_mask


def shared_requests(cfg: dict, vocab: int, device, seed: int = 0):
    """One prefix of cfg["prefix"] tokens; per row an input of cfg["input"] // 2 to cfg["input"] tokens, left-padded."""
    g = torch.Generator().manual_seed(seed)
    prefix = torch.randint(100, vocab, (cfg["prefix"],), generator=g)
    lengths = torch.randint(max(1, cfg["input"] // 2), cfg["input"] + 1, (cfg["batch"],), generator=g)
    ids = torch.randint(100, vocab, (cfg["batch"], cfg["input"]), generator=g)
    mask = (torch.arange(cfg["input"])[None] >= cfg["input"] - lengths[:, None]).long()
    tenants = torch.arange(cfg["batch"]) % cfg["tenants"]
    return prefix.to(device), (ids * mask).to(device), mask.to(device), tenants.to(device)


def stamp(times: dict, clock: StepClock, mem: PeakMemory) -> None:
    """One timed generation's numbers, from its clock and its memory probe."""
    for key, value in (("full", clock.total_s), ("first", clock.first_token_s), ("decode", clock.decode_s_per_token),
                       ("mem", mem.mb)):
        times[key].append(value)


def summary(times: dict, tokens: int) -> dict:
    med = statistics.median(times["full"])
    return {"tokens_per_s": tokens / med, "tokens_per_s_min": tokens / max(times["full"]),
            "tokens_per_s_max": tokens / min(times["full"]), "ttft_s": statistics.median(times["first"]),
            "ttft_s_min": min(times["first"]), "ttft_s_max": max(times["first"]),
            "decode_ms_per_token": 1000 * statistics.median(times["decode"]),
            "peak_memory_mb": max(times["mem"]), "full_s_median": med}


def interleaved(generations: dict, rows: int, new: int, repeats: int, device, precision, clock, desc: str) -> dict:
    """{name: its times}: a warm-up round of WARMUP_TOKENS (same shapes), then `repeats` rounds of `new` tokens, the
    generations interleaved within each round so that machine noise hits all alike. generations[name](n) generates
    n tokens for `rows` rows, stamping `clock`."""
    times = {m: {"full": [], "first": [], "decode": [], "mem": []} for m in generations}
    for rep in tqdm(range(repeats + 1), desc=desc, leave=False):
        n = new if rep else WARMUP_TOKENS
        for m, generate in generations.items():
            with PeakMemory(device) as mem, autocast(device, precision):
                tokens = generate(n)
            assert tokens.shape == (rows, n) and len(clock.stamps) == n
            if rep:
                stamp(times[m], clock, mem)
    return times


def grid_rows(servers, info, configs, repeats, device, precision, clock, vocab, write) -> list[dict]:
    rows = []
    for factor, cfg in tqdm(configs, desc="table5 configurations", unit="cfg"):
        ids, mask, tenants = requests(cfg, vocab, device)
        generations = {m: functools.partial(servers[m].generate, ids, mask, tenants, clock=clock) for m in METHODS}
        times = interleaved(generations, cfg["batch"], cfg["new"], repeats, device, precision, clock, f"{factor} repeats")
        for m in METHODS:
            rows.append({"factor": factor, **cfg, "method": m, "size": info["sizes"].get(m, ""),
                         "tunable_params_per_tenant": info["params"][m],
                         **summary(times[m], cfg["batch"] * cfg["new"]), "repeats": repeats, "precision": precision})
        tqdm.write(f"{factor} {cfg}: " + ", ".join(f"{r['method']} {r['tokens_per_s']:.0f} tok/s" for r in rows[-len(METHODS):]))
        write(pd.DataFrame(rows))
    return rows


def shared_prefix_rows(servers, info, cfg, repeats, device, precision, clock, vocab) -> tuple[list[dict], dict]:
    """The shared-prefix scenario, every method interleaved within each repeat; its rows and TTFT ratios."""
    prefix, ids, mask, tenants = shared_requests(cfg, vocab, device)
    generations = {m: functools.partial(serve, servers[server], prefix, ids, mask, tenants, clock=clock)
                   for m, (server, serve) in SHARED_METHODS.items()}
    times = interleaved(generations, cfg["batch"], cfg["new"], repeats, device, precision, clock, "shared-prefix repeats")
    rows = [{"scenario": "shared prefix", **cfg, "method": m, "server": server, "size": info["sizes"].get(server, ""),
             "tunable_params_per_tenant": info["params"][server], **summary(times[m], cfg["batch"] * cfg["new"]),
             "repeats": repeats, "precision": precision} for m, (server, _) in SHARED_METHODS.items()]
    ttft = {r["method"]: r["ttft_s"] for r in rows}
    best_lora = min(ttft["lora_gathered, prefix per tenant"], ttft["lora_gathered, every row in full"])
    ratios = {"iapt_ttft_over_best_lora": ttft["iapt, prefix once"] / best_lora,
              "iapt_ttft_over_bare": ttft["iapt, prefix once"] / ttft["bare, prefix once"],
              "iapt_ttft_over_iapt_in_full": ttft["iapt, prefix once"] / ttft["iapt, every row in full"],
              "target": "iapt_ttft_over_best_lora <= 0.5"}
    return rows, ratios


@cli
def main(argv=None):
    ap = profile_parser(__doc__, PROFILES)
    ap.add_argument("--backbone", help="override the profile's backbone (a local folder or hub id)")
    ap.add_argument("--random-weights", action="store_true",
                    help="build --backbone (a folder with config.json) with random weights: same speed, no weights needed")
    ap.add_argument("--repeats", type=int, help="repeats after the warm-up (default: the profile's)")
    ap.add_argument("--scenario", choices=("both", "grid", "shared_prefix"), default="both",
                    help="the configurations grid, the shared-prefix scenario, or both (default)")
    args = ap.parse_args(argv)
    prof, out_dir = chosen_profile(args, PROFILES, {name: RESULTS for name in ("cpu", "gpu", "full")})
    backbone, repeats = args.backbone or prof["backbone"], args.repeats or prof["repeats"]
    random_weights = args.random_weights or prof.get("random_weights", False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = in_effect(device, "bf16")   # a throughput benchmark: bf16 where the hardware has it
    suffix = f"_gpu-{Path(backbone).name}" if device == "cuda" else "_full" if args.profile == "full" else ""
    out, shared_out = out_dir / f"table5{suffix}.csv", out_dir / f"table5_shared_prefix{suffix}.csv"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    configs = configurations(prof["central"], prof["vary"]) if args.scenario != "shared_prefix" else []
    shared_cfg = prof.get("shared_prefix") if args.scenario != "grid" else None
    max_tenants = max([c["tenants"] for _, c in configs] + ([shared_cfg["tenants"]] if shared_cfg else []))
    start = time.time()
    servers, info = build_servers(backbone, max_tenants, device, random_weights=random_weights)
    vocab = servers["bare"].base_model.config.get_text_config().vocab_size

    def meta(**extra):
        return run_metadata(device=device, backbone=backbone, precision=precision, profile=args.profile,
                            random_weights=random_weights, **commit_sent_to_device(), seeds=[0], repeats=repeats,
                            wall_time_s=round(time.time() - start, 1), script="experiments/table5_multitenant.py",
                            **extra)
    print(f"Table 5 ({args.profile}): {len(configs)} configurations x {len(METHODS)} methods"
          + (f" and the shared-prefix scenario ({len(SHARED_METHODS)} ways)" if shared_cfg else "")
          + f", {repeats} repeats (after a {WARMUP_TOKENS}-token warm-up) on {device}, {precision}; "
          f"{prof.get('expected', '')}; writing {out if configs else ''} {shared_out if shared_cfg else ''}")
    clock = StepClock(sync)
    if configs:
        rows = grid_rows(servers, info, configs, repeats, device, precision, clock, vocab,
                         lambda df: write_results(df, out, meta(central=prof["central"])))
        print(pd.DataFrame(rows)[["factor", "batch", "tenants", "prompt", "new", "method", "tokens_per_s", "ttft_s",
                                  "decode_ms_per_token", "peak_memory_mb"]].to_string(index=False))
        print(f"wrote {out}")
    if shared_cfg:
        rows, ratios = shared_prefix_rows(servers, info, shared_cfg, repeats, device, precision, clock, vocab)
        write_results(pd.DataFrame(rows), shared_out, meta(shared_prefix=shared_cfg, ratios=ratios))
        print(pd.DataFrame(rows)[["method", "tokens_per_s", "ttft_s", "ttft_s_min", "ttft_s_max",
                                  "peak_memory_mb"]].to_string(index=False))
        print(", ".join(f"{k} = {v:.2f}" if isinstance(v, float) else f"({v})" for k, v in ratios.items()))
        print(f"wrote {shared_out}")


if __name__ == "__main__":
    main()

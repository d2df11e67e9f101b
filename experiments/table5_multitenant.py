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
"""
from __future__ import annotations

import copy
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
from iapt.precision import autocast, cpu_has_bf16
from iapt.method.generator import build_generators, theta_ids
from iapt.baselines.registry import count_trainable, size_for_budget
from iapt.harness.runinfo import COMMIT_AT_START, REPO, RESULTS, run_metadata, write_results
from experiments.common import load_settings
from iapt.serving.multitenant import (BareBackbone, GatheredLoRA, PeftMixedLoRA, StepClock, TenantIAPT,
                          TenantPromptTuning, random_lora)

# table5_multitenant.yaml beside this file
PROFILES = load_settings(__file__, ("backbone", "central", "vary", "repeats", "random_weights", "expected"))
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


@cli
def main(argv=None):
    ap = profile_parser(__doc__, PROFILES)
    ap.add_argument("--backbone", help="override the profile's backbone (a local folder or hub id)")
    ap.add_argument("--random-weights", action="store_true",
                    help="build --backbone (a folder with config.json) with random weights: same speed, no weights needed")
    ap.add_argument("--repeats", type=int, help="repeats after the warm-up (default: the profile's)")
    args = ap.parse_args(argv)
    prof, out_dir = chosen_profile(args, PROFILES, {name: RESULTS for name in ("cpu", "gpu", "full")})
    backbone, repeats = args.backbone or prof["backbone"], args.repeats or prof["repeats"]
    random_weights = args.random_weights or prof.get("random_weights", False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = "bf16" if device == "cuda" or cpu_has_bf16() else "fp32"
    name = f"table5_gpu-{Path(backbone).name}.csv" if device == "cuda" else "table5_full.csv" if args.profile == "full" else "table5.csv"
    out = out_dir / name
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    configs = configurations(prof["central"], prof["vary"])
    max_tenants = max(c["tenants"] for _, c in configs)
    start = time.time()
    servers, info = build_servers(backbone, max_tenants, device, random_weights=random_weights)
    vocab = servers["bare"].base_model.config.get_text_config().vocab_size
    rows = []
    print(f"Table 5 ({args.profile}): {len(configs)} configurations x {len(METHODS)} methods x {repeats} repeats "
          f"(after a {WARMUP_TOKENS}-token warm-up) on {device}, {precision}; {prof.get('expected', '')}; writing {out} "
          f"after each configuration")
    clock = StepClock(sync)
    for factor, cfg in tqdm(configs, desc="table5 configurations", unit="cfg"):
        ids, mask, tenants = requests(cfg, vocab, device)
        times = {m: {"full": [], "first": [], "decode": [], "mem": []} for m in METHODS}
        for rep in range(repeats + 1):   # round 0 is the warm-up (same shapes, few tokens)
            n = cfg["new"] if rep else WARMUP_TOKENS
            for m in METHODS:
                with PeakMemory(device) as mem, autocast(device, precision):
                    out_tokens = servers[m].generate(ids, mask, tenants, n, clock=clock)
                assert out_tokens.shape == (cfg["batch"], n) and len(clock.stamps) == n
                if rep:
                    times[m]["full"].append(clock.total_s)
                    times[m]["first"].append(clock.first_token_s)
                    times[m]["decode"].append(clock.decode_s_per_token)
                    times[m]["mem"].append(mem.mb)
        for m in METHODS:
            full = times[m]["full"]
            med = statistics.median(full)
            rows.append({"factor": factor, **cfg, "method": m, "size": info["sizes"].get(m, ""),
                         "tunable_params_per_tenant": info["params"][m],
                         "tokens_per_s": cfg["batch"] * cfg["new"] / med,
                         "tokens_per_s_min": cfg["batch"] * cfg["new"] / max(full),
                         "tokens_per_s_max": cfg["batch"] * cfg["new"] / min(full),
                         "ttft_s": statistics.median(times[m]["first"]),
                         "decode_ms_per_token": 1000 * statistics.median(times[m]["decode"]),
                         "peak_memory_mb": max(times[m]["mem"]), "full_s_median": med, "repeats": repeats,
                         "precision": precision})
        tqdm.write(f"{factor} {cfg}: " + ", ".join(f"{r['method']} {r['tokens_per_s']:.0f} tok/s" for r in rows[-len(METHODS):]))
        df = pd.DataFrame(rows)
        write_results(df, out, run_metadata(device=device, backbone=backbone, precision=precision, profile=args.profile,
                                            random_weights=random_weights, **commit_sent_to_device(),
                                            seeds=[0], repeats=repeats, central=prof["central"],
                                            wall_time_s=round(time.time() - start, 1),
                                            script="experiments/table5_multitenant.py"))
    print(pd.DataFrame(rows)[["factor", "batch", "tenants", "prompt", "new", "method", "tokens_per_s", "ttft_s",
                              "decode_ms_per_token", "peak_memory_mb"]].to_string(index=False))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""The test suite's key equivalences, run on a CUDA device in fp32 and under bf16 autocast.

    python -m scripts.cuda_checks                 # on a machine with a GPU: writes results/cuda_checks.csv
    python -m scripts.cuda_checks --device cpu    # a dry run of the same checks here (fp32 only)

`make test` runs these equivalences on CPU only (CI has no GPU). This script builds the tests' own tiny models
(tests/conftest.py, tests/test_iapt.py, tests/test_serving.py), moves them to the device and measures:
cached vs uncached generation, GPU vs CPU logits, a mixed-tenant batch vs each request alone, gradients reaching
only the generators, and a saved-and-reloaded adapter. fp32 checks must hold exactly (tokens) or to 1e-4
(logits); under bf16 the same quantities are reported (agreement, max |difference|) and judged against looser
bounds, since bf16 rounding legitimately flips near-tied greedy choices.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from contextlib import nullcontext
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import pandas as pd
import torch

from tests.conftest import ARCHS, tiny_model
from iapt import IAPTModel
from iapt.harness.runinfo import RESULTS, run_metadata, write_results
from tests.test_iapt import IDS, MASK, iapt, step_by_step
from tests import test_serving
from experiments.table5_multitenant import commit_sent_to_device

PLACEMENTS = ["prefix", "between", "before_last"]
NEW = 6


def precision_context(device: str, precision: str):
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def token_bound(precision):
    """Least share of greedy tokens that must agree: all of them in fp32; bf16 may flip near-tied choices."""
    return 1.0 if precision == "fp32" else 0.75


def logit_bound(precision, logits):
    """Largest |logit difference| allowed: 1e-4 in fp32, a tenth of the largest logit under bf16."""
    return 1e-4 if precision == "fp32" else 0.1 * logits.abs().max().item()


def row(check, case, precision, measured, bound, passed):
    return dict(check=check, case=case, precision=precision, measured=float(measured), bound=bound, passed=bool(passed))


def generation_checks(dev, precision):
    rows = []
    ids, mask = IDS.to(dev), MASK.to(dev)
    kw = dict(input_ids=ids, attention_mask=mask, max_new_tokens=NEW, do_sample=False, pad_token_id=0)
    for arch in ARCHS:
        for placement in PLACEMENTS:
            cpu_model = iapt(arch, placement)
            model = iapt(arch, placement).to(dev)
            case = f"{arch}/{placement}"
            with torch.no_grad(), precision_context(dev, precision), torch.device(dev):
                cached = model.generate(**kw, use_cache=True)
                uncached = model.generate(**kw, use_cache=False)
                recompute = step_by_step(model, ids, mask, NEW)
                logits = model(input_ids=ids, attention_mask=mask).logits.float().cpu()
            agree = min((cached == uncached).float().mean().item(), (cached == recompute).float().mean().item())
            bound = token_bound(precision)
            rows.append(row("cached = uncached = full recompute (token agreement)", case, precision, agree, bound, agree >= bound))
            with torch.no_grad():
                ref = cpu_model(input_ids=IDS, attention_mask=MASK).logits
            diff = (logits - ref).abs().max().item()
            bound = logit_bound(precision, ref)
            rows.append(row("device logits vs CPU fp32 logits (max |diff|)", case, precision, diff, bound, diff <= bound))
    return rows


def serving_checks(dev, precision):
    rows = []
    ids, mask, tenants = test_serving.IDS.to(dev), test_serving.MASK.to(dev), test_serving.TENANTS.to(dev)
    for name, (server, _) in test_serving.servers().items():
        server = server.to(dev).eval()
        agree, diff = [], 0.0
        with torch.no_grad(), precision_context(dev, precision), torch.device(dev):
            mixed = server.generate(ids, mask, tenants, test_serving.NEW)
            mixed_logits = server(ids, mask, tenants).float()
            for r, t in enumerate(tenants.tolist()):
                one = ids[r][mask[r].bool()][None]
                alone = server.generate(one, torch.ones_like(one), torch.tensor([t], device=dev), test_serving.NEW)
                agree.append((mixed[r] == alone[0]).float().mean().item())
                alone_logits = server(one, torch.ones_like(one), torch.tensor([t], device=dev)).float()
                diff = max(diff, (mixed_logits[r][mask[r].bool()] - alone_logits[0]).abs().max().item())
        a, bound = min(agree), token_bound(precision)
        rows.append(row("mixed-tenant batch = each request alone (token agreement)", name, precision, a, bound, a >= bound))
        bound = logit_bound(precision, mixed_logits)
        rows.append(row("mixed-tenant batch = each request alone (max |logit diff|)", name, precision, diff, bound, diff <= bound))
    return rows


def training_checks(dev, precision):
    model = iapt("llama", "between").to(dev)
    before = {k: v.clone() for k, v in model.base_model.state_dict().items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.tensor([[5, 6, 7, 8, 10, 11]], device=dev)
    instr = torch.tensor([[1, 1, 1, 1, 0, 0]], device=dev).bool()
    with precision_context(dev, precision):
        loss = model(input_ids=ids, instruction_mask=instr, labels=torch.where(instr, -100, ids)).loss
    loss.backward()
    stray = [n for n, p in model.named_parameters() if n.startswith("base_model.") and p.grad is not None]
    dead = [n for n, p in model.named_parameters() if not n.startswith("base_model.")
            and (p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0)]
    opt.step()
    moved = [k for k, v in model.base_model.state_dict().items() if not torch.equal(v, before[k])]
    bad = len(stray) + len(dead) + len(moved) + (0 if torch.isfinite(loss) else 1)
    rows = [row("gradients reach only the generators, all finite and non-zero; backbone unchanged (violations)",
                "llama/between", precision, bad, 0, bad == 0)]
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        reloaded = IAPTModel.from_pretrained(tiny_model("llama").to(dev), tmp)
        with torch.no_grad(), precision_context(dev, precision):
            diff = (model(input_ids=IDS.to(dev), attention_mask=MASK.to(dev)).logits
                    - reloaded(input_ids=IDS.to(dev), attention_mask=MASK.to(dev)).logits).abs().max().item()
    rows.append(row("saved-and-reloaded adapter vs original (max |logit diff|)", "llama/between", precision, diff, 0.0, diff == 0))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"],
                    help="bf16 autocast on a CPU without bf16 instructions is emulated (slow) but still checks dtypes")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    start, dev, precisions = time.time(), args.device, args.precisions
    rows = []
    for precision in precisions:
        for checks in (generation_checks, serving_checks, training_checks):
            try:
                rows += checks(dev, precision)
            except Exception as e:   # a crash is a failed check with its message, and the other checks still run
                rows.append(row(f"{checks.__name__} ran to the end", f"{type(e).__name__}: {str(e)[:200]}",
                                precision, float("nan"), "no exception", False))
                traceback.print_exc()
    df = pd.DataFrame(rows)
    out = args.out_dir / ("cuda_checks.csv" if dev.startswith("cuda") else "cuda_checks_dry_run.csv")
    write_results(df, out, run_metadata(device=dev, precisions=precisions,
                                        wall_time_s=round(time.time() - start, 1), script="scripts/cuda_checks.py",
                                        **commit_sent_to_device()))
    print(df.to_string(index=False))
    print(f"{df.passed.sum()} of {len(df)} checks passed; wrote {out}")
    return 0 if df.passed.all() else 1


if __name__ == "__main__":
    sys.exit(main())

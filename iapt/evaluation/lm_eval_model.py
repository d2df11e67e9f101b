"""lm-evaluation-harness model `iapt`: any saved adapter (IAPT, a baseline) or a bare backbone.

    import iapt.evaluation.lm_eval_model          # registers the model name "iapt" with lm-eval
    lm_eval.simple_evaluate(model="iapt", model_args="adapter=DIR", tasks=["iapt_mmlu"],
                            task_manager=TaskManager(include_path=iapt.evaluation.lm_eval_model.TASKS_DIR))
    python -m iapt.cli.lm_eval run --model iapt --model_args adapter=DIR --tasks iapt_mmlu,iapt_bbh

lm-eval hands a model (context, continuation) pairs; the context is the instruction, so IAPT's pooler (and
every instance-aware method) gets `instruction_mask` = the context's tokens, exactly as our own evaluator
builds it (`iapt.data.format.encode_pair`), and the two score the same tokens.
"""
from __future__ import annotations

from pathlib import Path

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tqdm.auto import tqdm

from ..backbones import load_backbone
from ..baselines.peft_methods import BareBackbone
from ..contract import TunedModel
from ..data.format import encode_pair
from ..errors import UserError
from .evaluator import generate_texts, score_features
from ..baselines.registry import adapter_info, load_method

TASKS_DIR = Path(__file__).parent / "lm_eval_tasks"


@register_model("iapt")
class IAPTLM(LM):
    """`adapter=DIR` (a folder written by `iapt-train`) or `backbone=NAME` (the untuned model);
    or, from Python, `model=` and `tokenizer=` objects directly."""

    def __init__(self, adapter: str | None = None, backbone: str | None = None, model=None, tokenizer=None,
                 batch_size: int | str = 16, max_length: int = 1024, precision: str = "fp32", **_ignored):
        super().__init__()
        if model is None:
            if adapter is None and backbone is None:
                raise UserError("the iapt lm-eval model needs model_args adapter=<saved adapter folder> or backbone=<name>")
            info = {}
            if adapter is not None:
                info = adapter_info(adapter)
            model, tokenizer = load_backbone(backbone or info["backbone"])
            if adapter is not None:
                model = load_method(model, adapter)
        if not isinstance(model, TunedModel):   # a plain Hugging Face model handed in: score it untuned
            model = BareBackbone(model)
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size = 16 if str(batch_size).startswith("auto") else int(batch_size)
        self.max_length, self.precision = int(max_length), precision

    def _feature(self, context: str, continuation: str) -> dict:
        ctx, cont = encode_pair(self.tokenizer, context, continuation)
        ctx = ctx[max(len(ctx) + len(cont) - self.max_length, 0):]   # too long: drop the context's start, as lm-eval does
        return {"input_ids": ctx + cont, "labels": [-100] * len(ctx) + cont}   # the context is the instruction

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        feats = [self._feature(*req.args) for req in requests]
        scored = score_features(self.model, feats, self.tokenizer.pad_token_id, self.batch_size, self.precision,
                                desc="lm-eval loglikelihood")
        return [(logp, bool(greedy)) for ((logp, _, greedy),) in scored]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise UserError("perplexity (loglikelihood_rolling) tasks are not part of this reproduction")

    def generate_until(self, requests, disable_tqdm: bool = False):
        out = []
        for req in tqdm(requests, desc="lm-eval generate", disable=disable_tqdm):
            context, gen_kwargs = req.args
            until = gen_kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            text = generate_texts(self.model, self.tokenizer, [context], int(gen_kwargs.get("max_gen_toks", 32)),
                                  batch_size=1, precision=self.precision)[0]
            for stop in until:
                text = text.split(stop)[0]
            out.append(text)
        return out


def lm_eval_scores(model, tokenizer, tasks: dict[str, int | None], batch_size: int = 16) -> dict[str, dict]:
    """Score a model through lm-eval on our task YAMLs: {task: {"acc", "n", "correct" (0/1 per example, in
    the task's order)}}; `tasks` maps "mmlu" / "bbh" to how many (stratified) examples to use (None: all)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager
    lm = IAPTLM(model=model, tokenizer=tokenizer, batch_size=batch_size)
    out = {}
    for task, n in tasks.items():   # one call per task: each has its own subset size
        name = f"iapt_{task}"
        manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False,
                              metadata={"n": n} if n else None)
        res = simple_evaluate(model=lm, tasks=[name], task_manager=manager, log_samples=True, bootstrap_iters=0)
        samples = sorted(res["samples"][name], key=lambda s: s["doc_id"])
        out[task] = {"acc": res["results"][name]["acc,none"], "n": len(samples),
                     "correct": [float(s["acc"]) for s in samples]}
    return out

"""Answer with a saved adapter (any method).

    python -m iapt.cli.predict --adapter DIR "The film is a delight from start to finish."
    python -m iapt.cli.predict --adapter DIR --generate "Context: ...\\nQuestion: ..."

The adapter's folder (written by `iapt-train`, under its cell folder's `adapter/`) names its method,
backbone and task. The text fills the task's input field (for tasks with several, e.g. rte, give the whole
instruction as the text), in the task's format; for a classification task the answer is the label word with the highest log-likelihood; `--generate` (or an extractive or generation task) decodes
greedily after the task's answer delimiter instead.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from pathlib import Path

from ..backbones import load_backbone
from ..errors import UserError, cli
from ..evaluation.evaluator import rank_classify
from ..baselines.registry import adapter_info, load_method
from ..data.tasks import Example, get_task


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m iapt.cli.predict", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--adapter", type=Path, required=True, help="a saved adapter folder (holds method.json)")
    ap.add_argument("--generate", action="store_true", help="generate an answer instead of ranking label words")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("text", nargs="+", help="one or more inputs")
    return ap


@cli
def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    info = adapter_info(args.adapter)
    backbone, tokenizer = load_backbone(info["backbone"])
    model = load_method(backbone, args.adapter)
    task = get_task(info["task"])
    fields = re.findall(r"{(\w+)}", task.template)
    if len(fields) != 1:   # several inputs (e.g. rte): the text given is the whole instruction
        task, fields = replace(task, template="{text}", passage_field=None), ["text"]
    if args.generate or task.kind in ("extractive", "generation"):
        for text in args.text:
            prompt = task.prompt(Example({fields[0]: text}, None, (), "0"))
            batch = tokenizer(prompt, return_tensors="pt")
            out = model.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                 max_new_tokens=args.max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            answer = tokenizer.decode(out[0, batch.input_ids.shape[1]:], skip_special_tokens=True).strip().split("\n")[0]
            print(f"{answer}\t{text}")
        return
    if task.kind != "classification":
        raise UserError(f"task {task.name!r} ranks per-example options; use --generate, or evaluate with iapt-train")
    examples = [Example({fields[0]: t}, 0, (), str(i)) for i, t in enumerate(args.text)]
    result = rank_classify(model, tokenizer, task, examples, batch_size=8)
    for text, pred in zip(args.text, result["predictions"]):
        print(f"{task.label_words[pred].strip()}\t{text}")


if __name__ == "__main__":
    sys.exit(main())

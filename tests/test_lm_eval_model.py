"""The lm-eval model `iapt`: it hands IAPT the instruction boundary and scores exactly as our own evaluator."""
import subprocess
import sys

import pytest
import torch

from tests.conftest import randomize
from iapt.backbones import TINY, load_backbone
from iapt.data.format import encode_pair
from iapt.errors import UserError
from iapt.baselines.registry import build_method


@pytest.fixture(scope="module")
def tiny_iapt():
    base, tokenizer = load_backbone(TINY)
    torch.manual_seed(0)
    return randomize(build_method("iapt", base)).eval(), tokenizer


def test_loglikelihood_passes_the_context_as_the_instruction(tiny_iapt):
    from lm_eval.api.instance import Instance

    from iapt.evaluation.lm_eval_model import IAPTLM
    model, tokenizer = tiny_iapt
    context, continuation = "Definition: say yes.\nInput:\nIs it?\nAnswer:", " yes indeed"
    lm = IAPTLM(model=model, tokenizer=tokenizer, batch_size=2)
    (logp, greedy), = lm.loglikelihood([Instance("loglikelihood", {}, (context, continuation), 0)])

    ctx, cont = encode_pair(tokenizer, context, continuation)

    def by_hand(instruction_len: int) -> float:
        ids = torch.tensor([ctx + cont])
        instruction = torch.tensor([[i < instruction_len for i in range(len(ctx + cont))]])
        with torch.no_grad():
            logits = model(input_ids=ids, instruction_mask=instruction).logits[0].log_softmax(-1)
        return sum(logits[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont))

    assert logp == pytest.approx(by_hand(len(ctx)), abs=1e-4)
    assert abs(by_hand(len(ctx) - 3) - by_hand(len(ctx))) > 1e-3, "the boundary must matter for this check to mean anything"
    assert isinstance(greedy, bool)


def test_lm_eval_route_agrees_with_our_evaluator_on_bbh(tiny_iapt):
    from iapt.evaluation.lm_eval_model import lm_eval_scores
    from experiments.table2_instruct import own_scores
    model, tokenizer = tiny_iapt
    via_lm_eval = lm_eval_scores(model, tokenizer, {"bbh": 16, "mmlu": 8}, batch_size=4)
    ours = own_scores(model, tokenizer, "bbh", 16, batch_size=4)
    assert via_lm_eval["bbh"]["n"] == ours["n"] == 16 and via_lm_eval["mmlu"]["n"] == 8
    assert sum(a != b for a, b in zip(via_lm_eval["bbh"]["correct"], ours["correct"])) <= 1


def test_lm_eval_model_needs_an_adapter_or_a_backbone():
    from iapt.evaluation.lm_eval_model import IAPTLM
    with pytest.raises(UserError, match="adapter="):
        IAPTLM()
    with pytest.raises(UserError, match="not a saved adapter"):
        IAPTLM(adapter="/nonexistent")


def test_lm_eval_cli_wrapper_registers_iapt_and_adds_our_tasks():
    from iapt.cli.lm_eval import with_our_tasks
    from iapt.evaluation.lm_eval_model import TASKS_DIR
    assert with_our_tasks(["run", "--model", "iapt"])[-2:] == ["--include_path", str(TASKS_DIR)]
    assert with_our_tasks(["run", "--include_path", "x"]) == ["run", "--include_path", "x"]
    out = subprocess.run([sys.executable, "-m", "iapt.cli.lm_eval", "run", "--help"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and "--model_args" in out.stdout, out.stderr[-2000:]


def test_evaluator_generation_reads_the_prompt_as_the_instruction(tiny_iapt):
    """Generation in the evaluator must mark the prompt as the instruction, as training does; otherwise IAPT
    would pool over nothing and put its slots elsewhere at test time."""
    from iapt.evaluation.evaluator import generate_texts
    model, tokenizer = tiny_iapt
    prompts = ["Definition: copy the input.\nInput:\nabc\nAnswer:", "Say hi.\nAnswer:"]
    texts = generate_texts(model, tokenizer, prompts, max_new_tokens=5, batch_size=2)
    for prompt, text in zip(prompts, texts):
        ids = tokenizer(prompt).input_ids
        new = []
        with torch.no_grad():
            for _ in range(5):
                seq = torch.tensor([ids + new])
                instruction = torch.tensor([[True] * len(ids) + [False] * len(new)])
                new.append(int(model(input_ids=seq, instruction_mask=instruction).logits[0, -1].argmax()))
        assert text == tokenizer.decode(new, skip_special_tokens=True)


def test_generate_until_decodes_the_context_and_cuts_at_the_stop_strings(tiny_iapt):
    """lm-eval's generate_until must give what our evaluator generates for the same prompt, cut before the
    first stop string (and handle `until` given as one string)."""
    from types import SimpleNamespace

    from iapt.evaluation.evaluator import generate_texts
    from iapt.evaluation.lm_eval_model import IAPTLM
    model, tokenizer = tiny_iapt
    lm = IAPTLM(model=model, tokenizer=tokenizer)
    context = "Definition: copy the input.\nInput:\nabc\nAnswer:"
    full = generate_texts(model, tokenizer, [context], max_new_tokens=8, batch_size=1)[0]
    assert len(full) > 2, "the random tiny model should generate some text"
    stop = full[len(full) // 2:][:2]
    requests = [SimpleNamespace(args=(context, {"until": [], "max_gen_toks": 8})),
                SimpleNamespace(args=(context, {"until": stop, "max_gen_toks": 8}))]
    out = lm.generate_until(requests, disable_tqdm=True)
    assert out[0] == full
    assert out[1] == full.split(stop)[0] and len(out[1]) < len(full)

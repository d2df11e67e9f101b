"""Equivalences that catch real bugs in IAPT's slot injection, caching, batching, training and persistence."""
import pytest
import torch

from iapt.errors import UserError

from tests.conftest import ARCHS, randomize, tiny_model
from iapt import IAPTConfig, IAPTModel, get_iapt_model

# Two left-padded prompts of different instruction lengths.
IDS = torch.tensor([[0, 0, 0, 5, 6, 7, 8], [3, 4, 9, 5, 6, 7, 9]])
MASK = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]])


def iapt(arch="llama", placement="between", seed=0, **kw):
    cfg = IAPTConfig(bottleneck_dim=8, placement=placement, **kw)
    return randomize(get_iapt_model(tiny_model(arch, seed), cfg))


def test_llama2_7b_parameter_count_matches_paper():
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=32, vocab_size=32000)
    with torch.device("meta"):
        model = get_iapt_model(LlamaForCausalLM(cfg), IAPTConfig(num_soft_tokens=4, bottleneck_dim=320))
    trainable, _ = model.get_nb_trainable_parameters()
    assert trainable == 2 * 4096 * 320 * 32 + 320 * 4 * 32 + 12 * 32  # 83,927,424 ≈ 83.9 M (MiLoRA, Table 1)


def step_by_step(model, ids, mask, steps, pad_id=0):
    """Greedy decoding by full forward passes, with generate's end-of-sequence rule: a row that emitted EOS
    continues with padding."""
    eos = model.base_model.generation_config.eos_token_id
    eos = torch.tensor([eos] if isinstance(eos, int) else (eos or []))
    cur, cur_mask, instr = ids, mask, mask.bool()
    done = torch.zeros(len(ids), 1, dtype=torch.bool)
    for _ in range(steps):
        im = torch.cat([instr, torch.zeros(len(ids), cur.shape[1] - ids.shape[1], dtype=torch.bool)], 1)
        nxt = model(input_ids=cur, attention_mask=cur_mask, instruction_mask=im).logits[:, -1].argmax(-1, keepdim=True)
        nxt = nxt.masked_fill(done, pad_id)
        done = done | torch.isin(nxt, eos)
        cur, cur_mask = torch.cat([cur, nxt], 1), torch.cat([cur_mask, torch.ones_like(nxt)], 1)
    return cur


@pytest.mark.parametrize("placement", ["prefix", "between", "before_last"])
@pytest.mark.parametrize("arch", ARCHS)
def test_cached_generation_equals_uncached_and_full_recompute(arch, placement):
    model = iapt(arch, placement)
    kw = dict(input_ids=IDS, attention_mask=MASK, max_new_tokens=6, do_sample=False, pad_token_id=0)
    cached = model.generate(**kw, use_cache=True)
    uncached = model.generate(**kw, use_cache=False)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached, step_by_step(model, IDS, MASK, 6))
    bare = model.base_model.generate(**kw)
    assert not torch.equal(cached, bare), "IAPT must change what the model generates"


@pytest.mark.parametrize("placement", ["prefix", "between", "before_last"])
@pytest.mark.parametrize("arch", ARCHS)
def test_row_alone_equals_row_in_padded_batch(arch, placement):
    model = iapt(arch, placement)
    ids = torch.tensor([[5, 6, 7, 8, 10, 11, 0, 0], [3, 4, 9, 5, 6, 7, 9, 12]])      # right padding
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0], [1] * 8])
    instr = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0, 0, 0]]).bool()
    batch = model(input_ids=ids, attention_mask=mask, instruction_mask=instr).logits
    alone = model(input_ids=ids[:1, :6], instruction_mask=instr[:1, :6]).logits
    torch.testing.assert_close(batch[0, :6], alone[0], atol=1e-4, rtol=1e-4)
    # left padding too (the generation layout)
    left = model(input_ids=IDS, attention_mask=MASK).logits
    torch.testing.assert_close(left[0, 3:], model(input_ids=IDS[:1, 3:]).logits[0], atol=1e-4, rtol=1e-4)
    assert (batch[0, :6] - model.base_model(input_ids=ids[:1, :6]).logits[0]).abs().max() > 1e-3


@pytest.mark.parametrize("placement", ["prefix", "between", "before_last"])
def test_response_tokens_change_neither_prompts_nor_instruction_logits(placement):
    model = iapt("llama", placement)
    instr = torch.tensor([[1, 1, 1, 1, 0, 0]]).bool()
    a = torch.tensor([[5, 6, 7, 8, 10, 11]])
    b = torch.tensor([[5, 6, 7, 8, 40, 41]])
    captured = []
    hook = model.generators["1"].register_forward_hook(lambda m, i, o: captured.append(o.detach()))
    la = model(input_ids=a, instruction_mask=instr).logits
    lb = model(input_ids=b, instruction_mask=instr).logits
    hook.remove()
    torch.testing.assert_close(captured[0], captured[1], atol=0, rtol=0)
    # logits at instruction positions (the last one predicts the first response token) are unchanged
    torch.testing.assert_close(la[0, :4], lb[0, :4], atol=1e-5, rtol=1e-5)
    assert (la[0, 4:] - lb[0, 4:]).abs().max() > 1e-3


@pytest.mark.parametrize("placement", ["prefix", "between", "before_last"])
def test_which_generators_reach_a_one_token_response(placement):
    """Every layer overwrites the slots, and the instruction cannot see slots placed after it: with `between`
    only the last layer's generator reaches a one-token response; prefix and before_last reach every layer."""
    model = iapt("llama", placement)
    ids, instr = torch.tensor([[5, 6, 7, 8, 10]]), torch.tensor([[1, 1, 1, 1, 0]]).bool()
    labels = torch.tensor([[-100, -100, -100, -100, 10]])
    model(input_ids=ids, instruction_mask=instr, labels=labels).loss.backward()
    reached = [i for i, g in model.generators.items() if g.up.weight.grad.abs().sum() > 0]
    assert reached == (["2"] if placement == "between" else ["0", "1", "2"])


@pytest.mark.parametrize("placement", ["prefix", "between", "before_last"])
def test_logit_at_last_instruction_position_predicts_first_response_token(placement):
    model = iapt("llama", placement)
    ids, instr = torch.tensor([[5, 6, 7, 8, 10]]), torch.tensor([[1, 1, 1, 1, 0]]).bool()
    labels = torch.tensor([[-100, -100, -100, -100, 10]])
    out = model(input_ids=ids, instruction_mask=instr, labels=labels)
    logits = model(input_ids=ids, instruction_mask=instr).logits
    expected = torch.nn.functional.cross_entropy(logits[0, 3:4], torch.tensor([10]))
    torch.testing.assert_close(out.loss, expected)


def test_only_generator_parameters_get_gradients_and_backbone_is_untouched():
    model = iapt("llama", "between")
    before = {k: v.clone() for k, v in model.base_model.state_dict().items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids, instr = torch.tensor([[5, 6, 7, 8, 10, 11]]), torch.tensor([[1, 1, 1, 1, 0, 0]]).bool()
    labels = torch.where(instr, -100, ids)
    model(input_ids=ids, instruction_mask=instr, labels=labels).loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("base_model."):
            assert p.grad is None, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    opt.step()
    for k, v in model.base_model.state_dict().items():
        assert torch.equal(v, before[k]), k
    groups = model.parameter_groups()
    assert all(p.numel() in (7, 5) for p in groups.theta) and len(groups.theta) == 2 * 3
    assert {id(p) for p in groups.theta} == {id(p) for r in model.rationals().values() for p in r.parameters()}


def test_save_load_reproduces_logits_and_rejects_wrong_backbone(tmp_path):
    model = iapt("llama", "between", share="down")
    with torch.no_grad():  # make the rational coefficients differ from their init, so they must be saved too
        model.generators["0"].act.numerator.add_(0.1)
    model.save_pretrained(tmp_path)
    reloaded = IAPTModel.from_pretrained(tiny_model("llama"), tmp_path)
    torch.testing.assert_close(model(input_ids=IDS, attention_mask=MASK).logits,
                               reloaded(input_ids=IDS, attention_mask=MASK).logits, atol=0, rtol=0)
    assert reloaded.generators["0"].down is reloaded.generators["2"].down  # sharing survives the round trip
    with pytest.raises(UserError, match="trained on LlamaForCausalLM .* but this backbone is Qwen2ForCausalLM"):
        IAPTModel.from_pretrained(tiny_model("qwen2"), tmp_path)
    (tmp_path / "backbone.json").unlink()       # an adapter saved before identities were recorded: the shape check
    with pytest.raises(ValueError, match="trained on a backbone"):
        IAPTModel.from_pretrained(tiny_model("qwen2"), tmp_path)


def test_generators_are_built_on_the_backbones_device():
    """A GPU backbone got CPU generators from IAPTModel.from_pretrained (found by scripts/cuda_checks.py on an
    H200). The meta device stands in for the GPU here: any device other than the default one shows it."""
    base = tiny_model("llama").to("meta")
    model = get_iapt_model(base, IAPTConfig(bottleneck_dim=8))
    assert {p.device.type for p in model.generators.parameters()} == {"meta"}


@pytest.mark.parametrize("pooler", ["attention", "mean", "max", "last"])
def test_poolers_read_only_instruction_tokens(pooler):
    model = iapt("llama", "between", pooler=pooler)
    instr = torch.tensor([[1, 1, 1, 0, 0]]).bool()
    l1 = model(input_ids=torch.tensor([[5, 6, 7, 8, 9]]), instruction_mask=instr).logits
    l2 = model(input_ids=torch.tensor([[5, 6, 7, 30, 31]]), instruction_mask=instr).logits
    torch.testing.assert_close(l1[0, :3], l2[0, :3], atol=1e-5, rtol=1e-5)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="valid: attention, mean, max, last"):
        IAPTConfig(pooler="median")
    with pytest.raises(ValueError, match="valid: rational, relu"):
        IAPTConfig(activation="swish")


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_beam_search_cached_equals_uncached_and_one_beam_is_greedy(arch):
    model = iapt(arch, "before_last")
    kw = dict(input_ids=IDS, attention_mask=MASK, max_new_tokens=5, do_sample=False, pad_token_id=0)
    beams = model.generate(**kw, num_beams=3, use_cache=True)
    assert torch.equal(beams, model.generate(**kw, num_beams=3, use_cache=False))
    assert torch.equal(model.generate(**kw, num_beams=1), model.generate(**kw))
    assert not torch.equal(beams, model.base_model.generate(**kw, num_beams=3))


def test_a_deep_copy_injects_its_own_prompts():
    """copy.deepcopy (a best-model snapshot, an EMA copy) must hook the copy, not the original model."""
    import copy
    config = dict(num_soft_tokens=2, bottleneck_dim=4)
    model = randomize(get_iapt_model(tiny_model("llama"), IAPTConfig(**config)))
    with torch.no_grad():
        before = model(input_ids=IDS, attention_mask=MASK).logits
        clone = randomize(copy.deepcopy(model), seed=9)
        fresh = get_iapt_model(tiny_model("llama"), IAPTConfig(**config))
        fresh.generators.load_state_dict(clone.generators.state_dict())
        torch.testing.assert_close(clone(input_ids=IDS, attention_mask=MASK).logits,
                                   fresh(input_ids=IDS, attention_mask=MASK).logits)
        torch.testing.assert_close(model(input_ids=IDS, attention_mask=MASK).logits, before)

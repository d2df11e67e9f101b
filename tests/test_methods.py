"""The method registry: counts equal the formulas, budgets size methods, every method learns, persists and
generates consistently; IDPG and LPT inject where their papers put the prompt."""
import pytest
import torch

from tests.conftest import COMMON, tiny_model
from iapt.errors import UserError
from iapt.baselines.registry import METHODS, build_method, count_trainable, load_method, save_method, size_for_budget

D, L, KV, FF = COMMON["hidden_size"], COMMON["num_hidden_layers"], 16, COMMON["intermediate_size"]
LINEAR_IN_OUT = {"q": D + D, "k": D + KV, "v": D + KV, "o": D + D, "gate": D + FF, "up": D + FF, "down": FF + D}
RATIONAL = 7 + 5  # numerator degree 6 (7 coefficients) + denominator degree 5


def formula(name: str, s: int | None) -> int:
    s = s or 0  # (IA)³ has no size
    return {
        "iapt": L * (2 * D * s + s * 4 + RATIONAL),
        "lora": L * s * sum(LINEAR_IN_OUT.values()),
        "lora_qv": L * s * (LINEAR_IN_OUT["q"] + LINEAR_IN_OUT["v"]),
        "prompt_tuning": s * D,
        "prefix_tuning": s * L * 2 * KV,                    # keys and values per layer (grouped-query width)
        "adalora": L * s * (sum(LINEAR_IN_OUT.values()) + 7),  # A, B and the singular values E per module
        "ia3": L * (KV + KV + FF),                           # k, v outputs and the down-projection input
        "idpg": 2 * D * s + s * 4,                           # one generator, fixed activation
        "lpt": 2 * D * s + s * 4,
    }[name]


@pytest.mark.parametrize("name", list(METHODS))
def test_tunable_parameters_equal_formula(name):
    size = METHODS[name].default_size and 3
    model = build_method(name, tiny_model(), size=size, total_steps=10)
    assert model.get_nb_trainable_parameters()[0] == formula(name, size)
    if name != "adalora":  # peft counts AdaLoRA's rank counters as trainable on meta tensors only
        assert count_trainable(name, tiny_model(), size) == formula(name, size)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all("lora" not in n and "generators" not in n for n in frozen[:20])


@pytest.mark.parametrize("name", ["iapt", "lora", "prefix_tuning", "idpg"])
def test_budget_picks_the_closest_size(name):
    budget = 5000
    size = size_for_budget(name, tiny_model(), budget)
    counts = {s: formula(name, s) for s in (size - 1, size, size + 1) if s >= 1}
    assert min(counts, key=lambda s: abs(counts[s] - budget)) == size


def test_prompt_tuning_capped_and_ia3_fixed():
    assert size_for_budget("prompt_tuning", tiny_model(), 10 ** 9) == METHODS["prompt_tuning"].max_size
    assert size_for_budget("ia3", tiny_model(), 5000) is None


def test_unknown_method_lists_valid_ones():
    with pytest.raises(UserError, match="valid methods: adalora, ia3, iapt"):
        build_method("lroa", tiny_model())


def perturb(model, seed=3, std=0.2):
    """Non-zero adapter weights, so that equivalences cannot pass trivially."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        theta = {id(p) for p in model.parameter_groups().theta}
        for p in model.parameters():
            if p.requires_grad and id(p) not in theta:
                p.add_(torch.randn(p.shape, generator=g) * std)
    return model


IDS = torch.tensor([[0, 0, 5, 6, 7, 8], [3, 4, 9, 5, 6, 7]])
MASK = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])


@pytest.mark.parametrize("name", list(METHODS))
def test_save_load_and_generation(name, tmp_path):
    model = perturb(build_method(name, tiny_model(), size=METHODS[name].default_size and 2, total_steps=10)).eval()
    logits = model(input_ids=IDS, attention_mask=MASK).logits
    assert logits.shape[:2] == IDS.shape                    # one row per caller position, for every method
    bare = tiny_model()(input_ids=IDS, attention_mask=MASK).logits
    assert not torch.allclose(logits[MASK.bool()], bare[MASK.bool()], atol=1e-4), "the adapter must change the output"
    save_method(model, tmp_path)
    reloaded = load_method(tiny_model(), tmp_path)
    torch.testing.assert_close(reloaded(input_ids=IDS, attention_mask=MASK).logits, logits, atol=1e-5, rtol=1e-5)
    kw = dict(input_ids=IDS, attention_mask=MASK, max_new_tokens=4, do_sample=False, pad_token_id=0)
    cached, uncached = model.generate(**kw, use_cache=True), model.generate(**kw, use_cache=False)
    assert torch.equal(cached, uncached) and torch.equal(cached[:, :IDS.shape[1]], IDS)
    # greedy generation continues what the forward pass (the one training and scoring use) predicts
    row = IDS[1:]
    with torch.no_grad():
        first = model(input_ids=row).logits[0, -1].argmax()
    assert model.generate(input_ids=row, max_new_tokens=1, do_sample=False, pad_token_id=0)[0, -1] == first


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_lpt_leaves_the_layers_below_unchanged(arch):
    model = perturb(build_method("lpt", tiny_model(arch), size=4)).eval()
    layer = model.config.layers[0]
    assert layer == 2 * L // 3
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    seen = {}
    hook = model.layers[layer].register_forward_pre_hook(lambda m, a, kw: seen.update(h=(a[0] if a else kw["hidden_states"])),
                                                       with_kwargs=True)
    model(input_ids=ids)
    hook.remove()
    k = model.config.num_soft_tokens
    bare = tiny_model(arch)(input_ids=ids, output_hidden_states=True).hidden_states[layer]
    # prefix slots sit before the instruction; every real token below the LPT layer is as in the bare model
    torch.testing.assert_close(seen["h"][:, k:], bare, atol=1e-5, rtol=1e-5)
    # and above it the prompt matters
    assert not torch.allclose(model(input_ids=ids).logits, tiny_model(arch)(input_ids=ids).logits, atol=1e-4)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_lpt_cached_generation_equals_uncached(arch):
    model = perturb(build_method("lpt", tiny_model(arch), size=4)).eval()
    kw = dict(input_ids=IDS, attention_mask=MASK, max_new_tokens=5, do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(**kw, use_cache=True), model.generate(**kw, use_cache=False))


@pytest.mark.parametrize("name", ["prompt_tuning", "prefix_tuning"])
def test_prompt_methods_batched_greedy_equals_each_row_alone(name):
    model = perturb(build_method(name, tiny_model(), size=2)).eval()
    out = model.generate(input_ids=IDS, attention_mask=MASK, max_new_tokens=5, pad_token_id=0)
    for i in range(len(IDS)):
        alone = model.generate(input_ids=IDS[i][MASK[i].bool()][None], max_new_tokens=5, pad_token_id=0)
        assert torch.equal(out[i, -5:], alone[0, -5:])


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
@pytest.mark.parametrize("name", ["prompt_tuning", "prefix_tuning"])
def test_prompt_methods_cached_decoding_equals_full_forward_decoding(name, arch):
    model = perturb(build_method(name, tiny_model(arch), size=2)).eval()
    kw = dict(input_ids=IDS, attention_mask=MASK, max_new_tokens=6, pad_token_id=0)
    assert torch.equal(model.generate(**kw, use_cache=True), model.generate(**kw, use_cache=False))
    right = torch.stack([torch.cat([r[m.bool()], r[~m.bool()]]) for r, m in zip(IDS, MASK)])   # right-padded
    right_mask = MASK.flip(1)
    assert torch.equal(model.generate(input_ids=right, attention_mask=right_mask, max_new_tokens=6)[:, -6:],
                       model.generate(**kw)[:, -6:])


@pytest.mark.parametrize("name", ["idpg", "lpt"])
def test_single_layer_prompt_methods_have_finite_gradients_on_the_real_backbone(name):
    """A zero prompt inserted at one layer stays exactly zero through all of SmolLM2's layers above it, and its
    backward was NaN on the first training batch of Table 2 (found by that run); IDPG's and LPT's generators now
    start non-zero. The tiny test models do not show it, hence the real backbone and the real first batch."""
    from iapt.backbones import DEFAULT_BACKBONE, load_backbone
    from iapt.data.format import collate
    from iapt.training.loop import Sampler, training_features
    from iapt.data.tasks import get_task
    from iapt.data.splits import load_split
    from iapt.training.cell import iapt_budget
    backbone, tok = load_backbone(DEFAULT_BACKBONE)
    feats = training_features(tok, get_task("ni"), load_split("ni", "train"), 192)
    first = Sampler(len(feats), 0, [len(f["input_ids"]) for f in feats], 4).take(4)   # as train() draws it
    torch.manual_seed(0)
    model = build_method(name, backbone, budget=iapt_budget(backbone), total_steps=48)
    batch = collate([feats[i] for i in first], tok.pad_token_id)
    model(**batch.model_inputs("cpu"), labels=batch.labels).loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads.values())

"""The frozen instruction prefix (iapt.method.prefix): the training loss and every generator and rational
gradient equal the full pass's, and the no-grad path really ran."""
import pytest
import torch

from iapt import IAPTConfig, get_iapt_model
from iapt.data.format import collate
from tests.conftest import ARCHS, randomize, tiny_model

# long, ragged prefixes and responses of different lengths (token ids of the tiny models' 96-token vocabulary)
PAIRS = [(list(range(10, 31)), [40, 41, 42]), (list(range(50, 55)), [60]), (list(range(11, 24)), [70, 71, 72, 73, 74])]


def batch(side: str):
    features = [{"input_ids": prompt + response, "labels": [-100] * len(prompt) + response} for prompt, response in PAIRS]
    return collate(features, pad_id=0, side=side)


def models(arch: str, placement: str):
    """The same random non-zero generators and rationals, one model per path (built apart: a deep copy would
    keep hooks bound to the original)."""
    full, fast = (get_iapt_model(tiny_model(arch), IAPTConfig(num_soft_tokens=2, bottleneck_dim=4, placement=placement,
                                                              frozen_prefix=frozen)) for frozen in (False, True))
    randomize(full)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for rational in full.rationals().values():     # non-zero moves away from the fitted GELU
            for p in rational.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    fast.generators.load_state_dict(full.generators.state_dict())
    return full, fast


def loss_and_grads(model, b):
    model.zero_grad(set_to_none=True)
    out = model(input_ids=b.input_ids, attention_mask=b.attention_mask, instruction_mask=b.instruction_mask,
                labels=b.labels)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("placement", ["before_last", "between"])
@pytest.mark.parametrize("arch", ARCHS)
def test_the_frozen_prefix_gives_the_full_pass_loss_and_gradients(arch, placement, side):
    full, fast = models(arch, placement)
    b = batch(side)
    loss_full, grads_full = loss_and_grads(full, b)
    loss_fast, grads_fast = loss_and_grads(fast, b)
    assert fast.prefix_passes == 1 and full.prefix_passes == 0            # the no-grad path ran, and only there
    torch.testing.assert_close(loss_fast, loss_full, rtol=1e-5, atol=1e-6)
    assert grads_fast.keys() == grads_full.keys() and any(".act." in n for n in grads_full)
    for name, g in grads_full.items():
        assert g.abs().max() > 0, name                                     # every tensor really gets a gradient
        torch.testing.assert_close(grads_fast[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_evaluation_prefix_placement_and_skipped_layers_keep_the_full_pass():
    b = batch("right")
    _, fast = models("llama", "before_last")
    with torch.no_grad():
        fast(input_ids=b.input_ids, attention_mask=b.attention_mask, instruction_mask=b.instruction_mask,
             labels=b.labels)
    prefix = get_iapt_model(tiny_model("llama"), IAPTConfig(num_soft_tokens=2, bottleneck_dim=4, placement="prefix"))
    some_layers = get_iapt_model(tiny_model("llama"), IAPTConfig(num_soft_tokens=2, bottleneck_dim=4, layers=[1, 2]))
    for model in (prefix, some_layers):
        model(input_ids=b.input_ids, attention_mask=b.attention_mask, instruction_mask=b.instruction_mask,
              labels=b.labels).loss.backward()
    assert fast.prefix_passes == prefix.prefix_passes == some_layers.prefix_passes == 0

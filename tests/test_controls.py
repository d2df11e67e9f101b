"""The shuffled-instruction control reads another training example's instruction — never its own, whatever the
batch — as the bare backbone reads it (iapt.method.donors)."""
import pytest
import torch

from iapt import IAPTConfig, IAPTModel, get_iapt_model
from iapt.errors import UserError
from tests.conftest import ARCHS, randomize, tiny_model

POOL = [[5, 6, 7, 8], [3, 4, 9, 5, 6, 7, 9], [8, 8, 2, 3], [4, 4, 4], [7, 3, 9, 9, 2]]


def features(instructions):
    return [{"input_ids": ids + [11, 12], "labels": [-100] * len(ids) + [11, 12]} for ids in instructions]


def control(arch, placement="between"):
    model = randomize(get_iapt_model(tiny_model(arch), IAPTConfig(bottleneck_dim=8, placement=placement,
                                                                    generator_input="shuffled")))
    model.use_training_data(features(POOL))
    return model


def prompts(model: IAPTModel, rows: list[list[int]]) -> list[torch.Tensor]:
    """Each layer's generator output (B, k, d) for a left-padded batch of instructions."""
    n = max(map(len, rows))
    ids = torch.tensor([[0] * (n - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (n - len(r)) + [1] * len(r) for r in rows])
    out, hooks = [], [g.register_forward_hook(lambda m, a, o: out.append(o.detach())) for g in model.generators.values()]
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
    finally:
        for h in hooks:
            h.remove()
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_each_row_reads_its_donors_bare_backbone_states_never_its_own(arch):
    shuffled = control(arch)
    # the same generators reading their own instruction, with slots after it (`between`): an instruction's
    # states at every layer are then exactly the bare backbone's
    reader = get_iapt_model(tiny_model(arch), IAPTConfig(bottleneck_dim=8, placement="between"))
    reader.generators.load_state_dict(shuffled.generators.state_dict())
    for own in POOL:                                    # each a batch of one, its own instruction in the pool
        donor = list(shuffled.donors.pick(own))
        assert donor != own and donor in POOL
        for got, want in zip(prompts(shuffled, [own]), prompts(reader, [donor])):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("placement", ["between", "before_last"])
def test_a_rows_control_prompt_does_not_depend_on_the_batch(placement):
    model = control("llama", placement)
    alone = prompts(model, [POOL[1]])
    in_batch = prompts(model, [POOL[0], POOL[1], POOL[1]])   # beside another row and a copy of itself
    for a, b in zip(alone, in_batch):
        torch.testing.assert_close(b[1:2], a, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b[2:3], a, atol=1e-5, rtol=1e-5)


def test_the_donors_are_saved_with_the_adapter_and_a_control_without_them_says_so(tmp_path):
    model = control("llama")
    model.save_pretrained(tmp_path / "adapter")
    reloaded = IAPTModel.from_pretrained(tiny_model("llama"), tmp_path / "adapter")
    for a, b in zip(prompts(model, [POOL[2]]), prompts(reloaded, [POOL[2]])):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    bare = get_iapt_model(tiny_model("llama"), IAPTConfig(bottleneck_dim=8, generator_input="shuffled"))
    with pytest.raises(UserError, match="donor"):
        prompts(bare, [POOL[0]])

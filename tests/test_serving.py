"""Multi-tenant serving: a mixed-tenant batch serves every request as its tenant alone would, for IAPT, both
LoRA forms and prompt tuning, with random, non-zero, per-tenant-distinct adapters."""
import pytest
import torch

from tests.conftest import randomize, tiny_model
from iapt import IAPTConfig, get_iapt_model
from iapt.serving.multitenant import (BareBackbone, GatheredLoRA, PeftMixedLoRA, StepClock, TenantIAPT, TenantPromptTuning,
                          random_lora)

# four left-padded requests of different lengths, from three tenants
IDS = torch.tensor([[0, 0, 5, 6, 7, 8], [3, 4, 9, 5, 6, 7], [0, 0, 0, 9, 8, 7], [0, 11, 12, 13, 14, 15]])
MASK = (IDS != 0).long()
TENANTS = torch.tensor([0, 2, 1, 0])
NEW = 5


def iapt_tenants(n=3):
    adapters = []
    for t in range(n):
        a = randomize(get_iapt_model(tiny_model(), IAPTConfig(bottleneck_dim=8)), seed=10 + t)
        with torch.no_grad():
            for g in a.generators.values():               # per-tenant rational coefficients too
                g.act.numerator.add_(0.05 * torch.randn(g.act.numerator.shape, generator=torch.Generator().manual_seed(t)))
        adapters.append(a.eval())
    return adapters


def servers():
    weights = random_lora(tiny_model(), 3, rank=2, std=0.3)
    prompts = torch.randn(3, 4, 32, generator=torch.Generator().manual_seed(5))
    adapters = iapt_tenants()
    return {
        "iapt": (TenantIAPT(tiny_model(), adapters[0].config, [a.generators for a in adapters]), lambda t, ids, mask: adapters[t].generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False,
            pad_token_id=0)[:, ids.shape[1]:]),
        "lora_gathered": (GatheredLoRA(tiny_model(), weights), None),
        "lora_peft": (PeftMixedLoRA(tiny_model(), weights, rank=2), None),
        "prompt_tuning": (TenantPromptTuning(tiny_model(), prompts), None),
    }


@pytest.fixture(scope="module")
def built():
    return servers()


@pytest.mark.parametrize("name", ["iapt", "lora_gathered", "lora_peft", "prompt_tuning"])
def test_mixed_batch_equals_each_request_alone(built, name):
    server, single_tenant = built[name]
    mixed = server.generate(IDS, MASK, TENANTS, NEW)
    mixed_logits = server(IDS, MASK, TENANTS)
    assert mixed.shape == (len(IDS), NEW)
    for row, t in enumerate(TENANTS.tolist()):
        ids = IDS[row][MASK[row].bool()][None]
        alone = server.generate(ids, torch.ones_like(ids), torch.tensor([t]), NEW)
        assert torch.equal(mixed[row], alone[0]), (name, row)
        if single_tenant is not None:   # and the tenant's own, ordinary adapter agrees
            assert torch.equal(alone, single_tenant(t, ids, torch.ones_like(ids)))
        alone_logits = server(ids, torch.ones_like(ids), torch.tensor([t]))
        torch.testing.assert_close(mixed_logits[row][MASK[row].bool()], alone_logits[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["iapt", "lora_gathered", "prompt_tuning"])
def test_tenants_differ_from_each_other_and_from_the_bare_model(built, name):
    server, _ = built[name]
    same_prompt = IDS[1:2].expand(3, -1)
    logits = server(same_prompt, MASK[1:2].expand(3, -1), torch.tensor([0, 1, 2]))
    bare = BareBackbone(tiny_model())(same_prompt[:1], MASK[1:2], None)
    for a in range(3):
        assert (logits[a] - bare[0]).abs().max() > 1e-3
        for b in range(a + 1, 3):
            assert (logits[a] - logits[b]).abs().max() > 1e-3


def test_gathered_lora_equals_peft(built):
    gathered, peft_server = built["lora_gathered"][0], built["lora_peft"][0]
    torch.testing.assert_close(gathered(IDS, MASK, TENANTS), peft_server(IDS, MASK, TENANTS), atol=1e-5, rtol=1e-5)
    assert torch.equal(gathered.generate(IDS, MASK, TENANTS, NEW), peft_server.generate(IDS, MASK, TENANTS, NEW))


@pytest.mark.parametrize("name", ["iapt", "lora_gathered", "lora_peft", "prompt_tuning"])
def test_step_clock_times_every_token_without_changing_the_output(built, name):
    """Table 5 reads time to first token and per-token latency from one run's clock: it must stamp each of the
    N new tokens, in order, and leave the generated tokens as they are."""
    server, _ = built[name]
    clock = StepClock()
    timed = server.generate(IDS, MASK, TENANTS, NEW, clock=clock)
    assert torch.equal(timed, server.generate(IDS, MASK, TENANTS, NEW))
    assert len(clock.stamps) == NEW and clock.stamps == sorted(clock.stamps)
    assert 0 < clock.first_token_s <= clock.total_s and clock.decode_s_per_token > 0


# a task definition shared by every request, before each request's own input
PREFIX = torch.arange(21, 36)


def shape_spy(server):
    """The (rows, tokens) of each backbone call a server makes."""
    base = server.model.base_model if hasattr(server, "model") else server.base_model
    calls = []
    handle = base.register_forward_pre_hook(lambda m, a, kw: calls.append(tuple(kw["input_ids"].shape)), with_kwargs=True)
    return calls, handle


@pytest.mark.parametrize("name", ["bare", "iapt", "lora_gathered"])
def test_a_shared_prefix_batch_serves_each_request_as_it_is_served_alone(built, name):
    from iapt.serving.shared_prefix import bare_shared, iapt_shared, lora_shared
    server = BareBackbone(tiny_model()) if name == "bare" else built[name][0]
    serve = {"bare": bare_shared, "iapt": iapt_shared, "lora_gathered": lora_shared}[name]
    clock, (calls, handle) = StepClock(), shape_spy(server)
    try:
        shared = serve(server, PREFIX, IDS, MASK, TENANTS, NEW, clock=clock)
    finally:
        handle.remove()
    assert shared.shape == (len(IDS), NEW) and len(clock.stamps) == NEW
    # the prefix runs once for the batch (IAPT, bare) or once per distinct tenant (LoRA), never once per row
    assert calls[0] == ((3 if name == "lora_gathered" else 1), len(PREFIX))
    for row, t in enumerate(TENANTS.tolist()):
        ids = torch.cat([PREFIX, IDS[row][MASK[row].bool()]])[None]
        alone = server.generate(ids, torch.ones_like(ids), torch.tensor([t]), NEW)
        assert torch.equal(shared[row], alone[0]), (name, row)
    if name == "iapt":   # and the prompts reached the tokens
        assert not torch.equal(shared, bare_shared(BareBackbone(tiny_model()), PREFIX, IDS, MASK, TENANTS, NEW))

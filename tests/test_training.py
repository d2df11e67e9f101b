"""IAPT learns: on a tiny frozen model, the loss on an instruction-dependent toy task falls."""
import torch

from tests.conftest import tiny_model
from iapt import IAPTConfig, get_iapt_model


def test_iapt_loss_falls_on_instruction_dependent_task():
    torch.manual_seed(0)
    model = get_iapt_model(tiny_model("llama"), IAPTConfig(bottleneck_dim=8, up_init_std=0.02))
    # response = (first instruction token) mod 2 -> token 10 or 11: only the instruction tells which
    first = torch.randint(20, 60, (32,))
    ids = torch.stack([first, torch.full_like(first, 5), torch.full_like(first, 6), 10 + first % 2], 1)
    instr = torch.tensor([True, True, True, False]).expand_as(ids)
    labels = ids.masked_fill(instr, -100)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(100):
        loss = model(input_ids=ids, instruction_mask=instr, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    # a tiny random model caps how much mass the two answers can get; instruction-awareness is the real check
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.2, losses[::10]
    # instruction-aware: the choice between 10 and 11 follows the parity of the first instruction token
    with torch.no_grad():
        logits = model(input_ids=ids, instruction_mask=instr).logits[:, 2, 10:12]
    accuracy = (logits.argmax(-1) == first % 2).float().mean().item()
    assert accuracy >= 0.9, accuracy

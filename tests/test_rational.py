import json

import pytest
import torch
import torch.nn.functional as F

from iapt.method.rational import INIT_FILE, Rational, rational

# Documented tolerance of the fitted GELU initialisation over the fitted range (README, "Rational activation").
GELU_TOLERANCE = 1e-2


@pytest.mark.parametrize("version", ["A", "B"])
def test_gradcheck_float64(version):
    torch.manual_seed(0)
    x = torch.randn(7, dtype=torch.float64, requires_grad=True) * 2
    a = torch.randn(7, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    # keep x away from the kinks of |.| (they are measure-zero but break finite differences)
    assert torch.autograd.gradcheck(lambda x, a, b: rational(x, a, b, version), (x.detach().requires_grad_(), a, b))


@pytest.mark.parametrize("version", ["A", "B"])
def test_gelu_init_within_tolerance_over_fitted_range(version):
    lo, hi = json.loads(INIT_FILE.read_text())["range"]
    x = torch.linspace(lo, hi, 2001)
    err = (Rational(6, 5, version, "gelu")(x) - F.gelu(x)).abs().max().item()
    assert err < GELU_TOLERANCE, err
    # and it stays bounded (no explosion) a little beyond the range
    wide = torch.linspace(1.5 * lo, 1.5 * hi, 2001)
    assert (Rational(6, 5, version, "gelu")(wide) - F.gelu(wide)).abs().max().item() < 0.5


def test_rational_runs_in_fp32_under_autocast():
    r = Rational()
    x = torch.linspace(-6, 6, 101).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = r(x)
    ref = r(x.float())
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref, atol=0.05, rtol=0.02)


def test_unknown_init_lists_fitted_ones():
    with pytest.raises(ValueError, match="fitted ones: .*gelu/B/6/5"):
        Rational(9, 9, "B", "gelu")

"""Models train under autocast: bf16 on CPU stands in for the CUDA mixed precision of the recipe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from islr.models import registry  # noqa: E402
from islr.models.torch.layers import MaskedBatchNorm1d  # noqa: E402

torch.set_num_threads(1)


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 20, 12, generator=gen)
    mask = torch.ones(8, 20, dtype=torch.bool)
    mask[0, 12:] = False
    mask[3, 5:] = False
    y = torch.arange(8) % 5
    return x, mask, y


@pytest.mark.parametrize("name", ["conv1d_transformer", "yet_another_transformer"])
def test_masked_batchnorm_models_train_under_bf16_autocast(name: str) -> None:
    torch.manual_seed(0)
    model = registry.create_model(name, "torch", 12, 5, {})
    norms = [m for m in model.modules() if isinstance(m, MaskedBatchNorm1d)]
    assert norms, f"{name} has no MaskedBatchNorm1d: the test would not test the fix"
    before = [m.running_mean.clone() for m in norms]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, mask, y = _batch()
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x, mask)
            loss = nn.functional.cross_entropy(logits.float(), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    for norm, start in zip(norms, before, strict=True):
        assert norm.running_mean.dtype == torch.float32
        assert norm.running_var.dtype == torch.float32
        assert torch.isfinite(norm.running_var).all()
        assert not torch.equal(norm.running_mean, start)  # the statistics did update
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, mask)
    assert out.shape == (8, 5) and torch.isfinite(out.float()).all()


def test_masked_batchnorm_bf16_statistics_match_float32() -> None:
    """Statistics are taken in float32: a bf16 input moves the running buffers like its float32
    value does, and the output keeps the input's dtype."""
    x, mask, _ = _batch(1)
    x16 = x.to(torch.bfloat16)
    a, b = MaskedBatchNorm1d(12), MaskedBatchNorm1d(12)
    out16 = a(x16, mask)
    b(x16.float(), mask)
    assert out16.dtype == torch.bfloat16
    torch.testing.assert_close(a.running_mean, b.running_mean, rtol=0, atol=1e-6)
    torch.testing.assert_close(a.running_var, b.running_var, rtol=0, atol=1e-6)

"""DSA: every op keeps shapes, is differentiable, and Siamese use applies identical parameters."""
from __future__ import annotations

import pytest
import torch

from datadistill.augment import OPS, DSAConfig, apply, augment, sample
from datadistill.errors import ConfigError


@pytest.mark.parametrize("op", OPS)
def test_op_shapes_and_gradients(op):
    cfg = DSAConfig(strategy=op)
    x = torch.randn(5, 3, 16, 16, requires_grad=True)
    y = augment(x, cfg, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("op", OPS)
def test_siamese_same_parameters_same_transform(op):
    """The same sampled parameters applied to two copies give identical outputs; batch-shared
    parameters transform every image alike."""
    cfg = DSAConfig(strategy=op)
    x = torch.randn(4, 1, 12, 12)
    p = sample(cfg, 4, (12, 12), torch.Generator().manual_seed(1), batch_shared=True)
    assert torch.equal(apply(x, p), apply(x.clone(), p))
    same = x[:1].expand(4, -1, -1, -1).contiguous()
    out = apply(same, p)
    assert torch.allclose(out, out[:1].expand_as(out), atol=1e-6)


def test_smaller_partner_batch_uses_leading_parameters():
    cfg = DSAConfig(strategy="rotate")
    p = sample(cfg, 8, (12, 12), torch.Generator().manual_seed(2), batch_shared=True)
    x = torch.randn(3, 1, 12, 12)
    assert apply(x, p).shape == x.shape


def test_ops_change_images_and_are_seeded():
    x = torch.randn(6, 1, 12, 12)
    for op in OPS:
        cfg = DSAConfig(strategy=op)
        a = augment(x, cfg, torch.Generator().manual_seed(3))
        b = augment(x, cfg, torch.Generator().manual_seed(3))
        assert torch.equal(a, b)
        if op != "flip":  # flip may draw 'no flip' for all six; the others always change something
            assert not torch.equal(a, x), op


def test_crop_translates_with_zero_fill():
    x = torch.ones(1, 1, 8, 8)
    p = sample(DSAConfig(strategy="crop"), 1, (8, 8), torch.Generator().manual_seed(0))
    p.values["tx"][:] = 1
    p.values["ty"][:] = 0
    out = apply(x, p)
    assert out[0, 0, -1].sum() == 0 and out[0, 0, :-1].sum() == 7 * 8


def test_unknown_op_rejected():
    with pytest.raises(ConfigError, match="unknown DSA op"):
        DSAConfig(strategy="color_warp").ops
    assert DSAConfig().without("flip").ops == ("color", "crop", "cutout", "scale", "rotate")

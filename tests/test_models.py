"""Model zoo tests, driven by the registry: every registered model gets the contract tests."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from datadistill.errors import ConfigError, UnknownNameError
from datadistill.models import get_model, list_models

NAMES = list_models()
SHAPES = [(1, 28), (3, 32), (1, 8), (3, 16)]  # (channels, square image size)
NUM_CLASSES = 10
BATCH = 2


def build(name: str, channels: int = 3, size: int = 16, seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return get_model(name, channels=channels, num_classes=NUM_CLASSES, image_size=(size, size), **kwargs)


def images(channels: int = 3, size: int = 16, n: int = BATCH) -> torch.Tensor:
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(1))


def test_registry_has_the_zoo():
    assert {"convnet", "mlp", "lenet", "alexnet", "vgg11", "resnet18"} <= set(NAMES)


# --- contract tests, one per registered model ------------------------------------------------


@pytest.mark.parametrize("channels,size", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_forward_and_embed_shapes(name, channels, size):
    model = build(name, channels, size)
    x = images(channels, size)
    with torch.no_grad():
        features = model.embed(x)
        logits = model(x)
    assert features.shape == (BATCH, model.feature_dim)
    assert logits.shape == (BATCH, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(model.classifier(features), logits)  # embed is the penultimate layer
    assert isinstance(model.classifier, torch.nn.Linear)
    assert model.classifier.in_features == model.feature_dim


@pytest.mark.parametrize("name", NAMES)
def test_backward_gives_finite_grads_for_every_param(name):
    model = build(name, 1, 8)
    loss = F.cross_entropy(model(images(1, 8)), torch.tensor([0, 1]))
    loss.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname


@pytest.mark.parametrize("name", NAMES)
def test_functional_call_matches_forward_and_is_differentiable(name):
    model = build(name, 3, 16)
    x = images(3, 16)
    expected = model(x)
    params = {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}
    state = {**params, **{k: v.clone() for k, v in model.named_buffers()}}
    out = functional_call(model, state, (x,))
    torch.testing.assert_close(out, expected)
    grads = torch.autograd.grad(out.square().sum(), list(params.values()), allow_unused=True)
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # the call really uses the tensors it is given: a zero classifier leaves only its bias
    state["classifier.weight"] = torch.zeros_like(params["classifier.weight"])
    out = functional_call(model, state, (x,))
    torch.testing.assert_close(out, params["classifier.bias"].detach().expand(BATCH, -1))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_parameters(name):
    a, b, c = build(name, seed=3), build(name, seed=3), build(name, seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("name", NAMES)
def test_empty_image_is_a_config_error(name):
    with pytest.raises(ConfigError):
        build(name, 3, 0)


def test_unknown_model_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        get_model("no-such-net", channels=3, num_classes=10, image_size=(32, 32))
    for name in NAMES:
        assert name in str(info.value)


# --- options and reference shapes ------------------------------------------------------------


@pytest.mark.parametrize(
    "name,channels,size,kwargs",
    [
        ("mlp", 3, 16, {"width": 0}),
        ("mlp", 3, 16, {"depth": 0}),
        ("lenet", 1, 3, {}),
        ("alexnet", 3, 4, {}),
        ("vgg11", 3, 16, {"norm": "group"}),
        ("vgg11", 3, 16, {"width": -1}),
        ("resnet18", 3, 16, {"norm": "layer"}),
        ("resnet18", 3, 16, {"width": 0}),
        ("convnet", 3, 32, {"norm": "group"}),
        ("convnet", 3, 32, {"act": "tanh"}),
        ("convnet", 3, 32, {"pool": "lp"}),
        ("convnet", 3, 32, {"depth": 0}),
        ("convnet", 3, 32, {"width": 0}),
        ("convnet", 3, 8, {"depth": 4}),
    ],
)
def test_invalid_options_are_config_errors(name, channels, size, kwargs):
    with pytest.raises(ConfigError):
        build(name, channels, size, **kwargs)


@pytest.mark.parametrize(
    "name,kwargs", [("mlp", {"width": 32, "depth": 1}), ("mlp", {"depth": 3})]
    + [(name, {"norm": norm, "width": 8}) for name in ("vgg11", "resnet18") for norm in ("instance", "batch", "none")],
)
def test_zoo_options(name, kwargs):
    model = build(name, 3, 16, **kwargs)
    x = images(3, 16)
    assert model(x).shape == (BATCH, NUM_CLASSES)
    assert model.embed(x).shape == (BATCH, model.feature_dim)


@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_zoo_matches_reference_shapes(channels, size):
    """Feature sizes of the DC reference (VICO-UoE/DatasetCondensation) at 28x28 and 32x32."""
    assert build("mlp", channels, size).features[1].in_features == channels * size * size
    assert build("lenet", channels, size).features[7].in_features == 16 * 5 * 5
    assert build("alexnet", channels, size).feature_dim == 192 * 4 * 4
    assert build("vgg11", channels, size, width=8).feature_dim == 64  # 512 * 8 / 64 at 1x1
    assert build("resnet18", channels, size, width=8).feature_dim == 64


def test_reference_parameter_counts():
    """Counts of the DC reference models for CIFAR-10 (3x32x32, 10 classes)."""
    counts = {"mlp": 411_146, "lenet": 62_006, "alexnet": 1_872_202}
    for name, count in counts.items():
        assert sum(p.numel() for p in build(name, 3, 32).parameters()) == count, name


# --- convnet options -------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_convnet_depth(depth):
    model = build("convnet", 3, 32, depth=depth, width=16)
    side = 32 // 2**depth
    assert model.feature_dim == 16 * side * side
    assert model(images(3, 32)).shape == (BATCH, NUM_CLASSES)


@pytest.mark.parametrize("norm", ["instance", "batch", "layer", "none"])
@pytest.mark.parametrize("act", ["relu", "leakyrelu", "sigmoid", "gelu"])
def test_convnet_norm_and_act(norm, act):
    model = build("convnet", 3, 16, norm=norm, act=act, width=8)
    out = model(images(3, 16))
    out.sum().backward()
    assert out.shape == (BATCH, NUM_CLASSES)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("pool,side", [("avg", 2), ("max", 2), ("none", 16)])
def test_convnet_pool(pool, side):
    model = build("convnet", 3, 16, pool=pool, width=8)
    assert model.feature_dim == 8 * side * side
    assert model.embed(images(3, 16)).shape == (BATCH, model.feature_dim)


def test_convnet_mnist_gets_reference_32x32_first_map():
    model = build("convnet", 1, 28)
    with torch.no_grad():
        first = model.features[0](images(1, 28))
    assert first.shape == (BATCH, 128, 32, 32)
    assert model.feature_dim == 128 * 4 * 4


@pytest.mark.parametrize("channels, size", [(1, 28), (3, 16)])
def test_convnet_fused_first_block_equals_conv_then_instance_norm(channels, size):
    """The first block's instance norm computed from patch statistics is the plain conv -> norm
    path, in outputs and in gradients w.r.t. the input and every parameter."""
    torch.manual_seed(0)
    model = get_model("convnet", channels=channels, num_classes=10, image_size=(size, size), width=16)
    assert model.fused_first_block
    with torch.no_grad():
        model.features[1].weight.uniform_(0.5, 1.5)
        model.features[1].bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, channels, size, size, requires_grad=True)
    results = []
    for fused in (True, False):
        model.fused_first_block = fused
        out = model(x)
        grads = torch.autograd.grad(out.square().sum(), [x, *model.parameters()])
        results.append((out, grads))
    (out_f, g_f), (out_r, g_r) = results
    torch.testing.assert_close(out_f, out_r, atol=1e-5, rtol=1e-4)
    for a, b in zip(g_f, g_r):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("channels, size", [(1, 28), (3, 16)])
def test_convnet_batch_norm_first_block_from_patch_statistics_is_the_plain_path(channels, size):
    """In training mode the first block's batch norm comes from patch statistics
    (`patch_conv_batch_norm`): the same outputs, gradients (input and every parameter) and running
    statistics as the plain nn.Conv2d -> nn.BatchNorm2d modules; in evaluation mode both use the
    running statistics."""
    torch.manual_seed(0)
    fast = get_model("convnet", channels=channels, num_classes=10, image_size=(size, size), width=16, norm="batch")
    plain = get_model("convnet", channels=channels, num_classes=10, image_size=(size, size), width=16, norm="batch",
                      fast_first_block=False)
    with torch.no_grad():
        fast.features[1].weight.uniform_(0.5, 1.5)
        fast.features[1].bias.uniform_(-0.5, 0.5)
    plain.load_state_dict(fast.state_dict())
    calls = []
    fast.features[1].register_forward_hook(lambda *a: calls.append(1))  # the norm module is skipped
    for step in range(2):
        x = torch.randn(4, channels, size, size, requires_grad=True)
        outs = []
        for model in (fast, plain):
            out = model(x)
            outs.append((out, torch.autograd.grad(out.square().sum(), [x, *model.parameters()])))
        (out_f, g_f), (out_p, g_p) = outs
        torch.testing.assert_close(out_f, out_p, atol=1e-5, rtol=1e-4)
        for a, b in zip(g_f, g_p):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
    assert not calls
    for (name, a), b in zip(fast.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)
    fast.eval(), plain.eval()
    x = torch.randn(4, channels, size, size)
    torch.testing.assert_close(fast(x), plain(x), atol=1e-5, rtol=1e-4)
    assert calls  # evaluation mode runs the module itself (hooks on it, as sre2l's, see it)


def test_convnet_fused_first_block_only_for_instance_norm():
    assert not get_model("convnet", channels=1, num_classes=10, image_size=(28, 28), norm="batch").fused_first_block
    assert not get_model("convnet", channels=16, num_classes=10, image_size=(8, 8)).fused_first_block


def test_convnet_plain_first_block_is_the_same_function():
    torch.manual_seed(0)
    fast = get_model("convnet", channels=1, num_classes=10, image_size=(28, 28), width=16)
    plain = get_model("convnet", channels=1, num_classes=10, image_size=(28, 28), width=16, fast_first_block=False)
    assert type(plain.features[0]) is torch.nn.Conv2d and not plain.fused_first_block
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(fast(x), plain(x), atol=1e-5, rtol=1e-4)

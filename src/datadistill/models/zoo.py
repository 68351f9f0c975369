"""The rest of the model zoo: mlp, lenet, alexnet, vgg11, resnet18.

Every model has `features`, mapping (N, C, H, W) to (N, feature_dim), `embed` (the same thing)
and a linear `classifier`. Spatial sizes are worked out once in the constructor, so `forward` is
a fixed sequence of tensor ops: safe for `torch.func.functional_call` and `torch.compile`.
At 28x28 and 32x32 the architectures are those of the DC reference
(VICO-UoE/DatasetCondensation); padding and pooling adapt so that smaller inputs still work.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from . import MODELS

NORMS = ("instance", "batch", "none")
Size = tuple[int, int]
VGG11_CFG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def _check_shape(model: str, channels: int, num_classes: int, image_size: Size) -> Size:
    if len(image_size) != 2 or min(image_size) < 1:
        raise ConfigError(f"{model} needs a positive (height, width), got {image_size}")
    if channels < 1 or num_classes < 1:
        raise ConfigError(f"{model} needs positive channels and num_classes, got {channels}, {num_classes}")
    return int(image_size[0]), int(image_size[1])


def _check_positive(model: str, **values: int) -> None:
    for key, value in values.items():
        if value < 1:
            raise ConfigError(f"{model} {key} must be positive, got {value}")


def _check_norm(model: str, norm: str) -> None:
    if norm not in NORMS:
        raise ConfigError(f"{model} norm {norm!r} not in {NORMS}")


def _norm(kind: str, width: int) -> nn.Module:
    if kind == "instance":
        return nn.GroupNorm(width, width, affine=True)  # instance norm with affine, as the reference
    if kind == "batch":
        return nn.BatchNorm2d(width)
    return nn.Identity()


def _reference_pad(channels: int, size: Size) -> int:
    """Extra first-conv padding that turns 1x28x28 into a 32x32 map inside, as convnet does."""
    return 2 if channels == 1 and size == (28, 28) else 0


def _conv_out(size: Size, kernel: int, padding: int, stride: int = 1) -> Size:
    return tuple((s + 2 * padding - kernel) // stride + 1 for s in size)  # type: ignore[return-value]


def _halve(model: str, size: Size, image_size: Size) -> Size:
    if min(size) < 2:
        raise ConfigError(f"{model} pools image size {image_size} below 1x1; use larger images")
    return size[0] // 2, size[1] // 2


class _Net(nn.Module):
    """`features` (ending in Flatten) then one linear `classifier`; subclasses build both."""

    features: nn.Sequential
    classifier: nn.Linear
    feature_dim: int

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, feature_dim)."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> logits (N, num_classes)."""
        return self.classifier(self.features(x))


class MLP(_Net):
    """Flatten, then `depth` hidden layers of `width` units with ReLU (reference: 2 x 128)."""

    def __init__(
        self, channels: int, num_classes: int, image_size: Size, *, width: int = 128, depth: int = 2
    ) -> None:
        super().__init__()
        h, w = _check_shape("mlp", channels, num_classes, image_size)
        _check_positive("mlp", width=width, depth=depth)
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = channels * h * w
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), nn.ReLU()]
            fan_in = width
        self.features = nn.Sequential(*layers)
        self.feature_dim = width
        self.classifier = nn.Linear(width, num_classes)


class LeNet(_Net):
    """conv(6, 5x5) relu maxpool, conv(16, 5x5) relu maxpool, fc 120, fc 84; embed is the 84.

    A 5x5 conv is valid (no padding) unless that would shrink the map too much; then it pads by 2
    and keeps the size. This gives the reference on 28x28 (padding 2) and 32x32 (no padding), and
    lets 8x8 inputs through. Images smaller than 4x4 raise ConfigError.
    """

    def __init__(self, channels: int, num_classes: int, image_size: Size) -> None:
        super().__init__()
        size = _check_shape("lenet", channels, num_classes, image_size)
        layers: list[nn.Module] = []
        cin = channels
        for cout, min_out in ((6, 28), (16, 2)):
            pad = 0 if min(size) - 4 >= min_out else 2
            layers += [nn.Conv2d(cin, cout, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2)]
            size = _halve("lenet", _conv_out(size, 5, pad), image_size)
            cin = cout
        layers += [nn.Flatten(), nn.Linear(16 * size[0] * size[1], 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.feature_dim = 84
        self.classifier = nn.Linear(84, num_classes)


class AlexNet(_Net):
    """The DC reference's small AlexNet: conv 128 (5x5), 192 (5x5), 256, 192, 192 (3x3), three max
    pools, then one linear layer. All convs keep the size, so the features are 192 x H/8 x W/8
    (192 x 4 x 4 for 28x28 and 32x32); images smaller than 8x8 raise ConfigError."""

    def __init__(self, channels: int, num_classes: int, image_size: Size) -> None:
        super().__init__()
        size = _check_shape("alexnet", channels, num_classes, image_size)
        extra = _reference_pad(channels, size)
        spec = (  # (in, out, kernel, max pool after)
            (channels, 128, 5, True), (128, 192, 5, True), (192, 256, 3, False), (256, 192, 3, False), (192, 192, 3, True)
        )
        layers: list[nn.Module] = []
        for i, (cin, cout, kernel, pool) in enumerate(spec):
            pad = kernel // 2 + (extra if i == 0 else 0)
            layers += [nn.Conv2d(cin, cout, kernel, padding=pad), nn.ReLU()]
            size = _conv_out(size, kernel, pad)
            if pool:
                layers.append(nn.MaxPool2d(2))
                size = _halve("alexnet", size, image_size)
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.feature_dim = 192 * size[0] * size[1]
        self.classifier = nn.Linear(self.feature_dim, num_classes)


class VGG11(_Net):
    """VGG-11 (conv3x3 -> norm -> relu; 'M' = max pool), flattened into one linear layer.

    `width` scales the channel counts (64 is the reference). A pool is skipped when it would
    leave a later conv a 1x1 map (where instance norm erases the signal) or the features below
    1x1, so 1x28x28 and 3x32x32 give the reference 512 x 1 x 1 and 8x8 inputs still work.
    """

    def __init__(
        self, channels: int, num_classes: int, image_size: Size, *, norm: str = "instance", width: int = 64
    ) -> None:
        super().__init__()
        size = _check_shape("vgg11", channels, num_classes, image_size)
        _check_norm("vgg11", norm)
        _check_positive("vgg11", width=width)
        layers: list[nn.Module] = []
        extra = _reference_pad(channels, size)
        cin, first = channels, True
        for i, item in enumerate(VGG11_CFG):
            if item == "M":
                convs_follow = any(later != "M" for later in VGG11_CFG[i + 1 :])
                if min(size) // 2 >= (2 if convs_follow else 1):
                    layers.append(nn.MaxPool2d(2))
                    size = (size[0] // 2, size[1] // 2)
                continue
            cout = max(1, int(item) * width // 64)
            pad = 1 + (extra if first else 0)
            layers += [nn.Conv2d(cin, cout, 3, padding=pad), _norm(norm, cout), nn.ReLU()]
            size = _conv_out(size, 3, pad)
            cin, first = cout, False
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.feature_dim = cin * size[0] * size[1]
        self.classifier = nn.Linear(self.feature_dim, num_classes)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (1x1 conv + norm when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str) -> None:
        super().__init__()
        bias = norm == "none"  # without a norm layer, nothing else supplies the shift
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)
        self.norm1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=bias)
        self.norm2 = _norm(norm, cout)
        self.act = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=bias), _norm(norm, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class ResNet18(_Net):
    """ResNet-18 for small images: 3x3 stem with stride 1 and no max pool (as for CIFAR), four
    stages of two BasicBlocks with widths `width` x (1, 2, 4, 8), global average pool, linear.

    A stage downsamples (stride 2) only while the map is at least 4 pixels, so the last stage
    never runs on 1x1 maps; 32x32 inputs get the usual 32 -> 16 -> 8 -> 4.
    """

    def __init__(
        self, channels: int, num_classes: int, image_size: Size, *, norm: str = "batch", width: int = 64
    ) -> None:
        super().__init__()
        size = _check_shape("resnet18", channels, num_classes, image_size)
        _check_norm("resnet18", norm)
        _check_positive("resnet18", width=width)
        layers: list[nn.Module] = [
            nn.Conv2d(channels, width, 3, padding=1, bias=norm == "none"),
            _norm(norm, width),
            nn.ReLU(),
        ]
        cin = width
        for stage in range(4):
            cout = width * 2**stage
            stride = 2 if stage > 0 and min(size) >= 4 else 1
            size = _conv_out(size, 3, 1, stride)
            layers.append(nn.Sequential(BasicBlock(cin, cout, stride, norm), BasicBlock(cout, cout, 1, norm)))
            cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = cin
        self.classifier = nn.Linear(cin, num_classes)


@MODELS.register("mlp")
def mlp(channels: int, num_classes: int, image_size: Size, **kwargs) -> MLP:
    """Multi-layer perceptron: depth hidden layers of width units with ReLU (default 2 x 128)."""
    return MLP(channels, num_classes, image_size, **kwargs)


@MODELS.register("lenet")
def lenet(channels: int, num_classes: int, image_size: Size, **kwargs) -> LeNet:
    """LeNet-5: two 5x5 convolutions with max pooling, then fully connected 120, 84."""
    return LeNet(channels, num_classes, image_size, **kwargs)


@MODELS.register("alexnet")
def alexnet(channels: int, num_classes: int, image_size: Size, **kwargs) -> AlexNet:
    """The DC reference's small AlexNet: five convolutions, three max pools, one linear layer."""
    return AlexNet(channels, num_classes, image_size, **kwargs)


@MODELS.register("vgg11")
def vgg11(channels: int, num_classes: int, image_size: Size, **kwargs) -> VGG11:
    """VGG-11: eight 3x3 convolutions (instance norm by default) and max pools, then one linear layer."""
    return VGG11(channels, num_classes, image_size, **kwargs)


@MODELS.register("resnet18")
def resnet18(channels: int, num_classes: int, image_size: Size, **kwargs) -> ResNet18:
    """ResNet-18 for small images: 3x3 stem without max pool, four stages of two basic blocks."""
    return ResNet18(channels, num_classes, image_size, **kwargs)

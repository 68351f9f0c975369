"""ConvNet-D: the standard architecture of dataset distillation (Gidaris & Komodakis style, as in
VICO-UoE/DatasetCondensation): D blocks of conv3x3 -> norm -> activation -> pool, then linear."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from . import MODELS

NORMS = ("instance", "batch", "layer", "none")
ACTS = ("relu", "leakyrelu", "sigmoid", "gelu")
POOLS = ("avg", "max", "none")


class PatchConv2d(nn.Conv2d):
    """A Conv2d computed as unfold + matmul. Same parameters and result as nn.Conv2d; used for the
    first layer when it has few input channels (1 or 3): oneDNN's kernels for C_in = 1 are slow on
    CPU (the weight gradient above all), while this is one small-K matmul that runs in bf16. The
    output is channels-last in memory (an (N, C, H, W) view of an (N, H, W, C) tensor), the layout
    in which the compiled norm / activation / pooling kernels that follow are fastest."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        oh, ow = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
        cols = F.unfold(x, (kh, kw), padding=(ph, pw))  # (N, C*kh*kw, oh*ow)
        out = torch.matmul(cols.transpose(1, 2), self.weight.reshape(self.out_channels, -1).t())  # (N, L, O)
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out.view(n, oh, ow, self.out_channels).permute(0, 3, 1, 2)


def _patches(x: torch.Tensor, conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """The fp32 patch columns (N, K, L) of `x` for `conv`, its weight as (O, K), and the output's (H, W)."""
    (kh, kw), (ph, pw) = conv.kernel_size, conv.padding
    out_hw = (x.shape[2] + 2 * ph - kh + 1, x.shape[3] + 2 * pw - kw + 1)
    with torch.autocast(x.device.type, enabled=False):
        cols = F.unfold(x.float(), (kh, kw), padding=(ph, pw))
    return cols, conv.weight.reshape(conv.out_channels, -1), out_hw


def patch_conv_instance_norm(x: torch.Tensor, conv: nn.Conv2d, norm: nn.GroupNorm) -> torch.Tensor:
    """conv -> instance norm for a conv with few input channels, without a pass over its output.

    The conv is linear in the image patches: out[n, c, l] = W_c . p[n, :, l] + b_c. So the
    per-image, per-channel mean and (biased) variance that instance norm needs follow from the
    mean m[n] and covariance S[n] of the patches (C*k*k values, e.g. 9): mean = W_c . m[n] + b_c,
    var = W_c^T S[n] W_c. Normalising is then one matmul with per-image weights
    W'[n, c] = gamma_c W_c / sqrt(var + eps) and bias beta_c - gamma_c (W_c . m[n]) / sqrt(var + eps).
    Same result as `norm(conv(x))` (the statistics are computed in fp32), but the forward and
    backward passes avoid the instance norm's reductions over the largest tensor of the network.
    Output is channels-last in memory, like `PatchConv2d`.
    """
    cols, weight, out_hw = _patches(x, conv)
    with torch.autocast(x.device.type, enabled=False):
        m = cols.mean(2)  # (N, K)
        centred = cols - m.unsqueeze(2)
        cov = centred @ centred.transpose(1, 2) / cols.shape[2]  # (N, K, K)
        wf = weight.float()
        var = ((wf @ cov) * wf).sum(2)  # (N, O): W_c^T S_n W_c
        scale = norm.weight.float() * torch.rsqrt(var + norm.eps)  # (N, O)
        w_n = scale.unsqueeze(2) * wf  # (N, O, K)
        mean = m @ wf.t()  # (N, O) channel means without the conv bias, which instance norm cancels:
        if conv.bias is not None:  # written out so the bias gets its (exactly zero) gradient, as in eager
            mean = (mean + conv.bias.float()) - conv.bias.float()
        b_n = norm.bias.float() - scale * mean  # (N, O)
    out = torch.bmm(cols.transpose(1, 2), w_n.transpose(1, 2))  # (N, L, O); bf16 under autocast
    out = out + b_n.unsqueeze(1).to(out.dtype)
    return out.view(len(x), *out_hw, conv.out_channels).permute(0, 3, 1, 2)


def patch_conv_batch_norm(x: torch.Tensor, conv: nn.Conv2d, norm: nn.BatchNorm2d) -> torch.Tensor:
    """conv -> batch norm in training mode for a conv with few input channels, without a pass over
    its output: `patch_conv_instance_norm` with the statistics taken over the whole batch (the
    mean m and covariance S of all patches of all images: mean = W_c . m + b_c, biased
    var = W_c^T S W_c), so normalising folds into the conv's weights and the batch norm's
    reductions over the largest tensor of the network go. The running statistics are updated as
    `nn.BatchNorm2d` does (momentum, unbiased variance). Same result as `norm(conv(x))` with the
    statistics computed in fp32. Output is channels-last in memory, like `PatchConv2d`."""
    cols, weight, out_hw = _patches(x, conv)
    with torch.autocast(x.device.type, enabled=False):
        count = cols.shape[0] * cols.shape[2]
        m = cols.mean((0, 2))  # (K,)
        centred = cols - m.view(1, -1, 1)
        cov = torch.einsum("nkl,njl->kj", centred, centred) / count  # (K, K)
        wf = weight.float()
        mean = wf @ m  # (O,) channel means without the conv bias, which the norm cancels:
        if conv.bias is not None:  # written out so the bias gets its (exactly zero) gradient, as in eager
            mean = (mean + conv.bias.float()) - conv.bias.float()
        var = ((wf @ cov) * wf).sum(1)  # (O,): W_c^T S W_c
        if norm.track_running_stats:
            with torch.no_grad():
                norm.num_batches_tracked.add_(1)
                mom = norm.momentum
                full_mean = mean + conv.bias.float() if conv.bias is not None else mean
                norm.running_mean.mul_(1 - mom).add_(full_mean.to(norm.running_mean.dtype), alpha=mom)
                unbiased = var * (count / max(count - 1, 1))
                norm.running_var.mul_(1 - mom).add_(unbiased.to(norm.running_var.dtype), alpha=mom)
        scale = norm.weight.float() * torch.rsqrt(var + norm.eps)  # (O,)
        w_n = scale.unsqueeze(1) * wf  # (O, K)
        b_n = norm.bias.float() - scale * mean  # (O,)
    out = torch.matmul(cols.transpose(1, 2), w_n.t())  # (N, L, O); bf16 under autocast
    out = out + b_n.to(out.dtype)
    return out.view(len(x), *out_hw, conv.out_channels).permute(0, 3, 1, 2)


def _norm(kind: str, width: int, hw: int) -> nn.Module:
    if kind == "instance":
        return nn.GroupNorm(width, width, affine=True)  # instance norm with affine, as the reference
    if kind == "batch":
        return nn.BatchNorm2d(width)
    if kind == "layer":
        return nn.LayerNorm([width, hw, hw], elementwise_affine=True)
    return nn.Identity()


def _act(kind: str) -> nn.Module:
    return {"relu": nn.ReLU, "leakyrelu": lambda: nn.LeakyReLU(0.01), "sigmoid": nn.Sigmoid, "gelu": nn.GELU}[kind]()


class ConvNet(nn.Module):
    """`features` maps (N, C, H, W) to (N, width * h * w); `classifier` is one linear layer.

    Single-channel 28x28 inputs get padding 3 in the first conv (32x32 inside), as the reference.
    `fast_first_block` (default) computes a first conv with 1-3 input channels as unfold + matmul
    and its normalisation from patch statistics: with instance norm (`patch_conv_instance_norm`)
    and with batch norm in training mode (`patch_conv_batch_norm`); False gives the plain
    nn.Conv2d -> norm modules (same parameters, same function).
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        image_size: tuple[int, int],
        *,
        depth: int = 3,
        width: int = 128,
        norm: str = "instance",
        act: str = "relu",
        pool: str = "avg",
        fast_first_block: bool = True,
    ) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ConfigError(f"convnet depth and width must be positive, got {depth}, {width}")
        for value, valid, what in ((norm, NORMS, "norm"), (act, ACTS, "act"), (pool, POOLS, "pool")):
            if value not in valid:
                raise ConfigError(f"convnet {what} {value!r} not in {valid}")
        h, w = image_size
        if h != w:
            raise ConfigError(f"convnet expects square images, got {h}x{w}")
        hw = h
        layers: list[nn.Module] = []
        cin = channels
        for d in range(depth):
            pad = 3 if (d == 0 and channels == 1 and hw == 28) else 1
            conv = PatchConv2d if (fast_first_block and cin * 9 <= 27) else nn.Conv2d
            layers.append(conv(cin, width, 3, padding=pad))
            hw = hw + 2 * pad - 2
            layers += [_norm(norm, width, hw), _act(act)]
            if pool != "none":
                if hw < 2:
                    raise ConfigError(f"convnet depth {depth} pools {image_size} below 1x1")
                layers.append(nn.AvgPool2d(2) if pool == "avg" else nn.MaxPool2d(2))
                hw //= 2
            cin = width
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.depth = depth
        self.block_size = 4 if pool != "none" else 3  # conv, norm, act[, pool]
        self.feature_dim = width * hw * hw
        self.classifier = nn.Linear(self.feature_dim, num_classes)
        # conv -> instance norm of the first block computed from patch statistics (exact; faster).
        self.fused_first_block = isinstance(layers[0], PatchConv2d) and norm == "instance"
        # batch norm's first block from patch statistics in training mode; False: through the modules
        # (the same function; `datadistill speed --what teacher` times both)
        self.patch_batch_norm = True

    def extra_repr(self) -> str:
        # the compiled step is cached by repr (evaluation.train._step_fn): a switched-off patch batch
        # norm must show; the default adds nothing, so checkpoints' model fingerprints stay as they were
        return f"fused_first_block={self.fused_first_block}" + ("" if self.patch_batch_norm else ", patch_batch_norm=False")

    def _fused_first(self, x: torch.Tensor) -> torch.Tensor | None:
        """The first block's conv -> norm computed from patch statistics, where that applies: with
        instance norm always, with batch norm in training mode (momentum set; evaluation mode
        normalises with the running statistics, a plain affine map). None elsewhere."""
        conv, norm = self.features[0], self.features[1]
        if self.fused_first_block:
            return patch_conv_instance_norm(x, conv, norm)
        if (self.patch_batch_norm and isinstance(conv, PatchConv2d) and isinstance(norm, nn.BatchNorm2d) and norm.training
                and norm.momentum is not None and norm.affine):
            return patch_conv_batch_norm(x, conv, norm)
        return None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        first = self._fused_first(x)
        if first is not None:
            return self.features[2:](first)
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))

    def block_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of each block (after its pooling), (N, width, h, w) each; the last one
        flattened is `embed(x)`."""
        outs = []
        b = self.block_size
        for d in range(self.depth):
            block = self.features[d * b:(d + 1) * b]
            first = self._fused_first(x) if d == 0 else None
            x = block[2:](first) if first is not None else block(x)
            outs.append(x)
        return outs


@MODELS.register("convnet")
def convnet(channels: int, num_classes: int, image_size: tuple[int, int], **kwargs) -> ConvNet:
    """ConvNet-3 of the distillation literature: depth x (conv 3x3, instance norm, ReLU, avg pool), linear
    (options: depth, width, norm, act, pool)."""
    return ConvNet(channels, num_classes, image_size, **kwargs)

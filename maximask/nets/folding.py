"""Merging an eval-mode batch normalisation into the convolution before it.

A convolution of weight ``W`` and bias ``b`` followed by a batch normalisation
of running mean ``mu``, variance ``var``, scale ``gamma`` and shift ``beta``
is, in eval mode, one convolution of weight ``W * s`` and bias
``beta + (b - mu) * s``, with ``s = gamma / sqrt(var + eps)`` per output channel.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["folded_weight_and_bias", "folded_conv"]


def folded_weight_and_bias(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (out, in, kh, kw) and bias (out,) of ``conv`` followed by ``bn``, float32 (computed in float64).

    ``bn=None``: the convolution's own weight and bias (zeros when it has none).
    """
    weight = conv.weight.detach().double()
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros(weight.shape[0], dtype=torch.float64)
    if bn is not None:
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        weight = weight * scale[:, None, None, None]
        bias = bn.bias.detach().double() + (bias - bn.running_mean.double()) * scale
    return weight.float(), bias.float()


def folded_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> nn.Conv2d:
    """A new convolution with a bias, equal in eval mode to ``conv`` followed by ``bn``."""
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,
                    padding_mode=conv.padding_mode)
    weight, bias = folded_weight_and_bias(conv, bn)
    with torch.no_grad():
        out.weight.copy_(weight)
        out.bias.copy_(bias)
    return out.to(conv.weight.device)

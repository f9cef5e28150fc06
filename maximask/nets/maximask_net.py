"""MaxiMaskNet: the semantic-segmentation network of paper Sect. 3.1.1 (Fig. 10, Table 5).

Three parts:

1. a VGG-like encoder (3x3 convolutions + ReLU, 2x2 max-pooling that keeps its
   indices) going from full resolution down to 1/32;
2. a decoder that unpools with those indices and sums, at each resolution, the
   encoder's feature maps with the upsampled ones;
3. unpool-convolution paths (UCPs) that bring the decoder's features at 1/16,
   1/8, 1/4 and 1/2 resolution up to full resolution, giving, together with the
   decoder's own full-resolution output, 5 pre-predictions of 14 maps, which are
   concatenated (70 maps) and combined by a last 3x3 convolution into the 14
   final maps (one independent sigmoid per class).

Channel counts follow Table 5 times ``width``; ``width=1.0`` is the paper's
network. ``batch_norm=True`` (not in the paper) puts a batch normalisation
between every hidden convolution and its ReLU, for faster training from
scratch; :func:`fold_batch_norm` merges each one into its convolution, which
gives back the paper's network (``batch_norm=False``) with identical
eval-mode outputs, so shipped model files never hold batch normalisation. Any input size works: pooling rounds up (e.g. 25 -> 13) and
unpooling restores the exact size recorded on the way down.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from maximask.classes import N_CLASSES
from maximask.nets.folding import folded_weight_and_bias
from maximask.nets.registry import register_model

__all__ = ["MaxiMaskNet", "fold_batch_norm"]

#: Table 5 channel counts at width 1.0: encoder levels 1, 1/2, 1/4, 1/8, 1/16, 1/32.
_ENCODER_CHANNELS = (32, 64, 128, 256, 256, 256)
#: Number of convolutions per encoder level (Table 5: single, single, double, double, double, single).
_ENCODER_DEPTHS = (1, 1, 2, 2, 2, 1)
_N_LEVELS = 5  # number of max-pool steps


def _conv(c_in: int, c_out: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=bias)


def _hidden_conv(c_in: int, c_out: int, batch_norm: bool) -> list[nn.Module]:
    """3x3 convolution [+ batch normalisation] + ReLU."""
    if batch_norm:
        return [_conv(c_in, c_out, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return [_conv(c_in, c_out), nn.ReLU(inplace=True)]


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _unpool(x: torch.Tensor, indices: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return F.max_unpool2d(x, indices, kernel_size=2, stride=2, output_size=size[-2:])


def _unpool_add_(x: torch.Tensor, indices: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``skip += max_unpool2d(x, indices)``, in place, without the zero-filled intermediate."""
    b, c, h, w = skip.shape
    if skip.is_contiguous(memory_format=torch.channels_last) and not skip.is_contiguous():
        s3 = skip.permute(0, 2, 3, 1).view(b, h * w, c)
        s3.scatter_add_(1, indices.permute(0, 2, 3, 1).reshape(b, -1, c), x.permute(0, 2, 3, 1).reshape(b, -1, c))
    else:
        skip = skip.contiguous()
        skip.view(b, c, -1).scatter_add_(2, indices.contiguous().view(b, c, -1), x.contiguous().view(b, c, -1))
    return skip


class _ConvStack(nn.Sequential):
    """Convolutions [+ batch normalisation] with ReLU: channels ``chans[0] -> chans[1] -> ...``."""

    def __init__(self, chans: list[int], batch_norm: bool = False):
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += _hidden_conv(c_in, c_out, batch_norm)
        super().__init__(*layers)


@register_model("maximask")
class MaxiMaskNet(nn.Module):
    """The MaxiMask segmentation network.

    Parameters
    ----------
    n_classes : int
        Number of output maps (14: paper Table 4).
    width : float
        Channel multiplier; 1.0 gives the paper's channel counts (Table 5).
    batch_norm : bool
        Batch normalisation after every hidden convolution (training aid, not
        in the paper; :func:`fold_batch_norm` removes it exactly).

    Notes
    -----
    ``forward(x)`` takes ``x`` of shape (B, 1, H, W), float32, the dynamically
    compressed image (Sect. 2.3.3), and returns logits of shape (B, n_classes, H, W);
    probabilities are ``torch.sigmoid(logits)``. ``forward(x, return_pre=True)``
    also returns the list of 5 pre-prediction logits, each (B, n_classes, H, W),
    ordered from the lowest-resolution UCP (1/16) to the decoder's own
    full-resolution output. With gradients off (and no ``return_pre``),
    ``forward`` runs :meth:`forward_inference`, the memory-lean equivalent.
    """

    def __init__(self, n_classes: int = N_CLASSES, width: float = 1.0, batch_norm: bool = False):
        super().__init__()
        if width <= 0:
            msg = f"width must be positive, got {width}"
            raise ValueError(msg)
        self.arch_args = {"n_classes": int(n_classes), "width": float(width)}
        if batch_norm:
            self.arch_args["batch_norm"] = True
        bn = bool(batch_norm)
        ch = [_scaled(c, width) for c in _ENCODER_CHANNELS]
        self.channels = tuple(ch)

        # 1. Encoder: level k works at 1/2^k resolution.
        encoder = []
        c_prev = 1
        for c, depth in zip(ch, _ENCODER_DEPTHS):
            encoder.append(_ConvStack([c_prev] + [c] * depth, bn))
            c_prev = c
        self.encoder = nn.ModuleList(encoder)

        # 2. Decoder: after unpooling to level k (k = 4..0) and summing with
        # the encoder's level-k maps. Table 5: 1/16: 256,256; 1/8: 256,128;
        # 1/4: 128,64; 1/2: 32; full: n_classes (no ReLU: pre-prediction logits).
        self.decoder = nn.ModuleList(
            [
                _conv(ch[0], n_classes),  # level 0 (full): conv to logits, no ReLU
                _ConvStack([ch[1], ch[0]], bn),  # level 1 (1/2): 64 -> 32
                _ConvStack([ch[2], ch[2], ch[1]], bn),  # level 2 (1/4): 128 -> 128 -> 64
                _ConvStack([ch[3], ch[3], ch[2]], bn),  # level 3 (1/8): 256 -> 256 -> 128
                _ConvStack([ch[4], ch[4], ch[4]], bn),  # level 4 (1/16): 256 -> 256 -> 256
            ]
        )
        # Output channels of the decoder at each level (input of the next unpooling).
        dec_out = [n_classes, ch[0], ch[1], ch[2], ch[4]]

        # 3. UCPs from levels 4, 3, 2, 1 up to full resolution: at each finer
        # level, unpool then one convolution with the decoder's output width
        # at that level (Table 5 "Idem"/"None" columns).
        ucps = []
        for start in (4, 3, 2, 1):
            convs = []
            c_in = dec_out[start]
            for level in range(start - 1, -1, -1):
                c_out = dec_out[level]
                if level == 0:
                    convs.append(_conv(c_in, c_out))  # logits
                else:
                    convs.append(nn.Sequential(*_hidden_conv(c_in, c_out, bn)))
                c_in = c_out
            ucps.append(nn.ModuleList(convs))
        self.ucps = nn.ModuleList(ucps)

        self.head = _conv(5 * n_classes, n_classes)

    def forward(self, x: torch.Tensor, return_pre: bool = False):
        if x.ndim != 4 or x.shape[1] != 1:
            msg = f"expected input of shape (B, 1, H, W), got {tuple(x.shape)}"
            raise ValueError(msg)
        if not return_pre and not torch.is_grad_enabled():
            return self.forward_inference(x)
        # Encoder, keeping pooling indices and sizes.
        skips, indices, sizes = [], [], []
        h = x
        for level in range(_N_LEVELS):
            h = self.encoder[level](h)
            skips.append(h)
            sizes.append(h.shape)
            h, idx = F.max_pool2d(h, kernel_size=2, stride=2, ceil_mode=True, return_indices=True)
            indices.append(idx)
        h = self.encoder[_N_LEVELS](h)

        # Decoder with summed skips; remember each level's output for the UCPs.
        dec = {}
        for level in range(_N_LEVELS - 1, -1, -1):
            h = _unpool(h, indices[level], sizes[level]) + skips[level]
            h = self.decoder[level](h)
            dec[level] = h

        pre = []
        for start, path in zip((4, 3, 2, 1), self.ucps):
            u = dec[start]
            for conv, level in zip(path, range(start - 1, -1, -1)):
                u = conv(_unpool(u, indices[level], sizes[level]))
            pre.append(u)
        pre.append(dec[0])
        logits = self.head(torch.cat(pre, dim=1))
        if return_pre:
            return logits, pre
        return logits

    def forward_inference(self, x: torch.Tensor) -> torch.Tensor:
        """Logits as ``forward(x)`` (up to float summation order), with less memory and time; no autograd.

        Three changes, none of the arithmetic:

        1. the decoder's unpooling is added in place into the encoder's maps (no
           zero-filled intermediate);
        2. the last convolution over the 5 concatenated pre-predictions is applied
           as a sum of 5 convolutions, each pre-prediction dropped as soon as it is
           used, so the (B, 70, H, W) concatenation never exists;
        3. the full-resolution maps of ``n_classes`` channels (the 5 pre-predictions and
           the sum) are computed with :data:`LOGIT_CHANNEL_MULTIPLE`-padded channel counts
           (zero weights and biases, so the extra channels are exactly 0 and are dropped
           at the end): convolution kernels are faster on channel counts that fill their
           vector registers (14 -> 16 channels: 1.1-1.2 times faster for the whole
           network at width 0.5 on a 2-core AVX2 CPU, ``benchmarks/logit_padding.py``).

        ``forward`` uses it when gradients are off.

        Parameters
        ----------
        x : Tensor, shape (B, 1, H, W)

        Returns
        -------
        Tensor, shape (B, n_classes, H, W): logits (a view of a (B, padded, H, W) tensor
        when ``n_classes`` is not a multiple of :data:`LOGIT_CHANNEL_MULTIPLE`).
        """
        with torch.no_grad():
            n_cls = self.head.out_channels
            n_pad = -(-n_cls // LOGIT_CHANNEL_MULTIPLE) * LOGIT_CHANNEL_MULTIPLE
            memory_format = (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
                             and not x.is_contiguous() else torch.contiguous_format)

            def padded(conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
                """Weight and bias of a convolution to ``n_cls`` maps, with ``n_pad`` outputs."""
                return (_pad_weight(conv.weight, n_pad, conv.in_channels, memory_format),
                        _pad_bias(conv.bias, n_pad))

            skips, indices, sizes = [], [], []
            h = x
            for level in range(_N_LEVELS):
                h = self.encoder[level](h)
                skips.append(h)
                sizes.append(h.shape)
                h, idx = F.max_pool2d(h, kernel_size=2, stride=2, ceil_mode=True, return_indices=True)
                indices.append(idx)
            h = self.encoder[_N_LEVELS](h)
            dec = {}
            for level in range(_N_LEVELS - 1, -1, -1):
                h = _unpool_add_(h, indices[level], skips[level])
                skips[level] = None
                h = F.conv2d(h, *padded(self.decoder[0]), padding=1) if level == 0 else self.decoder[level](h)
                dec[level] = h
            del h
            head_weight = self.head.weight

            def head_part(i: int) -> torch.Tensor:
                """The head's kernel on pre-prediction ``i``, (n_pad, n_pad, 3, 3)."""
                return _pad_weight(head_weight[:, i * n_cls:(i + 1) * n_cls], n_pad, n_pad, memory_format)

            acc = None
            starts = list(range(_N_LEVELS - 1, 0, -1))
            for i, (start, path) in enumerate(zip(starts, self.ucps)):
                u = dec.pop(start)
                for conv, level in zip(path, range(start - 1, -1, -1)):
                    u = _unpool(u, indices[level], sizes[level])
                    u = F.conv2d(u, *padded(conv), padding=1) if level == 0 else conv(u)
                part = F.conv2d(u, head_part(i), _pad_bias(self.head.bias, n_pad) if acc is None else None, padding=1)
                del u
                acc = part if acc is None else acc.add_(part)
                del part
            acc.add_(F.conv2d(dec.pop(0), head_part(len(starts)), None, padding=1))
            return acc[:, :n_cls]


#: Channel counts of the full-resolution logit maps in :meth:`MaxiMaskNet.forward_inference`
#: are rounded up to a multiple of this (8 float32 lanes of AVX2, 16 of AVX-512: 14 -> 16).
LOGIT_CHANNEL_MULTIPLE = 8


def _pad_weight(weight: torch.Tensor, c_out: int, c_in: int, memory_format: torch.memory_format) -> torch.Tensor:
    """``weight`` (o, i, kh, kw) zero-padded to (c_out, c_in, kh, kw), in ``memory_format``."""
    if weight.shape[:2] == (c_out, c_in):
        return weight
    out = weight.new_zeros((c_out, c_in) + tuple(weight.shape[2:]))
    out[: weight.shape[0], : weight.shape[1]] = weight
    return out.contiguous(memory_format=memory_format)


def _pad_bias(bias: torch.Tensor, c_out: int) -> torch.Tensor:
    """``bias`` (o,) zero-padded to (c_out,)."""
    if bias.shape[0] == c_out:
        return bias
    out = bias.new_zeros(c_out)
    out[: bias.shape[0]] = bias
    return out


def fold_batch_norm(model: MaxiMaskNet) -> MaxiMaskNet:
    """The plain network (``batch_norm=False``) equivalent to ``model`` in eval mode.

    Each convolution followed by a batch normalisation of running mean ``mu``,
    variance ``var``, scale ``gamma`` and shift ``beta`` becomes one convolution
    of weight ``W * s`` and bias ``beta + (b - mu) * s``, with
    ``s = gamma / sqrt(var + eps)`` per output channel. A model without batch
    normalisation is returned as an equal copy.

    Parameters
    ----------
    model : MaxiMaskNet

    Returns
    -------
    MaxiMaskNet, in eval mode, ``arch_args`` without ``batch_norm``.
    """
    args = {k: v for k, v in model.arch_args.items() if k != "batch_norm"}
    plain = MaxiMaskNet(**args)
    src = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    dst = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    i = 0
    with torch.no_grad():
        for conv_out in dst:
            conv = src[i]
            bn = src[i + 1] if i + 1 < len(src) and isinstance(src[i + 1], nn.BatchNorm2d) else None
            i += 2 if bn is not None else 1
            weight, bias = folded_weight_and_bias(conv, bn)
            conv_out.weight.copy_(weight)
            conv_out.bias.copy_(bias)
    if i != len(src):
        msg = "the model's layers do not match the plain MaxiMaskNet's"
        raise ValueError(msg)
    return plain.eval()

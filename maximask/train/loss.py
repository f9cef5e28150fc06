"""Loss functions of MaxiMask and MaxiTrack (paper Sect. 3.1.2 and 3.2).

MaxiMask (Eqs. 12-17)
---------------------
The data term is the sigmoid cross-entropy summed over classes and pixels and
averaged over the batch (Eq. 12), every pixel weighted by ``w'_{p,b}``: the
sum of the class weights ``w_c`` of the classes labelling it (Eq. 14, ``w_c``
from Eq. 15, see :mod:`maximask.train.class_weights`), smoothed with a
normalised 3x3 Gaussian kernel of unit standard deviation.

*Border handling of the smoothing*: the weight map is padded by replicating
its edge pixels, so a border pixel is smoothed with copies of itself and of
its neighbours, and a uniform map stays uniform up to the edge.

*Scale*: Eq. 12 sums over pixels; with ``normalize=True`` (default) the sum
is divided by the number of pixels per image ``H*W``, a constant factor that
leaves the optimum unchanged and keeps loss values comparable between patch
sizes.

*Auxiliary losses*: the same weighted cross-entropy is computed on the
pre-predictions, and ``3x33%`` adds 0.33 times the loss of each of the 3
lowest-resolution pre-predictions, ``2x50%`` adds 0.5 times each of the 2
lowest-resolution ones (the network returns them lowest resolution first).

*Regularisation* (Eq. 17): ``lambda * sum_i ||k_i||_2`` where ``k_i`` is the
flattened weight tensor of convolution layer ``i`` (biases excluded); the sum
of L2 norms, not of squared norms. The paper uses ``lambda = 1`` with its
pixel-summed loss on 400x400 images; with the per-pixel normalised data term
the same balance is ``lambda = 1 / 400**2 = 6.25e-6``, the default of
:class:`maximask.train.config.TrainConfig`.

MaxiTrack
---------
Softmax cross-entropy on the two logits (not weighted), averaged over the batch.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "AUX_SCHEMES",
    "gaussian_kernel",
    "pixel_weights",
    "smooth_weights",
    "weighted_sigmoid_ce",
    "maximask_loss",
    "l2_regularization",
    "maxitrack_loss",
    "MaxiMaskLoss",
]

#: Auxiliary-loss schemes: coefficient of each pre-prediction, lowest resolution first.
AUX_SCHEMES: dict[str, tuple[float, ...]] = {
    "none": (),
    "3x33%": (0.33, 0.33, 0.33),
    "2x50%": (0.5, 0.5),
}


def gaussian_kernel(size: int = 3, sigma: float = 1.0, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised 2-D Gaussian kernel.

    Parameters
    ----------
    size : int
        Odd side of the kernel, pixels.
    sigma : float
        Standard deviation, pixels.

    dtype : torch.dtype
        Type of the result (computed in float64).

    Returns
    -------
    Tensor, shape (size, size), summing to 1.
    """
    if size < 1 or size % 2 == 0:
        msg = f"kernel size must be a positive odd integer, got {size}"
        raise ValueError(msg)
    if sigma <= 0:
        msg = f"sigma must be positive, got {sigma}"
        raise ValueError(msg)
    r = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    k = torch.outer(g, g)
    return (k / k.sum()).to(dtype)


def pixel_weights(truth: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    """Per-pixel weights ``w_{p,b} = sum_{c in C_{p,b}} w_c`` (Eq. 14).

    Parameters
    ----------
    truth : Tensor, shape (B, C, H, W)
        Binary class planes (0 or 1).
    class_weights : Tensor, shape (C,)
        ``w_c`` of Eq. 15.

    Returns
    -------
    Tensor, shape (B, H, W)
    """
    w = class_weights.to(dtype=truth.dtype, device=truth.device)
    return torch.einsum("bchw,c->bhw", truth, w)


def smooth_weights(weights: torch.Tensor, *, size: int = 3, sigma: float = 1.0) -> torch.Tensor:
    """Smooth weight maps with a normalised Gaussian kernel (edge-replicated borders).

    Parameters
    ----------
    weights : Tensor, shape (B, H, W)

    Returns
    -------
    Tensor, shape (B, H, W): ``w'_{p,b}`` of Eq. 12.
    """
    k = gaussian_kernel(size, sigma, dtype=weights.dtype).to(weights.device)
    pad = size // 2
    x = F.pad(weights[:, None], (pad, pad, pad, pad), mode="replicate")
    return F.conv2d(x, k[None, None])[:, 0]


def weighted_sigmoid_ce(
    logits: torch.Tensor, truth: torch.Tensor, weights: torch.Tensor, *, normalize: bool = True
) -> torch.Tensor:
    """Weighted sigmoid cross-entropy of Eq. 12.

    Parameters
    ----------
    logits : Tensor, shape (B, C, H, W)
        Pre-sigmoid network outputs.
    truth : Tensor, shape (B, C, H, W)
        Binary labels ``y_{b,p,c}`` (Eq. 13).
    weights : Tensor, shape (B, H, W)
        Pixel weights ``w'_{p,b}``.
    normalize : bool
        Divide by the number of pixels per image ``H*W``.

    Returns
    -------
    Tensor, scalar: sum over classes and pixels, mean over the batch.
    """
    ce = F.binary_cross_entropy_with_logits(logits, truth, reduction="none").sum(dim=1)
    per_image = (weights * ce).flatten(1).sum(dim=1)
    loss = per_image.mean()
    if normalize:
        loss = loss / (logits.shape[-1] * logits.shape[-2])
    return loss


def maximask_loss(
    logits: torch.Tensor,
    pre_logits: Sequence[torch.Tensor] | None,
    truth: torch.Tensor,
    class_weights: torch.Tensor,
    *,
    aux: str = "3x33%",
    normalize: bool = True,
    smooth_sigma: float = 1.0,
) -> torch.Tensor:
    """Main plus auxiliary MaxiMask data loss (Eqs. 12-16, no regularisation).

    Parameters
    ----------
    logits : Tensor, shape (B, C, H, W)
        Final predictions (pre-sigmoid).
    pre_logits : sequence of Tensor (B, C, H, W), or None
        Pre-predictions, lowest resolution first; needed unless ``aux="none"``.
    truth : Tensor, shape (B, C, H, W)
        Binary labels.
    class_weights : Tensor, shape (C,)
        ``w_c`` (Eq. 15).
    aux : {"3x33%", "2x50%", "none"}
        Auxiliary-loss scheme.
    normalize : bool
        Divide by ``H*W`` (constant factor).
    smooth_sigma : float
        Standard deviation of the 3x3 smoothing kernel, pixels.
    """
    if aux not in AUX_SCHEMES:
        msg = f"unknown auxiliary-loss scheme {aux!r}; expected one of {', '.join(AUX_SCHEMES)}"
        raise ValueError(msg)
    coefs = AUX_SCHEMES[aux]
    if coefs and (pre_logits is None or len(pre_logits) < len(coefs)):
        msg = f"auxiliary scheme {aux!r} needs {len(coefs)} pre-predictions"
        raise ValueError(msg)
    w = smooth_weights(pixel_weights(truth, class_weights), sigma=smooth_sigma)
    loss = weighted_sigmoid_ce(logits, truth, w, normalize=normalize)
    for coef, pre in zip(coefs, pre_logits or ()):
        loss = loss + coef * weighted_sigmoid_ce(pre, truth, w, normalize=normalize)
    return loss


def l2_regularization(model: nn.Module, lam: float) -> torch.Tensor:
    """``lambda * sum_i ||k_i||_2`` over the convolution kernels of ``model`` (Eq. 17).

    ``k_i`` is the flattened weight tensor of the ``i``-th ``nn.Conv2d`` (biases
    and non-convolution layers excluded).
    """
    terms = [m.weight.flatten().norm(p=2) for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not terms:
        return torch.zeros(())
    return lam * torch.stack(terms).sum()


def maxitrack_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy of MaxiTrack.

    Parameters
    ----------
    logits : Tensor, shape (B, 2)
    labels : Tensor, shape (B,), int64 (1: tracking error)

    Returns
    -------
    Tensor, scalar, mean over the batch.
    """
    return F.cross_entropy(logits, labels)


class MaxiMaskLoss(nn.Module):
    """Module wrapper of :func:`maximask_loss` plus Eq. 17 regularisation.

    Parameters
    ----------
    class_weights : array-like, shape (C,)
        ``w_c`` of Eq. 15.
    aux : str
        Auxiliary-loss scheme (:data:`AUX_SCHEMES`).
    l2_lambda : float
        ``lambda`` of Eq. 17 in the units of the (normalised) data term.
    normalize : bool
        Divide the data term by ``H*W``.
    smooth_sigma : float
        Standard deviation of the 3x3 weight-smoothing kernel, pixels.
    """

    def __init__(self, class_weights, *, aux: str = "3x33%", l2_lambda: float = 0.0, normalize: bool = True,
                 smooth_sigma: float = 1.0):
        super().__init__()
        self.register_buffer("class_weights", torch.as_tensor(class_weights, dtype=torch.float32))
        self.aux = aux
        self.l2_lambda = float(l2_lambda)
        self.normalize = normalize
        self.smooth_sigma = float(smooth_sigma)
        if not math.isfinite(self.l2_lambda) or self.l2_lambda < 0:
            msg = f"l2_lambda must be a finite non-negative number, got {l2_lambda}"
            raise ValueError(msg)

    def forward(self, model: nn.Module, image: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(total loss, data loss)`` for one batch through ``model``."""
        if self.aux == "none":
            logits, pre = model(image), None
        else:
            logits, pre = model(image, return_pre=True)
        data = maximask_loss(logits, pre, truth, self.class_weights, aux=self.aux, normalize=self.normalize,
                             smooth_sigma=self.smooth_sigma)
        total = data + l2_regularization(model, self.l2_lambda) if self.l2_lambda else data
        return total, data.detach()

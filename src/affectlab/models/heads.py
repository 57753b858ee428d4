"""Building blocks shared by several model families.

- :func:`mlp` and :func:`va_outputs`: plain prediction heads; VA either through ``tanh`` or as the
  expectation over equal-width bins (teacher-student paper, eq. 3).
- :class:`ROIAttention`, :class:`RegionTransformer`, :class:`AUInnerProduct`: parts I and II of
  SMM-EmotionNet (smm paper §3.1, eqs. 1-2), reused by the context paper's model.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from affectlab.errors import AffectlabError
from affectlab.labels import va_bin_centers


def mlp(sizes: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    """Fully connected layers ``sizes[0] -> ... -> sizes[-1]`` with ReLU (and dropout) between them."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers += [nn.ReLU(inplace=True)] + ([nn.Dropout(dropout)] if dropout else [])
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def va_from_bin_logits(logits: Tensor) -> Tensor:
    """Continuous VA (B, 2) from bin logits (B, 2, n_bins): the expectation Σ_k softmax_k · centre_k.

    Teacher-student §3: "we simply calculate the expectation given the probability distribution".
    """
    centers = torch.tensor(va_bin_centers(logits.shape[-1]), dtype=logits.dtype, device=logits.device)
    return torch.softmax(logits, -1) @ centers


def va_outputs(raw: Tensor, n_bins: int) -> tuple[Tensor, Tensor | None]:
    """(``va``, ``va_bins``) from a head's raw output (..., 2) or (..., 2·n_bins).

    Without bins, ``va = tanh(raw)``. With bins, ``raw`` holds per-dimension bin logits (..., 2, n_bins)
    and ``va`` is the expectation of the bin centres under their softmax, as in teacher-student
    eq. 3 ("we simply calculate the expectation given the probability distribution").
    """
    if not n_bins:
        return torch.tanh(raw), None
    logits = raw.unflatten(-1, (2, n_bins))
    return va_from_bin_logits(logits), logits


class ROIEmbedding(nn.Module):
    """One region's embedding: attention-weighted feature map -> f^(u) in R^D (SMM Fig. 1, part I).

    Conv 3×3 (C -> D), conv 1×1 (D -> D), each with BatchNorm and ReLU, global average pooling
    and an FC layer: the paper gives only D; these layers follow the authors' released code.
    """

    def __init__(self, in_channels: int, D: int):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, D, 3, padding=1, bias=False), nn.BatchNorm2d(D), nn.ReLU(inplace=True),
            nn.Conv2d(D, D, 1, bias=False), nn.BatchNorm2d(D), nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(D, D)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.convs(x).mean((-2, -1)))


class ROIAttention(nn.Module):
    """SMM part I: U spatial attention maps over the feature map, and one ROI embedding per region.

    Returns F^(U)(x) = {f^(u)(x)} as (B, U, D) and the attention maps (B, U, h, w), which have the
    size of the feature map. The element-wise product of map u and the feature map is the input of
    region u's embedding module (smm paper §3.1; the authors' code feeds x·a + x instead, we follow
    the paper). The maps come from a 3×3 conv to 4U channels (BatchNorm, ReLU) and a 1×1 conv to
    U channels through a sigmoid, one map per region.
    """

    def __init__(self, in_channels: int, U: int, D: int):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv2d(in_channels, 4 * U, 3, padding=1, bias=False), nn.BatchNorm2d(4 * U), nn.ReLU(inplace=True),
            nn.Conv2d(4 * U, U, 1), nn.Sigmoid(),
        )
        self.embeddings = nn.ModuleList(ROIEmbedding(in_channels, D) for _ in range(U))

    def forward(self, feature_map: Tensor) -> tuple[Tensor, Tensor]:
        maps = self.attention(feature_map)
        F_U = torch.stack([emb(feature_map * maps[:, u : u + 1]) for u, emb in enumerate(self.embeddings)], dim=1)
        return F_U, maps


def sinusoidal_encoding(n_positions: int, D: int) -> Tensor:
    """The Transformer's sinusoidal positional encoding (Vaswani et al.), (n_positions, D)."""
    position = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, D, 2, dtype=torch.float32) / D)
    pe = torch.zeros(n_positions, D)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq[: D // 2])
    return pe


class RegionTransformer(nn.Module):
    """SMM part II, eq. 1: S^(H)(x) = Φ(F^(H)(x) + PE), one output vector per region token.

    Φ is a Transformer encoder (post-norm, GELU); the paper does not give its depth, heads,
    feed-forward width or dropout, so they are options.
    """

    def __init__(self, n_tokens: int, D: int, n_layers: int, n_heads: int, dim_feedforward: int, dropout: float):
        super().__init__()
        if D % n_heads:
            raise AffectlabError(f"the region dimension D={D} must be divisible by n_heads={n_heads}")
        self.register_buffer("PE", sinusoidal_encoding(n_tokens, D), persistent=False)
        layer = nn.TransformerEncoderLayer(D, n_heads, dim_feedforward, dropout, activation="gelu", batch_first=True)
        self.Phi = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)

    def forward(self, F_H: Tensor) -> Tensor:
        return self.Phi(F_H + self.PE)


class AUInnerProduct(nn.Module):
    """SMM eq. 2: one FC per AU on its own sign-vehicle space, y_h = <W_h, S^(h)(x)> + b_h."""

    def __init__(self, H: int, D: int):
        super().__init__()
        bound = 1 / math.sqrt(D)  # nn.Linear's default initialisation
        self.W = nn.Parameter(torch.empty(H, D).uniform_(-bound, bound))
        self.b = nn.Parameter(torch.empty(H).uniform_(-bound, bound))

    def forward(self, S_H: Tensor) -> Tensor:
        return (S_H * self.W).sum(-1) + self.b

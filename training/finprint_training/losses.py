"""Losses: identification heads (ArcFace, softmax) and the masked-pixel reconstruction loss.

Total loss = identification + λ · reconstruction; λ = 0 is the no-inpainting ablation. Must never
see test identities: the heads' classes are the training identity keys only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

HEADS = ("arcface", "softmax")


class ArcFace(nn.Module):
    """Additive angular margin head: logits = s·cos(θ_y + m) for the true class, s·cos θ otherwise."""

    def __init__(self, dim: int, classes: int, scale: float = 30.0, margin: float = 0.3) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, dim))
        nn.init.xavier_uniform_(self.weight)
        self.scale = scale
        self.margin = margin

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of (already normalised) embeddings to each class centre."""
        return emb @ F.normalize(self.weight, dim=1).t()

    def forward(self, emb: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cos = self.cosine(emb)
        if labels is None or self.margin == 0:
            return cos * self.scale
        theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
        target = torch.cos(theta + self.margin)
        # Keep the logit monotonic when θ + m passes π (standard "easy margin" fallback).
        target = torch.where(theta + self.margin < math.pi, target, cos - self.margin * math.sin(self.margin))
        onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        return (onehot * target + (1 - onehot) * cos) * self.scale


class Softmax(nn.Module):
    """Plain linear classifier on the embedding."""

    def __init__(self, dim: int, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, classes)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(emb)


def make_head(kind: str, dim: int, classes: int, margin: float = 0.3, scale: float = 30.0) -> nn.Module:
    """Identification head by name (``arcface`` or ``softmax``)."""
    if kind == "arcface":
        return ArcFace(dim, classes, scale=scale, margin=margin)
    if kind == "softmax":
        return Softmax(dim, classes)
    raise ValueError(f"unknown head {kind!r}; allowed: {', '.join(HEADS)}")


def masked_reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the hidden pixels only (all channels); 0 when nothing is hidden.

    ``pred``/``target``: (B, 3, H, W); ``mask``: (B, H, W) bool or {0,1}.
    """
    m = mask.to(pred.dtype).unsqueeze(1)
    denom = m.sum() * pred.shape[1]
    if float(denom) == 0.0:
        return pred.sum() * 0.0
    return (((pred - target) ** 2) * m).sum() / denom

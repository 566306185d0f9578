"""GradCAM on the encoder's last feature map and the pattern-focus score.

Metric learning has no class logit for unseen individuals, so the GradCAM target of a crop is the
cosine similarity of its embedding to its identity's prototype (the mean embedding of that identity's
crops, held fixed). The map is ReLU(Σ_c w_c·A_c) with w_c the spatial mean of ∂target/∂A_c, upsampled
bilinearly to the input size.

Pattern focus = share of GradCAM energy inside the fish body (region ≥ 128), and inside the striped
region (region = 255); the body's and striped region's share of the image area are reported beside
them as the chance level. This module must never change model weights.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from .data import BODY_VALUE, STRIPED_VALUE, to_tensor
from .models import Encoder


def gradcam(model: Encoder, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B, H, W) GradCAM maps (each max-normalised to [0, 1]) for normalised input ``x``.

    ``targets``: (B, D) unit vectors; the explained score is ⟨embedding, target⟩.
    """
    model.eval()
    with torch.enable_grad():
        x = x.detach().requires_grad_(False)
        fmap = model.feature_map(x)
        fmap.retain_grad()
        emb = model.embed_from_map(fmap)
        score = (emb * targets).sum()
        model.zero_grad(set_to_none=True)
        score.backward()
        grad = fmap.grad
        assert grad is not None  # retain_grad above guarantees it
        weights = grad.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * fmap).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False).squeeze(1)
    peak = cam.flatten(1).max(dim=1).values.clamp_min(1e-12).view(-1, 1, 1)
    model.zero_grad(set_to_none=True)
    return cam / peak


def prototypes(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-sample unit prototype: the normalised mean embedding of the sample's label."""
    out = np.zeros_like(emb)
    for lab in np.unique(labels):
        m = labels == lab
        p = emb[m].mean(axis=0)
        out[m] = p / max(1e-12, float(np.linalg.norm(p)))
    return out


def gradcam_for_set(
    model: Encoder, images: np.ndarray, labels: np.ndarray, emb: np.ndarray, batch: int = 64
) -> np.ndarray:
    """GradCAM maps (N, H, W) of uint8 crops towards their identity prototypes (from ``emb``)."""
    protos = torch.from_numpy(prototypes(emb, labels))
    out = []
    for i in range(0, len(images), batch):
        out.append(gradcam(model, to_tensor(images[i : i + batch]), protos[i : i + batch]).numpy())
    return np.concatenate(out)


def focus_scores(cams: np.ndarray, regions: np.ndarray) -> dict[str, float]:
    """Mean over images of the GradCAM energy share inside the body and the striped region.

    Images whose map is all zero are skipped. Also returns the area shares (chance level).
    """
    body = regions >= BODY_VALUE
    striped = regions >= STRIPED_VALUE
    energy = cams.reshape(len(cams), -1).sum(axis=1)
    ok = energy > 0
    if not ok.any():
        nan = float("nan")
        return {"focus_body": nan, "focus_striped": nan, "area_body": nan, "area_striped": nan}
    fb = (cams * body).reshape(len(cams), -1).sum(axis=1)[ok] / energy[ok]
    fs = (cams * striped).reshape(len(cams), -1).sum(axis=1)[ok] / energy[ok]
    return {
        "focus_body": float(fb.mean()),
        "focus_striped": float(fs.mean()),
        "area_body": float(body[ok].mean()),
        "area_striped": float(striped[ok].mean()),
    }


def save_montage(
    images: np.ndarray, cams: np.ndarray, regions: np.ndarray, path: Path, title: str = "", n: int = 8
) -> None:
    """Writes a PNG: n crops, each with its GradCAM overlay and the body outline."""
    n = min(n, len(images))
    idx = np.linspace(0, len(images) - 1, n).round().astype(int) if n else np.array([], dtype=int)
    fig, axes = plt.subplots(n, 2, figsize=(6, 1.1 * max(1, n)), squeeze=False)
    for row, i in enumerate(idx):
        axes[row, 0].imshow(images[i])
        axes[row, 1].imshow(images[i])
        axes[row, 1].imshow(cams[i], cmap="jet", alpha=0.5, vmin=0, vmax=1)
        axes[row, 1].contour(regions[i] >= BODY_VALUE, levels=[0.5], colors="white", linewidths=0.6)
        for a in axes[row]:
            a.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

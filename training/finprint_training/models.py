"""Models: a timm backbone, an L2-normalised embedding head and a light inpainting decoder.

``Encoder.forward(x)`` is what gets exported: normalised NCHW image → L2-normalised embedding. The
identification head lives in ``losses`` (it is training-only) and the decoder is only used when the
reconstruction weight λ > 0. This module must never hold data or training-loop logic.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import timm
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone family at small input sizes."""

    #: timm model name.
    timm_name: str
    #: Extra timm kwargs (``img_size`` is added for ViTs).
    kwargs: dict = field(default_factory=dict)
    #: Whether the model is a ViT (token output reshaped to a grid).
    vit: bool = False
    #: Turn the last stride-2 convolution into stride 1 (stride 16 for models without ``output_stride``).
    last_stride_1: bool = False


#: The four compared backbones (a ResNet, a MobileNet, a ConvNeXt, a ViT), sized for CPU training.
BACKBONES: dict[str, BackboneSpec] = {
    "resnet10t": BackboneSpec("resnet10t", {"output_stride": 16}),
    "mobilenetv3_small_100": BackboneSpec("mobilenetv3_small_100", last_stride_1=True),
    "convnext_atto": BackboneSpec("convnext_atto", {"output_stride": 16}),
    # All CNNs end at stride 16 (a 2×6 map at 32×96) so that GradCAM and the decoder keep some resolution.
    # ViT-Tiny width (192, 3 heads) with patch 8 and 6 blocks so that it trains on 2 CPU cores.
    "vit_tiny_patch16_224": BackboneSpec("vit_tiny_patch16_224", {"patch_size": 8, "depth": 6}, vit=True),
}


class Decoder(nn.Module):
    """Light decoder: feature map → RGB at input size (upsample ×2 + 3×3 conv per octave)."""

    def __init__(self, in_ch: int, stride: int, width: int = 64) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(in_ch, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        ups: list[nn.Module] = []
        ch = width
        for _ in range(max(0, round(math.log2(max(1, stride))))):
            nxt = max(16, ch // 2)
            ups += [
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(ch, nxt, 3, padding=1),
                nn.BatchNorm2d(nxt),
                nn.ReLU(inplace=True),
            ]
            ch = nxt
        self.ups = nn.Sequential(*ups)
        self.out = nn.Conv2d(ch, 3, 3, padding=1)

    def forward(self, fmap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        y = self.out(self.ups(self.proj(fmap)))
        if tuple(y.shape[-2:]) != size:
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return y


class Encoder(nn.Module):
    """Backbone + embedding head (+ optional decoder)."""

    def __init__(
        self,
        backbone: str,
        img_size: tuple[int, int],
        embed_dim: int = 128,
        pretrained: bool = False,
        decoder: bool = True,
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; allowed: {', '.join(BACKBONES)}")
        spec = BACKBONES[backbone]
        kwargs = dict(spec.kwargs)
        if spec.vit:
            kwargs["img_size"] = img_size
        self.backbone_name = backbone
        self.timm_name = spec.timm_name
        self.vit = spec.vit
        self.img_size = img_size
        self.body = _create(spec.timm_name, pretrained, kwargs)
        if spec.last_stride_1:
            _last_stride_to_1(self.body)
        with torch.no_grad():
            was = self.body.training
            self.body.eval()
            fm = self._fmap(torch.zeros(1, 3, *img_size))
            self.body.train(was)
        self.feat_ch = int(fm.shape[1])
        self.fmap_hw = (int(fm.shape[2]), int(fm.shape[3]))
        stride = max(1, round(img_size[0] / self.fmap_hw[0]))
        self.head = nn.Sequential(nn.Linear(self.feat_ch, embed_dim), nn.BatchNorm1d(embed_dim))
        self.embed_dim = embed_dim
        self.decoder = Decoder(self.feat_ch, stride) if decoder else None

    def _fmap(self, x: torch.Tensor) -> torch.Tensor:
        f = self.body.forward_features(x)
        if self.vit:
            skip = int(getattr(self.body, "num_prefix_tokens", 1))
            gh, gw = self.body.patch_embed.grid_size
            f = f[:, skip:, :].transpose(1, 2).reshape(f.shape[0], f.shape[2], gh, gw)
        return f

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Last feature map (B, C, h, w) — the GradCAM layer and the decoder input."""
        return self._fmap(x)

    def embed_from_map(self, fmap: torch.Tensor) -> torch.Tensor:
        """Global average pool → linear → BN → L2 normalisation."""
        z = self.head(fmap.mean(dim=(2, 3)))
        return F.normalize(z, dim=1, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_from_map(self.feature_map(x))

    def reconstruct(self, fmap: torch.Tensor) -> torch.Tensor:
        """Decoder output (B, 3, H, W) in normalised pixel space."""
        if self.decoder is None:
            raise RuntimeError("this encoder was built without a decoder (lambda = 0)")
        return self.decoder(fmap, self.img_size)


def _create(name: str, pretrained: bool, kwargs: dict) -> nn.Module:
    if pretrained:
        try:
            return timm.create_model(name, pretrained=True, num_classes=0, **kwargs)
        except Exception as e:
            log.warning("pretrained weights for %s unavailable (%s); using random initialisation", name, e)
    return timm.create_model(name, pretrained=False, num_classes=0, **kwargs)


def _last_stride_to_1(model: nn.Module) -> None:
    """Sets the stride of the last stride-2 convolution to 1 (its padding already suits stride 1)."""
    last: nn.Conv2d | None = None
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and tuple(m.stride) == (2, 2):
            last = m
    if last is not None:
        last.stride = (1, 1)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())

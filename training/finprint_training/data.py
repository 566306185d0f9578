"""Data: loads a folder-per-individual crop set into memory and augments it without mirroring.

Layout (what ``finprint synth --dataset DIR`` writes, or a lab's own photos)::

    DIR/{train,val,test}/<individual>/<flank>_<nnnn>.png       RGB crop, body axis horizontal
    DIR/{train,val,test}/<individual>/<flank>_<nnnn>.mask.png  8-bit: 0 background,
                                                               128 body outside the striped region,
                                                               255 striped flank region
    DIR/dataset.json                                           optional metadata (kept in the model card)

* ``train``: training individuals. ``val``: *other images* of the training individuals (closed set).
  ``test``: individuals never seen in training (open set).
* Identity key = ``<individual>/<flank>``: the two flanks of a zebrafish carry different patterns, so each
  flank is its own class in training and in the open-set metrics (the daemon's gallery tags every
  embedding with its flank anyway). Files whose name does not start with ``L_``/``R_`` get flank ``U``.
* Crops without a ``.mask.png`` (lab photos): the body is segmented by Otsu thresholding of the grey
  image, the foreground being the side that the crop border (assumed background) is *not* on; the whole
  body then counts as striped region (255), since nothing better is known.

This module must never flip images horizontally: left and right flanks are different identities and a
mirrored flank is not a real fish.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
MASK_SUFFIX = ".mask.png"
#: Mask values written by the simulator.
BODY_VALUE = 128
STRIPED_VALUE = 255
#: Per-channel normalisation applied after scaling RGB to [0, 1] (ImageNet statistics).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class DataError(Exception):
    """A dataset folder is missing, empty or holds an unreadable file."""


@dataclass
class ImageSet:
    """One split held in memory at the training size."""

    #: (N, H, W, 3) uint8 RGB.
    images: np.ndarray
    #: (N, H, W) uint8 region map: 0 background, 128 body, 255 striped region.
    regions: np.ndarray
    #: (N,) int64 index into ``keys``.
    labels: np.ndarray
    #: Identity keys ``<individual>/<flank>`` (index = label).
    keys: list[str]
    #: Source file of every image.
    paths: list[Path]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, idx: np.ndarray) -> ImageSet:
        """The images at ``idx`` (labels keep their meaning)."""
        return ImageSet(self.images[idx], self.regions[idx], self.labels[idx], self.keys, [self.paths[i] for i in idx])


def flank_of(name: str) -> str:
    """Flank letter from a file name (``L_0003.png`` → ``L``); ``U`` when the name does not say."""
    head = name.split("_", 1)[0]
    return head if head in ("L", "R") else "U"


def otsu_threshold(gray: np.ndarray) -> int:
    """Otsu's threshold of an 8-bit image: the level maximising the between-class variance."""
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 128
    levels = np.arange(256, dtype=np.float64)
    w0 = np.cumsum(hist)
    m0 = np.cumsum(hist * levels)
    w1 = total - w0
    mt = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 / total - m0) ** 2 / (w0 * w1 / total)
    between[~np.isfinite(between)] = -1.0
    return int(np.argmax(between))


def otsu_body_mask(rgb: np.ndarray) -> np.ndarray:
    """Region map for a crop without a mask: Otsu foreground against the border is body, all striped.

    The class that holds most of the 1-pixel crop border is background; the other class is the fish.
    """
    gray = (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.uint8)
    t = otsu_threshold(gray)
    above = gray > t
    border = np.concatenate([above[0], above[-1], above[:, 0], above[:, -1]])
    fish = ~above if border.mean() > 0.5 else above
    return np.where(fish, STRIPED_VALUE, 0).astype(np.uint8)


def _load_rgb(path: Path, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB").resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read image {path}: {e}") from e


def _load_region(image_path: Path, rgb_full: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    mask_path = image_path.with_name(image_path.name[: -len(image_path.suffix)] + MASK_SUFFIX)
    if mask_path.exists():
        try:
            with Image.open(mask_path) as im:
                m = np.asarray(im.convert("L").resize((w, h), Image.Resampling.NEAREST), dtype=np.uint8)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read mask {mask_path}: {e}") from e
        # Snap to the three documented levels (tolerates lossy or rescaled masks).
        out = np.zeros_like(m)
        out[m >= 64] = BODY_VALUE
        out[m >= 192] = STRIPED_VALUE
        return out
    if rgb_full is None:
        rgb_full = _load_rgb(image_path, size)
    return otsu_body_mask(rgb_full)


def list_images(split_dir: Path) -> list[tuple[str, Path]]:
    """(individual, image path) for every crop below ``split_dir``, sorted; masks are not images."""
    if not split_dir.is_dir():
        raise DataError(f"dataset split folder {split_dir} does not exist (expected DIR/{{train,val,test}}/)")
    out: list[tuple[str, Path]] = []
    for ind_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        for f in sorted(ind_dir.iterdir()):
            name = f.name.lower()
            if name.endswith(MASK_SUFFIX) or not name.endswith(IMAGE_SUFFIXES):
                continue
            out.append((ind_dir.name, f))
    return out


def load_split(
    root: Path,
    split: str,
    size: tuple[int, int],
    keys: list[str] | None = None,
    max_per_key: int | None = None,
) -> ImageSet:
    """Loads ``root/split`` at ``size`` = (height, width).

    ``keys`` fixes the label order (pass the training keys when loading the closed-set ``val`` split;
    images of unknown keys are then skipped with a warning). ``max_per_key`` keeps the first N images
    of each identity (to size a run to the CPU).
    """
    entries = list_images(root / split)
    if not entries:
        raise DataError(f"no images in {root / split}")
    per_key: dict[str, list[Path]] = {}
    for ind, p in entries:
        per_key.setdefault(f"{ind}/{flank_of(p.name)}", []).append(p)
    fixed = keys is not None
    key_list = list(keys) if keys is not None else sorted(per_key)
    index = {k: i for i, k in enumerate(key_list)}
    skipped = 0
    imgs: list[np.ndarray] = []
    regs: list[np.ndarray] = []
    labels: list[int] = []
    paths: list[Path] = []
    for key in sorted(per_key):
        if key not in index:
            skipped += len(per_key[key])
            continue
        files = per_key[key][:max_per_key] if max_per_key else per_key[key]
        for p in files:
            rgb = _load_rgb(p, size)
            imgs.append(rgb)
            regs.append(_load_region(p, rgb, size))
            labels.append(index[key])
            paths.append(p)
    if skipped and fixed:
        log.warning("%s: skipped %d images of identities not in the training set", root / split, skipped)
    if not imgs:
        raise DataError(f"{root / split}: no images of the requested identities")
    return ImageSet(np.stack(imgs), np.stack(regs), np.asarray(labels, dtype=np.int64), key_list, paths)


def read_dataset_meta(root: Path) -> dict:
    """``dataset.json`` of the set, or ``{}`` when there is none."""
    p = root / "dataset.json"
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as e:
        log.warning("ignoring unreadable %s: %s", p, e)
        return {}


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, H, W) float normalised with ``MEAN``/``STD``."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


@dataclass
class AugmentConfig:
    """Pattern-preserving augmentations (never a horizontal flip)."""

    #: Max relative brightness change (multiplicative, ±).
    brightness: float = 0.25
    #: Max relative contrast change (±).
    contrast: float = 0.25
    #: Max per-channel gain change (±), mimicking white-balance shifts.
    color: float = 0.08
    #: Probability of a Gaussian blur, and its max sigma in pixels.
    blur_p: float = 0.3
    blur_sigma: float = 1.0
    #: Max std of additive Gaussian noise, in [0, 1] intensity units.
    noise: float = 0.03
    #: Max rotation, degrees (± small: crops are axis-aligned by the detector).
    rotate_deg: float = 6.0
    #: Max relative scale change (±).
    scale: float = 0.08
    #: Max translation, fraction of the size (±).
    translate: float = 0.04


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    r = max(1, math.ceil(2.0 * sigma))
    xs = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(xs**2) / (2 * sigma * sigma))
    return k / k.sum()


def augment(
    images: torch.Tensor, regions: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augments a batch: uint8 (N,H,W,3) images and (N,H,W) regions → float [0,1] (N,3,H,W), regions.

    Geometry (rotation, scale, translation; no flip) is applied identically to image and region map
    (nearest for the map); photometric changes touch the image only.
    """
    n, h, w, _ = images.shape
    x = images.permute(0, 3, 1, 2).float().div(255.0)
    r = regions.unsqueeze(1).float()

    def u(lo: float, hi: float, size: tuple[int, ...] = (n,)) -> torch.Tensor:
        return torch.rand(size, generator=gen) * (hi - lo) + lo

    ang = torch.deg2rad(u(-cfg.rotate_deg, cfg.rotate_deg))
    sc = u(1 - cfg.scale, 1 + cfg.scale)
    tx = u(-cfg.translate, cfg.translate) * 2
    ty = u(-cfg.translate, cfg.translate) * 2
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    aspect = w / h
    # affine_grid works in normalised coordinates; correct the rotation for the non-square aspect.
    theta = torch.stack(
        [
            torch.stack([cos, -sin / aspect, tx], dim=1),
            torch.stack([sin * aspect, cos, ty], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    r = F.grid_sample(r, grid, mode="nearest", padding_mode="zeros", align_corners=False)

    bright = u(1 - cfg.brightness, 1 + cfg.brightness).view(n, 1, 1, 1)
    gain = u(1 - cfg.color, 1 + cfg.color, (n, 3)).view(n, 3, 1, 1)
    x = x * bright * gain
    contrast = u(1 - cfg.contrast, 1 + cfg.contrast).view(n, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean

    if cfg.blur_p > 0 and cfg.blur_sigma > 0:
        which = torch.rand(n, generator=gen) < cfg.blur_p
        if bool(which.any()):
            sigma = float(u(0.3, cfg.blur_sigma, (1,)).item())
            k = _gaussian_kernel(sigma)
            pad = k.numel() // 2
            xb = x[which]
            xb = F.conv2d(
                F.pad(xb, (pad, pad, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3
            )
            xb = F.conv2d(
                F.pad(xb, (0, 0, pad, pad), mode="replicate"), k.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3
            )
            x[which] = xb
    if cfg.noise > 0:
        std = u(0, cfg.noise).view(n, 1, 1, 1)
        x = x + torch.randn(x.shape, generator=gen) * std
    return x.clamp_(0.0, 1.0), r.squeeze(1).round().to(torch.uint8)


def normalize(x01: torch.Tensor) -> torch.Tensor:
    """[0,1] (N,3,H,W) → normalised network input."""
    mean = torch.tensor(MEAN, dtype=x01.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=x01.dtype).view(1, 3, 1, 1)
    return (x01 - mean) / std


def concat(a: ImageSet, b: ImageSet) -> ImageSet:
    """Both sets in one, keys merged (sorted) and labels remapped."""
    keys = sorted(set(a.keys) | set(b.keys))
    index = {k: i for i, k in enumerate(keys)}
    la = np.asarray([index[a.keys[i]] for i in a.labels], dtype=np.int64)
    lb = np.asarray([index[b.keys[i]] for i in b.labels], dtype=np.int64)
    return ImageSet(
        np.concatenate([a.images, b.images]),
        np.concatenate([a.regions, b.regions]),
        np.concatenate([la, lb]),
        keys,
        a.paths + b.paths,
    )


def hold_out(ds: ImageSet, share: float) -> tuple[ImageSet, ImageSet]:
    """(kept, held out): per identity, the last ceil(share·n) images (file order) are held out, n ≥ 2."""
    keep, held = [], []
    for lab in np.unique(ds.labels):
        idx = np.flatnonzero(ds.labels == lab)
        k = 0 if len(idx) < 2 else int(min(len(idx) - 1, max(1, np.ceil(share * len(idx)))))
        keep.extend(idx[: len(idx) - k].tolist())
        held.extend(idx[len(idx) - k :].tolist())
    return ds.subset(np.asarray(keep, dtype=np.int64)), ds.subset(np.asarray(held, dtype=np.int64))


def load_training_sets(
    root: Path, size: tuple[int, int], max_per_key: int | None = None, holdout: float = 0.2
) -> tuple[ImageSet, ImageSet | None, str]:
    """(train, closed-set val, how val was made) — deterministic, so evaluation rebuilds the same split.

    * ``val`` holds other images of the training individuals (the lab layout): it is the closed set.
    * ``val`` holds *other individuals* (``finprint synth`` splits by individual): they are added to the
      training identities, and the closed set is the last ``holdout`` share of every training identity's
      images, which are then not trained on.
    * no ``val``: the closed set is held out of ``train`` the same way.
    """
    train = load_split(root, "train", size, max_per_key=max_per_key)
    try:
        val_all = load_split(root, "val", size, max_per_key=max_per_key)
    except DataError:
        kept, held = hold_out(train, holdout)
        return kept, held, f"no val split: last {holdout:.0%} of each identity's train images"
    shared = set(val_all.keys) & set(train.keys)
    if shared and shared == set(val_all.keys):
        val = load_split(root, "val", size, keys=train.keys)
        return train, val, "val split: other images of the training identities"
    merged = concat(train, val_all)
    kept, held = hold_out(merged, holdout)
    return (
        kept,
        held,
        f"val individuals added to training; closed set = last {holdout:.0%} of each identity's images",
    )

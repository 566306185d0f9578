"""Tiny synthetic fish-crop sets in the ``finprint synth --dataset`` layout, for tests only.

Each identity (individual, flank) gets its own horizontal stripe pattern inside an elliptic body: stripe
positions, widths, a break and a few spots drawn from a seeded generator. Images vary by brightness,
noise and a small shift. The region map marks the body (128) and the striped flank region (255).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def _pattern(rng: np.random.Generator) -> dict:
    n = int(rng.integers(3, 6))
    return {
        "ys": np.sort(rng.uniform(-0.6, 0.6, n)),
        "widths": rng.uniform(0.06, 0.14, n),
        "breaks": rng.uniform(-0.8, 0.8, n),
        "spots": rng.uniform(-1, 1, (int(rng.integers(2, 6)), 2)) * [0.7, 0.5],
        "hue": rng.uniform(0.0, 1.0),
    }


def render(pattern: dict, rng: np.random.Generator, h: int = 64, w: int = 192) -> tuple[np.ndarray, np.ndarray]:
    """One RGB crop (h, w, 3) uint8 and its region map (h, w) uint8."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cx = w / 2 + rng.uniform(-2, 2)
    cy = h / 2 + rng.uniform(-1.5, 1.5)
    u = (xx - cx) / (w * 0.42)
    v = (yy - cy) / (h * 0.36)
    body = u**2 + v**2 <= 1.0
    striped = body & (np.abs(u) <= 0.75) & (np.abs(v) <= 0.8)
    bg = np.array([70, 90, 80], dtype=np.float64)
    fish = np.array([200, 190, 150], dtype=np.float64)
    stripe_col = np.array([40, 40, 90 + 60 * pattern["hue"]], dtype=np.float64)
    img = np.tile(bg, (h, w, 1))
    img[body] = fish
    ink = np.zeros((h, w), dtype=bool)
    for y0, sw, br in zip(pattern["ys"], pattern["widths"], pattern["breaks"], strict=True):
        ink |= (np.abs(v - y0) <= sw) & ~(np.abs(u - br) <= 0.08)
    for sx, sy in pattern["spots"]:
        ink |= (u - sx) ** 2 + ((v - sy) * 2) ** 2 <= 0.01
    ink &= striped
    img[ink] = stripe_col
    img = img * rng.uniform(0.85, 1.15) + rng.normal(0, 4, img.shape)
    region = np.zeros((h, w), dtype=np.uint8)
    region[body] = 128
    region[striped] = 255
    return img.clip(0, 255).astype(np.uint8), region


def write_dataset(
    root: Path,
    train_ids: int = 4,
    test_ids: int = 3,
    train_images: int = 8,
    val_images: int = 3,
    test_images: int = 4,
    seed: int = 0,
    size: tuple[int, int] = (64, 192),
    val_ids: int = 0,
) -> Path:
    """Writes ``root/{train,val,test}/<ind>/<flank>_<nnnn>.png`` + ``.mask.png`` + ``dataset.json``.

    ``val_ids`` = 0: ``val`` holds other images of the training individuals (lab layout); > 0: ``val``
    holds ``val_ids`` other individuals with ``train_images`` each (the ``finprint synth`` layout).
    """
    rng = np.random.default_rng(seed)
    h, w = size
    layout: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for i in range(train_ids + val_ids + test_ids):
        ind = f"fish{i:03d}"
        split = "train" if i < train_ids else "val" if i < train_ids + val_ids else "test"
        layout[split].append(ind)
        for flank in ("L", "R"):
            pat = _pattern(rng)
            plan = {
                "train": [("train", train_images)] + ([("val", val_images)] if val_ids == 0 else []),
                "val": [("val", train_images)],
                "test": [("test", test_images)],
            }[split]
            n = 0
            for sp, count in plan:
                d = root / sp / ind
                d.mkdir(parents=True, exist_ok=True)
                for _ in range(count):
                    img, reg = render(pat, rng, h, w)
                    Image.fromarray(img).save(d / f"{flank}_{n:04d}.png")
                    Image.fromarray(reg).save(d / f"{flank}_{n:04d}.mask.png")
                    n += 1
    meta = {
        "individuals": layout,
        "crop": {"height": h, "width": w},
        "seed": seed,
        "generator": "tests/fixture_data.py",
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root

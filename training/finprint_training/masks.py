"""Masks for the inpainting auxiliary task: which pixels are hidden from the encoder.

Task-specific recipes hide parts of the *skin pattern inside the fish body* (the region map of a crop:
0 background, 128 body, 255 striped flank region), so the network must model the pattern to fill them:

* ``patches``: square patches centred on striped-region pixels, clipped to the striped region;
* ``bands``: bands parallel to the stripes (orientation from the structure tensor of the striped region),
  clipped to the striped region: a whole stripe segment disappears and must be inferred from its neighbours;
* ``blocks``: random rectangles clipped to the body (striped or not).

``random_box`` is the non-task-specific baseline: random rectangles anywhere in the image (background
included). ``none`` hides nothing.

``ratio`` is the share of the target area to hide: the striped region for ``patches``/``bands``, the body
for ``blocks``, the whole image for ``random_box``. A task-specific mask must never leave the body; when a
crop has no striped region the striped recipes fall back to the body, and a crop with no body gets an
empty mask.
"""

from __future__ import annotations

import math

import numpy as np

from .data import BODY_VALUE, STRIPED_VALUE

RECIPES = ("patches", "bands", "blocks", "random_box", "none")
#: Recipes whose masks stay inside the fish body.
TASK_SPECIFIC = ("patches", "bands", "blocks")
_MAX_SHAPES = 64


def _target(recipe: str, region: np.ndarray) -> np.ndarray:
    body = region >= BODY_VALUE
    if recipe in ("patches", "bands"):
        striped = region >= STRIPED_VALUE
        return striped if striped.any() else body
    if recipe == "blocks":
        return body
    return np.ones_like(body)


def stripe_normal(gray: np.ndarray, where: np.ndarray) -> float:
    """Angle (radians) of the dominant intensity gradient inside ``where``: the normal of the stripes.

    Structure tensor J = Σ [gx², gx·gy; gx·gy, gy²]; the dominant gradient direction is
    ½·atan2(2·Jxy, Jxx − Jyy). Horizontal stripes give π/2 (gradient along y).
    """
    g = gray.astype(np.float64)
    gy, gx = np.gradient(g)
    if not where.any():
        return math.pi / 2
    jxx = float((gx[where] ** 2).sum())
    jyy = float((gy[where] ** 2).sum())
    jxy = float((gx[where] * gy[where]).sum())
    if jxx + jyy == 0.0:
        return math.pi / 2
    return 0.5 * math.atan2(2 * jxy, jxx - jyy)


def make_mask(
    recipe: str,
    region: np.ndarray,
    ratio: float,
    rng: np.random.Generator,
    gray: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean (H, W) mask (True = hidden) for one crop.

    ``region`` is the crop's region map, ``gray`` its grey image (used by ``bands`` to find the stripe
    orientation; horizontal stripes are assumed without it).
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown mask recipe {recipe!r}; allowed: {', '.join(RECIPES)}")
    h, w = region.shape
    out = np.zeros((h, w), dtype=bool)
    if recipe == "none" or ratio <= 0:
        return out
    target = _target(recipe, region)
    n_target = int(target.sum())
    if n_target == 0:
        return out
    goal = min(1.0, ratio) * n_target
    yy, xx = np.mgrid[0:h, 0:w]
    if recipe == "patches":
        side = max(2, round(h * 0.22))
        ty, tx = np.nonzero(target)
        for _ in range(_MAX_SHAPES):
            if (out & target).sum() >= goal:
                break
            free = ~out[ty, tx]
            if not free.any():
                break
            i = rng.choice(np.flatnonzero(free))
            cy, cx = int(ty[i]), int(tx[i])
            y0, x0 = max(0, cy - side // 2), max(0, cx - side // 2)
            out[y0 : y0 + side, x0 : x0 + side] = True
    elif recipe == "bands":
        theta = stripe_normal(gray, target) if gray is not None else math.pi / 2
        u = xx * math.cos(theta) + yy * math.sin(theta)
        ut = u[target]
        lo, hi = float(ut.min()), float(ut.max())
        thick = max(1.0, h * 0.08)
        for _ in range(_MAX_SHAPES):
            if (out & target).sum() >= goal:
                break
            c = rng.uniform(lo, hi)
            out |= np.abs(u - c) <= thick / 2
    else:  # blocks, random_box
        if recipe == "blocks":
            ty, tx = np.nonzero(target)
            by0, by1, bx0, bx1 = int(ty.min()), int(ty.max()) + 1, int(tx.min()), int(tx.max()) + 1
        else:
            by0, by1, bx0, bx1 = 0, h, 0, w
        for _ in range(_MAX_SHAPES):
            if (out & target).sum() >= goal:
                break
            bh = int(rng.integers(max(1, h // 8), max(2, h // 3) + 1))
            bw = int(rng.integers(max(1, h // 8), max(2, int(h * 0.6)) + 1))
            y0 = int(rng.integers(by0, max(by0 + 1, by1 - bh + 1)))
            x0 = int(rng.integers(bx0, max(bx0 + 1, bx1 - bw + 1)))
            out[y0 : y0 + bh, x0 : x0 + bw] = True
    return out & target


def batch_masks(
    recipe: str,
    regions: np.ndarray,
    ratio: float,
    rng: np.random.Generator,
    grays: np.ndarray | None = None,
    prob: float = 1.0,
) -> np.ndarray:
    """(N, H, W) masks for a batch; each crop is masked with probability ``prob`` (else empty)."""
    n = regions.shape[0]
    out = np.zeros(regions.shape, dtype=bool)
    for i in range(n):
        if rng.random() < prob:
            out[i] = make_mask(recipe, regions[i], ratio, rng, None if grays is None else grays[i])
    return out

import numpy as np
import pytest

from finprint_training.masks import RECIPES, TASK_SPECIFIC, batch_masks, make_mask, stripe_normal

from fixture_data import _pattern, render


def _crops(n=6, seed=1):
    rng = np.random.default_rng(seed)
    out = [render(_pattern(rng), rng, 32, 96) for _ in range(n)]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


@pytest.mark.parametrize("recipe", TASK_SPECIFIC)
def test_task_specific_masks_stay_inside_body(recipe):
    imgs, regions = _crops()
    rng = np.random.default_rng(0)
    gray = imgs.mean(axis=3)
    for ratio in (0.1, 0.3, 0.6):
        for i in range(len(regions)):
            m = make_mask(recipe, regions[i], ratio, rng, gray[i])
            assert m.any(), f"{recipe} hid nothing at ratio {ratio}"
            assert not (m & (regions[i] == 0)).any(), f"{recipe} leaked outside the body"
            if recipe in ("patches", "bands"):
                assert not (m & (regions[i] != 255)).any(), f"{recipe} left the striped region"


@pytest.mark.parametrize("recipe", ["patches", "bands", "blocks", "random_box"])
def test_mask_ratio_is_reached_roughly(recipe):
    imgs, regions = _crops()
    rng = np.random.default_rng(0)
    for i in range(len(regions)):
        target = {"patches": regions[i] == 255, "bands": regions[i] == 255, "blocks": regions[i] > 0}.get(
            recipe, np.ones(regions[i].shape, bool)
        )
        m = make_mask(recipe, regions[i], 0.3, rng, imgs[i].mean(axis=2))
        share = (m & target).sum() / target.sum()
        assert 0.3 <= share <= 0.75, (recipe, share)


def test_random_box_baseline_is_not_restricted_to_body():
    _, regions = _crops(20)
    rng = np.random.default_rng(0)
    outside = sum(int((make_mask("random_box", r, 0.3, rng) & (r == 0)).sum()) for r in regions)
    assert outside > 0


def test_none_and_empty_body():
    rng = np.random.default_rng(0)
    r = np.zeros((32, 96), np.uint8)
    for recipe in RECIPES:
        if recipe != "random_box":
            assert not make_mask(recipe, r, 0.5, rng).any()
    with pytest.raises(ValueError, match="unknown mask recipe"):
        make_mask("flip", r, 0.5, rng)


def test_stripe_orientation_and_bands_follow_stripes():
    yy, xx = np.mgrid[0:40, 0:120]
    horiz = ((yy // 4) % 2 * 255).astype(float)
    vert = ((xx // 4) % 2 * 255).astype(float)
    where = np.ones_like(horiz, bool)
    assert abs(abs(stripe_normal(horiz, where)) - np.pi / 2) < 0.1
    assert abs(stripe_normal(vert, where)) < 0.1
    region = np.full((40, 120), 255, np.uint8)
    m = make_mask("bands", region, 0.2, np.random.default_rng(0), horiz)
    # Bands parallel to horizontal stripes: every masked row is masked entirely.
    rows = m.any(axis=1)
    assert (m[rows].all(axis=1)).all()


def test_batch_masks_probability():
    _, regions = _crops(40)
    m = batch_masks("blocks", regions, 0.3, np.random.default_rng(0), prob=0.5)
    hit = m.reshape(len(m), -1).any(axis=1).mean()
    assert 0.2 < hit < 0.8

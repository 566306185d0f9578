import numpy as np
import pytest
import torch

from finprint_training.data import AugmentConfig, augment, otsu_body_mask, otsu_threshold
from finprint_training.evaluate import (
    average_precision,
    clustering_metrics,
    gallery_query_split,
    retrieval_metrics,
    topk_accuracy,
)
from finprint_training.gradcam import focus_scores
from finprint_training.losses import masked_reconstruction_loss


def test_topk_by_hand():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3]])
    labels = np.array([0, 1, 0])
    # row0 top1 ok; row1 true=1 ranked 2nd; row2 true=0 ranked 3rd.
    r = topk_accuracy(scores, labels, (1, 2))
    assert r["top1"] == pytest.approx(1 / 3)
    assert r["top2"] == pytest.approx(2 / 3)


def test_average_precision_by_hand():
    # relevant at ranks 1, 3: AP = (1/1 + 2/3) / 2
    assert average_precision(np.array([1, 0, 1, 0])) == pytest.approx((1 + 2 / 3) / 2)
    assert np.isnan(average_precision(np.array([0, 0])))


def test_retrieval_by_hand():
    g = np.array([[1, 0], [0, 1], [0.7, 0.7]], dtype=float)
    gl = np.array([0, 1, 1])
    q = np.array([[0.9, 0.1], [1.0, 0.05], [0.0, 1.0]])
    ql = np.array([0, 1, 2])  # label 2 has no gallery entry: skipped
    # q0 ranking: g0 (0.99), g2 (0.78), g1 → rel [1,0,0] → rank1 1, AP 1
    # q1 ranking: g0, g2, g1 → rel [0,1,1] → rank1 0, AP (1/2 + 2/3)/2
    r = retrieval_metrics(g, gl, q, ql)
    assert r["queries"] == 2
    assert r["rank1"] == pytest.approx(0.5)
    assert r["map"] == pytest.approx((1 + (0.5 + 2 / 3) / 2) / 2)


def test_gallery_query_split():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 2])
    g, q = gallery_query_split(labels, 0.5)
    assert g.tolist() == [0, 1, 4, 5, 7]
    assert q.tolist() == [2, 3, 6]


def test_clustering_by_hand():
    emb = np.array([[1.0, 0.0], [0.98, 0.2], [0.0, 1.0], [0.2, 0.98]])
    labels = np.array([0, 0, 1, 1])
    m = clustering_metrics(emb, labels)
    assert m["kmeans_nmi"] == pytest.approx(1.0)
    assert m["kmeans_ari"] == pytest.approx(1.0)
    # Davies–Bouldin by hand: centroids, mean distance to centroid, ratio.
    c0, c1 = emb[:2].mean(0), emb[2:].mean(0)
    s0 = np.linalg.norm(emb[:2] - c0, axis=1).mean()
    s1 = np.linalg.norm(emb[2:] - c1, axis=1).mean()
    assert m["davies_bouldin"] == pytest.approx((s0 + s1) / np.linalg.norm(c0 - c1))
    # Calinski–Harabasz: (B/(k-1)) / (W/(n-k)).
    mu = emb.mean(0)
    b = 2 * np.sum((c0 - mu) ** 2) + 2 * np.sum((c1 - mu) ** 2)
    w = np.sum((emb[:2] - c0) ** 2) + np.sum((emb[2:] - c1) ** 2)
    assert m["calinski_harabasz"] == pytest.approx((b / 1) / (w / 2))

    # Silhouette (cosine distance), point 0 by hand.
    def cd(a, b_):
        return 1 - a @ b_ / np.linalg.norm(a) / np.linalg.norm(b_)

    sil = []
    for i in range(4):
        same = [cd(emb[i], emb[j]) for j in range(4) if labels[j] == labels[i] and j != i]
        other = [cd(emb[i], emb[j]) for j in range(4) if labels[j] != labels[i]]
        a, b_ = np.mean(same), np.mean(other)
        sil.append((b_ - a) / max(a, b_))
    assert m["silhouette"] == pytest.approx(np.mean(sil))


def test_focus_scores_by_hand():
    regions = np.zeros((1, 4, 4), np.uint8)
    regions[0, 1:3, 1:3] = 128
    regions[0, 1, 1] = 255
    cam = np.zeros((1, 4, 4))
    cam[0, 1, 1] = 1.0  # striped
    cam[0, 2, 2] = 1.0  # body
    cam[0, 0, 0] = 2.0  # background
    f = focus_scores(cam, regions)
    assert f["focus_body"] == pytest.approx(0.5)
    assert f["focus_striped"] == pytest.approx(0.25)
    assert f["area_body"] == pytest.approx(4 / 16)
    assert f["area_striped"] == pytest.approx(1 / 16)


def test_masked_reconstruction_loss_only_counts_hidden_pixels():
    pred = torch.zeros(1, 3, 2, 2)
    target = torch.zeros(1, 3, 2, 2)
    target[0, :, 0, 0] = 2.0  # hidden: error 4 per channel
    target[0, :, 1, 1] = 10.0  # visible: ignored
    mask = torch.tensor([[[True, False], [False, False]]])
    assert float(masked_reconstruction_loss(pred, target, mask)) == pytest.approx(4.0)
    assert float(masked_reconstruction_loss(pred, target, mask & False)) == 0.0


def test_otsu_body_mask():
    img = np.full((20, 60, 3), 200, np.uint8)  # light background
    img[5:15, 10:50] = 40  # dark fish
    assert 40 <= otsu_threshold(img[..., 0]) < 200  # any level splitting 40 | 200
    m = otsu_body_mask(img)
    assert (m[5:15, 10:50] == 255).all()
    assert m.sum() == 255 * 10 * 40


def test_augment_keeps_left_right_order_and_region_alignment():
    # A crop whose left half is dark and right half bright must never come back mirrored.
    img = np.zeros((16, 32, 48, 3), np.uint8)
    img[:, :, 24:] = 255
    reg = np.zeros((16, 32, 48), np.uint8)
    reg[:, :, 24:] = 255
    gen = torch.Generator().manual_seed(0)
    x, r = augment(torch.from_numpy(img), torch.from_numpy(reg), AugmentConfig(), gen)
    assert x.shape == (16, 3, 32, 48)
    left = x[:, :, :, :12].mean(dim=(1, 2, 3))
    right = x[:, :, :, -12:].mean(dim=(1, 2, 3))
    assert (right > left + 0.3).all()
    # The region map moves with the image: bright pixels mostly where the region is 255.
    bright = x.mean(1) > 0.5
    agree = ((r == 255) == bright).float().mean()
    assert agree > 0.9

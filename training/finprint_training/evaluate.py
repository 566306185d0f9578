"""Evaluation: closed-set identification, open-set retrieval and clustering of unseen individuals.

* Closed set (``val``: other images of training identities): top-1/top-5 of the identification head.
* Open set (``test``: identities never trained on): per identity key, the first ``gallery_share`` of its
  images (file order) form the gallery and the rest the queries; rank-1 = nearest gallery image (cosine)
  has the query's key; mAP = mean over queries of the average precision of the full gallery ranking.
* Clustering of all test embeddings by identity key: silhouette (cosine), Davies–Bouldin,
  Calinski–Harabasz, and NMI/ARI of k-means with k = number of identity keys.
* Pattern focus (see ``gradcam``): share of GradCAM energy inside the body and the striped region.

The metric functions are pure numpy/scikit-learn so that they can be checked against hand-computed
values. This module must never train or change a model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
    silhouette_score,
)

from .data import ImageSet, load_split, load_training_sets, to_tensor
from .gradcam import focus_scores, gradcam_for_set, save_montage
from .train import closed_set_scores, load_checkpoint

log = logging.getLogger(__name__)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Share of rows whose true label is among the k highest scores (``top{k}``)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    out = {}
    for k in ks:
        kk = min(k, scores.shape[1])
        out[f"top{k}"] = float((order[:, :kk] == labels[:, None]).any(axis=1).mean())
    return out


def average_precision(relevant_in_rank_order: np.ndarray) -> float:
    """AP of one ranking: mean over the relevant positions r of precision@r."""
    rel = np.asarray(relevant_in_rank_order, dtype=bool)
    if not rel.any():
        return float("nan")
    hits = np.cumsum(rel)
    ranks = np.flatnonzero(rel) + 1
    return float((hits[rel] / ranks).mean())


def retrieval_metrics(
    gallery: np.ndarray, gallery_labels: np.ndarray, query: np.ndarray, query_labels: np.ndarray
) -> dict[str, float]:
    """Open-set rank-1 and mAP by cosine similarity; queries without a gallery match are skipped."""
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True).clip(1e-12)
    q = query / np.linalg.norm(query, axis=1, keepdims=True).clip(1e-12)
    sim = q @ g.T
    order = np.argsort(-sim, axis=1, kind="stable")
    rank1, aps = [], []
    for i in range(len(q)):
        rel = gallery_labels[order[i]] == query_labels[i]
        if not rel.any():
            continue
        rank1.append(bool(rel[0]))
        aps.append(average_precision(rel))
    if not rank1:
        return {"rank1": float("nan"), "map": float("nan"), "queries": 0}
    return {"rank1": float(np.mean(rank1)), "map": float(np.mean(aps)), "queries": len(rank1)}


def gallery_query_split(labels: np.ndarray, gallery_share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Indices (gallery, query): per label, the first ceil(share·n) occurrences (≥1, ≤ n−1) are gallery."""
    gal, qry = [], []
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        if len(idx) < 2:
            gal.extend(idx.tolist())
            continue
        n_g = int(min(len(idx) - 1, max(1, np.ceil(gallery_share * len(idx)))))
        gal.extend(idx[:n_g].tolist())
        qry.extend(idx[n_g:].tolist())
    return np.asarray(sorted(gal), dtype=np.int64), np.asarray(sorted(qry), dtype=np.int64)


def clustering_metrics(emb: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Silhouette (cosine), Davies–Bouldin, Calinski–Harabasz by true label; NMI/ARI of k-means (k = #labels)."""
    k = len(np.unique(labels))
    if k < 2 or k >= len(labels):
        nan = float("nan")
        return {k_: nan for k_ in ("silhouette", "davies_bouldin", "calinski_harabasz", "kmeans_nmi", "kmeans_ari")}
    pred = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(emb)
    return {
        "silhouette": float(silhouette_score(emb, labels, metric="cosine")),
        "davies_bouldin": float(davies_bouldin_score(emb, labels)),
        "calinski_harabasz": float(calinski_harabasz_score(emb, labels)),
        "kmeans_nmi": float(normalized_mutual_info_score(labels, pred)),
        "kmeans_ari": float(adjusted_rand_score(labels, pred)),
    }


def embed_images(model: torch.nn.Module, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """L2-normalised embeddings of uint8 (N, H, W, 3) crops (model in eval mode)."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            out.append(model(to_tensor(images[i : i + batch])).numpy())
    return np.concatenate(out).astype(np.float32)


def evaluate_run(
    checkpoint: Path,
    data: Path | None = None,
    out: Path | None = None,
    gallery_share: float = 0.5,
    gradcam_images: int = 256,
    threads: int = 2,
) -> dict:
    """All metrics of a trained run; writes ``metrics.json``, ``embeddings.npz`` and ``gradcam.png``."""
    torch.set_num_threads(max(1, threads))
    model, head, ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["config"]
    root = Path(data) if data is not None else Path(cfg["data"])
    out_dir = (
        Path(out) if out is not None else (Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    size = (int(cfg["img_size"][0]), int(cfg["img_size"][1]))
    metrics: dict = {"backbone": cfg["backbone"], "lambda": cfg["lam"], "mask_recipe": cfg["mask_recipe"]}
    try:
        _train, val, mode = load_training_sets(root, size, cfg.get("max_per_key"), float(cfg.get("holdout", 0.2)))
        if val is None or _train.keys != ckpt["keys"]:
            raise ValueError("the data set's training identities differ from the checkpoint's")
        metrics["closed_set"] = mode
        cs = topk_accuracy(closed_set_scores(model, head, val.images), val.labels)
        metrics["closed_set_top1"] = cs["top1"]
        metrics["closed_set_top5"] = cs["top5"]
    except Exception as e:
        log.warning("closed-set metrics skipped: %s", e)
    test: ImageSet = load_split(root, "test", size)
    emb = embed_images(model, test.images)
    gi, qi = gallery_query_split(test.labels, gallery_share)
    rm = retrieval_metrics(emb[gi], test.labels[gi], emb[qi], test.labels[qi])
    metrics["open_set_rank1"] = rm["rank1"]
    metrics["open_set_map"] = rm["map"]
    metrics["open_set_queries"] = rm["queries"]
    metrics["open_set_identities"] = len(test.keys)
    metrics.update(clustering_metrics(emb, test.labels, seed=int(cfg["seed"])))
    # Pattern focus on unseen individuals (a deterministic subset, spread over identities).
    sel = np.arange(len(test))
    if len(sel) > gradcam_images:
        sel = np.linspace(0, len(test) - 1, gradcam_images).round().astype(np.int64)
    sub = test.subset(sel)
    cams = gradcam_for_set(model, sub.images, sub.labels, emb[sel])
    metrics.update(focus_scores(cams, sub.regions))
    save_montage(sub.images, cams, sub.regions, out_dir / "gradcam.png", title=f"{cfg['backbone']} λ={cfg['lam']}")
    np.savez_compressed(out_dir / "embeddings.npz", emb=emb, labels=test.labels, keys=np.asarray(test.keys))
    np.savez_compressed(out_dir / "gradcam.npz", cams=cams.astype(np.float16), images=sub.images, regions=sub.regions)
    metrics["train_seconds"] = ckpt.get("train_seconds")
    metrics["epochs"] = cfg["epochs"]
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics

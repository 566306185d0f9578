"""Export: ONNX encoder (dynamic batch, NCHW float ``input`` → L2-normalised ``embedding``), its JSON model
card, a parity check against ONNX Runtime and a self-test fixture for the Rust embedder.

Card keys are a contract with the daemon's embedder (``format = finprint-encoder/1``); preprocessing is
``x = (rgb / scale − mean) / std`` at the card's (height, width), NCHW. The self-test file holds a few
uint8 RGB crops already at the card size (row-major H×W×3) and the embeddings ONNX Runtime computes for
them, so the Rust side can check that it preprocesses and runs the model identically. This module must
never train.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from PIL import Image

from .data import MEAN, STD, load_split, to_tensor
from .train import load_checkpoint

log = logging.getLogger(__name__)

OPSET = 17
CARD_FORMAT = "finprint-encoder/1"
CROP = {"aspect": 3.0, "length_margin": 1.3, "orientation": "body axis horizontal, smaller rotation, never mirrored"}


class ExportError(Exception):
    """The exported model disagrees with PyTorch or could not be written."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_onnx(model: torch.nn.Module, img_size: tuple[int, int], path: Path) -> None:
    """Writes the encoder as ONNX (opset 17, dynamic batch axis, input ``input``, output ``embedding``)."""
    model.eval()
    dummy = torch.zeros(2, 3, *img_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["input"],
            output_names=["embedding"],
            dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def ort_session(path: Path) -> ort.InferenceSession:
    """CPU ONNX Runtime session."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def parity(model: torch.nn.Module, path: Path, x: torch.Tensor) -> float:
    """Max |ONNX Runtime − PyTorch| over the embeddings of ``x`` (normalised NCHW)."""
    model.eval()
    with torch.no_grad():
        ref = model(x).numpy()
    got = ort_session(path).run(["embedding"], {"input": x.numpy().astype(np.float32)})[0]
    return float(np.abs(ref - got).max())


def export_run(
    checkpoint: Path,
    out_dir: Path,
    name: str = "finprint-default",
    data: Path | None = None,
    metrics: dict | None = None,
    selftest_crops: int = 4,
    tolerance: float = 1e-4,
) -> dict:
    """Exports ``<out_dir>/<name>.onnx``, ``<name>.json`` (card) and ``<name>.selftest.json``; returns the card.

    Raises ``ExportError`` when ONNX Runtime and PyTorch disagree by more than ``tolerance``.
    """
    model, _head, ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["config"]
    h, w = int(cfg["img_size"][0]), int(cfg["img_size"][1])
    out_dir = Path(out_dir)
    onnx_path = out_dir / f"{name}.onnx"
    export_onnx(model, (h, w), onnx_path)

    # Self-test crops: real open-set crops when the data is there, seeded noise otherwise.
    crops: np.ndarray
    native: list[np.ndarray] = []
    root = Path(data) if data is not None else Path(cfg["data"])
    try:
        test = load_split(root, "test", (h, w))
        idx = np.linspace(0, len(test) - 1, selftest_crops).round().astype(np.int64)
        crops = test.images[idx]
        native = [np.asarray(Image.open(test.paths[i]).convert("RGB"), dtype=np.uint8) for i in idx]
    except Exception as e:  # any failure: fall back to seeded random crops, still a valid fixture
        log.warning("self-test uses random crops (%s)", e)
        crops = np.random.default_rng(0).integers(0, 256, (selftest_crops, h, w, 3), dtype=np.uint8)
    x = to_tensor(crops)
    rng = torch.Generator().manual_seed(0)
    x_all = torch.cat([x, torch.randn((3, 3, h, w), generator=rng)])
    diff = parity(model, onnx_path, x_all)
    log.info("ONNX Runtime vs PyTorch max abs diff %.2e (tolerance %.0e)", diff, tolerance)
    if not diff <= tolerance:
        raise ExportError(f"{onnx_path}: ONNX Runtime and PyTorch embeddings differ by {diff:.2e} > {tolerance:.0e}")
    expected = ort_session(onnx_path).run(["embedding"], {"input": x.numpy()})[0]

    m = dict(metrics or {})
    card = {
        "format": CARD_FORMAT,
        "name": name,
        "backbone": model.timm_name,
        "onnx": onnx_path.name,
        "onnx_sha256": sha256_file(onnx_path),
        "input": {
            "name": "input",
            "layout": "NCHW",
            "channels": 3,
            "color": "RGB",
            "height": h,
            "width": w,
            "scale": 255.0,
            "mean": list(MEAN),
            "std": list(STD),
        },
        "output": {"name": "embedding", "dim": int(cfg["embed_dim"]), "l2_normalized": True},
        "crop": CROP,
        "training": {
            "identity_key": "individual/flank (L or R): each flank is its own identity",
            "mask_recipe": cfg["mask_recipe"],
            "mask_ratio": cfg["mask_ratio"],
            "mask_prob": cfg["mask_prob"],
            "lambda": cfg["lam"],
            "head": cfg["head"],
            "data": cfg["data"],
            "dataset": ckpt.get("dataset", {}),
            "seed": cfg["seed"],
            "epochs": cfg["epochs"],
            "command": cfg.get("command", ""),
            "parity_max_abs_diff": diff,
            "opset": OPSET,
        },
        "metrics": {k: v for k, v in m.items() if isinstance(v, int | float) and not isinstance(v, bool)},
    }
    (out_dir / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    selftest = {
        "format": "finprint-encoder-selftest/1",
        "model": f"{name}.json",
        "tolerance": tolerance,
        "height": h,
        "width": w,
        "note": "rgb_hwc_u8: row-major height×width×3 uint8 crops already at the card size; "
        "preprocess per the card and compare with expected_embedding (from ONNX Runtime 1.31 CPU).",
        "crops": [
            {"rgb_hwc_u8": crops[i].reshape(-1).tolist(), "expected_embedding": [float(v) for v in expected[i]]}
            for i in range(len(crops))
        ],
    }
    if native:
        # Same crops at their native size, in the identity tests' ``cases`` format: the daemon resizes
        # with half-pixel-centre bilinear without antialiasing (= F.interpolate, align_corners=False).
        sess = ort_session(onnx_path)
        cases = []
        for img in native:
            t = torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255.0
            t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=False)
            mean = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
            std = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
            x = ((t - mean) / std).float().numpy()
            e = sess.run(["embedding"], {"input": x})[0][0]
            cases.append(
                {
                    "width": int(img.shape[1]),
                    "height": int(img.shape[0]),
                    "rgb_hex": img.reshape(-1).tobytes().hex(),
                    "tensor_stride": 17,
                    "tensor_sample": [round(float(v), 6) for v in x[0].reshape(-1)[::17]],
                    "embedding": [float(v) for v in e],
                }
            )
        selftest["cases"] = cases
    (out_dir / f"{name}.selftest.json").write_text(json.dumps(selftest) + "\n")
    return card

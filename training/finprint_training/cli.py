"""Command line: ``finprint-train {fit,evaluate,export,gradcam,report,compare}``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .losses import HEADS
from .masks import RECIPES
from .models import BACKBONES


def _size(s: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in s.lower().split("x"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 32x96, not {s!r}") from e
    return h, w


def _add_fit_args(p: argparse.ArgumentParser, with_backbone: bool = True) -> None:
    p.add_argument("--data", required=True, type=Path, help="dataset root (DIR/{train,val,test}/<individual>/...)")
    if with_backbone:
        p.add_argument("--backbone", default="mobilenetv3_small_100", choices=sorted(BACKBONES))
        p.add_argument("--lam", type=float, default=1.0, help="reconstruction weight λ (0 = no inpainting)")
    p.add_argument("--img-size", type=_size, default=(32, 96), help="network input HxW (default 32x96)")
    p.add_argument("--embed-dim", type=int, default=128)
    p.add_argument("--head", choices=HEADS, default="arcface")
    p.add_argument("--margin", type=float, default=0.3, help="ArcFace margin (radians)")
    p.add_argument("--scale", type=float, default=30.0, help="ArcFace scale")
    p.add_argument("--mask-recipe", choices=RECIPES, default="patches")
    p.add_argument("--mask-ratio", type=float, default=0.3, help="share of the recipe's target area hidden")
    p.add_argument("--mask-prob", type=float, default=0.5, help="probability that a crop is masked")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--pretrained", action="store_true", help="try timm pretrained weights (random init if unavailable)")
    p.add_argument("--max-per-key", type=int, default=None, help="at most N training crops per identity")
    p.add_argument("--init", type=Path, default=None, help="start from this run's weights (fine-tuning)")
    p.add_argument(
        "--holdout",
        type=float,
        default=0.2,
        help="closed set = this share of each training identity's images when val has other individuals",
    )


def _config(a: argparse.Namespace, out: Path, backbone: str, lam: float, command: str):  # noqa: ANN202
    from .train import TrainConfig

    return TrainConfig(
        data=str(a.data),
        out=str(out),
        backbone=backbone,
        img_size=a.img_size,
        embed_dim=a.embed_dim,
        head=a.head,
        margin=a.margin,
        scale=a.scale,
        mask_recipe=a.mask_recipe,
        mask_ratio=a.mask_ratio,
        mask_prob=a.mask_prob,
        lam=lam,
        epochs=a.epochs,
        batch_size=a.batch_size,
        lr=a.lr,
        weight_decay=a.weight_decay,
        seed=a.seed,
        threads=a.threads,
        pretrained=a.pretrained,
        max_per_key=a.max_per_key,
        holdout=a.holdout,
        init=str(a.init) if a.init else None,
        command=command,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one sub-command per stage)."""
    ap = argparse.ArgumentParser(prog="finprint-train", description=__doc__)
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("fit", help="train one encoder (identification + λ·inpainting)")
    _add_fit_args(p)
    p.add_argument("--out", required=True, type=Path, help="run folder (checkpoint.pt, history.json)")
    p.add_argument("--no-evaluate", action="store_true", help="skip the evaluation after training")

    p = sub.add_parser("evaluate", help="closed/open-set, clustering and pattern-focus metrics of a run")
    p.add_argument("run", type=Path, help="run folder or checkpoint.pt")
    p.add_argument("--data", type=Path, default=None, help="dataset root (default: the one trained on)")
    p.add_argument("--gallery-share", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=2)

    p = sub.add_parser("export", help="ONNX + model card + self-test fixture, with an ORT parity check")
    p.add_argument("run", type=Path)
    p.add_argument("--out", type=Path, default=Path("models"))
    p.add_argument("--name", default="finprint-default")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--tolerance", type=float, default=1e-4)

    p = sub.add_parser("gradcam", help="GradCAM montage and pattern-focus scores on open-set crops")
    p.add_argument("run", type=Path)
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None, help="PNG path (default <run>/gradcam.png)")
    p.add_argument("--images", type=int, default=128)

    p = sub.add_parser("report", help="report.md + PNGs comparing evaluated runs")
    p.add_argument("runs", type=Path, help="folder holding run folders")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--title", default="finprint encoder comparison")
    p.add_argument("--notes", type=Path, default=None, help="markdown file inserted below the title")
    p.add_argument("--default-run", type=Path, default=None, help="the shipped model's run (own section)")

    p = sub.add_parser("compare", help="train + evaluate every backbone with and without inpainting")
    _add_fit_args(p, with_backbone=False)
    p.add_argument("--out", required=True, type=Path, help="folder for the run folders")
    p.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=sorted(BACKBONES))
    p.add_argument("--lams", nargs="+", type=float, default=[1.0, 0.0])
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``finprint-train``."""
    ap = build_parser()
    a = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if a.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    command = "finprint-train " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        return _run(a, command)
    except (ValueError, FileNotFoundError, OSError) as e:
        logging.getLogger("finprint_training").error("%s", e)
        return 2


def _run(a: argparse.Namespace, command: str) -> int:
    from .evaluate import evaluate_run
    from .train import fit

    if a.cmd == "fit":
        out = fit(_config(a, a.out, a.backbone, a.lam, command))
        if not a.no_evaluate:
            print(json.dumps(evaluate_run(out, threads=a.threads), indent=2))
    elif a.cmd == "evaluate":
        print(json.dumps(evaluate_run(a.run, a.data, gallery_share=a.gallery_share, threads=a.threads), indent=2))
    elif a.cmd == "export":
        from .export import export_run

        run = a.run if a.run.is_dir() else a.run.parent
        metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}
        card = export_run(a.run, a.out, a.name, a.data, metrics, tolerance=a.tolerance)
        print(
            json.dumps(
                {k: card[k] for k in ("name", "onnx", "onnx_sha256")}
                | {"parity": card["training"]["parity_max_abs_diff"]}
            )
        )
    elif a.cmd == "gradcam":
        _gradcam(a)
    elif a.cmd == "report":
        from .report import write_report

        notes = a.notes.read_text() if a.notes else ""
        print(write_report(a.runs, a.out, a.title, notes, a.default_run))
    elif a.cmd == "compare":
        for bb in a.backbones:
            for lam in a.lams:
                out = a.out / f"{bb}__lam{lam:g}"
                if (out / "metrics.json").exists():
                    logging.getLogger("finprint_training").info("%s already done, skipping", out)
                    continue
                single = command.replace(" compare ", " fit ", 1).replace(f" --out {a.out}", "")
                single += f" --backbone {bb} --lam {lam:g} --out {out}"
                fit(_config(a, out, bb, lam, single))
                evaluate_run(out, threads=a.threads)
    return 0


def _gradcam(a: argparse.Namespace) -> None:
    import numpy as np

    from .data import load_split
    from .evaluate import embed_images
    from .gradcam import focus_scores, gradcam_for_set, save_montage
    from .train import load_checkpoint

    model, _head, ckpt = load_checkpoint(a.run)
    cfg = ckpt["config"]
    size = (int(cfg["img_size"][0]), int(cfg["img_size"][1]))
    test = load_split(Path(a.data or cfg["data"]), "test", size)
    sel = np.linspace(0, len(test) - 1, min(a.images, len(test))).round().astype(np.int64)
    sub = test.subset(sel)
    emb_all = embed_images(model, test.images)
    cams = gradcam_for_set(model, sub.images, sub.labels, emb_all[sel])
    run = a.run if a.run.is_dir() else a.run.parent
    out = a.out or run / "gradcam.png"
    save_montage(sub.images, cams, sub.regions, out, title=f"{cfg['backbone']} λ={cfg['lam']}")
    print(json.dumps(focus_scores(cams, sub.regions) | {"png": str(out)}, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())

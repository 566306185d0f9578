"""Training loop: identification + λ · inpainting of masked skin-pattern pixels.

Every step: augment a batch (pattern-preserving, no flips), hide pixels with the configured mask recipe
(hidden pixels are set to 0 in normalised space, i.e. the dataset mean colour), run the encoder on the
masked image, classify the embedding (ArcFace/softmax over identity keys ``individual/flank``) and, when
λ > 0, let the decoder reconstruct the original pixels under the mask. The same masking is applied when
λ = 0, so the ablation differs only in the reconstruction objective.

Writes ``<out>/checkpoint.pt``, ``config.json`` and ``history.json``. Must never read the open-set
(``test``) split: that is for evaluation only.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import AugmentConfig, augment, load_training_sets, normalize, read_dataset_meta, to_tensor
from .losses import make_head, masked_reconstruction_loss
from .masks import RECIPES, batch_masks
from .models import BACKBONES, Encoder

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json`` and in the model card)."""

    #: Dataset root (``DIR/{train,val,test}``).
    data: str
    #: Output folder of the run.
    out: str
    #: Backbone key of ``models.BACKBONES``.
    backbone: str = "mobilenetv3_small_100"
    #: Network input (height, width); crops are resized to it.
    img_size: tuple[int, int] = (32, 96)
    #: Embedding dimension.
    embed_dim: int = 128
    #: Identification head: ``arcface`` or ``softmax``.
    head: str = "arcface"
    #: ArcFace margin and scale.
    margin: float = 0.3
    scale: float = 30.0
    #: Mask recipe (``masks.RECIPES``) and the share of its target area to hide.
    mask_recipe: str = "patches"
    mask_ratio: float = 0.3
    #: Probability that a training crop is masked at all.
    mask_prob: float = 0.5
    #: Weight λ of the reconstruction loss (0 = no inpainting).
    lam: float = 1.0
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    #: Warm-up length in epochs (linear), then cosine decay to 0.
    warmup_epochs: float = 1.0
    seed: int = 0
    #: torch CPU threads.
    threads: int = 2
    #: Try timm pretrained weights (falls back to random init, logged).
    pretrained: bool = False
    #: Keep at most N training images per identity key (None = all).
    max_per_key: int | None = None
    #: Share of each identity's images held out as the closed set when ``val`` has other individuals.
    holdout: float = 0.2
    #: Evaluate closed-set top-1 on ``val`` after every epoch.
    eval_every_epoch: bool = True
    #: Start from this run's weights (folder or checkpoint.pt); the head too when its identities match.
    init: str | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    #: The command line that started the run (filled in by the CLI).
    command: str = ""

    def validate(self) -> None:
        """Raises ``ValueError`` naming the field when a value is out of range."""
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone: unknown {self.backbone!r}; allowed: {', '.join(BACKBONES)}")
        if self.mask_recipe not in RECIPES:
            raise ValueError(f"mask_recipe: unknown {self.mask_recipe!r}; allowed: {', '.join(RECIPES)}")
        if not 0.0 <= self.mask_ratio <= 1.0:
            raise ValueError("mask_ratio: must be in [0, 1]")
        if not 0.0 <= self.mask_prob <= 1.0:
            raise ValueError("mask_prob: must be in [0, 1]")
        if self.lam < 0:
            raise ValueError("lam: must be >= 0 (0 disables inpainting)")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("epochs must be >= 1 and batch_size >= 2")
        h, w = self.img_size
        if h < 16 or w < 16:
            raise ValueError("img_size: height and width must be >= 16")


def seed_everything(seed: int) -> None:
    """Seeds Python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _gray(x01: torch.Tensor) -> np.ndarray:
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x01 * w).sum(1).mul(255).numpy()


def closed_set_scores(model: Encoder, head: torch.nn.Module, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Class scores (cosine to the ArcFace centres, or softmax logits) of uint8 crops; eval mode."""
    model.eval()
    head.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            emb = model(to_tensor(images[i : i + batch]))
            out.append(head(emb).numpy())
    return np.concatenate(out)


def fit(cfg: TrainConfig) -> Path:
    """Trains one run; returns its output folder."""
    cfg.validate()
    torch.set_num_threads(max(1, cfg.threads))
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(cfg.data)
    size = (int(cfg.img_size[0]), int(cfg.img_size[1]))
    t0 = time.time()
    train, val, val_mode = load_training_sets(root, size, cfg.max_per_key, cfg.holdout)
    log.info(
        "loaded %d training crops of %d identities, %d closed-set crops (%s) in %.1fs",
        len(train),
        len(train.keys),
        0 if val is None else len(val),
        val_mode,
        time.time() - t0,
    )
    model = Encoder(cfg.backbone, size, cfg.embed_dim, pretrained=cfg.pretrained, decoder=cfg.lam > 0)
    head = make_head(cfg.head, cfg.embed_dim, len(train.keys), margin=cfg.margin, scale=cfg.scale)
    if cfg.init:
        src = torch.load(
            Path(cfg.init) / "checkpoint.pt" if Path(cfg.init).is_dir() else Path(cfg.init),
            map_location="cpu",
            weights_only=False,
        )
        missing, _unexpected = model.load_state_dict(src["model"], strict=False)
        if src["keys"] == train.keys:
            head.load_state_dict(src["head"])
        log.info(
            "initialised from %s (missing: %d tensors, head %s)",
            cfg.init,
            len(missing),
            "kept" if src["keys"] == train.keys else "new",
        )
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, len(train) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warm = max(1, int(cfg.warmup_epochs * steps_per_epoch))

    def lr_at(step: int) -> float:
        if step < warm:
            return cfg.lr * (step + 1) / warm
        p = (step - warm) / max(1, total - warm)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))

    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    imgs_t = torch.from_numpy(train.images)
    regs_t = torch.from_numpy(train.regions)
    labels_t = torch.from_numpy(train.labels)
    history: list[dict] = []
    step = 0
    for epoch in range(cfg.epochs):
        model.train()
        head.train()
        te = time.time()
        perm = torch.randperm(len(train), generator=gen)
        sums = {"loss": 0.0, "id": 0.0, "rec": 0.0, "acc": 0.0}
        n_batches = 0
        for b in range(steps_per_epoch):
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x01, reg = augment(imgs_t[idx], regs_t[idx], cfg.augment, gen)
            y = labels_t[idx]
            mask_np = batch_masks(cfg.mask_recipe, reg.numpy(), cfg.mask_ratio, rng, _gray(x01), cfg.mask_prob)
            mask = torch.from_numpy(mask_np)
            target = normalize(x01)
            xin = target.masked_fill(mask.unsqueeze(1), 0.0)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            fmap = model.feature_map(xin)
            emb = model.embed_from_map(fmap)
            logits = head(emb, y)
            loss_id = F.cross_entropy(logits, y)
            loss = loss_id
            loss_rec = torch.zeros(())
            if cfg.lam > 0:
                loss_rec = masked_reconstruction_loss(model.reconstruct(fmap), target, mask)
                loss = loss_id + cfg.lam * loss_rec
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            step += 1
            n_batches += 1
            sums["loss"] += float(loss.detach())
            sums["id"] += float(loss_id.detach())
            sums["rec"] += float(loss_rec.detach())
            with torch.no_grad():
                sums["acc"] += float((head(emb.detach()).argmax(1) == y).float().mean())
        rec: dict = {k: v / max(1, n_batches) for k, v in sums.items()}
        if cfg.lam == 0:
            rec["rec"] = None
        rec["epoch"] = epoch + 1
        rec["seconds"] = time.time() - te
        rec["lr"] = lr_at(step - 1)
        if val is not None and (cfg.eval_every_epoch or epoch + 1 == cfg.epochs):
            scores = closed_set_scores(model, head, val.images)
            rec["val_top1"] = float((scores.argmax(1) == val.labels).mean())
        history.append(rec)
        log.info(
            "%s epoch %d/%d loss %.3f id %.3f rec %s acc %.3f val_top1 %s (%.0fs)",
            cfg.backbone,
            epoch + 1,
            cfg.epochs,
            rec["loss"],
            rec["id"],
            "-" if rec["rec"] is None else f"{rec['rec']:.4f}",
            rec["acc"],
            f"{rec['val_top1']:.3f}" if "val_top1" in rec else "-",
            rec["seconds"],
        )
    cfg_dict = asdict(cfg)
    ckpt = {
        "config": cfg_dict,
        "keys": train.keys,
        "model": model.state_dict(),
        "head": head.state_dict(),
        "history": history,
        "dataset": read_dataset_meta(root),
        "closed_set": val_mode,
        "train_seconds": time.time() - t0,
    }
    torch.save(ckpt, out / "checkpoint.pt")
    (out / "config.json").write_text(json.dumps(cfg_dict, indent=2))
    (out / "history.json").write_text(json.dumps(history, indent=2))
    return out


def load_checkpoint(path: Path) -> tuple[Encoder, torch.nn.Module, dict]:
    """Rebuilds (encoder, head, checkpoint dict) from ``checkpoint.pt`` (a file or its run folder)."""
    p = Path(path)
    if p.is_dir():
        p = p / "checkpoint.pt"
    ckpt = torch.load(p, map_location="cpu", weights_only=False)
    c = ckpt["config"]
    size = (int(c["img_size"][0]), int(c["img_size"][1]))
    model = Encoder(c["backbone"], size, int(c["embed_dim"]), pretrained=False, decoder=float(c["lam"]) > 0)
    model.load_state_dict(ckpt["model"])
    head = make_head(c["head"], int(c["embed_dim"]), len(ckpt["keys"]), margin=c["margin"], scale=c["scale"])
    head.load_state_dict(ckpt["head"])
    model.eval()
    head.eval()
    return model, head, ckpt


def command_line() -> str:
    """This process's command line, shell-quoted."""
    return " ".join(shlex.quote(a) for a in sys.argv)

#!/usr/bin/env python3
"""Training crops from the daemon's own encoder crops of simulated tanks, labelled by the truth.

`finprint replay --crops-out DIR` writes every crop it sends to the encoder as
`<camera>_<t>_<track>.png`. For a tank rendered by `finprint synth` (truth.csv), this script
finds each crop's trajectory row (same `t` and `track`), matches the rows of that frame to the
true fish (one-to-one within `--gate` px), and copies the crop to
`OUT/<split>/<tank>-<individual>/<flank>_<nnnn>.png` — the folder-per-individual layout that
`finprint-train fit` reads. Crops are skipped when the fish is not seen broadside (no flank),
less than `--min-visible` of it shows, or another fish's box overlaps its box (the crop may
show two fish).

Tanks listed with `--test` go to the `test` split (individuals never trained on: the open set),
the others to `train`. A developer tool for training an encoder on the daemon's crops; not used
by the daemon or the tests.

Usage: .venv/bin/python scripts/daemon_crops.py --out data --tank t1 --tank t2 --test t3
    (each tank folder holds truth.csv, out/cam0/trajectories.csv and crops/)
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment


def frame_truth(truth: pd.DataFrame, pred: pd.DataFrame, gate: float) -> dict[tuple[int, int], pd.Series]:
    """(track, frame) → the true fish's truth row, per frame one-to-one within `gate` px."""
    out: dict[tuple[int, int], pd.Series] = {}
    by_frame = {f: g for f, g in pred.groupby("frame")}
    for f, gt in truth.groupby("frame"):
        gt = gt[gt.visible_fraction > 0]
        pr = by_frame.get(f)
        if pr is None or gt.empty:
            continue
        d = np.hypot(
            gt.x.to_numpy()[:, None] - pr.x.to_numpy()[None, :],
            gt.y.to_numpy()[:, None] - pr.y.to_numpy()[None, :],
        )
        d[d > gate] = 1e6
        rows, cols = linear_sum_assignment(d)
        for i, j in zip(rows, cols, strict=True):
            if d[i, j] < 1e6:
                out[(int(pr.track.to_numpy()[j]), int(f))] = gt.iloc[i]
    return out


def overlapped(truth_frame: pd.DataFrame, me: pd.Series) -> bool:
    """Whether another visible fish's box overlaps `me`'s box."""
    o = truth_frame[(truth_frame.individual != me.individual) & (truth_frame.visible_fraction > 0)]
    hit = (o.x0 < me.x1) & (me.x0 < o.x1) & (o.y0 < me.y1) & (me.y0 < o.y1)
    return bool(hit.any())


def label_tank(tank: Path, out: Path, split: str, gate: float, min_visible: float) -> tuple[int, int]:
    """Copies one tank's usable crops into `out/split`; returns (copied, seen)."""
    truth = pd.read_csv(tank / "truth.csv")
    pred = pd.read_csv(tank / "out" / "cam0" / "trajectories.csv")
    pred["tkey"] = pred.t.map(lambda v: f"{v:.4f}")
    frame_of = {(k, int(tr)): int(f) for k, tr, f in zip(pred.tkey, pred.track, pred.frame, strict=True)}
    matched = frame_truth(truth, pred, gate)
    truth_by_frame = {f: g for f, g in truth.groupby("frame")}
    counts: dict[tuple[str, str], int] = {}
    copied = seen = 0
    for crop in sorted((tank / "crops").glob("*.png")):
        seen += 1
        try:
            _camera, t, track = crop.stem.rsplit("_", 2)
            key = (f"{float(t):.4f}", int(track))
        except ValueError:
            continue
        frame = frame_of.get(key)
        if frame is None or (key[1], frame) not in matched:
            continue
        me = matched[(key[1], frame)]
        if not isinstance(me.flank, str) or me.visible_fraction < min_visible:
            continue
        if overlapped(truth_by_frame[frame], me):
            continue
        ident = f"{tank.name}-{me.individual}"
        n = counts.get((ident, me.flank), 0)
        counts[(ident, me.flank)] = n + 1
        dst = out / split / ident / f"{me.flank}_{n:04d}.png"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(crop, dst)
        copied += 1
    return copied, seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="data set folder (train/ and test/ are written)")
    ap.add_argument("--tank", type=Path, action="append", default=[], help="a training tank folder (repeat)")
    ap.add_argument("--test", type=Path, action="append", default=[], help="an open-set tank folder (repeat)")
    ap.add_argument("--gate", type=float, default=20.0, help="row-to-fish match distance, px (default 20)")
    ap.add_argument("--min-visible", type=float, default=0.9, help="least visible fraction of the fish (default 0.9)")
    args = ap.parse_args()
    if not args.tank:
        ap.error("give at least one --tank")
    for split, tanks in (("train", args.tank), ("test", args.test)):
        for tank in tanks:
            copied, seen = label_tank(tank, args.out, split, args.gate, args.min_visible)
            print(f"{split} {tank}: {copied} of {seen} crops labelled")


if __name__ == "__main__":
    main()

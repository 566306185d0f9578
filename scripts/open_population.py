#!/usr/bin/env python3
"""How many fish an open-population replay reports against how many a simulated tank shows.

Prints, for one `finprint replay` output (no `--population`) scored against `finprint synth`'s
truth.csv, per frame on average: the trajectory rows, the rows no true fish can take (rows are
matched to true fish one-to-one per frame within `--gate` px, as in
`scripts/identity_breakdown.py`: a second track on one fish, a track on nothing), and the live
count (`counts.csv` `visible_fish`) against the fish in view (visible fraction > 0) as mean
absolute error and mean signed error; then the individuals and tracks the rows name.

A diagnostic for developers; not used by the daemon or tests.
Usage: .venv/bin/python scripts/open_population.py --truth tank/truth.csv --out out/cam0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from identity_breakdown import match_frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--truth", type=Path, required=True, help="the simulator's truth.csv")
    ap.add_argument("--out", type=Path, required=True, help="a camera's output folder (trajectories.csv, counts.csv)")
    ap.add_argument("--gate", type=float, default=20.0, help="matching gate, px")
    a = ap.parse_args()
    truth = pd.read_csv(a.truth, dtype={"individual": str})
    pred = pd.read_csv(a.out / "trajectories.csv", dtype={"individual": str, "track": str}).reset_index(drop=True)
    counts = pd.read_csv(a.out / "counts.csv")
    frames = truth["frame"].nunique()
    unmatched = len(pred) - len(match_frames(truth, pred, a.gate).pairs)
    in_view = truth[truth.visible_fraction > 0].groupby("frame").size()
    err = counts.set_index("frame")["visible_fish"] - in_view.reindex(counts["frame"], fill_value=0)
    individuals = pred["individual"].dropna().nunique()
    print(
        f"rows/frame {len(pred) / frames:.3f} unmatched/frame {unmatched / frames:.3f} "
        f"count error {err.abs().mean():.3f} bias {err.mean():+.3f} "
        f"individuals {individuals} tracks {pred['track'].nunique()}"
    )


if __name__ == "__main__":
    main()

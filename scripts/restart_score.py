#!/usr/bin/env python3
"""What a restart halfway through a recording changes: one tank's three runs against its truth.

`scripts/restart_seeds.sh` runs `finprint run` on the first half of a simulated recording, again
on the second half with the same identity state folder (a restart), and once on the whole
recording with a fresh one (no restart). This prints, for one tank:
- kept: rows after the restart whose individual is the one their true fish carried most before
  it (issue 5's figure);
- agree: rows after the restart that the uninterrupted run also labelled (same fish, same frame)
  carrying the individual that run gave them, its individuals translated into the restarted
  daemon's through the fish each carried most in the first half (what the restart itself
  changed, contacts included);
- uninterrupted: the uninterrupted run's second-half rows carrying its own first half's
  individual of their fish (the same figure as "kept", without a restart);
- same: as "agree", but each of the uninterrupted run's individuals translated into the one the
  restarted daemon gave most of the same rows (same fish, same frame) before the restart, and
  an individual first seen after it into the one of the same name (both daemons number new
  individuals in the order they enrol them). "agree" goes through each fish's most frequent
  individual, which misses an individual that was no fish's most frequent one (a swap before
  the restart) and then counts rows both runs labelled alike as different.

Rows are matched to true fish one-to-one per frame within `--gate` px, as in
`scripts/identity_breakdown.py`. A diagnostic for developers; not used by the daemon or tests.
Usage: .venv/bin/python scripts/restart_score.py --truth tank/truth.csv --runs DIR --half 300
(DIR holding out-before/, out-after/ and out-whole/, each with <camera>/trajectories.csv).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import pandas as pd
from identity_breakdown import match_frames

Labels = dict[tuple[int, str], str]


def labels(truth: pd.DataFrame, out: Path, camera: str, gate: float, offset: int) -> Labels:
    """(frame, true fish) → individual of one run's labelled rows; `offset` is added to frame
    numbers that count from the run's first image."""
    pred = pd.read_csv(out / camera / "trajectories.csv", dtype={"individual": str, "track": str})
    pred = pred.reset_index(drop=True)
    pred["individual"] = pred["individual"].fillna("")
    if offset and len(pred) and pred["frame"].min() < offset:
        pred["frame"] = pred["frame"] + offset
    m = match_frames(truth, pred, gate)
    return {(int(pred.frame[r]), fish): str(pred.individual[r]) for r, fish in m.pairs if pred.individual[r]}


def majority(rows: Labels, lo: int, hi: int) -> dict[str, str]:
    """Each true fish's most frequent individual over frames [lo, hi)."""
    counts: dict[str, Counter[str]] = {}
    for (frame, fish), ind in rows.items():
        if lo <= frame < hi:
            counts.setdefault(fish, Counter())[ind] += 1
    return {fish: c.most_common(1)[0][0] for fish, c in counts.items()}


def translate(before: Labels, whole: Labels, half: int) -> dict[str, str]:
    """Each individual of the uninterrupted run → the restarted daemon's individual on most of
    the same rows before the restart."""
    counts: dict[str, Counter[str]] = {}
    for k, ind in whole.items():
        if k[0] < half and k in before:
            counts.setdefault(ind, Counter())[before[k]] += 1
    return {ind: c.most_common(1)[0][0] for ind, c in counts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--truth", type=Path, required=True, help="the simulator's truth.csv")
    ap.add_argument("--runs", type=Path, required=True, help="folder with out-before, out-after, out-whole")
    ap.add_argument("--half", type=int, default=300, help="first frame after the restart")
    ap.add_argument("--camera", default="tank", help="camera name of the runs' outputs")
    ap.add_argument("--gate", type=float, default=10.0, help="matching gate, px")
    a = ap.parse_args()
    truth = pd.read_csv(a.truth, dtype={"individual": str})
    before = labels(truth, a.runs / "out-before", a.camera, a.gate, 0)
    after = labels(truth, a.runs / "out-after", a.camera, a.gate, a.half)
    whole = labels(truth, a.runs / "out-whole", a.camera, a.gate, 0)
    held = majority(before, 0, a.half)
    whole_held = majority(whole, 0, a.half)
    fish_of = {ind: fish for fish, ind in whole_held.items()}
    kept = sum(after[k] == held.get(k[1]) for k in after)
    both = [k for k in after if k in whole]
    agree = sum(after[k] == held.get(fish_of.get(whole[k], "")) for k in both)
    second = [k for k in whole if k[0] >= a.half]
    own = sum(whole[k] == whole_held.get(k[1]) for k in second)
    names = translate(before, whole, a.half)
    same = sum(after[k] == names.get(whole[k], whole[k]) for k in both)
    print(
        f"kept {kept} / {len(after)}; agree {agree} / {len(both)}; uninterrupted {own} / {len(second)}; "
        f"same {same} / {len(both)}"
    )


if __name__ == "__main__":
    main()

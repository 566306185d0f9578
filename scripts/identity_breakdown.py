#!/usr/bin/env python3
"""Where identity is lost: a replay's trajectories against a simulator's ground truth.

Prints, for one `finprint replay` output scored against `finprint synth`'s truth.csv:
- detection recall (all visible fish, fully visible fish) and, for missed fully visible fish,
  whether their box overlapped another fish's box (a crossing segmented as one blob);
- IDF1 of the `individual` column and of the `track` column (global one-to-one mapping, gate in
  px, the same definition as `finprint eval`);
- the share of matched rows whose label is right, apart from rows in contact with another
  track (boxes within `--contact-margin` × box height) and rows with no label;
- ceilings from the replay's own rows: every contact-free fragment (a stretch of a track
  between contacts) given its majority true fish, with the rows of each contact stretch taking
  the fragment before it, or (as the daemon's label delay does) the fragment before for the
  first half and the one after for the second half, or their own true fish; and every matched
  row given its true fish;
- how often a track follows another fish after a contact stretch (the fragments before and
  after it have different majority fish), for stretches whose boxes overlapped and for those
  that only came near.

A diagnostic for developers measuring the identifier; not used by the daemon or the tests.
Usage: .venv/bin/python scripts/identity_breakdown.py --truth tank/truth.csv \
    --pred out/cam0/trajectories.csv [--gate 20]
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment


@dataclass
class Matched:
    """Per-frame one-to-one matches of output rows (index into pred) to true fish."""

    pairs: list[tuple[int, str]]
    gt_rows: int
    full_rows: int
    full_found: int
    missed_full_overlapping: int


def overlaps(a: np.ndarray, b: np.ndarray, grow: float = 0.0) -> bool:
    """Boxes [x0, y0, x1, y1] overlap, `a` grown by `grow` px on every side."""
    return bool(a[0] - grow < b[2] and b[0] < a[2] + grow and a[1] - grow < b[3] and b[1] < a[3] + grow)


def match_frames(truth: pd.DataFrame, pred: pd.DataFrame, gate: float) -> Matched:
    pairs: list[tuple[int, str]] = []
    gt_rows = full_rows = full_found = missed_overlap = 0
    pred_by_frame = {f: g for f, g in pred.groupby("frame")}
    for f, gt in truth.groupby("frame"):
        gt = gt[gt.visible_fraction > 0]
        if gt.empty:
            continue
        gt_rows += len(gt)
        pr = pred_by_frame.get(f)
        found: set[int] = set()
        if pr is not None and not pr.empty:
            d = np.hypot(
                gt.x.to_numpy()[:, None] - pr.x.to_numpy()[None, :], gt.y.to_numpy()[:, None] - pr.y.to_numpy()[None, :]
            )
            cost = np.where(d <= gate, d, 1e6)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if cost[r, c] < 1e6:
                    found.add(r)
                    pairs.append((int(pr.index[c]), str(gt.individual.iloc[r])))
        boxes = gt[["x0", "y0", "x1", "y1"]].to_numpy(dtype=float)
        for r in range(len(gt)):
            if gt.visible_fraction.iloc[r] < 0.99:
                continue
            full_rows += 1
            if r in found:
                full_found += 1
            elif any(overlaps(boxes[r], boxes[o]) for o in range(len(gt)) if o != r):
                missed_overlap += 1
    return Matched(pairs, gt_rows, full_rows, full_found, missed_overlap)


def idf1(labels: dict[int, str], truth_of: dict[int, str], n_gt: int, n_pred: int) -> float:
    """IDF1 with the best one-to-one label → true fish mapping (rows without a label count as
    predictions that are never right)."""
    co: Counter[tuple[str, str]] = Counter()
    for row, t in truth_of.items():
        lab = labels.get(row)
        if lab:
            co[(lab, t)] += 1
    if not co:
        return 0.0
    ls = sorted({k[0] for k in co})
    ts = sorted({k[1] for k in co})
    m = np.zeros((len(ls), len(ts)))
    for (lab, t), n in co.items():
        m[ls.index(lab), ts.index(t)] = n
    r, c = linear_sum_assignment(-m)
    idtp = m[r, c].sum()
    return float(2 * idtp / (n_gt + n_pred))


def contact_rows(pred: pd.DataFrame, margin: float) -> set[int]:
    out: set[int] = set()
    for _, g in pred.groupby("frame"):
        b = g[["x0", "y0", "x1", "y1"]].to_numpy(dtype=float)
        h = b[:, 3] - b[:, 1]
        for i in range(len(g)):
            for j in range(len(g)):
                if i != j and overlaps(b[i], b[j], margin * max(h[i], h[j])):
                    out.add(int(g.index[i]))
                    break
    return out


def fragments(pred: pd.DataFrame, contact: set[int]) -> dict[int, tuple[str, int]]:
    """Row → (track, fragment number): a new fragment each time a track leaves a contact."""
    out: dict[int, tuple[str, int]] = {}
    for track, g in pred.sort_values("frame").groupby("track"):
        k, was_contact = 0, False
        for row in g.index:
            c = int(row) in contact
            if was_contact and not c:
                k += 1
            was_contact = c
            out[int(row)] = (str(track), k)
    return out


def contact_stretches(pred: pd.DataFrame, contact: set[int]) -> list[tuple[list[int], list[int], list[int]]]:
    """Per track, each run of contact rows with the contact-free rows just before and just
    after it: (before, stretch, after), row indices in frame order."""
    out: list[tuple[list[int], list[int], list[int]]] = []
    for _, g in pred.sort_values("frame").groupby("track"):
        runs: list[tuple[bool, list[int]]] = []
        for row in g.index:
            c = int(row) in contact
            if runs and runs[-1][0] == c:
                runs[-1][1].append(int(row))
            else:
                runs.append((c, [int(row)]))
        for k, (c, rows) in enumerate(runs):
            if c:
                before = runs[k - 1][1] if k > 0 else []
                after = runs[k + 1][1] if k + 1 < len(runs) else []
                out.append((before, rows, after))
    return out


def majority(rows: list[int], truth_of: dict[int, str]) -> str:
    c = Counter(truth_of[r] for r in rows if r in truth_of)
    return c.most_common(1)[0][0] if c else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--truth", required=True, help="finprint synth's truth.csv")
    ap.add_argument("--pred", required=True, help="finprint replay's trajectories.csv")
    ap.add_argument("--gate", type=float, default=20.0, help="match distance, px (default 20)")
    ap.add_argument(
        "--contact-margin", type=float, default=0.2, help="boxes within this × box height are in contact (default 0.2)"
    )
    a = ap.parse_args()
    truth = pd.read_csv(a.truth, dtype={"individual": str})
    pred = pd.read_csv(a.pred, dtype={"individual": str, "track": str}).reset_index(drop=True)
    pred["individual"] = pred["individual"].fillna("")
    m = match_frames(truth, pred, a.gate)
    truth_of = dict(m.pairs)
    n_gt, n_pred = m.gt_rows, len(pred)
    # As `finprint eval --id-column individual`: a row without an individual keeps its track.
    labels = {int(i): v or f"track:{pred['track'][i]}" for i, v in pred["individual"].items()}
    unlabelled = {int(i) for i, v in pred["individual"].items() if not v}
    tracks = {int(i): v for i, v in pred["track"].items()}
    contact = contact_rows(pred, a.contact_margin)
    frag = fragments(pred, contact)

    # Majority true fish of each label, then right / wrong / none per matched row.
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for row, t in truth_of.items():
        if row not in unlabelled:
            votes[labels[row]][t] += 1
    major = {lab: c.most_common(1)[0][0] for lab, c in votes.items()}
    tally: dict[str, Counter[str]] = {"contact-free": Counter(), "contact": Counter()}
    for row, t in truth_of.items():
        kind = "contact" if row in contact else "contact-free"
        lab = labels.get(row)
        tally[kind]["none" if row in unlabelled else ("right" if major.get(lab) == t else "wrong")] += 1

    # Ceilings: fragments with their majority fish (contact rows take the fragment before
    # them, as the daemon's label delay does); every matched row with its fish.
    frag_votes: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
    for row, t in truth_of.items():
        if row not in contact:
            frag_votes[frag[row]][t] += 1
    frag_label = {k: c.most_common(1)[0][0] for k, c in frag_votes.items()}
    ceil_frag = {row: frag_label.get(frag[row], "") for row in frag}
    ceil_frag = {r: v for r, v in ceil_frag.items() if v}
    ceil_det = dict(truth_of)
    # Contact stretches: the midpoint rule and perfect labels; how often the fish changed.
    ceil_mid = dict(ceil_frag)
    ceil_perfect = dict(ceil_frag)
    changed: Counter[str] = Counter()
    boxes = pred[["x0", "y0", "x1", "y1"]].to_numpy(dtype=float)
    by_frame = {f: list(g.index) for f, g in pred.groupby("frame")}
    frame_of = pred["frame"].to_dict()
    for before, stretch, after in contact_stretches(pred, contact):
        first = frag_label.get(frag[before[-1]], "") if before else ""
        then = frag_label.get(frag[after[0]], "") if after else ""
        first, then = first or then, then or first
        for k, row in enumerate(stretch):
            ceil_mid[row] = first if k < len(stretch) / 2 else then
            if row in truth_of:
                ceil_perfect[row] = truth_of[row]
        if before and after:
            overlapped = any(overlaps(boxes[r], boxes[o]) for r in stretch for o in by_frame[frame_of[r]] if o != r)
            kind = "overlapping" if overlapped else "near"
            same = majority(before[-10:], truth_of) == majority(after[:10], truth_of)
            changed[kind + (" same fish" if same else " other fish")] += 1
    ceil_mid = {r: v for r, v in ceil_mid.items() if v}

    print(f"rows: truth (visible) {n_gt}, output {n_pred}, matched {len(truth_of)} (gate {a.gate} px)")
    print(
        f"detection recall: visible {len(truth_of) / max(n_gt, 1):.4f}, fully visible "
        f"{m.full_found}/{m.full_rows} = {m.full_found / max(m.full_rows, 1):.4f}; missed fully visible "
        f"with a box overlapping another fish: {m.missed_full_overlapping}/{m.full_rows - m.full_found}"
    )
    for kind, c in tally.items():
        tot = max(sum(c.values()), 1)
        print(
            f"{kind:>12} matched rows {sum(c.values()):6d}: right {c['right'] / tot:.3f}, "
            f"wrong {c['wrong'] / tot:.3f}, no label {c['none'] / tot:.3f}"
        )
    print(
        f"IDF1 individual {idf1(labels, truth_of, n_gt, n_pred):.4f}, track "
        f"{idf1(tracks, truth_of, n_gt, n_pred):.4f}; ceilings: fragments given their fish "
        f"{idf1(ceil_frag, truth_of, n_gt, n_pred):.4f}, every detection given its fish "
        f"{idf1(ceil_det, truth_of, n_gt, n_pred):.4f}"
    )
    print(
        f"contact stretches: fragments given their fish, stretch rows split at their midpoint "
        f"{idf1(ceil_mid, truth_of, n_gt, n_pred):.4f}, stretch rows given their own fish "
        f"{idf1(ceil_perfect, truth_of, n_gt, n_pred):.4f}"
    )
    for kind in ("overlapping", "near"):
        n_same, n_other = changed[kind + " same fish"], changed[kind + " other fish"]
        print(
            f"{kind:>12} contact stretches {n_same + n_other:5d}: the track follows another fish "
            f"after {n_other} ({n_other / max(n_same + n_other, 1):.3f})"
        )


if __name__ == "__main__":
    main()

"""scripts/identity_breakdown.py (the developers' identity diagnostic) on a hand-made replay."""

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "identity_breakdown.py"


@pytest.fixture(scope="module")
def breakdown():
    spec = importlib.util.spec_from_file_location("identity_breakdown", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["identity_breakdown"] = module
    spec.loader.exec_module(module)
    return module


def truth_rows() -> pd.DataFrame:
    # Two fish, 4 frames, far apart; fish b hidden in frame 3.
    rows = []
    for f in range(4):
        rows.append(dict(frame=f, individual="a", x=10.0, y=10.0, x0=0, y0=5, x1=20, y1=15, visible_fraction=1.0))
        vis = 0.0 if f == 3 else 1.0
        rows.append(dict(frame=f, individual="b", x=100.0, y=10.0, x0=90, y0=5, x1=110, y1=15, visible_fraction=vis))
    return pd.DataFrame(rows)


def pred_rows(labels_a: list[str], labels_b: list[str]) -> pd.DataFrame:
    rows = []
    for f in range(4):
        rows.append(dict(frame=f, track="1", individual=labels_a[f], x=11.0, y=10.0, x0=1, y0=5, x1=21, y1=15))
        if f < 3:
            rows.append(dict(frame=f, track="2", individual=labels_b[f], x=99.0, y=10.0, x0=89, y0=5, x1=109, y1=15))
    return pd.DataFrame(rows)


def test_matching_and_idf1_by_hand(breakdown):
    truth, pred = truth_rows(), pred_rows(["p", "p", "p", "p"], ["q", "q", "p", "q"])
    m = breakdown.match_frames(truth, pred, 20.0)
    assert (m.gt_rows, m.full_rows, m.full_found) == (7, 7, 7)
    truth_of = dict(m.pairs)
    labels = {int(i): v for i, v in pred["individual"].items()}
    # Best mapping p -> a (4 rows), q -> b (2 rows): IDF1 = 2 * 6 / (7 gt + 7 pred).
    assert breakdown.idf1(labels, truth_of, m.gt_rows, len(pred)) == pytest.approx(12 / 14)


def test_a_fish_out_of_gate_is_missed_and_boxes_apart_are_no_contact(breakdown):
    truth, pred = truth_rows(), pred_rows(["p"] * 4, ["q"] * 3)
    pred.loc[pred.track == "2", "x"] = 150.0
    m = breakdown.match_frames(truth, pred, 20.0)
    assert (m.full_found, m.missed_full_overlapping) == (4, 0)
    assert breakdown.contact_rows(pred, 0.2) == set()
    assert breakdown.overlaps([0, 0, 10, 10], [12, 0, 20, 10], grow=3.0)
    assert not breakdown.overlaps([0, 0, 10, 10], [12, 0, 20, 10])

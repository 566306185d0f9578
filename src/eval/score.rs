//! Pure scoring of point tracks: CLEAR MOT, identity metrics (IDF1/IDP/IDR) and HOTA.
//!
//! Objects match when their centres are at most `gate` px apart.
//!
//! - **CLEAR MOT** follows `py-motmetrics` (`MOTAccumulator.update` with
//!   `norm2squared_matrix(max_d2 = gate²)`): per frame, correspondences of the previous frames
//!   are kept when still within the gate; the rest are matched by a maximum-cardinality,
//!   minimum-total-*squared*-distance assignment; a match of a ground-truth object to a
//!   different prediction than its last one is an ID switch. MOTA = 1 − (FN + FP + IDSW) / GT,
//!   recall = TP / GT, precision = TP / (TP + FP). MOTP here is the mean Euclidean distance
//!   (px) of matches (motmetrics would report the mean squared distance).
//! - **Identity** (Ristani et al. 2016): one global bipartite assignment of ground-truth ids
//!   to predicted ids maximising the number of frames in which the paired objects are within
//!   the gate (IDTP); IDP = IDTP / predictions, IDR = IDTP / ground truth, IDF1 their
//!   harmonic mean.
//! - **HOTA** (Luiten et al. 2021) exactly as TrackEval's `HOTA` metric, with similarity
//!   `max(0, 1 − d / gate)`, averaged over α = 0.05, 0.10, …, 0.95; also DetA, AssA, LocA.
//!
//! Must never panic on any input (empty sequences give zeros).

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;
use serde::Serialize;

use super::read::{Point, Sequence};

/// Per-α HOTA components.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HotaAlpha {
    /// Localisation threshold α.
    pub alpha: f64,
    /// HOTA at α.
    pub hota: f64,
    /// Detection accuracy at α.
    pub det_a: f64,
    /// Association accuracy at α.
    pub ass_a: f64,
}

/// One pair of the global identity assignment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IdPair {
    /// Ground-truth id.
    pub gt: String,
    /// Predicted id assigned to it.
    pub pred: String,
    /// Frames in which the two are within the gate (their IDTP contribution).
    pub frames: u64,
}

/// Every score `finprint eval` reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Scores {
    /// Matching gate, px.
    pub gate: f64,
    /// Frames with ground truth or predictions.
    pub frames: u64,
    /// Ground-truth objects (over all frames).
    pub gt: u64,
    /// Predicted objects.
    pub pred: u64,
    /// Distinct ground-truth ids.
    pub gt_ids: u64,
    /// Distinct predicted ids.
    pub pred_ids: u64,
    /// Matches (true positives, switches included).
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// False negatives (misses).
    pub fn_: u64,
    /// Identity switches.
    pub id_switches: u64,
    /// Multiple object tracking accuracy.
    pub mota: f64,
    /// Mean centre distance of matches, px.
    pub motp_px: f64,
    /// TP / GT.
    pub recall: f64,
    /// TP / (TP + FP).
    pub precision: f64,
    /// Identity true positives.
    pub idtp: u64,
    /// Identity false positives.
    pub idfp: u64,
    /// Identity false negatives.
    pub idfn: u64,
    /// Identity F1.
    pub idf1: f64,
    /// Identity precision.
    pub idp: f64,
    /// Identity recall.
    pub idr: f64,
    /// HOTA averaged over α.
    pub hota: f64,
    /// DetA averaged over α.
    pub det_a: f64,
    /// AssA averaged over α.
    pub ass_a: f64,
    /// LocA averaged over α.
    pub loc_a: f64,
    /// HOTA per α.
    pub hota_alphas: Vec<HotaAlpha>,
    /// Fraction of frames in which the predicted count equals the ground-truth count.
    pub count_agreement: f64,
    /// Mean |predicted count − ground-truth count| per frame.
    pub count_mae: f64,
    /// The identity assignment behind IDF1 (pairs that share at least one frame), by gt id.
    pub id_mapping: Vec<IdPair>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Maximum-weight assignment between `rows` and `cols` items (weights ≥ 0); returns the
/// (row, col) pairs of the optimal assignment (including zero-weight pairs).
pub(crate) fn max_weight_assignment(
    rows: usize,
    cols: usize,
    w: impl Fn(usize, usize) -> i64,
) -> Vec<(usize, usize)> {
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    let transpose = rows > cols;
    let (r, c) = if transpose {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let mut v = Vec::with_capacity(r * c);
    for i in 0..r {
        for j in 0..c {
            v.push(if transpose { w(j, i) } else { w(i, j) });
        }
    }
    let Ok(m) = Matrix::from_vec(r, c, v) else {
        return Vec::new();
    };
    let (_, assign) = kuhn_munkres(&m);
    assign
        .into_iter()
        .enumerate()
        .map(|(i, j)| if transpose { (j, i) } else { (i, j) })
        .collect()
}

fn d2(a: &Point, b: &Point) -> f64 {
    (a.x - b.x).powi(2) + (a.y - b.y).powi(2)
}

/// Maximum-cardinality, then minimum-total-cost matching among valid (`Some`) costs
/// (what motmetrics' `linear_sum_assignment` with NaN as "invalid" computes).
fn min_cost_valid_matching(
    cost: &[Vec<Option<f64>>],
    cols: usize,
    max_cost: f64,
) -> Vec<(usize, usize)> {
    let rows = cost.len();
    const RES: f64 = 1e9;
    let k = rows.min(cols) as i64 + 1;
    let big = (RES as i64 + 1) * k;
    let scale = if max_cost > 0.0 { RES / max_cost } else { 0.0 };
    max_weight_assignment(rows, cols, |i, j| match cost[i][j] {
        Some(c) => big - (c * scale).round().clamp(0.0, RES) as i64,
        None => 0,
    })
    .into_iter()
    .filter(|&(i, j)| cost[i][j].is_some())
    .collect()
}

/// Scores `pred` against `gt` with centre-distance gate `gate` px (see the module docs).
pub fn evaluate(gt: &Sequence, pred: &Sequence, gate: f64) -> Scores {
    let gate = if gate.is_finite() && gate > 0.0 {
        gate
    } else {
        f64::MIN_POSITIVE
    };
    let gate2 = gate * gate;
    let empty: Vec<Point> = Vec::new();
    let mut frames: Vec<u64> = gt
        .frames
        .keys()
        .chain(pred.frames.keys())
        .copied()
        .collect();
    frames.sort_unstable();
    frames.dedup();

    let (ng, np) = (gt.ids.len(), pred.ids.len());
    // CLEAR MOT state.
    let mut last: Vec<Option<usize>> = vec![None; ng];
    let (mut tp, mut fp, mut fn_, mut sw) = (0u64, 0u64, 0u64, 0u64);
    let mut dist_sum = 0.0;
    // Identity: co-occurrence counts within the gate, per (gt id, pred id).
    let mut co = vec![0i64; ng * np];
    // HOTA first pass.
    let mut potential = vec![0.0f64; ng * np];
    let mut gt_count = vec![0.0f64; ng];
    let mut pr_count = vec![0.0f64; np];
    let (mut count_eq, mut count_abs) = (0u64, 0u64);
    let (mut n_gt, mut n_pred) = (0u64, 0u64);

    for f in &frames {
        let g = gt.frames.get(f).unwrap_or(&empty);
        let p = pred.frames.get(f).unwrap_or(&empty);
        n_gt += g.len() as u64;
        n_pred += p.len() as u64;
        if g.len() == p.len() {
            count_eq += 1;
        }
        count_abs += g.len().abs_diff(p.len()) as u64;

        let dists: Vec<Vec<Option<f64>>> = g
            .iter()
            .map(|a| {
                p.iter()
                    .map(|b| Some(d2(a, b)).filter(|&d| d <= gate2))
                    .collect()
            })
            .collect();

        // 1. Keep last frame's correspondences that are still within the gate.
        let mut g_used = vec![false; g.len()];
        let mut p_used = vec![false; p.len()];
        for (i, a) in g.iter().enumerate() {
            let Some(h) = last[a.id] else { continue };
            let Some(j) = (0..p.len()).find(|&j| !p_used[j] && p[j].id == h) else {
                continue;
            };
            if let Some(d) = dists[i][j] {
                g_used[i] = true;
                p_used[j] = true;
                tp += 1;
                dist_sum += d.sqrt();
            }
        }
        // 2. Assign the rest.
        let rest: Vec<Vec<Option<f64>>> = dists
            .iter()
            .enumerate()
            .map(|(i, row)| {
                row.iter()
                    .enumerate()
                    .map(|(j, d)| d.filter(|_| !g_used[i] && !p_used[j]))
                    .collect()
            })
            .collect();
        for (i, j) in min_cost_valid_matching(&rest, p.len(), gate2) {
            let (o, h) = (g[i].id, p[j].id);
            if last[o].is_some_and(|prev| prev != h) {
                sw += 1;
            }
            last[o] = Some(h);
            g_used[i] = true;
            p_used[j] = true;
            tp += 1;
            dist_sum += rest[i][j].unwrap_or(0.0).sqrt();
        }
        fn_ += g_used.iter().filter(|u| !**u).count() as u64;
        fp += p_used.iter().filter(|u| !**u).count() as u64;

        // Identity co-occurrence.
        for (i, a) in g.iter().enumerate() {
            for (j, b) in p.iter().enumerate() {
                if dists[i][j].is_some() {
                    co[a.id * np + b.id] += 1;
                }
            }
        }

        // HOTA pass 1: potential matches with the Jaccard-normalised similarity.
        for a in g {
            gt_count[a.id] += 1.0;
        }
        for b in p {
            pr_count[b.id] += 1.0;
        }
        if !g.is_empty() && !p.is_empty() {
            let sim = similarity(g, p, gate);
            let rs: Vec<f64> = sim.iter().map(|r| r.iter().sum()).collect();
            let cs: Vec<f64> = (0..p.len())
                .map(|j| sim.iter().map(|r| r[j]).sum())
                .collect();
            for (i, a) in g.iter().enumerate() {
                for (j, b) in p.iter().enumerate() {
                    let denom = rs[i] + cs[j] - sim[i][j];
                    if denom > f64::EPSILON {
                        potential[a.id * np + b.id] += sim[i][j] / denom;
                    }
                }
            }
        }
    }
    // `last` was only needed for switches; the update of step 1 keeps it unchanged.

    let mota = if n_gt > 0 {
        1.0 - (fn_ + fp + sw) as f64 / n_gt as f64
    } else {
        0.0
    };
    let recall = ratio(tp as f64, n_gt as f64);
    let precision = ratio(tp as f64, (tp + fp) as f64);

    // Identity metrics.
    let pairs = max_weight_assignment(ng, np, |i, j| co[i * np + j]);
    let idtp: u64 = pairs.iter().map(|&(i, j)| co[i * np + j] as u64).sum();
    let mut id_mapping: Vec<IdPair> = pairs
        .iter()
        .filter(|&&(i, j)| co[i * np + j] > 0)
        .map(|&(i, j)| IdPair {
            gt: gt.ids[i].clone(),
            pred: pred.ids[j].clone(),
            frames: co[i * np + j] as u64,
        })
        .collect();
    id_mapping.sort_by(|a, b| a.gt.cmp(&b.gt));
    let idfn = n_gt - idtp.min(n_gt);
    let idfp = n_pred - idtp.min(n_pred);
    let idp = ratio(idtp as f64, n_pred as f64);
    let idr = ratio(idtp as f64, n_gt as f64);
    let idf1 = ratio(2.0 * idtp as f64, (n_gt + n_pred) as f64);

    // HOTA pass 2.
    let global: Vec<f64> = (0..ng * np)
        .map(|k| {
            let (i, j) = (k / np.max(1), k % np.max(1));
            let denom = gt_count[i] + pr_count[j] - potential[k];
            if denom > 0.0 {
                potential[k] / denom
            } else {
                0.0
            }
        })
        .collect();
    let alphas: Vec<f64> = (1..=19).map(|k| k as f64 * 0.05).collect();
    let na = alphas.len();
    let mut h_tp = vec![0.0f64; na];
    let mut h_fn = vec![0.0f64; na];
    let mut h_fp = vec![0.0f64; na];
    let mut loc = vec![0.0f64; na];
    let mut matches = vec![vec![0.0f64; ng * np]; na];
    for f in &frames {
        let g = gt.frames.get(f).unwrap_or(&empty);
        let p = pred.frames.get(f).unwrap_or(&empty);
        if g.is_empty() || p.is_empty() {
            for a in 0..na {
                h_fp[a] += p.len() as f64;
                h_fn[a] += g.len() as f64;
            }
            continue;
        }
        let sim = similarity(g, p, gate);
        const RES: f64 = 1e12;
        let assign = max_weight_assignment(g.len(), p.len(), |i, j| {
            (global[g[i].id * np + p[j].id] * sim[i][j] * RES).round() as i64
        });
        for (a, alpha) in alphas.iter().enumerate() {
            let mut n = 0usize;
            for &(i, j) in &assign {
                if sim[i][j] >= alpha - f64::EPSILON {
                    n += 1;
                    loc[a] += sim[i][j];
                    matches[a][g[i].id * np + p[j].id] += 1.0;
                }
            }
            h_tp[a] += n as f64;
            h_fn[a] += (g.len() - n) as f64;
            h_fp[a] += (p.len() - n) as f64;
        }
    }
    let mut hota_alphas = Vec::with_capacity(na);
    let (mut hs, mut ds, mut as_, mut ls) = (0.0, 0.0, 0.0, 0.0);
    for a in 0..na {
        let mut ass = 0.0;
        for (k, &m) in matches[a].iter().enumerate() {
            if m > 0.0 {
                let (i, j) = (k / np, k % np);
                ass += m * m / (gt_count[i] + pr_count[j] - m).max(1.0);
            }
        }
        let ass_a = ass / h_tp[a].max(1.0);
        let det_a = h_tp[a] / (h_tp[a] + h_fn[a] + h_fp[a]).max(1.0);
        let hota = (det_a * ass_a).sqrt();
        let loc_a = loc[a].max(1e-10) / h_tp[a].max(1e-10);
        hs += hota;
        ds += det_a;
        as_ += ass_a;
        ls += loc_a;
        hota_alphas.push(HotaAlpha {
            alpha: alphas[a],
            hota,
            det_a,
            ass_a,
        });
    }
    let naf = na as f64;

    Scores {
        gate,
        frames: frames.len() as u64,
        gt: n_gt,
        pred: n_pred,
        gt_ids: gt
            .frames
            .values()
            .flatten()
            .map(|p| p.id)
            .collect::<std::collections::HashSet<_>>()
            .len() as u64,
        pred_ids: pred
            .frames
            .values()
            .flatten()
            .map(|p| p.id)
            .collect::<std::collections::HashSet<_>>()
            .len() as u64,
        tp,
        fp,
        fn_,
        id_switches: sw,
        mota,
        motp_px: ratio(dist_sum, tp as f64),
        recall,
        precision,
        idtp,
        idfp,
        idfn,
        idf1,
        idp,
        idr,
        hota: hs / naf,
        det_a: ds / naf,
        ass_a: as_ / naf,
        loc_a: ls / naf,
        hota_alphas,
        count_agreement: ratio(count_eq as f64, frames.len() as f64),
        count_mae: ratio(count_abs as f64, frames.len() as f64),
        id_mapping,
    }
}

/// HOTA similarity `max(0, 1 − d / gate)` between every gt and predicted object.
fn similarity(g: &[Point], p: &[Point], gate: f64) -> Vec<Vec<f64>> {
    g.iter()
        .map(|a| {
            p.iter()
                .map(|b| (1.0 - d2(a, b).sqrt() / gate).max(0.0))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(rows: &[(u64, &str, f64, f64)]) -> Sequence {
        let mut s = Sequence::default();
        for (f, id, x, y) in rows {
            s.push(*f, id, *x, *y);
        }
        s
    }

    #[test]
    fn perfect_tracks_score_one() {
        let rows: Vec<(u64, &str, f64, f64)> = (0..10)
            .flat_map(|f| [(f, "a", f as f64, 0.0), (f, "b", 50.0, f as f64)])
            .collect();
        let s = evaluate(&seq(&rows), &seq(&rows), 10.0);
        assert_eq!((s.tp, s.fp, s.fn_, s.id_switches), (20, 0, 0, 0));
        assert_eq!(
            (s.mota, s.idf1, s.hota, s.count_agreement),
            (1.0, 1.0, 1.0, 1.0)
        );
    }

    #[test]
    fn switch_fp_fn_counted() {
        // gt a,b; prediction swaps ids at frame 2, misses b at frame 4, adds a far FP at frame 1.
        let gt = seq(&[
            (0, "a", 0.0, 0.0),
            (0, "b", 100.0, 0.0),
            (1, "a", 0.0, 0.0),
            (1, "b", 100.0, 0.0),
            (2, "a", 0.0, 0.0),
            (2, "b", 100.0, 0.0),
            (3, "a", 0.0, 0.0),
            (3, "b", 100.0, 0.0),
            (4, "a", 0.0, 0.0),
            (4, "b", 100.0, 0.0),
        ]);
        let pred = seq(&[
            (0, "1", 1.0, 0.0),
            (0, "2", 101.0, 0.0),
            (1, "1", 1.0, 0.0),
            (1, "2", 101.0, 0.0),
            (1, "3", 500.0, 0.0),
            (2, "2", 1.0, 0.0),
            (2, "1", 101.0, 0.0),
            (3, "2", 1.0, 0.0),
            (3, "1", 101.0, 0.0),
            (4, "2", 1.0, 0.0),
        ]);
        let s = evaluate(&gt, &pred, 10.0);
        assert_eq!((s.tp, s.fp, s.fn_, s.id_switches), (9, 1, 1, 2));
        assert!((s.mota - (1.0 - 4.0 / 10.0)).abs() < 1e-12);
        assert!((s.motp_px - 1.0).abs() < 1e-12);
        assert_eq!(s.count_agreement, 3.0 / 5.0);
        // Best identity pairing: a↔2 (3 frames) and b↔1 (2 frames) → IDTP 5, or a↔1, b↔2 (2+2).
        assert_eq!(s.idtp, 5);
        assert!((s.idf1 - 10.0 / 20.0).abs() < 1e-12);
    }

    #[test]
    fn empty_inputs_do_not_panic() {
        let s = evaluate(&Sequence::default(), &Sequence::default(), 10.0);
        assert_eq!((s.frames, s.mota, s.hota), (0, 0.0, 0.0));
        let one = seq(&[(0, "a", 0.0, 0.0)]);
        let s = evaluate(&one, &Sequence::default(), f64::NAN);
        assert_eq!((s.fn_, s.recall), (1, 0.0));
        let s = evaluate(&Sequence::default(), &one, 10.0);
        assert_eq!(s.fp, 1);
    }
}

//! Track: motion tracking (Kalman + optimal assignment with gating), track lifecycle and
//! population limit. Must never look at pixels, and never decides identity (which individual
//! a track is): `TrackReport::individual` is left `None` for the identity stage.
//!
//! Per frame: every track's constant-velocity Kalman filter predicts to the frame time; the
//! confirmed tracks (including coasting ones) are matched to detections by the Hungarian
//! algorithm on centre distance, gated per track (body lengths or px, widened by the track's
//! position uncertainty); then tentative tracks take the remaining detections. A blob flagged
//! as several touching fish (`fish_count ≥ 2`) can be matched by that many tracks. With a known
//! population N, at most N confirmed tracks exist: once all N exist, a detection left over
//! re-links to the best coasting track within a wider gate, a new track that proves itself
//! takes over the id of a lost one, and lost tracks are not deleted but wait (dormant) to be
//! re-linked. While a known population is not complete, a blob counted as k fish that fewer
//! than k tracks hold starts the missing tracks on parts of it (fish overlapping from the
//! start of a recording). Tracks started in the first frames are confirmed at once; two of them
//! sharing a one-fish blob soon after are one fish seen in pieces, and only one is kept. In a
//! side view with an open population, a track that shares blobs it adds nothing to for
//! `max_shared_s` ends (a fish hidden that long, or a track riding on another fish's blob).

mod kalman;
mod state;

use pathfinding::matrix::Matrix;
use pathfinding::prelude::kuhn_munkres_min;
use serde::{Deserialize, Serialize};

use crate::config::{CameraView, ConfigError};
use crate::messages::{Detection, TrackReport, TrackSeed, TrackStatus};
use kalman::MotionState;
pub use state::TrackerState;

/// Motion tracking settings of one camera. Every field has a default that suits a typical
/// tank recording; an empty `[cameras.track]` table is valid.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackConfig {
    /// Matching gate in px (distance between a track's predicted centre and a detection).
    /// Unset (default): `gate_body_lengths` × the track's body length. Either way the gate
    /// widens by two standard deviations of the track's predicted position.
    pub gate_px: Option<f32>,
    /// Matching gate in body lengths, used when `gate_px` is unset. Default 1.0.
    /// Allowed: 0.1..=20.
    pub gate_body_lengths: f32,
    /// With a known population, once all N tracks exist: the wider gate (body lengths) within
    /// which a left-over detection re-links to a coasting track. Default 3.0. Allowed: 0.1..=50.
    pub relink_body_lengths: f32,
    /// Consecutive matched frames before a new track is confirmed. Default 3. Allowed: 1..=100.
    pub min_hits: u32,
    /// Seconds a confirmed track coasts on its prediction while unmatched. After that it is
    /// deleted, or, with a known population and `keep_lost_with_population`, becomes dormant
    /// (kept, not reported, waiting to be re-linked). Default 2.0. Allowed: 0..=3600.
    pub max_coast_s: f64,
    /// With a known population, keep lost tracks (dormant) instead of deleting them, so that a
    /// fish that reappears gets its old track back. Default true.
    pub keep_lost_with_population: bool,
    /// Kalman process noise: standard deviation of acceleration in body lengths/s². Default
    /// 30 (fish accelerate in bursts). Allowed: 0.01..=10000.
    pub accel_noise: f32,
    /// Kalman measurement noise: standard deviation of a detection's centre in body lengths.
    /// Default 0.05. Allowed: 0.001..=10.
    pub measurement_noise: f32,
    /// A confirmed track left unmatched may share a detection already matched by other tracks
    /// when that blob's area is at least this fraction of the sum of their single-fish areas
    /// (touching fish counted as fewer by the detector). Unset (default): 0.8 for a top view,
    /// 0.4 for a side view (camera `view`), where a fish passing behind another adds only the
    /// part of it that shows. Allowed: 0.1..=10 (large values disable sharing).
    pub share_area_ratio: Option<f32>,
    /// A blob shared by several tracks (touching fish the detector could not split) is divided
    /// between them by k-means on its pixels (each pixel to the track whose body ellipse it lies
    /// deepest in) and, for a side view, each track's body is then fitted to the blob (the blob
    /// is the union of the bodies, the hidden part of a fish behind another included); a
    /// track's part updates the
    /// track only when it lies at least this many body lengths from the other parts, else the
    /// track keeps its prediction (in a side view, where a fish passes in front of another at
    /// another depth, it keeps its speed through the overlap, pulled only weakly towards its
    /// part, and its row shows the centre of its part). Default (unset): 1.0; a closer
    /// division swaps crossing fish (side view: 0 gave identity IDF1 0.811, 1.0 gives 0.880
    /// over 10 tanks, BENCHMARKS.md round 7).
    /// Allowed: 0..=10 (10: never).
    pub split_apart_body_lengths: Option<f32>,
    /// Side view, open population: seconds a confirmed track may share blobs it adds nothing
    /// to (a blob no larger than 1.3 × the other tracks' own areas, and smaller than all of
    /// theirs with its own) before the track of such a blob whose own area fits it worst is
    /// ended. Such a track is a fish hidden behind another, or a track that lost its fish and
    /// rides on another fish's blob (a side view shares a blob with little area,
    /// `share_area_ratio`): reported as a fish that is not there, while its fish gets a new
    /// track and a second individual. Time on a blob as large as all its fish (touching side
    /// by side) or on one it adds to (fish overlapping in part) counts nothing; time on a blob
    /// of its own counts back down. A hidden fish that shows again after its track ended gets
    /// a new track; identity follows it by appearance. With a known population the population
    /// limit and the take-over of a sharing track's id handle such tracks instead (ending them
    /// there, without the 1.3 condition, lowered identity IDF1 96.19 → 96.01 % on 20 tanks),
    /// and top views count nothing (see `Tracker::end_long_shares`). Default 2.0 (simulated
    /// side views: a fish stays mostly hidden for at most 1.8 s; 30 open-population tanks,
    /// BENCHMARKS.md round 26). Allowed: 0.1..=3600.
    pub max_shared_s: f64,
    /// Time step assumed when the stream time does not advance (missing or repeated
    /// timestamps), seconds. Default 0.04 (25 fps). Allowed: 0.0001..=10.
    pub frame_interval_s: f64,
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig {
            gate_px: None,
            gate_body_lengths: 1.0,
            relink_body_lengths: 3.0,
            min_hits: 3,
            max_coast_s: 2.0,
            keep_lost_with_population: true,
            accel_noise: 30.0,
            measurement_noise: 0.05,
            share_area_ratio: None,
            split_apart_body_lengths: None,
            max_shared_s: 2.0,
            frame_interval_s: 0.04,
        }
    }
}

impl TrackConfig {
    /// `share_area_ratio` and `split_apart_body_lengths` for a camera looking from `view`:
    /// the values set, else the view's defaults (`Auto`, not yet decided: the top view's).
    pub fn for_view(&self, view: CameraView) -> (f32, f32) {
        let (share, apart) = match view {
            CameraView::Top | CameraView::Auto => (0.8, 1.0),
            CameraView::Side => (0.4, 1.0),
        };
        (
            self.share_area_ratio.unwrap_or(share),
            self.split_apart_body_lengths.unwrap_or(apart),
        )
    }

    /// Checks values without touching devices or files.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let range = |field: &str, v: f64, lo: f64, hi: f64| -> Result<(), ConfigError> {
            if v.is_finite() && v >= lo && v <= hi {
                Ok(())
            } else {
                Err(ConfigError::invalid(
                    format!("{key}.{field}"),
                    format!("{v} is not allowed: use {lo}..={hi}"),
                ))
            }
        };
        if let Some(g) = self.gate_px {
            range("gate_px", g as f64, 0.5, 10_000.0)?;
        }
        range(
            "gate_body_lengths",
            self.gate_body_lengths as f64,
            0.1,
            20.0,
        )?;
        range(
            "relink_body_lengths",
            self.relink_body_lengths as f64,
            0.1,
            50.0,
        )?;
        range("min_hits", self.min_hits as f64, 1.0, 100.0)?;
        range("max_coast_s", self.max_coast_s, 0.0, 3600.0)?;
        range("accel_noise", self.accel_noise as f64, 0.01, 10_000.0)?;
        range(
            "measurement_noise",
            self.measurement_noise as f64,
            0.001,
            10.0,
        )?;
        if let Some(r) = self.share_area_ratio {
            range("share_area_ratio", r as f64, 0.1, 10.0)?;
        }
        range("frame_interval_s", self.frame_interval_s, 0.0001, 10.0)?;
        range("max_shared_s", self.max_shared_s, 0.1, 3600.0)?;
        if let Some(a) = self.split_apart_body_lengths {
            range("split_apart_body_lengths", a as f64, 0.0, 10.0)?;
        }
        Ok(())
    }
}

/// One track's internal state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Track {
    id: u64,
    motion: MotionState,
    /// Consecutive matched frames while tentative; total hits once confirmed.
    hits: u32,
    confirmed: bool,
    /// Stream time of the last match.
    last_seen: f64,
    /// Body length estimate (px), as the fish looks now: scales the gates and body shapes.
    body_length: f32,
    /// The fish's length as it shows broadside (px): reported, e.g. for interaction distances.
    length: f32,
    /// Heading (rad).
    heading: f32,
    /// Last box relative to the centre: left, top, right, bottom offsets.
    box_offsets: [f32; 4],
    /// Kept only to be re-linked (population known, lost longer than `max_coast_s`).
    dormant: bool,
    /// Detection index matched this frame.
    matched: Option<usize>,
    /// Area of this fish alone (px²), from detections it had to itself.
    area: f32,
    /// This frame: its part of a shared blob, trusted to update it (centre, share of points).
    part: Option<(f64, f64, f32)>,
    /// This frame, side view: its part of a shared blob, too close to the others' to update
    /// it (where its row is drawn; the track itself coasts through the overlap).
    shown: Option<(f64, f64)>,
    /// Side view: the box of the blob it shared with other tracks in the last frame.
    shared_box: Option<[f32; 4]>,
    /// Seconds it has shared blobs it adds nothing to, less the seconds it had a blob to
    /// itself since (see `TrackConfig::max_shared_s`).
    shared_s: f64,
}

/// Tracks of one camera. Feed it every frame's detections in order with [`Tracker::update`].
#[derive(Debug)]
pub struct Tracker {
    cfg: TrackConfig,
    /// `share_area_ratio` and `split_apart_body_lengths` for the camera's view.
    share_ratio: f32,
    split_apart: f32,
    /// Fit the bodies to shared blobs ([`fit_silhouettes`]): side views, where a fish passes
    /// in front of another. In top views it did not help (identity of 16 look-alike fish
    /// 0.59 → 0.42, restart 0.98 → 0.97; BENCHMARKS.md), so the k-means parts are kept there.
    fit_bodies: bool,
    population: Option<u32>,
    tracks: Vec<Track>,
    next_id: u64,
    last_t: Option<f64>,
    frames: u64,
    visible: u32,
}

/// Scale of distances in the integer cost matrix (1/100 px).
const COST_SCALE: f64 = 100.0;
/// Side view: a blob overlapping by this much (of the smaller box) the box of one that tracks
/// shared in the last frame continues it (see the detection slots in [`Tracker::update`]).
const CONTINUED_OVERLAP: f32 = 0.5;
/// A blob shared by tracks shows all of their fish (touching side by side, none hidden) when
/// its area is at least this fraction of the sum of their own areas ([`TrackConfig::max_shared_s`]).
const SHARE_EVIDENCE: f32 = 1.0;
/// A track adds nothing that shows to a blob it shares when the blob is at most this many
/// times the sum of the other tracks' own areas (sizes vary with the distance to the glass):
/// its fish is hidden, or it has none there ([`TrackConfig::max_shared_s`]). Three fish in a
/// tangle each add what shows of them and keep their tracks (30 simulated open-population
/// tanks, BENCHMARKS.md round 26: no limit ended a real track in such a tangle, identity IDF1
/// of that tank 91.3 → 79.4 %; 1.5 and 1.3 gave 87.2 and 86.8 % over all against 87.7 %).
const SHARE_EXPLAINED: f32 = 1.3;
/// Time constant (s) of the velocity decay of a coasting track.
const COAST_VELOCITY_DECAY_S: f64 = 0.5;
/// Cost of a forbidden pair (beyond any gate).
const FORBIDDEN: i64 = 1_000_000_000;

/// Gated optimal assignment of rows to columns. `cost(r, c)` is a distance, allowed only
/// within `gate[r]`; leaving a row unmatched costs the same for every row (the largest gate),
/// so a track with a wide gate cannot steal a detection from a closer track just because its
/// own "unmatched" cost would be larger. Returns, per row, the matched column.
fn gated_assignment(
    rows: usize,
    cols: usize,
    cost: impl Fn(usize, usize) -> Option<f64>,
    gate: &[f64],
) -> Vec<Option<usize>> {
    if rows == 0 || cols == 0 {
        return vec![None; rows];
    }
    let unmatched = gate
        .iter()
        .copied()
        .filter(|g| g.is_finite())
        .fold(0.0f64, f64::max)
        .min(1e6);
    let unmatched = ((unmatched + 1.0) * COST_SCALE).round() as i64;
    // Columns: real ones, then one private "unmatched" column per row.
    let width = cols + rows;
    let mut w = Vec::with_capacity(rows * width);
    for (r, &g) in gate.iter().enumerate().take(rows) {
        for c in 0..cols {
            w.push(match cost(r, c) {
                Some(d) if d.is_finite() && d <= g => (d * COST_SCALE).round() as i64,
                _ => FORBIDDEN,
            });
        }
        for k in 0..rows {
            w.push(if k == r { unmatched } else { FORBIDDEN });
        }
    }
    let Ok(m) = Matrix::from_vec(rows, width, w) else {
        return vec![None; rows];
    };
    let (_, assign) = kuhn_munkres_min(&m);
    assign
        .iter()
        .enumerate()
        .map(|(r, &c)| {
            if c < cols && m[(r, c)] < FORBIDDEN {
                Some(c)
            } else {
                None
            }
        })
        .collect()
}

/// Per matched frame, the fraction of the way a track's reported length moves towards a longer
/// and towards a shorter measured length.
const LENGTH_RISE: f32 = 0.2;
const LENGTH_FALL: f32 = 0.02;

/// A track lost on another fish's blob counts as in view (hidden behind it) this long, s.
const OCCLUDED_IN_VIEW_S: f64 = 1.0;
/// Measurement noise (body lengths) of a track's part of a shared blob.
const SHARED_MEASUREMENT_BL: f32 = 0.15;
/// Measurement noise (body lengths) of a side-view track's fitted part of a shared blob when
/// the parts lie too close to trust (`split_apart_body_lengths`): a weak pull that keeps the
/// track on fish swimming together without swapping fish that pass each other
/// (BENCHMARKS.md round 10).
const SHOWN_MEASUREMENT_BL: f32 = 1.0;
/// Tracks started in the first frames are checked for doubles of one fish (see
/// `Tracker::drop_start_up_doubles`) for this many times `min_hits` frames.
const START_UP_CHECK_HITS: u32 = 3;
/// Iterations of the k-means division of a shared blob.
const SPLIT_ITERATIONS: usize = 8;

/// Body depth of a fish as a fraction of its length, for dividing shared blobs (zebrafish and
/// most lab species are 0.2–0.3 body lengths deep, fins included).
const BODY_ASPECT: f64 = 0.3;

/// A track's share of a blob to divide: its predicted centre, body axis angle (rad), body
/// length (px) and the area of its silhouette alone (px²; 0 when unknown).
#[derive(Debug, Clone, Copy)]
struct SplitSeed {
    x: f64,
    y: f64,
    angle: f64,
    length: f64,
    area: f64,
}

/// Silhouette fit of a shared blob: search steps along the body axis (fractions of the body
/// length, both ways), across it, and the body lengths tried (a turning fish shows less of its
/// length).
const FIT_ALONG_BL: [f64; 9] = [0.0, 0.05, -0.05, 0.1, -0.1, 0.2, -0.2, 0.3, -0.3];
const FIT_ACROSS_BL: [f64; 5] = [0.0, 0.04, -0.04, 0.08, -0.08];
const FIT_SCALES: [f64; 3] = [1.0, 0.75, 0.5];
/// Rounds of the silhouette fit (each moves every track once, the others held).
const FIT_ROUNDS: usize = 3;
/// Cost, in blob points, of a fitted centre half a body length from the track's predicted
/// centre: breaks ties (a fish wholly hidden behind another fits anywhere on it) without
/// outweighing what the pixels show.
const FIT_PRIOR_POINTS: f64 = 4.0;

/// A body template: an ellipse along the fish's axis with the fish's length (× scale) and a
/// depth that gives its silhouette area.
#[derive(Debug, Clone, Copy)]
struct Body {
    ux: f64,
    uy: f64,
    half: f64,
    depth: f64,
}

impl Body {
    /// The seed's body with its length × `scale` and the depth that gives the seed's area.
    fn new(s: &SplitSeed, scale: f64) -> Body {
        let typical = Body::typical(s);
        let half = typical.half;
        // Depth from the silhouette area (area = π · half · depth), within plausible shapes.
        let depth = if s.area > 0.0 {
            (s.area / (std::f64::consts::PI * half)).clamp(0.1 * half, 0.5 * half)
        } else {
            typical.depth
        };
        Body {
            half: half * scale,
            depth,
            ..typical
        }
    }

    /// The seed's body at its full length, [`BODY_ASPECT`] of it deep.
    fn typical(s: &SplitSeed) -> Body {
        let half = (s.length / 2.0).max(1.0);
        let (sin, cos) = s.angle.sin_cos();
        Body {
            ux: cos,
            uy: sin,
            half,
            depth: half * BODY_ASPECT,
        }
    }

    fn area(&self) -> f64 {
        std::f64::consts::PI * self.half * self.depth
    }

    /// How deep `p` lies in the body centred at `c`: 0 at the centre, 1 on the outline.
    fn reach(&self, c: (f64, f64), p: [f32; 2]) -> f64 {
        let (dx, dy) = (p[0] as f64 - c.0, p[1] as f64 - c.1);
        let (along, across) = (dx * self.ux + dy * self.uy, dy * self.ux - dx * self.uy);
        (along / self.half).powi(2) + (across / self.depth).powi(2)
    }

    fn contains(&self, c: (f64, f64), p: [f32; 2]) -> bool {
        self.reach(c, p) <= 1.0
    }
}

/// Refines the division of a shared blob by fitting the fishes' silhouettes: the blob is the
/// union of the fish bodies, whichever is in front (a fish behind another is hidden only where
/// the front one is), so each body (a [`Body`] template at the track's heading) is moved to
/// where the union covers the blob's points best while lying inside the blob — every point
/// left uncovered and every `area_per_point` of body outside the blob cost one. Unlike the
/// centre of a fish's share of the points, the fitted centre is not pulled towards the part
/// of a fish that happens to be visible. Starts from `centres`; returns the fitted centres.
fn fit_silhouettes(
    points: &[[f32; 2]],
    area_per_point: f64,
    seeds: &[SplitSeed],
    centres: &[(f64, f64)],
) -> Vec<(f64, f64)> {
    let n = seeds.len();
    let mut fit: Vec<(f64, f64)> = centres.to_vec();
    let mut bodies: Vec<Body> = seeds.iter().map(|s| Body::new(s, 1.0)).collect();
    if points.is_empty() || !(area_per_point.is_finite() && area_per_point > 0.0) {
        return fit;
    }
    let mut covered_by_others = vec![0u8; points.len()];
    for _ in 0..FIT_ROUNDS {
        for k in 0..n {
            covered_by_others.iter_mut().for_each(|c| *c = 0);
            for j in (0..n).filter(|&j| j != k) {
                for (c, p) in covered_by_others.iter_mut().zip(points) {
                    *c |= bodies[j].contains(fit[j], *p) as u8;
                }
            }
            let free = covered_by_others.iter().filter(|&&c| c == 0).count() as f64;
            let bl = 2.0 * bodies[k].half.max(1.0);
            let start = (seeds[k].x, seeds[k].y);
            let len = seeds[k].length.max(1.0);
            let mut best = (f64::INFINITY, fit[k], bodies[k]);
            for &scale in &FIT_SCALES {
                let body = Body::new(&seeds[k], scale);
                let expected = body.area() / area_per_point;
                for &a in &FIT_ALONG_BL {
                    for &c in &FIT_ACROSS_BL {
                        let centre = (
                            fit[k].0 + (a * body.ux - c * body.uy) * len,
                            fit[k].1 + (a * body.uy + c * body.ux) * len,
                        );
                        let (mut inside, mut gained) = (0.0f64, 0.0f64);
                        for (p, &o) in points.iter().zip(&covered_by_others) {
                            if body.contains(centre, *p) {
                                inside += 1.0;
                                gained += (o == 0) as u8 as f64;
                            }
                        }
                        let moved = ((centre.0 - start.0).powi(2) + (centre.1 - start.1).powi(2))
                            .sqrt()
                            / (0.5 * bl);
                        let cost = (free - gained)
                            + (expected - inside).max(0.0)
                            + FIT_PRIOR_POINTS * moved * moved;
                        if cost < best.0 {
                            best = (cost, centre, body);
                        }
                    }
                }
            }
            fit[k] = best.1;
            bodies[k] = best.2;
        }
    }
    fit
}

/// Divides a shared blob's points between tracks, seeded at the tracks' predicted positions:
/// k-means in which each point goes to the track whose body (an ellipse along its axis, its
/// depth [`BODY_ASPECT`] of its length) it lies deepest in, so that a fish crossing another
/// keeps its whole body rather than the half nearer its own centre. Per seed, the centre of its
/// points and the fraction of points it got (a seed that gets no point keeps its position, with
/// fraction 0).
fn split_points(points: &[[f32; 2]], seeds: &[SplitSeed]) -> Vec<(f64, f64, f32)> {
    let mut centres: Vec<(f64, f64)> = seeds.iter().map(|s| (s.x, s.y)).collect();
    let bodies: Vec<Body> = seeds.iter().map(Body::typical).collect();
    let mut counts = vec![0usize; seeds.len()];
    for _ in 0..SPLIT_ITERATIONS {
        let mut sums = vec![(0.0f64, 0.0f64); centres.len()];
        counts.iter_mut().for_each(|c| *c = 0);
        for p in points {
            let (px, py) = (p[0] as f64, p[1] as f64);
            let best = centres
                .iter()
                .zip(&bodies)
                .enumerate()
                .map(|(k, (&c, b))| (k, b.reach(c, *p)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(0, |(k, _)| k);
            sums[best].0 += px;
            sums[best].1 += py;
            counts[best] += 1;
        }
        for (k, c) in centres.iter_mut().enumerate() {
            if counts[k] > 0 {
                *c = (sums[k].0 / counts[k] as f64, sums[k].1 / counts[k] as f64);
            }
        }
    }
    let total = points.len().max(1) as f32;
    centres
        .into_iter()
        .zip(counts)
        .map(|(c, n)| (c.0, c.1, n as f32 / total))
        .collect()
}

/// Points in the image, px.
type Centres = Vec<(f64, f64)>;

/// Divides a blob of `count` fish whose `points` hold tracks at `held` into `count` parts:
/// seeded by farthest points (the first the point farthest from the blob's centre), then
/// divided as a shared blob is ([`split_points`], bodies of `length` along the blob's axis
/// `angle`, so that fish side by side are told apart along their bodies). Each held track takes
/// its nearest part. Returns the held tracks' parts, in order, and the parts left over. The
/// held tracks' own positions do not seed it: one track on a blob of two fish sits at the
/// blob's centre, between them.
fn seed_parts(
    points: &[[f32; 2]],
    held: &[(f64, f64)],
    count: usize,
    angle: f64,
    length: f64,
) -> (Centres, Centres) {
    let d2 =
        |p: &[f32; 2], c: (f64, f64)| (p[0] as f64 - c.0).powi(2) + (p[1] as f64 - c.1).powi(2);
    if points.is_empty() || count == 0 {
        return (held.to_vec(), Vec::new());
    }
    let n = points.len() as f64;
    let mean = points.iter().fold((0.0, 0.0), |a, p| {
        (a.0 + p[0] as f64 / n, a.1 + p[1] as f64 / n)
    });
    let mut seeds: Vec<SplitSeed> = Vec::with_capacity(count);
    let mut near = vec![f64::INFINITY; points.len()];
    let mut from = mean;
    for k in 0..count {
        for (m, p) in near.iter_mut().zip(points) {
            // Distances from the blob's centre choose only the first seed.
            *m = if k == 1 {
                d2(p, from)
            } else {
                m.min(d2(p, from))
            };
        }
        let Some(far) = (0..points.len()).max_by(|&a, &b| near[a].total_cmp(&near[b])) else {
            break;
        };
        from = (points[far][0] as f64, points[far][1] as f64);
        seeds.push(SplitSeed {
            x: from.0,
            y: from.1,
            angle,
            length,
            area: 0.0,
        });
    }
    let mut parts: Vec<(f64, f64)> = split_points(points, &seeds)
        .into_iter()
        .map(|(x, y, _)| (x, y))
        .collect();
    let mut mine = Vec::with_capacity(held.len());
    for &h in held {
        let nearest = (0..parts.len()).min_by(|&a, &b| {
            let da = (parts[a].0 - h.0).powi(2) + (parts[a].1 - h.1).powi(2);
            let db = (parts[b].0 - h.0).powi(2) + (parts[b].1 - h.1).powi(2);
            da.total_cmp(&db)
        });
        mine.push(nearest.map_or(h, |k| parts.swap_remove(k)));
    }
    (mine, parts)
}

/// Whether the point lies in the box `[left, top, right, bottom]` (edges included).
fn in_box(p: (f64, f64), b: [f32; 4]) -> bool {
    (b[0] as f64..=b[2] as f64).contains(&p.0) && (b[1] as f64..=b[3] as f64).contains(&p.1)
}

/// The point moved to the nearest point of the box `[left, top, right, bottom]`.
fn clamp_to_box(p: (f64, f64), b: [f32; 4]) -> (f64, f64) {
    (
        p.0.clamp(b[0] as f64, (b[2] as f64).max(b[0] as f64)),
        p.1.clamp(b[1] as f64, (b[3] as f64).max(b[1] as f64)),
    )
}

/// Distance from the point to the box `[left, top, right, bottom]` (0 inside it).
fn dist_to_box(p: (f64, f64), b: [f32; 4]) -> f64 {
    let c = clamp_to_box(p, b);
    ((c.0 - p.0).powi(2) + (c.1 - p.1).powi(2)).sqrt()
}

/// Overlap of two boxes `[left, top, right, bottom]`: their intersection over the smaller's
/// area (0 when either is empty).
fn box_overlap(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |x: [f32; 4]| (x[2] - x[0]).max(0.0) * (x[3] - x[1]).max(0.0);
    let smaller = area(a).min(area(b));
    if smaller > 0.0 { w * h / smaller } else { 0.0 }
}

fn dist(a: (f64, f64), d: &Detection) -> f64 {
    ((a.0 - d.x as f64).powi(2) + (a.1 - d.y as f64).powi(2)).sqrt()
}

/// Difference of two angles wrapped to (-π, π].
fn angle_diff(a: f32, b: f32) -> f32 {
    let mut d = (a - b) % std::f32::consts::TAU;
    if d > std::f32::consts::PI {
        d -= std::f32::consts::TAU;
    } else if d <= -std::f32::consts::PI {
        d += std::f32::consts::TAU;
    }
    d
}

impl Tracker {
    /// A tracker; `population` is the tank's known number of fish (None: open population).
    /// `view` sets the view-dependent settings `cfg` leaves unset (`Auto`: the top view's
    /// until [`Tracker::set_view`]).
    pub fn new(cfg: &TrackConfig, view: CameraView, population: Option<u32>) -> Tracker {
        let mut tracker = Tracker {
            share_ratio: 0.0,
            split_apart: 0.0,
            fit_bodies: false,
            cfg: cfg.clone(),
            population: population.filter(|&p| p > 0),
            tracks: Vec::new(),
            next_id: 1,
            last_t: None,
            frames: 0,
            visible: 0,
        };
        tracker.set_view(view);
        tracker
    }

    /// Switches the view-dependent settings to `view`'s (those `cfg` leaves unset), from the
    /// next frame on; tracks are kept.
    pub fn set_view(&mut self, view: CameraView) {
        (self.share_ratio, self.split_apart) = self.cfg.for_view(view);
        self.fit_bodies = view == CameraView::Side;
    }

    /// Number of fish in view in the last frame, by the tracker's account: confirmed tracks
    /// matched to a detection (touching fish counted per track), confirmed tracks that lost
    /// their detection less than a second ago on another fish's blob (hidden behind it), plus
    /// tentative ones while the population is not complete; at most the population. More robust than summing
    /// `Detection::fish_count`, which cannot tell a large fish from two small touching ones.
    pub fn visible_fish(&self) -> u32 {
        self.visible
    }

    /// Number of confirmed tracks (matched, coasting or dormant).
    pub fn confirmed_count(&self) -> usize {
        self.tracks.iter().filter(|t| t.confirmed).count()
    }

    fn gate(&self, t: &Track) -> f64 {
        let base = match self.cfg.gate_px {
            Some(g) => g as f64,
            None => (self.cfg.gate_body_lengths * t.body_length) as f64,
        };
        base + (2.0 * t.motion.position_sigma()).min(2.0 * base)
    }

    /// Numbers new tracks from `first` on (or on from the last, if higher): a resumed
    /// recording's track ids follow the ones its rows already use.
    pub fn number_tracks_from(&mut self, first: u64) {
        self.next_id = self.next_id.max(first);
    }

    /// Continues, at stream time `t`, the tracks of the last frame a resumed recording's
    /// output folder has (see `output::checkpoint`): each seed becomes a confirmed track with
    /// its id, centre, velocity and body, as if matched at `t`, so the fish are followed across
    /// the restart as across any frame. Start-up rules (doubles at stream start, quick
    /// confirmation) do not apply: the stream did not start here. Call before the first frame.
    pub fn resume(&mut self, seeds: &[TrackSeed], t: f64) {
        if !t.is_finite() || self.last_t.is_some() {
            return;
        }
        for s in seeds {
            if self.tracks.iter().any(|tr| tr.id == s.track) || s.track == 0 {
                continue;
            }
            let bl = s.body_length.max(1.0);
            let d = Detection {
                x: s.x,
                y: s.y,
                bbox: s.bbox,
                area: s.area,
                axis_angle: s.heading,
                major_axis: bl,
                minor_axis: bl * BODY_ASPECT as f32,
                length: bl,
                fish_count: 1,
                crop: None,
                points: Vec::new(),
            };
            let numbered = self.next_id;
            let mut tr = self.new_track(&d, t, true);
            self.next_id = numbered;
            tr.id = s.track;
            tr.hits = 2 * self.cfg.min_hits;
            tr.heading = s.heading;
            tr.motion.set_velocity(f64::from(s.vx), f64::from(s.vy));
            // Side view: a blob continuing the one it shared keeps a slot for each of them.
            tr.shared_box = s
                .shared_box
                .filter(|b| self.fit_bodies && b.iter().all(|v| v.is_finite()));
            self.tracks.push(tr);
            self.next_id = self.next_id.max(s.track.saturating_add(1));
        }
        self.last_t = Some(t);
        self.frames = self
            .frames
            .max(u64::from(START_UP_CHECK_HITS) * u64::from(self.cfg.min_hits) + 1);
    }

    fn new_track(&mut self, d: &Detection, t: f64, confirmed: bool) -> Track {
        let bl = d.major_axis.max(1.0);
        let id = self.next_id;
        self.next_id += 1;
        Track {
            id,
            motion: MotionState::new(
                d.x as f64,
                d.y as f64,
                (self.cfg.measurement_noise * bl) as f64,
                (5.0 * bl) as f64,
            ),
            hits: 1,
            confirmed,
            last_seen: t,
            body_length: bl,
            length: bl,
            heading: d.axis_angle,
            box_offsets: [
                d.x - d.bbox[0],
                d.y - d.bbox[1],
                d.bbox[2] - d.x,
                d.bbox[3] - d.y,
            ],
            dormant: false,
            matched: None,
            part: None,
            shown: None,
            shared_box: None,
            shared_s: 0.0,
            area: d.area,
        }
    }

    /// Gated optimal assignment of the tracks `rows` (track indices, with their `gates`) to
    /// the free detection slots `free` by distance to the tracks' predicted centres. Returns
    /// `(track index, slot)` per match.
    fn assign_to_slots(
        &self,
        rows: &[usize],
        gates: &[f64],
        free: &[usize],
        detections: &[Detection],
        slots: &[usize],
    ) -> Vec<(usize, usize)> {
        let preds: Vec<(f64, f64)> = rows
            .iter()
            .map(|&r| self.tracks[r].motion.position())
            .collect();
        let assign = gated_assignment(
            rows.len(),
            free.len(),
            |r, c| Some(dist(preds[r], &detections[slots[free[c]]])),
            gates,
        );
        assign
            .into_iter()
            .enumerate()
            .filter_map(|(ri, a)| a.map(|c| (rows[ri], free[c])))
            .collect()
    }

    /// Stage 3: population full → left-over detections re-link to lost/dormant tracks.
    fn relink_leftovers(
        &mut self,
        detections: &[Detection],
        slots: &[usize],
        slot_used: &mut [bool],
        det_used: &mut [bool],
    ) {
        if let Some(n) = self.population
            && self.confirmed_count() >= n as usize
        {
            let rows: Vec<usize> = (0..self.tracks.len())
                .filter(|&i| self.tracks[i].confirmed && self.tracks[i].matched.is_none())
                .collect();
            let free: Vec<usize> = (0..slots.len())
                .filter(|&s| !slot_used[s] && !det_used[slots[s]])
                .collect();
            if !rows.is_empty() && !free.is_empty() {
                let gates: Vec<f64> = rows
                    .iter()
                    .map(|&r| {
                        let tr = &self.tracks[r];
                        if tr.dormant {
                            1e6
                        } else {
                            let base = (self.cfg.relink_body_lengths * tr.body_length) as f64;
                            base + (2.0 * tr.motion.position_sigma()).min(base)
                        }
                    })
                    .collect();
                let matches = self.assign_to_slots(&rows, &gates, &free, detections, slots);
                for (ti, s) in matches {
                    slot_used[s] = true;
                    det_used[slots[s]] = true;
                    let normal_gate = self.gate(&self.tracks[ti]);
                    let tr = &mut self.tracks[ti];
                    tr.matched = Some(slots[s]);
                    let d = &detections[slots[s]];
                    if tr.dormant || dist(tr.motion.position(), d) > normal_gate {
                        // Far from the prediction: restart the motion model there.
                        let bl = tr.body_length;
                        tr.motion = MotionState::new(
                            d.x as f64,
                            d.y as f64,
                            (self.cfg.measurement_noise * bl) as f64,
                            (5.0 * bl) as f64,
                        );
                    }
                    tr.dormant = false;
                }
            }
        }
    }

    /// While a known population is not complete, a blob the detector counts as k ≥ 2 fish
    /// (and gives pixel positions of) that fewer than k tracks hold starts new tracks for the
    /// fish missing on it — fish that overlapped from the start of the stream, or since before
    /// any of them was seen apart, would otherwise get one track until they part. Each new
    /// track starts at one part of a division of the blob's points ([`seed_parts`]) and is
    /// treated like any new track (confirmed at once at stream start, else it proves itself
    /// holding the blob's spare slot); the tracks already on the blob restart at their parts.
    /// Never more tracks than the population has room for, and none on a blob within the gate
    /// of a confirmed track lost this frame (it may be one of the blob's fish).
    /// Returns the blob of each track started.
    fn start_missing_fish(
        &mut self,
        t: f64,
        start_up: bool,
        detections: &[Detection],
    ) -> Vec<usize> {
        let mut on_blob = Vec::new();
        let Some(n) = self.population else {
            return on_blob;
        };
        // Blobs already held by several tracks first: they are known to hold several fish,
        // while a blob of one track counted as two may be one large fish (side views: a fish
        // near the glass looks twice the typical size, but keeps a fish's shape). Then the
        // blobs least like one body: whose depth for their length differs most from that of
        // the frame's single fish (fish overlapping side by side are deeper, end to end longer).
        let aspect = |d: &Detection| {
            let r = d.minor_axis / d.major_axis;
            if r.is_finite() && r > 0.0 { r } else { 0.0 }
        };
        let mut singles: Vec<f32> = detections
            .iter()
            .filter(|d| d.fish_count == 1)
            .map(aspect)
            .filter(|&r| r > 0.0)
            .collect();
        singles.sort_by(f32::total_cmp);
        let typical = singles
            .get(singles.len() / 2)
            .copied()
            .unwrap_or(BODY_ASPECT as f32);
        let unlike = |d: &Detection| match aspect(d) {
            r if r > 0.0 => (r / typical).ln().abs(),
            _ => 0.0,
        };
        let held = |i: usize| {
            self.tracks
                .iter()
                .filter(|tr| tr.matched == Some(i))
                .count()
        };
        let mut order: Vec<(usize, usize)> = (0..detections.len()).map(|i| (i, held(i))).collect();
        order.sort_by(|&(a, ha), &(b, hb)| {
            hb.cmp(&ha)
                .then(unlike(&detections[b]).total_cmp(&unlike(&detections[a])))
                .then(a.cmp(&b))
        });
        let mut started = 0usize;
        for (i, _) in order {
            let d = &detections[i];
            let room = (n as usize).saturating_sub(self.confirmed_count() + started);
            let count = d.fish_count.clamp(1, 50) as usize;
            if room == 0 || count < 2 || d.points.is_empty() {
                continue;
            }
            // A confirmed track lost within its gate of the blob may be one of its fish.
            let lost_near = self.tracks.iter().any(|tr| {
                tr.confirmed
                    && !tr.dormant
                    && tr.matched.is_none()
                    && dist_to_box(tr.motion.position(), d.bbox) <= self.gate(tr)
            });
            if lost_near {
                continue;
            }
            let members: Vec<usize> = (0..self.tracks.len())
                .filter(|&k| self.tracks[k].matched == Some(i))
                .collect();
            let extra = count.saturating_sub(members.len()).min(room);
            if members.is_empty() || extra == 0 {
                continue;
            }
            let on: Vec<(f64, f64)> = members
                .iter()
                .map(|&k| clamp_to_box(self.tracks[k].motion.position(), d.bbox))
                .collect();
            let body_length = members
                .iter()
                .map(|&k| self.tracks[k].body_length / members.len() as f32)
                .sum::<f32>();
            let (mine, new) = seed_parts(
                &d.points,
                &on,
                count,
                d.axis_angle as f64,
                body_length as f64,
            );
            // The tracks on it restart at their parts (what they learned from the blob's centre
            // lies between the fish), and the size they learned from the blob as if it were one
            // fish is cut to a fish's share.
            let share = d.area / count as f32;
            let noise = self.cfg.measurement_noise;
            for (&k, (x, y)) in members.iter().zip(mine) {
                let tr = &mut self.tracks[k];
                tr.area = tr.area.min(share);
                let bl = tr.body_length as f64;
                tr.motion = MotionState::new(x, y, noise as f64 * bl, 5.0 * bl);
            }
            for (x, y) in new.into_iter().take(extra) {
                let (x, y) = (x as f32, y as f32);
                let (half, depth) = (body_length / 2.0, BODY_ASPECT as f32 * body_length / 2.0);
                let part = Detection {
                    x,
                    y,
                    bbox: [x - half, y - depth, x + half, y + depth],
                    area: share,
                    major_axis: body_length,
                    fish_count: 1,
                    crop: None,
                    points: Vec::new(),
                    ..*d
                };
                let confirmed = start_up && self.confirmed_count() < n as usize;
                let mut tr = self.new_track(&part, t, confirmed);
                started += usize::from(!confirmed);
                tr.matched = Some(i);
                tracing::debug!(
                    track = tr.id,
                    fish = count,
                    "track: a blob of several fish holds fewer tracks; started one for a missing fish"
                );
                self.tracks.push(tr);
                on_blob.push(i);
            }
        }
        on_blob
    }

    /// Tracks started at stream start are confirmed at once, unproven: one fish seen in two
    /// pieces in the first frame (a plant or a stem in front of it) gets two. Within the first
    /// [`START_UP_CHECK_HITS`] × `min_hits` frames, tracks that share a blob the detector
    /// counts as one fish are taken for one fish: only the one nearest its centre is kept, the
    /// others are removed at once (their ids are never reported again), so that a fish of a
    /// known population is not kept out by a double of another.
    fn drop_start_up_doubles(&mut self, detections: &[Detection]) {
        if self.frames > START_UP_CHECK_HITS as u64 * self.cfg.min_hits as u64 {
            return;
        }
        let mut doubles = false;
        for (di, d) in detections.iter().enumerate() {
            if d.fish_count != 1 {
                continue;
            }
            let on: Vec<usize> = (0..self.tracks.len())
                .filter(|&i| self.tracks[i].matched == Some(di))
                .collect();
            let Some(&keep) = on.iter().min_by(|&&a, &&b| {
                dist(self.tracks[a].motion.position(), d)
                    .total_cmp(&dist(self.tracks[b].motion.position(), d))
            }) else {
                continue;
            };
            let kept = self.tracks[keep].id;
            for &i in on.iter().filter(|&&i| i != keep) {
                let tr = &mut self.tracks[i];
                tracing::debug!(
                    track = tr.id,
                    kept,
                    "track: two tracks started at stream start share one fish's blob; removed one"
                );
                tr.matched = None;
                tr.id = 0;
                doubles = true;
            }
        }
        if doubles {
            // No per-track state of this frame is held by position yet.
            self.tracks.retain(|tr| tr.id != 0);
        }
    }

    /// Side view, open population: counts, per track, the time it shares blobs it adds nothing
    /// to (`SHARE_EVIDENCE`, `SHARE_EXPLAINED`; `Track::shared_s`), and ends the track of such
    /// a blob that fits it worst once it has done so for longer than `max_shared_s` (one per
    /// blob and frame; its id is never reported again). `sharers` (tracks per detection) is
    /// kept up to date. A top view shares a blob only when it is 0.8 of the sum (fish do not
    /// hide behind each other there) and counts nothing: fish resting in contact would lose
    /// their tracks. A known population counts nothing either (see `TrackConfig::max_shared_s`).
    fn end_long_shares(&mut self, dt: f64, detections: &[Detection], sharers: &mut [u32]) {
        if !self.fit_bodies || self.population.is_some() {
            return;
        }
        let mut held = vec![0.0f32; detections.len()];
        for tr in &self.tracks {
            if let Some(di) = tr.matched {
                held[di] += tr.area;
            }
        }
        for tr in &mut self.tracks {
            match tr.matched {
                Some(di) if sharers[di] >= 2 => {
                    let area = detections[di].area;
                    if area < SHARE_EVIDENCE * held[di]
                        && area <= SHARE_EXPLAINED * (held[di] - tr.area)
                    {
                        tr.shared_s += dt;
                    }
                }
                // A blob of its own counts the time back down: a track on a fish that a plant
                // cuts in two now and then holds one piece to itself.
                Some(_) => tr.shared_s = (tr.shared_s - dt).max(0.0),
                None => {}
            }
        }
        let max = self.cfg.max_shared_s;
        let mut ended = false;
        for (di, d) in detections.iter().enumerate() {
            if sharers[di] < 2 {
                continue;
            }
            // Its own area furthest from the blob's: not the fish the blob shows.
            let misfit = |tr: &Track| (d.area.max(1.0) / tr.area.max(1.0)).ln().abs();
            let worst = (0..self.tracks.len())
                .filter(|&i| {
                    let tr = &self.tracks[i];
                    tr.matched == Some(di) && tr.confirmed && tr.shared_s > max
                })
                .max_by(|&a, &b| misfit(&self.tracks[a]).total_cmp(&misfit(&self.tracks[b])));
            if let Some(i) = worst {
                let tr = &mut self.tracks[i];
                tracing::debug!(
                    track = tr.id,
                    shared_s = tr.shared_s,
                    "track: shared blobs it adds nothing to for too long; ended"
                );
                tr.matched = None;
                tr.id = 0;
                sharers[di] -= 1;
                ended = true;
            }
        }
        if ended {
            // No per-track state of this frame is held by position yet.
            self.tracks.retain(|tr| tr.id != 0);
        }
    }

    /// Processes one frame's detections at stream time `t` (seconds) and returns every
    /// track's state (confirmed, tentative and coasting; dormant tracks are not reported).
    pub fn update(&mut self, t: f64, detections: &[Detection]) -> Vec<TrackReport> {
        let t = if t.is_finite() {
            t
        } else {
            self.last_t.map_or(0.0, |l| l + self.cfg.frame_interval_s)
        };
        let dt = match self.last_t {
            Some(l) if t > l => t - l,
            Some(_) => self.cfg.frame_interval_s,
            None => 0.0,
        };
        // A stream restarted (time went backwards): treat as the next frame.
        let t = match self.last_t {
            Some(l) if t <= l => l + self.cfg.frame_interval_s,
            _ => t,
        };
        self.last_t = Some(t);
        self.frames += 1;

        for tr in &mut self.tracks {
            tr.matched = None;
            (tr.part, tr.shown) = (None, None);
            if !tr.dormant && dt > 0.0 {
                tr.motion
                    .predict(dt, (self.cfg.accel_noise * tr.body_length) as f64);
            }
        }

        // Detection slots: a touching blob of k fish can take k tracks. Side view: a blob that
        // continues one several tracks shared in the last frame (boxes overlapping by half)
        // keeps a slot for each of them, although the detector counts it as one fish by its
        // shape: two fish swimming one almost exactly behind the other look like one large
        // fish near the glass (BENCHMARKS.md round 13).
        let continued = |d: &Detection| {
            self.tracks
                .iter()
                .filter(|tr| {
                    tr.confirmed
                        && tr
                            .shared_box
                            .is_some_and(|b| box_overlap(b, d.bbox) >= CONTINUED_OVERLAP)
                })
                .count()
        };
        let slots: Vec<usize> = detections
            .iter()
            .enumerate()
            .filter(|(_, d)| d.x.is_finite() && d.y.is_finite())
            .flat_map(|(i, d)| {
                let k = (d.fish_count as usize).max(continued(d)).clamp(1, 50);
                std::iter::repeat_n(i, k)
            })
            .collect();
        let mut slot_used = vec![false; slots.len()];
        let mut det_used = vec![false; detections.len()];

        // Stage 1: confirmed (incl. coasting) tracks; stage 2: tentative tracks.
        for stage in 0..2 {
            let rows: Vec<usize> = (0..self.tracks.len())
                .filter(|&i| {
                    let tr = &self.tracks[i];
                    !tr.dormant && tr.confirmed == (stage == 0)
                })
                .collect();
            let free: Vec<usize> = (0..slots.len()).filter(|&s| !slot_used[s]).collect();
            let gates: Vec<f64> = rows.iter().map(|&r| self.gate(&self.tracks[r])).collect();
            let matches = self.assign_to_slots(&rows, &gates, &free, detections, &slots);
            for (ti, s) in matches {
                slot_used[s] = true;
                det_used[slots[s]] = true;
                self.tracks[ti].matched = Some(slots[s]);
            }
        }

        self.relink_leftovers(detections, &slots, &mut slot_used, &mut det_used);

        // A blob flagged as several fish by its area may be one large fish: the tracks that
        // took its slots must fit in it together, else the farthest give it up (and coast).
        let share_ratio = self.share_ratio;
        for (di, d) in detections.iter().enumerate() {
            let mut on: Vec<usize> = (0..self.tracks.len())
                .filter(|&i| self.tracks[i].matched == Some(di))
                .collect();
            if on.len() < 2 {
                continue;
            }
            on.sort_by(|&a, &b| {
                dist(self.tracks[a].motion.position(), d)
                    .total_cmp(&dist(self.tracks[b].motion.position(), d))
            });
            while on.len() >= 2 {
                let sum: f32 = on.iter().map(|&i| self.tracks[i].area).sum();
                if d.area >= share_ratio * sum {
                    break;
                }
                if let Some(i) = on.pop() {
                    self.tracks[i].matched = None;
                }
            }
        }

        // Stage 4: a confirmed track left over may share a detection already taken when that
        // blob is large enough for all of them (touching fish the detector counted as fewer).
        let mut on_det: Vec<f32> = vec![0.0; detections.len()];
        for tr in &self.tracks {
            if let Some(di) = tr.matched {
                on_det[di] += tr.area;
            }
        }
        let fit_bodies = self.fit_bodies;
        for i in 0..self.tracks.len() {
            let tr = &self.tracks[i];
            if !tr.confirmed || tr.dormant || tr.matched.is_some() {
                continue;
            }
            let gate = self.gate(tr);
            let pos = tr.motion.position();
            let best = detections
                .iter()
                .enumerate()
                .filter(|&(di, d)| {
                    on_det[di] > 0.0 && d.area >= share_ratio * (on_det[di] + tr.area)
                })
                .map(|(di, d)| {
                    // Side view: distance to the blob's box, not its centre, which lies a body
                    // length or more from the fish at the ends of a blob of two or three fish
                    // swimming together (BENCHMARKS.md round 10; top views keep the centre).
                    if fit_bodies {
                        (di, dist_to_box(pos, d.bbox))
                    } else {
                        (di, dist(pos, d))
                    }
                })
                .filter(|&(_, dd)| dd <= gate)
                .min_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((di, _)) = best {
                on_det[di] += self.tracks[i].area;
                self.tracks[i].matched = Some(di);
            }
        }
        self.drop_start_up_doubles(detections);
        let mut sharers = vec![0u32; detections.len()];
        for tr in &self.tracks {
            if let Some(di) = tr.matched {
                sharers[di] += 1;
            }
        }
        self.end_long_shares(dt, detections, &mut sharers);
        for tr in &mut self.tracks {
            tr.shared_box = tr
                .matched
                .filter(|&di| fit_bodies && sharers[di] >= 2)
                .and_then(|di| detections.get(di))
                .map(|d| d.bbox);
        }

        // Shared blobs with pixel positions: divide them between their tracks (`Track::part`,
        // `Track::shown`; kept on the tracks, as tracks are added and removed below).
        for (di, d) in detections.iter().enumerate() {
            if sharers[di] < 2 || d.points.is_empty() {
                continue;
            }
            let members: Vec<usize> = (0..self.tracks.len())
                .filter(|&i| self.tracks[i].matched == Some(di))
                .collect();
            let seeds: Vec<SplitSeed> = members
                .iter()
                .map(|&i| {
                    let tr = &self.tracks[i];
                    let (x, y) = clamp_to_box(tr.motion.position(), d.bbox);
                    SplitSeed {
                        x,
                        y,
                        angle: tr.heading as f64,
                        length: tr.body_length as f64,
                        area: tr.area as f64,
                    }
                })
                .collect();
            let mut parts = split_points(&d.points, &seeds);
            if self.fit_bodies {
                let centres: Vec<(f64, f64)> = parts.iter().map(|p| (p.0, p.1)).collect();
                let area_per_point = d.area as f64 / d.points.len() as f64;
                let fitted = fit_silhouettes(&d.points, area_per_point, &seeds, &centres);
                for (p, c) in parts.iter_mut().zip(fitted) {
                    (p.0, p.1) = c;
                }
            }
            for (k, &(cx, cy, frac)) in parts.iter().enumerate() {
                // Trusted only when the parts lie apart (fish side by side or end to end);
                // fish crossing over each other give parts near the crossing point, where
                // the predictions are the better guess.
                let apart = parts
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != k)
                    .map(|(_, p)| ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt())
                    .fold(f64::INFINITY, f64::min);
                let need = self.split_apart as f64;
                let bl = self.tracks[members[k]].body_length as f64;
                if frac > 0.0 && apart >= need * bl {
                    self.tracks[members[k]].part = Some((cx, cy, frac));
                } else if frac > 0.0 && self.fit_bodies {
                    self.tracks[members[k]].shown = Some((cx, cy));
                }
            }
        }

        // A blob that one track has to itself while every fish of a known population is
        // tracked and no lost track lies on it holds that fish alone, whatever its area says
        // (side views: a fish near the glass is twice the typical area). Used for the
        // reported length only.
        let all_tracked = self
            .population
            .is_some_and(|n| self.confirmed_count() >= n as usize);
        let alone: Vec<bool> = detections
            .iter()
            .enumerate()
            .map(|(di, d)| {
                all_tracked
                    && sharers[di] == 1
                    && !self.tracks.iter().any(|tr| {
                        tr.confirmed
                            && !tr.dormant
                            && tr.matched.is_none()
                            && in_box(tr.motion.position(), d.bbox)
                    })
            })
            .collect();

        // Apply matches.
        let decay = (-dt / COAST_VELOCITY_DECAY_S).exp();
        let meas_noise = self.cfg.measurement_noise;
        for tr in self.tracks.iter_mut() {
            let Some(di) = tr.matched else { continue };
            let d = &detections[di];
            if sharers[di] >= 2 {
                // A shared blob: learn no size or heading from it.
                if let Some((cx, cy, _)) = tr.part {
                    // Its part of the blob: a coarser measurement than a blob of its own.
                    tr.motion
                        .update(cx, cy, (SHARED_MEASUREMENT_BL * tr.body_length) as f64);
                } else if !self.fit_bodies {
                    // Top view: the blob's centroid is none of the fish. Keep the prediction,
                    // slowed down (fish in contact rarely keep their speed) and pulled inside
                    // the blob's box. A side view keeps it as it is: fish overlap at different
                    // depths and pass (slowing one, or pulling it into the blob, swaps them).
                    tr.motion.damp_velocity(decay);
                    let (px, py) = tr.motion.position();
                    let (cx, cy) = clamp_to_box((px, py), d.bbox);
                    if cx != px || cy != py {
                        tr.motion.update(cx, cy, (0.25 * tr.body_length) as f64);
                    }
                } else if let Some((sx, sy)) = tr.shown {
                    // Side view, parts too close to trust: the track keeps its speed, but is
                    // drawn weakly (one body length of noise) towards its fitted part, so that
                    // fish swimming together in one blob keep their tracks on it.
                    tr.motion
                        .update(sx, sy, (SHOWN_MEASUREMENT_BL * tr.body_length) as f64);
                }
                tr.hits = tr.hits.saturating_add(1);
                tr.last_seen = t;
                tr.dormant = false;
                continue;
            }
            tr.motion
                .update(d.x as f64, d.y as f64, (meas_noise * tr.body_length) as f64);
            // A blob of its own: its area is this fish's (unless the blob is far larger, i.e.
            // an untracked fish touches it).
            let own =
                d.area.is_finite() && d.area > 0.0 && (d.fish_count == 1 || d.area < 1.5 * tr.area);
            if own {
                tr.area += 0.1 * (d.area - tr.area);
            }
            tr.hits = tr.hits.saturating_add(1);
            tr.last_seen = t;
            tr.dormant = false;
            if d.fish_count == 1 && d.major_axis.is_finite() && d.major_axis > 0.0 {
                tr.body_length += 0.1 * (d.major_axis - tr.body_length);
            }
            // The reported length is what the fish shows broadside: it looks shorter while it
            // turns towards the camera or bends, so that estimate rises quickly and falls
            // slowly (the matching gates keep following the length as it looks now). It is
            // learned from blobs of its own, including a large fish the detector counts as
            // two by area while it is alone on its blob.
            let shown = if d.length > 0.0 && d.length.is_finite() {
                d.length
            } else {
                d.major_axis
            };
            if (own || alone[di]) && shown.is_finite() && shown > 0.0 {
                let rate = if shown > tr.length {
                    LENGTH_RISE
                } else {
                    LENGTH_FALL
                };
                tr.length += rate * (shown - tr.length);
            }
            tr.box_offsets = [
                d.x - d.bbox[0],
                d.y - d.bbox[1],
                d.bbox[2] - d.x,
                d.bbox[3] - d.y,
            ];
            let (vx, vy) = tr.motion.velocity();
            let speed = (vx * vx + vy * vy).sqrt() as f32;
            if speed > 0.5 * tr.body_length {
                tr.heading = (vy as f32).atan2(vx as f32);
            } else if d.fish_count == 1 {
                // Body axis, the end closer to the previous heading.
                let a = d.axis_angle;
                let b = a + std::f32::consts::PI;
                tr.heading = if angle_diff(a, tr.heading).abs() <= angle_diff(b, tr.heading).abs() {
                    a
                } else {
                    angle_diff(b, 0.0)
                };
            }
        }

        // Unmatched tracks: tentative ones die, confirmed ones coast, then die or sleep.
        let keep_dormant = self.population.is_some() && self.cfg.keep_lost_with_population;
        let max_coast = self.cfg.max_coast_s;
        self.tracks.retain_mut(|tr| {
            if tr.matched.is_some() {
                return true;
            }
            if !tr.confirmed {
                return false;
            }
            // Fish stop and turn: a coasting prediction slows down rather than drifting away.
            tr.motion.damp_velocity(decay);
            if t - tr.last_seen > max_coast {
                if keep_dormant {
                    if !tr.dormant {
                        tr.dormant = true;
                        tr.motion.stop();
                    }
                    return true;
                }
                return false;
            }
            true
        });

        // New tentative tracks from unmatched detections (confirmed at once at stream start).
        let start_up = self.frames <= self.cfg.min_hits as u64;
        for (i, d) in detections.iter().enumerate() {
            if det_used[i] || !(d.x.is_finite() && d.y.is_finite()) {
                continue;
            }
            let room = self
                .population
                .is_none_or(|n| self.confirmed_count() < n as usize);
            let mut tr = self.new_track(d, t, start_up && room);
            tr.matched = Some(i);
            self.tracks.push(tr);
        }
        // Tracks started for missing fish share their blob from this frame on (their rows
        // show their parts, not the blob's centre).
        for di in self.start_missing_fish(t, start_up, detections) {
            sharers[di] = self
                .tracks
                .iter()
                .filter(|tr| tr.matched == Some(di))
                .count() as u32;
        }

        // Promotions.
        for i in 0..self.tracks.len() {
            let tr = &self.tracks[i];
            if tr.confirmed || tr.hits < self.cfg.min_hits {
                continue;
            }
            let room = self
                .population
                .is_none_or(|n| self.confirmed_count() < n as usize);
            if room {
                self.tracks[i].confirmed = true;
                continue;
            }
            // Population full: take over the nearest lost (unmatched) track's id — or, once it
            // has proven itself twice as long, the id of a track that only shares a blob with
            // others (two tracks on one fish while this fish had none).
            let pos = tr.motion.position();
            let proven = tr.hits >= 2 * self.cfg.min_hits;
            let victim = (0..self.tracks.len())
                .filter(|&j| {
                    let v = &self.tracks[j];
                    // id 0: already taken over by another new track this frame.
                    v.confirmed
                        && v.id != 0
                        && match v.matched {
                            None => true,
                            Some(di) => proven && sharers.get(di).is_some_and(|&n| n >= 2),
                        }
                })
                .min_by(|&a, &b| {
                    let da = self.tracks[a].motion.position();
                    let db = self.tracks[b].motion.position();
                    let fa = (da.0 - pos.0).powi(2) + (da.1 - pos.1).powi(2);
                    let fb = (db.0 - pos.0).powi(2) + (db.1 - pos.1).powi(2);
                    fa.total_cmp(&fb)
                });
            if let Some(j) = victim {
                let old = self.tracks[j].id;
                let hits = self.tracks[j].hits;
                let tr = &mut self.tracks[i];
                tracing::debug!(
                    track = old,
                    replaced = tr.id,
                    "track: re-linked a lost track to a new one"
                );
                tr.id = old;
                tr.confirmed = true;
                tr.hits = tr.hits.saturating_add(hits);
                self.tracks[j].id = 0; // mark for removal
            }
            // Otherwise it stays tentative (an extra detection while all N fish are tracked),
            // its hits counting on towards taking over a shared track's id.
        }
        self.tracks.retain(|tr| tr.id != 0);

        // Fish visible now: matched confirmed tracks, plus matched tentative ones while the
        // population is not known to be complete.
        let full = self
            .population
            .is_some_and(|n| self.confirmed_count() >= n as usize);
        // A confirmed track that lost its detection within the last second while its prediction
        // lies on another fish's blob is a fish hidden (partly) behind that one: still in view.
        let hidden_behind = |tr: &Track| {
            tr.confirmed
                && !tr.dormant
                && t - tr.last_seen <= OCCLUDED_IN_VIEW_S
                && detections
                    .iter()
                    .enumerate()
                    .any(|(di, d)| sharers[di] > 0 && in_box(tr.motion.position(), d.bbox))
        };
        let seen = self
            .tracks
            .iter()
            .filter(|tr| match tr.matched {
                Some(_) => tr.confirmed || !full,
                None => hidden_behind(tr),
            })
            .count() as u32;
        self.visible = match self.population {
            Some(n) => seen.min(n),
            None => seen,
        };

        self.tracks
            .iter()
            .filter(|tr| !tr.dormant)
            .map(|tr| {
                let (x, y) = tr.motion.position();
                let (x, y, area) = match tr.matched {
                    Some(di) if sharers[di] >= 2 && tr.part.is_some() => {
                        let frac = tr.part.map_or(0.0, |s| s.2);
                        (x as f32, y as f32, frac * detections[di].area)
                    }
                    Some(di) if sharers[di] >= 2 => {
                        let (cx, cy) = tr
                            .shown
                            .unwrap_or_else(|| clamp_to_box((x, y), detections[di].bbox));
                        (cx as f32, cy as f32, detections[di].area)
                    }
                    Some(di) => (detections[di].x, detections[di].y, detections[di].area),
                    None => (x as f32, y as f32, 0.0),
                };
                let status = match (tr.confirmed, tr.matched.is_some()) {
                    (false, _) => TrackStatus::Tentative,
                    (true, true) => TrackStatus::Confirmed,
                    (true, false) => TrackStatus::Lost,
                };
                let o = tr.box_offsets;
                TrackReport {
                    track: tr.id,
                    individual: None,
                    status,
                    x,
                    y,
                    bbox: [x - o[0], y - o[1], x + o[2], y + o[3]],
                    heading: tr.heading,
                    area,
                    detection: tr.matched,
                    body_length: tr.length,
                    fish_area: tr.area,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;

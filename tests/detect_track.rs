//! Detect + track on the real FastTrack recording of 14 juvenile zebrafish, scored against its
//! ground truth: built-in defaults, population 14, 10 px match gate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use finprint::detect::{DetectConfig, Detector};
use finprint::messages::{Frame, PixelLayout, TrackStatus};
use finprint::track::{TrackConfig, Tracker};
use pathfinding::matrix::Matrix;
use pathfinding::prelude::kuhn_munkres_min;

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/fasttrack-zebrafish14"
);
const GATE: f32 = 10.0;
const FPS: f64 = 25.0;

/// Ground truth per frame: (id, x, y).
fn ground_truth() -> HashMap<u64, Vec<(u64, f32, f32)>> {
    let text = std::fs::read_to_string(format!("{DATA}/tracking.txt")).expect("read tracking.txt");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("column {name}"))
    };
    let (cx, cy, cf, ci) = (col("xBody"), col("yBody"), col("imageNumber"), col("id"));
    let mut gt: HashMap<u64, Vec<(u64, f32, f32)>> = HashMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let v: Vec<&str> = line.split('\t').collect();
        let f: u64 = v[cf].trim().parse().expect("imageNumber");
        let id: u64 = v[ci].trim().parse().expect("id");
        gt.entry(f)
            .or_default()
            .push((id, v[cx].parse().expect("x"), v[cy].parse().expect("y")));
    }
    gt
}

fn load_frame(i: u64) -> Frame {
    let path = format!("{DATA}/frames/frame_{:06}.pgm", i + 1);
    let img = image::open(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .to_luma8();
    Frame {
        camera: Arc::from("fasttrack"),
        index: i,
        pts: Some(Duration::from_secs_f64(i as f64 / FPS)),
        captured: SystemTime::UNIX_EPOCH + Duration::from_secs_f64(i as f64 / FPS),
        width: img.width(),
        height: img.height(),
        layout: PixelLayout::Gray8,
        data: Arc::new(img.into_raw()),
    }
}

/// Optimal one-to-one matching maximising `weight` (rows ≤ or > cols handled); returns pairs.
fn max_matching(
    rows: usize,
    cols: usize,
    weight: impl Fn(usize, usize) -> i64,
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
    let mut w = Vec::with_capacity(r * c);
    for i in 0..r {
        for j in 0..c {
            w.push(-if transpose {
                weight(j, i)
            } else {
                weight(i, j)
            });
        }
    }
    let m = Matrix::from_vec(r, c, w).expect("matrix");
    let (_, assign) = kuhn_munkres_min(&m);
    assign
        .into_iter()
        .enumerate()
        .filter(|&(i, j)| m[(i, j)] < 0)
        .map(|(i, j)| if transpose { (j, i) } else { (i, j) })
        .collect()
}

#[test]
fn fasttrack_zebrafish14_defaults_population_14() {
    let gt = ground_truth();
    let dcfg = DetectConfig::default();
    let tcfg = TrackConfig::default();
    let mut det = Detector::build(&dcfg).expect("detector");
    let mut tracker = Tracker::new(&tcfg, Some(14));
    let mut detected = Vec::new();
    let t0 = std::time::Instant::now();
    for i in 0..200 {
        detected.extend(det.push(load_frame(i), None));
    }
    detected.extend(det.flush(None));
    assert_eq!(detected.len(), 200, "every frame comes back");
    let (thr, pol) = det.model_summary().expect("model learned");
    println!(
        "detector: polarity {pol}, threshold {thr}, typical area {:?} px²",
        det.typical_area()
    );

    let (mut total_gt, mut tp, mut preds, mut count14, mut tcount14) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut counts: HashMap<u32, usize> = HashMap::new();
    // co-occurrence (track, gt id) within the gate, for IDF1-style identity scores
    let mut co: HashMap<(u64, u64), i64> = HashMap::new();
    let mut track_frames: HashMap<u64, usize> = HashMap::new();
    for df in &detected {
        let i = df.frame.index;
        let visible: u32 = df.detections.iter().map(|d| d.fish_count).sum();
        *counts.entry(visible).or_default() += 1;
        count14 += (visible == 14) as usize;
        let reports = tracker.update(i as f64 / FPS, &df.detections);
        tcount14 += (tracker.visible_fish() == 14) as usize;
        let tracks: Vec<_> = reports
            .iter()
            .filter(|r| r.status != TrackStatus::Tentative)
            .collect();
        let truth = gt.get(&i).cloned().unwrap_or_default();
        total_gt += truth.len();
        preds += tracks.len();
        for t in &tracks {
            *track_frames.entry(t.track).or_default() += 1;
        }
        let d = |g: usize, t: usize| {
            ((truth[g].1 - tracks[t].x).powi(2) + (truth[g].2 - tracks[t].y).powi(2)).sqrt()
        };
        let pairs = max_matching(truth.len(), tracks.len(), |g, t| {
            let dd = d(g, t);
            if dd <= GATE {
                1_000_000 - (dd * 1000.0) as i64
            } else {
                0
            }
        });
        tp += pairs.len();
        for (g, t) in truth.iter().enumerate() {
            for tr in &tracks {
                let _ = g;
                if ((t.1 - tr.x).powi(2) + (t.2 - tr.y).powi(2)).sqrt() <= GATE {
                    *co.entry((tr.track, t.0)).or_default() += 1;
                }
            }
        }
    }
    let elapsed = t0.elapsed();
    // Global best one-to-one track ↔ gt-id matching by co-occurrence.
    let mut track_ids: Vec<u64> = track_frames.keys().copied().collect();
    track_ids.sort();
    let mut gt_ids: Vec<u64> = gt.values().flatten().map(|g| g.0).collect();
    gt_ids.sort();
    gt_ids.dedup();
    let id_pairs = max_matching(track_ids.len(), gt_ids.len(), |a, b| {
        co.get(&(track_ids[a], gt_ids[b])).copied().unwrap_or(0)
    });
    let idtp: i64 = id_pairs
        .iter()
        .map(|&(a, b)| co.get(&(track_ids[a], gt_ids[b])).copied().unwrap_or(0))
        .sum();

    let recall = tp as f64 / total_gt as f64;
    let precision = tp as f64 / preds.max(1) as f64;
    let idr = idtp as f64 / total_gt as f64;
    let idp = idtp as f64 / preds.max(1) as f64;
    // Visible fish: the tracker's count (matched confirmed tracks; touching fish counted per
    // track) is what the pipeline reports; the detector's own sum of `fish_count` is printed
    // for comparison (it cannot tell a large fish from two small touching ones).
    let count_frac = tcount14 as f64 / detected.len() as f64;
    let det_count_frac = count14 as f64 / detected.len() as f64;
    let mut hist: Vec<_> = counts.into_iter().collect();
    hist.sort();
    println!(
        "fasttrack-zebrafish14: recall {recall:.4} precision {precision:.4} IDR {idr:.4} IDP {idp:.4} \
         visible==14 in {count_frac:.3} of frames (tracker), {det_count_frac:.3} (sum of detection fish_count, histogram {hist:?}); {} track ids; gt {total_gt}, tp {tp}, preds {preds}; {:.1} ms/frame (debug-ish build)",
        track_ids.len(),
        elapsed.as_secs_f64() * 1000.0 / 200.0
    );
    assert!(recall >= 0.97, "recall {recall:.4} < 0.97");
    assert!(idr >= 0.90, "IDR {idr:.4} < 0.90");
    assert!(
        count_frac >= 0.95,
        "count==14 in {count_frac:.3} of frames < 0.95"
    );
}

//! Detect + track on the real FastTrack recording of 14 juvenile zebrafish, scored against its
//! ground truth: built-in defaults, population 14, 10 px match gate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use finprint::config::CameraView;
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
    let mut tracker = Tracker::new(&tcfg, CameraView::Top, Some(14));
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

/// Side-view 1080p simulator (water gradient, gravel, plants, striped light fish, lighting
/// drift, noise): the same built-in defaults (tracking for a side view) must find the fish. Scored against the
/// simulator's truth for fish at least half visible, gate ¼ body length (≥ 10 px).
#[test]
fn synth_side_view_1080p_defaults() {
    use finprint::synth::SynthConfig;
    use finprint::synth::tank::TankSim;
    let cfg = SynthConfig {
        fish: 8,
        seed: 3,
        ..SynthConfig::default()
    };
    let n_fish = cfg.fish as u32;
    let mut sim = TankSim::new(&cfg);
    let mut det = Detector::build(&DetectConfig::default()).expect("detector");
    let mut tracker = Tracker::new(&TrackConfig::default(), CameraView::Side, Some(n_fish));
    type Row = (usize, f32, f32, f32, f32);
    let mut truth: HashMap<u64, Vec<Row>> = HashMap::new();
    let mut detected = Vec::new();
    let mut detect_time = std::time::Duration::ZERO;
    let frames = 150u64;
    for i in 0..frames {
        let f = sim.next_frame();
        truth.insert(
            i,
            f.truth
                .iter()
                .map(|r| (r.track, r.x, r.y, r.visible_fraction, r.body_length))
                .collect(),
        );
        let frame = Frame {
            camera: Arc::from("synth"),
            index: i,
            pts: Some(Duration::from_secs_f64(f.t)),
            captured: SystemTime::UNIX_EPOCH,
            width: f.canvas.width as u32,
            height: f.canvas.height as u32,
            layout: PixelLayout::Rgb8,
            data: Arc::new(f.canvas.rgb.clone()),
        };
        let t0 = std::time::Instant::now();
        detected.extend(det.push(frame, None));
        detect_time += t0.elapsed();
    }
    let t0 = std::time::Instant::now();
    detected.extend(det.flush(None));
    detect_time += t0.elapsed();
    assert_eq!(detected.len() as u64, frames);
    let (thr, pol) = det.model_summary().expect("model");
    println!(
        "synth detector: polarity {pol}, threshold {thr}, typical area {:?}",
        det.typical_area()
    );
    let (mut total, mut tp, mut visible_ok, mut det_ok) = (0usize, 0usize, 0usize, 0usize);
    for df in &detected {
        let i = df.frame.index;
        let reports = tracker.update(i as f64 / 30.0, &df.detections);
        let tracks: Vec<_> = reports
            .iter()
            .filter(|r| r.status != TrackStatus::Tentative)
            .collect();
        let gt: Vec<_> = truth[&i].iter().filter(|g| g.3 >= 0.5).cloned().collect();
        total += gt.len();
        let pairs = max_matching(gt.len(), tracks.len(), |g, t| {
            let dd = ((gt[g].1 - tracks[t].x).powi(2) + (gt[g].2 - tracks[t].y).powi(2)).sqrt();
            if dd <= (0.25 * gt[g].4).max(10.0) {
                1_000_000 - (dd * 100.0) as i64
            } else {
                0
            }
        });
        tp += pairs.len();
        let all_visible = truth[&i].iter().filter(|g| g.3 > 0.0).count() as u32;
        visible_ok += (tracker.visible_fish() == all_visible) as usize;
        det_ok += (df.detections.iter().map(|d| d.fish_count).sum::<u32>() == all_visible) as usize;
    }
    let recall = tp as f64 / total.max(1) as f64;
    println!(
        "synth side 1080p: recall {recall:.4} ({tp}/{total}), visible count right in {:.3} (tracker) / {:.3} (detections) of frames, detect {:.1} ms/frame (this build)",
        visible_ok as f64 / frames as f64,
        det_ok as f64 / frames as f64,
        detect_time.as_secs_f64() * 1000.0 / frames as f64
    );
    assert!(recall >= 0.9, "synth recall {recall:.4}");
}

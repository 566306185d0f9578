//! Detector tests on small synthetic frames.
#![allow(clippy::field_reassign_with_default)] // tests tweak one field of the defaults

use std::sync::Arc;
use std::time::SystemTime;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::messages::PixelLayout;

/// A filled ellipse: centre, semi-axes (a along the angle), angle (rad), grey value.
#[derive(Clone, Copy)]
struct Ell {
    cx: f32,
    cy: f32,
    a: f32,
    b: f32,
    angle: f32,
    value: u8,
}

fn render(
    w: u32,
    h: u32,
    bg: u8,
    ells: &[Ell],
    noise: f32,
    rng: &mut ChaCha8Rng,
    index: u64,
) -> Frame {
    let mut data = vec![0u8; (w * h) as usize];
    for y in 0..h {
        for x in 0..w {
            let mut v = bg as f32;
            for e in ells {
                let (dx, dy) = (x as f32 - e.cx, y as f32 - e.cy);
                let (s, c) = e.angle.sin_cos();
                let u = dx * c + dy * s;
                let t = -dx * s + dy * c;
                if (u / e.a).powi(2) + (t / e.b).powi(2) <= 1.0 {
                    v = e.value as f32;
                }
            }
            v += (rng.random::<f32>() - 0.5) * 2.0 * noise;
            data[(y * w + x) as usize] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    Frame {
        camera: Arc::from("test"),
        index,
        pts: None,
        captured: SystemTime::UNIX_EPOCH,
        width: w,
        height: h,
        layout: PixelLayout::Gray8,
        data: Arc::new(data),
    }
}

/// Runs a detector over `n` frames where `scene(i)` gives the ellipses of frame `i`;
/// returns every frame's detections (checks that no frame is lost or reordered).
fn run(
    cfg: &DetectConfig,
    n: u64,
    bg: u8,
    scene: impl Fn(u64) -> Vec<Ell>,
    crops: Option<CropSpec>,
) -> Vec<Vec<Detection>> {
    run_in_view(cfg, CameraView::Auto, n, bg, scene, crops)
}

/// [`run`] with the camera's view set.
fn run_in_view(
    cfg: &DetectConfig,
    view: CameraView,
    n: u64,
    bg: u8,
    scene: impl Fn(u64) -> Vec<Ell>,
    crops: Option<CropSpec>,
) -> Vec<Vec<Detection>> {
    let mut det = Detector::build(cfg).expect("build");
    det.set_view(view);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut out = Vec::new();
    for i in 0..n {
        out.extend(det.push(render(160, 120, bg, &scene(i), 4.0, &mut rng, i), crops));
    }
    out.extend(det.flush(crops));
    assert_eq!(out.len() as u64, n, "every frame comes back");
    for (i, f) in out.iter().enumerate() {
        assert_eq!(f.frame.index, i as u64, "frames come back in order");
    }
    out.into_iter().map(|f| f.detections).collect()
}

/// Frames 0..`n` of `scene` on a 160 × 120 light background (the noise of [`run`]).
fn rendered(n: u64, scene: impl Fn(u64) -> Vec<Ell>) -> Vec<Frame> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    (0..n)
        .map(|i| render(160, 120, 200, &scene(i), 4.0, &mut rng, i))
        .collect()
}

/// One fish swimming left to right along y = 60 (so the learned background is clean).
fn swimmer(i: u64, value: u8) -> Ell {
    Ell {
        cx: 20.0 + i as f32 * 2.0,
        cy: 60.0,
        a: 12.0,
        b: 4.0,
        angle: 0.5,
        value,
    }
}

#[test]
fn dark_ellipse_on_light_gives_one_detection_with_right_geometry() {
    let dets = run(
        &DetectConfig::default(),
        60,
        200,
        |i| vec![swimmer(i, 60)],
        None,
    );
    let last = &dets[55];
    assert_eq!(last.len(), 1, "one fish: {last:?}");
    let d = &last[0];
    let truth = swimmer(55, 60);
    assert!(
        (d.x - truth.cx).abs() < 0.7 && (d.y - truth.cy).abs() < 0.7,
        "centroid {:?}",
        (d.x, d.y)
    );
    let area = std::f32::consts::PI * 12.0 * 4.0;
    assert!(
        (d.area - area).abs() / area < 0.15,
        "area {} vs {area}",
        d.area
    );
    assert!((d.axis_angle - 0.5).abs() < 0.05, "angle {}", d.axis_angle);
    assert!(
        (d.major_axis - 24.0).abs() < 2.5 && (d.minor_axis - 8.0).abs() < 2.0,
        "axes {} {}",
        d.major_axis,
        d.minor_axis
    );
    assert_eq!(d.fish_count, 1);
    assert!(d.bbox[0] < d.x && d.x < d.bbox[2] && d.bbox[1] < d.y && d.y < d.bbox[3]);
    // Detected in (almost) every frame, including the buffered learning frames.
    let hits = dets.iter().filter(|d| d.len() == 1).count();
    assert!(hits >= 58, "detected in {hits}/60 frames");
}

#[test]
fn length_is_the_extent_along_the_body_tail_included() {
    // A tapered fish: a body 24 px long and a thin tail behind it, 32 px nose to tail tip.
    // The second moments see an ellipse somewhat shorter (30 px here); `length` is the whole
    // extent.
    let tapered = |i: u64| {
        let cx = 30.0 + i as f32 * 1.5;
        vec![
            Ell {
                cx,
                cy: 60.0,
                a: 12.0,
                b: 5.0,
                angle: 0.0,
                value: 60,
            },
            Ell {
                cx: cx - 14.0,
                cy: 60.0,
                a: 6.0,
                b: 2.0,
                angle: 0.0,
                value: 60,
            },
        ]
    };
    let dets = run(&DetectConfig::default(), 60, 200, tapered, None);
    let d = &dets[55][0];
    assert!(
        (d.length - 32.0).abs() <= 2.0 && d.length >= d.major_axis,
        "length {} (truth 32), major axis {}",
        d.length,
        d.major_axis
    );
}

#[test]
fn light_ellipse_on_dark_is_found_with_auto_polarity() {
    let mut det_cfg = DetectConfig::default();
    det_cfg.polarity = Polarity::Auto;
    let dets = run(&det_cfg, 60, 50, |i| vec![swimmer(i, 190)], None);
    let d = &dets[40];
    assert_eq!(d.len(), 1, "{d:?}");
    let t = swimmer(40, 190);
    assert!((d[0].x - t.cx).abs() < 0.7 && (d[0].y - t.cy).abs() < 0.7);
    // Forcing the wrong polarity finds nothing.
    det_cfg.polarity = Polarity::Dark;
    let dets = run(&det_cfg, 60, 50, |i| vec![swimmer(i, 190)], None);
    assert!(dets.iter().all(|d| d.is_empty()));
}

#[test]
fn roi_and_exclusion_zones_hide_fish() {
    // Fish A swims at y=30 (top), fish B at y=90 (bottom).
    let scene = |i: u64| {
        vec![
            Ell {
                cx: 20.0 + i as f32 * 2.0,
                cy: 30.0,
                a: 10.0,
                b: 4.0,
                angle: 0.0,
                value: 50,
            },
            Ell {
                cx: 140.0 - i as f32 * 2.0,
                cy: 90.0,
                a: 10.0,
                b: 4.0,
                angle: 0.0,
                value: 50,
            },
        ]
    };
    let all = run(&DetectConfig::default(), 60, 200, scene, None);
    assert_eq!(all[30].len(), 2);
    let mut roi = DetectConfig::default();
    roi.roi = Some(vec![[0.0, 0.0], [160.0, 0.0], [160.0, 60.0], [0.0, 60.0]]);
    let top = run(&roi, 60, 200, scene, None);
    assert!(top[30].len() == 1 && top[30][0].y < 60.0, "{:?}", top[30]);
    let mut ex = DetectConfig::default();
    ex.exclude = vec![vec![[0.0, 0.0], [160.0, 0.0], [160.0, 60.0], [0.0, 60.0]]];
    let bottom = run(&ex, 60, 200, scene, None);
    assert!(
        bottom[30].len() == 1 && bottom[30][0].y > 60.0,
        "{:?}",
        bottom[30]
    );
}

/// A fish with a dark body and a faint fringe (fins, tail), horizontal axis rotated by `angle`.
fn fish(cx: f32, cy: f32, angle: f32) -> [Ell; 2] {
    [
        Ell {
            cx,
            cy,
            a: 13.0,
            b: 6.5,
            angle,
            value: 160,
        },
        Ell {
            cx,
            cy,
            a: 10.0,
            b: 3.5,
            angle,
            value: 50,
        },
    ]
}

/// Six fish: two swim in lanes throughout; until frame 50 four more swim in lanes, then two of
/// them touch side by side (bodies apart, fringes joined) and two overlap (one partly over the other: their bodies join).
fn touching_scene(i: u64) -> Vec<Ell> {
    let x = 20.0 + (i % 50) as f32 * 2.4;
    let mut v = Vec::new();
    v.extend(fish(x, 12.0, 0.0));
    v.extend(fish(140.0 - x + 20.0, 30.0, 0.0));
    if i < 50 {
        v.extend(fish(x, 50.0, 0.0));
        v.extend(fish(140.0 - x + 20.0, 66.0, 0.0));
        v.extend(fish(x, 84.0, 0.0));
        v.extend(fish(140.0 - x + 20.0, 102.0, 0.0));
    } else {
        v.extend(fish(40.0, 70.0, 0.0));
        v.extend(fish(40.0, 81.0, 0.0));
        // uniformly dark where they overlap: one body-shaped core
        v.push(Ell {
            cx: 104.0,
            cy: 90.0,
            a: 13.0,
            b: 6.5,
            angle: 0.0,
            value: 50,
        });
        v.push(Ell {
            cx: 116.0,
            cy: 94.0,
            a: 13.0,
            b: 6.5,
            angle: 0.0,
            value: 50,
        });
    }
    v
}

/// Short description of detections for failure messages.
fn summary(f: &[Detection]) -> Vec<(i32, i32, u32, i32, bool)> {
    f.iter()
        .map(|d| {
            (
                d.x as i32,
                d.y as i32,
                d.fish_count,
                d.area as i32,
                d.crop.is_some(),
            )
        })
        .collect()
}

#[test]
fn touching_fish_are_split_at_their_bodies_or_flagged() {
    let spec = CropSpec {
        width: 48,
        height: 16,
    };
    let dets = run(
        &DetectConfig::default(),
        60,
        200,
        touching_scene,
        Some(spec),
    );
    let f = &dets[55];
    // The side-by-side pair is split into one detection per fish (no crop: touching); the
    // overlapping pair, whose bodies join, stays one detection flagged as two fish.
    let near = |x: f32, y: f32| {
        f.iter()
            .filter(|d| (d.x - x).abs() < 4.0 && (d.y - y).abs() < 4.0)
            .count()
    };
    assert_eq!(near(40.0, 70.0), 1, "{:?}", summary(f));
    assert_eq!(near(40.0, 81.0), 1, "{:?}", summary(f));
    let cross: Vec<&Detection> = f
        .iter()
        .filter(|d| (d.x - 110.0).abs() < 4.0 && (d.y - 92.0).abs() < 4.0)
        .collect();
    assert_eq!(cross.len(), 1, "{:?}", summary(f));
    assert_eq!(cross[0].fish_count, 2);
    assert!(cross[0].crop.is_none());
    assert_eq!(f.len(), 5, "{:?}", summary(f));
    assert_eq!(f.iter().map(|d| d.fish_count).sum::<u32>(), 6);
    for d in f.iter().filter(|d| d.y > 60.0 && d.x < 80.0) {
        assert!(
            d.crop.is_none() && d.fish_count == 1,
            "parts of a split blob carry no crop"
        );
    }
    for d in f.iter().filter(|d| d.y < 40.0) {
        let c = d.crop.as_ref().map(|c| (c.width, c.height, c.rgb.len()));
        assert_eq!(c, Some((48, 16, 48 * 16 * 3)), "single fish get a crop");
    }

    // Without splitting, the side-by-side pair is one detection flagged as two fish.
    let mut cfg = DetectConfig::default();
    cfg.split_touching = false;
    let dets = run(&cfg, 60, 200, touching_scene, None);
    let f = &dets[55];
    assert_eq!(f.len(), 4, "{:?}", summary(f));
    assert_eq!(
        f.iter().filter(|d| d.fish_count == 2).count(),
        2,
        "{:?}",
        summary(f)
    );
}

/// A dark fish (24 × 8 px at `scale` 1, the typical size of the lane scenes), horizontal.
fn lane_fish(cx: f32, cy: f32, scale: f32) -> Ell {
    Ell {
        cx,
        cy,
        a: 12.0 * scale,
        b: 4.0 * scale,
        angle: 0.0,
        value: 50,
    }
}

/// Five fish of the typical size in lanes (y 8 to 64), at `x`.
fn typical_lanes(x: f32) -> Vec<Ell> {
    [8.0, 22.0, 36.0, 50.0, 64.0]
        .iter()
        .map(|&y| lane_fish(x, y, 1.0))
        .collect()
}

/// Side view: five fish of the typical size in lanes, a fish near the glass twice their area
/// (same shape), two fish overlapping one above the other and two end to end, all swimming.
fn near_and_far_scene(i: u64) -> Vec<Ell> {
    let x = 25.0 + (i % 70) as f32 * 1.4;
    let mut v = typical_lanes(x);
    v.push(lane_fish(x, 80.0, std::f32::consts::SQRT_2));
    v.push(lane_fish(x, 95.0, 1.0));
    v.push(lane_fish(x, 101.0, 1.0));
    v.push(lane_fish(x, 113.0, 1.0));
    v.push(lane_fish(x + 18.0, 113.0, 1.0));
    v
}

#[test]
fn side_view_counts_a_large_blob_of_one_fishs_shape_as_one_fish() {
    let spec = CropSpec {
        width: 48,
        height: 16,
    };
    let at = |f: &[Detection], y: f32| -> Option<(u32, bool)> {
        f.iter()
            .find(|d| (d.y - y).abs() < 4.0)
            .map(|d| (d.fish_count, d.crop.is_some()))
    };
    let side = run_in_view(
        &DetectConfig::default(),
        CameraView::Side,
        70,
        200,
        near_and_far_scene,
        Some(spec),
    );
    let f = &side[65];
    assert_eq!(f.len(), 8, "{:?}", summary(f));
    // Twice the typical area but a fish's shape: one fish, with a crop for identity.
    assert_eq!(at(f, 80.0), Some((1, true)), "{:?}", summary(f));
    // Deeper (one above the other) or longer (end to end) than one fish: two, no crop.
    assert_eq!(at(f, 98.0), Some((2, false)), "{:?}", summary(f));
    assert_eq!(at(f, 113.0), Some((2, false)), "{:?}", summary(f));
    assert_eq!(at(f, 36.0), Some((1, true)), "{:?}", summary(f));
    // A top view keeps counting by area: fish there are all at one distance from the camera.
    let top = run_in_view(
        &DetectConfig::default(),
        CameraView::Top,
        70,
        200,
        near_and_far_scene,
        Some(spec),
    );
    assert_eq!(
        at(&top[65], 80.0),
        Some((2, false)),
        "{:?}",
        summary(&top[65])
    );
}

#[test]
fn side_view_keeps_a_blob_of_several_large_fish_that_a_top_view_ignores() {
    // Five fish of the typical size in lanes and, later, one blob of 8 typical areas (several
    // fish near the glass swimming together), all swimming.
    let scene = |i: u64| {
        let mut v = typical_lanes(35.0 + (i % 70) as f32 * 1.2);
        if i < 40 {
            // Arrives after the background is learned (so it is not learned into it).
            return v;
        }
        v.push(Ell {
            cx: 40.0 + (i - 40) as f32 * 1.5,
            cy: 92.0,
            a: 30.0,
            b: 12.8,
            angle: 0.0,
            value: 50,
        });
        v
    };
    let big = |f: &[Detection]| {
        f.iter()
            .find(|d| (d.y - 92.0).abs() < 4.0)
            .map(|d| d.fish_count)
    };
    let side = run_in_view(
        &DetectConfig::default(),
        CameraView::Side,
        70,
        200,
        scene,
        None,
    );
    assert_eq!(big(&side[65]), Some(6), "{:?}", summary(&side[65]));
    let top = run_in_view(
        &DetectConfig::default(),
        CameraView::Top,
        70,
        200,
        scene,
        None,
    );
    assert_eq!(big(&top[65]), None, "{:?}", summary(&top[65]));
    assert_eq!(top[65].len(), 5, "{:?}", summary(&top[65]));
}

#[test]
fn short_frames_are_passed_on_not_lost() {
    let mut det = Detector::build(&DetectConfig::default()).expect("build");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut out = Vec::new();
    for i in 0..70 {
        let mut f = render(160, 120, 200, &[swimmer(i, 60)], 3.0, &mut rng, i);
        if i == 10 || i == 65 {
            f.data = Arc::new(vec![0u8; 100]);
        }
        out.extend(det.push(f, None));
    }
    out.extend(det.flush(None));
    assert_eq!(out.len(), 70);
    assert!(out[10].detections.is_empty() && out[65].detections.is_empty());
    assert_eq!(out[64].detections.len(), 1);
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, f)| f.frame.index == i as u64)
    );
}

#[test]
fn short_stream_learns_at_flush() {
    let dets = run(
        &DetectConfig::default(),
        12,
        200,
        |i| vec![swimmer(i * 4, 60)],
        None,
    );
    assert!(
        dets.iter().filter(|d| d.len() == 1).count() >= 10,
        "{dets:?}"
    );
}

#[test]
fn downscaled_detection_reports_full_frame_coordinates() {
    let mut cfg = DetectConfig::default();
    cfg.downscale = Some(2);
    let dets = run(&cfg, 60, 200, |i| vec![swimmer(i, 60)], None);
    let d = &dets[50];
    assert_eq!(d.len(), 1);
    let t = swimmer(50, 60);
    assert!(
        (d[0].x - t.cx).abs() < 1.2 && (d[0].y - t.cy).abs() < 1.2,
        "{:?}",
        (d[0].x, d[0].y)
    );
    let area = std::f32::consts::PI * 48.0;
    assert!((d[0].area - area).abs() / area < 0.25, "area {}", d[0].area);
}

#[test]
fn config_defaults_validate_and_bad_values_are_named() {
    assert!(DetectConfig::default().validate("d").is_ok());
    let mut c = DetectConfig::default();
    c.learn_frames = 1;
    let e = c.validate("cameras[0].detect").unwrap_err().to_string();
    assert!(e.contains("cameras[0].detect.learn_frames"), "{e}");
    let mut c = DetectConfig::default();
    c.exclude = vec![vec![[0.0, 0.0], [1.0, 1.0]]];
    assert!(
        c.validate("d")
            .unwrap_err()
            .to_string()
            .contains("d.exclude[0]")
    );
    let mut c = DetectConfig::default();
    c.min_area = Some(100.0);
    c.max_area = Some(50.0);
    assert!(c.validate("d").is_err());
    let parsed: DetectConfig =
        toml::from_str("polarity = \"light\"\nthreshold = 30\nroi = [[0,0],[10,0],[10,10]]\n")
            .expect("toml");
    assert_eq!(parsed.polarity, Polarity::Light);
    assert_eq!(parsed.threshold, Some(30));
    assert_eq!(parsed.learn_frames, 25);
    assert!(
        toml::from_str::<DetectConfig>("thresh = 3").is_err(),
        "unknown keys are rejected"
    );
}

#[test]
fn missing_background_file_is_a_clear_error() {
    let mut c = DetectConfig::default();
    c.background = Some("/nonexistent/bg.png".into());
    let e = Detector::build(&c).unwrap_err().to_string();
    assert!(
        e.contains("/nonexistent/bg.png") && e.contains("detect.background"),
        "{e}"
    );
}

#[test]
fn a_ghost_of_a_fish_resting_while_learning_is_healed() {
    // Fish A rests at (40, 30) for the first 80 frames (the whole first learning span), then
    // swims off; fish B swims along y = 90 throughout. Without refinement A's resting place
    // stays in the background and is detected for ever; with it (the default), the ghost goes.
    let scene = |i: u64| {
        let mut v = vec![Ell {
            cx: 20.0 + (i % 120) as f32,
            cy: 90.0,
            a: 12.0,
            b: 4.0,
            angle: 0.0,
            value: 60,
        }];
        if i < 80 {
            v.push(Ell {
                cx: 40.0,
                cy: 30.0,
                a: 12.0,
                b: 4.0,
                angle: 0.0,
                value: 60,
            });
        }
        v
    };
    let ghost_frames = |dets: &[Vec<Detection>], from: usize| {
        dets[from..]
            .iter()
            .filter(|f| {
                f.iter()
                    .any(|d| (d.x - 40.0).abs() < 6.0 && (d.y - 30.0).abs() < 6.0)
            })
            .count()
    };
    // Polarity `both` (a side view): the ghost, lighter than the background that holds the
    // fish, is foreground too. The refinement alone (ghost healing off) removes it.
    let mut on = DetectConfig::default();
    on.polarity = Polarity::Both;
    on.heal_ghosts = false;
    let mut off = on.clone();
    off.refine_stride = 0;
    off.heal_ghosts = false;
    let dets = run(&off, 300, 200, scene, None);
    assert!(
        ghost_frames(&dets, 250) >= 45,
        "without refinement the ghost stays (scenario check)"
    );
    let dets = run(&on, 300, 200, scene, None);
    assert_eq!(
        ghost_frames(&dets, 250),
        0,
        "the refined background has no ghost"
    );
    // The swimming fish is still found in every late frame.
    assert!(
        dets[250..]
            .iter()
            .all(|f| f.iter().any(|d| (d.y - 90.0).abs() < 3.0))
    );
}

#[test]
fn the_background_is_the_value_that_recurs_not_a_fish_that_passed_slowly() {
    // One pixel over 9 samples: water (100 ± 1) in 3, a striped fish that passed slowly
    // (varying values) in 6; a second pixel that never changes.
    let values: [u8; 9] = [100, 40, 210, 101, 60, 150, 200, 180, 170];
    let samples: Vec<Vec<u8>> = values.iter().map(|&v| vec![v, 128]).collect();
    let refs: Vec<&Vec<u8>> = samples.iter().collect();
    assert_eq!(pixel_median(&refs, 2)[0], 150, "the median keeps the fish");
    let bg = pixel_mode(&refs, 2, 2);
    assert!(
        (99..=101).contains(&bg[0]),
        "the mode keeps the water: {}",
        bg[0]
    );
    assert_eq!(bg[1], 128, "a pixel that never changes keeps its value");
}

#[test]
fn a_fish_passing_slowly_while_learning_leaves_no_ghost() {
    // A striped fish drifts slowly over x = 20..70 during the learning span (pixels near
    // x = 40 are covered in more than half of the samples), then swims off; another swims along
    // y = 90. No detection may stay behind where the first one drifted, with the refinement
    // and the ghost healing off: the learned background itself must be the water.
    let scene = |i: u64| {
        let mut v = vec![swimmer(i % 60, 60)];
        v[0].cy = 90.0;
        v[0].angle = 0.0;
        // 1 px per frame while learning: pixels near x = 40 are covered in 28 of the 49
        // learning frames (more than half), then faster.
        let cx = if i < 60 {
            20.0 + i as f32
        } else {
            80.0 + (i - 60) as f32 * 3.0
        };
        if cx < 170.0 {
            // Stripes: the body's grey value changes as it moves.
            let value = if (i / 3).is_multiple_of(2) { 60 } else { 150 };
            v.push(Ell {
                cx,
                cy: 30.0,
                a: 14.0,
                b: 5.0,
                angle: 0.0,
                value,
            });
        }
        v
    };
    let mut cfg = DetectConfig::default();
    cfg.polarity = Polarity::Both;
    cfg.refine_stride = 0;
    cfg.heal_ghosts = false;
    let dets = run(&cfg, 200, 200, scene, None);
    let stuck = dets[110..]
        .iter()
        .filter(|f| {
            f.iter()
                .any(|d| (d.y - 30.0).abs() < 8.0 && (20.0..60.0).contains(&d.x))
        })
        .count();
    assert_eq!(
        stuck, 0,
        "nothing is detected where the fish drifted while learning"
    );
    assert!(
        dets[110..]
            .iter()
            .all(|f| f.iter().any(|d| (d.y - 90.0).abs() < 3.0)),
        "the other fish is found in every frame"
    );
}

#[test]
fn a_ghost_is_healed_at_once_and_a_fish_resting_after_learning_is_still_found() {
    // Fish A rests at (40, 30) through the learning span and swims off at frame 80: its ghost
    // must go within a few frames, without waiting for the refinement (turned off here). Fish
    // C arrives at (120, 30) at frame 100 and rests there to the end: it is a fish, not a ghost,
    // and must be found in every frame.
    let scene = |i: u64| {
        let mut v = vec![swimmer(i % 60, 60)];
        v[0].cy = 90.0;
        if i < 80 {
            v.push(Ell {
                cx: 40.0,
                cy: 30.0,
                a: 12.0,
                b: 4.0,
                angle: 0.0,
                value: 60,
            });
        }
        if i >= 100 {
            v.push(Ell {
                cx: 120.0,
                cy: 30.0,
                a: 12.0,
                b: 4.0,
                angle: 0.0,
                value: 60,
            });
        }
        v
    };
    let near = |f: &Vec<Detection>, x: f32, y: f32| {
        f.iter()
            .any(|d| (d.x - x).abs() < 6.0 && (d.y - y).abs() < 6.0)
    };
    for polarity in [Polarity::Both, Polarity::Dark] {
        let mut cfg = DetectConfig::default();
        cfg.polarity = polarity;
        cfg.refine_stride = 0;
        let mut det = Detector::build(&cfg).expect("build");
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut out = Vec::new();
        for i in 0..300 {
            out.extend(det.push(render(160, 120, 200, &scene(i), 4.0, &mut rng, i), None));
        }
        out.extend(det.flush(None));
        let dets: Vec<Vec<Detection>> = out.into_iter().map(|f| f.detections).collect();
        assert!(
            dets[40..80].iter().all(|f| !near(f, 40.0, 30.0)),
            "{polarity:?}: scenario: A is in the learned background while it rests"
        );
        let ghost = dets[83..].iter().filter(|f| near(f, 40.0, 30.0)).count();
        assert_eq!(ghost, 0, "{polarity:?}: the ghost of A is healed at once");
        // With `dark`, the light ghost of a dark fish is no foreground in the first place.
        if polarity == Polarity::Both {
            assert!(det.ghosts_healed() >= 1, "{polarity:?}: and counted");
        }
        assert!(
            dets[100..].iter().all(|f| near(f, 120.0, 30.0)),
            "{polarity:?}: the resting fish C is found in every frame"
        );
    }
}

#[test]
fn a_blob_too_large_to_count_is_not_learned_into_the_background() {
    // Two large fish touching (a blob above `max_area`) rest at (100, 40) for 40 frames after
    // learning: they are not reported, but the background's adaptation must not take them in,
    // or they leave a ghost with soft edges that holds a track (seen on a side-view render:
    // two fish near the glass overlapping, then a ghost for 170 frames).
    let big = |i: u64| {
        let mut v = vec![swimmer(i % 50, 60)];
        v[0].cy = 95.0;
        if (60..100).contains(&i) {
            v.push(Ell {
                cx: 100.0,
                cy: 40.0,
                // 23 typical areas: above a side view's largest countable blob (13).
                a: 50.0,
                b: 22.0,
                angle: 0.0,
                value: 70,
            });
        }
        v
    };
    let mut cfg = DetectConfig::default();
    cfg.polarity = Polarity::Both;
    cfg.refine_stride = 0;
    let mut det = Detector::build(&cfg).expect("build");
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut out = Vec::new();
    let mut bg_at_99 = None;
    for i in 0..160 {
        out.extend(det.push(render(160, 120, 200, &big(i), 4.0, &mut rng, i), None));
        if i == 99
            && let (Some(g), Some(m)) = (det.geom, det.model.as_ref())
        {
            let k = (40 / g.factor) * g.ww + 100 / g.factor;
            bg_at_99 = Some((((m.bg[k] + 128) >> 8) as i32, m.threshold as i32));
        }
    }
    out.extend(det.flush(None));
    let (bg, thr) = bg_at_99.expect("background learned by frame 99");
    assert!(
        (bg - 200).abs() <= thr / 2,
        "after 40 frames under the oversized blob the background reads {bg} (water 200, threshold {thr})"
    );
    let near = |f: &Detection| (f.x - 100.0).abs() < 20.0 && (f.y - 40.0).abs() < 12.0;
    assert!(
        out[70..100].iter().all(|f| !f.detections.iter().any(near)),
        "scenario: the blob is too large to be reported"
    );
    let ghosts = out[102..]
        .iter()
        .filter(|f| f.detections.iter().any(near))
        .count();
    assert_eq!(ghosts, 0, "no ghost where the oversized blob rested");
}

/// A tail fin cut off from its body where the body is thin (one to three pixels of water in
/// between) is part of that fish, even when it is larger than the fragments absorbed by
/// size alone; a small blob as close beside a fish, off its body axis, is not.
#[test]
fn a_tail_cut_off_behind_its_fish_is_part_of_it_and_a_blob_beside_a_fish_is_not() {
    let body = |cx: f32, cy: f32| Ell {
        cx,
        cy,
        a: 12.0,
        b: 4.0,
        angle: 0.0,
        value: 60,
    };
    let piece = |cx: f32, cy: f32| Ell {
        cx,
        cy,
        a: 3.5,
        b: 2.5,
        angle: 0.0,
        value: 60,
    };
    let scene = |i: u64| {
        let x = 20.0 + i as f32 * 2.0;
        vec![
            // Its tail fin 2 px behind its body (≈ 0.18 typical areas).
            body(x, 25.0),
            piece(x - 17.5, 25.0),
            body(x, 60.0),
            // A small blob 3 px below a fish, beside its middle.
            body(x, 95.0),
            piece(x, 104.5),
        ]
    };
    let dets = run(&DetectConfig::default(), 60, 200, scene, None);
    let near = |f: &[Detection], y: f32| -> Vec<f32> {
        f.iter()
            .filter(|d| (d.y - y).abs() < 12.0)
            .map(|d| d.area)
            .collect()
    };
    let fish_area = std::f32::consts::PI * 12.0 * 4.0;
    for (i, f) in dets.iter().enumerate().skip(50) {
        let tailed = near(f, 25.0);
        assert!(
            tailed.len() == 1 && tailed[0] > 1.1 * fish_area,
            "frame {i}: the fish and its tail are one detection with both areas: {tailed:?}"
        );
        assert_eq!(near(f, 97.0).len(), 2, "frame {i}: {f:?}");
    }
}

/// A resumed recording's warm-up frames (the moments before its restart point) teach the
/// background and never come out: the first frame after them is detected at once, and a fish
/// that rests from the restart on is found, where a detector learning from the frames after
/// the restart would take the resting fish for background.
#[test]
fn warm_up_frames_teach_the_background_and_never_come_out() {
    // Swims along y = 60 until frame 49, then rests where it is.
    let scene = |i: u64| vec![swimmer(i.min(49), 60)];
    let cfg = DetectConfig::default();
    let frames = rendered(110, scene);
    let mut warm = Detector::build(&cfg).expect("build");
    let w = warm.warmup_frames();
    assert_eq!(w, 49, "learn_frames 25 every 2nd frame");
    for f in &frames[..w as usize] {
        warm.warm_up(f.clone());
    }
    assert!(!warm.is_learning(), "the model is learned from the warm-up");
    let mut found = 0;
    for f in &frames[w as usize..] {
        let out = warm.push(f.clone(), None);
        assert_eq!(out.len(), 1, "frame {} comes back at once", f.index);
        assert_eq!(out[0].frame.index, f.index);
        found += usize::from(out[0].detections.len() == 1);
    }
    assert!(warm.flush(None).is_empty(), "no warm-up frame comes out");
    let resting = frames.len() - w as usize;
    assert_eq!(found, resting, "the resting fish is found in every frame");

    // Learning from the frames after the restart instead: the resting fish is lost.
    let mut cold = Detector::build(&cfg).expect("build");
    let mut out = Vec::new();
    for f in &frames[w as usize..] {
        out.extend(cold.push(f.clone(), None));
    }
    out.extend(cold.flush(None));
    let cold_found = out.iter().filter(|d| d.detections.len() == 1).count();
    assert!(
        cold_found < resting / 2,
        "a cold start finds the resting fish in {cold_found} of {resting} frames"
    );

    // A restart near the start: fewer warm-up frames than learning needs. The frames after
    // them wait for the model with them, and only they come out.
    let mut short = Detector::build(&cfg).expect("build");
    for f in &frames[..20] {
        short.warm_up(f.clone());
    }
    let mut out = Vec::new();
    for f in &frames[20..60] {
        out.extend(short.push(f.clone(), None));
    }
    out.extend(short.flush(None));
    let indices: Vec<u64> = out.iter().map(|d| d.frame.index).collect();
    assert_eq!(indices, (20..60).collect::<Vec<u64>>());
}

#[test]
fn a_saved_model_detects_the_next_frames_as_the_detector_it_came_from() {
    // Frames 0-149: a fish swims (learning, refinement and adaptation all happen); from frame
    // 90 a second one rests, so the adapted background differs from any relearned one.
    let scene = |i: u64| {
        let mut v = vec![swimmer(i % 60, 60)];
        if i >= 90 {
            v.push(Ell {
                cx: 120.0,
                cy: 25.0,
                a: 10.0,
                b: 4.0,
                angle: 0.0,
                value: 70,
            });
        }
        v
    };
    let cfg = DetectConfig::default();
    let frames = rendered(150, scene);
    let mut first = Detector::build(&cfg).expect("build");
    let mut n = 0;
    for f in &frames[..120] {
        n += first.push(f.clone(), None).len();
    }
    n += first.flush(None).len();
    assert_eq!(n, 120);
    let saved = first.state().expect("a learned model has a state");
    // As the checkpoint keeps it: through JSON.
    let json = serde_json::to_string(&saved).expect("serialize");
    let loaded: DetectorState = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(loaded, saved);

    let mut resumed = Detector::build(&cfg).expect("build");
    resumed.restore(loaded);
    assert_eq!(resumed.warmup_frames(), 0, "nothing to read again");
    for f in &frames[120..] {
        let a = first.push(f.clone(), None);
        let b = resumed.push(f.clone(), None);
        assert_eq!(b.len(), 1, "frame {} comes back at once", f.index);
        assert!(!resumed.is_learning());
        let key = |d: &[DetectedFrame]| -> Vec<(u32, u32, u32)> {
            d[0].detections
                .iter()
                .map(|d| (d.x.to_bits(), d.y.to_bits(), d.area.to_bits()))
                .collect()
        };
        assert_eq!(key(&a), key(&b), "frame {}", f.index);
    }
    assert_eq!(resumed.state(), first.state(), "the models went on alike");

    // Learning again from the frames after the restart: the resting fish is (partly) lost.
    let mut cold = Detector::build(&cfg).expect("build");
    let mut out = Vec::new();
    for f in &frames[120..] {
        out.extend(cold.push(f.clone(), None));
    }
    out.extend(cold.flush(None));
    let two = out.iter().filter(|d| d.detections.len() == 2).count();
    assert!(
        two < 30,
        "a relearned background found both fish in {two} of 30 frames"
    );

    // Another frame size, or other settings: learned again, not continued.
    let mut other = Detector::build(&cfg).expect("build");
    other.restore(saved.clone());
    let small = render(80, 60, 200, &[], 4.0, &mut ChaCha8Rng::seed_from_u64(7), 0);
    assert!(
        other.push(small, None).is_empty(),
        "learning buffers the frame"
    );
    assert!(other.is_learning());
    let mut changed = DetectConfig::default();
    changed.learn_frames = 10;
    let mut other = Detector::build(&changed).expect("build");
    other.restore(saved);
    assert_eq!(
        other.warmup_frames(),
        19,
        "warm-up frames as without a saved model"
    );
    assert!(other.push(frames[120].clone(), None).is_empty());
    assert!(other.is_learning(), "settings changed: learned again");
}

#[test]
fn a_saved_model_that_is_not_hex_is_an_error() {
    let mut first = Detector::build(&DetectConfig::default()).expect("build");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for i in 0..60 {
        first.push(render(40, 30, 200, &[], 4.0, &mut rng, i), None);
    }
    let json = serde_json::to_string(&first.state().expect("learned")).expect("serialize");
    let bg = json.find("\"bg\":\"").expect("background field") + 6;
    for bad in ["zz", "0"] {
        let broken = format!("{}{bad}{}", &json[..bg], &json[bg + 2..]);
        let e = serde_json::from_str::<DetectorState>(&broken).expect_err("not hex");
        assert!(e.to_string().contains("hex"), "{e}");
    }
}

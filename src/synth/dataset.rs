//! Crop data sets for `training/` and enrollment crops: single fish rendered in varied poses
//! over pieces of a tank plate, cut with the detector's crop geometry, with part masks.
//!
//! Layout (relied on by `training/`): `DIR/{train,val,test}/<individual>/<flank>_<nnnn>.png`
//! plus `<flank>_<nnnn>.mask.png` (0 = background, 128 = head/fins/tail, 255 = striped flank),
//! split by individual, and `DIR/dataset.json`. Must never read or write outside `DIR`.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::SynthError;
use super::crop::{CropBox, blob_axis, crop_mask, crop_rgb};
use super::fish::{Individual, make_individuals};
use super::pattern::{Flank, min_flank_distance};
use super::raster::{Canvas, FishDraw, Overlay, View, draw_fish};
use super::scene::{NOISE_SIDE, Plate};

/// What to export.
#[derive(Debug, Clone)]
pub struct DatasetSpec {
    /// Output folder (created).
    pub dir: PathBuf,
    /// Number of individuals.
    pub individuals: usize,
    /// Crops per individual and flank.
    pub crops_per_flank: usize,
    /// Fractions of individuals in train, val, test (sum 1).
    pub split: [f32; 3],
    /// Seed of everything.
    pub seed: u64,
    /// How alike individuals are, 0 (very different) ..1 (nearly identical).
    pub similarity: f32,
    /// Crop width, px.
    pub crop_width: u32,
    /// Crop height, px.
    pub crop_height: u32,
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DatasetSummary {
    /// Individual names per split.
    pub train: Vec<String>,
    /// Validation individuals.
    pub val: Vec<String>,
    /// Test individuals.
    pub test: Vec<String>,
    /// Crop images written (masks not counted).
    pub crops: usize,
}

/// One rendered training sample.
#[derive(Debug, Clone)]
pub struct Sample {
    /// RGB crop, `crop_width × crop_height × 3`.
    pub rgb: Vec<u8>,
    /// Part mask, `crop_width × crop_height`.
    pub mask: Vec<u8>,
}

fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.random_range(1e-7f32..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn box_blur(c: &mut Canvas) {
    let (w, h) = (c.width, c.height);
    let src = c.rgb.clone();
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            for ch in 0..3 {
                let mut s = 0u32;
                for dy in 0..3 {
                    for dx in 0..3 {
                        s += u32::from(src[((y + dy - 1) * w + x + dx - 1) * 3 + ch]);
                    }
                }
                c.rgb[(y * w + x) * 3 + ch] = (s / 9) as u8;
            }
        }
    }
}

/// Renders one crop of `ind` showing `flank`, in a random realistic pose over a random piece
/// of `plate`, with lighting, noise, blur, rotation jitter and sometimes an occluder.
pub fn studio_sample(
    rng: &mut ChaCha8Rng,
    ind: &Individual,
    flank: Flank,
    plate: &Plate,
    distractor: &Individual,
    crop_w: u32,
    crop_h: u32,
) -> Sample {
    let length = (rng.random_range(60.0f32.ln()..200.0f32.ln())).exp();
    let along = rng.random_range(0.6..1.0f32);
    let pitch = rng.random_range(-0.45..0.45f32);
    let facing = if flank == Flank::Right { 1.0 } else { -1.0 };
    let axis = [facing * pitch.cos(), -pitch.sin()];
    let cw = ((1.8 * length) as usize + 8).min(plate.width);
    let chh = ((1.4 * length) as usize + 8).min(plate.height);
    let ox = rng.random_range(0..=plate.width - cw);
    let oy = rng.random_range(0..=plate.height - chh);
    let mut canvas = Canvas::new(cw, chh);
    let gain_l = rng.random_range(0.8..1.15f32);
    let gain = [
        gain_l * rng.random_range(0.95..1.05),
        gain_l,
        gain_l * rng.random_range(0.95..1.05),
    ];
    let sigma = rng.random_range(1.0..2.0f32);
    let (nx, ny) = (
        rng.random_range(0..NOISE_SIDE),
        rng.random_range(0..NOISE_SIDE),
    );
    for y in 0..chh {
        for x in 0..cw {
            let s = ((oy + y) * plate.width + ox + x) * 3;
            let n = f32::from(
                plate.noise[((y + ny) % NOISE_SIDE) * NOISE_SIDE + (x + nx) % NOISE_SIDE],
            ) * sigma;
            for (ch, g) in gain.iter().enumerate() {
                let v = f32::from(plate.rgb[s + ch]) * g + n;
                canvas.rgb[(y * cw + x) * 3 + ch] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    let scaled_noise: Vec<i8> = plate
        .noise
        .iter()
        .map(|&n| (f32::from(n) * sigma).round().clamp(-127.0, 127.0) as i8)
        .collect();
    let mut front = Vec::new();
    if rng.random::<f32>() < 0.08 {
        // A leaf or stem in front of part of the fish.
        front = vec![0u8; cw * chh];
        let lx = cw as f32 / 2.0 + rng.random_range(-0.4..0.4) * length;
        let ang = rng.random_range(-1.2..1.2f32) + std::f32::consts::FRAC_PI_2;
        let (s, c) = ang.sin_cos();
        let rx = 0.6 * length;
        let ry = rng.random_range(0.03..0.06) * length;
        for y in 0..chh {
            for x in 0..cw {
                let dx = x as f32 + 0.5 - lx;
                let dy = y as f32 + 0.5 - chh as f32 / 2.0;
                let p = (dx * c + dy * s) / rx;
                let q = (-dx * s + dy * c) / ry;
                if p * p + q * q <= 1.0 {
                    front[y * cw + x] = 255;
                    let i = (y * cw + x) * 3;
                    canvas.rgb[i] = (40.0 * gain[0]) as u8;
                    canvas.rgb[i + 1] = (105.0 * gain[1]) as u8;
                    canvas.rgb[i + 2] = (45.0 * gain[2]) as u8;
                }
            }
        }
    }
    let ov = Overlay {
        noise: &scaled_noise,
        noise_side: NOISE_SIDE,
        noise_off: (nx, ny),
        front: &front,
    };
    let (cx, cy) = (cw as f32 / 2.0, chh as f32 / 2.0);
    let tail_phase = rng.random_range(0.0..std::f32::consts::TAU);
    let tail_amp = rng.random_range(0.2..1.0f32);
    let target = FishDraw {
        ind,
        id: 1,
        cx,
        cy,
        axis,
        length,
        along,
        flank: Some(flank),
        pattern_vis: ((along - 0.2) / 0.4).clamp(0.0, 1.0),
        view: View::Side,
        tail_phase,
        tail_amp,
        gain,
    };
    let occluder = rng.random::<f32>() < 0.15;
    let in_front = rng.random::<bool>();
    let other = if occluder {
        let ang = rng.random_range(0.0..std::f32::consts::TAU);
        let dist = rng.random_range(0.35..0.7f32) * length;
        let op = rng.random_range(-0.4..0.4f32);
        let of = if rng.random::<bool>() { 1.0 } else { -1.0 };
        Some(FishDraw {
            ind: distractor,
            id: 2,
            cx: cx + ang.cos() * dist,
            cy: cy + ang.sin() * dist * 0.6,
            axis: [of * op.cos(), -op.sin()],
            length: length * rng.random_range(0.8..1.2),
            along: rng.random_range(0.5..1.0),
            flank: Some(if of > 0.0 { Flank::Right } else { Flank::Left }),
            pattern_vis: 1.0,
            tail_phase: rng.random_range(0.0..6.3),
            ..target
        })
    } else {
        None
    };
    if let (Some(o), false) = (&other, in_front) {
        draw_fish(&mut canvas, o, &ov);
    }
    let stats = draw_fish(&mut canvas, &target, &ov);
    if let (Some(o), true) = (&other, in_front) {
        draw_fish(&mut canvas, o, &ov);
    }
    if rng.random::<f32>() < 0.3 {
        box_blur(&mut canvas);
    }
    // The detector's geometry from the blob of the target's visible pixels (falling back to
    // the true pose when it is hidden), plus measurement jitter: ±10° rotation, centre and
    // length noise.
    let true_angle = axis[1].atan2(axis[0]);
    let (bx, by, bangle, bmajor) = blob_axis(&canvas.id, cw, [0, 0, cw, chh], 1)
        .filter(|b| b.3 > 0.4 * along * length)
        .unwrap_or((stats.cx, stats.cy, true_angle, along * length * 0.9));
    let jitter = rng.random_range(-10.0f32..10.0).to_radians();
    let bl = bmajor * (1.0 + 0.05 * gauss(rng)).clamp(0.85, 1.15);
    let b = CropBox::for_body(
        bx + 0.02 * length * gauss(rng),
        by + 0.02 * length * gauss(rng),
        bangle + jitter,
        bl,
        crop_w,
        crop_h,
    );
    Sample {
        rgb: crop_rgb(&canvas.rgb, cw, chh, &b, crop_w, crop_h),
        mask: crop_mask(&canvas.id, &canvas.part, cw, chh, 1, &b, crop_w, crop_h),
    }
}

/// Writes one crop as `<dir>/<flank>_<nnnn>.png` and its mask as
/// `<mask_dir>/<flank>_<nnnn>.mask.png`.
pub fn write_sample(
    dir: &Path,
    mask_dir: &Path,
    flank: Flank,
    n: usize,
    s: &Sample,
    w: u32,
    h: u32,
) -> Result<(), SynthError> {
    let p = dir.join(format!("{}_{n:04}.png", flank.letter()));
    image::save_buffer(&p, &s.rgb, w, h, image::ExtendedColorType::Rgb8).map_err(|source| {
        SynthError::Image {
            path: p.clone(),
            source,
        }
    })?;
    let m = mask_dir.join(format!("{}_{n:04}.mask.png", flank.letter()));
    image::save_buffer(&m, &s.mask, w, h, image::ExtendedColorType::L8).map_err(|source| {
        SynthError::Image {
            path: m.clone(),
            source,
        }
    })?;
    Ok(())
}

/// Individuals that never appear in a data set, used as occluders.
pub fn distractors(seed: u64, similarity: f32) -> Vec<Individual> {
    make_individuals(seed ^ 0xD15_7AC7, 6, similarity)
}

/// Assigns individuals to train/val/test (shuffled, deterministic); each split with a
/// non-zero fraction gets at least one individual when there are enough.
pub fn split_individuals(rng: &mut ChaCha8Rng, n: usize, split: [f32; 3]) -> [Vec<usize>; 3] {
    let mut idx: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        idx.swap(i, j);
    }
    let total: f32 = split.iter().sum::<f32>().max(1e-6);
    let mut counts = split.map(|f| ((f / total) * n as f32).round() as usize);
    for k in 0..3 {
        if split[k] > 0.0 && counts[k] == 0 && n >= 3 {
            counts[k] = 1;
        }
    }
    // Fix rounding so the counts add up to n (adjust train first).
    while counts.iter().sum::<usize>() > n {
        let k = (0..3).max_by_key(|&k| counts[k]).unwrap_or(0);
        counts[k] -= 1;
    }
    while counts.iter().sum::<usize>() < n {
        counts[0] += 1;
    }
    let train = idx[..counts[0]].to_vec();
    let val = idx[counts[0]..counts[0] + counts[1]].to_vec();
    let test = idx[counts[0] + counts[1]..].to_vec();
    [train, val, test]
}

/// Exports a data set (see the module docs for the layout). Deterministic for a given spec,
/// independent of the number of threads.
pub fn write_dataset(spec: &DatasetSpec, threads: usize) -> Result<DatasetSummary, SynthError> {
    let inds = make_individuals(spec.seed, spec.individuals, spec.similarity);
    let extras = distractors(spec.seed, spec.similarity);
    let plate = Plate::new(spec.seed, 1920, 1080, View::Side, 3.0);
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    rng.set_stream(3);
    let splits = split_individuals(&mut rng, inds.len(), spec.split);
    let names = ["train", "val", "test"];
    let mut jobs: Vec<(usize, PathBuf)> = Vec::new();
    for (k, members) in splits.iter().enumerate() {
        for &i in members {
            let dir = spec.dir.join(names[k]).join(&inds[i].name);
            std::fs::create_dir_all(&dir).map_err(|source| SynthError::Io {
                path: dir.clone(),
                source,
            })?;
            jobs.push((i, dir));
        }
    }
    let threads = threads.max(1);
    let results: Vec<Result<usize, SynthError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (jobs, inds, extras, plate) = (&jobs, &inds, &extras, &plate);
                scope.spawn(move || -> Result<usize, SynthError> {
                    let mut written = 0;
                    for (i, dir) in jobs.iter().skip(t).step_by(threads) {
                        let ind = &inds[*i];
                        let mut r = ChaCha8Rng::seed_from_u64(spec.seed);
                        r.set_stream(1000 + *i as u64);
                        for flank in Flank::BOTH {
                            for n in 0..spec.crops_per_flank {
                                let d = &extras[r.random_range(0..extras.len())];
                                let s = studio_sample(
                                    &mut r,
                                    ind,
                                    flank,
                                    plate,
                                    d,
                                    spec.crop_width,
                                    spec.crop_height,
                                );
                                write_sample(
                                    dir,
                                    dir,
                                    flank,
                                    n,
                                    &s,
                                    spec.crop_width,
                                    spec.crop_height,
                                )?;
                                written += 1;
                            }
                        }
                    }
                    Ok(written)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(SynthError::WorkerPanicked)))
            .collect()
    });
    let mut crops = 0;
    for r in results {
        crops += r?;
    }
    let to_names =
        |v: &Vec<usize>| -> Vec<String> { v.iter().map(|&i| inds[i].name.clone()).collect() };
    let summary = DatasetSummary {
        train: to_names(&splits[0]),
        val: to_names(&splits[1]),
        test: to_names(&splits[2]),
        crops,
    };
    let meta = serde_json::json!({
        "format": "finprint-synth-crops/1",
        "seed": spec.seed,
        "similarity": spec.similarity,
        "min_flank_distance": min_flank_distance(spec.similarity),
        "crop_width": spec.crop_width,
        "crop_height": spec.crop_height,
        "crops_per_flank": spec.crops_per_flank,
        "flanks": ["L", "R"],
        "splits": { "train": summary.train, "val": summary.val, "test": summary.test },
        "mask_values": { "background": 0, "head_fins_tail": 128, "striped_flank": 255 },
        "geometry": "body axis rotated horizontal by the smaller rotation (never mirrored, dorsal up); box length = body length x 1.3, box height = length / 3; a fish facing right shows flank R, facing left shows flank L",
        "files": "{split}/{individual}/{flank}_{nnnn}.png and {flank}_{nnnn}.mask.png",
    });
    let path = spec.dir.join("dataset.json");
    let text = serde_json::to_string_pretty(&meta).map_err(|e| SynthError::Json {
        path: path.clone(),
        source: e,
    })?;
    std::fs::write(&path, text).map_err(|source| SynthError::Io { path, source })?;
    Ok(summary)
}

/// A clean broadside picture of one flank on plain water (no noise, no blur), `w × h` RGB;
/// the fish faces right for the right flank and left for the left flank.
pub fn flank_portrait(ind: &Individual, flank: Flank, w: u32, h: u32) -> Vec<u8> {
    let (wu, hu) = (w as usize, h as usize);
    let mut canvas = Canvas::new(wu, hu);
    for px in canvas.rgb.chunks_exact_mut(3) {
        px.copy_from_slice(&[118, 158, 168]);
    }
    let facing = if flank == Flank::Right { 1.0 } else { -1.0 };
    let d = FishDraw {
        ind,
        id: 1,
        cx: w as f32 / 2.0,
        cy: h as f32 / 2.0,
        axis: [facing, 0.0],
        length: w as f32 / 1.15,
        along: 1.0,
        flank: Some(flank),
        pattern_vis: 1.0,
        view: View::Side,
        tail_phase: 0.0,
        tail_amp: 0.0,
        gain: [1.0; 3],
    };
    let ov = Overlay {
        noise: &[],
        noise_side: 0,
        noise_off: (0, 0),
        front: &[],
    };
    draw_fish(&mut canvas, &d, &ov);
    canvas.rgb
}

//! A tank render to files: `video.mkv`, `truth.csv`, `interactions.csv`, `meta.json` and
//! `enroll/<individual>/<flank>_<nnnn>.png` (+ `.mask.png`). Must never touch paths outside
//! the output folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::crop::{CropBox, blob_axis, crop_mask, crop_rgb};
use super::dataset::{Sample, distractors, flank_portrait, studio_sample, write_sample};
use super::pattern::{Flank, min_flank_distance};
use super::tank::{TankSim, TruthRow};
use super::video::VideoWriter;
use super::{SynthConfig, SynthError};
use crate::output::{InteractionDetector, InteractionEvent};

/// Header of `truth.csv`.
pub const TRUTH_HEADER: &str =
    "frame,t,camera,track,individual,x,y,x0,y0,x1,y1,heading,area,visible_fraction,flank\n";
/// Header of `interactions.csv` (the daemon's interaction log columns).
pub const INTERACTIONS_HEADER: &str =
    "camera,a,b,start,end,duration,min_distance,mean_distance,unit,start_frame,end_frame\n";
/// Fish whose visible fraction is below this are not "observed" for the interaction rule
/// (the daemon only feeds fish it sees).
pub const OBSERVED_FRACTION: f32 = 0.25;

/// What a render produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SynthSummary {
    /// Frames rendered.
    pub frames: u64,
    /// The video file, when one was written.
    pub video: Option<PathBuf>,
    /// Rows in `truth.csv`.
    pub truth_rows: u64,
    /// Ground-truth interaction events.
    pub interactions: usize,
    /// Enrollment crops written (per individual and flank up to `crops_per_flank`).
    pub enroll_crops: usize,
    /// How many of those were cut from the rendered frames (the rest are studio renders).
    pub enroll_from_video: usize,
    /// Wall time of the render, s.
    pub elapsed_s: f64,
    /// Frames per second achieved (render + encode + files).
    pub render_fps: f64,
}

/// One `truth.csv` line (deterministic formatting).
pub fn truth_line(camera: &str, r: &TruthRow) -> String {
    let bbox = match r.bbox {
        Some([a, b, c, d]) => format!("{a},{b},{c},{d}"),
        None => ",,,".to_string(),
    };
    format!(
        "{},{:.4},{},{},{},{:.2},{:.2},{},{:.4},{},{:.4},{}\n",
        r.frame,
        r.t,
        camera,
        r.track,
        r.individual,
        r.x,
        r.y,
        bbox,
        (r.heading * 1e4).round() / 1e4 + 0.0,
        r.area,
        r.visible_fraction,
        r.flank.map(|f| f.letter()).unwrap_or("")
    )
}

fn time_at(start: DateTime<Utc>, t: f64) -> String {
    let t = start + chrono::Duration::microseconds((t * 1e6).round() as i64);
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One `interactions.csv` line.
pub fn interaction_line(
    camera: &str,
    unit: &str,
    start: DateTime<Utc>,
    e: &InteractionEvent,
) -> String {
    format!(
        "{},{},{},{},{},{:.3},{:.3},{:.3},{},{},{}\n",
        camera,
        e.a,
        e.b,
        time_at(start, e.start),
        time_at(start, e.end),
        e.duration,
        e.min_distance,
        e.mean_distance,
        unit,
        e.start_frame,
        e.end_frame
    )
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Renders the tank of `cfg` into `out` (created). See the module docs for the files.
pub fn render(cfg: &SynthConfig, out: &Path) -> Result<SynthSummary, SynthError> {
    cfg.validate("synth")?;
    let t0 = std::time::Instant::now();
    std::fs::create_dir_all(out).map_err(io(out))?;
    let start_time: DateTime<Utc> = DateTime::parse_from_rfc3339(&cfg.start_time)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            crate::config::ConfigError::invalid(
                "synth.start_time",
                format!("`{}`: {e}: use RFC 3339", cfg.start_time),
            )
        })?;
    let mut sim = TankSim::new(cfg);
    let video_path = out.join("video.mkv");
    let mut video = if cfg.video {
        Some(VideoWriter::create(
            &video_path,
            cfg.width,
            cfg.height,
            cfg.fps,
            cfg.bitrate_kbps,
            super::threads_for(cfg.threads),
        )?)
    } else {
        None
    };
    let truth_path = out.join("truth.csv");
    let mut truth =
        std::io::BufWriter::new(std::fs::File::create(&truth_path).map_err(io(&truth_path))?);
    truth
        .write_all(TRUTH_HEADER.as_bytes())
        .map_err(io(&truth_path))?;
    let rule = cfg.interaction_rule();
    let unit = rule.unit.as_str();
    let mut detector = InteractionDetector::try_new(rule)
        .map_err(|m| crate::config::ConfigError::invalid("synth.interaction", m))?;
    let mut events: Vec<InteractionEvent> = Vec::new();
    let names: Vec<String> = sim.individuals().iter().map(|i| i.name.clone()).collect();
    let n_fish = names.len();
    // Enrollment crops from the rendered frames: broadside, fully visible, ≥ 0.5 s apart.
    let enroll_dir = out.join("enroll");
    let masks_dir = out.join("enroll_masks");
    let mut enroll_count = vec![[0usize; 2]; n_fish];
    let mut enroll_last = vec![[i64::MIN / 2; 2]; n_fish];
    let gap = i64::from(cfg.fps / 2).max(1);
    let (cw, ch) = (cfg.crop_width, cfg.crop_height);
    if cfg.crops_per_flank > 0 && cfg.view == super::View::Side {
        for n in &names {
            for d in [enroll_dir.join(n), masks_dir.join(n)] {
                std::fs::create_dir_all(&d).map_err(io(&d))?;
            }
        }
    }
    let mut rows = 0u64;
    let camera = cfg.camera.clone();
    for _ in 0..cfg.frames {
        let f = sim.next_frame();
        if let Some(v) = video.as_mut() {
            v.push(&f.canvas.rgb)?;
        }
        let mut seen: Vec<(String, f32, f32, f32)> = Vec::with_capacity(f.truth.len());
        for r in f.truth {
            truth
                .write_all(truth_line(&camera, r).as_bytes())
                .map_err(io(&truth_path))?;
            rows += 1;
            if r.visible_fraction >= OBSERVED_FRACTION {
                seen.push((r.individual.clone(), r.x, r.y, r.body_length));
            }
            let Some(flank) = r.flank else { continue };
            let k = flank.index();
            let (w, h) = (f.canvas.width, f.canvas.height);
            if cfg.crops_per_flank > enroll_count[r.track][k]
                && r.visible_fraction >= 0.999
                && r.flank_facing >= 0.8
                && f.index as i64 - enroll_last[r.track][k] >= gap
                && r.scan[0] > 0
                && r.scan[1] > 0
                && r.scan[2] < w
                && r.scan[3] < h
                && let Some((bx, by, angle, major)) =
                    blob_axis(&f.canvas.id, w, r.scan, (r.track + 1) as u16)
            {
                let b = CropBox::for_body(bx, by, angle, major, cw, ch);
                let s = Sample {
                    rgb: crop_rgb(&f.canvas.rgb, w, h, &b, cw, ch),
                    mask: crop_mask(
                        &f.canvas.id,
                        &f.canvas.part,
                        w,
                        h,
                        (r.track + 1) as u16,
                        &b,
                        cw,
                        ch,
                    ),
                };
                write_sample(
                    &enroll_dir.join(&r.individual),
                    &masks_dir.join(&r.individual),
                    flank,
                    enroll_count[r.track][k],
                    &s,
                    cw,
                    ch,
                )?;
                enroll_count[r.track][k] += 1;
                enroll_last[r.track][k] = f.index as i64;
            }
        }
        events.extend(detector.update(f.t, f.index, &seen));
    }
    events.extend(detector.finish());
    truth.flush().map_err(io(&truth_path))?;
    drop(truth);
    let frames_written = match video.take() {
        Some(v) => Some(v.finish()?),
        None => None,
    };
    // Top up enrollment crops with studio renders when the video did not show a flank often
    // enough (deterministic: own RNG stream per individual).
    let mut from_video = 0;
    let mut total = 0;
    if cfg.crops_per_flank > 0 && cfg.view == super::View::Side {
        let extras = distractors(cfg.seed, cfg.similarity);
        for (i, ind) in sim.individuals().iter().enumerate() {
            let mut r = ChaCha8Rng::seed_from_u64(cfg.seed);
            r.set_stream(500_000 + i as u64);
            for flank in Flank::BOTH {
                let k = flank.index();
                from_video += enroll_count[i][k];
                for n in enroll_count[i][k]..cfg.crops_per_flank {
                    let d = &extras[r.random_range(0..extras.len())];
                    let s = studio_sample(&mut r, ind, flank, sim.plate(), d, cw, ch);
                    write_sample(
                        &enroll_dir.join(&ind.name),
                        &masks_dir.join(&ind.name),
                        flank,
                        n,
                        &s,
                        cw,
                        ch,
                    )?;
                }
                total += cfg.crops_per_flank;
            }
        }
    }
    let inter_path = out.join("interactions.csv");
    let mut text = String::from(INTERACTIONS_HEADER);
    for e in &events {
        text.push_str(&interaction_line(&camera, unit, start_time, e));
    }
    std::fs::write(&inter_path, text).map_err(io(&inter_path))?;
    let elapsed = t0.elapsed().as_secs_f64();
    let summary = SynthSummary {
        frames: cfg.frames,
        video: frames_written.map(|_| video_path.clone()),
        truth_rows: rows,
        interactions: events.len(),
        enroll_crops: total,
        enroll_from_video: from_video,
        elapsed_s: elapsed,
        render_fps: cfg.frames as f64 / elapsed.max(1e-9),
    };
    let fish: Vec<serde_json::Value> = sim
        .individuals()
        .iter()
        .map(|i| serde_json::json!({"track": i.index, "individual": i.name, "body_length_1080": i.length_1080}))
        .collect();
    let meta = serde_json::json!({
        "format": "finprint-synth-tank/1",
        "seed": cfg.seed,
        "config": cfg,
        "fish": fish,
        "min_flank_distance": min_flank_distance(cfg.similarity),
        "files": {
            "video": if cfg.video { Some("video.mkv") } else { None },
            "truth": "truth.csv",
            "interactions": "interactions.csv",
            "enroll": "enroll/<individual>/<flank>_<nnnn>.png",
            "enroll_masks": "enroll_masks/<individual>/<flank>_<nnnn>.mask.png",
        },
        "truth_columns": "frame,t,camera,track,individual,x,y,x0,y0,x1,y1,heading,area,visible_fraction,flank: x,y = centre of the full silhouette (px); box = visible pixels, x1/y1 exclusive, empty when hidden; heading rad (0 = +x, y down); area = visible px; flank L/R facing the camera, empty when edge-on or top view",
        "interaction_rule": {
            "distance": cfg.interaction_distance,
            "unit": unit,
            "min_duration_s": cfg.interaction_min_duration_s,
            "max_gap_s": cfg.interaction_max_gap_s,
            "observed_when_visible_fraction_at_least": OBSERVED_FRACTION,
            "body_length": "full body length at the fish's depth (px)",
        },
    });
    let meta_path = out.join("meta.json");
    let text = serde_json::to_string_pretty(&meta).map_err(|e| SynthError::Json {
        path: meta_path.clone(),
        source: e,
    })?;
    std::fs::write(&meta_path, text).map_err(io(&meta_path))?;
    Ok(summary)
}

/// Renders frames 0..=`frame` of `cfg` without writing video and saves frame `frame` as
/// `out/frame_<frame>.png` and its id map as `out/idmap_<frame>.png` (one colour per fish).
pub fn snapshot(cfg: &SynthConfig, frame: u64, out: &Path) -> Result<(), SynthError> {
    cfg.validate("synth")?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut sim = TankSim::new(cfg);
    for _ in 0..frame {
        sim.next_frame();
    }
    let f = sim.next_frame();
    let (w, h) = (f.canvas.width as u32, f.canvas.height as u32);
    let p = out.join(format!("frame_{frame}.png"));
    image::save_buffer(&p, &f.canvas.rgb, w, h, image::ExtendedColorType::Rgb8).map_err(
        |source| SynthError::Image {
            path: p.clone(),
            source,
        },
    )?;
    let mut ids = Vec::with_capacity(f.canvas.id.len() * 3);
    for &v in &f.canvas.id {
        if v == 0 {
            ids.extend_from_slice(&[0, 0, 0]);
        } else {
            let k = u32::from(v).wrapping_mul(2_654_435_761);
            ids.extend_from_slice(&[
                (k >> 24) as u8 | 64,
                (k >> 16) as u8 | 64,
                (k >> 8) as u8 | 64,
            ]);
        }
    }
    let p = out.join(format!("idmap_{frame}.png"));
    image::save_buffer(&p, &ids, w, h, image::ExtendedColorType::Rgb8).map_err(|source| {
        SynthError::Image {
            path: p.clone(),
            source,
        }
    })?;
    Ok(())
}

/// Writes `out/flanks.png`: one row per individual (up to 8), left flank then right flank.
pub fn montage(cfg: &SynthConfig, out: &Path) -> Result<PathBuf, SynthError> {
    cfg.validate("synth")?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let inds = super::fish::make_individuals(cfg.seed, cfg.fish, cfg.similarity);
    let rows = inds.len().min(8);
    let (tw, th) = (384usize, 150usize);
    let (w, h) = (2 * tw, rows * th);
    let mut img = vec![255u8; w * h * 3];
    for (r, ind) in inds.iter().take(rows).enumerate() {
        for (c, flank) in Flank::BOTH.into_iter().enumerate() {
            let tile = flank_portrait(ind, flank, tw as u32, th as u32);
            for y in 0..th {
                let dst = ((r * th + y) * w + c * tw) * 3;
                img[dst..dst + tw * 3].copy_from_slice(&tile[y * tw * 3..(y + 1) * tw * 3]);
            }
        }
    }
    let p = out.join("flanks.png");
    image::save_buffer(&p, &img, w as u32, h as u32, image::ExtendedColorType::Rgb8).map_err(
        |source| SynthError::Image {
            path: p.clone(),
            source,
        },
    )?;
    Ok(p)
}

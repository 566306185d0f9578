//! Synth: renders simulated tanks (side and top view) of zebrafish with individual flank
//! patterns, with full ground truth: video, trajectories, interaction events, enrollment
//! crops and training data sets. It feeds the demo, the tests, the benchmarks and `training/`.
//!
//! Deterministic: the same config (seed included) gives byte-identical ground truth.
//! Must never be used by the daemon's frame path.

pub mod crop;
pub mod dataset;
pub mod fish;
pub mod live;
pub mod motion;
pub mod pattern;
pub mod raster;
pub mod render;
pub mod scene;
pub mod tank;
pub mod video;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

pub use dataset::{DatasetSpec, DatasetSummary, write_dataset};
pub use fish::{Individual, make_individuals};
pub use pattern::{Flank, FlankPattern, min_flank_distance};
pub use raster::View;
pub use render::{SynthSummary, render};
pub use tank::{RenderedFrame, TankSim, TruthRow};

/// Settings of a simulated tank render (library API; the CLI fills it from its flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthConfig {
    /// Seed of everything (patterns, tank, swimming, noise). Default 1.
    pub seed: u64,
    /// Number of fish. Default 8.
    pub fish: usize,
    /// Frames to render. Default 300.
    pub frames: u64,
    /// Frame rate. Default 30.
    pub fps: u32,
    /// Frame width, px (even). Default 1920.
    pub width: u32,
    /// Frame height, px (even). Default 1080.
    pub height: u32,
    /// Viewpoint: `side` or `top`. Default `side`.
    pub view: View,
    /// How alike individuals look, 0 (very different, easy) ..1 (nearly identical, hard).
    /// Default 0.3.
    pub similarity: f32,
    /// Sensor noise standard deviation, 8-bit levels. Default 3.
    pub noise_sigma: f32,
    /// Amplitude of the slow global lighting drift (relative gain). Default 0.06.
    pub lighting_drift: f32,
    /// Write `video.mkv`. Default `true`.
    pub video: bool,
    /// H.264 bit rate, kbit/s. Default 8000.
    pub bitrate_kbps: u32,
    /// Enrollment crops per individual and flank (0 = none). Default 10.
    pub crops_per_flank: usize,
    /// Crop width, px. Default 192.
    pub crop_width: u32,
    /// Crop height, px. Default 64.
    pub crop_height: u32,
    /// Camera name in the truth files. Default `synth`.
    pub camera: String,
    /// Capture time of frame 0 (RFC 3339), for the interaction log's times.
    /// Default `2026-01-01T00:00:00Z`.
    pub start_time: String,
    /// Interaction rule distance. Default: the daemon's (`[output.interactions] distance`, 1.5).
    pub interaction_distance: f64,
    /// Interaction rule unit. Default: the daemon's (`body_lengths`).
    pub interaction_unit: crate::output::DistanceUnit,
    /// Interaction rule minimum duration, s. Default: the daemon's (1.0).
    pub interaction_min_duration_s: f64,
    /// Interaction rule longest gap, s. Default: the daemon's (0.5).
    pub interaction_max_gap_s: f64,
    /// Worker threads (0 = all cores); does not change any output. Default 0.
    #[serde(skip_serializing)]
    pub threads: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        let i = crate::output::InteractionsConfig::default();
        SynthConfig {
            seed: 1,
            fish: 8,
            frames: 300,
            fps: 30,
            width: 1920,
            height: 1080,
            view: View::Side,
            similarity: 0.3,
            noise_sigma: 3.0,
            lighting_drift: 0.06,
            video: true,
            bitrate_kbps: 8000,
            crops_per_flank: 10,
            crop_width: 192,
            crop_height: 64,
            camera: "synth".into(),
            start_time: "2026-01-01T00:00:00Z".into(),
            interaction_distance: i.distance,
            interaction_unit: i.unit,
            interaction_min_duration_s: i.min_duration_s,
            interaction_max_gap_s: i.max_gap_s,
            threads: 0,
        }
    }
}

impl SynthConfig {
    /// The interaction rule of the ground truth (the daemon's rule with these parameters).
    pub fn interaction_rule(&self) -> crate::output::InteractionRule {
        crate::output::InteractionRule {
            distance: self.interaction_distance,
            unit: self.interaction_unit,
            mm_per_px: None,
            min_duration_s: self.interaction_min_duration_s,
            max_gap_s: self.interaction_max_gap_s,
        }
    }

    /// Checks every value; pure.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let bad = |f: &str, m: String| Err(ConfigError::invalid(format!("{key}.{f}"), m));
        if !(1..=1000).contains(&self.fish) {
            return bad(
                "fish",
                format!("{} is not allowed: use 1..=1000 fish", self.fish),
            );
        }
        if self.frames == 0 {
            return bad(
                "frames",
                "0 is not allowed: render at least one frame".into(),
            );
        }
        if !(1..=240).contains(&self.fps) {
            return bad("fps", format!("{} is not allowed: use 1..=240", self.fps));
        }
        for (f, v) in [("width", self.width), ("height", self.height)] {
            if !(64..=8192).contains(&v) || v % 2 == 1 {
                return bad(
                    f,
                    format!("{v} is not allowed: use an even size 64..=8192 px"),
                );
            }
        }
        if !(0.0..=1.0).contains(&self.similarity) {
            return bad(
                "similarity",
                format!("{} is not allowed: use 0..=1", self.similarity),
            );
        }
        if !(0.0..=40.0).contains(&self.noise_sigma) {
            return bad(
                "noise_sigma",
                format!("{} is not allowed: use 0..=40 levels", self.noise_sigma),
            );
        }
        if !(0.0..=0.5).contains(&self.lighting_drift) {
            return bad(
                "lighting_drift",
                format!("{} is not allowed: use 0..=0.5", self.lighting_drift),
            );
        }
        if !(100..=200_000).contains(&self.bitrate_kbps) {
            return bad(
                "bitrate_kbps",
                format!(
                    "{} is not allowed: use 100..=200000 kbit/s",
                    self.bitrate_kbps
                ),
            );
        }
        for (f, v) in [
            ("crop_width", self.crop_width),
            ("crop_height", self.crop_height),
        ] {
            if !(8..=1024).contains(&v) {
                return bad(f, format!("{v} is not allowed: use 8..=1024 px"));
            }
        }
        if self.camera.is_empty()
            || !self
                .camera
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad(
                "camera",
                format!(
                    "`{}` is not allowed: use letters, digits, `-` or `_`",
                    self.camera
                ),
            );
        }
        if let Err(m) = self.interaction_rule().check() {
            return bad("interaction", m);
        }
        Ok(())
    }
}

/// Errors of `finprint synth`.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A setting is not allowed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file or folder could not be written or read.
    #[error("synth: {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A PNG could not be written.
    #[error("synth: cannot write image {path}: {source}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// Underlying error.
        source: image::ImageError,
    },
    /// A CSV file could not be written.
    #[error("synth: cannot write {path}: {source}")]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// Underlying error.
        source: csv::Error,
    },
    /// JSON could not be written.
    #[error("synth: cannot write {path}: {source}")]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// Underlying error.
        source: serde_json::Error,
    },
    /// GStreamer failed (missing plugin, encoder or server error).
    #[error(
        "synth: GStreamer: {0} (are gstreamer1.0-plugins-ugly (x264enc) and -bad (h264parse) installed?)"
    )]
    Gst(String),
    /// Nothing to do.
    #[error(
        "synth: nothing to do: give --out DIR (tank render), --dataset DIR, or --live-port PORT"
    )]
    NothingToDo,
    /// A worker thread panicked (a bug).
    #[error("synth: a worker thread panicked")]
    WorkerPanicked,
}

/// `finprint synth` arguments.
#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Output folder of the tank render (video.mkv, truth.csv, interactions.csv, meta.json,
    /// enroll/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed: the same seed and settings give byte-identical ground truth.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of fish in the tank.
    #[arg(long, default_value_t = 8)]
    pub fish: usize,
    /// Number of frames to render (overrides --seconds).
    #[arg(long)]
    pub frames: Option<u64>,
    /// Length of the render in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Frame rate.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Frame width, px.
    #[arg(long, default_value_t = 1920)]
    pub width: u32,
    /// Frame height, px.
    #[arg(long, default_value_t = 1080)]
    pub height: u32,
    /// Camera viewpoint: `side` (flanks visible) or `top`.
    #[arg(long, value_enum, default_value_t = ViewArg::Side)]
    pub view: ViewArg,
    /// How alike individuals look: 0 = very different (easy) … 1 = nearly identical (hard).
    #[arg(long, default_value_t = 0.3)]
    pub similarity: f32,
    /// Do not write video.mkv (ground truth and crops only).
    #[arg(long)]
    pub no_video: bool,
    /// Enrollment crops per individual and flank written to OUT/enroll/.
    #[arg(long, default_value_t = 10)]
    pub crops_per_flank: usize,
    /// Also export a training data set (folder per individual, split by individual) here.
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Individuals in the data set.
    #[arg(long, default_value_t = 40)]
    pub individuals: usize,
    /// Crops per individual and flank in the data set.
    #[arg(long, default_value_t = 40)]
    pub dataset_crops_per_flank: usize,
    /// Fractions of individuals in train,val,test.
    #[arg(long, default_value = "0.6,0.2,0.2")]
    pub split: String,
    /// Crop size WxH of data set and enrollment crops.
    #[arg(long, default_value = "192x64")]
    pub crop_size: String,
    /// Serve the rendering live on rtsp://127.0.0.1:PORT/tank (endless, real time) until Ctrl-C.
    #[arg(long)]
    pub live_port: Option<u16>,
    /// Mount path of the live stream.
    #[arg(long, default_value = "/tank")]
    pub live_mount: String,
    /// Also write `OUT/frame_<N>.png` and `OUT/idmap_<N>.png` (false-colour id map) of frame N.
    #[arg(long)]
    pub snapshot: Option<u64>,
    /// Also write OUT/flanks.png: both flanks of the first (up to 8) individuals.
    #[arg(long)]
    pub montage: bool,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// CLI spelling of [`View`].
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ViewArg {
    /// Side view through the front glass.
    Side,
    /// Top view onto the water.
    Top,
}

/// Parses `0.6,0.2,0.2` into three non-negative fractions summing to 1 (±0.01).
pub fn parse_split(s: &str) -> Result<[f32; 3], ConfigError> {
    let parts: Vec<f32> = s.split(',').filter_map(|p| p.trim().parse().ok()).collect();
    let ok = parts.len() == 3
        && parts.iter().all(|p| p.is_finite() && *p >= 0.0)
        && (parts.iter().sum::<f32>() - 1.0).abs() < 0.01;
    if !ok {
        return Err(ConfigError::invalid(
            "--split",
            format!(
                "`{s}` is not allowed: give three fractions train,val,test that sum to 1, e.g. 0.6,0.2,0.2"
            ),
        ));
    }
    Ok([parts[0], parts[1], parts[2]])
}

/// Parses `192x64` into a crop size (each side 8..=1024).
pub fn parse_size(s: &str) -> Result<(u32, u32), ConfigError> {
    let mut it = s.split(['x', 'X']).map(|p| p.trim().parse::<u32>());
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(w)), Some(Ok(h)), None) if (8..=1024).contains(&w) && (8..=1024).contains(&h) => {
            Ok((w, h))
        }
        _ => Err(ConfigError::invalid(
            "--crop-size",
            format!("`{s}` is not allowed: use WxH with sides 8..1024, e.g. 192x64"),
        )),
    }
}

/// Number of worker threads to use for `requested` (0 = all cores).
pub fn threads_for(requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}

/// Checks the data set settings.
fn validate_dataset(spec: &DatasetSpec) -> Result<(), ConfigError> {
    if spec.individuals < 1 || spec.individuals > 10_000 {
        return Err(ConfigError::invalid(
            "--individuals",
            format!("{} is not allowed: use 1..=10000", spec.individuals),
        ));
    }
    if spec.crops_per_flank < 1 || spec.crops_per_flank > 100_000 {
        return Err(ConfigError::invalid(
            "--dataset-crops-per-flank",
            format!("{} is not allowed: use 1..=100000", spec.crops_per_flank),
        ));
    }
    if !(0.0..=1.0).contains(&spec.similarity) {
        return Err(ConfigError::invalid(
            "--similarity",
            format!("{} is not allowed: use 0..1", spec.similarity),
        ));
    }
    Ok(())
}

/// Entry point of `finprint synth`.
pub fn run_cli(args: SynthArgs) -> Result<(), SynthError> {
    let threads = threads_for(args.threads);
    let (crop_w, crop_h) = parse_size(&args.crop_size)?;
    let mut did = false;
    if let Some(dir) = &args.dataset {
        let spec = DatasetSpec {
            dir: dir.clone(),
            individuals: args.individuals,
            crops_per_flank: args.dataset_crops_per_flank,
            split: parse_split(&args.split)?,
            seed: args.seed,
            similarity: args.similarity,
            crop_width: crop_w,
            crop_height: crop_h,
        };
        validate_dataset(&spec)?;
        let t0 = std::time::Instant::now();
        let s = write_dataset(&spec, threads)?;
        tracing::info!(
            "data set written to {}: {} crops of {} individuals (train {}, val {}, test {}) in {:.1} s",
            dir.display(),
            s.crops,
            spec.individuals,
            s.train.len(),
            s.val.len(),
            s.test.len(),
            t0.elapsed().as_secs_f64()
        );
        did = true;
    }
    let frames = args
        .frames
        .unwrap_or_else(|| (args.seconds * f64::from(args.fps)).round().max(1.0) as u64);
    let cfg = SynthConfig {
        seed: args.seed,
        fish: args.fish,
        frames,
        fps: args.fps,
        width: args.width,
        height: args.height,
        view: match args.view {
            ViewArg::Side => View::Side,
            ViewArg::Top => View::Top,
        },
        similarity: args.similarity,
        video: !args.no_video,
        crops_per_flank: args.crops_per_flank,
        crop_width: crop_w,
        crop_height: crop_h,
        threads: args.threads,
        ..SynthConfig::default()
    };
    if let Some(out) = args
        .out
        .as_ref()
        .filter(|_| args.snapshot.is_none() && !args.montage)
    {
        let s = render(&cfg, out)?;
        tracing::info!(
            "rendered {} frames ({}x{}, {} fish) to {} in {:.1} s ({:.1} fps, {:.2}x real time): {} truth rows, {} interactions, {} enrollment crops ({} from the video)",
            s.frames,
            cfg.width,
            cfg.height,
            cfg.fish,
            out.display(),
            s.elapsed_s,
            s.render_fps,
            s.render_fps / f64::from(cfg.fps),
            s.truth_rows,
            s.interactions,
            s.enroll_crops,
            s.enroll_from_video
        );
        did = true;
    }
    if let (Some(out), Some(n)) = (&args.out, args.snapshot) {
        render::snapshot(&cfg, n, out)?;
        did = true;
    }
    if let (Some(out), true) = (&args.out, args.montage) {
        render::montage(&cfg, out)?;
        did = true;
    }
    if let Some(port) = args.live_port {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        println!(
            "serving {} (Ctrl-C to stop)",
            live::live_url(port, &args.live_mount)
        );
        live::serve_rtsp(&cfg, port, &args.live_mount, stop, true)?;
        did = true;
    }
    if !did {
        return Err(SynthError::NothingToDo);
    }
    Ok(())
}

//! Synth: renders simulated tanks (side and top view) of zebrafish with individual flank
//! patterns, with full ground truth: video, trajectories, interaction events, enrollment
//! crops and training data sets. It feeds the demo, the tests, the benchmarks and `training/`.
//!
//! Deterministic: the same config (seed included) gives byte-identical ground truth.
//! Must never be used by the daemon's frame path.

pub mod crop;
pub mod dataset;
pub mod fish;
pub mod motion;
pub mod pattern;
pub mod raster;
pub mod scene;

use std::path::PathBuf;

use crate::config::ConfigError;

pub use dataset::{DatasetSpec, DatasetSummary, write_dataset};
pub use fish::{Individual, make_individuals};
pub use pattern::{Flank, FlankPattern, min_flank_distance};
pub use raster::View;

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
    if !did {
        return Err(SynthError::NothingToDo);
    }
    Ok(())
}

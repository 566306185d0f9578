//! `finprint replay`: processes one recording as fast as possible into the same outputs as the
//! daemon, with a progress bar, then prints a summary. Must never serve HTTP or touch the
//! daemon's state directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::{CameraSummary, FrameHook, Pipeline, PipelineError};
use crate::config::{CameraConfig, CameraView, Config, ConfigError};
use crate::ingest::SourceConfig;
use crate::output::metrics::Metrics;

/// `finprint replay` arguments.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Config file. Its first camera's settings (or `--camera`'s) are used with `--input` as the
    /// source. Without it, built-in defaults suit a typical tank recording (fish polarity, threshold
    /// and size are found automatically).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Recording: a video file, a URI (`file:///…`, `rtsp://…`), or an image sequence pattern
    /// such as `frames/frame_%06d.pgm`.
    #[arg(long)]
    pub input: String,
    /// Output folder (created if missing); files go to `OUT/<camera>/`.
    #[arg(long)]
    pub out: PathBuf,
    /// Which camera of the config to take settings from (default: the first).
    #[arg(long)]
    pub camera: Option<String>,
    /// Number of fish in the tank, when known (overrides the config's `population`).
    #[arg(long)]
    pub population: Option<u32>,
    /// Where the camera looked from: `top`, `side` or `auto` (overrides the config's `view`;
    /// built-in default `auto`: decided from the first frames and logged).
    #[arg(long, value_enum)]
    pub view: Option<CameraView>,
    /// Frames per second of an image sequence (ignored for videos, which carry their own timing).
    #[arg(long)]
    pub fps: Option<f64>,
    /// No progress bar (also off automatically when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
    /// Also write every crop sent to the encoder to this folder (created if missing) as
    /// `<camera>_<t>_<track>.png` (sets `[identity] crops_dir`): what the encoder sees, e.g. to
    /// train one on a camera's own crops (`scripts/daemon_crops.py`).
    #[arg(long)]
    pub crops_out: Option<PathBuf>,
}

/// Builds the one-camera config replay runs with.
pub fn replay_config(args: &ReplayArgs) -> Result<Config, ConfigError> {
    let mut cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::parse("", Path::new("<built-in defaults>"))?,
    };
    let mut source = SourceConfig::from_input(&args.input);
    if let (Some(fps), SourceConfig::ImageSequence { framerate, .. }) = (args.fps, &mut source) {
        *framerate = fps;
    }
    let base = match &args.camera {
        Some(name) => cfg
            .cameras
            .iter()
            .find(|c| &c.name == name)
            .cloned()
            .ok_or_else(|| {
                ConfigError::invalid(
                    "--camera",
                    format!("no camera named `{name}` in the config"),
                )
            })?,
        None => cfg
            .cameras
            .first()
            .cloned()
            .unwrap_or_else(|| CameraConfig {
                name: "cam0".into(),
                tank: None,
                population: None,
                view: CameraView::default(),
                mm_per_px: None,
                source: source.clone(),
                detect: Default::default(),
                track: Default::default(),
            }),
    };
    let mut cam = base;
    cam.source = source;
    if args.population.is_some() {
        cam.population = args.population;
    }
    if let Some(view) = args.view {
        cam.view = view;
    }
    cfg.cameras = vec![cam];
    if let Some(dir) = &args.crops_out {
        cfg.identity.crops_dir = Some(dir.clone());
    }
    cfg.output = cfg.output.for_replay(&args.out);
    cfg.http.enabled = false;
    cfg.validate()?;
    Ok(cfg)
}

/// Entry point of `finprint replay`.
pub fn replay(args: ReplayArgs) -> Result<(), PipelineError> {
    let cfg = replay_config(&args)?;
    if let Some(dir) = &cfg.identity.crops_dir {
        std::fs::create_dir_all(dir).map_err(|source| {
            PipelineError::Output(crate::output::OutputError::CreateDir {
                path: dir.clone(),
                source,
            })
        })?;
    }
    let live = super::live_state(&cfg);
    let metrics = Metrics::new();
    let bar = if args.quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} {pos} frames ({per_sec}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b
    };
    let hook_bar = bar.clone();
    let hook: FrameHook = Arc::new(move |tf| {
        hook_bar.inc(1);
        if tf.index % 25 == 0 {
            hook_bar.set_message(format!("{} fish visible", tf.visible_fish));
        }
    });
    remove_previous_outputs(&args.out, &cfg)?;
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let pipeline = Pipeline::start(&cfg, live, metrics, stop, Some(hook))?;
    let summaries = pipeline.wait();
    bar.finish_and_clear();
    let summaries = summaries?;
    print_summary(&summaries, started.elapsed().as_secs_f64(), &args.out);
    Ok(())
}

/// A replay writes one set of files per camera (no rotation); the daemon's sinks append, so the
/// files of an earlier replay into the same folder are removed first (and said so).
fn remove_previous_outputs(out: &Path, cfg: &Config) -> Result<(), PipelineError> {
    for cam in &cfg.cameras {
        for name in [
            "trajectories.csv",
            "interactions.csv",
            "mot.txt",
            "counts.csv",
        ] {
            let p = out.join(&cam.name).join(name);
            match std::fs::remove_file(&p) {
                Ok(()) => {
                    tracing::info!(file = %p.display(), "replaced the output of an earlier replay")
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(PipelineError::Output(
                        crate::output::OutputError::CreateDir { path: p, source: e },
                    ));
                }
            }
        }
    }
    Ok(())
}

fn print_summary(s: &[CameraSummary], secs: f64, out: &Path) {
    for c in s {
        println!(
            "camera {}: {} frames in {:.1} s ({:.1} frames/s), {} detections, {} tracks",
            c.camera,
            c.frames,
            secs,
            c.frames as f64 / secs.max(1e-9),
            c.detections,
            c.tracks
        );
    }
    println!("outputs in {}", out.display());
}

//! Eval: scores predicted tracks against ground truth (CLEAR MOT, identity metrics, HOTA,
//! per-frame count agreement). Must never be used by the live daemon's frame path.
//!
//! `finprint eval --gt GT --pred PRED [--gate PX] [--gt-format F] [--pred-format F]
//! [--id-column track|individual] [--gt-interactions CSV --pred-interactions CSV
//! [--event-iou X]] [--json]` reads both files ([`read`]), scores them with
//! [`score::evaluate`] (and interaction logs with [`events::score_events`]) and prints a table
//! (or JSON: the track scores' fields, plus `interactions` when given). The library functions
//! are pure, so tests call them directly.

pub mod events;
pub mod read;
pub mod score;

use std::path::PathBuf;

pub use read::{Format, IdColumn, Point, Sequence};
pub use score::{Scores, evaluate};

/// `finprint eval` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Ground-truth track file (MOTChallenge txt, FastTrack tracking.txt or finprint trajectories.csv).
    #[arg(long)]
    pub gt: PathBuf,
    /// Predicted track file (same formats).
    #[arg(long)]
    pub pred: PathBuf,
    /// Matching gate: centres at most this many pixels apart can match. HOTA similarity is
    /// max(0, 1 − d/gate).
    #[arg(long, default_value_t = 10.0)]
    pub gate: f64,
    /// Format of --gt.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub gt_format: Format,
    /// Format of --pred.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub pred_format: Format,
    /// Which finprint column is the object id (rows without an individual use `track:<id>`).
    #[arg(long, value_enum, default_value_t = IdColumn::Track)]
    pub id_column: IdColumn,
    /// Ground-truth interaction log (e.g. the simulator's interactions.csv); needs --pred-interactions.
    #[arg(long, requires = "pred_interactions")]
    pub gt_interactions: Option<PathBuf>,
    /// Predicted interaction log (the daemon's interactions*.csv); best with --id-column individual.
    #[arg(long, requires = "gt_interactions")]
    pub pred_interactions: Option<PathBuf>,
    /// Temporal IoU (frames) two events need to match.
    #[arg(long, default_value_t = 0.5)]
    pub event_iou: f64,
    /// Print the scores as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Everything `finprint eval` reports.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Report {
    /// Track scores.
    #[serde(flatten)]
    pub tracks: Scores,
    /// Interaction scores, when both logs were given.
    pub interactions: Option<events::EventScores>,
}

/// Errors of `finprint eval`.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A file is not in the expected format.
    #[error("{path}:{line}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A bad argument.
    #[error("{0}")]
    Args(String),
}

/// Reads all files and scores them.
pub fn evaluate_files(args: &EvalArgs) -> Result<Report, EvalError> {
    if !(args.event_iou.is_finite() && args.event_iou > 0.0 && args.event_iou <= 1.0) {
        return Err(EvalError::Args(format!(
            "--event-iou {} must be in (0, 1]",
            args.event_iou
        )));
    }
    let tracks = evaluate_track_files(args)?;
    let interactions = match (&args.gt_interactions, &args.pred_interactions) {
        (Some(g), Some(p)) => {
            let (g, p) = (events::read_events(g)?, events::read_events(p)?);
            Some(events::score_events(
                &g,
                &p,
                &tracks.id_mapping,
                args.event_iou,
            ))
        }
        _ => None,
    };
    Ok(Report {
        tracks,
        interactions,
    })
}

/// Reads both track files and scores them.
pub fn evaluate_track_files(args: &EvalArgs) -> Result<Scores, EvalError> {
    if !(args.gate.is_finite() && args.gate > 0.0) {
        return Err(EvalError::Args(format!(
            "--gate {} must be a positive number of pixels",
            args.gate
        )));
    }
    let gt = read::read(&args.gt, args.gt_format, args.id_column)?;
    let pred = read::read(&args.pred, args.pred_format, args.id_column)?;
    for (name, s, p) in [
        ("ground truth", &gt, &args.gt),
        ("prediction", &pred, &args.pred),
    ] {
        if s.duplicates > 0 {
            tracing::warn!(
                "{name} {}: {} rows repeat a (frame, id) and were ignored",
                p.display(),
                s.duplicates
            );
        }
    }
    if gt.is_empty() {
        tracing::warn!("ground truth {} has no objects", args.gt.display());
    }
    Ok(evaluate(&gt, &pred, args.gate))
}

/// The human-readable table of [`Scores`].
pub fn format_table(s: &Scores) -> String {
    let pct = |v: f64| format!("{:6.2} %", 100.0 * v);
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        out.push_str(&format!("{k:<22} {v}\n"));
    };
    line("frames", s.frames.to_string());
    line("gt objects / ids", format!("{} / {}", s.gt, s.gt_ids));
    line("pred objects / ids", format!("{} / {}", s.pred, s.pred_ids));
    line("gate", format!("{} px", s.gate));
    line("MOTA", pct(s.mota));
    line("MOTP (mean distance)", format!("{:.3} px", s.motp_px));
    line("IDF1", pct(s.idf1));
    line("IDP", pct(s.idp));
    line("IDR", pct(s.idr));
    line("HOTA", pct(s.hota));
    line("DetA", pct(s.det_a));
    line("AssA", pct(s.ass_a));
    line("LocA", pct(s.loc_a));
    line("recall", pct(s.recall));
    line("precision", pct(s.precision));
    line("ID switches", s.id_switches.to_string());
    line("TP / FP / FN", format!("{} / {} / {}", s.tp, s.fp, s.fn_));
    line(
        "IDTP / IDFP / IDFN",
        format!("{} / {} / {}", s.idtp, s.idfp, s.idfn),
    );
    line(
        "count == gt count",
        format!(
            "{} of frames (mean |error| {:.3})",
            pct(s.count_agreement),
            s.count_mae
        ),
    );
    out
}

/// The human-readable table of [`events::EventScores`].
pub fn format_event_table(e: &events::EventScores) -> String {
    let pct = |v: f64| format!("{:6.2} %", 100.0 * v);
    let rows = [
        (
            "interactions gt/pred",
            format!("{} / {} ({} with unmapped ids)", e.gt, e.pred, e.unmapped),
        ),
        ("matched (IoU ≥)", format!("{} ({})", e.matched, e.min_iou)),
        ("event precision", pct(e.precision)),
        ("event recall", pct(e.recall)),
        ("event F1", pct(e.f1)),
        ("mean IoU", format!("{:.3}", e.mean_iou)),
        (
            "start error",
            format!("{:.2} frames", e.mean_start_error_frames),
        ),
        (
            "duration error",
            format!("{:.2} frames", e.mean_duration_error_frames),
        ),
    ];
    rows.iter().map(|(k, v)| format!("{k:<22} {v}\n")).collect()
}

/// Entry point of `finprint eval`.
pub fn run_cli(args: EvalArgs) -> Result<(), EvalError> {
    let report = evaluate_files(&args)?;
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| EvalError::Args(format!("cannot encode scores as JSON: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", format_table(&report.tracks));
        if let Some(e) = &report.interactions {
            print!("{}", format_event_table(e));
        }
    }
    Ok(())
}

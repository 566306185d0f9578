//! Eval: scores predicted tracks against ground truth (CLEAR MOT, identity metrics, HOTA,
//! per-frame count agreement). Must never be used by the live daemon's frame path.
//!
//! `finprint eval --gt GT --pred PRED [--gate PX] [--gt-format F] [--pred-format F]
//! [--id-column track|individual] [--json]` reads both files ([`read`]), scores them with
//! [`score::evaluate`] and prints a table (or JSON). The library functions are pure, so tests
//! call them directly.

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
    /// Print the scores as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
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

/// Reads both files and scores them.
pub fn evaluate_files(args: &EvalArgs) -> Result<Scores, EvalError> {
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

/// Entry point of `finprint eval`.
pub fn run_cli(args: EvalArgs) -> Result<(), EvalError> {
    let scores = evaluate_files(&args)?;
    if args.json {
        let text = serde_json::to_string_pretty(&scores)
            .map_err(|e| EvalError::Args(format!("cannot encode scores as JSON: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", format_table(&scores));
    }
    Ok(())
}

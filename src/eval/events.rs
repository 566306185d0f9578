//! Scoring of interaction logs (`interactions*.csv`) against ground-truth events (e.g. the
//! simulator's `interactions.csv`, produced by the same rule).
//!
//! Predicted ids (`individual` or `track:<id>`) are first translated to ground-truth ids with
//! the identity assignment of the track evaluation ([`super::score::Scores::id_mapping`]);
//! a predicted event whose ids do not both translate cannot match. Events match when they
//! concern the same unordered pair and their frame intervals (inclusive) overlap with a
//! temporal IoU of at least `min_iou`; the matching is one-to-one and maximises the summed
//! IoU. Must never panic on malformed files: errors name the file and line.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use super::EvalError;
use super::score::IdPair;

/// One interaction event as read from a log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// One fish id.
    pub a: String,
    /// The other fish id.
    pub b: String,
    /// First frame of the event.
    pub start_frame: u64,
    /// Last frame of the event.
    pub end_frame: u64,
}

/// Scores of interaction detection.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventScores {
    /// Temporal IoU needed for a match.
    pub min_iou: f64,
    /// Ground-truth events.
    pub gt: u64,
    /// Predicted events.
    pub pred: u64,
    /// Matched events.
    pub matched: u64,
    /// Predicted events whose ids could not be translated to ground-truth ids.
    pub unmapped: u64,
    /// matched / pred.
    pub precision: f64,
    /// matched / gt.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Mean temporal IoU of matched events.
    pub mean_iou: f64,
    /// Mean |start frame difference| of matched events.
    pub mean_start_error_frames: f64,
    /// Mean |duration difference| of matched events, frames.
    pub mean_duration_error_frames: f64,
}

/// Reads an interaction log (header with `a`, `b`, `start_frame`, `end_frame`).
pub fn read_events(path: &Path) -> Result<Vec<Event>, EvalError> {
    let bad = |line: usize, message: String| EvalError::Format {
        path: path.to_path_buf(),
        line,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| bad(1, format!("cannot read the CSV header: {e}")))?
        .iter()
        .map(String::from)
        .collect();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| h == n)
            .ok_or_else(|| bad(1, format!("header has no `{n}` column")))
    };
    let (ai, bi, si, ei) = (col("a")?, col("b")?, col("start_frame")?, col("end_frame")?);
    let mut out = Vec::new();
    for (k, rec) in rdr.records().enumerate() {
        let ln = k + 2;
        let rec = rec.map_err(|e| bad(ln, format!("bad CSV row: {e}")))?;
        let field = |i: usize, n: &str| {
            rec.get(i)
                .ok_or_else(|| bad(ln, format!("row has no `{n}` field")))
        };
        let frame = |i: usize, n: &str| -> Result<u64, EvalError> {
            let s = field(i, n)?;
            s.trim()
                .parse()
                .map_err(|_| bad(ln, format!("column `{n}`: `{s}` is not a frame number")))
        };
        let (start_frame, end_frame) = (frame(si, "start_frame")?, frame(ei, "end_frame")?);
        if end_frame < start_frame {
            return Err(bad(
                ln,
                format!("end_frame {end_frame} is before start_frame {start_frame}"),
            ));
        }
        out.push(Event {
            a: field(ai, "a")?.to_string(),
            b: field(bi, "b")?.to_string(),
            start_frame,
            end_frame,
        });
    }
    Ok(out)
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

/// The gt id of a predicted id; `track:<id>` also tries the bare track id (for scores made
/// with `--id-column track`).
fn lookup<'a>(to_gt: &HashMap<&str, &'a str>, id: &str) -> Option<&'a str> {
    to_gt
        .get(id)
        .or_else(|| id.strip_prefix("track:").and_then(|t| to_gt.get(t)))
        .copied()
}

/// Temporal IoU of two inclusive frame intervals.
fn iou(x: &Event, y: &Event) -> f64 {
    let inter = x.end_frame.min(y.end_frame) as i64 - x.start_frame.max(y.start_frame) as i64 + 1;
    if inter <= 0 {
        return 0.0;
    }
    let union = x.end_frame.max(y.end_frame) - x.start_frame.min(y.start_frame) + 1;
    inter as f64 / union as f64
}

/// Scores `pred` events against `gt` events (see the module docs).
pub fn score_events(gt: &[Event], pred: &[Event], mapping: &[IdPair], min_iou: f64) -> EventScores {
    let to_gt: HashMap<&str, &str> = mapping
        .iter()
        .map(|p| (p.pred.as_str(), p.gt.as_str()))
        .collect();
    let mut unmapped = 0u64;
    let translated: Vec<Option<Event>> = pred
        .iter()
        .map(|e| match (lookup(&to_gt, &e.a), lookup(&to_gt, &e.b)) {
            (Some(a), Some(b)) => Some(Event {
                a: (*a).to_string(),
                b: (*b).to_string(),
                ..e.clone()
            }),
            _ => {
                unmapped += 1;
                None
            }
        })
        .collect();
    let ious: Vec<Vec<f64>> = gt
        .iter()
        .map(|g| {
            translated
                .iter()
                .map(|p| match p {
                    Some(p) if pair(&p.a, &p.b) == pair(&g.a, &g.b) => {
                        let v = iou(g, p);
                        if v >= min_iou && v > 0.0 { v } else { 0.0 }
                    }
                    _ => 0.0,
                })
                .collect()
        })
        .collect();
    let assign = super::score::max_weight_assignment(gt.len(), pred.len(), |i, j| {
        (ious[i][j] * 1e9).round() as i64
    });
    let matches: Vec<(usize, usize)> = assign
        .into_iter()
        .filter(|&(i, j)| ious[i][j] > 0.0)
        .collect();
    let n = matches.len() as f64;
    let mean = |f: &dyn Fn(usize, usize) -> f64| {
        if matches.is_empty() {
            0.0
        } else {
            matches.iter().map(|&(i, j)| f(i, j)).sum::<f64>() / n
        }
    };
    let precision = if pred.is_empty() {
        0.0
    } else {
        n / pred.len() as f64
    };
    let recall = if gt.is_empty() {
        0.0
    } else {
        n / gt.len() as f64
    };
    EventScores {
        min_iou,
        gt: gt.len() as u64,
        pred: pred.len() as u64,
        matched: matches.len() as u64,
        unmapped,
        precision,
        recall,
        f1: if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        },
        mean_iou: mean(&|i, j| ious[i][j]),
        mean_start_error_frames: mean(&|i, j| {
            gt[i].start_frame.abs_diff(pred[j].start_frame) as f64
        }),
        mean_duration_error_frames: mean(&|i, j| {
            let dg = (gt[i].end_frame - gt[i].start_frame) as f64;
            let dp = (pred[j].end_frame - pred[j].start_frame) as f64;
            (dg - dp).abs()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(a: &str, b: &str, s: u64, e: u64) -> Event {
        Event {
            a: a.into(),
            b: b.into(),
            start_frame: s,
            end_frame: e,
        }
    }

    #[test]
    fn events_match_by_translated_pair_and_overlap() {
        let mapping = vec![
            IdPair {
                gt: "nemo".into(),
                pred: "7".into(),
                frames: 10,
            },
            IdPair {
                gt: "dory".into(),
                pred: "track:3".into(),
                frames: 10,
            },
            IdPair {
                gt: "bruce".into(),
                pred: "9".into(),
                frames: 10,
            },
        ];
        let gt = vec![
            ev("dory", "nemo", 100, 199),
            ev("bruce", "nemo", 300, 349),
            ev("bruce", "dory", 500, 520),
        ];
        let pred = vec![
            ev("7", "track:3", 110, 209), // dory–nemo, IoU 90/110
            ev("9", "7", 400, 449),       // right pair, no overlap
            ev("9", "track:3", 505, 530), // bruce–dory, IoU 16/31
            ev("42", "7", 100, 199),      // 42 unknown: unmapped
        ];
        let s = score_events(&gt, &pred, &mapping, 0.3);
        assert_eq!((s.gt, s.pred, s.matched, s.unmapped), (3, 4, 2, 1));
        assert!((s.precision - 0.5).abs() < 1e-12 && (s.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.mean_iou - (90.0 / 110.0 + 16.0 / 31.0) / 2.0).abs() < 1e-12);
        assert!((s.mean_start_error_frames - 7.5).abs() < 1e-12);
        // A stricter IoU drops the second match.
        assert_eq!(score_events(&gt, &pred, &mapping, 0.6).matched, 1);
        // Nothing in, nothing out, no panic.
        let e = score_events(&[], &[], &[], 0.5);
        assert_eq!((e.matched, e.f1), (0, 0.0));
    }
}

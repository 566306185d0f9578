//! Readers of track files into a [`Sequence`]: MOTChallenge text, FastTrack `tracking.txt`
//! and finprint `trajectories.csv`. Frame indices are 0-based everywhere after reading
//! (MOT's 1-based frames are converted). Must never panic on malformed files: every problem
//! is an [`EvalError`] naming the file, line and column.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::EvalError;

/// File formats `finprint eval` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Guess from the header line (see [`detect_format`]).
    Auto,
    /// MOTChallenge `frame(1-based),id,bb_left,bb_top,w,h,conf,x,y,z`; centre = box centre.
    Mot,
    /// FastTrack `tracking.txt` (tab-separated, header; `imageNumber` 0-based, `xBody,yBody`, `id`).
    Fasttrack,
    /// finprint `trajectories.csv` (`frame` 0-based, `x,y`, id from `track` or `individual`).
    Finprint,
}

/// Which finprint column identifies an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum IdColumn {
    /// The track id (`track`).
    #[default]
    Track,
    /// The individual (`individual`); rows without one use `track:<id>`.
    Individual,
}

/// One object position in one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Dense index into [`Sequence::ids`].
    pub id: usize,
    /// Centre x, px.
    pub x: f64,
    /// Centre y, px.
    pub y: f64,
}

/// Tracks of one recording: per 0-based frame, the objects in file order.
#[derive(Debug, Clone, Default)]
pub struct Sequence {
    /// Object ids as written in the file (index = [`Point::id`]).
    pub ids: Vec<String>,
    /// Frame → objects (a frame id appears at most once per frame).
    pub frames: BTreeMap<u64, Vec<Point>>,
    /// Rows ignored because their (frame, id) was already seen.
    pub duplicates: u64,
    index: HashMap<String, usize>,
}

impl Sequence {
    /// Adds one object; a repeated (frame, id) is counted in `duplicates` and ignored.
    pub fn push(&mut self, frame: u64, id: &str, x: f64, y: f64) {
        let id = match self.index.get(id) {
            Some(&k) => k,
            None => {
                let k = self.ids.len();
                self.ids.push(id.to_string());
                self.index.insert(id.to_string(), k);
                k
            }
        };
        let objs = self.frames.entry(frame).or_default();
        if objs.iter().any(|p| p.id == id) {
            self.duplicates += 1;
            return;
        }
        objs.push(Point { id, x, y });
    }

    /// Number of objects over all frames.
    pub fn len(&self) -> usize {
        self.frames.values().map(Vec::len).sum()
    }

    /// Whether no object is in any frame.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads `path` in `format` (`Auto` guesses). `id_column` applies to finprint files.
pub fn read(path: &Path, format: Format, id_column: IdColumn) -> Result<Sequence, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let format = match format {
        Format::Auto => detect_format(&text).ok_or_else(|| EvalError::Format {
            path: path.to_path_buf(),
            line: 1,
            message: "cannot tell the format from the first line: pass --gt-format/--pred-format (mot, fasttrack, finprint)".into(),
        })?,
        f => f,
    };
    match format {
        Format::Mot => parse_mot(&text, path),
        Format::Fasttrack => parse_fasttrack(&text, path),
        Format::Finprint | Format::Auto => parse_finprint(&text, path, id_column),
    }
}

/// Guesses the format from the first non-empty line: a header with `imageNumber` is FastTrack,
/// a header starting `frame,` with `track` is finprint, ten or so numeric comma-separated
/// fields are MOT.
pub fn detect_format(text: &str) -> Option<Format> {
    let first = text.lines().find(|l| !l.trim().is_empty())?;
    if first.contains("imageNumber") && first.contains("xBody") {
        return Some(Format::Fasttrack);
    }
    if first.starts_with("frame,") && first.contains(",track") {
        return Some(Format::Finprint);
    }
    let fields: Vec<&str> = first.split(',').map(str::trim).collect();
    if fields.len() >= 6 && fields.iter().all(|f| f.parse::<f64>().is_ok()) {
        return Some(Format::Mot);
    }
    None
}

fn bad(path: &Path, line: usize, message: impl Into<String>) -> EvalError {
    EvalError::Format {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

fn num(path: &Path, line: usize, name: &str, s: &str) -> Result<f64, EvalError> {
    let v: f64 = s.trim().parse().map_err(|_| {
        bad(
            path,
            line,
            format!("column `{name}`: `{s}` is not a number"),
        )
    })?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(bad(
            path,
            line,
            format!("column `{name}`: `{s}` is not finite"),
        ))
    }
}

fn frame_index(
    path: &Path,
    line: usize,
    name: &str,
    s: &str,
    offset: i64,
) -> Result<u64, EvalError> {
    let v = num(path, line, name, s)?;
    if v.fract() != 0.0 {
        return Err(bad(
            path,
            line,
            format!("column `{name}`: `{s}` is not a whole frame number"),
        ));
    }
    let f = v as i64 - offset;
    u64::try_from(f).map_err(|_| {
        bad(
            path,
            line,
            format!("column `{name}`: frame {s} is out of range (MOT frames start at 1)"),
        )
    })
}

/// Id text of a number as written (`3`, `3.0` → `3`).
fn id_text(s: &str) -> String {
    let t = s.trim();
    match t.parse::<f64>() {
        Ok(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
        _ => t.to_string(),
    }
}

/// MOTChallenge text: `frame,id,bb_left,bb_top,w,h[,conf,x,y,z]`, 1-based frames.
pub fn parse_mot(text: &str, path: &Path) -> Result<Sequence, EvalError> {
    let mut seq = Sequence::default();
    for (i, line) in text.lines().enumerate() {
        let ln = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 6 {
            return Err(bad(
                path,
                ln,
                format!(
                    "expected at least 6 comma-separated fields (frame,id,bb_left,bb_top,w,h), got {}",
                    f.len()
                ),
            ));
        }
        let frame = frame_index(path, ln, "frame", f[0], 1)?;
        let id = id_text(f[1]);
        let (l, t) = (
            num(path, ln, "bb_left", f[2])?,
            num(path, ln, "bb_top", f[3])?,
        );
        let (w, h) = (num(path, ln, "w", f[4])?, num(path, ln, "h", f[5])?);
        seq.push(frame, &id, l + w / 2.0, t + h / 2.0);
    }
    Ok(seq)
}

fn header_index(path: &Path, header: &[&str], name: &str) -> Result<usize, EvalError> {
    header
        .iter()
        .position(|h| h.trim() == name)
        .ok_or_else(|| bad(path, 1, format!("header has no `{name}` column")))
}

/// FastTrack `tracking.txt`: tab-separated with a header; `imageNumber` (0-based), `id`,
/// `xBody`, `yBody`.
pub fn parse_fasttrack(text: &str, path: &Path) -> Result<Sequence, EvalError> {
    let mut lines = text.lines().enumerate();
    let header: Vec<&str> = match lines.next() {
        Some((_, h)) => h.split('\t').collect(),
        None => return Err(bad(path, 1, "empty file")),
    };
    let (fi, ii) = (
        header_index(path, &header, "imageNumber")?,
        header_index(path, &header, "id")?,
    );
    let (xi, yi) = (
        header_index(path, &header, "xBody")?,
        header_index(path, &header, "yBody")?,
    );
    let need = fi.max(ii).max(xi).max(yi);
    let mut seq = Sequence::default();
    for (i, line) in lines {
        let ln = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() <= need {
            return Err(bad(
                path,
                ln,
                format!(
                    "expected {} tab-separated fields, got {}",
                    header.len(),
                    f.len()
                ),
            ));
        }
        let frame = frame_index(path, ln, "imageNumber", f[fi], 0)?;
        seq.push(
            frame,
            &id_text(f[ii]),
            num(path, ln, "xBody", f[xi])?,
            num(path, ln, "yBody", f[yi])?,
        );
    }
    Ok(seq)
}

/// finprint `trajectories.csv` (0-based `frame`, `x`, `y`, `track`, `individual`).
pub fn parse_finprint(text: &str, path: &Path, id_column: IdColumn) -> Result<Sequence, EvalError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| bad(path, 1, format!("cannot read the CSV header: {e}")))?
        .iter()
        .map(String::from)
        .collect();
    let header_ref: Vec<&str> = header.iter().map(String::as_str).collect();
    let fi = header_index(path, &header_ref, "frame")?;
    let ti = header_index(path, &header_ref, "track")?;
    let (xi, yi) = (
        header_index(path, &header_ref, "x")?,
        header_index(path, &header_ref, "y")?,
    );
    let ii = match id_column {
        IdColumn::Individual => Some(header_index(path, &header_ref, "individual")?),
        IdColumn::Track => None,
    };
    let mut seq = Sequence::default();
    for (i, rec) in rdr.records().enumerate() {
        let ln = i + 2;
        let rec = rec.map_err(|e| bad(path, ln, format!("bad CSV row: {e}")))?;
        let get = |k: usize, name: &str| {
            rec.get(k)
                .ok_or_else(|| bad(path, ln, format!("row has no `{name}` field")))
        };
        let frame = frame_index(path, ln, "frame", get(fi, "frame")?, 0)?;
        let track = get(ti, "track")?.trim();
        let id = match ii {
            Some(k) => match get(k, "individual")?.trim() {
                "" => format!("track:{track}"),
                s => s.to_string(),
            },
            None => track.to_string(),
        };
        seq.push(
            frame,
            &id,
            num(path, ln, "x", get(xi, "x")?)?,
            num(path, ln, "y", get(yi, "y")?)?,
        );
    }
    Ok(seq)
}

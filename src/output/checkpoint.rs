//! Checkpoints of recordings: how far a camera's rows in the output folder go, so that
//! `finprint run` restarted on the same recording (after `systemctl restart`, a crash or a power
//! cut) continues after them instead of writing them a second time or losing the ones it held.
//!
//! One file per camera, `<dir>/<camera>/checkpoint.json`, written atomically by the writer
//! right after it has written and `fsync`ed the camera's files: a checkpoint never claims rows
//! that are not on disk. On resume the files are cut back to the lengths it recorded (rows
//! written after it are written again) and the source continues at its next frame. A live
//! camera's checkpoint only carries its frame and track numbers and its time origin on: its
//! rows are never cut, since its frames cannot be read again. The checkpoint a clean stop
//! writes after a recording's last frame also carries the detector's and tracker's state after
//! that frame ([`Checkpoint::state`]), so the resumed run goes on exactly as an uninterrupted
//! one; the periodic ones (what a crash leaves) carry the last frame's tracks only.
//! Must never decide what a source reads: it only records and loads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::OutputError;
use super::interactions::OpenEpisode;
use crate::messages::{ResumeState, TrackSeed};

/// The file name of a camera's checkpoint inside its output folder.
pub const FILE_NAME: &str = "checkpoint.json";
/// The format this build writes.
const VERSION: u32 = 1;

/// Where a camera's rows in the output folder end (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Format version; this build reads and writes 1.
    pub version: u32,
    /// The source, as `SourceConfig::resume_key` describes it (path, size and
    /// modification time of a file; pattern, indexes and frame rate of an image sequence; the
    /// description of a live camera).
    pub source: String,
    /// Index of the first frame whose rows are not in the files: where a restart continues.
    pub next_frame: u64,
    /// Stream time (s) of the last frame whose rows are in the files.
    pub last_t: f64,
    /// Capture time of stream time 0, ms since the Unix epoch, so that a resumed recording's
    /// `time` column goes on from the same origin.
    pub origin_unix_ms: u64,
    /// Track ids below this are taken by rows in the files; a resumed run numbers new tracks
    /// from here.
    pub next_track: u64,
    /// Length in bytes of each file the camera was writing (file name inside the camera's
    /// folder), when the checkpoint was written.
    pub files: BTreeMap<String, u64>,
    /// The confirmed tracks of the last frame, for the resumed run's tracker to continue.
    #[serde(default)]
    pub tracks: Vec<TrackSeed>,
    /// The interaction episodes open after the last frame (pairs keyed `track:<id>`), for a
    /// resumed run to continue: an event spanning the restart stays one event. The events a
    /// stop ended are written after the checkpoint's file lengths, so a resume cuts them off.
    #[serde(default)]
    pub interactions: Vec<OpenEpisode>,
    /// The individual last seen on each track of an open episode (`track:<id>` → individual),
    /// to name the pair when the event ends.
    #[serde(default)]
    pub names: BTreeMap<String, String>,
    /// The detector's and tracker's state after the checkpoint's frame, when the run stopped
    /// right after it (end of recording or stop): a resumed run continues from it instead of
    /// learning the background again and rebuilding the tracks from `tracks`. Absent from
    /// checkpoints written while running (a crash resumes from `tracks`). A state this build
    /// cannot read (another build's) is dropped with a warning, and the resume goes on from
    /// `tracks`: never a reason to refuse the checkpoint.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "state_or_none"
    )]
    pub state: Option<ResumeState>,
}

/// `state` as this build writes it, else `None` (logged).
fn state_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ResumeState>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    match serde_json::from_value(v) {
        Ok(s) => Ok(Some(s)),
        Err(e) => {
            tracing::warn!(
                "the checkpoint's detector and tracker state is not one this build reads ({e}); \
                 the tracks go on from the last rows and the background is learned again"
            );
            Ok(None)
        }
    }
}

impl Checkpoint {
    /// A checkpoint after the frame at `index` (stream time `t`, captured at `captured`).
    pub fn after_frame(
        source: &str,
        index: u64,
        t: f64,
        captured: SystemTime,
        next_track: u64,
    ) -> Checkpoint {
        let origin = if t.is_finite() && t >= 0.0 {
            captured
                .checked_sub(Duration::from_secs_f64(t.min(1e9)))
                .unwrap_or(captured)
        } else {
            captured
        };
        Checkpoint {
            version: VERSION,
            source: source.to_string(),
            next_frame: index.saturating_add(1),
            last_t: t,
            origin_unix_ms: origin
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            next_track,
            files: BTreeMap::new(),
            tracks: Vec::new(),
            interactions: Vec::new(),
            names: BTreeMap::new(),
            state: None,
        }
    }

    /// The capture time of stream time 0.
    pub fn origin(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.origin_unix_ms)
    }

    /// A checkpoint before the frame at `index` (stream time `t`, captured at `captured`), the
    /// first of a run: no rows of this run before it. Its clock is just before that frame's
    /// (half the mean frame interval so far; -1 s before frame 0, where nothing is skipped).
    pub fn before_frame(
        source: &str,
        index: u64,
        t: f64,
        captured: SystemTime,
        next_track: u64,
    ) -> Checkpoint {
        let mut cp = Checkpoint::after_frame(source, index, t, captured, next_track);
        cp.next_frame = index;
        cp.last_t = if index > 0 && t.is_finite() && t > 0.0 {
            t - 0.5 * t / index as f64
        } else {
            -1.0
        };
        cp
    }

    /// `<camera_dir>/checkpoint.json`.
    pub fn path(camera_dir: &Path) -> PathBuf {
        camera_dir.join(FILE_NAME)
    }

    /// Loads the checkpoint at `path`: `Ok(None)` when there is none; an error naming the file
    /// when it cannot be read or is not a checkpoint of this build.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>, OutputError> {
        let bad = |message: String| OutputError::Checkpoint {
            path: path.to_path_buf(),
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(format!("cannot read it: {e}"))),
        };
        let cp: Checkpoint =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a checkpoint: {e}")))?;
        if cp.version != VERSION {
            return Err(bad(format!(
                "version {} is not the version {VERSION} this build reads",
                cp.version
            )));
        }
        if !cp.last_t.is_finite() {
            return Err(bad("its last stream time is not a number".into()));
        }
        let finite = |t: &TrackSeed| {
            [t.x, t.y, t.vx, t.vy, t.heading, t.body_length, t.area]
                .iter()
                .chain(&t.bbox)
                .all(|v| v.is_finite())
        };
        if !cp.tracks.iter().all(finite) {
            return Err(bad(
                "a track in it has a coordinate that is not a number".into()
            ));
        }
        if !cp.interactions.iter().all(OpenEpisode::is_valid) {
            return Err(bad(
                "an interaction episode in it is damaged (a number that is not one, or a pair out of order)".into(),
            ));
        }
        if cp
            .files
            .keys()
            .any(|f| Path::new(f).components().count() != 1)
        {
            return Err(bad("it names files outside the camera's folder".into()));
        }
        Ok(Some(cp))
    }

    /// Writes the checkpoint atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<(), OutputError> {
        // Indented for a reader, unless it carries a stop's stage state (megabytes of numbers,
        // half of them indentation when indented).
        let bytes = if self.state.is_some() {
            serde_json::to_vec(self)
        } else {
            serde_json::to_vec_pretty(self)
        };
        let mut bytes = bytes.map_err(|e| OutputError::Checkpoint {
            path: path.to_path_buf(),
            message: format!("cannot serialise it: {e}"),
        })?;
        bytes.push(b'\n');
        crate::durable::write_atomic(path, &bytes).map_err(|source| OutputError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// True when the checkpoint covers rows but none of the files that held them exists any
    /// more (outputs deleted to process the recording again).
    pub fn rows_gone(&self, camera_dir: &Path) -> bool {
        let mut written = self.files.iter().filter(|(_, len)| **len > 0).peekable();
        written.peek().is_some() && written.all(|(name, _)| !camera_dir.join(name).exists())
    }

    /// Cuts each file of `camera_dir` that the checkpoint names back to its recorded length
    /// (rows written after the checkpoint are written again by the resumed run); one recorded
    /// empty (started after the checkpoint, e.g. the next day's) is removed. A file shorter
    /// than recorded (edited or replaced since) is left alone with a warning.
    pub fn cut_files(&self, camera_dir: &Path) -> Result<(), OutputError> {
        for (name, &len) in &self.files {
            let path = camera_dir.join(name);
            let now = match std::fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if len == 0 {
                        continue;
                    }
                    tracing::warn!(path = %path.display(), "output file named by the checkpoint is gone; its rows up to the checkpoint are not written again");
                    continue;
                }
                Err(source) => return Err(OutputError::Open { path, source }),
            };
            if now < len {
                tracing::warn!(
                    path = %path.display(),
                    bytes = now,
                    checkpoint_bytes = len,
                    "output file is shorter than the checkpoint says (edited or replaced?); left as it is"
                );
                continue;
            }
            if now > len && len == 0 {
                // A file started after the checkpoint (the next day's): all of it goes.
                std::fs::remove_file(&path).map_err(|source| OutputError::Write {
                    path: path.clone(),
                    source,
                })?;
                tracing::info!(
                    path = %path.display(),
                    removed_bytes = now,
                    "a file started after the last checkpoint is removed; the resumed run writes its rows again"
                );
            } else if now > len {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|source| OutputError::Open {
                        path: path.clone(),
                        source,
                    })?;
                f.set_len(len)
                    .and_then(|()| f.sync_all())
                    .map_err(|source| OutputError::Write {
                        path: path.clone(),
                        source,
                    })?;
                tracing::info!(
                    path = %path.display(),
                    removed_bytes = now - len,
                    "rows written after the last checkpoint are removed; the resumed run writes them again"
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let captured = UNIX_EPOCH + Duration::from_millis(1_700_000_010_500);
        let mut cp = Checkpoint::after_frame("file a.mkv", 41, 10.5, captured, 7);
        cp.files.insert("trajectories.csv".into(), 12);
        cp
    }

    #[test]
    fn a_checkpoint_comes_back_as_it_was_saved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = Checkpoint::path(dir.path());
        assert_eq!(Checkpoint::load(&path).expect("load"), None);
        let cp = sample();
        assert_eq!(cp.next_frame, 42);
        assert_eq!(cp.origin_unix_ms, 1_700_000_000_000);
        cp.save(&path).expect("save");
        assert_eq!(Checkpoint::load(&path).expect("load"), Some(cp));
    }

    #[test]
    fn a_damaged_or_foreign_checkpoint_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = Checkpoint::path(dir.path());
        std::fs::write(&path, b"{\"version\": 1, \"sou").expect("write");
        let e = Checkpoint::load(&path).expect_err("damaged").to_string();
        assert!(
            e.contains("checkpoint.json") && e.contains("delete it"),
            "{e}"
        );
        let mut v = serde_json::to_value(sample()).expect("json");
        v["files"] = serde_json::json!({"../x.csv": 1});
        std::fs::write(&path, v.to_string()).expect("write");
        let e = Checkpoint::load(&path).expect_err("escapes").to_string();
        assert!(e.contains("outside"), "{e}");
        v = serde_json::to_value(sample()).expect("json");
        v["interactions"] = serde_json::json!([{"a": "track:2", "b": "track:1", "start": 1.0,
            "start_frame": 25, "last": 2.0, "last_frame": 50, "min": 0.5, "sum": 20.0, "n": 26}]);
        std::fs::write(&path, v.to_string()).expect("write");
        let e = Checkpoint::load(&path)
            .expect_err("pair out of order")
            .to_string();
        assert!(e.contains("interaction episode"), "{e}");
        v["interactions"][0]["a"] = "track:0".into();
        std::fs::write(&path, v.to_string()).expect("write");
        let cp = Checkpoint::load(&path).expect("load").expect("some");
        assert_eq!(cp.interactions.len(), 1);
        // A stage state of another build: dropped, the checkpoint still resumes.
        v = serde_json::to_value(sample()).expect("json");
        v["state"] = serde_json::json!({"after_frame": 41, "detector": null, "tracker": {"x": 1}});
        std::fs::write(&path, v.to_string()).expect("write");
        let cp = Checkpoint::load(&path).expect("load").expect("some");
        assert_eq!((cp.state, cp.next_frame), (None, 42));
        v = serde_json::to_value(sample()).expect("json");
        v["version"] = 9.into();
        std::fs::write(&path, v.to_string()).expect("write");
        assert!(Checkpoint::load(&path).is_err());
    }

    #[test]
    fn files_are_cut_back_to_the_checkpoint_and_shorter_ones_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("trajectories.csv"),
            b"header\nrow 1\nrow 2\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("counts.csv"), b"h\n").expect("write");
        let mut cp = sample();
        cp.files.insert("trajectories.csv".into(), 13);
        cp.files.insert("counts.csv".into(), 10);
        cp.files.insert("mot.txt".into(), 10);
        cp.cut_files(dir.path()).expect("cut");
        let t = std::fs::read(dir.path().join("trajectories.csv")).expect("read");
        assert_eq!(t, b"header\nrow 1\n");
        let c = std::fs::read(dir.path().join("counts.csv")).expect("read");
        assert_eq!(c, b"h\n");
        assert!(!dir.path().join("mot.txt").exists());
    }
}

//! The identity registry of one tank (individuals: id, name, first/last seen, enrolled photos,
//! merges) together with its gallery, and their persistence: one JSON file per tank written
//! atomically (temp file in the same folder, fsync, rename, fsync of the folder).
//!
//! Policy for a damaged or foreign state file: a clear error at start, never a silent fresh
//! start — a gallery is hard-won lab data and must not be overwritten by an empty one. Move the
//! file away to start fresh. Must never read pixels or run the model.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::IdentifyError;
use super::gallery::{Gallery, Prototype};
use super::solver::SavedFragment;

/// State file format tag.
pub const STATE_FORMAT: &str = "finprint-identity/1";

/// One individual fish.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Individual {
    /// Stable id (`fish-007`, or the enrolment folder name).
    pub id: String,
    /// Display name; outputs use it instead of the id when set.
    #[serde(default)]
    pub name: Option<String>,
    /// First time seen or enrolled (RFC 3339, UTC).
    pub first_seen: String,
    /// Last time seen (RFC 3339, UTC).
    pub last_seen: String,
    /// Photos it was enrolled from.
    #[serde(default)]
    pub enrolled_photos: Vec<String>,
    /// When merged into another individual: that one's id.
    #[serde(default)]
    pub merged_into: Option<String>,
}

impl Individual {
    /// The label written to outputs: the name when set, else the id.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// A merge of two identities (undoable).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Merge {
    /// Merge number within the tank.
    pub id: u64,
    /// Individual that disappeared.
    pub from: String,
    /// Individual that absorbed it.
    pub into: String,
    /// When (RFC 3339).
    pub at: String,
    /// Whether it was undone.
    #[serde(default)]
    pub undone: bool,
}

/// Registry of one tank.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Registry {
    /// All individuals, merged ones included.
    pub individuals: Vec<Individual>,
    /// Merge history.
    #[serde(default)]
    pub merges: Vec<Merge>,
    /// Next number for automatic ids.
    pub next_number: u64,
}

/// Current wall-clock time as RFC 3339.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Registry {
    /// Looks an individual up by id.
    pub fn get(&self, id: &str) -> Option<&Individual> {
        self.individuals.iter().find(|i| i.id == id)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Individual> {
        self.individuals.iter_mut().find(|i| i.id == id)
    }

    /// Follows merges to the individual that now stands for `id`.
    pub fn resolve<'a>(&'a self, id: &'a str) -> &'a str {
        let mut cur = id;
        for _ in 0..64 {
            match self.get(cur).and_then(|i| i.merged_into.as_deref()) {
                Some(next) => cur = next,
                None => break,
            }
        }
        cur
    }

    /// Individuals not merged into another.
    pub fn active(&self) -> impl Iterator<Item = &Individual> {
        self.individuals.iter().filter(|i| i.merged_into.is_none())
    }

    /// Output label of `id` after resolving merges.
    pub fn label(&self, id: &str) -> String {
        let r = self.resolve(id);
        self.get(r)
            .map(|i| i.label().to_string())
            .unwrap_or_else(|| r.to_string())
    }

    /// Creates a new individual with the next automatic id (`fish-001`, ...).
    pub fn create(&mut self) -> String {
        loop {
            self.next_number += 1;
            let id = format!("fish-{:03}", self.next_number);
            if self.get(&id).is_none()
                && !self
                    .individuals
                    .iter()
                    .any(|i| i.name.as_deref() == Some(&id))
            {
                let now = now_rfc3339();
                self.individuals.push(Individual {
                    id: id.clone(),
                    name: None,
                    first_seen: now.clone(),
                    last_seen: now,
                    enrolled_photos: Vec::new(),
                    merged_into: None,
                });
                return id;
            }
        }
    }

    /// Creates or updates an enrolled individual with a given id.
    pub fn upsert_enrolled(&mut self, id: &str, name: Option<String>, photos: Vec<String>) {
        let now = now_rfc3339();
        match self.get_mut(id) {
            Some(ind) => {
                if name.is_some() {
                    ind.name = name;
                }
                for p in photos {
                    if !ind.enrolled_photos.contains(&p) {
                        ind.enrolled_photos.push(p);
                    }
                }
            }
            None => self.individuals.push(Individual {
                id: id.to_string(),
                name,
                first_seen: now.clone(),
                last_seen: now,
                enrolled_photos: photos,
                merged_into: None,
            }),
        }
    }

    /// Marks an individual as seen now.
    pub fn touch(&mut self, id: &str) {
        let now = now_rfc3339();
        if let Some(i) = self.get_mut(id) {
            i.last_seen = now;
        }
    }

    /// Sets (or clears with `None`/empty) the display name. Names are unique within the tank.
    pub fn rename(&mut self, id: &str, name: Option<String>) -> Result<(), IdentifyError> {
        let name = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        if let Some(n) = &name {
            if n.len() > 64 || n.chars().any(|c| c.is_control() || c == ',' || c == '"') {
                return Err(IdentifyError::Request(format!(
                    "name `{n}` is not allowed: at most 64 characters, no control characters, commas or quotes"
                )));
            }
            if self
                .individuals
                .iter()
                .any(|i| i.id != id && (i.name.as_deref() == Some(n) || i.id == *n))
            {
                return Err(IdentifyError::Conflict(format!(
                    "name `{n}` is already used by another individual"
                )));
            }
        }
        let ind = self
            .get_mut(id)
            .ok_or_else(|| IdentifyError::NotFound(format!("no individual `{id}`")))?;
        ind.name = name;
        Ok(())
    }

    /// Merges `from` into `into` (both active); returns the merge record. The gallery's
    /// prototypes are reassigned by the caller.
    pub fn merge(&mut self, from: &str, into: &str) -> Result<Merge, IdentifyError> {
        if from == into {
            return Err(IdentifyError::Request(
                "cannot merge an individual into itself".into(),
            ));
        }
        for id in [from, into] {
            let ind = self
                .get(id)
                .ok_or_else(|| IdentifyError::NotFound(format!("no individual `{id}`")))?;
            if let Some(m) = &ind.merged_into {
                return Err(IdentifyError::Conflict(format!(
                    "`{id}` is already merged into `{m}`"
                )));
            }
        }
        let m = Merge {
            id: self.merges.iter().map(|m| m.id).max().unwrap_or(0) + 1,
            from: from.to_string(),
            into: into.to_string(),
            at: now_rfc3339(),
            undone: false,
        };
        if let Some(f) = self.get_mut(from) {
            f.merged_into = Some(into.to_string());
        }
        self.merges.push(m.clone());
        Ok(m)
    }

    /// Undoes merge `merge_id` (the absorbed individual comes back). Refused when the absorbing
    /// individual was itself merged away since.
    pub fn unmerge(&mut self, merge_id: u64) -> Result<Merge, IdentifyError> {
        let m = self
            .merges
            .iter()
            .find(|m| m.id == merge_id)
            .cloned()
            .ok_or_else(|| IdentifyError::NotFound(format!("no merge {merge_id}")))?;
        if m.undone {
            return Err(IdentifyError::Conflict(format!(
                "merge {merge_id} is already undone"
            )));
        }
        if self.get(&m.from).and_then(|i| i.merged_into.as_deref()) != Some(m.into.as_str()) {
            return Err(IdentifyError::Conflict(format!(
                "merge {merge_id} cannot be undone: `{}` is no longer merged into `{}`",
                m.from, m.into
            )));
        }
        if let Some(f) = self.get_mut(&m.from) {
            f.merged_into = None;
        }
        if let Some(r) = self.merges.iter_mut().find(|r| r.id == merge_id) {
            r.undone = true;
        }
        Ok(m)
    }
}

/// Registry + gallery of one tank: what is shared (behind a lock) between the identifier and
/// the HTTP API, and what is saved.
#[derive(Debug)]
pub struct TankState {
    /// Tank name.
    pub tank: String,
    /// Embedding-space key (see `ModelCard::fingerprint`).
    pub model: String,
    /// The registry.
    pub registry: Registry,
    /// The gallery.
    pub gallery: Gallery,
    /// The fragments of the regrouping's window that had an individual when last saved: the
    /// next start regroups with them as an uninterrupted run would ([`SavedFragment`]).
    pub window: Vec<SavedFragment>,
    /// Stream time the window's fragments count back from ([`crate::identify::solver::Window::saved_t`]).
    pub window_t: Option<f64>,
    /// Changed since the last save.
    pub dirty: bool,
}

/// A tank's registry and gallery as the state file holds them (also kept whole in a stopped
/// run's checkpoint, see `crate::identify::IdentifierState`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateFile {
    format: String,
    tank: String,
    model: String,
    dim: usize,
    saved_at: String,
    registry: Registry,
    prototypes: Vec<Prototype>,
    /// Absent in files written before it was added.
    #[serde(default)]
    window: Vec<SavedFragment>,
    /// Stream time `window` counts back from (absent in files of older builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window_t: Option<f64>,
}

/// State file of a tank inside `dir`.
pub fn state_path(dir: &Path, tank: &str) -> PathBuf {
    let safe: String = tank
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{safe}.identity.json"))
}

impl TankState {
    /// Empty state.
    pub fn new(tank: &str, model: &str, dim: usize, rebuild_fraction: f32) -> TankState {
        TankState {
            tank: tank.to_string(),
            model: model.to_string(),
            registry: Registry::default(),
            gallery: Gallery::new(dim, rebuild_fraction),
            window: Vec::new(),
            window_t: None,
            dirty: false,
        }
    }

    /// Merges `from` into `into` in registry and gallery.
    pub fn merge(&mut self, from: &str, into: &str) -> Result<Merge, IdentifyError> {
        let m = self.registry.merge(from, into)?;
        self.gallery.reassign(|p| p.owner == from, into);
        self.dirty = true;
        Ok(m)
    }

    /// Undoes a merge in registry and gallery: prototypes recorded for the absorbed individual
    /// go back to it.
    pub fn unmerge(&mut self, merge_id: u64) -> Result<Merge, IdentifyError> {
        let m = self.registry.unmerge(merge_id)?;
        let into = m.into.clone();
        self.gallery
            .reassign(|p| p.origin == m.from && p.owner == into, &m.from);
        self.dirty = true;
        Ok(m)
    }

    /// Serialises the state (call under the lock; write with [`write_atomic`] outside it).
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&self.to_file())
    }

    /// The state as the file holds it.
    pub fn to_file(&self) -> StateFile {
        StateFile {
            format: STATE_FORMAT.into(),
            tank: self.tank.clone(),
            model: self.model.clone(),
            dim: self.gallery.dim(),
            saved_at: now_rfc3339(),
            registry: self.registry.clone(),
            prototypes: self.gallery.snapshot(),
            window: self.window.clone(),
            window_t: self.window_t,
        }
    }

    /// Serialises and writes the state atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<(), IdentifyError> {
        let bytes = self.to_bytes().map_err(|e| IdentifyError::Save {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(path, &bytes)
    }

    /// Loads a state file. `Ok(None)` when it does not exist; an error naming the file when it
    /// is damaged, of another tank, or built with another embedding model.
    pub fn load(
        path: &Path,
        tank: &str,
        model: &str,
        dim: usize,
        rebuild_fraction: f32,
    ) -> Result<Option<TankState>, IdentifyError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(IdentifyError::Load {
                    path: path.to_path_buf(),
                    message: source.to_string(),
                });
            }
        };
        let bad = |message: String| IdentifyError::Load {
            path: path.to_path_buf(),
            message,
        };
        let file: StateFile = serde_json::from_str(&text).map_err(|e| {
            bad(format!(
                "damaged identity state ({e}); move the file away to start a fresh gallery"
            ))
        })?;
        TankState::from_file(file, tank, model, dim, rebuild_fraction)
            .map(Some)
            .map_err(bad)
    }

    /// The state `file` holds, checked to be `tank`'s, built with encoder `model` of `dim`;
    /// the error says what does not match.
    pub fn from_file(
        file: StateFile,
        tank: &str,
        model: &str,
        dim: usize,
        rebuild_fraction: f32,
    ) -> Result<TankState, String> {
        if file.format != STATE_FORMAT {
            return Err(format!("format `{}` is not `{STATE_FORMAT}`", file.format));
        }
        if file.tank != tank {
            return Err(format!(
                "the file belongs to tank `{}`, not `{tank}`",
                file.tank
            ));
        }
        if file.model != model || file.dim != dim {
            return Err(format!(
                "the gallery was built with encoder `{}` (dim {}) but the current encoder is `{model}` (dim {dim}): embeddings are not comparable; re-enroll with the current model or move the file away",
                file.model, file.dim
            ));
        }
        if let Some(p) = file.prototypes.iter().find(|p| p.vector.len() != dim) {
            return Err(format!(
                "a prototype of `{}` has {} values, expected {dim}",
                p.owner,
                p.vector.len()
            ));
        }
        let gallery = Gallery::from_prototypes(dim, rebuild_fraction, file.prototypes);
        Ok(TankState {
            tank: tank.to_string(),
            model: model.to_string(),
            registry: file.registry,
            gallery,
            window: file.window,
            window_t: file.window_t,
            dirty: false,
        })
    }
}

/// Writes `bytes` to `path` atomically (see [`crate::durable::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IdentifyError> {
    crate::durable::write_atomic(path, bytes).map_err(|source| IdentifyError::Save {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 5 (restart): the regrouping's named fragments travel with the state file, and a
    /// file written before they were added still loads, with none.
    #[test]
    fn the_window_travels_with_the_state_file_and_older_files_still_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = state_path(dir.path(), "tank");
        let mut st = TankState::new("tank", "model", 2, 0.3);
        st.window = vec![SavedFragment {
            individual: "fish-001".into(),
            frames_ago: vec![(3, 0.1), (0, 0.0)],
            sides: [Some((vec![2.0, 0.0], 2.0)), None],
            online: vec![("fish-001".into(), 2)],
            after_tangle: true,
            track: Some(4),
        }];
        st.save(&path).expect("save");
        let back = TankState::load(&path, "tank", "model", 2, 0.3)
            .expect("load")
            .expect("file");
        assert_eq!(back.window, st.window);

        let mut old: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        old.as_object_mut().expect("object").remove("window");
        std::fs::write(&path, serde_json::to_vec(&old).expect("json")).expect("write");
        let back = TankState::load(&path, "tank", "model", 2, 0.3)
            .expect("an older file loads")
            .expect("file");
        assert!(back.window.is_empty());
    }
}

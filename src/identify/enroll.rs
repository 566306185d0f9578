//! `finprint enroll`: adds known individuals to a tank's gallery from photos.
//!
//! Folder layout: `--photos DIR` holds one sub-folder per individual; the folder name is the
//! individual's id (letters, digits, `-`, `_`, `.`). Optional names: `DIR/names.csv` with lines
//! `id,name` (a header line `id,name` is allowed), or `DIR/<id>/name.txt` (first line).
//! Photos (`.png`, `.jpg`, `.jpeg`, `.ppm`, `.pgm`, `.pnm`) must be crops like the detector's:
//! one fish, body axis horizontal, about 3:1 (width:height, e.g. 192×64); other sizes are resized
//! (a warning is logged when the aspect is far from 3:1). Both flanks (head left and head right)
//! should be photographed. Re-running adds photos to existing individuals.
//! Must never touch the daemon's running state: it writes the state file, which the daemon reads
//! at start.

use std::path::{Path, PathBuf};

use super::{Identifier, IdentifyError, IdentityConfig};
use crate::embed::{EmbedConfig, Embedder};
use crate::messages::Crop;

/// `finprint enroll` arguments.
#[derive(Debug, clap::Args)]
pub struct EnrollArgs {
    /// Folder with one sub-folder of photos per individual (folder name = id); optional
    /// `names.csv` (`id,name`) or `<id>/name.txt` give display names.
    #[arg(long)]
    pub photos: PathBuf,
    /// Tank the individuals live in (the camera's `tank`, or its name).
    #[arg(long)]
    pub tank: String,
    /// Config file: its `[embed]` and `[identity]` sections are used.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Identity state folder (overrides `identity.state_dir`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Encoder model (overrides `embed.model`; default: the shipped model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// ONNX Runtime library (overrides `embed.library`).
    #[arg(long)]
    pub library: Option<PathBuf>,
}

const IMAGE_EXT: &[&str] = &["png", "jpg", "jpeg", "ppm", "pgm", "pnm"];

/// One individual found in the photo folder.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoSet {
    /// Id (folder name).
    pub id: String,
    /// Display name, if given.
    pub name: Option<String>,
    /// Photo files, sorted.
    pub photos: Vec<PathBuf>,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !id.starts_with('.')
}

/// Reads the folder layout (no image decoding).
pub fn scan_photos(dir: &Path) -> Result<Vec<PhotoSet>, IdentifyError> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        IdentifyError::Enroll(format!("cannot read photo folder {}: {e}", dir.display()))
    })?;
    let mut names: std::collections::HashMap<String, String> = Default::default();
    let csv_path = dir.join("names.csv");
    if csv_path.is_file() {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_path(&csv_path)
            .map_err(|e| IdentifyError::Enroll(format!("{}: {e}", csv_path.display())))?;
        for (line, rec) in rdr.records().enumerate() {
            let rec =
                rec.map_err(|e| IdentifyError::Enroll(format!("{}: {e}", csv_path.display())))?;
            let (Some(id), Some(name)) = (rec.get(0), rec.get(1)) else {
                return Err(IdentifyError::Enroll(format!(
                    "{} line {}: expected `id,name`",
                    csv_path.display(),
                    line + 1
                )));
            };
            if line == 0 && id.eq_ignore_ascii_case("id") {
                continue;
            }
            if !name.is_empty() {
                names.insert(id.to_string(), name.to_string());
            }
        }
    }
    let mut sets = Vec::new();
    let mut entries: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for sub in entries {
        let Some(id) = sub.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        if id.starts_with('.') {
            continue;
        }
        if !valid_id(&id) {
            return Err(IdentifyError::Enroll(format!(
                "folder `{}`: `{id}` is not a usable id (letters, digits, `-`, `_`, `.`; at most 64)",
                sub.display()
            )));
        }
        let mut photos: Vec<PathBuf> = std::fs::read_dir(&sub)
            .map_err(|e| IdentifyError::Enroll(format!("cannot read {}: {e}", sub.display())))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                !p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".mask.png"))
            })
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXT.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        photos.sort();
        let name_txt = sub.join("name.txt");
        let name = names.remove(&id).or_else(|| {
            std::fs::read_to_string(&name_txt)
                .ok()
                .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
                .filter(|n| !n.is_empty())
        });
        sets.push(PhotoSet { id, name, photos });
    }
    if let Some(unknown) = names.keys().next() {
        return Err(IdentifyError::Enroll(format!(
            "{} names `{unknown}`, which has no photo folder",
            csv_path.display()
        )));
    }
    if sets.is_empty() {
        return Err(IdentifyError::Enroll(format!(
            "{} has no sub-folders: put each individual's photos in a folder named after it",
            dir.display()
        )));
    }
    Ok(sets)
}

/// Loads a photo as an RGB crop.
pub fn load_crop(path: &Path) -> Result<Crop, IdentifyError> {
    let img = image::open(path)
        .map_err(|e| IdentifyError::Enroll(format!("cannot read photo {}: {e}", path.display())))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let aspect = w as f32 / h.max(1) as f32;
    if !(2.0..=4.5).contains(&aspect) {
        tracing::warn!(photo = %path.display(), width = w, height = h,
            "photo is not about 3:1 (body axis horizontal); it is used, resized, but recognition may suffer");
    }
    Ok(Crop {
        width: w,
        height: h,
        rgb: img.into_raw(),
    })
}

/// Entry point of `finprint enroll`.
pub fn enroll_cli(args: EnrollArgs) -> Result<(), IdentifyError> {
    let (mut embed_cfg, mut id_cfg) = match &args.config {
        Some(p) => {
            let c = crate::config::Config::load(p)?;
            (c.embed, c.identity)
        }
        None => (EmbedConfig::default(), IdentityConfig::default()),
    };
    if let Some(d) = &args.state_dir {
        id_cfg.state_dir = Some(d.clone());
    }
    if let Some(m) = &args.model {
        embed_cfg.model = Some(m.clone());
        embed_cfg.card = None;
    }
    if let Some(l) = &args.library {
        embed_cfg.library = Some(l.clone());
    }
    if id_cfg.resolved_state_dir().is_none() {
        return Err(IdentifyError::Enroll(
            "no state folder: give --state-dir or set identity.state_dir in --config".into(),
        ));
    }
    let sets = scan_photos(&args.photos)?;
    let mut embedder = Embedder::open(&embed_cfg)?;
    let mut ident = Identifier::build(&id_cfg, &args.tank, None, embedder.card())?;
    let mut total = 0;
    for set in &sets {
        if set.photos.is_empty() {
            tracing::warn!(individual = %set.id, "no photos in its folder; skipped");
            continue;
        }
        let crops: Vec<Crop> = set
            .photos
            .iter()
            .map(|p| load_crop(p))
            .collect::<Result<_, _>>()?;
        let embs = embedder.embed(&crops)?;
        let photos: Vec<String> = set.photos.iter().map(|p| p.display().to_string()).collect();
        let stored = ident.enroll(&set.id, set.name.clone(), &embs, photos)?;
        total += stored;
        println!(
            "{}{}: {} photos, {} prototypes",
            set.id,
            set.name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            set.photos.len(),
            stored
        );
    }
    ident.save()?;
    let (ok, n) = ident.api().enrolled_rank1();
    println!(
        "enrolled {} individuals, {total} prototypes into tank `{}` ({}); leave-one-out rank-1 of the photos: {ok}/{n}",
        sets.len(),
        args.tank,
        ident
            .state_file()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_reads_folders_names_csv_and_name_txt() {
        let d = tempfile::tempdir().unwrap();
        for (id, files) in [("nemo", 2), ("dory", 1), ("empty", 0)] {
            let sub = d.path().join(id);
            std::fs::create_dir(&sub).unwrap();
            for k in 0..files {
                std::fs::write(sub.join(format!("{k}.png")), b"x").unwrap();
            }
            std::fs::write(sub.join("notes.md"), b"not a photo").unwrap();
        }
        std::fs::write(d.path().join("names.csv"), "id,name\nnemo, Nemo the Fish\n").unwrap();
        std::fs::write(d.path().join("dory/name.txt"), "Dory\nignored\n").unwrap();
        let sets = scan_photos(d.path()).unwrap();
        assert_eq!(sets.len(), 3);
        assert_eq!(sets[0].id, "dory");
        assert_eq!(sets[0].name.as_deref(), Some("Dory"));
        assert_eq!(sets[0].photos.len(), 1);
        assert_eq!(sets[2].id, "nemo");
        assert_eq!(sets[2].name.as_deref(), Some("Nemo the Fish"));
        assert_eq!(sets[2].photos.len(), 2);
        assert!(sets[1].photos.is_empty());
    }

    #[test]
    fn scan_refuses_unknown_names_and_bad_ids() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("a")).unwrap();
        std::fs::write(d.path().join("names.csv"), "b,Bee\n").unwrap();
        let e = scan_photos(d.path()).unwrap_err().to_string();
        assert!(e.contains("`b`") && e.contains("no photo folder"), "{e}");
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("bad name")).unwrap();
        let e = scan_photos(d.path()).unwrap_err().to_string();
        assert!(e.contains("not a usable id"), "{e}");
    }
}

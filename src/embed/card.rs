//! The model card: the JSON file beside an encoder (`models/finprint-default.json`) that says how
//! to feed it (input name, size, layout, colour order, normalisation) and what it returns.
//! Format `finprint-encoder/1`, written by `training/`. This file only parses and checks cards;
//! it must never run the model.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::EmbedError;

/// The card format this code understands.
pub const CARD_FORMAT: &str = "finprint-encoder/1";

/// Memory layout of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Layout {
    /// `[batch, channels, height, width]` (PyTorch).
    #[serde(rename = "NCHW")]
    Nchw,
    /// `[batch, height, width, channels]` (TensorFlow).
    #[serde(rename = "NHWC")]
    Nhwc,
}

/// Channel order the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum ColorOrder {
    /// Red, green, blue.
    #[serde(rename = "RGB")]
    Rgb,
    /// Blue, green, red (OpenCV-trained models).
    #[serde(rename = "BGR")]
    Bgr,
}

/// Input side of the card: value = `(pixel / scale − mean[c]) / std[c]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CardInput {
    /// Name of the ONNX graph input.
    pub name: String,
    /// Tensor layout.
    pub layout: Layout,
    /// Number of channels (3).
    pub channels: usize,
    /// Channel order.
    pub color: ColorOrder,
    /// Input height in pixels (crops are resized to it).
    pub height: usize,
    /// Input width in pixels.
    pub width: usize,
    /// Divisor applied to 8-bit pixel values first (255 for [0, 1] inputs).
    pub scale: f32,
    /// Per-channel mean subtracted after scaling, in the card's channel order.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by after subtracting the mean.
    pub std: [f32; 3],
}

impl CardInput {
    /// Number of f32 values of one preprocessed crop.
    pub fn values_per_crop(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// Output side of the card.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CardOutput {
    /// Name of the ONNX graph output holding the embeddings (`[batch, dim]`).
    pub name: String,
    /// Embedding length.
    pub dim: usize,
    /// Whether the model already L2-normalises (embed normalises anyway).
    #[serde(default)]
    pub l2_normalized: bool,
}

/// Identity thresholds calibrated on held-out individuals (cosine similarities, window means).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct CardThresholds {
    /// Window-mean similarity at which a tracklet is accepted as a known individual.
    #[serde(default)]
    pub accept_similarity: Option<f32>,
    /// Window-mean similarity below which a tracklet is a newcomer.
    #[serde(default)]
    pub new_similarity: Option<f32>,
    /// Mean pairwise similarity of one fish's embeddings (newcomer consistency check).
    #[serde(default)]
    pub consistency_similarity: Option<f32>,
}

/// A parsed model card. Unknown top-level keys (`crop`, `training`, `metrics`, ...) are kept as
/// JSON for reporting only.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ModelCard {
    /// Must be [`CARD_FORMAT`].
    pub format: String,
    /// Human-readable model name.
    pub name: String,
    /// Backbone architecture (informative).
    #[serde(default)]
    pub backbone: String,
    /// File name of the ONNX model, relative to the card.
    pub onnx: String,
    /// Hex SHA-256 of the ONNX file; checked at load when present.
    #[serde(default)]
    pub onnx_sha256: Option<String>,
    /// How to build the input tensor.
    pub input: CardInput,
    /// What the output is.
    pub output: CardOutput,
    /// Similarity thresholds calibrated for this model (optional; `[identity]` overrides).
    #[serde(default)]
    pub thresholds: Option<CardThresholds>,
    /// How crops were made for training (informative).
    #[serde(default)]
    pub crop: serde_json::Value,
    /// Training summary (informative).
    #[serde(default)]
    pub training: serde_json::Value,
    /// Evaluation figures (informative).
    #[serde(default)]
    pub metrics: serde_json::Value,
}

impl ModelCard {
    /// Reads and checks a card file (format, sizes, normalisation values). Does not open the model.
    pub fn load(path: &Path) -> Result<ModelCard, EmbedError> {
        let text = std::fs::read_to_string(path).map_err(|source| EmbedError::CardRead {
            path: path.to_path_buf(),
            source,
        })?;
        let card: ModelCard = serde_json::from_str(&text).map_err(|e| EmbedError::Card {
            path: path.to_path_buf(),
            message: format!("not a valid model card: {e}"),
        })?;
        card.check(path)?;
        Ok(card)
    }

    /// Pure consistency checks of the card's own values. `path` is used in messages.
    pub fn check(&self, path: &Path) -> Result<(), EmbedError> {
        let bad = |message: String| EmbedError::Card {
            path: path.to_path_buf(),
            message,
        };
        if self.format != CARD_FORMAT {
            return Err(bad(format!(
                "`format` is `{}`; this finprint reads `{CARD_FORMAT}` cards",
                self.format
            )));
        }
        let i = &self.input;
        if i.channels != 3 {
            return Err(bad(format!(
                "`input.channels` is {}; only 3-channel colour input is supported",
                i.channels
            )));
        }
        if !(4..=4096).contains(&i.height) || !(4..=4096).contains(&i.width) {
            return Err(bad(format!(
                "`input.height`×`input.width` is {}×{}; each must be within 4..=4096",
                i.height, i.width
            )));
        }
        if !(i.scale.is_finite() && i.scale > 0.0) {
            return Err(bad(format!(
                "`input.scale` is {}; must be a positive number (255 for [0,1] input)",
                i.scale
            )));
        }
        if i.mean.iter().any(|m| !m.is_finite())
            || i.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(bad(
                "`input.mean` must be finite and `input.std` positive, 3 values each".into(),
            ));
        }
        if self.output.dim == 0 || self.output.dim > 65536 {
            return Err(bad(format!(
                "`output.dim` is {}; must be within 1..=65536",
                self.output.dim
            )));
        }
        if let Some(t) = &self.thresholds {
            for (k, v) in [
                ("accept_similarity", t.accept_similarity),
                ("new_similarity", t.new_similarity),
                ("consistency_similarity", t.consistency_similarity),
            ] {
                if let Some(v) = v
                    && !(v.is_finite() && (-1.0..=1.0).contains(&v))
                {
                    return Err(bad(format!(
                        "`thresholds.{k}` is {v}; must be a cosine similarity within -1..=1"
                    )));
                }
            }
        }
        if let Some(h) = &self.onnx_sha256
            && !(h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(bad(format!("`onnx_sha256` `{h}` is not 64 hex digits")));
        }
        Ok(())
    }

    /// Stable key of the embedding space (name, model hash prefix, dim): galleries built with one
    /// model must not be searched with embeddings of another.
    pub fn fingerprint(&self) -> String {
        let hash = self.onnx_sha256.as_deref().unwrap_or("nohash");
        let short = hash.get(..12).unwrap_or(hash);
        format!("{}:{}:{}", self.name, short, self.output.dim)
    }

    /// Number of f32 values of one preprocessed crop.
    pub fn input_len(&self) -> usize {
        self.input.values_per_crop()
    }
}

/// Path of the card for a model: `card` when given, else the model path with extension `.json`.
pub fn card_path_for(model: &Path, card: Option<&Path>) -> PathBuf {
    match card {
        Some(c) => c.to_path_buf(),
        None => model.with_extension("json"),
    }
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, std::io::Error> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

//! The detector's learned model as it stands after a frame ([`DetectorState`]), kept with a
//! recording's checkpoint when a run stops, so that the run resuming the recording detects its
//! next frame against the background an uninterrupted run would have (adapted over the whole
//! recording so far) instead of learning one again from the frames before the restart point.
//! Must never decide when or where it is saved: the outputs keep it with the checkpoint.

use serde::{Deserialize, Serialize};

use super::{Detector, Geometry, Model};

/// A detector's learned model after a frame: background, noise, threshold, polarity, the
/// typical fish and its shape. Opaque to the other stages; valid for one frame size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorState {
    /// Fingerprint of the `[cameras.detect]` settings the model was learned with (threshold,
    /// polarity, downscale, … are baked into it): other settings learn a new one.
    settings: String,
    /// Width and height (px) of the frames the model is for.
    frame: [u32; 2],
    /// Box-downscaling factor of the working resolution.
    factor: usize,
    /// The model.
    model: Model,
    /// Global brightness offset of the last segmented frame.
    offset: i16,
    /// The one-shot refinement of the first background is done.
    refined: bool,
    /// Frames seen since the background was learned (for `refine_stride`).
    refine_tick: u64,
    /// Working-resolution lumas sampled for the refinement while it is not done (hex, two
    /// digits a pixel): up to `learn_frames` of them, in the first seconds of a recording.
    #[serde(with = "hex8")]
    refine_samples: Vec<Vec<u8>>,
}

impl Detector {
    /// The learned model after the last frame pushed; `None` while the background is still
    /// being learned or frames are buffered (call after [`Detector::flush`]).
    pub fn state(&self) -> Option<DetectorState> {
        let (g, model) = (self.geom?, self.model.as_ref()?);
        self.pending.is_empty().then(|| DetectorState {
            settings: self.settings_fingerprint(),
            frame: [g.width, g.height],
            factor: g.factor,
            model: model.clone(),
            offset: self.offset,
            refined: self.refined,
            refine_tick: self.refine_tick,
            refine_samples: self.refine_samples.clone(),
        })
    }

    /// Continues a model saved by a previous run on the same recording
    /// ([`Detector::state`]): the first frame of its size is detected against it, nothing is
    /// learned again and no warm-up frames are needed ([`Detector::warmup_frames`] is 0).
    /// A model learned with other `[cameras.detect]` settings is not taken (logged; the
    /// warm-up frames are then needed as without it); frames of another size or working
    /// resolution learn a background as usual (logged). Call before the first frame.
    pub fn restore(&mut self, state: DetectorState) {
        if self.geom.is_some() {
            return;
        }
        if state.settings != self.settings_fingerprint() {
            // Checked here, not at the first frame: the warm-up frames are then read as usual.
            tracing::info!(
                "detect: the detect settings changed since the previous run; learning the \
                 background again"
            );
            return;
        }
        self.restored = Some(state);
    }

    /// Takes up the restored model if it fits the geometry just set up.
    pub(super) fn take_restored(&mut self, g: Geometry, camera: &str) {
        let Some(s) = self.restored.take() else {
            return;
        };
        let n = g.ww * g.wh;
        if s.frame != [g.width, g.height]
            || s.factor != g.factor
            || s.model.bg.len() != n
            || s.refine_samples.iter().any(|v| v.len() != n)
        {
            tracing::warn!(
                camera, saved = ?s.frame, saved_downscale = s.factor, frame = ?(g.width, g.height),
                downscale = g.factor,
                "detect: the saved background model is for another frame size or downscale; \
                 learning the background again"
            );
            return;
        }
        tracing::info!(
            camera,
            "detect: background model continued from the previous run (no relearning)"
        );
        self.model = Some(s.model);
        self.offset = s.offset;
        self.refined = s.refined;
        self.refine_tick = s.refine_tick;
        self.refine_samples = s.refine_samples;
    }

    /// SHA-256 of the settings as this build prints them (a new build may learn anew once).
    fn settings_fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("{:?}", self.cfg).as_bytes());
        to_hex(digest.iter().map(|&b| u32::from(b)), 2)
    }
}

/// `values` as one hex string, `digits` digits each (values below 16^`digits`).
fn to_hex(values: impl IntoIterator<Item = u32>, digits: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for x in values {
        let _ = write!(out, "{x:0digits$x}");
    }
    out
}

/// The values of a hex string of `digits` digits each; what is wrong with it otherwise.
fn from_hex<T: TryFrom<u32>>(s: &str, digits: usize) -> Result<Vec<T>, String> {
    if !s.len().is_multiple_of(digits) || !s.is_ascii() {
        return Err(format!("not a hex string of {digits} digits per value"));
    }
    s.as_bytes()
        .chunks(digits)
        .map(|c| {
            std::str::from_utf8(c)
                .ok()
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(|v| T::try_from(v).ok())
                .ok_or_else(|| format!("not a hex value: {c:?}"))
        })
        .collect()
}

/// Serde for a `Vec<u16>` as one hex string (four digits per value): a background of
/// 960 × 540 pixels is 2 MB of text instead of about three times that as a pretty-printed JSON array.
pub(super) mod hex16 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(v: &[u16], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_hex(v.iter().map(|&x| u32::from(x)), 4))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
        super::from_hex(&String::deserialize(d)?, 4).map_err(D::Error::custom)
    }
}

/// Serde for a list of `Vec<u8>` as hex strings (two digits per value).
pub(super) mod hex8 {
    use serde::ser::SerializeSeq as _;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for bytes in v {
            seq.serialize_element(&super::to_hex(bytes.iter().map(|&x| u32::from(x)), 2))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| super::from_hex(s, 2).map_err(D::Error::custom))
            .collect()
    }
}

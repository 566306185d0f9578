//! Detect: finds fish in a frame (background model on luma, threshold, morphology, components)
//! and cuts an oriented crop per fish. Must never track or identify.
//!
//! Model: a per-pixel background is learned at start (the recurring value of the first
//! `learn_frames` frames, every `learn_stride`-th: the water recurs within the noise while fish
//! passing over a pixel vary, so a fish that covered it in more than half of the frames is not
//! learned, as it would be by a median; frames are buffered and released in order once it is
//! ready, never lost) and then adapted slowly everywhere except around detected fish and blobs
//! too large to count (touching large fish; up to 4 × `max_area`), so a resting fish is not
//! absorbed quickly. A "ghost" — a blob whose outline has its edge in the
//! background and not in the frame, i.e. a fish the background still holds where there is none
//! now — is reset to the frame at once and not reported (`heal_ghosts`). The foreground is the deviation from it in the fish's polarity
//! (found automatically by default), thresholded (automatically from the noise by default),
//! cleaned by opening/closing and split into 8-connected components. Each component becomes a
//! [`Detection`] with centroid, box, area and body axis from its second moments. A component
//! much larger than the learned typical single-fish area is examined: when its strongest pixels
//! form separate body cores (fish usually touch by their faint fins and tails) it is cut
//! between them, each part one detection with `fish_count = 1` and **no crop** (a crop of
//! touching fish must not be used for identification) — that missing crop is the "touching"
//! flag the later stages see; otherwise it stays one detection flagged by
//! `fish_count` = round(area / typical area) ≥ 2. In side views a fish near the front glass
//! looks two to four times the typical area: a blob of up to 4 typical areas that keeps a
//! single fish's shape (fill of its moment axes, depth for length, learned from blobs of about
//! the typical area) is one fish with a crop.
//!
//! All work is on luma at a reduced working resolution; only crops read colour, from the
//! full-resolution frame.

mod crop;
mod segment;
mod state;

use std::collections::VecDeque;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crop::{CropSpec, oriented_crop};
pub use state::DetectorState;

use crate::config::{CameraView, ConfigError};
use crate::messages::{DetectedFrame, Detection, Frame};
use segment::{Blob, Labeller};

/// Which way fish differ from the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Polarity {
    /// Decide from the learning frames: the sign of the strong deviations from the background
    /// (dark if they are mostly darker, light if mostly lighter, both otherwise).
    #[default]
    Auto,
    /// Fish are darker than the background (e.g. top view on a light base).
    Dark,
    /// Fish are lighter than the background.
    Light,
    /// Absolute difference: fish with both light and dark parts (e.g. light body, dark stripes).
    Both,
}

/// Detection settings of one camera. Every field has a default that suits a typical tank
/// recording; an empty `[cameras.detect]` table is valid.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Integer factor by which the luma is box-downscaled before segmentation. Unset (default):
    /// automatic, the smallest factor that makes the longer side at most 1000 px (1 for small
    /// frames, 2 for 1080p). Allowed: 1..=16.
    pub downscale: Option<u32>,
    /// Background image (any format the `image` crate reads, same size as the frames) used
    /// instead of learning one. Default: unset (learn from the stream). A size mismatch is
    /// logged and the background is then learned.
    pub background: Option<PathBuf>,
    /// Number of frames from which the initial background is learned (per pixel, the median
    /// of the largest group of values within twice the noise of each other). Default 25.
    /// Allowed: 3..=255.
    pub learn_frames: u32,
    /// Use every n-th frame for learning (so fish have time to move); the frames in between
    /// are buffered and released afterwards. Default 2. Allowed: 1..=100.
    pub learn_stride: u32,
    /// Per frame, the fraction of the way the background moves towards the current frame at
    /// pixels away from detected fish and from blobs too large to count as fish (slow
    /// adaptation to lighting drift). Default 0.02.
    /// Allowed: 0 (frozen) ..= 0.5.
    pub adapt_rate: f32,
    /// After the background is learned, every n-th frame is sampled again until
    /// `learn_frames` samples are in, and their per-pixel recurring value (as for the first
    /// learning) replaces the background once
    /// (3–4 s at 25–30 fps by default, after the 2 s of the first learning). Heals "ghosts":
    /// fish that rested while the background was first learned and would otherwise be
    /// detected where they no longer are. Default 4; 0 turns it off. Ignored with a `background` image. Allowed: 0..=1000.
    pub refine_stride: u32,
    /// Fish polarity: `auto` (default), `dark`, `light` or `both`.
    pub polarity: Polarity,
    /// Heal ghosts at once: a blob whose outline has its edge in the background but not in
    /// the current frame is a fish the background still holds where there is none now (it
    /// rested while the background was learned). Its pixels are reset to the current frame and
    /// it is not reported. Default true; false leaves ghosts to `refine_stride` and adaptation.
    pub heal_ghosts: bool,
    /// Fixed foreground threshold in luma levels (1..=254). Unset (default): automatic,
    /// `threshold_sigmas` × the background noise measured while learning, at least 8.
    pub threshold: Option<u8>,
    /// Automatic threshold in units of the measured noise standard deviation. Default 6.
    /// Allowed: 1..=50.
    pub threshold_sigmas: f32,
    /// Radius (working pixels) of the square opening that removes specks and thin fins/tails.
    /// Default 1 (3×3). Allowed: 0..=10.
    pub open_radius: u32,
    /// Radius (working pixels) of the closing that bridges small gaps (e.g. between the light
    /// body and the dark stripes of a fish seen from the side). Unset (default): automatic, 2
    /// when the polarity is `both` (the closing then runs before the opening, so thin stripes
    /// are joined before specks are removed) and 0 otherwise (closing also joins fish that swim
    /// close). Allowed: 0..=10.
    pub close_radius: Option<u32>,
    /// Smallest blob kept, full-frame px². Unset (default): a tenth of the typical
    /// single-fish area (at least 10 working pixels) — a fish seen head-on while it turns in
    /// front of a side camera shows a small fraction of its side area.
    pub min_area: Option<f32>,
    /// Largest blob kept, full-frame px². Unset (default): (`max_fish_per_blob` + 0.5) × the
    /// typical area, twice that in side views (fish near the glass look larger). Larger blobs
    /// (lighting changes, hands, nets) are ignored.
    pub max_area: Option<f32>,
    /// Typical area of one fish, full-frame px². Unset (default): learned as the median blob
    /// area of the learning frames, then followed slowly.
    pub typical_area: Option<f32>,
    /// Most fish one touching blob may count as. Default 6. Allowed: 1..=50.
    pub max_fish_per_blob: u32,
    /// Split blobs of touching fish into one detection per fish: a blob of at least 1.3 typical
    /// areas whose strongest pixels form two or more separate body cores is cut between them
    /// (dark or light polarity only: with `both`, stripes would look like cores). Default
    /// true. Blobs not split stay one detection with `fish_count` = round(area / typical)
    /// (side views: 1 for a blob of up to 4 typical areas with a single fish's shape).
    pub split_touching: bool,
    /// Region of interest: polygon of at least 3 `[x, y]` vertices in full-frame pixels; only
    /// pixels inside are searched. Default: unset (whole frame).
    pub roi: Option<Vec<[f32; 2]>>,
    /// Exclusion zones: polygons (full-frame pixels) never searched (reflections, heaters,
    /// labels). Default: none.
    pub exclude: Vec<Vec<[f32; 2]>>,
    /// Crop length along the body axis as a multiple of the major axis. Default 1.3.
    /// Allowed: 0.5..=4.
    pub crop_margin: f32,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            downscale: None,
            background: None,
            learn_frames: 25,
            learn_stride: 2,
            adapt_rate: 0.02,
            refine_stride: 4,
            polarity: Polarity::Auto,
            heal_ghosts: true,
            threshold: None,
            threshold_sigmas: 6.0,
            open_radius: 1,
            close_radius: None,
            min_area: None,
            max_area: None,
            typical_area: None,
            max_fish_per_blob: 6,
            split_touching: true,
            roi: None,
            exclude: Vec::new(),
            crop_margin: 1.3,
        }
    }
}

fn check_polygon(key: &str, poly: &[[f32; 2]]) -> Result<(), ConfigError> {
    if poly.len() < 3 {
        return Err(ConfigError::invalid(
            key,
            format!(
                "a polygon needs at least 3 [x, y] vertices, got {}",
                poly.len()
            ),
        ));
    }
    if poly.iter().any(|p| !(p[0].is_finite() && p[1].is_finite())) {
        return Err(ConfigError::invalid(
            key,
            "polygon vertices must be finite pixel coordinates",
        ));
    }
    Ok(())
}

impl DetectConfig {
    /// Checks values without touching devices or files.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let bad =
            |field: &str, msg: String| Err(ConfigError::invalid(format!("{key}.{field}"), msg));
        if let Some(d) = self.downscale
            && !(1..=16).contains(&d)
        {
            return bad(
                "downscale",
                format!("{d} is not allowed: use 1..=16, or leave unset for automatic"),
            );
        }
        if !(3..=255).contains(&self.learn_frames) {
            return bad(
                "learn_frames",
                format!("{} is not allowed: use 3..=255", self.learn_frames),
            );
        }
        if !(1..=100).contains(&self.learn_stride) {
            return bad(
                "learn_stride",
                format!("{} is not allowed: use 1..=100", self.learn_stride),
            );
        }
        if self.refine_stride > 1000 {
            return bad(
                "refine_stride",
                format!(
                    "{} is not allowed: use 0 (off) ..= 1000",
                    self.refine_stride
                ),
            );
        }
        if !(self.adapt_rate.is_finite() && (0.0..=0.5).contains(&self.adapt_rate)) {
            return bad(
                "adapt_rate",
                format!("{} is not allowed: use 0..=0.5", self.adapt_rate),
            );
        }
        if let Some(t) = self.threshold
            && !(1..=254).contains(&t)
        {
            return bad(
                "threshold",
                format!("{t} is not allowed: use 1..=254 luma levels, or unset for automatic"),
            );
        }
        if !(self.threshold_sigmas.is_finite() && (1.0..=50.0).contains(&self.threshold_sigmas)) {
            return bad(
                "threshold_sigmas",
                format!("{} is not allowed: use 1..=50", self.threshold_sigmas),
            );
        }
        if self.open_radius > 10 {
            return bad(
                "open_radius",
                format!("{} is not allowed: use 0..=10", self.open_radius),
            );
        }
        if let Some(c) = self.close_radius
            && c > 10
        {
            return bad(
                "close_radius",
                format!("{c} is not allowed: use 0..=10, or unset for automatic"),
            );
        }
        for (name, v) in [
            ("min_area", self.min_area),
            ("max_area", self.max_area),
            ("typical_area", self.typical_area),
        ] {
            if let Some(a) = v
                && !(a.is_finite() && a > 0.0)
            {
                return bad(
                    name,
                    format!(
                        "{a} is not allowed: must be a positive area in px², or unset for automatic"
                    ),
                );
            }
        }
        if let (Some(lo), Some(hi)) = (self.min_area, self.max_area)
            && lo >= hi
        {
            return bad(
                "max_area",
                format!("{hi} must be larger than min_area {lo}"),
            );
        }
        if !(1..=50).contains(&self.max_fish_per_blob) {
            return bad(
                "max_fish_per_blob",
                format!("{} is not allowed: use 1..=50", self.max_fish_per_blob),
            );
        }
        if let Some(r) = &self.roi {
            check_polygon(&format!("{key}.roi"), r)?;
        }
        for (i, p) in self.exclude.iter().enumerate() {
            check_polygon(&format!("{key}.exclude[{i}]"), p)?;
        }
        if !(self.crop_margin.is_finite() && (0.5..=4.0).contains(&self.crop_margin)) {
            return bad(
                "crop_margin",
                format!("{} is not allowed: use 0.5..=4", self.crop_margin),
            );
        }
        Ok(())
    }
}

/// Errors of building a detector.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The configured background image could not be read.
    #[error(
        "cannot read background image {path} (detect.background): {source}; fix the path or remove the key to learn the background"
    )]
    Background {
        /// The configured path.
        path: PathBuf,
        /// Underlying error.
        source: image::ImageError,
    },
}

/// Foreground polarity actually in use (after `auto` was resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Resolved {
    Dark,
    Light,
    Both,
}

/// Frame geometry the model was learned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    width: u32,
    height: u32,
    factor: usize,
    ww: usize,
    wh: usize,
}

/// Learned state of the background model (valid for one geometry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Model {
    /// Background, fixed point 8.8 (saved as hex, four digits a pixel, row by row).
    #[serde(with = "state::hex16")]
    bg: Vec<u16>,
    polarity: Resolved,
    threshold: i16,
    /// Noise standard deviation (luma levels) measured while learning.
    noise_sigma: f32,
    /// Typical single-fish area in working px (None until enough blobs were seen).
    typical: Option<f32>,
    /// Blob areas collected while the typical area is unknown.
    area_samples: Vec<f32>,
    /// Silhouette of a typical single fish, once learned (side views: see [`BodyShape`]).
    shape: Option<BodyShape>,
    /// Shapes of single-fish blobs collected while `shape` is unknown.
    shape_samples: Vec<BodyShape>,
}

/// The size-free silhouette of a fish seen broadside: how much of the box spanned by its
/// moment axes it fills, and its depth for its length. A fish near the front glass looks
/// larger but keeps both; two fish overlapping fill less of their joint axes (notches where
/// they cross) or are deeper or longer for their size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BodyShape {
    /// Area / (major axis × minor axis).
    fill: f32,
    /// Minor axis / major axis.
    aspect: f32,
}

impl BodyShape {
    fn of(d: &Detection) -> Option<BodyShape> {
        let fill = d.area / (d.major_axis * d.minor_axis);
        let aspect = d.minor_axis / d.major_axis;
        (fill.is_finite() && aspect.is_finite() && fill > 0.0 && aspect > 0.0)
            .then_some(BodyShape { fill, aspect })
    }

    /// Median of each measure (`v` not empty).
    fn median(v: &[BodyShape]) -> BodyShape {
        let mut fills: Vec<f32> = v.iter().map(|s| s.fill).collect();
        let mut aspects: Vec<f32> = v.iter().map(|s| s.aspect).collect();
        BodyShape {
            fill: median(&mut fills),
            aspect: median(&mut aspects),
        }
    }

    /// A blob of this shape is one fish of the `typical` shape, at another size.
    fn like_one_fish(self, typical: BodyShape) -> bool {
        self.fill >= ONE_FISH_MIN_FILL * typical.fill
            && (self.aspect / typical.aspect).ln().abs() <= ONE_FISH_MAX_ASPECT_LN
    }
}

/// Below this many working pixels a blob is noise, whatever the typical area.
const NOISE_FLOOR_PX: u32 = 10;
/// Default smallest blob, in typical single-fish areas.
const MIN_AREA_RATIO: f32 = 0.1;
/// Blobs under this many typical areas next to a larger blob are fragments of it.
const FRAGMENT_RATIO: f32 = 0.15;
/// Largest gap (working px) between the boxes of a fragment and its fish.
const FRAGMENT_GAP_PX: u32 = 1;
/// A blob under this many typical areas at an end of a blob at least
/// [`END_PIECE_HOST_TIMES`] its size, along that blob's body axis, is its tail fin (or snout)
/// cut off where the body is thin: the caudal peduncle falls under the threshold, and the fin
/// shows as a blob of its own one to three pixels behind the body. Measured on a simulated
/// 4-fish side view at 640×360 (typical area 138 px²): tail pieces of 15–22 px² (0.11–0.16
/// typical areas, over the fragment limit above) 1–3 px behind their fish, each of which
/// started a track of its own that then rode on its fish's blob (an open population enrolled
/// it as a fifth fish).
const END_PIECE_RATIO: f32 = 0.3;
/// A blob's end piece is at most this share of its area.
const END_PIECE_HOST_TIMES: f32 = 4.0;
/// Largest gap between an end piece's box and its fish's, in √(typical area) working px (3 px
/// for a typical area of 138 px²).
const END_PIECE_GAP: f32 = 0.3;
/// Blobs at least this many typical areas large are examined for touching fish.
const SPLIT_MIN_RATIO: f32 = 1.3;
/// Blob areas needed before the typical area is trusted.
const TYPICAL_SAMPLES: usize = 30;
/// Side views: a blob up to this many typical areas large that has a single fish's shape is
/// one fish near the glass, not several touching (a fish at the front of a deep tank close to
/// the camera looks twice the length of the typical one, four times its area). Measured on 20
/// rendered side-view tanks (BENCHMARKS.md round 13): of blobs counted as two by area, three
/// in four were one fish; the shape test below kept 95 % of those and took 15 % of the real
/// pairs for one fish (3 typical areas: identity IDF1 0.929, 4: 0.932).
const ONE_FISH_MAX_RATIO: f32 = 4.0;
/// Side views: how many times the top view's largest countable blob (`max_area` unset) a
/// blob may be: four fish near the glass swimming together (seed 53 of the 20 rendered tanks,
/// BENCHMARKS.md round 13) made a blob larger than 6.5 typical areas, dropped for 22 frames.
const SIDE_SIZE_SPREAD: f32 = 2.0;
/// Least fill of a one-fish blob, relative to the typical single fish's.
const ONE_FISH_MIN_FILL: f32 = 0.95;
/// Largest |ln| of a one-fish blob's depth for length over the typical single fish's.
const ONE_FISH_MAX_ASPECT_LN: f32 = 0.3;
/// Blobs within this many typical areas of it teach the typical single fish's shape.
const SHAPE_SAMPLE_RATIO: (f32, f32) = (0.6, 1.4);
/// How fast the typical shape follows each frame's single fish.
const SHAPE_FOLLOW_RATE: f32 = 0.02;
/// A blob is a ghost when the background's edges along its outline are this many times the
/// current frame's (see `Detector::heal_if_ghost`).
const GHOST_EDGE_RATIO: i64 = 3;
/// Fewest outline pixel pairs on which a blob is judged a ghost.
const GHOST_MIN_OUTLINE: u32 = 8;
/// Blobs up to this many times the largest countable blob (`max_area`) are kept out of the
/// background's adaptation although they are not reported.
const OVERSIZED_PROTECT_RATIO: f32 = 4.0;

/// The fish detector of one camera. Feed it frames in order with [`Detector::push`]; it
/// returns each frame with its detections, in order, possibly later (while the background is
/// being learned). Call [`Detector::flush`] at end of stream to get the buffered rest.
#[derive(Debug)]
pub struct Detector {
    cfg: DetectConfig,
    /// Full-resolution background from `cfg.background`.
    preset: Option<image::GrayImage>,
    geom: Option<Geometry>,
    model: Option<Model>,
    /// Frames waiting for the background; `None` luma = unusable frame (passed on empty).
    pending: VecDeque<(Frame, Option<Vec<u8>>)>,
    /// How many of the first `pending` frames are warm-up frames ([`Detector::warm_up`]):
    /// detected for what they teach, never returned.
    warm_pending: usize,
    /// Inside [`Detector::warm_up`].
    warming: bool,
    /// 1 where searching is allowed (ROI minus exclusions), working resolution.
    allowed: Vec<u8>,
    crops: Option<CropSpec>,
    // scratch
    mask: Vec<u8>,
    tmp: Vec<u8>,
    labeller: Labeller,
    blobs: Vec<Blob>,
    /// Global brightness offset of the last segmented frame.
    offset: i16,
    core_labeller: Labeller,
    core_mask: Vec<u8>,
    core_blobs: Vec<Blob>,
    /// Frames seen since the background was learned (for `refine_stride`).
    refine_tick: u64,
    /// Working-resolution lumas sampled for the refinement.
    refine_samples: Vec<Vec<u8>>,
    /// The one-shot refinement is done.
    refined: bool,
    /// Ghost blobs healed so far (see `heal_if_ghost`).
    ghosts_healed: u64,
    /// Where the camera looks from (`Auto`: side when the fish differ from the background
    /// both ways); side views count a large blob of one fish's shape as one fish.
    view: CameraView,
    /// A model saved by a previous run ([`Detector::restore`]), taken up with the first frame
    /// of its size.
    restored: Option<DetectorState>,
}

impl Detector {
    /// Builds a detector; reads the background image if one is configured.
    pub fn build(cfg: &DetectConfig) -> Result<Detector, DetectError> {
        let preset = match &cfg.background {
            Some(path) => Some(
                image::open(path)
                    .map_err(|source| DetectError::Background {
                        path: path.clone(),
                        source,
                    })?
                    .to_luma8(),
            ),
            None => None,
        };
        Ok(Detector {
            cfg: cfg.clone(),
            preset,
            geom: None,
            model: None,
            pending: VecDeque::new(),
            warm_pending: 0,
            warming: false,
            allowed: Vec::new(),
            crops: None,
            mask: Vec::new(),
            tmp: Vec::new(),
            labeller: Labeller::default(),
            blobs: Vec::new(),
            offset: 0,
            core_labeller: Labeller::default(),
            core_mask: Vec::new(),
            core_blobs: Vec::new(),
            refine_tick: 0,
            refine_samples: Vec::new(),
            refined: false,
            ghosts_healed: 0,
            view: CameraView::Auto,
            restored: None,
        })
    }

    /// Sets where the camera looks from (the camera's `view`; `Auto` decides from the
    /// polarity once the background is learned, as the tracker's view is decided).
    pub fn set_view(&mut self, view: CameraView) {
        self.view = view;
    }

    /// Number of ghost blobs healed so far: places where the background held a fish that had
    /// swum off, reset to the current frame instead of being reported.
    pub fn ghosts_healed(&self) -> u64 {
        self.ghosts_healed
    }

    /// True while the background is still being learned (frames are being buffered).
    pub fn is_learning(&self) -> bool {
        self.model.is_none()
    }

    /// Typical single-fish area in full-frame px², once known.
    pub fn typical_area(&self) -> Option<f32> {
        let f = self.geom?.factor as f32;
        self.model.as_ref()?.typical.map(|t| t * f * f)
    }

    /// Whether the fish differ from the background both ways (polarity `both`: light and dark
    /// parts, as striped fish seen from the side), once the background is learned.
    pub fn differs_both_ways(&self) -> Option<bool> {
        Some(self.model.as_ref()?.polarity == Resolved::Both)
    }

    /// Threshold in luma levels and polarity (`"dark"`, `"light"`, `"both"`) in use, once learned.
    pub fn model_summary(&self) -> Option<(i16, &'static str)> {
        let m = self.model.as_ref()?;
        let p = match m.polarity {
            Resolved::Dark => "dark",
            Resolved::Light => "light",
            Resolved::Both => "both",
        };
        Some((m.threshold, p))
    }

    /// Feeds one frame. Returns the frames whose detections are ready, in stream order: usually
    /// just this one; none while the background is being learned, then all buffered ones.
    /// `crops`: cut an oriented crop of this size per (single) fish.
    pub fn push(&mut self, frame: Frame, crops: Option<CropSpec>) -> Vec<DetectedFrame> {
        self.crops = crops;
        let mut out = Vec::new();
        let len_ok =
            frame.data.len() >= Frame::expected_len(frame.width, frame.height, frame.layout);
        if !len_ok || frame.width == 0 || frame.height == 0 {
            tracing::warn!(
                camera = %frame.camera, index = frame.index, width = frame.width, height = frame.height,
                bytes = frame.data.len(), "frame data is shorter than its size says; passed on without detections"
            );
            if self.pending.is_empty() {
                out.push(DetectedFrame {
                    frame,
                    detections: Vec::new(),
                });
            } else {
                self.pending.push_back((frame, None));
                self.warm_pending += usize::from(self.warming);
            }
            return out;
        }
        if let Some(g) = self.geom
            && (g.width != frame.width || g.height != frame.height)
        {
            tracing::warn!(
                camera = %frame.camera, from = ?(g.width, g.height), to = ?(frame.width, frame.height),
                "frame size changed; learning the background again"
            );
            out.extend(self.flush(crops));
            self.geom = None;
            self.model = None;
            self.refine_tick = 0;
            self.refine_samples.clear();
            self.refined = false;
        }
        let geom = match self.geom {
            Some(g) => g,
            None => self.init_geometry(&frame),
        };
        let mut luma = Vec::new();
        segment::downscale_box(
            &frame.to_luma(),
            frame.width as usize,
            frame.height as usize,
            geom.factor,
            &mut luma,
        );
        if self.model.is_some() {
            self.refine(&luma);
            let dets = self.detect(&frame, &luma);
            out.push(DetectedFrame {
                frame,
                detections: dets,
            });
            return out;
        }
        self.pending.push_back((frame, Some(luma)));
        self.warm_pending += usize::from(self.warming);
        let needed = self.learn_window() as usize;
        let usable = self.pending.iter().filter(|(_, l)| l.is_some()).count();
        if self.preset_matches() || usable >= needed {
            self.learn();
            out.extend(self.drain_pending());
        }
        out
    }

    /// Feeds a frame from before a resumed recording's restart point
    /// ([`crate::ingest::IngestEvent::Warmup`]): it teaches the background model, the typical
    /// fish and its shape as any frame does, and never comes out, so the frames after the
    /// restart are detected against a background learned as the previous run had it. Call
    /// before the first [`Detector::push`].
    pub fn warm_up(&mut self, frame: Frame) {
        self.warming = true;
        // With the model ready the frame comes straight back (detected): dropped here.
        drop(self.push(frame, None));
        self.warming = false;
    }

    /// Frames a resumed recording needs read again before its restart point for the background
    /// to be learned from them ([`Detector::warm_up`]); none when a saved model is continued
    /// ([`Detector::restore`]).
    pub fn warmup_frames(&self) -> u64 {
        if self.restored.is_some() {
            0
        } else {
            self.learn_window()
        }
    }

    /// Frames the background is learned from (every `learn_stride`-th of them).
    fn learn_window(&self) -> u64 {
        u64::from((self.cfg.learn_frames - 1) * self.cfg.learn_stride + 1)
    }

    /// End of stream: learns from whatever was buffered (if the background is not ready yet)
    /// and returns all remaining frames with their detections, in order.
    pub fn flush(&mut self, crops: Option<CropSpec>) -> Vec<DetectedFrame> {
        self.crops = crops;
        if self.model.is_none() && self.pending.iter().any(|(_, l)| l.is_some()) {
            self.learn();
        }
        self.drain_pending()
    }

    fn preset_matches(&self) -> bool {
        match (&self.preset, self.geom) {
            (Some(p), Some(g)) => p.width() == g.width && p.height() == g.height,
            _ => false,
        }
    }

    fn init_geometry(&mut self, frame: &Frame) -> Geometry {
        let longer = frame.width.max(frame.height) as usize;
        let factor = match self.cfg.downscale {
            Some(f) => f as usize,
            None => longer.div_ceil(1000).max(1),
        };
        let factor = factor.min(frame.width.min(frame.height) as usize).max(1);
        let g = Geometry {
            width: frame.width,
            height: frame.height,
            factor,
            ww: frame.width as usize / factor,
            wh: frame.height as usize / factor,
        };
        if let Some(p) = &self.preset
            && (p.width() != g.width || p.height() != g.height)
        {
            tracing::warn!(
                camera = %frame.camera, background = ?(p.width(), p.height()), frame = ?(g.width, g.height),
                "detect.background has a different size than the frames; learning the background instead"
            );
        }
        // Search mask: ROI minus exclusions, in working coordinates.
        let f = factor as f32;
        let to_work = |poly: &[[f32; 2]]| -> Vec<[f32; 2]> {
            poly.iter().map(|p| [p[0] / f, p[1] / f]).collect()
        };
        let n = g.ww * g.wh;
        self.allowed.clear();
        match &self.cfg.roi {
            Some(roi) => {
                self.allowed.resize(n, 0);
                segment::fill_polygon(&mut self.allowed, g.ww, g.wh, &to_work(roi), 1);
            }
            None => self.allowed.resize(n, 1),
        }
        for ex in &self.cfg.exclude {
            segment::fill_polygon(&mut self.allowed, g.ww, g.wh, &to_work(ex), 0);
        }
        self.geom = Some(g);
        self.take_restored(g, &frame.camera);
        g
    }

    /// Builds the background model from the buffered frames (or the preset image).
    fn learn(&mut self) {
        let Some(g) = self.geom else { return };
        let n = g.ww * g.wh;
        let mut learned_from: Vec<&Vec<u8>> = Vec::new();
        let mut bg8: Vec<u8> = if self.preset_matches() {
            let mut v = Vec::new();
            if let Some(p) = &self.preset {
                segment::downscale_box(
                    p.as_raw(),
                    g.width as usize,
                    g.height as usize,
                    g.factor,
                    &mut v,
                );
            }
            v
        } else {
            let stride = self.cfg.learn_stride as usize;
            let samples: Vec<&Vec<u8>> = {
                let usable: Vec<&Vec<u8>> = self
                    .pending
                    .iter()
                    .filter_map(|(_, l)| l.as_ref())
                    .collect();
                let picked: Vec<&Vec<u8>> = usable.iter().step_by(stride).copied().collect();
                // At end of a short stream use everything rather than too few samples.
                if picked.len() < 3 { usable } else { picked }
            };
            let bg = pixel_median(&samples, n);
            learned_from = samples;
            bg
        };

        // Noise and polarity from the buffered frames (every 3rd pixel).
        let frames: Vec<&Vec<u8>> = self
            .pending
            .iter()
            .filter_map(|(_, l)| l.as_ref())
            .collect();
        let mut mads = Vec::new();
        let mut hist = [0u32; 511];
        for f in &frames {
            hist.iter_mut().for_each(|h| *h = 0);
            let mut total = 0u32;
            for i in (0..n).step_by(3) {
                hist[(f[i] as i32 - bg8[i] as i32 + 255) as usize] += 1;
                total += 1;
            }
            let med = hist_quantile(&hist, total, 0.5) - 255;
            let mut dev = [0u32; 256];
            for (k, &c) in hist.iter().enumerate() {
                dev[((k as i32 - 255 - med).unsigned_abs()).min(255) as usize] += c;
            }
            mads.push(hist_quantile(&dev, total, 0.5) as f32);
        }
        mads.sort_by(|a, b| a.total_cmp(b));
        let mad = mads.get(mads.len() / 2).copied().unwrap_or(1.0).max(0.5);
        let sigma = 1.4826 * mad;
        // Where fish passed slowly or often while learning, they are in more than half of the
        // samples and the median keeps part of them (a ghost that holds a track until the
        // refinement). The water is the value that recurs within the noise; fish pixels vary.
        if !learned_from.is_empty() {
            bg8 = pixel_mode(&learned_from, n, mode_half_width(sigma));
        }
        let bg16: Vec<u16> = bg8.iter().map(|&v| (v as u16) << 8).collect();
        let threshold = match self.cfg.threshold {
            Some(t) => t as i16,
            None => (self.cfg.threshold_sigmas * sigma)
                .round()
                .clamp(8.0, 254.0) as i16,
        };
        let polarity = match self.cfg.polarity {
            Polarity::Dark => Resolved::Dark,
            Polarity::Light => Resolved::Light,
            Polarity::Both => Resolved::Both,
            Polarity::Auto => {
                let (mut dark, mut light) = (0u64, 0u64);
                for f in &frames {
                    for i in 0..n {
                        if self.allowed[i] == 0 {
                            continue;
                        }
                        let d = bg8[i] as i16 - f[i] as i16;
                        if d > threshold {
                            dark += 1;
                        } else if -d > threshold {
                            light += 1;
                        }
                    }
                }
                if dark >= 4 * light.max(1) {
                    Resolved::Dark
                } else if light >= 4 * dark.max(1) {
                    Resolved::Light
                } else {
                    Resolved::Both
                }
            }
        };
        let n_frames = frames.len();
        let f2 = (g.factor * g.factor) as f32;
        let typical = self.cfg.typical_area.map(|a| (a / f2).max(1.0));
        self.model = Some(Model {
            bg: bg16,
            polarity,
            threshold,
            noise_sigma: sigma,
            typical,
            area_samples: Vec::new(),
            shape: None,
            shape_samples: Vec::new(),
        });

        // Typical area from the buffered frames' blobs.
        if typical.is_none() {
            let lumas: Vec<Vec<u8>> = self.pending.iter().filter_map(|(_, l)| l.clone()).collect();
            let mut areas = Vec::new();
            for l in &lumas {
                self.segment(l);
                areas.extend(
                    self.blobs
                        .iter()
                        .filter(|b| b.n >= NOISE_FLOOR_PX)
                        .map(|b| b.n as f32),
                );
            }
            if let Some(m) = self.model.as_mut() {
                m.area_samples = areas;
                if m.area_samples.len() >= TYPICAL_SAMPLES {
                    m.typical = Some(median(&mut m.area_samples));
                    m.area_samples.clear();
                }
            }
        }
        tracing::info!(
            frames = n_frames, noise_sigma = sigma, threshold, polarity = ?polarity,
            typical_area_px2 = self.typical_area(), downscale = g.factor,
            "detect: background model ready"
        );
    }

    /// One-shot refinement of a learned background: samples every `refine_stride`-th frame
    /// until `learn_frames` samples are in, then replaces the background by their per-pixel
    /// recurring value ([`pixel_mode`]). The first background spans a couple of seconds; a fish
    /// resting in that time stays in it as a "ghost" that is detected where there is no fish —
    /// and, being detected, is protected from adaptation. The refined one spans many seconds.
    fn refine(&mut self, luma: &[u8]) {
        let stride = self.cfg.refine_stride as u64;
        if stride == 0 || self.refined || self.preset_matches() {
            return;
        }
        self.refine_tick += 1;
        if !self.refine_tick.is_multiple_of(stride) {
            return;
        }
        self.refine_samples.push(luma.to_vec());
        if self.refine_samples.len() < self.cfg.learn_frames as usize {
            return;
        }
        let samples = std::mem::take(&mut self.refine_samples);
        self.refined = true;
        let Some(m) = self.model.as_mut() else { return };
        if samples.iter().any(|s| s.len() != m.bg.len()) {
            return;
        }
        let refs: Vec<&Vec<u8>> = samples.iter().collect();
        let mode = pixel_mode(&refs, m.bg.len(), mode_half_width(m.noise_sigma));
        let mut changed = 0usize;
        for (b, med) in m.bg.iter_mut().zip(mode) {
            if (((*b + 128) >> 8) as i16 - med as i16).abs() > m.threshold {
                changed += 1;
            }
            *b = (med as u16) << 8;
        }
        tracing::info!(
            samples = samples.len(),
            changed_px = changed,
            "detect: background refined from a longer span"
        );
    }

    fn drain_pending(&mut self) -> Vec<DetectedFrame> {
        let mut out = Vec::with_capacity(self.pending.len());
        while let Some((frame, luma)) = self.pending.pop_front() {
            let detections = match (&luma, self.model.is_some()) {
                (Some(l), true) => self.detect(&frame, l),
                _ => Vec::new(),
            };
            if self.warm_pending > 0 {
                // A warm-up frame: it taught the model, it has no outputs.
                self.warm_pending -= 1;
                continue;
            }
            out.push(DetectedFrame { frame, detections });
        }
        out
    }

    /// Thresholds `cur` against the background into `self.mask`, cleans it and labels
    /// components into `self.blobs`.
    fn segment(&mut self, cur: &[u8]) {
        let (Some(g), Some(m)) = (self.geom, self.model.as_ref()) else {
            self.blobs.clear();
            return;
        };
        let n = g.ww * g.wh;
        // Global brightness offset (median of cur - bg on a sparse grid).
        let mut hist = [0u32; 511];
        let mut total = 0u32;
        for i in (0..n).step_by(7) {
            hist[(cur[i] as i32 - ((m.bg[i] + 128) >> 8) as i32 + 255) as usize] += 1;
            total += 1;
        }
        let offset = if total > 0 {
            hist_quantile(&hist, total, 0.5) - 255
        } else {
            0
        } as i16;
        self.offset = offset;
        let thr = m.threshold;
        self.mask.clear();
        self.mask.resize(n, 0);
        let pixels = self.mask.iter_mut().zip(cur).zip(&m.bg).zip(&self.allowed);
        for (((out, &c), &bgv), &ok) in pixels {
            let d = ((bgv + 128) >> 8) as i16 + offset - c as i16;
            let fg = match m.polarity {
                Resolved::Dark => d > thr,
                Resolved::Light => -d > thr,
                Resolved::Both => d.abs() > thr,
            };
            *out = (fg as u8) & ok;
        }
        let open = self.cfg.open_radius as usize;
        if m.polarity == Resolved::Both {
            let close = self.cfg.close_radius.unwrap_or(2) as usize;
            segment::open_close(&mut self.mask, g.ww, g.wh, 0, close, &mut self.tmp);
            segment::open_close(&mut self.mask, g.ww, g.wh, open, 0, &mut self.tmp);
        } else {
            let close = self.cfg.close_radius.unwrap_or(0) as usize;
            segment::open_close(&mut self.mask, g.ww, g.wh, open, close, &mut self.tmp);
        }
        self.labeller.label(&self.mask, g.ww, g.wh, &mut self.blobs);
    }

    /// Splits a large blob at its cores: the pixels deviating at least
    /// `max(2 × threshold, half the blob's strongest deviation)` (fish bodies, without the
    /// faint fins and tails by which touching fish usually join). With two or more cores of at
    /// least 15 % of a typical fish, every blob pixel goes to the nearest core centre and each
    /// part is returned; otherwise nothing (the blob stays whole and is flagged by its area).
    fn split_by_cores(&mut self, cur: &[u8], b: &Blob, typical: f32) -> Vec<Blob> {
        let (Some(g), Some(m)) = (self.geom, self.model.as_ref()) else {
            return Vec::new();
        };
        let (bx0, by0) = (b.x0 as usize, b.y0 as usize);
        let bw = (b.x1 - b.x0 + 1) as usize;
        let bh = (b.y1 - b.y0 + 1) as usize;
        let dev = |i: usize| -> i16 {
            let bgv = ((m.bg[i] + 128) >> 8) as i16 + self.offset;
            let d = bgv - cur[i] as i16;
            match m.polarity {
                Resolved::Dark => d,
                Resolved::Light => -d,
                Resolved::Both => d.abs(),
            }
        };
        let labels = &self.labeller.labels;
        let mut maxdev = 0i16;
        for y in 0..bh {
            for x in 0..bw {
                let i = (by0 + y) * g.ww + bx0 + x;
                if labels[i] == b.label {
                    maxdev = maxdev.max(dev(i));
                }
            }
        }
        let core_thr = (2 * m.threshold).max(maxdev / 2);
        self.core_mask.clear();
        self.core_mask.resize(bw * bh, 0);
        for y in 0..bh {
            for x in 0..bw {
                let i = (by0 + y) * g.ww + bx0 + x;
                self.core_mask[y * bw + x] = (labels[i] == b.label && dev(i) >= core_thr) as u8;
            }
        }
        self.core_labeller
            .label(&self.core_mask, bw, bh, &mut self.core_blobs);
        let min_core = (0.15 * typical).max(3.0) as u32;
        let cores: Vec<(f64, f64)> = self
            .core_blobs
            .iter()
            .filter(|c| c.n >= min_core)
            .map(|c| {
                let (mx, my, ..) = c.moments();
                (mx + bx0 as f64, my + by0 as f64)
            })
            .take(self.cfg.max_fish_per_blob as usize)
            .collect();
        if cores.len() < 2 {
            return Vec::new();
        }
        let mut parts: Vec<Blob> = cores
            .iter()
            .map(|_| Blob {
                label: b.label,
                x0: u32::MAX,
                y0: u32::MAX,
                ..Default::default()
            })
            .collect();
        for y in b.y0..=b.y1 {
            for x in b.x0..=b.x1 {
                if labels[y as usize * g.ww + x as usize] != b.label {
                    continue;
                }
                let (xf, yf) = (x as f64, y as f64);
                let mut best = (f64::INFINITY, 0usize);
                for (k, c) in cores.iter().enumerate() {
                    let d = (xf - c.0).powi(2) + (yf - c.1).powi(2);
                    if d < best.0 {
                        best = (d, k);
                    }
                }
                parts[best.1].add(x, y);
            }
        }
        parts.retain(|p| p.n > 0);
        parts
    }

    /// A ghost is a blob where the *background* holds a fish that is no longer there (it
    /// rested while the background was learned and then swam off). Such a blob is detected,
    /// and, being detected, protected from adaptation: it would hold a track — with a known
    /// population, the track that the real fish needs — until the refinement. Told apart by its
    /// outline: along a real fish's outline the current frame has the edge and the background
    /// none; along a ghost's the background has it and the current frame none. A ghost's
    /// pixels (and its box grown by 2 px, other blobs' pixels excepted) are reset to the
    /// current frame at once and `true` is returned; the blob must then not be reported.
    fn heal_if_ghost(&mut self, cur: &[u8], b: &Blob) -> bool {
        let (Some(g), Some(m)) = (self.geom, self.model.as_mut()) else {
            return false;
        };
        let labels = &self.labeller.labels;
        let bgv = |i: usize| ((m.bg[i] + 128) >> 8) as i32;
        let (mut edge_cur, mut edge_bg, mut n) = (0i64, 0i64, 0u32);
        for y in b.y0..=b.y1 {
            for x in b.x0..=b.x1 {
                let i = y as usize * g.ww + x as usize;
                if labels[i] != b.label {
                    continue;
                }
                let (x, y) = (x as usize, y as usize);
                let outside = [
                    (x > 0).then(|| i - 1),
                    (x + 1 < g.ww).then(|| i + 1),
                    (y > 0).then(|| i - g.ww),
                    (y + 1 < g.wh).then(|| i + g.ww),
                ];
                for j in outside.into_iter().flatten() {
                    if labels[j] != 0 {
                        continue;
                    }
                    edge_cur += (cur[i] as i32 - cur[j] as i32).abs() as i64;
                    edge_bg += (bgv(i) - bgv(j)).abs() as i64;
                    n += 1;
                }
            }
        }
        // Most of a real fish's outline has its edge in the frame; a ghost's outline has a
        // clear edge (at least the threshold on average) in the background only.
        let ghost = n >= GHOST_MIN_OUTLINE
            && edge_bg >= m.threshold as i64 * n as i64
            && edge_bg >= GHOST_EDGE_RATIO * edge_cur;
        if !ghost {
            return false;
        }
        let x0 = b.x0.saturating_sub(2) as usize;
        let x1 = (b.x1 as usize + 2).min(g.ww - 1);
        let y0 = b.y0.saturating_sub(2) as usize;
        let y1 = (b.y1 as usize + 2).min(g.wh - 1);
        for y in y0..=y1 {
            for i in y * g.ww + x0..=y * g.ww + x1 {
                if labels[i] == 0 || labels[i] == b.label {
                    let v = (cur[i] as i32 - self.offset as i32).clamp(0, 255);
                    m.bg[i] = (v as u16) << 8;
                }
            }
        }
        true
    }

    /// Extent (working px) of the blob's pixels along the direction `angle`: from the
    /// farthest pixel one way to the farthest the other, pixel widths included.
    fn axis_extent(&self, b: &Blob, angle: f32) -> f32 {
        let Some(g) = self.geom else {
            return 0.0;
        };
        let (sin, cos) = angle.sin_cos();
        let labels = &self.labeller.labels;
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for y in b.y0..=b.y1 {
            let row = y as usize * g.ww;
            for x in b.x0..=b.x1 {
                if labels[row + x as usize] == b.label {
                    let t = x as f32 * cos + y as f32 * sin;
                    lo = lo.min(t);
                    hi = hi.max(t);
                }
            }
        }
        if hi >= lo { hi - lo + 1.0 } else { 0.0 }
    }

    /// The blob's pixel positions in full-frame px, every k-th pixel in raster order so that
    /// at most [`Detection::MAX_POINTS`] remain.
    fn blob_points(&self, b: &Blob, to_full: &impl Fn(f64) -> f32) -> Vec<[f32; 2]> {
        let Some(g) = self.geom else {
            return Vec::new();
        };
        let step = (b.n as usize).div_ceil(Detection::MAX_POINTS).max(1);
        let labels = &self.labeller.labels;
        let mut out = Vec::with_capacity((b.n as usize / step) + 1);
        let mut k = 0usize;
        for y in b.y0..=b.y1 {
            for x in b.x0..=b.x1 {
                if labels[y as usize * g.ww + x as usize] != b.label {
                    continue;
                }
                if k.is_multiple_of(step) {
                    out.push([to_full(x as f64), to_full(y as f64)]);
                }
                k += 1;
            }
        }
        out
    }

    /// Detects fish in one frame (model ready) and adapts the background.
    fn detect(&mut self, frame: &Frame, cur: &[u8]) -> Vec<Detection> {
        self.segment(cur);
        let (Some(g), Some(m)) = (self.geom, self.model.as_mut()) else {
            return Vec::new();
        };
        let f = g.factor as f32;
        let f2 = f * f;
        // Typical area: learn while unknown, then follow slowly.
        let sizes: Vec<f32> = self
            .blobs
            .iter()
            .filter(|b| b.n >= NOISE_FLOOR_PX)
            .map(|b| b.n as f32)
            .collect();
        match m.typical {
            None => {
                m.area_samples.extend(&sizes);
                if m.area_samples.len() >= TYPICAL_SAMPLES {
                    m.typical = Some(median(&mut m.area_samples));
                    m.area_samples.clear();
                    tracing::info!(
                        typical_area_px2 = m.typical.map(|t| t * f2),
                        "detect: typical fish area learned"
                    );
                }
            }
            Some(t) if self.cfg.typical_area.is_none() => {
                // Only blobs near one fish follow the typical area (merges and fragments would drag it).
                let mut singles: Vec<f32> = sizes
                    .iter()
                    .copied()
                    .filter(|&a| a > 0.5 * t && a < 1.5 * t)
                    .collect();
                if singles.len() >= 3 {
                    let fm = median(&mut singles);
                    m.typical = Some(t + 0.01 * (fm - t));
                }
            }
            Some(_) => {}
        }
        let typical = m.typical;
        let polarity = m.polarity;
        let shape = m.shape;
        let side = self.view.resolve(polarity == Resolved::Both) == CameraView::Side;
        let mut shapes: Vec<BodyShape> = Vec::new();
        let min_px = match (self.cfg.min_area, typical) {
            (Some(a), _) => a / f2,
            (None, Some(t)) => (MIN_AREA_RATIO * t).max(NOISE_FLOOR_PX as f32),
            (None, None) => NOISE_FLOOR_PX as f32,
        };
        let max_px = match (self.cfg.max_area, typical) {
            (Some(a), _) => a / f2,
            // Side views: fish near the glass look up to four times the typical area, so a
            // blob of several of them swimming together is larger for its count.
            (None, Some(t)) if side => {
                SIDE_SIZE_SPREAD * (self.cfg.max_fish_per_blob as f32 + 0.5) * t
            }
            (None, Some(t)) => (self.cfg.max_fish_per_blob as f32 + 0.5) * t,
            (None, None) => f32::INFINITY,
        };
        let to_full = |v: f64| (v as f32) * f + (f - 1.0) / 2.0;
        let mut dets = Vec::new();
        let mut kept: Vec<Blob> = Vec::new();
        let mut blobs = std::mem::take(&mut self.blobs);
        if let Some(t) = typical {
            absorb_fragments(&mut blobs, FRAGMENT_RATIO * t, FRAGMENT_GAP_PX);
            let gap = (END_PIECE_GAP * t.sqrt())
                .round()
                .max(FRAGMENT_GAP_PX as f32) as u32;
            absorb_end_pieces(&mut blobs, END_PIECE_RATIO * t, gap);
        }
        let mut ghosts = 0usize;
        // Blobs too large to count (fish larger than the typical one touching, near the
        // glass) are not reported, but they are not background either: the adaptation below
        // must not learn them, or they leave a ghost where they were. Far larger blobs (a
        // light switched on over part of the tank) are left to adapt.
        let mut oversized: Vec<Blob> = Vec::new();
        for b in &blobs {
            let area = b.n as f32;
            if area > max_px && area <= OVERSIZED_PROTECT_RATIO * max_px {
                oversized.push(*b);
            }
            if area < min_px || area > max_px {
                continue;
            }
            if self.cfg.heal_ghosts && self.heal_if_ghost(cur, b) {
                ghosts += 1;
                tracing::debug!(
                    camera = %frame.camera, frame = frame.index,
                    x = to_full((b.x0 + b.x1) as f64 / 2.0), y = to_full((b.y0 + b.y1) as f64 / 2.0),
                    "detect: a ghost (a fish the background still holds where there is none now) healed"
                );
                continue;
            }
            kept.push(*b);
            let mut count = match typical {
                Some(t) => ((area / t).round() as u32).clamp(1, self.cfg.max_fish_per_blob),
                None => 1,
            };
            if self.cfg.split_touching
                && polarity != Resolved::Both
                && let Some(t) = typical
                && area >= SPLIT_MIN_RATIO * t
            {
                let parts = self.split_by_cores(cur, b, t);
                if parts.len() >= 2 {
                    for p in &parts {
                        dets.push(blob_detection(p, f, 1, &to_full));
                    }
                    continue;
                }
            }
            let mut d = blob_detection(b, f, count, &to_full);
            d.length = self.axis_extent(b, d.axis_angle) * f;
            if let Some(t) = typical {
                let body = BodyShape::of(&d);
                let ratio = area / t;
                if ratio > SHAPE_SAMPLE_RATIO.0
                    && ratio < SHAPE_SAMPLE_RATIO.1
                    && let Some(s) = body
                {
                    shapes.push(s);
                }
                // One fish near the glass, larger than the typical one (side views).
                if side
                    && count >= 2
                    && ratio <= ONE_FISH_MAX_RATIO
                    && let (Some(s), Some(typ)) = (body, shape)
                    && s.like_one_fish(typ)
                {
                    count = 1;
                    d.fish_count = 1;
                }
            }
            if let Some(t) = typical
                && area >= SPLIT_MIN_RATIO * t
            {
                d.points = self.blob_points(b, &to_full);
            }
            if let Some(spec) = self.crops
                && count == 1
            {
                d.crop = Some(oriented_crop(
                    frame,
                    d.x,
                    d.y,
                    d.axis_angle,
                    d.major_axis * self.cfg.crop_margin,
                    spec,
                ));
            }
            dets.push(d);
        }
        self.blobs = blobs;
        self.ghosts_healed += ghosts as u64;
        if let Some(m) = self.model.as_mut() {
            learn_shape(m, &shapes);
        }
        // Adapt the background away from kept and oversized blobs (their boxes grown by 2 px).
        if self.cfg.adapt_rate > 0.0
            && let Some(m) = self.model.as_mut()
        {
            let rate = (self.cfg.adapt_rate * 65536.0).round() as i32;
            self.tmp.clear();
            self.tmp.resize(g.ww * g.wh, 0);
            for b in kept.iter().chain(&oversized) {
                let x0 = b.x0.saturating_sub(2) as usize;
                let x1 = (b.x1 as usize + 2).min(g.ww - 1);
                let y0 = b.y0.saturating_sub(2) as usize;
                let y1 = (b.y1 as usize + 2).min(g.wh - 1);
                for y in y0..=y1 {
                    self.tmp[y * g.ww + x0..=y * g.ww + x1].fill(1);
                }
            }
            for ((bgv, &c), &protect) in m.bg.iter_mut().zip(cur).zip(&self.tmp) {
                if protect == 0 {
                    let target = (c as i32) << 8;
                    let cur_bg = *bgv as i32;
                    let step = ((target - cur_bg) * rate) >> 16;
                    // make sure the background can always move at least one 1/256 level
                    let step = if step == 0 && target != cur_bg {
                        (target - cur_bg).signum()
                    } else {
                        step
                    };
                    *bgv = (cur_bg + step).clamp(0, 65535) as u16;
                }
            }
        }
        dets
    }
}

/// Small blobs (under `small` px) whose box lies within `gap` px of a larger blob's box are
/// parts of that fish (a tail fin cut off at the thin caudal peduncle, a fin): their pixels
/// join the larger blob and they are dropped. A small blob far from others stays (a fish seen
/// head-on while it turns).
fn absorb_fragments(blobs: &mut Vec<Blob>, small: f32, gap: u32) {
    let big: Vec<usize> = (0..blobs.len())
        .filter(|&i| blobs[i].n as f32 >= small)
        .collect();
    if big.is_empty() {
        return;
    }
    let mut drop = vec![false; blobs.len()];
    for i in 0..blobs.len() {
        let s = blobs[i];
        if s.n as f32 >= small || s.n < NOISE_FLOOR_PX / 2 {
            continue;
        }
        let host = big
            .iter()
            .copied()
            .map(|j| (j, box_gap(&blobs[j], &s)))
            .filter(|&(_, g)| g <= gap)
            .min_by_key(|&(_, g)| g);
        if let Some((j, _)) = host {
            blobs[j].absorb(&s);
            drop[i] = true;
        }
    }
    remove_marked(blobs, &drop);
}

/// Gap in px between two blobs' boxes (0 when they touch or overlap).
fn box_gap(a: &Blob, b: &Blob) -> u32 {
    let dx = (a.x0.saturating_sub(b.x1)).max(b.x0.saturating_sub(a.x1));
    let dy = (a.y0.saturating_sub(b.y1)).max(b.y0.saturating_sub(a.y1));
    dx.max(dy)
}

/// Removes the blobs marked in `drop` (same order and length as `blobs`).
fn remove_marked(blobs: &mut Vec<Blob>, drop: &[bool]) {
    let mut k = 0;
    blobs.retain(|_| {
        k += 1;
        !drop[k - 1]
    });
}

/// Blobs under `small` px at an end of a blob at least [`END_PIECE_HOST_TIMES`] their size —
/// within `gap` px of its box, and on its body axis (their centre at most the larger blob's
/// minor axis from the axis line, and beyond a quarter of its major axis from its centre) —
/// are its tail fin or snout: their pixels join it and they are dropped. A fish beside another
/// lies off its axis, and one ahead of or behind another is as large as a fish.
fn absorb_end_pieces(blobs: &mut Vec<Blob>, small: f32, gap: u32) {
    let axes: Vec<(f64, f64, f64, f64, f64)> = blobs
        .iter()
        .map(|b| {
            let (mx, my, cxx, cyy, cxy) = b.moments();
            let (angle, major, minor) = segment::axis_from_moments(cxx, cyy, cxy);
            (mx, my, angle, major, minor)
        })
        .collect();
    let mut drop = vec![false; blobs.len()];
    for i in 0..blobs.len() {
        let s = blobs[i];
        if s.n as f32 >= small || s.n < NOISE_FLOOR_PX / 2 {
            continue;
        }
        let (sx, sy, ..) = axes[i];
        let host = (0..blobs.len())
            .filter(|&j| j != i && !drop[j])
            .filter(|&j| blobs[j].n as f32 >= END_PIECE_HOST_TIMES * s.n as f32)
            .map(|j| (j, box_gap(&blobs[j], &s)))
            .filter(|&(j, g)| {
                let (hx, hy, angle, major, minor) = axes[j];
                let (ux, uy) = (angle.cos(), angle.sin());
                let (dx, dy) = (sx - hx, sy - hy);
                let along = dx * ux + dy * uy;
                let across = -dx * uy + dy * ux;
                g <= gap && across.abs() <= minor && along.abs() >= 0.25 * major
            })
            .min_by_key(|&(_, g)| g);
        if let Some((j, _)) = host {
            blobs[j].absorb(&s);
            drop[i] = true;
        }
    }
    remove_marked(blobs, &drop);
}

/// Per-pixel median of `n`-pixel images (the upper median for an even count); `samples` must
/// not be empty.
fn pixel_median(samples: &[&Vec<u8>], n: usize) -> Vec<u8> {
    let mut vals = vec![0u8; samples.len()];
    let mut out = vec![0u8; n];
    for (i, o) in out.iter_mut().enumerate() {
        for (v, s) in vals.iter_mut().zip(samples) {
            *v = s[i];
        }
        let mid = vals.len() / 2;
        let (_, m, _) = vals.select_nth_unstable(mid);
        *o = *m;
    }
    out
}

/// Half width (luma levels) of the window in which [`pixel_mode`] looks for the recurring
/// value: two noise standard deviations, at least 2.
fn mode_half_width(sigma: f32) -> u8 {
    (2.0 * sigma).round().clamp(2.0, 40.0) as u8
}

/// Per-pixel "mode" of `n`-pixel images: the median of the largest group of samples lying
/// within `2 × half` levels of each other (on equal counts, the group nearest the median),
/// where it lies farther than `2 × half` from the plain median; the median otherwise.
/// The background recurs within the noise while fish passing over a pixel vary (stripes,
/// body, fins), so this keeps the background where a median would keep a fish that covered
/// the pixel in more than half of the samples. `samples` must not be empty.
fn pixel_mode(samples: &[&Vec<u8>], n: usize, half: u8) -> Vec<u8> {
    let width = 2 * half as i32;
    let mut vals = vec![0u8; samples.len()];
    let mut out = vec![0u8; n];
    for (i, o) in out.iter_mut().enumerate() {
        for (v, s) in vals.iter_mut().zip(samples) {
            *v = s[i];
        }
        vals.sort_unstable();
        let med = vals[vals.len() / 2] as i32;
        let (mut best, mut best_count, mut best_off) = (med as u8, 0usize, i32::MAX);
        let mut hi = 0usize;
        for lo in 0..vals.len() {
            hi = hi.max(lo);
            while hi + 1 < vals.len() && vals[hi + 1] as i32 - vals[lo] as i32 <= width {
                hi += 1;
            }
            let count = hi - lo + 1;
            let mid = vals[(lo + hi) / 2];
            let off = (mid as i32 - med).abs();
            if count > best_count || (count == best_count && off < best_off) {
                (best, best_count, best_off) = (mid, count, off);
            }
        }
        // Within the noise of the median, the median (the recurring value only replaces a
        // median that a fish pulled away from it).
        *o = if (best as i32 - med).abs() <= width {
            med as u8
        } else {
            best
        };
    }
    out
}

/// Quantile (`q` in 0..1) bin index of a histogram with `total` entries.
fn hist_quantile(hist: &[u32], total: u32, q: f32) -> i32 {
    let target = ((total as f32) * q).ceil().max(1.0) as u32;
    let mut acc = 0u32;
    for (k, &c) in hist.iter().enumerate() {
        acc += c;
        if acc >= target {
            return k as i32;
        }
    }
    hist.len() as i32 - 1
}

fn median(v: &mut [f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    *m
}

/// Learns the typical single fish's shape from this frame's blobs of about one typical area:
/// the median of the first [`TYPICAL_SAMPLES`], then each frame's median followed slowly.
fn learn_shape(m: &mut Model, frame_shapes: &[BodyShape]) {
    if frame_shapes.is_empty() {
        return;
    }
    match m.shape {
        None => {
            m.shape_samples.extend_from_slice(frame_shapes);
            if m.shape_samples.len() >= TYPICAL_SAMPLES {
                m.shape = Some(BodyShape::median(&m.shape_samples));
                m.shape_samples.clear();
            }
        }
        Some(s) => {
            let fm = BodyShape::median(frame_shapes);
            m.shape = Some(BodyShape {
                fill: s.fill + SHAPE_FOLLOW_RATE * (fm.fill - s.fill),
                aspect: s.aspect + SHAPE_FOLLOW_RATE * (fm.aspect - s.aspect),
            });
        }
    }
}

/// Detection from blob statistics (working pixels → full-frame pixels).
fn blob_detection(b: &Blob, f: f32, count: u32, to_full: &impl Fn(f64) -> f32) -> Detection {
    let (mx, my, cxx, cyy, cxy) = b.moments();
    let (angle, major, minor) = segment::axis_from_moments(cxx, cyy, cxy);
    Detection {
        x: to_full(mx),
        y: to_full(my),
        bbox: [
            b.x0 as f32 * f,
            b.y0 as f32 * f,
            (b.x1 + 1) as f32 * f,
            (b.y1 + 1) as f32 * f,
        ],
        area: b.n as f32 * f * f,
        axis_angle: angle as f32,
        major_axis: major as f32 * f,
        minor_axis: minor as f32 * f,
        length: 0.0,
        fish_count: count,
        crop: None,
        points: Vec::new(),
    }
}

#[cfg(test)]
mod tests;

//! Typed messages that flow one way between the stages:
//! ingest → [`Frame`] → detect → [`DetectedFrame`] → embed/identify → track → [`TrackedFrame`] → outputs;
//! at the end of a camera's stream, [`ToWriter::Resume`] carries its stages' state to the outputs.
//!
//! This module only defines data. It must never hold behaviour that belongs to a stage
//! (no detection, no tracking logic here): stages own their state, messages carry results.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Planar 8-bit image layouts a [`Frame`] can carry. Rows are tightly packed (no stride padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLayout {
    /// One luma plane (`width*height` bytes).
    Gray8,
    /// I420: luma plane, then U and V planes at half resolution (rounded up).
    I420,
    /// Interleaved RGB (`width*height*3` bytes).
    Rgb8,
}

/// One decoded video frame of one camera, as delivered by ingest.
///
/// Frames keep the decoder's native layout (usually I420) so that detection can work on luma
/// without converting the whole frame; use [`Frame::luma`] for detection and
/// [`Frame::rgb_at`] / crops for colour.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Camera name from the config (`[[cameras]] name`).
    pub camera: Arc<str>,
    /// 0-based index of this frame in the stream since the source started (gaps from dropped
    /// frames of live sources are visible as jumps).
    pub index: u64,
    /// Presentation timestamp from the stream, if it had one.
    pub pts: Option<Duration>,
    /// Wall-clock capture time (live sources) or start time + PTS (files).
    pub captured: SystemTime,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel layout of `data`.
    pub layout: PixelLayout,
    /// Tightly packed pixel data, shared so that fan-out costs no copy.
    pub data: Arc<Vec<u8>>,
}

impl Frame {
    /// Number of bytes `data` must hold for the given size and layout.
    pub fn expected_len(width: u32, height: u32, layout: PixelLayout) -> usize {
        let (w, h) = (width as usize, height as usize);
        match layout {
            PixelLayout::Gray8 => w * h,
            PixelLayout::Rgb8 => w * h * 3,
            PixelLayout::I420 => w * h + 2 * w.div_ceil(2) * h.div_ceil(2),
        }
    }

    /// The luma plane (for RGB frames this is `None`: use [`Frame::to_luma`]).
    pub fn luma(&self) -> Option<&[u8]> {
        match self.layout {
            PixelLayout::Gray8 | PixelLayout::I420 => self
                .data
                .get(..(self.width as usize * self.height as usize)),
            PixelLayout::Rgb8 => None,
        }
    }

    /// Luma of any layout: borrowed when the frame has a luma plane, computed (BT.601) otherwise.
    pub fn to_luma(&self) -> std::borrow::Cow<'_, [u8]> {
        if let Some(l) = self.luma() {
            return std::borrow::Cow::Borrowed(l);
        }
        let mut out = Vec::with_capacity(self.width as usize * self.height as usize);
        for px in self.data.chunks_exact(3) {
            let y = (66 * px[0] as u32 + 129 * px[1] as u32 + 25 * px[2] as u32 + 128) >> 8;
            out.push((y + 16).min(255) as u8);
        }
        std::borrow::Cow::Owned(out)
    }

    /// RGB of one pixel (BT.601 limited range for I420). Out-of-frame coordinates are clamped.
    #[inline]
    pub fn rgb_at(&self, x: i64, y: i64) -> [u8; 3] {
        let w = self.width as usize;
        let h = self.height as usize;
        if w == 0 || h == 0 {
            return [0, 0, 0];
        }
        let xi = x.clamp(0, w as i64 - 1) as usize;
        let yi = y.clamp(0, h as i64 - 1) as usize;
        let d = &self.data;
        match self.layout {
            PixelLayout::Gray8 => {
                let v = d.get(yi * w + xi).copied().unwrap_or(0);
                [v, v, v]
            }
            PixelLayout::Rgb8 => {
                let i = (yi * w + xi) * 3;
                match d.get(i..i + 3) {
                    Some(p) => [p[0], p[1], p[2]],
                    None => [0, 0, 0],
                }
            }
            PixelLayout::I420 => {
                let cw = w.div_ceil(2);
                let ch = h.div_ceil(2);
                let yv = d.get(yi * w + xi).copied().unwrap_or(16) as f32;
                let ci = (yi / 2) * cw + xi / 2;
                let u = d.get(w * h + ci).copied().unwrap_or(128) as f32;
                let v = d.get(w * h + cw * ch + ci).copied().unwrap_or(128) as f32;
                let c = 1.164 * (yv - 16.0);
                let dd = u - 128.0;
                let e = v - 128.0;
                let r = c + 1.596 * e;
                let g = c - 0.392 * dd - 0.813 * e;
                let b = c + 2.017 * dd;
                [
                    r.round().clamp(0.0, 255.0) as u8,
                    g.round().clamp(0.0, 255.0) as u8,
                    b.round().clamp(0.0, 255.0) as u8,
                ]
            }
        }
    }
}

/// An RGB image cut out of a frame around one fish, rotated so the body axis is horizontal.
#[derive(Debug, Clone)]
pub struct Crop {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Interleaved RGB, `width*height*3` bytes.
    pub rgb: Vec<u8>,
}

/// One fish (or a blob of touching fish) found in a frame.
#[derive(Debug, Clone)]
pub struct Detection {
    /// Body centre (centroid of the blob), in full-frame pixels.
    pub x: f32,
    /// Body centre, y.
    pub y: f32,
    /// Axis-aligned bounding box, full-frame pixels: left, top, right, bottom.
    pub bbox: [f32; 4],
    /// Blob area in full-frame px².
    pub area: f32,
    /// Body axis angle from image moments, radians in (-π/2, π/2] (axis, not heading).
    pub axis_angle: f32,
    /// Length of the major axis (≈ body length), px.
    pub major_axis: f32,
    /// Length of the minor axis, px.
    pub minor_axis: f32,
    /// Extent of the blob along its major axis, px: nose to tail tip as far as segmented
    /// (the second-moment `major_axis` is shorter for a tapered body). 0 when not measured
    /// (parts of a cut blob).
    pub length: f32,
    /// Estimated number of fish in this blob (1 for a normal fish; ≥2 flags touching fish).
    pub fish_count: u32,
    /// Oriented crop (body axis horizontal), when the detector was asked for crops.
    pub crop: Option<Crop>,
    /// Pixel positions (full-frame px, evenly subsampled to at most
    /// [`Detection::MAX_POINTS`]) of a blob large enough to hold several fish that the
    /// detector could not split; empty for ordinary blobs. The tracker divides such a blob
    /// between the tracks that share it.
    pub points: Vec<[f32; 2]>,
}

impl Detection {
    /// Most points a detection carries in [`Detection::points`].
    pub const MAX_POINTS: usize = 512;
}

/// Everything detect found in one frame.
#[derive(Debug, Clone)]
pub struct DetectedFrame {
    /// The frame the detections come from (pixel data shared, not copied).
    pub frame: Frame,
    /// Detections in this frame.
    pub detections: Vec<Detection>,
}

/// Lifecycle state of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackStatus {
    /// Seen in too few frames to be trusted yet.
    Tentative,
    /// Seen consistently; reported in outputs.
    Confirmed,
    /// Not matched this frame; position predicted (coasting).
    Lost,
}

/// One track's state after a frame.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrackReport {
    /// Track id, unique per camera for the process lifetime.
    pub track: u64,
    /// Individual id when identity is known.
    pub individual: Option<String>,
    /// Status after this frame.
    pub status: TrackStatus,
    /// Body centre, px (measured when matched, predicted when coasting).
    pub x: f32,
    /// Body centre, y.
    pub y: f32,
    /// Bounding box: left, top, right, bottom.
    pub bbox: [f32; 4],
    /// Heading in radians (direction of motion, image coordinates, 0 = +x, y down).
    pub heading: f32,
    /// Blob area, px² (0 when coasting).
    pub area: f32,
    /// Index into the frame's detections that this track matched, if any.
    pub detection: Option<usize>,
    /// The fish's length as it shows broadside (px): a fish turning towards the camera or
    /// bending looks shorter for a while without changing this much.
    pub body_length: f32,
    /// Area of this fish alone, px², as the tracker learned it from blobs it had to itself
    /// (`area` is the blob's, shared or not); 0 when unknown.
    pub fish_area: f32,
}

/// A confirmed track as it was in the last frame a recording's output folder has (kept in the
/// outputs' checkpoint), so that the run resuming that recording continues the track under the
/// same id: what the camera saw one frame before is where the fish are now.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackSeed {
    /// Track id.
    pub track: u64,
    /// Body centre, px.
    pub x: f32,
    /// Body centre, y.
    pub y: f32,
    /// Velocity, px/s (from the frame before; 0 when the track was new).
    pub vx: f32,
    /// Velocity, y.
    pub vy: f32,
    /// Bounding box: left, top, right, bottom.
    pub bbox: [f32; 4],
    /// Heading in radians, as [`TrackReport::heading`].
    pub heading: f32,
    /// Broadside length, px, as [`TrackReport::body_length`].
    pub body_length: f32,
    /// Area of the fish alone, px² (0 when unknown).
    pub area: f32,
    /// The individual (label) its row carried, if any.
    #[serde(default)]
    pub individual: Option<String>,
    /// The box of the blob it shared with other tracks in that frame (fish touching or one
    /// behind another), if it did.
    #[serde(default)]
    pub shared_box: Option<[f32; 4]>,
}

/// What a camera's worker sends the writer.
#[derive(Debug)]
pub enum ToWriter {
    /// The next frame's tracks.
    Frame(TrackedFrame),
    /// The camera's stream ended (end of recording or stop) after its last frame was sent:
    /// the state to keep with the checkpoint after that frame.
    Resume {
        /// Camera name.
        camera: Arc<str>,
        /// The stages' state.
        state: Box<ResumeState>,
    },
}

/// The stages' state after a camera's last frame, kept with the checkpoint after the last
/// frame whose rows were written, so that a run resuming the recording continues exactly where
/// this one stopped: no background learned again, no tracks rebuilt from rows, and the frames
/// that were still waiting for their labels written as an uninterrupted run writes them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeState {
    /// Index of the frame the state is after.
    pub after_frame: u64,
    /// Stream time of that frame (absent in states of older builds: then the checkpoint's).
    #[serde(default)]
    pub after_t: Option<f64>,
    /// Index of the first frame whose rows were not written when the state was taken (the
    /// checkpoint's `next_frame`); the frames from it up to `after_frame` wait in `identity`
    /// for their labels (absent: the frame after `after_frame`).
    #[serde(default)]
    pub resume_at: Option<u64>,
    /// The detector's learned model (`None` if it was still learning).
    pub detector: Option<crate::detect::DetectorState>,
    /// The tracker's tracks.
    pub tracker: crate::track::TrackerState,
    /// The identity step's memory and waiting frames (`None`: identity off, or not kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<crate::pipeline::IdentityState>,
}

impl ResumeState {
    /// Index of the first frame whose rows were not written when the state was taken.
    pub fn resume_at(&self) -> u64 {
        self.resume_at
            .unwrap_or_else(|| self.after_frame.saturating_add(1))
    }
}

/// Tracks after one frame: what outputs consume.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrackedFrame {
    /// Camera name.
    pub camera: Arc<str>,
    /// Frame index.
    pub index: u64,
    /// Stream time of the frame (PTS), seconds.
    pub t: f64,
    /// Wall-clock capture time.
    pub captured: SystemTime,
    /// Frame size.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Fish in view in the frame, as counted by the tracker: fish sharing a touching blob count
    /// separately, and a fish that vanished behind another less than a second ago still counts.
    pub visible_fish: u32,
    /// All tracks (confirmed, tentative and coasting).
    pub tracks: Vec<TrackReport>,
}

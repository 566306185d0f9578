//! The tracker's tracks as they stand after a frame ([`TrackerState`]), kept with a
//! recording's checkpoint when a run stops, so that the run resuming the recording follows the
//! fish from the same motion state (velocity and its uncertainty, hits, coasting and shared-blob
//! history) as an uninterrupted run would, not from the last rows' positions alone. Must never
//! decide when or where it is saved: the outputs keep it with the checkpoint.

use serde::{Deserialize, Serialize};

use super::{Track, Tracker};

/// All tracks of a tracker after a frame, with its numbering and clock. Opaque to the other
/// stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerState {
    /// Every track: confirmed, tentative, coasting and dormant.
    tracks: Vec<Track>,
    /// The next new track's id.
    next_id: u64,
    /// Stream time of the last frame.
    last_t: Option<f64>,
    /// Frames seen.
    frames: u64,
    /// Fish in view in the last frame, by the tracker's account.
    visible: u32,
}

impl Tracker {
    /// The tracks after the last frame (see [`TrackerState`]).
    pub fn state(&self) -> TrackerState {
        TrackerState {
            tracks: self.tracks.clone(),
            next_id: self.next_id,
            last_t: self.last_t,
            frames: self.frames,
            visible: self.visible,
        }
    }

    /// Continues the tracks a previous run on the same recording had after the frame this
    /// run starts behind ([`Tracker::state`]). Call before the first frame (otherwise, or for a
    /// state whose clock is not finite, nothing changes and `false` is returned); track ids go
    /// on after the larger of the state's and [`Tracker::number_tracks_from`]'s.
    pub fn restore(&mut self, state: TrackerState) -> bool {
        if self.last_t.is_some() || !state.last_t.is_none_or(f64::is_finite) {
            return false;
        }
        self.tracks = state.tracks;
        self.next_id = self.next_id.max(state.next_id);
        self.last_t = state.last_t;
        self.frames = state.frames;
        self.visible = state.visible;
        true
    }
}

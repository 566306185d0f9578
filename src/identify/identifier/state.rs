//! The identity stage's memory of one camera after a frame ([`IdentifierState`]): its tracklets
//! (recent embeddings, fragments, contacts), the regrouping's window and latest answer, and the
//! tank's registry and gallery as they stood then. Kept with a recording's checkpoint when a run
//! stops, so that the run resuming the recording names the fish as an uninterrupted run would.
//! Must never decide when or where it is saved: the camera worker and the outputs do.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{AlikeWatch, Identifier, Sighting, Tracklet, read, write};
use crate::identify::registry::{StateFile, TankState};
use crate::identify::solver::Window;

/// One camera's identity memory after a frame, with its tank's registry and gallery. Opaque to
/// the other stages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifierState {
    /// The tank's registry and gallery when the state was taken.
    tank_state: StateFile,
    /// The gallery's generation then ([`crate::identify::gallery::Gallery::generation`]).
    generation: u64,
    /// SHA-256 of the tank's state file as the stopping run left it (`None`: no file): a file
    /// changed since (an enrolment, another recording of the tank) means the gallery above is
    /// stale, and the state is not taken up.
    state_file_sha256: Option<String>,
    tracklets: HashMap<u64, Tracklet>,
    tokens: f64,
    last_t: Option<f64>,
    seen: HashMap<String, f64>,
    fragments: u64,
    window: Window,
    regrouped: HashMap<u64, Option<String>>,
    last_regroup: Option<f64>,
    regroup_ready: bool,
    said_alike: AlikeWatch,
    alike: bool,
    alike_similarity: Option<f32>,
    waiting_since: Option<f64>,
    sightings: VecDeque<Sighting>,
    continued: HashMap<u64, String>,
    continued_fragments: HashMap<u64, String>,
}

impl Identifier {
    /// The camera's identity memory after the last frame (see [`IdentifierState`]). Call
    /// [`Identifier::stamp_saved_file`] on it after the run's last save.
    pub fn state(&self) -> IdentifierState {
        let st = read(&self.shared);
        IdentifierState {
            tank_state: st.to_file(),
            generation: st.gallery.generation(),
            state_file_sha256: None,
            tracklets: self.tracklets.clone(),
            tokens: self.tokens,
            last_t: self.last_t,
            seen: self.seen.clone(),
            fragments: self.fragments,
            window: self.window.clone(),
            regrouped: self.regrouped.clone(),
            last_regroup: self.last_regroup,
            regroup_ready: self.regroup_ready,
            said_alike: self.said_alike.clone(),
            alike: self.alike,
            alike_similarity: self.alike_similarity,
            waiting_since: self.waiting_since,
            sightings: self.sightings.clone(),
            continued: self.continued.clone(),
            continued_fragments: self.continued_fragments.clone(),
        }
    }

    /// Records in `state` the digest of the tank's state file as it is now (after the run's
    /// last save), so that a resume can tell whether the file changed since.
    pub fn stamp_saved_file(&self, state: &mut IdentifierState) {
        state.state_file_sha256 = self.state_file_digest();
    }

    fn state_file_digest(&self) -> Option<String> {
        let p = self.store.as_ref()?;
        crate::embed::card::sha256_file(p).ok()
    }

    /// Takes up the memory a previous run on the same recording had after the frame this run
    /// starts behind ([`Identifier::state`]), its tank's registry and gallery included. Call
    /// before the first frame. Refused, with the reason, when frames were seen already, when
    /// the tank's state file changed since that run saved it, or when the state is another
    /// tank's or another encoder's; nothing changes then.
    pub fn restore(&mut self, s: IdentifierState) -> Result<(), String> {
        if self.last_t.is_some() || !self.tracklets.is_empty() {
            return Err("the identifier has seen frames already".into());
        }
        if s.state_file_sha256 != self.state_file_digest() {
            return Err(
                "the identity state file changed since the run stopped (an enrolment, or \
                 another recording of the tank)"
                    .into(),
            );
        }
        let (model, dim, rebuild) = {
            let st = read(&self.shared);
            (
                st.model.clone(),
                st.gallery.dim(),
                self.cfg.rebuild_fraction,
            )
        };
        let mut tank = TankState::from_file(s.tank_state, &self.tank, &model, dim, rebuild)?;
        tank.gallery.go_on_from_generation(s.generation);
        self.saved_number = tank.registry.next_number;
        self.saved_prototypes = tank.gallery.len();
        *write(&self.shared) = tank;
        self.tracklets = s.tracklets;
        self.tokens = s.tokens;
        self.last_t = s.last_t;
        self.seen = s.seen;
        self.fragments = s.fragments;
        self.window = s.window;
        self.regrouped = s.regrouped;
        self.last_regroup = s.last_regroup;
        self.regroup_ready = s.regroup_ready;
        self.said_alike = s.said_alike;
        self.alike = s.alike;
        self.alike_similarity = s.alike_similarity;
        self.waiting_since = s.waiting_since;
        self.sightings = s.sightings;
        self.continued = s.continued;
        self.continued_fragments = s.continued_fragments;
        Ok(())
    }
}

//! Assignment of tracklets to individuals for one tank.
//!
//! A track is cut into fragments at every contact with another fish (boxes within
//! `contact_margin`, a blob of several fish, a shared blob) and after a long coast — for a side
//! view also where a tangle ends inside a longer contact ([`Identifier::set_view`]): the motion
//! tracker can swap fish there, but between contacts a track follows one fish, so a fragment's
//! evidence is its own (outputs written after `label_lag_s` take each fragment's latest
//! individual, see `Identifier::fragment_of`). A fragment that is confirmed (anchored: enrolled
//! from it, placed by elimination, or matched clearly) keeps its individual to its end, and
//! while it is in view every other fragment in view is another fish: each fragment collects
//! the individuals so held elsewhere during its life and can be none of them. With a known
//! population the fish are enrolled together once (nearly) all N are in view and apart; the
//! rest one at a time, each from a fragment that matches nobody and either was in view while
//! every individual was held elsewhere or shows a side whose every possible owner is in view
//! elsewhere. A fragment showing a side that matches nobody takes the only individual never
//! seen from that side that is neither in view elsewhere nor excluded (elimination), and
//! teaches it that side.
//!
//! Per tracklet (a track id of the motion tracker) a window of recent embeddings is kept; each
//! embedding retrieves its nearest prototypes through the HNSW gallery (candidates), which are
//! then scored exactly (best similarity to each candidate individual's prototypes). A tracklet's
//! score for an individual is the mean over its window weighted by crop quality⁴ (a fish turning
//! shows little pattern). Tracklets visible at the same time are assigned one-to-one (Hungarian,
//! maximum total score, with a bonus for keeping the current individual). Known population (N):
//! never more than N individuals; once N exist every tracklet with evidence gets the best free
//! one. Open population: a tracklet becomes a new
//! individual only after consistent evidence (enough embeddings, over enough time, mostly unlike
//! everyone, and alike each other). A tracklet that vanishes and a new one that appears later get
//! the same individual when the embeddings say so; after an occlusion (merged blob) a tracklet's
//! window is set aside and given back only when the new embeddings show the same fish, otherwise
//! evidence decides again. Confident tracklets teach the gallery new views (flank turns) under the
//! bounded, diverse prototype policy.
//!
//! Every `relabel_every_s` the fragments of the last `relabel_window_s` are regrouped with
//! hindsight ([`super::solver`]). A crop's embedding (which arrives frames after the crop was
//! cut) is evidence for the fragment the track was in when it was cut; one cut in a contact
//! after its last tangle shows the fish the track leaves the contact with, so it goes to the
//! fragment after the contact. In a side view the tracks of a shared blob are embedded too,
//! each from a crop at its own place, and the crop of the fish in front counts for its
//! fragment ([`Identifier::observe_shared`]). Outputs written after `label_lag_s` take the regrouped
//! individuals ([`Identifier::take_regrouped`]), and a main group no individual fits is
//! enrolled while a known population is short, or, once it is complete, takes an individual no
//! group is named after (elimination). The online assignment goes on unchanged. Crops that
//! count and look like a known individual are also handed to the outputs as sightings
//! ([`Identifier::take_sightings`]), which place a track's swap inside a contact. The window's
//! named fragments are saved with the state and regrouped with after the next start
//! ([`super::solver::SavedFragment`]).
//!
//! A fish's two flanks look unrelated, so an embedding is compared only with prototypes seen from
//! the same side (heading left/right); an individual never seen from that side gets no evidence
//! for or against (a turning tracklet keeps its individual). Tracks moving up or down (side
//! unknown) are not embedded. One fish enrolled twice, once per flank, is merged into the older
//! identity when one continuously tracked tracklet shows both sides.
//!
//! Must never read pixels or run the model.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::gallery::{Prototype, Source, View, cosine};
use super::registry::{Merge, TankState, state_path, write_atomic};
use super::solver::{self, Name, Window};
use super::{IdentifyError, IdentityConfig};
use crate::config::CameraView;
use crate::embed::ModelCard;
use crate::messages::{Detection, TrackReport, TrackSeed, TrackStatus};

mod state;
pub use state::IdentifierState;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Obs {
    t: f64,
    quality: f32,
    view: View,
    emb: Vec<f32>,
    /// Candidate individuals (raw ids at observation time) and exact best similarity to their
    /// prototypes seen from a compatible side.
    sims: Vec<(String, f32)>,
    /// Candidate individuals never seen from this side (no compatible prototype): this
    /// embedding is no evidence for or against them (a fish's other flank looks different).
    blind: Vec<String>,
    /// Gallery generation `sims` and `blind` were computed at (rescored when it changed).
    generation: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Tracklet {
    /// Current fragment: a stretch of the track with no contact with another fish, so one fish
    /// throughout (see [`Identifier::fragment_of`]).
    fragment: u64,
    heading: f32,
    occluded: bool,
    /// Stream time since which the track has had no detection (coasting).
    coasting_since: Option<f64>,
    just_unoccluded: bool,
    /// The current contact has had a frame in a blob of several fish, in a blob shared with
    /// another track, with its box overlapping another's, or hidden (coasting): a tangle, where
    /// the tracker swaps fish far more often than where boxes only come close.
    tangled: bool,
    /// The current fragment began after a tangle or a long coast ([`Self::tangled`]): its
    /// link to the track's previous fragment is weak evidence.
    after_tangle: bool,
    obs: VecDeque<Obs>,
    /// The window from before the last occlusion, with its anchor: given back when the new
    /// embeddings show the same fish (no swap in the merged blob), dropped otherwise.
    held: VecDeque<Obs>,
    held_anchor: Option<String>,
    /// Observations at the back not yet offered to the gallery.
    pending: usize,
    individual: Option<String>,
    anchor: Option<String>,
    last_embed_t: Option<f64>,
    confident: bool,
    /// Stream time since which the tracklet has had no individual.
    unassigned_since: Option<f64>,
    /// Individuals (raw ids) held by another anchored track at some moment of this fragment:
    /// they were elsewhere while this fragment's one fish was here, so it is none of them.
    excluded: HashSet<String>,
    /// The fragment and contact state of the track's latest frames ([`RECENT_FRAMES`]): an
    /// embedding arrives frames after its crop was cut and counts for the fragment it was cut
    /// in.
    recent: VecDeque<Moment>,
    /// Stream time of the track's latest tangle frame (see [`Self::tangled`]).
    last_tangle_t: Option<f64>,
    /// The track's previous frame was a tangle frame.
    in_tangle: bool,
    /// Embeddings cut in the current contact after its latest tangle frame: they show the fish
    /// the track will leave the contact with (the tracker may have swapped fish in the tangle,
    /// rarely after it), so they wait for the fragment after the contact. At another tangle
    /// frame they go to the fragment they were cut in, whose fish the track most likely still
    /// follows (it keeps its fish through most tangles).
    carried: Vec<SideEmbedding>,
    /// Carried embeddings of the fragment that has just begun, given to the regrouping window
    /// once the fragment is in it.
    opening: Vec<SideEmbedding>,
}

/// Where a track was in one frame (see [`Tracklet::recent`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Moment {
    t: f64,
    fragment: u64,
    /// In a contact that has had a tangle frame: the track may follow another fish than its
    /// fragment's.
    tangled: bool,
}

/// One embedding for a fragment's evidence: the side it shows (index into `View::SIDES`), its
/// weight, the vector.
type SideEmbedding = (usize, f32, Vec<f32>);

/// Per-individual scores of one tracklet.
struct Scores {
    n: usize,
    span: f64,
    /// Individuals with enough comparable evidence, best first: mean similarity over the
    /// window's embeddings seen from sides the individual is known from.
    by: Vec<(String, f32)>,
}

/// Crops below this quality add nothing to a fragment's evidence for the regrouping (a fish
/// turning shows little pattern).
const REGROUP_MIN_QUALITY: f32 = 0.5;

/// The state is saved before `save_every_s` once the gallery holds this many times the
/// prototypes it held at the last save (and at least [`GROWTH_SAVE_MIN_S`] after it): while a
/// tank's gallery is young the whole file is small and what a crash would lose is most of it;
/// later it grows slowly and `save_every_s` governs.
const GROWTH_SAVE: f64 = 1.5;
/// Shortest time between two saves for gallery growth, s.
const GROWTH_SAVE_MIN_S: f64 = 5.0;

/// Fragments in the regrouping window up to which it runs every `relabel_every_s` (one run
/// takes about 10 ms at 250 fragments, 80 ms at 720).
const REGROUP_FRAGMENTS: f64 = 250.0;

/// Up to this many individuals, every embedding is scored against all of them (not only the
/// ANN candidates), so that "never seen from this side" is told apart from "dissimilar".
const EXHAUSTIVE_INDIVIDUALS: usize = 256;

/// Similarity thresholds in effect (config, else model card, else built-in defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// See `IdentityConfig::accept_similarity`.
    pub accept: f32,
    /// See `IdentityConfig::new_similarity`.
    pub new: f32,
    /// See `IdentityConfig::consistency_similarity`.
    pub consistency: f32,
}

impl Thresholds {
    /// Resolves each threshold: the config value when set, else the card's `thresholds`, else the
    /// built-in default.
    pub fn resolve(cfg: &IdentityConfig, card: &ModelCard) -> Thresholds {
        let ct = card.thresholds.clone().unwrap_or_default();
        Thresholds {
            accept: cfg
                .accept_similarity
                .or(ct.accept_similarity)
                .unwrap_or(super::DEFAULT_ACCEPT),
            new: cfg
                .new_similarity
                .or(ct.new_similarity)
                .unwrap_or(super::DEFAULT_NEW),
            consistency: cfg
                .consistency_similarity
                .or(ct.consistency_similarity)
                .unwrap_or(super::DEFAULT_CONSISTENCY),
        }
    }
}

/// One tank's identifier: owned by that camera's worker thread.
pub struct Identifier {
    th: Thresholds,
    cfg: IdentityConfig,
    tank: String,
    population: Option<u32>,
    shared: Arc<RwLock<TankState>>,
    store: Option<PathBuf>,
    present_count: Arc<AtomicUsize>,
    tracklets: HashMap<u64, Tracklet>,
    tokens: f64,
    last_t: Option<f64>,
    last_save: Instant,
    /// The registry's `next_number` when the state was last saved: a new individual is saved
    /// at once, before any row carries its id (after a crash the rows written still name
    /// individuals the state knows).
    saved_number: u64,
    /// Gallery prototypes when the state was last saved: a young gallery, growing fast, is
    /// saved as it grows ([`GROWTH_SAVE`]), so a crash in a tank's first minutes keeps most of
    /// what it learned.
    saved_prototypes: usize,
    seen: HashMap<String, f64>,
    warned_dim: bool,
    /// Last fragment number handed out.
    fragments: u64,
    /// The fragments of the last `relabel_window_s`, for the regrouping.
    window: Window,
    /// The last regrouping: each fragment of its window and its individual (raw id), if any.
    regrouped: HashMap<u64, Option<String>>,
    /// Stream time of the last regrouping.
    last_regroup: Option<f64>,
    /// A regrouping not yet taken by [`Identifier::take_regrouped`].
    regroup_ready: bool,
    /// What the log last said about how alike this camera's fish look (see [`AlikeWatch`]).
    said_alike: AlikeWatch,
    /// The latest regrouping found this camera's fish too alike to tell apart by their crops
    /// (its neutral similarity above `relabel_similarity`).
    alike: bool,
    /// How alike fish in view together looked to the latest regrouping that could tell
    /// ([`solver::Solution::alike`]).
    alike_similarity: Option<f32>,
    /// Known population, nobody enrolled yet: stream time since which the fish have been
    /// waited for (see `IdentityConfig::enrol_patience_s`).
    waiting_since: Option<f64>,
    /// A side view ([`Identifier::set_view`]): a track's fragment also ends where a tangle
    /// ends inside a contact (the track's blob or box no longer shared or overlapping, its box
    /// still near another's), not only where the contact ends; and, with
    /// `shared_blob_crops`, tracks sharing a blob are embedded ([`Identifier::observe_shared`]).
    side_view: bool,
    /// Crops that counted as evidence since the last [`Identifier::take_sightings`] (raw ids).
    sightings: VecDeque<Sighting>,
    /// Tracks the tracker continues from the run before (a resumed recording) and the
    /// individual (raw id) their last written row carried; taken when the track is first seen.
    continued: HashMap<u64, String>,
    /// The first fragment of such a track, with that individual: written with it.
    continued_fragments: HashMap<u64, String>,
}

/// A crop that counted for the regrouping and looked like a known individual (at least
/// `new_similarity`, seen from the side it shows): which fish its track followed when it was
/// cut. Outputs use it to place a track's swap inside the contact that ended its fragment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sighting {
    /// The track the crop was cut for.
    pub track: u64,
    /// Stream time of the frame the crop was cut from.
    pub t: f64,
    /// The individual it looked most like (label: name, else id).
    pub individual: String,
}

/// Handle on one tank's registry and gallery for the HTTP API and `finprint enroll`.
#[derive(Clone)]
pub struct IdentityApi {
    tank: String,
    shared: Arc<RwLock<TankState>>,
    store: Option<PathBuf>,
    present_count: Arc<AtomicUsize>,
}

/// One individual as the API lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IndividualInfo {
    /// Tank.
    pub tank: String,
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// What outputs show (name, else id).
    pub label: String,
    /// First seen / enrolled (RFC 3339).
    pub first_seen: String,
    /// Last seen (RFC 3339).
    pub last_seen: String,
    /// Live prototypes in the gallery.
    pub prototypes: usize,
    /// Enrolment photos.
    pub enrolled_photos: Vec<String>,
    /// Set when merged into another individual.
    pub merged_into: Option<String>,
}

fn read(s: &RwLock<TankState>) -> RwLockReadGuard<'_, TankState> {
    s.read().unwrap_or_else(|p| p.into_inner())
}

fn write(s: &RwLock<TankState>) -> RwLockWriteGuard<'_, TankState> {
    s.write().unwrap_or_else(|p| p.into_inner())
}

fn normalized(v: &[f32]) -> Option<Vec<f32>> {
    let mut v = v.to_vec();
    crate::embed::preprocess::l2_normalize(&mut v).then_some(v)
}

/// Whether a changed state is saved now: at once when an individual was enrolled since the last
/// save, after `save_every_s`, or sooner while the gallery grows fast (`prototypes`: at the
/// last save and now; see [`GROWTH_SAVE`]).
fn save_due(enrolled: bool, since_s: f64, save_every_s: f64, prototypes: (usize, usize)) -> bool {
    let (saved, now) = prototypes;
    enrolled
        || since_s >= save_every_s
        || (since_s >= GROWTH_SAVE_MIN_S && now as f64 >= GROWTH_SAVE * saved.max(1) as f64)
}

fn save_shared(shared: &RwLock<TankState>, path: &std::path::Path) -> Result<(), IdentifyError> {
    let bytes = {
        let mut st = write(shared);
        let b = st.to_bytes().map_err(|e| IdentifyError::Save {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
        st.dirty = false;
        b
    };
    write_atomic(path, &bytes).inspect_err(|_| write(shared).dirty = true)
}

impl Identifier {
    /// Opens the identifier of `tank`: loads `<state_dir>/<tank>.identity.json` when it exists
    /// (an error when it is damaged or built with another encoder), else starts empty.
    /// `population`: expected number of fish (known population) or `None` (open).
    pub fn build(
        cfg: &IdentityConfig,
        tank: &str,
        population: Option<u32>,
        card: &ModelCard,
    ) -> Result<Identifier, IdentifyError> {
        let model = card.fingerprint();
        let dim = card.output.dim;
        let store = cfg.resolved_state_dir().map(|d| state_path(&d, tank));
        let state = match &store {
            Some(p) => match TankState::load(p, tank, &model, dim, cfg.rebuild_fraction)? {
                Some(s) => {
                    tracing::info!(
                        tank,
                        file = %p.display(),
                        individuals = s.registry.active().count(),
                        prototypes = s.gallery.len(),
                        "identity state loaded"
                    );
                    s
                }
                None => {
                    tracing::info!(tank, file = %p.display(), "no identity state yet; starting an empty gallery");
                    TankState::new(tank, &model, dim, cfg.rebuild_fraction)
                }
            },
            None => {
                tracing::info!(
                    tank,
                    "identity.state_dir unset: identities are not persisted"
                );
                TankState::new(tank, &model, dim, cfg.rebuild_fraction)
            }
        };
        let mut window = Window::default();
        window.restore(state.window.clone(), dim, state.window_t);
        let saved_number = state.registry.next_number;
        let saved_prototypes = state.gallery.len();
        let th = Thresholds::resolve(cfg, card);
        if th.new > th.accept {
            return Err(IdentifyError::Request(format!(
                "identity thresholds: new_similarity {} is above accept_similarity {} (from config or model card `thresholds`)",
                th.new, th.accept
            )));
        }
        tracing::info!(
            tank,
            accept = th.accept,
            new = th.new,
            consistency = th.consistency,
            "identity thresholds"
        );
        Ok(Identifier {
            th,
            cfg: cfg.clone(),
            tank: tank.to_string(),
            population,
            shared: Arc::new(RwLock::new(state)),
            store,
            present_count: Arc::new(AtomicUsize::new(0)),
            tracklets: HashMap::new(),
            tokens: cfg.budget_per_s,
            last_t: None,
            last_save: Instant::now(),
            saved_number,
            saved_prototypes,
            seen: HashMap::new(),
            warned_dim: false,
            fragments: 0,
            window,
            regrouped: HashMap::new(),
            last_regroup: None,
            regroup_ready: false,
            said_alike: AlikeWatch::default(),
            alike: false,
            alike_similarity: None,
            waiting_since: None,
            side_view: false,
            sightings: VecDeque::new(),
            continued: HashMap::new(),
            continued_fragments: HashMap::new(),
        })
    }

    /// The camera's tracker continues the tracks of the run before (a resumed recording,
    /// [`crate::track::Tracker::resume`]): each goes on with the individual its last written
    /// row carried (`seeds`, by label), its first fragment counted as written with it, and the
    /// regrouping window's saved fragments go back on their own tracks, so each links to the
    /// fragment its track goes on with, as across any frame. Without it they go back on tracks
    /// of their own (track numbers start again). A label no individual has is ignored.
    /// `last_t`: the stream time of the last frame written; the saved fragments' frames after
    /// it (a state file saved after the checkpoint, as a crash leaves it) are dropped
    /// ([`Window::rewind_restored`]).
    pub fn tracks_continue(&mut self, seeds: &[TrackSeed], last_t: f64) {
        self.window.keep_saved_tracks();
        self.window.rewind_restored(last_t);
        let st = read(&self.shared);
        for s in seeds {
            let Some(label) = &s.individual else { continue };
            match st.registry.active().find(|i| i.label() == label.as_str()) {
                Some(i) => {
                    self.continued.insert(s.track, i.id.clone());
                }
                None => tracing::warn!(
                    tank = %self.tank,
                    track = s.track,
                    individual = %label,
                    "the checkpoint's track carried an individual the identity state does not know; it is identified afresh"
                ),
            }
        }
    }

    /// The camera's view, once known (`view = "auto"` resolves after the background is
    /// learned). A side view also ends a track's fragment where a tangle ends inside a longer
    /// contact: fish swimming together stay near each other for seconds, the tracker swaps
    /// them in the tangles of that stretch, and a fragment reaching to the contact's end
    /// carried two or three fish in turn, named after one. On 60 repeatable renders of 8-fish
    /// side-view tanks identity IDF1 rose 94.87 / 94.09 / 95.36 → 95.59 / 94.70 / 96.03 (three
    /// sets of 20), on 18 look-alike tanks of 16 fish 77.0 → 79.6; on the real top-view
    /// recording (fasttrack-zebrafish14) the split cost 0.70 → 0.61, so a top view keeps
    /// fragments to whole contacts (BENCHMARKS.md round 20). A side view also embeds tracks
    /// that share a blob (`shared_blob_crops`, see [`Identifier::observe_shared`]).
    pub fn set_view(&mut self, view: CameraView) {
        self.side_view = view == CameraView::Side;
    }

    /// Tracks sharing a blob are embedded, each from a crop cut at its own place.
    fn embeds_shared(&self) -> bool {
        self.side_view && self.cfg.shared_blob_crops
    }

    /// Tank name.
    pub fn tank(&self) -> &str {
        &self.tank
    }

    /// Thresholds in effect.
    pub fn thresholds(&self) -> Thresholds {
        self.th
    }

    /// The state file, when persistence is on.
    pub fn state_file(&self) -> Option<&std::path::Path> {
        self.store.as_deref()
    }

    /// Handle for the HTTP routes.
    pub fn api(&self) -> IdentityApi {
        IdentityApi {
            tank: self.tank.clone(),
            shared: self.shared.clone(),
            store: self.store.clone(),
            present_count: self.present_count.clone(),
        }
    }

    fn sync_tracks(&mut self, t: f64, tracks: &[TrackReport], detections: Option<&[Detection]>) {
        if let Some(prev) = self.last_t
            && t < prev
        {
            // Stream restarted: time went backwards.
            self.tokens = self.cfg.budget_per_s;
            self.waiting_since = None;
            self.window.clear();
            self.regrouped.clear();
            self.last_regroup = None;
            for tl in self.tracklets.values_mut() {
                tl.last_embed_t = None;
                tl.recent.clear();
                tl.last_tangle_t = None;
                tl.in_tangle = false;
                tl.carried.clear();
                tl.opening.clear();
            }
        }
        if let Some(prev) = self.last_t
            && t > prev
        {
            self.tokens = (self.tokens + (t - prev) * self.cfg.budget_per_s)
                .min(self.cfg.budget_per_s.max(1.0));
        }
        self.last_t = Some(t);
        let live: std::collections::HashSet<u64> = tracks.iter().map(|tr| tr.track).collect();
        self.tracklets.retain(|id, _| live.contains(id));
        let contact = detections.map(|dets| contacts(tracks, dets, self.cfg.contact_margin));
        for (i, tr) in tracks.iter().enumerate() {
            let tl = match self.tracklets.entry(tr.track) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    self.fragments += 1;
                    // A track continued across a restart goes on with the individual its rows
                    // were written with, as it would have without the restart.
                    let continued = self.continued.remove(&tr.track);
                    if let Some(ind) = &continued {
                        self.continued_fragments.insert(self.fragments, ind.clone());
                    }
                    e.insert(Tracklet {
                        fragment: self.fragments,
                        individual: continued.clone(),
                        anchor: continued,
                        ..Default::default()
                    })
                }
            };
            tl.heading = tr.heading;
            if let Some(contact) = &contact {
                let occluded_now = contact[i] != Contact::None;
                if contact[i] == Contact::Tangle || (tl.occluded && tr.detection.is_none()) {
                    tl.tangled = true;
                    tl.last_tangle_t = Some(t);
                    for (side, weight, emb) in tl.carried.drain(..) {
                        self.window.embedding(tl.fragment, side, weight, &emb);
                    }
                }
                // A track that coasted a while (the fish hidden behind a plant or another
                // fish) may pick up another fish when it is matched again.
                let long_coast = match (tr.detection, tl.coasting_since) {
                    (None, None) => {
                        tl.coasting_since = Some(t);
                        false
                    }
                    (None, Some(_)) => false,
                    (Some(_), since) => {
                        tl.coasting_since = None;
                        since.is_some_and(|s| t - s >= COAST_FRAGMENT_S)
                    }
                };
                let contact_ended = (tl.occluded || long_coast) && !occluded_now;
                // Side view: still near another fish, but no longer tangled with it.
                let tangle_ended = self.side_view && tl.in_tangle && contact[i] == Contact::Near;
                if tr.detection.is_some() {
                    tl.in_tangle = contact[i] == Contact::Tangle;
                }
                if (contact_ended || tangle_ended) && tr.detection.is_some() {
                    // Out of contact with another fish, or out of a tangle: a new fragment,
                    // which may be another fish than before (the tracker can swap fish that
                    // touched).
                    self.fragments += 1;
                    tl.fragment = self.fragments;
                    tl.excluded.clear();
                    tl.just_unoccluded = true;
                    tl.after_tangle = tl.tangled || long_coast;
                    tl.tangled = false;
                    if !tl.obs.is_empty() {
                        tl.held = std::mem::take(&mut tl.obs);
                        tl.held_anchor = tl.anchor.take();
                    }
                    tl.pending = 0;
                    tl.anchor = None;
                    tl.confident = false;
                    tl.opening = std::mem::take(&mut tl.carried);
                }
                if tr.detection.is_some() {
                    tl.occluded = occluded_now;
                }
            }
            let now = Moment {
                t,
                fragment: tl.fragment,
                tangled: tl.occluded && tl.tangled,
            };
            if tl.recent.back().is_some_and(|m| m.t == t) {
                tl.recent.pop_back();
            }
            tl.recent.push_back(now);
            while tl.recent.len() > RECENT_FRAMES {
                tl.recent.pop_front();
            }
        }
    }

    /// The fragment `track` is in now: a number that changes whenever the track comes out of
    /// contact with another fish (after which it may follow another fish). Outputs written
    /// with a delay label each frame with its fragment's latest individual.
    pub fn fragment_of(&self, track: u64) -> Option<u64> {
        self.tracklets.get(&track).map(|tl| tl.fragment)
    }

    /// Whether `track` is in contact with another fish now (a blob of several fish, a shared
    /// blob, or boxes close): the tracker may swap fish there, and the contact ends its
    /// fragment.
    pub fn in_contact(&self, track: u64) -> bool {
        self.tracklets.get(&track).is_some_and(|tl| tl.occluded)
    }

    /// Chooses which tracks to embed in this frame, within the per-second budget: new tracklets,
    /// just-unoccluded ones and uncertain ones first, then confident ones due for a refresh
    /// (every `refresh_s`). Only tracks moving clearly left or right (a known flank) qualify,
    /// matched to a single-fish detection with a crop of its own, or, where
    /// [`Identifier::observe_shared`] applies (a side view), to a blob other tracks share:
    /// then every track of that blob with a known flank is chosen with it (the crops are
    /// compared with each other).
    /// Returns indices into `tracks`.
    pub fn wants_embedding(
        &mut self,
        t: f64,
        tracks: &[TrackReport],
        detections: &[Detection],
    ) -> Vec<usize> {
        if !self.cfg.enabled {
            return Vec::new();
        }
        self.sync_tracks(t, tracks, Some(detections));
        let embeds_shared = self.embeds_shared();
        let shared_by = |di: usize| tracks.iter().filter(|o| o.detection == Some(di)).count();
        // Moving up or down (turning): which flank shows is unknown and the crop is
        // foreshortened, alike for every fish.
        let flank_known = |tr: &TrackReport| {
            tr.status != TrackStatus::Lost && View::from_heading(tr.heading) != View::Unknown
        };
        let mut cands: Vec<(u8, f64, usize)> = Vec::new();
        for (i, tr) in tracks.iter().enumerate() {
            if !flank_known(tr) {
                continue;
            }
            let Some((di, det)) = tr.detection.and_then(|d| Some((d, detections.get(d)?))) else {
                continue;
            };
            if shared_by(di) >= 2 {
                if !embeds_shared {
                    continue;
                }
            } else if det.fish_count != 1 || det.crop.is_none() {
                continue;
            }
            let Some(tl) = self.tracklets.get(&tr.track) else {
                continue;
            };
            let last = tl.last_embed_t.unwrap_or(f64::NEG_INFINITY);
            let class = if tl.obs.is_empty() || tl.just_unoccluded {
                0
            } else if tl.individual.is_none()
                || !tl.confident
                || tl.obs.len() < self.cfg.min_observations
            {
                1
            } else if t - last >= self.cfg.refresh_s {
                2
            } else {
                continue;
            };
            cands.push((class, last, i));
        }
        cands.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let n = (self.tokens.floor().max(0.0) as usize).min(cands.len());
        let mut chosen: Vec<usize> = cands.into_iter().take(n).map(|c| c.2).collect();
        // The other tracks of a chosen shared blob come along.
        if embeds_shared {
            let mut partners = Vec::new();
            for &i in &chosen {
                let Some(di) = tracks[i].detection.filter(|&d| shared_by(d) >= 2) else {
                    continue;
                };
                for (j, o) in tracks.iter().enumerate() {
                    if o.detection == Some(di)
                        && flank_known(o)
                        && !chosen.contains(&j)
                        && !partners.contains(&j)
                    {
                        partners.push(j);
                    }
                }
            }
            chosen.extend(partners);
        }
        self.tokens -= chosen.len() as f64;
        for &i in &chosen {
            if let Some(tl) = self.tracklets.get_mut(&tracks[i].track) {
                tl.last_embed_t = Some(t);
                tl.just_unoccluded = false;
            }
        }
        chosen
    }

    /// Records the embedding of `track`'s crop at time `t` (`quality` in [0, 1]: how usable the
    /// crop is; 1 for a clean single fish). Non-finite or wrong-length embeddings are ignored.
    pub fn observe(&mut self, t: f64, track: u64, embedding: &[f32], quality: f32) {
        self.observe_cut(t, track, embedding, quality, false);
    }

    /// Records the embeddings of crops cut, in the frame at `t`, at the places of the tracks
    /// that shared one blob (`(track, embedding)` each; `quality` as for
    /// [`Identifier::observe`]). In a side view such a blob is fish passing in front of one
    /// another: the fish in front shows whole, the one behind only in part, and the crop cut
    /// at its place shows mostly the fish in front. A crop counts for its track when it looks
    /// like a known individual (seen from that side) at least as much as `new_similarity`,
    /// and no other crop of the blob looks like that same individual nearly as much (within
    /// `SHARED_CROP_MARGIN`); it counts for the fragment it was cut in, even in a tangle
    /// (unlike a single fish's crop there, it shows the fish its track follows at that
    /// moment). On 20 simulated side-view tanks, blobs shared by tracks held two or more fish
    /// 93 % of the time, the front one at least 95 % visible in all but 7 of 2 891; identity
    /// IDF1 on three sets of 20 tanks 95.59 / 94.70 / 96.03 → 95.59 / 95.27 / 96.45
    /// (BENCHMARKS.md round 21). A top view keeps it off (the real top-view recording lost
    /// 0.70 → 0.54 with it).
    pub fn observe_shared(&mut self, t: f64, crops: &[(u64, &[f32])], quality: f32) {
        if !self.cfg.enabled {
            return;
        }
        let best: Vec<Option<(String, f32)>> = crops
            .iter()
            .map(|(track, emb)| self.best_individual(*track, emb))
            .collect();
        let keep = shared_crops_kept(&best, self.th.new, SHARED_CROP_MARGIN);
        for ((track, emb), keep) in crops.iter().zip(keep) {
            if keep {
                self.observe_cut(t, *track, emb, quality, true);
            }
        }
    }

    /// The individual `embedding` (a crop of `track`) looks most like, seen from the side the
    /// track shows, and how much.
    fn best_individual(&self, track: u64, embedding: &[f32]) -> Option<(String, f32)> {
        let st = read(&self.shared);
        let emb = normalized(embedding).filter(|e| e.len() == st.gallery.dim())?;
        let view = View::from_heading(self.tracklets.get(&track)?.heading);
        st.registry
            .active()
            .filter_map(|i| {
                Some((
                    i.id.clone(),
                    st.gallery.similarity_in_view(&i.id, &emb, view)?,
                ))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// [`Identifier::observe`]; `in_shared_blob`: the crop was cut at the track's place in a
    /// blob it shared ([`Identifier::observe_shared`]).
    fn observe_cut(
        &mut self,
        t: f64,
        track: u64,
        embedding: &[f32],
        quality: f32,
        in_shared_blob: bool,
    ) {
        if !self.cfg.enabled {
            return;
        }
        let st = read(&self.shared);
        if embedding.len() != st.gallery.dim() {
            if !self.warned_dim {
                tracing::warn!(
                    tank = %self.tank,
                    got = embedding.len(),
                    want = st.gallery.dim(),
                    "embedding length does not match the gallery; ignored"
                );
                self.warned_dim = true;
            }
            return;
        }
        let Some(emb) = normalized(embedding) else {
            return;
        };
        let quality = if quality.is_finite() {
            quality.clamp(0.0, 1.0)
        } else {
            0.0
        };
        // Candidates: ANN neighbours, plus the individuals of visible tracklets (so the
        // one-to-one assignment can weigh alternatives), scored exactly.
        let mut cands: Vec<String> = st
            .gallery
            .search(&emb, self.cfg.k)
            .into_iter()
            .map(|h| h.individual)
            .collect();
        for tl in self.tracklets.values() {
            if let Some(i) = &tl.individual {
                cands.push(st.registry.resolve(i).to_string());
            }
        }
        let active: Vec<String> = st.registry.active().map(|i| i.id.clone()).collect();
        if active.len() <= EXHAUSTIVE_INDIVIDUALS {
            cands.extend(active);
        }
        cands.sort();
        cands.dedup();
        let view = self
            .tracklets
            .get(&track)
            .map_or(View::Unknown, |tl| View::from_heading(tl.heading));
        let mut sims: Vec<(String, f32)> = Vec::with_capacity(cands.len());
        let mut blind: Vec<String> = Vec::new();
        for c in cands {
            match st.gallery.similarity_in_view(&c, &emb, view) {
                Some(s) => sims.push((c, s)),
                None if st.gallery.of(&c).next().is_some() => blind.push(c),
                None => {}
            }
        }
        sims.sort_by(|a, b| b.1.total_cmp(&a.1));
        let generation = st.gallery.generation();
        drop(st);
        let tl = self.tracklets.entry(track).or_default();
        if let Some(side) = view.side()
            && quality >= REGROUP_MIN_QUALITY
        {
            if let Some((best, sim)) = sims.first()
                && *sim >= self.th.new
            {
                if self.sightings.len() >= MAX_SIGHTINGS {
                    self.sightings.pop_front();
                }
                self.sightings.push_back(Sighting {
                    track,
                    t,
                    individual: best.clone(),
                });
            }
            let weight = quality.powi(4);
            // Cut before the remembered frames: evidence for no fragment.
            match tl.recent.iter().rev().find(|m| m.t <= t) {
                None => {}
                // Cut outside a tangle, or after one with the contact tangled again since
                // (either fish, most likely its fragment's), or at the track's own place in a
                // shared blob: the fragment it was cut in.
                Some(cut)
                    if in_shared_blob
                        || !cut.tangled
                        || tl.last_tangle_t.is_some_and(|lt| lt > t) =>
                {
                    self.window.embedding(cut.fragment, side, weight, &emb)
                }
                // The contact has ended since: the fragment after it.
                Some(cut) if cut.fragment != tl.fragment => {
                    self.window.embedding(tl.fragment, side, weight, &emb)
                }
                Some(_) => tl.carried.push((side, weight, emb.clone())),
            }
        }
        tl.obs.push_back(Obs {
            t,
            quality,
            view,
            emb,
            sims,
            blind,
            generation,
        });
        tl.pending = (tl.pending + 1).min(tl.obs.len());
        if !tl.held.is_empty() {
            match continuity(&tl.held, &tl.obs) {
                // Same fish as before the occlusion: its evidence and anchor come back.
                Some(true) => {
                    let mut held = std::mem::take(&mut tl.held);
                    held.extend(tl.obs.drain(..));
                    tl.obs = held;
                    tl.anchor = tl.held_anchor.take();
                }
                // Another fish (a swap in the blob): evidence decides afresh.
                Some(false) => {
                    tl.held.clear();
                    tl.held_anchor = None;
                }
                None if tl.obs.len() >= self.cfg.new_min_observations => {
                    tl.held.clear();
                    tl.held_anchor = None;
                }
                None => {}
            }
        }
        while tl.obs.len() > self.cfg.window {
            tl.obs.pop_front();
            tl.pending = tl.pending.min(tl.obs.len());
        }
    }

    fn scores(&self, st: &TankState, tl: &Tracklet) -> Scores {
        // Per embedding: best similarity per (resolved) individual, and the individuals it
        // cannot speak about (never seen from that side).
        let per_obs: Vec<(f32, HashMap<&str, f32>, Vec<&str>)> = tl
            .obs
            .iter()
            .map(|o| {
                let mut best_here: HashMap<&str, f32> = HashMap::new();
                for (raw, s) in &o.sims {
                    let r = st.registry.resolve(raw);
                    let e = best_here.entry(r).or_insert(f32::NEG_INFINITY);
                    *e = e.max(*s);
                }
                let blind: Vec<&str> = o
                    .blind
                    .iter()
                    .map(|raw| st.registry.resolve(raw))
                    .filter(|r| !best_here.contains_key(r))
                    .collect();
                // A foreshortened crop (a fish turning) shows little pattern and looks like
                // every other fish's: it counts little next to broadside ones.
                (o.quality.max(0.05).powi(4), best_here, blind)
            })
            .collect();
        let mut universe: Vec<&str> = per_obs
            .iter()
            .flat_map(|(_, b, _)| b.keys().copied())
            .collect();
        universe.sort_unstable();
        universe.dedup();
        // An individual's score: weighted mean over the embeddings comparable with it (an
        // embedding that did not retrieve it counts as 0); it needs enough of them.
        let need = self.cfg.min_observations.min(tl.obs.len()).max(1);
        let mut by: Vec<(String, f32)> = universe
            .into_iter()
            .filter_map(|r| {
                let (mut sum, mut wsum, mut support) = (0f32, 0f32, 0usize);
                for (w, best, blind) in &per_obs {
                    if blind.contains(&r) {
                        continue;
                    }
                    support += 1;
                    wsum += w;
                    sum += w * best.get(r).copied().unwrap_or(0.0).max(0.0);
                }
                (support >= need && wsum > 0.0).then(|| (r.to_string(), sum / wsum))
            })
            .collect();
        by.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let span = match (tl.obs.front(), tl.obs.back()) {
            (Some(a), Some(b)) => b.t - a.t,
            _ => 0.0,
        };
        Scores {
            n: tl.obs.len(),
            span,
            by,
        }
    }

    /// Assigns individuals to `tracks` (one-to-one among them) and fills
    /// `TrackReport.individual` with each individual's label (name, else id). Enrols newcomers
    /// when the evidence is consistent, teaches the gallery, and saves on schedule.
    pub fn assign(&mut self, t: f64, tracks: &mut [TrackReport]) {
        if !self.cfg.enabled {
            return;
        }
        self.sync_tracks(t, tracks, None);
        let cfg = self.cfg.clone();
        let th = self.th;
        let mut st = write(&self.shared);
        // Evidence against today's gallery: an embedding scored before an individual was taught
        // a side (or enrolled, or merged) is scored again.
        let active: Vec<String> = st.registry.active().map(|i| i.id.clone()).collect();
        let generation = st.gallery.generation();
        if active.len() <= EXHAUSTIVE_INDIVIDUALS {
            for tr in tracks.iter() {
                let Some(tl) = self.tracklets.get_mut(&tr.track) else {
                    continue;
                };
                for o in tl.obs.iter_mut().filter(|o| o.generation != generation) {
                    o.sims.clear();
                    o.blind.clear();
                    for ind in &active {
                        match st.gallery.similarity_in_view(ind, &o.emb, o.view) {
                            Some(s) => o.sims.push((ind.clone(), s)),
                            None => o.blind.push(ind.clone()),
                        }
                    }
                    o.sims.sort_by(|a, b| b.1.total_cmp(&a.1));
                    o.generation = generation;
                }
            }
        }
        // An anchored track in view holds its individual: every other fragment in view now
        // is another fish. Where crops cannot tell the fish apart (the latest regrouping found
        // them too alike), no track is ever anchored, so any track carrying an individual holds
        // it: an open population then enrols each fish in view beside all the known ones (a
        // newcomer unlike everyone there is none; fasttrack: 4 of 14 enrolled before, 14 now).
        let alike = self.alike;
        let holders: Vec<(u64, String)> = tracks
            .iter()
            .filter(|tr| tr.detection.is_some())
            .filter_map(|tr| {
                let tl = self.tracklets.get(&tr.track)?;
                let held = anchored_on(&st, tl).or_else(|| {
                    tl.individual
                        .as_deref()
                        .filter(|_| alike)
                        .map(|i| st.registry.resolve(i).to_string())
                });
                Some((tr.track, held?))
            })
            .collect();
        for tr in tracks.iter().filter(|tr| tr.detection.is_some()) {
            if let Some(tl) = self.tracklets.get_mut(&tr.track) {
                for (k, ind) in &holders {
                    if *k != tr.track {
                        tl.excluded.insert(ind.clone());
                    }
                }
            }
        }
        let excluded: Vec<HashSet<String>> = tracks
            .iter()
            .map(|tr| {
                self.tracklets
                    .get(&tr.track)
                    .map_or_else(HashSet::new, |tl| {
                        tl.excluded
                            .iter()
                            .map(|i| st.registry.resolve(i).to_string())
                            .collect()
                    })
            })
            .collect();
        // Score every tracklet.
        let ids: Vec<u64> = tracks.iter().map(|tr| tr.track).collect();
        let scores: Vec<Scores> = ids
            .iter()
            .map(|id| match self.tracklets.get(id) {
                Some(tl) => self.scores(&st, tl),
                None => Scores {
                    n: 0,
                    span: 0.0,
                    by: Vec::new(),
                },
            })
            .collect();
        let certainly_new: Vec<bool> = excluded
            .iter()
            .map(|e| !active.is_empty() && active.iter().all(|i| e.contains(i)))
            .collect();
        let full = self.population.is_some_and(|n| active.len() >= n as usize);
        // Hungarian: rows = tracks, columns = active individuals + one "none" per track.
        let n_rows = tracks.len();
        let n_cols = active.len() + n_rows;
        const NO: i64 = -1_000_000;
        let mut w = vec![vec![NO; n_cols]; n_rows];
        for (r, tr) in tracks.iter().enumerate() {
            w[r][active.len() + r] = 0;
            let cur = self
                .tracklets
                .get(&tr.track)
                .and_then(|tl| tl.individual.as_deref())
                .map(|i| st.registry.resolve(i).to_string());
            let sc = &scores[r];
            let anchored = self
                .tracklets
                .get(&tr.track)
                .is_some_and(|tl| anchored_on(&st, tl).is_some());
            for (c, ind) in active.iter().enumerate() {
                let is_cur = cur.as_deref() == Some(ind.as_str());
                // Elsewhere at the same time as this fragment's fish: not this one (unless it is
                // this track's own individual through a merge an operator made).
                if excluded[r].contains(ind) && !is_cur {
                    continue;
                }
                let bonus = if is_cur { cfg.stickiness } else { 0.0 };
                if sc.n < cfg.min_observations {
                    if is_cur {
                        // Too little fresh evidence: keep the current individual.
                        w[r][c] = ((th.accept + bonus) * 1000.0) as i64;
                    }
                    continue;
                }
                let (s, allowed) = match sc.by.iter().find(|(i, _)| i == ind) {
                    // Confirmed in this fragment (one fish since): weak later crops do not
                    // undo it; only a clearly better individual can take the row.
                    Some((_, s)) if is_cur && anchored => (s.max(th.accept), true),
                    Some((_, s)) => (*s, *s >= th.accept || ((full || is_cur) && *s >= th.new)),
                    // The window shows only sides this individual was never seen from: no
                    // evidence against it. The current one is kept when it was confirmed in
                    // this fragment (a flank turn with no contact since); after a contact the
                    // track may follow another fish, so blindness keeps nothing. A full
                    // population may still place a tracklet there, after any seen match.
                    None if is_cur && anchored => (th.accept, true),
                    None => (0.5 * th.new, full && is_cur),
                };
                if allowed {
                    w[r][c] = (((s + bonus) * 1000.0) as i64).max(1);
                }
            }
        }
        let mut assignment: Vec<Option<String>> = if n_rows == 0 {
            Vec::new()
        } else {
            match pathfinding::matrix::Matrix::from_rows(w.clone()) {
                Ok(m) => {
                    let (_, cols) = pathfinding::kuhn_munkres::kuhn_munkres(&m);
                    cols.iter()
                        .enumerate()
                        .map(|(r, &c)| (c < active.len() && w[r][c] > 0).then(|| active[c].clone()))
                        .collect()
                }
                Err(_) => vec![None; n_rows],
            }
        };
        // Known population, nobody enrolled yet: wait for a moment when (nearly) all N fish are in view,
        // apart from each other, each tracklet with consistent evidence of its own — N fish
        // that are certainly distinct — and enrol them together. Enrolling them one at a time
        // can enrol one fish twice (once per flank) and leave another without an identity.
        let bootstrap: Vec<usize> = match self.population {
            Some(n) if active.is_empty() && n > 0 => {
                let mut ready: Vec<(usize, usize)> = tracks
                    .iter()
                    .enumerate()
                    .filter_map(|(r, tr)| {
                        let tl = self.tracklets.get(&tr.track)?;
                        let ok = tr.detection.is_some()
                            && tr.status == TrackStatus::Confirmed
                            && !tl.occluded
                            && tl.obs.len() >= cfg.min_observations.max(BOOTSTRAP_OBSERVATIONS)
                            // Something to recognise it by: crops clear enough to become
                            // prototypes (a fish seen head-on or turning gives none).
                            && clear_crops(tl, cfg.min_quality) >= BOOTSTRAP_OBSERVATIONS
                            && self_consistent(tl, th.consistency);
                        ok.then_some((r, tl.obs.len()))
                    })
                    .collect();
                ready.sort_by_key(|x| std::cmp::Reverse(x.1));
                // All N, or all but a quarter (fish turning towards the camera cannot be
                // embedded); the rest enrol one by one once everyone else is placed.
                let need = bootstrap_need(
                    n,
                    t - *self.waiting_since.get_or_insert(t),
                    cfg.enrol_patience_s,
                );
                tracing::trace!(tank = %self.tank, t, ready = ready.len(), need, "waiting for all fish to enrol them at once");
                if ready.len() >= need {
                    if need < bootstrap_need(n, 0.0, cfg.enrol_patience_s) {
                        tracing::info!(tank = %self.tank, t, enrolled = ready.len().min(n as usize), population = n, "never enough fish apart at once to enrol the known population together: enrolling the fish in view now, the rest one by one");
                    }
                    ready.into_iter().take(n as usize).map(|x| x.0).collect()
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        };
        let bootstrapping = self.population.is_some() && active.is_empty();
        // More fish in view (confirmed tracks with a detection) than individuals exist: some
        // fish in view certainly have none yet. A tentative track is not counted: with a known
        // population the tracker keeps an extra blob (a fish split in two, a reflection)
        // tentative, and it is not written.
        let in_view = tracks
            .iter()
            .filter(|tr| tr.detection.is_some() && tr.status == TrackStatus::Confirmed)
            .count();
        let more_fish_than_individuals = self.population.is_some() && in_view > active.len();
        // Then a fragment that matches nobody needs less evidence to be enrolled (fragments
        // between contacts are short).
        let (new_need, new_span) = if more_fish_than_individuals {
            (
                cfg.new_min_observations.min(ELIMINATION_OBSERVATIONS),
                cfg.new_min_span_s.min(0.5),
            )
        } else {
            (cfg.new_min_observations, cfg.new_min_span_s)
        };
        let mut dirty = false;
        let mut count = active.len();
        self.window.next_frame();
        for (r, tr) in tracks.iter_mut().enumerate() {
            let Some(tl) = self.tracklets.get_mut(&tr.track) else {
                continue;
            };
            let sc = &scores[r];
            let mut chosen = assignment[r].clone();
            // One fish enrolled twice, once per flank (its track broke while it showed the side
            // never seen before): a continuously tracked, anchored tracklet of one of them
            // strongly matches the other, and the two were seen from opposite sides only.
            let prev = tl
                .individual
                .as_deref()
                .map(|i| st.registry.resolve(i).to_string());
            if let Some(prev) = prev.as_deref()
                && anchored_on(&st, tl).is_some()
                && let Some(other) =
                    flank_twin(&st, sc, prev, th.accept, cfg.margin, &assignment, r)
            {
                let pos = |id: &str| st.registry.individuals.iter().position(|i| i.id == id);
                let (from, into) = if pos(&other) < pos(prev) {
                    (prev.to_string(), other)
                } else {
                    (other, prev.to_string())
                };
                match st.merge(&from, &into) {
                    Ok(m) => {
                        tracing::info!(tank = %self.tank, track = tr.track, from = %from, into = %into, merge = m.id, "one fish enrolled once per flank: merged");
                        count = count.saturating_sub(1);
                        dirty = true;
                        chosen = Some(into);
                    }
                    Err(e) => tracing::warn!(tank = %self.tank, "flank merge refused: {e}"),
                }
            }
            let mut placed: Option<String> = None;
            let mut enrolled: Option<String> = None;
            // Known population, all enrolled: a fragment that shows a side matching nobody seen
            // from it is the unseen flank of an individual never seen from that side. When
            // exactly one such individual is not placed elsewhere in this frame, it is that one:
            // the fragment takes it and teaches it the new side.
            if full
                && tl.anchor.is_none()
                && sc.n >= cfg.new_min_observations.min(ELIMINATION_OBSERVATIONS)
                && sc.by.first().is_none_or(|(_, s)| *s < th.new)
                && self_consistent(tl, th.consistency)
                && let Some(only) = sole_unseen_side(&st, tl, &active, &assignment, r, &excluded[r])
            {
                tracing::debug!(tank = %self.tank, t, track = tr.track, individual = %only, "unseen flank placed by elimination");
                chosen = Some(only.clone());
                placed = Some(only);
            }
            // Newcomer: consistent evidence and room in the population, from a track the
            // tracker confirmed (an individual enrolled from a tentative one, whose rows are
            // never written, would be a ghost holding a place of the known population).
            let boot = bootstrap.contains(&r);
            if chosen.is_none()
                && tr.status == TrackStatus::Confirmed
                && (boot || !bootstrapping)
                && (boot || sc.n >= new_need)
                && (boot || sc.span >= new_span)
                // Every individual was held elsewhere while this fragment's fish was here: it
                // is none of them, however alike it looks (look-alike patterns score high).
                && (boot
                    || certainly_new[r]
                    || sc.by.first().is_none_or(|(_, s)| {
                        // Clearly unlike everyone, or long unplaceable and not a match for anyone.
                        *s < th.new
                            || (*s < th.accept
                                && tl
                                    .unassigned_since
                                    .is_some_and(|u| t - u >= 2.0 * cfg.new_min_span_s.max(0.5)))
                    }))
                && self.population.is_none_or(|n| count < n as usize)
                && (boot || self_consistent(tl, th.consistency))
                // Something to recognise it by: a crop clear enough to become a prototype.
                && (boot || clear_crops(tl, cfg.min_quality) >= 1)
                && (boot
                    || self.population.is_none()
                    || certainly_new[r]
                    || !unseen_side_free(&st, tl, &active, &assignment, r))
            {
                let id = st.registry.create();
                let mut kept: Vec<usize> = Vec::new();
                for (oi, o) in tl.obs.iter().enumerate() {
                    if o.quality >= cfg.min_quality
                        && kept
                            .iter()
                            .all(|&k| cosine(&tl.obs[k].emb, &o.emb) < cfg.novelty_similarity)
                    {
                        st.gallery.add(Prototype::tracked(
                            &id,
                            o.view,
                            o.t,
                            o.quality,
                            o.emb.clone(),
                        ));
                        kept.push(oi);
                    }
                }
                st.gallery.prune(&id, cfg.max_prototypes_per_individual);
                // The window's observations predate the new individual: score them against it.
                for o in tl.obs.iter_mut() {
                    match st.gallery.similarity_in_view(&id, &o.emb, o.view) {
                        Some(s) => o.sims.push((id.clone(), s)),
                        None => o.blind.push(id.clone()),
                    }
                }
                tracing::info!(tank = %self.tank, track = tr.track, individual = %id, prototypes = kept.len(), "new individual enrolled");
                count += 1;
                tl.pending = 0;
                dirty = true;
                chosen = Some(id.clone());
                // Anchored below, after the change of individual has reset the anchor.
                enrolled = Some(id);
            }
            if chosen
                != tl
                    .individual
                    .as_ref()
                    .map(|i| st.registry.resolve(i).to_string())
            {
                tl.anchor = None;
                tl.confident = false;
            }
            if let Some(p) = placed {
                tl.anchor = Some(p);
                tl.confident = true;
                tl.pending = tl.obs.len();
            }
            if let Some(e) = enrolled {
                tl.anchor = Some(e);
                tl.confident = true;
            }
            if let Some(ind) = &chosen {
                let s1 = sc
                    .by
                    .iter()
                    .find(|(i, _)| i == ind)
                    .map(|(_, s)| *s)
                    .unwrap_or(0.0);
                let s2 = sc
                    .by
                    .iter()
                    .filter(|(i, _)| i != ind)
                    .map(|(_, s)| *s)
                    .fold(0.0f32, f32::max);
                if sc.n >= cfg.min_observations && s1 >= th.accept && s1 - s2 >= cfg.margin {
                    tl.anchor = Some(ind.clone());
                    tl.confident = true;
                }
                // Teach the gallery from an anchored tracklet (new views, flank turns).
                if tl.anchor.as_deref() == Some(ind.as_str()) && tl.pending > 0 {
                    let start = tl.obs.len() - tl.pending;
                    for o in tl.obs.iter().skip(start) {
                        if o.quality < cfg.min_quality {
                            continue;
                        }
                        let other = o
                            .sims
                            .iter()
                            .filter(|(i, _)| st.registry.resolve(i) != ind.as_str())
                            .map(|(_, s)| *s)
                            .fold(f32::NEG_INFINITY, f32::max);
                        if other >= th.accept {
                            continue;
                        }
                        let novel = st
                            .gallery
                            .max_similarity_to(ind, &o.emb)
                            .is_none_or(|s| s < cfg.novelty_similarity);
                        if novel {
                            st.gallery.add(Prototype::tracked(
                                ind,
                                o.view,
                                o.t,
                                o.quality,
                                o.emb.clone(),
                            ));
                            st.gallery.prune(ind, cfg.max_prototypes_per_individual);
                            dirty = true;
                        }
                    }
                }
                tl.pending = 0;
                if tr.detection.is_some() {
                    self.seen.insert(ind.clone(), t);
                }
            }
            if chosen.is_none() {
                if sc.n >= cfg.min_observations {
                    tracing::debug!(
                        tank = %self.tank,
                        track = tr.track,
                        n = sc.n,
                        span = sc.span,
                        best = ?sc.by.first(),
                        second = ?sc.by.get(1),
                        consistent = self_consistent(tl, th.consistency),
                        "tracklet without individual"
                    );
                }
                tl.unassigned_since.get_or_insert(t);
            } else {
                tl.unassigned_since = None;
            }
            if chosen.as_deref() != prev.as_deref() {
                tracing::debug!(
                    tank = %self.tank,
                    t,
                    track = tr.track,
                    fragment = tl.fragment,
                    from = ?prev,
                    to = ?chosen,
                    n = sc.n,
                    by = ?sc.by.iter().take(3).collect::<Vec<_>>(),
                    "individual of a track changed"
                );
            }
            // Later rows of this frame see this decision (elimination, flank twins).
            assignment[r] = chosen.clone();
            self.window.seen(
                tl.fragment,
                tr.track,
                t,
                tr.detection.is_some() && tr.status != TrackStatus::Lost,
                chosen.as_deref(),
            );
            if tr.status == TrackStatus::Confirmed {
                self.window.confirmed(tl.fragment);
            }
            if let Some(ind) = self.continued_fragments.remove(&tl.fragment) {
                self.window.written(tl.fragment, &ind);
            }
            if tl.after_tangle {
                self.window.after_tangle(tl.fragment);
            }
            for (side, weight, emb) in std::mem::take(&mut tl.opening) {
                self.window.embedding(tl.fragment, side, weight, &emb);
            }
            tl.individual = chosen.clone();
            tr.individual = chosen.as_deref().map(|i| st.registry.label(i));
        }
        // Registry "last seen" at most once per second of stream time per individual.
        let touched: Vec<String> = self
            .seen
            .iter()
            .filter(|(_, s)| **s == t)
            .map(|(i, _)| i.clone())
            .collect();
        for i in touched {
            st.registry.touch(&i);
        }
        if dirty {
            st.dirty = true;
        }
        let present = self.present_locked(&st, t);
        self.present_count.store(present, Ordering::Relaxed);
        let enrolled = st.registry.next_number;
        let prototypes = st.gallery.len();
        let due = st.dirty
            && save_due(
                enrolled != self.saved_number,
                self.last_save.elapsed().as_secs_f64(),
                cfg.save_every_s,
                (self.saved_prototypes, prototypes),
            );
        drop(st);
        // A regrouping costs about the square of the fragments in the window: beyond
        // REGROUP_FRAGMENTS it runs less often, so that its share of a core stays bounded
        // (and depends on the video only, so replays stay reproducible).
        let every = cfg.relabel_every_s
            * (self.window.len() as f64 / REGROUP_FRAGMENTS)
                .powi(2)
                .max(1.0);
        if cfg.relabel_window_s > 0.0 && self.last_regroup.is_none_or(|l| t - l >= every) {
            self.regroup(t);
        }
        if due && let Some(p) = self.store.clone() {
            self.last_save = Instant::now();
            self.saved_number = enrolled;
            self.saved_prototypes = prototypes;
            self.keep_window();
            if let Err(e) = save_shared(&self.shared, &p) {
                tracing::error!(tank = %self.tank, error = %e, "identity state not saved; will retry");
            }
        }
    }

    /// Regroups the window's fragments into fish with hindsight ([`solver`]) and keeps the
    /// result for [`Identifier::take_regrouped`]. Fragments whose first rows were written since
    /// the last regrouping keep the individual they were written with. With a known population,
    /// a main group that no individual fits while the population is short is enrolled.
    fn regroup(&mut self, t: f64) {
        let started = Instant::now();
        self.last_regroup = Some(t);
        for (f, ind) in &self.regrouped {
            if let Some(ind) = ind
                && self
                    .window
                    .first_t(*f)
                    .is_some_and(|ft| ft <= t - self.cfg.label_lag_s)
            {
                self.window.written(*f, ind);
            }
        }
        self.window.forget_before(t - self.cfg.relabel_window_s);
        let mut st = write(&self.shared);
        let frags = self
            .window
            .fragments(|l| st.registry.resolve(l).to_string());
        // Fragments seen on a confirmed track: only groups holding one are enrolled (a
        // tentative track is never written).
        let confirmed: HashSet<u64> = frags.iter().filter(|f| f.confirmed).map(|f| f.id).collect();
        let seen: HashSet<&str> = frags
            .iter()
            .flat_map(|f| {
                f.online
                    .iter()
                    .map(|(l, _)| l.as_str())
                    .chain(f.fixed.as_deref())
            })
            .collect();
        let fish = self.population.map_or(seen.len(), |n| n as usize);
        let params = solver::Params {
            similarity: self.cfg.relabel_similarity,
            ..Default::default()
        };
        let sol = solver::solve(&frags, Some(fish), &params);
        // Known population, short of individuals after the first enrolment: a main group no
        // individual fits is a fish never enrolled.
        let active = st.registry.active().count();
        let mut room = match self.population {
            Some(n) if active > 0 => (n as usize).saturating_sub(active),
            _ => 0,
        };
        let mut new_ids: Vec<Option<String>> = vec![None; sol.new_groups.len()];
        for (k, g) in sol.new_groups.iter().enumerate() {
            if room == 0 {
                break;
            }
            // As much evidence as the online newcomer rule asks for, and none of the known
            // fish (not one's unseen flank).
            if !g.distinct
                || g.sides.iter().all(Option::is_none)
                || g.weight < self.cfg.new_min_observations as f32
                || !g.fragments.iter().any(|f| confirmed.contains(f))
            {
                tracing::debug!(
                    tank = %self.tank,
                    t,
                    distinct = g.distinct,
                    sides = g.sides.iter().filter(|s| s.is_some()).count(),
                    weight = g.weight,
                    confirmed = g.fragments.iter().any(|f| confirmed.contains(f)),
                    fragments = g.fragments.len(),
                    "a main group no individual fits is not enrolled"
                );
                continue;
            }
            let id = st.registry.create();
            for (view, mean) in View::SIDES.into_iter().zip(&g.sides) {
                let Some(v) = mean else { continue };
                st.gallery
                    .add(Prototype::tracked(&id, view, t, 1.0, v.clone()));
            }
            tracing::info!(tank = %self.tank, t, individual = %id, fragments = g.fragments.len(), "new individual enrolled by regrouping (a fish no individual fitted)");
            st.dirty = true;
            room -= 1;
            new_ids[k] = Some(id);
        }
        self.name_by_elimination(&st, &sol, &confirmed, &mut new_ids);
        drop(st);
        self.alike = sol.neutral_similarity > self.cfg.relabel_similarity;
        if sol.alike.is_some() {
            self.alike_similarity = sol.alike;
        }
        match self
            .said_alike
            .observe(sol.alike, self.cfg.relabel_similarity)
        {
            Some(AlikeNews::Alike) => tracing::warn!(
                tank = %self.tank,
                t,
                alike = %format_args!("{:.2}", sol.alike.unwrap_or(f32::NAN)),
                "fish in view together look this alike to the encoder (`alike`: 9 in 10 of \
                 their pairs are less similar): their crops hardly tell them apart, so \
                 individuals follow the tracks through contacts and a fish that leaves the view \
                 may come back as another individual; check the camera's focus, resolution and \
                 view (crops: [identity] crops_dir)"
            ),
            Some(AlikeNews::Apart) => tracing::info!(
                tank = %self.tank,
                t,
                alike = %format_args!("{:.2}", sol.alike.unwrap_or(f32::NAN)),
                "fish in view together tell apart to the encoder again (`alike`: 9 in 10 of \
                 their pairs are less similar)"
            ),
            None => {}
        }
        // A fragment no group kept (in view beside a longer one of its group) keeps the
        // individual its rows were written with.
        self.regrouped = frags.iter().map(|f| (f.id, f.fixed.clone())).collect();
        for (f, name) in sol.names {
            let ind = match name {
                Name::Individual(i) => Some(i),
                Name::New(k) => new_ids.get(k).cloned().flatten(),
            };
            self.regrouped.insert(f, ind);
        }
        self.regroup_ready = true;
        tracing::debug!(
            tank = %self.tank,
            t,
            fragments = frags.len(),
            groups = sol.groups,
            neutral_similarity = %format_args!("{:.3}", sol.neutral_similarity),
            named = self.regrouped.values().filter(|i| i.is_some()).count(),
            new = sol.new_groups.len(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "fragments regrouped"
        );
    }

    /// Known population, all enrolled: main groups of the regrouping that no individual fits,
    /// each a fish of its own (in view beside every other main group, or unlike it, and seen on
    /// a confirmed track), are the individuals no group of the window is named after, when
    /// there are as many of each; paired by appearance (best total similarity of the groups'
    /// side means to the individuals' prototypes). Otherwise such a fish's rows stay
    /// unlabelled for as long as its individual's online name sits on another fish's group
    /// (BENCHMARKS.md round 13: seeds 7 and 51, a whole recording).
    fn name_by_elimination(
        &self,
        st: &TankState,
        sol: &solver::Solution,
        confirmed: &HashSet<u64>,
        new_ids: &mut [Option<String>],
    ) {
        let Some(n) = self.population else { return };
        if st.registry.active().count() < n as usize {
            return;
        }
        let named: HashSet<&str> = sol.names.values().filter_map(Name::individual).collect();
        let unused: Vec<String> = st
            .registry
            .active()
            .map(|i| i.id.clone())
            .filter(|i| !named.contains(i.as_str()))
            .collect();
        let open: Vec<usize> = sol
            .new_groups
            .iter()
            .enumerate()
            .filter(|(k, g)| {
                new_ids.get(*k).is_some_and(Option::is_none)
                    && g.distinct
                    && g.fragments.iter().any(|f| confirmed.contains(f))
            })
            .map(|(k, _)| k)
            .collect();
        if open.is_empty() || open.len() != unused.len() {
            return;
        }
        let w: Vec<Vec<i64>> = open
            .iter()
            .map(|&k| {
                unused
                    .iter()
                    .map(|id| {
                        let sims: Vec<f32> = View::SIDES
                            .into_iter()
                            .zip(&sol.new_groups[k].sides)
                            .filter_map(|(view, mean)| {
                                st.gallery.similarity_in_view(id, mean.as_deref()?, view)
                            })
                            .collect();
                        let mean = sims.iter().sum::<f32>() / sims.len().max(1) as f32;
                        (mean * 1000.0).round() as i64
                    })
                    .collect()
            })
            .collect();
        let Ok(m) = pathfinding::matrix::Matrix::from_rows(w) else {
            return;
        };
        let (_, assigned) = pathfinding::kuhn_munkres::kuhn_munkres(&m);
        for (r, &c) in assigned.iter().enumerate() {
            let (k, id) = (open[r], &unused[c]);
            tracing::debug!(tank = %self.tank, individual = %id, fragments = sol.new_groups[k].fragments.len(), "a fish no individual fitted named by elimination");
            new_ids[k] = Some(id.clone());
        }
    }

    /// End of stream at stream time `t`: regroups once more with everything seen, unless the
    /// last regrouping was at `t` already, so the rows still waiting for their labels take
    /// the latest answer ([`Identifier::take_regrouped`]).
    pub fn finish(&mut self, t: f64) {
        if self.cfg.relabel_window_s > 0.0 && self.last_regroup.is_none_or(|l| l < t) {
            self.regroup(t);
        }
    }

    /// How alike the camera's fish in view together look to the encoder (90th percentile of
    /// their similarities in the latest regrouping that had enough of them; `None` before).
    pub fn alike_similarity(&self) -> Option<f32> {
        self.alike_similarity
    }

    /// The crops that counted as evidence of which individual their track followed, with
    /// individuals as labels (name, else id), since the last call ([`Sighting`]).
    pub fn take_sightings(&mut self) -> Vec<Sighting> {
        let mut out: Vec<Sighting> = std::mem::take(&mut self.sightings).into();
        if !out.is_empty() {
            let st = read(&self.shared);
            for s in &mut out {
                s.individual = st.registry.label(&s.individual);
            }
        }
        out
    }

    /// The last regrouping's individual (label: name, else id) of every fragment it covered
    /// (`None`: covered, no one's), once per regrouping; `None` when there was no new one.
    pub fn take_regrouped(&mut self) -> Option<HashMap<u64, Option<String>>> {
        if !std::mem::take(&mut self.regroup_ready) {
            return None;
        }
        let st = read(&self.shared);
        Some(
            self.regrouped
                .iter()
                .map(|(f, i)| (*f, i.as_deref().map(|i| st.registry.label(i))))
                .collect(),
        )
    }

    fn present_locked(&self, st: &TankState, t: f64) -> usize {
        let mut set: Vec<&str> = self
            .seen
            .iter()
            .filter(|(_, s)| t - **s <= self.cfg.present_window_s && **s <= t)
            .map(|(i, _)| st.registry.resolve(i))
            .collect();
        set.sort();
        set.dedup();
        set.len()
    }

    /// Individuals whose tracks matched a detection within `present_window_s` before `t`.
    pub fn present(&self, t: f64) -> usize {
        self.present_locked(&read(&self.shared), t)
    }

    /// Writes the state atomically now (no-op without a state folder).
    pub fn save(&self) -> Result<(), IdentifyError> {
        match &self.store {
            Some(p) => {
                self.keep_window();
                save_shared(&self.shared, p)
            }
            None => Ok(()),
        }
    }

    /// Puts the regrouping window's named fragments, and the time they count back from, into
    /// the state to be saved (every save carries them, so a crash in a tank's first minute
    /// leaves them too).
    fn keep_window(&self) {
        let named = self
            .window
            .named_fragments(|f| self.regrouped.get(&f).cloned().flatten());
        let window_t = self.window.saved_t();
        let mut st = write(&self.shared);
        st.window = named;
        st.window_t = window_t;
    }

    /// Enrols (or extends) individual `id` with embeddings of its photos; returns how many
    /// prototypes were stored. Known population limits do not apply to explicit enrolment.
    pub fn enroll(
        &mut self,
        id: &str,
        name: Option<String>,
        embeddings: &[Vec<f32>],
        photos: Vec<String>,
    ) -> Result<usize, IdentifyError> {
        let mut st = write(&self.shared);
        if let Some(n) = &name
            && st
                .registry
                .individuals
                .iter()
                .any(|i| i.id != id && (i.name.as_deref() == Some(n) || i.id == *n))
        {
            return Err(IdentifyError::Conflict(format!(
                "name `{n}` is already used by another individual"
            )));
        }
        st.registry.upsert_enrolled(id, name, photos);
        let mut stored = 0;
        for e in embeddings {
            let Some(v) = normalized(e) else { continue };
            if v.len() != st.gallery.dim() {
                return Err(IdentifyError::Enroll(format!(
                    "embedding has {} values, the gallery holds {}",
                    v.len(),
                    st.gallery.dim()
                )));
            }
            if st
                .gallery
                .add(Prototype {
                    owner: id.to_string(),
                    origin: id.to_string(),
                    view: View::Unknown,
                    t: 0.0,
                    wall: chrono::Utc::now().timestamp(),
                    quality: 1.0,
                    source: Source::Enrolled,
                    vector: v,
                    alive: true,
                })
                .is_some()
            {
                stored += 1;
            }
        }
        st.gallery.prune(id, self.cfg.max_prototypes_per_individual);
        st.dirty = true;
        Ok(stored)
    }
}

/// The individual (resolved through merges) a tracklet is anchored on: its current one, when
/// that was confirmed in this fragment (enrolled from it, placed by elimination, or matched
/// clearly).
fn anchored_on(st: &TankState, tl: &Tracklet) -> Option<String> {
    let a = st.registry.resolve(tl.anchor.as_deref()?);
    let cur = st.registry.resolve(tl.individual.as_deref()?);
    (a == cur).then(|| a.to_string())
}

/// How many crops of a tracklet's window are clear enough to become prototypes.
fn clear_crops(tl: &Tracklet, min_quality: f32) -> usize {
    tl.obs.iter().filter(|o| o.quality >= min_quality).count()
}

/// The sides (facing right, facing left) that a tracklet's window shows.
fn sides_shown(tl: &Tracklet) -> (bool, bool) {
    tl.obs
        .iter()
        .fold((false, false), |(r, l), o| match o.view {
            View::FacingRight => (true, l),
            View::FacingLeft => (r, true),
            View::Unknown => (r, l),
        })
}

/// Does a row of this frame's `assignment` other than `row` hold individual `ind` (resolved
/// through merges)?
fn held_elsewhere(st: &TankState, assignment: &[Option<String>], row: usize, ind: &str) -> bool {
    assignment
        .iter()
        .enumerate()
        .any(|(k, a)| k != row && a.as_deref().is_some_and(|a| st.registry.resolve(a) == ind))
}

/// Known population: can this tracklet be the unseen flank of an individual already known?
/// True when some individual was never seen from a side this tracklet shows and no other
/// track holds it in this frame's assignment (a fish's two flanks look unrelated, so only
/// being elsewhere at the same time proves it is another fish).
fn unseen_side_free(
    st: &TankState,
    tl: &Tracklet,
    active: &[String],
    assignment: &[Option<String>],
    row: usize,
) -> bool {
    let (shows_r, shows_l) = sides_shown(tl);
    active.iter().any(|ind| {
        let (r, l) = st.gallery.sides_of(ind);
        let unseen = (shows_r && !r) || (shows_l && !l);
        unseen && !held_elsewhere(st, assignment, row, ind)
    })
}

/// The one individual never seen from a side this tracklet shows (and seen from no side
/// that it shows) that no other track holds in this frame's assignment, if exactly one.
fn sole_unseen_side(
    st: &TankState,
    tl: &Tracklet,
    active: &[String],
    assignment: &[Option<String>],
    row: usize,
    excluded: &HashSet<String>,
) -> Option<String> {
    let (shows_r, shows_l) = sides_shown(tl);
    if !(shows_r || shows_l) {
        return None;
    }
    let mut free = active.iter().filter(|ind| {
        let (r, l) = st.gallery.sides_of(ind);
        let blind = !((shows_r && r) || (shows_l && l));
        blind && !excluded.contains(ind.as_str()) && !held_elsewhere(st, assignment, row, ind)
    });
    let first = free.next()?;
    free.next().is_none().then(|| first.clone())
}

/// How a track touches other fish in one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contact {
    /// Apart from every other fish.
    None,
    /// Its box comes within the contact margin of another matched track's box, without the two
    /// overlapping: the tracker rarely swaps fish there (1 % of such contacts in 20 simulated
    /// tanks).
    Near,
    /// Matched to a blob of several fish, sharing a blob with another track, or its box
    /// overlapping another's (one fish in front of the other): the tracker swapped fish in 17 %
    /// of such contacts.
    Tangle,
}

/// How each track touches other fish ([`Contact`]): matched to a blob of several fish, sharing
/// a blob with another track or with its box overlapping another matched track's box (a
/// tangle), or with boxes overlapping only once grown by `margin` × their height (near).
fn contacts(tracks: &[TrackReport], dets: &[Detection], margin: f32) -> Vec<Contact> {
    let grown = |b: [f32; 4], margin: f32| {
        let m = margin * (b[3] - b[1]).max(0.0);
        [b[0] - m, b[1] - m, b[2] + m, b[3] + m]
    };
    let boxes = |margin: f32| -> Vec<Option<[f32; 4]>> {
        tracks
            .iter()
            .map(|tr| {
                let d = tr.detection.and_then(|d| dets.get(d))?;
                d.bbox
                    .iter()
                    .all(|v| v.is_finite())
                    .then(|| grown(d.bbox, margin))
            })
            .collect()
    };
    let (own, near) = (boxes(0.0), boxes(margin));
    let overlap =
        |a: [f32; 4], b: [f32; 4]| a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
    (0..tracks.len())
        .map(|i| {
            let Some(di) = tracks[i].detection else {
                return Contact::None;
            };
            let others = (0..tracks.len()).filter(|&j| j != i);
            let touch = |boxes: &[Option<[f32; 4]>], j: usize| {
                matches!((boxes[i], boxes[j]), (Some(a), Some(b)) if overlap(a, b))
            };
            if dets.get(di).is_some_and(|d| d.fish_count >= 2)
                || others
                    .clone()
                    .any(|j| tracks[j].detection == Some(di) || touch(&own, j))
            {
                Contact::Tangle
            } else if others.into_iter().any(|j| touch(&near, j)) {
                Contact::Near
            } else {
                Contact::None
            }
        })
        .collect()
}

/// The individual that a tracklet anchored on `cur` also matches (score ≥ `accept`, ahead of
/// everyone else but `cur` by `margin`), when the two were only ever seen from opposite sides
/// and no other tracklet of this frame holds it: the same fish enrolled once per flank.
fn flank_twin(
    st: &TankState,
    sc: &Scores,
    cur: &str,
    accept: f32,
    margin: f32,
    assignment: &[Option<String>],
    row: usize,
) -> Option<String> {
    let (other, s) = sc.by.iter().find(|(i, _)| i != cur)?;
    if *s < accept {
        return None;
    }
    let third = sc
        .by
        .iter()
        .filter(|(i, _)| i != cur && i != other)
        .map(|(_, s)| *s)
        .fold(0.0f32, f32::max);
    if s - third < margin {
        return None;
    }
    if held_elsewhere(st, assignment, row, other) {
        return None;
    }
    let (cr, cl) = st.gallery.sides_of(cur);
    let (or, ol) = st.gallery.sides_of(other);
    let opposite = (cr && !cl && ol && !or) || (cl && !cr && or && !ol);
    opposite.then(|| other.clone())
}

/// A track that coasted at least this long (seconds) starts a new fragment when it is matched
/// again.
const COAST_FRAGMENT_S: f64 = 0.2;

/// Frames a tracklet remembers its fragment for ([`Tracklet::recent`]): more than a recording's
/// embedding lag (`[embed] lag_frames` ≤ 64) and a live camera's encoder latency at 30 frames/s
/// (4 s). An embedding of a crop cut earlier counts for no fragment.
const RECENT_FRAMES: usize = 128;

/// Embeddings a fragment needs before it is placed by elimination (see `sole_unseen_side`).
const ELIMINATION_OBSERVATIONS: usize = 4;

/// Embeddings each tracklet needs before a known population is enrolled at once.
const BOOTSTRAP_OBSERVATIONS: usize = 3;

/// Embedding pairs across a merged-blob occlusion needed before deciding continuity.
const CONTINUITY_PAIRS: usize = 3;
/// How much less like an individual another crop of the same shared blob must look for a crop
/// to count as that individual's (see [`Identifier::observe_shared`]). With a floor of 0.6,
/// identity IDF1 on three sets of 20 side-view tanks: 0.1 → 95.66 / 95.10 / 96.41, 0.2 → 95.65
/// / 94.99 / 96.45 (BENCHMARKS.md round 21).
const SHARED_CROP_MARGIN: f32 = 0.1;

/// Most sightings kept between two [`Identifier::take_sightings`] (the camera worker takes
/// them every frame; this bounds memory if it stops).
const MAX_SIGHTINGS: usize = 1024;

/// Which crops of one shared blob count ([`Identifier::observe_shared`]): `best[i]` is the
/// individual crop `i` looks most like and how much. A crop counts when that is at least
/// `min`, and no other crop looks like the same individual within `margin` of it (or more).
fn shared_crops_kept(best: &[Option<(String, f32)>], min: f32, margin: f32) -> Vec<bool> {
    best.iter()
        .enumerate()
        .map(|(i, b)| {
            b.as_ref().is_some_and(|(ind, s)| {
                *s >= min
                    && !best.iter().enumerate().any(|(j, o)| {
                        j != i
                            && o.as_ref()
                                .is_some_and(|(oi, os)| oi == ind && *os + margin > *s)
                    })
            })
        })
        .collect()
}

/// Mean same-side similarity across an occlusion above which it is the same fish.
const CONTINUITY_SIMILARITY: f32 = 0.5;

/// Is the fish after an occlusion (`now`) the one before it (`held`)? `None`: too few
/// comparable embeddings yet (e.g. it turned to its other flank).
fn continuity(held: &VecDeque<Obs>, now: &VecDeque<Obs>) -> Option<bool> {
    let mut sum = 0f32;
    let mut n = 0usize;
    for a in held {
        for b in now {
            if a.view.compatible(b.view) {
                sum += cosine(&a.emb, &b.emb);
                n += 1;
            }
        }
    }
    (n >= CONTINUITY_PAIRS).then(|| sum / n as f32 >= CONTINUITY_SIMILARITY)
}

/// Fish that must be ready together to enrol a known population of `n` at once, after waiting
/// `waited` seconds: all but a quarter, then after `patience` seconds one fewer per second,
/// down to half of them (at least one).
fn bootstrap_need(n: u32, waited: f64, patience: f64) -> usize {
    let n = n as usize;
    let full = (n - n / 4).max(1);
    let floor = n.div_ceil(2).max(1).min(full);
    let fewer = if waited > patience {
        (waited - patience).floor() as usize + 1
    } else {
        0
    };
    full.saturating_sub(fewer).max(floor)
}

/// A newcomer's embeddings must be alike (one fish, not a track hopping between fish); only
/// embeddings seen from compatible sides are compared.
fn self_consistent(tl: &Tracklet, min_mean: f32) -> bool {
    let mut sum = 0f32;
    let mut n = 0usize;
    for (i, a) in tl.obs.iter().enumerate() {
        for b in tl.obs.iter().skip(i + 1) {
            if a.view.compatible(b.view) {
                sum += cosine(&a.emb, &b.emb);
                n += 1;
            }
        }
    }
    n == 0 || sum / n as f32 >= min_mean
}

impl Drop for Identifier {
    fn drop(&mut self) {
        let dirty = read(&self.shared).dirty;
        if dirty && let Some(p) = self.store.clone() {
            match save_shared(&self.shared, &p) {
                Ok(()) => {
                    tracing::info!(tank = %self.tank, file = %p.display(), "identity state saved at shutdown")
                }
                Err(e) => {
                    tracing::error!(tank = %self.tank, error = %e, "identity state not saved at shutdown")
                }
            }
        }
    }
}

impl IdentityApi {
    /// Tank name.
    pub fn tank(&self) -> &str {
        &self.tank
    }

    /// Individuals present (as of the last `assign`).
    pub fn present(&self) -> usize {
        self.present_count.load(Ordering::Relaxed)
    }

    /// All individuals of the tank, merged ones included.
    pub fn list(&self) -> Vec<IndividualInfo> {
        let st = read(&self.shared);
        st.registry
            .individuals
            .iter()
            .map(|i| IndividualInfo {
                tank: self.tank.clone(),
                id: i.id.clone(),
                name: i.name.clone(),
                label: i.label().to_string(),
                first_seen: i.first_seen.clone(),
                last_seen: i.last_seen.clone(),
                prototypes: st.gallery.of(&i.id).count(),
                enrolled_photos: i.enrolled_photos.clone(),
                merged_into: i.merged_into.clone(),
            })
            .collect()
    }

    /// Merge history.
    pub fn merges(&self) -> Vec<Merge> {
        read(&self.shared).registry.merges.clone()
    }

    fn persist(&self) -> Result<(), IdentifyError> {
        match &self.store {
            Some(p) => save_shared(&self.shared, p),
            None => Ok(()),
        }
    }

    /// Renames (or clears the name with `None`), then saves.
    pub fn rename(&self, id: &str, name: Option<String>) -> Result<(), IdentifyError> {
        {
            let mut st = write(&self.shared);
            st.registry.rename(id, name)?;
            st.dirty = true;
        }
        self.persist()
    }

    /// Merges `from` into `into`, then saves. Returns the merge record (its id undoes it).
    pub fn merge(&self, from: &str, into: &str) -> Result<Merge, IdentifyError> {
        let m = write(&self.shared).merge(from, into)?;
        self.persist()?;
        Ok(m)
    }

    /// Undoes a merge, then saves.
    pub fn unmerge(&self, merge_id: u64) -> Result<Merge, IdentifyError> {
        let m = write(&self.shared).unmerge(merge_id)?;
        self.persist()?;
        Ok(m)
    }

    /// Saves now.
    pub fn save(&self) -> Result<(), IdentifyError> {
        self.persist()
    }

    /// Leave-one-out rank-1 of enrolled prototypes (each against all others): (correct, total).
    pub fn enrolled_rank1(&self) -> (usize, usize) {
        let st = read(&self.shared);
        let protos: Vec<(String, Vec<f32>)> = st
            .gallery
            .live()
            .filter(|(_, p)| p.source == Source::Enrolled)
            .map(|(_, p)| (st.registry.resolve(&p.owner).to_string(), p.vector.clone()))
            .collect();
        let mut ok = 0;
        let mut total = 0;
        for (i, (own, v)) in protos.iter().enumerate() {
            let best = protos
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .max_by(|a, b| cosine(&a.1.1, v).total_cmp(&cosine(&b.1.1, v)));
            if let Some((_, (o, _))) = best {
                total += 1;
                if o == own {
                    ok += 1;
                }
            }
        }
        (ok, total)
    }
}

/// How far below `relabel_similarity` the likeness of fish in view together must fall before
/// they count as telling apart again (so a likeness hovering at the threshold is said once).
const ALIKE_CLEAR_MARGIN: f32 = 0.1;

/// What the log says about how alike a camera's fish in view together look to the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AlikeNews {
    /// Too alike to tell apart by their crops (a warning).
    Alike,
    /// Telling apart again, after a warning.
    Apart,
}

/// Whether the log has said that a camera's fish look too alike: said when a regrouping first
/// measures them so, and again only after one has measured them clearly apart in between
/// (below the threshold by [`ALIKE_CLEAR_MARGIN`]), so that a camera whose focus degrades
/// months into a run is warned then, and a likeness hovering at the threshold is said once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AlikeWatch {
    said: bool,
}

impl AlikeWatch {
    /// A regrouping measured `measured` (`None`: too few fish in view together to tell); returns
    /// what the log should say now, if anything.
    fn observe(&mut self, measured: Option<f32>, threshold: f32) -> Option<AlikeNews> {
        let q = measured?;
        if q > threshold && !self.said {
            self.said = true;
            Some(AlikeNews::Alike)
        } else if q < threshold - ALIKE_CLEAR_MARGIN && self.said {
            self.said = false;
            Some(AlikeNews::Apart)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A camera whose fish come to look alike months into a run is warned then, again after
    /// they told apart in between, and a likeness hovering at the threshold is said once.
    #[test]
    fn the_log_says_fish_look_alike_again_only_after_they_told_apart() {
        let mut w = AlikeWatch::default();
        let said: Vec<Option<AlikeNews>> = [
            Some(0.5),
            Some(0.9),
            Some(0.95),
            None,
            Some(0.75),
            Some(0.8),
            Some(0.6),
            Some(0.7),
            Some(0.9),
        ]
        .into_iter()
        .map(|q| w.observe(q, 0.78))
        .collect();
        use AlikeNews::{Alike, Apart};
        assert_eq!(
            said,
            [
                None,
                Some(Alike),
                None,
                None,
                None,
                None,
                Some(Apart),
                None,
                Some(Alike)
            ]
        );
    }
    use crate::messages::TrackStatus;

    #[test]
    fn the_bootstrap_needs_fewer_fish_each_second_after_the_patience_down_to_half() {
        // 8 fish: all but a quarter (6) until the patience (3 s) is over, then one fewer per
        // started second, never fewer than half (4).
        let need: Vec<usize> = [0.0, 2.9, 3.0, 3.1, 4.2, 5.5, 60.0]
            .iter()
            .map(|&w| bootstrap_need(8, w, 3.0))
            .collect();
        assert_eq!(need, vec![6, 6, 6, 5, 4, 4, 4]);
        assert_eq!(bootstrap_need(16, 0.0, 3.0), 12);
        assert_eq!(bootstrap_need(16, 100.0, 3.0), 8);
        // Small populations: one fish is always enough for one; two wait for both, then one.
        assert_eq!(bootstrap_need(1, 100.0, 3.0), 1);
        assert_eq!(bootstrap_need(2, 0.0, 3.0), 2);
        assert_eq!(bootstrap_need(2, 100.0, 3.0), 1);
        assert_eq!(bootstrap_need(3, 100.0, 3.0), 2);
        // No patience: fewer from the start.
        assert_eq!(bootstrap_need(8, 0.5, 0.0), 5);
    }

    fn report(track: u64, det: Option<usize>) -> TrackReport {
        TrackReport {
            track,
            individual: None,
            status: TrackStatus::Confirmed,
            x: 0.0,
            y: 0.0,
            bbox: [0.0; 4],
            heading: 0.0,
            area: 1.0,
            detection: det,
            body_length: 10.0,
            fish_area: 0.0,
        }
    }

    fn det(bbox: [f32; 4], fish_count: u32) -> Detection {
        Detection {
            x: 0.5 * (bbox[0] + bbox[2]),
            y: 0.5 * (bbox[1] + bbox[3]),
            bbox,
            area: 1.0,
            axis_angle: 0.0,
            major_axis: 10.0,
            length: 0.0,
            minor_axis: 3.0,
            fish_count,
            crop: None,
            points: Vec::new(),
        }
    }

    #[test]
    fn contacts_are_tangles_where_blobs_or_boxes_overlap_and_near_where_boxes_come_close() {
        let dets = vec![
            det([0.0, 0.0, 30.0, 10.0], 1),
            // 2 px right of the first box: within 0.2 × its 10 px height.
            det([31.0, 0.0, 60.0, 10.0], 1),
            det([200.0, 0.0, 230.0, 10.0], 1),
            det([400.0, 0.0, 450.0, 20.0], 2),
            det([600.0, 0.0, 630.0, 10.0], 1),
            // One fish in front of another: two blobs, overlapping boxes.
            det([800.0, 0.0, 830.0, 10.0], 1),
            det([820.0, 4.0, 850.0, 14.0], 1),
        ];
        let tracks = vec![
            report(1, Some(0)),
            report(2, Some(1)),
            report(3, Some(2)),
            report(4, Some(3)),
            report(5, Some(4)),
            report(6, Some(4)),
            report(7, None),
            report(8, Some(5)),
            report(9, Some(6)),
        ];
        use Contact::{Near, None as Apart, Tangle};
        assert_eq!(
            contacts(&tracks, &dets, 0.2),
            vec![
                Near, Near, Apart, Tangle, Tangle, Tangle, Apart, Tangle, Tangle
            ]
        );
        // Without a margin the first two boxes do not touch.
        assert_eq!(
            contacts(&tracks, &dets, 0.0),
            vec![
                Apart, Apart, Apart, Tangle, Tangle, Tangle, Apart, Tangle, Tangle
            ]
        );
    }

    /// A model card for a 4-dimensional encoder (no model file is read).
    fn test_card() -> ModelCard {
        serde_json::from_value(serde_json::json!({
            "format": "finprint-encoder/1",
            "name": "t",
            "onnx": "t.onnx",
            "input": {"name": "input", "layout": "NCHW", "channels": 3, "color": "RGB",
                      "height": 4, "width": 12, "scale": 255.0,
                      "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
            "output": {"name": "embedding", "dim": 4, "l2_normalized": true},
            "crop": {"aspect": 3.0, "length_margin": 1.3, "orientation": "x"}
        }))
        .expect("card")
    }

    /// An identifier for `population` fish with `axes` individuals enrolled facing right, the
    /// k-th from the k-th unit vector; returns it and their ids.
    fn enrolled(population: u32, axes: usize) -> (Identifier, Vec<String>) {
        let id = Identifier::build(
            &IdentityConfig::default(),
            "tank",
            Some(population),
            &test_card(),
        )
        .expect("identifier");
        let ids = {
            let mut st = write(&id.shared);
            (0..axes)
                .map(|k| {
                    let mut v = vec![0.0; 4];
                    v[k] = 1.0;
                    let i = st.registry.create();
                    st.gallery
                        .add(Prototype::tracked(&i, View::FacingRight, 0.0, 1.0, v));
                    i
                })
                .collect()
        };
        (id, ids)
    }

    #[test]
    fn a_fish_no_individual_fits_is_named_by_elimination_when_the_population_is_complete() {
        // Population 3, all enrolled (A, B, C facing right). The regrouping names one group A
        // and finds two more, each a fish of its own, that no individual fits; B and C are
        // named after no group. The groups are B and C, paired by appearance.
        let group = |frag: u64, v: &[f32], distinct: bool| solver::NewGroup {
            fragments: vec![frag],
            sides: [Some(v.to_vec()), None],
            weight: 10.0,
            distinct,
        };
        let confirmed: HashSet<u64> = [1, 2, 3].into();
        // Looks like C, then like B.
        let groups = vec![
            group(2, &[0.0, 0.1, 0.9, 0.0], true),
            group(3, &[0.0, 0.9, 0.1, 0.0], true),
        ];
        let (id, ids) = enrolled(3, 3);
        let mut sol = solver::Solution::default();
        sol.names.insert(1, Name::Individual(ids[0].clone()));
        sol.new_groups = groups.clone();
        let named = |id: &Identifier, sol: &solver::Solution| {
            let mut new_ids = vec![None; sol.new_groups.len()];
            id.name_by_elimination(&read(&id.shared), sol, &confirmed, &mut new_ids);
            new_ids
        };
        assert_eq!(
            named(&id, &sol),
            vec![Some(ids[2].clone()), Some(ids[1].clone())]
        );
        // One of them may be another fish's unseen flank (not distinct): two individuals for
        // one certain group is no elimination.
        sol.new_groups[1].distinct = false;
        assert_eq!(named(&id, &sol), vec![None, None]);
        // Population not complete (4 fish, 3 enrolled): such a group is enrolled instead.
        let (id4, ids4) = enrolled(4, 3);
        let mut sol4 = solver::Solution::default();
        sol4.names.insert(1, Name::Individual(ids4[0].clone()));
        sol4.new_groups = groups;
        assert_eq!(named(&id4, &sol4), vec![None, None]);
    }

    #[test]
    fn a_track_gets_a_new_fragment_when_a_contact_or_a_long_coast_ends() {
        let mut id = Identifier::build(&IdentityConfig::default(), "tank", None, &test_card())
            .expect("identifier");
        let apart = vec![
            det([0.0, 0.0, 30.0, 10.0], 1),
            det([100.0, 0.0, 130.0, 10.0], 1),
        ];
        let touching = vec![
            det([0.0, 0.0, 30.0, 10.0], 1),
            det([25.0, 0.0, 55.0, 10.0], 1),
        ];
        let tracks = vec![report(1, Some(0)), report(2, Some(1))];
        id.wants_embedding(0.0, &tracks, &apart);
        let (a, b) = (id.fragment_of(1).unwrap(), id.fragment_of(2).unwrap());
        assert_ne!(a, b);
        id.wants_embedding(0.1, &tracks, &apart);
        assert_eq!(id.fragment_of(1), Some(a), "no contact, same fragment");
        assert!(!id.in_contact(1) && !id.in_contact(2));
        id.wants_embedding(0.2, &tracks, &touching);
        assert!(
            id.in_contact(1) && id.in_contact(2),
            "boxes overlap: in contact"
        );
        assert!(!id.in_contact(9), "an unknown track is in no contact");
        assert_eq!(
            id.fragment_of(1),
            Some(a),
            "the fragment lasts through the contact"
        );
        id.wants_embedding(0.3, &tracks, &apart);
        assert!(!id.in_contact(1), "apart again");
        let (a2, b2) = (id.fragment_of(1).unwrap(), id.fragment_of(2).unwrap());
        assert!(
            a2 != a && b2 != b && a2 != b2,
            "new fragments after the contact"
        );
        assert_eq!(id.fragment_of(9), None);
        // Track 1 loses its detection for one frame (0.1 s): same fragment; for 0.3 s (hidden,
        // maybe behind another fish): a new fragment when it is matched again.
        let coasting = vec![report(1, None), report(2, Some(1))];
        id.wants_embedding(0.4, &coasting, &apart);
        id.wants_embedding(0.5, &tracks, &apart);
        assert_eq!(
            id.fragment_of(1),
            Some(a2),
            "a short coast keeps the fragment"
        );
        for k in 0..3 {
            id.wants_embedding(0.6 + 0.1 * k as f64, &coasting, &apart);
        }
        id.wants_embedding(0.9, &tracks, &apart);
        assert_ne!(
            id.fragment_of(1),
            Some(a2),
            "a long coast starts a fragment"
        );
        assert_eq!(id.fragment_of(2), Some(b2));
    }

    #[test]
    fn a_side_view_also_ends_a_fragment_where_a_tangle_ends_inside_a_contact() {
        let [apart, near, overlapping] = two_fish_scenes();
        let tracks = vec![report(1, Some(0)), report(2, Some(1))];
        for (view, split) in [(CameraView::Side, true), (CameraView::Top, false)] {
            let mut id = Identifier::build(&IdentityConfig::default(), "tank", None, &test_card())
                .expect("identifier");
            id.set_view(view);
            id.wants_embedding(0.0, &tracks, &apart);
            id.wants_embedding(0.1, &tracks, &near);
            let a = id.fragment_of(1);
            assert!(id.in_contact(1));
            id.wants_embedding(0.2, &tracks, &overlapping);
            id.wants_embedding(0.3, &tracks, &overlapping);
            assert_eq!(
                id.fragment_of(1),
                a,
                "{view:?}: the tangle is in the fragment"
            );
            id.wants_embedding(0.4, &tracks, &near);
            assert!(id.in_contact(1), "{view:?}: still near the other fish");
            let b = id.fragment_of(1);
            assert_eq!(
                b != a,
                split,
                "{view:?}: the tangle ended inside the contact"
            );
            id.wants_embedding(0.5, &tracks, &near);
            assert_eq!(
                id.fragment_of(1),
                b,
                "{view:?}: near again, no tangle: same fragment"
            );
            id.wants_embedding(0.6, &tracks, &apart);
            assert_ne!(id.fragment_of(1), b, "{view:?}: the contact ended");
        }
    }

    /// The detections of two fish 10 px tall: apart, near (1 px apart: within the contact margin
    /// of 0.2 × the box height, not overlapping) and overlapping.
    fn two_fish_scenes() -> [Vec<Detection>; 3] {
        [100.0, 31.0, 25.0].map(|x| {
            vec![
                det([0.0, 0.0, 30.0, 10.0], 1),
                det([x, 0.0, x + 30.0, 10.0], 1),
            ]
        })
    }

    #[test]
    fn a_fragment_out_of_a_tangle_is_marked_for_the_solver_and_one_out_of_a_near_contact_is_not() {
        let mut id = Identifier::build(&IdentityConfig::default(), "tank", None, &test_card())
            .expect("identifier");
        let [apart, near, overlapping] = two_fish_scenes();
        let mut tracks = vec![report(1, Some(0)), report(2, Some(1))];
        let mut t = 0.0;
        let mut step = |id: &mut Identifier, dets: &[Detection]| {
            t += 0.1;
            id.wants_embedding(t, &tracks, dets);
            id.assign(t, &mut tracks);
        };
        let after_tangle = |id: &Identifier| {
            let f = id.fragment_of(1).expect("fragment");
            id.window
                .fragments(|l| l.to_string())
                .iter()
                .find(|x| x.id == f)
                .expect("in the window")
                .after_tangle
        };
        for (contact, tangle) in [(&near, false), (&overlapping, true), (&near, false)] {
            let before = id.fragment_of(1);
            step(&mut id, &apart);
            step(&mut id, contact);
            step(&mut id, &apart);
            assert_ne!(
                id.fragment_of(1),
                before,
                "a new fragment after the contact"
            );
            assert_eq!(after_tangle(&id), tangle);
        }
    }

    #[test]
    fn an_embedding_counts_for_the_fragment_its_crop_was_cut_in_and_one_cut_after_a_contacts_last_tangle_for_the_fragment_after_it()
     {
        let mut id = Identifier::build(&IdentityConfig::default(), "tank", None, &test_card())
            .expect("identifier");
        let [apart, near, overlapping] = two_fish_scenes();
        let mut tracks = vec![report(1, Some(0)), report(2, Some(1))];
        // One frame at `t`: the track's fragment then.
        let mut step = |id: &mut Identifier, t: f64, dets: &[Detection]| {
            id.wants_embedding(t, &tracks, dets);
            id.assign(t, &mut tracks);
            id.fragment_of(1).expect("fragment")
        };
        let axis = |k: usize| {
            let mut v = vec![0.0f32; 4];
            v[k] = 1.0;
            v
        };
        // Summed weight and vector of a fragment's embeddings over both sides.
        let evidence = |id: &Identifier, frag: u64| {
            let f = id
                .window
                .fragments(|l| l.to_string())
                .into_iter()
                .find(|f| f.id == frag)
                .expect("fragment in the window");
            let mut sum = vec![0.0f32; 4];
            let mut weight = 0.0;
            for (v, w) in f.sides.iter().flatten() {
                weight += w;
                sum.iter_mut().zip(v).for_each(|(a, b)| *a += b);
            }
            (weight, sum)
        };
        let a = step(&mut id, 1.0, &apart); // crop x cut
        assert_eq!(
            step(&mut id, 2.0, &overlapping),
            a,
            "the contact is part of its fragment"
        );
        // x arrives during the tangle: still the fish of the fragment it was cut in.
        id.observe(1.0, 1, &axis(0), 1.0);
        step(&mut id, 3.0, &near); // crop y cut after the tangle, arrives at once
        id.observe(3.0, 1, &axis(1), 1.0);
        step(&mut id, 4.0, &near); // crop z cut, arrives after the contact
        let b = step(&mut id, 5.0, &apart);
        assert_ne!(b, a, "a new fragment after the contact");
        id.observe(4.0, 1, &axis(2), 1.0);
        assert_eq!(
            evidence(&id, a),
            (1.0, axis(0)),
            "only the crop cut before the tangle"
        );
        assert_eq!(
            evidence(&id, b),
            (2.0, vec![0.0, 1.0, 1.0, 0.0]),
            "the crops cut after the tangle show the fish the track left the contact with"
        );
        // Crops cut between two tangles of one contact may show either fish, most likely the
        // one of the fragment they were cut in (arriving before or after the second tangle).
        assert_eq!(step(&mut id, 6.0, &overlapping), b);
        step(&mut id, 7.0, &near); // crop cut, arrives at once
        id.observe(7.0, 1, &axis(3), 1.0);
        step(&mut id, 8.0, &near); // crop cut, arrives after the second tangle
        step(&mut id, 9.0, &overlapping);
        id.observe(8.0, 1, &axis(0), 1.0);
        let c = step(&mut id, 10.0, &apart);
        assert_ne!(c, b);
        assert_eq!(evidence(&id, b), (4.0, vec![1.0; 4]));
        assert_eq!(evidence(&id, c).0, 0.0);
        // A crop cut before what the tracklet remembers counts for no fragment.
        id.observe(-100.0, 1, &axis(0), 1.0);
        assert_eq!(evidence(&id, c).0, 0.0);
    }

    /// A resumed recording: tracks the tracker continues go on with the individual their last
    /// written row carried (by label, renamed individuals too), before any crop of theirs is
    /// seen, and the regrouping keeps it; a label the state does not know is identified afresh.
    #[test]
    fn continued_tracks_go_on_with_the_individual_of_their_last_row() {
        let (mut id, ids) = enrolled(3, 3);
        write(&id.shared)
            .registry
            .rename(&ids[1], Some("nemo".into()))
            .expect("rename");
        let seed = |track: u64, individual: Option<&str>| TrackSeed {
            track,
            x: 0.0,
            y: 0.0,
            vx: 0.0,
            vy: 0.0,
            bbox: [0.0; 4],
            heading: 0.0,
            body_length: 10.0,
            area: 1.0,
            individual: individual.map(str::to_string),
            shared_box: None,
        };
        id.tracks_continue(
            &[
                seed(4, Some(&ids[2])),
                seed(7, Some("nemo")),
                seed(9, Some("fish-999")),
            ],
            0.0,
        );
        let dets = vec![
            det([0.0, 0.0, 30.0, 10.0], 1),
            det([100.0, 0.0, 130.0, 10.0], 1),
            det([200.0, 0.0, 230.0, 10.0], 1),
        ];
        let mut tracks = vec![report(4, Some(0)), report(7, Some(1)), report(9, Some(2))];
        for k in 0..3 {
            let t = 10.0 + 0.1 * f64::from(k);
            id.wants_embedding(t, &tracks, &dets);
            id.assign(t, &mut tracks);
            let labels: Vec<Option<&str>> =
                tracks.iter().map(|t| t.individual.as_deref()).collect();
            assert_eq!(
                labels,
                vec![Some(ids[2].as_str()), Some("nemo"), None],
                "frame {k}"
            );
        }
        id.finish(10.3);
        let names = id.take_regrouped().expect("regrouped");
        let frag = id.fragment_of(4).expect("fragment");
        assert_eq!(names.get(&frag), Some(&Some(ids[2].clone())));
    }

    #[test]
    fn a_changed_state_is_saved_at_once_for_a_new_individual_and_sooner_while_the_gallery_grows() {
        // A new individual: at once, whatever the time since the last save.
        assert!(save_due(true, 0.0, 60.0, (40, 40)));
        // Otherwise every `save_every_s` ...
        assert!(!save_due(false, 30.0, 60.0, (40, 41)));
        assert!(save_due(false, 60.0, 60.0, (40, 41)));
        // ... or, while the gallery grows by half since the last save, every 5 s at most.
        assert!(save_due(false, 6.0, 60.0, (40, 60)));
        assert!(!save_due(false, 4.0, 60.0, (40, 60)));
        assert!(!save_due(false, 6.0, 60.0, (40, 59)));
        // A gallery saved empty counts as one prototype.
        assert!(save_due(false, 5.0, 60.0, (0, 2)));
    }

    #[test]
    fn the_end_of_the_stream_regroups_once_more_with_everything_seen() {
        let cfg = IdentityConfig {
            relabel_every_s: 10.0,
            ..Default::default()
        };
        let mut id = Identifier::build(&cfg, "tank", None, &test_card()).expect("identifier");
        let apart = vec![det([0.0, 0.0, 30.0, 10.0], 1)];
        let mut tracks = vec![report(1, Some(0))];
        id.wants_embedding(0.0, &tracks, &apart);
        id.assign(0.0, &mut tracks);
        assert!(id.take_regrouped().is_some(), "the first frame regroups");
        id.wants_embedding(1.0, &tracks, &apart);
        id.assign(1.0, &mut tracks);
        assert!(id.take_regrouped().is_none(), "not due again for 10 s");
        id.finish(1.0);
        let names = id.take_regrouped().expect("the end of the stream regroups");
        assert!(names.contains_key(&id.fragment_of(1).expect("fragment")));
        id.finish(1.0);
        assert!(
            id.take_regrouped().is_none(),
            "already regrouped at that time"
        );
    }

    #[test]
    fn of_a_shared_blobs_crops_only_one_clearly_most_like_its_individual_counts() {
        let b = |i: &str, s: f32| Some((i.to_string(), s));
        // Two fish, each crop like its own individual: both count.
        assert_eq!(
            shared_crops_kept(&[b("a", 0.9), b("b", 0.7)], 0.55, 0.1),
            [true, true]
        );
        // The crop behind shows mostly the fish in front: only the clearer one counts.
        assert_eq!(
            shared_crops_kept(&[b("a", 0.9), b("a", 0.7)], 0.55, 0.1),
            [true, false]
        );
        // Too close to tell which one shows that fish: neither.
        assert_eq!(
            shared_crops_kept(&[b("a", 0.9), b("a", 0.85)], 0.55, 0.1),
            [false, false]
        );
        // Like no individual enough, or not comparable at all: nothing.
        assert_eq!(
            shared_crops_kept(&[b("a", 0.5), None, b("c", 0.6)], 0.55, 0.1),
            [false, false, true]
        );
    }

    /// Issue 5: a crop that counts for the regrouping and looks like a known individual is a
    /// sighting of it for the outputs, by label; one too foreshortened to count, or like no
    /// one, is not.
    #[test]
    fn a_clear_crop_like_a_known_individual_is_a_sighting_of_it_by_label() {
        let (mut id, ids) = enrolled(2, 2);
        let dets = vec![
            det([0.0, 0.0, 30.0, 10.0], 1),
            det([100.0, 0.0, 130.0, 10.0], 1),
        ];
        let mut tracks = vec![report(1, Some(0)), report(2, Some(1))];
        id.wants_embedding(0.0, &tracks, &dets);
        id.assign(0.0, &mut tracks);
        id.api()
            .rename(&ids[1], Some("Nemo".into()))
            .expect("rename");
        id.observe(0.1, 1, &[1.0, 0.0, 0.0, 0.0], 1.0);
        id.observe(0.1, 2, &[0.1, 1.0, 0.0, 0.0], 0.9);
        id.observe(0.2, 1, &[1.0, 0.0, 0.0, 0.0], REGROUP_MIN_QUALITY / 2.0);
        id.observe(0.2, 2, &[0.0, 0.0, 1.0, 0.0], 1.0);
        let sighting = |track: u64, t: f64, individual: &str| Sighting {
            track,
            t,
            individual: individual.to_string(),
        };
        assert_eq!(
            id.take_sightings(),
            [sighting(1, 0.1, &ids[0]), sighting(2, 0.1, "Nemo")]
        );
        assert!(id.take_sightings().is_empty(), "each is taken once");
    }

    #[test]
    fn a_side_view_embeds_every_track_of_a_shared_blob_and_keeps_the_crop_of_the_fish_in_front() {
        let (mut id, ids) = enrolled(2, 2);
        // Two tracks on one blob (one fish passing in front of the other), a third apart.
        let dets = vec![
            det([0.0, 0.0, 40.0, 12.0], 2),
            det([100.0, 0.0, 130.0, 10.0], 1),
        ];
        let mut tracks = vec![report(1, Some(0)), report(2, Some(0)), report(3, Some(1))];
        let mut chosen = id.wants_embedding(0.0, &tracks, &dets);
        chosen.sort_unstable();
        assert!(
            chosen.is_empty(),
            "a top view embeds neither track of a shared blob (and track 3 has no crop)"
        );
        id.assign(0.0, &mut tracks);

        id.set_view(CameraView::Side);
        let mut chosen = id.wants_embedding(0.1, &tracks, &dets);
        chosen.sort_unstable();
        assert_eq!(chosen, [0, 1], "both tracks of the shared blob");
        id.assign(0.1, &mut tracks);
        // Track 1's crop shows the first individual whole; track 2's shows mostly the same
        // fish (in front of it) and a little of the second.
        let front = [1.0f32, 0.0, 0.0, 0.0];
        let behind = [0.8f32, 0.6, 0.0, 0.0];
        id.observe_shared(0.1, &[(1, &front[..]), (2, &behind[..])], 0.8);
        let obs = |id: &Identifier, track: u64| id.tracklets[&track].obs.len();
        assert_eq!(obs(&id, 1), 1, "the crop of the fish in front counts");
        assert_eq!(obs(&id, 2), 0, "the crop behind it does not");
        let sims = &id.tracklets[&1].obs[0].sims;
        assert_eq!(sims[0].0, ids[0]);

        // Off in the config: a side view embeds neither either.
        let cfg = IdentityConfig {
            shared_blob_crops: false,
            ..Default::default()
        };
        let mut off = Identifier::build(&cfg, "tank", Some(2), &test_card()).expect("identifier");
        off.set_view(CameraView::Side);
        assert!(off.wants_embedding(0.0, &tracks, &dets).is_empty());
    }
}

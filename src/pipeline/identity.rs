//! The identity step of a camera worker: asks the identifier which tracks need an embedding
//! (within its budget), cuts and sends their crops to the shared encoder service without waiting,
//! feeds embeddings back when they arrive (a few frames later), lets the identifier fill
//! `individual` in every track, and holds frames back `[identity] label_lag_s` so that each is
//! written with the individual its fragment settled on ([`LabelDelay`]). Must never decide
//! identity itself — that is `crate::identify`'s job.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::embed::{Done, EmbedQueue, Settled};
use crate::identify::{Identifier, IdentifierState, Sighting};
use crate::messages::{Crop, Detection, TrackReport, TrackedFrame};
use crate::output::metrics::Metrics;

/// What an embedding request was for: the frame time, and for each crop its track, its quality
/// and, for a crop cut at the track's place in a blob several tracks share, that detection
/// (the crops of one shared blob are judged together, [`Identifier::observe_shared`]).
pub(crate) type Request = (f64, Vec<(u64, f32, Option<usize>)>);

/// Where an encoder crop is cut: the body centre (full-frame px), the body axis angle (radians,
/// as `Detection::axis_angle`) and the body length as a detection's second-moment major axis
/// (px; the crop spans `crop_margin` times it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CropPlace {
    pub(crate) x: f32,
    pub(crate) y: f32,
    pub(crate) axis_angle: f32,
    pub(crate) major_axis: f32,
}

impl CropPlace {
    /// A detection's own crop: only for a blob the detector marked for crops (one fish).
    fn of_detection(d: &Detection) -> Option<CropPlace> {
        d.crop.as_ref()?;
        Some(CropPlace {
            x: d.x,
            y: d.y,
            axis_angle: d.axis_angle,
            major_axis: d.major_axis,
        })
    }

    /// A track's own place in a blob it shares: its centre, its heading folded onto the body
    /// axis (the crop is never mirrored: the encoder sees each flank as the detector cuts it),
    /// and its broadside length scaled to a major axis by `axis_per_length`.
    fn of_track(tr: &TrackReport, axis_per_length: f32) -> Option<CropPlace> {
        use std::f32::consts::{FRAC_PI_2, PI};
        let major_axis = tr.body_length * axis_per_length;
        let usable = tr.x.is_finite()
            && tr.y.is_finite()
            && tr.heading.is_finite()
            && major_axis.is_finite()
            && major_axis > 0.0;
        if !usable {
            return None;
        }
        // Into (-π/2, π/2], as a detection's axis angle.
        let mut axis = tr.heading.rem_euclid(PI);
        if axis > FRAC_PI_2 {
            axis -= PI;
        }
        Some(CropPlace {
            x: tr.x,
            y: tr.y,
            axis_angle: axis,
            major_axis,
        })
    }
}

/// The embedded crops of one shared blob: its detection, and each crop's track and embedding.
type SharedBlobCrops<'a> = (usize, Vec<(u64, &'a [f32])>);

/// A crop cut at a track's place in a shared blob may hold parts of the other fish: its
/// evidence weighs `0.8⁴ ≈ 0.4` of a clean crop's.
const SHARED_CROP_QUALITY: f32 = 0.8;

/// A crop at a track's place in a shared blob is cut this much smaller than a lone fish's, to
/// keep out more of the other fish. The track's length is what the fish shows broadside at
/// most, and the shipped encoder's tanks learn about 1.03 major axes per length; identity IDF1
/// on three sets of 20 side-view tanks with crops cut at 1.03 / 0.85 / 0.75 major axes per
/// length: 95.45 / 95.00 / 96.31, 95.75 / 95.08 / 96.49, 95.60 / 95.32 / 96.45 (BENCHMARKS.md
/// round 21).
const SHARED_CROP_SCALE: f32 = 0.8;

/// How fast [`IdentityStep::axis_per_length`] follows single-fish detections.
const AXIS_PER_LENGTH_RATE: f32 = 0.05;

/// Per-camera identity state owned by the camera's worker thread.
pub(crate) struct IdentityStep {
    pub(crate) identifier: Identifier,
    queue: EmbedQueue<Request>,
    save_every: Duration,
    last_save: Instant,
    failures: u64,
    /// Last time each live track was seen in a multi-fish blob: an embedding of a crop cut
    /// before that may show another fish now (identities can swap while fish touch).
    occluded_at: HashMap<u64, f64>,
    /// Frames waiting for their labels (`[identity] label_lag_s`).
    labels: LabelDelay,
    /// `[identity] crops_dir`: every crop sent to the encoder is also written there.
    crops_dir: Option<PathBuf>,
    /// Tracks of the latest frame: an embedding is taken only for a track still there.
    live_tracks: HashSet<u64>,
    /// A single fish's second-moment major axis per its measured length, learned from this
    /// camera's one-fish blobs (`None` until one is seen): scales a track's length to the crop
    /// size the detector would cut ([`CropPlace::of_track`]).
    axis_per_length: Option<f32>,
}

/// Where a track report stands for labelling: its fragment, and whether the frame lies in an
/// uncertain stretch (the track in contact with another fish, or coasting), after which the
/// tracker may follow another fish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Place {
    /// The identifier's fragment of the track.
    pub(crate) fragment: u64,
    /// In contact with another fish, or coasting, in this frame.
    pub(crate) uncertain: bool,
}

/// What [`LabelDelay`] knows of one fragment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FragmentInfo {
    /// Latest individual (label) and the stream time of the last frame in which it was held.
    label: Option<(String, f64)>,
    /// Start of the fragment's current uncertain stretch (`None` while certain).
    tail_start: Option<f64>,
    /// Stream time of the fragment's last frame so far.
    end: f64,
    /// The same track's next fragment, once it began.
    next: Option<u64>,
    /// The fragment's track.
    track: u64,
}

/// Where in a contact stretch that ended a fragment its rows stop taking the fragment's
/// individual and take the next fragment's, as a fraction of the stretch: the tracker swaps
/// fish more often late in a contact, as the fish part, than early. On 20 simulated tanks,
/// two renders, identity IDF1 0.4 / 0.5 / 0.6 / 0.7 / 0.8 → 95.08 / 95.33 / 95.48 / 95.50 /
/// 95.42 and 94.58 / 94.78 / 94.87 / 94.89 / 94.81 (BENCHMARKS.md round 17). Where crops cut
/// in the stretch say which fish the track followed ([`Sighting`]), they place the split
/// instead ([`LabelDelay::swap_time`]).
const SWAP_SPLIT: f64 = 0.7;

/// Most sightings kept per track (bounds memory on a stream whose timestamps stall).
const MAX_SIGHTINGS_PER_TRACK: usize = 256;

/// Holds tracked frames back for `lag_s` of stream time and labels each track report with the
/// latest individual of its fragment (a stretch of a track between contacts with other fish,
/// which is one fish throughout), so the evidence gathered after a frame names that frame's
/// fish too. A fragment ends in an uncertain stretch (a contact, or a coast) somewhere in which
/// the tracker may have swapped fish: the first [`SWAP_SPLIT`] of that stretch keeps the
/// fragment's individual, the rest takes the individual of the track's next fragment (when that
/// began within the lag and has one), unless crops cut in the stretch place the swap
/// elsewhere ([`LabelDelay::swap_time`]). A frame never names one individual twice: when two of its
/// fragments ended up with the same individual (one lost it to the other later), the fragment
/// that held it last keeps it and the other falls back to its own label of that frame, or none.
/// Once the identifier's regrouping covered a fragment, its answer replaces the fragment's
/// latest individual, "no one's" included ([`LabelDelay::regrouped`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct LabelDelay {
    /// How long frames wait, seconds of stream time.
    pub(crate) lag_s: f64,
    /// Frames waiting for their labels, with the place of each track report.
    delayed: VecDeque<(TrackedFrame, Vec<Option<Place>>)>,
    /// Fragments still referenced by a waiting frame (or next to one).
    fragments: HashMap<u64, FragmentInfo>,
    /// Each track's current fragment.
    track_fragment: HashMap<u64, u64>,
    /// The identifier's latest regrouping: the individual of each fragment it covered
    /// (`None`: no one's).
    regrouped: HashMap<u64, Option<String>>,
    /// Each track's sightings (stream time of the crop, individual it looked like), oldest
    /// first.
    sightings: HashMap<u64, VecDeque<(f64, String)>>,
}

impl LabelDelay {
    /// A delay of `lag_s` seconds (0: frames pass at once).
    pub(crate) fn new(lag_s: f64) -> LabelDelay {
        LabelDelay {
            lag_s,
            ..Default::default()
        }
    }

    /// Adds `tf`, whose track reports stand at `places` (same order), and returns the frames
    /// whose wait is over, oldest first.
    pub(crate) fn push(
        &mut self,
        tf: TrackedFrame,
        places: Vec<Option<Place>>,
    ) -> Vec<TrackedFrame> {
        // Time went backwards (a restarted stream): what waits belongs to the old timeline.
        let restarted = self.delayed.back().is_some_and(|(b, _)| tf.t < b.t);
        let mut out = if restarted { self.flush() } else { Vec::new() };
        for (tr, p) in tf.tracks.iter().zip(&places) {
            let Some(p) = p else { continue };
            let info = self.fragments.entry(p.fragment).or_default();
            info.track = tr.track;
            if let Some(l) = &tr.individual {
                info.label = Some((l.clone(), tf.t));
            }
            info.end = tf.t;
            if p.uncertain {
                info.tail_start.get_or_insert(tf.t);
            } else {
                info.tail_start = None;
            }
            if let Some(prev) = self.track_fragment.insert(tr.track, p.fragment)
                && prev != p.fragment
                && let Some(pi) = self.fragments.get_mut(&prev)
            {
                pi.next = Some(p.fragment);
            }
        }
        let now = tf.t;
        self.delayed.push_back((tf, places));
        while let Some((front, _)) = self.delayed.front() {
            let due = now - front.t >= self.lag_s || self.delayed.len() > MAX_DELAYED;
            if !due {
                break;
            }
            if let Some(f) = self.pop() {
                out.push(f);
            }
        }
        out
    }

    /// Stream time of the newest waiting frame.
    pub(crate) fn last_t(&self) -> Option<f64> {
        self.delayed.back().map(|(tf, _)| tf.t)
    }

    /// Takes a crop's evidence of the individual its track followed when it was cut.
    pub(crate) fn sighting(&mut self, s: Sighting) {
        let seen = self.sightings.entry(s.track).or_default();
        if seen.len() >= MAX_SIGHTINGS_PER_TRACK {
            seen.pop_front();
        }
        seen.push_back((s.t, s.individual));
    }

    /// Takes the identifier's latest regrouping (fragment → individual) for the waiting frames.
    pub(crate) fn regrouped(&mut self, names: HashMap<u64, Option<String>>) {
        self.regrouped = names;
    }

    /// The individual that names `fragment`'s rows, with the stream time it was held: the
    /// regrouping's when one covered the fragment, else the latest online one.
    fn name(&self, fragment: u64) -> Option<(&str, f64)> {
        let info = self.fragments.get(&fragment)?;
        match self.regrouped.get(&fragment) {
            Some(r) => r.as_deref().map(|l| (l, info.end)),
            None => info.label.as_ref().map(|(l, t)| (l.as_str(), *t)),
        }
    }

    /// Every waiting frame, labelled as far as known (end of stream, shutdown).
    pub(crate) fn flush(&mut self) -> Vec<TrackedFrame> {
        let mut out = Vec::with_capacity(self.delayed.len());
        while let Some(f) = self.pop() {
            out.push(f);
        }
        out
    }

    /// The fragment whose individual names a report at `place` in the frame at `t`: its own,
    /// or, after the swap time of the uncertain stretch that ended it
    /// ([`LabelDelay::swap_time`]), the next one's.
    fn labelling_fragment(&self, place: Place, t: f64) -> u64 {
        let Some(info) = self.fragments.get(&place.fragment) else {
            return place.fragment;
        };
        match (place.uncertain, info.tail_start, info.next) {
            (true, Some(start), Some(next))
                if self.name(next).is_some()
                    && t > self.swap_time(place.fragment, info, start, next) =>
            {
                next
            }
            _ => place.fragment,
        }
    }

    /// Where in the uncertain stretch from `start` that ended `fragment` (`info`) its track
    /// most likely swapped fish: rows after it take the `next` fragment's individual. The
    /// track's sightings in the stretch that name either fragment's individual vote (one
    /// before the swap for the fragment's, one after it for the next one's); the swap goes
    /// where most agree, as near to [`SWAP_SPLIT`] of the stretch as they allow, which is
    /// also where it goes without such sightings. On three sets of 20 simulated tanks, taken
    /// from the same runs' crops, this labelled 0.12 / 0.13 / 0.16 % more rows right than the
    /// fixed split (BENCHMARKS.md round 22).
    fn swap_time(&self, fragment: u64, info: &FragmentInfo, start: f64, next: u64) -> f64 {
        let default = start + SWAP_SPLIT * (info.end - start);
        let (Some((own, _)), Some((after, _))) = (self.name(fragment), self.name(next)) else {
            return default;
        };
        if own == after {
            return default;
        }
        // (time, names the next fragment's individual)
        let votes: Vec<(f64, bool)> = self
            .sightings
            .get(&info.track)
            .into_iter()
            .flatten()
            .filter(|(ts, _)| (start..=info.end).contains(ts))
            .filter_map(|(ts, i)| {
                if i == own {
                    Some((*ts, false))
                } else if i == after {
                    Some((*ts, true))
                } else {
                    None
                }
            })
            .collect();
        if votes.is_empty() {
            return default;
        }
        // Rows (and sightings) later than the swap time are the next fragment's fish.
        let agree = |s: f64| votes.iter().filter(|&&(ts, next)| (ts > s) == next).count();
        let mut best = (agree(default), 0.0, default);
        for &(ts, _) in &votes {
            // Just before a sighting (it counts for the next fragment) or at it (for this one).
            for s in [ts - 1e-6, ts] {
                let cand = (agree(s), -(s - default).abs(), s);
                if cand.0 > best.0 || (cand.0 == best.0 && cand.1 > best.1) {
                    best = cand;
                }
            }
        }
        best.2
    }

    fn pop(&mut self) -> Option<TrackedFrame> {
        let (mut tf, places) = self.delayed.pop_front()?;
        let labelling: Vec<Option<u64>> = places
            .iter()
            .map(|p| Some(self.labelling_fragment((*p)?, tf.t)))
            .collect();
        let latest: Vec<Option<(&str, f64)>> = labelling.iter().map(|f| self.name((*f)?)).collect();
        // Rows the regrouping covered take its answer, even "no one's".
        let regrouped: Vec<bool> = labelling
            .iter()
            .map(|f| {
                f.is_some_and(|f| {
                    self.fragments.contains_key(&f) && self.regrouped.contains_key(&f)
                })
            })
            .collect();
        // A fragment's latest individual, unless another fragment of this frame held it later
        // (ties: the first track keeps it).
        let wins = |i: usize| {
            latest[i].is_some_and(|(l, held)| {
                !latest.iter().enumerate().any(|(j, o)| {
                    j != i
                        && o.is_some_and(|(lo, ho)| lo == l && (ho > held || (ho == held && j < i)))
                })
            })
        };
        let won: Vec<bool> = (0..latest.len()).map(wins).collect();
        let mut used: HashSet<String> = latest
            .iter()
            .zip(&won)
            .filter(|&(_, &w)| w)
            .filter_map(|(l, _)| l.map(|(l, _)| l.to_string()))
            .collect();
        for (i, tr) in tf.tracks.iter_mut().enumerate() {
            if won[i] {
                tr.individual = latest[i].map(|(l, _)| l.to_string());
            } else if regrouped[i] {
                tr.individual = None;
            } else if let Some(own) = tr.individual.take() {
                // The frame's own label, when no fragment's latest individual took it.
                if used.insert(own.clone()) {
                    tr.individual = Some(own);
                }
            }
        }
        // Forget fragments no waiting frame refers to any more (keeping their successors and
        // every track's current fragment).
        if self.delayed.is_empty() {
            self.fragments.clear();
            self.track_fragment.clear();
            self.sightings.clear();
        } else if self.fragments.len() > 64 {
            let mut live: HashSet<u64> = self
                .delayed
                .iter()
                .flat_map(|(_, ps)| ps.iter().flatten().map(|p| p.fragment))
                .collect();
            live.extend(self.track_fragment.values().copied());
            let next: Vec<u64> = live
                .iter()
                .filter_map(|f| self.fragments.get(f)?.next)
                .collect();
            live.extend(next);
            self.fragments.retain(|f, _| live.contains(f));
            // Sightings older than every stretch still to be labelled vote no more.
            let oldest = self
                .fragments
                .values()
                .filter_map(|i| i.tail_start)
                .chain(self.delayed.front().map(|(tf, _)| tf.t))
                .fold(f64::INFINITY, f64::min);
            for seen in self.sightings.values_mut() {
                while seen.front().is_some_and(|(ts, _)| *ts < oldest) {
                    seen.pop_front();
                }
            }
            let tracks: HashSet<u64> = self
                .delayed
                .iter()
                .flat_map(|(tf, _)| tf.tracks.iter().map(|tr| tr.track))
                .collect();
            self.track_fragment.retain(|t, _| tracks.contains(t));
            self.sightings
                .retain(|t, seen| tracks.contains(t) && !seen.is_empty());
        }
        Some(tf)
    }
}

/// Most frames held back for labelling, whatever the lag (bounds memory on a stream whose
/// timestamps stall).
const MAX_DELAYED: usize = 4096;

impl IdentityStep {
    /// The step of one camera: its identifier, its queue to the encoder, how often the
    /// identity state is saved, `[identity] label_lag_s` and `crops_dir`.
    pub(crate) fn new(
        identifier: Identifier,
        queue: EmbedQueue<Request>,
        save_every: Duration,
        label_lag_s: f64,
        crops_dir: Option<PathBuf>,
    ) -> IdentityStep {
        IdentityStep {
            identifier,
            queue,
            save_every,
            last_save: Instant::now(),
            failures: 0,
            occluded_at: HashMap::new(),
            labels: LabelDelay::new(label_lag_s),
            crops_dir,
            live_tracks: HashSet::new(),
            axis_per_length: None,
        }
    }

    /// Fills `individual` in `tracks` for one frame. `cut` cuts an encoder crop (`None`: no
    /// crops on this camera); it is called only for the tracks chosen for an embedding.
    pub(crate) fn process(
        &mut self,
        camera: &str,
        t: f64,
        tracks: &mut [TrackReport],
        detections: &[Detection],
        cut: &dyn Fn(&CropPlace) -> Option<Crop>,
        metrics: &Metrics,
    ) {
        let wanted = self.identifier.wants_embedding(t, tracks, detections);
        // A detection matched by several tracks (touching fish the tracker divided) shows
        // more than one fish: its own crop is never embedded, and it counts as contact. The
        // identifier may ask for crops cut at each of its tracks' places instead.
        let shared = |di: usize| tracks.iter().filter(|tr| tr.detection == Some(di)).count() >= 2;
        for (di, d) in detections.iter().enumerate() {
            let ratio = d.major_axis / d.length;
            if d.fish_count == 1
                && d.length > 0.0
                && ratio.is_finite()
                && ratio > 0.0
                && !shared(di)
            {
                let a = self.axis_per_length.get_or_insert(ratio);
                *a += AXIS_PER_LENGTH_RATE * (ratio - *a);
            }
        }
        let mut ids: Vec<(u64, f32, Option<usize>)> = Vec::with_capacity(wanted.len());
        let mut crops: Vec<Crop> = Vec::with_capacity(wanted.len());
        for i in wanted {
            let Some(tr) = tracks.get(i) else { continue };
            let Some(di) = tr.detection else { continue };
            let Some(det) = detections.get(di) else {
                continue;
            };
            let (place, quality, group) = if shared(di) {
                let place = self
                    .axis_per_length
                    .and_then(|a| CropPlace::of_track(tr, SHARED_CROP_SCALE * a));
                (place, SHARED_CROP_QUALITY, Some(di))
            } else {
                (CropPlace::of_detection(det), crop_quality(det), None)
            };
            if let Some(c) = place.and_then(|p| cut(&p)) {
                if let Some(dir) = self.crops_dir.clone() {
                    self.write_crop(&dir, camera, t, tr.track, &c);
                }
                ids.push((tr.track, quality, group));
                crops.push(c);
            }
        }
        self.occluded_at
            .retain(|track, _| tracks.iter().any(|tr| tr.track == *track));
        for tr in tracks.iter() {
            if tr.detection.is_some_and(|di| {
                shared(di) || detections.get(di).is_some_and(|d| d.fish_count >= 2)
            }) {
                self.occluded_at.insert(tr.track, t);
            }
        }
        let t0 = Instant::now();
        if let Err(e) = self.queue.submit((t, ids), crops) {
            self.failed(camera, &e);
        }
        self.live_tracks.clear();
        self.live_tracks.extend(tracks.iter().map(|tr| tr.track));
        let done = self.queue.next_frame();
        self.take_embeddings(camera, done, metrics);
        metrics.observe_latency(camera, "embed", t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        self.identifier.assign(t, tracks);
        metrics.observe_latency(camera, "identify", t0.elapsed().as_secs_f64());
        metrics.set_individuals_present(camera, self.identifier.present(t) as u64);
        if let Some(a) = self.identifier.alike_similarity() {
            metrics.set_identity_alike(camera, f64::from(a));
        }
        if self.last_save.elapsed() >= self.save_every {
            self.last_save = Instant::now();
            if let Err(e) = self.identifier.save() {
                tracing::error!(camera, "cannot save identity state (will retry): {e}");
            }
        }
    }

    /// Feeds finished embedding requests to the identifier. A track that ended, or touched
    /// another fish, since its crop was cut may not be that fish any more: its embedding is
    /// dropped. Crops cut at the tracks' places in one shared blob go to the identifier
    /// together, for the tracks still there.
    fn take_embeddings(&mut self, camera: &str, done: Vec<Done<Request>>, metrics: &Metrics) {
        for done in done {
            let (t_crop, ids) = done.tag;
            match done.result {
                Ok(embs) => {
                    metrics.inc_embeddings(camera, embs.len() as u64);
                    let mut blobs: Vec<SharedBlobCrops> = Vec::new();
                    for ((track, quality, group), e) in ids.iter().zip(&embs) {
                        let live = self.live_tracks.contains(track);
                        match group {
                            Some(di) if live => match blobs.iter_mut().find(|(d, _)| d == di) {
                                Some((_, crops)) => crops.push((*track, e)),
                                None => blobs.push((*di, vec![(*track, e.as_slice())])),
                            },
                            Some(_) => {}
                            None => {
                                let touched =
                                    self.occluded_at.get(track).is_some_and(|&o| o >= t_crop);
                                if live && !touched {
                                    self.identifier.observe(t_crop, *track, e, *quality);
                                }
                            }
                        }
                    }
                    for (_, crops) in &blobs {
                        self.identifier
                            .observe_shared(t_crop, crops, SHARED_CROP_QUALITY);
                    }
                }
                Err(e) => self.failed(camera, &e),
            }
        }
    }

    /// Writes one encoder crop to `dir` (`[identity] crops_dir`, created by the pipeline at
    /// start); a failure is logged once and the folder dropped (diagnostics never stop
    /// tracking).
    fn write_crop(&mut self, dir: &Path, camera: &str, t: f64, track: u64, c: &Crop) {
        let path = dir.join(format!("{camera}_{t:.4}_{track}.png"));
        let saved = image::RgbImage::from_raw(c.width, c.height, c.rgb.clone())
            .ok_or_else(|| "crop buffer does not match its size".to_string())
            .and_then(|img| img.save(&path).map_err(|e| e.to_string()));
        if let Err(e) = saved {
            tracing::warn!(camera, path = %path.display(), "cannot write encoder crop ({e}); no more crops are written");
            self.crops_dir = None;
        }
    }

    /// Holds `tf` back for `label_lag_s` of stream time (see [`LabelDelay`]); returns the
    /// frames whose wait is over.
    pub(crate) fn delay(&mut self, tf: TrackedFrame) -> Vec<TrackedFrame> {
        self.take_labelling_evidence();
        let places = tf
            .tracks
            .iter()
            .map(|tr| {
                Some(Place {
                    fragment: self.identifier.fragment_of(tr.track)?,
                    uncertain: tr.detection.is_none() || self.identifier.in_contact(tr.track),
                })
            })
            .collect();
        self.labels.push(tf, places)
    }

    /// Every waiting frame (end of stream, shutdown), labelled after one last regrouping that
    /// also takes the embeddings still in flight (a recording's last `[embed] lag_frames`).
    pub(crate) fn flush(&mut self, camera: &str, metrics: &Metrics) -> Vec<TrackedFrame> {
        let done = self.queue.drain();
        self.take_embeddings(camera, done, metrics);
        if let Some(t) = self.labels.last_t() {
            self.identifier.finish(t);
        }
        self.take_labelling_evidence();
        self.labels.flush()
    }

    /// Hands the identifier's latest regrouping and sightings to the label delay.
    fn take_labelling_evidence(&mut self) {
        if let Some(names) = self.identifier.take_regrouped() {
            self.labels.regrouped(names);
        }
        for s in self.identifier.take_sightings() {
            self.labels.sighting(s);
        }
    }

    /// Identity degrades (tracks keep their last individual); tracking goes on.
    fn failed(&mut self, camera: &str, e: &crate::embed::EmbedError) {
        self.failures += 1;
        if self.failures == 1 || self.failures.is_power_of_two() {
            tracing::error!(camera, failures = self.failures, "embedding failed: {e}");
        }
    }

    /// Saves the state one last time (shutdown).
    pub(crate) fn close(&self, camera: &str) {
        if let Err(e) = self.identifier.save() {
            tracing::error!(camera, "cannot save identity state at shutdown: {e}");
        }
    }
}

/// A camera's identity step after a frame: the identifier's memory, the frames waiting for
/// their labels and the embedding requests in flight with their results. Kept with a
/// recording's checkpoint when a run stops ([`crate::messages::ResumeState`]), so that the run
/// resuming it writes the waiting frames and names the fish as an uninterrupted run would.
/// Opaque to the other stages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityState {
    identifier: IdentifierState,
    labels: LabelDelay,
    queue: Settled<Request>,
    occluded_at: HashMap<u64, f64>,
    live_tracks: HashSet<u64>,
    axis_per_length: Option<f32>,
    failures: u64,
}

/// Two states are equal when they serialise alike (their maps compared by key, not by hash
/// order): for checkpoints compared whole.
impl PartialEq for IdentityState {
    fn eq(&self, other: &Self) -> bool {
        matches!(
            (serde_json::to_value(self), serde_json::to_value(other)),
            (Ok(a), Ok(b)) if a == b
        )
    }
}

impl IdentityStep {
    /// The step after the last frame (see [`IdentityState`]), before [`IdentityStep::flush`];
    /// waits for the embedding requests in flight (they stay in flight).
    pub(crate) fn state(&mut self) -> IdentityState {
        IdentityState {
            identifier: self.identifier.state(),
            labels: self.labels.clone(),
            queue: self.queue.settle(),
            occluded_at: self.occluded_at.clone(),
            live_tracks: self.live_tracks.clone(),
            axis_per_length: self.axis_per_length,
            failures: self.failures,
        }
    }

    /// Records the tank's state file as the run's last save left it (call after
    /// [`IdentityStep::close`]).
    pub(crate) fn stamp_saved_file(&self, state: &mut IdentityState) {
        self.identifier.stamp_saved_file(&mut state.identifier);
    }

    /// Takes up the step a previous run on the same recording had after the frame this run
    /// starts behind; before the first frame. Refused, with the reason, as
    /// [`Identifier::restore`] refuses; nothing changes then. The label delay keeps this run's
    /// `label_lag_s`.
    pub(crate) fn restore(&mut self, s: IdentityState) -> Result<(), String> {
        self.identifier.restore(s.identifier)?;
        let lag_s = self.labels.lag_s;
        self.labels = s.labels;
        self.labels.lag_s = lag_s;
        self.queue.restore(s.queue);
        self.occluded_at = s.occluded_at;
        self.live_tracks = s.live_tracks;
        self.axis_per_length = s.axis_per_length;
        self.failures = s.failures;
        Ok(())
    }
}

/// How usable a crop is for identity, from the blob's elongation: a fish seen broadside is
/// long and thin (quality 1 from 3:1), a fish turning towards or away from the camera is
/// foreshortened and shows little pattern (quality 0 at 1.5:1 and below).
fn crop_quality(det: &Detection) -> f32 {
    if !(det.minor_axis.is_finite() && det.major_axis.is_finite() && det.minor_axis > 0.0) {
        return 0.0;
    }
    ((det.major_axis / det.minor_axis - 1.5) / 1.5).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(major: f32, minor: f32) -> Detection {
        Detection {
            x: 0.0,
            y: 0.0,
            bbox: [0.0; 4],
            area: 0.0,
            axis_angle: 0.0,
            major_axis: major,
            length: 0.0,
            minor_axis: minor,
            fish_count: 1,
            crop: None,
            points: Vec::new(),
        }
    }

    fn frame(t: f64, tracks: &[(u64, Option<&str>)]) -> TrackedFrame {
        TrackedFrame {
            camera: "cam".into(),
            index: (t * 10.0) as u64,
            t,
            captured: std::time::SystemTime::UNIX_EPOCH,
            width: 10,
            height: 10,
            visible_fish: tracks.len() as u32,
            tracks: tracks
                .iter()
                .map(|&(track, ind)| TrackReport {
                    track,
                    individual: ind.map(str::to_string),
                    status: crate::messages::TrackStatus::Confirmed,
                    x: 0.0,
                    y: 0.0,
                    bbox: [0.0; 4],
                    heading: 0.0,
                    area: 1.0,
                    detection: None,
                    body_length: 1.0,
                    fish_area: 0.0,
                })
                .collect(),
        }
    }

    /// Issue 5: the embeddings still in flight when a recording ends (its last
    /// `[embed] lag_frames`) reach the identifier before the last regrouping instead of being
    /// lost.
    #[test]
    fn the_end_of_a_stream_takes_the_embeddings_still_in_flight() {
        use crate::embed::{Collect, fixture_service};
        let svc = fixture_service();
        let identifier = Identifier::build(
            &crate::identify::IdentityConfig::default(),
            "tank",
            None,
            svc.card(),
        )
        .expect("identifier");
        let mut step = IdentityStep::new(
            identifier,
            EmbedQueue::new(svc.client(), Collect::AfterFrames(4)),
            Duration::from_secs(3600),
            3.0,
            None,
        );
        let mut d = det(30.0, 8.0);
        d.crop = Some(Crop {
            width: 1,
            height: 1,
            rgb: vec![0; 3],
        });
        let crop = Crop {
            width: 48,
            height: 16,
            rgb: (0..48 * 16 * 3).map(|i: usize| (i % 251) as u8).collect(),
        };
        let metrics = Metrics::new();
        let mut tf = frame(0.0, &[(1, None)]);
        tf.tracks[0].detection = Some(0);
        step.process(
            "cam",
            0.0,
            &mut tf.tracks,
            &[d],
            &|_| Some(crop.clone()),
            &metrics,
        );
        assert_eq!(step.queue.in_flight(), 1, "a new track's crop was sent");
        let embeddings = |m: &Metrics| {
            m.encode()
                .lines()
                .find(|l| l.starts_with("finprint_embeddings_total{camera=\"cam\"}"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        };
        assert_eq!(embeddings(&metrics), None, "not due before 4 frames");
        step.delay(tf);
        let out = step.flush("cam", &metrics);
        assert_eq!(out.len(), 1, "the waiting frame is written");
        assert_eq!(step.queue.in_flight(), 0);
        assert_eq!(
            embeddings(&metrics),
            Some(1.0),
            "taken at the end of the stream"
        );
        drop(step);
        svc.shutdown();
    }

    /// A certain place in fragment `f`.
    fn at(f: u64) -> Option<Place> {
        Some(Place {
            fragment: f,
            uncertain: false,
        })
    }

    fn labels(tf: &TrackedFrame) -> Vec<Option<String>> {
        tf.tracks.iter().map(|t| t.individual.clone()).collect()
    }

    #[test]
    fn delayed_frames_take_their_fragments_latest_individual() {
        let mut d = LabelDelay::new(1.0);
        // Track 1: fragment 10 unlabelled, then labelled "a" at t=0.5; fragment 11 from t=0.7
        // labelled "b" (a swap after a contact).
        let mut out = Vec::new();
        out.extend(d.push(frame(0.0, &[(1, None)]), vec![at(10)]));
        out.extend(d.push(frame(0.2, &[(1, Some("b"))]), vec![at(10)]));
        assert!(out.is_empty(), "frames left before their lag");
        out.extend(d.push(frame(0.5, &[(1, Some("a"))]), vec![at(10)]));
        out.extend(d.push(frame(0.7, &[(1, Some("b"))]), vec![at(11)]));
        out.extend(d.push(frame(1.1, &[(1, Some("b"))]), vec![at(11)]));
        // t=0.0 and t=0.2 are due (1.1 − t ≥ 1): fragment 10's latest label is "a".
        assert_eq!(out.len(), 1);
        assert_eq!(labels(&out[0]), vec![Some("a".to_string())]);
        out.extend(d.push(frame(1.2, &[(1, None)]), vec![None]));
        assert_eq!(out.len(), 2);
        assert_eq!(labels(&out[1]), vec![Some("a".to_string())]);
        let rest = d.flush();
        let got: Vec<_> = rest.iter().map(labels).collect();
        assert_eq!(
            got,
            vec![
                vec![Some("a".to_string())],
                vec![Some("b".to_string())],
                vec![Some("b".to_string())],
                // No fragment: the frame's own label stays.
                vec![None],
            ]
        );
        assert!(d.flush().is_empty());
    }

    /// Issue 5 (BENCHMARKS.md round 16): with the default `label_lag_s`, a fragment whose
    /// individual settles 6 s after it began (a fish long unrecognised after a tangle) is
    /// written with that individual from its first frame; with the former 3 s its first rows
    /// went out unlabelled.
    #[test]
    fn by_default_evidence_six_seconds_late_still_names_a_fragment_from_its_start() {
        let lag = crate::identify::IdentityConfig::default().label_lag_s;
        let mut d = LabelDelay::new(lag);
        let mut out = Vec::new();
        for k in 0..=80 {
            let t = f64::from(k) * 0.1;
            let label = (t >= 6.0).then_some("a");
            out.extend(d.push(frame(t, &[(1, label)]), vec![at(10)]));
        }
        out.extend(d.flush());
        assert_eq!(out.len(), 81);
        let unlabelled: Vec<f64> = out
            .iter()
            .filter(|f| labels(f)[0].is_none())
            .map(|f| f.t)
            .collect();
        assert!(
            unlabelled.is_empty(),
            "written unlabelled at {unlabelled:?}"
        );
    }

    #[test]
    fn the_end_of_a_contact_takes_the_next_fragments_individual() {
        let mut d = LabelDelay::new(10.0);
        let place = |f: u64, uncertain: bool| {
            vec![Some(Place {
                fragment: f,
                uncertain,
            })]
        };
        // Track 1, fragment 10: "a"; a contact at 0.1-0.2 that ends without a new fragment
        // (certain again at 0.3), then the contact 0.4-0.7 that ends the fragment; fragment
        // 11 from 0.8 is "b" (the tracker swapped fish somewhere in the contact).
        // Track 2, fragment 20: "c", ends in a coast at 0.4-0.5; fragment 21 has no individual.
        for (k, t) in [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
            .into_iter()
            .enumerate()
        {
            let uncertain = (1..=2).contains(&k) || k >= 4;
            d.push(frame(t, &[(1, Some("a"))]), place(10, uncertain));
        }
        d.push(frame(0.8, &[(1, Some("b"))]), place(11, false));
        d.push(frame(0.9, &[(2, Some("c"))]), place(20, false));
        d.push(frame(1.0, &[(2, Some("c"))]), place(20, true));
        d.push(frame(1.1, &[(2, Some("c"))]), place(20, true));
        d.push(frame(1.2, &[(2, None)]), place(21, false));
        let got: Vec<Option<String>> = d.flush().iter().map(|f| labels(f)[0].clone()).collect();
        let s = |v: &str| Some(v.to_string());
        let want = [
            // The first contact is not the last; then the first 70 % of the last contact
            // (0.4-0.7: up to 0.61).
            vec![s("a"); 7],
            // The rest of it, and fragment 11.
            vec![s("b"); 2],
            // Fragment 20 and its coast: the next fragment has no individual.
            vec![s("c"); 3],
            vec![None],
        ]
        .concat();
        assert_eq!(got, want);
    }

    /// Issue 5: crops cut inside the contact that ended a fragment place the track's swap:
    /// rows after a sighting of the next fragment's individual take it, rows up to a sighting
    /// of the fragment's own keep that one; sightings of a third individual, or of another
    /// track, change nothing (the split stays at 70 % of the contact).
    #[test]
    fn sightings_in_the_contact_that_ended_a_fragment_place_the_swap() {
        let s = |v: &str| Some(v.to_string());
        let run = |sightings: &[(u64, f64, &str)]| -> Vec<Option<String>> {
            let mut d = LabelDelay::new(10.0);
            for &(track, t, individual) in sightings {
                d.sighting(Sighting {
                    track,
                    t,
                    individual: individual.to_string(),
                });
            }
            // Track 1, fragment 10 "a": certain at t = 0.0, in contact from 0.1 to 1.0; then
            // fragment 11 "b".
            for k in 0..=10 {
                let t = f64::from(k) * 0.1;
                let place = Some(Place {
                    fragment: 10,
                    uncertain: k >= 1,
                });
                d.push(frame(t, &[(1, Some("a"))]), vec![place]);
            }
            d.push(frame(1.1, &[(1, Some("b"))]), vec![at(11)]);
            d.flush().iter().map(|f| labels(f)[0].clone()).collect()
        };
        let split = |a: usize| [vec![s("a"); a], vec![s("b"); 12 - a]].concat();
        // No sightings: up to 0.1 + 0.7 × 0.9 = 0.73.
        assert_eq!(run(&[]), split(8));
        assert_eq!(run(&[(1, 0.5, "c"), (2, 0.3, "b")]), split(8));
        // The next fragment's fish seen at 0.3: the swap came before it.
        assert_eq!(run(&[(1, 0.3, "b")]), split(3));
        // The fragment's own fish still seen at 0.9: the swap came after it.
        assert_eq!(run(&[(1, 0.9, "a")]), split(10));
        // Both, in that order: between them (all agree), as near to 70 % as they allow.
        assert_eq!(
            run(&[(1, 0.2, "a"), (1, 0.4, "b"), (1, 0.6, "b")]),
            split(4)
        );
        // Disagreeing: where most agree (two sightings of "b" outvote a later "a").
        assert_eq!(
            run(&[(1, 0.2, "b"), (1, 0.3, "b"), (1, 0.5, "a")]),
            split(2)
        );
    }

    #[test]
    fn a_frame_never_names_one_individual_twice() {
        let mut d = LabelDelay::new(10.0);
        // Fragment 10 (track 1) holds "a" until t=0.5; from t=0.6 fragment 20 (track 2) holds
        // it, and track 1 (fragment 11 now) is "b". Track 3's fragment 30 went from "c" to "b"
        // at t=0.4 (and left the view).
        d.push(
            frame(0.0, &[(1, Some("a")), (2, Some("d")), (3, Some("c"))]),
            vec![at(10), at(20), at(30)],
        );
        d.push(frame(0.4, &[(3, Some("b"))]), vec![at(30)]);
        d.push(
            frame(0.5, &[(1, Some("a")), (2, None)]),
            vec![at(10), at(20)],
        );
        d.push(
            frame(0.6, &[(1, Some("b")), (2, Some("a"))]),
            vec![at(11), at(20)],
        );
        let out = d.flush();
        let s = |v: &str| Some(v.to_string());
        // t=0: fragment 20 held "a" last; track 1's own "a" is taken, so it has none. Track 3
        // takes fragment 30's "b" (fragment 11, which held "b" later, is not in this frame).
        assert_eq!(labels(&out[0]), vec![None, s("a"), s("b")]);
        assert_eq!(labels(&out[2]), vec![None, s("a")]);
        // t=0.6: one track per individual.
        assert_eq!(labels(&out[3]), vec![s("b"), s("a")]);
        for f in &out {
            let mut seen = HashSet::new();
            for l in labels(f).into_iter().flatten() {
                assert!(seen.insert(l.clone()), "frame {} names {l} twice", f.t);
            }
        }
    }

    #[test]
    fn the_regrouping_names_the_rows_it_covered() {
        let mut d = LabelDelay::new(10.0);
        let s = |v: &str| Some(v.to_string());
        // Online: fragment 10 "a", fragment 20 "b", fragment 30 "c".
        d.push(
            frame(0.0, &[(1, Some("a")), (2, Some("b")), (3, Some("c"))]),
            vec![at(10), at(20), at(30)],
        );
        // The regrouping says fragment 10 is "b", fragment 20 no one's, and does not cover 30.
        d.regrouped(HashMap::from([(10, s("b")), (20, None)]));
        // Fragment 40 begins after the regrouping, which covered it already (the identifier
        // regroups before the frame is delayed): "d".
        d.regrouped(HashMap::from([(10, s("b")), (20, None), (40, s("d"))]));
        d.push(frame(0.1, &[(4, Some("x"))]), vec![at(40)]);
        let out = d.flush();
        assert_eq!(labels(&out[0]), vec![s("b"), None, s("c")]);
        assert_eq!(labels(&out[1]), vec![s("d")]);
    }

    #[test]
    fn no_lag_passes_frames_at_once_and_a_restarted_stream_flushes() {
        let mut d = LabelDelay::new(0.0);
        assert_eq!(d.push(frame(5.0, &[(1, Some("a"))]), vec![at(1)]).len(), 1);
        let mut d = LabelDelay::new(10.0);
        assert!(
            d.push(frame(5.0, &[(1, Some("a"))]), vec![at(1)])
                .is_empty()
        );
        assert!(
            d.push(frame(6.0, &[(1, Some("a"))]), vec![at(1)])
                .is_empty()
        );
        // Time went backwards: the old timeline's frames come out, in order.
        let out = d.push(frame(0.0, &[(2, None)]), vec![at(2)]);
        assert_eq!(out.iter().map(|f| f.t).collect::<Vec<_>>(), vec![5.0, 6.0]);
        assert_eq!(d.flush().len(), 1);
    }

    #[test]
    fn a_tracks_crop_place_lies_along_its_body_whichever_way_it_swims() {
        use std::f32::consts::{FRAC_PI_2, FRAC_PI_4, PI};
        let tr = |heading: f32| TrackReport {
            track: 1,
            individual: None,
            status: crate::messages::TrackStatus::Confirmed,
            x: 10.0,
            y: 20.0,
            bbox: [0.0; 4],
            heading,
            area: 1.0,
            detection: Some(0),
            body_length: 50.0,
            fish_area: 0.0,
        };
        let axis = |h: f32| CropPlace::of_track(&tr(h), 0.8).expect("place").axis_angle;
        // Right or left: a horizontal axis (the crop is never mirrored).
        assert!(axis(0.0).abs() < 1e-6);
        assert!(axis(PI).abs() < 1e-6 && axis(-PI).abs() < 1e-6);
        // Down-left and up-right lie on one axis, as a detection's angle in (-π/2, π/2].
        assert!((axis(3.0 * FRAC_PI_4) + FRAC_PI_4).abs() < 1e-5);
        assert!((axis(-FRAC_PI_4) + FRAC_PI_4).abs() < 1e-5);
        assert!((axis(FRAC_PI_2) - FRAC_PI_2).abs() < 1e-5);
        assert!((axis(-FRAC_PI_2) - FRAC_PI_2).abs() < 1e-5);
        let p = CropPlace::of_track(&tr(0.0), 0.8).expect("place");
        assert_eq!((p.x, p.y, p.major_axis), (10.0, 20.0, 40.0));
        assert_eq!(CropPlace::of_track(&tr(f32::NAN), 0.8), None);
        assert_eq!(CropPlace::of_track(&tr(0.0), 0.0), None);
    }

    #[test]
    fn broadside_fish_are_good_crops_and_foreshortened_ones_are_not() {
        assert_eq!(crop_quality(&det(120.0, 30.0)), 1.0);
        assert_eq!(crop_quality(&det(40.0, 30.0)), 0.0);
        let mid = crop_quality(&det(67.5, 30.0));
        assert!((mid - 0.5).abs() < 1e-6, "{mid}");
        assert_eq!(crop_quality(&det(50.0, 0.0)), 0.0);
        assert_eq!(crop_quality(&det(f32::NAN, 10.0)), 0.0);
    }
}

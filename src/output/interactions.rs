//! The interaction rule: when do two fish count as "interacting"?
//!
//! A pure, reusable state machine ([`InteractionDetector`]) shared by the live interaction log
//! (see [`crate::output::Sinks`]) and the simulator's ground truth (`src/synth/`), so that both
//! produce events by exactly the same rule. It must never do I/O, read clocks or depend on
//! tracking internals: it sees only `(id, x, y, body_length)` per fish per frame.
//!
//! # Rule
//!
//! For every unordered pair of fish ids `(a, b)` with `a < b` (string order) present in a frame,
//! the distance between body centres is measured in the rule's [`DistanceUnit`]:
//!
//! - `px`: Euclidean distance in pixels;
//! - `mm`: pixel distance × `mm_per_px` (the rule must carry a scale);
//! - `body_lengths`: pixel distance ÷ the mean of the two fish's body lengths (px). A pair
//!   whose body lengths are not both positive and finite is treated as "not close" that frame.
//!
//! The pair is *close* in a frame when that distance is `≤ distance`. An episode opens at the
//! first close frame and stays open while the pair keeps being close; frames in which the pair
//! is not close (or one of the fish is missing) do not end it as long as the time since the
//! last close frame is `≤ max_gap_s` ("brief separations"). It ends at the first update whose
//! time is more than `max_gap_s` after the last close frame, or at [`InteractionDetector::finish`].
//!
//! An ended episode becomes an [`InteractionEvent`] when `end − start ≥ min_duration_s`, where
//! `start` is the time of the first close frame and `end` the time of the last close frame
//! (so at 25 fps, 50 consecutive close frames span 1.96 s). `min_distance` and
//! `mean_distance` are taken over the close frames only, in the rule's unit.
//!
//! Events come out sorted by `(end, a, b)`; ids are compared as strings, so callers that mix
//! individual names and `track:<id>` fallbacks get stable pairs.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Unit in which the interaction distance (and the reported distances) are expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistanceUnit {
    /// Pixels of the camera image.
    #[default]
    Px,
    /// Millimetres (needs the camera's `mm_per_px`).
    Mm,
    /// Multiples of the mean body length of the two fish.
    BodyLengths,
}

impl DistanceUnit {
    /// The config/CSV spelling: `px`, `mm` or `body_lengths`.
    pub fn as_str(self) -> &'static str {
        match self {
            DistanceUnit::Px => "px",
            DistanceUnit::Mm => "mm",
            DistanceUnit::BodyLengths => "body_lengths",
        }
    }
}

/// The parameters of the interaction rule (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InteractionRule {
    /// Two fish are close when their centre distance is `≤ distance` (in `unit`).
    pub distance: f64,
    /// Unit of `distance` and of the reported `min_distance` / `mean_distance`.
    pub unit: DistanceUnit,
    /// Scale for [`DistanceUnit::Mm`]: millimetres per pixel. Ignored for other units.
    pub mm_per_px: Option<f64>,
    /// Minimum episode length (seconds, `end − start`) to report an event.
    pub min_duration_s: f64,
    /// Longest separation (seconds since the last close frame) that does not end an episode.
    pub max_gap_s: f64,
}

impl InteractionRule {
    /// Checks the rule; returns what is wrong (field name first) when it cannot be used.
    pub fn check(&self) -> Result<(), String> {
        if !(self.distance.is_finite() && self.distance > 0.0) {
            return Err(format!(
                "distance {} must be a positive number",
                self.distance
            ));
        }
        if !(self.min_duration_s.is_finite() && self.min_duration_s >= 0.0) {
            return Err(format!(
                "min_duration_s {} must be ≥ 0 seconds",
                self.min_duration_s
            ));
        }
        if !(self.max_gap_s.is_finite() && self.max_gap_s >= 0.0) {
            return Err(format!("max_gap_s {} must be ≥ 0 seconds", self.max_gap_s));
        }
        if self.unit == DistanceUnit::Mm {
            match self.mm_per_px {
                Some(s) if s.is_finite() && s > 0.0 => {}
                _ => {
                    return Err(
                        "unit `mm` needs the camera's mm_per_px (a positive scale); set it or use `px`/`body_lengths`"
                            .to_string(),
                    );
                }
            }
        }
        Ok(())
    }

    /// Distance between two fish in the rule's unit, or `None` when it cannot be measured.
    fn measure(&self, a: &FishPos, b: &FishPos) -> Option<f64> {
        let dx = f64::from(a.x) - f64::from(b.x);
        let dy = f64::from(a.y) - f64::from(b.y);
        let d = (dx * dx + dy * dy).sqrt();
        if !d.is_finite() {
            return None;
        }
        match self.unit {
            DistanceUnit::Px => Some(d),
            DistanceUnit::Mm => self.mm_per_px.map(|s| d * s),
            DistanceUnit::BodyLengths => {
                let (la, lb) = (f64::from(a.body_len), f64::from(b.body_len));
                if la.is_finite() && lb.is_finite() && la > 0.0 && lb > 0.0 {
                    Some(d / ((la + lb) / 2.0))
                } else {
                    None
                }
            }
        }
    }
}

/// One finished interaction between fish `a` and `b` (`a < b`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InteractionEvent {
    /// Smaller id of the pair (string order).
    pub a: String,
    /// Larger id of the pair.
    pub b: String,
    /// Time (same clock as `update`'s `t`, seconds) of the first close frame.
    pub start: f64,
    /// Time of the last close frame.
    pub end: f64,
    /// `end − start`, seconds.
    pub duration: f64,
    /// Smallest distance over the close frames, in the rule's unit.
    pub min_distance: f64,
    /// Mean distance over the close frames, in the rule's unit.
    pub mean_distance: f64,
    /// Frame index of the first close frame.
    pub start_frame: u64,
    /// Frame index of the last close frame.
    pub end_frame: u64,
}

#[derive(Debug, Clone, Copy)]
struct FishPos {
    x: f32,
    y: f32,
    body_len: f32,
}

/// An episode still open (the pair close now or within `max_gap_s`), as a recording's
/// checkpoint keeps it: a run that resumes the recording continues it
/// ([`InteractionDetector::resume`]) instead of ending it at the restart and starting another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenEpisode {
    /// Smaller id of the pair (string order).
    pub a: String,
    /// Larger id of the pair.
    pub b: String,
    /// Time of the first close frame (the clock of `update`'s `t`).
    pub start: f64,
    /// Frame index of the first close frame.
    pub start_frame: u64,
    /// Time of the last close frame so far.
    pub last: f64,
    /// Frame index of the last close frame so far.
    pub last_frame: u64,
    /// Smallest distance over the close frames so far, in the rule's unit.
    pub min: f64,
    /// Sum of the distances over the close frames so far (for the mean).
    pub sum: f64,
    /// Number of close frames so far (≥ 1).
    pub n: u64,
}

impl OpenEpisode {
    /// Every number finite, the pair ordered and at least one close frame behind it.
    pub fn is_valid(&self) -> bool {
        self.a < self.b
            && self.n >= 1
            && [self.start, self.last, self.min, self.sum]
                .iter()
                .all(|v| v.is_finite())
            && self.start <= self.last
            && self.start_frame <= self.last_frame
    }
}

#[derive(Debug, Clone)]
struct Episode {
    start: f64,
    start_frame: u64,
    last: f64,
    last_frame: u64,
    min: f64,
    sum: f64,
    n: u64,
}

/// Incremental interaction detector (see the module docs for the rule).
///
/// Feed it one call of [`update`](Self::update) per frame, in time order; it returns the
/// events that ended at that frame. Call [`finish`](Self::finish) at the end of the stream.
#[derive(Debug, Clone)]
pub struct InteractionDetector {
    rule: InteractionRule,
    usable: bool,
    open: BTreeMap<(String, String), Episode>,
    last_t: Option<f64>,
}

impl InteractionDetector {
    /// A detector for `rule`. A rule that fails [`InteractionRule::check`] is logged once and
    /// the detector then reports nothing; use [`try_new`](Self::try_new) to get the error.
    pub fn new(rule: InteractionRule) -> Self {
        let usable = match rule.check() {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    "interaction rule unusable, no interaction events will be produced: {e}"
                );
                false
            }
        };
        InteractionDetector {
            rule,
            usable,
            open: BTreeMap::new(),
            last_t: None,
        }
    }

    /// A detector for `rule`, or what is wrong with the rule.
    pub fn try_new(rule: InteractionRule) -> Result<Self, String> {
        rule.check()?;
        Ok(InteractionDetector {
            rule,
            usable: true,
            open: BTreeMap::new(),
            last_t: None,
        })
    }

    /// The rule in use.
    pub fn rule(&self) -> &InteractionRule {
        &self.rule
    }

    /// Number of episodes currently open (pairs close now or within the gap tolerance).
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// The episodes open now, sorted by pair (for a checkpoint).
    pub fn open_episodes(&self) -> Vec<OpenEpisode> {
        self.open
            .iter()
            .map(|((a, b), ep)| OpenEpisode {
                a: a.clone(),
                b: b.clone(),
                start: ep.start,
                start_frame: ep.start_frame,
                last: ep.last,
                last_frame: ep.last_frame,
                min: ep.min,
                sum: ep.sum,
                n: ep.n,
            })
            .collect()
    }

    /// Continues from a checkpoint taken at time `t`: `episodes` (from
    /// [`open_episodes`](Self::open_episodes)) are open again, so a pair still close after a
    /// restart makes one event, and frames before `t` are ignored as earlier ones are. Episodes
    /// that are not [valid](OpenEpisode::is_valid) are skipped (logged); returns how many are
    /// open.
    pub fn resume(&mut self, episodes: &[OpenEpisode], t: f64) -> usize {
        if !self.usable {
            return 0;
        }
        for e in episodes {
            if !e.is_valid() || e.last > t {
                tracing::warn!(
                    a = %e.a,
                    b = %e.b,
                    "interaction episode in the checkpoint is not valid; it is not continued"
                );
                continue;
            }
            self.open.insert(
                (e.a.clone(), e.b.clone()),
                Episode {
                    start: e.start,
                    start_frame: e.start_frame,
                    last: e.last,
                    last_frame: e.last_frame,
                    min: e.min,
                    sum: e.sum,
                    n: e.n,
                },
            );
        }
        if t.is_finite() {
            self.last_t = Some(self.last_t.map_or(t, |l| l.max(t)));
        }
        self.open.len()
    }

    /// Processes one frame at time `t` (seconds) with index `frame`; `fish` holds
    /// `(id, x_px, y_px, body_length_px)` of every fish seen in that frame. Returns the events
    /// that ended (their gap exceeded `max_gap_s`), sorted by `(end, a, b)`.
    ///
    /// Frames with a non-finite time or a time earlier than the previous frame's are ignored
    /// (logged), as are fish with non-finite coordinates and duplicate ids (first one wins).
    pub fn update(
        &mut self,
        t: f64,
        frame: u64,
        fish: &[(String, f32, f32, f32)],
    ) -> Vec<InteractionEvent> {
        if !self.usable {
            return Vec::new();
        }
        if !t.is_finite() || self.last_t.is_some_and(|lt| t < lt) {
            tracing::warn!(
                t,
                frame,
                "interaction detector: frame time not increasing, frame ignored"
            );
            return Vec::new();
        }
        self.last_t = Some(t);

        // Deduplicated, valid fish, sorted by id so that pairs come out as (a < b).
        let mut seen: HashMap<&str, FishPos> = HashMap::with_capacity(fish.len());
        let mut ids: Vec<&str> = Vec::with_capacity(fish.len());
        for (id, x, y, body_len) in fish {
            if !(x.is_finite() && y.is_finite()) || seen.contains_key(id.as_str()) {
                continue;
            }
            seen.insert(
                id.as_str(),
                FishPos {
                    x: *x,
                    y: *y,
                    body_len: *body_len,
                },
            );
            ids.push(id.as_str());
        }
        ids.sort_unstable();

        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                let (pa, pb) = (seen[a], seen[b]);
                let Some(d) = self.rule.measure(&pa, &pb) else {
                    continue;
                };
                if d > self.rule.distance {
                    continue;
                }
                let key = ((*a).to_string(), (*b).to_string());
                match self.open.get_mut(&key) {
                    Some(ep) => {
                        ep.last = t;
                        ep.last_frame = frame;
                        ep.min = ep.min.min(d);
                        ep.sum += d;
                        ep.n += 1;
                    }
                    None => {
                        self.open.insert(
                            key,
                            Episode {
                                start: t,
                                start_frame: frame,
                                last: t,
                                last_frame: frame,
                                min: d,
                                sum: d,
                                n: 1,
                            },
                        );
                    }
                }
            }
        }

        let gap = self.rule.max_gap_s;
        let ended: Vec<(String, String)> = self
            .open
            .iter()
            .filter(|(_, ep)| t - ep.last > gap)
            .map(|(k, _)| k.clone())
            .collect();
        let mut events = Vec::new();
        for key in ended {
            if let Some(ep) = self.open.remove(&key) {
                events.extend(self.to_event(key, ep));
            }
        }
        sort_events(&mut events);
        events
    }

    /// Ends every open episode (end of stream) and returns those long enough, sorted by
    /// `(end, a, b)`. The detector is empty afterwards and can be reused.
    pub fn finish(&mut self) -> Vec<InteractionEvent> {
        let open = std::mem::take(&mut self.open);
        let mut events: Vec<InteractionEvent> = open
            .into_iter()
            .filter_map(|(k, ep)| self.to_event(k, ep))
            .collect();
        sort_events(&mut events);
        self.last_t = None;
        events
    }

    fn to_event(&self, (a, b): (String, String), ep: Episode) -> Option<InteractionEvent> {
        let duration = ep.last - ep.start;
        // Compare with a tiny tolerance so that 2.0 s made of 0.04 s steps is not lost to rounding.
        if duration + 1e-9 < self.rule.min_duration_s {
            return None;
        }
        Some(InteractionEvent {
            a,
            b,
            start: ep.start,
            end: ep.last,
            duration,
            min_distance: ep.min,
            mean_distance: ep.sum / ep.n as f64,
            start_frame: ep.start_frame,
            end_frame: ep.last_frame,
        })
    }
}

fn sort_events(events: &mut [InteractionEvent]) {
    events.sort_by(|x, y| {
        x.end
            .total_cmp(&y.end)
            .then_with(|| x.a.cmp(&y.a))
            .then_with(|| x.b.cmp(&y.b))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(distance: f64, unit: DistanceUnit) -> InteractionRule {
        InteractionRule {
            distance,
            unit,
            mm_per_px: None,
            min_duration_s: 1.0,
            max_gap_s: 0.2,
        }
    }

    fn f(id: &str, x: f32, y: f32) -> (String, f32, f32, f32) {
        (id.to_string(), x, y, 20.0)
    }

    /// Two fish approach, stay 2 s within 30 px, separate: exactly one event with the right span.
    #[test]
    fn approach_stay_separate() {
        let mut det = InteractionDetector::new(rule(30.0, DistanceUnit::Px));
        let fps = 25.0;
        let mut events = Vec::new();
        for i in 0..200u64 {
            let t = i as f64 / fps;
            // b sits at x=100; a comes from x=0, stays at 80 (20 px) for frames 50..100, leaves.
            let ax = if i < 50 {
                i as f32 * 1.6
            } else if i < 100 {
                80.0
            } else {
                80.0 - (i - 99) as f32 * 3.0
            };
            events.extend(det.update(t, i, &[f("zb", 100.0, 50.0), f("a", ax, 50.0)]));
        }
        events.extend(det.finish());
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!((e.a.as_str(), e.b.as_str()), ("a", "zb"));
        // a is within 30 px from x ≥ 70 → frame 44 (70.4); last close frame on the way out is 102 (71).
        assert_eq!(e.start_frame, 44);
        assert_eq!(e.end_frame, 102);
        assert!((e.duration - 58.0 / 25.0).abs() < 1e-9, "{}", e.duration);
        assert!((e.min_distance - 20.0).abs() < 1e-6);
        assert!(e.mean_distance > 20.0 && e.mean_distance < 30.0);
    }

    /// A detector resumed from another's open episodes (a restart's checkpoint) ends them as
    /// the uninterrupted one does: one event across the restart, not two pieces.
    #[test]
    fn a_resumed_detector_continues_the_open_episodes() {
        let fps = 25.0;
        let fish = |i: u64| {
            let ax = if i < 100 {
                80.0
            } else {
                80.0 - (i - 99) as f32 * 3.0
            };
            [f("zb", 100.0, 50.0), f("a", ax, 50.0), f("c", 400.0, 50.0)]
        };
        let mut whole = InteractionDetector::new(rule(30.0, DistanceUnit::Px));
        let mut first = InteractionDetector::new(rule(30.0, DistanceUnit::Px));
        let (mut expected, mut got) = (Vec::new(), Vec::new());
        for i in 0..60u64 {
            let t = i as f64 / fps;
            expected.extend(whole.update(t, i, &fish(i)));
            got.extend(first.update(t, i, &fish(i)));
        }
        let saved = first.open_episodes();
        assert_eq!(saved.len(), 1, "{saved:?}");
        let mut bad = saved[0].clone();
        bad.min = f64::NAN;
        let mut resumed = InteractionDetector::new(rule(30.0, DistanceUnit::Px));
        assert_eq!(resumed.resume(&[bad], 59.0 / fps), 0, "invalid: skipped");
        assert_eq!(resumed.resume(&saved, 59.0 / fps), 1);
        // A frame from before the checkpoint is ignored, as in one run.
        assert!(resumed.update(58.0 / fps, 58, &fish(58)).is_empty());
        for i in 60..200u64 {
            let t = i as f64 / fps;
            expected.extend(whole.update(t, i, &fish(i)));
            got.extend(resumed.update(t, i, &fish(i)));
        }
        expected.extend(whole.finish());
        got.extend(resumed.finish());
        assert_eq!(expected.len(), 1, "{expected:?}");
        assert_eq!(got, expected);
        assert_eq!((got[0].start_frame, got[0].end_frame), (0, 102));
    }

    #[test]
    fn short_contacts_and_gaps() {
        let mut r = rule(10.0, DistanceUnit::Px);
        r.min_duration_s = 1.0;
        r.max_gap_s = 0.3;
        let mut det = InteractionDetector::new(r);
        let mut events = Vec::new();
        // 0.0..=0.5 close (too short alone), gap 0.5..0.7 (0.2 s, tolerated), close 0.8..=1.5.
        for i in 0..=30u64 {
            let t = i as f64 * 0.1;
            let close = (t <= 0.5 + 1e-9) || (0.8 - 1e-9..=1.5 + 1e-9).contains(&t);
            let bx = if close { 5.0 } else { 50.0 };
            events.extend(det.update(t, i, &[f("p", 0.0, 0.0), f("q", bx, 0.0)]));
        }
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].start_frame, 0);
        assert_eq!(events[0].end_frame, 15);
        assert!(det.finish().is_empty());

        // A contact shorter than min_duration yields nothing.
        let mut det = InteractionDetector::new(r);
        let mut out = Vec::new();
        for i in 0..30u64 {
            let bx = if (5..10).contains(&i) { 5.0 } else { 50.0 };
            out.extend(det.update(i as f64 * 0.1, i, &[f("p", 0.0, 0.0), f("q", bx, 0.0)]));
        }
        out.extend(det.finish());
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn missing_fish_counts_as_gap_and_finish_flushes() {
        let mut r = rule(10.0, DistanceUnit::Px);
        r.max_gap_s = 0.15;
        let mut det = InteractionDetector::new(r);
        let mut out = Vec::new();
        for i in 0..=20u64 {
            out.extend(det.update(i as f64 * 0.1, i, &[f("p", 0.0, 0.0), f("q", 1.0, 0.0)]));
        }
        // q disappears: episode ends once 0.15 s passed since the last close frame.
        assert!(det.update(2.1, 21, &[f("p", 0.0, 0.0)]).is_empty());
        let ended = det.update(2.2, 22, &[f("p", 0.0, 0.0)]);
        assert_eq!(ended.len(), 1);
        assert!((ended[0].duration - 2.0).abs() < 1e-9);
        // Still-open episodes are flushed by finish().
        for i in 30..60u64 {
            out.extend(det.update(i as f64 * 0.1, i, &[f("p", 0.0, 0.0), f("r", 3.0, 4.0)]));
        }
        assert!(out.is_empty());
        let fin = det.finish();
        assert_eq!(fin.len(), 1);
        assert_eq!((fin[0].a.as_str(), fin[0].b.as_str()), ("p", "r"));
        assert!((fin[0].min_distance - 5.0).abs() < 1e-9);
    }

    #[test]
    fn units_mm_and_body_lengths() {
        // 40 px apart; 0.25 mm/px → 10 mm; body 20 px → 2 body lengths.
        let fish = [
            ("a".to_string(), 0.0, 0.0, 20.0),
            ("b".to_string(), 40.0, 0.0, 20.0),
        ];
        let mut mm = InteractionRule {
            mm_per_px: Some(0.25),
            ..rule(10.0, DistanceUnit::Mm)
        };
        mm.min_duration_s = 0.0;
        let mut det = InteractionDetector::try_new(mm).unwrap();
        det.update(0.0, 0, &fish);
        let e = det.finish();
        assert_eq!(e.len(), 1);
        assert!((e[0].min_distance - 10.0).abs() < 1e-9);

        let mut bl = rule(1.9, DistanceUnit::BodyLengths);
        bl.min_duration_s = 0.0;
        let mut det = InteractionDetector::try_new(bl).unwrap();
        det.update(0.0, 0, &fish);
        assert!(det.finish().is_empty(), "2 body lengths is not within 1.9");
        bl.distance = 2.0;
        let mut det = InteractionDetector::try_new(bl).unwrap();
        det.update(0.0, 0, &fish);
        assert!((det.finish()[0].mean_distance - 2.0).abs() < 1e-9);
    }

    #[test]
    fn bad_rules_and_inputs_do_not_panic() {
        assert!(InteractionDetector::try_new(rule(5.0, DistanceUnit::Mm)).is_err());
        assert!(InteractionDetector::try_new(rule(-1.0, DistanceUnit::Px)).is_err());
        let mut dead = InteractionDetector::new(rule(f64::NAN, DistanceUnit::Px));
        assert!(
            dead.update(0.0, 0, &[f("a", 0.0, 0.0), f("b", 0.0, 0.0)])
                .is_empty()
        );
        let mut r = rule(5.0, DistanceUnit::Px);
        r.min_duration_s = 0.0;
        let mut det = InteractionDetector::new(r);
        det.update(
            1.0,
            0,
            &[f("a", 0.0, 0.0), f("a", 1.0, 0.0), f("b", f32::NAN, 0.0)],
        );
        det.update(f64::NAN, 1, &[f("a", 0.0, 0.0), f("c", 1.0, 0.0)]);
        det.update(0.5, 2, &[f("a", 0.0, 0.0), f("c", 1.0, 0.0)]);
        assert!(det.finish().is_empty(), "no valid pair was ever close");
    }
}

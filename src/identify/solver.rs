//! Regrouping of the fragments of a sliding window of stream time into individuals, with
//! hindsight.
//!
//! The online assignment ([`super::identifier`]) decides while a fragment (a stretch of a track
//! between contacts with other fish: one fish throughout) is young, one frame at a time, and a
//! side of a fish it has never seen matches nobody. This module looks at every fragment of the
//! window at once and groups them under three rules:
//! - fragments in view at the same moment are different fish (never grouped);
//! - fragments showing the same side alike are the same fish (evidence for or against, from
//!   the quality-weighted mean embedding of each side, weighed against how alike the fish in
//!   view together look: `calibrate`);
//! - a track's consecutive fragments are probably the same fish (the tracker usually follows a
//!   fish through a contact): evidence for, and the only link between the two flanks of a fish
//!   that never turned in view — strong across a near contact (boxes close, each fish its own
//!   blob), weak across a tangle (a shared blob, overlapping boxes, a fish hidden), where the
//!   tracker swaps fish far more often;
//! - a fragment with a few crops, too few for a side mean, that the online assignment (which
//!   compares each crop with the gallery) prevailingly named one individual is probably that
//!   individual's: evidence for joining a group that is the same individual (written so, or
//!   prevailingly named so the same way), against joining one that is another.
//!
//! Groups are merged greedily, strongest evidence first. With an expected number of fish `N`,
//! the groups left over are then joined, one by one, to the `N` main groups (most decisive
//! first, a little overlap in time tolerated and penalised: one wrong fragment in a main group
//! must not lock its fish out). Within a group, a fragment in view at the same time as a longer
//! one of the same group leaves it; with an expected number of fish, such a fragment (and any
//! leftover no main group took) then joins the main group its own crops and its track's
//! neighbours favour, overlap penalised as before, or the only one it may join (every fish in
//! view is one of the `N`). Names last: a group holding fragments whose rows were
//! already written keeps that individual — unless a written fragment's own crops contradict
//! it (unlike the rest of its individual's fragments, or clearly like another's): then its
//! later rows may take another; the other main groups take the online individuals their
//! fragments carried most (one-to-one), or are new.
//!
//! Must never read pixels, run the model or touch the gallery and registry: it returns names;
//! the identifier decides what to do with them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

/// One fragment as the solver sees it.
#[derive(Debug, Clone, Default)]
pub struct Fragment {
    /// The identifier's fragment number.
    pub id: u64,
    /// The motion tracker's track the fragment is a stretch of.
    pub track: u64,
    /// Frame numbers in which the fragment's track matched a detection, ascending.
    pub frames: Vec<u64>,
    /// Quality-weighted sums of the embeddings seen facing right (`[0]`) and facing left
    /// (`[1]`), with the summed weights.
    pub sides: [Option<(Vec<f32>, f32)>; 2],
    /// Individual its latest rows were written with (outputs are final): its group keeps it.
    pub fixed: Option<String>,
    /// Individuals the online assignment gave its frames, with frame counts.
    pub online: Vec<(String, u32)>,
    /// Seen on a track the tracker confirmed (a tentative track is never written).
    pub confirmed: bool,
    /// Began when its track came out of a tangle (a blob of several fish, a shared blob, a box
    /// overlapping another's, or hidden) or a long coast: its link to the track's previous
    /// fragment is weaker evidence ([`Params::tangle_continuity`]) than one across a near
    /// contact.
    pub after_tangle: bool,
}

/// What the solver calls a fragment's fish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// An existing individual.
    Individual(String),
    /// The `k`-th entry of [`Solution::new_groups`]: a main group no individual fits.
    New(usize),
}

impl Name {
    /// The existing individual, if this names one.
    pub fn individual(&self) -> Option<&str> {
        match self {
            Name::Individual(i) => Some(i),
            Name::New(_) => None,
        }
    }
}

/// A main group with no individual (a fish the online assignment never enrolled).
#[derive(Debug, Clone)]
pub struct NewGroup {
    /// Its fragments.
    pub fragments: Vec<u64>,
    /// Normalised mean embedding of each side (facing right, facing left), where seen with at
    /// least [`Params::min_side_weight`].
    pub sides: [Option<Vec<f32>>; 2],
    /// Summed crop weight behind the means (both sides).
    pub weight: f32,
    /// Every other main group was in view at the same time as this one, or shows a common side
    /// unlike it: this is none of their fish (not, say, the unseen flank of one of them).
    pub distinct: bool,
}

/// The solver's answer.
#[derive(Debug, Clone, Default)]
pub struct Solution {
    /// Name of each fragment that has one (fragments left out are no one's).
    pub names: HashMap<u64, Name>,
    /// Main groups without an individual.
    pub new_groups: Vec<NewGroup>,
    /// Groups after grouping (diagnostics).
    pub groups: usize,
    /// Neutral similarity the grouping used, fitted to how alike fish in view together look
    /// (diagnostics).
    pub neutral_similarity: f32,
    /// How alike fish in view together look: the 90th percentile of the similarities the
    /// neutral similarity was fitted to (`None`: too few pairs in view together).
    pub alike: Option<f32>,
}

/// Tuning of the grouping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Cosine similarity of two same-side mean embeddings at which the evidence is neutral:
    /// above it says "same fish", below "another fish".
    pub similarity: f32,
    /// Evidence per unit of similarity above or below `similarity`.
    pub scale: f32,
    /// Evidence that a track's consecutive fragments are one fish, per link across a near
    /// contact (boxes close, each fish its own blob).
    pub continuity: f32,
    /// The same across a tangle or a long coast ([`Fragment::after_tangle`]).
    pub tangle_continuity: f32,
    /// Evidence for two groups whose prevailing individuals (`prevailing`) are the same, and
    /// against two whose prevailing individuals differ.
    pub online: f32,
    /// Summed crop weight a side needs before its mean embedding counts.
    pub min_side_weight: f32,
    /// Largest fraction of a leftover group's frames that may overlap a main group it joins.
    pub max_overlap: f32,
    /// Evidence lost per unit of that overlap fraction.
    pub overlap_penalty: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            similarity: 0.78,
            scale: 20.0,
            // The tracker followed another fish after 1 % of near contacts and 17 % of tangles
            // (20 simulated tanks, BENCHMARKS.md round 17).
            continuity: 2.0,
            tangle_continuity: 0.5,
            // Three renders of 20 simulated tanks: 95.50 → 95.53, 94.89 → 95.02, 94.06 →
            // 94.24, five tanks better and none worse; 2.0 gives the same (BENCHMARKS.md
            // round 18).
            online: 1.0,
            min_side_weight: 1.5,
            max_overlap: 0.8,
            overlap_penalty: 10.0,
        }
    }
}

struct Group {
    members: Vec<usize>,
    frames: Vec<u64>,
    sides: [Option<(Vec<f32>, f32)>; 2],
    fixed: Option<String>,
    /// Frames the online assignment gave each individual, over the members whose online
    /// individuals count ([`online_counts`]).
    online: HashMap<String, u32>,
}

impl Group {
    fn absorb(&mut self, other: Group) {
        self.members.extend(other.members);
        self.frames = union(&self.frames, &other.frames);
        add_sides(&mut self.sides, &other.sides, 1.0);
        if self.fixed.is_none() {
            self.fixed = other.fixed;
        }
        for (l, c) in other.online {
            *self.online.entry(l).or_default() += c;
        }
    }

    fn mean(&self, side: usize, min_weight: f32) -> Option<Vec<f32>> {
        side_mean(&self.sides[side], min_weight)
    }
}

/// Quality-weighted embedding sums and summed weights per side (as [`Fragment::sides`]).
type SideSums = [Option<(Vec<f32>, f32)>; 2];

/// Adds (`sign` 1) or takes away (`sign` -1) `other`'s per-side sums.
fn add_sides(acc: &mut SideSums, other: &SideSums, sign: f32) {
    for (mine, theirs) in acc.iter_mut().zip(other) {
        if let Some((v, w)) = theirs {
            let (s, sw) = mine.get_or_insert_with(|| (vec![0.0; v.len()], 0.0));
            for (a, b) in s.iter_mut().zip(v) {
                *a += sign * b;
            }
            *sw += sign * w;
        }
    }
}

/// Normalised mean of one side's sum, when its summed weight reaches `min_weight`.
fn side_mean(side: &Option<(Vec<f32>, f32)>, min_weight: f32) -> Option<Vec<f32>> {
    let (s, w) = side.as_ref()?;
    if *w < min_weight {
        return None;
    }
    let n = s.iter().map(|x| x * x).sum::<f32>().sqrt();
    (n > 0.0 && n.is_finite()).then(|| s.iter().map(|x| x / n).collect())
}

fn union(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let x = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) if x < y => {
                i += 1;
                x
            }
            (Some(&x), Some(&y)) if y < x => {
                j += 1;
                y
            }
            (Some(&x), Some(_)) => {
                i += 1;
                j += 1;
                x
            }
            (Some(&x), None) => {
                i += 1;
                x
            }
            (None, Some(&y)) => {
                j += 1;
                y
            }
            (None, None) => break,
        };
        out.push(x);
    }
    out
}

fn overlap(a: &[u64], b: &[u64]) -> usize {
    match (a.first(), a.last(), b.first(), b.last()) {
        (Some(a0), Some(a1), Some(b0), Some(b1)) if a1 >= b0 && b1 >= a0 => {}
        _ => return 0,
    }
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// A fragment's online individuals count only when it has at least this summed crop weight of
/// its own: without crops, the online assignment may keep a track's individual through a
/// contact, which is the continuity evidence again (counted, it named two fish after their
/// tracks' old individuals on one simulated tank).
const ONLINE_MIN_CROPS: f32 = 0.5;

/// Whether a fragment's online individuals count ([`Group::online`]): it has crops of its own
/// ([`ONLINE_MIN_CROPS`]) but on neither side enough for a side mean, which speaks for itself
/// (counted as well, the online names moved a set of 20 simulated tanks both ways, by up to
/// −4.0 and +5.5 points each; BENCHMARKS.md round 18).
fn online_counts(f: &Fragment, p: &Params) -> bool {
    let mut total = 0.0;
    for (_, w) in f.sides.iter().flatten() {
        if *w >= p.min_side_weight {
            return false;
        }
        total += w;
    }
    total >= ONLINE_MIN_CROPS
}

/// A group prevails on one individual with at least this many counted online frames … (10
/// named the same groups on 60 tanks of 8 fish but cost 16 look-alike fish 1.3 points of
/// identity: a few frames' names are often wrong when the fish look alike; BENCHMARKS.md round
/// 18.)
const ONLINE_MIN_FRAMES: u32 = 30;
/// … of which at least this share name it.
const ONLINE_SHARE: f32 = 0.75;

/// The individual a group is: its written name, else the one its online frames prevailingly
/// name ([`ONLINE_MIN_FRAMES`], [`ONLINE_SHARE`]).
fn prevailing(g: &Group) -> Option<String> {
    if let Some(f) = &g.fixed {
        return Some(f.clone());
    }
    let total: u32 = g.online.values().sum();
    let (l, &c) = g
        .online
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))?;
    (total >= ONLINE_MIN_FRAMES && c as f32 >= ONLINE_SHARE * total as f32).then(|| l.clone())
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

struct State<'a> {
    frags: &'a [Fragment],
    p: Params,
    groups: Vec<Option<Group>>,
    /// Mean embedding per side of each group (recomputed when the group changes).
    means: Vec<SideMeans>,
    /// [`prevailing`] individual of each group (recomputed when the group changes).
    prevails: Vec<Option<String>>,
    group_of: Vec<usize>,
    /// Each fragment's neighbours on its track (previous and next fragment), with the
    /// continuity evidence of the link.
    neighbours: Vec<Vec<(usize, f32)>>,
}

impl State<'_> {
    fn group(&self, g: usize) -> Option<&Group> {
        self.groups.get(g).and_then(Option::as_ref)
    }

    /// Same-side evidence between two groups, and whether any side was comparable.
    fn appearance(&self, a: usize, b: usize) -> (f32, bool) {
        let mut total = 0.0;
        let mut seen = false;
        for side in 0..2 {
            if let (Some(x), Some(y)) = (&self.means[a][side], &self.means[b][side]) {
                seen = true;
                total += self.p.scale * (dot(x, y) - self.p.similarity);
            }
        }
        (total, seen)
    }

    /// Evidence from the groups' prevailing individuals: [`Params::online`] for the same one,
    /// minus that for two different ones, 0 when either has none.
    fn online(&self, a: usize, b: usize) -> f32 {
        match (&self.prevails[a], &self.prevails[b]) {
            (Some(x), Some(y)) if x == y => self.p.online,
            (Some(_), Some(_)) => -self.p.online,
            _ => 0.0,
        }
    }

    /// The summed evidence of the track-continuity links joining group `a` to each other group.
    fn links(&self, a: usize) -> HashMap<usize, f32> {
        let mut out = HashMap::new();
        if let Some(ga) = self.group(a) {
            for &m in &ga.members {
                for &(n, w) in &self.neighbours[m] {
                    let g = self.group_of[n];
                    if g != a {
                        *out.entry(g).or_default() += w;
                    }
                }
            }
        }
        out
    }

    /// Whether the two groups have a side both were seen from.
    fn comparable(&self, a: usize, b: usize) -> bool {
        (0..2).any(|s| self.means[a][s].is_some() && self.means[b][s].is_some())
    }

    fn names_clash(&self, a: usize, b: usize) -> bool {
        match (self.group(a), self.group(b)) {
            (Some(x), Some(y)) => matches!((&x.fixed, &y.fixed), (Some(p), Some(q)) if p != q),
            _ => true,
        }
    }

    /// Evidence for merging two groups in the first phase; `None` when they may not merge
    /// (in view together, two written individuals) or nothing links them.
    /// `links`: the continuity links of `a` ([`State::links`]).
    fn score(&self, a: usize, b: usize, links: &HashMap<usize, f32>) -> Option<f32> {
        let links = links.get(&b).copied();
        let online = self.online(a, b);
        // Cheap tests first: most pairs share no side, no track and no individual.
        if links.is_none() && online <= 0.0 && !self.comparable(a, b) {
            return None;
        }
        let (ga, gb) = (self.group(a)?, self.group(b)?);
        if self.names_clash(a, b) || overlap(&ga.frames, &gb.frames) > 0 {
            return None;
        }
        let (app, _) = self.appearance(a, b);
        Some(app + links.unwrap_or(0.0) + online)
    }

    fn merge(&mut self, into: usize, from: usize) {
        let Some(g) = self.groups.get_mut(from).and_then(Option::take) else {
            return;
        };
        for &m in &g.members {
            self.group_of[m] = into;
        }
        if let Some(t) = self.groups.get_mut(into).and_then(Option::as_mut) {
            t.absorb(g);
            let means = [
                t.mean(0, self.p.min_side_weight),
                t.mean(1, self.p.min_side_weight),
            ];
            self.means[into] = means;
            self.prevails[into] = prevailing(t);
        }
        self.means[from] = [None, None];
        self.prevails[from] = None;
    }

    /// Certainly different fish: in view at the same time, or a common side unlike.
    fn distinct(&self, a: usize, b: usize) -> bool {
        let together = match (self.group(a), self.group(b)) {
            (Some(x), Some(y)) => overlap(&x.frames, &y.frames) > 0,
            _ => false,
        };
        let (app, seen) = self.appearance(a, b);
        together || (seen && app < 0.0)
    }

    fn frames(&self, g: usize) -> usize {
        self.group(g).map_or(0, |g| g.frames.len())
    }
}

/// Key of a score in the merge heap (scores compared exactly as computed).
fn key(s: f32) -> i64 {
    (s as f64 * 1e6).round() as i64
}

/// Same-side evidence (as [`State::appearance`]) between two sets of per-side sums; `None`
/// when no side was seen by both.
fn side_evidence(a: &SideSums, b: &SideSums, p: &Params) -> Option<f32> {
    let mut total = None;
    for side in 0..2 {
        if let (Some(x), Some(y)) = (
            side_mean(&a[side], p.min_side_weight),
            side_mean(&b[side], p.min_side_weight),
        ) {
            *total.get_or_insert(0.0) += p.scale * (dot(&x, &y) - p.similarity);
        }
    }
    total
}

/// Written fragments whose written individual their own crops contradict: a swap the contact
/// rule missed, or a fragment named before it had crops of its own (continuity alone). A
/// fragment is released (its later rows may take another individual) when, on a side both were
/// seen from, it is unlike the other fragments written with its individual (and shorter than
/// them together), or it is clearly like the fragments of another written individual and not
/// more like its own. Rows already written keep their individual.
fn contradicted_names(frags: &[Fragment], p: &Params) -> HashSet<usize> {
    let mut by_name: HashMap<&str, SideSums> = HashMap::new();
    let mut frames_of: HashMap<&str, usize> = HashMap::new();
    for f in frags {
        if let Some(name) = &f.fixed {
            add_sides(by_name.entry(name).or_default(), &f.sides, 1.0);
            *frames_of.entry(name).or_default() += f.frames.len();
        }
    }
    let mut out = HashSet::new();
    for (i, f) in frags.iter().enumerate() {
        let Some(name) = f.fixed.as_deref() else {
            continue;
        };
        let mut own = by_name[name].clone();
        add_sides(&mut own, &f.sides, -1.0);
        let own_ev = side_evidence(&f.sides, &own, p);
        let best_other = by_name
            .iter()
            .filter(|(n, _)| **n != name)
            .filter_map(|(_, sums)| side_evidence(&f.sides, sums, p))
            .fold(None, |m: Option<f32>, e| Some(m.map_or(e, |m| m.max(e))));
        // Unlike the rest of its name: the odd one out leaves, not the longer rest.
        let unlike_own = own_ev.is_some_and(|e| e < -RELEASE_EVIDENCE)
            && frames_of[name] - f.frames.len() > f.frames.len();
        let like_other = best_other.is_some_and(|o| {
            o > RELEASE_EVIDENCE && own_ev.is_none_or(|e| e < o - RELEASE_EVIDENCE)
        });
        if unlike_own || like_other {
            out.insert(i);
        }
    }
    out
}

/// `p` fitted to how alike different fish look in this window. The same-side similarities of
/// fragments in view at the same moment (certainly different fish) are measured; when at
/// least [`ALIKE_MIN_PAIRS`] such pairs exist and their [`ALIKE_QUANTILE`] lies above
/// [`Params::similarity`], that quantile becomes the neutral similarity and `scale` is
/// multiplied by `(1 - quantile) / (1 - similarity)`: the narrow range from the quantile to 1
/// then spans as much evidence as the range from the default neutral similarity to 1 does on a
/// camera whose crops tell fish apart.
/// A camera whose crops do not (a top view of small fish: every fish looks like every other,
/// different fish 0.97–0.99 alike) then weighs appearance at almost nothing and keeps its
/// tracks' continuity, instead of regrouping fragments by look-alike noise. On the real
/// fasttrack-zebrafish14 recording (top view, 14 juveniles) identity IDF1 rose from 0.717 to
/// the tracks' own 0.852 for every quantile from 0.5 to 0.97; simulated side views (the 90th
/// percentile of different fish at most ~0.55, look-alikes included) are unchanged
/// (BENCHMARKS.md round 24).
/// `means`: each fragment's [`fragment_means`].
fn calibrate(frags: &[Fragment], means: &[SideMeans], p: &Params) -> (Params, Option<f32>) {
    let mut sims = Vec::new();
    for i in 0..frags.len() {
        for j in i + 1..frags.len() {
            if overlap(&frags[i].frames, &frags[j].frames) == 0 {
                continue;
            }
            for (x, y) in means[i].iter().zip(&means[j]) {
                if let (Some(x), Some(y)) = (x, y) {
                    sims.push(dot(x, y));
                }
            }
        }
    }
    let mut out = *p;
    if sims.len() < ALIKE_MIN_PAIRS {
        return (out, None);
    }
    sims.sort_by(f32::total_cmp);
    let q = sims[((sims.len() - 1) as f32 * ALIKE_QUANTILE).round() as usize];
    if q > out.similarity && q < 1.0 && out.similarity < 1.0 {
        out.scale *= (1.0 - q) / (1.0 - out.similarity);
        out.similarity = q;
    }
    (out, Some(q))
}

/// Normalised mean embedding per side (`None`: too little weight), as [`side_mean`].
type SideMeans = [Option<Vec<f32>>; 2];

/// Each fragment's side means, with `min_weight` ([`Params::min_side_weight`]).
fn fragment_means(frags: &[Fragment], min_weight: f32) -> Vec<SideMeans> {
    frags
        .iter()
        .map(|f| {
            [
                side_mean(&f.sides[0], min_weight),
                side_mean(&f.sides[1], min_weight),
            ]
        })
        .collect()
}

/// Quantile of the different-fish similarities that becomes the neutral similarity when it
/// lies above the default one ([`calibrate`]).
const ALIKE_QUANTILE: f32 = 0.9;
/// Pairs of fragments in view together (same side seen by both) needed before [`calibrate`]
/// trusts their similarities.
const ALIKE_MIN_PAIRS: usize = 10;

/// Evidence (in [`Params::scale`] units of similarity) that releases a written name.
const RELEASE_EVIDENCE: f32 = 2.0;

/// Groups `frags` into fish. `population`: how many fish there are (the number of main groups
/// that leftovers join); `None` leaves leftovers on their own.
pub fn solve(frags: &[Fragment], population: Option<usize>, p: &Params) -> Solution {
    // Each fragment starts as a group of its own: its side means are its group's.
    let mut means = fragment_means(frags, p.min_side_weight);
    let (calibrated, alike) = calibrate(frags, &means, p);
    let p = &calibrated;
    let n = frags.len();
    let mut neighbours = vec![Vec::new(); n];
    let mut by_track: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, f) in frags.iter().enumerate() {
        by_track.entry(f.track).or_default().push(i);
    }
    for list in by_track.values_mut() {
        list.sort_by_key(|&i| (frags[i].frames.first().copied(), frags[i].id));
        for w in list.windows(2) {
            let link = if frags[w[1]].after_tangle {
                p.tangle_continuity
            } else {
                p.continuity
            };
            neighbours[w[0]].push((w[1], link));
            neighbours[w[1]].push((w[0], link));
        }
    }
    let mut st = State {
        frags,
        p: *p,
        groups: Vec::with_capacity(n),
        means: Vec::with_capacity(n),
        prevails: Vec::with_capacity(n),
        group_of: (0..n).collect(),
        neighbours,
    };
    // Written names that hold (not contradicted by their fragment's own crops).
    let released = contradicted_names(frags, p);
    let fixed: Vec<Option<&String>> = frags
        .iter()
        .enumerate()
        .map(|(i, f)| f.fixed.as_ref().filter(|_| !released.contains(&i)))
        .collect();
    for (i, f) in frags.iter().enumerate() {
        let g = Group {
            members: vec![i],
            frames: f.frames.clone(),
            sides: f.sides.clone(),
            fixed: fixed[i].cloned(),
            online: if online_counts(f, p) {
                f.online.iter().cloned().collect()
            } else {
                HashMap::new()
            },
        };
        st.means.push(std::mem::take(&mut means[i]));
        st.prevails.push(prevailing(&g));
        st.groups.push(Some(g));
    }
    // Fragments already written with one individual are that individual's, whatever else.
    let mut by_fixed: HashMap<String, usize> = HashMap::new();
    for (i, name) in fixed.iter().enumerate() {
        if let Some(name) = name {
            match by_fixed.get(*name) {
                Some(&g) => st.merge(g, i),
                None => {
                    by_fixed.insert((*name).clone(), i);
                }
            }
        }
    }
    // Phase 1: merge, strongest evidence first.
    let alive = |st: &State| -> Vec<usize> { (0..n).filter(|&g| st.group(g).is_some()).collect() };
    let mut heap: BinaryHeap<(i64, Reverse<usize>, Reverse<usize>)> = BinaryHeap::new();
    let live = alive(&st);
    for (x, &a) in live.iter().enumerate() {
        let links = st.links(a);
        for &b in &live[x + 1..] {
            if let Some(s) = st.score(a, b, &links).filter(|s| *s > 0.0) {
                heap.push((key(s), Reverse(a), Reverse(b)));
            }
        }
    }
    while let Some((k, Reverse(a), Reverse(b))) = heap.pop() {
        if st.group(a).is_none() || st.group(b).is_none() {
            continue;
        }
        match st.score(a, b, &st.links(a)) {
            Some(s) if s > 0.0 && key(s) == k => {}
            Some(s) if s > 0.0 => {
                heap.push((key(s), Reverse(a), Reverse(b)));
                continue;
            }
            _ => continue,
        }
        st.merge(a, b);
        let links = st.links(a);
        for c in alive(&st) {
            if c != a
                && let Some(s) = st.score(a, c, &links).filter(|s| *s > 0.0)
            {
                heap.push((key(s), Reverse(a.min(c)), Reverse(a.max(c))));
            }
        }
    }
    let groups = alive(&st).len();
    // Phase 2: the main groups (written individuals first, then the largest) take the rest.
    let mut order = alive(&st);
    order.sort_by_key(|&g| {
        (
            st.group(g).is_none_or(|g| g.fixed.is_none()),
            Reverse(st.frames(g)),
            g,
        )
    });
    let mut mains: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&g| st.group(g).is_some_and(|g| g.fixed.is_some()))
        .collect();
    if let Some(n_fish) = population {
        for &g in &order {
            if mains.len() >= n_fish {
                break;
            }
            if !mains.contains(&g) {
                mains.push(g);
            }
        }
        let mut rest: Vec<usize> = order
            .iter()
            .copied()
            .filter(|g| !mains.contains(g))
            .collect();
        // Candidate scores of each leftover for each main, recomputed when that main changes.
        let cand = |st: &State, r: usize, m: usize| -> Option<f32> {
            if st.names_clash(m, r) {
                return None;
            }
            let (gm, gr) = (st.group(m)?, st.group(r)?);
            let ov = overlap(&gm.frames, &gr.frames) as f32 / gr.frames.len().max(1) as f32;
            if ov > st.p.max_overlap {
                return None;
            }
            let (app, seen) = st.appearance(m, r);
            Some(if seen { app } else { 0.0 } + st.online(m, r) - st.p.overlap_penalty * ov)
        };
        let mut table: HashMap<(usize, usize), Option<f32>> = HashMap::new();
        for &r in &rest {
            for &m in &mains {
                table.insert((r, m), cand(&st, r, m));
            }
        }
        loop {
            let mut best: Option<((f32, usize), usize, usize)> = None;
            for &r in &rest {
                let mut c: Vec<(f32, usize)> = mains
                    .iter()
                    .filter_map(|&m| table.get(&(r, m)).copied().flatten().map(|s| (s, m)))
                    .collect();
                if c.is_empty() {
                    continue;
                }
                c.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                // The only main it can join decides best of all (elimination).
                let margin = c[0].0 - c.get(1).map_or(-99.0, |x| x.0);
                let k = (margin, st.frames(r));
                if best
                    .as_ref()
                    .is_none_or(|(bk, _, _)| k.0 > bk.0 || (k.0 == bk.0 && k.1 > bk.1))
                {
                    best = Some((k, r, c[0].1));
                }
            }
            let Some((_, r, m)) = best else { break };
            st.merge(m, r);
            rest.retain(|&x| x != r);
            for &x in &rest {
                table.insert((x, m), cand(&st, x, m));
            }
        }
    }
    // A fragment in view at the same moment as a longer one of its group leaves the group.
    let mut kept: HashMap<usize, Vec<usize>> = HashMap::new();
    for g in alive(&st) {
        let Some(grp) = st.group(g) else { continue };
        let mut members = grp.members.clone();
        members.sort_by_key(|&m| (Reverse(st.frags[m].frames.len()), st.frags[m].id));
        let mut taken: HashSet<u64> = HashSet::new();
        let mut keep = Vec::new();
        for m in members {
            if st.frags[m].frames.iter().any(|f| taken.contains(f)) {
                continue;
            }
            taken.extend(st.frags[m].frames.iter().copied());
            keep.push(m);
        }
        kept.insert(g, keep);
    }
    // Names.
    let mut names: HashMap<usize, Name> = HashMap::new();
    for &g in &mains {
        if let Some(f) = st.group(g).and_then(|g| g.fixed.clone()) {
            names.insert(g, Name::Individual(f));
        }
    }
    let used: HashSet<&str> = names.values().filter_map(Name::individual).collect();
    let free: Vec<usize> = mains
        .iter()
        .copied()
        .filter(|g| !names.contains_key(g))
        .collect();
    let mut labels: Vec<&str> = frags
        .iter()
        .flat_map(|f| f.online.iter().map(|(l, _)| l.as_str()))
        .filter(|l| !used.contains(l))
        .collect();
    labels.sort_unstable();
    labels.dedup();
    if !free.is_empty() && !labels.is_empty() {
        let cols = labels.len().max(free.len());
        let mut w = vec![vec![0i64; cols]; free.len()];
        for (r, g) in free.iter().enumerate() {
            for &m in kept.get(g).into_iter().flatten() {
                for (l, c) in &st.frags[m].online {
                    if let Ok(j) = labels.binary_search(&l.as_str()) {
                        w[r][j] += i64::from(*c);
                    }
                }
            }
        }
        if let Ok(m) = pathfinding::matrix::Matrix::from_rows(w.clone()) {
            let (_, assigned) = pathfinding::kuhn_munkres::kuhn_munkres(&m);
            for (r, &j) in assigned.iter().enumerate() {
                if j < labels.len() && w[r][j] > 0 {
                    names.insert(free[r], Name::Individual(labels[j].to_string()));
                }
            }
        }
    }
    let mut new_groups = Vec::new();
    for &g in &mains {
        if names.contains_key(&g) {
            continue;
        }
        let Some(grp) = st.group(g) else { continue };
        let distinct = mains
            .iter()
            .filter(|&&m| m != g)
            .all(|&m| st.distinct(m, g));
        names.insert(g, Name::New(new_groups.len()));
        new_groups.push(NewGroup {
            fragments: kept
                .get(&g)
                .into_iter()
                .flatten()
                .map(|&m| st.frags[m].id)
                .collect(),
            sides: [
                grp.mean(0, p.min_side_weight),
                grp.mean(1, p.min_side_weight),
            ],
            weight: grp.sides.iter().flatten().map(|(_, w)| w).sum(),
            distinct,
        });
    }
    let mut out = HashMap::new();
    for (g, keep) in &kept {
        if let Some(name) = names.get(g) {
            for &m in keep {
                out.insert(st.frags[m].id, name.clone());
            }
        }
    }
    if population.is_some() {
        place_left_out(&st, &mains, &kept, &names, &mut out);
    }
    Solution {
        names: out,
        new_groups,
        groups,
        neutral_similarity: p.similarity,
        alike,
    }
}

/// Known population: every fish in view is one of the main groups' fish. A fragment no main
/// group kept (a leftover that could join none, or one dropped beside a longer fragment of its
/// group) and not written yet joins, longest first, the main group that its own crops (same
/// side, against the group without them) and its track's neighbouring fragments favour most,
/// less [`Params::overlap_penalty`] per fraction of its frames that group is already in view
/// (at most [`Params::max_overlap`]); with no evidence either way, only the single group it may
/// join (elimination). Rows of frames where it and the group's kept fragment are both in view
/// are settled downstream (a frame never names one individual twice). BENCHMARKS.md round 15:
/// rows left with no individual fell from 1.8 % to 0.8 %.
fn place_left_out(
    st: &State,
    mains: &[usize],
    kept: &HashMap<usize, Vec<usize>>,
    names: &HashMap<usize, Name>,
    out: &mut HashMap<u64, Name>,
) {
    let p = &st.p;
    let mut left: Vec<usize> = (0..st.frags.len())
        .filter(|&i| !out.contains_key(&st.frags[i].id) && st.frags[i].fixed.is_none())
        .collect();
    left.sort_by_key(|&i| (Reverse(st.frags[i].frames.len()), st.frags[i].id));
    if left.is_empty() {
        return;
    }
    let mut frames: Vec<HashSet<u64>> = mains
        .iter()
        .map(|g| {
            kept.get(g)
                .into_iter()
                .flatten()
                .flat_map(|&m| st.frags[m].frames.iter().copied())
                .collect()
        })
        .collect();
    for i in left {
        let f = &st.frags[i];
        // (score, any evidence, index in `mains`, its name)
        let mut cands: Vec<(f32, bool, usize, &Name)> = Vec::new();
        for (k, &g) in mains.iter().enumerate() {
            let Some(name) = names.get(&g) else { continue };
            let ov = f.frames.iter().filter(|fr| frames[k].contains(fr)).count() as f32
                / f.frames.len().max(1) as f32;
            if ov > p.max_overlap {
                continue;
            }
            // The group without this fragment's own crops (it may have been dropped from it).
            let mut sums = st.group(g).map(|grp| grp.sides.clone()).unwrap_or_default();
            if st.group_of[i] == g {
                add_sides(&mut sums, &f.sides, -1.0);
            }
            let appearance = side_evidence(&f.sides, &sums, p);
            // Summed evidence of its links to this group's fragments, and whether it has any.
            let (links, linked) = st.neighbours[i]
                .iter()
                .filter(|(n, _)| out.get(&st.frags[*n].id) == Some(name))
                .fold((0.0f32, false), |(sum, _), (_, w)| (sum + w, true));
            let score = appearance.unwrap_or(0.0) + links - p.overlap_penalty * ov;
            cands.push((score, appearance.is_some() || linked, k, name));
        }
        // The only main group it may join (elimination), else the one the evidence favours.
        let pick = match cands.as_slice() {
            [only] => Some(only),
            _ if cands.iter().any(|c| c.1) => cands
                .iter()
                .max_by(|a, b| a.0.total_cmp(&b.0).then(b.2.cmp(&a.2))),
            _ => None,
        };
        if let Some(&(_, _, k, name)) = pick {
            frames[k].extend(f.frames.iter().copied());
            out.insert(f.id, name.clone());
        }
    }
}

/// The fragments of the last stretch of stream time, as the identifier saw them: the solver's
/// input, kept up to date frame by frame. Its named fragments are saved with the identity
/// state and put back before the first frame of the next start ([`SavedFragment`]): on five
/// simulated 8-fish tanks restarted halfway, the rows after the restart that agree with an
/// uninterrupted run rose 0.962 → 0.987 (BENCHMARKS.md round 22).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Window {
    frame: u64,
    entries: HashMap<u64, Entry>,
    /// Fragments of an earlier run, placed before the first frame this one sees
    /// ([`Window::restore`]).
    restored: Vec<SavedFragment>,
    /// Stream time the restored fragments' `frames_ago` count back from (the last frame of
    /// the window they were saved from), when the state file says it.
    #[serde(default)]
    restored_t: Option<f64>,
    /// Place restored fragments on their saved tracks ([`Window::keep_saved_tracks`]).
    keep_tracks: bool,
}

/// A fragment of the window with an individual, as the identity state file keeps it: the next
/// start puts it back in the window just before its first frame ([`Window::restore`]), so the
/// regrouping after a restart has the fragments written before it, as an uninterrupted run has.
/// On a resumed recording the tracker continues its track, and the fragment goes back on it;
/// otherwise its track is gone, and it is in view with no fragment of the new run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedFragment {
    /// The individual its rows were written with (or last named).
    pub individual: String,
    /// Its frames with a detection: how many frames and how many seconds before the last frame
    /// of the window they were.
    pub frames_ago: Vec<(u64, f64)>,
    /// As [`Fragment::sides`].
    pub sides: [Option<(Vec<f32>, f32)>; 2],
    /// As [`Fragment::online`].
    pub online: Vec<(String, u32)>,
    /// As [`Fragment::after_tangle`].
    pub after_tangle: bool,
    /// The tracker's track it was a stretch of (absent in files of older builds).
    #[serde(default)]
    pub track: Option<u64>,
}

/// Fragment numbers of restored fragments ([`Window::restore`]) count down from here, far above
/// any the identifier hands out; their tracks are numbered the same way.
const FIRST_RESTORED: u64 = u64::MAX;

/// Furthest back a restored frame may lie, in frames (a day at 100 frames/s; a window holds
/// `relabel_window_s`).
const MAX_FRAMES_AGO: u64 = 8_640_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Entry {
    track: u64,
    first_t: f64,
    last_t: f64,
    /// Frame numbers and times with a detection.
    frames: VecDeque<(u64, f64)>,
    sides: [Option<(Vec<f32>, f32)>; 2],
    online: HashMap<String, u32>,
    fixed: Option<String>,
    confirmed: bool,
    after_tangle: bool,
}

impl Window {
    /// Starts a new frame; the next [`Window::seen`] calls belong to it.
    pub fn next_frame(&mut self) {
        self.frame += 1;
    }

    /// `fragment` (a stretch of `track`) is in the frame at `t`; `detected`: matched to a
    /// detection; `online`: the individual the online assignment gave it.
    pub fn seen(
        &mut self,
        fragment: u64,
        track: u64,
        t: f64,
        detected: bool,
        online: Option<&str>,
    ) {
        if !self.restored.is_empty() {
            self.place_restored(t);
        }
        let e = self.entries.entry(fragment).or_insert_with(|| Entry {
            track,
            first_t: t,
            ..Default::default()
        });
        e.last_t = t;
        if detected {
            e.frames.push_back((self.frame, t));
        }
        if let Some(o) = online {
            *e.online.entry(o.to_string()).or_default() += 1;
        }
    }

    /// `fragment` was seen on a track the tracker confirmed (after [`Window::seen`]).
    pub fn confirmed(&mut self, fragment: u64) {
        if let Some(e) = self.entries.get_mut(&fragment) {
            e.confirmed = true;
        }
    }

    /// `fragment` began when its track came out of a tangle (after [`Window::seen`]).
    pub fn after_tangle(&mut self, fragment: u64) {
        if let Some(e) = self.entries.get_mut(&fragment) {
            e.after_tangle = true;
        }
    }

    /// Adds an embedding seen from `side` (its index in `View::SIDES`: 0 facing right, 1 facing left) with `weight` to
    /// `fragment`'s evidence.
    pub fn embedding(&mut self, fragment: u64, side: usize, weight: f32, emb: &[f32]) {
        let Some(e) = self.entries.get_mut(&fragment) else {
            return;
        };
        let Some(slot) = e.sides.get_mut(side) else {
            return;
        };
        if !(weight.is_finite() && weight > 0.0) {
            return;
        }
        match slot {
            Some((sum, w)) if sum.len() == emb.len() => {
                for (a, b) in sum.iter_mut().zip(emb) {
                    *a += weight * b;
                }
                *w += weight;
            }
            Some(_) => {}
            None => *slot = Some((emb.iter().map(|x| weight * x).collect(), weight)),
        }
    }

    /// Stream time of `fragment`'s first frame.
    pub fn first_t(&self, fragment: u64) -> Option<f64> {
        self.entries.get(&fragment).map(|e| e.first_t)
    }

    /// The individual `fragment`'s latest rows were written with: its group keeps it.
    pub fn written(&mut self, fragment: u64, individual: &str) {
        if let Some(e) = self.entries.get_mut(&fragment) {
            e.fixed = Some(individual.to_string());
        }
    }

    /// The individual `fragment`'s latest rows were written with, if any.
    pub fn written_as(&self, fragment: u64) -> Option<&str> {
        self.entries.get(&fragment)?.fixed.as_deref()
    }

    /// Forgets what happened before `t`: fragments that ended, and older frames of the rest.
    pub fn forget_before(&mut self, t: f64) {
        self.entries.retain(|_, e| e.last_t >= t);
        for e in self.entries.values_mut() {
            while e.frames.front().is_some_and(|(_, ft)| *ft < t) {
                e.frames.pop_front();
            }
        }
    }

    /// Fragments in the window.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the window holds no fragment.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.restored.clear();
    }

    /// The fragments with an individual (`name`: the one its rows were written with or were
    /// last named, by fragment number), for the state file.
    pub fn named_fragments(&self, name: impl Fn(u64) -> Option<String>) -> Vec<SavedFragment> {
        if !self.restored.is_empty() {
            // Not placed yet: no frame seen since the start.
            return self.restored.clone();
        }
        let last_t = self.latest_t();
        let mut out: Vec<SavedFragment> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.frames.is_empty())
            .filter_map(|(&id, e)| {
                let individual = e.fixed.clone().or_else(|| name(id))?;
                let mut online: Vec<(String, u32)> =
                    e.online.iter().map(|(l, c)| (l.clone(), *c)).collect();
                online.sort();
                Some(SavedFragment {
                    individual,
                    frames_ago: e
                        .frames
                        .iter()
                        .map(|(f, ft)| (self.frame.saturating_sub(*f), (last_t - ft).max(0.0)))
                        .collect(),
                    sides: e.sides.clone(),
                    online,
                    after_tangle: e.after_tangle,
                    track: Some(e.track),
                })
            })
            .collect();
        out.sort_by(|a, b| a.individual.cmp(&b.individual));
        out
    }

    /// Fragments of an earlier run (the state file's), put back in the window before the first
    /// frame this run sees, written with their individuals. Sides whose length is not `dim`
    /// (or not finite), and frames further back than a window could hold or at no finite
    /// time, are dropped (a damaged or hand-edited file).
    /// `saved_t`: the stream time their `frames_ago` count back from, if known
    /// ([`Window::saved_t`]).
    pub fn restore(&mut self, saved: Vec<SavedFragment>, dim: usize, saved_t: Option<f64>) {
        self.restored_t = saved_t.filter(|t| t.is_finite());
        self.restored = saved
            .into_iter()
            .map(|mut f| {
                f.frames_ago
                    .retain(|(n, ago)| *n <= MAX_FRAMES_AGO && ago.is_finite() && *ago >= 0.0);
                for s in &mut f.sides {
                    if s.as_ref().is_some_and(|(v, w)| {
                        v.len() != dim || !w.is_finite() || v.iter().any(|x| !x.is_finite())
                    }) {
                        *s = None;
                    }
                }
                f
            })
            .filter(|f| !f.frames_ago.is_empty())
            .collect();
    }

    /// The stream time [`Window::named_fragments`] counts back from: the latest frame seen, or,
    /// before any, the restored fragments' (`None` when neither is known).
    pub fn saved_t(&self) -> Option<f64> {
        if !self.restored.is_empty() {
            return self.restored_t;
        }
        let last = self.latest_t();
        last.is_finite().then_some(last)
    }

    /// Stream time of the latest frame seen (the fragments it showed are still in the window);
    /// -∞ when there is none.
    fn latest_t(&self) -> f64 {
        self.entries
            .values()
            .map(|e| e.last_t)
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// Counts the restored fragments back from `to_t` (the stream time of the last frame whose
    /// rows a resumed recording has) instead of from the time they were saved at. A crash
    /// leaves a state file saved at another time than the checkpoint the run resumes from:
    /// up to `label_lag_s` after it, the fragments' frames after `to_t` are this run's future,
    /// which it sees again and names itself, so they are dropped (placed before its first
    /// frame, they told the regrouping that a track had been the fish it became only later);
    /// saved before it, they lie that much further back. Nothing changes when the saving time
    /// is unknown.
    pub fn rewind_restored(&mut self, to_t: f64) {
        let Some(saved_t) = self.restored_t else {
            return;
        };
        let shift = saved_t - to_t;
        if !shift.is_finite() || shift == 0.0 {
            return;
        }
        // The frame interval, from the frames' own numbers and times.
        let mut intervals: Vec<f64> = self
            .restored
            .iter()
            .flat_map(|f| f.frames_ago.iter())
            .filter(|(n, _)| *n > 0)
            .map(|(n, ago)| ago / *n as f64)
            .filter(|dt| dt.is_finite() && *dt > 0.0)
            .collect();
        intervals.sort_by(f64::total_cmp);
        let frames = intervals
            .get(intervals.len() / 2)
            .map_or(0, |dt| (shift.abs() / dt).round() as u64);
        for f in &mut self.restored {
            f.frames_ago.retain(|(_, ago)| *ago >= shift - 1e-6);
            for (n, ago) in &mut f.frames_ago {
                *n = if shift > 0.0 {
                    n.saturating_sub(frames)
                } else {
                    n.saturating_add(frames)
                };
                *ago = (*ago - shift).max(0.0);
            }
        }
        self.restored.retain(|f| !f.frames_ago.is_empty());
        self.restored_t = Some(to_t);
    }

    /// Restored fragments go back on the tracks they were saved with (the tracker continues
    /// those tracks), not on tracks of their own.
    pub fn keep_saved_tracks(&mut self) {
        self.keep_tracks = true;
    }

    /// Places the restored fragments just before the frame at `t`, numbered before every
    /// frame to come.
    fn place_restored(&mut self, t: f64) {
        let restored = std::mem::take(&mut self.restored);
        let span = restored
            .iter()
            .flat_map(|f| f.frames_ago.iter().map(|(n, _)| *n))
            .max()
            .unwrap_or(0);
        // The new run's frames come after every restored one.
        self.frame = self.frame.saturating_add(span + 2);
        let last = self.frame - 1;
        for (k, f) in restored.into_iter().enumerate() {
            let id = FIRST_RESTORED - k as u64;
            let frames: VecDeque<(u64, f64)> = f
                .frames_ago
                .iter()
                .map(|(n, ago)| (last.saturating_sub(*n), t - 1e-3 - ago))
                .collect();
            let (first_t, last_t) = (
                frames.front().map_or(t, |x| x.1),
                frames.back().map_or(t, |x| x.1),
            );
            self.entries.insert(
                id,
                Entry {
                    track: f.track.filter(|_| self.keep_tracks).unwrap_or(id),
                    first_t,
                    last_t,
                    frames,
                    sides: f.sides,
                    online: f.online.into_iter().collect(),
                    fixed: Some(f.individual),
                    confirmed: true,
                    after_tangle: f.after_tangle,
                },
            );
        }
    }

    /// Fragments in the window with at least one detection, individuals passed through
    /// `resolve` (merged identities).
    pub fn fragments(&self, resolve: impl Fn(&str) -> String) -> Vec<Fragment> {
        let mut out: Vec<Fragment> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.frames.is_empty())
            .map(|(&id, e)| {
                let mut online: HashMap<String, u32> = HashMap::new();
                for (l, c) in &e.online {
                    *online.entry(resolve(l)).or_default() += c;
                }
                let mut online: Vec<(String, u32)> = online.into_iter().collect();
                online.sort();
                Fragment {
                    id,
                    track: e.track,
                    frames: e.frames.iter().map(|(f, _)| *f).collect(),
                    sides: e.sides.clone(),
                    fixed: e.fixed.as_deref().map(&resolve),
                    online,
                    confirmed: e.confirmed,
                    after_tangle: e.after_tangle,
                }
            })
            .collect();
        out.sort_by_key(|f| f.id);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit vector along axis `k` of 8, nudged along axis `k + 1` by `e`.
    fn pattern(k: usize, e: f32) -> Vec<f32> {
        let mut v = [0.0; 8];
        v[k] = 1.0;
        v[(k + 1) % 8] = e;
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    /// Fragment `id` of `track` in frames `from..to`, showing the side `side` (0 right, 1 left)
    /// with the pattern `k`.
    fn frag(id: u64, track: u64, from: u64, to: u64, side: Option<(usize, usize)>) -> Fragment {
        let mut sides = [None, None];
        if let Some((s, k)) = side {
            sides[s] = Some((pattern(k, 0.1).iter().map(|x| 4.0 * x).collect(), 4.0));
        }
        Fragment {
            id,
            track,
            frames: (from..to).collect(),
            sides,
            ..Default::default()
        }
    }

    fn name(sol: &Solution, f: u64) -> Option<&Name> {
        sol.names.get(&f)
    }

    fn individual(id: &str) -> Option<Name> {
        Some(Name::Individual(id.into()))
    }

    /// The first fragments' rows were written with these individuals, in order.
    fn written(frags: &mut [Fragment], names: &[&str]) {
        for (f, n) in frags.iter_mut().zip(names) {
            f.fixed = Some((*n).into());
        }
    }

    #[test]
    fn fish_in_view_together_are_never_one_group() {
        // Two fragments showing the very same pattern at the same time: two fish.
        let frags = vec![
            frag(1, 1, 0, 10, Some((0, 0))),
            frag(2, 2, 5, 15, Some((0, 0))),
        ];
        let sol = solve(&frags, Some(2), &Params::default());
        assert_eq!(sol.groups, 2);
        assert_ne!(name(&sol, 1), name(&sol, 2));
        // One after the other: one fish.
        let frags = vec![
            frag(1, 1, 0, 10, Some((0, 0))),
            frag(2, 2, 10, 15, Some((0, 0))),
        ];
        let sol = solve(&frags, Some(2), &Params::default());
        assert_eq!(sol.groups, 1);
    }

    #[test]
    fn a_flank_never_seen_is_paired_by_elimination_and_names_are_kept() {
        // Fish a (written "a") and b (written "b") seen from their right flanks, together.
        // Later, on other tracks, a left flank L1 and, beside it, b's right flank again; then
        // the left flank L1 again on its own. L1 looks like nobody: it can only be a's left
        // flank, because b is in view elsewhere at that moment.
        let mut frags = vec![
            frag(1, 1, 0, 20, Some((0, 0))),
            frag(2, 2, 0, 20, Some((0, 2))),
            frag(3, 3, 30, 50, Some((1, 4))),
            frag(4, 4, 30, 50, Some((0, 2))),
            frag(5, 5, 60, 70, Some((1, 4))),
        ];
        written(&mut frags, &["a", "b"]);
        let sol = solve(&frags, Some(2), &Params::default());
        let (a, b) = (individual("a"), individual("b"));
        assert_eq!(name(&sol, 1), a.as_ref());
        assert_eq!(name(&sol, 2), b.as_ref());
        assert_eq!(name(&sol, 4), b.as_ref(), "b's flank matches b");
        assert_eq!(name(&sol, 3), a.as_ref(), "the unseen flank is a's");
        assert_eq!(name(&sol, 5), a.as_ref(), "and looks like fragment 3");
        assert!(sol.new_groups.is_empty());
    }

    #[test]
    fn a_track_continues_through_a_contact_unless_the_patterns_disagree() {
        // Track 1: fragment 1 (right flank, pattern 0), a contact, fragment 2 (left flank, no
        // comparable side): continuity groups them. Track 2: fragment 3 (pattern 2, right),
        // then fragment 4 showing pattern 0's right flank: the tracker swapped fish, and
        // fragment 4 joins fragment 1, not fragment 3.
        let frags = vec![
            frag(1, 1, 0, 10, Some((0, 0))),
            frag(2, 1, 12, 20, Some((1, 5))),
            frag(3, 2, 0, 10, Some((0, 2))),
            frag(4, 2, 21, 30, Some((0, 0))),
        ];
        let sol = solve(&frags, Some(2), &Params::default());
        assert_eq!(name(&sol, 1), name(&sol, 2));
        assert_eq!(name(&sol, 1), name(&sol, 4));
        assert_ne!(name(&sol, 3), name(&sol, 4));
    }

    /// Unit vector of 16 dimensions along `e0 + a·e_i + c·e_j`.
    fn near_common(a: f32, i: usize, c: f32, j: usize) -> Vec<f32> {
        let mut v = [0.0f32; 16];
        v[0] = 1.0;
        v[i] += a;
        v[j] += c;
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    /// Fragment `id` of `track` in frames `from..to` showing `emb` on its right side.
    fn frag_showing(id: u64, track: u64, from: u64, to: u64, emb: &[f32]) -> Fragment {
        let mut f = frag(id, track, from, to, None);
        f.sides[0] = Some((emb.iter().map(|x| 4.0 * x).collect(), 4.0));
        f
    }

    fn calib(frags: &[Fragment], p: &Params) -> (Params, Option<f32>) {
        calibrate(frags, &fragment_means(frags, p.min_side_weight), p)
    }

    #[test]
    fn fish_in_view_together_that_look_alike_weigh_appearance_less() {
        let p = Params::default();
        // Five fish in view together, all about 0.94 alike (a top view of small fish).
        let alike: Vec<Fragment> = (1..=5)
            .map(|i| frag_showing(i as u64, i as u64, 0, 10, &near_common(0.25, i, 0.0, i)))
            .collect();
        let (c, q_seen) = calib(&alike, &p);
        let q = 1.0 / (1.0f32 + 0.0625);
        assert!((c.similarity - q).abs() < 1e-4, "{c:?}");
        assert!(q_seen.is_some_and(|s| (s - q).abs() < 1e-4));
        assert!((c.scale - p.scale * (1.0 - q) / (1.0 - p.similarity)).abs() < 1e-3);
        // The same fish one after another (never in view together) tell nothing about how
        // alike different fish look.
        let apart: Vec<Fragment> = alike
            .iter()
            .enumerate()
            .map(|(k, f)| {
                let mut f = f.clone();
                f.frames = (20 * k as u64..20 * k as u64 + 10).collect();
                f
            })
            .collect();
        assert_eq!(calib(&apart, &p), (p, None));
        // Fish whose crops tell them apart (patterns at right angles) leave it as it is; so do
        // too few pairs (three fish: three pairs).
        let distinct: Vec<Fragment> = (0..5)
            .map(|i| frag(i, i, 0, 10, Some((0, i as usize))))
            .collect();
        assert_eq!(calib(&distinct, &p).0, p);
        assert_eq!(calib(&alike[..3], &p), (p, None));
    }

    #[test]
    fn where_every_fish_looks_alike_a_track_keeps_its_fish_through_a_tangle() {
        // Four fish in view together, about 0.94 alike. Out of a tangle, each track shows a
        // crop 0.995 like the next track's fish and 0.937 like its own: with the default
        // neutral similarity both are strong evidence of "the same fish" and the larger wins
        // over the tangle's continuity (every track would follow another fish); measured
        // against how alike these different fish look, neither says much, and each track
        // keeps its fish.
        let next = |i: usize| i % 4 + 1;
        let mut frags: Vec<Fragment> = (1..=4)
            .map(|i| frag_showing(i as u64, i as u64, 0, 10, &near_common(0.25, i, 0.0, i)))
            .collect();
        for i in 1..=4 {
            let mut f = frag_showing(
                10 + i as u64,
                i as u64,
                12,
                22,
                &near_common(0.25, next(i), 0.1, 8 + i),
            );
            f.after_tangle = true;
            frags.push(f);
        }
        let sol = solve(&frags, Some(4), &Params::default());
        for i in 1..=4u64 {
            assert_eq!(name(&sol, 10 + i), name(&sol, i), "track {i}");
        }
        assert!(sol.neutral_similarity > 0.9, "{}", sol.neutral_similarity);
    }

    #[test]
    fn a_near_contact_binds_a_track_to_its_fish_more_than_a_tangle() {
        // Fish a (pattern 0) and b (pattern 2) on tracks 1 and 2; b leaves. After a contact,
        // track 1 shows a side somewhat like both, a little more like b's. Across a near
        // contact the tracker almost always kept its fish: a's. Out of a tangle it often took
        // the other one: the crops decide, b's.
        let (wa, wb) = (0.69f32, (1.0f32 - 0.69 * 0.69).sqrt());
        let mixed: Vec<f32> = pattern(0, 0.1)
            .iter()
            .zip(pattern(2, 0.1))
            .map(|(x, y)| 4.0 * (wa * x + wb * y))
            .collect();
        let mut after = frag(3, 1, 22, 36, None);
        after.sides[0] = Some((mixed, 4.0));
        let p = Params::default();
        assert!(p.continuity > p.tangle_continuity);
        for (tangle, fish) in [(false, 1), (true, 2)] {
            after.after_tangle = tangle;
            let frags = vec![
                frag(1, 1, 0, 20, Some((0, 0))),
                frag(2, 2, 0, 20, Some((0, 2))),
                after.clone(),
            ];
            let sol = solve(&frags, Some(2), &p);
            assert_eq!(
                name(&sol, 3),
                name(&sol, fish),
                "after a {}",
                if tangle { "tangle" } else { "near contact" }
            );
            assert_ne!(name(&sol, 1), name(&sol, 2));
        }
    }

    #[test]
    fn an_online_name_from_a_few_crops_outweighs_a_tangle_and_one_without_crops_does_not() {
        // Fish a (pattern 0) and b (pattern 2), written so, on tracks 1 and 2; then a tangle.
        // Out of it, track 2 shows no crop and track 1 a few of b's, too few for a side mean;
        // the online assignment named track 1's fragment b from them: the tracks swapped
        // fish. Without crops of its own, an online name is the track's old one kept through
        // the contact and says nothing; a name of a few frames says too little.
        for (crops, frames, fish) in [(0.9f32, 36, "b"), (0.0, 36, "a"), (0.9, 20, "a")] {
            let mut frags = vec![
                frag(1, 1, 0, 20, Some((0, 0))),
                frag(2, 2, 0, 20, Some((0, 2))),
                frag(3, 1, 22, 60, None),
                frag(4, 2, 22, 60, None),
            ];
            written(&mut frags, &["a", "b"]);
            if crops > 0.0 {
                let few = pattern(2, 0.1).iter().map(|x| crops * x).collect();
                frags[2].sides[0] = Some((few, crops));
            }
            frags[2].online = vec![("b".into(), frames)];
            frags[2].after_tangle = true;
            frags[3].after_tangle = true;
            let sol = solve(&frags, Some(2), &Params::default());
            let case = format!("{crops} crops, {frames} frames");
            assert_eq!(name(&sol, 3), individual(fish).as_ref(), "{case}");
            assert_ne!(name(&sol, 3), name(&sol, 4), "{case}");
            // The continuity of the tracks alone names it after its track's fish.
            let p = Params {
                online: 0.0,
                ..Params::default()
            };
            assert_eq!(
                name(&solve(&frags, Some(2), &p), 3),
                individual("a").as_ref()
            );
        }
    }

    #[test]
    fn a_written_name_its_own_crops_contradict_is_released() {
        // Fish a (pattern 0) and b (pattern 2), written so, in view together. Then, on a's
        // track, a fragment written "a" (named by continuity before it had crops of its own)
        // that shows pattern 2: b's fish, while a's fish shows pattern 0 on track 2.
        let mut frags = vec![
            frag(1, 1, 0, 20, Some((0, 0))),
            frag(2, 2, 0, 20, Some((0, 2))),
            frag(3, 1, 22, 40, Some((0, 2))),
            frag(4, 2, 22, 40, Some((0, 0))),
        ];
        written(&mut frags, &["a", "b", "a", "b"]);
        let sol = solve(&frags, Some(2), &Params::default());
        let (a, b) = (individual("a"), individual("b"));
        assert_eq!(name(&sol, 1), a.as_ref());
        assert_eq!(name(&sol, 2), b.as_ref());
        assert_eq!(name(&sol, 3), b.as_ref(), "pattern 2 is b's");
        assert_eq!(name(&sol, 4), a.as_ref(), "pattern 0 is a's");
        // A written fragment with no side comparable to anyone keeps its name.
        let mut frags = vec![
            frag(1, 1, 0, 20, Some((0, 0))),
            frag(2, 1, 22, 40, Some((1, 5))),
        ];
        written(&mut frags, &["a", "a"]);
        let sol = solve(&frags, Some(1), &Params::default());
        assert_eq!(name(&sol, 2), a.as_ref());
    }

    #[test]
    fn online_individuals_name_groups_and_a_fish_nobody_fits_is_new() {
        // Three fish in view together; the online assignment knew two of them.
        let mut frags = vec![
            frag(1, 1, 0, 30, Some((0, 0))),
            frag(2, 2, 0, 30, Some((0, 2))),
            frag(3, 3, 0, 30, Some((1, 4))),
        ];
        frags[0].online = vec![("x".into(), 25), ("y".into(), 5)];
        frags[1].online = vec![("y".into(), 30)];
        let sol = solve(&frags, Some(3), &Params::default());
        assert_eq!(name(&sol, 1), Some(&Name::Individual("x".into())));
        assert_eq!(name(&sol, 2), Some(&Name::Individual("y".into())));
        assert_eq!(name(&sol, 3), Some(&Name::New(0)));
        assert_eq!(sol.new_groups.len(), 1);
        assert_eq!(sol.new_groups[0].fragments, vec![3]);
        assert!(sol.new_groups[0].distinct, "in view beside both others");
        let left = sol.new_groups[0].sides[1]
            .as_ref()
            .expect("left flank mean");
        assert!(dot(left, &pattern(4, 0.1)) > 0.99);
        assert!(sol.new_groups[0].sides[0].is_none());
    }

    #[test]
    fn a_group_that_may_be_a_known_fishs_unseen_flank_is_not_distinct() {
        // Fish x (right flank) leaves the view before the third group (left flank) appears:
        // that may be x's other flank.
        let mut frags = vec![
            frag(1, 1, 0, 60, Some((0, 0))),
            frag(2, 2, 0, 20, Some((0, 2))),
            frag(3, 3, 30, 60, Some((1, 4))),
        ];
        written(&mut frags, &["w", "x"]);
        let sol = solve(&frags, Some(3), &Params::default());
        assert_eq!(name(&sol, 3), Some(&Name::New(0)));
        assert!(!sol.new_groups[0].distinct);
    }

    #[test]
    fn a_fragment_dropped_beside_a_longer_one_of_its_group_is_named_where_alone() {
        // Population 1: fragment 2 joins the one main group despite overlapping fragment 1 and
        // is dropped from it (a frame never shows one fish twice); with no other main group
        // and its own crops alike, it is named after that group again for the frames where
        // fragment 1 is gone (the frames in view together are settled row by row downstream).
        let mut frags = vec![
            frag(1, 1, 0, 40, Some((0, 0))),
            frag(2, 2, 35, 45, Some((0, 0))),
        ];
        written(&mut frags, &["a"]);
        let sol = solve(&frags, Some(1), &Params::default());
        assert_eq!(name(&sol, 1), individual("a").as_ref());
        assert_eq!(name(&sol, 2), individual("a").as_ref());
    }

    #[test]
    fn a_left_out_fragment_takes_the_only_fish_free_at_its_time() {
        // Three fish written a, b, c. Track 4 (no clear crop of its own) begins while c's track
        // 3 is still in view for a few frames: it joins c's group, is dropped beside c's longer
        // fragment, and, a and b being in view all along, it is c's by elimination.
        let mut frags = vec![
            frag(1, 1, 0, 100, Some((0, 0))),
            frag(2, 2, 0, 100, Some((0, 2))),
            frag(3, 3, 0, 60, Some((0, 4))),
            frag(4, 4, 55, 100, None),
        ];
        written(&mut frags, &["a", "b", "c"]);
        let sol = solve(&frags, Some(3), &Params::default());
        assert_eq!(name(&sol, 4), individual("c").as_ref());
        // Open population: nothing says how many fish there are; it stays no one's.
        let sol = solve(&frags, None, &Params::default());
        assert_eq!(name(&sol, 4), None);
    }

    #[test]
    fn the_window_keeps_evidence_and_forgets_the_past() {
        let mut w = Window::default();
        w.next_frame();
        w.seen(7, 1, 0.0, true, Some("a"));
        w.seen(8, 2, 0.0, false, None);
        w.embedding(7, 0, 0.5, &[1.0, 0.0]);
        w.embedding(7, 0, 0.5, &[0.0, 1.0]);
        w.embedding(7, 3, 1.0, &[1.0, 0.0]);
        w.embedding(7, 1, f32::NAN, &[1.0, 0.0]);
        w.embedding(99, 0, 1.0, &[1.0, 0.0]);
        w.next_frame();
        w.seen(7, 1, 1.0, true, Some("a"));
        w.written(7, "a");
        w.confirmed(7);
        let f = w.fragments(|l| format!("{l}!"));
        assert!(f[0].confirmed);
        // Fragment 8 never matched a detection: no evidence of where its fish was.
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].frames, vec![1, 2]);
        assert_eq!(f[0].sides[0], Some((vec![0.5, 0.5], 1.0)));
        assert_eq!(f[0].sides[1], None);
        assert_eq!(f[0].fixed.as_deref(), Some("a!"));
        assert_eq!(f[0].online, vec![("a!".to_string(), 2)]);
        w.forget_before(0.5);
        assert_eq!(w.fragments(str::to_string)[0].frames, vec![2]);
        w.forget_before(2.0);
        assert!(w.fragments(str::to_string).is_empty());
        assert_eq!(w.first_t(7), None);
    }

    /// Issue 5 (restart): the fragments with an individual go into the state file and come
    /// back before the next run's first frame, written with it, on tracks of their own, in
    /// view with none of the new fragments, and forgotten as the window moves on.
    #[test]
    fn named_fragments_come_back_before_the_next_runs_first_frame() {
        let mut w = Window::default();
        for k in 0..3 {
            w.next_frame();
            let t = 10.0 + f64::from(k);
            w.seen(1, 1, t, true, Some("a"));
            w.seen(2, 2, t, true, None);
            w.seen(3, 3, t, k == 2, None);
        }
        w.embedding(1, 0, 2.0, &[1.0, 0.0]);
        w.embedding(2, 1, 1.0, &[0.0, 1.0]);
        w.written(1, "a");
        // Fragment 2 was named "b" by the last regrouping; fragment 3 by none.
        let saved = w.named_fragments(|f| (f == 2).then(|| "b".to_string()));
        assert_eq!(saved.len(), 2);
        assert_eq!(saved[0].individual, "a");
        assert_eq!(saved[0].frames_ago, vec![(2, 2.0), (1, 1.0), (0, 0.0)]);
        assert_eq!(saved[1].individual, "b");

        // The next run: stream time starts again at 0, tracks again at 1.
        let mut next = Window::default();
        next.restore(saved.clone(), 2, None);
        assert_eq!(next.named_fragments(|_| None), saved, "kept until placed");
        next.next_frame();
        next.seen(1, 1, 0.0, true, None);
        let f = next.fragments(str::to_string);
        let restored: Vec<&Fragment> = f.iter().filter(|f| f.id != 1).collect();
        let new = f.iter().find(|f| f.id == 1).expect("the new fragment");
        assert_eq!(restored.len(), 2);
        for r in &restored {
            assert!(r.track != 1 && r.track != 2, "a track of its own");
            assert!(
                r.frames.iter().all(|&x| x < new.frames[0]),
                "before the new frames"
            );
            assert_eq!(r.frames.len(), 3);
        }
        let a = restored
            .iter()
            .find(|r| r.fixed.as_deref() == Some("a"))
            .expect("a");
        assert_eq!(a.sides[0], Some((vec![2.0, 0.0], 2.0)));
        assert!(restored.iter().any(|r| r.fixed.as_deref() == Some("b")));
        // They ended just before the new run's first frame: gone once the window passes them.
        next.forget_before(-0.5);
        assert_eq!(next.fragments(str::to_string).len(), 3);
        next.forget_before(0.0);
        assert_eq!(next.fragments(str::to_string).len(), 1);
        // A damaged file: frames no window holds, or at no finite time, are dropped.
        let mut damaged = saved.clone();
        damaged[0].frames_ago = vec![(u64::MAX, 0.0), (1, f64::NAN), (0, -1.0)];
        let mut w3 = Window::default();
        w3.restore(damaged, 2, None);
        w3.seen(1, 1, 0.0, true, None);
        assert_eq!(
            w3.fragments(str::to_string).len(),
            2,
            "the new one and fragment b"
        );
        // Sides of another length (another encoder) are dropped.
        let mut other = Window::default();
        other.restore(saved, 3, None);
        other.seen(1, 1, 0.0, true, None);
        assert!(
            other
                .fragments(str::to_string)
                .iter()
                .all(|f| f.sides.iter().all(Option::is_none) || f.id == 1)
        );
    }

    /// A resumed recording: the tracker continues the saved fragments' tracks, they go back on
    /// them, and a new fragment on such a track is named after the fish its track carried
    /// before the restart, by continuity alone (no crop of its own yet).
    #[test]
    fn on_a_resumed_recording_restored_fragments_go_back_on_their_tracks() {
        let mut w = Window::default();
        for k in 0..5 {
            w.next_frame();
            let t = 10.0 + f64::from(k);
            w.seen(1, 5, t, true, Some("a"));
            w.seen(2, 6, t, true, Some("b"));
            w.confirmed(1);
            w.confirmed(2);
        }
        w.embedding(1, 0, 4.0, &pattern(0, 0.1));
        w.embedding(2, 0, 4.0, &pattern(3, 0.1));
        w.written(1, "a");
        w.written(2, "b");
        let saved = w.named_fragments(|_| None);
        assert_eq!(
            saved.iter().map(|f| f.track).collect::<Vec<_>>(),
            vec![Some(5), Some(6)]
        );

        let mut next = Window::default();
        next.restore(saved.clone(), 8, None);
        next.keep_saved_tracks();
        for k in 0..3 {
            next.next_frame();
            let t = 15.0 + f64::from(k);
            // The new run's fragments on the continued tracks, listed the other way round.
            next.seen(11, 6, t, true, None);
            next.seen(10, 5, t, true, None);
            next.confirmed(10);
            next.confirmed(11);
        }
        let frags = next.fragments(str::to_string);
        let tracks: HashSet<u64> = frags.iter().map(|f| f.track).collect();
        assert_eq!(tracks, HashSet::from([5, 6]), "{frags:?}");
        let sol = solve(&frags, Some(2), &Params::default());
        assert_eq!(sol.names.get(&10), Some(&Name::Individual("a".into())));
        assert_eq!(sol.names.get(&11), Some(&Name::Individual("b".into())));

        // Not resumed (track numbers start again): tracks of their own.
        let mut fresh = Window::default();
        fresh.restore(saved, 8, None);
        fresh.seen(10, 5, 0.0, true, None);
        let tracks: Vec<u64> = fresh
            .fragments(str::to_string)
            .iter()
            .map(|f| f.track)
            .collect();
        assert_eq!(tracks.iter().filter(|&&t| t == 5).count(), 1, "{tracks:?}");
    }

    /// A crash leaves a state file saved after the checkpoint a resumed recording goes on
    /// from: the saved fragments' frames after the checkpoint's frame are dropped (the resumed
    /// run sees those frames again and names their fish itself), a fragment only after it is
    /// dropped whole, and the rest count back from the checkpoint's frame; a file saved before
    /// that frame puts every frame that much further back. A file without its window's time,
    /// or one saved at the checkpoint's frame, stays as it is.
    #[test]
    fn restored_fragments_after_the_frame_a_run_resumes_behind_are_dropped() {
        let mut w = Window::default();
        for k in 0..10u32 {
            w.next_frame();
            let t = f64::from(k) * 0.5;
            // Track 5 is fish a until 2.0 s, then (after a swap) fish b.
            w.seen(if k <= 4 { 1 } else { 2 }, 5, t, true, None);
            w.confirmed(1);
            w.confirmed(2);
        }
        w.written(1, "a");
        w.written(2, "b");
        let saved = w.named_fragments(|_| None);
        assert_eq!(w.saved_t(), Some(4.5));
        let rewound = |to_t: f64, saved_t: Option<f64>| {
            let mut next = Window::default();
            next.restore(saved.clone(), 8, saved_t);
            next.rewind_restored(to_t);
            next.named_fragments(|_| None)
        };
        // Resumed behind frame 3 (1.5 s): only fish a's first four frames, counted from it.
        let r = rewound(1.5, Some(4.5));
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].individual, "a");
        assert_eq!(
            r[0].frames_ago,
            vec![(3, 1.5), (2, 1.0), (1, 0.5), (0, 0.0)]
        );
        // Resumed behind frame 6: fish a whole, fish b's frames 5 and 6.
        let r = rewound(3.0, Some(4.5));
        let b = r.iter().find(|f| f.individual == "b").expect("b");
        assert_eq!(b.frames_ago, vec![(1, 0.5), (0, 0.0)]);
        assert_eq!(
            r.iter()
                .find(|f| f.individual == "a")
                .expect("a")
                .frames_ago[0],
            (6, 3.0)
        );
        // Saved before the frame the run resumes behind: every frame, that much further back.
        let r = rewound(5.5, Some(4.5));
        let a = r.iter().find(|f| f.individual == "a").expect("a");
        assert_eq!(a.frames_ago[0], (11, 5.5));
        // Saved at the resume's frame, or at an unknown time: as saved.
        assert_eq!(rewound(4.5, Some(4.5)), saved);
        assert_eq!(rewound(1.5, None), saved);
    }
}

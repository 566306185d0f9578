//! The identity step of a camera worker: asks the identifier which tracks need an embedding
//! (within its budget), cuts and sends their crops to the shared encoder service without waiting,
//! feeds embeddings back when they arrive (a few frames later), and lets the identifier fill
//! `individual` in every track. Must never decide identity itself — that is
//! `crate::identify`'s job.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::embed::EmbedQueue;
use crate::identify::Identifier;
use crate::messages::{Crop, Detection, TrackReport};
use crate::output::metrics::Metrics;

/// What an embedding request was for: the frame time, and the track and crop quality of each
/// crop.
pub(crate) type Request = (f64, Vec<(u64, f32)>);

/// Per-camera identity state owned by the camera's worker thread.
pub(crate) struct IdentityStep {
    pub(crate) identifier: Identifier,
    pub(crate) queue: EmbedQueue<Request>,
    pub(crate) save_every: Duration,
    pub(crate) last_save: Instant,
    pub(crate) failures: u64,
    /// Last time each live track was seen in a multi-fish blob: an embedding of a crop cut
    /// before that may show another fish now (identities can swap while fish touch).
    pub(crate) occluded_at: HashMap<u64, f64>,
}

impl IdentityStep {
    /// Fills `individual` in `tracks` for one frame. `cut` cuts the encoder crop of a detection
    /// (`None`: not usable); it is called only for the tracks chosen for an embedding.
    pub(crate) fn process(
        &mut self,
        camera: &str,
        t: f64,
        tracks: &mut [TrackReport],
        detections: &[Detection],
        cut: &dyn Fn(&Detection) -> Option<Crop>,
        metrics: &Metrics,
    ) {
        let wanted = self.identifier.wants_embedding(t, tracks, detections);
        // A detection matched by several tracks (touching fish the tracker divided) shows
        // more than one fish: never embedded, and it counts as contact.
        let shared = |di: usize| tracks.iter().filter(|tr| tr.detection == Some(di)).count() >= 2;
        let mut ids: Vec<(u64, f32)> = Vec::with_capacity(wanted.len());
        let mut crops: Vec<Crop> = Vec::with_capacity(wanted.len());
        for i in wanted {
            let Some(tr) = tracks.get(i) else { continue };
            let Some(di) = tr.detection else { continue };
            let Some(det) = detections.get(di) else {
                continue;
            };
            if shared(di) {
                continue;
            }
            if let Some(c) = cut(det) {
                ids.push((tr.track, crop_quality(det)));
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
        for done in self.queue.next_frame() {
            let (t_crop, ids) = done.tag;
            match done.result {
                Ok(embs) => {
                    metrics.inc_embeddings(camera, embs.len() as u64);
                    for ((track, quality), e) in ids.iter().zip(&embs) {
                        // A track that ended, or touched another fish, since the crop was cut
                        // may not be this fish any more.
                        let live = tracks.iter().any(|tr| tr.track == *track);
                        let touched = self.occluded_at.get(track).is_some_and(|&o| o >= t_crop);
                        if live && !touched {
                            self.identifier.observe(t_crop, *track, e, *quality);
                        }
                    }
                }
                Err(e) => self.failed(camera, &e),
            }
        }
        metrics.observe_latency(camera, "embed", t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        self.identifier.assign(t, tracks);
        metrics.observe_latency(camera, "identify", t0.elapsed().as_secs_f64());
        metrics.set_individuals_present(camera, self.identifier.present(t) as u64);
        if self.last_save.elapsed() >= self.save_every {
            self.last_save = Instant::now();
            if let Err(e) = self.identifier.save() {
                tracing::error!(camera, "cannot save identity state (will retry): {e}");
            }
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
            minor_axis: minor,
            fish_count: 1,
            crop: None,
            points: Vec::new(),
        }
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

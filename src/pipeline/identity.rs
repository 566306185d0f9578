//! The identity step of a camera worker: asks the identifier which tracks need an embedding
//! (within its budget), embeds their crops through the shared encoder service, feeds the
//! embeddings back, and lets the identifier fill `individual` in every track. Must never decide
//! identity itself — that is `crate::identify`'s job.

use std::time::{Duration, Instant};

use crate::embed::EmbedClient;
use crate::identify::Identifier;
use crate::messages::{Crop, Detection, TrackReport};
use crate::output::metrics::Metrics;

/// Per-camera identity state owned by the camera's worker thread.
pub(crate) struct IdentityStep {
    pub(crate) identifier: Identifier,
    pub(crate) client: EmbedClient,
    pub(crate) save_every: Duration,
    pub(crate) last_save: Instant,
    pub(crate) failures: u64,
}

impl IdentityStep {
    /// Fills `individual` in `tracks` for one frame.
    pub(crate) fn process(
        &mut self,
        camera: &str,
        t: f64,
        tracks: &mut [TrackReport],
        detections: &[Detection],
        metrics: &Metrics,
    ) {
        let wanted = self.identifier.wants_embedding(t, tracks, detections);
        let mut jobs: Vec<(u64, f32, Crop)> = Vec::with_capacity(wanted.len());
        for i in wanted {
            let Some(tr) = tracks.get(i) else { continue };
            let Some(det) = tr.detection.and_then(|d| detections.get(d)) else {
                continue;
            };
            if let Some(c) = det.crop.clone() {
                jobs.push((tr.track, crop_quality(det), c));
            }
        }
        if !jobs.is_empty() {
            let t0 = Instant::now();
            let (ids, crops): (Vec<(u64, f32)>, Vec<Crop>) =
                jobs.into_iter().map(|(id, q, c)| ((id, q), c)).unzip();
            match self.client.embed(crops) {
                Ok(embs) => {
                    metrics.inc_embeddings(camera, embs.len() as u64);
                    for ((track, quality), e) in ids.iter().zip(&embs) {
                        self.identifier.observe(t, *track, e, *quality);
                    }
                }
                Err(e) => {
                    // Identity degrades (tracks keep their last individual); tracking goes on.
                    self.failures += 1;
                    if self.failures == 1 || self.failures.is_power_of_two() {
                        tracing::error!(camera, failures = self.failures, "embedding failed: {e}");
                    }
                }
            }
            metrics.observe_latency(camera, "embed", t0.elapsed().as_secs_f64());
        }
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

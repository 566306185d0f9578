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
        let mut jobs: Vec<(u64, Crop)> = Vec::with_capacity(wanted.len());
        for i in wanted {
            let Some(tr) = tracks.get(i) else { continue };
            let crop = tr
                .detection
                .and_then(|d| detections.get(d))
                .and_then(|d| d.crop.clone());
            if let Some(c) = crop {
                jobs.push((tr.track, c));
            }
        }
        if !jobs.is_empty() {
            let t0 = Instant::now();
            let (ids, crops): (Vec<u64>, Vec<Crop>) = jobs.into_iter().unzip();
            match self.client.embed(crops) {
                Ok(embs) => {
                    metrics.inc_embeddings(camera, embs.len() as u64);
                    for (track, e) in ids.iter().zip(&embs) {
                        self.identifier.observe(t, *track, e, 1.0);
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

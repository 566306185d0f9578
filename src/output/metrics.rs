//! Prometheus metrics of the daemon (`GET /metrics`), labelled by camera.
//!
//! [`Metrics`] is cheap to clone (all handles are `Arc`s) and lock-free to update from the
//! frame path; [`Metrics::encode`] renders the OpenMetrics text exposition. This module must
//! never block the frame path or allocate per sample beyond the label lookup.
//!
//! Families (all prefixed `finprint_`): `frames_total`, `dropped_frames_total`,
//! `reconnects_total`, `embeddings_total` (counters by `camera`); `fps`, `detections`,
//! `tracks`, `individuals_present` (gauges by `camera`); `stage_latency_seconds`
//! (histogram by `camera`,`stage`); `embed_execution_provider` (info-style gauge by
//! `provider`, 1 for the provider in use); `embed_nodes` (gauge by `provider`: graph nodes
//! ONNX Runtime assigned to each execution provider); `output_write_errors_total`,
//! `output_buffered_bytes`, `output_dropped_rows` (by `camera`).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::messages::{TrackStatus, TrackedFrame};

/// Label set `{camera}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CameraLabel {
    /// Camera name.
    pub camera: String,
}

/// Label set `{camera, stage}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    /// Camera name.
    pub camera: String,
    /// Stage name (`ingest`, `detect`, `embed`, `identify`, `track`, `output`, ...).
    pub stage: String,
}

/// Label set `{provider}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabel {
    /// Execution provider name (e.g. `CPU`, `CUDA`).
    pub provider: String,
}

type F64Gauge = Gauge<f64, AtomicU64>;

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s, factor 2.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0005, 2.0, 16,
    ))
}

/// All metric families; clone freely.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    frames: Family<CameraLabel, Counter>,
    dropped: Family<CameraLabel, Counter>,
    reconnects: Family<CameraLabel, Counter>,
    embeddings: Family<CameraLabel, Counter>,
    fps: Family<CameraLabel, F64Gauge>,
    detections: Family<CameraLabel, Gauge>,
    tracks: Family<CameraLabel, Gauge>,
    individuals: Family<CameraLabel, Gauge>,
    alike: Family<CameraLabel, F64Gauge>,
    latency: Family<StageLabel, Histogram>,
    provider: Family<ProviderLabel, Gauge>,
    nodes: Family<ProviderLabel, Gauge>,
    write_errors: Family<CameraLabel, Counter>,
    buffered: Family<CameraLabel, Gauge>,
    dropped_rows: Family<CameraLabel, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every family registered.
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("finprint");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            frames: Family::default(),
            dropped: Family::default(),
            reconnects: Family::default(),
            embeddings: Family::default(),
            fps: Family::default(),
            detections: Family::default(),
            tracks: Family::default(),
            individuals: Family::default(),
            alike: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            provider: Family::default(),
            nodes: Family::default(),
            write_errors: Family::default(),
            buffered: Family::default(),
            dropped_rows: Family::default(),
        };
        r.register("frames", "Frames processed", m.frames.clone());
        r.register(
            "dropped_frames",
            "Frames dropped (decoder, queue full or gaps in live streams)",
            m.dropped.clone(),
        );
        r.register("reconnects", "Camera reconnections", m.reconnects.clone());
        r.register(
            "embeddings",
            "Appearance embeddings computed",
            m.embeddings.clone(),
        );
        r.register(
            "fps",
            "Frames per second processed, recent average",
            m.fps.clone(),
        );
        r.register(
            "detections",
            "Detections (fish, counting touching estimates) in the last frame",
            m.detections.clone(),
        );
        r.register(
            "tracks",
            "Confirmed tracks after the last frame",
            m.tracks.clone(),
        );
        r.register(
            "individuals_present",
            "Identified individuals present in the last frame",
            m.individuals.clone(),
        );
        r.register(
            "identity_alike_similarity",
            "How alike fish in view together look to the encoder: 90th percentile of the \
             similarities of track stretches in view at the same time, in the identity \
             regrouping's window (above the regrouping's relabel_similarity, 0.78 by default, \
             their crops hardly tell them apart)",
            m.alike.clone(),
        );
        r.register_with_unit(
            "stage_latency",
            "Processing time per frame and stage",
            Unit::Seconds,
            m.latency.clone(),
        );
        r.register(
            "embed_execution_provider",
            "Execution provider of the appearance encoder (1 = in use)",
            m.provider.clone(),
        );
        r.register(
            "embed_nodes",
            "Encoder graph nodes per execution provider, as ONNX Runtime assigned them",
            m.nodes.clone(),
        );
        r.register(
            "output_write_errors",
            "Failed output write attempts",
            m.write_errors.clone(),
        );
        r.register(
            "output_buffered_bytes",
            "Output bytes waiting in memory (non-zero while a disk fails)",
            m.buffered.clone(),
        );
        r.register(
            "output_dropped_rows",
            "Output rows dropped because the write buffer was full",
            m.dropped_rows.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            ..m
        }
    }

    fn cam(camera: &str) -> CameraLabel {
        CameraLabel {
            camera: camera.to_string(),
        }
    }

    /// Counts `n` processed frames.
    pub fn inc_frames(&self, camera: &str, n: u64) {
        self.frames.get_or_create(&Self::cam(camera)).inc_by(n);
    }

    /// Counts `n` dropped frames.
    pub fn inc_dropped_frames(&self, camera: &str, n: u64) {
        self.dropped.get_or_create(&Self::cam(camera)).inc_by(n);
    }

    /// Counts one reconnection of the camera's source.
    pub fn inc_reconnects(&self, camera: &str) {
        self.reconnects.get_or_create(&Self::cam(camera)).inc();
    }

    /// Counts `n` computed embeddings.
    pub fn inc_embeddings(&self, camera: &str, n: u64) {
        self.embeddings.get_or_create(&Self::cam(camera)).inc_by(n);
    }

    /// Sets the current frame rate.
    pub fn set_fps(&self, camera: &str, fps: f64) {
        self.fps.get_or_create(&Self::cam(camera)).set(fps);
    }

    /// Records one stage's processing time for one frame.
    pub fn observe_latency(&self, camera: &str, stage: &str, seconds: f64) {
        self.latency
            .get_or_create(&StageLabel {
                camera: camera.to_string(),
                stage: stage.to_string(),
            })
            .observe(seconds);
    }

    /// Sets the number of detections in the last frame.
    pub fn set_detections(&self, camera: &str, n: u64) {
        self.detections
            .get_or_create(&Self::cam(camera))
            .set(n as i64);
    }

    /// Sets the number of confirmed tracks.
    pub fn set_tracks(&self, camera: &str, n: u64) {
        self.tracks.get_or_create(&Self::cam(camera)).set(n as i64);
    }

    /// Sets the number of identified individuals present.
    pub fn set_individuals_present(&self, camera: &str, n: u64) {
        self.individuals
            .get_or_create(&Self::cam(camera))
            .set(n as i64);
    }

    /// Sets how alike the camera's fish in view together look to the encoder (see the
    /// `identity_alike_similarity` family).
    pub fn set_identity_alike(&self, camera: &str, similarity: f64) {
        self.alike.get_or_create(&Self::cam(camera)).set(similarity);
    }

    /// Marks `provider` as the encoder's execution provider in use (and any other as not).
    pub fn set_execution_provider(&self, provider: &str) {
        self.provider.clear();
        self.provider
            .get_or_create(&ProviderLabel {
                provider: provider.to_string(),
            })
            .set(1);
    }

    /// Sets the encoder's node count per execution provider (ONNX Runtime's assignment);
    /// providers not listed disappear.
    pub fn set_embed_nodes(&self, assignment: &[(String, usize)]) {
        self.nodes.clear();
        for (provider, n) in assignment {
            self.nodes
                .get_or_create(&ProviderLabel {
                    provider: provider.clone(),
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// Convenience for the pipeline: sets the gauges `detections`, `tracks` (confirmed,
    /// including coasting) and `individuals_present` from a [`TrackedFrame`]. It does not
    /// count the frame: call [`Self::inc_frames`] for that.
    pub fn observe_tracked_frame(&self, f: &TrackedFrame) {
        let cam = &*f.camera;
        self.set_detections(cam, u64::from(f.visible_fish));
        let tracks = f
            .tracks
            .iter()
            .filter(|t| t.status != TrackStatus::Tentative)
            .count();
        self.set_tracks(cam, tracks as u64);
        let mut ids: Vec<&str> = f
            .tracks
            .iter()
            .filter(|t| t.status != TrackStatus::Tentative)
            .filter_map(|t| t.individual.as_deref())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        self.set_individuals_present(cam, ids.len() as u64);
    }

    pub(crate) fn inc_output_write_errors(&self, camera: &str) {
        self.write_errors.get_or_create(&Self::cam(camera)).inc();
    }

    pub(crate) fn set_output_buffered_bytes(&self, camera: &str, bytes: i64) {
        self.buffered.get_or_create(&Self::cam(camera)).set(bytes);
    }

    pub(crate) fn set_output_dropped_rows(&self, camera: &str, rows: u64) {
        self.dropped_rows
            .get_or_create(&Self::cam(camera))
            .set(rows as i64);
    }

    /// The OpenMetrics text exposition of every family.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut s, &self.registry) {
            tracing::error!("cannot encode metrics: {e}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_encoded_with_labels() {
        let m = Metrics::new();
        let m2 = m.clone();
        m.inc_frames("tank1", 3);
        m2.inc_frames("tank1", 2);
        m.inc_dropped_frames("tank1", 1);
        m.set_fps("tank1", 24.5);
        m.observe_latency("tank1", "detect", 0.003);
        m.set_execution_provider("CUDA");
        m.set_execution_provider("CPU");
        m.set_identity_alike("tank1", 0.5);
        let text = m.encode();
        assert!(
            text.contains("finprint_frames_total{camera=\"tank1\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("finprint_identity_alike_similarity{camera=\"tank1\"} 0.5"),
            "{text}"
        );
        assert!(
            text.contains("finprint_dropped_frames_total{camera=\"tank1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("finprint_fps{camera=\"tank1\"} 24.5"),
            "{text}"
        );
        assert!(
            text.contains(
                "finprint_stage_latency_seconds_count{camera=\"tank1\",stage=\"detect\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("finprint_embed_execution_provider{provider=\"CPU\"} 1"),
            "{text}"
        );
        assert!(!text.contains("provider=\"CUDA\""), "{text}");
    }

    #[test]
    fn embed_nodes_per_provider_replace_earlier_ones() {
        let m = Metrics::new();
        m.set_embed_nodes(&[("CUDAExecutionProvider".into(), 3)]);
        m.set_embed_nodes(&[
            ("CPUExecutionProvider".into(), 40),
            ("CUDAExecutionProvider".into(), 2),
        ]);
        let text = m.encode();
        assert!(
            text.contains("finprint_embed_nodes{provider=\"CPUExecutionProvider\"} 40"),
            "{text}"
        );
        assert!(
            text.contains("finprint_embed_nodes{provider=\"CUDAExecutionProvider\"} 2"),
            "{text}"
        );
        assert!(!text.contains("} 3\n"), "{text}");
    }
}

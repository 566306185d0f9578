//! finprint: watches laboratory fish tanks, finds every fish, recognises which individual it is
//! from its skin pattern and keeps per-individual tracks.
//!
//! Stages, each a module with one job, connected by the typed messages of [`messages`]:
//! [`ingest`] → [`detect`] → [`embed`] → [`identify`] → [`track`] → [`output`].
//! [`pipeline`] wires them with threads and channels; [`service`] is the daemon's lifecycle;
//! [`synth`] renders simulated tanks with ground truth; [`eval`] scores tracks against truth.

pub mod config;
pub mod detect;
pub mod durable;
pub mod embed;
pub mod eval;
pub mod identify;
pub mod ingest;
pub mod messages;
pub mod output;
pub mod pipeline;
pub mod service;
pub mod synth;
pub mod track;

//! Asynchronous embedding requests of one camera worker: requests go to the shared encoder
//! service without waiting, results are taken on later frames. Must never block a live camera:
//! in [`Collect::Ready`] mode only finished results are taken and, when too many requests are in
//! flight, new ones are skipped (counted) instead of queued. [`Collect::AfterFrames`] (recordings)
//! waits for each request's result exactly `n` frames after it was made, so replays are
//! reproducible whatever the machine's speed.

use std::collections::VecDeque;

use crossbeam_channel::TryRecvError;

use super::{EmbedClient, EmbedError, Reply};
use crate::messages::Crop;

/// Requests in flight above which [`Collect::Ready`] skips new ones.
pub const MAX_IN_FLIGHT: usize = 8;

/// When results are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collect {
    /// Live sources: take whatever has finished; never wait.
    Ready,
    /// Recordings: on the `n`-th frame after a request, wait for its result (bounded by one model
    /// run per request); never take it earlier.
    AfterFrames(u32),
}

/// The result of one request, with the caller's tag.
#[derive(Debug)]
pub struct Done<T> {
    /// What the caller attached to the request (e.g. time and track ids).
    pub tag: T,
    /// One embedding per crop, in order, or why there is none.
    pub result: Result<Vec<Vec<f32>>, EmbedError>,
}

/// The requests of a queue with their results ([`EmbedQueue::settle`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Settled<T> {
    /// The queue's frame count.
    pub frame: u64,
    /// Each request: the frame it was made in, its tag, its embeddings.
    pub requests: Vec<(u64, T, Vec<Vec<f32>>)>,
}

struct InFlight<T> {
    frame: u64,
    tag: T,
    rx: Reply,
}

/// Per-camera queue of embedding requests in flight.
pub struct EmbedQueue<T> {
    client: EmbedClient,
    mode: Collect,
    frame: u64,
    pending: VecDeque<InFlight<T>>,
    skipped: u64,
}

impl<T> EmbedQueue<T> {
    /// An empty queue on `client`.
    pub fn new(client: EmbedClient, mode: Collect) -> EmbedQueue<T> {
        EmbedQueue {
            client,
            mode,
            frame: 0,
            pending: VecDeque::new(),
            skipped: 0,
        }
    }

    /// The collection mode.
    pub fn mode(&self) -> Collect {
        self.mode
    }

    /// Requests sent and not taken yet.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Requests skipped because too many were in flight ([`Collect::Ready`] only).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Sends `crops` to the encoder without waiting. Returns `Ok(false)` when the request was
    /// skipped (live mode with [`MAX_IN_FLIGHT`] requests in flight) and an error for a bad crop
    /// or a stopped service.
    pub fn submit(&mut self, tag: T, crops: Vec<Crop>) -> Result<bool, EmbedError> {
        if crops.is_empty() {
            return Ok(true);
        }
        if self.mode == Collect::Ready && self.pending.len() >= MAX_IN_FLIGHT {
            self.skipped += 1;
            return Ok(false);
        }
        let rx = self.client.submit(crops)?;
        self.pending.push_back(InFlight {
            frame: self.frame,
            tag,
            rx,
        });
        Ok(true)
    }

    /// Ends the current frame and returns the results due now, oldest first: in
    /// [`Collect::Ready`] mode those already finished (in request order), in
    /// [`Collect::AfterFrames`]`(n)` exactly those requested `n` frames ago or earlier (waiting
    /// for them).
    pub fn next_frame(&mut self) -> Vec<Done<T>> {
        self.frame += 1;
        let mut out = Vec::new();
        while let Some(front) = self.pending.front() {
            let result = match self.mode {
                Collect::Ready => match front.rx.try_recv() {
                    Ok(r) => r,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => Err(EmbedError::Stopped),
                },
                Collect::AfterFrames(n) => {
                    if front.frame + u64::from(n) > self.frame {
                        break;
                    }
                    front.rx.recv().unwrap_or(Err(EmbedError::Stopped))
                }
            };
            if let Some(p) = self.pending.pop_front() {
                out.push(Done { tag: p.tag, result });
            }
        }
        out
    }

    /// Waits for every request in flight and returns what the queue holds, to be put back with
    /// [`EmbedQueue::restore`] (a resumed recording): its frame count, and for each request the
    /// frame it was made in, its tag and its embeddings (a failed request is left out). The
    /// requests stay in flight here, with their results.
    pub fn settle(&mut self) -> Settled<T>
    where
        T: Clone,
    {
        let mut requests = Vec::with_capacity(self.pending.len());
        for p in &mut self.pending {
            let result = p.rx.recv().unwrap_or(Err(EmbedError::Stopped));
            if let Ok(e) = &result {
                requests.push((p.frame, p.tag.clone(), e.clone()));
            }
            let (tx, rx) = crossbeam_channel::bounded(1);
            let _ = tx.send(result);
            p.rx = rx;
        }
        Settled {
            frame: self.frame,
            requests,
        }
    }

    /// Puts back what [`EmbedQueue::settle`] returned in a previous run, before this queue's
    /// first frame: each result is taken on the frame it would have been.
    pub fn restore(&mut self, s: Settled<T>) {
        if self.frame != 0 || !self.pending.is_empty() {
            return;
        }
        self.frame = s.frame;
        for (frame, tag, embeddings) in s.requests {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let _ = tx.send(Ok(embeddings));
            self.pending.push_back(InFlight { frame, tag, rx });
        }
    }

    /// Waits for every request in flight (end of stream) and returns their results.
    pub fn drain(&mut self) -> Vec<Done<T>> {
        self.pending
            .drain(..)
            .map(|p| Done {
                tag: p.tag,
                result: p.rx.recv().unwrap_or(Err(EmbedError::Stopped)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::embed::fixture_service;
    use crate::output::metrics::Metrics;

    fn crop(seed: u8) -> Crop {
        Crop {
            width: 48,
            height: 16,
            rgb: (0..48 * 16 * 3)
                .map(|i: usize| (i as u8).wrapping_mul(seed))
                .collect(),
        }
    }

    #[test]
    fn recordings_take_results_exactly_n_frames_later() {
        let svc = fixture_service();
        let want = svc.client().embed(vec![crop(3), crop(7)]).unwrap();
        let mut q: EmbedQueue<&str> = EmbedQueue::new(svc.client(), Collect::AfterFrames(2));
        assert!(q.submit("a", vec![crop(3), crop(7)]).unwrap());
        // Long enough for the tiny model to finish: the result is still not taken early.
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            q.next_frame().is_empty(),
            "taken one frame after the request"
        );
        assert_eq!(q.in_flight(), 1);
        let done = q.next_frame();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].tag, "a");
        assert_eq!(done[0].result.as_ref().unwrap(), &want);
        assert_eq!(q.in_flight(), 0);
        // The service's workers end when every client is gone.
        drop(q);
        svc.shutdown();
    }

    /// A stopped recording's requests in flight go with its state and come back to the resumed
    /// run's queue on the frames they would have come on; settling leaves them in flight.
    #[test]
    fn settled_requests_are_taken_on_their_frames_in_the_queue_they_are_restored_to() {
        let svc = fixture_service();
        let mut q: EmbedQueue<&str> = EmbedQueue::new(svc.client(), Collect::AfterFrames(2));
        assert!(q.submit("a", vec![crop(3)]).unwrap());
        assert!(q.next_frame().is_empty());
        assert!(q.submit("b", vec![crop(7), crop(9)]).unwrap());
        let settled = q.settle();
        assert_eq!(settled.frame, 1);
        let tags: Vec<(u64, &str, usize)> = settled
            .requests
            .iter()
            .map(|(f, t, e)| (*f, *t, e.len()))
            .collect();
        assert_eq!(tags, vec![(0, "a", 1), (1, "b", 2)]);
        assert_eq!(q.in_flight(), 2, "settling takes nothing");
        let mut again: EmbedQueue<&str> = EmbedQueue::new(svc.client(), Collect::AfterFrames(2));
        again.restore(settled.clone());
        for k in 0..3 {
            let (a, b) = (q.next_frame(), again.next_frame());
            let tags = |d: &[Done<&'static str>]| d.iter().map(|d| d.tag).collect::<Vec<_>>();
            assert_eq!(tags(&a), tags(&b), "frame {k} after the settle");
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.result.as_ref().unwrap(), y.result.as_ref().unwrap());
            }
        }
        assert_eq!(again.in_flight(), 0);
    }

    #[test]
    fn live_queue_never_waits_and_skips_when_full() {
        let svc = fixture_service();
        let mut q: EmbedQueue<usize> = EmbedQueue::new(svc.client(), Collect::Ready);
        for k in 0..MAX_IN_FLIGHT {
            assert!(q.submit(k, vec![crop(k as u8)]).unwrap());
        }
        assert!(!q.submit(99, vec![crop(1)]).unwrap(), "queue full: skipped");
        assert_eq!(q.skipped(), 1);
        let mut got = Vec::new();
        let t0 = Instant::now();
        while got.len() < MAX_IN_FLIGHT && t0.elapsed() < Duration::from_secs(20) {
            got.extend(q.next_frame().into_iter().map(|d| {
                assert_eq!(d.result.as_ref().map(|e| e.len()).ok(), Some(1));
                d.tag
            }));
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            got,
            (0..MAX_IN_FLIGHT).collect::<Vec<_>>(),
            "in request order"
        );
        drop(q);
        svc.shutdown();
    }

    /// Issue 5: ONNX Runtime's node assignment reaches `/metrics` with a positive count.
    #[test]
    fn node_assignment_is_exported_per_provider() {
        let svc = fixture_service();
        let cpu = svc
            .assignment()
            .iter()
            .find(|(p, _)| p == "CPUExecutionProvider")
            .map(|(_, n)| *n);
        assert!(
            cpu.is_some_and(|n| n > 0),
            "assignment {:?}",
            svc.assignment()
        );
        let m = Metrics::new();
        m.set_embed_nodes(svc.assignment());
        let text = m.encode();
        let line = text
            .lines()
            .find(|l| l.starts_with("finprint_embed_nodes{provider=\"CPUExecutionProvider\"}"))
            .unwrap_or_else(|| panic!("no node series in {text}"));
        let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert_eq!(n, cpu.unwrap() as f64, "{line}");
        svc.shutdown();
    }
}

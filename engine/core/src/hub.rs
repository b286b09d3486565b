//! [`FrameHub`]: the seam between ingest and inference.
//!
//! Each camera has one slot holding its newest unanalysed frame. Publishing a frame
//! replaces the pending one (which is counted as dropped): **the freshest frame wins**, at
//! the camera edge, and a slow model never builds latency. Inference takes frames from the
//! cameras round-robin, so every camera gets its turn (fair), and blocks with a timeout when
//! nothing is pending. Publishing never blocks on inference.
//!
//! The hub is the "bounded channel" of the ingest → inference edge: its capacity is one
//! frame per camera, and its when-full policy is drop-oldest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::{CameraId, Frame};

/// Per-camera counters of the hub.
#[derive(Debug, Default)]
pub struct HubCounters {
    /// Frames published by ingest.
    pub published: AtomicU64,
    /// Frames replaced before inference took them (stale frames dropped at the edge).
    pub dropped: AtomicU64,
    /// Frames taken by inference.
    pub taken: AtomicU64,
}

/// A snapshot of [`HubCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HubStats {
    /// Frames published by ingest.
    pub published: u64,
    /// Frames replaced before inference took them.
    pub dropped: u64,
    /// Frames taken by inference.
    pub taken: u64,
}

struct Inner {
    slots: Vec<Option<Frame>>,
    /// Next slot to look at (round-robin fairness).
    cursor: usize,
    pending: usize,
    closed: bool,
}

/// Latest-frame mailboxes for all cameras.
pub struct FrameHub {
    index: HashMap<CameraId, usize>,
    cameras: Vec<CameraId>,
    counters: Vec<HubCounters>,
    inner: Mutex<Inner>,
    ready: Condvar,
}

impl std::fmt::Debug for FrameHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameHub")
            .field("cameras", &self.cameras)
            .finish()
    }
}

/// Why a frame could not be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The camera was not registered when the hub was built.
    #[error("camera {0:?} is not registered with the frame hub")]
    UnknownCamera(CameraId),
    /// The hub was closed (shutdown).
    #[error("the frame hub is closed")]
    Closed,
}

impl FrameHub {
    /// A hub with one slot per camera.
    pub fn new(cameras: impl IntoIterator<Item = CameraId>) -> Arc<Self> {
        let cameras: Vec<CameraId> = cameras.into_iter().collect();
        let index = cameras
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        let n = cameras.len();
        Arc::new(FrameHub {
            index,
            counters: (0..n).map(|_| HubCounters::default()).collect(),
            cameras,
            inner: Mutex::new(Inner {
                slots: vec![None; n],
                cursor: 0,
                pending: 0,
                closed: false,
            }),
            ready: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The registered cameras.
    pub fn cameras(&self) -> &[CameraId] {
        &self.cameras
    }

    /// Offers a frame; replaces (and counts as dropped) the camera's pending frame.
    pub fn publish(&self, frame: Frame) -> Result<(), PublishError> {
        let Some(&i) = self.index.get(&frame.camera) else {
            return Err(PublishError::UnknownCamera(frame.camera.clone()));
        };
        let mut g = self.lock();
        if g.closed {
            return Err(PublishError::Closed);
        }
        self.counters[i].published.fetch_add(1, Ordering::Relaxed);
        // Drop the stale frame outside the lock would be nicer, but dropping a Frame is
        // only an Arc decrement.
        if g.slots[i].replace(frame).is_some() {
            self.counters[i].dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            g.pending += 1;
        }
        drop(g);
        self.ready.notify_one();
        Ok(())
    }

    /// Takes up to `max` frames (at most one per camera), round-robin from where the last
    /// call stopped. Waits up to `wait` for the first frame, then returns what is pending
    /// without waiting further. Returns `false` once the hub is closed and empty.
    pub fn take(&self, max: usize, wait: Duration, out: &mut Vec<Frame>) -> bool {
        let deadline = Instant::now() + wait;
        let mut g = self.lock();
        while g.pending == 0 {
            if g.closed {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            g = self
                .ready
                .wait_timeout(g, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        let n = g.slots.len();
        let mut taken = 0;
        let start = g.cursor;
        for k in 0..n {
            if taken >= max {
                break;
            }
            let i = (start + k) % n;
            if let Some(f) = g.slots[i].take() {
                g.pending -= 1;
                self.counters[i].taken.fetch_add(1, Ordering::Relaxed);
                out.push(f);
                taken += 1;
                g.cursor = (i + 1) % n;
            }
        }
        true
    }

    /// Closes the hub: publishing fails, `take` drains what is pending then returns false.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Frames waiting for inference.
    pub fn pending(&self) -> usize {
        self.lock().pending
    }

    /// Counters of one camera.
    pub fn stats(&self, camera: &str) -> Option<HubStats> {
        let i = *self.index.get(camera)?;
        let c = &self.counters[i];
        Some(HubStats {
            published: c.published.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            taken: c.taken.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(cam: &CameraId, seq: u64) -> Frame {
        Frame::from_rgb(cam.clone(), seq, chrono::Utc::now(), 1, 1, vec![0; 3])
    }

    #[test]
    fn freshest_wins_and_round_robin() {
        let a: CameraId = "a".into();
        let b: CameraId = "b".into();
        let hub = FrameHub::new([a.clone(), b.clone()]);
        for s in 0..5 {
            hub.publish(frame(&a, s)).unwrap();
        }
        hub.publish(frame(&b, 0)).unwrap();
        let mut out = Vec::new();
        assert!(hub.take(1, Duration::ZERO, &mut out));
        assert!(hub.take(1, Duration::ZERO, &mut out));
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].camera.as_ref(), out[0].seq), ("a", 4));
        assert_eq!(out[1].camera.as_ref(), "b");
        let st = hub.stats("a").unwrap();
        assert_eq!((st.published, st.dropped, st.taken), (5, 4, 1));
        assert!(hub.publish(frame(&"zz".into(), 0)).is_err());
        hub.close();
        out.clear();
        assert!(!hub.take(4, Duration::from_millis(10), &mut out));
    }

    #[test]
    fn take_waits_for_a_frame() {
        let a: CameraId = "a".into();
        let hub = FrameHub::new([a.clone()]);
        let h2 = hub.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            h2.publish(frame(&a, 7)).unwrap();
        });
        let mut out = Vec::new();
        assert!(hub.take(4, Duration::from_secs(5), &mut out));
        assert_eq!(out.len(), 1);
        t.join().unwrap();
    }
}

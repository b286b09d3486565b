//! [`FrameHub`]: the seam between ingest and inference.
//!
//! Each camera has one slot holding its newest unanalysed frame. Publishing a frame
//! replaces the pending one (which is counted as dropped): **the freshest frame wins**, at
//! the camera edge, and a slow model never builds latency. Inference takes frames from the
//! cameras round-robin, so every camera gets its turn (fair), and blocks with a timeout when
//! nothing is pending. Live sources publish with [`FrameHub::publish`], which never blocks on
//! inference.
//!
//! Sources that can wait — a file read as fast as possible (`realtime = false`) — publish
//! with [`FrameHub::publish_when_free`] instead: it waits until inference has taken the
//! camera's previous frame, so the decoder runs only as fast as inference consumes and no
//! decoded frame is thrown away (backpressure instead of drop-oldest).
//!
//! The hub is the "bounded channel" of the ingest → inference edge: its capacity is one
//! frame per camera, and its when-full policy is drop-oldest (live) or wait (file replay).

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
    /// Milliseconds publishers spent waiting for a free slot (backpressure).
    pub waited_ms: AtomicU64,
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
    /// Milliseconds publishers spent waiting for a free slot (backpressure).
    pub waited_ms: u64,
}

struct Inner {
    /// Slot index of each registered camera.
    index: HashMap<CameraId, usize>,
    /// The camera of each slot (`None`: a removed camera's slot, free for reuse).
    ids: Vec<Option<CameraId>>,
    counters: Vec<Arc<HubCounters>>,
    slots: Vec<Option<Frame>>,
    /// Next slot to look at (round-robin fairness).
    cursor: usize,
    pending: usize,
    closed: bool,
}

/// Latest-frame mailboxes for all cameras. Cameras can be added and removed while it runs
/// (a camera started or stopped live).
pub struct FrameHub {
    inner: Mutex<Inner>,
    /// Signalled when a frame is published.
    ready: Condvar,
    /// Signalled when inference takes frames (slots become free) and at close.
    freed: Condvar,
}

impl std::fmt::Debug for FrameHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameHub")
            .field("cameras", &self.cameras())
            .finish()
    }
}

/// Why a frame could not be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The camera is not registered (never was, or was removed).
    #[error("camera {0:?} is not registered with the frame hub")]
    UnknownCamera(CameraId),
    /// The hub was closed (shutdown).
    #[error("the frame hub is closed")]
    Closed,
}

impl FrameHub {
    /// A hub with one slot per camera.
    pub fn new(cameras: impl IntoIterator<Item = CameraId>) -> Arc<Self> {
        let hub = FrameHub {
            inner: Mutex::new(Inner {
                index: HashMap::new(),
                ids: Vec::new(),
                counters: Vec::new(),
                slots: Vec::new(),
                cursor: 0,
                pending: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            freed: Condvar::new(),
        };
        for c in cameras {
            hub.add_camera(c);
        }
        Arc::new(hub)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The registered cameras, in slot order.
    pub fn cameras(&self) -> Vec<CameraId> {
        self.lock().ids.iter().flatten().cloned().collect()
    }

    /// Whether `camera` is registered.
    pub fn contains(&self, camera: &str) -> bool {
        self.lock().index.contains_key(camera)
    }

    /// Registers a camera (a no-op if it is). A camera added again after
    /// [`FrameHub::remove_camera`] starts with fresh counters.
    pub fn add_camera(&self, camera: CameraId) {
        let mut g = self.lock();
        if g.index.contains_key(&camera) {
            return;
        }
        let i = match g.ids.iter().position(Option::is_none) {
            Some(i) => {
                g.counters[i] = Arc::new(HubCounters::default());
                i
            }
            None => {
                g.ids.push(None);
                g.counters.push(Arc::new(HubCounters::default()));
                g.slots.push(None);
                g.ids.len() - 1
            }
        };
        g.ids[i] = Some(camera.clone());
        g.index.insert(camera, i);
    }

    /// Unregisters a camera: its pending frame is dropped (not counted) and its publishers
    /// get [`PublishError::UnknownCamera`] from now on. Returns whether it was registered.
    pub fn remove_camera(&self, camera: &str) -> bool {
        let mut g = self.lock();
        let Some(i) = g.index.remove(camera) else {
            return false;
        };
        g.ids[i] = None;
        if g.slots[i].take().is_some() {
            g.pending -= 1;
        }
        drop(g);
        // A publisher waiting for this slot sees it gone.
        self.freed.notify_all();
        true
    }

    /// Offers a frame; replaces (and counts as dropped) the camera's pending frame.
    pub fn publish(&self, frame: Frame) -> Result<(), PublishError> {
        let g = self.lock();
        let i = Self::slot_of(&g, &frame)?;
        self.put(g, i, frame)
    }

    /// Offers a frame, first waiting while the camera's previous frame is still pending:
    /// backpressure for sources that can wait (file replay read as fast as possible), so
    /// that no decoded frame is dropped. Every 50 ms of waiting calls `keep_waiting`; when it
    /// returns false (the source is stopping) the frame is published like [`Self::publish`]
    /// (replacing the pending one). Returns at once if the hub is closed.
    pub fn publish_when_free(
        &self,
        frame: Frame,
        mut keep_waiting: impl FnMut() -> bool,
    ) -> Result<(), PublishError> {
        let mut g = self.lock();
        let mut i = Self::slot_of(&g, &frame)?;
        if g.slots[i].is_some() && !g.closed {
            let t = Instant::now();
            let counters = g.counters[i].clone();
            while g.slots[i].is_some() && !g.closed {
                g = self
                    .freed
                    .wait_timeout(g, Duration::from_millis(50))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
                // The camera may have been removed (and its slot reused) meanwhile.
                i = Self::slot_of(&g, &frame)?;
                if g.slots[i].is_some() && !keep_waiting() {
                    break;
                }
            }
            counters
                .waited_ms
                .fetch_add(t.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        self.put(g, i, frame)
    }

    fn slot_of(g: &Inner, frame: &Frame) -> Result<usize, PublishError> {
        g.index
            .get(&frame.camera)
            .copied()
            .ok_or_else(|| PublishError::UnknownCamera(frame.camera.clone()))
    }

    fn put(
        &self,
        mut g: MutexGuard<'_, Inner>,
        i: usize,
        frame: Frame,
    ) -> Result<(), PublishError> {
        if g.closed {
            return Err(PublishError::Closed);
        }
        g.counters[i].published.fetch_add(1, Ordering::Relaxed);
        // Dropping the stale frame under the lock is only an Arc decrement.
        if g.slots[i].replace(frame).is_some() {
            g.counters[i].dropped.fetch_add(1, Ordering::Relaxed);
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
                g.counters[i].taken.fetch_add(1, Ordering::Relaxed);
                out.push(f);
                taken += 1;
                g.cursor = (i + 1) % n;
            }
        }
        drop(g);
        if taken > 0 {
            self.freed.notify_all();
        }
        true
    }

    /// Closes the hub: publishing fails, `take` drains what is pending then returns false.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
        self.freed.notify_all();
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
        let g = self.lock();
        let i = *g.index.get(camera)?;
        Some(snapshot(&g.counters[i]))
    }

    /// Stale frames dropped so far, summed over the registered cameras.
    pub fn dropped_total(&self) -> u64 {
        let g = self.lock();
        g.index
            .values()
            .map(|&i| g.counters[i].dropped.load(Ordering::Relaxed))
            .sum()
    }
}

fn snapshot(c: &HubCounters) -> HubStats {
    HubStats {
        published: c.published.load(Ordering::Relaxed),
        dropped: c.dropped.load(Ordering::Relaxed),
        taken: c.taken.load(Ordering::Relaxed),
        waited_ms: c.waited_ms.load(Ordering::Relaxed),
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

    #[test]
    fn publish_when_free_loses_nothing_and_stops_waiting_on_request() {
        let a: CameraId = "a".into();
        let b: CameraId = "b".into();
        let hub = FrameHub::new([a.clone(), b.clone()]);
        let h2 = hub.clone();
        let a2 = a.clone();
        // A fast publisher against a slow consumer: every frame arrives, none is dropped.
        let t = std::thread::spawn(move || {
            for s in 0..40 {
                h2.publish_when_free(frame(&a2, s), || true).unwrap();
            }
        });
        let mut seen = Vec::new();
        let mut out = Vec::new();
        while seen.len() < 40 {
            out.clear();
            assert!(hub.take(4, Duration::from_secs(5), &mut out));
            seen.extend(out.iter().map(|f| f.seq));
            std::thread::sleep(Duration::from_millis(2));
        }
        t.join().unwrap();
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        let st = hub.stats("a").unwrap();
        assert_eq!((st.published, st.dropped, st.taken), (40, 0, 40));
        // Another camera's pending frame never makes this one wait.
        hub.publish(frame(&b, 0)).unwrap();
        hub.publish_when_free(frame(&a, 40), || panic!("must not wait"))
            .unwrap();
        // A full slot and a stopping source: waits one slice, then replaces.
        let mut asked = 0;
        hub.publish_when_free(frame(&a, 41), || {
            asked += 1;
            false
        })
        .unwrap();
        assert_eq!(asked, 1);
        let st = hub.stats("a").unwrap();
        assert_eq!((st.published, st.dropped), (42, 1));
        // Close wakes a waiting publisher, which then reports the closed hub.
        let h3 = hub.clone();
        let t = std::thread::spawn(move || h3.publish_when_free(frame(&a, 42), || true));
        std::thread::sleep(Duration::from_millis(30));
        hub.close();
        assert_eq!(t.join().unwrap(), Err(PublishError::Closed));
    }

    #[test]
    fn cameras_come_and_go() {
        let a: CameraId = "a".into();
        let b: CameraId = "b".into();
        let hub = FrameHub::new([a.clone()]);
        assert!(hub.publish(frame(&b, 0)).is_err());
        hub.add_camera(b.clone());
        hub.publish(frame(&a, 0)).unwrap();
        hub.publish(frame(&b, 0)).unwrap();
        assert_eq!(hub.pending(), 2);
        // Removing drops the pending frame; publishing fails; the slot is reused.
        assert!(hub.remove_camera("a"));
        assert!(!hub.remove_camera("a"));
        assert_eq!(hub.pending(), 1);
        assert_eq!(
            hub.publish(frame(&a, 1)),
            Err(PublishError::UnknownCamera(a.clone()))
        );
        assert!(hub.stats("a").is_none());
        let c: CameraId = "c".into();
        hub.add_camera(c.clone());
        assert_eq!(hub.cameras(), vec![c.clone(), b.clone()]);
        assert_eq!(hub.stats("c").unwrap(), HubStats::default());
        hub.publish(frame(&c, 0)).unwrap();
        let mut out = Vec::new();
        assert!(hub.take(8, Duration::ZERO, &mut out));
        let got: Vec<&str> = out.iter().map(|f| f.camera.as_ref()).collect();
        assert_eq!(got.len(), 2);
        assert!(got.contains(&"b") && got.contains(&"c"));
        assert_eq!(hub.dropped_total(), 0);
    }

    #[test]
    fn a_waiting_publisher_of_a_removed_camera_is_told() {
        let a: CameraId = "a".into();
        let hub = FrameHub::new([a.clone()]);
        hub.publish(frame(&a, 0)).unwrap();
        let h2 = hub.clone();
        let a2 = a.clone();
        let t = std::thread::spawn(move || h2.publish_when_free(frame(&a2, 1), || true));
        std::thread::sleep(Duration::from_millis(100));
        hub.remove_camera("a");
        assert_eq!(
            t.join().unwrap(),
            Err(PublishError::UnknownCamera(a.clone()))
        );
    }
}

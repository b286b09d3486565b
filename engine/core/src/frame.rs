//! Frames as they leave ingest.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::{CameraId, UtcTime};

/// Packed RGB8 pixels (`width * height * 3` bytes, no row padding).
///
/// The bytes are shared, not copied: ingest wraps the GStreamer buffer it mapped, tests wrap
/// a `Vec<u8>`. Cloning a [`Frame`] clones an `Arc`.
#[derive(Clone)]
pub struct Pixels(Arc<dyn AsRef<[u8]> + Send + Sync>);

impl Pixels {
    /// Wraps any owner of bytes (a mapped GStreamer buffer, a `Vec<u8>`).
    pub fn new(owner: impl AsRef<[u8]> + Send + Sync + 'static) -> Self {
        Pixels(Arc::new(owner))
    }

    /// The RGB bytes.
    pub fn as_slice(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl fmt::Debug for Pixels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pixels({} bytes)", self.as_slice().len())
    }
}

/// Where a frame's capture time came from. Downstream stages (and operators reading an
/// incident) must know whether a time is the camera's clock or the engine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureClock {
    /// The sender's NTP wall clock (RTCP sender reports / RFC 7273 reference timestamps).
    Ntp,
    /// The engine's wall clock when the frame arrived (no sender clock available).
    Arrival,
    /// A replayed file: the configured start time plus the stream's own timestamp.
    Replay,
}

/// Pose of a PTZ camera for one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Pose {
    /// Name of the preset the camera is on (from the configured tour or a pose update).
    pub preset: Option<Arc<str>>,
    /// Pan (azimuth of the image centre, degrees from north) when known.
    pub pan_deg: Option<f64>,
    /// Tilt in degrees (positive up) when known.
    pub tilt_deg: Option<f64>,
    /// True while the camera moves between presets or settles: analysis skips such frames.
    pub moving: bool,
}

/// One decoded frame at analysis resolution.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Which camera produced it.
    pub camera: CameraId,
    /// Per-camera sequence number of delivered frames, starting at 0 at engine start and
    /// increasing across reconnects.
    pub seq: u64,
    /// Capture time in UTC.
    pub captured_at: UtcTime,
    /// Which clock `captured_at` comes from.
    pub clock: CaptureClock,
    /// Width in pixels (analysis resolution).
    pub width: u32,
    /// Height in pixels (analysis resolution).
    pub height: u32,
    /// Packed RGB8, `width * height * 3` bytes.
    pub pixels: Pixels,
    /// PTZ pose when known.
    pub pose: Option<Pose>,
}

impl Frame {
    /// A frame from owned RGB bytes (tests, stills, replay of images).
    pub fn from_rgb(
        camera: CameraId,
        seq: u64,
        captured_at: UtcTime,
        width: u32,
        height: u32,
        rgb: Vec<u8>,
    ) -> Self {
        Frame {
            camera,
            seq,
            captured_at,
            clock: CaptureClock::Replay,
            width,
            height,
            pixels: Pixels::new(rgb),
            pose: None,
        }
    }

    /// True when analysis must skip this frame (PTZ moving or settling).
    pub fn is_moving(&self) -> bool {
        self.pose.as_ref().is_some_and(|p| p.moving)
    }

    /// The preset this frame was taken at, if known.
    pub fn preset(&self) -> Option<&Arc<str>> {
        self.pose.as_ref().and_then(|p| p.preset.as_ref())
    }

    /// A reference to this frame that snapshots can resolve later.
    pub fn frame_ref(&self) -> crate::FrameRef {
        crate::FrameRef {
            camera: self.camera.clone(),
            seq: self.seq,
        }
    }
}

/// A small ring of a camera's most recent frames, shared between ingest (writer) and the
/// stages that need pixels later (snapshots, live view). Holding a frame costs an `Arc`.
#[derive(Debug)]
pub struct FrameRing {
    capacity: usize,
    frames: Mutex<VecDeque<Frame>>,
}

impl FrameRing {
    /// A ring keeping at most `capacity` frames (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        FrameRing {
            capacity,
            frames: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Frame>> {
        // A panic while holding this lock cannot leave the deque inconsistent.
        self.frames.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a frame, evicting the oldest when full.
    pub fn push(&self, frame: Frame) {
        let mut q = self.lock();
        if q.len() == self.capacity {
            q.pop_front();
        }
        q.push_back(frame);
    }

    /// The newest frame.
    pub fn latest(&self) -> Option<Frame> {
        self.lock().back().cloned()
    }

    /// The frame with this sequence number, if still held.
    pub fn get(&self, seq: u64) -> Option<Frame> {
        self.lock().iter().rev().find(|f| f.seq == seq).cloned()
    }

    /// The held frame whose sequence number is closest to `seq` (for snapshots of frames
    /// that were already evicted).
    pub fn nearest(&self, seq: u64) -> Option<Frame> {
        self.lock()
            .iter()
            .min_by_key(|f| f.seq.abs_diff(seq))
            .cloned()
    }

    /// How many frames are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no frame is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_newest() {
        let ring = FrameRing::new(3);
        let cam: CameraId = "c".into();
        for seq in 0..5 {
            ring.push(Frame::from_rgb(
                cam.clone(),
                seq,
                chrono::Utc::now(),
                1,
                1,
                vec![0, 0, 0],
            ));
        }
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.latest().map(|f| f.seq), Some(4));
        assert!(ring.get(1).is_none());
        assert_eq!(ring.get(2).map(|f| f.seq), Some(2));
        assert_eq!(ring.nearest(0).map(|f| f.seq), Some(2));
    }
}

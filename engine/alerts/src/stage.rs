//! The incidents stage: incident revisions from fusion into the store, as a thread behind a
//! handle.
//!
//! ```text
//! fusion ──Incident (bounded)──▶ incidents thread ──▶ Alerts::record_incidents (group commit:
//!                                      │               whatever is queued, store + outbox in
//!                                      │               one transaction) ──▶ sink workers
//!                                      ├─▶ snapshot: the newest event's frame, from its camera's FrameRing
//!                                      ├─▶ clip requests (a new camera incident, and each camera
//!                                      │   that joins it later; ClipSink, never blocks)
//!                                      └─▶ incidents.jsonl
//! ```
//!
//! The thread exits when its input closes (fusion has stopped).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use lookout_core::{CameraId, ClipRequest, ClipSink, Frame, FrameRing, Incident, IncidentKind};
use lookout_jsonl::JsonlWriter;

use crate::{Alerts, ApplyOutcome, GROUP_COMMIT_MAX};

/// The incidents stage.
#[derive(Debug)]
pub struct IncidentsStage;

/// A running incidents stage.
#[derive(Debug)]
pub struct IncidentsHandle {
    thread: JoinHandle<()>,
}

impl IncidentsStage {
    /// Starts the incidents thread: every revision from `input` is stored (with a snapshot
    /// from `rings` when its camera still holds the frame) and appended to `log`.
    pub fn spawn(
        alerts: Arc<Alerts>,
        rings: HashMap<CameraId, Arc<FrameRing>>,
        log: Option<PathBuf>,
        input: Receiver<Incident>,
    ) -> std::io::Result<IncidentsHandle> {
        IncidentsStage::spawn_with_clips(alerts, rings, None, log, input)
    }

    /// Like [`IncidentsStage::spawn`]; each new camera incident is also handed to `clips`
    /// ([`clip_request`]), which writes its clip on its own thread.
    pub fn spawn_with_clips(
        alerts: Arc<Alerts>,
        rings: HashMap<CameraId, Arc<FrameRing>>,
        clips: Option<Arc<dyn ClipSink>>,
        log: Option<PathBuf>,
        input: Receiver<Incident>,
    ) -> std::io::Result<IncidentsHandle> {
        let thread = std::thread::Builder::new()
            .name("incidents".into())
            .spawn(move || run(&alerts, &rings, clips.as_deref(), log, input))?;
        Ok(IncidentsHandle { thread })
    }
}

impl IncidentsHandle {
    /// Waits for the thread (it exits once its input has closed). Err if it panicked.
    pub fn join(self) -> std::thread::Result<()> {
        self.thread.join()
    }
}

fn run(
    alerts: &Alerts,
    rings: &HashMap<CameraId, Arc<FrameRing>>,
    clips: Option<&dyn ClipSink>,
    log: Option<PathBuf>,
    incidents: Receiver<Incident>,
) {
    let rotation = alerts.log_rotation();
    let mut file = log
        .as_deref()
        .map(|p| JsonlWriter::open_rotating(p, rotation));
    let mut batch: Vec<Incident> = Vec::with_capacity(GROUP_COMMIT_MAX);
    let mut clipped = Clipped::default();
    // Group commit: whatever is already queued (up to GROUP_COMMIT_MAX revisions) is stored
    // with its outbox rows in one transaction; a lone incident is stored at once.
    while let Ok(first) = incidents.recv() {
        batch.push(first);
        batch.extend(incidents.try_iter().take(GROUP_COMMIT_MAX - 1));
        let frames: Vec<Option<Frame>> = batch.iter().map(|i| snapshot_frame(i, rings)).collect();
        let items: Vec<(&Incident, Option<&Frame>)> = batch
            .iter()
            .zip(frames.iter())
            .map(|(i, f)| (i, f.as_ref()))
            .collect();
        let results = alerts.record_incidents(&items);
        for (inc, res) in batch.iter().zip(results) {
            match res {
                Err(e) => tracing::error!(id = %inc.id, error = %e, "Cannot store an incident."),
                Ok(ApplyOutcome::Created { id, .. }) => {
                    if let Some(c) = clips {
                        for req in new_clip_requests(alerts, &mut clipped, &id, inc, true) {
                            c.request(req);
                        }
                    }
                }
                Ok(ApplyOutcome::Updated { id, .. }) => {
                    if let Some(c) = clips {
                        for req in new_clip_requests(alerts, &mut clipped, &id, inc, false) {
                            c.request(req);
                        }
                    }
                }
                Ok(_) => {}
            }
            if inc.revision == 1 {
                tracing::info!(id = %inc.id, kind = inc.kind.as_str(), confidence = ?inc.confidence, "New incident.");
            } else {
                tracing::debug!(id = %inc.id, revision = inc.revision, confidence = ?inc.confidence, "Incident updated.");
            }
            if let Some(f) = file.as_mut() {
                f.write(inc);
            }
        }
        batch.clear();
    }
}

/// Incidents remembered by [`Clipped`].
const CLIPPED_MAX: usize = 4096;

/// The cameras each recent incident has asked a clip of (the oldest forgotten beyond
/// [`CLIPPED_MAX`]; a forgotten one is looked up on disk again).
#[derive(Debug, Default)]
pub struct Clipped {
    order: VecDeque<String>,
    cameras: HashMap<String, HashSet<CameraId>>,
}

impl Clipped {
    /// The cameras asked for incident `id`; `seed` gives them when `id` is not remembered.
    pub fn entry(
        &mut self,
        id: &str,
        seed: impl FnOnce() -> HashSet<CameraId>,
    ) -> &mut HashSet<CameraId> {
        if !self.cameras.contains_key(id) {
            while self.order.len() >= CLIPPED_MAX {
                if let Some(old) = self.order.pop_front() {
                    self.cameras.remove(&old);
                }
            }
            self.order.push_back(id.to_string());
            self.cameras.insert(id.to_string(), seed());
        }
        self.cameras.entry(id.to_string()).or_default()
    }
}

/// The frame an incident's newest event asked to snapshot, if still held by its camera.
fn snapshot_frame(inc: &Incident, rings: &HashMap<CameraId, Arc<FrameRing>>) -> Option<Frame> {
    let r = inc.events.iter().rev().find_map(|e| e.snapshot.as_ref())?;
    let ring = rings.get(&r.camera)?;
    ring.get(r.seq).or_else(|| ring.nearest(r.seq))
}

/// The clip a new incident gets: its earliest camera event's camera, around that event's
/// first sighting. `None` for camera-health and satellite-only incidents.
pub fn clip_request(alerts: &Alerts, stored_id: &str, inc: &Incident) -> Option<ClipRequest> {
    if inc.kind == IncidentKind::CameraHealth {
        return None;
    }
    let first = inc.events.iter().min_by_key(|e| e.first_seen)?;
    Some(ClipRequest {
        incident: stored_id.to_string(),
        camera: first.camera.clone(),
        at: first.first_seen,
        path: alerts.clip_path(stored_id),
    })
}

/// The clips a stored revision asks for: on `created`, the first camera's
/// ([`clip_request`]), and every camera not asked before ([`camera_clip_requests`]). The
/// cameras asked are remembered in `clipped` (or, for an incident it forgot, read back from
/// the clips on disk).
pub fn new_clip_requests(
    alerts: &Alerts,
    clipped: &mut Clipped,
    stored_id: &str,
    inc: &Incident,
    created: bool,
) -> Vec<ClipRequest> {
    let done = clipped.entry(stored_id, || {
        alerts
            .clips_of(stored_id)
            .into_iter()
            .map(|(_, i)| CameraId::from(i.camera.as_str()))
            .collect()
    });
    let mut out = Vec::new();
    if created {
        if let Some(req) = clip_request(alerts, stored_id, inc) {
            done.insert(req.camera.clone());
            out.push(req);
        }
    }
    out.extend(camera_clip_requests(alerts, stored_id, inc, done));
    out
}

/// Clips of the incident's cameras not in `done` (which they are added to): each around
/// that camera's earliest event in this revision, to [`Alerts::camera_clip_path`]. A
/// multi-camera incident (fusion joined several cameras' events) gets one clip per camera.
pub fn camera_clip_requests(
    alerts: &Alerts,
    stored_id: &str,
    inc: &Incident,
    done: &mut HashSet<CameraId>,
) -> Vec<ClipRequest> {
    if inc.kind == IncidentKind::CameraHealth {
        return Vec::new();
    }
    let mut first: Vec<(&CameraId, lookout_core::UtcTime)> = Vec::new();
    for e in &inc.events {
        match first.iter_mut().find(|(c, _)| **c == e.camera) {
            Some((_, t)) => *t = (*t).min(e.first_seen),
            None => first.push((&e.camera, e.first_seen)),
        }
    }
    first.sort_by_key(|(_, t)| *t);
    first
        .into_iter()
        .filter(|(c, _)| done.insert((*c).clone()))
        .map(|(camera, at)| ClipRequest {
            incident: stored_id.to_string(),
            camera: camera.clone(),
            at,
            path: alerts.camera_clip_path(stored_id, camera),
        })
        .collect()
}

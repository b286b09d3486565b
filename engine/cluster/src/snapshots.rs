//! Snapshots of edge cameras through the site's JetStream object store.
//!
//! The hub holds no `FrameRing` of an edge's camera, so an edge uploads the frame an event
//! asks to snapshot (`Event::snapshot`: set on `start` and whenever the best score
//! improves) as JPEG into the bucket `LOOKOUT_<site>_snapshots`, object `<camera>/<seq>`,
//! before it publishes the event. The hub fetches the object when it stores a revision
//! whose snapshot frame changed. The bucket has the limits of `[cluster.stream]` (age and
//! bytes; the oldest objects go first).
//!
//! Never fatal, never blocking for long: each put or get is bounded by [`TIMEOUT`]; a bucket
//! that cannot be opened, a failed put or a missing object is logged (naming the object)
//! and the event or incident goes on without a picture.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, object_store};
use lookout_config::cluster::ClusterConfig;
use lookout_core::{CameraId, Event, FrameRef, Incident};
use tokio::io::AsyncReadExt;

use crate::{js_err, ClusterError, Subjects};

/// Bound of one object store request (open, put, get).
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// Most incidents whose last fetched snapshot the hub remembers (then it starts afresh).
const REMEMBERED: usize = 10_000;

/// The object name of a frame: `<camera>/<seq>`.
pub fn object_name(r: &FrameRef) -> String {
    format!("{}/{}", r.camera, r.seq)
}

/// Opens the site's snapshot bucket, creating it with the limits of `[cluster.stream]`
/// when absent.
pub async fn open(
    js: &jetstream::Context,
    cfg: &ClusterConfig,
) -> Result<object_store::ObjectStore, ClusterError> {
    let bucket = Subjects::new(&cfg.site).snapshot_bucket();
    let open = async {
        match js.get_object_store(&bucket).await {
            Ok(s) => Ok(s),
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: bucket.clone(),
                    description: Some("Lookout: JPEG snapshots of edge cameras".into()),
                    max_age: Duration::from_secs_f64(cfg.stream.max_age_s),
                    max_bytes: cfg.stream.max_bytes,
                    ..Default::default()
                })
                .await
                .map_err(js_err),
        }
    };
    tokio::time::timeout(TIMEOUT, open)
        .await
        .map_err(|_| js_err(format!("opening object store {bucket}: timed out")))?
}

/// Counters of snapshot uploads (edge) or fetches (hub).
#[derive(Debug, Default)]
pub struct SnapshotStats {
    /// Objects put or fetched.
    pub ok: AtomicU64,
    /// Puts or fetches that failed (logged; the event or incident went on without).
    pub failed: AtomicU64,
}

/// Encodes the frame a [`FrameRef`] names as JPEG (`None`: the camera's ring no longer
/// holds it).
pub type EncodeFn = Box<dyn FnMut(&FrameRef) -> Option<Vec<u8>> + Send>;

/// The edge's side: puts the frames events ask to snapshot.
pub struct Uploader {
    store: Option<object_store::ObjectStore>,
    encode: EncodeFn,
    last: HashMap<CameraId, u64>,
    stats: Arc<SnapshotStats>,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("store", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl Uploader {
    /// An uploader into `store` (`None`: the bucket could not be opened; every snapshot is
    /// then skipped with a warning) with the frames `encode` gives.
    pub fn new(store: Option<object_store::ObjectStore>, encode: EncodeFn) -> Uploader {
        Uploader {
            store,
            encode,
            last: HashMap::new(),
            stats: Arc::default(),
        }
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<SnapshotStats> {
        self.stats.clone()
    }

    /// Puts the frame `ev` asks to snapshot, unless it is the one last put for its camera.
    pub async fn upload(&mut self, ev: &Event) {
        let Some(r) = &ev.snapshot else { return };
        if self.last.get(&r.camera) == Some(&r.seq) {
            return;
        }
        self.last.insert(r.camera.clone(), r.seq);
        let name = object_name(r);
        let Some(store) = &self.store else {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(object = %name, "No snapshot object store; the event goes without a picture.");
            return;
        };
        let Some(jpg) = (self.encode)(r) else {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(object = %name, "The snapshot frame is no longer held; the event goes without a picture.");
            return;
        };
        let mut body = jpg.as_slice();
        let put = store.put(name.as_str(), &mut body);
        match tokio::time::timeout(TIMEOUT, put).await {
            Ok(Ok(_)) => {
                self.stats.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(object = %name, error = %e, "Cannot put a snapshot; the event goes without a picture.");
            }
            Err(_) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(object = %name, "Putting a snapshot timed out; the event goes without a picture.");
            }
        }
    }
}

/// The hub's side: fetches an incident's snapshot object when its snapshot frame changed.
pub struct Fetcher {
    handle: tokio::runtime::Handle,
    store: Option<object_store::ObjectStore>,
    last: HashMap<String, FrameRef>,
    stats: Arc<SnapshotStats>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("store", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

/// A fetched snapshot.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The frame it shows.
    pub frame: FrameRef,
    /// Capture time of that frame (the last-seen time of the event that asked for it).
    pub captured_at: lookout_core::UtcTime,
    /// The JPEG.
    pub jpeg: Vec<u8>,
}

impl Fetcher {
    /// A fetcher from `store` (`None`: the bucket could not be opened), running its
    /// requests on `handle`. Its methods block (bounded) and may be called from a thread
    /// that is itself inside `block_on`.
    pub fn new(
        handle: tokio::runtime::Handle,
        store: Option<object_store::ObjectStore>,
    ) -> Fetcher {
        Fetcher {
            handle,
            store,
            last: HashMap::new(),
            stats: Arc::default(),
        }
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<SnapshotStats> {
        self.stats.clone()
    }

    /// The snapshot of `inc`'s newest event that asked for one, when that frame is not the
    /// one already fetched for this incident (the store keeps an incident's last snapshot).
    /// `None` also when the bucket or the object is missing (logged, naming the object).
    pub fn fetch(&mut self, inc: &Incident) -> Option<Fetched> {
        let ev = inc.events.iter().rev().find(|e| e.snapshot.is_some())?;
        let r = ev.snapshot.as_ref()?;
        if self.last.get(&inc.id) == Some(r) {
            return None;
        }
        if self.last.len() >= REMEMBERED {
            self.last.clear();
        }
        self.last.insert(inc.id.clone(), r.clone());
        let name = object_name(r);
        let Some(store) = self.store.clone() else {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(object = %name, id = %inc.id, "No snapshot object store; the incident is stored without a picture.");
            return None;
        };
        let handle = self.handle.clone();
        let get = async {
            let mut o = store.get(name.as_str()).await.map_err(js_err)?;
            let mut jpeg = Vec::new();
            o.read_to_end(&mut jpeg).await.map_err(js_err)?;
            Ok::<_, ClusterError>(jpeg)
        };
        // The caller may be inside `block_on`: run the request on a thread of its own.
        let got = std::thread::scope(|s| {
            // The timer is made inside the runtime (`timeout` needs its context).
            s.spawn(|| handle.block_on(async { tokio::time::timeout(TIMEOUT, get).await }))
                .join()
        });
        match got {
            Ok(Ok(Ok(jpeg))) => {
                self.stats.ok.fetch_add(1, Ordering::Relaxed);
                Some(Fetched {
                    frame: r.clone(),
                    captured_at: ev.last_seen,
                    jpeg,
                })
            }
            Ok(Ok(Err(e))) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(object = %name, id = %inc.id, error = %e, "Cannot fetch a snapshot; the incident is stored without a picture.");
                None
            }
            Ok(Err(_)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(object = %name, id = %inc.id, "Fetching a snapshot timed out; the incident is stored without a picture.");
                None
            }
            Err(_) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(object = %name, "The snapshot fetch panicked.");
                None
            }
        }
    }
}

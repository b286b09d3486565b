//! Incident clips of edge cameras through the site's JetStream object store.
//!
//! ```text
//! edge: rules event `start` ─▶ its ClipWriter (clip around the event's first sighting)
//!       ─▶ clip-upload thread: waits for the MP4 and its ClipInfo, puts both into the bucket
//!          LOOKOUT_<site>_clips as `<camera>/<event>.mp4` and `.json`, deletes its copy
//! hub:  an incident created (or a camera joining it) ─▶ clip-fetch thread: polls for the
//!       object of that camera's earliest event, writes it where the hub's clips live
//!       (`<id>.mp4` / `<id>.<camera>.mp4`, the ClipInfo naming the hub's incident)
//! ```
//!
//! The edge that owns the camera writes the clip (it holds the encoded packets); the hub
//! never sees a packet. Bounded: a clip larger than the limit the edge is given is not
//! put (logged); the bucket has the limits of `[cluster.stream]` (age and bytes). Never
//! fatal: a missing bucket, a failed put or a clip that never comes is logged (naming the
//! object) and the incident goes on without it. Each object store request is bounded by
//! [`TIMEOUT`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, object_store};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use lookout_config::cluster::ClusterConfig;
use lookout_core::ClipInfo;
use tokio::io::AsyncReadExt;

use crate::{js_err, ClusterError};

/// Bound of one object store request (open, put, get).
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Most clips waited for at once (edge or hub); more are dropped (logged).
const PENDING_MAX: usize = 64;

/// The bucket of a site's clips.
pub fn bucket(site: &str) -> String {
    format!("LOOKOUT_{site}_clips")
}

/// The object name (without extension) of the clip an edge writes for an event:
/// `<camera>/<event>` with anything but letters, digits, `-` and `_` in the event id
/// replaced.
pub fn object_name(camera: &str, event: &str) -> String {
    let safe: String = event
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{camera}/{safe}")
}

/// Opens the site's clip bucket, creating it with the limits of `[cluster.stream]` when
/// absent.
pub async fn open(
    js: &jetstream::Context,
    cfg: &ClusterConfig,
) -> Result<object_store::ObjectStore, ClusterError> {
    let bucket = bucket(&cfg.site);
    let open = async {
        match js.get_object_store(&bucket).await {
            Ok(s) => Ok(s),
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: bucket.clone(),
                    description: Some("Lookout: incident clips of edge cameras".into()),
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

/// Counters of clip uploads (edge) or fetches (hub).
#[derive(Debug, Default)]
pub struct ClipTransferStats {
    /// Clips put or fetched.
    pub ok: AtomicU64,
    /// Clips that failed or never came (logged).
    pub failed: AtomicU64,
}

/// A clip the edge's writer was asked for: put it once written.
#[derive(Debug, Clone)]
pub struct EdgeClip {
    /// Object name without extension ([`object_name`]).
    pub object: String,
    /// Where the edge's clip writer puts the MP4 (its `ClipInfo` beside it as `.json`).
    pub path: PathBuf,
}

/// A clip the hub wants: fetch the object and write it to `path`.
#[derive(Debug, Clone)]
pub struct HubClip {
    /// Object name without extension ([`object_name`]).
    pub object: String,
    /// The hub's incident id (written into the clip's `ClipInfo`).
    pub incident: String,
    /// Where the hub keeps this clip.
    pub path: PathBuf,
}

fn with_suffix(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn run_bounded<T>(
    handle: &tokio::runtime::Handle,
    fut: impl std::future::Future<Output = Result<T, ClusterError>>,
) -> Result<T, String> {
    handle
        .block_on(async { tokio::time::timeout(TIMEOUT, fut).await })
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())
}

/// The edge's side: a thread that waits (at most `give_up` each) for the clips its writer
/// was asked for and puts each into `store` (clips over `max_bytes` are not put), then
/// deletes its own copy. It ends when `rx` closes: clips already written are still put.
pub fn spawn_uploader(
    handle: tokio::runtime::Handle,
    store: Option<object_store::ObjectStore>,
    rx: Receiver<EdgeClip>,
    give_up: Duration,
    max_bytes: u64,
) -> std::io::Result<(JoinHandle<()>, Arc<ClipTransferStats>)> {
    let stats = Arc::new(ClipTransferStats::default());
    let st = stats.clone();
    let thread = std::thread::Builder::new()
        .name("cluster-clip-upload".into())
        .spawn(move || {
            let mut pending: Vec<(EdgeClip, Instant)> = Vec::new();
            let mut open = true;
            while open || !pending.is_empty() {
                if open {
                    match rx.recv_timeout(Duration::from_millis(500)) {
                        Ok(c) if pending.len() < PENDING_MAX => pending.push((c, Instant::now())),
                        Ok(c) => {
                            st.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(object = %c.object, "Too many clips waiting to be put; this one is dropped.");
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => open = false,
                    }
                } else {
                    std::thread::sleep(Duration::from_millis(200));
                }
                pending.retain(|(c, since)| {
                    let json = c.path.with_extension("json");
                    let written = c.path.is_file() && json.is_file();
                    if !written {
                        // Still being written; once the writer has stopped (rx closed) it
                        // has written what it could.
                        if since.elapsed() < give_up && open {
                            return true;
                        }
                        if since.elapsed() >= give_up {
                            st.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(object = %c.object, "The edge's clip was not written in time; the hub gets none.");
                        }
                        return false;
                    }
                    match put(&handle, store.as_ref(), c, max_bytes) {
                        Ok(bytes) => {
                            st.ok.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(object = %c.object, bytes, "Clip put for the hub.");
                        }
                        Err(e) => {
                            st.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(object = %c.object, error = %e, "Cannot put a clip; the hub gets none.");
                        }
                    }
                    let _ = std::fs::remove_file(&c.path);
                    let _ = std::fs::remove_file(&json);
                    false
                });
            }
        })?;
    Ok((thread, stats))
}

fn put(
    handle: &tokio::runtime::Handle,
    store: Option<&object_store::ObjectStore>,
    c: &EdgeClip,
    max_bytes: u64,
) -> Result<u64, String> {
    let store = store.ok_or("no clip object store")?;
    let size = std::fs::metadata(&c.path)
        .map_err(|e| format!("{}: {e}", c.path.display()))?
        .len();
    if size > max_bytes {
        return Err(format!("{size} bytes, more than the {max_bytes} allowed"));
    }
    let mp4 = std::fs::read(&c.path).map_err(|e| format!("{}: {e}", c.path.display()))?;
    let json = std::fs::read(c.path.with_extension("json"))
        .map_err(|e| format!("{}: {e}", c.path.display()))?;
    // The MP4 first: the hub looks for the description.
    for (ext, body) in [("mp4", &mp4), ("json", &json)] {
        let name = format!("{}.{ext}", c.object);
        let mut b = body.as_slice();
        run_bounded(handle, async {
            store.put(name.as_str(), &mut b).await.map_err(js_err)?;
            Ok(())
        })?;
    }
    Ok(size)
}

/// The hub's side: a thread that polls (every second, at most `give_up` each) for the
/// clips it was asked for and writes each where the hub keeps it. It ends when `stop` is
/// set or `rx` closes (clips still missing then are not waited for).
pub fn spawn_fetcher(
    handle: tokio::runtime::Handle,
    store: Option<object_store::ObjectStore>,
    rx: Receiver<HubClip>,
    give_up: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(JoinHandle<()>, Arc<ClipTransferStats>)> {
    let stats = Arc::new(ClipTransferStats::default());
    let st = stats.clone();
    let thread = std::thread::Builder::new()
        .name("cluster-clip-fetch".into())
        .spawn(move || {
            let mut pending: Vec<(HubClip, Instant)> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(c) if pending.len() < PENDING_MAX => pending.push((c, Instant::now())),
                    Ok(c) => {
                        st.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(object = %c.object, incident = %c.incident, "Too many clips awaited; this one is not fetched.");
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                pending.retain(|(c, since)| {
                    if stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    match fetch(&handle, store.as_ref(), c) {
                        Ok(true) => {
                            st.ok.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(object = %c.object, incident = %c.incident, "Clip fetched from the edge.");
                            false
                        }
                        Ok(false) if since.elapsed() < give_up => true,
                        Ok(false) => {
                            st.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(object = %c.object, incident = %c.incident, "The edge's clip did not come; the incident goes without.");
                            false
                        }
                        Err(e) => {
                            st.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(object = %c.object, incident = %c.incident, error = %e, "Cannot fetch a clip; the incident goes without.");
                            false
                        }
                    }
                });
            }
        })?;
    Ok((thread, stats))
}

/// Ok(false): not there yet.
fn fetch(
    handle: &tokio::runtime::Handle,
    store: Option<&object_store::ObjectStore>,
    c: &HubClip,
) -> Result<bool, String> {
    let store = store.ok_or("no clip object store")?;
    let get = |name: String| {
        run_bounded(handle, async {
            let mut o = store.get(name.as_str()).await.map_err(js_err)?;
            let mut body = Vec::new();
            o.read_to_end(&mut body).await.map_err(js_err)?;
            Ok(body)
        })
    };
    // The description is put last: once it is there, so is the MP4.
    let Ok(json) = get(format!("{}.json", c.object)) else {
        return Ok(false);
    };
    let mut info: ClipInfo =
        serde_json::from_slice(&json).map_err(|e| format!("{}.json: {e}", c.object))?;
    info.incident = c.incident.clone();
    let mp4 = get(format!("{}.mp4", c.object))?;
    if let Some(dir) = c.path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = with_suffix(&c.path, ".part");
    std::fs::write(&tmp, &mp4).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &c.path).map_err(|e| format!("{}: {e}", c.path.display()))?;
    let info_path = c.path.with_extension("json");
    let info_tmp = with_suffix(&info_path, ".part");
    let body = serde_json::to_vec_pretty(&info).map_err(|e| e.to_string())?;
    std::fs::write(&info_tmp, body).map_err(|e| format!("{}: {e}", info_tmp.display()))?;
    std::fs::rename(&info_tmp, &info_path).map_err(|e| format!("{}: {e}", info_path.display()))?;
    Ok(true)
}

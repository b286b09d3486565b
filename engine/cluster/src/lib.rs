//! # lookout-cluster
//!
//! Cluster mode: the stages' messages ([`lookout_core::wire::Envelope`], JSON) over NATS
//! JetStream, so `edge` nodes (ingest, inference, rules) and a `hub` (fusion, alerts,
//! server) can run on different machines. The stage crates know nothing of NATS; this crate
//! is the transport and the hub's consuming loop.
//!
//! ```text
//! edge ──FusionMsg──▶ lookout.<site>.cam.<camera>.events ─┐
//! hub's hotspot feed ──HotspotBatch──▶ lookout.<site>.sat.hotspots ─┤ stream LOOKOUT_<site> (limits, dedup window)
//! hub/API ──ControlMsg──▶ lookout.<site>.control.{rules,cameras} ┘ (every edge follows them: control::follow)
//!                                                    └─▶ durable consumer "hub" ──▶ Fusion ──▶ store, then ack
//! camera leases: KV bucket lookout-leases-<site> (TTL), key <camera> = node name
//! ```
//!
//! * Every message carries `Nats-Msg-Id` ([`msg_id`]): a stable key (event id, phase and
//!   last-seen time; camera and clock time; a batch's content hash), so a republished
//!   message is dropped by the server within the stream's duplicate window, and by the hub
//!   ([`hub::HubCore`]) beyond it: an event is fused only when it is newer than what the
//!   hub has seen of that event id.
//! * The hub acks a message only after the incident revisions it caused are stored. When
//!   it restarts, it first replays the stream up to its consumer's ack floor into a fresh
//!   fusion (fusion is deterministic over the event stream; the store answers `Duplicate`
//!   for a revision it already has), then goes on from the ack floor: no incident is lost
//!   and none is created twice.
//! * A message of an unknown wire version is logged, counted and acked: it never stops the
//!   hub.

pub mod clips;
pub mod control;
pub mod hub;
pub mod lease;
pub mod live;
pub mod publish;
pub mod snapshots;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use lookout_config::cluster::ClusterConfig;
use lookout_core::wire::{ControlMsg, FusionMsg, HotspotBatch, WireMsg};

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The node was asked to stop while waiting.
    #[error("stopped")]
    Stopped,
    /// A JetStream request failed (stream, consumer, KV).
    #[error("NATS JetStream: {0}")]
    JetStream(String),
    /// Another hub took the site's hub lease (this one missed its heartbeats).
    #[error("another hub took the site's hub lease")]
    LeaseLost,
    /// Fusion could not start for this config.
    #[error("fusion: {0}")]
    Fusion(String),
}

fn js_err(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::JetStream(e.to_string())
}

/// The subjects and names of one site.
#[derive(Debug, Clone)]
pub struct Subjects {
    site: String,
}

impl Subjects {
    /// The subjects of `site` (a validated `cluster.site`).
    pub fn new(site: &str) -> Subjects {
        Subjects {
            site: site.to_string(),
        }
    }

    /// The site's stream: `LOOKOUT_<site>`.
    pub fn stream(&self) -> String {
        format!("LOOKOUT_{}", self.site)
    }

    /// Every subject of the site's stream: `lookout.<site>.>`.
    pub fn all(&self) -> String {
        format!("lookout.{}.>", self.site)
    }

    /// A camera's events and clocks (rules → fusion): `lookout.<site>.cam.<camera>.events`.
    pub fn events(&self, camera: &str) -> String {
        format!("lookout.{}.cam.{camera}.events", self.site)
    }

    /// Satellite hotspot batches (the hub's feed → fusion): `lookout.<site>.sat.hotspots`.
    pub fn hotspots(&self) -> String {
        format!("lookout.{}.sat.hotspots", self.site)
    }

    /// The running `[rules]` (hub → every edge): `lookout.<site>.control.rules`.
    pub fn control_rules(&self) -> String {
        format!("lookout.{}.control.rules", self.site)
    }

    /// The running `[[cameras]]` (hub → every edge, and the hub's own fusion):
    /// `lookout.<site>.control.cameras`.
    pub fn control_cameras(&self) -> String {
        format!("lookout.{}.control.cameras", self.site)
    }

    /// The camera lease bucket: `lookout-leases-<site>`.
    pub fn lease_bucket(&self) -> String {
        format!("lookout-leases-{}", self.site)
    }

    /// The snapshot object store bucket: `LOOKOUT_<site>_snapshots`.
    pub fn snapshot_bucket(&self) -> String {
        format!("LOOKOUT_{}_snapshots", self.site)
    }

    /// The hub's durable consumer.
    pub fn hub_consumer(&self) -> &'static str {
        "hub"
    }

    /// The subject a message is published on.
    pub fn subject_of(&self, msg: &WireMsg) -> String {
        match msg {
            WireMsg::Fusion(FusionMsg::Event(e)) => self.events(&e.camera),
            WireMsg::Fusion(FusionMsg::Clock { camera, .. }) => self.events(camera),
            WireMsg::Stage(m) => self.events(stage_camera(m)),
            WireMsg::Hotspots(_) => self.hotspots(),
            WireMsg::Incident(_) => format!("lookout.{}.incidents", self.site),
            WireMsg::Control(ControlMsg::Rules { .. }) => self.control_rules(),
            WireMsg::Control(ControlMsg::Cameras { .. }) => self.control_cameras(),
        }
    }
}

fn stage_camera(m: &lookout_core::StageMsg) -> &str {
    use lookout_core::StageMsg;
    match m {
        StageMsg::Frame(f) => &f.camera,
        StageMsg::Health(h) => &h.camera,
        StageMsg::ImageStats(s) => &s.camera,
        StageMsg::Watermark { .. } => "_all",
    }
}

/// The stable de-duplication key of a message (`Nats-Msg-Id`): the same message published
/// twice has the same key.
pub fn msg_id(msg: &WireMsg) -> String {
    match msg {
        WireMsg::Fusion(FusionMsg::Event(e)) => format!(
            "ev:{}:{}:{}",
            e.id,
            phase_str(e.phase),
            e.last_seen.timestamp_millis()
        ),
        WireMsg::Fusion(FusionMsg::Clock { camera, at }) => {
            format!("clock:{camera}:{}", at.timestamp_millis())
        }
        WireMsg::Hotspots(HotspotBatch { hotspots }) => {
            format!("hs:{:016x}", content_hash(&hotspots))
        }
        WireMsg::Control(ControlMsg::Rules { version, rules }) => {
            format!("rules:{version}:{:016x}", content_hash(rules))
        }
        WireMsg::Control(ControlMsg::Cameras { version, cameras }) => {
            format!("cameras:{version}:{:016x}", content_hash(cameras))
        }
        WireMsg::Incident(i) => format!("inc:{}:{}", i.id, i.revision),
        WireMsg::Stage(m) => format!("stage:{:016x}", content_hash(m)),
    }
}

fn phase_str(p: lookout_core::EventPhase) -> &'static str {
    match p {
        lookout_core::EventPhase::Start => "start",
        lookout_core::EventPhase::Update => "update",
        lookout_core::EventPhase::End => "end",
    }
}

/// FNV-1a over the JSON form: stable across builds and machines (unlike `DefaultHasher`).
fn content_hash<T: serde::Serialize>(v: &T) -> u64 {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The node's name: `cluster.node`, or the host name, or `node-<pid>`.
pub fn node_name(cfg: &ClusterConfig) -> String {
    if !cfg.node.is_empty() {
        return cfg.node.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if host.is_empty() {
        format!("node-{}", std::process::id())
    } else {
        host
    }
}

/// Connects to the first reachable of `cfg.nats`, retrying with exponential backoff (0.5 s
/// doubling to 15 s) until it succeeds or `stop` is set. Every failed attempt is logged
/// with the URLs tried and the reason; the client then reconnects by itself for ever.
pub async fn connect(
    cfg: &ClusterConfig,
    node: &str,
    stop: &AtomicBool,
) -> Result<async_nats::Client, ClusterError> {
    let mut backoff = Duration::from_millis(500);
    let urls = cfg.nats.join(", ");
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err(ClusterError::Stopped);
        }
        let opts = async_nats::ConnectOptions::new()
            .name(format!("lookout-{node}"))
            .connection_timeout(Duration::from_secs_f64(cfg.connect_timeout_s))
            .max_reconnects(None)
            .event_callback(|ev| async move {
                match ev {
                    async_nats::Event::Disconnected => {
                        tracing::warn!("Lost the connection to NATS; reconnecting.")
                    }
                    async_nats::Event::Connected => tracing::info!("Connected to NATS."),
                    other => tracing::debug!(event = %other, "NATS client event."),
                }
            });
        match opts.connect(cfg.nats.clone()).await {
            Ok(c) => {
                tracing::info!(url = %urls, node, "Connected to NATS.");
                return Ok(c);
            }
            Err(e) => {
                tracing::error!(
                    url = %urls,
                    error = %e,
                    retry_in_s = backoff.as_secs_f64(),
                    "Cannot reach NATS at {urls}: {e}; retrying in {:.1} s.",
                    backoff.as_secs_f64()
                );
                let until = tokio::time::Instant::now() + backoff;
                while tokio::time::Instant::now() < until {
                    if stop.load(Ordering::SeqCst) {
                        return Err(ClusterError::Stopped);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                backoff = (backoff * 2).min(Duration::from_secs(15));
            }
        }
    }
}

/// The site's stream with `cfg.stream`'s limits (created if missing; an existing stream's
/// limits are updated to the config's).
pub async fn ensure_stream(
    js: &jetstream::Context,
    cfg: &ClusterConfig,
) -> Result<jetstream::stream::Stream, ClusterError> {
    let s = Subjects::new(&cfg.site);
    let config = jetstream::stream::Config {
        name: s.stream(),
        subjects: vec![s.all()],
        max_age: Duration::from_secs_f64(cfg.stream.max_age_s),
        max_bytes: cfg.stream.max_bytes,
        max_messages: cfg.stream.max_msgs,
        duplicate_window: Duration::from_secs_f64(cfg.stream.duplicate_window_s),
        num_replicas: cfg.stream.replicas,
        storage: jetstream::stream::StorageType::File,
        discard: jetstream::stream::DiscardPolicy::Old,
        allow_direct: true,
        ..Default::default()
    };
    match js.get_stream(s.stream()).await {
        Ok(mut stream) => {
            let same = stream.info().await.map_err(js_err).is_ok_and(|i| {
                i.config.max_age == config.max_age
                    && i.config.max_bytes == config.max_bytes
                    && i.config.max_messages == config.max_messages
                    && i.config.duplicate_window == config.duplicate_window
            });
            if !same {
                js.update_stream(config).await.map_err(js_err)?;
            }
            Ok(stream)
        }
        Err(_) => js.get_or_create_stream(config).await.map_err(js_err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use lookout_core::{Event, EventKind, EventPhase};

    fn event(phase: EventPhase, last: i64) -> Event {
        let t = |s| chrono::Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap();
        Event {
            id: "tower1:smoke:7:1700000000000".into(),
            camera: "tower1".into(),
            kind: EventKind::Smoke,
            phase,
            track: Some(7),
            zone: None,
            preset: None,
            best_score: 0.8,
            first_seen: t(0),
            last_seen: t(last),
            bbox: None,
            frame_size: None,
            snapshot: None,
            count: None,
            detail: String::new(),
        }
    }

    #[test]
    fn subjects_and_ids_are_stable() {
        let s = Subjects::new("rhodes");
        assert_eq!(s.stream(), "LOOKOUT_rhodes");
        assert_eq!(s.events("tower1"), "lookout.rhodes.cam.tower1.events");
        let a = WireMsg::Fusion(FusionMsg::Event(event(EventPhase::Start, 0)));
        let b = WireMsg::Fusion(FusionMsg::Event(event(EventPhase::Update, 5)));
        assert_eq!(msg_id(&a), msg_id(&a.clone()));
        assert_ne!(msg_id(&a), msg_id(&b));
        assert_eq!(s.subject_of(&a), "lookout.rhodes.cam.tower1.events");
        let h1 = WireMsg::Hotspots(HotspotBatch { hotspots: vec![] });
        assert_eq!(msg_id(&h1), msg_id(&h1.clone()));
    }
}

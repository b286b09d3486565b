//! The hub: the site's stream through one fusion into the store.
//!
//! ```text
//! stream LOOKOUT_<site> ──durable pull consumer "hub" (ack: all)──▶ HubCore::on_bytes
//!        decode (unknown version / malformed: logged, counted, acked)
//!        de-duplicate by event id (an event not newer than the one fused is dropped)
//!        Fusion (events, camera clocks, hotspot batches) ──▶ incident revisions
//!   ──▶ HubSink::incidents (stored) ──▶ ack of the last message of the burst
//! ```
//!
//! [`HubCore`] is the deterministic part (no I/O); [`run`] is the consuming loop. On start,
//! `run` replays the stream from its first message up to the consumer's ack floor into the
//! fresh `HubCore` (without the sink's event and hotspot records, and with the incident
//! revisions handed to the sink, which answers `Duplicate` for those it has), so fusion's
//! state is what it was when the previous hub stopped.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::{FutureExt, StreamExt};
use lookout_config::Config;
use lookout_core::wire::{ControlMsg, Envelope, FusionMsg, HotspotBatch, WireError, WireMsg};
use lookout_core::{Event, EventPhase, Hotspot, Incident, UtcTime};
use lookout_fusion::Fusion;

use crate::{js_err, ClusterError, Subjects};

/// What the hub hands the store. Called on the hub's thread.
pub trait HubSink: Send {
    /// A fused event (not called while replaying at start).
    fn event(&mut self, ev: &Event);
    /// A batch of satellite hotspots (not called while replaying at start).
    fn hotspots(&mut self, batch: &[Hotspot]);
    /// Incident revisions. Return only once they are stored (the messages that caused them
    /// are acked after); false when storing failed (the hub retries).
    fn incidents(&mut self, revisions: &[Incident]) -> bool;
}

/// The hub's counters.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Messages read (live and replayed).
    pub messages: AtomicU64,
    /// Events fused.
    pub events: AtomicU64,
    /// Events dropped as already fused (same event id, not newer).
    pub duplicates: AtomicU64,
    /// Messages of a wire version this build does not read (logged, acked).
    pub unknown_version: AtomicU64,
    /// Messages that are not an envelope (logged, acked).
    pub malformed: AtomicU64,
    /// Incident revisions produced.
    pub revisions: AtomicU64,
    /// Messages replayed at start.
    pub replayed: AtomicU64,
}

/// How many event ids the de-duplication remembers (oldest forgotten first).
const DEDUP_IDS: usize = 200_000;

/// Fusion fed by wire messages, with de-duplication by event id. Deterministic: the same
/// messages in the same order give the same incident revisions.
pub struct HubCore {
    fusion: Fusion,
    /// The cameras fusion was last told of (ids), to tell it of removed ones.
    cameras: std::collections::BTreeSet<String>,
    /// Per event id: the newest (last seen, phase rank) fused.
    seen: HashMap<String, (UtcTime, u8)>,
    order: VecDeque<String>,
    stats: Arc<HubStats>,
    /// The newest stream sequence handled (a re-opened consumer may deliver older ones).
    last_seq: u64,
}

impl std::fmt::Debug for HubCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubCore")
            .field("seen", &self.seen.len())
            .finish_non_exhaustive()
    }
}

fn rank(p: EventPhase) -> u8 {
    match p {
        EventPhase::Start => 0,
        EventPhase::Update => 1,
        EventPhase::End => 2,
    }
}

impl HubCore {
    /// Fusion for `cfg`'s cameras and fusion settings.
    pub fn new(cfg: &Config) -> Result<HubCore, ClusterError> {
        Ok(HubCore {
            fusion: Fusion::new(cfg).map_err(|e| ClusterError::Fusion(e.to_string()))?,
            cameras: cfg.cameras.iter().map(|c| c.id.clone()).collect(),
            seen: HashMap::new(),
            order: VecDeque::new(),
            stats: Arc::default(),
            last_seq: 0,
        })
    }

    /// The fusion it feeds (incidents, camera geometry).
    pub fn fusion(&self) -> &Fusion {
        &self.fusion
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<HubStats> {
        self.stats.clone()
    }

    /// Handles one delivered stream message, unless an earlier consumer already did.
    fn on_delivered(
        &mut self,
        m: &jetstream::Message,
        sink: &mut dyn HubSink,
        out: &mut Vec<Incident>,
    ) {
        let seq = m.info().map_or(0, |i| i.stream_sequence);
        if seq != 0 && seq <= self.last_seq {
            return;
        }
        self.on_bytes(&m.payload, Some(sink), out);
        self.last_seq = self.last_seq.max(seq);
    }

    /// Handles one message's bytes; new incident revisions go to `out`. `sink` gets the
    /// events and hotspots (pass `None` while replaying).
    pub fn on_bytes(
        &mut self,
        bytes: &[u8],
        sink: Option<&mut dyn HubSink>,
        out: &mut Vec<Incident>,
    ) {
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        match Envelope::decode(bytes) {
            Ok(env) => self.on_msg(env.msg, sink, out),
            Err(WireError::UnknownVersion { v }) => {
                let n = self.stats.unknown_version.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    version = v,
                    count = n,
                    "Rejected a message of unknown wire version {v} (this build reads {}); acked and dropped.",
                    lookout_core::wire::WIRE_VERSION
                );
            }
            Err(WireError::Malformed(e)) => {
                let n = self.stats.malformed.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(error = %e, count = n, "Rejected a malformed message; acked and dropped.");
            }
        }
    }

    /// Handles one message.
    pub fn on_msg(
        &mut self,
        msg: WireMsg,
        sink: Option<&mut dyn HubSink>,
        out: &mut Vec<Incident>,
    ) {
        let before = out.len();
        match msg {
            WireMsg::Fusion(FusionMsg::Event(ev)) => {
                if !self.is_new(&ev) {
                    self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                self.stats.events.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = sink {
                    s.event(&ev);
                }
                self.fusion.on_event(&ev, out);
                self.fusion
                    .on_camera_watermark(&ev.camera, ev.last_seen, out);
            }
            WireMsg::Fusion(FusionMsg::Clock { camera, at }) => {
                self.fusion.on_camera_watermark(&camera, at, out);
            }
            WireMsg::Hotspots(HotspotBatch { hotspots }) => {
                if let Some(s) = sink {
                    s.hotspots(&hotspots);
                }
                self.fusion.on_hotspots(hotspots, out);
            }
            // The site's cameras changed: fusion takes their geometry (in stream order, so a
            // replay at start rebuilds the same state).
            WireMsg::Control(ControlMsg::Cameras { version, cameras }) => {
                match serde_json::from_value::<Vec<lookout_config::cameras::CameraConfig>>(cameras)
                {
                    Ok(list) => {
                        let ids: std::collections::BTreeSet<String> =
                            list.iter().map(|c| c.id.clone()).collect();
                        for gone in self.cameras.difference(&ids) {
                            self.fusion.set_camera(gone, None);
                        }
                        for c in &list {
                            self.fusion.set_camera(&c.id, Some(c));
                        }
                        self.cameras = ids;
                    }
                    Err(e) => {
                        tracing::warn!(version, error = %e, "Skipped an unreadable cameras message.")
                    }
                }
            }
            // Rules changes are for the edges; frame results and incidents are not fused.
            WireMsg::Control(ControlMsg::Rules { .. })
            | WireMsg::Stage(_)
            | WireMsg::Incident(_) => {}
        }
        self.stats
            .revisions
            .fetch_add((out.len() - before) as u64, Ordering::Relaxed);
    }

    /// Whether `ev` is newer than what was fused of its id (and remembers it).
    fn is_new(&mut self, ev: &Event) -> bool {
        let key = (ev.last_seen, rank(ev.phase));
        match self.seen.get_mut(&ev.id) {
            Some(k) if *k >= key => false,
            Some(k) => {
                *k = key;
                true
            }
            None => {
                self.seen.insert(ev.id.clone(), key);
                self.order.push_back(ev.id.clone());
                while self.order.len() > DEDUP_IDS {
                    if let Some(old) = self.order.pop_front() {
                        self.seen.remove(&old);
                    }
                }
                true
            }
        }
    }
}

/// Largest burst handled before its revisions are stored and the burst is acked.
const BURST: usize = 1024;

/// Hands revisions to the sink until it stored them (retrying every second) or `stop`.
fn store(sink: &mut dyn HubSink, out: &mut Vec<Incident>, stop: &AtomicBool) -> bool {
    if out.is_empty() {
        return true;
    }
    loop {
        if sink.incidents(out) {
            out.clear();
            return true;
        }
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        tracing::error!(
            n = out.len(),
            "Cannot store incident revisions; retrying in 1 s (their messages stay unacked)."
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Consumes the site's stream into `core` and `sink` until `stop` is set. Errors of the
/// consumer (NATS restarting, a lost connection) are logged and the consumer is re-opened
/// after a pause; the replay at start runs once.
pub async fn run(
    js: &jetstream::Context,
    cfg: &lookout_config::cluster::ClusterConfig,
    core: &mut HubCore,
    sink: &mut dyn HubSink,
    stop: &AtomicBool,
) -> Result<(), ClusterError> {
    run_inner(js, cfg, core, sink, stop, None).await
}

/// [`run`] for one of several hubs of a site: waits for the site's hub lease
/// ([`crate::lease::HubLease`]; a standby waits here while the active hub heartbeats),
/// consumes while it holds it, refreshing it every `cluster.heartbeat_s`, and answers
/// [`ClusterError::LeaseLost`] when another hub took it (this process must then stop: its
/// fusion state is no longer the site's).
pub async fn run_with_lease(
    js: &jetstream::Context,
    cfg: &lookout_config::cluster::ClusterConfig,
    node: &str,
    core: &mut HubCore,
    sink: &mut dyn HubSink,
    stop: &AtomicBool,
) -> Result<(), ClusterError> {
    let mut lease = crate::lease::HubLease::open(js, cfg, node).await?;
    if !lease.acquire(cfg, stop).await? {
        return Ok(());
    }
    tracing::info!(node, "Holding the site's hub lease; consuming the stream.");
    let res = run_inner(js, cfg, core, sink, stop, Some(&mut lease)).await;
    if !matches!(res, Err(ClusterError::LeaseLost)) {
        lease.release().await;
    }
    res
}

async fn run_inner(
    js: &jetstream::Context,
    cfg: &lookout_config::cluster::ClusterConfig,
    core: &mut HubCore,
    sink: &mut dyn HubSink,
    stop: &AtomicBool,
    mut lease: Option<&mut crate::lease::HubLease>,
) -> Result<(), ClusterError> {
    let subjects = Subjects::new(&cfg.site);
    let mut replayed = false;
    let mut pause = Duration::from_millis(500);
    while !stop.load(Ordering::SeqCst) {
        match consume(
            js,
            cfg,
            &subjects,
            core,
            sink,
            stop,
            &mut replayed,
            lease.as_deref_mut(),
        )
        .await
        {
            Ok(()) => return Ok(()),
            Err(ClusterError::LeaseLost) => return Err(ClusterError::LeaseLost),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = pause.as_secs_f64(), "The hub's consumer failed; re-opening it.");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn consume(
    js: &jetstream::Context,
    cfg: &lookout_config::cluster::ClusterConfig,
    subjects: &Subjects,
    core: &mut HubCore,
    sink: &mut dyn HubSink,
    stop: &AtomicBool,
    replayed: &mut bool,
    mut lease: Option<&mut crate::lease::HubLease>,
) -> Result<(), ClusterError> {
    let heartbeat = Duration::from_secs_f64(cfg.heartbeat_s);
    let mut refreshed = std::time::Instant::now();
    let stream = crate::ensure_stream(js, cfg).await?;
    let name = subjects.hub_consumer();
    // Messages the previous consumer delivered but nobody acked would be redelivered only
    // after their ack wait, behind newer ones: fusion must see the stream in order, so the
    // durable consumer is re-created to start right after its ack floor.
    let floor = match stream.consumer_info(name).await {
        Ok(info) => {
            let floor = info.ack_floor.stream_sequence;
            stream.delete_consumer(name).await.map_err(js_err)?;
            floor
        }
        Err(_) => 0,
    };
    if !*replayed {
        replay(&stream, subjects, floor, core, sink, stop).await?;
        *replayed = true;
    }
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name.to_string()),
            description: Some("the hub's fusion input".into()),
            deliver_policy: if floor == 0 {
                consumer::DeliverPolicy::All
            } else {
                consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: floor + 1,
                }
            },
            ack_policy: consumer::AckPolicy::All,
            ack_wait: Duration::from_secs(30),
            filter_subject: subjects.all(),
            max_ack_pending: (BURST * 4) as i64,
            ..Default::default()
        })
        .await
        .map_err(js_err)?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(BURST)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(js_err)?;
    let mut out = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        if let Some(l) = lease.as_deref_mut() {
            if refreshed.elapsed() >= heartbeat {
                l.refresh().await?;
                refreshed = std::time::Instant::now();
            }
        }
        let first = match tokio::time::timeout(Duration::from_millis(200), messages.next()).await {
            Err(_) => continue,
            Ok(None) => return Err(ClusterError::JetStream("consumer stream ended".into())),
            Ok(Some(m)) => m.map_err(js_err)?,
        };
        core.on_delivered(&first, sink, &mut out);
        let mut last = first;
        let mut n = 1;
        while n < BURST {
            match messages.next().now_or_never() {
                Some(Some(Ok(m))) => {
                    core.on_delivered(&m, sink, &mut out);
                    last = m;
                    n += 1;
                }
                Some(Some(Err(e))) => {
                    tracing::debug!(error = %e, "Consumer hiccup inside a burst.");
                    break;
                }
                _ => break,
            }
        }
        if !store(sink, &mut out, stop) {
            return Ok(());
        }
        // AckPolicy::All: acking the burst's last message acks the burst. Double ack: the
        // server confirms, so a hub stopped right after still has its ack floor here.
        last.double_ack()
            .await
            .map_err(|e| ClusterError::JetStream(e.to_string()))?;
    }
    Ok(())
}

/// Replays stream messages 1..=`floor` (what the previous hub acked) into `core`.
async fn replay(
    stream: &jetstream::stream::Stream,
    subjects: &Subjects,
    floor: u64,
    core: &mut HubCore,
    sink: &mut dyn HubSink,
    stop: &AtomicBool,
) -> Result<(), ClusterError> {
    if floor == 0 {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let ordered = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subjects.all(),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(js_err)?;
    let mut messages = ordered.messages().await.map_err(js_err)?;
    let mut out = Vec::new();
    let mut n = 0u64;
    while let Some(m) = messages.next().await {
        let m = m.map_err(js_err)?;
        let seq = m.info().map_err(js_err)?.stream_sequence;
        if seq > floor {
            break;
        }
        core.on_bytes(&m.payload, None, &mut out);
        core.last_seq = seq;
        n += 1;
        if out.len() >= BURST {
            store(sink, &mut out, stop);
        }
        if seq == floor {
            break;
        }
    }
    store(sink, &mut out, stop);
    core.stats.replayed.fetch_add(n, Ordering::Relaxed);
    tracing::info!(
        messages = n,
        up_to = floor,
        elapsed_s = started.elapsed().as_secs_f64(),
        "Replayed the stream up to the hub's ack floor into fusion."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        lookout_config::parse(
            r#"
[[cameras]]
id = "north"
source = { kind = "test" }
geo = { lat = 36.2, lon = 27.86, heading_deg = 140, hfov_deg = 60, range_m = 20000 }
[[cameras]]
id = "south"
source = { kind = "test" }
geo = { lat = 36.1, lon = 28.0, heading_deg = 320, hfov_deg = 60, range_m = 20000 }
"#,
            "hub.toml",
            std::path::Path::new("."),
        )
        .expect("config")
    }

    #[test]
    fn a_cameras_message_changes_fusion_geometry() {
        let cfg = config();
        let mut core = HubCore::new(&cfg).unwrap();
        assert!(core.fusion().camera("north").is_some());
        // The hub's record: south disabled, east added (north unchanged).
        let mut list = cfg.cameras.clone();
        list[1].enabled = false;
        let mut east = list[0].clone();
        east.id = "east".into();
        if let Some(g) = east.geo.as_mut() {
            g.heading_deg = 90.0;
        }
        list.push(east);
        let msg = WireMsg::Control(ControlMsg::Cameras {
            version: 3,
            cameras: serde_json::to_value(&list).unwrap(),
        });
        let mut out = Vec::new();
        core.on_msg(msg, None, &mut out);
        assert!(core.fusion().camera("north").is_some());
        assert!(core.fusion().camera("south").is_none(), "disabled");
        assert!(core.fusion().camera("east").is_some(), "added");
        // A list without north: north goes too.
        list.remove(0);
        core.on_msg(
            WireMsg::Control(ControlMsg::Cameras {
                version: 4,
                cameras: serde_json::to_value(&list).unwrap(),
            }),
            None,
            &mut out,
        );
        assert!(core.fusion().camera("north").is_none(), "removed");
        // An unreadable list changes nothing.
        core.on_msg(
            WireMsg::Control(ControlMsg::Cameras {
                version: 5,
                cameras: serde_json::json!({"not": "a list"}),
            }),
            None,
            &mut out,
        );
        assert!(core.fusion().camera("east").is_some());
        assert!(out.is_empty());
    }
}

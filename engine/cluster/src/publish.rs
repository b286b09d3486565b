//! Publishing wire messages into the site's stream (edges: events and clocks; the hub's
//! hotspot feed; rules changes).
//!
//! Each message is published with its stable `Nats-Msg-Id` ([`crate::msg_id`]) and the
//! stream's ack is awaited before the next, so a camera's messages land in the stream in
//! the order the rules stage produced them. A failed publish (NATS down, no ack in time) is
//! retried with backoff under the same id: the server drops it if the first attempt was
//! stored after all.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_nats::jetstream;
use crossbeam_channel::Receiver;
use lookout_core::wire::{Envelope, FusionMsg, HotspotBatch, WireMsg};
use lookout_core::Hotspot;

use crate::{ClusterError, Subjects};

/// The header naming the node that published a message.
pub const NODE_HEADER: &str = "Lookout-Node";

/// Counters of a publisher.
#[derive(Debug, Default)]
pub struct PublishStats {
    /// Messages stored by the stream.
    pub published: AtomicU64,
    /// Messages the stream reported as duplicates (already stored under their id).
    pub duplicates: AtomicU64,
    /// Failed attempts (each retried).
    pub failures: AtomicU64,
}

/// Publishes wire messages into one site's stream.
#[derive(Clone)]
pub struct Publisher {
    js: jetstream::Context,
    subjects: Subjects,
    stats: Arc<PublishStats>,
    node: Option<String>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("subjects", &self.subjects)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher for `site` over `js`.
    pub fn new(js: jetstream::Context, site: &str) -> Publisher {
        Publisher {
            js,
            subjects: Subjects::new(site),
            stats: Arc::default(),
            node: None,
        }
    }

    /// Names the publishing node in every message's `Lookout-Node` header.
    pub fn node(mut self, node: &str) -> Publisher {
        self.node = Some(node.to_string());
        self
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<PublishStats> {
        self.stats.clone()
    }

    /// Publishes one message and waits until the stream has it, retrying with backoff
    /// (0.2 s doubling to 5 s) under the same `Nats-Msg-Id`. Gives up only when `stop` is
    /// set and an attempt failed.
    pub async fn publish(&self, msg: WireMsg, stop: &AtomicBool) -> Result<(), ClusterError> {
        let subject = self.subjects.subject_of(&msg);
        let id = crate::msg_id(&msg);
        let payload = Envelope::new(msg).encode();
        let mut backoff = Duration::from_millis(200);
        loop {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
            if let Some(n) = &self.node {
                headers.insert(NODE_HEADER, n.as_str());
            }
            let attempt = async {
                self.js
                    .publish_with_headers(subject.clone(), headers, payload.clone().into())
                    .await?
                    .await
            };
            match attempt.await {
                Ok(ack) => {
                    if ack.duplicate {
                        self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.stats.published.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(());
                }
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    if stop.load(Ordering::SeqCst) {
                        return Err(ClusterError::Stopped);
                    }
                    tracing::warn!(subject = %subject, msg_id = %id, error = %e, retry_in_s = backoff.as_secs_f64(), "Cannot publish to NATS; retrying.");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Forwards the rules stage's output to the stream, in order, on its own thread
/// (`cluster-publish`): it exits when `input` closes (everything queued was published) or,
/// once `stop` is set, when a publish fails. With `snapshots`, the frame an event asks to
/// snapshot is put into the site's object store before the event is published.
pub fn spawn_fusion_forwarder(
    rt: tokio::runtime::Handle,
    publisher: Publisher,
    input: Receiver<FusionMsg>,
    mut snapshots: Option<crate::snapshots::Uploader>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("cluster-publish".into())
        .spawn(move || {
            rt.block_on(async {
                // The receiver blocks; take it off the runtime's threads one message at a time.
                while let Ok(msg) = input.recv() {
                    if let (FusionMsg::Event(ev), Some(up)) = (&msg, snapshots.as_mut()) {
                        up.upload(ev).await;
                    }
                    if publisher
                        .publish(WireMsg::Fusion(msg), &stop)
                        .await
                        .is_err()
                    {
                        tracing::warn!(
                            left = input.len(),
                            "Stopping with unpublished events (NATS unreachable)."
                        );
                        return;
                    }
                }
            })
        })
}

/// Forwards hotspots (the hub's feed) to the stream, one batch per burst (a satellite pass
/// or poll arrives as many rows at once), on its own thread (`cluster-hotspots`).
pub fn spawn_hotspot_forwarder(
    rt: tokio::runtime::Handle,
    publisher: Publisher,
    input: Receiver<Hotspot>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("cluster-hotspots".into())
        .spawn(move || {
            rt.block_on(async {
                while let Ok(first) = input.recv() {
                    let mut hotspots = vec![first];
                    hotspots.extend(input.try_iter());
                    let msg = WireMsg::Hotspots(HotspotBatch { hotspots });
                    if publisher.publish(msg, &stop).await.is_err() {
                        return;
                    }
                }
            })
        })
}

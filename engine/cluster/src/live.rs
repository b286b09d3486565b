//! What the hub's operator desk shows of an edge's cameras besides incidents: the frame
//! results the rules stage records (for the tuning replay and the live overlay) and camera
//! health changes (the UI's camera status, retained MQTT status).
//!
//! They travel as plain NATS messages on `lookout-live.<site>.<camera>.results` — outside
//! the site's stream (a root of their own, so JetStream does not store them): at most once,
//! dropped when the edge's queue is full or no hub listens, never in the way of events.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Receiver;
use futures_util::StreamExt;
use lookout_core::wire::{Envelope, WireMsg};
use lookout_core::StageMsg;

/// A camera's live subject.
pub fn subject(site: &str, camera: &str) -> String {
    format!("lookout-live.{site}.{camera}.results")
}

/// Counters of the live forwarder.
#[derive(Debug, Default)]
pub struct LiveStats {
    /// Messages sent.
    pub sent: AtomicU64,
    /// Messages dropped (queue full at the tap, or a failed send).
    pub dropped: AtomicU64,
}

/// Sends an edge's recorded frame results and health changes, on its own thread
/// (`cluster-live`), until `input` closes or `stop` is set.
pub fn spawn_forwarder(
    rt: tokio::runtime::Handle,
    client: async_nats::Client,
    site: String,
    input: Receiver<StageMsg>,
    stats: Arc<LiveStats>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("cluster-live".into())
        .spawn(move || {
            rt.block_on(async {
                while !stop.load(Ordering::SeqCst) {
                    let Ok(msg) = input.recv_timeout(Duration::from_millis(200)) else {
                        if input.is_empty() && stop.load(Ordering::SeqCst) {
                            break;
                        }
                        continue;
                    };
                    let camera = match &msg {
                        StageMsg::Frame(f) => f.camera.to_string(),
                        StageMsg::Health(h) => h.camera.to_string(),
                        // Image statistics and watermarks are the rules stage's own input.
                        _ => continue,
                    };
                    let body = Envelope::new(WireMsg::Stage(msg)).encode();
                    match client.publish(subject(&site, &camera), body.into()).await {
                        Ok(()) => stats.sent.fetch_add(1, Ordering::Relaxed),
                        Err(_) => stats.dropped.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
}

/// The hub's side: hands every frame result and health change of the site's edges to
/// `record` until `stop`; an undecodable message is skipped (and counted in the log).
pub async fn follow(
    client: &async_nats::Client,
    site: &str,
    mut record: impl FnMut(&StageMsg),
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) {
        let mut sub = match client
            .subscribe(format!("lookout-live.{site}.*.results"))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot subscribe to the edges' frame results; retrying.");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut bad = 0u64;
        while !stop.load(Ordering::SeqCst) {
            match tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
                Err(_) => continue,
                Ok(None) => break,
                Ok(Some(m)) => match Envelope::decode(&m.payload) {
                    Ok(Envelope {
                        msg: WireMsg::Stage(s),
                        ..
                    }) => record(&s),
                    Ok(_) => {}
                    Err(e) => {
                        bad += 1;
                        if bad.is_power_of_two() {
                            tracing::warn!(error = %e, count = bad, "Skipped an unreadable frame result.");
                        }
                    }
                },
            }
        }
    }
}

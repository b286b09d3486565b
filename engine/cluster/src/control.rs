//! Changes from the hub to every edge, in the site's stream: `ControlMsg::Rules` on
//! `lookout.<site>.control.rules` and `ControlMsg::Cameras` on
//! `lookout.<site>.control.cameras`.
//!
//! The hub publishes the running `[rules]` (the config file's, with the API overlay) and the
//! running `[[cameras]]` (the file's, with the cameras record) at start and after every
//! change. An edge follows each subject from its newest message (so a node that starts
//! later gets what is in force) and applies each one: rules to its rules stage, cameras to
//! its leases and pipelines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use crossbeam_channel::Sender;
use futures_util::StreamExt;
use lookout_config::cluster::ClusterConfig;
use lookout_core::wire::{ControlMsg, Envelope, WireMsg};

use crate::{js_err, ClusterError, Subjects};

/// Which control subject to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// `control.rules`.
    Rules,
    /// `control.cameras`.
    Cameras,
}

/// Follows the site's `topic` subject until `stop`, sending each `ControlMsg` to `out` (the
/// newest one first). A broken subscription is re-opened after a pause; an undecodable
/// message is logged and skipped.
pub async fn follow(
    js: &jetstream::Context,
    cfg: &ClusterConfig,
    topic: Topic,
    out: &Sender<ControlMsg>,
    stop: &AtomicBool,
) {
    let mut last_seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        if let Err(e) = follow_once(js, cfg, topic, out, stop, &mut last_seq).await {
            tracing::warn!(error = %e, ?topic, "Following a control subject failed; re-opening it.");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

async fn follow_once(
    js: &jetstream::Context,
    cfg: &ClusterConfig,
    topic: Topic,
    out: &Sender<ControlMsg>,
    stop: &AtomicBool,
    last_seq: &mut u64,
) -> Result<(), ClusterError> {
    let subjects = Subjects::new(&cfg.site);
    let stream = js.get_stream(subjects.stream()).await.map_err(js_err)?;
    let deliver_policy = if *last_seq == 0 {
        consumer::DeliverPolicy::LastPerSubject
    } else {
        consumer::DeliverPolicy::ByStartSequence {
            start_sequence: *last_seq + 1,
        }
    };
    let ordered = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: match topic {
                Topic::Rules => subjects.control_rules(),
                Topic::Cameras => subjects.control_cameras(),
            },
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(js_err)?;
    let mut messages = ordered.messages().await.map_err(js_err)?;
    while !stop.load(Ordering::SeqCst) {
        let m = match tokio::time::timeout(Duration::from_millis(500), messages.next()).await {
            Err(_) => continue,
            Ok(None) => return Err(ClusterError::JetStream("control subject ended".into())),
            Ok(Some(m)) => m.map_err(js_err)?,
        };
        if let Ok(info) = m.info() {
            *last_seq = info.stream_sequence;
        }
        match Envelope::decode(&m.payload) {
            Ok(Envelope {
                msg: WireMsg::Control(c),
                ..
            }) => {
                if out.send(c).is_err() {
                    return Ok(());
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, ?topic, "Skipped an unreadable control message."),
        }
    }
    Ok(())
}

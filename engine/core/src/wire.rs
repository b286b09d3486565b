//! The messages between stages as one versioned, serialisable envelope.
//!
//! In one process the stages hand each other these types on bounded channels; between
//! processes (cluster mode) the same types travel as JSON in an [`Envelope`] whose `v`
//! says which shape the body has. A receiver rejects a version it does not know
//! ([`WireError::UnknownVersion`]) — it logs and counts it, and never crashes.
//!
//! ```text
//! infer ──StageMsg──▶ rules ──FusionMsg──▶ fusion ──Incident (revision)──▶ alerts
//!                                hotspot feed ──HotspotBatch──┘
//! server ──ControlMsg (rules overlays, masks)──▶ rules
//! ```

use serde::{Deserialize, Serialize};

use crate::{CameraId, Event, Hotspot, Incident, StageMsg, UtcTime};

/// The wire version this build writes and reads.
pub const WIRE_VERSION: u32 = 1;

/// What the rules stage sends the fusion stage, in order per camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FusionMsg {
    /// An event (start, update or end).
    Event(Event),
    /// A camera's event time advanced to this capture time (its newest analysed frame,
    /// empty frames included; at most once a second per camera), so a quiet camera's
    /// incidents still close.
    Clock {
        /// The camera.
        camera: CameraId,
        /// Its newest capture time.
        at: UtcTime,
    },
}

/// Hotspots that arrived together (one satellite pass, one poll), fused as one batch so an
/// incident gets one revision per pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotspotBatch {
    /// The hotspots.
    pub hotspots: Vec<Hotspot>,
}

/// Control messages to a stage (the rules stage; a cluster's edges and hub).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlMsg {
    /// The running `[rules]` section changed (file reload, API overlay, masks, tuning):
    /// every rules stage swaps it in between two messages.
    Rules {
        /// The overlay version in force (0: the config file's rules alone).
        version: i64,
        /// The whole `[rules]` section, as JSON (`lookout_config::rules::RulesConfig`).
        rules: serde_json::Value,
    },
    /// The site's running `[[cameras]]` changed (the hub's cameras record, from its API):
    /// edges lease and analyse this list instead of their file's, the hub's fusion takes
    /// the cameras' geometry.
    Cameras {
        /// The cameras record version in force (0: the config file's cameras alone).
        version: i64,
        /// The whole running list, disabled cameras included, as JSON
        /// (`Vec<lookout_config::cameras::CameraConfig>`).
        cameras: serde_json::Value,
    },
}

/// One message between stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum WireMsg {
    /// infer → rules: a frame result, a camera's health, image statistics.
    Stage(StageMsg),
    /// rules → fusion: an event or a camera clock.
    Fusion(FusionMsg),
    /// hotspot feed → fusion.
    Hotspots(HotspotBatch),
    /// fusion → alerts: one incident revision (`(id, revision)` is its idempotency key).
    Incident(Incident),
    /// → a stage's control input.
    Control(ControlMsg),
}

/// A [`WireMsg`] with its version: `{"v": 1, "msg": {"kind": "...", "body": {...}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Wire version ([`WIRE_VERSION`]).
    pub v: u32,
    /// The message.
    pub msg: WireMsg,
}

/// Why bytes are not a message this build can read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Written by a build with another wire version.
    #[error("unknown wire version {v} (this build reads version {WIRE_VERSION})")]
    UnknownVersion {
        /// The version found.
        v: u32,
    },
    /// Not an envelope, or a body that does not match its kind.
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl Envelope {
    /// Wraps a message with this build's version.
    pub fn new(msg: WireMsg) -> Envelope {
        Envelope {
            v: WIRE_VERSION,
            msg,
        }
    }

    /// JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising these plain data types into memory cannot fail (string keys only).
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads JSON bytes: the version first, so a message from a newer build is reported as
    /// such rather than as garbage.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, WireError> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let version: Version =
            serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
        if version.v != WIRE_VERSION {
            return Err(WireError::UnknownVersion { v: version.v });
        }
        serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CameraHealth, CameraStatus};
    use chrono::TimeZone;

    fn t(s: i64) -> UtcTime {
        chrono::Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn every_kind_round_trips() {
        let msgs = [
            WireMsg::Stage(StageMsg::Health(CameraHealth {
                camera: "tower1".into(),
                status: CameraStatus::Running,
                at: t(1),
            })),
            WireMsg::Fusion(FusionMsg::Clock {
                camera: "tower1".into(),
                at: t(2),
            }),
            WireMsg::Hotspots(HotspotBatch { hotspots: vec![] }),
            WireMsg::Control(ControlMsg::Rules {
                version: 3,
                rules: serde_json::json!({"quiet_s": 45.0}),
            }),
        ];
        for m in msgs {
            let bytes = Envelope::new(m.clone()).encode();
            let back = Envelope::decode(&bytes).unwrap();
            assert_eq!(back.v, WIRE_VERSION);
            assert_eq!(back.msg, m);
        }
    }

    #[test]
    fn unknown_version_and_garbage_are_errors() {
        let mut v: serde_json::Value = serde_json::from_slice(
            &Envelope::new(WireMsg::Hotspots(HotspotBatch { hotspots: vec![] })).encode(),
        )
        .unwrap();
        v["v"] = serde_json::json!(WIRE_VERSION + 1);
        let e = Envelope::decode(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(
            matches!(e, WireError::UnknownVersion { v } if v == WIRE_VERSION + 1),
            "{e}"
        );
        let e = Envelope::decode(b"{\"v\":1,\"msg\":{\"kind\":\"nope\"}}").unwrap_err();
        assert!(matches!(e, WireError::Malformed(_)), "{e}");
        assert!(Envelope::decode(b"not json").is_err());
    }
}

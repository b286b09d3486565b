//! Events: what the rules stage decides deserves attention.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{BBox, CameraId, UtcTime};

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Smoke seen (persistent, thresholded).
    Smoke,
    /// Flames seen.
    Fire,
    /// A person tracked inside a named include zone.
    PersonInZone,
    /// A duty post has been empty for longer than allowed.
    PostVacant,
    /// More people in a zone than its limit, for longer than allowed.
    OverOccupancy,
    /// A person inside a restricted area.
    Restricted,
    /// A patrol checkpoint was not visited within its window.
    PatrolMissed,
    /// A person of a forbidden role (e.g. a visitor) inside a restricted area without an
    /// escort.
    ForbiddenRole,
    /// One person alone in a two-person zone (hot work, confined space) for too long.
    LoneWorker,
    /// The camera delivers no frames.
    CameraOffline,
    /// The view is covered or dark compared with the camera's own baseline.
    ViewBlocked,
    /// The view is out of focus compared with the camera's own baseline.
    ViewDefocused,
    /// The view no longer matches the reference for its preset (camera turned).
    ViewMoved,
}

impl EventKind {
    /// The event kind raised by an object class, if the class raises events by itself.
    pub fn from_class(class: &str) -> Option<EventKind> {
        match class {
            "smoke" => Some(EventKind::Smoke),
            "fire" => Some(EventKind::Fire),
            _ => None,
        }
    }

    /// The snake_case name used in config, topics and the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Smoke => "smoke",
            EventKind::Fire => "fire",
            EventKind::PersonInZone => "person_in_zone",
            EventKind::PostVacant => "post_vacant",
            EventKind::OverOccupancy => "over_occupancy",
            EventKind::Restricted => "restricted",
            EventKind::PatrolMissed => "patrol_missed",
            EventKind::ForbiddenRole => "forbidden_role",
            EventKind::LoneWorker => "lone_worker",
            EventKind::CameraOffline => "camera_offline",
            EventKind::ViewBlocked => "view_blocked",
            EventKind::ViewDefocused => "view_defocused",
            EventKind::ViewMoved => "view_moved",
        }
    }

    /// True for fire and smoke: the kinds geo-fusion locates.
    pub fn is_fire_like(&self) -> bool {
        matches!(self, EventKind::Smoke | EventKind::Fire)
    }

    /// True for camera-health kinds.
    pub fn is_health(&self) -> bool {
        matches!(
            self,
            EventKind::CameraOffline
                | EventKind::ViewBlocked
                | EventKind::ViewDefocused
                | EventKind::ViewMoved
        )
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventPhase {
    /// First emission.
    Start,
    /// Something material changed (better score, bigger box, more people).
    Update,
    /// The situation is over (quiet time elapsed, post staffed again, camera back).
    End,
}

/// A reference to a frame held in a camera's [`crate::FrameRing`], for snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FrameRef {
    /// Camera.
    pub camera: CameraId,
    /// Frame sequence number.
    pub seq: u64,
}

/// An event raised by the rules stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Stable id, the same for start/update/end of one event and the same in replay
    /// (derived from camera, kind, rule and first-seen time — never from wall clock).
    pub id: String,
    /// Camera.
    pub camera: CameraId,
    /// What happened.
    pub kind: EventKind,
    /// Start, update or end.
    pub phase: EventPhase,
    /// Tracker id for object events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<u64>,
    /// Zone (or rule) name for zone and personnel events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<Arc<str>>,
    /// PTZ preset when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Arc<str>>,
    /// Best score seen so far (0 for events that are not about an object).
    pub best_score: f32,
    /// First time the situation was seen (capture time).
    pub first_seen: UtcTime,
    /// Last time it was seen (capture time).
    pub last_seen: UtcTime,
    /// Best box (at the best score), in frame pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<BBox>,
    /// Size of the frame the box belongs to (width, height).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_size: Option<(u32, u32)>,
    /// Frame to snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<FrameRef>,
    /// Count for occupancy events (people seen), when relevant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// One human-readable sentence ("3 people in 'tank farm', limit 2").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

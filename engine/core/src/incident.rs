//! Incidents: one fire (or one personnel situation), however many events and hotspots.

use serde::{Deserialize, Serialize};

use crate::{CameraId, Event, GeoPoint, Hotspot, Sector, UtcTime};

/// What an incident is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// A fire (smoke and/or flames, and/or satellite hotspots).
    Fire,
    /// A duty post left unstaffed.
    PostVacant,
    /// Too many people in a zone.
    OverOccupancy,
    /// A person in a restricted area.
    Restricted,
    /// A missed patrol checkpoint.
    PatrolMissed,
    /// A person in a watched zone (informational).
    PersonInZone,
    /// Camera offline, blocked, defocused or moved.
    CameraHealth,
}

impl IncidentKind {
    /// snake_case name used in topics and the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            IncidentKind::Fire => "fire",
            IncidentKind::PostVacant => "post_vacant",
            IncidentKind::OverOccupancy => "over_occupancy",
            IncidentKind::Restricted => "restricted",
            IncidentKind::PatrolMissed => "patrol_missed",
            IncidentKind::PersonInZone => "person_in_zone",
            IncidentKind::CameraHealth => "camera_health",
        }
    }
}

/// How sure we are, by what corroborates the incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IncidentConfidence {
    /// Satellite hotspots only, no camera sees it.
    SatelliteOnly,
    /// One camera.
    Camera,
    /// Two or more cameras.
    MultiCamera,
    /// Camera(s) and satellite agree.
    #[serde(rename = "camera+satellite")]
    CameraSatellite,
}

/// Severity for sorting the operator's queue and for escalation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational.
    Low,
    /// Needs a look.
    Medium,
    /// Needs a look now.
    High,
    /// Confirmed danger or escalated.
    Critical,
}

impl Severity {
    /// One step up (Critical stays Critical).
    pub fn raised(self) -> Severity {
        match self {
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }
}

/// The operator-driven lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// Not yet seen by an operator.
    New,
    /// An operator has seen it.
    Acknowledged,
    /// Confirmed real.
    Confirmed,
    /// Judged a false alarm.
    FalseAlarm,
    /// Over.
    Closed,
}

/// How a location was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationMethod {
    /// Least-squares intersection of two or more bearings.
    Triangulated,
    /// Centroid of satellite hotspot pixels.
    HotspotCluster,
    /// Only a bearing sector: the point is on the cone's axis at an assumed range.
    Sector,
}

/// A 1-sigma uncertainty ellipse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UncertaintyEllipse {
    /// Semi-major axis, metres.
    pub semi_major_m: f64,
    /// Semi-minor axis, metres.
    pub semi_minor_m: f64,
    /// Azimuth of the major axis, degrees from north.
    pub orientation_deg: f64,
}

/// Where an incident is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Best point estimate.
    pub point: GeoPoint,
    /// How it was obtained.
    pub method: LocationMethod,
    /// Uncertainty, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ellipse: Option<UncertaintyEllipse>,
}

/// One fire or one personnel situation, with everything that supports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id.
    pub id: String,
    /// What it is about.
    pub kind: IncidentKind,
    /// Corroboration level.
    pub confidence: IncidentConfidence,
    /// Severity.
    pub severity: Severity,
    /// Lifecycle state (fusion creates `New`; operators drive the rest in alerts).
    pub state: IncidentState,
    /// Location, when it can be estimated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Cameras involved.
    pub cameras: Vec<CameraId>,
    /// Bearing sectors of the detections behind it (latest per camera).
    pub sectors: Vec<Sector>,
    /// Latest state of each event that belongs to it.
    pub events: Vec<Event>,
    /// Hotspots that corroborate it.
    pub hotspots: Vec<Hotspot>,
    /// First time anything of it was seen.
    pub first_seen: UtcTime,
    /// Last time anything of it was seen.
    pub last_seen: UtcTime,
    /// Incremented on every change; (id, revision) is the delivery idempotency key.
    pub revision: u64,
    /// Human-readable notes of what changed, oldest first (fusion's side of the history).
    pub notes: Vec<String>,
}

impl Incident {
    /// A hash of what an operator or a downstream system would call a change of this
    /// incident: its confidence, severity or state, the cameras that see it, how many
    /// hotspots it has, whether it has a location. Not a later `last_seen`, one more
    /// detection, another note, or the point estimate moving as bearings jitter. Fusion and
    /// the alert store send an unchanged fingerprint at most once per update interval.
    pub fn material_fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        format!("{:?} {:?} {:?}", self.confidence, self.severity, self.state).hash(&mut h);
        self.cameras.hash(&mut h);
        self.hotspots.len().hash(&mut h);
        self.location.is_some().hash(&mut h);
        h.finish()
    }

    /// The idempotency key of this revision.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.id, self.revision)
    }
}

//! Incidents: one fire (or one personnel situation), however many events and hotspots.
//!
//! An incident's revision is bounded however long the fire burns: it carries a summary of
//! its evidence ([`Evidence`]: counts, first/last seen per camera, the hotspots' numbers),
//! the strongest few events and each camera's newest one ([`EVENTS_KEPT`]), the newest
//! hotspots ([`HOTSPOTS_KEPT`]) and deduplicated notes ([`NOTES_KEPT`]). The full event
//! history stays in the alert store's `events` table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{CameraId, Event, EventKind, GeoPoint, Hotspot, HotspotConfidence, Sector, UtcTime};

/// The strongest events (by best score) an incident carries, besides each camera's newest.
pub const EVENTS_KEPT: usize = 8;
/// The newest hotspots an incident carries (the rest are counted in [`HotspotSummary`]).
pub const HOTSPOTS_KEPT: usize = 128;
/// Notes an incident carries: the first (how it opened) and the newest.
pub const NOTES_KEPT: usize = 32;
/// The longest note kept (longer ones are cut at a character boundary).
pub const NOTE_MAX_CHARS: usize = 400;

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
    /// A person of a forbidden role in a restricted area, unescorted.
    ForbiddenRole,
    /// A lone worker in a two-person zone.
    LoneWorker,
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
            IncidentKind::ForbiddenRole => "forbidden_role",
            IncidentKind::LoneWorker => "lone_worker",
            IncidentKind::PersonInZone => "person_in_zone",
            IncidentKind::CameraHealth => "camera_health",
        }
    }

    /// The incident kind an event of this kind makes.
    pub fn of_event(k: EventKind) -> IncidentKind {
        match k {
            EventKind::Smoke | EventKind::Fire => IncidentKind::Fire,
            EventKind::PersonInZone => IncidentKind::PersonInZone,
            EventKind::PostVacant => IncidentKind::PostVacant,
            EventKind::OverOccupancy => IncidentKind::OverOccupancy,
            EventKind::Restricted => IncidentKind::Restricted,
            EventKind::PatrolMissed => IncidentKind::PatrolMissed,
            EventKind::ForbiddenRole => IncidentKind::ForbiddenRole,
            EventKind::LoneWorker => IncidentKind::LoneWorker,
            EventKind::CameraOffline
            | EventKind::ViewBlocked
            | EventKind::ViewDefocused
            | EventKind::ViewMoved => IncidentKind::CameraHealth,
        }
    }

    /// The event kinds that make incidents of this kind (to list an incident's events).
    pub fn event_kinds(&self) -> &'static [EventKind] {
        match self {
            IncidentKind::Fire => &[EventKind::Smoke, EventKind::Fire],
            IncidentKind::PostVacant => &[EventKind::PostVacant],
            IncidentKind::OverOccupancy => &[EventKind::OverOccupancy],
            IncidentKind::Restricted => &[EventKind::Restricted],
            IncidentKind::PatrolMissed => &[EventKind::PatrolMissed],
            IncidentKind::ForbiddenRole => &[EventKind::ForbiddenRole],
            IncidentKind::LoneWorker => &[EventKind::LoneWorker],
            IncidentKind::PersonInZone => &[EventKind::PersonInZone],
            IncidentKind::CameraHealth => &[
                EventKind::CameraOffline,
                EventKind::ViewBlocked,
                EventKind::ViewDefocused,
                EventKind::ViewMoved,
            ],
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

/// What one camera contributed to an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraEvidence {
    /// The camera.
    pub camera: CameraId,
    /// Distinct events (tracks) of this camera that joined the incident.
    pub events: u64,
    /// First time this camera saw it.
    pub first_seen: UtcTime,
    /// Last time this camera saw it.
    pub last_seen: UtcTime,
    /// Best detection score of this camera's events.
    pub best_score: f32,
}

/// The numbers of an incident's satellite hotspots (all of them, not only those it carries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotspotSummary {
    /// Hotspots that corroborate it.
    pub count: u64,
    /// Earliest acquisition.
    pub first_acquired: UtcTime,
    /// Latest acquisition.
    pub last_acquired: UtcTime,
    /// Largest fire radiative power (MW), when any hotspot has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_frp: Option<f64>,
    /// Sum of the fire radiative power (MW) of every hotspot that has one.
    pub total_frp: f64,
    /// Hotspots of high confidence (VIIRS `high`, MODIS ≥ 80 %).
    pub high_confidence: u64,
}

impl HotspotSummary {
    /// Counts one more hotspot.
    pub fn add(summary: &mut Option<HotspotSummary>, h: &Hotspot) {
        let high = matches!(h.confidence, HotspotConfidence::High)
            || matches!(h.confidence, HotspotConfidence::Percent(p) if p >= 80);
        let s = summary.get_or_insert(HotspotSummary {
            count: 0,
            first_acquired: h.acquired_at,
            last_acquired: h.acquired_at,
            max_frp: None,
            total_frp: 0.0,
            high_confidence: 0,
        });
        s.count += 1;
        s.first_acquired = s.first_acquired.min(h.acquired_at);
        s.last_acquired = s.last_acquired.max(h.acquired_at);
        if let Some(f) = h.frp {
            s.max_frp = Some(s.max_frp.map_or(f, |m| m.max(f)));
            s.total_frp += f;
        }
        s.high_confidence += u64::from(high);
    }

    /// Adds another summary's hotspots (two incidents merged).
    pub fn absorb(summary: &mut Option<HotspotSummary>, o: &HotspotSummary) {
        match summary {
            None => *summary = Some(o.clone()),
            Some(s) => {
                s.count += o.count;
                s.first_acquired = s.first_acquired.min(o.first_acquired);
                s.last_acquired = s.last_acquired.max(o.last_acquired);
                s.max_frp = match (s.max_frp, o.max_frp) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                s.total_frp += o.total_frp;
                s.high_confidence += o.high_confidence;
            }
        }
    }
}

/// A bounded summary of everything behind an incident: it grows with the number of
/// cameras and event kinds, never with how long the fire burns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Evidence {
    /// Distinct events (tracks) that joined it; `Incident::events` carries a few of them.
    pub events: u64,
    /// Event messages (start, update, end) it took in.
    pub updates: u64,
    /// Distinct events per kind (`smoke`, `fire`, ...).
    pub kinds: BTreeMap<EventKind, u64>,
    /// Per camera: its events, first and last seen, best score (sorted by camera).
    pub cameras: Vec<CameraEvidence>,
    /// The largest detection box seen, as a fraction of its frame's height.
    pub largest_box: f64,
    /// All its hotspots' numbers; `Incident::hotspots` carries the newest of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hotspots: Option<HotspotSummary>,
    /// Notes not kept: repeats of a note it has, and old ones beyond [`NOTES_KEPT`].
    pub notes_dropped: u64,
}

impl Evidence {
    /// Counts an event message; `new` when this event id is new to the incident.
    pub fn add_event(&mut self, ev: &Event, new: bool) {
        self.updates += 1;
        if new {
            self.events += 1;
            *self.kinds.entry(ev.kind).or_insert(0) += 1;
        }
        if let (Some(b), Some((_, h))) = (ev.bbox, ev.frame_size) {
            if h > 0 {
                self.largest_box = self.largest_box.max(b.height() as f64 / h as f64);
            }
        }
        let i = match self.cameras.binary_search_by(|c| c.camera.cmp(&ev.camera)) {
            Ok(i) => i,
            Err(i) => {
                self.cameras.insert(
                    i,
                    CameraEvidence {
                        camera: ev.camera.clone(),
                        events: 0,
                        first_seen: ev.first_seen,
                        last_seen: ev.last_seen,
                        best_score: ev.best_score,
                    },
                );
                i
            }
        };
        let c = &mut self.cameras[i];
        c.events += u64::from(new);
        c.first_seen = c.first_seen.min(ev.first_seen);
        c.last_seen = c.last_seen.max(ev.last_seen);
        c.best_score = c.best_score.max(ev.best_score);
    }

    /// Adds another incident's evidence (two incidents merged; their events are distinct).
    pub fn absorb(&mut self, o: &Evidence) {
        self.events += o.events;
        self.updates += o.updates;
        for (k, n) in &o.kinds {
            *self.kinds.entry(*k).or_insert(0) += n;
        }
        for oc in &o.cameras {
            match self.cameras.binary_search_by(|c| c.camera.cmp(&oc.camera)) {
                Ok(i) => {
                    let c = &mut self.cameras[i];
                    c.events += oc.events;
                    c.first_seen = c.first_seen.min(oc.first_seen);
                    c.last_seen = c.last_seen.max(oc.last_seen);
                    c.best_score = c.best_score.max(oc.best_score);
                }
                Err(i) => self.cameras.insert(i, oc.clone()),
            }
        }
        self.largest_box = self.largest_box.max(o.largest_box);
        if let Some(h) = &o.hotspots {
            HotspotSummary::absorb(&mut self.hotspots, h);
        }
        self.notes_dropped += o.notes_dropped;
    }

    /// First and last time any camera saw it.
    pub fn camera_span(&self) -> Option<(UtcTime, UtcTime)> {
        let f = self.cameras.iter().map(|c| c.first_seen).min()?;
        let l = self.cameras.iter().map(|c| c.last_seen).max()?;
        Some((f, l))
    }
}

/// What makes a revision worth sending: the incident's material state. Two revisions with
/// the same material state differ only by more of the same evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Material {
    /// Corroboration level.
    pub confidence: IncidentConfidence,
    /// Severity.
    pub severity: Severity,
    /// Lifecycle state.
    pub state: IncidentState,
    /// Cameras that see it.
    pub cameras: Vec<CameraId>,
    /// How many hotspots corroborate it.
    pub hotspots: u64,
    /// How it is located, where, and the 1-sigma semi-major axis (metres) of that estimate.
    pub location: Option<(LocationMethod, GeoPoint, f64)>,
}

fn method_name(m: LocationMethod) -> &'static str {
    match m {
        LocationMethod::Triangulated => "triangulation",
        LocationMethod::HotspotCluster => "hotspot cluster",
        LocationMethod::Sector => "bearing sector",
    }
}

impl Material {
    /// What changed materially from `prev` (empty: nothing an operator would call a change).
    /// A location counts as moved when the new point lies beyond the uncertainty (1-sigma
    /// semi-major axis, the larger of the two estimates') of the old one: bearings that
    /// jitter inside the ellipse are not news.
    pub fn changes_since(&self, prev: &Material) -> Vec<String> {
        let mut c = Vec::new();
        if self.state != prev.state {
            c.push(format!("state {:?} → {:?}", prev.state, self.state).to_lowercase());
        }
        if self.confidence != prev.confidence {
            c.push(format!(
                "confidence {} → {}",
                confidence_str(prev.confidence),
                confidence_str(self.confidence)
            ));
        }
        if self.severity != prev.severity {
            c.push(format!("severity {:?} → {:?}", prev.severity, self.severity).to_lowercase());
        }
        for cam in &self.cameras {
            if !prev.cameras.contains(cam) {
                c.push(format!("camera {cam} sees it"));
            }
        }
        for cam in &prev.cameras {
            if !self.cameras.contains(cam) {
                c.push(format!("camera {cam} no longer sees it"));
            }
        }
        if self.hotspots != prev.hotspots {
            c.push(format!("hotspots {} → {}", prev.hotspots, self.hotspots));
        }
        match (&prev.location, &self.location) {
            (None, Some((m, _, _))) => c.push(format!("located by {}", method_name(*m))),
            (Some(_), None) => c.push("location lost".into()),
            (Some((pm, pp, pa)), Some((m, p, a))) => {
                if pm != m {
                    c.push(format!(
                        "located by {} (was {})",
                        method_name(*m),
                        method_name(*pm)
                    ));
                } else {
                    let d = pp.distance_m(p);
                    let tol = pa.max(*a).max(1.0);
                    if d > tol {
                        c.push(format!("location moved {d:.0} m (uncertainty {tol:.0} m)"));
                    }
                }
            }
            (None, None) => {}
        }
        c
    }
}

fn confidence_str(c: IncidentConfidence) -> &'static str {
    match c {
        IncidentConfidence::SatelliteOnly => "satellite-only",
        IncidentConfidence::Camera => "camera",
        IncidentConfidence::MultiCamera => "multi-camera",
        IncidentConfidence::CameraSatellite => "camera+satellite",
    }
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
    /// The latest state of a few of its events, oldest `last_seen` first: each camera's
    /// newest and the [`EVENTS_KEPT`] strongest (all of them are counted in `evidence` and
    /// stored as events by the alert store). The last one is the newest event.
    pub events: Vec<Event>,
    /// The newest [`HOTSPOTS_KEPT`] hotspots that corroborate it (all are counted in
    /// `evidence.hotspots`).
    pub hotspots: Vec<Hotspot>,
    /// A bounded summary of all its evidence (absent in revisions stored before it existed).
    #[serde(default)]
    pub evidence: Evidence,
    /// First time anything of it was seen.
    pub first_seen: UtcTime,
    /// Last time anything of it was seen.
    pub last_seen: UtcTime,
    /// Incremented on every change; (id, revision) is the delivery idempotency key.
    pub revision: u64,
    /// Human-readable notes of what happened, oldest first, deduplicated and bounded
    /// ([`NOTES_KEPT`]: the first and the newest; see [`Incident::add_note`]).
    pub notes: Vec<String>,
    /// What changed materially since the previous revision (why this revision exists);
    /// empty in revisions stored before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

impl Incident {
    /// A new, empty incident (state `new`, revision 0) seen from `first_seen` to
    /// `last_seen`: the one place fusion builds a fresh incident.
    pub fn open(
        id: String,
        kind: IncidentKind,
        confidence: IncidentConfidence,
        severity: Severity,
        first_seen: UtcTime,
        last_seen: UtcTime,
    ) -> Incident {
        Incident {
            id,
            kind,
            confidence,
            severity,
            state: IncidentState::New,
            location: None,
            cameras: vec![],
            sectors: vec![],
            events: vec![],
            hotspots: vec![],
            evidence: Evidence::default(),
            first_seen,
            last_seen,
            revision: 0,
            notes: vec![],
            changes: vec![],
        }
    }

    /// How many hotspots corroborate it (the summary's count; the list for revisions
    /// stored before the summary existed).
    pub fn hotspot_count(&self) -> u64 {
        self.evidence
            .hotspots
            .as_ref()
            .map_or(self.hotspots.len() as u64, |h| h.count)
    }

    /// Its material state (see [`Material::changes_since`]).
    pub fn material(&self) -> Material {
        Material {
            confidence: self.confidence,
            severity: self.severity,
            state: self.state,
            cameras: self.cameras.clone(),
            hotspots: self.hotspot_count(),
            location: self
                .location
                .as_ref()
                .map(|l| (l.method, l.point, l.ellipse.map_or(0.0, |e| e.semi_major_m))),
        }
    }

    /// A hash of what an operator or a downstream system would call a change of this
    /// incident: its confidence, severity or state, the cameras that see it, how many
    /// hotspots it has, how it is located. Not a later `last_seen`, one more detection,
    /// another note, or the point estimate moving as bearings jitter (fusion compares
    /// [`Incident::material`] for a location that moved beyond its uncertainty). Fusion and
    /// the alert store send an unchanged fingerprint at most once per update interval.
    pub fn material_fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        format!(
            "{:?} {:?} {:?} {:?}",
            self.confidence,
            self.severity,
            self.state,
            self.location.as_ref().map(|l| l.method)
        )
        .hash(&mut h);
        self.cameras.hash(&mut h);
        self.hotspot_count().hash(&mut h);
        h.finish()
    }

    /// Adds a note unless it already has it (then it is counted in
    /// `evidence.notes_dropped`). Beyond [`NOTES_KEPT`] the oldest note after the first is
    /// dropped (and counted). A note longer than [`NOTE_MAX_CHARS`] is cut.
    pub fn add_note(&mut self, note: impl Into<String>) {
        let mut note = note.into();
        if note.chars().count() > NOTE_MAX_CHARS {
            let cut = note
                .char_indices()
                .nth(NOTE_MAX_CHARS - 1)
                .map_or(note.len(), |(i, _)| i);
            note.truncate(cut);
            note.push('…');
        }
        if self.notes.contains(&note) {
            self.evidence.notes_dropped += 1;
            return;
        }
        self.notes.push(note);
        if self.notes.len() > NOTES_KEPT {
            let extra = self.notes.len() - NOTES_KEPT;
            self.notes.drain(1..1 + extra);
            self.evidence.notes_dropped += extra as u64;
        }
    }

    /// Takes in the latest state of one of its events: replaces the kept copy, or keeps it
    /// when it is the newest of its camera or among the [`EVENTS_KEPT`] strongest.
    /// Counting is `evidence`'s job ([`Evidence::add_event`]).
    pub fn keep_event(&mut self, ev: &Event) {
        match self.events.iter_mut().find(|e| e.id == ev.id) {
            Some(e) => *e = ev.clone(),
            None => self.events.push(ev.clone()),
        }
        self.events.sort_by_key(|e| e.last_seen);
        while self.events.len() > EVENTS_KEPT {
            // Each camera's newest is kept; of the others the weakest (then oldest) goes.
            let newest_of_camera = |i: usize| {
                let e = &self.events[i];
                !self.events[i + 1..].iter().any(|x| x.camera == e.camera)
            };
            let drop = (0..self.events.len())
                .filter(|&i| !newest_of_camera(i))
                .min_by(|&a, &b| {
                    self.events[a]
                        .best_score
                        .total_cmp(&self.events[b].best_score)
                        .then(a.cmp(&b))
                });
            match drop {
                Some(i) => {
                    self.events.remove(i);
                }
                // More cameras than room: their newest events, newest first, are kept.
                None if self.events.len() > EVENTS_KEPT * 2 => {
                    self.events.remove(0);
                }
                None => break,
            }
        }
    }

    /// Keeps a hotspot that corroborates it: the newest [`HOTSPOTS_KEPT`] are carried
    /// (counting is `evidence.hotspots`' job, [`HotspotSummary::add`]).
    pub fn keep_hotspot(&mut self, h: Hotspot) {
        self.hotspots.push(h);
        if self.hotspots.len() > HOTSPOTS_KEPT {
            if let Some(i) = (0..self.hotspots.len()).min_by(|&a, &b| {
                let (x, y) = (&self.hotspots[a], &self.hotspots[b]);
                x.acquired_at
                    .cmp(&y.acquired_at)
                    .then(x.frp.unwrap_or(0.0).total_cmp(&y.frp.unwrap_or(0.0)))
            }) {
                self.hotspots.remove(i);
            }
        }
    }

    /// The newest snapshot one of its events asked for.
    pub fn newest_snapshot(&self) -> Option<&crate::FrameRef> {
        self.events.iter().rev().find_map(|e| e.snapshot.as_ref())
    }

    /// The idempotency key of this revision.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.id, self.revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at(s: i64) -> UtcTime {
        Utc.with_ymd_and_hms(2023, 7, 22, 11, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    fn incident() -> Incident {
        Incident {
            id: "fire-1".into(),
            kind: IncidentKind::Fire,
            confidence: IncidentConfidence::Camera,
            severity: Severity::Medium,
            state: IncidentState::New,
            location: None,
            cameras: vec![],
            sectors: vec![],
            events: vec![],
            hotspots: vec![],
            evidence: Evidence::default(),
            first_seen: at(0),
            last_seen: at(0),
            revision: 0,
            notes: vec![],
            changes: vec![],
        }
    }

    fn event(id: &str, camera: &str, score: f32, last: i64) -> Event {
        Event {
            id: id.into(),
            camera: camera.into(),
            kind: EventKind::Smoke,
            phase: crate::EventPhase::Update,
            track: None,
            zone: None,
            preset: None,
            best_score: score,
            first_seen: at(0),
            last_seen: at(last),
            bbox: None,
            frame_size: None,
            snapshot: Some(crate::FrameRef {
                camera: camera.into(),
                seq: last as u64,
            }),
            count: None,
            detail: String::new(),
        }
    }

    #[test]
    fn notes_are_deduplicated_and_bounded_keeping_the_first() {
        let mut i = incident();
        i.add_note("Opened.");
        for k in 0..100 {
            i.add_note(format!("note {}", k % 50));
        }
        assert_eq!(i.notes.len(), NOTES_KEPT);
        assert_eq!(i.notes[0], "Opened.");
        assert_eq!(i.notes.last().unwrap(), "note 49");
        // 50 repeats, and 50 distinct notes of which NOTES_KEPT - 1 fit.
        assert_eq!(i.evidence.notes_dropped, 50 + 50 - (NOTES_KEPT as u64 - 1));
        i.add_note("x".repeat(10 * NOTE_MAX_CHARS));
        assert_eq!(i.notes.last().unwrap().chars().count(), NOTE_MAX_CHARS);
    }

    #[test]
    fn kept_events_are_the_strongest_and_each_cameras_newest_newest_last() {
        let mut i = incident();
        for k in 0..200 {
            let score = if k == 17 {
                0.99
            } else {
                0.1 + (k % 10) as f32 / 100.0
            };
            i.keep_event(&event(&format!("a{k}"), "a", score, k));
            i.keep_event(&event("b0", "b", 0.05, k / 100));
        }
        assert!(i.events.len() <= EVENTS_KEPT, "{}", i.events.len());
        assert!(
            i.events.iter().any(|e| e.id == "a17"),
            "the strongest stays"
        );
        assert!(
            i.events.iter().any(|e| e.id == "b0"),
            "camera b's newest stays"
        );
        assert_eq!(i.events.last().unwrap().id, "a199", "the newest is last");
        assert_eq!(i.newest_snapshot().map(|r| r.seq), Some(199));
    }

    #[test]
    fn a_location_moves_materially_only_beyond_its_uncertainty() {
        let mut i = incident();
        let p = GeoPoint::new(36.1, 28.0);
        let loc = |p: GeoPoint| Location {
            point: p,
            method: LocationMethod::Triangulated,
            ellipse: Some(UncertaintyEllipse {
                semi_major_m: 300.0,
                semi_minor_m: 100.0,
                orientation_deg: 0.0,
            }),
        };
        i.location = Some(loc(p));
        let before = i.material();
        let fp = i.material_fingerprint();
        i.location = Some(loc(p.destination(90.0, 250.0)));
        assert!(i.material().changes_since(&before).is_empty());
        assert_eq!(i.material_fingerprint(), fp);
        i.location = Some(loc(p.destination(90.0, 450.0)));
        let c = i.material().changes_since(&before);
        assert!(c[0].starts_with("location moved 450 m"), "{c:?}");
        i.cameras.push("b".into());
        i.severity = Severity::High;
        let c = i.material().changes_since(&before);
        assert!(c.contains(&"severity medium → high".to_string()), "{c:?}");
        assert!(c.contains(&"camera b sees it".to_string()), "{c:?}");
        assert_ne!(i.material_fingerprint(), fp);
    }

    #[test]
    fn an_old_revision_without_the_summary_still_reads() {
        let mut v = serde_json::to_value(incident()).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("evidence");
        o.remove("changes");
        let i: Incident = serde_json::from_value(v).unwrap();
        assert_eq!(i.evidence, Evidence::default());
        assert_eq!(i.hotspot_count(), 0);
    }
}

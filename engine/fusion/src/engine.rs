//! [`Fusion`]: events and hotspots in, incident revisions out, joined by event time.
//!
//! Fire-like events (smoke, fire) become bearing cones; cones from different cameras that
//! overlap within `group_window_s` group into one incident and are triangulated. Hotspots
//! join an incident when they were acquired within `[first seen − hotspot_before_s,
//! last seen + hotspot_after_s]` and lie in one of its cones (pixel footprint included), or
//! within `incident_merge_m` of its location or of one of its hotspots. A hotspot no
//! incident claims opens a satellite-only incident when it is inside the watched area,
//! confident enough and not a static source. Nothing here reads the wall clock: time is the
//! events' capture times, the hotspots' acquisition times and the watermarks. Event time is
//! kept per camera (`on_camera_watermark`): live cameras share live time (the newest of
//! their clocks, so an offline camera's incidents still close), and a camera replaying a
//! file "as of" a past date (`start_time`) runs on its own clock, so replays and live
//! cameras never close each other's incidents or age out each other's hotspots. An incident
//! lives by its cameras' time bases, a satellite-only incident or a new hotspot by those of
//! the cameras watching its place. A hotspot
//! acquired after the clock of the replayed cameras (`start_time`) that alone watch its place
//! is held until the replay reaches it: a satellite pass is known only once it happened.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::Duration;
use lookout_config::Config;
use lookout_core::{
    CameraId, Event, EventKind, EventPhase, GeoPoint, Hotspot, HotspotConfidence, HotspotSource,
    Incident, IncidentConfidence, IncidentKind, IncidentState, Location, LocationMethod, Sector,
    Severity, UncertaintyEllipse, UtcTime,
};
use serde::Serialize;
use tracing::{debug, info, warn};

use crate::camera::CameraGeometry;
use crate::index::{sector_touches, HotspotId, HotspotIndex};
use crate::plane::{cones_overlap, ellipse_from_cov, in_polygon, triangulate, Plane};
use crate::FusionError;

/// The `[fusion]` numbers in the units fusion uses.
#[derive(Debug, Clone)]
struct Settings {
    bearing_error_deg: f64,
    group_window: Duration,
    min_angle_deg: f64,
    min_baseline_m: f64,
    before: Duration,
    after: Duration,
    lateness: Duration,
    modis_min: u8,
    merge_m: f64,
    close_after: Duration,
    update_interval: Duration,
}

fn secs(s: f64) -> Duration {
    Duration::milliseconds((s.max(0.0) * 1000.0).round() as i64)
}

/// Counters of what fusion did, for metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FusionStats {
    /// Events received.
    pub events: u64,
    /// Fire-like events without a bearing (camera without geo, unknown preset, no box).
    pub events_without_bearing: u64,
    /// Hotspots received (duplicates included).
    pub hotspots: u64,
    /// Hotspots already seen (same dedup key).
    pub duplicates: u64,
    /// Hotspots of static sources (FIRMS type 2/3, configured masks), never used.
    pub static_sources: u64,
    /// Hotspots attached to an incident.
    pub attached: u64,
    /// Hotspots that arrived after their incident closed and only annotated it.
    pub late_annotations: u64,
    /// Unclaimed hotspots outside the watched area.
    pub outside_area: u64,
    /// Unclaimed hotspots below the confidence needed to open an incident.
    pub low_confidence: u64,
    /// Unclaimed hotspots older than the watermark minus the allowed lateness.
    pub too_late: u64,
    /// Incidents merged into another.
    pub merged: u64,
    /// Incidents closed by fusion (quiet for `close_after_s`, or their event ended).
    pub closed: u64,
    /// Closed incidents dropped from memory.
    pub evicted: u64,
    /// End events for situations fusion never saw start.
    pub orphan_ends: u64,
    /// Revisions not emitted: the change was only more of the same evidence within
    /// `update_interval_s` of the last revision.
    pub updates_folded: u64,
    /// Hotspots held until the replay clock of the cameras watching their place reached
    /// their acquisition time.
    pub held_for_replay: u64,
}

/// Fusion's bookkeeping around one incident.
#[derive(Debug, Clone)]
struct Slot {
    inc: Incident,
    /// Events of it that have not ended.
    ongoing: BTreeSet<String>,
    /// Span of camera evidence.
    cam: Option<(UtcTime, UtcTime)>,
    /// Span of satellite evidence.
    sat: Option<(UtcTime, UtcTime)>,
    /// Hotspots in the index that belong to it.
    hotspot_ids: Vec<HotspotId>,
    /// For personnel and health incidents: (camera, event kind, zone).
    personnel_key: Option<PersonnelKey>,
    /// Why the bearings gave no location, last time it was tried.
    fix_note: Option<String>,
    /// Set when this incident was merged into another: it takes nothing any more.
    merged_into: Option<u64>,
    /// Capture time and material fingerprint of the last emitted revision.
    last_emit: Option<(UtcTime, u64)>,
    /// The newest cone of each of its fire-like events from the last `group_window`: a
    /// camera's sector on the incident spans them all (the fire's extent from there).
    cones: BTreeMap<String, Sector>,
    /// Reused for the medians of `cones` (no allocation per event once warmed up).
    scratch: Vec<f64>,
}

type PersonnelKey = (String, EventKind, Option<String>);

/// How a hotspot relates to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HotspotMatch {
    /// Near its location or one of its hotspots.
    Near,
    /// Inside one of its bearing cones.
    InSector,
}

/// Where hotspots alone may open incidents.
#[derive(Debug, Clone)]
enum Watched {
    Polygon(Vec<[f64; 2]>),
    /// The cameras' field-of-view cones (`Fusion::fov`).
    Cones,
}

/// The fusion stage. Feed it events, hotspots and watermarks in any interleaving; it emits
/// a new revision of every incident that changed.
#[derive(Debug)]
pub struct Fusion {
    s: Settings,
    cameras: BTreeMap<String, CameraGeometry>,
    watched: Watched,
    static_masks: Vec<Vec<[f64; 2]>>,
    slots: BTreeMap<u64, Slot>,
    next_seq: u64,
    by_event: HashMap<String, u64>,
    personnel_open: HashMap<PersonnelKey, u64>,
    hotspots: HotspotIndex,
    /// Every located camera's field-of-view cones (whose clock a place follows).
    fov: Vec<Sector>,
    /// Event time shared by every camera (`on_watermark`).
    watermark: Option<UtcTime>,
    /// Event time per camera (`on_camera_watermark`). Live cameras share live time (the
    /// newest of their clocks); a camera replaying a past date runs on its own.
    clocks: BTreeMap<String, UtcTime>,
    /// Cameras replaying a file "as of" a past date (`start_time`): their clock is not now.
    replayed: BTreeSet<String>,
    /// Hotspots acquired after the replay clock of every camera watching their place: a
    /// satellite pass is known only once the replay reaches it.
    pending: Vec<Hotspot>,
    last_prune: Option<UtcTime>,
    stats: FusionStats,
}

fn source_name(s: HotspotSource) -> &'static str {
    match s {
        HotspotSource::ModisTerra => "modis-terra",
        HotspotSource::ModisAqua => "modis-aqua",
        HotspotSource::ViirsSnpp => "viirs-snpp",
        HotspotSource::ViirsNoaa20 => "viirs-noaa20",
        HotspotSource::ViirsNoaa21 => "viirs-noaa21",
        HotspotSource::Other => "other",
    }
}

fn describe(h: &Hotspot) -> String {
    format!(
        "{} hotspot at {:.5}, {:.5} acquired {}",
        source_name(h.source),
        h.location.lat,
        h.location.lon,
        h.acquired_at.format("%Y-%m-%d %H:%M UTC")
    )
}

fn incident_kind(k: EventKind) -> IncidentKind {
    match k {
        EventKind::Smoke | EventKind::Fire => IncidentKind::Fire,
        EventKind::PersonInZone => IncidentKind::PersonInZone,
        EventKind::PostVacant => IncidentKind::PostVacant,
        EventKind::OverOccupancy => IncidentKind::OverOccupancy,
        EventKind::Restricted => IncidentKind::Restricted,
        EventKind::PatrolMissed => IncidentKind::PatrolMissed,
        EventKind::CameraOffline
        | EventKind::ViewBlocked
        | EventKind::ViewDefocused
        | EventKind::ViewMoved => IncidentKind::CameraHealth,
    }
}

fn personnel_severity(k: EventKind) -> Severity {
    match k {
        EventKind::Restricted | EventKind::OverOccupancy => Severity::High,
        EventKind::PostVacant
        | EventKind::PatrolMissed
        | EventKind::CameraOffline
        | EventKind::ViewBlocked
        | EventKind::ViewMoved => Severity::Medium,
        _ => Severity::Low,
    }
}

fn span_add(span: &mut Option<(UtcTime, UtcTime)>, a: UtcTime, b: UtcTime) {
    *span = Some(match *span {
        Some((f, l)) => (f.min(a), l.max(b)),
        None => (a.min(b), a.max(b)),
    });
}

impl Fusion {
    /// Builds fusion from a validated config: camera geometry, watched area, masks. A camera
    /// whose geometry is unusable is logged and left without bearings.
    pub fn new(cfg: &Config) -> Result<Fusion, FusionError> {
        let f = &cfg.fusion;
        let mut cameras = BTreeMap::new();
        for c in cfg.enabled_cameras() {
            // One camera with unusable geometry (e.g. a 360° panorama, which the pinhole
            // model cannot describe) loses its bearings; the others keep theirs.
            match CameraGeometry::from_config(c) {
                Ok(Some(g)) => {
                    cameras.insert(c.id.clone(), g);
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(camera = %c.id, error = %e, "Camera geometry unusable; its detections get no bearing.")
                }
            }
        }
        let fov: Vec<Sector> = cameras
            .values()
            .flat_map(|g| g.fov_sectors(UtcTime::default()))
            .map(|(_, s)| s)
            .collect();
        let watched = match &f.watched_area {
            Some(p) => Watched::Polygon(p.clone()),
            None => Watched::Cones,
        };
        info!(
            cameras = cameras.len(),
            watched = match &watched {
                Watched::Polygon(_) => "polygon",
                Watched::Cones => "camera cones",
            },
            static_masks = f.static_sources.len(),
            "Fusion configured."
        );
        Ok(Fusion {
            s: Settings {
                bearing_error_deg: f.bearing_error_deg,
                group_window: secs(f.group_window_s),
                min_angle_deg: f.min_intersection_angle_deg,
                min_baseline_m: f.min_baseline_m,
                before: secs(f.hotspot_before_s),
                after: secs(f.hotspot_after_s),
                lateness: secs(f.allowed_lateness_s),
                modis_min: f.modis_min_confidence,
                merge_m: f.incident_merge_m,
                close_after: secs(f.close_after_s),
                update_interval: secs(f.update_interval_s),
            },
            cameras,
            watched,
            static_masks: f.static_sources.clone(),
            slots: BTreeMap::new(),
            next_seq: 0,
            by_event: HashMap::new(),
            personnel_open: HashMap::new(),
            hotspots: HotspotIndex::default(),
            fov,
            watermark: None,
            clocks: BTreeMap::new(),
            replayed: cfg
                .cameras
                .iter()
                .filter(|c| {
                    matches!(
                        c.source,
                        lookout_config::cameras::SourceConfig::File {
                            start_time: Some(_),
                            ..
                        }
                    )
                })
                .map(|c| c.id.clone())
                .collect(),
            pending: Vec::new(),
            last_prune: None,
            stats: FusionStats::default(),
        })
    }

    /// Every incident fusion still holds (open ones, and closed ones kept for late
    /// annotations), oldest first.
    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.slots.values().map(|s| &s.inc)
    }

    /// An incident by id.
    pub fn incident(&self, id: &str) -> Option<&Incident> {
        self.slots.values().map(|s| &s.inc).find(|i| i.id == id)
    }

    /// Camera geometry by camera id (for the map and overlays).
    pub fn camera(&self, id: &str) -> Option<&CameraGeometry> {
        self.cameras.get(id)
    }

    /// Hotspots held in memory.
    pub fn hotspot_count(&self) -> usize {
        self.hotspots.len()
    }

    /// What fusion has done so far.
    pub fn stats(&self) -> &FusionStats {
        &self.stats
    }

    /// The newest event time fusion knows of (the shared watermark or any camera's clock).
    pub fn watermark(&self) -> Option<UtcTime> {
        self.clocks.values().copied().chain(self.watermark).max()
    }

    /// Live time: the newest clock of the cameras that are not replays. Live cameras share
    /// it, so a camera that went offline (its own clock stopped) does not freeze its
    /// incidents or its place.
    fn live_clock(&self) -> Option<UtcTime> {
        self.clocks
            .iter()
            .filter(|(c, _)| !self.replayed.contains(*c))
            .map(|(_, t)| *t)
            .max()
    }

    /// A camera's time base: its own clock when it replays a past date, live time otherwise.
    fn camera_clock(&self, camera: &str) -> Option<UtcTime> {
        if self.replayed.contains(camera) {
            self.clocks.get(camera).copied()
        } else {
            self.live_clock()
        }
    }

    /// The event time of a set of cameras: the newest of their time bases and the shared
    /// watermark.
    fn clock_of(&self, cameras: &[CameraId]) -> Option<UtcTime> {
        cameras
            .iter()
            .filter_map(|c| self.camera_clock(c))
            .chain(self.watermark)
            .max()
    }

    /// The event time at a place: the newest time base of the cameras watching it. A place
    /// no camera watches follows live time (or, with only replays, the newest clock).
    fn clock_at(&self, p: &GeoPoint) -> Option<UtcTime> {
        let t = if self.watchers(p).next().is_some() {
            self.watchers(p).filter_map(|c| self.camera_clock(c)).max()
        } else {
            self.live_clock()
                .or_else(|| self.clocks.values().copied().max())
        };
        t.into_iter().chain(self.watermark).max()
    }

    /// The event time an incident lives by: its cameras' clocks, or for a satellite-only
    /// incident the clock at its place.
    fn slot_clock(&self, slot: &Slot) -> Option<UtcTime> {
        if !slot.inc.cameras.is_empty() {
            return self.clock_of(&slot.inc.cameras);
        }
        let place = slot.inc.location.as_ref().map(|l| l.point).or_else(|| {
            slot.hotspot_ids
                .iter()
                .find_map(|id| self.hotspots.get(*id))
                .map(|e| e.hotspot.location)
        });
        match place {
            Some(p) => self.clock_at(&p),
            None => self.watermark(),
        }
    }

    /// The operator closed an incident: fusion stops adding evidence to it (late evidence
    /// only annotates it). Returns false for an unknown id.
    pub fn close_incident(&mut self, id: &str) -> bool {
        let Some(slot) = self.slots.values_mut().find(|s| s.inc.id == id) else {
            return false;
        };
        if slot.inc.state != IncidentState::Closed {
            slot.inc.state = IncidentState::Closed;
            slot.inc.notes.push("Closed by an operator.".into());
            slot.inc.revision += 1;
            if let Some(k) = slot.personnel_key.take() {
                self.personnel_open.remove(&k);
            }
        }
        true
    }

    /// Handles one event from the rules stage.
    pub fn on_event(&mut self, ev: &Event, out: &mut Vec<Incident>) {
        self.stats.events += 1;
        let mut touched = BTreeSet::new();
        if ev.kind.is_fire_like() {
            self.fire_event(ev, &mut touched);
        } else {
            self.personnel_event(ev, &mut touched);
        }
        self.emit(touched, out);
    }

    /// Handles one satellite hotspot (in any order, at any lateness).
    pub fn on_hotspot(&mut self, h: Hotspot, out: &mut Vec<Incident>) {
        self.stats.hotspots += 1;
        let mut touched = BTreeSet::new();
        self.hotspot_or_hold(h, &mut touched);
        self.emit(touched, out);
    }

    /// Handles a burst of hotspots (one satellite pass, one poll) and emits each changed
    /// incident once, not once per hotspot. Prefer this when draining the feed's channel.
    pub fn on_hotspots(&mut self, hs: impl IntoIterator<Item = Hotspot>, out: &mut Vec<Incident>) {
        let mut touched = BTreeSet::new();
        for h in hs {
            self.stats.hotspots += 1;
            self.hotspot_or_hold(h, &mut touched);
        }
        self.emit(touched, out);
    }

    /// Advances the event time shared by every camera: closes quiet incidents, forgets
    /// what no late data can reach. Use it when all cameras share one clock.
    pub fn on_watermark(&mut self, t: UtcTime, out: &mut Vec<Incident>) {
        if self.watermark.is_some_and(|w| t <= w) {
            return;
        }
        self.watermark = Some(t);
        self.advance(out);
    }

    /// Advances one camera's event time (the capture time of its newest event). Incidents
    /// close by their own cameras' clocks, so footage replayed "as of" a past date and live
    /// cameras run side by side without closing each other's incidents.
    pub fn on_camera_watermark(&mut self, camera: &str, t: UtcTime, out: &mut Vec<Incident>) {
        match self.clocks.get_mut(camera) {
            Some(c) if t <= *c => return,
            Some(c) => *c = t,
            None => {
                self.clocks.insert(camera.to_string(), t);
            }
        }
        self.advance(out);
    }

    /// The oldest clock that late data may still be judged by: the shared watermark, or the
    /// slowest located camera's time base (hotspots only join located cameras' incidents).
    fn prune_clock(&self) -> Option<UtcTime> {
        let located = self
            .clocks
            .keys()
            .filter(|c| self.cameras.contains_key(*c))
            .filter_map(|c| self.camera_clock(c))
            .min();
        let fallback = if located.is_none() {
            self.clocks.values().copied().max()
        } else {
            None
        };
        [located, fallback, self.watermark]
            .into_iter()
            .flatten()
            .max()
    }

    /// Whether a hotspot lies ahead of the replay: every camera watching its place (every
    /// located camera, for a place none watches) replays a past date, and none has reached
    /// the hotspot's acquisition time yet.
    fn ahead_of_replay(&self, h: &Hotspot) -> bool {
        let replay = if self.watchers(&h.location).next().is_some() {
            self.replay_clock(self.watchers(&h.location))
        } else {
            self.replay_clock(self.cameras.keys().map(String::as_str))
        };
        // A shared watermark, when one is used, is every camera's clock.
        replay.is_some_and(|newest| newest.max(self.watermark).is_none_or(|t| t < h.acquired_at))
    }

    /// For cameras that all replay a past date: `Some` of their newest clock (`None` inside
    /// while none has reported). `None` when there are none or one of them is live.
    fn replay_clock<'a>(&self, cams: impl Iterator<Item = &'a str>) -> Option<Option<UtcTime>> {
        let mut newest = None;
        let mut any = false;
        for c in cams {
            if !self.replayed.contains(c) {
                return None;
            }
            any = true;
            newest = newest.max(self.clocks.get(c).copied());
        }
        any.then_some(newest)
    }

    /// The cameras whose field of view holds `p`.
    fn watchers<'a>(&'a self, p: &'a GeoPoint) -> impl Iterator<Item = &'a str> + 'a {
        self.fov
            .iter()
            .filter(move |c| c.contains(p, 0.0))
            .map(|c| c.camera.as_ref())
    }

    fn hotspot_or_hold(&mut self, h: Hotspot, touched: &mut BTreeSet<u64>) {
        if self.ahead_of_replay(&h) {
            self.stats.held_for_replay += 1;
            self.pending.push(h);
        } else {
            self.hotspot(h, touched);
        }
    }

    fn advance(&mut self, out: &mut Vec<Incident>) {
        let mut touched = BTreeSet::new();
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            let (ready, wait): (Vec<Hotspot>, Vec<Hotspot>) =
                pending.into_iter().partition(|h| !self.ahead_of_replay(h));
            self.pending = wait;
            for h in ready {
                self.hotspot(h, &mut touched);
            }
        }
        let mut evict = Vec::new();
        let mut close = Vec::new();
        for (seq, slot) in &self.slots {
            let Some(t) = self.slot_clock(slot) else {
                continue;
            };
            if slot.inc.state == IncidentState::Closed {
                if t >= slot.inc.last_seen + self.s.close_after + self.s.lateness {
                    evict.push(*seq);
                }
                continue;
            }
            if slot.inc.kind == IncidentKind::Fire
                && slot.ongoing.is_empty()
                && t >= slot.inc.last_seen + self.s.close_after
            {
                close.push(*seq);
            }
        }
        for seq in close {
            if let Some(slot) = self.slots.get_mut(&seq) {
                slot.inc.state = IncidentState::Closed;
                slot.inc.notes.push(format!(
                    "Closed by fusion: no new evidence since {}.",
                    slot.inc.last_seen.format("%Y-%m-%d %H:%M:%S UTC")
                ));
                self.stats.closed += 1;
                touched.insert(seq);
            }
        }
        for seq in evict {
            if let Some(slot) = self.slots.remove(&seq) {
                debug!(incident = %slot.inc.id, "Evicted a closed incident from fusion memory.");
                self.by_event.retain(|_, v| *v != seq);
                self.stats.evicted += 1;
            }
        }
        if let Some(t) = self.prune_clock() {
            if self
                .last_prune
                .is_none_or(|p| t - p >= Duration::minutes(10))
            {
                self.last_prune = Some(t);
                let before = t - self.s.lateness - self.s.after - self.s.before;
                let n = self.hotspots.prune(before);
                if n > 0 {
                    debug!(pruned = n, "Forgot hotspots no late event can join.");
                }
            }
        }
        self.emit(touched, out);
    }

    fn emit(&mut self, touched: BTreeSet<u64>, out: &mut Vec<Incident>) {
        for seq in touched {
            if self
                .slots
                .get(&seq)
                .is_some_and(|s| s.inc.kind == IncidentKind::Fire)
            {
                self.refresh(seq);
            }
            let interval = self.s.update_interval;
            if let Some(slot) = self.slots.get_mut(&seq) {
                // More of the same evidence is folded into the next revision (at most one
                // per `update_interval`); a material change is emitted at once.
                let fp = slot.inc.material_fingerprint();
                // Created and merged into another before anyone heard of it (a new track of
                // a fire that already has an incident): nothing to announce.
                if slot.merged_into.is_some() && slot.last_emit.is_none() {
                    self.stats.updates_folded += 1;
                    continue;
                }
                // A closed incident only changes by late annotation: always worth sending.
                let open = slot.inc.state != IncidentState::Closed;
                if let Some((at, last)) = slot.last_emit {
                    if open && last == fp && slot.inc.last_seen < at + interval {
                        self.stats.updates_folded += 1;
                        continue;
                    }
                }
                slot.last_emit = Some((slot.inc.last_seen, fp));
                slot.inc.revision += 1;
                out.push(slot.inc.clone());
            }
        }
    }

    // ---- personnel and camera-health events ----

    fn personnel_event(&mut self, ev: &Event, touched: &mut BTreeSet<u64>) {
        let key: PersonnelKey = (
            ev.camera.to_string(),
            ev.kind,
            ev.zone.as_deref().map(str::to_string),
        );
        let seq = match self
            .by_event
            .get(&ev.id)
            .copied()
            .filter(|s| {
                self.slots
                    .get(s)
                    .is_some_and(|s| s.inc.kind != IncidentKind::Fire)
            })
            .or_else(|| self.personnel_open.get(&key).copied())
        {
            Some(seq) => seq,
            None => {
                if ev.phase == EventPhase::End {
                    self.stats.orphan_ends += 1;
                    debug!(event = %ev.id, camera = %ev.camera, "End of an event fusion never saw start; ignored.");
                    return;
                }
                let id = format!("{}-{}", incident_kind(ev.kind).as_str(), ev.id);
                let inc = Incident {
                    id,
                    kind: incident_kind(ev.kind),
                    confidence: IncidentConfidence::Camera,
                    severity: personnel_severity(ev.kind),
                    state: IncidentState::New,
                    location: None,
                    cameras: vec![ev.camera.clone()],
                    sectors: vec![],
                    events: vec![],
                    hotspots: vec![],
                    first_seen: ev.first_seen,
                    last_seen: ev.last_seen,
                    revision: 0,
                    notes: vec![],
                };
                let seq = self.insert_slot(inc);
                if let Some(slot) = self.slots.get_mut(&seq) {
                    slot.personnel_key = Some(key.clone());
                }
                self.personnel_open.insert(key.clone(), seq);
                seq
            }
        };
        self.by_event.insert(ev.id.clone(), seq);
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        if slot.inc.state == IncidentState::Closed {
            slot.inc.notes.push(format!(
                "Event {} ({:?}) arrived after the incident closed; not reopened.",
                ev.id, ev.phase
            ));
            touched.insert(seq);
            return;
        }
        upsert_event(&mut slot.inc, ev);
        slot.inc.first_seen = slot.inc.first_seen.min(ev.first_seen);
        slot.inc.last_seen = slot.inc.last_seen.max(ev.last_seen);
        let what = if ev.detail.is_empty() {
            ev.kind.as_str().to_string()
        } else {
            ev.detail.clone()
        };
        match ev.phase {
            EventPhase::Start => {
                slot.ongoing.insert(ev.id.clone());
                slot.inc.notes.push(format!("Started: {what}."));
            }
            EventPhase::Update => {
                slot.ongoing.insert(ev.id.clone());
                slot.inc.notes.push(format!("Updated: {what}."));
            }
            EventPhase::End => {
                slot.ongoing.remove(&ev.id);
                slot.inc.notes.push(format!("Ended: {what}."));
                if slot.ongoing.is_empty() {
                    slot.inc.state = IncidentState::Closed;
                    slot.inc
                        .notes
                        .push("Closed by fusion: the situation is over.".into());
                    self.stats.closed += 1;
                    if let Some(k) = slot.personnel_key.take() {
                        self.personnel_open.remove(&k);
                    }
                }
            }
        }
        touched.insert(seq);
    }

    fn insert_slot(&mut self, inc: Incident) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.slots.insert(
            seq,
            Slot {
                inc,
                ongoing: BTreeSet::new(),
                cam: None,
                sat: None,
                hotspot_ids: vec![],
                personnel_key: None,
                fix_note: None,
                merged_into: None,
                last_emit: None,
                cones: BTreeMap::new(),
                scratch: Vec::new(),
            },
        );
        seq
    }

    // ---- fire events ----

    fn sector_for(&self, ev: &Event) -> Option<Sector> {
        let g = self.cameras.get(ev.camera.as_ref())?;
        let b = g.bearing(
            ev.bbox.as_ref()?,
            ev.frame_size?,
            ev.preset.as_deref(),
            self.s.bearing_error_deg,
        )?;
        Some(g.sector(b, ev.last_seen))
    }

    /// End of the camera evidence window, extended to the watermark while events go on.
    fn cam_end(&self, slot: &Slot) -> Option<UtcTime> {
        let (_, l) = slot.cam?;
        Some(match (slot.ongoing.is_empty(), self.slot_clock(slot)) {
            (false, Some(w)) => l.max(w),
            _ => l,
        })
    }

    fn active_end(&self, slot: &Slot) -> UtcTime {
        match (slot.ongoing.is_empty(), self.slot_clock(slot)) {
            (false, Some(w)) => slot.inc.last_seen.max(w),
            _ => slot.inc.last_seen,
        }
    }

    fn event_time_ok(&self, slot: &Slot, ev: &Event) -> bool {
        let gw = self.s.group_window;
        let cam_ok = match (slot.cam, self.cam_end(slot)) {
            (Some((f, _)), Some(end)) => ev.first_seen <= end + gw && ev.last_seen >= f - gw,
            _ => false,
        };
        let sat_ok = match slot.sat {
            Some((f, l)) => l >= ev.first_seen - self.s.before && f <= ev.last_seen + self.s.after,
            None => false,
        };
        cam_ok || sat_ok
    }

    /// How well an event (with its cone) fits an open fire incident: lower is better.
    fn event_match(&self, slot: &Slot, ev: &Event, sector: Option<&Sector>) -> Option<f64> {
        if slot.inc.kind != IncidentKind::Fire || slot.inc.state == IncidentState::Closed {
            return None;
        }
        if !self.event_time_ok(slot, ev) {
            return None;
        }
        let Some(sec) = sector else {
            // No bearing: only the same camera's bearing-less incident can take it.
            let same = slot.inc.cameras.contains(&ev.camera)
                && !slot.inc.sectors.iter().any(|s| s.camera == ev.camera);
            return same.then_some(10.0);
        };
        let mut best: Option<f64> = None;
        let mut consider = |v: f64| best = Some(best.map_or(v, |b: f64| b.min(v)));
        // Same camera: the new box overlaps one of its boxes on this fire in the window.
        for s in slot.cones.values().filter(|c| c.camera == sec.camera) {
            let d = lookout_core::geo::angle_diff_deg(s.bearing_deg, sec.bearing_deg).abs();
            let tol = s.half_width_deg + sec.half_width_deg;
            if d <= tol {
                consider(d / tol.max(1e-6));
            }
        }
        let triangulated = matches!(
            slot.inc.location,
            Some(Location {
                method: LocationMethod::Triangulated,
                ..
            })
        );
        if let Some(loc) = &slot.inc.location {
            if loc.method != LocationMethod::Sector {
                let d = sec.origin.distance_m(&loc.point);
                let slack = loc.ellipse.map_or(0.0, |e| 2.0 * e.semi_major_m) + 200.0;
                if d <= sec.range_m + slack && d > 1.0 {
                    let miss = lookout_core::geo::angle_diff_deg(
                        sec.origin.bearing_to(&loc.point),
                        sec.bearing_deg,
                    )
                    .abs();
                    let tol = sec.half_width_deg + (slack / d).atan().to_degrees();
                    if miss <= tol {
                        consider(1.0 + miss / tol.max(1e-6));
                    }
                }
            }
        }
        if slot
            .hotspot_ids
            .iter()
            .filter_map(|id| self.hotspots.get(*id))
            .any(|e| sector_touches(sec, &e.hotspot))
        {
            consider(2.5);
        }
        if !triangulated {
            for s in &slot.inc.sectors {
                if s.camera != sec.camera && cones_overlap(s, sec) {
                    consider(3.0);
                }
            }
        }
        best
    }

    fn fire_event(&mut self, ev: &Event, touched: &mut BTreeSet<u64>) {
        let sector = self.sector_for(ev);
        let gw = self.s.group_window;
        if sector.is_none() {
            self.stats.events_without_bearing += 1;
            debug!(event = %ev.id, camera = %ev.camera, "Fire-like event without a bearing (no geo, preset or box).");
        }
        if let Some(&seq) = self.by_event.get(&ev.id) {
            if let Some(slot) = self.slots.get_mut(&seq) {
                if slot.inc.state == IncidentState::Closed {
                    slot.inc.notes.push(format!(
                        "Event {} ({:?}) arrived after the incident closed; not reopened.",
                        ev.id, ev.phase
                    ));
                    touched.insert(seq);
                    return;
                }
                join_event(slot, ev, sector, false, gw);
                touched.insert(seq);
                self.absorb(seq, touched);
                return;
            }
        }
        let mut best: Option<(f64, u64)> = None;
        for (seq, slot) in &self.slots {
            if let Some(score) = self.event_match(slot, ev, sector.as_ref()) {
                if best.is_none_or(|(b, _)| score < b) {
                    best = Some((score, *seq));
                }
            }
        }
        let seq = match best {
            Some((_, seq)) => {
                if let Some(slot) = self.slots.get_mut(&seq) {
                    join_event(slot, ev, sector, true, gw);
                }
                seq
            }
            None => {
                let inc = Incident {
                    id: format!("fire-{}", ev.id),
                    kind: IncidentKind::Fire,
                    confidence: IncidentConfidence::Camera,
                    severity: Severity::Medium,
                    state: IncidentState::New,
                    location: None,
                    cameras: vec![],
                    sectors: vec![],
                    events: vec![],
                    hotspots: vec![],
                    first_seen: ev.first_seen,
                    last_seen: ev.last_seen,
                    revision: 0,
                    notes: vec![],
                };
                let seq = self.insert_slot(inc);
                if let Some(slot) = self.slots.get_mut(&seq) {
                    join_event(slot, ev, sector, false, gw);
                    let first = slot.inc.notes.pop().unwrap_or_default();
                    slot.inc.notes.push(format!("Opened: {first}"));
                }
                seq
            }
        };
        self.by_event.insert(ev.id.clone(), seq);
        touched.insert(seq);
        self.refresh(seq);
        self.absorb(seq, touched);
    }

    // ---- hotspots ----

    fn is_static(&self, h: &Hotspot) -> bool {
        matches!(h.fire_type, Some(2) | Some(3))
            || self.static_masks.iter().any(|p| in_polygon(&h.location, p))
    }

    fn is_watched(&self, p: &GeoPoint) -> bool {
        match &self.watched {
            Watched::Polygon(poly) => in_polygon(p, poly),
            Watched::Cones => self.watchers(p).next().is_some(),
        }
    }

    fn confident(&self, h: &Hotspot) -> bool {
        match h.confidence {
            HotspotConfidence::Nominal | HotspotConfidence::High => true,
            HotspotConfidence::Low => false,
            HotspotConfidence::Percent(p) => p >= self.s.modis_min,
        }
    }

    /// Whether a hotspot belongs to a fire incident (time and space), ignoring its state.
    fn hotspot_match(&self, slot: &Slot, h: &Hotspot) -> Option<HotspotMatch> {
        if slot.inc.kind != IncidentKind::Fire || slot.merged_into.is_some() {
            return None;
        }
        let t = h.acquired_at;
        if t < slot.inc.first_seen - self.s.before || t > self.active_end(slot) + self.s.after {
            return None;
        }
        let r = h.footprint_radius_m();
        let mut triangulated = false;
        if let Some(loc) = &slot.inc.location {
            if loc.method != LocationMethod::Sector {
                triangulated = loc.method == LocationMethod::Triangulated;
                let slack = loc.ellipse.map_or(0.0, |e| 2.0 * e.semi_major_m);
                if h.location.distance_m(&loc.point) <= self.s.merge_m + slack + r {
                    return Some(HotspotMatch::Near);
                }
            }
        }
        let near = slot
            .hotspot_ids
            .iter()
            .filter_map(|id| self.hotspots.get(*id))
            .any(|e| e.hotspot.location.distance_m(&h.location) <= self.s.merge_m);
        if near {
            return Some(HotspotMatch::Near);
        }
        if !triangulated && slot.inc.sectors.iter().any(|s| sector_touches(s, h)) {
            return Some(HotspotMatch::InSector);
        }
        None
    }

    fn hotspot(&mut self, h: Hotspot, touched: &mut BTreeSet<u64>) {
        let eligible = !self.is_static(&h);
        let Some(id) = self.hotspots.insert(h.clone(), eligible) else {
            self.stats.duplicates += 1;
            return;
        };
        if !eligible {
            self.stats.static_sources += 1;
            debug!(hotspot = %describe(&h), "Static heat source (FIRMS type 2/3 or mask); not used.");
            return;
        }
        let mut open: Vec<(HotspotMatch, u64)> = Vec::new();
        let mut closed: Vec<u64> = Vec::new();
        for (seq, slot) in &self.slots {
            if let Some(m) = self.hotspot_match(slot, &h) {
                if slot.inc.state == IncidentState::Closed {
                    closed.push(*seq);
                } else {
                    open.push((m, *seq));
                }
            }
        }
        // Camera evidence first: a hotspot in a camera incident's cone corroborates it, and
        // a satellite-only cluster it is near merges into that incident.
        open.sort_by_key(|&(m, seq)| {
            let no_camera = self.slots.get(&seq).is_none_or(|s| s.inc.events.is_empty());
            (no_camera, m, seq)
        });
        if let Some(&(_, target)) = open.first() {
            self.attach(target, id, touched);
            for (m, other) in open.iter().skip(1) {
                if *m == HotspotMatch::Near {
                    self.merge(target, *other, touched);
                }
            }
            self.absorb(target, touched);
            return;
        }
        if let Some(&seq) = closed.last() {
            if let Some(slot) = self.slots.get_mut(&seq) {
                slot.inc.notes.push(format!(
                    "Late evidence: {} arrived after the incident closed; noted, not reopened.",
                    describe(&h)
                ));
                self.stats.late_annotations += 1;
                touched.insert(seq);
            }
            return;
        }
        if self
            .clock_at(&h.location)
            .is_some_and(|w| h.acquired_at < w - self.s.lateness)
        {
            self.stats.too_late += 1;
            debug!(hotspot = %describe(&h), "Hotspot later than the allowed lateness; no incident opened.");
            return;
        }
        if !self.is_watched(&h.location) {
            self.stats.outside_area += 1;
            return;
        }
        if !self.confident(&h) {
            self.stats.low_confidence += 1;
            return;
        }
        let (k0, k1, _, _) = h.dedup_key();
        let inc = Incident {
            id: format!(
                "fire-sat-{}-{}-{:+}-{:+}",
                source_name(h.source),
                h.acquired_at.format("%Y%m%dT%H%MZ"),
                k0,
                k1
            ),
            kind: IncidentKind::Fire,
            confidence: IncidentConfidence::SatelliteOnly,
            severity: Severity::Low,
            state: IncidentState::New,
            location: None,
            cameras: vec![],
            sectors: vec![],
            events: vec![],
            hotspots: vec![],
            first_seen: h.acquired_at,
            last_seen: h.acquired_at,
            revision: 0,
            notes: vec![format!(
                "Opened by a satellite {} with no camera event.",
                describe(&h)
            )],
        };
        let seq = self.insert_slot(inc);
        self.attach(seq, id, touched);
        self.absorb(seq, touched);
    }

    fn attach(&mut self, seq: u64, id: HotspotId, touched: &mut BTreeSet<u64>) {
        let Some(e) = self.hotspots.get_mut(id) else {
            return;
        };
        e.incident = Some(seq);
        let h = e.hotspot.clone();
        if let Some(slot) = self.slots.get_mut(&seq) {
            slot.hotspot_ids.push(id);
            span_add(&mut slot.sat, h.acquired_at, h.acquired_at);
            slot.inc.first_seen = slot.inc.first_seen.min(h.acquired_at);
            slot.inc.last_seen = slot.inc.last_seen.max(h.acquired_at);
            if !slot.inc.hotspots.is_empty() || slot.inc.events.is_empty() {
                // Notes stay readable: one per first corroboration, counts in the list.
            } else {
                slot.inc
                    .notes
                    .push(format!("Corroborated by a satellite {}.", describe(&h)));
            }
            slot.inc.hotspots.push(h);
            self.stats.attached += 1;
            touched.insert(seq);
        }
    }

    /// Pulls in unclaimed hotspots that belong to an open fire incident, growing its cluster,
    /// and merges incidents its hotspots connect to.
    fn absorb(&mut self, seq: u64, touched: &mut BTreeSet<u64>) {
        let mut rounds = 0;
        loop {
            rounds += 1;
            let Some(slot) = self.slots.get(&seq) else {
                return;
            };
            if slot.inc.kind != IncidentKind::Fire || slot.inc.state == IncidentState::Closed {
                return;
            }
            let from = slot.inc.first_seen - self.s.before;
            let to = self.active_end(slot) + self.s.after;
            let mut cands: BTreeSet<HotspotId> = BTreeSet::new();
            for s in &slot.inc.sectors {
                cands.extend(self.hotspots.in_sector(s, from, to));
            }
            if let Some(loc) = &slot.inc.location {
                if loc.method != LocationMethod::Sector {
                    let slack = loc.ellipse.map_or(0.0, |e| 2.0 * e.semi_major_m);
                    cands.extend(
                        self.hotspots
                            .within(&loc.point, self.s.merge_m + slack + 1000.0),
                    );
                }
            }
            for id in &slot.hotspot_ids {
                if let Some(e) = self.hotspots.get(*id) {
                    cands.extend(self.hotspots.within(&e.hotspot.location, self.s.merge_m));
                }
            }
            let mut take = Vec::new();
            let mut merge = BTreeSet::new();
            for id in cands {
                let Some(e) = self.hotspots.get(id) else {
                    continue;
                };
                if !e.eligible || e.incident == Some(seq) {
                    continue;
                }
                let Some(m) = self.hotspot_match(slot, &e.hotspot) else {
                    continue;
                };
                match e.incident {
                    None => take.push(id),
                    Some(other) => {
                        let open_fire = self.slots.get(&other).is_some_and(|o| {
                            o.inc.kind == IncidentKind::Fire && o.inc.state != IncidentState::Closed
                        });
                        if open_fire && m == HotspotMatch::Near {
                            merge.insert(other);
                        }
                    }
                }
            }
            if take.is_empty() && merge.is_empty() {
                return;
            }
            for id in take {
                self.attach(seq, id, touched);
            }
            for other in merge {
                self.merge(seq, other, touched);
            }
            self.refresh(seq);
            if rounds > 10_000 {
                return;
            }
        }
    }

    /// Moves everything of incident `from` into `into`; `from` is closed with a note.
    fn merge(&mut self, into: u64, from: u64, touched: &mut BTreeSet<u64>) {
        if into == from {
            return;
        }
        let Some(mut src) = self.slots.remove(&from) else {
            return;
        };
        let Some(dst) = self.slots.get_mut(&into) else {
            self.slots.insert(from, src);
            return;
        };
        for ev in &src.inc.events {
            upsert_event(&mut dst.inc, ev);
            self.by_event.insert(ev.id.clone(), into);
        }
        for id in &src.hotspot_ids {
            if let Some(e) = self.hotspots.get_mut(*id) {
                e.incident = Some(into);
                dst.inc.hotspots.push(e.hotspot.clone());
            }
        }
        dst.hotspot_ids.append(&mut src.hotspot_ids);
        dst.ongoing.extend(src.ongoing.iter().cloned());
        dst.cones.append(&mut src.cones);
        let cams: BTreeSet<CameraId> = dst.cones.values().map(|c| c.camera.clone()).collect();
        for c in &cams {
            if let Some(extent) =
                camera_extent(&mut dst.cones, c, self.s.group_window, &mut dst.scratch)
            {
                upsert_sector(&mut dst.inc, extent);
            }
        }
        if let Some((f, l)) = src.cam {
            span_add(&mut dst.cam, f, l);
        }
        if let Some((f, l)) = src.sat {
            span_add(&mut dst.sat, f, l);
        }
        dst.inc.first_seen = dst.inc.first_seen.min(src.inc.first_seen);
        dst.inc.last_seen = dst.inc.last_seen.max(src.inc.last_seen);
        dst.inc.notes.push(format!(
            "Merged incident {}: its hotspots join this fire.",
            src.inc.id
        ));
        let into_id = dst.inc.id.clone();
        src.inc.hotspots.clear();
        src.inc.events.clear();
        src.inc.sectors.clear();
        src.ongoing.clear();
        src.merged_into = Some(into);
        src.inc.state = IncidentState::Closed;
        src.inc
            .notes
            .push(format!("Merged into incident {into_id}."));
        self.slots.insert(from, src);
        self.stats.merged += 1;
        touched.insert(into);
        touched.insert(from);
    }

    // ---- derived fields ----

    /// Recomputes cameras, confidence, location and severity of a fire incident.
    fn refresh(&mut self, seq: u64) {
        let Some(slot) = self.slots.get(&seq) else {
            return;
        };
        if slot.inc.kind != IncidentKind::Fire
            || slot.inc.events.is_empty() && slot.inc.hotspots.is_empty()
        {
            return;
        }
        let inc = &slot.inc;
        let cams: BTreeSet<CameraId> = inc.events.iter().map(|e| e.camera.clone()).collect();
        let has_sat = !inc.hotspots.is_empty();
        let confidence = match (cams.len(), has_sat) {
            (0, _) => IncidentConfidence::SatelliteOnly,
            (_, true) => IncidentConfidence::CameraSatellite,
            (1, false) => IncidentConfidence::Camera,
            _ => IncidentConfidence::MultiCamera,
        };
        let mut fix_note = None;
        let location = {
            let sectors: Vec<&Sector> = inc.sectors.iter().collect();
            let fix = if sectors.len() >= 2 {
                match triangulate(&sectors, self.s.min_angle_deg, self.s.min_baseline_m) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        fix_note = Some(format!("No triangulated location: {e}."));
                        None
                    }
                }
            } else {
                None
            };
            if let Some(f) = fix {
                Some(Location {
                    point: f.point,
                    method: LocationMethod::Triangulated,
                    ellipse: Some(f.ellipse),
                })
            } else if has_sat {
                Some(cluster_location(&inc.hotspots))
            } else {
                inc.sectors.first().map(sector_location)
            }
        };
        let severity = fire_severity(inc, confidence);
        let old_method = inc.location.as_ref().map(|l| l.method);
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        let inc = &mut slot.inc;
        if inc.confidence != confidence
            && !(inc.events.is_empty() && confidence == IncidentConfidence::SatelliteOnly)
        {
            inc.notes.push(format!(
                "Confidence {} → {}.",
                confidence_name(inc.confidence),
                confidence_name(confidence)
            ));
        }
        let new_method = location.as_ref().map(|l| l.method);
        if new_method != old_method {
            if let Some(l) = &location {
                let pm = l
                    .ellipse
                    .map_or(String::new(), |e| format!(" ± {:.0} m", e.semi_major_m));
                inc.notes.push(format!(
                    "Located by {}: {:.5}, {:.5}{pm}.",
                    match l.method {
                        LocationMethod::Triangulated => "triangulation",
                        LocationMethod::HotspotCluster => "hotspot cluster centroid",
                        LocationMethod::Sector => "a point on the bearing sector",
                    },
                    l.point.lat,
                    l.point.lon
                ));
            }
        }
        if fix_note != slot.fix_note {
            if let Some(n) = &fix_note {
                inc.notes.push(n.clone());
            }
            slot.fix_note = fix_note;
        }
        inc.confidence = confidence;
        inc.severity = severity;
        inc.location = location;
        inc.cameras = cams.into_iter().collect();
    }
}

fn confidence_name(c: IncidentConfidence) -> &'static str {
    match c {
        IncidentConfidence::SatelliteOnly => "satellite-only",
        IncidentConfidence::Camera => "camera",
        IncidentConfidence::MultiCamera => "multi-camera",
        IncidentConfidence::CameraSatellite => "camera+satellite",
    }
}

fn upsert_event(inc: &mut Incident, ev: &Event) {
    match inc.events.iter_mut().find(|e| e.id == ev.id) {
        Some(e) => *e = ev.clone(),
        None => inc.events.push(ev.clone()),
    }
}

fn upsert_sector(inc: &mut Incident, s: Sector) {
    match inc.sectors.iter_mut().find(|x| x.camera == s.camera) {
        Some(x) => {
            if s.at >= x.at {
                *x = s
            }
        }
        None => inc.sectors.push(s),
    }
}

/// One camera's sector on an incident: the median bearing (and median width) of the cones of
/// its events seen within `window` of its newest one (older cones are forgotten). A fire
/// that shows as several boxes (flames here, smoke there) is located by where its boxes are
/// on the whole, not by whichever box moved last, and a stray box does not move it; the cone
/// does not widen with the boxes, so the location's uncertainty does not snowball.
fn camera_extent(
    cones: &mut BTreeMap<String, Sector>,
    camera: &CameraId,
    window: Duration,
    scratch: &mut Vec<f64>,
) -> Option<Sector> {
    let newest = cones
        .values()
        .filter(|c| &c.camera == camera)
        .max_by_key(|c| c.at)?
        .clone();
    cones.retain(|_, c| &c.camera != camera || c.at >= newest.at - window);
    let mine = || cones.values().filter(|c| &c.camera == camera);
    scratch.clear();
    scratch.extend(
        mine().map(|c| lookout_core::geo::angle_diff_deg(c.bearing_deg, newest.bearing_deg)),
    );
    let offset = median(scratch);
    scratch.clear();
    scratch.extend(mine().map(|c| c.half_width_deg));
    let half_width_deg = median(scratch);
    Some(Sector {
        bearing_deg: (newest.bearing_deg + offset).rem_euclid(360.0),
        half_width_deg,
        ..newest
    })
}

/// The median of a non-empty list (the mean of the middle two for an even count).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Adds a fire-like event to an incident's slot.
fn join_event(slot: &mut Slot, ev: &Event, sector: Option<Sector>, note: bool, window: Duration) {
    let known = slot.inc.events.iter().any(|e| e.id == ev.id);
    upsert_event(&mut slot.inc, ev);
    span_add(&mut slot.cam, ev.first_seen, ev.last_seen);
    slot.inc.first_seen = slot.inc.first_seen.min(ev.first_seen);
    slot.inc.last_seen = slot.inc.last_seen.max(ev.last_seen);
    if ev.phase == EventPhase::End {
        slot.ongoing.remove(&ev.id);
    } else {
        slot.ongoing.insert(ev.id.clone());
    }
    if !slot.inc.cameras.contains(&ev.camera) {
        slot.inc.cameras.push(ev.camera.clone());
    }
    let bearing = sector
        .as_ref()
        .map(|s| {
            format!(
                " at bearing {:.1}° ± {:.1}°",
                s.bearing_deg, s.half_width_deg
            )
        })
        .unwrap_or_default();
    if let Some(s) = sector {
        let camera = s.camera.clone();
        // Updates of a known event replace its cone in place (no new key per frame).
        match slot.cones.get_mut(&ev.id) {
            Some(c) => *c = s,
            None => {
                slot.cones.insert(ev.id.clone(), s);
            }
        }
        if let Some(extent) = camera_extent(&mut slot.cones, &camera, window, &mut slot.scratch) {
            upsert_sector(&mut slot.inc, extent);
        }
    }
    if !known || note {
        slot.inc.notes.push(format!(
            "Camera {} {} event {}{bearing} ({}).",
            ev.camera,
            ev.kind,
            ev.id,
            ev.first_seen.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    } else if ev.phase == EventPhase::End {
        slot.inc
            .notes
            .push(format!("Camera {} event {} ended.", ev.camera, ev.id));
    }
}

/// The centroid of hotspot pixels with the spread of their positions (and footprints) as
/// the uncertainty.
fn cluster_location(hs: &[Hotspot]) -> Location {
    let n = hs.len().max(1) as f64;
    let c = GeoPoint::new(
        hs.iter().map(|h| h.location.lat).sum::<f64>() / n,
        hs.iter().map(|h| h.location.lon).sum::<f64>() / n,
    );
    let plane = Plane::new(c);
    let (mut sxx, mut sxy, mut syy, mut fp) = (0.0, 0.0, 0.0, 0.0);
    for h in hs {
        let (x, y) = plane.to_xy(&h.location).unwrap_or((0.0, 0.0));
        sxx += x * x;
        sxy += x * y;
        syy += y * y;
        fp += h.footprint_radius_m().powi(2);
    }
    let fp = fp / n / 2.0;
    let e = ellipse_from_cov(sxx / n + fp, sxy / n, syy / n + fp);
    Location {
        point: c,
        method: LocationMethod::HotspotCluster,
        ellipse: Some(e),
    }
}

/// A point on the cone's axis at half its range, with the cone's extent as uncertainty.
fn sector_location(s: &Sector) -> Location {
    let d = s.range_m / 2.0;
    Location {
        point: s.origin.destination(s.bearing_deg, d),
        method: LocationMethod::Sector,
        ellipse: Some(UncertaintyEllipse {
            semi_major_m: d,
            semi_minor_m: d * s.half_width_deg.to_radians().tan(),
            orientation_deg: s.bearing_deg % 180.0,
        }),
    }
}

/// Severity from corroboration, persistence and size.
fn fire_severity(inc: &Incident, c: IncidentConfidence) -> Severity {
    let strong_sat = inc.hotspots.iter().any(|h| {
        matches!(h.confidence, HotspotConfidence::High)
            || matches!(h.confidence, HotspotConfidence::Percent(p) if p >= 80)
    });
    let mut s = match c {
        IncidentConfidence::SatelliteOnly if strong_sat => Severity::Medium,
        IncidentConfidence::SatelliteOnly => Severity::Low,
        IncidentConfidence::Camera => Severity::Medium,
        IncidentConfidence::MultiCamera | IncidentConfidence::CameraSatellite => Severity::High,
    };
    let cam_first = inc.events.iter().map(|e| e.first_seen).min();
    let cam_last = inc.events.iter().map(|e| e.last_seen).max();
    let persistent =
        matches!((cam_first, cam_last), (Some(f), Some(l)) if l - f >= Duration::minutes(15));
    let big_box = inc.events.iter().any(|e| match (e.bbox, e.frame_size) {
        (Some(b), Some((_, h))) if h > 0 => b.height() as f64 / h as f64 >= 0.25,
        _ => false,
    });
    let frp: f64 = inc.hotspots.iter().filter_map(|h| h.frp).sum();
    let big_fire = inc.hotspots.len() >= 10 || frp >= 100.0;
    if persistent || big_box || big_fire {
        s = s.raised();
    }
    s
}

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

mod clock;
mod grouping;
mod hotspots;
mod incident;

use incident::{camera_extent, join_event, span_add, upsert_sector, HotspotAcc};

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
    cooldown: Duration,
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
    /// `hotspot_ids[..grown_from]` were already looked around for unclaimed neighbours.
    grown_from: usize,
    /// For personnel and health incidents: (camera, event kind, zone).
    personnel_key: Option<PersonnelKey>,
    /// Why the bearings gave no location, last time it was tried.
    fix_note: Option<String>,
    /// Set when this incident was merged into another: it takes nothing any more.
    merged_into: Option<u64>,
    /// Capture time and material state of the last emitted revision.
    last_emit: Option<(UtcTime, lookout_core::incident::Material)>,
    /// Running sums of its hotspots' positions (the cluster's centroid and spread, however
    /// many hotspots it has).
    hot: HotspotAcc,
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
                cooldown: secs(f.cooldown_s.unwrap_or(cfg.alerts.cooldown_s)),
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

    /// Camera `id` changed live: `Some` its new settings (added, enabled or edited),
    /// `None` stopped (removed or disabled; its bearings go, its incidents stay). Later
    /// events of the camera use the new geometry; the field-of-view cones are recomputed.
    pub fn set_camera(&mut self, id: &str, cam: Option<&lookout_config::cameras::CameraConfig>) {
        self.cameras.remove(id);
        self.replayed.remove(id);
        if let Some(c) = cam.filter(|c| c.enabled) {
            match CameraGeometry::from_config(c) {
                Ok(Some(g)) => {
                    self.cameras.insert(c.id.clone(), g);
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(camera = %c.id, error = %e, "Camera geometry unusable; its detections get no bearing.")
                }
            }
            if matches!(
                c.source,
                lookout_config::cameras::SourceConfig::File {
                    start_time: Some(_),
                    ..
                }
            ) {
                self.replayed.insert(c.id.clone());
            }
        }
        self.fov = self
            .cameras
            .values()
            .flat_map(|g| g.fov_sectors(UtcTime::default()))
            .map(|(_, s)| s)
            .collect();
        info!(camera = %id, located = self.cameras.contains_key(id), "Fusion camera changed.");
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

    /// The operator closed an incident: fusion stops adding evidence to it (late evidence
    /// only annotates it). Returns false for an unknown id.
    pub fn close_incident(&mut self, id: &str) -> bool {
        let Some(slot) = self.slots.values_mut().find(|s| s.inc.id == id) else {
            return false;
        };
        if slot.inc.state != IncidentState::Closed {
            slot.inc.state = IncidentState::Closed;
            slot.inc.add_note("Closed by an operator.");
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
            // A fire closes when quiet for `close_after`; a personnel or health situation
            // that ended closes when it did not recur within the cooldown.
            let quiet = if slot.inc.kind == IncidentKind::Fire {
                self.s.close_after
            } else {
                self.s.cooldown
            };
            if slot.ongoing.is_empty() && t >= slot.inc.last_seen + quiet {
                close.push(*seq);
            }
        }
        for seq in close {
            if let Some(slot) = self.slots.get_mut(&seq) {
                slot.inc.state = IncidentState::Closed;
                let since = slot.inc.last_seen.format("%Y-%m-%d %H:%M:%S UTC");
                slot.inc.add_note(if slot.inc.kind == IncidentKind::Fire {
                    format!("Closed by fusion: no new evidence since {since}.")
                } else {
                    format!("Closed by fusion: the situation is over (ended {since}, did not recur within the cooldown).")
                });
                if let Some(k) = slot.personnel_key.take() {
                    self.personnel_open.remove(&k);
                }
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
                // An open fire keeps its own hotspots: a wildfire that spreads for days stays
                // one incident, its cluster growing from yesterday's pass.
                let slots = &self.slots;
                let n = self.hotspots.prune_except(before, |e| {
                    e.incident
                        .and_then(|s| slots.get(&s))
                        .is_some_and(|s| s.inc.state != IncidentState::Closed)
                });
                if n > 0 {
                    debug!(pruned = n, "Forgot hotspots no late event can join.");
                    let index = &self.hotspots;
                    // Ids of forgotten hotspots are reused by new ones: drop them.
                    for slot in self.slots.values_mut() {
                        let before = slot.hotspot_ids.len();
                        slot.hotspot_ids.retain(|id| index.get(*id).is_some());
                        if slot.hotspot_ids.len() != before {
                            slot.grown_from = 0;
                        }
                    }
                }
            }
        }
        self.emit(touched, out);
    }

    pub(super) fn insert_slot(&mut self, inc: Incident) -> u64 {
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
                grown_from: 0,
                personnel_key: None,
                fix_note: None,
                merged_into: None,
                last_emit: None,
                hot: HotspotAcc::default(),
                cones: BTreeMap::new(),
                scratch: Vec::new(),
            },
        );
        seq
    }
}

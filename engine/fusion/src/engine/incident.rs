//! Building an incident from its evidence (cameras, confidence, location, severity, sectors)
//! and emitting its revisions.

use super::*;

impl Fusion {
    /// Emits a revision of every touched incident whose material state changed (see
    /// [`lookout_core::incident::Material::changes_since`]); one whose only change is more
    /// of the same evidence gets a revision at most once per `update_interval`. Each
    /// revision says what changed (`changes`).
    pub(super) fn emit(&mut self, touched: BTreeSet<u64>, out: &mut Vec<Incident>) {
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
                // Created and merged into another before anyone heard of it (a new track of
                // a fire that already has an incident): nothing to announce.
                if slot.merged_into.is_some() && slot.last_emit.is_none() {
                    self.stats.updates_folded += 1;
                    continue;
                }
                let material = slot.inc.material();
                // A closed incident only changes by late annotation: always worth sending.
                let open = slot.inc.state != IncidentState::Closed;
                let changes = match &slot.last_emit {
                    None => vec!["opened".to_string()],
                    Some((at, prev)) => {
                        let c = material.changes_since(prev);
                        if c.is_empty() && open && slot.inc.last_seen < *at + interval {
                            self.stats.updates_folded += 1;
                            continue;
                        }
                        c
                    }
                };
                slot.inc.changes = if !changes.is_empty() {
                    changes
                } else if open {
                    vec!["more of the same evidence".to_string()]
                } else {
                    vec!["late evidence noted".to_string()]
                };
                slot.last_emit = Some((slot.inc.last_seen, material));
                slot.inc.revision += 1;
                out.push(slot.inc.clone());
            }
        }
    }

    /// Recomputes cameras, confidence, location and severity of a fire incident.
    pub(super) fn refresh(&mut self, seq: u64) {
        let Some(slot) = self.slots.get(&seq) else {
            return;
        };
        if slot.inc.kind != IncidentKind::Fire
            || slot.inc.evidence.events == 0 && slot.inc.hotspot_count() == 0
        {
            return;
        }
        let inc = &slot.inc;
        let cams: Vec<CameraId> = inc
            .evidence
            .cameras
            .iter()
            .map(|c| c.camera.clone())
            .collect();
        let has_sat = inc.hotspot_count() > 0;
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
                slot.hot.location()
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
            && !(inc.evidence.events == 0 && confidence == IncidentConfidence::SatelliteOnly)
        {
            inc.add_note(format!(
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
                inc.add_note(format!(
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
                inc.add_note(n.clone());
            }
            slot.fix_note = fix_note;
        }
        inc.confidence = confidence;
        inc.severity = severity;
        inc.location = location;
        inc.cameras = cams;
    }
}

pub(super) fn confidence_name(c: IncidentConfidence) -> &'static str {
    match c {
        IncidentConfidence::SatelliteOnly => "satellite-only",
        IncidentConfidence::Camera => "camera",
        IncidentConfidence::MultiCamera => "multi-camera",
        IncidentConfidence::CameraSatellite => "camera+satellite",
    }
}

pub(super) fn upsert_sector(inc: &mut Incident, s: Sector) {
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
pub(super) fn camera_extent(
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
pub(super) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Adds a fire-like event to an incident's slot; `new` when the event is new to it (it is
/// counted, and noted).
pub(super) fn join_event(
    slot: &mut Slot,
    ev: &Event,
    sector: Option<Sector>,
    new: bool,
    window: Duration,
) {
    slot.inc.keep_event(ev);
    slot.inc.evidence.add_event(ev, new);
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
    if new {
        slot.inc.add_note(format!(
            "Camera {} {} event {}{bearing} ({}).",
            ev.camera,
            ev.kind,
            ev.id,
            ev.first_seen.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    } else if ev.phase == EventPhase::End {
        slot.inc
            .add_note(format!("Camera {} event {} ended.", ev.camera, ev.id));
    }
}

/// Running sums of an incident's hotspot positions in a tangent plane at its first
/// hotspot: the cluster's centroid and spread (and the pixels' footprints) in constant
/// space, however many hotspots the fire accumulates.
#[derive(Debug, Clone, Default)]
pub(super) struct HotspotAcc {
    anchor: Option<GeoPoint>,
    n: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
    syy: f64,
    fp: f64,
}

impl HotspotAcc {
    /// Adds one hotspot.
    pub(super) fn add(&mut self, h: &Hotspot) {
        let anchor = *self.anchor.get_or_insert(h.location);
        let (x, y) = Plane::new(anchor).to_xy(&h.location).unwrap_or((0.0, 0.0));
        self.n += 1.0;
        self.sx += x;
        self.sy += y;
        self.sxx += x * x;
        self.sxy += x * y;
        self.syy += y * y;
        self.fp += h.footprint_radius_m().powi(2);
    }

    /// Adds another incident's sums (two incidents merged), moved to this plane.
    pub(super) fn absorb(&mut self, o: &HotspotAcc) {
        let (Some(a), Some(b)) = (self.anchor, o.anchor) else {
            if self.anchor.is_none() {
                *self = o.clone();
            }
            return;
        };
        let (dx, dy) = Plane::new(a).to_xy(&b).unwrap_or((0.0, 0.0));
        // Σ(x + d) = Σx + n·d; Σ(x + d)² = Σx² + 2d·Σx + n·d²; likewise for xy.
        self.sxx += o.sxx + 2.0 * dx * o.sx + o.n * dx * dx;
        self.syy += o.syy + 2.0 * dy * o.sy + o.n * dy * dy;
        self.sxy += o.sxy + dx * o.sy + dy * o.sx + o.n * dx * dy;
        self.sx += o.sx + o.n * dx;
        self.sy += o.sy + o.n * dy;
        self.n += o.n;
        self.fp += o.fp;
    }

    /// The centroid of the hotspot pixels with the spread of their positions (and
    /// footprints) as the uncertainty; `None` without hotspots.
    pub(super) fn location(&self) -> Option<Location> {
        let anchor = self.anchor?;
        if self.n <= 0.0 {
            return None;
        }
        let n = self.n;
        let (mx, my) = (self.sx / n, self.sy / n);
        let fp = self.fp / n / 2.0;
        let e = ellipse_from_cov(
            (self.sxx / n - mx * mx).max(0.0) + fp,
            self.sxy / n - mx * my,
            (self.syy / n - my * my).max(0.0) + fp,
        );
        Some(Location {
            point: Plane::new(anchor).to_geo(mx, my),
            method: LocationMethod::HotspotCluster,
            ellipse: Some(e),
        })
    }
}

/// A point on the cone's axis at half its range, with the cone's extent as uncertainty.
pub(super) fn sector_location(s: &Sector) -> Location {
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

/// Severity from corroboration, persistence and size (from the evidence summary: every
/// event and hotspot it ever had counts, not only those it carries).
pub(super) fn fire_severity(inc: &Incident, c: IncidentConfidence) -> Severity {
    let sat = inc.evidence.hotspots.as_ref();
    let strong_sat = sat.is_some_and(|h| h.high_confidence > 0);
    let mut s = match c {
        IncidentConfidence::SatelliteOnly if strong_sat => Severity::Medium,
        IncidentConfidence::SatelliteOnly => Severity::Low,
        IncidentConfidence::Camera => Severity::Medium,
        IncidentConfidence::MultiCamera | IncidentConfidence::CameraSatellite => Severity::High,
    };
    let persistent = inc
        .evidence
        .camera_span()
        .is_some_and(|(f, l)| l - f >= Duration::minutes(15));
    let big_box = inc.evidence.largest_box >= 0.25;
    let big_fire = sat.is_some_and(|h| h.count >= 10 || h.total_frp >= 100.0);
    if persistent || big_box || big_fire {
        s = s.raised();
    }
    s
}

pub(super) fn span_add(span: &mut Option<(UtcTime, UtcTime)>, a: UtcTime, b: UtcTime) {
    *span = Some(match *span {
        Some((f, l)) => (f.min(a), l.max(b)),
        None => (a.min(b), a.max(b)),
    });
}

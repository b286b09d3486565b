//! Which incident an event joins: fire-like events by bearing cone, time and place;
//! personnel and camera-health events by (camera, kind, zone).

use super::*;

impl Fusion {
    /// A personnel or camera-health event: one open incident per (camera, kind, zone). A
    /// situation that ended stays open for the cooldown, so one that recurs (a new event
    /// of the same camera, kind and zone) is the same incident, not a new one.
    pub(super) fn personnel_event(&mut self, ev: &Event, touched: &mut BTreeSet<u64>) {
        let new_event = !self.by_event.contains_key(&ev.id);
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
                let mut inc = Incident::open(
                    id,
                    incident_kind(ev.kind),
                    IncidentConfidence::Camera,
                    personnel_severity(ev.kind),
                    ev.first_seen,
                    ev.last_seen,
                );
                inc.cameras = vec![ev.camera.clone()];
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
            slot.inc.add_note(format!(
                "Event {} ({:?}) arrived after the incident closed; not reopened.",
                ev.id, ev.phase
            ));
            touched.insert(seq);
            return;
        }
        slot.inc.keep_event(ev);
        slot.inc.evidence.add_event(ev, new_event);
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
                slot.inc.add_note(format!("Started: {what}."));
            }
            EventPhase::Update => {
                slot.ongoing.insert(ev.id.clone());
                slot.inc.add_note(format!("Updated: {what}."));
            }
            EventPhase::End => {
                slot.ongoing.remove(&ev.id);
                slot.inc.add_note(format!("Ended: {what}."));
                // With a cooldown, `advance` closes it once the cooldown passed quietly.
                if slot.ongoing.is_empty() && self.s.cooldown <= Duration::zero() {
                    slot.inc.state = IncidentState::Closed;
                    slot.inc
                        .add_note("Closed by fusion: the situation is over.");
                    self.stats.closed += 1;
                    if let Some(k) = slot.personnel_key.take() {
                        self.personnel_open.remove(&k);
                    }
                }
            }
        }
        touched.insert(seq);
    }

    pub(super) fn sector_for(&self, ev: &Event) -> Option<Sector> {
        let g = self.cameras.get(ev.camera.as_ref())?;
        let b = g.bearing(
            ev.bbox.as_ref()?,
            ev.frame_size?,
            ev.preset.as_deref(),
            self.s.bearing_error_deg,
        )?;
        Some(g.sector(b, ev.last_seen))
    }

    /// Whether an event's time fits an incident's evidence: within the group window of its
    /// camera evidence (within the cooldown, when the event's own camera already sees it),
    /// or within the hotspot window of its satellite evidence.
    pub(super) fn event_time_ok(&self, slot: &Slot, ev: &Event) -> bool {
        let gw = if slot.inc.cameras.contains(&ev.camera) {
            self.s.group_window.max(self.s.cooldown)
        } else {
            self.s.group_window
        };
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
    pub(super) fn event_match(
        &self,
        slot: &Slot,
        ev: &Event,
        sector: Option<&Sector>,
    ) -> Option<f64> {
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

    pub(super) fn fire_event(&mut self, ev: &Event, touched: &mut BTreeSet<u64>) {
        let sector = self.sector_for(ev);
        let gw = self.s.group_window;
        if sector.is_none() {
            self.stats.events_without_bearing += 1;
            debug!(event = %ev.id, camera = %ev.camera, "Fire-like event without a bearing (no geo, preset or box).");
        }
        if let Some(&seq) = self.by_event.get(&ev.id) {
            if let Some(slot) = self.slots.get_mut(&seq) {
                if slot.inc.state == IncidentState::Closed {
                    slot.inc.add_note(format!(
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
                let inc = Incident::open(
                    format!("fire-{}", ev.id),
                    IncidentKind::Fire,
                    IncidentConfidence::Camera,
                    Severity::Medium,
                    ev.first_seen,
                    ev.last_seen,
                );
                let seq = self.insert_slot(inc);
                if let Some(slot) = self.slots.get_mut(&seq) {
                    join_event(slot, ev, sector, true, gw);
                    let first = slot.inc.notes.pop().unwrap_or_default();
                    slot.inc.add_note(format!("Opened: {first}"));
                }
                seq
            }
        };
        self.by_event.insert(ev.id.clone(), seq);
        touched.insert(seq);
        self.refresh(seq);
        self.absorb(seq, touched);
    }
}

pub(super) fn incident_kind(k: EventKind) -> IncidentKind {
    IncidentKind::of_event(k)
}

pub(super) fn personnel_severity(k: EventKind) -> Severity {
    match k {
        EventKind::Restricted
        | EventKind::OverOccupancy
        | EventKind::ForbiddenRole
        | EventKind::LoneWorker => Severity::High,
        EventKind::PostVacant
        | EventKind::PatrolMissed
        | EventKind::CameraOffline
        | EventKind::ViewBlocked
        | EventKind::ViewMoved => Severity::Medium,
        _ => Severity::Low,
    }
}

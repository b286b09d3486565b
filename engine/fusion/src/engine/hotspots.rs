//! Satellite hotspots: static sources, the watched area, which incident a hotspot
//! corroborates, satellite-only incidents, and merging incidents a hotspot connects.

use super::*;

impl Fusion {
    pub(super) fn hotspot_or_hold(&mut self, h: Hotspot, touched: &mut BTreeSet<u64>) {
        if self.ahead_of_replay(&h) {
            self.stats.held_for_replay += 1;
            self.pending.push(h);
        } else {
            self.hotspot(h, touched);
        }
    }

    pub(super) fn is_static(&self, h: &Hotspot) -> bool {
        matches!(h.fire_type, Some(2) | Some(3))
            || self.static_masks.iter().any(|p| in_polygon(&h.location, p))
    }

    pub(super) fn is_watched(&self, p: &GeoPoint) -> bool {
        match &self.watched {
            Watched::Polygon(poly) => in_polygon(p, poly),
            Watched::Cones => self.watchers(p).next().is_some(),
        }
    }

    pub(super) fn confident(&self, h: &Hotspot) -> bool {
        match h.confidence {
            HotspotConfidence::Nominal | HotspotConfidence::High => true,
            HotspotConfidence::Low => false,
            HotspotConfidence::Percent(p) => p >= self.s.modis_min,
        }
    }

    /// Whether a hotspot belongs to a fire incident (time and space), ignoring its state.
    pub(super) fn hotspot_match(&self, slot: &Slot, h: &Hotspot) -> Option<HotspotMatch> {
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

    pub(super) fn hotspot(&mut self, h: Hotspot, touched: &mut BTreeSet<u64>) {
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
            let no_camera = self
                .slots
                .get(&seq)
                .is_none_or(|s| s.inc.evidence.events == 0);
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
                slot.inc.add_note(format!(
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
            evidence: Default::default(),
            first_seen: h.acquired_at,
            last_seen: h.acquired_at,
            revision: 0,
            notes: vec![format!(
                "Opened by a satellite {} with no camera event.",
                describe(&h)
            )],
            changes: vec![],
        };
        let seq = self.insert_slot(inc);
        self.attach(seq, id, touched);
        self.absorb(seq, touched);
    }

    pub(super) fn attach(&mut self, seq: u64, id: HotspotId, touched: &mut BTreeSet<u64>) {
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
            if slot.inc.hotspot_count() > 0 || slot.inc.evidence.events == 0 {
                // Notes stay readable: one per first corroboration, counts in the summary.
            } else {
                slot.inc
                    .add_note(format!("Corroborated by a satellite {}.", describe(&h)));
            }
            slot.hot.add(&h);
            lookout_core::incident::HotspotSummary::add(&mut slot.inc.evidence.hotspots, &h);
            slot.inc.keep_hotspot(h);
            self.stats.attached += 1;
            touched.insert(seq);
        }
    }

    /// Pulls in unclaimed hotspots that belong to an open fire incident, growing its cluster,
    /// and merges incidents its hotspots connect to.
    pub(super) fn absorb(&mut self, mut seq: u64, touched: &mut BTreeSet<u64>) {
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
            // The cluster grows from the hotspots it gained since the last look (what lies
            // near its older ones was looked at then): constant work per event, however
            // many hotspots a long fire has.
            let grown = slot.hotspot_ids.len();
            for id in &slot.hotspot_ids[slot.grown_from.min(grown)..] {
                if let Some(e) = self.hotspots.get(*id) {
                    cands.extend(self.hotspots.within(&e.hotspot.location, self.s.merge_m));
                }
            }
            if let Some(slot) = self.slots.get_mut(&seq) {
                slot.grown_from = grown;
            }
            let Some(slot) = self.slots.get(&seq) else {
                return;
            };
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
            // Camera evidence first: a satellite-only cluster that reaches a camera incident
            // merges into it, never the other way round.
            let has_camera =
                |f: &Fusion, s: u64| f.slots.get(&s).is_some_and(|x| x.inc.evidence.events > 0);
            if !has_camera(self, seq) {
                if let Some(&cam) = merge.iter().find(|o| has_camera(self, **o)) {
                    merge.remove(&cam);
                    self.merge(cam, seq, touched);
                    seq = cam;
                }
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
    pub(super) fn merge(&mut self, into: u64, from: u64, touched: &mut BTreeSet<u64>) {
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
            dst.inc.keep_event(ev);
        }
        // Every event of `from` (not only those it carries) now belongs to `into`.
        for v in self.by_event.values_mut() {
            if *v == from {
                *v = into;
            }
        }
        for id in &src.hotspot_ids {
            if let Some(e) = self.hotspots.get_mut(*id) {
                e.incident = Some(into);
            }
        }
        for h in src.inc.hotspots.drain(..) {
            dst.inc.keep_hotspot(h);
        }
        dst.inc.evidence.absorb(&src.inc.evidence);
        dst.hot.absorb(&src.hot);
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
        dst.inc.add_note(format!(
            "Merged incident {}: its hotspots join this fire.",
            src.inc.id
        ));
        let into_id = dst.inc.id.clone();
        src.inc.hotspots.clear();
        src.inc.events.clear();
        src.inc.sectors.clear();
        src.inc.evidence = lookout_core::incident::Evidence {
            notes_dropped: src.inc.evidence.notes_dropped,
            ..Default::default()
        };
        src.hot = HotspotAcc::default();
        src.ongoing.clear();
        src.merged_into = Some(into);
        src.inc.state = IncidentState::Closed;
        src.inc.add_note(format!("Merged into incident {into_id}."));
        self.slots.insert(from, src);
        self.stats.merged += 1;
        touched.insert(into);
        touched.insert(from);
    }
}

pub(super) fn source_name(s: HotspotSource) -> &'static str {
    match s {
        HotspotSource::ModisTerra => "modis-terra",
        HotspotSource::ModisAqua => "modis-aqua",
        HotspotSource::ViirsSnpp => "viirs-snpp",
        HotspotSource::ViirsNoaa20 => "viirs-noaa20",
        HotspotSource::ViirsNoaa21 => "viirs-noaa21",
        HotspotSource::Other => "other",
    }
}

pub(super) fn describe(h: &Hotspot) -> String {
    format!(
        "{} hotspot at {:.5}, {:.5} acquired {}",
        source_name(h.source),
        h.location.lat,
        h.location.lon,
        h.acquired_at.format("%Y-%m-%d %H:%M UTC")
    )
}

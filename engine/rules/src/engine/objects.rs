//! Object events: filters and masks, the tracker, thresholds with hysteresis and
//! persistence, zone inertia, and the start/update of smoke, fire and person-in-zone events;
//! head counts handed to the personnel rules.

use super::*;

impl RulesEngine {
    pub(super) fn on_frame(&mut self, fr: &FrameResult, out: &mut Vec<Event>) {
        let t = fr.captured_at;
        let t_ms = t.timestamp_millis();
        let ci = self.cam(&fr.camera);
        self.enter_preset(ci, fr.preset.as_ref());
        self.advance(ci, t_ms, out);
        self.frames += 1;
        self.detections += fr.detections.len() as u64;
        let person_class = self.c.cfg.person_class.as_str();
        if !self.person_models.contains(&fr.model)
            && fr
                .detections
                .iter()
                .any(|d| &*d.class == person_class && self.c.keeps(d))
        {
            self.person_models.push(fr.model.clone());
        }
        let person_capable = if self.c.cfg.person_models.is_empty() {
            fr.model.contains(person_class) || self.person_models.contains(&fr.model)
        } else {
            self.c.cfg.person_models.iter().any(|m| **m == *fr.model)
        };

        let RulesEngine {
            c,
            tp,
            cams,
            cands,
            cand_params,
            ..
        } = self;
        let c = &*c;
        let person_class = c.cfg.person_class.as_str();
        let cam = &mut cams[ci];
        cam.seen_frame = true;
        let preset = fr.preset.as_deref();
        let rules = c.cams.get(&*fr.camera);
        let zones = rules.map_or(&[][..], |r| &r.zones[..]);
        let nz = zones.len();
        let (w, h) = (fr.width.max(1), fr.height.max(1));
        let profiles = if c.profiles.is_empty() {
            0
        } else {
            c.active_profiles(&fr.camera, t)
        };

        // Filters and masks; confident vs weak split.
        cands.clear();
        cand_params.clear();
        for d in &fr.detections {
            if !c.keeps(d) {
                continue;
            }
            let (ax, ay) = anchor(&d.bbox, w, h);
            let zone = zones
                .iter()
                .position(|z| z.has_overrides && z.visible(preset) && z.poly.contains(ax, ay));
            let p = c.params(&d.class, &fr.camera, preset, zone, profiles);
            let bw = d.bbox.width() / w as f32;
            let bh = d.bbox.height() / h as f32;
            let area = bw * bh;
            if area < p.min_area || area > p.max_area || bw > p.max_width {
                continue;
            }
            let aspect = if bh > 0.0 {
                bw * w as f32 / (bh * h as f32)
            } else {
                f32::INFINITY
            };
            if aspect < p.min_aspect || aspect > p.max_aspect {
                continue;
            }
            if let Some(r) = rules {
                if r.masks
                    .iter()
                    .any(|m| m.applies(&d.class, preset) && m.poly.contains(ax, ay))
                {
                    continue;
                }
            }
            cands.push(Candidate {
                class: d.class.clone(),
                score: d.score,
                bbox: d.bbox,
                high: d.score >= p.min_score,
                role: d.role.as_ref().map(|r| r.name.clone()),
            });
            cand_params.push(p);
        }

        let ti = match cam
            .trackers
            .iter()
            .position(|(m, p, _)| *m == fr.model && *p == fr.preset)
        {
            Some(i) => i,
            None => {
                cam.trackers
                    .push((fr.model.clone(), fr.preset.clone(), Tracker::new()));
                cam.trackers.len() - 1
            }
        };
        let tracker = &mut cam.trackers[ti].2;
        tracker.update(cands, tp, &mut cam.next_track, nz);

        // Track confirmation (thresholds with hysteresis, persistence) and zone inertia.
        for tr in &mut tracker.tracks {
            if tr.zone_frames.len() != nz {
                tr.zone_frames.clear();
                tr.zone_frames.resize(nz, 0);
            }
            let Some(j) = tr.matched else { continue };
            let p = &cand_params[j];
            if tr.first_seen.is_none() {
                tr.first_seen = Some(t);
            }
            let med = tr.median(p.history);
            tr.active = if tr.active {
                med >= p.keep_threshold
            } else {
                med >= p.threshold && tr.hits_in(p.persistence.n) >= p.persistence.k
            };
            let (ax, ay) = anchor(&tr.bbox, w, h);
            for (z, zone) in zones.iter().enumerate() {
                if zone.visible(preset) && zone.counts(&tr.class) && zone.poly.contains(ax, ay) {
                    tr.zone_frames[z] = tr.zone_frames[z].saturating_add(1);
                } else {
                    tr.zone_frames[z] = 0;
                }
            }
        }

        // Object events.
        let now_ms = t_ms;
        for tr in &mut tracker.tracks {
            let Some(j) = tr.matched else { continue };
            if !tr.active {
                continue;
            }
            let p = &cand_params[j];
            // Hysteresis keeps an open event alive; a new event needs the start threshold
            // again (after an event ended, or after a reload raised the threshold), and
            // for `[rules.verify]` classes a plume-shaped tube.
            let mut can_start = tr.median(p.history) >= p.threshold
                && tr.hits_in(p.persistence.n) >= p.persistence.k;
            if c.cfg.verify.classes.iter().any(|k| **k == *tr.class) {
                let v = crate::verify::verify(tr, &c.cfg.verify);
                tr.verdict = Some(v);
                can_start &= v.verified();
            }
            let in_zone =
                |z: usize| tr.zone_frames.get(z).copied().unwrap_or(0) >= zones[z].inertia;
            // The first event of a track dates from its first sighting; a later one (after
            // the previous ended) from now, so that its id differs.
            let first = if tr.had_event {
                t
            } else {
                tr.first_seen.unwrap_or(t)
            };
            let mut started = false;
            if let Some(kind) = EventKind::from_class(&tr.class).filter(|_| p.events) {
                let mut required = false;
                let mut inside_required = false;
                let mut zone_name = None;
                for (z, zone) in zones.iter().enumerate() {
                    if !zone.visible(preset) || !zone.counts(&tr.class) {
                        continue;
                    }
                    let inside = in_zone(z);
                    if zone.required {
                        required = true;
                        inside_required |= inside;
                    }
                    if inside && zone_name.is_none() {
                        zone_name = Some(zone.name.clone());
                    }
                }
                if !required || inside_required {
                    started |= upsert_obj(
                        &mut cam.objs,
                        ObjSighting {
                            camera: &fr.camera,
                            kind,
                            track: tr.id,
                            zone: zone_name,
                            preset: fr.preset.as_ref(),
                            first,
                            t,
                            score: tr.last_score(),
                            bbox: tr.bbox,
                            frame: fr,
                        },
                        c.update_ms,
                        now_ms,
                        can_start,
                        c.cfg.merge_tracks,
                        out,
                    );
                }
            }
            if *tr.class == *person_class {
                for (z, zone) in zones.iter().enumerate() {
                    if zone.person_events
                        && zone.visible(preset)
                        && zone.counts(&tr.class)
                        && in_zone(z)
                    {
                        started |= upsert_obj(
                            &mut cam.objs,
                            ObjSighting {
                                camera: &fr.camera,
                                kind: EventKind::PersonInZone,
                                track: tr.id,
                                zone: Some(zone.name.clone()),
                                preset: fr.preset.as_ref(),
                                first,
                                t,
                                score: tr.last_score(),
                                bbox: tr.bbox,
                                frame: fr,
                            },
                            c.update_ms,
                            now_ms,
                            can_start,
                            false,
                            out,
                        );
                    }
                }
            }
            tr.had_event |= started;
        }

        // Head counts for the personnel rules.
        if !person_capable || !cam.running {
            return;
        }
        cam.zone_counts.clear();
        cam.zone_counts.resize(nz, 0);
        cam.people.clear();
        cam.zone_people.truncate(nz);
        for zp in &mut cam.zone_people {
            zp.clear();
        }
        cam.zone_people.resize_with(nz, Vec::new);
        let coast = c.cfg.tracker.coast_frames;
        let window = c.cfg.role_match.window;
        for tr in &tracker.tracks {
            if !tr.active || tr.missed > coast || *tr.class != *person_class {
                continue;
            }
            let k = cam.people.len() as u32;
            cam.people.push(Person {
                role: tr.role(window).cloned(),
                x: (tr.bbox.x1 + tr.bbox.x2) * 0.5,
                y: tr.bbox.y2,
                h: tr.bbox.height(),
            });
            for (z, zone) in zones.iter().enumerate() {
                if tr.zone_frames[z] >= zone.inertia {
                    cam.zone_counts[z] += 1;
                    cam.zone_people[z].push(k);
                }
            }
        }
        self.personnel(ci, fr, out);
    }
}

/// One qualifying sighting of a tracked object.
struct ObjSighting<'a> {
    camera: &'a CameraId,
    kind: EventKind,
    track: u64,
    zone: Option<Arc<str>>,
    preset: Option<&'a Arc<str>>,
    first: UtcTime,
    t: UtcTime,
    score: f32,
    bbox: BBox,
    frame: &'a FrameResult,
}

/// Whether two boxes are within about one box size of each other: each widened by half
/// its width and height (and 1 % of the frame) on every side, they overlap.
fn near(a: &BBox, b: &BBox, w: u32, h: u32) -> bool {
    let grow = |b: &BBox| {
        let mx = b.width() * 0.5 + w as f32 * 0.01;
        let my = b.height() * 0.5 + h as f32 * 0.01;
        (b.x1 - mx, b.y1 - my, b.x2 + mx, b.y2 + my)
    };
    let (a, b) = (grow(a), grow(b));
    a.0 <= b.2 && b.0 <= a.2 && a.1 <= b.3 && b.1 <= a.3
}

fn upsert_obj(
    objs: &mut Vec<ObjOpen>,
    s: ObjSighting<'_>,
    update_ms: i64,
    now_ms: i64,
    can_start: bool,
    merge: bool,
    out: &mut Vec<Event>,
) -> bool {
    let t_ms = s.t.timestamp_millis();
    let mut found = objs.iter().position(|o| {
        (o.track == s.track || o.merged.contains(&s.track))
            && o.kind == s.kind
            && (s.kind != EventKind::PersonInZone || o.open.ev.zone == s.zone)
    });
    if found.is_none() && merge && s.kind != EventKind::PersonInZone {
        // A new track of a fire episode already open on this view continues it.
        let (w, h) = (s.frame.width.max(1), s.frame.height.max(1));
        found = objs.iter().position(|o| {
            o.kind == s.kind
                && o.open.ev.preset.as_ref() == s.preset
                && near(&o.last_bbox, &s.bbox, w, h)
        });
        if let Some(i) = found {
            let m = &mut objs[i].merged;
            if m.len() >= MAX_EPISODE_TRACKS {
                m.remove(0);
            }
            m.push(s.track);
        }
    }
    if let Some(o) = found.map(|i| &mut objs[i]) {
        o.last_bbox = s.bbox;
        let open = &mut o.open;
        open.ev.last_seen = s.t;
        open.last_seen_ms = t_ms;
        if s.score > open.ev.best_score {
            open.ev.best_score = s.score;
            open.ev.bbox = Some(s.bbox);
            open.ev.frame_size = Some((s.frame.width, s.frame.height));
            open.ev.snapshot = Some(FrameRef {
                camera: s.camera.clone(),
                seq: s.frame.seq,
            });
        }
        if open.ev.best_score > open.reported_score && now_ms - open.last_emit_ms >= update_ms {
            open.emit(EventPhase::Update, now_ms, out);
        }
        return false;
    }
    if !can_start {
        return false;
    }
    let zone_part = match (&s.kind, &s.zone) {
        (EventKind::PersonInZone, Some(z)) => format!(":{z}"),
        _ => String::new(),
    };
    let ev = Event {
        id: format!(
            "{}:{}:t{}{}:{}",
            s.camera,
            s.kind,
            s.track,
            zone_part,
            s.first.timestamp_millis()
        ),
        camera: s.camera.clone(),
        kind: s.kind,
        phase: EventPhase::Start,
        track: Some(s.track),
        zone: s.zone.clone(),
        preset: s.preset.cloned(),
        best_score: s.score,
        first_seen: s.first,
        last_seen: s.t,
        bbox: Some(s.bbox),
        frame_size: Some((s.frame.width, s.frame.height)),
        snapshot: Some(FrameRef {
            camera: s.camera.clone(),
            seq: s.frame.seq,
        }),
        count: None,
        detail: match &s.zone {
            Some(z) => format!("{} (track {}) in '{z}'", s.kind, s.track),
            None => format!("{} (track {})", s.kind, s.track),
        },
    };
    let mut o = Open::new(ev, now_ms);
    o.emit(EventPhase::Start, now_ms, out);
    objs.push(ObjOpen {
        track: s.track,
        merged: Vec::new(),
        last_bbox: s.bbox,
        kind: s.kind,
        open: o,
    });
    true
}

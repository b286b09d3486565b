//! Personnel rules: duty posts, occupancy limits, restricted areas and patrol routes,
//! their states carried across configuration changes, and their pause while a camera is down.

use super::*;

impl RulesEngine {
    /// Rebuilds personnel rule states from the config, carrying over the state of rules
    /// that still exist (same camera and zone, same route).
    pub(super) fn rebuild_rules(&mut self, ended: &mut Vec<Event>) {
        let cfg = &self.c.cfg;
        let mut old: Vec<ZoneRuleState> = std::mem::take(&mut self.zone_rules);
        let mut new_rules = Vec::new();
        let mut add =
            |kind: ZoneRuleKind, index: usize, camera: &str, zone: &str, hours: Option<Hours>| {
                let Some(z) = self
                    .c
                    .cams
                    .get(camera)
                    .and_then(|r: &CamRules| r.zone_index(zone))
                else {
                    return;
                };
                let kept = old
                    .iter()
                    .position(|o| o.kind == kind && &*o.cam == camera && &*o.zone_name == zone)
                    .map(|i| old.swap_remove(i));
                let mut st = kept.unwrap_or(ZoneRuleState {
                    kind,
                    index,
                    cam: Arc::from(camera),
                    zone: z,
                    zone_name: Arc::from(zone),
                    since: None,
                    clear_since: None,
                    open: None,
                    hours: None,
                });
                st.index = index;
                st.zone = z;
                st.hours = hours;
                new_rules.push(st);
            };
        for (i, r) in cfg.duty_posts.iter().enumerate() {
            let h = Hours::of(&r.schedule, &r.timezone);
            add(ZoneRuleKind::Duty, i, &r.camera, &r.zone, h);
        }
        for (i, r) in cfg.occupancy.iter().enumerate() {
            let h = Hours::of(&r.schedule, &r.timezone);
            add(ZoneRuleKind::Occupancy, i, &r.camera, &r.zone, h);
        }
        for (i, r) in cfg.restricted.iter().enumerate() {
            let h = Hours::of(&r.schedule, &r.timezone);
            add(ZoneRuleKind::Restricted, i, &r.camera, &r.zone, h);
        }
        for (i, r) in cfg.two_person.iter().enumerate() {
            let h = Hours::of(&r.schedule, &r.timezone);
            add(ZoneRuleKind::TwoPerson, i, &r.camera, &r.zone, h);
        }
        for mut o in old {
            let now = self.clock_of(&o.cam).unwrap_or(0);
            if let Some(open) = o.open.as_mut() {
                open.ev.detail = format!("{} (rule removed)", open.ev.detail);
                open.emit(EventPhase::End, now, ended);
            }
        }
        self.zone_rules = new_rules;
        self.zone_rules_by_cam.clear();
        for (i, r) in self.zone_rules.iter().enumerate() {
            self.zone_rules_by_cam
                .entry(r.cam.clone())
                .or_default()
                .push(i);
        }

        let mut old_p: Vec<PatrolState> = std::mem::take(&mut self.patrols);
        for p in &cfg.patrols {
            let cps: Vec<Cp> = p
                .checkpoints
                .iter()
                .filter_map(|c| {
                    let z = self.c.cams.get(&c.camera)?.zone_index(&c.zone)?;
                    Some(Cp {
                        cam: Arc::from(c.camera.as_str()),
                        zone: z,
                        zone_name: Arc::from(c.zone.as_str()),
                        within_ms: ms(c.within_s),
                    })
                })
                .collect();
            if cps.is_empty() {
                continue;
            }
            let kept = old_p
                .iter()
                .position(|o| *o.name == p.name && o.cps == cps)
                .map(|i| old_p.swap_remove(i));
            let mut st = kept.unwrap_or(PatrolState {
                name: Arc::from(p.name.as_str()),
                cps,
                next: 0,
                window: None,
                open: None,
                hours: None,
            });
            st.hours = Hours::of(&p.schedule, &p.timezone);
            self.patrols.push(st);
        }
        for mut o in old_p {
            let now = self.clock_of(&o.cps[o.next].cam).unwrap_or(0);
            if let Some(open) = o.open.as_mut() {
                open.ev.detail = format!("{} (route changed)", open.ev.detail);
                open.emit(EventPhase::End, now, ended);
            }
        }
    }

    /// A camera stopped: personnel rules on it cannot know anything any more. Their open
    /// events end and their timers restart when frames come back.
    pub(super) fn camera_down(&mut self, id: &CameraId, at: UtcTime, out: &mut Vec<Event>) {
        let at_ms = at.timestamp_millis();
        if let Some(idx) = self.zone_rules_by_cam.get(id) {
            for &i in idx {
                let r = &mut self.zone_rules[i];
                r.since = None;
                r.clear_since = None;
                if let Some(mut o) = r.open.take() {
                    o.ev.detail = format!("{}; camera offline, state unknown", o.ev.detail);
                    o.emit(EventPhase::End, at_ms, out);
                }
            }
        }
        for p in &mut self.patrols {
            if p.cps[p.next].cam == *id {
                p.window = None;
                if let Some(mut o) = p.open.take() {
                    o.ev.detail = format!("{}; camera offline, state unknown", o.ev.detail);
                    o.emit(EventPhase::End, at_ms, out);
                }
            }
        }
    }

    pub(super) fn personnel(&mut self, ci: usize, fr: &FrameResult, out: &mut Vec<Event>) {
        let t = fr.captured_at;
        let t_ms = t.timestamp_millis();
        let RulesEngine {
            c,
            cams,
            zone_rules,
            zone_rules_by_cam,
            patrols,
            ..
        } = self;
        let cam = &cams[ci];
        let preset = fr.preset.as_deref();
        let Some(rules) = c.cams.get(&*fr.camera) else {
            return;
        };
        let visible = |z: usize| rules.zones.get(z).is_some_and(|zz| zz.visible(preset));
        let count = |z: usize| cam.zone_counts.get(z).copied().unwrap_or(0);
        let in_zone = |z: usize| {
            cam.zone_people
                .get(z)
                .into_iter()
                .flatten()
                .map(|&k| &cam.people[k as usize])
        };
        let has_role = |p: &Person, roles: &[String]| {
            p.role
                .as_deref()
                .is_some_and(|r| roles.iter().any(|x| x == r))
        };
        let snapshot = Some(FrameRef {
            camera: fr.camera.clone(),
            seq: fr.seq,
        });
        let base =
            |kind: EventKind, zone: &Arc<str>, first: UtcTime, detail: String, n: u32| Event {
                id: format!(
                    "{}:{}:{}:{}",
                    fr.camera,
                    kind,
                    zone,
                    first.timestamp_millis()
                ),
                camera: fr.camera.clone(),
                kind,
                phase: EventPhase::Start,
                track: None,
                zone: Some(zone.clone()),
                preset: fr.preset.clone(),
                best_score: 0.0,
                first_seen: first,
                last_seen: t,
                bbox: None,
                frame_size: Some((fr.width, fr.height)),
                snapshot: snapshot.clone(),
                count: Some(n),
                detail,
            };
        if let Some(idx) = zone_rules_by_cam.get(&fr.camera) {
            for &i in idx {
                let r = &mut zone_rules[i];
                if !visible(r.zone) {
                    continue;
                }
                if !Hours::active(&r.hours, t) {
                    // Outside active hours: nothing is raised and timers restart.
                    r.since = None;
                    r.clear_since = None;
                    if let Some(mut o) = r.open.take() {
                        o.ev.last_seen = t;
                        o.ev.detail = format!("{}; outside active hours", o.ev.detail);
                        o.emit(EventPhase::End, t_ms, out);
                    }
                    continue;
                }
                let mut n = count(r.zone);
                match r.kind {
                    ZoneRuleKind::Duty => {
                        let rule = &c.cfg.duty_posts[r.index];
                        let present = n;
                        if let Some(role) = &rule.require_role {
                            n = in_zone(r.zone)
                                .filter(|p| p.role.as_deref() == Some(role.as_str()))
                                .count() as u32;
                        }
                        let needed = || match &rule.require_role {
                            Some(role) => format!("{} of role '{role}' needed", rule.min_people),
                            None => format!("{} needed", rule.min_people),
                        };
                        if n >= rule.min_people {
                            r.since = None;
                            if let Some(mut o) = r.open.take() {
                                o.ev.last_seen = t;
                                o.ev.count = Some(n);
                                o.ev.snapshot = snapshot.clone();
                                o.ev.detail = match &rule.require_role {
                                    Some(role) => format!(
                                        "duty post '{}' staffed again ({n} of role '{role}' present)",
                                        r.zone_name
                                    ),
                                    None => format!(
                                        "duty post '{}' staffed again ({n} present)",
                                        r.zone_name
                                    ),
                                };
                                o.emit(EventPhase::End, t_ms, out);
                            }
                        } else {
                            let since = *r.since.get_or_insert(t);
                            if let Some(o) = r.open.as_mut() {
                                o.ev.last_seen = t;
                                o.last_seen_ms = t_ms;
                            } else if t_ms - since.timestamp_millis() >= ms(rule.max_vacant_s) {
                                let secs = (t_ms - since.timestamp_millis()) / 1000;
                                let ev = base(
                                    EventKind::PostVacant,
                                    &r.zone_name,
                                    since,
                                    if present > n {
                                        format!(
                                            "duty post '{}' without its role for {secs} s (limit {} s, {}; {present} other or unknown present)",
                                            r.zone_name, rule.max_vacant_s, needed()
                                        )
                                    } else {
                                        format!(
                                            "duty post '{}' empty for {secs} s (limit {} s, {})",
                                            r.zone_name,
                                            rule.max_vacant_s,
                                            needed()
                                        )
                                    },
                                    n,
                                );
                                let mut o = Open::new(ev, t_ms);
                                o.emit(EventPhase::Start, t_ms, out);
                                r.open = Some(o);
                            }
                        }
                    }
                    ZoneRuleKind::Occupancy
                    | ZoneRuleKind::Restricted
                    | ZoneRuleKind::TwoPerson => {
                        let (limit, min_ms, clear_ms, kind) = match r.kind {
                            ZoneRuleKind::Occupancy => {
                                let rule = &c.cfg.occupancy[r.index];
                                (
                                    rule.max_people,
                                    ms(rule.min_duration_s),
                                    ms(rule.clear_s),
                                    EventKind::OverOccupancy,
                                )
                            }
                            ZoneRuleKind::TwoPerson => {
                                let rule = &c.cfg.two_person[r.index];
                                (
                                    0,
                                    ms(rule.max_alone_s),
                                    ms(rule.clear_s),
                                    EventKind::LoneWorker,
                                )
                            }
                            _ => {
                                let rule = &c.cfg.restricted[r.index];
                                if rule.forbid_roles.is_empty() {
                                    (0, 0, ms(rule.clear_s), EventKind::Restricted)
                                } else {
                                    // Only unescorted people of a forbidden role count.
                                    n = in_zone(r.zone)
                                        .filter(|p| has_role(p, &rule.forbid_roles))
                                        .filter(|p| {
                                            !rule.escort.as_ref().is_some_and(|e| {
                                                cam.people.iter().any(|q| {
                                                    !std::ptr::eq(*p, q)
                                                        && has_role(q, &e.roles)
                                                        && escorts(e, p, q)
                                                })
                                            })
                                        })
                                        .count() as u32;
                                    (0, 0, ms(rule.clear_s), EventKind::ForbiddenRole)
                                }
                            }
                        };
                        let ri = r.index;
                        let detail = |zone: &str| match kind {
                            EventKind::OverOccupancy => {
                                format!("{n} people in '{zone}', limit {limit}")
                            }
                            EventKind::ForbiddenRole => {
                                let rule = &c.cfg.restricted[ri];
                                format!(
                                    "{n} unescorted {} in restricted area '{zone}'",
                                    rule.forbid_roles.join("/")
                                )
                            }
                            EventKind::LoneWorker => {
                                format!("one person alone in two-person zone '{zone}'")
                            }
                            _ => format!("{n} people in restricted area '{zone}'"),
                        };
                        // Lone worker: exactly one person; the others: over the limit.
                        let raised = if kind == EventKind::LoneWorker {
                            n == 1
                        } else {
                            n > limit
                        };
                        if raised {
                            r.clear_since = None;
                            let since = *r.since.get_or_insert(t);
                            if let Some(o) = r.open.as_mut() {
                                o.ev.last_seen = t;
                                o.last_seen_ms = t_ms;
                                if n > o.ev.count.unwrap_or(0) {
                                    o.ev.count = Some(n);
                                    o.ev.snapshot = snapshot.clone();
                                    o.ev.detail = detail(&r.zone_name);
                                    o.emit(EventPhase::Update, t_ms, out);
                                }
                            } else if t_ms - since.timestamp_millis() >= min_ms {
                                let ev = base(kind, &r.zone_name, since, detail(&r.zone_name), n);
                                let mut o = Open::new(ev, t_ms);
                                o.emit(EventPhase::Start, t_ms, out);
                                r.open = Some(o);
                            }
                        } else {
                            r.since = None;
                            if r.open.is_some() {
                                let cs = *r.clear_since.get_or_insert(t);
                                if t_ms - cs.timestamp_millis() >= clear_ms {
                                    if let Some(mut o) = r.open.take() {
                                        o.ev.detail = format!(
                                            "{}; now {n} (since {} s)",
                                            o.ev.detail,
                                            (t_ms - cs.timestamp_millis()) / 1000
                                        );
                                        o.emit(EventPhase::End, t_ms, out);
                                    }
                                    r.clear_since = None;
                                }
                            }
                        }
                    }
                }
            }
        }
        for p in patrols.iter_mut() {
            let cp = &p.cps[p.next];
            if cp.cam != fr.camera || !visible(cp.zone) {
                continue;
            }
            if !Hours::active(&p.hours, t) {
                // Outside active hours: the round waits; its window reopens when they start.
                p.window = None;
                if let Some(mut o) = p.open.take() {
                    o.ev.last_seen = t;
                    o.ev.detail = format!("{}; outside active hours", o.ev.detail);
                    o.emit(EventPhase::End, t_ms, out);
                }
                continue;
            }
            let window = *p.window.get_or_insert(t);
            if count(cp.zone) >= 1 {
                if let Some(mut o) = p.open.take() {
                    o.ev.last_seen = t;
                    o.ev.snapshot = snapshot.clone();
                    o.ev.detail = format!("{}; visited at last", o.ev.detail);
                    o.emit(EventPhase::End, t_ms, out);
                }
                p.next = (p.next + 1) % p.cps.len();
                // The next checkpoint's window opens now on its own camera's clock (or at
                // that camera's next frame when it has none yet).
                let next = &p.cps[p.next].cam;
                p.window = if *next == fr.camera {
                    Some(t)
                } else {
                    cams.iter()
                        .find(|c| c.id == *next)
                        .and_then(|c| c.clock)
                        .and_then(chrono::DateTime::from_timestamp_millis)
                };
            } else if p.open.is_none() && t_ms - window.timestamp_millis() > cp.within_ms {
                let due = window + chrono::Duration::milliseconds(cp.within_ms);
                let mut ev = base(
                    EventKind::PatrolMissed,
                    &cp.zone_name,
                    due,
                    format!(
                        "patrol '{}': checkpoint {} ('{}') not visited within {} s",
                        p.name,
                        p.next + 1,
                        cp.zone_name,
                        cp.within_ms / 1000
                    ),
                    0,
                );
                ev.id = format!(
                    "{}:{}:{}#{}:{}",
                    fr.camera,
                    EventKind::PatrolMissed,
                    p.name,
                    p.next + 1,
                    due.timestamp_millis()
                );
                ev.count = None;
                let mut o = Open::new(ev, t_ms);
                o.emit(EventPhase::Start, t_ms, out);
                p.open = Some(o);
            } else if let Some(o) = p.open.as_mut() {
                o.ev.last_seen = t;
            }
        }
    }
}

/// Whether `q` stands within the escort distance of `p` (feet to feet).
fn escorts(e: &lookout_config::rules::Escort, p: &Person, q: &Person) -> bool {
    let d = ((q.x - p.x).powi(2) + (q.y - p.y).powi(2)).sqrt() as f64;
    match (e.within_px, e.within_m) {
        (Some(px), _) => d <= px,
        (None, Some(m)) => {
            // Pixels per metre from the two people's own heights.
            let px_per_m = f64::from(p.h + q.h) * 0.5 / lookout_config::rules::PERSON_HEIGHT_M;
            d <= m * px_per_m
        }
        (None, None) => false,
    }
}

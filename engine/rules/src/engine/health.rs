//! Camera health: stream status (`camera_offline`) and image checks against a running
//! baseline per view (`view_blocked`, `view_defocused`, `view_moved`).

use super::*;

impl RulesEngine {
    pub(super) fn on_health(&mut self, h: &CameraHealth, out: &mut Vec<Event>) {
        let at_ms = h.at.timestamp_millis();
        let ci = self.cam(&h.camera);
        self.advance_status(at_ms, out);
        let offline_ms = ms(self.c.cfg.health.offline_after_s);
        let cam = &mut self.cams[ci];
        let running = h.status.is_running();
        if running {
            cam.running = true;
            cam.down_since = None;
            if let Some(mut o) = cam.offline.take() {
                o.ev.last_seen = h.at;
                o.ev.detail = format!("camera {} is running again", cam.id);
                o.emit(EventPhase::End, at_ms, out);
            }
            return;
        }
        let quiet = matches!(
            h.status,
            CameraStatus::Stopped {
                reason: StopReason::Shutdown | StopReason::Finished
            }
        );
        let was_running = cam.running;
        cam.running = false;
        cam.down_quiet = quiet;
        if cam.down_since.is_none() {
            cam.down_since = Some(h.at);
        }
        if let Some(o) = cam.offline.as_mut() {
            o.ev.last_seen = h.at;
            o.last_seen_ms = at_ms;
            o.ev.detail = format!("camera {} is {}", cam.id, h.status.name());
        }
        let now = self.status_ms.unwrap_or(at_ms);
        check_offline(cam, now, offline_ms, out);
        if was_running {
            let id = cam.id.clone();
            self.camera_down(&id, h.at, out);
        }
    }

    pub(super) fn on_stats(&mut self, s: &ImageStats, out: &mut Vec<Event>) {
        let t = s.captured_at;
        let t_ms = t.timestamp_millis();
        let ci = self.cam(&s.camera);
        self.enter_preset(ci, s.preset.as_ref());
        self.advance(ci, t_ms, out);
        let h = &self.c.cfg.health;
        let cam = &mut self.cams[ci];
        if cam.settle > 0 {
            // The camera just turned to this preset: expected motion, nothing is judged
            // (or learned) until it settles.
            cam.settle -= 1;
            return;
        }
        let vi = match cam.views.iter().position(|v| v.preset == s.preset) {
            Some(i) => i,
            None => {
                cam.views.push(ViewState {
                    preset: s.preset.clone(),
                    n: 0,
                    brightness: 0.0,
                    contrast: 0.0,
                    sharpness: 0.0,
                    reference: Vec::new(),
                    checks: Default::default(),
                });
                cam.views.len() - 1
            }
        };
        let CamState {
            views, conditions, ..
        } = cam;
        let (view, conditions) = (&mut views[vi], conditions);
        let similarity = ncc(&s.thumb, &view.reference);
        if view.n < h.warmup_frames {
            fold(view, s, h.baseline_frames);
            return;
        }
        let blocked = (view.brightness > 10.0
            && s.brightness < view.brightness * (1.0 - h.blocked_brightness_drop))
            || (view.contrast > 4.0 && s.contrast < view.contrast * h.blocked_contrast_ratio);
        let defocused =
            !blocked && view.sharpness > 1.0 && s.sharpness < view.sharpness * h.defocus_ratio;
        let moved = !blocked && similarity < h.moved_similarity;
        let verdicts = [
            (EventKind::ViewBlocked, blocked),
            (EventKind::ViewDefocused, defocused),
            (EventKind::ViewMoved, moved),
        ];
        let cooldown_ms = ms(h.cooldown_s);
        for (k, (kind, abnormal)) in verdicts.into_iter().enumerate() {
            let run = &mut view.checks[k];
            // One open condition per camera and kind; it belongs to the view that raised it.
            let cond = &mut conditions[k];
            let here = cond.open.as_ref().is_some_and(|o| o.ev.preset == s.preset);
            if abnormal {
                run.abnormal += 1;
                run.normal = 0;
                let since = *run.since.get_or_insert(t);
                if let Some(o) = cond.open.as_mut() {
                    if here {
                        o.ev.last_seen = t;
                        o.last_seen_ms = t_ms;
                    }
                } else if run.abnormal >= h.persist_frames && t_ms >= cond.quiet_until_ms {
                    let detail = match kind {
                        EventKind::ViewBlocked => format!(
                            "view blocked: brightness {:.0} (baseline {:.0}), contrast {:.1} (baseline {:.1})",
                            s.brightness, view.brightness, s.contrast, view.contrast
                        ),
                        EventKind::ViewDefocused => format!(
                            "view defocused: sharpness {:.1} (baseline {:.1})",
                            s.sharpness, view.sharpness
                        ),
                        _ => format!(
                            "view moved: similarity {similarity:.2} to the reference (limit {:.2})",
                            h.moved_similarity
                        ),
                    };
                    let ev = Event {
                        id: format!(
                            "{}:{}:{}:{}",
                            s.camera,
                            kind,
                            s.preset.as_deref().unwrap_or("-"),
                            since.timestamp_millis()
                        ),
                        camera: s.camera.clone(),
                        kind,
                        phase: EventPhase::Start,
                        track: None,
                        zone: None,
                        preset: s.preset.clone(),
                        best_score: 0.0,
                        first_seen: since,
                        last_seen: t,
                        bbox: None,
                        frame_size: None,
                        snapshot: Some(FrameRef {
                            camera: s.camera.clone(),
                            seq: s.seq,
                        }),
                        count: None,
                        detail,
                    };
                    let mut o = Open::new(ev, t_ms);
                    o.emit(EventPhase::Start, t_ms, out);
                    cond.open = Some(o);
                }
            } else {
                run.normal += 1;
                run.abnormal = 0;
                run.since = None;
                if here && run.normal >= h.clear_frames {
                    if let Some(mut o) = cond.open.take() {
                        o.ev.last_seen = t;
                        o.emit(EventPhase::End, t_ms, out);
                        cond.quiet_until_ms = t_ms.saturating_add(cooldown_ms);
                    }
                }
            }
        }
        if !blocked && !defocused && !moved {
            fold(view, s, h.baseline_frames);
        }
    }
}

pub(super) fn check_offline(cam: &mut CamState, now: i64, offline_ms: i64, out: &mut Vec<Event>) {
    let Some(since) = cam.down_since else { return };
    if cam.running || cam.down_quiet || cam.offline.is_some() {
        return;
    }
    let since_ms = since.timestamp_millis();
    if now - since_ms < offline_ms {
        return;
    }
    let last = chrono::DateTime::from_timestamp_millis(now).unwrap_or(since);
    let ev = Event {
        id: format!("{}:{}:{}", cam.id, EventKind::CameraOffline, since_ms),
        camera: cam.id.clone(),
        kind: EventKind::CameraOffline,
        phase: EventPhase::Start,
        track: None,
        zone: None,
        preset: cam.preset.clone(),
        best_score: 0.0,
        first_seen: since,
        last_seen: last,
        bbox: None,
        frame_size: None,
        snapshot: None,
        count: None,
        detail: format!("camera {} delivers no frames", cam.id),
    };
    let mut o = Open::new(ev, now);
    o.emit(EventPhase::Start, now, out);
    cam.offline = Some(o);
}

/// Folds a normal frame into the view's baseline (plain mean while young, then an
/// exponential average over `frames`).
fn fold(view: &mut ViewState, s: &ImageStats, frames: u32) {
    view.n = view.n.saturating_add(1);
    let a = 1.0 / (view.n.min(frames.max(1)) as f32);
    view.brightness += a * (s.brightness - view.brightness);
    view.contrast += a * (s.contrast - view.contrast);
    view.sharpness += a * (s.sharpness - view.sharpness);
    if view.reference.len() != s.thumb.len() {
        view.reference = s.thumb.iter().map(|&b| b as f32).collect();
    } else {
        for (r, &b) in view.reference.iter_mut().zip(&s.thumb) {
            *r += a * (b as f32 - *r);
        }
    }
}

/// Zero-mean normalised correlation of a thumbnail with a reference (1 when either is
/// flat or missing: no evidence of a move).
fn ncc(thumb: &[u8], reference: &[f32]) -> f32 {
    if thumb.len() != reference.len() || thumb.is_empty() {
        return 1.0;
    }
    let n = thumb.len() as f32;
    let ma = thumb.iter().map(|&b| b as f32).sum::<f32>() / n;
    let mb = reference.iter().sum::<f32>() / n;
    let (mut sab, mut saa, mut sbb) = (0f32, 0f32, 0f32);
    for (&a, &b) in thumb.iter().zip(reference) {
        let (da, db) = (a as f32 - ma, b - mb);
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    if saa < 1e-3 * n || sbb < 1e-3 * n {
        return 1.0;
    }
    sab / (saa.sqrt() * sbb.sqrt())
}

//! Rule events for the sinks that take them (MQTT `<prefix>/events` and the retained
//! `<prefix>/<camera>/<label>` counts, as Frigate publishes `frigate/events` and
//! `frigate/<camera>/<object>`).
//!
//! [`EventFeed`] turns each event the rules stage emits (start, update, end) into what a
//! subscriber is told: a [`EventChange::New`], [`EventChange::Update`] or
//! [`EventChange::End`] with the event's previously published state (`before`) and its
//! current one (`after`), and, when the number of open events of an object label on a
//! camera changes, that number. Updates are bounded: at most one per event per
//! `[alerts] event_update_interval_s` of capture time, and only when something a subscriber
//! sees changed (score, box, zone, preset, count). The state kept is one entry per open
//! event, dropped when the event ends.

use std::collections::HashMap;

use lookout_core::{BBox, Event, EventKind, EventPhase, UtcTime};
use serde::{Deserialize, Serialize};

/// What happened to an event, as Frigate's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventChange {
    /// The event started.
    New,
    /// Something a subscriber sees changed.
    Update,
    /// The event ended.
    End,
}

impl EventChange {
    /// `new`, `update` or `end`.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventChange::New => "new",
            EventChange::Update => "update",
            EventChange::End => "end",
        }
    }
}

/// One rule event as subscribers see it (Frigate's `before` / `after`). Times are Unix
/// seconds (capture time), as Frigate's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventState {
    /// Event id (stable over start, updates and end; the same in replay).
    pub id: String,
    /// Camera.
    pub camera: String,
    /// Event kind (`fire`, `smoke`, `person_in_zone`, `post_vacant`, ...).
    pub kind: EventKind,
    /// Object label: `fire`, `smoke`, `person` (person events), else the kind.
    pub label: String,
    /// Zone or rule name, for zone and personnel events.
    pub zone: Option<String>,
    /// PTZ preset, when known.
    pub preset: Option<String>,
    /// Score of the event's box: the rules stage reports the best box it saw, so this is
    /// the best score so far (as `top_score`).
    pub score: f32,
    /// Best score seen so far.
    pub top_score: f32,
    /// Best box `[x1, y1, x2, y2]` in frame pixels, for object events.
    #[serde(rename = "box")]
    pub bbox: Option<[f32; 4]>,
    /// Size of the frame the box belongs to (width, height).
    pub frame_size: Option<(u32, u32)>,
    /// People counted, for occupancy events.
    pub count: Option<u32>,
    /// When the situation was first seen (Unix seconds).
    pub start_time: f64,
    /// When it was last seen (Unix seconds).
    pub last_seen: f64,
    /// When it ended (Unix seconds; `null` while it lasts).
    pub end_time: Option<f64>,
    /// One human-readable sentence, when the rule gives one.
    pub detail: String,
}

fn secs(t: UtcTime) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// The object label of an event kind: `Some` for the kinds counted per camera (one event
/// per smoke or fire episode, one per person in a zone).
pub fn counted_label(kind: EventKind) -> Option<&'static str> {
    match kind {
        EventKind::Smoke => Some("smoke"),
        EventKind::Fire => Some("fire"),
        EventKind::PersonInZone => Some("person"),
        _ => None,
    }
}

impl EventState {
    /// The published state of `e`.
    pub fn of(e: &Event) -> EventState {
        let label = match e.kind {
            EventKind::PersonInZone
            | EventKind::Restricted
            | EventKind::ForbiddenRole
            | EventKind::LoneWorker
            | EventKind::OverOccupancy
            | EventKind::PostVacant => "person",
            k => k.as_str(),
        };
        EventState {
            id: e.id.clone(),
            camera: e.camera.to_string(),
            kind: e.kind,
            label: label.to_string(),
            zone: e.zone.as_deref().map(str::to_string),
            preset: e.preset.as_deref().map(str::to_string),
            score: e.best_score,
            top_score: e.best_score,
            bbox: e.bbox.map(|b| [b.x1, b.y1, b.x2, b.y2]),
            frame_size: e.frame_size,
            count: e.count,
            start_time: secs(e.first_seen),
            last_seen: secs(e.last_seen),
            end_time: (e.phase == EventPhase::End).then(|| secs(e.last_seen)),
            detail: e.detail.clone(),
        }
    }

    /// Whether `self` differs from `prev` in something a subscriber acts on: score (by at
    /// least 0.01), box (IoU below 0.9), zone, preset or count. `last_seen` alone is not.
    pub fn material_change(&self, prev: &EventState) -> bool {
        let moved = match (self.bbox, prev.bbox) {
            (Some(a), Some(b)) => iou(a, b) < 0.9,
            (a, b) => a.is_some() != b.is_some(),
        };
        (self.top_score - prev.top_score).abs() >= 0.01
            || moved
            || self.zone != prev.zone
            || self.preset != prev.preset
            || self.count != prev.count
    }
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let ba = BBox::new(a[0], a[1], a[2], a[3]);
    let bb = BBox::new(b[0], b[1], b[2], b[3]);
    ba.iou(&bb)
}

/// An event message for the sinks: Frigate's `{"type", "before", "after"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventNote {
    /// New, update or end.
    pub change: EventChange,
    /// The state published before (none for a new event).
    pub before: Option<EventState>,
    /// The current state.
    pub after: EventState,
    /// Capture time of the event's newest sighting, in ms (part of the idempotency key).
    pub at_ms: i64,
}

/// The number of open events of one label on one camera changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountNote {
    /// Camera.
    pub camera: String,
    /// Label (`fire`, `smoke`, `person`).
    pub label: &'static str,
    /// Open events of that label on that camera now.
    pub count: u32,
}

struct Open {
    published: EventState,
    published_ms: i64,
}

/// The events open on the sinks and the counts per camera and label (see the module).
pub struct EventFeed {
    interval_ms: i64,
    open: HashMap<String, Open>,
    counts: HashMap<(String, &'static str), u32>,
}

impl EventFeed {
    /// A feed that sends at most one update per event per `update_interval_s` of capture
    /// time.
    pub fn new(update_interval_s: f64) -> EventFeed {
        EventFeed {
            interval_ms: (update_interval_s.max(0.0) * 1000.0) as i64,
            open: HashMap::new(),
            counts: HashMap::new(),
        }
    }

    /// Events open now.
    pub fn open_events(&self) -> usize {
        self.open.len()
    }

    fn count_change(&mut self, camera: &str, kind: EventKind, up: bool) -> Option<CountNote> {
        let label = counted_label(kind)?;
        let n = self.counts.entry((camera.to_string(), label)).or_insert(0);
        *n = if up { *n + 1 } else { n.saturating_sub(1) };
        let count = *n;
        if count == 0 {
            self.counts.remove(&(camera.to_string(), label));
        }
        Some(CountNote {
            camera: camera.to_string(),
            label,
            count,
        })
    }

    /// What to tell subscribers about `e`: an event message (none for an update that is
    /// too soon or changes nothing material) and a count (when the open events of its label
    /// on its camera changed). An update or end of an event never seen starting (the
    /// engine restarted while it was open) is sent as new / end with `before = null`.
    pub fn on_event(&mut self, e: &Event) -> (Option<EventNote>, Option<CountNote>) {
        let after = EventState::of(e);
        let at_ms = e.last_seen.timestamp_millis();
        match (e.phase, self.open.get_mut(&e.id)) {
            (EventPhase::End, open) => {
                let before = open.is_some().then(|| self.open.remove(&e.id)).flatten();
                let count = match before {
                    Some(_) => self.count_change(&after.camera, e.kind, false),
                    None => None,
                };
                let note = EventNote {
                    change: EventChange::End,
                    before: before.map(|o| o.published),
                    after,
                    at_ms,
                };
                (Some(note), count)
            }
            (_, Some(o)) => {
                if at_ms - o.published_ms < self.interval_ms || !after.material_change(&o.published)
                {
                    return (None, None);
                }
                let before = std::mem::replace(&mut o.published, after.clone());
                o.published_ms = at_ms;
                let note = EventNote {
                    change: EventChange::Update,
                    before: Some(before),
                    after,
                    at_ms,
                };
                (Some(note), None)
            }
            (_, None) => {
                self.open.insert(
                    e.id.clone(),
                    Open {
                        published: after.clone(),
                        published_ms: at_ms,
                    },
                );
                let count = self.count_change(&after.camera, e.kind, true);
                let note = EventNote {
                    change: EventChange::New,
                    before: None,
                    after,
                    at_ms,
                };
                (Some(note), count)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ev(id: &str, kind: EventKind, phase: EventPhase, t_s: i64, score: f32) -> Event {
        let t0 = chrono::Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap();
        Event {
            id: id.into(),
            camera: "tower".into(),
            kind,
            phase,
            track: Some(1),
            zone: None,
            preset: None,
            best_score: score,
            first_seen: t0,
            last_seen: t0 + chrono::Duration::seconds(t_s),
            bbox: Some(BBox::new(10.0, 10.0, 50.0, 50.0)),
            frame_size: Some((640, 480)),
            snapshot: None,
            count: None,
            detail: String::new(),
        }
    }

    #[test]
    fn new_updates_bounded_and_material_then_end_with_counts() {
        let mut f = EventFeed::new(5.0);
        let (n, c) = f.on_event(&ev("a", EventKind::Fire, EventPhase::Start, 0, 0.5));
        let n = n.unwrap();
        assert_eq!(n.change, EventChange::New);
        assert!(n.before.is_none());
        assert_eq!(n.after.end_time, None);
        assert_eq!(c.unwrap().count, 1);
        let (_, c) = f.on_event(&ev("b", EventKind::Fire, EventPhase::Start, 1, 0.6));
        assert_eq!(c.unwrap().count, 2);
        // Too soon, then nothing material, then a better score after the interval.
        assert_eq!(
            f.on_event(&ev("a", EventKind::Fire, EventPhase::Update, 2, 0.9)),
            (None, None)
        );
        assert_eq!(
            f.on_event(&ev("a", EventKind::Fire, EventPhase::Update, 9, 0.5)),
            (None, None)
        );
        let (n, c) = f.on_event(&ev("a", EventKind::Fire, EventPhase::Update, 9, 0.8));
        let n = n.unwrap();
        assert_eq!(n.change, EventChange::Update);
        assert_eq!(n.before.unwrap().top_score, 0.5);
        assert_eq!(n.after.top_score, 0.8);
        assert!(c.is_none());
        let (n, c) = f.on_event(&ev("a", EventKind::Fire, EventPhase::End, 40, 0.8));
        let n = n.unwrap();
        assert_eq!(n.change, EventChange::End);
        assert_eq!(n.before.unwrap().top_score, 0.8);
        assert!(n.after.end_time.is_some());
        assert_eq!(c.unwrap().count, 1);
        let (_, c) = f.on_event(&ev("b", EventKind::Fire, EventPhase::End, 40, 0.6));
        assert_eq!(c.unwrap().count, 0);
        assert_eq!(f.open_events(), 0);
        // An end never seen starting: sent, before null, counts untouched.
        let (n, c) = f.on_event(&ev("z", EventKind::Fire, EventPhase::End, 50, 0.6));
        assert!(n.unwrap().before.is_none());
        assert!(c.is_none());
        // Kinds that are not objects are sent but not counted.
        let (n, c) = f.on_event(&ev("p", EventKind::PostVacant, EventPhase::Start, 0, 0.0));
        assert_eq!(n.unwrap().after.label, "person");
        assert!(c.is_none());
    }
}

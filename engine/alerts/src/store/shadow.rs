//! Shadow events: what a candidate model running beside the live one (shadow mode) would
//! have raised. Kept apart from `events` (ids are deterministic per camera, kind, track and
//! time, so the shadow's would collide with the live ones), never fused, never delivered,
//! never shown as incidents; compared per camera with the live events and the operators'
//! verdicts ([`Store::shadow_comparison`]).

use std::collections::BTreeMap;

use lookout_core::{Event, UtcTime};
use rusqlite::params;
use serde::Serialize;

use super::{ms, Store, StoreError};

/// A stored shadow event.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowEventRecord {
    /// The model slot (`[models.NAME]` key) whose shadow raised it.
    pub model: String,
    /// sha256 of the shadow's ONNX file.
    pub sha256: String,
    /// The would-be event (its latest phase).
    pub event: Event,
}

/// Live against shadow on one camera, over the same time window.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ShadowCameraComparison {
    /// Camera id.
    pub camera: String,
    /// Events the live model raised (distinct ids, of the compared kinds).
    pub live_events: u64,
    /// Events the shadow would have raised.
    pub shadow_events: u64,
    /// Incidents on this camera an operator confirmed.
    pub confirmed: u64,
    /// Incidents on this camera an operator marked a false alarm.
    pub false_alarms: u64,
    /// Confirmed incidents the shadow also raised (an event overlapping it in time).
    pub shadow_raised_confirmed: u64,
    /// False alarms the shadow stayed silent on.
    pub shadow_silent_false_alarms: u64,
    /// Shadow events that overlap no incident of the camera: alarms the shadow would add.
    pub shadow_only: u64,
    /// Share of verdicts the live model agrees with (it raised every judged incident, so
    /// confirmed / judged); `None` without verdicts.
    pub live_agreement: Option<f64>,
    /// Share of verdicts the shadow agrees with (raised a confirmed one, silent on a false
    /// alarm); `None` without verdicts.
    pub shadow_agreement: Option<f64>,
}

impl Store {
    /// Stores (or updates, by model, sha256 and event id) a shadow event.
    pub fn record_shadow_event(
        &self,
        model: &str,
        sha256: &str,
        e: &Event,
    ) -> Result<(), StoreError> {
        let data = serde_json::to_string(e)?;
        self.lock()
            .prepare_cached(
                "INSERT INTO shadow_events(model, sha256, id, camera, kind, phase, best_score,
                   first_seen, last_seen, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(model, sha256, id) DO UPDATE SET phase = excluded.phase,
                   best_score = excluded.best_score, last_seen = excluded.last_seen,
                   data = excluded.data",
            )?
            .execute(params![
                model,
                sha256,
                e.id,
                e.camera.as_ref(),
                e.kind.as_str(),
                serde_json::to_value(e.phase)?.as_str().unwrap_or("start"),
                e.best_score,
                ms(e.first_seen),
                ms(e.last_seen),
                data
            ])?;
        Ok(())
    }

    /// Shadow events of a model slot (all slots: `None`) seen at or after `since`, newest
    /// first.
    pub fn shadow_events(
        &self,
        model: Option<&str>,
        since: UtcTime,
        limit: u32,
    ) -> Result<Vec<ShadowEventRecord>, StoreError> {
        let conn = self.read();
        let mut st = conn.prepare_cached(
            "SELECT model, sha256, data FROM shadow_events
             WHERE (?1 IS NULL OR model = ?1) AND last_seen >= ?2
             ORDER BY last_seen DESC LIMIT ?3",
        )?;
        let rows = st.query_map(params![model, ms(since), limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (model, sha256, data) = r?;
            out.push(ShadowEventRecord {
                model,
                sha256,
                event: serde_json::from_str(&data)?,
            });
        }
        Ok(out)
    }

    /// Per camera, live against the shadow of `model` (only its shadow with `sha256`, when
    /// given) since `since`, for events of `kinds` (`smoke`, `fire`, ...) and incidents of
    /// `incident_kinds` (`fire`, ...). An event "raises" an incident when it is on one of
    /// the incident's cameras and overlaps its time span widened by `slack_s` each side.
    pub fn shadow_comparison(
        &self,
        model: &str,
        sha256: Option<&str>,
        kinds: &[&str],
        incident_kinds: &[&str],
        since: UtcTime,
        slack_s: f64,
    ) -> Result<Vec<ShadowCameraComparison>, StoreError> {
        let conn = self.read();
        let slack = (slack_s * 1000.0) as i64;
        let mut cams: BTreeMap<String, ShadowCameraComparison> = BTreeMap::new();
        let entry = |cams: &mut BTreeMap<String, ShadowCameraComparison>, c: &str| {
            cams.entry(c.to_string())
                .or_insert_with(|| ShadowCameraComparison {
                    camera: c.to_string(),
                    ..Default::default()
                });
        };
        // Live events.
        {
            let mut st = conn.prepare_cached(
                "SELECT camera, kind, COUNT(*) FROM events WHERE last_seen >= ?1
                 GROUP BY camera, kind",
            )?;
            let rows = st.query_map(params![ms(since)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for r in rows {
                let (cam, kind, n) = r?;
                if kinds.contains(&kind.as_str()) {
                    entry(&mut cams, &cam);
                    if let Some(c) = cams.get_mut(&cam) {
                        c.live_events += n.max(0) as u64;
                    }
                }
            }
        }
        // Shadow events: (camera, first_seen, last_seen).
        let mut shadow: Vec<(String, i64, i64)> = Vec::new();
        {
            let mut st = conn.prepare_cached(
                "SELECT camera, kind, first_seen, last_seen FROM shadow_events
                 WHERE model = ?1 AND (?2 IS NULL OR sha256 = ?2) AND last_seen >= ?3",
            )?;
            let rows = st.query_map(params![model, sha256, ms(since)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?;
            for r in rows {
                let (cam, kind, a, b) = r?;
                if kinds.contains(&kind.as_str()) {
                    entry(&mut cams, &cam);
                    if let Some(c) = cams.get_mut(&cam) {
                        c.shadow_events += 1;
                    }
                    shadow.push((cam, a, b));
                }
            }
        }
        // Incidents on each camera: (camera, first_seen, last_seen, verdict).
        let mut incidents: Vec<(String, i64, i64, Option<bool>)> = Vec::new();
        {
            let mut st = conn.prepare_cached(
                "SELECT c.camera, i.kind, i.state, i.first_seen, i.last_seen,
                        EXISTS (SELECT 1 FROM transitions t
                                WHERE t.incident_id = i.id AND t.to_state = 'confirmed')
                 FROM incidents i JOIN incident_cameras c ON c.incident_id = i.id
                 WHERE i.last_seen >= ?1",
            )?;
            let rows = st.query_map(params![ms(since)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, bool>(5)?,
                ))
            })?;
            for r in rows {
                let (cam, kind, state, a, b, ever_confirmed) = r?;
                if !incident_kinds.contains(&kind.as_str()) {
                    continue;
                }
                let verdict = match state.as_str() {
                    "false_alarm" => Some(false),
                    "confirmed" => Some(true),
                    _ if ever_confirmed => Some(true),
                    _ => None,
                };
                incidents.push((cam, a, b, verdict));
            }
        }
        let overlaps =
            |(a1, b1): (i64, i64), (a2, b2): (i64, i64)| a1 <= b2 + slack && a2 - slack <= b1;
        for (cam, a, b, verdict) in &incidents {
            let Some(v) = verdict else { continue };
            entry(&mut cams, cam);
            let raised = shadow
                .iter()
                .any(|(c, sa, sb)| c == cam && overlaps((*a, *b), (*sa, *sb)));
            if let Some(c) = cams.get_mut(cam) {
                if *v {
                    c.confirmed += 1;
                    c.shadow_raised_confirmed += u64::from(raised);
                } else {
                    c.false_alarms += 1;
                    c.shadow_silent_false_alarms += u64::from(!raised);
                }
            }
        }
        for (cam, sa, sb) in &shadow {
            let known = incidents
                .iter()
                .any(|(c, a, b, _)| c == cam && overlaps((*a, *b), (*sa, *sb)));
            if !known {
                if let Some(c) = cams.get_mut(cam) {
                    c.shadow_only += 1;
                }
            }
        }
        for c in cams.values_mut() {
            let judged = c.confirmed + c.false_alarms;
            if judged > 0 {
                c.live_agreement = Some(c.confirmed as f64 / judged as f64);
                c.shadow_agreement = Some(
                    (c.shadow_raised_confirmed + c.shadow_silent_false_alarms) as f64
                        / judged as f64,
                );
            }
        }
        Ok(cams.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use lookout_core::{EventKind, EventPhase};

    fn t(s: i64) -> UtcTime {
        Utc.timestamp_opt(1_700_000_000 + s, 0)
            .single()
            .unwrap_or_default()
    }

    fn event(id: &str, cam: &str, kind: EventKind, from: i64, to: i64) -> Event {
        Event {
            id: id.into(),
            camera: cam.into(),
            kind,
            phase: EventPhase::Start,
            track: Some(1),
            zone: None,
            preset: None,
            best_score: 0.7,
            first_seen: t(from),
            last_seen: t(to),
            bbox: None,
            frame_size: None,
            snapshot: None,
            count: None,
            detail: String::new(),
        }
    }

    /// An incident on `cam` over `[from, to]` s in state `state`, confirmed once if asked.
    fn incident(
        store: &Store,
        id: &str,
        cam: &str,
        state: &str,
        ever_confirmed: bool,
        from: i64,
        to: i64,
    ) {
        let conn = store.lock();
        conn.execute(
            "INSERT INTO incidents(id, kind, state, severity, confidence, revision, first_seen,
               last_seen, created_at, updated_at, data)
             VALUES (?1, 'fire', ?2, 'high', 'camera', 1, ?3, ?4, ?3, ?4, '{}')",
            params![id, state, ms(t(from)), ms(t(to))],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO incident_cameras(camera, incident_id) VALUES (?1, ?2)",
            params![cam, id],
        )
        .unwrap();
        if ever_confirmed {
            conn.execute(
                "INSERT INTO transitions(incident_id, revision, from_state, to_state, actor, at, comment)
                 VALUES (?1, 1, 'open', 'confirmed', 'op', ?2, '')",
                params![id, ms(t(to))],
            )
            .unwrap();
        }
    }

    #[test]
    fn shadow_events_are_kept_apart_and_compared_with_the_verdicts() {
        let store = Store::open(std::path::Path::new(":memory:"), Vec::new(), 60.0).unwrap();
        // Live: one smoke event per camera (each became a judged incident).
        store
            .record_event(&event("e-a", "a", EventKind::Smoke, 0, 30))
            .unwrap();
        store
            .record_event(&event("e-b", "b", EventKind::Smoke, 0, 30))
            .unwrap();
        incident(&store, "i-a", "a", "confirmed", true, 0, 30);
        incident(&store, "i-b", "b", "false_alarm", false, 0, 30);
        // The shadow: the same id as the live event on camera a (ids are deterministic),
        // silent on b, and one alarm of its own on a an hour later.
        let sha = "ab12";
        store
            .record_shadow_event(
                "smoke-fire",
                sha,
                &event("e-a", "a", EventKind::Smoke, 5, 20),
            )
            .unwrap();
        let mut later = event("e-a2", "a", EventKind::Smoke, 3600, 3610);
        store
            .record_shadow_event("smoke-fire", sha, &later)
            .unwrap();
        later.phase = EventPhase::End;
        later.last_seen = t(3620);
        store
            .record_shadow_event("smoke-fire", sha, &later)
            .unwrap();
        // Another shadow file's event is not this one's.
        store
            .record_shadow_event(
                "smoke-fire",
                "other",
                &event("x", "b", EventKind::Smoke, 0, 10),
            )
            .unwrap();

        // The live events are untouched by the shadow's (same id on camera a).
        let live = store.events(Some("a"), t(-10), 10).unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].last_seen, t(30));
        let sh = store.shadow_events(Some("smoke-fire"), t(-10), 10).unwrap();
        assert_eq!(sh.len(), 3);
        assert_eq!(sh[0].event.id, "e-a2", "newest first");
        assert_eq!(sh[0].event.phase, EventPhase::End, "updated in place");

        let cmp = store
            .shadow_comparison(
                "smoke-fire",
                Some(sha),
                &["smoke", "fire"],
                &["fire"],
                t(-10),
                60.0,
            )
            .unwrap();
        assert_eq!(cmp.len(), 2, "{cmp:?}");
        let (a, b) = (&cmp[0], &cmp[1]);
        assert_eq!((a.camera.as_str(), b.camera.as_str()), ("a", "b"));
        assert_eq!((a.live_events, a.shadow_events), (1, 2));
        assert_eq!((b.live_events, b.shadow_events), (1, 0));
        assert_eq!(
            (a.confirmed, a.shadow_raised_confirmed, a.shadow_only),
            (1, 1, 1)
        );
        assert_eq!((b.false_alarms, b.shadow_silent_false_alarms), (1, 1));
        assert_eq!(a.live_agreement, Some(1.0));
        assert_eq!(b.live_agreement, Some(0.0));
        assert_eq!(b.shadow_agreement, Some(1.0));
        // Without the sha filter the other file's event on b counts: it raised the false
        // alarm too.
        let all = store
            .shadow_comparison("smoke-fire", None, &["smoke"], &["fire"], t(-10), 60.0)
            .unwrap();
        assert_eq!(all[1].shadow_agreement, Some(0.0), "{all:?}");
        // Kinds the slot does not raise are not compared.
        let none = store
            .shadow_comparison(
                "smoke-fire",
                Some(sha),
                &["person_in_zone"],
                &["person_in_zone"],
                t(-10),
                60.0,
            )
            .unwrap();
        assert!(none.is_empty(), "{none:?}");
    }
}

//! Fixtures shared by the alerts integration tests.

use chrono::{TimeZone, Utc};
use lookout_core::{
    BBox, CameraId, Event, EventKind, EventPhase, FrameRef, GeoPoint, Incident, IncidentConfidence,
    IncidentKind, IncidentState, Sector, Severity,
};

/// The tests' reference time.
pub fn t0() -> lookout_core::UtcTime {
    Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap()
}

/// A one-camera smoke incident, revision `rev`, last seen `secs` after [`t0`].
pub fn incident(id: &str, cam: &str, rev: u64, secs: i64) -> Incident {
    let cam: CameraId = cam.into();
    let at = t0() + chrono::Duration::seconds(secs);
    let origin = GeoPoint::new(45.0, 7.0);
    Incident {
        id: id.into(),
        kind: IncidentKind::Fire,
        confidence: IncidentConfidence::Camera,
        severity: Severity::High,
        state: IncidentState::New,
        location: None,
        cameras: vec![cam.clone()],
        sectors: vec![Sector {
            camera: cam.clone(),
            origin,
            bearing_deg: 40.0,
            half_width_deg: 2.0,
            range_m: 15_000.0,
            at,
        }],
        events: vec![Event {
            id: format!("{id}-ev"),
            camera: cam.clone(),
            kind: EventKind::Smoke,
            phase: EventPhase::Start,
            track: Some(1),
            zone: None,
            preset: None,
            best_score: 0.5 + rev as f32 * 0.05,
            first_seen: t0() + chrono::Duration::seconds(secs.min(0)),
            last_seen: at,
            bbox: Some(BBox::new(100.0, 80.0, 220.0, 160.0)),
            frame_size: Some((640, 360)),
            snapshot: Some(FrameRef {
                camera: cam.clone(),
                seq: 7,
            }),
            count: None,
            detail: String::new(),
        }],
        hotspots: vec![],
        evidence: Default::default(),
        first_seen: t0(),
        last_seen: at,
        revision: rev,
        notes: vec![format!("revision {rev}")],
        changes: vec![],
    }
}

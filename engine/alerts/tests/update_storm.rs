//! A burning hillside is one incident with updates, not a message storm: a real on-disk
//! store merges many short-lived fusion incidents of one camera (new tracks of the same
//! fire) into one stored incident, and notifies sinks only when something material changes
//! or once per update interval.

use chrono::{TimeZone, Utc};
use lookout_alerts::{ApplyOutcome, Store};
use lookout_core::{
    CameraId, Incident, IncidentConfidence, IncidentKind, IncidentState, Severity, UtcTime,
};

fn t(secs: i64) -> UtcTime {
    Utc.with_ymd_and_hms(2023, 7, 22, 11, 20, 0).unwrap() + chrono::Duration::seconds(secs)
}

fn track(id: &str, cams: &[&str], rev: u64, first: i64, last: i64) -> Incident {
    Incident {
        id: id.into(),
        kind: IncidentKind::Fire,
        confidence: if cams.len() > 1 {
            IncidentConfidence::MultiCamera
        } else {
            IncidentConfidence::Camera
        },
        severity: Severity::High,
        state: IncidentState::New,
        location: None,
        cameras: cams.iter().map(|c| CameraId::from(*c)).collect(),
        sectors: vec![],
        events: vec![],
        hotspots: vec![],
        first_seen: t(first),
        last_seen: t(last),
        revision: rev,
        notes: vec![format!("track {id} revision {rev}")],
    }
}

fn notified(o: &ApplyOutcome) -> bool {
    matches!(
        o,
        ApplyOutcome::Created { .. } | ApplyOutcome::Updated { notified: true, .. }
    )
}

#[test]
fn short_tracks_of_one_fire_notify_once_per_interval_or_on_material_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("lookout.db"), vec![], 600.0, 3600.0).unwrap();
    store.set_update_interval_s(60.0);
    let now = Utc::now();
    let mut sent = 0;
    let mut stored = 0;
    // A new track every second for 59 s, each a new fusion incident with one revision:
    // merged by the cooldown into the first, stored as revisions, notified once.
    for s in 0..59 {
        let (o, _) = store
            .apply_incident(&track(&format!("tw:t{s}"), &["tw"], 1, s, s), None, now)
            .unwrap();
        stored += 1;
        sent += usize::from(notified(&o));
    }
    assert_eq!(stored, 59);
    assert_eq!(sent, 1, "one notification for 59 merged tracks");
    let (id, rev) = match store
        .apply_incident(&track("tw:t61", &["tw"], 1, 61, 61), None, now)
        .unwrap()
        .0
    {
        ApplyOutcome::Updated {
            id,
            revision,
            notified,
        } => {
            assert!(
                notified,
                "the interval has passed: the newer state goes out"
            );
            (id, revision)
        }
        o => panic!("{o:?}"),
    };
    assert_eq!(id, "tw:t0");
    assert_eq!(rev, 60, "every merged track is a stored revision");
    // A second camera sees it: material, notified at once.
    let (o, _) = store
        .apply_incident(&track("tw:t62", &["tw", "tw2"], 1, 62, 62), None, now)
        .unwrap();
    assert!(notified(&o), "{o:?}");
    let (o, _) = store
        .apply_incident(&track("tw:t63", &["tw", "tw2"], 1, 63, 63), None, now)
        .unwrap();
    assert!(!notified(&o), "{o:?}");
    // Interval 0 (the default of a new store): every revision is notified.
    store.set_update_interval_s(0.0);
    let (o, _) = store
        .apply_incident(&track("tw:t64", &["tw", "tw2"], 1, 64, 64), None, now)
        .unwrap();
    assert!(notified(&o), "{o:?}");
}

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

/// Makes the next COMMIT of any transaction that stores an incident revision fail, from a
/// second connection to the same database file: a deferred foreign key, checked by SQLite
/// only at COMMIT, that every new revision row violates (through a trigger). Every statement
/// of the store's transaction succeeds; only the commit fails, and SQLite rolls it back.
fn make_commits_fail(db: &std::path::Path) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.execute_batch(
        "CREATE TABLE commit_breaker(incident_id TEXT
           REFERENCES incidents(id) DEFERRABLE INITIALLY DEFERRED);
         CREATE TRIGGER break_commit AFTER INSERT ON incident_revisions
         BEGIN INSERT INTO commit_breaker VALUES ('no such incident'); END;",
    )
    .unwrap();
}

fn let_commits_succeed(db: &std::path::Path) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.execute_batch("DROP TRIGGER break_commit; DROP TABLE commit_breaker;")
        .unwrap();
}

/// A notification whose transaction failed to commit never went out: the throttle must not
/// believe it did, or the next revision with the same material state is wrongly suppressed.
/// `group` stores through the group-commit path (`apply_incidents`).
fn failed_commit_does_not_count_as_notified(group: bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lookout.db");
    let store = Store::open(&db, vec![], 600.0, 3600.0).unwrap();
    store.set_update_interval_s(60.0);
    let now = Utc::now();
    let apply = |inc: &Incident| -> Result<ApplyOutcome, lookout_alerts::StoreError> {
        if group {
            // A batch of two: an unrelated incident of another camera first.
            let other = track(&format!("far:{}", inc.revision), &["far"], 1, 0, 0);
            let mut r = store.apply_incidents(&[(&other, None), (inc, None)], now)?;
            Ok(r.pop().unwrap().0)
        } else {
            Ok(store.apply_incident(inc, None, now)?.0)
        }
    };
    let o = apply(&track("tw:a", &["tw"], 1, 0, 0)).unwrap();
    assert!(notified(&o), "{o:?}");
    // A second camera sees it (material: notified at once), but the commit fails.
    make_commits_fail(&db);
    let e = apply(&track("tw:a", &["tw", "tw2"], 2, 0, 5));
    match e {
        Err(e) => assert!(
            e.to_string().contains("FOREIGN KEY"),
            "the commit (deferred key check) was meant to fail: {e}"
        ),
        Ok(o) => panic!("the commit was meant to fail: {o:?}"),
    }
    let_commits_succeed(&db);
    let stored = store.incident("tw:a").unwrap().unwrap();
    assert_eq!(
        stored.incident.revision, 1,
        "the failed revision was rolled back"
    );
    assert_eq!(stored.incident.cameras.len(), 1);
    // The same two-camera state again, well within the interval: never notified before,
    // so it must go out now.
    let o = apply(&track("tw:a", &["tw", "tw2"], 3, 0, 10)).unwrap();
    assert!(
        matches!(
            o,
            ApplyOutcome::Updated {
                revision: 2,
                notified: true,
                ..
            }
        ),
        "the second camera was never notified: {o:?}"
    );
    // And the throttle works on from there: the same state again is suppressed.
    let o = apply(&track("tw:a", &["tw", "tw2"], 4, 0, 15)).unwrap();
    assert!(!notified(&o), "{o:?}");
}

#[test]
fn failed_commit_does_not_count_as_notified_single() {
    failed_commit_does_not_count_as_notified(false);
}

#[test]
fn failed_commit_does_not_count_as_notified_group_commit() {
    failed_commit_does_not_count_as_notified(true);
}

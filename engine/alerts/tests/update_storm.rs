//! A burning hillside is one incident with updates, not a message storm: fusion decides
//! which tracks are one fire (one incident id, many revisions); a real on-disk store keeps
//! fusion's ids as they are, and notifies sinks only when something material changes or
//! once per update interval. Revisions stay bounded even over an incident stored unbounded
//! by an older Lookout.

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
        evidence: Default::default(),
        first_seen: t(first),
        last_seen: t(last),
        revision: rev,
        notes: vec![format!("track {id} revision {rev}")],
        changes: vec![],
    }
}

fn notified(o: &ApplyOutcome) -> bool {
    matches!(
        o,
        ApplyOutcome::Created { .. } | ApplyOutcome::Updated { notified: true, .. }
    )
}

#[test]
fn one_fire_notifies_once_per_interval_or_on_material_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("lookout.db"), vec![], 3600.0).unwrap();
    store.set_update_interval_s(60.0);
    let now = Utc::now();
    let mut sent = 0;
    let mut stored = 0;
    // Fusion's revisions of one fire, one a second for 59 s (fusion itself would fold
    // them; the store's throttle holds on its own): stored, notified once.
    for s in 0..59 {
        let (o, _) = store
            .apply_incident(&track("tw:t0", &["tw"], s as u64 + 1, 0, s), None, now)
            .unwrap();
        stored += 1;
        sent += usize::from(notified(&o));
    }
    assert_eq!(stored, 59);
    assert_eq!(sent, 1, "one notification for 59 revisions");
    let (id, rev) = match store
        .apply_incident(&track("tw:t0", &["tw"], 60, 0, 61), None, now)
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
    assert_eq!(rev, 60, "every revision is a stored revision");
    // A second camera sees it: material, notified at once.
    let (o, _) = store
        .apply_incident(&track("tw:t0", &["tw", "tw2"], 61, 0, 62), None, now)
        .unwrap();
    assert!(notified(&o), "{o:?}");
    let (o, _) = store
        .apply_incident(&track("tw:t0", &["tw", "tw2"], 62, 0, 63), None, now)
        .unwrap();
    assert!(!notified(&o), "{o:?}");
    // Interval 0 (the default of a new store): every revision is notified.
    store.set_update_interval_s(0.0);
    let (o, _) = store
        .apply_incident(&track("tw:t0", &["tw", "tw2"], 63, 0, 64), None, now)
        .unwrap();
    assert!(notified(&o), "{o:?}");
}

/// Identity is fusion's: two fusion incidents of the same camera and kind seconds apart are
/// two stored incidents. Aliases an older Lookout wrote (its cooldown merged a fusion id
/// into another stored incident) keep routing that id to its stored incident.
#[test]
fn the_store_keeps_fusions_ids_and_honours_old_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lookout.db");
    let store = Store::open(&db, vec![], 3600.0).unwrap();
    let now = Utc::now();
    let (a, _) = store
        .apply_incident(&track("tw:a", &["tw"], 1, 0, 0), None, now)
        .unwrap();
    let (b, _) = store
        .apply_incident(&track("tw:b", &["tw"], 1, 5, 5), None, now)
        .unwrap();
    assert_eq!((a.id(), b.id()), ("tw:a", "tw:b"));
    assert!(matches!(b, ApplyOutcome::Created { .. }), "{b:?}");
    // An alias row as an older Lookout's cooldown merge left it.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "INSERT INTO incident_aliases(alias, incident_id, source_revision)
             VALUES ('tw:old', 'tw:a', 3)",
            [],
        )
        .unwrap();
    let (o, _) = store
        .apply_incident(&track("tw:old", &["tw"], 3, 0, 9), None, now)
        .unwrap();
    assert_eq!(o, ApplyOutcome::Duplicate { id: "tw:a".into() });
    let (o, _) = store
        .apply_incident(&track("tw:old", &["tw"], 4, 0, 10), None, now)
        .unwrap();
    assert!(
        matches!(&o, ApplyOutcome::Updated { id, .. } if id == "tw:a"),
        "{o:?}"
    );
    assert!(store.incident("tw:old").unwrap().is_none());
}

/// A database written before revisions were bounded holds an incident with thousands of
/// events and notes. The next fusion revision replaces its evidence by fusion's bounded
/// summary (the old revisions stay in the revision history); the operator's state stays.
#[test]
fn a_revision_over_an_unbounded_stored_incident_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("lookout.db"), vec![], 3600.0).unwrap();
    let now = Utc::now();
    let mut huge = track("tw:big", &["tw"], 1, 0, 0);
    let ev = lookout_core::Event {
        id: String::new(),
        camera: "tw".into(),
        kind: lookout_core::EventKind::Smoke,
        phase: lookout_core::EventPhase::Update,
        track: None,
        zone: None,
        preset: None,
        best_score: 0.6,
        first_seen: t(0),
        last_seen: t(0),
        bbox: None,
        frame_size: None,
        snapshot: None,
        count: None,
        detail: String::new(),
    };
    huge.events = (0..3000)
        .map(|k| lookout_core::Event {
            id: format!("tw:smoke:{k}"),
            ..ev.clone()
        })
        .collect();
    huge.notes = (0..6000).map(|k| format!("Camera tw event {k}.")).collect();
    store.apply_incident(&huge, None, now).unwrap();
    store
        .transition("tw:big", IncidentState::Acknowledged, "op", "looking", now)
        .unwrap();
    let mut next = track("tw:big", &["tw"], 2, 0, 30);
    next.events = vec![lookout_core::Event {
        id: "tw:smoke:3000".into(),
        ..ev
    }];
    next.evidence.events = 3001;
    let (o, stored) = store.apply_incident(&next, None, now).unwrap();
    assert!(matches!(o, ApplyOutcome::Updated { .. }), "{o:?}");
    let inc = stored.unwrap().incident;
    assert_eq!(
        inc.state,
        IncidentState::Acknowledged,
        "the operator's state"
    );
    assert_eq!(inc.events.len(), 1);
    assert_eq!(inc.evidence.events, 3001);
    assert!(inc.notes.len() <= lookout_core::incident::NOTES_KEPT);
    let bytes = serde_json::to_string(&inc).unwrap().len();
    assert!(bytes <= 64 * 1024, "{bytes} bytes");
    // The unbounded first revision is still in the history.
    assert_eq!(
        store.revision("tw:big", 1).unwrap().unwrap().events.len(),
        3000
    );
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
    let store = Store::open(&db, vec![], 3600.0).unwrap();
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

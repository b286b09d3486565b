//! Integration tests: real FIRMS files, the Rhodes 2023 scenario, the hotspot feed against a
//! real HTTP server on 127.0.0.1, GeoJSON.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use lookout_core::{
    EventKind, EventPhase, GeoPoint, Hotspot, Incident, IncidentConfidence, IncidentKind,
    IncidentState, LocationMethod, UtcTime,
};
use lookout_fusion::firms::{self, FirmsFormat};
use lookout_fusion::{Fusion, HotspotFeed};

// ---------------------------------------------------------------- FIRMS parsing

#[test]
fn shared_firms_files_parse_with_row_counts_and_times() {
    let cases = [
        (
            "firms_viirs_snpp_nrt_usa_7d_2025-11.csv",
            "viirs-nrt",
            13_100,
            "2025-10-29T07:29:00Z",
            "2025-11-05T18:28:00Z",
        ),
        (
            "firms_modis_c61_nrt_global_24h_2023-03-10.csv",
            "modis-nrt",
            8_812,
            "2023-03-10T00:00:00Z",
            "2023-03-11T03:46:00Z",
        ),
        (
            RHODES,
            "archive",
            953,
            "2023-07-18T23:23:00Z",
            "2023-07-26T00:33:00Z",
        ),
    ];
    for (name, format, rows, first, last) in cases {
        let s = firms::parse_summary(&hotspots_file(name)).unwrap();
        assert_eq!(s.format, format, "{name}");
        assert_eq!(s.rows, rows, "{name}");
        assert_eq!(s.skipped, 0, "{name}");
        assert_eq!(s.first.as_deref(), Some(first), "{name}");
        assert_eq!(s.last.as_deref(), Some(last), "{name}");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["rows"], rows, "{name}");
    }
    // Sources and confidences per variant.
    let modis = firms::parse_file(&hotspots_file(
        "firms_modis_c61_nrt_global_24h_2023-03-10.csv",
    ))
    .unwrap();
    assert!(modis.hotspots.iter().all(|h| matches!(
        h.source,
        lookout_core::HotspotSource::ModisTerra | lookout_core::HotspotSource::ModisAqua
    )));
    assert!(modis
        .hotspots
        .iter()
        .all(|h| matches!(h.confidence, lookout_core::HotspotConfidence::Percent(_))));
    let rhodes = firms::parse_file(&hotspots_file(RHODES)).unwrap();
    assert_eq!(
        rhodes
            .hotspots
            .iter()
            .filter(|h| h.fire_type == Some(3))
            .count(),
        7
    );
    assert!(rhodes
        .hotspots
        .iter()
        .all(|h| h.source == lookout_core::HotspotSource::ViirsSnpp));
}

#[test]
fn broken_rows_are_skipped_counted_with_line_numbers() {
    let r = firms::parse_file(&samples().join("hotspots/broken_rows.csv")).unwrap();
    assert_eq!(r.format, FirmsFormat::ViirsNrt);
    assert_eq!(r.hotspots.len(), 3, "{:?}", r.skipped);
    let lines: Vec<usize> = r.skipped.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, vec![3, 4, 6, 7, 8, 9, 10, 11, 12]);
    let reason = |line: usize| {
        r.skipped
            .iter()
            .find(|(l, _)| *l == line)
            .map(|(_, r)| r.clone())
            .unwrap()
    };
    assert!(reason(3).contains("brightness"), "{}", reason(3));
    assert!(reason(4).contains("columns"), "{}", reason(4));
    assert!(reason(6).contains("latitude"), "{}", reason(6));
    assert!(reason(7).contains("acq_time"), "{}", reason(7));
    assert!(reason(8).contains("acq_date"), "{}", reason(8));
    assert!(reason(9).contains("confidence"), "{}", reason(9));
    assert!(reason(10).contains("header"), "{}", reason(10));
    assert!(reason(11).contains("pixel size"), "{}", reason(11));
    assert!(reason(12).contains("frp"), "{}", reason(12));
    // Quoted fields and an empty optional column are fine.
    assert_eq!(r.hotspots[1].location, GeoPoint::new(36.145, 28.005));
    assert_eq!(r.hotspots[2].frp, None);
    let s = firms::summarize(&r);
    assert_eq!((s.rows, s.skipped), (3, 9));

    let e = firms::parse_file(&samples().join("hotspots/wrong_header.csv")).unwrap_err();
    assert!(e.to_string().contains("scan"), "{e}");
    let e = firms::parse_file(&samples().join("hotspots/does-not-exist.csv")).unwrap_err();
    assert!(matches!(e, lookout_fusion::FusionError::Io { .. }));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

    #[test]
    fn firms_parser_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        let _ = firms::parse_bytes(&bytes, "fuzz");
        let mut with_header = b"latitude,longitude,scan,track,acq_date,acq_time,confidence\n".to_vec();
        with_header.extend_from_slice(&bytes);
        let r = firms::parse_bytes(&with_header, "fuzz").unwrap();
        proptest::prop_assert!(r.hotspots.len() + r.skipped.len() <= with_header.len());
    }

    #[test]
    fn firms_parser_never_panics_on_mutated_real_rows(
        row in 0usize..953,
        edits in proptest::collection::vec((0usize..200, proptest::num::u8::ANY), 0..6),
        cut in 0usize..200,
    ) {
        let text = std::fs::read_to_string(hotspots_file(RHODES)).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        let mut line: Vec<u8> = lines.nth(row).unwrap().as_bytes().to_vec();
        for (pos, b) in edits {
            if !line.is_empty() {
                let p = pos % line.len();
                line[p] = b;
            }
        }
        line.truncate(cut.max(1));
        let mut doc = format!("{header}\n").into_bytes();
        doc.extend_from_slice(&line);
        doc.push(b'\n');
        let r = firms::parse_bytes(&doc, "mutated").unwrap();
        // An edit may write a newline into the row: at most one result a data line.
        let data_lines = doc.split(|&b| b == b'\n').skip(1).filter(|l| !l.is_empty()).count();
        proptest::prop_assert!(r.hotspots.len() + r.skipped.len() <= data_lines.max(1));
        for h in &r.hotspots {
            proptest::prop_assert!(h.location.lat.abs() <= 90.0 && h.location.lon.abs() <= 180.0);
            proptest::prop_assert!(h.scan_km > 0.0 && h.track_km > 0.0);
        }
    }
}

// ---------------------------------------------------------------- geometry against known values

#[test]
fn great_circle_distance_and_bearing_known_values() {
    // One degree of latitude on the mean sphere, and a quarter of the equator.
    let d = GeoPoint::new(0.0, 0.0).distance_m(&GeoPoint::new(1.0, 0.0));
    assert!((d - 111_195.08).abs() < 0.5, "{d}");
    let d = GeoPoint::new(0.0, 0.0).distance_m(&GeoPoint::new(0.0, 90.0));
    assert!((d - 10_007_557.2).abs() < 5.0, "{d}");
    assert!((GeoPoint::new(0.0, 0.0).bearing_to(&GeoPoint::new(0.0, 1.0)) - 90.0).abs() < 1e-9);
    // Rhodes: computed independently (haversine, R = 6371008.8 m).
    let a = GeoPoint::new(36.2, 27.8667);
    let b = GeoPoint::new(36.2319, 28.1356);
    assert!((a.distance_m(&CENTROID) - 13_613.3).abs() < 1.0);
    assert!((a.bearing_to(&CENTROID) - 133.867).abs() < 0.01);
    assert!((b.distance_m(&CENTROID) - 19_338.5).abs() < 1.0);
    assert!((b.bearing_to(&CENTROID) - 227.862).abs() < 0.01);
}

// ---------------------------------------------------------------- the Rhodes scenario

fn pass_1128() -> (Vec<Hotspot>, Vec<Hotspot>, Vec<Hotspot>) {
    let all = firms::parse_file(&hotspots_file(RHODES)).unwrap().hotspots;
    let mut before = Vec::new();
    let mut pass = Vec::new();
    let mut after = Vec::new();
    for h in all {
        if h.acquired_at == t(22, 11, 28) {
            pass.push(h);
        } else if h.acquired_at < t(22, 11, 28) {
            before.push(h);
        } else {
            after.push(h);
        }
    }
    (before, pass, after)
}

#[derive(Clone, Copy, Debug)]
enum Order {
    /// The cameras see smoke first; the satellite pass arrives hours later.
    EventsFirst,
    /// The hotspots are already in when the camera events come (replay of a late import).
    HotspotsFirst,
}

fn run_rhodes(order: Order) -> (Fusion, Vec<Incident>) {
    let cfg = rhodes_config();
    let mut f = Fusion::new(&cfg).unwrap();
    let (before, pass, after) = pass_1128();
    assert_eq!(pass.len(), 198);
    let mut out = Vec::new();
    for h in before {
        f.on_watermark(h.acquired_at, &mut out);
        f.on_hotspot(h, &mut out);
    }
    let a = "tower-attavyros";
    let b = "tower-tsambika";
    let az_a = f.camera(a).unwrap().position.bearing_to(&CENTROID);
    let az_b = f.camera(b).unwrap().position.bearing_to(&CENTROID);
    let events = vec![
        aimed_event(
            &f,
            "ev-a",
            a,
            None,
            az_a,
            t(22, 11, 25),
            t(22, 11, 25),
            EventPhase::Start,
        ),
        aimed_event(
            &f,
            "ev-b",
            b,
            Some("sw"),
            az_b,
            t(22, 11, 27),
            t(22, 11, 27),
            EventPhase::Start,
        ),
        aimed_event(
            &f,
            "ev-a",
            a,
            None,
            az_a + 0.1,
            t(22, 11, 25),
            t(22, 11, 40),
            EventPhase::Update,
        ),
        // Something else entirely: smoke due south-south-west of Tsambika, where no
        // satellite saw fire.
        aimed_event(
            &f,
            "ev-u",
            b,
            Some("sw"),
            196.0,
            t(22, 11, 30),
            t(22, 11, 30),
            EventPhase::Start,
        ),
        aimed_event(
            &f,
            "ev-b",
            b,
            Some("sw"),
            az_b,
            t(22, 11, 27),
            t(22, 11, 50),
            EventPhase::End,
        ),
        aimed_event(
            &f,
            "ev-a",
            a,
            None,
            az_a,
            t(22, 11, 25),
            t(22, 11, 52),
            EventPhase::End,
        ),
        aimed_event(
            &f,
            "ev-u",
            b,
            Some("sw"),
            196.0,
            t(22, 11, 30),
            t(22, 11, 45),
            EventPhase::End,
        ),
    ];
    match order {
        Order::EventsFirst => {
            for e in &events {
                f.on_watermark(e.last_seen, &mut out);
                f.on_event(e, &mut out);
            }
            // The pass arrives three hours after acquisition.
            f.on_watermark(t(22, 14, 30), &mut out);
            for h in pass {
                f.on_hotspot(h, &mut out);
            }
        }
        Order::HotspotsFirst => {
            for h in pass {
                f.on_hotspot(h, &mut out);
            }
            for e in &events {
                f.on_watermark(e.last_seen, &mut out);
                f.on_event(e, &mut out);
            }
        }
    }
    for h in after {
        f.on_watermark(h.acquired_at, &mut out);
        f.on_hotspot(h, &mut out);
    }
    (f, out)
}

fn not_merged(i: &&Incident) -> bool {
    !i.notes.iter().any(|n| n.starts_with("Merged into"))
}

/// The latest emitted revision of every incident: what the alert store ends up with
/// (fusion itself forgets closed incidents once no late data can reach them).
fn latest(out: &[Incident]) -> Vec<Incident> {
    let mut by_id: std::collections::BTreeMap<&str, &Incident> = Default::default();
    for i in out {
        by_id.insert(&i.id, i);
    }
    by_id.into_values().cloned().collect()
}

fn check_rhodes(f: &Fusion, out: &[Incident], order: Order) {
    let all = latest(out);
    let incidents: Vec<&Incident> = all.iter().filter(not_merged).collect();
    let cs: Vec<&&Incident> = incidents
        .iter()
        .filter(|i| i.confidence == IncidentConfidence::CameraSatellite)
        .collect();
    assert_eq!(
        cs.len(),
        1,
        "{order:?}: {:#?}",
        incidents
            .iter()
            .map(|i| (&i.id, i.confidence, i.hotspots.len()))
            .collect::<Vec<_>>()
    );
    let fire = cs[0];
    assert_eq!(fire.kind, IncidentKind::Fire);
    assert_eq!(fire.cameras.len(), 2, "{order:?}");
    let loc = fire.location.as_ref().unwrap();
    assert_eq!(loc.method, LocationMethod::Triangulated, "{order:?}");
    let err = loc.point.distance_m(&CENTROID);
    assert!(err < 2000.0, "{order:?}: {err} m from the centroid");
    let e = loc.ellipse.unwrap();
    assert!(e.semi_major_m < 1000.0, "{e:?}");
    eprintln!(
        "{order:?}: {} rev {} {:?} at {:.5},{:.5}: {err:.0} m from the centroid, ellipse {:.0}×{:.0} m @{:.0}°, {} hotspots, severity {:?}, stats {:?}",
        fire.id, fire.revision, loc.method, loc.point.lat, loc.point.lon,
        e.semi_major_m, e.semi_minor_m, e.orientation_deg, fire.hotspots.len(), fire.severity, f.stats()
    );
    for n in &fire.notes {
        eprintln!("  note: {n}");
    }
    // Most of the pass's 193 vegetation-fire pixels corroborate; no type 3 pixel does. The
    // first camera+satellite revision counts the pass (it carries the newest 128 pixels).
    // Its revisions count the pass: the hotspots gained from the last revision before the
    // pass to the last one whose newest hotspot is from the pass.
    let revs: Vec<&Incident> = out.iter().filter(|i| i.id == fire.id).collect();
    let newest = |i: &Incident| i.evidence.hotspots.as_ref().map(|h| h.last_acquired);
    let first = revs
        .iter()
        .position(|i| newest(i) == Some(t(22, 11, 28)))
        .unwrap();
    let before = first.checked_sub(1).map_or(0, |k| revs[k].hotspot_count());
    let with_pass = revs
        .iter()
        .rfind(|i| newest(i) == Some(t(22, 11, 28)))
        .unwrap();
    let in_pass = with_pass.hotspot_count() - before;
    assert!(in_pass >= 150, "{order:?}: {in_pass} of the pass");
    assert!(in_pass <= 193);
    assert!(with_pass.hotspots.len() <= lookout_core::incident::HOTSPOTS_KEPT);
    for i in &all {
        assert!(
            i.hotspots.iter().all(|h| h.fire_type != Some(3)),
            "{}",
            i.id
        );
    }
    assert_eq!(f.stats().static_sources, 7);
    // Quiet for six hours of event time, it was closed, and later forgotten by fusion.
    assert_eq!(fire.state, IncidentState::Closed);
    assert!(f.incident(&fire.id).is_none());
    assert!(f.stats().evicted > 0);
    // The unrelated smoke stays a single-camera incident.
    let u = all
        .iter()
        .find(|i| i.id == "fire-ev-u")
        .expect("unrelated incident");
    assert_eq!(
        u.confidence,
        IncidentConfidence::Camera,
        "{order:?}: {:#?}",
        u.notes
    );
    assert!(u.hotspots.is_empty());
    assert_eq!(u.location.as_ref().unwrap().method, LocationMethod::Sector);
    // Revisions only grow, per incident, in emission order.
    let mut last = std::collections::HashMap::new();
    for i in out {
        let prev = last.insert(i.id.clone(), i.revision).unwrap_or(0);
        assert!(i.revision > prev, "{} {} after {prev}", i.id, i.revision);
    }
}

#[test]
fn rhodes_2023_two_cameras_and_viirs_pass_make_one_incident() {
    for order in [Order::EventsFirst, Order::HotspotsFirst] {
        let (f, out) = run_rhodes(order);
        check_rhodes(&f, &out, order);
    }
}

#[test]
fn a_pass_in_one_batch_is_one_revision() {
    let cfg = rhodes_config();
    let mut f = Fusion::new(&cfg).unwrap();
    let mut out = Vec::new();
    let (a, b) = ("tower-attavyros", "tower-tsambika");
    let az_a = f.camera(a).unwrap().position.bearing_to(&CENTROID);
    let az_b = f.camera(b).unwrap().position.bearing_to(&CENTROID);
    f.on_event(
        &aimed_event(
            &f,
            "a1",
            a,
            None,
            az_a,
            t(22, 11, 20),
            t(22, 11, 30),
            EventPhase::Start,
        ),
        &mut out,
    );
    f.on_event(
        &aimed_event(
            &f,
            "b1",
            b,
            Some("sw"),
            az_b,
            t(22, 11, 21),
            t(22, 11, 31),
            EventPhase::Start,
        ),
        &mut out,
    );
    assert_eq!(
        out.last().unwrap().confidence,
        IncidentConfidence::MultiCamera
    );
    f.on_watermark(t(22, 14, 30), &mut out);
    out.clear();
    let (_, pass, _) = pass_1128();
    f.on_hotspots(pass, &mut out);
    let fire: Vec<&Incident> = out.iter().filter(|i| i.id == "fire-a1").collect();
    assert_eq!(
        fire.len(),
        1,
        "{:?}",
        out.iter().map(|i| &i.id).collect::<Vec<_>>()
    );
    assert_eq!(fire[0].confidence, IncidentConfidence::CameraSatellite);
    assert_eq!(fire[0].hotspot_count(), 193);
    assert_eq!(
        fire[0].hotspots.len(),
        lookout_core::incident::HOTSPOTS_KEPT
    );
    assert_eq!(f.stats().hotspots, 198);
}

#[test]
fn replay_is_deterministic() {
    let (_, a) = run_rhodes(Order::EventsFirst);
    let (_, b) = run_rhodes(Order::EventsFirst);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    assert!(a.iter().any(|i| i.id == "fire-ev-a"));
}

#[test]
fn late_hotspot_attaches_and_after_close_only_annotates() {
    let cfg = rhodes_config();
    let mut f = Fusion::new(&cfg).unwrap();
    let mut out = Vec::new();
    let (_, pass, _) = pass_1128();
    let a = "tower-attavyros";
    let az = f.camera(a).unwrap().position.bearing_to(&CENTROID);
    f.on_event(
        &aimed_event(
            &f,
            "e1",
            a,
            None,
            az,
            t(22, 11, 20),
            t(22, 11, 30),
            EventPhase::Start,
        ),
        &mut out,
    );
    f.on_event(
        &aimed_event(
            &f,
            "e1",
            a,
            None,
            az,
            t(22, 11, 20),
            t(22, 11, 35),
            EventPhase::End,
        ),
        &mut out,
    );
    assert_eq!(
        f.incident("fire-e1").unwrap().confidence,
        IncidentConfidence::Camera
    );
    // Three hours later by event time, the 11:28 pixel nearest the centroid arrives.
    f.on_watermark(t(22, 14, 35), &mut out);
    let nearest = pass
        .iter()
        .filter(|h| h.fire_type == Some(0))
        .min_by(|x, y| {
            x.location
                .distance_m(&CENTROID)
                .total_cmp(&y.location.distance_m(&CENTROID))
        })
        .unwrap()
        .clone();
    out.clear();
    f.on_hotspot(nearest.clone(), &mut out);
    assert_eq!(out.len(), 1);
    let inc = &out[0];
    assert_eq!(inc.id, "fire-e1");
    assert_eq!(inc.confidence, IncidentConfidence::CameraSatellite);
    assert!(!inc.hotspots.is_empty());
    assert_eq!(inc.state, IncidentState::New);
    // The same pixel again (a second poll) changes nothing.
    out.clear();
    f.on_hotspot(nearest.clone(), &mut out);
    assert!(out.is_empty());
    assert_eq!(f.stats().duplicates, 1);
    // Quiet for close_after_s (6 h after 11:35): fusion closes it.
    f.on_watermark(t(22, 17, 36), &mut out);
    let closed = f.incident("fire-e1").unwrap().clone();
    assert_eq!(closed.state, IncidentState::Closed);
    // A pixel of the same pass arriving now annotates, never reopens.
    let other = pass
        .iter()
        .filter(|h| h.fire_type == Some(0) && h.location.distance_m(&nearest.location) < 1500.0)
        .find(|h| h.dedup_key() != nearest.dedup_key())
        .unwrap()
        .clone();
    out.clear();
    f.on_hotspot(other, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].state, IncidentState::Closed);
    assert_eq!(out[0].hotspots.len(), closed.hotspots.len());
    assert_eq!(out[0].revision, closed.revision + 1);
    assert!(out[0]
        .notes
        .last()
        .unwrap()
        .contains("after the incident closed"));
    assert_eq!(f.stats().late_annotations, 1);
    // An operator-closed incident is annotated the same way.
    f.on_event(
        &aimed_event(
            &f,
            "e2",
            a,
            None,
            120.0,
            t(22, 18, 0),
            t(22, 18, 0),
            EventPhase::Start,
        ),
        &mut out,
    );
    assert!(f.close_incident("fire-e2"));
    assert!(!f.close_incident("nope"));
    assert_eq!(f.incident("fire-e2").unwrap().state, IncidentState::Closed);
}

#[test]
fn satellite_only_needs_confidence_area_and_no_static_source() {
    let mut cfg = rhodes_config();
    // A static-source mask around the northern part of the fire.
    cfg.fusion.static_sources = vec![vec![
        [27.90, 36.15],
        [28.05, 36.15],
        [28.05, 36.25],
        [27.90, 36.25],
    ]];
    let mut f = Fusion::new(&cfg).unwrap();
    let (_, pass, _) = pass_1128();
    let mut out = Vec::new();
    for h in pass.iter().cloned() {
        f.on_hotspot(h, &mut out);
    }
    let st = f.stats().clone();
    let masked = pass
        .iter()
        .filter(|h| h.fire_type != Some(3) && h.location.lat >= 36.15 && h.location.lon >= 27.90)
        .count();
    assert_eq!(st.static_sources as usize, 5 + masked);
    let sat: Vec<&Incident> = f.incidents().filter(not_merged).collect();
    assert!(!sat.is_empty());
    for i in &sat {
        assert_eq!(i.confidence, IncidentConfidence::SatelliteOnly);
        assert!(i
            .hotspots
            .iter()
            .all(|h| h.location.lat < 36.15 || h.location.lon < 27.90));
        assert!(
            i.id.starts_with("fire-sat-viirs-snpp-20230722T1128Z-"),
            "{}",
            i.id
        );
        assert_eq!(
            i.location.as_ref().unwrap().method,
            LocationMethod::HotspotCluster
        );
    }
    // Pixels outside every camera's field of view join a cluster they touch, but alone
    // open nothing: the same pixel moved 30 km west, over the sea.
    assert_eq!(st.outside_area, 0, "{st:?}");
    let mut far = pass
        .iter()
        .find(|h| h.fire_type == Some(0))
        .unwrap()
        .clone();
    far.location = far.location.destination(270.0, 30_000.0);
    f.on_hotspot(far, &mut out);
    assert_eq!(f.stats().outside_area, 1);
    // A low-confidence pixel inside a camera's view, far from the fire, opens nothing.
    let mut low = pass
        .iter()
        .find(|h| h.fire_type == Some(0))
        .unwrap()
        .clone();
    low.location = GeoPoint::new(36.2, 27.8667).destination(170.0, 15_000.0);
    low.confidence = lookout_core::HotspotConfidence::Low;
    f.on_hotspot(low, &mut out);
    assert_eq!(f.stats().low_confidence, 1);

    // A hotspot later than the allowed lateness opens nothing.
    let mut g = Fusion::new(&cfg).unwrap();
    g.on_watermark(t(23, 0, 0), &mut out);
    let h = pass
        .iter()
        .find(|h| h.fire_type == Some(0) && h.location.lat < 36.1)
        .unwrap();
    g.on_hotspot(h.clone(), &mut out);
    assert_eq!(g.stats().too_late, 1);
    assert_eq!(g.incidents().count(), 0);
}

#[test]
fn personnel_and_health_events_make_their_own_incidents() {
    use EventKind::*;
    use EventPhase::*;
    let cfg = rhodes_config();
    let mut f = Fusion::new(&cfg).unwrap();
    let mut out = Vec::new();
    let cam = "tower-attavyros";
    f.on_event(
        &personnel(
            "p1",
            cam,
            PostVacant,
            Some("control"),
            Start,
            t(22, 8, 0),
            t(22, 8, 0),
        ),
        &mut out,
    );
    f.on_event(
        &personnel(
            "p1",
            cam,
            PostVacant,
            Some("control"),
            Update,
            t(22, 8, 0),
            t(22, 8, 5),
        ),
        &mut out,
    );
    // Another event id for the same (camera, kind, zone) while it is ongoing joins it.
    f.on_event(
        &personnel(
            "p1b",
            cam,
            PostVacant,
            Some("control"),
            Start,
            t(22, 8, 6),
            t(22, 8, 6),
        ),
        &mut out,
    );
    f.on_event(
        &personnel(
            "p2",
            cam,
            PostVacant,
            Some("gate"),
            Start,
            t(22, 8, 1),
            t(22, 8, 1),
        ),
        &mut out,
    );
    f.on_event(
        &personnel(
            "h1",
            cam,
            CameraOffline,
            None,
            Start,
            t(22, 8, 2),
            t(22, 8, 2),
        ),
        &mut out,
    );
    let ids: Vec<String> = f.incidents().map(|i| i.id.clone()).collect();
    assert_eq!(
        ids,
        vec!["post_vacant-p1", "post_vacant-p2", "camera_health-h1"]
    );
    let p1 = f.incident("post_vacant-p1").unwrap();
    assert_eq!(p1.events.len(), 2);
    assert_eq!(p1.evidence.events, 2);
    assert_eq!(p1.evidence.updates, 3);
    // The update and the second event say nothing new: folded into the next revision.
    assert_eq!(p1.revision, 1);
    assert!(p1.location.is_none() && p1.sectors.is_empty());
    f.on_event(
        &personnel(
            "p1",
            cam,
            PostVacant,
            Some("control"),
            End,
            t(22, 8, 0),
            t(22, 8, 9),
        ),
        &mut out,
    );
    assert_eq!(
        f.incident("post_vacant-p1").unwrap().state,
        IncidentState::New
    );
    f.on_event(
        &personnel(
            "p1b",
            cam,
            PostVacant,
            Some("control"),
            End,
            t(22, 8, 6),
            t(22, 8, 10),
        ),
        &mut out,
    );
    // Over, but it stays open for the cooldown (a vacancy that recurs is the same incident);
    // quiet for the cooldown, fusion closes it.
    assert_eq!(
        f.incident("post_vacant-p1").unwrap().state,
        IncidentState::New
    );
    f.on_camera_watermark(cam, t(22, 8, 21), &mut out);
    assert_eq!(
        f.incident("post_vacant-p1").unwrap().state,
        IncidentState::Closed
    );
    // A straggling update of the ended event annotates, it does not reopen or duplicate.
    let before = f.incidents().count();
    f.on_event(
        &personnel(
            "p1",
            cam,
            PostVacant,
            Some("control"),
            Update,
            t(22, 8, 0),
            t(22, 8, 11),
        ),
        &mut out,
    );
    assert_eq!(f.incidents().count(), before);
    let p1 = f.incident("post_vacant-p1").unwrap();
    assert_eq!(p1.state, IncidentState::Closed);
    assert!(p1
        .notes
        .last()
        .unwrap()
        .contains("after the incident closed"));
    // The next vacancy is a new incident.
    f.on_event(
        &personnel(
            "p3",
            cam,
            PostVacant,
            Some("control"),
            Start,
            t(22, 9, 0),
            t(22, 9, 0),
        ),
        &mut out,
    );
    assert!(f.incident("post_vacant-p3").is_some());
    assert_eq!(
        f.incident("camera_health-h1").unwrap().kind,
        IncidentKind::CameraHealth
    );
    // An end nobody saw start is counted, not turned into an incident.
    f.on_event(
        &personnel(
            "zz",
            cam,
            Restricted,
            Some("tank"),
            End,
            t(22, 9, 0),
            t(22, 9, 1),
        ),
        &mut out,
    );
    assert_eq!(f.stats().orphan_ends, 1);
}

// ---------------------------------------------------------------- GeoJSON

#[test]
fn geojson_has_every_layer() {
    let (_, out) = run_rhodes(Order::EventsFirst);
    let cfg = rhodes_config();
    let incidents: Vec<Incident> = latest(&out);
    let hs: Vec<Hotspot> = incidents.iter().flat_map(|i| i.hotspots.clone()).collect();
    let v = lookout_fusion::geojson(&cfg, &incidents, &hs);
    assert_eq!(v["type"], "FeatureCollection");
    let feats = v["features"].as_array().unwrap();
    let count = |layer: &str| {
        feats
            .iter()
            .filter(|f| f["properties"]["feature"] == layer)
            .count()
    };
    assert_eq!(count("camera"), 2);
    assert_eq!(count("fov"), 3); // one fixed view + two presets
    assert!(count("incident") >= 2);
    assert!(count("bearing") >= 3);
    assert_eq!(count("hotspot"), hs.len());
    let cam = feats
        .iter()
        .find(|f| {
            f["properties"]["camera"] == "tower-attavyros" && f["properties"]["feature"] == "camera"
        })
        .unwrap();
    assert_eq!(cam["geometry"]["coordinates"][0], 27.8667);
    assert_eq!(cam["geometry"]["coordinates"][1], 36.2);
    for f in feats {
        if f["geometry"]["type"] == "Polygon" {
            let ring = f["geometry"]["coordinates"][0].as_array().unwrap();
            assert!(ring.len() >= 4);
            assert_eq!(ring.first(), ring.last(), "ring not closed");
        }
    }
    let fire = feats
        .iter()
        .find(|f| {
            f["properties"]["feature"] == "incident"
                && f["properties"]["confidence"] == "camera+satellite"
        })
        .unwrap();
    assert_eq!(fire["properties"]["location_method"], "triangulated");
}

/// The map and the sink's incident files of the real Rhodes run (triangulated fires with
/// uncertainty ellipses, bearing cones, PTZ preset fields of view, the VIIRS pass), read
/// by shapely (GEOS): every geometry valid, every polygon ring closed and counter-clockwise
/// (RFC 7946 §3.1.6), feature ids unique. Sector-only incidents of several cameras are
/// included (their cones overlap, so they must not be one MultiPolygon).
#[test]
fn geojson_output_is_valid_and_counter_clockwise_for_shapely() {
    let (_, out) = run_rhodes(Order::EventsFirst);
    let cfg = rhodes_config();
    let incidents: Vec<Incident> = latest(&out);
    assert!(incidents
        .iter()
        .any(|i| i.location.as_ref().is_some_and(|l| l.ellipse.is_some())));
    // The same incidents as seen before triangulation: cones only, of both towers.
    let mut cones_only: Vec<Incident> = incidents
        .iter()
        .filter(|i| i.sectors.len() >= 2)
        .cloned()
        .collect();
    assert!(!cones_only.is_empty(), "a fire seen by both towers");
    for i in &mut cones_only {
        i.id = format!("{}-cones", i.id);
        i.location = None;
    }
    // Every hotspot twice: the collection keeps one feature per hotspot.
    let hs: Vec<Hotspot> = incidents
        .iter()
        .flat_map(|i| i.hotspots.clone())
        .chain(incidents.iter().flat_map(|i| i.hotspots.clone()))
        .collect();
    let all: Vec<Incident> = incidents.iter().chain(&cones_only).cloned().collect();
    let map = lookout_fusion::geojson(&cfg, &all, &hs);
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![dir.path().join("map.geojson")];
    std::fs::write(&files[0], map.to_string()).unwrap();
    for (k, inc) in all.iter().enumerate() {
        let p = dir.path().join(format!("incident-{k}.geojson"));
        std::fs::write(
            &p,
            serde_json::to_string(&lookout_core::geojson::incident_feature(inc)).unwrap(),
        )
        .unwrap();
        files.push(p);
    }
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validate_geojson.py");
    let out = std::process::Command::new(&py)
        .arg(&script)
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", py.display()));
    assert!(
        out.status.success(),
        "shapely failed to run (run scripts/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut polygons = 0;
    for f in &files {
        let r = &v["files"][f.display().to_string()];
        assert_eq!(r["ok"], true, "{}: {}", f.display(), r["problems"]);
        polygons += r["polygons"].as_u64().unwrap();
    }
    // Fields of view (3), uncertainty ellipses, and the cones of the cone-only copies.
    assert!(polygons >= 3 + 1 + 2, "{v}");
    assert_eq!(
        v["control"]["ok"], false,
        "a clockwise ring must be flagged: {}",
        v["control"]
    );
    let n_hotspots = map["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["properties"]["feature"] == "hotspot")
        .count();
    assert_eq!(n_hotspots * 2, hs.len(), "each hotspot once");
    // The incident reports its hotspot count, not the length of the inline list.
    for inc in &incidents {
        let f = map["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == inc.id.as_str())
            .unwrap();
        assert_eq!(f["properties"]["hotspots"], inc.hotspot_count());
    }
}

// ---------------------------------------------------------------- the hotspot feed

/// A one-file HTTP server on 127.0.0.1: answers every GET with `body`, records paths.
fn serve(body: Vec<u8>, max: usize) -> (String, Arc<Mutex<Vec<String>>>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let paths = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let (p, h) = (paths.clone(), hits.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req)
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            p.lock()
                .unwrap()
                .push(line.split(' ').nth(1).unwrap_or("").to_string());
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
            h.fetch_add(1, Ordering::SeqCst);
        }
    });
    (format!("http://{addr}"), paths, hits)
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn firms_api_poller_against_local_server_recognises_duplicates() {
    let body = std::fs::read(hotspots_file(RHODES)).unwrap();
    let (base, paths, hits) = serve(body, 8);
    let toml = format!(
        r#"
        [[fusion.hotspots]]
        kind = "firms_api"
        base_url = "{base}"
        map_key = "testkey0123"
        source = "VIIRS_SNPP_NRT"
        bbox = [27.6, 35.8, 28.3, 36.5]
        days = 2
        interval_s = 1
        timeout_s = 5
        "#
    );
    let cfg = lookout_config::parse(&toml, "test.toml", std::path::Path::new(".")).unwrap();
    let (tx, rx) = crossbeam_channel::bounded(64);
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let feed = HotspotFeed::spawn(&cfg, tx, stop_rx).unwrap();
    let mut got = Vec::new();
    wait_for("two polls", Duration::from_secs(20), || {
        while let Ok(h) = rx.try_recv() {
            got.push(h);
        }
        feed.stats().duplicates >= 953
    });
    drop(stop_tx);
    let started = Instant::now();
    feed.join();
    assert!(started.elapsed() < Duration::from_secs(3));
    while let Ok(h) = rx.try_recv() {
        got.push(h);
    }
    assert_eq!(got.len(), 953);
    assert!(hits.load(Ordering::SeqCst) >= 2);
    let first = paths.lock().unwrap()[0].clone();
    assert_eq!(
        first,
        "/api/area/csv/testkey0123/VIIRS_SNPP_NRT/27.6,35.8,28.3,36.5/2"
    );
    // Fusion recognises them too.
    let mut f = Fusion::new(&rhodes_config()).unwrap();
    let mut out = Vec::new();
    for h in got.iter().cloned().chain(got.iter().take(10).cloned()) {
        f.on_hotspot(h, &mut out);
    }
    assert_eq!(f.stats().duplicates, 10);
}

#[test]
fn firms_poller_errors_are_redacted() {
    // A server that answers 500: the error names the URL without the key.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Some(Ok(mut s)) = listener.incoming().next() {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 20\r\nConnection: close\r\n\r\nInvalid secretkey99.");
        }
    });
    let p = lookout_fusion::FirmsPoller::new(
        &format!("http://{addr}"),
        "secretkey99",
        "MODIS_NRT",
        [27.6, 35.8, 28.3, 36.5],
        1,
        Duration::from_secs(5),
    );
    let e = p.fetch().unwrap_err().to_string();
    assert!(e.contains("500"), "{e}");
    assert!(!e.contains("secretkey99"), "{e}");
    assert!(e.contains("/api/area/csv/***/MODIS_NRT/"), "{e}");
    // Nothing listening: a clear transport error.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let p = lookout_fusion::FirmsPoller::new(
        &format!("http://{closed}"),
        "k",
        "MODIS_NRT",
        [0.0, 0.0, 1.0, 1.0],
        1,
        Duration::from_secs(2),
    );
    assert!(p.fetch().is_err());
}

#[test]
fn dir_and_file_sources_send_new_rows_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        samples().join("hotspots/broken_rows.csv"),
        dir.path().join("a.csv"),
    )
    .unwrap();
    let toml = format!(
        r#"
        [[fusion.hotspots]]
        kind = "dir"
        path = "{}"
        scan_s = 0.1

        [[fusion.hotspots]]
        kind = "file"
        path = "{}"
        "#,
        dir.path().display(),
        hotspots_file(RHODES).display()
    );
    let cfg = lookout_config::parse(&toml, "test.toml", std::path::Path::new(".")).unwrap();
    let (tx, rx) = crossbeam_channel::bounded(16);
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let feed = HotspotFeed::spawn(&cfg, tx, stop_rx).unwrap();
    let mut got = Vec::new();
    let drain = |got: &mut Vec<Hotspot>| {
        while let Ok(h) = rx.try_recv() {
            got.push(h);
        }
    };
    wait_for("file + first dir file", Duration::from_secs(10), || {
        drain(&mut got);
        got.len() >= 953 + 3
    });
    // A new file appears, and the old one is rewritten with a duplicate row appended.
    std::fs::copy(hotspots_file(RHODES), dir.path().join("b.csv")).unwrap();
    let mut a = std::fs::read_to_string(dir.path().join("a.csv")).unwrap();
    a.push_str("36.15000,28.01000,335.00,0.40,0.45,2023-07-22,1130,N,nominal,2.0NRT,299.50,,D\n");
    std::fs::write(dir.path().join("a.csv"), a).unwrap();
    wait_for("new and changed files", Duration::from_secs(10), || {
        drain(&mut got);
        let s = feed.stats();
        s.files >= 4 && got.len() >= 953 * 2 + 3
    });
    let stats = feed.stats();
    drop(stop_tx);
    feed.join();
    drain(&mut got);
    // The file source and the dir's b.csv each send the archive once (fusion dedups across
    // sources); the rewritten a.csv sends nothing new: its 3 old rows and the appended copy
    // of one of them are duplicates.
    assert_eq!(got.len(), 953 * 2 + 3);
    assert_eq!(stats.duplicates, 4, "{stats:?}");
    assert_eq!(stats.skipped_rows, 9 * 2, "{stats:?}");
}

#[test]
fn near_parallel_bearings_group_but_give_no_fix_and_time_window_separates() {
    let mut cfg = rhodes_config();
    // Move the second camera 1.5 km east of the first: both look at the centroid almost
    // along the same line.
    let a_pos = GeoPoint::new(36.2, 27.8667);
    let b_pos = a_pos.destination(90.0, 1500.0);
    let g = cfg.cameras[1].geo.as_mut().unwrap();
    g.lat = b_pos.lat;
    g.lon = b_pos.lon;
    g.heading_deg = 140.0;
    cfg.cameras[1].ptz = None;
    let mut f = Fusion::new(&cfg).unwrap();
    let mut out = Vec::new();
    let (a, b) = ("tower-attavyros", "tower-tsambika");
    let az_a = a_pos.bearing_to(&CENTROID);
    let az_b = b_pos.bearing_to(&CENTROID);
    assert!(lookout_fusion::plane::crossing_angle_deg(az_a, az_b) < 10.0);
    f.on_event(
        &aimed_event(
            &f,
            "a1",
            a,
            None,
            az_a,
            t(22, 11, 0),
            t(22, 11, 5),
            EventPhase::End,
        ),
        &mut out,
    );
    f.on_event(
        &aimed_event(
            &f,
            "b1",
            b,
            None,
            az_b,
            t(22, 11, 2),
            t(22, 11, 6),
            EventPhase::End,
        ),
        &mut out,
    );
    let inc = f.incident("fire-a1").unwrap();
    assert_eq!(inc.confidence, IncidentConfidence::MultiCamera);
    assert_eq!(
        inc.location.as_ref().unwrap().method,
        LocationMethod::Sector
    );
    assert!(
        inc.notes
            .iter()
            .any(|n| n.contains("No triangulated location: bearings cross at")),
        "{:#?}",
        inc.notes
    );
    assert_eq!(f.incidents().count(), 1);
    // Two hours later the same bearing from the other camera is a new incident: cones
    // group only within group_window_s.
    f.on_event(
        &aimed_event(
            &f,
            "b2",
            b,
            None,
            az_b,
            t(22, 13, 10),
            t(22, 13, 10),
            EventPhase::Start,
        ),
        &mut out,
    );
    assert_eq!(
        f.incident("fire-b2").unwrap().confidence,
        IncidentConfidence::Camera
    );
    assert_eq!(f.incidents().count(), 2);
}

#[test]
fn more_of_the_same_evidence_is_folded_into_one_revision_per_interval() {
    let mut cfg = rhodes_config();
    cfg.fusion.update_interval_s = 60.0;
    let mut f = Fusion::new(&cfg).unwrap();
    let (a, b) = ("tower-attavyros", "tower-tsambika");
    let az_a = f.camera(a).unwrap().position.bearing_to(&CENTROID);
    let az_b = f.camera(b).unwrap().position.bearing_to(&CENTROID);
    let t0 = t(22, 11, 0);
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    let mut out = Vec::new();
    let revisions = |out: &[Incident]| out.iter().filter(|i| i.id == "fire-ev-a").count();
    f.on_event(
        &aimed_event(&f, "ev-a", a, None, az_a, t0, t0, EventPhase::Start),
        &mut out,
    );
    assert_eq!(revisions(&out), 1, "a new incident is emitted at once");
    // A burning hillside: an update every second for 59 s says nothing new.
    for s in 1..60 {
        f.on_event(
            &aimed_event(&f, "ev-a", a, None, az_a, t0, at(s), EventPhase::Update),
            &mut out,
        );
    }
    assert_eq!(revisions(&out), 1, "updates folded, not a message storm");
    assert_eq!(f.stats().updates_folded, 59);
    // Once the interval has passed, one revision carries the newer last_seen.
    f.on_event(
        &aimed_event(&f, "ev-a", a, None, az_a, t0, at(61), EventPhase::Update),
        &mut out,
    );
    assert_eq!(revisions(&out), 2);
    assert_eq!(out.last().unwrap().last_seen, at(61));
    // A material change (a second camera sees it) is emitted at once.
    f.on_event(
        &aimed_event(&f, "ev-b", b, None, az_b, at(62), at(62), EventPhase::Start),
        &mut out,
    );
    assert_eq!(revisions(&out), 3, "{:#?}", out.last().map(|i| &i.notes));
    let last = out.last().unwrap();
    assert_eq!(last.confidence, IncidentConfidence::MultiCamera);
    // Revisions stay consecutive: sinks see 1, 2, 3.
    let revs: Vec<u64> = out
        .iter()
        .filter(|i| i.id == "fire-ev-a")
        .map(|i| i.revision)
        .collect();
    assert_eq!(revs, vec![1, 2, 3]);
}

// ---------------------------------------------------------------- clocks and extents

/// The Rhodes config with both towers replaying "as of" 2023-07-22 11:27 UTC (file sources
/// with `start_time`), plus `extra` config text.
fn rhodes_replayed_with(extra: &str) -> Fusion {
    let path = samples().join("fusion/rhodes.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let test_source =
        "source = { kind = \"test\", pattern = \"smpte\", width = 1920, height = 1080, framerate = 5 }";
    assert_eq!(text.matches(test_source).count(), 2);
    let file = shared().join("datasets/furg-house6/furg_house6.mp4");
    let replay = format!(
        "source = {{ kind = \"file\", path = \"{}\", loop = true, start_time = \"2023-07-22T11:27:00Z\" }}",
        file.display()
    );
    let text = text.replace(test_source, &replay) + extra;
    let cfg = lookout_config::parse(&text, "rhodes-replayed", path.parent().unwrap()).unwrap();
    Fusion::new(&cfg).unwrap()
}

fn rhodes_replayed() -> Fusion {
    rhodes_replayed_with("")
}

/// The replayed Rhodes towers plus a live camera without geo (the demo's looped house fire).
fn rhodes_with_live_camera() -> Fusion {
    rhodes_replayed_with(
        "\n[[cameras]]\nid = \"live\"\nsource = { kind = \"test\", pattern = \"smpte\" }\nfps = 1\n",
    )
}

/// A fire event from the live camera (no geo, so no bearing).
fn live_fire(first: UtcTime, last: UtcTime, phase: EventPhase) -> lookout_core::Event {
    personnel(
        "live:fire:t1",
        "live",
        EventKind::Fire,
        None,
        phase,
        first,
        last,
    )
}

/// Replays the demo's situation: towers "as of" 2023-07-22 next to a live camera whose
/// clock reads today. Returns the incidents fusion holds at the end.
fn towers_beside_a_live_camera(per_camera_clocks: bool) -> Fusion {
    use chrono::TimeZone;
    let mut f = rhodes_with_live_camera();
    let mut out = Vec::new();
    // Every hotspot of the file at once, as the demo's file source delivers them.
    let all = firms::parse_file(&hotspots_file(RHODES)).unwrap().hotspots;
    f.on_hotspots(all, &mut out);
    let now = chrono::Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    f.on_event(&live_fire(now, now, EventPhase::Start), &mut out);
    if per_camera_clocks {
        f.on_camera_watermark("live", now, &mut out);
    } else {
        f.on_watermark(now, &mut out);
    }
    let (a, b) = ("tower-attavyros", "tower-tsambika");
    let az_a = f.camera(a).unwrap().position.bearing_to(&CENTROID);
    let az_b = f.camera(b).unwrap().position.bearing_to(&CENTROID);
    let (t0, t1) = (t(22, 11, 20), t(22, 11, 30));
    let ea = aimed_event(&f, "a1", a, None, az_a, t0, t1, EventPhase::Start);
    let eb = aimed_event(&f, "b1", b, Some("sw"), az_b, t0, t1, EventPhase::Start);
    for (cam, ev) in [(a, ea), (b, eb)] {
        f.on_event(&ev, &mut out);
        if per_camera_clocks {
            f.on_camera_watermark(cam, t1, &mut out);
        }
    }
    f
}

#[test]
fn replayed_towers_beside_a_live_camera_are_still_corroborated() {
    let f = towers_beside_a_live_camera(true);
    let towers: Vec<&Incident> = f
        .incidents()
        .filter(|i| i.cameras.iter().any(|c| c.starts_with("tower")))
        .collect();
    assert_eq!(towers.len(), 1, "{towers:#?}");
    let fire = towers[0];
    assert_eq!(fire.state, IncidentState::New);
    assert_eq!(fire.confidence, IncidentConfidence::CameraSatellite);
    assert_eq!(fire.cameras.len(), 2);
    assert!(fire.hotspot_count() >= 193, "{}", fire.hotspot_count());
    let live = f
        .incident("fire-live:fire:t1")
        .expect("the live camera's incident");
    assert_eq!(live.state, IncidentState::New);

    // One shared watermark instead: the live clock is three years ahead, so the 2023 pass
    // is too late (or closed and forgotten) before the towers see the fire.
    let g = towers_beside_a_live_camera(false);
    assert!(
        g.incidents()
            .filter(|i| i.cameras.iter().any(|c| c.starts_with("tower")))
            .all(|i| i.confidence != IncidentConfidence::CameraSatellite),
        "a shared watermark should not corroborate here"
    );
}

#[test]
fn each_incident_closes_by_its_own_cameras_clock() {
    use chrono::TimeZone;
    let mut f = towers_beside_a_live_camera(true);
    let mut out = Vec::new();
    let now = chrono::Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    f.on_event(&live_fire(now, now, EventPhase::End), &mut out);
    // Seven hours later on the live camera's clock: its fire is quiet past close_after_s.
    f.on_camera_watermark("live", now + chrono::Duration::hours(7), &mut out);
    let live = f.incident("fire-live:fire:t1").unwrap();
    assert_eq!(live.state, IncidentState::Closed);
    let tower = f
        .incidents()
        .find(|i| i.cameras.iter().any(|c| c.starts_with("tower")))
        .unwrap();
    assert_eq!(
        tower.state,
        IncidentState::New,
        "the towers' clock has not moved"
    );
    // The towers' own clock moves on past close_after_s after their events end.
    for (cam, id) in [("tower-attavyros", "a1"), ("tower-tsambika", "b1")] {
        let g = f.camera(cam).unwrap();
        let az = g.position.bearing_to(&CENTROID);
        let preset = (cam == "tower-tsambika").then_some("sw");
        let end = aimed_event(
            &f,
            id,
            cam,
            preset,
            az,
            t(22, 11, 20),
            t(22, 11, 40),
            EventPhase::End,
        );
        f.on_event(&end, &mut out);
    }
    f.on_camera_watermark("tower-attavyros", t(22, 22, 0), &mut out);
    let tower = f
        .incidents()
        .find(|i| i.cameras.iter().any(|c| c.starts_with("tower")))
        .unwrap();
    assert_eq!(tower.state, IncidentState::Closed);
}

#[test]
fn a_fire_seen_as_several_boxes_is_located_by_their_median_bearing() {
    let cfg = rhodes_config();
    let mut f = Fusion::new(&cfg).unwrap();
    let mut out = Vec::new();
    let (a, b) = ("tower-attavyros", "tower-tsambika");
    let az_a = f.camera(a).unwrap().position.bearing_to(&CENTROID);
    let az_b = f.camera(b).unwrap().position.bearing_to(&CENTROID);
    let (t0, t1) = (t(22, 11, 20), t(22, 11, 30));
    let ev = |f: &Fusion, id: &str, cam: &str, az: f64, first, last| {
        let preset = (cam == b).then_some("sw");
        aimed_event(f, id, cam, preset, az, first, last, EventPhase::Update)
    };
    // Seen from Attavyros: flames left of the true bearing, smoke right of it, two boxes
    // near it, and last a stray box further right (each overlapping one before it).
    for e in [
        ev(&f, "a-left", a, az_a - 1.5, t0, t1),
        ev(&f, "b1", b, az_b, t0, t1),
        ev(&f, "a-mid", a, az_a, t0, t1),
        ev(&f, "a-right", a, az_a + 1.5, t0, t1),
        ev(&f, "a-mid2", a, az_a + 0.1, t0, t1),
        ev(&f, "a-stray", a, az_a + 2.5, t0, t1),
    ] {
        f.on_event(&e, &mut out);
    }
    let fires: Vec<&Incident> = f.incidents().filter(|i| !i.events.is_empty()).collect();
    assert_eq!(fires.len(), 1, "one fire: {fires:#?}");
    let probe = ev(&f, "probe", a, az_a, t0, t1);
    let single = f
        .camera(a)
        .unwrap()
        .bearing(probe.bbox.as_ref().unwrap(), (1920, 1080), None, 0.5)
        .unwrap();
    let sa = fires[0]
        .sectors
        .iter()
        .find(|s| s.camera.as_ref() == a)
        .unwrap();
    // The median of -1.5, 0, +0.1, +1.5, +2.5: not the stray box that came last.
    assert!(
        lookout_core::geo::angle_diff_deg(sa.bearing_deg, az_a + 0.1).abs() < 0.05,
        "median bearing: {} vs {az_a}",
        sa.bearing_deg
    );
    assert!(
        (sa.half_width_deg - single.half_width_deg).abs() < 0.05,
        "{sa:?}"
    );
    let loc = fires[0].location.as_ref().unwrap();
    assert_eq!(loc.method, LocationMethod::Triangulated);
    assert!(loc.point.distance_m(&CENTROID) < 300.0, "{:?}", loc.point);
    // Boxes older than group_window_s (600 s) are forgotten.
    let later = ev(&f, "a-stray", a, az_a + 2.5, t(22, 11, 45), t(22, 11, 45));
    f.on_event(&later, &mut out);
    let inc = f.incidents().find(|i| !i.events.is_empty()).unwrap();
    let sa = inc.sectors.iter().find(|s| s.camera.as_ref() == a).unwrap();
    assert!(lookout_core::geo::angle_diff_deg(sa.bearing_deg, az_a + 2.5).abs() < 0.05);
}

#[test]
fn a_replay_learns_of_a_satellite_pass_only_when_it_reaches_it() {
    let mut f = rhodes_replayed();
    let mut out = Vec::new();
    let all = firms::parse_file(&hotspots_file(RHODES)).unwrap().hotspots;
    let n = all.len();
    f.on_hotspots(all, &mut out);
    // Before the towers report, every hotspot in their view waits for the replay clock.
    assert!(f.stats().held_for_replay > 0);
    let (a, b) = ("tower-attavyros", "tower-tsambika");
    let az_a = f.camera(a).unwrap().position.bearing_to(&CENTROID);
    let az_b = f.camera(b).unwrap().position.bearing_to(&CENTROID);
    let (t0, t1) = (t(22, 11, 27), t(22, 11, 27));
    for (cam, preset, az, id) in [(a, None, az_a, "a1"), (b, Some("sw"), az_b, "b1")] {
        let ev = aimed_event(&f, id, cam, preset, az, t0, t1, EventPhase::Start);
        f.on_event(&ev, &mut out);
        f.on_camera_watermark(cam, t1, &mut out);
    }
    let fire = f.incident("fire-a1").expect("the towers' fire");
    assert_eq!(fire.confidence, IncidentConfidence::MultiCamera);
    assert!(
        fire.hotspots.is_empty(),
        "the 11:28 pass is still ahead of the replay"
    );
    // Only passes up to the replay's clock are known; nothing from later days is open.
    assert!(f
        .incidents()
        .filter(|i| i.events.is_empty())
        .all(|i| i.last_seen <= t1 && i.state == IncidentState::Closed));
    // The replay reaches 11:28: the pass joins the fire.
    out.clear();
    for cam in [a, b] {
        f.on_camera_watermark(cam, t(22, 11, 28), &mut out);
    }
    let fire = f.incident("fire-a1").unwrap();
    assert_eq!(fire.confidence, IncidentConfidence::CameraSatellite);
    assert_eq!(fire.hotspot_count(), 193);
    assert!(out.iter().any(|i| i.id == "fire-a1"));
    // As the replay runs on, each later pass opens its satellite-only incidents on time.
    out.clear();
    for hour in 12..24 * 4 {
        let at = t(22, 0, 0) + chrono::Duration::hours(hour);
        for cam in [a, b] {
            f.on_camera_watermark(cam, at, &mut out);
        }
    }
    assert_eq!(f.stats().hotspots as usize, n);
    // Only passes more than allowed_lateness_s (6 h) older than the replay's start are late.
    let older = firms::parse_file(&hotspots_file(RHODES))
        .unwrap()
        .hotspots
        .iter()
        .filter(|h| h.acquired_at < t(22, 5, 27))
        .count() as u64;
    let too_late = f.stats().too_late;
    assert!(too_late > 0 && too_late <= older, "{too_late} of {older}");
    // The towers' fire goes on (its events never ended), so later passes of the same
    // wildfire join it as the replay reaches them.
    let fire = f.incident("fire-a1").unwrap_or_else(|| {
        panic!(
            "{:#?}",
            out.iter()
                .filter(|i| i.notes.iter().any(|n| n.contains("fire-a1")) || i.id == "fire-a1")
                .map(|i| (&i.id, i.revision, i.state, &i.notes, &i.changes))
                .collect::<Vec<_>>()
        )
    });
    assert!(fire.hotspot_count() > 193, "{}", fire.hotspot_count());
    assert!(fire.last_seen > t(24, 0, 0), "{}", fire.last_seen);
}

#[test]
fn an_offline_live_cameras_fire_still_closes_by_live_time() {
    // Both towers are live cameras here: they share live time.
    let cfg = rhodes_config();
    let mut f = Fusion::new(&cfg).unwrap();
    let mut out = Vec::new();
    let a = "tower-attavyros";
    let az = f.camera(a).unwrap().position.bearing_to(&CENTROID);
    let (t0, t1) = (t(22, 11, 20), t(22, 11, 30));
    for phase in [EventPhase::Start, EventPhase::End] {
        let ev = aimed_event(&f, "a1", a, None, az, t0, t1, phase);
        f.on_event(&ev, &mut out);
    }
    f.on_camera_watermark(a, t1, &mut out);
    // Attavyros goes offline (its clock stops); Tsambika's frames keep live time moving.
    f.on_camera_watermark("tower-tsambika", t(22, 17, 0), &mut out);
    assert_eq!(f.incident("fire-a1").unwrap().state, IncidentState::New);
    f.on_camera_watermark("tower-tsambika", t(22, 17, 31), &mut out);
    assert_eq!(f.incident("fire-a1").unwrap().state, IncidentState::Closed);
}

// ---------------------------------------------------------------- bounded incidents

/// The JSON of a revision as sinks, the JSONL file and the revision rows carry it.
fn payload_bytes(i: &Incident) -> usize {
    serde_json::to_string(i).unwrap().len()
}

/// A fire both towers see for a whole simulated day: an update from each camera every
/// minute, a new track every 10 minutes (a tracker loses a drifting plume that often), a
/// VIIRS pass (the real 11:28 pass, re-dated) every 4 hours. Every revision stays under 64 KiB, the
/// evidence is all counted, and revisions come for material changes and once per update
/// interval, not per event.
#[test]
fn a_fire_burning_all_day_keeps_every_revision_small_and_rare() {
    let cfg = rhodes_config();
    let interval_s = cfg.fusion.update_interval_s as i64;
    assert_eq!(interval_s, 600, "the default update interval");
    let mut f = Fusion::new(&cfg).unwrap();
    let (a, b) = ("tower-attavyros", "tower-tsambika");
    let az_a = f.camera(a).unwrap().position.bearing_to(&CENTROID);
    let az_b = f.camera(b).unwrap().position.bearing_to(&CENTROID);
    let (_, pass, _) = pass_1128();
    let t0 = t(22, 0, 0);
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    const DAY: i64 = 86_400;
    const STEP: i64 = 60;
    const TRACK: i64 = 600;
    let mut out = Vec::new();
    let mut revisions: Vec<Incident> = Vec::new();
    let (mut messages, mut passes, mut largest) = (0u64, 0u64, 0usize);
    for s in (0..DAY).step_by(STEP as usize) {
        for (cam, az, preset) in [(a, az_a, None), (b, az_b, Some("sw"))] {
            let track = s / TRACK;
            let phase = match s % TRACK {
                0 => EventPhase::Start,
                r if r == TRACK - STEP => EventPhase::End,
                _ => EventPhase::Update,
            };
            // Bearings jitter by up to ±0.15° around the fire; scores wander.
            let jitter = ((s / STEP) % 7) as f64 * 0.05 - 0.15;
            let mut ev = aimed_event(
                &f,
                &format!("{cam}:smoke:{track}"),
                cam,
                preset,
                az + jitter,
                at(track * TRACK),
                at(s),
                phase,
            );
            ev.best_score = 0.5 + ((s / STEP) % 40) as f32 / 100.0;
            ev.snapshot = Some(lookout_core::FrameRef {
                camera: ev.camera.clone(),
                seq: s as u64,
            });
            f.on_camera_watermark(cam, at(s), &mut out);
            f.on_event(&ev, &mut out);
            messages += 1;
        }
        if s % 14_400 == 3_600 {
            let now = at(s);
            f.on_hotspots(
                pass.iter().map(|h| Hotspot {
                    acquired_at: now,
                    ..h.clone()
                }),
                &mut out,
            );
            passes += 1;
        }
        for i in out.drain(..) {
            let n = payload_bytes(&i);
            largest = largest.max(n);
            assert!(
                n <= 64 * 1024,
                "revision {} of {} is {n} bytes",
                i.revision,
                i.id
            );
            revisions.push(i);
        }
    }
    let fire: Vec<&Incident> = revisions.iter().filter(|i| i.cameras.len() == 2).collect();
    let id = &fire[0].id;
    let mine: Vec<&Incident> = revisions.iter().filter(|i| &i.id == id).collect();
    let others: std::collections::BTreeSet<&str> = revisions
        .iter()
        .filter(|i| &i.id != id)
        .map(|i| i.id.as_str())
        .collect();
    let last = *mine.last().unwrap();
    let heartbeats = mine
        .iter()
        .filter(|i| i.changes == ["more of the same evidence"])
        .count();
    let material: Vec<&Vec<String>> = mine
        .iter()
        .map(|i| &i.changes)
        .filter(|c| *c != &["more of the same evidence"])
        .collect();
    println!(
        "day-long fire: {} revisions ({} material, {heartbeats} periodic), largest {largest} B, \
         last {} B, {messages} event messages, {} hotspots; material changes: {material:?}",
        mine.len(),
        material.len(),
        payload_bytes(last),
        last.hotspot_count()
    );
    // One fire: every track of both cameras joined it (the first track of tower B may open
    // a short-lived incident that merges in; nothing else).
    assert!(others.len() <= 2, "other incidents: {others:?}");
    // What fusion holds at the end of the day (the last revision is up to an update
    // interval older).
    let now = f.incident(id).unwrap().clone();
    assert_eq!(
        now.evidence.events,
        2 * (DAY / TRACK) as u64,
        "{:?} {others:?}",
        now.evidence
    );
    assert_eq!(now.evidence.updates, messages);
    assert_eq!(now.evidence.cameras.len(), 2);
    // Every pass's hotspots are counted (193 of the 198 lie in the cones or near the fix).
    assert!(
        (passes * 150..=passes * 198).contains(&now.hotspot_count()),
        "{} hotspots from {passes} passes",
        now.hotspot_count()
    );
    assert!(payload_bytes(&now) <= 64 * 1024);
    assert!(now.hotspots.len() <= lookout_core::incident::HOTSPOTS_KEPT);
    assert!(now.events.len() <= lookout_core::incident::EVENTS_KEPT + 2);
    assert!(now.notes.len() <= lookout_core::incident::NOTES_KEPT);
    // The snapshot reference is the newest event's.
    assert_eq!(
        now.newest_snapshot().map(|r| r.seq),
        Some((DAY - STEP) as u64)
    );
    // Periodic revisions: at most one per update interval; material ones: the opening, the
    // second camera and its fix, each pass, severity steps — a handful, not one per event.
    assert!(
        heartbeats as i64 <= DAY / interval_s + 1,
        "{heartbeats} periodic revisions"
    );
    assert!(
        material.len() as u64 <= 6 + passes,
        "{} material revisions: {material:?}",
        material.len()
    );
    let revs: Vec<u64> = mine.iter().map(|i| i.revision).collect();
    assert_eq!(revs, (1..=mine.len() as u64).collect::<Vec<_>>());
}

/// A camera whose view "moves" every 37 s for an hour (a slideshow clip, a PTZ tour without
/// presets): one camera-health incident that stays open while the situation recurs within
/// the cooldown, with a handful of revisions, not forty incidents.
#[test]
fn a_recurring_health_situation_within_the_cooldown_is_one_incident() {
    let cfg = rhodes_config();
    let mut f = Fusion::new(&cfg).unwrap();
    let t0 = t(22, 12, 0);
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    let mut out = Vec::new();
    let cam = "tower-attavyros";
    for k in 0..100 {
        let s = k * 37;
        let id = format!("{cam}:view_moved:{k}");
        for (phase, last) in [(EventPhase::Start, s), (EventPhase::End, s + 10)] {
            f.on_camera_watermark(cam, at(last), &mut out);
            f.on_event(
                &personnel(&id, cam, EventKind::ViewMoved, None, phase, at(s), at(last)),
                &mut out,
            );
        }
    }
    let ids: std::collections::BTreeSet<&str> = out.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let open = out.last().unwrap();
    assert_eq!(open.state, IncidentState::New);
    assert_eq!(open.evidence.events, 100);
    assert!(out.len() <= 1 + 3700 / 600 + 1, "{} revisions", out.len());
    assert!(
        open.notes.len() <= 4,
        "repeated notes are kept once: {:?}",
        open.notes
    );
    // Quiet for the cooldown: closed by fusion, once.
    f.on_camera_watermark(cam, at(37 * 100 + 601), &mut out);
    let last = out.last().unwrap().clone();
    assert_eq!(last.state, IncidentState::Closed, "{:?}", last.notes);
    assert!(
        last.changes.iter().any(|c| c.starts_with("state")),
        "{:?}",
        last.changes
    );
    // The next one after the cooldown is a new incident.
    let s = 37 * 100 + 700;
    f.on_event(
        &personnel(
            "again",
            cam,
            EventKind::ViewMoved,
            None,
            EventPhase::Start,
            at(s),
            at(s),
        ),
        &mut out,
    );
    assert_ne!(out.last().unwrap().id, last.id);
}

#[test]
fn cameras_changed_live_gain_and_lose_their_bearings() {
    let cfg = rhodes_config();
    let mut f = Fusion::new(&cfg).unwrap();
    let b = "tower-tsambika";
    let before = f.camera(b).unwrap().position;
    // Disabled live: no geometry, so its events get no bearing.
    f.set_camera(b, None);
    assert!(f.camera(b).is_none());
    // Added back under a new id, 0.01° further north: a new geometry.
    let mut moved = cfg.camera(b).unwrap().clone();
    moved.id = "tower-new".into();
    if let Some(g) = moved.geo.as_mut() {
        g.lat += 0.01;
    }
    f.set_camera("tower-new", Some(&moved));
    let p = f.camera("tower-new").unwrap().position;
    assert!((p.lat - before.lat - 0.01).abs() < 1e-9);
    // A disabled entry is not located.
    moved.enabled = false;
    f.set_camera("tower-new", Some(&moved));
    assert!(f.camera("tower-new").is_none());
}

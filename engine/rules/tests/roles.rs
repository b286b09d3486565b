//! Role rules: a duty post that needs a role, restricted zones that forbid roles unless
//! escorted, the two-person rule, roles voted over a track's frames, located errors.

mod common;
use common::*;

use std::sync::Arc;

use lookout_core::{Detection, EventKind, EventPhase, RoleTag};
use lookout_rules::RulesEngine;

const ROLES: &str = r##"
[[rules.roles]]
name = "visitor"
vest = ["orange"]
[[rules.roles]]
name = "operator"
vest = ["#1f4fd0"]
helmet = ["white"]
"##;

/// A person with feet at (x, y) wearing `role` as measured on this frame.
fn worker(x: f32, y: f32, role: &str) -> Detection {
    let mut d = person_at(x, y, 0.9);
    d.role = Some(RoleTag {
        name: Arc::from(role),
        score: 0.5,
    });
    d
}

fn cfg(rules_toml: &str) -> lookout_rules::RulesConfig {
    rules(&format!(
        r#"{ROLES}
[rules.cameras.plant1]
zones = [
  {{ name = "post", polygon = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]], inertia = 1 }},
  {{ name = "tank", polygon = [[0.5, 0], [1, 0], [1, 1], [0.5, 1]], inertia = 1 }},
]
{rules_toml}"#
    ))
}

fn frames(n: u64, people: impl Fn(u64) -> Vec<Detection>) -> Vec<lookout_core::StageMsg> {
    (0..n)
        .map(|i| frame("plant1", "person", i, i as f64, people(i)))
        .collect()
}

#[test]
fn a_post_with_only_a_visitor_is_vacant_and_an_operator_staffs_it() {
    let cfg = cfg(r#"
[[rules.duty_posts]]
camera = "plant1"
zone = "post"
max_vacant_s = 5
require_role = "operator"
"#);
    // 0-19 s a visitor stands at the post; from 20 s an operator joins her.
    let msgs = frames(30, |i| {
        let mut v = vec![worker(200.0, 800.0, "visitor")];
        if i >= 20 {
            v.push(worker(350.0, 800.0, "operator"));
        }
        v
    });
    let ev = run(&mut RulesEngine::new(&cfg), &msgs);
    assert_eq!(
        phases(&ev),
        vec![
            (EventKind::PostVacant, EventPhase::Start),
            (EventKind::PostVacant, EventPhase::End)
        ],
        "{ev:#?}"
    );
    assert_eq!(ev[0].first_seen, at(0.0));
    assert_eq!(ev[0].last_seen, at(5.0));
    assert!(
        ev[0].detail.contains("without its role"),
        "{}",
        ev[0].detail
    );
    assert!(
        ev[0].detail.contains("1 other or unknown present"),
        "{}",
        ev[0].detail
    );
    // The operator's track is confirmed (persistence 2 of 3) at 21 s.
    assert_eq!(ev[1].last_seen, at(21.0));
    assert!(
        ev[1].detail.contains("of role 'operator'"),
        "{}",
        ev[1].detail
    );

    // Without require_role the visitor staffs the post: nothing is raised.
    let mut plain = cfg.clone();
    plain.duty_posts[0].require_role = None;
    assert!(run(&mut RulesEngine::new(&plain), &msgs).is_empty());
}

#[test]
fn one_bad_frame_does_not_flip_a_role() {
    let cfg = cfg(r#"
[[rules.duty_posts]]
camera = "plant1"
zone = "post"
max_vacant_s = 3
require_role = "operator"
"#);
    // An operator whose vest reads as visitor in every fifth frame and unknown in every
    // seventh: the track's majority stays operator, the post stays staffed.
    let msgs = frames(40, |i| {
        let role = if i % 5 == 4 {
            "visitor"
        } else if i % 7 == 6 {
            "unknown"
        } else {
            "operator"
        };
        vec![worker(200.0, 800.0, role)]
    });
    let ev = run(&mut RulesEngine::new(&cfg), &msgs);
    assert!(ev.is_empty(), "{ev:#?}");
    // Measured as visitor most of the time: the post is vacant.
    let msgs = frames(40, |i| {
        let role = if i % 3 == 0 { "operator" } else { "visitor" };
        vec![worker(200.0, 800.0, role)]
    });
    let ev = run(&mut RulesEngine::new(&cfg), &msgs);
    assert_eq!(
        phases(&ev),
        vec![(EventKind::PostVacant, EventPhase::Start)],
        "{ev:#?}"
    );
}

#[test]
fn a_visitor_in_a_restricted_zone_needs_an_escort_nearby() {
    let cfg = cfg(r#"
[[rules.restricted]]
camera = "plant1"
zone = "tank"
clear_s = 2
forbid_roles = ["visitor"]
escort = { roles = ["operator"], within_px = 150 }
"#);
    // 0-9 s an operator alone in the tank zone (allowed); 10-19 s a visitor 100 px from
    // him (escorted); 20-29 s the visitor walks 400 px away from him, still in the zone
    // (unescorted); 30-39 s she leaves the zone.
    let msgs = frames(40, |i| {
        let mut v = vec![worker(900.0, 800.0, "operator")];
        match i {
            10..=19 => v.push(worker(800.0, 800.0, "visitor")),
            20..=29 => v.push(worker(820.0, 400.0, "visitor")),
            _ => {}
        }
        // An unknown person in the zone is not forbidden.
        v.push(worker(700.0, 200.0, "unknown"));
        v
    });
    let ev = run(&mut RulesEngine::new(&cfg), &msgs);
    assert_eq!(
        phases(&ev),
        vec![
            (EventKind::ForbiddenRole, EventPhase::Start),
            (EventKind::ForbiddenRole, EventPhase::End)
        ],
        "{ev:#?}"
    );
    // The visitor's box jumps 400 px at 20 s: a new track, confirmed at 21 s.
    assert_eq!(ev[0].first_seen, at(21.0));
    assert_eq!(ev[0].zone.as_deref(), Some("tank"));
    assert_eq!(ev[0].count, Some(1));
    assert!(
        ev[0].detail.contains("unescorted visitor"),
        "{}",
        ev[0].detail
    );
    // Last seen at 31 s (coasting 2 frames after she left), then clear for 2 s.
    assert_eq!(ev[1].last_seen, at(31.0));

    // The same in metres: the people are 150 px tall (1.7 m), so 100 px is 1.1 m and
    // 408 px is 4.6 m. Within 2 m: the same events; within 5 m: escorted throughout.
    let mut metres = cfg.clone();
    if let Some(e) = metres.restricted[0].escort.as_mut() {
        e.within_px = None;
        e.within_m = Some(2.0);
    }
    assert_eq!(run(&mut RulesEngine::new(&metres), &msgs), ev);
    if let Some(e) = metres.restricted[0].escort.as_mut() {
        e.within_m = Some(5.0);
    }
    let far = run(&mut RulesEngine::new(&metres), &msgs);
    assert!(far.is_empty(), "{far:#?}");

    // Without the escort clause the escorted visit is forbidden too, from 11 s.
    let mut strict = cfg.clone();
    strict.restricted[0].escort = None;
    let ev = run(&mut RulesEngine::new(&strict), &msgs);
    let starts: Vec<_> = ev.iter().filter(|e| e.phase == EventPhase::Start).collect();
    assert_eq!(starts.len(), 1, "{ev:#?}");
    assert_eq!(starts[0].kind, EventKind::ForbiddenRole);
    assert_eq!(starts[0].first_seen, at(11.0));
    // And a plain restricted zone (no roles) raises `restricted` for the operator at once.
    let mut plain = cfg.clone();
    plain.restricted[0].forbid_roles.clear();
    plain.restricted[0].escort = None;
    let ev = run(&mut RulesEngine::new(&plain), &msgs);
    assert_eq!(ev[0].kind, EventKind::Restricted, "{ev:#?}");
}

#[test]
fn a_lone_worker_raises_after_max_alone_and_a_second_person_ends_it() {
    let cfg = cfg(r#"
[[rules.two_person]]
camera = "plant1"
zone = "tank"
max_alone_s = 5
clear_s = 2
"#);
    // 0-4 s two people; 5-19 s one alone; from 20 s two again.
    let msgs = frames(30, |i| {
        let mut v = vec![worker(900.0, 800.0, "operator")];
        if !(5..20).contains(&i) {
            v.push(worker(700.0, 800.0, "unknown"));
        }
        v
    });
    let ev = run(&mut RulesEngine::new(&cfg), &msgs);
    assert_eq!(
        phases(&ev),
        vec![
            (EventKind::LoneWorker, EventPhase::Start),
            (EventKind::LoneWorker, EventPhase::End)
        ],
        "{ev:#?}"
    );
    // The second person coasts 2 frames: alone from 7 s, raised at 12 s.
    assert_eq!(ev[0].first_seen, at(7.0));
    assert_eq!(ev[0].last_seen, at(12.0));
    assert!(ev[0].detail.contains("alone"), "{}", ev[0].detail);
    // Last alone at 20 s: the new second track is confirmed at 21 s (ended 2 s later).
    assert_eq!(ev[1].last_seen, at(20.0));
    // Nobody at all is not a lone worker.
    let ev = run(&mut RulesEngine::new(&cfg), &frames(30, |_| vec![]));
    assert!(ev.is_empty(), "{ev:#?}");
}

#[test]
fn schedules_apply_to_the_role_rules() {
    // Active 00:00-06:00 UTC only; the frames are at 12:00 UTC.
    let cfg = cfg(r#"
[[rules.two_person]]
camera = "plant1"
zone = "tank"
max_alone_s = 2
schedule = "00:00-06:00"
[[rules.restricted]]
camera = "plant1"
zone = "tank"
forbid_roles = ["visitor"]
schedule = "00:00-06:00"
"#);
    let msgs = frames(20, |_| vec![worker(900.0, 800.0, "visitor")]);
    assert!(run(&mut RulesEngine::new(&cfg), &msgs).is_empty());
}

#[test]
fn bad_roles_are_located_errors() {
    let errs = rules_errors(
        r##"
[[rules.roles]]
name = "visitor"
vest = ["oragne"]
[[rules.roles]]
name = "unknown"
helmet = ["#12345"]
[[rules.roles]]
name = "nothing"
[rules.cameras.plant1]
zones = [{ name = "post", polygon = [[0, 0], [1, 0], [1, 1]] }]
[[rules.duty_posts]]
camera = "plant1"
zone = "post"
max_vacant_s = 5
require_role = "operator"
[[rules.restricted]]
camera = "plant1"
zone = "post"
forbid_roles = ["visiter"]
escort = { roles = ["guard"], within_px = 100 }
[[rules.restricted]]
camera = "plant1"
zone = "post"
forbid_roles = ["visitor"]
escort = { roles = ["visitor"], within_px = 100, within_m = 3 }
"##,
    );
    let all = errs.join("\n");
    for (line, key, what) in [
        (22, "rules.roles[0].vest[0]", "\"oragne\" is not a colour"),
        (24, "rules.roles[1].name", "reserved"),
        (25, "rules.roles[1].helmet[0]", "\"#12345\" is not a colour"),
        (26, "rules.roles[2]", "at least one colour"),
        (
            34,
            "rules.duty_posts[0].require_role",
            "unknown role \"operator\"",
        ),
        (
            38,
            "rules.restricted[0].forbid_roles[0]",
            "unknown role \"visiter\"",
        ),
        (
            39,
            "rules.restricted[0].escort.roles[0]",
            "unknown role \"guard\"",
        ),
        (44, "rules.restricted[1].escort", "give the distance once"),
    ] {
        let hit = errs
            .iter()
            .find(|e| e.contains(&format!("`{key}`")))
            .unwrap_or_else(|| panic!("no error at {key}:\n{all}"));
        assert!(hit.contains(what), "{hit}");
        assert!(
            hit.starts_with(&format!("test.toml:{line}:")),
            "{key} should be located at line {line}: {hit}"
        );
    }
}

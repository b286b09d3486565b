//! Exclusion-mask proposals: where operators' false-alarm verdicts cluster in one part of
//! a camera's view, propose a mask that would have removed them without touching any
//! confirmed detection.
//!
//! Input: the incidents of one camera that operators judged (state `false_alarm` or
//! `confirmed`, or `closed` after such a verdict), and the best box of each of their smoke
//! and fire events on that camera. Boxes are normalised to the frame size and reduced to
//! the point a mask tests: the bottom centre of the box (the rules stage drops a detection
//! when that anchor is inside a mask, see `lookout_rules::geom::anchor`).
//!
//! Clustering is grid based: the view is cut into [`GRID`]×[`GRID`] cells; cells holding
//! a confirmed anchor (of the same class and view) are blocked; 8-connected groups of
//! unblocked cells holding false-alarm anchors form clusters. A cluster with at least
//! `min_false_alarms` anchors becomes a rectangle around them (padded by [`PAD`], clamped
//! to the image), kept only if no confirmed anchor is inside. Polygons are `[x, y]` in
//! 0..1 of the image, like `[rules.cameras.ID] masks`.

use std::collections::{BTreeMap, BTreeSet};

use lookout_alerts::lifecycle::state_name;
use lookout_alerts::store::{IncidentFilter, Store};
use lookout_alerts::StoreError;
use lookout_config::rules::{MaskConfig, RulesConfig};
use lookout_core::{Event, UtcTime};
use serde::{Deserialize, Serialize};

/// Cells per side of the clustering grid.
pub const GRID: usize = 10;
/// Padding around a cluster's anchors (fraction of the image).
pub const PAD: f64 = 0.03;
/// Smallest padding tried when the padded rectangle would hold a confirmed anchor.
pub const MIN_PAD: f64 = 0.005;

/// One judged detection: an event's best box on this camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Incident id.
    pub incident: String,
    /// Class (`smoke`, `fire`).
    pub class: String,
    /// PTZ preset of the view, when known.
    pub preset: Option<String>,
    /// Box `[x1, y1, x2, y2]` in 0..1 of the frame.
    pub bbox: [f64; 4],
    /// The point a mask tests (bottom centre), in 0..1.
    pub anchor: [f64; 2],
}

impl Sample {
    /// A sample from an event's best box, if it has one.
    pub fn from_event(incident: &str, e: &Event) -> Option<Sample> {
        let b = e.bbox?;
        let (w, h) = e.frame_size?;
        if w == 0 || h == 0 || !e.kind.is_fire_like() {
            return None;
        }
        let (w, h) = (w as f64, h as f64);
        let c = |v: f32, d: f64| (v as f64 / d).clamp(0.0, 1.0);
        Some(Sample {
            incident: incident.to_string(),
            class: e.kind.as_str().to_string(),
            preset: e.preset.as_deref().map(str::to_string),
            bbox: [c(b.x1, w), c(b.y1, h), c(b.x2, w), c(b.y2, h)],
            // As lookout_rules::geom::anchor.
            anchor: [
                (((b.x1 + b.x2) as f64) * 0.5 / w).clamp(0.0, 0.9999),
                (b.y2 as f64 / h).clamp(0.0, 0.9999),
            ],
        })
    }
}

/// A proposed mask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// PTZ preset the mask belongs to (`None`: every view).
    pub preset: Option<String>,
    /// Classes masked.
    pub classes: Vec<String>,
    /// Polygon, `[x, y]` in 0..1 of the image (a rectangle, clockwise from top left).
    pub polygon: Vec<[f64; 2]>,
    /// False-alarm detections it would have removed.
    pub false_alarms_removed: usize,
    /// Their incidents.
    pub incidents: Vec<String>,
    /// Confirmed detections it would have removed (always 0 for a proposal).
    pub confirmed_touched: usize,
    /// Confirmed boxes that overlap the mask but are anchored outside it (not removed).
    pub confirmed_boxes_overlapping: usize,
}

/// Point in polygon (even-odd rule), as the rules stage tests masks.
pub fn contains(poly: &[[f64; 2]], x: f64, y: f64) -> bool {
    if poly.len() < 3 {
        return false;
    }
    let mut inside = false;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        let [xi, yi] = poly[i];
        let [xj, yj] = poly[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

fn rect(r: [f64; 4]) -> Vec<[f64; 2]> {
    let q = |v: f64| (v * 1000.0).round() / 1000.0;
    let [x1, y1, x2, y2] = r.map(q);
    vec![[x1, y1], [x2, y1], [x2, y2], [x1, y2]]
}

fn cell(p: [f64; 2]) -> (usize, usize) {
    let c = |v: f64| ((v * GRID as f64).floor() as usize).min(GRID - 1);
    (c(p[0]), c(p[1]))
}

fn overlaps(b: [f64; 4], r: [f64; 4]) -> bool {
    b[0] < r[2] && b[2] > r[0] && b[1] < r[3] && b[3] > r[1]
}

/// Masks that would have removed clusters of `false_alarms` without removing any of
/// `confirmed`. Samples already covered by one of `existing` masks are left out.
pub fn propose(
    false_alarms: &[Sample],
    confirmed: &[Sample],
    existing: &[MaskConfig],
    min_false_alarms: usize,
) -> Vec<Proposal> {
    let masked = |s: &Sample| {
        existing.iter().any(|m| {
            (m.classes.is_empty() || m.classes.contains(&s.class))
                && m.preset
                    .as_ref()
                    .is_none_or(|p| s.preset.as_ref() == Some(p))
                && contains(&m.polygon, s.anchor[0], s.anchor[1])
        })
    };
    let mut groups: BTreeMap<(Option<String>, String), Vec<&Sample>> = BTreeMap::new();
    for s in false_alarms.iter().filter(|s| !masked(s)) {
        groups
            .entry((s.preset.clone(), s.class.clone()))
            .or_default()
            .push(s);
    }
    let mut out = Vec::new();
    for ((preset, class), fas) in groups {
        // Confirmed detections a mask of this class and view would drop.
        let guard: Vec<&Sample> = confirmed
            .iter()
            .filter(|c| {
                c.class == class && preset.as_ref().is_none_or(|p| c.preset.as_ref() == Some(p))
            })
            .collect();
        let blocked: BTreeSet<(usize, usize)> = guard.iter().map(|c| cell(c.anchor)).collect();
        let mut cells: BTreeMap<(usize, usize), Vec<&Sample>> = BTreeMap::new();
        for s in &fas {
            let c = cell(s.anchor);
            if !blocked.contains(&c) {
                cells.entry(c).or_default().push(s);
            }
        }
        let mut seen: BTreeSet<(usize, usize)> = BTreeSet::new();
        for &start in cells.keys() {
            if !seen.insert(start) {
                continue;
            }
            // One 8-connected cluster.
            let mut stack = vec![start];
            let mut members: Vec<&Sample> = Vec::new();
            while let Some((cx, cy)) = stack.pop() {
                members.extend(cells.get(&(cx, cy)).into_iter().flatten().copied());
                for dx in -1i64..=1 {
                    for dy in -1i64..=1 {
                        let (nx, ny) = (cx as i64 + dx, cy as i64 + dy);
                        if nx < 0 || ny < 0 {
                            continue;
                        }
                        let n = (nx as usize, ny as usize);
                        if cells.contains_key(&n) && seen.insert(n) {
                            stack.push(n);
                        }
                    }
                }
            }
            if members.len() < min_false_alarms.max(1) {
                continue;
            }
            let (mut lo_x, mut lo_y, mut hi_x, mut hi_y) = (1.0f64, 1.0f64, 0.0f64, 0.0f64);
            for m in &members {
                lo_x = lo_x.min(m.anchor[0]);
                lo_y = lo_y.min(m.anchor[1]);
                hi_x = hi_x.max(m.anchor[0]);
                hi_y = hi_y.max(m.anchor[1]);
            }
            let candidate = [PAD, MIN_PAD].into_iter().find_map(|pad| {
                let r = [
                    (lo_x - pad).max(0.0),
                    (lo_y - pad).max(0.0),
                    (hi_x + pad).min(1.0),
                    (hi_y + pad).min(1.0),
                ];
                let poly = rect(r);
                let touched = guard
                    .iter()
                    .filter(|c| contains(&poly, c.anchor[0], c.anchor[1]))
                    .count();
                (touched == 0).then_some((r, poly))
            });
            let Some((r, polygon)) = candidate else {
                continue;
            };
            let removed: Vec<&&Sample> = fas
                .iter()
                .filter(|s| contains(&polygon, s.anchor[0], s.anchor[1]))
                .collect();
            let incidents: BTreeSet<String> = removed.iter().map(|s| s.incident.clone()).collect();
            out.push(Proposal {
                preset: preset.clone(),
                classes: vec![class.clone()],
                false_alarms_removed: removed.len(),
                incidents: incidents.into_iter().collect(),
                confirmed_touched: 0,
                confirmed_boxes_overlapping: guard.iter().filter(|c| overlaps(c.bbox, r)).count(),
                polygon,
            });
        }
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.false_alarms_removed));
    out
}

/// The judged detections of a camera: `(false alarms, confirmed)`, from incidents updated
/// since `since` (at most 1000 incidents).
pub fn judged_samples(
    store: &Store,
    camera: &str,
    since: UtcTime,
) -> Result<(Vec<Sample>, Vec<Sample>), StoreError> {
    let f = IncidentFilter {
        state: Some("false_alarm,confirmed,closed".into()),
        camera: Some(camera.to_string()),
        since: Some(since),
        limit: Some(1000),
        ..Default::default()
    };
    let (mut fa, mut ok) = (Vec::new(), Vec::new());
    for inc in store.list_incidents(&f)? {
        let verdict = match state_name(inc.incident.state) {
            "closed" => store.incident_detail(&inc.incident.id)?.and_then(|d| {
                d.transitions
                    .iter()
                    .rev()
                    .map(|t| t.to.clone())
                    .find(|t| t == "false_alarm" || t == "confirmed")
            }),
            s => Some(s.to_string()),
        };
        let into = match verdict.as_deref() {
            Some("false_alarm") => &mut fa,
            Some("confirmed") => &mut ok,
            _ => continue,
        };
        into.extend(
            inc.incident
                .events
                .iter()
                .filter(|e| e.camera.as_ref() == camera)
                .filter_map(|e| Sample::from_event(&inc.incident.id, e)),
        );
    }
    Ok((fa, ok))
}

/// The masks the running rules already have on a camera.
pub fn existing_masks(rules: &RulesConfig, camera: &str) -> Vec<MaskConfig> {
    rules
        .cameras
        .get(camera)
        .map(|c| c.masks.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: &str, class: &str, x: f64, y: f64) -> Sample {
        Sample {
            incident: id.into(),
            class: class.into(),
            preset: None,
            bbox: [x - 0.05, y - 0.1, x + 0.05, y],
            anchor: [x, y],
        }
    }

    #[test]
    fn a_cluster_of_false_alarms_away_from_fires_is_proposed() {
        let fa = vec![
            s("a", "smoke", 0.12, 0.30),
            s("b", "smoke", 0.15, 0.33),
            s("c", "smoke", 0.18, 0.28),
            s("lone", "smoke", 0.80, 0.80),
        ];
        let ok = vec![s("fire", "smoke", 0.60, 0.50)];
        let p = propose(&fa, &ok, &[], 2);
        assert_eq!(p.len(), 1, "{p:?}");
        let m = &p[0];
        assert_eq!(m.false_alarms_removed, 3);
        assert_eq!(m.incidents, vec!["a", "b", "c"]);
        assert_eq!(m.confirmed_touched, 0);
        assert_eq!(m.classes, vec!["smoke"]);
        for f in &fa[..3] {
            assert!(contains(&m.polygon, f.anchor[0], f.anchor[1]));
        }
        assert!(!contains(&m.polygon, 0.6, 0.5));
        assert!(!contains(&m.polygon, 0.8, 0.8));
        // A lone false alarm is a cluster when one is enough.
        assert_eq!(propose(&fa, &ok, &[], 1).len(), 2);
    }

    #[test]
    fn confirmed_anchors_are_never_inside_a_proposal() {
        // False alarms on both sides of a confirmed fire in the same cells.
        let fa = vec![
            s("a", "smoke", 0.41, 0.41),
            s("b", "smoke", 0.48, 0.48),
            s("c", "smoke", 0.52, 0.52),
            s("d", "smoke", 0.58, 0.58),
        ];
        let ok = vec![s("fire", "smoke", 0.5, 0.5)];
        for p in propose(&fa, &ok, &[], 1) {
            assert!(!contains(&p.polygon, 0.5, 0.5), "{p:?}");
            assert_eq!(p.confirmed_touched, 0);
        }
        // A confirmed fire of another class does not block a smoke mask.
        let other = vec![s("fire", "fire", 0.45, 0.45)];
        let p = propose(&fa, &other, &[], 2);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].false_alarms_removed, 4);
        assert_eq!(p[0].confirmed_boxes_overlapping, 0);
    }

    #[test]
    fn already_masked_false_alarms_propose_nothing() {
        let fa = vec![s("a", "smoke", 0.12, 0.30), s("b", "smoke", 0.15, 0.33)];
        let p = propose(&fa, &[], &[], 2);
        assert_eq!(p.len(), 1);
        let existing = MaskConfig {
            polygon: p[0].polygon.clone(),
            preset: None,
            classes: vec!["smoke".into()],
        };
        assert!(propose(&fa, &[], &[existing], 2).is_empty());
    }

    #[test]
    fn samples_use_the_bottom_centre_of_the_box() {
        let e: Event = serde_json::from_value(serde_json::json!({
            "id": "e", "camera": "c", "kind": "smoke", "phase": "start", "best_score": 0.9,
            "first_seen": "2026-01-01T00:00:00Z", "last_seen": "2026-01-01T00:00:10Z",
            "bbox": {"x1": 100.0, "y1": 50.0, "x2": 300.0, "y2": 150.0}, "frame_size": [1000, 500]
        }))
        .unwrap();
        let s = Sample::from_event("i", &e).unwrap();
        assert_eq!(s.anchor, [0.2, 0.3]);
        assert_eq!(s.bbox, [0.1, 0.1, 0.3, 0.3]);
        let mut no_size = e.clone();
        no_size.frame_size = None;
        assert!(Sample::from_event("i", &no_size).is_none());
    }
}

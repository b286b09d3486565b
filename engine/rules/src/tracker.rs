//! An IoU / ByteTrack-style multi-object tracker.
//!
//! Each analysed frame: tracks predict their box (constant velocity), confident detections
//! are matched first (greedy by IoU, same class only, all live tracks), then weak
//! detections may extend the tracks still unmatched (ByteTrack's second pass, which keeps
//! an id through partial occlusion), then unmatched confident detections start new tracks.
//! A track unmatched for more than `max_missed` frames is retired. Matching is greedy on
//! IoU with index tie-breaks: deterministic, allocation-free once warmed up.

use std::sync::Arc;

use lookout_config::roles::MAX_ROLE_WINDOW;
use lookout_config::rules::{MAX_HISTORY, MAX_TUBE};
use lookout_core::{BBox, UNKNOWN_ROLE};

/// One detection offered to the tracker.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Class name.
    pub class: Arc<str>,
    /// Model score.
    pub score: f32,
    /// Box in frame pixels.
    pub bbox: BBox,
    /// At or above the class's `min_score`: may start a track and counts for persistence.
    pub high: bool,
    /// Role measured on this detection (`unknown` included); `None` when not measured.
    pub role: Option<Arc<str>>,
}

/// Tracker settings.
#[derive(Debug, Clone, Copy)]
pub struct TrackerParams {
    /// Least IoU to match a confident detection.
    pub match_iou: f32,
    /// Least IoU to match a weak detection to an unmatched track.
    pub low_match_iou: f32,
    /// Frames a track survives unmatched.
    pub max_missed: u32,
}

impl From<&lookout_config::rules::TrackerConfig> for TrackerParams {
    fn from(c: &lookout_config::rules::TrackerConfig) -> Self {
        TrackerParams {
            match_iou: c.match_iou,
            low_match_iou: c.low_match_iou,
            max_missed: c.max_missed,
        }
    }
}

/// A tracked object (not a detection: it has an id, a history and a prediction).
#[derive(Debug, Clone)]
pub struct Track {
    /// Id, unique per camera for the engine's life.
    pub id: u64,
    /// Class.
    pub class: Arc<str>,
    /// Last matched box.
    pub bbox: BBox,
    /// Centre velocity in pixels per analysed frame.
    vel: [f32; 2],
    /// Frames since the last match (0 = matched in this frame).
    pub missed: u32,
    /// Bit i set when the track was seen with a confident detection i frames ago.
    pub hits: u64,
    /// Bit i set when the track was matched (confident or weak) i frames ago.
    pub seen: u64,
    /// Ring of the newest matched boxes (the tube [`crate::verify`] scores).
    tube: [BBox; MAX_TUBE as usize],
    /// Boxes stored (up to the ring size).
    n_tube: u32,
    /// Next tube slot.
    tube_head: u32,
    /// Index of the candidate matched in this frame.
    pub matched: Option<usize>,
    /// Ring of recent scores.
    scores: [f32; MAX_HISTORY as usize],
    /// Scores stored (up to the ring size).
    n_scores: u32,
    /// Next ring slot.
    head: u32,
    /// Confirmed by thresholds and persistence (maintained by the engine, with hysteresis).
    pub active: bool,
    /// Consecutive frames inside each zone of the camera (indexed like the zones).
    pub zone_frames: Vec<u32>,
    /// Capture time of the first sighting (set by the engine).
    pub first_seen: Option<lookout_core::UtcTime>,
    /// An event has started for this track (a later one starts its own clock).
    pub had_event: bool,
    /// The latest temporal verification (`[rules.verify]` classes only).
    pub verdict: Option<crate::verify::TubeVerdict>,
    /// Ring of the roles measured on the newest matched detections.
    roles: [Option<Arc<str>>; MAX_ROLE_WINDOW as usize],
    /// Roles stored (up to the ring size).
    n_roles: u32,
    /// Next role slot.
    role_head: u32,
}

impl Track {
    fn new(id: u64, c: &Candidate, zones: usize) -> Track {
        let mut t = Track {
            id,
            class: c.class.clone(),
            bbox: c.bbox,
            vel: [0.0; 2],
            missed: 0,
            hits: 1,
            seen: 1,
            tube: [c.bbox; MAX_TUBE as usize],
            n_tube: 1,
            tube_head: 1 % MAX_TUBE,
            matched: None,
            scores: [0.0; MAX_HISTORY as usize],
            n_scores: 0,
            head: 0,
            active: false,
            zone_frames: vec![0; zones],
            first_seen: None,
            had_event: false,
            verdict: None,
            roles: Default::default(),
            n_roles: 0,
            role_head: 0,
        };
        t.push_score(c.score);
        t.push_role(c);
        t
    }

    fn push_role(&mut self, c: &Candidate) {
        if let Some(r) = &c.role {
            self.roles[self.role_head as usize] = Some(r.clone());
            self.role_head = (self.role_head + 1) % MAX_ROLE_WINDOW;
            self.n_roles = (self.n_roles + 1).min(MAX_ROLE_WINDOW);
        }
    }

    /// The track's role: the role named by more than half of the measured frames (not
    /// `unknown`) among its last `window` measurements; `None` (unknown) otherwise. One
    /// bad frame does not flip it.
    pub fn role(&self, window: u32) -> Option<&Arc<str>> {
        let n = window.clamp(1, MAX_ROLE_WINDOW).min(self.n_roles);
        let at = |i: u32| {
            let idx = (self.role_head + MAX_ROLE_WINDOW - 1 - i) % MAX_ROLE_WINDOW;
            self.roles[idx as usize]
                .as_ref()
                .filter(|r| ***r != *UNKNOWN_ROLE)
        };
        let known = (0..n).filter(|&i| at(i).is_some()).count();
        for i in 0..n {
            let Some(r) = at(i) else { continue };
            let votes = (0..n).filter(|&j| at(j) == Some(r)).count();
            if votes * 2 > known {
                return Some(r);
            }
        }
        None
    }

    fn push_score(&mut self, s: f32) {
        self.scores[self.head as usize] = s;
        self.head = (self.head + 1) % MAX_HISTORY;
        self.n_scores = (self.n_scores + 1).min(MAX_HISTORY);
    }

    /// Median of the last `n` scores (fewer while the track is young).
    pub fn median(&self, n: u32) -> f32 {
        let n = n.clamp(1, MAX_HISTORY).min(self.n_scores) as usize;
        if n == 0 {
            return 0.0;
        }
        let mut buf = [0f32; MAX_HISTORY as usize];
        for (i, slot) in buf.iter_mut().enumerate().take(n) {
            let idx = (self.head as usize + MAX_HISTORY as usize - 1 - i) % MAX_HISTORY as usize;
            *slot = self.scores[idx];
        }
        let s = &mut buf[..n];
        s.sort_unstable_by(|a, b| a.total_cmp(b));
        if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) * 0.5
        }
    }

    /// Confident sightings in the last `n` analysed frames.
    pub fn hits_in(&self, n: u32) -> u32 {
        let mask = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        (self.hits & mask).count_ones()
    }

    /// Sightings (confident or weak) in the last `n` analysed frames.
    pub fn seen_in(&self, n: u32) -> u32 {
        let mask = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        (self.seen & mask).count_ones()
    }

    /// The `i`-th newest matched box (0 = the newest), while the tube holds it.
    pub fn tube_box(&self, i: u32) -> Option<BBox> {
        (i < self.n_tube).then(|| {
            let idx = (self.tube_head + MAX_TUBE - 1 - i) % MAX_TUBE;
            self.tube[idx as usize]
        })
    }

    /// Matched boxes in the tube.
    pub fn tube_len(&self) -> u32 {
        self.n_tube
    }

    /// Latest score.
    pub fn last_score(&self) -> f32 {
        let idx = (self.head as usize + MAX_HISTORY as usize - 1) % MAX_HISTORY as usize;
        self.scores[idx]
    }

    fn predicted(&self) -> BBox {
        let k = (self.missed + 1) as f32;
        let (dx, dy) = (self.vel[0] * k, self.vel[1] * k);
        BBox::new(
            self.bbox.x1 + dx,
            self.bbox.y1 + dy,
            self.bbox.x2 + dx,
            self.bbox.y2 + dy,
        )
    }

    fn update(&mut self, c: &Candidate, idx: usize) {
        let (ox, oy) = self.bbox.center();
        let (nx, ny) = c.bbox.center();
        let k = (self.missed + 1) as f32;
        self.vel = [
            0.5 * self.vel[0] + 0.5 * (nx - ox) / k,
            0.5 * self.vel[1] + 0.5 * (ny - oy) / k,
        ];
        self.bbox = c.bbox;
        self.missed = 0;
        if c.high {
            self.hits |= 1;
        }
        self.seen |= 1;
        self.tube[self.tube_head as usize] = c.bbox;
        self.tube_head = (self.tube_head + 1) % MAX_TUBE;
        self.n_tube = (self.n_tube + 1).min(MAX_TUBE);
        self.matched = Some(idx);
        self.push_score(c.score);
        self.push_role(c);
    }
}

/// The tracks of one camera and model.
#[derive(Debug, Default, Clone)]
pub struct Tracker {
    /// Live tracks, oldest first.
    pub tracks: Vec<Track>,
    /// Scratch: (iou, track, candidate) pairs.
    pairs: Vec<(f32, u32, u32)>,
    /// Scratch: candidate used.
    used: Vec<bool>,
}

impl Tracker {
    /// An empty tracker.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Forgets every track (preset change).
    pub fn clear(&mut self) {
        self.tracks.clear();
    }

    /// Advances one analysed frame. `next_id` hands out ids; `zones` sizes new tracks'
    /// zone counters. After the call, `track.matched` names each track's candidate.
    pub fn update(
        &mut self,
        cands: &[Candidate],
        p: &TrackerParams,
        next_id: &mut u64,
        zones: usize,
    ) {
        for t in &mut self.tracks {
            t.hits <<= 1;
            t.seen <<= 1;
            t.matched = None;
        }
        self.used.clear();
        self.used.resize(cands.len(), false);
        self.associate(cands, true, p.match_iou);
        self.associate(cands, false, p.low_match_iou);
        for t in &mut self.tracks {
            if t.matched.is_none() {
                t.missed += 1;
            }
        }
        self.tracks.retain(|t| t.missed <= p.max_missed);
        for (j, c) in cands.iter().enumerate() {
            if c.high && !self.used[j] {
                let mut t = Track::new(*next_id, c, zones);
                *next_id += 1;
                t.matched = Some(j);
                self.tracks.push(t);
            }
        }
    }

    fn associate(&mut self, cands: &[Candidate], high: bool, min_iou: f32) {
        self.pairs.clear();
        for (i, t) in self.tracks.iter().enumerate() {
            if t.matched.is_some() {
                continue;
            }
            let pred = t.predicted();
            for (j, c) in cands.iter().enumerate() {
                if c.high != high || self.used[j] || c.class != t.class {
                    continue;
                }
                let iou = pred.iou(&c.bbox).max(t.bbox.iou(&c.bbox));
                if iou >= min_iou {
                    self.pairs.push((iou, i as u32, j as u32));
                }
            }
        }
        self.pairs
            .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        for k in 0..self.pairs.len() {
            let (_, i, j) = self.pairs[k];
            let (i, j) = (i as usize, j as usize);
            if self.used[j] || self.tracks[i].matched.is_some() {
                continue;
            }
            self.used[j] = true;
            self.tracks[i].update(&cands[j], j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cand(x: f32, y: f32, score: f32) -> Candidate {
        Candidate {
            class: Arc::from("person"),
            score,
            bbox: BBox::new(x, y, x + 40.0, y + 80.0),
            high: score >= 0.4,
            role: None,
        }
    }

    const P: TrackerParams = TrackerParams {
        match_iou: 0.3,
        low_match_iou: 0.5,
        max_missed: 5,
    };

    #[test]
    fn median_and_hits() {
        let mut tr = Tracker::new();
        let mut id = 1;
        for s in [0.9, 0.1, 0.8, 0.7, 0.2] {
            tr.update(&[cand(10.0, 10.0, s)], &P, &mut id, 0);
        }
        assert_eq!(tr.tracks.len(), 1);
        let t = &tr.tracks[0];
        assert!((t.median(5) - 0.7).abs() < 1e-6);
        assert!((t.median(2) - 0.45).abs() < 1e-6);
        // 0.1 and 0.2 were weak (second pass) detections: 3 confident hits of 5.
        assert_eq!(t.hits_in(5), 3);
    }

    #[test]
    fn role_is_the_majority_of_recent_measurements() {
        let mut tr = Tracker::new();
        let mut id = 1;
        let mut at = |role: Option<&str>| {
            let mut c = cand(10.0, 10.0, 0.9);
            c.role = role.map(Arc::from);
            tr.update(&[c], &P, &mut id, 0);
            tr.tracks[0].role(5).map(|r| r.to_string())
        };
        assert_eq!(at(Some("visitor")), Some("visitor".into()));
        // Unknown frames and unmeasured frames do not vote.
        assert_eq!(at(Some("unknown")), Some("visitor".into()));
        assert_eq!(at(None), Some("visitor".into()));
        // One bad frame does not flip it; a tie is unknown.
        assert_eq!(at(Some("operator")), None);
        assert_eq!(at(Some("visitor")), Some("visitor".into()));
        // Window 5: visitor, unknown, operator, visitor, operator → 2 : 2, unknown.
        assert_eq!(at(Some("operator")), None);
        assert_eq!(at(Some("operator")), Some("operator".into()));
    }

    #[test]
    fn weak_detection_never_starts_a_track() {
        let mut tr = Tracker::new();
        let mut id = 1;
        tr.update(&[cand(10.0, 10.0, 0.2)], &P, &mut id, 0);
        assert!(tr.tracks.is_empty());
    }

    #[test]
    fn retires_after_max_missed() {
        let mut tr = Tracker::new();
        let mut id = 1;
        tr.update(&[cand(10.0, 10.0, 0.9)], &P, &mut id, 0);
        for _ in 0..5 {
            tr.update(&[], &P, &mut id, 0);
        }
        assert_eq!(tr.tracks.len(), 1);
        tr.update(&[], &P, &mut id, 0);
        assert!(tr.tracks.is_empty());
    }

    proptest! {
        /// Up to three people walking on separate lanes, each missing from up to 4
        /// consecutive frames at random, keep their ids.
        #[test]
        fn ids_survive_short_occlusions(
            n in 1usize..=3,
            speeds in proptest::collection::vec(-6.0f32..6.0, 3),
            gaps in proptest::collection::vec((5u32..40, 1u32..=4), 3),
        ) {
            let mut tr = Tracker::new();
            let mut next = 1;
            let mut ids: Vec<Option<u64>> = vec![None; n];
            for f in 0..60u32 {
                let mut cands = Vec::new();
                let mut who = Vec::new();
                for k in 0..n {
                    let (start, len) = gaps[k];
                    if f >= start && f < start + len {
                        continue;
                    }
                    let x = 300.0 + speeds[k] * f as f32;
                    let y = 20.0 + 200.0 * k as f32;
                    cands.push(cand(x, y, 0.9));
                    who.push(k);
                }
                tr.update(&cands, &P, &mut next, 0);
                for t in &tr.tracks {
                    if let Some(j) = t.matched {
                        let k = who[j];
                        match ids[k] {
                            None => ids[k] = Some(t.id),
                            Some(id) => prop_assert_eq!(id, t.id, "object {} changed id at frame {}", k, f),
                        }
                    }
                }
            }
            prop_assert_eq!(next as usize, n + 1);
        }
    }
}

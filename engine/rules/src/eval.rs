//! Event-level evaluation: what operators feel is alarms, not boxes.
//!
//! [`evaluate`] runs labelled sequences of [`FrameResult`]s (the model already ran) through
//! a fresh [`RulesEngine`] each and scores the `start` events of smoke and fire:
//!
//! * with labelled boxes ([`Truth::Boxes`]), an event is **true** when its box overlaps a
//!   labelled box of its class (IoU ≥ `min_iou`, or half of the smaller box covered) in a
//!   frame between the event's first sighting and its start;
//! * with a time label ([`Truth::FirstPositive`]), an event is true when it starts at or
//!   after the first positive frame (and its class matches, when the label names one).
//!
//! A sequence is positive for a class when it has a label of that class; it is **missed**
//! when no true event of that class starts in it. Time to detection is measured from the
//! first positive frame to the start of the first true event, in seconds (capture time)
//! and in frames.

use lookout_config::rules::RulesConfig;
use lookout_core::{BBox, Event, EventKind, EventPhase, FrameResult, StageMsg};
use serde::{Deserialize, Serialize};

use crate::RulesEngine;

/// A labelled box in frame pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelBox {
    /// Class name.
    pub class: String,
    /// Box in the frame's pixels.
    pub bbox: BBox,
}

/// Ground truth of one sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Truth {
    /// Labelled boxes per frame (same length as the frames; an empty list is a negative).
    Boxes(Vec<Vec<LabelBox>>),
    /// The index of the first frame showing the event (`None`: a negative sequence) and
    /// its class (`None`: any class).
    FirstPositive {
        /// First positive frame.
        index: Option<usize>,
        /// Class of the event.
        class: Option<String>,
    },
}

/// One sequence to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledSequence {
    /// Name in the report (e.g. the SEQ dir's name).
    pub name: String,
    /// Model output per frame, in time order (capture times must increase).
    pub frames: Vec<FrameResult>,
    /// Ground truth.
    pub truth: Truth,
}

/// Evaluation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Least IoU between an event box and a label box for the event to be true.
    pub min_iou: f32,
    /// Classes reported.
    pub classes: Vec<String>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            min_iou: 0.1,
            classes: vec!["smoke".into(), "fire".into()],
        }
    }
}

/// Summary of a set of numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Count.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// Largest.
    pub max: f64,
}

impl Summary {
    fn of(v: &[f64]) -> Option<Summary> {
        if v.is_empty() {
            return None;
        }
        let mut s = v.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Summary {
            n,
            mean: s.iter().sum::<f64>() / n as f64,
            median,
            max: s[n - 1],
        })
    }
}

/// The results of one class over all sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    /// Class.
    pub class: String,
    /// Sequences evaluated.
    pub sequences: usize,
    /// Sequences with a label of this class.
    pub positive_sequences: usize,
    /// Events started.
    pub events: usize,
    /// Events that overlap a label (or start at/after the first positive frame).
    pub true_events: usize,
    /// Events that do not.
    pub false_events: usize,
    /// Positive sequences with at least one true event.
    pub detected_sequences: usize,
    /// Positive sequences without a true event.
    pub missed_sequences: usize,
    /// true_events / events (alarm precision); `None` without events.
    pub precision: Option<f64>,
    /// detected / positive sequences; `None` without positives.
    pub sequence_recall: Option<f64>,
    /// Time to detection in seconds over detected sequences.
    pub ttd_s: Option<Summary>,
    /// Time to detection in analysed frames over detected sequences.
    pub ttd_frames: Option<Summary>,
}

/// The results of one class in one sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceReport {
    /// Sequence name.
    pub name: String,
    /// Class.
    pub class: String,
    /// Has a label of this class.
    pub positive: bool,
    /// Events started.
    pub events: usize,
    /// True events.
    pub true_events: usize,
    /// False events.
    pub false_events: usize,
    /// Index of the first positive frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_positive: Option<usize>,
    /// Seconds from the first positive frame to the first true event's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttd_s: Option<f64>,
    /// Frames from the first positive frame to the first true event's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttd_frames: Option<usize>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Per class.
    pub classes: Vec<ClassReport>,
    /// Per sequence and class.
    pub sequences: Vec<SequenceReport>,
}

/// Runs a sequence through a fresh engine; the start events of fire-like kinds.
fn starts(seq: &LabelledSequence, cfg: &RulesConfig) -> Vec<Event> {
    let mut engine = RulesEngine::new(cfg);
    let mut out = Vec::new();
    for f in &seq.frames {
        engine.handle(&StageMsg::Frame(f.clone()), &mut out);
    }
    out.retain(|e| e.phase == EventPhase::Start && e.kind.is_fire_like());
    out
}

fn overlaps(a: &BBox, b: &BBox, min_iou: f32) -> bool {
    if a.iou(b) >= min_iou {
        return true;
    }
    let iw = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let ih = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let smaller = a.area().min(b.area());
    smaller > 0.0 && iw * ih >= 0.5 * smaller
}

/// Index of the frame captured at `t` (the last one at or before it).
fn frame_index(frames: &[FrameResult], t: lookout_core::UtcTime) -> usize {
    frames
        .partition_point(|f| f.captured_at <= t)
        .saturating_sub(1)
}

/// Evaluates `seqs` with `cfg`. Pure: same inputs, same report.
pub fn evaluate(seqs: &[LabelledSequence], cfg: &RulesConfig, opts: &EvalOptions) -> EvalReport {
    let mut per_seq = Vec::new();
    for seq in seqs {
        let events = starts(seq, cfg);
        for class in &opts.classes {
            let kind = EventKind::from_class(class);
            let evs: Vec<&Event> = events.iter().filter(|e| Some(e.kind) == kind).collect();
            let first_positive = match &seq.truth {
                Truth::Boxes(labels) => labels
                    .iter()
                    .position(|ls| ls.iter().any(|l| &l.class == class)),
                Truth::FirstPositive { index, class: c } => {
                    index.filter(|_| c.as_ref().is_none_or(|c| c == class))
                }
            };
            let mut true_events = 0;
            let mut first_true: Option<usize> = None;
            for e in &evs {
                let start_idx = frame_index(&seq.frames, e.last_seen);
                let is_true = match &seq.truth {
                    Truth::Boxes(labels) => {
                        let from = frame_index(&seq.frames, e.first_seen);
                        e.bbox.is_some_and(|b| {
                            (from..=start_idx).any(|i| {
                                labels.get(i).is_some_and(|ls| {
                                    ls.iter().any(|l| {
                                        &l.class == class && overlaps(&b, &l.bbox, opts.min_iou)
                                    })
                                })
                            })
                        })
                    }
                    Truth::FirstPositive { .. } => first_positive.is_some_and(|fp| start_idx >= fp),
                };
                if is_true {
                    true_events += 1;
                    first_true = Some(first_true.map_or(start_idx, |f| f.min(start_idx)));
                }
            }
            // A true event never starts before the first positive frame (it needs a label
            // at or before its start), so the differences are >= 0.
            let (ttd_s, ttd_frames) = match (first_positive, first_true) {
                (Some(fp), Some(ft)) => {
                    let dt = seq.frames[ft].captured_at - seq.frames[fp.min(ft)].captured_at;
                    (
                        Some(dt.num_milliseconds() as f64 / 1000.0),
                        Some(ft.saturating_sub(fp)),
                    )
                }
                _ => (None, None),
            };
            per_seq.push(SequenceReport {
                name: seq.name.clone(),
                class: class.clone(),
                positive: first_positive.is_some(),
                events: evs.len(),
                true_events,
                false_events: evs.len() - true_events,
                first_positive,
                ttd_s,
                ttd_frames,
            });
        }
    }
    let classes = opts
        .classes
        .iter()
        .map(|class| {
            let rows: Vec<&SequenceReport> = per_seq.iter().filter(|r| &r.class == class).collect();
            let events: usize = rows.iter().map(|r| r.events).sum();
            let true_events: usize = rows.iter().map(|r| r.true_events).sum();
            let positive = rows.iter().filter(|r| r.positive).count();
            let detected = rows
                .iter()
                .filter(|r| r.positive && r.true_events > 0)
                .count();
            let ttd_s: Vec<f64> = rows.iter().filter_map(|r| r.ttd_s).collect();
            let ttd_f: Vec<f64> = rows
                .iter()
                .filter_map(|r| r.ttd_frames.map(|f| f as f64))
                .collect();
            ClassReport {
                class: class.clone(),
                sequences: rows.len(),
                positive_sequences: positive,
                events,
                true_events,
                false_events: events - true_events,
                detected_sequences: detected,
                missed_sequences: positive - detected,
                precision: (events > 0).then(|| true_events as f64 / events as f64),
                sequence_recall: (positive > 0).then(|| detected as f64 / positive as f64),
                ttd_s: Summary::of(&ttd_s),
                ttd_frames: Summary::of(&ttd_f),
            }
        })
        .collect();
    EvalReport {
        classes,
        sequences: per_seq,
    }
}

//! The rules stage as a thread behind a handle.
//!
//! ```text
//! StageMsg (bounded, blocking) ──▶ rules thread ──FusionMsg (bounded, blocking)──▶ fusion
//!                     RulesControl::apply ──▶ │ (hot reload between two messages)
//!                                             ├─▶ detections.jsonl (Recorder), events.jsonl
//!                                             └─▶ RulesTap (the store: frame results, events)
//! ```
//!
//! [`RulesStage::spawn`] starts the thread and returns a [`RulesHandle`]: its
//! [`RulesControl`] (cloneable, what the server and the config watcher call to change the
//! running rules) and [`RulesHandle::join`]. The thread exits when its input closes
//! (shutdown is upstream-first) or when fusion has gone.

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, select, Receiver, Sender};
use lookout_config::rules::RulesConfig;
use lookout_core::{CameraId, ControlMsg, Event, FusionMsg, StageMsg, UtcTime};
use lookout_jsonl::{JsonlWriter, Rotation};

use crate::{Recorder, RulesEngine, RulesError};

/// What the rules stage reports besides its events to fusion (the engine passes the store:
/// frame results for the tuning view, events for the API). Called on the rules thread.
pub trait RulesTap: Send + 'static {
    /// Every message, before the engine handles it, as recordings keep it
    /// ([`RulesEngine::recorded`]: only the detections the rules use, above the floor).
    fn message(&mut self, msg: &StageMsg);
    /// Every event, before it is sent to fusion.
    fn event(&mut self, ev: &Event);
}

/// A tap that records nothing.
#[derive(Debug, Default)]
pub struct NoTap;

impl RulesTap for NoTap {
    fn message(&mut self, _: &StageMsg) {}
    fn event(&mut self, _: &Event) {}
}

/// Where the rules stage writes its logs.
#[derive(Debug, Clone, Default)]
pub struct RulesLogs {
    /// Every message as JSON lines (`detections.jsonl`, what `lookout replay` reads).
    pub detections: Option<PathBuf>,
    /// Every event as JSON lines (`events.jsonl`).
    pub events: Option<PathBuf>,
    /// The `[rules.record]` recording (same lines as `detections`), when it is on.
    pub recording: Option<PathBuf>,
    /// When both logs are rotated (`[engine.retention]`).
    pub rotation: Rotation,
}

/// Why a rules change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The rules do not compile.
    #[error(transparent)]
    Invalid(#[from] RulesError),
    /// A control message whose rules are not a `[rules]` section.
    #[error("the control message's rules are malformed: {0}")]
    Malformed(String),
    /// The stage did not take the change within the wait (it is busy or stopping).
    #[error("the rules stage is not accepting changes")]
    NotAccepting,
}

/// Called with every change a [`RulesControl`] applied (see [`RulesControl::with_observer`]).
pub type RulesObserver = std::sync::Arc<dyn Fn(&RulesConfig) + Send + Sync>;

/// Changes the running rules of one rules stage (hot reload, masks, tuning overlays):
/// cheap to clone, callable from any thread.
#[derive(Clone)]
pub struct RulesControl {
    tx: Sender<RulesConfig>,
    /// Stages that follow this one's rules (a shadow rules stage): each accepted change is
    /// offered to them too, without waiting.
    followers: Vec<Sender<RulesConfig>>,
    /// Told of every accepted change, on the caller's thread.
    observers: Vec<RulesObserver>,
}

impl std::fmt::Debug for RulesControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RulesControl")
            .field("followers", &self.followers.len())
            .field("observers", &self.observers.len())
            .finish_non_exhaustive()
    }
}

impl RulesControl {
    /// How long [`RulesControl::apply`] waits for room in the stage's control queue.
    pub const WAIT: Duration = Duration::from_secs(2);

    /// A control and the queue it feeds: what [`RulesStage::spawn`] reads, or what a
    /// caller without a rules thread (a test, a config command) drains.
    pub fn channel(capacity: usize) -> (RulesControl, Receiver<RulesConfig>) {
        let (tx, rx) = bounded(capacity.max(1));
        (
            RulesControl {
                tx,
                followers: Vec::new(),
                observers: Vec::new(),
            },
            rx,
        )
    }

    /// This control, also handing every change it applies to `follower`'s stage (best
    /// effort: a follower whose queue is full misses the change and logs it). The shadow
    /// rules stage follows the live one this way, so both judge with the same rules.
    pub fn with_follower(mut self, follower: &RulesControl) -> RulesControl {
        self.followers.push(follower.tx.clone());
        self
    }

    /// This control, also calling `observer` with every change it applied (after the stage
    /// took it), on the caller's thread: what else derives from the rules follows them
    /// (inference's zone crops are built from `[rules.cameras.ID] zones`).
    pub fn with_observer(mut self, observer: RulesObserver) -> RulesControl {
        self.observers.push(observer);
        self
    }

    /// Compiles `rules` strictly (a bad change is refused with its reason, and the running
    /// rules stay), then hands them to the stage, which swaps them in between two messages.
    pub fn apply(&self, rules: &RulesConfig) -> Result<(), ControlError> {
        RulesEngine::try_new(rules)?;
        self.tx
            .send_timeout(rules.clone(), Self::WAIT)
            .map_err(|_| ControlError::NotAccepting)?;
        for f in &self.followers {
            if f.try_send(rules.clone()).is_err() {
                tracing::warn!("A following (shadow) rules stage did not take the rules change.");
            }
        }
        for o in &self.observers {
            o(rules);
        }
        Ok(())
    }

    /// Changes queued and not yet taken by the stage.
    pub fn pending(&self) -> usize {
        self.tx.len()
    }

    /// Applies a [`ControlMsg`] (e.g. one received from another node).
    pub fn apply_msg(&self, msg: &ControlMsg) -> Result<(), ControlError> {
        match msg {
            ControlMsg::Rules { rules, .. } => {
                let rules: RulesConfig = serde_json::from_value(rules.clone())
                    .map_err(|e| ControlError::Malformed(e.to_string()))?;
                self.apply(&rules)
            }
            // Not a rules change.
            ControlMsg::Cameras { .. } => Ok(()),
        }
    }

    /// The control message that carries `rules` (overlay `version`, 0 for the file's).
    pub fn message(version: i64, rules: &RulesConfig) -> ControlMsg {
        ControlMsg::Rules {
            version,
            rules: serde_json::to_value(rules).unwrap_or(serde_json::Value::Null),
        }
    }

    /// Runs recorded messages through a fresh engine with `rules` (the tuning view's
    /// what-if; the running stage is not touched).
    pub fn replay(&self, msgs: Vec<StageMsg>, rules: &RulesConfig) -> Vec<Event> {
        crate::replay(msgs, rules)
    }

    /// Like [`RulesControl::replay`], with what temporal verification did per camera and
    /// class.
    pub fn replay_explained(
        &self,
        msgs: Vec<StageMsg>,
        rules: &RulesConfig,
    ) -> (
        Vec<Event>,
        std::collections::BTreeMap<(String, String), crate::TubeSummary>,
    ) {
        crate::replay_explained(msgs, rules)
    }
}

/// The rules stage.
#[derive(Debug)]
pub struct RulesStage;

/// A running rules stage.
#[derive(Debug)]
pub struct RulesHandle {
    control: RulesControl,
    thread: JoinHandle<()>,
}

impl RulesStage {
    /// Starts the rules thread with `rules`: it reads `input` until it closes, sends each
    /// event (and, at most once a second per camera, that camera's newest capture time) to
    /// `output`, in order, blocking when fusion is behind.
    pub fn spawn(
        rules: &RulesConfig,
        logs: RulesLogs,
        input: Receiver<StageMsg>,
        output: Sender<FusionMsg>,
        tap: impl RulesTap,
    ) -> std::io::Result<RulesHandle> {
        Self::spawn_named("rules", rules, logs, input, Some(output), tap)
    }

    /// A rules stage whose events go only to its tap (and logs), never to fusion: the
    /// shadow model's rules (`rules-shadow` thread). It sends no camera clocks either.
    pub fn spawn_detached(
        name: &str,
        rules: &RulesConfig,
        input: Receiver<StageMsg>,
        tap: impl RulesTap,
    ) -> std::io::Result<RulesHandle> {
        Self::spawn_named(name, rules, RulesLogs::default(), input, None, tap)
    }

    fn spawn_named(
        name: &str,
        rules: &RulesConfig,
        logs: RulesLogs,
        input: Receiver<StageMsg>,
        output: Option<Sender<FusionMsg>>,
        tap: impl RulesTap,
    ) -> std::io::Result<RulesHandle> {
        let (control, control_rx) = RulesControl::channel(4);
        let engine = RulesEngine::new(rules);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(engine, logs, input, control_rx, output, tap))?;
        Ok(RulesHandle { control, thread })
    }
}

impl RulesHandle {
    /// The control of this stage.
    pub fn control(&self) -> RulesControl {
        self.control.clone()
    }

    /// Waits for the thread (it exits once its input has closed). Err if it panicked.
    pub fn join(self) -> std::thread::Result<()> {
        self.thread.join()
    }
}

fn run(
    mut engine: RulesEngine,
    logs: RulesLogs,
    input: Receiver<StageMsg>,
    mut control: Receiver<RulesConfig>,
    output: Option<Sender<FusionMsg>>,
    mut tap: impl RulesTap,
) {
    let open = |p: &PathBuf, what: &str| match Recorder::open_rotating(p, logs.rotation) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "Cannot open the {what}; running without it.");
            None
        }
    };
    let mut recorders: Vec<Recorder> = logs
        .detections
        .iter()
        .filter_map(|p| open(p, "detections log"))
        .chain(
            logs.recording
                .iter()
                .filter_map(|p| open(p, "rules recording")),
        )
        .collect();
    let mut events_log = logs
        .events
        .as_deref()
        .map(|p| JsonlWriter::open_rotating(p, logs.rotation));
    let mut out = Vec::new();
    // Reused for the recorded (filtered) copy of frame results.
    let mut scratch = StageMsg::Watermark {
        at: UtcTime::default(),
    };
    let mut clock_sent: std::collections::HashMap<CameraId, UtcTime> =
        std::collections::HashMap::new();
    loop {
        let msg = select! {
            recv(input) -> m => match m { Ok(m) => m, Err(_) => break },
            recv(control) -> r => {
                match r {
                    Ok(new) => match engine.apply_config(new) {
                        Ok(()) => tracing::info!("Applied the new rules configuration."),
                        Err(e) => tracing::error!(error = %e, "Rejected the new rules configuration; keeping the running one."),
                    },
                    // Every control is gone: the rules stay as they are.
                    Err(_) => control = crossbeam_channel::never(),
                }
                continue;
            }
        };
        let kept = engine.recorded(&msg, &mut scratch);
        for rec in recorders.iter_mut() {
            if let Err(e) = rec.record(kept) {
                tracing::warn!(error = %e, "Cannot write a recording.");
            }
        }
        tap.message(kept);
        engine.handle(&msg, &mut out);
        for ev in out.drain(..) {
            if let Some(log) = events_log.as_mut() {
                log.write(&ev);
            }
            tap.event(&ev);
            if let Some(output) = &output {
                if output.send(FusionMsg::Event(ev)).is_err() {
                    return;
                }
            }
        }
        // Each camera's event time, from every analysed frame (empty ones too), so a quiet
        // camera's incidents still close; sent after that frame's events, at most 1/s.
        if let (StageMsg::Frame(fr), Some(output)) = (&msg, &output) {
            let due = clock_sent
                .get(&fr.camera)
                .is_none_or(|t| fr.captured_at >= *t + chrono::Duration::seconds(1));
            if due {
                clock_sent.insert(fr.camera.clone(), fr.captured_at);
                let clock = FusionMsg::Clock {
                    camera: fr.camera.clone(),
                    at: fr.captured_at,
                };
                if output.send(clock).is_err() {
                    return;
                }
            }
        }
    }
    for mut rec in recorders {
        let _ = rec.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn observers_see_each_change_the_stage_took_and_no_other() {
        let (control, rx) = RulesControl::channel(1);
        let seen: Arc<Mutex<Vec<u32>>> = Arc::default();
        let control = control.with_observer({
            let seen = seen.clone();
            Arc::new(move |r: &RulesConfig| {
                seen.lock().unwrap().push(r.quiet_s as u32);
            })
        });
        let mut rules = RulesConfig {
            quiet_s: 7.0,
            ..RulesConfig::default()
        };
        control.apply(&rules).unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![7]);
        // The queue is full (nobody drains it): the change is refused and not observed.
        rules.quiet_s = 9.0;
        assert!(matches!(
            control.apply(&rules),
            Err(ControlError::NotAccepting)
        ));
        assert_eq!(*seen.lock().unwrap(), vec![7]);
        assert_eq!(rx.recv().unwrap().quiet_s, 7.0);
    }
}

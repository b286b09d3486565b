//! The durable outbox: one tokio task per sink drains that sink's undelivered
//! notifications from the store, oldest first, and marks each delivered only after the
//! sink accepted it (at-least-once; receivers dedupe on the idempotency key).
//!
//! A failed delivery never holds up the rest of its sink for more than that one attempt:
//! it gets its own retry time (exponential backoff with jitter, or the receiver's
//! `Retry-After`) and the worker goes on with the next rows. Only the later deliveries of
//! the same incident (or camera) wait behind it, so a receiver always sees an incident's
//! revisions in order. A receiver that is unreachable or asks to slow down (429,
//! `Retry-After`) pauses the whole sink until then. A payload the receiver refuses (4xx)
//! is tried `retry.max_rejected` times, then moved to the dead letters with the status and
//! the start of the answer; later revisions of that incident are then sent (each revision
//! is a full state, so the receiver still ends up current). Dead letters stay until
//! re-driven ([`Store::redrive`], the API, `lookout outbox retry`). Other sinks are never
//! affected.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::sinks::{Failure, Sink};
use crate::store::Store;

/// Backoff timing and limits of one sink.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First retry delay.
    pub initial: Duration,
    /// Longest retry delay.
    pub max: Duration,
    /// Attempts at a refused payload before it is dead-lettered (at least 1).
    pub max_rejected: u32,
    /// Attempts at a delivery failing for a passing reason before it is dead-lettered;
    /// 0 = never.
    pub max_attempts: u32,
}

impl Backoff {
    /// The delay before retry number `failures` (1-based): doubling, capped.
    pub fn delay(&self, failures: u32) -> Duration {
        let f = 2f64.powi(failures.saturating_sub(1).min(30) as i32);
        Duration::from_secs_f64((self.initial.as_secs_f64() * f).min(self.max.as_secs_f64()))
    }

    /// [`Backoff::delay`] with "equal jitter": uniformly in `[delay/2, delay]`, so that
    /// many senders failing together do not retry in lockstep.
    pub fn jittered(&self, failures: u32) -> Duration {
        self.delay(failures).mul_f64(0.5 + 0.5 * unit_random())
    }
}

/// A number in `[0, 1)` from the standard library's randomly keyed hasher (no RNG crate
/// needed for jitter).
fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Counters of one sink worker (read by metrics).
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Notifications delivered.
    pub delivered: std::sync::atomic::AtomicU64,
    /// Failed attempts.
    pub failures: std::sync::atomic::AtomicU64,
    /// Deliveries moved to the dead letters.
    pub dead_lettered: std::sync::atomic::AtomicU64,
}

/// Handle of a running sink worker.
pub struct Worker {
    /// Sink name.
    pub name: String,
    /// Wakes the worker when new notifications are queued.
    pub wake: Arc<Notify>,
    /// Counters.
    pub stats: Arc<SinkStats>,
    /// The task.
    pub task: JoinHandle<()>,
}

/// Rows read from the outbox per round.
const BATCH: u32 = 512;

/// Spawns the worker of one sink.
pub fn spawn_worker(
    rt: &tokio::runtime::Handle,
    store: Arc<Store>,
    name: String,
    mut sink: Sink,
    backoff: Backoff,
    mut shutdown: watch::Receiver<bool>,
) -> Worker {
    use std::sync::atomic::Ordering::Relaxed;
    let wake = Arc::new(Notify::new());
    let stats = Arc::new(SinkStats::default());
    let (w, st, n) = (wake.clone(), stats.clone(), name.clone());
    let task = rt.spawn(async move {
        // Consecutive sink-wide failures (unreachable receiver): the pause grows with them.
        let mut down: u32 = 0;
        let mut blocked: HashSet<String> = HashSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let batch = match store.pending(&n, BATCH) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(sink = %n, error = %e, "Cannot read the outbox; retrying.");
                    Vec::new()
                }
            };
            let now = chrono::Utc::now();
            // Groups (incidents) whose earliest pending delivery must wait: their later
            // deliveries wait too.
            blocked.clear();
            let mut next_due: Option<chrono::DateTime<chrono::Utc>> = None;
            let mut done: Vec<i64> = Vec::with_capacity(batch.len());
            let mut attempted = 0usize;
            let mut pause: Option<Duration> = None;
            for p in &batch {
                if blocked.contains(p.group()) {
                    continue;
                }
                if let Some(t) = p.not_before.filter(|t| *t > now) {
                    next_due = Some(next_due.map_or(t, |d| d.min(t)));
                    blocked.insert(p.group().to_string());
                    continue;
                }
                let earlier = if sink.wants_earlier() {
                    match store.earlier(&n, p) {
                        Ok(e) => e,
                        Err(e) => {
                            tracing::error!(sink = %n, error = %e, "Cannot read the incident's earlier messages; retrying.");
                            blocked.insert(p.group().to_string());
                            continue;
                        }
                    }
                } else {
                    Vec::new()
                };
                attempted += 1;
                let e = match sink.deliver(p, &earlier).await {
                    Ok(()) => {
                        done.push(p.id);
                        down = 0;
                        continue;
                    }
                    Err(e) => e,
                };
                st.failures.fetch_add(1, Relaxed);
                let attempts = p.attempts + 1;
                let give_up = match e.failure {
                    Failure::Never => true,
                    Failure::Rejected => attempts >= backoff.max_rejected.max(1),
                    Failure::Retry | Failure::SinkDown => {
                        backoff.max_attempts > 0 && attempts >= backoff.max_attempts
                    }
                };
                if give_up {
                    tracing::warn!(sink = %n, key = %p.key, attempts, status = ?e.status, error = %e, "Delivery refused; moved to the dead letters (later revisions of the incident are still sent).");
                    match store.dead_letter(&n, p.id, e.status, &e.message, &e.body, chrono::Utc::now()) {
                        Ok(()) => {
                            st.dead_lettered.fetch_add(1, Relaxed);
                        }
                        Err(err) => tracing::error!(sink = %n, error = %err, "Cannot record a dead letter."),
                    }
                    continue;
                }
                let mut delay = backoff.jittered(attempts);
                if e.failure == Failure::SinkDown {
                    down += 1;
                    delay = backoff.jittered(down);
                }
                if let Some(ra) = e.retry_after {
                    delay = ra;
                }
                tracing::warn!(sink = %n, key = %p.key, attempt = attempts, retry_in_s = delay.as_secs_f64(), error = %e, "Delivery failed; retrying later.");
                let not_before = chrono::Utc::now()
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                if let Err(err) = store.failed(&n, p.id, &e.message, Some(not_before)) {
                    tracing::error!(sink = %n, error = %err, "Cannot record a failed delivery.");
                }
                blocked.insert(p.group().to_string());
                if e.failure == Failure::SinkDown {
                    pause = Some(delay);
                    break;
                }
            }
            if !done.is_empty() {
                match store.delivered(&n, &done, chrono::Utc::now()) {
                    Ok(()) => {
                        st.delivered.fetch_add(done.len() as u64, Relaxed);
                    }
                    Err(e) => {
                        tracing::error!(sink = %n, error = %e, "Cannot mark deliveries done; they will be sent again.");
                    }
                }
            }
            if let Some(d) = pause {
                // The receiver is down or asked to wait: nothing goes to it meanwhile.
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            if attempted == 0 {
                let idle = next_due
                    .and_then(|t| (t - chrono::Utc::now()).to_std().ok())
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(1));
                tokio::select! {
                    _ = w.notified() => {}
                    _ = tokio::time::sleep(idle) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        tracing::debug!(sink = %n, "Sink worker stopped.");
    });
    Worker {
        name,
        wake,
        stats,
        task,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_rejected: 3,
            max_attempts: 0,
        };
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(4), Duration::from_millis(800));
        assert_eq!(b.delay(5), Duration::from_secs(1));
        assert_eq!(b.delay(100), Duration::from_secs(1));
        let j: Vec<Duration> = (0..50).map(|_| b.jittered(4)).collect();
        assert!(j
            .iter()
            .all(|d| *d >= Duration::from_millis(400) && *d <= Duration::from_millis(800)));
        assert!(j.iter().any(|d| *d != j[0]), "no jitter: {j:?}");
    }
}

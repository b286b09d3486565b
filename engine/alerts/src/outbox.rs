//! The durable outbox: one tokio task per sink drains that sink's undelivered
//! notifications from the store, oldest first, and marks each delivered only after the
//! sink accepted it (at-least-once; receivers dedupe on the idempotency key). A failing sink
//! backs off exponentially and keeps its backlog; the other sinks are not affected.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::sinks::Sink;
use crate::store::Store;

/// Backoff timing of one sink.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First retry delay.
    pub initial: Duration,
    /// Longest retry delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry number `failures` (1-based): doubling, capped.
    pub fn delay(&self, failures: u32) -> Duration {
        let f = 2f64.powi(failures.saturating_sub(1).min(30) as i32);
        Duration::from_secs_f64((self.initial.as_secs_f64() * f).min(self.max.as_secs_f64()))
    }
}

/// Counters of one sink worker (read by metrics).
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Notifications delivered.
    pub delivered: std::sync::atomic::AtomicU64,
    /// Failed attempts.
    pub failures: std::sync::atomic::AtomicU64,
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

/// Spawns the worker of one sink.
pub fn spawn_worker(
    rt: &tokio::runtime::Handle,
    store: Arc<Store>,
    name: String,
    mut sink: Sink,
    backoff: Backoff,
    mut shutdown: watch::Receiver<bool>,
) -> Worker {
    let wake = Arc::new(Notify::new());
    let stats = Arc::new(SinkStats::default());
    let (w, st, n) = (wake.clone(), stats.clone(), name.clone());
    let task = rt.spawn(async move {
        let mut failures: u32 = 0;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let batch = match store.pending(&n, 256) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(sink = %n, error = %e, "Cannot read the outbox; retrying.");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = w.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let mut done: Vec<i64> = Vec::with_capacity(batch.len());
            let mut failed = false;
            for p in &batch {
                match sink.deliver(p).await {
                    Ok(()) => {
                        done.push(p.id);
                        failures = 0;
                    }
                    Err(e) => {
                        failures += 1;
                        st.failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!(sink = %n, key = %p.key, attempt = p.attempts + 1, error = %e, "Delivery failed; retrying later.");
                        if let Err(e) = store.failed(&n, p.id, &e) {
                            tracing::error!(sink = %n, error = %e, "Cannot record a failed delivery.");
                        }
                        failed = true;
                        break;
                    }
                }
            }
            if !done.is_empty() {
                match store.delivered(&n, &done, chrono::Utc::now()) {
                    Ok(()) => {
                        st.delivered.fetch_add(done.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::error!(sink = %n, error = %e, "Cannot mark deliveries done; they will be sent again.");
                    }
                }
            }
            if failed {
                let d = backoff.delay(failures);
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
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
        };
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(4), Duration::from_millis(800));
        assert_eq!(b.delay(5), Duration::from_secs(1));
        assert_eq!(b.delay(100), Duration::from_secs(1));
    }
}

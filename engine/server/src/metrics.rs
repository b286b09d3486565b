//! [`Metrics`]: the registry every stage updates through atomics and `/metrics` renders in
//! the Prometheus text format.
//!
//! Stages hold `Arc`s to their own counters ([`Metrics::camera`], [`Metrics::queue`],
//! [`Metrics::batch_size`], [`Metrics::inference_latency_ms`]) and bump them without locks;
//! only registering a new camera or queue takes a lock.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

/// Counters of one camera.
#[derive(Debug, Default)]
pub struct CameraMetrics {
    /// Frames delivered by the stream.
    pub frames_in: AtomicU64,
    /// Frames analysed by inference.
    pub frames_analysed: AtomicU64,
    /// Frames dropped at the camera edge (freshest frame wins).
    pub frames_dropped: AtomicU64,
    /// Stream reconnects.
    pub reconnects: AtomicU64,
    /// Current analysed frames per second × 1000 (a gauge).
    pub fps_milli: AtomicU64,
}

impl CameraMetrics {
    /// Sets the fps gauge.
    pub fn set_fps(&self, fps: f64) {
        self.fps_milli
            .store((fps.max(0.0) * 1000.0) as u64, Relaxed);
    }
}

/// A fixed-bucket histogram.
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<AtomicU64>,
    sum_micro: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// A histogram with these upper bounds (ascending); `+Inf` is implicit.
    pub fn new(bounds: &[f64]) -> Histogram {
        Histogram {
            bounds: bounds.to_vec(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        self.observe_n(v, 1);
    }

    /// Records `n` observations of the same value.
    pub fn observe_n(&self, v: f64, n: u64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(n, Relaxed);
        self.sum_micro
            .fetch_add((v.max(0.0) * 1e6) as u64 * n, Relaxed);
        self.count.fetch_add(n, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (i, b) in self.bounds.iter().enumerate() {
            cum += self.counts[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cum}");
        }
        cum += self.counts[self.bounds.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cum}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micro.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {}", self.count.load(Relaxed));
    }
}

/// The engine's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    cameras: RwLock<BTreeMap<String, Arc<CameraMetrics>>>,
    queues: RwLock<BTreeMap<String, Arc<AtomicI64>>>,
    /// Inference batch sizes (fed from the inference stage's per-size run counts).
    pub batch_size: Histogram,
    /// Inference latency of a frame group (take → results sent), median and 95th
    /// percentile in microseconds, as the inference stage reports them.
    pub inference_latency_us: [AtomicU64; 2],
    /// Requests whose bearer token matched no user.
    pub auth_failures: AtomicU64,
    /// Requests refused with 429 because their address failed too often.
    pub auth_throttled: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            cameras: RwLock::default(),
            queues: RwLock::default(),
            batch_size: Histogram::new(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0]),
            inference_latency_us: [AtomicU64::new(0), AtomicU64::new(0)],
            auth_failures: AtomicU64::new(0),
            auth_throttled: AtomicU64::new(0),
        }
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// A new, empty registry.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// The counters of a camera (registered on first use).
    pub fn camera(&self, id: &str) -> Arc<CameraMetrics> {
        if let Some(c) = self
            .cameras
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            return c.clone();
        }
        self.cameras
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    /// The depth gauge of a named queue (registered on first use).
    pub fn queue(&self, name: &str) -> Arc<AtomicI64> {
        if let Some(c) = self
            .queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return c.clone();
        }
        self.queues
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// The fps gauge of a camera, if registered.
    pub fn camera_fps(&self, id: &str) -> Option<f64> {
        self.cameras
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .map(|c| c.fps_milli.load(Relaxed) as f64 / 1000.0)
    }

    /// Prometheus text: every registered metric plus the outbox backlog, dead letters and
    /// sink counters.
    pub fn render(
        &self,
        backlog: &[(String, u64)],
        dead_letters: &[(String, u64)],
        sinks: &[(String, u64, u64)],
    ) -> String {
        let mut o = String::with_capacity(4096);
        let cams = self.cameras.read().unwrap_or_else(|e| e.into_inner());
        type Getter = fn(&CameraMetrics) -> u64;
        let counters: [(&str, &str, Getter); 4] = [
            (
                "lookout_camera_frames_in_total",
                "Frames delivered by the stream.",
                |c| c.frames_in.load(Relaxed),
            ),
            (
                "lookout_camera_frames_analysed_total",
                "Frames analysed by inference.",
                |c| c.frames_analysed.load(Relaxed),
            ),
            (
                "lookout_camera_frames_dropped_total",
                "Frames dropped at the camera edge.",
                |c| c.frames_dropped.load(Relaxed),
            ),
            (
                "lookout_camera_reconnects_total",
                "Stream reconnects.",
                |c| c.reconnects.load(Relaxed),
            ),
        ];
        for (name, help, get) in counters {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
            for (id, c) in cams.iter() {
                let _ = writeln!(o, "{name}{{camera=\"{}\"}} {}", escape_label(id), get(c));
            }
        }
        let _ = writeln!(o, "# HELP lookout_camera_fps Analysed frames per second.\n# TYPE lookout_camera_fps gauge");
        for (id, c) in cams.iter() {
            let _ = writeln!(
                o,
                "lookout_camera_fps{{camera=\"{}\"}} {}",
                escape_label(id),
                c.fps_milli.load(Relaxed) as f64 / 1000.0
            );
        }
        drop(cams);
        let _ = writeln!(o, "# HELP lookout_queue_depth Items waiting in a stage queue.\n# TYPE lookout_queue_depth gauge");
        for (q, v) in self.queues.read().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                o,
                "lookout_queue_depth{{queue=\"{}\"}} {}",
                escape_label(q),
                v.load(Relaxed)
            );
        }
        self.batch_size.render(
            &mut o,
            "lookout_inference_batch_size",
            "Frames per inference batch.",
        );
        let _ = writeln!(o, "# HELP lookout_inference_latency_ms Inference latency of a frame group (take to results sent), milliseconds, by quantile.\n# TYPE lookout_inference_latency_ms gauge");
        for (q, v) in ["0.5", "0.95"].iter().zip(&self.inference_latency_us) {
            let _ = writeln!(
                o,
                "lookout_inference_latency_ms{{quantile=\"{q}\"}} {}",
                v.load(Relaxed) as f64 / 1000.0
            );
        }
        let _ = writeln!(o, "# HELP lookout_outbox_backlog Undelivered notifications per sink.\n# TYPE lookout_outbox_backlog gauge");
        for (s, n) in backlog {
            let _ = writeln!(
                o,
                "lookout_outbox_backlog{{sink=\"{}\"}} {n}",
                escape_label(s)
            );
        }
        let _ = writeln!(o, "# HELP lookout_outbox_dead_letters Deliveries a sink refused, kept until re-driven.\n# TYPE lookout_outbox_dead_letters gauge");
        for (s, n) in dead_letters {
            let _ = writeln!(
                o,
                "lookout_outbox_dead_letters{{sink=\"{}\"}} {n}",
                escape_label(s)
            );
        }
        let _ = writeln!(o, "# HELP lookout_sink_delivered_total Notifications delivered per sink.\n# TYPE lookout_sink_delivered_total counter");
        for (s, d, _) in sinks {
            let _ = writeln!(
                o,
                "lookout_sink_delivered_total{{sink=\"{}\"}} {d}",
                escape_label(s)
            );
        }
        let _ = writeln!(o, "# HELP lookout_sink_failures_total Failed delivery attempts per sink.\n# TYPE lookout_sink_failures_total counter");
        for (s, _, f) in sinks {
            let _ = writeln!(
                o,
                "lookout_sink_failures_total{{sink=\"{}\"}} {f}",
                escape_label(s)
            );
        }
        let _ = writeln!(
            o,
            "# HELP lookout_http_auth_failures_total Requests whose bearer token matched no user.\n# TYPE lookout_http_auth_failures_total counter\nlookout_http_auth_failures_total {}",
            self.auth_failures.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP lookout_http_auth_throttled_total Requests refused (429) after too many failed authentications from their address.\n# TYPE lookout_http_auth_throttled_total counter\nlookout_http_auth_throttled_total {}",
            self.auth_throttled.load(Relaxed)
        );
        o
    }
}

/// Appends the data directory's disk usage: `lookout_disk_bytes{kind}` per kind of file
/// (`database`, `jsonl`, `jsonl_rotated`, `snapshots`, `sink_files`, `other`) and
/// `lookout_disk_quota_bytes` (0 without a quota).
pub fn render_disk_usage(out: &mut String, kinds: &[(&str, u64)], quota: Option<u64>) {
    let _ = writeln!(out, "# HELP lookout_disk_bytes Bytes on disk under the data directory, per kind of file.\n# TYPE lookout_disk_bytes gauge");
    for (k, n) in kinds {
        let _ = writeln!(
            out,
            "lookout_disk_bytes{{kind=\"{}\"}} {n}",
            escape_label(k)
        );
    }
    let _ = writeln!(out, "# HELP lookout_disk_quota_bytes The data directory's quota (0: none).\n# TYPE lookout_disk_quota_bytes gauge\nlookout_disk_quota_bytes {}", quota.unwrap_or(0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.camera("c1").frames_in.fetch_add(3, Relaxed);
        m.camera("c1").set_fps(2.5);
        m.queue("rules").store(4, Relaxed);
        m.batch_size.observe(3.0);
        m.batch_size.observe_n(1.0, 2);
        m.inference_latency_us[1].store(12_500, Relaxed);
        let t = m.render(
            &[("hook".into(), 7)],
            &[("hook".into(), 2)],
            &[("hook".into(), 1, 2)],
        );
        assert!(
            t.contains("lookout_camera_frames_in_total{camera=\"c1\"} 3"),
            "{t}"
        );
        assert!(t.contains("lookout_camera_fps{camera=\"c1\"} 2.5"));
        assert!(t.contains("lookout_queue_depth{queue=\"rules\"} 4"));
        assert!(t.contains("lookout_inference_batch_size_bucket{le=\"1\"} 2"));
        assert!(t.contains("lookout_inference_batch_size_bucket{le=\"2\"} 2"));
        assert!(t.contains("lookout_inference_batch_size_bucket{le=\"4\"} 3"));
        assert!(t.contains("lookout_inference_batch_size_sum 5"));
        assert!(t.contains("lookout_inference_latency_ms{quantile=\"0.95\"} 12.5"));
        assert!(t.contains("lookout_outbox_backlog{sink=\"hook\"} 7"));
        assert!(t.contains("lookout_outbox_dead_letters{sink=\"hook\"} 2"));
    }

    #[test]
    fn renders_disk_usage() {
        let mut t = String::new();
        render_disk_usage(
            &mut t,
            &[("database", 4096), ("snapshots", 7)],
            Some(1 << 20),
        );
        assert!(
            t.contains("lookout_disk_bytes{kind=\"database\"} 4096"),
            "{t}"
        );
        assert!(
            t.contains("lookout_disk_bytes{kind=\"snapshots\"} 7"),
            "{t}"
        );
        assert!(t.contains("lookout_disk_quota_bytes 1048576"), "{t}");
    }
}

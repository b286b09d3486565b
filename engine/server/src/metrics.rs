//! [`Metrics`]: the registry every stage updates through atomics and `/metrics` renders in
//! the Prometheus text format.
//!
//! Stages hold `Arc`s to their own counters ([`Metrics::camera`], [`Metrics::queue`]) and
//! histograms (a [`Histogram`] a stage owns and registers with
//! [`Metrics::register_histogram`], observed on its hot path without locks or allocation);
//! only registering a new camera, queue or histogram takes a lock. Every metric name is
//! listed in configs/README.md ("Metrics").

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

pub use lookout_core::metrics::Histogram;

/// Why a camera's frame was not analysed: the `reason` label of
/// `lookout_camera_frames_dropped_total`, indexing [`CameraMetrics::dropped`].
pub const DROP_REASONS: [&str; 5] = [
    // The analysis fps cap skipped it (by design, not a fault).
    "fps_cap",
    // A fresher frame of the camera replaced it in the hub before inference took it.
    "stale",
    // The PTZ camera was moving.
    "ptz_moving",
    // A newer frame of the camera had already been sent (several inference workers).
    "reordered",
    // The hub refused it (closed at shutdown).
    "hub_closed",
];

/// Counters of one camera.
#[derive(Debug, Default)]
pub struct CameraMetrics {
    /// Frames delivered by the stream.
    pub frames_in: AtomicU64,
    /// Frames analysed by inference.
    pub frames_analysed: AtomicU64,
    /// Frames not analysed, per [`DROP_REASONS`] entry.
    pub dropped: [AtomicU64; DROP_REASONS.len()],
    /// Stream reconnects.
    pub reconnects: AtomicU64,
    /// Current analysed frames per second × 1000 (a gauge).
    pub fps_milli: AtomicU64,
    /// 1 while frames arrive (the stream is running), 0 while it starts, retries or has
    /// stopped.
    pub up: AtomicU64,
    /// Zone crops inference runs on each frame (`[inference.camera_zones]`, from the
    /// camera's zones; follows zones changed live).
    pub zone_crops: AtomicU64,
}

impl CameraMetrics {
    /// Sets the fps gauge.
    pub fn set_fps(&self, fps: f64) {
        self.fps_milli
            .store((fps.max(0.0) * 1000.0) as u64, Relaxed);
    }

    /// Sets the drop counter of `reason` (one of [`DROP_REASONS`]; others are ignored) to
    /// the source's running total.
    pub fn set_dropped(&self, reason: &str, total: u64) {
        if let Some(i) = DROP_REASONS.iter().position(|r| *r == reason) {
            self.dropped[i].store(total, Relaxed);
        }
    }
}

/// A registered histogram: one labelled series of a named family.
#[derive(Debug)]
struct HistogramSeries {
    name: String,
    help: String,
    labels: Vec<(String, String)>,
    hist: Arc<Histogram>,
}

/// Poll outcomes of one FIRMS API feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirmsFeedMetrics {
    /// Where it is configured (`fusion.hotspots[i]`).
    pub feed: String,
    /// The FIRMS source name.
    pub source: String,
    /// Successful polls.
    pub successes: u64,
    /// Failed polls.
    pub failures: u64,
}

/// The clip writer's running totals (`[alerts.clips]`), refreshed by the engine's metrics
/// snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClipMetrics {
    /// Requests queued.
    pub requested: u64,
    /// Clips written.
    pub written: u64,
    /// Clips written by re-encoding (the camera's codec cannot go into MP4 as it came).
    pub reencoded: u64,
    /// Clips that could not be written.
    pub failed: u64,
    /// Requests that got no clip, per reason (`queue_full`, `no_ring`, `stopping`).
    pub dropped: Vec<(String, u64)>,
    /// Bytes of clips written.
    pub bytes: u64,
}

/// The engine's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    cameras: RwLock<BTreeMap<String, Arc<CameraMetrics>>>,
    queues: RwLock<BTreeMap<String, Arc<AtomicI64>>>,
    histograms: RwLock<Vec<HistogramSeries>>,
    /// Labels of `lookout_build_info` (always at least `version`).
    build_info: RwLock<Vec<(String, String)>>,
    /// FIRMS API feeds, refreshed by the engine's metrics snapshot.
    firms: RwLock<Vec<FirmsFeedMetrics>>,
    /// The clip writer's counters (`None`: clips are off).
    clips: RwLock<Option<ClipMetrics>>,
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
            histograms: RwLock::default(),
            build_info: RwLock::new(vec![(
                "version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            )]),
            firms: RwLock::default(),
            clips: RwLock::default(),
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

/// `{k="v",...}` with `extra` appended (empty labels and no extra: nothing).
fn label_set(labels: &[(String, String)], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{}\"", escape_label(v)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
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

    /// Registers a histogram a stage observes into, as one series of the family `name`
    /// (a `_seconds` name for latencies) with these labels. Series of one family share the
    /// first registration's help text.
    pub fn register_histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        hist: Arc<Histogram>,
    ) {
        self.histograms
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(HistogramSeries {
                name: name.to_string(),
                help: help.to_string(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                hist,
            });
    }

    /// Sets the labels of `lookout_build_info` (`version` is kept unless given).
    pub fn set_build_info(&self, labels: &[(&str, &str)]) {
        let mut b = self.build_info.write().unwrap_or_else(|e| e.into_inner());
        for (k, v) in labels {
            match b.iter_mut().find(|(bk, _)| bk == k) {
                Some(e) => e.1 = v.to_string(),
                None => b.push((k.to_string(), v.to_string())),
            }
        }
    }

    /// Replaces the FIRMS API feeds' poll counters (running totals from the feed).
    pub fn set_firms_feeds(&self, feeds: Vec<FirmsFeedMetrics>) {
        *self.firms.write().unwrap_or_else(|e| e.into_inner()) = feeds;
    }

    /// Replaces the clip writer's counters (running totals; `None` when clips are off).
    pub fn set_clips(&self, clips: Option<ClipMetrics>) {
        *self.clips.write().unwrap_or_else(|e| e.into_inner()) = clips;
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
        let mut o = String::with_capacity(8192);
        {
            let b = self.build_info.read().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(
                o,
                "# HELP lookout_build_info The running build (always 1; the labels say which).\n# TYPE lookout_build_info gauge\nlookout_build_info{} 1",
                label_set(&b, None)
            );
        }
        let cams = self.cameras.read().unwrap_or_else(|e| e.into_inner());
        type Getter = fn(&CameraMetrics) -> u64;
        let counters: [(&str, &str, Getter); 3] = [
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
        let _ = writeln!(o, "# HELP lookout_camera_frames_dropped_total Frames not analysed, per camera and reason (fps_cap, stale, ptz_moving, reordered, hub_closed).\n# TYPE lookout_camera_frames_dropped_total counter");
        for (id, c) in cams.iter() {
            for (reason, n) in DROP_REASONS.iter().zip(&c.dropped) {
                let _ = writeln!(
                    o,
                    "lookout_camera_frames_dropped_total{{camera=\"{}\",reason=\"{reason}\"}} {}",
                    escape_label(id),
                    n.load(Relaxed)
                );
            }
        }
        let _ = writeln!(o, "# HELP lookout_camera_up 1 while the camera's frames arrive, 0 while its stream starts, retries or has stopped.\n# TYPE lookout_camera_up gauge");
        for (id, c) in cams.iter() {
            let _ = writeln!(
                o,
                "lookout_camera_up{{camera=\"{}\"}} {}",
                escape_label(id),
                c.up.load(Relaxed)
            );
        }
        let _ = writeln!(o, "# HELP lookout_camera_zone_crops Zone crops inference runs on each of the camera's frames, beside the frame pass.\n# TYPE lookout_camera_zone_crops gauge");
        for (id, c) in cams.iter() {
            let _ = writeln!(
                o,
                "lookout_camera_zone_crops{{camera=\"{}\"}} {}",
                escape_label(id),
                c.zone_crops.load(Relaxed)
            );
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
        self.render_histograms(&mut o);
        {
            let firms = self.firms.read().unwrap_or_else(|e| e.into_inner());
            type FirmsGetter = fn(&FirmsFeedMetrics) -> u64;
            let families: [(&str, &str, FirmsGetter); 2] = [
                (
                    "lookout_firms_poll_successes_total",
                    "FIRMS API polls answered with a readable CSV, per feed.",
                    |f| f.successes,
                ),
                (
                    "lookout_firms_poll_failures_total",
                    "FIRMS API polls that failed (network, HTTP status, unreadable answer), per feed.",
                    |f| f.failures,
                ),
            ];
            for (name, help, get) in families {
                let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
                for f in firms.iter() {
                    let _ = writeln!(
                        o,
                        "{name}{{feed=\"{}\",source=\"{}\"}} {}",
                        escape_label(&f.feed),
                        escape_label(&f.source),
                        get(f)
                    );
                }
            }
        }
        if let Some(c) = &*self.clips.read().unwrap_or_else(|e| e.into_inner()) {
            for (name, help, n) in [
                (
                    "lookout_clips_requested_total",
                    "Incident clips asked of the clip writer and queued.",
                    c.requested,
                ),
                (
                    "lookout_clips_written_total",
                    "Incident clips written (remuxed or re-encoded).",
                    c.written,
                ),
                (
                    "lookout_clips_reencoded_total",
                    "Incident clips written by decoding and re-encoding to H.264 (the camera's codec cannot go into MP4 as it came).",
                    c.reencoded,
                ),
                (
                    "lookout_clips_failed_total",
                    "Incident clips that could not be written (no video around the trigger, muxer or file error).",
                    c.failed,
                ),
                (
                    "lookout_clips_written_bytes_total",
                    "Bytes of incident clips written.",
                    c.bytes,
                ),
            ] {
                let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {n}");
            }
            let _ = writeln!(o, "# HELP lookout_clips_dropped_total Incident clip requests that got no clip, per reason (queue_full, no_ring, stopping).\n# TYPE lookout_clips_dropped_total counter");
            for (reason, n) in &c.dropped {
                let _ = writeln!(
                    o,
                    "lookout_clips_dropped_total{{reason=\"{}\"}} {n}",
                    escape_label(reason)
                );
            }
        }
        let _ = writeln!(o, "# HELP lookout_outbox_backlog Undelivered notifications (pending outbox rows) per sink.\n# TYPE lookout_outbox_backlog gauge");
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

    /// Every registered histogram, one HELP/TYPE per family (in first-registration order)
    /// followed by all its series.
    fn render_histograms(&self, o: &mut String) {
        let hs = self.histograms.read().unwrap_or_else(|e| e.into_inner());
        let mut families: Vec<&str> = Vec::new();
        for h in hs.iter() {
            if !families.contains(&h.name.as_str()) {
                families.push(&h.name);
            }
        }
        for name in families {
            let mut series = hs.iter().filter(|h| h.name == name).peekable();
            if let Some(first) = series.peek() {
                let _ = writeln!(o, "# HELP {name} {}\n# TYPE {name} histogram", first.help);
            }
            for h in series {
                let snap = h.hist.snapshot();
                for (le, n) in &snap.buckets {
                    let le = if le.is_infinite() {
                        "+Inf".to_string()
                    } else {
                        le.to_string()
                    };
                    let _ = writeln!(
                        o,
                        "{name}_bucket{} {n}",
                        label_set(&h.labels, Some(("le", &le)))
                    );
                }
                let ls = label_set(&h.labels, None);
                let _ = writeln!(o, "{name}_sum{ls} {}", snap.sum);
                let _ = writeln!(o, "{name}_count{ls} {}", snap.count);
            }
        }
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
        m.camera("c1").set_dropped("stale", 4);
        m.camera("c1").up.store(1, Relaxed);
        m.queue("rules").store(4, Relaxed);
        let batch = Arc::new(Histogram::new(&[1.0, 2.0, 4.0]));
        m.register_histogram(
            "lookout_inference_batch_size",
            "Images per session run.",
            &[("model", "person")],
            batch.clone(),
        );
        batch.observe(3.0);
        batch.observe_n(1.0, 2);
        let lat = Arc::new(Histogram::latency());
        m.register_histogram("lookout_x_seconds", "X.", &[], lat.clone());
        lat.observe(0.0125);
        m.set_build_info(&[("profile", "test")]);
        m.set_firms_feeds(vec![FirmsFeedMetrics {
            feed: "fusion.hotspots[1]".into(),
            source: "VIIRS_SNPP_NRT".into(),
            successes: 2,
            failures: 1,
        }]);
        let t = m.render(
            &[("hook".into(), 7)],
            &[("hook".into(), 2)],
            &[("hook".into(), 1, 2)],
        );
        for want in [
            "lookout_camera_frames_in_total{camera=\"c1\"} 3",
            "lookout_camera_fps{camera=\"c1\"} 2.5",
            "lookout_camera_up{camera=\"c1\"} 1",
            "lookout_camera_frames_dropped_total{camera=\"c1\",reason=\"stale\"} 4",
            "lookout_camera_frames_dropped_total{camera=\"c1\",reason=\"fps_cap\"} 0",
            "lookout_queue_depth{queue=\"rules\"} 4",
            "lookout_inference_batch_size_bucket{model=\"person\",le=\"1\"} 2",
            "lookout_inference_batch_size_bucket{model=\"person\",le=\"2\"} 2",
            "lookout_inference_batch_size_bucket{model=\"person\",le=\"4\"} 3",
            "lookout_inference_batch_size_bucket{model=\"person\",le=\"+Inf\"} 3",
            "lookout_inference_batch_size_sum{model=\"person\"} 5",
            "lookout_inference_batch_size_count{model=\"person\"} 3",
            "lookout_x_seconds_bucket{le=\"0.025\"} 1",
            "lookout_x_seconds_count 1",
            "lookout_firms_poll_successes_total{feed=\"fusion.hotspots[1]\",source=\"VIIRS_SNPP_NRT\"} 2",
            "lookout_firms_poll_failures_total{feed=\"fusion.hotspots[1]\",source=\"VIIRS_SNPP_NRT\"} 1",
            "lookout_outbox_backlog{sink=\"hook\"} 7",
            "lookout_outbox_dead_letters{sink=\"hook\"} 2",
        ] {
            assert!(t.contains(want), "missing {want} in\n{t}");
        }
        assert!(
            t.contains(&format!(
                "lookout_build_info{{version=\"{}\",profile=\"test\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{t}"
        );
        assert_eq!(
            t.matches("# TYPE lookout_inference_batch_size histogram")
                .count(),
            1
        );
        assert!(!t.contains("lookout_clips_"), "clips off: no clip families");
        m.set_clips(Some(ClipMetrics {
            requested: 3,
            written: 2,
            reencoded: 1,
            failed: 1,
            dropped: vec![("queue_full".into(), 4), ("no_ring".into(), 0)],
            bytes: 12345,
        }));
        let t = m.render(&[], &[], &[]);
        for want in [
            "# TYPE lookout_clips_written_total counter\nlookout_clips_written_total 2\n",
            "lookout_clips_requested_total 3\n",
            "lookout_clips_reencoded_total 1\n",
            "lookout_clips_failed_total 1\n",
            "lookout_clips_written_bytes_total 12345\n",
            "lookout_clips_dropped_total{reason=\"queue_full\"} 4\n",
            "lookout_clips_dropped_total{reason=\"no_ring\"} 0\n",
        ] {
            assert!(t.contains(want), "missing {want} in\n{t}");
        }
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

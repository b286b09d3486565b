//! `[engine.retention]`: how much of what `lookout run` writes is kept, and the data
//! directory's disk quota.
//!
//! ```toml
//! [engine.retention]
//! jsonl_rotate_mb = 64        # rotate detections/events/incidents/alerts .jsonl at 64 MiB
//! jsonl_rotate_hours = 24     # ... or once a day, whichever comes first
//! jsonl_keep = 7              # rotated files kept per log (gzip-compressed)
//! frame_results_days = 14
//! events_days = 90
//! snapshots_days = 90
//! closed_incidents_days = 365
//! dead_letters_days = 30      # refused deliveries, listed and re-drivable until then
//! quota_mb = 20480            # the whole data directory; 0 = no quota
//! ```

use serde::{Deserialize, Serialize};

use crate::validate::Validator;

/// `[engine.retention]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// A JSON-lines log (`detections.jsonl`, `events.jsonl`, `incidents.jsonl`, a `jsonl`
    /// sink) is rotated when it reaches this many MiB. Default 64.
    pub jsonl_rotate_mb: f64,
    /// ... or when its first line is this many hours old. Default 24.
    pub jsonl_rotate_hours: f64,
    /// Rotated files kept per log (the newest; older ones are deleted). Default 7.
    pub jsonl_keep: u32,
    /// Gzip rotated files (off the hot path, by the retention task). Default true.
    pub jsonl_compress: bool,
    /// Days to keep recorded frame results (the raw detections the tuning view replays),
    /// counted from when they were stored. Default 14.
    pub frame_results_days: f64,
    /// At most this many recorded frame results are kept (oldest deleted first).
    /// Default 2,000,000.
    pub max_frame_results: u64,
    /// Days to keep stored events, counted from when they were first stored; shadow
    /// models' would-be events (`shadow_events`) are kept as long. Default 90.
    pub events_days: f64,
    /// Days to keep snapshots (JPEG file and index row); an open incident's latest
    /// snapshot is always kept. Default 90.
    pub snapshots_days: f64,
    /// Closed and false-alarm incidents (with their revisions, transitions and snapshots)
    /// are deleted this many days after their last change. Open incidents are never
    /// deleted. Default 365.
    pub closed_incidents_days: f64,
    /// Delivered outbox rows are deleted after this many days; undelivered ones never.
    /// Default 7.
    pub outbox_delivered_days: f64,
    /// Dead letters (deliveries a sink refused) are deleted this many days after they
    /// were dead-lettered, with their delivery rows; until then they are listed and can be
    /// re-driven. Default 30.
    pub dead_letters_days: f64,
    /// Files written by the `cap` and `geojson` sinks are deleted this many days after
    /// they were last written. Default 30.
    pub sink_files_days: f64,
    /// Disk quota of the whole `engine.data_dir` in MiB; 0 = none. Above it, the oldest
    /// data is deleted first until usage is under 90 % of it: rotated JSONL files, sink
    /// files, clips, snapshots, delivered outbox rows, frame results, shadow events and
    /// events, closed incidents, in that order — never an open incident nor an undelivered outbox row.
    /// Must hold at least one snapshot. Default 20480 (20 GiB).
    pub quota_mb: f64,
    /// Seconds between retention passes (disk usage, age limits, quota). Default 60.
    pub check_interval_s: f64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            jsonl_rotate_mb: 64.0,
            jsonl_rotate_hours: 24.0,
            jsonl_keep: 7,
            jsonl_compress: true,
            frame_results_days: 14.0,
            max_frame_results: 2_000_000,
            events_days: 90.0,
            snapshots_days: 90.0,
            closed_incidents_days: 365.0,
            outbox_delivered_days: 7.0,
            dead_letters_days: 30.0,
            sink_files_days: 30.0,
            quota_mb: 20480.0,
            check_interval_s: 60.0,
        }
    }
}

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// The largest snapshot a frame of `max_side` pixels can give, in bytes: a square RGB
/// frame, uncompressed (a JPEG is smaller).
pub fn snapshot_bound_bytes(max_side: u32) -> u64 {
    u64::from(max_side) * u64::from(max_side) * 3
}

impl RetentionConfig {
    /// Checks value ranges. `max_side` is the longest analysis frame side of any camera
    /// (snapshots are drawn on analysis frames): the quota must hold one snapshot.
    pub fn validate(&self, v: &mut Validator, max_side: u32) {
        let p = "engine.retention";
        v.range(
            format!("{p}.jsonl_rotate_mb"),
            self.jsonl_rotate_mb,
            0.01,
            65536.0,
        );
        v.range(
            format!("{p}.jsonl_rotate_hours"),
            self.jsonl_rotate_hours,
            0.01,
            8760.0,
        );
        v.range(format!("{p}.jsonl_keep"), self.jsonl_keep, 1, 100_000);
        v.range(
            format!("{p}.frame_results_days"),
            self.frame_results_days,
            0.001,
            3650.0,
        );
        v.range(
            format!("{p}.max_frame_results"),
            self.max_frame_results,
            1000,
            1_000_000_000,
        );
        for (key, val) in [
            ("events_days", self.events_days),
            ("snapshots_days", self.snapshots_days),
            ("closed_incidents_days", self.closed_incidents_days),
        ] {
            v.range(format!("{p}.{key}"), val, 0.001, 36500.0);
        }
        for (key, val) in [
            ("outbox_delivered_days", self.outbox_delivered_days),
            ("dead_letters_days", self.dead_letters_days),
            ("sink_files_days", self.sink_files_days),
        ] {
            v.range(format!("{p}.{key}"), val, 0.001, 3650.0);
        }
        v.range(
            format!("{p}.check_interval_s"),
            self.check_interval_s,
            0.1,
            86400.0,
        );
        let q = self.quota_mb;
        if !(q == 0.0 || (q > 0.0 && q <= 1e9)) {
            v.error(
                format!("{p}.quota_mb"),
                format!("{q} is out of range: allowed 0 (no quota) or up to 1e9 MiB"),
            );
        } else if q > 0.0 {
            let one = snapshot_bound_bytes(max_side) as f64 / MIB;
            if q < one {
                v.error(
                    format!("{p}.quota_mb"),
                    format!(
                        "{q} MiB is smaller than one snapshot (up to {one:.2} MiB for \
                         {max_side}-pixel analysis frames): allowed 0 (no quota) or at least {one:.2}"
                    ),
                );
            }
        }
    }

    /// The quota in bytes, `None` when there is none.
    pub fn quota_bytes(&self) -> Option<u64> {
        (self.quota_mb > 0.0).then_some((self.quota_mb * MIB) as u64)
    }

    /// Size at which a JSON-lines log is rotated, in bytes.
    pub fn jsonl_rotate_bytes(&self) -> u64 {
        (self.jsonl_rotate_mb * MIB) as u64
    }

    /// Age of its first line at which a JSON-lines log is rotated.
    pub fn jsonl_rotate_age(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.jsonl_rotate_hours.max(0.0) * 3600.0)
    }
}

//! `[alerts]`: the incident store, lifecycle timing, snapshots and delivery sinks.
//!
//! ```toml
//! [alerts]
//! cooldown_s = 600
//! escalate_after_s = 300
//!
//! [[alerts.sinks]]
//! kind = "webhook"
//! name = "dispatch"
//! url = "https://dispatch.example.org/hook"
//! token = "${DISPATCH_TOKEN}"
//! ca_file = "certs/site-ca.pem"   # optional: a site's own CA, besides the Mozilla roots
//!
//! [[alerts.sinks]]
//! kind = "mqtt"
//! name = "broker"
//! host = "127.0.0.1"
//! port = 1883
//! ```

use serde::{Deserialize, Serialize};

use crate::env::{EnvString, Secret};
use crate::validate::{ValidationContext, Validator};

/// `[alerts]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// SQLite database file (relative to `engine.data_dir`). Default `lookout.db`.
    pub database: String,
    /// A new incident of the same kind on a camera that already has an open incident of
    /// that kind seen within this many seconds is merged into it as an update, so one
    /// burning hillside is one incident, not a storm. Default 600.
    pub cooldown_s: f64,
    /// An incident still `new` this many seconds after it was raised is re-notified with
    /// its severity raised one step. Default 300.
    pub escalate_after_s: f64,
    /// How many times an unacknowledged incident is escalated at most. Default 2.
    pub max_escalations: u32,
    /// Draw and store a JPEG snapshot of the triggering frame. Default true.
    pub snapshots: bool,
    /// JPEG quality of snapshots, 1..=100. Default 85.
    pub snapshot_quality: u8,
    /// Besides each snapshot, keep the frame without drawing and the detector's boxes on it,
    /// so that operators' verdicts and box corrections become a training set for the site
    /// (`lookout dataset export`). Default true.
    pub training_frames: bool,
    /// Moved to `engine.retention.closed_incidents_days`; an error here.
    #[serde(default, skip_serializing)]
    pub retention_days: Option<toml::Value>,
    /// Moved to `engine.retention.frame_results_days`; an error here.
    #[serde(default, skip_serializing)]
    pub frame_results_retention_days: Option<toml::Value>,
    /// Moved to `engine.retention.max_frame_results`; an error here.
    #[serde(default, skip_serializing)]
    pub max_frame_results: Option<toml::Value>,
    /// Moved to `engine.retention.outbox_delivered_days`; an error here.
    #[serde(default, skip_serializing)]
    pub outbox_retention_days: Option<toml::Value>,
    /// CAP `<sender>`: who issues the alerts (an e-mail-like identifier). Default
    /// `lookout@localhost`.
    pub cap_sender: String,
    /// Least time, in seconds of capture time, between two `update` messages of one rule
    /// event on the sinks that take events (MQTT `<prefix>/events`); an update that changes
    /// nothing a subscriber sees (score, box, zone, count) is never sent. Default 5.
    pub event_update_interval_s: f64,
    /// Where incidents are delivered (`[[alerts.sinks]]`). Each sink has its own worker and
    /// backlog: one sink that is down never delays another.
    pub sinks: Vec<SinkConfig>,
    /// Incident clips (`[alerts.clips]`).
    pub clips: ClipsConfig,
}

/// `[alerts.clips]`: a short MP4 of each new camera incident, cut from a ring of the
/// camera's encoded packets (no re-encode for H.264/H.265).
///
/// ```toml
/// [alerts.clips]
/// enabled = true
/// pre_s = 5          # video before the incident's first sighting
/// post_s = 10        # ... and after it
/// ring_mb = 32       # encoded video kept per camera
/// max_total_mb = 2048
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClipsConfig {
    /// Keep a ring of each camera's encoded packets and write a clip when an incident
    /// opens. Default false.
    pub enabled: bool,
    /// Seconds of video before the incident's first sighting (the clip starts at the key
    /// frame at or before it). Default 5.
    pub pre_s: f64,
    /// Seconds of video after the first sighting. Default 10.
    pub post_s: f64,
    /// Encoded video kept per camera, in MiB; the ring also holds at most
    /// `pre_s + post_s + 60` seconds. Default 32.
    pub ring_mb: f64,
    /// All clips together at most this many MiB: the retention pass deletes the oldest
    /// clips of closed incidents above it. Default 2048.
    pub max_total_mb: f64,
}

impl Default for ClipsConfig {
    fn default() -> Self {
        ClipsConfig {
            enabled: false,
            pre_s: 5.0,
            post_s: 10.0,
            ring_mb: 32.0,
            max_total_mb: 2048.0,
        }
    }
}

impl ClipsConfig {
    /// Seconds of packets the ring keeps: the clip's span and a minute for the time an
    /// incident takes to open after its first sighting.
    pub fn ring_seconds(&self) -> f64 {
        self.pre_s + self.post_s + 60.0
    }

    /// The ring's byte bound per camera.
    pub fn ring_bytes(&self) -> usize {
        (self.ring_mb * 1024.0 * 1024.0) as usize
    }

    /// The bound of all clips together, in bytes.
    pub fn max_total_bytes(&self) -> u64 {
        (self.max_total_mb * 1024.0 * 1024.0) as u64
    }

    fn validate(&self, v: &mut Validator) {
        let p = "alerts.clips";
        v.range(format!("{p}.pre_s"), self.pre_s, 0.0, 300.0);
        v.range(format!("{p}.post_s"), self.post_s, 0.5, 300.0);
        v.range(format!("{p}.ring_mb"), self.ring_mb, 1.0, 4096.0);
        v.range(format!("{p}.max_total_mb"), self.max_total_mb, 1.0, 1e9);
        if self.max_total_mb >= 1.0 && self.ring_mb >= 1.0 && self.max_total_mb < self.ring_mb {
            v.error(
                format!("{p}.max_total_mb"),
                format!(
                    "{} MiB cannot hold one clip of a {} MiB ring: allowed at least ring_mb",
                    self.max_total_mb, self.ring_mb
                ),
            );
        }
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            database: "lookout.db".into(),
            cooldown_s: 600.0,
            escalate_after_s: 300.0,
            max_escalations: 2,
            snapshots: true,
            snapshot_quality: 85,
            training_frames: true,
            retention_days: None,
            frame_results_retention_days: None,
            max_frame_results: None,
            outbox_retention_days: None,
            cap_sender: "lookout@localhost".into(),
            event_update_interval_s: 5.0,
            sinks: Vec::new(),
            clips: ClipsConfig::default(),
        }
    }
}

/// Retry timing and limits of a sink (`retry = { initial_s = 1, max_s = 300 }`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// First retry delay in seconds; doubles after each failure (with jitter). Default 1.
    pub initial_s: f64,
    /// Longest delay between retries in seconds. Default 300.
    pub max_s: f64,
    /// Attempts at a delivery the receiver refuses (HTTP 4xx other than 408 and 429)
    /// before it goes to the dead letters. Default 3.
    pub max_rejected: u32,
    /// Attempts at a delivery that fails for a passing reason (network, timeout, 408, 429,
    /// 5xx) before it goes to the dead letters; 0 = retry for ever. Default 0.
    pub max_attempts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_s: 1.0,
            max_s: 300.0,
            max_rejected: 3,
            max_attempts: 0,
        }
    }
}

/// Which incidents a sink receives.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkFilter {
    /// Only these incident kinds (`fire`, `post_vacant`, ...). Default: all.
    pub kinds: Vec<String>,
    /// Only incidents at least this severe (`low`, `medium`, `high`, `critical`).
    /// Default: all.
    pub min_severity: Option<String>,
}

/// One delivery target, written `[[alerts.sinks]] kind = "..."`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// HTTP POST of the incident revision as JSON, with an `Idempotency-Key` header.
    Webhook {
        /// Unique sink name (used in metrics, the outbox and logs).
        name: String,
        /// `https://host[:port]/path` or `http://host[:port]/path`. HTTPS servers are
        /// verified against the bundled Mozilla roots plus `ca_file`; never unverified.
        url: EnvString,
        /// Sent as `Authorization: Bearer <token>` when set.
        #[serde(default)]
        token: Option<Secret>,
        /// Seconds allowed for one delivery attempt. Default 10.
        #[serde(default = "default_timeout_s")]
        timeout_s: f64,
        /// PEM file with a site's own CA certificate(s), trusted in addition to the Mozilla
        /// roots (https:// only). A relative path resolves against the config file's
        /// directory. Checked when the config loads (so by `lookout check-config` too,
        /// [`AlertsConfig::validate_files`]): a missing or unreadable file, or one without
        /// a PEM certificate, is an error on this key naming the file. Read again when the
        /// engine starts, where a certificate that cannot be a CA is also refused.
        #[serde(default)]
        ca_file: Option<String>,
        /// Largest body sent, in bytes; a larger notification goes to the dead letters
        /// without an attempt. Default 1048576.
        #[serde(default = "default_max_payload_bytes")]
        max_payload_bytes: u64,
        /// Retry timing.
        #[serde(default)]
        retry: RetryConfig,
        /// Which incidents to send.
        #[serde(default)]
        filter: SinkFilter,
    },
    /// MQTT 3.1.1 publish (QoS 1) to `<prefix>/incidents/<kind>`; camera status retained
    /// on `<prefix>/cameras/<id>/status`; `<prefix>/available` retained `online`, with the
    /// last will `offline`.
    Mqtt {
        /// Unique sink name.
        name: String,
        /// Broker host name or address.
        host: String,
        /// Broker port. Default 1883.
        #[serde(default = "default_mqtt_port")]
        port: u16,
        /// MQTT client id. Default `lookout-<name>`.
        #[serde(default)]
        client_id: Option<String>,
        /// User name, when the broker wants one.
        #[serde(default)]
        username: Option<EnvString>,
        /// Password, when the broker wants one.
        #[serde(default)]
        password: Option<Secret>,
        /// Topic prefix. Default `lookout`.
        #[serde(default = "default_topic_prefix")]
        topic_prefix: String,
        /// Seconds allowed for one publish to be acknowledged. Default 10.
        #[serde(default = "default_timeout_s")]
        timeout_s: f64,
        /// Largest payload published, in bytes; a larger notification goes to the dead
        /// letters without an attempt. Default 1048576.
        #[serde(default = "default_max_payload_bytes")]
        max_payload_bytes: u64,
        /// TLS to the broker (MQTT over TLS, usually port 8883). Unset: plain TCP.
        #[serde(default)]
        tls: Option<MqttTls>,
        /// Publish rule events (`<prefix>/events`) and per camera and object label counts
        /// (`<prefix>/<camera>/<label>`), as Frigate does. Default true.
        #[serde(default = "default_true")]
        events: bool,
        /// Retry timing.
        #[serde(default)]
        retry: RetryConfig,
        /// Which incidents to send.
        #[serde(default)]
        filter: SinkFilter,
    },
    /// One JSON line per incident revision appended to a file.
    Jsonl {
        /// Unique sink name.
        name: String,
        /// File path (relative to `engine.data_dir`).
        path: String,
        /// Which incidents to write.
        #[serde(default)]
        filter: SinkFilter,
    },
    /// One CAP 1.2 XML alert per incident revision, written into a directory.
    Cap {
        /// Unique sink name.
        name: String,
        /// Directory (relative to `engine.data_dir`).
        dir: String,
        /// CAP `<status>`: `Actual` (default), `Exercise`, `System`, `Test` or `Draft`
        /// (drills and exercises are not mistaken for real alerts).
        #[serde(default = "default_cap_status")]
        status: String,
        /// CAP `<scope>`: `Public` (default), `Restricted` (needs `restriction`) or
        /// `Private` (needs `addresses`).
        #[serde(default = "default_cap_scope")]
        scope: String,
        /// CAP `<restriction>`: who may see a `Restricted` alert.
        #[serde(default)]
        restriction: Option<String>,
        /// CAP `<addresses>`: the recipients of a `Private` (or `Restricted`) alert,
        /// space-separated (an address with spaces in double quotes).
        #[serde(default)]
        addresses: Option<String>,
        /// Which incidents to write.
        #[serde(default)]
        filter: SinkFilter,
    },
    /// The latest revision of each incident as a GeoJSON Feature file in a directory.
    Geojson {
        /// Unique sink name.
        name: String,
        /// Directory (relative to `engine.data_dir`).
        dir: String,
        /// Which incidents to write.
        #[serde(default)]
        filter: SinkFilter,
    },
}

/// `tls = { ca_file = "...", client_cert = "...", client_key = "..." }` of an MQTT sink.
/// Paths are relative to the config file's directory; the files are checked when the config
/// loads ([`AlertsConfig::validate_files`]) and read when the engine starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTls {
    /// PEM file with the CA certificate(s) the broker's certificate must chain to (only
    /// these are trusted: a site broker's private CA).
    pub ca_file: String,
    /// PEM certificate chain presented to the broker (client authentication), with
    /// `client_key`.
    #[serde(default)]
    pub client_cert: Option<String>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `client_cert`.
    #[serde(default)]
    pub client_key: Option<String>,
}

fn default_timeout_s() -> f64 {
    10.0
}
fn default_cap_status() -> String {
    "Actual".into()
}
fn default_cap_scope() -> String {
    "Public".into()
}
fn default_max_payload_bytes() -> u64 {
    1 << 20
}
fn default_true() -> bool {
    true
}
fn default_mqtt_port() -> u16 {
    1883
}
fn default_topic_prefix() -> String {
    "lookout".into()
}

impl SinkConfig {
    /// The sink's configured name.
    pub fn name(&self) -> &str {
        match self {
            SinkConfig::Webhook { name, .. }
            | SinkConfig::Mqtt { name, .. }
            | SinkConfig::Jsonl { name, .. }
            | SinkConfig::Cap { name, .. }
            | SinkConfig::Geojson { name, .. } => name,
        }
    }

    /// The sink's kind as written in config.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Webhook { .. } => "webhook",
            SinkConfig::Mqtt { .. } => "mqtt",
            SinkConfig::Jsonl { .. } => "jsonl",
            SinkConfig::Cap { .. } => "cap",
            SinkConfig::Geojson { .. } => "geojson",
        }
    }

    /// The sink's filter.
    pub fn filter(&self) -> &SinkFilter {
        match self {
            SinkConfig::Webhook { filter, .. }
            | SinkConfig::Mqtt { filter, .. }
            | SinkConfig::Jsonl { filter, .. }
            | SinkConfig::Cap { filter, .. }
            | SinkConfig::Geojson { filter, .. } => filter,
        }
    }
}

/// Incident kind names accepted in sink filters.
pub const INCIDENT_KINDS: &[&str] = &[
    "fire",
    "post_vacant",
    "over_occupancy",
    "restricted",
    "patrol_missed",
    "forbidden_role",
    "lone_worker",
    "person_in_zone",
    "camera_health",
];

/// Severity names accepted in sink filters.
pub const SEVERITIES: &[&str] = &["low", "medium", "high", "critical"];

impl AlertsConfig {
    /// Checks values and cross-references.
    pub fn validate(&self, v: &mut Validator, _ctx: &ValidationContext<'_>) {
        v.check(
            !self.database.trim().is_empty(),
            "alerts.database",
            "must name a file, e.g. \"lookout.db\"",
        );
        v.range("alerts.cooldown_s", self.cooldown_s, 0.0, 30.0 * 86400.0);
        v.range(
            "alerts.escalate_after_s",
            self.escalate_after_s,
            1.0,
            30.0 * 86400.0,
        );
        v.range("alerts.max_escalations", self.max_escalations, 0, 10);
        v.range("alerts.snapshot_quality", self.snapshot_quality, 1, 100);
        self.clips.validate(v);
        v.range(
            "alerts.event_update_interval_s",
            self.event_update_interval_s,
            0.0,
            86400.0,
        );
        for (key, set, to) in [
            (
                "retention_days",
                self.retention_days.is_some(),
                "closed_incidents_days",
            ),
            (
                "frame_results_retention_days",
                self.frame_results_retention_days.is_some(),
                "frame_results_days",
            ),
            (
                "max_frame_results",
                self.max_frame_results.is_some(),
                "max_frame_results",
            ),
            (
                "outbox_retention_days",
                self.outbox_retention_days.is_some(),
                "outbox_delivered_days",
            ),
        ] {
            v.check(
                !set,
                format!("alerts.{key}"),
                format!("moved: write it as `{to}` under [engine.retention]"),
            );
        }
        v.check(
            !self.cap_sender.trim().is_empty() && !self.cap_sender.contains([' ', ',', '<', '&']),
            "alerts.cap_sender",
            "must be a non-empty identifier without spaces, commas, '<' or '&'",
        );
        let mut names = std::collections::BTreeMap::new();
        for (i, s) in self.sinks.iter().enumerate() {
            let p = format!("alerts.sinks[{i}]");
            let name = s.name();
            v.check(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                format!("{p}.name"),
                "must be non-empty and use only A-Z, a-z, 0-9, '-' and '_'",
            );
            if let Some(prev) = names.insert(name.to_string(), i) {
                v.error(
                    format!("{p}.name"),
                    format!("sink name {name:?} is already used by alerts.sinks[{prev}]"),
                );
            }
            let f = s.filter();
            for (k, kind) in f.kinds.iter().enumerate() {
                v.check(
                    INCIDENT_KINDS.contains(&kind.as_str()),
                    format!("{p}.filter.kinds[{k}]"),
                    format!(
                        "unknown incident kind {kind:?}; allowed: {}",
                        INCIDENT_KINDS.join(", ")
                    ),
                );
            }
            if let Some(sev) = &f.min_severity {
                v.check(
                    SEVERITIES.contains(&sev.as_str()),
                    format!("{p}.filter.min_severity"),
                    format!(
                        "unknown severity {sev:?}; allowed: {}",
                        SEVERITIES.join(", ")
                    ),
                );
            }
            match s {
                SinkConfig::Webhook {
                    url,
                    timeout_s,
                    retry,
                    ca_file,
                    max_payload_bytes,
                    ..
                } => {
                    v.range(
                        format!("{p}.max_payload_bytes"),
                        *max_payload_bytes,
                        1024,
                        1 << 30,
                    );
                    let https = url.value().starts_with("https://");
                    v.check(
                        https || url.value().starts_with("http://"),
                        format!("{p}.url"),
                        "must start with https:// or http://",
                    );
                    if let Some(f) = ca_file {
                        v.check(
                            !f.trim().is_empty(),
                            format!("{p}.ca_file"),
                            "must name a PEM file with the site's CA certificate(s)",
                        );
                        v.check(
                            https,
                            format!("{p}.ca_file"),
                            "applies only to https:// URLs",
                        );
                    }
                    v.range(format!("{p}.timeout_s"), *timeout_s, 0.1, 600.0);
                    validate_retry(v, &p, retry);
                }
                SinkConfig::Mqtt {
                    host,
                    timeout_s,
                    retry,
                    topic_prefix,
                    max_payload_bytes,
                    tls,
                    ..
                } => {
                    if let Some(t) = tls {
                        v.check(
                            !t.ca_file.trim().is_empty(),
                            format!("{p}.tls.ca_file"),
                            "must name a PEM file with the broker's CA certificate(s)",
                        );
                        v.check(
                            t.client_cert.is_some() == t.client_key.is_some(),
                            format!(
                                "{p}.tls.{}",
                                if t.client_cert.is_some() {
                                    "client_key"
                                } else {
                                    "client_cert"
                                }
                            ),
                            "client_cert and client_key go together (client authentication)",
                        );
                    }
                    v.range(
                        format!("{p}.max_payload_bytes"),
                        *max_payload_bytes,
                        1024,
                        268_435_455,
                    );
                    v.check(!host.is_empty(), format!("{p}.host"), "must not be empty");
                    v.range(format!("{p}.timeout_s"), *timeout_s, 0.1, 600.0);
                    v.check(
                        !topic_prefix.is_empty()
                            && !topic_prefix.contains(['#', '+'])
                            && !topic_prefix.ends_with('/'),
                        format!("{p}.topic_prefix"),
                        "must be non-empty, without '#', '+' or a trailing '/'",
                    );
                    validate_retry(v, &p, retry);
                }
                SinkConfig::Jsonl { path, .. } => {
                    v.check(!path.is_empty(), format!("{p}.path"), "must not be empty");
                }
                SinkConfig::Cap {
                    dir,
                    status,
                    scope,
                    restriction,
                    addresses,
                    ..
                } => {
                    v.check(!dir.is_empty(), format!("{p}.dir"), "must not be empty");
                    const STATUS: [&str; 5] = ["Actual", "Exercise", "System", "Test", "Draft"];
                    v.check(
                        STATUS.contains(&status.as_str()),
                        format!("{p}.status"),
                        format!(
                            "unknown CAP status {status:?}; allowed: {}",
                            STATUS.join(", ")
                        ),
                    );
                    const SCOPE: [&str; 3] = ["Public", "Restricted", "Private"];
                    v.check(
                        SCOPE.contains(&scope.as_str()),
                        format!("{p}.scope"),
                        format!("unknown CAP scope {scope:?}; allowed: {}", SCOPE.join(", ")),
                    );
                    let set =
                        |o: &Option<String>| o.as_deref().is_some_and(|x| !x.trim().is_empty());
                    v.check(
                        scope != "Restricted" || set(restriction),
                        format!("{p}.restriction"),
                        "required when scope = \"Restricted\"",
                    );
                    v.check(
                        scope != "Private" || set(addresses),
                        format!("{p}.addresses"),
                        "required when scope = \"Private\"",
                    );
                    v.check(
                        scope != "Public" || (restriction.is_none() && addresses.is_none()),
                        format!("{p}.scope"),
                        "restriction and addresses apply only when scope is Restricted or Private",
                    );
                }
                SinkConfig::Geojson { dir, .. } => {
                    v.check(!dir.is_empty(), format!("{p}.dir"), "must not be empty");
                }
            }
        }
    }
}

impl AlertsConfig {
    /// Checks the files this section names, relative paths against `base_dir` (the config
    /// file's directory): each `https://` webhook's `ca_file` must be readable and hold at
    /// least one PEM certificate block. Problems are reported on the key
    /// (`alerts.sinks[N].ca_file`) and name the file. An empty `ca_file`, or one on an
    /// `http://` URL, is reported by [`AlertsConfig::validate`] instead.
    pub fn validate_files(&self, base_dir: &std::path::Path, v: &mut Validator) {
        for (i, s) in self.sinks.iter().enumerate() {
            if let SinkConfig::Mqtt { tls: Some(t), .. } = s {
                let key = |k: &str| format!("alerts.sinks[{i}].tls.{k}");
                if !t.ca_file.trim().is_empty() {
                    if let Err(msg) = check_pem_certificates(&base_dir.join(&t.ca_file)) {
                        v.error(key("ca_file"), msg);
                    }
                }
                if let Some(c) = &t.client_cert {
                    if let Err(msg) = check_pem_certificates(&base_dir.join(c)) {
                        v.error(key("client_cert"), msg);
                    }
                }
                if let Some(k) = &t.client_key {
                    if let Err(msg) = check_pem_private_key(&base_dir.join(k)) {
                        v.error(key("client_key"), msg);
                    }
                }
            }
            let SinkConfig::Webhook {
                url,
                ca_file: Some(f),
                ..
            } = s
            else {
                continue;
            };
            if f.trim().is_empty() || !url.value().starts_with("https://") {
                continue;
            }
            let path = base_dir.join(f.as_str());
            if let Err(msg) = check_pem_certificates(&path) {
                v.error(format!("alerts.sinks[{i}].ca_file"), msg);
            }
        }
    }

    /// A copy with relative webhook `ca_file` paths resolved against `base_dir` (the
    /// config file's directory).
    pub fn with_paths_resolved(&self, base_dir: &std::path::Path) -> AlertsConfig {
        let mut c = self.clone();
        let resolve = |f: &mut String| {
            if std::path::Path::new(f.as_str()).is_relative() {
                *f = base_dir.join(f.as_str()).display().to_string();
            }
        };
        for s in &mut c.sinks {
            if let SinkConfig::Mqtt { tls: Some(t), .. } = s {
                resolve(&mut t.ca_file);
                if let Some(f) = &mut t.client_cert {
                    resolve(f);
                }
                if let Some(f) = &mut t.client_key {
                    resolve(f);
                }
            }
            if let SinkConfig::Webhook {
                ca_file: Some(f), ..
            } = s
            {
                if std::path::Path::new(f.as_str()).is_relative() {
                    *f = base_dir.join(f.as_str()).display().to_string();
                }
            }
        }
        c
    }
}

fn validate_retry(v: &mut Validator, p: &str, r: &RetryConfig) {
    v.range(format!("{p}.retry.initial_s"), r.initial_s, 0.001, 3600.0);
    v.range(format!("{p}.retry.max_s"), r.max_s, 0.001, 86400.0);
    v.check(
        r.max_s >= r.initial_s,
        format!("{p}.retry.max_s"),
        "must be at least retry.initial_s",
    );
    v.range(format!("{p}.retry.max_rejected"), r.max_rejected, 1, 1000);
    v.range(
        format!("{p}.retry.max_attempts"),
        r.max_attempts,
        0,
        1_000_000,
    );
}

/// Checks that `path` is a readable PEM file with a private key block (`PRIVATE KEY`,
/// `RSA PRIVATE KEY` or `EC PRIVATE KEY`). The error names the file.
fn check_pem_private_key(path: &std::path::Path) -> Result<(), String> {
    let shown = path.display();
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{shown}: not found (a relative path resolves against the config file's directory)"
            ))
        }
        Err(e) => return Err(format!("{shown}: cannot read it: {e}")),
    };
    let ok = ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"]
        .iter()
        .any(|k| {
            text.contains(&format!("-----BEGIN {k}-----"))
                && text.contains(&format!("-----END {k}-----"))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{shown}: no PEM private key in it (\"-----BEGIN PRIVATE KEY-----\")"
        ))
    }
}

/// Checks that `path` is a readable PEM file with at least one well-formed
/// `CERTIFICATE` block; returns how many. The error names the file and says what is wrong.
/// (The blocks' DER content is parsed when the sink starts.)
fn check_pem_certificates(path: &std::path::Path) -> Result<usize, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let shown = path.display();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{shown}: not found (a relative path resolves against the config file's directory)"
            ))
        }
        Err(e) => return Err(format!("{shown}: cannot read it: {e}")),
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut rest: &str = &text;
    let mut n = 0;
    while let Some(i) = rest.find(BEGIN) {
        n += 1;
        let after = &rest[i + BEGIN.len()..];
        let Some(j) = after.find(END) else {
            return Err(format!(
                "{shown}: certificate #{n} has no \"{END}\" line (truncated PEM file?)"
            ));
        };
        let body: Vec<u8> = after[..j]
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let data = body.iter().take_while(|&&b| b != b'=').count();
        let base64 = !body.is_empty()
            && body.len().is_multiple_of(4)
            && body.len() - data <= 2
            && body[..data]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
            && body[data..].iter().all(|&b| b == b'=');
        if !base64 {
            return Err(format!(
                "{shown}: certificate #{n} is not valid PEM (its body is not base64)"
            ));
        }
        rest = &after[j + END.len()..];
    }
    if n == 0 {
        return Err(format!(
            "{shown}: no certificate in it (expected PEM \"{BEGIN}\" blocks with the site's CA certificate(s))"
        ));
    }
    Ok(n)
}

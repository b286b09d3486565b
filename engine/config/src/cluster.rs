//! `[cluster]`: one process (the default), or edge and hub nodes over NATS JetStream.
//!
//! ```toml
//! [cluster]
//! role = "edge"                      # "all" (default) | "edge" | "hub"; `lookout run --role`
//! nats = ["nats://10.0.0.5:4222"]
//! site = "rhodes"
//! node = "tower-box-3"               # default: the host name
//! lease_ttl_s = 10
//! heartbeat_s = 2
//!
//! [cluster.stream]
//! max_age_s = 86400
//! max_bytes = 1073741824
//! ```
//!
//! `all` is the single process: nothing here is used and no NATS server is needed.

use serde::{Deserialize, Serialize};

use crate::validate::Validator;

/// `[cluster]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// What this process runs. Default `all`.
    pub role: Role,
    /// NATS server URLs (`nats://host:port`), tried in turn. Needed by `edge` and `hub`.
    pub nats: Vec<String>,
    /// The site: one hub's province, park or region. Part of every subject and stream name.
    pub site: String,
    /// This node's name, unique in the site (camera leases are held in its name). Empty
    /// (default): the host name.
    pub node: String,
    /// Seconds a camera lease lives without a heartbeat; a node that dies loses its cameras
    /// to the others after this long.
    pub lease_ttl_s: f64,
    /// Seconds between a node's lease heartbeats; less than half of `lease_ttl_s`.
    pub heartbeat_s: f64,
    /// Seconds to wait for one connection attempt to NATS; attempts repeat with backoff.
    pub connect_timeout_s: f64,
    /// The site's JetStream stream.
    pub stream: StreamConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            role: Role::All,
            nats: vec!["nats://127.0.0.1:4222".into()],
            site: "site".into(),
            node: String::new(),
            lease_ttl_s: 10.0,
            heartbeat_s: 2.0,
            connect_timeout_s: 5.0,
            stream: StreamConfig::default(),
        }
    }
}

/// `cluster.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything in one process (ingest, inference, rules, fusion, alerts, server).
    #[default]
    All,
    /// Ingest, inference and rules for the cameras this node holds; events go to NATS.
    Edge,
    /// Fusion, alerts and the server, fed from NATS.
    Hub,
}

impl Role {
    /// Lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Edge => "edge",
            Role::Hub => "hub",
        }
    }

    /// Parses `all`, `edge` or `hub` (the `--role` flag).
    pub fn parse(s: &str) -> Result<Role, String> {
        match s {
            "all" => Ok(Role::All),
            "edge" => Ok(Role::Edge),
            "hub" => Ok(Role::Hub),
            _ => Err(format!("{s:?} is not a role: use all, edge or hub")),
        }
    }
}

/// `[cluster.stream]`: limits of the site's JetStream stream (what a hub can replay).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Oldest message kept, seconds. Default one day. A hub that restarts rebuilds fusion's
    /// state from what the stream still holds, so this should exceed an incident's life.
    pub max_age_s: f64,
    /// Most bytes kept (oldest dropped first). Default 1 GiB.
    pub max_bytes: i64,
    /// Most messages kept (oldest dropped first). Default 10 million.
    pub max_msgs: i64,
    /// Seconds within which a republished message (same `Nats-Msg-Id`) is dropped by the
    /// server. Default 120.
    pub duplicate_window_s: f64,
    /// Stream replicas (1, or 3 on a three-server NATS cluster).
    pub replicas: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_age_s: 86_400.0,
            max_bytes: 1 << 30,
            max_msgs: 10_000_000,
            duplicate_window_s: 120.0,
            replicas: 1,
        }
    }
}

/// Whether `s` can be one token of a NATS subject and part of a stream name.
fn token_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl ClusterConfig {
    /// Checks values.
    pub fn validate(&self, v: &mut Validator) {
        v.check(
            token_ok(&self.site),
            "cluster.site",
            format!(
                "{:?} is not a valid site name: use 1-64 letters, digits, '-' or '_'",
                self.site
            ),
        );
        v.check(
            self.node.is_empty() || token_ok(&self.node),
            "cluster.node",
            format!(
                "{:?} is not a valid node name: use 1-64 letters, digits, '-' or '_' (or leave it out for the host name)",
                self.node
            ),
        );
        if self.role != Role::All {
            v.check(
                !self.nats.is_empty(),
                "cluster.nats",
                format!(
                    "role {:?} needs at least one NATS server URL, e.g. [\"nats://127.0.0.1:4222\"]",
                    self.role.as_str()
                ),
            );
        }
        for (i, u) in self.nats.iter().enumerate() {
            let ok = ["nats://", "tls://"].iter().any(|p| {
                u.strip_prefix(p)
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
            });
            v.check(
                ok,
                format!("cluster.nats[{i}]"),
                format!("{u:?} is not a NATS URL: write nats://host:port or tls://host:port"),
            );
        }
        v.range("cluster.lease_ttl_s", self.lease_ttl_s, 1.0, 3600.0);
        v.range("cluster.heartbeat_s", self.heartbeat_s, 0.1, 1800.0);
        v.check(
            self.heartbeat_s * 2.0 <= self.lease_ttl_s,
            "cluster.heartbeat_s",
            format!(
                "must be at most half of cluster.lease_ttl_s ({}), so one missed heartbeat does not lose a lease",
                self.lease_ttl_s
            ),
        );
        v.range(
            "cluster.connect_timeout_s",
            self.connect_timeout_s,
            0.1,
            600.0,
        );
        let s = &self.stream;
        v.range("cluster.stream.max_age_s", s.max_age_s, 60.0, 3.2e7);
        v.range("cluster.stream.max_bytes", s.max_bytes, 1 << 20, 1 << 50);
        v.range("cluster.stream.max_msgs", s.max_msgs, 1000, 1 << 40);
        v.range(
            "cluster.stream.duplicate_window_s",
            s.duplicate_window_s,
            1.0,
            86_400.0,
        );
        v.check(
            matches!(s.replicas, 1 | 3 | 5),
            "cluster.stream.replicas",
            "must be 1, 3 or 5",
        );
        v.check(
            s.duplicate_window_s <= s.max_age_s,
            "cluster.stream.duplicate_window_s",
            "must not exceed cluster.stream.max_age_s",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse() {
        assert_eq!(Role::parse("edge"), Ok(Role::Edge));
        assert_eq!(Role::parse("hub"), Ok(Role::Hub));
        assert_eq!(Role::parse("all"), Ok(Role::All));
        assert!(Role::parse("Edge").is_err());
    }

    #[test]
    fn default_is_valid_and_single_process() {
        let c = ClusterConfig::default();
        assert_eq!(c.role, Role::All);
        let mut v = Validator::new();
        c.validate(&mut v);
        assert!(v.is_ok(), "{:?}", v.problems());
    }
}

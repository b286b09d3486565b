//! `[server]`: the HTTP API, live updates and the operator web UI.
//!
//! ```toml
//! [server]
//! bind = "127.0.0.1"
//! port = 8080
//!
//! [[server.users]]
//! name = "duty-officer"
//! role = "operator"
//! token = "${LOOKOUT_OPERATOR_TOKEN}"
//! ```

use serde::{Deserialize, Serialize};

use crate::env::Secret;
use crate::validate::{ValidationContext, Validator};

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Serve the API and UI. Default true.
    pub enabled: bool,
    /// Address to bind. Default `127.0.0.1` (this machine only); use `0.0.0.0` only behind
    /// a firewall or reverse proxy.
    pub bind: String,
    /// TCP port. Default 8080; 0 picks a free port (tests).
    pub port: u16,
    /// Named users. Reading needs no token; every write (incident transitions, comments,
    /// config changes) needs `Authorization: Bearer <token>` of a user whose role allows it,
    /// and records that user's name.
    pub users: Vec<UserConfig>,
    /// Largest accepted request body in bytes. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Days of recorded frame results the tuning replay looks back over. Default 7.
    pub tuning_window_days: f64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            enabled: true,
            bind: "127.0.0.1".into(),
            port: 8080,
            users: Vec::new(),
            max_body_bytes: 1 << 20,
            tuning_window_days: 7.0,
        }
    }
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read everything (no token needed for reads).
    Viewer,
    /// Also drive incidents: acknowledge, confirm, false alarm, close, reopen, comment.
    Operator,
    /// Also change thresholds and zones.
    Admin,
}

impl Role {
    /// Lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// `[[server.users]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Name recorded with every change this user makes.
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: Role,
    /// Bearer token; write it as `${ENV_NAME}` so it never sits in the file. Never shown.
    pub token: Secret,
}

impl ServerConfig {
    /// Checks values and cross-references.
    pub fn validate(&self, v: &mut Validator, _ctx: &ValidationContext<'_>) {
        v.check(
            self.bind.parse::<std::net::IpAddr>().is_ok(),
            "server.bind",
            "must be an IP address such as 127.0.0.1 or 0.0.0.0",
        );
        v.range("server.max_body_bytes", self.max_body_bytes, 1024, 64 << 20);
        v.range(
            "server.tuning_window_days",
            self.tuning_window_days,
            0.01,
            365.0,
        );
        let mut names = std::collections::BTreeMap::new();
        let mut tokens = std::collections::BTreeMap::new();
        for (i, u) in self.users.iter().enumerate() {
            let p = format!("server.users[{i}]");
            v.check(
                !u.name.trim().is_empty(),
                format!("{p}.name"),
                "must not be empty",
            );
            if let Some(prev) = names.insert(u.name.clone(), i) {
                v.error(
                    format!("{p}.name"),
                    format!(
                        "user {:?} is already defined by server.users[{prev}]",
                        u.name
                    ),
                );
            }
            v.check(
                u.token.expose().len() >= 16,
                format!("{p}.token"),
                "must be at least 16 characters (write token = \"${LOOKOUT_..._TOKEN}\")",
            );
            if let Some(prev) = tokens.insert(u.token.expose().to_string(), i) {
                v.error(
                    format!("{p}.token"),
                    format!("the same token is already used by server.users[{prev}]"),
                );
            }
        }
    }
}

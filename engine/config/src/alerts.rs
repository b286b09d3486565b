//! `[alerts]`.

use serde::{Deserialize, Serialize};

use crate::validate::{ValidationContext, Validator};

/// `[alerts]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {}

impl AlertsConfig {
    /// Checks values and cross-references.
    pub fn validate(&self, _v: &mut Validator, _ctx: &ValidationContext<'_>) {}
}

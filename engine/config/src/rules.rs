//! `[rules]`.

use serde::{Deserialize, Serialize};

use crate::validate::{ValidationContext, Validator};

/// `[rules]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {}

impl RulesConfig {
    /// Checks values and cross-references.
    pub fn validate(&self, _v: &mut Validator, _ctx: &ValidationContext<'_>) {}
}

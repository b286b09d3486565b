//! `[fusion]`.

use serde::{Deserialize, Serialize};

use crate::validate::{ValidationContext, Validator};

/// `[fusion]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FusionConfig {}

impl FusionConfig {
    /// Checks values and cross-references.
    pub fn validate(&self, _v: &mut Validator, _ctx: &ValidationContext<'_>) {}
}

//! Limits per provider and per model, as a configuration file states them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::presets::Plan;
use crate::{LimitError, LimitSpec, Margin};

/// Which limits apply to which provider and model. Serialized as TOML (or any serde format):
///
/// ```toml
/// # applies to every key nothing more specific matches
/// default = "30/1m,300/1h,3000/1d"
/// # the safety margin added to every window (default 20ms+0.1%)
/// margin = "20ms+0.1%"
///
/// [providers.github]
/// plan = "pro"                 # the Copilot plan whose GitHub Models quota applies
/// limits = "15/1m,150/1d,concurrency=5"
///
/// [providers.github.models]
/// "openai/gpt-4.1" = "10/1m,50/1d,concurrency=2"
///
/// [providers.openai]
/// limits = "500/1m,tpm=30000"
/// ```
///
/// A key's limits are the first found of: its model's entry, its provider's `limits`, `default`, and none.
/// For GitHub Models the caller knows each model's tier from the catalog and sets the tier's limits on the
/// [`Limiter`](crate::Limiter) directly (with [`presets::github`](crate::presets::github) and the `plan` here);
/// those take precedence over the file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Limits for keys that nothing more specific matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<LimitSpec>,
    /// The margin for every spec that sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<Margin>,
    /// Per provider (`github`, `azure`, `openai`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<String, ProviderLimits>,
}

/// The limits of one provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderLimits {
    /// For GitHub Models, the plan whose quota applies (default free).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// Limits for every model of the provider without its own entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitSpec>,
    /// Limits per model id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, LimitSpec>,
}

impl LimitsConfig {
    /// The same limits for every key (what `--limits SPEC` means).
    pub fn uniform(spec: LimitSpec) -> Self {
        Self { default: Some(spec), ..Self::default() }
    }

    /// Reads a TOML document.
    pub fn from_toml(text: &str) -> Result<Self, LimitError> {
        toml::from_str(text).map_err(|e| LimitError::InvalidConfig(Box::new(e)))
    }

    /// Writes the configuration as TOML.
    pub fn to_toml(&self) -> Result<String, LimitError> {
        toml::to_string(self).map_err(|e| LimitError::InvalidConfig(Box::new(e)))
    }

    /// The limits for a provider and model; see the type docs for the order.
    pub fn spec_for(&self, provider: &str, model: &str) -> LimitSpec {
        let p = self.providers.get(provider);
        let mut spec = p
            .and_then(|p| p.models.get(model).or(p.limits.as_ref()))
            .or(self.default.as_ref())
            .cloned()
            .unwrap_or_default();
        if spec.margin.is_none() {
            spec.margin = self.margin;
        }
        spec
    }

    /// The GitHub plan configured for a provider (default free).
    pub fn plan_for(&self, provider: &str) -> Plan {
        self.providers.get(provider).and_then(|p| p.plan).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
default = "30/1m,300/1h,3000/1d"
margin = "10ms"

[providers.github]
plan = "pro"
limits = "15/1m,150/1d,concurrency=5"

[providers.github.models]
"openai/gpt-4.1" = "10/1m,50/1d,concurrency=2"

[providers.openai]
limits = "500/1m,tpm=30000,margin=0s"
"#;

    #[test]
    fn resolution_order() {
        let c = LimitsConfig::from_toml(FILE).unwrap();
        assert_eq!(c.spec_for("github", "openai/gpt-4.1").to_string(), "10/1m,50/1d,concurrency=2,margin=10ms");
        assert_eq!(c.spec_for("github", "openai/gpt-4o").to_string(), "15/1m,150/1d,concurrency=5,margin=10ms");
        assert_eq!(c.spec_for("openai", "gpt-4o").to_string(), "500/1m,tpm=30000,margin=0s");
        assert_eq!(c.spec_for("azure", "x").to_string(), "30/1m,300/1h,3000/1d,margin=10ms");
        assert_eq!(c.plan_for("github"), Plan::Pro);
        assert_eq!(c.plan_for("azure"), Plan::Free);
        assert!(LimitsConfig::default().spec_for("a", "b").is_unlimited());
    }

    #[test]
    fn round_trips_through_toml() {
        let c = LimitsConfig::from_toml(FILE).unwrap();
        assert_eq!(LimitsConfig::from_toml(&c.to_toml().unwrap()).unwrap(), c);
    }

    #[test]
    fn bad_files_name_the_problem() {
        let e = LimitsConfig::from_toml("default = \"15/1x\"").unwrap_err().to_string();
        assert!(e.contains("`x` is not a unit"), "{e}");
        let e = LimitsConfig::from_toml("[providers.github]\nplan = \"gold\"").unwrap_err().to_string();
        assert!(e.contains("gold"), "{e}");
        let e = LimitsConfig::from_toml("defaults = \"1/1s\"").unwrap_err().to_string();
        assert!(e.contains("defaults"), "{e}");
    }
}

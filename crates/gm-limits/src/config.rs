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
    /// Whether `default` applies to every key, before any preset (set by [`LimitsConfig::uniform`]).
    #[serde(skip)]
    pub uniform: bool,
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
        Self { default: Some(spec), uniform: true, ..Self::default() }
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

    /// The limits for a GitHub Models model whose catalog entry gives `rate_limit_tier`: the model's entry,
    /// else the provider's `limits`, else the tier's preset on the configured plan
    /// ([`presets::github_for_model`](crate::presets::github_for_model)). A configuration made with
    /// [`LimitsConfig::uniform`] (the `--limits` flag) applies its limits to every model instead.
    pub fn spec_for_github_model(
        &self,
        provider: &str,
        model: &str,
        rate_limit_tier: Option<&str>,
    ) -> Result<LimitSpec, LimitError> {
        let p = self.providers.get(provider);
        if self.uniform {
            return Ok(self.spec_for(provider, model));
        }
        if p.is_some_and(|p| p.models.contains_key(model) || p.limits.is_some()) {
            return Ok(self.spec_for(provider, model));
        }
        let mut spec = crate::presets::github_for_model(rate_limit_tier, model, self.plan_for(provider))?;
        spec.margin = self.margin;
        Ok(spec)
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
    fn github_models_get_their_tier_unless_configured() {
        let c = LimitsConfig::from_toml("[providers.github]\nplan = \"enterprise\"").unwrap();
        let spec = c.spec_for_github_model("github", "openai/gpt-4.1", Some("high")).unwrap();
        assert_eq!(spec.to_string(), "15/1m,150/1d,concurrency=4,tokens_in=16000,tokens_out=8000");
        let c = LimitsConfig::from_toml(FILE).unwrap();
        let spec = c.spec_for_github_model("github", "openai/gpt-4o", Some("low")).unwrap();
        assert_eq!(spec.to_string(), "15/1m,150/1d,concurrency=5,margin=10ms");
        let c = LimitsConfig::from_toml("default = \"1/1s\"").unwrap();
        assert_eq!(c.spec_for_github_model("github", "openai/gpt-4o", Some("low")).unwrap().windows.len(), 2);
        let c = LimitsConfig::uniform(LimitSpec::parse("1/1s").unwrap());
        assert_eq!(c.spec_for_github_model("github", "openai/gpt-5", Some("custom")).unwrap().to_string(), "1/1s");
        let e = LimitsConfig::default().spec_for_github_model("github", "openai/gpt-5", Some("custom")).unwrap_err();
        assert!(e.to_string().contains("free plan"), "{e}");
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

//! Model prices, for the cost and cost-efficiency figures of a run.
//!
//! The built-in table holds OpenAI's published list prices per million tokens (as of 2025) for the models
//! GitHub Models and Azure served under the same names. Prices change and deployments differ, so a table of
//! your own (TOML, `--prices FILE`) replaces or extends it:
//!
//! ```toml
//! [models]
//! "openai/gpt-4.1-mini" = { input = 0.40, output = 1.60 }
//! "my-azure-deployment" = { input = 2.50, output = 10.00 }
//! ```
//!
//! ```
//! use gm_eval::prices::PriceTable;
//! let t = PriceTable::builtin();
//! let p = t.price_for("openai/gpt-4o-mini").unwrap();
//! assert_eq!(p.input_per_million, 0.15);
//! assert_eq!(t.price_for("gpt-4o-mini"), Some(p));
//! assert!(t.price_for("llama3.2").is_none());
//! ```

use std::collections::BTreeMap;

use gm_core::metrics::Price;
use gm_core::ProviderKind;
use serde::Deserialize;

/// Prices by model id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    models: BTreeMap<String, Price>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceEntry {
    input: f64,
    output: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default)]
    models: BTreeMap<String, PriceEntry>,
}

/// OpenAI's list prices in US dollars per million tokens (input, output), 2025.
const BUILTIN: &[(&str, f64, f64)] = &[
    ("openai/gpt-4o", 2.50, 10.00),
    ("openai/gpt-4o-mini", 0.15, 0.60),
    ("openai/gpt-4.1", 2.00, 8.00),
    ("openai/gpt-4.1-mini", 0.40, 1.60),
    ("openai/gpt-4.1-nano", 0.10, 0.40),
    ("openai/o1", 15.00, 60.00),
    ("openai/o3-mini", 1.10, 4.40),
    ("openai/o4-mini", 1.10, 4.40),
    ("openai/text-embedding-3-small", 0.02, 0.0),
    ("openai/text-embedding-3-large", 0.13, 0.0),
];

impl PriceTable {
    /// The built-in table.
    pub fn builtin() -> Self {
        let models = BUILTIN
            .iter()
            .map(|(id, i, o)| (id.to_string(), Price { input_per_million: *i, output_per_million: *o }))
            .collect();
        Self { models }
    }

    /// Adds (or replaces) prices from a TOML document (`[models]` with `"id" = { input = …, output = … }`).
    pub fn extend_from_toml(&mut self, text: &str) -> Result<(), String> {
        let file: PriceFile = toml::from_str(text)
            .map_err(|e| format!("{e}; write `\"model\" = {{ input = 0.4, output = 1.6 }}` under [models]"))?;
        for (id, e) in file.models {
            self.set(&id, e.input, e.output)?;
        }
        Ok(())
    }

    /// Adds or replaces the price of `id`, in US dollars per million input and output tokens.
    pub fn set(&mut self, id: &str, input: f64, output: f64) -> Result<(), String> {
        if !(input.is_finite() && output.is_finite() && input >= 0.0 && output >= 0.0) {
            return Err(format!("the price of `{id}` must be two non-negative numbers"));
        }
        self.models.insert(id.to_lowercase(), Price { input_per_million: input, output_per_million: output });
        Ok(())
    }

    /// The price of a model: by its id, or by its name without the publisher (`gpt-4o-mini`).
    pub fn price_for(&self, model: &str) -> Option<Price> {
        let m = model.trim().to_lowercase();
        if let Some(p) = self.models.get(&m) {
            return Some(*p);
        }
        let name = m.rsplit('/').next().unwrap_or(&m);
        self.models.iter().find(|(id, _)| id.rsplit('/').next() == Some(name)).map(|(_, p)| *p)
    }

    /// The price of `model`'s answers from `provider`: none from the demo provider, which asks no model (its
    /// answers are computed offline, whatever model they are named after), so a demo run has no cost.
    pub fn price_from(&self, provider: ProviderKind, model: &str) -> Option<Price> {
        if provider == ProviderKind::Demo {
            return None;
        }
        self.price_for(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_extends_and_errors_name_the_fix() {
        let mut t = PriceTable::builtin();
        t.extend_from_toml("[models]\n\"My-Deployment\" = { input = 1.0, output = 2.0 }\n").unwrap();
        assert_eq!(t.price_for("my-deployment").unwrap().output_per_million, 2.0);
        assert!(t
            .extend_from_toml("[models]\nx = { input = -1.0, output = 2.0 }\n")
            .unwrap_err()
            .contains("non-negative"));
        assert!(t.extend_from_toml("models = 3").unwrap_err().contains("[models]"));
    }

    #[test]
    fn the_demo_provider_has_no_price() {
        let t = PriceTable::builtin();
        assert!(t.price_from(ProviderKind::Demo, "openai/gpt-4.1").is_none());
        assert_eq!(t.price_from(ProviderKind::OpenAi, "openai/gpt-4.1"), t.price_for("openai/gpt-4.1"));
    }
}

//! Ready-made limits: GitHub Models' tiers by plan, and the original integration's 30/min, 300/h, 3000/day.
//!
//! The GitHub numbers are those GitHub documented for the free (Copilot-plan) usage of GitHub Models
//! ("Prototyping with AI models", rate limits table): requests per minute, requests per day, tokens per request
//! (input, output) and concurrent requests, per user and per model. GitHub noted they were "subject to change
//! without notice"; a 429 from the server still teaches the limiter (see [`Limiter::observe`](crate::Limiter::observe)).
//!
//! ```
//! use gm_limits::presets::{self, Plan, Tier};
//! let spec = presets::github(Tier::High, Plan::Free).unwrap();
//! assert_eq!(spec.to_string(), "10/1m,50/1d,concurrency=2,tokens_in=8000,tokens_out=4000");
//! let tier = Tier::from_catalog("custom", "openai/gpt-5-mini").unwrap();
//! assert!(presets::github(tier, Plan::Free).is_err()); // not offered on the free plan
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{LimitError, LimitSpec, Window};

/// A Copilot plan, which sets the GitHub Models quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// Copilot Free (the default).
    #[default]
    Free,
    /// Copilot Pro.
    Pro,
    /// Copilot Business.
    Business,
    /// Copilot Enterprise.
    Enterprise,
}

impl Plan {
    /// Every plan, cheapest first.
    pub const ALL: [Plan; 4] = [Plan::Free, Plan::Pro, Plan::Business, Plan::Enterprise];

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Business => "business",
            Plan::Enterprise => "enterprise",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Plan {
    type Err = LimitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "free" => Ok(Plan::Free),
            "pro" | "pro+" | "pro-plus" => Ok(Plan::Pro),
            "business" => Ok(Plan::Business),
            "enterprise" => Ok(Plan::Enterprise),
            _ => Err(LimitError::UnknownPlan(s.to_string())),
        }
    }
}

/// A row of GitHub's rate-limit table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Tier {
    /// Catalog tier `low`.
    Low,
    /// Catalog tier `high`.
    High,
    /// Catalog tier `embeddings`.
    Embeddings,
    /// Azure OpenAI o1-preview.
    O1Preview,
    /// Azure OpenAI o1, o3 and gpt-5.
    Reasoning,
    /// Azure OpenAI o1-mini, o3-mini, o4-mini, gpt-5-mini, gpt-5-nano and gpt-5-chat.
    ReasoningMini,
    /// DeepSeek-R1, DeepSeek-R1-0528 and MAI-DS-R1.
    DeepSeekR1,
    /// xAI Grok-3.
    Grok3,
    /// xAI Grok-3-Mini.
    Grok3Mini,
}

impl Tier {
    /// Every tier, in the order of GitHub's table.
    pub const ALL: [Tier; 9] = [
        Tier::Low,
        Tier::High,
        Tier::Embeddings,
        Tier::O1Preview,
        Tier::Reasoning,
        Tier::ReasoningMini,
        Tier::DeepSeekR1,
        Tier::Grok3,
        Tier::Grok3Mini,
    ];

    /// A short name (`low`, `high`, `embeddings`, `o1-preview`, `reasoning`, `reasoning-mini`, `deepseek-r1`,
    /// `grok-3`, `grok-3-mini`).
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Low => "low",
            Tier::High => "high",
            Tier::Embeddings => "embeddings",
            Tier::O1Preview => "o1-preview",
            Tier::Reasoning => "reasoning",
            Tier::ReasoningMini => "reasoning-mini",
            Tier::DeepSeekR1 => "deepseek-r1",
            Tier::Grok3 => "grok-3",
            Tier::Grok3Mini => "grok-3-mini",
        }
    }

    /// The tier of a model from its catalog entry: `rate_limit_tier` (`low`, `high`, `embeddings`, `custom`)
    /// and, for `custom`, the model id (`openai/o3`, `deepseek/deepseek-r1`, `xai/grok-3-mini`, …).
    ///
    /// GitHub did not document how `custom` maps to the per-model rows; this follows the model names in
    /// the table. A `custom` model not named there gets [`Tier::DeepSeekR1`], the strictest row offered on
    /// every plan (1 a minute, 8 a day, one at a time), so an unknown model never earns a 429 from our side.
    pub fn from_catalog(rate_limit_tier: &str, model: &str) -> Result<Tier, LimitError> {
        match rate_limit_tier.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Tier::Low),
            "high" => Ok(Tier::High),
            "embeddings" | "embedding" => Ok(Tier::Embeddings),
            "custom" | "" => Ok(Self::for_custom_model(model)),
            other => other.parse(),
        }
    }

    fn for_custom_model(model: &str) -> Tier {
        let lower = model.to_ascii_lowercase();
        let name = lower.rsplit('/').next().unwrap_or(&lower);
        match name {
            "o1-preview" => Tier::O1Preview,
            "o1" | "o3" | "gpt-5" => Tier::Reasoning,
            "o1-mini" | "o3-mini" | "o4-mini" | "gpt-5-mini" | "gpt-5-nano" | "gpt-5-chat" => Tier::ReasoningMini,
            "deepseek-r1" | "deepseek-r1-0528" | "mai-ds-r1" => Tier::DeepSeekR1,
            "grok-3" => Tier::Grok3,
            "grok-3-mini" => Tier::Grok3Mini,
            _ => Tier::DeepSeekR1,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = LimitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == lower || (lower == "embedding" && *t == Tier::Embeddings))
            .ok_or_else(|| LimitError::UnknownTier(s.to_string()))
    }
}

/// One row of the table for one plan: `None` where the plan does not offer the tier.
#[derive(Clone, Copy)]
struct Row {
    rpm: [Option<u64>; 4],
    rpd: [Option<u64>; 4],
    tokens_in: [Option<u64>; 4],
    tokens_out: [Option<u64>; 4],
    concurrency: [Option<u32>; 4],
}

const fn all<T: Copy>(v: T) -> [Option<T>; 4] {
    [Some(v), Some(v), Some(v), Some(v)]
}

const fn paid<T: Copy>(pro: T, business: T, enterprise: T) -> [Option<T>; 4] {
    [None, Some(pro), Some(business), Some(enterprise)]
}

const fn each<T: Copy>(free: T, pro: T, business: T, enterprise: T) -> [Option<T>; 4] {
    [Some(free), Some(pro), Some(business), Some(enterprise)]
}

fn row(tier: Tier) -> Row {
    match tier {
        Tier::Low => Row {
            rpm: each(15, 15, 15, 20),
            rpd: each(150, 150, 300, 450),
            tokens_in: all(8000),
            tokens_out: each(4000, 4000, 4000, 8000),
            concurrency: each(5, 5, 5, 8),
        },
        Tier::High => Row {
            rpm: each(10, 10, 10, 15),
            rpd: each(50, 50, 100, 150),
            tokens_in: each(8000, 8000, 8000, 16000),
            tokens_out: each(4000, 4000, 4000, 8000),
            concurrency: each(2, 2, 2, 4),
        },
        Tier::Embeddings => Row {
            rpm: each(15, 15, 15, 20),
            rpd: each(150, 150, 300, 450),
            tokens_in: all(64000),
            tokens_out: [None; 4],
            concurrency: each(5, 5, 5, 8),
        },
        Tier::O1Preview | Tier::Reasoning => Row {
            rpm: paid(1, 2, 2),
            rpd: paid(8, 10, 12),
            tokens_in: paid(4000, 4000, 4000),
            tokens_out: paid(4000, 4000, 8000),
            concurrency: paid(1, 1, 1),
        },
        Tier::ReasoningMini => Row {
            rpm: paid(2, 3, 3),
            rpd: paid(12, 15, 20),
            tokens_in: paid(4000, 4000, 4000),
            tokens_out: paid(4000, 4000, 4000),
            concurrency: paid(1, 1, 1),
        },
        Tier::DeepSeekR1 => Row {
            rpm: each(1, 1, 2, 2),
            rpd: each(8, 8, 10, 12),
            tokens_in: all(4000),
            tokens_out: all(4000),
            concurrency: all(1),
        },
        Tier::Grok3 => Row {
            rpm: each(1, 1, 2, 2),
            rpd: each(15, 15, 20, 30),
            tokens_in: all(4000),
            tokens_out: each(4000, 4000, 8000, 16000),
            concurrency: all(1),
        },
        Tier::Grok3Mini => Row {
            rpm: each(2, 2, 3, 3),
            rpd: each(30, 30, 40, 50),
            tokens_in: all(4000),
            tokens_out: each(8000, 8000, 12000, 12000),
            concurrency: all(1),
        },
    }
}

/// GitHub Models' limits for a tier on a plan: requests per minute and per day, tokens per request and
/// concurrent requests. Fails when the plan does not offer the tier (o1, o3 and gpt-5 on the free plan).
pub fn github(tier: Tier, plan: Plan) -> Result<LimitSpec, LimitError> {
    let r = row(tier);
    let i = plan.index();
    let (Some(rpm), Some(rpd)) = (r.rpm[i], r.rpd[i]) else {
        return Err(LimitError::NotOnPlan { tier: tier.to_string(), plan: plan.to_string() });
    };
    Ok(LimitSpec {
        windows: vec![Window::per_minute(rpm), Window::per_day(rpd)],
        concurrency: r.concurrency[i],
        tokens_in: r.tokens_in[i],
        tokens_out: r.tokens_out[i],
        token_windows: Vec::new(),
        margin: None,
    })
}

/// GitHub Models' limits for a model, from its catalog `rate_limit_tier` (absent means `custom`) and its id.
pub fn github_for_model(rate_limit_tier: Option<&str>, model: &str, plan: Plan) -> Result<LimitSpec, LimitError> {
    github(Tier::from_catalog(rate_limit_tier.unwrap_or("custom"), model)?, plan)
}

/// The original integration's limits: 30 requests a minute, 300 an hour, 3000 a day.
pub fn original() -> LimitSpec {
    LimitSpec {
        windows: vec![Window::per_minute(30), Window::per_hour(300), Window::per_day(3000)],
        ..LimitSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(tier: Tier, plan: Plan) -> String {
        github(tier, plan).map(|s| s.to_string()).unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn the_table() {
        use Plan::*;
        use Tier::*;
        assert_eq!(s(Low, Free), "15/1m,150/1d,concurrency=5,tokens_in=8000,tokens_out=4000");
        assert_eq!(s(Low, Business), "15/1m,300/1d,concurrency=5,tokens_in=8000,tokens_out=4000");
        assert_eq!(s(Low, Enterprise), "20/1m,450/1d,concurrency=8,tokens_in=8000,tokens_out=8000");
        assert_eq!(s(High, Free), "10/1m,50/1d,concurrency=2,tokens_in=8000,tokens_out=4000");
        assert_eq!(s(High, Enterprise), "15/1m,150/1d,concurrency=4,tokens_in=16000,tokens_out=8000");
        assert_eq!(s(Embeddings, Pro), "15/1m,150/1d,concurrency=5,tokens_in=64000");
        assert_eq!(s(Reasoning, Pro), "1/1m,8/1d,concurrency=1,tokens_in=4000,tokens_out=4000");
        assert_eq!(s(Reasoning, Enterprise), "2/1m,12/1d,concurrency=1,tokens_in=4000,tokens_out=8000");
        assert_eq!(s(ReasoningMini, Business), "3/1m,15/1d,concurrency=1,tokens_in=4000,tokens_out=4000");
        assert_eq!(s(DeepSeekR1, Free), "1/1m,8/1d,concurrency=1,tokens_in=4000,tokens_out=4000");
        assert_eq!(s(Grok3, Enterprise), "2/1m,30/1d,concurrency=1,tokens_in=4000,tokens_out=16000");
        assert_eq!(s(Grok3Mini, Free), "2/1m,30/1d,concurrency=1,tokens_in=4000,tokens_out=8000");
        for t in [O1Preview, Reasoning, ReasoningMini] {
            let e = s(t, Free);
            assert!(e.contains("not available on the free plan") && e.contains("--plan pro"), "{e}");
        }
    }

    #[test]
    fn every_offered_row_is_complete() {
        for t in Tier::ALL {
            for p in Plan::ALL {
                if let Ok(spec) = github(t, p) {
                    assert_eq!(spec.windows.len(), 2, "{t} {p}");
                    assert!(spec.concurrency.is_some() && spec.tokens_in.is_some(), "{t} {p}");
                    assert_eq!(LimitSpec::parse(&spec.to_string()).unwrap(), spec);
                }
            }
        }
    }

    #[test]
    fn tiers_from_the_catalog() {
        let t = |tier: &str, model: &str| Tier::from_catalog(tier, model).unwrap();
        assert_eq!(t("low", "openai/gpt-4.1-mini"), Tier::Low);
        assert_eq!(t("High", "openai/gpt-4.1"), Tier::High);
        assert_eq!(t("embeddings", "openai/text-embedding-3-small"), Tier::Embeddings);
        assert_eq!(t("custom", "openai/gpt-5"), Tier::Reasoning);
        assert_eq!(t("custom", "openai/gpt-5-mini"), Tier::ReasoningMini);
        assert_eq!(t("custom", "openai/o1-preview"), Tier::O1Preview);
        assert_eq!(t("custom", "deepseek/DeepSeek-R1-0528"), Tier::DeepSeekR1);
        assert_eq!(t("custom", "xai/grok-3-mini"), Tier::Grok3Mini);
        assert_eq!(t("custom", "someone/new-model"), Tier::DeepSeekR1);
        let e = Tier::from_catalog("gigantic", "x").unwrap_err().to_string();
        assert!(e.contains("unknown rate-limit tier `gigantic`") && e.contains("low, high"), "{e}");
        assert_eq!(
            github_for_model(Some("low"), "openai/gpt-4o", Plan::Free).unwrap(),
            github(Tier::Low, Plan::Free).unwrap()
        );
    }

    #[test]
    fn plans_parse() {
        assert_eq!("Enterprise".parse::<Plan>().unwrap(), Plan::Enterprise);
        assert_eq!(Plan::default(), Plan::Free);
        let e = "gold".parse::<Plan>().unwrap_err().to_string();
        assert!(e.contains("use free, pro, business or enterprise"), "{e}");
    }

    #[test]
    fn the_original_integration() {
        assert_eq!(original().to_string(), "30/1m,300/1h,3000/1d");
    }
}

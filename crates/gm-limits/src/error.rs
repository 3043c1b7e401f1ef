//! The one error type of this crate.

use std::time::Duration;

use crate::duration::human;
use crate::WaitReason;

/// Everything that can go wrong in gm-limits, grouped by phase: configuration (bad specs, unknown tiers),
/// refused before sending (a request that can never fit), and out of patience (the quota frees too late).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    // --- configuration ---
    /// A duration that [`parse_duration`](crate::parse_duration) cannot read.
    #[error("invalid duration `{input}`: {why}; write a number and a unit, e.g. 500ms, 2s, 1m, 1h or 1d")]
    InvalidDuration {
        /// What was given.
        input: String,
        /// What is wrong with it.
        why: String,
    },
    /// A part of a `--limits` spec that [`LimitSpec::parse`](crate::LimitSpec::parse) cannot read.
    #[error("invalid limit `{part}` in `{spec}`: {why}; {fix}")]
    InvalidSpec {
        /// The whole spec.
        spec: String,
        /// The comma-separated part that is wrong.
        part: String,
        /// What is wrong with it.
        why: String,
        /// How to write it instead.
        fix: String,
    },
    /// A rate-limit tier name that is not known.
    #[error("unknown rate-limit tier `{0}`; use low, high, embeddings or custom (with the model name)")]
    UnknownTier(String),
    /// A plan name that is not known.
    #[error("unknown plan `{0}`; use free, pro, business or enterprise")]
    UnknownPlan(String),
    /// The model's tier is not offered on the plan at all.
    #[error("{tier} models are not available on the {plan} plan; use --plan pro or higher, or another model")]
    NotOnPlan {
        /// The tier's name.
        tier: String,
        /// The plan's name.
        plan: String,
    },
    /// A limits configuration file that cannot be read.
    #[error("invalid limits configuration: {0}; see the format in the gm-limits documentation")]
    InvalidConfig(#[source] Box<dyn std::error::Error + Send + Sync>),

    // --- refused before sending ---
    /// The prompt has more input tokens than one request may carry.
    #[error(
        "the request has {}{tokens} input tokens{}, {over} over the cap of {cap} per request; \
         shorten the prompt by at least {over} tokens",
        if *estimated { "at least " } else { "" },
        if *estimated { " (estimated)" } else { "" }
    )]
    InputTooLong {
        /// Input tokens counted, or for an estimate the fewest it could be.
        tokens: u64,
        /// The per-request input cap.
        cap: u64,
        /// `tokens - cap`.
        over: u64,
        /// Whether `tokens` is an estimate's lower bound rather than an exact count.
        estimated: bool,
    },
    /// The request asks for more output tokens than one request may produce.
    #[error(
        "the request asks for up to {tokens} output tokens, {over} over the cap of {cap} per request; \
         set max_tokens to {cap} or less"
    )]
    OutputTooLong {
        /// Output tokens asked for (`max_tokens`).
        tokens: u64,
        /// The per-request output cap.
        cap: u64,
        /// `tokens - cap`.
        over: u64,
    },
    /// The request needs more tokens than a whole window's budget, so it can never be admitted.
    #[error(
        "the request needs {tokens} tokens but the budget is {budget} tokens per {per}; \
         it can never be admitted: shorten it or raise the token budget",
        per = human(*per)
    )]
    OverTokenBudget {
        /// Tokens the request reserves (input and output).
        tokens: u64,
        /// The window's budget.
        budget: u64,
        /// The window's length.
        per: Duration,
    },

    // --- out of patience ---
    /// Waiting for quota would take longer than the caller allows.
    #[error(
        "rate limit of {key}: {reason}; {frees} in {in_}, longer than the allowed wait of {max}; \
         try again then, or raise --max-wait",
        frees = if matches!(reason, WaitReason::Backoff) { "the backoff ends" } else { "quota frees" },
        in_ = human(*wait), max = human(*max_wait)
    )]
    WouldWaitTooLong {
        /// The key as text (`provider:credential:model`).
        key: String,
        /// How long until the request could be admitted (a lower bound when others wait ahead of it).
        wait: Duration,
        /// The longest wait allowed.
        max_wait: Duration,
        /// Which limit is in the way.
        reason: WaitReason,
    },
    /// The allowed wait passed without room freeing (a request in flight did not finish, or requests ahead
    /// in line took the room).
    #[error(
        "rate limit of {key}: {reason}; no room freed within the allowed wait of {max}; \
         try again later, or raise --max-wait",
        max = human(*max_wait)
    )]
    WaitTimedOut {
        /// The key as text.
        key: String,
        /// The longest wait allowed.
        max_wait: Duration,
        /// Which limit was in the way.
        reason: WaitReason,
    },
    /// The server said the daily quota is spent.
    #[error(
        "the daily quota of {key} is spent; it frees in {in_}; resume then, or use another model or plan",
        in_ = human(*wait)
    )]
    DailyQuotaSpent {
        /// The key as text.
        key: String,
        /// How long until the server accepts requests again.
        wait: Duration,
    },

    // --- shared state ---
    /// The shared store (the state file, or a Redis server) failed.
    #[error(
        "the shared rate-limit store failed: {0}; check that the state file's folder is writable (--data-dir), or \
         with --redis that the Redis server answers"
    )]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl LimitError {
    /// Whether the request can never be admitted as it is (over a per-request cap or a whole budget):
    /// retrying it unchanged is pointless.
    pub fn is_request_too_large(&self) -> bool {
        matches!(self, Self::InputTooLong { .. } | Self::OutputTooLong { .. } | Self::OverTokenBudget { .. })
    }

    /// Whether the error is about waiting: the same request would be admitted later.
    pub fn is_wait(&self) -> bool {
        matches!(self, Self::WouldWaitTooLong { .. } | Self::WaitTimedOut { .. } | Self::DailyQuotaSpent { .. })
    }

    /// For waiting errors, how long until the quota frees.
    pub fn retry_in(&self) -> Option<Duration> {
        match self {
            Self::WouldWaitTooLong { wait, .. } | Self::DailyQuotaSpent { wait, .. } => Some(*wait),
            _ => None,
        }
    }
}

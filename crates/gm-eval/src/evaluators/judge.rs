//! Scoring a judge's reply against the choices of an `llm` evaluator, in the two modes.

use std::sync::OnceLock;

use async_trait::async_trait;
use gm_core::ChatRequest;
use regex::Regex;

use super::JudgeChoice;
use crate::metrics::simple_lowercase;

/// A boxed error from a [`JudgeClient`], kept as the `source` of
/// [`EvaluatorError::Judge`](super::EvaluatorError::Judge).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How a judge's reply is turned into a choice.
///
/// See the [module documentation](super#judge-modes-compat-and-strict) for why strict is the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JudgeMode {
    /// gh-models' rule: the first choice, in declared order, found anywhere in the trimmed,
    /// lowercased reply. Gives the scores gh-models would have given, quirks included.
    Compat,
    /// The final verdict: the last line when it is a choice (after a label such as `Score:`), else
    /// the choice after the last label, else the last choice standing alone as a word. Parts of a
    /// scale (`/5`, `out of 5`, `1-5`, `1 to 5`) are never taken for the verdict.
    #[default]
    Strict,
}

impl JudgeMode {
    /// The mode named `compat` or `strict`.
    pub fn from_name(name: &str) -> Option<JudgeMode> {
        match name {
            "compat" => Some(JudgeMode::Compat),
            "strict" => Some(JudgeMode::Strict),
            _ => None,
        }
    }

    /// `compat` or `strict`.
    pub fn name(self) -> &'static str {
        match self {
            JudgeMode::Compat => "compat",
            JudgeMode::Strict => "strict",
        }
    }
}

/// Something that answers judge requests: in `gm eval`, the provider client behind the limiter
/// and the cache; in tests, a fake.
///
/// Object-safe, so it can be passed as `&dyn JudgeClient`.
#[async_trait]
pub trait JudgeClient: Send + Sync {
    /// Sends one judge request and returns the text of the reply.
    async fn judge(&self, request: &ChatRequest) -> Result<String, BoxError>;
}

/// The choice a reply selects, or `None` when it selects none.
///
/// ```
/// use gm_eval::evaluators::{builtins::one_to_five, select_choice, JudgeMode};
/// let choices = one_to_five();
/// let reply = "Let's think step by step: 1. The answer is on topic.\n4";
/// assert_eq!(select_choice(reply, &choices, JudgeMode::Compat).unwrap().choice, "1");
/// assert_eq!(select_choice(reply, &choices, JudgeMode::Strict).unwrap().choice, "4");
/// ```
pub fn select_choice<'c>(reply: &str, choices: &'c [JudgeChoice], mode: JudgeMode) -> Option<&'c JudgeChoice> {
    match mode {
        JudgeMode::Compat => compat_choice(reply, choices),
        JudgeMode::Strict => strict_choice(reply, choices),
    }
}

/// The reply as gh-models shows it in its "did not match" details: trimmed and lowercased.
pub(crate) fn normalized_reply(reply: &str) -> String {
    simple_lowercase(reply).trim().to_string()
}

fn compat_choice<'c>(reply: &str, choices: &'c [JudgeChoice]) -> Option<&'c JudgeChoice> {
    let text = normalized_reply(reply);
    choices.iter().find(|c| text.contains(&simple_lowercase(&c.choice)))
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Characters that decorate a verdict without being part of it: markdown, quotes, brackets and
/// sentence punctuation.
fn is_decoration(c: char) -> bool {
    c.is_whitespace() || "*_`#>\"'.,;:!()[]{}".contains(c)
}

fn label() -> &'static Regex {
    static LABEL: OnceLock<Regex> = OnceLock::new();
    LABEL.get_or_init(|| {
        // The pattern is a constant known to compile; a failure here is a bug caught by the tests.
        Regex::new(
            r"(?i)\b(?:final\s+)?(?:score|verdict|rating|grade|stars|answer|result|choice|overall)\b\s*(?:is\b|:|=|-)\s*",
        )
        .unwrap_or_else(|_| unreachable!("constant pattern"))
    })
}

/// Whether an occurrence between `before` and `after` is part of a scale rather than a verdict:
/// a denominator (`/5`, `out of 5`) or either end of a range (`1-5`, `1 to 5`).
fn is_scale(before: &str, after: &str) -> bool {
    let before = before.trim_end();
    if before.ends_with('/') || before.ends_with("out of") {
        return true;
    }
    let dash_or_to = |s: &str| {
        s.strip_suffix(['-', '\u{2013}'])
            .or_else(|| s.strip_suffix(" to"))
            .is_some_and(|rest| rest.trim_end().ends_with(|c: char| c.is_ascii_digit()))
    };
    if dash_or_to(before) {
        return true;
    }
    let after = after.trim_start();
    let rest = after.strip_prefix(['-', '\u{2013}']).or_else(|| after.strip_prefix("to "));
    rest.is_some_and(|r| r.trim_start().starts_with(|c: char| c.is_ascii_digit()))
}

fn strict_choice<'c>(reply: &str, choices: &'c [JudgeChoice]) -> Option<&'c JudgeChoice> {
    let text = simple_lowercase(reply);
    let lowered: Vec<(String, &JudgeChoice)> =
        choices.iter().map(|c| (simple_lowercase(c.choice.trim()), c)).filter(|(l, _)| !l.is_empty()).collect();
    let exact = |s: &str| lowered.iter().find(|(l, _)| l == s).map(|(_, c)| *c);

    // 1. The last non-empty line is the verdict, possibly labelled and decorated.
    if let Some(line) = text.lines().map(str::trim).rev().find(|l| !l.trim_matches(is_decoration).is_empty()) {
        let line = line.trim_matches(is_decoration);
        let unlabelled = match label().find(line) {
            Some(m) if m.start() == 0 => &line[m.end()..],
            _ => line,
        };
        if let Some(c) = exact(line).or_else(|| exact(unlabelled.trim_matches(is_decoration))) {
            return Some(c);
        }
    }
    // 2. The choice right after the last label ("Score: 4/5", "Final verdict: good.").
    if let Some(m) = label().find_iter(&text).last() {
        let rest = text[m.end()..].trim_start_matches(is_decoration);
        let best = lowered
            .iter()
            .filter(|(l, _)| rest.starts_with(l.as_str()) && !rest[l.len()..].starts_with(is_word))
            .max_by_key(|(l, _)| l.len());
        if let Some((_, c)) = best {
            return Some(c);
        }
    }
    // 3. The last choice standing alone as a word, skipping denominators.
    let mut best: Option<(usize, usize, &JudgeChoice)> = None;
    for (l, c) in &lowered {
        for (start, _) in text.match_indices(l.as_str()) {
            let end = start + l.len();
            let before = &text[..start];
            let after = &text[end..];
            if before.ends_with(is_word) || after.starts_with(is_word) {
                continue;
            }
            if is_scale(before, after) {
                continue;
            }
            if best.is_none_or(|(e, len, _)| end > e || (end == e && l.len() > len)) {
                best = Some((end, l.len(), c));
            }
        }
    }
    best.map(|(_, _, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluators::builtins::one_to_five;

    fn words(names: &[(&str, f64)]) -> Vec<JudgeChoice> {
        names.iter().map(|(c, s)| JudgeChoice { choice: (*c).into(), score: *s }).collect()
    }

    fn pick(reply: &str, choices: &[JudgeChoice], mode: JudgeMode) -> Option<String> {
        select_choice(reply, choices, mode).map(|c| c.choice.clone())
    }

    #[test]
    fn label_pattern_compiles() {
        assert!(label().is_match("Final score: 4"));
    }

    #[test]
    fn compat_takes_the_first_declared_choice_found_anywhere() {
        let c = one_to_five();
        assert_eq!(pick("Let's think step by step: 1. clear\n4", &c, JudgeMode::Compat).as_deref(), Some("1"));
        assert_eq!(pick("2/5", &c, JudgeMode::Compat).as_deref(), Some("2"));
        assert_eq!(pick("  4 \n", &c, JudgeMode::Compat).as_deref(), Some("4"));
        assert_eq!(pick("none", &c, JudgeMode::Compat), None);
        let q = words(&[("poor", 0.0), ("good", 0.75), ("excellent", 1.0)]);
        assert_eq!(pick("Not poor at all. EXCELLENT", &q, JudgeMode::Compat).as_deref(), Some("poor"));
    }

    #[test]
    fn strict_reads_the_final_verdict() {
        let c = one_to_five();
        let strict = |r: &str| pick(r, &c, JudgeMode::Strict);
        assert_eq!(
            strict("Let's think step by step: 1. The answer is clear.\nExplanation: fine.\n4").as_deref(),
            Some("4")
        );
        assert_eq!(strict("2/5").as_deref(), Some("2"));
        assert_eq!(strict("Score: 3 out of 5").as_deref(), Some("3"));
        assert_eq!(strict("Reasoning mentions 5 points.\n**Score: 4**").as_deref(), Some("4"));
        assert_eq!(strict("Final score: 2.").as_deref(), Some("2"));
        assert_eq!(strict("I would give it a 3, maybe a 4 out of 5, so 4").as_deref(), Some("4"));
        assert_eq!(strict("12 and 45"), None);
        assert_eq!(strict("I give it 4 on a scale of 1-5").as_deref(), Some("4"));
        assert_eq!(strict("I give it 3 on a scale from 1 to 5.").as_deref(), Some("3"));
        assert_eq!(strict("On a 1 \u{2013} 5 scale: 2").as_deref(), Some("2"));
        assert_eq!(strict(""), None);
        let q = words(&[("poor", 0.0), ("below_average", 0.25), ("average", 0.5), ("good", 0.75), ("excellent", 1.0)]);
        let strict = |r: &str| pick(r, &q, JudgeMode::Strict);
        assert_eq!(strict("Not poor at all; the structure is good.\nVerdict: excellent").as_deref(), Some("excellent"));
        assert_eq!(strict("below_average").as_deref(), Some("below_average"));
        assert_eq!(strict("It is Good.").as_deref(), Some("good"));
    }

    proptest::proptest! {
        #[test]
        fn strict_takes_a_choice_alone_on_the_last_line(reasoning in "\\PC{0,200}", pick in 0usize..5) {
            let choices = one_to_five();
            let reply = format!("{reasoning}\n{}", choices[pick].choice);
            proptest::prop_assert_eq!(select_choice(&reply, &choices, JudgeMode::Strict), Some(&choices[pick]));
        }

        #[test]
        fn any_reply_selects_a_declared_choice_or_none(reply in "\\PC{0,200}") {
            let choices = words(&[("poor", 0.0), ("below_average", 0.25), ("good", 0.75), ("1", 0.0), ("5", 1.0)]);
            for mode in [JudgeMode::Compat, JudgeMode::Strict] {
                if let Some(c) = select_choice(&reply, &choices, mode) {
                    proptest::prop_assert!(choices.contains(c));
                }
            }
        }
    }

    #[test]
    fn modes_have_names() {
        for m in [JudgeMode::Compat, JudgeMode::Strict] {
            assert_eq!(JudgeMode::from_name(m.name()), Some(m));
        }
        assert_eq!(JudgeMode::default(), JudgeMode::Strict);
    }
}

//! The built-in judges behind `uses: github/<name>`.
//!
//! The rubric prompts were written for this project. They use the same variables as gh-models'
//! built-ins (`{{input}}`, `{{expected}}`, `{{completion}}`) and the same choices, `"1"` to `"5"`
//! scored 0, 0.25, 0.5, 0.75 and 1. Each asks for a short reasoning and then the score alone on the
//! last line, which is what [`JudgeMode::Strict`](super::JudgeMode::Strict) reads.
//!
//! Every built-in judge request follows [`gm_core::judge`]: the system prompt ends with its
//! [`MARKER`](gm_core::judge::MARKER), and the prompt puts the response and what it is graded against on lines
//! that start with the contract's labels. That is how the offline demo provider recognises a judge request
//! and grades it, so demo runs give meaningful scores whatever the rubrics' wording.

use std::fmt;

use super::{JudgeChoice, LlmJudge};

/// The judge model of the built-ins unless overridden.
pub const DEFAULT_JUDGE_MODEL: &str = "openai/gpt-4o";

/// A built-in judge, named by `uses: github/<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Builtin {
    /// `github/similarity`: meaning of the response against `expected`, for the `input` question.
    Similarity,
    /// `github/coherence`: how well the response to `input` hangs together.
    Coherence,
    /// `github/fluency`: the language quality of the response alone.
    Fluency,
    /// `github/relevance`: how well the response answers `input`.
    Relevance,
    /// `github/groundedness`: whether the response is supported by `expected`, used as the context.
    Groundedness,
}

impl Builtin {
    /// Every built-in judge.
    pub const ALL: [Builtin; 5] =
        [Builtin::Similarity, Builtin::Coherence, Builtin::Fluency, Builtin::Relevance, Builtin::Groundedness];

    /// The name after `github/`.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Similarity => "similarity",
            Builtin::Coherence => "coherence",
            Builtin::Fluency => "fluency",
            Builtin::Relevance => "relevance",
            Builtin::Groundedness => "groundedness",
        }
    }

    /// The built-in named by a `uses:` value such as `github/similarity` (case-sensitive, as in
    /// gh-models); `None` for anything else.
    pub fn from_uses(uses: &str) -> Option<Builtin> {
        let name = uses.strip_prefix("github/")?;
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The test-row variables the prompt uses, besides `completion`.
    pub fn variables(self) -> &'static [&'static str] {
        match self {
            Builtin::Similarity | Builtin::Groundedness => &["input", "expected"],
            Builtin::Coherence | Builtin::Relevance => &["input"],
            Builtin::Fluency => &[],
        }
    }

    /// The judge definition, asking `model`.
    pub fn judge(self, model: &str) -> LlmJudge {
        let prompt = match self {
            Builtin::Similarity => SIMILARITY,
            Builtin::Coherence => COHERENCE,
            Builtin::Fluency => FLUENCY,
            Builtin::Relevance => RELEVANCE,
            Builtin::Groundedness => GROUNDEDNESS,
        };
        LlmJudge {
            model_id: model.to_string(),
            prompt: prompt.to_string(),
            system_prompt: Some(format!("{SYSTEM} {}", gm_core::judge::MARKER)),
            choices: one_to_five(),
        }
    }
}

impl fmt::Display for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "github/{}", self.name())
    }
}

/// Choices `"1"` to `"5"` mapped to 0, 0.25, 0.5, 0.75 and 1.
pub fn one_to_five() -> Vec<JudgeChoice> {
    (1..=5).map(|i| JudgeChoice { choice: i.to_string(), score: f64::from(i - 1) / 4.0 }).collect()
}

/// The system prompt of every built-in judge, before [`gm_core::judge::MARKER`] (which ends it).
const SYSTEM: &str = "You grade one quality of a text written by an AI system, using the rubric you are given. \
Be strict and consistent: the same text must always get the same grade.";

const SIMILARITY: &str = "Rate how close in meaning the predicted answer is to the correct answer, \
given the question. Wording, length and style do not matter; facts and conclusions do.

1 star: unrelated to the correct answer, or contradicts it.
2 stars: touches the same topic but misses or gets wrong most of what the correct answer says.
3 stars: gets part of the correct answer right and leaves out or gets wrong another important part.
4 stars: agrees with the correct answer on everything important; small details are missing or extra.
5 stars: says the same thing as the correct answer, possibly in other words.

Reply with at most two sentences explaining the rating, then the number of stars alone, \
as one digit from 1 to 5, on the last line.

question: {{input}}
correct answer: {{expected}}
predicted answer: {{completion}}
stars:";

const COHERENCE: &str = "[Coherence: 1-5]
Coherence measures whether the answer reads as one connected line of thought: each idea follows \
from the previous ones, the order makes sense, and a reader never has to guess how two parts relate. \
Judge coherence only, not correctness or style.

Score 1: disconnected fragments or statements that contradict each other.
Score 2: a few related ideas, but they jump around and the reader loses the thread.
Score 3: mostly understandable; some parts are out of order or weakly linked.
Score 4: well ordered with clear links between ideas; minor rough transitions.
Score 5: every part builds on the last; the whole is easy to follow from start to end.

QUERY: {{input}}
RESPONSE: {{completion}}

Write at most three sentences of reasoning about the coherence of the answer above. \
Then write the score alone, as one digit from 1 to 5, on the last line with nothing after it.";

const FLUENCY: &str = "[Fluency: 1-5]
Fluency measures the quality of the language itself: grammar, spelling, word choice and how \
smoothly the sentences read. Judge the language only, not whether the content is right.

Score 1: hard to read; frequent errors make the meaning unclear.
Score 2: understandable with effort; many errors or awkward phrases.
Score 3: clear, with occasional errors or clumsy sentences.
Score 4: correct and natural, with at most a small slip.
Score 5: polished, precise and varied language without errors.

RESPONSE: {{completion}}

Write at most three sentences of reasoning about the fluency of the text above. \
Then write the score alone, as one digit from 1 to 5, on the last line with nothing after it.";

const RELEVANCE: &str = "[Relevance: 1-5]
Relevance measures how well the answer addresses what the question asks: whether it answers it, \
answers all of it, and stays on topic.

Score 1: does not address the question at all.
Score 2: on the topic but does not answer what was asked, or answers it wrongly.
Score 3: answers part of the question and leaves out an important part.
Score 4: answers the whole question; may add a little unneeded material.
Score 5: answers the whole question directly and completely, with useful detail and nothing off topic.

QUERY: {{input}}
RESPONSE: {{completion}}

Write at most three sentences of reasoning about the relevance of the answer above. \
Then write the score alone, as one digit from 1 to 5, on the last line with nothing after it.";

const GROUNDEDNESS: &str = "[Groundedness: 1-5]
Groundedness measures whether every claim in the answer is supported by the given source text. \
Claims the source does not support count against the answer even when they are true.

Score 1: unrelated to the source, or contradicts it.
Score 2: mostly claims the source does not support.
Score 3: partly supported; some claims go beyond the source.
Score 4: supported by the source except a minor detail.
Score 5: every claim is supported by the source.

CONTEXT: {{expected}}
QUERY: {{input}}
RESPONSE: {{completion}}

Write at most three sentences of reasoning about how well the source supports the answer above. \
Then write the score alone, as one digit from 1 to 5, on the last line with nothing after it.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prompt_uses_its_variables() {
        for b in Builtin::ALL {
            let judge = b.judge(DEFAULT_JUDGE_MODEL);
            assert!(judge.prompt.contains("{{completion}}"), "{b}");
            for v in b.variables() {
                assert!(judge.prompt.contains(&format!("{{{{{v}}}}}")), "{b} uses {v}");
            }
            assert!(judge.prompt.contains("last line"), "{b}");
            assert_eq!(Builtin::from_uses(&b.to_string()), Some(b));
        }
        assert_eq!(Builtin::from_uses("github/Similarity"), None);
        assert_eq!(Builtin::from_uses("similarity"), None);
    }

    #[test]
    fn every_request_keeps_the_judge_contract() {
        let row: serde_json::Map<String, serde_json::Value> = serde_json::from_value(
            serde_json::json!({"input": "What do plants make?", "expected": "Sugar and oxygen"}),
        )
        .unwrap();
        for b in Builtin::ALL {
            let request = b.judge(DEFAULT_JUDGE_MODEL).request(&row, "Plants make sugar");
            assert!(gm_core::judge::is_judge_request(&request), "{b}");
            let fields = gm_core::judge::fields(&request).unwrap();
            assert_eq!(fields.response, "Plants make sugar", "{b}");
            // Graded against the reference where the judge has one, else the question, else nothing.
            let against = match b {
                Builtin::Similarity | Builtin::Groundedness => "Sugar and oxygen",
                Builtin::Coherence | Builtin::Relevance => "What do plants make?",
                Builtin::Fluency => "",
            };
            assert_eq!(fields.reference, against, "{b}");
        }
    }

    #[test]
    fn choices_map_one_to_five_onto_quarters() {
        let scores: Vec<_> = one_to_five().into_iter().map(|c| (c.choice, c.score)).collect();
        assert_eq!(
            scores,
            [("1".into(), 0.0), ("2".into(), 0.25), ("3".into(), 0.5), ("4".into(), 0.75), ("5".into(), 1.0)]
        );
    }
}

//! Judge requests: how gm asks a model for a grade, as a contract that a grader without a model relies on.
//!
//! gm-eval's built-in judges (`uses: github/similarity`, `github/coherence` and the others) ask a model to grade
//! a response from 1 to 5. The demo provider has no model: it grades by the word overlap of the response with
//! the text the response is graded against. It recognises a judge request, and finds those two texts, by this
//! contract rather than by the wording of gm-eval's rubrics, so either side can change its prose without
//! breaking the other:
//!
//! - The system (or developer) message of a judge request contains [`MARKER`]. It is also the instruction a
//!   real model follows: reasoning first, then the grade alone on the last line, which is where gm-eval's
//!   judges read it.
//! - In the last user message, the response to grade is on a line that starts with one of
//!   [`RESPONSE_LABELS`], and the text it is graded against (a reference answer, a source text or the
//!   question) on a line that starts with one of [`REFERENCE_LABELS`]. Each value runs to the end of its line;
//!   the first label of a list that occurs wins, and of its lines the last.
//!
//! # Example
//! ```
//! use gm_core::{judge, ChatMessage, ChatRequest};
//!
//! let request = ChatRequest::new("openai/gpt-4o", vec![
//!     ChatMessage::system(format!("You grade answers. {}", judge::MARKER)),
//!     ChatMessage::user("QUERY: What is the capital of France?\nRESPONSE: Paris"),
//! ]);
//! let fields = judge::fields(&request).unwrap();
//! assert_eq!(fields.response, "Paris");
//! assert_eq!(fields.reference, "What is the capital of France?");
//!
//! // The same text without the marker is not a judge request, however it is worded.
//! let plain = ChatRequest::new("openai/gpt-4o", vec![ChatMessage::user("RESPONSE: Paris\nstars:")]);
//! assert!(judge::fields(&plain).is_none());
//! ```

use crate::{ChatRequest, Role};

/// The sentence in the system message that makes a request a judge request.
pub const MARKER: &str = "Give a short reasoning first, then the grade as a single digit alone on the last line.";

/// The labels of the line holding the response to grade, in order of preference.
pub const RESPONSE_LABELS: &[&str] = &["predicted answer:", "RESPONSE:"];

/// The labels of the line holding what the response is graded against, in order of preference.
pub const REFERENCE_LABELS: &[&str] = &["correct answer:", "CONTEXT:", "QUERY:", "question:"];

/// The two texts of a judge request that a grade compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JudgeFields {
    /// The response to grade; empty when no line carries a label of [`RESPONSE_LABELS`].
    pub response: String,
    /// What it is graded against; empty when no line carries a label of [`REFERENCE_LABELS`] (a judge of the
    /// response alone, such as fluency).
    pub reference: String,
}

/// Whether `request` is a judge request: a system or developer message contains [`MARKER`].
pub fn is_judge_request(request: &ChatRequest) -> bool {
    request.messages.iter().any(|m| matches!(m.role, Role::System | Role::Developer) && m.text().contains(MARKER))
}

/// The response and the reference of a judge request, or `None` when `request` is not one.
pub fn fields(request: &ChatRequest) -> Option<JudgeFields> {
    if !is_judge_request(request) {
        return None;
    }
    let user = request.messages.iter().rev().find(|m| m.role == Role::User).map(|m| m.text()).unwrap_or_default();
    Some(JudgeFields {
        response: labelled(&user, RESPONSE_LABELS).unwrap_or_default().to_string(),
        reference: labelled(&user, REFERENCE_LABELS).unwrap_or_default().to_string(),
    })
}

/// The trimmed rest of the last line of `text` that starts with the first of `labels` that any line starts with.
fn labelled<'t>(text: &'t str, labels: &[&str]) -> Option<&'t str> {
    labels.iter().find_map(|label| text.lines().rev().find_map(|line| line.strip_prefix(label)).map(str::trim))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChatMessage;

    fn request(system: &str, user: &str) -> ChatRequest {
        ChatRequest::new("openai/gpt-4o", vec![ChatMessage::system(system), ChatMessage::user(user)])
    }

    #[test]
    fn the_marker_in_the_system_message_makes_a_judge_request() {
        let user = "question: 2 + 2?\ncorrect answer: 4\npredicted answer: four\nstars:";
        let judged = fields(&request(&format!("Grade it. {MARKER}"), user)).unwrap();
        assert_eq!(judged, JudgeFields { response: "four".into(), reference: "4".into() });
        // Rubric wording alone, without the marker, is an ordinary request.
        assert!(fields(&request("Rate between 1 and 5. Score: [Coherence: 1-5]", user)).is_none());
        // The marker counts only where the instructions are, not in what is graded.
        assert!(fields(&request("Be terse.", &format!("RESPONSE: {MARKER}"))).is_none());
    }

    #[test]
    fn labels_are_taken_in_order_of_preference_at_their_last_line() {
        let system = format!("x {MARKER}");
        let user = "CONTEXT: the source\nQUERY: the question\nRESPONSE: first\nRESPONSE: second";
        let judged = fields(&request(&system, user)).unwrap();
        assert_eq!(judged, JudgeFields { response: "second".into(), reference: "the source".into() });
        // A label counts only at the start of a line.
        let judged = fields(&request(&system, "Judge the RESPONSE: below\nRESPONSE:  it  ")).unwrap();
        assert_eq!(judged, JudgeFields { response: "it".into(), reference: String::new() });
    }
}

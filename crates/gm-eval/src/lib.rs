//! Evaluation of language models.
//!
//! Use this crate to score model answers against references (BLEU, chrF, ROUGE, SQuAD EM/F1, pass@k),
//! run `.prompt.yml` suites and compare models across tasks.

pub mod prompt;

//! The scorers: pure functions of a prediction and its references, with no IO.
//!
//! Each text metric reproduces one reference implementation, documented on its function, to
//! within 1e-6 (in practice to the last few bits), and every score lies in [0, 1]; sacreBLEU's
//! 0–100 BLEU and chrF are divided by 100. With several references a metric keeps the best
//! reference, the way its reference implementation does.
//!
//! The functions reuse per-thread buffers, so scoring many pairs allocates next to nothing.
//!
//! | metric | function | reference implementation |
//! | --- | --- | --- |
//! | BLEU | [`sentence_bleu`], [`CorpusBleu`] | sacreBLEU 2.6.0 |
//! | chrF | [`sentence_chrf`], [`CorpusChrf`] | sacreBLEU 2.6.0 |
//! | ROUGE-1/2/L/Lsum | [`rouge`], [`rouge1`], [`rouge2`], [`rouge_l`], [`rouge_lsum`] | rouge-score 0.1.2 (NLTK 3.10 Porter stemmer) |
//! | SQuAD EM / F1 | [`squad_em`], [`squad_f1`] | SQuAD v1.1 / v2.0 evaluation script |
//! | pass@k, pass^k | [`pass_at_k`], [`pass_hat_k`] | HumanEval `estimate_pass_at_k` |
//! | string checks | [`equals`], [`contains`], [`starts_with`], [`ends_with`] | `gh models eval` |
//! | regex, JSON | [`regex_match`], [`json_valid`], [`json_schema_valid`] | — |
//! | numeric answer | [`numeric_match`], [`final_number`] | — |

mod bleu;
mod checks;
mod chrf;
mod ngram;
mod numeric;
mod passk;
mod porter;
mod rouge;
mod squad;

pub use bleu::{
    bleu_signature, bleu_stats, corpus_bleu, sentence_bleu, tokenize_13a, BleuStats, CorpusBleu, RefCount, MAX_ORDER,
    SACREBLEU_VERSION,
};
pub use checks::{
    compile_pattern, contains, ends_with, equals, json_schema_valid, json_valid, regex_match, simple_lowercase,
    starts_with, JsonSchema,
};
pub use chrf::{chrf_stats, corpus_chrf, sentence_chrf, ChrfStats, CorpusChrf, BETA, CHAR_ORDER};
pub use numeric::{final_number, numeric_match, NumericTolerance};
pub use passk::{mean_pass_at_k, mean_pass_hat_k, pass_at_k, pass_hat_k};
pub use porter::porter_stem;
pub use rouge::{rouge, rouge1, rouge2, rouge_l, rouge_lsum, rouge_tokens, RougeScores, RougeSelection};
pub use squad::{squad_em, squad_em_f1, squad_f1, squad_normalize};

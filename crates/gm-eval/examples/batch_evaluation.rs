//! Several evaluations at once, concurrently within the rate limits, as the original `batch_evaluate(requests)`.
//!
//! Run: `cargo run -p gm-eval --example batch_evaluation` (offline, on the demo provider).

use gm_eval::api::{EvaluationRequest, Evaluator};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let evaluator = Evaluator::demo()?;
    let requests = vec![
        EvaluationRequest::new("openai/gpt-4.1", "reasoning").input("question", "What is (120 + 30) / 6?"),
        EvaluationRequest::new("openai/gpt-4.1-mini", "reasoning").input("question", "What is 9 * 8?"),
        EvaluationRequest::new("openai/gpt-4.1", "summarization")
            .input("input", "Rust is a systems language. It has no garbage collector. Its compiler is strict."),
        EvaluationRequest::new("openai/gpt-4.1", "question_answering")
            .input("context", "The bridge was built in 1784 by Edwin Holt.")
            .input("question", "Who built the bridge?"),
        EvaluationRequest::new("openai/gpt-4.1", "question_answering").input("question", "Who built the bridge?"),
        EvaluationRequest::new("openai/gpt-4.1", "no_such_task"),
    ];
    for (request, result) in requests.iter().zip(evaluator.batch_evaluate(&requests).await) {
        match result {
            Ok(r) => println!("{:<22} {:<14} {:>6.1} ms  {}", r.model_id, r.task_type, r.latency_ms, r.output),
            Err(e) => println!("{:<22} {:<14} error: {e}", request.model_id, request.task_type),
        }
    }
    Ok(())
}

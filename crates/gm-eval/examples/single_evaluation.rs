//! One model on one input of a task, as the original `evaluate_model(EvaluationRequest)`.
//!
//! Run: `cargo run -p gm-eval --example single_evaluation` (offline, on the demo provider).

use gm_eval::api::{EvaluationRequest, Evaluator};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let evaluator = Evaluator::demo()?;
    let request = EvaluationRequest::new("openai/gpt-4.1", "reasoning").input("question", "What is 17 * 23?");
    let result = evaluator.evaluate(&request).await?;
    println!("model:    {}", result.model_id);
    println!("task:     {}", result.task_type);
    println!("output:   {}", result.output);
    println!("latency:  {:.1} ms", result.latency_ms);
    println!("tokens:   {} in, {} out", result.tokens_in, result.tokens_out);
    println!("cost:     {}", result.cost_usd.map_or("n/a".into(), |c| format!("${c:.6}")));
    Ok(())
}

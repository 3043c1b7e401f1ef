//! The whole workflow of the original integration: models, tasks and metrics, then several models across
//! several tasks with latency, throughput, quality and cost-efficiency, and the best model.
//!
//! Run: `cargo run -p gm-eval --example full_workflow` (offline, on the demo provider).

use gm_eval::api::{available_tasks, evaluation_metrics, EvaluationConfig, Evaluator};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let evaluator = Evaluator::demo()?;
    let models = evaluator.available_models().await?;
    println!("{} models: {}", models.len(), models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", "));
    for t in available_tasks() {
        println!("task {:<20} {:>3} items  {}", t.name, t.items, t.description);
    }
    println!(
        "{} metrics: {}",
        evaluation_metrics().len(),
        evaluation_metrics().iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
    );

    let config = EvaluationConfig::new(
        ["openai/gpt-4.1", "openai/gpt-4.1-mini"],
        ["question_answering", "summarization", "reasoning"],
    )
    .limit_items(10);
    let report = evaluator.evaluate_models(&config).await?;
    for c in &report.cells {
        println!(
            "{:<22} {:<20} quality {:.3} [{:.2}, {:.2}]  p50 {}  cost {}",
            c.model,
            c.task,
            c.metrics.quality,
            c.metrics.quality_ci95[0],
            c.metrics.quality_ci95[1],
            c.metrics.latency_p50_ms.map_or("-".into(), |l| format!("{l:.1} ms")),
            c.metrics.cost_usd.map_or("-".into(), |c| format!("${c:.5}")),
        );
    }
    println!(
        "best model: {} ({})",
        report.summary.best_model.as_deref().unwrap_or("-"),
        report.summary.best_model_reason
    );
    println!("average latency: {}", report.summary.average_latency_ms.map_or("-".into(), |l| format!("{l:.1} ms")));
    Ok(())
}

//! The library API of the original integration: `Evaluator::evaluate_models` with parameters and code tasks.

use gm_eval::api::{ApiError, EvaluationConfig, Evaluator};
use gm_eval::prompt::ModelParameters;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn parameters_override_every_task() {
    runtime().block_on(async {
        let evaluator = Evaluator::demo().unwrap();
        let tasks = ["summarization", "reasoning"];
        let short = ModelParameters { max_tokens: Some(3), temperature: None, top_p: None };
        let config = EvaluationConfig::new(["openai/gpt-4.1"], tasks).limit_items(3).parameters(short);
        let report = evaluator.evaluate_models(&config).await.unwrap();
        for cell in &report.cells {
            // The demo provider stops at max_tokens, as a real one would.
            for case in &cell.evaluation.gm.cases {
                assert!(case.tokens_out <= 3, "{}: {} tokens", cell.task, case.tokens_out);
            }
        }
    });
}

#[test]
fn code_tasks_need_a_sandbox() {
    runtime().block_on(async {
        let config = EvaluationConfig::new(["openai/gpt-4.1"], ["code_generation"]).limit_items(2);
        let err = Evaluator::demo().unwrap().evaluate_models(&config).await.unwrap_err();
        assert!(matches!(err, ApiError::CodeExecution(_)), "{err}");
        assert!(err.to_string().contains("with_code_execution"), "{err}");
    });
}

#[cfg(feature = "code-exec")]
#[test]
fn code_tasks_run_with_a_sandbox() {
    use gm_eval::sandbox::{SandboxConfig, SandboxPolicy};

    runtime().block_on(async {
        let config = EvaluationConfig::new(["openai/gpt-4.1"], ["code_generation"]).limit_items(2);
        if !gm_testkit::skip::program("python3", "apt-get install python3") {
            return;
        }
        let sandbox = SandboxPolicy { enabled: true }.sandbox(SandboxConfig::default()).unwrap();
        let evaluator = Evaluator::demo().unwrap().with_code_execution(sandbox);
        let report = evaluator.evaluate_models(&config).await.unwrap();
        let scores = &report.cells[0].metrics.scores;
        assert!(scores.contains_key("pass@1"), "{scores:?}");
    });
}

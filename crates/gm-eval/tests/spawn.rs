//! A server runs suites and matrices on spawned tasks: their futures must be `Send` for every lifetime.

use gm_core::ProviderKind;
use gm_eval::prompt::PromptFile;
use gm_eval::run::{EvalRunner, Finished, RunOptions};

fn send<T: Send>(_: &T) {}

#[test]
fn a_run_and_a_matrix_can_be_spawned() {
    let client = gm_http::Client::builder().provider(ProviderKind::Demo).build().unwrap();
    let file = PromptFile::parse("name: x\nmodel: openai/gpt-4.1\nmessages: []\n", "x.prompt.yml").unwrap();
    let runner = EvalRunner::new(client.clone(), RunOptions::default());
    send(&runner.run_with(&file, None, Finished::new()));
    let (models, tasks) = (vec!["openai/gpt-4.1".to_string()], vec![("x".to_string(), file.clone())]);
    let options = RunOptions::default();
    send(&gm_eval::bench::run_matrix_with(&client, &options, &models, &tasks, None, None, Finished::new()));
}

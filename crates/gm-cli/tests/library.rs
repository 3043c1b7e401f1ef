//! The CLI is a front end of gm-app: its JSON for a suite, a bench and the run history equals the library's
//! data for the same runs, serialized.

use std::path::{Path, PathBuf};

use gm_app::{BenchRun, Cancel, Session, SessionConfig, StoredRun, SuiteRun};
use gm_testkit::TempDir;
use serde_json::Value;

/// `gm --data-dir DATA ARGS…` on the demo provider; its standard output as JSON.
fn gm_json(data: &Path, args: &[&str]) -> Value {
    let out =
        gm_testkit::cli::gm_command(env!("CARGO_BIN_EXE_gm")).arg("--data-dir").arg(data).args(args).output().unwrap();
    assert!(out.status.success(), "gm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("gm {args:?}: {e}"))
}

/// Ten sums from `first` that the demo's plain answers pass and its wordy model fails, so one model is
/// significantly better and the best model does not depend on latency.
fn suite(dir: &Path, name: &str, first: usize) -> PathBuf {
    gm_testkit::suite::write_sums(dir, name, first..first + 10, 3)
}

/// Removes the fields at `path` (`*` for every element of an array) from `v`.
fn drop_field(v: &mut Value, path: &[&str]) {
    match path {
        [] => {}
        ["*", rest @ ..] => v.as_array_mut().into_iter().flatten().for_each(|e| drop_field(e, rest)),
        [last] => {
            v.as_object_mut().map(|o| o.remove(*last));
        }
        [key, rest @ ..] => {
            if let Some(inner) = v.get_mut(*key) {
                drop_field(inner, rest);
            }
        }
    }
}

/// A suite's JSON without what the clock decides: the run's wall time, the latencies of its calls and the
/// throughput computed from them. Two runs of the same suite on the demo provider agree on everything else.
fn without_timings_of_a_suite(mut v: Value) -> Value {
    for field in
        ["wall_ms", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "tokens_per_second", "tokens_per_second_wall"]
    {
        drop_field(&mut v, &["gm", field]);
    }
    drop_field(&mut v, &["gm", "cases", "*", "latency_ms"]);
    drop_field(&mut v, &["gm", "cases", "*", "more_samples", "*", "latency_ms"]);
    v
}

/// A bench's JSON without what the clock decides: each cell's latencies and throughput, and the averages of
/// latency over cells and models.
fn without_timings_of_a_bench(mut v: Value) -> Value {
    for field in ["latency_p50_ms", "latency_p95_ms", "tokens_per_second", "tokens_per_second_wall"] {
        drop_field(&mut v, &["cells", "*", "metrics", field]);
    }
    drop_field(&mut v, &["summary", "average_latency_ms"]);
    drop_field(&mut v, &["summary", "latency_by_model"]);
    v
}

/// A run list without the moments each run started and finished, which the clock decides.
fn without_times_of_a_list(mut v: Value) -> Value {
    drop_field(&mut v, &["*", "started_at"]);
    drop_field(&mut v, &["*", "finished_at"]);
    v
}

#[test]
fn the_json_of_eval_bench_and_runs_equals_the_library_data() {
    let files = TempDir::new("cli-library-files");
    let (sums, more) = (suite(&files, "sums", 1), suite(&files, "more", 20));
    let (sums_arg, more_arg) = (sums.to_str().unwrap(), more.to_str().unwrap());
    let models = ["openai/gpt-4.1", "openai/gpt-4.1-mini"];

    // The library: a suite, then a 2 x 2 bench, in a state folder of its own.
    let lib_dir = TempDir::new("cli-library-lib");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let session = Session::new(SessionConfig { data_dir: Some(lib_dir.to_path_buf()), ..SessionConfig::demo() });
    let (suite_result, bench_result) = rt.block_on(async {
        let suites = session.run_suites(&SuiteRun::new(vec![sums.clone()]), &(), &Cancel::new()).await.unwrap();
        let bench = BenchRun::new(
            models.iter().map(|m| m.to_string()).collect(),
            vec![sums_arg.to_string(), more_arg.to_string()],
        );
        let bench = session.run_bench(&bench, &(), &Cancel::new()).await.unwrap();
        (suites.finished().unwrap().remove(0), bench.finished().unwrap())
    });
    session.finish();
    let lib_suite = serde_json::to_value(&suite_result.summary).unwrap();
    let lib_bench = serde_json::to_value(&bench_result.report).unwrap();

    // The CLI: the same suite and bench in another fresh folder, so the run ids agree too.
    let cli_dir = TempDir::new("cli-library-cli");
    let cli_suite = gm_json(&cli_dir, &["eval", "--json", sums_arg]);
    let tasks = format!("{sums_arg},{more_arg}");
    let cli_bench = gm_json(&cli_dir, &["bench", "--json", "--models", &models.join(","), "--tasks", &tasks]);
    assert_eq!(without_timings_of_a_suite(cli_suite), without_timings_of_a_suite(lib_suite.clone()));
    assert_eq!(without_timings_of_a_bench(cli_bench), without_timings_of_a_bench(lib_bench.clone()));
    assert_eq!(lib_bench["summary"]["best_model_significant"], true, "the best model is not a matter of latency");

    // The CLI reading the library's runs shows exactly what the library holds and returned.
    let listed = gm_json(&lib_dir, &["runs", "list", "--json"]);
    assert_eq!(listed, serde_json::to_value(session.list_runs().unwrap()).unwrap());
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    let shown_suite = gm_json(&lib_dir, &["runs", "show", "1", "--json"]);
    let StoredRun::Eval(stored) = session.show_run(1).unwrap() else { panic!("run 1 is the suite's") };
    assert_eq!(shown_suite, serde_json::to_value(&stored).unwrap());
    assert_eq!(shown_suite, lib_suite);
    let shown_bench = gm_json(&lib_dir, &["runs", "show", "2", "--json"]);
    let StoredRun::Bench(stored) = session.show_run(2).unwrap() else { panic!("run 2 is the bench's") };
    assert_eq!(shown_bench, stored.printed);
    assert_eq!(shown_bench, lib_bench);
    // And the CLI's own history lists the same runs.
    let cli_listed = gm_json(&cli_dir, &["runs", "list", "--json"]);
    assert_eq!(without_times_of_a_list(cli_listed), without_times_of_a_list(listed));
}

//! Every use case of the session on the demo provider, in process: suites and a bench to the run store, the
//! run history, the rate limits, the cache and the catalog, each against a state file of its own.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use gm_app::{
    BenchRun, BoxError, Cancel, CaseFinished, Error, LimitsSettings, Notice, Observer, Outcome, Resume, RunComparison,
    RunKind, RunStarted, Session, SessionConfig, StoredRun, SuiteFinished, SuiteRun,
};
use gm_eval::compare::Verdict;
use gm_testkit::TempDir;

/// The demo provider with its state in `dir`.
fn config(dir: &Path) -> SessionConfig {
    SessionConfig { data_dir: Some(dir.to_path_buf()), ..SessionConfig::demo() }
}

/// A suite of `n` sums whose check the demo's plain answers pass (`The answer is …`) and its wordy model
/// (`openai/gpt-4.1-mini`) fails.
fn suite(dir: &Path, name: &str, n: usize) -> PathBuf {
    gm_testkit::suite::write_sums(dir, name, 0..n, 7)
}

/// A case as an observer hears it: its suite or cell position, its cell's model and task, its index.
type HeardCase = (usize, Option<(String, String)>, usize);

/// Everything an observer hears, in order.
#[derive(Default)]
struct Heard {
    started: Mutex<Vec<RunStarted>>,
    cases: Mutex<Vec<HeardCase>>,
    finished: Mutex<Vec<(i64, String)>>,
    cancel_after: Option<(usize, Cancel)>,
    stop_after: Option<(usize, Cancel)>,
}

impl Observer for Heard {
    fn run_started(&self, run: &RunStarted) {
        self.started.lock().unwrap().push(run.clone());
    }

    fn case_finished(&self, case: &CaseFinished<'_>) -> Result<(), BoxError> {
        let mut cases = self.cases.lock().unwrap();
        let cell = case.cell.map(|c| (c.model.to_string(), c.task.to_string()));
        cases.push((case.suite, cell, case.index));
        if let Some((n, cancel)) = &self.cancel_after {
            if cases.len() == *n {
                cancel.cancel();
            }
        }
        if let Some((n, cancel)) = &self.stop_after {
            if cases.len() == *n {
                cancel.stop(std::time::Duration::from_secs(60));
            }
        }
        Ok(())
    }

    fn suite_finished(&self, suite: &SuiteFinished<'_>) {
        self.finished.lock().unwrap().push((suite.run_id, suite.summary.name.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suites_run_to_the_store_and_are_listed_shown_and_compared() {
    let dir = TempDir::new("app-suites");
    let session = Session::new(config(&dir));
    let (sums, more) = (suite(&dir, "sums", 6), suite(&dir, "more", 4));
    let heard = Heard::default();
    let run = SuiteRun::new(vec![sums.clone(), more.clone()]);
    let results = session.run_suites(&run, &heard, &Cancel::new()).await.unwrap().finished().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!((results[0].run_id, results[1].run_id), (1, 2));
    assert_eq!(results[0].summary.summary.passed_tests, 6);
    assert_eq!(results[1].summary.summary.total_tests, 4);
    assert!(matches!(session.take_notices()[..], [Notice::DemoProvider { .. }]));
    // Each suite was announced, each case heard once with its suite, and each end heard.
    let started = heard.started.lock().unwrap().clone();
    assert_eq!(
        started.iter().map(|s| (s.run_id, s.total, s.done, s.resume)).collect::<Vec<_>>(),
        [(1, 6, 0, Resume::New), (2, 4, 0, Resume::New)]
    );
    assert!(started.iter().all(|s| s.kind == RunKind::Eval));
    let mut cases = heard.cases.lock().unwrap().clone();
    cases.sort();
    let expected: Vec<_> = (1..=6).map(|i| (0, None, i)).chain((1..=4).map(|i| (1, None, i))).collect();
    assert_eq!(cases, expected);
    assert_eq!(*heard.finished.lock().unwrap(), [(1, "sums".to_string()), (2, "more".to_string())]);

    // The same suite with a model that answers wordily fails every case: a significant regression.
    let wordy = SuiteRun { model: Some("openai/gpt-4.1-mini".into()), ..SuiteRun::new(vec![sums.clone()]) };
    let worse = session.run_suites(&wordy, &(), &Cancel::new()).await.unwrap().finished().unwrap();
    assert_eq!(worse[0].summary.summary.failed_tests, 6);

    let rows = session.list_runs().unwrap();
    assert_eq!(
        rows.iter().map(|r| (r.id, r.kind.as_str(), r.cases)).collect::<Vec<_>>(),
        [(3, "eval", 6), (2, "eval", 4), (1, "eval", 6)]
    );
    let StoredRun::Eval(shown) = session.show_run(1).unwrap() else { panic!("run 1 is a suite's") };
    assert_eq!(shown, results[0].summary);
    let RunComparison::Eval { comparison, .. } = session.compare_runs(1, 3).unwrap() else { panic!("two suites") };
    assert_eq!(comparison.verdict, Verdict::Regression);
    assert_eq!(comparison.newly_failing.len(), 6);
    let err = session.show_run(99).unwrap_err();
    assert!(matches!(err, Error::NoSuchRun { id: 99 }) && err.is_usage(), "{err}");
    session.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_by_two_bench_runs_to_the_store_and_is_shown_and_compared() {
    let dir = TempDir::new("app-bench");
    let session = Session::new(config(&dir));
    let (sums, more) = (suite(&dir, "sums", 8), suite(&dir, "more", 8));
    let models = vec!["openai/gpt-4.1".to_string(), "openai/gpt-4.1-mini".to_string()];
    let tasks = vec![sums.display().to_string(), more.display().to_string()];
    let heard = Heard::default();
    let run = BenchRun::new(models.clone(), tasks.clone());
    let result = session.run_bench(&run, &heard, &Cancel::new()).await.unwrap().finished().unwrap();
    let report = &result.report;
    assert_eq!(report.run_id, Some(1));
    let cells: Vec<(&str, &str)> = report.cells.iter().map(|c| (c.model.as_str(), c.task.as_str())).collect();
    assert_eq!(
        cells,
        [
            ("openai/gpt-4.1", "sums"),
            ("openai/gpt-4.1", "more"),
            ("openai/gpt-4.1-mini", "sums"),
            ("openai/gpt-4.1-mini", "more")
        ]
    );
    assert_eq!(report.summary.best_model.as_deref(), Some("openai/gpt-4.1"));
    assert_eq!(report.summary.best_model_significant, Some(true));
    // Every case was heard once, with its cell, and the start once for the whole bench.
    let started = heard.started.lock().unwrap().clone();
    assert_eq!(started.len(), 1);
    assert_eq!(
        (started[0].kind, started[0].total, started[0].name.as_str()),
        (RunKind::Bench, 32, "2 models x 2 tasks")
    );
    let started_cells: Vec<(&str, &str, usize, usize)> =
        started[0].cells.iter().map(|c| (c.model.as_str(), c.task.as_str(), c.total, c.done)).collect();
    let expected_cells: Vec<(&str, &str, usize, usize)> = cells.iter().map(|(m, t)| (*m, *t, 8, 0)).collect();
    assert_eq!(started_cells, expected_cells, "each cell's share of the bench, in the order cases name cells");
    let mut cases = heard.cases.lock().unwrap().clone();
    cases.sort();
    let mut expected = Vec::new();
    for (c, (model, task)) in cells.iter().enumerate() {
        expected.extend((1..=8).map(|i| (c, Some((model.to_string(), task.to_string())), i)));
    }
    expected.sort();
    assert_eq!(cases, expected);

    let StoredRun::Bench(shown) = session.show_run(1).unwrap() else { panic!("run 1 is a bench") };
    assert_eq!(shown.printed, serde_json::to_value(report).unwrap());
    assert_eq!(shown.report.summary, report.summary);
    // The same bench again (from the cache), with the first as its baseline: every cell unchanged.
    let again = BenchRun { baseline: Some(1), ..run.clone() };
    let second = session.run_bench(&again, &(), &Cancel::new()).await.unwrap().finished().unwrap();
    assert_eq!(second.baseline.len(), 4);
    assert!(second.baseline.iter().all(|c| c.comparison.verdict == Verdict::NoSignificantChange));
    assert!(second.report.cells.iter().all(|c| c.metrics.cache_hits == 8), "answered from the cache");
    let RunComparison::Bench { cells: compared, .. } = session.compare_runs(1, 2).unwrap() else { panic!("benches") };
    assert_eq!(compared, second.baseline);
    // A suite's run and a bench's are not compared.
    session.run_suites(&SuiteRun::new(vec![sums]), &(), &Cancel::new()).await.unwrap().finished().unwrap();
    let err = session.compare_runs(1, 3).unwrap_err();
    assert!(matches!(err, Error::MixedKinds { .. }) && err.is_usage(), "{err}");
    session.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bench_samples_each_case_as_often_as_asked_and_resumes_only_the_same_sampling() {
    let dir = TempDir::new("app-bench-repeat");
    let session = Session::new(SessionConfig {
        cache: gm_app::CacheSettings { enabled: false, ..Default::default() },
        ..config(&dir)
    });
    let sums = suite(&dir, "sums", 4);
    let run =
        BenchRun { repeat: 3, ..BenchRun::new(vec!["openai/gpt-4.1".to_string()], vec![sums.display().to_string()]) };
    let result = session.run_bench(&run, &(), &Cancel::new()).await.unwrap().finished().unwrap();
    let cell = &result.report.cells[0];
    assert_eq!(cell.evaluation.gm.requests, 12, "4 cases x 3 samples");
    assert!(cell.evaluation.gm.cases.iter().all(|f| f.samples == Some((3, 3))), "{:?}", cell.evaluation.gm.cases);
    // Resuming with another sampling does not continue this run: its cases were scored over other samples.
    let once = BenchRun { repeat: 1, resume: true, ..run.clone() };
    let heard = Heard::default();
    session.run_bench(&once, &heard, &Cancel::new()).await.unwrap().finished().unwrap();
    assert_eq!(heard.started.lock().unwrap()[0].resume, Resume::NothingToResume);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_suite_keeps_what_it_recorded_and_resumes_from_there() {
    let dir = TempDir::new("app-cancel");
    let session = Session::new(SessionConfig {
        cache: gm_app::CacheSettings { enabled: false, ..Default::default() },
        ..config(&dir)
    });
    let file = suite(&dir, "long", 12);
    let run = SuiteRun { concurrency: Some(1), ..SuiteRun::new(vec![file.clone()]) };
    let cancel = Cancel::new();
    let heard = Heard { cancel_after: Some((3, cancel.clone())), ..Heard::default() };
    let Outcome::Interrupted(stop) = session.run_suites(&run, &heard, &cancel).await.unwrap() else {
        panic!("the run was cancelled")
    };
    assert_eq!((stop.run_id, stop.total), (1, 12));
    assert_eq!(stop.recorded, 3, "the cases recorded before the cancel, and no other");
    let resumed = Heard::default();
    let again = SuiteRun { resume: true, ..run };
    let results = session.run_suites(&again, &resumed, &Cancel::new()).await.unwrap().finished().unwrap();
    let started = resumed.started.lock().unwrap()[0].clone();
    assert_eq!((started.run_id, started.done, started.resume), (1, 3, Resume::Resumed));
    assert_eq!(resumed.cases.lock().unwrap().len(), 9, "only the cases not recorded are run");
    assert_eq!(results[0].summary.summary.total_tests, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gentle_stop_records_the_cases_in_flight_and_the_resume_sends_none_twice() {
    // Answers take 200 ms, four at a time: when the first is recorded, three more are in flight and paid for.
    let emu = gm_testkit::emulator::start(
        gm_testkit::emulator::EmulatorConfig { latency: std::time::Duration::from_millis(200), ..Default::default() },
        [],
    )
    .await;
    let dir = TempDir::new("app-stop");
    let session = Session::new(SessionConfig {
        provider: gm_core::ProviderKind::OpenAiCompatible,
        base_url: Some(emu.openai_url()),
        cache: gm_app::CacheSettings { enabled: false, ..Default::default() },
        ..config(&dir)
    });
    let file = suite(&dir, "paid", 20);
    let run = SuiteRun { concurrency: Some(4), ..SuiteRun::new(vec![file]) };
    let cancel = Cancel::new();
    let heard = Heard { stop_after: Some((1, cancel.clone())), ..Heard::default() };
    let Outcome::Interrupted(stop) = session.run_suites(&run, &heard, &cancel).await.unwrap() else {
        panic!("the run was stopped")
    };
    let sent = emu.stats().received as usize;
    assert!(stop.recorded > 1, "the cases in flight were recorded: {stop:?}");
    assert_eq!(stop.recorded, sent, "every answer paid for is recorded");
    assert!(sent < 20, "no case started after the stop");
    let again = SuiteRun { resume: true, ..run };
    let results = session.run_suites(&again, &(), &Cancel::new()).await.unwrap().finished().unwrap();
    assert_eq!(results[0].summary.summary.total_tests, 20);
    assert_eq!(emu.stats().received, 20, "no case was sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bench_with_nothing_to_measure_is_refused_and_records_nothing() {
    let dir = TempDir::new("app-bench-options");
    let session = Session::new(config(&dir));
    let base = BenchRun::new(vec!["openai/gpt-4.1".into()], vec!["arithmetic".into()]);
    let cases = [
        ("--models", BenchRun { models: vec![String::new()], ..base.clone() }),
        ("--concurrency", BenchRun { concurrency: 0, ..base.clone() }),
        ("--limit-items", BenchRun { limit_items: Some(0), ..base.clone() }),
    ];
    for (option, run) in cases {
        let err = session.run_bench(&run, &(), &Cancel::new()).await.unwrap_err();
        assert!(matches!(&err, Error::InvalidOption { option: o, .. } if *o == option), "{err:?}");
        assert!(err.is_usage() && err.to_string().starts_with(option), "{err}");
    }
    let suite_run = SuiteRun { concurrency: Some(0), ..SuiteRun::new(vec![suite(&dir, "c0", 2)]) };
    let err = session.run_suites(&suite_run, &(), &Cancel::new()).await.unwrap_err();
    assert!(matches!(err, Error::InvalidOption { option: "--concurrency", .. }), "{err:?}");
    assert!(session.list_runs().unwrap().is_empty(), "no unfinished run was left in the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_resumes_of_one_run_at_once_never_both_run_its_cases() {
    let emu = gm_testkit::emulator::start(
        gm_testkit::emulator::EmulatorConfig { latency: std::time::Duration::from_millis(50), ..Default::default() },
        [],
    )
    .await;
    let dir = TempDir::new("app-two-workers");
    let session = || {
        Session::new(SessionConfig {
            provider: gm_core::ProviderKind::OpenAiCompatible,
            base_url: Some(emu.openai_url()),
            cache: gm_app::CacheSettings { enabled: false, ..Default::default() },
            ..config(&dir)
        })
    };
    let run = SuiteRun { concurrency: Some(2), ..SuiteRun::new(vec![suite(&dir, "shared", 24)]) };
    let cancel = Cancel::new();
    let heard = Heard { stop_after: Some((2, cancel.clone())), ..Heard::default() };
    let first = session().run_suites(&run, &heard, &cancel).await.unwrap();
    assert!(matches!(first, Outcome::Interrupted(_)));
    let resume = SuiteRun { resume: true, ..run };
    let (a, b, never) = (session(), session(), Cancel::new());
    let (ra, rb) = tokio::join!(a.run_suites(&resume, &(), &never), b.run_suites(&resume, &(), &never));
    let (done, refused) = match (ra, rb) {
        (Ok(done), Err(refused)) | (Err(refused), Ok(done)) => (done, refused),
        other => panic!("one resume runs the run and the other is refused: {other:?}"),
    };
    assert_eq!(done.finished().unwrap()[0].summary.summary.total_tests, 24);
    assert!(refused.is_usage() && refused.to_string().contains("is being run by another gm process"), "{refused}");
    // The first run's answers in flight were recorded when it stopped, so each case was asked once in all.
    assert_eq!(emu.stats().received, 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_stops_a_suite_with_what_it_recorded() {
    let dir = TempDir::new("app-budget");
    let session = Session::new(SessionConfig {
        cache: gm_app::CacheSettings { enabled: false, ..Default::default() },
        ..config(&dir)
    });
    let run = SuiteRun { concurrency: Some(1), max_requests: Some(4), ..SuiteRun::new(vec![suite(&dir, "b", 10)]) };
    let err = session.run_suites(&run, &(), &Cancel::new()).await.unwrap_err();
    assert!(err.is_budget() && !err.is_usage(), "{err}");
    let Error::SuiteStopped { run_id, recorded, .. } = err else { panic!("{err}") };
    assert_eq!((run_id, recorded), (1, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_counted_in_the_state_file_shown_and_reset() {
    let dir = TempDir::new("app-limits");
    let limits = LimitsSettings {
        spec: Some(gm_limits::LimitSpec::parse("100/1m,1000/1d").unwrap()),
        ..LimitsSettings::default()
    };
    let session = Session::new(SessionConfig { limits, ..config(&dir) });
    session
        .run_suites(&SuiteRun::new(vec![suite(&dir, "l", 3)]), &(), &Cancel::new())
        .await
        .unwrap()
        .finished()
        .unwrap();
    let status = session.limits_status(SystemTime::now()).unwrap();
    assert_eq!(status.state_file, dir.join("gm.sqlite"));
    let [key] = &status.keys[..] else { panic!("one key: {status:?}") };
    assert_eq!((key.provider.as_str(), key.model.as_str(), key.counted), ("demo", "openai/gpt-4.1", 3));
    assert_eq!(key.requests.last_minute, 3);
    assert_eq!(
        key.windows.iter().map(|w| (w.limit, w.used, w.remaining)).collect::<Vec<_>>(),
        [(100, 3, 97), (1000, 3, 997)]
    );
    assert!(key.blocked.is_none());
    // A server that sets a key's limits itself sees that key's windows against them, from the same counts.
    let given = |k: &str| (k == key.key).then(|| gm_limits::LimitSpec::parse("5/1m").unwrap());
    let shown = session.limits_status_with(SystemTime::now(), &given).unwrap();
    let w = &shown.keys[0].windows;
    assert_eq!(w.iter().map(|w| (w.limit, w.per.as_str(), w.used, w.remaining)).collect::<Vec<_>>(), [(5, "1m", 3, 2)]);
    assert_eq!(shown.keys[0].limits, "5/1m");
    let err = session.reset_limits(Some("demo:no-such-model")).unwrap_err();
    assert!(matches!(err, Error::NoLimitKey { .. }) && err.is_usage(), "{err}");
    assert_eq!(session.reset_limits(Some("demo:openai/gpt-4.1")).unwrap(), 1);
    assert!(session.limits_status(SystemTime::now()).unwrap().keys.is_empty());
    // Without a state file there is nothing to show.
    let err = Session::new(SessionConfig::demo()).limits_status(SystemTime::now()).unwrap_err();
    assert!(matches!(err, Error::NoStateFile { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_statistics_are_kept_once_per_finish_and_the_cache_clears() {
    let dir = TempDir::new("app-cache");
    let file = suite(&dir, "c", 5);
    for _ in 0..2 {
        let session = Session::new(config(&dir));
        session.run_suites(&SuiteRun::new(vec![file.clone()]), &(), &Cancel::new()).await.unwrap().finished().unwrap();
        session.finish();
        // A second finish adds only what happened since the first: nothing.
        session.finish();
    }
    let session = Session::new(config(&dir));
    let stats = session.cache_stats().unwrap();
    assert_eq!(stats.path, dir.join("gm.sqlite"));
    let s = stats.persistent;
    assert_eq!((s.entries, s.misses, s.hits), (5, 5, 5), "{s:?}");
    assert_eq!(stats.hit_rate, 0.5);
    assert!(stats.redis.is_none());
    let cleared = session.clear_cache().unwrap();
    assert_eq!((cleared.removed, cleared.from.as_deref()), (5, Some(dir.join("gm.sqlite").as_path())));
    assert_eq!(session.cache_stats().unwrap().persistent.entries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_and_the_credential_need_no_state_file() {
    let folder = TempDir::new("app-catalog");
    let dir = folder.join("state");
    let session = Session::new(SessionConfig {
        cache: gm_app::CacheSettings { enabled: false, ..Default::default() },
        ..config(&dir)
    });
    let catalog = session.models().await.unwrap();
    assert_eq!(catalog.provider, gm_core::ProviderKind::Demo);
    let chat = catalog.chat_models();
    assert!(chat.iter().any(|m| m.id == "openai/gpt-4.1"));
    assert!(chat.windows(2).all(|w| w[0].id.to_lowercase() <= w[1].id.to_lowercase()));
    assert_eq!(session.model("OpenAI/GPT-4.1").await.unwrap().id, "openai/gpt-4.1");
    let err = session.model("nope/zzzz").await.unwrap_err();
    let Error::UnknownModel { ref suggestions, .. } = err else { panic!("{err}") };
    assert!(err.is_usage() && suggestions.is_empty(), "{err}");
    // A near miss is told the closest ids, as the demo provider tells a run of one.
    let err = session.model("openai/gpt-4.2").await.unwrap_err();
    let Error::UnknownModel { ref suggestions, .. } = err else { panic!("{err}") };
    assert_eq!(suggestions.first().map(String::as_str), Some("openai/gpt-4.1"), "{err}");
    let err = session.model("mini").await.unwrap_err();
    assert!(err.to_string().contains("did you mean") && err.to_string().contains("openai/gpt-4.1-mini"), "{err}");
    let auth = session.auth_status();
    assert_eq!(
        (auth.provider, auth.credential.is_none(), auth.credential_required),
        (gm_core::ProviderKind::Demo, true, false)
    );
    assert!(!dir.exists(), "reading the catalog opened no state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_refuses_a_run_of_a_model_outside_its_catalog_before_recording_one() {
    let folder = TempDir::new("app-demo-unknown");
    let dir = folder.join("state");
    let session = Session::new(config(&dir));
    let file = suite(&folder.join("suites"), "u", 2);
    let run = SuiteRun { model: Some("openai/gpt-4.2".into()), ..SuiteRun::new(vec![file.clone()]) };
    let err = session.run_suites(&run, &(), &Cancel::new()).await.unwrap_err();
    let Error::UnknownModel { ref suggestions, .. } = err else { panic!("{err}") };
    assert!(err.is_usage() && suggestions.first().is_some_and(|s| s == "openai/gpt-4.1"), "{err}");
    let run = SuiteRun { judge_model: Some("nope/judge".into()), ..SuiteRun::new(vec![file]) };
    let err = session.run_suites(&run, &(), &Cancel::new()).await.unwrap_err();
    assert!(matches!(err, Error::UnknownModel { ref model, .. } if model == "nope/judge"), "{err}");
    let bench = BenchRun::new(vec!["openai/gpt-4.1".into(), "nope/x".into()], vec!["reasoning".into()]);
    let err = session.run_bench(&bench, &(), &Cancel::new()).await.unwrap_err();
    assert!(matches!(err, Error::UnknownModel { ref model, .. } if model == "nope/x"), "{err}");
    assert!(session.list_runs().unwrap().is_empty(), "a refused run was recorded");
    // A name the catalog has once is the demo's model, as it answers it.
    let run = SuiteRun { model: Some("gpt-4.1-mini".into()), ..SuiteRun::new(vec![suite(&folder, "n", 1)]) };
    session.run_suites(&run, &(), &Cancel::new()).await.unwrap().finished().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_without_a_data_folder_keeps_its_runs_in_memory() {
    let dir = TempDir::new("app-memory");
    let session = Session::new(SessionConfig::demo());
    let results = session.run_suites(&SuiteRun::new(vec![suite(&dir, "m", 2)]), &(), &Cancel::new()).await.unwrap();
    assert_eq!(results.finished().unwrap()[0].summary.summary.passed_tests, 2);
    assert_eq!(session.list_runs().unwrap().len(), 1);
    assert!(session.state_file().unwrap().is_none());
    assert!(matches!(session.cache_stats().unwrap_err(), Error::NoStateFile { .. }));
}

#[test]
fn an_unreadable_state_file_is_moved_aside_with_a_notice() {
    let dir = TempDir::new("app-garbage");
    std::fs::write(dir.join("gm.sqlite"), "not a database").unwrap();
    let session = Session::new(config(&dir));
    assert!(session.list_runs().unwrap().is_empty());
    let notices = session.take_notices();
    let [Notice::StateFileMovedAside { path, moved_to, kept: None }] = &notices[..] else { panic!("{notices:?}") };
    assert_eq!(path, &dir.join("gm.sqlite"));
    assert_eq!(std::fs::read_to_string(moved_to).unwrap(), "not a database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_with_a_damaged_page_is_moved_aside_keeping_the_run_history() {
    let dir = TempDir::new("app-damaged");
    let session = Session::new(config(&dir));
    let file = suite(&dir, "kept", 3);
    assert!(session
        .run_suites(&SuiteRun::new(vec![file.clone()]), &(), &Cancel::new())
        .await
        .unwrap()
        .finished()
        .is_some());
    // Fill the cache with answers large enough to take pages of their own, then damage one of them.
    let big = suite(&dir, "cached", 40);
    assert!(session.run_suites(&SuiteRun::new(vec![big]), &(), &Cancel::new()).await.unwrap().finished().is_some());
    session.finish();
    drop(session);
    let path = dir.join("gm.sqlite");
    let checkpoint = rusqlite_free_checkpoint(&path);
    assert!(checkpoint, "the state file has its pages in the main file");
    damage_a_cache_page(&path);
    // Every command works again: the file is checked, moved aside, and the history copied.
    let session = Session::new(config(&dir));
    let runs = session.list_runs().unwrap();
    let notices = session.take_notices();
    assert_eq!(runs.len(), 2, "{runs:?} {notices:?}");
    let [Notice::StateFileMovedAside { kept: Some(kept), moved_to, .. }] = &notices[..] else { panic!("{notices:?}") };
    assert_eq!((kept.runs, kept.cases, kept.lost), (2, 43, 0));
    assert!(moved_to.exists());
    let text = notices[0].to_string();
    assert!(
        text.contains("Kept: the run history (2 runs, 43 test cases)") && text.contains("Lost: the cached answers"),
        "{text}"
    );
    let again = session.run_suites(&SuiteRun::new(vec![file]), &(), &Cancel::new()).await.unwrap();
    assert_eq!(again.finished().unwrap()[0].summary.summary.total_tests, 3);
}

/// Folds the write-ahead log into the main file (opening and closing it does), and says whether it is gone.
fn rusqlite_free_checkpoint(path: &Path) -> bool {
    let store = gm_eval::store::RunStore::open(path).unwrap();
    drop(store);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    !Path::new(&wal).exists() || std::fs::metadata(&wal).unwrap().len() == 0
}

/// Overwrites the root page of the cache's table with garbage: the run history stays readable.
fn damage_a_cache_page(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let root: usize =
        conn.query_row("SELECT rootpage FROM sqlite_master WHERE name = 'cache_entries'", [], |r| r.get(0)).unwrap();
    drop(conn);
    let mut bytes = std::fs::read(path).unwrap();
    let page = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    let page = if page == 1 { 65_536 } else { page };
    let start = (root - 1) * page;
    bytes[start..start + page].fill(0xA5);
    std::fs::write(path, bytes).unwrap();
}

/// A server shares one session between requests and runs suites and benches on spawned tasks.
#[test]
fn a_session_and_its_runs_can_move_between_threads() {
    fn send_and_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let session = Session::new(SessionConfig::demo());
    send_and_sync(&session);
    let (suites, bench, cancel) = (SuiteRun::new(vec![]), BenchRun::new(vec![], vec![]), Cancel::new());
    send(&session.run_suites(&suites, &(), &cancel));
    send(&session.run_bench(&bench, &(), &cancel));
    send(&session.models());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_bench_shows_the_cells_it_recorded_and_resumes() {
    let dir = TempDir::new("app-unfinished");
    let no_cache = gm_app::CacheSettings { enabled: false, ..Default::default() };
    let session = Session::new(SessionConfig { cache: no_cache, ..config(&dir) });
    let models = vec!["openai/gpt-4.1".to_string(), "openai/gpt-4.1-mini".to_string()];
    let tasks = vec![suite(&dir, "sums", 5).display().to_string(), suite(&dir, "more", 5).display().to_string()];
    let run = BenchRun { concurrency: 1, max_requests: Some(7), ..BenchRun::new(models.clone(), tasks.clone()) };
    let err = session.run_bench(&run, &(), &Cancel::new()).await.unwrap_err();
    assert!(err.is_budget() && !err.is_usage(), "{err}");
    let Error::BenchStopped { run_id, recorded, total, .. } = err else { panic!("{err}") };
    assert_eq!(total, 20);
    assert!((7..20).contains(&recorded), "{recorded}");
    let StoredRun::UnfinishedBench(partial) = session.show_run(run_id).unwrap() else { panic!("an unfinished bench") };
    assert_eq!(partial.run_id, Some(run_id));
    assert_eq!(partial.cells.iter().map(|c| c.evaluation.test_results.len()).sum::<usize>(), recorded);
    for c in &partial.cells {
        assert!(models.contains(&c.model) && tasks.contains(&c.task), "{} on {}", c.model, c.task);
        let plain = c.model == "openai/gpt-4.1";
        assert_eq!(c.metrics.quality, if plain { 1.0 } else { 0.0 }, "{} on {}", c.model, c.task);
    }
    let err = session.compare_benches(run_id, run_id).unwrap_err();
    assert!(matches!(err, Error::UnfinishedBench { .. }), "{err}");

    let again = BenchRun { resume: true, max_requests: None, ..run };
    let heard = Heard::default();
    let finished = session.run_bench(&again, &heard, &Cancel::new()).await.unwrap().finished().unwrap();
    let started = heard.started.lock().unwrap()[0].clone();
    assert_eq!((started.total, started.done), (20, recorded));
    assert_eq!(started.cells.iter().map(|c| c.done).sum::<usize>(), recorded, "the recorded cases, cell by cell");
    assert!(started.cells.iter().all(|c| c.total == 5 && c.done <= 5));
    assert_eq!(finished.report.run_id, Some(run_id));
    assert!(matches!(session.show_run(run_id).unwrap(), StoredRun::Bench(_)));
}

#[tokio::test]
async fn reading_use_cases_leave_a_missing_data_folder_missing() {
    let dir = TempDir::new("app-read-only");
    let missing = dir.path().join("not/yet/there");
    let session = Session::new(config(&missing));
    assert!(session.list_runs().unwrap().is_empty());
    assert!(matches!(session.show_run(1), Err(Error::NoSuchRun { id: 1 })));
    assert!(matches!(session.compare_runs(1, 2), Err(Error::NoSuchRun { id: 1 })));
    let stats = session.cache_stats().unwrap();
    assert_eq!((stats.persistent.entries, stats.persistent.hits), (0, 0));
    assert_eq!(stats.path, missing.join(gm_app::STATE_FILE_NAME));
    let limits = session.limits_status(SystemTime::now()).unwrap();
    assert!(limits.keys.is_empty() && limits.state_file == missing.join(gm_app::STATE_FILE_NAME));
    session.models().await.unwrap();
    session.auth_status();
    session.finish();
    assert!(!dir.path().join("not").exists(), "a reading use case created the data folder");
}

#[test]
fn an_oversized_limits_file_is_refused_unread() {
    let dir = TempDir::new("app-big-limits");
    std::fs::create_dir_all(dir.path()).unwrap();
    let file = dir.join("limits.toml");
    std::fs::write(&file, "# padding\n".repeat(200_000)).unwrap();
    let session = Session::new(SessionConfig {
        limits: LimitsSettings { file: Some(file), ..LimitsSettings::default() },
        ..config(&dir)
    });
    let err = session.limits_config().unwrap_err();
    let source = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
    assert!(matches!(err, Error::Read { what: "the limits file", .. }), "{err:?}");
    assert!(source.contains("larger than 1 MiB"), "{source}");
}

/// A session on an OpenAI-compatible server at `url`, its state in `dir`, answers never cached.
fn server_config(dir: &Path, url: String, server_concurrency: Option<usize>) -> SessionConfig {
    SessionConfig {
        provider: gm_core::ProviderKind::OpenAiCompatible,
        base_url: Some(url),
        cache: gm_app::CacheSettings { enabled: false, ..Default::default() },
        limits: LimitsSettings { server_concurrency, ..Default::default() },
        ..config(dir)
    }
}

/// The same model under two names (the emulator answers both), benched on a suite of 6 rows.
async fn bench_two_names(session: &Session, dir: &Path, models: [&str; 2], serial: bool) -> gm_app::BenchResult {
    let task = suite(dir, "sums", 6).display().to_string();
    let run = BenchRun { serial, ..BenchRun::new(models.iter().map(|m| m.to_string()).collect(), vec![task]) };
    match session.run_bench(&run, &(), &Cancel::new()).await.unwrap() {
        Outcome::Finished(result) => result,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verdict_does_not_depend_on_the_order_of_the_models_on_a_one_at_a_time_server() {
    // A server that answers one request at a time and reports its service time, as llama.cpp does.
    let config = gm_testkit::emulator::EmulatorConfig {
        slots: Some(1),
        timings: true,
        latency: std::time::Duration::from_millis(30),
        ..Default::default()
    };
    let emu = gm_testkit::emulator::start(config, []).await;
    let dir = TempDir::new("app-order");
    let session = Session::new(server_config(&dir, emu.openai_url(), None));
    let ab = bench_two_names(&session, &dir, ["openai/gpt-4.1", "gpt-4.1"], false).await.report;
    let ba = bench_two_names(&session, &dir, ["gpt-4.1", "openai/gpt-4.1"], false).await.report;
    assert_eq!(ab.provider, "openai-compatible");
    for cell in ab.cells.iter().chain(&ba.cells) {
        for case in &cell.evaluation.gm.cases {
            // The server's own service time, not its queue: the same for every case.
            assert!(case.latency_from_server && case.latency_ms == 30.0, "{case:?}");
        }
    }
    // Equal service times are a tie, not "faster"; the winner is named by a rule that knows no order.
    assert_eq!(ab.summary.best_model, ba.summary.best_model);
    assert_eq!(ab.summary.best_model_reason, ba.summary.best_model_reason);
    assert_eq!(ab.summary.best_model_significant, Some(false));
    let reason = &ab.summary.best_model_reason;
    assert!(reason.contains("no significant difference in latency") && !reason.contains("faster"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_cap_holds_across_the_models_of_a_bench_and_its_wait_is_reported_apart() {
    let config =
        gm_testkit::emulator::EmulatorConfig { latency: std::time::Duration::from_millis(20), ..Default::default() };
    let emu = gm_testkit::emulator::start(config, []).await;
    let dir = TempDir::new("app-server-cap");
    // Four cases in flight per cell, two cells, one request at a time to the server.
    let session = Session::new(server_config(&dir, emu.openai_url(), Some(1)));
    let report = bench_two_names(&session, &dir, ["openai/gpt-4.1", "gpt-4.1"], false).await.report;
    assert_eq!(emu.stats().max_answering, 1, "{:?}", emu.stats());
    let cases: Vec<_> = report.cells.iter().flat_map(|c| c.evaluation.gm.cases.clone()).collect();
    assert_eq!(cases.len(), 12);
    // Eight were sent at once to a server taking one: the others waited in gm, and that wait is not latency.
    assert!(cases.iter().any(|c| c.queue_ms > 0.0), "{cases:?}");
    assert!(cases.iter().all(|c| !c.latency_from_server && !c.tokens_estimated));
    assert!(report.cells.iter().all(|c| c.metrics.queue_p50_ms.is_some()));

    // --serial: one case at a time over the whole bench, so nothing waits at all.
    let emu = gm_testkit::emulator::start(gm_testkit::emulator::EmulatorConfig::default(), []).await;
    let session = Session::new(server_config(&dir, emu.openai_url(), None));
    let report = bench_two_names(&session, &dir, ["gpt-4.1", "openai/gpt-4.1"], true).await.report;
    assert_eq!(emu.stats().max_answering, 1, "{:?}", emu.stats());
    assert_eq!(report.cells.iter().map(|c| c.evaluation.test_results.len()).sum::<usize>(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gentle_stop_of_a_bench_starts_no_new_case_in_any_cell_and_records_those_in_flight() {
    // Answers take 200 ms, two cells of two at a time: when the first is recorded, three more are in flight.
    let config =
        gm_testkit::emulator::EmulatorConfig { latency: std::time::Duration::from_millis(200), ..Default::default() };
    let emu = gm_testkit::emulator::start(config, []).await;
    let dir = TempDir::new("app-bench-stop");
    let session = Session::new(server_config(&dir, emu.openai_url(), None));
    let task = suite(&dir, "sums", 10).display().to_string();
    let models = vec!["openai/gpt-4.1".to_string(), "gpt-4.1".to_string()];
    let run = BenchRun { concurrency: 2, ..BenchRun::new(models, vec![task]) };
    let cancel = Cancel::new();
    let heard = Heard { stop_after: Some((1, cancel.clone())), ..Heard::default() };
    let Outcome::Interrupted(stop) = session.run_bench(&run, &heard, &cancel).await.unwrap() else {
        panic!("the bench was stopped")
    };
    let sent = emu.stats().received as usize;
    assert!(stop.recorded > 1, "the cases in flight were recorded: {stop:?}");
    assert_eq!(stop.recorded, sent, "every answer paid for is recorded");
    assert!(sent < 20, "no case started after the stop");
    let again = BenchRun { resume: true, ..run };
    let Outcome::Finished(result) = session.run_bench(&again, &(), &Cancel::new()).await.unwrap() else {
        panic!("the resumed bench finished")
    };
    assert_eq!(result.report.cells.iter().map(|c| c.evaluation.test_results.len()).sum::<usize>(), 20);
    assert_eq!(emu.stats().received, 20, "no case was sent twice");
}

//! Evaluate: choose models × tasks, start a bench, follow it cell by cell over server-sent events, cancel it,
//! resume it. The bench is gm-app's `Session::run_bench`, the one `gm bench` runs; its `Observer` events feed
//! the live progress.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, Path as UrlPath, RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use gm_app::{BenchRun, BoxError, Cancel, CaseFinished, Observer, Outcome, RunStarted};
use http::request::Parts;
use http::StatusCode;
use maud::{html, Markup};
use serde::Serialize;

use super::{all, app_error, first, page, problem, see_other, Form, Owner, SameOrigin, Shared, Viewer};

/// The largest evaluation a `--public` visitor may start.
pub(crate) const VISITOR_MODELS: usize = 2;
/// Tasks per visitor evaluation.
pub(crate) const VISITOR_TASKS: usize = 2;
/// Items per task of a visitor evaluation.
pub(crate) const VISITOR_ITEMS: usize = 2;

/// The most samples of each case an evaluation may ask for.
const MAX_REPEATS: u32 = 20;

/// The evaluations started from the dashboard since the gateway started.
#[derive(Default)]
pub(super) struct Jobs {
    next: AtomicU64,
    all: Mutex<HashMap<u64, Arc<Job>>>,
}

impl Jobs {
    fn get(&self, id: u64) -> Option<Arc<Job>> {
        self.all.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }
}

/// One evaluation: what it runs, who started it, where it stands.
pub(super) struct Job {
    id: u64,
    /// Who started it; `None` for the administrator.
    owner: Option<Owner>,
    run: BenchRun,
    cancel: Cancel,
    progress: Mutex<Progress>,
    changed: tokio::sync::watch::Sender<u64>,
    owners: Arc<Mutex<HashMap<Owner, HashSet<i64>>>>,
}

/// Where an evaluation stands, as the page and its event stream show it.
#[derive(Debug, Clone, Default, Serialize)]
struct Progress {
    /// `running`, `finished`, `interrupted` or `failed`.
    state: &'static str,
    /// What ended it, in words.
    message: Option<String>,
    run_id: Option<i64>,
    total: usize,
    done: usize,
    passed: usize,
    /// Test cases an earlier run had recorded (a resumed run does not ask them again).
    resumed: usize,
    cells: Vec<CellProgress>,
    best_model: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct CellProgress {
    model: String,
    task: String,
    /// Test cases in the cell.
    total: usize,
    /// Those recorded, by this run or the one it resumes.
    done: usize,
    passed: usize,
    /// The latest case's latency.
    latency_ms: Option<f64>,
}

impl Job {
    fn update(&self, f: impl FnOnce(&mut Progress)) {
        f(&mut self.progress.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.send_modify(|v| *v += 1);
    }

    fn snapshot(&self) -> Progress {
        self.progress.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn visible_to(&self, who: &Viewer) -> bool {
        who.is_admin() || self.owner.is_some() && self.owner == who.owner()
    }
}

impl Observer for Job {
    fn run_started(&self, run: &RunStarted) {
        if let Some(owner) = &self.owner {
            self.owners.lock().unwrap_or_else(|p| p.into_inner()).entry(owner.clone()).or_default().insert(run.run_id);
        }
        self.update(|p| {
            p.run_id = Some(run.run_id);
            p.total = run.total;
            p.done = run.done;
            p.resumed = run.done;
            p.cells = run
                .cells
                .iter()
                .map(|c| CellProgress {
                    model: c.model.clone(),
                    task: c.task.clone(),
                    total: c.total,
                    done: c.done,
                    ..CellProgress::default()
                })
                .collect();
        });
    }

    fn case_finished(&self, case: &CaseFinished<'_>) -> Result<(), BoxError> {
        let passed = case.result.passed();
        let (model, task) = case.cell.map(|c| (c.model, c.task)).unwrap_or(("", ""));
        self.update(|p| {
            p.done += 1;
            p.passed += usize::from(passed);
            let at = match p.cells.iter().position(|c| c.model == model && c.task == task) {
                Some(i) => i,
                None => {
                    p.cells.push(CellProgress { model: model.into(), task: task.into(), ..CellProgress::default() });
                    p.cells.len() - 1
                }
            };
            if at + 1 == p.cells.len() {
                // Cells in the run's order: models as chosen, then tasks by name.
                let rank = |m: &str| self.run.models.iter().position(|x| x == m).unwrap_or(usize::MAX);
                p.cells.sort_by(|a, b| (rank(&a.model), &a.task).cmp(&(rank(&b.model), &b.task)));
            }
            let Some(cell) = p.cells.iter_mut().find(|c| c.model == model && c.task == task) else { return };
            cell.done += 1;
            cell.passed += usize::from(passed);
            if !case.figures.cached {
                cell.latency_ms = Some(case.figures.latency_ms);
            }
        });
        Ok(())
    }
}

/// The suites of the configured folder: `(file name, path)`, by name.
fn suites(dir: Option<&Path>) -> Vec<(String, PathBuf)> {
    let Some(dir) = dir else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(".prompt.yml"))
        .filter_map(|p| Some((p.file_name()?.to_string_lossy().into_owned(), p)))
        .collect();
    out.sort();
    out
}

pub(super) async fn show(State(ui): State<Shared>, who: Viewer, RawQuery(q): RawQuery) -> Response {
    let q = super::pairs(q.as_deref().unwrap_or(""));
    let checked_models: Vec<&str> = all(&q, "model");
    let checked_tasks: Vec<&str> = all(&q, "task");
    let models: Vec<_> =
        crate::server::served_models(&ui.gateway).await.into_iter().filter(|m| m.is_chat_model()).collect();
    let catalog = match ui.evaluator.task_catalog(ui.options.tasks_dir.as_deref()) {
        Ok(c) => c,
        Err(e) => return app_error(&who, &e),
    };
    let suites = suites(ui.options.suites_dir.as_deref());
    let visitor = !who.is_admin();
    let body = html! {
        h1 { "Evaluate" }
        p { "Every chosen model answers every chosen task through the gateway's routes (the model ids as clients send them, with their fallbacks); the run is recorded in the run history and resumable if it stops." }
        @if visitor {
            p.note role="note" { "Without the administrator's key you may run up to " (super::eval::VISITOR_MODELS) " models × " (VISITOR_TASKS) " tasks with " (VISITOR_ITEMS) " items each, one sample of each case; every request is counted against your limits before the run starts." }
        }
        form.evaluate method="post" action="/ui/evaluate" {
            fieldset {
                legend { "Models" }
                @if models.is_empty() { p { "The upstream lists no models." } }
                div.choices {
                    @for m in &models {
                        label { input type="checkbox" name="model" value=(m.id) checked[checked_models.contains(&m.id.as_str())]; " " (m.id) }
                    }
                }
            }
            fieldset {
                legend { "Tasks" }
                div.choices {
                    @for t in &catalog {
                        label title=(t.description) { input type="checkbox" name="task" value=(t.name) checked[checked_tasks.contains(&t.name.as_str())]; " " (t.name) " " small { "(" (t.items) " items)" } }
                    }
                    @for (name, path) in &suites {
                        @let value = path.to_string_lossy();
                        label { input type="checkbox" name="task" value=(value) checked[checked_tasks.contains(&value.as_ref())]; " " (name) }
                    }
                }
                label for="suite_yaml" { "Or a " code { ".prompt.yml" } " of your own (pick a file or paste it)" }
                input #suite_file type="file" accept=".yml,.yaml" data-into="suite_yaml" aria-label="a .prompt.yml file";
                textarea #suite_yaml name="suite_yaml" rows="4" placeholder="name: …\nmessages: …\ntestData: …\nevaluators: …" {}
            }
            fieldset {
                legend { "Limits of the run" }
                label { "Items per task " input type="number" name="items" min="1" value=(first(&q, "items").unwrap_or("3")); }
                label { "Repeats of each case " input type="number" name="repeats" min="1" max="20" value=(first(&q, "repeats").unwrap_or("1")); }
                label { "Max requests " input type="number" name="max_requests" min="1" placeholder="no limit" value=[first(&q, "max_requests")]; }
                label { input type="checkbox" name="resume" value="1" checked[first(&q, "resume").is_some()]; " Resume the last unfinished run of these models and tasks" }
            }
            button type="submit" { "Start" }
        }
        (jobs_list(&ui, &who))
    };
    page("Evaluate", Some(&who), body)
}

fn jobs_list(ui: &Shared, who: &Viewer) -> Markup {
    let mut jobs: Vec<Arc<Job>> =
        ui.jobs.all.lock().unwrap_or_else(|p| p.into_inner()).values().filter(|j| j.visible_to(who)).cloned().collect();
    jobs.sort_by_key(|j| std::cmp::Reverse(j.id));
    html! {
        @if !jobs.is_empty() {
            h2 { "Evaluations started here" }
            ul {
                @for j in &jobs {
                    @let p = j.snapshot();
                    li { a href={ "/ui/jobs/" (j.id) } { (j.run.models.join(", ")) " × " (j.run.tasks.len()) " tasks" } " · " (p.state) " · " (p.done) " of " (p.total) }
                }
            }
        }
    }
}

/// Why a form cannot start an evaluation.
fn refuse(who: &Viewer, message: &str) -> Response {
    problem(StatusCode::BAD_REQUEST, "Evaluate", Some(who), message)
}

pub(super) async fn start(_: SameOrigin, who: Viewer, State(ui): State<Shared>, Form(form): Form) -> Response {
    let models: Vec<String> = all(&form, "model").into_iter().map(String::from).collect();
    let mut tasks: Vec<String> = all(&form, "task").into_iter().map(String::from).collect();
    // Only what the page offers: a task of the catalog or a suite of the configured folder, never another path.
    let offered = suites(ui.options.suites_dir.as_deref());
    let catalog = match ui.evaluator.task_catalog(ui.options.tasks_dir.as_deref()) {
        Ok(c) => c,
        Err(e) => return app_error(&who, &e),
    };
    for t in &tasks {
        let known = catalog.iter().any(|c| c.name == *t) || offered.iter().any(|(_, p)| p.to_string_lossy() == *t);
        if !known {
            return refuse(&who, &format!("`{t}` is neither a task nor a suite this page offers; choose one it lists"));
        }
    }
    if let Some(yaml) = first(&form, "suite_yaml") {
        match uploaded(yaml) {
            Ok(path) => tasks.push(path.to_string_lossy().into_owned()),
            Err(e) => return refuse(&who, &e),
        }
    }
    if models.is_empty() || tasks.is_empty() {
        return refuse(&who, "choose at least one model and one task (or give a .prompt.yml)");
    }
    let number = |name: &str| match first(&form, name) {
        None => Ok(None),
        Some(v) => v.parse::<u64>().ok().filter(|n| *n > 0).map(Some).ok_or(()),
    };
    let (Ok(items), Ok(max_requests), Ok(repeats)) = (number("items"), number("max_requests"), number("repeats"))
    else {
        return refuse(&who, "items, repeats and max requests are whole numbers above 0 (or empty)");
    };
    let mut run = BenchRun::new(models, tasks);
    run.tasks_dir = ui.options.tasks_dir.clone();
    run.limit_items = items.map(|n| n as usize);
    run.max_requests = max_requests;
    run.repeat = repeats.map_or(1, |n| n.min(u64::from(MAX_REPEATS)) as u32);
    run.resume = first(&form, "resume").is_some();
    launch(&ui, &who, run)
}

/// Starts `run` for `who`: anyone's but the administrator's within a visitor's size, each of its requests
/// counted against their limits first. Answers with the job's page.
fn launch(ui: &Shared, who: &Viewer, mut run: BenchRun) -> Response {
    let owner = who.owner();
    if owner.is_some() {
        if run.models.len() > VISITOR_MODELS || run.tasks.len() > VISITOR_TASKS {
            return problem(
                StatusCode::FORBIDDEN,
                "Evaluate",
                Some(who),
                &format!("an evaluation of more than {VISITOR_MODELS} models or {VISITOR_TASKS} tasks needs the administrator's key; choose fewer"),
            );
        }
        let items = run.limit_items.unwrap_or(VISITOR_ITEMS).min(VISITOR_ITEMS);
        run.limit_items = Some(items);
        run.repeat = 1;
        let requests = (run.models.len() * run.tasks.len() * items) as u64;
        run.max_requests = Some(run.max_requests.unwrap_or(requests).min(requests));
        // Each request the run may send is counted against the visitor's or the key's limits before it starts.
        let caller = who.caller();
        for _ in 0..run.max_requests.unwrap_or(0) {
            if let Err(f) = ui.gateway.access().admit(&caller, gm_limits::TokenCount::ZERO) {
                let mut r = problem(StatusCode::TOO_MANY_REQUESTS, "Evaluate", Some(who), &f.message);
                for (k, v) in &f.headers {
                    r.headers_mut().insert(k.clone(), v.clone());
                }
                return r;
            }
        }
    }
    let id = ui.jobs.next.fetch_add(1, Ordering::Relaxed) + 1;
    let job = Arc::new(Job {
        id,
        owner,
        run,
        cancel: Cancel::new(),
        progress: Mutex::new(Progress { state: "running", ..Progress::default() }),
        changed: tokio::sync::watch::Sender::new(0),
        owners: ui.owners.clone(),
    });
    ui.jobs.all.lock().unwrap_or_else(|p| p.into_inner()).insert(id, job.clone());
    let session = ui.evaluator.clone();
    tokio::spawn(async move {
        let outcome = session.run_bench(&job.run, &*job, &job.cancel).await;
        // The run's cache figures reach the state file, as when a command ends.
        let finishing = session.clone();
        let _ = tokio::task::spawn_blocking(move || finishing.finish()).await;
        job.update(|p| match outcome {
            Ok(Outcome::Finished(r)) => {
                p.state = "finished";
                p.run_id = r.report.run_id.or(p.run_id);
                p.best_model = r.report.summary.best_model.clone();
                p.message = Some(r.report.summary.best_model_reason.clone());
            }
            Ok(Outcome::Interrupted(i)) => {
                p.state = "interrupted";
                p.message = Some(format!(
                    "cancelled with {} of {} test cases recorded; resume continues it",
                    i.recorded, i.total
                ));
            }
            Err(e) => {
                p.state = "failed";
                p.message = Some(e.to_string());
            }
        });
    });
    see_other(&format!("/ui/jobs/{id}"))
}

/// Keeps an uploaded suite in a file named by its content (so resuming the same upload finds its run).
fn uploaded(yaml: &str) -> Result<PathBuf, String> {
    gm_eval::prompt::PromptFile::parse(yaml, "uploaded.prompt.yml").map_err(|e| format!("the uploaded suite: {e}"))?;
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(yaml.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join("gm-dashboard-uploads");
    std::fs::create_dir_all(&dir).map_err(|e| format!("could not keep the uploaded suite: {e}"))?;
    let path = dir.join(format!("upload-{digest}.prompt.yml"));
    std::fs::write(&path, yaml).map_err(|e| format!("could not keep the uploaded suite: {e}"))?;
    Ok(path)
}

/// An evaluation of the path's id that the viewer may follow (the administrator any, others their own).
pub(super) struct VisibleJob {
    who: Viewer,
    job: Arc<Job>,
}

impl FromRequestParts<Shared> for VisibleJob {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ui: &Shared) -> Result<Self, Response> {
        let who = Viewer::from_request_parts(parts, ui).await?;
        let id = match UrlPath::<u64>::from_request_parts(parts, ui).await {
            Ok(UrlPath(id)) => id,
            Err(e) => return Err(problem(StatusCode::NOT_FOUND, "Evaluate", Some(&who), &e.body_text())),
        };
        match ui.jobs.get(id) {
            Some(job) if job.visible_to(&who) => Ok(VisibleJob { who, job }),
            _ => Err(problem(
                StatusCode::NOT_FOUND,
                "Evaluate",
                Some(&who),
                &format!("no evaluation {id} of yours is known here (evaluations are kept until the gateway stops); the run history has every recorded run"),
            )),
        }
    }
}

pub(super) async fn job_page(VisibleJob { who, job }: VisibleJob) -> Response {
    let id = job.id;
    let p = job.snapshot();
    let body = html! {
        h1 { "Evaluation " (id) }
        p { "Models: " (job.run.models.join(", ")) ". Tasks: " (job.run.tasks.iter().map(|t| t.rsplit('/').next().unwrap_or(t)).collect::<Vec<_>>().join(", ")) "." }
        section #job data-events={ "/ui/jobs/" (id) "/events" } aria-live="polite" {
            p #job-status { (status_line(&p)) }
            progress #job-bar max=(p.total.max(1)) value=(p.done) aria-label="test cases done" {}
            div.scroll { table #job-cells {
                thead { tr { th { "Model" } th { "Task" } th { "Progress" } th.num { "Cases done" } th.num { "Passed" } th.num { "Latest latency" } } }
                tbody {
                    @for c in &p.cells {
                        tr { td { (c.model) } td { (c.task) }
                            td { progress max=(c.total.max(1)) value=(c.done) aria-label={ (c.model) " × " (c.task) ": test cases done" } {} }
                            td.num { (c.done) " of " (c.total) } td.num { (c.passed) } td.num { (c.latency_ms.map(|l| format!("{l:.0} ms")).unwrap_or_else(|| "-".into())) } }
                    }
                }
            } }
            p #job-result { (result_line(&p)) }
        }
        div.actions {
            form method="post" action={ "/ui/jobs/" (id) "/cancel" } { button #cancel type="submit" disabled[p.state != "running"] { "Cancel" } }
            form method="post" action={ "/ui/jobs/" (id) "/resume" } { button #resume type="submit" disabled[p.state == "running" || p.state == "finished"] { "Resume" } }
        }
    };
    page("Evaluate", Some(&who), body)
}

fn status_line(p: &Progress) -> String {
    let resumed = if p.resumed > 0 { format!(" ({} from the earlier run)", p.resumed) } else { String::new() };
    let state = match p.state {
        "running" => "running",
        "finished" => "done",
        "interrupted" => "interrupted",
        _ => "failed",
    };
    format!("{state}: {} of {} test cases{resumed}, {} passed", p.done, p.total, p.passed)
}

fn result_line(p: &Progress) -> Markup {
    html! {
        @if let Some(m) = &p.message { span.message { (m) } " " }
        @if let (Some(run), true) = (p.run_id, p.state != "running") {
            a #run-link href={ "/ui/runs/" (run) } { "Open run " (run) }
        }
    }
}

pub(super) async fn events(VisibleJob { job, .. }: VisibleJob) -> Response {
    let rx = job.changed.subscribe();
    // The current state at once, then each change; the stream ends after the final state.
    let stream = futures_util::stream::unfold((job, rx, true, false), |(job, mut rx, first, over)| async move {
        if over {
            return None;
        }
        if !first && rx.changed().await.is_err() {
            return None;
        }
        rx.borrow_and_update();
        let p = job.snapshot();
        let done = p.state != "running";
        let mut view = serde_json::to_value(&p).unwrap_or_default();
        view["status"] = status_line(&p).into();
        view["result"] = result_line(&p).into_string().into();
        let event = Event::default().event("progress").data(view.to_string());
        Some((Ok::<_, Infallible>(event), (job, rx, false, done)))
    });
    Sse::new(stream.boxed()).keep_alive(KeepAlive::default()).into_response()
}

pub(super) async fn cancel(_: SameOrigin, VisibleJob { job, .. }: VisibleJob) -> Response {
    job.cancel.cancel();
    see_other(&format!("/ui/jobs/{}", job.id))
}

pub(super) async fn resume(_: SameOrigin, State(ui): State<Shared>, VisibleJob { who, job }: VisibleJob) -> Response {
    if job.snapshot().state == "running" {
        return see_other(&format!("/ui/jobs/{}", job.id));
    }
    let mut run = job.run.clone();
    run.resume = true;
    launch(&ui, &who, run)
}

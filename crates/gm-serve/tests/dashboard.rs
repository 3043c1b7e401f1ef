//! The dashboard's handlers, in process: each page's status and content, an evaluation followed to its end
//! over its event stream, escaping of model text, forms from elsewhere, signing in, and the showcase's limits.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use gm_app::{CacheSettings, Cancel, Session, SessionConfig, StoredRun, SuiteRun};
use gm_core::ProviderKind;
use gm_emulator::{Emulator, EmulatorConfig};
use gm_serve::ui::{Dashboard, DashboardOptions};
use gm_serve::{AppState, PublicLimits, Routing, ServeConfig, UpstreamConfig};
use gm_testkit::TempDir;
use http::{Method, Request, StatusCode};
use tower::ServiceExt;

const HOST: &str = "gm.test";
const ORIGIN: &str = "http://gm.test";

fn local() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

fn kept_in(dir: &TempDir) -> SessionConfig {
    SessionConfig {
        data_dir: Some(dir.path().to_path_buf()),
        cache: CacheSettings { enabled: false, ..CacheSettings::default() },
        ..SessionConfig::default()
    }
}

/// The gateway's API and its dashboard, as `gm serve` merges them, without a socket.
fn app(config: &ServeConfig, session: SessionConfig) -> Router {
    let mut config = config.clone();
    config.log = gm_serve::LogTarget::Off;
    let config = &config;
    let state = AppState::new(config, Arc::new(Session::new(session))).expect("the gateway's state");
    let ui = Dashboard::new(config, DashboardOptions::default()).router(state.clone());
    gm_serve::observed(gm_serve::api_router(state.clone()).merge(ui), state)
}

struct Page {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

async fn send(app: &Router, req: Request<Body>) -> Page {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
    Page { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

fn request(method: Method, path: &str, peer: SocketAddr, headers: &[(&str, &str)], body: String) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path).header("host", HOST);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b.body(Body::from(body)).unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

async fn get(app: &Router, path: &str, peer: SocketAddr) -> Page {
    send(app, request(Method::GET, path, peer, &[], String::new())).await
}

async fn get_with(app: &Router, path: &str, peer: SocketAddr, headers: &[(&str, &str)]) -> Page {
    send(app, request(Method::GET, path, peer, headers, String::new())).await
}

/// A form posted from the dashboard's own page.
async fn post(app: &Router, path: &str, peer: SocketAddr, form: &str) -> Page {
    let h = [("origin", ORIGIN), ("content-type", "application/x-www-form-urlencoded")];
    send(app, request(Method::POST, path, peer, &h, form.to_string())).await
}

/// The playground's request for one model, as its script sends it.
async fn playground(app: &Router, peer: SocketAddr, model: &str, prompt: &str) -> Page {
    let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": prompt}]}).to_string();
    let h = [("origin", ORIGIN), ("content-type", "application/json")];
    send(app, request(Method::POST, "/ui/playground/chat", peer, &h, body)).await
}

/// Starts an evaluation from the form and follows its event stream to the end: the last progress event.
async fn evaluate(app: &Router, peer: SocketAddr, form: &str) -> serde_json::Value {
    let started = post(app, "/ui/evaluate", peer, form).await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let job = started.headers["location"].to_str().unwrap().to_string();
    let page = get(app, &job, peer).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!("data-events=\"{job}/events\"")), "{}", page.body);
    let events = get(app, &format!("{job}/events"), peer).await;
    assert_eq!(events.headers["content-type"], "text/event-stream");
    last_progress(&events.body)
}

/// The last progress event of an event stream.
fn last_progress(body: &str) -> serde_json::Value {
    let last = body.lines().filter_map(|l| l.strip_prefix("data: ")).next_back().expect("a progress event");
    serde_json::from_str(last).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_answers_with_its_content() {
    let dir = TempDir::new("ui-pages");
    let app = app(&ServeConfig::new(Routing::demo()), kept_in(&dir));
    for (path, wants) in [
        ("/", "The demo provider answers here"),
        ("/ui/models", "openai/gpt-4.1-mini"),
        ("/ui/playground", "<select name=\"model\" required>"),
        ("/ui/evaluate", "value=\"question_answering\""),
        ("/ui/runs", "No run matches."),
        ("/ui/quotas", "Rate-limit windows"),
    ] {
        let p = get(&app, path, local()).await;
        assert_eq!(p.status, StatusCode::OK, "{path}: {}", p.body);
        assert_eq!(p.headers["content-type"], "text/html; charset=utf-8", "{path}");
        assert!(p.body.contains(wants), "{path} lacks {wants}: {}", p.body);
        assert!(p.headers["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    }
    // The models page says what serves each model and at what price; embeddings are no playground choice.
    let models = get(&app, "/ui/models", local()).await.body;
    assert!(models.contains("<td>*</td>"), "the demo's one route serves every id: {models}");
    let chat = get(&app, "/ui/playground", local()).await.body;
    assert!(!chat.contains("text-embedding"), "{chat}");
    let js = get(&app, "/ui/assets/dashboard.js", local()).await;
    assert_eq!(
        (js.status, js.headers["content-type"].to_str().unwrap()),
        (StatusCode::OK, "text/javascript; charset=utf-8")
    );
    assert!(js.body.contains("EventSource"));
    let css = get(&app, "/ui/assets/dashboard.css", local()).await;
    assert_eq!(css.headers["content-type"], "text/css; charset=utf-8");
    // The API is still beside it, with its own envelope for what it does not serve.
    let api = get(&app, "/v1/models", local()).await;
    assert_eq!(api.status, StatusCode::OK);
    assert_eq!(get(&app, "/ui/no-such-page", local()).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evaluation_streams_to_its_end_and_its_run_shows_what_gm_bench_prints() {
    let dir = TempDir::new("ui-evaluate");
    let app = app(&ServeConfig::new(Routing::demo()), kept_in(&dir));
    let form = "model=openai%2Fgpt-4.1&model=openai%2Fgpt-4.1-mini&task=question_answering&task=reasoning&items=3";
    let done = evaluate(&app, local(), form).await;
    assert_eq!(done["state"], "finished", "{done}");
    assert_eq!((done["total"].as_u64(), done["done"].as_u64()), (Some(12), Some(12)), "{done}");
    let cells = done["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4, "{done}");
    assert!(cells.iter().all(|c| c["done"] == 3 && c["total"] == 3), "{done}");
    assert_eq!(cells[0]["model"], "openai/gpt-4.1", "cells in the order chosen: {done}");
    let run_id = done["run_id"].as_i64().unwrap();
    // Each cell has its own bar, full at the end.
    let job = get(&app, "/ui/jobs/1", local()).await.body;
    let bar = "<progress max=\"3\" value=\"3\" aria-label=\"openai/gpt-4.1 × reasoning: test cases done\">";
    assert!(job.contains(bar), "{job}");

    // The run as the library gives it (what `gm bench --json` printed) is what the page shows.
    let session = Session::new(kept_in(&dir));
    let Ok(StoredRun::Bench(stored)) = session.show_run(run_id) else { panic!("a finished bench") };
    let best = stored.printed["summary"]["best_model"].as_str().unwrap().to_string();
    assert_eq!(done["best_model"], best.as_str());
    let page = get(&app, &format!("/ui/runs/{run_id}"), local()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!("data-model=\"{best}\"")), "{}", page.body);
    for drawn in ["quality heat map", "Latency distribution per model", "Quality against cost", "Every cell"] {
        assert!(page.body.contains(drawn), "the run page draws the bench report's {drawn}");
    }
    let json = get(&app, &format!("/ui/runs/{run_id}/export/json"), local()).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&json.body).unwrap(), stored.printed);
    let junit = get(&app, &format!("/ui/runs/{run_id}/export/junit"), local()).await;
    assert!(junit.body.starts_with("<?xml") && junit.body.contains("<testsuite"), "{}", junit.body);
    assert!(junit.headers["content-disposition"].to_str().unwrap().contains("attachment"));
    let html = get(&app, &format!("/ui/runs/{run_id}/export/html"), local()).await;
    assert!(html.body.starts_with("<!DOCTYPE html>"));

    // A second run of the same bench, compared with the first: the same cells, no significant change.
    let again = evaluate(&app, local(), form).await;
    let second = again["run_id"].as_i64().unwrap();
    let compared = get(&app, &format!("/ui/compare?baseline={run_id}&candidate={second}"), local()).await;
    assert_eq!(compared.status, StatusCode::OK, "{}", compared.body);
    assert!(compared.body.contains("No cell regressed significantly"), "{}", compared.body);
    assert!(compared.body.contains("Against the baseline"));
    let list = get(&app, "/ui/runs?model=gpt-4.1-mini&since=2000-01-01", local()).await;
    assert!(list.body.contains(&format!("href=\"/ui/runs/{second}\"")), "{}", list.body);
    let none = get(&app, "/ui/runs?suite=no-such-suite", local()).await;
    assert!(none.body.contains("No run matches."));
    assert_eq!(get(&app, "/ui/runs?since=yesterday", local()).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_evaluation_resumes_where_it_stopped() {
    let dir = TempDir::new("ui-cancel");
    // A slow upstream, so the evaluation is still running when it is cancelled.
    let emu = Emulator::start(EmulatorConfig {
        require_auth: false,
        latency: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut up = UpstreamConfig::new("emu", ProviderKind::OpenAiCompatible);
    up.base_url = Some(emu.openai_url());
    let app = app(&ServeConfig::new(Routing::single(up)), kept_in(&dir));
    let form = "model=openai%2Fgpt-4.1&task=question_answering&items=20";
    let started = post(&app, "/ui/evaluate", local(), form).await;
    let job = started.headers["location"].to_str().unwrap().to_string();
    let cancelled = post(&app, &format!("{job}/cancel"), local(), "").await;
    assert_eq!(cancelled.status, StatusCode::SEE_OTHER);
    let events = get(&app, &format!("{job}/events"), local()).await;
    let last = last_progress(&events.body);
    assert_eq!(last["state"], "interrupted", "{last}");
    let recorded = last["done"].as_u64().unwrap();
    assert!(recorded < 20, "{last}");
    let resumed = post(&app, &format!("{job}/resume"), local(), "").await;
    let next = resumed.headers["location"].to_str().unwrap().to_string();
    let events = get(&app, &format!("{next}/events"), local()).await;
    let done = last_progress(&events.body);
    assert_eq!(done["state"], "finished", "{done}");
    assert_eq!(done["resumed"].as_u64(), Some(recorded), "{done}");
    assert_eq!(done["run_id"], last["run_id"], "the same run continued");
    assert_eq!(done["done"].as_u64(), Some(20));
    // The resumed run's cell counts the cases of the run it continues.
    assert_eq!((done["cells"][0]["done"].as_u64(), done["cells"][0]["total"].as_u64()), (Some(20), Some(20)), "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_text_is_shown_as_text() {
    let dir = TempDir::new("ui-escape");
    let suite = dir.path().join("x.prompt.yml");
    std::fs::write(
        &suite,
        "name: escape\nmodel: openai/gpt-4.1\nmessages:\n  - role: user\n    content: \"Summarize: {{text}}\"\n\
         testData:\n  - text: \"<script>alert(1)</script> was found in the page. It ran.\"\n\
         evaluators:\n  - name: any\n    string: {contains: \"a\"}\n",
    )
    .unwrap();
    let session = Session::new(kept_in(&dir));
    let results = session.run_suites(&SuiteRun::new(vec![suite]), &(), &Cancel::new()).await.unwrap();
    let results = results.finished().unwrap();
    let answer = &results[0].summary.test_results[0].model_response;
    assert!(answer.contains("<script>alert(1)</script>"), "the model's answer carries markup: {answer}");
    let app = app(&ServeConfig::new(Routing::demo()), kept_in(&dir));
    let page = get(&app, &format!("/ui/runs/{}", results[0].run_id), local()).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", page.body);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_from_elsewhere_change_nothing() {
    let dir = TempDir::new("ui-csrf");
    let app = app(&ServeConfig::new(Routing::demo()), kept_in(&dir));
    let form = "model=openai%2Fgpt-4.1&task=reasoning&items=1";
    let form_type = ("content-type", "application/x-www-form-urlencoded");
    for headers in [vec![form_type], vec![form_type, ("origin", "http://elsewhere.example")]] {
        let p = send(&app, request(Method::POST, "/ui/evaluate", local(), &headers, form.into())).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
        let p = send(&app, request(Method::POST, "/ui/cache/clear", local(), &headers, String::new())).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
        let p = send(&app, request(Method::POST, "/ui/playground/chat", local(), &headers, "{}".into())).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
    }
    assert!(!get(&app, "/ui/evaluate", local()).await.body.contains("Evaluations started here"), "no job started");
    // A form names only what the page offers: no path of the server's disk, however it is spelt.
    for task in ["Cargo.toml", "..%2F..%2Fetc%2Fpasswd", "x.prompt.yml"] {
        let p = post(&app, "/ui/evaluate", local(), &format!("model=openai%2Fgpt-4.1&task={task}")).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{task}: {}", p.body);
        assert!(p.body.contains("neither a task nor a suite this page offers"), "{}", p.body);
    }
    assert_eq!(post(&app, "/ui/cache/clear", local(), "").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_streams_through_the_gateway() {
    let dir = TempDir::new("ui-playground");
    let app = app(&ServeConfig::new(Routing::demo()), kept_in(&dir));
    let p = playground(&app, local(), "openai/gpt-4.1", "What is 40 + 2?").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.headers["content-type"], "text/event-stream");
    assert!(p.body.contains("42"), "{}", p.body);
    assert!(p.body.contains("\"usage\""), "the usage reaches the page for its figures: {}", p.body);
    assert!(p.body.trim_end().ends_with("data: [DONE]"));
    let h = [("origin", ORIGIN), ("content-type", "application/json")];
    let bad = send(&app, request(Method::POST, "/ui/playground/chat", local(), &h, "[1]".into())).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(bad.body.contains("a JSON object"), "{}", bad.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_gateway_asks_for_a_key_and_a_key_signs_in() {
    let dir = TempDir::new("ui-keys");
    let store = gm_serve::keys::open_store(Some(&dir.path().join("gm.sqlite")), None).unwrap();
    let mut key = gm_serve::keys::generate("ops", None, None).unwrap();
    key.record.admin = true;
    store.insert(&key.record).unwrap();
    let app = app(&ServeConfig::new(Routing::demo()), kept_in(&dir));
    let p = get(&app, "/ui/runs", local()).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.body.contains("action=\"/ui/login\""), "{}", p.body);
    let wrong = post(&app, "/ui/login", local(), "key=gm-not-a-key").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let signed = post(&app, "/ui/login", local(), &format!("key={}", key.secret)).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    let cookie = signed.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    let p = get_with(&app, "/ui/quotas", local(), &[("cookie", &pair)]).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("signed in as ops (administrator)"), "{}", p.body);
    assert!(!p.body.contains(&key.secret), "a page never shows the key");
    assert!(p.body.contains(&key.record.id), "the key is listed by its id: {}", p.body);
}

/// A key made and stored as `gm serve keys create` makes it; its sign-in cookie.
fn key_in(dir: &TempDir, name: &str, admin: bool) -> (gm_serve::keys::NewKey, String) {
    let store = gm_serve::keys::open_store(Some(&dir.path().join("gm.sqlite")), None).unwrap();
    let mut key = gm_serve::keys::generate(name, None, None).unwrap();
    key.record.admin = admin;
    store.insert(&key.record).unwrap();
    let cookie = format!("gm_key={}", key.secret);
    (key, cookie)
}

/// A form posted from the dashboard's own page by a signed-in browser.
async fn post_as(app: &Router, path: &str, cookie: &str, form: &str) -> Page {
    let h = [("origin", ORIGIN), ("content-type", "application/x-www-form-urlencoded"), ("cookie", cookie)];
    send(app, request(Method::POST, path, local(), &h, form.to_string())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administration_needs_the_admin_key_and_a_key_holder_sees_only_its_own_runs() {
    let dir = TempDir::new("ui-admin");
    let (alice, alice_c) = key_in(&dir, "alice", false);
    let (_, bob_c) = key_in(&dir, "bob", false);
    let app = app(&ServeConfig::new(Routing::demo()), kept_in(&dir));

    // Without an admin key, no one administers the dashboard, and the refusal says how to make one.
    let refused = post_as(&app, "/ui/cache/clear", &alice_c, "").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("gm serve keys create --name admin --admin"), "{}", refused.body);

    let (_, root_c) = key_in(&dir, "root", true);
    // An ordinary key is refused every administrative action, with a page that says what it takes.
    for (path, form) in [
        ("/ui/cache/clear", ""),
        ("/ui/quotas/reset", "key="),
        ("/ui/evaluate", "model=openai%2Fgpt-4.1&model=openai%2Fgpt-4.1-mini&model=x&task=reasoning&items=1"),
    ] {
        let p = post_as(&app, path, &alice_c, form).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}: {}", p.body);
        assert!(
            p.body.contains("administrator&#39;s key") || p.body.contains("administrator's key"),
            "{path}: {}",
            p.body
        );
    }
    let quotas = get_with(&app, "/ui/quotas", local(), &[("cookie", &alice_c)]).await;
    assert_eq!(quotas.status, StatusCode::OK);
    assert!(quotas.body.contains("signed in as alice"), "{}", quotas.body);
    assert!(!quotas.body.contains("id=\"keys\"") && !quotas.body.contains("bob"), "{}", quotas.body);
    assert!(!quotas.body.contains("action=\"/ui/cache/clear\""), "{}", quotas.body);

    // The admin key succeeds, and sees the keys with their roles.
    assert_eq!(post_as(&app, "/ui/cache/clear", &root_c, "").await.status, StatusCode::SEE_OTHER);
    assert_eq!(post_as(&app, "/ui/quotas/reset", &root_c, "key=").await.status, StatusCode::SEE_OTHER);
    let quotas = get_with(&app, "/ui/quotas", local(), &[("cookie", &root_c)]).await.body;
    assert!(quotas.contains("signed in as root (administrator)"), "{quotas}");
    assert!(quotas.contains(&alice.record.id) && quotas.contains("<td>administrator</td>"), "{quotas}");

    // Alice's evaluation is hers: Bob sees neither its run nor its progress; the administrator sees both.
    let started = post_as(&app, "/ui/evaluate", &alice_c, "model=openai%2Fgpt-4.1&task=reasoning&items=1").await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let job = started.headers["location"].to_str().unwrap().to_string();
    let events = get_with(&app, &format!("{job}/events"), local(), &[("cookie", &alice_c)]).await;
    let done = last_progress(&events.body);
    assert_eq!(done["state"], "finished", "{done}");
    let run = done["run_id"].as_i64().unwrap();
    let link = format!("href=\"/ui/runs/{run}\"");
    let as_ = |c: &str| [("cookie", c.to_string())];
    let runs_of = |c: &str| {
        let h = as_(c);
        let app = app.clone();
        async move { get_with(&app, "/ui/runs", local(), &[(h[0].0, &h[0].1)]).await.body }
    };
    assert!(runs_of(&alice_c).await.contains(&link));
    assert!(!runs_of(&bob_c).await.contains(&link));
    assert!(runs_of(&root_c).await.contains(&link));
    for path in [format!("/ui/runs/{run}"), format!("/ui/runs/{run}/export/json"), job.clone()] {
        assert_eq!(get_with(&app, &path, local(), &[("cookie", &bob_c)]).await.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(get_with(&app, &path, local(), &[("cookie", &root_c)]).await.status, StatusCode::OK, "{path}");
    }
    let compare = format!("/ui/compare?baseline={run}&candidate={run}");
    assert_eq!(get_with(&app, &compare, local(), &[("cookie", &bob_c)]).await.status, StatusCode::NOT_FOUND);
    // Bob cannot cancel it either.
    assert_eq!(post_as(&app, &format!("{job}/cancel"), &bob_c, "").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_over_the_limit_is_told_so_and_nothing_reaches_the_upstream() {
    let dir = TempDir::new("ui-showcase");
    let emu = Emulator::start(EmulatorConfig { require_auth: false, ..Default::default() }).await.unwrap();
    let mut up = UpstreamConfig::new("emu", ProviderKind::OpenAiCompatible);
    up.base_url = Some(emu.openai_url());
    let mut config = ServeConfig::new(Routing::single(up));
    let spec = |s: &str| gm_limits::LimitSpec::parse(s).unwrap();
    config.public = Some(PublicLimits { visitor: spec("2/1m"), global: spec("100/1m") });
    let app = app(&config, kept_in(&dir));
    let (alice, bob): (SocketAddr, SocketAddr) = ("127.0.0.2:5000".parse().unwrap(), "127.0.0.3:5000".parse().unwrap());
    let answered = || emu.stats().answered_by_model.values().sum::<u64>();

    // Alice's one-case evaluation takes one of her two requests; her run is hers alone.
    let done = evaluate(&app, alice, "model=openai%2Fgpt-4.1&task=reasoning&items=1").await;
    assert_eq!(done["state"], "finished", "{done}");
    let run = done["run_id"].as_i64().unwrap();
    assert!(get(&app, "/ui/runs", alice).await.body.contains(&format!("href=\"/ui/runs/{run}\"")));
    assert!(!get(&app, "/ui/runs", bob).await.body.contains(&format!("href=\"/ui/runs/{run}\"")));
    assert_eq!(get(&app, &format!("/ui/runs/{run}"), bob).await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&app, &format!("/ui/runs/{run}"), alice).await.status, StatusCode::OK);
    assert_eq!(answered(), 1);

    // The playground takes her second; the answer says how many she has left.
    let p = playground(&app, alice, "openai/gpt-4.1", "What is 2 + 2?").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.headers["x-ratelimit-remaining-requests"], "0");
    assert_eq!(answered(), 2);

    // Over her limit: the playground and the evaluate form say so, and the upstream hears nothing more.
    let refused = playground(&app, alice, "openai/gpt-4.1", "And 3 + 3?").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let message = serde_json::from_str::<serde_json::Value>(&refused.body).unwrap()["error"]["message"].to_string();
    assert!(message.contains("the limits for each visitor allow no more requests"), "{message}");
    let form = post(&app, "/ui/evaluate", alice, "model=openai%2Fgpt-4.1&task=reasoning&items=1").await;
    assert_eq!(form.status, StatusCode::TOO_MANY_REQUESTS, "{}", form.body);
    assert!(form.body.contains("the limits for each visitor allow no more requests"), "{}", form.body);
    assert_eq!(answered(), 2, "no request over the limit reached the upstream");

    // A bigger evaluation than a visitor's is refused before anything is counted; administration is refused.
    let big = post(&app, "/ui/evaluate", bob, "model=a&model=b&model=c&task=reasoning").await;
    assert_eq!(big.status, StatusCode::FORBIDDEN);
    assert!(big.body.contains("more than 2 models"), "{}", big.body);
    assert_eq!(post(&app, "/ui/cache/clear", bob, "").await.status, StatusCode::FORBIDDEN);
    assert_eq!(post(&app, "/ui/quotas/reset", bob, "").await.status, StatusCode::FORBIDDEN);

    // Her quotas page shows her own window, full; Bob's shows none of hers.
    let mine = get(&app, "/ui/quotas", alice).await.body;
    assert!(mine.contains("you (a visitor)") && mine.contains("2 of 2 this minute"), "{mine}");
    let his = get(&app, "/ui/quotas", bob).await.body;
    assert!(!his.contains("127.0.0.2") && !his.contains("2 of 2"), "{his}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_suite_is_evaluated_and_its_names_are_shown_as_text() {
    let dir = TempDir::new("ui-upload");
    let app = app(&ServeConfig::new(Routing::demo()), kept_in(&dir));
    let yaml = "name: \"<b>mine</b>\"\nmodel: openai/gpt-4.1\nmessages:\n  - role: user\n    content: \"What is {{a}} + 2?\"\n\
                testData:\n  - {a: 40, want: \"42\"}\n  - {a: 1, want: \"3\"}\nevaluators:\n  - name: sum\n    string: {contains: \"{{want}}\"}\n";
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("model", "openai/gpt-4.1")
        .append_pair("suite_yaml", yaml)
        .append_pair("repeats", "3")
        .finish();
    let done = evaluate(&app, local(), &form).await;
    assert_eq!(done["state"], "finished", "{done}");
    assert_eq!((done["done"].as_u64(), done["passed"].as_u64()), (Some(2), Some(2)), "{done}");
    let session = Session::new(kept_in(&dir));
    let Ok(StoredRun::Bench(run)) = session.show_run(done["run_id"].as_i64().unwrap()) else { panic!("a bench") };
    assert_eq!(run.report.cells[0].evaluation.gm.requests, 6, "each case sampled 3 times");
    let page = get(&app, &format!("/ui/runs/{}", done["run_id"]), local()).await.body;
    assert!(page.contains("&lt;b&gt;mine&lt;/b&gt;") && !page.contains("<b>mine"), "{page}");
    let broken = form_urlencoded::Serializer::new(String::new())
        .append_pair("model", "openai/gpt-4.1")
        .append_pair("suite_yaml", "name: [unclosed")
        .finish();
    let p = post(&app, "/ui/evaluate", local(), &broken).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("the uploaded suite"), "{}", p.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluations_and_the_models_page_follow_the_routing_file() {
    let dir = TempDir::new("ui-routes");
    let emu = Emulator::start(EmulatorConfig { require_auth: false, ..Default::default() }).await.unwrap();
    // `fast` is an alias; `openai/gpt-4.1` falls back from an upstream nothing answers; `*` passes the rest on.
    let file = format!(
        r#"
[upstreams.down]
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
[upstreams.emu]
provider = "openai-compatible"
base_url = "{}"
[[routes]]
model = "fast"
to = ["emu:openai/gpt-4.1-mini"]
[[routes]]
model = "openai/gpt-4.1"
to = ["down", "emu"]
[[routes]]
model = "*"
to = ["emu"]
"#,
        emu.openai_url()
    );
    let routing = Routing::from_toml(&file, &|_| None).unwrap();
    let app = app(&ServeConfig::new(routing), kept_in(&dir));

    let done = evaluate(&app, local(), "model=fast&model=openai%2Fgpt-4.1&task=reasoning&items=1").await;
    assert_eq!(done["state"], "finished", "{done}");
    assert_eq!(done["cells"].as_array().unwrap().len(), 2, "{done}");
    let answered = emu.stats().answered_by_model;
    assert_eq!(answered.get("openai/gpt-4.1-mini"), Some(&1), "the alias reached its model: {answered:?}");
    assert_eq!(answered.get("openai/gpt-4.1"), Some(&1), "the fallback answered: {answered:?}");
    assert!(!answered.contains_key("fast"), "{answered:?}");
    // The run is named by the ids the form sent, as a client's requests are.
    let run = get(&app, &format!("/ui/runs/{}", done["run_id"]), local()).await.body;
    assert!(run.contains("fast"), "{run}");

    // The models page says the same: each row names the routes that reach it.
    let models = get(&app, "/ui/models", local()).await.body;
    let row = |id: &str| {
        let at = models.find(&format!("<td>{id}</td>")).unwrap_or_else(|| panic!("no row for {id}: {models}"));
        let end = at + models[at..].find("</tr>").unwrap();
        models[at..end].to_string()
    };
    let emu_part = &models[models.find("<h2>emu").unwrap()..];
    let emu_row = |id: &str| {
        let at = emu_part.find(&format!("<td>{id}</td>")).unwrap();
        let end = at + emu_part[at..].find("</tr>").unwrap();
        emu_part[at..end].to_string()
    };
    assert!(emu_row("openai/gpt-4.1-mini").ends_with("<td>fast, *</td>"), "{}", row("openai/gpt-4.1-mini"));
    assert!(emu_row("openai/gpt-4.1").ends_with("<td>openai/gpt-4.1</td>"), "{}", emu_row("openai/gpt-4.1"));
}

/// The key a "Key created" page shows once.
fn shown_key(body: &str) -> String {
    let at = body.find("id=\"new-key\"").unwrap_or_else(|| panic!("no new key: {body}"));
    let v = &body[at..];
    let v = &v[v.find("value=\"").unwrap() + 7..];
    v[..v.find('"').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_administrator_makes_and_revokes_keys_in_the_browser() {
    let dir = TempDir::new("ui-keys-admin");
    let app = app(&ServeConfig::new(Routing::demo()), kept_in(&dir));
    // On a local gateway without keys, the first key must be an administrator's, and its maker is signed in.
    let first = post(&app, "/ui/keys/create", local(), "name=alice").await;
    assert_eq!(first.status, StatusCode::BAD_REQUEST, "{}", first.body);
    assert!(first.body.contains("administrator"), "{}", first.body);
    let made = post(&app, "/ui/keys/create", local(), "name=root&admin=1").await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let root = shown_key(&made.body);
    assert!(root.starts_with("gm_"), "{root}");
    let cookie = made.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with(&format!("gm_key={root};")) && cookie.contains("HttpOnly"), "{cookie}");
    let root_c = format!("gm_key={root}");
    assert_eq!(get(&app, "/ui/quotas", local()).await.status, StatusCode::UNAUTHORIZED, "the gateway is closed now");

    // Another key, with limits; bad limits are refused with the reason.
    let bad = post_as(&app, "/ui/keys/create", &root_c, "name=x&limits=lots").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let made = post_as(&app, "/ui/keys/create", &root_c, "name=alice&limits=2%2F1m").await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let alice_c = format!("gm_key={}", shown_key(&made.body));
    assert!(made.headers.get("set-cookie").is_none(), "the administrator stays signed in as themself");
    let quotas = get_with(&app, "/ui/quotas", local(), &[("cookie", &root_c)]).await.body;
    assert!(quotas.contains("<td>alice</td>") && quotas.contains("2/1m"), "{quotas}");
    assert!(!quotas.contains(&root) && !quotas.contains(&alice_c[7..]), "no page lists a key itself");

    // Alice administers nothing; the administrator revokes her key, and it opens nothing any more.
    let id = quotas[..quotas.find("<td>alice</td>").unwrap()].rsplit("<td>").next().unwrap().trim_end_matches("</td>");
    for (path, form) in
        [("/ui/keys/create", "name=mallory&admin=1".to_string()), ("/ui/keys/revoke", format!("key={id}"))]
    {
        assert_eq!(post_as(&app, path, &alice_c, &form).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(get_with(&app, "/ui/playground", local(), &[("cookie", &alice_c)]).await.status, StatusCode::OK);
    // Her evaluations count against her key's limits (2 a minute) before they start: a 2-request one fits,
    // the next is refused with the wait, and nothing of it runs.
    let form = "model=openai%2Fgpt-4.1&task=reasoning&task=summarization&items=1";
    let started = post_as(&app, "/ui/evaluate", &alice_c, form).await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let over = post_as(&app, "/ui/evaluate", &alice_c, "model=openai%2Fgpt-4.1&task=reasoning&items=1").await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS, "{}", over.body);
    assert!(over.body.contains("this key&#39;s limits") || over.body.contains("this key's limits"), "{}", over.body);
    let revoked = post_as(&app, "/ui/keys/revoke", &root_c, &format!("key={id}")).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    assert_eq!(
        get_with(&app, "/ui/playground", local(), &[("cookie", &alice_c)]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_s_budgets_are_drawn_in_tokens_and_dollars() {
    let dir = TempDir::new("ui-budgets");
    let store = gm_serve::keys::open_store(Some(&dir.path().join("gm.sqlite")), None).unwrap();
    let budget = gm_serve::keys::Budget::parse("requests=100,tokens=5000,usd=1/1d").unwrap();
    let ci = gm_serve::keys::generate("ci", None, Some(budget)).unwrap();
    store.insert(&ci.record).unwrap();
    let (_, root_c) = key_in(&dir, "root", true);
    let app = app(&ServeConfig::new(Routing::demo()), kept_in(&dir));
    let body =
        serde_json::json!({"model": "openai/gpt-4.1", "messages": [{"role": "user", "content": "What is 2 + 2?"}]});
    let h = [("content-type", "application/json"), ("authorization", &format!("Bearer {}", ci.secret))];
    let answer = send(&app, request(Method::POST, "/v1/chat/completions", local(), &h, body.to_string())).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // The tokens the answer used, as the usage it reports says (the budget is settled with them).
    let usage =
        serde_json::from_str::<serde_json::Value>(&answer.body).unwrap()["usage"]["total_tokens"].as_u64().unwrap();
    let quotas = get_with(&app, "/ui/quotas", local(), &[("cookie", &root_c)]).await.body;
    assert!(quotas.contains("1 of 100 today"), "{quotas}");
    assert!(quotas.contains(&format!("{usage} tokens of 5000 tokens today")), "{usage}: {quotas}");
    assert!(quotas.contains("<td>client key ci (dollars)</td><td>usd=1/1d</td>"), "{quotas}");
    assert!(quotas.contains(" of $1.0000 today"), "{quotas}");
}

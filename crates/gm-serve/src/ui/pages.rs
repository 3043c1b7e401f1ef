//! The pages that read: the home page, Models, Runs (history, one run, a comparison, exports), Quotas and cache.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::response::Response;
use gm_app::{RunComparison, StoredRun};
use gm_core::CatalogEntry;
use gm_eval::compare::{Comparison, Verdict};
use http::{header, HeaderValue, StatusCode};
use maud::{html, Markup};

use super::{
    all, app_error, first, page, pairs, problem, seconds, see_other, trusted, Admin, Form, SameOrigin, Shared, Viewer,
};
use crate::server::Targets;

pub(super) async fn home(State(ui): State<Shared>, who: Viewer) -> Response {
    let body = html! {
        h1 { "gm serve" }
        p { "A gateway to " (ui.routing.upstreams.len()) " upstream" @if ui.routing.upstreams.len() != 1 { "s" } ": "
            (ui.routing.upstreams.iter().map(|u| format!("{} ({})", u.name, u.provider.as_str())).collect::<Vec<_>>().join(", ")) "." }
        @if ui.routing.upstreams.iter().any(|u| u.provider == gm_core::ProviderKind::Demo) {
            p.note role="note" { "The demo provider answers here: its answers are computed offline, not by a model." }
        }
        ul.cards {
            li { a href="/ui/models" { "Models" } ": each upstream's catalog with limits, tier, price and routes." }
            li { a href="/ui/playground" { "Playground" } ": one prompt, up to four models side by side, streaming." }
            li { a href="/ui/evaluate" { "Evaluate" } ": models × tasks with live progress, cancel and resume." }
            li { a href="/ui/runs" { "Runs" } ": the history, one run's report, two runs compared, exports." }
            li { a href="/ui/quotas" { "Quotas and cache" } ": each window's use, server blocks, keys, the cache." }
        }
        p { "The API is beside it: " code { "POST /v1/chat/completions" } ", " code { "GET /v1/models" } ", " code { "/metrics" } "." }
    };
    page("gm serve", Some(&who), body)
}

/// Which routes send a request to `model` of upstream `up`, first or as a fallback, as the gateway routes
/// them: a route's id, or `*` for the route that passes on every id no route of its own takes.
fn routes_of(routes: &[(String, Targets)], up: &str, model: &str) -> Vec<String> {
    let own_route = routes.iter().any(|(id, _)| id != "*" && id.eq_ignore_ascii_case(model));
    routes
        .iter()
        .filter(|(id, targets)| {
            targets.iter().any(|(u, m)| {
                &*u.name == up
                    && match m {
                        Some(m) => m.eq_ignore_ascii_case(model),
                        None if id == "*" => !own_route,
                        None => id.eq_ignore_ascii_case(model),
                    }
            })
        })
        .map(|(id, _)| id.clone())
        .collect()
}

pub(super) async fn models(State(ui): State<Shared>, who: Viewer) -> Response {
    let routes = ui.gateway.routes();
    let gateway = ui.gateway.session().config().clone();
    let mut sections = Vec::new();
    for up in &ui.routing.upstreams {
        let Some(client) =
            routes.iter().flat_map(|(_, t)| t).find(|(u, _)| *u.name == up.name).map(|(u, _)| u.uncached.clone())
        else {
            continue;
        };
        let session = gm_app::Session::new(up.session_config(&gateway, ui.routing.limits.as_ref()));
        let limits = session.limits_config();
        let catalog: Result<Vec<CatalogEntry>, String> = match client.models().await {
            Ok(list) => {
                let mut chat: Vec<CatalogEntry> = list.iter().filter(|m| m.is_chat_model()).cloned().collect();
                chat.sort_by_key(|m| m.id.to_lowercase());
                Ok(chat)
            }
            Err(e) => Err(e.to_string()),
        };
        sections.push(html! {
            section {
                h2 { (up.name) " " small { "(" (up.provider.as_str()) ")" } }
                @match &catalog {
                    Err(e) => p.error role="alert" { "The catalog could not be read: " (e) }
                    Ok(list) => {
                        div.scroll {
                            table {
                                thead { tr { th { "Model" } th { "Publisher" } th { "Tier" } th { "Limits" } th.num { "Max in / out tokens" } th.num { "USD per M in / out" } th { "Routes" } } }
                                tbody {
                                    @for m in list {
                                        @let spec = limits.as_ref().map(|c| c.spec_for(up.provider.as_str(), &m.id));
                                        @let price = ui.gateway.prices().price_from(up.provider, &m.id);
                                        @let served = routes_of(&routes, &up.name, &m.id);
                                        tr {
                                            td { (m.id) }
                                            td { (m.publisher.as_deref().unwrap_or("-")) }
                                            td { (m.rate_limit_tier.as_deref().unwrap_or("-")) }
                                            td { @match &spec {
                                                Ok(s) if s.is_unlimited() => { "none set" }
                                                Ok(s) => { (s.to_string()) }
                                                Err(e) => { (e.to_string()) }
                                            } }
                                            td.num { (m.limits.as_ref().and_then(|l| l.max_input_tokens).map(|n| n.to_string()).unwrap_or("-".into())) " / " (m.limits.as_ref().and_then(|l| l.max_output_tokens).map(|n| n.to_string()).unwrap_or("-".into())) }
                                            td.num { @match price { Some(p) => { (format!("{:.2} / {:.2}", p.input_per_million, p.output_per_million)) } None => { "-" } } }
                                            td { @if served.is_empty() { "not routed" } @else { (served.join(", ")) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
    }
    let body = html! {
        h1 { "Models" }
        p { "Each upstream's chat models. Routes: the model ids clients send that reach it (" code { "*" } ": any id, passed on as sent)." }
        @for s in sections { (s) }
    };
    page("Models", Some(&who), body)
}

/// Whether `who` may see run `id`: the administrator every run, anyone else the runs they started.
fn may_see(ui: &Shared, who: &Viewer, id: i64) -> bool {
    match who.owner() {
        None => true,
        Some(owner) => {
            ui.owners.lock().unwrap_or_else(|p| p.into_inner()).get(&owner).is_some_and(|runs| runs.contains(&id))
        }
    }
}

fn not_yours(who: &Viewer, id: i64) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Runs",
        Some(who),
        &format!("no run {id} of yours is in the run history; the Runs page lists yours"),
    )
}

pub(super) async fn runs(State(ui): State<Shared>, who: Viewer, RawQuery(q): RawQuery) -> Response {
    let q = pairs(q.as_deref().unwrap_or(""));
    let (suite, model, since) = (first(&q, "suite"), first(&q, "model"), first(&q, "since"));
    let since_secs = match since.map(|s| gm_app::parse_day(s).ok_or(s)).transpose() {
        Ok(s) => s,
        Err(s) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Runs",
                Some(&who),
                &format!("`{s}` is not a date; write it as YYYY-MM-DD"),
            )
        }
    };
    let rows = match ui.evaluator.list_runs() {
        Ok(r) => r,
        Err(e) => return app_error(&who, &e),
    };
    let contains =
        |hay: &str, needle: Option<&str>| needle.is_none_or(|n| hay.to_lowercase().contains(&n.to_lowercase()));
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| may_see(&ui, &who, r.id))
        .filter(|r| contains(&r.name, suite) || contains(&r.file, suite))
        .filter(|r| contains(&r.model, model))
        .filter(|r| since_secs.is_none_or(|s| r.started_at >= s))
        .collect();
    let body = html! {
        h1 { "Runs" }
        form.filters method="get" action="/ui/runs" role="search" {
            label { "Suite or task " input type="search" name="suite" value=[suite]; }
            label { "Model " input type="search" name="model" value=[model]; }
            label { "Since " input type="date" name="since" value=[since]; }
            button type="submit" { "Filter" }
        }
        @if rows.is_empty() {
            p { "No run matches." @if !who.is_admin() { " You see the runs you started here." } }
        } @else {
            form.compare method="get" action="/ui/compare" {
                div.scroll {
                    table #runs {
                        thead { tr { th { "Id" } th { "Kind" } th { "Name" } th { "Model" } th { "Started (UTC)" } th.num { "Cases" } th { "State" } th { "Baseline" } th { "Candidate" } } }
                        tbody {
                            @for r in &rows {
                                tr {
                                    td { a href={ "/ui/runs/" (r.id) } { (r.id) } }
                                    td { (r.kind) }
                                    td { (r.name) }
                                    td { (r.model) }
                                    td { (gm_app::utc_minutes(r.started_at)) }
                                    td.num { (r.cases) }
                                    td { @if r.finished_at.is_some() { "finished" } @else { "unfinished" } }
                                    td { input type="radio" name="baseline" value=(r.id) aria-label={ "run " (r.id) " as the baseline" }; }
                                    td { input type="radio" name="candidate" value=(r.id) aria-label={ "run " (r.id) " as the candidate" }; }
                                }
                            }
                        }
                    }
                }
                button type="submit" { "Compare" }
            }
        }
    };
    page("Runs", Some(&who), body)
}

fn export_links(id: i64) -> Markup {
    html! {
        p.exports { "Export: "
            a href={ "/ui/runs/" (id) "/export/html" } download { "HTML" } " · "
            a href={ "/ui/runs/" (id) "/export/json" } download { "JSON" } " · "
            a href={ "/ui/runs/" (id) "/export/junit" } download { "JUnit" }
        }
    }
}

pub(super) async fn run(State(ui): State<Shared>, who: Viewer, UrlPath(id): UrlPath<i64>) -> Response {
    if !may_see(&ui, &who, id) {
        return not_yours(&who, id);
    }
    let stored = match ui.evaluator.show_run(id) {
        Ok(s) => s,
        Err(e) => return app_error(&who, &e),
    };
    let body = match &stored {
        StoredRun::Bench(b) => html! {
            p.run-head { "Run " (id) " · bench · " span #best-model data-model=[b.report.summary.best_model.as_deref()] { "best model: " (b.report.summary.best_model.as_deref().unwrap_or("-")) } }
            (export_links(id))
            div.report { (trusted(gm_eval::report::bench_fragment(&b.report, &[]))) }
        },
        StoredRun::UnfinishedBench(r) => {
            let row = ui.evaluator.list_runs().ok().and_then(|rows| rows.into_iter().find(|x| x.id == id));
            let resume = row.map(|row| {
                let mut q = form_urlencoded::Serializer::new(String::new());
                row.model.split(',').for_each(|m| {
                    q.append_pair("model", m);
                });
                row.file.split(',').for_each(|t| {
                    q.append_pair("task", t);
                });
                q.append_pair("resume", "1");
                format!("/ui/evaluate?{}", q.finish())
            });
            html! {
                p.run-head { "Run " (id) " · bench · unfinished" }
                p.note { "This bench did not finish; it shows the cases it recorded. "
                    @if let Some(href) = resume { a href=(href) { "Resume it" } " (with the same items per task it was started with)." } }
                (export_links(id))
                div.report { (trusted(gm_eval::report::bench_fragment(r, &[]))) }
            }
        }
        StoredRun::Eval(s) => html! {
            p.run-head { "Run " (id) " · suite " (s.name) " · " (s.model) }
            p { (s.summary.passed_tests) " of " (s.summary.total_tests) " passed (" (format!("{:.1}", s.summary.pass_rate)) "%)." }
            (export_links(id))
            div.scroll {
                table {
                    thead { tr { th.num { "#" } th { "Result" } th { "Scores" } th { "Answer" } } }
                    tbody {
                        @for (i, t) in s.test_results.iter().enumerate() {
                            tr {
                                td.num { (i + 1) }
                                td { @if t.passed() { span.good { "pass" } } @else { span.bad { "fail" } } }
                                td { (t.evaluation_results.iter().map(|r| format!("{} {:.2}", r.evaluator_name, r.score)).collect::<Vec<_>>().join(", ")) }
                                td.answer { (t.model_response) }
                            }
                        }
                    }
                }
            }
        },
    };
    page("Runs", Some(&who), body)
}

pub(super) async fn export(
    State(ui): State<Shared>,
    who: Viewer,
    UrlPath((id, format)): UrlPath<(i64, String)>,
) -> Response {
    if !may_see(&ui, &who, id) {
        return not_yours(&who, id);
    }
    let stored = match ui.evaluator.show_run(id) {
        Ok(s) => s,
        Err(e) => return app_error(&who, &e),
    };
    let (report, evaluations, printed) = match &stored {
        StoredRun::Bench(b) => {
            (Some(&b.report), b.report.cells.iter().map(|c| c.evaluation.clone()).collect(), Some(b.printed.clone()))
        }
        StoredRun::UnfinishedBench(r) => {
            (Some(r), r.cells.iter().map(|c| c.evaluation.clone()).collect(), serde_json::to_value(r).ok())
        }
        StoredRun::Eval(s) => (None, vec![s.clone()], None),
    };
    let mut out = Vec::new();
    let (kind, ext) = match format.as_str() {
        "html" => ("text/html; charset=utf-8", "html"),
        "json" => ("application/json", "json"),
        "junit" => ("application/xml", "xml"),
        _ => return problem(StatusCode::NOT_FOUND, "Runs", Some(&who), "exports are html, json or junit"),
    };
    let written = match (ext, report) {
        ("html", Some(r)) => gm_eval::report::bench_html(r, &[], &mut out),
        ("html", None) => gm_eval::report::html(&evaluations, &mut out),
        ("json", _) => match printed {
            Some(p) => serde_json::to_writer_pretty(&mut out, &p).map_err(std::io::Error::other),
            None => gm_eval::report::json(&evaluations, &mut out),
        },
        _ => gm_eval::report::junit(&evaluations, &mut out),
    };
    if let Err(e) = written {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Runs",
            Some(&who),
            &format!("could not write the report: {e}"),
        );
    }
    let mut r = Response::new(Body::from(out));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"gm-run-{id}.{ext}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

fn verdict(v: Verdict) -> (&'static str, &'static str) {
    match v {
        Verdict::Regression => ("bad", "regression"),
        Verdict::Improvement => ("good", "improvement"),
        Verdict::NoSignificantChange => ("", "no significant change"),
        Verdict::NothingShared => ("", "nothing shared"),
    }
}

fn comparison_table(c: &Comparison) -> Markup {
    let (class, word) = verdict(c.verdict);
    html! {
        table.comparison {
            tbody {
                tr { th { "Cases shared" } td.num { (c.shared_cases) } }
                tr { th { "Pass rate before / after" } td.num { (format!("{:.1}% / {:.1}%", c.pass_rate_before * 100.0, c.pass_rate_after * 100.0)) } }
                tr { th { "Mean score before / after" } td.num { (format!("{:.3} / {:.3}", c.mean_before, c.mean_after)) } }
                tr { th { "Difference (95%)" } td.num { (format!("{:+.3} [{:+.3}, {:+.3}]", c.difference, c.interval.0, c.interval.1)) } }
                tr { th { "p" } td.num { (format!("{:.3}", c.p_value)) } }
                tr { th { "Verdict" } td class=(class) { (word) } }
            }
        }
        @if !c.newly_failing.is_empty() {
            h3 { "Newly failing" }
            ul { @for f in &c.newly_failing { li.bad { (serde_json::Value::Object(f.test_case.clone()).to_string()) " — " (f.now_failing.join(", ")) } } }
        }
    }
}

pub(super) async fn compare(State(ui): State<Shared>, who: Viewer, RawQuery(q): RawQuery) -> Response {
    let q = pairs(q.as_deref().unwrap_or(""));
    let id = |name| first(&q, name).and_then(|v| v.parse::<i64>().ok());
    let (Some(a), Some(b)) = (id("baseline"), id("candidate")) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Runs",
            Some(&who),
            "choose a baseline run and a candidate run on the Runs page",
        );
    };
    for r in [a, b] {
        if !may_see(&ui, &who, r) {
            return not_yours(&who, r);
        }
    }
    let compared = match ui.evaluator.compare_runs(a, b) {
        Ok(c) => c,
        Err(e) => return app_error(&who, &e),
    };
    let body = match compared {
        RunComparison::Bench { cells, .. } => {
            let report = match ui.evaluator.show_run(b) {
                Ok(StoredRun::Bench(s)) => s.report,
                Ok(_) => {
                    return problem(
                        StatusCode::BAD_REQUEST,
                        "Runs",
                        Some(&who),
                        "the candidate is not a finished bench",
                    )
                }
                Err(e) => return app_error(&who, &e),
            };
            let regressions = cells.iter().filter(|c| c.comparison.verdict == Verdict::Regression).count();
            let baseline: Vec<_> = cells.into_iter().map(|c| (c.task, c.model, c.comparison)).collect();
            html! {
                p.run-head { "Run " (b) " against the baseline run " (a) }
                p #verdict class=[(regressions > 0).then_some("bad")] {
                    @if regressions == 0 { "No cell regressed significantly (paired bootstrap, 95%)." }
                    @else { (regressions) " cell" @if regressions > 1 { "s" } " regressed significantly (paired bootstrap, 95%)." }
                }
                div.report { (trusted(gm_eval::report::bench_fragment(&report, &baseline))) }
            }
        }
        RunComparison::Eval { comparison, .. } => html! {
            h1 { "Run " (b) " against the baseline run " (a) }
            p #verdict class=[(comparison.verdict == Verdict::Regression).then_some("bad")] { (verdict(comparison.verdict).1) }
            (comparison_table(&comparison))
        },
    };
    page("Runs", Some(&who), body)
}

/// A window's name in words: `this minute`, `today`, else `per 5m`.
fn window_name(per: &str) -> String {
    match per {
        "1m" => "this minute".into(),
        "1h" => "this hour".into(),
        "1d" => "today".into(),
        other => format!("per {other}"),
    }
}

fn gauges(k: &gm_app::KeyStatus) -> Markup {
    // A client key's dollar budget is counted in micro-dollars.
    let dollars = k.provider == "gm-serve" && k.model == "usd";
    let amount = |n: u64| if dollars { format!("${:.4}", n as f64 / 1e6) } else { format!("{n} tokens") };
    html! {
        @if k.windows.is_empty() && k.token_windows.is_empty() { span { "no windows set; " (k.requests.last_minute) " requests in the last minute" } }
        @for w in &k.windows {
            div.gauge {
                meter min="0" max=(w.limit) value=(w.used) low=(w.limit * 7 / 10) high=(w.limit * 9 / 10) optimum="0" aria-label={ (k.model) " " (window_name(&w.per)) } {}
                span { (w.used) " of " (w.limit) " " (window_name(&w.per))
                    @if let Some(s) = w.next_frees_in_s { ", frees in " (seconds(s)) } }
            }
        }
        @for w in &k.token_windows {
            div.gauge {
                meter min="0" max=(w.limit) value=(w.used) low=(w.limit * 7 / 10) high=(w.limit * 9 / 10) optimum="0" aria-label={ (if dollars { "dollars" } else { "tokens" }) " " (window_name(&w.per)) } {}
                span { (amount(w.used)) " of " (amount(w.limit)) " " (window_name(&w.per))
                    @if let Some(s) = w.next_frees_in_s { ", frees in " (seconds(s)) } }
            }
        }
        @if let Some(b) = &k.blocked {
            div.blocked role="status" { "blocked by the server for " (seconds(b.for_s)) @if b.daily_quota_spent { " (the daily quota is spent)" } }
        }
    }
}

pub(super) async fn quotas(State(ui): State<Shared>, who: Viewer) -> Response {
    let session = ui.gateway.session();
    // Client keys and visitors are counted under the gateway's own limits, not the upstreams'.
    let keys: BTreeMap<String, crate::keys::KeyRecord> = match ui.gateway.access().keys.list() {
        Ok(list) => list.into_iter().map(|k| (k.id.clone(), k)).collect(),
        Err(_) => BTreeMap::new(),
    };
    let (visitor, public) = (ui.visitor_limits.clone(), ui.public_limits.clone());
    let spec_of = |key: &str| -> Option<gm_limits::LimitSpec> {
        let mut parts = key.splitn(3, ':');
        let (p, c, m) = (parts.next()?, parts.next()?, parts.next()?);
        match (p, m) {
            ("gm-serve", "requests") => Some(keys.get(c)?.spec()),
            ("gm-serve", "usd") => {
                let w = keys.get(c)?.budget.as_ref()?.micro_usd?;
                Some(gm_limits::LimitSpec { token_windows: vec![w], ..gm_limits::LimitSpec::default() })
            }
            ("gm-serve-visitor", _) => visitor.clone(),
            ("gm-serve-public", _) => public.clone(),
            _ => None,
        }
    };
    let status = session.limits_status_with(SystemTime::now(), &spec_of);
    let cache = if who.is_admin() { Some(session.cache_stats()) } else { None };
    let mine = |k: &gm_app::KeyStatus| match &who {
        Viewer::Admin { .. } => true,
        Viewer::Member(rec) => k.provider == "gm-serve" && k.credential == rec.id,
        Viewer::Visitor(ip) => k.provider == "gm-serve-visitor" && k.credential == ip.to_string(),
    };
    let label = |k: &gm_app::KeyStatus| match k.provider.as_str() {
        "gm-serve" if !who.is_admin() => format!("your key{}", if k.model == "usd" { " (dollars)" } else { "" }),
        "gm-serve" => {
            let name = keys.get(&k.credential).map(|r| r.name.as_str()).unwrap_or(&k.credential);
            format!("client key {name}{}", if k.model == "usd" { " (dollars)" } else { "" })
        }
        "gm-serve-visitor" if who.is_admin() => format!("visitor {}", k.credential),
        "gm-serve-visitor" => "you (a visitor)".to_string(),
        "gm-serve-public" => "all visitors together".to_string(),
        _ => format!("{} · {}", k.provider, k.model),
    };
    // A dollar budget is counted in micro-dollars; it reads as it was given.
    let limits_of = |k: &gm_app::KeyStatus| match (k.provider.as_str(), k.model.as_str()) {
        ("gm-serve", "usd") => keys
            .get(&k.credential)
            .and_then(|r| r.budget.as_ref()?.micro_usd)
            .map(|w| format!("usd={}/{}", w.limit as f64 / 1e6, gm_limits::format_duration(w.per)))
            .unwrap_or_else(|| k.limits.clone()),
        _ => k.limits.clone(),
    };
    let body = html! {
        h1 { "Quotas and cache" }
        section #live data-refresh="5" aria-live="polite" {
            h2 { "Rate-limit windows" }
            @match &status {
                Err(e) => p.error role="alert" { (e.to_string()) }
                Ok(s) => {
                    @let shown: Vec<_> = s.keys.iter().filter(|k| mine(k) && (who.is_admin() || k.provider != "gm-serve-public")).collect();
                    @if shown.is_empty() { p { "Nothing counted yet." } }
                    @else { div.scroll {
                        table #windows {
                            thead { tr { th { "Who or what" } th { "Limits" } th { "Use" } } }
                            tbody {
                                @for k in shown {
                                    tr { td { (label(k)) } td { (limits_of(k)) } td { (gauges(k)) } }
                                }
                            }
                        }
                    } }
                }
            }
            @if who.is_admin() {
                h2 { "Client keys" }
                @if keys.is_empty() { p { "No client keys; " code { "gm serve keys create" } " makes one." } }
                @else {
                    div.scroll { table #keys {
                        thead { tr { th { "Id" } th { "Name" } th { "Role" } th { "Limits" } th { "Budget" } th { "State" } } }
                        tbody { @for k in keys.values() {
                            tr { td { (k.id) } td { (k.name) } td { @if k.admin { "administrator" } @else { "client" } } td { (k.limits.as_ref().map(|l| l.to_string()).unwrap_or("-".into())) } td { (k.budget.as_ref().map(|b| b.to_string()).unwrap_or("-".into())) }
                                td { @if k.revoked.is_some() { "revoked" } @else {
                                    form.inline method="post" action="/ui/keys/revoke" {
                                        input type="hidden" name="key" value=(k.id);
                                        "active " button.danger type="submit" aria-label={ "revoke the key " (k.name) } { "Revoke" }
                                    }
                                } } }
                        } }
                    } }
                }
                form.newkey method="post" action="/ui/keys/create" {
                    fieldset {
                        legend { "A new client key" }
                        label { "Name " input type="text" name="name" required maxlength="64"; }
                        label { "Limits " input type="text" name="limits" placeholder="60/1m,concurrency=4"; }
                        label { "Budget " input type="text" name="budget" placeholder="requests=1000,usd=5/1d"; }
                        label { input type="checkbox" name="admin" value="1"; " administers this dashboard" }
                        button type="submit" { "Create" }
                    }
                }
                h2 { "Cache" }
                @match &cache {
                    Some(Ok(c)) => {
                        table #cache { tbody {
                            tr { th { "Hit rate" } td.num { (format!("{:.1}%", c.hit_rate * 100.0)) } }
                            tr { th { "Hits / misses" } td.num { (c.persistent.hits) " / " (c.persistent.misses) } }
                            tr { th { "Answers kept" } td.num { (c.persistent.entries) } }
                            tr { th { "Size" } td.num { (format!("{:.1} KiB", c.persistent.bytes as f64 / 1024.0)) } }
                            @if let Some(r) = &c.redis { tr { th { "In Redis" } td.num { (r.entries) " answers, " (format!("{:.1} KiB", r.bytes as f64 / 1024.0)) } } }
                        } }
                        p.hint { "Counted over every run that used the state file; a running gateway adds its figures every minute." }
                    }
                    Some(Err(e)) => p.error role="alert" { (e.to_string()) },
                    None => {}
                }
            }
        }
        @if who.is_admin() {
            div.actions {
                form method="post" action="/ui/quotas/reset" {
                    label { "Forget the counts of " input type="text" name="key" placeholder="every key (or PROVIDER:MODEL)"; }
                    button type="submit" { "Reset limits" }
                }
                form method="post" action="/ui/cache/clear" { button type="submit" { "Clear the cache" } }
            }
        } @else {
            p.hint { "Resetting limits, clearing the cache and managing the client keys are the administrator's: "
                @if matches!(who, Viewer::Visitor(_)) { a href="/ui/login" { "sign in" } " with the admin key." } @else { "sign in with the admin key." } }
        }
    };
    page("Quotas and cache", Some(&who), body)
}

pub(super) async fn reset_limits(
    _: SameOrigin,
    Admin(who): Admin,
    State(ui): State<Shared>,
    Form(form): Form,
) -> Response {
    let which = all(&form, "key").first().map(|s| s.to_string());
    match ui.gateway.session().reset_limits(which.as_deref()) {
        Ok(_) => see_other("/ui/quotas"),
        Err(e) => app_error(&who, &e),
    }
}

pub(super) async fn clear_cache(_: SameOrigin, Admin(who): Admin, State(ui): State<Shared>) -> Response {
    match ui.gateway.session().clear_cache() {
        Ok(_) => see_other("/ui/quotas"),
        Err(e) => app_error(&who, &e),
    }
}

pub(super) async fn create_key(
    _: SameOrigin,
    Admin(who): Admin,
    State(ui): State<Shared>,
    Form(form): Form,
) -> Response {
    let bad = |m: String| problem(StatusCode::BAD_REQUEST, "Quotas and cache", Some(&who), &m);
    let Some(name) = first(&form, "name").filter(|n| n.chars().count() <= 64) else {
        return bad("a key needs a name of at most 64 characters".into());
    };
    let limits = match first(&form, "limits").map(gm_limits::LimitSpec::parse).transpose() {
        Ok(l) => l,
        Err(e) => return bad(format!("the limits: {e}")),
    };
    let budget = match first(&form, "budget").map(crate::keys::Budget::parse).transpose() {
        Ok(b) => b,
        Err(e) => return bad(format!("the budget: {e}")),
    };
    let mut key = match crate::keys::generate(name, limits, budget) {
        Ok(k) => k,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, "Quotas and cache", Some(&who), &e.to_string()),
    };
    key.record.admin = first(&form, "admin").is_some();
    // The first key closes the gateway to everyone without one: this browser keeps administering it only
    // with an admin key, which it is then signed in with.
    let first_key = !ui.gateway.access().keys.any_active().unwrap_or(true);
    if first_key && !key.record.admin {
        return bad("the first key closes this gateway to everyone without a key, this browser too: make it an \
                    administrator's key (tick the box), then make the others"
            .into());
    }
    if let Err(e) = ui.gateway.access().keys.insert(&key.record) {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "Quotas and cache", Some(&who), &e.to_string());
    }
    let who = if first_key { Viewer::Admin { key: Some(key.record.name.clone()) } } else { who };
    let body = html! {
        h1 { "Key created" }
        p { "The key " strong { (key.record.name) } " (" (key.record.id) @if key.record.admin { ", an administrator's" } ") is below. "
            "It is shown this once and stored only as a hash: copy it now and hand it to its holder." }
        p { input #new-key type="text" readonly value=(key.secret) aria-label="the new key" size="56"; }
        p { a href="/ui/quotas" { "Back to quotas and cache" } }
    };
    let mut r = page("Quotas and cache", Some(&who), body);
    if first_key {
        super::sign_in(&mut r, &key.secret);
    }
    r
}

pub(super) async fn revoke_key(
    _: SameOrigin,
    Admin(who): Admin,
    State(ui): State<Shared>,
    Form(form): Form,
) -> Response {
    let Some(id) = first(&form, "key") else {
        return problem(StatusCode::BAD_REQUEST, "Quotas and cache", Some(&who), "name the key to revoke by its id");
    };
    match ui.gateway.access().keys.revoke(id) {
        Ok(_) => see_other("/ui/quotas"),
        Err(e) if e.is_usage() => problem(StatusCode::NOT_FOUND, "Quotas and cache", Some(&who), &e.to_string()),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, "Quotas and cache", Some(&who), &e.to_string()),
    }
}

//! The dashboard: pages served at `/` and under `/ui/` beside the gateway's API, for a person with a browser.
//!
//! Every page calls the use cases of [`gm_app::Session`] that the CLI calls (the catalog, `run_bench`,
//! `list_runs`, `show_run`, `compare_runs`, `limits_status`, `cache_stats`), and a finished run is drawn by
//! gm-eval's bench report ([`gm_eval::report::bench_fragment`]), so what a page shows is what `gm bench --json`
//! and `gm runs show` print. The playground sends its prompts through the gateway's own chat endpoint, so its
//! requests pass the same routes, keys, visitor limits, cache and metrics as any client's; evaluations send
//! theirs through the same routes in process, so a model id means what it means to a client.
//!
//! Pages are rendered on the server with maud (templates checked when compiling; every interpolated text is
//! escaped); the stylesheet and the script are embedded in the binary. Forms that change anything are checked
//! to come from the dashboard's own origin. Who is looking decides what a page offers, and a handler names
//! what it needs in its signature (`Viewer`, `Admin`): on a gateway without keys or `--public` everyone is
//! its administrator; with keys, the holder of an admin key is (signing in keeps the key in an HTTP-only,
//! same-site cookie), and the holder of any other key, like a `--public` visitor without one, uses the
//! playground and small evaluations within their own limits and sees only their own runs.

mod eval;
mod pages;
mod playground;
mod through;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use gm_app::Session;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::access::Caller;
use crate::config::{Routing, ServeConfig};
use crate::keys::KeyRecord;
use crate::server::AppState;

const STYLE: &str = include_str!("assets/dashboard.css");
const SCRIPT: &str = include_str!("assets/dashboard.js");

/// Where the dashboard finds what it offers to evaluate, besides the built-in tasks.
#[derive(Debug, Clone, Default)]
pub struct DashboardOptions {
    /// A folder of user tasks (one subfolder each with `task.yaml` and `data.jsonl`), as `gm bench --tasks-dir`.
    pub tasks_dir: Option<PathBuf>,
    /// A folder of `.prompt.yml` suites to offer.
    pub suites_dir: Option<PathBuf>,
}

/// The dashboard of a gateway, ready to be merged into it with [`Gateway::bind_with`](crate::Gateway::bind_with).
#[derive(Debug, Clone)]
pub struct Dashboard {
    options: DashboardOptions,
    routing: Routing,
    public: Option<crate::config::PublicLimits>,
}

impl Dashboard {
    /// The dashboard of the gateway `config` describes.
    pub fn new(config: &ServeConfig, options: DashboardOptions) -> Self {
        Self { options, routing: config.routing.clone(), public: config.public.clone() }
    }

    /// Its router over the gateway's state: the pages, their forms and event streams, and the assets.
    pub fn router(self, state: AppState) -> Router {
        // Evaluations send their requests through the gateway's own routes, in process, as a client of its API
        // would (without its key: what a viewer starts is counted against their limits before it starts). The
        // session keeps the gateway's state (its run store and cache); the upstreams' quotas are the gateway's.
        let mut evaluator = state.session().config().clone();
        evaluator.provider = gm_core::ProviderKind::OpenAiCompatible;
        evaluator.provider_reason = "the dashboard's evaluations go through the gateway's routes".into();
        evaluator.base_url = Some(through::BASE_URL.into());
        evaluator.org = None;
        evaluator.credential = None;
        evaluator.aliases = Default::default();
        evaluator.recording = None;
        evaluator.limits = gm_app::LimitsSettings { spec: Some(gm_limits::LimitSpec::default()), ..Default::default() };
        let through = through::ThroughGateway {
            api: crate::server::observed(crate::server::api_router(state.clone()), state.clone()),
        };
        let ui = Ui {
            gateway: state.clone(),
            api: crate::server::api_router(state),
            // Its notices go to the log, not into memory.
            evaluator: Arc::new(
                Session::new(evaluator)
                    .with_transport(Arc::new(through))
                    .on_notice(|n| tracing::info!(notice = %n, "dashboard evaluations")),
            ),
            options: self.options,
            routing: self.routing,
            visitor_limits: self.public.as_ref().map(|p| p.visitor.clone()),
            public_limits: self.public.as_ref().map(|p| p.global.clone()),
            jobs: eval::Jobs::default(),
            owners: Arc::default(),
        };
        Router::new()
            .route("/", get(pages::home))
            .route("/ui/models", get(pages::models))
            .route("/ui/playground", get(playground::show))
            .route("/ui/playground/chat", post(playground::chat))
            .route("/ui/evaluate", get(eval::show).post(eval::start))
            .route("/ui/jobs/{id}", get(eval::job_page))
            .route("/ui/jobs/{id}/events", get(eval::events))
            .route("/ui/jobs/{id}/cancel", post(eval::cancel))
            .route("/ui/jobs/{id}/resume", post(eval::resume))
            .route("/ui/runs", get(pages::runs))
            .route("/ui/runs/{id}", get(pages::run))
            .route("/ui/runs/{id}/export/{format}", get(pages::export))
            .route("/ui/compare", get(pages::compare))
            .route("/ui/quotas", get(pages::quotas))
            .route("/ui/quotas/reset", post(pages::reset_limits))
            .route("/ui/cache/clear", post(pages::clear_cache))
            .route("/ui/keys/create", post(pages::create_key))
            .route("/ui/keys/revoke", post(pages::revoke_key))
            .route("/ui/login", get(login_page).post(login))
            .route("/ui/logout", post(logout))
            .route("/ui/assets/dashboard.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
            .route("/ui/assets/dashboard.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
            .with_state(Arc::new(ui))
    }
}

/// The dashboard's state.
struct Ui {
    gateway: AppState,
    /// The gateway's API, which the playground's requests go through.
    api: Router,
    /// The session evaluations run in (and the run store the run pages read).
    evaluator: Arc<Session>,
    options: DashboardOptions,
    routing: Routing,
    /// Each visitor's limits and all visitors' together, on a `--public` gateway.
    visitor_limits: Option<gm_limits::LimitSpec>,
    public_limits: Option<gm_limits::LimitSpec>,
    jobs: eval::Jobs,
    /// The runs each visitor and each ordinary key started: they see these only.
    owners: Arc<Mutex<HashMap<Owner, HashSet<i64>>>>,
}

type Shared = Arc<Ui>;

/// Who is looking at a page. A handler names the one it needs in its signature: [`Viewer`] for anyone the
/// gateway lets in (else the sign-in page), [`Admin`] for its administrator (else a 403 page).
#[derive(Debug, Clone)]
pub(super) enum Viewer {
    /// The gateway's administrator: the holder of an admin key, or anyone on a gateway without keys and not
    /// public (local use).
    Admin {
        /// The key's name, when signed in with one.
        key: Option<String>,
    },
    /// The holder of an ordinary client key: the playground and small evaluations within its limits, its own
    /// runs.
    Member(Arc<KeyRecord>),
    /// A `--public` visitor without a key, by address.
    Visitor(IpAddr),
}

/// Whose runs and evaluations these are, when not the administrator's (who sees everyone's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Owner {
    /// An ordinary client key, by id.
    Key(String),
    /// A visitor, by address.
    Visitor(IpAddr),
}

impl Viewer {
    fn is_admin(&self) -> bool {
        matches!(self, Viewer::Admin { .. })
    }

    /// Who owns what this viewer starts: `None` for the administrator.
    fn owner(&self) -> Option<Owner> {
        match self {
            Viewer::Admin { .. } => None,
            Viewer::Member(k) => Some(Owner::Key(k.id.clone())),
            Viewer::Visitor(ip) => Some(Owner::Visitor(*ip)),
        }
    }

    /// The caller whose limits count what this viewer starts.
    fn caller(&self) -> Caller {
        match self {
            Viewer::Admin { .. } => Caller::Open,
            Viewer::Member(k) => Caller::Key(k.clone()),
            Viewer::Visitor(ip) => Caller::Visitor(*ip),
        }
    }
}

/// The browser's address, as the server saw it.
fn peer_of(parts: &Parts) -> SocketAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

impl FromRequestParts<Shared> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ui: &Shared) -> Result<Self, Response> {
        viewer(ui, &parts.headers, peer_of(parts)).map_err(|r| *r)
    }
}

/// The administrator, or the page that says what administering this gateway takes.
#[derive(Debug, Clone)]
pub(super) struct Admin(pub(super) Viewer);

impl FromRequestParts<Shared> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ui: &Shared) -> Result<Self, Response> {
        let who = Viewer::from_request_parts(parts, ui).await?;
        if who.is_admin() {
            return Ok(Admin(who));
        }
        Err(problem(StatusCode::FORBIDDEN, "Administration", Some(&who), &needs_admin(ui)))
    }
}

/// What administering the dashboard takes, in words: signing in with the admin key, or making one.
fn needs_admin(ui: &Ui) -> String {
    match ui.gateway.access().keys.any_admin() {
        Ok(true) => "this needs the administrator's key: sign in with the key made with `gm serve keys create --admin`"
            .to_string(),
        _ => "this needs the administrator's key, and this gateway has none, so no one administers it from the \
              browser; on its machine, `gm serve keys create --name admin --admin` makes one"
            .to_string(),
    }
}

/// A form that changes something, sent from one of the dashboard's own pages; else the refusal.
pub(super) struct SameOrigin;

impl<S: Send + Sync> FromRequestParts<S> for SameOrigin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        if same_origin(&parts.headers) {
            Ok(SameOrigin)
        } else {
            Err(cross_site())
        }
    }
}

/// A form's fields (names may repeat), from a body of at most 1 MiB.
pub(super) struct Form(pub(super) Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = Response;

    async fn from_request(req: Request, _: &S) -> Result<Self, Response> {
        match form_body(req).await {
            Some((_, f)) => Ok(Form(f)),
            None => Err(problem(
                StatusCode::BAD_REQUEST,
                "Error",
                None,
                "the form could not be read (at most 1 MiB of text); send it again",
            )),
        }
    }
}

const KEY_COOKIE: &str = "gm_key";

/// The key a browser signed in with (from its cookie).
fn cookie_key(h: &HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == KEY_COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// The request's headers with the signed-in key as its bearer token, as the gateway's API reads keys.
fn with_key(h: &HeaderMap) -> HeaderMap {
    let mut out = h.clone();
    if let Some(k) = cookie_key(h) {
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {k}")) {
            out.insert(header::AUTHORIZATION, v);
        }
    }
    out
}

/// Who is looking, or the page that asks for a key.
fn viewer(ui: &Ui, h: &HeaderMap, peer: SocketAddr) -> Result<Viewer, Box<Response>> {
    match ui.gateway.access().identify(&with_key(h), peer) {
        Ok(Caller::Open) => Ok(Viewer::Admin { key: None }),
        Ok(Caller::Key(k)) if k.admin => Ok(Viewer::Admin { key: Some(k.name.clone()) }),
        Ok(Caller::Key(k)) => Ok(Viewer::Member(k)),
        Ok(Caller::Visitor(ip)) => Ok(Viewer::Visitor(ip)),
        Err(f) => Err(Box::new(page_with_status(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            None,
            html! {
                h1 { "Sign in" }
                p { (f.message) }
                (login_form())
            },
        ))),
    }
}

/// Whether a request that changes something comes from a page of this dashboard: its `Origin` (else its
/// `Referer`) names the host it was sent to, and the browser does not call it cross-site.
fn same_origin(h: &HeaderMap) -> bool {
    if h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return false;
    }
    let Some(host) = h.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    let from = h.get(header::ORIGIN).or_else(|| h.get(header::REFERER)).and_then(|v| v.to_str().ok());
    let Some(from) = from else { return false };
    let rest = from.strip_prefix("http://").or_else(|| from.strip_prefix("https://")).unwrap_or("");
    rest.split('/').next() == Some(host)
}

/// The answer to a form sent from elsewhere.
fn cross_site() -> Response {
    page_with_status(
        StatusCode::FORBIDDEN,
        "Refused",
        None,
        html! { h1 { "Refused" } p { "this form was not sent from the dashboard's own pages; open the dashboard and send it from there" } },
    )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A whole page: the navigation, the viewer's standing, and `body`.
fn page(title: &str, viewer: Option<&Viewer>, body: Markup) -> Response {
    page_with_status(StatusCode::OK, title, viewer, body)
}

fn page_with_status(status: StatusCode, title: &str, viewer: Option<&Viewer>, body: Markup) -> Response {
    let nav = [
        ("/ui/models", "Models"),
        ("/ui/playground", "Playground"),
        ("/ui/evaluate", "Evaluate"),
        ("/ui/runs", "Runs"),
        ("/ui/quotas", "Quotas and cache"),
    ];
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · gm" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/ui/assets/dashboard.css";
                script src="/ui/assets/dashboard.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { "gm" }
                    nav aria-label="pages" {
                        @for (href, label) in nav {
                            a href=(href) aria-current=[(label == title).then_some("page")] { (label) }
                        }
                    }
                    span.who {
                        @match viewer {
                            Some(Viewer::Admin { key: Some(k) }) => {
                                "signed in as " (k) " (administrator) "
                                form.inline method="post" action="/ui/logout" { button type="submit" { "Sign out" } }
                            }
                            Some(Viewer::Member(k)) => {
                                "signed in as " (k.name) " "
                                form.inline method="post" action="/ui/logout" { button type="submit" { "Sign out" } }
                            }
                            Some(Viewer::Admin { key: None }) => { "local gateway" }
                            Some(Viewer::Visitor(_)) => { "visitor · " a href="/ui/login" { "sign in" } }
                            None => {}
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    let mut r = Response::new(Body::from(markup.into_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert("x-frame-options", HeaderValue::from_static("DENY"));
    r.headers_mut().insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    r
}

/// A page that says what went wrong and what to do.
fn problem(status: StatusCode, title: &str, viewer: Option<&Viewer>, message: &str) -> Response {
    page_with_status(status, title, viewer, html! { h1 { (title) } p.error role="alert" { (message) } })
}

/// A gm-app error as a page: a usage error is the request's fault (400), anything else the server's (500).
fn app_error(viewer: &Viewer, e: &gm_app::Error) -> Response {
    let status = if e.is_usage() { StatusCode::BAD_REQUEST } else { StatusCode::INTERNAL_SERVER_ERROR };
    problem(status, "Error", Some(viewer), &e.to_string())
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The pairs of a query string or a form body (names may repeat).
fn pairs(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes()).into_owned().collect()
}

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
}

fn all<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty()).collect()
}

/// The form body of a request, at most 1 MiB.
async fn form_body(req: Request) -> Option<(http::request::Parts, Vec<(String, String)>)> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.ok()?;
    let text = String::from_utf8(bytes.to_vec()).ok()?;
    Some((parts, pairs(&text)))
}

fn login_form() -> Markup {
    html! {
        form method="post" action="/ui/login" {
            label for="key" { "Client key" }
            input #key name="key" type="password" autocomplete="off" required;
            button type="submit" { "Sign in" }
        }
        p.hint { "A key made with " code { "gm serve keys create" } " uses the playground and evaluations within its limits; one made with "
            code { "--admin" } " also administers this dashboard. It is kept in a cookie this site alone can read." }
    }
}

async fn login_page(State(ui): State<Shared>, ConnectInfo(peer): ConnectInfo<SocketAddr>, h: HeaderMap) -> Response {
    let who = viewer(&ui, &h, peer).ok();
    page("Sign in", who.as_ref(), html! { h1 { "Sign in" } (login_form()) })
}

async fn login(
    _: SameOrigin,
    State(ui): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Form(form): Form,
) -> Response {
    let key = first(&form, "key").unwrap_or_default().to_string();
    let mut h = h;
    h.remove(header::COOKIE);
    match HeaderValue::from_str(&format!("Bearer {key}")) {
        Ok(v) => {
            h.insert(header::AUTHORIZATION, v);
        }
        Err(_) => return problem(StatusCode::UNAUTHORIZED, "Sign in", None, "that is not a key of this gateway"),
    }
    match ui.gateway.access().identify(&h, peer) {
        Ok(Caller::Key(_)) => {
            let mut r = see_other("/");
            sign_in(&mut r, &key);
            r
        }
        _ => problem(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            None,
            "that is not a key of this gateway; make one with `gm serve keys create`",
        ),
    }
}

/// Keeps `key` in the browser's cookie for this site.
fn sign_in(r: &mut Response, key: &str) {
    let cookie = format!("{KEY_COOKIE}={key}; Path=/; HttpOnly; SameSite=Strict");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
}

async fn logout(_: SameOrigin) -> Response {
    let mut r = see_other("/");
    let cookie = format!("{KEY_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// A number of seconds in words: `12 s`, `3 min`, `2 h`.
fn seconds(s: f64) -> String {
    if s < 90.0 {
        format!("{} s", s.ceil() as u64)
    } else if s < 5400.0 {
        format!("{} min", (s / 60.0).ceil() as u64)
    } else {
        format!("{} h", (s / 3600.0).ceil() as u64)
    }
}

/// Markup already escaped by its renderer (gm-eval's report fragments).
fn trusted(html: String) -> PreEscaped<String> {
    PreEscaped(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_forms_from_the_same_origin_change_anything() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[("host", "h:1"), ("referer", "https://h:1/ui/quotas")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://evil.example")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080.evil")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(!same_origin(&headers(&[("host", "h:1"), ("origin", "http://h:1"), ("sec-fetch-site", "cross-site")])));
    }

    #[test]
    fn the_key_cookie_becomes_a_bearer_token() {
        let h = headers(&[("cookie", "a=b; gm_key=gm-secret; c=d")]);
        assert_eq!(cookie_key(&h).as_deref(), Some("gm-secret"));
        assert_eq!(with_key(&h).get("authorization").unwrap(), "Bearer gm-secret");
        assert_eq!(cookie_key(&headers(&[("cookie", "gm_key=")])), None);
    }

    #[test]
    fn waits_read_in_words() {
        assert_eq!(seconds(11.2), "12 s");
        assert_eq!(seconds(600.0), "10 min");
        assert_eq!(seconds(7200.0), "2 h");
    }
}

//! The settings of a project, in layers: flags, environment, the project file `gm.toml`, the user file, and
//! the defaults, each setting taken from the first layer that gives it, and the origin of each one kept.
//!
//! The library reads the files but never the environment: a front end passes in its environment as a lookup
//! (as [`gm_http::auth::resolve`] takes it) and its flags as a [`Settings`] layer. [`load`] finds the files
//! (the project file from the working directory upward, or the one named with `--config`; the user file in
//! `$XDG_CONFIG_HOME/gm/config.toml` or `~/.config/gm/config.toml`), refuses an unknown key with its file,
//! line and the closest known key, and returns the [`Effective`] settings, which build a
//! [`SessionConfig`] and say where each value came from (`gm config show`).
//!
//! ```
//! use gm_app::settings::{self, Settings, Sources};
//!
//! let dir = std::env::temp_dir().join(format!("gm-settings-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! std::fs::write(dir.join("gm.toml"), "provider = \"openai-compatible\"\n\
//!     base_url = \"http://localhost:11434/v1\"\n[aliases]\n\"openai/gpt-4o-mini\" = \"llama3.2\"\n").unwrap();
//! let env = |name: &str| (name == "GM_BASE_URL").then(|| "http://127.0.0.1:8080/v1".to_string());
//! let effective = settings::load(&Sources::new(Settings::default(), &env, &dir)).unwrap();
//! // The environment wins over the project file; the file gives what the environment does not.
//! assert_eq!(effective.settings.base_url.as_deref(), Some("http://127.0.0.1:8080/v1"));
//! assert_eq!(effective.origin("base_url").to_string(), "GM_BASE_URL");
//! assert_eq!(effective.settings.aliases["openai/gpt-4o-mini"], "llama3.2");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gm_core::ProviderKind;
use gm_http::auth::{self, EnvLookup};
use gm_http::{Credential, CredentialSource};
use gm_limits::presets::Plan;
use gm_limits::{LimitSpec, LimitsConfig, Margin, ProviderLimits};
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{CacheSettings, LimitsSettings, Prices, SessionConfig, DEFAULT_CACHE_TTL, DEFAULT_MAX_WAIT};
use crate::error::Error;

/// The project file's name, looked for from the working directory upward.
pub const PROJECT_FILE_NAME: &str = "gm.toml";

/// One layer of settings: what the flags, the environment or one file give. Every value is optional; a
/// layer gives only what it sets.
///
/// Deserialized from a file's TOML, with every key documented in `docs/config.md`. Paths in a file are
/// relative to the file's folder.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The provider: github, azure, openai, openai-compatible, demo.
    #[serde(deserialize_with = "opt_provider")]
    pub provider: Option<ProviderKind>,
    /// The provider's base URL.
    pub base_url: Option<String>,
    /// The GitHub organization GitHub Models requests are attributed to.
    pub org: Option<String>,
    /// The environment variable that holds the provider's key (a file names the variable, never the key).
    pub api_key_env: Option<String>,
    /// The folder of the state file.
    pub data_dir: Option<PathBuf>,
    /// A Redis server for the rate-limit windows and the cache.
    pub redis_url: Option<String>,
    /// The longest one request may wait for quota.
    #[serde(deserialize_with = "opt_duration")]
    pub max_wait: Option<Duration>,
    /// The folder of `.prompt.yml` suites `gm eval` runs when given no file.
    pub suites_dir: Option<PathBuf>,
    /// The folder of user tasks for `gm bench`.
    pub tasks_dir: Option<PathBuf>,
    /// The price table: a file, or the table itself (`[prices.models]`).
    pub prices: Option<Prices>,
    /// Model aliases: a name (a short one, or a retired GitHub id) → the model or deployment it stands for.
    pub aliases: BTreeMap<String, String>,
    /// The rate limits.
    pub limits: LimitsLayer,
    /// The response cache.
    pub cache: CacheLayer,
}

/// The `[limits]` table: a spec for every model, a limits file, or the limits file's content inline.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsLayer {
    /// The same limits for every model (`15/1m,150/1d,concurrency=5`).
    pub spec: Option<LimitSpec>,
    /// A limits file (the format of `docs/limits.md`).
    pub file: Option<PathBuf>,
    /// The GitHub plan whose quotas apply.
    pub plan: Option<Plan>,
    /// The transit-time margin added to every window.
    pub margin: Option<Margin>,
    /// Inline, as in a limits file: the limits of keys nothing more specific matches.
    pub default: Option<LimitSpec>,
    /// Inline, as in a limits file: limits per provider and model.
    pub providers: BTreeMap<String, ProviderLimits>,
}

/// The `[cache]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheLayer {
    /// Whether answers are cached.
    pub enabled: Option<bool>,
    /// How long a cached answer stays fresh.
    #[serde(deserialize_with = "opt_duration")]
    pub ttl: Option<Duration>,
}

fn opt_provider<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ProviderKind>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    gm_limits::parse_duration(&s).map(Some).map_err(serde::de::Error::custom)
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// A command-line flag.
    Flag {
        /// The flag (`--provider`).
        flag: String,
    },
    /// An environment variable.
    Env {
        /// The variable.
        variable: String,
    },
    /// The project file.
    ProjectFile {
        /// The file.
        path: PathBuf,
        /// The line of the key.
        line: usize,
    },
    /// The user file.
    UserFile {
        /// The file.
        path: PathBuf,
        /// The line of the key.
        line: usize,
    },
    /// No layer gave it: gm's default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag { flag } => f.write_str(flag),
            Origin::Env { variable } => f.write_str(variable),
            Origin::ProjectFile { path, line } | Origin::UserFile { path, line } => {
                write!(f, "{}:{line}", path.display())
            }
            Origin::Default => f.write_str("default"),
        }
    }
}

/// Each setting's key, its flag on gm's command line and its environment variable, if any.
const KEYS: &[(&str, Option<&str>, Option<&str>)] = &[
    ("provider", Some("--provider"), Some("GM_PROVIDER")),
    ("base_url", Some("--base-url"), Some("GM_BASE_URL")),
    ("org", Some("--org"), None),
    ("api_key_env", Some("--api-key-env"), Some("GM_API_KEY_ENV")),
    ("data_dir", Some("--data-dir"), Some("GM_DATA_DIR")),
    ("redis_url", Some("--redis"), Some("GM_REDIS_URL")),
    ("max_wait", Some("--max-wait"), None),
    ("suites_dir", None, None),
    ("tasks_dir", Some("--tasks-dir"), None),
    ("prices", Some("--prices"), None),
    ("limits.spec", Some("--limits"), Some("GM_LIMITS")),
    ("limits.file", Some("--limits-config"), Some("GM_LIMITS_CONFIG")),
    ("limits.plan", Some("--plan"), None),
    ("limits.margin", None, None),
    ("limits.default", None, None),
    ("limits.providers", None, None),
    ("cache.enabled", Some("--no-cache"), None),
    ("cache.ttl", Some("--cache-ttl"), None),
];

/// The keys a file may hold in each table; `None` for a table of free names (aliases, models).
fn known_keys(table: &[&str]) -> Option<Vec<&'static str>> {
    match table {
        [] => Some(KEYS.iter().map(|(k, ..)| k.split('.').next().unwrap_or(k)).chain(["aliases"]).fold(
            Vec::new(),
            |mut v, k| {
                if !v.contains(&k) {
                    v.push(k);
                }
                v
            },
        )),
        ["limits"] => Some(KEYS.iter().filter_map(|(k, ..)| k.strip_prefix("limits.")).collect()),
        ["cache"] => Some(KEYS.iter().filter_map(|(k, ..)| k.strip_prefix("cache.")).collect()),
        ["limits", "providers", _] => Some(vec!["plan", "limits", "models"]),
        ["prices"] => Some(vec!["models"]),
        _ => None,
    }
}

/// Which file a layer was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Project,
    User,
}

/// One file's settings and the line of each key.
#[derive(Debug, Clone)]
struct FileLayer {
    path: PathBuf,
    kind: FileKind,
    settings: Settings,
    lines: BTreeMap<String, usize>,
}

impl FileLayer {
    fn origin(&self, key: &str) -> Origin {
        let line = self.lines.get(key).copied().unwrap_or(1);
        match self.kind {
            FileKind::Project => Origin::ProjectFile { path: self.path.clone(), line },
            FileKind::User => Origin::UserFile { path: self.path.clone(), line },
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The known key closest to `key`, when one is close enough to be a likely misspelling.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Checks every key of the checked tables and notes each key's line (dotted: `limits.spec`, `aliases.x`).
fn walk(
    path: &Path,
    text: &str,
    table: &toml::de::DeTable<'_>,
    at: &mut Vec<String>,
    lines: &mut BTreeMap<String, usize>,
) -> Result<(), Error> {
    let here: Vec<String> = at.clone();
    let here: Vec<&str> = here.iter().map(String::as_str).collect();
    let known = known_keys(&here);
    for (key, value) in table.iter() {
        let name = key.get_ref().as_ref();
        let (line, column) = line_col(text, key.span().start);
        if let Some(known) = known.as_ref().filter(|k| !k.contains(&name)) {
            let dotted = |k: &str| here.iter().copied().chain([k]).collect::<Vec<_>>().join(".");
            return Err(Error::UnknownSetting {
                path: path.to_path_buf(),
                line,
                column,
                key: dotted(name),
                suggestion: closest(name, known).map(dotted),
            });
        }
        at.push(name.to_string());
        lines.entry(at.join(".")).or_insert(line);
        // Deeper tables hold only free names (models under a provider's limits).
        if let (toml::de::DeValue::Table(inner), true) = (value.get_ref(), at.len() <= 3) {
            walk(path, text, inner, at, lines)?;
        }
        at.pop();
    }
    Ok(())
}

/// Reads a configuration file of a front end's own (a server's routing file) as gm.toml, a limits file and a
/// price table are read: one over 1 MiB is refused without being read whole.
pub fn read_config_file(path: &Path) -> std::io::Result<String> {
    crate::eval::read_small(path)
}

/// Reads one settings file: unknown keys and bad values are errors naming the file and line.
fn read_file(path: &Path, kind: FileKind) -> Result<FileLayer, Error> {
    let text =
        crate::eval::read_small(path).map_err(|source| Error::ReadSettings { path: path.to_path_buf(), source })?;
    let syntax = |e: toml::de::Error| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(&text, s.start));
        Error::SettingsFile { path: path.to_path_buf(), line, column, message: e.message().trim().to_string() }
    };
    let table = toml::de::DeTable::parse(&text).map_err(syntax)?;
    let mut lines = BTreeMap::new();
    walk(path, &text, table.get_ref(), &mut Vec::new(), &mut lines)?;
    let mut settings: Settings = toml::from_str(&text).map_err(syntax)?;
    let folder = path.parent().unwrap_or(Path::new("."));
    settings.relative_to(folder);
    Ok(FileLayer { path: path.to_path_buf(), kind, settings, lines })
}

impl Settings {
    /// Makes the relative paths of a file's settings relative to the file's folder.
    fn relative_to(&mut self, folder: &Path) {
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(path) = p {
                if path.is_relative() {
                    *path = folder.join(&*path);
                }
            }
        };
        fix(&mut self.data_dir);
        fix(&mut self.suites_dir);
        fix(&mut self.tasks_dir);
        fix(&mut self.limits.file);
        if let Some(Prices::File(p)) = &mut self.prices {
            if p.is_relative() {
                *p = folder.join(&*p);
            }
        }
    }

    /// The layer of the environment: the `GM_*` variables that name settings (`GM_PROVIDER`, `GM_BASE_URL`,
    /// `GM_API_KEY_ENV`, `GM_DATA_DIR`, `GM_REDIS_URL`, `GM_LIMITS`, `GM_LIMITS_CONFIG`); empty ones are unset.
    pub fn from_env(env: EnvLookup<'_>) -> Result<Settings, Error> {
        let get = |name: &str| env(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let bad = |variable: &str, message: String| Error::BadSetting { origin: variable.to_string(), message };
        let mut s = Settings {
            base_url: get("GM_BASE_URL"),
            api_key_env: get("GM_API_KEY_ENV"),
            data_dir: get("GM_DATA_DIR").map(PathBuf::from),
            redis_url: get("GM_REDIS_URL"),
            ..Settings::default()
        };
        if let Some(p) = get("GM_PROVIDER") {
            s.provider = Some(p.parse().map_err(|e: gm_core::UnknownProvider| bad("GM_PROVIDER", e.to_string()))?);
        }
        if let Some(spec) = get("GM_LIMITS") {
            s.limits.spec = Some(parse_limits(&spec).map_err(|e| bad("GM_LIMITS", e))?);
        }
        s.limits.file = get("GM_LIMITS_CONFIG").map(PathBuf::from);
        Ok(s)
    }

    /// The value of `key` in this layer, shown (secrets redacted); `None` when the layer does not set it.
    fn shown(&self, key: &str) -> Option<String> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let dur = |d: &Option<Duration>| d.map(show_duration);
        match key {
            "provider" => self.provider.map(|p| p.to_string()),
            "base_url" => self.base_url.as_deref().map(redact_url),
            "org" => self.org.clone(),
            "api_key_env" => self.api_key_env.clone(),
            "data_dir" => path(&self.data_dir),
            "redis_url" => self.redis_url.as_deref().map(redact_url),
            "max_wait" => dur(&self.max_wait),
            "suites_dir" => path(&self.suites_dir),
            "tasks_dir" => path(&self.tasks_dir),
            "prices" => self.prices.as_ref().map(|p| match p {
                Prices::File(f) => f.display().to_string(),
                Prices::Inline(t) => format!("a table of {} models", t.models.len()),
            }),
            "limits.spec" => self.limits.spec.as_ref().map(|s| s.to_string()),
            "limits.file" => path(&self.limits.file),
            "limits.plan" => self.limits.plan.map(|p| p.to_string()),
            "limits.margin" => self.limits.margin.map(|m| m.to_string()),
            "limits.default" => self.limits.default.as_ref().map(|s| s.to_string()),
            "limits.providers" => (!self.limits.providers.is_empty())
                .then(|| self.limits.providers.keys().cloned().collect::<Vec<_>>().join(", ")),
            "cache.enabled" => self.cache.enabled.map(|b| b.to_string()),
            "cache.ttl" => dur(&self.cache.ttl),
            _ => None,
        }
    }
}

/// Parses a `--limits` spec (`original` is the original integration's 30/1m,300/1h,3000/1d).
pub fn parse_limits(s: &str) -> Result<LimitSpec, String> {
    if s.trim().eq_ignore_ascii_case("original") {
        return Ok(gm_limits::presets::original());
    }
    LimitSpec::parse(s).map_err(|e| e.to_string())
}

fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".into(),
        ms if ms % 86_400_000 == 0 => format!("{}d", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// A URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else { return url.to_string() };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            let user = if user.is_empty() { String::new() } else { format!("{user}:") };
            format!("{}{user}***{}", &url[..scheme_end + 3], &rest[at..])
        }
        None => url.to_string(),
    }
}

/// What [`load`] reads: the flags, the environment, where to start looking for the project file.
pub struct Sources<'a> {
    /// What the command line gave (only what the user typed: a flag left out is `None`).
    pub flags: Settings,
    /// The environment.
    pub env: EnvLookup<'a>,
    /// The folder the search for `gm.toml` starts from (upward).
    pub cwd: PathBuf,
    /// A project file given by name (`--config FILE`): no search, and it must exist.
    pub project_file: Option<PathBuf>,
}

impl<'a> Sources<'a> {
    /// Flags, environment and working directory; the project file found by searching.
    pub fn new(flags: Settings, env: EnvLookup<'a>, cwd: &Path) -> Self {
        Self { flags, env, cwd: cwd.to_path_buf(), project_file: None }
    }
}

/// The project file for `cwd`: `gm.toml` in it or the nearest folder above it.
pub fn find_project_file(cwd: &Path) -> Option<PathBuf> {
    cwd.ancestors().map(|d| d.join(PROJECT_FILE_NAME)).find(|p| p.is_file())
}

/// The user file: `$XDG_CONFIG_HOME/gm/config.toml`, else `$HOME/.config/gm/config.toml`.
pub fn user_file(env: EnvLookup<'_>) -> Option<PathBuf> {
    let nonempty = |n: &str| env(n).filter(|v| !v.is_empty());
    match nonempty("XDG_CONFIG_HOME") {
        Some(x) => Some(PathBuf::from(x).join("gm/config.toml")),
        None => nonempty("HOME").map(|h| PathBuf::from(h).join(".config/gm/config.toml")),
    }
}

/// The default folder of the state file: `$XDG_DATA_HOME/gm`, else `~/.local/share/gm`, else `.gm`.
pub fn default_data_dir(env: EnvLookup<'_>) -> PathBuf {
    let nonempty = |n: &str| env(n).filter(|v| !v.is_empty());
    match (nonempty("XDG_DATA_HOME"), nonempty("HOME")) {
        (Some(x), _) => PathBuf::from(x).join("gm"),
        (None, Some(h)) => PathBuf::from(h).join(".local/share/gm"),
        (None, None) => PathBuf::from(".gm"),
    }
}

/// The settings in effect and where each came from.
#[derive(Debug, Clone)]
pub struct Effective {
    /// Each setting from the first layer that gives it (flag, environment, project file, user file).
    pub settings: Settings,
    /// The project file read, if any.
    pub project_file: Option<PathBuf>,
    /// The user file read, if any.
    pub user_file: Option<PathBuf>,
    /// The origin of each setting given by some layer (dotted keys; `aliases.NAME` for each alias).
    origins: BTreeMap<String, Origin>,
    /// The default folder of the state file, from the environment.
    default_data_dir: PathBuf,
}

/// Where each key of one layer came from.
type OriginOf<'a> = Box<dyn Fn(&str) -> Origin + 'a>;

/// Finds and reads the files and layers every setting: flag > environment > project file > user file >
/// default.
pub fn load(sources: &Sources<'_>) -> Result<Effective, Error> {
    let env_layer = Settings::from_env(sources.env)?;
    let project = match &sources.project_file {
        Some(p) => Some(read_file(p, FileKind::Project)?),
        None => find_project_file(&sources.cwd).map(|p| read_file(&p, FileKind::Project)).transpose()?,
    };
    let user = user_file(sources.env).filter(|p| p.is_file()).map(|p| read_file(&p, FileKind::User)).transpose()?;
    let flag_of = |key: &str| {
        KEYS.iter().find(|(k, ..)| *k == key).and_then(|(_, f, _)| *f).map_or_else(|| key.to_string(), str::to_string)
    };
    let env_of = |key: &str| {
        KEYS.iter().find(|(k, ..)| *k == key).and_then(|(.., e)| *e).map_or_else(|| key.to_string(), str::to_string)
    };
    // Highest precedence first.
    let mut layers: Vec<(&Settings, OriginOf<'_>)> = vec![
        (&sources.flags, Box::new(|k: &str| Origin::Flag { flag: flag_of(k) })),
        (&env_layer, Box::new(|k: &str| Origin::Env { variable: env_of(k) })),
    ];
    for file in [&project, &user].into_iter().flatten() {
        layers.push((&file.settings, Box::new(move |k: &str| file.origin(k))));
    }
    let mut settings = Settings::default();
    let mut origins = BTreeMap::new();
    macro_rules! pick {
        ($key:literal, $($field:ident).+) => {
            if let Some((layer, origin)) = layers.iter().find(|(l, _)| l.$($field).+.is_some()) {
                settings.$($field).+ = layer.$($field).+.clone();
                origins.insert($key.to_string(), origin($key));
            }
        };
    }
    pick!("provider", provider);
    pick!("base_url", base_url);
    pick!("org", org);
    pick!("api_key_env", api_key_env);
    pick!("data_dir", data_dir);
    pick!("redis_url", redis_url);
    pick!("max_wait", max_wait);
    pick!("suites_dir", suites_dir);
    pick!("tasks_dir", tasks_dir);
    pick!("prices", prices);
    pick!("limits.spec", limits.spec);
    pick!("limits.file", limits.file);
    pick!("limits.plan", limits.plan);
    pick!("limits.margin", limits.margin);
    pick!("limits.default", limits.default);
    pick!("cache.enabled", cache.enabled);
    pick!("cache.ttl", cache.ttl);
    // The inline limits per provider, and the aliases, merge name by name.
    for (layer, origin) in layers.iter().rev() {
        for (provider, limits) in &layer.limits.providers {
            settings.limits.providers.insert(provider.clone(), limits.clone());
            origins.insert("limits.providers".into(), origin("limits.providers"));
        }
        for (name, model) in &layer.aliases {
            settings.aliases.insert(name.clone(), model.clone());
            let key = format!("aliases.{name}");
            origins.insert(key.clone(), origin(&key));
        }
    }
    check_aliases(&settings.aliases, &origins)?;
    drop(layers);
    Ok(Effective {
        settings,
        project_file: project.map(|p| p.path),
        user_file: user.map(|u| u.path),
        origins,
        default_data_dir: default_data_dir(sources.env),
    })
}

/// An alias resolves in one step: its model must not be another alias.
fn check_aliases(aliases: &BTreeMap<String, String>, origins: &BTreeMap<String, Origin>) -> Result<(), Error> {
    for (name, model) in aliases {
        if model.trim().is_empty() {
            return Err(Error::BadSetting {
                origin: origins.get(&format!("aliases.{name}")).map(|o| o.to_string()).unwrap_or_default(),
                message: format!("alias `{name}` names no model"),
            });
        }
        if model != name && aliases.contains_key(model) {
            return Err(Error::BadSetting {
                origin: origins.get(&format!("aliases.{name}")).map(|o| o.to_string()).unwrap_or_default(),
                message: format!(
                    "alias `{name}` names `{model}`, itself an alias; name the model `{model}` stands for"
                ),
            });
        }
    }
    Ok(())
}

/// One line of `gm config show`: a setting, its value (secrets redacted) and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    /// The dotted key (`limits.spec`, `aliases.NAME`), or `credential`.
    pub key: String,
    /// The value, secrets redacted; `None` when unset.
    pub value: Option<String>,
    /// Where it came from.
    pub origin: Origin,
}

impl Effective {
    /// Where `key` came from ([`Origin::Default`] when no layer gave it).
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    /// Every setting in effect, in the order of `docs/config.md`, secrets redacted; unset ones with gm's
    /// default. `resolution` is the provider and credential [`Effective::resolve_provider`] found: an unset
    /// provider shows the one chosen, and `credential` the key found through `api_key_env` or the provider's
    /// usual variables (redacted).
    pub fn show(&self, resolution: &auth::Resolution) -> Vec<Shown> {
        let credential = resolution.credential.as_ref();
        let mut out = Vec::new();
        for (key, ..) in KEYS {
            let value = self.settings.shown(key).or_else(|| match *key {
                "provider" => Some(resolution.provider.to_string()),
                _ => self.default_shown(key),
            });
            out.push(Shown { key: key.to_string(), value, origin: self.origin(key) });
        }
        out.insert(
            4,
            Shown {
                key: "credential".into(),
                value: credential.map(|c| c.redacted()),
                origin: match credential.map(Credential::source) {
                    Some(CredentialSource::Env(v)) => Origin::Env { variable: v.to_string() },
                    Some(CredentialSource::NamedEnv(v)) => Origin::Env { variable: v.clone() },
                    Some(CredentialSource::GhCli) => Origin::Flag { flag: "gh auth token".into() },
                    _ => Origin::Default,
                },
            },
        );
        for (name, model) in &self.settings.aliases {
            let key = format!("aliases.{name}");
            out.push(Shown { value: Some(model.clone()), origin: self.origin(&key), key });
        }
        out
    }

    fn default_shown(&self, key: &str) -> Option<String> {
        match key {
            "data_dir" => Some(self.default_data_dir.display().to_string()),
            "max_wait" => Some(show_duration(DEFAULT_MAX_WAIT)),
            "cache.enabled" => Some("true".into()),
            "cache.ttl" => Some(show_duration(DEFAULT_CACHE_TTL)),
            _ => None,
        }
    }

    /// The provider and its credential ([`gm_http::auth::resolve_wanted`]): the provider from the settings,
    /// else an OpenAI-compatible server when a base URL is set, else found from the environment's credentials,
    /// else demo; the key from `api_key_env` when it is set, else the provider's usual place.
    pub fn resolve_provider(&self, env: EnvLookup<'_>, gh: &dyn Fn() -> Option<String>) -> auth::Resolution {
        let wanted = auth::Wanted {
            provider: self.settings.provider,
            base_url: self.settings.base_url.as_deref(),
            api_key_env: self.settings.api_key_env.as_deref(),
        };
        let mut r = auth::resolve_wanted(wanted, env, gh);
        if let Some(p) = self.settings.provider {
            if r.provider == p {
                r.reason = match self.origin("provider") {
                    Origin::Flag { flag } => format!("{flag} {p} was given"),
                    Origin::Env { variable } => format!("{variable}={p} is set"),
                    origin => format!("provider = \"{p}\" in {origin}"),
                };
            }
        }
        r
    }

    /// The session configuration: the provider resolved with `env` and `gh` (see
    /// [`Effective::resolve_provider`]), and every other setting.
    pub fn session_config(&self, env: EnvLookup<'_>, gh: &dyn Fn() -> Option<String>) -> SessionConfig {
        self.state_config().resolved(self.resolve_provider(env, gh))
    }

    /// The session configuration without a provider resolved (the environment's credentials and `gh` are
    /// not consulted), for the use cases that only read the state.
    pub fn state_config(&self) -> SessionConfig {
        let s = &self.settings;
        let inline = !(s.limits.default.is_none() && s.limits.providers.is_empty());
        SessionConfig {
            base_url: s.base_url.clone(),
            org: s.org.clone(),
            api_key_env: s.api_key_env.clone(),
            limits: LimitsSettings {
                spec: s.limits.spec.clone(),
                file: s.limits.file.clone(),
                plan: s.limits.plan,
                margin: s.limits.margin,
                inline: inline.then(|| LimitsConfig {
                    default: s.limits.default.clone(),
                    margin: s.limits.margin,
                    providers: s.limits.providers.clone(),
                    uniform: false,
                }),
                // A flag of the front end's (`--server-concurrency`); no settings file sets it.
                server_concurrency: None,
            },
            max_wait: s.max_wait.unwrap_or(DEFAULT_MAX_WAIT),
            cache: CacheSettings {
                enabled: s.cache.enabled.unwrap_or(true),
                ttl: s.cache.ttl.unwrap_or(DEFAULT_CACHE_TTL),
                refresh: false,
            },
            data_dir: Some(s.data_dir.clone().unwrap_or_else(|| self.default_data_dir.clone())),
            redis_url: s.redis_url.clone(),
            aliases: s.aliases.clone(),
            suites_dir: s.suites_dir.clone(),
            tasks_dir: s.tasks_dir.clone(),
            prices: s.prices.clone(),
            ..SessionConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_alone_means_an_openai_compatible_server_with_the_key_its_variable_names() {
        let dir = std::env::temp_dir().join(format!("gm-settings-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = "base_url = \"http://127.0.0.1:4000/v1\"\napi_key_env = \"LITELLM_MASTER_KEY\"\n";
        std::fs::write(dir.join(PROJECT_FILE_NAME), file).unwrap();
        let env = |name: &str| (name == "LITELLM_MASTER_KEY").then(|| "sk-1234".to_string());
        let config = load(&Sources::new(Settings::default(), &env, &dir)).unwrap().session_config(&env, &|| None);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(config.provider, ProviderKind::OpenAiCompatible);
        assert_eq!(config.provider_reason, "a base URL was given without a provider");
        assert_eq!(config.credential.as_ref().map(Credential::expose), Some("sk-1234"));
        assert!(!format!("{config:?}").contains("sk-1234"));
    }

    #[test]
    fn a_url_password_is_redacted() {
        assert_eq!(redact_url("redis://:hunter2@127.0.0.1:6379/"), "redis://***@127.0.0.1:6379/");
        assert_eq!(redact_url("https://user:pw@host/v1"), "https://user:***@host/v1");
        assert_eq!(redact_url("http://localhost:11434/v1"), "http://localhost:11434/v1");
        assert_eq!(redact_url("http://host/v1?x=a@b"), "http://host/v1?x=a@b");
    }

    #[test]
    fn the_closest_known_key_is_suggested() {
        let known = known_keys(&[]).unwrap();
        assert_eq!(closest("providr", &known), Some("provider"));
        assert_eq!(closest("base-url", &known), Some("base_url"));
        assert_eq!(closest("zzzzzzzz", &known), None);
        assert!(known.contains(&"aliases") && known.contains(&"limits") && known.contains(&"cache"));
    }

    #[test]
    fn a_settings_file_over_1_mib_is_refused_unread() {
        let dir = gm_testkit::TempDir::new("settings-big");
        std::fs::create_dir_all(dir.path()).unwrap();
        let path = dir.join("gm.toml");
        std::fs::write(&path, "# padding\n".repeat(200_000)).unwrap();
        let err = read_file(&path, FileKind::Project).map(|_| ()).unwrap_err();
        let source = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
        assert!(matches!(err, Error::ReadSettings { .. }) && source.contains("larger than 1 MiB"), "{err:?}");
    }

    #[test]
    fn durations_show_in_their_largest_unit() {
        assert_eq!(show_duration(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(show_duration(Duration::from_secs(120)), "2m");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1500ms");
    }
}

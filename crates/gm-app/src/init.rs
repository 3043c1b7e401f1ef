//! Setting up a project: what providers this machine offers, a check of the chosen one with one catalog
//! call, and the project file and starter suite written for it.
//!
//! The front end reads the environment and asks the user; this module takes what it found, probes the
//! usual local servers with one short request each to loopback, and writes the files (never a secret: the
//! project file names the variable that holds a key).

use std::path::{Path, PathBuf};
use std::time::Duration;

use gm_core::ProviderKind;
use gm_http::auth::{azure_base_from_endpoint, EnvLookup};
use gm_http::{Client, RetryPolicy};
use serde::Serialize;

use crate::error::Error;
use crate::settings::PROJECT_FILE_NAME;

/// The usual ports of local OpenAI-compatible servers, and who usually listens there.
pub const LOCAL_SERVERS: &[(u16, &str)] =
    &[(11434, "Ollama"), (1234, "LM Studio"), (8000, "vLLM"), (8080, "llama.cpp server")];

/// How long a local server may take to answer its one probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// The two lines every setup starts with.
pub const RETIREMENT: &str = "GitHub Models was retired on 2026-07-30: its API answers 410 Gone.\n\
gm runs the same .prompt.yml suites on Azure AI Foundry, OpenAI, or an OpenAI-compatible server (Ollama, vLLM, \
llama.cpp, LM Studio).";

/// A provider the machine offers, found in the environment or on a loopback port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The provider.
    #[serde(serialize_with = "provider_name")]
    pub provider: ProviderKind,
    /// Its base URL, when it is not the provider's default.
    pub base_url: Option<String>,
    /// The environment variable holding its key, when it needs one.
    pub api_key_env: Option<String>,
    /// What it is, for a person (`Ollama on port 11434`, `OPENAI_API_KEY is set`).
    pub label: String,
    /// The chat models it lists (a local server's catalog), when known.
    pub models: Vec<String>,
    /// Whether it can answer: false for GitHub Models, which is retired.
    pub usable: bool,
}

fn provider_name<S: serde::Serializer>(p: &ProviderKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

/// The providers the environment's credentials point to: `OPENAI_API_KEY`, `AZURE_OPENAI_API_KEY` with
/// `AZURE_OPENAI_ENDPOINT`, and a GitHub token (`GITHUB_TOKEN`, `GH_TOKEN`, or `gh auth token`, which `gh`
/// gives), listed as retired.
pub fn from_environment(env: EnvLookup<'_>, gh: &dyn Fn() -> Option<String>) -> Vec<Candidate> {
    let set = |n: &str| env(n).is_some_and(|v| !v.trim().is_empty());
    let mut found = Vec::new();
    if set("OPENAI_API_KEY") {
        found.push(Candidate {
            provider: ProviderKind::OpenAi,
            base_url: None,
            api_key_env: Some("OPENAI_API_KEY".into()),
            label: "OpenAI (OPENAI_API_KEY is set)".into(),
            models: Vec::new(),
            usable: true,
        });
    }
    if set("AZURE_OPENAI_API_KEY") && set("AZURE_OPENAI_ENDPOINT") {
        found.push(Candidate {
            provider: ProviderKind::Azure,
            base_url: env("AZURE_OPENAI_ENDPOINT").map(|e| azure_base_from_endpoint(&e)),
            api_key_env: Some("AZURE_OPENAI_API_KEY".into()),
            label: "Azure AI Foundry (AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT are set)".into(),
            models: Vec::new(),
            usable: true,
        });
    }
    let github = ["GITHUB_TOKEN", "GH_TOKEN"]
        .into_iter()
        .find(|n| set(n))
        .map(str::to_string)
        .or_else(|| gh().filter(|t| !t.trim().is_empty()).map(|_| "`gh auth token`".to_string()));
    if let Some(source) = github {
        found.push(Candidate {
            provider: ProviderKind::Github,
            base_url: None,
            api_key_env: None,
            label: format!("GitHub Models (a token from {source}; retired, so it cannot answer)"),
            models: Vec::new(),
            usable: false,
        });
    }
    found
}

/// The OpenAI-compatible servers answering on `ports` of 127.0.0.1, each asked once for its model list
/// (`GET /v1/models`). A port that refuses, times out or answers something else is left out.
pub async fn local_servers(ports: &[u16]) -> Vec<Candidate> {
    let mut found = Vec::new();
    for &port in ports {
        found.extend(probe(port).await);
    }
    found
}

/// One short request to one port.
async fn probe(port: u16) -> Option<Candidate> {
    let base = format!("http://127.0.0.1:{port}/v1");
    let client = Client::builder()
        .provider(ProviderKind::OpenAiCompatible)
        .base_url(base.clone())
        .retry_policy(RetryPolicy::none())
        .timeout(PROBE_TIMEOUT)
        .build()
        .ok()?;
    let catalog = tokio::time::timeout(PROBE_TIMEOUT, client.models()).await.ok()?.ok()?;
    let name = LOCAL_SERVERS.iter().find(|(p, _)| *p == port).map_or("an OpenAI-compatible server", |(_, n)| n);
    let mut models: Vec<String> = catalog.iter().filter(|m| m.is_chat_model()).map(|m| m.id.clone()).collect();
    models.sort();
    Some(Candidate {
        provider: ProviderKind::OpenAiCompatible,
        base_url: Some(base),
        api_key_env: None,
        label: format!("{name} on port {port} ({} models)", models.len()),
        models,
        usable: true,
    })
}

/// What `gm init` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// The provider.
    pub provider: ProviderKind,
    /// Its base URL, when not the default.
    pub base_url: Option<String>,
    /// The variable that holds its key, when it needs one.
    pub api_key_env: Option<String>,
    /// The model the starter suite evaluates.
    pub model: String,
    /// The suites folder, relative to the project file.
    pub suites_dir: String,
}

/// TOML's basic string.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Setup {
    /// The project file: the provider, where it is, the variable of its key, the suites folder, and
    /// commented examples of the other keys.
    pub fn project_file(&self) -> String {
        let mut t = String::from("# gm's project settings; every key is described in docs/config.md.\n");
        t.push_str("# Flags and GM_* environment variables override what is set here.\n\n");
        t.push_str(&format!("provider = {}\n", quoted(self.provider.as_str())));
        if let Some(url) = &self.base_url {
            t.push_str(&format!("base_url = {}\n", quoted(url)));
        }
        match &self.api_key_env {
            Some(var) => t.push_str(&format!(
                "# The key is read from this variable; it is never written here.\napi_key_env = {}\n",
                quoted(var)
            )),
            None => t.push_str(
                "# api_key_env = \"MY_SERVER_KEY\"   # the variable holding a key, if the server needs one\n",
            ),
        }
        t.push_str(&format!("suites_dir = {}\n", quoted(&self.suites_dir)));
        t.push_str("\n[aliases]\n# A short name or a retired GitHub Models id, and the model it stands for:\n");
        t.push_str(&format!("# \"openai/gpt-4o-mini\" = {}\n", quoted(&self.model)));
        t.push_str("\n[cache]\nenabled = true\nttl = \"7d\"\n");
        t.push_str("\n# [limits]\n# spec = \"15/1m,150/1d,concurrency=5\"\n");
        t
    }

    /// The starter suite: two cases a model passes by greeting a name.
    pub fn starter_suite(&self) -> String {
        format!(
            "name: Starter\n\
             description: A first suite written by gm init; edit it, or add .prompt.yml files beside it\n\
             model: {}\n\
             modelParameters:\n  temperature: 0\n\
             messages:\n  - role: system\n    content: You answer in one short sentence.\n  - role: user\n    content: Say hello to {{{{name}}}}.\n\
             testData:\n  - name: Ada\n  - name: Grace\n\
             evaluators:\n  - name: greets by name\n    string:\n      contains: \"{{{{name}}}}\"\n",
            quoted(&self.model)
        )
    }

    /// Writes the project file and the starter suite into `dir` (the suites folder made if needed).
    /// Refuses to overwrite either unless `force`.
    pub fn write(&self, dir: &Path, force: bool) -> Result<Written, Error> {
        let project = dir.join(PROJECT_FILE_NAME);
        let suites = dir.join(&self.suites_dir);
        let suite = suites.join("starter.prompt.yml");
        for path in [&project, &suite] {
            if path.exists() && !force {
                return Err(Error::Exists { path: path.clone() });
            }
        }
        let write = |path: &Path, text: String| {
            std::fs::write(path, text).map_err(|source| Error::Write { path: path.to_path_buf(), source })
        };
        std::fs::create_dir_all(&suites).map_err(|source| Error::Write { path: suites.clone(), source })?;
        write(&project, self.project_file())?;
        write(&suite, self.starter_suite())?;
        Ok(Written { project_file: project, suite })
    }
}

/// The files `gm init` wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Written {
    /// The project file.
    pub project_file: PathBuf,
    /// The starter suite.
    pub suite: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup {
        Setup {
            provider: ProviderKind::OpenAiCompatible,
            base_url: Some("http://localhost:11434/v1".into()),
            api_key_env: Some("OLLAMA \"KEY\"".into()),
            model: "llama3.2".into(),
            suites_dir: "evals".into(),
        }
    }

    #[test]
    fn the_project_file_reads_back_as_settings() {
        let text = setup().project_file();
        let s: crate::settings::Settings = toml::from_str(&text).unwrap();
        assert_eq!(s.provider, Some(ProviderKind::OpenAiCompatible));
        assert_eq!(s.base_url.as_deref(), Some("http://localhost:11434/v1"));
        assert_eq!(s.api_key_env.as_deref(), Some("OLLAMA \"KEY\""));
        assert_eq!(s.suites_dir, Some(PathBuf::from("evals")));
        assert_eq!(s.cache.enabled, Some(true));
    }

    #[test]
    fn the_starter_suite_is_a_prompt_file_of_the_model() {
        let f = gm_eval::prompt::PromptFile::parse(&setup().starter_suite(), "starter.prompt.yml").unwrap();
        assert_eq!(f.model.as_deref(), Some("llama3.2"));
        assert_eq!(f.test_data.len(), 2);
        assert_eq!(f.evaluators.len(), 1);
    }

    #[test]
    fn credentials_in_the_environment_are_found_and_github_is_marked_retired() {
        let env = |n: &str| match n {
            "OPENAI_API_KEY" => Some("sk-x".to_string()),
            "AZURE_OPENAI_API_KEY" => Some("k".to_string()),
            "AZURE_OPENAI_ENDPOINT" => Some("https://r.openai.azure.com/".to_string()),
            _ => None,
        };
        let found = from_environment(&env, &|| Some("gho_x".into()));
        let kinds: Vec<_> = found.iter().map(|c| (c.provider, c.usable)).collect();
        assert_eq!(kinds, [(ProviderKind::OpenAi, true), (ProviderKind::Azure, true), (ProviderKind::Github, false)]);
        assert_eq!(found[1].base_url.as_deref(), Some("https://r.openai.azure.com/openai/v1"));
        assert!(found[2].label.contains("gh auth token"), "{}", found[2].label);
        assert!(from_environment(&|_| None, &|| None).is_empty());
    }
}

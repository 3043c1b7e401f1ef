//! `gm init`: find a provider on this machine, check it with one catalog call, and write `gm.toml` and a
//! starter suite. Asks on a terminal; takes its flags (or the first provider found) with `--yes` or without
//! a terminal.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use gm_app::init::{self, Candidate, Setup, RETIREMENT};
use gm_app::{Session, SessionConfig};
use gm_core::ProviderKind;
use gm_http::{Credential, CredentialSource};

use crate::cli::{Global, InitArgs};
use crate::context;

/// Runs `gm init`.
pub async fn run(global: &Global, args: InitArgs) -> Result<ExitCode> {
    let dir = std::env::current_dir().context("could not read the current folder")?;
    let project = dir.join(gm_app::settings::PROJECT_FILE_NAME);
    if project.exists() && !args.force {
        return Err(gm_app::Error::Exists { path: project }.into());
    }
    let interactive = !args.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    eprintln!("{RETIREMENT}\n");

    let given = given(global);
    let mut found = init::from_environment(&context::env_var, &context::gh_auth_token);
    if given.is_none() {
        eprintln!("Looking for a local server on ports {} …", ports(&args.probe_ports));
        let mut local = init::local_servers(&args.probe_ports).await;
        local.append(&mut found);
        found = local;
    }
    if found.is_empty() {
        eprintln!("Found no provider: no local server answered and no key is set in the environment.");
    } else {
        eprintln!("Found:");
        for c in &found {
            eprintln!("  - {}", c.label);
        }
    }
    eprintln!();

    let choice = match given {
        Some(c) => c,
        None if interactive => ask_provider(&found)?,
        None => match found.iter().find(|c| c.usable) {
            Some(c) => c.clone(),
            None => bail!(gm_app::Error::BadSetting {
                origin: "gm init".into(),
                message: "no provider was found; pass --provider (and --base-url for a server of your own), or \
                          --provider demo for the offline demo"
                    .into(),
            }),
        },
    };
    eprintln!("Using {}", choice.label);

    let models = if args.no_verify {
        choice.models.clone()
    } else {
        let models = verify(&choice).await?;
        eprintln!("Checked: {} answered its catalog with {} chat models.", choice.provider, models.len());
        models
    };
    let model = match (&args.model, interactive) {
        (Some(m), _) => m.clone(),
        (None, true) => ask_model(&choice, &models)?,
        (None, false) => match models.first() {
            Some(m) => m.clone(),
            None => bail!(gm_app::Error::BadSetting {
                origin: "gm init".into(),
                message: "the provider listed no chat model; pass --model MODEL".into(),
            }),
        },
    };
    if !models.is_empty() && !models.iter().any(|m| m.eq_ignore_ascii_case(&model)) {
        eprintln!("warning: {model} is not in the provider's catalog; the suite may fail until it is");
    }

    let setup = Setup {
        provider: choice.provider,
        base_url: choice.base_url.clone(),
        api_key_env: choice.api_key_env.clone(),
        model,
        suites_dir: args.suites_dir.clone(),
    };
    let written = setup.write(&dir, args.force)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Wrote {} and {}.", shown(&dir, &written.project_file), shown(&dir, &written.suite))?;
    if let Some(var) = &setup.api_key_env {
        writeln!(out, "The key is read from ${var} when gm runs; it is not written in any file.")?;
    }
    writeln!(out, "Next: gm eval")?;
    Ok(ExitCode::SUCCESS)
}

fn ports(ports: &[u16]) -> String {
    ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
}

/// A path relative to `dir` when it is inside it.
fn shown(dir: &std::path::Path, path: &std::path::Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

/// The provider the flags give, if any.
fn given(global: &Global) -> Option<Candidate> {
    let provider = global.provider?;
    let api_key_env = global.api_key_env.clone().or_else(|| {
        match provider {
            ProviderKind::OpenAi => Some("OPENAI_API_KEY"),
            ProviderKind::Azure => Some("AZURE_OPENAI_API_KEY"),
            _ => None,
        }
        .map(str::to_string)
    });
    let base_url = global.base_url.clone().or_else(|| {
        (provider == ProviderKind::Azure)
            .then(|| context::env_var("AZURE_OPENAI_ENDPOINT"))
            .flatten()
            .map(|e| gm_http::auth::azure_base_from_endpoint(&e))
    });
    Some(Candidate {
        provider,
        label: format!("{provider}{}", base_url.as_deref().map(|u| format!(" at {u}")).unwrap_or_default()),
        base_url,
        api_key_env,
        models: Vec::new(),
        usable: provider != ProviderKind::Github,
    })
}

/// Checks the choice with one catalog call; returns its chat models.
async fn verify(choice: &Candidate) -> Result<Vec<String>> {
    let credential = choice.api_key_env.as_ref().and_then(|var| {
        context::env_var(var)
            .filter(|v| !v.trim().is_empty())
            .map(|v| Credential::new(v.trim(), CredentialSource::NamedEnv(var.clone())))
    });
    let config = SessionConfig {
        provider: choice.provider,
        provider_reason: "gm init chose it".into(),
        base_url: choice.base_url.clone(),
        credential,
        api_key_env: choice.api_key_env.clone(),
        ..SessionConfig::default()
    };
    // In memory, quietly: the check opens no state file and the demo needs no notice here.
    let session = Session::new(config);
    let catalog = session.models().await.with_context(|| {
        format!(
            "{} did not answer its catalog; nothing was written (--no-verify writes the files anyway)",
            choice.label
        )
    })?;
    Ok(catalog.chat_models().iter().map(|m| m.id.clone()).collect())
}

/// Asks which provider to use.
fn ask_provider(found: &[Candidate]) -> Result<Candidate> {
    let usable: Vec<&Candidate> = found.iter().filter(|c| c.usable).collect();
    let mut items: Vec<String> = usable.iter().map(|c| c.label.clone()).collect();
    items.push("Another OpenAI-compatible server (you give its URL)".into());
    items.push("The demo provider (offline; answers computed by gm, not by a model)".into());
    let picked = dialoguer::Select::new()
        .with_prompt("Which provider should gm use?")
        .items(&items)
        .default(0)
        .interact()
        .context("could not read the answer")?;
    if let Some(c) = usable.get(picked) {
        return Ok((*c).clone());
    }
    if picked == usable.len() + 1 {
        return Ok(Candidate {
            provider: ProviderKind::Demo,
            base_url: None,
            api_key_env: None,
            label: "the demo provider".into(),
            models: Vec::new(),
            usable: true,
        });
    }
    let base_url: String = dialoguer::Input::new()
        .with_prompt("Base URL, up to and including /v1")
        .default("http://localhost:11434/v1".into())
        .interact_text()
        .context("could not read the answer")?;
    let var: String = dialoguer::Input::new()
        .with_prompt("The environment variable that holds its key (empty for none)")
        .allow_empty(true)
        .interact_text()
        .context("could not read the answer")?;
    Ok(Candidate {
        provider: ProviderKind::OpenAiCompatible,
        label: format!("the server at {base_url}"),
        base_url: Some(base_url.trim().to_string()),
        api_key_env: Some(var.trim().to_string()).filter(|v| !v.is_empty()),
        models: Vec::new(),
        usable: true,
    })
}

/// Asks which model the starter suite evaluates.
fn ask_model(choice: &Candidate, models: &[String]) -> Result<String> {
    if models.is_empty() {
        let mut input = dialoguer::Input::<String>::new().with_prompt("The model to evaluate");
        if choice.provider == ProviderKind::OpenAi {
            input = input.default("gpt-4o-mini".into());
        }
        return input.interact_text().context("could not read the answer");
    }
    let picked = dialoguer::Select::new()
        .with_prompt("Which model should the starter suite evaluate?")
        .items(models)
        .default(0)
        .max_length(12)
        .interact()
        .context("could not read the answer")?;
    Ok(models[picked].clone())
}

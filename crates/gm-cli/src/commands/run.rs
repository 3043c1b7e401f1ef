//! `gm run`: one prompt, a prompt file's messages, or an interactive session, streamed to standard output.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use gm_core::{ChatMessage, ChatRequest, Role};
use gm_eval::prompt::PromptFile;
use gm_http::Client;
use serde_json::{Map, Value};

use crate::cli::{Global, RunArgs};
use crate::context;
use crate::exit::usage;
use crate::progress::AfterASecond;

/// Parses `--var KEY=VALUE` as gh-models does: split on the first `=`, value not trimmed, empty entries
/// skipped, empty or duplicate keys refused.
pub fn parse_vars(vars: &[String]) -> Result<Map<String, Value>> {
    let mut map = Map::new();
    for v in vars {
        if v.is_empty() {
            continue;
        }
        let Some((k, val)) = v.split_once('=') else {
            return Err(usage(format!("--var `{v}` has no `=`; write KEY=VALUE")));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(usage(format!("--var `{v}` has an empty key; write KEY=VALUE")));
        }
        if map.insert(k.to_string(), Value::String(val.to_string())).is_some() {
            return Err(usage(format!("--var {k} is given twice; give each variable once")));
        }
    }
    Ok(map)
}

struct Params {
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    system: Option<String>,
}

fn build_request(model: &str, base: &[ChatMessage], history: &[ChatMessage], p: &Params) -> ChatRequest {
    let mut messages: Vec<ChatMessage> = Vec::new();
    if let Some(s) = &p.system {
        messages.push(ChatMessage::system(s.clone()));
    }
    messages.extend(base.iter().filter(|m| !(p.system.is_some() && m.role == Role::System)).cloned());
    messages.extend(history.iter().cloned());
    let mut req = ChatRequest::new(model, messages);
    req.max_tokens = p.max_tokens;
    req.temperature = p.temperature;
    req.top_p = p.top_p;
    req
}

pub async fn run(global: &Global, args: RunArgs) -> Result<ExitCode> {
    let file = match &args.file {
        Some(path) => {
            let f = PromptFile::load(path).map_err(gm_app::Error::from)?;
            for w in &f.warnings {
                crate::style::warning(format!("{}: {w}", path.display()));
            }
            Some(f)
        }
        None => None,
    };
    let mut prompt = args.prompt.join(" ");
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut piped = String::new();
        stdin.lock().read_to_string(&mut piped).context("reading standard input")?;
        let piped = piped.trim_end_matches('\n');
        if !piped.is_empty() {
            prompt = if prompt.is_empty() { piped.to_string() } else { format!("{prompt}\n{piped}") };
        }
    }
    let model = match (&args.model, file.as_ref().and_then(|f| f.model.clone())) {
        (Some(m), _) => m.clone(),
        (None, Some(m)) => m,
        (None, None) => return Err(usage("no model given; write `gm run MODEL [PROMPT]` (see `gm models list`)")),
    };
    let session = context::open(context::config(global, args.cache)?);
    // A model is named as the aliases say.
    let model = session.config().model_for(&model).to_string();
    gm_core::ModelId::parse(&model).map_err(gm_app::Error::from)?;
    let client = session.client()?;
    let mut params = Params {
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        system: args.system_prompt.clone(),
    };
    let mut base: Vec<ChatMessage> = Vec::new();
    let mut request_from_file = None;
    if let Some(f) = &file {
        let mut vars = parse_vars(&args.vars)?;
        if vars.contains_key("input") {
            return Err(usage("--var input is reserved: the prompt itself is {{input}}"));
        }
        vars.insert("input".into(), Value::String(prompt.clone()));
        let mut req = f.to_request(&model, &vars);
        // Flags override the file's parameters.
        params.max_tokens = params.max_tokens.or(req.max_tokens);
        params.temperature = params.temperature.or(req.temperature);
        params.top_p = params.top_p.or(req.top_p);
        // As in gh-models, the last system message of the file is the system prompt unless a flag gives one.
        if params.system.is_none() {
            params.system = req.messages.iter().rev().find(|m| m.role == Role::System).map(|m| m.text());
        }
        req.messages.retain(|m| m.role != Role::System);
        base = req.messages.clone();
        request_from_file = Some(req);
    } else if !args.vars.is_empty() {
        return Err(usage("--var needs --file: variables fill the placeholders of a prompt file"));
    }

    if let Some(file_req) = request_from_file {
        let mut req = build_request(&model, &base, &[], &params);
        req.response_format = file_req.response_format;
        send_and_print(&client, &req, !args.no_stream).await?;
        session.finish();
        return Ok(ExitCode::SUCCESS);
    }
    if !prompt.is_empty() {
        let req = build_request(&model, &[ChatMessage::user(prompt)], &[], &params);
        send_and_print(&client, &req, !args.no_stream).await?;
        session.finish();
        return Ok(ExitCode::SUCCESS);
    }
    if !std::io::stdin().is_terminal() {
        return Err(usage("no prompt given; pass one as an argument or on standard input"));
    }
    let history = session.config().data_dir.as_ref().map(|d| d.join(HISTORY_FILE));
    // A session at the terminal has no end to wait for: the demo's notice comes first.
    context::print_held_notice();
    let code = interactive(&client, &model, params, !args.no_stream, history).await;
    session.finish();
    code
}

async fn send_and_print(client: &Client, req: &ChatRequest, stream: bool) -> Result<String> {
    let mut out = std::io::stdout();
    let waiting = AfterASecond::spinner(format!("waiting for {}", req.model));
    if !stream {
        let r = client.chat(req).await.map_err(gm_app::Error::from)?;
        drop(waiting);
        if r.cached {
            eprintln!("(cached answer)");
        }
        writeln!(out, "{}", r.text())?;
        return Ok(r.text().to_string());
    }
    let mut s = client.chat_stream(req).await.map_err(gm_app::Error::from)?;
    let mut waiting = Some(waiting);
    if s.is_cached() {
        drop(waiting.take());
        eprintln!("(cached answer)");
    }
    let mut text = String::new();
    while let Some(chunk) = s.next_chunk().await {
        let chunk = chunk.map_err(gm_app::Error::from)?;
        let piece = chunk.text();
        if !piece.is_empty() {
            // The first words end the wait, and the spinner leaves the line to them.
            drop(waiting.take());
            out.write_all(piece.as_bytes())?;
            out.flush()?;
            text.push_str(piece);
        }
    }
    writeln!(out)?;
    Ok(text)
}

const REPL_HELP: &str = "Commands:\n  /bye, /exit, /quit   leave\n  /parameters          show the parameters\n  \
/reset, /clear       forget the conversation\n  /set max-tokens N | temperature T | top-p P\n  \
/system-prompt TEXT  set the system prompt\n  /help                this help";

/// The interactive session's history, in the data folder; written only once a prompt was entered.
pub const HISTORY_FILE: &str = "run_history.txt";

/// Where the interactive session reads its lines: rustyline (line editing, and history kept in the data folder)
/// when standard input and output are terminals, else plain lines.
enum Lines {
    Editor { editor: Box<rustyline::DefaultEditor>, history: Option<PathBuf> },
    Plain,
}

impl Lines {
    fn new(history: Option<PathBuf>) -> Lines {
        if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
            return Lines::Plain;
        }
        let Ok(mut editor) = rustyline::DefaultEditor::new() else { return Lines::Plain };
        if let Some(path) = history.as_deref().filter(|p| p.exists()) {
            if let Err(e) = editor.load_history(path) {
                crate::style::warning(format!("could not read the history {}: {e}", path.display()));
            }
        }
        Lines::Editor { editor: Box::new(editor), history }
    }

    /// The next line; `None` at the end of input (Ctrl-D). Ctrl-C empties the line being edited.
    fn next(&mut self) -> Result<Option<String>> {
        match self {
            Lines::Editor { editor, .. } => match tokio::task::block_in_place(|| editor.readline(">>> ")) {
                Ok(line) => Ok(Some(line)),
                Err(rustyline::error::ReadlineError::Interrupted) => Ok(Some(String::new())),
                Err(rustyline::error::ReadlineError::Eof) => Ok(None),
                Err(e) => Err(e).context("reading the terminal"),
            },
            Lines::Plain => {
                eprint!(">>> ");
                std::io::stderr().flush()?;
                let mut line = String::new();
                Ok((std::io::stdin().lock().read_line(&mut line)? > 0).then_some(line))
            }
        }
    }

    /// Keeps `line` in the history, and in the history file.
    fn remember(&mut self, line: &str) {
        let Lines::Editor { editor, history } = self else { return };
        if editor.add_history_entry(line).unwrap_or(false) {
            if let Some(path) = history.as_deref() {
                let saved = path.parent().map_or(Ok(()), std::fs::create_dir_all).map_err(Into::into);
                if let Err(e) = saved.and_then(|()| editor.append_history(path)) {
                    crate::style::warning(format!("could not write the history {}: {e}", path.display()));
                    *history = None;
                }
            }
        }
    }
}

async fn interactive(
    client: &Client,
    model: &str,
    mut params: Params,
    stream: bool,
    history: Option<PathBuf>,
) -> Result<ExitCode> {
    eprintln!("Chatting with {model} on {}. /help for commands, /bye to leave.", client.provider());
    let mut conversation: Vec<ChatMessage> = Vec::new();
    let mut lines = Lines::new(history);
    loop {
        let Some(line) = lines.next()? else { break };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        lines.remember(line);
        if let Some(cmd) = line.strip_prefix('/') {
            let (name, rest) = cmd.split_once(' ').unwrap_or((cmd, ""));
            match name {
                "bye" | "exit" | "quit" => break,
                "help" => eprintln!("{REPL_HELP}"),
                "reset" | "clear" => {
                    conversation.clear();
                    eprintln!("Conversation cleared.");
                }
                "parameters" => {
                    let show = |v: Option<String>| v.unwrap_or_else(|| "(the model's default)".into());
                    eprintln!(
                        "max-tokens: {}\ntemperature: {}\ntop-p: {}\nsystem-prompt: {}",
                        show(params.max_tokens.map(|n| n.to_string())),
                        show(params.temperature.map(|t| t.to_string())),
                        show(params.top_p.map(|p| p.to_string())),
                        show(params.system.clone()),
                    )
                }
                "system-prompt" => params.system = Some(rest.to_string()),
                "set" => {
                    let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                    let ok = match k {
                        "max-tokens" => v.trim().parse().map(|n| params.max_tokens = Some(n)).is_ok(),
                        "temperature" => v.trim().parse().map(|t| params.temperature = Some(t)).is_ok(),
                        "top-p" => v.trim().parse().map(|p| params.top_p = Some(p)).is_ok(),
                        _ => false,
                    };
                    if !ok {
                        eprintln!("usage: /set max-tokens N | temperature T | top-p P");
                    }
                }
                _ => eprintln!("unknown command /{name}; /help lists them"),
            }
            continue;
        }
        conversation.push(ChatMessage::user(line));
        let req = build_request(model, &[], &conversation, &params);
        match send_and_print(client, &req, stream).await {
            Ok(text) => conversation.push(ChatMessage::assistant(text)),
            Err(e) => {
                conversation.pop();
                crate::style::error(format!("{e:#}"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_follow_gh_models_rules() {
        let m = parse_vars(&["a=1".into(), "".into(), "b= x=y ".into()]).unwrap();
        assert_eq!(m["b"], " x=y ");
        assert!(parse_vars(&["a=1".into(), "a=2".into()]).is_err());
        assert!(parse_vars(&["=1".into()]).is_err());
        assert!(parse_vars(&["novalue".into()]).is_err());
    }
}

//! The command line: flags, subcommands and their help.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use gm_core::ProviderKind;

#[derive(Debug, Parser)]
#[command(
    name = "gm",
    version,
    about = "Evaluate, prototype and monitor language models over GitHub Models and OpenAI-compatible APIs",
    long_about = "Evaluate, prototype and monitor language models over GitHub Models and OpenAI-compatible APIs.\n\n\
GitHub Models was retired on 2026-07-30; the same commands run against Azure AI Foundry (--provider azure), \
OpenAI (--provider openai), any OpenAI-compatible server such as Ollama, vLLM or llama.cpp \
(--provider openai-compatible --base-url URL) and an offline demo provider (--provider demo, the default \
when no credentials are found).",
    after_help = "Examples:\n  gm models list\n  gm run openai/gpt-4.1-mini \"What is the capital of France?\"\n  \
gm --provider openai-compatible --base-url http://localhost:11434/v1 run llama3.2 \"hi\"\n  \
gm auth status\n  gm emulate --port 8080\n\n\
Exit codes: 0 success; 1 some evaluated test failed; 2 a usage, configuration or local file problem; \
3 the provider or the network failed, or a run stopped before its end; 130 interrupted by Ctrl-C."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The options every command that reaches a provider or the state shares, shown under their own heading. A
/// command shows (and accepts after its name) only those it uses: see [`APPLIES`].
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// The project file, instead of the gm.toml found from the current folder upward (see docs/config.md)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The provider: github, azure, openai, openai-compatible, demo [env: GM_PROVIDER] [default: from the
    /// credentials found, else demo]
    #[arg(long, global = true, value_parser = parse_provider)]
    pub provider: Option<ProviderKind>,
    /// Replace the provider's base URL (github: the host root; others: the URL up to and including /v1); without
    /// --provider it means an OpenAI-compatible server [env: GM_BASE_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub base_url: Option<String>,
    /// The environment variable that holds the API key, instead of the provider's usual one (an
    /// OpenAI-compatible server's key is read from GM_API_KEY; give the variable's name, never the key) [env:
    /// GM_API_KEY_ENV]
    #[arg(long, global = true, value_name = "NAME")]
    pub api_key_env: Option<String>,
    /// Attribute GitHub Models requests to an organization
    #[arg(long, global = true, value_name = "ORG")]
    pub org: Option<String>,
    /// More logging on standard error (-v info, -vv debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Where gm keeps its state file (cache, shared rate-limit windows, run history) [env: GM_DATA_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Never read or write the response cache
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Send every request and overwrite the cached answers
    #[arg(long, global = true, conflicts_with = "no_cache")]
    pub refresh: bool,
    /// Rate limits for every model: N/DURATION windows and caps, e.g. 15/1m,150/1d,concurrency=5 [default: the
    /// GitHub tier of each model on github, none elsewhere] [env: GM_LIMITS]
    #[arg(long, global = true, value_name = "SPEC", value_parser = parse_limits)]
    pub limits: Option<gm_limits::LimitSpec>,
    /// At most N requests in flight to the server at once, whatever the model (a llama.cpp server answers one
    /// at a time: give 1, and gm queues the rest and reports the wait apart from latency)
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub server_concurrency: Option<u16>,
    /// A TOML file of limits per provider and model (see docs/limits.md) [env: GM_LIMITS_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub limits_config: Option<PathBuf>,
    /// The GitHub plan whose quotas apply: free, pro, business, enterprise
    #[arg(long, global = true, value_name = "PLAN", value_parser = parse_plan)]
    pub plan: Option<gm_limits::presets::Plan>,
    /// Count rate-limit windows and keep cached answers in this Redis server (redis://HOST:PORT/) instead of the
    /// state file, so every machine using it shares one quota and one cache [env: GM_REDIS_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub redis: Option<String>,
    /// The longest one request may wait for quota; past it the request fails at once and says when it frees
    /// [default: 2m]
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub max_wait: Option<std::time::Duration>,
    /// How long a cached answer stays fresh (500ms, 2s, 1m, 1h, 7d) [default: 7d]
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub cache_ttl: Option<std::time::Duration>,
    /// The longest one request may take to bring its answer; a server that never answers fails it then
    /// [default: 5m]
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// The most one answer may bring, whole or streamed (bytes, or with KiB, MiB or GiB) [default: 32MiB]
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    pub max_response_bytes: Option<usize>,
}

/// The global options each command uses, by the id clap derives from the field of [`Global`]. Any other global
/// option is left out of the command's help, and refused on its command line (`gm score --redis URL`).
pub const APPLIES: &[(&str, &[&str])] = &[
    ("models", &PROVIDER),
    ("auth", &PROVIDER),
    ("run", &ALL),
    ("eval", &ALL),
    ("bench", &ALL),
    ("emulate", &[]),
    ("serve", &ALL),
    ("score", &[]),
    ("cache", &["config", "data_dir", "redis"]),
    ("runs", &["config", "data_dir"]),
    ("limits", &["config", "data_dir", "limits", "limits_config", "plan", "redis"]),
    ("config", &ALL),
    ("init", &["provider", "base_url", "api_key_env"]),
];

const PROVIDER: [&str; 5] = ["config", "provider", "base_url", "api_key_env", "org"];
const ALL: [&str; 17] = [
    "config",
    "provider",
    "base_url",
    "api_key_env",
    "org",
    "data_dir",
    "no_cache",
    "refresh",
    "limits",
    "server_concurrency",
    "limits_config",
    "plan",
    "redis",
    "max_wait",
    "cache_ttl",
    "timeout",
    "max_response_bytes",
];

/// The command line: [`Cli`] with each command's global options narrowed to those it uses (see [`APPLIES`]).
///
/// clap copies a global option into every subcommand unless the subcommand has an argument of the same id, so
/// each command gets a hidden, non-global stand-in for every global option it does not use.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    let globals: Vec<clap::Arg> =
        cmd.get_arguments().filter(|a| a.is_global_set() && a.get_id() != "verbose").cloned().collect();
    for (name, used) in APPLIES {
        cmd = cmd.mut_subcommand(*name, |mut sub| {
            for arg in globals.iter().filter(|a| !used.contains(&a.get_id().as_str())) {
                sub = sub.arg(arg.clone().global(false).hide(true).env(None::<&str>).default_value(None::<&str>));
            }
            sub
        });
    }
    cmd
}

/// Parses the command line, refusing a global option given for a command that does not use it (before or after
/// its name; from the environment it is only ignored).
pub fn parse() -> Cli {
    let mut cmd = command();
    let matches = cmd.clone().get_matches();
    if let Some((name, sub)) = matches.subcommand() {
        if let Some(arg) = unused_global(name, sub).or_else(|| unused_global(name, &matches)) {
            let long = arg.get_long().unwrap_or_default();
            // An option of the command's own that differs by a plural (`gm emulate --limit` against the global
            // `--limits`) is most likely what was meant.
            let own = cmd.find_subcommand(name).and_then(|c| {
                c.get_arguments()
                    .filter(|a| !a.is_hide_set())
                    .filter_map(|a| a.get_long())
                    .find(|l| l.strip_suffix('s') == Some(long) || long.strip_suffix('s') == Some(*l))
            });
            let next = match own {
                Some(own) => format!("did you mean `gm {name} --{own}`?"),
                None => format!("`gm {name} --help` lists what does"),
            };
            cmd.error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("--{long} does not apply to `gm {name}`; {next}"),
            )
            .exit();
        }
    }
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut cmd).exit())
}

/// The first global option that command `name` does not use but was given on the command line in `matches`.
fn unused_global(name: &str, matches: &ArgMatches) -> Option<clap::Arg> {
    let used = APPLIES.iter().find(|(n, _)| *n == name).map_or(&[][..], |(_, u)| *u);
    Cli::command()
        .get_arguments()
        .filter(|a| a.is_global_set() && a.get_id() != "verbose" && !used.contains(&a.get_id().as_str()))
        .find(|a| matches.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
        .cloned()
}

fn parse_limits(s: &str) -> Result<gm_limits::LimitSpec, String> {
    gm_app::settings::parse_limits(s)
}

/// A size in bytes: `4096`, `64KiB`, `32MiB`, `1GiB`.
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.chars().take_while(char::is_ascii_digit).count();
    let unit = match t[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1usize,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        other => return Err(format!("`{other}` is not a size unit; write e.g. 4096, 64KiB, 32MiB or 1GiB")),
    };
    let n: usize = t[..digits].parse().map_err(|_| format!("`{t}` is not a size; write e.g. 32MiB"))?;
    match n.checked_mul(unit) {
        Some(0) => Err("the size must be at least 1 byte".into()),
        Some(size) => Ok(size),
        None => Err(format!("`{t}` is too large")),
    }
}

fn parse_plan(s: &str) -> Result<gm_limits::presets::Plan, String> {
    s.parse().map_err(|e: gm_limits::LimitError| e.to_string())
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    gm_limits::parse_duration(s).map_err(|e| e.to_string())
}

fn parse_provider(s: &str) -> Result<ProviderKind, String> {
    s.parse().map_err(|e: gm_core::UnknownProvider| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List and inspect the provider's models
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Send a prompt to a model and stream the answer
    #[command(after_help = "Examples:\n  gm run openai/gpt-4.1 \"Explain TCP in one line\"\n  \
echo \"some text\" | gm run openai/gpt-4.1-mini \"Summarize:\"\n  \
gm run --file summarize.prompt.yml --var tone=formal < article.txt\n  gm run openai/gpt-4.1   # interactive session in a terminal")]
    Run(RunArgs),
    /// Show which provider and credential gm would use (secrets redacted)
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Serve a local GitHub-Models-compatible API on loopback (for tests, demos and offline development)
    Emulate(EmulateArgs),
    /// Serve a GitHub-Models- and OpenAI-compatible gateway: routes, fallbacks, quotas, keys, cache, metrics
    Serve(Box<crate::commands::serve::ServeArgs>),
    /// Run .prompt.yml evaluation suites (gh models eval semantics and JSON) on any provider
    #[command(
        after_help = "Examples:\n  gm eval summarize.prompt.yml\n  gm eval --json tests/*.prompt.yml > results.json\n  \
gm --provider openai eval --model gpt-4o-mini --concurrency 8 suite.prompt.yml\n  \
gm eval --record answers.jsonl      # then, in CI: gm eval --replay answers.jsonl\n\n\
Exit codes: 0 every test passed; 1 some test failed (the JSON is still printed); 2 a bad flag, or a file \
missing, malformed or not writable; 3 the run did not complete (a provider failure, a spent quota, a budget reached; \
`--resume` continues it); 130 interrupted by Ctrl-C (`--resume` continues it)."
    )]
    Eval(EvalArgs),
    /// Compare models across tasks: every model x task cell with latency, throughput, quality and cost
    #[command(
        after_help = "Examples:\n  gm bench --models openai/gpt-4.1,openai/gpt-4.1-mini --tasks qa.prompt.yml,summaries.prompt.yml\n  \
gm bench --models a,b --tasks suite.prompt.yml --limit-items 20 --json\n\n\
The best model is the one with the highest mean quality over the tasks; when the runner-up is not significantly \
different (paired bootstrap, 95%), the faster one wins, and the report says so."
    )]
    Bench(BenchArgs),
    /// Score predictions against references offline (BLEU, chrF, ROUGE, SQuAD EM/F1, …), JSON Lines in and out
    #[command(
        after_help = "Examples:\n  gm score --input pairs.jsonl --metrics bleu,rougeL,squad_f1 --output scored.jsonl\n  \
gm score --list\n  cat pairs.jsonl | gm score --metrics chrf --corpus corpus.json"
    )]
    Score(crate::commands::score::ScoreArgs),
    /// Inspect or empty the response cache
    #[command(subcommand)]
    Cache(CacheCommand),
    /// The history of evaluation runs: list them, show one, compare two
    #[command(subcommand)]
    Runs(RunsCommand),
    /// See where each rate-limit key stands, or forget its counts
    #[command(subcommand)]
    Limits(LimitsCommand),
    /// The settings in effect and where each came from (flag, environment, gm.toml, user file, default)
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Set up gm for this project: find a provider, check it with one catalog call, write gm.toml and a suite
    #[command(after_help = "Examples:\n  gm init                      # asks, on a terminal\n  \
gm init --yes                # takes the first provider found (a local server, else a key in the environment)\n  \
gm --provider openai-compatible --base-url http://localhost:11434/v1 init --model llama3.2 --yes\n\n\
Nothing secret is written: gm.toml names the environment variable that holds a key (api_key_env).")]
    Init(InitArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Every setting in effect, its value (secrets redacted) and where it came from
    Show {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The model the starter suite evaluates [default: the first chat model the provider lists]
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// The folder of suites, beside gm.toml
    #[arg(long, value_name = "DIR", default_value = "evals")]
    pub suites_dir: String,
    /// Ask nothing: take the flags, else the first provider found
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Overwrite gm.toml and the starter suite if they exist
    #[arg(long)]
    pub force: bool,
    /// Write the files without checking the provider with a catalog call
    #[arg(long)]
    pub no_verify: bool,
    /// The loopback ports probed for a local server
    #[arg(long, value_delimiter = ',', value_name = "PORTS", default_value = "11434,1234,8000,8080", hide = true)]
    pub probe_ports: Vec<u16>,
}

/// Where a run's answers come from or go: a recorded answers file.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Write every model and judge answer of the run to FILE (JSON Lines, sorted; commit it to replay in CI)
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    pub record: Option<PathBuf>,
    /// Answer every request from FILE and send nothing; a request FILE does not hold fails the run (exit 3)
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// With --replay: send the requests FILE does not hold, and add their answers to it
    #[arg(long, requires = "replay")]
    pub record_missing: bool,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Every run, newest first, each with its id
    List {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// One run's results (the cases recorded so far, for an unfinished run)
    Show {
        /// The run id (from `gm runs list`)
        id: i64,
        /// Print gh-models' JSON
        #[arg(long)]
        json: bool,
        /// Also write the run as one self-contained HTML page to FILE
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// For a bench run: compare with this earlier bench run in the HTML page
        #[arg(long, value_name = "ID")]
        baseline: Option<i64>,
    },
    /// Compare a baseline run A with a candidate run B: changed cases, and regressions only when significant
    Compare {
        /// The baseline run id
        a: i64,
        /// The candidate run id
        b: i64,
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LimitsCommand {
    /// Requests counted per provider, credential and model in the last minute, hour and day, against the limits
    Status {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Forget the counts and server blocks of one key (PROVIDER:MODEL or MODEL) or of every key
    Reset {
        /// PROVIDER:MODEL or MODEL; every key when absent
        key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Entries, bytes, hits, misses and hit rate over every run that used the state file
    Stats {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove every cached answer
    Clear,
    /// Write every fresh cached answer to FILE (JSON Lines, the format of --record), to move it to another
    /// machine
    Export {
        /// The file to write
        file: PathBuf,
    },
    /// Add the answers of FILE (a cache export or a --record file) to the cache
    Import {
        /// The file to read
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the chat models (all models with --json)
    List {
        /// Print a JSON array of catalog entries
        #[arg(long)]
        json: bool,
    },
    /// Show one model's details
    View {
        /// The model id, e.g. openai/gpt-4.1
        model: String,
        /// Print the catalog entry as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Show the provider, where its credential comes from, and the base URL
    Status {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The model id (defaults to the prompt file's model with --file)
    pub model: Option<String>,
    /// The prompt; standard input, when piped, is appended after a newline
    pub prompt: Vec<String>,
    /// A .prompt.yml file whose messages and parameters are used; {{input}} is the prompt
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// A template variable for the prompt file, KEY=VALUE (repeatable)
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// The system prompt
    #[arg(long, value_name = "TEXT")]
    pub system_prompt: Option<String>,
    /// The cap on generated tokens
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature
    #[arg(long, value_name = "T")]
    pub temperature: Option<f64>,
    /// Nucleus sampling
    #[arg(long, value_name = "P")]
    pub top_p: Option<f64>,
    /// Wait for the whole answer instead of streaming it
    #[arg(long)]
    pub no_stream: bool,
    /// Answer from the response cache when the same request was made before (and store this answer)
    #[arg(long)]
    pub cache: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The .prompt.yml (or .prompt.yaml) files to run [default: every one in the suites_dir of gm.toml]
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print gh-models' JSON (one object for one file, an array for several) instead of the human report
    #[arg(long)]
    pub json: bool,
    /// Evaluate this model instead of each file's `model`
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Test cases in flight at once [default: the concurrency cap of the model in --limits or --limits-config, else 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: Option<u16>,
    /// How LLM judge replies are read: strict (the final verdict) or compat (gh-models' ordered substring match)
    #[arg(long, value_name = "MODE", default_value = "strict", value_parser = ["strict", "compat"])]
    pub judge_mode: String,
    /// The judge model of the built-in evaluators (github/similarity, …) [default: openai/gpt-4o]
    #[arg(long, value_name = "MODEL")]
    pub judge_model: Option<String>,
    /// Also write a JUnit XML report to FILE (for CI test views)
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write a Markdown report to FILE (fit for a CI step summary, e.g. $GITHUB_STEP_SUMMARY)
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Also write one self-contained HTML page to FILE
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Also write one JSON line per test case to FILE, as each case finishes
    #[arg(long, value_name = "FILE")]
    pub jsonl: Option<PathBuf>,
    /// Finish the last interrupted run of each file (same content, model and provider) instead of starting anew
    #[arg(long)]
    pub resume: bool,
    /// A TOML price table of USD per million tokens, added to the built-in one (format: docs/eval.md)
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// Sample each test case N times and report pass@k and pass^k (each sample is cached apart)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    /// A budget for the whole run: stop cleanly (resumable, exit 3, the partial results printed) before the
    /// (N+1)th request, judges included
    #[arg(long, value_name = "N")]
    pub max_requests: Option<u64>,
    /// A budget for the whole run: stop cleanly (resumable, exit 3, the partial results printed) before a call
    /// would pass N tokens, input and output, judges included. Each call reserves its input and its maxTokens
    /// before it is sent. (The cap on each answer is the prompt file's modelParameters.maxTokens.)
    #[arg(long, value_name = "N")]
    pub token_budget: Option<u64>,
    /// Deprecated: the old name of --token-budget (a budget for the whole run, not a cap per answer)
    #[arg(long, value_name = "N", hide = true, conflicts_with = "token_budget")]
    pub max_tokens: Option<u64>,
    #[command(flatten)]
    pub recorded: RecordArgs,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The models, comma-separated
    #[arg(long, value_delimiter = ',', value_name = "MODELS", required_unless_present = "list_tasks")]
    pub models: Vec<String>,
    /// The tasks, comma-separated: built-in tasks (see --list-tasks), tasks of --tasks-dir, or .prompt.yml files
    #[arg(long, value_delimiter = ',', value_name = "TASKS", required_unless_present = "list_tasks")]
    pub tasks: Vec<String>,
    /// List the tasks (built-in and from --tasks-dir) and exit
    #[arg(long)]
    pub list_tasks: bool,
    /// A folder of user tasks, one subfolder each with task.yaml and data.jsonl (docs/adding-a-task.md)
    #[arg(long, value_name = "DIR")]
    pub tasks_dir: Option<PathBuf>,
    /// The scorers that grade every task, comma-separated: a task's own scorers by name (see --list-tasks), or
    /// metrics of `gm score --list` scored against each item's `expected`, with an optional pass threshold
    /// (`rougeL:0.4`; graded metrics pass at 0.5 otherwise). Default: each task's own scorers
    #[arg(long, value_delimiter = ',', value_name = "METRICS")]
    pub metrics: Vec<String>,
    /// Allow tasks that score by running generated code (code_generation); not a security boundary
    #[arg(long)]
    pub allow_code_exec: bool,
    /// Run only the first N items of each task
    #[arg(long, value_name = "N")]
    pub limit_items: Option<usize>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Test cases in flight at once in each model x task cell; the cells' cases are interleaved so that every
    /// model meets the same queue, within the rate limits and --server-concurrency
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub concurrency: usize,
    /// One test case in flight at a time over the whole bench: latencies with no queue, for latency benchmarks
    #[arg(long)]
    pub serial: bool,
    /// Also write the report as one self-contained HTML page with charts to FILE
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Finish the last interrupted run of the same models and tasks, without repeating a recorded test case
    #[arg(long)]
    pub resume: bool,
    /// Stop cleanly (resumable) once this many requests were sent, judges included
    #[arg(long, value_name = "N")]
    pub max_requests: Option<u64>,
    /// A TOML price table of USD per million tokens, added to the built-in one (format: docs/eval.md)
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// Compare with an earlier bench run in the HTML page (regressions only when significant)
    #[arg(long, value_name = "ID")]
    pub baseline: Option<i64>,
    #[command(flatten)]
    pub recorded: RecordArgs,
}

#[derive(Debug, Args)]
pub struct EmulateArgs {
    /// The port on 127.0.0.1 (0 picks a free one)
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Answer 410 on every path, as GitHub's hosts do since the retirement
    #[arg(long)]
    pub retired: bool,
    /// Do not require a bearer token on the GitHub inference paths
    #[arg(long)]
    pub no_auth: bool,
    /// Require exactly this key on every path, the OpenAI-style /v1 ones included, as a server started with a
    /// key does (clients send it with GM_API_KEY)
    #[arg(long, value_name = "KEY")]
    pub token: Option<String>,
    /// A fixed delay before every answer, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Enforce a GitHub Models rate-limit tier (free plan) per token and model: low, high, embeddings, custom,
    /// or catalog (each model its own catalog tier)
    #[arg(long, value_name = "TIER")]
    pub tier: Option<String>,
    /// Enforce these windows per token and model instead of a tier, e.g. 5/3s,100/1d,concurrency=2
    #[arg(long = "limit", value_name = "SPEC", value_parser = parse_limits, conflicts_with = "tier")]
    pub limit: Option<gm_limits::LimitSpec>,
    /// Run the tier's windows this many times faster (30 makes "15 a minute" into "15 per 2 s")
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    pub time_scale: f64,
    /// Answer at most N chat and embeddings requests at a time and queue the rest, as a llama.cpp server with
    /// N slots does
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub slots: Option<u16>,
    /// Report each whole answer's service time as llama.cpp does (`timings`), apart from any wait for a slot
    #[arg(long)]
    pub timings: bool,
}

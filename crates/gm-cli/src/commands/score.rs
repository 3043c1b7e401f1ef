//! `gm score`: score JSON Lines of predictions against references.
//!
//! The contract is `shared/reference/scoring/README.md`: JSON Lines in, one JSON line of
//! scores out per case in input order, with exactly the requested metric names as keys. A run
//! that fails writes nothing: output goes to a temporary file that replaces the target only
//! once every line has been scored (for standard output, it is copied there after success).

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use gm_eval::report::AtomicFile;
use gm_eval::score_file::{score_jsonl, ScoreFileOptions, ScoreSummary};
use gm_eval::{Metric, MetricConfig};

use crate::progress::AfterASecond;
use crate::style::note;

/// The metrics scored when `--metrics` is not given: those of the golden vectors.
const DEFAULT_METRICS: &str = "bleu,chrf,squad_em,squad_f1,rouge1,rouge2,rougeL,rougeLsum";

/// Arguments of `gm score`.
#[derive(Debug, Clone, Args)]
pub struct ScoreArgs {
    /// JSON Lines to score, one case a line: {"id", "prediction", "references": [..]} or
    /// {"id", "prediction", "reference": ".."}; `-` or absent reads standard input
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,

    /// Comma-separated metric names; `--list` shows them all
    #[arg(long, value_name = "NAMES", default_value = DEFAULT_METRICS)]
    pub metrics: String,

    /// Stem words with NLTK's Porter stemmer for ROUGE (the scores keep their plain names)
    #[arg(long)]
    pub rouge_stemmer: bool,

    /// Also write corpus BLEU and chrF with the BLEU signature, as one JSON object, to FILE
    #[arg(long, value_name = "FILE")]
    pub corpus: Option<PathBuf>,

    /// Write the scores to FILE instead of standard output
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// List the metrics with their versions and descriptions, then exit
    #[arg(long)]
    pub list: bool,

    /// Scoring threads [default: the available cores, at most 4]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Runs `gm score`.
///
/// # Errors
/// An unknown metric name (the message lists the valid ones), unreadable input, a malformed
/// line (the message names it) or a failed write. Nothing is written when it fails.
pub fn run(args: &ScoreArgs) -> Result<ExitCode> {
    if args.list {
        print_list(&mut io::stdout().lock())?;
        return Ok(ExitCode::SUCCESS);
    }
    let metrics = Metric::parse_list(&args.metrics).map_err(gm_app::Error::from)?;
    let threads =
        args.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get().min(4)).unwrap_or(1));
    let options = ScoreFileOptions {
        metrics,
        config: MetricConfig { rouge_stemmer: args.rouge_stemmer, ..MetricConfig::default() },
        corpus: args.corpus.is_some(),
        threads: threads.max(1),
    };

    let input_name = match &args.input {
        Some(path) if path.as_os_str() != "-" => path.display().to_string(),
        _ => "standard input".to_owned(),
    };
    let mut progress = None;
    let input: Box<dyn BufRead> = match &args.input {
        Some(path) if path.as_os_str() != "-" => {
            let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let bar = progress.insert(AfterASecond::bytes(size, format!("scoring {}", path.display())));
            Box::new(BufReader::with_capacity(1 << 16, bar.bar().wrap_read(file)))
        }
        _ => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                note("reading JSON Lines from the terminal; end with Ctrl-D, or pass --input FILE");
            }
            Box::new(stdin.lock())
        }
    };

    // Score into a temporary file beside the target (or in the temporary directory when the
    // scores go to standard output or a device), so that a failed run leaves nothing behind.
    let scores_to = Destination::of(args.output.as_deref());
    let (scores_tmp, file) = create_beside(&scores_to.scratch_path("gm-score.jsonl"))?;
    let mut writer = BufWriter::with_capacity(1 << 16, file);
    let summary: ScoreSummary = score_jsonl(input, &mut writer, &options)
        .map_err(gm_app::Error::from)
        .with_context(|| format!("cannot score {input_name}; nothing was written"))?;
    let file = writer
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("cannot write {}", scores_tmp.path().display()))?;
    file.sync_all().with_context(|| format!("cannot write {}", scores_tmp.path().display()))?;
    drop(file);

    let corpus = match (&args.corpus, &summary.corpus) {
        (Some(path), Some(corpus)) => {
            let to = Destination::of(Some(path));
            let (tmp, mut file) = create_beside(&to.scratch_path("gm-score-corpus.json"))?;
            let mut text = serde_json::to_vec_pretty(corpus)?;
            text.push(b'\n');
            file.write_all(&text)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", tmp.path().display()))?;
            Some((tmp, to))
        }
        _ => None,
    };

    drop(progress);
    scores_to.deliver(scores_tmp)?;
    if let Some((tmp, to)) = corpus {
        to.deliver(tmp)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the metric table of `gm score --list`.
fn print_list(out: &mut impl Write) -> io::Result<()> {
    let infos: Vec<_> = Metric::list().collect();
    let name_width = infos.iter().map(|i| i.name.len()).max().unwrap_or(0).max(4);
    let version_width = infos.iter().map(|i| i.version.len()).max().unwrap_or(0).max(7);
    writeln!(out, "{:name_width$}  {:version_width$}  DESCRIPTION", "NAME", "VERSION")?;
    for info in infos {
        writeln!(out, "{:name_width$}  {:version_width$}  {}", info.name, info.version, info.description)?;
    }
    // Scores over a whole file or over samples are not per-line metrics, but belong to the same registry.
    writeln!(out)?;
    writeln!(out, "Corpus scores: BLEU and chrF over the whole file with --corpus FILE (sacreBLEU's corpus_score).")?;
    writeln!(
        out,
        "pass@k and pass^k: over repeated samples, by `gm eval --repeat N` and by code tasks in `gm bench` \
         (gm_eval::metrics::pass_at_k, pass_hat_k)."
    )?;
    out.flush()
}

/// Where a finished file goes.
#[derive(Debug, PartialEq)]
enum Destination {
    /// Standard output (no path, or `-`).
    Stdout,
    /// A regular file, new or replaced by renaming the finished file over it; a symbolic link
    /// is resolved first so that the link itself stays.
    Replace(PathBuf),
    /// Something that is not a regular file (a device such as `/dev/null`, a pipe): the
    /// finished file is copied into it, since renaming would replace it.
    CopyInto(PathBuf),
}

impl Destination {
    fn of(path: Option<&Path>) -> Destination {
        match path {
            None => Destination::Stdout,
            Some(p) if p.as_os_str() == "-" => Destination::Stdout,
            Some(p) => match fs::metadata(p) {
                Ok(meta) if !meta.is_file() => Destination::CopyInto(p.to_path_buf()),
                Ok(_) => Destination::Replace(fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())),
                Err(_) => Destination::Replace(p.to_path_buf()),
            },
        }
    }

    /// The path beside which the temporary file is created.
    fn scratch_path(&self, name: &str) -> PathBuf {
        match self {
            Destination::Replace(path) => path.clone(),
            Destination::Stdout | Destination::CopyInto(_) => std::env::temp_dir().join(name),
        }
    }

    /// Moves or copies the finished temporary file to this destination.
    fn deliver(&self, tmp: AtomicFile) -> Result<()> {
        match self {
            Destination::Replace(path) => {
                let from = tmp.path().display().to_string();
                tmp.persist(path).with_context(|| format!("cannot move {from} to {}", path.display()))
            }
            Destination::Stdout => {
                let mut stdout = io::stdout().lock();
                tmp.copy_to(&mut stdout).context("cannot write to standard output")
            }
            Destination::CopyInto(path) => {
                let mut target = File::options()
                    .write(true)
                    .truncate(true)
                    .open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                tmp.copy_to(&mut target).with_context(|| format!("cannot write {}", path.display()))
            }
        }
    }
}

/// A new file beside `target` that becomes it only once complete (see [`AtomicFile`]).
fn create_beside(target: &Path) -> Result<(AtomicFile, File)> {
    AtomicFile::create_beside(target).with_context(|| {
        let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        format!("cannot create a temporary file in {}", dir.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path, input: &str, metrics: &str) -> ScoreArgs {
        let input_path = dir.join("in.jsonl");
        fs::write(&input_path, input).unwrap();
        ScoreArgs {
            input: Some(input_path),
            metrics: metrics.to_owned(),
            rouge_stemmer: false,
            corpus: Some(dir.join("corpus.json")),
            output: Some(dir.join("out.jsonl")),
            list: false,
            threads: Some(1),
        }
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gm-score-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_scores_and_corpus_atomically() {
        let dir = scratch_dir("ok");
        let a = args(&dir, "{\"id\": 1, \"prediction\": \"a b c\", \"reference\": \"a b c\"}\n", "squad_em,bleu");
        run(&a).unwrap();
        let out = fs::read_to_string(dir.join("out.jsonl")).unwrap();
        assert_eq!(out, "{\"id\":1,\"scores\":{\"squad_em\":1.0,\"bleu\":1.0}}\n");
        let corpus: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("corpus.json")).unwrap()).unwrap();
        assert_eq!(corpus["bleu_signature"], "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0");
        let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).collect();
        assert_eq!(leftovers.len(), 3, "{leftovers:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_run_writes_nothing() {
        let dir = scratch_dir("fail");
        fs::write(dir.join("out.jsonl"), "previous\n").unwrap();
        let a = args(&dir, "{\"id\": 1, \"prediction\": \"a\", \"references\": [\"a\"]}\nnot json\n", "bleu");
        let err = run(&a).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("line 2"), "{message}");
        assert_eq!(fs::read_to_string(dir.join("out.jsonl")).unwrap(), "previous\n");
        assert!(!dir.join("corpus.json").exists());
        let names: Vec<_> = fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_metrics_are_reported_with_the_valid_names() {
        let dir = scratch_dir("unknown");
        let a = args(&dir, "", "bleu,blue");
        let message = run(&a).unwrap_err().to_string();
        assert!(message.contains("unknown metric `blue`") && message.contains("rougeLsum"), "{message}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn devices_are_written_into_not_replaced() {
        #[cfg(unix)]
        assert_eq!(Destination::of(Some(Path::new("/dev/null"))), Destination::CopyInto(PathBuf::from("/dev/null")));
        assert_eq!(Destination::of(Some(Path::new("-"))), Destination::Stdout);
        assert_eq!(Destination::of(None), Destination::Stdout);
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_is_kept_and_its_target_replaced() {
        let dir = scratch_dir("link");
        fs::write(dir.join("real.jsonl"), "old\n").unwrap();
        std::os::unix::fs::symlink(dir.join("real.jsonl"), dir.join("link.jsonl")).unwrap();
        let mut a = args(&dir, "{\"id\": 1, \"prediction\": \"a\", \"references\": [\"a\"]}\n", "equals");
        a.output = Some(dir.join("link.jsonl"));
        a.corpus = None;
        run(&a).unwrap();
        assert!(fs::symlink_metadata(dir.join("link.jsonl")).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(dir.join("real.jsonl")).unwrap(), "{\"id\":1,\"scores\":{\"equals\":1.0}}\n");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn list_shows_every_metric() {
        let mut out = Vec::new();
        print_list(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for info in Metric::list() {
            assert!(text.contains(info.name) && text.contains(info.version));
        }
    }
}

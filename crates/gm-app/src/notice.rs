//! Notices: what a session has to tell its user besides its results, as data. The CLI prints them on standard
//! error; a server logs them or shows them on a page.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// Something worth telling the user, that does not stop the use case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Notice {
    /// The demo provider answers: offline, computed by gm, not by a model.
    DemoProvider {
        /// Why the demo provider was chosen.
        reason: String,
    },
    /// The state file was not a readable SQLite database, or SQLite's integrity check found it damaged; it was
    /// moved aside and a new one started. The cached answers and the rate-limit counts are lost; the run
    /// history is copied into the new file when it can be read.
    StateFileMovedAside {
        /// The state file.
        path: PathBuf,
        /// Where the unreadable file is now.
        moved_to: PathBuf,
        /// The run history kept from it, or `None` when it could not be read (it stays in `moved_to`).
        kept: Option<HistoryKept>,
    },
    /// A prompt file has something accepted but worth a warning (an object `jsonSchema`, …).
    PromptFile {
        /// The file, as given.
        file: String,
        /// What was accepted.
        message: String,
    },
    /// A task enables running generated code in its own configuration (`allowCodeExec`).
    TaskRunsCode {
        /// The task.
        task: String,
    },
    /// With Redis, the windows are counted there; the status shown is what the state file counted.
    WindowsInRedis,
}

/// What a damaged state file's run history gave the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HistoryKept {
    /// Runs copied, each with all its recorded cases.
    pub runs: usize,
    /// Test cases copied, across those runs.
    pub cases: usize,
    /// Runs that could not be read whole, and are lost.
    pub lost: usize,
}

impl Notice {
    /// Whether this is a warning (something may be wrong) rather than a note (for information).
    pub fn is_warning(&self) -> bool {
        matches!(self, Notice::StateFileMovedAside { .. } | Notice::PromptFile { .. })
    }
}

/// A notice may take more than one line; a front end that prefixes the first (`note: `) indents the others.
impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::DemoProvider { reason } => {
                write!(f, "the demo provider answers: offline, computed by gm, not by a model\n{reason}")
            }
            Notice::StateFileMovedAside { path, moved_to, kept } => {
                write!(
                    f,
                    "{} was unreadable or damaged; it was moved to {} and a new one started. ",
                    path.display(),
                    moved_to.display()
                )?;
                match kept {
                    Some(k) => {
                        write!(f, "Kept: the run history ({} runs, {} test cases). Lost: ", k.runs, k.cases)?;
                        if k.lost > 0 {
                            write!(f, "{} runs that could not be read, ", k.lost)?;
                        }
                        f.write_str(
                            "the cached answers and the rate-limit counts of the last day, so the next requests are \
                             planned without them",
                        )
                    }
                    None => f.write_str(
                        "Lost: the cached answers, the rate-limit counts of the last day and the run history, which \
                         could not be read (the old file keeps whatever is left of it)",
                    ),
                }
            }
            Notice::PromptFile { file, message } => write!(f, "{file}: {message}"),
            Notice::TaskRunsCode { task } => write!(
                f,
                "task `{task}` enables code execution in its task.yaml (allowCodeExec); the generated code runs in a \
                 sandbox that is not a security boundary"
            ),
            Notice::WindowsInRedis => f.write_str(
                "with --redis the windows are counted in Redis; this shows what the state file counted on this \
                 machine without it",
            ),
        }
    }
}

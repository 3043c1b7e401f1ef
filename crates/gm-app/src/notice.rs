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
    /// The state file was not a readable SQLite database; it was moved aside and a new one started.
    StateFileMovedAside {
        /// The state file.
        path: PathBuf,
        /// Where the unreadable file is now.
        moved_to: PathBuf,
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
            Notice::StateFileMovedAside { path, moved_to } => write!(
                f,
                "{} was unreadable; it was moved to {} and a new one started",
                path.display(),
                moved_to.display()
            ),
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

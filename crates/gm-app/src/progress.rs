//! Following a run as it goes, and stopping it.
//!
//! A run reports to an [`Observer`]: when it starts (with what an earlier run already recorded), as each test
//! case finishes (after the run store has it), and, for suites, as each suite finishes. The events are plain
//! data (serializable), so a terminal draws a progress bar from them and a server streams them to a browser.
//! A [`Cancel`] handed to the run stops it from outside; the run then returns [`Outcome::Interrupted`] with what
//! it recorded, and resuming continues from there.

use std::sync::Arc;
use std::time::Duration;

use gm_eval::evaluators::BoxError;
use gm_eval::run::{CaseFigures, EvaluationSummary, TestResult};
use serde::Serialize;

/// Which use case a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// A `.prompt.yml` suite.
    Eval,
    /// A models × tasks bench.
    Bench,
}

impl RunKind {
    /// The kind as the run store names it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Eval => "eval",
            RunKind::Bench => "bench",
        }
    }
}

/// Whether a run continues an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resume {
    /// A new run; resuming was not asked for.
    New,
    /// Resuming was asked for and an unfinished run of the same definition continues.
    Resumed,
    /// Resuming was asked for, but no unfinished run of the same definition exists: a new run.
    NothingToResume,
}

/// A run has started (or resumed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStarted {
    /// The run's id in the run store.
    pub run_id: i64,
    /// Suite or bench.
    pub kind: RunKind,
    /// For suites, the suite's position among the files of the call (from 0); 0 for a bench.
    pub suite: usize,
    /// The suite's name, or the bench's (`2 models x 3 tasks`).
    pub name: String,
    /// The suite's file as given, or the bench's tasks.
    pub file: String,
    /// Test cases in the whole run.
    pub total: usize,
    /// Test cases an earlier, interrupted run already recorded (not run again).
    pub done: usize,
    /// Whether it continues an earlier run.
    pub resume: Resume,
    /// For a bench, each cell's share of `total` and `done` (models outer, tasks inner, as
    /// [`CaseFinished::suite`] numbers them); empty for a suite.
    pub cells: Vec<CellStarted>,
}

/// A bench cell as its run starts: its model and task, its test cases, and those already recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellStarted {
    /// The model.
    pub model: String,
    /// The task.
    pub task: String,
    /// Test cases in the cell.
    pub total: usize,
    /// Test cases an earlier, interrupted run already recorded.
    pub done: usize,
}

/// The model and task of a bench cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CellRef<'a> {
    /// The model.
    pub model: &'a str,
    /// The task.
    pub task: &'a str,
}

/// A test case finished and was recorded.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CaseFinished<'a> {
    /// The run's id in the run store.
    pub run_id: i64,
    /// For suites, the suite's position among the files of the call; for a bench, the cell's (models outer,
    /// tasks inner).
    pub suite: usize,
    /// For a bench, the cell's model and task.
    pub cell: Option<CellRef<'a>>,
    /// The test case, from 1 within its suite or cell.
    pub index: usize,
    /// Its result.
    pub result: &'a TestResult,
    /// What it took.
    pub figures: &'a CaseFigures,
}

/// A suite finished; its summary is in the run store.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SuiteFinished<'a> {
    /// The run's id in the run store.
    pub run_id: i64,
    /// The suite's position among the files of the call.
    pub suite: usize,
    /// The suite's file, as given.
    pub file: &'a str,
    /// Its summary.
    pub summary: &'a EvaluationSummary,
}

/// Follows runs as they go. Every method has a default that does nothing; `()` observes nothing.
///
/// Calls come from the tasks that run the cases, concurrently: implementations synchronise what they share.
pub trait Observer: Send + Sync {
    /// A run started or resumed.
    fn run_started(&self, run: &RunStarted) {
        let _ = run;
    }

    /// A test case finished and the run store recorded it. An error stops the run, as a failed record does.
    fn case_finished(&self, case: &CaseFinished<'_>) -> Result<(), BoxError> {
        let _ = case;
        Ok(())
    }

    /// A suite finished and the run store marked it so.
    fn suite_finished(&self, suite: &SuiteFinished<'_>) {
        let _ = suite;
    }
}

impl Observer for () {}

/// How long a gentle stop ([`Cancel::stop`]) waits for the cases in flight by default: a front end's first
/// Ctrl-C.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// Stops a run from outside, gently or at once.
///
/// [`Cancel::stop`] is the gentle stop (a first Ctrl-C): the run starts no new test case, the cases in flight
/// finish and are recorded (they were paid for), and the run returns [`Outcome::Interrupted`]; if they have not
/// finished within the grace given, the stop becomes a [`Cancel::cancel`]. [`Cancel::cancel`] (a second Ctrl-C)
/// stops at once: cases in flight are dropped and asked again on resume. Either way every case recorded stays,
/// and the run resumes from there. Clones share one state, so a signal handler, a timer or a request handler
/// can each hold one.
#[derive(Debug, Clone)]
pub struct Cancel {
    state: Arc<tokio::sync::watch::Sender<Stopping>>,
    /// What the runners read to start no new case.
    drain: gm_eval::run::StopSignal,
}

/// Where a [`Cancel`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopping {
    Running,
    /// Asked to stop gently: the cases in flight have until `deadline`.
    Draining {
        deadline: tokio::time::Instant,
    },
    Cancelled,
}

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}

impl Cancel {
    /// A token that nothing has stopped yet.
    pub fn new() -> Self {
        Self { state: Arc::new(tokio::sync::watch::Sender::new(Stopping::Running)), drain: Default::default() }
    }

    /// Stops every run holding this token gently: no new test case starts, those in flight have `grace` to
    /// finish and be recorded, and then the runs return [`Outcome::Interrupted`]. A second call changes nothing
    /// (call [`Cancel::cancel`] to stop at once).
    pub fn stop(&self, grace: Duration) {
        self.drain.stop();
        self.state.send_if_modified(|s| match s {
            Stopping::Running => {
                let now = tokio::time::Instant::now();
                *s = Stopping::Draining { deadline: now.checked_add(grace).unwrap_or(now) };
                true
            }
            _ => false,
        });
    }

    /// Stops every run holding this token (or a clone), now.
    pub fn cancel(&self) {
        self.drain.stop();
        self.state.send_replace(Stopping::Cancelled);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        *self.state.borrow() == Stopping::Cancelled
    }

    /// Whether [`Cancel::stop`] or [`Cancel::cancel`] was called.
    pub fn is_stopping(&self) -> bool {
        *self.state.borrow() != Stopping::Running
    }

    /// The flag a runner reads to start no new case ([`gm_eval::run::RunOptions::stop`]).
    pub(crate) fn drain_signal(&self) -> gm_eval::run::StopSignal {
        self.drain.clone()
    }

    /// Completes once the token is cancelled, or once a gentle stop's grace has run out.
    pub async fn cancelled(&self) {
        let mut rx = self.state.subscribe();
        loop {
            let state = *rx.borrow_and_update();
            match state {
                Stopping::Cancelled => return,
                Stopping::Running => {
                    // The sender lives as long as `self`, so a change always comes or the wait lasts forever.
                    let _ = rx.changed().await;
                }
                Stopping::Draining { deadline } => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => return,
                        _ = rx.changed() => {}
                    }
                }
            }
        }
    }
}

/// How a run ended, when it did not fail.
#[derive(Debug)]
#[must_use]
pub enum Outcome<T> {
    /// It ran to its end.
    Finished(T),
    /// It was cancelled; what it recorded is kept and resuming continues it.
    Interrupted(Interrupted),
}

impl<T> Outcome<T> {
    /// The result, if the run finished.
    pub fn finished(self) -> Option<T> {
        match self {
            Outcome::Finished(t) => Some(t),
            Outcome::Interrupted(_) => None,
        }
    }
}

/// A cancelled run: where it stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interrupted {
    /// The run's id in the run store.
    pub run_id: i64,
    /// The suite's file as given, or the bench's tasks.
    pub file: String,
    /// Test cases recorded so far.
    pub recorded: usize,
    /// Test cases in the whole run.
    pub total: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancel_reaches_every_clone_and_later_waiters() {
        let cancel = Cancel::new();
        let held = cancel.clone();
        assert!(!held.is_cancelled());
        let waiter = tokio::spawn({
            let c = cancel.clone();
            async move { c.cancelled().await }
        });
        cancel.cancel();
        waiter.await.unwrap();
        assert!(held.is_cancelled());
        // Cancelled before anyone waits: the wait ends at once.
        held.cancelled().await;
    }
}

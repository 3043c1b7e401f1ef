//! Progress on standard error while a command works: bars for runs, a spinner for a wait. Drawn only when
//! standard error is a terminal, so logs and pipes get none of it. Log lines go through [`LogWriter`], which
//! prints them above the bars drawn at the time instead of into them.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle, WeakProgressBar};

/// Whether progress is drawn: standard error is a terminal.
pub fn drawn() -> bool {
    std::io::stderr().is_terminal()
}

/// The bars made so far that may be on the terminal, newest last; a bar dropped is gone from it.
static BARS: Mutex<Vec<WeakProgressBar>> = Mutex::new(Vec::new());

/// Keeps `bar` where [`above_bars`] finds it.
fn shown(bar: &ProgressBar) {
    let mut bars = BARS.lock().unwrap_or_else(PoisonError::into_inner);
    bars.retain(|b| b.upgrade().is_some());
    bars.push(bar.downgrade());
}

/// Runs `print` with the newest bar still alive (and the other bars of its [`MultiProgress`]) lifted off the
/// terminal, then draws them again below what it printed.
fn above_bars(print: impl FnOnce()) {
    let newest = BARS.lock().unwrap_or_else(PoisonError::into_inner).iter().rev().find_map(WeakProgressBar::upgrade);
    match newest {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

/// Where log lines go: standard error, above any progress bar drawn there.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

impl Write for LogWriter {
    /// The formatter writes each event whole, in one call: the bars are lifted once a line.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut written = Ok(());
        above_bars(|| written = std::io::stderr().lock().write_all(buf));
        written.map(|()| buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A bar of `total` steps, `done` of them already done, drawn with `template` (indicatif's syntax).
pub fn bar(total: usize, done: usize, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_position(done as u64);
    shown(&bar);
    bar
}

/// Progress for something that is usually quick: drawn only once it has taken a second, and cleared when
/// dropped. Needs a tokio runtime.
pub struct AfterASecond {
    bar: ProgressBar,
    done: Arc<Mutex<bool>>,
}

impl AfterASecond {
    /// A spinner saying `message`.
    pub fn spinner(message: impl Into<String>) -> AfterASecond {
        let bar = ProgressBar::hidden();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            bar.set_style(style);
        }
        bar.set_message(message.into());
        AfterASecond::show(bar, true)
    }

    /// A bar of `total` bytes, `message` before it.
    pub fn bytes(total: u64, message: impl Into<String>) -> AfterASecond {
        let bar = ProgressBar::hidden();
        bar.set_length(total);
        if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}, {elapsed} (eta {eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.into());
        AfterASecond::show(bar, false)
    }

    fn show(bar: ProgressBar, tick: bool) -> AfterASecond {
        shown(&bar);
        let done = Arc::new(Mutex::new(false));
        if let (true, Ok(runtime)) = (drawn(), tokio::runtime::Handle::try_current()) {
            let (shown, finished) = (bar.clone(), done.clone());
            runtime.spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                // Held while the bar appears, so a bar cleared meanwhile stays cleared.
                let finished = finished.lock().unwrap_or_else(PoisonError::into_inner);
                if !*finished {
                    shown.set_draw_target(ProgressDrawTarget::stderr());
                    if tick {
                        shown.enable_steady_tick(Duration::from_millis(100));
                    }
                }
            });
        }
        AfterASecond { bar, done }
    }

    /// The bar, to advance or to wrap a reader with.
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }
}

impl Drop for AfterASecond {
    fn drop(&mut self) {
        *self.done.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.bar.finish_and_clear();
    }
}

/// At most this many cells get a bar of their own, so that the bars fit an ordinary terminal; a larger bench
/// shows only its whole.
const MOST_CELL_BARS: usize = 20;

/// Bars for a bench: one for the whole run, then one per model × task cell.
pub struct BenchBars {
    multi: MultiProgress,
    total: ProgressBar,
    cells: Vec<ProgressBar>,
}

impl BenchBars {
    /// Bars for the cells of `run`, when progress is drawn.
    pub fn new(run: &gm_app::RunStarted) -> Option<BenchBars> {
        if !drawn() || run.total == 0 {
            return None;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total =
            multi.add(bar(run.total, run.done, "{msg} [{bar:30}] {pos}/{len} test cases, {elapsed} (eta {eta})"));
        total.set_message(run.name.clone());
        let shown = if run.cells.len() <= MOST_CELL_BARS { &run.cells[..] } else { &[] };
        let names: Vec<String> = shown.iter().map(|c| format!("{} on {}", c.model, c.task)).collect();
        let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        let template = format!("  {{prefix:<{width}}} [{{bar:20}}] {{pos}}/{{len}}");
        let cells = shown
            .iter()
            .zip(names)
            .map(|(c, name)| {
                let b = multi.add(bar(c.total, c.done, &template));
                b.set_prefix(name);
                b
            })
            .collect();
        Some(BenchBars { multi, total, cells })
    }

    /// One more case of cell `cell` recorded.
    pub fn inc(&self, cell: usize) {
        if let Some(b) = self.cells.get(cell) {
            b.inc(1);
        }
        self.total.inc(1);
    }

    /// Removes the bars from the terminal.
    pub fn clear(&self) {
        for b in &self.cells {
            b.finish_and_clear();
        }
        self.total.finish_and_clear();
        let _ = self.multi.clear();
    }
}

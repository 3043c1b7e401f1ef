//! Retrying a step that failed only because another process held a lock for a moment.
//!
//! SQLite answers "database is locked" at once, without waiting in its busy handler, when waiting could
//! deadlock: two processes opening a new state file at the same moment both read it, and both want to turn
//! it into WAL mode or create its tables. One of them must let go and try again; this is that loop.

use std::time::{Duration, Instant};

/// Runs `attempt` until it succeeds, fails with an error `is_busy` does not accept, or `patience` has passed
/// since the first try (then the last error is returned). Waits between tries grow from 1 ms to 50 ms.
pub fn retry_while_busy<T, E>(
    patience: Duration,
    is_busy: impl Fn(&E) -> bool,
    mut attempt: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match attempt() {
            Err(e) if is_busy(&e) && started.elapsed() + pause < patience => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_step_is_tried_again_and_another_error_is_not() {
        let mut tries = 0;
        let out: Result<u32, &str> = retry_while_busy(
            Duration::from_secs(5),
            |e| *e == "busy",
            || {
                tries += 1;
                if tries < 3 {
                    Err("busy")
                } else {
                    Ok(tries)
                }
            },
        );
        assert_eq!(out, Ok(3));

        let mut tries = 0;
        let out: Result<u32, &str> = retry_while_busy(
            Duration::from_secs(5),
            |e| *e == "busy",
            || {
                tries += 1;
                Err("broken")
            },
        );
        assert_eq!((out, tries), (Err("broken"), 1));

        let out: Result<u32, &str> = retry_while_busy(Duration::ZERO, |e| *e == "busy", || Err("busy"));
        assert_eq!(out, Err("busy"));
    }
}

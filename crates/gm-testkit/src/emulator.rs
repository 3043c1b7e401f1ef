//! The gm emulator for tests: started with faults queued, on the test's runtime or on one of its own.

use std::ops::Deref;

pub use gm_emulator::{Emulator, EmulatorConfig, Fault, FaultKind};

/// Starts an emulator on the current tokio runtime with `faults` queued, in order.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use gm_testkit::emulator::{self, EmulatorConfig, Fault};
/// let emu = emulator::start(EmulatorConfig::default(), [Fault::status(500, 1)]).await;
/// assert!(emu.url().starts_with("http://127.0.0.1:"));
/// # });
/// ```
pub async fn start(config: EmulatorConfig, faults: impl IntoIterator<Item = Fault>) -> Emulator {
    let emu = Emulator::start(config).await.expect("the emulator binds a loopback port");
    for fault in faults {
        emu.inject(fault);
    }
    emu
}

/// A 429 for the next `times` requests, asking the client to wait `retry_after` seconds.
pub fn rate_limited(retry_after: u64, times: usize) -> Fault {
    Fault { kind: FaultKind::Status { status: 429, retry_after: Some(retry_after) }, times, path: None }
}

/// Exactly this answer (status, content type, body, no other header) for the next `times` requests.
pub fn raw(status: u16, content_type: &str, body: &str, times: usize) -> Fault {
    Fault { kind: FaultKind::Raw { status, content_type: content_type.into(), body: body.into() }, times, path: None }
}

/// A 200 whose body is an error envelope (`{"error": {"message": …}}`), for the next `times` requests.
pub fn error_as_200(message: &str, times: usize) -> Fault {
    let body = serde_json::json!({"error": {"message": message}}).to_string();
    raw(200, "application/json", &body, times)
}

/// A 429 with no `retry-after` or rate-limit header and nothing in the body about waiting.
pub fn untold_429(times: usize) -> Fault {
    raw(429, "application/json", r#"{"error":{"code":"too_many_requests","message":"Too many requests"}}"#, times)
}

/// `kind` for the next `times` requests.
pub fn fault(kind: FaultKind, times: usize) -> Fault {
    Fault { kind, times, path: None }
}

/// An emulator serving from a runtime of its own, for tests that are not async (e.g. a test that runs the
/// `gm` binary as a process). It dereferences to the [`Emulator`]; dropping it stops both.
///
/// ```
/// use gm_testkit::emulator::{Background, EmulatorConfig};
/// let emu = Background::start(EmulatorConfig::default());
/// assert_eq!(emu.stats().total, 0);
/// ```
#[derive(Debug)]
pub struct Background {
    // Declared first, so the server stops before its runtime goes.
    emulator: Emulator,
    _runtime: tokio::runtime::Runtime,
}

impl Background {
    /// Starts an emulator on a runtime of its own.
    pub fn start(config: EmulatorConfig) -> Self {
        Self::with_faults(config, [])
    }

    /// Starts an emulator on a runtime of its own with `faults` queued, in order.
    pub fn with_faults(config: EmulatorConfig, faults: impl IntoIterator<Item = Fault>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime for the emulator");
        let emulator = runtime.block_on(start(config, faults));
        Self { emulator, _runtime: runtime }
    }
}

impl Deref for Background {
    type Target = Emulator;

    fn deref(&self) -> &Emulator {
        &self.emulator
    }
}

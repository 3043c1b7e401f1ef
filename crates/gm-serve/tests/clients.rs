//! The official `openai` Python client against the gateway in front of the emulator, on the OpenAI paths
//! and on GitHub Models' paths. `.ci/run` makes the virtual environment (`target/py-serve`); where it is
//! missing, the skip policy of gm-testkit applies.

mod common;

use std::path::PathBuf;
use std::process::Command;

use gm_core::ProviderKind;
use gm_emulator::{Emulator, EmulatorConfig};
use gm_serve::{Routing, ServeConfig, UpstreamConfig};

/// The virtual environment's python with the openai client and prometheus_client's parser; where it is
/// missing, the skip policy has its say (a failure in CI).
fn python() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/py-serve/bin/python");
    let ok = p.exists()
        && Command::new(&p).args(["-c", "import openai, prometheus_client"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        gm_testkit::skip::missing_service(
            "target/py-serve with the openai and prometheus_client packages",
            "python3 -m venv target/py-serve && target/py-serve/bin/pip install openai prometheus_client",
        );
    }
    ok.then_some(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_client_works_through_the_gateway_on_both_paths() {
    let Some(py) = python() else { return };
    let emu = Emulator::start(EmulatorConfig { require_auth: false, ..Default::default() }).await.unwrap();
    let mut up = UpstreamConfig::new("emulator", ProviderKind::OpenAiCompatible);
    up.base_url = Some(emu.openai_url());
    let gw = common::start(ServeConfig::new(Routing::single(up)), common::in_memory()).await;
    for mode in ["openai", "github"] {
        let url = gw.url();
        let py = py.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(py)
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_client.py"))
                .arg(url)
                .arg(mode)
                .output()
        })
        .await
        .unwrap()
        .unwrap();
        assert!(
            out.status.success(),
            "{mode}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(emu.stats().by_status.get(&429), None);
}

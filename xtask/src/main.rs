//! Development tasks for the gm workspace: `cargo xtask ci|fmt|lint|test|doc|bench|tidy|deny`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::Value;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci      everything CI runs: fmt --check, clippy -D warnings, tests, docs, bench --no-run, tidy, deny (when installed)
  fmt     format the workspace
  lint    clippy on every target and feature, warnings denied
  test    the test suite (all features)
  doc     rustdoc with warnings denied
  bench   run the criterion benchmarks (pass a bench name to run one)
  tidy    check the crate layering of STYLE.md from `cargo metadata`
  deny    cargo-deny licences, bans and sources (skipped with a note when cargo-deny is missing)";

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("fmt") => cargo(&["fmt", "--all"]),
        Some("lint") => lint(),
        Some("test") => test(),
        Some("doc") => doc(),
        Some("bench") => {
            let mut a = vec!["bench", "-p", "gm-benches"];
            if let Some(name) = args.get(1) {
                a.extend(["--bench", name]);
            }
            cargo(&a)
        }
        Some("tidy") => tidy(),
        Some("deny") => deny(),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn cargo(args: &[&str]) -> Result<()> {
    cargo_env(args, &[])
}

fn cargo_env(args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let started = Instant::now();
    eprintln!("xtask: cargo {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().with_context(|| format!("could not run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    eprintln!("xtask: cargo {} took {:.1}s", args[0], started.elapsed().as_secs_f64());
    Ok(())
}

fn lint() -> Result<()> {
    cargo(&["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"])
}

fn test() -> Result<()> {
    cargo(&["test", "--workspace", "--all-features"])
}

fn doc() -> Result<()> {
    cargo_env(&["doc", "--workspace", "--no-deps", "--all-features"], &[("RUSTDOCFLAGS", "-D warnings")])
}

fn ci() -> Result<()> {
    cargo(&["fmt", "--all", "--", "--check"]).context("formatting differs; run `cargo xtask fmt`")?;
    tidy()?;
    lint()?;
    test()?;
    doc()?;
    cargo(&["bench", "--workspace", "--no-run"])?;
    deny()?;
    eprintln!("xtask: ci passed");
    Ok(())
}

fn deny() -> Result<()> {
    let have = Command::new("cargo").args(["deny", "--version"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !have {
        eprintln!(
            "xtask: cargo-deny is not installed; skipping `deny` (install with `cargo install cargo-deny --locked`)"
        );
        return Ok(());
    }
    // Advisories need the RustSec database from the network; licences, bans and sources are checked offline.
    cargo(&["deny", "check", "licenses", "bans", "sources"])
}

/// One row of the layering table: what a crate's normal dependencies may and may not include.
struct Rule {
    krate: &'static str,
    /// When set, the only workspace-external crates allowed (besides the allowed gm crates).
    only_external: Option<&'static [&'static str]>,
    /// gm crates this crate may use.
    gm_allowed: &'static [&'static str],
    /// External crates this crate must not use.
    never: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        krate: "gm-core",
        only_external: Some(&["serde", "serde_json", "thiserror"]),
        gm_allowed: &[],
        never: &["tokio", "hyper"],
    },
    Rule { krate: "gm-limits", only_external: None, gm_allowed: &["gm-core"], never: &["hyper", "hyper-util"] },
    Rule { krate: "gm-cache", only_external: None, gm_allowed: &["gm-core"], never: &["hyper", "hyper-util"] },
    Rule { krate: "gm-http", only_external: None, gm_allowed: &["gm-core", "gm-limits", "gm-cache"], never: &[] },
    Rule {
        krate: "gm-eval",
        only_external: None,
        gm_allowed: &["gm-core", "gm-http", "gm-limits", "gm-cache"],
        never: &["hyper", "hyper-util", "hyper-rustls"],
    },
    Rule { krate: "gm-emulator", only_external: None, gm_allowed: &["gm-core"], never: &[] },
    Rule { krate: "xtask", only_external: None, gm_allowed: &[], never: &[] },
];

fn tidy() -> Result<()> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("could not run cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: Value = serde_json::from_slice(&out.stdout)?;
    let problems = check_layering(&meta);
    if problems.is_empty() {
        eprintln!("xtask: tidy: the layering of STYLE.md holds");
        Ok(())
    } else {
        for p in &problems {
            eprintln!("xtask: tidy: {p}");
        }
        bail!("{} layering problem(s); see docs/ARCHITECTURE.md (Invariants)", problems.len())
    }
}

fn check_layering(meta: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let empty = Vec::new();
    for pkg in meta["packages"].as_array().unwrap_or(&empty) {
        let name = pkg["name"].as_str().unwrap_or("");
        let lints_inherited = pkg["manifest_path"]
            .as_str()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .is_some_and(|m| m.contains("[lints]") && m.contains("workspace = true"));
        if !lints_inherited {
            problems.push(format!("{name} does not inherit the workspace lints ([lints] workspace = true)"));
        }
        let Some(rule) = RULES.iter().find(|r| r.krate == name) else { continue };
        for dep in pkg["dependencies"].as_array().unwrap_or(&empty) {
            // Dev- and build-dependencies may use test servers and tools; the layering is about what ships.
            if !dep["kind"].is_null() {
                continue;
            }
            let d = dep["name"].as_str().unwrap_or("");
            if d.starts_with("gm-") {
                if !rule.gm_allowed.contains(&d) {
                    problems.push(format!("{name} depends on {d}, which the layering forbids"));
                }
                if name == "gm-eval" && d == "gm-http" {
                    let features: Vec<&str> =
                        dep["features"].as_array().unwrap_or(&empty).iter().filter_map(Value::as_str).collect();
                    let default = dep["uses_default_features"].as_bool().unwrap_or(true);
                    if default || features.contains(&"hyper") {
                        problems.push(
                            "gm-eval uses gm-http with its `hyper` feature; gm-eval knows nothing about hyper".into(),
                        );
                    }
                }
                continue;
            }
            if rule.never.contains(&d) {
                problems.push(format!("{name} depends on {d}, which the layering forbids"));
            }
            if let Some(only) = rule.only_external {
                if !only.contains(&d) {
                    problems.push(format!("{name} may use only {} but depends on {d}", only.join(", ")));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_forbidden_edge_is_reported() {
        let meta = json!({"packages": [
            {"name": "gm-core", "manifest_path": "/nonexistent", "dependencies": [
                {"name": "tokio", "kind": null}, {"name": "proptest", "kind": "dev"}]},
            {"name": "gm-eval", "manifest_path": "/nonexistent", "dependencies": [
                {"name": "gm-http", "kind": null, "features": [], "uses_default_features": true}]}
        ]});
        let p = check_layering(&meta);
        assert!(p.iter().any(|s| s.contains("gm-core depends on tokio")), "{p:?}");
        assert!(p.iter().any(|s| s.contains("gm-eval uses gm-http with its `hyper` feature")), "{p:?}");
        assert!(!p.iter().any(|s| s.contains("proptest")));
    }
}

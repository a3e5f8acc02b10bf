//! `cargo xtask ci`: the project's test command. Each step is printed as a header and
//! timed; the first failing step stops the run with a non-zero exit.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{s3server, tidy, util};

/// What a step runs.
enum Action {
    /// An external command.
    Command(Command),
    /// `cargo xtask tidy`, in-process.
    Tidy,
    /// Install the S3 test server if missing, in-process.
    S3Server,
}

/// One named step.
struct Step {
    /// The header line.
    name: String,
    /// What to run.
    action: Action,
}

/// A `cargo` step.
fn cargo_step(args: &[&str]) -> Result<Step> {
    Ok(Step {
        name: format!("cargo {}", args.join(" ")),
        action: Action::Command(util::cargo(args)?),
    })
}

/// The workspace's library crates (members with a `lib` target), except the e2e test
/// crate, whose library exists only for its tests.
fn library_crates() -> Result<Vec<String>> {
    let meta = util::cargo_metadata(&["--no-deps", "--locked"])?;
    let members: Vec<&str> = meta
        .get("workspace_members")
        .and_then(Value::as_array)
        .context("cargo metadata: no workspace_members")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut libs = Vec::new();
    for package in meta
        .get("packages")
        .and_then(Value::as_array)
        .context("cargo metadata: no packages")?
    {
        let id = package.get("id").and_then(Value::as_str).unwrap_or_default();
        let name = package.get("name").and_then(Value::as_str).unwrap_or_default();
        let is_lib = package
            .get("targets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|t| {
                t.get("kind")
                    .and_then(Value::as_array)
                    .is_some_and(|kinds| kinds.iter().any(|k| k == "lib"))
            });
        if members.contains(&id) && is_lib && name != "connectly-e2e" {
            libs.push(name.to_owned());
        }
    }
    Ok(libs)
}

/// The steps, in order.
fn steps() -> Result<Vec<Step>> {
    let mut doc = util::cargo(&["doc", "--workspace", "--no-deps", "--locked"])?;
    doc.env("RUSTDOCFLAGS", "-D warnings");
    let mut steps = vec![
        cargo_step(&["fmt", "--all", "--", "--check"])?,
        cargo_step(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ])?,
        Step {
            name: "cargo xtask tidy".to_owned(),
            action: Action::Tidy,
        },
        Step {
            name: "RUSTDOCFLAGS=\"-D warnings\" cargo doc --workspace --no-deps --locked".to_owned(),
            action: Action::Command(doc),
        },
        cargo_step(&["build", "--workspace", "--locked"])?,
        Step {
            name: "S3 test server (moto >= 5.2.5 in target/s3-venv)".to_owned(),
            action: Action::S3Server,
        },
        cargo_step(&["test", "--workspace", "--locked"])?,
    ];
    // Each library on its own, with only its own features: catches a crate that compiles
    // only thanks to features another member enables.
    for lib in library_crates()? {
        steps.push(cargo_step(&["check", "--locked", "-p", &lib])?);
    }
    Ok(steps)
}

/// `12.3s` or `2m05s`.
fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// Runs every step, stopping at the first failure.
pub(crate) fn run() -> Result<()> {
    let started = Instant::now();
    let steps = steps()?;
    let total = steps.len();
    for (i, step) in steps.into_iter().enumerate() {
        println!("\n==> [{}/{total}] {}", i + 1, step.name);
        let step_started = Instant::now();
        let result = match step.action {
            Action::Command(mut cmd) => util::run(&mut cmd),
            Action::Tidy => tidy::run(),
            Action::S3Server => s3server::ensure(),
        };
        let took = fmt_duration(step_started.elapsed());
        if let Err(e) = result {
            println!("<== [{}/{total}] FAILED after {took}: {}", i + 1, step.name);
            bail!(
                "ci failed at step {}/{total} ({}) after {}: {e:#}",
                i + 1,
                step.name,
                fmt_duration(started.elapsed())
            );
        }
        println!("<== [{}/{total}] ok in {took}", i + 1);
    }
    println!("\nci: all {total} steps passed in {}", fmt_duration(started.elapsed()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(fmt_duration(Duration::from_secs(125)), "2m05s");
    }
}

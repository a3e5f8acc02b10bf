//! Helpers shared by the commands: the workspace root, running `cargo` and other
//! programs, and reading `cargo metadata`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The workspace root: the parent of this crate's folder.
pub(crate) fn workspace_root() -> Result<PathBuf> {
    // `cargo run` sets CARGO_MANIFEST_DIR at run time; the compile-time value is the fallback.
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let root = manifest_dir
        .parent()
        .with_context(|| format!("xtask folder {} has no parent", manifest_dir.display()))?;
    Ok(root.to_path_buf())
}

/// A `cargo` command (the cargo that runs us, if known) in the workspace root.
pub(crate) fn cargo(args: &[&str]) -> Result<Command> {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(workspace_root()?);
    Ok(cmd)
}

/// `cmd` as a shell-like line, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut line: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    line.push(cmd.get_program().to_string_lossy().into_owned());
    line.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    line.join(" ")
}

/// Runs `cmd` with inherited stdio and fails unless it exits successfully.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{}`", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(cmd));
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout; stderr is inherited.
pub(crate) fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start `{}`", describe(cmd)))?;
    if !out.status.success() {
        bail!("`{}` failed ({})", describe(cmd), out.status);
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{}` printed non-UTF-8 output", describe(cmd)))
}

/// `cargo metadata --format-version 1`, plus `extra` arguments, parsed.
pub(crate) fn cargo_metadata(extra: &[&str]) -> Result<Value> {
    let mut args = vec!["metadata", "--format-version", "1"];
    args.extend_from_slice(extra);
    let text = output(&mut cargo(&args)?)?;
    serde_json::from_str(&text).context("cannot parse the output of `cargo metadata`")
}

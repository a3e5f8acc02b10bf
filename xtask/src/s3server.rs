//! The S3-compatible server the S3 sink's tests run against: moto >= 5.2.5 (5.2.1 answers
//! CompleteMultipartUpload with the wrong XML root element, which the Rust SDK rejects),
//! installed from PyPI into `target/s3-venv`, where the tests look for it
//! (`connectly_sink_s3::testing`). Each test binary starts and stops its own server on
//! 127.0.0.1; this only installs it.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util;

/// The moto release installed.
const MOTO: &str = "5.2.5";
/// The variable that points the tests at another `moto_server`.
const SERVER_ENV: &str = "CONNECTLY_S3_TEST_SERVER";

/// Makes sure a usable `moto_server` exists; installs it into `target/s3-venv` if not.
pub(crate) fn ensure() -> Result<()> {
    if let Some(path) = std::env::var_os(SERVER_ENV).filter(|p| !p.is_empty()) {
        println!("using {SERVER_ENV}={}", path.to_string_lossy());
        return Ok(());
    }
    let venv = util::workspace_root()?.join("target/s3-venv");
    let python = venv.join("bin/python");
    let check = "import moto, sys; v = tuple(int(p) for p in moto.__version__.split('.')[:3]); \
                 sys.exit(0 if v >= (5, 2, 5) else 1)";
    let installed = python.is_file()
        && venv.join("bin/moto_server").is_file()
        && Command::new(&python)
            .args(["-c", check])
            .status()
            .is_ok_and(|s| s.success());
    if installed {
        println!("moto >= 5.2.5 already in {}", venv.display());
        return Ok(());
    }
    println!("installing moto[server]=={MOTO} into {}", venv.display());
    let python3 = which("python3").context("python3 is needed to install the S3 test server (moto)")?;
    util::run(Command::new(python3).args(["-m", "venv", "--clear"]).arg(&venv))
        .context("creating the virtualenv (on Debian: apt-get install python3-venv)")?;
    util::run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("moto[server]=={MOTO}")),
    )
    .context("installing moto from PyPI")?;
    if !venv.join("bin/moto_server").is_file() {
        bail!(
            "moto installed but {} is missing",
            venv.join("bin/moto_server").display()
        );
    }
    Ok(())
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

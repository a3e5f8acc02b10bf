//! Support for the end-to-end tests: runs the real `connectly-sync` binary against a
//! [`FakeVendor`] on 127.0.0.1 and reads the results back with independent readers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use connectly_vendor_fake::{Config, FakeVendor, Fault, campaign_csv_for, custom_csv};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::datetime;

/// The business of every scenario.
pub const BUSINESS: &str = "2d503e81-e270-4467-a05f-21a900efbbc1";
/// Its API key.
pub const KEY: &str = "e2e-secret-key-0123456789";

/// The `connectly-sync` binary of this build (`cargo test --workspace` builds it).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/connectly-sync
    let profile_dir = exe.parent().and_then(Path::parent).expect("target profile folder");
    let bin = profile_dir.join(format!("connectly-sync{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p connectly-sync` (cargo xtask ci does) before these tests",
        bin.display()
    );
    bin
}

/// A scratch folder, the vendor stand-in, and helpers to run the binary in it.
pub struct World {
    /// The vendor stand-in.
    pub vendor: FakeVendor,
    /// Scratch folder; the binary runs with it as working directory.
    pub dir: tempfile::TempDir,
}

impl World {
    /// A vendor with one business and no reports.
    pub fn new() -> World {
        let vendor = FakeVendor::spawn(Config::default()).expect("vendor stand-in starts");
        vendor.add_business(BUSINESS, KEY).unwrap();
        World {
            vendor,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A path inside the scratch folder.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs `connectly-sync ARGS` with the key, business and base URL in the environment.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_env(args, &[("CONNECTLY_API_KEY", KEY)])
    }

    /// Runs `connectly-sync ARGS` with `env` added to business id and base URL.
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        cmd.env_remove("CONNECTLY_API_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run(cmd.output().expect("connectly-sync runs"))
    }

    /// `connectly-sync ARGS`, not started yet: key, business id and base URL in the
    /// environment, the scratch folder as working directory. For tests that start the
    /// binary in the background (to kill it, or to run two at once).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env("CONNECTLY_API_KEY", KEY)
            .env("CONNECTLY_BUSINESS_ID", BUSINESS)
            .env("CONNECTLY_BASE_URL", self.vendor.base_url());
        cmd
    }

    /// `sync --json` into the given sinks; asserts the exit code.
    pub fn sync(&self, sinks: &[&str], expect_code: i32) -> serde_json::Value {
        let mut args = vec!["sync", "--json"];
        for s in sinks {
            args.extend(["--sink", s]);
        }
        let run = self.run(&args);
        assert_eq!(run.code(), expect_code, "unexpected exit code\n{run:?}");
        run.json()
    }

    /// Adds a campaign report and publishes a run of `rows` generated rows; returns its CSV.
    pub fn campaign(&self, report_id: &str, run_id: &str, report_type: &str, rows: usize, seed: u64) -> Vec<u8> {
        self.vendor
            .add_report(BUSINESS, report_id, &format!("Report {report_id}"), report_type)
            .unwrap();
        self.publish_campaign(report_id, run_id, rows, seed, datetime!(2025-04-30 12:00:00 UTC))
    }

    /// Publishes a new campaign run of an existing report; returns its CSV.
    pub fn publish_campaign(
        &self,
        report_id: &str,
        run_id: &str,
        rows: usize,
        seed: u64,
        created_at: OffsetDateTime,
    ) -> Vec<u8> {
        let csv = campaign_csv_for(BUSINESS, rows, seed);
        self.vendor
            .publish_run(report_id, run_id, csv.clone(), created_at)
            .unwrap();
        csv
    }
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

/// A finished run of the binary.
pub struct Run(pub Output);

impl Run {
    /// The exit code.
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    /// Standard output.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    /// Standard error.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Standard output parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self:?}"))
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }
}

/// Runs the `sqlite3` CLI (an independent reader) and returns its output lines.
pub fn sqlite3(db: &Path, sql: &str) -> Vec<String> {
    let out = Command::new("sqlite3")
        .arg("-readonly")
        .arg(db)
        .arg(sql)
        .output()
        .expect("the sqlite3 CLI is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Runs the `sqlite3` CLI read-write, as any reader after a crash may have to: a hot
/// rollback journal (or a WAL) left by a killed writer is recovered on open, which a
/// `-readonly` connection cannot do.
pub fn sqlite3_rw(db: &Path, sql: &str) -> Vec<String> {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("the sqlite3 CLI is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// One number from the `sqlite3` CLI.
pub fn sqlite3_count(db: &Path, sql: &str) -> u64 {
    let lines = sqlite3(db, sql);
    lines
        .first()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("{sql}: {lines:?}"))
}

/// Records of a CSV (header excluded), parsed with the csv crate.
pub fn csv_records(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

/// SHA-256 of bytes, lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every regular file under `root`, relative, sorted.
pub fn files_under(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

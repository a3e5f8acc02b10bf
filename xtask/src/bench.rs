//! `cargo xtask bench`: measures the release binary against the tools a user would
//! reach for instead, on the same generated files, in one run, and prints ratios.
//!
//! For each size (100k and 1M rows by default) it generates a campaign CSV with the
//! vendor stand-in's deterministic generator (`target/bench/campaign-<rows>.csv`, kept
//! between runs), serves it from `connectly-vendor-fake --campaign-csv` on 127.0.0.1,
//! starts the S3-compatible test server (moto, from `target/s3-venv`), and runs each
//! case `--runs` times, interleaved, every time from an empty state folder and empty
//! sinks. Wall time is measured here; peak RSS by `/usr/bin/time -f %M`. Results go to
//! `target/bench/results.md` and `results.json`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::demo::{KillOnDrop, VendorFake};
use crate::{s3server, util};

/// Help for `cargo xtask bench --help`.
pub(crate) const HELP: &str = "\
usage: cargo xtask bench [--runs N] [--rows N[,N...]] [--quick]

Builds connectly-sync and connectly-vendor-fake in release, generates realistic campaign
CSVs (15 documented columns; blanks, JSON cells, quotes, commas, non-ASCII text; a fixed
seed) under target/bench/, serves each from the vendor stand-in on 127.0.0.1, starts the
S3-compatible test server (moto, installed into target/s3-venv if missing), and measures,
each N times from an empty state folder and empty sinks:

  sync sqlite      connectly-sync sync into SQLite alone (download, validate, load)
  sync file        ... into the file sink alone
  sync s3          ... into the S3 sink alone
  sync all three   ... into SQLite, files and S3 at once
  sqlite sink      the SQLite sink alone on the local file (example sqlite_load_measure)
  sqlite3 .import  the sqlite3 CLI importing the file into an equivalent typed table
                   with the same unique key (sendout_id, customer_external_id)
  S3 sink          the S3 sink alone uploading the local file (example s3_deliver_measure)
  aws s3 cp        the AWS CLI uploading the file to the same S3 server
  naive script     bench/naive_sync.py: download into memory, csv, row-by-row inserts,
                   a file copy, a boto3 upload

and reports the median wall time, rows/s, MB/s, peak RSS (/usr/bin/time) and the
ratios the performance targets are stated in. Writes target/bench/results.md and
target/bench/results.json. Missing sqlite3 or aws CLIs skip their case.

options:
  --runs N          runs per case (default 3)
  --rows N[,N...]   sizes in data rows (default 100000,1000000)
  --quick           100000 rows only (same as --rows 100000)";

/// The bucket the S3 cases write into.
const BUCKET: &str = "bench";
/// Credentials for the local test server (it accepts any).
const AWS_ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "bench"),
    ("AWS_SECRET_ACCESS_KEY", "bench"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];
/// The seed of the generated files.
const SEED: u64 = 6;

/// Options of `cargo xtask bench`.
#[derive(Debug, PartialEq)]
pub(crate) struct BenchArgs {
    /// Runs per case.
    pub(crate) runs: usize,
    /// Sizes, in data rows.
    pub(crate) rows: Vec<u64>,
}

impl Default for BenchArgs {
    fn default() -> Self {
        BenchArgs {
            runs: 3,
            rows: vec![100_000, 1_000_000],
        }
    }
}

/// Parses the arguments after `bench`; `None` for `--help`.
pub(crate) fn parse_args(args: &[String]) -> Result<Option<BenchArgs>> {
    let mut out = BenchArgs::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = || -> Result<String> {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .with_context(|| format!("{name} needs a value"))
        };
        match name {
            "-h" | "--help" => return Ok(None),
            "--quick" => out.rows = vec![100_000],
            "--runs" => {
                out.runs = value()?.parse().context("--runs: not a number")?;
                if out.runs == 0 {
                    bail!("--runs must be at least 1");
                }
            }
            "--rows" => {
                out.rows = value()?
                    .split(',')
                    .map(|n| n.trim().replace('_', "").parse::<u64>())
                    .collect::<Result<_, _>>()
                    .context("--rows: expected numbers separated by commas")?;
                if out.rows.is_empty() || out.rows.contains(&0) {
                    bail!("--rows: sizes must be at least 1");
                }
            }
            other => bail!("bench: unexpected argument {other:?}"),
        }
    }
    Ok(Some(out))
}

/// One measured execution.
#[derive(Clone, Copy, Debug)]
struct Sample {
    secs: f64,
    rss_kib: u64,
}

/// What is measured, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Case {
    SyncSqlite,
    SyncFile,
    SyncS3,
    SyncAll,
    SinkSqlite,
    Import,
    SinkS3,
    AwsCp,
    Naive,
}

impl Case {
    const ALL: [Case; 9] = [
        Case::SyncSqlite,
        Case::SyncFile,
        Case::SyncS3,
        Case::SyncAll,
        Case::SinkSqlite,
        Case::Import,
        Case::SinkS3,
        Case::AwsCp,
        Case::Naive,
    ];

    fn label(self) -> &'static str {
        match self {
            Case::SyncSqlite => "connectly-sync → SQLite",
            Case::SyncFile => "connectly-sync → file",
            Case::SyncS3 => "connectly-sync → S3",
            Case::SyncAll => "connectly-sync → all three",
            Case::SinkSqlite => "SQLite sink alone (local file)",
            Case::Import => "sqlite3 .import (typed, UNIQUE)",
            Case::SinkS3 => "S3 sink alone (local file)",
            Case::AwsCp => "aws s3 cp",
            Case::Naive => "naive script (bench/naive_sync.py)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Case::SyncSqlite => "sync_sqlite",
            Case::SyncFile => "sync_file",
            Case::SyncS3 => "sync_s3",
            Case::SyncAll => "sync_all",
            Case::SinkSqlite => "sink_sqlite",
            Case::Import => "sqlite3_import",
            Case::SinkS3 => "sink_s3",
            Case::AwsCp => "aws_s3_cp",
            Case::Naive => "naive_script",
        }
    }
}

/// The typed table `sqlite3 .import` loads into: the campaign columns with SQLite
/// types and the unique key of `campaign_latest`.
const IMPORT_SCHEMA: &str = "CREATE TABLE report (
    customer_external_id TEXT NOT NULL, business_id TEXT NOT NULL, campaign_name TEXT NOT NULL,
    sendout_id TEXT NOT NULL, cnt_session_id TEXT NOT NULL, sent_at TEXT, delivered_at TEXT,
    read_at TEXT, opt_out_at TEXT, error_code INTEGER, error_msg TEXT, button_clicks TEXT,
    link_clicks TEXT, input_variables TEXT, output_variables TEXT,
    UNIQUE (sendout_id, customer_external_id));";

/// Everything a size's cases need.
struct Env<'a> {
    root: &'a Path,
    work: PathBuf,
    sync_bin: PathBuf,
    load_bin: PathBuf,
    upload_bin: PathBuf,
    csv: PathBuf,
    rows: u64,
    vendor: &'a VendorFake,
    s3: &'a S3Server,
    time_bin: PathBuf,
    python: PathBuf,
}

/// The S3-compatible test server, stopped when dropped.
struct S3Server {
    _child: KillOnDrop,
    endpoint: String,
}

impl S3Server {
    fn start(program: &Path) -> Result<S3Server> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let mut child = KillOnDrop(child);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = child.0.try_wait() {
                bail!("{} exited ({status}) before answering", program.display());
            }
            if Instant::now() > deadline {
                bail!("{} did not answer on {addr} within 30 s", program.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(S3Server {
            _child: child,
            endpoint: format!("http://{addr}"),
        })
    }
}

/// Runs `cmd` under `/usr/bin/time`, fails unless it exits 0, returns wall time and peak RSS.
fn measure(time_bin: &Path, work: &Path, cmd: &Command) -> Result<Sample> {
    let time_out = work.join("time.out");
    let log = work.join("case.log");
    let mut timed = Command::new(time_bin);
    timed
        .args(["-f", "%M", "-o"])
        .arg(&time_out)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).context("creating the case log")?)
        .stderr(std::fs::File::create(work.join("case.err")).context("creating the case log")?);
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    let what = util::describe(cmd);
    let started = Instant::now();
    let status = timed.status().with_context(|| format!("cannot run {what}"))?;
    let secs = started.elapsed().as_secs_f64();
    if !status.success() {
        let err = std::fs::read_to_string(work.join("case.err")).unwrap_or_default();
        let tail: String = err
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        bail!("{what} failed ({status}):\n{tail}");
    }
    let rss_kib = std::fs::read_to_string(&time_out)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .with_context(|| format!("no peak RSS from {}", time_bin.display()))?;
    Ok(Sample { secs, rss_kib })
}

/// Deletes every object in the bench bucket (moto keeps them in memory and on disk).
fn empty_bucket(env: &Env<'_>) -> Result<()> {
    let script = "import sys, boto3\n\
        s3 = boto3.client('s3', endpoint_url=sys.argv[1])\n\
        b = sys.argv[2]\n\
        try:\n    s3.create_bucket(Bucket=b)\nexcept s3.exceptions.BucketAlreadyOwnedByYou:\n    pass\n\
        for page in s3.get_paginator('list_objects_v2').paginate(Bucket=b):\n\
        \x20   for o in page.get('Contents', []):\n\
        \x20       s3.delete_object(Bucket=b, Key=o['Key'])\n\
        for page in s3.get_paginator('list_multipart_uploads').paginate(Bucket=b):\n\
        \x20   for u in page.get('Uploads', []):\n\
        \x20       s3.abort_multipart_upload(Bucket=b, Key=u['Key'], UploadId=u['UploadId'])\n";
    util::output(
        Command::new(&env.python)
            .args(["-c", script, &env.s3.endpoint, BUCKET])
            .envs(AWS_ENV),
    )
    .map(drop)
    .context("emptying the bench bucket")
}

/// The `connectly-sync sync` command for `sinks`, in a fresh folder `dir`.
fn sync_command(env: &Env<'_>, dir: &Path, sinks: &[&str]) -> Command {
    let mut cmd = Command::new(&env.sync_bin);
    cmd.arg("sync").arg("--state-dir").arg(dir.join("state"));
    for sink in sinks {
        let spec = match *sink {
            "sqlite" => format!("sqlite:{}", dir.join("connectly.db").display()),
            "file" => format!("file:{}", dir.join("files").display()),
            _ => format!(
                "s3://{BUCKET}/sync?endpoint={}&region=us-east-1&path_style=true",
                env.s3.endpoint
            ),
        };
        cmd.arg("--sink").arg(spec);
    }
    cmd.env("CONNECTLY_API_KEY", &env.vendor.api_key)
        .env("CONNECTLY_BASE_URL", &env.vendor.base_url)
        .env("CONNECTLY_BUSINESS_ID", &env.vendor.business)
        .env("RUST_LOG", "warn")
        .envs(AWS_ENV);
    cmd
}

/// Runs one case once, from an empty folder and an empty bucket; `None` when its tool is missing.
fn run_case(env: &Env<'_>, case: Case, check: bool) -> Result<Option<Sample>> {
    let dir = env.work.join(case.key());
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if matches!(
        case,
        Case::SyncS3 | Case::SyncAll | Case::SinkS3 | Case::AwsCp | Case::Naive
    ) {
        empty_bucket(env)?;
    }
    let cmd = match case {
        Case::SyncSqlite => sync_command(env, &dir, &["sqlite"]),
        Case::SyncFile => sync_command(env, &dir, &["file"]),
        Case::SyncS3 => sync_command(env, &dir, &["s3"]),
        Case::SyncAll => sync_command(env, &dir, &["sqlite", "file", "s3"]),
        Case::SinkSqlite => {
            let mut cmd = Command::new(&env.load_bin);
            cmd.arg(&env.csv).arg(dir.join("connectly.db"));
            cmd
        }
        Case::SinkS3 => {
            let mut cmd = Command::new(&env.upload_bin);
            cmd.arg(&env.csv)
                .arg(format!(
                    "s3://{BUCKET}/sink?endpoint={}&region=us-east-1&path_style=true",
                    env.s3.endpoint
                ))
                .envs(AWS_ENV);
            cmd
        }
        Case::Import => {
            if !have("sqlite3", "-version") {
                return Ok(None);
            }
            std::fs::write(dir.join("schema.sql"), IMPORT_SCHEMA).context("writing schema.sql")?;
            let mut cmd = Command::new("sqlite3");
            cmd.arg(dir.join("import.db"))
                .arg(format!(".read {}", dir.join("schema.sql").display()))
                .arg(format!(".import --csv --skip 1 {} report", env.csv.display()));
            cmd
        }
        Case::AwsCp => {
            if !have("aws", "--version") {
                return Ok(None);
            }
            let mut cmd = Command::new("aws");
            cmd.args(["--endpoint-url", &env.s3.endpoint, "s3", "cp", "--only-show-errors"])
                .arg(&env.csv)
                .arg(format!("s3://{BUCKET}/awscp/campaign.csv"))
                .envs(AWS_ENV);
            cmd
        }
        Case::Naive => {
            let mut cmd = Command::new(&env.python);
            cmd.arg(env.root.join("bench/naive_sync.py"))
                .args([&env.vendor.base_url, &env.vendor.business, &env.vendor.api_key])
                .arg(dir.join("naive.db"))
                .arg(dir.join("files"))
                .args([&env.s3.endpoint, BUCKET])
                .envs(AWS_ENV);
            cmd
        }
    };
    let mut sample = measure(&env.time_bin, &env.work, &cmd)?;
    if matches!(case, Case::SinkSqlite | Case::SinkS3) {
        // The delivery alone, as the example timed it (not its start-up and hashing).
        sample.secs = reported_seconds(&env.work.join("case.log"))?;
    }
    if check {
        verify(env, case, &dir)?;
    }
    std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    Ok(Some(sample))
}

/// The `seconds` of the JSON line a measuring example printed.
fn reported_seconds(log: &Path) -> Result<f64> {
    let text = std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no JSON line from the example")?;
    let value: Value = serde_json::from_str(line).context("the example's JSON line")?;
    value
        .get("seconds")
        .and_then(Value::as_f64)
        .context("no seconds in the example's output")
}

/// After a case's first run: checks that the rows really landed.
fn verify(env: &Env<'_>, case: Case, dir: &Path) -> Result<()> {
    let count = |db: &Path, table: &str| -> Result<u64> {
        util::output(
            Command::new("sqlite3")
                .arg("-readonly")
                .arg(db)
                .arg(format!("SELECT count(*) FROM {table}")),
        )?
        .trim()
        .parse()
        .context("reading a row count")
    };
    if !have("sqlite3", "-version") {
        return Ok(());
    }
    let db = match case {
        Case::SyncSqlite | Case::SyncAll | Case::SinkSqlite => dir.join("connectly.db"),
        _ => return Ok(()),
    };
    let (rows, latest) = (count(&db, "campaign_rows")?, count(&db, "campaign_latest")?);
    if rows != env.rows || latest != env.rows {
        bail!(
            "{}: expected {} rows in campaign_rows and campaign_latest, found {rows} and {latest}",
            case.label(),
            env.rows
        );
    }
    Ok(())
}

/// Whether `program arg` runs.
fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The figures of one case at one size.
#[derive(Debug)]
struct Summary {
    median_s: f64,
    min_s: f64,
    max_s: f64,
    peak_rss_mib: f64,
    runs: usize,
}

fn summarize(samples: &[Sample]) -> Summary {
    let mut secs: Vec<f64> = samples.iter().map(|s| s.secs).collect();
    let median_s = median(&mut secs);
    Summary {
        median_s,
        min_s: secs.first().copied().unwrap_or(f64::NAN),
        max_s: secs.last().copied().unwrap_or(f64::NAN),
        // The worst run: a memory bound must hold every time.
        peak_rss_mib: samples.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64 / 1024.0,
        runs: samples.len(),
    }
}

/// Results of one size.
struct SizeResult {
    rows: u64,
    bytes: u64,
    cases: BTreeMap<Case, Summary>,
}

impl SizeResult {
    fn time(&self, case: Case) -> Option<f64> {
        self.cases.get(&case).map(|s| s.median_s)
    }
    fn ratio(&self, a: Case, b: Case) -> Option<f64> {
        Some(self.time(a)? / self.time(b)?)
    }
}

/// A target: its text, the measured value, and whether it is met.
struct Target {
    text: String,
    value: Option<f64>,
    shown: String,
    met: Option<bool>,
}

/// Marks the last figure as shown for information, not a target.
fn informational(out: &mut [Target]) {
    if let Some(last) = out.last_mut() {
        last.met = None;
    }
}

fn targets(results: &[SizeResult]) -> Vec<Target> {
    let big = results.iter().max_by_key(|r| r.rows);
    let small = results.iter().min_by_key(|r| r.rows);
    let mut out = Vec::new();
    let Some(big) = big else {
        return out;
    };
    let n = format_rows(big.rows);
    let ratio_target = |text: String, value: Option<f64>, ok: &dyn Fn(f64) -> bool| Target {
        shown: value.map_or("not measured".to_owned(), |v| format!("{v:.2}x")),
        met: value.map(ok),
        value,
        text,
    };
    out.push(ratio_target(
        format!("SQLite sink ({n} rows) ≤ 0.45x `sqlite3 .import`"),
        big.ratio(Case::SinkSqlite, Case::Import),
        &|v| v <= 0.45,
    ));
    out.push(ratio_target(
        format!("whole sync into SQLite ({n} rows) vs `sqlite3 .import` (for information)"),
        big.ratio(Case::SyncSqlite, Case::Import),
        &|_| true,
    ));
    informational(&mut out);
    out.push(ratio_target(
        format!("S3 sink upload ({n} rows) ≤ 1.0x `aws s3 cp`"),
        big.ratio(Case::SinkS3, Case::AwsCp),
        &|v| v <= 1.0,
    ));
    out.push(ratio_target(
        format!("whole sync into S3 ({n} rows) vs `aws s3 cp` (for information)"),
        big.ratio(Case::SyncS3, Case::AwsCp),
        &|_| true,
    ));
    informational(&mut out);
    out.push(ratio_target(
        format!("naive script ≥ 5x the sync into all three ({n} rows)"),
        big.ratio(Case::Naive, Case::SyncAll),
        &|v| v >= 5.0,
    ));
    let rss_big = big.cases.get(&Case::SyncAll).map(|s| s.peak_rss_mib);
    out.push(Target {
        text: format!("peak RSS, sync into all three ({n} rows) ≤ 100 MiB"),
        value: rss_big,
        shown: rss_big.map_or("not measured".to_owned(), |v| format!("{v:.1} MiB")),
        met: rss_big.map(|v| v <= 100.0),
    });
    if let Some(small) = small.filter(|s| s.rows < big.rows) {
        let rss_small = small.cases.get(&Case::SyncAll).map(|s| s.peak_rss_mib);
        let growth = rss_big.zip(rss_small).map(|(b, s)| b / s);
        out.push(Target {
            text: format!(
                "peak RSS ({n} rows) ≤ 1.10x the {} rows figure",
                format_rows(small.rows)
            ),
            value: growth,
            shown: growth.map_or("not measured".to_owned(), |v| format!("{v:.2}x")),
            met: growth.map(|v| v <= 1.10),
        });
    }
    out
}

fn format_rows(rows: u64) -> String {
    if rows >= 1_000_000 && rows.is_multiple_of(1_000_000) {
        format!("{}M", rows / 1_000_000)
    } else if rows >= 1_000 && rows.is_multiple_of(1_000) {
        format!("{}k", rows / 1_000)
    } else {
        rows.to_string()
    }
}

fn markdown(results: &[SizeResult], runs: usize, machine: &str) -> String {
    let mut md = String::new();
    md.push_str(&format!(
        "Medians of {runs} run(s) per case; peak RSS is the largest of the runs. {machine}\n\n"
    ));
    md.push_str("| rows | file | case | median | min–max | rows/s | MB/s | peak RSS |\n");
    md.push_str("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n");
    for r in results {
        for (case, s) in &r.cases {
            md.push_str(&format!(
                "| {} | {:.0} MB | {} | {:.2} s | {:.2}–{:.2} s | {:.0} | {:.1} | {:.1} MiB |\n",
                format_rows(r.rows),
                r.bytes as f64 / 1e6,
                case.label(),
                s.median_s,
                s.min_s,
                s.max_s,
                r.rows as f64 / s.median_s,
                r.bytes as f64 / 1e6 / s.median_s,
                s.peak_rss_mib
            ));
        }
    }
    md.push_str("\n| target | measured | met |\n| --- | ---: | --- |\n");
    for t in targets(results) {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        md.push_str(&format!("| {} | {} | {met} |\n", t.text, t.shown));
    }
    md
}

fn json_results(results: &[SizeResult], runs: usize, machine: &str) -> Value {
    let sizes: Vec<Value> = results
        .iter()
        .map(|r| {
            let cases: serde_json::Map<String, Value> = r
                .cases
                .iter()
                .map(|(case, s)| {
                    (
                        case.key().to_owned(),
                        json!({
                            "label": case.label(),
                            "median_s": s.median_s,
                            "min_s": s.min_s,
                            "max_s": s.max_s,
                            "runs": s.runs,
                            "rows_per_s": r.rows as f64 / s.median_s,
                            "mb_per_s": r.bytes as f64 / 1e6 / s.median_s,
                            "peak_rss_mib": s.peak_rss_mib,
                        }),
                    )
                })
                .collect();
            json!({
                "rows": r.rows,
                "bytes": r.bytes,
                "cases": cases,
                "ratios": {
                    "sink_sqlite_vs_import": r.ratio(Case::SinkSqlite, Case::Import),
                    "sync_sqlite_vs_import": r.ratio(Case::SyncSqlite, Case::Import),
                    "sink_s3_vs_aws_cp": r.ratio(Case::SinkS3, Case::AwsCp),
                    "sync_s3_vs_aws_cp": r.ratio(Case::SyncS3, Case::AwsCp),
                    "naive_vs_sync_all": r.ratio(Case::Naive, Case::SyncAll),
                },
            })
        })
        .collect();
    let targets: Vec<Value> = targets(results)
        .into_iter()
        .map(|t| json!({"target": t.text, "value": t.value, "met": t.met}))
        .collect();
    json!({ "runs": runs, "machine": machine, "sizes": sizes, "targets": targets })
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("Machine: {cpus} CPUs ({model}).")
}

/// The 1-minute load average, to show how busy the machine was around the run.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// Generates the CSV for `rows` unless it is already there.
fn ensure_csv(fake_bin: &Path, dir: &Path, rows: u64) -> Result<PathBuf> {
    let path = dir.join(format!("campaign-{rows}.csv"));
    if path.metadata().is_ok_and(|m| m.len() > 0) {
        return Ok(path);
    }
    println!("    generating {} ({rows} rows, seed {SEED})", path.display());
    let tmp = dir.join(format!("campaign-{rows}.csv.tmp"));
    util::run(Command::new(fake_bin).arg("--write-campaign-csv").arg(&tmp).args([
        "--rows",
        &rows.to_string(),
        "--seed",
        &SEED.to_string(),
    ]))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot rename {}", tmp.display()))?;
    Ok(path)
}

fn release_binary(target_dir: &Path, path: &str) -> Result<PathBuf> {
    let p = target_dir
        .join("release")
        .join(format!("{path}{}", std::env::consts::EXE_SUFFIX));
    if !p.is_file() {
        bail!("{} is missing after the build", p.display());
    }
    Ok(p)
}

/// Free space on the file system holding `dir`, in bytes (from `df`), if known.
fn free_bytes(dir: &Path) -> Option<u64> {
    let out = util::output(Command::new("df").args(["-Pk"]).arg(dir)).ok()?;
    let line = out.lines().nth(1)?;
    line.split_whitespace().nth(3)?.parse::<u64>().ok().map(|k| k * 1024)
}

/// Runs the benchmark.
pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    let root = util::workspace_root()?;
    let time_bin = PathBuf::from("/usr/bin/time");
    if !time_bin.is_file() {
        bail!("/usr/bin/time is needed for peak RSS (on Debian/Ubuntu: apt-get install time)");
    }
    println!("==> building connectly-sync, connectly-vendor-fake and sqlite_load_measure (release)");
    util::run(&mut util::cargo(&[
        "build",
        "--release",
        "-p",
        "connectly-sync",
        "-p",
        "connectly-vendor-fake",
    ])?)?;
    util::run(&mut util::cargo(&[
        "build",
        "--release",
        "-p",
        "connectly-sink-sqlite",
        "--example",
        "sqlite_load_measure",
    ])?)?;
    util::run(&mut util::cargo(&[
        "build",
        "--release",
        "-p",
        "connectly-sink-s3",
        "--example",
        "s3_deliver_measure",
    ])?)?;
    let meta = util::cargo_metadata(&["--no-deps"])?;
    let target_dir = PathBuf::from(
        meta.get("target_directory")
            .and_then(Value::as_str)
            .context("cargo metadata: no target_directory")?,
    );
    let sync_bin = release_binary(&target_dir, "connectly-sync")?;
    let fake_bin = release_binary(&target_dir, "connectly-vendor-fake")?;
    let load_bin = release_binary(&target_dir, "examples/sqlite_load_measure")?;
    let upload_bin = release_binary(&target_dir, "examples/s3_deliver_measure")?;

    println!("\n==> the S3-compatible test server");
    s3server::ensure()?;
    let moto = std::env::var_os("CONNECTLY_S3_TEST_SERVER")
        .filter(|p| !p.is_empty())
        .map_or_else(|| root.join("target/s3-venv/bin/moto_server"), PathBuf::from);
    // boto3 comes with moto; the naive script and the bucket clean-up use it.
    let python = root.join("target/s3-venv/bin/python");
    if !python.is_file() {
        bail!("{} is missing (boto3 comes with moto there)", python.display());
    }

    let bench_dir = target_dir.join("bench");
    std::fs::create_dir_all(&bench_dir).with_context(|| format!("cannot create {}", bench_dir.display()))?;
    let biggest = args.rows.iter().copied().max().unwrap_or(0);
    // The file, the spool, the database (~2x the file), the file sink's copy, the
    // import's database and the S3 server's copy.
    let needed = biggest * 450 * 8;
    if let Some(free) = free_bytes(&bench_dir)
        && free < needed
    {
        bail!(
            "{} has {} MB free; {} rows need about {} MB",
            bench_dir.display(),
            free / 1_000_000,
            biggest,
            needed / 1_000_000
        );
    }

    let load_before = load_average();
    let mut results = Vec::new();
    for &rows in &args.rows {
        println!("\n==> {rows} rows");
        let csv = ensure_csv(&fake_bin, &bench_dir, rows)?;
        let bytes = csv.metadata().context("reading the CSV's size")?.len();
        let vendor = VendorFake::start(&fake_bin, &[OsStr::new("--campaign-csv"), csv.as_os_str()])?;
        let s3 = S3Server::start(&moto)?;
        let env = Env {
            root: &root,
            work: bench_dir.join(format!("work-{rows}")),
            sync_bin: sync_bin.clone(),
            load_bin: load_bin.clone(),
            upload_bin: upload_bin.clone(),
            csv: csv.clone(),
            rows,
            vendor: &vendor,
            s3: &s3,
            time_bin: time_bin.clone(),
            python: python.clone(),
        };
        std::fs::create_dir_all(&env.work).with_context(|| format!("cannot create {}", env.work.display()))?;
        let mut samples: BTreeMap<Case, Vec<Sample>> = BTreeMap::new();
        // Interleaved: run i of every case, then run i + 1, so drift hits all alike.
        for i in 0..args.runs {
            for case in Case::ALL {
                print!("    run {}/{} {:<38}", i + 1, args.runs, case.label());
                use std::io::Write as _;
                let _ = std::io::stdout().flush();
                match run_case(&env, case, i == 0)? {
                    Some(s) => {
                        println!("{:>8.2} s {:>8.1} MiB", s.secs, s.rss_kib as f64 / 1024.0);
                        samples.entry(case).or_default().push(s);
                    }
                    None => println!("skipped (tool not installed)"),
                }
            }
        }
        let _ = std::fs::remove_dir_all(&env.work);
        results.push(SizeResult {
            rows,
            bytes,
            cases: samples.iter().map(|(c, s)| (*c, summarize(s))).collect(),
        });
    }

    // Other processes compete for the CPUs: ratios are paired by interleaving, but a
    // busy machine shows in the absolute figures.
    let machine = format!(
        "{} Load average (1 min) {load_before} before, {} after.",
        machine(),
        load_average()
    );
    let md = markdown(&results, args.runs, &machine);
    let json = json_results(&results, args.runs, &machine);
    std::fs::write(bench_dir.join("results.md"), &md).context("writing results.md")?;
    std::fs::write(
        bench_dir.join("results.json"),
        serde_json::to_string_pretty(&json).context("serializing the results")?,
    )
    .context("writing results.json")?;
    println!("\n{md}");
    println!(
        "written to {} and {}",
        bench_dir.join("results.md").display(),
        bench_dir.join("results.json").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_options() -> Result<()> {
        assert_eq!(parse_args(&args(&[]))?, Some(BenchArgs::default()));
        assert_eq!(
            parse_args(&args(&["--quick", "--runs", "5"]))?,
            Some(BenchArgs {
                runs: 5,
                rows: vec![100_000]
            })
        );
        assert_eq!(
            parse_args(&args(&["--rows=1000,20_000", "--runs=1"]))?,
            Some(BenchArgs {
                runs: 1,
                rows: vec![1000, 20_000]
            })
        );
        assert_eq!(parse_args(&args(&["--help"]))?, None);
        assert!(parse_args(&args(&["--runs", "0"])).is_err());
        assert!(parse_args(&args(&["--rows", "x"])).is_err());
        assert!(parse_args(&args(&["--runs"])).is_err());
        assert!(parse_args(&args(&["--nope"])).is_err());
        Ok(())
    }

    #[test]
    fn medians_and_names() {
        assert!((median(&mut [3.0, 1.0, 2.0]) - 2.0).abs() < 1e-9);
        assert!((median(&mut [4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-9);
        assert_eq!(format_rows(1_000_000), "1M");
        assert_eq!(format_rows(100_000), "100k");
        assert_eq!(format_rows(1234), "1234");
    }
}

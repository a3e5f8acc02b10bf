//! `connectly-vendor-fake`: serves the demo dataset on a fake Connectly vendor until
//! SIGTERM or Ctrl-C. Prints one line, `listening on http://127.0.0.1:PORT business=… api_key=…`,
//! so that a script can read the base URL.
//!
//! For the benchmark (`cargo xtask bench`): `--write-campaign-csv FILE --rows N` writes a
//! generated campaign CSV and exits; `--campaign-csv FILE` serves that file as the only
//! report (one completed run) of the demo business instead of the demo dataset.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use connectly_vendor_fake::{Config, FakeVendor, campaign_csv_for, demo};
use time::macros::datetime;

/// The report that `--campaign-csv` serves.
const BENCH_REPORT_ID: &str = "b3e7c1d0-0000-4000-8000-00000000be7c";

/// Serve the demo dataset on a fake Connectly Reports API.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Lifetime of the signed file URLs, in seconds.
    #[arg(long, default_value_t = 3600)]
    url_ttl_secs: u64,
    /// Serve this CSV file as the only report of the demo business (one completed run
    /// of type `campaign.daily.v1`) instead of the demo dataset.
    #[arg(long, value_name = "FILE", conflicts_with = "write_campaign_csv")]
    campaign_csv: Option<PathBuf>,
    /// Write a generated campaign CSV (the 15 documented columns, deterministic for a
    /// seed) to FILE and exit without serving.
    #[arg(long, value_name = "FILE", requires = "rows")]
    write_campaign_csv: Option<PathBuf>,
    /// Data rows for `--write-campaign-csv`.
    #[arg(long)]
    rows: Option<usize>,
    /// Seed for `--write-campaign-csv`.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Writes a generated campaign CSV.
fn write_campaign_csv(path: &std::path::Path, rows: usize, seed: u64) -> std::io::Result<()> {
    std::fs::write(path, campaign_csv_for(demo::BUSINESS_ID, rows, seed))
}

/// Serves `path` as the single completed run of one campaign report.
fn install_file(vendor: &FakeVendor, path: &std::path::Path) -> Result<(), String> {
    let csv = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let result = vendor
        .add_business(demo::BUSINESS_ID, demo::API_KEY)
        .and_then(|()| {
            vendor.add_report(
                demo::BUSINESS_ID,
                BENCH_REPORT_ID,
                "Benchmark campaign report",
                "campaign.daily.v1",
            )
        })
        .and_then(|()| vendor.publish_run(BENCH_REPORT_ID, "bench-run-1", csv, datetime!(2025-05-01 03:00:00 UTC)));
    result.map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = &args.write_campaign_csv {
        let rows = args.rows.unwrap_or_default();
        return match write_campaign_csv(path, rows, args.seed) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("connectly-vendor-fake: cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        };
    }
    let config = Config {
        listen: args.listen,
        url_ttl: Duration::from_secs(args.url_ttl_secs),
        ..Config::default()
    };
    let vendor = match FakeVendor::start(config).await {
        Ok(vendor) => vendor,
        Err(e) => {
            eprintln!("connectly-vendor-fake: {e}");
            return ExitCode::FAILURE;
        }
    };
    let installed = match &args.campaign_csv {
        Some(path) => install_file(&vendor, path),
        None => demo::install(&vendor).map_err(|e| e.to_string()),
    };
    if let Err(e) = installed {
        eprintln!("connectly-vendor-fake: {e}");
        return ExitCode::FAILURE;
    }
    let mut stdout = std::io::stdout().lock();
    let printed = writeln!(
        stdout,
        "listening on {} business={} api_key={}",
        vendor.base_url(),
        demo::BUSINESS_ID,
        demo::API_KEY
    )
    .and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(e) = printed {
        eprintln!("connectly-vendor-fake: cannot write to stdout: {e}");
        return ExitCode::FAILURE;
    }
    wait_for_signal().await;
    vendor.shutdown();
    ExitCode::SUCCESS
}

/// Waits for Ctrl-C or (on Unix) SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

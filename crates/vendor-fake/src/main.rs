//! `connectly-vendor-fake`: serves the demo dataset on a fake Connectly vendor until
//! SIGTERM or Ctrl-C. Prints one line, `listening on http://127.0.0.1:PORT business=… api_key=…`,
//! so that a script can read the base URL.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use connectly_vendor_fake::{Config, FakeVendor, demo};

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
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
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
    if let Err(e) = demo::install(&vendor) {
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

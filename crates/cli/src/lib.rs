//! The `connectly-sync` command line: argument parsing and wiring only.
//!
//! A custom build that adds its own sink keeps this CLI and registers a URI scheme:
//!
//! ```no_run
//! use std::sync::Arc;
//! use connectly_sync::SinkRegistry;
//!
//! fn main() -> std::process::ExitCode {
//!     let mut sinks = SinkRegistry::with_builtin_sinks();
//!     sinks.register("null", "null:NAME (discards runs)", |_rest| {
//!         Err("replace this with your sink's constructor".to_owned())
//!     });
//!     connectly_sync::main_with(sinks)
//! }
//! ```

mod args;
mod output;
mod registry;

use std::process::ExitCode;
use std::sync::Arc;

use connectly_client::{ApiKey, ClientConfig, ReportsClient};
use connectly_orchestrator::{SyncOptions, Syncer};

pub use registry::SinkRegistry;

use crate::args::{Cli, Command, SyncArgs};

/// Exit status: everything that should be delivered was (including "nothing new").
pub const EXIT_OK: u8 = 0;
/// Exit status: the sync ran, but a run or a sink failed; it stays pending.
pub const EXIT_INCOMPLETE: u8 = 1;
/// Exit status: bad usage or configuration; nothing was attempted.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: the sync could not run (API unreachable or refused the key, state
/// folder locked or unusable).
pub const EXIT_FAILED: u8 = 3;

/// Parses the command line and runs it with the sinks of `registry`.
pub fn main_with(registry: SinkRegistry) -> ExitCode {
    let cli = Cli::parse_from_registry(&registry);
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Sync(args) => sync(args, &registry).await,
        }
    });
    ExitCode::from(code)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn sync(args: SyncArgs, registry: &SinkRegistry) -> u8 {
    let Some(api_key) = std::env::var("CONNECTLY_API_KEY").ok().filter(|k| !k.trim().is_empty()) else {
        eprintln!(
            "error: CONNECTLY_API_KEY is not set. Export your Connectly API key in the environment \
             (it is never accepted on the command line)."
        );
        return EXIT_USAGE;
    };
    let sink_uris = if args.sinks.is_empty() {
        vec![args::DEFAULT_SINK.to_owned()]
    } else {
        args.sinks.clone()
    };
    let mut sinks = Vec::new();
    for uri in &sink_uris {
        match registry.build(uri) {
            Ok(sink) => sinks.push(sink),
            Err(e) => {
                eprintln!("error: --sink {uri:?}: {e}");
                return EXIT_USAGE;
            }
        }
    }
    let config = ClientConfig::new(ApiKey::new(api_key)).with_base_url(args.base_url.clone());
    let client = match ReportsClient::new(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: --base-url {:?}: {e}", args.base_url);
            return EXIT_USAGE;
        }
    };
    let options = SyncOptions::new(args.business_id.clone().into(), args.state_dir.clone())
        .with_report_types(args.types.iter().map(|t| t.as_str().into()).collect());
    let syncer = Syncer::new(Arc::new(client), sinks, options);
    match syncer.run().await {
        Ok(report) => {
            if args.json {
                output::print_json(&report);
            } else {
                output::print_human(&report);
            }
            if report.is_ok() { EXIT_OK } else { EXIT_INCOMPLETE }
        }
        Err(e) => {
            if args.json {
                output::print_json_error(&e);
            }
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}
